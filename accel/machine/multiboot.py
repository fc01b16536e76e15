"""Multiboot (v1) kernels: the header, the load plan, the boot information, the RAM layout.

This module turns a Multiboot kernel file (kvm-unit-tests' ``*.flat``, a hand-made test
kernel ...) into a :class:`BootPlan`: the guest-memory writes, the entry point and the
register state a machine applies to any accelerator before its first ``run()``. It knows
nothing of :class:`~accel.machine.Machine`; the machine (or a test) writes
``plan.writes`` with ``vm.write_memory`` and loads :func:`flat32_registers` /
:func:`flat32_sregs` into the boot vCPU.

It follows QEMU 7.2:

* ``hw/i386/multiboot.c`` (``load_multiboot``): the header search (magic 0x1BADB002 in the
  first 8192 bytes, 4-byte aligned, ``magic + flags + checksum == 0``), ELF loading through
  the program headers unless flag 16 (the a.out kludge) is set, in which case the header's
  ``header_addr``/``load_addr``/``load_end_addr``/``bss_end_addr``/``entry_addr`` win, with
  QEMU's validity checks; the layout of the buffer after the kernel (module structures,
  module strings, the kernel command line ``"<kernel file name> <append>"``, the boot
  loader name, then each module page-aligned); the info flags QEMU sets (memory, boot
  device 0x8000ffff, cmdline, modules, mmap, boot loader name = 0x24f); the info structure
  at 0x9500 and the memory map at 0x9000 (``MULTIBOOT_STRUCT_ADDR``).
* ``pc-bios/optionrom/multiboot.S`` (the option ROM that finishes the job under
  SeaBIOS): ``mem_lower`` from INT 12h, the memory map from INT 15h E820 (entries with
  ``size`` = 20 at ``mmap_addr``), ``mem_upper`` = KiB of RAM contiguous from 1 MiB, and the
  hand-over: EAX = 0x2BADB002, EBX = the info address, ECX = the entry, flat 4 GiB code
  (selector 0x08) and data (0x10) segments, CR0 = PE (ET reads as 1), paging off, A20 on,
  interrupts off, EFLAGS = 0x2.
* ``hw/i386/pc_piix.c`` / ``hw/i386/pc_q35.c`` for the split of RAM below and above 4 GiB
  (:func:`ram_split`) and ``hw/i386/pc.c`` / ``hw/i386/e820_memory_layout.c`` for QEMU's
  ``etc/e820`` table (:func:`e820_table`).

Where this module departs from QEMU, on purpose:

* ELF64 images are loaded through their PT_LOAD program headers (QEMU refuses an
  EM_X86_64 Multiboot ELF without the a.out kludge: "Cannot load x86-64 image, give a
  32bit one"); every address must still be below 4 GiB.
* The memory map is the one SeaBIOS reports on QEMU 7.2 (:func:`firmware_memory_map`),
  without SeaBIOS's own allocations at the top of low RAM (it reserves a zone there
  whose size depends on what it allocated, typically 128 KiB): there is no SeaBIOS here.
* The GDT the hand-over state refers to is written at 0x9558, just after the info
  structure (QEMU's lives inside the option ROM, which accel does not have).
* When the kernel itself loads over the fixed info area 0x9000..0x9580 (kvm-unit-tests'
  ``realmode.flat`` loads at 0x8000), QEMU's option ROM builds the info and memory map
  there first and then copies the kernel over them; here the memory map, info structure
  and GDT move to the page-aligned space after the kernel's buffer instead, so neither
  is damaged.
* A segment that touches the legacy VGA/BIOS window 0xa0000..0x100000 (not RAM on pc and
  q35) is refused, as is anything not in RAM below the 4 GiB split.

Example::

    plan = load_multiboot("x86/dummy.flat", ram_size=parse_size("128"), cmdline="-v")
    for address, data in plan.writes:
        vm.write_memory(address, data)
    cpu.set_sregs(flat32_sregs(cpu.get_sregs(), gdt_base=plan.gdt_address))
    cpu.set_regs(flat32_registers(plan))
"""

from __future__ import annotations

import enum
import os
import re
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import BinaryIO

from accel.accelerator import DescriptorTable, Registers, Segment, SpecialRegisters
from accel.errors import ConfigError
from accel.files import refuse_kind

__all__ = [
    "BOOTLOADER_MAGIC",
    "HEADER_MAGIC",
    "INFO_ADDRESS",
    "MMAP_ADDRESS",
    "BootPlan",
    "E820Entry",
    "E820Type",
    "MachineFamily",
    "Module",
    "MultibootHeader",
    "e820_table",
    "find_header",
    "firmware_memory_map",
    "flat32_registers",
    "flat32_sregs",
    "legacy_firmware",
    "load_multiboot",
    "parse_initrd",
    "parse_size",
    "ram_layout",
    "ram_split",
]

KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30
TiB = 1 << 40
FOUR_GIB = 4 * GiB
PAGE_SIZE = 4096

#: The header's magic (``multiboot_header.magic``).
HEADER_MAGIC = 0x1BADB002
#: What the boot loader leaves in EAX.
BOOTLOADER_MAGIC = 0x2BADB002
#: The header must lie entirely within the file's first 8192 bytes (48 bytes long).
HEADER_SEARCH = 8192
HEADER_SIZE = 48

#: QEMU's MULTIBOOT_STRUCT_ADDR: the memory map goes here (ADDR_E820_MAP) ...
MMAP_ADDRESS = 0x9000
#: ... and the info structure 0x500 bytes later (ADDR_MBI).
INFO_ADDRESS = MMAP_ADDRESS + 0x500
INFO_SIZE = 88
#: Our GDT (see the module docstring), 8-byte aligned right after the info structure.
GDT_OFFSET = INFO_SIZE  # from the info structure
GDT_SIZE = 5 * 8
#: Room for the memory map before the info structure: 1280 bytes, 53 entries of 24.
MMAP_ROOM = INFO_ADDRESS - MMAP_ADDRESS
MMAP_ENTRY_SIZE = 24

