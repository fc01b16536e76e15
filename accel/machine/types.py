"""Machine types: versioned like QEMU's x86 list, each with compat properties.

A :class:`MachineType` names the platform devices it models (clock and timer devices,
the debug ports a user adds, the interrupt controller where the accelerator provides
it) and carries *compat properties*: settings an older machine type keeps so a guest
sees the platform it always saw. The list follows QEMU 7.2's ``-machine help``:

* ``pc-i440fx-1.4`` ... ``pc-i440fx-7.2`` and ``pc`` (alias of the newest);
* ``pc-q35-2.4`` ... ``pc-q35-7.2`` (with ``pc-q35-4.0.1``) and ``q35``;
* ``microvm`` and ``isapc`` (unversioned).

The CPU model table and :func:`resolve_cpu` are here too (a machine needs them at
initialisation); :mod:`accel.machine.cpu` re-exports them.

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

from _collections_abc import Mapping

from .._records import field, record
from ..accelerator import CpuSpec
from ..errors import ConfigError, InvalidArgumentError, did_you_mean

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any, TypeVar

    from ..plugin import AcceleratorInfo

    _V = TypeVar("_V")

__all__ = [
    "MACHINE_TYPES",
    "MachineType",
    "PlatformDevice",
    "machine_types",
    "resolve_machine_type",
]


class ReadOnlyMapping(Mapping[str, "_V"]):
    """A read-only view of a dict (as :class:`types.MappingProxyType`, whose module
    costs start-up time): lookups and iteration pass through, there is no way to write."""

    __slots__ = ("_data",)

    def __init__(self, data: dict[str, _V]) -> None:
        self._data = data

    def __getitem__(self, key: str) -> _V:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def get(self, key: str, default: Any = None) -> Any:
        return self._data.get(key, default)

    def copy(self) -> dict[str, _V]:
        return dict(self._data)

    def __repr__(self) -> str:
        return f"mappingproxy({self._data!r})"


class _LazyMapping(ReadOnlyMapping["_V"]):
    """A :class:`ReadOnlyMapping` whose dict ``make()`` builds on first use."""

    __slots__ = ("_make",)

    def __init__(self, make: Callable[[], dict[str, _V]]) -> None:
        self._make = make

    def __getattr__(self, name: str) -> dict[str, _V]:
        if name != "_data":
            raise AttributeError(name)
        self._data = data = self._make()
        return data


_NO_COMPAT: Mapping[str, str] = {}


@record(frozen=True)
class PlatformDevice:
    """A device a machine type creates at initialisation, with its properties."""

    type: str
    properties: tuple[tuple[str, object], ...] = ()

    def __init__(self, type: str, properties: tuple[tuple[str, object], ...] = ()) -> None:
        object.__setattr__(self, "type", type)
        object.__setattr__(self, "properties", properties)


@record(frozen=True)
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

    def __init__(
        self,
        name: str,
        family: str,
        description: str,
        version: tuple[int, ...] | None = None,
        aliases: tuple[str, ...] = (),
        default_cpu: str = "qemu64",
        devices: tuple[PlatformDevice, ...] = (),
        compat: Mapping[str, str] = _NO_COMPAT,
        deprecated: bool = False,
        is_default: bool = False,
    ) -> None:
        set_ = object.__setattr__
        set_(self, "name", name)
        set_(self, "family", family)
        set_(self, "description", description)
        set_(self, "version", version)
        set_(self, "aliases", aliases)
        set_(self, "default_cpu", default_cpu)
        set_(self, "devices", devices)
        set_(self, "compat", ReadOnlyMapping(dict(compat)))
        set_(self, "deprecated", deprecated)
        set_(self, "is_default", is_default)

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


def _dotted(version: tuple[int, ...]) -> str:
    return ".".join(map(str, version))


#: The versioned families: (family, name prefix, description, versions newest first).
#: The newest version of each family also answers to the family's name.
_FAMILIES: tuple[tuple[str, str, str, list[tuple[int, ...]]], ...] = (
    ("pc", "pc-i440fx-", "Standard PC (i440FX + PIIX, 1996)", _PC_VERSIONS),
    ("q35", "pc-q35-", "Standard PC (Q35 + ICH9, 2009)", _Q35_VERSIONS),
)


def _versioned(
    family: str,
    prefix: str,
    description: str,
    versions: list[tuple[int, ...]],
    version: tuple[int, ...],
) -> MachineType:
    newest = version == versions[0]
    return MachineType(
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


def _microvm() -> MachineType:
    return MachineType(
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


def _isapc() -> MachineType:
    return MachineType(
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


_UNVERSIONED = {"microvm": _microvm, "isapc": _isapc}

#: Machine types made so far, by name. :func:`resolve_machine_type` makes only the type it
#: is asked for; the full table (:data:`MACHINE_TYPES`) is made on its first use. Both
#: go through here, so one name always gives the same object.
_made: dict[str, MachineType] = {}


def _make(name: str) -> MachineType | None:
    """The machine type called ``name`` (not an alias), None if there is none."""
    mt = _made.get(name)
    if mt is not None:
        return mt
    make = _UNVERSIONED.get(name)
    if make is not None:
        mt = make()
    else:
        for family, prefix, description, versions in _FAMILIES:
            if name.startswith(prefix):
                for version in versions:
                    if prefix + _dotted(version) == name:
                        mt = _versioned(family, prefix, description, versions, version)
                        break
                break
    if mt is not None:
        _made[name] = mt
    return mt


def _build() -> dict[str, MachineType]:
    types: dict[str, MachineType] = {}
    for family, prefix, description, versions in _FAMILIES:
        for version in versions:
            name = prefix + _dotted(version)
            mt = _made.get(name)
            if mt is None:
                mt = _made[name] = _versioned(family, prefix, description, versions, version)
            types[name] = mt
    for name in _UNVERSIONED:
        mt = _make(name)
        assert mt is not None
        types[name] = mt
    return types


MACHINE_TYPES: Mapping[str, MachineType] = _LazyMapping(_build)
_ALIASES: Mapping[str, str] = ReadOnlyMapping(
    {family: prefix + _dotted(versions[0]) for family, prefix, _d, versions in _FAMILIES}
)


def machine_types() -> list[MachineType]:
    """Every machine type, in ``-machine help`` order."""
    return list(MACHINE_TYPES.values())


def resolve_machine_type(name: str) -> MachineType:
    """The machine type ``name`` names (an alias resolves to its versioned type)."""
    mt = _make(_ALIASES.get(name, name))
    if mt is None:
        known = [*_ALIASES, *MACHINE_TYPES]
        guess = did_you_mean(name, known)
        raise ConfigError(
            f"unknown machine type {name!r}",
            hint=(f"did you mean {guess!r}? " if guess else "") + "see `accel machine list`",
            machine=name,
        )
    return mt


# --------------------------------------------------------------------------- CPU models

#: CPU models (re-exported by :mod:`accel.machine.cpu`): name -> (description,
#: requires_hardware, bits), in ``-cpu help`` order.
_CPU_MODELS: dict[str, tuple[str, bool, int]] = {
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
    entry = _CPU_MODELS.get(cpu.model)
    if entry is None:
        guess = did_you_mean(cpu.model, list(_CPU_MODELS))
        raise ConfigError(
            f"unknown CPU model {cpu.model!r}",
            hint=(f"did you mean {guess!r}? " if guess else "")
            + "models: "
            + ", ".join(_CPU_MODELS),
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
