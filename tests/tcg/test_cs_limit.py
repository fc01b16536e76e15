"""The real-mode code-segment limit on TCG (issue #15: one behaviour for an all-zero
image): an IP that runs past 0xFFFF raises #GP(0) through the IVT, as KVM does, instead
of unicorn's run into the next 64 KiB."""

from __future__ import annotations

import struct

import pytest
from accel_tcg.accelerator import TcgAccelerator

import accel
from accel import HaltExit, Registers, real_mode_sregs

CS = 0x100


def _run(
    acc: accel.Accelerator, code: bytes, *, at_end: bool = True
) -> tuple[object, int, int, tuple[int, ...]]:
    """Run ``code`` ending at CS:0xFFFF (or at CS:0x1000); IVT vector v -> HLT at 0:0x2000+v.
    Returns (exit, vector reached, sp, the 3 words on the stack)."""
    with acc.create_vm() as vm:
        vm.add_memory(0, 0x100000)
        vm.write_memory(0, b"".join(struct.pack("<HH", 0x2000 + v, 0) for v in range(256)))
        vm.write_memory(0x2000, b"\xf4" * 256)
        ip = 0x10000 - len(code) if at_end else 0x1000
        vm.write_memory((CS << 4) + ip, code)
        cpu = vm.create_vcpu(0)
        cpu.set_sregs(real_mode_sregs(cpu.get_sregs(), cs=CS))
        cpu.set_regs(Registers(rip=ip, rflags=2, rsp=0x8000))
        ex = cpu.run()
        regs = cpu.get_regs()
        frame = struct.unpack("<HHH", vm.read_memory(regs.rsp, 6))
        return ex, regs.rip - 1 - 0x2000, regs.rsp, frame


@pytest.fixture
def tcg() -> TcgAccelerator:
    return TcgAccelerator()


@pytest.mark.parametrize(
    ("code", "vector", "pushed"),
    [
        (b"\x90" * 4, 13, 0x0000),  # the next instruction starts at IP 0x10000
        (b"\x90\x90\x90\xb8", 13, 0xFFFF),  # mov ax, imm16 straddles the limit
        (b"\x90\x66\xb8", 13, 0xFFFE),  # mov eax, imm32 straddles it
        (b"\xff\xff", 6, 0xFFFE),  # an invalid opcode that fits is #UD, not #GP
    ],
)
def test_ip_past_the_limit_is_gp(
    tcg: TcgAccelerator, code: bytes, vector: int, pushed: int
) -> None:
    ex, got, sp, frame = _run(tcg, code)
    assert isinstance(ex, HaltExit)
    assert (got, sp, frame[0], frame[1]) == (vector, 0x7FFA, pushed, CS)


def test_code_within_the_segment_is_unaffected(tcg: TcgAccelerator) -> None:
    # a loop well inside the segment: mov cx,1000; l: loop l; hlt
    ex, _vector, sp, _ = _run(tcg, bytes.fromhex("b9e803e2fef4"), at_end=False)
    assert isinstance(ex, HaltExit) and sp == 0x8000


@pytest.mark.kvm
@pytest.mark.parametrize("code", [b"\x90" * 4, b"\x90\x90\x90\xb8", b"\x90\x66\xb8", b"\xff\xff"])
def test_same_frame_as_kvm(tcg: TcgAccelerator, code: bytes) -> None:
    from accel_kvm import KvmAccelerator

    with KvmAccelerator() as kvm:
        want = _run(kvm, code)
    got = _run(tcg, code)
    assert got[1:] == want[1:] and type(got[0]) is type(want[0])


def _fresh_cpu(tcg: TcgAccelerator, code: bytes) -> tuple[accel.VM, accel.Vcpu]:
    vm = tcg.create_vm()
    vm.add_memory(0, 0x10000)
    vm.write_memory(0x1000, code)
    cpu = vm.create_vcpu(0)
    cpu.set_sregs(real_mode_sregs(cpu.get_sregs()))
    cpu.set_regs(Registers(rip=0x1000, rflags=2))
    return vm, cpu


def test_host_write_between_runs_replaces_translated_code(tcg: TcgAccelerator) -> None:
    vm, cpu = _fresh_cpu(tcg, bytes.fromhex("b00af4"))  # mov al,10; hlt
    with vm:
        assert isinstance(cpu.run(), HaltExit) and cpu.get_regs().rax & 0xFF == 10
        vm.write_memory(0x1000, bytes.fromhex("b014f4"))  # mov al,20; hlt
        cpu.set_regs(Registers(rip=0x1000, rflags=2))
        assert isinstance(cpu.run(), HaltExit) and cpu.get_regs().rax & 0xFF == 20
