"""The kvm accelerator plugin (registered through the accel.plugins entry point).

Linux KVM on ``/dev/kvm`` through the standard library only (``os``, ``fcntl.ioctl``,
``mmap``, ``ctypes``): host probe and capabilities, VM handles with guest memory,
vCPUs with registers, CPUID and the run loop, and the kvmclock VM clock.
"""

from __future__ import annotations

from accel.plugin import AcceleratorInfo, hookimpl

from ._ioctl import FaultInjector, HostSys, RecordingSys, Sys
from .accelerator import KvmAccelerator
from .machine import accel_clock_devices, accel_device_types  # noqa: F401
from .vcpu import KvmVcpu
from .vm import KvmVM

__all__ = [
    "FaultInjector",
    "HostSys",
    "KvmAccelerator",
    "KvmVM",
    "KvmVcpu",
    "RecordingSys",
    "Sys",
    "accel_accelerators",
]


@hookimpl
def accel_accelerators() -> list[AcceleratorInfo]:
    """The kvm accelerator."""
    return [
        AcceleratorInfo(
            name="kvm",
            summary="Linux KVM hardware virtualization (/dev/kvm)",
            priority=100,
            factory=KvmAccelerator,
            hardware=True,
            unsupported={},
        )
    ]
