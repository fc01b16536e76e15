"""The machine layer's public records are real dataclasses, its states real enums.

Users copy, deep-copy and pickle machine types, CPU models and run results, read their
fields with :func:`dataclasses.fields`, check ``isinstance(state, enum.Enum)`` and read
the classes' source; all of it works because these are the standard library's own.
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import inspect
import pickle
from types import ModuleType
from typing import Any

import pytest

import accel.machine
from accel.accelerator import CpuSpec
from accel.machine import (
    CPU_MODELS,
    MACHINE_TYPES,
    CpuModel,
    DeviceDecision,
    Machine,
    MachinePlan,
    MachineType,
    PlatformDevice,
    RunResult,
    RunState,
    cpu,
    device,
    devices,
    machine,
    resolve_machine_type,
    runstate,
    types,
)
from accel.registry import Registry
from tests.fakes import FakeAccelerator

MODULES: tuple[ModuleType, ...] = (
    types,
    cpu,
    runstate,
    devices.base,
    devices.debug,
    devices.rtc,
    devices.hpet,
    devices.pit,
    devices.irqchip,
    devices,
    device,
    machine,
)

VALUES: list[Any] = [
    *MACHINE_TYPES.values(),
    *CPU_MODELS.values(),
    PlatformDevice("isa-debugcon", (("iobase", 0x402),)),
    DeviceDecision("hpet", True, "platform device of pc-i440fx-7.2", "platform"),
    DeviceDecision("isa-debug-exit", True, "user", "user", (("iobase", 0xF4),)),
    RunResult(33, "debug-exit", "guest wrote 0x10"),
]


def _round_trips(value: object) -> list[object]:
    return [copy.copy(value), copy.deepcopy(value), pickle.loads(pickle.dumps(value))]


@pytest.mark.parametrize(
    "cls", [MachineType, PlatformDevice, CpuModel, DeviceDecision, RunResult, MachinePlan]
)
def test_public_records_are_dataclasses(cls: type) -> None:
    assert dataclasses.is_dataclass(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    assert list(inspect.signature(cls).parameters) == names


@pytest.mark.parametrize("value", VALUES, ids=lambda v: f"{type(v).__name__}-{v}"[:60])
def test_value_records_copy_deepcopy_and_pickle(value: object) -> None:
    for other in _round_trips(value):
        assert type(other) is type(value)
        assert other == value
        assert hash(other) == hash(value)


def test_a_copied_machine_type_keeps_read_only_compat() -> None:
    mt = resolve_machine_type("pc-q35-4.0")
    for other in _round_trips(mt):
        assert isinstance(other, MachineType)
        assert other.option("kernel-irqchip") == "split"
        with pytest.raises(TypeError):
            other.compat["machine.rtc"] = "off"  # type: ignore[index]
        with pytest.raises(dataclasses.FrozenInstanceError):
            other.name = "x"  # type: ignore[misc]


def test_machine_type_compat_is_a_read_only_copy() -> None:
    given = {"machine.kernel-irqchip": "off"}
    mt = MachineType("custom", "pc", "a custom type", compat=given)
    given["machine.kernel-irqchip"] = "on"
    assert mt.option("kernel-irqchip") == "off"
    with pytest.raises(TypeError):
        mt.compat["machine.rtc"] = "on"  # type: ignore[index]
    assert dataclasses.replace(mt, name="custom2").compat == mt.compat


def test_the_tables_are_read_only() -> None:
    with pytest.raises(TypeError):
        MACHINE_TYPES["mine"] = resolve_machine_type("pc")  # type: ignore[index]
    with pytest.raises(TypeError):
        CPU_MODELS["mine"] = CPU_MODELS["max"]  # type: ignore[index]


def test_replace_and_asdict_work_on_the_records() -> None:
    r = RunResult(0, "halt", "guest halted")
    assert dataclasses.replace(r, message="m") == RunResult(0, "halt", "m")
    assert dataclasses.asdict(CPU_MODELS["486"]) == CPU_MODELS["486"].to_json()


def _copies(value: object) -> bool:
    try:
        return copy.deepcopy(value) == value
    except Exception:
        return False


@pytest.mark.xfail(
    not _copies(CpuSpec("max")),
    reason="MachinePlan holds an accel.CpuSpec, which copies once accel.accelerator's "
    "records are dataclasses",
    strict=True,
)
def test_a_machine_plan_copies_and_pickles() -> None:
    plan = Machine.describe(
        FakeAccelerator(), "pc", "max", ["isa-debugcon"], registry=Registry(entry_points=False)
    )
    assert "isa-debugcon" in plan.device_names()
    for other in _round_trips(plan):
        assert other == plan


def test_run_state_members_are_enum_members() -> None:
    assert issubclass(RunState, enum.Enum)
    assert all(isinstance(s, enum.Enum) for s in RunState)
    assert RunState("paused") is RunState.PAUSED
    assert copy.deepcopy(RunState.RUNNING) is RunState.RUNNING
    assert pickle.loads(pickle.dumps(RunState.SHUTDOWN)) is RunState.SHUTDOWN


def test_every_public_name_has_one_home() -> None:
    """Each name ``accel.machine`` exports is listed by exactly one of its modules, the
    one that defines it."""
    for name in accel.machine.__all__:
        obj = getattr(accel.machine, name)
        homes = [m.__name__ for m in MODULES if name in getattr(m, "__all__", ())]
        assert len(homes) == 1, (name, homes)
        if isinstance(obj, type) or callable(obj):
            assert obj.__module__ == homes[0], (name, obj.__module__, homes)


def test_names_stay_importable_where_they_were() -> None:
    """The modules names lived in before each concept got its own still give them."""
    from accel.machine.device import Device, DeviceRegistry, PropValue, parse_device_spec
    from accel.machine.devices import HPET_BASE, PIT_HZ, Hpet, Pit, builtin_device_types
    from accel.machine.machine import (
        MACHINE_TYPES,
        MachineType,
        PlatformDevice,
        RunState,
        machine_types,
        parse_machine_spec,
        resolve_cpu,
        resolve_machine_type,
    )
    from accel.machine.types import MACHINE_TYPES as TYPES

    assert Device is accel.machine.Device and DeviceRegistry is accel.machine.DeviceRegistry
    assert PropValue is devices.base.PropValue and parse_device_spec("a")[0] == "a"
    assert (HPET_BASE, PIT_HZ) == (0xFED00000, 1_193_182)
    assert issubclass(Hpet, Device) and issubclass(Pit, Device)
    assert {t.name for t in builtin_device_types()} >= {"hpet", "isa-pit", "mc146818rtc"}
    assert MACHINE_TYPES is TYPES and isinstance(machine_types()[0], MachineType)
    assert resolve_machine_type("pc").devices[0] == PlatformDevice("isa-pit")
    assert parse_machine_spec("q35")[0] == "q35" and RunState.CREATED.value == "created"
    assert resolve_cpu(None, "qemu64").model == "qemu64"
