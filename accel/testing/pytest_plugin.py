"""The accel pytest plugin: run one body of tests on every registered accelerator.

Registered under the ``pytest11`` entry point ``accel`` (or load it with
``-p accel.testing.pytest_plugin``). It only touches tests that request its fixtures,
so installing it leaves other test suites alone.

Options:
    ``--accel NAMES``  comma- or colon-separated accelerator names (default: every
                       registered accelerator that is available here). A named
                       accelerator that is unavailable is reported as skipped with its
                       reason.
    ``--accel-report PATH``  write every (check, accelerator) outcome as JSON.
    ``accel = NAMES``  (ini option) the default for ``--accel`` in a project's config.
    ``--kernel-tests DIR``  also run the kvm-unit-tests of DIR (its ``unittests.cfg`` and
                       kernels): one item per (test, accelerator), ``kut::setjmp[kvm]``.
    ``--kernel-tests-expected FILE``  a reference table (test, accel, smp, append,
                       status, wall, summary; tab-separated): each kernel-test item then
                       passes when its result matches the reference row.
    ``--kernel-tests-groups NAMES``  only the kernel tests in these groups
                       (comma-separated; naming ``nodefault`` runs those too).

Fixtures (each test that uses one runs once per accelerator, ids ``test_x[kvm]``):
    ``accel_name``      the accelerator's registered name (for crosvm-style matchers that
                        write a legitimate difference down in the test)
    ``accel_info``      its :class:`~accel.AcceleratorInfo`
    ``accel_declared``  its declared-unsupported features (:class:`Declarations`)
    ``new_accelerator`` a factory of fresh, unprobed accelerators (closed at teardown)
    ``accelerator``     a probed, available accelerator (skips with the reason otherwise)
    ``vm``              a new VM of ``accelerator``
    ``machine``         an initialised ``pc`` :class:`accel.machine.Machine` on it
    ``accel_registry``  the registry the accelerators come from

Declared exceptions: a test marked ``@pytest.mark.accel_feature("mmio")`` still runs on
an accelerator that declares ``mmio`` unsupported (a test using the ``vm`` or ``machine``
fixture also needs the ``vm`` feature); if it fails, it is reported as
skipped with the declared reason; if it passes, the declaration was not needed and is
reported (a warning, and ``declared-unsupported-but-passes`` in the matrix).

Kernel tests (:mod:`accel.testing.kernel_tests`) run through ``python -m accel run
--kernel`` unless a conftest or plugin implements ``pytest_accel_kernel_runner(config)``
and returns another runner: a callable ``(test, accelerator, timeout) -> KernelResult``
(a fake one in tests, or one that runs a VMM of your own)::

    # conftest.py
    from accel.testing.kernel_tests import result_from_exit

    def pytest_accel_kernel_runner(config):
        return lambda test, accelerator, timeout: result_from_exit(1, "SUMMARY: 1 tests")

Which registry: the default one (entry points), unless a conftest or plugin implements
the ``pytest_accel_registry(config)`` hook and returns another (a
:class:`~accel.Registry` holding accelerators registered from code)::

    # conftest.py
    def pytest_accel_registry(config):
        reg = accel.Registry(entry_points=False)
        reg.register(my_plugin)
        return reg
"""

from __future__ import annotations

import contextlib
import json
import shlex
import warnings
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ..accelerator import VM, Accelerator, Availability
from ..errors import AccelError
from ..plugin import AcceleratorInfo
from ..registry import Registry, default_registry
from .features import Feature
from .kernel_tests import (
    CONFIG_NAME,
    DEFAULT_TIMEOUT,
    Expectations,
    KernelResult,
    KernelRunner,
    KernelStatus,
    KernelTest,
    compare,
    load,
    load_expected,
    run_kernel_test,
)
from .results import CheckOutcome, Status

