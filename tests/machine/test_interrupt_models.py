"""Unit tests of the userspace interrupt controllers (pure Python, no accelerator):
the 8259 pair, the I/O APIC, the local APIC and the router between them."""

from __future__ import annotations

import threading

from hypothesis import given
from hypothesis import strategies as st

from accel.machine.interrupts import (
    DeliveryMode,
    InterruptRouter,
    IoApic,
    LocalApic,
    MpState,
    PicPair,
    isa_to_gsi,
)


def _init_pics(p: PicPair, *, auto_eoi: bool = False) -> None:
    """The BIOS sequence: ICW1-4 on both, bases 0x08 / 0x70."""
    icw4 = 0x03 if auto_eoi else 0x01
    for cmd, data, base, icw3 in ((0x20, 0x21, 0x08, 0x04), (0xA0, 0xA1, 0x70, 0x02)):
        p.port_write(cmd, 0x11)
        p.port_write(data, base)
        p.port_write(data, icw3)
        p.port_write(data, icw4)


# --------------------------------------------------------------------------- 8259


def test_pic_edge_irq_vector_isr_and_eoi() -> None:
    levels: list[bool] = []
    p = PicPair(levels.append)
    _init_pics(p)
    p.port_write(0x21, 0xEF)  # only IRQ 4
    p.set_irq(4, True)
    assert p.output() and levels[-1]
    assert p.acknowledge() == 0x0C
    assert p.master.isr == 0x10 and not p.output()
    p.set_irq(4, False)
    p.set_irq(4, True)  # a new edge while in service: requested, not yet presented
    assert not p.output()
    p.port_write(0x20, 0x20)  # non-specific EOI
    assert p.master.isr == 0 and p.output()


def test_pic_mask_priority_and_slave_cascade() -> None:
    p = PicPair()
    _init_pics(p)
    p.port_write(0x21, 0x00)
    p.port_write(0xA1, 0x00)
    p.set_irq(8 + 0, True)  # RTC, IRQ 8 on the slave
    p.set_irq(3, True)
    assert p.acknowledge() == 0x70  # IRQ 2 (the cascade) beats IRQ 3
    assert p.slave.isr == 1 and p.master.isr == 0x04
    p.port_write(0xA0, 0x20)
    p.port_write(0x20, 0x20)
    assert p.acknowledge() == 0x0B
    p.port_write(0x21, 0xFF)
    p.set_irq(5, True)
    assert not p.output()  # masked


def test_pic_auto_eoi_poll_ocw3_and_spurious() -> None:
    p = PicPair()
    _init_pics(p, auto_eoi=True)
    p.port_write(0x21, 0x00)
    p.set_irq(1, True)
    assert p.port_read(0x20) == 0x02  # IRR
    assert p.acknowledge() == 0x09 and p.master.isr == 0  # auto-EOI
    p.port_write(0x20, 0x0B)  # OCW3: read ISR
    assert p.port_read(0x20) == 0
    p.set_irq(6, True)
    p.port_write(0x20, 0x0C)  # poll
    assert p.port_read(0x20) == 0x86
    assert p.acknowledge() == 0x0F  # nothing pending: the spurious IRQ 7


def test_pic_level_triggered_via_elcr() -> None:
    p = PicPair()
    _init_pics(p)
    p.port_write(0x4D1, 0xFF)
    assert p.port_read(0x4D1) == 0xDE  # IRQ 8 and 13 cannot be level
    p.port_write(0xA1, 0x00)
    p.port_write(0x21, 0x00)
    p.set_irq(9, True)
    assert p.acknowledge() == 0x71
    p.port_write(0xA0, 0x20)
    p.port_write(0x20, 0x20)
    assert p.output()  # still high: requested again
    p.set_irq(9, False)
    assert p.slave.pending() == -1
    assert p.acknowledge() == 0x77  # the cascade's latched edge: the slave's spurious IRQ 15


