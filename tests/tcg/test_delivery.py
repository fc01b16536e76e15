"""TCG delivers exceptions and interrupts in every CPU mode, and takes injected ones.

The guests are the test kernels in ``tests/tcg/kernels`` (assembly sources with their
prebuilt flat binaries; ``make -C tests/tcg/kernels`` rebuilds them). Each is entered in
real mode at 0x1000 with SI = the number of one test; it switches to its mode itself,
takes one event and reports through OUT 0x51 what its handler sees: the handler's stack
pointer at entry, the error code, CR2 and the frame the CPU pushed (see the sources for
the order). The expected values are worked out from the SDM by hand, below.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from accel_tcg.accelerator import TcgAccelerator, TcgVcpu, TcgVM

from accel import (
    Capability,
    Exit,
    HaltExit,
    InterruptWindowExit,
    PortIoExit,
    Registers,
    ShutdownExit,
    real_mode_sregs,
)
from accel.errors import InvalidArgumentError, VcpuStateError

KERNELS = Path(__file__).parent / "kernels"
PORT = 0x51


@pytest.fixture(scope="module")
def acc() -> Iterator[TcgAccelerator]:
    with TcgAccelerator() as a:
        yield a


@dataclass
class Guest:
    vm: TcgVM
    cpu: TcgVcpu

    def run(self) -> tuple[list[int], Exit]:
        """Run until an exit that is not a report; the values reported on the way."""
        values: list[int] = []
        while True:
            ex = self.cpu.run()
            if isinstance(ex, PortIoExit) and ex.port == PORT:
                values.append(ex.value())
                continue
            return values, ex

    def report(self) -> int:
        """The next exit, which must be a report: its value (the vCPU stays parked)."""
        ex = self.cpu.run()
        assert isinstance(ex, PortIoExit) and ex.port == PORT, ex
        return ex.value()


@pytest.fixture
def boot(acc: TcgAccelerator) -> Iterator[object]:
    vms: list[TcgVM] = []

    def start(kernel: str, test: int) -> Guest:
        vm = acc.create_vm()
        vms.append(vm)
        vm.add_memory(0, 0x400000)
        vm.write_memory(0x1000, (KERNELS / f"{kernel}.bin").read_bytes())
        cpu = vm.create_vcpu()
        cpu.set_sregs(real_mode_sregs(cpu.get_sregs(), cs=0))
        cpu.set_regs(Registers(rip=0x1000, rflags=2, rsi=test))
        return Guest(vm, cpu)

    yield start
    for vm in vms:
        vm.close()


# --------------------------------------------------------------------------- real mode


def test_real_mode_int_and_fault_through_the_ivt(boot) -> None:  # type: ignore[no-untyped-def]
    values, ex = boot("real", 1).run()
    assert isinstance(ex, HaltExit)
    after_int, marker, sp, ip, cs, flags, div, de, de_ip, de_cs, after = values
    assert marker == 0x3000
    assert (sp, ip, cs) == (0x7C00 - 6, after_int, 0x0100)  # FLAGS, CS, IP on SS:SP
    assert flags & 0x2 and not flags & 0x200
    assert (de, de_ip, de_cs) == (0xDE00, div, 0x0100)  # a fault: the DIV itself
    assert after == 0x1111


# --------------------------------------------------------------------------- protected mode


def test_pm32_without_paging_fault_round_trip(boot) -> None:  # type: ignore[no-untyped-def]
    values, ex = boot("pm", 1).run()
    assert isinstance(ex, HaltExit)
    div, marker, esp, eip, cs, eflags, *_, after = values
    assert (marker, esp, eip, cs) == (0xDE00, 0x7000 - 12, div, 0x08)
    assert eflags & 0x2
    assert after == 0x1111


def test_pm32_paging_page_fault_error_code_and_cr2(boot) -> None:  # type: ignore[no-untyped-def]
    guest = boot("pm", 2)
    values, _ = guest.run()
    at, marker, esp, error, cr2, eip, cs, *_ = values
    assert (marker, error, cr2, eip, cs) == (0x0E00, 0x2, 0x800004, at, 0x08)
    assert esp == 0x7000 - 16
    assert guest.cpu.get_sregs().cr2 == 0x800004


def test_pm32_paging_ring3_to_ring0_through_the_tss(boot) -> None:  # type: ignore[no-untyped-def]
    values, _ = boot("pm", 3).run()
    after_int, marker, esp, eip, cs, eflags, old_esp, ss, ss_now = values
    assert (marker, esp) == (0x8000, 0x5000 - 20)  # TSS.ESP0, five dwords
    assert (eip, cs, eflags, old_esp, ss) == (after_int, 0x33, 0x3002, 0x6800, 0x23)
    assert ss_now == 0x10  # TSS.SS0


def test_pm32_paging_general_protection_error_code(boot) -> None:  # type: ignore[no-untyped-def]
    values, _ = boot("pm", 4).run()
    at, marker, _esp, error, eip, *_ = values
    assert (marker, error, eip) == (0x0D00, 0x50, at)


def test_pm16_interrupt_gate_pushes_a_16_bit_frame(boot) -> None:  # type: ignore[no-untyped-def]
    values, _ = boot("pm", 5).run()
    after_int, marker, sp, ip, cs, flags = values
    assert (marker, sp, ip, cs) == (0x1600, 0x7000 - 6, after_int, 0x38)
    assert flags & 0x2


def test_int_through_a_dpl0_gate_from_ring3_is_a_gp_at_the_int(boot) -> None:  # type: ignore[no-untyped-def]
    """The #GP is a fault of the INT: its frame points at the INT, not after it, and the
    error code names the IDT entry (IDT bit, no EXT for a software interrupt)."""
    values, _ = boot("pm", 6).run()
    int_at, marker, esp, error, eip, cs, _eflags, old_esp, ss = values
    assert (marker, error) == (0x0D00, 0x32 * 8 + 2)
    assert (eip, cs, old_esp, ss, esp) == (int_at, 0x33, 0x6800, 0x23, 0x5000 - 24)


# --------------------------------------------------------------------------- long mode


def test_long_mode_fault_ring0_to_ring0_aligns_the_stack_and_returns(boot) -> None:  # type: ignore[no-untyped-def]
    values, ex = boot("long", 1).run()
    assert isinstance(ex, HaltExit)
    div, marker, rsp, rip, cs, rflags, old_rsp, ss, ss_now, after = values
    assert marker == 0xDE00
    assert rip == div  # a fault: the DIV itself, re-executed after the handler skips it
    assert (cs, old_rsp, ss, ss_now) == (0x18, 0x6FF8, 0x10, 0x10)
    assert rflags & 0x2 and not rflags & 0x200
    assert rsp == 0x6FF0 - 40  # RSP aligned down to 16 bytes, then 5 quadwords
    assert after == 0x1111  # IRETQ came back


def test_long_mode_ring3_to_ring0_takes_rsp0_and_a_null_ss(boot) -> None:  # type: ignore[no-untyped-def]
    values, ex = boot("long", 2).run()
    assert isinstance(ex, HaltExit)
    after_int, marker, rsp, rip, cs, rflags, old_rsp, ss, ss_now = values
    assert marker == 0x8000
    assert rsp == 0x5000 - 40  # TSS.RSP0
    assert rip == after_int  # a software interrupt: the next instruction
    assert (cs, rflags, old_rsp, ss) == (0x2B, 0x3002, 0x6800, 0x23)
    assert ss_now == 0  # SS is the NULL selector at CPL 0


def test_long_mode_ist_stack(boot) -> None:  # type: ignore[no-untyped-def]
    values, _ = boot("long", 3).run()
    after_int, marker, rsp, rip, cs, _rflags, old_rsp, ss, ss_now = values
    assert marker == 0x4000
    assert rsp == 0x4800 - 40  # IST1 = 0x4808, aligned down
    assert (rip, cs, old_rsp, ss, ss_now) == (after_int, 0x18, 0x7000, 0x10, 0)


def test_long_mode_page_fault_error_code_and_cr2(boot) -> None:  # type: ignore[no-untyped-def]
    guest = boot("long", 4)
    values, _ = guest.run()
    at, marker, rsp, error, cr2, rip, cs, _rflags, old_rsp, _ss = values
    assert marker == 0x0E00
    assert error == 0x2  # not present, write, supervisor
    assert cr2 == 0x400123 == guest.cpu.get_sregs().cr2
    assert (rip, cs, old_rsp, rsp) == (at, 0x18, 0x7000, 0x7000 - 48)


def test_long_mode_user_write_to_a_supervisor_page(boot) -> None:  # type: ignore[no-untyped-def]
    values, _ = boot("long", 5).run()
    at, marker, rsp, error, cr2, rip, cs, _rflags, old_rsp, ss = values
    assert marker == 0x0E00
    assert error == 0x7  # present, write, user
    assert cr2 == 0x200010
    assert (rip, cs, old_rsp, ss, rsp) == (at, 0x2B, 0x6800, 0x23, 0x5000 - 48)


def test_long_mode_general_protection_error_code_is_the_selector(boot) -> None:  # type: ignore[no-untyped-def]
    values, _ = boot("long", 6).run()
    at, marker, _rsp, error, rip, *_ = values
    assert (marker, error, rip) == (0x0D00, 0x50, at)


def test_long_mode_fault_while_delivering_is_a_double_fault(boot) -> None:  # type: ignore[no-untyped-def]
    """#PF through a non-present gate: #NP after #PF is a double fault, on IST2."""
    values, _ = boot("long", 7).run()
    _at, marker, rsp, error, _rip, cs, _rflags, old_rsp, _ss = values
    assert (marker, error, cs, old_rsp) == (0x0800, 0, 0x18, 0x7000)
    assert rsp == 0x4400 - 48


