"""The error hierarchy: messages with hints, structured fields, pickling."""

from __future__ import annotations

import errno
import pickle

import pytest

from accel import errors
from accel.accelerator import IoDirection, PortIoExit
from accel.errors import (
    AccelError,
    BackendCallError,
    DuplicateAcceleratorError,
    HandleClosedError,
    InvalidArgumentError,
    NoAcceleratorError,
    PluginLoadError,
    UnknownAcceleratorError,
)


def test_every_public_error_is_an_accel_error() -> None:
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, AccelError), name


def test_message_hint_and_fields() -> None:
    err = UnknownAcceleratorError(
        "unknown accelerator 'x'", hint="did you mean 'y'?", accelerator="x", suggestion="y"
    )
    assert str(err) == "unknown accelerator 'x' (hint: did you mean 'y'?)"
    assert err.accelerator == "x" and err.suggestion == "y"
    assert err.fields() == {
        "error": "UnknownAcceleratorError",
        "message": "unknown accelerator 'x'",
        "hint": "did you mean 'y'?",
        "accelerator": "x",
        "suggestion": "y",
    }
    assert str(AccelError("plain")) == "plain"


def test_class_default_hints() -> None:
    assert "ACCEL_DISABLE_PLUGINS" in str(PluginLoadError("x", plugin="p"))
    assert "uninstall one" in str(DuplicateAcceleratorError("x"))
    assert str(HandleClosedError("vm")).startswith("vm is closed (hint: ")


def test_backend_call_error_names_the_call_and_errno() -> None:
    err = BackendCallError("KVM_CREATE_VM", errno.EACCES, accelerator="acc")
    assert err.message == "acc: KVM_CREATE_VM failed: EACCES (Permission denied)"
    assert err.errno == errno.EACCES and err.call == "KVM_CREATE_VM"
    assert err.hint is not None and "permissions" in err.hint
    assert isinstance(err, OSError)
    assert (
        BackendCallError("X", None, detail="engine said no").message == "X failed: engine said no"
    )


def test_no_accelerator_error_lists_candidates() -> None:
    err = NoAcceleratorError([("a", "why a"), ("b", "why b")])
    assert err.message == "no accelerator found (a: why a; b: why b)"
    assert err.candidates == (("a", "why a"), ("b", "why b"))
    assert "no accelerator plugin is registered" in str(NoAcceleratorError([]))


@pytest.mark.parametrize(
    "err",
    [
        NoAcceleratorError([("a", "why a")]),
        BackendCallError("KVM_RUN", errno.EINTR, accelerator="acc"),
        HandleClosedError("vcpu 3"),
        InvalidArgumentError("bad value", argument="size", value=-1),
        DuplicateAcceleratorError("dup", plugins=("p", "q"), accelerator="a"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_errors_survive_pickling(err: AccelError) -> None:
    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is type(err)
    assert str(copy) == str(err)
    assert copy.fields() == err.fields()


def test_reply_out_of_range_is_a_typed_error() -> None:
    ex = PortIoExit(0x60, 1, IoDirection.IN, bytearray(1))
    for bad in (0x100, -1):
        with pytest.raises(InvalidArgumentError, match="does not fit in 1 bytes"):
            ex.reply(bad)
    assert ex.value() == 0


def test_every_error_is_defined_in_accel_errors_with_its_source() -> None:
    import inspect

    classes = [getattr(errors, name) for name in errors.__all__ if name[0].isupper()]
    assert len(classes) == len(errors.__all__)
    for cls in classes:
        assert cls.__module__ == "accel.errors", cls
        assert issubclass(cls, errors.AccelError)
        source = inspect.getsource(cls)
        assert source.startswith(f"class {cls.__name__}("), cls
    assert issubclass(errors.SnapshotFormatError, errors.SnapshotError)
    with pytest.raises(AttributeError, match="has no attribute 'NoSuchError'"):
        errors.NoSuchError  # type: ignore[attr-defined]  # noqa: B018
