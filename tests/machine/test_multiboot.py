"""Multiboot v1 loading (accel.machine.multiboot) against QEMU 7.2's rules.

Kernels are assembled here byte by byte (ELF32, ELF64, a.out kludge), compiled with gcc
when it can build 32-bit code, and taken from /work/shared/kut (kvm-unit-tests).
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accel.accelerator import Registers, SpecialRegisters
from accel.errors import ConfigError
from accel.machine.multiboot import (
    BOOTLOADER_MAGIC,
    HEADER_MAGIC,
    INFO_ADDRESS,
    MMAP_ADDRESS,
    BootPlan,
    E820Entry,
    E820Type,
    MachineFamily,
    e820_table,
    find_header,
    firmware_memory_map,
    flat32_registers,
    flat32_sregs,
    load_multiboot,
    parse_initrd,
    parse_size,
    ram_layout,
    ram_split,
)

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
KUT = Path(__file__).resolve().parents[3] / "shared" / "kut"  # ../shared beside the checkout

# 32-bit code: mov edx,0xe0; out dx,eax; mov eax,ebx; out dx,eax; mov eax,[ebx]; out dx,eax;
# hlt. It reports the boot loader's magic, the info address and the info flags.
REPORT_CODE = bytes.fromhex("ba e0 00 00 00 ef 89 d8 ef 8b 03 ef f4")


# --------------------------------------------------------------------------- builders


def mb_header(flags: int = 0, *, aout: tuple[int, int, int, int, int] | None = None) -> bytes:
    """A Multiboot header; ``aout`` = (header_addr, load_addr, load_end, bss_end, entry)."""
    if aout is not None:
        flags |= 1 << 16
    checksum = (-(HEADER_MAGIC + flags)) & 0xFFFFFFFF
    out = struct.pack("<III", HEADER_MAGIC, flags, checksum)
    out += struct.pack("<5I", *(aout or (0, 0, 0, 0, 0)))
    return out + bytes(16)  # the video fields: 48 bytes in all


def elf32(segments: list[tuple[int, bytes, int]], entry: int, *, machine: int = 3) -> bytes:
    """An ELF32 executable: ``segments`` are (paddr, file bytes, memsz); data at 4 KiB steps."""
    phoff, phnum = 52, len(segments)
    offsets = [0x1000 * (i + 1) for i in range(phnum)]
    out = bytearray(b"\x7fELF" + bytes([1, 1, 1]) + bytes(9))
    out += struct.pack("<HHIIIIIHHHHHH", 2, machine, 1, entry, phoff, 0, 0, 52, 32, phnum, 40, 0, 0)
    for (paddr, data, memsz), off in zip(segments, offsets, strict=True):
        out += struct.pack("<8I", 1, off, paddr, paddr, len(data), memsz, 7, 0x1000)
    for (_, data, _), off in zip(segments, offsets, strict=True):
        out = out.ljust(off, b"\0") + data
    return bytes(out)


def elf64(segments: list[tuple[int, bytes, int]], entry: int) -> bytes:
    phoff, phnum = 64, len(segments)
    offsets = [0x1000 * (i + 1) for i in range(phnum)]
    out = bytearray(b"\x7fELF" + bytes([2, 1, 1]) + bytes(9))
    out += struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, entry, phoff, 0, 0, 64, 56, phnum, 64, 0, 0)
    for (paddr, data, memsz), off in zip(segments, offsets, strict=True):
        out += struct.pack("<IIQQQQQQ", 1, 7, off, paddr, paddr, len(data), memsz, 0x1000)
    for (_, data, _), off in zip(segments, offsets, strict=True):
        out = out.ljust(off, b"\0") + data
    return bytes(out)


def write(tmp_path: Path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def memory_of(plan: BootPlan) -> dict[int, int]:
    """The plan's writes as a sparse byte map (later writes win)."""
    mem: dict[int, int] = {}
    for address, data in plan.writes:
        for i, b in enumerate(data):
            mem[address + i] = b
    return mem


def read(mem: dict[int, int], address: int, size: int) -> bytes:
    return bytes(mem.get(address + i, 0) for i in range(size))


def cstring(mem: dict[int, int], address: int) -> str:
    out = bytearray()
    while (b := mem[address + len(out)]) != 0:
        out.append(b)
    return out.decode()


def decode_info(mem: dict[int, int], address: int) -> dict[str, int]:
    names = ["flags", "mem_lower", "mem_upper", "boot_device", "cmdline", "mods_count"]
    names += ["mods_addr", "syms0", "syms1", "syms2", "syms3", "mmap_length", "mmap_addr"]
    names += ["drives_length", "drives_addr", "config_table", "boot_loader_name"]
    values = struct.unpack_from(f"<{len(names)}I", read(mem, address, 4 * len(names)))
    return dict(zip(names, values, strict=True))


