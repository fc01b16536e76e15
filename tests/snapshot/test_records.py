"""The snapshot layer's records are real dataclasses, its modes real enums.

The records are plain values: they copy and deep-copy like any dataclass (and pickle,
for a user's own use: the snapshot *format* itself never uses pickle, checked below).
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import enum
import inspect
import pickle
from pathlib import Path
from types import ModuleType

import pytest

import accel.snapshot
from accel.snapshot import core, format, machine, state, vmstate
from accel.snapshot import inspect as snapshot_inspect
from accel.snapshot.core import RestoreMode, SaveResult
from accel.snapshot.format import Header
from accel.snapshot.inspect import RamInfo, SectionInfo, SnapshotInfo
from accel.snapshot.machine import (
    DebugConState,
    HpetState,
    MachineState,
    NoState,
    PitChannelState,
    PitState,
    RtcState,
    TimerReg,
)
from accel.snapshot.state import ClockState, RegionState, VmLayout
from accel.snapshot.vmstate import U8, U64, Array, Bytes, Field, Str, VarBytes

MODULES: tuple[ModuleType, ...] = (core, format, machine, state, vmstate, snapshot_inspect)
SNAPSHOT = Path(accel.snapshot.__file__).parent

VALUES: list[object] = [
    MachineState("pc-i440fx-7.2", ["kernel-irqchip=off"], "max", 16 << 20, 1, ["hpet"]),
    RtcState(0x0A, bytes(range(128)), 1_700_000_000_000_000_000),
    HpetState(1, 0, 12345, [TimerReg(0x100, 0x30), TimerReg(0x120, 7)]),
    PitState([PitChannelState(), PitChannelState(reload=0x1234, mode=2)]),
    DebugConState(b"hello\n"),
    NoState(),
    ClockState(clock=10**9, flags=2, saved_at=5, reliable=True),
    VmLayout([RegionState(0, 16 << 20), RegionState(0xFFFF0000, 0x10000, True)], [0]),
    Header(accelerator="fake", machine_type="microvm", cpu_model="max", created_ns=1),
    SnapshotInfo(Header(), 4096, [SectionInfo("hpet", 0, 1, 40, 100)], [RamInfo(0, 2)]),
    U8,
    Str(128),
    VarBytes(64),
    Bytes(4),
    Array(U64, 3),
    Field("counter", U64, since=2),
]


@pytest.mark.parametrize("value", VALUES, ids=lambda v: type(v).__name__)
def test_snapshot_records_are_dataclasses_that_copy(value: object) -> None:
    assert dataclasses.is_dataclass(value)
    for other in (copy.copy(value), copy.deepcopy(value), pickle.loads(pickle.dumps(value))):
        assert type(other) is type(value)
        assert other == value


def test_a_deep_copy_shares_nothing_mutable() -> None:
    st = HpetState(1, 0, 5, [TimerReg(0x100, 1)])
    other = copy.deepcopy(st)
    other.timers[0].value = 99
    assert st.timers[0].value == 1


def test_save_result_is_a_frozen_dataclass() -> None:
    assert dataclasses.is_dataclass(SaveResult)
    assert [f.name for f in dataclasses.fields(SaveResult)] == list(
        inspect.signature(SaveResult).parameters
    )


def test_restore_modes_are_enum_members() -> None:
    assert all(isinstance(m, enum.Enum) for m in RestoreMode)
    assert RestoreMode("catch-up") is RestoreMode.CATCH_UP
    assert copy.deepcopy(RestoreMode.RESUME) is RestoreMode.RESUME


@pytest.mark.parametrize("path", sorted(SNAPSHOT.glob("*.py")), ids=lambda p: p.name)
def test_the_snapshot_layer_never_uses_pickle(path: Path) -> None:
    """The format stays bounded and declarative: nothing is unpickled or executed."""
    banned = {"pickle", "marshal", "shelve", "copyreg", "dill", "cloudpickle"}
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or ""]
        else:
            continue
        assert not {n.split(".")[0] for n in names} & banned, f"{path.name}:{node.lineno}"
