"""Snapshot files to read: :func:`open_snapshot` and :func:`naming`.

:func:`open_snapshot` opens a snapshot to read: a regular file as it is; a stream (a
pipe such as ``/dev/stdin``, a FIFO, a character device, a socket) is checked as it is
copied to an unlinked temporary file, which is then read instead, so it is bounded by
the snapshot format's own limits; a directory, block device or terminal is refused by
name. :func:`naming` prefixes a :class:`~accel.errors.SnapshotError`'s message with the
file it came from. Writing files safely (and bounded reads of other files) is
:mod:`accel.files`.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator
from typing import IO

from ..errors import SnapshotError
from ..files import refuse_kind
from .format import scan

__all__ = ["naming", "open_snapshot"]


@contextlib.contextmanager
def naming(path: str | os.PathLike[str]) -> Iterator[None]:
    """Prefix the message of a :class:`~accel.errors.SnapshotError` raised in the block
    with ``path`` (``vm.snap: snapshot truncated at ...``), unless the error already names
    its own file (it has a ``path`` field: a ``--save`` target's)."""
    try:
        yield
    except SnapshotError as exc:
        if getattr(exc, "path", None) is None:
            exc.message = f"{os.fspath(path)}: {exc.message}"
            exc.args = (exc.message,)
        raise


@contextlib.contextmanager
def open_snapshot(path: str | os.PathLike[str]) -> Iterator[IO[bytes]]:
    """A seekable stream of the snapshot at ``path``, to read (closed afterwards).

    A regular file is opened as it is. A stream (``/dev/stdin`` as a pipe, a FIFO, a
    character device, a socket) is read to its end and checked as it goes (structure,
    bounds, every checksum: garbage is refused at its first bad byte, a stream is never
    read beyond the format's bounds), into an unlinked temporary file, which is returned
    (a FIFO is opened as ``cat`` opens it: waiting for its writer). A directory, a block
    device or a terminal is refused. Every error of opening and copying is a
    :class:`~accel.errors.SnapshotError` naming ``path`` (those of the block are not
    renamed).
    """
    name = os.fspath(path)
    with naming(name):
        stream = _open_snapshot(name)
    with stream:
        yield stream


def _open_snapshot(name: str) -> IO[bytes]:
    hint = "give a snapshot file, or a pipe or FIFO that a snapshot is written to"
    try:
        is_fifo = stat.S_ISFIFO(os.stat(name).st_mode)
        # A FIFO is opened as cat opens it (waiting for a writer); anything else never
        # blocks at open (O_NONBLOCK is cleared again below).
        flags = os.O_RDONLY | os.O_CLOEXEC | (0 if is_fifo else os.O_NONBLOCK)
        fd = os.open(name, flags)
    except OSError as exc:
        raise SnapshotError(
            f"cannot read snapshot {name!r}: {exc.strerror or exc}",
            path=name,
        ) from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode) or stat.S_ISBLK(st.st_mode):  # before open(), which
            refuse_kind(name, st, "snapshot", SnapshotError, hint)  # refuses a directory
    except BaseException:
        os.close(fd)
        raise
    f = open(fd, "rb")  # noqa: SIM115 - returned, or closed below
    with contextlib.ExitStack() as on_error:
        on_error.callback(f.close)
        if stat.S_ISREG(st.st_mode):
            on_error.pop_all()
            return f
        if os.isatty(fd):
            raise SnapshotError(
                f"cannot read snapshot {name!r}: it is a terminal",
                hint=f"redirect a snapshot file into it (< vm.snap); {hint}",
                path=name,
            )
        os.set_blocking(fd, True)
        try:
            spool = tempfile.TemporaryFile(prefix="accel-snapshot-")  # noqa: SIM115
        except OSError as exc:
            raise SnapshotError(
                f"cannot read snapshot {name!r}: no temporary file to copy the stream to: "
                f"{exc.strerror or exc}",
                hint="set TMPDIR to a writable directory",
            ) from None
        on_error.callback(spool.close)
        scan(f, spool=spool)
        try:
            spool.flush()
            spool.seek(0)
        except OSError as exc:
            raise SnapshotError(
                f"cannot copy the snapshot stream to a temporary file: {exc.strerror or exc}",
                hint="set TMPDIR to a directory with room for the snapshot",
            ) from exc
        on_error.pop_all()
    f.close()  # the writer sees the end of its pipe now, not after the run
    return spool
