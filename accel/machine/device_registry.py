"""Every device type a machine can create, and the one path that creates devices.

Device types come from two places: the core's built-in types
(:func:`accel.machine.devices.builtin_device_types`) and the types plugins contribute
through the ``accel_device_types`` hook (an accelerator's paravirtual clock, read with
:meth:`accel.Registry.device_types`). Both are :class:`accel.DeviceType` values in one
:class:`DeviceRegistry`; a plugin's type may not take a built-in type's name.

Machine initialisation and a user's device spec (``"isa-debug-exit,iobase=0xf4,iosize=4"``)
create devices through the same method, :meth:`DeviceRegistry.create`, which checks every
property (:func:`accel.machine.device.check_properties`). Each registry is its own
object: nothing here is shared between machines.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from ..errors import ConfigError, did_you_mean
from ..plugin import DeviceType
from .device import Device, PropValue, check_properties, parse_device_spec
from .devices import builtin_device_types

if TYPE_CHECKING:
    from ..registry import Registry

__all__ = ["DeviceRegistry"]


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
        self, name: str, props: Mapping[str, object], *, user: bool
    ) -> tuple[DeviceType, dict[str, PropValue]]:
        """Check a device request; returns the type and the complete, typed properties."""
        dtype = self.get(name)
        return dtype, check_properties(dtype, props, user=user)

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
