"""The example guests under QEMU 7.2 (-bios, isa-debug-exit, debugcon) and under `accel run`:
same debug-console output, same exit status. (halt.bin is left out: QEMU keeps a halted
guest forever, `accel run` ends the run with status 0.)"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

import accel
from accel.runner import RunOptions, run_image

from .qemu import QEMU, qemu_path

ROOT = Path(__file__).resolve().parents[2]
GUESTS = ROOT / "examples" / "guests"

pytestmark = [
    pytest.mark.qemu,
    pytest.mark.skipif(qemu_path() is None, reason="qemu-system-x86_64 is not installed"),
]


def qemu_run(
    accel_name: str, machine: str, image: Path, tmp: Path, cpu: str | None = None
) -> tuple[int, str]:
    out = tmp / "debugcon.txt"
    p = subprocess.run(
        [QEMU, "-accel", accel_name, "-M", machine, "-display", "none", "-nodefaults",
         "-bios", str(image), "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
         "-debugcon", f"file:{out}", *(["-cpu", cpu] if cpu else [])],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return p.returncode, out.read_text() if out.exists() else ""


def ours(accel_name: str, machine: str, image: Path, cpu: str | None = None) -> tuple[int, str]:
    got: list[bytes] = []
    acc = accel.open(accel_name)
    try:
        r = run_image(acc, image.read_bytes(), RunOptions(machine=machine, cpu=cpu, timeout=60),
                      console=got.append)  # fmt: skip
    finally:
        acc.close()
    return r.status & 0xFF, b"".join(got).decode()


@pytest.mark.parametrize("accel_name", [pytest.param("kvm", marks=pytest.mark.kvm), "tcg"])
@pytest.mark.parametrize(
    "machine", ["pc", "q35", "microvm", "isapc", "pc-q35-4.0", "pc-i440fx-2.8"]
)
@pytest.mark.parametrize("guest", ["hello", "compute", "clocks"])
def test_same_output_and_status_as_qemu(
    accel_name: str, machine: str, guest: str, tmp_path: Path
) -> None:
    image = GUESTS / f"{guest}.bin"
    assert ours(accel_name, machine, image) == qemu_run(accel_name, machine, image, tmp_path)


@pytest.mark.kvm
@pytest.mark.parametrize("machine", ["pc", "pc-i440fx-5.1"])
def test_kvmclock_flag_off_hides_it_from_the_guest_as_qemu(machine: str, tmp_path: Path) -> None:
    """With qemu64,-kvmclock the guest sees no pv clocksource in CPUID on either machine
    (pc 7.2 still creates the kvmclock device, which then only carries clock state)."""
    image = GUESTS / "clocks.bin"
    cpu = "qemu64,-kvmclock"
    got = ours("kvm", machine, image, cpu)
    assert got == qemu_run("kvm", machine, image, tmp_path, cpu)
    assert got[1].endswith("kvmclock: absent\n")
