"""`accel machine list`, `accel machine show` (text and JSON)."""

from __future__ import annotations

import json

import pytest

from accel import cli
from tests.fakes import FakeAccelerator, all_answers, registry_with


def test_list_shows_aliases_and_versions(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["machine", "list"]) == 0
    out = capsys.readouterr().out
    assert "pc                   Standard PC (i440FX + PIIX, 1996) (alias of pc-i440fx-7.2)" in out
    assert "pc-q35-4.0.1" in out and "microvm" in out and "isapc" in out


def test_list_json_has_compat(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["machine", "list", "--json"]) == 0
    data = {m["name"]: m for m in json.loads(capsys.readouterr().out)}
    assert data["pc-i440fx-5.1"]["compat"]["machine.pv-clock-always"] == "off"
    assert data["pc-q35-4.0"]["compat"]["machine.kernel-irqchip"] == "split"


def test_list_devices_and_cpus(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["machine", "list", "--devices"]) == 0
    out = capsys.readouterr().out
    assert "kvmclock" in out and "(machine only)" in out and "isa-debug-exit" in out
    assert cli.main(["machine", "list", "--cpus"]) == 0
    assert "host" in capsys.readouterr().out


def test_show_explains_absent_kvmclock_under_tcg(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["machine", "show", "--accel", "tcg"]) == 0
    out = capsys.readouterr().out
    assert "kvmclock: absent — tcg does not report a paravirtual clocksource" in out
    assert "isa-pit: present" in out


def test_show_json_with_injected_kvm(capsys: pytest.CaptureFixture[str]) -> None:
    import accel

    class Inject:
        @staticmethod
        @accel.hookimpl
        def accel_accelerators() -> list[accel.AcceleratorInfo]:
            return [accel.AcceleratorInfo("kvmlike", "fake", lambda: FakeAccelerator(
                "kvmlike", caps=all_answers(pv_clocksource=False)), hardware=True)]  # fmt: skip

    reg = registry_with(plugins=[Inject], entry_points=True)
    rc = cli.main(
        ["machine", "show", "--accel", "kvmlike", "-M", "q35", "--cpu", "host,-kvmclock",
         "--device", "isa-debug-exit,iobase=0xf4,iosize=4", "--json"],
        registry=reg,
    )  # fmt: skip
    assert rc == 0
    data = json.loads(capsys.readouterr().out)
    assert data["machine"] == "pc-q35-7.2" and data["cpu"] == "host,-kvmclock"
    present = [d["device"] for d in data["devices"]]
    assert "isa-debug-exit" in present and "kvmclock" not in present
    absent = {d["device"]: d["reason"] for d in data["absent"]}
    assert absent["kvmclock"] == "kvmlike does not report a paravirtual clocksource"


def test_show_rejects_user_kvmclock(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["machine", "show", "--accel", "tcg", "--device", "kvmclock"]) == 1
    assert "cannot be created by a device spec" in capsys.readouterr().err
