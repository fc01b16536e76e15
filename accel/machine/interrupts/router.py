"""The machine's interrupt router: ISA lines to the PIC pair and the IOAPIC, the APIC
bus between the IOAPIC and the local APICs (and between local APICs: IPIs), the PIC's
INT to the boot processor's LINT0, and the APIC timers' thread.

A PC's wiring, as QEMU's pc machine has it: ISA IRQ *n* goes to PIC line *n* and IOAPIC
pin *n*, except IRQ 0 (the PIT), which is IOAPIC pin 2 (the MADT's interrupt source
override). What a vCPU is to take next comes from :meth:`InterruptRouter.pending` and
:meth:`InterruptRouter.acknowledge`: its local APIC's vector first, then (on the boot
processor, LINT0 in ExtINT mode, or an ExtINT message) the PIC's through an INTA cycle.

Every model call happens under :attr:`InterruptRouter.lock` (the machine's device lock):
the vCPU threads take it for their exits and their injections, the timer thread for
expiries. ``wake(index)`` is the machine's: it wakes vCPU ``index`` from a HLT wait or
kicks it out of its run call so it injects.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from .ioapic import IoApic
from .lapic import DeliveryMode, LocalApic
from .pic import PicPair

__all__ = ["InterruptRouter", "isa_to_gsi"]


def isa_to_gsi(irq: int) -> int:
    """The IOAPIC pin of ISA line ``irq`` (IRQ 0 is pin 2)."""
    return 2 if irq == 0 else irq


class InterruptRouter:
    """Routes lines and messages between one machine's interrupt controllers."""

    def __init__(
        self,
        lock: threading.Lock,
        clock: Callable[[], int],
        wake: Callable[[int], None],
    ) -> None:
        self.lock = lock
        self.clock = clock
        self._wake = wake
        self.pic: PicPair | None = None
        self.ioapic: IoApic | None = None
        self.lapics: list[LocalApic] = []
        self._cond = threading.Condition(lock)
        self._thread: threading.Thread | None = None
        self._running = False

    # ------------------------------------------------------------------ wiring
    def attach(
        self, pic: PicPair | None, ioapic: IoApic | None, lapics: Sequence[LocalApic]
    ) -> None:
        self.pic = pic
        self.ioapic = ioapic
        self.lapics = list(lapics)
        if pic is not None:
            pic.on_output = self._pic_output
        if ioapic is not None:
            ioapic.deliver = self._ioapic_deliver
        for lapic in self.lapics:
            lapic.bus = self

    def set_irq(self, irq: int, level: bool) -> None:
        """ISA line ``irq`` to ``level`` (caller holds :attr:`lock`)."""
        if self.pic is not None and irq < 16:
            self.pic.set_irq(irq, level)
        if self.ioapic is not None:
            self.ioapic.set_irq(isa_to_gsi(irq), level)

    def _pic_output(self, level: bool) -> None:
        if level and self.lapics:
            self.wake(0)

    # ------------------------------------------------------------------ the APIC bus
    def _targets(self, dest: int, logical: bool) -> list[LocalApic]:
        if not logical:
            if dest == 0xFF:
                return list(self.lapics)
            return [a for a in self.lapics if a.apic_id == dest]
        if dest == 0xFF:
            return list(self.lapics)
        out = []
        for a in self.lapics:
            ldr = a.ldr >> 24
            if a.dfr >> 28 == 0xF:  # flat model
                if ldr & dest:
                    out.append(a)
            elif ldr >> 4 == dest >> 4 and ldr & dest & 0xF:  # cluster model
                out.append(a)
        return out

    def _deliver(self, targets: list[LocalApic], mode: int, vector: int, level: bool) -> None:
        if mode == DeliveryMode.LOWEST and targets:
            targets = [min(targets, key=lambda a: (a.tpr, a.index))]
        for a in targets:
            a.deliver(mode, vector, level)

    def _ioapic_deliver(
        self, dest: int, logical: bool, mode: int, vector: int, level: bool
    ) -> None:
        self._deliver(self._targets(dest, logical), mode, vector, level)

    def send_ipi(self, src: int, icr: int, dest: int) -> None:
        mode = (icr >> 8) & 7
        vector = icr & 0xFF
        level_trigger = bool(icr & (1 << 15))
        assert_level = bool(icr & (1 << 14))
        if mode == DeliveryMode.INIT and level_trigger and not assert_level:
            return  # INIT level de-assert: arbitration IDs only, nothing to deliver
        shorthand = (icr >> 18) & 3
        me = self.lapics[src]
        if shorthand == 1:
            targets = [me]
        elif shorthand == 2:
            targets = list(self.lapics)
        elif shorthand == 3:
            targets = [a for a in self.lapics if a is not me]
        else:
            targets = self._targets(dest, bool(icr & (1 << 11)))
        self._deliver(targets, mode, vector, False)

    def eoi_broadcast(self, vector: int) -> None:
        if self.ioapic is not None:
            self.ioapic.eoi(vector)

    def wake(self, index: int) -> None:
        self._wake(index)

    # ------------------------------------------------------------------ what a vCPU takes
    def _pic_for(self, lapic: LocalApic) -> bool:
        pic = self.pic
        if pic is None or not pic.output():
            return False
        return lapic.extint_pending or (lapic.bsp and lapic.accepts_pic())

    def pending(self, index: int) -> bool:
        """vCPU ``index`` has an external interrupt to take."""
        lapic = self.lapics[index]
        return lapic.pending_vector() is not None or self._pic_for(lapic)

    def acknowledge(self, index: int) -> int | None:
        """vCPU ``index`` takes its interrupt: the vector (None if it went away)."""
        lapic = self.lapics[index]
        v = lapic.acknowledge()
        if v is not None:
            return v
        if self._pic_for(lapic):
            assert self.pic is not None
            lapic.extint_pending = False
            return self.pic.acknowledge()
        return None

    # ------------------------------------------------------------------ timers
    def timer_changed(self) -> None:
        """A timer was (re)armed: the timer thread recomputes its wait (caller holds
        :attr:`lock`; a caller without it takes it here)."""
        try:
            self._cond.notify_all()
        except RuntimeError:  # the lock is not held by this thread
            with self._cond:
                self._cond.notify_all()

    def start(self) -> None:
        """Start the APIC timers' thread (idempotent)."""
        with self.lock:
            if self._thread is not None:
                return
            self._running = True
            self._thread = threading.Thread(
                target=self._timer_loop, name="apic timers", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        with self.lock:
            self._running = False
            self._cond.notify_all()
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.join()

    def _timer_loop(self) -> None:
        with self.lock:
            while self._running:
                now = self.clock()
                deadlines = []
                for a in self.lapics:
                    if a.deadline is not None and a.deadline <= now:
                        a.timer_expire(now)
                    if a.deadline is not None:
                        deadlines.append(a.deadline)
                if deadlines:
                    # guest time runs with the host's while the machine runs; while it
                    # is paused the wait comes round again and finds nothing due
                    self._cond.wait(max(min(deadlines) - now, 50_000) / 1e9)
                else:
                    self._cond.wait()
