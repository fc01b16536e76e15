"""The tcg accelerator plugin: x86 software emulation on unicorn (QEMU's TCG as a library).

Registered through the ``accel.plugins`` entry point (``tcg = "accel_tcg"``); this module
holds the hook implementations and uses only accel's public API. The accelerator, its VMs
and vCPUs are in :mod:`accel_tcg.accelerator`; unicorn itself is imported by
:meth:`TcgAccelerator.probe`, which reports the accelerator unavailable with the import
error when it fails.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from accel.plugin import AcceleratorInfo, PropertySpec, hookimpl

if TYPE_CHECKING:
    from .accelerator import TcgAccelerator

__all__ = ["PROPERTIES", "UNSUPPORTED", "accel_accelerators", "create"]

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
    "xsave": "no extended XSAVE components (no AVX in the CPU model); x87/SSE are in get_fpu",
}


#: The ``--accel tcg,PROP=VALUE`` properties (QEMU's -accel tcg names), passed to
#: :class:`TcgAccelerator` as keyword arguments.
PROPERTIES: tuple[PropertySpec, ...] = (
    PropertySpec(
        "thread",
        str,
        "single",
        "single (default): one vCPU of a VM emulates at a time, round-robin with a time "
        "slice, so LOCK-prefixed instructions are atomic across vCPUs (correct SMP); "
        "multi: every vCPU's engine runs in parallel on its own host thread, one vCPU per "
        "VM (unicorn's generated code is not atomic across engines)",
        choices=("single", "multi"),
    ),
    PropertySpec(
        "tb-size",
        int,
        7,
        "translation-buffer size of each vCPU's engine in MiB (default 7: an idle VM "
        "costs 0.83 MiB, where unicorn's 1024 costs 2.8 MiB in a transparent huge page)",
        min=1,
        max=4096,
    ),
)


def create(*, thread: str = "single", tb_size: int | None = None) -> TcgAccelerator:
    """A new :class:`~accel_tcg.accelerator.TcgAccelerator` (the accelerator's factory).

    The accelerator module is imported here, when an accelerator is made, not when the
    plugin registers: listing plugins and choosing another accelerator never loads it.
    """
    from .accelerator import TcgAccelerator

    return TcgAccelerator(thread=thread, tb_size=tb_size)


@hookimpl
def accel_accelerators() -> list[AcceleratorInfo]:
    """The ``tcg`` accelerator (software emulation, priority 10)."""
    return [
        AcceleratorInfo(
            name="tcg",
            summary="x86 software emulation on unicorn (QEMU's TCG as a library)",
            factory=create,
            priority=10,
            unsupported=UNSUPPORTED,
            hardware=False,
            properties=PROPERTIES,
        )
    ]
