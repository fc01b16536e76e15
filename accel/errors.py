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

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from typing import Any

    from ._lazy_errors import AcceleratorUnavailableError as AcceleratorUnavailableError
    from ._lazy_errors import BackendCallError as BackendCallError
    from ._lazy_errors import CapabilityError as CapabilityError
    from ._lazy_errors import ClockError as ClockError
    from ._lazy_errors import DuplicateAcceleratorError as DuplicateAcceleratorError
    from ._lazy_errors import GuestMemoryError as GuestMemoryError
    from ._lazy_errors import HandleClosedError as HandleClosedError
    from ._lazy_errors import MemoryLayoutError as MemoryLayoutError
    from ._lazy_errors import PluginError as PluginError
    from ._lazy_errors import PluginLoadError as PluginLoadError
    from ._lazy_errors import PluginValidationError as PluginValidationError
    from ._lazy_errors import SnapshotChecksumError as SnapshotChecksumError
    from ._lazy_errors import SnapshotError as SnapshotError
    from ._lazy_errors import SnapshotFormatError as SnapshotFormatError
    from ._lazy_errors import SnapshotMismatchError as SnapshotMismatchError
    from ._lazy_errors import SnapshotTruncatedError as SnapshotTruncatedError
    from ._lazy_errors import SnapshotVersionError as SnapshotVersionError
    from ._lazy_errors import UnsupportedError as UnsupportedError

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


#: Classes defined in :mod:`accel._lazy_errors` (raised off the run path), imported
#: from there on first use.
_LAZY = frozenset(
    {
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
    }
)

if not TYPE_CHECKING:
    from ._lazy import exports

    __getattr__, __dir__ = exports(globals(), dict.fromkeys(_LAZY, "._lazy_errors"))
    del exports


def did_you_mean(word: str, choices: Sequence[str]) -> str | None:
    """The closest of ``choices`` to ``word``, or None when nothing is close."""
    import difflib

    best = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.5)
    return best[0] if best else None
