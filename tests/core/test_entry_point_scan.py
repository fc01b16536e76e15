"""Entry-point discovery without importlib.metadata: the same answer, never stale."""

from __future__ import annotations

import importlib
import importlib.metadata as md
import importlib.util
import os
import shutil
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from accel import registry

from .conftest import MakeDist

Row = tuple[str, str, str | None, str | None]


def rows(eps: Any) -> list[Row]:
    return [
        (ep.name, ep.value, ep.dist.name if ep.dist else None, ep.dist.version if ep.dist else None)
        for ep in eps
    ]


def same_as_importlib(group: str) -> list[Row]:
    importlib.invalidate_caches()
    scanned = registry._scan_entry_points(group)
    assert scanned is not None
    assert rows(scanned) == rows(md.entry_points(group=group))
    return rows(scanned)


@pytest.mark.parametrize("group", ["accel.plugins", "console_scripts", "pytest11", "nope"])
def test_same_entry_points_as_importlib_metadata_here(group: str) -> None:
    same_as_importlib(group)


def test_the_in_tree_plugins_are_found() -> None:
    found = {name: value for name, value, _d, _v in same_as_importlib("accel.plugins")}
    assert {"kvm", "tcg", "xen"} <= set(found)


def test_order_duplicates_sections_and_comments_as_importlib(
    make_dist: MakeDist, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_dist("zeta-plug", {"z1": "", "z2": ""})
    make_dist("alpha.plug", {"a1": ""}, version="2.0")
    info = tmp_path / "mixed-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: Mixed\nVersion: 0.1\n\nBody: x\n")
    (info / "entry_points.txt").write_text(
        "# comment\n\n[console_scripts]\nmixed = mixed.cli:main\n\n"
        "[accel.plugins]\n  spaced   =   pkg.mod : attr.sub [extra1, extra2]  \n"
        "; not a comment for importlib = x\n"
    )
    # The same distribution again later on sys.path: importlib.metadata drops it.
    later = tmp_path / "later"
    later.mkdir()
    shutil.copytree(info, later / "Mixed-9.9.dist-info")
    (later / "Mixed-9.9.dist-info" / "METADATA").write_text("Name: Mixed\nVersion: 9.9\n")
    monkeypatch.setattr(sys, "path", [*sys.path, str(later)])
    found = same_as_importlib("accel.plugins")
    assert ("spaced", "pkg.mod : attr.sub [extra1, extra2]", "Mixed", "0.1") in found
    assert "9.9" not in {v for *_x, v in found}
    same_as_importlib("console_scripts")


def test_metadata_without_version_or_file(tmp_path: Path, make_dist: MakeDist) -> None:
    make_dist("placeholder", {})  # puts tmp_path on sys.path
    bare = tmp_path / "bare-1.0.dist-info"
    bare.mkdir()
    (bare / "METADATA").write_text("Name: bare\n")
    (bare / "entry_points.txt").write_text("[accel.plugins]\nbare = bare_mod\n")
    nometa = tmp_path / "nometa-1.0.dist-info"
    nometa.mkdir()
    (nometa / "entry_points.txt").write_text("[accel.plugins]\nnometa = nometa_mod\n")
    found = same_as_importlib("accel.plugins")
    assert ("bare", "bare_mod", "bare", None) in found
    assert ("nometa", "nometa_mod", None, None) in found


def test_install_and_uninstall_show_at_once(make_dist: MakeDist, tmp_path: Path) -> None:
    before = same_as_importlib("accel.plugins")
    make_dist("fresh-plug", {"fresh": ""})
    after = same_as_importlib("accel.plugins")
    assert [r for r in after if r not in before] == [
        ("fresh", next(r[1] for r in after if r[0] == "fresh"), "fresh-plug", "1.2.3")
    ]
    shutil.rmtree(tmp_path / "fresh_plug-1.2.3.dist-info")
    assert same_as_importlib("accel.plugins") == before


def test_load_resolves_module_and_attribute_path(tmp_path: Path) -> None:
    dist = registry._PathDist(str(tmp_path))
    ep = registry._EntryPoint("x", "os.path : join", dist)
    assert ep.load() is __import__("os").path.join
    assert registry._EntryPoint("x", "os", dist).load() is __import__("os")
    with pytest.raises(ValueError):
        registry._EntryPoint("x", "not a module!", dist).load()


