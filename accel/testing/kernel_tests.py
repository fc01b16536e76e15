"""kvm-unit-tests as a conformance source: ``unittests.cfg``, the result convention, a runner.

kvm-unit-tests (https://gitlab.com/kvm-unit-tests/kvm-unit-tests) describes its test
kernels in ``unittests.cfg``; its ``run_tests.sh`` starts each under QEMU and reads the
exit status. This module gives accel the same three pieces, without pytest:

* :func:`load` / :func:`parse` read ``unittests.cfg`` into frozen :class:`KernelTest`
  records (a malformed file is a :class:`~accel.errors.ConfigError` naming ``file:line``);
* :func:`classify` maps an exit status to PASS / FAIL / SKIP as kvm-unit-tests does
  (1 = PASS, 3 = FAIL, 77 = SKIP, anything else = FAIL), and :func:`find_summary` finds
  the ``SUMMARY:`` line of the serial output;
* :func:`run_kernel_test` runs one test on one accelerator as ``python -m accel run
  --kernel ...`` (the command line comes from :func:`build_command`) and returns a
  :class:`KernelResult`;
* :func:`load_expected` reads a table of reference results (QEMU's), and :func:`compare`
  says whether a result matches its :class:`Reference`.

The pytest plugin (:mod:`accel.testing.pytest_plugin`, ``--kernel-tests DIR``) turns each
(test, accelerator) into an item. Example::

    tests = load("kut/unittests.cfg")
    result = run_kernel_test(tests[0], "kvm")
    print(result.status.value, result.summary)

The file format (upstream's ``docs/unittests.txt`` and ``scripts/common.bash``): ``[name]``
starts a test; ``key = value`` lines follow; a line whose first non-blank character is
``#`` is a comment (a ``#`` later in a line is part of the value, as in upstream's shell
parser). Keys: ``file`` (mandatory), ``smp`` (default 1), ``extra_params`` / ``qemu_params``
(QEMU options; a value that starts with ``\"\"\"`` continues up to a line that ends with
``\"\"\"``), ``test_args`` (the test's arguments, passed as ``-append``), ``arch``,
``accel``, ``machine``, ``timeout`` (seconds, or a duration with an ``s``/``m``/``h``/``d``
suffix), ``groups`` (space-separated), ``check`` (``path=value`` pairs), and
``disabled_if`` and ``kvmtool_params``, which are read but not evaluated. The format is
not INI (values hold quotes, ``=`` and ``#``; upstream has no escapes, no continuation but
the triple quote, and no defaults section), so a small line parser reads it rather than
:mod:`configparser`, which would treat ``;`` and indentation its own way.
"""

from __future__ import annotations

import enum
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError, did_you_mean

__all__ = [
    "CONFIG_NAME",
    "DEFAULT_MEMORY",
    "DEFAULT_TIMEOUT",
    "Expectations",
    "KernelResult",
    "KernelRunner",
    "KernelStatus",
    "KernelTest",
    "Reference",
    "Verdict",
    "build_command",
    "classify",
    "compare",
    "find_summary",
    "load",
    "load_expected",
    "parse",
    "parse_duration",
    "result_from_exit",
    "run_kernel_test",
]

#: The file a kvm-unit-tests directory describes its tests in.
CONFIG_NAME = "unittests.cfg"
#: run_tests.sh's default timeout (its ``TIMEOUT``): 90 s.
DEFAULT_TIMEOUT = 90.0
#: The guest RAM the reference results were taken with (QEMU ``-m 256``).
DEFAULT_MEMORY = "256"
#: The architecture accel's machines are (a test with another ``arch`` is skipped).
ARCH = "x86_64"
#: Exit status of a run that did not finish in time (``timeout``'s, and ``accel run``'s).
TIMEOUT_STATUS = 124
#: ``accel run``'s exit status when the accelerator cannot run the guest.
UNSUPPORTED_STATUS = 125
#: Extra seconds the runner waits for ``accel run --timeout T`` to end by itself.
GRACE = 10.0
#: Lines of output a result keeps.
TAIL_LINES = 40

_KEYS = (
    "file", "smp", "extra_params", "qemu_params", "test_args", "arch", "accel", "machine",
    "timeout", "groups", "check", "disabled_if", "kvmtool_params",
)  # fmt: skip
_SECTION = re.compile(r"^\[(.*)\]$")
_KEY_VALUE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd]?)$")
_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


