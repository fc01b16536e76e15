"""Enumerations for modules on the start-up path, without importing :mod:`enum`.

``accel run`` has a start-up budget (docs/performance.md). :mod:`enum` imports
:mod:`functools` and :mod:`collections` and builds its classes through a large metaclass;
together that is a tenth of QEMU's whole run of a tiny guest. The classes here behave like
the standard ones for what accel uses (members by attribute, by name with ``Cls[name]``,
by value with ``Cls(value)``, iteration in definition order, aliases, ``name``/``value``,
``repr``/``str`` as Python 3.11 prints them, and for :class:`IntFlag` the bitwise operators,
``in`` and composite values), and a type checker sees the standard :class:`enum.Enum` and
:class:`enum.IntFlag`, so exhaustiveness checks and member types work as usual.

    class Support(Enum):
        YES = "yes"
        NO = "no"
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from enum import Enum as Enum
    from enum import IntFlag as IntFlag
else:

    def _is_member(key, value):
        if key.startswith("_") or isinstance(value, type):
            return False
        kind = type(value)
        return not (
            hasattr(kind, "__get__") or hasattr(kind, "__set__") or hasattr(kind, "__delete__")
        )

    class _EnumType(type):
        """Metaclass: turns the plain class attributes of the body into members."""

        def __new__(mcs, name, bases, ns, **kwargs):
            for base in bases:
                if getattr(base, "_member_map_", None):
                    raise TypeError(f"{name}: cannot extend enumeration {base.__name__!r}")
            members = []
            body = {}
            for key, value in ns.items():
                kind = value.__class__
                plain = (kind is str or kind is int) and not key.startswith("_")
                if plain or _is_member(key, value):
                    members.append((key, value))
                else:
                    body[key] = value
            member_map = body["_member_map_"] = {}
            value_map = body["_value2member_map_"] = {}
            canonical = body["_member_list_"] = []
            cls = type.__new__(mcs, name, bases, body, **kwargs)
            flag = issubclass(cls, int)
            setattr_ = type.__setattr__
            for key, value in members:
                existing = value_map.get(value)
                if existing is not None:
                    member_map[key] = existing  # an alias, as in the standard enum
                    setattr_(cls, key, existing)
                    continue
                member = int.__new__(cls, value) if flag else object.__new__(cls)
                member._name_ = key
                member._value_ = value
                member_map[key] = member
                value_map[value] = member
                setattr_(cls, key, member)
                # Iteration skips aliases; a flag class lists only its single-bit members.
                if not flag or (value and not value & (value - 1)):
                    canonical.append(member)
            return cls

        def __call__(cls, value):
            try:
                return cls._value2member_map_[value]
            except (KeyError, TypeError):
                pass
            if isinstance(value, cls):
                return value
            missing = cls._missing_(value)
            if missing is None:
                raise ValueError(f"{value!r} is not a valid {cls.__qualname__}")
            return missing

        def __iter__(cls):
            return iter(cls._member_list_)

        def __reversed__(cls):
            return reversed(cls._member_list_)

        def __len__(cls):
            return len(cls._member_list_)

        def __contains__(cls, value):
            return isinstance(value, cls)

        def __getitem__(cls, name):
            return cls._member_map_[name]

        def __bool__(cls):
            return True

        @property
        def __members__(cls):
            return dict(cls._member_map_)

        def __setattr__(cls, name, value):
            if name in cls.__dict__.get("_member_map_", ()):
                raise AttributeError(f"cannot reassign member {name!r}")
            super().__setattr__(name, value)

        def __delattr__(cls, name):
            if name in cls.__dict__.get("_member_map_", ()):
                raise AttributeError(f"cannot delete member {name!r}")
            super().__delattr__(name)

    class Enum(metaclass=_EnumType):
        """Base of an enumeration (``enum.Enum`` to a type checker)."""

        _member_map_ = {}  # noqa: RUF012 - replaced per class by the metaclass

        @classmethod
        def _missing_(cls, value):
            return None

        @property
        def name(self):
            return self._name_

        @property
        def value(self):
            return self._value_

        def __repr__(self):
            return f"<{type(self).__name__}.{self._name_}: {self._value_!r}>"

        def __str__(self):
            return f"{type(self).__name__}.{self._name_}"

        def __format__(self, spec):
            return format(str(self), spec)

        def __hash__(self):
            return hash(self._name_)

        def __copy__(self):
            return self

        def __deepcopy__(self, memo):
            return self

        def __reduce_ex__(self, protocol):
            return (type(self), (self._value_,))

    class IntFlag(int, metaclass=_EnumType):
        """Base of an integer bit-flag set (``enum.IntFlag`` to a type checker)."""

        _member_map_ = {}  # noqa: RUF012 - replaced per class by the metaclass

        @classmethod
        def _missing_(cls, value):
            if not isinstance(value, int):
                return None
            names = [m._name_ for m in cls._member_list_ if value & m._value_ == m._value_]
            known = 0
            for m in cls._member_list_:
                known |= m._value_
            pseudo = int.__new__(cls, value)
            pseudo._name_ = "|".join(names) if names and not value & ~known else None
            pseudo._value_ = value
            cls._value2member_map_[value] = pseudo
            return pseudo

        @property
        def name(self):
            return self._name_

        @property
        def value(self):
            return self._value_

        def __repr__(self):
            if self._name_ is None:
                return f"<{type(self).__name__}: {self._value_!r}>"
            return f"<{type(self).__name__}.{self._name_}: {self._value_!r}>"

        __str__ = int.__repr__
        __format__ = int.__format__
        __hash__ = int.__hash__

        def __contains__(self, other):
            if not isinstance(other, type(self)):
                raise TypeError(
                    f"unsupported operand type(s) for 'in': {type(other).__qualname__!r} "
                    f"and {type(self).__qualname__!r}"
                )
            return other._value_ & self._value_ == other._value_

        def __iter__(self):
            return iter([m for m in type(self)._member_list_ if m._value_ & self._value_])

        def __len__(self):
            return bin(self._value_).count("1")

        def __or__(self, other):
            if not isinstance(other, int):
                return NotImplemented
            return type(self)(int(self) | int(other))

        def __and__(self, other):
            if not isinstance(other, int):
                return NotImplemented
            return type(self)(int(self) & int(other))

        def __xor__(self, other):
            if not isinstance(other, int):
                return NotImplemented
            return type(self)(int(self) ^ int(other))

        __ror__ = __or__
        __rand__ = __and__
        __rxor__ = __xor__

        def __invert__(self):
            return type(self)(~int(self))

        def __copy__(self):
            return self

        def __deepcopy__(self, memo):
            return self

        def __reduce_ex__(self, protocol):
            return (type(self), (self._value_,))


__all__ = ["Enum", "IntFlag"]
