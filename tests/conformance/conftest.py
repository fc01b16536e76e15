"""tests/conformance: the suite module needs the accel pytest plugin.

``test_on_this_host.py`` imports the conformance suite so that ``pytest --accel
kvm,tcg,xen`` runs it on this host's accelerators. That needs the plugin (the ``pytest11``
entry point ``accel``, or ``-p accel.testing.pytest_plugin``); without it those tests
skip with that reason instead of failing for a missing fixture.
"""

from __future__ import annotations

from pathlib import Path

import pytest

SUITE_MODULE = Path(__file__).with_name("test_on_this_host.py")


def _plugin_loaded(config: pytest.Config) -> bool:
    pm = config.pluginmanager
    return pm.has_plugin("accel") or pm.has_plugin("accel.testing.pytest_plugin")


def pytest_configure(config: pytest.Config) -> None:
    if not _plugin_loaded(config):  # the suite's marker, so importing it does not warn
        config.addinivalue_line("markers", "accel_feature(*names): conformance features")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _plugin_loaded(config):
        return
    skip = pytest.mark.skip(
        reason="the accel pytest plugin is not loaded: install accel (pytest11 entry point "
        "'accel') or run pytest with -p accel.testing.pytest_plugin"
    )
    for item in items:
        if item.path == SUITE_MODULE:
            item.add_marker(skip)
