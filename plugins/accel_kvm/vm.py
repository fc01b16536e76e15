"""The KVM VM and vCPU handles (one module: a VM is made to run vCPUs).

:class:`KvmVM`: guest memory slots, MMIO ranges, vCPUs and the kvmclock clock.
:class:`KvmVcpu`: registers, CPUID, and the KVM_RUN loop mapped onto accel exits
(also importable from :mod:`accel_kvm.vcpu`).
"""

from __future__ import annotations

import errno as _errno

from accel import errors as _errors
from accel.accelerator import (
    VM,
    CpuSpec,
    Exit,
    HaltExit,
    InternalErrorExit,
    InterruptedExit,
    IoDirection,
    MemoryRegion,
    MmioExit,
    PortIoExit,
    ShutdownExit,
    Vcpu,
    VmOptions,
)
from accel.capabilities import Capability, CapabilitySet, ClockFlags
from accel.errors import InvalidArgumentError, VcpuStateError

from . import _abi
from ._abi import ACCEL_NAME, buffer_address, call, release_mapping
from .accelerator import _ENTRY_WORDS, _HEADER_WORDS, KVM_CAPS, CpuidEntry, answers_from_raw

TYPE_CHECKING = False
if TYPE_CHECKING:
    import mmap as _mmap
    from collections.abc import Callable

    from accel.accelerator import ClockData, Registers, SpecialRegisters

    from ._wrappers import Sys
    from .accelerator import KvmAccelerator

__all__ = ["PV_FLAGS", "KvmVM", "KvmVcpu", "cpuid_buffer", "filter_cpuid"]

_RESUME_FLAGS_MASK = ~(_abi.KVM_CLOCK_REALTIME | _abi.KVM_CLOCK_HOST_TSC)


def region_bytes(slot: int, flags: int, guest_phys: int, size: int, address: int) -> bytes:
    """A ``struct kvm_userspace_memory_region`` (slot and flags 32-bit, then guest_phys_addr,
    memory_size and userspace_addr 64-bit, little-endian) for KVM_SET_USER_MEMORY_REGION."""
    value = slot | flags << 32 | guest_phys << 64 | size << 128 | address << 192
    return value.to_bytes(_abi.SIZEOF_KVM_USERSPACE_MEMORY_REGION, "little")


