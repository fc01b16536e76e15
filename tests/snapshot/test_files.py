"""accel.snapshot.files: atomic_file never clobbers what is not a regular file, follows a
symbolic link, keeps mode and owner, leaves nothing behind when it fails; read_file and
open_snapshot read with a bound and name the file in every error.

Real files under tmp_path: FIFOs from os.mkfifo, sockets bound there, device nodes made
with os.mknod (a copy of /dev/null's numbers, never the host's own node: a broken check
must not be able to replace /dev/null). The tests run as root here, so ownership can be
given away and checked.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import socket
import stat
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from accel import files as safe_files
from accel import snapshot
from accel.errors import ConfigError, SnapshotError
from accel.snapshot import files
from tests.fakes import FakeVM


def kind_of(path: Path) -> str:
    mode = os.lstat(path).st_mode
    return {
        stat.S_IFREG: "file", stat.S_IFDIR: "dir", stat.S_IFIFO: "fifo", stat.S_IFCHR: "chr",
        stat.S_IFSOCK: "sock", stat.S_IFLNK: "link",
    }[stat.S_IFMT(mode)]  # fmt: skip


def device_node(path: Path) -> Path:
    """A character device with /dev/null's numbers, under tmp_path (root only)."""
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("creating a device node needs root")
    return path


