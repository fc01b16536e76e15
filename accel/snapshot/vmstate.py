"""Declarative state descriptions, in the shape of QEMU's VMState.

A :class:`VMStateDescription` says how one piece of state (a device, a vCPU's registers,
the VM clock) is written into a snapshot section and read back:

* ``fields``: named, typed :class:`Field` entries (``U8`` .. ``U64``, ``I64``, ``BOOL``,
  :class:`Bytes`, :class:`VarBytes`, :class:`Str`, :class:`Nested`, :class:`Array`),
  each with the section version it appeared in (``since``);
* ``version_id`` (what this code writes) and ``minimum_version_id`` (the oldest stream
  version it still reads);
* ``subsections``: optional :class:`Subsection` entries, sent only when their ``needed``
  predicate says so and, when absent on load, leaving the factory default in place;
* hooks: ``pre_save(obj)``, ``pre_load(obj)``, ``post_load(obj, version_id)``.

The state object is any object with attributes (a dataclass is the usual choice);
subsection fields are attributes of the same object, as in QEMU. Loading never touches a
live object: :func:`decode` builds a *new* object with ``factory()`` and fills it, so a
caller can validate everything before applying anything.

Nothing here is executable on load: a stream holds only integers, booleans and bytes in
the order the description says, every length is bounded, and a malformed payload raises
a :class:`~accel.errors.SnapshotError` subclass naming the section and the versions.

Example::

    @dataclass
    class Rtc:
        seconds: int = 0
        century: int = 0x20

    RTC = VMStateDescription(
        "rtc", version_id=2, minimum_version_id=1, factory=Rtc,
        fields=(Field("seconds", U64), Field("century", U8, since=2)),
    )
    payload = encode(RTC, Rtc(seconds=5))
    state = decode(RTC, payload, version_id=2)
"""

from __future__ import annotations

import abc
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from ..errors import SnapshotError, SnapshotFormatError, SnapshotMismatchError, SnapshotVersionError

__all__ = [
    "BOOL",
    "I64",
    "U8",
    "U16",
    "U32",
    "U64",
    "Array",
    "Bytes",
    "Field",
    "FieldType",
    "Int",
    "Nested",
    "Str",
    "Subsection",
    "VMStateDescription",
    "VarBytes",
    "decode",
    "encode",
]

T = TypeVar("T")

#: Upper bound on any one variable-length value inside a section (bytes or elements).
MAX_VAR_LENGTH = 1 << 20
#: Upper bound on nesting (Nested inside Array inside Nested ...), so a description
#: cannot recurse without end.
MAX_DEPTH = 16
_NAME_MAX = 64


class _Reader:
    """Bounded reads from one section payload; running short is a format error."""

    __slots__ = ("buf", "instance", "pos", "section")

    def __init__(self, buf: bytes | memoryview, section: str, instance: int | None) -> None:
        self.buf = memoryview(buf)
        self.pos = 0
        self.section = section
        self.instance = instance

    def take(self, n: int) -> memoryview:
        end = self.pos + n
        if n < 0 or end > len(self.buf):
            raise self.error(
                f"section {self.section!r}: payload ends inside a field "
                f"(needs {n} bytes at offset {self.pos}, has {len(self.buf) - self.pos})"
            )
        out = self.buf[self.pos : end]
        self.pos = end
        return out

    def error(self, message: str, **fields: Any) -> SnapshotFormatError:
        return SnapshotFormatError(
            message, section=self.section, instance=self.instance, offset=self.pos, **fields
        )


# --------------------------------------------------------------------------- field types


class FieldType(abc.ABC):
    """How one value is written and read. Subclasses are small and immutable."""

    @property
    def label(self) -> str:
        """A short name of the type (``u32``, ``bytes(16)`` ...)."""
        return type(self).__name__.lower()

    @abc.abstractmethod
    def put(self, value: Any, out: bytearray, where: str) -> None:
        """Append ``value``; raise :class:`~accel.errors.SnapshotError` if it does not fit."""

    @abc.abstractmethod
    def get(self, r: _Reader, depth: int) -> Any:
        """Read a value (bounded)."""

    def to_json(self, value: Any) -> Any:
        """A JSON-friendly rendering of a decoded value (for ``accel snapshot inspect``)."""
        return value


_INT_STRUCTS: dict[tuple[int, bool], struct.Struct] = {
    (size, signed): struct.Struct("<" + (code if signed else code.upper()))
    for size, code in ((1, "b"), (2, "h"), (4, "i"), (8, "q"))
    for signed in (False, True)
}


