"""A KVM vCPU's and VM's state beyond the registers, as :mod:`accel.cpustate` and
:mod:`accel.irqstate` records (the KVM half of a snapshot a real guest survives).

:class:`KvmVcpuState` (mixed into :class:`~accel_kvm.KvmVcpu`): the MSRs QEMU's
``kvm_get_msrs``/``kvm_put_msrs`` carry (:func:`snapshot_msrs`: the index list of
KVM_GET_MSR_INDEX_LIST filtered by the CPUID the vCPU was given), KVM_GET/SET_MSRS with
the kernel's short count turned into an error naming the first refused MSR (a partial
write is undone), XSAVE + XCRS, DEBUGREGS, VCPU_EVENTS, MP_STATE, LAPIC, the CPUID
given. :class:`KvmVmState` (mixed into :class:`~accel_kvm.KvmVM`): KVM_GET/SET_IRQCHIP
(PIC master, slave, IOAPIC), KVM_GET/SET_PIT2, KVM_GET/SET_TSC_KHZ.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, Protocol, cast

from accel.cpustate import (
    MSR_NAMES,
    CpuidEntry,
    DebugRegisters,
    FpuState,
    MpState,
    VcpuEvents,
    msr_name,
)
from accel.errors import BackendCallError, InvalidArgumentError, UnsupportedError
from accel.irqstate import (
    IOAPIC_PINS,
    IoapicState,
    IrqchipState,
    LapicState,
    PicState,
    PitChannelState,
    PitState,
)

from . import bindings as b
from .ioctls import (
    ACCEL_NAME,
    KVM_GET_DEBUGREGS,
    KVM_GET_IRQCHIP,
    KVM_GET_LAPIC,
    KVM_GET_MP_STATE,
    KVM_GET_MSRS,
    KVM_GET_PIT2,
    KVM_GET_TSC_KHZ,
    KVM_GET_VCPU_EVENTS,
    KVM_GET_XCRS,
    KVM_GET_XSAVE,
    KVM_SET_DEBUGREGS,
    KVM_SET_IRQCHIP,
    KVM_SET_LAPIC,
    KVM_SET_MP_STATE,
    KVM_SET_MSRS,
    KVM_SET_PIT2,
    KVM_SET_TSC_KHZ,
    KVM_SET_VCPU_EVENTS,
    KVM_SET_XCRS,
    KVM_SET_XSAVE,
    Sys,
    call,
)

__all__ = [
    "MSR_NAMES",
    "KvmVcpuState",
    "KvmVmState",
    "cpuid_entries",
    "msr_name",
    "snapshot_msrs",
]

# Architectural and KVM paravirtual MSR indices (Intel SDM vol. 4, asm/kvm_para.h).
MSR_IA32_TSC: Final = 0x10
MSR_IA32_TSC_ADJUST: Final = 0x3B
MSR_IA32_SYSENTER_CS: Final = 0x174
MSR_IA32_SYSENTER_ESP: Final = 0x175
MSR_IA32_SYSENTER_EIP: Final = 0x176
MSR_IA32_MISC_ENABLE: Final = 0x1A0
MSR_IA32_CR_PAT: Final = 0x277
MSR_STAR: Final = 0xC0000081
MSR_LSTAR: Final = 0xC0000082
MSR_CSTAR: Final = 0xC0000083
MSR_FMASK: Final = 0xC0000084
MSR_KERNEL_GS_BASE: Final = 0xC0000102
MSR_TSC_AUX: Final = 0xC0000103
MSR_KVM_WALL_CLOCK: Final = 0x11
MSR_KVM_SYSTEM_TIME: Final = 0x12
MSR_KVM_WALL_CLOCK_NEW: Final = 0x4B564D00
MSR_KVM_SYSTEM_TIME_NEW: Final = 0x4B564D01
MSR_KVM_ASYNC_PF_EN: Final = 0x4B564D02
MSR_KVM_STEAL_TIME: Final = 0x4B564D03
MSR_KVM_PV_EOI_EN: Final = 0x4B564D04


def _has(entries: Iterable[CpuidEntry], function: int, reg: str, bit: int) -> bool:
    for e in entries:
        if e.function == function and e.index == 0:
            return bool(getattr(e, reg) >> bit & 1)
    return False


def snapshot_msrs(kernel_list: Iterable[int], cpuid: tuple[CpuidEntry, ...]) -> tuple[int, ...]:
    """The MSRs of :data:`MSR_NAMES` that the kernel lists and the vCPU's CPUID gives it.

    As QEMU's kvm_get_msrs: the SYSCALL MSRs with long mode (0x80000001 EDX bit 29),
    TSC_AUX with RDTSCP (0x80000001 EDX 27) or RDPID (7 ECX 22), TSC_ADJUST with leaf 7
    EBX bit 1, each KVM paravirtual MSR with its leaf 0x40000001 EAX feature bit
    (clocksource: 0x11/0x12; clocksource2: the *_NEW pair; async PF 4, steal time 5,
    PV EOI 6). The others (TSC, SYSENTER, PAT, MISC_ENABLE) always.
    """
    listed = set(kernel_list)
    lm = _has(cpuid, 0x80000001, "edx", 29)
    pv = b.KVM_CPUID_FEATURES
    wanted = {
        MSR_IA32_TSC: True,
        MSR_IA32_SYSENTER_CS: True,
        MSR_IA32_SYSENTER_ESP: True,
        MSR_IA32_SYSENTER_EIP: True,
        MSR_STAR: lm,
        MSR_LSTAR: lm,
        MSR_CSTAR: lm,
        MSR_FMASK: lm,
        MSR_KERNEL_GS_BASE: lm,
        MSR_IA32_CR_PAT: True,
        MSR_IA32_MISC_ENABLE: True,
        MSR_TSC_AUX: _has(cpuid, 0x80000001, "edx", 27) or _has(cpuid, 7, "ecx", 22),
        MSR_IA32_TSC_ADJUST: _has(cpuid, 7, "ebx", 1),
        MSR_KVM_WALL_CLOCK: _has(cpuid, pv, "eax", b.KVM_FEATURE_CLOCKSOURCE),
        MSR_KVM_SYSTEM_TIME: _has(cpuid, pv, "eax", b.KVM_FEATURE_CLOCKSOURCE),
        MSR_KVM_WALL_CLOCK_NEW: _has(cpuid, pv, "eax", b.KVM_FEATURE_CLOCKSOURCE2),
        MSR_KVM_SYSTEM_TIME_NEW: _has(cpuid, pv, "eax", b.KVM_FEATURE_CLOCKSOURCE2),
        MSR_KVM_ASYNC_PF_EN: _has(cpuid, pv, "eax", b.KVM_FEATURE_ASYNC_PF),
        MSR_KVM_STEAL_TIME: _has(cpuid, pv, "eax", b.KVM_FEATURE_STEAL_TIME),
        MSR_KVM_PV_EOI_EN: _has(cpuid, pv, "eax", b.KVM_FEATURE_PV_EOI),
    }
    return tuple(sorted(i for i, want in wanted.items() if want and i in listed))


def cpuid_entries(struct: bytes | bytearray) -> tuple[CpuidEntry, ...]:
    """The entries of a ``struct kvm_cpuid2`` buffer (what KVM_SET_CPUID2 was given)."""
    words = memoryview(bytes(struct)).cast("I")
    try:
        n = words[0]
        out = []
        for k in range(n):
            i = b.CPUID2_HEADER_WORDS + k * b.CPUID_ENTRY2_WORDS
            function, index, _flags, eax, ebx, ecx, edx = words[i : i + 7]
            out.append(CpuidEntry(function, index, eax, ebx, ecx, edx))
        return tuple(out)
    finally:
        words.release()


_MP_STATES: Final = {
    b.KVM_MP_STATE_RUNNABLE: MpState.RUNNABLE,
    b.KVM_MP_STATE_UNINITIALIZED: MpState.UNINITIALIZED,
    b.KVM_MP_STATE_INIT_RECEIVED: MpState.INIT_RECEIVED,
    b.KVM_MP_STATE_HALTED: MpState.HALTED,
    b.KVM_MP_STATE_SIPI_RECEIVED: MpState.SIPI_RECEIVED,
}
_MP_NUMBERS: Final = {v: k for k, v in _MP_STATES.items()}

_XCR0: Final = 0
_PV_CLOCK_MSRS: Final = (MSR_KVM_SYSTEM_TIME_NEW, MSR_KVM_SYSTEM_TIME)
_MSR_ENTRY: Final = ctypes.sizeof(b.kvm_msr_entry)
_MSRS_HEADER: Final = ctypes.sizeof(b.kvm_msrs)


def _msr_buffer(values: Iterable[tuple[int, int]]) -> bytearray:
    items = list(values)
    buf = bytearray(_MSRS_HEADER + _MSR_ENTRY * len(items))
    b.kvm_msrs.from_buffer(buf).nmsrs = len(items)
    for k, (index, data) in enumerate(items):
        entry = b.kvm_msr_entry.from_buffer(buf, _MSRS_HEADER + k * _MSR_ENTRY)
        entry.index = index
        entry.data = data
    return buf


def _msr_values(buf: bytearray, count: int) -> dict[int, int]:
    out: dict[int, int] = {}
    for k in range(count):
        entry = b.kvm_msr_entry.from_buffer(buf, _MSRS_HEADER + k * _MSR_ENTRY)
        out[entry.index] = entry.data
    return out


class _KvmVmLike(Protocol):
    """What a vCPU asks of its :class:`~accel_kvm.KvmVM`."""

    @property
    def options(self) -> Any: ...

    def msr_index_list(self) -> tuple[int, ...]: ...


class _HostLike(Protocol):
    """What the VM half asks of the accelerator (:class:`~accel_kvm.vm.KvmHost` has it)."""

    def check_extension(self, cap_number: int) -> int: ...

    def msr_index_list(self) -> tuple[int, ...]: ...


class _HasFd(Protocol):
    @property
    def fd(self) -> int: ...


class KvmVcpuState:
    """The vCPU half: mixed into :class:`~accel_kvm.KvmVcpu` (which provides the fd, the
    system-call layer, the VM and the CPUID struct it gave KVM_SET_CPUID2)."""

    _sys: Sys
    _fd: int
    _cpuid_struct: bytes
    _user_halted: bool
    index: int

    if TYPE_CHECKING:

        def _check_open(self) -> None: ...

    def _kvm_vm(self) -> _KvmVmLike:
        return cast(_KvmVmLike, getattr(self, "vm"))  # noqa: B009 (typed as accel.VM)

    def _has_irqchip(self) -> bool:
        return bool(self._kvm_vm().options.irqchip)

    # ------------------------------------------------------------------ CPUID, MSRs
    def cpuid(self) -> tuple[CpuidEntry, ...]:
        """The CPUID table given with KVM_SET_CPUID2."""
        return cpuid_entries(self._cpuid_struct)

    def msr_indices(self) -> tuple[int, ...]:
        """:func:`snapshot_msrs` of KVM_GET_MSR_INDEX_LIST and this vCPU's CPUID."""
        self._check_open()
        return snapshot_msrs(self._kvm_vm().msr_index_list(), self.cpuid())

    def pv_clock_msrs(self) -> tuple[int, ...]:
        """The kvmclock system-time MSRs this vCPU has (by its CPUID)."""
        held = self.msr_indices()
        return tuple(i for i in _PV_CLOCK_MSRS if i in held)

    def _msr_ioctl(self, name: str, request: int, buf: bytearray, indices: list[int]) -> int:
        done = int(call(self._sys, name, self._fd, request, buf))
        if done < len(indices):
            raise BackendCallError(
                name,
                errno.EINVAL,
                accelerator=ACCEL_NAME,
                detail=f"vcpu {self.index}: KVM refused MSR {msr_name(indices[done])} "
                f"({done} of {len(indices)} processed)",
                hint="the vCPU does not have that MSR (check msr_indices() and its CPUID)",
                msr=indices[done],
            )
        return done

    def get_msrs(self, indices: Iterator[int] | tuple[int, ...] | list[int]) -> dict[int, int]:
        """KVM_GET_MSRS; a short count is a :class:`BackendCallError` naming the MSR."""
        self._check_open()
        wanted = [int(i) for i in indices]
        if not wanted:
            return {}
        buf = _msr_buffer((i, 0) for i in wanted)
        self._msr_ioctl("KVM_GET_MSRS", KVM_GET_MSRS, buf, wanted)
        return _msr_values(buf, len(wanted))

    def set_msrs(self, values: Mapping[int, int]) -> None:
        """KVM_SET_MSRS, all or nothing: the old values are read first and, when KVM
        stops at a refused MSR, written back to those it had already set.

        (On this host's kvm_pvm a write of MSR_IA32_TSC is accepted and ignored: the guest
        TSC follows the host's.)
        """
        self._check_open()
        for index, value in values.items():
            if not 0 <= value < 1 << 64 or not 0 <= index < 1 << 32:
                raise InvalidArgumentError(
                    f"MSR {index:#x} = {value:#x} is outside 32-bit index / 64-bit value",
                    argument="values",
                    value=index,
                )
        wanted = list(values)
        if not wanted:
            return
        old_buf = _msr_buffer((i, 0) for i in wanted)
        readable = int(call(self._sys, "KVM_GET_MSRS", self._fd, KVM_GET_MSRS, old_buf))
        old = _msr_values(old_buf, readable)
        buf = _msr_buffer(values.items())
        done = int(call(self._sys, "KVM_SET_MSRS", self._fd, KVM_SET_MSRS, buf))
        if done < len(wanted):
            undo = [(i, old[i]) for i in wanted[:done] if i in old]
            if undo:
                call(self._sys, "KVM_SET_MSRS", self._fd, KVM_SET_MSRS, _msr_buffer(undo))
            raise BackendCallError(
                "KVM_SET_MSRS",
                errno.EINVAL,
                accelerator=ACCEL_NAME,
                detail=f"vcpu {self.index}: KVM refused MSR {msr_name(wanted[done])} = "
                f"{values[wanted[done]]:#x}; the {done} written before it were put back",
                hint="the vCPU does not have that MSR or refuses the value",
                msr=wanted[done],
            )

    # ------------------------------------------------------------------ FPU
    def get_fpu(self) -> FpuState:
        """KVM_GET_XSAVE (the 4 KiB area) and XCR0 from KVM_GET_XCRS."""
        self._check_open()
        area = b.kvm_xsave()
        call(self._sys, "KVM_GET_XSAVE", self._fd, KVM_GET_XSAVE, area)
        xcrs = b.kvm_xcrs()
        call(self._sys, "KVM_GET_XCRS", self._fd, KVM_GET_XCRS, xcrs)
        xcr0 = 1
        for k in range(min(xcrs.nr_xcrs, b.KVM_MAX_XCRS)):
            if xcrs.xcrs[k].xcr == _XCR0:
                xcr0 = xcrs.xcrs[k].value
        return FpuState(bytes(area), xcr0)

    def set_fpu(self, state: FpuState) -> None:
        """KVM_SET_XCRS (XCR0) then KVM_SET_XSAVE; on a refused area XCR0 is put back."""
        self._check_open()
        if len(state.xsave) > b.KVM_XSAVE_SIZE:
            raise InvalidArgumentError(
                f"the XSAVE area is {len(state.xsave)} bytes; this KVM takes {b.KVM_XSAVE_SIZE}",
                argument="state",
                value=len(state.xsave),
            )
        area = b.kvm_xsave.from_buffer_copy(state.xsave.ljust(b.KVM_XSAVE_SIZE, b"\0"))
        old = b.kvm_xcrs()
        call(self._sys, "KVM_GET_XCRS", self._fd, KVM_GET_XCRS, old)
        xcrs = b.kvm_xcrs()
        xcrs.nr_xcrs = 1
        xcrs.xcrs[0].xcr = _XCR0
        xcrs.xcrs[0].value = state.xcr0
        call(self._sys, "KVM_SET_XCRS", self._fd, KVM_SET_XCRS, xcrs)
        try:
            call(self._sys, "KVM_SET_XSAVE", self._fd, KVM_SET_XSAVE, area)
        except BaseException:
            with contextlib.suppress(OSError):  # the error raised is the XSAVE one
                self._sys.ioctl(self._fd, KVM_SET_XCRS, old)
            raise

    # ------------------------------------------------------------------ debug, events, MP
    def get_debug_registers(self) -> DebugRegisters:
        """KVM_GET_DEBUGREGS."""
        self._check_open()
        d = b.kvm_debugregs()
        call(self._sys, "KVM_GET_DEBUGREGS", self._fd, KVM_GET_DEBUGREGS, d)
        return DebugRegisters(d.db[0], d.db[1], d.db[2], d.db[3], d.dr6, d.dr7)

    def set_debug_registers(self, state: DebugRegisters) -> None:
        """KVM_SET_DEBUGREGS."""
        self._check_open()
        d = b.kvm_debugregs()
        d.db[0], d.db[1], d.db[2], d.db[3] = state.dr0, state.dr1, state.dr2, state.dr3
        d.dr6, d.dr7 = state.dr6, state.dr7
        call(self._sys, "KVM_SET_DEBUGREGS", self._fd, KVM_SET_DEBUGREGS, d)

    def get_events(self) -> VcpuEvents:
        """KVM_GET_VCPU_EVENTS."""
        self._check_open()
        e = b.kvm_vcpu_events()
        call(self._sys, "KVM_GET_VCPU_EVENTS", self._fd, KVM_GET_VCPU_EVENTS, e)
        return VcpuEvents(
            exception_injected=bool(e.exception.injected),
            exception_pending=bool(e.exception.pending),
            exception_nr=e.exception.nr,
            exception_has_error_code=bool(e.exception.has_error_code),
            exception_error_code=e.exception.error_code,
            interrupt_injected=bool(e.interrupt.injected),
            interrupt_nr=e.interrupt.nr,
            interrupt_soft=bool(e.interrupt.soft),
            interrupt_shadow=e.interrupt.shadow,
            nmi_injected=bool(e.nmi.injected),
            nmi_pending=bool(e.nmi.pending),
            nmi_masked=bool(e.nmi.masked),
            smi_pending=bool(e.smi.pending),
            smm=bool(e.smi.smm),
        )

    def set_events(self, events: VcpuEvents) -> None:
        """KVM_SET_VCPU_EVENTS with NMI-pending, shadow and SMM marked valid (QEMU's
        kvm_put_vcpu_events at a full state write)."""
        self._check_open()
        e = b.kvm_vcpu_events()
        e.exception.injected = events.exception_injected
        e.exception.pending = events.exception_pending
        e.exception.nr = events.exception_nr
        e.exception.has_error_code = events.exception_has_error_code
        e.exception.error_code = events.exception_error_code
        e.interrupt.injected = events.interrupt_injected
        e.interrupt.nr = events.interrupt_nr
        e.interrupt.soft = events.interrupt_soft
        e.interrupt.shadow = events.interrupt_shadow
        e.nmi.injected = events.nmi_injected
        e.nmi.pending = events.nmi_pending
        e.nmi.masked = events.nmi_masked
        e.smi.pending = events.smi_pending
        e.smi.smm = events.smm
        e.flags = (
            b.KVM_VCPUEVENT_VALID_NMI_PENDING
            | b.KVM_VCPUEVENT_VALID_SHADOW
            | b.KVM_VCPUEVENT_VALID_SMM
        )
        call(self._sys, "KVM_SET_VCPU_EVENTS", self._fd, KVM_SET_VCPU_EVENTS, e)

    def get_mp_state(self) -> MpState:
        """KVM_GET_MP_STATE; without the in-kernel LAPIC, HALTED from a HaltExit until the
        next run() (KVM itself says RUNNABLE there: the halt is userspace's)."""
        self._check_open()
        if not self._has_irqchip() and self._user_halted:
            return MpState.HALTED
        m = b.kvm_mp_state()
        call(self._sys, "KVM_GET_MP_STATE", self._fd, KVM_GET_MP_STATE, m)
        state = _MP_STATES.get(m.mp_state)
        if state is None:
            raise UnsupportedError(
                f"vcpu {self.index}: KVM MP state {m.mp_state} has no neutral equivalent",
                accelerator=ACCEL_NAME,
                feature="vcpu-state",
            )
        return state

    def set_mp_state(self, state: MpState) -> None:
        """KVM_SET_MP_STATE.

        Without the in-kernel LAPIC KVM takes only RUNNABLE (EINVAL otherwise): HLT exits
        to userspace with RIP past the HLT, so a HALTED vCPU is a RUNNABLE one whose last
        run() ended at HLT -- it is set RUNNABLE and reported HALTED until it runs, as the
        TCG plugin does. The INIT/SIPI states belong to an interrupt controller it lacks.
        """
        self._check_open()
        if not self._has_irqchip():
            if state not in (MpState.RUNNABLE, MpState.HALTED):
                raise InvalidArgumentError(
                    f"vcpu {self.index}: without the in-kernel irqchip a KVM vCPU is "
                    f"RUNNABLE or HALTED, not {state.value}",
                    hint="create the VM with the in-kernel irqchip to load INIT/SIPI states",
                    argument="state",
                    value=state,
                )
            m = b.kvm_mp_state(_MP_NUMBERS[MpState.RUNNABLE])
            call(self._sys, "KVM_SET_MP_STATE", self._fd, KVM_SET_MP_STATE, m)
            self._user_halted = state is MpState.HALTED
            return
        m = b.kvm_mp_state(_MP_NUMBERS[state])
        call(self._sys, "KVM_SET_MP_STATE", self._fd, KVM_SET_MP_STATE, m)

    # ------------------------------------------------------------------ LAPIC
    def get_lapic(self) -> LapicState:
        """KVM_GET_LAPIC (only with the in-kernel irqchip: otherwise UnsupportedError)."""
        self._check_open()
        self._require_irqchip("read")
        page = b.kvm_lapic_state()
        call(self._sys, "KVM_GET_LAPIC", self._fd, KVM_GET_LAPIC, page)
        return LapicState(bytes(page))

    def set_lapic(self, state: LapicState) -> None:
        """KVM_SET_LAPIC."""
        self._check_open()
        self._require_irqchip("write")
        page = b.kvm_lapic_state.from_buffer_copy(state.regs)
        call(self._sys, "KVM_SET_LAPIC", self._fd, KVM_SET_LAPIC, page)

    def _require_irqchip(self, what: str) -> None:
        if not self._has_irqchip():
            raise UnsupportedError(
                f"vcpu {self.index}: this kvm VM has no in-kernel LAPIC to {what}",
                hint="create the VM with VmOptions(irqchip=True)",
                accelerator=ACCEL_NAME,
                feature="irqchip",
            )


