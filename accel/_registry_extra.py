"""Registry code off the common path: plugin records for listings, load errors, the errors
for refused plugins and unknown names, and the full grammar of entry point values."""

from __future__ import annotations

import os

from ._records import record
from .accelerator import Availability
from .errors import (
    AccelError,
    DuplicateAcceleratorError,
    InvalidArgumentError,
    PluginError,
    PluginLoadError,
    PluginValidationError,
    UnknownAcceleratorError,
    did_you_mean,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from types import ModuleType, TracebackType
    from typing import Any, Protocol

    from .registry import Registry, _Impl, _Spec

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


PluginRecord.__module__ = "accel.registry"


def plugin_records(records: Mapping[str, tuple[Any, ...]]) -> list[PluginRecord]:
    """The records of ``Registry.plugins()``, by name, from the registry's
    ``(name, distribution or None, hooks, source, error)`` tuples."""
    out = []
    for name, dist, hooks, source, error in records.values():
        distribution = dist.name if dist is not None else None
        version = dist.version if dist is not None else None
        out.append(PluginRecord(name, distribution, version, tuple(sorted(hooks)), source, error))
    return sorted(out, key=lambda r: r.name)


def where(name: str, dist: _Dist | None) -> tuple[str, str | None]:
    """``"plugin 'name' (from distribution)"`` for messages, and the distribution's name."""
    distribution = dist.name if dist is not None else None
    return f"plugin {name!r}" + (f" (from {distribution})" if distribution else ""), distribution


def record_error(
    registry: Registry, name: str, dist: _Dist | None, error: str, *, keep_record: bool = False
) -> None:
    """Record that entry point ``name`` (of distribution ``dist``) could not be loaded."""
    distribution = dist.name if dist is not None else None
    err = PluginLoadError(
        f"plugin {name!r} (from {distribution or 'unknown distribution'}) "
        f"could not be loaded: {error}",
        plugin=name,
        distribution=distribution,
        error=error,
    )
    registry._errors.append(err)
    if not keep_record:  # keep the record of a plugin of that name that did load
        registry._records[name] = (name, dist, (), "entry-point", error)


def record_duplicate(
    registry: Registry, name: str, dist: _Dist | None, first: _Dist | None
) -> None:
    """Entry point ``name`` again, after the one of distribution ``first``."""
    # importlib.metadata already drops a distribution found twice on sys.path, so another
    # name is a second distribution claiming the same plugin name.
    taken = first.name if first is not None else None
    if taken != (dist.name if dist is not None else None):
        record_error(
            registry,
            name,
            dist,
            f"plugin name {name!r} is also registered by "
            f"{taken or 'unknown distribution'}; "
            f"only the one from {taken or 'unknown distribution'} is loaded",
            keep_record=True,
        )


def probe_all(registry: Registry) -> dict[str, Availability]:
    """``Registry.probe_all()``."""
    out: dict[str, Availability] = {}
    for name, info in registry.accelerators().items():
        acc = info.factory()
        try:
            out[name] = acc.probe()
        except AccelError as exc:  # probe() should not raise; report it as the reason
            out[name] = Availability.unavailable(str(exc))
        finally:
            acc.close()
    return out


def metadata_headers(path: str) -> dict[str, str]:
    """The header fields (lower-case names) of metadata directory ``path``'s ``METADATA``
    (or ``PKG-INFO``, or ``path`` itself as a file), the first of each name."""
    from .registry import _read

    text = (
        _read(os.path.join(path, "METADATA"))
        or _read(os.path.join(path, "PKG-INFO"))
        or _read(path)
        or ""
    )
    end = text.find("\n\n")
    if end >= 0:  # the headers end at or before the first empty line
        text = text[: end + 1]
    headers: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            break  # the end of the header block
        name, sep, value = line.partition(":")
        if sep and line[0] not in " \t":
            headers.setdefault(name.strip().lower(), value.lstrip(" \t"))
    return headers


def _word_or_dot(ch: str) -> bool:
    # ``[\w.]`` of a str pattern: \w is str.isalnum() or the underscore.
    return ch.isalnum() or ch == "_" or ch == "."


def parse_entry_point_value(value: str) -> tuple[str, str]:
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


def _known_hooks(hookspecs: ModuleType) -> list[str]:
    return sorted(n for n in dir(hookspecs) if n.startswith("accel_"))


def already_registered(name: str, dist: _Dist | None) -> PluginValidationError:
    where_, distribution = where(name, dist)
    return PluginValidationError(
        f"{where_} is already registered",
        hint="register each plugin once, under a unique name",
        plugin=name,
        distribution=distribution,
    )


def not_in_spec(
    pm_name: str, hook: str, impl: _Impl, spec: _Spec, name: str, dist: _Dist | None
) -> PluginValidationError:
    """pluggy's refusal of an implementation taking arguments its specification lacks."""
    import inspect

    where_, distribution = where(name, dist)
    notinspec = set(impl.argnames) - (set(spec.argnames) | set(spec.kwargnames))
    func = impl.function
    return PluginValidationError(
        f"{where_}: Plugin {pm_name!r} for hook {hook!r}\n"
        f"hookimpl definition: {func.__name__}{inspect.signature(func)}\n"
        f"Argument(s) {notinspec} are declared in the hookimpl but "
        "can not be found in the hookspec",
        plugin=name,
        distribution=distribution,
    )


def unknown_hook(
    hookspecs: ModuleType, hook: str, name: str, dist: _Dist | None
) -> PluginValidationError:
    where_, distribution = where(name, dist)
    known = _known_hooks(hookspecs)
    guess = did_you_mean(hook, known)
    return PluginValidationError(
        f"{where_}: unknown hook {hook!r}" + (f" (did you mean {guess!r}?)" if guess else ""),
        hint="hooks are: " + ", ".join(known),
        plugin=name,
        distribution=distribution,
        hook=hook,
    )


def check_unmarked(
    hookspecs: ModuleType,
    plugin: object,
    suspects: Iterable[str],
    name: str,
    dist: _Dist | None,
) -> None:
    """Refuse the first callable ``accel_*`` attribute that is not a marked implementation."""
    where_, distribution = where(name, dist)
    for attr in suspects:
        if hasattr(hookspecs, attr):
            if callable(getattr(plugin, attr, None)):
                raise PluginValidationError(
                    f"{where_}: {attr!r} is not marked with @accel.hookimpl, "
                    "so it would never be called",
                    hint=f"decorate it: @accel.hookimpl def {attr}(...)",
                    plugin=name,
                    distribution=distribution,
                    hook=attr,
                )
        else:
            obj = getattr(plugin, attr, None)
            if callable(obj):
                known = _known_hooks(hookspecs)
                guess = did_you_mean(attr, known)
                raise PluginValidationError(
                    f"{where_}: {attr!r} looks like a hook but is not one"
                    + (f" (did you mean {guess!r}?)" if guess else ""),
                    hint="hooks are: " + ", ".join(known),
                    plugin=name,
                    distribution=distribution,
                    hook=attr,
                )


def hook_raised_on_check(hook: str, pname: str, exc: Exception) -> PluginValidationError:
    return PluginValidationError(f"plugin {pname!r}: {hook}() raised {exc!r}", plugin=pname)


def wrong_type(hook: str, expected: str, pname: str, obj: object) -> PluginValidationError:
    return PluginValidationError(
        f"plugin {pname!r}: {hook}() must return {expected} objects, not {type(obj).__name__}",
        plugin=pname,
    )


def duplicate_accelerator(
    accelerator: str, other: str | None, pname: str
) -> DuplicateAcceleratorError:
    return DuplicateAcceleratorError(
        f"accelerator {accelerator!r} is provided by two plugins: {other!r} and {pname!r}",
        plugin=pname,
        plugins=(other, pname),
        accelerator=accelerator,
    )


def duplicate_device_type(device: str, other: str | None, pname: str) -> PluginValidationError:
    return PluginValidationError(
        f"device type {device!r} is provided by two plugins: {other!r} and {pname!r}",
        plugin=pname,
    )


def unknown_accelerator(name: str, known: list[str], why: str | None) -> UnknownAcceleratorError:
    guess = did_you_mean(name, known)
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


def empty_spec(spec: str) -> InvalidArgumentError:
    return InvalidArgumentError(
        f"empty accelerator list {spec!r}",
        hint="name one or more accelerators, e.g. 'kvm:tcg'",
        argument="accel",
        value=spec,
    )


def _code(function: object) -> object:
    return getattr(getattr(function, "__func__", function), "__code__", None)


def raised_by(exc: BaseException, impls: Iterable[_Impl]) -> _Impl | None:
    """The implementation in whose code ``exc`` was raised (the innermost one)."""
    by_code = {_code(impl.function): impl for impl in impls}
    found = None
    tb: TracebackType | None = exc.__traceback__
    while tb is not None:
        found = by_code.get(tb.tb_frame.f_code, found)
        tb = tb.tb_next
    return found


def hook_raised(registry: Registry, hook: str, exc: Exception, impls: list[_Impl]) -> PluginError:
    """A hook implementation raised something other than an AccelError: name its plugin."""
    raiser = raised_by(exc, impls)
    pname = (registry._name_of(raiser.plugin) if raiser is not None else None) or "?"
    return PluginError(
        f"plugin {pname!r}: {hook}() raised {exc!r}",
        hint="this is a bug in the plugin: report it, or skip the plugin with "
        "ACCEL_DISABLE_PLUGINS=<name>",
        plugin=pname,
    )