#: The flags QEMU sets in ``multiboot_info.flags``.
INFO_FLAG_MEMORY = 1 << 0
INFO_FLAG_BOOT_DEVICE = 1 << 1
INFO_FLAG_CMDLINE = 1 << 2
INFO_FLAG_MODULES = 1 << 3
INFO_FLAG_MMAP = 1 << 6
INFO_FLAG_BOOTLOADER = 1 << 9
INFO_FLAGS = (
    INFO_FLAG_MEMORY
    | INFO_FLAG_BOOT_DEVICE
    | INFO_FLAG_CMDLINE
    | INFO_FLAG_MODULES
    | INFO_FLAG_MMAP
    | INFO_FLAG_BOOTLOADER
)
#: QEMU's ``boot_device``: BIOS drive 0x80, no partition ("XXX: use the -boot switch?").
BOOT_DEVICE = 0x8000FFFF
#: The boot loader name QEMU writes; the default here too, so kernels see what QEMU gives.
DEFAULT_BOOTLOADER_NAME = "qemu"

#: Header flag bits.
HEADER_FLAG_PAGE_ALIGN = 1 << 0
HEADER_FLAG_MEMORY_INFO = 1 << 1
HEADER_FLAG_VIDEO = 1 << 2
HEADER_FLAG_AOUT_KLUDGE = 1 << 16

#: The legacy window that is not RAM on pc and q35 (VGA memory, option ROMs, BIOS).
LEGACY_HOLE = (0xA0000, 0x100000)
#: SeaBIOS's EBDA: INT 12h reports 639 KiB of base memory.
EBDA_START = 0x9FC00
#: The largest ``-m`` accepted (beyond it QEMU 7.2 moves RAM above the AMD 1 TiB hole).
MAX_RAM_SIZE = 1 * TiB

#: The option ROM's GDT (``pc-bios/optionrom/multiboot.S``): null, 32-bit code 0x08, 32-bit
#: data 0x10, 16-bit code 0x18, 16-bit data 0x20.
GDT_BYTES = bytes.fromhex(
    "0000000000000000ffff0000009acf00ffff00000092cf00ffff0000009e0000ffff000000920000"
)
CODE_SELECTOR = 0x08
DATA_SELECTOR = 0x10


def _page_align(value: int) -> int:
    return (value + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)


# --------------------------------------------------------------------------- sizes


_SIZE_RE = re.compile(r"(?P<num>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?P<suffix>[BKMGTPE]?)", re.IGNORECASE)
_SUFFIX = {"": 1, "B": 1, "K": KiB, "M": MiB, "G": GiB, "T": TiB, "P": 1 << 50, "E": 1 << 60}


def parse_size(text: str, *, maximum: int = MAX_RAM_SIZE) -> int:
    """The guest RAM size in bytes for ``-m TEXT``, parsed as QEMU 7.2's ``-m`` does.

    QEMU (``softmmu/vl.c``, ``parse_memory_options``) appends ``M`` to a value ending in a
    digit (the legacy suffix-less form is MiB), then parses it with ``qemu_strtosz``:
    a decimal number, optionally with a fraction, and one of the suffixes B, K, M, G, T,
    P, E (any case; powers of 1024). ``size=`` in front is accepted (``-m size=2G``).
    The result is rounded up to a multiple of 8 KiB, as QEMU does
    (``QEMU_ALIGN_UP(sz, 8192)``). Zero, negative numbers, garbage (hexadecimal too), a
    fraction of a byte and sizes above ``maximum`` (1 TiB by default) raise
    :class:`ConfigError`; where QEMU quietly takes ``-m 0`` as the machine's default
    size, this refuses it.
    """
    raw = text
    value = text.strip()
    if value.startswith("size="):
        value = value[len("size=") :]
    if value and value[-1].isdigit():
        value += "M"
    match = _SIZE_RE.fullmatch(value)
    if match is None:
        raise ConfigError(
            f"invalid memory size {raw!r}",
            hint="give a number of MiB (-m 256) or a size with a suffix (-m 512M, -m 4G)",
            value=raw,
        )
    from fractions import Fraction  # exact "1.5G"; only when a size is given

    amount = Fraction(match["num"]) * _SUFFIX[match["suffix"].upper()]
    if amount.denominator != 1:
        raise ConfigError(
            f"memory size {raw!r} is not a whole number of bytes",
            hint="use a larger unit or a whole number (-m 1536M)",
            value=raw,
        )
    size = int(amount)
    if size <= 0:
        raise ConfigError(
            f"memory size {raw!r} is zero",
            hint="give the guest some RAM, e.g. -m 128",
            value=raw,
        )
    size = (size + 8191) & ~8191
    if size > maximum:
        raise ConfigError(
            f"memory size {raw!r} ({size} bytes) is larger than the maximum {maximum >> 30} GiB",
            hint="give a smaller -m",
            value=raw,
        )
    return size


# --------------------------------------------------------------------------- RAM layout


class MachineFamily(enum.Enum):
    """The two PC machine families, with QEMU's aliases as values."""

    PC = "pc"
    Q35 = "q35"

    @classmethod
    def of(cls, name: str | MachineFamily) -> MachineFamily:
        """``"pc"``, ``"pc-i440fx-7.2"``, ``"q35"``, ``"pc-q35-7.2"`` ... as a family."""
        if isinstance(name, MachineFamily):
            return name
        text = name.split(",", 1)[0].strip().lower()
        if text == "q35" or text.startswith("pc-q35"):
            return cls.Q35
        if text == "pc" or text.startswith("pc-i440fx"):
            return cls.PC
        raise ConfigError(
            f"machine {name!r} is not a pc or q35 machine",
            hint="Multiboot boots on 'pc' (pc-i440fx-*) and 'q35' (pc-q35-*) machines",
            machine=name,
        )


