"""Value records for modules on the start-up path, without importing :mod:`dataclasses`.

``accel run`` has a start-up budget (docs/performance.md): importing :mod:`dataclasses`
pulls in :mod:`inspect`, :mod:`re`, :mod:`ast`, :mod:`tokenize` and more, and alone costs
about a third of QEMU's whole run of a tiny guest. :func:`record` takes the same keyword
arguments as :func:`dataclasses.dataclass` and gives the same methods, so a type checker
(through ``dataclass_transform``) and a reader see an ordinary dataclass:

    @record(frozen=True, slots=True)
    class ClockData:
        clock: int
        flags: int = 0
        extra: tuple[int, ...] = field(default_factory=tuple)

What differs from :mod:`dataclasses`: ``__init__`` is generated on first use (a class that
is never instantiated costs no compilation), ``__repr__``/``__eq__``/``__hash__`` are shared
generic methods, and :func:`replace`, :func:`fields` and :func:`asdict` here replace the
ones in :mod:`dataclasses`. ``InitVar`` and ``__match_args__`` ordering quirks are not
modelled; nothing on the start-up path uses them.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar, dataclass_transform

    _T = TypeVar("_T")
else:

    def dataclass_transform(**_kwargs):  # runtime no-op; the type checker sees typing's
        return lambda obj: obj


__all__ = ["Field", "FrozenInstanceError", "asdict", "field", "fields", "record", "replace"]


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


class FrozenInstanceError(AttributeError):
    """Assigning to a field of a frozen record (as :class:`dataclasses.FrozenInstanceError`)."""


class Field:
    """One field of a record: its name, default or default factory, and flags."""

    __slots__ = (
        "compare",
        "default",
        "default_factory",
        "hash",
        "init",
        "kw_only",
        "name",
        "repr",
        "type",
    )

    def __init__(
        self,
        default: Any = MISSING,
        default_factory: Any = MISSING,
        init: bool = True,
        repr: bool = True,
        compare: bool = True,
        hash: bool | None = None,
        kw_only: bool = False,
    ) -> None:
        if default is not MISSING and default_factory is not MISSING:
            raise ValueError("cannot specify both default and default_factory")
        self.name = ""
        self.type: object = ""
        self.default = default
        self.default_factory = default_factory
        self.init = init
        self.repr = repr
        self.compare = compare
        self.hash = hash
        self.kw_only = kw_only

    def __repr__(self) -> str:
        return f"Field(name={self.name!r}, default={self.default!r})"


def field(
    *,
    default: Any = MISSING,
    default_factory: Any = MISSING,
    init: bool = True,
    repr: bool = True,
    compare: bool = True,
    hash: bool | None = None,
    kw_only: bool = False,
) -> Any:
    """Per-field options, as :func:`dataclasses.field`."""
    return Field(default, default_factory, init, repr, compare, hash, kw_only)


_builtin_repr = repr


def _is_classvar(text: str) -> bool:
    text = text.strip("'\"")
    return text.startswith(("ClassVar", "typing.ClassVar", "Final[ClassVar"))


def _init_source(
    cls: type, all_fields: tuple[Field, ...], frozen: bool
) -> tuple[str, dict[str, Any]]:
    """Source and globals of ``__init__`` for ``cls``."""
    params: list[str] = []
    kw_params: list[str] = []
    body: list[str] = []
    env: dict[str, Any] = {"__MISSING": MISSING, "__setattr": object.__setattr__}
    seen_default = False
    for f in all_fields:
        if not f.init:
            if f.default is not MISSING:
                env[f"__dflt_{f.name}"] = f.default
                value = f"__dflt_{f.name}"
            elif f.default_factory is not MISSING:
                env[f"__fact_{f.name}"] = f.default_factory
                value = f"__fact_{f.name}()"
            else:
                continue
        else:
            target = kw_params if f.kw_only else params
            if f.default is not MISSING:
                env[f"__dflt_{f.name}"] = f.default
                target.append(f"{f.name}=__dflt_{f.name}")
                if not f.kw_only:
                    seen_default = True
                value = f.name
            elif f.default_factory is not MISSING:
                env[f"__fact_{f.name}"] = f.default_factory
                target.append(f"{f.name}=__MISSING")
                if not f.kw_only:
                    seen_default = True
                value = f"__fact_{f.name}() if {f.name} is __MISSING else {f.name}"
            else:
                if seen_default and not f.kw_only:
                    raise TypeError(
                        f"non-default argument {f.name!r} follows default argument "
                        f"in {cls.__qualname__}"
                    )
                target.append(f.name)
                value = f.name
        if frozen:
            body.append(f"  __setattr(self, {f.name!r}, {value})")
        else:
            body.append(f"  self.{f.name} = {value}")
    if hasattr(cls, "__post_init__"):
        body.append("  self.__post_init__()")
    signature = ", ".join(["self", *params, *(["*", *kw_params] if kw_params else [])])
    source = f"def __init__({signature}):\n" + ("\n".join(body) or "  pass") + "\n"
    return source, env


#: Calls a record's ``__init__`` binds generically before compiling its own (a class made
#: a few times at start-up never pays for compilation; a class made in a loop soon does).
COMPILE_AFTER = 16


def _lazy_init(
    owner: Callable[[], type],
    all_fields: tuple[Field, ...],
    positional: list[str],
    accepted: set[str],
    frozen: bool,
) -> Callable[..., None]:
    """A generic ``__init__`` that compiles the class's own after :data:`COMPILE_AFTER` calls."""
    cls = owner()
    post_init = hasattr(cls, "__post_init__")
    store = object.__setattr__ if frozen else setattr
    n_positional = len(positional)
    calls = 0

    def compile_init() -> Any:
        cls = owner()
        source, env = _init_source(cls, all_fields, frozen)
        exec(source, env)
        real = env["__init__"]
        real.__qualname__ = f"{cls.__qualname__}.__init__"
        type.__setattr__(cls, "__init__", real)
        return real

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        nonlocal calls
        calls += 1
        if calls > COMPILE_AFTER or len(args) > n_positional:
            compile_init()(self, *args, **kwargs)
            return
        values = dict(zip(positional, args, strict=False))
        for key, value in kwargs.items():
            if key in values or key not in accepted:
                compile_init()(self, *args, **kwargs)  # raises Python's own TypeError
                return
            values[key] = value
        for f in all_fields:
            name = f.name
            if name in values:
                continue
            if f.default is not MISSING:
                values[name] = f.default
            elif f.default_factory is not MISSING:
                values[name] = f.default_factory()
            elif f.init:
                compile_init()(self, *args, **kwargs)  # a missing argument: Python's error
                return
        for f in all_fields:
            if f.name in values:
                store(self, f.name, values[f.name])
        if post_init:
            self.__post_init__()

    __init__.__qualname__ = f"{cls.__qualname__}.__init__"
    return __init__


