"""The xen accelerator plugin: an honest stub (registered through the accel.plugins entry point).

It probes the host for Xen (dom0, domU or none) and answers capabilities, but does not
drive libxenctrl: on a dom0 it is present and ``create_vm`` raises
:class:`~accel.errors.UnsupportedError`. Its clock-device hook follows QEMU for Xen
machines: no PIT device (Xen emulates the PIT in the hypervisor) and no kvmclock (the
guest's paravirtual clock comes from Xen itself).
"""

from __future__ import annotations

from accel.accelerator import Accelerator
from accel.plugin import AcceleratorInfo, ClockDeviceChoice, MachineView, hookimpl

from .accelerator import XenAccelerator, xen_answers

__all__ = [
    "UNSUPPORTED",
    "XenAccelerator",
    "accel_accelerators",
    "accel_clock_devices",
    "xen_answers",
]

_NO_VMS = "this stub does not drive libxenctrl, so it creates no VMs"

#: Conformance features the stub cannot provide, with the reason.
UNSUPPORTED: dict[str, str] = {
    "vm": _NO_VMS,
    "multiple-vms": _NO_VMS,
    "registers": _NO_VMS,
    "guest-code": _NO_VMS,
    "port-io": _NO_VMS,
    "mmio": _NO_VMS,
    "protected-mode": _NO_VMS,
    "clock": _NO_VMS,
    "pause": _NO_VMS,
    "snapshot": _NO_VMS,
    "user-memory": "Xen guest RAM belongs to the hypervisor",
    "vm-capability-query": _NO_VMS,
}


@hookimpl
def accel_accelerators() -> list[AcceleratorInfo]:
    """The ``xen`` accelerator stub (hardware, priority 90)."""
    return [
        AcceleratorInfo(
            name="xen",
            summary="Xen (stub: probes dom0/domU, does not drive libxenctrl)",
            factory=XenAccelerator,
            priority=90,
            unsupported=UNSUPPORTED,
            hardware=True,
        )
    ]


@hookimpl
def accel_clock_devices(
    accelerator: Accelerator, machine: MachineView
) -> list[ClockDeviceChoice] | None:
    """Xen machines as QEMU builds them: no PIT device, the hypervisor's own PV clock."""
    if accelerator.name != "xen":
        return None
    return [
        ClockDeviceChoice(
            "isa-pit", present=False, reason="Xen emulates the PIT in the hypervisor"
        ),
        ClockDeviceChoice(
            "kvmclock",
            present=False,
            reason="the paravirtual clock is provided by the Xen hypervisor (not kvmclock)",
        ),
    ]