def test_long_mode_triple_fault_is_a_shutdown(boot) -> None:  # type: ignore[no-untyped-def]
    values, ex = boot("long", 8).run()
    assert values == []
    assert isinstance(ex, ShutdownExit)
    assert ex.reason.startswith("triple fault: vector 6 (#UD)")
    assert "#DF" in ex.reason


def test_long_mode_interrupt_gate_clears_if_and_trap_gate_keeps_it(boot) -> None:  # type: ignore[no-untyped-def]
    values, _ = boot("long", 9).run()
    assert values == [0, 0x246, 0x200, 0x246]


# --------------------------------------------------------------------------- injection


def test_tcg_answers_interrupt_injection_yes(acc: TcgAccelerator) -> None:
    assert acc.capabilities().supports(Capability.INTERRUPT_INJECTION)


def test_injected_interrupt_wakes_hlt_and_the_window_waits_for_sti(boot) -> None:  # type: ignore[no-untyped-def]
    guest = boot("long", 10)
    cpu = guest.cpu
    after_halt, window_at = guest.report(), guest.report()
    values, ex = guest.run()
    assert values == [] and isinstance(ex, HaltExit)  # STI; HLT
    assert cpu.interrupt_ready()
    cpu.inject_interrupt(0x20)
    assert not cpu.interrupt_ready()  # one is waiting
    with pytest.raises(VcpuStateError, match="still waiting"):
        cpu.inject_interrupt(0x21)
    assert [guest.report() for _ in range(3)] == [0x2000, after_halt, 0x246]
    assert guest.report() == 0x1002  # IRETQ returned after the HLT
    assert guest.report() == 0x1003  # CLI: IF = 0
    assert not cpu.interrupt_ready()
    with pytest.raises(VcpuStateError, match="cannot take an interrupt"):
        cpu.inject_interrupt(0x21)
    cpu.request_interrupt_window(True)
    ex = cpu.run()
    assert isinstance(ex, InterruptWindowExit), ex
    assert cpu.get_regs().rip == window_at  # after STI and the instruction in its shadow
    assert cpu.interrupt_ready()
    cpu.request_interrupt_window(False)
    cpu.inject_interrupt(0x21)
    assert [guest.report() for _ in range(3)] == [0x2000, window_at, 0x246]
    values, ex = guest.run()
    assert values == [0x1004] and isinstance(ex, HaltExit)


