"""The conformance suite and its guest programs.

* :mod:`accel.testing.checks` — every conformance check as a plain ``check_*`` function
  that raises :class:`AssertionError` (callable from any test runner, re-exported here);
* :mod:`accel.testing.programs` — the guest program library and ``run_program``;
* :mod:`accel.testing.features` — the closed list of features an accelerator may
  declare unsupported;
* :mod:`accel.testing.pytest_plugin` — the pytest plugin (``--accel``, fixtures) and
  :mod:`accel.testing.suite`, the tests it runs on every accelerator;
* :mod:`accel.testing.runner` — ``run_suite``, behind ``accel conformance``.

Importing this package does not import pytest.
"""

from __future__ import annotations

from .checks import (
    check_availability,
    check_capabilities_answered,
    check_clock,
    check_clock_devices,
    check_clock_rate,
    check_closed_handles,
    check_code_segment_limit,
    check_declarations,
    check_exception_delivery,
    check_guest_program,
    check_interrupt_injection,
    check_memory_bounds,
    check_multiple_vms,
    check_pause,
    check_register_roundtrip,
    check_snapshot_roundtrip,
    check_unavailable_contract,
    check_unbacked_fetch,
    check_unknown_only_where_declared,
    check_vcpu_reset_state,
    check_vm_capabilities,
    check_vm_lifecycle,
)
from .features import FEATURES, Feature

__all__ = [
    "FEATURES",
    "Feature",
    "check_availability",
    "check_capabilities_answered",
    "check_clock",
    "check_clock_rate",
    "check_clock_devices",
    "check_closed_handles",
    "check_code_segment_limit",
    "check_declarations",
    "check_exception_delivery",
    "check_interrupt_injection",
    "check_guest_program",
    "check_memory_bounds",
    "check_multiple_vms",
    "check_pause",
    "check_register_roundtrip",
    "check_snapshot_roundtrip",
    "check_unbacked_fetch",
    "check_unavailable_contract",
    "check_unknown_only_where_declared",
    "check_vcpu_reset_state",
    "check_vm_capabilities",
    "check_vm_lifecycle",
]
