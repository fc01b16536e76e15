"""Accelerators for machine tests that need no backend: scripted exits, recorded calls."""

from __future__ import annotations

from collections.abc import Callable, Iterable

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
    InterruptedExit,
    MemoryRegion,
    Registers,
    SpecialRegisters,
    Vcpu,
    VmOptions,
)


def caps(**overrides: bool) -> CapabilitySet:
    answers = {c: CapabilityAnswer.yes(source="fake") for c in Capability}
    answers[Capability.MAX_VCPUS] = CapabilityAnswer.yes(8, "fake")
    answers[Capability.NR_VCPUS] = CapabilityAnswer.yes(8, "fake")
    answers[Capability.TSC_KHZ] = CapabilityAnswer.yes(1000, "fake")
    answers[Capability.ADJUST_CLOCK] = CapabilityAnswer.yes(int(ClockFlags.TSC_STABLE), "fake")
    for name, on in overrides.items():
        if not on:
            answers[Capability[name.upper()]] = CapabilityAnswer.no("fake")
    return CapabilitySet(answers)


class FakeAccelerator(Accelerator):
    def __init__(
        self,
        name: str = "fake",
        capset: CapabilitySet | None = None,
        script: Iterable[Callable[[FakeVcpu], Exit]] = (),
    ) -> None:
        self.name = name
        self._caps = capset or caps()
        self.log: list[str] = []
        self.script = list(script)
        self.options: VmOptions | None = None

    def probe(self) -> Availability:
        return Availability.ok()

    def capabilities(self) -> CapabilitySet:
        return self._caps

    def create_vm(self, options: VmOptions | None = None) -> FakeVM:
        self.options = options
        self.log.append("create_vm")
        return FakeVM(self)

    def _close(self) -> None:
        pass


class FakeVM(VM):
    def __init__(self, acc: FakeAccelerator) -> None:
        self.accelerator = acc
        self._regions: list[MemoryRegion] = []
        self._vcpus: list[FakeVcpu] = []
        self._paused = False
        self._clock = 1000
        self.mmio: list[tuple[int, int]] = []

    def capabilities(self) -> CapabilitySet:
        return self.accelerator.capabilities()

    def add_memory(self, guest_phys: int, size: int, *, readonly: bool = False) -> MemoryRegion:
        r = MemoryRegion(guest_phys, size, memoryview(bytearray(size)))
        self._regions.append(r)
        return r

    def add_mmio(self, guest_phys: int, size: int) -> None:
        self.mmio.append((guest_phys, size))

    @property
    def memory_regions(self) -> tuple[MemoryRegion, ...]:
        return tuple(self._regions)

    def create_vcpu(self, index: int | None = None, *, cpu: CpuSpec | None = None) -> Vcpu:
        self.accelerator.log.append("create_vcpu")
        v = FakeVcpu(self, len(self._vcpus))
        self._vcpus.append(v)
        return v

    @property
    def vcpus(self) -> tuple[Vcpu, ...]:
        return tuple(self._vcpus)

    def get_clock(self) -> ClockData:
        self.accelerator.log.append("get_clock")
        return ClockData(self._clock, ClockFlags.TSC_STABLE)

    def set_clock(self, data: ClockData) -> None:
        self.accelerator.log.append("set_clock")
        self._clock = data.clock

    def pause(self) -> None:
        self.accelerator.log.append("pause")
        self._paused = True

    def resume(self) -> None:
        self.accelerator.log.append("resume")
        self._paused = False

    @property
    def paused(self) -> bool:
        return self._paused

    def _close(self) -> None:
        pass


class FakeVcpu(Vcpu):
    def __init__(self, vm: FakeVM, index: int) -> None:
        self.vm = vm
        self.index = index
        self.regs = Registers(rip=0xFFF0)
        self.sregs = SpecialRegisters()

    def get_regs(self) -> Registers:
        return self.regs

    def set_regs(self, regs: Registers) -> None:
        self.regs = regs

    def get_sregs(self) -> SpecialRegisters:
        return self.sregs

    def set_sregs(self, sregs: SpecialRegisters) -> None:
        self.sregs = sregs

    def run(self) -> Exit:
        acc = self.vm.accelerator
        assert isinstance(acc, FakeAccelerator)
        if self.vm.paused:
            raise accel.errors.VcpuStateError("paused")
        acc.log.append("run")
        if acc.script:
            return acc.script.pop(0)(self)
        return HaltExit()

    def kick(self) -> None:
        self.vm.accelerator.script.insert(0, lambda _v: InterruptedExit())  # type: ignore[attr-defined]

    def _close(self) -> None:
        pass


def registry_with(*plugins: object) -> accel.Registry:
    """A registry with the real plugins (entry points) plus ``plugins``."""
    reg = accel.Registry()
    for p in plugins:
        reg.register(p)
    return reg
