"""Fault injection: every ioctl the plugin issues, failing with each errno of the issue.

The list of ioctls comes from ``accel_kvm.ioctls.IOCTLS`` (what the plugin issues), so an
ioctl added to the plugin without a scenario here fails ``test_every_ioctl_has_a_scenario``.
Each scenario sets up with no fault, arms the fault, checks the typed error (class, ioctl
name, errno), checks that nothing was half-applied, disarms and checks the retry works.
"""

from __future__ import annotations

import errno
from collections.abc import Callable

import pytest
from accel_kvm import FaultInjector, KvmAccelerator, bindings, ioctls

from accel import HaltExit, Registers, VmOptions
from accel.errors import AcceleratorUnavailableError, BackendCallError

from . import guests
from .guests import ORG, boot, fd_count, map_count
from .state_faults import STATE_SCENARIOS

pytestmark = pytest.mark.kvm

ERRNOS = [errno.EINTR, errno.EAGAIN, errno.ENOMEM, errno.EFAULT, errno.EBADF, errno.EACCES]


def expect(name: str, err: int, fn: Callable[[], object]) -> BackendCallError:
    with pytest.raises(BackendCallError) as info:
        fn()
    exc = info.value
    assert exc.call == name
    assert exc.errno == err
    assert exc.accelerator == "kvm"
    assert name in str(exc)
    return exc


def leaks() -> tuple[int, int]:
    return fd_count(), map_count()


# --------------------------------------------------------------------------- scenarios


def s_get_api_version(inj: FaultInjector, err: int) -> None:
    before = leaks()
    inj.fail = {"KVM_GET_API_VERSION": err}
    acc = KvmAccelerator(sys=inj)
    av = acc.probe()
    assert not av
    assert av.details["call"] == "KVM_GET_API_VERSION" and av.details["errno"] == err
    with pytest.raises(AcceleratorUnavailableError) as info:
        acc.create_vm()
    assert info.value.call == "KVM_GET_API_VERSION"  # type: ignore[attr-defined]
    assert info.value.errno == err  # type: ignore[attr-defined]
    assert leaks() == before  # the device fd was closed
    inj.fail = {}
    assert acc.probe()
    acc.close()


def s_check_extension(inj: FaultInjector, err: int) -> None:
    with KvmAccelerator(sys=inj) as acc:
        inj.fail = {"KVM_CHECK_EXTENSION": err}
        assert acc.probe()
        expect("KVM_CHECK_EXTENSION", err, acc.capabilities)
        expect("KVM_CHECK_EXTENSION", err, lambda: acc.check_extension(0))
        inj.fail = {}
        caps = acc.capabilities()  # nothing wrong was cached
        assert acc.check_extension(0) in (0, 1)
        # VM level: the VM fd's KVM_CHECK_EXTENSION
        with acc.create_vm() as vm:
            if caps.supports(next(c for c in caps if c.value == "vm-capability-query")):
                inj.fail = {"KVM_CHECK_EXTENSION": err}
                expect("KVM_CHECK_EXTENSION", err, vm.capabilities)
                inj.fail = {}
            assert len(vm.capabilities()) == len(caps)


def s_get_supported_cpuid(inj: FaultInjector, err: int) -> None:
    with KvmAccelerator(sys=inj) as acc:
        inj.fail = {"KVM_GET_SUPPORTED_CPUID": err}
        expect("KVM_GET_SUPPORTED_CPUID", err, acc.capabilities)
        expect("KVM_GET_SUPPORTED_CPUID", err, acc.create_vm)
        assert acc.vms == ()
        inj.fail = {}
        assert len(acc.capabilities()) > 0


def s_create_vm(inj: FaultInjector, err: int) -> None:
    with KvmAccelerator(sys=inj) as acc:
        acc.capabilities()
        before = leaks()
        inj.fail = {"KVM_CREATE_VM": err}
        expect("KVM_CREATE_VM", err, acc.create_vm)
        assert acc.vms == () and leaks() == before
        inj.fail = {}
        acc.create_vm().close()