def test_window_requested_when_already_open_exits_at_once(boot) -> None:  # type: ignore[no-untyped-def]
    guest = boot("long", 10)
    guest.report(), guest.report()
    values, ex = guest.run()
    assert values == [] and isinstance(ex, HaltExit)
    guest.cpu.request_interrupt_window(True)
    assert isinstance(guest.cpu.run(), InterruptWindowExit)
    assert isinstance(guest.cpu.run(), InterruptWindowExit)  # while it is still wanted
    guest.cpu.request_interrupt_window(False)
    guest.cpu.inject_interrupt(0x20)
    assert guest.report() == 0x2000


def test_nmi_ignores_if_and_the_next_waits_for_iret(boot) -> None:  # type: ignore[no-untyped-def]
    guest = boot("long", 11)
    assert guest.report() == 0x1101  # IF = 0
    guest.cpu.inject_nmi()
    assert guest.report() == 0x0200  # NMI handler
    guest.cpu.inject_nmi()  # blocked until the handler's IRET
    assert guest.report() == 0x0201
    assert guest.report() == 0x0200  # taken after the IRET, not nested
    assert guest.report() == 0x0201
    values, ex = guest.run()
    assert values == [0x1102] and isinstance(ex, HaltExit)


def test_inject_interrupt_refuses_a_bad_vector(boot) -> None:  # type: ignore[no-untyped-def]
    guest = boot("long", 10)
    for bad in (-1, 256, "32", True):
        with pytest.raises(InvalidArgumentError, match=r"0\.\.255"):
            guest.cpu.inject_interrupt(bad)


