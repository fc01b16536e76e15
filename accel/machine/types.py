"""Machine types: versioned like QEMU's x86 list, each with compat properties.

They live in :mod:`accel.machine.machine` beside the machine that resolves them (one
module on the start-up path of ``accel run``; its docstring lists the types and the
compat properties); this module keeps their names importable from here.

Example::

    >>> mt = resolve_machine_type("pc")
    >>> mt.name, mt.version
    ('pc-i440fx-7.2', (7, 2))
"""

from __future__ import annotations

from .machine import _CPU_MODELS as _CPU_MODELS
from .machine import MACHINE_TYPES, MachineType, PlatformDevice, machine_types, resolve_machine_type
from .machine import ReadOnlyMapping as ReadOnlyMapping
from .machine import _LazyMapping as _LazyMapping
from .machine import resolve_cpu as resolve_cpu

__all__ = [
    "MACHINE_TYPES",
    "MachineType",
    "PlatformDevice",
    "machine_types",
    "resolve_machine_type",
]
