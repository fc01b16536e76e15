"""The plugin registry: pluggy's hooks, entry points, allow/deny lists, accelerator selection.

A :class:`Registry` holds plugins and calls their hooks under pluggy's contract (markers,
registration rules, call order and results) without importing pluggy for plain
implementations; hooks with wrappers go to a :class:`pluggy.PluginManager` holding the
same plugins (:attr:`Registry.plugin_manager`). Entry points in the
``accel.plugins`` group are discovered once, lazily, on first use; a plugin whose import
or registration fails is recorded (name, distribution, error) and the others still load.
``ACCEL_PLUGINS=a,b`` loads only those entry points, ``ACCEL_DISABLE_PLUGINS=a,b``
blocks those; both apply to entry points, not to plugins registered from code.

Nothing here is global: a program may make as many registries as it likes. The module
functions in :mod:`accel` use one default registry created on first use.

Example::

    reg = Registry()
    reg.register(my_plugin_module)        # from code, for tests and embedding
    acc = reg.open("kvm:tcg")             # first available, in order
"""

from __future__ import annotations

import _thread
import os
import sys

from . import hookspecs
from ._records import field, record
from .accelerator import Accelerator, Availability
from .errors import (
    AccelError,
    DuplicateAcceleratorError,
    NoAcceleratorError,
    PluginError,
    PluginLoadError,
    PluginValidationError,
    UnknownAcceleratorError,
    did_you_mean,
)
from .plugin import AcceleratorInfo, ClockDeviceChoice, DeviceType, MachineView

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from types import CodeType, TracebackType
    from typing import Any, Protocol

    import pluggy

__all__ = ["ENTRY_POINT_GROUP", "PluginRecord", "Registry", "default_registry"]

ENTRY_POINT_GROUP = "accel.plugins"
PROJECT = "accel"


@record(frozen=True)
class PluginRecord:
    """One plugin as ``accel plugins`` shows it."""

    name: str
    distribution: str | None
    version: str | None
    hooks: tuple[str, ...]
    source: str  # "entry-point" or "code"
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "hooks": list(self.hooks),
            "source": self.source,
            "error": self.error,
        }


# --------------------------------------------------------------------------- entry points


if TYPE_CHECKING:

    class _Dist(Protocol):
        @property
        def name(self) -> str | None: ...

        @property
        def version(self) -> str | None: ...

    class _EntryPointLike(Protocol):
        """What discovery uses of an entry point (``importlib.metadata.EntryPoint`` has it)."""

        @property
        def name(self) -> str: ...

        @property
        def value(self) -> str: ...

        @property
        def dist(self) -> _Dist | None: ...

        def load(self) -> Any: ...


_DIST_INFO_ERRORS = (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)


def _read(path: str) -> str | None:
    """A metadata file's text, None where importlib.metadata finds none either."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except _DIST_INFO_ERRORS:
        return None


class _PathDist:
    """A ``*.dist-info`` / ``*.egg-info`` directory: name and version from its metadata
    headers, read on first use (what ``importlib.metadata.PathDistribution`` reports)."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._headers: dict[str, str] | None = None

    def _header(self, key: str) -> str | None:
        if self._headers is None:
            text = (
                _read(os.path.join(self._path, "METADATA"))
                or _read(os.path.join(self._path, "PKG-INFO"))
                or _read(self._path)
                or ""
            )
            headers: dict[str, str] = {}
            for line in text.splitlines():
                if not line.strip():
                    break  # the end of the header block
                name, sep, value = line.partition(":")
                if sep and line[0] not in " \t":
                    headers.setdefault(name.strip().lower(), value.lstrip(" \t"))
            self._headers = headers
        return self._headers.get(key)  # None when missing, as importlib.metadata says

    @property
    def name(self) -> str | None:
        return self._header("name")

    @property
    def version(self) -> str | None:
        return self._header("version")


class _EntryPoint:
    """One ``name = module:attr`` line of an ``entry_points.txt``."""

    def __init__(self, name: str, value: str, dist: _PathDist) -> None:
        self.name = name
        self.value = value
        self.dist: _PathDist | None = dist

    def load(self) -> Any:
        """The module or the named object, as ``importlib.metadata.EntryPoint.load()``."""
        module, attr = _parse_entry_point_value(self.value)
        if module.startswith("."):  # importlib.import_module refuses it: let it say how
            import importlib

            importlib.import_module(module)
        # importlib.import_module(module) for an absolute name, without importing importlib
        from _frozen_importlib import _gcd_import  # type: ignore[attr-defined]

        obj: Any = _gcd_import(module)
        for part in filter(None, attr.split(".")):
            obj = getattr(obj, part)
        return obj


def _word_or_dot(ch: str) -> bool:
    # ``[\w.]`` of a str pattern: \w is str.isalnum() or the underscore.
    return ch.isalnum() or ch == "_" or ch == "."


