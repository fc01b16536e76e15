"""The kvm accelerator plugin (registered through the accel.plugins entry point).

Linux KVM on ``/dev/kvm`` through the standard library only (``os``, ``fcntl.ioctl``,
``mmap``, ``ctypes``): host probe and capabilities, VM handles with guest memory,
vCPUs with registers, CPUID and the run loop, and the kvmclock VM clock.

Registration imports only what it needs (the accelerator class, the factory): the VM and
vCPU handles (:mod:`accel_kvm.vm`) load with the first VM, the machine-device module (and
with it :mod:`accel.machine`) the first time a machine asks the device hooks.
"""

from __future__ import annotations

from accel._lazy import exports
from accel.plugin import AcceleratorInfo, hookimpl

from ._abi import HostSys
from .accelerator import KvmAccelerator

TYPE_CHECKING = False
if TYPE_CHECKING:
    from accel.accelerator import Accelerator
    from accel.plugin import ClockDeviceChoice, DeviceType, MachineView

    from ._wrappers import FaultInjector, RecordingSys, Sys
    from .vm import KvmVcpu, KvmVM

#: ``accel_kvm.KvmVM``, ``KvmVcpu``, ``FaultInjector``, ``RecordingSys`` and ``Sys``,
#: imported on first use (PEP 562).
_LAZY = {
    "FaultInjector": "_wrappers",
    "KvmVcpu": "vm",
    "KvmVM": "vm",
    "RecordingSys": "_wrappers",
    "Sys": "_wrappers",
}
__getattr__ = exports(globals(), {name: f".{module}" for name, module in _LAZY.items()})[0]
del exports


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


@hookimpl
def accel_device_types() -> list[DeviceType]:
    """kvmclock and kvm-pit (see :mod:`accel_kvm.machine`, imported on first call)."""
    from . import machine

    return machine.accel_device_types()


@hookimpl
def accel_clock_devices(
    accelerator: Accelerator, machine: MachineView
) -> list[ClockDeviceChoice] | None:
    """The clock devices for a machine on ``accelerator`` (see :mod:`accel_kvm.machine`)."""
    from . import machine as _machine

    return _machine.accel_clock_devices(accelerator, machine)
