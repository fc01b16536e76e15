"""kvm-unit-tests as a conformance source: unittests.cfg, the result convention, the runner,
the reference table, and the pytest items (through pytester, with a fake runner)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from accel.errors import ConfigError
from accel.testing import kernel_tests as kt
from accel.testing.kernel_tests import (
    KernelResult,
    KernelStatus,
    KernelTest,
    Reference,
    classify,
    compare,
    find_summary,
    load,
    load_expected,
    parse,
    result_from_exit,
)

pytest_plugins = ["pytester"]

SHARED = Path(__file__).resolve().parents[3] / "shared" / "kut"
SHARED_OR_SKIP = pytest.mark.skipif(
    not (SHARED / "unittests.cfg").is_file(),
    reason=f"no shared kvm-unit-tests at {SHARED} (a fresh clone has none)",
)


# --------------------------------------------------------------------------- parser


@SHARED_OR_SKIP
def test_the_shared_unittests_cfg() -> None:
    tests = {t.name: t for t in load(SHARED)}
    assert list(tests)[:3] == ["dummy", "realmode", "setjmp"]
    assert len(tests) == 14
    assert tests["smptest"].smp == 2
    assert tests["smptest3"].smp == 3
    assert tests["smptest3"].file == SHARED / "smptest.flat"
    assert tests["memory"].arch == "x86_64"
    assert tests["dummy"].arch is None and tests["dummy"].accel is None
    for test in tests.values():
        assert test.file.is_file(), test
        assert test.append == "" and test.unsupported == () and test.timeout is None
        assert test.skip_reason("kvm") is None


EVERY_FIELD = '''\
# a comment

  [full]
file = full.flat
smp = 2
extra_params = -m 512 -append 'one "two three"' -cpu qemu64,+x2apic -smp 4
test_args = four
arch = x86_64
accel = kvm
machine = pc
timeout = 2m
groups = apic  nodefault
check = /sys/module/kvm/parameters/x=Y /tmp/y=1
[quoted]
file = q.flat
qemu_params = """-append 'a b' \\
   -device pc-testdev
   -global x=y"""
timeout = 30
[plain]
file=sub/plain.elf
'''


def test_every_field() -> None:
    full, quoted, plain = parse(EVERY_FIELD, "/k/unittests.cfg")
    assert full == KernelTest(
        name="full",
        file=Path("/k/full.flat"),
        smp=4,  # -smp in extra_params wins, as QEMU takes the last
        append='one "two three" four',
        extra_params="-m 512 -append 'one \"two three\"' -cpu qemu64,+x2apic -smp 4",
        arch="x86_64",
        accel="kvm",
        timeout=120.0,
        groups=("apic", "nodefault"),
        check=(("/sys/module/kvm/parameters/x", "Y"), ("/tmp/y", "1")),
        machine="pc",
        memory="512",
        options=("--cpu", "qemu64,+x2apic"),
        unsupported=(),
        line=3,
    )
    assert quoted.append == "a b"
    assert quoted.unsupported == ("-device pc-testdev", "-global x=y")
    assert quoted.timeout == 30.0
    assert quoted.skip_reason("tcg") == (
        "unsupported by accel run: -device pc-testdev, -global x=y"
    )
    assert plain.file == Path("/k/sub/plain.elf") and plain.smp == 1 and plain.memory is None


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("[a]\nfile = a.flat\nthis is not a key\n", 3, "expected [name], key = value"),
        ("file = a.flat\n[a]\n", 1, "before the first [name]"),
        ("[a]\nfile = a.flat\nextra_param = -m 1\n", 3, "did you mean 'extra_params'"),
        ("[a]\nfile = a.flat\n\n[a]\nfile = b.flat\n", 4, "again (first at line 1)"),
        ("[a]\nsmp = 2\n", 1, "no file = ..."),
        ("[a]\nfile = a.flat\nsmp = two\n", 3, "smp = 'two'"),
        ("[a]\nfile = a.flat\nsmp = 0\n", 3, "1 or more"),
        ("[a]\nfile = a.flat\ntimeout = soon\n", 3, "not a duration"),
        ("[a]\nfile = a.flat\nextra_params = -append 'x\n", 3, "cannot split"),
        ("[a]\nfile = a.flat\nextra_params = -m\n", 3, "-m needs a value"),
        ('[a]\nfile = a.flat\nqemu_params = """-m 1\n-smp 2\n', 3, "never closed"),
        ("[a]\nfile = a.flat\nfile = b.flat\n", 3, "given twice"),
        ("[a]\nfile = a.flat\nextra_params = -m 1\nqemu_params = -m 2\n", 4, "given twice"),
        ("[a]\nfile = a.flat\ncheck = nothing\n", 3, "give path=value"),
        ("[a b]\nfile = a.flat\n", 1, "not a test name"),
        ("[]\nfile = a.flat\n", 1, "not a test name"),
    ],
)
def test_malformed_lines_name_file_and_line(text: str, line: int, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(text, "/k/unittests.cfg")
    assert str(info.value).startswith(f"/k/unittests.cfg:{line}: ")
    assert fragment in str(info.value)
    assert info.value.line == line and info.value.file == "/k/unittests.cfg"


def test_an_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read .*unittests.cfg"):
        load(tmp_path)


def test_extra_params_translation() -> None:
    (test,) = parse(
        "[t]\nfile = t.flat\nextra_params = -smp 2,sockets=2 -initrd m.bin -no-reboot -m 1G\n"
    )
    assert test.unsupported == ("-smp 2,sockets=2", "-no-reboot")
    assert test.options == ("--initrd", "m.bin") and test.memory == "1G"
    (maxsmp,) = parse("[t]\nfile = t.flat\nsmp = $MAX_SMP\n")
    assert maxsmp.skip_reason("kvm") == "unsupported by accel run: smp = $MAX_SMP"


def test_skip_reasons(tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    flag.write_text("Y\n")
    kvm_only, i386, manual, grouped, checked, q35 = parse(
        textwrap.dedent(
            f"""\
            [kvm_only]
            file = a.flat
            accel = kvm
            [i386]
            file = a.flat
            arch = i386
            [manual]
            file = a.flat
            groups = nodefault vmx
            [grouped]
            file = a.flat
            groups = apic
            [checked]
            file = a.flat
            check = {flag}=N
            [q35]
            file = a.flat
            machine = q35
            """
        )
    )
    assert kvm_only.skip_reason("kvm") is None
    assert kvm_only.skip_reason("tcg") == "accel = kvm: kvm only, not tcg"
    assert i386.skip_reason("kvm") == "i386 only (this is x86_64)"
    assert manual.skip_reason("kvm") == "in group nodefault: run only when its group is selected"
    assert manual.skip_reason("kvm", groups=["vmx"]) is None
    assert grouped.skip_reason("kvm", groups=["vmx"]) == "not in the selected groups (vmx)"
    assert checked.skip_reason("kvm") == f"check {flag}=N: it holds 'Y'"
    flag.write_text("N")
    assert checked.skip_reason("kvm") is None
    assert q35.skip_reason("kvm") == "machine = q35: kernel tests run on the pc machine"


# --------------------------------------------------------------------------- results


@pytest.mark.parametrize(
    ("status", "stderr", "verdict", "detail"),
    [
        (1, "", KernelStatus.PASS, ""),
        (3, "", KernelStatus.FAIL, "the test reported failures (exit status 3)"),
        (77, "", KernelStatus.SKIP, "the test skipped itself (exit status 77)"),
        (127, "", KernelStatus.FAIL, "unhandled exception/abort (exit status 127)"),
        (0, "", KernelStatus.FAIL, "unhandled exception/abort (exit status 0)"),
        (124, "", KernelStatus.FAIL, "timeout (exit status 124)"),
        (
            125,
            "accel: tcg: tcg could not run the guest: vector 6\n",
            KernelStatus.FAIL,
            "accel run: the accelerator cannot run the guest (exit status 125): tcg: tcg could",
        ),
        (1, "accel: error: cannot read kernel", KernelStatus.FAIL, "accel run failed: cannot"),
        (2, "accel run: error: unrecognized arguments", KernelStatus.FAIL, "accel run refused"),
    ],
)
def test_status_mapping(status: int, stderr: str, verdict: KernelStatus, detail: str) -> None:
    found, why = classify(status, stderr)
    assert found is verdict
    assert why.startswith(detail)


def test_summary_is_the_last_summary_line() -> None:
    output = "enabling apic\r\nSUMMARY: 1 tests\r\nPASS: x\nSUMMARY: 10 tests, 1 skipped\r\n"
    assert find_summary(output) == "SUMMARY: 10 tests, 1 skipped"
    assert find_summary("no summary here\n") == ""
    result = result_from_exit(3, output, "accel: tcg: guest exit 1\n", wall=0.5)
    assert result.status is KernelStatus.FAIL and result.summary.endswith("1 skipped")
    assert result.output_tail.endswith("accel: tcg: guest exit 1")


def test_the_command_line() -> None:
    (test,) = parse("[t]\nfile = t.flat\nsmp = 2\nextra_params = -cpu max -append 'a b'\n", "/k/u")
    assert kt.build_command(test, "mine", timeout=5, python="py") == [
        "py", "-m", "accel", "run", "--accel", "mine", "--kernel", "/k/t.flat",
        "--smp", "2", "-m", "256", "--append", "a b", "--cpu", "max",
        "--serial", "stdio", "--timeout", "5",
    ]  # fmt: skip
    (bare,) = parse("[t]\nfile = t.flat\ntimeout = 7\nextra_params = -m 64\n", "/k/u")
    assert kt.build_command(bare, "mine", python="py")[6:] == [
        "--kernel", "/k/t.flat", "--smp", "1", "-m", "64",
        "--serial", "stdio", "--timeout", "7",
    ]  # fmt: skip


def _script(code: str) -> Any:
    def command(test: KernelTest, accelerator: str, *, timeout: float) -> list[str]:
        return [sys.executable, "-c", code]

    return command


def test_runner_runs_a_subprocess() -> None:
    (test,) = parse("[t]\nfile = t.flat\n")
    code = "import sys; print('hello'); print('SUMMARY: 4 tests, 2 unexpected failures'); "
    code += "sys.exit(3)"
    result = kt.run_kernel_test(test, "mine", command=_script(code))
    assert result.exit_status == 3 and result.status is KernelStatus.FAIL
    assert result.summary == "SUMMARY: 4 tests, 2 unexpected failures"
    assert result.output_tail.startswith("hello") and result.wall > 0
    assert result.command[:2] == (sys.executable, "-c")


def test_runner_kills_a_run_past_its_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kt, "GRACE", 0.1)
    (test,) = parse("[t]\nfile = t.flat\n")
    code = "import time; print('SUMMARY: started', flush=True); time.sleep(30)"
    result = kt.run_kernel_test(test, "mine", 0.3, command=_script(code))
    assert result.exit_status == 124 and result.status is KernelStatus.FAIL
    assert result.wall < 10
    assert "did not end within" in result.output_tail


# --------------------------------------------------------------------------- reference


@SHARED_OR_SKIP
def test_the_shared_results_table() -> None:
    expected = load_expected(SHARED / "results.tsv")
    tests = {t.name: t for t in load(SHARED)}
    row = expected.find(tests["smptest3"], "tcg")
    assert row is not None and (row.test, row.smp, row.status) == ("smptest", 3, 1)
    assert expected.find(tests["smptest3"], "kvm") is None  # QEMU ran it on tcg only
    setjmp = expected.find(tests["setjmp"], "kvm")
    assert setjmp is not None and setjmp.usable and setjmp.summary == "SUMMARY: 10 tests"
    xsave = expected.find(tests["xsave"], "tcg")
    assert xsave is not None and not xsave.usable  # 124: no reference


def test_a_malformed_table_names_its_line(tmp_path: Path) -> None:
    table = tmp_path / "r.tsv"
    table.write_text("# comment\ndummy\ttcg\t1\t\t1\t0.1\t\ndummy\ttcg\tone\t\t1\t0.1\t\n")
    with pytest.raises(ConfigError, match=r"r.tsv:3: smp and status must be integers"):
        load_expected(table)
    table.write_text("dummy tcg 1 1\n")
    with pytest.raises(ConfigError, match=r"r.tsv:1: 1 columns; expected 7"):
        load_expected(table)


def _ref(status: int, summary: str) -> Reference:
    return Reference("t", "tcg", 1, "", status, 0.1, summary)


def _res(status: int, summary: str) -> KernelResult:
    return result_from_exit(status, summary)


def test_compare() -> None:
    assert compare(_res(3, "SUMMARY: 2 tests"), _ref(3, "SUMMARY: 2 tests")).matches
    assert compare(_res(77, "SUMMARY: 0 tests"), _ref(77, "SUMMARY: 0 tests")).matches
    better = compare(_res(1, "SUMMARY: 2 tests"), _ref(127, ""))
    assert better.matches and better.message.startswith("passes where the reference did not")
    worse = compare(_res(3, "SUMMARY: 2 tests, 1 unexpected failures"), _ref(1, "SUMMARY: 2 tests"))
    assert not worse.matches
    assert worse.message == (
        "accel gave exit status 3 (FAIL), SUMMARY: 2 tests, 1 unexpected failures; "
        "the reference gave exit status 1 (PASS), SUMMARY: 2 tests"
    )
    refused = result_from_exit(2, "", "accel run: error: unrecognized arguments: --kernel")
    assert compare(refused, _ref(1, "")).message == (
        "accel gave exit status 2 (FAIL), no SUMMARY line (accel run refused the command "
        "line: unrecognized arguments: --kernel); the reference gave exit status 1 (PASS), "
        "no SUMMARY line"
    )
    other_summary = compare(_res(1, "SUMMARY: 9 tests"), _ref(1, "SUMMARY: 10 tests"))
    assert not other_summary.matches


# --------------------------------------------------------------------------- pytest items

CONFTEST = """
import accel
from accel.testing.kernel_tests import result_from_exit

class _Acc(accel.Accelerator):
    def __init__(self, name):
        self.name = name
    def probe(self):
        if self.name == "gone":
            return accel.Availability.unavailable("no such device")
        return accel.Availability.ok()
    def capabilities(self):
        raise NotImplementedError
    def create_vm(self, options=None):
        raise NotImplementedError
    def _close(self):
        pass

class _Plugin:
    @accel.hookimpl
    def accel_accelerators(self):
        return [
            accel.AcceleratorInfo(name=n, summary=n, factory=lambda n=n: _Acc(n))
            for n in ("kvm", "tcg", "gone")
        ]

def pytest_accel_registry(config):
    reg = accel.Registry(entry_points=False)
    reg.register(_Plugin(), name="fake")
    return reg

# (kernel, accelerator) -> exit status and serial output; the fake runner's answers
ANSWERS = {
    "pass": (1, "SUMMARY: 10 tests"),
    "fail": (3, "FAIL: bit 3\\nSUMMARY: 4 tests, 2 unexpected failures"),
    "skip": (77, "SUMMARY: 0 tests"),
    "boom": (127, "Unhandled exception 13 #GP at ip 0x400123"),
}
CALLS = []

def pytest_accel_kernel_runner(config):
    def run(test, accelerator, timeout):
        CALLS.append((test.name, accelerator, timeout))
        status, out = ANSWERS[test.file.stem]
        if accelerator == "tcg" and test.file.stem == "pass":
            status, out = 3, "SUMMARY: 10 tests, 1 unexpected failures"
        return result_from_exit(status, out, command=["fake-run", test.name, accelerator])
    return run

def pytest_sessionfinish(session):
    with open("calls.txt", "w") as f:
        f.write(repr(CALLS))
"""

CFG = """\
[pass]
file = pass.flat
[fail]
file = fail.flat
timeout = 5
[skip]
file = skip.flat
[boom]
file = boom.flat
[kvm_only]
file = pass.flat
accel = kvm
[i386]
file = pass.flat
arch = i386
[manual]
file = pass.flat
groups = nodefault
[device]
file = pass.flat
extra_params = -device pc-testdev
"""


@pytest.fixture
def kut_dir(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST)
    (pytester.path / "kut").mkdir()
    (pytester.path / "kut" / "unittests.cfg").write_text(CFG)
    return pytester


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest(
        "-p", "no:accel", "-p", "accel.testing.pytest_plugin", "-v", "-rs", "kut", *args
    )


def test_items_ids_and_outcomes(kut_dir: pytest.Pytester) -> None:
    result = _run(kut_dir, "--accel", "kvm,tcg,gone", "--kernel-tests", "kut")
    result.stdout.fnmatch_lines_random(
        [
            "kut::pass?kvm? PASSED*",
            "kut::pass?tcg? FAILED*",
            "kut::fail?kvm? FAILED*",
            "kut::skip?kvm? SKIPPED*",
            "kut::boom?tcg? FAILED*",
            "kut::kvm_only?kvm? PASSED*",
            "kut::kvm_only?tcg? SKIPPED*",
            "kut::pass?gone? SKIPPED*",
            "*kut/unittests.cfg:6: skip: kvm-unit-tests SKIP (exit status 77): SUMMARY: 0 tests",
            "*kut/unittests.cfg:10: kvm_only: accel = kvm: kvm only, not tcg",
            "*kut/unittests.cfg:13: i386: i386 only (this is x86_64)",
            "*manual: in group nodefault: run only when its group is selected",
            "*device: unsupported by accel run: -device pc-testdev",
            "*gone is unavailable: no such device",
            "command: fake-run boom tcg",
            "unhandled exception/abort (exit status 127); no SUMMARY line",
            "boom on tcg: unhandled exception/abort (exit status 127); no SUMMARY line",
            "the test reported failures (exit status 3); SUMMARY: 4 tests, 2 unexpected*",
            "*Captured kernel output call*",
            "Unhandled exception 13 #GP at ip 0x400123",
        ]
    )
    result.assert_outcomes(passed=2, failed=5, skipped=17)
    calls = eval((kut_dir.path / "calls.txt").read_text())
    assert ("fail", "kvm", 5.0) in calls and ("pass", "kvm", 90.0) in calls
    assert not any(acc == "gone" or name in ("i386", "manual") for name, acc, _ in calls)


def test_under_xdist(kut_dir: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    result = kut_dir.runpytest_subprocess(
        "-p", "no:accel", "-p", "accel.testing.pytest_plugin", "-n", "2", "-rf", "kut",
        "--accel", "kvm,tcg", "--kernel-tests", "kut", "-k", "pass or boom",
    )  # fmt: skip
    result.assert_outcomes(passed=1, failed=3)
    result.stdout.fnmatch_lines_random(
        ["FAILED kut::boom?kvm? - boom on kvm: unhandled exception/abort*", "?gw??*"]
    )


def test_groups_select_tests(kut_dir: pytest.Pytester) -> None:
    result = _run(
        kut_dir, "--accel", "kvm", "--kernel-tests", "kut", "--kernel-tests-groups", "nodefault"
    )
    result.stdout.fnmatch_lines_random(["kut::manual?kvm? PASSED*"])
    result.assert_outcomes(passed=1, skipped=7)


def test_k_selects_kernel_tests_and_junitxml_names_them(kut_dir: pytest.Pytester) -> None:
    result = _run(
        kut_dir, "--accel", "kvm", "--kernel-tests", "kut", "-k", "boom", "--junitxml", "j.xml"
    )
    result.assert_outcomes(failed=1, deselected=7)
    xml = (kut_dir.path / "j.xml").read_text()
    assert 'classname="kut"' in xml and 'name="boom[kvm]"' in xml
    assert "unhandled exception/abort (exit status 127)" in xml


def test_expected_results_decide(kut_dir: pytest.Pytester) -> None:
    (kut_dir.path / "expected.tsv").write_text(
        "# test\taccel\tsmp\tappend\tstatus\twall\tsummary\n"
        "pass\tkvm\t1\t\t1\t3.7\tSUMMARY: 10 tests\n"
        "pass\ttcg\t1\t\t1\t0.1\tSUMMARY: 10 tests\n"  # accel's fake tcg fails it
        "fail\tkvm\t1\t\t3\t0.1\tSUMMARY: 4 tests, 2 unexpected failures\n"  # as QEMU
        "skip\tkvm\t1\t\t1\t0.1\tSUMMARY: 1 tests\n"  # QEMU passes, accel skips
        "boom\tkvm\t1\t\t124\t180\t\n"  # no reference: accel's own result
    )
    result = _run(
        kut_dir,
        "--accel",
        "kvm,tcg",
        "--kernel-tests",
        "kut",
        "--kernel-tests-expected",
        "expected.tsv",
        "-k",
        "pass or fail or skip or boom",
    )
    result.stdout.fnmatch_lines_random(
        [
            "kut::pass?kvm? PASSED*",
            "kut::fail?kvm? PASSED*",
            "kut::pass?tcg? FAILED*",
            "kut::skip?kvm? FAILED*",
            "kut::boom?kvm? FAILED*",
            "accel gave exit status 3 (FAIL), SUMMARY: 10 tests, 1 unexpected failures; "
            "the reference gave exit status 1 (PASS), SUMMARY: 10 tests",
            "accel gave exit status 77 (SKIP), SUMMARY: 0 tests; "
            "the reference gave exit status 1 (PASS), SUMMARY: 1 tests",
            "unhandled exception/abort (exit status 127); no SUMMARY line",
        ]
    )


def test_a_malformed_config_is_a_usage_error(kut_dir: pytest.Pytester) -> None:
    (kut_dir.path / "kut" / "unittests.cfg").write_text("[a]\nfile = a.flat\nsmp = lots\n")
    result = _run(kut_dir, "--accel", "kvm", "--kernel-tests", "kut")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--kernel-tests: *kut/unittests.cfg:3: [[]a]: smp = 'lots'*"])


def test_without_the_option_nothing_is_added(kut_dir: pytest.Pytester) -> None:
    result = _run(kut_dir, "--accel", "kvm")
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED


# --------------------------------------------------------------------------- conformance


def test_run_suite_shows_kut_rows(tmp_path: Path) -> None:
    pytest.importorskip("unicorn")
    from accel.testing.results import Status, format_matrix
    from accel.testing.runner import run_suite

    from .broken import broken_registry

    (tmp_path / "unittests.cfg").write_text("[good]\nfile = good.flat\n[bad]\nfile = bad.flat\n")
    (tmp_path / "ref.tsv").write_text("bad\tbroken-none\t1\t\t3\t0.1\tSUMMARY: 1 tests\n")

    def runner(test: KernelTest, accelerator: str, timeout: float) -> KernelResult:
        return result_from_exit(1 if test.name == "good" else 3, "SUMMARY: 1 tests")

    result = run_suite(
        ["broken-none"],
        registry=broken_registry(["none"]),
        pytest_args=["-k", "kut or test_declarations"],
        kernel_tests=tmp_path,
        kernel_tests_expected=tmp_path / "ref.tsv",
        kernel_runner=runner,
    )
    good, bad = result.get("kut::good", "broken-none"), result.get("kut::bad", "broken-none")
    assert good is not None and good.status is Status.PASS
    assert bad is not None and bad.status is Status.PASS  # fails as the reference does
    lines = format_matrix(result)
    assert [line.split() for line in lines if line.startswith("kut::")] == [
        ["kut::good", "pass"],
        ["kut::bad", "pass"],
    ]
    assert result.ok


def test_conformance_command_refuses_a_bad_config_before_pytest(tmp_path: Path) -> None:
    import io

    import accel
    from accel.cli import build_parser
    from accel.commands import Context
    from accel.errors import AccelError

    (tmp_path / "unittests.cfg").write_text("[a]\nfile = a.flat\ntimeout = never\n")
    argv = ["conformance", "--kernel-tests", str(tmp_path)]
    args = build_parser(argv).parse_args(argv)
    registry = accel.Registry(entry_points=False)
    with pytest.raises(ConfigError, match=r"unittests.cfg:3: \[a\]: timeout"):
        args.handler(args, Context(registry, out_stream=io.StringIO()))
    argv = ["conformance", "--kernel-tests-expected", str(tmp_path / "r.tsv")]
    args = build_parser(argv).parse_args(argv)
    with pytest.raises(AccelError, match="give --kernel-tests DIR too"):
        args.handler(args, Context(registry, out_stream=io.StringIO()))


# --------------------------------------------------------------------------- end to end


def _accel_run_has_kernel() -> bool:
    done = subprocess.run(
        [sys.executable, "-m", "accel", "run", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    return "--kernel" in done.stdout


@SHARED_OR_SKIP
@pytest.mark.kvm
def test_dummy_flat_end_to_end(pytester: pytest.Pytester) -> None:
    """pytest --kernel-tests on the shared set, dummy only, on kvm: the real runner
    (python -m accel run --kernel) gives QEMU 7.2's result."""
    if not _accel_run_has_kernel():
        pytest.skip("accel run has no --kernel yet")
    result = pytester.runpytest(
        "-p", "no:accel", "-p", "accel.testing.pytest_plugin", "-v", "-rA",
        "--accel", "kvm", "--kernel-tests", str(SHARED),
        "--kernel-tests-expected", str(SHARED / "results.tsv"), "-k", "dummy",
    )  # fmt: skip
    result.stdout.fnmatch_lines(["*kut::dummy?kvm? PASSED*"])
    result.assert_outcomes(passed=1, deselected=13)
