"""Every hook an accel plugin may implement.

A plugin implements any subset; implementations may take fewer arguments than the
specification (pluggy's rule), never other names. docs/hooks.md documents each hook and
a test keeps it in step with this file.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from typing import Final, TypeVar, overload

    from .accelerator import Accelerator
    from .plugin import AcceleratorInfo, ClockDeviceChoice, DeviceType, MachineView

    _F = TypeVar("_F", bound=Callable[..., object])


class HookspecMarker:
    """Marks hook specifications, as :class:`pluggy.HookspecMarker` does, without pluggy.

    Decorating a function sets its ``<project>_spec`` attribute to the same options dict
    pluggy's marker sets, so ``pluggy.PluginManager.add_hookspecs`` finds the hooks of
    this module and reads the same options.
    """

    __slots__ = ("project_name",)

    def __init__(self, project_name: str) -> None:
        self.project_name: Final = project_name

    if TYPE_CHECKING:

        @overload
        def __call__(
            self,
            function: _F,
            firstresult: bool = False,
            historic: bool = False,
            warn_on_impl: Warning | None = None,
            warn_on_impl_args: Mapping[str, Warning] | None = None,
        ) -> _F: ...

        @overload
        def __call__(
            self,
            function: None = ...,
            firstresult: bool = ...,
            historic: bool = ...,
            warn_on_impl: Warning | None = ...,
            warn_on_impl_args: Mapping[str, Warning] | None = ...,
        ) -> Callable[[_F], _F]: ...

    def __call__(
        self,
        function: _F | None = None,
        firstresult: bool = False,
        historic: bool = False,
        warn_on_impl: Warning | None = None,
        warn_on_impl_args: Mapping[str, Warning] | None = None,
    ) -> _F | Callable[[_F], _F]:
        """Mark ``function``, or return a decorator marking with these options."""

        def setattr_hookspec_opts(func: _F) -> _F:
            if historic and firstresult:
                raise ValueError("cannot have a historic firstresult hook")
            opts = {
                "firstresult": firstresult,
                "historic": historic,
                "warn_on_impl": warn_on_impl,
                "warn_on_impl_args": warn_on_impl_args,
            }
            setattr(func, self.project_name + "_spec", opts)
            return func

        if function is not None:
            return setattr_hookspec_opts(function)
        return setattr_hookspec_opts


#: Marker for hook specifications (pluggy's ``HookspecMarker("accel")``).
hookspec = HookspecMarker("accel")


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
