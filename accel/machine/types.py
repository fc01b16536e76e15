"""Machine types: versioned like QEMU's x86 list, each with compat properties.

A :class:`MachineType` names the platform devices it models (clock and timer devices;
the debug ports a user adds, and the interrupt controller where the accelerator provides
it, come on top) and carries *compat properties*: settings an older machine type keeps so
a guest sees the platform it always saw. The list follows QEMU 7.2's ``-machine help``:

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

A machine *spec* (``"q35,kernel-irqchip=off"``, :func:`parse_machine_spec`) is a machine
type's name with machine-level options overriding its compat properties.

The table is built when this module is imported and never changes:
:data:`MACHINE_TYPES` is a read-only mapping of frozen records.

Example::

    >>> mt = resolve_machine_type("pc")
    >>> mt.name, mt.version
    ('pc-i440fx-7.2', (7, 2))
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from ..errors import ConfigError, did_you_mean

__all__ = [
    "MACHINE_OPTIONS",
    "MACHINE_TYPES",
    "MachineType",
    "PlatformDevice",
    "machine_types",
    "parse_machine_spec",
    "resolve_machine_type",
]


@dataclasses.dataclass(frozen=True, slots=True)
class PlatformDevice:
    """A device a machine type creates at initialisation, with its properties."""

    type: str
    properties: tuple[tuple[str, object], ...] = ()


def _frozen_compat(compat: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(compat))


@dataclasses.dataclass(frozen=True, slots=True)
class MachineType:
    """One machine type: name, family, version, default CPU, devices and compat props.

    ``compat`` is kept as a read-only copy of the mapping given (it takes part in
    equality, not in the hash). Copies, deep copies and pickles of a machine type are
    equal to it.
    """

    name: str
    family: str
    description: str
    version: tuple[int, ...] | None = None
    aliases: tuple[str, ...] = ()
    default_cpu: str = "qemu64"
    devices: tuple[PlatformDevice, ...] = ()
    compat: Mapping[str, str] = dataclasses.field(default_factory=dict, hash=False)
    deprecated: bool = False
    is_default: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "compat", _frozen_compat(self.compat))

    # A mappingproxy neither pickles nor deep-copies: the state carries compat as a dict,
    # made read-only again when the state is set.
    def __getstate__(self) -> dict[str, object]:
        state = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        state["compat"] = dict(self.compat)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            object.__setattr__(self, name, value)
        object.__setattr__(self, "compat", _frozen_compat(self.compat))

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
            "version": _dotted(self.version) if self.version else None,
            "aliases": list(self.aliases),
            "default_cpu": self.default_cpu,
            "devices": [d.type for d in self.devices],
            "compat": dict(self.compat),
            "deprecated": self.deprecated,
        }


# --------------------------------------------------------------------------- the list

_PC_VERSIONS: tuple[tuple[int, ...], ...] = (
    (7, 2), (7, 1), (7, 0), (6, 2), (6, 1), (6, 0), (5, 2), (5, 1), (5, 0), (4, 2), (4, 1),
    (4, 0), (3, 1), (3, 0), (2, 12), (2, 11), (2, 10), (2, 9), (2, 8), (2, 7), (2, 6),
    (2, 5), (2, 4), (2, 3), (2, 2), (2, 1), (2, 0), (1, 7), (1, 6), (1, 5), (1, 4),
)  # fmt: skip
_Q35_VERSIONS: tuple[tuple[int, ...], ...] = (
    (7, 2), (7, 1), (7, 0), (6, 2), (6, 1), (6, 0), (5, 2), (5, 1), (5, 0), (4, 2), (4, 1),
    (4, 0, 1), (4, 0), (3, 1), (3, 0), (2, 12), (2, 11), (2, 10), (2, 9), (2, 8), (2, 7),
    (2, 6), (2, 5), (2, 4),
)  # fmt: skip

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


def _dotted(version: tuple[int, ...]) -> str:
    return ".".join(map(str, version))


#: The versioned families: (family, name prefix, description, versions newest first).
#: The newest version of each family also answers to the family's name.
_FAMILIES: tuple[tuple[str, str, str, tuple[tuple[int, ...], ...]], ...] = (
    ("pc", "pc-i440fx-", "Standard PC (i440FX + PIIX, 1996)", _PC_VERSIONS),
    ("q35", "pc-q35-", "Standard PC (Q35 + ICH9, 2009)", _Q35_VERSIONS),
)


def _versioned() -> list[MachineType]:
    out = []
    for family, prefix, description, versions in _FAMILIES:
        for version in versions:
            newest = version == versions[0]
            out.append(
                MachineType(
                    name=prefix + _dotted(version),
                    family=family,
                    description=description,
                    version=version,
                    aliases=(family,) if newest else (),
                    devices=_PC_DEVICES,
                    compat=_pc_compat(version, family),
                    deprecated=version <= (1, 7),
                    is_default=newest and family == "pc",
                )
            )
    return out


_MICROVM = MachineType(
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

_ISAPC = MachineType(
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

#: Every machine type by name, in ``-machine help`` order (read-only).
MACHINE_TYPES: Mapping[str, MachineType] = MappingProxyType(
    {mt.name: mt for mt in (*_versioned(), _MICROVM, _ISAPC)}
)

#: Family names that stand for their newest version (``pc`` -> ``pc-i440fx-7.2``).
_ALIASES: Mapping[str, str] = MappingProxyType(
    {alias: mt.name for mt in MACHINE_TYPES.values() for alias in mt.aliases}
)

#: Machine-level options a machine spec may set, with the values each takes.
MACHINE_OPTIONS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {"kernel-irqchip": ("on", "off", "split")}
)


def machine_types() -> list[MachineType]:
    """Every machine type, in ``-machine help`` order."""
    return list(MACHINE_TYPES.values())


def resolve_machine_type(name: str) -> MachineType:
    """The machine type ``name`` names (an alias resolves to its versioned type)."""
    mt = MACHINE_TYPES.get(_ALIASES.get(name, name))
    if mt is None:
        guess = did_you_mean(name, [*_ALIASES, *MACHINE_TYPES])
        raise ConfigError(
            f"unknown machine type {name!r}",
            hint=(f"did you mean {guess!r}? " if guess else "") + "see `accel machine list`",
            machine=name,
        )
    return mt


def parse_machine_spec(text: str) -> tuple[str, dict[str, str]]:
    """``"pc,kernel-irqchip=off"`` -> ``("pc", {"kernel-irqchip": "off"})``."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts or "=" in parts[0]:
        raise ConfigError(
            f"machine spec {text!r} must start with a machine type",
            hint="for example 'pc' or 'q35,kernel-irqchip=off'",
            machine=text,
        )
    opts: dict[str, str] = {}
    for part in parts[1:]:
        key, eq, value = part.partition("=")
        if key not in MACHINE_OPTIONS or not eq or value not in MACHINE_OPTIONS[key]:
            raise ConfigError(
                f"machine option {part!r} is not understood",
                hint="options: "
                + ", ".join(f"{k}={'|'.join(v)}" for k, v in MACHINE_OPTIONS.items()),
                machine=text,
                property=key,
            )
        opts[key] = value
    return parts[0], opts
