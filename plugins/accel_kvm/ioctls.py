"""The KVM ioctls and the system-call layer that issues them (the kvm-ioctls part).

* The ioctl request numbers, encoded as ``<asm-generic/ioctl.h>`` does, with the size of
  each argument taken from its :mod:`accel_kvm.bindings` structure (``ctypes.sizeof``).
  :data:`IOCTLS` maps the name of every ioctl the plugin issues to its number; the
  fault-injection tests are parametrised over it, so an ioctl added here is tested.
* :class:`Sys`, the shape of the system-call layer: every ``open``/``close``/``ioctl``/
  ``mmap`` the plugin makes goes through one such object, handed to
  :class:`~accel_kvm.KvmAccelerator` (``sys=``) and passed down to its VMs and vCPUs.
  :class:`HostSys` makes the real calls; :mod:`accel_kvm.testing` has layers that wrap it.
* :func:`call`, which turns a failed ioctl into :class:`~accel.errors.BackendCallError`.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import mmap as _mmap
import os
from typing import Any, Final, Protocol

from accel.errors import BackendCallError

from .bindings import (
    KVMIO,
    kvm_clock_data,
    kvm_cpuid2,
    kvm_debugregs,
    kvm_interrupt,
    kvm_irq_level,
    kvm_irqchip,
    kvm_lapic_state,
    kvm_mp_state,
    kvm_msr_list,
    kvm_msrs,
    kvm_pit_config,
    kvm_pit_state2,
    kvm_regs,
    kvm_sregs,
    kvm_userspace_memory_region,
    kvm_vcpu_events,
    kvm_xcrs,
    kvm_xsave,
)

__all__ = [
    "ACCEL_NAME",
    "IOCTLS",
    "IOCTL_NAMES",
    "NO_DEVICE_ERRNOS",
    "PERMISSION_ERRNOS",
    "HostSys",
    "Sys",
    "call",
    "ioctl_name",
    "release_mapping",
]

#: The accelerator name errors carry.
ACCEL_NAME: Final = "kvm"

# --------------------------------------------------------------------------- encoding
# asm-generic/ioctl.h: nr 8 bits, type 8 bits, size 14 bits, dir 2 bits.
_IOC_NRSHIFT: Final = 0
_IOC_TYPESHIFT: Final = 8
_IOC_SIZESHIFT: Final = 16
_IOC_DIRSHIFT: Final = 30
_IOC_NONE: Final = 0
_IOC_WRITE: Final = 1
_IOC_READ: Final = 2


def _ioc(direction: int, nr: int, size: int) -> int:
    return (
        (direction << _IOC_DIRSHIFT)
        | (KVMIO << _IOC_TYPESHIFT)
        | (nr << _IOC_NRSHIFT)
        | (size << _IOC_SIZESHIFT)
    )


def _io(nr: int) -> int:
    return _ioc(_IOC_NONE, nr, 0)


def _ior(nr: int, struct: type[ctypes.Structure]) -> int:
    return _ioc(_IOC_READ, nr, ctypes.sizeof(struct))


def _iow(nr: int, struct: type[ctypes.Structure]) -> int:
    return _ioc(_IOC_WRITE, nr, ctypes.sizeof(struct))


def _iowr(nr: int, struct: type[ctypes.Structure]) -> int:
    return _ioc(_IOC_READ | _IOC_WRITE, nr, ctypes.sizeof(struct))


# --------------------------------------------------------------------------- ioctls
KVM_GET_API_VERSION: Final = _io(0x00)
KVM_CREATE_VM: Final = _io(0x01)
KVM_CHECK_EXTENSION: Final = _io(0x03)
KVM_GET_VCPU_MMAP_SIZE: Final = _io(0x04)
KVM_GET_SUPPORTED_CPUID: Final = _iowr(0x05, kvm_cpuid2)
KVM_CREATE_VCPU: Final = _io(0x41)
KVM_SET_USER_MEMORY_REGION: Final = _iow(0x46, kvm_userspace_memory_region)
KVM_CREATE_IRQCHIP: Final = _io(0x60)
KVM_IRQ_LINE: Final = _iow(0x61, kvm_irq_level)
KVM_CREATE_PIT2: Final = _iow(0x77, kvm_pit_config)
KVM_SET_CLOCK: Final = _iow(0x7B, kvm_clock_data)
KVM_GET_CLOCK: Final = _ior(0x7C, kvm_clock_data)
KVM_RUN: Final = _io(0x80)
KVM_GET_REGS: Final = _ior(0x81, kvm_regs)
KVM_SET_REGS: Final = _iow(0x82, kvm_regs)
KVM_GET_SREGS: Final = _ior(0x83, kvm_sregs)
KVM_SET_SREGS: Final = _iow(0x84, kvm_sregs)
KVM_SET_CPUID2: Final = _iow(0x90, kvm_cpuid2)
KVM_KVMCLOCK_CTRL: Final = _io(0xAD)
KVM_INTERRUPT: Final = _iow(0x86, kvm_interrupt)
KVM_NMI: Final = _io(0x9A)
# vCPU and irqchip state (accel_kvm.state)
KVM_GET_MSR_INDEX_LIST: Final = _iowr(0x02, kvm_msr_list)
KVM_GET_MSRS: Final = _iowr(0x88, kvm_msrs)
KVM_SET_MSRS: Final = _iow(0x89, kvm_msrs)
KVM_GET_LAPIC: Final = _ior(0x8E, kvm_lapic_state)
KVM_SET_LAPIC: Final = _iow(0x8F, kvm_lapic_state)
KVM_GET_MP_STATE: Final = _ior(0x98, kvm_mp_state)
KVM_SET_MP_STATE: Final = _iow(0x99, kvm_mp_state)
KVM_GET_VCPU_EVENTS: Final = _ior(0x9F, kvm_vcpu_events)
KVM_SET_VCPU_EVENTS: Final = _iow(0xA0, kvm_vcpu_events)
KVM_GET_DEBUGREGS: Final = _ior(0xA1, kvm_debugregs)
KVM_SET_DEBUGREGS: Final = _iow(0xA2, kvm_debugregs)
KVM_GET_XSAVE: Final = _ior(0xA4, kvm_xsave)
KVM_SET_XSAVE: Final = _iow(0xA5, kvm_xsave)
KVM_GET_XCRS: Final = _ior(0xA6, kvm_xcrs)
KVM_SET_XCRS: Final = _iow(0xA7, kvm_xcrs)
KVM_GET_IRQCHIP: Final = _iowr(0x62, kvm_irqchip)
KVM_SET_IRQCHIP: Final = _ior(0x63, kvm_irqchip)
KVM_GET_PIT2: Final = _ior(0x9F, kvm_pit_state2)
KVM_SET_PIT2: Final = _iow(0xA0, kvm_pit_state2)
KVM_GET_TSC_KHZ: Final = _io(0xA3)
KVM_SET_TSC_KHZ: Final = _io(0xA2)


class _U64(ctypes.Structure):
    """A bare ``__u64`` argument."""

    _fields_ = [("value", ctypes.c_uint64)]


KVM_X86_SETUP_MCE: Final = _iow(0x9C, _U64)
KVM_X86_GET_MCE_CAP_SUPPORTED: Final = _ior(0x9D, _U64)

#: Every ioctl the plugin issues, by name (the fault-injection tests cover each one).
IOCTLS: Final[dict[str, int]] = {
    "KVM_GET_API_VERSION": KVM_GET_API_VERSION,
    "KVM_CREATE_VM": KVM_CREATE_VM,
    "KVM_CHECK_EXTENSION": KVM_CHECK_EXTENSION,
    "KVM_GET_VCPU_MMAP_SIZE": KVM_GET_VCPU_MMAP_SIZE,
    "KVM_GET_SUPPORTED_CPUID": KVM_GET_SUPPORTED_CPUID,
    "KVM_CREATE_VCPU": KVM_CREATE_VCPU,
    "KVM_SET_USER_MEMORY_REGION": KVM_SET_USER_MEMORY_REGION,
    "KVM_CREATE_IRQCHIP": KVM_CREATE_IRQCHIP,
    "KVM_IRQ_LINE": KVM_IRQ_LINE,
    "KVM_CREATE_PIT2": KVM_CREATE_PIT2,
    "KVM_SET_CLOCK": KVM_SET_CLOCK,
    "KVM_GET_CLOCK": KVM_GET_CLOCK,
    "KVM_RUN": KVM_RUN,
    "KVM_GET_REGS": KVM_GET_REGS,
    "KVM_SET_REGS": KVM_SET_REGS,
    "KVM_GET_SREGS": KVM_GET_SREGS,
    "KVM_SET_SREGS": KVM_SET_SREGS,
    "KVM_SET_CPUID2": KVM_SET_CPUID2,
    "KVM_KVMCLOCK_CTRL": KVM_KVMCLOCK_CTRL,
    "KVM_INTERRUPT": KVM_INTERRUPT,
    "KVM_NMI": KVM_NMI,
}
IOCTLS.update(
    {
        "KVM_GET_MSR_INDEX_LIST": KVM_GET_MSR_INDEX_LIST,
        "KVM_GET_MSRS": KVM_GET_MSRS,
        "KVM_SET_MSRS": KVM_SET_MSRS,
        "KVM_GET_LAPIC": KVM_GET_LAPIC,
        "KVM_SET_LAPIC": KVM_SET_LAPIC,
        "KVM_GET_MP_STATE": KVM_GET_MP_STATE,
        "KVM_SET_MP_STATE": KVM_SET_MP_STATE,
        "KVM_GET_VCPU_EVENTS": KVM_GET_VCPU_EVENTS,
        "KVM_SET_VCPU_EVENTS": KVM_SET_VCPU_EVENTS,
        "KVM_GET_DEBUGREGS": KVM_GET_DEBUGREGS,
        "KVM_SET_DEBUGREGS": KVM_SET_DEBUGREGS,
        "KVM_GET_XSAVE": KVM_GET_XSAVE,
        "KVM_SET_XSAVE": KVM_SET_XSAVE,
        "KVM_GET_XCRS": KVM_GET_XCRS,
        "KVM_SET_XCRS": KVM_SET_XCRS,
        "KVM_GET_IRQCHIP": KVM_GET_IRQCHIP,
        "KVM_SET_IRQCHIP": KVM_SET_IRQCHIP,
        "KVM_GET_PIT2": KVM_GET_PIT2,
        "KVM_SET_PIT2": KVM_SET_PIT2,
        "KVM_GET_TSC_KHZ": KVM_GET_TSC_KHZ,
        "KVM_SET_TSC_KHZ": KVM_SET_TSC_KHZ,
        "KVM_X86_SETUP_MCE": KVM_X86_SETUP_MCE,
        "KVM_X86_GET_MCE_CAP_SUPPORTED": KVM_X86_GET_MCE_CAP_SUPPORTED,
    }
)

#: Request number -> name (for error messages and the test layers).
IOCTL_NAMES: Final[dict[int, str]] = {number: name for name, number in IOCTLS.items()}


def ioctl_name(request: int) -> str:
    """The KVM name of an ioctl request number (hex for numbers the plugin does not use)."""
    return IOCTL_NAMES.get(request, f"ioctl {request:#x}")


# --------------------------------------------------------------------------- system calls


class Sys(Protocol):
    """What the plugin needs from the operating system (any object with these methods)."""

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
        prot = _mmap.PROT_READ | _mmap.PROT_WRITE
        if fd == -1:
            return _mmap.mmap(-1, length, flags=_mmap.MAP_PRIVATE | _mmap.MAP_ANONYMOUS, prot=prot)
        return _mmap.mmap(fd, length, flags=_mmap.MAP_SHARED, prot=prot)


#: errnos that mean "no such device" when opening /dev/kvm.
NO_DEVICE_ERRNOS: Final = frozenset({errno.ENOENT, errno.ENODEV, errno.ENXIO})
#: errnos that mean "permission denied".
PERMISSION_ERRNOS: Final = frozenset({errno.EACCES, errno.EPERM})


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
