"""Real-mode guest programs for the snapshot round trips (loaded at 0x1000, CS=DS=0)."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

from accel import VM, HaltExit, PortIoExit, Registers, real_mode_sregs
from accel.accelerator import Accelerator

CODE = 0x1000
COUNTER_AT = 0x2000
TSC_AT = 0x2000
PVCLOCK_AT = 0x3000
MSR_KVM_SYSTEM_TIME_NEW = 0x4B564D01
DONE_PORT = 0x11


def counter_program(limit: int) -> bytes:
    """Count to ``limit`` in the word at 0x2000: each step OUTs the low byte to port 0x10
    and halts (an instruction boundary to pause at); at the end OUT 0x11 and halt."""
    return (
        bytes.fromhex("a10020 40 a30020 e610 f4 3d".replace(" ", ""))
        + struct.pack("<H", limit)
        + bytes.fromhex("75f1 e611 f4")
    )


def pvclock_program() -> bytes:
    """Forever: enable the paravirtual clock at 0x3000 (MSR 0x4b564d01 = 0x3001), store
    RDTSC at 0x2000, OUT to port 0x10 (the host computes the guest's clock reading from the
    guest's TSC and pvclock page, as the guest would), halt."""
    return bytes.fromhex(
        "66b9014d564b"  # mov ecx, 0x4b564d01
        "66b801300000"  # mov eax, 0x3001
        "6631d2"  # xor edx, edx
        "0f30"  # wrmsr
        "0f31"  # rdtsc
        "66a30020"  # mov [0x2000], eax
        "6689160420"  # mov [0x2004], edx
        "e610"  # out 0x10, al
        "f4"  # hlt
        "ebdf"  # jmp 0x1000
    )


def new_vm(acc: Accelerator, program: bytes, ram: int = 0x10000) -> VM:
    vm = acc.create_vm()
    vm.add_memory(0, ram)
    vm.write_memory(CODE, program)
    cpu = vm.create_vcpu()
    cpu.set_sregs(real_mode_sregs(cpu.get_sregs()))
    cpu.set_regs(Registers(rip=CODE, rflags=2))
    return vm


def steps(vm: VM) -> Iterator[int | None]:
    """Run the only vCPU: yield each OUT's byte, then None at the HLT after it (a clean
    point to pause at); return at OUT to DONE_PORT."""
    cpu = vm.vcpus[0]
    while True:
        ex = cpu.run()
        if isinstance(ex, PortIoExit):
            if ex.port == DONE_PORT:
                return
            yield bytes(ex.data)[0]
        elif isinstance(ex, HaltExit):
            yield None
        else:
            raise AssertionError(f"unexpected exit {ex!r}")


@dataclass
class PvClock:
    version: int
    tsc_timestamp: int
    system_time: int
    mul: int
    shift: int
    flags: int

    @classmethod
    def read(cls, vm: VM) -> PvClock:
        raw = vm.read_memory(PVCLOCK_AT, 32)
        version, _, tsc_ts, sys_time, mul, shift, flags = struct.unpack("<IIQQIbB", raw[:30])
        return cls(version, tsc_ts, sys_time, mul, shift, flags)

    def at(self, tsc: int) -> int:
        """The guest's clock (ns) at guest TSC ``tsc``, by the pvclock formula."""
        delta = tsc - self.tsc_timestamp
        sign = -1 if delta < 0 else 1
        delta = abs(delta)
        delta = delta << self.shift if self.shift >= 0 else delta >> -self.shift
        return self.system_time + sign * ((delta * self.mul) >> 32)


def guest_clock_reading(vm: VM) -> int:
    """After the pvclock program's OUT: the guest-visible kvmclock reading it took."""
    (tsc,) = struct.unpack("<Q", vm.read_memory(TSC_AT, 8))
    pv = PvClock.read(vm)
    assert pv.version % 2 == 0 and pv.mul, f"pvclock page not populated: {pv}"
    return pv.at(tsc)
