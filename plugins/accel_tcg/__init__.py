"""The tcg accelerator plugin: x86 software emulation on unicorn (QEMU's TCG as a library).

Registered through the ``accel.plugins`` entry point (``tcg = "accel_tcg"``). Importing
this package imports neither unicorn nor the accelerator module: registration needs only
the :class:`~accel.AcceleratorInfo`, whose factory imports :mod:`accel_tcg.accelerator`
when a tcg accelerator is first created (the names below are re-exported lazily).
:meth:`TcgAccelerator.probe` imports unicorn, and reports the accelerator unavailable with
the import error when it fails.
"""

from __future__ import annotations

from accel._lazy import exports
from accel.plugin import AcceleratorInfo, hookimpl

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .accelerator import MAX_VCPUS, TcgAccelerator, TcgVcpu, TcgVM

_LAZY = frozenset({"MAX_VCPUS", "TcgAccelerator", "TcgVM", "TcgVcpu"})


#: ``accel_tcg.TcgAccelerator`` and friends, imported on first use (PEP 562).
__getattr__ = exports(globals(), dict.fromkeys(_LAZY, ".accelerator"))[0]
del exports


def _create() -> TcgAccelerator:
    """A new :class:`TcgAccelerator` (the factory; imports the accelerator module)."""
    from .accelerator import TcgAccelerator

    return TcgAccelerator()


__all__ = ["MAX_VCPUS", "UNSUPPORTED", "TcgAccelerator", "TcgVM", "TcgVcpu", "accel_accelerators"]

#: Conformance features TCG does not have, and why (keys are capability names).
UNSUPPORTED: dict[str, str] = {
    "irqchip": "software emulation: no in-accelerator interrupt controller",
    "pit": "software emulation: no in-accelerator i8254 PIT",
    "pv-clocksource": "no paravirtual clock: TCG shows no KVM CPUID leaves (as in QEMU)",
    "pv-clocksource-stable": "no paravirtual clock",
    "clock-ctrl": "no paravirtual clock to tell about a pause",
    "tsc-control": "unicorn cannot scale the guest TSC",
    "tsc-khz": "unicorn does not report the guest TSC frequency",
    "ioeventfd": "every port/MMIO access exits to the caller",
    "irqfd": "no interrupt injection by eventfd",
    "xsave": "no XSAVE-area state API",
}


@hookimpl
def accel_accelerators() -> list[AcceleratorInfo]:
    """The ``tcg`` accelerator (software emulation, priority 10)."""
    return [
        AcceleratorInfo(
            name="tcg",
            summary="x86 software emulation on unicorn (QEMU's TCG as a library)",
            factory=_create,
            priority=10,
            unsupported=UNSUPPORTED,
            hardware=False,
        )
    ]
