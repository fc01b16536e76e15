"""What users of pluggy expect of ``registry.plugin_manager``, broken plugins, selection."""

from __future__ import annotations

import inspect
from types import SimpleNamespace
from typing import Any

import pytest

from accel import Availability, Registry
from accel.errors import (
    DuplicateAcceleratorError,
    NoAcceleratorError,
    PluginError,
    PluginValidationError,
    UnknownAcceleratorError,
)
from accel.registry import PluginRecord
from tests.fakes import FakeAccelerator, accelerator_plugin, fake_info, registry_with

from .conftest import MakeDist, plugin

IN_TREE = {"ACCEL_PLUGINS": "kvm,tcg,xen"}


# --------------------------------------------------------------------------- the manager


def test_set_blocked_hides_the_plugins_accelerator() -> None:
    reg = Registry(env=IN_TREE)
    assert "xen" in reg.accelerators()
    reg.plugin_manager.set_blocked("xen")
    assert "xen" not in reg.accelerators()
    assert "xen" not in {r.name for r in reg.plugins()}
    with pytest.raises(UnknownAcceleratorError, match="plugin 'xen' is blocked"):
        reg.info("xen")
    with pytest.raises(PluginValidationError, match="'xen' is blocked"):
        reg.register(accelerator_plugin(fake_info("other")), name="xen")


def test_enable_tracing_sees_the_accelerators_hook() -> None:
    reg = Registry(entry_points=False)
    pm = reg.plugin_manager
    lines: list[str] = []
    pm.trace.root.setwriter(lines.append)
    undo = pm.enable_tracing()
    try:
        reg.register(accelerator_plugin(fake_info("traced")), name="traced")
        assert list(reg.accelerators()) == ["traced"]
    finally:
        undo()
    assert any("accel_accelerators" in line for line in lines)


def test_hook_call_monitoring_sees_each_hook_the_registry_calls() -> None:
    reg = registry_with(fake_info("a"))
    called: list[str] = []
    undo = reg.plugin_manager.add_hookcall_monitoring(
        lambda name, impls, kwargs: called.append(name), lambda *args: None
    )
    try:
        reg.accelerators()
        reg.device_types()
        reg.clock_devices(FakeAccelerator("a"), SimpleNamespace())  # type: ignore[arg-type]
    finally:
        undo()
    assert set(called) >= {"accel_accelerators", "accel_device_types", "accel_clock_devices"}


def test_list_plugin_distinfo_names_the_accel_distribution() -> None:
    pm = Registry(env=IN_TREE).plugin_manager
    names = {pm.get_name(p): d.project_name for p, d in pm.list_plugin_distinfo()}
    assert names == {"kvm": "accel", "tcg": "accel", "xen": "accel"}


def test_a_plugin_registered_with_the_manager_is_visible() -> None:
    reg = Registry(env=IN_TREE)
    reg.plugin_manager.register(accelerator_plugin(fake_info("direct", priority=1)), "direct")
    assert reg.accelerators()["direct"].plugin == "direct"
    assert {"kvm", "tcg", "xen", "direct"} <= set(reg.accelerators())
    record = {r.name: r for r in reg.plugins()}["direct"]
    assert (record.source, record.hooks) == ("code", ("accel_accelerators",))
    with reg.open("direct") as acc:
        assert acc.name == "direct"


def test_plugin_record_is_an_ordinary_dataclass_of_this_module() -> None:
    import dataclasses

    assert PluginRecord.__module__ == "accel.registry"
    assert dataclasses.is_dataclass(PluginRecord)
    assert "class PluginRecord" in inspect.getsource(PluginRecord)


# --------------------------------------------------------------------------- env variables


def test_disable_plugins_blocks_through_the_manager(make_dist: MakeDist) -> None:
    make_dist("accel-blk", {"blk-one": plugin("blk-one"), "blk-two": plugin("blk-two")})
    reg = Registry(env={"ACCEL_PLUGINS": "blk-one,blk-two", "ACCEL_DISABLE_PLUGINS": "blk-two"})
    assert reg.plugin_manager.is_blocked("blk-two")
    assert not reg.plugin_manager.is_blocked("blk-one")
    assert reg.plugin_manager.is_blocked("kvm")  # not listed in ACCEL_PLUGINS
    assert list(reg.accelerators()) == ["blk-one"]


def test_allow_list_naming_a_missing_plugin_is_reported(make_dist: MakeDist) -> None:
    make_dist("accel-present", {"present": plugin("present")})
    reg = Registry(env={"ACCEL_PLUGINS": "present,presnt"})
    assert list(reg.accelerators()) == ["present"]
    (err,) = reg.load_errors
    assert err.plugin == "presnt"
    assert "ACCEL_PLUGINS" in err.message and "did you mean 'present'?" in err.message
    assert err.hint and "present" in err.hint


# --------------------------------------------------------------------------- broken plugins


def test_hook_returning_a_non_list_is_a_one_line_load_error(make_dist: MakeDist) -> None:
    bad = "import accel\n\n@accel.hookimpl\ndef accel_accelerators():\n    return 42\n"
    make_dist("accel-fortytwo", {"fortytwo": bad, "fine": plugin("fine")})
    reg = Registry(env={"ACCEL_PLUGINS": "fortytwo,fine"})
    assert list(reg.accelerators()) == ["fine"]
    (err,) = reg.load_errors
    assert (err.plugin, err.distribution) == ("fortytwo", "accel-fortytwo")
    assert "\n" not in err.message
    assert "must return a list of AcceleratorInfo objects, not int" in err.message
    assert "accel-fortytwo" in err.message


