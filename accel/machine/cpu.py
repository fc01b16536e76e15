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
"""

from __future__ import annotations

from .._records import record
from ..accelerator import CpuSpec
from ..errors import ConfigError, InvalidArgumentError, did_you_mean
from .types import _LazyMapping

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

    from ..plugin import AcceleratorInfo

__all__ = ["CPU_MODELS", "CpuModel", "cpu_models", "resolve_cpu"]


@record(frozen=True)
class CpuModel:
    """A named CPU model."""

    name: str
    description: str
    requires_hardware: bool = False
    bits: int = 64

    def __init__(
        self, name: str, description: str, requires_hardware: bool = False, bits: int = 64
    ) -> None:
        set_ = object.__setattr__
        set_(self, "name", name)
        set_(self, "description", description)
        set_(self, "requires_hardware", requires_hardware)
        set_(self, "bits", bits)

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "description": self.description,
            "requires_hardware": self.requires_hardware,
            "bits": self.bits,
        }


#: name -> (description, requires_hardware, bits), in ``-cpu help`` order.
_MODELS: dict[str, tuple[str, bool, int]] = {
    "host": ("the host CPU, all supported features", True, 64),
    "max": ("all features the accelerator supports", False, 64),
    "base": ("base CPU model with no features enabled", False, 64),
    "qemu64": ("QEMU Virtual CPU version 2.5+ (64-bit)", False, 64),
    "qemu32": ("QEMU Virtual CPU version 2.5+ (32-bit)", False, 32),
    "486": ("Intel 486", False, 32),
    "pentium": ("Intel Pentium", False, 32),
    "pentium2": ("Intel Pentium II", False, 32),
    "pentium3": ("Intel Pentium III", False, 32),
    "core2duo": ("Intel Core 2 Duo", False, 64),
    "Nehalem": ("Intel Core i7 9xx (Nehalem Class Core i7)", False, 64),
    "SandyBridge": ("Intel Xeon E312xx (Sandy Bridge)", False, 64),
    "Haswell": ("Intel Core Processor (Haswell)", False, 64),
    "Skylake-Client": ("Intel Core Processor (Skylake)", False, 64),
    "EPYC": ("AMD EPYC Processor", False, 64),
}


def _build() -> dict[str, CpuModel]:
    return {name: CpuModel(name, *entry) for name, entry in _MODELS.items()}


CPU_MODELS: Mapping[str, CpuModel] = _LazyMapping(_build)


def cpu_models() -> list[CpuModel]:
    return list(CPU_MODELS.values())


def resolve_cpu(
    spec: str | CpuSpec | None, default_model: str, info: AcceleratorInfo | None = None
) -> CpuSpec:
    """The :class:`CpuSpec` for ``spec`` (None: the machine type's ``default_model``).

    Raises :class:`~accel.errors.ConfigError` for an unknown model, or for ``host`` on an
    accelerator that is not hardware virtualization (``info.hardware`` False).
    """
    if spec is None:
        cpu = CpuSpec(default_model)
    elif isinstance(spec, CpuSpec):
        cpu = spec
    else:
        try:
            cpu = CpuSpec.parse(spec)
        except InvalidArgumentError as exc:
            raise ConfigError(exc.message, hint=exc.hint, cpu=spec) from None
    entry = _MODELS.get(cpu.model)
    if entry is None:
        guess = did_you_mean(cpu.model, list(_MODELS))
        raise ConfigError(
            f"unknown CPU model {cpu.model!r}",
            hint=(f"did you mean {guess!r}? " if guess else "") + "models: " + ", ".join(_MODELS),
            cpu=str(cpu),
        )
    if entry[1] and info is not None and not info.hardware:
        raise ConfigError(
            f"CPU model {cpu.model!r} requires a hardware accelerator; {info.name} is not one",
            hint="use a named model such as 'qemu64' or 'max'",
            cpu=str(cpu),
            accelerator=info.name,
        )
    return cpu
