"""Handles on the real /dev/kvm: memory layout rules, closed handles, no leaks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from accel_kvm import KvmAccelerator

from accel import ClockData, Registers, SpecialRegisters
from accel.errors import (
    GuestMemoryError,
    HandleClosedError,
    InvalidArgumentError,
    MemoryLayoutError,
)

from . import guests
from .guests import boot, fd_count, map_count

pytestmark = pytest.mark.kvm


@pytest.mark.parametrize(
    ("address", "size"),
    [
        (0x1000, 0),  # empty
        (0x1000, -0x1000),  # negative
        (0x1001, 0x1000),  # misaligned address
        (0x1000, 0x1800),  # misaligned size
        (0x0, 0x2000),  # overlaps RAM at 0x1000..0x3000
        (0x2000, 0x4000),  # overlaps RAM
        (0x8000, 0x1000),  # overlaps MMIO 0x8000..0x9000
    ],
)
def test_bad_regions_are_rejected_and_change_nothing(
    acc: KvmAccelerator, address: int, size: int
) -> None:
    with acc.create_vm() as vm:
        vm.add_memory(0x1000, 0x2000)
        vm.add_mmio(0x8000, 0x1000)
        before = (vm.memory_regions, vm.mmio_ranges, fd_count(), map_count())
        for add in (vm.add_memory, vm.add_mmio):
            with pytest.raises(MemoryLayoutError):
                add(address, size)
        assert (vm.memory_regions, vm.mmio_ranges, fd_count(), map_count()) == before


def test_regions_are_sorted_with_distinct_slots(acc: KvmAccelerator) -> None:
    with acc.create_vm() as vm:
        high = vm.add_memory(0x100000, 0x1000)
        low = vm.add_memory(0, 0x1000)
        assert vm.memory_regions == (low, high)
        assert low.slot != high.slot
        vm.write_memory(0x100010, b"hi")
        assert vm.read_memory(0x100010, 2) == b"hi"
        assert bytes(high.view[0x10:0x12]) == b"hi"
        with pytest.raises(GuestMemoryError):
            vm.read_memory(0x0FFF, 2)  # straddles the end of a region


def test_readonly_memory_write_exits_as_mmio(acc: KvmAccelerator) -> None:
    from accel import MmioExit

    vm, cpu = boot(acc, guests.MMIO)
    vm.add_memory(0xD0000, 0x1000, readonly=True)
    ex = cpu.run()
    assert isinstance(ex, MmioExit) and ex.is_write and ex.address == 0xD0010


def test_duplicate_vcpu_index_is_rejected(acc: KvmAccelerator) -> None:
    with acc.create_vm() as vm:
        vm.create_vcpu(0)
        with pytest.raises(InvalidArgumentError):
            vm.create_vcpu(0)
        assert vm.create_vcpu().index == 1
        assert [v.index for v in vm.vcpus] == [0, 1]


def _public_calls(obj: Any) -> dict[str, Callable[[], Any]]:
    from accel import CpuSpec

    calls: dict[str, Callable[[], Any]] = {}
    kind = type(obj).__name__
    if kind == "KvmAccelerator":
        calls = {
            "probe": obj.probe,
            "capabilities": obj.capabilities,
            "check": lambda: obj.check(next(iter(__import__("accel").Capability))),
            "check_extension": lambda: obj.check_extension(0),
            "supported_cpuid": obj.supported_cpuid,
            "vcpu_mmap_size": obj.vcpu_mmap_size,
            "create_vm": obj.create_vm,
            "enter": obj.__enter__,
        }
    elif kind == "KvmVM":
        calls = {
            "capabilities": obj.capabilities,
            "check": lambda: obj.check(next(iter(__import__("accel").Capability))),
            "check_extension": lambda: obj.check_extension(0),
            "add_memory": lambda: obj.add_memory(0x20000, 0x1000),
            "add_mmio": lambda: obj.add_mmio(0x30000, 0x1000),
            "memory_regions": lambda: obj.memory_regions,
            "mmio_ranges": lambda: obj.mmio_ranges,
            "read_memory": lambda: obj.read_memory(0, 1),
            "write_memory": lambda: obj.write_memory(0, b"x"),
            "create_vcpu": lambda: obj.create_vcpu(cpu=CpuSpec()),
            "vcpus": lambda: obj.vcpus,
            "get_clock": obj.get_clock,
            "set_clock": lambda: obj.set_clock(ClockData(1)),
            "pause": obj.pause,
            "resume": obj.resume,
            "enter": obj.__enter__,
        }
    elif kind == "KvmVcpu":
        calls = {
            "get_regs": obj.get_regs,
            "set_regs": lambda: obj.set_regs(Registers()),
            "get_sregs": obj.get_sregs,
            "set_sregs": lambda: obj.set_sregs(SpecialRegisters()),
            "run": obj.run,
            "kick": obj.kick,
            "kvmclock_ctrl": obj.kvmclock_ctrl,
            "enter": obj.__enter__,
        }
    return calls


@pytest.mark.parametrize("closing", ["accelerator", "vm", "vcpu"])
def test_every_call_on_a_closed_handle_raises(closing: str) -> None:
    acc = KvmAccelerator()
    vm, cpu = boot(acc, guests.HALT)
    target = {"accelerator": acc, "vm": vm, "vcpu": cpu}[closing]
    target.close()
    target.close()  # idempotent
    assert target.closed
    # closing a parent closes its children
    handles: dict[str, list[Any]] = {"accelerator": [acc, vm, cpu], "vm": [vm, cpu], "vcpu": [cpu]}
    closed = handles[closing]
    for handle in closed:
        assert handle.closed
        for name, call in _public_calls(handle).items():
            with pytest.raises(HandleClosedError):
                call()
                pytest.fail(f"{type(handle).__name__}.{name} worked on a closed handle")
    acc.close()


def test_closing_a_vcpu_leaves_the_vm_usable(acc: KvmAccelerator) -> None:
    vm, cpu = boot(acc, guests.HALT)
    cpu.close()
    assert vm.vcpus == ()
    with pytest.raises(InvalidArgumentError):
        vm.create_vcpu(0)  # KVM keeps vCPU 0 until the VM is closed
    cpu2 = vm.create_vcpu()
    assert cpu2.index == 1 and cpu2.get_regs().rip == 0xFFF0


def test_close_releases_every_fd_and_mapping() -> None:
    fds, maps = fd_count(), map_count()
    acc = KvmAccelerator()
    for _ in range(3):
        vm, cpu = boot(acc, guests.HALT)
        vm.add_mmio(0xD0000, 0x1000)
        cpu.run()
    acc.close()
    assert (fd_count(), map_count()) == (fds, maps)


def test_held_exit_data_does_not_break_close() -> None:
    fds = fd_count()
    acc = KvmAccelerator()
    vm, cpu = boot(acc, guests.PORT_IO)
    ex = cpu.run()
    region_view = vm.memory_regions[0].view[0:16]
    held = ex.data  # type: ignore[union-attr]
    acc.close()  # must not raise although views are still held
    assert fd_count() == fds
    del held, region_view, ex


def test_thousand_vm_cycles_leak_nothing(acc: KvmAccelerator) -> None:
    acc.capabilities()
    # warm up (first-use allocations of the interpreter and the plugin)
    for _ in range(5):
        with acc.create_vm() as vm:
            vm.add_memory(0, 0x10000)
            vm.create_vcpu()
    fds, maps = fd_count(), map_count()
    for i in range(1000):
        vm = acc.create_vm()
        vm.add_memory(0, 0x10000)
        if i % 10 == 0:
            vm.create_vcpu()
        vm.close()
    assert fd_count() == fds
    assert map_count() == maps
    assert acc.vms == ()
