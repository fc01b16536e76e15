"""The TCG run handoff under races: nothing may leave run() or close() blocked for ever.

Each vCPU's engine runs on a worker thread; run() hands it a "go" and waits for its
exit. These tests pin the cases that used to hang: a pause landing while run() starts,
close() from another thread, an exception on the worker, a run() interrupted by an
exception. A test that would hang runs its call in a daemon thread and fails when the
call has not returned after a generous bound (a hang detector, not a timing check).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest
from accel_tcg.accelerator import TcgAccelerator, TcgVcpu, TcgVM

from accel import (
    ClockData,
    ClockFlags,
    HaltExit,
    InternalErrorExit,
    InterruptedExit,
    IoDirection,
    PortIoExit,
    Registers,
    Segment,
    real_mode_sregs,
)
from accel.errors import VcpuStateError

T = TypeVar("T")

#: Seconds after which a call that has not returned is taken to hang.
HANG = 30.0
#: Seconds each stress loop runs.
STRESS = 1.0


@pytest.fixture
def vm() -> Iterator[TcgVM]:
    with TcgAccelerator() as acc, acc.create_vm() as v:
        v.add_memory(0, 0x10000)
        yield v


def real_mode(vm: TcgVM, code: bytes, at: int = 0x1000) -> TcgVcpu:
    vm.write_memory(at, code)
    cpu = vm.create_vcpu()
    cpu.set_sregs(real_mode_sregs(cpu.get_sregs(), cs=0))
    cpu.set_regs(Registers(rip=at, rflags=2))
    return cpu


def bounded(call: Callable[[], T], *, cleanup: Callable[[], None] | None = None) -> T:
    """``call()`` on a daemon thread; fails (instead of hanging) when it does not return."""
    result: list[T] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            result.append(call())
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(HANG)
    if thread.is_alive():
        if cleanup is not None:
            cleanup()
        pytest.fail(f"{call!r} did not return within {HANG:g} s: it hangs")
    if error:
        raise error[0]
    return result[0]


# --------------------------------------------------------------------------- pause


def test_pause_landing_while_run_starts_stops_the_run(
    vm: TcgVM, monkeypatch: pytest.MonkeyPatch
) -> None:
    """run() looked at ``paused`` (False), then the pause landed before the guest ran.

    The pause must not be missed: pause() kicks the vCPUs that are in run(), so run()
    has to count as running before it looks. It used to look first, and a pause that
    landed while the first run() started its worker thread left the vCPU in ``jmp $``
    in a paused VM, for ever (the hang of a loaded full-suite run).
    """
    cpu = real_mode(vm, b"\xeb\xfe")  # jmp $
    prop = TcgVM.__dict__["paused"]
    assert isinstance(prop, property) and prop.fget is not None
    real = prop.fget
    landed: list[bool] = []

    def paused_then_a_pause_lands(self: TcgVM) -> bool:
        was = bool(real(self))
        if not was and not landed:
            landed.append(True)
            self.pause()  # another thread's pause, just after run() read the flag
        return was

    monkeypatch.setattr(TcgVM, "paused", property(paused_then_a_pause_lands))
    ex = bounded(cpu.run, cleanup=cpu.kick)
    monkeypatch.undo()
    assert landed and vm.paused
    assert isinstance(ex, InterruptedExit)
    with pytest.raises(VcpuStateError, match="paused"):
        cpu.run()
    vm.resume()
    cpu.kick()
    assert isinstance(bounded(cpu.run, cleanup=cpu.kick), InterruptedExit)


def test_pauses_racing_with_first_runs_are_never_missed(vm: TcgVM) -> None:
    """Stress (bounded in time): pause() at random points of a vCPU's first run()."""
    vm.write_memory(0x1000, b"\xeb\xfe")
    rng = random.Random(1)
    deadline = time.monotonic() + STRESS
    rounds = 0
    while time.monotonic() < deadline or rounds < 20:
        rounds += 1
        cpu = vm.create_vcpu()
        cpu.set_sregs(real_mode_sregs(cpu.get_sregs(), cs=0))
        cpu.set_regs(Registers(rip=0x1000, rflags=2))
        outcome: list[object] = []

        def runner(cpu: TcgVcpu = cpu, outcome: list[object] = outcome) -> None:
            try:
                outcome.append(cpu.run())
            except VcpuStateError as exc:
                outcome.append(exc)

        thread = threading.Thread(target=runner, daemon=True)
        thread.start()
        time.sleep(rng.random() * 0.0005)
        vm.pause()
        thread.join(HANG)
        if thread.is_alive():
            cpu.kick()
            pytest.fail(f"round {rounds}: run() stayed in the guest of a paused VM")
        assert isinstance(outcome[0], (InterruptedExit, VcpuStateError)), outcome
        vm.resume()
        cpu.close()


