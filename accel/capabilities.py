"""Accelerator-neutral capabilities, answered yes / no / unknown (plus a value).

:class:`Capability` is a closed enum: every accelerator answers every member, and
"unknown" is an answer (the backend cannot tell), not a gap. An answer is a
:class:`CapabilityAnswer` — a :class:`Support` plus an integer ``value`` where the
underlying API has one (a vCPU count, a flag word, a frequency) and a short ``source``
saying where the answer came from (``"KVM_CAP_ADJUST_CLOCK"``, ``"software emulation"``).

A :class:`CapabilitySet` is frozen and hashable; it refuses to exist unless every member
is answered. Host-level answers come from :meth:`accel.Accelerator.capabilities`,
VM-level answers from :meth:`accel.VM.capabilities` (a VM may differ from its host).

Example::

    caps = acc.capabilities()
    if caps.supports(Capability.PV_CLOCKSOURCE):
        ...
    caps[Capability.MAX_VCPUS].value      # -> 1024
    caps[Capability.ADJUST_CLOCK].flags   # -> ClockFlags.TSC_STABLE | ...
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import InvalidArgumentError, did_you_mean

__all__ = [
    "Capability",
    "CapabilityAnswer",
    "CapabilitySet",
    "ClockFlags",
    "Support",
]


class Support(enum.Enum):
    """Tri-state answer. ``bool(Support.UNKNOWN)`` raises: decide what unknown means."""

    YES = "yes"
    NO = "no"
    UNKNOWN = "unknown"

    def __bool__(self) -> bool:
        raise TypeError(
            "Support is tri-state; compare with Support.YES or use CapabilitySet.supports()"
        )


class ClockFlags(enum.IntFlag):
    """Flags of an adjustable VM clock (bit values follow the Linux clock-data ABI).

    ``TSC_STABLE``: the clock read is reliable (the host's TSC is stable, so a clock read
    while stopped can be trusted on restore). ``REALTIME``: a clock read also reports the
    host's wall time, so a restore elsewhere can catch up. ``HOST_TSC``: a clock read also
    reports the host TSC it was taken at.
    """

    NONE = 0
    TSC_STABLE = 1 << 1
    REALTIME = 1 << 2
    HOST_TSC = 1 << 3


class Capability(enum.Enum):
    """The closed set of capabilities every accelerator answers.

    The value is the stable name used in JSON output and on the command line. Members
    marked *valued* carry an integer in :attr:`CapabilityAnswer.value` when the answer is
    yes.
    """

    USER_MEMORY = "user-memory"
    """Guest RAM is ordinary host memory that the VMM maps and reads directly."""
    NR_VCPUS = "nr-vcpus"
    """Recommended vCPU count per VM (valued)."""
    MAX_VCPUS = "max-vcpus"
    """Maximum vCPU count per VM (valued)."""
    IRQCHIP = "irqchip"
    """An interrupt controller (PIC/IOAPIC/LAPIC) emulated inside the accelerator."""
    PIT = "pit"
    """An i8254 PIT emulated inside the accelerator."""
    PV_CLOCKSOURCE = "pv-clocksource"
    """A paravirtual clocksource the guest can enable (pvclock); decides kvmclock."""
    PV_CLOCKSOURCE_STABLE = "pv-clocksource-stable"
    """The paravirtual clocksource can advertise itself as stable across vCPUs."""
    ADJUST_CLOCK = "adjust-clock"
    """The VM clock can be read and set (valued: :class:`ClockFlags` word)."""
    CLOCK_CTRL = "clock-ctrl"
    """The guest can be told it was paused, so its watchdogs do not fire on resume."""
    TSC_CONTROL = "tsc-control"
    """The guest TSC frequency can be set per vCPU."""
    TSC_KHZ = "tsc-khz"
    """The guest TSC frequency can be queried (valued where the host reports kHz)."""
    IOEVENTFD = "ioeventfd"
    """Guest writes to a port/MMIO address can signal an eventfd without an exit."""
    IRQFD = "irqfd"
    """An eventfd can inject an interrupt without a vCPU exit."""
    XSAVE = "xsave"
    """Extended processor state (XSAVE area) can be read and written."""
    VM_CAPABILITY_QUERY = "vm-capability-query"
    """Capabilities can be asked of a VM, which may answer differently from its host."""
    INTERRUPT_INJECTION = "interrupt-injection"
    """The VMM can inject an external interrupt or an NMI into a vCPU and ask for an
    interrupt window (:meth:`accel.Vcpu.inject_interrupt`): what an interrupt controller
    modelled outside the accelerator needs."""
    VCPU_STATE = "vcpu-state"
    """A vCPU's state beyond its registers (MSRs, FPU/XSAVE, debug registers, pending
    events, MP state) can be read and written: what a snapshot a real guest survives needs."""

    # Members are singletons compared by identity, so identity hashing is consistent with
    # equality; Enum's own __hash__ is a Python-level call that dominated cached lookups.
    __hash__ = object.__hash__

    @property
    def valued(self) -> bool:
        """True when a yes-answer carries an integer value."""
        return self in _VALUED

    @property
    def description(self) -> str:
        """One line saying what the capability means."""
        return _DESCRIPTIONS[self]

    @classmethod
    def parse(cls, text: str) -> Capability:
        """The member named ``text`` (``"pv-clocksource"`` or ``"PV_CLOCKSOURCE"``)."""
        key = text.strip().lower().replace("_", "-")
        for member in cls:
            if member.value == key:
                return member
        guess = did_you_mean(key, [m.value for m in cls])
        raise InvalidArgumentError(
            f"unknown capability {text!r}",
            hint=f"did you mean {guess!r}?" if guess else "see `accel info --json` for names",
            argument="capability",
            value=text,
        )


_VALUED = frozenset(
    {Capability.NR_VCPUS, Capability.MAX_VCPUS, Capability.ADJUST_CLOCK, Capability.TSC_KHZ}
)

_DESCRIPTIONS = {
    Capability.USER_MEMORY: "guest RAM is host memory mapped by the VMM",
    Capability.NR_VCPUS: "recommended number of vCPUs per VM",
    Capability.MAX_VCPUS: "maximum number of vCPUs per VM",
    Capability.IRQCHIP: "interrupt controller emulated in the accelerator",
    Capability.PIT: "i8254 timer emulated in the accelerator",
    Capability.PV_CLOCKSOURCE: "paravirtual clocksource for the guest (kvmclock)",
    Capability.PV_CLOCKSOURCE_STABLE: "paravirtual clocksource can be marked stable",
    Capability.ADJUST_CLOCK: "VM clock can be read and set (value: clock flags)",
    Capability.CLOCK_CTRL: "guest can be told it was paused",
    Capability.TSC_CONTROL: "guest TSC frequency can be set",
    Capability.TSC_KHZ: "guest TSC frequency can be queried",
    Capability.IOEVENTFD: "guest I/O can signal an eventfd without an exit",
    Capability.IRQFD: "an eventfd can inject an interrupt",
    Capability.XSAVE: "extended processor state can be saved and restored",
    Capability.VM_CAPABILITY_QUERY: "capabilities can be asked per VM",
    Capability.INTERRUPT_INJECTION: "interrupts and NMIs can be injected from outside",
    Capability.VCPU_STATE: "MSRs, FPU, debug registers and events can be saved",
}


@dataclass(frozen=True, slots=True)
class CapabilityAnswer:
    """One answer: ``support``, an optional integer ``value`` and its ``source``."""

    support: Support
    value: int | None = None
    source: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.support, Support):
            raise InvalidArgumentError(
                f"support must be a Support member, not {self.support!r}",
                argument="support",
                value=self.support,
            )
        if self.value is not None and not isinstance(self.value, int):
            raise InvalidArgumentError(
                f"capability value must be an int or None, not {self.value!r}",
                argument="value",
                value=self.value,
            )

    @classmethod
    def yes(cls, value: int | None = None, source: str = "") -> CapabilityAnswer:
        return cls(Support.YES, value, source)

    @classmethod
    def no(cls, source: str = "") -> CapabilityAnswer:
        return cls(Support.NO, None, source)

    @classmethod
    def unknown(cls, source: str = "") -> CapabilityAnswer:
        return cls(Support.UNKNOWN, None, source)

    @classmethod
    def from_bool(cls, flag: bool, value: int | None = None, source: str = "") -> CapabilityAnswer:
        return cls(Support.YES if flag else Support.NO, value if flag else None, source)

    @property
    def is_yes(self) -> bool:
        return self.support is Support.YES

    @property
    def flags(self) -> ClockFlags:
        """The value read as :class:`ClockFlags` (``NONE`` when there is no value)."""
        return ClockFlags(self.value or 0)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"support": self.support.value, "value": self.value}
        if self.source:
            out["source"] = self.source
        return out


class CapabilitySet(Mapping[Capability, CapabilityAnswer]):
    """A frozen, hashable answer for every :class:`Capability` member.

    Construction fails with :class:`~accel.errors.InvalidArgumentError` naming the
    members left unanswered, so an accelerator cannot forget one.
    """

    __slots__ = ("_answers", "_hash")

    def __init__(
        self,
        answers: Mapping[Capability, CapabilityAnswer]
        | Iterable[tuple[Capability, CapabilityAnswer]],
    ) -> None:
        items = dict(answers.items() if isinstance(answers, Mapping) else answers)
        for key, answer in items.items():
            if not isinstance(key, Capability):
                raise InvalidArgumentError(
                    f"{key!r} is not a Capability member", argument="capability", value=key
                )
            if not isinstance(answer, CapabilityAnswer):
                raise InvalidArgumentError(
                    f"answer for {key.value} must be a CapabilityAnswer, not {answer!r}",
                    argument=key.value,
                    value=answer,
                )
        missing = [c.value for c in Capability if c not in items]
        if missing:
            raise InvalidArgumentError(
                "every capability must be answered (unknown is an answer); missing: "
                + ", ".join(missing),
                hint="answer each with CapabilityAnswer.yes/no/unknown",
                argument="answers",
                value=missing,
            )
        self._answers: dict[Capability, CapabilityAnswer] = {c: items[c] for c in Capability}
        self._hash: int | None = None

    def __getitem__(self, key: Capability) -> CapabilityAnswer:
        return self._answers[key]

    def __iter__(self) -> Iterator[Capability]:
        return iter(self._answers)

    def __len__(self) -> int:
        return len(self._answers)

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(tuple(self._answers.items()))
        return self._hash

    def __eq__(self, other: object) -> bool:
        if isinstance(other, CapabilitySet):
            return self._answers == other._answers
        return NotImplemented

    def __repr__(self) -> str:
        inner = ", ".join(f"{c.value}={a.support.value}" for c, a in self._answers.items())
        return f"CapabilitySet({inner})"

    def support(self, cap: Capability) -> Support:
        return self._answers[cap].support

    def supports(self, cap: Capability) -> bool:
        """True only for an explicit yes (unknown counts as not supported)."""
        return self._answers[cap].support is Support.YES

    def value(self, cap: Capability) -> int | None:
        return self._answers[cap].value

    def replace(self, **changes: CapabilityAnswer) -> CapabilitySet:
        """A copy with some answers replaced, keyed by member name (``PV_CLOCKSOURCE=...``)."""
        items = dict(self._answers)
        for name, answer in changes.items():
            try:
                cap = Capability[name]
            except KeyError:
                cap = Capability.parse(name)  # raises InvalidArgumentError with a suggestion
            items[cap] = answer
        return CapabilitySet(items)

    def to_json(self) -> dict[str, dict[str, Any]]:
        return {c.value: a.to_json() for c, a in self._answers.items()}
