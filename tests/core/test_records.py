"""accel._records behaves as dataclasses does, for what the start path uses.

Each check builds the same class twice, once with ``@dataclasses.dataclass`` and once
with ``@record``, and compares what they do: construction (through the generic binder of
the first calls and through the compiled ``__init__`` after ``COMPILE_AFTER`` calls),
errors, repr, equality, hashing, frozenness, slots, ``replace`` and the ``dataclasses``
functions applied to records.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accel import _records
from accel._records import FrozenInstanceError, field, record


def _pair(**options: Any) -> tuple[type, type]:
    def body() -> dict[str, Any]:
        return {
            "__annotations__": {"a": "int", "b": "str", "c": "tuple[int, ...]", "k": "int"},
            "b": "x",
            "c": None,  # replaced below by each flavour's field()
            "k": 7,
            "__module__": __name__,
        }

    d_ns = body()
    d_ns["c"] = dataclasses.field(default_factory=tuple)
    r_ns = body()
    r_ns["c"] = field(default_factory=tuple)
    d = dataclasses.dataclass(**options)(type("D", (), d_ns))
    r = record(**options)(type("D", (), r_ns))
    return d, r


def _outcome(cls: type, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str, Any]:
    try:
        obj = cls(*args, **kwargs)
    except TypeError as exc:
        # Python's own message names the function by qualname, the same in both flavours.
        return ("TypeError", str(exc))
    return ("ok", tuple(getattr(obj, n) for n in ("a", "b", "c", "k")))


ARGS = st.lists(st.sampled_from([1, "s", (2,), 9]), max_size=5).map(tuple)
KWARGS = st.dictionaries(st.sampled_from(["a", "b", "c", "k", "zz"]), st.integers(), max_size=3)


@settings(max_examples=300, deadline=None)
@given(args=ARGS, kwargs=KWARGS, frozen=st.booleans(), slots=st.booleans())
def test_construction_matches_dataclasses(
    args: tuple[Any, ...], kwargs: dict[str, Any], frozen: bool, slots: bool
) -> None:
    d, r = _pair(frozen=frozen, slots=slots)
    for _ in range(_records.COMPILE_AFTER + 2):  # generic binder first, then compiled
        assert _outcome(r, args, kwargs) == _outcome(d, args, kwargs)


def test_repr_eq_hash_match_dataclasses() -> None:
    d, r = _pair(frozen=True, slots=True)
    a, b = r(1, "y"), r(1, "y")
    assert repr(a) == repr(d(1, "y"))
    assert a == b and hash(a) == hash(b)
    assert a != r(2, "y")
    assert a.__eq__(d(1, "y")) is NotImplemented
    assert r.__slots__ == d.__slots__  # type: ignore[attr-defined]


def test_hash_rules_follow_dataclasses() -> None:
    for options in ({}, {"frozen": True}, {"eq": False}, {"unsafe_hash": True}):
        d, r = _pair(**options)
        assert (d.__hash__ is None) == (r.__hash__ is None), options


def test_frozen_refuses_assignment_and_deletion() -> None:
    _d, r = _pair(frozen=True)
    obj = r(1)
    with pytest.raises(FrozenInstanceError):
        obj.a = 2
    with pytest.raises(AttributeError):
        del obj.b


def test_order_and_post_init() -> None:
    @record(order=True, frozen=True)
    class P:
        x: int
        y: int = 0
        seen: list[int] = field(default_factory=list, compare=False, repr=False)

        def __post_init__(self) -> None:
            self.seen.append(self.x)

    assert P(1) < P(2) and P(1, 5) > P(1, 4) and P(3) <= P(3)
    assert P(4).seen == [4]
    assert repr(P(1, 2)) == "test_order_and_post_init.<locals>.P(x=1, y=2)"


def test_bad_field_order_fails_at_class_creation() -> None:
    with pytest.raises(TypeError, match="non-default argument 'b' follows default argument"):

        @record
        class Bad:
            a: int = 1
            b: int  # type: ignore[misc]


def test_kw_only_and_inheritance() -> None:
    @record(frozen=True, slots=True)
    class Base:
        a: int
        b: int = 2

    @record(frozen=True, kw_only=True)
    class Child(Base):
        c: int

    obj = Child(1, c=3)
    assert (obj.a, obj.b, obj.c) == (1, 2, 3)
    assert Child.__match_args__ == ("a", "b")
    with pytest.raises(TypeError):
        Child(1, 2, 3)  # type: ignore[misc]


def test_dataclasses_functions_accept_records() -> None:
    _d, r = _pair(frozen=True, slots=True)
    obj = r(1, "y")
    assert dataclasses.is_dataclass(obj)
    assert [f.name for f in dataclasses.fields(obj)] == ["a", "b", "c", "k"]
    assert dataclasses.asdict(obj) == {"a": 1, "b": "y", "c": (), "k": 7}
    assert dataclasses.replace(obj, b="z") == r(1, "z")
    assert _records.replace(obj, k=1) == r(1, "y", (), 1)
    assert _records.asdict(obj) == dataclasses.asdict(obj)


def test_classvar_is_not_a_field() -> None:
    @record
    class C:
        x: int = 0
        shared: ClassVar[int] = 5
        quoted: "ClassVar[str]" = "q"  # noqa: UP037

    assert [f.name for f in _records.fields(C)] == ["x"]
    assert C.shared == 5


_OPTIONS: list[dict[str, Any]] = [
    {},
    {"frozen": True},
    {"eq": False},
    {"unsafe_hash": True},
    {"order": True},
]
_WRITTEN = ["", "__eq__", "__hash__", "__hash__None", "both"]


@pytest.mark.parametrize("slots", [False, True])
@pytest.mark.parametrize(
    ("options", "written"),
    [
        (options, written)
        for options in _OPTIONS
        for written in _WRITTEN
        # dataclasses refuses unsafe_hash with a __hash__ written in the body
        if not (options.get("unsafe_hash") and written in ("__hash__", "__hash__None", "both"))
    ],
)
def test_methods_written_in_the_body_follow_dataclasses(
    slots: bool, options: dict[str, Any], written: str
) -> None:
    def eq(self: Any, other: object) -> bool:
        return True

    def hash_(self: Any) -> int:
        return 42

    def make(decorate: Any) -> type:
        ns: dict[str, Any] = {"__annotations__": {"a": "int"}, "__module__": __name__}
        if written in ("__eq__", "both"):
            ns["__eq__"] = eq
        if written in ("__hash__", "both"):
            ns["__hash__"] = hash_
        if written == "__hash__None":
            ns["__hash__"] = None
        return decorate(slots=slots, **options)(type("W", (), ns))

    d, r = make(dataclasses.dataclass), make(record)
    for name in ("__eq__", "__hash__", "__lt__", "__setattr__", "__repr__"):
        d_own, r_own = name in d.__dict__, name in r.__dict__
        assert d_own == r_own, name
        if d.__dict__.get(name) is None:
            assert r.__dict__.get(name) is None, name
    assert hasattr(r, "__slots__") == slots
    if d.__hash__ is not None:
        assert (hash(d(1)) == 42) == (hash(r(1)) == 42)


def test_slotted_post_init_and_compiled_init_see_the_rebuilt_class() -> None:
    @record(frozen=True, slots=True, order=True)
    class S:
        x: int
        y: int = 0

        def __post_init__(self) -> None:
            if self.x < 0:
                raise ValueError("negative")

    objs = [S(i) for i in range(_records.COMPILE_AFTER + 3)]
    assert S.__init__.__qualname__.endswith("S.__init__")
    assert "__init__" in S.__dict__ and not hasattr(objs[0], "__dict__")
    assert objs[1] < objs[2] and objs[3] == S(3, 0)
    with pytest.raises(ValueError, match="negative"):
        S(-1)
    with pytest.raises(FrozenInstanceError):
        objs[0].x = 5
