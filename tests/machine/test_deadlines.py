"""``--timeout`` and ``--stop-after`` in the runner: on the main thread, where the process
leaves SIGALRM alone, through ITIMER_REAL (a run starts no thread, so a rig repeating
thousands of runs pays no thread start each); otherwise a timer thread each. Either way
the spinning guest ends with the right status and the process's timer and handler are as
they were."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator

import pytest

import accel
from accel import runner
from accel.runner import RunOptions, run_image

SPIN = bytes.fromhex("ebfe")  # jmp $
ACCELS = [pytest.param("kvm", marks=pytest.mark.kvm), "tcg"]


@pytest.fixture
def free_alarm() -> Iterator[None]:
    """SIGALRM at its default and ITIMER_REAL disarmed for the test (a plugin such as
    pytest-timeout's signal method may hold them)."""
    old_handler = signal.signal(signal.SIGALRM, signal.SIG_DFL)
    old_timer = signal.setitimer(signal.ITIMER_REAL, 0)
    try:
        yield
    finally:
        signal.signal(signal.SIGALRM, old_handler)
        signal.setitimer(signal.ITIMER_REAL, *old_timer)


def _run(accel_name: str, options: RunOptions) -> tuple[accel.runner.RunResult, int]:
    """The run's result and how many timer threads the runner started for it."""
    timers: list[float] = []
    original = runner._timer

    def counting(seconds: float, fn: Callable[[], object]) -> threading.Timer:
        timers.append(seconds)
        return original(seconds, fn)

    acc = accel.open(accel_name)
    try:
        runner._timer = counting  # type: ignore[assignment]
        try:
            result = run_image(acc, SPIN, options)
        finally:
            runner._timer = original  # type: ignore[assignment]
    finally:
        acc.close()
    return result, len(timers)


@pytest.mark.parametrize("accel_name", ACCELS)
def test_timeout_through_the_interval_timer(accel_name: str, free_alarm: None) -> None:
    result, started = _run(accel_name, RunOptions(load_addr=0x1000, timeout=0.3))
    assert (result.status, result.kind) == (124, "timeout")
    assert started == 0
    assert signal.getsignal(signal.SIGALRM) == signal.SIG_DFL
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


@pytest.mark.parametrize("accel_name", ACCELS)
def test_the_earlier_deadline_wins(accel_name: str, free_alarm: None) -> None:
    result, _ = _run(accel_name, RunOptions(load_addr=0x1000, timeout=5, stop_after=0.2))
    assert (result.status, result.kind) == (0, "stopped")
    result, _ = _run(accel_name, RunOptions(load_addr=0x1000, timeout=0.2, stop_after=5))
    assert (result.status, result.kind) == (124, "timeout")


def test_a_process_that_uses_sigalrm_keeps_it(free_alarm: None) -> None:
    seen: list[int] = []
    mine = signal.signal(signal.SIGALRM, lambda signum, frame: seen.append(signum))
    assert mine == signal.SIG_DFL
    handler = signal.getsignal(signal.SIGALRM)
    result, started = _run("tcg", RunOptions(load_addr=0x1000, timeout=0.3))
    assert (result.status, result.kind) == (124, "timeout")
    assert started == 1  # the fallback
    assert signal.getsignal(signal.SIGALRM) is handler and not seen


def test_off_the_main_thread_a_timer_thread_is_used(free_alarm: None) -> None:
    out: list[tuple[accel.runner.RunResult, int]] = []
    options = RunOptions(load_addr=0x1000, timeout=0.3)
    t = threading.Thread(target=lambda: out.append(_run("tcg", options)))
    t.start()
    t.join(60)
    ((result, started),) = out
    assert (result.status, result.kind) == (124, "timeout") and started == 1