@dataclass(frozen=True)
class Int(FieldType):
    """A little-endian integer of ``size`` bytes (1, 2, 4, 8), signed or not."""

    size: int
    signed: bool = False

    def __post_init__(self) -> None:
        if (self.size, self.signed) not in _INT_STRUCTS:
            raise ValueError(f"no {self.size}-byte integer type")

    @property
    def label(self) -> str:
        return f"{'i' if self.signed else 'u'}{self.size * 8}"

    def put(self, value: Any, out: bytearray, where: str) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SnapshotError(f"{where}: {self.label} field needs an int, not {value!r}")
        try:
            out += _INT_STRUCTS[self.size, self.signed].pack(value)
        except struct.error:
            raise SnapshotError(f"{where}: {value} does not fit in {self.label}") from None

    def get(self, r: _Reader, depth: int) -> int:
        value: int = _INT_STRUCTS[self.size, self.signed].unpack(r.take(self.size))[0]
        return value


class _Bool(FieldType):
    @property
    def label(self) -> str:
        return "bool"

    def put(self, value: Any, out: bytearray, where: str) -> None:
        if not isinstance(value, bool):
            raise SnapshotError(f"{where}: bool field needs a bool, not {value!r}")
        out.append(1 if value else 0)

    def get(self, r: _Reader, depth: int) -> bool:
        b = r.take(1)[0]
        if b > 1:
            raise r.error(f"section {r.section!r}: bool field holds {b}, not 0 or 1")
        return b == 1


U8 = Int(1)
U16 = Int(2)
U32 = Int(4)
U64 = Int(8)
I64 = Int(8, signed=True)
BOOL: FieldType = _Bool()


@dataclass(frozen=True)
class Bytes(FieldType):
    """Exactly ``length`` bytes."""

    length: int

    @property
    def label(self) -> str:
        return f"bytes({self.length})"

    def put(self, value: Any, out: bytearray, where: str) -> None:
        if not isinstance(value, bytes | bytearray | memoryview) or len(value) != self.length:
            raise SnapshotError(f"{where}: needs exactly {self.length} bytes")
        out += value

    def get(self, r: _Reader, depth: int) -> bytes:
        return bytes(r.take(self.length))

    def to_json(self, value: Any) -> Any:
        return bytes(value).hex()


@dataclass(frozen=True)
class VarBytes(FieldType):
    """Up to ``max_length`` bytes, preceded by a u32 length."""

    max_length: int = MAX_VAR_LENGTH

    @property
    def label(self) -> str:
        return f"bytes(<={self.max_length})"

    def put(self, value: Any, out: bytearray, where: str) -> None:
        if not isinstance(value, bytes | bytearray | memoryview) or len(value) > self.max_length:
            raise SnapshotError(f"{where}: needs at most {self.max_length} bytes")
        out += struct.pack("<I", len(value))
        out += value

    def get(self, r: _Reader, depth: int) -> bytes:
        n = struct.unpack("<I", r.take(4))[0]
        if n > self.max_length:
            raise r.error(
                f"section {r.section!r}: byte string of {n} bytes exceeds the bound "
                f"{self.max_length}",
                expected=self.max_length,
                found=n,
            )
        return bytes(r.take(n))

    def to_json(self, value: Any) -> Any:
        return bytes(value).hex()


@dataclass(frozen=True)
class Str(FieldType):
    """UTF-8 text of at most ``max_length`` bytes, preceded by a u16 length."""

    max_length: int = 255

    @property
    def label(self) -> str:
        return f"str(<={self.max_length})"

    def put(self, value: Any, out: bytearray, where: str) -> None:
        if not isinstance(value, str):
            raise SnapshotError(f"{where}: str field needs a str, not {value!r}")
        raw = value.encode()
        if len(raw) > self.max_length:
            raise SnapshotError(f"{where}: text longer than {self.max_length} bytes")
        out += struct.pack("<H", len(raw))
        out += raw

    def get(self, r: _Reader, depth: int) -> str:
        n = struct.unpack("<H", r.take(2))[0]
        if n > self.max_length:
            raise r.error(
                f"section {r.section!r}: text of {n} bytes exceeds the bound {self.max_length}",
                expected=self.max_length,
                found=n,
            )
        try:
            return bytes(r.take(n)).decode()
        except UnicodeDecodeError:
            raise r.error(f"section {r.section!r}: text is not UTF-8") from None


@dataclass(frozen=True)
class Nested(FieldType):
    """Another description's fields inline (no version of its own, no subsections):
    the nested shape changes only together with the enclosing section's version."""

    description: VMStateDescription[Any]

    @property
    def label(self) -> str:
        return self.description.name

    def put(self, value: Any, out: bytearray, where: str) -> None:
        _put_fields(self.description, value, out, self.description.version_id, where)

    def get(self, r: _Reader, depth: int) -> Any:
        if depth >= MAX_DEPTH:
            raise r.error(f"section {r.section!r}: nesting deeper than {MAX_DEPTH}")
        obj = self.description.factory()
        _get_fields(self.description, obj, r, self.description.version_id, depth + 1)
        return obj

    def to_json(self, value: Any) -> Any:
        return _fields_json(self.description, value, self.description.version_id)