def test_close_while_parked_before_more_io_in_the_block(acc: TcgAccelerator) -> None:
    """Closing a vCPU parked at an OUT whose translation block holds another OUT: the
    engine runs on to that OUT after the stop request (unicorn stops at the end of the
    block), which used to park again and wait for a "go" until close() gave up."""
    with acc.create_vm() as vm:
        vm.add_memory(0, 0x10000)
        vm.write_memory(0x1000, bytes.fromhex("e6 10 e6 11 f4"))  # out 0x10; out 0x11; hlt
        cpu = vm.create_vcpu()
        cpu.set_sregs(real_mode_sregs(cpu.get_sregs(), cs=0))
        cpu.set_regs(Registers(rip=0x1000, rflags=2))
        ex = cpu.run()
        assert isinstance(ex, PortIoExit) and ex.port == 0x10
        thread = cpu._thread
        cpu.close()
        assert thread is not None and not thread.is_alive()


def test_waiting_events_are_in_the_vcpu_events(boot) -> None:  # type: ignore[no-untyped-def]
    """A snapshot taken with an injected interrupt and an NMI still waiting carries them
    (get_events / set_events), and the vCPU it is restored into delivers them."""
    guest = boot("long", 10)
    guest.report(), guest.report()
    values, ex = guest.run()
    assert values == [] and isinstance(ex, HaltExit)
    guest.cpu.inject_interrupt(0x21)
    events = guest.cpu.get_events()
    assert (events.interrupt_injected, events.interrupt_nr) == (True, 0x21)
    assert not events.nmi_pending and not events.nmi_masked
    other = boot("long", 10)
    other.vm.write_memory(0, guest.vm.read_memory(0, 0x20000))
    other.cpu.set_regs(guest.cpu.get_regs())
    other.cpu.set_sregs(guest.cpu.get_sregs())
    other.cpu.set_events(events)
    assert other.cpu.get_events() == events
    assert not other.cpu.interrupt_ready()
    assert other.report() == 0x2000  # delivered on the restored vCPU's next run


def test_syscall_enters_lstar_with_rcx_r11_and_star_selectors(boot) -> None:  # type: ignore[no-untyped-def]
    """SYSCALL, which unicorn leaves to an instruction hook (and otherwise skips)."""
    values, ex = boot("long", 12).run()
    assert isinstance(ex, HaltExit)
    after, marker, rcx, r11, cs, ss, rflags = values
    assert (marker, rcx, cs, ss) == (0x5C00, after, 0x18, 0x20)
    assert r11 & 0x200  # the RFLAGS SYSCALL saw (IF set)
    assert not rflags & 0x300  # FMASK cleared IF and TF


def test_syscall_without_efer_sce_is_ud_at_the_instruction(boot) -> None:  # type: ignore[no-untyped-def]
    values, _ = boot("long", 13).run()
    at, marker, rip = values
    assert (marker, rip) == (0x0600, at)