def ram_split(
    machine_family: str | MachineFamily,
    ram_size: int,
    *,
    max_ram_below_4g: int | None = None,
) -> tuple[int, int]:
    """``(below_4g, above_4g)``: how QEMU 7.2 splits ``ram_size`` bytes of RAM at 4 GiB.

    pc (``hw/i386/pc_piix.c``, ``pc_init1``; pc-i440fx-2.0 and later have
    ``gigabyte_align``): ``lowmem = max-ram-below-4g`` (default 0xE0000000, 3.5 GiB); if
    ``ram_size >= max-ram-below-4g``, ``lowmem`` drops to at most 0xC0000000 (3 GiB) so
    that the split is gigabyte aligned. Then if ``ram_size >= lowmem`` the first
    ``lowmem`` bytes are below 4 GiB and the rest above, else everything is below.
    So ``-m 3G`` is all below, ``-m 3584M`` and ``-m 4G`` give 3 GiB below.

    q35 (``hw/i386/pc_q35.c``, ``pc_q35_init``): ``lowmem`` is 0x80000000 (2 GiB) when
    ``ram_size >= 0xB0000000`` (2.75 GiB), else 0xB0000000; ``max-ram-below-4g``
    (default 4 GiB) lowers it. Then the same split: ``-m 2560M`` is all below, ``-m 3G``
    gives 2 GiB below and 1 GiB above.
    """
    family = MachineFamily.of(machine_family)
    if ram_size <= 0:
        raise ConfigError(f"RAM size {ram_size} is not positive", hint="give -m a size")
    if max_ram_below_4g is not None and not 0 < max_ram_below_4g <= FOUR_GIB:
        raise ConfigError(
            f"max-ram-below-4g {max_ram_below_4g:#x} is not in (0, 4 GiB]",
            hint="give at most 4G",
        )
    if family is MachineFamily.PC:
        limit = max_ram_below_4g or 0xE0000000
        lowmem = limit
        if ram_size >= limit:
            lowmem = min(lowmem, 0xC0000000)
    else:
        lowmem = 0x80000000 if ram_size >= 0xB0000000 else 0xB0000000
        if max_ram_below_4g is not None:
            lowmem = min(lowmem, max_ram_below_4g)
    if ram_size >= lowmem:
        return lowmem, ram_size - lowmem
    return ram_size, 0


def ram_layout(
    machine_family: str | MachineFamily,
    ram_size: int,
    *,
    max_ram_below_4g: int | None = None,
) -> list[tuple[int, int]]:
    """The guest-physical RAM regions ``[(base, size), ...]`` of a QEMU 7.2 pc/q35 machine.

    ``[(0, below_4g)]`` and, when RAM does not fit below the split
    (:func:`ram_split`), ``(0x100000000, above_4g)``. (QEMU 7.2 starts the high part at
    1 TiB instead only for AMD CPUs whose RAM would reach the HyperTransport hole below
    1 TiB; :func:`parse_size` caps RAM at 1 TiB, so that never applies here.)
    """
    below, above = ram_split(machine_family, ram_size, max_ram_below_4g=max_ram_below_4g)
    regions = [(0, below)]
    if above:
        regions.append((FOUR_GIB, above))
    return regions


class E820Type(enum.IntEnum):
    """E820 memory types (``hw/i386/e820_memory_layout.h``)."""

    RAM = 1
    RESERVED = 2
    ACPI = 3
    NVS = 4
    UNUSABLE = 5


@dataclass(frozen=True, slots=True)
class E820Entry:
    """One E820 entry, ``struct e820_entry { u64 address; u64 length; u32 type; }``."""

    address: int
    length: int
    type: E820Type

    @property
    def end(self) -> int:
        return self.address + self.length

    def pack(self) -> bytes:
        """The 20 little-endian bytes of ``struct e820_entry`` (QEMU's ``etc/e820``)."""
        return struct.pack("<QQI", self.address, self.length, int(self.type))

    @classmethod
    def unpack(cls, data: bytes, offset: int = 0) -> E820Entry:
        address, length, kind = struct.unpack_from("<QQI", data, offset)
        return cls(address, length, E820Type(kind))


def _reserved_entries(reserved: Iterable[tuple[int, int]]) -> list[E820Entry]:
    return [E820Entry(base, size, E820Type.RESERVED) for base, size in reserved]


def e820_table(
    machine_family: str | MachineFamily,
    ram_size: int,
    *,
    reserved: Iterable[tuple[int, int]] = (),
    max_ram_below_4g: int | None = None,
) -> list[E820Entry]:
    """QEMU 7.2's own E820 table, the one its fw_cfg file ``etc/e820`` carries.

    In QEMU's order of ``e820_add_entry`` calls: the ``reserved`` ranges an accelerator
    asks for while it initialises, before the machine exists (QEMU 7.2 reserves
    0xfeffc000 + 16 KiB that way for one in-kernel hypervisor's identity map and TSS; pass
    such ranges here), then ``pc_memory_init``'s RAM entries: [0, below_4g) and, if any,
    [4 GiB, 4 GiB + above_4g). There is no 640 KiB hole and no BIOS entry in this table:
    the firmware adds those (:func:`firmware_memory_map`).
    """
    entries = _reserved_entries(reserved)
    for base, size in ram_layout(machine_family, ram_size, max_ram_below_4g=max_ram_below_4g):
        entries.append(E820Entry(base, size, E820Type.RAM))
    return entries


def firmware_memory_map(
    machine_family: str | MachineFamily,
    ram_size: int,
    *,
    reserved: Iterable[tuple[int, int]] = (),
    max_ram_below_4g: int | None = None,
) -> list[E820Entry]:
    """The memory map a guest reads through INT 15h E820 on QEMU 7.2 with SeaBIOS, sorted.

    This is what QEMU's multiboot option ROM copies into the Multiboot ``mmap``:
    SeaBIOS starts from ``etc/e820`` (:func:`e820_table`) and carves its own areas:

    * RAM [0, 0x9fc00), reserved [0x9fc00, 0xa0000) (the 1 KiB EBDA; INT 12h says 639);
    * reserved [0xf0000, 0x100000) (the BIOS);
    * RAM [0x100000, below_4g);
    * q35 only: reserved [0xb0000000, 0xc0000000), the 256 MiB PCIe MMCONFIG window
      SeaBIOS maps and reserves (``mch_mem_addr_setup``);
    * the ``reserved`` ranges, as in :func:`e820_table`;
    * reserved [0xfffc0000, 4 GiB) (the top 256 KiB where the BIOS is mapped);
    * RAM [4 GiB, 4 GiB + above_4g), if any.

    Left out: the zone SeaBIOS reserves at the top of low RAM for its own tables (its
    size depends on what SeaBIOS allocated; there is no SeaBIOS here).
    """
    family = MachineFamily.of(machine_family)
    below, above = ram_split(family, ram_size, max_ram_below_4g=max_ram_below_4g)
    entries = [E820Entry(0, min(below, EBDA_START), E820Type.RAM)]
    if below > EBDA_START:
        entries.append(E820Entry(EBDA_START, 0xA0000 - EBDA_START, E820Type.RESERVED))
    entries.append(E820Entry(0xF0000, 0x10000, E820Type.RESERVED))
    if below > MiB:
        entries.append(E820Entry(MiB, below - MiB, E820Type.RAM))
    if family is MachineFamily.Q35:
        entries.append(E820Entry(0xB0000000, 0x10000000, E820Type.RESERVED))
    entries.extend(_reserved_entries(reserved))
    entries.append(E820Entry(0xFFFC0000, 0x40000, E820Type.RESERVED))
    if above:
        entries.append(E820Entry(FOUR_GIB, above, E820Type.RAM))
    entries.sort(key=lambda e: (e.address, e.length))
    return entries