__all__ = [
    "AccelConformanceWarning",
    "Declarations",
    "KernelTestCollector",
    "KernelTestFailure",
    "KernelTestItem",
    "accel_declared",
    "accel_info",
    "accel_name",
    "accel_registry",
    "accelerator",
    "machine",
    "new_accelerator",
    "outcomes",
    "unneeded_declarations",
    "vm",
]

MARKER = "accel_feature"
#: The hidden fixture the plugin parametrises (``accel_name`` and the others build on it).
PARAM = "_accel_param"
_PROP_NAME = "accel_name"
_PROP_CHECK = "accel_check"
_PROP_STATUS = "accel_status"
_PROP_UNNEEDED = "accel_unneeded"


class AccelConformanceWarning(pytest.PytestWarning):
    """A declared-unsupported feature whose check passes anyway."""


# --------------------------------------------------------------------------- hooks


class _HookSpecs:
    @pytest.hookspec(firstresult=True)
    def pytest_accel_registry(self, config: pytest.Config) -> Registry | None:
        """Return the :class:`accel.Registry` whose accelerators the suite runs on.

        The first non-None answer wins; without one the default registry (entry points)
        is used.
        """

    @pytest.hookspec(firstresult=True)
    def pytest_accel_kernel_runner(self, config: pytest.Config) -> KernelRunner | None:
        """Return the runner of the kernel tests (``--kernel-tests``): a callable
        ``(test: KernelTest, accelerator: str, timeout: float) -> KernelResult``.

        The first non-None answer wins; without one each test runs as ``python -m accel
        run --kernel ...`` (:func:`accel.testing.kernel_tests.run_kernel_test`).
        """


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(_HookSpecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("accel", "accel conformance suite")
    group.addoption(
        "--accel",
        dest="accel_names",
        metavar="NAMES",
        default=None,
        help="accelerators to run the accel fixtures on, comma- or colon-separated "
        "(default: every registered accelerator that is available here)",
    )
    parser.addini(
        "accel",
        "default for --accel: accelerators to run the accel fixtures on",
        default="",
    )
    group.addoption(
        "--accel-report",
        dest="accel_report",
        metavar="PATH",
        default=None,
        help="write each (check, accelerator) outcome of the accel fixtures as JSON",
    )
    group.addoption(
        "--kernel-tests",
        dest="kernel_tests",
        metavar="DIR",
        default=None,
        help="also run the kvm-unit-tests of DIR (unittests.cfg and its kernels) on each "
        "accelerator: items kut::NAME[ACCEL]",
    )
    group.addoption(
        "--kernel-tests-expected",
        dest="kernel_tests_expected",
        metavar="FILE",
        default=None,
        help="reference results (TSV: test, accel, smp, append, status, wall, summary): a "
        "kernel test passes when it gives the reference's exit status and SUMMARY line",
    )
    group.addoption(
        "--kernel-tests-groups",
        dest="kernel_tests_groups",
        metavar="NAMES",
        default=None,
        help="only the kernel tests in one of these groups (comma-separated)",
    )


_STATE = pytest.StashKey["_State"]()


@dataclass
class _State:
    config: pytest.Config
    _registry: Registry | None = None
    _names: list[str] | None = None
    availability: dict[str, Availability] = field(default_factory=dict)
    #: (accelerator, feature) whose declaration made a failing check skip
    declared_needed: set[tuple[str, str]] = field(default_factory=set)
    #: (accelerator, feature) -> checks that passed although it is declared unsupported
    declared_passing: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    outcomes: dict[str, CheckOutcome] = field(default_factory=dict)
    expectations: Expectations | None = None
    kernel_groups: tuple[str, ...] = ()
    _kernel_runner: KernelRunner | None = None

    @property
    def kernel_runner(self) -> KernelRunner:
        if self._kernel_runner is None:
            found = self.config.hook.pytest_accel_kernel_runner(config=self.config)
            self._kernel_runner = found if callable(found) else run_kernel_test
        return self._kernel_runner

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            found = self.config.hook.pytest_accel_registry(config=self.config)
            self._registry = found if isinstance(found, Registry) else default_registry()
        return self._registry

    def names(self) -> list[str]:
        if self._names is None:
            option = self.config.getoption("accel_names", None) or self.config.getini("accel")
            if option:
                names = [n.strip() for n in option.replace(":", ",").split(",") if n.strip()]
                for name in names:
                    try:
                        self.registry.info(name)
                    except AccelError as exc:
                        raise pytest.UsageError(f"--accel: {exc}") from None
            else:
                names = [n for n in self.registry.accelerators() if self.probe(n).available]
            self._names = list(dict.fromkeys(names))
        return self._names

    def probe(self, name: str) -> Availability:
        """The accelerator's availability, probed once per session."""
        if name not in self.availability:
            try:
                acc = self.registry.create(name)
            except Exception as exc:
                self.availability[name] = Availability.unavailable(
                    f"could not be created: {type(exc).__name__}: {exc}"
                )
            else:
                try:
                    self.availability[name] = acc.probe()
                except Exception as exc:
                    self.availability[name] = Availability.unavailable(
                        f"probe() raised {type(exc).__name__}: {exc}"
                    )
                finally:
                    with contextlib.suppress(Exception):
                        acc.close()
        return self.availability[name]


def _state(config: pytest.Config) -> _State:
    state = config.stash.get(_STATE, None)
    if state is None:
        state = config.stash[_STATE] = _State(config)
    return state


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(*names): the conformance features this test needs; an accelerator that "
        "declares one unsupported has the test skipped with its reason when it fails",
    )
    config.pluginmanager.register(_Recorder(_state(config)), "accel-recorder")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Only tests whose fixtures reach the plugin's own parameter are touched; a test (or
    # another plugin) that parametrises the same name itself is left alone.
    if PARAM not in metafunc.fixturenames:
        return
    for mark in metafunc.definition.iter_markers("parametrize"):
        argnames = mark.args[0] if mark.args else mark.kwargs.get("argnames", ())
        if isinstance(argnames, str):
            argnames = [a.strip() for a in argnames.split(",")]
        if PARAM in argnames:
            return
    names = _state(metafunc.config).names()
    metafunc.parametrize(PARAM, names, ids=names)


