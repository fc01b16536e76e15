"""Fault-injection scenarios for the state ioctls of :mod:`accel_kvm.state` (merged into
``tests/kvm/test_faults.py``'s SCENARIOS): each read fails typed and the retry works;
each write fails typed and leaves the state as it was (all-or-nothing)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from accel_kvm import FaultInjector, KvmAccelerator, KvmVcpu, KvmVM, bindings, ioctls

from accel import VmOptions
from accel.cpustate import DebugRegisters, FpuState, MpState, VcpuEvents
from accel.errors import BackendCallError
from accel.irqstate import LapicState

from . import guests
from .guests import ORG, RAM

_LSTAR = 0xC0000082


def _expect(name: str, err: int, fn: Callable[[], object]) -> None:
    with pytest.raises(BackendCallError) as info:
        fn()
    assert info.value.call == name and info.value.errno == err
    assert name in str(info.value)


def _irq_vm(acc: KvmAccelerator) -> tuple[KvmVM, KvmVcpu]:
    vm = acc.create_vm(VmOptions(irqchip=True, pit=True))
    vm.add_memory(0, RAM)
    vm.write_memory(ORG, guests.HALT)
    return vm, vm.create_vcpu()


def _getter(name: str, read: Callable[[KvmVM, KvmVcpu], Any], irq: bool = False) -> Any:
    def scenario(inj: FaultInjector, err: int) -> None:
        with KvmAccelerator(sys=inj) as acc:
            vm, cpu = _irq_vm(acc) if irq else guests.boot(acc, guests.HALT)
            good = read(vm, cpu)
            inj.fail = {name: err}
            _expect(name, err, lambda: read(vm, cpu))
            inj.fail = {}
            assert read(vm, cpu) == good

    return scenario


def _setter(
    name: str,
    read: Callable[[KvmVM, KvmVcpu], Any],
    write: Callable[[KvmVM, KvmVcpu], None],
    irq: bool = False,
) -> Any:
    def scenario(inj: FaultInjector, err: int) -> None:
        with KvmAccelerator(sys=inj) as acc:
            vm, cpu = _irq_vm(acc) if irq else guests.boot(acc, guests.HALT)
            before = read(vm, cpu)
            inj.fail = {name: err}
            _expect(name, err, lambda: write(vm, cpu))
            inj.fail = {}
            assert read(vm, cpu) == before  # nothing half-applied
            write(vm, cpu)  # the retry works

    return scenario


def _msr_index_list(inj: FaultInjector, err: int) -> None:
    with KvmAccelerator(sys=inj) as acc:
        _vm, cpu = guests.boot(acc, guests.HALT)
        inj.fail = {"KVM_GET_MSR_INDEX_LIST": err}
        _expect("KVM_GET_MSR_INDEX_LIST", err, cpu.msr_indices)
        inj.fail = {}
        assert _LSTAR in cpu.msr_indices()  # nothing wrong was cached


class _WithTscControl:
    """A Sys that answers KVM_CHECK_EXTENSION(KVM_CAP_TSC_CONTROL) with 1 and passes the
    rest on: with the failure injected in front of it, KVM_SET_TSC_KHZ never reaches a
    kernel that lacks the capability, so its errno path is reachable on every host."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def open(self, path: str, flags: int) -> int:
        return int(self.inner.open(path, flags))

    def close(self, fd: int) -> None:
        self.inner.close(fd)

    def ioctl(self, fd: int, request: int, arg: Any = 0, /) -> Any:
        if request == ioctls.KVM_CHECK_EXTENSION and arg == bindings.KVM_CAP_TSC_CONTROL:
            return 1
        return self.inner.ioctl(fd, request, arg)

    def mmap(self, fd: int, length: int) -> Any:
        return self.inner.mmap(fd, length)


def _tsc_set(inj: FaultInjector, err: int) -> None:
    inj.inner = _WithTscControl(inj.inner)
    with KvmAccelerator(sys=inj) as acc:
        vm, _cpu = guests.boot(acc, guests.HALT)
        khz = vm.get_tsc_khz()
        inj.fail = {"KVM_SET_TSC_KHZ": err}
        _expect("KVM_SET_TSC_KHZ", err, lambda: vm.set_tsc_khz(khz))
        inj.fail = {}
        assert vm.get_tsc_khz() == khz  # nothing half-applied


def _lstar(vm: KvmVM, cpu: KvmVcpu) -> Any:
    return cpu.get_msrs([_LSTAR, 0xC0000081])


def _fpu_changed(cpu: KvmVcpu) -> FpuState:
    area = bytearray(cpu.get_fpu().xsave)
    area[0:2] = (0x27F).to_bytes(2, "little")
    return FpuState(bytes(area), cpu.get_fpu().xcr0)


