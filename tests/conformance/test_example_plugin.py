"""The plugin author's path: the out-of-tree example plugin, installed, passes the suite.

examples/accel-example is pip-installed (``--target``, no dependencies, the build backend
from this environment) into a temporary directory; a fresh interpreter with that
directory on its path discovers it through the ``accel.plugins`` entry point and runs
the conformance suite on it, as its author would.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "accel-example"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("unicorn")
    target = tmp_path_factory.mktemp("site")
    # Build with this environment's hatchling when it has one (no network needed);
    # otherwise pip fetches the build backend as for any source install.
    isolation = [] if importlib.util.find_spec("hatchling") is None else ["--no-build-isolation"]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            *isolation,
            "--no-cache-dir",
            "--target",
            str(target),
            str(EXAMPLE),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"pip install of {EXAMPLE} failed:\n{proc.stderr[-3000:]}"
    assert (target / "accel_example" / "__init__.py").exists()
    return target


def _env(site: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.pop("ACCEL_PLUGINS", None)
    env.pop("ACCEL_DISABLE_PLUGINS", None)
    return env


def _run(site: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        env=_env(site),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_installed_plugin_is_discovered(site: Path, tmp_path: Path) -> None:
    proc = _run(site, "-m", "accel", "plugins", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    records = data["plugins"] if isinstance(data, dict) else data
    example = [r for r in records if r["name"] == "example"]
    assert example and example[0]["distribution"] == "accel-example"
    assert example[0]["source"] == "entry-point"


def test_installed_plugin_passes_the_suite_with_its_declared_exception(
    site: Path, tmp_path: Path
) -> None:
    report = tmp_path / "report.json"
    ini = tmp_path / "pytest.ini"
    ini.write_text("[pytest]\n")
    proc = _run(
        site,
        "-m",
        "pytest",
        "-c",
        str(ini),
        "--rootdir",
        str(tmp_path),
        "-p",
        "no:cacheprovider",
        "-p",
        "no:accel",
        "-p",
        "accel.testing.pytest_plugin",
        "--pyargs",
        "accel.testing.suite",
        "--accel",
        "example",
        "--accel-report",
        str(report),
        "-q",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    outcomes = {o["check"]: o for o in json.loads(report.read_text())}
    assert outcomes, proc.stdout
    declared = outcomes.pop("test_multiple_vms")
    assert declared["status"] == "declared-unsupported"
    assert "one VM at a time" in declared["detail"]
    failing = {c: o["status"] for c, o in outcomes.items() if o["status"] != "pass"}
    assert not failing


def test_example_own_tests_run_the_suite(site: Path, tmp_path: Path) -> None:
    proc = _run(
        site,
        "-m",
        "pytest",
        "-c",
        str(EXAMPLE / "pyproject.toml"),
        "--rootdir",
        str(EXAMPLE),
        "-p",
        "no:cacheprovider",
        "-p",
        "no:accel",
        "-p",
        "accel.testing.pytest_plugin",
        "-rs",
        str(EXAMPLE / "tests"),
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "example declares unsupported: multiple-vms" in proc.stdout
