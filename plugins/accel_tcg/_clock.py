"""The TCG guest clock: QEMU's virtual clock, in nanoseconds."""

from __future__ import annotations

import threading
import time

from accel.accelerator import ClockData
from accel.capabilities import ClockFlags

#: What :meth:`VirtualClock.read` can honestly report: the clock is derived from the
#: host's CLOCK_MONOTONIC (reliable across host CPUs), and each read carries the host's
#: wall time. There is no TSC behind it, so no HOST_TSC.
CLOCK_FLAGS = ClockFlags.TSC_STABLE | ClockFlags.REALTIME


class VirtualClock:
    """Guest nanoseconds that advance with host monotonic time while running.

    While stopped (the VM is paused) the value stands still; :meth:`start` continues
    from it. Thread-safe: vCPU worker threads and callers may read it concurrently.

    A read carries the host wall time at which its value was the guest time: the time of
    the read while running, and while stopped the time the clock stopped (or was last
    written), so that a catch-up restore (value + wall time elapsed since ``realtime``)
    also counts the time between the pause and the read.
    """

    __slots__ = ("_base", "_lock", "_running", "_since", "_stopped_realtime")

    def __init__(self, start: int = 0) -> None:
        self._lock = threading.Lock()
        self._base = start  # guest ns at the moment `_since` was taken
        self._since = time.monotonic_ns()
        self._running = True
        self._stopped_realtime = 0  # host wall time of `_base` while stopped

    def now(self) -> int:
        with self._lock:
            if not self._running:
                return self._base
            return self._base + (time.monotonic_ns() - self._since)

    def read(self) -> ClockData:
        with self._lock:
            if not self._running:
                return ClockData(
                    clock=self._base, flags=CLOCK_FLAGS, realtime=self._stopped_realtime
                )
            clock = self._base + (time.monotonic_ns() - self._since)
            realtime = time.time_ns()
        return ClockData(clock=clock, flags=CLOCK_FLAGS, realtime=realtime)

    def write(self, data: ClockData) -> None:
        """Set the clock; with REALTIME, also add the wall time elapsed since ``realtime``."""
        value = data.clock
        if data.flags & ClockFlags.REALTIME and data.realtime:
            value += max(0, time.time_ns() - data.realtime)
        with self._lock:
            self._base = value
            self._since = time.monotonic_ns()
            self._stopped_realtime = time.time_ns()

    def stop(self) -> None:
        with self._lock:
            if self._running:
                self._base += time.monotonic_ns() - self._since
                self._stopped_realtime = time.time_ns()
                self._running = False

    def start(self) -> None:
        with self._lock:
            if not self._running:
                self._since = time.monotonic_ns()
                self._running = True

    @property
    def running(self) -> bool:
        return self._running
