"""accel: virtualization accelerators behind one plugin interface.

The public API. ``accel.open("kvm:tcg")`` opens the first usable accelerator of a list,
``accel.open()`` the best one available; ``accel.register(plugin)`` adds a plugin from
code. Accelerators come from plugins registered under the ``accel.plugins`` entry-point
group (see docs/plugin-authors.md); this package never names one.
"""

from __future__ import annotations

from collections.abc import Iterable

from . import errors
from .accelerator import (
    VM,
    Accelerator,
    Availability,
    ClockData,
    CpuSpec,
    DescriptorTable,
    Exit,
    HaltExit,
    InternalErrorExit,
    InterruptedExit,
    IoDirection,
    MemoryRegion,
    MmioExit,
    PortIoExit,
    Registers,
    Segment,
    ShutdownExit,
    SpecialRegisters,
    Vcpu,
    VmOptions,
    real_mode_sregs,
)
from .capabilities import Capability, CapabilityAnswer, CapabilitySet, ClockFlags, Support
from .errors import AccelError
from .plugin import (
    AcceleratorInfo,
    ClockDeviceChoice,
    DeviceType,
    MachineView,
    PropertySpec,
    hookimpl,
)
from .registry import PluginRecord, Registry, default_registry

__version__ = "0.1.0"

__all__ = [
    "VM",
    "AccelError",
    "Accelerator",
    "AcceleratorInfo",
    "Availability",
    "Capability",
    "CapabilityAnswer",
    "CapabilitySet",
    "ClockData",
    "ClockDeviceChoice",
    "ClockFlags",
    "CpuSpec",
    "DescriptorTable",
    "DeviceType",
    "Exit",
    "HaltExit",
    "InternalErrorExit",
    "InterruptedExit",
    "IoDirection",
    "MachineView",
    "MemoryRegion",
    "MmioExit",
    "PluginRecord",
    "PortIoExit",
    "PropertySpec",
    "Registers",
    "Registry",
    "Segment",
    "ShutdownExit",
    "SpecialRegisters",
    "Support",
    "Vcpu",
    "VmOptions",
    "accelerators",
    "default_registry",
    "errors",
    "hookimpl",
    "open",
    "real_mode_sregs",
    "register",
]


def open(spec: str | Iterable[str] | None = None) -> Accelerator:
    """The first usable accelerator of ``spec`` (``"kvm:tcg"``), or the best available."""
    return default_registry().open(spec)


def register(plugin: object, name: str | None = None) -> str:
    """Register a plugin from code on the default registry; returns its name."""
    return default_registry().register(plugin, name)


def accelerators() -> dict[str, AcceleratorInfo]:
    """Every registered accelerator, highest priority first."""
    return default_registry().accelerators()
