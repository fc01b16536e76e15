"""Issue #15, "values accepted silently": device property ranges, HPET timers clamp,
duplicate platform devices, and Machine's smp/ram_size checks."""

from __future__ import annotations

import pytest

import accel
from accel.errors import ConfigError, InvalidArgumentError
from accel.machine import Machine
from accel.machine.device import DeviceRegistry
from accel.plugin import DeviceType, PropertySpec


@pytest.fixture(scope="module")
def tcg() -> accel.Accelerator:
    acc = accel.default_registry().create("tcg")
    if not acc.probe():
        pytest.skip("tcg is unavailable here")
    return acc


@pytest.mark.parametrize(
    ("spec", "prop", "value", "valid"),
    [
        ("isa-debugcon,iobase=0x10000", "iobase", "0x10000", "0..0xffff"),
        ("isa-debugcon,iobase=-1", "iobase", "-1", "0..0xffff"),
        ("isa-debug-exit,iobase=0x1fff4", "iobase", "0x1fff4", "0..0xffff"),
        ("isa-debug-exit,iosize=8", "iosize", "8", "1..4"),
        ("isa-pit,iobase=0x10000", "iobase", "0x10000", "0..0xffff"),
        ("mc146818rtc,iobase=-2", "iobase", "-2", "0..0xffff"),
    ],
)
def test_port_out_of_range_is_refused(spec: str, prop: str, value: str, valid: str) -> None:
    with pytest.raises(ConfigError) as info:
        DeviceRegistry().create_from_spec(spec)
    msg = str(info.value)
    name = spec.split(",")[0]
    assert name in msg and prop in msg and value in msg and valid in msg
    assert info.value.device == name and info.value.property == prop


@pytest.mark.parametrize(
    ("spec", "last"),
    [
        ("isa-debug-exit,iobase=0xfffe,iosize=4", "0x10001"),
        ("isa-debug-exit,iobase=0xffff,iosize=2", "0x10000"),
        ("isa-pit,iobase=0xfffd", "0x10000"),
        ("mc146818rtc,iobase=0xffff", "0x10000"),
    ],
)
def test_port_range_must_fit_the_port_space(spec: str, last: str) -> None:
    with pytest.raises(ConfigError) as info:
        DeviceRegistry().create_from_spec(spec)
    msg = str(info.value)
    assert spec.split(",")[0] in msg and last in msg and "64 KiB port space" in msg


def test_ports_at_the_edges_are_accepted() -> None:
    reg = DeviceRegistry()
    assert reg.create_from_spec("isa-debugcon,iobase=0xffff").props["iobase"] == 0xFFFF
    assert reg.create_from_spec("isa-debugcon,iobase=0").props["iobase"] == 0
    assert reg.create_from_spec("isa-debug-exit,iobase=0xfffc,iosize=4").props["iosize"] == 4
    with pytest.raises(ConfigError, match="not 1, 2 or 4"):
        reg.create_from_spec("isa-debug-exit,iosize=3")


def test_property_spec_range_applies_to_plugin_devices() -> None:
    spec = PropertySpec("irq", int, 0, "IRQ line", min=0, max=23)
    dtype = DeviceType("x-dev", "a plugin's device", accel.machine.Device, (spec,))
    reg = DeviceRegistry(extra=[dtype])
    assert reg.create("x-dev", {"irq": "23"}, user=True).props["irq"] == 23
    with pytest.raises(ConfigError, match=r"'irq' is 24, outside the valid range 0\.\.23"):
        reg.create("x-dev", {"irq": "24"}, user=True)
    assert spec.range_text() == "0..23"


def test_property_spec_rejects_bad_declarations() -> None:
    with pytest.raises(InvalidArgumentError):
        PropertySpec("a", str, "", min=0)
    with pytest.raises(InvalidArgumentError):
        PropertySpec("a", int, 0, min=5, max=1)
    with pytest.raises(InvalidArgumentError):
        PropertySpec("a", int, 0, choices=("x",))


def test_choices_are_enforced() -> None:
    spec = PropertySpec("mode", str, "a", choices=("a", "b"))
    dtype = DeviceType("x-dev", "d", accel.machine.Device, (spec,))
    reg = DeviceRegistry(extra=[dtype])
    with pytest.raises(ConfigError, match=r"'c', which is not one of a\|b"):
        reg.create("x-dev", {"mode": "c"}, user=True)