def _parse_entry_point_value(value: str) -> tuple[str, str]:
    r"""``(module, attr)`` of an entry point value; ``attr`` is "" for a module.

    Accepts exactly what importlib.metadata's ``EntryPoint.pattern``,
    ``(?P<module>[\w.]+)\s*(:\s*(?P<attr>[\w.]+)\s*)?((?P<extras>\[.*\])\s*)?$``,
    matches (with ``re.match``); raises ValueError for anything else.
    """
    n = len(value)

    def word(i: int) -> int:
        while i < n and _word_or_dot(value[i]):
            i += 1
        return i

    def space(i: int) -> int:
        while i < n and value[i].isspace():
            i += 1
        return i

    end = word(0)
    module, attr = value[:end], ""
    i = space(end)
    if module and i < n and value[i] == ":":
        start = space(i + 1)
        end = word(start)
        if end > start:
            attr = value[start:end]
            i = space(end)
    if module and i < n and value[i] == "[":
        # ``\[.*\]\s*$``: "." is anything but a newline, and the last "]" is the one
        # followed by nothing but white space.
        extras = value[i:].rstrip()
        if len(extras) >= 2 and extras[-1] == "]" and "\n" not in extras[1:-1]:
            i = n
    if not module or i != n:
        raise ValueError(f"malformed entry point value {value!r}")
    return module, attr


def _normalize(name: str) -> str:
    # importlib.metadata's Prepared.normalize (PEP 503 plus dashes as underscores),
    # without a regular expression.
    out = name.lower()
    for ch in "-.":
        out = out.replace(ch, "_")
    while "__" in out:
        out = out.replace("__", "_")
    return out


def _scan_entry_points(group: str) -> list[_EntryPointLike] | None:
    """``importlib.metadata.entry_points(group=group)`` without importing importlib.metadata.

    Reads the ``*.dist-info`` / ``*.egg-info`` directories of the ``sys.path`` directories
    as importlib.metadata's path finder does: each directory in ``os.listdir`` order, the
    first distribution of a (normalised) name wins, ``entry_points.txt`` parsed the same
    way. Nothing is cached, so an install or uninstall shows at once. Returns None (use
    importlib.metadata) wherever the two could differ: another distribution finder on
    ``sys.meta_path``, a zip archive or non-string entry on ``sys.path``, an egg, or a
    metadata directory with an unusual suffix.
    """
    from _frozen_importlib_external import PathFinder  # importlib.machinery.PathFinder

    finders = [f for f in sys.meta_path if getattr(f, "find_distributions", None) is not None]
    if finders != [PathFinder]:
        return None
    seen: set[str] = set()
    out: list[_EntryPointLike] = []
    for entry in sys.path:
        if not isinstance(entry, str):
            return None
        root = entry or "."
        try:
            children = os.listdir(root)
        except NotADirectoryError:
            return None  # a zip archive: importlib.metadata reads those
        except OSError:
            continue
        if os.path.basename(entry).lower().endswith(".egg"):
            return None
        by_name: dict[str, list[str]] = {}
        for child in children:
            low = child.lower()
            if low.endswith((".dist-info", ".egg-info")):
                if not child.endswith((".dist-info", ".egg-info")) or not child.rpartition(".")[0]:
                    return None  # importlib.metadata would read the name from the metadata
                stem = low.rpartition(".")[0].partition("-")[0]
                by_name.setdefault(_normalize(stem), []).append(child)
        for children_of_name in by_name.values():
            for child in children_of_name:
                key = _normalize(child.rpartition(".")[0].partition("-")[0])
                if key in seen:
                    continue
                seen.add(key)
                path = os.path.join(root, child) if entry else child
                text = _read(os.path.join(path, "entry_points.txt"))
                if not text:
                    continue
                dist = _PathDist(path)
                section: str | None = None
                for raw in text.splitlines():
                    line = raw.strip()
                    if not line or line.startswith("#"):
                        continue
                    if line.startswith("[") and line.endswith("]"):
                        section = line.strip("[]")
                        continue
                    if section is None:
                        continue
                    name, sep, value = line.partition("=")
                    if not sep:
                        return None  # importlib.metadata raises for this file: let it say so
                    if section == group:
                        out.append(_EntryPoint(name.strip(), value.strip(), dist))
    return out


def _entry_points(group: str) -> list[_EntryPointLike]:
    """The entry points of ``group``, in importlib.metadata's order.

    A direct scan of the metadata directories (:func:`_scan_entry_points`) where it gives
    the same answer; importlib.metadata itself (tens of milliseconds to import) otherwise.
    """
    found = _scan_entry_points(group)
    if found is not None:
        return found
    import importlib.metadata as md

    return list(md.entry_points(group=group))


# --------------------------------------------------------------------------- hook machinery
#
# pluggy's markers, registration rules and calling convention are the contract; importing
# pluggy (with typing and inspect) costs more than half of ``accel run``'s start-up budget,
# so the registry keeps its plugins and hook implementations itself, as pluggy would, and
# hands a hook to a real pluggy.PluginManager only when an implementation of it is a
# wrapper. What follows mirrors pluggy 1.x: ``_static_hook_attr`` and ``_get_marker_opts``
# (which attributes are hook implementations), ``varnames`` (the arguments an
# implementation takes), ``HookCaller._add_hookimpl`` (call order) and ``_multicall``
# (calling). tests/core/test_hook_dispatch.py checks each against pluggy.

