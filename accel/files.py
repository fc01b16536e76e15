"""Files accel writes and reads: never clobber one, never read one without bound.

:func:`atomic_file` writes a file that appears at its path only once complete. It replaces
only a regular file (or creates a new one): a directory, FIFO, socket or device node at
the path is refused by name (:func:`check_target`, which callers also use to refuse such
a path before doing the work whose result they will write). A symbolic link is followed:
its target is written (the temporary file lies beside the target), the link stays. An
existing file keeps its permission bits and, where the writer may set them, its owner
and group; a new file gets ``0o666`` less the umask (the kernel applies it when the
temporary file is created), as any file created with ``open(path, "w")`` would.

:func:`read_file` reads a whole regular file of at most ``limit`` bytes (it reads at
most ``limit + 1``, so ``/dev/zero`` or a growing file is refused at once).

Every failure is an :mod:`accel.errors` type naming the path (``error=``, by default
:class:`~accel.errors.SnapshotError`, the kind of file accel writes). Used by the snapshot
layer, the runner (images) and the kernel loader; it sits just above :mod:`accel.errors`.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from typing import IO

from .errors import AccelError, SnapshotError

__all__ = ["atomic_file", "check_target", "file_kind", "read_file", "refuse_kind"]

#: Longest part of the target's name kept in its temporary file's name.
_NAME_KEEP = 180


def file_kind(mode: int) -> str | None:
    """What a file of this ``st_mode`` is, in words; None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe) or pipe"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _size(n: int) -> str:
    if n >= 1 << 20 and n % (1 << 20) == 0:
        return f"{n >> 20} MiB"
    if n >= 1 << 10 and n % (1 << 10) == 0:
        return f"{n >> 10} KiB"
    return f"{n} bytes"


def check_target(
    path: str | os.PathLike[str],
    *,
    what: str = "snapshot",
    error: type[AccelError] = SnapshotError,
) -> tuple[str, os.stat_result | None]:
    """Check that ``path`` can be written by :func:`atomic_file`, before any work.

    Returns the path to write (symbolic links resolved) and the existing file's status
    (None when there is none). Raises ``error`` (fields ``path``, ``kind``), naming the
    path and what to do, when the path is not a regular file, when its directory does
    not exist or is not writable.
    """
    name = os.fspath(path)
    if not name:
        raise error(f"no file name given for the {what}", hint="give a file name", path=name)
    if name.endswith(os.sep) and not os.path.isdir(name):
        raise error(
            f"cannot write the {what} {name!r}: the name ends with {os.sep!r}, as a "
            "directory's does",
            hint="give a file name",
            path=name,
        )
    real = os.path.realpath(name)
    via = f" (a link to {real!r})" if real != os.path.abspath(name) else ""
    try:
        st: os.stat_result | None = os.stat(real)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise error(
            f"cannot write the {what} {name!r}{via}: {exc.strerror or exc}",
            hint="give another path",
            path=name,
        ) from None
    if st is not None:
        kind = file_kind(st.st_mode)
        if kind is not None:
            raise error(
                f"cannot write the {what} to {name!r}{via}: it is {kind}, not a regular file",
                hint="give the path of a regular file or of a new one; accel replaces only "
                "regular files",
                path=name,
                kind=kind,
            )
    directory = os.path.dirname(real)
    if not os.path.isdir(directory):
        raise error(
            f"cannot write the {what} {name!r}{via}: directory {directory!r} does not exist",
            hint="create the directory first or give another path",
            path=name,
        )
    if not os.access(directory, os.W_OK | os.X_OK):
        raise error(
            f"cannot write the {what} {name!r}{via}: directory {directory!r} is not writable",
            hint="give a path in a directory you may write to",
            path=name,
        )
    return real, st


