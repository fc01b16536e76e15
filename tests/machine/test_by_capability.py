"""Machine initialisation decides by what the accelerator reports, never by its name;
devices see the machine only through :class:`accel.machine.MachineServices`."""

from __future__ import annotations

import pytest

from accel.machine import Machine, MachineServices
from accel.machine.device import Device
from accel.machine.devices import PIT_HZ, DebugExit, Hpet, Pit
from accel.machine.devices.base import PioRead, PioWrite
from accel.registry import Registry
from tests.fakes import FakeAccelerator, all_answers

NAMES = ["kvm", "tcg", "xen", "someone-elses"]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(("irqchip", "pit"), [(True, True), (True, False), (False, False)])
def test_irqchip_and_pit_follow_the_capabilities_whatever_the_name(
    name: str, irqchip: bool, pit: bool
) -> None:
    acc = FakeAccelerator(name, caps=all_answers(irqchip=irqchip, pit=pit))
    with Machine(acc, "pc", registry=Registry(entry_points=False)) as m:
        assert acc.options is not None
        assert (acc.options.irqchip, acc.options.pit) == (irqchip, irqchip and pit)
        assert m.plan is not None
        assert ("irqchip" in m.plan.device_names()) is irqchip
        # No plugin is registered to answer: the type's platform devices stay, whatever
        # the accelerator is called.
        assert {"isa-pit", "hpet", "mc146818rtc"} <= m.plan.device_names()


@pytest.mark.parametrize("name", NAMES)
def test_kernel_irqchip_off_keeps_it_out_whatever_the_accelerator_reports(name: str) -> None:
    acc = FakeAccelerator(name)
    plan = Machine.describe(acc, "pc,kernel-irqchip=off", registry=Registry(entry_points=False))
    irq = next(d for d in plan.decisions if d.name == "irqchip")
    assert not irq.present and "kernel-irqchip=off" in irq.reason


class Services:
    """Only what :class:`MachineServices` promises: no accelerator, no Machine."""

    vm = None

    def __init__(self) -> None:
        self.now = 0
        self.pio: dict[int, tuple[PioRead | None, PioWrite | None]] = {}
        self.mmio: list[tuple[int, int, PioRead | None, PioWrite | None]] = []
        self.stops: list[tuple[int, str]] = []
        self.irqs: list[tuple[int, bool]] = []

    def register_pio(
        self, base: int, count: int, read: PioRead | None, write: PioWrite | None, device: Device
    ) -> None:
        for port in range(base, base + count):
            self.pio[port] = (read, write)

    def register_mmio(
        self, base: int, size: int, read: PioRead | None, write: PioWrite | None, device: Device
    ) -> None:
        self.mmio.append((base, size, read, write))

    def console_write(self, data: bytes) -> None:
        pass

    def request_stop(self, status: int, message: str, *, kind: str) -> None:
        self.stops.append((status, kind))

    def guest_ns(self) -> int:
        return self.now

    def set_irq(self, irq: int, level: bool) -> None:
        self.irqs.append((irq, level))


def test_devices_need_only_machine_services() -> None:
    services: MachineServices = Services()
    assert isinstance(services, Services)

    pit = Pit(iobase=0x40)
    pit.realize(services)
    _read, write = services.pio[0x43]
    assert write is not None
    write(0x43, 1, 0x34)  # channel 0, lo/hi, mode 2
    _r, write0 = services.pio[0x40]
    assert write0 is not None
    write0(0x40, 1, 0x00)
    write0(0x40, 1, 0x10)  # reload 0x1000
    services.now = 1_000_000  # 1 ms of guest time
    assert pit.count(0) == 0x1000 - (1_000_000 * PIT_HZ // 1_000_000_000) % 0x1000

    hpet = Hpet(base=0xFED00000, timers=3)
    hpet.realize(services)
    ((base, _size, hread, hwrite),) = services.mmio
    assert base == 0xFED00000 and hread is not None and hwrite is not None
    hwrite(0x010, 8, 1)  # enable
    services.now += 1_000  # 1 us = 100 ticks of 10 ns
    assert hread(0x0F0, 8) == 100

    exit_dev = DebugExit(iobase=0xF4, iosize=1)
    exit_dev.realize(services)
    _r, ewrite = services.pio[0xF4]
    assert ewrite is not None
    ewrite(0xF4, 1, 0x10)
    assert services.stops == [(0x21, "debug-exit")]
