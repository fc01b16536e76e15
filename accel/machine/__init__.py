"""Machines and devices, accelerator-neutral.

:class:`Machine` builds a machine of a versioned :class:`MachineType` on any accelerator:
CPU model, platform devices, and the clock devices the accelerator's plugin chooses
after the vCPUs exist. See docs/machines.md.

The names below are imported from their submodules on first use, so importing one
submodule (``accel.machine.cli``) does not load the others.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .cpu import CPU_MODELS, CpuModel, cpu_models, resolve_cpu
    from .device import Device, DeviceRegistry, parse_device_spec
    from .machine import (
        MACHINE_TYPES,
        DeviceDecision,
        Machine,
        MachinePlan,
        MachineType,
        PlatformDevice,
        RunResult,
        RunState,
        machine_types,
        parse_machine_spec,
        resolve_machine_type,
    )

__all__ = [
    "CPU_MODELS",
    "MACHINE_TYPES",
    "CpuModel",
    "Device",
    "DeviceDecision",
    "DeviceRegistry",
    "Machine",
    "MachinePlan",
    "MachineType",
    "PlatformDevice",
    "RunResult",
    "RunState",
    "cpu_models",
    "machine_types",
    "parse_device_spec",
    "parse_machine_spec",
    "resolve_cpu",
    "resolve_machine_type",
]

#: The submodule each public name comes from.
_LAZY = {
    "CPU_MODELS": "cpu",
    "CpuModel": "cpu",
    "cpu_models": "cpu",
    "resolve_cpu": "cpu",
    "Device": "device",
    "DeviceRegistry": "device",
    "parse_device_spec": "device",
    "DeviceDecision": "machine",
    "Machine": "machine",
    "MachinePlan": "machine",
    "RunResult": "machine",
    "RunState": "machine",
    "parse_machine_spec": "machine",
    "MACHINE_TYPES": "machine",
    "MachineType": "machine",
    "PlatformDevice": "machine",
    "machine_types": "machine",
    "resolve_machine_type": "machine",
}

#: Submodules reachable as attributes before anything imported them.
_SUBMODULES = frozenset({"cpu", "device", "machine", "types"})

if not TYPE_CHECKING:
    from .._lazy import exports

    __getattr__, __dir__ = exports(
        globals(), {name: f".{module}" for name, module in _LAZY.items()}, _SUBMODULES
    )
    del exports
