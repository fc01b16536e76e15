"""One exception hierarchy for everything accel raises on purpose.

Every error carries structured fields (``plugin``, ``accelerator``, ``capability``,
``errno``, ``call``, ``device``, ``section``, ``expected``/``found`` versions ...) and a
message that says what went wrong *and what to do about it* (the ``hint``).

Programs catch :class:`AccelError` (or a narrower class) and read the fields; people read
``str(error)``, which is the message followed by the hint.

Example::

    try:
        acc = accel.open("kvm:tcg")
    except accel.errors.NoAcceleratorError as exc:
        for name, reason in exc.candidates:
            print(name, reason)
"""

from __future__ import annotations

import errno as _errno
import os
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = [
    "AccelError",
    "AcceleratorUnavailableError",
    "BackendCallError",
    "CapabilityError",
    "ClockError",
    "ConfigError",
    "DuplicateAcceleratorError",
    "GuestMemoryError",
    "HandleClosedError",
    "InvalidArgumentError",
    "MemoryLayoutError",
    "NoAcceleratorError",
    "PluginError",
    "PluginLoadError",
    "PluginValidationError",
    "SelectionError",
    "SnapshotChecksumError",
    "SnapshotError",
    "SnapshotFormatError",
    "SnapshotMismatchError",
    "SnapshotTruncatedError",
    "SnapshotVersionError",
    "UnknownAcceleratorError",
    "UnsupportedError",
    "VcpuStateError",
]


class AccelError(Exception):
    """Base of every error accel raises on purpose.

    ``message`` says what went wrong, ``hint`` what to do about it. Any further keyword
    argument becomes a structured attribute (``exc.accelerator``, ``exc.errno`` ...), and
    :meth:`fields` returns them all for logging or JSON output.
    """

    #: Default hint of the class; an instance may override it.
    default_hint: str | None = None

    def __init__(self, message: str, *, hint: str | None = None, **fields: Any) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint if hint is not None else self.default_hint
        self._fields = dict(fields)
        for key, value in fields.items():
            setattr(self, key, value)

    def fields(self) -> dict[str, Any]:
        """The structured fields, including ``message`` and ``hint``, for programs."""
        out: dict[str, Any] = {"error": type(self).__name__, "message": self.message}
        if self.hint:
            out["hint"] = self.hint
        out.update(self._fields)
        return out

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} (hint: {self.hint})"
        return self.message

    def __reduce__(self) -> tuple[Any, ...]:
        # Subclasses take other constructor arguments than ``args`` holds, so pickle
        # (multiprocessing, test runners) rebuilds from the state instead of calling them.
        return (_restore, (type(self), self.args, self.__dict__))


def _restore(cls: type[AccelError], args: tuple[Any, ...], state: dict[str, Any]) -> AccelError:
    exc = cls.__new__(cls)
    exc.args = args
    exc.__dict__.update(state)
    for key, value in state.get("_fields", {}).items():
        setattr(exc, key, value)  # fields that live in slots (OSError.errno) are not in state
    return exc


# --------------------------------------------------------------------------- selection


class SelectionError(AccelError):
    """An accelerator request (``"kvm:tcg"``) could not be satisfied."""


class UnknownAcceleratorError(SelectionError):
    """No registered accelerator has this name.

    Fields: ``accelerator``, ``known``, ``suggestion``.
    """

    accelerator: str | None = None
    known: tuple[str, ...] = ()
    suggestion: str | None = None


class NoAcceleratorError(SelectionError):
    """Every candidate was unavailable. Field ``candidates``: ``(name, reason)`` pairs."""

    candidates: tuple[tuple[str, str], ...]

    def __init__(self, candidates: Iterable[tuple[str, str]], *, hint: str | None = None) -> None:
        cands = tuple(candidates)
        if cands:
            lines = "; ".join(f"{name}: {reason}" for name, reason in cands)
            message = f"no accelerator found ({lines})"
        else:
            message = "no accelerator found: no accelerator plugin is registered"
        super().__init__(
            message,
            hint=hint or "run `accel check` to see what this host lacks and how to fix it",
            candidates=cands,
        )


# --------------------------------------------------------------------------- use