if TYPE_CHECKING:
    from types import BuiltinFunctionType as _BuiltinFunctionType
    from types import FunctionType as _FunctionType
    from types import GetSetDescriptorType as _GetSetDescriptorType
    from types import MemberDescriptorType as _MemberDescriptorType
    from types import MethodType as _MethodType
    from types import MethodWrapperType as _MethodWrapperType
    from types import ModuleType as _ModuleType
else:
    # The types of the types module, without importing it.
    _ModuleType = type(sys)
    _FunctionType = type(_read)
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
_IMPLICIT_NAMES = ("self", "cls", "obj") if sys.implementation.name == "pypy" else ("self", "cls")
_MODULE_TYPE_ATTRS = frozenset(vars(_ModuleType)) | frozenset(vars(object))
_IMPL_ATTR = PROJECT + "_impl"
_SPEC_ATTR = PROJECT + "_spec"


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


def _getattr_static(obj: object, attr: str) -> Any:
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


def _hook_attr(obj: object, name: str) -> tuple[object, Callable[..., object]] | None:
    """pluggy's ``_static_hook_attr``: ``(marker holder, function)`` or None.

    Properties and other descriptors are not evaluated; only functions, static and class
    methods and bound methods can be hooks, bound exactly as ``getattr()`` binds them.
    """
    is_class = isinstance(obj, type)
    if not (is_class or isinstance(obj, _ModuleType)):
        value = _instance_dict(obj).get(name, _ABSENT)
        if value is _ABSENT:
            slot = _getattr_static(obj, name)
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
    static = _getattr_static(obj, name)
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


def _marker_opts(holder: object, attrname: str) -> dict[str, Any] | None:
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


def _is_routine(obj: object) -> bool:
    """``inspect.isroutine``."""
    if isinstance(obj, (_BuiltinFunctionType, _FunctionType, _MethodType, _MethodWrapperType)):
        return True
    if isinstance(obj, type):
        return False
    kind = type(obj)
    return hasattr(kind, "__get__") and not hasattr(kind, "__set__")


def _unwrap(func: Any) -> Any:
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


def _varnames(func: object) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """pluggy's ``varnames``: the positional parameters without and with defaults.

    A class stands for its ``__init__`` and a callable object for its ``__call__``; the
    bound first parameter of a method is dropped, as is an unbound method's first
    parameter named ``self`` or ``cls``. Keyword-only parameters are not included.
    """
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
    target = _unwrap(target)
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


class _Spec:
    """One hook specification of :mod:`accel.hookspecs` (pluggy's ``HookSpec``)."""

    __slots__ = ("argnames", "kwargdefaults", "kwargnames", "name", "opts", "simple")

    def __init__(self, name: str, function: object, opts: dict[str, Any]) -> None:
        self.name = name
        self.argnames, self.kwargnames = _varnames(function)
        defaults = _unwrap(function).__defaults__
        self.kwargdefaults = dict(zip(self.kwargnames, defaults or (), strict=False))
        self.opts = opts
        # Historic hooks and implementation warnings are pluggy's alone.
        self.simple = not (
            opts.get("historic") or opts.get("warn_on_impl") or opts.get("warn_on_impl_args")
        )


_specs: dict[str, _Spec] | None = None


def _hook_specs() -> dict[str, _Spec]:
    """The specifications ``PluginManager.add_hookspecs(accel.hookspecs)`` finds, in order."""
    global _specs
    if _specs is None:
        found: dict[str, _Spec] = {}
        for name in dir(hookspecs):
            attr = _hook_attr(hookspecs, name)
            opts = _marker_opts(attr[0], _SPEC_ATTR) if attr is not None else None
            if opts is not None:
                found[name] = _Spec(name, getattr(hookspecs, name), opts)
        _specs = found
    return _specs


class _Impl:
    """One hook implementation (pluggy's ``HookImpl``)."""

    __slots__ = (
        "argnames",
        "function",
        "hookwrapper",
        "kwargnames",
        "optionalhook",
        "opts",
        "plugin",
        "plugin_name",
        "tryfirst",
        "trylast",
        "wrapper",
    )

    def __init__(
        self, plugin: object, plugin_name: str, function: Callable[..., object], opts: Any
    ) -> None:
        self.function = function
        self.argnames, self.kwargnames = _varnames(function)
        self.plugin = plugin
        self.opts = opts
        self.plugin_name = plugin_name
        self.wrapper = opts["wrapper"]
        self.hookwrapper = opts["hookwrapper"]
        self.optionalhook = opts["optionalhook"]
        self.tryfirst = opts["tryfirst"]
        self.trylast = opts["trylast"]

    def __repr__(self) -> str:
        return f"<HookImpl plugin_name={self.plugin_name!r}, plugin={self.plugin!r}>"


def _scan_plugin(plugin: object, plugin_name: str) -> list[tuple[str, _Impl]]:
    """``(hook name, implementation)`` for each marked attribute, in ``dir()`` order."""
    out: list[tuple[str, _Impl]] = []
    for attr_name in dir(plugin):
        found = _hook_attr(plugin, attr_name)
        if found is None:
            continue
        opts = _marker_opts(found[0], _IMPL_ATTR)
        if opts is None:
            continue
        opts.setdefault("tryfirst", False)  # pluggy's normalize_hookimpl_opts
        opts.setdefault("trylast", False)
        opts.setdefault("wrapper", False)
        opts.setdefault("hookwrapper", False)
        opts.setdefault("optionalhook", False)
        opts.setdefault("specname", None)
        out.append((opts.get("specname") or attr_name, _Impl(plugin, plugin_name, found[1], opts)))
    return out


