"""Helpers shared by the KVM accelerator, VM and vCPU handles (no state)."""

from __future__ import annotations

from accel.errors import BackendCallError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import mmap as _mmap
    from typing import Any

    from ._ioctl import Sys

ACCEL_NAME = "kvm"

#: The ctypes ``c_char`` type, made on first use from :mod:`_ctypes` alone.
_char: list[Any] = []


def call(sys: Sys, name: str, fd: int, request: int, arg: Any = 0) -> Any:
    """``sys.ioctl`` with an ``OSError`` turned into :class:`BackendCallError` naming ``name``."""
    try:
        return sys.ioctl(fd, request, arg)
    except OSError as exc:
        raise BackendCallError(name, exc.errno, accelerator=ACCEL_NAME) from exc


def release_mapping(mm: _mmap.mmap) -> None:
    """Unmap ``mm`` now, or (if a caller still holds a view of it) when that view dies."""
    # If a memoryview handed to the caller (MemoryRegion.view, exit.data) is still alive,
    # close() raises BufferError; the mmap object unmaps once the last view is gone.
    try:
        mm.close()
    except BufferError:
        return


def buffer_address(buf: _mmap.mmap) -> int:
    """The address of ``buf``'s first byte: ``ctypes.addressof(c_char.from_buffer(buf))``
    through the C module :mod:`_ctypes`, without importing the :mod:`ctypes` package."""
    import _ctypes

    if not _char:
        _char.append(type("c_char", (_ctypes._SimpleCData,), {"_type_": "c"}))
    anchor = _char[0].from_buffer(buf)
    address: int = _ctypes.addressof(anchor)
    del anchor
    return address
