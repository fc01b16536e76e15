"""The plugin registry: pluggy's hooks, entry points, allow/deny lists, accelerator selection.

A :class:`Registry` holds plugins and calls their hooks under pluggy's contract (markers,
registration rules, call order and results) without importing pluggy for plain
implementations; hooks with wrappers go to a :class:`pluggy.PluginManager` holding the
same plugins (:attr:`Registry.plugin_manager`, see :mod:`accel._plugin_manager`). Entry
points in the ``accel.plugins`` group are discovered once, lazily, on first use; a plugin
whose import or registration fails is recorded (name, distribution, error) and the others
still load. ``ACCEL_PLUGINS=a,b`` loads only those entry points, ``ACCEL_DISABLE_PLUGINS=a,b``
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

from . import hookspecs as hookspecs
from ._lazy import exports
from .accelerator import Availability
from .errors import AccelError, NoAcceleratorError, did_you_mean
from .plugin import AcceleratorInfo, ClockDeviceChoice, DeviceType

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from types import FunctionType as _FunctionType
    from types import ModuleType as _ModuleType
    from typing import Any

    import pluggy

    from ._registry_extra import PluginRecord, _Dist, _EntryPointLike
    from .accelerator import Accelerator
    from .errors import PluginLoadError
    from .plugin import MachineView
else:
    _ModuleType = type(sys)
    _FunctionType = type(did_you_mean)

__all__ = ["ENTRY_POINT_GROUP", "PluginRecord", "Registry", "default_registry"]

ENTRY_POINT_GROUP = "accel.plugins"
PROJECT = "accel"


__getattr__ = exports(globals(), {"PluginRecord": "._registry_extra"})[0]
del exports


# --------------------------------------------------------------------------- entry points


_DIST_INFO_ERRORS = (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)


def _read(path: str) -> str | None:
    # A metadata file's text, None where importlib.metadata finds none either.
    try:
        fd = os.open(path, os.O_RDONLY)
    except _DIST_INFO_ERRORS:
        return None
    chunks = []
    try:
        while chunk := os.read(fd, 0x10000):
            chunks.append(chunk)
    except _DIST_INFO_ERRORS:  # a directory opens, but does not read
        return None
    finally:
        os.close(fd)
    # Text mode's newline translation changes no line that splitlines() gives.
    return b"".join(chunks).decode("utf-8")


class _PathDist:
    # A ``*.dist-info`` / ``*.egg-info`` directory: name and version from its metadata
    # headers, read on first use (what ``importlib.metadata.PathDistribution`` reports).

    def __init__(self, path: str) -> None:
        self._path = path
        self._headers: dict[str, str] | None = None

    def _header(self, key: str) -> str | None:
        if self._headers is None:
            from ._registry_extra import metadata_headers

            self._headers = metadata_headers(self._path)
        return self._headers.get(key)  # None when missing, as importlib.metadata says

    @property
    def name(self) -> str | None:
        return self._header("name")

    @property
    def version(self) -> str | None:
        return self._header("version")


class _EntryPoint:
    # One ``name = module:attr`` line of an ``entry_points.txt``.

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


def _parse_entry_point_value(value: str) -> tuple[str, str]:
    # ``(module, attr)`` of an entry point value, as importlib.metadata parses it.
    if value.replace(".", "a").replace("_", "a").isalnum():
        return value, ""  # only ``[\w.]``: a module name
    from ._registry_extra import parse_entry_point_value

    return parse_entry_point_value(value)


def _normalize(name: str) -> str:
    # importlib.metadata's Prepared.normalize (PEP 503 plus dashes as underscores),
    # without a regular expression.
    out = name.lower()
    for ch in "-.":
        out = out.replace(ch, "_")
    while "__" in out:
        out = out.replace("__", "_")
    return out


def _has_metadata(names: Iterable[str]) -> bool:
    # Whether a directory listing may hold a ``*.dist-info`` or ``*.egg-info`` entry.
    low = "\0".join(names).lower()
    return ".dist-info" in low or ".egg-info" in low


def _current_listing(finder: object, root: str) -> set[str] | None:
    # The import system's listing of directory ``root`` (unordered) when it is current, else
    # None (its ``FileFinder`` lists a directory again once its mtime moves, as
    # importlib.metadata's own listing cache does).
    try:
        mtime = finder._path_mtime  # type: ignore[attr-defined]
        names = finder._path_cache  # type: ignore[attr-defined]
        if type(names) is not set:
            return None
        st = os.stat(root)
    except (AttributeError, OSError):
        return None
    if st.st_mode & 0o170000 == 0o040000 and st.st_mtime == mtime:  # unchanged since listed
        return names
    return None


def _scan_entry_points(group: str) -> list[_EntryPointLike] | None:
    # ``importlib.metadata.entry_points(group=group)`` without importing importlib.metadata.
    #
    # Reads the ``*.dist-info`` / ``*.egg-info`` directories of the ``sys.path`` directories
    # as importlib.metadata's path finder does: each directory in ``os.listdir`` order, the
    # first distribution of a (normalised) name wins, ``entry_points.txt`` parsed the same
    # way. Where the import system already holds a directory's current listing, that listing
    # is used instead, unless the order of its names could matter (two distributions of one
    # name, or entry points of ``group`` from two distributions); nothing else is cached, so
    # an install or uninstall shows at once. Returns None (use importlib.metadata) wherever
    # the two could differ: another distribution finder on ``sys.meta_path``, a zip archive
    # or non-string entry on ``sys.path``, an egg, or a metadata directory with an unusual
    # suffix.
    from _frozen_importlib_external import FileFinder, PathFinder

    finders = [f for f in sys.meta_path if getattr(f, "find_distributions", None) is not None]
    if finders != [PathFinder]:
        return None
    listed = sys.path_importer_cache
    header = "[" + group + "]"  # in the text of any file with a section named ``group``
    seen: set[str] = set()
    out: list[_EntryPointLike] = []
    for entry in sys.path:
        if not isinstance(entry, str):
            return None
        root = entry or "."
        finder = listed.get(entry)
        children: Iterable[str] | None = None
        if type(finder) is FileFinder and finder.path == root:
            children = _current_listing(finder, root)
        if children is None:
            try:
                children = os.listdir(root)
            except NotADirectoryError:
                return None  # a zip archive: importlib.metadata reads those
            except OSError:
                continue
        if os.path.basename(entry).lower().endswith(".egg"):
            return None
        if not _has_metadata(children):
            continue
        prefix = os.path.join(root, "") if entry else ""
        found = _scan_directory(prefix, children, group, header, seen)
        if found is not None and type(children) is set and found[1] > 1:
            found = _scan_directory(prefix, os.listdir(root), group, header, seen)
        if found is None:
            return None
        keys, _count, eps = found
        seen.update(keys)
        out += eps
    return out


def _scan_directory(
    prefix: str, children: Iterable[str], group: str, header: str, seen: set[str]
) -> tuple[list[str], int, list[_EntryPointLike]] | None:
    # The distributions of one directory not in ``seen``: their names, how many of them
    # could depend on the listing's order (2 or more: it does), and the entry points of
    # ``group`` in listing order. None where importlib.metadata must answer.
    by_name: dict[str, list[str]] = {}
    for child in children:
        low = child.lower()
        if low.endswith((".dist-info", ".egg-info")):
            if not child.endswith((".dist-info", ".egg-info")) or not child.rpartition(".")[0]:
                return None  # importlib.metadata would read the name from the metadata
            stem = low.rpartition(".")[0].partition("-")[0]
            if "." in stem or "__" in stem:  # else lower-case, no "-": normalised already
                stem = _normalize(stem)
            by_name.setdefault(stem, []).append(child)
    keys: list[str] = []
    ordered = 0  # distributions whose order counts
    out: list[_EntryPointLike] = []
    for normalized, children_of_name in by_name.items():
        if len(children_of_name) > 1:
            ordered = 2
        for child in children_of_name:
            # The name a distribution is known by comes from its directory's own case.
            key = (
                normalized
                if child == child.lower()
                else _normalize(child.rpartition(".")[0].partition("-")[0])
            )
            if key in seen:
                continue
            if key in keys:
                ordered = 2
                continue
            keys.append(key)
            path = prefix + child
            text = _read(path + os.sep + "entry_points.txt")
            if not text:
                continue
            dist = _PathDist(path)
            lines = text.splitlines()
            if header not in text:
                # No entry point of ``group`` here, only lines to check: a line with
                # "=" and no "[" is neither a header nor a malformed entry.
                lines = [raw for raw in lines if "=" not in raw or "[" in raw]
            else:
                ordered += 1
            section: str | None = None
            for raw in lines:
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
    return keys, ordered, out


def _entry_points(group: str) -> list[_EntryPointLike]:
    # The entry points of ``group``, in importlib.metadata's order.
    #
    # A direct scan of the metadata directories (:func:`_scan_entry_points`) where it gives
    # the same answer; importlib.metadata itself (tens of milliseconds to import) otherwise.
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
# wrapper. Plain functions in a plain module are read here directly; anything else goes
# through accel._plugin_manager, which mirrors pluggy's lookup for every kind of object.
# tests/core/test_hook_dispatch.py checks both against pluggy.

_IMPLICIT_NAMES = ("self", "cls", "obj") if sys.implementation.name == "pypy" else ("self", "cls")
# A module attribute of one of these names may resolve to its type's attribute instead.
_MODULE_TYPE_ATTRS = frozenset(vars(_ModuleType)) | frozenset(vars(object))
# What pluggy's lookup can take for a hook: functions, static/class methods, bound methods.
_HOOK_KINDS = (_FunctionType, staticmethod, classmethod, type(_PathDist(".")._header))
_IMPL_ATTR = PROJECT + "_impl"
_SPEC_ATTR = PROJECT + "_spec"


def _marked(plugin: object, attrname: str) -> list[tuple[str, Any, dict[str, Any]]]:
    # ``(attribute, function, marker options)`` of each attribute of ``plugin`` marked
    # with ``attrname``, in ``dir()`` order: what pluggy's ``parse_hookimpl_opts`` finds.
    names: Mapping[str, object] | None = None
    if type(plugin) is _ModuleType:
        names = plugin.__dict__
        if "__dir__" in names:
            names = None
    if names is None:
        from ._plugin_manager import marked

        return marked(plugin, attrname)
    out: list[tuple[str, Any, dict[str, Any]]] = []
    for name, value in names.items():
        if type(value) is _FunctionType and name not in _MODULE_TYPE_ATTRS:
            opts = value.__dict__.get(attrname)
            if isinstance(opts, dict):
                out.append((name, value, opts))
        elif isinstance(value, _HOOK_KINDS):
            from ._plugin_manager import marked_attr

            found = marked_attr(plugin, name, attrname)
            if found is not None:
                out.append(found)
    out.sort(key=_first)
    return out


def _first(item: tuple[str, object, object]) -> str:
    return item[0]


def _varnames(func: object) -> tuple[tuple[str, ...], tuple[str, ...]]:
    # pluggy's ``varnames``: the positional parameters without and with defaults.
    #
    # A class stands for its ``__init__`` and a callable object for its ``__call__``; the
    # bound first parameter of a method is dropped, as is an unbound method's first
    # parameter named ``self`` or ``cls``. Keyword-only parameters are not included.
    if type(func) is not _FunctionType or "__wrapped__" in func.__dict__:
        from ._plugin_manager import varnames

        return varnames(func)
    code = func.__code__
    args: tuple[str, ...] = code.co_varnames[: code.co_argcount]
    kwargs: tuple[str, ...] = ()
    defaults = func.__defaults__
    if defaults:
        index = -len(defaults)
        args, kwargs = args[:index], args[index:]
    tail = func.__qualname__.rsplit("<locals>.", maxsplit=1)[-1]
    if args and "." in tail and args[0] in _IMPLICIT_NAMES:
        args = args[1:]
    return args, kwargs


class _Spec:
    # One hook specification of :mod:`accel.hookspecs` (pluggy's ``HookSpec``).

    __slots__ = ("allowed", "argnames", "kwargdefaults", "kwargnames", "name", "opts", "simple")

    def __init__(self, name: str, function: Any, opts: dict[str, Any]) -> None:
        self.name = name
        self.argnames, self.kwargnames = _varnames(function)
        self.allowed = frozenset(self.argnames + self.kwargnames)
        if type(function) is not _FunctionType or "__wrapped__" in function.__dict__:
            from ._plugin_manager import unwrap

            function = unwrap(function)
        defaults = function.__defaults__
        self.kwargdefaults = dict(zip(self.kwargnames, defaults or (), strict=False))
        self.opts = opts
        # Historic hooks and implementation warnings are pluggy's alone.
        self.simple = not (
            opts.get("historic") or opts.get("warn_on_impl") or opts.get("warn_on_impl_args")
        )


_specs: dict[str, _Spec] | None = None


def _hook_specs() -> dict[str, _Spec]:
    # The specifications ``PluginManager.add_hookspecs(accel.hookspecs)`` finds, in order.
    global _specs
    if _specs is None:
        _specs = {
            name: _Spec(name, getattr(hookspecs, name), opts)
            for name, _function, opts in _marked(hookspecs, _SPEC_ATTR)
        }
    return _specs


class _Impl:
    # One hook implementation (pluggy's ``HookImpl``).

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
    # ``(hook name, implementation)`` for each marked attribute, in ``dir()`` order.
    out: list[tuple[str, _Impl]] = []
    for attr_name, function, opts in _marked(plugin, _IMPL_ATTR):
        opts.setdefault("tryfirst", False)  # pluggy's normalize_hookimpl_opts
        opts.setdefault("trylast", False)
        opts.setdefault("wrapper", False)
        opts.setdefault("hookwrapper", False)
        opts.setdefault("optionalhook", False)
        opts.setdefault("specname", None)
        out.append((opts.get("specname") or attr_name, _Impl(plugin, plugin_name, function, opts)))
    return out


def _add_impl(impls: list[_Impl], impl: _Impl) -> None:
    # pluggy's ``HookCaller._add_hookimpl``: the list is called from its end.
    #
    # Plain implementations come before wrappers; within each, trylast ones first (the
    # latest registered first), then the others and the tryfirst ones in registration order.
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
    # Call one plain implementation with the arguments it declares, as ``_multicall``.
    args = [kwargs[name] for name in impl.argnames]
    if impl.kwargnames:
        extra = {name: kwargs[name] for name in impl.kwargnames if name in kwargs}
        if extra:
            return impl.function(*args, **extra)
    return impl.function(*args)


def _canonical_name(plugin: object) -> str:
    name: str | None = getattr(plugin, "__name__", None)
    return name or str(id(plugin))


def _split_env(value: str | None) -> frozenset[str] | None:
    if value is None:
        return None
    return frozenset(p.strip() for p in value.split(",") if p.strip())


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
        # Plugin name -> PluginRecord fields; failed entry points; entry point -> why skipped.
        self._records: dict[str, tuple[Any, ...]] = {}
        self._errors: list[PluginLoadError] = []
        self._skipped: dict[str, str] = {}
        self._accelerators: dict[str, AcceleratorInfo] | None = None
        # Every plugin's accelerators in call order, as last collected (None: collect again).
        self._found: dict[str, AcceleratorInfo] | None = {}
        self._found_from: list[_Impl] = []
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
            from ._plugin_manager import build

            self._pm = build(self)
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
            self._register_checked(plugin, pname, None, "code")
            return pname

    def unregister(self, name: str) -> None:
        """Remove a plugin registered under ``name``."""
        with self._lock:
            self._discover()
            self._unregister(name)
            self._records.pop(name, None)
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
        # pluggy's ``get_name``: the name ``plugin`` is registered under.
        for name, value in self._plugins.items():
            if plugin == value:
                return name
        return None

    def _hooks_of(self, plugin: object) -> list[str]:
        # The hooks ``plugin`` implements, in pluggy's ``get_hookcallers`` order.
        if self._name_of(plugin) is None:
            return []
        return [
            hook
            for hook, impls in self._impls.items()
            if any(impl.plugin is plugin for impl in impls)
        ]

    def _call_hook(self, name: str, kwargs: Mapping[str, object]) -> Any:
        # ``plugin_manager.hook.<name>(**kwargs)``: what pluggy returns or raises.
        #
        # Plain implementations are called here, in pluggy's order, each with the arguments
        # it declares; None results are dropped and ``firstresult`` stops at the first
        # other one. A hook with a wrapper, a specification only pluggy implements, or a call
        # pluggy would warn about or refuse goes to the pluggy plugin manager instead.
        from ._plugin_manager import call_hook

        return call_hook(self, name, kwargs)

    def _light(self, name: str, kwargs: Mapping[str, object]) -> bool:
        # Whether :meth:`_call_hook` may call ``name``'s implementations itself.
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
        from ._registry_extra import plugin_records

        return plugin_records(self._records)

    @property
    def load_errors(self) -> tuple[PluginLoadError, ...]:
        """Plugins that failed to import or register, with the reason for each."""
        self._discover()
        return tuple(self._errors)

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
        # The distribution's name and version are read when a listing or an error needs them.
        seen: dict[str, _Dist | None] = {}
        for ep in _entry_points(ENTRY_POINT_GROUP):
            if ep.name in deny:
                self._skipped[ep.name] = "is disabled by ACCEL_DISABLE_PLUGINS"
                continue
            if allow is not None and ep.name not in allow:
                self._skipped[ep.name] = "is not listed in ACCEL_PLUGINS"
                continue
            dist = ep.dist
            if ep.name in seen:
                from ._registry_extra import record_duplicate

                record_duplicate(self, ep.name, dist, seen[ep.name])
                continue
            seen[ep.name] = dist
            try:
                plugin = ep.load()
            except Exception as exc:  # any import failure is reported, not raised
                from ._registry_extra import record_error

                record_error(self, ep.name, dist, f"import of {ep.value!r} failed: {exc!r}")
                continue
            try:
                self._register_checked(plugin, ep.name, dist, "entry-point")
            except AccelError as exc:
                from ._registry_extra import record_error

                record_error(self, ep.name, dist, exc.message)

    def _register_checked(self, plugin: object, name: str, dist: _Dist | None, source: str) -> None:
        # ``dist``: the distribution of an entry point, None for a plugin from code.
        if self._plugins.get(name) is not None or any(
            plugin == value for value in self._plugins.values()
        ):
            from ._registry_extra import already_registered

            raise already_registered(name, dist)
        # pluggy ignores a None plugin
        pm_name = None if plugin is None else self._add_plugin(plugin, name, dist)
        try:
            hooks = self._check_hook_names(plugin, name, dist)
            # Provided accelerators must be well formed and unique.
            found = self._collect_accelerators(added=plugin)
        except AccelError:
            if pm_name is not None:
                self._unregister(pm_name)
            self._invalidate()
            raise
        self._records[name] = (name, dist, hooks, source, None)
        self._invalidate()
        self._found = found
        self._found_from = self._impls["accel_accelerators"].copy()

    def _add_plugin(self, plugin: object, name: str, dist: _Dist | None) -> str:
        # ``PluginManager.register(plugin, name)``: validate, then add. Returns its name.
        #
        # Implementations whose arguments are not in their hook's specification are refused
        # with pluggy's message. A plugin with a wrapper (whose rules pluggy alone checks),
        # or any plugin once the pluggy manager exists, is registered with pluggy itself.
        pm_name = name or _canonical_name(plugin)
        specs = _hook_specs()
        impls = _scan_plugin(plugin, pm_name)
        if self._pm is not None or any(
            impl.wrapper or impl.hookwrapper or (hook in specs and not specs[hook].simple)
            for hook, impl in impls
        ):
            from ._plugin_manager import register

            register(self, plugin, name, dist)
        else:
            for hook, impl in impls:
                spec = specs.get(hook)
                # (an unknown hook is refused by _check_hook_names)
                if spec is not None and not spec.allowed.issuperset(impl.argnames):
                    from ._registry_extra import not_in_spec

                    raise not_in_spec(pm_name, hook, impl, spec, name, dist)
        if self._pm is None:
            if self._history is None and any(impl.tryfirst and impl.trylast for _, impl in impls):
                self._history = [(True, *entry) for entry in self._plugins.items()]
            if self._history is not None:
                self._history.append((True, pm_name, plugin))
        self._plugins[pm_name] = plugin
        for hook, impl in impls:
            _add_impl(self._impls.setdefault(hook, []), impl)
        return pm_name

    def _check_hook_names(self, plugin: object, name: str, dist: _Dist | None) -> list[str]:
        # Unknown hook names (typos such as ``accel_accelerator``) are errors, and so are
        # names that look like hooks but are not marked (most often a forgotten decorator).
        # Returns the hooks ``plugin`` implements.
        implemented = self._hooks_of(plugin)
        specs = _hook_specs()
        for hook in implemented:
            if hook not in specs:
                from ._registry_extra import unknown_hook

                raise unknown_hook(hookspecs, hook, name, dist)
        attrs: Iterable[str]
        if type(plugin) is _ModuleType and "__dir__" not in plugin.__dict__:
            attrs = plugin.__dict__  # dir() of a module, unsorted
        else:
            attrs = dir(plugin)
        suspects = [a for a in attrs if a.startswith("accel_") and a not in implemented]
        if suspects:
            from ._registry_extra import check_unmarked

            check_unmarked(hookspecs, plugin, sorted(suspects), name, dist)
        return implemented

    def _invalidate(self) -> None:
        self._accelerators = None
        self._found = None
        self._device_types = None

    # ------------------------------------------------------------------ accelerators

    def _collect_accelerators(self, added: object = None) -> dict[str, AcceleratorInfo]:
        # Every plugin's accelerators in call order; refuses a wrong type or a name two
        # plugins provide. Just after ``added`` was registered at the end of the call order,
        # only its hook is called, on top of the accelerators last collected.
        impls = self._impls["accel_accelerators"].copy()
        found: dict[str, AcceleratorInfo] = {}
        before = self._found_from
        if (
            added is not None
            and self._found is not None
            and impls[: len(before)] == before
            and all(impl.plugin is added for impl in impls[len(before) :])
        ):
            found.update(self._found)
            impls = impls[len(before) :]
        for impl in impls:
            pname = self._name_of(impl.plugin) or "?"
            try:
                result: Any = impl.function()
            except Exception as exc:  # reported with the plugin name
                from ._registry_extra import hook_raised_on_check

                raise hook_raised_on_check("accel_accelerators", pname, exc) from exc
            infos: Iterable[object] = result or ()
            for info in infos:
                if not isinstance(info, AcceleratorInfo):
                    from ._registry_extra import wrong_type

                    raise wrong_type("accel_accelerators", "AcceleratorInfo", pname, info)
                if info.name in found:
                    from ._registry_extra import duplicate_accelerator

                    raise duplicate_accelerator(info.name, found[info.name].plugin, pname)
                found[info.name] = _with_plugin(info, pname)
        return found

    def accelerators(self) -> dict[str, AcceleratorInfo]:
        """Every registered accelerator by name, highest priority first."""
        with self._lock:
            self._discover()
            if self._accelerators is None:
                found = self._found
                if found is None:
                    found = self._found = self._collect_accelerators()
                    self._found_from = self._impls["accel_accelerators"].copy()
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
            from ._registry_extra import unknown_accelerator

            raise unknown_accelerator(name, list(accs), self._why_missing(name)) from None

    def _why_missing(self, name: str) -> str | None:
        # Why a plugin of the same name did not provide ``name``, when we know.
        for err in self._errors:
            if err.plugin == name:
                return f"plugin {name!r} failed to load: {err.error}"
        if name in self._skipped:
            return f"plugin {name!r} {self._skipped[name]}"
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
            acc, availability = self._try(accs[name])
            if acc is not None:
                if on_unusable is not None:
                    for skipped, reason in tried:
                        on_unusable(skipped, reason)
                return acc
            tried.append((name, availability.reason))
        raise NoAcceleratorError(tried)

    def probe_all(self) -> dict[str, Availability]:
        """Every accelerator's availability (each probed and closed again)."""
        from ._registry_extra import probe_all

        return probe_all(self)

    def _parse_spec(self, spec: str | Iterable[str] | None) -> list[str]:
        if spec is None:
            return list(self.accelerators())
        if isinstance(spec, str):
            names = [n.strip() for n in spec.replace(",", ":").split(":") if n.strip()]
            if not names:
                from ._registry_extra import empty_spec

                raise empty_spec(spec)
        else:
            names = list(spec)
        known = self.accelerators()
        for name in names:
            # Unknown names fail before anything is probed, unless they are one
            # alternative among several and not a typo of a registered name.
            if name not in known and (len(names) == 1 or did_you_mean(name, list(known))):
                self.info(name)
        return names

    def _try(self, info: AcceleratorInfo) -> tuple[Accelerator | None, Availability]:
        try:
            acc = info.factory()
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
                        from ._registry_extra import hook_raised_on_check

                        raise hook_raised_on_check("accel_device_types", pname, exc) from exc
                    for dtype in dtypes:
                        if not isinstance(dtype, DeviceType):
                            from ._registry_extra import wrong_type

                            raise wrong_type("accel_device_types", "DeviceType", pname, dtype)
                        if dtype.name in found:
                            from ._registry_extra import duplicate_device_type

                            raise duplicate_device_type(dtype.name, found[dtype.name].plugin, pname)
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
                from ._plugin_manager import call_wrapped

                results = call_wrapped(self, hook, kwargs, impls)
        except AccelError:
            raise
        except Exception as exc:
            from ._registry_extra import hook_raised

            raise hook_raised(self, hook, exc, impls) from exc
        out: list[ClockDeviceChoice] = []
        for pname, result in results:
            choices: Iterable[object] = result or ()  # type: ignore[assignment]
            for choice in choices:
                if not isinstance(choice, ClockDeviceChoice):
                    from ._registry_extra import wrong_type

                    raise wrong_type(hook, "ClockDeviceChoice", pname, choice)
                out.append(choice)
        return out


def _with_plugin(obj: Any, plugin: str) -> Any:
    cls = type(obj)
    if cls is AcceleratorInfo or cls is DeviceType:
        # ``replace(obj, plugin=plugin)``: its ``__post_init__`` gives back the values it
        # already checked and normalised, so they are copied as they are.
        new = object.__new__(cls)
        fields = new.__dict__
        fields.update(obj.__dict__)
        fields["plugin"] = plugin
        return new
    if hasattr(cls, "__record_fields__"):
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