def _add_impl(impls: list[_Impl], impl: _Impl) -> None:
    """pluggy's ``HookCaller._add_hookimpl``: the list is called from its end.

    Plain implementations come before wrappers; within each, trylast ones first (the
    latest registered first), then the others and the tryfirst ones in registration order.
    """
    for i, method in enumerate(impls):
        if method.hookwrapper or method.wrapper:
            splitpoint = i
            break
    else:
        splitpoint = len(impls)
    if impl.hookwrapper or impl.wrapper:
        start, end = splitpoint, len(impls)
    else:
        start, end = 0, splitpoint
    if impl.trylast:
        impls.insert(start, impl)
    elif impl.tryfirst:
        impls.insert(end, impl)
    else:
        i = end - 1
        while i >= start and impls[i].tryfirst:
            i -= 1
        impls.insert(i + 1, impl)


def _call_impl(impl: _Impl, kwargs: Mapping[str, object]) -> object:
    """Call one plain implementation with the arguments it declares, as ``_multicall``."""
    args = [kwargs[name] for name in impl.argnames]
    if impl.kwargnames:
        extra = {name: kwargs[name] for name in impl.kwargnames if name in kwargs}
        if extra:
            return impl.function(*args, **extra)
    return impl.function(*args)


def _code(function: object) -> object:
    return getattr(getattr(function, "__func__", function), "__code__", None)


def _raised_by(exc: BaseException, impls: Iterable[_Impl]) -> _Impl | None:
    """The implementation in whose code ``exc`` was raised (the innermost one)."""
    by_code = {_code(impl.function): impl for impl in impls}
    found = None
    tb: TracebackType | None = exc.__traceback__
    while tb is not None:
        found = by_code.get(tb.tb_frame.f_code, found)
        tb = tb.tb_next
    return found


def _formatdef(func: Callable[..., object]) -> str:
    import inspect  # only for the message of a plugin that is refused

    return f"{func.__name__}{inspect.signature(func)}"


def _canonical_name(plugin: object) -> str:
    name: str | None = getattr(plugin, "__name__", None)
    return name or str(id(plugin))


def _split_env(value: str | None) -> frozenset[str] | None:
    if value is None:
        return None
    return frozenset(p.strip() for p in value.split(",") if p.strip())


@record
class _State:
    records: dict[str, PluginRecord] = field(default_factory=dict)
    errors: list[PluginLoadError] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # entry point -> why not loaded


