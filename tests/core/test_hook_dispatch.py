"""Hooks go through the registry's pluggy.PluginManager: its order, wrappers and checks."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pluggy
import pytest

import accel
from accel import Registry, hookspecs
from accel.errors import PluginError, PluginValidationError
from accel.registry import AccelPluginManager
from tests.fakes import FakeAccelerator, accelerator_plugin, fake_info


def test_markers_are_pluggys() -> None:
    assert isinstance(hookspecs.hookspec, pluggy.HookspecMarker)
    assert isinstance(accel.hookimpl, pluggy.HookimplMarker)
    assert hookspecs.hookspec.project_name == accel.hookimpl.project_name == "accel"


def test_the_manager_is_a_pluggy_plugin_manager_with_the_accel_specs() -> None:
    reg = Registry(entry_points=False)
    pm = reg.plugin_manager
    assert isinstance(pm, pluggy.PluginManager) and isinstance(pm, AccelPluginManager)
    assert pm.project_name == "accel"
    assert reg.plugin_manager is pm
    for name in ("accel_accelerators", "accel_device_types", "accel_clock_devices"):
        assert getattr(pm.hook, name).has_spec()


def test_registry_and_manager_register_into_the_same_place() -> None:
    reg = Registry(entry_points=False)
    pm = reg.plugin_manager
    first = accelerator_plugin(fake_info("one"))
    reg.register(first, name="first")
    assert pm.list_name_plugin() == [("first", first)]
    second = accelerator_plugin(fake_info("two"))
    assert pm.register(second, name="second") == "second"
    assert set(reg.accelerators()) == {"one", "two"}
    assert reg.accelerators()["two"].plugin == "second"
    reg.unregister("first")
    assert pm.list_name_plugin() == [("second", second)]
    assert set(reg.accelerators()) == {"two"}


def test_clock_devices_are_called_in_pluggys_order() -> None:
    choices = {n: accel.ClockDeviceChoice(n, True, "why") for n in ("a", "b", "c", "d")}

    def plugin(name: str, **marker: bool) -> object:
        @accel.hookimpl(**marker)
        def accel_clock_devices(machine: Any) -> Any:
            return [choices[name]]

        return SimpleNamespace(accel_clock_devices=accel_clock_devices)

    reg = Registry(entry_points=False)
    reg.register(plugin("a", tryfirst=True), name="a")
    reg.register(plugin("b", trylast=True), name="b")
    reg.register(plugin("c"), name="c")
    reg.register(plugin("d"), name="d")
    got = reg.clock_devices(accelerator=None, machine=None)  # type: ignore[arg-type]
    pm = reg.plugin_manager
    expected = [c for r in pm.hook.accel_clock_devices(accelerator=None, machine=None) for c in r]
    assert [c.device for c in got] == [c.device for c in expected] == ["a", "d", "c", "b"]


def test_wrappers_of_both_styles_wrap_the_clock_hook() -> None:
    seen: list[str] = []

    @accel.hookimpl
    def accel_clock_devices(accelerator: Any, machine: Any) -> Any:
        seen.append("plain")
        return [accel.ClockDeviceChoice("kept", True, "plain")]

    @accel.hookimpl(wrapper=True, specname="accel_clock_devices")
    def wrapping(accelerator: Any) -> Any:
        seen.append("before")
        result = yield
        seen.append("after")
        return [*result, [accel.ClockDeviceChoice("added", False, "wrapper")]]

    @accel.hookimpl(hookwrapper=True, specname="accel_clock_devices")
    def old_style(machine: Any) -> Any:
        outcome = yield
        seen.append("old-style")
        outcome.force_result([*outcome.get_result(), []])

    reg = Registry(entry_points=False)
    reg.register(SimpleNamespace(accel_clock_devices=accel_clock_devices), name="plain")
    reg.register(SimpleNamespace(wrapping=wrapping), name="wrapper")
    reg.register(SimpleNamespace(old_style=old_style), name="old")
    devices = reg.clock_devices(accelerator="acc", machine="m")  # type: ignore[arg-type]
    assert [c.device for c in devices] == ["kept", "added"]
    assert seen == ["before", "plain", "after", "old-style"]


def test_a_wrapper_sees_every_accelerator_answer() -> None:
    @accel.hookimpl(wrapper=True, specname="accel_accelerators")
    def hide_two() -> Any:
        answers = yield
        return [[i for i in answer if i.name != "two"] for answer in answers]

    reg = Registry(entry_points=False)
    reg.register(accelerator_plugin(fake_info("one"), fake_info("two")), name="fakes")
    reg.register(SimpleNamespace(hide_two=hide_two), name="hider")
    assert list(reg.accelerators()) == ["one"]


def test_a_wrapped_hook_still_names_the_plugin_that_raised() -> None:
    @accel.hookimpl
    def accel_clock_devices() -> Any:
        raise KeyError("oops")

    @accel.hookimpl(wrapper=True, specname="accel_clock_devices")
    def wrapping() -> Any:
        return (yield)

    reg = Registry(entry_points=False)
    reg.register(SimpleNamespace(accel_clock_devices=accel_clock_devices), name="buggy")
    reg.register(SimpleNamespace(wrapping=wrapping), name="wrapper")
    with pytest.raises(PluginError, match=r"'buggy'.*KeyError") as info:
        reg.clock_devices(accelerator="acc", machine="m")  # type: ignore[arg-type]
    assert info.value.plugin == "buggy"


def _broken_plugins() -> list[tuple[str, object, str]]:
    @accel.hookimpl
    def accel_clock_devices(accelerator: Any, machin: Any) -> None: ...

    @accel.hookimpl
    def accel_accelerator() -> None: ...

    def accel_accelerators() -> None: ...

    def accel_acelerators() -> None: ...

    @accel.hookimpl(specname="accel_device_types")
    def provide(extra: Any) -> None: ...

    @accel.hookimpl
    def not_a_hook() -> None: ...

    @accel.hookimpl(wrapper=True)
    def not_a_generator() -> None: ...

    @accel.hookimpl(wrapper=True, hookwrapper=True)
    def both(accelerator: Any) -> Any:
        yield

    class Methods:
        @accel.hookimpl
        def accel_clock_devices(self, accelerator: Any, vm: Any) -> None: ...

    not_a_generator.__name__ = "accel_clock_devices"
    return [
        ("wrong-arg", SimpleNamespace(accel_clock_devices=accel_clock_devices), "machin"),
        ("unknown-hook", SimpleNamespace(accel_accelerator=accel_accelerator), "unknown hook"),
        ("unmarked", SimpleNamespace(accel_accelerators=accel_accelerators), "not marked"),
        ("lookalike", SimpleNamespace(accel_acelerators=accel_acelerators), "looks like a hook"),
        ("specname-arg", SimpleNamespace(provide=provide), "extra"),
        ("other-name", SimpleNamespace(not_a_hook=not_a_hook), "unknown hook 'not_a_hook'"),
        ("not-generator", SimpleNamespace(accel_clock_devices=not_a_generator), "generator"),
        ("both-wrappers", SimpleNamespace(accel_clock_devices=both), "mutually exclusive"),
        ("method", Methods(), "'vm'"),
    ]


@pytest.mark.parametrize(("name", "plugin", "says"), _broken_plugins(), ids=lambda v: str(v)[:20])
def test_broken_plugins_are_refused_naming_the_plugin(name: str, plugin: object, says: str) -> None:
    for register in ("registry", "manager"):
        reg = Registry(entry_points=False)
        with pytest.raises(PluginValidationError) as info:
            if register == "registry":
                reg.register(plugin, name=name)
            else:
                reg.plugin_manager.register(plugin, name=name)
        assert info.value.plugin == name
        assert f"plugin {name!r}" in info.value.message and says in info.value.message
        assert info.value.hint
        assert reg.plugins() == []
        assert reg.plugin_manager.list_name_plugin() == []
        reg.plugin_manager.check_pending()  # nothing of it is left behind


def test_pluggys_validation_error_is_the_cause() -> None:
    (name, plugin, _), *_ = _broken_plugins()
    with pytest.raises(PluginValidationError) as info:
        Registry(entry_points=False).register(plugin, name=name)
    assert isinstance(info.value.__cause__, pluggy.PluginValidationError)
    assert info.value.message == f"plugin {name!r}: {info.value.__cause__}"


def test_an_optional_unknown_hook_is_allowed() -> None:
    @accel.hookimpl(optionalhook=True)
    def accel_future_hook() -> None: ...

    reg = Registry(entry_points=False)
    reg.register(SimpleNamespace(accel_future_hook=accel_future_hook), name="future")
    assert [r.hooks for r in reg.plugins()] == [("accel_future_hook",)]


def test_hook_kwargs_reach_implementations_taking_fewer_arguments() -> None:
    got: list[Any] = []

    @accel.hookimpl
    def accel_clock_devices(accelerator: Any) -> None:
        got.append(accelerator)

    reg = Registry(entry_points=False)
    reg.register(SimpleNamespace(accel_clock_devices=accel_clock_devices), name="few")
    acc = FakeAccelerator("a")
    assert reg.clock_devices(acc, machine=None) == []  # type: ignore[arg-type]
    assert got == [acc]
