"""A local APIC in xAPIC mode: the 4 KiB register page at the APIC base (0xfee00000).

Written from the Intel SDM vol. 3 chapter 11 ("Advanced Programmable Interrupt Controller")
and checked against QEMU's hw/intc/apic.c and apic_common.c: ID, version (0x00050014:
six LVT entries, version 0x14), TPR, APR (0), PPR, EOI (with the broadcast to the
IOAPIC for a level-triggered vector, TMR set), LDR, DFR, SVR (the software enable),
ISR/TMR/IRR as 256-bit registers read 32 bits at a time, ESR, ICR (fixed, lowest
priority, NMI, INIT, INIT level de-assert, SIPI, ExtINT; the four destination
shorthands), the LVT (timer, thermal, performance, LINT0, LINT1, error) and the timer:
one-shot and periodic at the 1 GHz APIC bus clock QEMU and KVM use (one count per ns,
before the divide configuration), against the machine's guest clock.

TSC-deadline mode is not modelled: the machines hide it (and x2APIC) from the CPUID of a
vCPU whose APIC is this model (KVM routes neither IA32_TSC_DEADLINE nor the x2APIC
MSRs to userspace without KVM_CAP_X86_USER_SPACE_MSR). The APIC base is fixed at
0xfee00000 (a relocated base is not followed).

The model is pure state plus the :class:`ApicBus` it is given (the machine's router):
no lock of its own (the router's lock serialises every call), no thread.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Protocol

__all__ = [
    "APIC_BASE",
    "APIC_BUS_NS",
    "APIC_VERSION",
    "ApicBus",
    "DeliveryMode",
    "LocalApic",
    "MpState",
]

APIC_BASE = 0xFEE00000
APIC_VERSION = 0x00050014
#: APIC bus cycle: 1 ns (QEMU's APIC_BUS_CYCLE_NS, KVM's APIC_BUS_CYCLE_NS_DEFAULT).
APIC_BUS_NS = 1

_MASKED = 1 << 16
_SW_ENABLE = 1 << 8
_LVT_NB = 6
LVT_TIMER, LVT_THERMAL, LVT_PERF, LVT_LINT0, LVT_LINT1, LVT_ERROR = range(_LVT_NB)
#: Writable bits of each LVT entry (timer has the mode; LINT0/1 trigger and polarity).
_LVT_WRITABLE = (0x000700FF, 0x000107FF, 0x000107FF, 0x0001A7FF, 0x0001A7FF, 0x000100FF)


class DeliveryMode(enum.IntEnum):
    FIXED = 0
    LOWEST = 1
    SMI = 2
    NMI = 4
    INIT = 5
    STARTUP = 6
    EXTINT = 7


class MpState(enum.Enum):
    """Where the vCPU of this APIC is: running, or waiting for INIT/SIPI."""

    RUNNING = "running"
    WAIT_SIPI = "wait-for-sipi"


class ApicBus(Protocol):
    """What a local APIC needs of the machine's interrupt router."""

    def send_ipi(self, src: int, icr: int, dest: int) -> None:
        """An ICR write of APIC ``src`` (``icr`` the low word, ``dest`` ICR[63:56])."""
        ...

    def eoi_broadcast(self, vector: int) -> None:
        """EOI of a level-triggered ``vector``: to the IOAPIC."""
        ...

    def timer_changed(self) -> None:
        """The APIC timer was armed, re-armed or stopped."""
        ...

    def wake(self, index: int) -> None:
        """The vCPU of APIC ``index`` may have something to do (interrupt, INIT, SIPI)."""
        ...


def _highest(bits: int) -> int:
    return bits.bit_length() - 1  # -1 when empty


