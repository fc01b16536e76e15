"""TCG: software emulation of x86 on unicorn (QEMU's TCG as a library).

How an exit reaches the caller
------------------------------
Unicorn asks for the value of an IN or of an MMIO read *synchronously*, from inside the
instruction, while the contract hands the exit to the caller and takes the answer on the
next :meth:`~accel.Vcpu.run`. ``emu_stop()`` from a hook is not precise: unicorn
finishes the rest of the translation block first (``in al,dx; mov bl,al; hlt`` leaves
BL set and the HLT executed), so stopping and restarting cannot work.

So each vCPU runs its unicorn engine on its own worker thread. ``run()`` hands the
worker a "go" and waits for the next exit. A hook that needs the caller (IN, OUT, MMIO
read or write) posts the exit and blocks until the next ``run()``; that ``run()``
releases it, the hook returns the answer the caller wrote into ``exit.data``, and the
instruction completes exactly where it stopped. The handoff is two
``queue.SimpleQueue`` objects; the engine releases the GIL while it emulates (ctypes),
so engines can run in parallel (``thread=multi``); with ``thread=single`` the vCPUs of a
VM take turns (see Properties below). HLT, faults and :meth:`kick` end ``emu_start``;
the worker maps the reason onto the contract's exits.

Nothing in the handoff blocks without a bound on the worker: ``run()`` counts as running
before it looks at the pause and kick flags (so a concurrent pause or kick is never
missed), notices a worker thread that ended, and a ``run()`` left by an exception hands
the exit it was owed to the next one; an exception on the worker becomes an
:class:`~accel.InternalErrorExit`; ``emu_stop`` (lost when it lands just before
``emu_start`` begins) is retried for kicks and for close; close() works from any thread
and state and waits for the worker at most ``_JOIN_TIMEOUT`` seconds.

While an exit is pending the worker is parked inside the instruction: registers can be
read, but :meth:`TcgVcpu.set_regs` / :meth:`TcgVcpu.set_sregs` raise
:class:`~accel.errors.VcpuStateError` until ``run()`` completes the exit.

``emu_start`` also returns after HLT, which has no hook: a return that no hook, kick or
fault explains is HLT (checked against the 0xF4 byte before RIP when paging is off, so a
stale ``emu_stop`` from a kick that raced with an exit just resumes). RAM and MMIO
ranges cannot be added while a vCPU of the VM is inside ``run()``.

Real mode keeps the code-segment limit unicorn does not: an IP that runs past 0xFFFF
raises #GP(0) through the IVT, as on hardware and KVM (see ``_watch_real_mode``), and
exception frames this module pushes, and :meth:`TcgVM.write_memory`, drop the translated
code of the bytes they overwrite (a host write while a vCPU is parked in an exit takes
effect from the next translation block: the rest of the current one runs as translated).

Properties (``--accel tcg,thread=single,tb-size=64``): every vCPU has its own engine and
worker thread in both modes. ``thread=single`` (the default) lets one vCPU of a VM
emulate at a time, round-robin in instruction-count slices (:mod:`accel_tcg.scheduler`):
unicorn generates code for a single-threaded CPU, so LOCK-prefixed instructions are atomic
across vCPUs only when they do not run at once. ``thread=multi`` runs the engines in
parallel and is therefore refused for a VM with more than one vCPU. ``tb_size`` sets
each engine's translation buffer in MiB.

MSRs, the x87/SSE state (as an XSAVE area), the debug registers, the interrupt shadow
and the MP state are :mod:`accel_tcg.cpustate`'s (Capability.VCPU_STATE).

The guest sees unicorn's CPUID (no KVM paravirtual leaves at 0x40000000, as under QEMU
TCG); :class:`~accel.CpuSpec` flags are recorded on the vCPU but do not filter CPUID.

Exceptions: unicorn does not deliver exceptions itself (its interrupt hook gets the
vector). :mod:`accel_tcg.delivery` does, in every mode: real mode through the IVT; 16- and
32-bit protected mode with paging off or on (interrupt and trap gates, 16- and 32-bit,
privilege change through the TSS); 64-bit long mode (16-byte gates, RSP0-2 and the IST
stacks, SS = NULL, 16-byte alignment); error codes and CR2; a fault while delivering
becomes #DF or is delivered in turn (SDM table 6-5), and a fault while delivering #DF is
a triple fault (:class:`~accel.ShutdownExit`). Task gates and virtual-8086 mode end the
run with an :class:`~accel.InternalErrorExit` that says so. SYSCALL, which unicorn hands to
an instruction hook and otherwise skips as a NOP, is executed by
:func:`accel_tcg.delivery.syscall` (#UD without EFER.SCE).

Injected interrupts (Capability.INTERRUPT_INJECTION): :meth:`TcgVcpu.inject_interrupt`,
:meth:`~TcgVcpu.inject_nmi` and :meth:`~TcgVcpu.request_interrupt_window` are called
between runs; the next run delivers what is due before the guest's next instruction
(through the same delivery code: a vCPU halted in HLT takes it and returns after the
HLT). What must wait -- an interrupt while IF is clear or an STI / MOV SS shadow is on,
a window, an NMI while NMIs are blocked (from an NMI's delivery to the next IRET) -- is
watched for by a per-instruction code hook that exists only while something waits (the
translated code is flushed when it is added and when it goes, so guest compute runs
without it otherwise); in a code hook a register write or ``emu_stop`` takes effect before
the instruction (measured on unicorn 2.1.4), so the window exit and the delivery are at
the exact boundary. One imprecision: an event injected while the vCPU is parked in an
I/O or MMIO exit is taken at the end of that instruction's translation block, since an
I/O callback cannot stop the engine between two instructions (``emu_stop`` there lets the
block finish); if the rest of the block clears IF, the interrupt waits for IF, as one
arriving a few instructions later would.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import mmap
import os
import queue
import struct
import threading
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Final

from accel.accelerator import (
    VM,
    Accelerator,
    Availability,
    ClockData,
    CpuSpec,
    Exit,
    HaltExit,
    InternalErrorExit,
    InterruptedExit,
    InterruptWindowExit,
    IoDirection,
    MemoryRegion,
    MmioExit,
    PortIoExit,
    Registers,
    SpecialRegisters,
    Vcpu,
    VmOptions,
)
from accel.capabilities import Capability, CapabilityAnswer, CapabilitySet
from accel.cpustate import DebugRegisters, FpuState, MpState, VcpuEvents
from accel.errors import (
    AcceleratorUnavailableError,
    BackendCallError,
    CapabilityError,
    InvalidArgumentError,
    VcpuStateError,
)

from ._clock import CLOCK_FLAGS, VirtualClock
from .delivery import ERROR_CODE_VECTORS, Event, deliver, syscall
from .scheduler import RoundRobin

if TYPE_CHECKING:
    # (accel_tcg._state imports unicorn, which TcgAccelerator.probe imports when it is used)
    from ._state import ContextLayout

__all__ = ["MAX_VCPUS", "TcgAccelerator", "TcgVM", "TcgVcpu"]

NAME: Final = "tcg"
#: The ``thread`` property's values (see the module doc and :mod:`accel_tcg.scheduler`).
THREAD_MODES: Final = ("single", "multi")
#: The default translation buffer of each engine (MiB). Unicorn's own, 1 GiB, is a
#: multiple of 2 MiB: Linux aligns such an anonymous mapping on a 2 MiB boundary and the
#: first translated block faults in a whole transparent huge page (QEMU asks for them),
#: 2 of the 2.8 MiB an idle one-vCPU VM costs. A small size that is not a multiple of
#: 2 MiB is not aligned and the idle VM costs 0.83 MiB (measured; docs/performance.md
#: "TCG"); a guest that translates more code than fits flushes the buffer and translates
#: again, as QEMU does when its buffer is full.
DEFAULT_TB_SIZE_MIB: Final = 7
#: vCPUs per VM this plugin supports: one unicorn engine (about 0.8 MiB idle with the
#: default translation buffer) and one worker thread each; the tests create this many.
MAX_VCPUS: Final = 64
#: Guest-physical address width (the CPUID 0x80000008 value unicorn reports is 40 bits).
PHYS_BITS: Final = 40
SOURCE: Final = "software emulation (unicorn)"

#: An emu_start "until" the guest never reaches. The engines run with an empty exit list
#: (accel_tcg._state.new_engine), so unicorn ignores it: with an "until", unicorn translated
#: ``until - 1`` when emu_start ended, and under paging that page fault left its address in
#: the guest's CR2 (a non-canonical value avoided it in long mode, not under 32-bit paging).
_NEVER: Final = 0x7FFF_FFFF_FFFF_FFF0
_GO: Final = 1
_STOP: Final = 2
#: How often run() looks whether its worker thread is still there (seconds).
_POLL: Final = 0.25
#: close() waits this long for a worker thread to end (seconds); the engine stop is
#: retried until then.
_JOIN_TIMEOUT: Final = 10.0
#: First retry of a lost emu_stop, and the longest wait between two (seconds).
_RETRY_FIRST: Final = 0.002
_RETRY_MAX: Final = 0.05

#: The code-segment limit of real mode, and the longest x86 instruction.
_RM_LIMIT: Final = 0xFFFF
_MAX_INSN: Final = 15
#: How much of the end of a real-mode code segment the limit hooks watch (longer than
#: any translation block unicorn makes).
_RM_WINDOW: Final = 0x2000
_FLAGS_IF = 1 << 9
_HF_INHIBIT_IRQ: Final = 1 << 3  # QEMU's HF_INHIBIT_IRQ_MASK (the STI / MOV SS shadow)
_NMI: Final = 2
_CR0_PG = 1 << 31


def _answers() -> CapabilitySet:
    """Truthful host-level answers for software emulation."""
    yes, no = CapabilityAnswer.yes, CapabilityAnswer.no
    return CapabilitySet(
        {
            Capability.USER_MEMORY: yes(
                source="guest RAM is anonymous host memory mapped into unicorn (mem_map_ptr)"
            ),
            Capability.NR_VCPUS: yes(
                os.cpu_count() or 1, source="host CPUs (a worker thread per vCPU)"
            ),
            Capability.MAX_VCPUS: yes(
                MAX_VCPUS, source="limit of this plugin (engine+thread per vCPU)"
            ),
            Capability.IRQCHIP: no(
                source="software emulation: no interrupt controller in the engine"
            ),
            Capability.PIT: no(source="software emulation: no i8254 in the engine"),
            Capability.PV_CLOCKSOURCE: no(
                source="software emulation: no KVM paravirtual CPUID leaves or MSRs (QEMU TCG)"
            ),
            Capability.PV_CLOCKSOURCE_STABLE: no(source="software emulation: no paravirtual clock"),
            Capability.ADJUST_CLOCK: yes(
                int(CLOCK_FLAGS),
                source="virtual clock: host CLOCK_MONOTONIC while running, stopped while paused",
            ),
            Capability.CLOCK_CTRL: no(source="software emulation: no paravirtual clock to notify"),
            Capability.TSC_CONTROL: no(source="unicorn cannot scale the guest TSC"),
            Capability.TSC_KHZ: no(source="unicorn does not report the guest TSC frequency"),
            Capability.IOEVENTFD: no(source="software emulation: every port/MMIO access exits"),
            Capability.IRQFD: no(source="software emulation: no interrupt injection by eventfd"),
            Capability.XSAVE: no(
                source="no extended (AVX and later) XSAVE components: the CPU model has none; "
                "x87/SSE travel in get_fpu's XSAVE area (vcpu-state)"
            ),
            Capability.VM_CAPABILITY_QUERY: yes(source="each TCG VM answers for itself"),
            Capability.INTERRUPT_INJECTION: yes(
                source="external interrupts and NMIs delivered through the guest's IDT at "
                "an instruction boundary (accel_tcg.delivery), interrupt windows"
            ),
            Capability.VCPU_STATE: yes(
                source="unicorn's MSRs (accel_tcg.cpustate.MSR_INDICES), x87/SSE as an XSAVE "
                "area, DR0-3/6/7, the interrupt shadow, RUNNABLE/HALTED"
            ),
        }
    )


class TcgAccelerator(Accelerator):
    """Software x86 emulation on unicorn: available wherever unicorn imports."""

    name = NAME

    def __init__(self, *, thread: str = "single", tb_size: int | None = None) -> None:
        """``thread`` and ``tb_size`` are the ``--accel tcg,thread=...,tb-size=...``
        properties (:data:`accel_tcg.PROPERTIES`): ``single`` (the default) lets one vCPU
        of a VM emulate at a time, round-robin (correct SMP: LOCK-prefixed instructions
        stay atomic); ``multi`` runs each vCPU's engine in parallel and allows one vCPU
        per VM (unicorn's code is not atomic across engines); ``tb_size`` is each
        engine's translation-buffer size in MiB (:data:`DEFAULT_TB_SIZE_MIB` when None)."""
        if thread not in THREAD_MODES:
            raise InvalidArgumentError(
                f"tcg property 'thread' is {thread!r}: it is 'single' (one vCPU of a VM "
                "emulates at a time, round-robin) or 'multi' (engines in parallel, one "
                "vCPU per VM)",
                hint="use thread=single (the default) or thread=multi",
                argument="thread",
                value=thread,
                accelerator=NAME,
            )
        if tb_size is not None and (
            not isinstance(tb_size, int) or isinstance(tb_size, bool) or tb_size < 1
        ):
            raise InvalidArgumentError(
                f"tcg property 'tb-size' must be a positive number of MiB, not {tb_size!r}",
                argument="tb-size",
                value=tb_size,
                accelerator=NAME,
            )
        self.thread = thread
        self.tb_size = DEFAULT_TB_SIZE_MIB if tb_size is None else tb_size
        self._availability: Availability | None = None
        self._layout: ContextLayout | None = None
        self._caps: CapabilitySet | None = None
        self._vms: list[TcgVM] = []
        self._lock = threading.Lock()

    def probe(self) -> Availability:
        if self._availability is None:
            self._availability = self._probe()
        return self._availability

    def _probe(self) -> Availability:
        try:
            _state = importlib.import_module(f"{__package__}._state")
        except ImportError as exc:  # pragma: no cover - exercised by a monkeypatched import
            return Availability.unavailable(
                f"unicorn does not import: {exc}",
                hint="install it: pip install 'unicorn>=2.0.1'",
                error=str(exc),
            )
        try:
            self._layout = _state.find_layout()
        except Exception as exc:  # a unicorn build this plugin does not understand
            return Availability.unavailable(
                f"unicorn {_state.U.__version__}: {exc}",
                hint="install a unicorn 2.x release known to work (2.1.4 is tested)",
                error=str(exc),
            )
        return Availability.ok(f"unicorn {_state.U.__version__}", unicorn=_state.U.__version__)

    def _require(self) -> ContextLayout:
        self._check_open()
        avail = self.probe()
        if not avail or self._layout is None:
            raise AcceleratorUnavailableError(
                f"tcg is unavailable: {avail.reason}",
                hint=avail.hint,
                accelerator=NAME,
                reason=avail.reason,
            )
        return self._layout

    def capabilities(self) -> CapabilitySet:
        self._require()
        if self._caps is None:
            self._caps = _answers()
        return self._caps

    def create_vm(self, options: VmOptions | None = None) -> TcgVM:
        layout = self._require()
        opts = options or VmOptions()
        for wanted, cap in ((opts.irqchip, Capability.IRQCHIP), (opts.pit, Capability.PIT)):
            if wanted:
                raise CapabilityError(
                    f"tcg has no {cap.value}: {self.capabilities()[cap].source}",
                    hint=f"create the VM without {cap.value}=True; machines add the device model",
                    accelerator=NAME,
                    capability=cap,
                )
        vm = TcgVM(self, layout, self.capabilities())
        with self._lock:
            self._vms.append(vm)
        return vm

    def _forget(self, vm: TcgVM) -> None:
        with self._lock:
            if vm in self._vms:
                self._vms.remove(vm)

    def _close(self) -> None:
        with self._lock:
            vms = list(self._vms)
        for vm in vms:
            vm.close()


class _Ram:
    """A RAM region: host memory (anonymous mmap) plus its address for unicorn."""

    __slots__ = ("address", "buffer", "region")

    def __init__(self, region: MemoryRegion, buffer: mmap.mmap, address: int) -> None:
        self.region = region
        self.buffer = buffer
        self.address = address


def _host_address(buffer: mmap.mmap) -> int:
    import ctypes

    anchor = ctypes.c_char.from_buffer(buffer)
    try:
        return ctypes.addressof(anchor)
    finally:
        del anchor


class TcgVM(VM):
    """A TCG VM: RAM and MMIO ranges shared by its vCPUs, and a virtual clock."""

    _phys_bits = PHYS_BITS

    def __init__(self, accelerator: TcgAccelerator, layout: ContextLayout, caps: CapabilitySet):
        self.accelerator = accelerator
        self._tb_size = accelerator.tb_size
        self._layout = layout
        self._caps = caps
        self._ram: list[_Ram] = []
        self._mmio: list[tuple[int, int]] = []
        self._vcpus: list[TcgVcpu] = []
        self._next_slot = 0
        self._clock = VirtualClock()
        self._paused = False
        self._lock = threading.RLock()
        #: thread=single: the token one vCPU holds while it emulates (None for multi)
        self._scheduler = RoundRobin() if accelerator.thread == "single" else None

    # -- capabilities
    def capabilities(self) -> CapabilitySet:
        self._check_open()
        return self._caps

    # -- memory
    def _check_quiet(self, what: str) -> None:
        busy = [c.index for c in self._vcpus if c._running or c._in_flight]
        if busy:
            raise VcpuStateError(
                f"{what}: vCPU(s) {busy} are running; the engine cannot be remapped under them",
                hint="pause the VM (or kick the vCPUs) and change the layout between runs",
                accelerator=NAME,
            )

    def add_memory(self, guest_phys: int, size: int, *, readonly: bool = False) -> MemoryRegion:
        self._check_open()
        with self._lock:
            self._check_quiet("add_memory")
            self._check_layout(guest_phys, size, what="add_memory")
            try:
                buffer = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
            except (OSError, MemoryError, OverflowError) as exc:
                raise BackendCallError(
                    "mmap",
                    getattr(exc, "errno", None),
                    accelerator=NAME,
                    detail=f"cannot map {size:#x} bytes of guest RAM at {guest_phys:#x}",
                ) from exc
            region = MemoryRegion(
                guest_phys, size, memoryview(buffer), readonly=readonly, slot=self._next_slot
            )
            ram = _Ram(region, buffer, _host_address(buffer))
            mapped: list[TcgVcpu] = []
            try:
                for cpu in self._vcpus:
                    cpu._map_ram(ram)
                    mapped.append(cpu)
            except BaseException:
                for cpu in mapped:
                    cpu._unmap(guest_phys, size)
                region.view.release()
                buffer.close()
                raise
            self._next_slot += 1
            self._ram.append(ram)
            self._ram.sort(key=lambda r: r.region.guest_phys)
            return region

    def add_mmio(self, guest_phys: int, size: int) -> None:
        self._check_open()
        with self._lock:
            self._check_quiet("add_mmio")
            self._check_layout(guest_phys, size, what="add_mmio")
            mapped: list[TcgVcpu] = []
            try:
                for cpu in self._vcpus:
                    cpu._map_mmio(guest_phys, size)
                    mapped.append(cpu)
            except BaseException:
                for cpu in mapped:
                    cpu._unmap(guest_phys, size)
                raise
            self._mmio.append((guest_phys, size))

    def write_memory(self, address: int, data: bytes | bytearray | memoryview) -> None:
        """Write guest RAM, and make every vCPU drop code it translated from those bytes
        (the engine does not see host writes: without this a vCPU would run the old code,
        where KVM runs the new)."""
        super().write_memory(address, data)
        for cpu in list(self._vcpus):
            cpu._drop_code(address, address + len(data))

    @property
    def memory_regions(self) -> tuple[MemoryRegion, ...]:
        self._check_open()
        return tuple(r.region for r in self._ram)

    @property
    def mmio_ranges(self) -> tuple[tuple[int, int], ...]:
        """Declared MMIO ranges as ``(guest_phys, size)``."""
        self._check_open()
        return tuple(self._mmio)

    # -- vCPUs
    def create_vcpu(self, index: int | None = None, *, cpu: CpuSpec | None = None) -> TcgVcpu:
        self._check_open()
        with self._lock:
            used = {c.index for c in self._vcpus}
            if index is None:
                index = next(i for i in range(len(used) + 1) if i not in used)
            if not isinstance(index, int) or index < 0:
                raise InvalidArgumentError(
                    f"vCPU index must be a non-negative int, not {index!r}",
                    argument="index",
                    value=index,
                )
            if index in used:
                raise InvalidArgumentError(
                    f"vCPU {index} already exists", argument="index", value=index
                )
            if len(self._vcpus) >= MAX_VCPUS or index >= MAX_VCPUS:
                raise CapabilityError(
                    f"tcg supports at most {MAX_VCPUS} vCPUs per VM (indexes 0..{MAX_VCPUS - 1})",
                    hint="create another VM for more vCPUs",
                    accelerator=NAME,
                    capability=Capability.MAX_VCPUS,
                )
            self._check_smp(index)
            vcpu = _new_vcpu(self, index, cpu or CpuSpec(), self._layout)
            try:
                for ram in self._ram:
                    vcpu._map_ram(ram)
                for start, size in self._mmio:
                    vcpu._map_mmio(start, size)
            except BaseException:
                vcpu.close()
                raise
            self._vcpus.append(vcpu)
            self._start_slicing()
            return vcpu

    def _check_smp(self, index: int) -> None:
        """thread=multi runs the engines in parallel, where a LOCK-prefixed instruction is
        not atomic (see accel_tcg.scheduler): a second vCPU is refused."""
        if self._scheduler is None and self._vcpus:
            raise CapabilityError(
                f"vcpu {index}: tcg thread=multi runs each vCPU's engine in parallel, and "
                "unicorn's generated code is not atomic across engines (LOCK XADD/CMPXCHG "
                "lose updates), so a multi-threaded VM has one vCPU",
                hint="use --accel tcg,thread=single (the default) for SMP guests",
                accelerator=NAME,
                capability=Capability.MAX_VCPUS,
            )

    def _start_slicing(self) -> None:
        """A second vCPU: one already inside emu_start runs without a time slice (one-vCPU
        VMs run unsliced) and would never hand the token on, so it is kicked
        (InterruptedExit) and its next run() is sliced."""
        if self._scheduler is not None and len(self._vcpus) == 2:
            for cpu in self._vcpus:
                if cpu._in_flight:
                    cpu.kick()

    @property
    def vcpus(self) -> tuple[TcgVcpu, ...]:
        self._check_open()
        return tuple(self._vcpus)

    def _forget(self, vcpu: TcgVcpu) -> None:
        with self._lock:
            if vcpu in self._vcpus:
                self._vcpus.remove(vcpu)

    # -- clock
    def get_clock(self) -> ClockData:
        self._check_open()
        return self._clock.read()

    def set_clock(self, data: ClockData) -> None:
        self._check_open()
        if not isinstance(data, ClockData) or data.clock < 0:
            raise InvalidArgumentError(
                f"set_clock needs a ClockData with a non-negative clock, not {data!r}",
                argument="data",
                value=data,
            )
        self._clock.write(data)

    def pause(self) -> None:
        self._check_open()
        with self._lock:
            if self._paused:
                return
            self._paused = True
            self._clock.stop()
            for cpu in self._vcpus:
                if cpu._running:
                    cpu.kick()

    def resume(self) -> None:
        self._check_open()
        with self._lock:
            if not self._paused:
                return
            self._clock.start()
            self._paused = False

    @property
    def paused(self) -> bool:
        return self._paused

    def _close(self) -> None:
        cpus = list(self._vcpus)
        for cpu in cpus:  # all workers stop at once, and share one bounded wait
            cpu._request_close()
        for cpu in cpus:
            cpu.close()
        for ram in self._ram:
            ram.region.view.release()
            with contextlib.suppress(BufferError):  # a caller holds a view: the GC frees it
                ram.buffer.close()
        self._ram.clear()
        self._mmio.clear()
        acc = self.accelerator
        if isinstance(acc, TcgAccelerator):
            acc._forget(self)


def _guest_store(uc: Any, address: int, data: bytes) -> None:
    """Write ``data`` as a guest store would: translated code cached for those bytes is
    dropped (``mem_write`` alone leaves it, so a guest that runs the stack its exception
    frame was pushed on would run the bytes that were there before)."""
    uc.mem_write(address, data)
    uc.ctl_remove_cache(address, address + len(data))


def _new_vcpu(vm: TcgVM, index: int, cpu: CpuSpec, layout: ContextLayout) -> TcgVcpu:
    """A :class:`TcgVcpu`; the engine's failures (unicorn out of memory) are a
    :class:`BackendCallError`, not a bare ``UcError``/``OSError``."""
    from ._state import U

    try:
        return TcgVcpu(vm, index, cpu, layout)
    except (U.UcError, OSError, MemoryError) as exc:
        raise BackendCallError(
            "uc_open",
            getattr(exc, "errno", None) if isinstance(exc, OSError) else None,
            accelerator=NAME,
            detail=f"vcpu {index}: {exc}",
        ) from exc


class TcgVcpu(Vcpu):
    """One emulated x86 CPU: a unicorn engine driven by a worker thread (see module doc)."""

    def __init__(self, vm: TcgVM, index: int, cpu: CpuSpec, layout: ContextLayout) -> None:
        from . import _state

        U, x86 = _state.U, _state.x86

        self.vm = vm
        self.index = index
        self.cpu = cpu
        self._layout = layout
        self._apic_base = 0xFEE00900 if index == 0 else 0xFEE00800
        self._uc: Any = _state.new_engine(vm._tb_size)
        self._to_worker: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._to_caller: queue.SimpleQueue[Exit | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._pending: Exit | None = None
        self._running = False  # a caller is inside run()
        self._in_flight = False  # the worker owes run() an exit
        self._kick = False
        self._closing = False
        self._close_deadline = 0.0
        self._event: Exit | None = None
        self._resume_at: int | None = None
        self._fault: tuple[int, int, int] | None = None
        # The real-mode CS limit (see _hook_block): the block hook while the vCPU runs in
        # real mode, and the per-instruction hook over a block that crosses the limit.
        self._stale: list[tuple[int, int]] = []  # host-written ranges (see _drop_code)
        self._rm_bases: frozenset[int] = frozenset()
        self._rm_hooks: list[int] = []
        self._limit_hooks: dict[int, int] = {}
        self._restart = False
        self._halted = False  # the last run() ended at HLT (MpState.HALTED)
        self._sliced = False  # the current emu_start has a time slice (thread=single SMP)
        self._scheduler = vm._scheduler  # the VM's token (thread=single) or None
        self._slice_ends = 0  # time slices this vCPU used up (a count, for tests/bench)
        self._peers = vm._vcpus  # the VM's vCPUs (the list itself: it grows)
        # Interrupt injection (see "Injected interrupts" in the module doc)
        self._irq: int | None = None  # an injected external interrupt not yet delivered
        self._nmi_pending = False
        self._nmi_blocked = False  # from an NMI's delivery to the next IRET
        self._iret_ran = False  # the watch hook saw an IRET start (NMI blocked)
        self._window = False  # request_interrupt_window(True)
        self._watch: int | None = None  # the UC_HOOK_CODE armed while an event waits
        self._events_stop = False  # emu_stop for an injected event (not a HLT)
        uc = self._uc
        uc.hook_add(U.UC_HOOK_INSN, self._hook_in, None, 1, 0, x86.UC_X86_INS_IN)
        uc.hook_add(U.UC_HOOK_INSN, self._hook_out, None, 1, 0, x86.UC_X86_INS_OUT)
        uc.hook_add(U.UC_HOOK_INTR, self._hook_intr)
        uc.hook_add(U.UC_HOOK_INSN, self._hook_syscall, None, 1, 0, x86.UC_X86_INS_SYSCALL)
        uc.hook_add(U.UC_HOOK_MEM_INVALID, self._hook_invalid)
        self._reset()

    def _reset(self) -> None:
        """The x86 architectural reset state (as the contract and KVM define it)."""
        from . import _state

        _state.write_sregs(self._uc, self._layout, SpecialRegisters(apic_base=self._apic_base))
        _state.write_regs(self._uc, Registers(rip=0xFFF0, rflags=0x2, rdx=0x600))
        from .cpustate import reset_fpu

        reset_fpu(self._uc)

    def _backend(self, call: str, exc: Exception) -> BackendCallError:
        return BackendCallError(call, None, accelerator=NAME, detail=str(exc))

    # -- memory mapping (called by the VM)
    def _map_ram(self, ram: _Ram) -> None:
        from ._state import U

        perms = U.UC_PROT_READ | U.UC_PROT_EXEC if ram.region.readonly else U.UC_PROT_ALL
        try:
            self._uc.mem_map_ptr(ram.region.guest_phys, ram.region.size, perms, ram.address)
        except U.UcError as exc:
            raise self._backend("uc_mem_map_ptr", exc) from exc

    def _map_mmio(self, start: int, size: int) -> None:
        from ._state import U

        try:
            self._uc.mmio_map(start, size, self._mmio_read, start, self._mmio_write, start)
        except U.UcError as exc:
            raise self._backend("uc_mmio_map", exc) from exc

    def _unmap(self, start: int, size: int) -> None:
        from ._state import U

        with contextlib.suppress(U.UcError):
            self._uc.mem_unmap(start, size)

    # -- registers
    def _check_settable(self) -> None:
        self._check_open()
        if self._pending is not None or self._running or self._in_flight:
            raise VcpuStateError(
                f"vcpu {self.index}: registers cannot be set while "
                + (
                    "it runs"
                    if self._running or self._in_flight
                    else f"an exit is pending ({self._pending!r})"
                ),
                hint="call run() to complete the pending exit first (the engine is parked "
                "inside the instruction)",
                accelerator=NAME,
            )

    def get_regs(self) -> Registers:
        self._check_open()
        from . import _state

        return _state.read_regs(self._uc)

    def set_regs(self, regs: Registers) -> None:
        self._check_settable()
        from . import _state

        _state.write_regs(self._uc, regs)

    def get_sregs(self) -> SpecialRegisters:
        self._check_open()
        from . import _state

        return _state.read_sregs(self._uc, self._layout, self._apic_base)

    def set_sregs(self, sregs: SpecialRegisters) -> None:
        self._check_settable()
        from . import _state

        _state.write_sregs(self._uc, self._layout, sregs)
        self._apic_base = sregs.apic_base

    # -- state beyond the registers (accel_tcg.cpustate; setters as set_regs: not while
    #    the vCPU runs or an exit is pending)
    def msr_indices(self) -> tuple[int, ...]:
        self._check_open()
        from .cpustate import MSR_INDICES

        return MSR_INDICES

    def get_msrs(self, indices: Iterator[int] | tuple[int, ...] | list[int]) -> dict[int, int]:
        self._check_open()
        from . import cpustate

        return cpustate.read_msrs(self._uc, indices)

    def set_msrs(self, values: Mapping[int, int]) -> None:
        self._check_settable()
        from . import cpustate

        cpustate.write_msrs(self._uc, values)

    def get_fpu(self) -> FpuState:
        self._check_open()
        from . import cpustate

        return cpustate.read_fpu(self._uc)

    def set_fpu(self, state: FpuState) -> None:
        self._check_settable()
        from . import cpustate

        cpustate.write_fpu(self._uc, state)

    def get_debug_registers(self) -> DebugRegisters:
        self._check_open()
        from . import cpustate

        return cpustate.read_debug_registers(self._uc)

    def set_debug_registers(self, state: DebugRegisters) -> None:
        self._check_settable()
        from . import cpustate

        cpustate.write_debug_registers(self._uc, state)

    def get_events(self) -> VcpuEvents:
        """The interrupt shadow (the engine's), and the injected interrupt not yet
        delivered (``interrupt_injected``/``interrupt_nr``), a held NMI (``nmi_pending``)
        and NMI blocking until the next IRET (``nmi_masked``), which are this plugin's."""
        self._check_open()
        from . import cpustate

        events = cpustate.read_events(self._uc, self._layout)
        return dataclasses.replace(
            events,
            interrupt_injected=self._irq is not None,
            interrupt_nr=self._irq or 0,
            nmi_pending=self._nmi_pending,
            nmi_masked=self._nmi_blocked,
        )

    def set_events(self, events: VcpuEvents) -> None:
        self._check_settable()
        from . import cpustate

        if not isinstance(events, VcpuEvents):
            cpustate.write_events(self._uc, self._layout, events)  # (raises: the type)
            return
        if events.interrupt_injected and not 0 <= events.interrupt_nr <= 255:
            raise InvalidArgumentError(
                f"interrupt_nr {events.interrupt_nr!r} is not a vector 0..255",
                argument="interrupt_nr",
                value=events.interrupt_nr,
                accelerator=NAME,
            )
        engine = dataclasses.replace(
            events,
            interrupt_injected=False,
            interrupt_nr=0,
            interrupt_soft=events.interrupt_soft and not events.interrupt_injected,
            nmi_pending=False,
            nmi_masked=False,
        )
        cpustate.write_events(self._uc, self._layout, engine)
        self._irq = events.interrupt_nr if events.interrupt_injected else None
        self._nmi_pending = events.nmi_pending
        self._nmi_blocked = events.nmi_masked
        self._iret_ran = False

    def get_mp_state(self) -> MpState:
        """HALTED from a HaltExit until the next run(), else RUNNABLE."""
        self._check_open()
        return MpState.HALTED if self._halted else MpState.RUNNABLE

    def set_mp_state(self, state: MpState) -> None:
        """RUNNABLE or HALTED (the next run() resumes after the HLT either way); the INIT
        and SIPI states are the machine's interrupt controller's to model."""
        self._check_settable()
        if state not in (MpState.RUNNABLE, MpState.HALTED):
            raise InvalidArgumentError(
                f"vcpu {self.index}: a tcg vCPU is RUNNABLE or HALTED, not {state!r}",
                hint="INIT/SIPI are the machine's: set the registers at the SIPI vector and "
                "run the vCPU",
                argument="state",
                value=state,
            )
        self._halted = state is MpState.HALTED

    # -- interrupt injection (Capability.INTERRUPT_INJECTION; between runs, on the thread
    #    that runs the vCPU)
    def _interruptible(self) -> bool:
        """RFLAGS.IF is set and no STI / MOV SS shadow is on (any thread)."""
        from . import _state

        uc = self._uc
        if not int(uc.reg_read(_state.x86.UC_X86_REG_EFLAGS)) & _FLAGS_IF:
            return False
        (hflags,) = struct.unpack_from("<I", bytes(uc.context_save()), self._layout.hflags)
        return not hflags & _HF_INHIBIT_IRQ

    def interrupt_ready(self) -> bool:
        self._check_open()
        return self._irq is None and self._interruptible()

    def inject_interrupt(self, vector: int) -> None:
        self._check_open()
        if not isinstance(vector, int) or isinstance(vector, bool) or not 0 <= vector <= 255:
            raise InvalidArgumentError(
                f"vcpu {self.index}: an interrupt vector is an int in 0..255, not {vector!r}",
                argument="vector",
                value=vector,
                accelerator=NAME,
            )
        if self._irq is not None:
            raise VcpuStateError(
                f"vcpu {self.index}: vector {self._irq} is still waiting to be delivered",
                hint="inject only when interrupt_ready() is true; else request an interrupt window",
                accelerator=NAME,
            )
        if not self._interruptible():
            raise VcpuStateError(
                f"vcpu {self.index}: the guest cannot take an interrupt now (RFLAGS.IF is "
                "clear or an STI / MOV SS shadow is on)",
                hint="request_interrupt_window(True) and inject at the InterruptWindowExit",
                accelerator=NAME,
            )
        self._irq = vector

    def inject_nmi(self) -> None:
        self._check_open()
        self._nmi_pending = True

    def request_interrupt_window(self, wanted: bool) -> None:
        self._check_open()
        self._window = bool(wanted)

    # -- run
    def run(self) -> Exit:
        self._check_open()
        # Published before the paused, kick and closed checks: pause(), kick() and close()
        # set their flag first and look at _running second, so whichever of the two sides
        # comes second sees the other. (Checked the other way round, a pause landing
        # while run() started the worker thread left the vCPU in the guest of a paused
        # VM, and run() never returned.)
        self._running = True
        try:
            ex = self._run()
            self._halted = isinstance(ex, HaltExit)
            return ex
        finally:
            self._running = False

    def _run(self) -> Exit:
        self._check_open()  # closed by another thread since the first check
        if self.vm.paused:
            raise VcpuStateError(
                f"vcpu {self.index}: the VM is paused",
                hint="call vm.resume() before running vCPUs",
                accelerator=NAME,
            )
        if not self._in_flight:
            if self._kick:
                self._kick = False
                return InterruptedExit()
            thread = self._thread
            if thread is None or not thread.is_alive():
                thread = threading.Thread(
                    target=self._worker, name=f"tcg-vcpu{self.index}", daemon=True
                )
                thread.start()
                self._thread = thread  # after start(): close() may join it at once
            self._pending = None
            self._in_flight = True
            self._to_worker.put(_GO)
        elif self._kick and not self._sliced:
            # a run left by an exception (KeyboardInterrupt) is still going: this run
            # takes its exit over, and the kick has to stop the engine (a sliced one
            # stops at the end of its slice)
            self._stop_engine()
        ex = self._wait_for_worker()
        self._in_flight = False
        if ex is None:  # closed from another thread while running
            return InterruptedExit()
        if isinstance(ex, InterruptedExit):
            self._kick = False
        elif isinstance(ex, (PortIoExit, MmioExit)):
            self._pending = ex
        return ex

    def _wait_for_worker(self) -> Exit | None:
        """The worker's next exit; never blocks on a worker that has gone away."""
        get = self._to_caller.get
        thread = self._thread
        while True:
            try:
                return get(timeout=_POLL)
            except queue.Empty:
                pass
            if self._closing and time.monotonic() > self._close_deadline:
                return None  # the worker did not stop in time: close() gave up on it
            if thread is not None and thread.is_alive():
                continue
            with contextlib.suppress(queue.Empty):
                return get(timeout=0)  # posted just before it ended
            if self._closing:
                return None
            return InternalErrorExit(
                "internal-error", 0, f"tcg: the worker thread of vcpu {self.index} ended"
            )

    def kick(self) -> None:
        self._kick = True
        scheduler = self._scheduler
        if scheduler is not None:
            scheduler.wake()  # a worker waiting for its turn gives up at once
        # Only a worker that owes an exit can be inside emu_start. Otherwise the flag is
        # enough (run() and the worker look at it before emulating), and an emu_stop
        # would stay pending in an engine parked in a hook and cut the next run short.
        # A sliced engine (thread=single, several vCPUs) is not stopped either: it sees
        # the flag at the end of its slice, between two instructions, where an emu_stop
        # can land inside a read-modify-write instruction and make it run twice
        # (accel_tcg.scheduler).
        if self._in_flight and not self._sliced:
            self._stop_engine()

    def _stop_engine(self, attempt: int = 0) -> None:
        """``emu_stop``, retried while a kick or close still wants the engine stopped.

        ``emu_stop`` is lost when it lands just before ``emu_start`` begins (unicorn
        clears its stop request there), so it is repeated, backing off, until the run
        ends (kick), or the worker thread ends or the close deadline passes (close).
        """
        uc = self._uc
        if uc is not None:
            with contextlib.suppress(Exception):
                uc.emu_stop()
        if self._stop_wanted():
            delay = min(_RETRY_FIRST * (2**attempt), _RETRY_MAX)
            timer = threading.Timer(delay, self._retry_stop, (attempt + 1,))
            timer.daemon = True
            timer.start()

    def _stop_wanted(self) -> bool:
        thread = self._thread
        if thread is None or not thread.is_alive():
            return False  # nothing in emu_start; a new worker checks the flags first
        if self._closing:
            return time.monotonic() < self._close_deadline
        return self._in_flight and self._kick and not self._sliced

    def _retry_stop(self, attempt: int) -> None:
        if self._stop_wanted():
            self._stop_engine(attempt)

    # -- worker thread
    def _worker(self) -> None:
        get, put = self._to_worker.get, self._to_caller.put
        while get() != _STOP:
            try:
                ex = self._emulate()
            except Exception as exc:  # never end without an answer: run() waits for one
                ex = (
                    None
                    if self._closing
                    else InternalErrorExit(
                        "internal-error",
                        0,
                        f"tcg: {type(exc).__name__} while emulating vcpu {self.index}: {exc}",
                    )
                )
            put(ex)
            if ex is None:
                return

    def _wait_for_caller(self, ex: Exit) -> bool:
        """Post ``ex`` and park until the next run(); False when the vCPU is closing.

        Parked, the vCPU does not hold the VM's emulation token (thread=single): the other
        vCPUs run while its caller handles the exit; it waits for its turn to go on.

        Once closing, nothing parks: ``emu_stop`` from an I/O hook lets the rest of the
        translation block run, and a second OUT there would wait for a "go" that never
        comes (close() then waited its whole timeout)."""
        if self._closing:
            return False
        self._end_turn()
        self._to_caller.put(ex)
        if self._to_worker.get() == _STOP or not self._take_turn(kickable=False):
            self._closing = True
            uc = self._uc
            if uc is not None:
                uc.emu_stop()
            return False
        self._flush_stale()  # the caller may have written guest code meanwhile
        if self._watch is None and (self._irq is not None or self._nmi_pending or self._window):
            # injected while parked in an exit: an I/O callback cannot stop between two
            # instructions, so the engine stops at the end of this translation block and
            # the event is taken there (or watched for: see "Injected interrupts")
            uc = self._uc
            if uc is not None:
                self._events_stop = True
                uc.emu_stop()
        return True

    # -- injected events (worker thread)
    def _events_due(self) -> bool:
        """An injected event the guest can take now (or an interrupt window that is open)."""
        if self._nmi_pending and not self._nmi_blocked:
            return True
        if self._irq is None and not self._window:
            return False
        return self._interruptible()

    def _take_events(self, *, in_hook: bool = False) -> Exit | None:
        """Deliver what is due (an NMI, then the injected interrupt), report an open
        window; arm or disarm the watch hook for what must wait. An exit ends the run."""
        if self._nmi_pending and not self._nmi_blocked:
            self._nmi_pending = False
            out = self._deliver(_NMI, Event(_NMI, external=True))
            if out is not None:
                return out
        if self._irq is not None or self._window:
            open_ = self._interruptible()
            if self._irq is not None and open_:
                vector, self._irq = self._irq, None
                out = self._deliver(vector, Event(vector, external=True))
                if out is not None:
                    return out
                open_ = self._interruptible()  # (an interrupt gate cleared IF)
            if self._window and self._irq is None and open_:
                return InterruptWindowExit()
        wanted = self._irq is not None or self._window or self._nmi_blocked or self._nmi_pending
        if not in_hook:
            self._arm_watch(wanted)
        elif not wanted:
            self._events_stop = True
            self._uc.emu_stop()  # (precise in a code hook) the loop disarms the watch
        return None

    def _arm_watch(self, on: bool) -> None:
        """Add or remove the per-instruction hook that waits for IF / the end of a shadow
        / an IRET; the translated code is flushed so that it is (or no longer is) called."""
        from ._state import U

        uc = self._uc
        if on and self._watch is None:
            self._watch = uc.hook_add(U.UC_HOOK_CODE, self._hook_watch, None, 1, 0)
            uc.ctl_flush_tb()
        elif not on and self._watch is not None:
            uc.hook_del(self._watch)
            self._watch = None
            uc.ctl_flush_tb()

    def _hook_watch(self, uc: Any, address: int, size: int, _ud: object) -> None:
        """Before each instruction while an event waits: NMIs unblock after an IRET, and
        what is due is delivered here (a register write in a code hook takes effect before
        the instruction) or, for a window, the run stops here (emu_stop in a code hook is
        precise: measured on unicorn 2.1.4)."""
        if self._nmi_blocked:
            if self._iret_ran:
                self._iret_ran = False
                self._nmi_blocked = False
            elif self._is_iret(address):
                self._iret_ran = True
        out = self._take_events(in_hook=True)
        if out is not None:
            self._event = out
            uc.emu_stop()

    def _is_iret(self, linear: int) -> bool:
        from .paging import linear_to_physical

        physical = linear_to_physical(self._uc, linear)
        if physical is None:
            return False
        try:
            code = bytes(self._uc.mem_read(physical, 4))
        except Exception:
            return False
        for byte in code:
            if byte == 0xCF:
                return True
            if byte != 0x66 and not 0x40 <= byte <= 0x4F:  # operand size, REX.W
                return False
        return False

    # -- thread=single: the VM's emulation token (accel_tcg.scheduler; worker thread)
    def _take_turn(self, *, kickable: bool = True) -> bool:
        """Wait until this vCPU may emulate; False when it is closed (or, if
        ``kickable``, kicked) meanwhile. Always True for thread=multi."""
        scheduler = self._scheduler
        if scheduler is None:
            return True
        if kickable:
            return scheduler.acquire(self, lambda: self._closing or self._kick)
        return scheduler.acquire(self, lambda: self._closing)

    def _end_turn(self) -> None:
        scheduler = self._scheduler
        if scheduler is not None:
            scheduler.release(self)

    def _time_slice(self) -> int:
        """The emu_start instruction count: the scheduler's slice while the VM has
        another vCPU to hand on to, else 0 (none: a one-vCPU VM runs unsliced).

        A count, not unicorn's timeout: the timeout (like any emu_stop from another
        thread) can stop the engine inside a read-modify-write instruction after its
        store and resume at that instruction, which runs it twice (measured: one extra
        LOCK XADD per stop). A count stops between two instructions."""
        scheduler = self._scheduler
        self._sliced = scheduler is not None and len(self._peers) > 1
        return scheduler.slice_insns if scheduler is not None and self._sliced else 0

    def _slice_ended(self) -> bool:
        """A sliced emu_start returned for no reason a hook, kick or fault gave: its
        count ran out, unless the instruction before RIP is the HLT it stopped at."""
        if not self._sliced or self._halted_here():
            return False
        self._slice_ends += 1
        return True

    def _halted_here(self) -> bool:
        """The byte before RIP (translated through the guest's page tables) is HLT."""
        from .paging import linear_to_physical

        physical = linear_to_physical(self._uc, self._linear_pc() - 1)
        if physical is None:
            return False  # nothing was fetched from there
        try:
            return bytes(self._uc.mem_read(physical, 1)) == b"\xf4"
        except Exception:
            return False

    def _drop_code(self, start: int, end: int) -> None:
        """Translated code for guest-physical ``start..end`` is stale (any thread): the
        worker drops it before it emulates again (the engine is its thread's alone)."""
        self._stale.append((start, end))

    def _flush_stale(self) -> None:
        uc = self._uc
        while self._stale:
            start, end = self._stale.pop()
            if uc is not None:
                # (with paging on the engine reads the range as linear: a range it
                # cannot translate has no code cached under it to drop)
                with contextlib.suppress(Exception):
                    uc.ctl_remove_cache(start, end)

    def _emulate(self) -> Exit | None:
        from ._state import RIP, UcError

        uc = self._uc
        while True:
            if self._closing:
                return None
            if self._kick:
                return InterruptedExit()
            self._event = None
            self._resume_at = None
            self._fault = None
            self._restart = False
            self._events_stop = False
            if not self._take_turn():
                continue  # kicked or closed while waiting for the token: see above
            try:  # (the token is held from here to the end of emu_start and its fault)
                self._flush_stale()
                taken = self._take_events()
                if taken is not None:
                    return taken
                self._watch_real_mode()
                try:
                    uc.emu_start(uc.reg_read(RIP), _NEVER, 0, self._time_slice())
                except UcError as exc:
                    if self._closing:
                        return None
                    mapped = self._map_error(exc)
                    if mapped is None:
                        continue
                    return mapped
            finally:
                self._end_turn()
            if self._closing:
                return None
            if self._event is not None:
                return self._event
            if self._kick:
                if self._sliced and self._halted_here():
                    return HaltExit()  # a kicked slice that ended at HLT (the kick stays set)
                return InterruptedExit()
            if self._resume_at is not None and self._linear_pc() == self._resume_at:
                continue  # an exception was delivered: the engine stopped to reload CS:IP
            if self._restart:
                continue  # left real mode, or a #GP at the CS limit: re-enter (hooks move)
            if self._events_stop or self._events_due():
                continue  # an injected event can be taken now (after a HLT, an exit)
            if self._slice_ended():
                continue  # thread=single: the next vCPU's turn; this one queues again
            if self._after_hlt():
                return HaltExit()
            # a stale emu_stop (a kick that raced with an exit): carry on

    def _linear_pc(self) -> int:
        from . import _state

        return _state.segment_base(self._uc, self._layout, "cs") + int(
            self._uc.reg_read(_state.RIP)
        )

    def _after_hlt(self) -> bool:
        from ._state import x86

        if self._uc.reg_read(x86.UC_X86_REG_CR0) & _CR0_PG:
            return True  # linear != physical; HLT is the only other way emu_start returns
        try:
            return bytes(self._uc.mem_read(self._linear_pc() - 1, 1)) == b"\xf4"
        except Exception:
            return True

    # -- the real-mode code-segment limit (worker thread)
    #
    # Unicorn lets a 16-bit IP run past 0xFFFF into the next 64 KiB; x86 (and KVM) raise
    # #GP(0) for an instruction fetch beyond the CS limit. While the vCPU is in real mode,
    # block hooks watch the last _RM_WINDOW bytes of the code segment and what lies
    # beyond it (for CS's hidden base and for selector << 4, the base a far jump with the
    # same selector gives; the window moves when emu_start is entered with another CS):
    # a block that starts beyond the limit gets the #GP before it runs (the pushed IP is
    # the 16-bit IP, as KVM's); a block that crosses it is retranslated with a
    # per-instruction hook over its last bytes, so the first instruction that does not
    # fit gets the #GP at its own IP. Code elsewhere, and protected mode, pay nothing.

    def _watch_real_mode(self) -> None:
        from . import _state

        U, x86, uc = _state.U, _state.x86, self._uc
        bases: frozenset[int] = frozenset()
        real = not uc.reg_read(x86.UC_X86_REG_CR0) & 1
        # (a CS with another limit, "unreal mode" after a return from protected mode,
        # is left alone)
        if real and _state.segment_limit(uc, self._layout, "cs") == _RM_LIMIT:
            hidden = _state.segment_base(uc, self._layout, "cs")
            bases = frozenset({hidden, (int(uc.reg_read(x86.UC_X86_REG_CS)) & 0xFFFF) << 4})
        if bases == self._rm_bases:
            return
        for handle in (*self._rm_hooks, *self._limit_hooks.values()):
            uc.hook_del(handle)
        self._rm_hooks = []
        self._limit_hooks.clear()
        self._rm_bases = bases
        for base in bases:
            ranges = [(base + _RM_LIMIT + 1 - _RM_WINDOW, base + 2 * (_RM_LIMIT + 1))]
            if base + _RM_LIMIT + 1 > 0xFFFF_FFFF:  # beyond 4 GiB wraps (the reset CS)
                ranges.append((0, (base + 2 * (_RM_LIMIT + 1)) & 0xFFFF_FFFF))
            for lo, hi in ranges:
                self._rm_hooks.append(uc.hook_add(U.UC_HOOK_BLOCK, self._hook_block, None, lo, hi))
            uc.ctl_remove_cache(ranges[0][0], ranges[0][1])

    def _hook_block(self, uc: Any, address: int, size: int, _ud: object) -> None:
        from ._state import x86

        if uc.reg_read(x86.UC_X86_REG_CR0) & 1:
            if not self._restart:
                self._restart = True
                uc.emu_stop()  # _emulate drops the hooks and runs on
            return
        ip = int(uc.reg_read(x86.UC_X86_REG_EIP))
        if ip > _RM_LIMIT:
            self._limit_fault(uc, ip)
        elif ip + size - 1 > _RM_LIMIT and address not in self._limit_hooks:
            from ._state import U

            start = address + (_RM_LIMIT + 1 - ip) - _MAX_INSN
            self._limit_hooks[address] = uc.hook_add(
                U.UC_HOOK_CODE, self._hook_limit_insn, None, start, address + size
            )
            uc.ctl_remove_cache(address, address + size)
            uc.reg_write(x86.UC_X86_REG_EIP, ip)  # leave the block before it runs

    def _hook_limit_insn(self, uc: Any, address: int, size: int, _ud: object) -> None:
        from ._state import x86

        if uc.reg_read(x86.UC_X86_REG_CR0) & 1:
            return
        ip = int(uc.reg_read(x86.UC_X86_REG_EIP))
        if size <= _MAX_INSN and ip + size - 1 > _RM_LIMIT:  # (an invalid opcode: #UD)
            self._limit_fault(uc, ip)

    def _limit_fault(self, uc: Any, ip: int) -> None:
        from ._state import x86

        uc.reg_write(x86.UC_X86_REG_EIP, ip & 0xFFFF if ip > _RM_LIMIT else ip)
        event = self._deliver(13, Event(13))  # #GP(0): real mode pushes no error code
        if event is not None:
            self._event = event
        self._restart = True  # _emulate re-enters at the handler and moves the window
        uc.emu_stop()

    # -- hooks (worker thread)
    def _hook_in(self, uc: Any, port: int, size: int, _ud: object) -> int:
        data = bytearray(size)
        if not self._wait_for_caller(PortIoExit(port, size, IoDirection.IN, data)):
            return 0
        return int.from_bytes(data, "little")

    def _hook_out(self, uc: Any, port: int, size: int, value: int, _ud: object) -> None:
        data = bytearray((value & ((1 << (8 * size)) - 1)).to_bytes(size, "little"))
        self._wait_for_caller(PortIoExit(port, size, IoDirection.OUT, data))

    def _mmio_read(self, uc: Any, offset: int, size: int, base: int) -> int:
        data = bytearray(size)
        if not self._wait_for_caller(MmioExit(base + offset, size, False, data)):
            return 0
        return int.from_bytes(data, "little")

    def _mmio_write(self, uc: Any, offset: int, size: int, value: int, base: int) -> None:
        data = bytearray((value & ((1 << (8 * size)) - 1)).to_bytes(size, "little"))
        self._wait_for_caller(MmioExit(base + offset, size, True, data))

    def _hook_invalid(
        self, uc: Any, access: int, address: int, size: int, value: int, _ud: object
    ) -> bool:
        self._fault = (access, address, size)
        return False

    def _hook_syscall(self, uc: Any, _ud: object) -> None:
        """SYSCALL, which unicorn leaves to this hook (:func:`accel_tcg.delivery.syscall`);
        #UD where it is not enabled (the hook's RIP is the instruction's, and unicorn adds
        its 2 bytes after the hook: the handler's RIP is written less 2)."""
        from ._state import RIP

        if syscall(uc, self._layout):
            return
        event = self._deliver(6, Event(6))
        if event is not None:
            self._event = event
            uc.emu_stop()
            return
        uc.reg_write(RIP, int(uc.reg_read(RIP)) - 2)
        if self._resume_at is not None:
            self._resume_at -= 2

    def _hook_intr(self, uc: Any, vector: int, _ud: object) -> None:
        event = self._deliver(vector)
        if event is not None:
            self._event = event
            uc.emu_stop()

    def _deliver(self, vector: int, event: Event | None = None) -> Exit | None:
        """Deliver exception/interrupt ``vector`` (:mod:`accel_tcg.delivery`); an exit
        when the run ends instead (a triple fault, a task gate).

        Without ``event``, the vector is the one unicorn raised: whether it is a software
        interrupt and its error code are read from the engine (see the delivery module).
        """
        from . import _state

        if event is None:
            info = _state.exception_info(self._uc, self._layout)
            error, software = info if info is not None else (0, False)
            pushes = not software and vector in ERROR_CODE_VECTORS
            event = Event(vector, error if pushes else None, software=software)
        outcome = deliver(self._uc, self._layout, event)
        if outcome.exit is not None:
            return outcome.exit
        self._resume_at = outcome.resume_at
        delivered = outcome.delivered
        if delivered is not None and delivered.vector == _NMI and delivered.external:
            self._nmi_blocked = True
        return None

    def _map_error(self, exc: Exception) -> Exit | None:
        from ._state import U as unicorn

        code = int(getattr(exc, "errno", 0))
        if code == unicorn.UC_ERR_INSN_INVALID:
            return self._deliver(6, Event(6))  # #UD at the instruction, no error code
        if self._fault is not None or code in (
            unicorn.UC_ERR_READ_UNMAPPED,
            unicorn.UC_ERR_WRITE_UNMAPPED,
            unicorn.UC_ERR_FETCH_UNMAPPED,
            unicorn.UC_ERR_WRITE_PROT,
            unicorn.UC_ERR_READ_PROT,
            unicorn.UC_ERR_FETCH_PROT,
        ):
            if self._fault is not None:
                access, address, size = self._fault
                kinds = {
                    unicorn.UC_MEM_READ_UNMAPPED: "read of unmapped",
                    unicorn.UC_MEM_WRITE_UNMAPPED: "write to unmapped",
                    unicorn.UC_MEM_FETCH_UNMAPPED: "instruction fetch from unmapped",
                    unicorn.UC_MEM_WRITE_PROT: "write to read-only",
                    unicorn.UC_MEM_READ_PROT: "read of protected",
                    unicorn.UC_MEM_FETCH_PROT: "instruction fetch from protected",
                }
                where = (
                    f"{kinds.get(access, 'invalid access to')} address {address:#x} ({size} bytes)"
                )
            else:
                where = str(exc)
            return InternalErrorExit(
                "emulation",
                code,
                f"{where}: no guest RAM or device is there",
                (self._fault[1],) if self._fault else (),
            )
        return InternalErrorExit("internal-error", code, f"unicorn: {exc}")

    # -- close
    def _request_close(self) -> None:
        """Tell the worker to end (idempotent); :meth:`_close` then waits for it."""
        if self._closing:
            return
        self._close_deadline = time.monotonic() + _JOIN_TIMEOUT
        self._closing = True
        if self._thread is not None:
            self._to_worker.put(_STOP)  # releases a hook parked in an exit, or ends an idle worker
            self._stop_engine()  # ends emu_start; retried until the worker ends or the deadline

    def _close(self) -> None:
        # Safe from any thread and any state: idle, parked in an exit, inside emu_start,
        # or racing with a run() that is starting the worker (which then sees _closing
        # before it emulates). The wait is bounded; a worker that did not end by then is
        # left behind (a daemon thread) with the engine it still uses.
        self._request_close()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=max(0.0, self._close_deadline - time.monotonic()))
        self._pending = None
        if isinstance(self.vm, TcgVM):
            self.vm._forget(self)
        if thread is None or not thread.is_alive():
            self._uc = None