def _mem_lower_upper(memory_map: Sequence[E820Entry]) -> tuple[int, int]:
    """``(mem_lower, mem_upper)`` in KiB as the option ROM computes them.

    ``mem_lower`` is INT 12h's answer (RAM from 0 up to the EBDA), ``mem_upper`` the RAM
    contiguous from 1 MiB up to the first hole, from the map.
    """
    lower = 0
    for entry in memory_map:
        if entry.type is E820Type.RAM and entry.address == 0:
            lower = min(entry.length, 0xA0000) // KiB
    end = MiB
    grown = True
    while grown:
        grown = False
        for entry in memory_map:
            if entry.type is E820Type.RAM and entry.address <= end < entry.end:
                end = entry.end
                grown = True
    return lower, (min(end, FOUR_GIB) - MiB) // KiB


# --------------------------------------------------------------------------- header


@dataclass(frozen=True, slots=True)
class MultibootHeader:
    """The Multiboot header found in a kernel file.

    ``offset`` is its position in the file; the address fields are meaningful only when
    :attr:`aout_kludge` (flag 16) is set.
    """

    offset: int
    flags: int
    header_addr: int = 0
    load_addr: int = 0
    load_end_addr: int = 0
    bss_end_addr: int = 0
    entry_addr: int = 0

    @property
    def page_align(self) -> bool:
        """Flag 0: modules must be page aligned (QEMU always aligns them)."""
        return bool(self.flags & HEADER_FLAG_PAGE_ALIGN)

    @property
    def memory_info(self) -> bool:
        """Flag 1: the kernel wants mem_lower/mem_upper and the memory map (always given)."""
        return bool(self.flags & HEADER_FLAG_MEMORY_INFO)

    @property
    def video_mode(self) -> bool:
        """Flag 2: the kernel asks for a video mode (QEMU ignores it: "we don't")."""
        return bool(self.flags & HEADER_FLAG_VIDEO)

    @property
    def aout_kludge(self) -> bool:
        """Flag 16: load by the header's addresses instead of the ELF program headers."""
        return bool(self.flags & HEADER_FLAG_AOUT_KLUDGE)


_NO_HEADER_HINT = (
    "is this a Multiboot (v1) kernel? Its header (magic 0x1BADB002, flags, checksum) must "
    "be 4-byte aligned within the first 8192 bytes; a Multiboot2 or PVH kernel is not one"
)


def find_header(data: bytes, name: str = "kernel") -> MultibootHeader:
    """The Multiboot header in ``data`` (the file's first 8192 bytes), as QEMU finds it.

    The first 4-byte aligned offset below 8192 - 48 holding the magic whose checksum adds
    up; a magic with a bad checksum is skipped (QEMU keeps looking). Raises
    :class:`ConfigError` naming ``name`` when there is none.
    """
    if len(data) < 12:
        raise ConfigError(
            f"{name} is too small ({len(data)} bytes) to hold a Multiboot header",
            hint=_NO_HEADER_HINT,
            file=name,
        )
    bad_checksum: int | None = None
    window = bytes(data[:HEADER_SEARCH]).ljust(HEADER_SEARCH, b"\0")
    for offset in range(0, HEADER_SEARCH - HEADER_SIZE, 4):
        magic, flags, checksum = struct.unpack_from("<III", window, offset)
        if magic != HEADER_MAGIC:
            continue
        if (magic + flags + checksum) & 0xFFFFFFFF:
            if bad_checksum is None:
                bad_checksum = offset
            continue
        return MultibootHeader(offset, flags, *struct.unpack_from("<5I", window, offset + 12))
    if bad_checksum is not None:
        raise ConfigError(
            f"{name}: the Multiboot header at offset {bad_checksum:#x} has a bad checksum "
            "(magic + flags + checksum is not 0 modulo 2**32)",
            hint="the kernel is damaged or was built wrongly; rebuild it",
            file=name,
        )
    raise ConfigError(
        f"{name} has no Multiboot header in its first 8192 bytes", hint=_NO_HEADER_HINT, file=name
    )


# --------------------------------------------------------------------------- plan


@dataclass(frozen=True, slots=True)
class Module:
    """One Multiboot module (an ``-initrd`` file): where it is and its string."""

    start: int
    end: int
    string: str
    string_address: int