class Registry:
    """Plugins, accelerators and device types known to one program.

    ``entry_points`` False skips discovery (only :meth:`register` adds plugins); ``env``
    replaces ``os.environ`` for the allow/deny variables.
    """

    def __init__(self, *, entry_points: bool = True, env: Mapping[str, str] | None = None) -> None:
        self._use_entry_points = entry_points
        self._env = env
        self._discovered = False
        self._loading = False
        self._lock = _thread.RLock()
        self._state = _State()
        self._accelerators: dict[str, AcceleratorInfo] | None = None
        self._device_types: dict[str, DeviceType] | None = None
        # What a pluggy.PluginManager holds: plugins by name in registration order, and
        # each hook's implementations in call order (reversed), hooks in creation order.
        self._plugins: dict[str, object] = {}
        self._impls: dict[str, list[_Impl]] = {name: [] for name in _hook_specs()}
        self._pm: pluggy.PluginManager | None = None
        # Registrations and removals before the pluggy manager exists, replayed into it
        # when made: kept only once an implementation is both tryfirst and trylast, the
        # one case where pluggy's order depends on plugins since removed.
        self._history: list[tuple[bool, str, object]] | None = None

    # ------------------------------------------------------------------ plugins

    @property
    def plugin_manager(self) -> pluggy.PluginManager:
        """A pluggy plugin manager holding this registry's plugins, in the same order.

        Made on first use; registering and unregistering keep it in step afterwards.
        """
        self._discover()
        with self._lock:
            return self._plugin_manager()

    def _plugin_manager(self) -> pluggy.PluginManager:
        if self._pm is None:
            import pluggy

            pm = pluggy.PluginManager(PROJECT)
            pm.add_hookspecs(hookspecs)
            if self._history is None:
                for name, plugin in self._plugins.items():
                    pm.register(plugin, name=name)
            else:
                for added, name, plugin in self._history:
                    if added:
                        pm.register(plugin, name=name)
                    else:
                        pm.unregister(name=name)
                self._history = None
            self._pm = pm
        return self._pm

    def register(self, plugin: object, name: str | None = None) -> str:
        """Register ``plugin`` (a module or object with ``@hookimpl`` functions) from code.

        Raises :class:`PluginValidationError` naming the plugin when a hook implementation
        is unknown or has wrong argument names, and :class:`DuplicateAcceleratorError`
        when it provides an accelerator name another plugin already provides; in both
        cases nothing is registered.
        """
        with self._lock:
            self._discover()
            pname = name or _plugin_name(plugin)
            self._register_checked(plugin, pname, distribution=None, version=None, source="code")
            return pname

    def unregister(self, name: str) -> None:
        """Remove a plugin registered under ``name``."""
        with self._lock:
            self._discover()
            self._unregister(name)
            self._state.records.pop(name, None)
            self._invalidate()

    def _unregister(self, name: str) -> None:
        plugin = self._plugins.pop(name, None)
        if plugin is not None:
            for impls in self._impls.values():
                impls[:] = [impl for impl in impls if impl.plugin != plugin]
        if self._pm is not None:
            self._pm.unregister(name=name)
        elif self._history is not None and plugin is not None:
            self._history.append((False, name, plugin))

    def _name_of(self, plugin: object) -> str | None:
        """pluggy's ``get_name``: the name ``plugin`` is registered under."""
        for name, value in self._plugins.items():
            if plugin == value:
                return name
        return None

    def _hooks_of(self, plugin: object) -> list[str]:
        """The hooks ``plugin`` implements, in pluggy's ``get_hookcallers`` order."""
        if self._name_of(plugin) is None:
            return []
        return [
            hook
            for hook, impls in self._impls.items()
            if any(impl.plugin is plugin for impl in impls)
        ]

    def _call_hook(self, name: str, kwargs: Mapping[str, object]) -> Any:
        """``plugin_manager.hook.<name>(**kwargs)``: what pluggy returns or raises.

        Plain implementations are called here, in pluggy's order, each with the arguments
        it declares; None results are dropped and ``firstresult`` stops at the first
        other one. A hook with a wrapper, a specification only pluggy implements, or a call
        pluggy would warn about or refuse goes to the pluggy plugin manager instead.
        """
        impls = self._impls.get(name)
        if impls is None or not self._light(name, kwargs):
            return getattr(self._plugin_manager().hook, name)(**kwargs)
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

    def _light(self, name: str, kwargs: Mapping[str, object]) -> bool:
        """Whether :meth:`_call_hook` may call ``name``'s implementations itself."""
        spec = _hook_specs().get(name)
        if spec is not None:
            if not spec.simple:
                return False
            if spec.kwargdefaults:
                kwargs = {**spec.kwargdefaults, **kwargs}
            if any(arg not in kwargs for arg in spec.argnames):
                return False  # pluggy warns
        for impl in self._impls.get(name, ()):
            if impl.wrapper or impl.hookwrapper:
                return False
            if any(arg not in kwargs for arg in impl.argnames):
                return False  # pluggy raises HookCallError
        return True

    def plugins(self) -> list[PluginRecord]:
        """Every plugin: registered ones and those that failed to load."""
        self._discover()
        return sorted(self._state.records.values(), key=lambda r: r.name)

    @property
    def load_errors(self) -> tuple[PluginLoadError, ...]:
        """Plugins that failed to import or register, with the reason for each."""
        self._discover()
        return tuple(self._state.errors)

    def _discover(self) -> None:
        if self._discovered:
            return
        with self._lock:
            # _loading: a plugin being imported may itself use this registry (the lock
            # is re-entrant); it sees the plugins loaded so far. Other threads wait for
            # the lock and so never see a half-discovered registry.
            if self._discovered or self._loading:
                return
            self._loading = True
            try:
                if self._use_entry_points:
                    self._load_entry_points()
            finally:
                self._loading = False
                self._discovered = True

    def _load_entry_points(self) -> None:
        env = self._env if self._env is not None else os.environ
        allow = _split_env(env.get("ACCEL_PLUGINS"))
        deny = _split_env(env.get("ACCEL_DISABLE_PLUGINS")) or frozenset()
        seen: dict[str, str | None] = {}
        for ep in _entry_points(ENTRY_POINT_GROUP):
            if ep.name in deny:
                self._state.skipped[ep.name] = "is disabled by ACCEL_DISABLE_PLUGINS"
                continue
            if allow is not None and ep.name not in allow:
                self._state.skipped[ep.name] = "is not listed in ACCEL_PLUGINS"
                continue
            dist = ep.dist.name if ep.dist is not None else None
            version = ep.dist.version if ep.dist is not None else None
            if ep.name in seen:
                # importlib.metadata already drops a distribution found twice on sys.path,
                # so this is a second distribution claiming the same plugin name.
                if seen[ep.name] != dist:
                    self._record_error(
                        ep.name,
                        dist,
                        version,
                        f"plugin name {ep.name!r} is also registered by "
                        f"{seen[ep.name] or 'unknown distribution'}; "
                        f"only the one from {seen[ep.name] or 'unknown distribution'} is loaded",
                        keep_record=True,
                    )
                continue
            seen[ep.name] = dist
            try:
                plugin = ep.load()
            except Exception as exc:  # any import failure is reported, not raised
                self._record_error(
                    ep.name, dist, version, f"import of {ep.value!r} failed: {exc!r}"
                )
                continue
            try:
                self._register_checked(
                    plugin, ep.name, distribution=dist, version=version, source="entry-point"
                )
            except AccelError as exc:
                self._record_error(ep.name, dist, version, exc.message)

    def _record_error(
        self,
        name: str,
        dist: str | None,
        version: str | None,
        error: str,
        *,
        keep_record: bool = False,
    ) -> None:
        err = PluginLoadError(
            f"plugin {name!r} (from {dist or 'unknown distribution'}) could not be loaded: {error}",
            plugin=name,
            distribution=dist,
            error=error,
        )
        self._state.errors.append(err)
        if not keep_record:  # keep the record of a plugin of that name that did load
            self._state.records[name] = PluginRecord(name, dist, version, (), "entry-point", error)

    def _register_checked(
        self,
        plugin: object,
        name: str,
        *,
        distribution: str | None,
        version: str | None,
        source: str,
    ) -> None:
        where = f"plugin {name!r}" + (f" (from {distribution})" if distribution else "")
        if self._plugins.get(name) is not None or any(
            plugin == value for value in self._plugins.values()
        ):
            raise PluginValidationError(
                f"{where} is already registered",
                hint="register each plugin once, under a unique name",
                plugin=name,
                distribution=distribution,
            )
        # pluggy ignores a None plugin
        pm_name = None if plugin is None else self._add_plugin(plugin, name, where, distribution)
        try:
            self._check_hook_names(plugin, name, where, distribution)
            # Provided accelerators must be well formed and unique.
            self._collect_accelerators(extra_check=name)
        except AccelError:
            if pm_name is not None:
                self._unregister(pm_name)
            self._invalidate()
            raise
        hooks = tuple(sorted(self._hooks_of(plugin)))
        self._state.records[name] = PluginRecord(name, distribution, version, hooks, source)
        self._invalidate()

    def _add_plugin(self, plugin: object, name: str, where: str, distribution: str | None) -> str:
        """``PluginManager.register(plugin, name)``: validate, then add. Returns its name.

        Implementations whose arguments are not in their hook's specification are refused
        with pluggy's message. A plugin with a wrapper (whose rules pluggy alone checks),
        or any plugin once the pluggy manager exists, is registered with pluggy itself.
        """
        pm_name = name or _canonical_name(plugin)
        specs = _hook_specs()
        impls = _scan_plugin(plugin, pm_name)
        if self._pm is not None or any(
            impl.wrapper or impl.hookwrapper or (hook in specs and not specs[hook].simple)
            for hook, impl in impls
        ):
            import pluggy

            try:
                self._plugin_manager().register(plugin, name=name)
            except pluggy.PluginValidationError as exc:
                raise PluginValidationError(
                    f"{where}: {exc}", plugin=name, distribution=distribution
                ) from exc
        else:
            for hook, impl in impls:
                spec = specs.get(hook)
                if spec is None:
                    continue  # an unknown hook: refused by _check_hook_names
                notinspec = set(impl.argnames) - (set(spec.argnames) | set(spec.kwargnames))
                if notinspec:
                    raise PluginValidationError(
                        f"{where}: Plugin {pm_name!r} for hook {hook!r}\n"
                        f"hookimpl definition: {_formatdef(impl.function)}\n"
                        f"Argument(s) {notinspec} are declared in the hookimpl but "
                        "can not be found in the hookspec",
                        plugin=name,
                        distribution=distribution,
                    )
        if self._pm is None:
            if self._history is None and any(impl.tryfirst and impl.trylast for _, impl in impls):
                self._history = [(True, *entry) for entry in self._plugins.items()]
            if self._history is not None:
                self._history.append((True, pm_name, plugin))
        self._plugins[pm_name] = plugin
        for hook, impl in impls:
            _add_impl(self._impls.setdefault(hook, []), impl)
        return pm_name

    def _check_hook_names(
        self, plugin: object, name: str, where: str, distribution: str | None
    ) -> None:
        """Unknown hook names (typos such as ``accel_accelerator``) are errors."""
        implemented = self._hooks_of(plugin)
        for hook in implemented:
            if hook not in _hook_specs():
                known = sorted(n for n in dir(hookspecs) if n.startswith("accel_"))
                guess = did_you_mean(hook, known)
                raise PluginValidationError(
                    f"{where}: unknown hook {hook!r}"
                    + (f" (did you mean {guess!r}?)" if guess else ""),
                    hint="hooks are: " + ", ".join(known),
                    plugin=name,
                    distribution=distribution,
                    hook=hook,
                )
        # Names that look like hooks but are not marked: most often a forgotten decorator.
        marked = set(implemented)
        for attr in dir(plugin):
            if not attr.startswith("accel_") or attr in marked:
                continue
            if hasattr(hookspecs, attr):
                if callable(getattr(plugin, attr, None)):
                    raise PluginValidationError(
                        f"{where}: {attr!r} is not marked with @accel.hookimpl, "
                        "so it would never be called",
                        hint=f"decorate it: @accel.hookimpl def {attr}(...)",
                        plugin=name,
                        distribution=distribution,
                        hook=attr,
                    )
            else:
                obj = getattr(plugin, attr, None)
                if callable(obj):
                    known = sorted(n for n in dir(hookspecs) if n.startswith("accel_"))
                    guess = did_you_mean(attr, known)
                    raise PluginValidationError(
                        f"{where}: {attr!r} looks like a hook but is not one"
                        + (f" (did you mean {guess!r}?)" if guess else ""),
                        hint="hooks are: " + ", ".join(known),
                        plugin=name,
                        distribution=distribution,
                        hook=attr,
                    )

    def _invalidate(self) -> None:
        self._accelerators = None
        self._device_types = None

    # ------------------------------------------------------------------ accelerators

    def _collect_accelerators(self, extra_check: str | None = None) -> dict[str, AcceleratorInfo]:
        found: dict[str, AcceleratorInfo] = {}
        for impl in self._impls["accel_accelerators"].copy():
            pname = self._name_of(impl.plugin) or "?"
            try:
                result: Any = impl.function()
            except Exception as exc:  # reported with the plugin name
                raise PluginValidationError(
                    f"plugin {pname!r}: accel_accelerators() raised {exc!r}", plugin=pname
                ) from exc
            infos: Iterable[object] = result or ()
            for info in infos:
                if not isinstance(info, AcceleratorInfo):
                    raise PluginValidationError(
                        f"plugin {pname!r}: accel_accelerators() must return AcceleratorInfo "
                        f"objects, not {type(info).__name__}",
                        plugin=pname,
                    )
                if info.name in found:
                    other = found[info.name].plugin
                    raise DuplicateAcceleratorError(
                        f"accelerator {info.name!r} is provided by two plugins: "
                        f"{other!r} and {pname!r}",
                        plugin=pname,
                        plugins=(other, pname),
                        accelerator=info.name,
                    )
                found[info.name] = _with_plugin(info, pname)
        return found

    def accelerators(self) -> dict[str, AcceleratorInfo]:
        """Every registered accelerator by name, highest priority first."""
        with self._lock:
            self._discover()
            if self._accelerators is None:
                found = self._collect_accelerators()
                self._accelerators = dict(
                    sorted(found.items(), key=lambda kv: (-kv[1].priority, kv[0]))
                )
            return dict(self._accelerators)

    def info(self, name: str) -> AcceleratorInfo:
        """The registered accelerator ``name``; unknown names get a did-you-mean."""
        accs = self.accelerators()
        try:
            return accs[name]
        except KeyError:
            raise self._unknown(name, list(accs)) from None

    def _unknown(self, name: str, known: list[str]) -> UnknownAcceleratorError:
        guess = did_you_mean(name, known)
        why = self._why_missing(name)
        if guess:
            hint = f"did you mean {guess!r}?"
        else:
            hint = "registered: " + (", ".join(known) if known else "none")
        return UnknownAcceleratorError(
            f"unknown accelerator {name!r}" + (f" ({why})" if why else ""),
            hint=hint,
            accelerator=name,
            known=tuple(known),
            suggestion=guess,
        )

    def _why_missing(self, name: str) -> str | None:
        """Why a plugin of the same name did not provide ``name``, when we know."""
        for err in self._state.errors:
            if err.plugin == name:
                return f"plugin {name!r} failed to load: {err.error}"
        if name in self._state.skipped:
            return f"plugin {name!r} {self._state.skipped[name]}"
        return None

    def create(self, name: str) -> Accelerator:
        """A new, unprobed :class:`Accelerator` of the named type."""
        return self.info(name).factory()

    def open(
        self,
        spec: str | Iterable[str] | None = None,
        *,
        on_unusable: Callable[[str, str], None] | None = None,
    ) -> Accelerator:
        """The first usable accelerator of ``spec``.

        ``spec`` is ``"kvm:tcg"`` (or a list of names) tried in order like QEMU's
        ``-accel kvm -accel tcg``; None tries every registered accelerator by priority.
        A name nobody registered raises :class:`UnknownAcceleratorError` with a
        did-you-mean before anything is probed when it is the only name or looks like a
        typo of a registered one; in a longer list it is otherwise a candidate that is
        not usable (as QEMU skips an accelerator it was built without), so
        ``"kvm:tcg"`` still falls back when the first plugin is disabled or failed to
        load. :class:`NoAcceleratorError` lists every candidate's reason when none is
        usable. ``on_unusable(name, reason)`` is called for each candidate passed over
        before the one returned (``accel run`` prints QEMU's "falling back" lines from it).
        """
        names = self._parse_spec(spec)
        accs = self.accelerators()
        tried: list[tuple[str, str]] = []
        for name in names:
            if name not in accs:
                why = self._why_missing(name)
                tried.append((name, "not registered" + (f": {why}" if why else "")))
                continue
            acc, availability = self._try(name)
            if acc is not None:
                if on_unusable is not None:
                    for skipped, reason in tried:
                        on_unusable(skipped, reason)
                return acc
            tried.append((name, availability.reason))
        raise NoAcceleratorError(tried)

    def probe_all(self) -> dict[str, Availability]:
        """Every accelerator's availability (each probed and closed again)."""
        out: dict[str, Availability] = {}
        for name, info in self.accelerators().items():
            acc = info.factory()
            try:
                out[name] = acc.probe()
            except AccelError as exc:  # probe() should not raise; report it as the reason
                out[name] = Availability.unavailable(str(exc))
            finally:
                acc.close()
        return out

    def _parse_spec(self, spec: str | Iterable[str] | None) -> list[str]:
        if spec is None:
            names = list(self.accelerators())
        elif isinstance(spec, str):
            names = [n.strip() for n in spec.replace(",", ":").split(":") if n.strip()]
            if not names:
                from .errors import InvalidArgumentError

                raise InvalidArgumentError(
                    f"empty accelerator list {spec!r}",
                    hint="name one or more accelerators, e.g. 'kvm:tcg'",
                    argument="accel",
                    value=spec,
                )
        else:
            names = list(spec)
        known = self.accelerators()
        for name in names:
            # Unknown names fail before anything is probed, unless they are one
            # alternative among several and not a typo of a registered name.
            if name not in known and (len(names) == 1 or did_you_mean(name, list(known))):
                self.info(name)
        return names

    def _try(self, name: str) -> tuple[Accelerator | None, Availability]:
        try:
            acc = self.info(name).factory()
        except AccelError as exc:  # e.g. a backend library that cannot be loaded
            return None, Availability.unavailable(str(exc))
        try:
            availability = acc.probe()
        except AccelError as exc:
            acc.close()
            return None, Availability.unavailable(str(exc))
        if availability.available:
            return acc, availability
        acc.close()
        reason = availability.reason
        if availability.hint:
            reason = f"{reason} (hint: {availability.hint})"
        return None, Availability.unavailable(reason, availability.hint)

    # ------------------------------------------------------------------ devices

    def device_types(self) -> dict[str, DeviceType]:
        """Every device type plugins contribute, by name (duplicates are an error)."""
        with self._lock:
            self._discover()
            if self._device_types is None:
                found: dict[str, DeviceType] = {}
                for impl in self._impls["accel_device_types"].copy():
                    pname = self._name_of(impl.plugin) or "?"
                    try:
                        dtypes: Any = impl.function() or ()
                    except Exception as exc:  # reported with the plugin name
                        raise PluginValidationError(
                            f"plugin {pname!r}: accel_device_types() raised {exc!r}",
                            plugin=pname,
                        ) from exc
                    for dtype in dtypes:
                        if not isinstance(dtype, DeviceType):
                            raise PluginValidationError(
                                f"plugin {pname!r}: accel_device_types() must return "
                                f"DeviceType objects, not {type(dtype).__name__}",
                                plugin=pname,
                            )
                        if dtype.name in found:
                            raise PluginValidationError(
                                f"device type {dtype.name!r} is provided by two plugins: "
                                f"{found[dtype.name].plugin!r} and {pname!r}",
                                plugin=pname,
                            )
                        found[dtype.name] = _with_plugin(dtype, pname)
                self._device_types = found
            return dict(self._device_types)

    def clock_devices(
        self, accelerator: Accelerator, machine: MachineView
    ) -> list[ClockDeviceChoice]:
        """Every plugin's clock-device decisions for ``accelerator`` on ``machine``.

        Plugins are asked in pluggy's call order (the last registered first). A hook that
        raises something other than an :class:`AccelError`, or returns something other
        than :class:`ClockDeviceChoice` objects, raises :class:`PluginError` naming the
        plugin. When a plugin wraps the hook (``@accel.hookimpl(wrapper=True)``), pluggy
        calls it and the result is the outermost wrapper's.
        """
        self._discover()
        hook = "accel_clock_devices"
        kwargs = {"accelerator": accelerator, "machine": machine}
        impls = self._impls[hook].copy()
        results: list[tuple[str, object]] = []
        try:
            if self._light(hook, kwargs):
                for impl in reversed(impls):
                    result = _call_impl(impl, kwargs)
                    if result is not None:
                        results.append((self._name_of(impl.plugin) or "?", result))
            else:
                wrappers = [impl for impl in impls if impl.wrapper or impl.hookwrapper]
                pname = (self._name_of(wrappers[-1].plugin) if wrappers else None) or "?"
                results = [(pname, result) for result in self._call_hook(hook, kwargs)]
        except AccelError:
            raise
        except Exception as exc:
            raiser = _raised_by(exc, impls)
            pname = (self._name_of(raiser.plugin) if raiser is not None else None) or "?"
            raise PluginError(
                f"plugin {pname!r}: accel_clock_devices() raised {exc!r}",
                hint="this is a bug in the plugin: report it, or skip the plugin with "
                "ACCEL_DISABLE_PLUGINS=<name>",
                plugin=pname,
            ) from exc
        out: list[ClockDeviceChoice] = []
        for pname, result in results:
            choices: Iterable[object] = result or ()  # type: ignore[assignment]
            for choice in choices:
                if not isinstance(choice, ClockDeviceChoice):
                    raise PluginValidationError(
                        f"plugin {pname!r}: accel_clock_devices() must return "
                        f"ClockDeviceChoice objects, not {type(choice).__name__}",
                        plugin=pname,
                    )
                out.append(choice)
        return out


def _with_plugin(obj: Any, plugin: str) -> Any:
    if hasattr(type(obj), "__record_fields__"):
        from ._records import replace

        return replace(obj, plugin=plugin)
    import dataclasses

    return dataclasses.replace(obj, plugin=plugin)


def _plugin_name(plugin: object) -> str:
    if isinstance(plugin, _ModuleType):
        return plugin.__name__
    name = getattr(plugin, "__name__", None)
    return str(name) if name else f"{type(plugin).__name__}-{id(plugin):x}"


_default: Registry | None = None
_default_lock = _thread.allocate_lock()


def default_registry() -> Registry:
    """The registry the module-level functions of :mod:`accel` use (made on first use)."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = Registry()
    return _default
