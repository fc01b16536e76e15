"""Layers that wrap another :class:`~accel_kvm.ioctls.Sys`, for tests.

:class:`FaultInjector` makes chosen calls fail with an errno or answer a fixed value;
:class:`RecordingSys` logs every ioctl by name (and can watch its argument). Hand either
to :class:`~accel_kvm.KvmAccelerator` as ``sys=``: every system call the plugin makes
goes through it, so every failure path can be reached without a broken kernel.
"""

from __future__ import annotations

import mmap as _mmap
import os
from collections.abc import Callable
from typing import Any

from .ioctls import HostSys, Sys, ioctl_name

__all__ = ["FaultInjector", "RecordingSys"]


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
