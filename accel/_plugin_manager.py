"""The registry's pluggy side: pluggy's lookup for any kind of plugin, and the real
:class:`pluggy.PluginManager` that wrappers, historic hooks and warnings go through.

What follows mirrors pluggy 1.x: :func:`hook_attr` and :func:`marker_opts` are
``_static_hook_attr`` and ``_get_marker_opts`` (which attributes are hook implementations),
:func:`varnames` is ``varnames`` (the arguments an implementation takes).
tests/core/test_hook_dispatch.py checks each against pluggy.
"""

from __future__ import annotations

import sys

from .errors import PluginValidationError
from .registry import _IMPLICIT_NAMES, _MODULE_TYPE_ATTRS, PROJECT

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from types import BuiltinFunctionType as _BuiltinFunctionType
    from types import CodeType
    from types import FunctionType as _FunctionType
    from types import GetSetDescriptorType as _GetSetDescriptorType
    from types import MemberDescriptorType as _MemberDescriptorType
    from types import MethodType as _MethodType
    from types import MethodWrapperType as _MethodWrapperType
    from types import ModuleType as _ModuleType
    from typing import Any

    import pluggy

    from ._registry_extra import _Dist
    from .registry import Registry, _Impl
else:
    # The types of the types module, without importing it.
    _ModuleType = type(sys)
    _FunctionType = type(lambda: None)
    _BuiltinFunctionType = type(len)
    _MethodWrapperType = type(object().__str__)
    _GetSetDescriptorType = type(_FunctionType.__code__)
    _MemberDescriptorType = type(_FunctionType.__globals__)

    class _Bound:
        def method(self):
            """Only here for its type."""

    _MethodType = type(_Bound().method)
    del _Bound


_ABSENT: Any = object()
_TYPE_DICT = type.__dict__["__dict__"]
_TYPE_MRO = type.__dict__["__mro__"]

# --------------------------------------------------------------------------- lookup


def _static_mro(klass: object) -> tuple[type, ...]:
    mro: tuple[type, ...] = _TYPE_MRO.__get__(klass)
    return mro


def _shadowed_dict(klass: type) -> Any:
    for entry in _static_mro(klass):
        try:
            class_dict = _TYPE_DICT.__get__(entry)["__dict__"]
        except KeyError:
            pass
        else:
            if not (
                type(class_dict) is _GetSetDescriptorType
                and class_dict.__name__ == "__dict__"
                and class_dict.__objclass__ is entry
            ):
                return class_dict
    return _ABSENT


def _check_instance(obj: object, attr: str) -> Any:
    instance_dict: Any
    try:
        instance_dict = object.__getattribute__(obj, "__dict__")
    except AttributeError:
        instance_dict = {}
    return dict.get(instance_dict, attr, _ABSENT)


def _check_class(klass: type, attr: str) -> Any:
    for entry in _static_mro(klass):
        if _shadowed_dict(type(entry)) is _ABSENT:
            try:
                return entry.__dict__[attr]
            except KeyError:
                pass
    return _ABSENT


def _is_type(obj: object) -> bool:
    try:
        _static_mro(obj)
    except TypeError:
        return False
    return True


def getattr_static(obj: object, attr: str) -> Any:
    """``inspect.getattr_static(obj, attr, None)``."""
    if type(obj) is _ModuleType and attr not in _MODULE_TYPE_ATTRS:
        # The common case, a plugin module: only its own __dict__ can hold ``attr``.
        return _instance_dict(obj).get(attr)
    instance_result = _ABSENT
    klass: Any
    if not _is_type(obj):
        klass = type(obj)
        dict_attr = _shadowed_dict(klass)
        if dict_attr is _ABSENT or type(dict_attr) is _MemberDescriptorType:
            instance_result = _check_instance(obj, attr)
    else:
        klass = obj
    klass_result = _check_class(klass, attr)
    if instance_result is not _ABSENT and klass_result is not _ABSENT:
        kind = type(klass_result)
        if _check_class(kind, "__get__") is not _ABSENT and (
            _check_class(kind, "__set__") is not _ABSENT
            or _check_class(kind, "__delete__") is not _ABSENT
        ):
            return klass_result
    if instance_result is not _ABSENT:
        return instance_result
    if klass_result is not _ABSENT:
        return klass_result
    if obj is klass:
        for entry in _static_mro(type(klass)):
            if _shadowed_dict(type(entry)) is _ABSENT:
                try:
                    return entry.__dict__[attr]
                except KeyError:
                    pass
    return None