class KvmVM(VM):
    """One KVM VM (a KVM_CREATE_VM file descriptor).

    Guest RAM regions are anonymous mappings registered with KVM_SET_USER_MEMORY_REGION;
    MMIO ranges are only recorded (KVM exits on any guest-physical address no slot backs).
    :meth:`pause`/:meth:`resume` follow QEMU's kvmclock rules: the clock read at pause is
    what :meth:`get_clock` returns while paused and is written back with KVM_SET_CLOCK
    before any vCPU runs again, followed by KVM_KVMCLOCK_CTRL on every vCPU.
    """

    accelerator: KvmAccelerator

    def __init__(self, accelerator: KvmAccelerator, fd: int, options: VmOptions, sys: Sys) -> None:
        self.accelerator = accelerator
        self.options = options
        self._closed = False
        self._fd = fd
        self._sys = sys
        self._regions: list[MemoryRegion] = []
        self._maps: dict[int, _mmap.mmap] = {}
        self._mmio: list[tuple[int, int]] = []
        self._vcpus: list[KvmVcpu] = []
        self._vcpu_ids: set[int] = set()
        self._caps: CapabilitySet | None = None
        self._raw: dict[int, int] = {}
        self._paused = False
        self._clock_cache: ClockData | None = None
        self._clock_cache_set = False
        self._clock_buf: _abi.kvm_clock_data | None = None

    @property
    def fd(self) -> int:
        """The VM file descriptor."""
        return self._fd

    # ------------------------------------------------------------------ capabilities
    def check_extension(self, cap_number: int) -> int:
        """Raw KVM_CHECK_EXTENSION on the VM fd, or the host's answer where the kernel has
        no VM-level queries (no KVM_CAP_CHECK_EXTENSION_VM)."""
        self._check_open()
        if not isinstance(cap_number, int) or cap_number < 0:
            raise InvalidArgumentError(
                f"KVM capability number must be a non-negative int, not {cap_number!r}",
                argument="cap_number",
                value=cap_number,
            )
        cached = self._raw.get(cap_number)
        if cached is not None:
            return cached
        if not self.accelerator.check_extension(_abi.KVM_CAP_CHECK_EXTENSION_VM):
            value = self.accelerator.check_extension(cap_number)
        else:
            value = int(
                call(
                    self._sys, "KVM_CHECK_EXTENSION", self._fd, _abi.KVM_CHECK_EXTENSION, cap_number
                )
            )
        self._raw[cap_number] = value
        return value

    def capabilities(self) -> CapabilitySet:
        """VM-level answers (read once): KVM_CHECK_EXTENSION on the VM fd where supported."""
        self._check_open()
        if self._caps is None:
            host = self.accelerator.capabilities()
            if not host.supports(Capability.VM_CAPABILITY_QUERY):
                self._caps = host
            else:
                raw = {n: self.check_extension(n) for _, n in KVM_CAPS.values()}
                answers = answers_from_raw(raw, " (vm)")
                answers[Capability.PV_CLOCKSOURCE] = host[Capability.PV_CLOCKSOURCE]
                answers[Capability.PV_CLOCKSOURCE_STABLE] = host[Capability.PV_CLOCKSOURCE_STABLE]
                self._caps = CapabilitySet(answers)
        return self._caps

    # ------------------------------------------------------------------ memory
    def add_memory(self, guest_phys: int, size: int, *, readonly: bool = False) -> MemoryRegion:
        """Map zeroed anonymous memory at ``guest_phys`` (KVM_SET_USER_MEMORY_REGION)."""
        self._check_open()
        self._check_layout(guest_phys, size, what="add_memory")
        used = {r.slot for r in self._regions}
        slot = next(i for i in range(len(used) + 1) if i not in used)
        try:
            mm = self._sys.mmap(-1, size)
        except OSError as exc:
            raise _errors.BackendCallError("mmap", exc.errno, accelerator=ACCEL_NAME) from exc
        try:
            region = region_bytes(
                slot,
                _abi.KVM_MEM_READONLY if readonly else 0,
                guest_phys,
                size,
                buffer_address(mm),
            )
            call(
                self._sys,
                "KVM_SET_USER_MEMORY_REGION",
                self._fd,
                _abi.KVM_SET_USER_MEMORY_REGION,
                region,
            )
        except BaseException:
            mm.close()
            raise
        result = MemoryRegion(guest_phys, size, memoryview(mm), readonly=readonly, slot=slot)
        self._regions.append(result)
        self._regions.sort(key=lambda r: r.guest_phys)
        self._maps[slot] = mm
        return result

    def add_mmio(self, guest_phys: int, size: int) -> None:
        """Record an MMIO range (KVM exits on unbacked addresses by itself)."""
        self._check_open()
        self._check_layout(guest_phys, size, what="add_mmio")
        self._mmio.append((guest_phys, size))
        self._mmio.sort()

    @property
    def memory_regions(self) -> tuple[MemoryRegion, ...]:
        self._check_open()
        return tuple(self._regions)

    @property
    def mmio_ranges(self) -> tuple[tuple[int, int], ...]:
        """The declared MMIO ranges as ``(guest_phys, size)``."""
        self._check_open()
        return tuple(self._mmio)

    # ------------------------------------------------------------------ vCPUs
    def create_vcpu(self, index: int | None = None, *, cpu: CpuSpec | None = None) -> KvmVcpu:
        """KVM_CREATE_VCPU, its kvm_run mapping, and KVM_SET_CPUID2 filtered by ``cpu``."""
        self._check_open()
        taken = self._vcpu_ids
        if index is None:
            index = next(i for i in range(len(taken) + 1) if i not in taken)
        if not isinstance(index, int) or index < 0:
            raise InvalidArgumentError(
                f"vCPU index must be a non-negative int, not {index!r}",
                argument="index",
                value=index,
            )
        if index in taken:
            raise InvalidArgumentError(
                f"vCPU {index} already exists in this VM",
                hint="KVM keeps a vCPU until its VM is closed, even after the vCPU handle is "
                "closed; use another index",
                argument="index",
                value=index,
            )
        spec = cpu if cpu is not None else CpuSpec()
        acc = self.accelerator
        size = acc.vcpu_mmap_size()
        supported = acc.supported_cpuid()
        cpuid = filter_cpuid(supported, spec)
        # Nothing filtered out: a copy of the kernel's own struct, whose padding it zeroed
        # (a mutable buffer: fcntl.ioctl copies an immutable one only up to 1024 bytes).
        if cpuid == list(supported) and acc._cpuid_struct:
            struct = bytearray(acc._cpuid_struct)
        else:
            struct = cpuid_buffer(cpuid)
        fd = int(call(self._sys, "KVM_CREATE_VCPU", self._fd, _abi.KVM_CREATE_VCPU, index))
        # From here KVM holds vCPU ``index`` until the VM is closed, even if the rest fails.
        taken.add(index)
        vcpu = KvmVcpu(self, index, fd, spec, self._sys, size, struct)
        self._vcpus.append(vcpu)
        return vcpu

    @property
    def vcpus(self) -> tuple[KvmVcpu, ...]:
        self._check_open()
        return tuple(self._vcpus)

    def _forget(self, vcpu: KvmVcpu) -> None:
        if vcpu in self._vcpus:
            self._vcpus.remove(vcpu)

    # ------------------------------------------------------------------ clock
    def _read_clock(self) -> ClockData:
        from accel.accelerator import ClockData

        buf = self._clock_buf
        if buf is None:
            buf = self._clock_buf = _abi.kvm_clock_data()
        call(self._sys, "KVM_GET_CLOCK", self._fd, _abi.KVM_GET_CLOCK, buf)
        return ClockData(
            clock=buf.clock,
            flags=ClockFlags(buf.flags),
            realtime=buf.realtime,
            host_tsc=buf.host_tsc,
        )

    def _write_clock(self, data: ClockData, flags: int) -> None:
        buf = _abi.kvm_clock_data()
        buf.clock = data.clock
        buf.flags = flags
        buf.realtime = data.realtime
        buf.host_tsc = data.host_tsc
        call(self._sys, "KVM_SET_CLOCK", self._fd, _abi.KVM_SET_CLOCK, buf)

    def get_clock(self) -> ClockData:
        """KVM_GET_CLOCK (all fields), or the value cached at :meth:`pause` while paused."""
        self._check_open()
        if self._paused and self._clock_cache is not None:
            return self._clock_cache
        return self._read_clock()

    def set_clock(self, data: ClockData) -> None:
        """KVM_SET_CLOCK with every field of ``data`` (while paused: replaces the cache)."""
        from accel.accelerator import ClockData

        self._check_open()
        if not isinstance(data, ClockData):
            raise InvalidArgumentError(
                f"set_clock takes a ClockData, not {data!r}", argument="data", value=data
            )
        if not 0 <= data.clock < 1 << 64:
            raise InvalidArgumentError(
                f"clock {data.clock} is outside 0..2**64-1", argument="data", value=data
            )
        if self._paused:
            self._clock_cache = data
            self._clock_cache_set = True
            return
        self._write_clock(data, int(data.flags))

    def pause(self) -> None:
        """Read the clock (KVM_GET_CLOCK) and cache it; vCPUs refuse to run until resume."""
        self._check_open()
        if self._paused:
            return
        self._clock_cache = self._read_clock()
        self._clock_cache_set = False
        self._paused = True

    def resume(self) -> None:
        """KVM_SET_CLOCK of the cached value, then KVM_KVMCLOCK_CTRL per vCPU, then run.

        If a call fails the VM stays paused with its cached clock, so ``resume()`` can be
        retried. The value cached by :meth:`pause` is written without its REALTIME and
        HOST_TSC flags (the guest clock must not jump by the time spent paused); a value
        given to :meth:`set_clock` while paused is written as given.
        """
        self._check_open()
        if not self._paused:
            return
        cache = self._clock_cache
        if cache is not None:
            flags = int(cache.flags)
            if not self._clock_cache_set:
                flags &= _RESUME_FLAGS_MASK
            self._write_clock(cache, flags)
        if self.accelerator.check_extension(_abi.KVM_CAP_KVMCLOCK_CTRL):
            for vcpu in self._vcpus:
                vcpu.kvmclock_ctrl()
        self._paused = False
        self._clock_cache = None
        self._clock_cache_set = False

    @property
    def paused(self) -> bool:
        return self._paused

    # ------------------------------------------------------------------ close
    def _close(self) -> None:
        for vcpu in list(self._vcpus):
            vcpu.close()
        self._vcpus.clear()
        for region in self._regions:
            # (BufferError: the caller exported the view further; the mapping outlives it)
            try:
                region.view.release()
            except BufferError:
                continue
        self._regions.clear()
        for mm in self._maps.values():
            release_mapping(mm)
        self._maps.clear()
        self._mmio.clear()
        fd, self._fd = self._fd, -1
        try:
            self._sys.close(fd)
        finally:
            self.accelerator._forget(self)


