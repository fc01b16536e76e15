"""Entry points come from importlib.metadata and load through pluggy, with distributions."""

from __future__ import annotations

import importlib
import importlib.metadata as md
import shutil
from pathlib import Path

from accel import Registry
from accel.registry import ENTRY_POINT_GROUP

from .conftest import MakeDist

PLUGIN = """
import accel

@accel.hookimpl
def accel_accelerators():
    return []

LOADED = True
"""


def test_the_in_tree_plugins_are_entry_points_of_the_accel_distribution() -> None:
    found = {ep.name: ep for ep in md.entry_points(group=ENTRY_POINT_GROUP)}
    assert {"kvm", "tcg", "xen"} <= set(found)
    for name in ("kvm", "tcg", "xen"):
        dist = found[name].dist
        assert dist is not None and dist.name == "accel"


def test_pluggy_lists_each_entry_point_plugin_with_its_distribution() -> None:
    reg = Registry(env={"ACCEL_PLUGINS": "kvm,tcg,xen"})
    pm = reg.plugin_manager
    by_name = {pm.get_name(plugin): dist for plugin, dist in pm.list_plugin_distinfo()}
    assert set(by_name) == {"kvm", "tcg", "xen"}
    version = md.version("accel")
    for dist in by_name.values():
        assert (dist.project_name, dist.version) == ("accel", version)
    records = {r.name: r for r in reg.plugins()}
    assert {(r.distribution, r.version, r.source) for r in records.values()} == {
        ("accel", version, "entry-point")
    }


def test_install_and_uninstall_show_in_the_next_registry(
    make_dist: MakeDist, tmp_path: Path
) -> None:
    mods = make_dist("fresh-plug", {"fresh": PLUGIN})
    reg = Registry(env={"ACCEL_PLUGINS": "fresh"})
    (record,) = reg.plugins()
    assert (record.name, record.distribution, record.version) == ("fresh", "fresh-plug", "1.2.3")
    assert reg.plugin_manager.get_plugin("fresh").__name__ == mods["fresh"]
    shutil.rmtree(tmp_path / "fresh_plug-1.2.3.dist-info")
    importlib.invalidate_caches()
    later = Registry(env={"ACCEL_PLUGINS": "fresh"})
    assert later.plugins() == []
    assert [e.plugin for e in later.load_errors] == ["fresh"]  # named, but not installed


def test_an_entry_point_may_name_an_attribute(make_dist: MakeDist, tmp_path: Path) -> None:
    mods = make_dist(
        "attr-plug", {"holder": PLUGIN.replace("LOADED = True", "class Holder:\n    pass\n")}
    )
    info = tmp_path / "attr_plug-1.2.3.dist-info" / "entry_points.txt"
    info.write_text(f"[{ENTRY_POINT_GROUP}]\nholder = {mods['holder']} : Holder\n")
    importlib.invalidate_caches()
    reg = Registry(env={"ACCEL_PLUGINS": "holder"})
    plugin = reg.plugin_manager.get_plugin("holder")
    assert isinstance(plugin, type) and plugin.__name__ == "Holder"