def decode_mmap(mem: dict[int, int], address: int, length: int) -> list[E820Entry]:
    out, at = [], address
    while at < address + length:
        (size,) = struct.unpack("<I", read(mem, at, 4))
        assert size == 20
        out.append(E820Entry.unpack(read(mem, at + 4, 20)))
        at += size + 4
    return out


@pytest.fixture
def kernel32(tmp_path: Path) -> str:
    """ELF32: text at 1 MiB (header + code), data+bss at 1 MiB + 8 KiB."""
    text = mb_header(3) + REPORT_CODE
    data = b"DATA" * 4
    return write(
        tmp_path,
        "k32.elf",
        elf32([(0x100000, text, len(text)), (0x102000, data, 0x3000)], 0x100000 + 48),
    )


# --------------------------------------------------------------------------- header


def test_header_found_at_aligned_offset() -> None:
    data = bytes(0x40) + mb_header(0x3)
    h = find_header(data, "k")
    assert (h.offset, h.flags, h.page_align, h.memory_info, h.aout_kludge) == (
        0x40,
        3,
        True,
        True,
        False,
    )


def test_header_unaligned_or_beyond_8192_not_found() -> None:
    with pytest.raises(ConfigError, match=r"k has no Multiboot header in its first 8192 bytes"):
        find_header(bytes(2) + mb_header() + bytes(100), "k")
    with pytest.raises(ConfigError, match="no Multiboot header"):
        find_header(bytes(8192) + mb_header(), "k")
    # The last place QEMU looks: 8192 - 48 - 4.
    assert find_header(bytes(8192 - 52) + mb_header(), "k").offset == 8192 - 52


def test_bad_checksum_named_and_skipped() -> None:
    bad = bytearray(mb_header())
    bad[8] ^= 1
    with pytest.raises(ConfigError, match=r"kern: the Multiboot header at offset 0x0 has a bad"):
        find_header(bytes(bad), "kern")
    # A good header after a bad one is used, as QEMU keeps looking.
    assert find_header(bytes(bad) + mb_header(), "kern").offset == 48


def test_missing_header_in_file_is_config_error_with_hint(tmp_path: Path) -> None:
    path = write(tmp_path, "linux.bin", b"\x00" * 4096)
    with pytest.raises(ConfigError) as info:
        load_multiboot(path, ram_size=128 * MiB)
    assert path in str(info.value) and info.value.hint and "Multiboot" in info.value.hint
    assert info.value.file == path


def test_linux_bzimage_refused_even_with_a_multiboot_header(tmp_path: Path) -> None:
    image = bytearray(mb_header() + bytes(0x400))
    image[0x202:0x206] = b"HdrS"
    path = write(tmp_path, "bzImage", bytes(image))
    with pytest.raises(ConfigError, match=r"bzImage is a Linux kernel \(boot protocol"):
        load_multiboot(path, ram_size=128 * MiB)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot open kernel '.*nope'"):
        load_multiboot(str(tmp_path / "nope"), ram_size=128 * MiB)


def test_tiny_file_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="too small"):
        load_multiboot(write(tmp_path, "t", b"\x02\xb0\xad\x1b"), ram_size=128 * MiB)


def test_kernel_larger_than_ram_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "huge"
    with path.open("wb") as f:
        f.truncate(200 * MiB)  # sparse: reading it all would be slow and pointless
    with pytest.raises(ConfigError, match=r"larger than guest RAM \(134217728 bytes\)"):
        load_multiboot(str(path), ram_size=128 * MiB)


# --------------------------------------------------------------------------- ELF


def test_elf32_segments_entry_and_bss(kernel32: str) -> None:
    plan = load_multiboot(kernel32, ram_size=128 * MiB)
    assert plan.entry == 0x100030
    assert plan.segments == ((0x100000, 48 + len(REPORT_CODE), 48 + len(REPORT_CODE)),
                             (0x102000, 16, 0x3000))  # fmt: skip
    writes = dict(plan.writes)
    assert writes[0x100000] == mb_header(3) + REPORT_CODE
    assert writes[0x102000] == b"DATA" * 4 + bytes(0x3000 - 16)  # bss zero-filled
    assert (plan.kernel_address, plan.kernel_end) == (0x100000, 0x105000)
    assert (plan.eax, plan.ebx, plan.info_address) == (BOOTLOADER_MAGIC, INFO_ADDRESS, 0x9500)