@dataclass(frozen=True, slots=True)
class BootPlan:
    """Everything a machine applies to boot a Multiboot kernel, on any accelerator.

    ``writes`` are ``(guest physical address, bytes)`` pairs in order (kernel segments
    with their zero-filled bss, the module structures, strings and modules, the memory
    map, the info structure, the GDT); apply them with ``vm.write_memory`` over RAM laid
    out as ``ram`` says. Then load :func:`flat32_sregs` and :func:`flat32_registers`
    (EAX = ``eax``, EBX = ``ebx``, EIP = ``entry``) into the boot vCPU.

    ``e820`` is QEMU's ``etc/e820`` table for fw_cfg; ``memory_map`` the one given to the
    kernel in the info structure. ``kernel_address``/``kernel_size``/``kernel_data`` and
    ``info`` are what QEMU hands its option ROM through fw_cfg (FW_CFG_KERNEL_ADDR, _SIZE,
    _DATA, FW_CFG_INITRD_ADDR/_DATA): see :meth:`accel.machine.fw_cfg.FwCfg.for_multiboot`.
    """

    entry: int
    eax: int
    ebx: int
    info_address: int
    mmap_address: int
    gdt_address: int
    writes: tuple[tuple[int, bytes], ...]
    header: MultibootHeader
    kernel_address: int
    kernel_end: int
    kernel_size: int
    modules: tuple[Module, ...]
    cmdline: str
    bootloader_name: str
    info: bytes
    mem_lower: int
    mem_upper: int
    ram: tuple[tuple[int, int], ...]
    e820: tuple[E820Entry, ...]
    memory_map: tuple[E820Entry, ...]
    segments: tuple[tuple[int, int, int], ...] = field(default=())

    @property
    def kernel_data(self) -> bytes:
        """QEMU's ``mb_buf``: kernel, module structures, strings and modules, contiguous.

        ``kernel_size`` bytes from ``kernel_address`` (FW_CFG_KERNEL_DATA).
        """
        buf = bytearray(self.kernel_size)
        lo, hi = self.kernel_address, self.kernel_address + self.kernel_size
        for address, data in self.writes:
            if lo <= address and address + len(data) <= hi:
                buf[address - lo : address - lo + len(data)] = data
        return bytes(buf)


def parse_initrd(text: str) -> list[str]:
    """The module specifications in ``-initrd TEXT``, split as QEMU's ``get_opt_value``.

    Modules are separated by ``,``; ``,,`` stands for a literal comma; a trailing comma
    adds nothing, and an empty text no module. Each item is a file name, optionally
    followed by a space and the module's arguments.
    """
    items: list[str] = []
    i = 0
    while i < len(text):  # QEMU: while (*r) { r = get_opt_value(r, &value); if (*r) r++; }
        current: list[str] = []
        while i < len(text):
            if text[i] == ",":
                if text[i + 1 : i + 2] != ",":
                    break
                i += 1  # ",," is a literal comma
            current.append(text[i])
            i += 1
        items.append("".join(current))
        i += 1  # past the separator
    return items


def _fits(name: str, what: str, start: int, end: int, below_4g: int, hint: str) -> None:
    if end > below_4g:
        raise ConfigError(
            f"{name}: {what} {start:#x}..{end:#x} does not fit in RAM below {below_4g:#x}",
            hint=hint,
            file=name,
        )
    if start < LEGACY_HOLE[1] and end > LEGACY_HOLE[0]:
        raise ConfigError(
            f"{name}: {what} {start:#x}..{end:#x} overlaps the legacy window "
            f"{LEGACY_HOLE[0]:#x}..{LEGACY_HOLE[1]:#x}, which is not RAM",
            hint="link the kernel at 1 MiB or above, or below 640 KiB",
            file=name,
        )


