"""The ``accel`` command: output and exit status of info, plugins and check."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from typing import Any

import pytest

import accel
from accel import Availability, CapabilityAnswer, Registry
from accel.cli import COMMANDS, Command, main
from tests.fakes import FakeAccelerator, all_answers, fake_info, registry_with

from .conftest import MakeDist

DOWN = Availability.unavailable("device node missing", "load the driver module")


def mixed_registry() -> Registry:
    """One usable hardware, one usable software, one unavailable hardware accelerator."""
    return registry_with(
        fake_info(
            "hw",
            priority=100,
            hardware=True,
            caps=all_answers(IRQCHIP=CapabilityAnswer.unknown("cannot tell")),
            unsupported={"snapshot": "not implemented yet"},
        ),
        fake_info(
            "sw",
            priority=10,
            caps=all_answers(
                IRQCHIP=CapabilityAnswer.no("emulated"),
                PV_CLOCKSOURCE=CapabilityAnswer.no("emulated"),
            ),
        ),
        fake_info("down", priority=90, hardware=True, availability=DOWN),
    )


def run(capsys: pytest.CaptureFixture[str], argv: list[str], reg: Registry) -> tuple[int, str, str]:
    code = main(argv, registry=reg)
    out, err = capsys.readouterr()
    return code, out, err


# --------------------------------------------------------------------------- info


def test_info_text(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, ["info"], mixed_registry())
    assert code == 0 and err == ""
    lines = out.splitlines()
    header = lines[0]
    assert header.split() == ["ACCELERATOR", "STATUS", "KIND", "PRIORITY", "SUMMARY"]
    table = lines[1:4]
    assert [row.split()[0] for row in table] == ["hw", "down", "sw"]  # priority order
    status_col = header.index("STATUS")
    assert [row[status_col:].split()[0] for row in table] == [
        "available",
        "unavailable",
        "available",
    ]
    assert "down: unavailable: device node missing" in lines
    assert "  hint: load the driver module" in lines
    assert "  declared unsupported:" in lines
    assert "    snapshot  not implemented yet" in lines
    # capability lines are aligned: every answer starts in the same column
    cap_lines = [ln for ln in lines if ln.startswith("  ") and ln.split()[0] in {"irqchip", "pit"}]
    assert len(cap_lines) == 4
    assert len({ln.index(ln.split()[1], len(ln.split()[0]) + 2) for ln in cap_lines}) == 1
    assert any(ln.split()[:2] == ["irqchip", "unknown"] for ln in cap_lines)
    assert any(ln.split()[:3] == ["max-vcpus", "yes", "(8)"] for ln in lines if ln.strip())
    assert any(ln.split()[:3] == ["adjust-clock", "yes", "(tsc_stable)"] for ln in lines)


def test_info_json_gives_everything(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, ["info", "--json"], mixed_registry())
    assert code == 0
    data = json.loads(out)
    accs = {a["name"]: a for a in data["accelerators"]}
    assert list(accs) == ["hw", "down", "sw"]
    hw = accs["hw"]
    assert hw["available"] is True and hw["hardware"] is True
    assert hw["priority"] == 100 and hw["plugin"] == "fakes"
    assert hw["unsupported"] == {"snapshot": "not implemented yet"}
    assert set(hw["capabilities"]) == {c.value for c in accel.Capability}
    assert hw["capabilities"]["irqchip"] == {
        "support": "unknown",
        "value": None,
        "source": "cannot tell",
    }
    assert hw["capabilities"]["max-vcpus"]["value"] == 8
    down = accs["down"]
    assert down["available"] is False and down["capabilities"] is None
    assert down["reason"] == "device node missing" and down["hint"] == "load the driver module"
    assert data["load_errors"] == []


def test_info_names_filter_and_unknown_name(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, ["info", "--json", "sw"], mixed_registry())
    assert [a["name"] for a in json.loads(out)["accelerators"]] == ["sw"]
    code, out, err = run(capsys, ["info", "ws"], mixed_registry())
    assert code == 1 and out == ""
    assert err == "accel: error: unknown accelerator 'ws' (hint: did you mean 'sw'?)\n"


def test_info_survives_misbehaving_accelerators(capsys: pytest.CaptureFixture[str]) -> None:
    class BadProbe(FakeAccelerator):
        def probe(self) -> Availability:
            raise RuntimeError("plugin bug")

    class BadCaps(FakeAccelerator):
        def capabilities(self) -> Any:
            raise accel.errors.BackendCallError("CHECK_EXTENSION", 5, accelerator="badcaps")

    def broken_factory() -> FakeAccelerator:
        raise OSError("cannot even construct")

    reg = registry_with(
        fake_info("badprobe", factory=lambda: BadProbe("badprobe")),
        fake_info("badcaps", factory=lambda: BadCaps("badcaps")),
        fake_info("noctor", factory=broken_factory),
        fake_info("good"),
    )
    code, out, err = run(capsys, ["info"], reg)
    assert code == 0 and err == ""
    assert "badprobe: unavailable: probe failed: RuntimeError: plugin bug" in out
    assert "capabilities could not be read: badcaps: CHECK_EXTENSION failed: EIO" in out
    assert "noctor: unavailable: could not be created: OSError: cannot even construct" in out
    assert "good: available" in out


def test_info_with_nothing_registered(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, ["info"], Registry(entry_points=False))
    assert code == 0 and out.startswith("no accelerators registered")


# --------------------------------------------------------------------------- plugins


def plugin_source(name: str) -> str:
    return f"""
