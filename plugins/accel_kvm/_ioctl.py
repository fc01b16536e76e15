"""The injectable system-call layer under the KVM plugin.

Every ``open``/``close``/``ioctl``/``mmap`` the plugin makes goes through one object with
the :class:`Sys` shape, handed to :class:`~accel_kvm.KvmAccelerator` (``sys=``) and passed
down to its VMs and vCPUs. :class:`HostSys` calls the real functions; tests wrap it with
:class:`FaultInjector` (make a named ioctl fail with an errno) or :class:`RecordingSys`
(log the ioctls in order).
"""

from __future__ import annotations

import errno as _errno
import fcntl
import mmap as _mmap
import os

from . import _abi

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, Protocol
else:
    Protocol = object

__all__ = ["FaultInjector", "HostSys", "RecordingSys", "Sys", "ioctl_name"]


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


def ioctl_name(request: int) -> str:
    """The KVM name of an ioctl request number (hex for numbers the plugin does not use)."""
    return _abi.IOCTL_NAMES.get(request, f"ioctl {request:#x}")


class FaultInjector:
    """Wraps a :class:`Sys` and makes chosen calls fail with an errno.

    ``fail`` maps an ioctl name (``"KVM_GET_CLOCK"``), or ``"open"``/``"mmap"``, to the
    errno to raise; ``times`` limits how many times each fails (None: always).
    ``answers`` maps an ioctl name to a fixed return value instead of calling the kernel
    (``{"KVM_GET_API_VERSION": 11}``). ``calls`` counts the calls made per name.

    Example::

        inj = FaultInjector(fail={"KVM_SET_USER_MEMORY_REGION": errno.ENOMEM})
        acc = KvmAccelerator(sys=inj)
    """

    def __init__(
        self,
        inner: Sys | None = None,
        *,
        fail: dict[str, int] | None = None,
        times: int | None = None,
        answers: dict[str, int] | None = None,
    ) -> None:
        self.inner: Sys = inner if inner is not None else HostSys()
        self.fail: dict[str, int] = dict(fail or {})
        self.times = times
        self.answers: dict[str, int] = dict(answers or {})
        self.calls: dict[str, int] = {}
        self.injected: dict[str, int] = {}

    def _maybe_fail(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1
        err = self.fail.get(name)
        if err is None:
            return
        done = self.injected.get(name, 0)
        if self.times is not None and done >= self.times:
            return
        self.injected[name] = done + 1
        raise OSError(err, os.strerror(err))

    def open(self, path: str, flags: int) -> int:
        self._maybe_fail("open")
        return self.inner.open(path, flags)

    def close(self, fd: int) -> None:
        self.inner.close(fd)

    def ioctl(self, fd: int, request: int, arg: Any = 0, /) -> Any:
        name = ioctl_name(request)
        self._maybe_fail(name)
        if name in self.answers:
            return self.answers[name]
        return self.inner.ioctl(fd, request, arg)

    def mmap(self, fd: int, length: int) -> _mmap.mmap:
        self._maybe_fail("mmap")
        return self.inner.mmap(fd, length)


class RecordingSys:
    """Wraps a :class:`Sys` and appends ``(name, fd)`` for every ioctl to :attr:`log`.

    ``on_ioctl(name, fd, arg)`` is called before each ioctl when given.
    """

    def __init__(
        self,
        inner: Sys | None = None,
        on_ioctl: Callable[[str, int, Any], None] | None = None,
    ) -> None:
        self.inner: Sys = inner if inner is not None else HostSys()
        self.log: list[tuple[str, int]] = []
        self.on_ioctl = on_ioctl

    def names(self) -> list[str]:
        return [name for name, _ in self.log]

    def open(self, path: str, flags: int) -> int:
        return self.inner.open(path, flags)

    def close(self, fd: int) -> None:
        self.inner.close(fd)

    def ioctl(self, fd: int, request: int, arg: Any = 0, /) -> Any:
        name = ioctl_name(request)
        self.log.append((name, fd))
        if self.on_ioctl is not None:
            self.on_ioctl(name, fd, arg)
        return self.inner.ioctl(fd, request, arg)

    def mmap(self, fd: int, length: int) -> _mmap.mmap:
        return self.inner.mmap(fd, length)


#: errnos that mean "no such device" when opening /dev/kvm.
NO_DEVICE_ERRNOS = frozenset({_errno.ENOENT, _errno.ENODEV, _errno.ENXIO})
#: errnos that mean "permission denied".
PERMISSION_ERRNOS = frozenset({_errno.EACCES, _errno.EPERM})
