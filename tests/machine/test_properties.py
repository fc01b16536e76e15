"""Property coercion in :meth:`DeviceRegistry.validate`: values, and the exact messages."""

from __future__ import annotations

import pytest

from accel.errors import ConfigError
from accel.machine import Device, DeviceRegistry
from accel.plugin import DeviceType, PropertySpec

TYPE = DeviceType(
    "prop-test",
    "properties of every kind",
    Device,
    (
        PropertySpec("n", int, 0),
        PropertySpec("flag", bool, False),
        PropertySpec("text", str, ""),
    ),
)


@pytest.fixture
def reg() -> DeviceRegistry:
    return DeviceRegistry(extra=[TYPE])


@pytest.mark.parametrize(
    ("props", "expected"),
    [
        ({"n": "0x10"}, {"n": 16}),
        ({"n": "10"}, {"n": 10}),
        ({"n": 7}, {"n": 7}),
        ({"flag": "ON"}, {"flag": True}),
        ({"flag": "no"}, {"flag": False}),
        ({"flag": "1"}, {"flag": True}),
        ({"flag": True}, {"flag": True}),
        ({"text": "abc"}, {"text": "abc"}),
    ],
)
def test_values(reg: DeviceRegistry, props: dict[str, object], expected: dict[str, object]) -> None:
    _dtype, out = reg.validate("prop-test", props, user=True)
    assert out == {"n": 0, "flag": False, "text": "", **expected}
    for key, value in expected.items():
        assert type(out[key]) is type(value)


@pytest.mark.parametrize(
    ("props", "message"),
    [
        ({"n": True}, "device 'prop-test' property 'n' takes an integer, not True"),
        (
            {"n": "zz"},
            "device 'prop-test' property 'n' takes an integer (decimal or 0x hex), not 'zz'",
        ),
        (
            {"n": 1.5},
            "device 'prop-test' property 'n' takes an integer (decimal or 0x hex), not 1.5",
        ),
        ({"flag": "maybe"}, "device 'prop-test' property 'flag' takes on/off, not 'maybe'"),
        ({"flag": 1}, "device 'prop-test' property 'flag' takes on/off, not 1"),
        ({"text": 3}, "device 'prop-test' property 'text' takes a string, not 3"),
    ],
)
def test_messages(reg: DeviceRegistry, props: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        reg.validate("prop-test", props, user=True)
    assert info.value.message == message
    assert info.value.fields()["device"] == "prop-test"
    assert info.value.fields()["property"] == next(iter(props))
