"""The guest clock on the real /dev/kvm: pvclock, CPUID filtering, KVM_GET/SET_CLOCK,
pause/resume ordering."""

from __future__ import annotations

import struct

import pytest
from accel_kvm import KvmAccelerator, RecordingSys

from accel import VM, Capability, ClockData, ClockFlags, CpuSpec, HaltExit, PortIoExit
from accel.errors import VcpuStateError

from . import guests
from .guests import PVCLOCK_AT, boot

pytestmark = pytest.mark.kvm

# struct pvclock_vcpu_time_info
_PVCLOCK = struct.Struct("<IIQQIbBxx")
PVCLOCK_TSC_STABLE_BIT = 1 << 0
PVCLOCK_GUEST_STOPPED = 1 << 1
CLOCKSOURCE_BITS = (1 << 0) | (1 << 3)
STABLE_BIT = 1 << 24


def _pvclock(vm: VM) -> tuple[int, int, int, int, int, int, int]:
    raw = vm.read_memory(PVCLOCK_AT, _PVCLOCK.size)
    return _PVCLOCK.unpack(raw)


def test_guest_writing_system_time_msr_gets_a_populated_pvclock(acc: KvmAccelerator) -> None:
    if not acc.capabilities().supports(Capability.PV_CLOCKSOURCE):
        pytest.skip("host KVM reports no paravirtual clocksource")
    vm, cpu = boot(acc, guests.KVMCLOCK_ENABLE)
    assert isinstance(cpu.run(), HaltExit)
    version, _, tsc_timestamp, system_time, mul, shift, flags = _pvclock(vm)
    assert version % 2 == 0 and version > 0
    assert system_time > 0
    assert tsc_timestamp > 0
    assert mul > 0 and -32 < shift < 32
    # ns per TSC tick = mul * 2**shift / 2**32: a TSC between 50 MHz and 20 GHz.
    ns_per_tick = mul * 2.0**shift / 2**32
    assert 0.05 < ns_per_tick < 20
    if acc.capabilities().supports(Capability.PV_CLOCKSOURCE_STABLE):
        assert flags & PVCLOCK_TSC_STABLE_BIT


def _guest_kvm_features(acc: KvmAccelerator, cpu: CpuSpec | None) -> int:
    vm, vcpu = boot(acc, guests.CPUID_KVM_FEATURES, cpu=cpu)
    ex = vcpu.run()
    assert isinstance(ex, PortIoExit) and ex.port == 0x10 and ex.size == 4
    eax = ex.value()
    assert isinstance(vcpu.run(), HaltExit)
    vm.close()
    return eax


def test_cpu_without_kvmclock_does_not_see_clocksource_bits(acc: KvmAccelerator) -> None:
    default = _guest_kvm_features(acc, None)
    without = _guest_kvm_features(acc, CpuSpec.parse("host,-kvmclock"))
    if acc.capabilities().supports(Capability.PV_CLOCKSOURCE):
        assert default & CLOCKSOURCE_BITS
    assert without & CLOCKSOURCE_BITS == 0
    # Only the clock bits went away: as in QEMU 7.2, -kvmclock keeps kvmclock-stable-bit.
    assert without == default & ~CLOCKSOURCE_BITS
    assert without & STABLE_BIT == default & STABLE_BIT


def test_other_pv_flags_are_filtered_too(acc: KvmAccelerator) -> None:
    default = _guest_kvm_features(acc, None)
    without = _guest_kvm_features(acc, CpuSpec.parse("host,-kvm-pv-unhalt,-kvm-steal-time"))
    assert without == default & ~((1 << 7) | (1 << 5))
    no_kvm = _guest_kvm_features(acc, CpuSpec.parse("host,-kvm"))
    assert no_kvm & CLOCKSOURCE_BITS == 0


