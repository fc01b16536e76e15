"""A small in-memory accelerator for testing the core's contract helpers.

It implements the :mod:`accel.accelerator` interfaces without any backend: memory is a
``bytearray``, a vCPU's ``run()`` returns :class:`accel.HaltExit`. Real accelerators are
tested by their own plugins and the conformance suite; this fake only exercises what the
core provides (closed-handle checks, memory bounds, the registry and the command).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import SimpleNamespace
from typing import Any

import accel
from accel import (
    VM,
    Accelerator,
    Availability,
    Capability,
    CapabilityAnswer,
    CapabilitySet,
    ClockData,
    ClockFlags,
    CpuSpec,
    Exit,
    HaltExit,
    MemoryRegion,
    Registers,
    SpecialRegisters,
    Vcpu,
    VmOptions,
)
from accel.errors import AcceleratorUnavailableError, MemoryLayoutError, VcpuStateError


def all_answers(
    default: CapabilityAnswer | None = None, **overrides: CapabilityAnswer
) -> CapabilitySet:
    """A CapabilitySet answering ``default`` (yes) everywhere except ``overrides``."""
    base = default or CapabilityAnswer.yes(source="fake")
    answers = {cap: base for cap in Capability}
    answers[Capability.MAX_VCPUS] = CapabilityAnswer.yes(8, "fake")
    answers[Capability.ADJUST_CLOCK] = CapabilityAnswer.yes(int(ClockFlags.TSC_STABLE), "fake")
    for name, answer in overrides.items():
        answers[Capability[name]] = answer
    return CapabilitySet(answers)


class FakeAccelerator(Accelerator):
    def __init__(
        self,
        name: str = "fake",
        availability: Availability | None = None,
        caps: CapabilitySet | None = None,
    ) -> None:
        self.name = name
        self._availability = (
            availability if availability is not None else Availability.ok("fake is always here")
        )
        self._caps = caps if caps is not None else all_answers()
        self.vms: list[FakeVM] = []

    def probe(self) -> Availability:
        self._check_open()
        return self._availability

    def capabilities(self) -> CapabilitySet:
        self._check_open()
        if not self._availability.available:
            raise AcceleratorUnavailableError(
                f"{self.name} is unavailable", accelerator=self.name, reason="probe said no"
            )
        return self._caps

    def create_vm(self, options: VmOptions | None = None) -> FakeVM:
        self.capabilities()
        vm = FakeVM(self)
        self.vms.append(vm)
        return vm

    def _close(self) -> None:
        for vm in self.vms:
            vm.close()


class FakeVM(VM):
    def __init__(self, acc: FakeAccelerator) -> None:
        self.accelerator = acc
        self._regions: list[MemoryRegion] = []
        self._vcpus: list[FakeVcpu] = []
        self._clock = ClockData(0)
        self._paused = False

    def capabilities(self) -> CapabilitySet:
        self._check_open()
        return self.accelerator.capabilities()

    def add_memory(self, guest_phys: int, size: int, *, readonly: bool = False) -> MemoryRegion:
        self._check_open()
        if size <= 0 or guest_phys % 4096 or size % 4096:
            raise MemoryLayoutError("misaligned", address=guest_phys, size=size)
        region = MemoryRegion(
            guest_phys, size, memoryview(bytearray(size)), slot=len(self._regions)
        )
        self._regions.append(region)
        self._regions.sort(key=lambda r: r.guest_phys)
        return region

    def add_mmio(self, guest_phys: int, size: int) -> None:
        self._check_open()

    @property
    def memory_regions(self) -> tuple[MemoryRegion, ...]:
        return tuple(self._regions)

    def create_vcpu(self, index: int | None = None, *, cpu: CpuSpec | None = None) -> FakeVcpu:
        self._check_open()
        vcpu = FakeVcpu(self, len(self._vcpus) if index is None else index)
        self._vcpus.append(vcpu)
        return vcpu

    @property
    def vcpus(self) -> tuple[Vcpu, ...]:
        return tuple(v for v in self._vcpus if not v.closed)

    def get_clock(self) -> ClockData:
        self._check_open()
        return self._clock

    def set_clock(self, data: ClockData) -> None:
        self._check_open()
        self._clock = data

    def pause(self) -> None:
        self._check_open()
        self._paused = True

    def resume(self) -> None:
        self._check_open()
        self._paused = False

    @property
    def paused(self) -> bool:
        return self._paused

    def _close(self) -> None:
        for vcpu in self._vcpus:
            vcpu.close()


class FakeVcpu(Vcpu):
    def __init__(self, vm: FakeVM, index: int) -> None:
        self.vm = vm
        self.index = index
        self._regs = Registers()
        self._sregs = SpecialRegisters()

    def get_regs(self) -> Registers:
        self._check_open()
        return self._regs

    def set_regs(self, regs: Registers) -> None:
        self._check_open()
        self._regs = regs

    def get_sregs(self) -> SpecialRegisters:
        self._check_open()
        return self._sregs

    def set_sregs(self, sregs: SpecialRegisters) -> None:
        self._check_open()
        self._sregs = sregs

    def run(self) -> Exit:
        self._check_open()
        if self.vm.paused:
            raise VcpuStateError("the VM is paused")
        return HaltExit()

    def kick(self) -> None:
        pass

    def _close(self) -> None:
        pass


def accelerator_plugin(
    *infos: accel.AcceleratorInfo,
) -> Any:
    """A plugin object whose ``accel_accelerators`` hook returns ``infos``."""

    @accel.hookimpl
    def accel_accelerators() -> list[accel.AcceleratorInfo]:
        return list(infos)

    return SimpleNamespace(accel_accelerators=accel_accelerators)


def fake_info(
    name: str,
    *,
    priority: int = 0,
    hardware: bool = False,
    availability: Availability | None = None,
    caps: CapabilitySet | None = None,
    unsupported: Mapping[str, str] | None = None,
    factory: Callable[[], Accelerator] | None = None,
) -> accel.AcceleratorInfo:
    """An AcceleratorInfo for a FakeAccelerator called ``name``."""
    return accel.AcceleratorInfo(
        name=name,
        summary=f"fake accelerator {name}",
        priority=priority,
        hardware=hardware,
        factory=factory or (lambda: FakeAccelerator(name, availability, caps)),
        unsupported=unsupported or {},
    )


def registry_with(*infos: accel.AcceleratorInfo, name: str = "fakes") -> accel.Registry:
    """A registry without entry points, holding one plugin that provides ``infos``."""
    reg = accel.Registry(entry_points=False)
    reg.register(accelerator_plugin(*infos), name=name)
    return reg