def test_importlib_metadata_is_used_where_the_scan_could_differ(
    make_dist: MakeDist, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_dist("fallback-plug", {"fb": ""})
    assert registry._scan_entry_points("accel.plugins") is not None

    class Finder:
        @staticmethod
        def find_distributions(*_a: Any, **_k: Any) -> list[Any]:
            return []

    with monkeypatch.context() as m:  # another distribution finder
        m.setattr(sys, "meta_path", [*sys.meta_path, Finder])
        assert registry._scan_entry_points("accel.plugins") is None
        assert rows(registry._entry_points("accel.plugins")) == rows(
            md.entry_points(group="accel.plugins")
        )
    archive = tmp_path / "plugins.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("zipped-1.0.dist-info/METADATA", "Name: zipped\nVersion: 1.0\n")
        z.writestr("zipped-1.0.dist-info/entry_points.txt", "[accel.plugins]\nzz = zz\n")
    with monkeypatch.context() as m:  # a zip archive on sys.path
        m.syspath_prepend(str(archive))
        assert registry._scan_entry_points("accel.plugins") is None
        assert "zz" in [ep.name for ep in registry._entry_points("accel.plugins")]
    bad = tmp_path / "bad-1.0.dist-info"
    bad.mkdir()
    (bad / "entry_points.txt").write_text("[other]\nno equals sign here\n")
    assert registry._scan_entry_points("accel.plugins") is None  # importlib.metadata raises
    with pytest.raises(TypeError):  # as importlib.metadata says it
        registry._entry_points("accel.plugins")


def test_a_directory_is_listed_again_once_it_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "_accel_listed_module.py").write_text("", encoding="utf-8")
    monkeypatch.syspath_prepend(str(lib))
    monkeypatch.delitem(sys.modules, "_accel_listed_module", raising=False)
    importlib.invalidate_caches()
    importlib.import_module("_accel_listed_module")  # the import system lists ``lib``
    real_listdir = os.listdir
    listed: list[str] = []

    def listdir(path: str) -> list[str]:
        listed.append(path)
        return real_listdir(path)

    with monkeypatch.context() as m:
        m.setattr(os, "listdir", listdir)
        before = registry._scan_entry_points("accel.plugins")
        assert before is not None
        assert str(lib) not in listed  # its listing is current and holds no metadata
        info = lib / "late-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text("Name: late\nVersion: 1.0\n", encoding="utf-8")
        (info / "entry_points.txt").write_text(
            "[accel.plugins]\nlate = late_mod\n", encoding="utf-8"
        )
        st = os.stat(lib)  # as at the next clock tick, whatever the file system's resolution
        os.utime(lib, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
        after = registry._scan_entry_points("accel.plugins")
        assert str(lib) in listed
    assert after is not None
    new = [r for r in rows(after) if r not in rows(before)]
    assert new == [("late", "late_mod", "late", "1.0")]
    assert same_as_importlib("accel.plugins") == rows(after)


@pytest.mark.parametrize(
    "text",
    [
        "[a=b]\nno equals sign\n",
        "no section yet\n[other]\nk = v [extra]\n# c = d\n",
        "[other]\n  \n[x = y]\nk=v\n[accel.plugins]\nplug = plug.mod\n",
        "[[accel.plugins]]\nplug = plug.mod\n[other]\nno equals sign\n",
        "[other]\nk = [v\n= nameless\n",
    ],
)
def test_files_without_the_group_are_checked_as_importlib(
    text: str, make_dist: MakeDist, tmp_path: Path
) -> None:
    make_dist("placeholder", {})  # puts tmp_path on sys.path
    info = tmp_path / "odd-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Name: odd\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(text)
    importlib.invalidate_caches()
    try:
        expected = rows(md.entry_points(group="accel.plugins"))
    except (TypeError, ValueError):  # importlib.metadata refuses the file
        assert registry._scan_entry_points("accel.plugins") is None
    else:
        same_as_importlib("accel.plugins")
        assert expected == rows(registry._entry_points("accel.plugins"))


@pytest.mark.parametrize(
    ("plugin_dists", "other_dists", "listed_again"),
    [
        (["alpha"], ["gamma", "delta"], False),  # the import system's listing is enough
        (["alpha", "beta"], ["gamma"], True),  # two distributions in order: listed again
        (["alpha"], ["gamma", "Gamma-9.0"], True),  # one name twice: the first one wins
    ],
)
def test_a_current_listing_is_used_where_its_order_cannot_matter(
    plugin_dists: list[str],
    other_dists: list[str],
    listed_again: bool,
    make_dist: MakeDist,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in plugin_dists:
        make_dist(name, {f"{name}-ep": ""})
    for name in other_dists:
        dist, _, version = name.partition("-")
        make_dist(dist, {f"{dist.lower()}-{version or 1}": ""}, version=version or "1.0", group="x")
    importlib.util.find_spec("_accel_no_such_module_")  # the import system lists tmp_path
    listings: list[str] = []
    listdir = os.listdir

    def counting_listdir(path: str) -> list[str]:
        listings.append(path)
        return listdir(path)

    with monkeypatch.context() as m:
        m.setattr(os, "listdir", counting_listdir)
        scanned = registry._scan_entry_points("accel.plugins")
    others = registry._scan_entry_points("x")
    assert scanned is not None and others is not None
    assert (str(tmp_path) in listings) is listed_again
    assert rows(scanned) == rows(md.entry_points(group="accel.plugins"))
    assert rows(others) == rows(md.entry_points(group="x"))
