"""QEMU's firmware configuration device (fw_cfg) on I/O ports 0x510-0x51b, as a plain model.

:class:`FwCfg` holds the items (numbered keys and named files) and answers the guest's
port accesses; :func:`build_fw_cfg` and :meth:`FwCfg.for_multiboot` fill it the way a
QEMU 7.2 pc/q35 machine does for ``-kernel``. It is independent of the machine and of
any accelerator: the machine forwards :class:`~accel.PortIoExit` accesses to
:meth:`FwCfg.read_port` / :meth:`FwCfg.write_port`, and gives DMA a :class:`GuestMemory`
(anything with ``read(address, size) -> bytes`` and ``write(address, data)``, such as an
accelerator's VM).

It follows QEMU 7.2's ``hw/nvram/fw_cfg.c`` (the I/O-port flavour, ``fw_cfg_io``):

* port 0x510, 16-bit write: select an item (``fw_cfg_select``): the offset goes back to
  0; a key whose index (``key & ~0xc000``) is not below ``FW_CFG_FILE_FIRST +
  file_slots`` (0x40) selects nothing. Bit 0x8000 picks the architecture-local items.
* port 0x510 or 0x511, 8-bit read: the next byte of the selected item, 0 past its end or
  with nothing selected (``fw_cfg_data_read``). 8-bit writes are ignored ("write
  support removed in QEMU v2.4+"), as are accesses of other sizes (reads give 0).
* ports 0x514 (high half) and 0x518 (low half), 32-bit writes: the guest-physical address
  of a ``FWCfgDmaAccess`` (``be32 control, be32 length, be64 address``), big-endian on
  the bus; writing the low half runs the transfer (``fw_cfg_dma_transfer``): SELECT
  (bit 3, key in control's top 16 bits), then READ (bit 1) copies item bytes to guest
  memory (zeros past the end), SKIP (bit 2) advances, WRITE (bit 4) stores into a
  writable item (a read-only one, or a write past its end, sets ERROR); an access the
  guest memory refuses sets ERROR (bit 0); the device then writes the control word back
  (0 or ERROR). Reads of 0x514..0x51b give the signature "QEMU CFG".
* the items every QEMU 7.2 machine has (``fw_cfg_common_realize``, ``fw_cfg_init1``):
  SIGNATURE "QEMU", ID (bit 0 traditional interface, bit 1 DMA), UUID, NOGRAPHIC,
  BOOT_MENU, FILE_DIR (``be32 count``, then ``{be32 size, be16 select, be16 reserved,
  char name[56]}`` per file, sorted by name, selects from 0x20 on) and the file
  ``etc/boot-fail-wait``; and the pc ones (``hw/i386/fw_cfg.c``, ``fw_cfg_arch_create``):
  NB_CPUS, MAX_CPUS, RAM_SIZE, IRQ0_OVERRIDE, the legacy E820_TABLE (reserved entries
  only; a 7.2-era item that QEMU's current sources no longer add), NUMA and the file
  ``etc/e820``. Integers are little-endian, as
  ``fw_cfg_add_i16/i32/i64`` store them.

kvm-unit-tests (``lib/x86/fwcfg.c``) reads FW_CFG_NB_CPUS (16-bit) through ports 0x510 and
0x511 byte by byte; FW_CFG_RAM_SIZE only when its MEMSIZE override is absent; its
"FW_CFG_MAX_RAM" is not a QEMU key (on QEMU it reads whatever that index holds, which
under a Multiboot boot is FW_CFG_KERNEL_ENTRY). Left out here: ACPI tables, SMBIOS, HPET
and option-ROM files (the machine adds them with ``items``/``files`` if it builds them).

Example::

    fw = FwCfg.for_multiboot(plan, cpus=2, memory=vm)
    fw.write_port(0x510, 2, Key.NB_CPUS)
    ncpus = fw.read_port(0x511, 1) | fw.read_port(0x511, 1) << 8
"""

from __future__ import annotations

import contextlib
import enum
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from accel.errors import ConfigError, GuestMemoryError

if TYPE_CHECKING:
    from .multiboot import BootPlan, E820Entry

