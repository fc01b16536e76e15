"""Start-up cost of the command: a command imports only the modules it needs."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from accel import cli


def imported_after(*argv: str) -> set[str]:
    """The modules loaded by ``accel ARGV`` in a fresh interpreter (exit status ignored)."""
    script = (
        "import sys, json, io\n"
        "from contextlib import redirect_stderr, redirect_stdout\n"
        "from accel.cli import main\n"
        "with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):\n"
        f"    main({list(argv)!r})\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env={**os.environ, "ACCEL_PLUGINS": ""},
        timeout=60,
        check=True,
    )
    return set(json.loads(proc.stdout.splitlines()[-1]))


def test_index_names_every_command_of_every_module() -> None:
    """COMMAND_INDEX is exactly what the command modules add (a wrong entry would only cost
    time, but keep it honest)."""
    found: dict[str, str] = {}
    for module_name in cli.COMMAND_MODULES:
        parser = argparse.ArgumentParser()
        sub = parser.add_subparsers()
        importlib.import_module(module_name).add_commands(sub)
        for name in sub.choices:
            found[name] = module_name
    assert found == cli.COMMAND_INDEX


def test_info_imports_no_other_command_module() -> None:
    mods = imported_after("info")
    assert "accel.cli" in mods
    for heavy in ("accel.machine", "accel.snapshot", "accel.testing"):
        assert heavy not in mods


def test_run_imports_only_its_own_command_module() -> None:
    mods = imported_after("run", "/nonexistent.bin")
    assert "accel.machine.cli" in mods
    assert "accel.snapshot" not in mods and "accel.testing" not in mods


def test_help_and_unknown_commands_import_every_module() -> None:
    for argv in (["--help"], ["nope"], []):
        mods = imported_after(*argv)
        assert set(cli.COMMAND_MODULES) <= mods, argv


def test_help_lists_every_command_in_module_order(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    positions = [out.index(f"    {name} ") for name in cli.COMMAND_INDEX if name != "conformance"]
    assert positions == sorted(positions)
    assert "conformance" in out


def test_a_command_missing_from_the_index_is_still_found(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli, "COMMAND_MODULES", (*cli.COMMAND_MODULES, "tests.core.cmd_extra"))
    monkeypatch.setattr(cli, "COMMAND_INDEX", {**cli.COMMAND_INDEX, "hello": "accel.cli"})
    from accel import Registry

    assert cli.main(["hello"], registry=Registry(entry_points=False)) == 0  # index was wrong
    assert capsys.readouterr().out == "hello from 0 accelerators\n"


def test_explicit_modules_are_imported_at_once() -> None:
    parser = cli.build_parser(("accel.cli",))
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    choices: dict[str, Any] = sub.choices
    assert set(choices) == {"info", "plugins", "check"}


def test_plugins_register_without_their_heavy_modules() -> None:
    """Registering the in-tree plugins imports neither the TCG engine module (nor unicorn)
    nor the machine layer; the accelerators are still all there."""
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, json, accel; print(json.dumps(sorted(accel.accelerators()))); "
            "print(json.dumps(sorted(sys.modules)))",
        ],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("ACCEL_")},
        timeout=60,
        check=True,
    )
    accs, mods = proc.stdout.splitlines()
    assert {"kvm", "tcg", "xen"} <= set(json.loads(accs))
    loaded = set(json.loads(mods))
    assert "accel_tcg.accelerator" not in loaded
    assert not any(m.startswith(("unicorn", "accel.machine", "accel_kvm.machine")) for m in loaded)
    assert not {"accel_kvm.vm", "accel_kvm.vcpu"} & loaded


def test_lazy_plugin_names_resolve() -> None:
    import accel_kvm
    import accel_tcg

    assert accel_tcg.TcgAccelerator.__name__ == "TcgAccelerator"
    assert accel_tcg.MAX_VCPUS > 0
    assert accel_kvm.KvmVM.__name__ == "KvmVM" and accel_kvm.KvmVcpu.__name__ == "KvmVcpu"
    with pytest.raises(AttributeError):
        _ = accel_tcg.nope
    with pytest.raises(AttributeError):
        _ = accel_kvm.nope


@pytest.mark.parametrize(
    "env", [{}, {"COLUMNS": "50"}, {"COLUMNS": "x", "LINES": "3"}, {"COLUMNS": "0"}]
)
def test_help_width_is_found_as_shutil_finds_it(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    for key in ("COLUMNS", "LINES"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert cli._terminal_columns() == shutil.get_terminal_size().columns
    from accel._cliparser import Parser

    stock = argparse.ArgumentParser(prog="accel", formatter_class=argparse.HelpFormatter)
    ours = Parser(prog="accel")
    for p in (stock, ours):
        p.add_argument("--flag", help="some words " * 20)
    assert ours.format_help() == stock.format_help()


def test_the_run_command_does_not_import_shutil() -> None:
    assert "shutil" not in imported_after("run", "/nonexistent.bin")


def test_the_run_command_does_not_import_argparse() -> None:
    """``accel run`` with a plain command line is parsed without argparse; ``--help`` and
    errors still get argparse's parser."""
    mods = imported_after("run", "--accel", "kvm", "-M", "microvm", "/nonexistent.bin")
    assert not {"argparse", "accel._cliparser"} & mods
    assert {"argparse", "accel._cliparser"} <= imported_after("run", "--acc", "kvm", "x.bin")