@given(st.lists(st.tuples(st.integers(0, 15), st.booleans()), max_size=40), st.integers(0, 255))
def test_pic_presents_only_unmasked_requests(events: list[tuple[int, bool]], mask: int) -> None:
    """Whatever the line changes, a vector given is the base plus an unmasked line."""
    p = PicPair()
    _init_pics(p)
    p.port_write(0x21, mask & 0xFB)
    p.port_write(0xA1, 0x00)
    for irq, level in events:
        p.set_irq(irq, level)
        if p.output():
            v = p.acknowledge()
            if 0x08 <= v < 0x10:
                assert not (mask & 0xFB) & (1 << (v - 8)) or v == 0x0F
            else:
                assert 0x70 <= v < 0x78
            p.port_write(0xA0, 0x20)
            p.port_write(0x20, 0x20)


# --------------------------------------------------------------------------- I/O APIC


def _ioapic() -> tuple[IoApic, list[tuple[int, bool, int, int, bool]]]:
    sent: list[tuple[int, bool, int, int, bool]] = []
    return IoApic(lambda *a: sent.append(a)), sent


def _program(io: IoApic, pin: int, low: int, dest: int = 0) -> None:
    io.mmio_write(0x00, 4, 0x11 + 2 * pin)
    io.mmio_write(0x10, 4, dest << 24)
    io.mmio_write(0x00, 4, 0x10 + 2 * pin)
    io.mmio_write(0x10, 4, low)


def test_ioapic_registers() -> None:
    io, _ = _ioapic()
    io.mmio_write(0x00, 4, 0x01)
    assert io.mmio_read(0x10, 4) == 0x00170020
    io.mmio_write(0x00, 4, 0x10)
    assert io.mmio_read(0x10, 4) == 0x10000  # masked at reset
    _program(io, 3, 0x0234 | (1 << 14) | (1 << 12), dest=5)  # remote IRR, status: RO
    io.mmio_write(0x00, 4, 0x10 + 6)
    assert io.mmio_read(0x10, 4) == 0x0234
    io.mmio_write(0x00, 4, 0x11 + 6)
    assert io.mmio_read(0x10, 4) == 5 << 24


def test_ioapic_edge_delivers_on_rising_edge_only() -> None:
    io, sent = _ioapic()
    _program(io, 4, 0x31, dest=1)
    io.set_irq(4, True)
    io.set_irq(4, True)
    assert sent == [(1, False, 0, 0x31, False)]
    io.set_irq(4, False)
    io.set_irq(4, True)
    assert len(sent) == 2


def test_ioapic_level_remote_irr_and_eoi() -> None:
    io, sent = _ioapic()
    _program(io, 9, 0x41 | (1 << 15))  # level
    io.set_irq(9, True)
    io.set_irq(9, True)
    assert len(sent) == 1 and io.table[9] & (1 << 14)
    io.eoi(0x41)  # still high: again
    assert len(sent) == 2
    io.set_irq(9, False)
    io.mmio_write(0x40, 4, 0x41)  # the EOI register
    assert not io.table[9] & (1 << 14) and len(sent) == 2


def test_ioapic_masked_pin_holds_its_request() -> None:
    io, sent = _ioapic()
    io.set_irq(5, True)
    assert sent == []
    _program(io, 5, 0x35 | (1 << 15))
    assert sent == [(0, False, 0, 0x35, True)]
    assert isa_to_gsi(0) == 2 and isa_to_gsi(4) == 4


# --------------------------------------------------------------------------- local APIC


class _Bus:
    def __init__(self) -> None:
        self.ipis: list[tuple[int, int, int]] = []
        self.eois: list[int] = []
        self.woken: list[int] = []
        self.timer = 0

    def send_ipi(self, src: int, icr: int, dest: int) -> None:
        self.ipis.append((src, icr, dest))

    def eoi_broadcast(self, vector: int) -> None:
        self.eois.append(vector)

    def timer_changed(self) -> None:
        self.timer += 1

    def wake(self, index: int) -> None:
        self.woken.append(index)


class _Clock:
    def __init__(self) -> None:
        self.ns = 1_000

    def __call__(self) -> int:
        return self.ns


