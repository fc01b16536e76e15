"""Probe: every way /dev/kvm can be unusable, through the injectable system-call layer.

These use a fake system-call layer and need no device; one test checks the real device.
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
from typing import Any

import pytest
from accel_kvm import KvmAccelerator, accel_accelerators, ioctls

from accel import Capability, VmOptions
from accel.errors import AcceleratorUnavailableError, HandleClosedError


class FakeSys:
    """No kernel at all: ``open`` fails with ``open_errno`` or returns fd 1000."""

    def __init__(
        self, open_errno: int | None = None, api: int = 12, api_errno: int | None = None
    ) -> None:
        self.open_errno = open_errno
        self.api = api
        self.api_errno = api_errno
        self.opened: list[tuple[str, int]] = []
        self.closed: list[int] = []

    def open(self, path: str, flags: int) -> int:
        self.opened.append((path, flags))
        if self.open_errno is not None:
            raise OSError(self.open_errno, os.strerror(self.open_errno))
        return 1000

    def close(self, fd: int) -> None:
        self.closed.append(fd)

    def ioctl(self, fd: int, request: int, arg: Any = 0, /) -> Any:
        if request == ioctls.KVM_GET_API_VERSION:
            if self.api_errno is not None:
                raise OSError(self.api_errno, os.strerror(self.api_errno))
            return self.api
        raise AssertionError(f"unexpected ioctl {request:#x}")

    def mmap(self, fd: int, length: int) -> mmap.mmap:
        raise AssertionError("unexpected mmap")


@pytest.mark.parametrize("err", [errno.ENOENT, errno.ENODEV, errno.ENXIO])
def test_no_device(err: int) -> None:
    acc = KvmAccelerator(device="/dev/kvm", sys=FakeSys(open_errno=err))
    av = acc.probe()
    assert not av
    assert "does not exist" in av.reason and "kvm module" in av.reason
    assert av.hint and "modprobe" in av.hint
    assert av.details["errno"] == err


@pytest.mark.parametrize("err", [errno.EACCES, errno.EPERM])
def test_permission_denied_names_the_kvm_group(err: int) -> None:
    av = KvmAccelerator(device="/dev/kvm", sys=FakeSys(open_errno=err)).probe()
    assert not av
    assert "permission denied" in av.reason
    assert av.hint and "kvm group" in av.hint and "mode" in av.hint
    assert av.details == {"errno": err, "path": "/dev/kvm"}


def test_wrong_api_version() -> None:
    fake = FakeSys(api=11)
    av = KvmAccelerator(device="/dev/kvm", sys=fake).probe()
    assert not av
    assert "API version 11" in av.reason and "expected 12" in av.reason
    assert av.details["api_version"] == 11
    assert fake.closed == [1000]  # the device is not left open


@pytest.mark.parametrize("err", [errno.EIO, errno.EBUSY, errno.EMFILE])
def test_other_open_errno(err: int) -> None:
    av = KvmAccelerator(device="/dev/kvm", sys=FakeSys(open_errno=err)).probe()
    assert not av
    assert errno.errorcode[err] in av.reason
    assert av.details["errno"] == err


def test_api_version_ioctl_failing() -> None:
    fake = FakeSys(api_errno=errno.EIO)
    av = KvmAccelerator(device="/dev/kvm", sys=fake).probe()
    assert not av
    assert "KVM_GET_API_VERSION" in av.reason
    assert av.details["errno"] == errno.EIO and av.details["call"] == "KVM_GET_API_VERSION"
    assert fake.closed == [1000]


def test_open_uses_cloexec_and_readwrite() -> None:
    fake = FakeSys()
    acc = KvmAccelerator(device="/dev/kvm", sys=fake)
    assert acc.probe()
    ((path, flags),) = fake.opened
    assert path == "/dev/kvm"
    assert flags & os.O_CLOEXEC and flags & os.O_ACCMODE == os.O_RDWR
    assert acc.probe() and len(fake.opened) == 1  # cached while open
    acc.close()
    assert fake.closed == [1000]


def test_unavailable_accelerator_raises_with_the_reason() -> None:
    acc = KvmAccelerator(device="/dev/kvm", sys=FakeSys(open_errno=errno.EACCES))
    with pytest.raises(AcceleratorUnavailableError) as info:
        acc.capabilities()
    assert "permission denied" in str(info.value)
    assert info.value.errno == errno.EACCES  # type: ignore[attr-defined]
    for call in (
        acc.create_vm,
        lambda: acc.check(Capability.IRQCHIP),
        lambda: acc.create_vm(VmOptions()),
    ):
        with pytest.raises(AcceleratorUnavailableError):
            call()


def test_construction_does_no_io() -> None:
    fake = FakeSys()
    KvmAccelerator(sys=fake)
    assert fake.opened == []


def test_closed_accelerator_refuses_probe() -> None:
    acc = KvmAccelerator(sys=FakeSys())
    acc.close()
    with pytest.raises(HandleClosedError):
        acc.probe()


def test_plugin_hook_describes_kvm() -> None:
    (info,) = accel_accelerators()
    assert info.name == "kvm" and info.priority == 100 and info.hardware
    assert info.factory is KvmAccelerator


@pytest.mark.kvm
def test_real_device_probe_is_cloexec(acc: KvmAccelerator) -> None:
    av = acc.probe()
    assert av and av.details["api_version"] == 12
    assert fcntl.fcntl(acc.fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC
