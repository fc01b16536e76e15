"""What plugins hand to accel: small frozen dataclasses, normalised in ``__post_init__``.

A plugin is a module (or object) with functions marked ``@accel.hookimpl`` whose names
are the hooks of :mod:`accel.hookspecs`. Each hook returns instances of the classes here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import pluggy

from .errors import InvalidArgumentError

if TYPE_CHECKING:
    from .accelerator import VM, Accelerator, CpuSpec

#: The words a boolean property takes, as QEMU's ``on``/``off`` and their synonyms.
_TRUE = frozenset({"on", "true", "yes", "1"})
_FALSE = frozenset({"off", "false", "no", "0"})

__all__ = [
    "AcceleratorInfo",
    "ClockDeviceChoice",
    "DeviceType",
    "MachineView",
    "PropertySpec",
    "hookimpl",
]

#: Marker for hook implementations: ``@accel.hookimpl def accel_accelerators(): ...``
#: (pluggy's own ``HookimplMarker("accel")``: ``tryfirst``, ``trylast``, ``wrapper``,
#: ``hookwrapper``, ``optionalhook`` and ``specname`` mean what pluggy says they mean).
hookimpl = pluggy.HookimplMarker("accel")

_NAME_FIRST = "abcdefghijklmnopqrstuvwxyz"
_NAME_CHARS = _NAME_FIRST + "0123456789_-"


def _is_name(name: str) -> bool:
    """``name`` is a lower-case letter followed by lower-case letters, digits, ``-``, ``_``."""
    return name[:1] != "" and name[0] in _NAME_FIRST and not name.strip(_NAME_CHARS)


def _check_name(kind: str, name: str) -> str:
    if not isinstance(name, str) or not _is_name(name):
        raise InvalidArgumentError(
            f"{kind} name {name!r} must be lower-case letters, digits, '-' or '_' "
            "and start with a letter",
            argument="name",
            value=name,
        )
    return name


def _freeze_mapping(
    value: Mapping[str, str] | Iterable[tuple[str, str]],
) -> tuple[tuple[str, str], ...]:
    items = value.items() if isinstance(value, Mapping) else value
    return tuple(sorted((str(k), str(v)) for k, v in items))


@dataclass(frozen=True, slots=True)
class AcceleratorInfo:
    """Describes one accelerator a plugin provides (returned by ``accel_accelerators``).

    ``factory`` makes a new :class:`~accel.Accelerator` (no I/O until ``probe()``);
    ``priority`` orders automatic selection (higher first; hardware accelerators use
    100, software emulation 10); ``unsupported`` maps conformance features the
    accelerator does not support to the reason, and those checks skip with it;
    ``hardware`` is True for accelerators that use hardware virtualization (``accel
    check`` passes only when one of those is usable). ``properties`` declares the
    accelerator properties a selection spec may give (QEMU's ``-accel NAME,PROP=VALUE``:
    ``"tcg,tb-size=64"``): each is checked against its :class:`PropertySpec` (type,
    range, choices) and passed to ``factory`` as a keyword argument (``-`` becomes
    ``_``: ``factory(tb_size=64)``); a property not declared is refused naming it and
    listing the declared ones. ``cpu_flags`` names the CPU flags the accelerator gives
    meaning to beyond QEMU's generic x86 feature names (its paravirtual features): a
    ``-cpu`` flag that is neither is refused, naming it. ``plugin`` is left None by
    plugins: the registry's copy names the plugin that provides it.
    """

    name: str
    summary: str
    factory: Callable[..., Accelerator]
    priority: int = 0
    unsupported: Mapping[str, str] | tuple[tuple[str, str], ...] = ()
    hardware: bool = False
    plugin: str | None = field(default=None, compare=False)
    properties: tuple[PropertySpec, ...] = ()
    cpu_flags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", _check_name("accelerator", self.name))
        if isinstance(self.cpu_flags, str):
            raise InvalidArgumentError(
                f"accelerator {self.name!r}: cpu_flags must be a sequence of names, "
                f"not the string {self.cpu_flags!r}",
                argument="cpu_flags",
                value=self.cpu_flags,
            )
        flags = tuple(dict.fromkeys(self.cpu_flags))
        for flag in flags:
            if not isinstance(flag, str) or not _is_name(flag.replace(".", "-")):
                raise InvalidArgumentError(
                    f"accelerator {self.name!r}: CPU flag {flag!r} must be lower-case "
                    "letters, digits, '-', '_' or '.' and start with a letter",
                    argument="cpu_flags",
                    value=flag,
                )
        object.__setattr__(self, "cpu_flags", flags)
        if not callable(self.factory):
            raise InvalidArgumentError(
                f"accelerator {self.name!r}: factory must be callable",
                argument="factory",
                value=self.factory,
            )
        if not isinstance(self.priority, int):
            raise InvalidArgumentError(
                f"accelerator {self.name!r}: priority must be an int",
                argument="priority",
                value=self.priority,
            )
        object.__setattr__(self, "unsupported", _freeze_mapping(self.unsupported))
        object.__setattr__(self, "properties", tuple(self.properties))
        for spec in self.properties:
            if not isinstance(spec, PropertySpec):
                raise InvalidArgumentError(
                    f"accelerator {self.name!r}: properties must be PropertySpec values, "
                    f"not {spec!r}",
                    argument="properties",
                    value=spec,
                )

    @property
    def unsupported_features(self) -> dict[str, str]:
        """The declared-unsupported conformance features, feature -> reason."""
        return dict(self.unsupported)


@dataclass(frozen=True, slots=True)
class PropertySpec:
    """A typed property (``iobase``, ``iosize`` ...) with its default.

    Device types and accelerators declare their properties with it. An ``int``
    property may give a range: ``min``/``max`` (inclusive; None for no bound). A value
    outside it is refused with a :class:`~accel.errors.ConfigError` naming the property,
    the value and the range, unless ``clamp`` is True: then it is moved into the range
    and the change is reported (QEMU's HPET clamps ``timers`` to 3..32 this way).
    ``choices`` lists the accepted values of a ``str`` property (empty: any string).
    """

    name: str
    type: type[int] | type[bool] | type[str]
    default: int | bool | str | None = None
    doc: str = ""
    min: int | None = None
    max: int | None = None
    clamp: bool = False
    choices: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "choices", tuple(self.choices))
        bounded = self.min is not None or self.max is not None
        if bounded and self.type is not int:
            raise InvalidArgumentError(
                f"property {self.name!r}: min/max need an int property",
                argument="min",
                value=(self.min, self.max),
            )
        if self.min is not None and self.max is not None and self.min > self.max:
            raise InvalidArgumentError(
                f"property {self.name!r}: min {self.min} is above max {self.max}",
                argument="min",
                value=(self.min, self.max),
            )
        if self.choices and self.type is not str:
            raise InvalidArgumentError(
                f"property {self.name!r}: choices need a str property",
                argument="choices",
                value=self.choices,
            )

    @property
    def required(self) -> bool:
        return self.default is None

    def range_text(self) -> str:
        """The accepted values for messages: ``"0..0xffff"``, ``"single|multi"``, ``""``."""
        if self.choices:
            return "|".join(self.choices)
        if self.min is None and self.max is None:
            return ""
        lo = "" if self.min is None else self.show(self.min)
        hi = "" if self.max is None else self.show(self.max)
        return f"{lo}..{hi}"

    def show(self, value: int) -> str:
        """``value`` as messages print it: hex for port/address-sized ranges."""
        hexa = max(abs(self.min or 0), abs(self.max or 0)) >= 0xFFFF and value > 255
        return f"{value:#x}" if hexa else str(value)

    def convert(self, value: object) -> tuple[int | bool | str, str | None]:
        """``value`` (a spec's text or a Python value) as this property's type, within
        its range and choices: ``(value, note)``, ``note`` saying how a value a
        ``clamp=True`` spec moved into its range was moved (else None).

        Raises :class:`ValueError` whose text completes "``<owner> property <name>``"
        (``"takes on/off, not 'maybe'"``); the caller raises its own typed error with it.
        """
        converted: int | bool | str
        if self.type is int:
            if isinstance(value, bool):
                raise ValueError(f"takes an integer, not {value!r}")
            if isinstance(value, int):
                converted = value
            elif isinstance(value, str):
                try:
                    converted = int(value, 0)
                except ValueError:
                    raise ValueError(
                        f"takes an integer (decimal or 0x hex), not {value!r}"
                    ) from None
            else:
                raise ValueError(f"takes an integer (decimal or 0x hex), not {value!r}")
        elif self.type is bool:
            word = value.lower() if isinstance(value, str) else None
            if isinstance(value, bool):
                converted = value
            elif word in _TRUE or word in _FALSE:
                converted = word in _TRUE
            else:
                raise ValueError(f"takes on/off, not {value!r}")
        elif isinstance(value, str):
            converted = value
        else:
            raise ValueError(f"takes a string, not {value!r}")
        if self.choices and converted not in self.choices:
            raise ValueError(f"is {converted!r}, which is not one of {self.range_text()}")
        if not isinstance(converted, int) or isinstance(converted, bool):
            return converted, None
        lo, hi = self.min, self.max
        if (lo is None or converted >= lo) and (hi is None or converted <= hi):
            return converted, None
        shown = self.show(converted)
        if not self.clamp:
            raise ValueError(f"is {shown}, outside the valid range {self.range_text()}")
        clamped = lo if lo is not None and converted < lo else hi
        assert clamped is not None
        return (
            clamped,
            f"{self.name}={shown} clamped to {clamped} (valid range {self.range_text()})",
        )


@dataclass(frozen=True, slots=True)
class DeviceType:
    """A device type a plugin contributes (returned by ``accel_device_types``).

    ``factory(**properties)`` makes the device; ``user_creatable`` False means a user's
    device spec may not create it (only machine initialisation can), with
    ``not_creatable_reason`` saying why. ``check``, if given, is called with the
    complete, typed properties after each one passed its own :class:`PropertySpec`
    (range, type) and returns None or what is wrong with them together (``"iobase
    0xfffe + iosize 4 ends beyond port 0xffff"``), which is refused, naming the device,
    before anything is built. ``plugin`` is left None by plugins: the registry's copy
    names the plugin that contributes it.
    """

    name: str
    summary: str
    factory: Callable[..., Any]
    properties: tuple[PropertySpec, ...] = ()
    user_creatable: bool = True
    not_creatable_reason: str = ""
    plugin: str | None = field(default=None, compare=False)
    check: Callable[[Mapping[str, int | bool | str]], str | None] | None = field(
        default=None, compare=False
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", _check_name("device type", self.name))
        object.__setattr__(self, "properties", tuple(self.properties))
        if not self.user_creatable and not self.not_creatable_reason:
            raise InvalidArgumentError(
                f"device type {self.name!r} is not user-creatable but gives no reason",
                argument="not_creatable_reason",
                value="",
            )


@dataclass(frozen=True, slots=True)
class ClockDeviceChoice:
    """One decision about a clock device, returned by ``accel_clock_devices``.

    ``present`` True adds ``device`` (replacing the device named by ``replaces``, as
    ``kvm-pit`` replaces ``isa-pit``); False removes it. ``reason`` is shown by
    ``accel machine show``.
    """

    device: str
    present: bool
    reason: str
    replaces: str | None = None
    properties: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "properties", tuple(self.properties))


class MachineView(Protocol):
    """What a clock-device hook may read of the machine being initialised."""

    @property
    def machine_type(self) -> str:
        """Resolved machine type name (``"pc-i440fx-7.2"``, ``"microvm"``)."""
        ...

    @property
    def family(self) -> str:
        """Machine family: ``"pc"``, ``"q35"``, ``"microvm"``, ``"isapc"``."""
        ...

    @property
    def version(self) -> tuple[int, int] | None:
        """Machine type version, None for unversioned types."""
        ...

    @property
    def compat(self) -> Mapping[str, str]:
        """Compat properties in force (``"kvmclock.x-mach-use-reliable-get-clock"``)."""
        ...

    @property
    def cpu(self) -> CpuSpec:
        """The CPU model after per-accelerator defaults were applied."""
        ...

    @property
    def vm(self) -> VM | None:
        """The VM (vCPUs already created), or None when only describing the machine."""
        ...

    @property
    def accelerator(self) -> Accelerator: ...