def _create_temp(directory: str, base: str) -> tuple[int, str]:
    """A new empty file beside the target, mode 0o666 less the umask (the kernel's doing)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    for _ in range(100):
        tmp = os.path.join(directory, f".{base[:_NAME_KEEP]}.{os.urandom(4).hex()}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary file name in {directory!r}")


def _keep_owner_and_mode(fd: int, old: os.stat_result) -> None:
    """Give the new file ``old``'s owner and group (where allowed) and permission bits."""
    mine = os.fstat(fd)
    if (mine.st_uid, mine.st_gid) != (old.st_uid, old.st_gid):
        # Only root may give a file away; as with `sed -i`, a file the writer cannot give
        # its owner becomes the writer's (its group too, where the writer is no member).
        with contextlib.suppress(PermissionError):
            os.fchown(fd, old.st_uid, old.st_gid)
    os.fchmod(fd, stat.S_IMODE(old.st_mode))  # after fchown, which may clear set-id bits


def _fsync_directory(directory: str) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_file(
    path: str | os.PathLike[str],
    *,
    what: str = "snapshot",
    error: type[AccelError] = SnapshotError,
) -> Iterator[IO[bytes]]:
    """A file to write that appears at ``path`` only once complete.

    The path is checked (:func:`check_target`) when the block starts and again just
    before the rename. The block writes to a temporary file beside the target (a
    symbolic link's target), which is given the existing file's mode and owner, flushed,
    fsynced and renamed over the target. If the block raises (a failed clock read, a full
    disk), the temporary file is removed and the target is untouched. An
    :exc:`OSError`, in the block or here, becomes ``error`` naming the path (field
    ``path``). ``accel run --save FILE`` style code uses it::

        with atomic_file("vm.snap") as f:
            save(vm, f)
    """
    name = os.fspath(path)
    real, old = check_target(name, what=what, error=error)
    directory, base = os.path.split(real)
    tmp: str | None = None
    try:
        fd, tmp = _create_temp(directory, base)
        try:
            if old is not None:
                _keep_owner_and_mode(fd, old)
            f = os.fdopen(fd, "wb")
        except BaseException:
            os.close(fd)
            raise
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        check_target(real, what=what, error=error)  # nothing else appeared there meanwhile
        os.replace(tmp, real)
        tmp = None
        _fsync_directory(directory)
    except OSError as exc:
        if isinstance(exc, AccelError):  # a backend's error (BackendCallError) stays itself
            raise
        raise error(
            f"cannot write the {what} {name!r}: {exc.strerror or exc}",
            hint="check the free space and permissions of its directory",
            path=name,
        ) from exc
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def refuse_kind(
    name: str, st: os.stat_result, what: str, error: type[AccelError], hint: str
) -> None:
    kind = file_kind(st.st_mode)
    if kind is not None:
        raise error(
            f"cannot read {what} {name!r}: it is {kind}, not a regular file",
            hint=hint,
            path=name,
            kind=kind,
        )


def read_file(
    path: str | os.PathLike[str],
    limit: int,
    *,
    what: str = "image",
    error: type[AccelError] = SnapshotError,
    hint: str = "give the path of a regular file",
) -> bytes:
    """The bytes of the regular file ``path``, at most ``limit`` of them.

    Opening never waits (a FIFO without a writer is refused, not waited for); anything
    but a regular file is refused (``hint`` says what to give instead), and so is a file
    of more than ``limit`` bytes, after reading at most ``limit + 1``. Every failure is
    ``error`` naming the path (field ``path``).
    """
    name = os.fspath(path)
    try:
        fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as exc:
        raise error(
            f"cannot read {what} {name!r}: {exc.strerror or exc}",
            path=name,
        ) from None
    try:
        st = os.fstat(fd)
        refuse_kind(name, st, what, error, hint)  # before open(): it refuses a directory
    except BaseException:
        os.close(fd)
        raise
    with open(fd, "rb") as f:
        try:
            too_big = st.st_size > limit
            data = b"" if too_big else f.read(limit + 1)
        except OSError as exc:
            raise error(
                f"cannot read {what} {name!r}: {exc.strerror or exc}",
                hint="check the file",
                path=name,
            ) from None
    if too_big or len(data) > limit:
        size = st.st_size if too_big else len(data)
        raise error(
            f"the {what} {name!r} is larger than {_size(limit)} ({size} bytes or more), the "
            f"largest {what} accel can use",
            hint=f"give a {what} of at most {limit} bytes",
            path=name,
            limit=limit,
        )
    return data
