"""SMP on TCG: which vCPU of a VM may emulate now (QEMU's ``-accel tcg,thread=single``).

What unicorn 2.1 guarantees, measured (``tests/tcg/test_smp.py``, docs/conformance.md
"TCG SMP"):

* The Python binding calls the engine through ``ctypes.CDLL``, which releases the GIL for
  the call: engines of one VM on their own threads *do* emulate in parallel (a hook
  takes the GIL back for its Python callback).
* Unicorn generates code for a single-threaded CPU (QEMU's TCG without ``CF_PARALLEL``):
  a LOCK-prefixed instruction is a plain load and store. Two engines over shared RAM
  each doing 100,000 ``lock xadd`` on one counter lose about half of the updates
  (LOCK INC and a LOCK CMPXCHG retry loop alike). So ``thread=multi`` is not correct for
  a VM with more than one vCPU, and the plugin refuses a second vCPU in that mode.

``thread=single`` (the default) makes SMP correct the way QEMU's round-robin TCG does:
each VM has one :class:`RoundRobin` token; a vCPU's worker holds it while it is inside
``emu_start`` and hands it on when it leaves (an exit parked in a hook, HLT, a kick, a
fault) or when its slice ends, so at most one vCPU of the VM executes guest
instructions at a time and every instruction, locked or not, is atomic with respect to
the other vCPUs. Waiters queue in arrival order, so the vCPUs take turns.

The slice is an *instruction count* (``emu_start(..., count=SLICE_INSNS)``), passed only
while the VM has more than one vCPU: a one-vCPU VM runs exactly as before. Not a time:
unicorn's ``emu_start`` timeout and ``emu_stop`` from another thread stop the engine at
its next memory-access check, which can come after the store of a read-modify-write
instruction with RIP still at that instruction, so it runs again (measured on 2.1.4: one
extra ``lock xadd`` / ``inc [mem]`` per stop, and an XCHG spinlock that reads back its
own 1 and spins forever). The count hook stops between two instructions. It costs about
half the emulation speed while it is on (measured in bench/bench_tcg.py), and HLT and an
exhausted count both end ``emu_start`` silently: the worker tells them apart by the HLT
byte before RIP, read through the guest's page tables (:mod:`accel_tcg.paging`).

A kick of a sliced vCPU does not ``emu_stop`` its engine (for the reason above): the worker
sees the kick when the slice ends, so a kick or a pause waits at most one slice.

Waiting is bounded and never blocks a kick, pause or close: a waiter gives up when its
vCPU is kicked or closed (:meth:`RoundRobin.acquire` polls its ``give_up`` predicate at
:data:`POLL` and is woken at once when the lock is free for :meth:`RoundRobin.wake`).
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable
from typing import Final

__all__ = ["POLL", "SLICE_INSNS", "RoundRobin"]

#: How many guest instructions one vCPU of a multi-vCPU VM runs before the next takes its
#: turn, and the longest a kick of a running sliced vCPU waits (it does not emu_stop the
#: engine: see above): about 1 ms of emulation under the count hook here.
SLICE_INSNS: Final = 200_000
#: The longest a waiting worker goes without looking at its kick and close flags (s).
POLL: Final = 0.01


class RoundRobin:
    """One VM's emulation token: one holder at a time, waiters served in arrival order."""

    __slots__ = ("_cond", "_holder", "_queue", "slice_insns")

    def __init__(self, slice_insns: int = SLICE_INSNS) -> None:
        self.slice_insns = slice_insns
        self._cond = threading.Condition(threading.Lock())
        self._holder: object | None = None
        self._queue: collections.deque[object] = collections.deque()

    @property
    def holder(self) -> object | None:
        """Who holds the token now (for diagnostics and tests)."""
        return self._holder

    def acquire(self, owner: object, give_up: Callable[[], bool]) -> bool:
        """Wait for the token; False (and not queued any more) once ``give_up()`` is true."""
        with self._cond:
            if self._holder is owner:
                return True
            if self._holder is None and not self._queue:
                self._holder = owner
                return True
            self._queue.append(owner)
            try:
                while True:
                    if self._holder is None and self._queue[0] is owner:
                        self._queue.popleft()
                        self._holder = owner
                        return True
                    if give_up():
                        self._queue.remove(owner)
                        self._cond.notify_all()  # the next in line may be free to go now
                        return False
                    self._cond.wait(POLL)
            except BaseException:
                if owner in self._queue:
                    self._queue.remove(owner)
                self._cond.notify_all()
                raise

    def release(self, owner: object) -> None:
        """Hand the token on (a no-op for a caller that does not hold it)."""
        with self._cond:
            if self._holder is owner:
                self._holder = None
                self._cond.notify_all()

    def wake(self) -> None:
        """Make waiters look at their ``give_up`` now; never blocks (safe from a signal
        handler: when the lock is busy, the waiters' poll notices within :data:`POLL`)."""
        if self._cond.acquire(blocking=False):
            try:
                self._cond.notify_all()
            finally:
                self._cond.release()
