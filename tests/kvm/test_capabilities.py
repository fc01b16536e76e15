"""Capabilities on the real /dev/kvm; each test follows what the host reports."""

from __future__ import annotations

import errno
from typing import Any

import pytest
from accel_kvm import FaultInjector, HostSys, KvmAccelerator, bindings, ioctls

from accel import Capability, ClockFlags, HaltExit, Support, VmOptions
from accel.errors import CapabilityError, InvalidArgumentError

from . import guests
from .guests import boot

pytestmark = pytest.mark.kvm

UNKNOWN_CAP = 0x7FFF0000


def test_every_member_is_answered_yes_or_no(acc: KvmAccelerator) -> None:
    caps = acc.capabilities()
    for cap in Capability:
        assert caps.support(cap) in (Support.YES, Support.NO), cap
        assert caps[cap].source


def test_integer_values_are_kept(acc: KvmAccelerator) -> None:
    caps = acc.capabilities()
    assert caps.value(Capability.ADJUST_CLOCK) == acc.check_extension(
        bindings.KVM_CAP_ADJUST_CLOCK
    ) or (not caps.supports(Capability.ADJUST_CLOCK))
    nr = caps.value(Capability.NR_VCPUS)
    mx = caps.value(Capability.MAX_VCPUS)
    assert nr is not None and mx is not None and mx >= nr >= 1


def test_capabilities_are_read_once(acc: KvmAccelerator) -> None:
    inj = FaultInjector()
    a = KvmAccelerator(sys=inj)
    first = a.capabilities()
    calls = dict(inj.calls)
    assert a.capabilities() is first
    assert a.check(Capability.IRQCHIP) == first[Capability.IRQCHIP]
    assert inj.calls == calls  # answered from memory
    a.close()


def test_unknown_capability_reads_no(acc: KvmAccelerator) -> None:
    assert acc.check_extension(UNKNOWN_CAP) == 0
    with acc.create_vm() as vm:
        assert vm.check_extension(UNKNOWN_CAP) == 0
    with pytest.raises(InvalidArgumentError):
        acc.check_extension(-1)


def test_raw_query_matches_the_enum(acc: KvmAccelerator) -> None:
    caps = acc.capabilities()
    assert caps.supports(Capability.IRQCHIP) == bool(acc.check_extension(bindings.KVM_CAP_IRQCHIP))
    # something the enum does not name: KVM_CAP_IMMEDIATE_EXIT
    assert acc.check_extension(bindings.KVM_CAP_IMMEDIATE_EXIT) in (0, 1)


class _ZeroVcpuCaps(HostSys):
    """Answers 0 for KVM_CAP_NR_VCPUS (and MAX_VCPUS when asked), like an old kernel."""

    def __init__(self, zero: set[int]) -> None:
        self.zero = zero

    def ioctl(self, fd: int, request: int, arg: Any = 0, /) -> Any:  # type: ignore[override]
        if request == ioctls.KVM_CHECK_EXTENSION and arg in self.zero:
            return 0
        return super().ioctl(fd, request, arg)


def test_nr_vcpus_falls_back_to_4() -> None:
    with KvmAccelerator(
        sys=_ZeroVcpuCaps({bindings.KVM_CAP_NR_VCPUS, bindings.KVM_CAP_MAX_VCPUS})
    ) as a:
        caps = a.capabilities()
        assert caps.value(Capability.NR_VCPUS) == 4
        assert caps.value(Capability.MAX_VCPUS) == 4


def test_max_vcpus_falls_back_to_nr_vcpus(acc: KvmAccelerator) -> None:
    nr = acc.check_extension(bindings.KVM_CAP_NR_VCPUS)
    with KvmAccelerator(sys=_ZeroVcpuCaps({bindings.KVM_CAP_MAX_VCPUS})) as a:
        assert a.capabilities().value(Capability.MAX_VCPUS) == (nr or 4)


