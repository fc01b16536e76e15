"""The closed list of conformance features an accelerator may declare unsupported.

An accelerator declares what it does not support in its description::

    accel.AcceleratorInfo(
        name="mine", summary="...", factory=Mine,
        unsupported={"mmio": "mine has no MMIO exits yet",
                     "tsc-khz": "mine cannot tell the guest TSC frequency"},
    )

Two kinds of names make up the list (:data:`FEATURES`):

* a :class:`Feature` (``"mmio"``, ``"snapshot"`` ...): the checks that need it skip with
  the stated reason when they fail;
* a :class:`~accel.Capability` value (``"pv-clocksource"``): the capability is not
  supported, and may be answered ``unknown`` as well as ``no`` (an undeclared capability
  must be answered yes or no).

Everything else must pass. A declaration that is not needed (its check passes, or the
capability is answered yes) is reported as ``declared-unsupported-but-passes``. A name
outside the list is itself a conformance failure
(:func:`accel.testing.checks.check_declarations`), with a did-you-mean.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from ..capabilities import Capability

__all__ = [
    "FEATURES",
    "Feature",
    "declared_capabilities",
    "feature_description",
]


class Feature(enum.Enum):
    """A conformance feature; the value is the name used in ``unsupported``."""

    VM = "vm"
    """VMs and vCPUs can be created, used and closed."""
    MULTIPLE_VMS = "multiple-vms"
    """Two VMs of one accelerator can exist at once, independently."""
    REGISTERS = "registers"
    """General and special registers read back exactly what was written."""
    GUEST_CODE = "guest-code"
    """Real-mode guest code runs: arithmetic, string instructions, stack and calls, HLT."""
    PORT_IO = "port-io"
    """Port I/O exits, both directions, with the data the guest sent or receives."""
    MMIO = "mmio"
    """MMIO exits, both directions, with the data the guest sent or receives."""
    PROTECTED_MODE = "protected-mode"
    """The guest can enter 32-bit protected mode and run there."""
    LONG_MODE = "long-mode"
    """The guest can enter 64-bit long mode (paging, EFER.LME) and run there."""
    CLOCK = "clock"
    """The VM clock can be read and set; it is monotonic and advances while running."""
    PAUSE = "pause"
    """Pausing the VM stops its clock and forbids runs; resuming restarts both."""
    CLOCK_DEVICES = "clock-devices"
    """A machine's clock devices follow the accelerator's capabilities."""
    SNAPSHOT = "snapshot"
    """A VM's state saves and restores into another VM of the same accelerator."""

    @property
    def description(self) -> str:
        return _DESCRIPTIONS[self]


_DESCRIPTIONS: Mapping[Feature, str] = {
    Feature.VM: "VMs and vCPUs can be created, used and closed",
    Feature.MULTIPLE_VMS: "two VMs can exist at once, independently",
    Feature.REGISTERS: "registers read back what was written",
    Feature.GUEST_CODE: "real-mode guest code runs (arithmetic, strings, stack, HLT)",
    Feature.PORT_IO: "port I/O exits in both directions",
    Feature.MMIO: "MMIO exits in both directions",
    Feature.PROTECTED_MODE: "guest can enter 32-bit protected mode",
    Feature.LONG_MODE: "guest can enter 64-bit long mode",
    Feature.CLOCK: "VM clock readable, settable, monotonic, advancing",
    Feature.PAUSE: "pause stops the VM clock and runs",
    Feature.CLOCK_DEVICES: "machine clock devices follow capabilities",
    Feature.SNAPSHOT: "VM state saves and restores",
}


def declared_capabilities(declared: Mapping[str, str]) -> dict[Capability, str]:
    """The capabilities ``declared`` says are unsupported, with the reasons."""
    return {cap: declared[cap.value] for cap in Capability if cap.value in declared}


#: Every name an accelerator may declare unsupported.
FEATURES: tuple[str, ...] = (
    *(f.value for f in Feature),
    *(c.value for c in Capability),
)


def feature_description(name: str) -> str:
    """One line saying what a declared name means (ValueError for names not in the list)."""
    for cap in Capability:
        if cap.value == name:
            return f"capability not supported: {cap.description}"
    return Feature(name).description
