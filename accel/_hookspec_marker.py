"""The marker of hook specifications, :data:`accel.hookspecs.hookspec` (loaded on first use)."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Final, TypeVar, overload

    _F = TypeVar("_F", bound=Callable[..., object])


class HookspecMarker:
    """Marks hook specifications, as :class:`pluggy.HookspecMarker` does, without pluggy.

    Decorating a function sets its ``<project>_spec`` attribute to the same options dict
    pluggy's marker sets, so ``pluggy.PluginManager.add_hookspecs`` finds the hooks of
    :mod:`accel.hookspecs` and reads the same options.
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


HookspecMarker.__module__ = "accel.hookspecs"

#: Marker for hook specifications (pluggy's ``HookspecMarker("accel")``).
hookspec = HookspecMarker("accel")
