"""Whether a target VM can hold a snapshot's state: the check before any restore.

A snapshot restores on another accelerator (or another host) whenever the target can
express all of its state; otherwise :func:`check_carry` raises one
:class:`~accel.errors.SnapshotMismatchError` whose one-line message names exactly what
cannot be carried. The rules look only at the target's capabilities and at what its
vCPU/VM methods answer (:class:`~accel.errors.UnsupportedError`: not held there), never
at accelerator names:

* an armed paravirtual clock (MSR_KVM_SYSTEM_TIME(_NEW) bit 0) needs
  :attr:`Capability.PV_CLOCKSOURCE` on the target;
* an MSR with a value other than its reset value needs a target that holds MSRs
  (:attr:`Capability.VCPU_STATE`) and lists that MSR in :meth:`Vcpu.msr_indices`;
* x87/SSE/AVX state, debug registers, events in flight and an MP state other than
  runnable need VCPU_STATE when they differ from the reset state;
* a local APIC, PIC/IOAPIC or PIT held in the source accelerator needs a target that
  holds them too (its get methods answer);
* the CPUID the guest was given must be a subset of what the target's vCPU was given,
  in the feature leaves (1, 7, 0xD.1, 0x80000001, 0x40000001), naming the first bit
  missing.

:func:`missing_sections` lists what an older snapshot lacks that the target could hold
(its state then starts from the reset values): the restore reports it.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..accelerator import VM, Vcpu
from ..capabilities import Capability
from ..cpustate import (
    XSAVE_LEGACY_SIZE,
    CpuidEntry,
    DebugRegisters,
    FpuState,
    MpState,
    VcpuEvents,
    msr_name,
)
from ..errors import AccelError, SnapshotMismatchError, UnsupportedError
from .cpu import FullVcpuState, PlatformState

__all__ = ["FEATURE_LEAVES", "check_carry", "check_cpuid", "missing_sections"]

#: MSR reset values (Intel SDM vol. 3 table 10-1 / KVM's): others reset to 0. TSC and
#: TSC_ADJUST are time, not configuration: not compared.
_MSR_RESET = {0x1A0: 1, 0x277: 0x0007040600070406}
_MSR_TIME = frozenset({0x10, 0x3B})
#: MSRs the ``cpu-sregs`` section carries on every accelerator (EFER): an accelerator
#: that does not list them among its MSRs still restores them.
_MSR_IN_SREGS = frozenset({0xC0000080})
#: The paravirtual clock MSRs whose bit 0 arms kvmclock.
_PV_CLOCK_MSRS = (0x4B564D01, 0x12)

#: (function, index, register) of the CPUID feature words compared on restore. Leaf 1
#: ECX bit 27 (OSXSAVE) mirrors CR4 and is left out.
FEATURE_LEAVES: tuple[tuple[int, int, str, int], ...] = (
    (1, 0, "ecx", ~(1 << 27) & 0xFFFFFFFF),
    (1, 0, "edx", 0xFFFFFFFF),
    (7, 0, "ebx", 0xFFFFFFFF),
    (7, 0, "ecx", 0xFFFFFFFF),
    (7, 0, "edx", 0xFFFFFFFF),
    (0xD, 1, "eax", 0xFFFFFFFF),
    (0x80000001, 0, "ecx", 0xFFFFFFFF),
    (0x80000001, 0, "edx", 0xFFFFFFFF),
    (0x40000001, 0, "eax", 0xFFFFFFFF),
)


def _yes(vm: VM, cap: Capability) -> tuple[bool, str]:
    try:
        answer = vm.check(cap)
    except AccelError as exc:
        return False, str(exc)
    return answer.is_yes, answer.source or answer.support.value


def _refuse(
    what: str, *, section: str | None = None, instance: int | None = None, found: str = ""
) -> SnapshotMismatchError:
    return SnapshotMismatchError(
        what,
        hint="restore it on an accelerator (and VM options) that can hold that state",
        section=section,
        instance=instance,
        found=found or None,
    )


def _fpu_is_reset(fpu: FpuState) -> bool:
    area = bytearray(fpu.xsave[:XSAVE_LEGACY_SIZE])
    if fpu.fcw not in (0, 0x37F) or fpu.mxcsr not in (0, 0x1F80):
        return False
    area[0:2] = bytes(2)
    area[24:28] = bytes(4)
    area[28:32] = bytes(4)  # MXCSR_MASK: the CPU's, not state
    area[464:512] = bytes(48)  # software-available bytes (Linux's fx_sw_bytes)
    area[512:520] = bytes(8)  # XSTATE_BV may mark x87/SSE in their init state
    return not any(area) and fpu.xcr0 == 1


def check_cpuid(saved: Iterable[CpuidEntry], have: Iterable[CpuidEntry], target: str) -> None:
    """Refuse when a feature bit the guest was given is not in the target's CPUID."""
    got = {(e.function, e.index): e for e in have}
    want = {(e.function, e.index): e for e in saved}
    for function, index, reg, mask in FEATURE_LEAVES:
        w = want.get((function, index))
        if w is None:
            continue
        h = got.get((function, index))
        have_bits = getattr(h, reg) if h is not None else 0
        lacking = getattr(w, reg) & mask & ~have_bits
        if lacking:
            bit = (lacking & -lacking).bit_length() - 1
            raise _refuse(
                f"the guest was given CPUID leaf {function:#x} subleaf {index} "
                f"{reg.upper()} bit {bit}, which {target}'s vCPU does not have",
                section="cpuid",
                found=f"{function:#x}.{index}.{reg}.{bit}",
            )


