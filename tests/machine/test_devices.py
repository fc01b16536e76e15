"""Device registry, typed properties, user specs vs machine creation, run state."""

from __future__ import annotations

import pytest

import accel
from accel import PortIoExit
from accel.accelerator import IoDirection
from accel.errors import ConfigError
from accel.machine import DeviceRegistry, Machine, RunState, machine_types, resolve_machine_type
from tests.fakes import FakeAccelerator, all_answers, registry_with

REG = registry_with(entry_points=True)


def test_aliases_resolve_to_newest() -> None:
    assert resolve_machine_type("pc").name == "pc-i440fx-7.2"
    assert resolve_machine_type("q35").name == "pc-q35-7.2"
    names = {m.name for m in machine_types()}
    assert {"microvm", "isapc", "pc-i440fx-1.4", "pc-q35-2.4", "pc-q35-4.0.1"} <= names


def test_unknown_machine_type_suggests() -> None:
    with pytest.raises(ConfigError, match=r"did you mean 'pc-i440fx-7\.2'"):
        resolve_machine_type("pc-i440fx-7.3")


def test_user_spec_creates_typed_device() -> None:
    dreg = DeviceRegistry(REG)
    dev = dreg.create_from_spec("isa-debug-exit,iobase=0xf4,iosize=4")
    assert dev.type_name == "isa-debug-exit"
    assert dev.props == {"iobase": 0xF4, "iosize": 4}


