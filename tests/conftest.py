"""Shared test configuration.

Tests marked ``kvm`` need a usable /dev/kvm. Where it is missing they skip with the
reason; where it is usable and ACCEL_REQUIRE_KVM=1 (set by .ci/run), a skipped KVM test
is a failure, so CI cannot go green without having run them.
"""

from __future__ import annotations

import os

import pytest


def kvm_unusable_reason() -> str | None:
    """None when /dev/kvm can be opened read-write, else why not."""
    path = os.environ.get("ACCEL_KVM_DEVICE", "/dev/kvm")
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        return f"{path} is not usable: {exc.strerror}"
    os.close(fd)
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = kvm_unusable_reason()
    if reason is None:
        return
    skip = pytest.mark.skip(reason=f"needs KVM: {reason}")
    for item in items:
        if "kvm" in item.keywords:
            item.add_marker(skip)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if (
        os.environ.get("ACCEL_REQUIRE_KVM") == "1"
        and report.skipped
        and "kvm" in item.keywords
        and kvm_unusable_reason() is None
    ):
        report.outcome = "failed"
        report.longrepr = (
            f"{item.nodeid}: /dev/kvm is usable here but this KVM test was skipped "
            f"({report.longrepr!r}); ACCEL_REQUIRE_KVM=1 forbids that"
        )
