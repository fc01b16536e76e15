"""``accel run`` of a 1-byte or an all-zero image (issue #15): one behaviour on every
accelerator, reported within a second with one stderr line.

The zeros execute (``add [bx+si],al`` is valid x86) until the IP runs past the 64 KiB
code segment; that is #GP(0) through the (zero) IVT, and the exception frames pushed
onto the zero-filled low memory end in a HLT with interrupts disabled — on KVM by the
hardware rules, on TCG by the plugin's real-mode limit check.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from accel.cli import main

ONE_LINE = "guest halted with interrupts disabled"


def _run(capfd: pytest.CaptureFixture[str], accel_name: str, image: Path) -> tuple[int, str, float]:
    start = time.monotonic()
    status = main(["run", "--accel", accel_name, "--timeout", "10", str(image)])
    took = time.monotonic() - start
    return status, capfd.readouterr().err, took


@pytest.fixture(params=[1, 65536], ids=["1-byte", "64KiB-zero"])
def image(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    path = tmp_path / "zero.bin"
    path.write_bytes(bytes(request.param))
    return path


def _check(capfd: pytest.CaptureFixture[str], accel_name: str, image: Path) -> None:
    status, err, took = _run(capfd, accel_name, image)
    assert status == 0, err
    assert err == f"accel: {accel_name}: {ONE_LINE}\n"
    assert took < 1.0, f"took {took:.2f} s"


def test_zero_image_on_tcg(capfd: pytest.CaptureFixture[str], image: Path) -> None:
    _check(capfd, "tcg", image)


@pytest.mark.kvm
def test_zero_image_on_kvm(capfd: pytest.CaptureFixture[str], image: Path) -> None:
    _check(capfd, "kvm", image)
