"""Real-mode guest programs (hand-encoded, assembly in the comments) and helpers.

Every program is loaded at guest-physical ``ORG`` (0x1000) and run with CS = DS = 0 in
real mode, in a VM with 64 KiB of RAM at 0.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from accel_kvm import KvmAccelerator, KvmVcpu, KvmVM

from accel import HaltExit, MmioExit, PortIoExit, Registers, real_mode_sregs
from accel.accelerator import CpuSpec, Exit

ORG = 0x1000
RAM = 0x10000

ARITHMETIC = bytes.fromhex(
    "b8 34 12"  # mov ax, 0x1234
    "bb 11 01"  # mov bx, 0x0111
    "01 d8"  # add ax, bx        ; ax = 0x1345
    "b9 07 00"  # mov cx, 7
    "ba 06 00"  # mov dx, 6
    "89 ce"  # mov si, cx        ; si = 7
    "0f af f2"  # imul si, dx       ; si = 42
    "f4"  # hlt
)

PORT_IO = bytes.fromhex(
    "b0 2a"  # mov al, 0x2a
    "e6 10"  # out 0x10, al
    "e4 11"  # in al, 0x11
    "88 c3"  # mov bl, al
    "ba f8 03"  # mov dx, 0x3f8
    "b8 ef be"  # mov ax, 0xbeef
    "ef"  # out dx, ax
    "ed"  # in ax, dx
    "89 c1"  # mov cx, ax
    "f4"  # hlt
)

STRING_OUT = bytes.fromhex(
    "be 00 20"  # mov si, 0x2000
    "b9 04 00"  # mov cx, 4
    "ba 20 00"  # mov dx, 0x20
    "f3 6e"  # rep outsb         ; 4 bytes from ds:si to port 0x20
    "f4"  # hlt
)

MMIO = bytes.fromhex(
    "b8 00 d0"  # mov ax, 0xd000
    "8e d8"  # mov ds, ax        ; ds base 0xd0000 (MMIO, no RAM there)
    "c7 06 10 00 34 12"  # mov word [0x10], 0x1234
    "a1 20 00"  # mov ax, [0x20]
    "f4"  # hlt
)

HALT = bytes.fromhex("f4")  # hlt

OUT_LOOP = bytes.fromhex(
    "e6 10"  # l: out 0x10, al
    "eb fc"  # jmp l
)

PVCLOCK_AT = 0x5000
KVMCLOCK_ENABLE = bytes.fromhex(
    "66 b9 01 4d 56 4b"  # mov ecx, 0x4b564d01   ; MSR_KVM_SYSTEM_TIME_NEW
    "66 b8 01 50 00 00"  # mov eax, 0x5001       ; pvclock at 0x5000 | enable
    "66 31 d2"  # xor edx, edx
    "0f 30"  # wrmsr
    "f4"  # hlt
    "f4"  # hlt                  ; (a second run ends here)
)

CPUID_KVM_FEATURES = bytes.fromhex(
    "66 b8 01 00 00 40"  # mov eax, 0x40000001   ; KVM_CPUID_FEATURES
    "66 31 c9"  # xor ecx, ecx
    "0f a2"  # cpuid
    "66 e7 10"  # out 0x10, eax         ; report EAX
    "f4"  # hlt
)

TRIPLE_FAULT = bytes.fromhex(
    "31 c0"  # xor ax, ax
    "f7 f0"  # div ax            ; #DE with an empty IDT -> #GP -> #DF -> triple fault
)


def boot(acc: KvmAccelerator, code: bytes, *, cpu: CpuSpec | None = None) -> tuple[KvmVM, KvmVcpu]:
    """A VM with 64 KiB RAM at 0, ``code`` at ORG, one vCPU in real mode at ORG."""
    vm = acc.create_vm()
    vm.add_memory(0, RAM)
    vm.write_memory(ORG, code)
    vcpu = vm.create_vcpu(cpu=cpu)
    vcpu.set_sregs(real_mode_sregs(vcpu.get_sregs(), cs=0, ds=0))
    vcpu.set_regs(Registers(rip=ORG, rflags=2))
    return vm, vcpu


def run_to_halt(
    vcpu: KvmVcpu, handler: Callable[[Exit], None] | None = None, limit: int = 100
) -> list[Exit]:
    """Run until HLT, passing port-I/O and MMIO exits to ``handler``; returns the exits."""
    seen: list[Exit] = []
    for _ in range(limit):
        ex = vcpu.run()
        seen.append(ex)
        if isinstance(ex, HaltExit):
            return seen
        if isinstance(ex, (PortIoExit, MmioExit)) and handler is not None:
            handler(ex)
        elif not isinstance(ex, (PortIoExit, MmioExit)):
            raise AssertionError(f"unexpected exit {ex!r}")
    raise AssertionError(f"no HLT within {limit} exits: {seen[-3:]}")


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def map_count() -> int:
    with open("/proc/self/maps") as f:
        return sum(1 for _ in f)
