"""The plugin registry: one :class:`pluggy.PluginManager`, entry points, selection.

A :class:`Registry` holds one :class:`AccelPluginManager` (a :class:`pluggy.PluginManager`
for the ``accel`` project with the specifications of :mod:`accel.hookspecs`), available as
:attr:`Registry.plugin_manager`. Every hook is called through it
(``plugin_manager.hook.accel_accelerators()``), so pluggy's blocking, tracing, wrappers and
call order apply, and a plugin registered with ``plugin_manager.register(obj)`` is seen
like any other.

Entry points of the ``accel.plugins`` group are loaded once, lazily, on first use, through
``importlib.metadata`` and pluggy's ``load_setuptools_entrypoints`` (one entry point at a
time), so ``plugin_manager.list_plugin_distinfo()`` names each one's distribution. A
plugin whose import or validation fails is recorded in :attr:`Registry.load_errors`
(name, distribution, version, error) and the others still load. ``ACCEL_DISABLE_PLUGINS=a,b``
blocks those names (``plugin_manager.set_blocked``); ``ACCEL_PLUGINS=a,b`` blocks every
other entry point, and a name in it that no distribution provides is a load error.

Nothing here is global except the default registry, made on first use by
:func:`default_registry`; a program may make as many registries as it likes.

Example::

    reg = Registry()
    reg.register(my_plugin_module)        # from code, for tests and embedding
    acc = reg.open("kvm:tcg")             # first available, in order
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import pluggy

from . import hookspecs
from .accelerator import Accelerator, Availability
from .errors import (
    AccelError,
    DuplicateAcceleratorError,
    InvalidArgumentError,
    NoAcceleratorError,
    PluginError,
    PluginLoadError,
    PluginValidationError,
    UnknownAcceleratorError,
    did_you_mean,
)
from .plugin import AcceleratorInfo, ClockDeviceChoice, DeviceType, MachineView, PropertySpec

#: A checked accelerator property value.
PropValue = int | bool | str

#: QEMU -accel properties that accel has as machine properties instead.
_MACHINE_SIDE = frozenset({"kernel-irqchip"})


def _accel_property(info: AcceleratorInfo, spec: PropertySpec, text: str) -> PropValue:
    """``text`` as ``spec``'s type, within its range or choices, or InvalidArgumentError."""
    try:
        value, _note = spec.convert(text)
    except ValueError as exc:
        raise InvalidArgumentError(
            f"accelerator {info.name!r} property {spec.name!r} {exc}",
            hint=spec.doc or None,
            argument=spec.name,
            value=text,
            accelerator=info.name,
        ) from None
    return value


def _accel_properties(info: AcceleratorInfo, props: Mapping[str, str]) -> dict[str, PropValue]:
    """``props`` of a selection spec checked against what ``info`` declares."""
    specs = {p.name: p for p in info.properties}
    out: dict[str, PropValue] = {}
    for key, text in props.items():
        spec = specs.get(key)
        if spec is None:
            guess = did_you_mean(key, list(specs))
            raise InvalidArgumentError(
                f"accelerator {info.name!r} has no property {key!r}",
                hint=(f"did you mean {guess!r}? " if guess else "")
                + (
                    "properties: "
                    + ", ".join(
                        f"{p.name}={p.range_text() or p.type.__name__}" for p in info.properties
                    )
                    if specs
                    else "it takes no properties"
                )
                + (
                    f"; {key} is a machine property here: --machine TYPE,{key}=VALUE"
                    if key in _MACHINE_SIDE
                    else ""
                ),
                argument=key,
                value=text,
                accelerator=info.name,
            )
        out[key] = _accel_property(info, spec, text)
    return out


__all__ = [
    "ENTRY_POINT_GROUP",
    "PROJECT",
    "AccelPluginManager",
    "PluginRecord",
    "Registry",
    "default_registry",
]

#: The entry-point group plugins register in (``[project.entry-points."accel.plugins"]``).
ENTRY_POINT_GROUP = "accel.plugins"
#: pluggy's project name: markers set ``accel_impl`` / ``accel_spec``.
PROJECT = "accel"

_R = TypeVar("_R", AcceleratorInfo, DeviceType)
_T = TypeVar("_T")


@dataclass(frozen=True)
class PluginRecord:
    """One plugin as ``accel plugins`` shows it.

    ``source`` is ``"entry-point"`` or ``"code"``; ``error`` is set (and ``hooks`` empty)
    for an entry point that failed to load.
    """

    name: str
    distribution: str | None
    version: str | None
    hooks: tuple[str, ...]
    source: str
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


