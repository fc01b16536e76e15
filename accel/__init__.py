"""accel: virtualization accelerators behind one plugin interface.

The public API. ``accel.open("kvm:tcg")`` opens the first usable accelerator of a list,
``accel.open()`` the best one available; ``accel.register(plugin)`` adds a plugin from
code. Accelerators come from plugins registered under the ``accel.plugins`` entry-point
group (see docs/plugin-authors.md); this package never names one.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
        InterruptWindowExit,
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
    from .cpustate import DebugRegisters, FpuState, MpState, VcpuEvents
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
    "DebugRegisters",
    "DescriptorTable",
    "DeviceType",
    "Exit",
    "FpuState",
    "HaltExit",
    "InternalErrorExit",
    "InterruptWindowExit",
    "InterruptedExit",
    "IoDirection",
    "MachineView",
    "MemoryRegion",
    "MmioExit",
    "MpState",
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
    "VcpuEvents",
    "VmOptions",
    "accelerators",
    "default_registry",
    "errors",
    "hookimpl",
    "open",
    "real_mode_sregs",
    "register",
]


#: Where each lazily imported public name lives: name -> submodule of this package.
#: ``import accel`` imports none of them; the first ``accel.NAME`` (or ``from accel
#: import NAME``) imports its submodule and caches the value in this module's globals.
_LAZY: dict[str, str] = {
    "VM": "accelerator",
    "Accelerator": "accelerator",
    "Availability": "accelerator",
    "ClockData": "accelerator",
    "CpuSpec": "accelerator",
    "DescriptorTable": "accelerator",
    "Exit": "accelerator",
    "HaltExit": "accelerator",
    "InternalErrorExit": "accelerator",
    "InterruptedExit": "accelerator",
    "InterruptWindowExit": "accelerator",
    "FpuState": "cpustate",
    "DebugRegisters": "cpustate",
    "VcpuEvents": "cpustate",
    "MpState": "cpustate",
    "IoDirection": "accelerator",
    "MemoryRegion": "accelerator",
    "MmioExit": "accelerator",
    "PortIoExit": "accelerator",
    "Registers": "accelerator",
    "Segment": "accelerator",
    "ShutdownExit": "accelerator",
    "SpecialRegisters": "accelerator",
    "Vcpu": "accelerator",
    "VmOptions": "accelerator",
    "real_mode_sregs": "accelerator",
    "Capability": "capabilities",
    "CapabilityAnswer": "capabilities",
    "CapabilitySet": "capabilities",
    "ClockFlags": "capabilities",
    "Support": "capabilities",
    "AccelError": "errors",
    "AcceleratorInfo": "plugin",
    "ClockDeviceChoice": "plugin",
    "DeviceType": "plugin",
    "MachineView": "plugin",
    "PropertySpec": "plugin",
    "hookimpl": "plugin",
    "PluginRecord": "registry",
    "Registry": "registry",
    "default_registry": "registry",
}

#: Submodules reachable as attributes before anything imported them (``accel.errors``).
_SUBMODULES = frozenset(
    {"accelerator", "capabilities", "errors", "hookspecs", "plugin", "registry"}
)


def __getattr__(name: str) -> Any:
    """Import a public name's submodule on first use (PEP 562) and cache the value."""
    module = _LAZY.get(name)
    if module is not None:
        value = getattr(importlib.import_module(f".{module}", __name__), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def open(spec: str | Iterable[str] | None = None) -> Accelerator:
    """The first usable accelerator of ``spec`` (``"kvm:tcg"``), or the best available."""
    from .registry import default_registry

    return default_registry().open(spec)


def register(plugin: object, name: str | None = None) -> str:
    """Register a plugin from code on the default registry; returns its name."""
    from .registry import default_registry

    return default_registry().register(plugin, name)


def accelerators() -> dict[str, AcceleratorInfo]:
    """Every registered accelerator, highest priority first."""
    from .registry import default_registry

    return default_registry().accelerators()
