"""The public types are what they say: enum members, dataclasses that copy and pickle,
classes whose source :mod:`inspect` finds."""

from __future__ import annotations

import copy
import dataclasses
import enum
import inspect
import pickle

import pytest

import accel
from accel import (
    Availability,
    Capability,
    CapabilityAnswer,
    ClockData,
    ClockFlags,
    CpuSpec,
    DescriptorTable,
    IoDirection,
    Registers,
    Segment,
    SpecialRegisters,
    Support,
    VmOptions,
)
from accel.plugin import AcceleratorInfo, ClockDeviceChoice, DeviceType, PropertySpec


def _public_classes() -> list[type]:
    """Every class a module of accel or of the in-tree plugins lists in ``__all__`` and
    defines itself."""
    import importlib
    import pkgutil

    import accel_kvm
    import accel_tcg
    import accel_xen

    found: dict[str, type] = {}
    for package in (accel, accel_kvm, accel_tcg, accel_xen):
        names = [package.__name__] + [
            m.name for m in pkgutil.walk_packages(package.__path__, package.__name__ + ".")
        ]
        for modname in names:
            if modname.endswith("__main__"):
                continue
            module = importlib.import_module(modname)
            for name in getattr(module, "__all__", ()):
                obj = getattr(module, name, None)
                if isinstance(obj, type) and obj.__module__ == modname:
                    found[f"{modname}.{name}"] = obj
    return [found[k] for k in sorted(found)]


@pytest.mark.parametrize("cls", [Support, Capability, ClockFlags, IoDirection])
def test_public_enumerations_are_enum_members(cls: type[enum.Enum]) -> None:
    assert issubclass(cls, enum.Enum)
    for member in cls:
        assert isinstance(member, enum.Enum) and isinstance(member, cls)
        assert cls(member.value) is member
        assert pickle.loads(pickle.dumps(member)) is member
        assert copy.deepcopy(member) is member


def test_clock_flags_are_an_int_flag() -> None:
    assert issubclass(ClockFlags, enum.IntFlag)
    inverted = ~ClockFlags.TSC_STABLE
    assert isinstance(inverted, ClockFlags) and inverted >= 0
    assert not inverted & ClockFlags.TSC_STABLE
    assert inverted & ClockFlags.REALTIME and inverted & ClockFlags.HOST_TSC
    both = ClockFlags.TSC_STABLE | ClockFlags.REALTIME
    assert list(both) == [ClockFlags.TSC_STABLE, ClockFlags.REALTIME]
    assert ClockFlags(14) == ClockFlags.TSC_STABLE | ClockFlags.REALTIME | ClockFlags.HOST_TSC


def _factory() -> None:  # a module-level callable, so an AcceleratorInfo pickles
    return None


VALUE_RECORDS = [
    Availability.ok("fine", errno=0),
    Availability.unavailable("gone", hint="do this", path="/dev/x"),
    Availability.present("here but no VMs"),
    CapabilityAnswer.yes(4, "src"),
    CpuSpec.parse("qemu64,-kvmclock"),
    VmOptions(),
    ClockData(clock=123, flags=ClockFlags.TSC_STABLE),
    Registers(rax=1, rip=0x1000),
    Segment(base=0x10, limit=0xFFFF, selector=1),
    DescriptorTable(base=0x1000, limit=0xFF),
    SpecialRegisters(),
    AcceleratorInfo("fake", "a fake", _factory, unsupported={"b": "2"}),
    PropertySpec("iobase", int, 0xE9),
    DeviceType("dev", "a device", _factory, [PropertySpec("iobase", int, 0xE9)]),
    ClockDeviceChoice("kvm-pit", True, "the reason", replaces="isa-pit"),
]


@pytest.mark.parametrize("record", VALUE_RECORDS, ids=lambda r: type(r).__name__)
def test_public_records_are_dataclasses_that_copy_and_pickle(record: object) -> None:
    assert dataclasses.is_dataclass(record)
    assert copy.copy(record) == record
    assert copy.deepcopy(record) == record
    assert pickle.loads(pickle.dumps(record)) == record
    fields = {f.name for f in dataclasses.fields(record)}
    assert fields == set(dataclasses.asdict(record))  # type: ignore[arg-type]
    params = inspect.signature(type(record)).parameters
    assert {n for n, p in params.items() if p.kind is not p.VAR_KEYWORD} >= {
        f.name for f in dataclasses.fields(record) if f.init
    }


def test_frozen_records_refuse_assignment() -> None:
    for record, field in (
        (Availability.ok(), "reason"),
        (CapabilityAnswer.no(), "source"),
        (ClockData(clock=1), "clock"),
    ):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(record, field, "x")


@pytest.mark.parametrize("cls", _public_classes(), ids=lambda c: f"{c.__module__}.{c.__name__}")
def test_inspect_finds_the_source_of_every_public_class(cls: type) -> None:
    assert f"class {cls.__name__}" in inspect.getsource(cls)
