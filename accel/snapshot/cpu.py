"""The per-vCPU sections beyond the registers, and the VM's in-accelerator chips.

==================  ========  ===========================================================
section             instance  contents (written when the accelerator holds the state)
==================  ========  ===========================================================
``cpu-msrs``        vCPU      index/value pairs of :meth:`Vcpu.msr_indices` (VCPU_STATE)
``cpu-fpu``         vCPU      the XSAVE area and XCR0 (VCPU_STATE)
``cpu-debug``       vCPU      DR0-DR3, DR6, DR7 (VCPU_STATE)
``cpu-events``      vCPU      exception / interrupt / NMI / SMI in flight (VCPU_STATE)
``cpu-mp-state``    vCPU      runnable, halted, waiting for INIT/SIPI (VCPU_STATE)
``cpu-lapic``       vCPU      the local APIC's 1 KiB register page (in-accelerator LAPIC)
``cpuid``           vCPU      the CPUID table the vCPU was given
``irqchip``         0         PIC master, PIC slave, IOAPIC (in-accelerator irqchip)
``pit``             0         the 8254's channels (in-accelerator PIT)
``tsc``             0         the guest TSC frequency in kHz and each vCPU's TSC
==================  ========  ===========================================================

Each accelerator writes the sections it can read: a method that raises
:class:`~accel.errors.UnsupportedError` means "not held here" and the section is left
out (that is the interface's contract, so nothing here looks at an accelerator's name).
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field, fields
from typing import Any

from ..accelerator import VM, Vcpu
from ..capabilities import Capability
from ..cpustate import CpuidEntry, DebugRegisters, FpuState, MpState, VcpuEvents
from ..errors import (
    AccelError,
    BackendCallError,
    InvalidArgumentError,
    SnapshotError,
    SnapshotFormatError,
    SnapshotMismatchError,
    UnsupportedError,
)
from ..irqstate import (
    IOAPIC_PINS,
    LAPIC_PAGE_SIZE,
    IoapicState,
    IrqchipState,
    LapicState,
    PicState,
    PitChannelState,
    PitState,
)
from .vmstate import (
    BOOL,
    I64,
    U8,
    U16,
    U32,
    U64,
    Array,
    Bytes,
    Field,
    Nested,
    Str,
    VarBytes,
    VMStateDescription,
)

__all__ = [
    "CPU_SECTIONS",
    "PLATFORM_SECTIONS",
    "FullVcpuState",
    "PlatformState",
    "apply_platform",
    "apply_vcpu",
    "save_platform",
    "save_vcpu",
]

#: Bound on the XSAVE area a snapshot may carry (the largest CPUID leaf 0xD size today
#: is under 12 KiB with AMX; 64 KiB leaves room).
MAX_XSAVE = 64 * 1024


# --------------------------------------------------------------------------- records


@dataclass
class MsrEntry:
    index: int = 0
    value: int = 0


@dataclass
class MsrList:
    entries: list[MsrEntry] = field(default_factory=list)

    def as_dict(self) -> dict[int, int]:
        return {e.index: e.value for e in self.entries}


@dataclass
class FpuSection:
    xsave: bytes = b""
    xcr0: int = 1


@dataclass
class DebugSection:
    dr0: int = 0
    dr1: int = 0
    dr2: int = 0
    dr3: int = 0
    dr6: int = 0xFFFF0FF0
    dr7: int = 0x400


@dataclass
class EventsSection:
    exception_injected: bool = False
    exception_pending: bool = False
    exception_nr: int = 0
    exception_has_error_code: bool = False
    exception_error_code: int = 0
    interrupt_injected: bool = False
    interrupt_nr: int = 0
    interrupt_soft: bool = False
    interrupt_shadow: int = 0
    nmi_injected: bool = False
    nmi_pending: bool = False
    nmi_masked: bool = False
    smi_pending: bool = False
    smm: bool = False


@dataclass
class MpSection:
    state: str = MpState.RUNNABLE.value


@dataclass
class LapicSection:
    regs: bytes = bytes(LAPIC_PAGE_SIZE)


@dataclass
class CpuidLeaf:
    function: int = 0
    index: int = 0
    eax: int = 0
    ebx: int = 0
    ecx: int = 0
    edx: int = 0


@dataclass
class CpuidTable:
    entries: list[CpuidLeaf] = field(default_factory=list)

    def as_entries(self) -> tuple[CpuidEntry, ...]:
        return tuple(
            CpuidEntry(e.function, e.index, e.eax, e.ebx, e.ecx, e.edx) for e in self.entries
        )


@dataclass
class TscState:
    khz: int = 0
    tsc: list[int] = field(default_factory=list)


@dataclass
class FullVcpuState:
    """What a snapshot holds for one vCPU beyond regs/sregs (None: not in the snapshot)."""

    msrs: dict[int, int] | None = None
    fpu: FpuState | None = None
    debug: DebugRegisters | None = None
    events: VcpuEvents | None = None
    mp_state: MpState | None = None
    lapic: LapicState | None = None
    cpuid: tuple[CpuidEntry, ...] | None = None


@dataclass
class PlatformState:
    """What a snapshot holds for the VM's in-accelerator chips (None: not in it)."""

    irqchip: IrqchipState | None = None
    pit: PitState | None = None
    tsc: TscState | None = None


