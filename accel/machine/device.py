"""The device model: the :class:`Device` base, typed properties, device specs.

A :class:`Device` reaches its VM only through the machine it is realised in, and sees
that machine only as :class:`MachineServices` (a small protocol :class:`Machine
<accel.machine.Machine>` satisfies): :meth:`Device.realize` receives it, and the device
registers its port and MMIO handlers there, writes to the console, asks the run to stop
and reads guest time; it never holds an accelerator of its own.

Properties are declared as :class:`accel.PropertySpec` values. :func:`check_properties`
checks a request against a device type's specs (unknown name, wrong type, missing
required value: :class:`~accel.errors.ConfigError` naming the device and the property)
and returns complete, typed values; :func:`parse_device_spec` splits a user's spec
(``"isa-debug-exit,iobase=0xf4,iosize=4"``). The set of device types a machine can
create is :class:`accel.machine.device_registry.DeviceRegistry`; the core's built-in
devices are in :mod:`accel.machine.devices`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Protocol

from ..errors import ConfigError, did_you_mean
from ..plugin import DeviceType, PropertySpec
from .runstate import RunState

if TYPE_CHECKING:
    from ..accelerator import VM

__all__ = [
    "Device",
    "MachineServices",
    "PioRead",
    "PioWrite",
    "PropValue",
    "check_properties",
    "parse_device_spec",
]

#: A property's value once checked.
PropValue = int | bool | str
#: A read handler: ``(port or offset, size) -> value``.
PioRead = Callable[[int, int], int]
#: A write handler: ``(port or offset, size, value)``.
PioWrite = Callable[[int, int, int], None]


class MachineServices(Protocol):
    """What a device may use of the machine it is realised in."""

    @property
    def vm(self) -> VM | None:
        """The machine's VM (None before initialisation)."""
        ...

    def register_pio(
        self, base: int, count: int, read: PioRead | None, write: PioWrite | None, device: Device
    ) -> None:
        """Route ports ``base .. base+count-1`` to ``device``'s handlers."""
        ...

    def register_mmio(
        self, base: int, size: int, read: PioRead | None, write: PioWrite | None, device: Device
    ) -> None:
        """Route guest-physical ``base .. base+size-1`` to ``device`` (offsets, sizes)."""
        ...

    def console_write(self, data: bytes) -> None:
        """Send guest output to the machine's console."""
        ...

    def request_stop(self, status: int, message: str, *, kind: str) -> None:
        """End the current run after this exit with ``status``."""
        ...

    def guest_ns(self) -> int:
        """Guest time in ns; stands still while the machine is paused."""
        ...


class Device:
    """Base of every device. Subclasses declare ``PROPERTIES`` and override hooks.

    The factory of a :class:`accel.DeviceType` is called with the checked properties
    as keyword arguments; :attr:`props` keeps them. ``realize(machine)`` wires the device
    into the machine; ``state()`` returns what ``accel machine show`` prints.
    """

    PROPERTIES: tuple[PropertySpec, ...] = ()

    def __init__(self, **props: PropValue) -> None:
        self.props: dict[str, PropValue] = dict(props)
        self.type_name = ""
        self.id = ""
        self._machine: MachineServices | None = None

    @property
    def machine(self) -> MachineServices:
        """The machine this device is realised in (:class:`ConfigError` if none)."""
        if self._machine is None:
            raise ConfigError(
                f"device {self.type_name or type(self).__name__!r} is not realised in a machine",
                device=self.type_name,
            )
        return self._machine

    def realize(self, machine: MachineServices) -> None:
        """Attach to ``machine``: register I/O handlers, set up state."""
        self._machine = machine

    def unrealize(self) -> None:
        self._machine = None

    def runstate_changed(self, old: RunState, new: RunState) -> None:
        """Called on every run-state change of the machine (after the VM changed)."""

    def state(self) -> dict[str, object]:
        """Device state for people and JSON output."""
        return {}


_TRUE = frozenset({"on", "true", "yes", "1"})
_FALSE = frozenset({"off", "false", "no", "0"})


def _bad(dtype: DeviceType, spec: PropertySpec, what: str, value: object) -> ConfigError:
    return ConfigError(
        f"device {dtype.name!r} property {spec.name!r} {what}, not {value!r}",
        device=dtype.name,
        property=spec.name,
    )


def _coerce(dtype: DeviceType, spec: PropertySpec, value: object) -> PropValue:
    kind = spec.type
    if kind is int:
        if isinstance(value, bool):
            raise _bad(dtype, spec, "takes an integer", value)
        if isinstance(value, int):
            return value
        if isinstance(value, str):
            try:
                return int(value, 0)
            except ValueError:
                pass
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


def check_properties(
    dtype: DeviceType, props: Mapping[str, object], *, user: bool
) -> dict[str, PropValue]:
    """``props`` checked against ``dtype``'s specs: complete (defaults filled) and typed.

    ``user`` says the request comes from a device spec, which a type with
    ``user_creatable=False`` refuses with its reason.
    """
    name = dtype.name
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
        out[key] = _coerce(dtype, spec, value)
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
    return out


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
