"""``irqchip``: marks the accelerator's in-kernel interrupt controller.

The machine creates it when the machine type asks for the irqchip in the accelerator
and the accelerator reports one (:attr:`accel.Capability.IRQCHIP`); it is not
user-creatable, and its state lives in the accelerator.
"""

from __future__ import annotations

from .base import Device

__all__ = ["Irqchip"]


class Irqchip(Device):
    """The accelerator's in-kernel interrupt controller (PIC/IOAPIC/LAPIC)."""

    def state(self) -> dict[str, object]:
        return {"where": "accelerator"}