def _create_vm_with(name: str, options: VmOptions) -> Callable[[FaultInjector, int], None]:
    def scenario(inj: FaultInjector, err: int) -> None:
        with KvmAccelerator(sys=inj) as acc:
            acc.capabilities()
            before = leaks()
            inj.fail = {name: err}
            expect(name, err, lambda: acc.create_vm(options))
            assert acc.vms == () and leaks() == before  # the VM fd was closed
            inj.fail = {}
            acc.create_vm(options).close()

    return scenario


def _create_vcpu_with(name: str) -> Callable[[FaultInjector, int], None]:
    def scenario(inj: FaultInjector, err: int) -> None:
        with KvmAccelerator(sys=inj) as acc, acc.create_vm() as vm:
            if name != "KVM_GET_VCPU_MMAP_SIZE":
                acc.vcpu_mmap_size()
            acc.supported_cpuid()
            before = leaks()
            inj.fail = {name: err}
            expect(name, err, vm.create_vcpu)
            assert vm.vcpus == () and leaks() == before
            inj.fail = {}
            assert vm.create_vcpu().get_regs().rip == 0xFFF0

    return scenario


def s_set_user_memory_region(inj: FaultInjector, err: int) -> None:
    with KvmAccelerator(sys=inj) as acc, acc.create_vm() as vm:
        before = leaks()
        inj.fail = {"KVM_SET_USER_MEMORY_REGION": err}
        expect("KVM_SET_USER_MEMORY_REGION", err, lambda: vm.add_memory(0, 0x10000))
        assert vm.memory_regions == () and leaks() == before  # no region, no mapping
        inj.fail = {}
        region = vm.add_memory(0, 0x10000)
        assert region.slot == 0


def s_get_clock(inj: FaultInjector, err: int) -> None:
    with KvmAccelerator(sys=inj) as acc, acc.create_vm() as vm:
        inj.fail = {"KVM_GET_CLOCK": err}
        expect("KVM_GET_CLOCK", err, vm.get_clock)  # raises: never a zero clock
        expect("KVM_GET_CLOCK", err, vm.pause)
        assert not vm.paused
        inj.fail = {}
        assert vm.get_clock().clock > 0


def s_set_clock(inj: FaultInjector, err: int) -> None:
    with KvmAccelerator(sys=inj) as acc, acc.create_vm() as vm:
        now = vm.get_clock()
        inj.fail = {"KVM_SET_CLOCK": err}
        expect("KVM_SET_CLOCK", err, lambda: vm.set_clock(now))
        inj.fail = {}
        vm.pause()
        cached = vm.get_clock()
        inj.fail = {"KVM_SET_CLOCK": err}
        expect("KVM_SET_CLOCK", err, vm.resume)
        assert vm.paused and vm.get_clock() == cached  # still paused, cache intact
        inj.fail = {}
        vm.resume()
        assert not vm.paused


def s_run(inj: FaultInjector, err: int) -> None:
    with KvmAccelerator(sys=inj) as acc:
        _vm, cpu = boot(acc, guests.HALT)
        if err == errno.EINTR:
            inj.fail, inj.times = {"KVM_RUN": err}, 1
            assert isinstance(cpu.run(), HaltExit)  # EINTR is retried
            assert inj.calls["KVM_RUN"] == 2
            return
        inj.fail = {"KVM_RUN": err}
        expect("KVM_RUN", err, cpu.run)
        assert cpu.get_regs().rip == ORG
        inj.fail = {}
        assert isinstance(cpu.run(), HaltExit)


def s_get_regs(inj: FaultInjector, err: int) -> None:
    with KvmAccelerator(sys=inj) as acc:
        _vm, cpu = boot(acc, guests.HALT)
        inj.fail = {"KVM_GET_REGS": err}
        expect("KVM_GET_REGS", err, cpu.get_regs)
        inj.fail = {}
        assert cpu.get_regs().rip == ORG


def s_set_regs(inj: FaultInjector, err: int) -> None:
    with KvmAccelerator(sys=inj) as acc:
        _vm, cpu = boot(acc, guests.HALT)
        before = cpu.get_regs()
        inj.fail = {"KVM_SET_REGS": err}
        expect("KVM_SET_REGS", err, lambda: cpu.set_regs(Registers(rax=1, rip=0x2000)))
        inj.fail = {}
        assert cpu.get_regs() == before


