"""Whole-process benchmark: ``accel run`` of the tiny exit guest vs QEMU 7.2 and the floor.

The guest is a 64 KiB flat image whose reset vector runs ``mov al,0x10; out 0xf4,al``:
with isa-debug-exit at 0xF4/4 both programs exit with status 33. Each round runs, in
alternation,

* ``accel run --accel kvm -M microvm IMAGE`` (the ``accel`` console script),
* ``qemu-system-x86_64 -accel kvm -M microvm -bios IMAGE -device isa-debug-exit,...``,
* the *floor*: bench/raw_run.py --stdlib, the same guest through raw /dev/kvm ioctls after
  importing what any run of a Python VMM built on the standard parts needs (dataclasses,
  enum, argparse, importlib.metadata, pluggy, ctypes) and nothing of accel's,
* ``python -c pass`` and that import line alone, to split the floor.

With ``--compare DIR`` the same ``accel run`` from another source tree (``DIR`` and
``DIR/plugins`` first on ``PYTHONPATH``; ``python -m accel``) runs in the same rounds:
before and after in one run. It reports the median wall time and peak RSS of each
(``os.wait4`` per child), accel/QEMU, accel/floor and the milliseconds accel adds to the
floor (the goal is at most 40 ms here). Python runs with a bytecode cache, as an installed
package has one (``PYTHONDONTWRITEBYTECODE`` is dropped and ``PYTHONPYCACHEPREFIX`` points at
a temporary directory), after one warm-up run of each command.

``--where`` then says where accel's own milliseconds go: ``python -X importtime`` of the
same run, summed per top-level package (accel's modules, the plugins, pluggy, the standard
library), and in-process timings of plugin discovery (entry points, registration, the
first hook call) and of building the command's parsers.

    python bench/bench_run.py [--rounds 15] [--accel kvm] [--markdown] [--compare DIR] [--where]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

#: The modules any Python VMM on the standard parts imports: the floor's import line.
STANDARD_PARTS = "dataclasses, enum, argparse, importlib.metadata, pluggy, ctypes"

#: accel's own start-up budget over the floor (docs/performance.md).
GOAL_MS = 40.0


def tiny_image(path: Path) -> None:
    img = bytearray(0x10000)
    img[0xFFF0:0xFFF5] = bytes.fromhex("b010e6f4f4")  # mov al,0x10; out 0xf4,al; hlt
    path.write_bytes(img)


def measure(cmd: list[str], env: dict[str, str]) -> tuple[float, int, int]:
    """(wall seconds, peak RSS KiB, exit status) of one run of ``cmd``."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _pid, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_maxrss, p.returncode


def accel_command(python: str) -> list[str]:
    """The installed ``accel`` console script beside ``python``, else ``python -m accel``."""
    script = shutil.which("accel", path=str(Path(python).parent))
    return [script] if script else [python, "-m", "accel"]


def import_times(cmd: list[str], env: dict[str, str]) -> dict[str, float]:
    """Milliseconds of ``-X importtime`` self time of one run of ``cmd``, per group."""
    env = {**env, "PYTHONPROFILEIMPORTTIME": "1"}
    err = subprocess.run(cmd, env=env, capture_output=True, text=True).stderr
    groups: dict[str, float] = defaultdict(float)
    for line in err.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _cumulative, name = (part.strip() for part in line[12:].split("|"))
        top = name.split(".")[0]
        if top == "accel":
            group = "accel (core)"
        elif top.startswith("accel_"):
            group = "accel plugins"
        elif top in ("pluggy", "unicorn"):
            group = top
        else:
            group = "standard library and others"
        groups[group] += int(self_us) / 1000
    return dict(groups)


