"""Device types and the one path that creates devices: :class:`DeviceRegistry`,
property checking and device specs.

Port and address properties declare their range in their :class:`accel.PropertySpec`
(``min``/``max``): a port beyond 0xFFFF or a negative one is refused naming the device,
the property, the value and the range; a type's ``check`` refuses combinations (a port
range that ends beyond the 64 KiB port space).

Device types come from two places: the core's built-in types
(:func:`accel.machine.devices.builtin_device_types`) and the types plugins contribute
through the ``accel_device_types`` hook (an accelerator's paravirtual clock, read with
:meth:`accel.Registry.device_types`). Both are :class:`accel.DeviceType` values in one
:class:`DeviceRegistry`; a plugin's type may not take a built-in type's name. Each
registry is its own object: nothing here is shared between machines.

Machine initialisation and a user's device spec (``"isa-debug-exit,iobase=0xf4,iosize=4"``,
split by :func:`parse_device_spec`) create devices through the same method,
:meth:`DeviceRegistry.create`. It checks every property against the type's
:class:`accel.PropertySpec` values (:func:`check_properties`: unknown name, wrong type,
missing required value are a :class:`~accel.errors.ConfigError` naming the device and
the property). A device type with ``user_creatable=False`` refuses a user's spec with
its reason.

The :class:`~accel.machine.devices.base.Device` base class and the
:class:`~accel.machine.devices.base.MachineServices` protocol a device sees its machine
through are defined in :mod:`accel.machine.devices.base` (the built-in devices build on
them, and this module on the built-in devices). ``Device`` and ``PropValue`` are imported
here for use and stay importable from here, as plugins import them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from ..errors import ConfigError, did_you_mean
from ..plugin import DeviceType, PropertySpec
from .devices import builtin_device_types
from .devices.base import Device as Device
from .devices.base import PropValue as PropValue

if TYPE_CHECKING:
    from ..registry import Registry

__all__ = ["DeviceRegistry", "check_properties", "parse_device_spec"]


def _converted(
    dtype: DeviceType, spec: PropertySpec, value: object, notes: list[str] | None
) -> PropValue:
    """``value`` checked by ``spec`` (typed, within its range or choices; a clamped
    value's note goes to ``notes``), or a ConfigError naming the device and property."""
    try:
        converted, note = spec.convert(value)
    except ValueError as exc:
        raise ConfigError(
            f"device {dtype.name!r} property {spec.name!r} {exc}",
            hint=spec.doc or None,
            device=dtype.name,
            property=spec.name,
        ) from None
    if note is not None and notes is not None:
        notes.append(note)
    return converted


def check_properties(
    dtype: DeviceType,
    props: Mapping[str, object],
    *,
    user: bool,
    notes: list[str] | None = None,
) -> dict[str, PropValue]:
    """``props`` checked against ``dtype``'s specs: complete (defaults filled), typed,
    within each spec's range, and accepted by the type's ``check``.

    ``user`` says the request comes from a device spec, which a type with
    ``user_creatable=False`` refuses with its reason. A value a spec clamps
    (``clamp=True``) is moved into its range, and ``notes`` (if given) gets a line
    saying so.
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
        out[key] = _converted(dtype, spec, value, notes)
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
    if dtype.check is not None:
        problem = dtype.check(out)
        if problem:
            raise ConfigError(f"device {name!r}: {problem}", device=name)
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


class DeviceRegistry:
    """Built-in device types plus the ones plugins contribute (and ``extra`` ones)."""

    def __init__(
        self, registry: Registry | None = None, *, extra: Iterable[DeviceType] = ()
    ) -> None:
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
        """Every device type by name (a copy)."""
        return dict(self._types)

    def get(self, name: str) -> DeviceType:
        """The device type ``name`` (:class:`ConfigError` with a suggestion if unknown)."""
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
        self,
        name: str,
        props: Mapping[str, object],
        *,
        user: bool,
        notes: list[str] | None = None,
    ) -> tuple[DeviceType, dict[str, PropValue]]:
        """Check a device request; returns the type and the complete, typed properties
        (``notes`` gets a line for each value that was clamped into its range)."""
        dtype = self.get(name)
        return dtype, check_properties(dtype, props, user=user, notes=notes)

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
        """Make the device a user's spec names (``"isa-debugcon,iobase=0x402"``)."""
        name, props = parse_device_spec(text)
        return self.create(name, props, user=True)