# --------------------------------------------------------------------------- descriptions


def _check_fpu(st: FpuSection, version_id: int) -> None:
    try:
        FpuState(st.xsave, st.xcr0)
    except AccelError as exc:
        raise SnapshotFormatError(f"section 'cpu-fpu': {exc}", section="cpu-fpu") from exc


def _check_mp(st: MpSection, version_id: int) -> None:
    try:
        MpState(st.state)
    except ValueError:
        raise SnapshotFormatError(
            f"section 'cpu-mp-state': unknown MP state {st.state!r}",
            section="cpu-mp-state",
            found=st.state,
            expected=[m.value for m in MpState],
        ) from None


def _check_irqchip(chip: IrqchipState, version_id: int) -> None:
    st = chip.ioapic
    if len(st.redirection) != IOAPIC_PINS:
        raise SnapshotFormatError(
            f"section 'irqchip': the IOAPIC has {IOAPIC_PINS} redirection entries, the "
            f"snapshot {len(st.redirection)}",
            section="irqchip",
            expected=IOAPIC_PINS,
            found=len(st.redirection),
        )


def _check_pit(st: PitState, version_id: int) -> None:
    if len(st.channels) != 3:
        raise SnapshotFormatError(
            f"section 'pit': the 8254 has 3 channels, the snapshot {len(st.channels)}",
            section="pit",
            expected=3,
            found=len(st.channels),
        )


