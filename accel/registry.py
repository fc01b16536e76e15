"""The plugin registry: pluggy, entry points, allow/deny lists, accelerator selection.

A :class:`Registry` owns one pluggy plugin manager. Entry points in the
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

import os
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Protocol, cast

import pluggy

from . import hookspecs
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

__all__ = ["ENTRY_POINT_GROUP", "PluginRecord", "Registry", "default_registry"]

ENTRY_POINT_GROUP = "accel.plugins"
PROJECT = "accel"


@dataclass(frozen=True)
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
        import importlib
        import re

        match = re.match(r"([\w.]+)\s*(:\s*([\w.]+)\s*)?((\[.*\])\s*)?$", self.value)
        if match is None:
            raise ValueError(f"malformed entry point value {self.value!r}")
        obj: Any = importlib.import_module(match.group(1))
        for attr in filter(None, (match.group(3) or "").split(".")):
            obj = getattr(obj, attr)
        return obj


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
    import importlib.machinery

    finders = [f for f in sys.meta_path if getattr(f, "find_distributions", None) is not None]
    if finders != [importlib.machinery.PathFinder]:
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


def _split_env(value: str | None) -> frozenset[str] | None:
    if value is None:
        return None
    return frozenset(p.strip() for p in value.split(",") if p.strip())


@dataclass
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
        self._pm = pluggy.PluginManager(PROJECT)
        self._pm.add_hookspecs(hookspecs)
        self._use_entry_points = entry_points
        self._env = env
        self._discovered = False
        self._loading = False
        self._lock = threading.RLock()
        self._state = _State()
        self._accelerators: dict[str, AcceleratorInfo] | None = None
        self._device_types: dict[str, DeviceType] | None = None

    # ------------------------------------------------------------------ plugins

    @property
    def plugin_manager(self) -> pluggy.PluginManager:
        self._discover()
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
            self._pm.unregister(name=name)
            self._state.records.pop(name, None)
            self._invalidate()

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
        if self._pm.get_plugin(name) is not None or self._pm.is_registered(plugin):
            raise PluginValidationError(
                f"{where} is already registered",
                hint="register each plugin once, under a unique name",
                plugin=name,
                distribution=distribution,
            )
        try:
            self._pm.register(plugin, name=name)
        except pluggy.PluginValidationError as exc:
            raise PluginValidationError(
                f"{where}: {exc}", plugin=name, distribution=distribution
            ) from exc
        try:
            self._check_hook_names(plugin, name, where, distribution)
            # Provided accelerators must be well formed and unique.
            self._collect_accelerators(extra_check=name)
        except AccelError:
            self._pm.unregister(name=name)
            self._invalidate()
            raise
        hooks = tuple(sorted(h.name for h in self._pm.get_hookcallers(plugin) or ()))
        self._state.records[name] = PluginRecord(name, distribution, version, hooks, source)
        self._invalidate()

    def _check_hook_names(
        self, plugin: object, name: str, where: str, distribution: str | None
    ) -> None:
        """Unknown hook names (typos such as ``accel_accelerator``) are errors."""
        for caller in self._pm.get_hookcallers(plugin) or ():
            if caller.spec is None:
                known = sorted(n for n in dir(hookspecs) if n.startswith("accel_"))
                guess = did_you_mean(caller.name, known)
                raise PluginValidationError(
                    f"{where}: unknown hook {caller.name!r}"
                    + (f" (did you mean {guess!r}?)" if guess else ""),
                    hint="hooks are: " + ", ".join(known),
                    plugin=name,
                    distribution=distribution,
                    hook=caller.name,
                )
        # Names that look like hooks but are not marked: most often a forgotten decorator.
        marked = {caller.name for caller in self._pm.get_hookcallers(plugin) or ()}
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
        for impl in self._pm.hook.accel_accelerators.get_hookimpls():
            pname = self._pm.get_name(impl.plugin) or "?"
            try:
                result = impl.function()
            except Exception as exc:  # reported with the plugin name
                raise PluginValidationError(
                    f"plugin {pname!r}: accel_accelerators() raised {exc!r}", plugin=pname
                ) from exc
            infos = cast(Iterable[object], result or ())
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
                for impl in self._pm.hook.accel_device_types.get_hookimpls():
                    pname = self._pm.get_name(impl.plugin) or "?"
                    try:
                        dtypes = cast(Iterable[object], impl.function() or ())
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
        plugin.
        """
        self._discover()
        kwargs = {"accelerator": accelerator, "machine": machine}
        out: list[ClockDeviceChoice] = []
        for impl in reversed(self._pm.hook.accel_clock_devices.get_hookimpls()):
            pname = self._pm.get_name(impl.plugin) or "?"
            try:
                result = impl.function(*(kwargs[arg] for arg in impl.argnames))
            except AccelError:
                raise
            except Exception as exc:
                raise PluginError(
                    f"plugin {pname!r}: accel_clock_devices() raised {exc!r}",
                    hint="this is a bug in the plugin: report it, or skip the plugin with "
                    "ACCEL_DISABLE_PLUGINS=<name>",
                    plugin=pname,
                ) from exc
            for choice in cast(Iterable[object], result or ()):
                if not isinstance(choice, ClockDeviceChoice):
                    raise PluginValidationError(
                        f"plugin {pname!r}: accel_clock_devices() must return "
                        f"ClockDeviceChoice objects, not {type(choice).__name__}",
                        plugin=pname,
                    )
                out.append(choice)
        return out


def _with_plugin(obj: Any, plugin: str) -> Any:
    import dataclasses

    return dataclasses.replace(obj, plugin=plugin)


def _plugin_name(plugin: object) -> str:
    if isinstance(plugin, ModuleType):
        return plugin.__name__
    name = getattr(plugin, "__name__", None)
    return str(name) if name else f"{type(plugin).__name__}-{id(plugin):x}"


_default: Registry | None = None
_default_lock = threading.Lock()


def default_registry() -> Registry:
    """The registry the module-level functions of :mod:`accel` use (made on first use)."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = Registry()
    return _default
