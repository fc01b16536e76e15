"""accel_kvm._abi.buffer_address: the address KVM_SET_USER_MEMORY_REGION is given."""

from __future__ import annotations

import ctypes
import mmap
import os

import pytest
from accel_kvm import _abi


def _mapping(size: int = 1 << 20) -> mmap.mmap:
    return mmap.mmap(
        -1,
        size,
        flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS,
        prot=mmap.PROT_READ | mmap.PROT_WRITE,
    )


def _ctypes_address(mm: mmap.mmap) -> int:
    anchor = ctypes.c_char.from_buffer(mm)
    try:
        return ctypes.addressof(anchor)
    finally:
        del anchor


def test_matches_ctypes_and_leaves_the_contents_alone() -> None:
    mm = _mapping()
    mm[:32] = bytes(range(32))
    assert _abi.buffer_address(mm) == _ctypes_address(mm)
    assert mm[:32] == bytes(range(32))
    mm.close()  # no buffer export is left behind


@pytest.mark.skipif(not os.access("/proc/self/mem", os.R_OK), reason="needs /proc/self/mem")
def test_read_from_the_object_where_it_can_be_confirmed() -> None:
    mm = _mapping()
    assert _abi._object_address(mm) == _ctypes_address(mm)
    assert mm[:16] == bytes(16)
    mm.close()


def test_falls_back_to_ctypes_when_proc_mem_cannot_be_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_open = os.open

    def no_proc_mem(path: str, flags: int, *args: int) -> int:
        if path == "/proc/self/mem":
            raise PermissionError(13, "Permission denied")
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", no_proc_mem)
    mm = _mapping()
    assert _abi._object_address(mm) is None
    assert _abi.buffer_address(mm) == _ctypes_address(mm)
    mm.close()


def test_an_unconfirmed_read_is_not_trusted(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fields read from the wrong place are refused, and ctypes gives the answer."""
    mm = _mapping()
    monkeypatch.setattr(_abi, "_MMAP_FIELDS_OFFSET", _abi._MMAP_FIELDS_OFFSET + 8)
    assert _abi._object_address(mm) is None
    assert _abi.buffer_address(mm) == _ctypes_address(mm)
    mm.close()


def test_a_marker_that_does_not_read_back_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    real_pread = os.pread
    reads: list[int] = []

    def pread(fd: int, length: int, offset: int) -> bytes:
        reads.append(offset)
        data = real_pread(fd, length, offset)
        return data if len(reads) == 1 else bytes(length)  # the marker is not seen

    monkeypatch.setattr(os, "pread", pread)
    mm = _mapping()
    mm[:16] = b"sixteen bytes!!!"
    assert _abi._object_address(mm) is None
    assert len(reads) == 2
    assert mm[:16] == b"sixteen bytes!!!"
    mm.close()