def _instance_dict(obj: object) -> dict[str, Any]:
    try:
        instance_dict = object.__getattribute__(obj, "__dict__")
    except AttributeError:
        return {}
    return instance_dict if isinstance(instance_dict, dict) else {}


def hook_attr(obj: object, name: str) -> tuple[object, Callable[..., object]] | None:
    """pluggy's ``_static_hook_attr``: ``(marker holder, function)`` or None.

    Properties and other descriptors are not evaluated; only functions, static and class
    methods and bound methods can be hooks, bound exactly as ``getattr()`` binds them.
    """
    is_class = isinstance(obj, type)
    if not (is_class or isinstance(obj, _ModuleType)):
        value = _instance_dict(obj).get(name, _ABSENT)
        if value is _ABSENT:
            slot = getattr_static(obj, name)
            if isinstance(slot, _MemberDescriptorType):
                try:
                    value = slot.__get__(obj, type(obj))
                except AttributeError:
                    value = _ABSENT
        if value is not _ABSENT:
            if isinstance(value, _MethodType):
                return value.__func__, value
            if isinstance(value, _FunctionType):
                return value, value
            return None
    static = getattr_static(obj, name)
    if isinstance(static, staticmethod):
        return static, static.__func__
    if isinstance(static, classmethod):
        owner: Any = obj if is_class else type(obj)
        return static, static.__get__(owner, owner)
    if isinstance(static, _MethodType):
        return static.__func__, static
    if isinstance(static, _FunctionType):
        if is_class or isinstance(obj, _ModuleType):
            return static, static
        return static, static.__get__(obj, type(obj))
    return None


def marker_opts(holder: object, attrname: str) -> dict[str, Any] | None:
    """pluggy's ``_get_marker_opts``: the marker's options dict, or None."""
    opts = getattr(holder, attrname, None)
    if opts is not None:
        return opts if isinstance(opts, dict) else None
    func = getattr(holder, "__func__", None)
    if func is not None:
        opts = getattr(func, attrname, None)
        if opts is not None:
            return opts if isinstance(opts, dict) else None
    return None


def marked_attr(
    obj: object, name: str, attrname: str
) -> tuple[str, Callable[..., object], dict[str, Any]] | None:
    """``(name, function, options)`` when attribute ``name`` of ``obj`` is marked."""
    found = hook_attr(obj, name)
    if found is None:
        return None
    opts = marker_opts(found[0], attrname)
    if opts is None:
        return None
    return name, found[1], opts


def marked(obj: object, attrname: str) -> list[tuple[str, Callable[..., object], dict[str, Any]]]:
    """Every attribute of ``obj`` marked with ``attrname``, in ``dir()`` order."""
    out = []
    for name in dir(obj):
        found = marked_attr(obj, name, attrname)
        if found is not None:
            out.append(found)
    return out


def _is_routine(obj: object) -> bool:
    """``inspect.isroutine``."""
    if isinstance(obj, (_BuiltinFunctionType, _FunctionType, _MethodType, _MethodWrapperType)):
        return True
    if isinstance(obj, type):
        return False
    kind = type(obj)
    return hasattr(kind, "__get__") and not hasattr(kind, "__set__")


def unwrap(func: Any) -> Any:
    """``inspect.unwrap``: follow ``__wrapped__`` to the innermost function."""
    original = func
    memo = {id(func): func}
    limit = sys.getrecursionlimit()
    while hasattr(func, "__wrapped__"):
        func = func.__wrapped__
        if id(func) in memo or len(memo) >= limit:
            raise ValueError(f"wrapper loop when unwrapping {original!r}")
        memo[id(func)] = func
    return func


