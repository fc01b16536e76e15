"""Machines and devices, accelerator-neutral.

:class:`Machine` builds a machine of a versioned :class:`MachineType` on any accelerator:
CPU model, platform devices, and the clock devices the accelerator's plugin chooses
after the vCPUs exist. See docs/machines.md.
"""

from __future__ import annotations

from .cpu import CPU_MODELS, CpuModel, cpu_models, resolve_cpu
from .device import Device, DeviceRegistry, parse_device_spec
from .machine import (
    DeviceDecision,
    Machine,
    MachinePlan,
    RunResult,
    RunState,
    parse_machine_spec,
)
from .types import MACHINE_TYPES, MachineType, PlatformDevice, machine_types, resolve_machine_type

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