def _apic(bsp: bool = True) -> tuple[LocalApic, _Bus, _Clock]:
    bus, clock = _Bus(), _Clock()
    return LocalApic(0 if bsp else 1, clock, bus, bsp=bsp), bus, clock


def test_lapic_reset_state() -> None:
    a, _, _ = _apic()
    assert a.read(0x20) == 0 and a.read(0x30) == 0x00050014
    assert a.read(0xF0) == 0xFF and not a.enabled
    assert a.read(0x350) == 0x700 and a.accepts_pic()  # BSP: LINT0 ExtINT
    ap, _, _ = _apic(bsp=False)
    assert ap.read(0x20) == 1 << 24 and ap.read(0x350) == 0x10000
    assert ap.mp_state is MpState.WAIT_SIPI


def test_lapic_priority_tpr_ppr_isr_and_eoi() -> None:
    a, bus, _ = _apic()
    a.write(0xF0, 0x1FF)
    a.set_irr(0x51, False)
    a.set_irr(0x62, True)
    assert a.pending_vector() == 0x62
    assert a.acknowledge() == 0x62 and a.read(0xA0) == 0x60  # PPR from ISR
    assert a.pending_vector() is None  # 0x51 is below the one in service
    a.write(0x80, 0x70)
    assert a.read(0xA0) == 0x70
    a.write(0x80, 0)
    a.write(0xB0, 0)  # EOI of 0x62: level (TMR) -> broadcast
    assert bus.eois == [0x62]
    assert a.read(0x100 + 0x10 * 3) == 0  # ISR word 3 empty
    assert a.read(0x200 + 0x10 * 2) == 1 << (0x51 - 64)  # IRR bit 0x51
    assert a.acknowledge() == 0x51
    a.write(0xB0, 0)
    assert bus.eois == [0x62]  # edge: no broadcast


def test_lapic_disabled_masks_and_presents_nothing() -> None:
    a, _, _ = _apic()
    a.set_irr(0x40, False)
    assert a.pending_vector() is None
    a.write(0x360, 0x400)
    assert a.read(0x360) & 0x10000  # forced masked while disabled
    a.write(0xF0, 0x100)
    assert a.pending_vector() == 0x40


def test_lapic_illegal_vector_sets_esr() -> None:
    a, _, _ = _apic()
    a.write(0xF0, 0x1FF)
    a.set_irr(3, False)
    assert a.read(0x280) & 0x40 and a.irr == 0
    a.write(0x280, 0)
    assert a.read(0x280) == 0


def test_lapic_icr_goes_to_the_bus() -> None:
    a, bus, _ = _apic()
    a.write(0x310, 3 << 24)
    a.write(0x300, 0x4045)
    assert bus.ipis == [(0, 0x4045, 3)]
    assert not a.read(0x300) & (1 << 12)


def test_lapic_timer_one_shot_and_periodic() -> None:
    a, _bus, clock = _apic()
    a.write(0xF0, 0x1FF)
    a.write(0x3E0, 0x0)  # divide by 2
    a.write(0x320, 0x30)
    a.write(0x380, 100)
    assert a.deadline == 1_000 + 101 * 2
    clock.ns += 50
    assert a.read(0x390) == 100 - 25
    a.timer_expire(clock.ns)  # not due yet
    assert a.irr == 0
    clock.ns = a.deadline
    a.timer_expire(clock.ns)
    assert a.irr == 1 << 0x30 and a.deadline is None and a.read(0x390) == 0
    a.irr = 0
    a.write(0x3E0, 0xB)  # divide by 1
    a.write(0x320, 0x20030)
    a.write(0x380, 999)
    start = clock.ns
    for k in range(1, 4):
        clock.ns = start + k * 1000
        a.timer_expire(clock.ns)
        assert a.deadline == start + (k + 1) * 1000
    assert a.timer_fired == 3
    clock.ns += 10_500  # late: missed periods coalesce into one interrupt
    a.timer_expire(clock.ns)
    assert a.timer_fired == 4 and a.deadline is not None and a.deadline > clock.ns
    a.write(0x320, 0x30030)  # masked: expiries raise nothing
    a.irr = 0
    clock.ns = a.deadline
    a.timer_expire(clock.ns)
    assert a.irr == 0


