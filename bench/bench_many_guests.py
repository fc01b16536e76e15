"""A test rig's throughput: many tiny guests through the Python API in one process, against
one QEMU 7.2 process per guest.

The guest is bench_run.py's tiny exit image (64 KiB, reset vector ``mov al,0x10; out
0xf4,al``: exit status 33). The rig opens the accelerator once and, for each guest,
builds a machine (``accel.runner.run_image``: machine type, CPU model, the debug devices,
RAM, the image at the reset vector), runs it to the exit and closes it, checking the
status every time. QEMU runs ``qemu-system-x86_64 -accel kvm -M microvm -bios IMAGE``
processes one after another for about ``--qemu-seconds`` (as many as fit), each checked
for status 33. Both use the same machine type. It reports guests per second of each and
the ratio (the goal is at least 20x), and with ``--profile`` the top of a cProfile of
the rig's loop.

    python bench/bench_many_guests.py [--guests 1000] [--qemu-seconds 120] [--accel kvm]
                                      [--machine microvm] [--profile] [--markdown]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: What the rig must reach against QEMU's guests per second (docs/performance.md).
GOAL = 20.0


def tiny_image() -> bytes:
    img = bytearray(0x10000)
    img[0xFFF0:0xFFF5] = bytes.fromhex("b010e6f4f4")  # mov al,0x10; out 0xf4,al; hlt
    return bytes(img)


def run_rig(accel_name: str, machine: str, guests: int, image: bytes) -> float:
    """Seconds for ``guests`` guests, one after another, in this process."""
    import accel
    from accel.runner import RunOptions, run_image

    options = RunOptions(machine=machine, timeout=30)
    acc = accel.open(accel_name)
    try:
        run_image(acc, image, options)  # warm-up: imports, capabilities, the first VM
        t0 = time.perf_counter()
        for i in range(guests):
            result = run_image(acc, image, options)
            if result.status != 33:
                raise SystemExit(f"guest {i}: exit status {result.status}, not 33")
        return time.perf_counter() - t0
    finally:
        acc.close()


def run_qemu(
    qemu: str, accel_name: str, machine: str, seconds: float, image: Path
) -> tuple[int, float]:
    """(guests, seconds): QEMU processes one after another until ``seconds`` have passed."""
    cmd = [qemu, "-accel", accel_name, "-M", machine, "-display", "none", "-nodefaults",
           "-no-user-config", "-bios", str(image),
           "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]  # fmt: skip
    subprocess.run(cmd, capture_output=True, check=False)  # warm-up (page cache)
    n = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        done = subprocess.run(cmd, capture_output=True, check=False)
        if done.returncode != 33:
            raise SystemExit(f"QEMU run {n}: exit status {done.returncode}, not 33")
        n += 1
    return n, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--guests", type=int, default=1000)
    ap.add_argument("--qemu-seconds", type=float, default=120.0)
    ap.add_argument("--accel", default="kvm")
    ap.add_argument("--machine", default="microvm")
    ap.add_argument("--profile", action="store_true", help="cProfile the rig's loop")
    ap.add_argument("--markdown", action="store_true", help="print a table for docs")
    args = ap.parse_args(argv)
    image = tiny_image()
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        rig_s = run_rig(args.accel, args.machine, args.guests, image)
        prof.disable()
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(30)
        print(out.getvalue())
    else:
        rig_s = run_rig(args.accel, args.machine, args.guests, image)
    rig_rate = args.guests / rig_s
    rows = [(f"accel, {args.guests} guests in one process", f"{rig_s:.2f} s", f"{rig_rate:.0f}")]
    qemu = shutil.which("qemu-system-x86_64")
    ratio = None
    if qemu and args.qemu_seconds > 0:
        with tempfile.TemporaryDirectory(prefix="accel-bench-") as tmp:
            path = Path(tmp) / "tiny.bin"
            path.write_bytes(image)
            n, q_s = run_qemu(qemu, args.accel, args.machine, args.qemu_seconds, path)
        q_rate = n / q_s
        ratio = rig_rate / q_rate
        rows.append((f"QEMU 7.2, {n} processes", f"{q_s:.2f} s", f"{q_rate:.1f}"))
    if args.markdown:
        print("| what | wall | guests/s |\n|---|---|---|")
        for row in rows:
            print("| " + " | ".join(row) + " |")
        if ratio is not None:
            verdict = "met" if ratio >= GOAL else "missed"
            print(f"| **accel / QEMU** | | **{ratio:.1f}x** (goal >= {GOAL:.0f}x: {verdict}) |")
    else:
        for row in rows:
            print(f"{row[0]:<40} {row[1]:>10} {row[2]:>10} guests/s")
        if ratio is not None:
            print(f"accel/QEMU guests per second: {ratio:.1f}x (goal >= {GOAL:.0f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
