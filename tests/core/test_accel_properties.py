"""``--accel NAME,PROP=VALUE`` (issue #15): accelerators declare properties
(:attr:`accel.AcceleratorInfo.properties`), the selection spec is split QEMU's way, and
each property is typed, range-checked and handed to the factory, or refused by name."""

from __future__ import annotations

from typing import Any

import pytest

import accel
from accel import PropertySpec
from accel.errors import InvalidArgumentError
from tests.fakes import FakeAccelerator, registry_with

SEEN: list[dict[str, Any]] = []


def _factory(**kwargs: Any) -> accel.Accelerator:
    SEEN.append(kwargs)
    return FakeAccelerator("withprops")


PROPS = (
    PropertySpec("mode", str, "a", "how", choices=("a", "b")),
    PropertySpec("buf-size", int, 8, "MiB", min=1, max=64),
    PropertySpec("fast", bool, False),
)


def _registry() -> accel.Registry:
    info = accel.AcceleratorInfo("withprops", "has properties", _factory, properties=PROPS)
    return registry_with(info)


def test_properties_reach_the_factory_as_keywords() -> None:
    SEEN.clear()
    reg = _registry()
    acc = reg.open("withprops,mode=b,buf-size=0x10,fast=on")
    assert acc.name == "withprops"
    assert SEEN == [{"mode": "b", "buf_size": 16, "fast": True}]
    SEEN.clear()
    reg.open("withprops")
    assert SEEN == [{}]


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("withprops,mod=b", ["no property 'mod'", "did you mean 'mode'", "buf-size=1..64"]),
        ("withprops,mode=c", ["'mode'", "'c'", "a|b"]),
        ("withprops,buf-size=65", ["'buf-size'", "65", "1..64"]),
        ("withprops,buf-size=x", ["'buf-size'", "integer"]),
        ("withprops,fast=maybe", ["'fast'", "on/off"]),
        ("mode=a", ["needs an accelerator name"]),
    ],
)
def test_bad_properties_are_refused_before_probing(spec: str, words: list[str]) -> None:
    SEEN.clear()
    with pytest.raises(InvalidArgumentError) as info:
        _registry().open(spec)
    text = f"{info.value} {info.value.hint}"
    for word in words:
        assert word in text
    assert SEEN == []  # nothing was made


def test_bare_words_after_a_comma_stay_alternatives() -> None:
    reg = _registry()
    assert reg._parse_spec("withprops,mode=a:other") == ["withprops", "other"]
    assert reg._parse_spec("withprops,other") == ["withprops", "other"]


def test_properties_must_be_property_specs() -> None:
    with pytest.raises(InvalidArgumentError, match="PropertySpec"):
        accel.AcceleratorInfo("x", "x", _factory, properties=("mode",))  # type: ignore[arg-type]


def test_tcg_declares_thread_and_tb_size() -> None:
    info = accel.default_registry().info("tcg")
    assert {p.name for p in info.properties} == {"thread", "tb-size"}
    acc = accel.default_registry().open("tcg,thread=multi,tb-size=32")
    try:
        assert (acc.thread, acc.tb_size) == ("multi", 32)  # type: ignore[attr-defined]
        with acc.create_vm() as vm:
            cpu = vm.create_vcpu(0)
            assert cpu._uc.ctl_get_tcg_buffer_size() == 32 << 20  # type: ignore[attr-defined]
    finally:
        acc.close()


def test_tcg_thread_is_single_by_default_and_multi_is_one_vcpu_per_vm() -> None:
    acc = accel.default_registry().open("tcg")
    try:
        assert acc.thread == "single"  # type: ignore[attr-defined]
    finally:
        acc.close()
    acc = accel.default_registry().open("tcg,thread=multi")
    try:
        with acc.create_vm() as vm:
            vm.create_vcpu()
            with pytest.raises(accel.errors.CapabilityError, match="not atomic"):
                vm.create_vcpu()
    finally:
        acc.close()


def test_kvm_refuses_kernel_irqchip_pointing_at_the_machine() -> None:
    with pytest.raises(InvalidArgumentError) as info:
        accel.default_registry().open("kvm,kernel-irqchip=on")
    assert "no property 'kernel-irqchip'" in str(info.value)
    assert "--machine TYPE,kernel-irqchip=VALUE" in (info.value.hint or "")


def test_cli_refuses_thread_multi_as_a_name(capsys: pytest.CaptureFixture[str]) -> None:
    from accel.cli import main

    status = main(["machine", "show", "--accel", "tcg,thread=bogus"])
    err = capsys.readouterr().err
    assert status != 0 and "property 'thread'" in err and err.count("\n") == 1
