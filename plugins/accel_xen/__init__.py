"""The xen accelerator plugin: an honest stub (registered through the accel.plugins entry point).

It probes the host for Xen (dom0, domU or none) and answers capabilities, but does not
drive libxenctrl: on a dom0 it is present but creates no VMs (see
:mod:`accel_xen.accelerator`). Its clock-device hook follows QEMU for Xen machines,
decided by capabilities: no PIT device (Xen emulates the PIT in the hypervisor) and no
kvmclock (the guest's paravirtual clock comes from Xen itself).

This module holds the hook implementations; it uses only accel's public API.
"""

from __future__ import annotations

from accel.accelerator import Accelerator
from accel.capabilities import Capability, CapabilitySet, Support
from accel.plugin import AcceleratorInfo, ClockDeviceChoice, MachineView, hookimpl

from .accelerator import UNSUPPORTED, XenAccelerator, xen_answers

__all__ = [
    "UNSUPPORTED",
    "XenAccelerator",
    "accel_accelerators",
    "accel_clock_devices",
    "xen_answers",
]


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


def hypervisor_owned(caps: CapabilitySet) -> bool:
    """Xen's model: the hypervisor emulates the PIT (and the interrupt controllers) and
    owns its guests' memory (``PIT`` yes, ``USER_MEMORY`` no); QEMU then creates no PIT
    device and no kvmclock."""
    return (
        caps.support(Capability.PIT) is Support.YES
        and caps.support(Capability.USER_MEMORY) is Support.NO
    )


@hookimpl
def accel_clock_devices(
    accelerator: Accelerator, machine: MachineView
) -> list[ClockDeviceChoice] | None:
    """Xen machines as QEMU builds them: no PIT device, the hypervisor's own PV clock.

    Decided by capabilities (:func:`hypervisor_owned`), so a wrapper around a Xen
    accelerator is answered the same; other accelerators get no decision from here.
    """
    caps = accelerator.capabilities()
    if not hypervisor_owned(caps):
        return None
    out = [
        ClockDeviceChoice(
            "isa-pit", present=False, reason="the PIT is emulated in the hypervisor (as Xen)"
        )
    ]
    if caps.support(Capability.PV_CLOCKSOURCE) is not Support.YES:
        out.append(
            ClockDeviceChoice(
                "kvmclock",
                present=False,
                reason="the paravirtual clock is the hypervisor's own (Xen's), not kvmclock",
            )
        )
    return out
