"""Core records built at every start-up construct and normalise as declared."""

from __future__ import annotations

import pytest

from accel.capabilities import CapabilityAnswer, Support
from accel.plugin import AcceleratorInfo, DeviceType, PropertySpec


def test_core_records_construct_and_normalise() -> None:
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
