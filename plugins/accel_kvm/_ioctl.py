"""The injectable system-call layer under the KVM plugin.

Every ``open``/``close``/``ioctl``/``mmap`` the plugin makes goes through one object with
the :class:`Sys` shape, handed to :class:`~accel_kvm.KvmAccelerator` (``sys=``) and passed
down to its VMs and vCPUs. :class:`HostSys` calls the real functions; tests wrap it with
:class:`FaultInjector` (make a named ioctl fail with an errno) or :class:`RecordingSys`
(log the ioctls in order), which live in :mod:`accel_kvm._wrappers` and are re-exported
here on first use. :func:`call` turns a failed ioctl into
:class:`~accel.errors.BackendCallError`.
"""

from __future__ import annotations

import errno as _errno
import fcntl
import mmap as _mmap
import os

from accel import errors as _errors

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Protocol

    from ._wrappers import FaultInjector, RecordingSys, ioctl_name
else:
    Protocol = object

__all__ = ["FaultInjector", "HostSys", "RecordingSys", "Sys", "ioctl_name"]

ACCEL_NAME = "kvm"

#: The ctypes ``c_char`` type, made on first use from :mod:`_ctypes` alone.
_char: list[Any] = []


class Sys(Protocol):
    """What the plugin needs from the operating system (a :class:`typing.Protocol` to a
    type checker: any object with these methods will do)."""

    def open(self, path: str, flags: int) -> int: ...

    def close(self, fd: int) -> None: ...

    def ioctl(self, fd: int, request: int, arg: Any = 0, /) -> Any: ...

    def mmap(self, fd: int, length: int) -> _mmap.mmap:
        """A shared read-write mapping of ``fd`` (``fd == -1``: anonymous, private, zeroed)."""
        ...


class HostSys:
    """The real system calls (``os.open``, ``fcntl.ioctl``, ``mmap.mmap``).

    ``ioctl`` is :func:`fcntl.ioctl` itself, so the vCPU run loop pays no extra call.
    """

    ioctl = staticmethod(fcntl.ioctl)

    def open(self, path: str, flags: int) -> int:
        return os.open(path, flags)

    def close(self, fd: int) -> None:
        os.close(fd)

    def mmap(self, fd: int, length: int) -> _mmap.mmap:
        if fd == -1:
            return _mmap.mmap(
                -1,
                length,
                flags=_mmap.MAP_PRIVATE | _mmap.MAP_ANONYMOUS,
                prot=_mmap.PROT_READ | _mmap.PROT_WRITE,
            )
        return _mmap.mmap(
            fd, length, flags=_mmap.MAP_SHARED, prot=_mmap.PROT_READ | _mmap.PROT_WRITE
        )


#: errnos that mean "no such device" when opening /dev/kvm.
NO_DEVICE_ERRNOS = frozenset({_errno.ENOENT, _errno.ENODEV, _errno.ENXIO})
#: errnos that mean "permission denied".
PERMISSION_ERRNOS = frozenset({_errno.EACCES, _errno.EPERM})


def __getattr__(name: str) -> Any:
    """The wrapping layers of :mod:`accel_kvm._wrappers`, imported on first use."""
    if name in ("FaultInjector", "RecordingSys", "ioctl_name"):
        from . import _wrappers

        value = getattr(_wrappers, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def call(sys: Sys, name: str, fd: int, request: int, arg: Any = 0) -> Any:
    """``sys.ioctl`` with an ``OSError`` turned into :class:`BackendCallError` naming ``name``."""
    try:
        return sys.ioctl(fd, request, arg)
    except OSError as exc:
        raise _errors.BackendCallError(name, exc.errno, accelerator=ACCEL_NAME) from exc


def release_mapping(mm: _mmap.mmap) -> None:
    """Unmap ``mm`` now, or (if a caller still holds a view of it) when that view dies."""
    # If a memoryview handed to the caller (MemoryRegion.view, exit.data) is still alive,
    # close() raises BufferError; the mmap object unmaps once the last view is gone.
    try:
        mm.close()
    except BufferError:
        return


def buffer_address(buf: _mmap.mmap) -> int:
    """The address of ``buf``'s first byte (``ctypes.addressof(c_char.from_buffer(buf))``).

    Read from the mmap object itself where that can be checked, which costs a few
    microseconds; otherwise through the C module :mod:`_ctypes` (not the :mod:`ctypes`
    package), whose first import costs several hundred.
    """
    address = _object_address(buf)
    if address is not None:
        return address
    import _ctypes

    if not _char:
        _char.append(type("c_char", (_ctypes._SimpleCData,), {"_type_": "c"}))
    anchor = _char[0].from_buffer(buf)
    address = _ctypes.addressof(anchor)
    del anchor
    return address


#: Where CPython's mmap object keeps ``char *data`` and then ``Py_ssize_t size``: right
#: after the object header; and their size, two pointers.
_MMAP_FIELDS_OFFSET = object.__basicsize__
_MMAP_FIELDS_SIZE = 2 * memoryview(bytes(8)).cast("P").itemsize


def _object_address(buf: _mmap.mmap) -> int | None:
    """``buf``'s address read through /proc/self/mem from the mmap object (``id(buf)`` is
    its address in CPython), or None when that fails or cannot be confirmed.

    Confirmed three ways: the size field equals ``len(buf)``, the address is page-aligned,
    and 16 random bytes written through ``buf`` read back at the address (then the bytes
    there before are put back: ``buf`` must not be in use elsewhere meanwhile, as a new
    guest RAM mapping is not).
    """
    if len(buf) < 16:
        return None
    try:
        fd = os.open("/proc/self/mem", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fields = os.pread(fd, _MMAP_FIELDS_SIZE, id(buf) + _MMAP_FIELDS_OFFSET)
        if len(fields) != _MMAP_FIELDS_SIZE:
            return None
        address, size = memoryview(fields).cast("P")
        if size != len(buf) or address % _mmap.PAGESIZE:
            return None
        before = buf[:16]
        marker = os.urandom(16)
        buf[:16] = marker
        try:
            seen = os.pread(fd, 16, address)
        finally:
            buf[:16] = before
        return address if seen == marker else None
    except (OSError, OverflowError, TypeError):
        return None
    finally:
        os.close(fd)
