"""The whole suite on this host's registered accelerators, through the runner.

KVM and TCG pass every check (with their declared exceptions); Xen, where registered,
is reported unavailable with its reason, never failed.
"""

from __future__ import annotations

import accel
from accel.testing.results import Status
from accel.testing.runner import run_suite


def test_registered_accelerators_conform() -> None:
    registry = accel.default_registry()
    names = list(registry.accelerators())
    result = run_suite(names, registry=registry)
    failures = [(o.check, o.accelerator, o.detail) for o in result.failed]
    assert not failures, result.output[-4000:]
    assert result.ok
    availability = registry.probe_all()
    for name in names:
        outcomes = [o for o in result.outcomes if o.accelerator == name]
        assert outcomes, f"no results for {name}"
        if availability[name].available:
            assert all(o.status is not Status.UNAVAILABLE for o in outcomes)
        else:
            unavailable = [o for o in outcomes if o.status is Status.UNAVAILABLE]
            assert unavailable, f"{name} is unavailable but no check says so"
            assert all(o.detail for o in unavailable)
