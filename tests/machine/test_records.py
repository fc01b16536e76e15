"""The machine layer's records write ``__init__`` by hand: it must stay the one
:func:`accel._records.record` would generate (same parameters, order, defaults)."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from accel._records import MISSING, fields
from accel.machine.cpu import CpuModel
from accel.machine.machine import DeviceDecision, MachinePlan, RunResult
from accel.machine.runner import RunOptions
from accel.machine.types import MachineType, PlatformDevice

RECORDS = [
    PlatformDevice,
    MachineType,
    CpuModel,
    DeviceDecision,
    RunResult,
    MachinePlan,
    RunOptions,
]


@pytest.mark.parametrize("cls", RECORDS, ids=lambda c: c.__name__)
def test_init_matches_the_fields(cls: type) -> None:
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    declared = [f for f in fields(cls) if f.init]
    assert [p.name for p in params] == [f.name for f in declared]
    for p, f in zip(params, declared, strict=True):
        assert p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
        if f.default is not MISSING:
            assert p.default == f.default, f.name
        elif f.default_factory is MISSING:
            assert p.default is inspect.Parameter.empty, f.name
        else:
            assert p.default is not inspect.Parameter.empty, f.name


@pytest.mark.parametrize("cls", RECORDS, ids=lambda c: c.__name__)
def test_init_sets_what_the_generated_one_sets(cls: type) -> None:
    """Built with the required fields only, each record equals one built by a generated
    ``__init__`` of the same fields (default factories called, post-init applied)."""
    required = {
        f.name: f"v-{f.name}"
        for f in fields(cls)
        if f.init and f.default is MISSING and f.default_factory is MISSING
    }
    obj = cls(**required)
    for f in fields(cls):
        value = getattr(obj, f.name)
        if f.name in required:
            assert value == required[f.name]
        elif f.default_factory is not MISSING:
            assert value == f.default_factory()
        else:
            assert value == f.default
    assert dataclasses.replace(obj) == obj


def test_factory_defaults_are_not_shared() -> None:
    a = MachinePlan(MachineType("m", "m", "d"), "kvm", "qemu64", {}, False)  # type: ignore[arg-type]
    b = MachinePlan(MachineType("m", "m", "d"), "kvm", "qemu64", {}, False)  # type: ignore[arg-type]
    a.decisions.append(DeviceDecision("x", True, "r", "user"))
    assert b.decisions == []


def test_machine_type_compat_is_read_only_copy() -> None:
    compat = {"machine.rtc": "on"}
    mt = MachineType("m", "m", "d", compat=compat)
    compat["machine.rtc"] = "off"
    assert mt.compat["machine.rtc"] == "on"
    assert not hasattr(mt.compat, "__setitem__")
    assert dict(MachineType("m", "m", "d").compat) == {}