# --------------------------------------------------------------------------- close


def test_close_from_another_thread_ends_the_run(vm: TcgVM) -> None:
    """Stress (bounded in time): close() at random points of a run() on another thread.

    close() used to stop the engine once, and not at all when the worker was still
    being started: the stop was lost and run() waited for ever.
    """
    vm.write_memory(0x1000, b"\xeb\xfe")
    rng = random.Random(2)
    deadline = time.monotonic() + STRESS
    rounds = 0
    while time.monotonic() < deadline or rounds < 20:
        rounds += 1
        cpu = vm.create_vcpu()
        cpu.set_sregs(real_mode_sregs(cpu.get_sregs(), cs=0))
        cpu.set_regs(Registers(rip=0x1000, rflags=2))
        outcome: list[object] = []

        def runner(cpu: TcgVcpu = cpu, outcome: list[object] = outcome) -> None:
            try:
                outcome.append(cpu.run())
            except Exception as exc:  # HandleClosedError when close() came first
                outcome.append(exc)

        thread = threading.Thread(target=runner, daemon=True)
        thread.start()
        time.sleep(rng.random() * 0.0005)
        bounded(cpu.close)
        thread.join(HANG)
        assert not thread.is_alive(), f"round {rounds}: run() did not return after close()"
        assert cpu.closed
        assert isinstance(outcome[0], (InterruptedExit, Exception)), outcome
    assert not vm.vcpus


def test_close_while_parked_in_an_exit_and_closing_the_vm_again(vm: TcgVM) -> None:
    cpu = real_mode(vm, bytes.fromhex("e4 10 f4"))  # in al,0x10; hlt
    assert isinstance(cpu.run(), PortIoExit)
    thread = cpu._thread
    bounded(cpu.close)
    assert thread is not None and not thread.is_alive()
    bounded(vm.close)
    bounded(vm.close)


# --------------------------------------------------------------------------- worker failures


