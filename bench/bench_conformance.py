"""Conformance suite benchmark: the whole suite over kvm and tcg, as a user runs it.

Measured in one run, medians of ``--repeat`` rounds, each a fresh process:

* ``accel conformance --accel kvm,tcg --json`` (the command: interpreter start, plugin
  discovery, pytest in-process, every check on both accelerators);
* ``pytest --pyargs accel.testing.suite --accel kvm,tcg`` (the plugin, as a plugin's
  author runs it);
* the floor: the same pytest command with ``--collect-only`` (interpreter, pytest,
  plugin discovery and collection; no check runs).

Then, in this process, the time of each check per accelerator (from the runner's
results, second run so imports are warm). The goal (issue 7) is under 30 s for the full
suite over kvm and tcg on 2 cores; no test asserts it.

Usage: ``python bench/bench_conformance.py [--repeat N] [--accel kvm,tcg] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def _timed(cmd: list[str], cwd: str) -> tuple[float, int]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    return time.perf_counter() - start, proc.returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--accel", default="kvm,tcg")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        ini = Path(tmp) / "pytest.ini"
        ini.write_text("[pytest]\n")
        pytest_cmd = [
            py, "-m", "pytest", "-c", str(ini), "--rootdir", tmp, "-p", "no:cacheprovider",
            "-p", "no:accel", "-p", "accel.testing.pytest_plugin",
            "--pyargs", "accel.testing.suite", "--accel", args.accel, "-q",
        ]  # fmt: skip
        commands = {
            "accel conformance": [
                py,
                "-m",
                "accel",
                "conformance",
                "--accel",
                args.accel,
                "--json",
            ],
            "pytest --pyargs accel.testing.suite": pytest_cmd,
            "floor: same pytest, --collect-only": [*pytest_cmd, "--collect-only"],
        }
        times: dict[str, list[float]] = {k: [] for k in commands}
        codes: dict[str, set[int]] = {k: set() for k in commands}
        for _ in range(args.repeat):
            for key, cmd in commands.items():
                elapsed, code = _timed(cmd, tmp)
                times[key].append(elapsed)
                codes[key].add(code)

    from accel.testing.runner import run_suite

    names = [n for n in args.accel.split(",") if n]
    run_suite(names)  # warm imports
    result = run_suite(names)
    per_check: dict[str, dict[str, float]] = {}
    for o in result.outcomes:
        per_check.setdefault(o.check, {})[o.accelerator] = o.duration

    out: dict[str, Any] = {
        "cores": os.cpu_count(),
        "accelerators": names,
        "repeat": args.repeat,
        "wall_median_s": {k: round(statistics.median(v), 3) for k, v in times.items()},
        "exit_codes": {k: sorted(v) for k, v in codes.items()},
        "in_process_suite_s": round(result.duration, 3),
        "results": len(result.outcomes),
        "failed": len(result.failed),
        "per_check_s": {c: {a: round(t, 4) for a, t in d.items()} for c, d in per_check.items()},
    }
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    floor = out["wall_median_s"]["floor: same pytest, --collect-only"]
    print(f"{os.cpu_count()} cores, accelerators {args.accel}, medians of {args.repeat}")
    print()
    print("| what | wall | x floor |")
    print("|---|---|---|")
    for key, value in out["wall_median_s"].items():
        print(f"| {key} | {value:.2f} s | {value / floor:.2f}x |")
    print()
    print(
        f"in-process run_suite (warm): {result.duration:.2f} s for {len(result.outcomes)} "
        f"results, {len(result.failed)} failed"
    )
    print()
    print("| check | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for check, by_acc in per_check.items():
        cells = " | ".join(f"{by_acc.get(a, 0.0) * 1000:.1f} ms" for a in names)
        print(f"| {check.removeprefix('test_')} | {cells} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
