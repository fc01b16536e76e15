"""The fw_cfg device model (accel.machine.fw_cfg) against QEMU 7.2's hw/nvram/fw_cfg.c."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accel.errors import ConfigError, GuestMemoryError
from accel.machine.fw_cfg import (
    CTL_PORT,
    DATA_PORT,
    DMA_PORT,
    DmaControl,
    FwCfg,
    Key,
    build_fw_cfg,
)
from accel.machine.multiboot import E820Entry, E820Type, e820_table, load_multiboot

MiB = 1 << 20


class FakeMemory:
    """Guest RAM [0, size): reads and writes outside raise GuestMemoryError."""

    def __init__(self, size: int = 0x10000) -> None:
        self.ram = bytearray(size)

    def read(self, address: int, size: int) -> bytes:
        if address < 0 or address + size > len(self.ram):
            raise GuestMemoryError(f"read {address:#x}+{size}", address=address, size=size)
        return bytes(self.ram[address : address + size])

    def write(self, address: int, data: bytes) -> None:
        if address < 0 or address + len(data) > len(self.ram):
            raise GuestMemoryError(f"write {address:#x}", address=address, size=len(data))
        self.ram[address : address + len(data)] = data


def select(fw: FwCfg, key: int) -> None:
    fw.write_port(CTL_PORT, 2, key)


def read_bytes(fw: FwCfg, n: int, port: int = DATA_PORT) -> bytes:
    return bytes(fw.read_port(port, 1) for _ in range(n))


def read_item(fw: FwCfg, key: int, n: int) -> bytes:
    select(fw, key)
    return read_bytes(fw, n)


def bswap32(value: int) -> int:
    return int.from_bytes(value.to_bytes(4, "little"), "big")


def dma(fw: FwCfg, mem: FakeMemory, control: int, length: int, target: int, at: int = 0x100) -> int:
    """Run one DMA access as a guest does (big-endian halves, low half last); its control."""
    mem.write(at, struct.pack(">IIQ", control, length, target))
    fw.write_port(DMA_PORT, 4, bswap32(at >> 32))
    fw.write_port(DMA_PORT + 4, 4, bswap32(at & 0xFFFFFFFF))
    (status,) = struct.unpack(">I", mem.read(at, 4))
    return status


@pytest.fixture
def mem() -> FakeMemory:
    return FakeMemory()


@pytest.fixture
def fw(mem: FakeMemory) -> FwCfg:
    return build_fw_cfg(ram_size=256 * MiB, cpus=3, e820=e820_table("pc", 256 * MiB), memory=mem)


# --------------------------------------------------------------------------- port I/O


def test_signature_byte_by_byte(fw: FwCfg) -> None:
    assert read_item(fw, Key.SIGNATURE, 4) == b"QEMU"
    assert read_bytes(fw, 3) == bytes(3)  # past the end: zeros
    select(fw, Key.SIGNATURE)
    assert read_bytes(fw, 4, port=CTL_PORT) == b"QEMU"  # byte reads of 0x510 read data too


def test_select_resets_the_offset(fw: FwCfg) -> None:
    select(fw, Key.SIGNATURE)
    assert read_bytes(fw, 2) == b"QE"
    assert (fw.selected, fw.offset) == (0, 2)
    select(fw, Key.SIGNATURE)
    assert fw.offset == 0 and read_bytes(fw, 4) == b"QEMU"


def test_id_says_dma_only_with_memory(fw: FwCfg) -> None:
    assert int.from_bytes(read_item(fw, Key.ID, 4), "little") == 3
    plain = build_fw_cfg(ram_size=MiB)
    assert int.from_bytes(read_item(plain, Key.ID, 4), "little") == 1
    assert not plain.dma_enabled


def test_integer_items_little_endian(fw: FwCfg) -> None:
    assert read_item(fw, Key.NB_CPUS, 2) == struct.pack("<H", 3)
    assert read_item(fw, Key.MAX_CPUS, 2) == struct.pack("<H", 3)
    assert read_item(fw, Key.RAM_SIZE, 8) == struct.pack("<Q", 256 * MiB)
    assert read_item(fw, Key.IRQ0_OVERRIDE, 4) == struct.pack("<I", 1)
    assert read_item(fw, Key.UUID, 16) == bytes(16)
    assert read_item(fw, Key.NOGRAPHIC, 2) == bytes(2)
    assert read_item(fw, Key.BOOT_MENU, 2) == bytes(2)
    # NUMA without nodes: u64 0 and a zero word per APIC ID.
    assert fw.item(Key.NUMA) == bytes(8 + 8 * 3)


def test_like_kvm_unit_tests_reads_nb_cpus() -> None:
    """lib/x86/fwcfg.c: out 0x510 (16-bit key), then little-endian bytes from 0x511."""
    fw = build_fw_cfg(ram_size=128 * MiB, cpus=2, max_cpus=4)
    select(fw, Key.NB_CPUS)
    value = sum(fw.read_port(DATA_PORT, 1) << (8 * i) for i in range(2))
    assert value == 2
    assert int.from_bytes(read_item(fw, Key.MAX_CPUS, 2), "little") == 4


def test_unknown_and_out_of_range_keys_read_zero(fw: FwCfg) -> None:
    select(fw, Key.MACHINE_ID)  # in range but absent on x86
    assert fw.selected == Key.MACHINE_ID and read_bytes(fw, 4) == bytes(4)
    select(fw, 0x40)  # FILE_FIRST + 32 slots: beyond the last entry
    assert fw.selected == 0xFFFF and read_bytes(fw, 2) == bytes(2)
    select(fw, 0x4000 | Key.SIGNATURE)  # the write channel bit still reads the item
    assert read_bytes(fw, 4) == b"QEMU"


def test_arch_local_items(fw: FwCfg) -> None:
    legacy = read_item(fw, Key.E820_TABLE, 4 + 20 * 16)
    assert struct.unpack_from("<I", legacy)[0] == 0  # no reserved entries given
    fw2 = build_fw_cfg(ram_size=MiB, e820=e820_table("pc", MiB, reserved=[(0xFEFFC000, 0x4000)]))
    legacy = read_item(fw2, Key.E820_TABLE, 4 + 20 * 16)
    assert struct.unpack_from("<I", legacy)[0] == 1
    assert E820Entry.unpack(legacy, 4) == E820Entry(0xFEFFC000, 0x4000, E820Type.RESERVED)


def test_writes_ignored_and_odd_sizes(fw: FwCfg) -> None:
    select(fw, Key.SIGNATURE)
    fw.write_port(DATA_PORT, 1, 0x41)  # data writes do nothing since QEMU 2.4
    fw.write_port(CTL_PORT, 1, Key.NB_CPUS)  # a byte write to 0x510 is a data write
    assert fw.selected == Key.SIGNATURE
    assert read_bytes(fw, 4) == b"QEMU"
    assert fw.read_port(DATA_PORT, 2) == 0  # QEMU refuses wider reads
    assert fw.read_port(0x512, 1) == 0xFF  # not a port of the device


def test_read_data_wider_is_big_endian_padded() -> None:
    fw = FwCfg({Key.MACHINE_ID: b"\x01\x02\x03"})
    fw.select(Key.MACHINE_ID)
    assert fw.read_data(2) == 0x0102
    assert fw.read_data(4) == 0x03000000  # runs out: padded with zeros on the right


# --------------------------------------------------------------------------- files


def decode_dir(raw: bytes) -> list[tuple[int, int, str]]:
    (count,) = struct.unpack_from(">I", raw)
    out = []
    for i in range(count):
        size, sel, reserved = struct.unpack_from(">IHH", raw, 4 + 64 * i)
        assert reserved == 0
        name = raw[4 + 64 * i + 8 : 4 + 64 * (i + 1)].split(b"\0", 1)[0].decode()
        out.append((size, sel, name))
    return out


def test_file_dir_sorted_with_selects(fw: FwCfg) -> None:
    select(fw, Key.FILE_DIR)
    count = int.from_bytes(read_bytes(fw, 4), "big")
    assert count == 2
    select(fw, Key.FILE_DIR)
    entries = decode_dir(read_bytes(fw, 4 + 64 * count))
    assert entries == [(4, 0x20, "etc/boot-fail-wait"), (20, 0x21, "etc/e820")]
    assert [(f.name, f.select, f.size) for f in fw.files] == [(n, s, z) for z, s, n in entries]
    assert read_item(fw, 0x20, 4) == b"\xff\xff\xff\xff"  # -1: never reboot


def test_etc_e820_through_its_file_key(fw: FwCfg) -> None:
    select(fw, Key.FILE_DIR)
    entries = decode_dir(read_bytes(fw, 4 + 64 * 2))
    size, key, _ = next(e for e in entries if e[2] == "etc/e820")
    raw = read_item(fw, key, size)
    table = [E820Entry.unpack(raw, i) for i in range(0, size, 20)]
    assert table == e820_table("pc", 256 * MiB) == [E820Entry(0, 256 * MiB, E820Type.RAM)]


def test_extra_files_sorted_among_the_standard_ones() -> None:
    fw = build_fw_cfg(ram_size=MiB, files={"bootorder": b"/rom@genroms/x\n", "etc/zz": b"z"})
    assert [f.name for f in fw.files] == ["bootorder", "etc/boot-fail-wait", "etc/e820", "etc/zz"]
    assert [f.select for f in fw.files] == [0x20, 0x21, 0x22, 0x23]
    assert fw.file("etc/zz") == b"z" and fw.file("nope") is None


@pytest.mark.parametrize("name", ["", "a" * 56, "nul\0name"])
def test_bad_file_names(name: str) -> None:
    with pytest.raises(ConfigError, match="fw_cfg: file name") as info:
        FwCfg(files={name: b"x"})
    assert info.value.file == name


def test_bad_keys_and_counts() -> None:
    with pytest.raises(ConfigError, match="key 0x0019 is not an item key"):
        FwCfg({Key.FILE_DIR: b""})
    with pytest.raises(ConfigError, match="key 0x18000 is not an item key"):
        FwCfg({0x18000: b""})
    with pytest.raises(ConfigError, match="key 0x4005 is not an item key"):
        FwCfg({0x4005: b""})
    with pytest.raises(ConfigError, match="do not fit in 32 file slots"):
        FwCfg(files={f"f{i}": b"" for i in range(33)})
    with pytest.raises(ConfigError, match="not among the files"):
        FwCfg(files={"a": b""}, writable_files=["b"])
    with pytest.raises(ConfigError, match="max_cpus 1 is below"):
        build_fw_cfg(ram_size=MiB, cpus=2, max_cpus=1)


# --------------------------------------------------------------------------- DMA


def test_dma_signature(fw: FwCfg) -> None:
    assert fw.read_port(DMA_PORT, 4) == int.from_bytes(b"QEMU", "little")
    assert fw.read_port(DMA_PORT + 4, 4) == int.from_bytes(b" CFG", "little")
    assert fw.read_port(DMA_PORT, 1) == ord("Q")


def test_dma_select_and_read(fw: FwCfg, mem: FakeMemory) -> None:
    control = (Key.SIGNATURE << 16) | DmaControl.SELECT | DmaControl.READ
    assert dma(fw, mem, control, 4, 0x1000) == 0
    assert mem.read(0x1000, 4) == b"QEMU"
    # Reading on, without a select, continues at the offset: past the end gives zeros.
    mem.write(0x2000, b"\xaa" * 8)
    assert dma(fw, mem, DmaControl.READ, 8, 0x2000) == 0
    assert mem.read(0x2000, 8) == bytes(8)


def test_dma_skip_then_read(fw: FwCfg, mem: FakeMemory) -> None:
    select(fw, Key.RAM_SIZE)
    assert dma(fw, mem, DmaControl.SKIP, 3, 0) == 0
    assert fw.offset == 3
    assert dma(fw, mem, DmaControl.READ, 5, 0x3000) == 0
    assert mem.read(0x3000, 5) == struct.pack("<Q", 256 * MiB)[3:]


def test_dma_longer_than_item_zero_fills(fw: FwCfg, mem: FakeMemory) -> None:
    mem.write(0x4000, b"\xff" * 12)
    assert dma(fw, mem, (Key.NB_CPUS << 16) | 0x0A, 12, 0x4000) == 0
    assert mem.read(0x4000, 12) == b"\x03\x00" + bytes(10)


def test_dma_file_read(fw: FwCfg, mem: FakeMemory) -> None:
    key = next(f.select for f in fw.files if f.name == "etc/e820")
    assert dma(fw, mem, (key << 16) | DmaControl.SELECT | DmaControl.READ, 20, 0x5000) == 0
    assert E820Entry.unpack(mem.read(0x5000, 20)) == E820Entry(0, 256 * MiB, E820Type.RAM)


def test_dma_select_only(fw: FwCfg, mem: FakeMemory) -> None:
    assert dma(fw, mem, (Key.ID << 16) | DmaControl.SELECT, 100, 0x1000) == 0
    assert fw.selected == Key.ID and fw.offset == 0


def test_dma_out_of_range_target_sets_error(fw: FwCfg, mem: FakeMemory) -> None:
    control = (Key.SIGNATURE << 16) | DmaControl.SELECT | DmaControl.READ
    assert dma(fw, mem, control, 4, 0x10_0000) == DmaControl.ERROR
    # Past the item's end, the zero fill also fails on memory that is not there.
    assert dma(fw, mem, DmaControl.READ, 4, 0xFFFF_0000) == DmaControl.ERROR


def test_dma_descriptor_outside_memory_is_ignored(fw: FwCfg) -> None:
    fw.write_port(DMA_PORT, 4, 0)
    fw.write_port(DMA_PORT + 4, 4, bswap32(0x20_0000))  # nothing there: no crash
    assert fw.selected == 0xFFFF


def test_dma_write_read_only_is_error(fw: FwCfg, mem: FakeMemory) -> None:
    mem.write(0x6000, b"ABCD")
    control = (Key.SIGNATURE << 16) | DmaControl.SELECT | DmaControl.WRITE
    assert dma(fw, mem, control, 4, 0x6000) == DmaControl.ERROR
    assert fw.item(Key.SIGNATURE) == b"QEMU"


def test_dma_write_writable_file(mem: FakeMemory) -> None:
    fw = FwCfg(files={"etc/w": bytes(4)}, writable_files=["etc/w"], memory=mem)
    key = fw.files[0].select
    mem.write(0x6000, b"WXYZ")
    assert dma(fw, mem, (key << 16) | DmaControl.SELECT | DmaControl.WRITE, 4, 0x6000) == 0
    assert fw.file("etc/w") == b"WXYZ"
    # Writing past the end of the item is an error (QEMU: len != dma.length).
    assert dma(fw, mem, (key << 16) | DmaControl.SELECT | DmaControl.WRITE, 5, 0x6000) == 1


def test_dma_needs_memory() -> None:
    fw = build_fw_cfg(ram_size=MiB)
    fw.write_port(DMA_PORT + 4, 4, 0x100)  # ignored without DMA
    assert fw.read_port(DMA_PORT, 4) == 0xFFFFFFFF


# --------------------------------------------------------------------------- Multiboot


def test_for_multiboot_items(tmp_path: Path) -> None:
    from tests.machine.test_multiboot import REPORT_CODE, elf32, mb_header

    text = mb_header(0) + REPORT_CODE
    kernel = tmp_path / "k.elf"
    kernel.write_bytes(elf32([(0x100000, text, 0x1800)], 0x100030))
    plan = load_multiboot(str(kernel), ram_size=64 * MiB, cmdline="a b")
    mem = FakeMemory()
    fw = FwCfg.for_multiboot(plan, cpus=2, memory=mem)

    def u32(key: int) -> int:
        return int.from_bytes(read_item(fw, key, 4), "little")

    assert u32(Key.KERNEL_ENTRY) == 0x100030
    assert u32(Key.KERNEL_ADDR) == 0x100000
    assert u32(Key.KERNEL_SIZE) == plan.kernel_size == 0x3000
    assert u32(Key.INITRD_ADDR) == 0x9500 and u32(Key.INITRD_SIZE) == 88
    assert read_item(fw, Key.INITRD_DATA, 88) == plan.info
    data = read_item(fw, Key.KERNEL_DATA, plan.kernel_size)
    assert data[: len(text)] == text and data[len(text) : 0x1800] == bytes(0x1800 - len(text))
    assert data[0x2000:].split(b"\0", 1)[0] == f"{kernel} a b".encode()  # the command line
    assert int.from_bytes(read_item(fw, Key.RAM_SIZE, 8), "little") == 64 * MiB
    assert int.from_bytes(read_item(fw, Key.NB_CPUS, 2), "little") == 2
    assert fw.file("etc/e820") == b"".join(e.pack() for e in plan.e820)


# --------------------------------------------------------------------------- properties


@settings(max_examples=60, deadline=None)
@given(
    data=st.binary(max_size=64),
    skip=st.integers(0, 80),
    length=st.integers(0, 80),
)
def test_dma_and_port_reads_agree(data: bytes, skip: int, length: int) -> None:
    """SKIP n then READ m by DMA gives the same bytes as n + m port reads, zeros past the end."""
    mem = FakeMemory(0x2000)
    fw = FwCfg({Key.MACHINE_ID: data}, memory=mem)
    control = (Key.MACHINE_ID << 16) | DmaControl.SELECT | DmaControl.SKIP
    assert dma(fw, mem, control, skip, 0) == 0
    assert dma(fw, mem, DmaControl.READ, length, 0x1000) == 0
    expected = (data + bytes(skip + length))[skip : skip + length]
    assert mem.read(0x1000, length) == expected
    assert fw.offset == min(len(data), skip + length) if skip + length else fw.offset == 0
    select(fw, Key.MACHINE_ID)
    assert read_bytes(fw, skip + length)[skip:] == expected
