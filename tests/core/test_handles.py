"""The handle contract the core provides: context managers, idempotent close, typed errors.

Uses the in-memory fake of tests/fakes.py: it implements only the abstract methods,
so what is tested here is the behaviour of accel.accelerator's base classes.
"""

from __future__ import annotations

import pytest

from accel import HaltExit, Registers
from accel.accelerator import IoDirection, MmioExit, PortIoExit
from accel.errors import AccelError, GuestMemoryError, HandleClosedError, InvalidArgumentError
from tests.fakes import FakeAccelerator


def test_close_is_idempotent_and_cascades() -> None:
    acc = FakeAccelerator()
    vm = acc.create_vm()
    cpu = vm.create_vcpu()
    acc.close()
    acc.close()
    assert acc.closed and vm.closed and cpu.closed


def test_use_after_close_raises_a_typed_error_naming_the_handle() -> None:
    with FakeAccelerator("fk") as acc:
        vm = acc.create_vm()
        cpu = vm.create_vcpu()
        vm.add_memory(0, 0x1000)
    for call, handle in [
        (acc.probe, "accelerator 'fk'"),
        (vm.get_clock, "fk VM"),
        (lambda: vm.read_memory(0, 4), "fk VM"),
        (lambda: vm.write_memory(0, b"x"), "fk VM"),
        (cpu.run, "vcpu 0"),
        (cpu.get_regs, "vcpu 0"),
    ]:
        with pytest.raises(HandleClosedError) as info:
            call()
        assert info.value.handle == handle
        assert str(info.value).startswith(f"{handle} is closed")
        assert "new handle" in str(info.value)
        assert isinstance(info.value, AccelError)


def test_entering_a_closed_handle_fails() -> None:
    acc = FakeAccelerator()
    acc.close()
    with pytest.raises(HandleClosedError), acc:
        pass


def test_context_manager_closes_on_error() -> None:
    acc = FakeAccelerator()
    with pytest.raises(RuntimeError), acc:
        raise RuntimeError("inside")
    assert acc.closed


def test_guest_memory_is_bounds_checked() -> None:
    with FakeAccelerator() as acc, acc.create_vm() as vm:
        vm.add_memory(0x1000, 0x1000)
        vm.write_memory(0x1FFC, b"abcd")
        assert vm.read_memory(0x1FFC, 4) == b"abcd"
        for address, size in [(0x1FFD, 4), (0x0, 1), (0x2000, 1), (-1, 1), (0x1000, -1)]:
            with pytest.raises(GuestMemoryError) as info:
                vm.read_memory(address, size)
            assert info.value.address == address
        with pytest.raises(GuestMemoryError, match=r"0x1000\.\.0x2000"):
            vm.write_memory(0x1FFF, b"ab")
        assert vm.read_memory(0x1FFC, 4) == b"abcd"


def test_exit_reply_checks_the_size() -> None:
    ex = PortIoExit(0x70, 1, IoDirection.IN, bytearray(1))
    ex.reply(0x42)
    assert ex.value() == 0x42 and not ex.is_write
    mm = MmioExit(0xFED00000, 4, False, bytearray(4))
    mm.reply(b"\x01\x00\x00\x00")
    assert mm.value() == 1
    with pytest.raises(InvalidArgumentError, match="4 bytes"):
        mm.reply(b"\x01")
    assert isinstance(FakeAccelerator().create_vm().create_vcpu().run(), HaltExit)
    assert Registers().rflags == 2
