"""Every public name of ``accel`` resolves, on first use (PEP 562), to its submodule's."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap

import pytest

import accel

#: Public names defined in accel/__init__.py itself rather than taken from a submodule.
_DEFINED_HERE = {"open", "register", "accelerators"}


def test_lazy_table_covers_exactly_all() -> None:
    lazy = set(accel._LAZY) | {n for n in accel._SUBMODULES if n in accel.__all__}
    assert lazy | _DEFINED_HERE == set(accel.__all__)
    assert not lazy & _DEFINED_HERE
    assert len(accel.__all__) == len(set(accel.__all__))


@pytest.mark.parametrize("name", sorted(accel._LAZY))
def test_each_lazy_name_is_the_object_of_its_submodule(name: str) -> None:
    module = importlib.import_module(f"accel.{accel._LAZY[name]}")
    assert getattr(accel, name) is getattr(module, name)


def test_submodules_are_attributes() -> None:
    for name in accel._SUBMODULES:
        assert getattr(accel, name) is importlib.import_module(f"accel.{name}")


def test_dir_lists_every_public_name() -> None:
    assert set(accel.__all__) <= set(dir(accel))


def test_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="module 'accel' has no attribute 'nope'"):
        accel.nope  # type: ignore[attr-defined]  # noqa: B018
    assert not hasattr(accel, "_nope")


def _run(code: str) -> str:
    """Run ``code`` in a new interpreter importing the same accel as this one; its stdout."""
    tree = os.path.dirname(os.path.dirname(os.path.abspath(accel.__file__)))
    path = os.pathsep.join(p for p in (tree, os.environ.get("PYTHONPATH")) if p)
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": path},
    )
    return out.stdout.strip()


def test_lazy_access_and_from_import_in_a_fresh_interpreter() -> None:
    out = _run(
        """
        import sys
        import accel
        from accel import ClockFlags
        assert "accel.capabilities" in sys.modules and "accel.registry" not in sys.modules
        assert accel.ClockFlags is ClockFlags is sys.modules["accel.capabilities"].ClockFlags
        assert "ClockFlags" in vars(accel)
        import accel.errors
        assert accel.errors is sys.modules["accel.errors"]
        assert accel.AccelError is accel.errors.AccelError
        print(accel.Registry.__module__)
        """
    )
    assert out == "accel.registry"