def check_carry(vm: VM, vcpus: dict[int, FullVcpuState], platform: PlatformState) -> list[str]:
    """Raise unless ``vm`` can hold the state; returns notes of what was not checked."""
    name = vm.accelerator.name
    notes: list[str] = []
    full, why = _yes(vm, Capability.VCPU_STATE)
    pv_clock, _ = _yes(vm, Capability.PV_CLOCKSOURCE)
    by_index: dict[int, Vcpu] = {v.index: v for v in vm.vcpus}
    for index, st in sorted(vcpus.items()):
        cpu = by_index[index]
        where = f"vCPU {index}"
        if st.msrs is not None:
            for msr in _PV_CLOCK_MSRS:
                if st.msrs.get(msr, 0) & 1 and not pv_clock:
                    raise _refuse(
                        f"kvmclock is armed (MSR {msr:#x}) and {name} has no paravirtual clock",
                        section="cpu-msrs",
                        instance=index,
                    )
            held: set[int] | None = None
            if full:
                try:
                    held = set(cpu.msr_indices())
                except AccelError as exc:
                    raise _refuse(f"{name} cannot list the MSRs of {where}: {exc}") from exc
            for msr, value in sorted(st.msrs.items()):
                if msr in _MSR_TIME or msr in _MSR_IN_SREGS or value == _MSR_RESET.get(msr, 0):
                    continue
                if held is None:
                    raise _refuse(
                        f"MSR {msr_name(msr)} of {where} is {value:#x} and {name} holds no "
                        f"MSRs ({why})",
                        section="cpu-msrs",
                        instance=index,
                    )
                if msr not in held:
                    raise _refuse(
                        f"MSR {msr_name(msr)} of {where} is {value:#x} and {name}'s vCPU "
                        "does not have it",
                        section="cpu-msrs",
                        instance=index,
                    )
        if not full:
            if st.fpu is not None and not _fpu_is_reset(st.fpu):
                raise _refuse(
                    f"{where} holds x87/SSE state (FCW {st.fpu.fcw:#x}, MXCSR "
                    f"{st.fpu.mxcsr:#x}, XCR0 {st.fpu.xcr0:#x}) and {name} cannot load it "
                    f"({why})",
                    section="cpu-fpu",
                    instance=index,
                )
            if st.debug is not None and st.debug != DebugRegisters():
                raise _refuse(
                    f"{where} has debug registers set (DR7 {st.debug.dr7:#x}) and {name} "
                    f"cannot load them ({why})",
                    section="cpu-debug",
                    instance=index,
                )
            if st.events is not None and st.events != VcpuEvents():
                raise _refuse(
                    f"{where} has an event in flight ({_event_text(st.events)}) and {name} "
                    f"cannot load it ({why})",
                    section="cpu-events",
                    instance=index,
                )
            if st.mp_state is not None and st.mp_state is not MpState.RUNNABLE:
                raise _refuse(
                    f"{where} is {st.mp_state.value} and {name} cannot load an MP state ({why})",
                    section="cpu-mp-state",
                    instance=index,
                )
        if st.lapic is not None:
            try:
                cpu.get_lapic()
            except UnsupportedError as exc:
                raise _refuse(
                    f"the local APIC of {where} was held in the accelerator and the "
                    f"{name} VM holds none ({exc})",
                    section="cpu-lapic",
                    instance=index,
                ) from exc
        if st.cpuid is not None:
            try:
                have = cpu.cpuid()
            except UnsupportedError:
                notes.append(f"{name} cannot report its CPUID: the guest's CPUID was not checked")
            else:
                check_cpuid(st.cpuid, have, name)
    for label, section, read in (
        ("PIC/IOAPIC", "irqchip", vm.get_irqchip_state),
        ("PIT", "pit", vm.get_pit_state),
    ):
        if getattr(platform, section) is None:
            continue
        try:
            read()
        except UnsupportedError as exc:
            raise _refuse(
                f"the {label} was held in the accelerator and the {name} VM holds none",
                section=section,
            ) from exc
    return sorted(set(notes))


def _event_text(ev: VcpuEvents) -> str:
    if ev.exception_injected or ev.exception_pending:
        return f"exception {ev.exception_nr}"
    if ev.interrupt_injected:
        return f"interrupt {ev.interrupt_nr:#x}"
    if ev.nmi_injected or ev.nmi_pending:
        return "NMI"
    if ev.smi_pending or ev.smm:
        return "SMI/SMM"
    return f"interrupt shadow {ev.interrupt_shadow}"


def missing_sections(vm: VM, vcpus: dict[int, FullVcpuState], platform: PlatformState) -> list[str]:
    """Sections the target could hold that the snapshot lacks (state left at reset)."""
    missing: list[str] = []
    full, _ = _yes(vm, Capability.VCPU_STATE)
    by_index = {v.index: v for v in vm.vcpus}
    for index, st in sorted(vcpus.items()):
        if full:
            for label, value in (
                ("cpu-msrs", st.msrs),
                ("cpu-fpu", st.fpu),
                ("cpu-debug", st.debug),
                ("cpu-events", st.events),
                ("cpu-mp-state", st.mp_state),
            ):
                if value is None:
                    missing.append(label)
        if st.lapic is None:
            try:
                by_index[index].get_lapic()
            except (UnsupportedError, KeyError):
                pass
            else:
                missing.append("cpu-lapic")
    for section, read in (("irqchip", vm.get_irqchip_state), ("pit", vm.get_pit_state)):
        if getattr(platform, section) is None:
            try:
                read()
            except UnsupportedError:
                continue
            missing.append(section)
    return list(dict.fromkeys(missing))