MSR_ENTRY: VMStateDescription[MsrEntry] = VMStateDescription(
    "msr", 1, 1, MsrEntry, fields=(Field("index", U32), Field("value", U64))
)
CPU_MSRS: VMStateDescription[MsrList] = VMStateDescription(
    "cpu-msrs",
    1,
    1,
    MsrList,
    fields=(Field("entries", Array(Nested(MSR_ENTRY), max_count=1024)),),
    doc="MSR index/value pairs",
)
CPU_FPU: VMStateDescription[FpuSection] = VMStateDescription(
    "cpu-fpu",
    1,
    1,
    FpuSection,
    fields=(Field("xsave", VarBytes(MAX_XSAVE)), Field("xcr0", U64)),
    post_load=_check_fpu,
    doc="XSAVE area (standard format) and XCR0",
)
CPU_DEBUG: VMStateDescription[DebugSection] = VMStateDescription(
    "cpu-debug",
    1,
    1,
    DebugSection,
    fields=tuple(Field(f.name, U64) for f in fields(DebugSection)),
    doc="DR0-DR3, DR6, DR7",
)
_EVENT_TYPES = {"exception_nr": U8, "exception_error_code": U32, "interrupt_nr": U8}
CPU_EVENTS: VMStateDescription[EventsSection] = VMStateDescription(
    "cpu-events",
    1,
    1,
    EventsSection,
    fields=tuple(
        Field(f.name, _EVENT_TYPES.get(f.name, U8 if f.name == "interrupt_shadow" else BOOL))
        for f in fields(EventsSection)
    ),
    doc="exception, interrupt, NMI and SMI in flight",
)
CPU_MP_STATE: VMStateDescription[MpSection] = VMStateDescription(
    "cpu-mp-state",
    1,
    1,
    MpSection,
    fields=(Field("state", Str(32)),),
    post_load=_check_mp,
    doc="multiprocessor state",
)
CPU_LAPIC: VMStateDescription[LapicSection] = VMStateDescription(
    "cpu-lapic",
    1,
    1,
    LapicSection,
    fields=(Field("regs", Bytes(LAPIC_PAGE_SIZE)),),
    doc="local APIC register page",
)
CPUID_LEAF: VMStateDescription[CpuidLeaf] = VMStateDescription(
    "cpuid-leaf",
    1,
    1,
    CpuidLeaf,
    fields=tuple(Field(f.name, U32) for f in fields(CpuidLeaf)),
)
CPUID: VMStateDescription[CpuidTable] = VMStateDescription(
    "cpuid",
    1,
    1,
    CpuidTable,
    fields=(Field("entries", Array(Nested(CPUID_LEAF), max_count=512)),),
    doc="the CPUID the vCPU was given",
)
PIC: VMStateDescription[PicState] = VMStateDescription(
    "pic", 1, 1, PicState, fields=tuple(Field(n, U8) for n in PicState.FIELDS)
)
IOAPIC: VMStateDescription[IoapicState] = VMStateDescription(
    "ioapic",
    1,
    1,
    IoapicState,
    fields=(
        Field("base_address", U64),
        Field("ioregsel", U32),
        Field("id", U32),
        Field("irr", U32),
        Field("redirection", Array(U64, max_count=IOAPIC_PINS)),
    ),
)
IRQCHIP: VMStateDescription[IrqchipState] = VMStateDescription(
    "irqchip",
    1,
    1,
    IrqchipState,
    fields=(
        Field("pic_master", Nested(PIC)),
        Field("pic_slave", Nested(PIC)),
        Field("ioapic", Nested(IOAPIC)),
    ),
    post_load=_check_irqchip,
    doc="PIC master/slave and IOAPIC",
)
_PIT_TYPES = {"count": U32, "latched_count": U16, "count_load_time": I64}
PIT_CHANNEL: VMStateDescription[PitChannelState] = VMStateDescription(
    "pit-channel",
    1,
    1,
    PitChannelState,
    fields=tuple(Field(n, _PIT_TYPES.get(n, U8)) for n in PitChannelState.FIELDS),
)
PIT: VMStateDescription[PitState] = VMStateDescription(
    "pit",
    1,
    1,
    PitState,
    fields=(Field("channels", Array(Nested(PIT_CHANNEL), max_count=3)), Field("flags", U32)),
    post_load=_check_pit,
    doc="8254 channels",
)
TSC: VMStateDescription[TscState] = VMStateDescription(
    "tsc",
    1,
    1,
    TscState,
    fields=(Field("khz", U32), Field("tsc", Array(U64, max_count=1024))),
    doc="guest TSC frequency (kHz) and each vCPU's TSC",
)

#: Per-vCPU sections (instance = vCPU index).
CPU_SECTIONS: dict[str, VMStateDescription[Any]] = {
    d.name: d for d in (CPU_MSRS, CPU_FPU, CPU_DEBUG, CPU_EVENTS, CPU_MP_STATE, CPU_LAPIC, CPUID)
}
#: Per-VM sections (instance 0).
PLATFORM_SECTIONS: dict[str, VMStateDescription[Any]] = {d.name: d for d in (IRQCHIP, PIT, TSC)}


# --------------------------------------------------------------------------- save


def _held(read: Any) -> Any:
    """``read()``, or None when the accelerator does not hold that state."""
    try:
        return read()
    except UnsupportedError:
        return None


def vcpu_state_supported(vm: VM) -> bool:
    try:
        return vm.check(Capability.VCPU_STATE).is_yes
    except AccelError:
        return False


Part = tuple[str, int, int, bytes]


def _part(desc: VMStateDescription[Any], instance: int, obj: Any) -> Part:
    from .vmstate import encode

    return (desc.name, instance, desc.version_id, encode(desc, obj))


def save_vcpu(v: Vcpu, full: bool) -> list[Part]:
    """The sections of vCPU ``v`` (``full``: the accelerator answers VCPU_STATE yes)."""
    out: list[Part] = []
    i = v.index
    if full:
        msrs = v.get_msrs(v.msr_indices())
        out.append(
            _part(CPU_MSRS, i, MsrList([MsrEntry(k, val) for k, val in sorted(msrs.items())]))
        )
        fpu = v.get_fpu()
        out.append(_part(CPU_FPU, i, FpuSection(fpu.xsave, fpu.xcr0)))
        d = v.get_debug_registers()
        out.append(_part(CPU_DEBUG, i, DebugSection(d.dr0, d.dr1, d.dr2, d.dr3, d.dr6, d.dr7)))
        ev = v.get_events()
        out.append(
            _part(CPU_EVENTS, i, EventsSection(**{f.name: getattr(ev, f.name) for f in fields(ev)}))
        )
        out.append(_part(CPU_MP_STATE, i, MpSection(v.get_mp_state().value)))
        table = _held(v.cpuid)
        if table is not None:
            leaves = [CpuidLeaf(e.function, e.index, e.eax, e.ebx, e.ecx, e.edx) for e in table]
            out.append(_part(CPUID, i, CpuidTable(leaves)))
    lapic = _held(v.get_lapic)
    if lapic is not None:
        out.append(_part(CPU_LAPIC, i, LapicSection(lapic.regs)))
    return out


