"""The kvm accelerator plugin (registered through the ``accel.plugins`` entry point).

Linux KVM on ``/dev/kvm`` through the standard library only (``os``, ``fcntl.ioctl``,
``mmap``, ``ctypes``). The package is laid out as kvm-ioctls and cloud-hypervisor's
hypervisor crate are, one module per layer, each importing only the ones below it:

* :mod:`accel_kvm.bindings` — the ABI: constants and ctypes structures;
* :mod:`accel_kvm.ioctls` — ioctl numbers, the :class:`Sys` system-call layer,
  :class:`HostSys` (the real calls) and ``call()``;
* :mod:`accel_kvm.capabilities` — KVM_CAP numbers mapped onto :class:`accel.Capability`;
* :mod:`accel_kvm.vcpu` — :class:`KvmVcpu`: registers, CPUID, the KVM_RUN loop;
* :mod:`accel_kvm.vm` — :class:`KvmVM`: guest memory, vCPUs, the VM clock;
* :mod:`accel_kvm.accelerator` — :class:`KvmAccelerator`: probe, host capabilities, VMs;
* :mod:`accel_kvm.devices` — the kvmclock and kvm-pit machine devices (imported by the
  device hooks below, as it needs :mod:`accel.machine`);
* :mod:`accel_kvm.testing` — :class:`FaultInjector` and :class:`RecordingSys`, layers
  that wrap a :class:`Sys` for tests.

This module holds the hook implementations. It uses only accel's public API, as any
third-party accelerator plugin would.
"""

from __future__ import annotations

from accel.accelerator import Accelerator
from accel.plugin import AcceleratorInfo, ClockDeviceChoice, DeviceType, MachineView, hookimpl

from .accelerator import KvmAccelerator
from .ioctls import HostSys, Sys
from .testing import FaultInjector, RecordingSys
from .vcpu import CPU_FLAGS, KvmVcpu
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
    "accel_clock_devices",
    "accel_device_types",
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
            cpu_flags=CPU_FLAGS,
        )
    ]


@hookimpl
def accel_device_types() -> list[DeviceType]:
    """kvmclock and kvm-pit (see :mod:`accel_kvm.devices`)."""
    from . import devices

    return devices.device_types()


@hookimpl
def accel_clock_devices(accelerator: Accelerator, machine: MachineView) -> list[ClockDeviceChoice]:
    """kvmclock, kvm-pit and the microvm RTC, decided by ``accelerator``'s capabilities
    (see :mod:`accel_kvm.devices`)."""
    from . import devices

    return devices.clock_devices(accelerator, machine)