@pytest.mark.parametrize(
    ("spec", "prop", "message"),
    [
        ("isa-debug-exit,iobase=zz", "iobase", "takes an integer"),
        ("isa-debug-exit,iosise=4", "iosise", "did you mean 'iosize'"),
        ("isa-debugcon,iobase=", "iobase", "takes an integer"),
    ],
)
def test_bad_property_names_device_and_property(spec: str, prop: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        DeviceRegistry(REG).create_from_spec(spec)
    assert info.value.device == spec.split(",")[0]  # type: ignore[attr-defined]
    assert info.value.property == prop  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", ["kvmclock", "kvm-pit", "irqchip"])
def test_not_user_creatable_refuses_spec(name: str) -> None:
    with pytest.raises(ConfigError, match="cannot be created by a device spec") as info:
        DeviceRegistry(REG).create_from_spec(name)
    assert info.value.device == name  # type: ignore[attr-defined]


def test_machine_and_user_devices_share_the_path() -> None:
    acc = FakeAccelerator("fake", caps=all_answers(pv_clocksource=False))
    with Machine(acc, "pc", devices=["isa-debugcon"], registry=REG) as m:
        assert [d.type_name for d in m.devices] == [
            "isa-pit", "hpet", "mc146818rtc", "irqchip", "isa-debugcon",
        ]  # fmt: skip
        assert m.device("hpet").machine is m


def test_port_clash_is_a_config_error() -> None:
    acc = FakeAccelerator("fake", caps=all_answers(pv_clocksource=False))
    with pytest.raises(ConfigError, match="already used by 'isa-pit'"):
        Machine(acc, "pc", devices=["isa-debugcon,iobase=0x40"], registry=REG).init()


def out(port: int, value: int, size: int = 1) -> object:
    return lambda _v: PortIoExit(
        port, size, IoDirection.OUT, bytearray(value.to_bytes(size, "little"))
    )


def test_debug_exit_status_and_console() -> None:
    got: list[bytes] = []
    acc = FakeAccelerator(
        "fake",
        caps=all_answers(pv_clocksource=False),
        script=[out(0xE9, ord("h")), out(0xE9, ord("i")), out(0xF4, 0x10, 4)],  # type: ignore[list-item]
    )
    m = Machine(
        acc,
        "microvm",
        devices=["isa-debugcon", "isa-debug-exit,iobase=0xf4,iosize=4"],
        registry=REG,
        console=got.append,
    )
    result = m.run()
    assert result.status == 33 and result.kind == "debug-exit"
    assert b"".join(got) == b"hi"


def test_halt_with_interrupts_disabled_ends_with_zero() -> None:
    acc = FakeAccelerator("fake", caps=all_answers(pv_clocksource=False))
    result = Machine(acc, "microvm", registry=REG).run()
    assert (result.status, result.kind) == (0, "halt")
    assert "interrupts disabled" in result.message


def test_runstate_notifiers_and_clock_before_run() -> None:
    acc = FakeAccelerator("kvm", caps=all_answers())
    m = Machine(acc, "pc", registry=REG).init()
    changes: list[tuple[str, str]] = []
    m.add_runstate_notifier(lambda old, new: changes.append((old.value, new.value)))
    m.run()
    m.pause()
    clock = m.device("kvmclock")
    assert clock.state()["clock_valid"] is True
    m.pause()  # idempotent: still one cached read
    acc.log.append("-- resume --")
    m.resume()
    m.run()
    after = acc.log[acc.log.index("-- resume --") :]
    assert after.index("resume") < after.index("run")
    assert acc.log.count("get_clock") == 1
    assert clock.state()["clock_valid"] is False
    assert changes == [("created", "running"), ("running", "paused"), ("paused", "running")]
    m.close()
    assert m.state is RunState.SHUTDOWN


def test_guest_time_stops_while_paused() -> None:
    acc = FakeAccelerator("fake", caps=all_answers(pv_clocksource=False))
    m = Machine(acc, "pc", registry=REG).init()
    m.run()
    m.pause()
    t1 = m.guest_ns()
    t2 = m.guest_ns()
    assert t1 == t2
    m.resume()
    assert m.guest_ns() >= t1


def test_two_machines_in_one_process_share_no_state() -> None:
    """Each machine has its own device registry, devices, VM and guest time."""
    got_a: list[bytes] = []
    got_b: list[bytes] = []
    acc_a = FakeAccelerator("fake", script=[out(0xE9, ord("a")), out(0xF4, 1, 4)])  # type: ignore[list-item]
    acc_b = FakeAccelerator("fake", script=[out(0xE9, ord("b")), out(0xF4, 2, 4)])  # type: ignore[list-item]
    specs = ["isa-debugcon", "isa-debug-exit,iobase=0xf4,iosize=4"]
    a = Machine(acc_a, "pc", devices=specs, registry=REG, console=got_a.append).init()
    b = Machine(acc_b, "q35", devices=specs, registry=REG, console=got_b.append).init()
    try:
        assert a.device_registry is not b.device_registry
        assert a.vm is not b.vm and a.device("hpet") is not b.device("hpet")
        a.pause()
        assert (a.state, b.state) == (RunState.PAUSED, RunState.CREATED)
        a.resume()
        assert (a.run().status, b.run().status) == (3, 5)
        assert (got_a, got_b) == ([b"a"], [b"b"])
        assert a.device("isa-debugcon").output == bytearray(b"a")  # type: ignore[attr-defined]
    finally:
        a.close()
        b.close()


def test_guest_shutdown_moves_to_shutdown_state() -> None:
    from accel import ShutdownExit

    acc = FakeAccelerator(
        "fake", caps=all_answers(pv_clocksource=False), script=[lambda _v: ShutdownExit()]
    )
    m = Machine(acc, "microvm", registry=REG)
    result = m.run()
    assert (result.status, result.kind) == (0, "shutdown")
    assert m.state is RunState.SHUTDOWN
    with pytest.raises(accel.errors.VcpuStateError):
        m.run()


def test_pit_latch_holds_and_mode3_counts_by_two() -> None:
    from accel.machine.devices import PIT_HZ, Pit

    acc = FakeAccelerator("fake", caps=all_answers(pv_clocksource=False))
    m = Machine(acc, "microvm", registry=REG).init()
    pit = m.device("isa-pit")
    assert isinstance(pit, Pit)
    now = [0]
    m.guest_ns = lambda: now[0]  # type: ignore[method-assign]
    pit._write(0x43, 1, 0x36)  # channel 0, lo/hi, mode 3
    pit._write(0x40, 1, 0x00)
    pit._write(0x40, 1, 0x10)  # reload 0x1000, starts now
    now[0] = 100 * 1_000_000_000 // PIT_HZ + 1  # 100 PIT clocks later
    pit._write(0x43, 1, 0x00)  # latch channel 0
    now[0] += 10_000_000  # the latched value does not move
    lo, hi = pit._read(0x40, 1), pit._read(0x40, 1)
    assert (hi << 8) | lo == 0x1000 - 200


def test_rtc_registers_follow_the_clock_as_datetime_does() -> None:
    """The CMOS time registers give the fields of ``Rtc.now()``, microseconds rounded."""
    import datetime
    import random

    from accel.machine.devices import Rtc

    acc = FakeAccelerator("fake", caps=all_answers(pv_clocksource=False))
    m = Machine(acc, "pc", registry=REG).init()
    rtc = m.device("mc146818rtc")
    assert isinstance(rtc, Rtc)
    now = [0]
    m.guest_ns = lambda: now[0]  # type: ignore[method-assign]
    rtc._guest0 = 0

    def regs() -> list[int]:
        out = []
        for reg in (0x00, 0x02, 0x04, 0x06, 0x07, 0x08, 0x09, 0x32):
            rtc._write(0x70, 1, reg)
            out.append(rtc._read(0x71, 1))
        return out

    def expected() -> list[int]:
        t = rtc.now()
        values = [t.second, t.minute, t.hour, t.isoweekday() % 7 + 1, t.day, t.month,
                  t.year % 100, t.year // 100]  # fmt: skip
        return [((v // 10) << 4) | (v % 10) for v in values]

    leap = datetime.datetime(2024, 2, 29, 23, 59, 59, tzinfo=datetime.UTC).timestamp()
    rtc._epoch = leap + 0.9999996  # rounds up to Friday 2024-03-01 00:00:00
    assert regs() == [0x00, 0x00, 0x00, 0x06, 0x01, 0x03, 0x24, 0x20] == expected()
    rtc._epoch = leap + 0.9999994  # still Thursday the 29th
    assert regs() == [0x59, 0x59, 0x23, 0x05, 0x29, 0x02, 0x24, 0x20] == expected()
    rng = random.Random(7)
    for _ in range(200):
        rtc._epoch = rng.uniform(0, 4e9)
        now[0] = rng.randrange(10**12)
        assert regs() == expected()


def test_machine_type_table_is_read_only_and_shared() -> None:
    from accel.machine import MACHINE_TYPES

    mt = resolve_machine_type("pc")
    assert mt is MACHINE_TYPES["pc-i440fx-7.2"]
    assert resolve_machine_type("microvm") is MACHINE_TYPES["microvm"]
    assert list(MACHINE_TYPES)[-2:] == ["microvm", "isapc"]
    with pytest.raises(TypeError):
        mt.compat["machine.rtc"] = "off"  # type: ignore[index]
    with pytest.raises(TypeError):
        MACHINE_TYPES["mine"] = mt  # type: ignore[index]
