"""accel.hookimpl marks exactly as pluggy's marker does; names are checked as before."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from typing import Any

import pluggy
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import accel
import accel.hookspecs
from accel.errors import InvalidArgumentError
from accel.plugin import AcceleratorInfo, DeviceType, _check_name, _is_name
from tests.fakes import FakeAccelerator

_BOOL_OPTIONS = ("hookwrapper", "optionalhook", "tryfirst", "trylast", "wrapper")


def _option_sets() -> list[dict[str, Any]]:
    """Every combination of the boolean options (left out or True; all explicitly False),
    each without a specname, with one, and with an explicit None."""
    out: list[dict[str, Any]] = [dict.fromkeys(_BOOL_OPTIONS, False)]
    for flags in itertools.product((None, True), repeat=len(_BOOL_OPTIONS)):
        base = {k: v for k, v in zip(_BOOL_OPTIONS, flags, strict=True) if v is not None}
        out.append(base)
        out.append({**base, "specname": "accel_accelerators"})
        out.append({**base, "specname": None})
    return out


def _fresh() -> Callable[[], None]:
    def accel_accelerators() -> None:
        return None

    return accel_accelerators


@pytest.mark.parametrize("options", _option_sets(), ids=repr)
def test_marker_sets_what_pluggy_sets(options: dict[str, Any]) -> None:
    ours, theirs = _fresh(), _fresh()
    assert accel.hookimpl(**options)(ours) is ours
    assert pluggy.HookimplMarker("accel")(**options)(theirs) is theirs
    got, want = ours.accel_impl, theirs.accel_impl  # type: ignore[attr-defined]
    assert type(got) is type(want) is dict
    assert list(got.items()) == list(want.items())


def test_marker_bare_and_positional_forms_match_pluggy() -> None:
    theirs_marker = pluggy.HookimplMarker("accel")
    ours, theirs = _fresh(), _fresh()
    assert accel.hookimpl(ours) is ours
    assert theirs_marker(theirs) is theirs
    assert ours.accel_impl == theirs.accel_impl  # type: ignore[attr-defined]
    ours, theirs = _fresh(), _fresh()
    accel.hookimpl(ours, True, True, False, True, "x", False)
    theirs_marker(theirs, True, True, False, True, "x", False)
    assert ours.accel_impl == theirs.accel_impl  # type: ignore[attr-defined]


def test_one_decorator_marks_each_function_with_its_own_dict() -> None:
    mark = accel.hookimpl(tryfirst=True)
    a, b = mark(_fresh()), mark(_fresh())
    assert a.accel_impl == b.accel_impl and a.accel_impl is not b.accel_impl  # type: ignore[attr-defined]


def test_marker_on_classmethod_and_staticmethod_like_pluggy() -> None:
    class Ours:
        @accel.hookimpl
        @staticmethod
        def accel_accelerators() -> None:
            return None

    class Theirs:
        @pluggy.HookimplMarker("accel")
        @staticmethod
        def accel_accelerators() -> None:
            return None

    assert (
        Ours.__dict__["accel_accelerators"].accel_impl
        == Theirs.__dict__["accel_accelerators"].accel_impl
    )


class _Plugin:
    def __init__(self) -> None:
        self.calls: list[str] = []

    @accel.hookimpl
    def accel_accelerators(self) -> list[AcceleratorInfo]:
        self.calls.append("accelerators")
        return [
            AcceleratorInfo(
                name="marked", summary="marked by accel.hookimpl", factory=FakeAccelerator
            )
        ]

    @accel.hookimpl(tryfirst=True, specname="accel_device_types")
    def devices(self) -> list[DeviceType]:
        self.calls.append("devices")
        return []


def test_pluggy_registers_and_calls_a_plugin_marked_by_accel_hookimpl() -> None:
    pm = pluggy.PluginManager("accel")
    pm.add_hookspecs(accel.hookspecs)
    plugin = _Plugin()
    pm.register(plugin, name="marked")
    pm.check_pending()
    (infos,) = pm.hook.accel_accelerators()
    assert [i.name for i in infos] == ["marked"]
    assert pm.hook.accel_device_types() == [[]]
    assert plugin.calls == ["accelerators", "devices"]
    impl = pm.hook.accel_device_types.get_hookimpls()[0]
    assert impl.tryfirst and impl.function.__name__ == "devices"


def test_pluggy_rejects_invalid_option_combinations_as_before() -> None:
    def register(marker: Callable[..., Any]) -> str:
        class Bad:
            @marker(wrapper=True, hookwrapper=True)
            def accel_accelerators(self) -> Any:
                yield

        pm = pluggy.PluginManager("accel")
        pm.add_hookspecs(accel.hookspecs)
        with pytest.raises(pluggy.PluginValidationError) as info:
            pm.register(Bad(), name="bad")
        message = str(info.value)
        assert "wrapper" in message
        return re.sub(r"0x[0-9a-f]+", "0x?", message)

    assert register(accel.hookimpl) == register(pluggy.HookimplMarker("accel"))


_NAME = re.compile(r"[a-z][a-z0-9_-]*")


@given(st.text(alphabet=st.sampled_from("az09_-AZ \n\t.é\u00dfKk"), max_size=8) | st.text())
@example("kvm")
@example("kvm\n")
@example("kvm\n\n")
@example("\n")
@example("")
@example("k")
@example("1kvm")
@example("-kvm")
@example("kvm-2_x")
@example("KVM")
@example("k\u212a")  # KELVIN SIGN, lower-cases to 'k'
def test_name_check_accepts_exactly_the_names_of_the_pattern(name: str) -> None:
    """Names are exactly ``[a-z][a-z0-9_-]*``: no trailing newline (which ``re.match``
    with ``$`` would let through), no other letters that lower-case to ASCII."""
    assert _is_name(name) == bool(_NAME.fullmatch(name))
    if _NAME.fullmatch(name):
        assert _check_name("accelerator", name) == name
    else:
        with pytest.raises(InvalidArgumentError) as info:
            _check_name("accelerator", name)
        assert info.value.message == (
            f"accelerator name {name!r} must be lower-case letters, digits, '-' or '_' "
            "and start with a letter"
        )


@pytest.mark.parametrize("value", [None, 3, b"kvm"])
def test_name_check_rejects_non_strings(value: object) -> None:
    with pytest.raises(InvalidArgumentError, match="must be lower-case"):
        _check_name("device type", value)  # type: ignore[arg-type]