__all__ = [
    "CTL_PORT",
    "DATA_PORT",
    "DMA_PORT",
    "DMA_SIGNATURE",
    "DmaControl",
    "FileEntry",
    "FwCfg",
    "GuestMemory",
    "Key",
    "build_fw_cfg",
]

#: The selector (16-bit write) and data (8-bit read) ports, and the DMA address ports.
CTL_PORT = 0x510
DATA_PORT = 0x511
DMA_PORT = 0x514
DMA_PORT_LOW = DMA_PORT + 4
DMA_PORT_END = DMA_PORT + 8
#: What the DMA ports read as, big-endian: "QEMU CFG".
DMA_SIGNATURE = b"QEMU CFG"

WRITE_CHANNEL = 0x4000
ARCH_LOCAL = 0x8000
ENTRY_MASK = ~(WRITE_CHANNEL | ARCH_LOCAL) & 0xFFFF
INVALID = 0xFFFF
#: QEMU 7.2's default number of file slots (``x-file-slots``, FW_CFG_FILE_SLOTS_DFLT).
FILE_SLOTS = 0x20
FILE_NAME_SIZE = 56
#: Entries in the legacy E820_TABLE item (E820_NR_ENTRIES).
LEGACY_E820_ENTRIES = 16


class Key(enum.IntEnum):
    """fw_cfg item keys (``include/standard-headers/linux/qemu_fw_cfg.h``, ``fw_cfg.h``)."""

    SIGNATURE = 0x00
    ID = 0x01
    UUID = 0x02
    RAM_SIZE = 0x03
    NOGRAPHIC = 0x04
    NB_CPUS = 0x05
    MACHINE_ID = 0x06
    KERNEL_ADDR = 0x07
    KERNEL_SIZE = 0x08
    KERNEL_CMDLINE = 0x09
    INITRD_ADDR = 0x0A
    INITRD_SIZE = 0x0B
    BOOT_DEVICE = 0x0C
    NUMA = 0x0D
    BOOT_MENU = 0x0E
    MAX_CPUS = 0x0F
    KERNEL_ENTRY = 0x10
    KERNEL_DATA = 0x11
    INITRD_DATA = 0x12
    CMDLINE_ADDR = 0x13
    CMDLINE_SIZE = 0x14
    CMDLINE_DATA = 0x15
    SETUP_ADDR = 0x16
    SETUP_SIZE = 0x17
    SETUP_DATA = 0x18
    FILE_DIR = 0x19
    FILE_FIRST = 0x20
    #: Architecture-local (x86) keys: FW_CFG_ARCH_LOCAL + n.
    ACPI_TABLES = 0x8000
    SMBIOS_ENTRIES = 0x8001
    IRQ0_OVERRIDE = 0x8002
    E820_TABLE = 0x8003
    HPET = 0x8004


class DmaControl(enum.IntFlag):
    """``FWCfgDmaAccess.control`` bits."""

    ERROR = 0x01
    READ = 0x02
    SKIP = 0x04
    SELECT = 0x08
    WRITE = 0x10


class GuestMemory(Protocol):
    """Guest-physical memory as DMA sees it (an accelerator's VM fits).

    Both raise :class:`accel.errors.GuestMemoryError` for an address that is not guest
    RAM; the device turns that into the ERROR bit.
    """

    def read(self, address: int, size: int) -> bytes: ...

    def write(self, address: int, data: bytes) -> None: ...


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One FILE_DIR entry: the file's name, its select key and size."""

    name: str
    select: int
    size: int


def _u16(value: int) -> bytes:
    return struct.pack("<H", value)


def _u32(value: int) -> bytes:
    return struct.pack("<I", value & 0xFFFFFFFF)


def _u64(value: int) -> bytes:
    return struct.pack("<Q", value)


class _Item:
    __slots__ = ("data", "writable")

    def __init__(self, data: bytes, writable: bool) -> None:
        self.data = bytearray(data)
        self.writable = writable