def save_platform(vm: VM, msrs_tsc: list[int]) -> list[Part]:
    """The VM sections of the in-accelerator chips and the TSC."""
    out: list[Part] = []
    chip = _held(vm.get_irqchip_state)
    if chip is not None:
        out.append(_part(IRQCHIP, 0, chip))
    pit = _held(vm.get_pit_state)
    if pit is not None:
        out.append(_part(PIT, 0, pit))
    khz = _held(vm.get_tsc_khz)
    if khz is not None:
        out.append(_part(TSC, 0, TscState(khz, msrs_tsc)))
    return out


# --------------------------------------------------------------------------- staged


def staged_vcpu(decoded: dict[tuple[str, int], Any], index: int) -> FullVcpuState:
    st = FullVcpuState()
    msrs = decoded.get((CPU_MSRS.name, index))
    if msrs is not None:
        st.msrs = msrs.as_dict()
    fpu = decoded.get((CPU_FPU.name, index))
    if fpu is not None:
        st.fpu = FpuState(fpu.xsave, fpu.xcr0)
    d = decoded.get((CPU_DEBUG.name, index))
    if d is not None:
        st.debug = DebugRegisters(d.dr0, d.dr1, d.dr2, d.dr3, d.dr6, d.dr7)
    ev = decoded.get((CPU_EVENTS.name, index))
    if ev is not None:
        st.events = VcpuEvents(**{f.name: getattr(ev, f.name) for f in fields(ev)})
    mp = decoded.get((CPU_MP_STATE.name, index))
    if mp is not None:
        st.mp_state = MpState(mp.state)
    lapic = decoded.get((CPU_LAPIC.name, index))
    if lapic is not None:
        st.lapic = LapicState(lapic.regs)
    table = decoded.get((CPUID.name, index))
    if table is not None:
        st.cpuid = table.as_entries()
    return st


def staged_platform(decoded: dict[tuple[str, int], Any]) -> PlatformState:
    return PlatformState(
        irqchip=decoded.get((IRQCHIP.name, 0)),
        pit=decoded.get((PIT.name, 0)),
        tsc=decoded.get((TSC.name, 0)),
    )


# --------------------------------------------------------------------------- apply


def apply_vcpu(v: Vcpu, st: FullVcpuState) -> None:
    """Write ``st`` into ``v`` in QEMU's kvm_arch_put_registers order (after regs and
    sregs): FPU, MSRs, MP state, LAPIC, events, debug registers.

    A value the target refuses as invalid (InvalidArgumentError, or a BackendCallError
    with EINVAL or no errno: the engine or the kernel says the value cannot be held)
    becomes a :class:`SnapshotMismatchError` naming the section and the vCPU, with the
    target's own words; any other failure (ENOMEM, a closed handle) is raised as it is.
    """
    steps: tuple[tuple[str, object, Any], ...] = (
        (CPU_FPU.name, st.fpu, v.set_fpu),
        (CPU_MSRS.name, st.msrs, v.set_msrs),
        (CPU_MP_STATE.name, st.mp_state, v.set_mp_state),
        (CPU_LAPIC.name, st.lapic, v.set_lapic),
        (CPU_EVENTS.name, st.events, v.set_events),
        (CPU_DEBUG.name, st.debug, v.set_debug_registers),
    )
    for section, value, setter in steps:
        if value is None:
            continue
        try:
            setter(value)
        except (InvalidArgumentError, BackendCallError) as exc:
            if isinstance(exc, BackendCallError) and exc.errno not in (None, errno.EINVAL):
                raise
            raise SnapshotMismatchError(
                f"section {section} of vCPU {v.index} does not fit {v.vm.accelerator.name}: {exc}",
                section=section,
                instance=v.index,
                hint="the snapshot holds a value this accelerator's vCPU cannot take; "
                "restore it on the accelerator that saved it",
            ) from exc