def test_command_module_protocol_is_still_there() -> None:
    from accel._cliparser import CommandModule

    assert cli.CommandModule is CommandModule
    with pytest.raises(AttributeError):
        _ = cli.nope  # type: ignore[attr-defined]


def test_the_accel_command_is_a_plain_script() -> None:
    """pip installs bin/accel as the command (hatchling shared-scripts), not a console-script
    entry point, whose generated wrapper imports re; the script itself imports nothing else."""
    root = Path(__file__).resolve().parents[2]
    project = tomllib.loads((root / "pyproject.toml").read_text())
    assert "scripts" not in project["project"]
    wheel = project["tool"]["hatch"]["build"]["targets"]["wheel"]
    assert wheel["shared-scripts"] == {"bin/accel": "accel"}
    script = root / "bin" / "accel"
    lines = [line for line in script.read_text().splitlines() if line]
    assert lines == ["#!python", "from accel.cli import command", "command()"]
    path = os.pathsep.join([str(root), str(root / "plugins"), os.environ.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [sys.executable, str(script), "--version"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": path},
        timeout=60,
        check=False,
    )
    assert (proc.returncode, proc.stdout) == (0, f"accel {cli.__version__}\n"), proc.stderr


def _run_command(tmp_path: Path, body: str, *argv: str) -> subprocess.CompletedProcess[str]:
    """``accel.cli.command()`` in a fresh interpreter, after ``body`` (a plugin's doing)."""
    script = tmp_path / "cmd.py"
    script.write_text(f"import sys\nsys.argv = ['accel', *{list(argv)!r}]\n{body}\n"
                      "from accel.cli import command\ncommand()\n")  # fmt: skip
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)


def test_command_runs_atexit_callbacks_and_flushes_output(tmp_path: Path) -> None:
    """The fast exit still runs what was registered with atexit and loses no output."""
    marker = tmp_path / "atexit-ran"
    body = (
        "import atexit, pathlib\n"
        f"atexit.register(pathlib.Path({str(marker)!r}).write_text, 'yes')\n"
        "sys.stdout.write('buffered line without newline')\n"
    )
    proc = _run_command(tmp_path, body, "--version")
    assert proc.returncode == 0
    assert proc.stdout.startswith("buffered line without newline")
    assert "accel" in proc.stdout.splitlines()[-1]
    assert marker.read_text() == "yes"


def test_command_keeps_the_exit_status(tmp_path: Path) -> None:
    proc = _run_command(tmp_path, "", "run", "--accel", "kvm", "missing.bin")
    assert proc.returncode == 1
    assert "cannot read image 'missing.bin'" in proc.stderr
    usage = _run_command(tmp_path, "", "--no-such-option")
    assert usage.returncode == 2 and "usage:" in usage.stderr


def test_command_waits_for_a_live_thread(tmp_path: Path) -> None:
    """With another thread alive the interpreter's own exit runs, which joins it."""
    marker = tmp_path / "thread-finished"
    body = (
        "import threading, time, pathlib\n"
        "def work():\n"
        "    time.sleep(0.2)\n"
        f"    pathlib.Path({str(marker)!r}).write_text('done')\n"
        "threading.Thread(target=work).start()\n"
    )
    proc = _run_command(tmp_path, body, "--version")
    assert proc.returncode == 0
    assert marker.read_text() == "done"
