"""Machine types: versioned like QEMU's x86 list, each with compat properties.

A :class:`MachineType` names the platform devices it models (clock and timer devices,
the debug ports a user adds, the interrupt controller where the accelerator provides
it) and carries *compat properties*: settings an older machine type keeps so a guest
sees the platform it always saw. The list follows QEMU 7.2's ``-machine help``:

* ``pc-i440fx-1.4`` ... ``pc-i440fx-7.2`` and ``pc`` (alias of the newest);
* ``pc-q35-2.4`` ... ``pc-q35-7.2`` (with ``pc-q35-4.0.1``) and ``q35``;
* ``microvm`` and ``isapc`` (unversioned).

Compat properties are ``"driver.property" -> value`` strings. Besides device
properties a machine type sets machine-level options under the ``machine.`` driver,
which clock-device hooks read:

``machine.kernel-irqchip``
    ``on`` (the accelerator's in-kernel interrupt controller and PIT when it has them),
    ``split`` (only the local APICs in the accelerator, so the PIT stays in userspace:
    ``microvm`` and ``pc-q35-4.0``) or ``off``.
``machine.pv-clock-always``
    ``on`` when the machine creates the accelerator's paravirtual clock device whenever
    the accelerator reports one, whatever the CPU model's flag says (QEMU's
    ``kvmclock_create_always``: pc/q35 5.2 and later, ``microvm``, ``isapc``); ``off``
    when the CPU model's paravirtual-clock flag decides (pc/q35 5.1 and older).
``machine.rtc``
    ``on`` or ``auto`` (``microvm``: the RTC only when the accelerator does not supply a
    paravirtual clock of its own, decided by the accelerator's hook).
``machine.pv-clock-reliable-get-clock``
    ``off`` on types 2.8 and older: the paravirtual clock device does not send its
    "clock read is reliable" state (QEMU's ``x-mach-use-reliable-get-clock=off``).

Example::

    >>> mt = resolve_machine_type("pc")
    >>> mt.name, mt.version
    ('pc-i440fx-7.2', (7, 2))
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from ..errors import ConfigError, did_you_mean

__all__ = [
    "MACHINE_TYPES",
    "MachineType",
    "PlatformDevice",
    "machine_types",
    "resolve_machine_type",
]


@dataclass(frozen=True)
class PlatformDevice:
    """A device a machine type creates at initialisation, with its properties."""

    type: str
    properties: tuple[tuple[str, object], ...] = ()


@dataclass(frozen=True)
class MachineType:
    """One machine type: name, family, version, default CPU, devices and compat props."""

    name: str
    family: str
    description: str
    version: tuple[int, ...] | None = None
    aliases: tuple[str, ...] = ()
    default_cpu: str = "qemu64"
    devices: tuple[PlatformDevice, ...] = ()
    compat: Mapping[str, str] = field(default_factory=dict)
    deprecated: bool = False
    is_default: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "compat", MappingProxyType(dict(self.compat)))

    @property
    def version2(self) -> tuple[int, int] | None:
        """The (major, minor) version, None for unversioned types."""
        return (self.version[0], self.version[1]) if self.version else None

    def option(self, name: str) -> str | None:
        """A machine-level option (``kernel-irqchip``) from the compat properties."""
        return self.compat.get(f"machine.{name}")

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "family": self.family,
            "description": self.description,
            "version": ".".join(map(str, self.version)) if self.version else None,
            "aliases": list(self.aliases),
            "default_cpu": self.default_cpu,
            "devices": [d.type for d in self.devices],
            "compat": dict(self.compat),
            "deprecated": self.deprecated,
        }


# --------------------------------------------------------------------------- the list

_PC_VERSIONS: list[tuple[int, ...]] = [
    (7, 2), (7, 1), (7, 0), (6, 2), (6, 1), (6, 0), (5, 2), (5, 1), (5, 0), (4, 2), (4, 1),
    (4, 0), (3, 1), (3, 0), (2, 12), (2, 11), (2, 10), (2, 9), (2, 8), (2, 7), (2, 6),
    (2, 5), (2, 4), (2, 3), (2, 2), (2, 1), (2, 0), (1, 7), (1, 6), (1, 5), (1, 4),
]  # fmt: skip
_Q35_VERSIONS: list[tuple[int, ...]] = [
    (7, 2), (7, 1), (7, 0), (6, 2), (6, 1), (6, 0), (5, 2), (5, 1), (5, 0), (4, 2), (4, 1),
    (4, 0, 1), (4, 0), (3, 1), (3, 0), (2, 12), (2, 11), (2, 10), (2, 9), (2, 8), (2, 7),
    (2, 6), (2, 5), (2, 4),
]  # fmt: skip

_PC_DEVICES = (
    PlatformDevice("isa-pit"),
    PlatformDevice("hpet"),
    PlatformDevice("mc146818rtc"),
)


def _pc_compat(version: tuple[int, ...], family: str) -> dict[str, str]:
    v = (version[0], version[1])
    out = {
        "machine.kernel-irqchip": "on",
        "machine.pv-clock-always": "on" if v >= (5, 2) else "off",
        "machine.rtc": "on",
    }
    # pc-q35-4.0 defaulted to a split irqchip; 4.0.1 reverted it (QEMU commit c87759ce).
    if family == "q35" and version == (4, 0):
        out["machine.kernel-irqchip"] = "split"
    if v <= (2, 8):
        # QEMU's pc_compat_2_8: old types do not send the pv clock's "reliable" subsection.
        out["machine.pv-clock-reliable-get-clock"] = "off"
    if v <= (1, 7):
        out["machine.deprecated"] = "on"
    return out


def _build() -> dict[str, MachineType]:
    types: dict[str, MachineType] = {}
    for i, ver in enumerate(_PC_VERSIONS):
        name = "pc-i440fx-" + ".".join(map(str, ver))
        types[name] = MachineType(
            name=name,
            family="pc",
            description="Standard PC (i440FX + PIIX, 1996)",
            version=ver,
            aliases=("pc",) if i == 0 else (),
            devices=_PC_DEVICES,
            compat=_pc_compat(ver, "pc"),
            deprecated=ver <= (1, 7),
            is_default=i == 0,
        )
    for i, ver in enumerate(_Q35_VERSIONS):
        name = "pc-q35-" + ".".join(map(str, ver))
        types[name] = MachineType(
            name=name,
            family="q35",
            description="Standard PC (Q35 + ICH9, 2009)",
            version=ver,
            aliases=("q35",) if i == 0 else (),
            devices=_PC_DEVICES,
            compat=_pc_compat(ver, "q35"),
        )
    types["microvm"] = MachineType(
        name="microvm",
        family="microvm",
        description="microvm (i386): minimal platform, no PCI, no HPET",
        devices=(PlatformDevice("isa-pit"), PlatformDevice("mc146818rtc")),
        compat={
            "machine.kernel-irqchip": "split",
            "machine.pv-clock-always": "on",
            "machine.rtc": "auto",
        },
    )
    types["isapc"] = MachineType(
        name="isapc",
        family="isapc",
        description="ISA-only PC",
        default_cpu="486",
        devices=(PlatformDevice("isa-pit"), PlatformDevice("mc146818rtc")),
        compat={
            "machine.kernel-irqchip": "on",
            "machine.pv-clock-always": "on",
            "machine.rtc": "on",
        },
    )
    return types


MACHINE_TYPES: Mapping[str, MachineType] = MappingProxyType(_build())
_ALIASES: Mapping[str, str] = MappingProxyType(
    {alias: mt.name for mt in MACHINE_TYPES.values() for alias in mt.aliases}
)


def machine_types() -> list[MachineType]:
    """Every machine type, in ``-machine help`` order."""
    return list(MACHINE_TYPES.values())


def resolve_machine_type(name: str) -> MachineType:
    """The machine type ``name`` names (an alias resolves to its versioned type)."""
    key = _ALIASES.get(name, name)
    try:
        return MACHINE_TYPES[key]
    except KeyError:
        known = [*_ALIASES, *MACHINE_TYPES]
        guess = did_you_mean(name, known)
        raise ConfigError(
            f"unknown machine type {name!r}",
            hint=(f"did you mean {guess!r}? " if guess else "") + "see `accel machine list`",
            machine=name,
        ) from None
