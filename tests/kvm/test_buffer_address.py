"""Guest RAM's address (``accel_kvm.vm.buffer_address``, through ctypes) and closing it."""

from __future__ import annotations

import ctypes
import mmap

import pytest
from accel_kvm import KvmAccelerator
from accel_kvm.vm import buffer_address


def _mapping(size: int = 1 << 20) -> mmap.mmap:
    return mmap.mmap(
        -1,
        size,
        flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS,
        prot=mmap.PROT_READ | mmap.PROT_WRITE,
    )


def test_the_address_maps_the_same_bytes() -> None:
    mm = _mapping()
    mm[:32] = bytes(range(32))
    mm[-8:] = b"the end!"
    address = buffer_address(mm)
    assert address % mmap.PAGESIZE == 0
    assert ctypes.string_at(address, 32) == bytes(range(32))
    assert ctypes.string_at(address + len(mm) - 8, 8) == b"the end!"
    ctypes.memmove(address + 100, b"written through the address", 27)
    assert mm[100:127] == b"written through the address"
    mm.close()  # no buffer export is left behind


def test_the_mapping_closes_right_after() -> None:
    mm = _mapping(4096)
    for _ in range(3):
        buffer_address(mm)
    mm.close()
    assert mm.closed


@pytest.mark.kvm
def test_vm_ram_is_unmapped_when_the_vm_closes(acc: KvmAccelerator) -> None:
    vm = acc.create_vm()
    region = vm.add_memory(0, 0x10000)
    vm.write_memory(0x100, b"guest bytes")
    address = buffer_address(vm._maps[region.slot])
    assert ctypes.string_at(address + 0x100, 11) == b"guest bytes"
    mm = vm._maps[region.slot]
    vm.close()  # no BufferError from the address taken
    assert mm.closed
