"""Test kernels: ``accel run --kernel`` against ``qemu-system-x86_64 -kernel`` on one
accelerator, in one run.

1. ``dummy.flat`` (kvm-unit-tests' empty test) as a whole process, alternating ``accel run
   --accel kvm --kernel dummy.flat -m 256`` (the ``accel`` console script) with QEMU 7.2's
   ``-accel kvm -m 256 -kernel dummy.flat`` (its command line as in the kut README) for
   ``--rounds`` rounds: the median wall time of each and the ratio (goal <= 0.2x). QEMU runs
   SeaBIOS and its Multiboot option ROM first; accel loads the kernel itself, as qboot
   and Firecracker do.
2. The whole shared kvm-unit-tests set: every (test, smp) row of ../shared/kut/results.tsv
   for the accelerator whose QEMU run ended (status 124 there means QEMU did not end in
   180 s: no reference, and left out of both totals), once under each, one after another;
   the sum of the wall times of each and the ratio (goal <= 0.3x). Each row's exit status
   under accel is printed beside QEMU's.

No figure is asserted: the ratios go to docs/performance.md.

    python bench/bench_kernel.py [--kut DIR] [--accel kvm] [--rounds 5] [--timeout 200]
                                 [--skip-set] [--markdown]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

#: The goals of docs/performance.md (accel's wall time over QEMU's).
GOAL_DUMMY = 0.2
GOAL_SET = 0.3


@dataclass(frozen=True, slots=True)
class Row:
    test: str
    smp: int
    append: str
    status: int  # QEMU's in results.tsv


def reference_rows(kut: Path, accel_name: str) -> list[Row]:
    """results.tsv's rows for ``accel_name`` whose QEMU run ended (status != 124)."""
    rows = []
    for line in (kut / "results.tsv").read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        test, acc, smp, append, status, *_rest = line.split("\t")
        if acc == accel_name and int(status) != 124:
            rows.append(Row(test, int(smp), append, int(status)))
    return rows


def accel_cmd(python: str, accel_name: str, kernel: Path, smp: int, append: str) -> list[str]:
    script = shutil.which("accel", path=str(Path(python).parent))
    base = [script] if script else [python, "-m", "accel"]
    cmd = [*base, "run", "--accel", accel_name, "--kernel", str(kernel), "-m", "256",
           "--smp", str(smp), "--serial", "null"]  # fmt: skip
    return [*cmd, "--append", append] if append else cmd


def qemu_cmd(qemu: str, accel_name: str, kernel: Path, smp: int, append: str) -> list[str]:
    cmd = [qemu, "-nodefaults", "-display", "none", "-serial", "null",
           "-device", "isa-debug-exit,iobase=0xf4,iosize=0x4", "-machine",
           f"accel={accel_name}", "-m", "256", "-smp", str(smp),
           "-kernel", str(kernel)]  # fmt: skip
    return [*cmd, "-append", append] if append else cmd


def timed(cmd: list[str], timeout: float) -> tuple[float, int]:
    """(wall seconds, exit status; 124 when ``timeout`` ran out) of one run of ``cmd``."""
    t0 = time.perf_counter()
    try:
        done = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=timeout, check=False)  # fmt: skip
        status = done.returncode
    except subprocess.TimeoutExpired:
        status = 124
    return time.perf_counter() - t0, status


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kut", default=str(Path(__file__).resolve().parents[2] / "shared" / "kut"))
    ap.add_argument("--accel", default="kvm")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--timeout", type=float, default=200.0)
    ap.add_argument("--skip-set", action="store_true", help="only the dummy.flat rounds")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args(argv)
    kut = Path(args.kut)
    qemu = shutil.which("qemu-system-x86_64")
    if not (kut / "results.tsv").exists() or qemu is None:
        print(f"needs {kut}/results.tsv and qemu-system-x86_64", file=sys.stderr)
        return 1
    python = sys.executable
    env_note = f"load average {os.getloadavg()[0]:.2f}"
    dummy = kut / "dummy.flat"
    ours: list[float] = []
    theirs: list[float] = []
    timed(accel_cmd(python, args.accel, dummy, 1, ""), args.timeout)  # warm-up
    for _ in range(args.rounds):
        w, s = timed(accel_cmd(python, args.accel, dummy, 1, ""), args.timeout)
        if s != 1:
            print(f"accel run dummy.flat: status {s}, not 1", file=sys.stderr)
            return 1
        ours.append(w)
        w, s = timed(qemu_cmd(qemu, args.accel, dummy, 1, ""), args.timeout)
        if s != 1:
            print(f"qemu dummy.flat: status {s}, not 1", file=sys.stderr)
            return 1
        theirs.append(w)
    a, q = statistics.median(ours), statistics.median(theirs)
    out = [
        ("`accel run --kernel dummy.flat`", f"{a:.3f} s", ""),
        ("`qemu-system-x86_64 -kernel dummy.flat`", f"{q:.3f} s", ""),
        ("**dummy: accel / QEMU**", f"**{a / q:.3f}x**",
         f"goal <= {GOAL_DUMMY}x: {'met' if a / q <= GOAL_DUMMY else 'missed'}"),
    ]  # fmt: skip
    if not args.skip_set:
        total_a = total_q = 0.0
        for row in reference_rows(kut, args.accel):
            kernel = kut / f"{row.test}.flat"
            wa, sa = timed(accel_cmd(python, args.accel, kernel, row.smp, row.append), args.timeout)
            wq, sq = timed(qemu_cmd(qemu, args.accel, kernel, row.smp, row.append), args.timeout)
            total_a += wa
            total_q += wq
            name = row.test + (f" -smp {row.smp}" if row.smp != 1 else "")
            out.append((f"{name}", f"{wa:.2f} s (status {sa})",
                        f"QEMU {wq:.2f} s (status {sq}; results.tsv {row.status})"))  # fmt: skip
        ratio = total_a / total_q
        verdict = "met" if ratio <= GOAL_SET else "missed"
        out.append(("**kut set: accel total / QEMU total**",
                    f"**{total_a:.1f} s / {total_q:.1f} s = {ratio:.2f}x**",
                    f"goal <= {GOAL_SET}x: {verdict}"))  # fmt: skip
    if args.markdown:
        print(f"| what | accel | QEMU / verdict |   ({env_note}, {args.rounds} rounds)")
        print("|---|---|---|")
        for row_out in out:
            print("| " + " | ".join(row_out) + " |")
    else:
        print(env_note)
        for row_out in out:
            print("  ".join(row_out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