def s_get_sregs(inj: FaultInjector, err: int) -> None:
    with KvmAccelerator(sys=inj) as acc:
        _vm, cpu = boot(acc, guests.HALT)
        inj.fail = {"KVM_GET_SREGS": err}
        expect("KVM_GET_SREGS", err, cpu.get_sregs)
        inj.fail = {}
        assert cpu.get_sregs().cs.selector == 0


def s_set_sregs(inj: FaultInjector, err: int) -> None:
    with KvmAccelerator(sys=inj) as acc:
        _vm, cpu = boot(acc, guests.HALT)
        before = cpu.get_sregs()
        changed = cpu.get_sregs()
        changed.cr2 = 0x1234
        inj.fail = {"KVM_SET_SREGS": err}
        expect("KVM_SET_SREGS", err, lambda: cpu.set_sregs(changed))
        inj.fail = {}
        assert cpu.get_sregs() == before


def s_kvmclock_ctrl(inj: FaultInjector, err: int) -> None:
    with KvmAccelerator(sys=inj) as acc:
        if not acc.check_extension(bindings.KVM_CAP_KVMCLOCK_CTRL):
            pytest.skip("host KVM has no KVM_CAP_KVMCLOCK_CTRL")
        vm, cpu = boot(acc, guests.KVMCLOCK_ENABLE)
        assert isinstance(cpu.run(), HaltExit)
        inj.fail = {"KVM_KVMCLOCK_CTRL": err}
        expect("KVM_KVMCLOCK_CTRL", err, cpu.kvmclock_ctrl)
        vm.pause()
        cached = vm.get_clock()
        expect("KVM_KVMCLOCK_CTRL", err, vm.resume)
        assert vm.paused and vm.get_clock() == cached  # resume can be retried
        inj.fail = {}
        vm.resume()
        assert not vm.paused
        assert isinstance(cpu.run(), HaltExit)


def s_irq_line(inj: FaultInjector, err: int) -> None:
    with KvmAccelerator(sys=inj) as acc, acc.create_vm(VmOptions(irqchip=True)) as vm:
        inj.fail = {"KVM_IRQ_LINE": err}
        expect("KVM_IRQ_LINE", err, lambda: vm.set_irq_line(4, True))
        inj.fail = {}
        vm.set_irq_line(4, True)  # the retry works
        vm.set_irq_line(4, False)


def s_interrupt(inj: FaultInjector, err: int) -> None:
    with KvmAccelerator(sys=inj) as acc:
        _vm, cpu = boot(acc, guests.HALT)
        cpu.set_regs(Registers(rip=ORG, rflags=0x202))
        assert isinstance(cpu.run(), HaltExit)
        assert cpu.interrupt_ready()
        inj.fail = {"KVM_INTERRUPT": err}
        expect("KVM_INTERRUPT", err, lambda: cpu.inject_interrupt(0x20))
        assert cpu.interrupt_ready()  # nothing was queued
        inj.fail = {}
        cpu.inject_interrupt(0x20)
        assert not cpu.interrupt_ready()


def s_nmi(inj: FaultInjector, err: int) -> None:
    with KvmAccelerator(sys=inj) as acc:
        _vm, cpu = boot(acc, guests.HALT)
        inj.fail = {"KVM_NMI": err}
        expect("KVM_NMI", err, cpu.inject_nmi)
        inj.fail = {}
        cpu.inject_nmi()