@dataclass(frozen=True)
class Array(FieldType):
    """A list of up to ``max_count`` values of one type, preceded by a u32 count."""

    element: FieldType
    max_count: int = 1024

    @property
    def label(self) -> str:
        return f"array({self.element.label}, <={self.max_count})"

    def put(self, value: Any, out: bytearray, where: str) -> None:
        items = list(value)
        if len(items) > self.max_count:
            raise SnapshotError(f"{where}: more than {self.max_count} elements")
        out += struct.pack("<I", len(items))
        for i, item in enumerate(items):
            self.element.put(item, out, f"{where}[{i}]")

    def get(self, r: _Reader, depth: int) -> list[Any]:
        n = struct.unpack("<I", r.take(4))[0]
        if n > self.max_count:
            raise r.error(
                f"section {r.section!r}: array of {n} elements exceeds the bound {self.max_count}",
                expected=self.max_count,
                found=n,
            )
        if depth >= MAX_DEPTH:
            raise r.error(f"section {r.section!r}: nesting deeper than {MAX_DEPTH}")
        return [self.element.get(r, depth + 1) for _ in range(n)]

    def to_json(self, value: Any) -> Any:
        return [self.element.to_json(v) for v in value]


# --------------------------------------------------------------------------- descriptions


@dataclass(frozen=True)
class Field:
    """One named value; present in streams whose section version is at least ``since``."""

    name: str
    type: FieldType
    since: int = 0
    doc: str = ""


@dataclass(frozen=True)
class Subsection(Generic[T]):
    """An optional part of a section, sent only when ``needed(obj)`` is true.

    Its ``description``'s fields are attributes of the parent's object. When the
    subsection is absent on load they keep the value the parent's factory gave them.
    """

    description: VMStateDescription[Any]
    needed: Callable[[T], bool]


