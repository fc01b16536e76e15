"""The device model: typed properties, one registry, one creation path.

Device types come from two places: the core's built-in types (the debug ports and the
userspace clock and timer devices, :mod:`accel.machine.devices`) and the types plugins
contribute through the ``accel_device_types`` hook (an accelerator's paravirtual clock).
Both are :class:`accel.DeviceType` values in one :class:`DeviceRegistry`.

Machine initialisation and a user's device spec (``"isa-debug-exit,iobase=0xf4,iosize=4"``)
create devices through the same function, :meth:`DeviceRegistry.create`, which checks
every property against its :class:`accel.PropertySpec` (unknown name, wrong type,
missing required value: :class:`~accel.errors.ConfigError` naming the device and the
property). A device type with ``user_creatable=False`` refuses a user's spec with its
reason.

A :class:`Device` reaches its VM only through the machine it is realised in:
:meth:`Device.realize` receives the machine, and the device registers its port and MMIO
handlers there; it never holds an accelerator of its own.
"""

from __future__ import annotations

from ..errors import ConfigError, did_you_mean
from ..plugin import DeviceType, PropertySpec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from typing import Any

    from ..registry import Registry
    from .machine import Machine, RunState

__all__ = ["Device", "DeviceRegistry", "parse_device_spec"]

PropValue = int | bool | str


class Device:
    """Base of every device. Subclasses declare ``PROPERTIES`` and override hooks.

    The factory of a :class:`accel.DeviceType` is called with the validated properties
    as keyword arguments; :attr:`props` keeps them. ``realize(machine)`` wires the device
    into the machine; ``state()`` returns what ``accel machine show`` prints.
    """

    PROPERTIES: tuple[PropertySpec, ...] = ()

    def __init__(self, **props: PropValue) -> None:
        self.props: dict[str, PropValue] = dict(props)
        self.type_name = ""
        self.id = ""
        self._machine: Machine | None = None

    @property
    def machine(self) -> Machine:
        if self._machine is None:
            raise ConfigError(
                f"device {self.type_name or type(self).__name__!r} is not realised in a machine",
                device=self.type_name,
            )
        return self._machine

    def realize(self, machine: Machine) -> None:
        """Attach to ``machine``: register I/O handlers, set up state."""
        self._machine = machine

    def unrealize(self) -> None:
        self._machine = None

    def runstate_changed(self, old: RunState, new: RunState) -> None:
        """Called on every run-state change of the machine (after the VM changed)."""

    def state(self) -> dict[str, object]:
        """Device state for people and JSON output."""
        return {}


def _coerce(dtype: DeviceType, spec: PropertySpec, value: object, origin: str) -> PropValue:
    kind = spec.type
    if kind is int:
        if type(value) is int:
            return value
        if isinstance(value, str):
            try:
                return int(value, 0)
            except ValueError:
                pass
        elif isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, bool):
            raise _bad(dtype, spec, "takes an integer", value)
        raise _bad(dtype, spec, "takes an integer (decimal or 0x hex)", value)
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str):
            word = value.lower()
            if word in _TRUE:
                return True
            if word in _FALSE:
                return False
        raise _bad(dtype, spec, "takes on/off", value)
    if isinstance(value, str):
        return value
    raise _bad(dtype, spec, "takes a string", value)


_TRUE = frozenset({"on", "true", "yes", "1"})
_FALSE = frozenset({"off", "false", "no", "0"})


def _bad(dtype: DeviceType, spec: PropertySpec, what: str, value: object) -> ConfigError:
    return ConfigError(
        f"device {dtype.name!r} property {spec.name!r} {what}, not {value!r}",
        device=dtype.name,
        property=spec.name,
    )


