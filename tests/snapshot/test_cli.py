"""``accel snapshot inspect FILE [--json]``."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

import accel.cli
from accel import snapshot
from tests.fakes import FakeVM


def run(argv: list[str]) -> int:
    return accel.cli.main(argv)


@pytest.fixture
def snap_file(tmp_path: Path, vm: FakeVM) -> Path:
    path = tmp_path / "vm.snap"
    with path.open("wb") as f:
        snapshot.save(vm, f, machine_type="pc-i440fx-7.2", cpu_model="host")
    return path


def test_inspect_text(snap_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["snapshot", "inspect", str(snap_file)]) == 0
    out = capsys.readouterr().out
    assert "machine type:  pc-i440fx-7.2" in out
    assert "accelerator:   fake" in out
    assert "cpu-regs" in out and "clock" in out and "reliable=True" in out
    assert "65536 bytes of RAM" in out


def test_inspect_json(snap_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["snapshot", "inspect", "--json", str(snap_file)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["header"]["machine_type"] == "pc-i440fx-7.2"
    names = [s["name"] for s in data["sections"]]
    assert names[0] == "vm" and names.count("cpu-regs") == 2
    assert data["ram"][0]["bytes"] == 65536


@pytest.mark.parametrize(
    "damage",
    ["foreign", "truncated", "flipped", "missing", "empty", "directory"],
)
def test_damaged_or_foreign_file_is_one_line(
    damage: str,
    snap_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = snap_file.read_bytes()
    target = tmp_path / "bad.snap"
    if damage == "foreign":
        target.write_bytes(b"\x7fELF" + bytes(100))
    elif damage == "truncated":
        target.write_bytes(data[: len(data) // 2])
    elif damage == "flipped":
        target.write_bytes(data[:200] + bytes([data[200] ^ 4]) + data[201:])
    elif damage == "empty":
        target.write_bytes(b"")
    elif damage == "directory":
        target = tmp_path
    else:
        target = tmp_path / "nope.snap"
    assert run(["snapshot", "inspect", str(target)]) == 1
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("accel: error:"), captured.err
    assert "Traceback" not in captured.err and captured.out == ""


def test_inspect_of_a_stream(vm: FakeVM) -> None:
    buf = io.BytesIO()
    snapshot.save(vm, buf, send_clock_reliable=False)
    buf.seek(0)
    info = snapshot.inspect(buf)
    clock = next(s for s in info.sections if s.name == "clock")
    assert clock.fields is not None and clock.fields["reliable"] is False
