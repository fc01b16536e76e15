"""The error classes of :mod:`accel.errors` that a working guest run does not raise.

A plugin that fails to load or validate, a closed handle, a failed backend call, a bad
memory access or layout, snapshots' errors, an unavailable accelerator, a missing
capability or operation, a clock failure:
:mod:`accel.errors` re-exports each of them on first use, so they are imported from there
(``from accel.errors import BackendCallError``), and their ``__module__`` says so too.
"""

from __future__ import annotations

import errno as _errno
import os

from .errors import AccelError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "AcceleratorUnavailableError",
    "BackendCallError",
    "CapabilityError",
    "ClockError",
    "DuplicateAcceleratorError",
    "GuestMemoryError",
    "HandleClosedError",
    "MemoryLayoutError",
    "PluginError",
    "PluginLoadError",
    "PluginValidationError",
    "SnapshotChecksumError",
    "SnapshotError",
    "SnapshotFormatError",
    "SnapshotMismatchError",
    "SnapshotTruncatedError",
    "SnapshotVersionError",
    "UnsupportedError",
]


class PluginError(AccelError):
    """A plugin could not be used. Fields: ``plugin``, ``distribution``."""

    __module__ = "accel.errors"

    plugin: str | None
    distribution: str | None

    def __init__(
        self,
        message: str,
        *,
        plugin: str | None = None,
        distribution: str | None = None,
        hint: str | None = None,
        **fields: Any,
    ) -> None:
        super().__init__(message, hint=hint, plugin=plugin, distribution=distribution, **fields)


class PluginLoadError(PluginError):
    """Importing or registering a plugin failed. Field ``error``: the original exception text."""

    __module__ = "accel.errors"

    error: str | None = None

    default_hint = (
        "fix or uninstall the plugin's distribution, or skip it with ACCEL_DISABLE_PLUGINS=<name>"
    )


class PluginValidationError(PluginError):
    """A plugin's hook implementation does not match the hook specification."""

    __module__ = "accel.errors"

    hook: str | None = None

    default_hint = "compare the implementation with the hook reference (docs/hooks.md)"


class DuplicateAcceleratorError(PluginError):
    """Two plugins provide an accelerator of the same name. Field ``plugins``: both names."""

    __module__ = "accel.errors"

    plugins: tuple[str | None, ...] = ()
    accelerator: str | None = None

    default_hint = "uninstall one of them, or disable one with ACCEL_DISABLE_PLUGINS=<name>"


class SnapshotError(AccelError):
    """A snapshot could not be written, read or restored.

    Fields: ``section`` and ``instance`` (which section, when one is to blame), ``expected``
    and ``found`` (versions, names or values), ``offset`` (byte offset in the stream).
    A restore that raises this left its target exactly as it was.
    """

    __module__ = "accel.errors"

    section: str | None
    instance: int | None
    expected: object
    found: object
    offset: int | None

    def __init__(
        self,
        message: str,
        *,
        section: str | None = None,
        instance: int | None = None,
        expected: object = None,
        found: object = None,
        offset: int | None = None,
        hint: str | None = None,
        **fields: Any,
    ) -> None:
        super().__init__(
            message,
            hint=hint,
            section=section,
            instance=instance,
            expected=expected,
            found=found,
            offset=offset,
            **fields,
        )


class HandleClosedError(AccelError):
    """A method was called on an accelerator, VM or vCPU handle after ``close()``.

    Field ``handle``: what was closed (``"vm"``, ``"vcpu 0"`` ...).
    """

    __module__ = "accel.errors"

    handle: str

    default_hint = "open a new handle; a closed one cannot be reused"

    def __init__(self, handle: str, *, hint: str | None = None, **fields: Any) -> None:
        super().__init__(f"{handle} is closed", hint=hint, handle=handle, **fields)


class GuestMemoryError(AccelError):
    """A guest memory access was outside every region. Fields: ``address``, ``size``."""

    __module__ = "accel.errors"

    address: int | None = None
    size: int | None = None


class MemoryLayoutError(GuestMemoryError, ValueError):
    """A memory region is misaligned, empty or overlaps another. Fields: ``address``, ``size``."""

    __module__ = "accel.errors"


class BackendCallError(AccelError, OSError):
    """A call into the accelerator's backend (an ioctl, a hypercall, an engine call) failed.

    Fields: ``accelerator``, ``call`` (e.g. ``"KVM_GET_CLOCK"``), ``errno`` (an int or None).
    """

    __module__ = "accel.errors"

    accelerator: str | None
    call: str

    def __init__(
        self,
        call: str,
        err: int | None,
        *,
        accelerator: str | None = None,
        detail: str | None = None,
        hint: str | None = None,
        **fields: Any,
    ) -> None:
        name = _errno.errorcode.get(err, str(err)) if err is not None else None
        text = f"{call} failed"
        if err is not None:
            text += f": {name} ({os.strerror(err)})"
        if detail:
            text += f": {detail}"
        if accelerator:
            text = f"{accelerator}: {text}"
        if hint is None:
            hint = _errno_hint(err)
        AccelError.__init__(
            self, text, hint=hint, accelerator=accelerator, call=call, errno=err, **fields
        )


def _errno_hint(err: int | None) -> str | None:
    return {
        _errno.EACCES: "check the device's permissions (on Linux, membership of its group)",
        _errno.EPERM: "the operation is not permitted to this user",
        _errno.ENOMEM: "the host is short of memory; close other VMs or lower the guest size",
        _errno.EAGAIN: "the resource was busy; retrying may succeed",
        _errno.EINTR: "the call was interrupted by a signal; retry it",
        _errno.EBADF: "the handle's file descriptor is no longer valid; was it closed elsewhere?",
        _errno.EFAULT: "the backend could not access a buffer; this is a bug, please report it",
    }.get(err if err is not None else -1)


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