def parse_device_spec(text: str) -> tuple[str, dict[str, str]]:
    """``"isa-debug-exit,iobase=0xf4,iosize=4"`` -> ``("isa-debug-exit", {...})``."""
    parts = [p.strip() for p in text.split(",")]
    name = parts[0]
    if not name or "=" in name:
        raise ConfigError(
            f"device spec {text!r} must start with a device type",
            hint="for example 'isa-debug-exit,iobase=0xf4,iosize=4'",
            device=text,
        )
    props: dict[str, str] = {}
    for part in parts[1:]:
        if not part:
            continue
        key, eq, value = part.partition("=")
        if not eq:
            raise ConfigError(
                f"device {name!r}: {part!r} is not property=value",
                device=name,
                property=part,
            )
        props[key.strip()] = value.strip()
    return name, props


class DeviceRegistry:
    """Built-in device types plus the ones plugins contribute."""

    def __init__(self, registry: Registry | None = None, *, extra: Iterable[DeviceType] = ()):
        from .devices import builtin_device_types

        types: dict[str, DeviceType] = {t.name: t for t in builtin_device_types()}
        if registry is not None:
            for name, dtype in registry.device_types().items():
                if name in types:
                    raise ConfigError(
                        f"device type {name!r} from plugin {dtype.plugin!r} clashes with a "
                        "built-in device type",
                        device=name,
                    )
                types[name] = dtype
        for dtype in extra:
            types[dtype.name] = dtype
        self._types = types

    def types(self) -> Mapping[str, DeviceType]:
        return dict(self._types)

    def get(self, name: str) -> DeviceType:
        try:
            return self._types[name]
        except KeyError:
            guess = did_you_mean(name, list(self._types))
            raise ConfigError(
                f"unknown device type {name!r}",
                hint=(f"did you mean {guess!r}? " if guess else "")
                + "types: "
                + ", ".join(sorted(self._types)),
                device=name,
            ) from None

    def validate(
        self, name: str, props: Mapping[str, object], *, user: bool
    ) -> tuple[DeviceType, dict[str, PropValue]]:
        """Check a device request; returns the type and the complete, typed properties."""
        dtype = self.get(name)
        origin = "user" if user else "machine"
        if user and not dtype.user_creatable:
            raise ConfigError(
                f"device type {name!r} cannot be created by a device spec: "
                f"{dtype.not_creatable_reason}",
                hint="the machine creates it when it applies",
                device=name,
            )
        specs = {p.name: p for p in dtype.properties}
        out: dict[str, PropValue] = {}
        for key, value in props.items():
            spec = specs.get(key)
            if spec is None:
                guess = did_you_mean(key, list(specs))
                raise ConfigError(
                    f"device {name!r} has no property {key!r}",
                    hint=(f"did you mean {guess!r}? " if guess else "")
                    + ("properties: " + ", ".join(specs) if specs else "it takes no properties"),
                    device=name,
                    property=key,
                )
            out[key] = _coerce(dtype, spec, value, origin)
        for spec in dtype.properties:
            if spec.name not in out:
                if spec.default is None:
                    raise ConfigError(
                        f"device {name!r} needs property {spec.name!r}",
                        hint=spec.doc or None,
                        device=name,
                        property=spec.name,
                    )
                out[spec.name] = spec.default
        return dtype, out

    def create(self, name: str, props: Mapping[str, object], *, user: bool) -> Device:
        """Validate and make a device (machine init and user specs both come here)."""
        dtype, values = self.validate(name, props, user=user)
        device = dtype.factory(**values)
        if not isinstance(device, Device):
            raise ConfigError(
                f"device type {name!r} (plugin {dtype.plugin!r}) made a "
                f"{type(device).__name__}, not an accel.machine.Device",
                device=name,
            )
        device.type_name = name
        return device

    def create_from_spec(self, text: str) -> Device:
        name, props = parse_device_spec(text)
        return self.create(name, props, user=True)


def device_type(
    name: str,
    summary: str,
    factory: Callable[..., Any],
    properties: Iterable[PropertySpec] = (),
    **kw: Any,
) -> DeviceType:
    """Shorthand for a :class:`DeviceType` of the core."""
    return DeviceType(name, summary, factory, tuple(properties), **kw)