class FwCfg:
    """The fw_cfg device: items, the current selection and offset, the DMA address.

    ``items`` maps keys (0x00..0x1f and 0x8000.., not FILE_DIR or file keys) to their
    bytes; ``files`` maps names (at most 55 bytes) to bytes, ``writable_files`` names
    those the guest may write through DMA. SIGNATURE, ID and FILE_DIR are made here.
    DMA is offered (ID bit 1, ports 0x514-0x51b) when ``memory`` is given.
    """

    def __init__(
        self,
        items: Mapping[int, bytes] | None = None,
        files: Mapping[str, bytes] | None = None,
        *,
        writable_files: Iterable[str] = (),
        memory: GuestMemory | None = None,
        file_slots: int = FILE_SLOTS,
    ) -> None:
        self._memory = memory
        self._max_entry = Key.FILE_FIRST + file_slots
        self._items: dict[int, _Item] = {}
        self._selected = INVALID
        self._offset = 0
        self._dma_address = 0
        files = dict(files or {})
        writable = set(writable_files)
        unknown = writable - set(files)
        if unknown:
            raise ConfigError(
                f"fw_cfg: writable file {sorted(unknown)[0]!r} is not among the files",
                hint="name only files that are given",
            )
        if len(files) > file_slots:
            raise ConfigError(
                f"fw_cfg: {len(files)} files do not fit in {file_slots} file slots",
                hint="add fewer files or raise file_slots",
            )
        for key, data in (items or {}).items():
            index = key & ENTRY_MASK
            if (
                not 0 <= key <= 0xFFFF
                or key & WRITE_CHANNEL
                or index >= self._max_entry
                or (not key & ARCH_LOCAL and index >= Key.FILE_DIR)
            ):
                raise ConfigError(
                    f"fw_cfg: key {key:#06x} is not an item key",
                    hint="use a Key below FILE_DIR (0x19) or an architecture-local key",
                    key=key,
                )
            self._items[key & ~WRITE_CHANNEL] = _Item(bytes(data), False)
        self._items[Key.SIGNATURE] = _Item(b"QEMU", False)
        self._items[Key.ID] = _Item(_u32(1 | (2 if memory is not None else 0)), False)
        directory = bytearray(struct.pack(">I", len(files)))
        entries: list[FileEntry] = []
        for index, name in enumerate(sorted(files, key=lambda n: n.encode())):
            raw = name.encode()
            if not raw or len(raw) >= FILE_NAME_SIZE or b"\0" in raw:
                raise ConfigError(
                    f"fw_cfg: file name {name!r} is empty, has a NUL or is longer than "
                    f"{FILE_NAME_SIZE - 1} bytes",
                    hint="use a shorter name such as 'etc/e820'",
                    file=name,
                )
            select = Key.FILE_FIRST + index
            data = files[name]
            directory += struct.pack(">IHH", len(data), select, 0) + raw.ljust(
                FILE_NAME_SIZE, b"\0"
            )
            self._items[select] = _Item(bytes(data), name in writable)
            entries.append(FileEntry(name, select, len(data)))
        self._items[Key.FILE_DIR] = _Item(bytes(directory), False)
        self._files = tuple(entries)

    # ----------------------------------------------------------------- inspection

    @property
    def dma_enabled(self) -> bool:
        return self._memory is not None

    @property
    def files(self) -> tuple[FileEntry, ...]:
        """The FILE_DIR entries, in directory (name) order."""
        return self._files

    def item(self, key: int) -> bytes | None:
        """The bytes of item ``key`` (as the guest would read them), or None."""
        found = self._items.get(key & ~WRITE_CHANNEL)
        return bytes(found.data) if found is not None else None

    def file(self, name: str) -> bytes | None:
        """The bytes of the file ``name``, or None."""
        for entry in self._files:
            if entry.name == name:
                return self.item(entry.select)
        return None

    @property
    def selected(self) -> int:
        """The selected key (0xffff for none) ..."""
        return self._selected

    @property
    def offset(self) -> int:
        """... and the offset of the next byte in it."""
        return self._offset

    @property
    def dma_address(self) -> int:
        """The DMA address the guest has written so far (its high half, before the low
        half starts a transfer)."""
        return self._dma_address

    def contents(self) -> dict[int, tuple[bytes, bool]]:
        """Every item as ``key -> (bytes, writable)``, the directory and file items
        included (what a snapshot saves: :meth:`restore` takes it back)."""
        return {key: (bytes(item.data), item.writable) for key, item in self._items.items()}

    def restore(
        self,
        contents: Mapping[int, tuple[bytes, bool]],
        *,
        selected: int = INVALID,
        offset: int = 0,
        dma_address: int = 0,
    ) -> None:
        """Replace every item with ``contents`` (as :meth:`contents` gives them) and set
        the selection, offset and DMA address: the device as it was when saved. The file
        list is read back from the FILE_DIR item. A key outside this device's range, or
        a FILE_DIR that does not parse, is a :class:`~accel.errors.ConfigError` and
        nothing changes."""
        items: dict[int, _Item] = {}
        for key, (data, writable) in contents.items():
            if not 0 <= key <= 0xFFFF or key & WRITE_CHANNEL or key & ENTRY_MASK >= self._max_entry:
                raise ConfigError(f"fw_cfg: key {key:#06x} is not an item key", key=key)
            items[key] = _Item(bytes(data), bool(writable))
        directory = items.get(Key.FILE_DIR)
        raw = bytes(directory.data) if directory is not None else b"\0\0\0\0"
        entries: list[FileEntry] = []
        if len(raw) < 4:
            raise ConfigError("fw_cfg: the FILE_DIR item is shorter than its count")
        (count,) = struct.unpack_from(">I", raw)
        if len(raw) != 4 + count * (8 + FILE_NAME_SIZE):
            raise ConfigError(f"fw_cfg: the FILE_DIR item does not hold {count} entries")
        for i in range(count):
            size, select, _res = struct.unpack_from(">IHH", raw, 4 + i * (8 + FILE_NAME_SIZE))
            name_at = 4 + i * (8 + FILE_NAME_SIZE) + 8
            name = raw[name_at : name_at + FILE_NAME_SIZE].split(b"\0", 1)[0]
            if select not in items:
                raise ConfigError(f"fw_cfg: file {name!r} names key {select:#x}, which is absent")
            entries.append(FileEntry(name.decode(errors="replace"), select, size))
        if selected != INVALID and selected & ENTRY_MASK >= self._max_entry:
            raise ConfigError(f"fw_cfg: selected key {selected:#06x} is out of range")
        self._items = items
        self._files = tuple(entries)
        self._selected = selected & 0xFFFF
        self._offset = max(0, offset)
        self._dma_address = dma_address & (2**64 - 1)

    # ----------------------------------------------------------------- the device

    def select(self, key: int) -> bool:
        """Select ``key`` (offset back to 0); False, selecting nothing, when out of range."""
        key &= 0xFFFF
        self._offset = 0
        if key & ENTRY_MASK >= self._max_entry:
            self._selected = INVALID
            return False
        self._selected = key
        return True

    def _current(self) -> _Item | None:
        if self._selected == INVALID:
            return None
        return self._items.get(self._selected & ~WRITE_CHANNEL)

    def read_data(self, size: int = 1) -> int:
        """``fw_cfg_data_read``: ``size`` bytes as a big-endian number, zero-padded."""
        item = self._current()
        value = 0
        remaining = size
        if item is not None and self._offset < len(item.data):
            while remaining and self._offset < len(item.data):
                value = (value << 8) | item.data[self._offset]
                self._offset += 1
                remaining -= 1
            value <<= 8 * remaining
        return value

    def read_port(self, port: int, size: int) -> int:
        """The guest's IN of ``size`` bytes from ``port`` (0x510-0x51b).

        A byte from 0x510 or 0x511 is the next byte of the selected item; other sizes
        there read 0 (QEMU refuses them); 0x514-0x51b read "QEMU CFG" (with DMA); any
        other port reads all ones, as an unassigned port does.
        """
        if port in (CTL_PORT, DATA_PORT):
            return self.read_data(1) if size == 1 else 0
        if self.dma_enabled and DMA_PORT <= port < DMA_PORT_END:
            offset = port - DMA_PORT
            return int.from_bytes(
                DMA_SIGNATURE[offset : offset + size].ljust(size, b"\0"), "little"
            )
        # Not a port of this device (or DMA is off): reads as unassigned ports do.
        return (1 << (8 * size)) - 1

    def write_port(self, port: int, size: int, value: int) -> None:
        """The guest's OUT of ``size`` bytes of ``value`` to ``port`` (0x510-0x51b)."""
        if port == CTL_PORT and size == 2:
            self.select(value)
        elif self.dma_enabled and size == 4 and port in (DMA_PORT, DMA_PORT_LOW):
            # The DMA registers are big-endian: the bytes the guest wrote, read as BE.
            half = int.from_bytes((value & 0xFFFFFFFF).to_bytes(4, "little"), "big")
            if port == DMA_PORT:
                self._dma_address = half << 32
            else:
                self._dma_address |= half
                self.dma_transfer(self._dma_address)
        # Anything else (data-port writes, other sizes) is ignored, as QEMU 7.2 does.

    def dma_transfer(self, address: int) -> None:
        """Run the ``FWCfgDmaAccess`` at guest-physical ``address`` (``fw_cfg_dma_transfer``)."""
        memory = self._memory
        self._dma_address = 0
        if memory is None:
            return
        try:
            raw = memory.read(address, 16)
        except GuestMemoryError:
            self._write_control(memory, address, DmaControl.ERROR)
            return
        control, length, target = struct.unpack(">IIQ", raw)
        if control & DmaControl.SELECT:
            self.select(control >> 16)
        read = write = False
        if control & DmaControl.READ:
            read = True
        elif control & DmaControl.WRITE:
            write = True
        elif not control & DmaControl.SKIP:
            length = 0
        status = 0
        item = self._current()
        while length > 0 and not status & DmaControl.ERROR:
            if item is None or self._offset >= len(item.data):
                chunk = length
                if read and not self._dma_write(memory, target, bytes(chunk)):
                    status |= DmaControl.ERROR
                if write:
                    status |= DmaControl.ERROR
            else:
                chunk = min(length, len(item.data) - self._offset)
                if read:
                    data = bytes(item.data[self._offset : self._offset + chunk])
                    if not self._dma_write(memory, target, data):
                        status |= DmaControl.ERROR
                if write:
                    incoming = None
                    if item.writable and chunk == length:
                        try:
                            incoming = memory.read(target, chunk)
                        except GuestMemoryError:
                            incoming = None
                    if incoming is None:
                        status |= DmaControl.ERROR
                    else:
                        item.data[self._offset : self._offset + chunk] = incoming
                self._offset += chunk
            target += chunk
            length -= chunk
        self._write_control(memory, address, status)

    @staticmethod
    def _dma_write(memory: GuestMemory, address: int, data: bytes) -> bool:
        try:
            memory.write(address, data)
        except GuestMemoryError:
            return False
        return True

    @staticmethod
    def _write_control(memory: GuestMemory, address: int, control: int) -> None:
        with contextlib.suppress(GuestMemoryError):  # nowhere to report it
            memory.write(address, struct.pack(">I", control))

    # ----------------------------------------------------------------- builders

    @classmethod
    def for_multiboot(
        cls,
        plan: BootPlan,
        *,
        cpus: int = 1,
        max_cpus: int | None = None,
        memory: GuestMemory | None = None,
        items: Mapping[int, bytes] | None = None,
        files: Mapping[str, bytes] | None = None,
    ) -> FwCfg:
        """The fw_cfg of a QEMU 7.2 machine started with ``-kernel`` on a Multiboot kernel.

        :func:`build_fw_cfg` for the plan's RAM and ``etc/e820``, plus what QEMU's
        ``load_multiboot`` passes to its option ROM: KERNEL_ENTRY, KERNEL_ADDR (the
        buffer's address), KERNEL_SIZE and KERNEL_DATA (kernel, module structures,
        strings and modules), INITRD_ADDR (the info structure's address), INITRD_SIZE
        (88) and INITRD_DATA (the info structure as QEMU builds it; the option ROM then
        fills mem_lower, mem_upper and mmap_length, which ``plan.info`` already holds).
        """
        kernel_items: dict[int, bytes] = {
            Key.KERNEL_ENTRY: _u32(plan.entry),
            Key.KERNEL_ADDR: _u32(plan.kernel_address),
            Key.KERNEL_SIZE: _u32(plan.kernel_size),
            Key.KERNEL_DATA: plan.kernel_data,
            Key.INITRD_ADDR: _u32(plan.info_address),
            Key.INITRD_SIZE: _u32(len(plan.info)),
            Key.INITRD_DATA: plan.info,
        }
        kernel_items.update(items or {})
        return build_fw_cfg(
            ram_size=sum(size for _, size in plan.ram),
            cpus=cpus,
            max_cpus=max_cpus,
            e820=plan.e820,
            memory=memory,
            items=kernel_items,
            files=files,
        )


