"""Records whose ``__init__`` is written out take exactly what @record would generate."""

from __future__ import annotations

import inspect

import pytest

from accel._records import MISSING, fields
from accel.capabilities import CapabilityAnswer, Support
from accel.plugin import AcceleratorInfo, DeviceType, PropertySpec

WRITTEN_OUT = [CapabilityAnswer, AcceleratorInfo, DeviceType, PropertySpec]


@pytest.mark.parametrize("cls", WRITTEN_OUT, ids=lambda c: c.__name__)
def test_parameters_are_the_fields_in_order_with_their_defaults(cls: type) -> None:
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    expected = []
    for f in fields(cls):
        assert f.default_factory is MISSING  # a factory would need generated code
        expected.append((f.name, inspect.Parameter.empty if f.default is MISSING else f.default))
    assert [(p.name, p.default) for p in params] == expected
    assert all(p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD for p in params)


def test_written_out_inits_behave_like_generated_ones() -> None:
    a = CapabilityAnswer(Support.YES, 4, "src")
    assert (a.support, a.value, a.source) == (Support.YES, 4, "src")
    assert a == CapabilityAnswer(support=Support.YES, value=4, source="src")
    with pytest.raises(TypeError):
        CapabilityAnswer()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        CapabilityAnswer(Support.NO, nope=1)  # type: ignore[call-arg]
    info = AcceleratorInfo("x", "s", object, unsupported={"b": "2", "a": "1"})
    assert info.unsupported == (("a", "1"), ("b", "2")) and info.plugin is None
    spec = PropertySpec("iobase", int)
    assert spec.required and spec.doc == ""
    dev = DeviceType("d", "s", object, [spec])  # type: ignore[arg-type]
    assert dev.properties == (spec,) and dev.user_creatable