def varnames(func: object) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """pluggy's ``varnames`` for any callable (see ``accel.registry._varnames``)."""
    is_bound = False
    target: Any = func
    if isinstance(target, type):
        try:
            target = target.__init__  # type: ignore[misc]
        except AttributeError:  # pragma: no cover - as pluggy (PyPy)
            return (), ()
        is_bound = True
    elif not _is_routine(target):
        try:
            target = getattr(target, "__call__", target)  # noqa: B004
        except Exception:  # pragma: no cover - as pluggy (PyPy)
            return (), ()
    if isinstance(target, _MethodType):
        is_bound = True
    target = unwrap(target)
    if isinstance(target, _MethodType):
        is_bound = True
        target = target.__func__
    try:
        code: CodeType = target.__code__
        defaults: tuple[object, ...] | None = target.__defaults__
        qualname: str = target.__qualname__
    except AttributeError:
        return (), ()
    args: tuple[str, ...] = code.co_varnames[: code.co_argcount]
    kwargs: tuple[str, ...] = ()
    if defaults:
        index = -len(defaults)
        args, kwargs = args[:index], args[index:]
    tail = qualname.rsplit("<locals>.", maxsplit=1)[-1]
    if args and (is_bound or ("." in tail and args[0] in _IMPLICIT_NAMES)):
        args = args[1:]
    return args, kwargs


# --------------------------------------------------------------------------- pluggy


def build(registry: Registry) -> pluggy.PluginManager:
    """A pluggy plugin manager holding ``registry``'s plugins in the same order.

    Where the registry kept its history of registrations and removals (an implementation
    both tryfirst and trylast makes pluggy's order depend on plugins since removed), the
    history is replayed; otherwise its current plugins are registered in order.
    """
    import pluggy

    from . import registry as registry_module

    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(registry_module.hookspecs)
    if registry._history is None:
        for name, plugin in registry._plugins.items():
            pm.register(plugin, name=name)
    else:
        for added, name, plugin in registry._history:
            if added:
                pm.register(plugin, name=name)
            else:
                pm.unregister(name=name)
        registry._history = None
    return pm


def register(registry: Registry, plugin: object, name: str, dist: _Dist | None) -> None:
    """Register ``plugin`` with the registry's pluggy manager, in pluggy's words on refusal."""
    import pluggy

    try:
        registry._plugin_manager().register(plugin, name=name)
    except pluggy.PluginValidationError as exc:
        from ._registry_extra import where

        where_, distribution = where(name, dist)
        raise PluginValidationError(
            f"{where_}: {exc}", plugin=name, distribution=distribution
        ) from exc


def call_hook(registry: Registry, name: str, kwargs: Mapping[str, object]) -> Any:
    """``Registry._call_hook``: plain implementations called as pluggy calls them, others
    through the pluggy plugin manager."""
    from .registry import _call_impl, _hook_specs

    impls = registry._impls.get(name)
    if impls is None or not registry._light(name, kwargs):
        return getattr(registry._plugin_manager().hook, name)(**kwargs)
    spec = _hook_specs().get(name)
    firstresult = spec.opts.get("firstresult", False) if spec is not None else False
    if spec is not None and spec.kwargdefaults:
        kwargs = {**spec.kwargdefaults, **kwargs}
    results: list[object] = []
    for impl in reversed(impls.copy()):
        result = _call_impl(impl, kwargs)
        if result is not None:
            results.append(result)
            if firstresult:
                break
    if firstresult:
        return results[0] if results else None
    return results


def call_wrapped(
    registry: Registry, hook: str, kwargs: Mapping[str, object], impls: list[_Impl]
) -> list[tuple[str, object]]:
    """``hook``'s results through pluggy, each named by the outermost wrapper's plugin."""
    wrappers = [impl for impl in impls if impl.wrapper or impl.hookwrapper]
    pname = (registry._name_of(wrappers[-1].plugin) if wrappers else None) or "?"
    return [(pname, result) for result in registry._call_hook(hook, kwargs)]