def _legacy_e820(entries: Sequence[E820Entry]) -> bytes:
    """QEMU 7.2's FW_CFG_E820_TABLE: ``u32 count`` + 16 packed entries, reserved ones only."""
    reserved = [e for e in entries if e.type != 1][:LEGACY_E820_ENTRIES]
    out = bytearray(_u32(len(reserved)))
    for e in reserved:
        out += e.pack()
    return bytes(out.ljust(4 + 20 * LEGACY_E820_ENTRIES, b"\0"))


def build_fw_cfg(
    *,
    ram_size: int,
    cpus: int = 1,
    max_cpus: int | None = None,
    e820: Sequence[E820Entry] = (),
    memory: GuestMemory | None = None,
    nographic: bool = False,
    boot_menu: bool = False,
    boot_fail_wait: int = -1,
    numa_nodes: Sequence[int] = (),
    items: Mapping[int, bytes] | None = None,
    files: Mapping[str, bytes] | None = None,
    writable_files: Iterable[str] = (),
) -> FwCfg:
    """A :class:`FwCfg` holding what a QEMU 7.2 pc/q35 machine puts in it.

    NB_CPUS = ``cpus`` and MAX_CPUS = ``max_cpus`` (default ``cpus``; QEMU stores the APIC
    ID limit, equal for a flat topology) as 16-bit; RAM_SIZE 64-bit; UUID 16 zero bytes;
    NOGRAPHIC and BOOT_MENU 16-bit; IRQ0_OVERRIDE 32-bit 1; E820_TABLE (legacy,
    reserved entries of ``e820``); NUMA (``u64 nodes``, a node per APIC ID, the
    ``numa_nodes`` memory sizes: all zero without NUMA); files ``etc/e820`` (the packed
    ``e820`` entries) and ``etc/boot-fail-wait`` (32-bit ``boot_fail_wait``, -1 =
    never reboot). ``items`` and ``files`` add to or replace these.
    """
    if cpus < 1:
        raise ConfigError(f"fw_cfg: {cpus} CPUs", hint="a machine has at least one CPU")
    limit = cpus if max_cpus is None else max_cpus
    if limit < cpus:
        raise ConfigError(
            f"fw_cfg: max_cpus {limit} is below the {cpus} CPUs",
            hint="max_cpus is at least the number of CPUs",
        )
    numa = bytearray(_u64(len(numa_nodes)))
    numa += bytes(8 * limit)
    for size in numa_nodes:
        numa += _u64(size)
    base_items: dict[int, bytes] = {
        Key.UUID: bytes(16),
        Key.NOGRAPHIC: _u16(int(nographic)),
        Key.BOOT_MENU: _u16(int(boot_menu)),
        Key.NB_CPUS: _u16(cpus),
        Key.MAX_CPUS: _u16(limit),
        Key.RAM_SIZE: _u64(ram_size),
        Key.IRQ0_OVERRIDE: _u32(1),
        Key.E820_TABLE: _legacy_e820(e820),
        Key.NUMA: bytes(numa),
    }
    base_items.update(items or {})
    base_files: dict[str, bytes] = {
        "etc/boot-fail-wait": _u32(boot_fail_wait),
        "etc/e820": b"".join(e.pack() for e in e820),
    }
    base_files.update(files or {})
    return FwCfg(base_items, base_files, writable_files=writable_files, memory=memory)
