"""The KVM VM handle (a KVM_CREATE_VM file descriptor).

:class:`KvmVM`: VM-level capabilities (KVM_CHECK_EXTENSION on the VM fd), guest RAM
slots (anonymous mappings registered with KVM_SET_USER_MEMORY_REGION, their address
taken with :func:`buffer_address`), MMIO ranges, vCPUs (:class:`~accel_kvm.vcpu.KvmVcpu`),
and the VM clock (KVM_GET_CLOCK / KVM_SET_CLOCK, with QEMU's kvmclock rules for pause and
resume). It sees its accelerator only through the small :class:`KvmHost` protocol.
"""

from __future__ import annotations

import ctypes
import mmap as _mmap
from collections.abc import Callable
from typing import Protocol

from accel.accelerator import VM, Accelerator, ClockData, CpuSpec, MemoryRegion, VmOptions
from accel.capabilities import Capability, CapabilitySet, ClockFlags
from accel.errors import BackendCallError, InvalidArgumentError, UnsupportedError

from . import bindings as b
from .capabilities import KVM_CAPS, answers_from_raw
from .ioctls import (
    ACCEL_NAME,
    KVM_CHECK_EXTENSION,
    KVM_CREATE_VCPU,
    KVM_GET_CLOCK,
    KVM_IRQ_LINE,
    KVM_SET_CLOCK,
    KVM_SET_USER_MEMORY_REGION,
    Sys,
    call,
    release_mapping,
)
from .state import KvmVmState
from .vcpu import KvmVcpu

__all__ = ["KvmHost", "KvmVM", "buffer_address", "region_bytes"]

_RESUME_FLAGS_MASK = ~(b.KVM_CLOCK_REALTIME | b.KVM_CLOCK_HOST_TSC)


class KvmHost(Protocol):
    """What a VM asks of its accelerator (:class:`~accel_kvm.KvmAccelerator` has it)."""

    def check_extension(self, cap_number: int) -> int: ...

    def capabilities(self) -> CapabilitySet: ...

    def vcpu_mmap_size(self) -> int: ...

    def supported_cpuid(self) -> tuple[b.CpuidEntry, ...]: ...

    def supported_cpuid_struct(self) -> bytes: ...

    def msr_index_list(self) -> tuple[int, ...]: ...

    def mce_cap_supported(self) -> int: ...

    def vcpu_cpuid(
        self, cpu: CpuSpec, apic_id: int, cores: int = 1, *, user_apic: bool = False
    ) -> tuple[bytes, int]: ...


def buffer_address(buf: _mmap.mmap) -> int:
    """The address of ``buf``'s first byte, for KVM_SET_USER_MEMORY_REGION.

    ``ctypes.c_char.from_buffer`` exports ``buf``'s buffer for as long as the ctypes object
    lives; it lives only inside this function, so ``buf.close()`` works afterwards.
    """
    return ctypes.addressof(ctypes.c_char.from_buffer(buf))


def region_bytes(slot: int, flags: int, guest_phys: int, size: int, address: int) -> bytes:
    """A ``struct kvm_userspace_memory_region`` for KVM_SET_USER_MEMORY_REGION."""
    return bytes(b.kvm_userspace_memory_region(slot, flags, guest_phys, size, address))