@pytest.fixture
def special(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """Make a non-regular file of a kind under tmp_path."""
    socks: list[socket.socket] = []

    def make(kind: str) -> Path:
        path = tmp_path / f"target-{kind}"
        if kind == "fifo":
            os.mkfifo(path)
        elif kind == "dir":
            path.mkdir()
        elif kind == "sock":
            s = socket.socket(socket.AF_UNIX)
            s.bind(str(path))
            socks.append(s)
        elif kind == "chr":
            device_node(path)
        elif kind == "link-to-chr":
            device_node(tmp_path / "node")
            path.symlink_to(tmp_path / "node")
        return path

    yield make
    for s in socks:
        s.close()


KINDS = {
    "fifo": "a FIFO (named pipe) or pipe",
    "dir": "a directory",
    "sock": "a socket",
    "chr": "a character device",
    "link-to-chr": "a character device",
}


@pytest.mark.parametrize("kind", list(KINDS))
def test_atomic_file_refuses_what_is_not_a_regular_file(
    kind: str, special: Callable[[str], Path], tmp_path: Path
) -> None:
    target = special(kind)
    before = sorted(p.name for p in tmp_path.iterdir())
    types = {p.name: kind_of(p) for p in tmp_path.iterdir()}
    with pytest.raises(SnapshotError) as info, snapshot.atomic_file(target) as f:
        f.write(b"never")
    exc = info.value
    assert exc.path == str(target) and exc.kind == KINDS[kind]  # type: ignore[attr-defined]
    assert str(exc).startswith(f"cannot write the snapshot to {str(target)!r}")
    assert f"it is {KINDS[kind]}, not a regular file" in str(exc)
    assert "hint: give the path of a regular file or of a new one" in str(exc)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no temporary file left
    assert {p.name: kind_of(p) for p in tmp_path.iterdir()} == types  # nothing replaced


def test_check_target_refuses_the_hosts_device_nodes() -> None:
    """check_target alone (nothing is written): /dev/full and /dev/null are refused."""
    for dev in ("/dev/full", "/dev/null"):
        if not os.path.exists(dev):
            continue
        with pytest.raises(SnapshotError, match="it is a character device"):
            safe_files.check_target(dev)
        assert stat.S_ISCHR(os.stat(dev).st_mode)


def test_atomic_file_writes_a_links_target_and_keeps_the_link(tmp_path: Path) -> None:
    real = tmp_path / "real.snap"
    real.write_bytes(b"old")
    link = tmp_path / "link.snap"
    link.symlink_to("real.snap")
    with snapshot.atomic_file(link) as f:
        f.write(b"new")
    assert link.is_symlink() and os.readlink(link) == "real.snap"
    assert real.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.snap", "real.snap"]


def test_atomic_file_through_a_dangling_link_creates_its_target(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    link = tmp_path / "link.snap"
    link.symlink_to(tmp_path / "sub" / "new.snap")
    with snapshot.atomic_file(link) as f:
        f.write(b"new")
    assert link.is_symlink()
    assert (tmp_path / "sub" / "new.snap").read_bytes() == b"new"
    assert os.listdir(tmp_path / "sub") == ["new.snap"]  # the temporary file was beside it


def test_atomic_file_keeps_mode_and_owner(tmp_path: Path) -> None:
    target = tmp_path / "vm.snap"
    target.write_bytes(b"old")
    os.chmod(target, 0o640)
    if os.geteuid() == 0:
        os.chown(target, 4321, 1234)
    old = os.stat(target)
    with snapshot.atomic_file(target) as f:
        f.write(b"new")
    new = os.stat(target)
    assert target.read_bytes() == b"new"
    assert new.st_ino != old.st_ino  # replaced by a rename, not rewritten in place
    assert stat.S_IMODE(new.st_mode) == 0o640
    assert (new.st_uid, new.st_gid) == (old.st_uid, old.st_gid)


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_a_new_file_gets_0666_less_the_umask(umask: int, mode: int, tmp_path: Path) -> None:
    target = tmp_path / "new.snap"
    code = (
        "import os, sys; from accel.snapshot import atomic_file\n"
        f"os.umask({umask})\n"
        "with atomic_file(sys.argv[1]) as f: f.write(b'x')\n"
    )
    subprocess.run([sys.executable, "-c", code, str(target)], check=True, timeout=60)
    assert stat.S_IMODE(os.stat(target).st_mode) == mode


def test_a_failed_write_leaves_the_old_file_and_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "vm.snap"
    target.write_bytes(b"precious")
    os.chmod(target, 0o604)
    with pytest.raises(SnapshotError) as info, snapshot.atomic_file(target) as f:
        f.write(b"half a snapshot")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert str(info.value) == (
        f"cannot write the snapshot {str(target)!r}: No space left on device "
        "(hint: check the free space and permissions of its directory)"
    )
    assert target.read_bytes() == b"precious"
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o604
    assert os.listdir(tmp_path) == ["vm.snap"]


def test_a_backend_error_in_the_block_stays_itself(tmp_path: Path, vm: FakeVM) -> None:
    vm.fail_clock = True
    with pytest.raises(Exception) as info, snapshot.atomic_file(tmp_path / "x.snap") as f:
        snapshot.save(vm, f)
    assert not isinstance(info.value, SnapshotError) and isinstance(info.value, OSError)
    assert os.listdir(tmp_path) == []


def test_a_fifo_put_there_during_the_write_is_not_replaced(tmp_path: Path) -> None:
    target = tmp_path / "vm.snap"
    target.write_bytes(b"old")
    with pytest.raises(SnapshotError, match="it is a FIFO"), snapshot.atomic_file(target) as f:
        f.write(b"new")
        target.unlink()
        os.mkfifo(target)
    assert kind_of(target) == "fifo"
    assert os.listdir(tmp_path) == ["vm.snap"]


def test_a_missing_directory_is_refused_by_check_target(tmp_path: Path) -> None:
    target = tmp_path / "no" / "x.snap"
    with pytest.raises(SnapshotError, match=r"directory .* does not exist"):
        safe_files.check_target(target)
    with pytest.raises(SnapshotError, match="the name ends with '/'"):
        safe_files.check_target(f"{tmp_path}/new/")
    with pytest.raises(SnapshotError, match="it is a directory"):
        safe_files.check_target(f"{tmp_path}/")
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------------- read_file


def test_read_file_refuses_an_unbounded_device() -> None:
    with pytest.raises(ConfigError) as info:
        safe_files.read_file("/dev/zero", 1 << 20, what="image", error=ConfigError)
    assert str(info.value).startswith(
        "cannot read image '/dev/zero': it is a character device, not a regular file"
    )


def test_read_file_does_not_wait_for_a_fifo_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "img"
    os.mkfifo(fifo)
    code = (
        "import sys; from accel.files import read_file\n"
        "try: read_file(sys.argv[1], 100)\n"
        "except Exception as e: print(e)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(fifo)], capture_output=True, text=True, timeout=30
    )
    assert "it is a FIFO (named pipe) or pipe, not a regular file" in done.stdout


def test_read_file_bounds_a_regular_file(tmp_path: Path) -> None:
    img = tmp_path / "img"
    img.write_bytes(b"x" * 100)
    assert safe_files.read_file(img, 100) == b"x" * 100
    with pytest.raises(SnapshotError) as info:
        safe_files.read_file(img, 99, what="image")
    assert "is larger than 99 bytes" in str(info.value) and str(img) in str(info.value)
    with pytest.raises(SnapshotError, match="it is a directory"):
        safe_files.read_file(tmp_path, 99)
    with pytest.raises(SnapshotError, match="No such file or directory"):
        safe_files.read_file(tmp_path / "nope", 99)


# --------------------------------------------------------------------------- open_snapshot


@pytest.fixture
def snap_bytes(vm: FakeVM) -> bytes:
    buf = io.BytesIO()
    snapshot.save(vm, buf)
    return buf.getvalue()


def test_open_snapshot_reads_a_fifo_by_spooling_it(tmp_path: Path, snap_bytes: bytes) -> None:
    fifo = tmp_path / "snap"
    os.mkfifo(fifo)

    def writer() -> None:
        with open(fifo, "wb") as w:
            w.write(snap_bytes)

    t = threading.Thread(target=writer)
    t.start()
    with files.open_snapshot(fifo) as f:
        assert f.seekable()
        assert f.read() == snap_bytes
    t.join(10)
    assert os.listdir(tmp_path) == ["snap"]  # the spool file was unlinked


def test_open_snapshot_of_garbage_and_truncated_streams_names_the_file(
    tmp_path: Path, snap_bytes: bytes
) -> None:
    with pytest.raises(SnapshotError) as info, files.open_snapshot("/dev/zero"):
        pass
    assert str(info.value).startswith("/dev/zero: not an accel snapshot (bad magic)")
    fifo = tmp_path / "snap"
    os.mkfifo(fifo)

    def writer() -> None:
        with open(fifo, "wb") as w:
            w.write(snap_bytes[:200])

    t = threading.Thread(target=writer)
    t.start()
    with pytest.raises(SnapshotError) as info, files.open_snapshot(fifo):
        pass
    t.join(10)
    assert str(info.value).startswith(f"{fifo}: snapshot truncated at byte 200")


def test_open_snapshot_refuses_a_directory_and_a_terminal(tmp_path: Path) -> None:
    with (
        pytest.raises(SnapshotError, match="it is a directory, not a regular file"),
        files.open_snapshot(tmp_path),
    ):
        pass
    master, slave = os.openpty()
    try:
        with (
            pytest.raises(SnapshotError, match="it is a terminal"),
            files.open_snapshot(os.ttyname(slave)),
        ):
            pass
    finally:
        os.close(master)
        os.close(slave)


def test_a_full_spool_is_a_snapshot_error(
    tmp_path: Path, snap_bytes: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Full(io.BytesIO):
        def write(self, data: object) -> int:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(files.tempfile, "TemporaryFile", lambda **kw: Full())
    fifo = tmp_path / "snap"
    os.mkfifo(fifo)

    def writer() -> None:
        with open(fifo, "wb") as w, contextlib.suppress(BrokenPipeError):
            w.write(snap_bytes)

    t = threading.Thread(target=writer)
    t.start()
    with pytest.raises(SnapshotError) as info, files.open_snapshot(fifo):
        pass
    t.join(10)
    assert str(info.value).startswith(
        f"{fifo}: cannot copy the snapshot stream to a temporary file: No space left on device"
    )