# --------------------------------------------------------------------------- vCPU

#: QEMU's names of the KVM paravirtual CPUID flags (leaf 0x40000001 EAX) -> bits.
PV_FLAGS: dict[str, tuple[int, ...]] = {
    "kvmclock": (
        _abi.KVM_FEATURE_CLOCKSOURCE,
        _abi.KVM_FEATURE_CLOCKSOURCE2,
        _abi.KVM_FEATURE_CLOCKSOURCE_STABLE_BIT,
    ),
    "kvm-nopiodelay": (_abi.KVM_FEATURE_NOP_IO_DELAY,),
    "kvm-asyncpf": (_abi.KVM_FEATURE_ASYNC_PF,),
    "kvm-steal-time": (_abi.KVM_FEATURE_STEAL_TIME,),
    "kvm-pv-eoi": (_abi.KVM_FEATURE_PV_EOI,),
    "kvm-pv-unhalt": (_abi.KVM_FEATURE_PV_UNHALT,),
    "kvm-pv-tlb-flush": (_abi.KVM_FEATURE_PV_TLB_FLUSH,),
    "kvm-asyncpf-vmexit": (_abi.KVM_FEATURE_ASYNC_PF_VMEXIT,),
    "kvm-pv-ipi": (_abi.KVM_FEATURE_PV_SEND_IPI,),
    "kvm-poll-control": (_abi.KVM_FEATURE_POLL_CONTROL,),
    "kvm-pv-sched-yield": (_abi.KVM_FEATURE_PV_SCHED_YIELD,),
    "kvm-asyncpf-int": (_abi.KVM_FEATURE_ASYNC_PF_INT,),
    "kvm-msi-ext-dest-id": (_abi.KVM_FEATURE_MSI_EXT_DEST_ID,),
    "kvmclock-stable-bit": (_abi.KVM_FEATURE_CLOCKSOURCE_STABLE_BIT,),
}