def _lapic_changed(cpu: KvmVcpu) -> LapicState:
    regs = bytearray(cpu.get_lapic().regs)
    regs[0x80] = 0x20  # TPR
    return LapicState(bytes(regs))


def _chip_changed(vm: KvmVM) -> Any:
    st = vm.get_irqchip_state()
    st.pic_master.imr = 0x5A
    st.ioapic.redirection[3] = 0x10033
    return st


def _pit_changed(vm: KvmVM) -> Any:
    st = vm.get_pit_state()
    st.channels[2].gate = 1 - st.channels[2].gate
    return st


STATE_SCENARIOS: dict[str, Callable[[FaultInjector, int], None]] = {
    "KVM_GET_MSR_INDEX_LIST": _msr_index_list,
    "KVM_GET_MSRS": _getter("KVM_GET_MSRS", _lstar),
    "KVM_SET_MSRS": _setter(
        "KVM_SET_MSRS", _lstar, lambda vm, cpu: cpu.set_msrs({0xC0000081: 1 << 48, _LSTAR: 5})
    ),
    "KVM_GET_XSAVE": _getter("KVM_GET_XSAVE", lambda vm, cpu: cpu.get_fpu()),
    "KVM_SET_XSAVE": _setter(
        "KVM_SET_XSAVE",
        lambda vm, cpu: cpu.get_fpu(),
        lambda vm, cpu: cpu.set_fpu(_fpu_changed(cpu)),
    ),
    "KVM_GET_XCRS": _getter("KVM_GET_XCRS", lambda vm, cpu: cpu.get_fpu()),
    "KVM_SET_XCRS": _setter(
        "KVM_SET_XCRS",
        lambda vm, cpu: cpu.get_fpu(),
        lambda vm, cpu: cpu.set_fpu(_fpu_changed(cpu)),
    ),
    "KVM_GET_DEBUGREGS": _getter("KVM_GET_DEBUGREGS", lambda vm, cpu: cpu.get_debug_registers()),
    "KVM_SET_DEBUGREGS": _setter(
        "KVM_SET_DEBUGREGS",
        lambda vm, cpu: cpu.get_debug_registers(),
        lambda vm, cpu: cpu.set_debug_registers(DebugRegisters(dr0=0x1000, dr7=0x401)),
    ),
    "KVM_GET_VCPU_EVENTS": _getter("KVM_GET_VCPU_EVENTS", lambda vm, cpu: cpu.get_events()),
    "KVM_SET_VCPU_EVENTS": _setter(
        "KVM_SET_VCPU_EVENTS",
        lambda vm, cpu: cpu.get_events(),
        lambda vm, cpu: cpu.set_events(VcpuEvents(interrupt_shadow=1)),
    ),
    "KVM_GET_MP_STATE": _getter("KVM_GET_MP_STATE", lambda vm, cpu: cpu.get_mp_state()),
    "KVM_SET_MP_STATE": _setter(
        "KVM_SET_MP_STATE",
        lambda vm, cpu: cpu.get_mp_state(),
        lambda vm, cpu: cpu.set_mp_state(MpState.HALTED),
        irq=True,
    ),
    "KVM_GET_LAPIC": _getter("KVM_GET_LAPIC", lambda vm, cpu: cpu.get_lapic(), irq=True),
    "KVM_SET_LAPIC": _setter(
        "KVM_SET_LAPIC",
        lambda vm, cpu: cpu.get_lapic(),
        lambda vm, cpu: cpu.set_lapic(_lapic_changed(cpu)),
        irq=True,
    ),
    "KVM_GET_IRQCHIP": _getter("KVM_GET_IRQCHIP", lambda vm, cpu: vm.get_irqchip_state(), irq=True),
    "KVM_SET_IRQCHIP": _setter(
        "KVM_SET_IRQCHIP",
        lambda vm, cpu: vm.get_irqchip_state(),
        lambda vm, cpu: vm.set_irqchip_state(_chip_changed(vm)),
        irq=True,
    ),
    "KVM_GET_PIT2": _getter("KVM_GET_PIT2", lambda vm, cpu: vm.get_pit_state(), irq=True),
    "KVM_SET_PIT2": _setter(
        "KVM_SET_PIT2",
        lambda vm, cpu: vm.get_pit_state(),
        lambda vm, cpu: vm.set_pit_state(_pit_changed(vm)),
        irq=True,
    ),
    "KVM_GET_TSC_KHZ": _getter("KVM_GET_TSC_KHZ", lambda vm, cpu: vm.get_tsc_khz()),
    "KVM_SET_TSC_KHZ": _tsc_set,
}
