"""kvm-unit-tests saved at a random point mid-run and restored in a new process end as an
uninterrupted run does: the same exit status, the same SUMMARY line and the same
PASS/FAIL/SKIP lines (the serial output before the save, in the saving process, followed
by the output after the restore, in the new one).

Each case runs the test kernel (``accel run -kernel T.flat -smp N -m 256``, in this
process) once uninterrupted, which also gives its run time T; then again with
``--stop-after`` drawn at random in (0.2 ms, 0.8 T) and ``--save``; a run that ended
before its stop came is drawn again earlier (a case that is never caught mid-run fails).
The snapshot is resumed by ``python -m accel run --restore`` in a new process. The seed
is printed and in every assertion message; ``ACCEL_KUT_SEED=N`` replays one.

KVM, 1 and 2 vCPUs: the kernels that pass uninterrupted here and end within a fraction
of a second (setjmp, smptest, tsc, hpet_read_test, dummy; with 2 vCPUs the APs are
caught waiting for SIPI, in the middle of the IPI test or after it). Each uninterrupted
result is checked against QEMU 7.2's on this host (``/work/shared/kut/results.tsv``).
``msr`` (13 s here), ``realmode`` (7 s) and ``hpet_read_test`` with 2 vCPUs (5 s) take
too long for this suite; ``memory``, ``syscall`` and ``hypercall`` fail uninterrupted
on this host's KVM, as under QEMU.

TCG: the kernels that pass uninterrupted under the TCG plugin (long-mode exception
delivery and the userspace interrupt controllers) with QEMU 7.2 TCG's result and end
within a second: setjmp, smptest (1 and 2 vCPUs), hpet_read_test, dummy. ``realmode``
takes about 45 s on TCG (its closing benchmark loops run under the real-mode CS-limit
block hooks) and is left out.
"""

from __future__ import annotations

import functools
import os
import random
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from accel import Accelerator
from accel.machine.machine import RunResult
from accel.runner import KernelOptions, RunOptions, run_kernel

ROOT = Path(__file__).resolve().parents[2]
KUT = Path(__file__).resolve().parents[3] / "shared" / "kut"  # ../shared beside the checkout
RAM = 256 << 20
#: The seed of this session's random stop points (printed; ACCEL_KUT_SEED replays it).
SEED = int(os.environ.get("ACCEL_KUT_SEED", "0")) or random.SystemRandom().randrange(1, 2**32)

pytestmark = pytest.mark.skipif(
    not KUT.is_dir(), reason=f"{KUT} (kvm-unit-tests binaries) is missing"
)

#: (kernel, vCPUs) run on KVM.
KVM_CASES = [
    ("setjmp", 1),
    ("smptest", 1),
    ("tsc", 1),
    ("hpet_read_test", 1),
    ("dummy", 1),
    ("smptest", 2),
    ("setjmp", 2),
    ("tsc", 2),
]
#: (kernel, vCPUs) run on TCG (see the module docstring).
TCG_CASES = [("setjmp", 1), ("smptest", 1), ("smptest", 2), ("hpet_read_test", 1), ("dummy", 1)]
#: The line prefixes compared between the runs.
RESULT_LINES = ("PASS:", "FAIL:", "SKIP:", "XFAIL:", "SUMMARY:")


@dataclass(frozen=True)
class Outcome:
    status: int
    kind: str
    output: str
    seconds: float


def run_once(acc: Accelerator, name: str, smp: int, **opts: object) -> Outcome:
    """Boot ``name``.flat on ``acc`` with ``smp`` vCPUs in this process."""
    out = bytearray()
    kernel = KernelOptions(str(KUT / f"{name}.flat"), ram_size=RAM, smp=smp, serial="stdio")
    options = RunOptions(timeout=60, **opts)  # type: ignore[arg-type]
    start = time.monotonic()
    result: RunResult = run_kernel(acc, kernel, options, console=out.extend)
    seconds = time.monotonic() - start
    return Outcome(result.status, result.kind, out.decode("latin-1"), seconds)