def cpuid_buffer(entries: list[CpuidEntry]) -> bytearray:
    """``entries`` as the ``struct kvm_cpuid2`` buffer KVM_SET_CPUID2 takes."""
    n = len(entries)
    buf = bytearray(4 * (_HEADER_WORDS + n * _ENTRY_WORDS))
    words = memoryview(buf).cast("I")
    words[0] = n
    i = _HEADER_WORDS
    for entry in entries:
        (
            words[i],
            words[i + 1],
            words[i + 2],
            words[i + 3],
            words[i + 4],
            words[i + 5],
            words[i + 6],
        ) = entry
        i += _ENTRY_WORDS
    words.release()
    return buf


def filter_cpuid(entries: tuple[CpuidEntry, ...], cpu: CpuSpec) -> list[CpuidEntry]:
    """The supported CPUID with the KVM paravirtual flags ``cpu`` switches off cleared.

    ``-kvm`` hides the whole KVM leaf range (0x40000000..0x400000FF). A flag switched on
    that the host does not support stays off (KVM cannot offer it). Other flags are not
    KVM's business here and are ignored.
    """
    if cpu.flag("kvm", True) is False:
        return [e for e in entries if not 0x40000000 <= e[0] <= 0x400000FF]
    clear = 0
    for name, bits in PV_FLAGS.items():
        if cpu.flag(name, True) is False:
            for bit in bits:
                clear |= 1 << bit
    if not clear:
        return list(entries)
    out: list[CpuidEntry] = []
    for entry in entries:
        if entry[0] == _abi.KVM_CPUID_FEATURES:
            function, index, flags, eax, ebx, ecx, edx = entry
            entry = (function, index, flags, eax & ~clear, ebx, ecx, edx)
        out.append(entry)
    return out