class _DataclassFields:
    """``__dataclass_fields__``, built on first access, so :mod:`dataclasses` treats a
    record as one of its own: ``dataclasses.replace``, ``fields``, ``asdict`` and
    ``is_dataclass`` work on records (importing :mod:`dataclasses` then, not at start-up)."""

    def __get__(self, obj: object, owner: type) -> dict[str, Any]:
        import dataclasses

        out: dict[str, Any] = {}
        for f in owner.__record_fields__:  # type: ignore[attr-defined]
            df = dataclasses.field(
                init=f.init, repr=f.repr, compare=f.compare, hash=f.hash, kw_only=f.kw_only
            )
            df.default = f.default if f.default is not MISSING else dataclasses.MISSING
            df.default_factory = (
                f.default_factory if f.default_factory is not MISSING else dataclasses.MISSING
            )
            df.name = f.name
            df.type = f.type
            df._field_type = dataclasses._FIELD  # type: ignore[attr-defined]
            out[f.name] = df
        return out


_DATACLASS_FIELDS = _DataclassFields()


def _repr(self: Any) -> str:
    parts = ", ".join(
        f"{f.name}={getattr(self, f.name)!r}" for f in type(self).__record_fields__ if f.repr
    )
    return f"{type(self).__qualname__}({parts})"


def _key(self: Any) -> tuple[Any, ...]:
    return tuple(getattr(self, f.name) for f in type(self).__record_fields__ if f.compare)


def _eq(self: Any, other: object) -> Any:
    if other.__class__ is self.__class__:
        return _key(self) == _key(other)
    return NotImplemented


def _hash(self: Any) -> int:
    return hash(
        tuple(
            getattr(self, f.name)
            for f in type(self).__record_fields__
            if (f.compare if f.hash is None else f.hash)
        )
    )


def _frozen_setattr(self: Any, name: str, value: object) -> None:
    if name in type(self).__record_names__:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")
    object.__setattr__(self, name, value)


def _frozen_delattr(self: Any, name: str) -> None:
    if name in type(self).__record_names__:
        raise FrozenInstanceError(f"cannot delete field {name!r}")
    object.__delattr__(self, name)


def _order(op: str) -> Callable[[Any, object], Any]:
    def compare(self: Any, other: object) -> Any:
        if other.__class__ is not self.__class__:
            return NotImplemented
        a, b = _key(self), _key(other)
        return bool(getattr(a, op)(b))

    compare.__name__ = op
    return compare


