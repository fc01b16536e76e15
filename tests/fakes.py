"""The in-memory accelerator shared by the core, machine and snapshot tests (no backend).

It implements only the abstract methods of :mod:`accel.accelerator`, so closed-handle
checks and guest-memory access (``read_memory``/``write_memory``) are the base classes'.
What differs between tests is configured, not subclassed:

* ``availability`` and ``caps`` (see :func:`all_answers`) of :class:`FakeAccelerator`;
* ``script``: exits :meth:`FakeVcpu.run` returns in order, then :class:`accel.HaltExit`;
  :meth:`FakeVcpu.kick` puts an :class:`accel.InterruptedExit` in front;
* ``log`` records create_vm, create_vcpu, run and the clock calls; ``options`` is the last
  :class:`accel.VmOptions` given to ``create_vm``.

Memory follows the contract: 4 KiB alignment, no overlap between RAM and MMIO regions,
nothing changes on a :class:`~accel.errors.MemoryLayoutError`. The VM clock runs with
host monotonic time and follows the pause/resume contract: ``pause`` caches the value,
``get_clock`` returns the cache while paused, ``set_clock`` while paused replaces it and
``resume`` writes it back. Its flags are the accelerator's ``adjust-clock`` answer; with
``REALTIME`` a written clock catches up the wall time since its ``realtime``.
``FakeVM.fail_clock`` makes clock reads fail like a backend call would; ``clock_writes``
lists what reached the clock.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
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
    InterruptedExit,
    MemoryRegion,
    Registers,
    SpecialRegisters,
    Vcpu,
    VmOptions,
)
from accel.cpustate import CpuidEntry, DebugRegisters, FpuState, MpState, VcpuEvents
from accel.errors import (
    AcceleratorUnavailableError,
    BackendCallError,
    UnsupportedError,
    VcpuStateError,
)
from accel.irqstate import IrqchipState, LapicState, PitState

#: The MSRs a fake vCPU holds, with their reset values (TSC, SYSENTER_CS, MISC_ENABLE,
#: PAT, kvmclock, STAR, LSTAR, KERNEL_GS_BASE).
FAKE_MSRS = {
    0x10: 0,
    0x174: 0,
    0x1A0: 1,
    0x277: 0x0007040600070406,
    0x4B564D00: 0,
    0x4B564D01: 0,
    0xC0000081: 0,
    0xC0000082: 0,
    0xC0000102: 0,
}
#: The CPUID a fake vCPU is given (leaf 1 EDX: FPU, TSC, MSR, APIC; kvmclock leaf).
FAKE_CPUID = (CpuidEntry(1, 0, 0x306A9, 0, 0, 0x311), CpuidEntry(0x40000001, 0, 0x9, 0, 0, 0))


def all_answers(
    default: CapabilityAnswer | None = None, /, **overrides: CapabilityAnswer | bool
) -> CapabilitySet:
    """``default`` (yes) for every capability except the valued ones, interrupt injection
    (no: the fake vCPU does not implement it) and ``overrides``.

    Valued answers: max-vcpus and nr-vcpus 8, tsc-khz 1000, adjust-clock ``TSC_STABLE``.
    An override is named like the member, in either case (``IRQCHIP=...``,
    ``pv_clocksource=False``): an answer, or a bool (False is no, True the yes above).
    """
    base = default or CapabilityAnswer.yes(source="fake")
    valued = {
        Capability.MAX_VCPUS: 8,
        Capability.NR_VCPUS: 8,
        Capability.TSC_KHZ: 1000,
        Capability.ADJUST_CLOCK: int(ClockFlags.TSC_STABLE),
    }
    answers = {cap: base for cap in Capability}
    for cap, value in valued.items():
        answers[cap] = CapabilityAnswer.yes(value, "fake")
    # the fake vCPU has no interrupt injection (a machine then models no interrupt
    # controller of its own): say so unless a test overrides it
    answers[Capability.INTERRUPT_INJECTION] = CapabilityAnswer.no("fake: no injection")
    for name, answer in overrides.items():
        cap = Capability[name.upper()]
        if answer is True:
            answer = CapabilityAnswer.yes(valued.get(cap), "fake")
        elif answer is False:
            answer = CapabilityAnswer.no("fake")
        answers[cap] = answer
    return CapabilitySet(answers)


class FakeAccelerator(Accelerator):
    def __init__(
        self,
        name: str = "fake",
        *,
        availability: Availability | None = None,
        caps: CapabilitySet | None = None,
        script: Iterable[Callable[[FakeVcpu], Exit]] = (),
    ) -> None:
        self.name = name
        self._availability = (
            availability if availability is not None else Availability.ok("fake is always here")
        )
        self._caps = caps if caps is not None else all_answers()
        self.script = list(script)
        self.log: list[str] = []
        self.options: VmOptions | None = None
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
        self.options = options
        self.log.append("create_vm")
        vm = FakeVM(self)
        self.vms.append(vm)
        return vm

    def _close(self) -> None:
        for vm in self.vms:
            vm.close()


class FakeVM(VM):
    accelerator: FakeAccelerator

    def __init__(self, acc: FakeAccelerator) -> None:
        self.accelerator = acc
        self._regions: list[MemoryRegion] = []
        self.mmio: list[tuple[int, int]] = []
        self._vcpus: list[FakeVcpu] = []
        self._flags = acc.capabilities()[Capability.ADJUST_CLOCK].flags
        self._base = 0  # guest ns at _since
        self._since = time.monotonic_ns()
        self._paused = False
        self._cache: ClockData | None = None
        self.fail_clock = False
        self.clock_writes: list[ClockData] = []
        options = acc.options or VmOptions()
        self.irqchip: IrqchipState | None = IrqchipState() if options.irqchip else None
        self.pit: PitState | None = PitState() if options.pit else None
        self.tsc_khz = 2_000_000

    def get_irqchip_state(self) -> IrqchipState:
        if self.irqchip is None:
            return super().get_irqchip_state()
        return copy.deepcopy(self.irqchip)

    def set_irqchip_state(self, state: IrqchipState) -> None:
        if self.irqchip is None:
            super().set_irqchip_state(state)
        self.irqchip = copy.deepcopy(state)

    def get_pit_state(self) -> PitState:
        if self.pit is None:
            return super().get_pit_state()
        return copy.deepcopy(self.pit)

    def set_pit_state(self, state: PitState) -> None:
        if self.pit is None:
            super().set_pit_state(state)
        self.pit = copy.deepcopy(state)

    def get_tsc_khz(self) -> int:
        return self.tsc_khz

    def capabilities(self) -> CapabilitySet:
        self._check_open()
        return self.accelerator.capabilities()

    # -- memory
    def add_memory(self, guest_phys: int, size: int, *, readonly: bool = False) -> MemoryRegion:
        self._check_open()
        self._check_layout(guest_phys, size, what="add_memory")
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
        self._check_open()
        self._check_layout(guest_phys, size, what="add_mmio")
        self.mmio.append((guest_phys, size))

    @property
    def memory_regions(self) -> tuple[MemoryRegion, ...]:
        return tuple(self._regions)

    @property
    def mmio_ranges(self) -> tuple[tuple[int, int], ...]:
        return tuple(self.mmio)

    # -- vCPUs
    def create_vcpu(self, index: int | None = None, *, cpu: CpuSpec | None = None) -> FakeVcpu:
        self._check_open()
        self.accelerator.log.append("create_vcpu")
        vcpu = FakeVcpu(self, len(self._vcpus) if index is None else index)
        self._vcpus.append(vcpu)
        return vcpu

    @property
    def vcpus(self) -> tuple[Vcpu, ...]:
        return tuple(v for v in self._vcpus if not v.closed)

    # -- clock
    def _now(self) -> ClockData:
        if self.fail_clock:
            raise BackendCallError("GET_CLOCK", 5, accelerator=self.accelerator.name)
        realtime = time.time_ns() if self._flags & ClockFlags.REALTIME else 0
        return ClockData(
            self._base + time.monotonic_ns() - self._since, self._flags, realtime=realtime
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
        self.accelerator.log.append("get_clock")
        if self._paused and self._cache is not None:
            return self._cache
        return self._now()

    def set_clock(self, data: ClockData) -> None:
        self._check_open()
        self.accelerator.log.append("set_clock")
        if self._paused:
            self._cache = data
        else:
            self._write(data)

    def pause(self) -> None:
        self._check_open()
        self.accelerator.log.append("pause")
        if not self._paused:
            self._cache = self._now()
            self._paused = True

    def resume(self) -> None:
        self._check_open()
        self.accelerator.log.append("resume")
        if self._paused:
            assert self._cache is not None
            self._write(replace(self._cache, flags=self._cache.flags & ~ClockFlags.HOST_TSC))
            self._paused = False
            self._cache = None

    @property
    def paused(self) -> bool:
        return self._paused

    def _close(self) -> None:
        for vcpu in self._vcpus:
            vcpu.close()


class FakeVcpu(Vcpu):
    vm: FakeVM

    def __init__(self, vm: FakeVM, index: int) -> None:
        self.vm = vm
        self.index = index
        self._regs = Registers(rip=0xFFF0)
        self._sregs = SpecialRegisters()
        self.msrs = dict(FAKE_MSRS)
        self.fpu = FpuState(b"\x7f\x03" + bytes(22) + b"\x80\x1f" + bytes(550))
        self.debug = DebugRegisters()
        self.events = VcpuEvents()
        self.mp_state = MpState.RUNNABLE
        self.lapic: LapicState | None = LapicState(bytes(1024)) if vm.irqchip is not None else None

    def msr_indices(self) -> tuple[int, ...]:
        return tuple(sorted(self.msrs))

    def get_msrs(self, indices: Iterable[int]) -> dict[int, int]:
        out = {}
        for i in indices:
            if i not in self.msrs:
                raise BackendCallError("get_msrs", None, accelerator="fake", msr=i)
            out[i] = self.msrs[i]
        return out

    def set_msrs(self, values: Mapping[int, int]) -> None:
        for i in values:
            if i not in self.msrs:
                raise BackendCallError("set_msrs", None, accelerator="fake", msr=i)
        self.msrs.update(values)

    def get_fpu(self) -> FpuState:
        return self.fpu

    def set_fpu(self, state: FpuState) -> None:
        self.fpu = state

    def get_debug_registers(self) -> DebugRegisters:
        return self.debug

    def set_debug_registers(self, state: DebugRegisters) -> None:
        self.debug = state

    def get_events(self) -> VcpuEvents:
        return self.events

    def set_events(self, events: VcpuEvents) -> None:
        self.events = events

    def get_mp_state(self) -> MpState:
        return self.mp_state

    def set_mp_state(self, state: MpState) -> None:
        self.mp_state = state

    def cpuid(self) -> tuple[CpuidEntry, ...]:
        return FAKE_CPUID

    def get_lapic(self) -> LapicState:
        if self.lapic is None:
            raise UnsupportedError("fake VM has no in-accelerator LAPIC", feature="irqchip")
        return self.lapic

    def set_lapic(self, state: LapicState) -> None:
        if self.lapic is None:
            raise UnsupportedError("fake VM has no in-accelerator LAPIC", feature="irqchip")
        self.lapic = state

    def get_regs(self) -> Registers:
        self._check_open()
        return replace(self._regs)

    def set_regs(self, regs: Registers) -> None:
        self._check_open()
        self._regs = replace(regs)

    def get_sregs(self) -> SpecialRegisters:
        self._check_open()
        return copy.deepcopy(self._sregs)

    def set_sregs(self, sregs: SpecialRegisters) -> None:
        self._check_open()
        self._sregs = copy.deepcopy(sregs)

    def run(self) -> Exit:
        self._check_open()
        if self.vm.paused:
            raise VcpuStateError("the VM is paused")
        acc = self.vm.accelerator
        acc.log.append("run")
        if acc.script:
            return acc.script.pop(0)(self)
        return HaltExit()

    def kick(self) -> None:
        self.vm.accelerator.script.insert(0, lambda _v: InterruptedExit())

    def _close(self) -> None:
        pass


def state_of(vm: VM) -> tuple[object, ...]:
    """Everything a restore could change, for before/after comparisons."""
    return (
        tuple((r.guest_phys, r.size, bytes(r.view)) for r in vm.memory_regions),
        tuple((v.index, v.get_regs(), repr(v.get_sregs())) for v in vm.vcpus),
        vm.paused,
        vm.get_clock().clock if vm.paused else None,
        # the vCPU-state and chip records a fake holds (last: tests index the above)
        tuple(repr(getattr(v, "msrs", None)) + repr(getattr(v, "lapic", None)) for v in vm.vcpus),
        repr(getattr(vm, "irqchip", None)) + repr(getattr(vm, "pit", None)),
    )


# --------------------------------------------------------------------------- registries


def accelerator_plugin(*infos: accel.AcceleratorInfo) -> Any:
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
        factory=factory or (lambda: FakeAccelerator(name, availability=availability, caps=caps)),
        unsupported=unsupported or {},
    )


def registry_with(
    *infos: accel.AcceleratorInfo,
    name: str = "fakes",
    plugins: Iterable[object] = (),
    entry_points: bool = False,
) -> accel.Registry:
    """A registry holding ``plugins`` and, when given, one plugin ``name`` providing ``infos``.

    With ``entry_points`` the installed plugins (the real accelerators' hooks) load too.
    """
    reg = accel.Registry(entry_points=entry_points)
    if infos:
        reg.register(accelerator_plugin(*infos), name=name)
    for plugin in plugins:
        reg.register(plugin)
    return reg