# --------------------------------------------------------------------------- the manager


class AccelPluginManager(pluggy.PluginManager):
    """pluggy's plugin manager for accel: :mod:`accel.hookspecs`, and a check per plugin.

    :meth:`register` is pluggy's, followed by accel's checks of the new plugin; a plugin
    that fails them is unregistered again and the error (an :mod:`accel.errors` class
    naming the plugin) raised:

    * pluggy's own validation (argument names, wrappers), re-raised as
      :class:`~accel.errors.PluginValidationError` from pluggy's error;
    * :meth:`check_pending`: a hook name no specification has (with a did-you-mean);
    * a callable ``accel_*`` attribute that is not marked with ``@accel.hookimpl``;
    * its ``accel_accelerators`` answer, asked of the plugin alone: a list of
      :class:`~accel.AcceleratorInfo` whose names no other registered plugin provides
      (:class:`~accel.errors.DuplicateAcceleratorError` names both plugins).

    ``changes`` counts registrations and removals (``set_blocked`` removes too), so the
    registry knows when what it collected from the hooks is out of date.
    """

    def __init__(self) -> None:
        super().__init__(PROJECT)
        self.add_hookspecs(hookspecs)
        self.changes = 0
        # Plugin name -> the accelerators it answered alone when it registered.
        self._provides: dict[str, tuple[AcceleratorInfo, ...]] = {}

    def register(self, plugin: object, name: str | None = None) -> str | None:
        """Register ``plugin`` (pluggy's rules), then check it; returns its name.

        Returns None, as pluggy does, for a None plugin or a blocked name.
        """
        pname = name or self.get_canonical_name(plugin)
        try:
            registered = super().register(plugin, name)
        except pluggy.PluginValidationError as exc:
            raise PluginValidationError(f"plugin {pname!r}: {exc}", plugin=pname) from exc
        except ValueError as exc:  # pluggy: the name or the object is registered already
            other = self.get_name(plugin)
            what = f"is already registered as {other!r}" if other and other != pname else ""
            raise PluginValidationError(
                f"plugin {pname!r} {what or 'is already registered'}",
                hint="register each plugin once, under a unique name",
                plugin=pname,
            ) from exc
        if registered is None:
            return None
        try:
            self._provides[registered] = self._check(plugin, registered)
        except BaseException:
            super().unregister(plugin=plugin, name=registered)
            raise
        self.changes += 1
        return registered

    def unregister(self, plugin: object | None = None, name: str | None = None) -> Any:
        """pluggy's ``unregister``; what the plugin provided is forgotten with it."""
        if name is None and plugin is not None:
            name = self.get_name(plugin)
        removed = super().unregister(plugin, name)
        if name is not None:
            self._provides.pop(name, None)
        self.changes += 1
        return removed

    def providers(self) -> dict[str, str]:
        """Accelerator name -> the first registered plugin whose own answer included it."""
        out: dict[str, str] = {}
        for pname, infos in self._provides.items():
            for info in infos:
                out.setdefault(info.name, pname)
        return out

    def ask_alone(self, plugin: object, name: str, hook: str, **kwargs: object) -> list[object]:
        """``hook``'s results from ``plugin`` alone (``hook(**kwargs)``), through pluggy.

        The plugin is registered in a manager of its own (pluggy's rules, its own
        wrappers); any exception its hook raises becomes a
        :class:`~accel.errors.PluginValidationError` naming it.
        """
        alone = pluggy.PluginManager(PROJECT)
        alone.add_hookspecs(hookspecs)
        alone.register(plugin, name)
        try:
            results: list[object] = getattr(alone.hook, hook)(**kwargs)
        except AccelError:
            raise
        except Exception as exc:  # reported with the plugin name
            raise PluginValidationError(
                f"plugin {name!r}: {hook}() raised {exc!r}", plugin=name
            ) from exc
        return results

    def _check(self, plugin: object, name: str) -> tuple[AcceleratorInfo, ...]:
        try:
            self.check_pending()
        except pluggy.PluginValidationError as exc:
            raise self._unknown_hook(plugin, name) from exc
        implemented = {caller.name for caller in self.get_hookcallers(plugin) or ()}
        suspects = sorted(a for a in dir(plugin) if a.startswith("accel_") and a not in implemented)
        _check_unmarked(plugin, suspects, name)
        if "accel_accelerators" not in implemented:
            return ()
        infos = tuple(
            _checked(
                self.ask_alone(plugin, name, "accel_accelerators"),
                "accel_accelerators",
                AcceleratorInfo,
                name,
            )
        )
        for info in infos:
            other = self.providers().get(info.name)
            if other is not None and other != name:
                raise _duplicate_accelerator(info.name, other, name, self)
        return infos

    def _unknown_hook(self, plugin: object, name: str) -> PluginValidationError:
        unknown = [
            caller.name
            for caller in self.get_hookcallers(plugin) or ()
            if not caller.has_spec()
            and any(
                not impl.optionalhook for impl in caller.get_hookimpls() if impl.plugin is plugin
            )
        ]
        hook = unknown[0] if unknown else "?"
        guess = did_you_mean(hook, _HOOKS)
        return PluginValidationError(
            f"plugin {name!r}: unknown hook {hook!r}"
            + (f" (did you mean {guess!r}?)" if guess else ""),
            hint="hooks are: " + ", ".join(_HOOKS),
            plugin=name,
            hook=hook,
        )

    def distribution_of(self, plugin: object) -> tuple[str | None, str | None]:
        """``(name, version)`` of the distribution an entry-point plugin came from."""
        for loaded, dist in self.list_plugin_distinfo():
            if loaded is plugin:
                return dist.project_name, dist.version
        return None, None


