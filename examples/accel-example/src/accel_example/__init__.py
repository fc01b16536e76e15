"""accel-example: an accel accelerator plugin that lives outside accel's tree.

The ``example`` accelerator runs guests in software by delegating to the accelerator
registered as ``tcg`` (looked up through accel's registry, so this package imports
nothing private). What it adds is a policy of its own: one VM at a time. It declares
the ``multiple-vms`` conformance feature unsupported, so that check skips with the
reason below; every other check must pass.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import accel
from accel import (
    VM,
    Accelerator,
    Availability,
    CapabilitySet,
    ClockData,
    CpuSpec,
    Exit,
    MemoryRegion,
    Registers,
    SpecialRegisters,
    Vcpu,
    VmOptions,
)
from accel.cpustate import CpuidEntry, DebugRegisters, FpuState, MpState, VcpuEvents
from accel.errors import AcceleratorUnavailableError, UnsupportedError

__all__ = ["ExampleAccelerator", "accel_accelerators"]

BACKEND = "tcg"


class ExampleAccelerator(Accelerator):
    """Software emulation, one VM at a time."""

    name = "example"

    def __init__(self) -> None:  # no I/O: accel creates accelerators just to probe them
        self._backend: Accelerator | None = None
        self._vm: ExampleVM | None = None

    def _inner(self) -> Accelerator:
        if self._backend is None:
            try:
                self._backend = accel.default_registry().create(BACKEND)
            except accel.AccelError as exc:
                raise AcceleratorUnavailableError(
                    f"example needs the {BACKEND!r} accelerator: {exc}",
                    accelerator=self.name,
                ) from exc
        return self._backend

    def probe(self) -> Availability:
        self._check_open()
        try:
            inner = self._inner().probe()
        except accel.AccelError as exc:
            return Availability.unavailable(
                str(exc), hint=f"install accel with its {BACKEND} plugin"
            )
        if not inner.available:
            return Availability.unavailable(f"{BACKEND} is unavailable: {inner.reason}", inner.hint)
        return Availability.ok(f"software emulation through {BACKEND}")

    def capabilities(self) -> CapabilitySet:
        self._check_open()
        if not self.probe().available:
            raise AcceleratorUnavailableError(
                "example is not available here", accelerator=self.name
            )
        return self._inner().capabilities()

    def create_vm(self, options: VmOptions | None = None) -> ExampleVM:
        self._check_open()
        if self._vm is not None and not self._vm.closed:
            raise UnsupportedError(
                "the example accelerator runs one VM at a time; close the other VM first",
                accelerator=self.name,
                feature="multiple-vms",
            )
        if not self.probe().available:
            raise AcceleratorUnavailableError(
                "example is not available here", accelerator=self.name
            )
        self._vm = ExampleVM(self, self._inner().create_vm(options))
        return self._vm

    def _close(self) -> None:
        if self._vm is not None:
            self._vm.close()
        if self._backend is not None:
            self._backend.close()


class ExampleVM(VM):
    def __init__(self, accelerator: ExampleAccelerator, inner: VM) -> None:
        self.accelerator = accelerator
        self._inner = inner
        self._vcpus: list[ExampleVcpu] = []

    def capabilities(self) -> CapabilitySet:
        self._check_open()
        return self._inner.capabilities()

    def add_memory(self, guest_phys: int, size: int, *, readonly: bool = False) -> MemoryRegion:
        self._check_open()
        return self._inner.add_memory(guest_phys, size, readonly=readonly)

    def add_mmio(self, guest_phys: int, size: int) -> None:
        self._check_open()
        self._inner.add_mmio(guest_phys, size)

    @property
    def memory_regions(self) -> tuple[MemoryRegion, ...]:
        return self._inner.memory_regions

    @property
    def mmio_ranges(self) -> tuple[tuple[int, int], ...]:
        return self._inner.mmio_ranges

    def create_vcpu(self, index: int | None = None, *, cpu: CpuSpec | None = None) -> ExampleVcpu:
        self._check_open()
        vcpu = ExampleVcpu(self, self._inner.create_vcpu(index, cpu=cpu))
        self._vcpus.append(vcpu)
        return vcpu

    @property
    def vcpus(self) -> tuple[Vcpu, ...]:
        return tuple(v for v in self._vcpus if not v.closed)

    def get_clock(self) -> ClockData:
        self._check_open()
        return self._inner.get_clock()

    def set_clock(self, data: ClockData) -> None:
        self._check_open()
        self._inner.set_clock(data)

    def pause(self) -> None:
        self._check_open()
        self._inner.pause()

    def resume(self) -> None:
        self._check_open()
        self._inner.resume()

    @property
    def paused(self) -> bool:
        return self._inner.paused

    def _close(self) -> None:
        for vcpu in self._vcpus:
            vcpu.close()
        self._inner.close()


class ExampleVcpu(Vcpu):
    def __init__(self, vm: ExampleVM, inner: Vcpu) -> None:
        self.vm = vm
        self.index = inner.index
        self._inner = inner

    def get_regs(self) -> Registers:
        self._check_open()
        return self._inner.get_regs()

    def set_regs(self, regs: Registers) -> None:
        self._check_open()
        self._inner.set_regs(regs)

    def get_sregs(self) -> SpecialRegisters:
        self._check_open()
        return self._inner.get_sregs()

    def set_sregs(self, sregs: SpecialRegisters) -> None:
        self._check_open()
        self._inner.set_sregs(sregs)

    def run(self) -> Exit:
        self._check_open()
        return self._inner.run()

    def kick(self) -> None:
        self._inner.kick()

    # Interrupt injection (Capability.INTERRUPT_INJECTION, which the inner accelerator
    # answers for this one), passed through as it is.
    def interrupt_ready(self) -> bool:
        self._check_open()
        return self._inner.interrupt_ready()

    def inject_interrupt(self, vector: int) -> None:
        self._check_open()
        self._inner.inject_interrupt(vector)

    def inject_nmi(self) -> None:
        self._check_open()
        self._inner.inject_nmi()

    def request_interrupt_window(self, wanted: bool) -> None:
        self._check_open()
        self._inner.request_interrupt_window(wanted)

    # The vCPU state beyond the registers (Capability.VCPU_STATE, which the inner
    # accelerator answers for this one), passed through as it is.
    def msr_indices(self) -> tuple[int, ...]:
        self._check_open()
        return self._inner.msr_indices()

    def get_msrs(self, indices: Iterator[int] | tuple[int, ...] | list[int]) -> dict[int, int]:
        self._check_open()
        return self._inner.get_msrs(indices)

    def set_msrs(self, values: Mapping[int, int]) -> None:
        self._check_open()
        self._inner.set_msrs(values)

    def get_fpu(self) -> FpuState:
        self._check_open()
        return self._inner.get_fpu()

    def set_fpu(self, state: FpuState) -> None:
        self._check_open()
        self._inner.set_fpu(state)

    def get_debug_registers(self) -> DebugRegisters:
        self._check_open()
        return self._inner.get_debug_registers()

    def set_debug_registers(self, state: DebugRegisters) -> None:
        self._check_open()
        self._inner.set_debug_registers(state)

    def get_events(self) -> VcpuEvents:
        self._check_open()
        return self._inner.get_events()

    def set_events(self, events: VcpuEvents) -> None:
        self._check_open()
        self._inner.set_events(events)

    def get_mp_state(self) -> MpState:
        self._check_open()
        return self._inner.get_mp_state()

    def set_mp_state(self, state: MpState) -> None:
        self._check_open()
        self._inner.set_mp_state(state)

    def cpuid(self) -> tuple[CpuidEntry, ...]:
        self._check_open()
        return self._inner.cpuid()

    def _close(self) -> None:
        self._inner.close()


@accel.hookimpl
def accel_accelerators() -> list[accel.AcceleratorInfo]:
    return [
        accel.AcceleratorInfo(
            name="example",
            summary="example out-of-tree plugin: software emulation, one VM at a time",
            factory=ExampleAccelerator,
            priority=5,
            unsupported={
                "multiple-vms": "the example accelerator runs one VM at a time",
            },
        )
    ]