def _process(
    cls: type,
    *,
    init: bool,
    repr: bool,
    eq: bool,
    order: bool,
    unsafe_hash: bool,
    frozen: bool,
    kw_only: bool,
    slots: bool,
) -> type:
    ns = cls.__dict__
    own: list[Field] = []
    for name, annotation in ns.get("__annotations__", {}).items():
        text = annotation if annotation.__class__ is str else _builtin_repr(annotation)
        if "ClassVar" in text and _is_classvar(text):
            continue
        value = ns.get(name, MISSING)
        f = value if isinstance(value, Field) else Field(value)
        f.name = name
        f.type = annotation
        if kw_only:
            f.kw_only = True
        own.append(f)
    merged: dict[str, Field] = {}
    for base in cls.__mro__[-1:0:-1]:
        for f in base.__dict__.get("__record_fields__", ()):
            merged[f.name] = f
    for f in own:
        merged[f.name] = f
    all_fields = tuple(merged.values())

    positional: list[str] = []
    accepted: set[str] = set()
    check_order = init and "__init__" not in ns
    seen_default = False
    for f in all_fields:
        if not f.init:
            continue
        accepted.add(f.name)
        if f.kw_only:
            continue
        positional.append(f.name)
        if f.default is not MISSING or f.default_factory is not MISSING:
            seen_default = True
        elif seen_default and check_order:
            raise TypeError(
                f"non-default argument {f.name!r} follows default argument in {cls.__qualname__}"
            )

    # The attributes to set: a slotted record is rebuilt with them in its body, any other
    # record gets them set on the class.
    attrs: dict[str, Any] = {
        "__record_fields__": all_fields,
        "__record_names__": frozenset(merged),
        "__dataclass_fields__": _DATACLASS_FIELDS,
        "__match_args__": tuple(positional),
    }
    if check_order:
        attrs["__init__"] = _lazy_init(lambda: cls, all_fields, positional, accepted, frozen)
    if repr and "__repr__" not in ns:
        attrs["__repr__"] = _repr
    if eq and "__eq__" not in ns:
        attrs["__eq__"] = _eq
    # dataclasses' rule: a __hash__ written in the class body wins; Python's implicit
    # ``__hash__ = None`` from defining __eq__ does not count as written.
    class_hash = ns.get("__hash__", MISSING)
    explicit_hash = not (class_hash is MISSING or (class_hash is None and "__eq__" in ns))
    if not explicit_hash:
        if unsafe_hash or (eq and frozen):
            attrs["__hash__"] = _hash
        elif eq:
            attrs["__hash__"] = None
    if order:
        for op in ("__lt__", "__le__", "__gt__", "__ge__"):
            attrs[op] = _order(op)
    if frozen:
        attrs["__setattr__"] = _frozen_setattr
        attrs["__delattr__"] = _frozen_delattr

    if slots:
        body = dict(ns)
        for f in own:
            body.pop(f.name, None)
        body.pop("__dict__", None)
        body.pop("__weakref__", None)
        inherited = {n for base in cls.__mro__[1:] for n in getattr(base, "__slots__", ())}
        body["__slots__"] = tuple(f.name for f in own if f.name not in inherited)
        body.update(attrs)
        cls = type(cls)(cls.__name__, cls.__bases__, body)
        return cls
    for f in own:
        if isinstance(ns.get(f.name), Field):
            if f.default is MISSING:
                type.__delattr__(cls, f.name)
            else:
                type.__setattr__(cls, f.name, f.default)
    for key, value in attrs.items():
        type.__setattr__(cls, key, value)
    return cls


@dataclass_transform(field_specifiers=(field, Field))
def record(
    cls: Any = None,
    /,
    *,
    init: bool = True,
    repr: bool = True,
    eq: bool = True,
    order: bool = False,
    unsafe_hash: bool = False,
    frozen: bool = False,
    kw_only: bool = False,
    slots: bool = False,
) -> Any:
    """Make ``cls`` a record: the keyword arguments mean what they mean to ``@dataclass``."""

    def wrap(c: type) -> type:
        return _process(
            c,
            init=init,
            repr=repr,
            eq=eq,
            order=order,
            unsafe_hash=unsafe_hash,
            frozen=frozen,
            kw_only=kw_only,
            slots=slots,
        )

    return wrap if cls is None else wrap(cls)


def fields(obj: object) -> tuple[Field, ...]:
    """The fields of a record class or instance, in declaration order."""
    cls = obj if isinstance(obj, type) else type(obj)
    try:
        out: tuple[Field, ...] = cls.__record_fields__  # type: ignore[attr-defined]
    except AttributeError:
        raise TypeError(f"{cls.__qualname__} is not a record") from None
    return out


def replace(obj: _T, /, **changes: Any) -> _T:
    """A copy of ``obj`` with some fields changed (``__post_init__`` runs again)."""
    for f in fields(obj):
        if not f.init:
            if f.name in changes:
                raise ValueError(f"field {f.name!r} cannot be set in replace()")
            continue
        if f.name not in changes:
            changes[f.name] = getattr(obj, f.name)
    return type(obj)(**changes)


def asdict(obj: object) -> dict[str, Any]:
    """The fields of ``obj`` as a dict (shallow: values are not converted)."""
    return {f.name: getattr(obj, f.name) for f in fields(obj)}