_HOOKS = sorted(n for n in dir(hookspecs) if n.startswith("accel_"))


def _check_unmarked(plugin: object, suspects: Iterable[str], name: str) -> None:
    # Refuse the first callable ``accel_*`` attribute that is not a marked implementation.
    for attr in suspects:
        if not callable(getattr(plugin, attr, None)):
            continue
        if attr in _HOOKS:
            raise PluginValidationError(
                f"plugin {name!r}: {attr!r} is not marked with @accel.hookimpl, "
                "so it would never be called",
                hint=f"decorate it: @accel.hookimpl def {attr}(...)",
                plugin=name,
                hook=attr,
            )
        guess = did_you_mean(attr, _HOOKS)
        raise PluginValidationError(
            f"plugin {name!r}: {attr!r} looks like a hook but is not one"
            + (f" (did you mean {guess!r}?)" if guess else ""),
            hint="hooks are: " + ", ".join(_HOOKS),
            plugin=name,
            hook=attr,
        )


def _checked(results: Iterable[object], hook: str, kind: type[_T], pname: str) -> list[_T]:
    # The records in ``hook``'s results (each a list, or None), checked; ``pname`` is the
    # plugin named when one is wrong.
    out: list[_T] = []
    for result in results:
        if result is None:
            continue
        if isinstance(result, (str, bytes, Mapping)) or not isinstance(result, Iterable):
            raise PluginValidationError(
                f"plugin {pname!r}: {hook}() must return a list of {kind.__name__} objects, "
                f"not {type(result).__name__}",
                plugin=pname,
                hook=hook,
            )
        for item in result:
            if not isinstance(item, kind):
                raise PluginValidationError(
                    f"plugin {pname!r}: {hook}() must return {kind.__name__} objects, "
                    f"not {type(item).__name__}",
                    plugin=pname,
                    hook=hook,
                )
            out.append(item)
    return out


def _where(name: str | None, pm: AccelPluginManager) -> str:
    # ``'name'`` or ``'name' (from dist)`` for messages.
    if name is None:
        return "?"
    plugin = pm.get_plugin(name)
    dist = pm.distribution_of(plugin)[0] if plugin is not None else None
    return f"{name!r}" + (f" (from {dist})" if dist else "")


def _duplicate_accelerator(
    accelerator: str, first: str | None, second: str, pm: AccelPluginManager
) -> DuplicateAcceleratorError:
    return DuplicateAcceleratorError(
        f"accelerator {accelerator!r} is provided by two plugins: "
        f"{_where(first, pm)} and {_where(second, pm)}",
        plugin=second,
        plugins=(first, second),
        accelerator=accelerator,
    )


def _raised_by(exc: BaseException, impls: Sequence[Any]) -> Any:
    # The implementation in whose code ``exc`` was raised (the innermost one), or None.
    def code(function: object) -> object:
        return getattr(getattr(function, "__func__", function), "__code__", None)

    by_code = {code(impl.function): impl for impl in impls}
    found = None
    tb = exc.__traceback__
    while tb is not None:
        found = by_code.get(tb.tb_frame.f_code, found)
        tb = tb.tb_next
    return found