@given(st.integers(1, 0xFFFF), st.sampled_from([0, 1, 2, 3, 8, 9, 10, 11]), st.integers(0, 10**7))
def test_lapic_current_count_stays_in_range(initial: int, divide: int, elapsed: int) -> None:
    a, _, clock = _apic()
    a.write(0x3E0, divide)
    a.write(0x320, 0x20030)
    a.write(0x380, initial)
    clock.ns += elapsed
    assert 0 <= a.read(0x390) <= initial


# --------------------------------------------------------------------------- router


def _router(n: int = 2) -> tuple[InterruptRouter, list[int], _Clock]:
    woken: list[int] = []
    clock = _Clock()
    r = InterruptRouter(threading.Lock(), clock, woken.append)
    bus = _Bus()
    lapics = [LocalApic(i, clock, bus, bsp=i == 0) for i in range(n)]
    pic = PicPair()
    _init_pics(pic)
    r.attach(pic, IoApic(), lapics)
    for a in lapics:
        a.write(0xF0, 0x1FF)
    return r, woken, clock


def test_router_pic_through_lint0_and_ioapic() -> None:
    r, woken, _ = _router()
    assert r.pic is not None and r.ioapic is not None
    r.pic.port_write(0x21, 0xEF)
    r.set_irq(4, True)
    assert 0 in woken and r.pending(0) and not r.pending(1)
    assert r.acknowledge(0) == 0x0C
    r.pic.port_write(0x21, 0xFF)
    _program(r.ioapic, 2, 0x50, dest=1)  # ISA IRQ 0 is IOAPIC pin 2
    r.set_irq(0, True)
    assert r.pending(1) and r.acknowledge(1) == 0x50


def test_router_ipis_shorthands_init_sipi_nmi() -> None:
    r, woken, _ = _router(3)
    bsp, ap1, ap2 = r.lapics
    bsp.write(0x300, 0x000C4500)  # INIT to all but self
    assert ap1.mp_state is MpState.WAIT_SIPI and bsp.mp_state is MpState.RUNNING
    bsp.write(0x300, 0x000C4608)  # SIPI 0x08
    assert ap1.sipi_vector == 0x08 and ap2.sipi_vector == 0x08
    bsp.write(0x300, 0x00008500)  # INIT level de-assert: nothing
    assert ap1.sipi_vector == 0x08
    bsp.write(0x310, 2 << 24)
    bsp.write(0x300, 0x41)  # fixed, physical dest 2
    assert ap2.irr == 1 << 0x41 and ap1.irr == 0
    bsp.write(0x300, 0x00044042)  # self, fixed 0x42
    assert bsp.irr == 1 << 0x42
    bsp.write(0x300, 0x00080400)  # NMI to all
    assert all(a.nmi_pending for a in r.lapics)
    ap1.write(0xD0, 0x02 << 24)  # logical, flat model: bit 1
    bsp.write(0x310, 0x02 << 24)
    bsp.write(0x300, 0x0843)
    assert ap1.irr & (1 << 0x43) and not ap2.irr & (1 << 0x43)
    assert set(woken) >= {1, 2}
    assert DeliveryMode.STARTUP == 6


def test_router_timer_thread_fires_against_the_clock() -> None:
    woken: list[int] = []
    now = [0]
    lock = threading.Lock()
    r = InterruptRouter(lock, lambda: now[0], woken.append)
    a = LocalApic(0, lambda: now[0], r, bsp=True)
    r.attach(None, None, [a])
    r.start()
    try:
        with lock:
            a.write(0xF0, 0x1FF)
            a.write(0x3E0, 0xB)
            a.write(0x320, 0x30)
            a.write(0x380, 1000)
            now[0] = 5_000  # the guest clock moved past the deadline
            r.timer_changed()
        for _ in range(200):
            with lock:
                if a.irr:
                    break
            threading.Event().wait(0.01)
        assert a.irr == 1 << 0x30 and woken
    finally:
        r.stop()