# --------------------------------------------------------------------------- fixtures


@dataclass
class Declarations:
    """An accelerator's declared-unsupported features, and which proved unneeded."""

    accelerator: str
    reasons: dict[str, str]
    _node: Any = None

    def __contains__(self, feature: object) -> bool:
        return feature in self.reasons

    def reason(self, feature: str) -> str | None:
        return self.reasons.get(feature)

    def not_needed(self, feature: str) -> None:
        """Report that the declaration of ``feature`` was not needed (its check passes)."""
        if self._node is not None:
            self._node.user_properties.append((_PROP_UNNEEDED, feature))


@pytest.fixture(name=PARAM)
def _accel_param() -> str:
    """The parameter the plugin parametrises: the name of the accelerator under test."""
    raise pytest.UsageError(f"{PARAM} is parametrised by the accel pytest plugin")


@pytest.fixture
def accel_name(_accel_param: str) -> str:
    """The accelerator's registered name (parametrised by the accel plugin)."""
    return _accel_param


@pytest.fixture
def accel_info(request: pytest.FixtureRequest, accel_name: str) -> AcceleratorInfo:
    """The :class:`~accel.AcceleratorInfo` of the accelerator under test."""
    return _state(request.config).registry.info(accel_name)


@pytest.fixture
def accel_declared(request: pytest.FixtureRequest, accel_info: AcceleratorInfo) -> Declarations:
    """The accelerator's declared-unsupported conformance features."""
    return Declarations(accel_info.name, accel_info.unsupported_features, request.node)


@pytest.fixture
def new_accelerator(accel_info: AcceleratorInfo) -> Iterator[Callable[[], Accelerator]]:
    """A factory of fresh, unprobed accelerators of the type under test."""
    made: list[Accelerator] = []

    def make() -> Accelerator:
        acc = accel_info.factory()
        made.append(acc)
        return acc

    yield make
    for acc in made:
        acc.close()