def in_process_costs(python: str, env: dict[str, str]) -> dict[str, float]:
    """Milliseconds, in a fresh interpreter with the standard parts imported, of accel's
    import, plugin discovery (entry points + registration + the first hook call) and the
    command's argument parsing."""
    code = f"""
import time, json
import {STANDARD_PARTS}
t0 = time.perf_counter()
import accel.cli, accel.registry
t1 = time.perf_counter()
reg = accel.registry.Registry()
reg.accelerators()
t2 = time.perf_counter()
argv = ["run", "--accel", "kvm", "-M", "microvm", "x.bin"]
accel.cli.build_parser(argv).parse_args(argv)
t3 = time.perf_counter()
print(json.dumps({{"import accel.cli + accel.registry": t1 - t0,
                  "plugin discovery (entry points, plugin imports, first hook)": t2 - t1,
                  "run's parser (imports accel.commands.run and the runner)": t3 - t2}}))
"""
    out = subprocess.run([python, "-c", code], env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"in-process timing failed: {out.stderr.strip()}")
    import json

    return {k: v * 1000 for k, v in json.loads(out.stdout).items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--accel", default="kvm")
    ap.add_argument("--markdown", action="store_true", help="print a table for docs")
    ap.add_argument("--compare", metavar="DIR", help="also run accel from this source tree")
    ap.add_argument("--where", action="store_true", help="say where accel's milliseconds go")
    args = ap.parse_args(argv)
    qemu = shutil.which("qemu-system-x86_64")
    python = sys.executable
    with tempfile.TemporaryDirectory(prefix="accel-bench-") as tmp:
        image = Path(tmp) / "tiny.bin"
        os.chdir(tmp)  # `python -m accel` puts the working directory first on sys.path
        tiny_image(image)
        env = dict(os.environ)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
        accel = accel_command(python)
        cmds: dict[str, list[str]] = {
            "accel run": [*accel, "run", "--accel", args.accel, "-M", "microvm", str(image)],
            "python -c pass": [python, "-c", "pass"],
            "python -c 'import <standard parts>'": [python, "-c", f"import {STANDARD_PARTS}"],
        }
        if args.accel == "kvm":
            raw = str(Path(__file__).with_name("raw_run.py"))
            cmds["floor: standard parts + raw ioctls"] = [python, raw, "--stdlib", str(image)]
            cmds["raw ioctls alone"] = [python, raw, str(image)]
        envs: dict[str, dict[str, str]] = {}
        if args.compare:
            other = f"accel run ({args.compare})"
            root = Path(args.compare).resolve()
            cmds[other] = [python, "-m", "accel", *cmds["accel run"][len(accel) :]]
            envs[other] = {**env, "PYTHONPATH": f"{root}{os.pathsep}{root / 'plugins'}"}
        if qemu:
            cmds["qemu-system-x86_64"] = [
                qemu, "-accel", args.accel, "-M", "microvm", "-display", "none",
                "-nodefaults", "-no-user-config", "-bios", str(image),
                "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
            ]  # fmt: skip
        for name, cmd in cmds.items():  # warm-up (fills the bytecode cache)
            _w, _r, status = measure(cmd, envs.get(name, env))
            runs_guest = name.startswith(("accel run", "floor", "raw", "qemu"))
            if runs_guest and status != 33:
                print(f"{name}: expected exit status 33, got {status}", file=sys.stderr)
                return 1
        walls: dict[str, list[float]] = {n: [] for n in cmds}
        rss: dict[str, list[int]] = {n: [] for n in cmds}
        for _ in range(args.rounds):
            for name, cmd in cmds.items():
                w, r, _s = measure(cmd, envs.get(name, env))
                walls[name].append(w)
                rss[name].append(r)
        where = {}
        if args.where:
            where = import_times(cmds["accel run"], env)
            where.update(in_process_costs(python, env))
    med = {n: statistics.median(v) * 1000 for n, v in walls.items()}
    lines: list[tuple[str, str, str]] = [
        (f"`{n}`", f"{med[n]:.1f} ms", f"{max(rss[n]) / 1024:.1f} MiB") for n in cmds
    ]
    qemu_ms = med.get("qemu-system-x86_64")
    floor_ms = med.get("floor: standard parts + raw ioctls")
    if qemu_ms:
        lines.append(("**accel run / QEMU**", f"**{med['accel run'] / qemu_ms:.2f}x**", ""))
        for n in cmds:
            if n.startswith("accel run ("):
                lines.append((f"{n} / QEMU", f"{med[n] / qemu_ms:.2f}x", ""))
    if floor_ms:
        added = med["accel run"] - floor_ms
        verdict = "met" if added <= GOAL_MS else "missed"
        lines.append(("accel run / floor", f"{med['accel run'] / floor_ms:.2f}x", ""))
        lines.append(
            (
                "**accel adds to the floor**",
                f"**{added:.1f} ms**",
                f"goal <= {GOAL_MS:.0f} ms: {verdict}",
            )
        )
        if qemu_ms:
            lines.append(("floor / QEMU", f"{floor_ms / qemu_ms:.2f}x", ""))
    for name, ms in where.items():
        lines.append((f"where: {name}", f"{ms:.1f} ms", ""))
    if not qemu_ms:
        lines.append(("qemu-system-x86_64", "not installed: no ratio", ""))
    if args.markdown:
        print(f"| what ({args.rounds} rounds, medians) | wall | peak RSS / note |")
        print("|---|---|---|")
        for row in lines:
            print("| " + " | ".join(row) + " |")
    else:
        for what, value, note in lines:
            print(f"{what.strip('`*'):<44} {value.strip('*'):>14}   {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
