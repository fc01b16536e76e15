"""An accelerator that wraps KVM under another name keeps KVM's machine devices.

The clock-device hooks decide by capabilities, never by ``accelerator.name``: a tracing
wrapper (``traced-kvm``, delegating to a :class:`KvmAccelerator`, as conformance tests and
fault-injecting wrappers do) gets kvm-pit and kvmclock, the guest reads a populated
pvclock page, and kvmclock keeps its pause state through the VM's public clock API.
"""

from __future__ import annotations

import struct
from pathlib import Path

import accel_kvm
import accel_xen
import pytest
from accel_kvm import KvmAccelerator

from accel import VM, Accelerator, Availability, Capability, CapabilitySet, VmOptions
from accel.machine import Machine, RunState
from accel.registry import Registry
from accel.runner import load_image

GUESTS = Path(__file__).resolve().parents[2] / "examples" / "guests"
PVCLOCK_AT = 0x5000
_PVCLOCK = struct.Struct("<IIQQIbBxx")  # struct pvclock_vcpu_time_info


class TracedKvm(Accelerator):
    """Delegates everything to a KvmAccelerator and records what it was asked."""

    name = "traced-kvm"

    def __init__(self) -> None:
        self.inner = KvmAccelerator()
        self.calls: list[str] = []

    def probe(self) -> Availability:
        self.calls.append("probe")
        return self.inner.probe()

    def capabilities(self) -> CapabilitySet:
        self.calls.append("capabilities")
        return self.inner.capabilities()

    def create_vm(self, options: VmOptions | None = None) -> VM:
        self.calls.append("create_vm")
        return self.inner.create_vm(options)

    def _close(self) -> None:
        self.inner.close()


def _registry() -> Registry:
    reg = Registry(entry_points=False)
    reg.register(accel_kvm, "kvm")
    reg.register(accel_xen, "xen")
    return reg


@pytest.fixture
def traced() -> TracedKvm:
    acc = TracedKvm()
    if not acc.probe().available:
        pytest.skip(acc.probe().reason)
    if not acc.capabilities().supports(Capability.PV_CLOCKSOURCE):
        pytest.skip("host KVM reports no paravirtual clocksource")
    return acc


@pytest.mark.kvm
@pytest.mark.parametrize("machine", ["pc", "q35", "pc-i440fx-5.1", "microvm"])
def test_a_wrapper_lists_the_devices_kvm_gets(traced: TracedKvm, machine: str) -> None:
    reg = _registry()
    wrapped = Machine.describe(traced, machine, registry=reg)
    plain = Machine.describe(traced.inner, machine, registry=reg)
    assert wrapped.device_names() == plain.device_names()
    assert "kvmclock" in wrapped.device_names()
    traced.close()


@pytest.mark.kvm
def test_a_wrapped_kvm_machine_gets_a_working_kvmclock(traced: TracedKvm) -> None:
    devices = ["isa-debug-exit,iobase=0xf4,iosize=4", "isa-debugcon"]
    console: list[bytes] = []
    with Machine(traced, "pc", devices=devices, registry=_registry(), console=console.append) as m:
        assert {d.type_name for d in m.devices} >= {"kvmclock", "kvm-pit"}
        load_image(m, (GUESTS / "clocks.bin").read_bytes(), None, None)
        result = m.run(timeout=30)
        assert result.kind == "debug-exit"
        assert b"kvmclock: ok\n" in b"".join(console)
        assert m.vm is not None
        # The pvclock page the guest enabled is populated by KVM.
        version, _, tsc_timestamp, system_time, mul, shift, _flags = _PVCLOCK.unpack(
            m.vm.read_memory(PVCLOCK_AT, _PVCLOCK.size)
        )
        assert version > 0 and version % 2 == 0
        assert tsc_timestamp > 0 and system_time > 0 and mul > 0 and -32 < shift < 32
        # kvmclock's pause state comes from the VM's clock API.
        before = m.vm.get_clock().clock
        m.pause()
        assert m.state is RunState.PAUSED
        state = m.device("kvmclock").state()
        assert state["clock_valid"] is True and state["runstate_paused"] is True
        paused_at = state["clock"]
        assert isinstance(paused_at, int) and paused_at >= before
        assert m.vm.get_clock().clock == paused_at  # stays valid while paused
        m.resume()
        assert m.device("kvmclock").state()["clock_valid"] is False
        assert m.vm.get_clock().clock >= paused_at
    assert "create_vm" in traced.calls
    traced.close()


def _fake(name: str, caps: CapabilitySet) -> Accelerator:
    from tests.fakes import FakeAccelerator

    return FakeAccelerator(name, caps=caps)


@pytest.mark.parametrize("name", ["kvm", "traced-kvm", "anything"])
def test_kvm_hook_answers_by_capabilities_not_names(name: str) -> None:
    from tests.fakes import all_answers

    reg = _registry()
    kvm_like = Machine.describe(_fake(name, all_answers()), "pc", registry=reg)
    assert {"kvmclock", "kvm-pit"} <= kvm_like.device_names()
    assert "isa-pit" not in kvm_like.device_names()
    no_pv = Machine.describe(_fake(name, all_answers(pv_clocksource=False)), "pc", registry=reg)
    (d,) = [d for d in no_pv.decisions if d.name == "kvmclock"]
    assert not d.present and d.reason == f"{name} does not report a paravirtual clocksource"


@pytest.mark.parametrize("name", ["xen", "kvm", "wrapped-xen"])
def test_xen_answers_get_no_kvm_devices_whatever_the_name(name: str) -> None:
    plan = Machine.describe(_fake(name, accel_xen.xen_answers()), "pc", registry=_registry())
    assert not plan.device_names() & {"isa-pit", "kvm-pit", "kvmclock"}
    (d,) = [d for d in plan.decisions if d.name == "kvmclock"]
    assert "hypervisor's own" in d.reason