def results(output: str) -> list[str]:
    return [line.strip() for line in output.splitlines() if line.startswith(RESULT_LINES)]


def summary(output: str) -> str | None:
    found = [line for line in results(output) if line.startswith("SUMMARY:")]
    return found[-1] if found else None


@functools.cache
def qemu_results() -> dict[tuple[str, str, int], tuple[int, str]]:
    """results.tsv: (test, accel, smp) -> (status, SUMMARY line or "")."""
    table: dict[tuple[str, str, int], tuple[int, str]] = {}
    path = KUT / "results.tsv"
    if not path.is_file():
        return table
    for line in path.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        cols = line.split("\t")
        test, acc_name, smp, _append, status = cols[:5]
        table[test, acc_name, int(smp)] = (int(status), cols[6] if len(cols) > 6 else "")
    return table


def restore_in_new_process(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "accel", "run", "--restore", str(path)],
        capture_output=True,
        text=True,
        encoding="latin-1",
        timeout=120,
        cwd=ROOT,
        check=False,
    )


def check_midrun(acc: Accelerator, name: str, smp: int, whole: Outcome, tmp: Path) -> None:
    """Save ``name`` at a random point of its run and restore it in a new process: the
    same status and result lines as ``whole``, the uninterrupted run."""
    rng = random.Random(f"{SEED}:{acc.name}:{name}:{smp}")
    tag = f"seed {SEED} (ACCEL_KUT_SEED={SEED} replays it), {acc.name} {name} -smp {smp}"
    print(tag, f"uninterrupted: {whole.seconds:.3f} s, status {whole.status}")
    high = 0.8 * whole.seconds
    low = 0.0002  # 0.2 ms: a short kernel's guest code may run for a few ms only
    snap = tmp / f"{name}-{smp}.snap"
    for _attempt in range(10):
        stop = rng.uniform(low, high)
        first = run_once(acc, name, smp, stop_after=stop, save=str(snap))
        if first.kind == "stopped":
            break
        high = stop  # ended before the stop came: draw again, earlier
    else:
        pytest.fail(f"{tag}: never caught mid-run (ended first at every stop drawn)")
    print(tag, f"saved after {stop * 1000:.1f} ms")
    second = restore_in_new_process(snap)
    combined = first.output + second.stdout
    context = f"{tag}, stopped after {stop * 1000:.1f} ms; restore stderr: {second.stderr}"
    assert second.returncode == whole.status, context
    assert summary(combined) == summary(whole.output), context
    assert results(combined) == results(whole.output), context


@pytest.mark.kvm
@pytest.mark.parametrize(("name", "smp"), KVM_CASES, ids=[f"{n}-smp{s}" for n, s in KVM_CASES])
def test_kvm_kut_saved_midrun_ends_as_uninterrupted(
    kvm: Accelerator, name: str, smp: int, tmp_path: Path
) -> None:
    whole = run_once(kvm, name, smp)
    qemu = qemu_results().get((name, "kvm", smp)) or qemu_results().get((name, "kvm", 1))
    if qemu is not None and qemu[0] != 124:  # QEMU's result on this host, where it has one
        assert (whole.status, summary(whole.output) or "") == qemu, whole.output
    assert whole.kind == "debug-exit", whole.output
    check_midrun(kvm, name, smp, whole, tmp_path)


@pytest.mark.parametrize(("name", "smp"), TCG_CASES, ids=[f"{n}-smp{s}" for n, s in TCG_CASES])
def test_tcg_kut_saved_midrun_ends_as_uninterrupted(
    tcg: Accelerator, name: str, smp: int, tmp_path: Path
) -> None:
    whole = run_once(tcg, name, smp)
    qemu = qemu_results().get((name, "tcg", smp)) or qemu_results().get((name, "tcg", 1))
    if qemu is not None and qemu[0] != 124:  # QEMU 7.2 TCG's result, where it has one
        assert (whole.status, summary(whole.output) or "") == qemu, whole.output
    assert whole.kind == "debug-exit", whole.output
    check_midrun(tcg, name, smp, whole, tmp_path)
