"""The ``accel`` command as a process: its entry point, a normal interpreter exit, and a
command importing its own command module when it is dispatched."""

from __future__ import annotations

import json
import os
import pstats
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from accel import cli

from .conftest import MakeDist


def python(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=60,
        check=False,
    )


def test_accel_is_a_console_script_entry_point() -> None:
    (ep,) = [ep for ep in entry_points(group="console_scripts") if ep.name == "accel"]
    assert ep.value == "accel.__main__:command"
    import accel.__main__

    assert ep.load() is accel.__main__.command


def test_cprofile_writes_a_profile_of_a_command(tmp_path: Path) -> None:
    """The interpreter exits normally after a command, so cProfile gets to write its file."""
    profile = tmp_path / "info.prof"
    proc = python("-m", "cProfile", "-o", str(profile), "-m", "accel", "info", ACCEL_PLUGINS="")
    assert proc.returncode == 0, proc.stderr
    stats = pstats.Stats(str(profile))
    assert any(func[2] == "main" and func[0].endswith("cli.py") for func in stats.stats)


def test_atexit_handlers_run_and_output_is_flushed(tmp_path: Path) -> None:
    """What a plugin registers with atexit runs when the command ends, and its buffered
    file gets closed (written)."""
    marker = tmp_path / "atexit-ran"
    buffered = tmp_path / "buffered.log"
    script = tmp_path / "cmd.py"
    script.write_text(
        "import atexit, pathlib, sys\n"
        f"atexit.register(pathlib.Path({str(marker)!r}).write_text, 'yes')\n"
        f"log = open({str(buffered)!r}, 'w')\n"
        "log.write('never flushed by hand')\n"
        "sys.stdout.write('buffered line without newline')\n"
        "sys.argv = ['accel', '--version']\n"
        "from accel.cli import main\n"
        "sys.exit(main())\n"
    )
    proc = python(str(script))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("buffered line without newline")
    assert proc.stdout.splitlines()[-1].endswith(f"accel {cli.__version__}")
    assert marker.read_text() == "yes"
    assert buffered.read_text() == "never flushed by hand"


def test_a_plugins_atexit_handler_runs_and_its_buffered_file_is_written(
    tmp_path: Path, make_dist: MakeDist
) -> None:
    """A plugin loaded by the command registers an atexit handler and leaves a buffered
    file open: after ``accel plugins`` both happened (the interpreter exited normally)."""
    marker = tmp_path / "plugin-atexit-ran"
    log = tmp_path / "plugin.log"
    source = f"""
import atexit, pathlib
import accel
from tests.fakes import FakeAccelerator

LOG = open({str(log)!r}, "w")
LOG.write("buffered by the plugin")
atexit.register(pathlib.Path({str(marker)!r}).write_text, "yes")

@accel.hookimpl
def accel_accelerators():
    return [accel.AcceleratorInfo(name="exiting", summary="t", factory=FakeAccelerator)]
"""
    make_dist("accel-atexit-test", {"exiting": source})
    root = Path(__file__).resolve().parents[2]
    path = os.pathsep.join([str(tmp_path), str(root), os.environ.get("PYTHONPATH", "")])
    proc = python("-m", "accel", "plugins", ACCEL_PLUGINS="exiting", PYTHONPATH=path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[1].split()[:3] == ["exiting", "1.2.3", "accel-atexit-test"]
    assert marker.read_text() == "yes"
    assert log.read_text() == "buffered by the plugin"


def test_python_m_accel_keeps_the_exit_status() -> None:
    proc = python("-m", "accel", "run", "--accel", "tcg", "missing.bin")
    assert proc.returncode == 1
    assert (
        proc.stderr == "accel: error: cannot read image 'missing.bin': No such file or directory\n"
    )
    usage = python("-m", "accel", "--no-such-option")
    assert usage.returncode == 2 and usage.stderr.startswith("usage: accel ")


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
    proc = python("-c", script, ACCEL_PLUGINS="")
    assert proc.returncode == 0, proc.stderr
    return set(json.loads(proc.stdout.splitlines()[-1]))


COMMAND_MODULES = {c.target.partition(":")[0] for c in cli.COMMANDS}


def test_a_command_imports_only_its_own_command_module() -> None:
    assert imported_after("info") & COMMAND_MODULES == {"accel.commands.host"}
    assert imported_after("run", "/nonexistent.bin") & COMMAND_MODULES == {"accel.commands.run"}
    assert not imported_after("--help") & COMMAND_MODULES


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
    assert not any(m.startswith(("unicorn", "accel.machine", "accel_kvm.devices")) for m in loaded)


def test_a_ctrl_c_while_the_command_imports_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A KeyboardInterrupt while the entry point imports accel.cli (before main() can
    handle it) is one line and status 130, as main() reports one, never a traceback."""
    import builtins

    import accel.__main__

    real_import = builtins.__import__

    def interrupted_import(name: str, *args: object, **kwargs: object) -> object:
        if name == "cli" or name.endswith("accel.cli"):
            raise KeyboardInterrupt
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.delitem(sys.modules, "accel.cli")
    monkeypatch.setattr(builtins, "__import__", interrupted_import)
    status = accel.__main__.command()
    monkeypatch.setattr(builtins, "__import__", real_import)
    assert status == 130
    assert capsys.readouterr().err == "accel: error: interrupted\n"