class LocalApic:
    """One vCPU's local APIC."""

    def __init__(self, index: int, clock: Callable[[], int], bus: ApicBus, *, bsp: bool) -> None:
        self.index = index
        self.clock = clock
        self.bus = bus
        self.bsp = bsp
        self.apic_id = index
        #: IA32_APIC_BASE.EN as last seen (a globally disabled APIC takes no interrupt
        #: messages, and the 8259 then reaches the processor directly).
        self.hw_enabled = True
        self.reset()
        self.mp_state = MpState.RUNNING if bsp else MpState.WAIT_SIPI
        self.sipi_vector: int | None = None
        #: Counts for people and tests: timer interrupts raised, and the guest ns of the
        #: first and last one since the timer was last started.
        self.timer_fired = 0
        self.timer_first_ns: int | None = None
        self.timer_last_ns: int | None = None
        #: The last few timer runs, oldest first: (mode, period ns, load ns, fired,
        #: first ns, last ns), kept when the initial count is written again.
        self.timer_history: list[tuple[int, int, int, int, int | None, int | None]] = []

    def reset(self) -> None:
        """Power-on / INIT state (the ID stays); the boot processor's LINT0 is ExtINT
        unmasked, as the firmware leaves it on a PC (QEMU's apic_reset)."""
        self.tpr = 0
        self.svr = 0xFF
        self.ldr = 0
        self.dfr = 0xFFFFFFFF
        self.esr = 0
        self.icr_lo = 0
        self.icr_hi = 0
        self.irr = 0
        self.isr = 0
        self.tmr = 0
        self.lvt = [_MASKED] * _LVT_NB
        if self.bsp:
            self.lvt[LVT_LINT0] = 0x700
        self.divide = 0
        self.initial_count = 0
        self.load_ns = 0
        self._load_mode = 0
        self.deadline: int | None = None
        self.nmi_pending = False
        self.extint_pending = False

    # ------------------------------------------------------------------ properties
    @property
    def enabled(self) -> bool:
        """Software enabled (SVR bit 8)."""
        return bool(self.svr & _SW_ENABLE)

    @property
    def count_shift(self) -> int:
        v = (self.divide & 3) | ((self.divide >> 1) & 4)
        return (v + 1) & 7

    @property
    def timer_mode(self) -> int:
        """0 one-shot, 1 periodic (2, TSC-deadline, is not offered)."""
        return (self.lvt[LVT_TIMER] >> 17) & 3

    def ppr(self) -> int:
        isrv = max(_highest(self.isr), 0)
        if (self.tpr >> 4) >= (isrv >> 4):
            return self.tpr & 0xFF
        return isrv & 0xF0

    def accepts_pic(self) -> bool:
        """LINT0 takes the PIC's INT as ExtINT (unmasked, delivery mode ExtINT), or the
        APIC is globally disabled (the INTR pin is the 8259's then)."""
        if not self.hw_enabled:
            return True
        lint0 = self.lvt[LVT_LINT0]
        return not lint0 & _MASKED and (lint0 >> 8) & 7 == DeliveryMode.EXTINT

    # ------------------------------------------------------------------ interrupts in
    def deliver(self, mode: int, vector: int, level: bool) -> None:
        """An interrupt message for this APIC (from the IOAPIC or an IPI)."""
        if not self.hw_enabled and mode != DeliveryMode.INIT:
            return
        if mode in (DeliveryMode.FIXED, DeliveryMode.LOWEST):
            self.set_irr(vector, level)
        elif mode == DeliveryMode.NMI:
            self.nmi_pending = True
        elif mode == DeliveryMode.INIT:
            self.reset()
            self.mp_state = MpState.WAIT_SIPI
            self.sipi_vector = None
            self.bus.timer_changed()
        elif mode == DeliveryMode.STARTUP:
            if self.mp_state is MpState.WAIT_SIPI and self.sipi_vector is None:
                self.sipi_vector = vector & 0xFF
        elif mode == DeliveryMode.EXTINT:
            self.extint_pending = True
        self.bus.wake(self.index)

    def set_irr(self, vector: int, level: bool) -> None:
        if vector < 16:  # illegal vector: received-illegal-vector error
            self._error(1 << 6)
            return
        bit = 1 << vector
        self.irr |= bit
        if level:
            self.tmr |= bit
        else:
            self.tmr &= ~bit

    def _error(self, bits: int) -> None:
        self.esr |= bits
        lvt = self.lvt[LVT_ERROR]
        if not lvt & _MASKED and (lvt & 0xFF) >= 16:
            self.irr |= 1 << (lvt & 0xFF)
            self.tmr &= ~(1 << (lvt & 0xFF))

    def pending_vector(self) -> int | None:
        """The vector this APIC would present to its vCPU now (None for none)."""
        if not self.enabled or not self.hw_enabled:
            return None
        irrv = _highest(self.irr)
        if irrv < 0:
            return None
        ppr = self.ppr()
        if ppr and (irrv & 0xF0) <= (ppr & 0xF0):
            return None
        return irrv

    def acknowledge(self) -> int | None:
        """The processor takes the pending vector: IRR -> ISR. None when none is pending."""
        v = self.pending_vector()
        if v is not None:
            self.irr &= ~(1 << v)
            self.isr |= 1 << v
        return v

    def eoi(self) -> None:
        isrv = _highest(self.isr)
        if isrv < 0:
            return
        self.isr &= ~(1 << isrv)
        if self.tmr & (1 << isrv):
            self.bus.eoi_broadcast(isrv)
        if self.pending_vector() is not None:
            self.bus.wake(self.index)

    # ------------------------------------------------------------------ timer
    def _period_ns(self) -> int:
        return ((self.initial_count + 1) << self.count_shift) * APIC_BUS_NS

    def _arm(self, now: int) -> None:
        """Compute the next expiry (as QEMU's apic_timer_update)."""
        old = self.deadline
        if self.initial_count == 0 or self.timer_mode > 1:
            self.deadline = None
        else:
            d = (now - self.load_ns) >> self.count_shift
            n = self.initial_count + 1
            if self.timer_mode == 1:
                d = (d // n + 1) * n
                self.deadline = self.load_ns + (d << self.count_shift)
            elif d >= self.initial_count:
                self.deadline = None
            else:
                self.deadline = self.load_ns + (n << self.count_shift)
        if self.deadline != old:
            self.bus.timer_changed()

    def timer_expire(self, now: int) -> None:
        """The timer reached its deadline at guest time ``now``: raise the LVT timer
        vector (unless masked), then re-arm (periodic, missed periods coalesced as a
        one-bit IRR does) or stop (one-shot)."""
        if self.deadline is None or now < self.deadline:
            return
        lvt = self.lvt[LVT_TIMER]
        if not lvt & _MASKED:
            self.set_irr(lvt & 0xFF, False)
            self.timer_fired += 1
            if self.timer_first_ns is None:
                self.timer_first_ns = now
            self.timer_last_ns = now
            self.bus.wake(self.index)
        if self.timer_mode == 1:
            self._arm(now)
        else:
            self.deadline = None

    def _record_timer_run(self) -> None:
        if self.initial_count:
            self.timer_history.append(
                (self._load_mode, self._period_ns(), self.load_ns, self.timer_fired,
                 self.timer_first_ns, self.timer_last_ns)
            )  # fmt: skip
            del self.timer_history[:-8]

    def current_count(self) -> int:
        if self.initial_count == 0:
            return 0
        d = (self.clock() - self.load_ns) >> self.count_shift
        if self.timer_mode == 1:
            return self.initial_count - d % (self.initial_count + 1)
        return 0 if d >= self.initial_count else self.initial_count - d

    # ------------------------------------------------------------------ registers
    def read(self, offset: int) -> int:
        """The 32-bit register at ``offset`` (16-byte aligned)."""
        reg = offset >> 4
        if reg == 0x02:
            return self.apic_id << 24
        if reg == 0x03:
            return APIC_VERSION
        if reg == 0x08:
            return self.tpr
        if reg == 0x09:
            return 0
        if reg == 0x0A:
            return self.ppr()
        if reg == 0x0B:
            return 0
        if reg == 0x0D:
            return self.ldr
        if reg == 0x0E:
            return self.dfr
        if reg == 0x0F:
            return self.svr
        if 0x10 <= reg < 0x18:
            return (self.isr >> (32 * (reg - 0x10))) & 0xFFFFFFFF
        if 0x18 <= reg < 0x20:
            return (self.tmr >> (32 * (reg - 0x18))) & 0xFFFFFFFF
        if 0x20 <= reg < 0x28:
            return (self.irr >> (32 * (reg - 0x20))) & 0xFFFFFFFF
        if reg == 0x28:
            return self.esr
        if reg == 0x30:
            return self.icr_lo & ~(1 << 12)  # delivery is instant: never "send pending"
        if reg == 0x31:
            return self.icr_hi
        if 0x32 <= reg < 0x32 + _LVT_NB:
            return self.lvt[reg - 0x32]
        if reg == 0x38:
            return self.initial_count
        if reg == 0x39:
            return self.current_count()
        if reg == 0x3E:
            return self.divide
        return 0

    def write(self, offset: int, value: int) -> None:
        reg = offset >> 4
        value &= 0xFFFFFFFF
        if reg == 0x02:
            self.apic_id = value >> 24
        elif reg == 0x08:
            self.tpr = value & 0xFF
            if self.pending_vector() is not None:
                self.bus.wake(self.index)
        elif reg == 0x0B:
            self.eoi()
        elif reg == 0x0D:
            self.ldr = value & 0xFF000000
        elif reg == 0x0E:
            self.dfr = value | 0x0FFFFFFF
        elif reg == 0x0F:
            self.svr = value & 0x13FF
            if not self.enabled:
                self.lvt = [v | _MASKED for v in self.lvt]
            elif self.pending_vector() is not None:
                self.bus.wake(self.index)
        elif reg == 0x28:
            self.esr = 0  # a write clears it (the SDM's write-before-read)
        elif reg == 0x30:
            self.icr_lo = value & ~(1 << 12)
            self.bus.send_ipi(self.index, self.icr_lo, self.icr_hi >> 24)
        elif reg == 0x31:
            self.icr_hi = value & 0xFF000000
        elif 0x32 <= reg < 0x32 + _LVT_NB:
            n = reg - 0x32
            v = value & _LVT_WRITABLE[n]
            if not self.enabled:
                v |= _MASKED
            old = self.lvt[n]
            self.lvt[n] = v
            if n == LVT_TIMER:
                if (old ^ v) & (3 << 17):
                    # a mode change stops the timer and clears the initial count, as
                    # KVM's LAPIC does (apic_update_lvtt); the next count write starts it
                    self._record_timer_run()
                    self.initial_count = 0
                self._arm(self.clock())
        elif reg == 0x38:
            self._record_timer_run()
            self.initial_count = value
            self._load_mode = self.timer_mode
            self.load_ns = self.clock()
            self.timer_fired = 0
            self.timer_first_ns = self.timer_last_ns = None
            self._arm(self.load_ns)
        elif reg == 0x3E:
            self.divide = value & 0xB
            self._arm(self.clock())

    def mmio_read(self, offset: int, size: int) -> int:
        value = self.read(offset & 0xFF0)
        return value >> (8 * (offset & 3))

    def mmio_write(self, offset: int, size: int, value: int) -> None:
        if offset & 0xF:
            return  # only the aligned 32-bit write of a register counts
        self.write(offset & 0xFF0, value)

    def state(self) -> dict[str, object]:
        return {
            "id": self.apic_id,
            "enabled": self.enabled,
            "mp_state": self.mp_state.value,
            "tpr": self.tpr,
            "irr": hex(self.irr),
            "isr": hex(self.isr),
            "timer": {"mode": self.timer_mode, "initial": self.initial_count},
        }
