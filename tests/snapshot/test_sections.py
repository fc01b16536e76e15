"""The vCPU-state and chip sections: encode/decode of each, malformed payloads refused
naming the section, and the carry rules' one-line refusals (fake accelerators whose
capabilities are chosen per test)."""

from __future__ import annotations

import io
from dataclasses import fields
from typing import Any

import pytest

from accel import CapabilityAnswer, Registers, VmOptions, snapshot
from accel.cpustate import CpuidEntry, DebugRegisters, FpuState, MpState, VcpuEvents
from accel.errors import InvalidArgumentError, SnapshotFormatError, SnapshotMismatchError
from accel.irqstate import LapicState, PitChannelState
from accel.snapshot import decode, encode
from accel.snapshot.carry import check_cpuid
from accel.snapshot.cpu import (
    CPU_DEBUG,
    CPU_EVENTS,
    CPU_FPU,
    CPU_LAPIC,
    CPU_MP_STATE,
    CPU_MSRS,
    CPUID,
    IRQCHIP,
    PIT,
    TSC,
    CpuidLeaf,
    CpuidTable,
    DebugSection,
    EventsSection,
    FpuSection,
    LapicSection,
    MpSection,
    MsrEntry,
    MsrList,
    TscState,
)
from accel.snapshot.vmstate import VMStateDescription
from tests.fakes import FakeAccelerator, FakeVM, all_answers

from .streams import rebuild, split


def _fpu_area() -> bytes:
    area = bytearray(1024)
    area[0:2] = (0x37F).to_bytes(2, "little")
    area[24:28] = (0x1F80).to_bytes(4, "little")
    return bytes(area)


def _chip() -> Any:
    from accel.irqstate import IrqchipState

    st = IrqchipState()
    st.pic_master.imr, st.pic_slave.irq_base, st.ioapic.id = 0xFB, 0x70, 3
    st.ioapic.redirection[2] = 0x0000_0000_0000_0030
    return st


def _pit() -> Any:
    from accel.irqstate import PitState

    st = PitState()
    st.channels[0] = PitChannelState(count=0x2E9B, mode=2, gate=1, count_load_time=-5)
    st.flags = 1
    return st


SAMPLES: list[tuple[VMStateDescription[Any], Any]] = [
    (CPU_MSRS, MsrList([MsrEntry(0x10, 1 << 40), MsrEntry(0xC0000082, 0xFFFFFFFF81000000)])),
    (CPU_FPU, FpuSection(_fpu_area(), 7)),
    (CPU_DEBUG, DebugSection(dr0=0x1000, dr7=0x401)),
    (CPU_EVENTS, EventsSection(exception_pending=True, exception_nr=14, interrupt_shadow=1)),
    (CPU_MP_STATE, MpSection(MpState.HALTED.value)),
    (CPU_LAPIC, LapicSection(bytes(range(256)) * 4)),
    (CPUID, CpuidTable([CpuidLeaf(1, 0, 0x306A9, 0x800, 0x80000000, 0x178BFBFF)])),
    (IRQCHIP, _chip()),
    (PIT, _pit()),
    (TSC, TscState(2_600_000, [1 << 44, (1 << 44) + 9])),
]


@pytest.mark.parametrize(("desc", "obj"), SAMPLES, ids=[d.name for d, _ in SAMPLES])
def test_section_round_trips(desc: VMStateDescription[Any], obj: Any) -> None:
    back = decode(desc, encode(desc, obj), desc.version_id)
    assert back == obj


@pytest.mark.parametrize(
    ("desc", "obj", "words"),
    [
        (CPU_MP_STATE, MpSection("sleeping"), "unknown MP state 'sleeping'"),
        (CPU_FPU, FpuSection(bytes(100), 1), "at least 576 bytes"),
        (CPU_FPU, FpuSection(_fpu_area(), 6), "lacks bit 0"),
    ],
)
def test_malformed_section_is_refused_naming_it(
    desc: VMStateDescription[Any], obj: Any, words: str
) -> None:
    with pytest.raises(SnapshotFormatError) as info:
        decode(desc, encode(desc, obj), desc.version_id)
    assert desc.name in str(info.value) and words in str(info.value)


def test_short_ioapic_and_pit_are_refused() -> None:
    chip = _chip()
    chip.ioapic.redirection = chip.ioapic.redirection[:23]
    with pytest.raises(SnapshotFormatError, match="24 redirection entries"):
        decode(IRQCHIP, encode(IRQCHIP, chip), 1)
    pit = _pit()
    pit.channels = pit.channels[:2]
    with pytest.raises(SnapshotFormatError, match="3 channels"):
        decode(PIT, encode(PIT, pit), 1)


def test_lapic_record_reads_registers_and_irr() -> None:
    page = bytearray(1024)
    page[0x20:0x24] = (3 << 24).to_bytes(4, "little")
    page[0x200 + 0x10 * 2] = 1  # vector 0x40
    lapic = LapicState(bytes(page))
    assert lapic.register(0x20) >> 24 == 3 and lapic.irr(0x40) and not lapic.irr(0x41)
    with pytest.raises(InvalidArgumentError, match="1024 bytes"):
        LapicState(bytes(10))


# --------------------------------------------------------------------------- carry