SCENARIOS: dict[str, Callable[[FaultInjector, int], None]] = {
    "KVM_GET_API_VERSION": s_get_api_version,
    "KVM_CREATE_VM": s_create_vm,
    "KVM_CHECK_EXTENSION": s_check_extension,
    "KVM_GET_VCPU_MMAP_SIZE": _create_vcpu_with("KVM_GET_VCPU_MMAP_SIZE"),
    "KVM_GET_SUPPORTED_CPUID": s_get_supported_cpuid,
    "KVM_CREATE_VCPU": _create_vcpu_with("KVM_CREATE_VCPU"),
    "KVM_SET_USER_MEMORY_REGION": s_set_user_memory_region,
    "KVM_CREATE_IRQCHIP": _create_vm_with("KVM_CREATE_IRQCHIP", VmOptions(irqchip=True)),
    "KVM_IRQ_LINE": s_irq_line,
    "KVM_CREATE_PIT2": _create_vm_with("KVM_CREATE_PIT2", VmOptions(irqchip=True, pit=True)),
    "KVM_SET_CLOCK": s_set_clock,
    "KVM_GET_CLOCK": s_get_clock,
    "KVM_RUN": s_run,
    "KVM_GET_REGS": s_get_regs,
    "KVM_SET_REGS": s_set_regs,
    "KVM_GET_SREGS": s_get_sregs,
    "KVM_SET_SREGS": s_set_sregs,
    "KVM_SET_CPUID2": _create_vcpu_with("KVM_SET_CPUID2"),
    "KVM_X86_GET_MCE_CAP_SUPPORTED": _create_vcpu_with("KVM_X86_GET_MCE_CAP_SUPPORTED"),
    "KVM_X86_SETUP_MCE": _create_vcpu_with("KVM_X86_SETUP_MCE"),
    "KVM_KVMCLOCK_CTRL": s_kvmclock_ctrl,
    "KVM_INTERRUPT": s_interrupt,
    "KVM_NMI": s_nmi,
    **STATE_SCENARIOS,
}


def test_every_ioctl_has_a_scenario() -> None:
    assert sorted(SCENARIOS) == sorted(ioctls.IOCTLS)


@pytest.mark.parametrize("err", ERRNOS, ids=[errno.errorcode[e] for e in ERRNOS])
@pytest.mark.parametrize("name", sorted(ioctls.IOCTLS))
def test_ioctl_failure_is_typed_and_nothing_half_applied(name: str, err: int) -> None:
    scenario = SCENARIOS.get(name)
    assert scenario is not None, f"no fault-injection scenario for {name}"
    inj = FaultInjector()
    scenario(inj, err)
    assert inj.injected.get(name, 0) >= 1, f"{name} was never issued by its scenario"


def test_failed_set_cpuid2_consumes_the_vcpu_index() -> None:
    """KVM cannot destroy a vCPU: after a later step fails the index stays taken."""
    inj = FaultInjector()
    with KvmAccelerator(sys=inj) as acc, acc.create_vm() as vm:
        inj.fail = {"KVM_SET_CPUID2": errno.ENOMEM}
        expect("KVM_SET_CPUID2", errno.ENOMEM, lambda: vm.create_vcpu(0))
        inj.fail = {}
        assert vm.create_vcpu().index == 1


def test_mmap_failure_is_typed() -> None:
    inj = FaultInjector()
    with KvmAccelerator(sys=inj) as acc, acc.create_vm() as vm:
        before = leaks()
        inj.fail = {"mmap": errno.ENOMEM}
        expect("mmap", errno.ENOMEM, lambda: vm.add_memory(0, 0x1000))
        expect("mmap", errno.ENOMEM, vm.create_vcpu)
        assert vm.memory_regions == () and vm.vcpus == () and leaks() == before


def test_kvmclock_ctrl_einval_is_harmless_only_while_kvmclock_is_unarmed() -> None:
    """KVM answers EINVAL to KVM_KVMCLOCK_CTRL when the guest has no pvclock page: that
    is reported as False. The same EINVAL with kvmclock armed is an error naming it."""
    inj = FaultInjector()
    with KvmAccelerator(sys=inj) as acc:
        if not acc.check_extension(bindings.KVM_CAP_KVMCLOCK_CTRL):
            pytest.skip("host KVM has no KVM_CAP_KVMCLOCK_CTRL")
        _vm, cpu = boot(acc, guests.HALT)
        assert cpu.kvmclock_ctrl() is False  # the kernel's own EINVAL: nothing armed
        _vm2, armed = boot(acc, guests.KVMCLOCK_ENABLE)
        assert isinstance(armed.run(), HaltExit)
        assert armed.kvmclock_ctrl() is True
        inj.fail = {"KVM_KVMCLOCK_CTRL": errno.EINVAL}
        exc = expect("KVM_KVMCLOCK_CTRL", errno.EINVAL, armed.kvmclock_ctrl)
        assert "0x4b564d01" in str(exc)