def carried(v: Vcpu, st: FullVcpuState, vm: VM) -> FullVcpuState:
    """The part of ``st`` that ``v`` holds (the rest was checked to be at reset by
    :func:`~accel.snapshot.carry.check_carry`): nothing of VCPU_STATE on a target
    without it, only the MSRs the target's vCPU lists."""
    if not vcpu_state_supported(vm):
        return FullVcpuState(lapic=st.lapic)
    msrs = st.msrs
    if msrs is not None:
        held = set(v.msr_indices())
        msrs = {k: val for k, val in msrs.items() if k in held}
    return FullVcpuState(msrs, st.fpu, st.debug, st.events, st.mp_state, st.lapic)


def capture_vcpu(v: Vcpu, like: FullVcpuState) -> FullVcpuState:
    """``v``'s current values of what ``like`` would write (to put back on a failure)."""
    return FullVcpuState(
        msrs=v.get_msrs(list(like.msrs)) if like.msrs is not None else None,
        fpu=v.get_fpu() if like.fpu is not None else None,
        debug=v.get_debug_registers() if like.debug is not None else None,
        events=v.get_events() if like.events is not None else None,
        mp_state=v.get_mp_state() if like.mp_state is not None else None,
        lapic=v.get_lapic() if like.lapic is not None else None,
    )


def apply_platform(vm: VM, st: PlatformState) -> list[str]:
    """Write the chips; returns notes (a TSC frequency the target cannot scale to)."""
    notes: list[str] = []
    if st.irqchip is not None:
        vm.set_irqchip_state(st.irqchip)
    if st.pit is not None:
        vm.set_pit_state(st.pit)
    if st.tsc is not None and st.tsc.khz:
        have = _held(vm.get_tsc_khz)
        if have is not None and have != st.tsc.khz:
            try:
                vm.set_tsc_khz(st.tsc.khz)
            except UnsupportedError:
                notes.append(
                    f"the guest TSC ran at {st.tsc.khz} kHz and runs at {have} kHz here "
                    "(no TSC scaling)"
                )
    return notes


def check_names(names: list[str]) -> None:
    for n in names:
        if n in CPU_SECTIONS or n in PLATFORM_SECTIONS:
            raise SnapshotError(f"device section name {n!r} is reserved", section=n)


# --------------------------------------------------------------------------- inspect


def summary(name: str, obj: Any) -> str:
    """One line about a decoded section of this module (``accel snapshot inspect``)."""
    from ..cpustate import msr_name

    if isinstance(obj, MsrList):
        msrs = obj.as_dict()
        armed = [i for i in (0x4B564D01, 0x12) if msrs.get(i, 0) & 1]
        text = f"{len(msrs)} MSRs"
        if armed:
            text += f", kvmclock armed at {msrs[armed[0]] & ~1:#x}"
        lstar = msrs.get(0xC0000082)
        if lstar:
            text += f", {msr_name(0xC0000082)}={lstar:#x}"
        return text
    if isinstance(obj, FpuSection):
        area = obj.xsave
        fcw = int.from_bytes(area[0:2], "little")
        mxcsr = int.from_bytes(area[24:28], "little")
        return f"XSAVE {len(area)} bytes, XCR0 {obj.xcr0:#x}, FCW {fcw:#x}, MXCSR {mxcsr:#x}"
    if isinstance(obj, DebugSection):
        return f"DR7 {obj.dr7:#x}, DR6 {obj.dr6:#x}"
    if isinstance(obj, EventsSection):
        on = [f.name for f in fields(obj) if f.type in ("bool",) and getattr(obj, f.name)]
        return ", ".join(on) if on else "nothing in flight"
    if isinstance(obj, MpSection):
        return obj.state
    if isinstance(obj, LapicSection):
        lapic = LapicState(obj.regs)
        irr = [v for v in range(16, 256) if lapic.irr(v)]
        return (
            f"APIC ID {lapic.register(0x20) >> 24}, SVR {lapic.register(0xF0):#x}, LVT timer "
            f"{lapic.register(0x320):#x}, IRR {[hex(v) for v in irr] or 'empty'}"
        )
    if isinstance(obj, CpuidTable):
        return f"{len(obj.entries)} leaves"
    if isinstance(obj, IrqchipState):
        return f"PIC IMR {obj.pic_master.imr:#x}/{obj.pic_slave.imr:#x}, IOAPIC id {obj.ioapic.id}"
    if isinstance(obj, PitState):
        ch = obj.channels[0] if obj.channels else PitChannelState()
        return f"channel 0 mode {ch.mode}, count {ch.count}"
    if isinstance(obj, TscState):
        return f"{obj.khz} kHz, TSC {[hex(t) for t in obj.tsc]}"
    return ""