def test_a_broken_device_hook_of_an_entry_point_is_a_load_error(make_dist: MakeDist) -> None:
    bad = plugin("devbad") + "\n@accel.hookimpl\ndef accel_device_types():\n    return 42\n"
    make_dist("accel-devbad", {"devbad": bad, "fine": plugin("fine")})
    reg = Registry(env={"ACCEL_PLUGINS": "devbad,fine,kvm"})
    assert "kvmclock" in reg.device_types()  # the other plugins' devices
    (err,) = reg.load_errors
    assert (err.plugin, err.distribution) == ("devbad", "accel-devbad")
    assert "accel_device_types() must return a list of DeviceType objects, not int" in err.message
    assert "devbad" not in reg.accelerators()
    record = {r.name: r for r in reg.plugins()}["devbad"]
    assert record.error is not None and record.distribution == "accel-devbad"


def test_system_exit_at_import_is_a_load_error(make_dist: MakeDist) -> None:
    make_dist("accel-exits", {"exits": "import sys\nsys.exit(3)\n", "fine": plugin("fine")})
    reg = Registry(env={"ACCEL_PLUGINS": "exits,fine"})
    assert list(reg.accelerators()) == ["fine"]
    (err,) = reg.load_errors
    assert err.plugin == "exits" and "SystemExit(3)" in err.message


def test_third_party_accelerator_named_like_a_built_in_is_refused(make_dist: MakeDist) -> None:
    make_dist("evil-kvm", {"evilkvm": plugin("kvm", 1000)})
    reg = Registry(env={"ACCEL_PLUGINS": "kvm,evilkvm"})
    assert reg.accelerators()["kvm"].plugin == "kvm"
    assert reg.accelerators()["kvm"].priority == 100  # the built-in's
    (err,) = reg.load_errors
    assert err.plugin == "evilkvm" and err.distribution == "evil-kvm"
    assert "'kvm' (from accel)" in err.message and "evil-kvm" in err.message
    assert "evilkvm" not in {r.name for r in reg.plugins() if r.error is None}


def test_duplicate_accelerator_from_code_names_both_plugins() -> None:
    reg = Registry(entry_points=False)
    reg.register(accelerator_plugin(fake_info("dup")), name="first")
    with pytest.raises(DuplicateAcceleratorError, match="'first' and 'second'"):
        reg.plugin_manager.register(accelerator_plugin(fake_info("dup")), name="second")
    assert reg.plugin_manager.get_plugin("second") is None


def test_a_factory_that_raises_is_a_reason_naming_the_plugin() -> None:
    def broken() -> Any:
        raise TypeError("missing argument")

    reg = registry_with(fake_info("bad", factory=broken), fake_info("good"), name="buggy")
    with reg.open("bad:good") as acc:
        assert acc.name == "good"
    with pytest.raises(NoAcceleratorError) as info:
        reg.open("bad")
    ((name, reason),) = info.value.candidates
    assert name == "bad" and "'buggy'" in reason and "TypeError('missing argument')" in reason
    assert "hint" in reason
    assert not reg.probe_all()["bad"].available
    with pytest.raises(PluginError, match="'buggy'"):
        reg.create("bad")


def test_a_factory_making_no_accelerator_is_a_reason_naming_the_plugin() -> None:
    reg = registry_with(fake_info("odd", factory=lambda: object()), name="oddities")  # type: ignore[arg-type, return-value]
    with pytest.raises(NoAcceleratorError, match=r"'oddities'.*object, which has no probe\(\)"):
        reg.open("odd")


# --------------------------------------------------------------------------- selection


PRESENT = Availability.present("dom0 found, but no toolstack", "install xen-tools")


def test_default_selection_skips_an_accelerator_that_cannot_create_vms() -> None:
    reg = registry_with(
        fake_info("stub", priority=90, availability=PRESENT), fake_info("soft", priority=10)
    )
    skipped: list[tuple[str, str]] = []
    with reg.open(on_unusable=lambda n, r: skipped.append((n, r))) as acc:
        assert acc.name == "soft"
    assert skipped == [
        (
            "stub",
            "present but cannot create VMs: dom0 found, but no toolstack (hint: install xen-tools)",
        )
    ]
    with reg.open("stub:soft") as acc:
        assert acc.name == "soft"


def test_no_vm_capable_accelerator_lists_the_present_one_with_its_reason() -> None:
    reg = registry_with(fake_info("stub", availability=PRESENT))
    with pytest.raises(NoAcceleratorError) as info:
        reg.open()
    assert info.value.candidates == (
        (
            "stub",
            "present but cannot create VMs: dom0 found, but no toolstack (hint: install xen-tools)",
        ),
    )
    assert "stub: present but cannot create VMs: dom0 found" in str(info.value)


def test_an_explicit_name_opens_an_accelerator_that_cannot_create_vms() -> None:
    reg = registry_with(fake_info("stub", availability=PRESENT), fake_info("soft"))
    with reg.open("stub") as acc:
        assert acc.name == "stub"
        assert acc.probe().creates_vms is False
    with reg.open(["stub"]) as acc:
        assert acc.name == "stub"
