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

:data:`CPU_MODELS` is built when this module is imported and never changes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING

from ..accelerator import CpuSpec
from ..errors import ConfigError, InvalidArgumentError, did_you_mean

if TYPE_CHECKING:
    from ..plugin import AcceleratorInfo

__all__ = ["CPU_MODELS", "CpuModel", "cpu_models", "resolve_cpu"]


@dataclasses.dataclass(frozen=True, slots=True)
class CpuModel:
    """A named CPU model: what ``-cpu help`` lists."""

    name: str
    description: str
    requires_hardware: bool = False
    bits: int = 64

    def to_json(self) -> dict[str, object]:
        return dataclasses.asdict(self)


#: Every CPU model by name, in ``-cpu help`` order (read-only).
CPU_MODELS: Mapping[str, CpuModel] = MappingProxyType(
    {
        m.name: m
        for m in (
            CpuModel("host", "the host CPU, all supported features", True),
            CpuModel("max", "all features the accelerator supports"),
            CpuModel("base", "base CPU model with no features enabled"),
            CpuModel("qemu64", "QEMU Virtual CPU version 2.5+ (64-bit)"),
            CpuModel("qemu32", "QEMU Virtual CPU version 2.5+ (32-bit)", bits=32),
            CpuModel("486", "Intel 486", bits=32),
            CpuModel("pentium", "Intel Pentium", bits=32),
            CpuModel("pentium2", "Intel Pentium II", bits=32),
            CpuModel("pentium3", "Intel Pentium III", bits=32),
            CpuModel("core2duo", "Intel Core 2 Duo"),
            CpuModel("Nehalem", "Intel Core i7 9xx (Nehalem Class Core i7)"),
            CpuModel("SandyBridge", "Intel Xeon E312xx (Sandy Bridge)"),
            CpuModel("Haswell", "Intel Core Processor (Haswell)"),
            CpuModel("Skylake-Client", "Intel Core Processor (Skylake)"),
            CpuModel("EPYC", "AMD EPYC Processor"),
        )
    }
)


def cpu_models() -> list[CpuModel]:
    """Every CPU model, in ``-cpu help`` order."""
    return list(CPU_MODELS.values())


def resolve_cpu(
    spec: str | CpuSpec | None, default_model: str, info: AcceleratorInfo | None = None
) -> CpuSpec:
    """The :class:`CpuSpec` for ``spec`` (None: the machine type's ``default_model``).

    Raises :class:`~accel.errors.ConfigError` for an unknown model, or for a model that
    needs hardware virtualization on an accelerator that is not (``info.hardware`` False).
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
    model = CPU_MODELS.get(cpu.model)
    if model is None:
        guess = did_you_mean(cpu.model, list(CPU_MODELS))
        raise ConfigError(
            f"unknown CPU model {cpu.model!r}",
            hint=(f"did you mean {guess!r}? " if guess else "")
            + "models: "
            + ", ".join(CPU_MODELS),
            cpu=str(cpu),
        )
    if model.requires_hardware and info is not None and not info.hardware:
        raise ConfigError(
            f"CPU model {cpu.model!r} requires a hardware accelerator; {info.name} is not one",
            hint="use a named model such as 'qemu64' or 'max'",
            cpu=str(cpu),
            accelerator=info.name,
        )
    return cpu
