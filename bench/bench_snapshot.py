"""Snapshot benchmark: save and restore time and bytes written, 64 MiB and 1 GiB guests.

For each usable accelerator (kvm, tcg) and guest size, with guest RAM either *dirty*
(every page holds data), *sparse* (one MiB in 16 holds data, the rest is zero) or
*scattered* (one 4 KiB page in 16 holds data, spread over every MiB):

* ``save``: :func:`accel.snapshot.save` of a paused VM to a file (flushed, not fsynced);
* ``restore``: :func:`accel.snapshot.restore` from that file into a new VM (first pass
  checks every CRC, second pass copies RAM into the new VM), VM creation included;
* the floor, in the same run: writing the guest RAM's memoryview to a file in one call,
  and reading it back with ``readinto`` into a fresh anonymous mapping of the guest's
  size (no framing, no checksums, no validation; page faults included as in a restore);
* ``bytes``: the snapshot's size; ``peak``: the largest Python allocation peak during the
  save / restore (tracemalloc, a separate run), showing RAM is never copied whole.

``--vcpus 1,4`` repeats each figure with that many vCPUs; with the full vCPU state
(``--full``: the VM gets the accelerator's in-kernel irqchip and PIT where it has them,
so the snapshot carries MSRs, XSAVE, LAPIC, PIC/IOAPIC, PIT, CPUID and TSC sections).

Usage: ``python bench/bench_snapshot.py [--sizes 64,1024] [--vcpus 1,4] [--full]
[--repeat N] [--json]``.
Medians of ``--repeat`` runs (default 3 for sizes up to 64 MiB, 1 above). Ratios are
what to compare.
"""

from __future__ import annotations

import argparse
import json
import mmap
import os
import statistics
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import accel
from accel import snapshot
from accel.errors import AccelError

MIB = 1 << 20


def _fill(vm: accel.VM, pattern: str) -> None:
    block = bytearray(os.urandom(MIB))
    for region in vm.memory_regions:
        view = region.view
        step = {"dirty": MIB, "sparse": 16 * MIB, "scattered": 16 * 4096}[pattern]
        width = 4096 if pattern == "scattered" else MIB
        for off in range(0, region.size, step):
            n = min(width, region.size - off)
            view[off : off + n] = block[:n]
            block[0] = (block[0] + 1) & 0xFF  # no two chunks alike


def _make_vm(
    acc: accel.Accelerator, size: int, pattern: str, vcpus: int = 1, full: bool = False
) -> accel.VM:
    caps = acc.capabilities()
    chips = full and caps.supports(accel.Capability.IRQCHIP)
    pit = chips and caps.supports(accel.Capability.PIT)
    vm = acc.create_vm(accel.VmOptions(irqchip=chips, pit=pit))
    vm.add_memory(0, size)
    for _ in range(vcpus):
        vm.create_vcpu()
    _fill(vm, pattern)
    vm.pause()
    return vm


def _timed(fn: Callable[[], Any]) -> float:
    os.sync()  # start each figure with no dirty page cache left by the one before
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _peak(fn: Callable[[], Any]) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def bench_one(
    acc: accel.Accelerator,
    size: int,
    pattern: str,
    repeat: int,
    tmp: str,
    vcpus: int = 1,
    full: bool = False,
) -> dict[str, Any]:
    path = os.path.join(tmp, "vm.snap")
    raw_path = os.path.join(tmp, "ram.raw")
    vm = _make_vm(acc, size, pattern, vcpus, full)
    sections = 0
    save_t, restore_t, floor_w, floor_r = [], [], [], []
    written = 0

    def do_save() -> None:
        nonlocal written, sections
        with open(path, "wb") as f:
            result = snapshot.save(vm, f)
        written, sections = result.bytes_written, result.sections

    def do_restore() -> None:
        with open(path, "rb") as f:
            snapshot.restore(f, acc).close()

    def raw_write() -> None:
        with open(raw_path, "wb") as f:
            for r in vm.memory_regions:
                f.write(r.view)

    def raw_read() -> None:
        target = mmap.mmap(-1, size)
        with open(raw_path, "rb") as f:
            f.readinto(target)
        target.close()

    for _ in range(repeat):
        save_t.append(_timed(do_save))
        restore_t.append(_timed(do_restore))
        floor_w.append(_timed(raw_write))
        floor_r.append(_timed(raw_read))
    save_peak = _peak(do_save)
    restore_peak = _peak(do_restore)
    vm.close()
    for p in (path, raw_path):
        os.unlink(p)
    out = {
        "accelerator": acc.name,
        "size_mib": size // MIB,
        "ram": pattern,
        "vcpus": vcpus,
        "full": full,
        "sections": sections,
        "save_s": statistics.median(save_t),
        "restore_s": statistics.median(restore_t),
        "floor_write_s": statistics.median(floor_w),
        "floor_read_s": statistics.median(floor_r),
        "bytes": written,
        "save_peak_bytes": save_peak,
        "restore_peak_bytes": restore_peak,
    }
    out["save_vs_floor"] = out["save_s"] / out["floor_write_s"]
    out["restore_vs_floor"] = out["restore_s"] / out["floor_read_s"]
    return out


def _line(r: dict[str, Any]) -> str:
    return (
        f"{r['accelerator']:4} {r['size_mib']:5} MiB {r['ram']:6} {r['vcpus']} vCPU"
        f"{' full' if r['full'] else ''} {r['sections']:3} sections  "
        f"save {r['save_s'] * 1e3:8.1f} ms ({r['save_vs_floor']:.1f}x floor)  "
        f"restore {r['restore_s'] * 1e3:8.1f} ms ({r['restore_vs_floor']:.1f}x floor)  "
        f"bytes {r['bytes']:>11,}  peak save/restore "
        f"{r['save_peak_bytes'] / MIB:.1f}/{r['restore_peak_bytes'] / MIB:.1f} MiB"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="64,1024", help="guest sizes in MiB (comma-separated)")
    ap.add_argument("--accels", default="kvm,tcg")
    ap.add_argument("--patterns", default="dirty,sparse,scattered")
    ap.add_argument("--vcpus", default="1", help="vCPU counts (comma-separated)")
    ap.add_argument("--full", action="store_true", help="in-kernel irqchip and PIT too")
    ap.add_argument("--repeat", type=int, default=0, help="runs per figure (0: 3 or 1)")
    ap.add_argument("--dir", default=None, help="where to write (default: the temp dir)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="accel-bench-snap-", dir=args.dir) as tmp:
        for name in args.accels.split(","):
            try:
                acc = accel.open(name)
            except AccelError as exc:
                print(f"# {name}: skipped ({exc})")
                continue
            with acc:
                for size_mib in (int(s) for s in args.sizes.split(",")):
                    for pattern in args.patterns.split(","):
                        for n in (int(v) for v in args.vcpus.split(",")):
                            repeat = args.repeat or (3 if size_mib <= 64 else 1)
                            results.append(
                                bench_one(acc, size_mib * MIB, pattern, repeat, tmp, n, args.full)
                            )
                            if not args.json:
                                print(_line(results[-1]), flush=True)
    if args.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