_EXIT_NAMES = {
    _abi.KVM_EXIT_UNKNOWN: "unknown",
    _abi.KVM_EXIT_EXCEPTION: "exception",
    _abi.KVM_EXIT_HYPERCALL: "hypercall",
    _abi.KVM_EXIT_DEBUG: "debug",
    _abi.KVM_EXIT_SYSTEM_EVENT: "system-event",
}


class KvmVcpu(Vcpu):
    """One KVM vCPU: its fd, its mapped ``kvm_run`` page, and :meth:`run`.

    The run loop reads ``kvm_run`` through preallocated memoryview casts and dispatches
    on the exit reason through a table built once; each exit allocates only its Exit
    object. ``exit.data`` of a port-I/O or MMIO exit is a view into the kvm_run page, so
    an IN or MMIO read is answered by writing into it before the next :meth:`run`.
    """

    vm: KvmVM

    def __init__(
        self,
        vm: KvmVM,
        index: int,
        fd: int,
        cpu: CpuSpec,
        sys: Sys,
        mmap_size: int,
        cpuid: bytearray,
    ) -> None:
        """Take over vCPU ``fd`` (from KVM_CREATE_VCPU): map kvm_run, KVM_SET_CPUID2 with
        ``cpuid`` (a ``struct kvm_cpuid2``, see :func:`cpuid_buffer`).

        Made by :meth:`KvmVM.create_vcpu`; on failure ``fd`` is closed.
        """
        self.vm = vm
        self.index = index
        self.cpu = cpu
        self._sys = sys
        self._ioctl = sys.ioctl
        self._kicked = False
        self._closed = False
        try:
            try:
                mm = sys.mmap(fd, mmap_size)
            except OSError as exc:
                raise _errors.BackendCallError("mmap", exc.errno, accelerator=ACCEL_NAME) from exc
            try:
                call(sys, "KVM_SET_CPUID2", fd, _abi.KVM_SET_CPUID2, cpuid)
            except BaseException:
                mm.close()
                raise
        except BaseException:
            sys.close(fd)
            raise
        self._fd = fd
        self._mm = mm
        self._mv = memoryview(mm)
        self._u16 = self._mv.cast("H")
        self._u32 = self._mv.cast("I")
        self._u64 = self._mv.cast("Q")
        self._slices: dict[tuple[int, int], memoryview] = {}
        self._regs: _abi.kvm_regs | None = None
        self._sregs: _abi.kvm_sregs | None = None
        self._dispatch: dict[int, Callable[[], Exit | None]] = {
            _abi.KVM_EXIT_IO: self._exit_io,
            _abi.KVM_EXIT_MMIO: self._exit_mmio,
            _abi.KVM_EXIT_HLT: self._exit_hlt,
            _abi.KVM_EXIT_SHUTDOWN: self._exit_shutdown,
            _abi.KVM_EXIT_FAIL_ENTRY: self._exit_fail_entry,
            _abi.KVM_EXIT_INTERNAL_ERROR: self._exit_internal,
            _abi.KVM_EXIT_SYSTEM_EVENT: self._exit_system_event,
            _abi.KVM_EXIT_IRQ_WINDOW_OPEN: self._exit_continue,
            _abi.KVM_EXIT_INTR: self._exit_continue,
        }

    @property
    def fd(self) -> int:
        """The vCPU file descriptor."""
        return self._fd

    # ------------------------------------------------------------------ registers
    def get_regs(self) -> Registers:
        """KVM_GET_REGS."""
        from accel.accelerator import Registers

        self._check_open()
        r = self._regs
        if r is None:
            r = self._regs = _abi.kvm_regs()
        call(self._sys, "KVM_GET_REGS", self._fd, _abi.KVM_GET_REGS, r)
        return Registers(*(getattr(r, n) for n in Registers.NAMES))

    def set_regs(self, regs: Registers) -> None:
        """KVM_SET_REGS (every field of ``regs``)."""
        from accel.accelerator import Registers

        self._check_open()
        r = _abi.kvm_regs()
        for name in Registers.NAMES:
            setattr(r, name, getattr(regs, name) & 0xFFFFFFFFFFFFFFFF)
        call(self._sys, "KVM_SET_REGS", self._fd, _abi.KVM_SET_REGS, r)

    def get_sregs(self) -> SpecialRegisters:
        """KVM_GET_SREGS."""
        from accel.accelerator import DescriptorTable, Segment, SpecialRegisters

        self._check_open()
        s = self._sregs
        if s is None:
            s = self._sregs = _abi.kvm_sregs()
        call(self._sys, "KVM_GET_SREGS", self._fd, _abi.KVM_GET_SREGS, s)
        out = SpecialRegisters()
        for name in SpecialRegisters.SEGMENTS:
            seg = getattr(s, name)
            setattr(out, name, Segment(*(getattr(seg, f) for f in Segment.FIELDS)))
        out.gdt = DescriptorTable(s.gdt.base, s.gdt.limit)
        out.idt = DescriptorTable(s.idt.base, s.idt.limit)
        for name in SpecialRegisters.CONTROL:
            setattr(out, name, getattr(s, name))
        return out

    def set_sregs(self, sregs: SpecialRegisters) -> None:
        """KVM_SET_SREGS (no pending interrupt is injected: the bitmap is zero)."""
        from accel.accelerator import Segment, SpecialRegisters

        self._check_open()
        s = _abi.kvm_sregs()
        for name in SpecialRegisters.SEGMENTS:
            src = getattr(sregs, name)
            dst = getattr(s, name)
            for f in Segment.FIELDS:
                setattr(dst, f, getattr(src, f))
        s.gdt.base, s.gdt.limit = sregs.gdt.base, sregs.gdt.limit
        s.idt.base, s.idt.limit = sregs.idt.base, sregs.idt.limit
        for name in SpecialRegisters.CONTROL:
            setattr(s, name, getattr(sregs, name))
        call(self._sys, "KVM_SET_SREGS", self._fd, _abi.KVM_SET_SREGS, s)

    # ------------------------------------------------------------------ kvmclock
    def kvmclock_ctrl(self) -> bool:
        """KVM_KVMCLOCK_CTRL: tell the guest it was paused (so its watchdogs do not fire).

        Returns False when the guest has not enabled kvmclock (the kernel's EINVAL), which
        is not an error.
        """
        self._check_open()
        try:
            self._sys.ioctl(self._fd, _abi.KVM_KVMCLOCK_CTRL, 0)
        except OSError as exc:
            if exc.errno == _errno.EINVAL:
                return False
            raise _errors.BackendCallError(
                "KVM_KVMCLOCK_CTRL", exc.errno, accelerator=ACCEL_NAME
            ) from exc
        return True

    # ------------------------------------------------------------------ run
    def run(self) -> Exit:
        """KVM_RUN until an exit the caller must see (EINTR is retried unless kicked)."""
        if self._closed:
            raise _errors.HandleClosedError(self._describe())
        if self.vm._paused:
            raise VcpuStateError(
                f"vcpu {self.index}: the VM is paused",
                hint="call vm.resume() first",
                accelerator=ACCEL_NAME,
            )
        ioctl = self._ioctl
        fd = self._fd
        dispatch = self._dispatch
        u32 = self._u32
        while True:
            try:
                ioctl(fd, _abi.KVM_RUN, 0)
            except OSError as exc:
                if exc.errno == _errno.EINTR:
                    if self._kicked:
                        self._kicked = False
                        self._mv[_abi.RUN_IMMEDIATE_EXIT] = 0
                        return InterruptedExit()
                    continue
                raise _errors.BackendCallError(
                    "KVM_RUN", exc.errno, accelerator=ACCEL_NAME
                ) from exc
            handler = dispatch.get(u32[2])  # RUN_EXIT_REASON // 4
            if handler is None:
                return self._exit_unknown()
            result = handler()
            if result is not None:
                return result

    def _data(self, offset: int, length: int) -> memoryview:
        key = (offset, length)
        view = self._slices.get(key)
        if view is None:
            view = self._slices[key] = self._mv[offset : offset + length]
        return view

    def _exit_io(self) -> Exit:
        mv = self._mv
        size = mv[_abi.RUN_IO_SIZE]
        count = self._u32[_abi.RUN_IO_COUNT >> 2]
        return PortIoExit(
            self._u16[_abi.RUN_IO_PORT >> 1],
            size,
            IoDirection.OUT if mv[_abi.RUN_IO_DIRECTION] else IoDirection.IN,
            self._data(self._u64[_abi.RUN_IO_DATA_OFFSET >> 3], size * count),
            count,
        )

    def _exit_mmio(self) -> Exit:
        length = self._u32[_abi.RUN_MMIO_LEN >> 2]
        return MmioExit(
            self._u64[_abi.RUN_MMIO_PHYS_ADDR >> 3],
            length,
            bool(self._mv[_abi.RUN_MMIO_IS_WRITE]),
            self._data(_abi.RUN_MMIO_DATA, length),
        )

    def _exit_hlt(self) -> Exit:
        return HaltExit()

    def _exit_shutdown(self) -> Exit:
        return ShutdownExit("triple fault")

    def _exit_system_event(self) -> Exit:
        kind = self._u32[_abi.RUN_SYSTEM_EVENT_TYPE >> 2]
        if kind == _abi.KVM_SYSTEM_EVENT_SHUTDOWN:
            return ShutdownExit("system event: shutdown")
        if kind == _abi.KVM_SYSTEM_EVENT_RESET:
            return ShutdownExit("system event: reset")
        if kind == _abi.KVM_SYSTEM_EVENT_CRASH:
            return ShutdownExit("system event: crash")
        return InternalErrorExit("system-event", kind, f"KVM_EXIT_SYSTEM_EVENT type {kind}")

    def _exit_fail_entry(self) -> Exit:
        reason = self._u64[_abi.RUN_FAIL_ENTRY_REASON >> 3]
        cpu = self._u32[_abi.RUN_FAIL_ENTRY_CPU >> 2]
        return InternalErrorExit(
            "fail-entry",
            reason,
            f"KVM_EXIT_FAIL_ENTRY: hardware entry failure reason {reason:#x} on cpu {cpu}",
            (cpu,),
        )

    def _exit_internal(self) -> Exit:
        suberror = self._u32[_abi.RUN_INTERNAL_SUBERROR >> 2]
        ndata = min(self._u32[_abi.RUN_INTERNAL_NDATA >> 2], 16)
        base = _abi.RUN_INTERNAL_DATA >> 3
        data = tuple(self._u64[base + i] for i in range(ndata))
        return InternalErrorExit(
            "internal-error",
            suberror,
            f"KVM_EXIT_INTERNAL_ERROR: suberror {suberror}",
            data,
        )

    def _exit_continue(self) -> Exit | None:
        if self._kicked:
            self._kicked = False
            self._mv[_abi.RUN_IMMEDIATE_EXIT] = 0
            return InterruptedExit()
        return None

    def _exit_unknown(self) -> Exit:
        reason = self._u32[_abi.RUN_EXIT_REASON >> 2]
        name = _EXIT_NAMES.get(reason, "unhandled")
        return InternalErrorExit("exit-" + name, reason, f"unhandled KVM exit reason {reason}")

    def kick(self) -> None:
        """Set ``kvm_run.immediate_exit``: the next KVM_RUN returns at once (EINTR) and
        :meth:`run` returns :class:`InterruptedExit`. Async-signal and thread safe; a run
        already inside the guest stops at its next exit."""
        self._check_open()
        self._kicked = True
        self._mv[_abi.RUN_IMMEDIATE_EXIT] = 1

    # ------------------------------------------------------------------ close
    def _close(self) -> None:
        for view in self._slices.values():
            view.release()
        self._slices.clear()
        for view in (self._u16, self._u32, self._u64, self._mv):
            view.release()
        release_mapping(self._mm)
        fd, self._fd = self._fd, -1
        try:
            self._sys.close(fd)
        finally:
            self.vm._forget(self)