@dataclass(frozen=True)
class VMStateDescription(Generic[T]):
    """How one piece of state is saved and loaded (see the module docstring)."""

    name: str
    version_id: int
    minimum_version_id: int
    factory: Callable[[], T]
    fields: tuple[Field, ...] = ()
    subsections: tuple[Subsection[T], ...] = ()
    pre_save: Callable[[T], None] | None = None
    pre_load: Callable[[T], None] | None = None
    post_load: Callable[[T, int], None] | None = None
    doc: str = ""
    _by_name: dict[str, Subsection[T]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if not self.name or len(self.name.encode()) > _NAME_MAX:
            raise ValueError(f"description name {self.name!r} must be 1..{_NAME_MAX} bytes")
        if not 0 < self.minimum_version_id <= self.version_id < 1 << 32:
            raise ValueError(
                f"{self.name}: need 0 < minimum_version_id <= version_id "
                f"({self.minimum_version_id}, {self.version_id})"
            )
        names = [f.name for f in self.fields]
        if len(set(names)) != len(names):
            raise ValueError(f"{self.name}: duplicate field names")
        for f in self.fields:
            if f.since > self.version_id:
                raise ValueError(f"{self.name}.{f.name}: since {f.since} > {self.version_id}")
        for sub in self.subsections:
            if sub.description.name in self._by_name:
                raise ValueError(f"{self.name}: duplicate subsection {sub.description.name}")
            self._by_name[sub.description.name] = sub

    def subsection(self, name: str) -> Subsection[T] | None:
        return self._by_name.get(name)

    def check_version(self, version_id: int, *, instance: int | None = None) -> None:
        """Raise :class:`~accel.errors.SnapshotVersionError` unless this code reads it."""
        if version_id > self.version_id:
            raise SnapshotVersionError(
                f"section {self.name!r} has version {version_id}, newer than version "
                f"{self.version_id}, the newest this accel understands",
                section=self.name,
                instance=instance,
                expected=f"{self.minimum_version_id}..{self.version_id}",
                found=version_id,
            )
        if version_id < self.minimum_version_id:
            raise SnapshotVersionError(
                f"section {self.name!r} has version {version_id}, older than version "
                f"{self.minimum_version_id}, the oldest this accel still reads",
                section=self.name,
                instance=instance,
                expected=f"{self.minimum_version_id}..{self.version_id}",
                found=version_id,
                hint="convert the snapshot with the accel version that wrote it",
            )


def _put_fields(
    desc: VMStateDescription[Any], obj: Any, out: bytearray, version: int, where: str
) -> None:
    for f in desc.fields:
        if f.since <= version:
            try:
                value = getattr(obj, f.name)
            except AttributeError:
                raise SnapshotError(
                    f"{where}: state object has no field {f.name!r}", section=desc.name
                ) from None
            f.type.put(value, out, f"{where}.{f.name}")


def _get_fields(
    desc: VMStateDescription[Any], obj: Any, r: _Reader, version: int, depth: int
) -> None:
    for f in desc.fields:
        if f.since <= version:
            setattr(obj, f.name, f.type.get(r, depth))


def _fields_json(desc: VMStateDescription[Any], obj: Any, version: int) -> dict[str, Any]:
    return {f.name: f.type.to_json(getattr(obj, f.name)) for f in desc.fields if f.since <= version}


# --------------------------------------------------------------------------- encode / decode

_SUB = struct.Struct("<BB")
_SUB_VER_LEN = struct.Struct("<II")


def encode(desc: VMStateDescription[T], obj: T) -> bytes:
    """The section payload for ``obj`` at ``desc.version_id``: fields, then subsections.

    Runs ``pre_save(obj)`` first. Subsections are written as ``u8 1, u8 name length,
    name, u32 version, u32 length, payload`` and the list ends with ``u8 0``.
    """
    if desc.pre_save is not None:
        desc.pre_save(obj)
    out = bytearray()
    _put_fields(desc, obj, out, desc.version_id, desc.name)
    for sub in desc.subsections:
        if not sub.needed(obj):
            continue
        sd = sub.description
        if sd.pre_save is not None:
            sd.pre_save(obj)
        body = bytearray()
        _put_fields(sd, obj, body, sd.version_id, sd.name)
        name = sd.name.encode()
        out += _SUB.pack(1, len(name))
        out += name
        out += _SUB_VER_LEN.pack(sd.version_id, len(body))
        out += body
    out.append(0)
    return bytes(out)


def decode(
    desc: VMStateDescription[T],
    payload: bytes | memoryview,
    version_id: int,
    *,
    instance: int | None = None,
) -> T:
    """A new object (``desc.factory()``) filled from ``payload`` written at ``version_id``.

    Checks the version first, then runs ``pre_load``, reads the fields present at that
    version, the subsections (each version-checked; an unknown one is refused), and
    ``post_load(obj, version_id)``; a payload with bytes left over is refused too.
    Raises only :class:`~accel.errors.SnapshotError` subclasses for bad input.
    """
    desc.check_version(version_id, instance=instance)
    obj = desc.factory()
    if desc.pre_load is not None:
        desc.pre_load(obj)
    r = _Reader(payload, desc.name, instance)
    _get_fields(desc, obj, r, version_id, 0)
    seen: set[str] = set()
    while True:
        marker = r.take(1)[0]
        if marker == 0:
            break
        if marker != 1:
            raise r.error(f"section {desc.name!r}: bad subsection marker {marker}")
        name_len = r.take(1)[0]
        try:
            name = bytes(r.take(name_len)).decode()
        except UnicodeDecodeError:
            raise r.error(f"section {desc.name!r}: subsection name is not UTF-8") from None
        sub = desc.subsection(name)
        if sub is None:
            raise SnapshotMismatchError(
                f"section {desc.name!r} carries subsection {name!r}, which this accel does "
                "not know",
                section=name,
                instance=instance,
                found=name,
                expected=sorted(desc._by_name),
                hint="restore with the accel version (or machine type) that wrote it",
            )
        if name in seen:
            raise r.error(f"section {desc.name!r}: subsection {name!r} appears twice")
        seen.add(name)
        sub_version, length = _SUB_VER_LEN.unpack(r.take(_SUB_VER_LEN.size))
        sd = sub.description
        sd.check_version(sub_version, instance=instance)
        body = _Reader(r.take(length), sd.name, instance)
        if sd.pre_load is not None:
            sd.pre_load(obj)
        _get_fields(sd, obj, body, sub_version, 0)
        if body.pos != len(body.buf):
            raise body.error(
                f"subsection {name!r}: {len(body.buf) - body.pos} bytes left over",
                found=len(body.buf) - body.pos,
            )
        if sd.post_load is not None:
            sd.post_load(obj, sub_version)
    if r.pos != len(r.buf):
        raise r.error(
            f"section {desc.name!r}: {len(r.buf) - r.pos} bytes left over after the fields",
            found=len(r.buf) - r.pos,
        )
    if desc.post_load is not None:
        desc.post_load(obj, version_id)
    return obj


def describe_fields(desc: VMStateDescription[Any], obj: Any, version_id: int) -> dict[str, Any]:
    """The decoded fields (and those of subsections present) as JSON-friendly values."""
    out = _fields_json(desc, obj, version_id)
    for sub in desc.subsections:
        for f in sub.description.fields:
            if hasattr(obj, f.name):
                out[f.name] = f.type.to_json(getattr(obj, f.name))
    return out


def field_names(desc: VMStateDescription[Any]) -> Sequence[str]:
    return [f.name for f in desc.fields]
