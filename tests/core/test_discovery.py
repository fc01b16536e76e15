"""Entry-point discovery through a real importlib.metadata distribution (not a mock)."""

from __future__ import annotations

import importlib.metadata
import sys
from typing import Any

import pytest

from accel import Registry
from accel.errors import NoAcceleratorError, UnknownAcceleratorError

from .conftest import MakeDist, plugin


def only(*names: str, **extra: str) -> dict[str, str]:
    """An environment that limits discovery to our test plugins (not the in-tree ones)."""
    return {"ACCEL_PLUGINS": ",".join(names), **extra}


def test_entry_point_plugins_are_discovered_with_their_distribution(make_dist: MakeDist) -> None:
    make_dist("accel-testplug", {"alpha": plugin("alpha", 7), "beta": plugin("beta", 9)})
    reg = Registry(env=only("alpha", "beta"))
    assert list(reg.accelerators()) == ["beta", "alpha"]  # by priority
    records = {r.name: r for r in reg.plugins()}
    assert set(records) == {"alpha", "beta"}
    assert records["alpha"].distribution == "accel-testplug"
    assert records["alpha"].version == "1.2.3"
    assert records["alpha"].source == "entry-point"
    assert records["alpha"].hooks == ("accel_accelerators",)
    assert records["alpha"].error is None
    assert reg.accelerators()["alpha"].plugin == "alpha"
    acc = reg.open("alpha")
    assert acc.name == "alpha"
    acc.close()


def test_discovery_is_lazy_and_happens_once(
    make_dist: MakeDist, monkeypatch: pytest.MonkeyPatch
) -> None:
    mods = make_dist("accel-lazy", {"lazy": plugin("lazy")})
    calls: list[Any] = []
    real = importlib.metadata.entry_points

    def counting(**kwargs: Any) -> Any:
        calls.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(importlib.metadata, "entry_points", counting)
    reg = Registry(env=only("lazy"))
    assert calls == []  # nothing happens at construction
    assert mods["lazy"] not in sys.modules
    assert "lazy" in reg.accelerators()
    assert mods["lazy"] in sys.modules
    reg.plugins()
    reg.accelerators()
    _ = reg.load_errors
    assert calls == [{"group": "accel.plugins"}]


def test_allow_list_loads_only_the_named_plugins(make_dist: MakeDist) -> None:
    mods = make_dist("accel-allow", {"keep": plugin("keep"), "drop": plugin("drop")})
    reg = Registry(env=only("keep"))
    assert list(reg.accelerators()) == ["keep"]
    assert mods["drop"] not in sys.modules  # not even imported
    assert [r.name for r in reg.plugins()] == ["keep"]


def test_deny_list_blocks_the_named_plugins(make_dist: MakeDist) -> None:
    mods = make_dist("accel-deny", {"one": plugin("one"), "two": plugin("two")})
    reg = Registry(env=only("one", "two", ACCEL_DISABLE_PLUGINS=" two , other"))
    assert list(reg.accelerators()) == ["one"]
    assert mods["two"] not in sys.modules


def test_deny_wins_over_allow(make_dist: MakeDist) -> None:
    make_dist("accel-both", {"same": plugin("same")})
    reg = Registry(env=only("same", ACCEL_DISABLE_PLUGINS="same"))
    assert reg.accelerators() == {}


def test_empty_allow_list_loads_nothing(make_dist: MakeDist) -> None:
    make_dist("accel-none", {"nothing": plugin("nothing")})
    reg = Registry(env={"ACCEL_PLUGINS": ""})
    assert reg.plugins() == []


def test_env_defaults_to_os_environ(make_dist: MakeDist, monkeypatch: pytest.MonkeyPatch) -> None:
    make_dist("accel-env", {"fromenv": plugin("fromenv")})
    monkeypatch.setenv("ACCEL_PLUGINS", "fromenv")
    monkeypatch.delenv("ACCEL_DISABLE_PLUGINS", raising=False)
    assert list(Registry().accelerators()) == ["fromenv"]


def test_entry_points_false_skips_discovery(make_dist: MakeDist) -> None:
    make_dist("accel-skip", {"skipped": plugin("skipped")})
    reg = Registry(entry_points=False, env=only("skipped"))
    assert reg.plugins() == [] and reg.accelerators() == {}


def test_broken_import_is_reported_and_others_still_load(make_dist: MakeDist) -> None:
    make_dist(
        "accel-broken",
        {"broken": "raise RuntimeError('boom at import')\n", "fine": plugin("fine")},
        version="0.9",
    )
    reg = Registry(env=only("broken", "fine"))
    assert list(reg.accelerators()) == ["fine"]
    (err,) = reg.load_errors
    assert err.plugin == "broken"
    assert err.distribution == "accel-broken"
    assert err.version == "0.9"  # type: ignore[attr-defined]
    assert "boom at import" in str(err)
    assert "broken" in err.message and "accel-broken" in err.message
    assert err.hint and "ACCEL_DISABLE_PLUGINS" in err.hint
    record = {r.name: r for r in reg.plugins()}["broken"]
    assert record.error is not None and "boom at import" in record.error
    assert record.version == "0.9"


