"""Issue #15, Files: ``accel`` never clobbers a file, never reads without bound, reads a
snapshot stream (or refuses it by name), and output that cannot be written is one line.

Each test runs the real command (``python -m accel ...`` in a subprocess, or
:func:`accel.cli.main` in-process where a fault is injected) on real files under
tmp_path and checks what a user sees: exit status, stdout, the one stderr line, and the
files left behind (content, mode, owner, inode type).
"""

from __future__ import annotations

import errno
import io
import os
import socket
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import accel.cli
import accel.runner
import accel.snapshot
from accel.runner import MAX_IMAGE

ROOT = Path(__file__).resolve().parents[2]
GUESTS = ROOT / "examples" / "guests"
HELLO = str(GUESTS / "hello.bin")  # prints a line, exits with status 1
COMPUTE = str(GUESTS / "compute.bin")  # prints fib(10) = 55, exits with status 111


def accel_cmd(
    *args: str, stdin: bytes | None = None, cwd: Path = ROOT, timeout: float = 120
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "accel", *args],
        input=stdin,
        capture_output=True,
        timeout=timeout,
        cwd=cwd,
        check=False,
    )


def error_line(proc: subprocess.CompletedProcess[bytes]) -> str:
    """The single ``accel: error: ...`` line of a failed command (status 1, no stdout)."""
    err = proc.stderr.decode()
    assert "Traceback" not in err, err
    assert proc.returncode == 1, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("accel: error: "), err
    return lines[0]


def kind_of(path: Path) -> int:
    return stat.S_IFMT(os.lstat(path).st_mode)


