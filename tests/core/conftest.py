"""Fixtures for the core tests: installed test distributions built in tmp_path."""

from __future__ import annotations

import importlib
import itertools
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

_counter = itertools.count()

MakeDist = Callable[..., dict[str, str]]


@pytest.fixture
def make_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MakeDist]:
    """Install a real distribution into ``tmp_path`` (on sys.path) for importlib.metadata.

    ``make_dist("fakeplug", {"one": SOURCE, "two": SOURCE})`` writes
    ``fakeplug-1.2.3.dist-info`` with METADATA and an ``entry_points.txt`` registering
    each entry point in the ``accel.plugins`` group, and one module per entry point whose
    text is the source given. Module names are unique per call (so Python's import cache
    never hands a test another test's module); the returned dict maps each entry-point
    name to its module name.
    """
    modules: list[str] = []
    monkeypatch.syspath_prepend(str(tmp_path))

    def make(
        dist: str, plugins: dict[str, str], version: str = "1.2.3", group: str = "accel.plugins"
    ) -> dict[str, str]:
        mapping = {ep: f"_accel_test_{ep.replace('-', '_')}_{next(_counter)}" for ep in plugins}
        # The directory name uses the normalised name (``_`` for ``-``), as wheels do:
        # importlib.metadata takes the name up to the first ``-`` from it.
        info = tmp_path / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n", encoding="utf-8"
        )
        lines = [f"[{group}]", *(f"{ep} = {mod}" for ep, mod in mapping.items())]
        (info / "entry_points.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        for ep, source in plugins.items():
            (tmp_path / f"{mapping[ep]}.py").write_text(textwrap.dedent(source), encoding="utf-8")
        modules.extend(mapping.values())
        importlib.invalidate_caches()  # import and metadata finders cache directory listings
        return mapping

    yield make
    for mod in modules:
        sys.modules.pop(mod, None)


#: An entry-point plugin module providing one accelerator named {name}.
PLUGIN = """
import accel

class Acc(accel.Accelerator):
    name = "{name}"
    def probe(self):
        return accel.Availability.ok()
    def capabilities(self):
        raise NotImplementedError
    def create_vm(self, options=None):
        raise NotImplementedError
    def _close(self):
        pass

@accel.hookimpl
def accel_accelerators():
    return [accel.AcceleratorInfo(name="{name}", summary="test", factory=Acc, priority={prio})]
"""


def plugin(name: str, prio: int = 0) -> str:
    return PLUGIN.format(name=name, prio=prio)
