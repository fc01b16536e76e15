"""The start-up path of ``accel run`` imports only cheap modules (docs/performance.md).

``accel run`` of a tiny guest is held to a fraction of QEMU's wall time. On this kind of
host the interpreter alone is about a third of QEMU's run, so every standard module on the
path counts: :mod:`typing`, :mod:`dataclasses` (which brings :mod:`inspect`, :mod:`ast`,
:mod:`re`), :mod:`enum`, :mod:`argparse` and pluggy each cost milliseconds. This test runs
the installed ``accel`` command under ``-X importtime`` and fails, naming the module and
who imported it, when one of them is loaded on the way to running the guest. It counts
modules, not time, so it cannot flake.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

#: Standard and third-party modules that must not load while ``accel run`` starts a guest.
FORBIDDEN = frozenset(
    {
        "typing",
        "dataclasses",
        "enum",
        "inspect",
        "ast",
        "tokenize",
        "re",
        "argparse",
        "gettext",
        "pluggy",
        "functools",
        "collections",
        "contextlib",
        "threading",
        "signal",
        "datetime",
        "json",
        "importlib.metadata",
        "importlib.util",
        "unicorn",
        "pathlib",
    }
)


def _accel_script() -> list[str]:
    script = shutil.which("accel", path=str(Path(sys.executable).parent))
    if script is None:
        pytest.skip("the accel command is not installed beside this interpreter")
    return [sys.executable, "-X", "importtime", script]


def imports_of_run(
    tmp_path: Path, *extra: str, env: dict[str, str] | None = None
) -> tuple[int, list[tuple[int, str]]]:
    """Exit status and (depth, module) of every import ``accel run`` makes, in order."""
    image = tmp_path / "tiny.bin"
    img = bytearray(0x10000)
    img[0xFFF0:0xFFF5] = bytes.fromhex("b010e6f4f4")  # mov al,0x10; out 0xf4,al; hlt
    image.write_bytes(bytes(img))
    proc = subprocess.run(
        [*_accel_script(), "run", *extra, str(image)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )
    found: list[tuple[int, str]] = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        name = line.rsplit("|", 1)[1]
        depth = (len(name) - len(name.lstrip(" "))) // 2
        found.append((depth, name.strip()))
    return proc.returncode, found


def _importer(found: list[tuple[int, str]], index: int) -> str:
    """The top-level chain that imported ``found[index]`` (importtime lists children first)."""
    depth = found[index][0]
    chain = [found[index][1]]
    for d, name in found[index + 1 :]:
        if d < depth:
            chain.append(name)
            depth = d
    return " <- ".join(chain)


def forbidden_imports(found: list[tuple[int, str]]) -> list[str]:
    return [_importer(found, i) for i, (_d, name) in enumerate(found) if name in FORBIDDEN]


@pytest.mark.kvm
def test_accel_run_loads_no_expensive_module(tmp_path: Path) -> None:
    status, found = imports_of_run(tmp_path, "--accel", "kvm", "-M", "microvm")
    assert status == 33, "the tiny guest's isa-debug-exit status"
    assert any(n.startswith("accel_kvm") for _d, n in found), "the guest ran on the KVM plugin"
    bad = forbidden_imports(found)
    assert not bad, "accel run imported:\n" + "\n".join(bad)


@pytest.mark.kvm
def test_the_check_sees_an_expensive_import(tmp_path: Path) -> None:
    """The guard is live: an interpreter that loads enum at start-up is caught, by name."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text("import enum\n")
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    status, found = imports_of_run(tmp_path, "--accel", "kvm", env={"PYTHONPATH": path})
    assert status == 33
    assert any(chain.startswith("enum") for chain in forbidden_imports(found))
