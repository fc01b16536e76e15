"""TCG-only behaviour: probe, capabilities, memory rules, handles, exits, clock, kick."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator

import accel_tcg
import pytest
from accel_tcg.accelerator import MAX_VCPUS, TcgAccelerator, TcgVcpu, TcgVM

import accel
from accel import (
    Capability,
    ClockData,
    ClockFlags,
    HaltExit,
    InternalErrorExit,
    InterruptedExit,
    IoDirection,
    MmioExit,
    PortIoExit,
    Registers,
    Segment,
    ShutdownExit,
    SpecialRegisters,
    Support,
    VmOptions,
    real_mode_sregs,
)
from accel.errors import (
    AcceleratorUnavailableError,
    CapabilityError,
    GuestMemoryError,
    HandleClosedError,
    MemoryLayoutError,
    VcpuStateError,
)
from accel.testing.features import FEATURES


@pytest.fixture
def acc() -> Iterator[TcgAccelerator]:
    with TcgAccelerator() as a:
        yield a


@pytest.fixture
def vm(acc: TcgAccelerator) -> Iterator[TcgVM]:
    with acc.create_vm() as v:
        v.add_memory(0, 0x10000)
        yield v


def real_mode(vm: TcgVM, code: bytes, at: int = 0x1000) -> TcgVcpu:
    vm.write_memory(at, code)
    cpu = vm.create_vcpu()
    cpu.set_sregs(real_mode_sregs(cpu.get_sregs(), cs=0))
    cpu.set_regs(Registers(rip=at, rflags=2))
    return cpu


def flat_segment(selector: int, code: bool, *, long: bool = False) -> Segment:
    return Segment(
        base=0,
        limit=0xFFFFFFFF,
        selector=selector,
        type=0xB if code else 0x3,
        present=1,
        db=0 if long else 1,
        s=1,
        l=1 if long else 0,
        g=1,
    )


def flat_protected(cpu: TcgVcpu, *, long: bool = False) -> SpecialRegisters:
    sregs = cpu.get_sregs()
    sregs.cs = flat_segment(0x08, True, long=long)
    for name in ("ds", "es", "fs", "gs", "ss"):
        setattr(sregs, name, flat_segment(0x10, False))
    sregs.cr0 = 0x60000011
    return sregs


# --------------------------------------------------------------------------- plugin


def test_probe_available_with_unicorn_version(acc: TcgAccelerator) -> None:
    avail = acc.probe()
    assert avail
    assert avail.reason.startswith("unicorn 2.")
    assert acc.probe() is avail  # probed once


def test_unavailable_when_unicorn_does_not_import(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "unicorn", None)
    monkeypatch.setitem(sys.modules, "accel_tcg._state", None)
    acc = TcgAccelerator()
    avail = acc.probe()
    assert not avail
    assert "unicorn does not import" in avail.reason
    assert avail.hint and "pip install" in avail.hint
    with pytest.raises(AcceleratorUnavailableError, match="unicorn does not import"):
        acc.create_vm()


def test_registered_as_software_priority_10() -> None:
    info = accel.Registry().info("tcg")
    assert info.priority == 10
    assert info.hardware is False
    assert isinstance(info.factory(), TcgAccelerator)
    for name, reason in info.unsupported_features.items():
        assert name in FEATURES, name
        assert reason
    # the declared names are exactly the capabilities answered "no"
    caps = TcgAccelerator().capabilities()
    declared = set(info.unsupported_features)
    assert declared == {c.value for c in Capability if caps.support(c) is Support.NO}


def test_capabilities_truthful_for_software_emulation(acc: TcgAccelerator) -> None:
    caps = acc.capabilities()
    assert acc.capabilities() is caps
    for cap in (
        Capability.IRQCHIP,
        Capability.PIT,
        Capability.PV_CLOCKSOURCE,
        Capability.PV_CLOCKSOURCE_STABLE,
        Capability.IOEVENTFD,
        Capability.IRQFD,
        Capability.CLOCK_CTRL,
    ):
        assert caps.support(cap) is Support.NO, cap
    assert caps.supports(Capability.USER_MEMORY)
    assert caps.supports(Capability.VM_CAPABILITY_QUERY)
    assert caps.value(Capability.MAX_VCPUS) == MAX_VCPUS
    assert caps[Capability.ADJUST_CLOCK].flags == ClockFlags.TSC_STABLE | ClockFlags.REALTIME
    for answer in caps.values():
        assert answer.source
    with acc.create_vm() as v:
        assert v.capabilities() == caps


def test_irqchip_and_pit_vm_options_refused(acc: TcgAccelerator) -> None:
    with pytest.raises(CapabilityError) as info:
        acc.create_vm(VmOptions(irqchip=True))
    assert info.value.capability is Capability.IRQCHIP
    with pytest.raises(CapabilityError):
        acc.create_vm(VmOptions(pit=True))


# --------------------------------------------------------------------------- memory


@pytest.mark.parametrize(
    ("address", "size"),
    [(0x1001, 0x1000), (0x1000, 0x1001), (0x1000, 0), (0x1000, -4096), (-4096, 0x1000)],
)
def test_misaligned_or_empty_regions_refused(acc: TcgAccelerator, address: int, size: int) -> None:
    with acc.create_vm() as v:
        with pytest.raises(MemoryLayoutError):
            v.add_memory(address, size)
        with pytest.raises(MemoryLayoutError):
            v.add_mmio(address, size)
        assert v.memory_regions == ()


def test_overlaps_refused_and_nothing_changes(vm: TcgVM) -> None:
    vm.add_mmio(0x20000, 0x1000)
    for address, size in [(0x0, 0x1000), (0xF000, 0x2000), (0x20000, 0x1000), (0x1F000, 0x2000)]:
        with pytest.raises(MemoryLayoutError, match="overlaps"):
            vm.add_memory(address, size)
        with pytest.raises(MemoryLayoutError, match="overlaps"):
            vm.add_mmio(address, size)
    assert [(r.guest_phys, r.size) for r in vm.memory_regions] == [(0, 0x10000)]
    assert vm.mmio_ranges == ((0x20000, 0x1000),)
    vm.add_memory(0x10000, 0x1000)  # adjacent is fine
    assert len(vm.memory_regions) == 2


def test_beyond_physical_address_space_refused(acc: TcgAccelerator) -> None:
    with acc.create_vm() as v, pytest.raises(MemoryLayoutError, match="address space"):
        v.add_memory(1 << 40, 0x1000)


def test_guest_memory_bounds_checked(vm: TcgVM) -> None:
    vm.write_memory(0xFFF0, b"x" * 16)
    assert vm.read_memory(0xFFF0, 16) == b"x" * 16
    with pytest.raises(GuestMemoryError):
        vm.read_memory(0xFFF8, 16)
    with pytest.raises(GuestMemoryError):
        vm.write_memory(0x10000, b"y")
    with pytest.raises(GuestMemoryError):
        vm.read_memory(-1, 1)


def test_memory_added_after_vcpu_is_seen_by_it(vm: TcgVM) -> None:
    cpu = real_mode(vm, bytes.fromhex("b8 00 20 8e d8 a0 00 00 f4"))  # ds=0x2000; mov al,[0]
    vm.add_memory(0x20000, 0x1000)
    vm.write_memory(0x20000, b"\x5a")
    assert isinstance(cpu.run(), HaltExit)
    assert cpu.get_regs().rax & 0xFF == 0x5A


def test_readonly_region_write_is_an_emulation_error(acc: TcgAccelerator) -> None:
    # Legitimate difference: KVM reports a write to a read-only slot as an MMIO exit.
    with acc.create_vm() as v:
        v.add_memory(0, 0x10000)
        v.add_memory(0x20000, 0x1000, readonly=True)
        cpu = real_mode(v, bytes.fromhex("b8 00 20 8e d8 c6 06 00 00 01 f4"))
        ex = cpu.run()
        assert isinstance(ex, InternalErrorExit)
        assert "read-only" in ex.detail


# --------------------------------------------------------------------------- handles


def test_closed_handles(acc: TcgAccelerator) -> None:
    v = acc.create_vm()
    v.add_memory(0, 0x1000)
    cpu = v.create_vcpu()
    cpu.close()
    cpu.close()
    for call in (cpu.run, cpu.get_regs, cpu.get_sregs):
        with pytest.raises(HandleClosedError):
            call()
    with pytest.raises(HandleClosedError):
        cpu.set_regs(Registers())
    v.close()
    v.close()
    with pytest.raises(HandleClosedError):
        v.add_memory(0x1000, 0x1000)
    with pytest.raises(HandleClosedError):
        v.get_clock()
    with pytest.raises(HandleClosedError):
        v.create_vcpu()
    with pytest.raises(HandleClosedError):
        v.read_memory(0, 1)


def test_closing_accelerator_closes_vms_and_vcpus() -> None:
    acc = TcgAccelerator()
    v = acc.create_vm()
    v.add_memory(0, 0x10000)
    cpu = real_mode(v, b"\xeb\xfe")  # jmp $ (the worker thread is started)
    cpu.kick()
    assert isinstance(cpu.run(), InterruptedExit)
    acc.close()
    assert v.closed and cpu.closed
    with pytest.raises(HandleClosedError):
        acc.create_vm()


def test_close_while_an_exit_is_pending(vm: TcgVM) -> None:
    cpu = real_mode(vm, bytes.fromhex("e4 10 f4"))  # in al,0x10; hlt
    assert isinstance(cpu.run(), PortIoExit)
    cpu.close()  # the worker is parked in the IN hook: must not hang
    assert cpu.closed


# --------------------------------------------------------------------------- registers


def test_new_vcpu_is_in_architectural_reset_state(vm: TcgVM) -> None:
    cpu = vm.create_vcpu()
    assert cpu.get_regs() == Registers(rip=0xFFF0, rflags=0x2, rdx=0x600)
    sregs = cpu.get_sregs()
    assert sregs == SpecialRegisters()
    assert (sregs.cs.selector, sregs.cs.base) == (0xF000, 0xFFFF0000)
    assert sregs.cr0 == 0x60000010


def test_runs_from_the_reset_vector(acc: TcgAccelerator) -> None:
    with acc.create_vm() as v:
        v.add_memory(0xFFFF0000, 0x10000)
        v.write_memory(0xFFFFFFF0, bytes.fromhex("b0 10 e6 f4 f4"))  # mov al,0x10; out 0xf4,al
        cpu = v.create_vcpu()
        ex = cpu.run()
        assert isinstance(ex, PortIoExit)
        assert (ex.port, ex.direction, ex.value()) == (0xF4, IoDirection.OUT, 0x10)


def test_register_round_trip(vm: TcgVM) -> None:
    cpu = vm.create_vcpu()
    values = {name: i + 1 for i, name in enumerate(Registers.NAMES[:16])}  # rax..r15
    regs = Registers(**values, rip=0x1234, rflags=0x202)
    cpu.set_regs(regs)
    assert cpu.get_regs() == regs
    sregs = flat_protected(cpu)
    sregs.gdt.base, sregs.gdt.limit = 0x800, 0x17
    sregs.idt.base, sregs.idt.limit = 0x900, 0x7FF
    sregs.cr3 = 0x5000
    cpu.set_sregs(sregs)
    assert cpu.get_sregs() == sregs


def test_protected_mode_from_set_sregs(vm: TcgVM) -> None:
    """Hidden segment state set through sregs (no GDT in memory) runs 32-bit code."""
    vm.write_memory(0x1000, bytes.fromhex("b8 78 56 34 12 e7 10 f4"))  # mov eax; out 0x10,eax
    cpu = vm.create_vcpu()
    cpu.set_sregs(flat_protected(cpu))
    cpu.set_regs(Registers(rip=0x1000, rflags=2))
    ex = cpu.run()
    assert isinstance(ex, PortIoExit)
    assert (ex.size, ex.value()) == (4, 0x12345678)
    assert isinstance(cpu.run(), HaltExit)


def test_long_mode_from_set_sregs(vm: TcgVM) -> None:
    # identity-map the first 2 MiB: PML4 0x2000 -> PDPT 0x3000 -> PD 0x4000 (2 MiB page)
    vm.write_memory(0x2000, (0x3003).to_bytes(8, "little"))
    vm.write_memory(0x3000, (0x4003).to_bytes(8, "little"))
    vm.write_memory(0x4000, (0x83).to_bytes(8, "little"))
    # mov rax, 0x1122334455667788; mov r9, rax; out 0x10, eax; hlt
    vm.write_memory(0x1000, bytes.fromhex("48 b8 88 77 66 55 44 33 22 11 49 89 c1 e7 10 f4"))
    cpu = vm.create_vcpu()
    sregs = flat_protected(cpu, long=True)
    sregs.cr3, sregs.cr4, sregs.efer = 0x2000, 0x20, 0x500
    sregs.cr0 = 0x80000011
    cpu.set_sregs(sregs)
    cpu.set_regs(Registers(rip=0x1000, rflags=2))
    ex = cpu.run()
    assert isinstance(ex, PortIoExit)
    assert ex.value() == 0x55667788
    assert isinstance(cpu.run(), HaltExit)
    regs = cpu.get_regs()
    assert regs.rax == regs.r9 == 0x1122334455667788
    assert cpu.get_sregs().efer == 0x500


# --------------------------------------------------------------------------- exits


def test_in_stops_precisely_and_completes_on_next_run(vm: TcgVM) -> None:
    """``in al,dx; mov bl,al; hlt``: nothing after the IN runs before the answer."""
    cpu = real_mode(vm, bytes.fromhex("ba 10 00 ec 88 c3 f4"))
    ex = cpu.run()
    assert isinstance(ex, PortIoExit)
    assert (ex.port, ex.size, ex.direction) == (0x10, 1, IoDirection.IN)
    assert cpu.get_regs().rbx == 0  # mov bl,al has not run
    ex.reply(0x99)
    assert isinstance(cpu.run(), HaltExit)
    assert cpu.get_regs().rbx == 0x99


def test_mmio_read_stops_precisely(vm: TcgVM) -> None:
    vm.add_mmio(0x20000, 0x1000)
    # mov ax,0x2000; mov ds,ax; mov ax,[0x10]; mov bx,ax; hlt
    cpu = real_mode(vm, bytes.fromhex("b8 00 20 8e d8 a1 10 00 89 c3 f4"))
    ex = cpu.run()
    assert isinstance(ex, MmioExit)
    assert (ex.address, ex.size, ex.is_write) == (0x20010, 2, False)
    assert cpu.get_regs().rbx == 0
    ex.data[:] = b"\x34\x12"
    assert isinstance(cpu.run(), HaltExit)
    assert cpu.get_regs().rbx == 0x1234


def test_set_registers_refused_while_exit_pending(vm: TcgVM) -> None:
    cpu = real_mode(vm, bytes.fromhex("e4 10 f4"))
    assert isinstance(cpu.run(), PortIoExit)
    cpu.get_regs()  # reading is fine
    with pytest.raises(VcpuStateError, match="pending"):
        cpu.set_regs(Registers())
    with pytest.raises(VcpuStateError):
        cpu.set_sregs(SpecialRegisters())
    assert isinstance(cpu.run(), HaltExit)
    cpu.set_regs(cpu.get_regs())


def test_run_after_halt_continues(vm: TcgVM) -> None:
    cpu = real_mode(vm, bytes.fromhex("f4 b0 07 f4"))
    assert isinstance(cpu.run(), HaltExit)
    assert cpu.get_regs().rip == 0x1001
    assert isinstance(cpu.run(), HaltExit)
    assert cpu.get_regs().rax == 7


def test_real_mode_interrupt_goes_through_the_ivt(vm: TcgVM) -> None:
    vm.write_memory(3 * 4, (0x1100).to_bytes(2, "little") + b"\0\0")  # IVT[3] = 0000:1100
    vm.write_memory(0x1100, bytes.fromhex("b0 33 e6 12 cf"))  # mov al,0x33; out 0x12,al; iret
    cpu = real_mode(vm, bytes.fromhex("cc b0 77 e6 11 f4"))  # int3; mov al,0x77; out 0x11,al
    cpu.set_regs(Registers(rip=0x1000, rsp=0x8000, rflags=0x202))
    ex = cpu.run()
    assert isinstance(ex, PortIoExit)
    assert (ex.port, ex.value()) == (0x12, 0x33)
    assert vm.read_memory(0x7FFA, 6) == bytes.fromhex("0110 0000 0202")  # IP, CS, FLAGS
    ex = cpu.run()
    assert isinstance(ex, PortIoExit)
    assert (ex.port, ex.value()) == (0x11, 0x77)
    assert isinstance(cpu.run(), HaltExit)
    assert cpu.get_regs().rflags == 0x202  # IRET restored IF


def test_invalid_opcode_is_delivered_as_ud(vm: TcgVM) -> None:
    vm.write_memory(6 * 4, (0x1100).to_bytes(2, "little") + b"\0\0")
    vm.write_memory(0x1100, bytes.fromhex("f4"))
    cpu = real_mode(vm, bytes.fromhex("90 0f 0b"))  # nop; ud2
    cpu.set_regs(Registers(rip=0x1000, rsp=0x8000, rflags=2))
    assert isinstance(cpu.run(), HaltExit)
    assert cpu.get_regs().rip == 0x1101
    assert vm.read_memory(0x7FFA, 2) == (0x1001).to_bytes(2, "little")  # IP of the ud2


def test_triple_fault_in_real_mode(vm: TcgVM) -> None:
    vm.write_memory(0x900, bytes(6))  # IDTR: limit 0, base 0
    cpu = real_mode(vm, bytes.fromhex("0f 01 1e 00 09 cc f4"))  # lidt [0x900]; int3
    ex = cpu.run()
    assert isinstance(ex, ShutdownExit)
    assert "triple fault" in ex.reason


def test_triple_fault_in_protected_mode(vm: TcgVM) -> None:
    vm.write_memory(0x1000, bytes.fromhex("0f 0b"))  # ud2 with an empty IDT
    cpu = vm.create_vcpu()
    sregs = flat_protected(cpu)
    sregs.idt.limit = 0
    cpu.set_sregs(sregs)
    cpu.set_regs(Registers(rip=0x1000, rflags=2))
    ex = cpu.run()
    assert isinstance(ex, ShutdownExit)
    assert "vector 6" in ex.reason


@pytest.mark.parametrize(
    ("code", "what"),
    [
        ("b8 00 30 8e d8 a0 00 00 f4", "read of unmapped address 0x30000"),
        ("b8 00 30 8e d8 c6 06 00 00 01 f4", "write to unmapped address 0x30000"),
        ("ea 00 00 00 30", "fetch from unmapped address 0x30000"),
    ],
)
def test_unmapped_access_is_an_internal_error(vm: TcgVM, code: str, what: str) -> None:
    cpu = real_mode(vm, bytes.fromhex(code))
    ex = cpu.run()
    assert isinstance(ex, InternalErrorExit)
    assert ex.kind == "emulation"
    assert what in ex.detail
    assert "no guest RAM or device is there" in ex.detail and "add_mmio" not in ex.detail


def test_no_kvm_paravirtual_cpuid_leaves(vm: TcgVM) -> None:
    for leaf in (0x40000000, 0x40000001):
        # mov eax, leaf; cpuid; hlt
        code = bytes.fromhex("66 b8") + leaf.to_bytes(4, "little") + bytes.fromhex("0f a2 f4")
        cpu = real_mode(vm, code, at=0x2000 + leaf % 16 * 0x100)
        assert isinstance(cpu.run(), HaltExit)
        regs = cpu.get_regs()
        assert (regs.rax, regs.rbx, regs.rcx, regs.rdx) == (0, 0, 0, 0), hex(leaf)
        cpu.close()


# --------------------------------------------------------------------------- kick, vCPUs


def test_kick_before_run_returns_interrupted_once(vm: TcgVM) -> None:
    cpu = real_mode(vm, bytes.fromhex("f4"))
    cpu.kick()
    assert isinstance(cpu.run(), InterruptedExit)
    assert isinstance(cpu.run(), HaltExit)


def test_kick_from_another_thread_stops_a_busy_loop(vm: TcgVM) -> None:
    cpu = real_mode(vm, b"\xeb\xfe")  # jmp $
    for _ in range(3):
        timer = threading.Timer(0.05, cpu.kick)
        timer.start()
        started = time.monotonic()
        assert isinstance(cpu.run(), InterruptedExit)
        assert time.monotonic() - started < 5
        timer.join()
        assert cpu.get_regs().rip == 0x1000


def test_vcpus_share_memory_and_run_in_parallel(vm: TcgVM) -> None:
    # vCPU 0 spins until the byte at 0x3000 is non-zero, then halts; vCPU 1 sets it.
    vm.write_memory(0x1000, bytes.fromhex("80 3e 00 30 00 74 f9 f4"))  # cmp [0x3000],0; je; hlt
    vm.write_memory(0x1100, bytes.fromhex("c6 06 00 30 01 f4"))  # mov byte [0x3000],1; hlt
    cpus = [vm.create_vcpu() for _ in range(2)]
    for cpu, rip in zip(cpus, (0x1000, 0x1100), strict=True):
        cpu.set_sregs(real_mode_sregs(cpu.get_sregs(), cs=0))
        cpu.set_regs(Registers(rip=rip, rflags=2))
    results: list[object] = []
    waiter = threading.Thread(target=lambda: results.append(cpus[0].run()))
    waiter.start()
    time.sleep(0.05)
    assert isinstance(cpus[1].run(), HaltExit)
    waiter.join(timeout=10)
    assert results and isinstance(results[0], HaltExit)
    assert [c.index for c in vm.vcpus] == [0, 1]


def test_max_vcpus_enforced(acc: TcgAccelerator) -> None:
    with acc.create_vm() as v:
        for _ in range(MAX_VCPUS):
            v.create_vcpu()
        with pytest.raises(CapabilityError) as info:
            v.create_vcpu()
        assert info.value.capability is Capability.MAX_VCPUS


def test_two_vms_are_independent(acc: TcgAccelerator) -> None:
    with acc.create_vm() as a, acc.create_vm() as b:
        a.add_memory(0, 0x1000)
        b.add_memory(0, 0x1000)
        a.write_memory(0, b"a")
        b.write_memory(0, b"b")
        assert (a.read_memory(0, 1), b.read_memory(0, 1)) == (b"a", b"b")


# --------------------------------------------------------------------------- clock


def test_clock_is_monotonic_and_advances_while_running(vm: TcgVM) -> None:
    first = vm.get_clock()
    assert first.flags == ClockFlags.TSC_STABLE | ClockFlags.REALTIME
    assert first.reliable
    assert abs(first.realtime - time.time_ns()) < 5_000_000_000
    reads = [vm.get_clock().clock for _ in range(1000)]
    assert reads == sorted(reads)
    time.sleep(0.02)
    assert vm.get_clock().clock - first.clock >= 20_000_000


def test_clock_stands_still_while_paused(vm: TcgVM) -> None:
    vm.pause()
    assert vm.paused
    frozen = vm.get_clock().clock
    time.sleep(0.02)
    assert vm.get_clock().clock == frozen
    vm.resume()
    time.sleep(0.01)
    after = vm.get_clock().clock
    assert frozen < after < frozen + 1_000_000_000


def test_set_clock_while_paused_is_where_resume_starts(vm: TcgVM) -> None:
    vm.pause()
    vm.set_clock(ClockData(clock=5_000_000_000))
    assert vm.get_clock().clock == 5_000_000_000
    vm.resume()
    value = vm.get_clock().clock
    assert 5_000_000_000 <= value < 6_000_000_000


def test_set_clock_with_realtime_catches_up(vm: TcgVM) -> None:
    vm.pause()
    vm.set_clock(
        ClockData(clock=1_000, flags=ClockFlags.REALTIME, realtime=time.time_ns() - 2_000_000_000)
    )
    assert vm.get_clock().clock >= 2_000_000_000


def test_paused_vm_refuses_runs_and_pause_kicks_running_vcpus(vm: TcgVM) -> None:
    cpu = real_mode(vm, b"\xeb\xfe")
    timer = threading.Timer(0.05, vm.pause)
    timer.start()
    assert isinstance(cpu.run(), InterruptedExit)
    timer.join()
    with pytest.raises(VcpuStateError, match="paused"):
        cpu.run()
    vm.resume()
    cpu.kick()
    assert isinstance(cpu.run(), InterruptedExit)


def test_plugin_module_exports() -> None:
    assert accel_tcg.accel_accelerators()[0].name == "tcg"


def test_layout_changes_refused_while_a_vcpu_runs(vm: TcgVM) -> None:
    cpu = real_mode(vm, b"\xeb\xfe")
    errors: list[BaseException] = []

    def change_layout() -> None:
        try:
            vm.add_memory(0x40000, 0x1000)
        except VcpuStateError as exc:
            errors.append(exc)
        finally:
            cpu.kick()

    timer = threading.Timer(0.05, change_layout)
    timer.start()
    assert isinstance(cpu.run(), InterruptedExit)
    timer.join()
    assert errors and "running" in str(errors[0])
    vm.add_memory(0x40000, 0x1000)  # between runs it is fine


def test_triple_fault_in_long_mode_uses_16_byte_gates(vm: TcgVM) -> None:
    vm.write_memory(0x2000, (0x3003).to_bytes(8, "little"))
    vm.write_memory(0x3000, (0x4003).to_bytes(8, "little"))
    vm.write_memory(0x4000, (0x83).to_bytes(8, "little"))
    vm.write_memory(0x1000, bytes.fromhex("0f 0b"))  # ud2
    cpu = vm.create_vcpu()
    sregs = flat_protected(cpu, long=True)
    sregs.cr3, sregs.cr4, sregs.efer, sregs.cr0 = 0x2000, 0x20, 0x500, 0x80000011
    sregs.idt.limit = 6 * 16 + 7  # vector 6 would fit with 8-byte gates, not with 16
    cpu.set_sregs(sregs)
    cpu.set_regs(Registers(rip=0x1000, rflags=2))
    ex = cpu.run()
    assert isinstance(ex, ShutdownExit)


def test_kicks_racing_with_exits_lose_and_repeat_nothing(vm: TcgVM) -> None:
    """Kicks land at random points of an exit-heavy loop; no OUT is lost or repeated."""
    # l: inc bx; mov ax,bx; out 0x10,ax; jmp l
    cpu = real_mode(vm, bytes.fromhex("43 89 d8 e7 10 eb f9"))
    stop = threading.Event()

    def kicker() -> None:
        while not stop.is_set():
            cpu.kick()
            time.sleep(0.0005)

    thread = threading.Thread(target=kicker)
    thread.start()
    seen: list[int] = []
    interrupted = 0
    try:
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            ex = cpu.run()
            if isinstance(ex, InterruptedExit):
                interrupted += 1
                continue
            assert isinstance(ex, PortIoExit), ex
            seen.append(ex.value())
    finally:
        stop.set()
        thread.join()
    assert interrupted > 0
    # the guest counts in 16 bits (BX), so the sequence wraps past 0xFFFF
    assert seen == [i & 0xFFFF for i in range(1, len(seen) + 1)]


def test_paging_leaves_cr2_alone(vm: TcgVM) -> None:
    """Starting the engine must not leave a page-fault address in CR2."""
    vm.write_memory(0x2000, (0x3003).to_bytes(8, "little"))
    vm.write_memory(0x3000, (0x4003).to_bytes(8, "little"))
    vm.write_memory(0x4000, (0x83).to_bytes(8, "little"))
    vm.write_memory(0x1000, bytes.fromhex("90 f4"))
    cpu = vm.create_vcpu()
    sregs = flat_protected(cpu, long=True)
    sregs.cr3, sregs.cr4, sregs.efer, sregs.cr0 = 0x2000, 0x20, 0x500, 0x80000011
    cpu.set_sregs(sregs)
    cpu.set_regs(Registers(rip=0x1000, rflags=2))
    assert isinstance(cpu.run(), HaltExit)
    assert cpu.get_sregs().cr2 == 0