@pytest.mark.parametrize(("given", "used"), [("0", 3), ("1000", 32), ("7", 7), ("-5", 3)])
def test_hpet_timers_are_clamped_as_qemu(given: str, used: int) -> None:
    notes: list[str] = []
    _t, values = DeviceRegistry().validate("hpet", {"timers": given}, user=True, notes=notes)
    assert values["timers"] == used
    assert bool(notes) == (given != str(used))
    if notes:
        assert "clamped to" in notes[0] and "3..32" in notes[0]


def test_machine_show_reason_says_clamped(tcg: accel.Accelerator) -> None:
    plan = Machine.describe(tcg, "microvm", devices=["hpet,timers=1000"])
    (hpet,) = [d for d in plan.decisions if d.name == "hpet" and d.present]
    assert "timers=1000 clamped to 32" in hpet.reason
    assert dict(hpet.properties)["timers"] == 32


# mov ax,0x2000; mov ds,ax; mov eax,[0]; shr eax,8; and al,0x1f; out 0xf4,al; hlt
_READ_NUM_TIM_CAP = bytes.fromhex("b800208ed866a1000066c1e808241fe6f4f4")


def _num_tim_cap(acc: accel.Accelerator, timers: str) -> int:
    from accel.runner import load_image

    devices = [f"hpet,base=0x20000,timers={timers}", "isa-debug-exit,iobase=0xf4,iosize=1"]
    with Machine(acc, "microvm,kernel-irqchip=off", devices=devices, ram_size=0x10000) as m:
        load_image(m, _READ_NUM_TIM_CAP, 0x1000, None)
        result = m.run(timeout=20)
    assert result.kind == "debug-exit", result
    return result.status >> 1  # NUM_TIM_CAP (timers - 1)


@pytest.mark.parametrize(("timers", "cap"), [("0", 2), ("1000", 31), ("8", 7)])
def test_guest_sees_clamped_num_tim_cap_tcg(tcg: accel.Accelerator, timers: str, cap: int) -> None:
    assert _num_tim_cap(tcg, timers) == cap


@pytest.mark.kvm
def test_guest_sees_clamped_num_tim_cap_kvm() -> None:
    with accel.default_registry().open("kvm") as kvm:
        assert _num_tim_cap(kvm, "0") == 2
        assert _num_tim_cap(kvm, "1000") == 31


def test_second_hpet_is_refused_by_name(tcg: accel.Accelerator) -> None:
    with pytest.raises(ConfigError) as info:
        Machine.describe(tcg, "pc", devices=["hpet"])
    msg = str(info.value)
    assert "already has an hpet" in msg and "machine platform device" in msg
    assert "remove --device hpet" in (info.value.hint or "")
    # microvm has none: accepted
    Machine.describe(tcg, "microvm", devices=["hpet"])


def test_second_user_rtc_is_refused(tcg: accel.Accelerator) -> None:
    with pytest.raises(ConfigError, match="already has an mc146818rtc"):
        Machine.describe(tcg, "microvm", devices=["mc146818rtc", "mc146818rtc,iobase=0x80"])


def test_duplicate_refused_before_anything_is_built(tcg: accel.Accelerator) -> None:
    m = Machine(tcg, "pc", devices=["hpet"])
    with pytest.raises(ConfigError, match="already has an hpet"):
        m.init()
    assert m.vm is None or not m.devices


@pytest.mark.parametrize("smp", [0, -1, True, 1.5])
def test_smp_is_checked_in_the_constructor(tcg: accel.Accelerator, smp: object) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        Machine(tcg, smp=smp)  # type: ignore[arg-type]
    assert info.value.argument == "smp" and repr(smp) in str(info.value)


def test_smp_above_max_vcpus_is_refused_before_the_vm(tcg: accel.Accelerator) -> None:
    limit = tcg.capabilities()[accel.Capability.MAX_VCPUS].value
    assert isinstance(limit, int)
    m = Machine(tcg, smp=limit + 1)
    with pytest.raises(InvalidArgumentError, match=rf"outside the valid range 1\.\.{limit}"):
        m.init()
    assert m.vm is None


@pytest.mark.parametrize("size", [-1, 0, 4095, 4097, (1 << 40) + 4096, "16M"])
def test_ram_size_is_checked_in_the_constructor(tcg: accel.Accelerator, size: object) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        Machine(tcg, ram_size=size)  # type: ignore[arg-type]
    msg = str(info.value)
    assert "ram_size" in msg and repr(size) in msg and "multiple of 4 KiB" in msg
    assert "empty" not in msg and "add_memory" not in msg
