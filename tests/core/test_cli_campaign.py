"""Issue #15, "Done when": a hypothesis campaign over argument vectors of ``accel run``,
``accel machine list|show`` and ``accel snapshot inspect`` (and stray top-level words).

Every vector runs in-process through :func:`accel.cli.main` with StringIO streams, in a
fresh sandbox directory of hostile files (a tiny image, an empty and a 1-byte one, a
directory, a FIFO without a writer, a symlink loop, good, garbage and truncated
snapshots, links and new names to save to) plus ``/dev/null``, ``/dev/zero`` and
``/dev/full``. Each example checks what a user would see:

* the exit status is one of :data:`DOCUMENTED_STATUSES` (docs/reliability.md,
  docs/machines.md);
* an error status ends stderr with exactly one ``accel...: error: ...`` line (a usage
  error: argparse's usage lines first), and stderr never holds a traceback;
* no exception escapes :func:`~accel.cli.main` (no SystemExit either: main returns 2);
* no file in the sandbox changed, but the ``--save`` target, and the device nodes are
  what they were.

Guest runs are bounded: a ``--timeout``/``--stop-after`` is appended to every ``run``
vector (the last occurrence wins; a bad earlier value is still a usage error), and most
vectors name ``--accel tcg`` first (a later ``--accel`` wins). The examples are
derandomized, so a failure reproduces; the whole campaign takes about 50 s here.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import stat
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accel.cli import main

# --- what is documented ---------------------------------------------------------------

#: The value the campaign's image writes to isa-debug-exit (port 0xF4).
GUEST_EXIT_VALUE = 0x10

#: Exit statuses users may see (docs/reliability.md "How errors look", docs/machines.md
#: "accel run IMAGE"): 0 (success, halt, shutdown, --stop-after), 1 (an AccelError,
#: output that cannot be written), 2 (usage), the guest's isa-debug-exit value as
#: ((v << 1) | 1) & 0xFF, 124 (--timeout), 125 (the accelerator cannot run the guest),
#: 129 / 130 / 143 (SIGHUP / SIGINT / SIGTERM).
DOCUMENTED_STATUSES = frozenset(
    {0, 1, 2, 124, 125, 129, 130, 143, ((GUEST_EXIT_VALUE << 1) | 1) & 0xFF}
)
ERROR_STATUSES = frozenset({1, 2, 130})

#: ``accel: error: ...``, ``accel run: error: ...``, ``accel machine show: error: ...``.
ERROR_LINE = re.compile(r"accel(?: [a-z]+)*: error: \S.*")
#: How a run ended: ``accel: tcg: guest wrote 0x10 to isa-debug-exit: ...``.
RUN_END = re.compile(r"accel: [a-z0-9_-]+: \S.*")
#: A line ``accel run`` may write before its error: a candidate passed over.
FALLBACK_NOTE = re.compile(r"accel: \S+ is not usable \(.*; falling back to \S+")
#: What a restore notes (``accel: FILE: ...``): what the snapshot lacked, devices a move to
#: another accelerator leaves out or adds (docs/snapshots.md).
RESTORE_NOTE = re.compile(r"accel: \S+: \S.*")


def _note(line: str) -> bool:
    return bool(FALLBACK_NOTE.fullmatch(line)) or (
        bool(RESTORE_NOTE.fullmatch(line)) and not ERROR_LINE.fullmatch(line)
    )


# --- the sandbox ----------------------------------------------------------------------

#: Writes 0x10 to isa-debug-exit, then CLI; HLT. 16 bytes: the reset vector (16 bytes
#: from the end) is its first byte, and --load-addr starts at it too.
TINY = bytes.fromhex("b010e6f4faf4") + b"\x90" * 10
#: ``jmp $``: runs until stopped.
LOOP = bytes.fromhex("ebfe") + b"\x90" * 14


@dataclass(frozen=True, slots=True)
class F:
    """A file of the sandbox, named in a vector; resolved when the example runs."""

    name: str


Token = str | F

SNAPSHOT_FILES = ("good.snap", "running.snap", "garbage.snap", "trunc.snap", "fed.fifo")
FILES = (
    "tiny.bin", "loop.bin", "empty.bin", "one.bin", "dir", "fifo", "missing", "loop-a",
    "link-tiny",
)  # fmt: skip
SAVE_TARGETS = (
    "out.snap", "existing.snap", "link.snap", "dangling.snap", "dir", "fifo",
    "nodir/x.snap", "new/", "tiny.bin", "good.snap", "link-tiny",
)  # fmt: skip
HOST_PATHS = ("/dev/null", "/dev/zero", "/dev/full")


@dataclass
class Sandbox:
    root: Path
    snapshots: dict[str, bytes]

    def path(self, token: Token) -> str:
        return str(self.root / token.name) if isinstance(token, F) else token

    def build(self) -> None:
        r = self.root
        (r / "tiny.bin").write_bytes(TINY)
        (r / "loop.bin").write_bytes(LOOP)
        (r / "empty.bin").write_bytes(b"")
        (r / "one.bin").write_bytes(b"\xf4")
        (r / "dir").mkdir()
        os.mkfifo(r / "fifo")
        os.mkfifo(r / "fed.fifo")
        os.symlink("loop-b", r / "loop-a")
        os.symlink("loop-a", r / "loop-b")
        os.symlink("tiny.bin", r / "link-tiny")
        good = self.snapshots["good"]
        (r / "good.snap").write_bytes(good)
        (r / "running.snap").write_bytes(self.snapshots["running"])
        (r / "garbage.snap").write_bytes(b"ACCELSNP" + bytes(range(256)) * 3)
        (r / "trunc.snap").write_bytes(good[: len(good) // 2])
        (r / "existing.snap").write_bytes(b"old content")
        (r / "existing.snap").chmod(0o640)
        (r / "target.snap").write_bytes(b"link target")
        os.symlink("target.snap", r / "link.snap")
        os.symlink("created-by-link.snap", r / "dangling.snap")

    @contextlib.contextmanager
    def feeding(self) -> Iterator[None]:
        """While the block runs, a writer feeds the good snapshot into ``fed.fifo`` once
        a reader opens it (never blocking: it polls for a reader)."""
        done = threading.Event()
        data = self.snapshots["good"]
        fifo = self.root / "fed.fifo"

        def feed() -> None:  # once: a second copy would be trailing bytes
            while not done.is_set():
                try:
                    fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
                except OSError:  # ENXIO: no reader yet
                    done.wait(0.002)
                    continue
                with contextlib.suppress(OSError):
                    os.set_blocking(fd, True)
                    os.write(fd, data)
                os.close(fd)
                return

        thread = threading.Thread(target=feed, daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join(10)


def tree_state(root: Path) -> dict[str, tuple[object, ...]]:
    """Every path under ``root`` (links not followed) -> (type, mode, size, mtime_ns,
    sha256 of a small regular file's content, a link's target)."""
    state: dict[str, tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            p = os.path.join(dirpath, name)
            st_ = os.lstat(p)
            extra: object = None
            if stat.S_ISREG(st_.st_mode) and st_.st_size <= 1 << 20:
                extra = hashlib.sha256(Path(p).read_bytes()).hexdigest()
            elif stat.S_ISLNK(st_.st_mode):
                extra = os.readlink(p)
            # The feeder's writes move fed.fifo's mtime: only its type and mode count.
            mtime = None if name == "fed.fifo" else st_.st_mtime_ns
            state[p] = (
                stat.S_IFMT(st_.st_mode), stat.S_IMODE(st_.st_mode), st_.st_size, mtime, extra,
            )  # fmt: skip
    for host in HOST_PATHS:
        st_ = os.lstat(host)
        state[host] = (stat.S_IFMT(st_.st_mode), stat.S_IMODE(st_.st_mode), st_.st_rdev)
    return state


# --- strategies -----------------------------------------------------------------------

#: Random words: any text without NUL (argv cannot hold one) that could not be taken for
#: ``--save`` (an abbreviation ``--sa=NAME`` would write NAME in the working directory).
words = st.text(
    st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=12
).filter(lambda s: not s.startswith("--s"))

accel_values = st.one_of(
    st.sampled_from([
        "tcg", "kvm", "xen", "kvm:tcg", "tcg:kvm", "xen:tcg", "tgc", "KVM", "", "kvm:",
        ":", "tcg,thread=multi", "tcg,thread=single", "tcg,thread=", "tcg,=x",
        "tcg,tb-size=1", "kvm,kernel-irqchip=off", "tcg,,", "nope:tcg", "tcg:tcg",
    ]),
    words,
)  # fmt: skip
machine_values = st.one_of(
    st.sampled_from([
        "pc", "q35", "isapc", "microvm", "pc-i440fx-1.4", "pc-q35-2.4", "pc,kernel-irqchip=on",
        "pc,kernel-irqchip=split", "pc,kernel-irqchip=off", "pc,kernel-irqchip=maybe",
        "pc,", ",", "", "pc,foo=bar", "pc,kernel-irqchip", "none", "q35,kernel-irqchip=off",
    ]),
    words,
)  # fmt: skip
cpu_values = st.one_of(
    st.sampled_from([
        "host", "max", "base", "qemu64", "486", "EPYC", "host,-kvmclock", "qemu64,+sse2",
        "qemu64,-", "qemu64,+nope", ",", "", "Haswell,+x2apic,-x2apic", "qemu64,kvmclock=on",
    ]),
    words,
)  # fmt: skip
device_values = st.one_of(
    st.sampled_from([
        "isa-debug-exit", "isa-debug-exit,iobase=0xf4,iosize=4", "isa-debug-exit,iobase=0x501",
        "isa-debug-exit,iobase=0x1fff4", "isa-debug-exit,iobase=-1", "isa-debug-exit,iosize=0",
        "isa-debug-exit,iosize=3", "isa-debugcon", "isa-debugcon,iobase=0xe9",
        "isa-debugcon,iobase=0x10000", "isa-debugcon,iobase=-1", "isa-debugcon,iobase=zz",
        "isa-debugcon,readback=0x1ff", "hpet", "hpet,timers=0", "hpet,timers=1000",
        "hpet,timers=32", "hpet,base=0", "mc146818rtc", "mc146818rtc,base=localtime",
        "mc146818rtc,base=mars", "isa-pit", "isa-pit,iobase=0x70", "irqchip", "kvmclock",
        "kvm-pit", "nodev", "", ",", "isa-debugcon,", "isa-debugcon,iobase", "=",
        "isa-debugcon,iobase=0xe9,iobase=0xea", "isa-debugcon,nope=1",
    ]),
    words,
)  # fmt: skip
number_values = st.one_of(
    st.sampled_from([
        "0", "-1", "nan", "inf", "-inf", "1e30", "86400", "86401", "0.2", "1e-3", "soon",
        "", "0x10", "1_0", " 0.3 ", "5", "-0",
    ]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)  # fmt: skip
duration_values = st.one_of(
    st.sampled_from([
        "500ms", "50ms", "2s", "1.5", "1m", "1min", "-1s", "0s", "0ms", "1h", "ms", "1e3ms",
        ".5s", "1.s", "24h", "1441m", "86400s", "86401", " 20ms", "20 ms", "nan", "inf",
    ]),
    number_values,
)  # fmt: skip
address_values = st.one_of(
    st.sampled_from([
        "0", "0x1000", "0x7c00", "0xffff0", "0x100000", "0xfff000", "0x1000000", "-1",
        "-0x10", "0b101", "0o17", "1_000", "0x", "zz", "", "4096", "0xfffffffffffffffff",
    ]),
    st.integers(-(1 << 70), 1 << 70).map(str),
)  # fmt: skip
image_files = st.one_of(
    st.sampled_from(FILES).map(F),
    st.sampled_from(HOST_PATHS),
    words,
)
#: Not "fifo": a snapshot FIFO without a writer is waited for, as ``cat`` waits
#: (docs/reliability.md); fed.fifo has a writer.
snapshot_files = st.one_of(
    st.sampled_from(SNAPSHOT_FILES).map(F),
    st.sampled_from(["good.snap", "running.snap"]).map(F),
    st.sampled_from([f for f in FILES if f != "fifo"]).map(F),
    st.sampled_from(HOST_PATHS),
    words,
)
save_targets = st.one_of(
    st.sampled_from(SAVE_TARGETS).map(F),
    st.sampled_from(HOST_PATHS),
    words.filter(lambda s: s not in ("", ".", "..") and "/" not in s).map(lambda s: F(s)),
)


def option(
    name: str, values: st.SearchStrategy[Token], missing: bool = True
) -> st.SearchStrategy[list[Token]]:
    """``NAME VALUE``, ``NAME=VALUE`` (a sandbox file's path joined when it runs), or, when
    ``missing``, ``NAME`` alone (a missing value: the next word becomes its value, so
    never for ``--save``)."""

    def shape(pair: tuple[int, Token]) -> list[Token]:
        form, value = pair
        if form == 0 and isinstance(value, str):
            return [f"{name}={value}"]
        if form == 1:
            return [name]
        return [name, value]

    forms = [0, 2, 2, 2, 1] if missing else [0, 2, 2, 2, 2]
    return st.tuples(st.sampled_from(forms), values).map(shape)


flags = st.sampled_from([
    "--no-debug-devices", "--json", "--help", "-h", "--version", "--", "-", "--nope", "-x",
    "--accel", "--timeout=", "--restore-mode=later", "--device=", "---", "-Mpc", "-M",
])  # fmt: skip

machine_options = [
    option("--accel", accel_values),
    option("--machine", machine_values),
    option("-M", machine_values),
    option("--cpu", cpu_values),
    option("--device", device_values),
]
run_option = st.one_of(
    *machine_options,
    option("--device", device_values),
    option("--timeout", number_values),
    option("--stop-after", duration_values),
    option("--save", save_targets, missing=False),
    option("--restore", snapshot_files),
    option("--restore-mode", st.sampled_from(["same-host", "catch-up", "", "SAME-HOST", "x"])),
    option("--load-addr", address_values),
    option("--entry", address_values),
    st.just(["--no-debug-devices"]),
    flags.map(lambda f: [f]),
    words.map(lambda w: [w]),
)
#: What bounds a run: the last --timeout / --stop-after wins.
BOUNDS = (["--timeout", "0.2"], ["--stop-after", "50ms"], ["--timeout=0.1"])


#: The options of a well-formed run: no missing values, no stray words.
plausible_run_option = st.one_of(
    option("--accel", accel_values, missing=False),
    option("--machine", machine_values, missing=False),
    option("--cpu", cpu_values, missing=False),
    option("--device", device_values, missing=False),
    option("--timeout", number_values, missing=False),
    option("--stop-after", duration_values, missing=False),
    option("--save", save_targets, missing=False),
    option("--load-addr", address_values, missing=False),
    option("--entry", address_values, missing=False),
    st.just(["--no-debug-devices"]),
)
restore_option = st.one_of(
    option("--accel", accel_values, missing=False),
    option("--restore-mode", st.sampled_from(["same-host", "catch-up", "catch-up", "x"])),
    option("--save", save_targets, missing=False),
    option("--timeout", number_values, missing=False),
    option("--stop-after", duration_values, missing=False),
    plausible_run_option,  # a machine option or IMAGE with --restore: a usage error
)


@st.composite
def run_vectors(draw: st.DrawFn) -> list[Token]:
    """Three shapes: anything (mostly usage errors), a well-formed run of an image, and
    a restore; then a bound (the last --timeout/--stop-after wins)."""
    shape = draw(st.sampled_from(["chaos", "image", "image", "restore"]))
    groups: list[list[Token]]
    if shape == "chaos":
        groups = draw(st.lists(run_option, max_size=6))
        image = draw(st.one_of(st.none(), image_files, st.just(F("tiny.bin"))))
    elif shape == "image":
        groups = draw(st.lists(plausible_run_option, max_size=3))
        image = draw(st.one_of(st.sampled_from(["tiny.bin", "loop.bin"]).map(F), image_files))
    else:
        groups = [["--restore", draw(snapshot_files)]]
        groups += draw(st.lists(restore_option, max_size=3))
        image = None
        groups = draw(st.permutations(groups))
    if image is not None:  # between options, never between an option and its value
        groups.insert(draw(st.integers(0, len(groups))), [image])
    options = [t for group in groups for t in group]
    # Mostly tcg (fast and portable); a later --accel in the vector wins.
    prefix = ["--accel", "tcg"] if draw(st.integers(0, 9)) else []
    return ["run", *prefix, *options, *draw(st.sampled_from(BOUNDS))]


machine_show_option = st.one_of(
    *machine_options,
    st.just(["--json"]),
    flags.map(lambda f: [f]),
    words.map(lambda w: [w]),
)


@st.composite
def machine_vectors(draw: st.DrawFn) -> list[Token]:
    sub = draw(st.sampled_from(["list", "show", "show", "show", "", "lst", "--json"]))
    if sub == "list":
        opts = draw(
            st.lists(
                st.sampled_from(["--cpus", "--devices", "--json", "-M", "pc", "-h"]), max_size=3
            )
        )
        return ["machine", "list", *opts]
    options = [t for group in draw(st.lists(machine_show_option, max_size=5)) for t in group]
    return ["machine", sub, *options] if sub else ["machine", *options]


@st.composite
def snapshot_vectors(draw: st.DrawFn) -> list[Token]:
    sub = draw(st.sampled_from(["inspect"] * 6 + ["", "inspekt", "--json"]))
    parts: list[list[Token]] = draw(
        st.lists(
            st.one_of(
                st.just(["--json"]),
                snapshot_files.map(lambda f: [f]),
                flags.map(lambda f: [f]),
            ),
            max_size=3,
        )
    )
    if sub == "inspect" and draw(st.booleans()):
        parts.insert(0, [draw(snapshot_files)])
    return ["snapshot", *([sub] if sub else []), *(t for p in parts for t in p)]


top_words = st.lists(
    st.one_of(
        words,
        st.sampled_from(
            [
                "run",
                "machine",
                "snapshot",
                "info",
                "plugins",
                "check",
                "--version",
                "-h",
                "--help",
                "ru",
                "machines",
                "snap",
                "",
                "-",
                "--",
                "--json",
                "--accel",
            ]
        ),
    ),
    max_size=3,
)

# --- the check ------------------------------------------------------------------------


def save_target(argv: Sequence[str]) -> str | None:
    """The path ``--save`` names last in ``argv`` (argparse keeps the last), resolved
    through links: the one file a run may change."""
    target = None
    for i, arg in enumerate(argv):
        if arg == "--save" and i + 1 < len(argv):
            target = argv[i + 1]
        elif arg.startswith("--save="):
            target = arg.removeprefix("--save=")
    return os.path.realpath(target) if target else None


def check_stderr(status: int, err: str) -> None:
    assert "Traceback" not in err, err
    lines = err.splitlines()
    if status not in ERROR_STATUSES:
        # Nothing (help, a listing), or how the run ended: one line, last.
        if lines:
            *before, last = lines
            assert all(_note(line) for line in before), err
            assert RUN_END.fullmatch(last) and not ERROR_LINE.fullmatch(last), err
        return
    if status == 2 and lines and lines[0].startswith("usage: accel"):
        # argparse: the usage (its continuation lines indented), then one error line.
        *usage, last = lines
        assert all(line.startswith(" ") for line in usage[1:]), err
    else:
        *before, last = lines or [""]
        assert all(_note(line) for line in before), err
    assert ERROR_LINE.fullmatch(last), err


def run_vector(sandbox: Sandbox, vector: Sequence[Token]) -> None:
    argv = [sandbox.path(t) for t in vector]
    allowed = save_target(argv)
    # The campaign itself never writes outside the sandbox (a bare --save would take the
    # next word as a file name in the working directory).
    assert (
        allowed is None or allowed.startswith(f"{sandbox.root.resolve()}/") or allowed in HOST_PATHS
    ), f"the vector saves outside the sandbox: {argv!r}"
    before = tree_state(sandbox.root)
    out, err = io.StringIO(), io.StringIO()
    with (
        sandbox.feeding(),
        contextlib.redirect_stdout(out),  # argparse's help and usage go to sys.stdout/err
        contextlib.redirect_stderr(err),
    ):
        try:
            status = main(argv, out=out, err=err)
        except SystemExit as exc:  # pragma: no cover - a failure of main's contract
            raise AssertionError(f"SystemExit({exc.code!r}) escaped main({argv!r})") from exc
    assert status in DOCUMENTED_STATUSES, (status, argv, err.getvalue())
    check_stderr(status, err.getvalue())
    after = tree_state(sandbox.root)
    changed = sorted(
        p
        for p in before.keys() | after.keys()
        if before.get(p) != after.get(p) and os.path.realpath(p) != allowed
    )
    assert not changed, (argv, changed, err.getvalue())


class Campaign:
    """Where the sandboxes go, and the snapshots they get (a short repr: hypothesis prints
    the test's arguments with a failing example)."""

    def __init__(self, base: Path) -> None:
        self.base = base
        d = base / "snapshots"
        d.mkdir()
        (d / "tiny.bin").write_bytes(TINY)
        (d / "loop.bin").write_bytes(LOOP)
        log = io.StringIO()
        for image, snap, more in (
            ("tiny.bin", "good.snap", []),
            ("loop.bin", "running.snap", ["--stop-after", "50ms"]),
        ):
            argv = ["run", "--accel", "tcg", str(d / image), "--save", str(d / snap), *more]
            assert main(argv, out=log, err=log) in (0, 33), log.getvalue()
        # A snapshot of a run that ended (tiny.bin), and one of a guest still running.
        self.snapshots = {
            "good": (d / "good.snap").read_bytes(),
            "running": (d / "running.snap").read_bytes(),
        }

    def __repr__(self) -> str:
        return f"Campaign({str(self.base)!r})"

    @contextlib.contextmanager
    def sandbox(self) -> Iterator[Sandbox]:
        with tempfile.TemporaryDirectory(dir=self.base) as root:
            box = Sandbox(Path(root), self.snapshots)
            box.build()
            yield box

    def run(self, vector: Sequence[Token]) -> None:
        with self.sandbox() as box:
            run_vector(box, vector)


@pytest.fixture(scope="module")
def campaign(tmp_path_factory: pytest.TempPathFactory) -> Campaign:
    return Campaign(tmp_path_factory.mktemp("campaign"))


CAMPAIGN = settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

pytestmark = [
    pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning"),
    pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning"),
]


@settings(CAMPAIGN, max_examples=3000)
@given(vector=run_vectors())
def test_run_vectors(vector: list[Token], campaign: Campaign) -> None:
    campaign.run(vector)


@settings(CAMPAIGN, max_examples=1200)
@given(vector=machine_vectors())
def test_machine_vectors(vector: list[Token], campaign: Campaign) -> None:
    campaign.run(vector)


@settings(CAMPAIGN, max_examples=800)
@given(vector=snapshot_vectors())
def test_snapshot_vectors(vector: list[Token], campaign: Campaign) -> None:
    campaign.run(vector)


@settings(CAMPAIGN, max_examples=300)
@given(vector=top_words)
def test_top_level_words(vector: list[Token], campaign: Campaign) -> None:
    campaign.run(vector)


# --- what the campaign found ------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "shown"),
    [
        (["plugins", "x\x1ey"], "unrecognized arguments: x\\x1ey"),
        (["run", "img.bin", "--zz\nq"], "unrecognized arguments: --zz\\nq"),
        (["machine", "show", "a\u2028b", "c d"], "unrecognized arguments: a\\u2028b c d"),
        (["snapshot", "inspect", "f", "\t"], "unrecognized arguments: \\t"),
    ],
)
def test_a_usage_error_quoting_a_line_break_is_one_line(argv: list[str], shown: str) -> None:
    """argparse quotes unknown arguments as typed: a line break (``\\n``, ``\\x1e``,
    U+2028) among them made the error two lines; it is shown escaped."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        assert main(argv, out=out, err=err) == 2
    check_stderr(2, err.getvalue())
    assert err.getvalue().splitlines()[-1].endswith(shown), err.getvalue()


def test_the_line_saying_how_a_run_ended_is_one_line(campaign: Campaign) -> None:
    """``--save`` to a name with a line break: the line saying how the run ended (and
    where the snapshot went) stays one line, as an error's does."""
    with campaign.sandbox() as box:
        save = box.root / "a\nb.snap"
        argv = ["run", "--accel", "tcg", str(box.root / "tiny.bin"), "--save", str(save)]
        out, err = io.StringIO(), io.StringIO()
        assert main(argv, out=out, err=err) == 33, err.getvalue()
        check_stderr(33, err.getvalue())
        assert err.getvalue().endswith(f"snapshot written to {box.root}/a b.snap\n")
        assert save.is_file()
