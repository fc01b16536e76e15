"""Real-mode guest programs on the real /dev/kvm: registers, port I/O, MMIO, HLT."""

from __future__ import annotations

import pytest
from accel_kvm import KvmAccelerator

from accel import (
    HaltExit,
    InterruptedExit,
    IoDirection,
    MmioExit,
    PortIoExit,
    ShutdownExit,
)
from accel.accelerator import Exit

from . import guests
from .guests import ORG, boot, run_to_halt

pytestmark = pytest.mark.kvm


def test_arithmetic_leaves_expected_registers(acc: KvmAccelerator) -> None:
    _vm, cpu = boot(acc, guests.ARITHMETIC)
    exits = run_to_halt(cpu)
    assert len(exits) == 1
    regs = cpu.get_regs()
    assert regs.rax & 0xFFFF == 0x1345
    assert regs.rbx & 0xFFFF == 0x0111
    assert regs.rcx & 0xFFFF == 7
    assert regs.rdx & 0xFFFF == 6
    assert regs.rsi & 0xFFFF == 42
    assert regs.rip == ORG + len(guests.ARITHMETIC)


def test_out_and_in_round_trip_through_a_port_handler(acc: KvmAccelerator) -> None:
    _vm, cpu = boot(acc, guests.PORT_IO)
    written: list[tuple[int, int, int]] = []
    answers = {0x11: 0x55, 0x3F8: 0x1234}

    def handler(ex: Exit) -> None:
        assert isinstance(ex, PortIoExit)
        if ex.direction is IoDirection.OUT:
            assert ex.is_write
            written.append((ex.port, ex.size, ex.value()))
        else:
            ex.reply(answers[ex.port])

    run_to_halt(cpu, handler)
    assert written == [(0x10, 1, 0x2A), (0x3F8, 2, 0xBEEF)]
    regs = cpu.get_regs()
    assert regs.rbx & 0xFF == 0x55
    assert regs.rcx & 0xFFFF == 0x1234


def test_string_out_carries_every_byte(acc: KvmAccelerator) -> None:
    vm, cpu = boot(acc, guests.STRING_OUT)
    vm.write_memory(0x2000, b"ABCD")
    got = bytearray()

    def handler(ex: Exit) -> None:
        assert isinstance(ex, PortIoExit) and ex.port == 0x20 and ex.size == 1
        got.extend(ex.data)

    run_to_halt(cpu, handler)
    assert bytes(got) == b"ABCD"


def test_mmio_reads_and_writes_reach_a_handler(acc: KvmAccelerator) -> None:
    vm, cpu = boot(acc, guests.MMIO)
    vm.add_mmio(0xD0000, 0x1000)
    seen: list[tuple[int, int, bool, bytes]] = []

    def handler(ex: Exit) -> None:
        assert isinstance(ex, MmioExit)
        seen.append((ex.address, ex.size, ex.is_write, bytes(ex.data)))
        if not ex.is_write:
            ex.reply(0xBEEF)

    run_to_halt(cpu, handler)
    assert seen[0] == (0xD0010, 2, True, b"\x34\x12")
    assert seen[1][:3] == (0xD0020, 2, False)
    assert cpu.get_regs().rax & 0xFFFF == 0xBEEF


def test_hlt_ends_the_run(acc: KvmAccelerator) -> None:
    _vm, cpu = boot(acc, guests.HALT)
    ex = cpu.run()
    assert isinstance(ex, HaltExit)
    assert cpu.get_regs().rip == ORG + 1


def test_triple_fault_is_a_shutdown_exit(acc: KvmAccelerator) -> None:
    _vm, cpu = boot(acc, guests.TRIPLE_FAULT)
    sregs = cpu.get_sregs()
    sregs.cr0 |= 1  # 16-bit protected mode (CS keeps its cached real-mode descriptor)
    sregs.idt.limit = 0  # no gates: #DE -> #GP -> #DF -> triple fault
    cpu.set_sregs(sregs)
    assert isinstance(cpu.run(), ShutdownExit)


def test_kick_before_run_interrupts_once(acc: KvmAccelerator) -> None:
    _vm, cpu = boot(acc, guests.HALT)
    cpu.kick()
    assert isinstance(cpu.run(), InterruptedExit)
    assert cpu.get_regs().rip == ORG  # the guest did not run
    assert isinstance(cpu.run(), HaltExit)


def test_registers_round_trip(acc: KvmAccelerator) -> None:
    _vm, cpu = boot(acc, guests.HALT)
    regs = cpu.get_regs()
    regs.rax, regs.r15, regs.rsp = 0x1122334455667788, 0xFFFFFFFFFFFFFFFF, 0x8000
    cpu.set_regs(regs)
    assert cpu.get_regs() == regs
    sregs = cpu.get_sregs()
    sregs.gdt.base, sregs.gdt.limit = 0x3000, 0x17
    sregs.cr2 = 0xABC
    cpu.set_sregs(sregs)
    assert cpu.get_sregs() == sregs


def test_new_vcpu_is_in_reset_state(acc: KvmAccelerator) -> None:
    with acc.create_vm() as vm:
        cpu = vm.create_vcpu()
        regs, sregs = cpu.get_regs(), cpu.get_sregs()
        assert regs.rip == 0xFFF0 and regs.rflags == 2
        assert sregs.cs.selector == 0xF000 and sregs.cs.base == 0xFFFF0000
        assert sregs.cr0 == 0x60000010


def test_port_io_loop_many_exits(acc: KvmAccelerator) -> None:
    _vm, cpu = boot(acc, guests.OUT_LOOP)
    for _ in range(1000):
        ex = cpu.run()
        assert isinstance(ex, PortIoExit) and ex.port == 0x10


def test_kick_from_another_thread_stops_a_running_loop(acc: KvmAccelerator) -> None:
    import threading

    _vm, cpu = boot(acc, guests.OUT_LOOP)
    started = threading.Event()

    def kicker() -> None:
        started.wait()
        cpu.kick()

    t = threading.Thread(target=kicker)
    t.start()
    exits = 0
    while True:
        ex = cpu.run()
        if isinstance(ex, InterruptedExit):
            break
        assert isinstance(ex, PortIoExit)
        exits += 1
        started.set()
        assert exits < 10_000_000
    t.join()
    assert isinstance(cpu.run(), PortIoExit)  # the next run goes on normally