def test_info_structure_as_qemu_builds_it(kernel32: str) -> None:
    plan = load_multiboot(kernel32, ram_size=128 * MiB, cmdline="console=ttyS0 x=1")
    mem = memory_of(plan)
    info = decode_info(mem, plan.ebx)
    assert info["flags"] == 0x24F  # memory, boot device, cmdline, mods, mmap, loader name
    assert (info["mem_lower"], info["mem_upper"]) == (639, (128 * MiB - MiB) // KiB)
    assert info["boot_device"] == 0x8000FFFF
    # QEMU passes "<kernel file name> <append>" as the command line.
    assert cstring(mem, info["cmdline"]) == f"{kernel32} console=ttyS0 x=1"
    assert cstring(mem, info["boot_loader_name"]) == "qemu"
    assert info["mods_count"] == 0
    # The buffer after the kernel starts at the kernel's size, page aligned (mb_buf).
    assert info["mods_addr"] == 0x100000 + 0x5000
    assert info["cmdline"] == info["mods_addr"]  # no modules: strings come first
    assert info["mmap_addr"] == MMAP_ADDRESS
    mmap = decode_mmap(mem, info["mmap_addr"], info["mmap_length"])
    assert mmap == firmware_memory_map("pc", 128 * MiB)
    assert plan.info == read(mem, plan.ebx, 88)
    assert plan.kernel_size == 0x6000
    # The boot loader name sits after room for every command line (QEMU's cmdline_len).
    cmdline_len = len(kernel32) + 1 + len("console=ttyS0 x=1") + 1
    assert info["boot_loader_name"] == info["mods_addr"] + cmdline_len


def test_empty_cmdline_keeps_trailing_space(kernel32: str) -> None:
    plan = load_multiboot(kernel32, ram_size=64 * MiB)
    assert plan.cmdline == kernel32 + " "


def test_elf64_through_program_headers(tmp_path: Path) -> None:
    text = mb_header(0) + REPORT_CODE
    path = write(
        tmp_path,
        "k64.elf",
        elf64([(0x200000, text, 0x2000), (0x300000, b"xyz", 3)], 0x200030),
    )
    plan = load_multiboot(path, ram_size=128 * MiB)
    assert plan.entry == 0x200030
    writes = dict(plan.writes)
    assert writes[0x200000] == text + bytes(0x2000 - len(text))
    assert writes[0x300000] == b"xyz"
    assert plan.kernel_address == 0x200000
    assert decode_info(memory_of(plan), plan.ebx)["mods_addr"] == 0x200000 + 0x101000


def test_elf64_entry_above_4g_refused(tmp_path: Path) -> None:
    text = mb_header(0) + REPORT_CODE
    path = write(tmp_path, "hi.elf", elf64([(0x200000, text, 0x1000)], 0xFFFFFFFF80200030))
    with pytest.raises(ConfigError, match=r"hi\.elf: the entry point 0xffffffff80200030 is not"):
        load_multiboot(path, ram_size=128 * MiB)


def test_elf_not_x86_refused(tmp_path: Path) -> None:
    text = mb_header() + REPORT_CODE
    path = write(tmp_path, "arm.elf", elf32([(0x100000, text, len(text))], 0x100000, machine=40))
    with pytest.raises(ConfigError, match=r"arm\.elf: is an ELF file for EM_ARM"):
        load_multiboot(path, ram_size=128 * MiB)


def test_no_elf_without_kludge_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "raw.bin", mb_header(0) + REPORT_CODE)
    with pytest.raises(ConfigError, match=r"raw\.bin: .*not an ELF file") as info:
        load_multiboot(path, ram_size=128 * MiB)
    assert "flag 16" in str(info.value)


def test_truncated_elf_refused(tmp_path: Path) -> None:
    text = mb_header() + REPORT_CODE * 100
    data = elf32([(0x100000, text, len(text))], 0x100000)
    path = write(tmp_path, "cut.elf", data[: 0x1000 + 100])
    with pytest.raises(ConfigError, match=r"cut\.elf: .*beyond the file"):
        load_multiboot(path, ram_size=128 * MiB)


def test_segment_beyond_ram_refused(tmp_path: Path) -> None:
    text = mb_header() + REPORT_CODE
    path = write(tmp_path, "far.elf", elf32([(0x100000, text, 64 * MiB)], 0x100000))
    with pytest.raises(ConfigError, match=r"far\.elf: the segment 0x100000\.\.0x4100000 does not"):
        load_multiboot(path, ram_size=32 * MiB)
    assert load_multiboot(path, ram_size=128 * MiB).kernel_end == 0x4100000


def test_segment_in_legacy_window_refused(tmp_path: Path) -> None:
    text = mb_header() + REPORT_CODE
    path = write(tmp_path, "vga.elf", elf32([(0xB8000, text, len(text))], 0xB8000))
    with pytest.raises(ConfigError, match="legacy window"):
        load_multiboot(path, ram_size=32 * MiB)


