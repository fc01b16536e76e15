"""Machines and devices, accelerator-neutral.

:class:`Machine` builds a machine of a versioned :class:`MachineType` on any accelerator:
CPU model, platform devices, and the clock devices the accelerator's plugin chooses
after the vCPUs exist. See docs/machines.md.

One module per concept:

* :mod:`accel.machine.types` — machine types and their compat properties, machine specs;
* :mod:`accel.machine.cpu` — CPU models and ``-cpu`` specs;
* :mod:`accel.machine.devices` — the devices: :mod:`~accel.machine.devices.base` (the
  :class:`Device` base and the :class:`MachineServices` protocol a device sees the
  machine through), then one module per built-in device (debug ports, RTC, HPET, PIT,
  the irqchip marker) and :func:`~accel.machine.devices.builtin_device_types`;
* :mod:`accel.machine.device` — :class:`DeviceRegistry` (built-in plus plugin device
  types, the one path that creates devices), property checking, device specs;
* :mod:`accel.machine.runstate` — :class:`RunState`;
* :mod:`accel.machine.machine` — :class:`Machine`: initialisation, run state, the vCPU
  run loop.

The machine model never imports :mod:`accel.snapshot`: the snapshot layer builds on it
and saves and restores machines (:func:`accel.snapshot.save_machine`,
:func:`accel.snapshot.restore_machine`); :mod:`accel.runner`, above both, saves and
restores around ``accel run``.
"""

from __future__ import annotations

from .cpu import CPU_MODELS, CpuModel, cpu_models, resolve_cpu
from .device import DeviceRegistry, parse_device_spec
from .devices.base import Device, MachineServices
from .machine import DeviceDecision, Machine, MachinePlan, RunResult
from .runstate import RunState
from .types import (
    MACHINE_TYPES,
    MachineType,
    PlatformDevice,
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
    "MachineServices",
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
