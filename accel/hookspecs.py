"""Every hook an accel plugin may implement.

A plugin implements any subset; implementations may take fewer arguments than the
specification (pluggy's rule), never other names. The registry's plugin manager (a
:class:`pluggy.PluginManager`) takes these specifications with ``add_hookspecs``;
docs/hooks.md documents each hook and a test keeps it in step with this file.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from .accelerator import Accelerator
    from .plugin import AcceleratorInfo, ClockDeviceChoice, DeviceType, MachineView

__all__ = ["accel_accelerators", "accel_clock_devices", "accel_device_types", "hookspec"]

#: Marker for hook specifications (pluggy's own ``HookspecMarker("accel")``).
hookspec = pluggy.HookspecMarker("accel")


@hookspec
def accel_accelerators() -> Iterable[AcceleratorInfo]:
    """Return the accelerators this plugin provides.

    Each is an :class:`accel.AcceleratorInfo`: a name (unique among all plugins), a
    one-line summary, a priority for automatic selection (higher wins), a factory that
    makes the :class:`accel.Accelerator`, and the conformance features it declares
    unsupported with the reason for each.

    Example::

        @accel.hookimpl
        def accel_accelerators():
            return [
                accel.AcceleratorInfo(
                    name="mine",
                    summary="my hypervisor",
                    priority=50,
                    factory=MyAccelerator,
                    unsupported={"pv-clocksource": "my hypervisor has no paravirtual clock"},
                )
            ]
    """
    raise NotImplementedError


@hookspec
def accel_device_types() -> Iterable[DeviceType]:
    """Return the device types this plugin contributes to the device registry.

    Machine initialisation and users' device specs (``"isa-debug-exit,iobase=0xf4"``)
    create devices through the same registry; a type with ``user_creatable=False`` (such
    as an accelerator's paravirtual clock) can only be created by machine initialisation.

    Example::

        @accel.hookimpl
        def accel_device_types():
            return [
                accel.DeviceType(
                    name="mine-clock",
                    summary="my paravirtual clock",
                    factory=MyClock,
                    user_creatable=False,
                    not_creatable_reason="created by the machine when the accelerator has it",
                )
            ]
    """
    raise NotImplementedError


@hookspec
def accel_clock_devices(
    accelerator: Accelerator, machine: MachineView
) -> Iterable[ClockDeviceChoice] | None:
    """Return the clock-device decisions ``accelerator`` makes for ``machine``.

    Called by machine initialisation after the vCPUs exist, once per plugin; a plugin
    answers only for accelerators it provides (return None for the others). Each
    :class:`accel.ClockDeviceChoice` adds a device (optionally replacing a platform
    default) or removes one, with the reason ``accel machine show`` prints.

    Example::

        @accel.hookimpl
        def accel_clock_devices(accelerator, machine):
            if accelerator.name != "mine":
                return None
            has_pv = accelerator.capabilities().supports(accel.Capability.PV_CLOCKSOURCE)
            return [
                accel.ClockDeviceChoice(
                    "mine-clock", has_pv,
                    "mine reports a paravirtual clocksource" if has_pv
                    else "mine does not report a paravirtual clocksource",
                )
            ]
    """
    raise NotImplementedError