def test_overlapping_segments_refused(tmp_path: Path) -> None:
    text = mb_header() + REPORT_CODE
    path = write(
        tmp_path, "ov.elf", elf32([(0x100000, text, 0x2000), (0x101000, b"x", 1)], 0x100000)
    )
    with pytest.raises(ConfigError, match="overlap"):
        load_multiboot(path, ram_size=32 * MiB)


def test_kernel_over_info_area_moves_the_info(tmp_path: Path) -> None:
    """Like kvm-unit-tests' realmode.flat (loaded at 0x8000): the info moves after it."""
    text = mb_header() + REPORT_CODE
    path = write(tmp_path, "low.elf", elf32([(0x8000, text, 0x3000)], 0x8030))
    plan = load_multiboot(path, ram_size=32 * MiB)
    assert plan.mmap_address == 0x8000 + plan.kernel_size
    assert plan.ebx == plan.mmap_address + 0x500
    kernel = range(0x8000, 0xB000)
    for address, data in plan.writes[1:]:
        assert address >= kernel.stop or address + len(data) <= kernel.start
    mem = memory_of(plan)
    assert read(mem, 0x8000, len(text)) == text  # not overwritten by the info
    assert decode_info(mem, plan.ebx)["mmap_addr"] == plan.mmap_address


# --------------------------------------------------------------------------- a.out kludge


def test_modules_over_info_area_move_the_info(tmp_path: Path) -> None:
    """A small kernel at 0x1000 whose module lands on 0x9000: the info moves too."""
    text = mb_header() + REPORT_CODE
    path = write(tmp_path, "tiny.elf", elf32([(0x1000, text, len(text))], 0x1030))
    mod = write(tmp_path, "m.img", b"M" * 0x9000)
    plan = load_multiboot(path, ram_size=32 * MiB, initrd=mod)
    assert plan.modules[0].start == 0x3000 and plan.modules[0].end == 0xC000
    assert plan.mmap_address == 0x1000 + plan.kernel_size == 0xC000  # right after it
    mem = memory_of(plan)
    assert read(mem, 0x3000, 0x9000) == b"M" * 0x9000
    assert decode_info(mem, plan.ebx)["mods_count"] == 1
    # Without the module, QEMU's fixed addresses are free and used.
    assert load_multiboot(path, ram_size=32 * MiB).mmap_address == MMAP_ADDRESS


def test_aout_kludge(tmp_path: Path) -> None:
    load = 0x100000
    # The header is at file offset 0x20, i.e. at load + 0x20.
    image = bytearray(0x20) + mb_header(0, aout=(load + 0x20, load, 0, load + 0x4000, load + 0x50))
    image = image.ljust(0x50, b"\x90") + REPORT_CODE
    path = write(tmp_path, "aout.bin", bytes(image))
    plan = load_multiboot(path, ram_size=64 * MiB)
    assert plan.header.aout_kludge and plan.entry == load + 0x50
    assert dict(plan.writes)[load] == bytes(image) + bytes(0x4000 - len(image))
    assert plan.segments == ((load, len(image), 0x4000),)


def test_aout_kludge_wins_over_elf(tmp_path: Path) -> None:
    """An ELF with flag 16 loads by the header (QEMU checks the flag first)."""
    hdr_off = 0x1000  # where elf32 puts the first segment's data
    end = hdr_off + 48 + len(REPORT_CODE)  # the whole file, from offset 0
    aout = (0x500000 + hdr_off, 0x500000, 0x500000 + end, 0x502000, 0x500000 + hdr_off + 48)
    data = elf32([(0x100000, mb_header(0, aout=aout) + REPORT_CODE, 0x100)], 0x100000)
    assert len(data) == end
    path = write(tmp_path, "both.elf", data)
    plan = load_multiboot(path, ram_size=64 * MiB)
    assert plan.entry == 0x501030
    assert plan.segments == ((0x500000, end, 0x2000),)
    assert dict(plan.writes)[0x500000] == data + bytes(0x2000 - end)
    assert all(not 0x100000 <= a < 0x100100 for a, _ in plan.writes)


@pytest.mark.parametrize(
    ("aout", "message"),
    [
        ((0x100000, 0x100010, 0, 0, 0x100000), "invalid load_addr"),
        ((0x100100, 0x100000, 0, 0, 0x100000), "invalid header_addr"),
        ((0x100000, 0x100000, 0xFF000, 0, 0x100000), "invalid load_end_addr"),
        ((0x100000, 0x100000, 0x100040, 0x100020, 0x100000), "invalid bss_end_addr"),
        ((0x100000, 0x100000, 0x200000, 0, 0x100000), "truncated"),
    ],
)
def test_aout_kludge_checks(
    tmp_path: Path, aout: tuple[int, int, int, int, int], message: str
) -> None:
    path = write(tmp_path, "bad.bin", mb_header(0, aout=aout) + REPORT_CODE)
    with pytest.raises(ConfigError, match=message) as info:
        load_multiboot(path, ram_size=64 * MiB)
    assert "bad.bin" in str(info.value)


