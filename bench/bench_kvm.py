#!/usr/bin/env python3
"""KVM plugin benchmarks: accel's handles against a raw-ioctl floor, in one run.

Run: ``python bench/bench_kvm.py`` (needs a usable /dev/kvm). Prints, for each measure,
the raw figure, accel's figure and the ratio (goals from issues 3 and 11):

* cached capability query vs one KVM_CHECK_EXTENSION ioctl (goal: >= 10x faster)
* port-I/O exits per second through ``Vcpu.run()`` vs a raw KVM_RUN loop (goal: >= 0.8x)
* VM create + close through ``create_vm()`` vs raw KVM_CREATE_VM + close (goal: >= 0.9x)

Each figure is the median of several rounds; raw and accel rounds alternate so host noise
hits both alike.
"""

from __future__ import annotations

import argparse
import ctypes
import fcntl
import mmap
import os
import statistics
import sys
import time
from collections.abc import Callable

from accel_kvm import KvmAccelerator, bindings, ioctls

from accel import Capability, Registers, real_mode_sregs

# out 0x10, al ; jmp back
OUT_LOOP = bytes.fromhex("e6 10 eb fc")
ORG = 0x1000


def per_second(fn: Callable[[int], None], n: int) -> float:
    t0 = time.perf_counter()
    fn(n)
    return n / (time.perf_counter() - t0)