def _acc(**caps: CapabilityAnswer | bool) -> FakeAccelerator:
    return FakeAccelerator(caps=all_answers(**caps))


def _source(acc: FakeAccelerator, *, irqchip: bool = False) -> FakeVM:
    vm = acc.create_vm(VmOptions(irqchip=irqchip, pit=irqchip))
    vm.add_memory(0, 4096 * 4)
    vm.create_vcpu().set_regs(Registers(rip=0x100))
    return vm


def _bytes(vm: FakeVM) -> io.BytesIO:
    vm.pause()
    buf = io.BytesIO()
    snapshot.save(vm, buf)
    buf.seek(0)
    return buf


NO_STATE = CapabilityAnswer.no("fake: no vCPU state")


def _refusal(src: FakeVM, target: FakeAccelerator) -> str:
    with pytest.raises(SnapshotMismatchError) as info:
        snapshot.restore(_bytes(src), target)
    text = str(info.value)
    assert "\n" not in text
    assert target.vms[-1].closed is not False  # the VM made for the restore was closed
    return text.split(" (hint")[0]


def test_armed_kvmclock_refused_without_pv_clock() -> None:
    src = _source(_acc())
    src.vcpus[0].set_msrs({0x4B564D01: 0x5001})
    text = _refusal(src, _acc(PV_CLOCKSOURCE=False))
    assert text == "kvmclock is armed (MSR 0x4b564d01) and fake has no paravirtual clock"


def test_msr_refused_on_a_target_without_vcpu_state() -> None:
    src = _source(_acc())
    src.vcpus[0].set_msrs({0xC0000102: 0xFFFF888000001000})
    text = _refusal(src, _acc(VCPU_STATE=NO_STATE))
    assert text == (
        "MSR 0xc0000102 (KERNEL_GS_BASE) of vCPU 0 is 0xffff888000001000 and fake holds "
        "no MSRs (fake: no vCPU state)"
    )


def test_msr_the_target_vcpu_lacks_is_refused() -> None:
    src = _source(_acc())
    cpu = src.vcpus[0]
    cpu.msrs[0xC0000103] = 0  # type: ignore[attr-defined]
    cpu.set_msrs({0xC0000103: 7})
    text = _refusal(src, _acc())
    assert text == "MSR 0xc0000103 (TSC_AUX) of vCPU 0 is 0x7 and fake's vCPU does not have it"


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda c: c.set_fpu(FpuState(_fpu_area(), 3)), "holds x87/SSE state"),
        (lambda c: c.set_debug_registers(DebugRegisters(dr7=0x401)), "debug registers set"),
        (lambda c: c.set_events(VcpuEvents(nmi_pending=True)), "event in flight (NMI)"),
        (lambda c: c.set_mp_state(MpState.HALTED), "vCPU 0 is halted"),
    ],
)
def test_non_reset_vcpu_state_refused_without_vcpu_state(change: Any, words: str) -> None:
    src = _source(_acc())
    change(src.vcpus[0])
    assert words in _refusal(src, _acc(VCPU_STATE=NO_STATE))


def test_reset_state_moves_to_a_target_without_vcpu_state() -> None:
    src = _source(_acc())
    target = _acc(VCPU_STATE=NO_STATE)
    vm = snapshot.restore(_bytes(src), target)
    assert vm.vcpus[0].get_regs().rip == 0x100


def test_in_accelerator_lapic_and_chips_need_a_target_that_holds_them() -> None:
    src = _source(_acc(), irqchip=True)
    text = _refusal(src, _acc(IRQCHIP=False))
    assert text.startswith("the local APIC of vCPU 0 was held in the accelerator and the fake VM")
    # a target that holds them gets them, with the VM created with an irqchip
    target = _acc()
    src.vcpus[0].set_lapic(LapicState(b"\x01" * 1024))  # type: ignore[attr-defined]
    vm = snapshot.restore(_bytes(src), target)
    assert vm.vcpus[0].get_lapic().regs == b"\x01" * 1024


def test_cpuid_bit_the_target_lacks_is_named() -> None:
    saved = [CpuidEntry(7, 0, 0, 1 << 5, 0, 0), CpuidEntry(1, 0, 0, 0, 1 << 27, 0)]
    check_cpuid(saved[1:], [], "t")  # OSXSAVE mirrors CR4: not compared
    with pytest.raises(SnapshotMismatchError) as info:
        check_cpuid(saved, [CpuidEntry(7, 0, 0, 0, 0, 0)], "t")
    assert "CPUID leaf 0x7 subleaf 0 EBX bit 5, which t's vCPU does not have" in str(info.value)


def test_missing_sections_are_reported_and_the_rest_restores() -> None:
    src = _source(_acc())
    data = _bytes(src).getvalue()
    _header, recs = split(data)
    kept = [r for r in recs if r.name not in ("cpu-msrs", "cpu-fpu")]
    notes: list[str] = []
    vm = snapshot.restore(io.BytesIO(rebuild(data, kept)), _acc(), warnings=notes)
    assert len(notes) == 1 and "no cpu-msrs, cpu-fpu section(s)" in notes[0]
    assert vm.vcpus[0].get_regs().rip == 0x100


def test_events_fields_mirror_the_record() -> None:
    assert [f.name for f in fields(EventsSection)] == [f.name for f in fields(VcpuEvents)]
