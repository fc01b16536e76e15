"""Registering from code, validation, duplicate names, selection and fallback messages."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

import accel
from accel import Availability, Registry
from accel.errors import (
    DuplicateAcceleratorError,
    InvalidArgumentError,
    NoAcceleratorError,
    PluginValidationError,
    UnknownAcceleratorError,
)
from tests.fakes import FakeAccelerator, accelerator_plugin, fake_info, registry_with

DOWN = Availability.unavailable("device missing", "load the driver module")


def test_register_from_code_records_the_plugin() -> None:
    reg = Registry(entry_points=False)
    name = reg.register(accelerator_plugin(fake_info("one")), name="mine")
    assert name == "mine"
    (record,) = reg.plugins()
    assert (record.name, record.source, record.distribution, record.hooks) == (
        "mine",
        "code",
        None,
        ("accel_accelerators",),
    )
    assert reg.accelerators()["one"].plugin == "mine"


def test_register_module_uses_module_name() -> None:
    reg = Registry(entry_points=False)
    module = __import__("tests.fakes", fromlist=["x"])  # has no hooks: a valid plugin
    assert reg.register(module) == "tests.fakes"


def test_register_twice_is_an_error() -> None:
    reg = Registry(entry_points=False)
    plugin = accelerator_plugin(fake_info("one"))
    reg.register(plugin, name="p")
    with pytest.raises(PluginValidationError, match="'p' is already registered"):
        reg.register(plugin, name="p")


def test_unregister_removes_accelerators() -> None:
    reg = registry_with(fake_info("one"), name="p")
    reg.unregister("p")
    assert reg.accelerators() == {} and reg.plugins() == []


def test_duplicate_accelerator_names_both_plugins_and_registers_nothing() -> None:
    reg = Registry(entry_points=False)
    reg.register(accelerator_plugin(fake_info("dup")), name="first")
    with pytest.raises(DuplicateAcceleratorError) as info:
        reg.register(accelerator_plugin(fake_info("dup")), name="second")
    err = info.value
    assert "'first'" in err.message and "'second'" in err.message and "'dup'" in err.message
    assert err.plugins == ("first", "second")
    assert err.accelerator == "dup"
    assert "ACCEL_DISABLE_PLUGINS" in str(err)
    assert [r.name for r in reg.plugins()] == ["first"]
    assert reg.accelerators()["dup"].plugin == "first"


def test_the_plugin_registered_first_keeps_the_name_whatever_its_markers() -> None:
    def plugin(name: str, **marker: bool) -> Any:
        @accel.hookimpl(**marker)
        def accel_accelerators() -> list[Any]:
            return [fake_info("dup")]

        return SimpleNamespace(accel_accelerators=accel_accelerators)

    for marker in ({}, {"tryfirst": True}, {"trylast": True}):
        reg = Registry(entry_points=False)
        reg.register(plugin("first"), name="first")
        with pytest.raises(DuplicateAcceleratorError) as info:
            reg.register(plugin("second", **marker), name="second")
        assert info.value.plugins == ("first", "second")
        assert list(reg.accelerators()) == ["dup"]
        assert reg.accelerators()["dup"].plugin == "first"


def test_plugins_are_asked_alone_once_and_through_the_manager_after_each_change() -> None:
    calls: list[str] = []

    def plugin(name: str, priority: int, **marker: bool) -> Any:
        @accel.hookimpl(**marker)
        def accel_accelerators() -> list[Any]:
            calls.append(name)
            return [fake_info(name, priority=priority)]

        return SimpleNamespace(accel_accelerators=accel_accelerators)

    reg = Registry(entry_points=False)
    reg.register(plugin("a", 1), name="a")
    reg.register(plugin("b", 3), name="b")
    reg.register(plugin("c", 2), name="c")
    assert calls == ["a", "b", "c"]  # each checked alone as it registered
    assert list(reg.accelerators()) == ["b", "c", "a"]
    assert {n: i.plugin for n, i in reg.accelerators().items()} == {"a": "a", "b": "b", "c": "c"}
    assert calls[3:] == ["c", "b", "a"]  # one hook call, pluggy's order; then remembered
    reg.unregister("b")
    assert list(reg.accelerators()) == ["c", "a"]
    assert calls[6:] == ["c", "a"]


def test_wrong_argument_names_name_the_plugin() -> None:
    @accel.hookimpl
    def accel_clock_devices(accelerator: Any, machin: Any) -> None:
        return None

    reg = Registry(entry_points=False)
    with pytest.raises(PluginValidationError) as info:
        reg.register(SimpleNamespace(accel_clock_devices=accel_clock_devices), name="typo-args")
    assert info.value.plugin == "typo-args"
    assert "typo-args" in str(info.value) and "machin" in str(info.value)
    assert reg.plugins() == []


def test_fewer_arguments_than_the_spec_are_fine() -> None:
    @accel.hookimpl
    def accel_clock_devices(accelerator: Any) -> None:
        return None

    reg = Registry(entry_points=False)
    reg.register(SimpleNamespace(accel_clock_devices=accel_clock_devices), name="fewer")


def test_unknown_hook_name_names_the_plugin_and_suggests() -> None:
    @accel.hookimpl
    def accel_accelerator() -> list[Any]:
        return []

    reg = Registry(entry_points=False)
    with pytest.raises(PluginValidationError) as info:
        reg.register(SimpleNamespace(accel_accelerator=accel_accelerator), name="typo-hook")
    err = info.value
    assert err.plugin == "typo-hook"
    assert "unknown hook 'accel_accelerator'" in err.message
    assert "did you mean 'accel_accelerators'" in err.message
    assert reg.plugins() == []


def test_unmarked_hook_lookalike_is_reported() -> None:
    def accel_acelerators() -> list[Any]:  # no @hookimpl and misspelt
        return []

    reg = Registry(entry_points=False)
    with pytest.raises(PluginValidationError, match="looks like a hook"):
        reg.register(SimpleNamespace(accel_acelerators=accel_acelerators), name="unmarked")


def test_hook_returning_wrong_type_names_the_plugin() -> None:
    @accel.hookimpl
    def accel_accelerators() -> list[Any]:
        return [{"name": "dict-not-info"}]

    reg = Registry(entry_points=False)
    with pytest.raises(PluginValidationError, match=r"'wrong-type'.*AcceleratorInfo"):
        reg.register(SimpleNamespace(accel_accelerators=accel_accelerators), name="wrong-type")


def test_hook_raising_names_the_plugin() -> None:
    @accel.hookimpl
    def accel_accelerators() -> list[Any]:
        raise RuntimeError("kaput")

    reg = Registry(entry_points=False)
    with pytest.raises(PluginValidationError, match=r"'raiser'.*kaput"):
        reg.register(SimpleNamespace(accel_accelerators=accel_accelerators), name="raiser")


def test_accelerator_info_validates_itself() -> None:
    with pytest.raises(InvalidArgumentError, match="name"):
        fake_info("Bad Name")
    with pytest.raises(InvalidArgumentError, match="factory"):
        accel.AcceleratorInfo(name="x", summary="", factory=42)  # type: ignore[arg-type]
    info = fake_info("x", unsupported={"b": "why b", "a": "why a"})
    assert info.unsupported == (("a", "why a"), ("b", "why b"))
    assert info.unsupported_features == {"a": "why a", "b": "why b"}
    hash(info)


# --------------------------------------------------------------------------- selection


def test_open_without_spec_picks_highest_priority_available() -> None:
    reg = registry_with(
        fake_info("low", priority=1),
        fake_info("high-down", priority=100, availability=DOWN),
        fake_info("mid", priority=50),
    )
    assert list(reg.accelerators()) == ["high-down", "mid", "low"]
    with reg.open() as acc:
        assert acc.name == "mid"


def test_open_tries_names_in_the_given_order() -> None:
    reg = registry_with(fake_info("a", priority=1), fake_info("b", priority=99))
    with reg.open("a:b") as acc:
        assert acc.name == "a"
    with reg.open(["b", "a"]) as acc:
        assert acc.name == "b"
    with reg.open("a,b") as acc:
        assert acc.name == "a"


def test_open_falls_back_and_closes_the_unavailable_ones() -> None:
    made: list[FakeAccelerator] = []

    def factory() -> FakeAccelerator:
        acc = FakeAccelerator("down", availability=DOWN)
        made.append(acc)
        return acc

    reg = registry_with(fake_info("down", factory=factory), fake_info("up"))
    with reg.open("down:up") as acc:
        assert acc.name == "up"
    assert made and made[0].closed


def test_open_reports_each_candidate_passed_over_once() -> None:
    probes: list[str] = []

    def factory() -> FakeAccelerator:
        probes.append("down")
        return FakeAccelerator("down", availability=Availability.unavailable("no device"))

    reg = registry_with(fake_info("down", factory=factory), fake_info("up"))
    skipped: list[tuple[str, str]] = []
    with reg.open("down:up", on_unusable=lambda n, r: skipped.append((n, r))) as acc:
        assert acc.name == "up"
    assert skipped == [("down", "no device")]
    assert probes == ["down"]  # the reason comes from the one probe selection made
    skipped.clear()
    with reg.open("up:down", on_unusable=lambda n, r: skipped.append((n, r))):
        assert skipped == []


def test_nothing_available_lists_every_candidate_reason() -> None:
    reg = registry_with(
        fake_info("a", availability=DOWN),
        fake_info("b", availability=Availability.unavailable("no hardware support")),
        fake_info("c"),
    )
    with pytest.raises(NoAcceleratorError) as info:
        reg.open("a:b")
    err = info.value
    assert [name for name, _ in err.candidates] == ["a", "b"]
    assert err.candidates[0][1] == "device missing (hint: load the driver module)"
    assert err.candidates[1][1] == "no hardware support"
    text = str(err)
    assert text.index("a: device missing") < text.index("b: no hardware support")
    assert "accel check" in text


def test_probe_raising_accel_error_is_a_reason() -> None:
    class Raising(FakeAccelerator):
        def probe(self) -> Availability:
            raise accel.errors.BackendCallError("OPEN", 13, accelerator="r")

    reg = registry_with(fake_info("r", factory=lambda: Raising("r")))
    with pytest.raises(NoAcceleratorError, match="r: r: OPEN failed: EACCES"):
        reg.open("r")


def test_no_plugins_at_all() -> None:
    with pytest.raises(NoAcceleratorError, match="no accelerator plugin is registered"):
        Registry(entry_points=False).open()


def test_unknown_name_suggests_and_probes_nothing() -> None:
    probed: list[str] = []

    class Recording(FakeAccelerator):
        def probe(self) -> Availability:
            probed.append(self.name)
            return super().probe()

    reg = registry_with(fake_info("alpha", factory=lambda: Recording("alpha")), fake_info("beta"))
    with pytest.raises(UnknownAcceleratorError) as info:
        reg.open("alpha:btea")
    err = info.value
    assert err.accelerator == "btea"
    assert err.suggestion == "beta"
    assert "did you mean 'beta'?" in str(err)
    assert set(err.known) == {"alpha", "beta"}
    assert probed == []


def test_unknown_alternative_is_skipped_like_qemu_does() -> None:
    reg = registry_with(fake_info("beta"), fake_info("gamma", availability=DOWN))
    with reg.open("nonexistent:beta") as acc:
        assert acc.name == "beta"
    with pytest.raises(NoAcceleratorError) as info:
        reg.open(["nonexistent", "gamma"])
    assert info.value.candidates == (
        ("nonexistent", "not registered"),
        ("gamma", "device missing (hint: load the driver module)"),
    )


def test_typo_in_a_list_still_fails_fast() -> None:
    reg = registry_with(fake_info("beta"), fake_info("gamma"))
    with pytest.raises(UnknownAcceleratorError, match="did you mean 'gamma'"):
        reg.open("beta:gamme")


def test_unknown_name_without_a_close_match_lists_the_known_ones() -> None:
    reg = registry_with(fake_info("alpha"))
    with pytest.raises(UnknownAcceleratorError, match="registered: alpha"):
        reg.open("zzzzzz")


def test_empty_spec_is_invalid() -> None:
    reg = registry_with(fake_info("alpha"))
    with pytest.raises(InvalidArgumentError, match="empty accelerator list"):
        reg.open(" : ")


def test_probe_all_reports_every_accelerator() -> None:
    reg = registry_with(fake_info("a", availability=DOWN), fake_info("b"))
    result = reg.probe_all()
    assert not result["a"].available and result["a"].hint == "load the driver module"
    assert result["b"].available


# --------------------------------------------------------------------------- devices


def test_device_types_and_clock_devices_go_through_the_hooks() -> None:
    dtype = accel.DeviceType(
        name="test-clock",
        summary="a clock",
        factory=dict,
        user_creatable=False,
        not_creatable_reason="machine only",
    )

    class Plugin:
        @accel.hookimpl
        def accel_device_types(self) -> list[accel.DeviceType]:
            return [dtype]

        @accel.hookimpl
        def accel_clock_devices(self, accelerator: accel.Accelerator, machine: Any) -> Any:
            if accelerator.name != "a":
                return None
            return [accel.ClockDeviceChoice("test-clock", True, "a has it")]

    reg = registry_with(fake_info("a"))
    reg.register(Plugin(), name="devices")
    assert reg.device_types()["test-clock"].plugin == "devices"
    machine: Any = SimpleNamespace()
    assert [c.device for c in reg.clock_devices(FakeAccelerator("a"), machine)] == ["test-clock"]
    assert reg.clock_devices(FakeAccelerator("other"), machine) == []
    with pytest.raises(InvalidArgumentError, match="gives no reason"):
        accel.DeviceType(name="x", summary="", factory=dict, user_creatable=False)


def test_module_level_api_uses_the_default_registry() -> None:
    assert accel.default_registry() is accel.default_registry()
    assert isinstance(accel.accelerators(), dict)


def test_device_types_are_validated_with_the_plugin_name() -> None:
    class WrongType:
        @accel.hookimpl
        def accel_device_types(self) -> list[Any]:
            return ["not-a-device-type"]

    class Raising:
        @accel.hookimpl
        def accel_device_types(self) -> list[Any]:
            raise ValueError("broken")

    reg = Registry(entry_points=False)
    reg.register(WrongType(), name="wrong")
    with pytest.raises(PluginValidationError, match=r"'wrong'.*DeviceType objects, not str"):
        reg.device_types()
    reg.unregister("wrong")
    reg.register(Raising(), name="raising")
    with pytest.raises(PluginValidationError, match=r"'raising'.*raised ValueError"):
        reg.device_types()


def test_forgotten_hookimpl_decorator_is_reported() -> None:
    def accel_accelerators() -> list[Any]:  # the right name, but not marked
        return [fake_info("never-seen")]

    reg = Registry(entry_points=False)
    with pytest.raises(PluginValidationError) as info:
        reg.register(SimpleNamespace(accel_accelerators=accel_accelerators), name="undecorated")
    assert "'accel_accelerators' is not marked with @accel.hookimpl" in info.value.message
    assert info.value.plugin == "undecorated" and info.value.hook == "accel_accelerators"
    assert reg.plugins() == []


def test_clock_devices_order_and_errors_name_the_plugin() -> None:
    def plugin(name: str, result: Any) -> Any:
        @accel.hookimpl
        def accel_clock_devices(machine: Any) -> Any:  # fewer arguments than the spec
            if isinstance(result, Exception):
                raise result
            return result

        return SimpleNamespace(accel_clock_devices=accel_clock_devices)

    reg = Registry(entry_points=False)
    reg.register(plugin("first", [accel.ClockDeviceChoice("one", True, "first")]), name="first")
    reg.register(plugin("none", None), name="none")
    reg.register(plugin("second", [accel.ClockDeviceChoice("two", False, "second")]), name="sec")
    machine: Any = SimpleNamespace()
    acc = FakeAccelerator("a")
    assert [c.device for c in reg.clock_devices(acc, machine)] == ["two", "one"]  # LIFO

    reg.register(plugin("bug", KeyError("oops")), name="buggy")
    with pytest.raises(accel.errors.PluginError, match=r"'buggy'.*KeyError") as info:
        reg.clock_devices(acc, machine)
    assert info.value.plugin == "buggy"
    reg.unregister("buggy")

    reg.register(plugin("typed", accel.errors.ClockError("no clock")), name="typed")
    with pytest.raises(accel.errors.ClockError):  # accel's own errors pass through
        reg.clock_devices(acc, machine)
    reg.unregister("typed")

    reg.register(plugin("wrong", ["kvmclock"]), name="wrong")
    with pytest.raises(PluginValidationError, match=r"'wrong'.*ClockDeviceChoice objects"):
        reg.clock_devices(acc, machine)


def test_factory_raising_accel_error_is_a_reason_and_selection_goes_on() -> None:
    def factory() -> FakeAccelerator:
        raise accel.errors.UnsupportedError("engine library missing", hint="install it")

    reg = registry_with(fake_info("first", factory=factory), fake_info("second"))
    with reg.open("first:second") as acc:
        assert acc.name == "second"
    with pytest.raises(NoAcceleratorError) as info:
        reg.open("first")
    assert info.value.candidates == (("first", "engine library missing (hint: install it)"),)


def test_registered_infos_are_what_replace_makes() -> None:
    """The registry's infos are ``dataclasses.replace(info, plugin=name)`` of the plugin's."""
    import dataclasses

    import accel_kvm
    import accel_xen

    reg = Registry(entry_points=False)
    reg.register(accel_xen, name="xen")
    reg.register(accel_kvm, name="kvm")
    for plugin, original in (
        ("xen", *accel_xen.accel_accelerators()),
        ("kvm", *accel_kvm.accel_accelerators()),
    ):
        made = reg.accelerators()[original.name]
        expected = dataclasses.replace(original, plugin=plugin)
        assert dataclasses.asdict(made) == dataclasses.asdict(expected)
        assert (made, hash(made), repr(made)) == (expected, hash(expected), repr(expected))
        assert original.plugin is None
        with pytest.raises(AttributeError):  # frozen
            made.plugin = "other"  # type: ignore[misc]
    (dtype, *_rest) = accel_kvm.accel_device_types()
    assert reg.device_types()[dtype.name] == dataclasses.replace(dtype, plugin="kvm")