@pytest.fixture
def accelerator(
    request: pytest.FixtureRequest, accel_info: AcceleratorInfo
) -> Iterator[Accelerator]:
    """A probed accelerator; skips with its reason when it is unavailable here."""
    state = _state(request.config)
    availability = state.probe(accel_info.name)
    if not availability.available:
        _skip_unavailable(request.node, accel_info.name, availability)
    acc = accel_info.factory()
    try:
        availability = acc.probe()
        if not availability.available:
            _skip_unavailable(request.node, accel_info.name, availability)
        yield acc
    finally:
        acc.close()


@pytest.fixture
def vm(accelerator: Accelerator) -> Iterator[VM]:
    """A new VM of the accelerator under test (closed at teardown)."""
    with accelerator.create_vm() as handle:
        yield handle


@pytest.fixture
def accel_registry(request: pytest.FixtureRequest) -> Registry:
    """The registry the accelerators under test come from (its plugins decide devices)."""
    return _state(request.config).registry


@pytest.fixture
def machine(accelerator: Accelerator, accel_registry: Registry) -> Iterator[Any]:
    """An initialised default machine (``pc``) on the accelerator (closed at teardown)."""
    try:
        from ..machine import Machine
    except ImportError as exc:  # pragma: no cover - the machine layer ships with accel
        pytest.skip(f"machines are not available: {exc}")
    m = Machine(accelerator, "pc", registry=accel_registry, ram_size=1 << 20)
    with m:
        yield m


def _skip_unavailable(node: pytest.Item, name: str, availability: Availability) -> None:
    node.user_properties.append((_PROP_STATUS, Status.UNAVAILABLE.value))
    reason = availability.reason or "no reason given"
    if availability.hint:
        reason += f" (hint: {availability.hint})"
    pytest.skip(f"{name} is unavailable: {reason}")


# --------------------------------------------------------------------------- reporting


#: Fixtures that create a VM: a test using one also needs the ``vm`` feature.
_VM_FIXTURES = frozenset({"vm", "machine"})


def _declared_for(item: pytest.Item, name: str) -> list[tuple[str, str]]:
    features: list[str] = []
    for mark in item.iter_markers(MARKER):
        features.extend(str(a) for a in mark.args)
    if _VM_FIXTURES & set(getattr(item, "fixturenames", ())):
        features.append(Feature.VM.value)
    features = list(dict.fromkeys(features))
    if not features:
        return []
    state = _state(item.config)
    try:
        reasons = state.registry.info(name).unsupported_features
    except AccelError:
        return []
    return [(f, reasons[f]) for f in features if f in reasons]


def _accel_of(item: pytest.Item) -> str | None:
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return None
    value = callspec.params.get(PARAM)
    return value if isinstance(value, str) else None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if isinstance(item, KernelTestItem):
        if report.skipped and isinstance(report.longrepr, tuple):
            # where the test is (its unittests.cfg section), not where pytest.skip ran
            path, lineno, _ = item.location
            report.longrepr = (path, (lineno or 0) + 1, report.longrepr[2])
        return report
    name = _accel_of(item)
    if name is None:
        return report
    check = getattr(item, "originalname", item.name)
    report.user_properties.append((_PROP_NAME, name))
    report.user_properties.append((_PROP_CHECK, check))
    declared = _declared_for(item, name)
    state = _state(item.config)
    if declared and report.when in ("setup", "call"):
        text = "; ".join(f"{f}: {r}" for f, r in declared)
        if report.failed:
            path, lineno, _ = item.location
            report.outcome = "skipped"
            report.longrepr = (path, (lineno or 0) + 1, f"{name} declares unsupported: {text}")
            report.user_properties.append((_PROP_STATUS, Status.DECLARED.value))
            for feature, _reason in declared:
                state.declared_needed.add((name, feature))
        elif report.when == "call" and report.passed:
            for feature, _reason in declared:
                report.user_properties.append((_PROP_UNNEEDED, feature))
    if report.when == "call":
        unneeded = [str(v) for k, v in report.user_properties if k == _PROP_UNNEEDED]
        for feature in dict.fromkeys(unneeded):
            state.declared_passing.setdefault((name, feature), []).append(check)
            _warn(item, f"{name} declares {feature!r} unsupported, but {check} passes on it")
    return report


