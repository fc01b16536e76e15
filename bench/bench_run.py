"""Whole-process benchmark: ``accel run`` of the tiny exit guest vs QEMU 7.2, same run.

The guest is a 64 KiB flat image whose reset vector runs ``mov al,0x10; out 0xf4,al``:
with isa-debug-exit at 0xF4/4 both programs exit with status 33. Each round runs, in
alternation,

* ``accel run --accel kvm -M microvm IMAGE`` (the ``accel`` script when it has the
  ``run`` command, else ``python -m accel.machine.cli``),
* ``qemu-system-x86_64 -accel kvm -M microvm -bios IMAGE -device isa-debug-exit,...``,
* ``python -c pass``, ``python -c "import accel"`` and, on KVM, bench/raw_run.py: the same
  guest run through raw /dev/kvm ioctls with no accel code (the floor under any Python VMM),

and, with ``--compare DIR``, the same ``accel run`` from another source tree (``DIR`` and
``DIR/plugins`` first on ``PYTHONPATH``, e.g. ``git archive REV accel plugins bin`` unpacked
there: before and after in the same run; a tree without ``bin/accel`` runs through the
wrapper pip generates for a console-script entry point, as it was installed then). It
reports the median wall time and peak RSS of each (``os.wait4`` per child), the ratio
accel/QEMU (the goal is <= 0.6) and the ratios to the raw floor. Python runs with a
bytecode cache, as an installed package has one (``PYTHONDONTWRITEBYTECODE`` is
dropped and ``PYTHONPYCACHEPREFIX`` points at a temporary directory), after one warm-up run
of each command.

    python bench/bench_run.py [--rounds 15] [--accel kvm] [--markdown] [--compare DIR]
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
from pathlib import Path

#: What pip writes for a ``[project.scripts]`` entry point ``accel = "accel.cli:main"``,
#: the command of trees from before ``bin/accel``.
PIP_CONSOLE_SCRIPT = """import re
import sys
from accel.cli import main
if __name__ == '__main__':
    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])
    sys.exit(main())
"""


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
    script = shutil.which("accel", path=str(Path(python).parent)) or shutil.which("accel")
    if script:
        probe = subprocess.run([script, "run", "--help"], capture_output=True, text=True)
        if probe.returncode == 0:
            return [script]
    return [python, "-m", "accel.machine.cli"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--accel", default="kvm")
    ap.add_argument("--markdown", action="store_true", help="print a table for docs")
    ap.add_argument("--compare", metavar="DIR", help="also run accel from this source tree")
    args = ap.parse_args(argv)
    qemu = shutil.which("qemu-system-x86_64")
    python = sys.executable
    with tempfile.TemporaryDirectory(prefix="accel-bench-") as tmp:
        image = Path(tmp) / "tiny.bin"
        tiny_image(image)
        env = dict(os.environ)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
        accel = accel_command(python)
        cmds: dict[str, list[str]] = {
            "accel run": [*accel, "run", "--accel", args.accel, "-M", "microvm", str(image)],
            "python -c pass": [python, "-c", "pass"],
            "python -c 'import accel'": [python, "-c", "import accel"],
        }
        if args.accel == "kvm":
            cmds["raw ioctl floor"] = [
                python,
                str(Path(__file__).with_name("raw_run.py")),
                str(image),
            ]
        envs: dict[str, dict[str, str]] = {}
        if args.compare:
            other = f"accel run ({args.compare})"
            root = Path(args.compare).resolve()
            script = root / "bin" / "accel"
            if not script.exists():  # a tree from before bin/accel: pip's console script
                script = Path(tmp) / "accel-console-script"
                script.write_text(PIP_CONSOLE_SCRIPT)
            cmds[other] = [python, str(script), *cmds["accel run"][len(accel) :]]
            envs[other] = {**env, "PYTHONPATH": f"{root}{os.pathsep}{root / 'plugins'}"}
        if qemu:
            cmds["qemu-system-x86_64"] = [
                qemu, "-accel", args.accel, "-M", "microvm", "-display", "none",
                "-nodefaults", "-no-user-config", "-bios", str(image),
                "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
            ]  # fmt: skip
        for name, cmd in cmds.items():  # warm-up (fills the bytecode cache)
            _w, _r, status = measure(cmd, envs.get(name, env))
            runs_guest = name.startswith("accel run") or name in (
                "qemu-system-x86_64",
                "raw ioctl floor",
            )
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
    med = {n: statistics.median(v) for n, v in walls.items()}
    ratio = med["accel run"] / med["qemu-system-x86_64"] if qemu else None
    if args.markdown:
        print(f"| what ({args.rounds} rounds, medians) | wall | peak RSS |")
        print("|---|---|---|")
        for n in cmds:
            print(f"| `{n}` | {med[n] * 1000:.1f} ms | {max(rss[n]) / 1024:.1f} MiB |")
        if ratio is not None:
            print(f"| **accel run / QEMU** | **{ratio:.2f}x** (goal <= 0.6x) | |")
            for n in cmds:
                if n.startswith("accel run ("):
                    other_ratio = med[n] / med["qemu-system-x86_64"]
                    print(f"| {n} / QEMU | {other_ratio:.2f}x | |")
        if "raw ioctl floor" in med:
            floor = med["raw ioctl floor"]
            print(f"| accel run / raw ioctl floor | {med['accel run'] / floor:.2f}x | |")
            if qemu:
                print(f"| raw ioctl floor / QEMU | {floor / med['qemu-system-x86_64']:.2f}x | |")
    else:
        for n in cmds:
            print(f"{n:<28} {med[n] * 1000:8.1f} ms   {max(rss[n]) / 1024:6.1f} MiB")
        if ratio is not None:
            verdict = "meets" if ratio <= 0.6 else "misses"
            print(f"accel run / qemu = {ratio:.2f}x ({verdict} the 0.6x goal)")
            for n in cmds:
                if n.startswith("accel run ("):
                    print(f"{n} / qemu = {med[n] / med['qemu-system-x86_64']:.2f}x")
        if "raw ioctl floor" in med:
            floor = med["raw ioctl floor"]
            print(f"accel run / raw ioctl floor = {med['accel run'] / floor:.2f}x")
            if qemu:
                print(f"raw ioctl floor / qemu = {floor / med['qemu-system-x86_64']:.2f}x")
        else:
            print("qemu-system-x86_64 not installed: no ratio")
    return 0


if __name__ == "__main__":
    sys.exit(main())
