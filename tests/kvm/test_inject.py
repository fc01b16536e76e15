"""Interrupt injection on a KVM VM without the in-kernel irqchip (KVM_INTERRUPT,
KVM_NMI, kvm_run.request_interrupt_window): what a userspace interrupt controller
drives (:mod:`accel.machine.interrupts`). Real-mode guests (this kind of host's nested
KVM delivers interrupts to real mode and long mode, not to 32-bit protected mode)."""

from __future__ import annotations

import pytest
from accel_kvm import KvmAccelerator

from accel import (
    Capability,
    HaltExit,
    InterruptWindowExit,
    PortIoExit,
    Registers,
    VmOptions,
    real_mode_sregs,
)
from accel.errors import InvalidArgumentError, UnsupportedError, VcpuStateError

from .guests import ORG, RAM

pytestmark = pytest.mark.kvm

#: sti; nop; hlt; jmp $-3
STI_HLT = bytes.fromhex("fb90f4ebfd")
#: cli; mov cx, 1000; loop $; sti; jmp $
CLI_LOOP_STI = bytes.fromhex("fab9e803e2fefbebfe")
#: the handler of vector 0x20 at 0x2000: mov al, 0x42; out 0x80, al; iret
HANDLER = bytes.fromhex("b042e680cf")
#: the NMI handler at 0x2100: mov al, 0x4e; out 0x80, al; iret
NMI_HANDLER = bytes.fromhex("b04ee680cf")


def _vm(acc: KvmAccelerator, code: bytes):  # type: ignore[no-untyped-def]
    vm = acc.create_vm()
    vm.add_memory(0, RAM)
    vm.write_memory(ORG, code)
    vm.write_memory(0x2000, HANDLER)
    vm.write_memory(0x2100, NMI_HANDLER)
    vm.write_memory(0x20 * 4, (0x2000).to_bytes(2, "little") + bytes(2))
    vm.write_memory(2 * 4, (0x2100).to_bytes(2, "little") + bytes(2))
    cpu = vm.create_vcpu()
    cpu.set_sregs(real_mode_sregs(cpu.get_sregs(), cs=0, ds=0))
    cpu.set_regs(Registers(rip=ORG, rflags=2))
    return vm, cpu


def test_the_capability_is_answered_yes() -> None:
    with KvmAccelerator() as acc:
        assert acc.capabilities().supports(Capability.INTERRUPT_INJECTION)


def test_an_injected_interrupt_wakes_a_halted_vcpu_through_the_ivt() -> None:
    with KvmAccelerator() as acc:
        vm, cpu = _vm(acc, STI_HLT)
        assert not cpu.interrupt_ready()  # KVM has said nothing before the first run
        assert isinstance(cpu.run(), HaltExit)
        assert cpu.interrupt_ready()
        cpu.inject_interrupt(0x20)
        assert not cpu.interrupt_ready()  # queued, not yet taken
        with pytest.raises(VcpuStateError):
            cpu.inject_interrupt(0x21)
        ex = cpu.run()
        assert isinstance(ex, PortIoExit) and ex.port == 0x80 and bytes(ex.data) == b"B"
        assert isinstance(cpu.run(), HaltExit)  # back from the handler, halted again
        vm.close()


def test_the_interrupt_window_opens_after_sti() -> None:
    with KvmAccelerator() as acc:
        vm, cpu = _vm(acc, CLI_LOOP_STI)
        cpu.request_interrupt_window(True)
        ex = cpu.run()
        assert isinstance(ex, InterruptWindowExit)
        assert cpu.get_regs().rflags & 0x200
        assert cpu.interrupt_ready()
        cpu.request_interrupt_window(False)
        cpu.inject_interrupt(0x20)
        ex = cpu.run()
        assert isinstance(ex, PortIoExit) and bytes(ex.data) == b"B"
        vm.close()


def test_an_nmi_is_taken_with_interrupts_disabled() -> None:
    with KvmAccelerator() as acc:
        vm, cpu = _vm(acc, bytes.fromhex("faf4ebfd"))  # cli; hlt; jmp $-3
        assert isinstance(cpu.run(), HaltExit)
        assert not cpu.interrupt_ready()
        cpu.inject_nmi()
        ex = cpu.run()
        assert isinstance(ex, PortIoExit) and bytes(ex.data) == b"N"
        vm.close()


def test_bad_vector_and_in_kernel_irqchip_are_refused() -> None:
    with KvmAccelerator() as acc:
        vm, cpu = _vm(acc, STI_HLT)
        assert isinstance(cpu.run(), HaltExit)
        with pytest.raises(InvalidArgumentError):
            cpu.inject_interrupt(256)
        vm.close()
        if not acc.capabilities().supports(Capability.IRQCHIP):
            return
        with acc.create_vm(VmOptions(irqchip=True)) as vm2:
            cpu2 = vm2.create_vcpu()
            with pytest.raises(UnsupportedError, match="in-kernel irqchip"):
                cpu2.inject_interrupt(0x20)
            with pytest.raises(UnsupportedError):
                cpu2.request_interrupt_window(True)


def test_x2apic_and_tsc_deadline_are_hidden_without_the_irqchip() -> None:
    with KvmAccelerator() as acc, acc.create_vm() as vm:
        leaf1 = [e for e in vm.create_vcpu().cpuid() if e.function == 1]
        assert leaf1 and not leaf1[0].ecx & ((1 << 21) | (1 << 24))
