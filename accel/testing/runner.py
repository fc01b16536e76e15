"""Run the conformance suite in-process and collect its matrix.

:func:`run_suite` runs pytest on :mod:`accel.testing.suite` with the accel plugin, in an
isolated configuration (no ini file, no cache, no conftest of the current directory),
and returns a :class:`~accel.testing.results.SuiteResult`. ``accel conformance`` is a
thin shell around it.

Example::

    result = run_suite(["kvm", "tcg"], kernel_tests="kut/", kernel_tests_expected="kut/results.tsv")
    print("\\n".join(format_matrix(result)))
    sys.exit(0 if result.ok else 1)
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from ..registry import Registry
from .kernel_tests import KernelRunner
from .results import CheckOutcome, SuiteResult

__all__ = ["SUITE_MODULE", "run_suite"]

#: The module pytest runs: one body per check, parametrised over accelerators.
SUITE_MODULE = "accel.testing.suite"


class _Session:
    """Hands the registry to the plugin and keeps the config to read the outcomes from."""

    def __init__(self, registry: Registry | None, kernel_runner: KernelRunner | None) -> None:
        self.registry = registry
        self.kernel_runner = kernel_runner
        self.config: pytest.Config | None = None

    def pytest_accel_registry(self, config: pytest.Config) -> Registry | None:
        return self.registry

    def pytest_accel_kernel_runner(self, config: pytest.Config) -> KernelRunner | None:
        return self.kernel_runner

    def pytest_configure(self, config: pytest.Config) -> None:
        self.config = config


def run_suite(
    names: Sequence[str] | None = None,
    *,
    registry: Registry | None = None,
    pytest_args: Sequence[str] = (),
    quiet: bool = True,
    kernel_tests: str | os.PathLike[str] | None = None,
    kernel_tests_expected: str | os.PathLike[str] | None = None,
    kernel_runner: KernelRunner | None = None,
) -> SuiteResult:
    """Run every conformance check on ``names`` (default: every registered accelerator).

    Unlike the plugin's default (available accelerators only), the default here names
    every registered accelerator so the unavailable ones appear with their reason.
    ``pytest_args`` are added to pytest's command line (``["-k", "clock"]``); with
    ``quiet`` pytest's own output is kept in :attr:`SuiteResult.output` instead of
    printed. ``kernel_tests`` (a kvm-unit-tests directory) adds its tests, one
    ``kut::NAME`` row each; ``kernel_tests_expected`` compares them with a reference
    table (see :mod:`accel.testing.kernel_tests`); ``kernel_runner`` replaces the runner
    of the kernel tests (``python -m accel run --kernel ...``).
    """
    from ..registry import default_registry

    reg = registry if registry is not None else default_registry()
    selected = list(names) if names else list(reg.accelerators())
    session = _Session(registry, kernel_runner)
    buffer = io.StringIO()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="accel-conformance-") as tmp:
        ini = Path(tmp) / "pytest.ini"
        ini.write_text("[pytest]\n")
        args = [
            "-c",
            str(ini),
            "--rootdir",
            tmp,
            "-p",
            "no:cacheprovider",
            "-p",
            "no:accel",  # the entry-point copy; the module is loaded explicitly below
            "-p",
            "accel.testing.pytest_plugin",
            "-W",
            "ignore::pytest.PytestAssertRewriteWarning",
            "-q",
            "-rN",
            "--pyargs",
            SUITE_MODULE,
            *pytest_args,
        ]
        if selected:
            args += ["--accel", ",".join(selected)]
        if kernel_tests is not None:
            args += ["--kernel-tests", os.fspath(kernel_tests)]
        if kernel_tests_expected is not None:
            args += ["--kernel-tests-expected", os.fspath(kernel_tests_expected)]
        redirect = contextlib.redirect_stdout(buffer) if quiet else contextlib.nullcontext()
        with redirect:
            code = pytest.main(args, plugins=[session])
    duration = time.perf_counter() - start
    from .pytest_plugin import outcomes

    found: list[CheckOutcome] = outcomes(session.config) if session.config is not None else []
    accs = selected or list(dict.fromkeys(o.accelerator for o in found))
    return SuiteResult(accs, found, int(code), buffer.getvalue(), duration)