# --------------------------------------------------------------------------- tests


@dataclass(frozen=True)
class KernelTest:
    """One ``[name]`` section of ``unittests.cfg``.

    ``file`` is the kernel's path (the file name joined to the config's directory);
    ``append`` the test's command line (``-append`` of ``extra_params`` and ``test_args``,
    shell quoting removed; "" for none); ``extra_params`` the section's QEMU options as
    written. ``memory`` (``-m``), ``options`` (further ``accel run`` options translated
    from them) and ``unsupported`` (what has no ``accel run`` equivalent: the test skips
    naming it) come from ``extra_params``. ``timeout`` is None when the section sets none
    (the runner's default applies). ``line`` is where the section starts.
    """

    name: str
    file: Path
    smp: int = 1
    append: str = ""
    extra_params: str = ""
    arch: str | None = None
    accel: str | None = None
    timeout: float | None = None
    groups: tuple[str, ...] = ()
    check: tuple[tuple[str, str], ...] = ()
    machine: str | None = None
    memory: str | None = None
    options: tuple[str, ...] = ()
    unsupported: tuple[str, ...] = ()
    line: int = 0

    def skip_reason(
        self, accelerator: str, *, arch: str = ARCH, groups: Sequence[str] = ()
    ) -> str | None:
        """Why this test does not run on ``accelerator``, or None when it does.

        As run_tests.sh: an ``arch`` or ``accel`` restriction that does not match, a
        ``check`` whose file does not hold the value, a test in group ``nodefault``
        unless ``groups`` names it; ``groups`` given: a test in none of them. Then what
        accel cannot express: unsupported QEMU options, a ``machine`` other than ``pc``.
        """
        if self.arch and self.arch != arch:
            return f"{self.arch} only (this is {arch})"
        if self.accel and self.accel != accelerator:
            return f"accel = {self.accel}: {self.accel} only, not {accelerator}"
        if groups:
            if not set(groups) & set(self.groups):
                return f"not in the selected groups ({' '.join(groups)})"
        elif "nodefault" in self.groups:
            return "in group nodefault: run only when its group is selected"
        for path, value in self.check:
            try:
                found = Path(path).read_text().strip()
            except OSError as exc:
                return f"check {path}={value}: cannot read {path}: {exc.strerror}"
            if found != value:
                return f"check {path}={value}: it holds {found!r}"
        if self.unsupported:
            return "unsupported by accel run: " + ", ".join(self.unsupported)
        if self.machine not in (None, "pc"):
            return f"machine = {self.machine}: kernel tests run on the pc machine"
        return None


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``1.5m``, ``2h``, ``1d`` as seconds (coreutils ``timeout``'s form);
    ValueError otherwise, and for 0."""
    m = _DURATION.match(text.strip())
    if not m or float(m.group(1)) <= 0:
        raise ValueError(f"{text!r} is not a duration (seconds, or N with s, m, h or d)")
    return float(m.group(1)) * _UNITS[m.group(2)]


def load(path: str | os.PathLike[str]) -> list[KernelTest]:
    """The tests of the ``unittests.cfg`` at ``path`` (a directory means its
    ``unittests.cfg``); ConfigError when it cannot be read or is malformed."""
    p = Path(path)
    if p.is_dir():
        p = p / CONFIG_NAME
    try:
        text = p.read_text(encoding="utf-8", errors="surrogateescape")
    except OSError as exc:
        raise ConfigError(
            f"cannot read {p}: {exc.strerror}",
            hint=f"give the directory holding kvm-unit-tests' {CONFIG_NAME} and .flat files",
            file=str(p),
        ) from None
    return parse(text, p)


@dataclass
class _Section:
    name: str
    line: int
    values: dict[str, str] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)


def parse(text: str, path: str | os.PathLike[str] = CONFIG_NAME) -> list[KernelTest]:
    """The tests of ``text``, a ``unittests.cfg`` read from ``path`` (whose directory the
    ``file`` names are relative to); ConfigError naming ``path:line`` when malformed."""
    where = Path(path)
    lines = text.splitlines()
    sections: list[_Section] = []
    seen: dict[str, int] = {}
    index = 0
    while index < len(lines):
        number = index + 1
        line = lines[index].strip()  # ``read -r`` strips surrounding blanks too
        index += 1
        if not line or line.startswith("#"):
            continue
        header = _SECTION.match(line)
        if header:
            name = header.group(1).strip()
            if not name or any(c.isspace() for c in name) or "[" in name or "]" in name:
                raise _error(where, number, f"{line!r} is not a test name ([name], no blanks)")
            if name in seen:
                raise _error(where, number, f"test [{name}] again (first at line {seen[name]})")
            seen[name] = number
            sections.append(_Section(name, number))
            continue
        kv = _KEY_VALUE.match(line)
        if not kv:
            raise _error(where, number, f"{line!r}: expected [name], key = value or # comment")
        key, value = kv.group(1), kv.group(2)
        if not sections:
            raise _error(where, number, f"{key} = ... before the first [name]")
        if key not in _KEYS:
            guess = did_you_mean(key, _KEYS)
            extra = f" (did you mean {guess!r}?)" if guess else ""
            raise _error(where, number, f"unknown key {key!r}{extra}")
        section = sections[-1]
        if key in section.values or (
            key in ("extra_params", "qemu_params")
            and {"extra_params", "qemu_params"} & set(section.values)
        ):
            first = section.lines.get(key) or section.lines.get(
                "qemu_params" if key == "extra_params" else "extra_params"
            )
            raise _error(where, number, f"{key} given twice in [{section.name}] (line {first})")
        if value.startswith('"""'):
            value, index = _triple_quoted(value[3:], lines, index, where, number)
        section.values[key] = value
        section.lines[key] = number
    return [_test(s, where) for s in sections]


def _triple_quoted(
    first: str, lines: Sequence[str], index: int, where: Path, number: int
) -> tuple[str, int]:
    """A ``\"\"\"`` value: up to the line ending with ``\"\"\"``; a backslash at a line's
    end joins it to the next (as upstream's parse_opts)."""
    parts: list[str] = []
    current = first
    while True:
        stripped = current.rstrip()
        if stripped.endswith('"""'):
            parts.append(stripped[:-3])
            return "\n".join(parts), index
        if current.endswith("\\") and (len(current) - len(current.rstrip("\\"))) % 2 == 1:
            current = current[:-1]
            if index >= len(lines):
                break
            current += lines[index]
            index += 1
            continue
        parts.append(current)
        if index >= len(lines):
            break
        current = lines[index]
        index += 1
    raise _error(where, number, 'a """ value that is never closed with """')


def _error(where: Path, number: int, message: str) -> ConfigError:
    return ConfigError(f"{where}:{number}: {message}", file=str(where), line=number)


def _test(section: _Section, where: Path) -> KernelTest:
    values, at = section.values, section.lines

    def err(key: str, message: str) -> ConfigError:
        return _error(where, at.get(key, section.line), f"[{section.name}]: {message}")

    file = values.get("file", "").strip()
    if not file:
        raise err("file", "no file = ... (the test kernel)")
    smp_text = values.get("smp", "1").strip()
    unsupported: list[str] = []
    if smp_text == "$MAX_SMP":
        smp, unsupported = 1, ["smp = $MAX_SMP"]
    elif smp_text.isdigit() and int(smp_text) > 0:
        smp = int(smp_text)
    else:
        raise err("smp", f"smp = {smp_text!r}: give a number of vCPUs (1 or more)")
    timeout = None
    if values.get("timeout", "").strip():
        try:
            timeout = parse_duration(values["timeout"])
        except ValueError as exc:
            raise err("timeout", f"timeout: {exc}") from None
    extra = values.get("extra_params", values.get("qemu_params", ""))
    try:
        words = shlex.split(extra, comments=False)
        test_args = shlex.split(values.get("test_args", ""))
    except ValueError as exc:  # an unbalanced quote
        key = "test_args" if "test_args" in values else "extra_params"
        if key not in at:
            key = "qemu_params"
        raise err(key, f"cannot split {values.get(key, '')!r}: {exc}") from None
    params_key = "qemu_params" if "qemu_params" in values else "extra_params"
    try:
        translated = _translate(words)
    except ValueError as exc:
        raise err(params_key, str(exc)) from None
    unsupported += translated.unsupported
    if translated.smp is not None:
        smp = translated.smp
    append = " ".join([*translated.append, *test_args])
    check: list[tuple[str, str]] = []
    for item in values.get("check", "").split():
        path, sep, value = item.partition("=")
        if not sep or not path:
            raise err("check", f"check {item!r}: give path=value")
        check.append((path, value))
    if values.get("disabled_if", "").strip():
        unsupported.append(f"disabled_if = {values['disabled_if'].strip()}")
    return KernelTest(
        name=section.name,
        file=where.parent / file,
        smp=smp,
        append=append,
        extra_params=extra,
        arch=values.get("arch", "").strip() or None,
        accel=values.get("accel", "").strip() or None,
        timeout=timeout,
        groups=tuple(values.get("groups", "").split()),
        check=tuple(check),
        machine=values.get("machine", "").strip() or None,
        memory=translated.memory,
        options=tuple(translated.options),
        unsupported=tuple(unsupported),
        line=section.line,
    )


@dataclass
class _Translated:
    append: list[str] = field(default_factory=list)
    smp: int | None = None
    memory: str | None = None
    options: list[str] = field(default_factory=list)
    unsupported: list[str] = field(default_factory=list)


#: QEMU options of extra_params with an ``accel run`` option of the same meaning.
_SAME_MEANING = {"-cpu": "--cpu", "-initrd": "--initrd"}


def _translate(words: Sequence[str]) -> _Translated:
    """QEMU's options (``-append``, ``-smp``, ``-m``, ``-cpu``, ``-initrd``) as accel
    run's; the rest, each option with its value, listed as unsupported."""
    out = _Translated()
    i = 0
    while i < len(words):
        word = words[i]
        value = words[i + 1] if i + 1 < len(words) else None
        option = "-" + word.lstrip("-") if word.startswith("-") else word
        takes = option in ("-append", "-smp", "-m", *_SAME_MEANING)
        if takes and value is None:
            raise ValueError(f"{word} needs a value")
        if option == "-append":
            assert value is not None
            out.append.append(value)
        elif option == "-smp":
            assert value is not None
            first, _, rest = value.partition(",")
            count = first.removeprefix("cpus=")
            if count.isdigit() and int(count) > 0 and not rest:
                out.smp = int(count)
            else:
                out.unsupported.append(f"-smp {value}")
        elif option == "-m":
            assert value is not None
            out.memory = value.removeprefix("size=")
        elif option in _SAME_MEANING:
            assert value is not None
            out.options += [_SAME_MEANING[option], value]
        elif option.startswith("-"):
            # an option with its value (the next word, unless that is an option too)
            if value is not None and not value.startswith("-"):
                out.unsupported.append(f"{word} {value}")
                i += 1
            else:
                out.unsupported.append(word)
        else:
            out.unsupported.append(word)
        i += 2 if takes else 1
    return out


# --------------------------------------------------------------------------- results


class KernelStatus(enum.Enum):
    """kvm-unit-tests' verdicts (run_tests.sh prints them)."""

    PASS = "PASS"
    FAIL = "FAIL"
    SKIP = "SKIP"


def classify(exit_status: int, stderr: str = "") -> tuple[KernelStatus, str]:
    """kvm-unit-tests' verdict on an exit status, and why when not a plain PASS.

    1 = PASS, 3 = FAIL, 77 = SKIP (the test writes 0, 1 or 38 to isa-debug-exit, which
    exits with ``(value << 1) | 1``); 124 = the timeout; 125 = ``accel run``'s "the
    accelerator cannot run the guest"; anything else = FAIL, "unhandled
    exception/abort". An ``accel run`` error (its status 1 with an ``accel: error:``
    line on ``stderr``) is a FAIL, not a PASS.
    """
    error = _accel_error(stderr)
    if exit_status == 1 and error:
        return KernelStatus.FAIL, f"accel run failed: {error}"
    if exit_status == 1:
        return KernelStatus.PASS, ""
    if exit_status == 3:
        return KernelStatus.FAIL, "the test reported failures (exit status 3)"
    if exit_status == 77:
        return KernelStatus.SKIP, "the test skipped itself (exit status 77)"
    if exit_status == TIMEOUT_STATUS:
        return KernelStatus.FAIL, "timeout (exit status 124)"
    if exit_status == 2 and error:
        return KernelStatus.FAIL, f"accel run refused the command line: {error}"
    if exit_status == UNSUPPORTED_STATUS:
        said = _last_accel_line(stderr)
        return KernelStatus.FAIL, "accel run: the accelerator cannot run the guest (exit " + (
            f"status 125): {said}" if said else "status 125)"
        )
    if exit_status < 0:
        return KernelStatus.FAIL, f"accel run was killed by signal {-exit_status}"
    return KernelStatus.FAIL, f"unhandled exception/abort (exit status {exit_status})"


def _accel_error(stderr: str) -> str:
    for line in stderr.splitlines():
        text = line.strip()
        if text.startswith("accel: error:"):
            return text.removeprefix("accel: error:").strip()
        if text.startswith("accel run: error:"):  # argparse's usage errors
            return text.removeprefix("accel run: error:").strip()
    return ""


def _last_accel_line(stderr: str) -> str:
    """accel run's own last word (``accel: NAME: MESSAGE``), without the prefix."""
    found = ""
    for line in stderr.splitlines():
        if line.startswith("accel: "):
            found = line.removeprefix("accel: ").strip()
    return found


def find_summary(output: str) -> str:
    """The last ``SUMMARY: ...`` line of the serial output (stripped), or ""."""
    found = ""
    for line in output.splitlines():
        text = line.strip().strip("\r")
        if text.startswith("SUMMARY:"):
            found = text
    return found


def _tail(text: str, lines: int = TAIL_LINES) -> str:
    return "\n".join(text.splitlines()[-lines:])


@dataclass(frozen=True)
class KernelResult:
    """One run of one kernel test: the exit status and kvm-unit-tests' verdict on it,
    ``detail`` saying why when it is not a plain PASS, the ``SUMMARY:`` line (or ""), the
    last lines of the output (serial, then accel's own stderr), the wall time in seconds
    and the command line that ran."""

    exit_status: int
    status: KernelStatus
    summary: str = ""
    detail: str = ""
    output_tail: str = ""
    wall: float = 0.0
    command: tuple[str, ...] = ()


def result_from_exit(
    exit_status: int,
    output: str = "",
    stderr: str = "",
    *,
    wall: float = 0.0,
    command: Sequence[str] = (),
) -> KernelResult:
    """The :class:`KernelResult` of a run that exited with ``exit_status`` after printing
    ``output`` (the serial console) and ``stderr``; what fake runners return, too."""
    status, detail = classify(exit_status, stderr)
    tail = _tail(output)
    if stderr.strip():
        tail = (tail + "\n" if tail else "") + _tail(stderr, 10)
    return KernelResult(
        exit_status, status, find_summary(output), detail, tail, wall, tuple(command)
    )


# --------------------------------------------------------------------------- running

#: Runs one test on one accelerator within a timeout (seconds): what the pytest plugin
#: calls, and what its ``pytest_accel_kernel_runner`` hook may replace.
KernelRunner = Callable[[KernelTest, str, float], KernelResult]


def build_command(
    test: KernelTest,
    accelerator: str,
    *,
    timeout: float | None = None,
    python: str | None = None,
) -> list[str]:
    """The ``accel run`` command line that boots ``test`` on ``accelerator``::

        python -m accel run --accel NAME --kernel FILE --smp N -m SIZE
            [--append ARGS] [--cpu ... --initrd ...] --serial stdio --timeout T

    As kvm-unit-tests, ``--append`` only when there are arguments (QEMU would take the
    first word after an empty ``-append`` for a kernel parameter). ``-m`` is the test's
    or :data:`DEFAULT_MEMORY`; the isa-debug-exit device is ``accel run``'s default.
    """
    limit = timeout if timeout is not None else (test.timeout or DEFAULT_TIMEOUT)
    cmd = [python or sys.executable, "-m", "accel", "run", "--accel", accelerator]
    cmd += ["--kernel", str(test.file), "--smp", str(test.smp)]
    cmd += ["-m", test.memory or DEFAULT_MEMORY]
    if test.append:
        cmd += ["--append", test.append]
    cmd += [*test.options, "--serial", "stdio", "--timeout", f"{limit:g}"]
    return cmd


def run_kernel_test(
    test: KernelTest,
    accelerator: str,
    timeout: float | None = None,
    *,
    command: Callable[..., list[str]] = build_command,
    env: Mapping[str, str] | None = None,
) -> KernelResult:
    """Run ``test`` on ``accelerator`` in a subprocess (``command``'s command line),
    standard input closed; a :class:`KernelResult`. A run still going :data:`GRACE`
    seconds after the timeout is killed and reported as a timeout (124)."""
    limit = timeout if timeout is not None else (test.timeout or DEFAULT_TIMEOUT)
    cmd = command(test, accelerator, timeout=limit)
    start = time.monotonic()
    try:
        done = subprocess.run(
            cmd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=limit + GRACE,
            env=dict(env) if env is not None else None,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        return result_from_exit(
            TIMEOUT_STATUS,
            _text(exc.stdout),
            _text(exc.stderr) + f"\naccel run did not end within {limit + GRACE:g} s",
            wall=time.monotonic() - start,
            command=cmd,
        )
    except OSError as exc:
        return KernelResult(
            -1, KernelStatus.FAIL, detail=f"cannot start {cmd[0]}: {exc.strerror}",
            command=tuple(cmd),
        )  # fmt: skip
    return result_from_exit(
        done.returncode,
        _text(done.stdout),
        _text(done.stderr),
        wall=time.monotonic() - start,
        command=cmd,
    )


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    if isinstance(data, str):
        return data
    return data.decode("utf-8", errors="replace")


# --------------------------------------------------------------------------- expected


@dataclass(frozen=True)
class Reference:
    """One row of a reference table: the result another VMM (QEMU 7.2) gave.

    ``status`` 124 means the reference run did not finish: there is no reference.
    """

    test: str
    accel: str
    smp: int
    append: str
    status: int
    wall: float | None
    summary: str
    line: int = 0

    @property
    def usable(self) -> bool:
        return self.status != TIMEOUT_STATUS


class Expectations:
    """The rows of a reference table, looked up by (test, accelerator, smp, append).

    A row's ``test`` is the section name or, as in results.tsv, the kernel's file stem
    (``smptest`` for ``[smptest3]``, which runs smptest.flat with smp 3); a row of the
    section name wins.
    """

    def __init__(self, rows: Iterable[Reference], path: str = "") -> None:
        self.rows = tuple(rows)
        self.path = path

    def find(self, test: KernelTest, accelerator: str) -> Reference | None:
        fits = [
            r
            for r in self.rows
            if r.accel == accelerator and r.smp == test.smp and r.append == test.append
        ]
        for name in (test.name, test.file.stem):
            for row in fits:
                if row.test == name:
                    return row
        return None


def load_expected(path: str | os.PathLike[str]) -> Expectations:
    """A reference table: tab-separated ``test accel smp append status wall summary``
    rows; ``#`` lines are comments. ConfigError naming ``file:line`` when malformed."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {p}: {exc.strerror}", file=str(p)) from None
    rows: list[Reference] = []
    for number, raw in enumerate(text.splitlines(), 1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        cols = raw.split("\t")
        if len(cols) == 6:
            cols.append("")
        if len(cols) != 7:
            raise _error(p, number, f"{len(cols)} columns; expected 7, tab-separated")
        test, acc, smp, append, status, wall, summary = cols
        try:
            row = Reference(
                test.strip(), acc.strip(), int(smp), append.strip(), int(status),
                float(wall) if wall.strip() else None, summary.strip(), number,
            )  # fmt: skip
        except ValueError:
            raise _error(p, number, "smp and status must be integers, wall a number") from None
        rows.append(row)
    return Expectations(rows, str(p))


@dataclass(frozen=True)
class Verdict:
    """Whether a result matches its reference, and the sentence saying so."""

    matches: bool
    message: str


def _describe(status: int, summary: str) -> str:
    verdict, _ = classify(status)
    return f"exit status {status} ({verdict.value}), {summary or 'no SUMMARY line'}"


def compare(result: KernelResult, reference: Reference) -> Verdict:
    """Does ``result`` match ``reference``? Equal exit status and SUMMARY line match; so
    does a PASS where the reference did not pass (the reference VMM's host may fail a
    test its hardware cannot run). Call only for a :attr:`Reference.usable` row."""
    ours = _describe(result.exit_status, result.summary)
    if result.detail.startswith("accel run"):  # not the guest's verdict: say what failed
        ours += f" ({result.detail})"
    theirs = _describe(reference.status, reference.summary)
    if result.exit_status == reference.status and result.summary == reference.summary:
        return Verdict(True, f"matches the reference: {ours}")
    if result.status is KernelStatus.PASS and classify(reference.status)[0] is not (
        KernelStatus.PASS
    ):
        return Verdict(True, f"passes where the reference did not: {ours}; reference {theirs}")
    return Verdict(False, f"accel gave {ours}; the reference gave {theirs}")