def _open(path: str, what: str) -> BinaryIO:
    """``path`` opened to read, refused unless it is a regular file (a FIFO, a device
    such as /dev/zero or a directory is named and refused; opening never waits), so every
    read is bounded by the file's size, which callers check against guest RAM first."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as exc:
        raise ConfigError(
            f"cannot open {what} {path!r}: {exc.strerror}",
            hint="check the file name and its permissions",
            file=path,
        ) from None
    try:
        refuse_kind(path, os.fstat(fd), what, ConfigError, f"give the {what} as a regular file")
    except BaseException:
        os.close(fd)
        raise
    return open(fd, "rb")


def _file_size(f: BinaryIO, path: str, what: str) -> int:
    try:
        return os.fstat(f.fileno()).st_size
    except OSError as exc:  # pragma: no cover - fstat of an open file
        raise ConfigError(f"cannot read {what} {path!r}: {exc.strerror}", file=path) from None


def _read_at(f: BinaryIO, path: str, offset: int, size: int) -> bytes:
    try:
        f.seek(offset)
        data = f.read(size)
    except OSError as exc:
        raise ConfigError(f"cannot read {path!r}: {exc.strerror}", file=path) from None
    if len(data) != size:
        raise ConfigError(
            f"{path}: the file ends at {offset + len(data):#x}, before the "
            f"{size:#x} bytes at offset {offset:#x} the kernel says to load",
            hint="the kernel file is truncated or its header is wrong",
            file=path,
        )
    return data


def _load_aout(name: str, header: MultibootHeader, file_size: int) -> tuple[int, int, int, int]:
    """``(load_addr, load_size, kernel_size, file_offset)`` for the a.out kludge, checked
    as QEMU checks it."""
    h = header
    if h.header_addr < h.load_addr:
        raise ConfigError(
            f"{name}: invalid load_addr {h.load_addr:#x} (above header_addr {h.header_addr:#x})",
            hint="the a.out kludge fields of the Multiboot header are inconsistent",
            file=name,
        )
    if h.header_addr - h.load_addr > h.offset:
        raise ConfigError(
            f"{name}: invalid header_addr {h.header_addr:#x}: the load would start before "
            "the file does",
            hint="header_addr - load_addr must not exceed the header's offset in the file",
            file=name,
        )
    text_offset = h.offset - (h.header_addr - h.load_addr)
    if h.load_end_addr:
        if h.load_end_addr < h.load_addr:
            raise ConfigError(
                f"{name}: invalid load_end_addr {h.load_end_addr:#x} (below load_addr)",
                hint="load_end_addr is 0 (the whole file) or above load_addr",
                file=name,
            )
        load_size = h.load_end_addr - h.load_addr
    else:
        load_size = file_size - text_offset
    if load_size > 0xFFFFFFFF - h.load_addr:
        raise ConfigError(
            f"{name}: the kernel does not fit in the 32-bit address space",
            hint="check load_addr and load_end_addr",
            file=name,
        )
    if h.bss_end_addr:
        if h.bss_end_addr < h.load_addr + load_size:
            raise ConfigError(
                f"{name}: invalid bss_end_addr {h.bss_end_addr:#x} (below the loaded end "
                f"{h.load_addr + load_size:#x})",
                hint="bss_end_addr is 0 (no bss) or at least load_end_addr",
                file=name,
            )
        kernel_size = h.bss_end_addr - h.load_addr
    else:
        kernel_size = load_size
    if text_offset + load_size > file_size:
        raise ConfigError(
            f"{name}: the header says to load {load_size:#x} bytes from offset "
            f"{text_offset:#x}, but the file has {file_size:#x}",
            hint="the kernel file is truncated or load_end_addr is wrong",
            file=name,
        )
    return h.load_addr, load_size, kernel_size, text_offset


def _load_elf(
    f: BinaryIO, name: str, file_size: int
) -> tuple[list[tuple[int, int, int, int]], int]:
    """``[(paddr, filesz, memsz, offset)]`` of the PT_LOAD segments and the entry."""
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    f.seek(0)
    if f.read(4) != b"\x7fELF":
        raise ConfigError(
            f"{name}: has a Multiboot header without the a.out kludge (flag 16) but is not "
            "an ELF file",
            hint="a non-ELF Multiboot kernel must set flag 16 and the address fields",
            file=name,
        )
    try:
        elf = ELFFile(f)
        machine = elf["e_machine"]
        if machine not in ("EM_386", "EM_X86_64", "EM_486"):
            raise ConfigError(
                f"{name}: is an ELF file for {machine}, not x86",
                hint="build the kernel for i386 or x86-64",
                file=name,
            )
        entry = int(elf["e_entry"])
        segments: list[tuple[int, int, int, int]] = []
        for seg in elf.iter_segments():
            if seg["p_type"] != "PT_LOAD" or seg["p_memsz"] == 0:
                continue
            paddr, filesz, memsz = int(seg["p_paddr"]), int(seg["p_filesz"]), int(seg["p_memsz"])
            offset = int(seg["p_offset"])
            if filesz > memsz:
                raise ConfigError(
                    f"{name}: a PT_LOAD segment at {paddr:#x} has p_filesz {filesz:#x} "
                    f"larger than p_memsz {memsz:#x}",
                    hint="the ELF file is damaged",
                    file=name,
                )
            if offset + filesz > file_size:
                raise ConfigError(
                    f"{name}: the PT_LOAD segment at {paddr:#x} ends at file offset "
                    f"{offset + filesz:#x}, beyond the file's {file_size:#x} bytes",
                    hint="the ELF file is truncated",
                    file=name,
                )
            segments.append((paddr, filesz, memsz, offset))
    except ELFError as exc:
        raise ConfigError(
            f"{name}: is not a valid ELF file: {exc}",
            hint="the kernel is damaged or not an ELF image",
            file=name,
        ) from None
    except (struct.error, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(
            f"{name}: the ELF headers are truncated or damaged ({exc})",
            hint="the kernel file is damaged",
            file=name,
        ) from None
    if not segments:
        raise ConfigError(
            f"{name}: the ELF file has no PT_LOAD segment to load",
            hint="link the kernel with a loadable segment",
            file=name,
        )
    return segments, entry


def load_multiboot(
    kernel: str | os.PathLike[str],
    *,
    ram_size: int,
    cmdline: str = "",
    initrd: str | Sequence[str] | None = None,
    machine: str | MachineFamily = "pc",
    reserved: Iterable[tuple[int, int]] = (),
    max_ram_below_4g: int | None = None,
    bootloader_name: str = DEFAULT_BOOTLOADER_NAME,
) -> BootPlan:
    """The :class:`BootPlan` for ``-kernel KERNEL -append CMDLINE -initrd INITRD -m RAM``.

    ``kernel`` is the file name as the user gave it (QEMU passes it to the kernel as the
    first word of the command line). ``initrd`` is ``-initrd``'s text (``"a.img arg,b.img"``,
    split by :func:`parse_initrd`) or a list of module specifications already split.
    ``reserved`` ranges are added to the E820 tables (see :func:`e820_table`).

    Raises :class:`ConfigError` (naming the file and the problem) for a missing or bad
    header, a damaged ELF file, a kernel larger than RAM (before reading it), a segment
    outside RAM below the 4 GiB split or in the legacy window, or a module that does not
    fit.
    """
    name = os.fspath(kernel)
    family = MachineFamily.of(machine)
    reserved = tuple(reserved)
    ram = ram_layout(family, ram_size, max_ram_below_4g=max_ram_below_4g)
    below_4g = ram[0][1]
    ram_hint = "give the guest more RAM (-m) or use a smaller kernel"

    with _open(name, "kernel") as f:
        file_size = _file_size(f, name, "kernel")
        if file_size > ram_size:
            raise ConfigError(
                f"kernel {name!r} ({file_size} bytes) is larger than guest RAM ({ram_size} bytes)",
                hint=ram_hint,
                file=name,
            )
        head = _read_at(f, name, 0, min(file_size, HEADER_SEARCH))
        if head[0x202:0x206] == b"HdrS":
            # QEMU checks the Linux boot protocol's "HdrS" first and boots such a file
            # as Linux (x86_load_linux), whatever Multiboot header it may also carry.
            raise ConfigError(
                f"{name} is a Linux kernel (boot protocol header 'HdrS' at 0x202), not a "
                "Multiboot kernel",
                hint="this loader boots Multiboot (v1) kernels only; Linux's boot protocol "
                "is not supported yet",
                file=name,
            )
        header = find_header(head, name)
        writes: list[tuple[int, bytes]] = []
        if header.aout_kludge:
            load_addr, load_size, mem_size, text_offset = _load_aout(name, header, file_size)
            entry = header.entry_addr
            _fits(name, "the kernel", load_addr, load_addr + mem_size, below_4g, ram_hint)
            data = _read_at(f, name, text_offset, load_size)
            writes.append((load_addr, data + bytes(mem_size - load_size)))
            segments = [(load_addr, load_size, mem_size)]
        else:
            elf_segs, entry = _load_elf(f, name, file_size)
            segments = []
            for paddr, filesz, memsz, offset in elf_segs:
                _fits(name, "the segment", paddr, paddr + memsz, below_4g, ram_hint)
                data = _read_at(f, name, offset, filesz)
                writes.append((paddr, data + bytes(memsz - filesz)))
                segments.append((paddr, filesz, memsz))

    if not 0 <= entry < FOUR_GIB:
        raise ConfigError(
            f"{name}: the entry point {entry:#x} is not a 32-bit address",
            hint="Multiboot enters the kernel in 32-bit protected mode; give a physical "
            "entry below 4 GiB (e_entry, or the a.out kludge's entry_addr)",
            file=name,
        )
    kernel_lo = min(s[0] for s in segments)
    kernel_hi = max(s[0] + s[2] for s in segments)
    for i, (a, _, am) in enumerate(segments):
        for b, _, bm in segments[i + 1 :]:
            if a < b + bm and b < a + am:
                raise ConfigError(
                    f"{name}: loadable segments at {a:#x} and {b:#x} overlap",
                    hint="the ELF file is damaged or linked wrongly",
                    file=name,
                )

    # QEMU's mb_buf after the kernel: module structures, module strings, the kernel
    # command line, the boot loader name, page aligned; then each module, page aligned.
    specs = parse_initrd(initrd) if isinstance(initrd, str) else list(initrd or ())
    initrd_text_len = 0  # QEMU counts the whole -initrd text (plus its NUL) when given
    if isinstance(initrd, str):
        initrd_text_len = len(initrd.encode()) + 1
    elif specs:
        initrd_text_len = len(",".join(specs).encode()) + 1
    kernel_cmdline = f"{name} {cmdline}"
    cmdline_len = len(name.encode()) + 1 + len(cmdline.encode()) + 1 + initrd_text_len
    mods_offset = _page_align(kernel_hi - kernel_lo)
    strings_offset = mods_offset + 16 * len(specs)
    loader_offset = strings_offset + cmdline_len
    buf_size = _page_align(loader_offset + len(bootloader_name.encode()) + 1)

    # Module strings first, then the kernel command line (mb_add_cmdline's order).
    strings = bytearray()
    string_addresses = []
    for spec in specs:
        string_addresses.append(kernel_lo + strings_offset + len(strings))
        strings += spec.encode() + b"\0"
    cmdline_address = kernel_lo + strings_offset + len(strings)
    strings += kernel_cmdline.encode() + b"\0"
    loader_address = kernel_lo + loader_offset
    tail_address = kernel_lo + mods_offset
    _fits(name, "the boot information", tail_address, kernel_lo + buf_size, below_4g, ram_hint)

    module_list: list[Module] = []
    module_writes: list[tuple[int, bytes]] = []
    for spec, string_address in zip(specs, string_addresses, strict=True):
        path = spec.split(" ", 1)[0]
        with _open(path, "initrd") as m:
            size = _file_size(m, path, "initrd")
            start = kernel_lo + buf_size
            _fits(path, "the module", start, start + size, below_4g, "give the guest more RAM (-m)")
            module_writes.append((start, _read_at(m, path, 0, size)))
        module_list.append(Module(start, start + size, spec, string_address))
        buf_size = _page_align(buf_size + size)

    tail = bytearray(loader_offset + len(bootloader_name.encode()) + 1 - mods_offset)
    for i, mod in enumerate(module_list):
        struct.pack_into("<IIII", tail, 16 * i, mod.start, mod.end, mod.string_address, 0)
    at = strings_offset - mods_offset
    tail[at : at + len(strings)] = strings
    at = loader_offset - mods_offset
    tail[at:] = bootloader_name.encode() + b"\0"
    writes.append((tail_address, bytes(tail)))
    writes.extend(module_writes)

    # The memory map, the info structure and the GDT: at QEMU's fixed 0x9000/0x9500, or
    # after everything else when the kernel's buffer (kernel, strings, modules: what
    # QEMU's option ROM copies from kernel_address on) covers them.
    e820 = tuple(e820_table(family, ram_size, reserved=reserved, max_ram_below_4g=max_ram_below_4g))
    memory_map = tuple(
        firmware_memory_map(family, ram_size, reserved=reserved, max_ram_below_4g=max_ram_below_4g)
    )
    mmap_bytes = b"".join(struct.pack("<I", 20) + e.pack() for e in memory_map)
    if len(mmap_bytes) > MMAP_ROOM:
        raise ConfigError(
            f"the memory map has {len(memory_map)} entries, more than the "
            f"{MMAP_ROOM // MMAP_ENTRY_SIZE} that fit before the info structure",
            hint="pass fewer reserved ranges",
        )
    mmap_address = MMAP_ADDRESS
    area_end = INFO_ADDRESS + INFO_SIZE + GDT_SIZE
    if kernel_lo < area_end and mmap_address < kernel_lo + buf_size:
        mmap_address = kernel_lo + buf_size
        _fits(name, "the boot information", mmap_address, mmap_address + 0x1000, below_4g, ram_hint)
    info_address = mmap_address + MMAP_ROOM
    gdt_address = info_address + GDT_OFFSET

    mem_lower, mem_upper = _mem_lower_upper(memory_map)
    info = bytearray(INFO_SIZE)
    struct.pack_into(
        "<IIIIIII",
        info,
        0,
        INFO_FLAGS,
        mem_lower,
        mem_upper,
        BOOT_DEVICE,
        cmdline_address,
        len(module_list),
        tail_address,
    )
    struct.pack_into("<II", info, 44, len(mmap_bytes), mmap_address)
    struct.pack_into("<I", info, 64, loader_address)
    writes.append((mmap_address, mmap_bytes))
    writes.append((info_address, bytes(info)))
    writes.append((gdt_address, GDT_BYTES))

    return BootPlan(
        entry=entry,
        eax=BOOTLOADER_MAGIC,
        ebx=info_address,
        info_address=info_address,
        mmap_address=mmap_address,
        gdt_address=gdt_address,
        writes=tuple(writes),
        header=header,
        kernel_address=kernel_lo,
        kernel_end=kernel_hi,
        kernel_size=buf_size,
        modules=tuple(module_list),
        cmdline=kernel_cmdline,
        bootloader_name=bootloader_name,
        info=bytes(info),
        mem_lower=mem_lower,
        mem_upper=mem_upper,
        ram=tuple(ram),
        e820=e820,
        memory_map=memory_map,
        segments=tuple(segments),
    )


# --------------------------------------------------------------------------- registers


def _flat(selector: int, type_: int) -> Segment:
    return Segment(
        base=0, limit=0xFFFFFFFF, selector=selector, type=type_, present=1, dpl=0, db=1, s=1,
        l=0, g=1, avl=0, unusable=0,
    )  # fmt: skip


def flat32_sregs(
    base: SpecialRegisters | None = None, *, gdt_base: int = INFO_ADDRESS + GDT_OFFSET
) -> SpecialRegisters:
    """``base`` (or a reset-state set) changed to the Multiboot hand-over state.

    32-bit flat protected mode as QEMU's multiboot option ROM leaves it: CS = 0x08 (code,
    base 0, limit 4 GiB, 32-bit, accessed), DS/ES/FS/GS/SS = 0x10 (data, read/write,
    accessed, same base and limit), GDTR = the plan's GDT (``plan.gdt_address``, limit
    0x27), IDTR = the real-mode IVT (0, 0x3ff), CR0 = PE | ET (0x11: paging off, CD and
    NW clear), CR3 = CR4 = EFER = 0. The APIC base and TR/LDT are kept from ``base``.
    """
    sregs = base if base is not None else SpecialRegisters()
    sregs.cs = _flat(CODE_SELECTOR, 0xB)
    for name in ("ds", "es", "fs", "gs", "ss"):
        setattr(sregs, name, _flat(DATA_SELECTOR, 0x3))
    sregs.gdt = DescriptorTable(base=gdt_base, limit=len(GDT_BYTES) - 1)
    sregs.idt = DescriptorTable(base=0, limit=0x3FF)
    sregs.cr0 = 0x11
    sregs.cr2 = 0
    sregs.cr3 = 0
    sregs.cr4 = 0
    sregs.efer = 0
    return sregs


@dataclass(frozen=True, slots=True)
class LegacyFirmware:
    """What :func:`legacy_firmware` gives: RAM writes, a real-mode set-up routine at
    ``cs:ip`` to run first, and the port its last instruction writes (``done_port``)."""

    writes: tuple[tuple[int, bytes], ...]
    cs: int
    ip: int
    done_port: int


#: The BIOS segment the stubs live in (0xF0000..0x100000 is reserved in the memory map).
FIRMWARE_SEGMENT = 0xF000
#: The port the set-up routine writes when it is done (POST codes; no device there).
FIRMWARE_DONE_PORT = 0x80
#: Real-mode set-up, as SeaBIOS leaves the chipset before an option ROM runs: both i8259
#: PICs initialised (ICW1 0x11, vector bases 0x08 and 0x70, cascade on IRQ 2, 8086 mode),
#: everything masked but IRQ 0 and the cascade, PIT channel 0 in mode 2 with count 0
#: (18.2 Hz); then ``out %al, $0x80`` and ``hlt``.
_FIRMWARE_INIT = bytes.fromhex(
    "fab011e620e6a0b008e621b070e6a1b004e621b002e6a1b001e621e6a1b0fae621b0ffe6a1"
    "b034e64330c0e640e640e680f4ebfd"
)
#: IRQ 0-7 handler: EOI to the master PIC, IRET. IRQ 8-15: EOI to both. Others: IRET.
_FIRMWARE_IRQ_MASTER = bytes.fromhex("50b020e62058cf")
_FIRMWARE_IRQ_SLAVE = bytes.fromhex("50b020e6a0e62058cf")
_FIRMWARE_IRET = bytes.fromhex("cf")


def legacy_firmware() -> LegacyFirmware:
    """The real-mode state QEMU 7.2's firmware (SeaBIOS) leaves for a ``-kernel`` boot,
    reduced to what test kernels rely on.

    A kernel that returns to real mode (kvm-unit-tests' ``realmode.flat``) and waits with
    ``sti; hlt`` relies on the timer SeaBIOS started: the PICs initialised (vectors 0x08
    and 0x70, IRQ 0 unmasked), PIT channel 0 at 18.2 Hz, and an interrupt vector table
    whose hardware-interrupt entries acknowledge the PIC and return. There is no SeaBIOS
    here; this gives a machine those pieces: the IVT at 0 (IRQ 0-7 at 0x08-0x0f and IRQ
    8-15 at 0x70-0x77 to EOI-and-IRET stubs, every other vector to an IRET) and the
    stubs in the BIOS segment 0xF000 (reserved in the memory map), and a set-up routine
    at F000:0100 that programs the PICs and the PIT through their ports and ends by
    writing :data:`FIRMWARE_DONE_PORT`. The machine runs the routine on the boot vCPU
    before it loads the Multiboot hand-over state (kernels that mask the PIC, as
    kvm-unit-tests' 64-bit start does, see no difference).
    """
    base = FIRMWARE_SEGMENT << 4
    master, slave, iret, init = 0x0200, 0x0210, 0x0220, 0x0100
    ivt = bytearray()
    for vector in range(256):
        if 0x08 <= vector <= 0x0F:
            offset = master
        elif 0x70 <= vector <= 0x77:
            offset = slave
        else:
            offset = iret
        ivt += struct.pack("<HH", offset, FIRMWARE_SEGMENT)
    writes = (
        (0, bytes(ivt)),
        (base + init, _FIRMWARE_INIT),
        (base + master, _FIRMWARE_IRQ_MASTER),
        (base + slave, _FIRMWARE_IRQ_SLAVE),
        (base + iret, _FIRMWARE_IRET),
    )
    return LegacyFirmware(writes, FIRMWARE_SEGMENT, init, FIRMWARE_DONE_PORT)


def flat32_registers(plan: BootPlan) -> Registers:
    """The general registers at the kernel's entry: EAX = 0x2BADB002, EBX = the info.

    EIP = the entry point, ECX = the entry too (the option ROM jumps through ECX),
    EFLAGS = 0x2 (interrupts off, direction up); the others are 0.
    """
    return Registers(rax=plan.eax, rbx=plan.ebx, rcx=plan.entry, rip=plan.entry, rflags=0x2)