def test_exception_in_a_hook_is_an_internal_error_and_the_vcpu_runs_on(
    vm: TcgVM, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hook that raises used to end the worker thread, and run() waited for ever."""
    cpu = real_mode(vm, bytes.fromhex("cd 10"))  # int 0x10

    def broken(self: TcgVcpu, vector: int) -> None:
        raise RuntimeError(f"injected failure delivering {vector}")

    monkeypatch.setattr(TcgVcpu, "_deliver", broken)
    ex = bounded(cpu.run)
    assert isinstance(ex, InternalErrorExit), ex
    assert "RuntimeError" in ex.detail and "injected failure delivering 16" in ex.detail
    monkeypatch.undo()
    vm.write_memory(0x1000, b"\xf4")
    cpu.set_regs(Registers(rip=0x1000, rflags=2))
    assert isinstance(bounded(cpu.run), HaltExit)  # the same worker still answers


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_worker_thread_that_ends_is_reported_and_replaced(
    vm: TcgVM, monkeypatch: pytest.MonkeyPatch
) -> None:
    cpu = real_mode(vm, b"\xf4")

    def dies(self: TcgVcpu) -> None:
        raise SystemExit  # ends the thread, and no exit is posted

    monkeypatch.setattr(TcgVcpu, "_emulate", dies)
    ex = bounded(cpu.run)
    assert isinstance(ex, InternalErrorExit) and "worker thread" in ex.detail
    monkeypatch.undo()
    assert isinstance(bounded(cpu.run), HaltExit)


def _flat(selector: int, code: bool) -> Segment:
    return Segment(
        base=0, limit=0xFFFFFFFF, selector=selector, type=0xB if code else 0x3,
        present=1, db=1, s=1, g=1,
    )  # fmt: skip


def test_exception_delivery_through_an_unmapped_idt_is_an_internal_error(vm: TcgVM) -> None:
    """#UD in protected mode with the IDT outside guest memory: reading the gate failed
    on the worker outside any hook, the thread ended, and run() waited for ever."""
    vm.write_memory(0x1000, bytes.fromhex("0f 0b"))  # ud2
    cpu = vm.create_vcpu()
    sregs = cpu.get_sregs()
    sregs.cs = _flat(0x08, True)
    for name in ("ds", "es", "fs", "gs", "ss"):
        setattr(sregs, name, _flat(0x10, False))
    sregs.cr0 = 0x60000011
    sregs.idt.base, sregs.idt.limit = 0x80000, 0x7FF  # not guest memory
    cpu.set_sregs(sregs)
    cpu.set_regs(Registers(rip=0x1000, rflags=2))
    ex = bounded(cpu.run)
    assert isinstance(ex, InternalErrorExit), ex
    assert ex.code == 6 and "delivery failed" in ex.detail


# --------------------------------------------------------------------------- interrupted run


def test_run_interrupted_by_an_exception_hands_its_exit_to_the_next_run(
    vm: TcgVM, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run() left by an exception (KeyboardInterrupt) while the worker still owed it
    an exit: the next run() takes that exit over instead of sending another "go" (which
    released the parked IN before the caller had answered, and put every exit after it
    one run late)."""
    cpu = real_mode(vm, bytes.fromhex("e4 10 e6 11 f4"))  # in al,0x10; out 0x11,al; hlt
    waited = cpu._wait_for_worker

    def interrupted() -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cpu, "_wait_for_worker", interrupted)
    with pytest.raises(KeyboardInterrupt):
        cpu.run()
    monkeypatch.setattr(cpu, "_wait_for_worker", waited)
    with pytest.raises(VcpuStateError):
        cpu.set_regs(Registers())  # the worker is still busy with the interrupted run
    ex = bounded(cpu.run)
    assert isinstance(ex, PortIoExit) and (ex.port, ex.direction) == (0x10, IoDirection.IN)
    ex.reply(0x42)
    ex = bounded(cpu.run)
    assert isinstance(ex, PortIoExit) and (ex.port, ex.value()) == (0x11, 0x42)
    assert isinstance(bounded(cpu.run), HaltExit)


def test_kick_of_a_run_that_took_over_an_interrupted_one(
    vm: TcgVM, monkeypatch: pytest.MonkeyPatch
) -> None:
    cpu = real_mode(vm, b"\xeb\xfe")  # jmp $
    waited = cpu._wait_for_worker

    def interrupted() -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cpu, "_wait_for_worker", interrupted)
    with pytest.raises(KeyboardInterrupt):
        cpu.run()  # the worker goes on in the guest
    monkeypatch.setattr(cpu, "_wait_for_worker", waited)
    cpu.kick()
    assert isinstance(bounded(cpu.run, cleanup=cpu.kick), InterruptedExit)


# --------------------------------------------------------------------------- clock


def test_paused_clock_is_stamped_with_the_wall_time_of_the_pause(vm: TcgVM) -> None:
    """While paused, get_clock() is the value as of the pause, realtime included: a
    catch-up restore then also counts the time between the pause and the save."""
    before = time.time_ns()
    vm.pause()
    after = time.time_ns()
    first = vm.get_clock()
    assert first.flags & ClockFlags.REALTIME
    assert before <= first.realtime <= after
    while time.time_ns() <= after:  # the wall clock has moved on since the pause
        time.sleep(0.001)
    again = vm.get_clock()
    assert again == first  # value and stamp both as of the pause

    with TcgAccelerator() as acc, acc.create_vm() as target:
        target.pause()
        restore_from = time.time_ns()
        target.set_clock(first)  # catch-up: adds the wall time since first.realtime
        assert target.get_clock().clock >= first.clock + (restore_from - first.realtime)


def test_running_clock_is_stamped_at_the_read_and_set_clock_while_paused_restamps(
    vm: TcgVM,
) -> None:
    before = time.time_ns()
    running = vm.get_clock()
    assert before <= running.realtime <= time.time_ns()
    vm.pause()
    before = time.time_ns()
    vm.set_clock(ClockData(clock=5_000, flags=ClockFlags.TSC_STABLE))
    after = time.time_ns()
    read = vm.get_clock()
    assert read.clock == 5_000 and before <= read.realtime <= after
    vm.resume()
    assert vm.get_clock().clock >= 5_000