def test_pv_clocksource_follows_cpuid_and_adjust_clock(acc: KvmAccelerator) -> None:
    eax = 0
    for entry in acc.supported_cpuid():
        if entry[0] == 0x40000001:
            eax = entry[3]
    adjust = acc.check_extension(bindings.KVM_CAP_ADJUST_CLOCK) > 0
    caps = acc.capabilities()
    assert caps.supports(Capability.PV_CLOCKSOURCE) == (bool(eax & 0b1001) and adjust)
    assert caps.supports(Capability.PV_CLOCKSOURCE_STABLE) == (
        caps.supports(Capability.PV_CLOCKSOURCE) and bool(eax & (1 << 24))
    )


def test_supported_cpuid_grows_on_e2big() -> None:
    inj = FaultInjector(fail={"KVM_GET_SUPPORTED_CPUID": errno.E2BIG}, times=2)
    with KvmAccelerator(sys=inj) as a:
        assert len(a.supported_cpuid()) > 0
    assert inj.calls["KVM_GET_SUPPORTED_CPUID"] == 3


def test_irqchip_follows_the_capability(acc: KvmAccelerator) -> None:
    if acc.capabilities().supports(Capability.IRQCHIP):
        with acc.create_vm(VmOptions(irqchip=True)) as vm:
            assert vm.options.irqchip
    else:
        with pytest.raises(CapabilityError):
            acc.create_vm(VmOptions(irqchip=True))


def test_pit_follows_the_capability(acc: KvmAccelerator) -> None:
    caps = acc.capabilities()
    if caps.supports(Capability.PIT) and caps.supports(Capability.IRQCHIP):
        with acc.create_vm(VmOptions(irqchip=True, pit=True)) as vm:
            assert vm.options.pit
    else:
        with pytest.raises(CapabilityError):
            acc.create_vm(VmOptions(irqchip=True, pit=True))
    with pytest.raises(InvalidArgumentError):
        acc.create_vm(VmOptions(pit=True))  # a PIT needs the irqchip


def test_adjust_clock_follows_the_capability(acc: KvmAccelerator) -> None:
    answer = acc.check(Capability.ADJUST_CLOCK)
    with acc.create_vm() as vm:
        if answer.is_yes:
            data = vm.get_clock()
            assert int(data.flags) & ~answer.flags == 0
            if answer.flags & ClockFlags.TSC_STABLE:
                assert isinstance(data.reliable, bool)
        else:
            with pytest.raises(Exception):  # noqa: B017 - the kernel's error, whatever it is
                vm.get_clock()


def test_clock_ctrl_follows_the_capability(acc: KvmAccelerator) -> None:
    _vm, cpu = boot(acc, guests.KVMCLOCK_ENABLE)
    assert isinstance(cpu.run(), HaltExit)
    if acc.capabilities().supports(Capability.CLOCK_CTRL):
        assert cpu.kvmclock_ctrl() is True  # the guest enabled kvmclock
    else:
        with pytest.raises(Exception):  # noqa: B017
            cpu.kvmclock_ctrl()


def test_vm_level_capabilities(acc: KvmAccelerator) -> None:
    host = acc.capabilities()
    with acc.create_vm() as vm:
        caps = vm.capabilities()
        assert vm.capabilities() is caps
        for cap in Capability:
            assert caps.support(cap) in (Support.YES, Support.NO)
        if host.supports(Capability.VM_CAPABILITY_QUERY):
            assert caps[Capability.IRQCHIP].source.endswith("(vm)")
        else:
            assert caps == host
        assert caps[Capability.PV_CLOCKSOURCE] == host[Capability.PV_CLOCKSOURCE]


class _NoVmQuery(HostSys):
    def ioctl(self, fd: int, request: int, arg: Any = 0, /) -> Any:  # type: ignore[override]
        if request == ioctls.KVM_CHECK_EXTENSION and arg == bindings.KVM_CAP_CHECK_EXTENSION_VM:
            return 0
        return super().ioctl(fd, request, arg)