class InvalidArgumentError(AccelError, ValueError):
    """A caller passed a value that is wrong. Fields: ``argument``, ``value``."""

    argument: str | None = None
    value: object = None


class ConfigError(AccelError, ValueError):
    """A machine, CPU or device specification is wrong. Fields vary (``device``, ``property``)."""


class VcpuStateError(AccelError):
    """A vCPU or VM is in the wrong state for the operation (e.g. run while paused)."""


class PluginError(AccelError):
    """A plugin could not be used. Fields: ``plugin``, ``distribution``."""

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

    error: str | None = None

    default_hint = (
        "fix or uninstall the plugin's distribution, or skip it with ACCEL_DISABLE_PLUGINS=<name>"
    )


class PluginValidationError(PluginError):
    """A plugin's hook implementation does not match the hook specification."""

    hook: str | None = None

    default_hint = "compare the implementation with the hook reference (docs/hooks.md)"


class DuplicateAcceleratorError(PluginError):
    """Two plugins provide an accelerator of the same name. Field ``plugins``: both names."""

    plugins: tuple[str | None, ...] = ()
    accelerator: str | None = None

    default_hint = "uninstall one of them, or disable one with ACCEL_DISABLE_PLUGINS=<name>"


class SnapshotError(AccelError):
    """A snapshot could not be written, read or restored.

    Fields: ``section`` and ``instance`` (which section, when one is to blame), ``expected``
    and ``found`` (versions, names or values), ``offset`` (byte offset in the stream).
    A restore that raises this left its target exactly as it was.
    """

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

    handle: str

    default_hint = "open a new handle; a closed one cannot be reused"

    def __init__(self, handle: str, *, hint: str | None = None, **fields: Any) -> None:
        super().__init__(f"{handle} is closed", hint=hint, handle=handle, **fields)


class GuestMemoryError(AccelError):
    """A guest memory access was outside every region. Fields: ``address``, ``size``."""

    address: int | None = None
    size: int | None = None


class MemoryLayoutError(GuestMemoryError, ValueError):
    """A memory region is misaligned, empty or overlaps another. Fields: ``address``, ``size``."""


class BackendCallError(AccelError, OSError):
    """A call into the accelerator's backend (an ioctl, a hypercall, an engine call) failed.

    Fields: ``accelerator``, ``call`` (e.g. ``"KVM_GET_CLOCK"``), ``errno`` (an int or None).
    """

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

    accelerator: str | None = None
    reason: str | None = None


class CapabilityError(AccelError):
    """A capability is required but missing. Fields: ``accelerator``, ``capability``."""

    accelerator: str | None = None
    capability: object = None


class UnsupportedError(AccelError):
    """The accelerator does not implement this operation. Fields: ``accelerator``, ``feature``."""

    accelerator: str | None = None
    feature: str | None = None


class ClockError(AccelError):
    """The guest clock could not be read or written. Field ``accelerator``."""

    accelerator: str | None = None


class SnapshotFormatError(SnapshotError):
    """The stream is not a snapshot, or its structure is malformed (bad magic, bad length)."""

    default_hint = "the file is damaged or was not written by accel; use another snapshot"


class SnapshotChecksumError(SnapshotError):
    """A section's CRC32 does not match its bytes."""

    default_hint = "the file is damaged; use another copy of the snapshot"


class SnapshotTruncatedError(SnapshotError):
    """The stream ended before the snapshot did."""

    default_hint = "the file is incomplete (an interrupted copy or save?); use a complete one"


class SnapshotVersionError(SnapshotError):
    """A section's version is newer than this accel understands or older than its minimum.

    ``expected`` is ``"min..max"`` understood here, ``found`` the version in the stream.
    """

    default_hint = "restore with the accel version that wrote the snapshot, or a newer one"


class SnapshotMismatchError(SnapshotError):
    """The snapshot does not fit the target: machine type, devices, memory layout, vCPUs,
    or a section that is unknown here or missing from the stream."""

    default_hint = "restore into a machine of the same type and configuration"


def did_you_mean(word: str, choices: Sequence[str]) -> str | None:
    """The closest of ``choices`` to ``word``, or None when nothing is close."""
    import difflib

    best = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.5)
    return best[0] if best else None
