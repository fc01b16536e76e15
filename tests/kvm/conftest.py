"""Fixtures for the KVM plugin tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from accel_kvm import KvmAccelerator


@pytest.fixture
def acc() -> Iterator[KvmAccelerator]:
    a = KvmAccelerator()
    try:
        yield a
    finally:
        a.close()