class KvmVM(KvmVmState, VM):
    """One KVM VM (a KVM_CREATE_VM file descriptor).

    Guest RAM regions are anonymous mappings registered with KVM_SET_USER_MEMORY_REGION;
    MMIO ranges are only recorded (KVM exits on any guest-physical address no slot backs).
    :meth:`pause`/:meth:`resume` follow QEMU's kvmclock rules: the clock read at pause is
    what :meth:`get_clock` returns while paused and is written back with KVM_SET_CLOCK
    before any vCPU runs again, followed by KVM_KVMCLOCK_CTRL on every vCPU.
    """

    def __init__(
        self,
        accelerator: Accelerator,
        fd: int,
        options: VmOptions,
        sys: Sys,
        *,
        host: KvmHost,
        on_close: Callable[[KvmVM], None] | None = None,
    ) -> None:
        """Take over VM ``fd`` (from KVM_CREATE_VM on ``accelerator``'s /dev/kvm).

        Made by :meth:`KvmAccelerator.create_vm`, which passes itself as ``accelerator``
        and as ``host`` (the KVM queries); ``on_close`` is called with the VM when it
        closes (the accelerator forgets it).
        """
        self.accelerator = accelerator
        self._host = host
        self._on_close = on_close
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
        self._clock_buf: b.kvm_clock_data | None = None

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
        if not self._host.check_extension(b.KVM_CAP_CHECK_EXTENSION_VM):
            value = self._host.check_extension(cap_number)
        else:
            value = int(
                call(self._sys, "KVM_CHECK_EXTENSION", self._fd, KVM_CHECK_EXTENSION, cap_number)
            )
        self._raw[cap_number] = value
        return value

    def capabilities(self) -> CapabilitySet:
        """VM-level answers (read once): KVM_CHECK_EXTENSION on the VM fd where supported."""
        self._check_open()
        if self._caps is None:
            host = self._host.capabilities()
            if not host.supports(Capability.VM_CAPABILITY_QUERY):
                self._caps = host
            else:
                raw = {n: self.check_extension(n) for _, n in KVM_CAPS.values()}
                answers = answers_from_raw(raw, " (vm)")
                answers[Capability.PV_CLOCKSOURCE] = host[Capability.PV_CLOCKSOURCE]
                answers[Capability.PV_CLOCKSOURCE_STABLE] = host[Capability.PV_CLOCKSOURCE_STABLE]
                answers[Capability.INTERRUPT_INJECTION] = host[Capability.INTERRUPT_INJECTION]
                answers[Capability.VCPU_STATE] = host[Capability.VCPU_STATE]
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
            raise BackendCallError("mmap", exc.errno, accelerator=ACCEL_NAME) from exc
        try:
            region = region_bytes(
                slot,
                b.KVM_MEM_READONLY if readonly else 0,
                guest_phys,
                size,
                buffer_address(mm),
            )
            call(
                self._sys,
                "KVM_SET_USER_MEMORY_REGION",
                self._fd,
                KVM_SET_USER_MEMORY_REGION,
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

    # ------------------------------------------------------------------ interrupts
    def set_irq_line(self, irq: int, level: bool) -> None:
        """KVM_IRQ_LINE: input ``irq`` of the in-kernel PIC and IOAPIC to ``level``.

        Only a VM created with ``VmOptions(irqchip=True)`` (KVM_CREATE_IRQCHIP) has them;
        otherwise :class:`~accel.errors.UnsupportedError`. ``irq`` is a GSI, 0..23 on
        the in-kernel IOAPIC (lines 0..15 also reach the PICs).
        """
        self._check_open()
        if not self.options.irqchip:
            raise UnsupportedError(
                f"this {ACCEL_NAME} VM has no in-kernel irqchip to raise IRQ {irq} on",
                hint="create the VM with VmOptions(irqchip=True)",
                accelerator=ACCEL_NAME,
                feature="irq-line",
            )
        if not isinstance(irq, int) or isinstance(irq, bool) or not 0 <= irq < 24:
            raise InvalidArgumentError(
                f"IRQ line must be an int in 0..23 (the in-kernel IOAPIC's pins), not {irq!r}",
                argument="irq",
                value=irq,
            )
        arg = bytes(b.kvm_irq_level(irq, 1 if level else 0))
        call(self._sys, "KVM_IRQ_LINE", self._fd, KVM_IRQ_LINE, arg)

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
        acc = self._host
        size = acc.vcpu_mmap_size()
        cpuid, mcg_cap = acc.vcpu_cpuid(
            spec, index, max(1, self.options.cpu_cores), user_apic=not self.options.irqchip
        )
        # A mutable buffer: fcntl.ioctl copies an immutable one only up to 1024 bytes.
        struct = bytearray(cpuid)
        fd = int(call(self._sys, "KVM_CREATE_VCPU", self._fd, KVM_CREATE_VCPU, index))
        # From here KVM holds vCPU ``index`` until the VM is closed, even if the rest fails.
        taken.add(index)
        vcpu = KvmVcpu(
            self,
            index,
            fd,
            spec,
            self._sys,
            size,
            struct,
            self._forget,
            mcg_cap=mcg_cap,
            in_kernel_irqchip=self.options.irqchip,
        )
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
        buf = self._clock_buf
        if buf is None:
            buf = self._clock_buf = b.kvm_clock_data()
        call(self._sys, "KVM_GET_CLOCK", self._fd, KVM_GET_CLOCK, buf)
        return ClockData(
            clock=buf.clock,
            flags=ClockFlags(buf.flags),
            realtime=buf.realtime,
            host_tsc=buf.host_tsc,
        )

    def _write_clock(self, data: ClockData, flags: int) -> None:
        buf = b.kvm_clock_data()
        buf.clock = data.clock
        buf.flags = flags
        buf.realtime = data.realtime
        buf.host_tsc = data.host_tsc
        call(self._sys, "KVM_SET_CLOCK", self._fd, KVM_SET_CLOCK, buf)

    def get_clock(self) -> ClockData:
        """KVM_GET_CLOCK (all fields), or the value cached at :meth:`pause` while paused."""
        self._check_open()
        if self._paused and self._clock_cache is not None:
            return self._clock_cache
        return self._read_clock()

    def set_clock(self, data: ClockData) -> None:
        """KVM_SET_CLOCK with every field of ``data`` (while paused: replaces the cache)."""
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
        if self._host.check_extension(b.KVM_CAP_KVMCLOCK_CTRL):
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
            if self._on_close is not None:
                self._on_close(self)