# --------------------------------------------------------------------------- modules


def test_parse_initrd_like_get_opt_value() -> None:
    assert parse_initrd("a.img") == ["a.img"]
    assert parse_initrd("a.img arg1 arg2,b.img") == ["a.img arg1 arg2", "b.img"]
    assert parse_initrd("we,,ird.img,x") == ["we,ird.img", "x"]
    assert parse_initrd("a,") == ["a"]  # a trailing comma adds no module
    assert parse_initrd("") == []
    assert parse_initrd(",a") == ["", "a"]  # an empty name QEMU then fails to open


def test_modules(tmp_path: Path, kernel32: str) -> None:
    a = write(tmp_path, "a.img", b"A" * 5000)
    b = write(tmp_path, "b.img", b"B" * 10)
    spec = f"{a} root=1 quiet,{b}"
    plan = load_multiboot(kernel32, ram_size=128 * MiB, initrd=spec, cmdline="go")
    mem = memory_of(plan)
    info = decode_info(mem, plan.ebx)
    assert info["mods_count"] == 2
    mods = [struct.unpack("<IIII", read(mem, info["mods_addr"] + 16 * i, 16)) for i in range(2)]
    # QEMU: module structures, then strings; modules page aligned from the buffer start.
    base = 0x100000
    first = base + 0x6000  # kernel 0x5000 + a page of structures and strings
    assert mods[0][:2] == (first, first + 5000)
    assert mods[1][:2] == (first + 0x2000, first + 0x2000 + 10)
    assert cstring(mem, mods[0][2]) == f"{a} root=1 quiet"
    assert cstring(mem, mods[1][2]) == b
    assert read(mem, first, 5000) == b"A" * 5000
    assert read(mem, first + 0x2000, 10) == b"B" * 10
    # Module strings come before the kernel command line.
    assert mods[0][2] == info["mods_addr"] + 32 < mods[1][2] < info["cmdline"]
    assert cstring(mem, info["cmdline"]) == f"{kernel32} go"
    assert plan.kernel_size == 0x6000 + 0x2000 + 0x1000
    assert [m.string for m in plan.modules] == [f"{a} root=1 quiet", b]
    # kernel_data is QEMU's mb_buf: the same bytes from the kernel address on.
    blob = plan.kernel_data
    assert len(blob) == plan.kernel_size
    assert blob[first - base : first - base + 5000] == b"A" * 5000
    assert blob[:48] == mb_header(3)


def test_empty_initrd_text_gives_no_module(kernel32: str) -> None:
    plan = load_multiboot(kernel32, ram_size=128 * MiB, initrd="")
    assert plan.modules == ()
    info = decode_info(memory_of(plan), plan.ebx)
    assert info["mods_count"] == 0
    # QEMU still counts the empty text's NUL in cmdline_len.
    assert info["boot_loader_name"] == info["mods_addr"] + len(kernel32) + 1 + 1 + 1


def test_module_list_and_missing_module(tmp_path: Path, kernel32: str) -> None:
    a = write(tmp_path, "a.img", b"x")
    plan = load_multiboot(kernel32, ram_size=128 * MiB, initrd=[a])
    assert plan.modules[0].end - plan.modules[0].start == 1
    with pytest.raises(ConfigError, match=r"cannot open initrd '.*gone\.img'"):
        load_multiboot(kernel32, ram_size=128 * MiB, initrd=f"{a},{tmp_path}/gone.img arg")


def test_module_beyond_ram_refused(tmp_path: Path, kernel32: str) -> None:
    big = tmp_path / "big.img"
    with big.open("wb") as f:
        f.truncate(3 * MiB)
    with pytest.raises(ConfigError, match=r"big\.img: the module .* does not fit"):
        load_multiboot(kernel32, ram_size=4 * MiB, initrd=str(big))


# --------------------------------------------------------------------------- RAM layout

LAYOUTS = {
    ("pc", "128M"): (128 * MiB, 0),
    ("pc", "3G"): (3 * GiB, 0),
    ("pc", "3584M"): (3 * GiB, 512 * MiB),
    ("pc", "4G"): (3 * GiB, 1 * GiB),
    ("pc", "5G"): (3 * GiB, 2 * GiB),
    ("q35", "128M"): (128 * MiB, 0),
    ("q35", "2560M"): (2560 * MiB, 0),
    ("q35", "2816M"): (2 * GiB, 768 * MiB),
    ("q35", "3G"): (2 * GiB, 1 * GiB),
    ("q35", "4G"): (2 * GiB, 2 * GiB),
    ("q35", "5G"): (2 * GiB, 3 * GiB),
}


