#!/usr/bin/env python3
"""The cost of the userspace interrupt controllers on KVM, in one run.

Run: ``python bench/bench_irqchip.py`` (needs a usable /dev/kvm). A real-mode guest does
N port writes (``out 0x80, al`` in a ``loop``) and exits through isa-debug-exit; the
whole ``Machine.run`` is timed with the interrupt controller in KVM
(``pc,kernel-irqchip=on``) and modelled in userspace (``pc,kernel-irqchip=off``: every
exit takes the device lock and checks what to inject). Rounds alternate between the two so
host noise hits both alike; the medians and the time per exit are printed.
"""

from __future__ import annotations

import argparse
import statistics
import time

import accel
from accel import Registers, real_mode_sregs
from accel.machine import Machine

SPECS = ("pc,kernel-irqchip=on", "pc,kernel-irqchip=off")


def _program(n: int) -> bytes:
    # mov cx, n; 1: out 0x80, al; loop 1b; mov al, 0x10; out 0xf4, al; hlt
    return bytes([0xB9]) + n.to_bytes(2, "little") + bytes.fromhex("e680e2fcb010e6f4f4")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exits", type=int, default=20000, help="port exits per run (<65536)")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    code = _program(args.exits)
    acc = accel.open("kvm")
    times: dict[str, list[float]] = {s: [] for s in SPECS}
    try:
        for _ in range(args.rounds):
            for spec in SPECS:
                with Machine(acc, spec, devices=["isa-debug-exit,iobase=0xf4,iosize=1"]) as m:
                    assert m.vm is not None
                    m.vm.write_memory(0x1000, code)
                    cpu = m.vcpus[0]
                    cpu.set_sregs(real_mode_sregs(cpu.get_sregs(), cs=0, ds=0))
                    cpu.set_regs(Registers(rip=0x1000, rflags=2))
                    start = time.perf_counter()
                    result = m.run(timeout=120)
                    times[spec].append(time.perf_counter() - start)
                    assert result.kind == "debug-exit", result
    finally:
        acc.close()
    med = {s: statistics.median(v) for s, v in times.items()}
    for spec in SPECS:
        print(f"{spec}: {args.exits} port exits, median {med[spec] * 1e3:.1f} ms, "
              f"{med[spec] / args.exits * 1e6:.1f} us/exit")  # fmt: skip
    print(f"userspace / in-kernel: {med[SPECS[1]] / med[SPECS[0]]:.2f}x")


if __name__ == "__main__":
    main()
