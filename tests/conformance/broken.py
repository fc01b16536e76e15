"""Deliberately broken accelerators: a real one wrapped, with exactly one thing broken.

:func:`broken_info` wraps the named real accelerator (TCG by default) in delegating
Accelerator/VM/Vcpu classes and breaks the behaviour named by ``breakage``. The
conformance tests run the suite on each and assert that the check meant to catch the
breakage fails.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Callable, Iterator, Mapping
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
    CpuSpec,
    Exit,
    HaltExit,
    InternalErrorExit,
    InterruptWindowExit,
    MemoryRegion,
    MmioExit,
    PortIoExit,
    Registers,
    ShutdownExit,
    SpecialRegisters,
    Vcpu,
    VmOptions,
)
from accel.cpustate import CpuidEntry, DebugRegisters, FpuState, MpState, VcpuEvents
from accel.errors import GuestMemoryError


class WrapAccelerator(Accelerator):
    def __init__(self, inner: Accelerator, name: str, breakage: str) -> None:
        self.inner = inner
        self.name = name
        self.breakage = breakage
        self.vms: list[WrapVM] = []

    @property
    def closed(self) -> bool:
        return self.inner.closed

    def probe(self) -> Availability:
        if self.breakage == "probe-raises":
            raise RuntimeError("probe exploded")
        return self.inner.probe()

    def capabilities(self) -> Any:
        caps = self.inner.capabilities()
        if self.breakage == "unanswered-capability":
            return {c: a for c, a in caps.items() if c is not Capability.XSAVE}
        if self.breakage == "clocksource-without-pv-clock":
            return caps.replace(PV_CLOCKSOURCE=CapabilityAnswer.yes(source="wrong"))
        if self.breakage == "undeclared-unknown":
            return caps.replace(USER_MEMORY=CapabilityAnswer.unknown("cannot tell"))
        return caps

    def create_vm(self, options: VmOptions | None = None) -> WrapVM:
        vm = WrapVM(self, self.inner.create_vm(options))
        self.vms.append(vm)
        return vm

    def _close(self) -> None:
        self.inner.close()


#: breakage -> the factor by which the VM clock runs slow (get divides, set multiplies)
_CLOCK_SCALE: Mapping[str, int] = {"clock-microseconds": 1000, "clock-half-speed": 2}


class WrapVM(VM):
    def __init__(self, acc: WrapAccelerator, inner: VM) -> None:
        self.accelerator = acc
        self.inner = inner
        self.breakage = acc.breakage
        self._vcpus: list[WrapVcpu] = []
        self._paused_at: float | None = None
        self._clock_reads = itertools.count()

    @property
    def closed(self) -> bool:
        return self.inner.closed

    def capabilities(self) -> CapabilitySet:
        caps = self.inner.capabilities()
        if self.breakage == "vm-claims-more":
            host = self.accelerator.capabilities()
            for cap in Capability:
                if host[cap].support is accel.Support.NO:
                    return caps.replace(**{cap.name: CapabilityAnswer.yes(source="wrong")})
        return caps

    def add_memory(self, guest_phys: int, size: int, *, readonly: bool = False) -> MemoryRegion:
        return self.inner.add_memory(guest_phys, size, readonly=readonly)

    def add_mmio(self, guest_phys: int, size: int) -> None:
        self.inner.add_mmio(guest_phys, size)

    @property
    def memory_regions(self) -> tuple[MemoryRegion, ...]:
        return self.inner.memory_regions

    @property
    def mmio_ranges(self) -> tuple[tuple[int, int], ...]:
        return self.inner.mmio_ranges

    def read_memory(self, address: int, size: int) -> bytes:
        if self.breakage == "wrong-memory-after-program" and any(v.halted for v in self._vcpus):
            data = bytearray(self.inner.read_memory(address, size))
            if data:
                data[0] ^= 0xFF
            return bytes(data)
        if self.breakage == "unbounded-memory":
            try:
                return self.inner.read_memory(address, size)
            except GuestMemoryError:
                return bytes(size)
        return self.inner.read_memory(address, size)

    def write_memory(self, address: int, data: bytes | bytearray | memoryview) -> None:
        if self.breakage == "shared-memory":
            assert isinstance(self.accelerator, WrapAccelerator)
            for other in self.accelerator.vms:
                if not other.closed and other.memory_regions:
                    other.inner.write_memory(address, data)
            return
        self.inner.write_memory(address, data)

    def create_vcpu(self, index: int | None = None, *, cpu: CpuSpec | None = None) -> WrapVcpu:
        vcpu = WrapVcpu(self, self.inner.create_vcpu(index, cpu=cpu))
        if self.breakage == "not-reset":
            vcpu.inner.set_regs(Registers(rip=0))
        self._vcpus.append(vcpu)
        return vcpu

    @property
    def vcpus(self) -> tuple[Vcpu, ...]:
        return tuple(v for v in self._vcpus if not v.closed)

    def get_clock(self) -> ClockData:
        data = self.inner.get_clock()
        scale = _CLOCK_SCALE.get(self.breakage)
        if scale is not None:
            return dataclasses.replace(data, clock=data.clock // scale)
        if self.breakage == "clock-backwards":
            return ClockData(max(0, data.clock - next(self._clock_reads) * 1_000_000) + 10**12)
        if self.breakage == "clock-runs-paused" and self._paused_at is not None:
            extra = int((time.monotonic() - self._paused_at) * 1e9)
            return ClockData(data.clock + extra, data.flags)
        return data

    def set_clock(self, data: ClockData) -> None:
        if self.breakage == "paused-set-clock-ignored" and self.inner.paused:
            return
        scale = _CLOCK_SCALE.get(self.breakage)
        if scale is not None:
            data = dataclasses.replace(data, clock=data.clock * scale)
        self.inner.set_clock(data)

    def pause(self) -> None:
        self.inner.pause()
        self._paused_at = time.monotonic()

    def resume(self) -> None:
        self.inner.resume()
        self._paused_at = None

    @property
    def paused(self) -> bool:
        return self.inner.paused

    def _close(self) -> None:
        self.inner.close()


class WrapVcpu(Vcpu):
    def __init__(self, vm: WrapVM, inner: Vcpu) -> None:
        self.vm = vm
        self.inner = inner
        self.index = inner.index
        self.breakage = vm.breakage
        self._last = Registers()
        self.halted = False
        if self.breakage == "no-cs-limit":
            # the TCG plugin's real-mode limit hook switched off: unicorn's own behaviour
            inner._watch_real_mode = lambda: None  # type: ignore[attr-defined]
        self._pio_seen = 0  # port-I/O bytes or accesses seen (the "dropped-port-*" counter)
        self._pending_in: PortIoExit | None = None
        self._mmio_seen = 0
        self._pending_mmio: MmioExit | None = None
        self._window_early = False

    @property
    def closed(self) -> bool:
        return self.inner.closed

    def get_regs(self) -> Registers:
        if self.breakage == "usable-after-close" and self.inner.closed:
            return self._last
        regs = self.inner.get_regs()
        self._last = regs
        if self.breakage == "register-bit-flip":
            regs.rbx ^= 1
        if self.breakage == "wrong-register-after-program" and self.halted:
            regs.rax ^= 0x100
        return regs

    def set_regs(self, regs: Registers) -> None:
        self.inner.set_regs(regs)

    def get_sregs(self) -> SpecialRegisters:
        sregs = self.inner.get_sregs()
        if self.breakage == "real-mode-after-program" and self.halted:
            sregs.cr0 &= ~1
        if self.breakage == "cr2-lost":
            sregs.cr2 = 0
        return sregs

    def set_sregs(self, sregs: SpecialRegisters) -> None:
        if self.breakage == "idt-not-loaded" and sregs.cr0 & 0x80000000:
            # (paging on: the reset state and real-mode programs are left alone)
            sregs = dataclasses.replace(sregs)
            sregs.idt = dataclasses.replace(sregs.idt, base=0, limit=0)
        self.inner.set_sregs(sregs)

    # Interrupt injection (Capability.INTERRUPT_INJECTION, the inner accelerator's).
    def interrupt_ready(self) -> bool:
        return self.inner.interrupt_ready()

    def inject_interrupt(self, vector: int) -> None:
        if self.breakage == "injected-interrupt-lost":
            return
        self.inner.inject_interrupt(vector)

    def inject_nmi(self) -> None:
        self.inner.inject_nmi()

    def request_interrupt_window(self, wanted: bool) -> None:
        if self.breakage == "window-in-sti-shadow" and wanted:
            self._window_early = True
        self.inner.request_interrupt_window(wanted)

    # The vCPU state beyond the registers (Capability.VCPU_STATE, which the inner
    # accelerator answers for this one), passed through as it is.
    def msr_indices(self) -> tuple[int, ...]:
        return self.inner.msr_indices()

    def get_msrs(self, indices: Iterator[int] | tuple[int, ...] | list[int]) -> dict[int, int]:
        return self.inner.get_msrs(indices)

    def set_msrs(self, values: Mapping[int, int]) -> None:
        self.inner.set_msrs(values)

    def get_fpu(self) -> FpuState:
        return self.inner.get_fpu()

    def set_fpu(self, state: FpuState) -> None:
        self.inner.set_fpu(state)

    def get_debug_registers(self) -> DebugRegisters:
        return self.inner.get_debug_registers()

    def set_debug_registers(self, state: DebugRegisters) -> None:
        self.inner.set_debug_registers(state)

    def get_events(self) -> VcpuEvents:
        return self.inner.get_events()

    def set_events(self, events: VcpuEvents) -> None:
        self.inner.set_events(events)

    def get_mp_state(self) -> MpState:
        return self.inner.get_mp_state()

    def set_mp_state(self, state: MpState) -> None:
        self.inner.set_mp_state(state)

    def cpuid(self) -> tuple[CpuidEntry, ...]:
        return self.inner.cpuid()

    def _drop_every_tenth(self, data: bytearray | memoryview, unit: int) -> None:
        """Zero every 10th ``unit``-byte piece of port I/O this vCPU has moved."""
        for i in range(0, len(data), unit):
            self._pio_seen += 1
            if self._pio_seen % 10 == 0:
                data[i : i + unit] = bytes(len(data[i : i + unit]))

    def _pio_unit(self, ex: PortIoExit) -> int:
        return 1 if self.breakage == "dropped-port-byte" else ex.size

    def run(self) -> Exit:
        if self._pending_in is not None:  # the answer to the last IN, lost in part
            pending, self._pending_in = self._pending_in, None
            self._drop_every_tenth(pending.data, self._pio_unit(pending))
        if self._pending_mmio is not None:  # the answer to the last MMIO read, lost
            self._pending_mmio.data[:] = bytes(len(self._pending_mmio.data))
            self._pending_mmio = None
        if self._window_early:  # reports the window before the STI shadow is over
            self._window_early = False
            return InterruptWindowExit()
        ex = self.inner.run()
        if self.breakage.startswith("dropped-port-") and isinstance(ex, PortIoExit):
            if ex.is_write:
                data = bytearray(ex.data)
                self._drop_every_tenth(data, self._pio_unit(ex))
                return PortIoExit(ex.port, ex.size, ex.direction, data, ex.count)
            self._pending_in = ex
        if self.breakage == "dropped-mmio-access" and isinstance(ex, MmioExit):
            self._mmio_seen += 1
            if self._mmio_seen % 10 == 0:
                if ex.is_write:
                    return MmioExit(ex.address, ex.size, True, bytearray(len(ex.data)))
                self._pending_mmio = ex
        if isinstance(ex, HaltExit):
            self.halted = True
            if self.breakage == "halt-as-shutdown":
                return ShutdownExit("triple fault")
        if self.breakage == "unbacked-fetch-halts" and isinstance(ex, InternalErrorExit):
            return HaltExit()
        if self.breakage == "unbacked-fetch-slow" and isinstance(ex, InternalErrorExit):
            time.sleep(1.5)
        if self.breakage == "lost-out-data" and isinstance(ex, PortIoExit) and ex.is_write:
            return PortIoExit(ex.port, ex.size, ex.direction, bytearray(len(ex.data)), ex.count)
        if self.breakage == "lost-in-data" and isinstance(ex, PortIoExit) and not ex.is_write:
            return PortIoExit(ex.port, ex.size, ex.direction, bytearray(len(ex.data)), ex.count)
        if self.breakage == "lost-mmio-write" and isinstance(ex, MmioExit) and ex.is_write:
            return MmioExit(ex.address, ex.size, True, bytearray(len(ex.data)))
        if self.breakage == "lost-mmio-read" and isinstance(ex, MmioExit) and not ex.is_write:
            return MmioExit(ex.address, ex.size, False, bytearray(len(ex.data)))
        return ex

    def kick(self) -> None:
        self.inner.kick()

    def _close(self) -> None:
        self.inner.close()


#: breakage -> (description, declared-unsupported map)
BREAKAGES: Mapping[str, tuple[str, Mapping[str, str]]] = {
    "none": ("nothing is broken (the wrapper's control)", {}),
    "unknown-declaration": ("declares a feature name that does not exist", {"mmmio": "typo"}),
    "probe-raises": ("probe() raises instead of returning a reason", {}),
    "unanswered-capability": ("capabilities() leaves xsave unanswered", {}),
    "undeclared-unknown": ("answers user-memory unknown without declaring it", {}),
    "vm-claims-more": ("a VM claims a capability its host denies", {}),
    "not-reset": ("new vCPUs do not start in the reset state", {}),
    "usable-after-close": ("a closed vCPU still answers get_regs()", {}),
    "shared-memory": ("two VMs share guest memory", {}),
    "unbounded-memory": ("reads outside guest RAM return zeros", {}),
    "register-bit-flip": ("rbx reads back with its low bit flipped", {}),
    "clock-backwards": ("the VM clock goes backwards", {}),
    "clock-runs-paused": ("the VM clock keeps running while paused", {}),
    "wrong-register-after-program": ("rax is wrong after a guest program halts", {}),
    "wrong-memory-after-program": ("guest RAM reads back changed after a HLT", {}),
    "real-mode-after-program": ("CR0.PE reads back clear after a HLT", {}),
    "halt-as-shutdown": ("HLT is reported as a shutdown", {}),
    "unbacked-fetch-halts": ("a fetch from unbacked memory is reported as a HLT", {}),
    "unbacked-fetch-slow": ("a fetch from unbacked memory takes 1.5 s to stop", {}),
    "no-cs-limit": ("a real-mode IP runs past 0xFFFF into the next 64 KiB (unicorn's own)", {}),
    "lost-out-data": ("the data of guest OUTs is lost", {}),
    "lost-in-data": ("the answer to guest INs is lost", {}),
    "lost-mmio-write": ("the data of guest MMIO writes is lost", {}),
    "lost-mmio-read": ("the answer to guest MMIO reads is lost", {}),
    "dropped-port-byte": ("every 10th byte of port I/O (either way) is lost", {}),
    "dropped-port-access": ("every 10th port access (either way) loses its data", {}),
    "dropped-mmio-access": ("every 10th MMIO access (either way) loses its data", {}),
    "clock-microseconds": ("the VM clock counts microseconds as nanoseconds", {}),
    "clock-half-speed": ("the VM clock runs at half speed", {}),
    "paused-set-clock-ignored": ("set_clock() on a paused VM is ignored", {}),
    "pv-clock-without-clocksource": ("kvmclock is offered without a pv clocksource", {}),
    "clocksource-without-pv-clock": ("a pv clocksource but no pv clock device", {}),
    "idt-not-loaded": ("set_sregs() with paging on does not load the IDTR", {}),
    "cr2-lost": ("get_sregs() reads CR2 as 0 (a page fault's address is lost)", {}),
    "injected-interrupt-lost": ("inject_interrupt() drops the interrupt", {}),
    "window-in-sti-shadow": ("the interrupt window opens at once, inside the STI shadow", {}),
}


def broken_info(
    breakage: str, base: str = "tcg", registry: accel.Registry | None = None
) -> accel.AcceleratorInfo:
    """An AcceleratorInfo named ``broken-<breakage>`` wrapping ``base`` with one breakage."""
    reg = registry or accel.default_registry()
    inner_info = reg.info(base)
    description, declared = BREAKAGES[breakage]
    name = f"broken-{breakage}"
    unsupported = {**inner_info.unsupported_features, **declared}

    def factory() -> Accelerator:
        return WrapAccelerator(inner_info.factory(), name, breakage)

    return accel.AcceleratorInfo(
        name=name,
        summary=f"{base}, broken: {description}",
        factory=factory,
        unsupported=unsupported,
    )


def plugin_of(*infos: accel.AcceleratorInfo) -> object:
    """A plugin providing ``infos``; it offers kvmclock to "pv-clock-without-clocksource"."""

    class _Plugin:
        @accel.hookimpl
        def accel_accelerators(self) -> list[accel.AcceleratorInfo]:
            return list(infos)

        @accel.hookimpl
        def accel_clock_devices(
            self, accelerator: Accelerator
        ) -> list[accel.ClockDeviceChoice] | None:
            if getattr(accelerator, "breakage", None) != "pv-clock-without-clocksource":
                return None
            return [accel.ClockDeviceChoice("kvmclock", True, "offered regardless")]

    return _Plugin()


def broken_registry(
    breakages: Callable[[], list[str]] | list[str] | None = None, base: str = "tcg"
) -> accel.Registry:
    """A registry (no entry points) with one broken accelerator per breakage."""
    names = list(BREAKAGES) if breakages is None else breakages
    if callable(names):
        names = names()
    infos = [broken_info(b, base) for b in names]
    reg = accel.Registry(entry_points=False)
    reg.register(plugin_of(*infos), name="broken")
    return reg