def _warn(item: pytest.Item, message: str) -> None:
    warning = AccelConformanceWarning(message)
    record = warnings.WarningMessage(
        warning, AccelConformanceWarning, str(item.path), item.location[1] or 0
    )
    item.ihook.pytest_warning_recorded.call_historic(
        kwargs=dict(warning_message=record, when="runtest", nodeid=item.nodeid, location=None)
    )


class _Recorder:
    """Collects each (check, accelerator) outcome into the session state."""

    def __init__(self, state: _State) -> None:
        self.state = state

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        props = dict(report.user_properties)
        name, check = props.get(_PROP_NAME), props.get(_PROP_CHECK)
        if not isinstance(name, str) or not isinstance(check, str):
            return
        outcome = self.state.outcomes.get(report.nodeid)
        if outcome is None:
            outcome = self.state.outcomes[report.nodeid] = CheckOutcome(
                check=check, accelerator=name, nodeid=report.nodeid
            )
        outcome.add(report)


def unneeded_declarations(config: pytest.Config) -> dict[tuple[str, str], list[str]]:
    """(accelerator, feature) declared unsupported whose every check passed, with the checks."""
    state = _state(config)
    return {
        key: checks
        for key, checks in state.declared_passing.items()
        if key not in state.declared_needed
    }


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    for (name, feature), passed in unneeded_declarations(session.config).items():
        message = (
            f"{name} declares {feature!r} unsupported, but every check needing it passes "
            f"({', '.join(passed)}): the declaration is not needed"
        )
        record = warnings.WarningMessage(
            AccelConformanceWarning(message), AccelConformanceWarning, "", 0
        )
        session.config.hook.pytest_warning_recorded.call_historic(
            kwargs=dict(warning_message=record, when="runtest", nodeid="", location=None)
        )
    path = session.config.getoption("accel_report", None)
    if path:
        outcomes = _state(session.config).outcomes
        data = [o.to_json() for o in outcomes.values()]
        Path(path).write_text(json.dumps(data, indent=2) + "\n")


def outcomes(config: pytest.Config) -> list[CheckOutcome]:
    """Every (check, accelerator) outcome recorded so far in this pytest session."""
    return list(_state(config).outcomes.values())


# --------------------------------------------------------------------------- kernel tests

#: The collector's name: the first part of every kernel-test item's id (``kut::NAME[ACCEL]``).
KERNEL_TESTS_NODE = "kut"
_PROP_KUT = "kut_result"


def _kernel_groups(config: pytest.Config) -> tuple[str, ...]:
    option = config.getoption("kernel_tests_groups", None) or ""
    return tuple(g.strip() for g in option.replace(":", ",").split(",") if g.strip())


@pytest.hookimpl(tryfirst=True)  # before -k and -m deselect
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    """With ``--kernel-tests DIR``, add one item per (kernel test, accelerator)."""
    directory = config.getoption("kernel_tests", None)
    if not directory:
        return
    state = _state(config)
    try:
        tests = load(directory)
        expected = config.getoption("kernel_tests_expected", None)
        state.expectations = load_expected(expected) if expected else None
    except AccelError as exc:
        raise pytest.UsageError(f"--kernel-tests: {exc}") from None
    state.kernel_groups = _kernel_groups(config)
    path = Path(directory)
    collector = KernelTestCollector.from_parent(
        session,
        name=KERNEL_TESTS_NODE,
        path=(path / CONFIG_NAME) if path.is_dir() else path,
        nodeid=KERNEL_TESTS_NODE,
        tests=tests,
        accelerators=state.names(),
    )
    found = list(collector.collect())
    config.hook.pytest_collectreport(
        report=pytest.CollectReport(collector.nodeid, "passed", None, [*found])
    )
    for item in found:
        item.ihook.pytest_itemcollected(item=item)
    items.extend(found)


