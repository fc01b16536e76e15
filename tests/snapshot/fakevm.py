"""A tiny in-memory accelerator for the snapshot tests (no backend at all).

Its clock follows the pause/resume contract: ``pause`` caches the value, ``get_clock``
returns the cache while paused, ``resume`` writes it back. ``fail_clock`` makes the
next clock read fail like a backend call would.
"""

from __future__ import annotations

import time
from dataclasses import replace

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
from accel.errors import BackendCallError, MemoryLayoutError, VcpuStateError

FLAGS = ClockFlags.TSC_STABLE | ClockFlags.REALTIME


def caps(flags: ClockFlags = FLAGS) -> CapabilitySet:
    answers = {c: CapabilityAnswer.yes(source="fake") for c in Capability}
    answers[Capability.MAX_VCPUS] = CapabilityAnswer.yes(8, "fake")
    answers[Capability.NR_VCPUS] = CapabilityAnswer.yes(4, "fake")
    answers[Capability.TSC_KHZ] = CapabilityAnswer.yes(1000, "fake")
    answers[Capability.ADJUST_CLOCK] = CapabilityAnswer.yes(int(flags), "fake")
    return CapabilitySet(answers)


class FakeAccelerator(Accelerator):
    def __init__(self, name: str = "fake", flags: ClockFlags = FLAGS) -> None:
        self.name = name
        self._caps = caps(flags)
        self.vms: list[FakeVM] = []

    def probe(self) -> Availability:
        return Availability.ok()

    def capabilities(self) -> CapabilitySet:
        self._check_open()
        return self._caps

    def create_vm(self, options: VmOptions | None = None) -> FakeVM:
        self._check_open()
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
        self._base = 0  # guest ns at _since
        self._since = time.monotonic_ns()
        self._paused = False
        self._cache: ClockData | None = None
        self.fail_clock = False
        self.clock_writes: list[ClockData] = []

    def capabilities(self) -> CapabilitySet:
        return self.accelerator.capabilities()

    def add_memory(self, guest_phys: int, size: int, *, readonly: bool = False) -> MemoryRegion:
        self._check_open()
        if size <= 0 or guest_phys % 4096 or size % 4096:
            raise MemoryLayoutError("misaligned", address=guest_phys, size=size)
        region = MemoryRegion(
            guest_phys,
            size,
            memoryview(bytearray(size)),
            readonly=readonly,
            slot=len(self._regions),
        )
        self._regions.append(region)
        self._regions.sort(key=lambda r: r.guest_phys)
        return region

    def add_mmio(self, guest_phys: int, size: int) -> None:
        pass

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
        return tuple(self._vcpus)

    def _now(self) -> ClockData:
        if self.fail_clock:
            raise BackendCallError("GET_CLOCK", 5, accelerator=self.accelerator.name)
        return ClockData(
            self._base + time.monotonic_ns() - self._since, FLAGS, realtime=time.time_ns()
        )

    def _write(self, data: ClockData) -> None:
        self.clock_writes.append(data)
        value = data.clock
        if data.flags & ClockFlags.REALTIME:
            value += max(0, time.time_ns() - data.realtime)
        self._base = value
        self._since = time.monotonic_ns()

    def get_clock(self) -> ClockData:
        self._check_open()
        if self._paused and self._cache is not None:
            return self._cache
        return self._now()

    def set_clock(self, data: ClockData) -> None:
        self._check_open()
        if self._paused:
            self._cache = data
        else:
            self._write(data)

    def pause(self) -> None:
        self._check_open()
        if not self._paused:
            self._cache = self._now()
            self._paused = True

    def resume(self) -> None:
        self._check_open()
        if self._paused:
            assert self._cache is not None
            self._write(replace(self._cache, flags=self._cache.flags & ~ClockFlags.HOST_TSC))
            self._paused = False
            self._cache = None

    @property
    def paused(self) -> bool:
        return self._paused

    def _close(self) -> None:
        for v in self._vcpus:
            v.close()


class FakeVcpu(Vcpu):
    def __init__(self, vm: FakeVM, index: int) -> None:
        self.vm = vm
        self.index = index
        self._regs = Registers()
        self._sregs = SpecialRegisters()

    def get_regs(self) -> Registers:
        self._check_open()
        return replace(self._regs)

    def set_regs(self, regs: Registers) -> None:
        self._check_open()
        self._regs = replace(regs)

    def get_sregs(self) -> SpecialRegisters:
        self._check_open()
        return self._sregs

    def set_sregs(self, sregs: SpecialRegisters) -> None:
        self._check_open()
        self._sregs = sregs

    def run(self) -> Exit:
        self._check_open()
        if self.vm.paused:
            raise VcpuStateError("paused")
        return HaltExit()

    def kick(self) -> None:
        pass

    def _close(self) -> None:
        pass


def state_of(vm: VM) -> tuple[object, ...]:
    """Everything a restore could change, for before/after comparisons."""
    return (
        tuple((r.guest_phys, r.size, bytes(r.view)) for r in vm.memory_regions),
        tuple((v.index, v.get_regs(), repr(v.get_sregs())) for v in vm.vcpus),
        vm.paused,
        vm.get_clock().clock if vm.paused else None,
    )