@pytest.fixture(scope="module")
def good_snapshot(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A machine snapshot of compute.bin's run on tcg (restoring it reports status 111)."""
    path = tmp_path_factory.mktemp("snap") / "good.snap"
    done = accel_cmd("run", "--accel", "tcg", "--save", str(path), COMPUTE)
    assert done.returncode == 111, done.stderr
    return path.read_bytes()


@pytest.fixture
def device_node(tmp_path: Path) -> Path:
    """A character device with /dev/null's numbers under tmp_path, not the host's node."""
    path = tmp_path / "node"
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("creating a device node needs root")
    return path


@pytest.fixture
def unix_socket(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    yield path
    s.close()


# --------------------------------------------------------------------------- --save


@pytest.mark.parametrize("kind", ["fifo", "directory", "socket", "device", "link-to-device"])
def test_save_refuses_a_target_that_is_not_a_regular_file_before_the_guest_runs(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if kind == "fifo":
        target = tmp_path / "fifo"
        os.mkfifo(target)
    elif kind == "directory":
        target = tmp_path / "dir"
        target.mkdir()
    elif kind == "socket":
        target = request.getfixturevalue("unix_socket")
    elif kind == "device":
        target = request.getfixturevalue("device_node")
    else:
        node = request.getfixturevalue("device_node")
        target = tmp_path / "link"
        target.symlink_to(node)
    before = {p.name: kind_of(p) for p in tmp_path.iterdir()}
    got = accel_cmd("run", "--accel", "tcg", "--save", str(target), HELLO)
    line = error_line(got)
    assert line.startswith(f"accel: error: cannot write the snapshot to {str(target)!r}")
    assert "not a regular file (hint: give the path of a regular file or of a new one" in line
    assert got.stdout == b""  # the guest (which prints a line) never ran
    assert {p.name: kind_of(p) for p in tmp_path.iterdir()} == before


def test_save_through_a_link_writes_its_target(tmp_path: Path) -> None:
    real = tmp_path / "real.snap"
    real.write_bytes(b"old")
    link = tmp_path / "vm.snap"
    link.symlink_to(real)
    got = accel_cmd("run", "--accel", "tcg", "--save", str(link), COMPUTE)
    assert got.returncode == 111, got.stderr
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert real.read_bytes().startswith(b"ACCELSNP")
    assert accel_cmd("snapshot", "inspect", str(link)).returncode == 0


def test_save_keeps_an_existing_files_mode_and_owner(tmp_path: Path) -> None:
    target = tmp_path / "vm.snap"
    target.write_bytes(b"old")
    os.chmod(target, 0o640)
    if os.geteuid() == 0:
        os.chown(target, 4321, 1234)
    old = os.stat(target)
    got = accel_cmd("run", "--accel", "tcg", "--save", str(target), COMPUTE)
    assert got.returncode == 111, got.stderr
    new = os.stat(target)
    assert target.read_bytes().startswith(b"ACCELSNP")
    assert stat.S_IMODE(new.st_mode) == 0o640
    assert (new.st_uid, new.st_gid) == (old.st_uid, old.st_gid)
    assert sorted(os.listdir(tmp_path)) == ["vm.snap"]


def test_a_new_save_file_gets_0666_less_the_umask(tmp_path: Path) -> None:
    target = tmp_path / "vm.snap"
    got = subprocess.run(
        f"umask 027; {sys.executable} -m accel run --accel tcg --save {target} {COMPUTE}",
        shell=True, capture_output=True, timeout=120, cwd=ROOT, check=False,
    )  # fmt: skip
    assert got.returncode == 111, got.stderr
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o640  # not mkstemp's 0600


def test_save_onto_the_image_is_refused(tmp_path: Path) -> None:
    image = tmp_path / "compute.bin"
    image.write_bytes(Path(COMPUTE).read_bytes())
    got = accel_cmd("run", "--accel", "tcg", "--save", str(image), str(image))
    assert "is the image being run" in error_line(got)
    assert image.read_bytes() == Path(COMPUTE).read_bytes()


def test_a_save_that_fails_mid_way_leaves_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk while the snapshot is written: the old file, its mode, and nothing else."""
    target = tmp_path / "vm.snap"
    target.write_bytes(b"the previous snapshot")
    os.chmod(target, 0o604)

    def half_then_full(machine: object, f: io.BufferedWriter) -> None:
        f.write(b"ACCELSNP half of it")
        f.flush()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(accel.snapshot, "save_machine", half_then_full)
    out, err = io.StringIO(), io.StringIO()
    status = accel.cli.main(
        ["run", "--accel", "tcg", "--save", str(target), COMPUTE], out=out, err=err
    )
    assert status == 1
    assert err.getvalue() == (
        f"accel: error: cannot write the snapshot {str(target)!r}: No space left on device "
        "(hint: check the free space and permissions of its directory; the run ended: guest "
        "wrote 0x37 to isa-debug-exit: exit status (value << 1) | 1 = 111)\n"
    )
    assert target.read_bytes() == b"the previous snapshot"
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o604
    assert os.listdir(tmp_path) == ["vm.snap"]  # no temporary file left


# --------------------------------------------------------------------------- images


def test_an_unbounded_or_special_image_is_refused_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # no writer: opening must not wait for one
    for image, kind in [
        ("/dev/zero", "a character device"),
        (str(fifo), "a FIFO (named pipe) or pipe"),
        (str(tmp_path), "a directory"),
    ]:
        line = error_line(accel_cmd("run", "--accel", "tcg", image, timeout=30))
        assert line == (
            f"accel: error: cannot read image {image!r}: it is {kind}, not a regular file "
            "(hint: give the path of a flat binary file (as qemu -bios takes); save a stream "
            "to a file first)"
        )


def test_an_image_from_a_pipe_is_refused_and_from_a_redirected_file_runs() -> None:
    piped = accel_cmd("run", "--accel", "tcg", "/dev/stdin", stdin=Path(COMPUTE).read_bytes())
    assert "'/dev/stdin': it is a FIFO (named pipe) or pipe" in error_line(piped)
    with open(COMPUTE, "rb") as f:
        redirected = subprocess.run(
            [sys.executable, "-m", "accel", "run", "--accel", "tcg", "/dev/stdin"],
            stdin=f, capture_output=True, timeout=120, cwd=ROOT, check=False,
        )  # fmt: skip
    assert redirected.returncode == 111 and redirected.stdout == b"fib(10) = 55\n"


def test_an_image_over_the_limit_is_refused_without_reading_it(tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        f.truncate(MAX_IMAGE + 1)  # sparse
    line = error_line(accel_cmd("run", "--accel", "tcg", str(big)))
    assert line.startswith(f"accel: error: the image {str(big)!r} is larger than 16 MiB")
    exact = tmp_path / "exact.bin"
    exact.write_bytes(Path(HELLO).read_bytes().rjust(MAX_IMAGE, b"\0"))
    assert accel_cmd("run", "--accel", "tcg", str(exact)).returncode == 1  # hello's status


def test_an_empty_image_is_named(tmp_path: Path) -> None:
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    assert error_line(accel_cmd("run", "--accel", "tcg", str(empty))) == (
        f"accel: error: the image {str(empty)!r} is empty (hint: give a flat binary)"
    )


# --------------------------------------------------------------------------- --restore


def test_restore_reads_a_pipe_on_stdin(good_snapshot: bytes) -> None:
    got = accel_cmd("run", "--restore", "/dev/stdin", "--accel", "tcg", stdin=good_snapshot)
    assert got.returncode == 111, got.stderr
    assert b"the run had ended at the save" in got.stderr


def test_restore_reads_a_fifo(good_snapshot: bytes, tmp_path: Path) -> None:
    fifo = tmp_path / "snap"
    os.mkfifo(fifo)

    def writer() -> None:
        with open(fifo, "wb") as w:
            w.write(good_snapshot)

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    got = accel_cmd("run", "--restore", str(fifo), "--accel", "tcg")
    t.join(30)
    assert got.returncode == 111, got.stderr


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "/dev/stdin: snapshot truncated at byte 0: the magic needs 12 bytes"),
        (b"\x7fELF" + bytes(100), "/dev/stdin: not an accel snapshot (bad magic)"),
        (None, "/dev/stdin: snapshot truncated at byte 200: "),
    ],
)
def test_a_bad_snapshot_stream_is_named(
    data: bytes | None, message: str, good_snapshot: bytes
) -> None:
    stdin = good_snapshot[:200] if data is None else data
    got = accel_cmd("run", "--restore", "/dev/stdin", "--accel", "tcg", stdin=stdin)
    assert error_line(got).startswith(f"accel: error: {message}")


def test_restore_of_an_endless_device_is_refused_by_name() -> None:
    line = error_line(accel_cmd("run", "--restore", "/dev/zero", "--accel", "tcg", timeout=30))
    assert line.startswith("accel: error: /dev/zero: not an accel snapshot (bad magic)")


def test_every_restore_error_names_the_file(good_snapshot: bytes, tmp_path: Path) -> None:
    bad = tmp_path / "bad.snap"
    bad.write_bytes(good_snapshot[:-1])
    assert error_line(accel_cmd("run", "--restore", str(bad))).startswith(
        f"accel: error: {bad}: snapshot truncated at byte"
    )
    assert error_line(accel_cmd("run", "--restore", str(tmp_path))) == (
        f"accel: error: cannot read snapshot {str(tmp_path)!r}: it is a directory, not a "
        "regular file (hint: give a snapshot file, or a pipe or FIFO that a snapshot is "
        "written to)"
    )
    missing = tmp_path / "nope.snap"
    assert error_line(accel_cmd("run", "--restore", str(missing))) == (
        f"accel: error: cannot read snapshot {str(missing)!r}: No such file or directory"
    )


def test_restore_then_save_to_the_same_file_replaces_it_whole(
    good_snapshot: bytes, tmp_path: Path
) -> None:
    snap = tmp_path / "vm.snap"
    snap.write_bytes(good_snapshot)
    got = accel_cmd("run", "--restore", str(snap), "--save", str(snap), "--accel", "tcg")
    assert got.returncode == 111, got.stderr
    assert accel_cmd("snapshot", "inspect", str(snap)).returncode == 0
    assert os.listdir(tmp_path) == ["vm.snap"]


def test_restore_refuses_a_bad_save_target_before_reading(tmp_path: Path) -> None:
    fifo = tmp_path / "out"
    os.mkfifo(fifo)
    # The snapshot argument is a FIFO nobody writes: --save is refused before it is opened.
    src = tmp_path / "in"
    os.mkfifo(src)
    line = error_line(accel_cmd("run", "--restore", str(src), "--save", str(fifo), timeout=30))
    assert "cannot write the snapshot to" in line and "FIFO" in line


def test_snapshot_inspect_reads_a_stream(good_snapshot: bytes) -> None:
    got = accel_cmd("snapshot", "inspect", "/dev/stdin", stdin=good_snapshot)
    assert got.returncode == 0, got.stderr
    assert got.stdout.decode().startswith(f"file:          /dev/stdin ({len(good_snapshot)} bytes)")
    bad = accel_cmd("snapshot", "inspect", "/dev/stdin", stdin=good_snapshot[:50])
    assert error_line(bad).startswith("accel: error: /dev/stdin: snapshot truncated at byte")


# --------------------------------------------------------------------------- output


@pytest.fixture(scope="module")
def snap_path(good_snapshot: bytes, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("out") / "vm.snap"
    path.write_bytes(good_snapshot)
    return path


COMMANDS = [
    "info", "plugins", "check", "machine list", "machine show", "snapshot inspect SNAP",
    "snapshot inspect --json SNAP", "conformance --json --accel xen", f"run --accel tcg {COMPUTE}",
    "run --accel tcg --restore SNAP", "--help", "--version", "run --help",
]  # fmt: skip


def shell(command: str, redirect: str, snap: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        f"{sys.executable} -m accel {command.replace('SNAP', str(snap))} {redirect}",
        shell=True, capture_output=True, text=True, timeout=180, cwd=ROOT, check=False,
    )  # fmt: skip


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
@pytest.mark.parametrize("command", [c for c in COMMANDS if "--restore" not in c])
def test_every_command_to_a_full_disk_is_one_line(command: str, snap_path: Path) -> None:
    got = shell(command, "> /dev/full", snap_path)
    assert got.returncode == 1, got.stderr
    assert got.stderr == (
        "accel: error: cannot write to standard output: No space left on device (hint: check "
        "where standard output goes: a full disk, a closed descriptor)\n"
    )


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_with_stdout_closed_is_one_line(command: str, snap_path: Path) -> None:
    got = shell(command, ">&-", snap_path)
    assert got.returncode == 1, got.stderr
    assert got.stderr == (
        "accel: error: standard output is closed (hint: redirect it to a file or to /dev/null "
        "instead of closing it)\n"
    )


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
def test_a_run_that_prints_nothing_does_not_fail_on_a_full_disk(snap_path: Path) -> None:
    """Only output that is written can fail: restoring a run that had ended prints nothing
    on stdout, so it reports the run's own status."""
    got = shell("run --accel tcg --restore SNAP", "> /dev/full", snap_path)
    assert got.returncode == 111, got.stderr
    assert got.stderr.endswith("(the run had ended at the save)\n")


@pytest.mark.parametrize("what", ["kernel", "initrd"])
def test_a_kernel_or_initrd_that_is_not_a_regular_file_is_refused_at_once(
    tmp_path: Path, what: str
) -> None:
    """--kernel and --initrd never wait on a FIFO nor read /dev/zero: one line naming it."""
    kernel = Path(__file__).parents[1] / "machine" / "kernels" / "report.elf"
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for bad, kind in ((str(fifo), "a FIFO"), ("/dev/zero", "a character device")):
        argv = ["run", "--accel", "tcg", "--kernel", str(kernel), "--initrd", bad]
        if what == "kernel":
            argv = ["run", "--accel", "tcg", "--kernel", bad]
        out, err = io.StringIO(), io.StringIO()
        status = accel.cli.main(argv, out=out, err=err)
        assert status == 1
        assert err.getvalue() == (
            f"accel: error: cannot read {what} {bad!r}: it is {kind}"
            + (" (named pipe) or pipe" if kind == "a FIFO" else "")
            + f", not a regular file (hint: give the {what} as a regular file)\n"
        )
