"""The pytest plugin itself, run through pytester: ids, skips, declared exceptions, options."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

HERE = Path(__file__).resolve().parent

CONFTEST = f"""
import sys
sys.path.insert(0, {str(HERE.parent)!r})
import accel
from conformance.broken import broken_info, plugin_of

def pytest_accel_registry(config):
    import dataclasses
    reg = accel.Registry(entry_points=False)
    good = broken_info("none")
    good = dataclasses.replace(good, name="good")
    declared = dataclasses.replace(
        broken_info("clock-backwards"), name="declared",
        unsupported={{**good.unsupported_features, "clock": "our clock is odd"}},
    )
    unneeded = dataclasses.replace(
        good, name="unneeded", unsupported={{**good.unsupported_features, "pause": "maybe"}}
    )
    backwards = dataclasses.replace(broken_info("clock-backwards"), name="backwards")
    gone = accel.AcceleratorInfo(
        name="gone", summary="never here",
        factory=lambda: _Gone(),
    )
    reg.register(plugin_of(good, declared, unneeded, backwards, gone), name="test")
    return reg

class _Gone(accel.Accelerator):
    name = "gone"
    def probe(self):
        return accel.Availability.unavailable("no such device", hint="buy one")
    def capabilities(self):
        raise accel.errors.AcceleratorUnavailableError("gone", accelerator="gone")
    def create_vm(self, options=None):
        raise accel.errors.AcceleratorUnavailableError("gone", accelerator="gone")
    def _close(self):
        pass
"""


@pytest.fixture
def suite_dir(pytester: pytest.Pytester) -> pytest.Pytester:
    pytest.importorskip("unicorn")
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_mine="from accel.testing.suite import *\n")
    return pytester


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    # ``-p no:accel`` keeps the entry-point copy (once installed) from loading twice.
    return pytester.runpytest(
        "-p", "no:accel", "-p", "accel.testing.pytest_plugin", "-rsw", "-v", *args
    )


def test_ids_skips_and_declared_exceptions(suite_dir: pytest.Pytester) -> None:
    report = suite_dir.path / "report.json"
    result = _run(
        suite_dir,
        "--accel",
        "good,declared,unneeded,backwards,gone",
        "--accel-report",
        str(report),
        "-k",
        "clock or pause or availability",
    )
    result.stdout.fnmatch_lines_random(
        [
            "*test_clock?good? PASSED*",
            "*test_clock?backwards? FAILED*",
            "*test_clock?declared? SKIPPED*",
            "*test_pause?unneeded? PASSED*",
            "*test_availability?gone? PASSED*",
            "*test_clock?gone? SKIPPED*",
            "*gone is unavailable: no such device (hint: buy one)*",
            "*declared declares unsupported: clock: our clock is odd*",
            "*unneeded declares 'pause' unsupported, but test_pause passes on it*",
            "*unneeded declares 'pause' unsupported, but every check needing it passes "
            "(test_pause): the declaration is not needed*",
        ]
    )
    outcomes = {(o["check"], o["accelerator"]): o for o in json.loads(report.read_text())}
    assert outcomes["test_clock", "backwards"]["status"] == "fail"
    assert outcomes["test_clock", "declared"]["status"] == "declared-unsupported"
    assert outcomes["test_pause", "unneeded"]["status"] == "declared-unsupported-but-passes"
    assert outcomes["test_clock", "gone"]["status"] == "unavailable"
    assert outcomes["test_clock", "good"]["status"] == "pass"
    assert result.ret == 1


def test_default_is_every_available_accelerator(suite_dir: pytest.Pytester) -> None:
    result = _run(suite_dir, "-k", "test_clock")
    result.stdout.fnmatch_lines_random(["*test_clock?good? PASSED*"])
    assert "gone" not in result.stdout.str()


def test_ini_option_selects_accelerators(suite_dir: pytest.Pytester) -> None:
    suite_dir.makeini("[pytest]\naccel = unneeded\n")
    result = _run(suite_dir, "-k", "test_pause")
    result.stdout.fnmatch_lines_random(["*test_pause?unneeded? PASSED*"])
    assert "[good]" not in result.stdout.str()


def test_unknown_name_is_a_usage_error(suite_dir: pytest.Pytester) -> None:
    result = _run(suite_dir, "--accel", "good,goood")
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*--accel: unknown accelerator 'goood'*"])


def test_tests_without_the_fixtures_are_left_alone(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_plain=textwrap.dedent(
            """
            import pytest

            @pytest.mark.parametrize("x", [1, 2])
            def test_plain(x):
                assert x

            def test_other(tmp_path):
                assert tmp_path.exists()

            @pytest.mark.parametrize("accel_name", ["mine"])
            def test_own_accel_name(accel_name):
                assert accel_name == "mine"
            """
        )
    )
    result = _run(pytester)
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(
        ["*test_plain?1? PASSED*", "*test_other PASSED*", "*test_own_accel_name?mine? PASSED*"]
    )


def test_fixtures_for_authors_own_tests(suite_dir: pytest.Pytester) -> None:
    suite_dir.makepyfile(
        test_own=textwrap.dedent(
            """
            def test_uses_fixtures(accel_name, accel_info, accel_declared, machine, accel_registry):
                assert accel_info.name == accel_name
                assert machine.vm is not None and machine.vcpus
                assert accel_registry.info(accel_name) is accel_info or accel_info.name
                assert "pause" in accel_declared or accel_name != "unneeded"
            """
        )
    )
    result = _run(suite_dir, "--accel", "good,unneeded,gone", "test_own.py")
    result.stdout.fnmatch_lines_random(
        [
            "*test_uses_fixtures?good? PASSED*",
            "*test_uses_fixtures?unneeded? PASSED*",
            "*test_uses_fixtures?gone? SKIPPED*",
        ]
    )
    assert result.ret == 0