class KernelTestCollector(pytest.Collector):
    """The kernel tests of one ``unittests.cfg``: an item per (test, accelerator)."""

    def __init__(
        self,
        *,
        tests: list[KernelTest],
        accelerators: list[str],
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.tests = tests
        self.accelerators = accelerators

    def collect(self) -> list[pytest.Item]:
        return [
            KernelTestItem.from_parent(
                self, name=f"{test.name}[{name}]", kernel_test=test, accelerator=name
            )
            for test in self.tests
            for name in self.accelerators
        ]


class KernelTestFailure(Exception):
    """A kernel test failed, or did not give its reference's result."""

    def __init__(self, message: str, result: KernelResult) -> None:
        super().__init__(message)
        self.message = message
        self.result = result


class KernelTestItem(pytest.Item):
    """One kernel test on one accelerator: PASS, FAIL or SKIP as kvm-unit-tests says,
    or, with ``--kernel-tests-expected``, whether it matches the reference."""

    def __init__(self, *, kernel_test: KernelTest, accelerator: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.kernel_test = kernel_test
        self.accelerator = accelerator
        self.user_properties.append((_PROP_NAME, accelerator))
        self.user_properties.append((_PROP_CHECK, f"{KERNEL_TESTS_NODE}::{kernel_test.name}"))

    def runtest(self) -> None:
        test, name = self.kernel_test, self.accelerator
        state = _state(self.config)
        reason = test.skip_reason(name, groups=state.kernel_groups)
        if reason:
            pytest.skip(f"{test.name}: {reason}")
        availability = state.probe(name)
        if not availability.available:
            _skip_unavailable(self, name, availability)
        if not availability.creates_vms:
            self.user_properties.append((_PROP_STATUS, Status.UNAVAILABLE.value))
            pytest.skip(f"{name} cannot create VMs here: {availability.reason}")
        result = state.kernel_runner(test, name, test.timeout or DEFAULT_TIMEOUT)
        self.user_properties.append(
            (
                _PROP_KUT,
                {
                    "exit_status": result.exit_status,
                    "status": result.status.value,
                    "summary": result.summary,
                    "wall": round(result.wall, 3),
                },
            )
        )
        if result.output_tail:
            self.add_report_section("call", "kernel output", result.output_tail)  # -rP, failures
        reference = state.expectations.find(test, name) if state.expectations else None
        if reference is not None and reference.usable:
            verdict = compare(result, reference)
            self.user_properties.append(("kut_reference", verdict.message))
            if not verdict.matches:
                raise KernelTestFailure(verdict.message, result)
            return
        summary = result.summary or "no SUMMARY line"
        if result.status is KernelStatus.SKIP:
            pytest.skip(f"{test.name}: kvm-unit-tests SKIP (exit status 77): {summary}")
        if result.status is KernelStatus.FAIL:
            raise KernelTestFailure(f"{result.detail}; {summary}", result)

    def repr_failure(
        self,
        excinfo: pytest.ExceptionInfo[BaseException],
        style: Any = None,
    ) -> str | Any:
        exc = excinfo.value
        if not isinstance(exc, KernelTestFailure):
            return super().repr_failure(excinfo, style=style)
        result = exc.result
        # the first line is pytest's short summary, the last the matrix's detail
        lines = [f"{self.kernel_test.name} on {self.accelerator}: {exc.message}"]
        if result.command:
            lines.append("command: " + shlex.join(result.command))
        lines.append(f"exit status {result.exit_status}, wall time {result.wall:.2f} s")
        lines.append(exc.message)
        return "\n".join(lines)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, max(self.kernel_test.line - 1, 0), self.nodeid
