"""Helpers to take a snapshot apart into records and put it together again (with valid
checksums), so tests can build well-framed streams that are wrong in deeper ways."""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass

from accel.snapshot.format import MAGIC, Header, SnapshotWriter


@dataclass
class Record:
    name: str
    instance: int
    version_id: int
    payload: bytes


def split(data: bytes) -> tuple[bytes, list[Record]]:
    """(header bytes incl. magic and CRC, section records) of a valid snapshot."""
    assert data.startswith(MAGIC)
    pos = len(MAGIC)
    _, hlen = struct.unpack_from("<HH", data, pos)
    pos += 4 + hlen + 4
    header = data[:pos]
    records = []
    while data[pos] == 0x53:
        n = data[pos + 1]
        name = data[pos + 2 : pos + 2 + n].decode()
        pos += 2 + n
        instance, version, length, _crc = struct.unpack_from("<IIII", data, pos)
        pos += 16
        records.append(Record(name, instance, version, data[pos : pos + length]))
        pos += length
    return header, records


def join(
    records: list[Record], header: Header | None = None, end_count: int | None = None
) -> bytes:
    out = io.BytesIO()
    w = SnapshotWriter(out, header or Header(accelerator="fake", machine_type="test-1.0"))
    for r in records:
        w.section(r.name, r.instance, r.version_id, r.payload)
    if end_count is not None:
        w.sections = end_count
    w.finish()
    return out.getvalue()


def rebuild(data: bytes, records: list[Record]) -> bytes:
    """``data``'s header with ``records`` (checksums recomputed)."""
    return split(data)[0] + sections_and_end(records)


def sections_and_end(records: list[Record], end_count: int | None = None) -> bytes:
    full = join(records, end_count=end_count)
    return full[len(split(full)[0]) :]
