"""accel._lazy.exports: the PEP 562 hooks the lazy modules share."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import accel.errors
import accel.machine
from accel._lazy import exports, resolve


@pytest.fixture
def lazypkg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A fresh package ``lazypkg`` whose ``__init__`` uses :func:`exports`, with a
    submodule ``defs`` (counting its imports) and a subpackage ``sub``."""
    root = tmp_path / "lazypkg"
    (root / "sub").mkdir(parents=True)
    (root / "__init__.py").write_text(
        "from accel._lazy import exports\n"
        "__all__ = ['Thing', 'listed']\n"
        "listed = 1\n"
        "__getattr__, __dir__ = exports(\n"
        "    globals(),\n"
        "    {'Thing': '.defs', 'other': '.defs', 'AccelError': 'accel.errors'},\n"
        "    submodules=('defs', 'sub'),\n"
        ")\n"
    )
    (root / "defs.py").write_text(
        "import builtins\n"
        "builtins.lazypkg_imports = getattr(builtins, 'lazypkg_imports', 0) + 1\n"
        "class Thing: pass\n"
        "other = object()\n"
    )
    (root / "sub" / "__init__.py").write_text("")
    (root / "sub" / "inner.py").write_text(
        "from accel._lazy import exports\n"
        "__getattr__, __dir__ = exports(globals(), {'Thing': '..defs', 'Here': '.'})\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import builtins

    monkeypatch.setattr(builtins, "lazypkg_imports", 0, raising=False)
    yield importlib.import_module("lazypkg")
    for name in [m for m in sys.modules if m == "lazypkg" or m.startswith("lazypkg.")]:
        del sys.modules[name]


def test_first_access_imports_and_caches(lazypkg: Any) -> None:
    import builtins

    assert "lazypkg.defs" not in sys.modules and "Thing" not in vars(lazypkg)
    thing = lazypkg.Thing
    assert thing is sys.modules["lazypkg.defs"].Thing
    assert vars(lazypkg)["Thing"] is thing  # cached: later lookups skip __getattr__
    assert lazypkg.Thing is thing and lazypkg.other is sys.modules["lazypkg.defs"].other
    assert builtins.lazypkg_imports == 1  # type: ignore[attr-defined]


def test_absolute_target(lazypkg: Any) -> None:
    assert lazypkg.AccelError is accel.errors.AccelError
    assert vars(lazypkg)["AccelError"] is accel.errors.AccelError


def test_relative_targets_from_a_submodule(lazypkg: Any) -> None:
    inner = importlib.import_module("lazypkg.sub.inner")
    assert inner.Thing is importlib.import_module("lazypkg.defs").Thing


def test_submodule_attributes(lazypkg: Any) -> None:
    assert "lazypkg.sub" not in sys.modules
    assert lazypkg.sub is sys.modules["lazypkg.sub"]
    assert lazypkg.defs is sys.modules["lazypkg.defs"]
    with pytest.raises(AttributeError):
        lazypkg.inner  # noqa: B018 - a submodule of sub, not of lazypkg


def test_unknown_name_raises_the_usual_error(lazypkg: Any) -> None:
    with pytest.raises(AttributeError) as info:
        lazypkg.missing  # noqa: B018
    assert str(info.value) == "module 'lazypkg' has no attribute 'missing'"
    with pytest.raises(AttributeError, match=r"^module 'accel.machine' has no attribute 'nope'$"):
        accel.machine.nope  # noqa: B018
    assert getattr(lazypkg, "missing", 7) == 7
    assert not hasattr(lazypkg, "missing")
    with pytest.raises(ImportError):
        from lazypkg import missing  # noqa: F401


def test_dir_lists_globals_lazy_names_and_all(lazypkg: Any) -> None:
    listing = dir(lazypkg)
    assert listing == sorted(listing)
    assert {"Thing", "other", "AccelError", "listed", "__all__"} <= set(listing)
    assert "lazypkg.defs" not in sys.modules  # listing imports nothing
    assert "sub" not in listing  # submodules appear once imported, as before
    lazypkg.sub  # noqa: B018
    assert "sub" in dir(lazypkg)


def test_from_import_goes_through_getattr(lazypkg: Any) -> None:
    from lazypkg import Thing

    assert Thing is lazypkg.Thing


@pytest.mark.parametrize(
    ("target", "package", "expected"),
    [
        ("json", "accel", "json"),
        ("accel.errors", None, "accel.errors"),
        (".errors", "accel", "accel.errors"),
        ("..errors", "accel.machine", "accel.errors"),
        (".", "accel.machine", "accel.machine"),
        ("..", "accel.machine", "accel"),
    ],
)
def test_resolve(target: str, package: str | None, expected: str) -> None:
    assert resolve(target, package) == expected


@pytest.mark.parametrize(("target", "package"), [(".x", None), (".x", ""), ("...x", "a.b")])
def test_resolve_refuses_what_import_refuses(target: str, package: str | None) -> None:
    with pytest.raises(ImportError):
        resolve(target, package)


def test_exports_takes_a_plain_namespace() -> None:
    namespace: dict[str, Any] = {"__name__": "fake.mod", "__package__": "accel"}
    getattr_, dir_ = exports(namespace, {"ConfigError": ".errors"})
    assert getattr_("ConfigError") is accel.errors.ConfigError
    assert namespace["ConfigError"] is accel.errors.ConfigError
    assert dir_() == ["ConfigError", "__name__", "__package__"]
    with pytest.raises(AttributeError, match=r"^module 'fake.mod' has no attribute 'x'$"):
        getattr_("x")


def test_the_helper_imports_nothing() -> None:
    """accel._lazy is on the start path of ``accel run``: it imports no module at run time
    (``__future__`` aside, which every accel module imports)."""
    source = Path(importlib.import_module("accel._lazy").__file__ or "").read_text()
    code = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "exec(compile(sys.stdin.read(), 'accel/_lazy.py', 'exec'), {'__name__': 'lazy'})\n"
        "print(sorted(set(sys.modules) - before - {'__future__'}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code],
        input=source,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip() == "[]"
