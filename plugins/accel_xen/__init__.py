"""The xen accelerator plugin: an honest stub (registered through the accel.plugins entry point).

It probes the host for Xen (dom0, domU or none) and answers capabilities, but does not
drive libxenctrl: on a dom0 it is present and ``create_vm`` raises
:class:`~accel.errors.UnsupportedError`. Its clock-device hook follows QEMU for Xen
machines: no PIT device (Xen emulates the PIT in the hypervisor) and no kvmclock (the
guest's paravirtual clock comes from Xen itself).

Registering the plugin imports neither :mod:`accel_xen.accelerator` nor the accelerator
interface: the factory imports them when a xen accelerator is first created, and
``XenAccelerator`` and ``xen_answers`` are re-exported lazily.
"""

from __future__ import annotations

from accel._lazy import exports
from accel.plugin import AcceleratorInfo, ClockDeviceChoice, hookimpl

TYPE_CHECKING = False
if TYPE_CHECKING:
    from accel.accelerator import Accelerator
    from accel.plugin import MachineView

    from .accelerator import XenAccelerator, xen_answers

__all__ = [
    "UNSUPPORTED",
    "XenAccelerator",
    "accel_accelerators",
    "accel_clock_devices",
    "xen_answers",
]

_NOT_DRIVEN = "this stub does not drive libxenctrl"
_WHY = f"{_NOT_DRIVEN}, so it cannot ask the hypervisor"
_NO_VMS = "this stub does not drive libxenctrl, so it creates no VMs"

#: The stub's answer for every capability, in :class:`~accel.Capability` order:
#: (capability value, support value, source). :func:`xen_answers` builds its
#: :class:`~accel.CapabilitySet` from it.
_ANSWERS: tuple[tuple[str, str, str], ...] = (
    ("user-memory", "no", "Xen guest RAM is hypervisor-owned, mapped by foreign mapping"),
    ("nr-vcpus", "unknown", _WHY),
    ("max-vcpus", "unknown", _WHY),
    ("irqchip", "yes", "Xen emulates PIC/IOAPIC/LAPIC in the hypervisor for HVM guests"),
    ("pit", "yes", "Xen emulates the i8254 PIT in the hypervisor for HVM guests (as in QEMU)"),
    (
        "pv-clocksource",
        "unknown",
        "the guest's paravirtual clock is Xen's own (not kvmclock); " + _WHY,
    ),
    ("pv-clocksource-stable", "unknown", _WHY),
    ("adjust-clock", "unknown", _WHY),
    ("clock-ctrl", "unknown", _WHY),
    ("tsc-control", "unknown", _WHY),
    ("tsc-khz", "unknown", _WHY),
    ("ioeventfd", "unknown", _WHY),
    ("irqfd", "unknown", _WHY),
    ("xsave", "unknown", _WHY),
    ("vm-capability-query", "no", f"no VMs: {_NOT_DRIVEN}"),
)

#: Conformance features the stub cannot provide, with the reason: every feature that
#: needs a VM, and every capability it cannot answer "yes" (the source says why).
UNSUPPORTED: dict[str, str] = dict.fromkeys(
    (
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
    ),
    _NO_VMS,
)
UNSUPPORTED.update((cap, source) for cap, support, source in _ANSWERS if support != "yes")


#: ``accel_xen.XenAccelerator`` and ``accel_xen.xen_answers``, imported on first use.
__getattr__ = exports(globals(), dict.fromkeys(("XenAccelerator", "xen_answers"), ".accelerator"))[
    0
]
del exports


def _create() -> XenAccelerator:
    """A new :class:`XenAccelerator` (the factory; imports the accelerator module)."""
    from .accelerator import XenAccelerator

    return XenAccelerator()


@hookimpl
def accel_accelerators() -> list[AcceleratorInfo]:
    """The ``xen`` accelerator stub (hardware, priority 90)."""
    return [
        AcceleratorInfo(
            name="xen",
            summary="Xen (stub: probes dom0/domU, does not drive libxenctrl)",
            factory=_create,
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
