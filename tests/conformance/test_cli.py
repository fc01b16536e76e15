"""``accel conformance``: the matrix, --json, and the exit status."""

from __future__ import annotations

import io
import json

import pytest

import accel
from accel.cli import build_parser
from accel.commands import Context

from .broken import broken_registry


def _conformance(argv: list[str], registry: accel.Registry) -> tuple[int, str]:
    argv = ["conformance", *argv]
    args = build_parser(argv).parse_args(argv)
    out = io.StringIO()
    status = args.handler(args, Context(registry, out_stream=out))
    return status, out.getvalue()


@pytest.fixture(scope="module")
def registry() -> accel.Registry:
    pytest.importorskip("unicorn")
    return broken_registry(["none", "clock-backwards"])


def test_matrix_and_failure_exit_status(registry: accel.Registry) -> None:
    status, out = _conformance(["-k", "test_clock or test_declarations"], registry)
    assert status == 1
    lines = out.splitlines()
    assert lines[0].split() == ["CHECK", "broken-clock-backwards", "broken-none"]
    clock_row = next(line for line in lines if line.startswith("clock "))
    assert clock_row.split() == ["clock", "FAIL", "pass"]
    assert any(
        line.startswith("clock[broken-clock-backwards]: fail: AssertionError: VM clock went back")
        for line in lines
    )
    assert "1 check(s) failed" in out


def test_json_and_success(registry: accel.Registry) -> None:
    status, out = _conformance(
        ["--accel", "broken-none", "--json", "-k", "test_clock and not devices and not rate"],
        registry,
    )
    assert status == 0
    data = json.loads(out)
    assert data["ok"] is True
    assert data["accelerators"] == ["broken-none"]
    assert {r["check"] for r in data["results"]} == {"test_clock"}
    assert data["results"][0]["status"] == "pass"


def test_unknown_accelerator_is_an_error(registry: accel.Registry) -> None:
    with pytest.raises(accel.errors.UnknownAcceleratorError):
        _conformance(["--accel", "broken-nne"], registry)
