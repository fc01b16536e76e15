"""The userspace interrupt-controller set: the 8259 PIC pair (:mod:`.pic`), the I/O
APIC (:mod:`.ioapic`), a local APIC per vCPU (:mod:`.lapic`) and the router between them
(:mod:`.router`).

A machine uses them when its accelerator has no in-kernel interrupt controller
(:attr:`accel.Capability.IRQCHIP` no, or ``kernel-irqchip=off``) and can take injected
interrupts (:attr:`accel.Capability.INTERRUPT_INJECTION`): the devices ``isa-i8259``,
``ioapic`` and ``apic`` (:mod:`accel.machine.devices.intc`) hold the models, and the
machine's vCPU loops inject what :meth:`InterruptRouter.acknowledge` gives through
:meth:`accel.Vcpu.inject_interrupt`.
"""

from __future__ import annotations

from .ioapic import IOAPIC_BASE, IOAPIC_PINS, IoApic
from .lapic import APIC_BASE, ApicBus, DeliveryMode, LocalApic, MpState
from .pic import Pic, PicPair
from .router import InterruptRouter, isa_to_gsi

__all__ = [
    "APIC_BASE",
    "IOAPIC_BASE",
    "IOAPIC_PINS",
    "ApicBus",
    "DeliveryMode",
    "InterruptRouter",
    "IoApic",
    "LocalApic",
    "MpState",
    "Pic",
    "PicPair",
    "isa_to_gsi",
]