def test_set_clock_then_get_clock_round_trips(acc: KvmAccelerator) -> None:
    if not acc.capabilities().supports(Capability.ADJUST_CLOCK):
        pytest.skip("host KVM has no KVM_CAP_ADJUST_CLOCK")
    with acc.create_vm() as vm:
        before = vm.get_clock()
        assert before.clock > 0
        target = before.clock + 10**12
        vm.set_clock(ClockData(target, before.flags & ClockFlags.TSC_STABLE))
        after = vm.get_clock()
        assert after.clock >= target
        assert after.clock < target + 10**10  # no wild jump
        assert after.flags == before.flags  # every flag the kernel reports is kept
        assert int(after.flags) & ~acc.check(Capability.ADJUST_CLOCK).value == 0  # type: ignore[operator]
        if after.flags & ClockFlags.REALTIME:
            assert after.realtime > 0
        if after.flags & ClockFlags.HOST_TSC:
            assert after.host_tsc > 0


def test_set_clock_passes_every_field(acc: KvmAccelerator) -> None:
    rec = RecordingSys()
    captured: list[tuple[int, int, int, int]] = []

    def spy(name: str, fd: int, arg: object) -> None:
        if name == "KVM_SET_CLOCK":
            captured.append((arg.clock, arg.flags, arg.realtime, arg.host_tsc))  # type: ignore[attr-defined]

    rec.on_ioctl = spy
    with KvmAccelerator(sys=rec) as a, a.create_vm() as vm:
        now = vm.get_clock()
        vm.set_clock(now)
    assert captured == [(now.clock, int(now.flags), now.realtime, now.host_tsc)]


def test_pause_caches_the_clock_and_blocks_runs(acc: KvmAccelerator) -> None:
    vm, cpu = boot(acc, guests.HALT)
    vm.pause()
    assert vm.paused
    first = vm.get_clock()
    assert vm.get_clock() == first  # repeated reads of a stopped VM agree
    with pytest.raises(VcpuStateError):
        cpu.run()
    vm.resume()
    assert not vm.paused
    assert isinstance(cpu.run(), HaltExit)
    assert vm.get_clock().clock >= first.clock


def test_resume_sets_clock_before_run_then_kvmclock_ctrl(acc: KvmAccelerator) -> None:
    rec = RecordingSys()
    with KvmAccelerator(sys=rec) as a:
        vm, cpu = boot(a, guests.KVMCLOCK_ENABLE)
        assert isinstance(cpu.run(), HaltExit)  # the guest enabled kvmclock
        vm.pause()
        mark = len(rec.log)
        vm.resume()
        assert isinstance(cpu.run(), HaltExit)
        names = [n for n in rec.names()[mark:] if n != "KVM_CHECK_EXTENSION"]
        if a.capabilities().supports(Capability.CLOCK_CTRL):
            assert names == ["KVM_SET_CLOCK", "KVM_KVMCLOCK_CTRL", "KVM_RUN"]
            # The guest was told it was stopped.
            assert _pvclock(vm)[6] & PVCLOCK_GUEST_STOPPED
        else:
            assert names == ["KVM_SET_CLOCK", "KVM_RUN"]


def test_resume_writes_back_the_paused_value(acc: KvmAccelerator) -> None:
    rec = RecordingSys()
    written: list[int] = []
    rec.on_ioctl = lambda name, fd, arg: (
        written.append(arg.clock) if name == "KVM_SET_CLOCK" else None
    )
    with KvmAccelerator(sys=rec) as a, a.create_vm() as vm:
        vm.pause()
        cached = vm.get_clock()
        vm.resume()
    assert written == [cached.clock]


def test_set_clock_while_paused_replaces_the_cached_value(acc: KvmAccelerator) -> None:
    with acc.create_vm() as vm:
        vm.pause()
        target = vm.get_clock().clock + 5 * 10**9
        vm.set_clock(ClockData(target))
        assert vm.get_clock().clock == target
        vm.resume()
        assert vm.get_clock().clock >= target


def test_kvmclock_ctrl_without_guest_kvmclock_is_not_an_error(acc: KvmAccelerator) -> None:
    if not acc.capabilities().supports(Capability.CLOCK_CTRL):
        pytest.skip("host KVM has no KVM_CAP_KVMCLOCK_CTRL")
    vm, cpu = boot(acc, guests.HALT)
    assert cpu.kvmclock_ctrl() is False  # EINVAL: the guest has not enabled kvmclock
    vm.pause()
    vm.resume()  # and resume does not fail because of it
    assert isinstance(cpu.run(), HaltExit)