def compare(
    raw: Callable[[int], None], ours: Callable[[int], None], n: int, rounds: int
) -> tuple[float, float]:
    raw_rates, our_rates = [], []
    raw(max(1, n // 10))
    ours(max(1, n // 10))
    for _ in range(rounds):
        raw_rates.append(per_second(raw, n))
        our_rates.append(per_second(ours, n))
    return statistics.median(raw_rates), statistics.median(our_rates)


# --------------------------------------------------------------------------- raw floor


class RawGuest:
    """The same OUT-loop guest set up with bare ioctls (no accel code at all)."""

    def __init__(self, kvm_fd: int) -> None:
        self.vm = fcntl.ioctl(kvm_fd, ioctls.KVM_CREATE_VM, 0)
        self.ram = mmap.mmap(-1, 0x10000, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        self.ram[ORG : ORG + len(OUT_LOOP)] = OUT_LOOP
        anchor = ctypes.c_char.from_buffer(self.ram)
        region = bindings.kvm_userspace_memory_region(0, 0, 0, 0x10000, ctypes.addressof(anchor))
        del anchor
        fcntl.ioctl(self.vm, ioctls.KVM_SET_USER_MEMORY_REGION, region)
        self.cpu = fcntl.ioctl(self.vm, ioctls.KVM_CREATE_VCPU, 0)
        size = fcntl.ioctl(kvm_fd, ioctls.KVM_GET_VCPU_MMAP_SIZE, 0)
        self.run = mmap.mmap(self.cpu, size, flags=mmap.MAP_SHARED)
        sregs = bindings.kvm_sregs()
        fcntl.ioctl(self.cpu, ioctls.KVM_GET_SREGS, sregs)
        for name in ("cs", "ds", "es", "fs", "gs", "ss"):
            seg = getattr(sregs, name)
            seg.base, seg.selector = 0, 0
        fcntl.ioctl(self.cpu, ioctls.KVM_SET_SREGS, sregs)
        regs = bindings.kvm_regs()
        regs.rip, regs.rflags = ORG, 2
        fcntl.ioctl(self.cpu, ioctls.KVM_SET_REGS, regs)
        self.view = memoryview(self.run)

    def loop(self, n: int) -> None:
        ioctl, fd, run, view = fcntl.ioctl, self.cpu, ioctls.KVM_RUN, self.view
        u32 = view.cast("I")
        u16 = view.cast("H")
        for _ in range(n):
            ioctl(fd, run, 0)
            # read what any VMM must read: exit reason, port, data
            if u32[2] != bindings.KVM_EXIT_IO or u16[bindings.RUN_IO_PORT >> 1] != 0x10:
                raise RuntimeError("unexpected exit")
        u32.release()
        u16.release()

    def close(self) -> None:
        self.view.release()
        self.run.close()
        os.close(self.cpu)
        os.close(self.vm)
        self.ram.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--exits", type=int, default=50_000)
    parser.add_argument("--vms", type=int, default=1_000)
    parser.add_argument("--queries", type=int, default=200_000)
    args = parser.parse_args()

    acc = KvmAccelerator()
    av = acc.probe()
    if not av:
        print(f"kvm unavailable: {av.reason}", file=sys.stderr)
        return 2
    kvm_fd = acc.fd
    rows: list[tuple[str, str, float, float, float, float]] = []  # goal 0: informational

    # 1. capability query: cached answer vs one KVM_CHECK_EXTENSION ioctl
    acc.capabilities()
    cap = Capability.ADJUST_CLOCK

    def raw_query(n: int) -> None:
        ioctl, req = fcntl.ioctl, ioctls.KVM_CHECK_EXTENSION
        for _ in range(n):
            ioctl(kvm_fd, req, bindings.KVM_CAP_ADJUST_CLOCK)

    def cached_check(n: int) -> None:
        check = acc.check
        for _ in range(n):
            check(cap)

    def cached_caps(n: int) -> None:
        capabilities = acc.capabilities
        for _ in range(n):
            capabilities()[cap]

    raw, ours = compare(raw_query, cached_check, args.queries, args.rounds)
    rows.append(("capability: acc.check(cap)", "queries/s", raw, ours, ours / raw, 10.0))
    raw, ours = compare(raw_query, cached_caps, args.queries, args.rounds)
    rows.append(("  (info) acc.capabilities()[cap]", "queries/s", raw, ours, ours / raw, 0.0))

    # 2. port-I/O exits through Vcpu.run() vs the raw KVM_RUN loop
    raw_guest = RawGuest(kvm_fd)
    vm = acc.create_vm()
    vm.add_memory(0, 0x10000)
    vm.write_memory(ORG, OUT_LOOP)
    cpu = vm.create_vcpu()
    cpu.set_sregs(real_mode_sregs(cpu.get_sregs(), cs=0, ds=0))
    cpu.set_regs(Registers(rip=ORG, rflags=2))

    def ours_loop(n: int) -> None:
        run = cpu.run
        for _ in range(n):
            ex = run()
            if ex.port != 0x10:  # type: ignore[union-attr]
                raise RuntimeError("unexpected exit")

    raw, ours = compare(raw_guest.loop, ours_loop, args.exits, args.rounds)
    rows.append(("port-I/O exits: Vcpu.run()", "exits/s", raw, ours, ours / raw, 0.8))
    vm.close()
    raw_guest.close()

    # 3. VM create + close
    def raw_vm(n: int) -> None:
        ioctl, req, close = fcntl.ioctl, ioctls.KVM_CREATE_VM, os.close
        for _ in range(n):
            close(ioctl(kvm_fd, req, 0))

    def ours_vm(n: int) -> None:
        create = acc.create_vm
        for _ in range(n):
            create().close()

    raw, ours = compare(raw_vm, ours_vm, args.vms, args.rounds)
    rows.append(("VM create+close: create_vm()", "VMs/s", raw, ours, ours / raw, 0.9))
    acc.close()

    print(f"{'measure':40} {'unit':10} {'raw':>12} {'accel':>12} {'ratio':>8} {'goal':>6}")
    ok = True
    for name, unit, raw, ours, ratio, goal in rows:
        met = ratio >= goal
        ok &= met
        goal_text = f">={goal:g}x" if goal else "-"
        verdict = ("ok" if met else "MISSED") if goal else ""
        print(
            f"{name:40} {unit:10} {raw:12,.0f} {ours:12,.0f} {ratio:7.2f}x {goal_text:>6} {verdict}"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
