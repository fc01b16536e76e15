"""TCG vCPU state beyond the registers (accel_tcg.cpustate): MSRs, FPU as an XSAVE area,
debug registers, events, MP state; a guest stopped mid-computation moves to a fresh VM.

Guest code is 32-bit flat protected mode (listings beside the bytes; re-assembled with
GNU ``as`` where it is installed).
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path

import accel_tcg
import pytest
from accel_tcg import cpustate
from accel_tcg.accelerator import TcgAccelerator, TcgVcpu, TcgVM
from hypothesis import given, settings
from hypothesis import strategies as st

from accel import Capability, HaltExit, PortIoExit, Registers, Segment, Support
from accel.cpustate import XSAVE_LEGACY_SIZE, DebugRegisters, FpuState, MpState, VcpuEvents
from accel.errors import BackendCallError, InvalidArgumentError, VcpuStateError

CODE = 0x1000
DATA = 0x3000

#: x87 and SSE with non-default control words, an HLT in the middle (the stop), then
#: more arithmetic on the registers the first half left (ST0-ST2, TOP, XMM0/1).
FPU_PROGRAM = bytes.fromhex(
    "dbe3d92d00300000d9e8d9e8d9e8d90504300000def90f1005103000000f100d20300000"
    "0fae15083000000f5ec1f4dec1dd1d40300000d9e8dec1dd1d483000000f58c10f1105503000"
    "00f4"
)
FPU_LISTING = """\
fninit
fldcw word ptr [0x3000]
fld1
fld1
fld1
fld dword ptr [0x3004]
fdivp st(1), st
movups xmm0, [0x3010]
movups xmm1, [0x3020]
ldmxcsr dword ptr [0x3008]
divps xmm0, xmm1
hlt
faddp st(1), st
fstp qword ptr [0x3040]
fld1
faddp st(1), st
fstp qword ptr [0x3048]
addps xmm0, xmm1
movups [0x3050], xmm0
hlt
"""
#: The FPU state the host wrote, seen by the guest.
STORE_PROGRAM = bytes.fromhex("db3d00310000f30f7f1d103100000fae1d20310000d93d24310000dfe0f4")
STORE_LISTING = """\
fstp tbyte ptr [0x3100]
movdqu [0x3110], xmm3
stmxcsr dword ptr [0x3120]
fnstcw word ptr [0x3124]
fnstsw ax
hlt
"""
FPU_DATA = (
    struct.pack("<HxxfI", 0x0F7F, 10.0, 0x7F80)  # FCW: round toward zero; 10.0; MXCSR: RZ
    + bytes(4)
    + struct.pack("<4f", 1.0, 2.0, 3.0, 4.0)  # 0x3010
    + struct.pack("<4f", 3.0, 3.0, 3.0, 7.0)  # 0x3020
)

#: RZ(a / b) + b, rounded toward zero (the float bits).
RZ_SSE = (0x40555555, 0x406AAAAA, 0x40800000, 0x40F24924)

LSTAR, STAR, KERNEL_GS_BASE, TSC_AUX, EFER = (
    0xC0000082,
    0xC0000081,
    0xC0000102,
    0xC0000103,
    0xC0000080,
)


@pytest.mark.parametrize(
    ("code", "listing"), [(FPU_PROGRAM, FPU_LISTING), (STORE_PROGRAM, STORE_LISTING)]
)
def test_listings_assemble_to_the_bytes(tmp_path: Path, code: bytes, listing: str) -> None:
    if shutil.which("as") is None or shutil.which("objcopy") is None:
        pytest.skip("GNU as/objcopy are not installed")
    src, obj, raw = tmp_path / "g.s", tmp_path / "g.o", tmp_path / "g.bin"
    src.write_text(".intel_syntax noprefix\n.code32\n" + listing)
    subprocess.run(["as", "--32", "-o", str(obj), str(src)], check=True)
    subprocess.run(["objcopy", "-O", "binary", "-j", ".text", str(obj), str(raw)], check=True)
    assert raw.read_bytes() == code


@pytest.fixture
def acc() -> Iterator[TcgAccelerator]:
    with TcgAccelerator() as a:
        yield a


def flat(selector: int, code: bool) -> Segment:
    return Segment(
        base=0, limit=0xFFFFFFFF, selector=selector, type=0xB if code else 0x3, db=1, g=1
    )


def new_vcpu(vm: TcgVM, rip: int = CODE) -> TcgVcpu:
    cpu = vm.create_vcpu()
    sregs = cpu.get_sregs()
    sregs.cs = flat(0x08, True)
    for name in ("ds", "es", "fs", "gs", "ss"):
        setattr(sregs, name, flat(0x10, False))
    sregs.cr0, sregs.cr4 = 0x11, 0x600  # PE|ET; OSFXSR|OSXMMEXCPT (SSE on)
    cpu.set_sregs(sregs)
    cpu.set_regs(Registers(rip=rip, rflags=2, rsp=0x8000))
    return cpu


def new_vm(acc: TcgAccelerator, code: bytes, data: bytes = b"") -> TcgVM:
    vm = acc.create_vm()
    vm.add_memory(0, 0x10000)
    vm.write_memory(CODE, code)
    vm.write_memory(DATA, data)
    return vm


def results(vm: TcgVM) -> tuple[float, float, tuple[float, ...]]:
    x87, two = struct.unpack("<dd", vm.read_memory(0x3040, 16))
    return x87, two, struct.unpack("<4f", vm.read_memory(0x3050, 16))


# --------------------------------------------------------------------------- migration


def uninterrupted(acc: TcgAccelerator) -> tuple[float, float, tuple[float, ...]]:
    with new_vm(acc, FPU_PROGRAM, FPU_DATA) as vm:
        cpu = new_vcpu(vm)
        assert isinstance(cpu.run(), HaltExit)  # the stop in the middle
        assert isinstance(cpu.run(), HaltExit)
        return results(vm)


def migrated(acc: TcgAccelerator, *, fpu: bool = True) -> tuple[float, float, tuple[float, ...]]:
    with new_vm(acc, FPU_PROGRAM, FPU_DATA) as old:
        cpu = new_vcpu(old)
        assert isinstance(cpu.run(), HaltExit)
        regs, sregs = cpu.get_regs(), cpu.get_sregs()
        msrs = cpu.get_msrs(cpu.msr_indices())
        state = cpu.get_fpu()
        ram = old.read_memory(0, 0x10000)
    with acc.create_vm() as vm:  # a fresh VM and vCPU: reset state, no RAM
        vm.add_memory(0, 0x10000)
        vm.write_memory(0, ram)
        fresh = vm.create_vcpu()
        fresh.set_sregs(sregs)
        fresh.set_regs(regs)
        fresh.set_msrs(msrs)
        if fpu:
            fresh.set_fpu(state)
        assert isinstance(fresh.run(), HaltExit)
        return results(vm)


def test_guest_stopped_mid_computation_finishes_on_a_fresh_vm(acc: TcgAccelerator) -> None:
    x87, two, sse = uninterrupted(acc)
    # what the rounding mode and stack say: 0.1 + 1 toward zero, 1 + 1, RZ(a/b) + b
    assert struct.pack("<d", x87) == (0x3FF1_9999_9999_9999).to_bytes(8, "little")  # RZ
    assert struct.pack("<d", 1.1) == (0x3FF1_9999_9999_999A).to_bytes(8, "little")  # RN
    assert two == 2.0
    assert sse == struct.unpack("<4f", struct.pack("<4I", *RZ_SSE))
    assert migrated(acc) == (x87, two, sse)


def test_migration_without_the_fpu_state_gives_another_result(acc: TcgAccelerator) -> None:
    # The control for the test above: the FPU state is what carries the computation.
    assert migrated(acc, fpu=False) != uninterrupted(acc)


# --------------------------------------------------------------------------- MSRs


def _wrmsr(index: int, value: int) -> bytes:
    """mov ecx, index; mov eax, lo; mov edx, hi; wrmsr"""
    return (
        b"\xb9"
        + index.to_bytes(4, "little")
        + b"\xb8"
        + (value & 0xFFFFFFFF).to_bytes(4, "little")
        + b"\xba"
        + (value >> 32).to_bytes(4, "little")
        + b"\x0f\x30"
    )


def _rdmsr(index: int, to: int) -> bytes:
    """mov ecx, index; rdmsr; mov [to], eax; mov [to+4], edx"""
    return (
        b"\xb9"
        + index.to_bytes(4, "little")
        + b"\x0f\x32\xa3"
        + to.to_bytes(4, "little")
        + b"\x89\x15"
        + (to + 4).to_bytes(4, "little")
    )


WRITTEN = {
    LSTAR: 0xFFFF_8000_1234_5678,
    STAR: 0x0023_0010_0000_0000,
    KERNEL_GS_BASE: 0xFFFF_8880_0000_1000,
    TSC_AUX: 0x0000_0000_0000_0007,
}


def test_msrs_written_by_the_guest_read_back(acc: TcgAccelerator) -> None:
    code = b"".join(_wrmsr(i, v) for i, v in WRITTEN.items()) + b"\xf4"
    with new_vm(acc, code) as vm:
        cpu = new_vcpu(vm)
        assert cpu.get_msrs(list(WRITTEN)) == dict.fromkeys(WRITTEN, 0)
        assert isinstance(cpu.run(), HaltExit)
        assert cpu.get_msrs(list(WRITTEN)) == WRITTEN


def test_msrs_written_by_the_host_are_seen_by_the_guest(acc: TcgAccelerator) -> None:
    code = b"".join(_rdmsr(i, DATA + 8 * n) for n, i in enumerate(WRITTEN)) + b"\xf4"
    with new_vm(acc, code) as vm:
        cpu = new_vcpu(vm)
        cpu.set_msrs(WRITTEN)
        assert isinstance(cpu.run(), HaltExit)
        seen = struct.unpack(f"<{len(WRITTEN)}Q", vm.read_memory(DATA, 8 * len(WRITTEN)))
        assert seen == tuple(WRITTEN.values())


def _value(index: int) -> int:
    return {0x174: 0x10, 0x277: 0x0007040600070406, EFER: 0x801}.get(index, 0x12345000)


def test_every_listed_msr_is_held_and_seen_by_rdmsr(acc: TcgAccelerator) -> None:
    with acc.create_vm() as vm:
        vm.add_memory(0, 0x10000)
        probe = vm.create_vcpu()
        indices = probe.msr_indices()
        assert indices == tuple(sorted(indices)) and LSTAR in indices
        assert not set(indices) & set(cpustate.UNHELD_MSRS)
        wanted = {i: _value(i) for i in indices}
        probe.set_msrs(wanted)
        assert probe.get_msrs(indices) == wanted
        code = b"".join(_rdmsr(i, 0x4000 + 8 * n) for n, i in enumerate(indices)) + b"\xf4"
        vm.write_memory(CODE, code)
        cpu = new_vcpu(vm)
        cpu.set_msrs(wanted)
        assert isinstance(cpu.run(), HaltExit)
        seen = struct.unpack(f"<{len(indices)}Q", vm.read_memory(0x4000, 8 * len(indices)))
        assert dict(zip(indices, seen, strict=True)) == wanted


@pytest.mark.parametrize("index", sorted(cpustate.UNHELD_MSRS))
def test_unheld_msrs_are_refused_with_the_reason(acc: TcgAccelerator, index: int) -> None:
    with acc.create_vm() as vm:
        cpu = vm.create_vcpu()
        with pytest.raises(BackendCallError) as info:
            cpu.get_msrs([LSTAR, index])
        assert f"{index:#x}" in str(info.value) and info.value.msr == index  # type: ignore[attr-defined]
        with pytest.raises(BackendCallError):
            cpu.set_msrs({LSTAR: 0x1000, index: 0})
        assert cpu.get_msrs([LSTAR]) == {LSTAR: 0}  # nothing was written


def test_set_msrs_is_all_or_nothing_when_the_engine_masks_a_value(acc: TcgAccelerator) -> None:
    with acc.create_vm() as vm:
        cpu = vm.create_vcpu()
        with pytest.raises(BackendCallError) as info:
            cpu.set_msrs({LSTAR: 0x1000, STAR: 0x2000, EFER: 0x2})  # EFER bit 1 is reserved
        assert "0xc0000080" in str(info.value)
        assert cpu.get_msrs([LSTAR, STAR, EFER]) == {LSTAR: 0, STAR: 0, EFER: 0}


@pytest.mark.parametrize("bad", [-1, 1 << 64, "1", 1.5, True])
def test_set_msrs_refuses_values_that_are_not_u64(acc: TcgAccelerator, bad: object) -> None:
    with acc.create_vm() as vm:
        cpu = vm.create_vcpu()
        with pytest.raises(InvalidArgumentError):
            cpu.set_msrs({LSTAR: bad})  # type: ignore[dict-item]
        with pytest.raises(InvalidArgumentError):
            cpu.get_msrs(["lstar"])  # type: ignore[list-item]


def test_state_setters_refused_while_an_exit_is_pending(acc: TcgAccelerator) -> None:
    with new_vm(acc, bytes.fromhex("e610 f4")) as vm:  # out 0x10, al; hlt
        cpu = new_vcpu(vm)
        assert isinstance(cpu.run(), PortIoExit)
        fpu = cpu.get_fpu()  # reads are allowed
        for call in (
            lambda: cpu.set_msrs({LSTAR: 1}),
            lambda: cpu.set_fpu(fpu),
            lambda: cpu.set_debug_registers(DebugRegisters()),
            lambda: cpu.set_events(VcpuEvents()),
            lambda: cpu.set_mp_state(MpState.RUNNABLE),
        ):
            with pytest.raises(VcpuStateError):
                call()
        assert cpu.get_msrs([LSTAR]) == {LSTAR: 0}
        assert isinstance(cpu.run(), HaltExit)


# --------------------------------------------------------------------------- FPU


def _area(
    *,
    fcw: int = 0x37F,
    fsw: int = 0,
    ftw: int = 0,
    fop: int = 0,
    fip: int = 0,
    fdp: int = 0,
    mxcsr: int = 0x1F80,
    st_regs: tuple[bytes, ...] = (bytes(10),) * 8,
    xmm: tuple[bytes, ...] = (bytes(16),) * 16,
    xstate_bv: int = 3,
) -> bytes:
    area = bytearray(XSAVE_LEGACY_SIZE)
    struct.pack_into("<HHBxHQQII", area, 0, fcw, fsw, ftw, fop, fip, fdp, mxcsr, 0xFFFF)
    for i, raw in enumerate(st_regs):
        area[32 + 16 * i : 42 + 16 * i] = raw
    for i, raw in enumerate(xmm):
        area[160 + 16 * i : 176 + 16 * i] = raw
    struct.pack_into("<Q", area, 512, xstate_bv)
    return bytes(area)


PI_80 = bytes.fromhex("35c26821a2da0fc90040")  # pi as an 80-bit extended value (little end)


def test_fpu_set_by_the_host_is_seen_by_the_guest(acc: TcgAccelerator) -> None:
    xmm3 = bytes(range(0x10, 0x20))
    # TOP = 5: ST0 is physical register 5, tagged valid (abridged bit 5)
    state = FpuState(
        _area(
            fcw=0x0C7F,
            fsw=5 << 11,
            ftw=1 << 5,
            mxcsr=0x3F80,
            st_regs=(PI_80,) + (bytes(10),) * 7,
            xmm=(bytes(16),) * 3 + (xmm3,) + (bytes(16),) * 12,
        ),
        xcr0=3,
    )
    with new_vm(acc, STORE_PROGRAM) as vm:
        cpu = new_vcpu(vm)
        cpu.set_fpu(state)
        assert isinstance(cpu.run(), HaltExit)
        assert vm.read_memory(0x3100, 10) == PI_80  # fstp tbyte: ST0
        assert vm.read_memory(0x3110, 16) == xmm3
        assert struct.unpack("<IH", vm.read_memory(0x3120, 6)) == (0x3F80, 0x0C7F)
        assert (cpu.get_regs().rax >> 11) & 7 == 6  # FSTP popped: TOP 5 -> 6
        after = cpu.get_fpu()
        assert after.xsave[4] == 0  # the one valid register was popped: all empty


def test_fpu_of_a_fresh_vcpu(acc: TcgAccelerator) -> None:
    with acc.create_vm() as vm:
        state = vm.create_vcpu().get_fpu()
        assert len(state.xsave) == XSAVE_LEGACY_SIZE
        # the state after RESET as KVM shows a new vCPU, not the engine's own zeros
        assert (state.fcw, state.mxcsr, state.xsave[4], state.xcr0) == (0x37F, 0x1F80, 0, 1)
        assert struct.unpack_from("<HI", state.xsave, 2) == (0, 0)  # FSW, FOP
        assert struct.unpack_from("<I", state.xsave, 28)[0] == 0xFFFF  # MXCSR_MASK
        assert all(state.st(i) == bytes(10) for i in range(8))


_u = st.integers
_st80 = st.binary(min_size=10, max_size=10)
_xmm = st.binary(min_size=16, max_size=16)


@settings(max_examples=40, deadline=None)
@given(
    fcw=_u(0, 0xFFFF),
    fsw=_u(0, 0xFFFF),
    ftw=_u(0, 0xFF),
    fop=_u(0, 0x7FF),
    fip=_u(0, (1 << 64) - 1),
    fdp=_u(0, (1 << 64) - 1),
    mxcsr=_u(0, 0xFFFF),
    st_regs=st.tuples(*[_st80] * 8),
    xmm=st.tuples(*[_xmm] * 16),
)
def test_fpu_round_trip(
    fcw: int,
    fsw: int,
    ftw: int,
    fop: int,
    fip: int,
    fdp: int,
    mxcsr: int,
    st_regs: tuple[bytes, ...],
    xmm: tuple[bytes, ...],
) -> None:
    state = FpuState(
        _area(
            fcw=fcw, fsw=fsw, ftw=ftw, fop=fop, fip=fip, fdp=fdp, mxcsr=mxcsr,
            st_regs=st_regs, xmm=xmm,
        ),
        xcr0=3,
    )  # fmt: skip
    with TcgAccelerator() as acc, acc.create_vm() as vm:
        cpu = vm.create_vcpu()
        cpu.set_fpu(state)
        assert cpu.get_fpu() == state


def test_fpu_xcr0_x87_only_round_trips_and_absent_components_are_reset(
    acc: TcgAccelerator,
) -> None:
    with acc.create_vm() as vm:
        cpu = vm.create_vcpu()
        state = FpuState(_area(fcw=0x27F, xmm=(b"\xff" * 16,) * 16, xstate_bv=1), xcr0=1)
        cpu.set_fpu(state)
        got = cpu.get_fpu()
        assert got.xcr0 == 1 and got.fcw == 0x27F
        assert got.xmm(0) == bytes(16)  # SSE was not in XSTATE_BV: its initial state


def test_fpu_refusals(acc: TcgAccelerator) -> None:
    with acc.create_vm() as vm:
        cpu = vm.create_vcpu()
        before = cpu.get_fpu()
        with pytest.raises(InvalidArgumentError, match="AVX"):
            cpu.set_fpu(FpuState(_area(), xcr0=7))
        with pytest.raises(InvalidArgumentError, match="components"):
            cpu.set_fpu(FpuState(_area(xstate_bv=7) + b"\x01" * 256, xcr0=3))
        with pytest.raises(InvalidArgumentError, match="MXCSR"):
            cpu.set_fpu(FpuState(_area(mxcsr=0x10000), xcr0=3))
        with pytest.raises(InvalidArgumentError):
            cpu.set_fpu(b"\x00" * 576)  # type: ignore[arg-type]
        assert cpu.get_fpu() == before


def test_xcr0_offset_is_found_in_the_engine_context() -> None:
    assert cpustate.xcr0_offset() > 0


# --------------------------------------------------------------------------- debug, events, MP


def test_debug_registers_round_trip_and_refusals(acc: TcgAccelerator) -> None:
    with acc.create_vm() as vm:
        cpu = vm.create_vcpu()
        assert cpu.get_debug_registers() == DebugRegisters()  # the reset values
        dr = DebugRegisters(0x1000, 0xFFFF_8000_0000_2000, 0x3000, 0x4000, 0xFFFF4FF0, 0x4FF)
        cpu.set_debug_registers(dr)
        assert cpu.get_debug_registers() == dr
        with pytest.raises(InvalidArgumentError, match="DR6"):
            cpu.set_debug_registers(DebugRegisters(dr6=1 << 32))
        with pytest.raises(InvalidArgumentError, match="DR0"):
            cpu.set_debug_registers(DebugRegisters(dr0=-1))
        assert cpu.get_debug_registers() == dr


@pytest.mark.parametrize(("first", "shadow"), [(b"\xfb", 1), (b"\x90", 0)], ids=["sti", "nop"])
def test_interrupt_shadow_after_sti(acc: TcgAccelerator, first: bytes, shadow: int) -> None:
    # sti (or nop); out 0x10, al: the OUT is the instruction in the STI shadow
    with new_vm(acc, first + bytes.fromhex("e610 f4")) as vm:
        cpu = new_vcpu(vm)
        assert isinstance(cpu.run(), PortIoExit)
        assert cpu.get_events() == VcpuEvents(interrupt_shadow=shadow)
        assert isinstance(cpu.run(), HaltExit)
        assert cpu.get_events() == VcpuEvents()  # over after the next instruction


def test_events_set_and_refused(acc: TcgAccelerator) -> None:
    with acc.create_vm() as vm:
        cpu = vm.create_vcpu()
        cpu.set_events(VcpuEvents(interrupt_shadow=1))
        assert cpu.get_events().interrupt_shadow == 1
        cpu.set_events(VcpuEvents())
        assert cpu.get_events() == VcpuEvents()
        for held in (  # the plugin's own (interrupt injection), carried
            VcpuEvents(nmi_pending=True, nmi_masked=True),
            VcpuEvents(interrupt_injected=True, interrupt_nr=0x20),
        ):
            cpu.set_events(held)
            assert cpu.get_events() == held
        cpu.set_events(VcpuEvents())
        for events in (
            VcpuEvents(exception_injected=True, exception_nr=13),
            VcpuEvents(smm=True),
        ):
            with pytest.raises(InvalidArgumentError, match="cannot set"):
                cpu.set_events(events)
        with pytest.raises(InvalidArgumentError, match=r"0\.\.3"):
            cpu.set_events(VcpuEvents(interrupt_shadow=4))
        assert cpu.get_events() == VcpuEvents()


def test_mp_state_follows_hlt_and_refuses_init_states(acc: TcgAccelerator) -> None:
    with new_vm(acc, bytes.fromhex("f4 e610 f4")) as vm:  # hlt; out 0x10, al; hlt
        cpu = new_vcpu(vm)
        assert cpu.get_mp_state() is MpState.RUNNABLE
        assert isinstance(cpu.run(), HaltExit)
        assert cpu.get_mp_state() is MpState.HALTED
        assert isinstance(cpu.run(), PortIoExit)
        assert cpu.get_mp_state() is MpState.RUNNABLE
        assert isinstance(cpu.run(), HaltExit)
        cpu.set_mp_state(MpState.RUNNABLE)
        assert cpu.get_mp_state() is MpState.RUNNABLE
        cpu.set_mp_state(MpState.HALTED)
        assert cpu.get_mp_state() is MpState.HALTED
        for state in (MpState.UNINITIALIZED, MpState.INIT_RECEIVED, MpState.SIPI_RECEIVED):
            with pytest.raises(InvalidArgumentError, match="SIPI"):
                cpu.set_mp_state(state)


def test_vcpu_state_capability_is_answered_yes(acc: TcgAccelerator) -> None:
    assert acc.capabilities()[Capability.VCPU_STATE].support is Support.YES
    assert "vcpu-state" not in accel_tcg.UNSUPPORTED
