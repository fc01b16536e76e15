"""The userspace interrupt controllers as devices: ``isa-i8259`` (the PIC pair),
``ioapic`` and ``apic`` (every vCPU's local APIC, one MMIO page at the APIC base).

The machine creates them (they are not user-creatable) when the interrupt controller is
not in the accelerator (:attr:`accel.Capability.IRQCHIP` no, or ``kernel-irqchip=off``)
and the accelerator takes injected interrupts (:attr:`accel.Capability.INTERRUPT_INJECTION`),
then wires their models together through an
:class:`~accel.machine.interrupts.InterruptRouter`. The models are in
:mod:`accel.machine.interrupts`.
"""

from __future__ import annotations

from collections.abc import Callable

from ...plugin import PropertySpec
from ..interrupts import APIC_BASE, IOAPIC_BASE, IoApic, LocalApic, PicPair
from .base import Device, MachineServices, PropValue, port_property

__all__ = ["ApicDevice", "IoApicDevice", "PicDevice"]


class PicDevice(Device):
    """``isa-i8259``: master (``iobase``), slave (``slave-iobase``) and the ELCR pair."""

    PROPERTIES = (
        port_property("iobase", 0x20, "the master 8259's two ports"),
        port_property("slave-iobase", 0xA0, "the slave 8259's two ports (cascaded on IRQ 2)"),
        port_property("elcr-iobase", 0x4D0, "the edge/level control registers ELCR1/ELCR2"),
    )

    def __init__(self, **props: PropValue) -> None:
        super().__init__(**props)
        self.model = PicPair()
        self._ports: dict[int, int] = {}

    def realize(self, machine: MachineServices) -> None:
        super().realize(machine)
        bases = (
            (int(self.props["iobase"]), 0x20),
            (int(self.props["slave-iobase"]), 0xA0),
            (int(self.props["elcr-iobase"]), 0x4D0),
        )
        for base, canonical in bases:
            for i in range(2):
                self._ports[base + i] = canonical + i
            machine.register_pio(base, 2, self._read, self._write, self)

    def _read(self, port: int, size: int) -> int:
        return self.model.port_read(self._ports[port])

    def _write(self, port: int, size: int, value: int) -> None:
        self.model.port_write(self._ports[port], value & 0xFF)

    def state(self) -> dict[str, object]:
        return self.model.state()


class IoApicDevice(Device):
    """``ioapic``: the 24-pin I/O APIC at ``base``."""

    PROPERTIES = (
        PropertySpec("base", int, IOAPIC_BASE, "guest-physical address of the register window",
                     min=0, max=(1 << 32) - 0x1000),
    )  # fmt: skip

    def __init__(self, **props: PropValue) -> None:
        super().__init__(**props)
        self.model = IoApic()

    def realize(self, machine: MachineServices) -> None:
        super().realize(machine)
        machine.register_mmio(
            int(self.props["base"]), 0x1000, self.model.mmio_read, self.model.mmio_write, self
        )

    def state(self) -> dict[str, object]:
        return self.model.state()


class _Unwired:
    """The bus of a local APIC not yet wired into a router (nothing to deliver to)."""

    def send_ipi(self, src: int, icr: int, dest: int) -> None: ...
    def eoi_broadcast(self, vector: int) -> None: ...
    def timer_changed(self) -> None: ...
    def wake(self, index: int) -> None: ...


class ApicDevice(Device):
    """``apic``: one local APIC per vCPU, all behind the page at ``base``; an access
    goes to the APIC of the vCPU that made it (:attr:`current_cpu`)."""

    PROPERTIES = (
        PropertySpec("base", int, APIC_BASE, "guest-physical address of the xAPIC page "
                     "(IA32_APIC_BASE's reset value; a relocated base is not followed)",
                     min=0, max=(1 << 32) - 0x1000),
    )  # fmt: skip

    def __init__(self, **props: PropValue) -> None:
        super().__init__(**props)
        self.lapics: list[LocalApic] = []
        #: The index of the vCPU whose exit is being handled (set by the machine).
        self.current_cpu: Callable[[], int] = lambda: 0
        #: IA32_APIC_BASE of vCPU ``index`` (set by the machine where the accelerator
        #: lets it read MSRs; None: taken as enabled).
        self.apic_base: Callable[[int], int | None] = lambda index: None
        #: CR8 of vCPU ``index``, read and written (set by the machine; None: the TPR
        #: lives in the page only). CR8 is TPR[7:4] (the SDM's "CR8 and the TPR").
        self.get_cr8: Callable[[int], int | None] = lambda index: None
        self.set_cr8: Callable[[int, int], None] = lambda index, value: None

    def realize(self, machine: MachineServices) -> None:
        super().realize(machine)
        vm = machine.vm
        count = len(vm.vcpus) if vm is not None else 1
        bus = _Unwired()
        self.lapics = [
            LocalApic(i, machine.guest_ns, bus, bsp=i == 0) for i in range(max(count, 1))
        ]
        machine.register_mmio(int(self.props["base"]), 0x1000, self._read, self._write, self)

    def _enabled(self, index: int) -> bool:
        """IA32_APIC_BASE.EN of the accessing vCPU. A globally disabled APIC does not
        answer its page (reads all ones, writes go nowhere); enabled again, it starts
        from its reset state (the SDM: the APIC's state is lost when it is disabled)."""
        base = self.apic_base(index)
        lapic = self.lapics[index]
        enabled = base is None or bool(base & (1 << 11))
        if enabled and not lapic.hw_enabled:
            lapic.reset()
        lapic.hw_enabled = enabled
        return enabled

    def sync_tpr(self, index: int) -> None:
        """The TPR from the vCPU's CR8 (the guest may have written either)."""
        cr8 = self.get_cr8(index)
        if cr8 is not None:
            lapic = self.lapics[index]
            if lapic.tpr >> 4 != cr8 & 0xF:
                lapic.tpr = (cr8 & 0xF) << 4

    def _read(self, offset: int, size: int) -> int:
        index = self.current_cpu()
        if not self._enabled(index):
            return 0xFFFFFFFF
        if offset & 0xFF0 in (0x80, 0xA0):
            self.sync_tpr(index)
        return self.lapics[index].mmio_read(offset, size)

    def _write(self, offset: int, size: int, value: int) -> None:
        index = self.current_cpu()
        if self._enabled(index):
            lapic = self.lapics[index]
            lapic.mmio_write(offset, size, value)
            if offset == 0x80:
                self.set_cr8(index, lapic.tpr >> 4)

    def state(self) -> dict[str, object]:
        return {"cpus": [a.state() for a in self.lapics]}