class KvmVmState:
    """The VM half: mixed into :class:`~accel_kvm.KvmVM`."""

    _sys: Sys
    _fd: int
    _vcpus: Sequence[_HasFd]
    options: Any

    if TYPE_CHECKING:

        def _check_open(self) -> None: ...

    def _has_irqchip(self) -> bool:
        return bool(self.options.irqchip)

    def _has_pit(self) -> bool:
        return bool(self.options.irqchip and self.options.pit)

    def _vcpu_fds(self) -> list[int]:
        return [v.fd for v in self._vcpus]

    def _first_vcpu_fd(self) -> int | None:
        fds = self._vcpu_fds()
        return fds[0] if fds else None

    def _state_host(self) -> _HostLike:
        return cast(_HostLike, getattr(self, "_host"))  # noqa: B009 (the VM's KvmHost)

    def _tsc_control(self) -> bool:
        return bool(self._state_host().check_extension(b.KVM_CAP_TSC_CONTROL))

    def msr_index_list(self) -> tuple[int, ...]:
        """KVM_GET_MSR_INDEX_LIST of the accelerator (read once per accelerator)."""
        return self._state_host().msr_index_list()

    def _not_held_here(self, what: str, feature: str) -> UnsupportedError:
        return UnsupportedError(
            f"this kvm VM holds no {what}",
            hint="create the VM with VmOptions(irqchip=True, pit=True)",
            accelerator=ACCEL_NAME,
            feature=feature,
        )

    def _chip(self, chip_id: int) -> b.kvm_irqchip:
        chip = b.kvm_irqchip()
        chip.chip_id = chip_id
        call(self._sys, "KVM_GET_IRQCHIP", self._fd, KVM_GET_IRQCHIP, chip)
        return chip

    def get_irqchip_state(self) -> IrqchipState:
        """KVM_GET_IRQCHIP for the PIC master, the PIC slave and the IOAPIC."""
        self._check_open()
        if not self._has_irqchip():
            raise self._not_held_here("in-kernel PIC/IOAPIC", "irqchip")
        pics = []
        for chip_id in (b.KVM_IRQCHIP_PIC_MASTER, b.KVM_IRQCHIP_PIC_SLAVE):
            pic = self._chip(chip_id).chip.pic
            pics.append(PicState(*(getattr(pic, f) for f in PicState.FIELDS)))
        io = self._chip(b.KVM_IRQCHIP_IOAPIC).chip.ioapic
        ioapic = IoapicState(io.base_address, io.ioregsel, io.id, io.irr, list(io.redirtbl))
        return IrqchipState(pics[0], pics[1], ioapic)

    def set_irqchip_state(self, state: IrqchipState) -> None:
        """KVM_SET_IRQCHIP of all three chips; if one is refused the ones already
        written are put back."""
        self._check_open()
        if not self._has_irqchip():
            raise self._not_held_here("in-kernel PIC/IOAPIC", "irqchip")
        if len(state.ioapic.redirection) != IOAPIC_PINS:
            raise InvalidArgumentError(
                f"the IOAPIC has {IOAPIC_PINS} redirection entries, got "
                f"{len(state.ioapic.redirection)}",
                argument="state",
                value=len(state.ioapic.redirection),
            )
        new: list[b.kvm_irqchip] = []
        for chip_id, pic_state in (
            (b.KVM_IRQCHIP_PIC_MASTER, state.pic_master),
            (b.KVM_IRQCHIP_PIC_SLAVE, state.pic_slave),
        ):
            chip = b.kvm_irqchip()
            chip.chip_id = chip_id
            for f in PicState.FIELDS:
                setattr(chip.chip.pic, f, getattr(pic_state, f) & 0xFF)
            new.append(chip)
        chip = b.kvm_irqchip()
        chip.chip_id = b.KVM_IRQCHIP_IOAPIC
        io = chip.chip.ioapic
        io.base_address = state.ioapic.base_address
        io.ioregsel, io.id, io.irr = state.ioapic.ioregsel, state.ioapic.id, state.ioapic.irr
        for k, entry in enumerate(state.ioapic.redirection):
            io.redirtbl[k] = entry
        new.append(chip)
        old = [self._chip(c.chip_id) for c in new]
        done = 0
        try:
            for chip in new:
                call(self._sys, "KVM_SET_IRQCHIP", self._fd, KVM_SET_IRQCHIP, chip)
                done += 1
        except BaseException:
            for chip in old[:done]:
                with contextlib.suppress(OSError):  # the error raised is the first one
                    self._sys.ioctl(self._fd, KVM_SET_IRQCHIP, chip)
            raise

    def get_pit_state(self) -> PitState:
        """KVM_GET_PIT2."""
        self._check_open()
        if not self._has_pit():
            raise self._not_held_here("in-kernel PIT", "pit")
        st = b.kvm_pit_state2()
        call(self._sys, "KVM_GET_PIT2", self._fd, KVM_GET_PIT2, st)
        channels = [
            PitChannelState(*(getattr(ch, f) for f in PitChannelState.FIELDS)) for ch in st.channels
        ]
        return PitState(channels, st.flags)

    def set_pit_state(self, state: PitState) -> None:
        """KVM_SET_PIT2."""
        self._check_open()
        if not self._has_pit():
            raise self._not_held_here("in-kernel PIT", "pit")
        if len(state.channels) != 3:
            raise InvalidArgumentError(
                f"the PIT has 3 channels, got {len(state.channels)}",
                argument="state",
                value=len(state.channels),
            )
        st = b.kvm_pit_state2()
        for ch, src in zip(st.channels, state.channels, strict=True):
            for f in PitChannelState.FIELDS:
                setattr(ch, f, getattr(src, f))
        st.flags = state.flags
        call(self._sys, "KVM_SET_PIT2", self._fd, KVM_SET_PIT2, st)

    def get_tsc_khz(self) -> int:
        """KVM_GET_TSC_KHZ on the first vCPU (the frequency every vCPU of the VM has)."""
        self._check_open()
        fd = self._first_vcpu_fd()
        if fd is None:
            raise self._not_held_here("vCPU to read the TSC frequency of", "tsc-khz")
        return int(call(self._sys, "KVM_GET_TSC_KHZ", fd, KVM_GET_TSC_KHZ, 0))

    def set_tsc_khz(self, khz: int) -> None:
        """KVM_SET_TSC_KHZ on every vCPU (needs KVM_CAP_TSC_CONTROL: this host has not)."""
        self._check_open()
        if not self._tsc_control():
            raise UnsupportedError(
                f"this kvm cannot scale the guest TSC to {khz} kHz (no KVM_CAP_TSC_CONTROL)",
                accelerator=ACCEL_NAME,
                feature="tsc-control",
            )
        for fd in self._vcpu_fds():
            call(self._sys, "KVM_SET_TSC_KHZ", fd, KVM_SET_TSC_KHZ, khz)
