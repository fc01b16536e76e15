"""The clock-device set for every machine type x {kvm, tcg} x {default CPU, kvmclock off}.

QEMU-independent: accelerators are fakes with the capabilities this kind of host reports,
named like the real ones so the real plugins' hooks answer for them.
"""

from __future__ import annotations

import pytest

from accel.errors import ConfigError
from accel.machine import Machine
from tests.fakes import FakeAccelerator, all_answers, registry_with

from .expected import SET, all_machine_names, expected

REG = registry_with(entry_points=True)


def kvm_like(**over: bool) -> FakeAccelerator:
    return FakeAccelerator("kvm", caps=all_answers(**over))


def tcg_like() -> FakeAccelerator:
    return FakeAccelerator(
        "tcg",
        caps=all_answers(
            irqchip=False,
            pit=False,
            pv_clocksource=False,
            pv_clocksource_stable=False,
            clock_ctrl=False,
        ),
    )


def clock_set(acc: FakeAccelerator, machine: str, cpu: str | None) -> set[str]:
    plan = Machine.describe(acc, machine, cpu, registry=REG)
    return plan.device_names() & set(SET)


@pytest.mark.parametrize("machine", all_machine_names())
@pytest.mark.parametrize("cpu", [None, "host,-kvmclock"])
def test_kvm_matrix(machine: str, cpu: str | None) -> None:
    assert clock_set(kvm_like(), machine, cpu) == expected(machine, "kvm", cpu is None)


@pytest.mark.parametrize("machine", all_machine_names())
@pytest.mark.parametrize("cpu", [None, "qemu64,-kvmclock"])
def test_tcg_matrix(machine: str, cpu: str | None) -> None:
    assert clock_set(tcg_like(), machine, cpu) == expected(machine, "tcg", False)


def test_tcg_refuses_host_cpu_like_qemu() -> None:
    # QEMU: "CPU model 'host' requires KVM or HVF"; the matrix uses qemu64 under tcg.
    with pytest.raises(ConfigError, match="requires a hardware accelerator"):
        Machine.describe(tcg_like(), "pc", "host,-kvmclock", registry=REG)


@pytest.mark.parametrize("machine", ["pc", "pc-i440fx-5.1", "q35", "microvm", "isapc"])
@pytest.mark.parametrize("name", ["tcg", "xen", "other"])
def test_kvmclock_never_without_pv_clocksource(machine: str, name: str) -> None:
    acc = FakeAccelerator(name, caps=all_answers(pv_clocksource=False))
    plan = Machine.describe(acc, machine, None, registry=REG)
    assert "kvmclock" not in plan.device_names()
    if name != "xen":  # the xen plugin may give its own reason
        (d,) = [d for d in plan.decisions if d.name == "kvmclock"]
        assert d.reason == f"{name} does not report a paravirtual clocksource"


@pytest.mark.parametrize("machine", ["pc", "pc-i440fx-5.1", "q35", "microvm", "isapc"])
@pytest.mark.parametrize("cpu", [None, "host", "qemu64,+kvmclock"])
def test_kvmclock_absent_when_kvm_reports_no_clocksource(machine: str, cpu: str | None) -> None:
    plan = Machine.describe(kvm_like(pv_clocksource=False), machine, cpu, registry=REG)
    assert "kvmclock" not in plan.device_names()
    (d,) = [d for d in plan.decisions if d.name == "kvmclock"]
    assert "does not report a paravirtual clocksource" in d.reason


def test_tcg_reason_line() -> None:
    plan = Machine.describe(tcg_like(), "pc", registry=REG)
    lines = [d.line() for d in plan.decisions]
    assert "kvmclock: absent — tcg does not report a paravirtual clocksource" in lines


def test_machine_init_asks_clock_devices_after_vcpus() -> None:
    seen: list[str] = []
    acc = kvm_like()

    class Spy:
        import accel as _a

        @staticmethod
        @_a.hookimpl
        def accel_clock_devices(accelerator, machine):  # type: ignore[no-untyped-def]
            seen.append(f"vcpus={len(machine.vm.vcpus)}" if machine.vm else "no vm")
            return None

    reg = registry_with(plugins=[Spy], entry_points=True)
    with Machine(acc, "pc", registry=reg) as m:
        assert seen == ["vcpus=1"]
        assert {d.type_name for d in m.devices} >= {"kvm-pit", "kvmclock", "hpet"}
        assert acc.options is not None and acc.options.irqchip and acc.options.pit


def test_compat_reliable_clock_follows_machine_version() -> None:
    for machine, want in (("pc-i440fx-2.8", False), ("pc-i440fx-2.9", True), ("pc", True)):
        plan = Machine.describe(kvm_like(), machine, registry=REG)
        (d,) = [d for d in plan.decisions if d.name == "kvmclock"]
        assert dict(d.properties)["x-mach-use-reliable-get-clock"] is want


@pytest.mark.parametrize("machine", ["pc", "pc-i440fx-5.1", "q35"])
def test_xen_machines_follow_the_xen_plugin(machine: str) -> None:
    """Under Xen (QEMU's rules, answered by the xen plugin): no PIT device, no kvmclock."""
    import accel_xen  # the hooks decide by capabilities: give the fake the stub's own answers

    acc = FakeAccelerator("xen", caps=accel_xen.xen_answers())
    names = Machine.describe(acc, machine, registry=REG).device_names()
    assert not names & {"isa-pit", "kvm-pit", "kvmclock"}
    assert {"hpet", "mc146818rtc"} <= names