@pytest.mark.parametrize(("machine", "size"), list(LAYOUTS))
def test_ram_split_as_qemu_7_2(machine: str, size: str) -> None:
    below, above = LAYOUTS[machine, size]
    ram = parse_size(size)
    assert ram_split(machine, ram) == (below, above)
    expected = [(0, below)] + ([(4 * GiB, above)] if above else [])
    assert ram_layout(machine, ram) == expected
    assert e820_table(machine, ram) == [E820Entry(b, s, E820Type.RAM) for b, s in expected]


def test_ram_split_edges_and_max_ram_below_4g() -> None:
    assert ram_split("pc", 0xE0000000 - 8192) == (0xE0000000 - 8192, 0)  # just under 3.5G
    assert ram_split("q35", 0xB0000000 - 8192) == (0xB0000000 - 8192, 0)
    assert ram_split("pc", 4 * GiB, max_ram_below_4g=2 * GiB) == (2 * GiB, 2 * GiB)
    # QEMU's own example: "-M pc,max-ram-below-4g=4G -m 3968M -> 3968M low (=4G-128M)".
    assert ram_split("pc", 3968 * MiB, max_ram_below_4g=4 * GiB) == (3968 * MiB, 0)
    assert ram_split("pc", 4 * GiB, max_ram_below_4g=4 * GiB) == (3 * GiB, GiB)
    assert ram_split("q35", 5 * GiB, max_ram_below_4g=1 * GiB) == (1 * GiB, 4 * GiB)
    assert ram_split("pc-i440fx-7.2", GiB) == ram_split(MachineFamily.PC, GiB)
    assert ram_split("pc-q35-7.2", 3 * GiB) == (2 * GiB, GiB)
    with pytest.raises(ConfigError, match="not a pc or q35"):
        ram_split("microvm", GiB)


@pytest.mark.parametrize(("machine", "size"), list(LAYOUTS))
def test_firmware_memory_map_and_mem_upper(machine: str, size: str, tmp_path: Path) -> None:
    below, above = LAYOUTS[machine, size]
    ram = parse_size(size)
    R, X = E820Type.RAM, E820Type.RESERVED
    expected = [
        E820Entry(0, 0x9FC00, R),
        E820Entry(0x9FC00, 0x400, X),
        E820Entry(0xF0000, 0x10000, X),
        E820Entry(MiB, below - MiB, R),
    ]
    if machine == "q35":
        expected.append(E820Entry(0xB0000000, 0x10000000, X))
    expected.append(E820Entry(0xFFFC0000, 0x40000, X))
    if above:
        expected.append(E820Entry(4 * GiB, above, R))
    assert firmware_memory_map(machine, ram) == expected
    text = mb_header() + REPORT_CODE
    kernel = write(tmp_path, "k.elf", elf32([(0x100000, text, len(text))], 0x100030))
    plan = load_multiboot(kernel, ram_size=ram, machine=machine)
    info = decode_info(memory_of(plan), plan.ebx)
    assert info["mem_upper"] == (below - MiB) // KiB  # up to the first hole
    assert decode_mmap(memory_of(plan), info["mmap_addr"], info["mmap_length"]) == expected
    assert list(plan.e820) == e820_table(machine, ram)
    assert plan.ram == tuple(ram_layout(machine, ram))


def test_reserved_ranges_in_both_tables() -> None:
    extra = [(0xFEFFC000, 0x4000)]
    table = e820_table("pc", 4 * GiB, reserved=extra)
    # QEMU adds an accelerator's reservation before the machine's RAM.
    assert table[0] == E820Entry(0xFEFFC000, 0x4000, E820Type.RESERVED)
    fw = firmware_memory_map("pc", 4 * GiB, reserved=extra)
    assert E820Entry(0xFEFFC000, 0x4000, E820Type.RESERVED) in fw
    assert [e.address for e in fw] == sorted(e.address for e in fw)
    assert E820Entry(0, 20, E820Type.RAM).pack() == struct.pack("<QQI", 0, 20, 1)


