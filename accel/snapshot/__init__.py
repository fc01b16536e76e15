"""Snapshots: versioned, checksummed, validated-before-applied save and restore of VM state.

Example::

    with open("vm.snap", "wb") as f:
        accel.snapshot.save(vm, f)                    # pauses for the save if running
    with open("vm.snap", "rb") as f:
        vm2 = accel.snapshot.restore(f, acc)          # a new VM, paused
    vm2.resume()                                      # clock first, then vCPUs may run

    accel.snapshot.save_machine(machine, f)           # an accel.machine.Machine
    m2 = accel.snapshot.restore_machine(f, acc, mode="catch-up")   # paused

The snapshot layer builds on :mod:`accel.machine`; the machine layer never imports it.

See docs/snapshots.md for the format and the rules.
"""

from __future__ import annotations

from ..files import check_target, read_file
from .core import (
    DeviceState,
    RestoreMode,
    SaveResult,
    StagedSnapshot,
    atomic_file,
    build_vm,
    load,
    read,
    restore,
    restored_clock,
    save,
)
from .files import naming, open_snapshot
from .format import FORMAT_NAME, FORMAT_VERSION, MAGIC, RAM_CHUNK, Header, read_stream_header
from .inspect import SnapshotInfo, inspect
from .machine import restore_machine, save_machine
from .state import ClockState
from .vmstate import (
    BOOL,
    I64,
    U8,
    U16,
    U32,
    U64,
    Array,
    Bytes,
    Field,
    Nested,
    Str,
    Subsection,
    VarBytes,
    VMStateDescription,
    decode,
    encode,
)

__all__ = [
    "BOOL",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "I64",
    "MAGIC",
    "RAM_CHUNK",
    "U8",
    "U16",
    "U32",
    "U64",
    "Array",
    "Bytes",
    "ClockState",
    "DeviceState",
    "Field",
    "Header",
    "read_stream_header",
    "Nested",
    "RestoreMode",
    "SaveResult",
    "SnapshotInfo",
    "StagedSnapshot",
    "Str",
    "Subsection",
    "VMStateDescription",
    "VarBytes",
    "atomic_file",
    "build_vm",
    "check_target",
    "decode",
    "encode",
    "inspect",
    "load",
    "naming",
    "open_snapshot",
    "read",
    "read_file",
    "restore",
    "restore_machine",
    "restored_clock",
    "save",
    "save_machine",
]