def test_vm_level_falls_back_to_host_without_check_extension_vm() -> None:
    with KvmAccelerator(sys=_NoVmQuery()) as a, a.create_vm() as vm:
        assert not a.capabilities().supports(Capability.VM_CAPABILITY_QUERY)
        assert vm.capabilities() == a.capabilities()
        assert vm.check_extension(bindings.KVM_CAP_IRQCHIP) == a.check_extension(
            bindings.KVM_CAP_IRQCHIP
        )


@pytest.mark.parametrize("model", ["host", "host,-kvmclock", "host,-kvm"])
def test_set_cpuid2_gets_the_filtered_supported_cpuid(model: str) -> None:
    """KVM_SET_CPUID2's argument is exactly cpuid_buffer(filter_cpuid(supported, cpu)),
    without x2APIC and TSC-deadline in a VM without the in-kernel irqchip
    (hide_user_apic_features)."""
    from accel_kvm.vcpu import cpuid_buffer, filter_cpuid, hide_user_apic_features

    from accel import CpuSpec

    seen: list[bytes] = []

    class Capture(HostSys):
        def ioctl(self, fd: int, request: int, arg: Any = 0, /) -> Any:  # type: ignore[override]
            if request == ioctls.KVM_SET_CPUID2:
                seen.append(bytes(arg))
            return super().ioctl(fd, request, arg)

    acc = KvmAccelerator(sys=Capture())
    try:
        cpu = CpuSpec.parse(model)
        with acc.create_vm() as vm:
            vm.create_vcpu(cpu=cpu)
            vm.create_vcpu(cpu=cpu)
        filtered = filter_cpuid(acc.supported_cpuid(), cpu)
        expected = bytes(cpuid_buffer(hide_user_apic_features(filtered)))
        assert seen == [expected, expected]
        if acc.capabilities().supports(Capability.IRQCHIP):
            seen.clear()
            with acc.create_vm(VmOptions(irqchip=True)) as vm:
                vm.create_vcpu(cpu=cpu)
            kernel = acc.supported_cpuid_struct()
            as_is = bytes(cpuid_buffer(filtered))
            assert seen == [as_is] or (filtered == list(acc.supported_cpuid()) and
                                       seen == [bytes(kernel)])  # fmt: skip
    finally:
        acc.close()


def test_filter_cpuid_clears_the_flags_a_cpu_model_switches_off() -> None:
    from accel_kvm.vcpu import filter_cpuid

    from accel import CpuSpec

    features = (0x40000001, 0, 0, 0x0100_0FFF, 1, 2, 0)
    entries = ((0, 0, 0, 13, 4, 5, 6), (0x40000000, 0, 0, 7, 8, 9, 10), features)
    # host keeps every supported bit QEMU 7.2 names (not bit 10); migratable=off all;
    # EDX holds only the hints switched on (QEMU 7.2's FEAT_KVM_HINT).
    named = (0x40000001, 0, 0, 0x0100_0AFF, 1, 2, 0)
    assert filter_cpuid(entries, CpuSpec.parse("host")) == [*entries[:2], named]
    assert filter_cpuid(entries, CpuSpec.parse("host,+kvmclock")) == [*entries[:2], named]
    assert filter_cpuid(entries, CpuSpec.parse("host,migratable=off")) == list(entries)
    assert filter_cpuid(entries, CpuSpec.parse("host,-kvmclock")) == [
        *entries[:2],
        (0x40000001, 0, 0, 0x0100_0AFF & ~0b1001, 1, 2, 0),
    ]
    assert filter_cpuid(entries, CpuSpec.parse("host,-kvm-pv-eoi,-kvm-pv-unhalt")) == [
        *entries[:2],
        (0x40000001, 0, 0, 0x0100_0AFF & ~0b1100_0000, 1, 2, 0),
    ]
    hinted = (0x40000001, 0, 0, 0x0100_0AFF, 1, 2, 1)
    assert filter_cpuid(entries, CpuSpec.parse("host,+kvm-hint-dedicated")) == [
        *entries[:2],
        hinted,
    ]
    assert filter_cpuid(entries, CpuSpec.parse("host,-kvm")) == [entries[0]]