def test_lapic_timer_mode_change_stops_it() -> None:
    a, _, _clock = _apic()
    a.write(0xF0, 0x1FF)
    a.write(0x320, 0x30)
    a.write(0x380, 1000)
    assert a.deadline is not None
    a.write(0x320, 0x20030)  # to periodic: stopped, initial count cleared (as KVM)
    assert a.deadline is None and a.read(0x380) == 0
    assert a.timer_history[-1][0] == 0  # the one-shot run, recorded


def test_apic_device_follows_the_apic_base_msr() -> None:
    from accel.machine.devices import ApicDevice

    dev = ApicDevice(base=0xFEE00000)
    clock = _Clock()
    dev.lapics = [LocalApic(0, clock, _Bus(), bsp=True)]
    base = [0xFEE00900]
    dev.apic_base = lambda index: base[0]
    cr8 = [0]
    dev.get_cr8 = lambda index: cr8[0]
    dev.set_cr8 = lambda index, value: cr8.__setitem__(0, value)
    dev._write(0xF0, 4, 0x1FF)
    dev._write(0x80, 4, 0x50)
    assert cr8 == [5] and dev._read(0x80, 4) == 0x50
    cr8[0] = 2  # the guest wrote CR8
    assert dev._read(0x80, 4) == 0x20
    base[0] = 0xFEE00100  # globally disabled: the page does not answer
    assert dev._read(0x30, 4) == 0xFFFFFFFF
    dev._write(0xF0, 4, 0x1FF)
    assert not dev.lapics[0].hw_enabled and dev.lapics[0].accepts_pic()
    base[0] = 0xFEE00900  # enabled again: from the reset state
    assert dev._read(0xF0, 4) == 0xFF and dev._read(0x30, 4) == 0x00050014


def test_pit_channel0_pulses_irq0_against_guest_time() -> None:
    from accel.machine.devices import Pit

    class _Services:
        vm = None

        def __init__(self) -> None:
            self.ns = 0
            self.lines: list[tuple[int, bool]] = []

        def register_pio(self, *a: object) -> None: ...
        def register_mmio(self, *a: object) -> None: ...
        def console_write(self, data: bytes) -> None: ...
        def request_stop(self, status: int, message: str, *, kind: str) -> None: ...
        def guest_ns(self) -> int:
            return self.ns

        def set_irq(self, irq: int, level: bool) -> None:
            self.lines.append((irq, level))

    svc = _Services()
    pit = Pit(iobase=0x40)
    pit.realize(svc)  # type: ignore[arg-type]
    try:
        pit._write(0x43, 1, 0x34)  # channel 0, lo/hi, mode 2
        pit._write(0x40, 1, 0xA9)
        pit._write(0x40, 1, 0x04)  # 1193: ~1 ms
        for _ in range(300):
            svc.ns += 1_000_000  # the guest clock moves 1 ms at a time
            threading.Event().wait(0.002)
            if pit.irq0_pulses >= 3:
                break
        assert pit.irq0_pulses >= 3
        assert svc.lines[:2] == [(0, True), (0, False)]
        before = pit.irq0_pulses
        threading.Event().wait(0.05)  # the guest clock stands still: no more pulses
        assert pit.irq0_pulses == before
    finally:
        pit.unrealize()


def test_pic_state_is_the_neutral_record_both_ways() -> None:
    """A chip's state is :class:`accel.irqstate.PicState` (what KVM's in-kernel PIC is
    read into too), single_mode included, and loads back into an equal chip."""
    from accel.irqstate import PicState
    from accel.machine.interrupts import Pic

    chip = Pic(master=False)
    chip.elcr_mask = 0xDE
    for port, value in ((0, 0x13), (1, 0x28), (1, 0x01), (1, 0xFB)):  # ICW1 SNGL+IC4, ICW2-4, OCW1
        chip.write(port, value)
    st = chip.state()
    assert isinstance(st, PicState)
    assert (st.irq_base, st.imr, st.single_mode, st.init_state) == (0x28, 0xFB, 1, 0)
    other = Pic(master=False)
    other.elcr_mask = 0xDE
    other.load(st)
    assert other.state() == st