import accel
from tests.fakes import FakeAccelerator

@accel.hookimpl
def accel_accelerators():
    return [accel.AcceleratorInfo(name="{name}", summary="t", factory=FakeAccelerator)]
"""


def test_plugins_text_and_json_show_distribution_hooks_and_errors(
    capsys: pytest.CaptureFixture[str], make_dist: MakeDist
) -> None:
    make_dist("accel-cli-test", {"good": plugin_source("good"), "bad": "import nonexistent_x\n"})
    reg = Registry(env={"ACCEL_PLUGINS": "good,bad"})
    code, out, err = run(capsys, ["plugins"], reg)
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "VERSION", "DISTRIBUTION", "SOURCE", "HOOKS"]
    rows = {ln.split()[0]: ln.split() for ln in lines[1:3]}
    assert rows["good"] == ["good", "1.2.3", "accel-cli-test", "entry-point", "accel_accelerators"]
    assert rows["bad"][:4] == ["bad", "1.2.3", "accel-cli-test", "entry-point"]
    assert "load errors:" in lines
    assert any("bad:" in ln and "nonexistent_x" in ln for ln in lines)
    assert any("ACCEL_DISABLE_PLUGINS" in ln for ln in lines)

    code, out, _ = run(capsys, ["plugins", "--json"], reg)
    data = json.loads(out)
    plugins = {p["name"]: p for p in data["plugins"]}
    assert plugins["good"] == {
        "name": "good",
        "distribution": "accel-cli-test",
        "version": "1.2.3",
        "hooks": ["accel_accelerators"],
        "source": "entry-point",
        "error": None,
    }
    assert "nonexistent_x" in plugins["bad"]["error"]
    (load_error,) = data["load_errors"]
    assert load_error["plugin"] == "bad" and load_error["distribution"] == "accel-cli-test"
    assert load_error["error"] == plugins["bad"]["error"]


def test_plugins_with_nothing_registered(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, ["plugins"], Registry(entry_points=False))
    assert code == 0 and "no plugins registered" in out
    code, out, _ = run(capsys, ["plugins", "--json"], Registry(entry_points=False))
    assert json.loads(out) == {"plugins": [], "load_errors": []}


# --------------------------------------------------------------------------- check


def check_lines(out: str) -> dict[str, str]:
    """``subject: title`` -> the rest after `` : `` for each check line."""
    result = {}
    for line in out.splitlines():
        if " : " in line:
            label, _, rest = line.partition(" : ")
            result[label.strip()] = rest
    return result


def test_check_passes_with_a_usable_hardware_accelerator(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run(capsys, ["check"], mixed_registry())
    assert code == 0 and err == ""
    lines = check_lines(out)
    assert lines["hw: hardware accelerator usable"] == "PASS (fake is always here)"
    assert lines["hw: guest RAM is host memory (user-memory)"] == "PASS"
    assert lines["hw: in-accelerator interrupt controller (irqchip)"].startswith(
        "WARN (unknown; hint: "
    )
    assert lines["down: hardware accelerator usable"] == (
        "FAIL (device node missing; hint: load the driver module)"
    )
    assert lines["sw: paravirtual clocksource (pv-clocksource)"].startswith(
        "WARN (not supported; hint: "
    )
    # every WARN and FAIL line carries a hint
    for rest in lines.values():
        if not rest.startswith("PASS"):
            assert "hint: " in rest
    # the " : " separators line up, as in virt-host-validate
    assert len({ln.index(" : ") for ln in out.splitlines() if " : " in ln}) == 1
    assert lines["accel: a hardware accelerator is usable"] == "PASS (hw)"
    assert out.rstrip().endswith("result: hardware acceleration is usable (hw)")


def test_check_fails_with_only_software(capsys: pytest.CaptureFixture[str]) -> None:
    reg = registry_with(
        fake_info("sw", priority=10),
        fake_info("down", priority=90, hardware=True, availability=DOWN),
    )
    code, out, _ = run(capsys, ["check"], reg)
    assert code == 1
    assert "FAIL (device node missing; hint: load the driver module)" in out
    assert "only software emulation (sw)" in out
    assert check_lines(out)["accel: a hardware accelerator is usable"].startswith(
        "FAIL (none of down is usable; hint: enable hardware virtualization"
    )


def test_check_fails_with_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, ["check"], Registry(entry_points=False))
    assert code == 1
    assert "FAIL (no accelerator plugin is registered; hint: " in out
    assert "FAIL (no hardware accelerator plugin; hint: " in out


def test_check_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, ["check", "--json"], mixed_registry())
    assert code == 0
    data = json.loads(out)
    assert data["hardware_usable"] is True
    assert data["usable"] == ["hw", "sw"]
    statuses = {(c["subject"], c["check"]): c["status"] for c in data["checks"]}
    assert statuses[("accel", "a hardware accelerator is usable")] == "PASS"
    assert statuses[("down", "hardware accelerator usable")] == "FAIL"
    assert statuses[("hw", "adjustable VM clock (adjust-clock)")] == "PASS"
    assert all(c["hint"] for c in data["checks"] if c["status"] != "PASS")
    reg = registry_with(fake_info("sw"))
    code, out, _ = run(capsys, ["check", "--json"], reg)
    assert code == 1 and json.loads(out)["hardware_usable"] is False


def test_check_warns_about_plugin_load_errors(
    capsys: pytest.CaptureFixture[str], make_dist: MakeDist
) -> None:
    make_dist("accel-check-test", {"broken": "raise ImportError('nope')\n"})
    reg = Registry(env={"ACCEL_PLUGINS": "broken"})
    code, out, _ = run(capsys, ["check"], reg)
    assert code == 1
    assert "plugin broken: plugin loads" in out and "WARN" in out


# --------------------------------------------------------------------------- present, no VMs


def present_registry() -> Registry:
    """A hardware accelerator that is present but cannot create VMs, and a software one."""
    return registry_with(
        fake_info(
            "stub",
            priority=90,
            hardware=True,
            availability=Availability.present("running as dom0", "use a domU instead"),
        ),
        fake_info("sw", priority=10),
    )


def test_info_shows_present_but_unable_to_create_vms(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, ["info"], present_registry())
    assert code == 0
    lines = out.splitlines()
    status_col = lines[0].index("STATUS")
    assert lines[1].split()[0] == "stub" and lines[1][status_col:].split()[0] == "present"
    assert "stub: present: running as dom0" in lines
    assert "  cannot create VMs here" in lines
    code, out, _ = run(capsys, ["info", "--json", "stub"], present_registry())
    (stub,) = json.loads(out)["accelerators"]
    assert stub["available"] is True and stub["creates_vms"] is False


def test_check_warns_about_an_accelerator_that_cannot_create_vms(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(capsys, ["check"], present_registry())
    assert code == 1
    lines = check_lines(out)
    assert lines["stub: hardware accelerator usable"] == (
        "WARN (present, but cannot create VMs here: running as dom0; hint: use a domU instead)"
    )
    assert "hardware acceleration is usable" not in out
    assert "only software emulation (sw)" in out
    assert lines["accel: a hardware accelerator is usable"].startswith("FAIL (none of stub")
    code, out, _ = run(capsys, ["check", "--json"], present_registry())
    data = json.loads(out)
    assert data["hardware_usable"] is False and data["usable"] == ["sw"]


# --------------------------------------------------------------------------- usage


@pytest.mark.parametrize(
    "argv", [[], ["nope"], ["check", "--bogus"], ["info", "--json=3"], ["plugins", "extra"]]
)
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    code, _, err = run(capsys, argv, Registry(entry_points=False))
    assert code == 2
    assert err.startswith("usage: accel") and ": error: " in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("argv", "usage", "message"),
    [
        (
            ["check", "--bogus"],
            "usage: accel check [-h] [--json]",
            "unrecognized arguments: --bogus",
        ),
        (
            ["plugins", "extra"],
            "usage: accel plugins [-h] [--json]",
            "unrecognized arguments: extra",
        ),
        (["info", "--json=3"], "usage: accel info [-h] [--json]", "ignored explicit argument '3'"),
        (["machine"], "usage: accel machine [-h] COMMAND ...", "arguments are required: COMMAND"),
        (["machine", "list", "x"], "usage: accel machine list [-h]", "unrecognized arguments: x"),
        (["snapshot"], "usage: accel snapshot [-h] COMMAND", "arguments are required: COMMAND"),
        (["snapshot", "inspect"], "usage: accel snapshot inspect", "required: FILE"),
        ([], "usage: accel [-h] [--version] COMMAND", "arguments are required: COMMAND"),
        (["nope"], "usage: accel [-h] [--version] COMMAND", "invalid choice: 'nope'"),
    ],
)
def test_a_usage_error_shows_the_usage_of_its_command(
    capsys: pytest.CaptureFixture[str], argv: list[str], usage: str, message: str
) -> None:
    code, out, err = run(capsys, argv, Registry(entry_points=False))
    assert code == 2 and out == ""
    first, *_, last = err.splitlines()
    assert first.startswith(usage)
    prog = " ".join(["accel", *(a for a in argv[:2] if a in {"check", "plugins", "info",
                     "machine", "list", "snapshot", "inspect"})])  # fmt: skip
    assert last.startswith(f"{prog}: error: ") and message in last, err


def test_help_and_version_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, ["--help"], Registry(entry_points=False))
    assert code == 0
    listed = [ln.split()[0] for ln in out.splitlines() if ln[:4] == "    " and ln[4] != " "]
    assert listed == [command.name for command in COMMANDS]  # in the table's order
    code, out, _ = run(capsys, ["--version"], Registry(entry_points=False))
    assert code == 0 and out == f"accel {accel.__version__}\n"


def test_help_of_each_command_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    for command in COMMANDS:
        code, out, _ = run(capsys, [command.name, "--help"], Registry(entry_points=False))
        assert code == 0 and out.startswith(f"usage: accel {command.name} "), command.name


def test_a_command_added_to_the_table(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    hello = Command("hello", "tests.core.cmd_extra:add_hello", "test command")
    monkeypatch.setattr("accel.cli.COMMANDS", (*COMMANDS, hello))
    reg = registry_with(fake_info("one"))
    assert run(capsys, ["hello"], reg) == (0, "hello from 1 accelerators\n", "")
    code, out, err = run(capsys, ["hello", "--fail"], reg)
    assert code == 1 and out == ""
    assert err == (
        "accel: error: machine type 'pc-9.9' is unknown second line (hint: see the list)\n"
    )
    code, _, err = run(capsys, ["hello", "--crash"], reg)
    assert code == 130 and err == "accel: error: interrupted\n"
    code, out, _ = run(capsys, ["--help"], reg)
    assert "    hello" in out and "test command" in out


# --------------------------------------------------------------------------- as a process


def run_module(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "accel", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=60,
        check=False,
    )


def test_python_m_accel_version() -> None:
    proc = run_module("--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"accel {accel.__version__}\n"


def test_python_m_accel_error_is_one_line_without_traceback() -> None:
    proc = run_module("info", "no-such-accelerator", ACCEL_PLUGINS="")
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr == (
        "accel: error: unknown accelerator 'no-such-accelerator' (hint: registered: none)\n"
    )
    proc = run_module("frobnicate")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def run_shell(command: str) -> subprocess.CompletedProcess[str]:
    """``python -m accel COMMAND`` through the shell (for its redirections)."""
    return subprocess.run(
        f"{sys.executable} -m accel {command}",
        shell=True,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


GUEST = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "guests", "compute.bin")


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
@pytest.mark.parametrize("command", ["info", "info --json", "plugins", f"run --accel tcg {GUEST}"])
def test_output_to_a_full_disk_is_one_line(command: str) -> None:
    proc = run_shell(f"{command} > /dev/full")
    assert proc.returncode == 1
    assert proc.stderr.startswith(
        "accel: error: cannot write to standard output: No space left on device (hint: "
    )
    assert len(proc.stderr.splitlines()) == 1, proc.stderr


@pytest.mark.parametrize("command", ["info", f"run --accel tcg {GUEST}"])
def test_closed_stdout_is_one_line(command: str) -> None:
    proc = run_shell(f"{command} >&-")
    assert proc.returncode == 1
    assert proc.stderr.startswith("accel: error: standard output is closed (hint: ")
    assert len(proc.stderr.splitlines()) == 1, proc.stderr


class GoneReader(io.StringIO):
    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_a_reader_that_goes_away_ends_the_command_quietly() -> None:
    err = io.StringIO()
    assert main(["plugins"], registry=mixed_registry(), out=GoneReader(), err=err) == 1
    assert err.getvalue() == ""


# --------------------------------------------------------------------------- absent (N/A)


ABSENT = Availability.absent("not running under Foo: /sys/foo is missing", "boot under Foo")


def absent_registry(*, with_hw: bool = True) -> Registry:
    infos = [
        fake_info(
            "foo",
            priority=80,
            hardware=True,
            availability=ABSENT,
            unsupported={"vm": "a stub", "snapshot": "a stub"},
        ),
        fake_info("sw", priority=10),
        fake_info("down", priority=70, hardware=True, availability=DOWN),
    ]
    if with_hw:
        infos.append(fake_info("hw", priority=100, hardware=True))
    return registry_with(*infos)


def test_availability_absent_is_unavailable_and_not_applicable() -> None:
    assert not ABSENT.available and not ABSENT.applicable and ABSENT.hint == "boot under Foo"
    assert DOWN.applicable and Availability.ok().applicable
    with pytest.raises(accel.errors.InvalidArgumentError, match="not applicable"):
        Availability(True, "here", applicable=False)


def test_check_says_na_for_an_absent_accelerator(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, ["check"], absent_registry())
    assert code == 0  # N/A does not count against the host
    lines = check_lines(out)
    assert lines["foo: hardware accelerator usable"] == (
        "N/A (not running under Foo: /sys/foo is missing)"
    )
    assert lines["down: hardware accelerator usable"].startswith("FAIL (device node missing")
    assert len({ln.index(" : ") for ln in out.splitlines() if " : " in ln}) == 1
    code, out, _ = run(capsys, ["check", "--json"], absent_registry())
    statuses = {(c["subject"], c["check"]): c["status"] for c in json.loads(out)["checks"]}
    assert statuses[("foo", "hardware accelerator usable")] == "N/A"
    assert statuses[("down", "hardware accelerator usable")] == "FAIL"


def test_check_without_an_applicable_hardware_accelerator(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(capsys, ["check"], absent_registry(with_hw=False))
    assert code == 1
    # the verdict names only the hardware accelerators that apply here
    assert check_lines(out)["accel: a hardware accelerator is usable"].startswith(
        "FAIL (none of down is usable; hint: "
    )
    reg = registry_with(fake_info("foo", hardware=True, availability=ABSENT), fake_info("sw"))
    code, out, _ = run(capsys, ["check"], reg)
    assert code == 1
    assert check_lines(out)["accel: a hardware accelerator is usable"].startswith(
        "FAIL (none of foo applies to this host; hint: "
    )


def test_info_folds_declarations_of_an_unavailable_accelerator(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(capsys, ["info"], absent_registry())
    assert code == 0
    lines = out.splitlines()
    assert "  declared unsupported: snapshot, vm (reasons: accel info foo)" in lines
    assert "    vm        a stub" not in lines
    code, out, _ = run(capsys, ["info", "foo"], absent_registry())
    lines = out.splitlines()
    assert "  declared unsupported:" in lines and "    vm        a stub" in lines
    code, out, _ = run(capsys, ["info", "--json", "foo"], absent_registry())
    (foo,) = json.loads(out)["accelerators"]
    assert foo["applicable"] is False and foo["unsupported"] == {
        "snapshot": "a stub",
        "vm": "a stub",
    }


def test_xen_stub_is_absent_off_xen_and_failing_when_broken(tmp_path: Any) -> None:
    from accel_xen import XenAccelerator

    bare = XenAccelerator(root=tmp_path / "bare").probe()
    assert not bare.available and not bare.applicable
    kvm_host = tmp_path / "kvm"
    (kvm_host / "sys/hypervisor").mkdir(parents=True)
    (kvm_host / "sys/hypervisor/type").write_text("kvm\n")
    assert not XenAccelerator(root=kvm_host).probe().applicable
    domu = tmp_path / "domu"
    (domu / "sys/hypervisor").mkdir(parents=True)
    (domu / "sys/hypervisor/type").write_text("xen\n")
    (domu / "proc/xen").mkdir(parents=True)
    (domu / "proc/xen/capabilities").write_text("\n")
    assert not XenAccelerator(root=domu).probe().applicable
    no_xenfs = tmp_path / "noxenfs"
    (no_xenfs / "sys/hypervisor").mkdir(parents=True)
    (no_xenfs / "sys/hypervisor/type").write_text("xen\n")
    broken = XenAccelerator(root=no_xenfs).probe()
    assert not broken.available and broken.applicable  # under Xen but broken: FAIL


def test_kvm_without_its_device_or_permission_is_a_failure() -> None:
    import errno as errno_

    from accel_kvm.accelerator import KvmAccelerator

    for err in (errno_.ENOENT, errno_.EACCES):
        availability = KvmAccelerator._unavailable_open("/dev/kvm", err)
        assert not availability.available and availability.applicable


# --------------------------------------------------------------------------- conformance


def test_conformance_without_pytest_names_the_extra(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # as after the main install: importing pytest fails in the command's import path
    monkeypatch.delitem(sys.modules, "accel.testing.runner", raising=False)
    monkeypatch.setitem(sys.modules, "pytest", None)  # type: ignore[arg-type]
    code, out, err = run(capsys, ["conformance", "--accel", "sw"], registry_with(fake_info("sw")))
    assert code == 1 and out == ""
    assert err == (
        "accel: error: the conformance suite needs pytest "
        "(hint: pip install 'accel[conformance]')\n"
    )


def test_pyproject_has_the_conformance_extra() -> None:
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    assert "pytest>=7.4" in project["optional-dependencies"]["conformance"]


# --------------------------------------------------------------------------- README


def _readme_snapshot_lines() -> list[str]:
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    lines = [
        ln.removeprefix("$ ").split("   #")[0].strip()
        for ln in readme.splitlines()
        if ln.startswith("$ accel run ") and "--save" in ln
    ]
    assert lines, "the README shows no --save / --restore example"
    return lines


@pytest.mark.parametrize("line", _readme_snapshot_lines())
def test_readme_snapshot_examples_work_as_shown(line: str, tmp_path: Any) -> None:
    """The README's --save/--restore lines, run by a shell as a user would type them."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "accel").write_text(f'#!/bin/sh\nexec {sys.executable} -m accel "$@"\n')
    (bindir / "accel").chmod(0o755)
    work = tmp_path / "work"
    work.mkdir()
    (work / "examples").symlink_to(root / "examples")
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run(
        ["sh", "-c", line], cwd=work, env=env, capture_output=True, text=True, timeout=300
    )
    assert (work / "vm.snap").is_file(), proc.stderr
    # the restore ran: the second command's report is the last line on stderr
    assert proc.stderr.count("accel: ") >= 2, proc.stderr
    if "halt.bin" in line:
        assert proc.returncode == 0, proc.stderr
        assert "halting with interrupts disabled" in proc.stdout
        assert "guest halted" in proc.stderr.splitlines()[-1]
    else:  # count.bin: finished from the snapshot with its exit status
        assert proc.returncode == 67, proc.stderr
        assert "count = 4194304" in proc.stdout
        assert "isa-debug-exit" in proc.stderr.splitlines()[-1]
