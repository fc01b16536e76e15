"""The error classes of :mod:`accel.errors` that a working guest run does not raise.

Snapshots' errors, an unavailable accelerator, a missing capability or operation, a
clock failure: :mod:`accel.errors` re-exports each of them on first use, so they are
imported from there (``from accel.errors import SnapshotFormatError``), and their
``__module__`` says so too.
"""

from __future__ import annotations

from .errors import AccelError, SnapshotError

__all__ = [
    "AcceleratorUnavailableError",
    "CapabilityError",
    "ClockError",
    "SnapshotChecksumError",
    "SnapshotFormatError",
    "SnapshotMismatchError",
    "SnapshotTruncatedError",
    "SnapshotVersionError",
    "UnsupportedError",
]


class AcceleratorUnavailableError(AccelError):
    """The accelerator cannot be used on this host. Fields: ``accelerator``, ``reason``."""

    __module__ = "accel.errors"

    accelerator: str | None = None
    reason: str | None = None


class CapabilityError(AccelError):
    """A capability is required but missing. Fields: ``accelerator``, ``capability``."""

    __module__ = "accel.errors"

    accelerator: str | None = None
    capability: object = None


class UnsupportedError(AccelError):
    """The accelerator does not implement this operation. Fields: ``accelerator``, ``feature``."""

    __module__ = "accel.errors"

    accelerator: str | None = None
    feature: str | None = None


class ClockError(AccelError):
    """The guest clock could not be read or written. Field ``accelerator``."""

    __module__ = "accel.errors"

    accelerator: str | None = None


class SnapshotFormatError(SnapshotError):
    """The stream is not a snapshot, or its structure is malformed (bad magic, bad length)."""

    __module__ = "accel.errors"

    default_hint = "the file is damaged or was not written by accel; use another snapshot"


class SnapshotChecksumError(SnapshotError):
    """A section's CRC32 does not match its bytes."""

    __module__ = "accel.errors"

    default_hint = "the file is damaged; use another copy of the snapshot"


class SnapshotTruncatedError(SnapshotError):
    """The stream ended before the snapshot did."""

    __module__ = "accel.errors"

    default_hint = "the file is incomplete (an interrupted copy or save?); use a complete one"


class SnapshotVersionError(SnapshotError):
    """A section's version is newer than this accel understands or older than its minimum.

    ``expected`` is ``"min..max"`` understood here, ``found`` the version in the stream.
    """

    __module__ = "accel.errors"

    default_hint = "restore with the accel version that wrote the snapshot, or a newer one"


class SnapshotMismatchError(SnapshotError):
    """The snapshot does not fit the target: machine type, devices, memory layout, vCPUs,
    or a section that is unknown here or missing from the stream."""

    __module__ = "accel.errors"

    default_hint = "restore into a machine of the same type and configuration"
