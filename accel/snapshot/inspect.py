"""Read a snapshot's header and sections without restoring it (``accel snapshot inspect``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import IO, Any

from ..errors import SnapshotError
from .cpu import CPU_SECTIONS, PLATFORM_SECTIONS, summary
from .format import Header, Scan, scan
from .machine import DEVICE_STATES, MACHINE, device_summary
from .state import CLOCK, CPU_REGS, CPU_SREGS, VM_LAYOUT
from .vmstate import VMStateDescription, decode, describe_fields

__all__ = ["SectionInfo", "SnapshotInfo", "inspect"]


def _known() -> Mapping[str, VMStateDescription[Any]]:
    known: dict[str, VMStateDescription[Any]] = {
        d.name: d for d in (VM_LAYOUT, CPU_REGS, CPU_SREGS, CLOCK, MACHINE)
    }
    known.update(CPU_SECTIONS)
    known.update(PLATFORM_SECTIONS)
    for name, codec in DEVICE_STATES.items():
        known[name] = codec.description
        if codec.bulk_description is not None:
            known[codec.bulk_description.name] = codec.bulk_description
    return known


@dataclass
class SectionInfo:
    """One state section as :func:`inspect` found it."""

    name: str
    instance: int
    version_id: int
    length: int
    offset: int
    fields: dict[str, Any] | None = None
    note: str = ""
    summary: str = ""
    """One line about the state (the vCPU-state and chip sections)."""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "instance": self.instance,
            "version_id": self.version_id,
            "length": self.length,
            "offset": self.offset,
        }
        if self.fields is not None:
            out["fields"] = self.fields
        if self.note:
            out["note"] = self.note
        if self.summary:
            out["summary"] = self.summary
        return out


@dataclass
class RamInfo:
    """RAM totals of one region as :func:`inspect` found them."""

    region: int
    chunks: int = 0
    zero_chunks: int = 0
    bytes: int = 0
    stored_bytes: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "region": self.region,
            "chunks": self.chunks,
            "zero_chunks": self.zero_chunks,
            "bytes": self.bytes,
            "stored_bytes": self.stored_bytes,
        }


@dataclass
class SnapshotInfo:
    """The header, every state section (decoded where this accel knows it), RAM totals."""

    header: Header
    size: int
    sections: list[SectionInfo] = field(default_factory=list)
    ram: list[RamInfo] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "header": self.header.to_json(),
            "size": self.size,
            "sections": [s.to_json() for s in self.sections],
            "ram": [r.to_json() for r in self.ram],
        }


def inspect(stream: IO[bytes]) -> SnapshotInfo:
    """Check the whole stream (structure, bounds, CRCs) and describe it.

    Sections this accel does not know (a machine's devices) are listed without fields;
    a known section that does not decode here (a newer version) carries a ``note``.
    """
    result: Scan = scan(stream)
    info = SnapshotInfo(result.header, result.size)
    known = _known()
    for sec in result.sections:
        entry = SectionInfo(sec.name, sec.instance, sec.version_id, sec.length, sec.offset)
        desc = known.get(sec.name)
        if desc is not None:
            try:
                obj = decode(desc, sec.payload, sec.version_id, instance=sec.instance)
                entry.fields = describe_fields(desc, obj, sec.version_id)
                entry.summary = summary(sec.name, obj) or device_summary(obj)
            except SnapshotError as exc:
                entry.note = exc.message
        info.sections.append(entry)
    by_region: dict[int, RamInfo] = {}
    for c in result.ram:
        r = by_region.setdefault(c.region, RamInfo(c.region))
        r.chunks += 1
        r.bytes += c.length
        if c.zero:
            r.zero_chunks += 1
        r.stored_bytes += c.stored
    info.ram = [by_region[k] for k in sorted(by_region)]
    return info