def test_missing_module_is_reported(make_dist: MakeDist, tmp_path: Any) -> None:
    mods = make_dist("accel-gone", {"gone": plugin("gone"), "here": plugin("here")})
    (tmp_path / f"{mods['gone']}.py").unlink()
    reg = Registry(env=only("gone", "here"))
    assert list(reg.accelerators()) == ["here"]
    (err,) = reg.load_errors
    assert err.plugin == "gone" and "ModuleNotFoundError" in err.message


def test_invalid_entry_point_plugin_is_reported_not_raised(make_dist: MakeDist) -> None:
    bad = """
    import accel

    @accel.hookimpl
    def accel_accelerators(surplus):
        return []
    """
    make_dist("accel-badhook", {"badhook": bad, "good": plugin("good")})
    reg = Registry(env=only("badhook", "good"))
    assert list(reg.accelerators()) == ["good"]
    (err,) = reg.load_errors
    assert err.plugin == "badhook" and "surplus" in err.message


def test_duplicate_accelerator_across_distributions_names_both(make_dist: MakeDist) -> None:
    make_dist("accel-first", {"first": plugin("same-name", 5)})
    make_dist("accel-second", {"second": plugin("same-name", 6)})
    reg = Registry(env=only("first", "second"))
    accs = reg.accelerators()
    assert list(accs) == ["same-name"]
    (err,) = reg.load_errors
    assert "'first'" in err.message and "'second'" in err.message
    assert "same-name" in err.message


def test_same_entry_point_name_in_two_distributions_is_reported(make_dist: MakeDist) -> None:
    make_dist("accel-one", {"clash": plugin("clash-one")})
    make_dist("accel-two", {"clash": plugin("clash-two")})
    reg = Registry(env=only("clash"))
    assert len(reg.accelerators()) == 1
    (err,) = reg.load_errors
    assert "accel-one" in err.message and "accel-two" in err.message


def test_other_groups_are_ignored(make_dist: MakeDist) -> None:
    make_dist("accel-other", {"elsewhere": plugin("elsewhere")}, group="not.accel")
    assert Registry(env=only("elsewhere")).plugins() == []


def test_fallback_explains_a_disabled_or_broken_first_choice(make_dist: MakeDist) -> None:
    make_dist(
        "accel-fallback",
        {"first": plugin("first", 100), "broken": "raise OSError('no')\n", "last": plugin("last")},
    )
    reg = Registry(env=only("broken", "last", ACCEL_DISABLE_PLUGINS="first"))
    with reg.open("first:last") as acc:
        assert acc.name == "last"
    with pytest.raises(UnknownAcceleratorError) as info:
        reg.open("first")
    assert "plugin 'first' is disabled by ACCEL_DISABLE_PLUGINS" in str(info.value)
    with pytest.raises(NoAcceleratorError) as no:
        reg.open(["broken", "first"])
    (broken, first) = no.value.candidates
    assert broken[1].startswith("not registered: plugin 'broken' failed to load: ")
    assert "OSError('no')" in broken[1]
    assert first == ("first", "not registered: plugin 'first' is disabled by ACCEL_DISABLE_PLUGINS")
    reg = Registry(env=only("last"))
    with pytest.raises(UnknownAcceleratorError, match="'first' is not listed in ACCEL_PLUGINS"):
        reg.open("first")


def test_plugin_using_the_registry_while_it_is_imported(make_dist: MakeDist) -> None:
    """A plugin module that touches the registry at import sees a consistent registry."""
    reentrant = (
        plugin("early")
        + """
import accel.registry
SEEN = accel.registry._current_for_test.plugins()
"""
    )
    make_dist("accel-reentrant", {"early": plugin("early0"), "reentrant": reentrant})
    reg = Registry(env=only("early", "reentrant"))
    import accel.registry

    accel.registry._current_for_test = reg  # type: ignore[attr-defined]
    try:
        assert set(reg.accelerators()) == {"early", "early0"}
    finally:
        del accel.registry._current_for_test  # type: ignore[attr-defined]
    assert [r.name for r in reg.plugins()] == ["early", "reentrant"]
    assert reg.load_errors == ()


def test_concurrent_first_use_waits_for_discovery(make_dist: MakeDist) -> None:
    import threading
    import time

    slow = "import time\ntime.sleep(0.3)\n" + plugin("slow")
    make_dist("accel-slow", {"slow": slow, "quick": plugin("quick")})
    reg = Registry(env=only("slow", "quick"))
    first = threading.Thread(target=reg.accelerators)
    first.start()
    time.sleep(0.1)  # the first thread is now importing the slow plugin
    assert [r.name for r in reg.plugins()] == ["quick", "slow"]
    first.join()
