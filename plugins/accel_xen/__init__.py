"""The xen accelerator plugin: an honest stub (registered through the accel.plugins entry point).

It probes the host for Xen (dom0, domU or none) and answers capabilities, but does not
drive libxenctrl: on a dom0 it is present and ``create_vm`` raises
:class:`~accel.errors.UnsupportedError`. Its clock-device hook follows QEMU for Xen
machines: no PIT device (Xen emulates the PIT in the hypervisor) and no kvmclock (the
guest's paravirtual clock comes from Xen itself).
"""

from __future__ import annotations

from accel.accelerator import Accelerator
from accel.capabilities import Support
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

#: Conformance features the stub cannot provide, with the reason: every feature that
#: needs a VM, and every capability it cannot answer "yes" (the source says why).
UNSUPPORTED: dict[str, str] = {
    **{
        feature: _NO_VMS
        for feature in (
            "vm",
            "multiple-vms",
            "registers",
            "guest-code",
            "port-io",
            "mmio",
            "protected-mode",
            "clock",
            "pause",
            "clock-devices",
            "snapshot",
        )
    },
    **{
        cap.value: answer.source
        for cap, answer in xen_answers().items()
        if answer.support is not Support.YES
    },
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
