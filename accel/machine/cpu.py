"""CPU models and ``-cpu`` specs.

A CPU is chosen like QEMU's ``-cpu``: a model name and flags switched on or off
(``host,-pv-flag,+x2apic``), parsed by :meth:`accel.CpuSpec.parse`. The machine type
gives the default model; ``host`` (the host CPU passed through) needs a hardware
accelerator, as in QEMU ("CPU model 'host' requires KVM or HVF").

Flags an accelerator understands (its paravirtual features, for instance) default
per accelerator: the accelerator's plugin reads ``machine.cpu.flag(name, default)`` with
its own default, so a flag the user did not name takes that accelerator's default
(QEMU turns its paravirtual clock flag on for every named model under a hypervisor
that has one, and the flag means nothing elsewhere). The core only records the user's
choices; it never names an accelerator's flag.

The model table and :func:`resolve_cpu` live in :mod:`accel.machine.machine` (a machine
needs them, and that module is loaded anyway); they are re-exported here.
"""

from __future__ import annotations

from .._records import record
from .machine import _CPU_MODELS as _MODELS
from .machine import _LazyMapping, resolve_cpu

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["CPU_MODELS", "CpuModel", "cpu_models", "resolve_cpu"]


@record(frozen=True)
class CpuModel:
    """A named CPU model."""

    name: str
    description: str
    requires_hardware: bool = False
    bits: int = 64

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "description": self.description,
            "requires_hardware": self.requires_hardware,
            "bits": self.bits,
        }


def _build() -> dict[str, CpuModel]:
    return {name: CpuModel(name, *entry) for name, entry in _MODELS.items()}


CPU_MODELS: Mapping[str, CpuModel] = _LazyMapping(_build)


def cpu_models() -> list[CpuModel]:
    return list(CPU_MODELS.values())