def _split_env(value: str | None) -> frozenset[str] | None:
    if value is None:
        return None
    return frozenset(p.strip() for p in value.split(",") if p.strip())


def _plugin_name(plugin: object) -> str:
    name = getattr(plugin, "__name__", None)
    return str(name) if name else f"{type(plugin).__name__}-{id(plugin):x}"


def _normalized(name: str | None) -> str:
    return (name or "").lower().replace("-", "_").replace(".", "_")


# --------------------------------------------------------------------------- the registry


class Registry:
    """Plugins, accelerators and device types known to one program.

    ``entry_points`` False skips discovery (only :meth:`register` adds plugins); ``env``
    replaces ``os.environ`` for ``ACCEL_PLUGINS`` and ``ACCEL_DISABLE_PLUGINS``.
    """

    def __init__(self, *, entry_points: bool = True, env: Mapping[str, str] | None = None) -> None:
        self._use_entry_points = entry_points
        self._env = env
        self._pm = AccelPluginManager()
        self._lock = threading.RLock()
        self._discovered = False
        self._loading = False
        self._errors: list[PluginLoadError] = []
        self._failed: dict[str, PluginRecord] = {}  # entry points that did not load
        self._skipped: dict[str, str] = {}  # entry point -> why it was blocked
        # hook -> (manager changes when collected, what was collected)
        self._collected: dict[str, tuple[int, Any]] = {}

    # ------------------------------------------------------------------ plugins

    @property
    def plugin_manager(self) -> AccelPluginManager:
        """The :class:`pluggy.PluginManager` every hook of this registry goes through.

        Entry points are loaded before it is returned, so ``set_blocked(name)`` on it
        unregisters a loaded plugin (its accelerators and devices disappear) and keeps the
        name from registering again; ``register(obj)`` adds a plugin, checked as
        :meth:`register` checks it.
        """
        self._discover()
        return self._pm

    def register(self, plugin: object, name: str | None = None) -> str:
        """Register ``plugin`` (a module or object with ``@hookimpl`` functions) from code.

        Raises :class:`PluginValidationError` naming the plugin when pluggy refuses it,
        when a hook implementation is unknown or has wrong argument names, or when the
        name is blocked; :class:`DuplicateAcceleratorError` when it provides an
        accelerator name another plugin already provides. In each case nothing is
        registered.
        """
        with self._lock:
            self._discover()
            pname = name or _plugin_name(plugin)
            if self._pm.is_blocked(pname):
                raise PluginValidationError(
                    f"plugin {pname!r} is blocked",
                    hint="register it under another name, or unblock it with "
                    "registry.plugin_manager.unblock(name)",
                    plugin=pname,
                )
            self._pm.register(plugin, pname)
            return pname

    def unregister(self, name: str) -> None:
        """Remove the plugin registered under ``name``."""
        with self._lock:
            self._discover()
            self._pm.unregister(name=name)
            self._failed.pop(name, None)

    def plugins(self) -> list[PluginRecord]:
        """Every plugin by name: those registered and the entry points that failed to load."""
        self._discover()
        out: dict[str, PluginRecord] = {}
        for name, plugin in self._pm.list_name_plugin():
            if plugin is None:  # blocked
                continue
            dist, version = self._pm.distribution_of(plugin)
            hooks = tuple(sorted(caller.name for caller in self._pm.get_hookcallers(plugin) or ()))
            source = "entry-point" if dist is not None else "code"
            out[name] = PluginRecord(name, dist, version, hooks, source)
        for name, record in self._failed.items():
            out.setdefault(name, record)
        return [out[name] for name in sorted(out)]

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
        # importlib.metadata's order (the first distribution of an entry-point name is the
        # one pluggy loads); accel's own distribution's plugins then register first, so a
        # third-party accelerator of the same name as a built-in one is the one refused.
        eps = list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))
        for name in sorted(deny):
            self._pm.set_blocked(name)
            self._skipped[name] = "is disabled by ACCEL_DISABLE_PLUGINS"
        if allow is not None:
            for name in sorted({ep.name for ep in eps} - allow - deny):
                self._pm.set_blocked(name)
                self._skipped[name] = "is not listed in ACCEL_PLUGINS"
            for name in sorted(allow - {ep.name for ep in eps}):
                self._record_missing(name, sorted({ep.name for ep in eps}))
        first: dict[str, importlib.metadata.EntryPoint] = {}
        for ep in eps:
            if ep.name in first:
                self._record_duplicate(ep, first[ep.name])
            else:
                first[ep.name] = ep
        own = sorted(first.values(), key=lambda ep: _normalized(_dist_name(ep)) != PROJECT)
        for ep in own:
            if self._pm.is_blocked(ep.name):
                continue
            try:
                self._pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP, name=ep.name)
            except KeyboardInterrupt:
                raise
            except AccelError as exc:
                self._record_error(ep.name, _dist_name(ep), _dist_version(ep), exc.message)
            except BaseException as exc:  # SystemExit at import is a broken plugin too
                error = f"import of {ep.value!r} failed: {exc!r}"
                self._record_error(ep.name, _dist_name(ep), _dist_version(ep), error)

    def _record_error(self, name: str, dist: str | None, version: str | None, error: str) -> None:
        # Entry point ``name`` could not be used: a load error, and a record for listings.
        self._errors.append(
            PluginLoadError(
                f"plugin {name!r} (from {dist or 'unknown distribution'}) "
                f"could not be loaded: {error}",
                plugin=name,
                distribution=dist,
                version=version,
                error=error,
            )
        )
        self._failed.setdefault(name, PluginRecord(name, dist, version, (), "entry-point", error))

    def _record_duplicate(
        self, ep: importlib.metadata.EntryPoint, first: importlib.metadata.EntryPoint
    ) -> None:
        taken = _dist_name(first) or "unknown distribution"
        error = (
            f"plugin name {ep.name!r} is also registered by {taken}; "
            f"only the one from {taken} is loaded"
        )
        dist = _dist_name(ep)
        self._errors.append(
            PluginLoadError(
                f"plugin {ep.name!r} (from {dist or 'unknown distribution'}) "
                f"could not be loaded: {error}",
                plugin=ep.name,
                distribution=dist,
                version=_dist_version(ep),
                error=error,
            )
        )

    def _record_missing(self, name: str, installed: list[str]) -> None:
        error = f"no installed distribution has an {ENTRY_POINT_GROUP!r} entry point {name!r}"
        guess = did_you_mean(name, installed)
        self._errors.append(
            PluginLoadError(
                f"plugin {name!r} is named in ACCEL_PLUGINS but {error}"
                + (f" (did you mean {guess!r}?)" if guess else ""),
                hint="installed plugins: " + (", ".join(installed) if installed else "none"),
                plugin=name,
                distribution=None,
                version=None,
                error=error,
            )
        )

    # ------------------------------------------------------------------ collection

    def _collect(self, hook: str, make: Callable[[], Any]) -> Any:
        # What ``make`` collected from ``hook``, again only once the plugins changed.
        with self._lock:
            self._discover()
            cached = self._collected.get(hook)
            if cached is None or cached[0] != self._pm.changes:
                value = make()  # may unregister a broken plugin: count changes after it
                cached = self._collected[hook] = (self._pm.changes, value)
            return cached[1]

    def _attributed(
        self, hook: str, kind: type[_R], results: Iterable[object], providers: Mapping[str, str]
    ) -> dict[str, _R]:
        # The records of a hook's results by name, each with the plugin that provides it.
        found: dict[str, _R] = {}
        pm = self._pm
        for item in _checked(results, hook, kind, "?"):
            pname = providers.get(item.name)
            if item.name in found:
                first = found[item.name].plugin
                if kind is AcceleratorInfo:
                    raise _duplicate_accelerator(item.name, first, pname or "?", pm)
                raise PluginValidationError(
                    f"device type {item.name!r} is provided by two plugins: "
                    f"{_where(first, pm)} and {_where(pname, pm)}",
                    plugin=pname,
                )
            found[item.name] = dataclasses.replace(item, plugin=pname)
        return found

    def _call(self, hook: str, **kwargs: object) -> list[object]:
        # ``plugin_manager.hook.<hook>(**kwargs)``; an exception other than an AccelError
        # is reported as a PluginError naming the plugin whose code raised it.
        caller = getattr(self._pm.hook, hook)
        try:
            results: list[object] = caller(**kwargs)
        except AccelError:
            raise
        except Exception as exc:
            raiser = _raised_by(exc, caller.get_hookimpls())
            pname = raiser.plugin_name if raiser is not None else "?"
            raise PluginError(
                f"plugin {pname!r}: {hook}() raised {exc!r}",
                hint="this is a bug in the plugin: report it, or skip the plugin with "
                "ACCEL_DISABLE_PLUGINS=<name>",
                plugin=pname,
            ) from exc
        return results

    def _each_plugin(self, hook: str) -> Iterable[tuple[str, object]]:
        # ``(name, plugin)`` of each registered plugin implementing ``hook``, in order.
        for name, plugin in self._pm.list_name_plugin():
            if plugin is not None and any(
                caller.name == hook for caller in self._pm.get_hookcallers(plugin) or ()
            ):
                yield name, plugin

    # ------------------------------------------------------------------ accelerators

    def accelerators(self) -> dict[str, AcceleratorInfo]:
        """Every registered accelerator by name, highest priority first.

        One call of ``plugin_manager.hook.accel_accelerators()``; each accelerator's
        ``plugin`` is the plugin whose own answer (checked when it registered) named it.
        """
        found: dict[str, AcceleratorInfo] = self._collect("accel_accelerators", self._accelerators)
        return dict(found)

    def _accelerators(self) -> dict[str, AcceleratorInfo]:
        found = self._attributed(
            "accel_accelerators",
            AcceleratorInfo,
            self._call("accel_accelerators"),
            self._pm.providers(),
        )
        return dict(sorted(found.items(), key=lambda kv: (-kv[1].priority, kv[0])))

    def info(self, name: str) -> AcceleratorInfo:
        """The registered accelerator ``name``; unknown names get a did-you-mean."""
        accs = self.accelerators()
        try:
            return accs[name]
        except KeyError:
            known = list(accs)
            why = self._why_missing(name)
            guess = did_you_mean(name, known)
            raise UnknownAcceleratorError(
                f"unknown accelerator {name!r}" + (f" ({why})" if why else ""),
                hint=f"did you mean {guess!r}?"
                if guess
                else "registered: " + (", ".join(known) if known else "none"),
                accelerator=name,
                known=tuple(known),
                suggestion=guess,
            ) from None

    def _why_missing(self, name: str) -> str | None:
        # Why a plugin of the same name did not provide ``name``, when we know.
        for err in self._errors:
            if err.plugin == name:
                return f"plugin {name!r} failed to load: {err.error}"
        if name in self._skipped:
            return f"plugin {name!r} {self._skipped[name]}"
        if self._pm.is_blocked(name):
            return f"plugin {name!r} is blocked"
        return None

    def create(self, name: str) -> Accelerator:
        """A new, unprobed :class:`Accelerator` of the named type.

        A factory that fails with something other than an :class:`AccelError`, or makes
        something without ``probe()``, raises :class:`PluginError` naming the plugin.
        """
        return self._make(self.info(name))

    def open(
        self,
        spec: str | Iterable[str] | None = None,
        *,
        on_unusable: Callable[[str, str], None] | None = None,
    ) -> Accelerator:
        """The first usable accelerator of ``spec``.

        ``spec`` is ``"kvm:tcg"`` (or a list of names) tried in order like QEMU's
        ``-accel kvm -accel tcg``; None tries every registered accelerator by priority.
        A name may carry properties as QEMU's ``-accel NAME,PROP=VALUE``
        (``"tcg,thread=multi,tb-size=64"``): each must be one the accelerator declares
        (:attr:`AcceleratorInfo.properties`), typed and in range, or
        :class:`InvalidArgumentError` names it (with the declared ones) before anything
        is probed; they reach the accelerator's factory as keyword arguments.
        A name nobody registered raises :class:`UnknownAcceleratorError` with a
        did-you-mean before anything is probed when it is the only name or looks like a
        typo of a registered one; in a longer list it is otherwise a candidate that is
        not usable (as QEMU skips an accelerator it was built without), so
        ``"kvm:tcg"`` still falls back when the first plugin is disabled or failed to
        load. :class:`NoAcceleratorError` lists every candidate's reason when none is
        usable. ``on_unusable(name, reason)`` is called for each candidate passed over
        before the one returned (``accel run`` prints QEMU's "falling back" lines from it).

        An accelerator whose probe says it is present but cannot create VMs
        (``Availability.creates_vms`` False, e.g. a stub on a host it recognises) is
        passed over by default selection and in a list of several names, with the
        reason ``"present but cannot create VMs: <probe's reason>"``. Named alone
        (``open("xen")``) it is returned, as QEMU's ``-accel`` opens exactly the
        accelerator asked for: its capabilities can be read, and its ``create_vm()``
        raises :class:`~accel.errors.UnsupportedError`.
        """
        entries = self._parse_entries(spec)
        need_vms = spec is None or len(entries) > 1
        accs = self.accelerators()
        tried: list[tuple[str, str]] = []
        for name, props in entries:
            if name not in accs:
                why = self._why_missing(name)
                tried.append((name, "not registered" + (f": {why}" if why else "")))
                continue
            acc, reason = self._try(accs[name], need_vms, props)
            if acc is not None:
                if on_unusable is not None:
                    for skipped, why in tried:
                        on_unusable(skipped, why)
                return acc
            tried.append((name, reason))
        raise NoAcceleratorError(tried)

    def probe_all(self) -> dict[str, Availability]:
        """Every accelerator's availability (each made, probed and closed again)."""
        out: dict[str, Availability] = {}
        for name, info in self.accelerators().items():
            try:
                acc = self._make(info)
            except AccelError as exc:
                out[name] = Availability.unavailable(str(exc))
                continue
            try:
                out[name] = acc.probe()
            except AccelError as exc:  # probe() should not raise; report it as the reason
                out[name] = Availability.unavailable(str(exc))
            finally:
                acc.close()
        return out

    def _parse_spec(self, spec: str | Iterable[str] | None) -> list[str]:
        return [name for name, _props in self._parse_entries(spec)]

    def _parse_entries(
        self, spec: str | Iterable[str] | None
    ) -> list[tuple[str, dict[str, PropValue]]]:
        # ``"kvm:tcg,thread=multi"`` -> [("kvm", {}), ("tcg", {"thread": "multi"})]: ":"
        # separates alternatives, "," a name's PROP=VALUE properties (QEMU's -accel). A
        # bare word after a "," is another alternative ("kvm,tcg", as before).
        if spec is None:
            return [(name, {}) for name in self.accelerators()]
        texts = [spec] if isinstance(spec, str) else [str(s) for s in spec]
        raw: list[tuple[str, dict[str, str]]] = []
        for text in texts:
            for alternative in text.split(":"):
                for part in (p.strip() for p in alternative.split(",")):
                    if not part:
                        continue
                    key, eq, value = part.partition("=")
                    if not eq:
                        raw.append((part, {}))
                    elif not raw or not key.strip():
                        raise InvalidArgumentError(
                            f"accelerator spec {text!r}: {part!r} needs an accelerator name "
                            "before it",
                            hint="for example 'tcg,thread=multi' or 'kvm:tcg'",
                            argument="accel",
                            value=text,
                        )
                    else:
                        raw[-1][1][key.strip()] = value.strip()
        if not raw:
            raise InvalidArgumentError(
                f"empty accelerator list {spec!r}",
                hint="name one or more accelerators, e.g. 'kvm:tcg'",
                argument="accel",
                value=spec,
            )
        known = self.accelerators()
        out: list[tuple[str, dict[str, PropValue]]] = []
        for name, props in raw:
            # Unknown names fail before anything is probed, unless they are one
            # alternative among several and not a typo of a registered name.
            if name not in known and (len(raw) == 1 or did_you_mean(name, list(known))):
                self.info(name)
            info = known.get(name)
            out.append((name, _accel_properties(info, props) if info else dict(props)))
        return out

    def _make(
        self, info: AcceleratorInfo, props: Mapping[str, PropValue] | None = None
    ) -> Accelerator:
        # ``info.factory()``; a factory that raises something other than an AccelError, or
        # makes something that is not an accelerator, is a PluginError naming the plugin.
        where = _where(info.plugin, self._pm)
        kwargs = {k.replace("-", "_"): v for k, v in (props or {}).items()}
        try:
            acc = info.factory(**kwargs)
        except AccelError:
            raise
        except Exception as exc:
            raise PluginError(
                f"plugin {where}: the factory of accelerator {info.name!r} raised {exc!r}",
                hint="this is a bug in the plugin: report it, or skip the plugin with "
                "ACCEL_DISABLE_PLUGINS=<name>",
                plugin=info.plugin,
            ) from exc
        if not callable(getattr(acc, "probe", None)):
            raise PluginError(
                f"plugin {where}: the factory of accelerator {info.name!r} made a "
                f"{type(acc).__name__}, which has no probe()",
                hint="the factory must return an accel.Accelerator; report this to the "
                "plugin's authors, or skip it with ACCEL_DISABLE_PLUGINS=<name>",
                plugin=info.plugin,
            )
        return acc

    def _try(
        self, info: AcceleratorInfo, need_vms: bool, props: Mapping[str, PropValue] | None = None
    ) -> tuple[Accelerator | None, str]:
        # The accelerator if usable, else None and why not.
        try:
            acc = self._make(info, props)
        except AccelError as exc:  # e.g. a backend library that cannot be loaded
            return None, str(exc)
        try:
            availability = acc.probe()
        except AccelError as exc:
            acc.close()
            return None, str(exc)
        reason = availability.reason
        if availability.hint:
            reason = f"{reason} (hint: {availability.hint})"
        if availability.available and (availability.creates_vms or not need_vms):
            return acc, reason
        acc.close()
        if availability.available:
            return None, f"present but cannot create VMs: {reason}"
        return None, reason

    # ------------------------------------------------------------------ devices

    def device_types(self) -> dict[str, DeviceType]:
        """Every device type plugins contribute, by name (duplicates are an error).

        One call of ``plugin_manager.hook.accel_device_types()``; each type's ``plugin``
        is the plugin whose own answer (asked of it alone) includes it. A wrong answer
        (not a list of :class:`DeviceType`, an exception, a name another plugin gives)
        from an entry-point plugin unregisters that plugin and is reported in
        :attr:`load_errors`, so the others' devices still work; from a plugin registered
        from code it raises :class:`PluginValidationError` naming the plugin.
        """
        found: dict[str, DeviceType] = self._collect("accel_device_types", self._device_types)
        return dict(found)

    def _device_types(self) -> dict[str, DeviceType]:
        # Each plugin asked alone first: that names the plugin of each type, and finds the
        # plugin whose answer is wrong. An entry-point plugin's wrong answer (or a type name
        # another plugin gives) is a load error and the plugin is unregistered, so the
        # other plugins' devices still work; a plugin registered from code raises.
        hook = "accel_device_types"
        providers: dict[str, str] = {}
        for pname, plugin in list(self._each_plugin(hook)):
            try:
                dtypes = _checked(self._pm.ask_alone(plugin, pname, hook), hook, DeviceType, pname)
                for dtype in dtypes:
                    other = providers.get(dtype.name)
                    if other is not None:
                        raise PluginValidationError(
                            f"device type {dtype.name!r} is provided by two plugins: "
                            f"{_where(other, self._pm)} and {_where(pname, self._pm)}",
                            plugin=pname,
                        )
            except PluginValidationError as exc:
                dist, version = self._pm.distribution_of(plugin)
                if dist is None:
                    raise
                self._pm.unregister(name=pname)
                self._record_error(pname, dist, version, exc.message)
                continue
            for dtype in dtypes:
                providers[dtype.name] = pname
        return self._attributed(hook, DeviceType, self._call(hook), providers)

    def clock_devices(
        self, accelerator: Accelerator, machine: MachineView
    ) -> list[ClockDeviceChoice]:
        """Every plugin's clock-device decisions for ``accelerator`` on ``machine``.

        ``plugin_manager.hook.accel_clock_devices(accelerator=..., machine=...)``: plugins
        are asked in pluggy's call order (the last registered first) and wrappers apply.
        A hook that raises something other than an :class:`AccelError` raises
        :class:`PluginError` naming the plugin; an answer that is not a list of
        :class:`ClockDeviceChoice` objects raises :class:`PluginValidationError` naming
        the plugin that gave it.
        """
        self._discover()
        hook = "accel_clock_devices"
        kwargs = {"accelerator": accelerator, "machine": machine}
        results = self._call(hook, **kwargs)
        try:
            return _checked(results, hook, ClockDeviceChoice, "?")
        except PluginValidationError:
            # Name the plugin that answered wrongly: each asked alone, in call order.
            for pname, plugin in reversed(list(self._each_plugin(hook))):
                _checked(
                    self._pm.ask_alone(plugin, pname, hook, **kwargs),
                    hook,
                    ClockDeviceChoice,
                    pname,
                )
            raise


def _dist_name(ep: importlib.metadata.EntryPoint) -> str | None:
    return ep.dist.name if ep.dist is not None else None


def _dist_version(ep: importlib.metadata.EntryPoint) -> str | None:
    return ep.dist.version if ep.dist is not None else None


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
