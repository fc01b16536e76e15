"""Lazy module attributes (PEP 562): names imported from another module on first use.

A module lists where each of its lazy names is defined and takes the two hooks::

    __getattr__, __dir__ = exports(globals(), {"Device": ".device"}, submodules=("cpu",))

``accel.machine.Device`` then imports :mod:`accel.machine.device` on first access and
caches the value in the module's globals (later lookups never reach ``__getattr__``).
This module is on the start path of ``accel run``: it imports nothing at run time.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from typing import Any


def resolve(target: str, package: str | None) -> str:
    """The absolute name of module ``target``: ``".device"`` or ``"..errors"`` relative to
    ``package`` (as ``from . import`` resolves it), anything else as it is."""
    if not target.startswith("."):
        return target
    name = target.lstrip(".")
    dots = len(target) - len(name)
    if not package:
        raise ImportError(f"relative target {target!r} outside a package")
    parts = package.split(".")
    if dots > len(parts):
        raise ImportError(f"relative target {target!r} beyond the top of {package!r}")
    base = ".".join(parts[: len(parts) - dots + 1])
    return f"{base}.{name}" if name else base


def exports(
    module_globals: dict[str, Any],
    table: Mapping[str, str],
    submodules: Iterable[str] = (),
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for the module whose globals are ``module_globals``.

    ``table`` maps each lazy name to the module that defines it (``".device"`` relative
    to the module's package, or absolute); ``submodules`` are the package's submodules
    reachable as attributes before anything imported them. The value is cached in the
    module's globals. Any other name raises AttributeError with Python's own message.
    ``__dir__`` lists the globals, the lazy names and ``__all__``.
    """
    module_name: str = module_globals["__name__"]
    package: str | None = module_globals.get("__package__")
    targets = {name: resolve(target, package) for name, target in table.items()}
    children = {name: f"{module_name}.{name}" for name in submodules}

    def __getattr__(name: str) -> Any:
        target = targets.get(name)
        if target is not None:
            if target not in sys.modules:
                __import__(target)
            value = getattr(sys.modules[target], name)
        elif name in children:
            __import__(children[name])
            value = sys.modules[children[name]]
        else:
            raise AttributeError(f"module {module_name!r} has no attribute {name!r}")
        module_globals[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(module_globals) | set(targets) | set(module_globals.get("__all__", ())))

    return __getattr__, __dir__
