"""TCG plugin benchmark: guest instructions/s (TCG vs KVM) and port-I/O exits/s, one run.

Measured in the same process, medians of ``--repeat`` runs:

* a compute loop (``add eax,ecx; dec ecx; jnz``: 3 instructions per iteration) on the
  tcg accelerator, on raw unicorn (the floor: ``emu_start`` with no accel layer) and on
  kvm when /dev/kvm is usable;
* a port-I/O loop (``out 0x10,al; jmp``): exits/s through ``Vcpu.run()`` on tcg, on raw
  unicorn with an OUT hook that returns at once (the floor: no handoff to a caller), and
  on kvm;
* SMP on tcg (``thread=single``): the compute loop on 2 and 4 vCPUs of one VM at once,
  aggregate guest instructions/s (one vCPU emulates at a time, in instruction-count
  slices), and the same 1-vCPU loop with ``thread=multi`` (no scheduler at all);
* memory: the RSS one idle VM (one vCPU that ran to a HLT) adds, over 20 VMs, with the
  default translation buffer and with unicorn's 1 GiB (``tb-size=1024``).

Usage: ``python bench/bench_tcg.py [--repeat N] [--json]``. Ratios are what to compare.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import os
import queue
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

import accel
from accel import HaltExit, PortIoExit, Registers, Segment, real_mode_sregs

# 32-bit code: mov ecx, N; xor eax, eax; l: add eax, ecx; dec ecx; jnz l; hlt
COMPUTE_PREFIX = bytes.fromhex("b9")
COMPUTE_SUFFIX = bytes.fromhex("31 c0 01 c8 ff c9 75 fa f4")
# l: out 0x10, al; jmp l
OUT_LOOP = bytes.fromhex("e6 10 eb fc")
LOAD = 0x1000


def compute_code(iterations: int) -> bytes:
    return COMPUTE_PREFIX + iterations.to_bytes(4, "little") + COMPUTE_SUFFIX


def _flat(selector: int, type_: int) -> Segment:
    return Segment(base=0, limit=0xFFFFFFFF, selector=selector, type=type_, db=1, g=1)


def _vcpu(
    acc: accel.Accelerator, code: bytes, *, protected: bool = False
) -> tuple[accel.VM, accel.Vcpu]:
    """A vCPU at ``code``: real mode, or flat 32-bit protected mode set through sregs.

    The compute loop runs in protected mode: under nested virtualization KVM may have
    to emulate real-mode code instruction by instruction, which measures its emulator,
    not the hardware.
    """
    vm = acc.create_vm()
    vm.add_memory(0, 0x10000)
    vm.write_memory(LOAD, code)
    cpu = vm.create_vcpu()
    sregs = real_mode_sregs(cpu.get_sregs(), cs=0)
    if protected:
        sregs.cs = _flat(0x08, 0xB)
        for name in ("ds", "es", "fs", "gs", "ss"):
            setattr(sregs, name, _flat(0x10, 0x3))
        sregs.cr0 |= 1
    cpu.set_sregs(sregs)
    cpu.set_regs(Registers(rip=LOAD, rflags=2))
    return vm, cpu


def accel_compute(acc: accel.Accelerator, iterations: int) -> float:
    """Seconds to run the compute loop to its HLT (VM set-up excluded)."""
    vm, cpu = _vcpu(acc, compute_code(iterations), protected=True)
    with vm:
        started = time.perf_counter()
        ex = cpu.run()
        elapsed = time.perf_counter() - started
        assert isinstance(ex, HaltExit), ex
        assert cpu.get_regs().rcx == 0
    return elapsed


def accel_exits(acc: accel.Accelerator, exits: int) -> float:
    """Seconds for ``exits`` port-I/O exits through ``run()``."""
    vm, cpu = _vcpu(acc, OUT_LOOP)
    with vm:
        run = cpu.run
        started = time.perf_counter()
        for _ in range(exits):
            ex = run()
        elapsed = time.perf_counter() - started
        assert isinstance(ex, PortIoExit), ex
    return elapsed


def smp_compute(acc: accel.Accelerator, ncpus: int, iterations: int) -> float:
    """Seconds for ``ncpus`` vCPUs of one VM, each on its own caller thread, to all run the
    compute loop to its HLT."""
    vm, first = _vcpu(acc, compute_code(iterations), protected=True)
    with vm:
        cpus = [first]
        for _ in range(ncpus - 1):
            cpu = vm.create_vcpu()
            cpu.set_sregs(first.get_sregs())
            cpu.set_regs(Registers(rip=LOAD, rflags=2))
            cpus.append(cpu)
        exits: list[object] = []
        threads = [threading.Thread(target=lambda c=c: exits.append(c.run())) for c in cpus]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - started
        assert len(exits) == ncpus and all(isinstance(e, HaltExit) for e in exits), exits
    return elapsed


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def idle_vm_rss(acc: accel.Accelerator, vms: int = 20) -> float:
    """MiB of resident memory one idle VM (a vCPU that ran to HLT, 64 KiB RAM) adds."""
    made: list[accel.VM] = []

    def one() -> accel.VM:
        vm, cpu = _vcpu(acc, b"\xf4")
        assert isinstance(cpu.run(), HaltExit)
        return vm

    warm = one()
    gc.collect()
    before = _rss()
    made = [one() for _ in range(vms)]
    gc.collect()
    per_vm = (_rss() - before) / vms / 2**20
    for vm in (*made, warm):
        vm.close()
    return per_vm


def handoff(rounds: int) -> float:
    """Seconds for ``rounds`` round trips between two threads over two SimpleQueues.

    The floor of any design that runs the engine on a worker thread and parks it in a
    hook until the caller's next ``run()``.
    """
    to_worker: queue.SimpleQueue[int] = queue.SimpleQueue()
    to_caller: queue.SimpleQueue[int] = queue.SimpleQueue()

    def worker() -> None:
        for i in range(rounds):
            to_caller.put(i)
            to_worker.get()

    thread = threading.Thread(target=worker)
    started = time.perf_counter()
    thread.start()
    for _ in range(rounds):
        to_caller.get()
        to_worker.put(0)
    thread.join()
    return time.perf_counter() - started


def _raw_engine(code: bytes, mode32: bool = False) -> Any:
    unicorn: Any = importlib.import_module("unicorn")

    uc = unicorn.Uc(unicorn.UC_ARCH_X86, unicorn.UC_MODE_32 if mode32 else unicorn.UC_MODE_16)
    uc.mem_map(0, 0x10000)
    uc.mem_write(LOAD, code)
    return uc


def raw_compute(iterations: int) -> float:
    uc = _raw_engine(compute_code(iterations), mode32=True)
    started = time.perf_counter()
    uc.emu_start(LOAD, 0xFFFF_FFFF)
    return time.perf_counter() - started


def raw_exits(exits: int) -> float:
    unicorn: Any = importlib.import_module("unicorn")
    UC_X86_INS_OUT = importlib.import_module("unicorn.x86_const").UC_X86_INS_OUT

    uc = _raw_engine(OUT_LOOP)
    left = [exits]

    def on_out(uc: Any, port: int, size: int, value: int, _ud: object) -> None:
        left[0] -= 1
        if not left[0]:
            uc.emu_stop()

    uc.hook_add(unicorn.UC_HOOK_INSN, on_out, None, 1, 0, UC_X86_INS_OUT)
    started = time.perf_counter()
    uc.emu_start(LOAD, 0xFFFF_FFFF)
    return time.perf_counter() - started


def median_rate(work: int, run: Callable[[], float], repeat: int) -> float:
    return work / statistics.median(run() for _ in range(repeat))


def calibrated(run: Callable[[int], float], target: float, start: int = 10_000) -> int:
    """An iteration count for which ``run`` takes about ``target`` seconds."""
    n = start
    while True:
        elapsed = run(n)
        if elapsed >= target / 10 or n >= 1 << 30:
            return max(start, min(int(n * target / max(elapsed, 1e-9)), 0xFFFFFFFF))
        n *= 10


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=0.5, help="target time of one run")
    parser.add_argument("--exits", type=int, default=20_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    reg = accel.Registry()
    tcg = reg.create("tcg")
    kvm: accel.Accelerator | None = None
    kvm_reason = ""
    try:
        kvm = reg.create("kvm")
        avail = kvm.probe()
        if not avail:
            kvm_reason, kvm = avail.reason, None
    except accel.AccelError as exc:
        kvm_reason = str(exc)

    repeat = args.repeat
    rows: dict[str, float | None] = {}
    counts: dict[str, int] = {}

    def compute(name: str, run: Callable[[int], float]) -> None:
        n = counts[name] = calibrated(run, args.seconds)
        rows[name] = median_rate(3 * n + 3, lambda: run(n), repeat)

    compute("tcg compute (guest instr/s)", lambda n: accel_compute(tcg, n))
    compute("raw unicorn compute (guest instr/s)", raw_compute)
    if kvm is not None:
        hw = kvm
        compute("kvm compute (guest instr/s)", lambda n: accel_compute(hw, n))
    else:
        rows["kvm compute (guest instr/s)"] = None
    rows["tcg port-I/O exits/s (run())"] = median_rate(
        args.exits, lambda: accel_exits(tcg, args.exits), repeat
    )
    rows["raw unicorn OUT hooks/s (no handoff)"] = median_rate(
        args.exits, lambda: raw_exits(args.exits), repeat
    )
    rows["thread handoff round trips/s (floor)"] = median_rate(
        args.exits, lambda: handoff(args.exits), repeat
    )
    rows["kvm port-I/O exits/s (run())"] = (
        median_rate(args.exits, lambda: accel_exits(kvm, args.exits), repeat) if kvm else None
    )
    n = counts["tcg compute (guest instr/s)"]
    multi = reg.open("tcg,thread=multi")
    rows["tcg compute, thread=multi (guest instr/s)"] = median_rate(
        3 * n + 3, lambda: accel_compute(multi, n), repeat
    )
    multi.close()
    for ncpus in (2, 4):
        per = max(n // ncpus, 1)
        rows[f"tcg {ncpus}-vCPU aggregate compute (guest instr/s)"] = median_rate(
            ncpus * (3 * per + 3), lambda k=ncpus, m=per: smp_compute(tcg, k, m), repeat
        )
    rows["tcg idle VM RSS (MiB, default tb-size)"] = idle_vm_rss(tcg)
    big = reg.open("tcg,tb-size=1024")
    rows["tcg idle VM RSS (MiB, tb-size=1024)"] = idle_vm_rss(big)
    big.close()
    tcg.close()
    if kvm:
        kvm.close()

    if args.json:
        out = {"rows": rows, "iterations": counts, "kvm_unavailable": kvm_reason or None}
        print(json.dumps(out, indent=2))
        return 0
    print("| measurement | median | ratio |")
    print("|---|---|---|")
    ratio_base = {
        "tcg compute (guest instr/s)": "raw unicorn compute (guest instr/s)",
        "kvm compute (guest instr/s)": "tcg compute (guest instr/s)",
        "tcg port-I/O exits/s (run())": "thread handoff round trips/s (floor)",
        "raw unicorn OUT hooks/s (no handoff)": "tcg port-I/O exits/s (run())",
        "kvm port-I/O exits/s (run())": "tcg port-I/O exits/s (run())",
        "tcg compute, thread=multi (guest instr/s)": "tcg compute (guest instr/s)",
        "tcg 2-vCPU aggregate compute (guest instr/s)": "tcg compute (guest instr/s)",
        "tcg 4-vCPU aggregate compute (guest instr/s)": "tcg compute (guest instr/s)",
        "tcg idle VM RSS (MiB, default tb-size)": "tcg idle VM RSS (MiB, tb-size=1024)",
    }
    for name, value in rows.items():
        if value is None:
            print(f"| {name} | n/a ({kvm_reason}) | |")
            continue
        base = rows.get(ratio_base.get(name, ""))
        ratio = f"{value / base:.2f}x {ratio_base[name].split(' (')[0]}" if base else ""
        shown = f"{value:.2f}" if "MiB" in name else f"{value:,.0f}"
        print(f"| {name} | {shown} | {ratio} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
