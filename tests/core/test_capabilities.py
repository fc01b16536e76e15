"""Tri-state capability semantics: closed enum, every member answered, unknown is not yes."""

from __future__ import annotations

from typing import Any

import pytest

from accel import Capability, CapabilityAnswer, CapabilitySet, ClockFlags, Support
from accel.errors import InvalidArgumentError
from tests.fakes import all_answers


def test_required_members_exist() -> None:
    names = {c.value for c in Capability}
    assert {
        "user-memory", "nr-vcpus", "max-vcpus", "irqchip", "pit", "pv-clocksource",
        "pv-clocksource-stable", "adjust-clock", "clock-ctrl", "tsc-control", "tsc-khz",
        "ioeventfd", "irqfd", "xsave", "vm-capability-query",
    } <= names  # fmt: skip
    for cap in Capability:
        assert cap.description


def test_set_refuses_missing_members() -> None:
    answers = {c: CapabilityAnswer.yes() for c in Capability}
    del answers[Capability.PIT]
    del answers[Capability.XSAVE]
    with pytest.raises(InvalidArgumentError) as info:
        CapabilitySet(answers)
    assert "pit" in info.value.message and "xsave" in info.value.message
    assert "unknown is an answer" in info.value.message


def test_set_refuses_wrong_keys_and_values() -> None:
    answers: dict[Any, Any] = {c: CapabilityAnswer.yes() for c in Capability}
    with pytest.raises(InvalidArgumentError):
        CapabilitySet({**answers, "user-memory": CapabilityAnswer.yes()})
    with pytest.raises(InvalidArgumentError):
        CapabilitySet({**answers, Capability.PIT: True})
    with pytest.raises(InvalidArgumentError):
        CapabilityAnswer("yes")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError):
        CapabilityAnswer(Support.YES, "12")  # type: ignore[arg-type]


def test_set_is_frozen_hashable_and_compares_by_value() -> None:
    a = all_answers()
    b = all_answers()
    assert a == b and hash(a) == hash(b)
    assert len({a, b}) == 1
    c = a.replace(PIT=CapabilityAnswer.no("test"))
    assert c != a and a.supports(Capability.PIT) and not c.supports(Capability.PIT)
    assert len(a) == len(Capability) and list(a) == list(Capability)
    with pytest.raises(TypeError):
        a[Capability.PIT] = CapabilityAnswer.no()  # type: ignore[index]
    with pytest.raises(AttributeError):
        a.extra = 1  # type: ignore[attr-defined]
    answer = a[Capability.PIT]
    with pytest.raises(AttributeError):
        answer.support = Support.NO  # type: ignore[misc]


def test_support_refuses_bool() -> None:
    for member in Support:
        with pytest.raises(TypeError, match="tri-state"):
            bool(member)
    with pytest.raises(TypeError):
        if Support.UNKNOWN:
            pass


def test_unknown_is_not_yes_and_not_no() -> None:
    caps = all_answers(IRQCHIP=CapabilityAnswer.unknown("cannot tell"))
    assert caps.support(Capability.IRQCHIP) is Support.UNKNOWN
    assert caps.supports(Capability.IRQCHIP) is False
    assert caps.support(Capability.IRQCHIP) is not Support.NO
    assert caps[Capability.IRQCHIP].source == "cannot tell"
    assert caps.to_json()["irqchip"] == {
        "support": "unknown",
        "value": None,
        "source": "cannot tell",
    }


def test_values_and_clock_flags() -> None:
    caps = all_answers()
    assert Capability.MAX_VCPUS.valued and not Capability.PIT.valued
    assert caps.value(Capability.MAX_VCPUS) == 8
    assert caps[Capability.ADJUST_CLOCK].flags == ClockFlags.TSC_STABLE
    assert CapabilityAnswer.no().flags == ClockFlags.NONE
    assert CapabilityAnswer.from_bool(False, 5).value is None
    assert CapabilityAnswer.from_bool(True, 5).value == 5
    assert caps.to_json()["max-vcpus"] == {"support": "yes", "value": 8, "source": "fake"}


def test_parse_accepts_both_spellings_and_suggests() -> None:
    assert Capability.parse("pv-clocksource") is Capability.PV_CLOCKSOURCE
    assert Capability.parse("PV_CLOCKSOURCE") is Capability.PV_CLOCKSOURCE
    with pytest.raises(InvalidArgumentError, match="did you mean 'irqchip'"):
        Capability.parse("irqchp")


def test_replace_with_an_unknown_member_is_a_typed_error() -> None:
    with pytest.raises(InvalidArgumentError, match="NOT_A_CAP"):
        all_answers().replace(NOT_A_CAP=CapabilityAnswer.no())