# --------------------------------------------------------------------------- -m


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("128", 128 * MiB),
        ("128M", 128 * MiB),
        ("128m", 128 * MiB),
        ("2G", 2 * GiB),
        ("1.5G", 1536 * MiB),
        ("524288k", 512 * MiB),
        ("size=1G", GiB),
        ("1T", 1 << 40),
        ("0.5", 512 * KiB),
        ("100000B", 106496),  # QEMU rounds up to 8 KiB
        (" 64 ", 64 * MiB),
    ],
)
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0", "is zero"),
        ("0M", "is zero"),
        ("-1", "invalid memory size '-1'"),
        ("abc", "invalid memory size 'abc'"),
        ("", "invalid memory size ''"),
        ("12Q", "invalid memory size '12Q'"),
        ("1.5B", "not a whole number"),
        ("2T", "larger than the maximum"),
        ("1E", "larger than the maximum"),
        ("0x100", "invalid memory size"),
    ],
)
def test_parse_size_refuses(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        parse_size(text)
    assert info.value.value == text


# --------------------------------------------------------------------------- hand-over


def test_flat32_state(kernel32: str) -> None:
    plan = load_multiboot(kernel32, ram_size=128 * MiB)
    sregs = flat32_sregs(SpecialRegisters(), gdt_base=plan.gdt_address)
    assert (sregs.cs.selector, sregs.cs.type, sregs.cs.db, sregs.cs.g) == (0x08, 0xB, 1, 1)
    assert (sregs.cs.base, sregs.cs.limit, sregs.cs.l) == (0, 0xFFFFFFFF, 0)
    for seg in (sregs.ds, sregs.es, sregs.fs, sregs.gs, sregs.ss):
        assert (seg.selector, seg.type, seg.base, seg.limit, seg.db) == (0x10, 3, 0, 0xFFFFFFFF, 1)
    assert sregs.cr0 & 1 and not sregs.cr0 & (1 << 31)  # PE on, paging off
    assert (sregs.cr4, sregs.efer, sregs.gdt.base, sregs.gdt.limit) == (0, 0, plan.gdt_address, 39)
    gdt = dict(plan.writes)[plan.gdt_address]
    assert gdt[8:16] == bytes.fromhex("ffff0000009acf00")  # the 0x08 code descriptor
    assert gdt[16:24] == bytes.fromhex("ffff00000092cf00")  # the 0x10 data descriptor
    regs = flat32_registers(plan)
    assert regs == Registers(rax=0x2BADB002, rbx=0x9500, rcx=plan.entry, rip=plan.entry, rflags=2)


# --------------------------------------------------------------------------- real kernels


KUT_FILES = sorted(KUT.glob("*.flat")) if KUT.is_dir() else []


@pytest.mark.skipif(not KUT_FILES, reason=f"{KUT} (kvm-unit-tests binaries) is missing")
@pytest.mark.parametrize("path", KUT_FILES, ids=lambda p: p.name)
def test_kvm_unit_tests_load_in_128m(path: Path) -> None:
    plan = load_multiboot(str(path), ram_size=128 * MiB, cmdline="")
    assert plan.header.flags & 0xFFFF0000 == 0  # ELF images, no a.out kludge
    assert any(a <= plan.entry < a + m for a, _, m in plan.segments)
    for address, data in plan.writes:
        assert address >= 0 and address + len(data) <= 128 * MiB
        assert address + len(data) <= 0xA0000 or address >= 0x100000
    info = decode_info(dict(enumerate(plan.info, plan.ebx)), plan.ebx)
    assert info["flags"] == 0x24F and info["mem_upper"] == 127 * 1024
    assert info["mmap_addr"] == plan.mmap_address


def test_gcc_built_kernel(tmp_path: Path) -> None:
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is not installed")
    src = tmp_path / "k.c"
    src.write_text(
        "#define F 0x3\n"
        '__attribute__((section(".mbh"), used, aligned(4)))\n'
        "static const unsigned hdr[3] = {0x1BADB002u, F, -(0x1BADB002u + F)};\n"
        "unsigned counter;\n"
        "static char big[0x4000];\n"
        'void _start(void) { big[1] = 1; counter++; for (;;) __asm__ volatile("hlt"); }\n'
    )
    elf = tmp_path / "k.elf"
    ld = "-Wl,--section-start=.mbh=0x200000,-Ttext=0x200040,--build-id=none"
    result = subprocess.run(
        [gcc, "-m32", "-ffreestanding", "-nostdlib", "-static", "-fno-pic", "-O2", ld,
         "-o", str(elf), str(src)],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    if result.returncode != 0:
        pytest.skip(f"gcc cannot build 32-bit freestanding code here: {result.stderr[-300:]}")
    from elftools.elf.elffile import ELFFile

    with elf.open("rb") as f:
        e = ELFFile(f)
        entry = e["e_entry"]
        loads = [s for s in e.iter_segments() if s["p_type"] == "PT_LOAD" and s["p_memsz"]]
        bss = e.get_section_by_name(".bss")
        expected = [(s["p_paddr"], s["p_filesz"], s["p_memsz"]) for s in loads]
    plan = load_multiboot(str(elf), ram_size=32 * MiB)
    assert plan.entry == entry
    assert list(plan.segments) == expected
    assert bss is not None and any(m > fs for _, fs, m in plan.segments)


# --------------------------------------------------------------------------- end to end


@pytest.mark.parametrize("name", ["tcg", pytest.param("kvm", marks=pytest.mark.kvm)])
def test_boots_on_an_accelerator(kernel32: str, name: str) -> None:
    """The kernel sees EAX = 0x2BADB002, EBX = the info, and reads the info's flags."""
    import accel
    from accel import PortIoExit

    plan = load_multiboot(kernel32, ram_size=8 * MiB)
    try:
        acc = accel.open(name)
    except accel.errors.AccelError as exc:
        pytest.skip(f"{name} is not available here: {exc}")
    with acc, acc.create_vm() as vm:
        for base, size in plan.ram:
            vm.add_memory(base, size)
        for address, data in plan.writes:
            vm.write_memory(address, data)
        cpu = vm.create_vcpu()
        cpu.set_sregs(flat32_sregs(cpu.get_sregs(), gdt_base=plan.gdt_address))
        cpu.set_regs(flat32_registers(plan))
        seen = []
        for _ in range(3):
            ex = cpu.run()
            assert isinstance(ex, PortIoExit) and ex.port == 0xE0 and ex.size == 4
            seen.append(ex.value())
        assert seen == [0x2BADB002, plan.ebx, 0x24F]


@pytest.mark.kvm
@pytest.mark.skipif(not (KUT / "dummy.flat").is_file(), reason=f"{KUT}/dummy.flat is missing")
def test_kvm_unit_tests_dummy_boots_through_fw_cfg_on_kvm() -> None:
    """kvm-unit-tests' dummy.flat on a raw VM: Multiboot plan + fw_cfg + a COM1 stub.

    Without a machine (no local APIC model) the test stops at its x2APIC set-up, but by
    then it has used the info structure (its allocator sizes itself from mem_upper), read
    FW_CFG_NB_CPUS through 0x510/0x511 ("waiting for 0 APs" = one CPU), printed on COM1
    and reported through the isa-debug-exit port 0xf4.
    """
    import accel
    from accel import IoDirection, MmioExit, PortIoExit
    from accel.machine.fw_cfg import FwCfg

    plan = load_multiboot(str(KUT / "dummy.flat"), ram_size=parse_size("256"))
    try:
        acc = accel.open("kvm")
    except accel.errors.AccelError as exc:
        pytest.skip(f"kvm is not available here: {exc}")
    with acc, acc.create_vm() as vm:
        for base, size in plan.ram:
            vm.add_memory(base, size)
        for address, data in plan.writes:
            vm.write_memory(address, data)

        class Memory:
            def read(self, address: int, size: int) -> bytes:
                return vm.read_memory(address, size)

            def write(self, address: int, data: bytes) -> None:
                vm.write_memory(address, data)

        fw = FwCfg.for_multiboot(plan, cpus=1, memory=Memory())
        cpu = vm.create_vcpu()
        cpu.set_sregs(flat32_sregs(cpu.get_sregs(), gdt_base=plan.gdt_address))
        cpu.set_regs(flat32_registers(plan))
        serial, fw_cfg_accesses, status = bytearray(), 0, None
        for _ in range(20000):
            ex = cpu.run()
            if isinstance(ex, MmioExit):
                if not ex.is_write:
                    ex.reply(0)
                continue
            assert isinstance(ex, PortIoExit), ex
            if 0x510 <= ex.port < 0x51C:
                fw_cfg_accesses += 1
                if ex.direction is IoDirection.IN:
                    ex.reply(fw.read_port(ex.port, ex.size))
                else:
                    fw.write_port(ex.port, ex.size, ex.value())
            elif ex.port == 0x3F8 and ex.direction is IoDirection.OUT:
                serial += bytes(ex.data[:1])
            elif ex.port == 0xF4:
                status = ex.value() << 1 | 1
                break
            elif ex.direction is IoDirection.IN:
                ex.reply(0x60 if ex.port == 0x3FD else 0)  # LSR: transmitter empty
    text = serial.decode(errors="replace")
    assert "smp: waiting for 0 APs" in text, text
    assert fw_cfg_accesses >= 3  # select + two bytes of NB_CPUS
    assert status is not None, text


# --------------------------------------------------------------------------- properties


NAMES = st.text(alphabet="ab ,.", min_size=1, max_size=8).filter(lambda t: not t.startswith(","))


@given(st.lists(NAMES, min_size=1, max_size=4))
def test_parse_initrd_inverts_qemu_escaping(items: list[str]) -> None:
    # (An item starting with a comma is ambiguous after a separator, in QEMU too:
    # "a,,,b" is ["a,", "b"], never ["a", ",b"].)
    text = ",".join(item.replace(",", ",,") for item in items)
    assert parse_initrd(text) == items


@given(st.integers(1, 1 << 40))
def test_ram_split_adds_up_and_fits_below_4g(size: int) -> None:
    for machine in ("pc", "q35"):
        below, above = ram_split(machine, size)
        assert below + above == size and 0 < below <= 0xE0000000
        assert above == 0 or below in (0xC0000000, 0x80000000)
