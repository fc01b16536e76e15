from __future__ import annotations

import io
from collections.abc import Iterator

import pytest

import accel
from accel import Accelerator, AccelError, CapabilityAnswer, ClockFlags, Registers
from tests.fakes import FakeAccelerator, FakeVM, all_answers

#: The fake's clock here: stable and carrying wall time, so a catch-up restore adds it.
CLOCK_FLAGS = ClockFlags.TSC_STABLE | ClockFlags.REALTIME


def fake_accelerator() -> FakeAccelerator:
    adjust_clock = CapabilityAnswer.yes(int(CLOCK_FLAGS), "fake")
    return FakeAccelerator(caps=all_answers(ADJUST_CLOCK=adjust_clock))


def make_vm(acc: FakeAccelerator, ram: int = 64 * 1024, vcpus: int = 1) -> FakeVM:
    vm = acc.create_vm()
    vm.add_memory(0, ram)
    vm.add_memory(0x100000, 16 * 4096)
    for i in range(vcpus):
        cpu = vm.create_vcpu()
        cpu.set_regs(Registers(rax=0x1234 + i, rip=0x1000, rsp=0x8000, rflags=0x202))
    for off in range(0, ram, 4096 * 3):
        vm.write_memory(off, bytes([off // 4096 % 251 + 1]) * 100)
    vm.write_memory(0x100000 + 5, b"second region")
    return vm


@pytest.fixture
def acc() -> FakeAccelerator:
    return fake_accelerator()


@pytest.fixture
def vm(acc: FakeAccelerator) -> FakeVM:
    return make_vm(acc, vcpus=2)


@pytest.fixture
def snapshot_bytes(vm: FakeVM) -> bytes:
    vm.pause()
    buf = io.BytesIO()
    from accel import snapshot

    snapshot.save(vm, buf, machine_type="test-1.0", cpu_model="host")
    return buf.getvalue()


def open_or_skip(name: str) -> Iterator[Accelerator]:
    """The named real accelerator for one test, skipping with the reason where unusable."""
    try:
        real = accel.open(name)
    except AccelError as exc:
        pytest.skip(f"{name} is not usable here: {exc}")
    with real:
        yield real


@pytest.fixture
def kvm() -> Iterator[Accelerator]:
    yield from open_or_skip("kvm")


@pytest.fixture
def tcg() -> Iterator[Accelerator]:
    yield from open_or_skip("tcg")
