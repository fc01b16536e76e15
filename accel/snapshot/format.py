"""The snapshot byte format: a header, framed and checksummed sections, an end record.

Everything is little-endian; nothing in a stream is executable (no pickle, no code, no
JSON of objects): a reader only ever turns bytes into integers, booleans and byte strings,
with every length checked against a fixed bound *before* anything is allocated for it.

::

    file    := MAGIC header section* end
    MAGIC   := b"ACCELSNP\\r\\n\\x1a\\n"                           (12 bytes)
    header  := u16 format_version, u16 length (<= 4096), body, u32 crc32
               body = the HEADER description's fields: format name, accelerator,
               machine type, CPU model, created (ns since the epoch)
    section := u8 'S', u8 name length (1..64), name, u32 instance, u32 version_id,
               u32 length (<= MAX_SECTION_LENGTH), u32 crc32, payload
    end     := u8 'E', u32 number of sections, u32 crc32

A section's CRC32 covers its framing (tag to length) and its payload; the header's covers
its version, length and body; the end record's its tag and count, so a stream cut at a
section boundary is still detected as truncated.

Guest RAM is written as sections named ``"ram"`` (instance = RAM region index) holding
one chunk each: ``u64 offset in the region, u32 length (<= RAM_CHUNK), u8 kind`` then,
for kind 0 (data), the bytes; kind 1 (zero) carries no bytes. Writing streams each chunk
straight from the region's memoryview; reading (:func:`scan`) checks every chunk's CRC
through one reusable buffer of ``RAM_CHUNK`` bytes and records where its bytes are, so a
restore can copy them straight into guest memory afterwards (:func:`read_chunk_into`).
"""

from __future__ import annotations

import io
import struct
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from ..errors import (
    SnapshotChecksumError,
    SnapshotError,
    SnapshotFormatError,
    SnapshotTruncatedError,
    SnapshotVersionError,
)
from .vmstate import U64, Field, Str, VMStateDescription, decode, encode

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MAGIC",
    "MAX_SECTION_LENGTH",
    "RAM_CHUNK",
    "RAM_SECTION",
    "Header",
    "RamChunk",
    "Scan",
    "SectionRecord",
    "SnapshotWriter",
    "read_chunk_into",
    "scan",
]

MAGIC = b"ACCELSNP\r\n\x1a\n"
FORMAT_NAME = "accel-snapshot"
FORMAT_VERSION = 1
#: Largest RAM chunk (bytes of guest memory per "ram" section).
RAM_CHUNK = 1 << 20
#: Largest payload of any one section (a RAM chunk plus its 13-byte prefix fits).
MAX_SECTION_LENGTH = RAM_CHUNK + 64
#: Largest header body.
MAX_HEADER_LENGTH = 4096
#: Bounds on what a reader keeps in memory for the state (non-RAM) sections.
MAX_STATE_SECTIONS = 4096
MAX_STATE_BYTES = 64 << 20
#: Bound on the number of RAM chunks (4 TiB of guest RAM at 1 MiB a chunk).
MAX_RAM_CHUNKS = 1 << 22
RAM_SECTION = "ram"
RAM_VERSION = 1

_NAME_MAX = 64
_TAG_SECTION = 0x53  # 'S'
_TAG_END = 0x45  # 'E'
_HDR_PREFIX = struct.Struct("<HH")
_U32 = struct.Struct("<I")
_SEC_TAIL = struct.Struct("<IIII")  # instance, version_id, length, crc32
_END = struct.Struct("<BI")
_RAM_PREFIX = struct.Struct("<QIB")
RAM_DATA, RAM_ZERO, RAM_PAGES = 0, 1, 2
PAGE = 4096


def _bitmap_len(n: int) -> int:
    return ((n + PAGE - 1) // PAGE + 7) // 8


def _stored(bitmap: bytes, n: int) -> int | None:
    """Bytes of the pages ``bitmap`` marks in a chunk of ``n``; None if it marks more."""
    pages = (n + PAGE - 1) // PAGE
    total = 0
    for i in range(len(bitmap) * 8):
        if bitmap[i >> 3] >> (i & 7) & 1:
            if i >= pages:
                return None
            total += min(PAGE, n - i * PAGE)
    return total


@dataclass
class Header:
    """What a snapshot says about itself before any section."""

    format_name: str = FORMAT_NAME
    accelerator: str = ""
    machine_type: str = ""
    cpu_model: str = ""
    created_ns: int = 0
    format_version: int = FORMAT_VERSION

    def to_json(self) -> dict[str, Any]:
        return {
            "format": self.format_name,
            "format_version": self.format_version,
            "accelerator": self.accelerator,
            "machine_type": self.machine_type,
            "cpu_model": self.cpu_model,
            "created_ns": self.created_ns,
        }


HEADER: VMStateDescription[Header] = VMStateDescription(
    "header",
    version_id=FORMAT_VERSION,
    minimum_version_id=FORMAT_VERSION,
    factory=Header,
    fields=(
        Field("format_name", Str(64)),
        Field("accelerator", Str(64)),
        Field("machine_type", Str(128)),
        Field("cpu_model", Str(255)),
        Field("created_ns", U64),
    ),
)


def _check_name(name: str) -> bytes:
    raw = name.encode()
    if not 0 < len(raw) <= _NAME_MAX or not name.isascii() or not name.isprintable():
        raise SnapshotError(f"section name {name!r} must be 1..{_NAME_MAX} printable ASCII bytes")
    return raw


# --------------------------------------------------------------------------- writing


def _nonzero_pages(part: memoryview, zero: bytes) -> tuple[bytes | None, list[memoryview]]:
    """(bitmap, non-zero pages) of a chunk that has some all-zero pages, else (None, [])."""
    n = len(part)
    npages = (n + PAGE - 1) // PAGE
    if npages < 2:
        return None, []
    bitmap = bytearray(_bitmap_len(n))
    pages = []
    for i in range(npages):
        page = part[i * PAGE : (i + 1) * PAGE]
        k = len(page)
        if page[0] == 0 and page[k - 1] == 0 and bytes(page) == zero[:k]:
            continue
        bitmap[i >> 3] |= 1 << (i & 7)
        pages.append(page)
    if len(pages) == npages:
        return None, []
    return bytes(bitmap), pages


class SnapshotWriter:
    """Writes a snapshot to a binary stream, section by section.

    Only ``write()`` is needed of the stream (a pipe will do). ``bytes_written`` counts
    what was written so far. Call :meth:`finish` last; a stream without its end record
    is refused by readers as truncated.
    """

    def __init__(self, stream: IO[bytes], header: Header) -> None:
        self._stream = stream
        self.bytes_written = 0
        self.sections = 0
        self._finished = False
        if not header.created_ns:
            header.created_ns = time.time_ns()
        body = encode(HEADER, header)
        if len(body) > MAX_HEADER_LENGTH:
            raise SnapshotError("snapshot header too long")
        prefix = _HDR_PREFIX.pack(FORMAT_VERSION, len(body))
        crc = zlib.crc32(body, zlib.crc32(prefix))
        self._write(MAGIC + prefix + body + _U32.pack(crc))

    def _write(self, data: bytes | memoryview) -> None:
        try:
            n = self._stream.write(data)
            if n is not None and n != len(data):  # a raw stream may write less
                view = memoryview(data)[n:]
                while len(view):
                    k = self._stream.write(view) or 0
                    view = view[k:]
        except OSError as exc:
            raise SnapshotError(
                f"writing the snapshot failed after {self.bytes_written} bytes: "
                f"{exc.strerror or exc}",
                offset=self.bytes_written,
                errno=exc.errno,
                hint="check the free space and permissions of the destination",
            ) from exc
        self.bytes_written += len(data)

    def section(self, name: str, instance: int, version_id: int, payload: bytes) -> None:
        """One state section (payload at most :data:`MAX_SECTION_LENGTH` bytes)."""
        if len(payload) > MAX_SECTION_LENGTH:
            raise SnapshotError(
                f"section {name!r} is {len(payload)} bytes, over the bound {MAX_SECTION_LENGTH}",
                section=name,
                instance=instance,
            )
        self._frame(name, instance, version_id, payload, b"")

    def _frame(
        self,
        name: str,
        instance: int,
        version_id: int,
        prefix: bytes,
        data: bytes | memoryview,
    ) -> None:
        raw = _check_name(name)
        length = len(prefix) + len(data)
        head = (
            bytes((_TAG_SECTION, len(raw)))
            + raw
            + struct.pack("<III", instance, version_id, length)
        )
        crc = zlib.crc32(data, zlib.crc32(prefix, zlib.crc32(head)))
        self._write(head + _U32.pack(crc) + prefix)
        if len(data):
            self._write(data)
        self.sections += 1

    def ram(self, region_index: int, view: memoryview, chunk: int = RAM_CHUNK) -> None:
        """Guest RAM of one region, in chunks of ``chunk`` bytes, straight from ``view``.

        All-zero chunks are written without their bytes.
        """
        if not 0 < chunk <= RAM_CHUNK:
            raise SnapshotError(f"RAM chunk size must be 1..{RAM_CHUNK}")
        zero = bytes(chunk)
        size = len(view)
        for off in range(0, size, chunk):
            part = view[off : off + chunk]
            n = len(part)
            # Cheap ends first; then one bounded copy compared with memcmp (comparing
            # memoryviews directly goes element by element and is 100x slower).
            if part[0] == 0 and part[n - 1] == 0 and bytes(part) == zero[:n]:
                self._frame(
                    RAM_SECTION, region_index, RAM_VERSION, _RAM_PREFIX.pack(off, n, RAM_ZERO), b""
                )
                continue
            bitmap, pages = _nonzero_pages(part, zero)
            if bitmap is not None:
                self._frame(
                    RAM_SECTION,
                    region_index,
                    RAM_VERSION,
                    _RAM_PREFIX.pack(off, n, RAM_PAGES) + bitmap,
                    b"".join(pages),  # bounded: at most one chunk
                )
            else:
                self._frame(
                    RAM_SECTION, region_index, RAM_VERSION, _RAM_PREFIX.pack(off, n, RAM_DATA), part
                )

    def finish(self) -> None:
        """Write the end record (once)."""
        if self._finished:
            return
        end = _END.pack(_TAG_END, self.sections)
        self._write(end + _U32.pack(zlib.crc32(end)))
        self._finished = True
        flush = getattr(self._stream, "flush", None)
        if flush is not None:
            flush()


# --------------------------------------------------------------------------- reading


@dataclass
class SectionRecord:
    """A state section found by :func:`scan`: its framing and (checked) payload."""

    name: str
    instance: int
    version_id: int
    length: int
    offset: int  # stream offset of the section's tag
    payload: bytes = b""


@dataclass(slots=True)
class RamChunk:
    """A RAM chunk found by :func:`scan`; ``data_pos`` is where its bytes start."""

    region: int
    offset: int
    length: int
    zero: bool
    data_pos: int
    crc_prefix: int
    crc: int
    section_offset: int
    #: For a chunk of pages (kind 2): bit i set = page i is stored; else empty.
    pages: bytes = b""
    #: Bytes of guest data the chunk stores (0 for an all-zero chunk).
    stored: int = 0


@dataclass
class Scan:
    """Everything :func:`scan` learnt: the header, state sections, RAM chunks, size."""

    header: Header
    sections: list[SectionRecord] = field(default_factory=list)
    ram: list[RamChunk] = field(default_factory=list)
    size: int = 0
    #: Stream position the snapshot started at (offsets in the records are relative).
    base: int = 0

    def ram_bytes(self) -> int:
        return sum(c.length for c in self.ram)


class _Input:
    """Exact reads with a position; running out is :class:`SnapshotTruncatedError`.

    With ``spool`` set, every byte read is also written there (used to turn a pipe into
    a seekable file during the first pass).
    """

    def __init__(self, stream: IO[bytes], spool: IO[bytes] | None = None) -> None:
        self.stream = stream
        self.spool = spool
        self.pos = 0

    def _short(self, want: int, got: int, what: str) -> SnapshotTruncatedError:
        return SnapshotTruncatedError(
            f"snapshot truncated at byte {self.pos + got}: {what} needs {want} bytes, "
            f"the stream has {got}",
            offset=self.pos + got,
            expected=want,
            found=got,
        )

    def read(self, n: int, what: str) -> bytes:
        chunks = []
        got = 0
        while got < n:
            try:
                part = self.stream.read(n - got)
            except OSError as exc:
                raise SnapshotError(f"reading the snapshot failed: {exc}", offset=self.pos) from exc
            if not part:
                raise self._short(n, got, what)
            chunks.append(part)
            got += len(part)
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        if self.spool is not None:
            self._spool_write(data)
        self.pos += n
        return data

    def readinto(self, view: memoryview, what: str) -> None:
        n = len(view)
        got = 0
        readinto = getattr(self.stream, "readinto", None)
        while got < n:
            try:
                if readinto is not None:
                    k = readinto(view[got:])
                else:  # a stream with read() only
                    part = self.stream.read(n - got)
                    k = len(part)
                    view[got : got + k] = part
            except OSError as exc:
                raise SnapshotError(f"reading the snapshot failed: {exc}", offset=self.pos) from exc
            if not k:
                raise self._short(n, got, what)
            got += k
        if self.spool is not None:
            self._spool_write(view)
        self.pos += n

    def _spool_write(self, data: bytes | memoryview) -> None:
        assert self.spool is not None
        try:
            self.spool.write(data)
        except OSError as exc:
            raise SnapshotError(
                f"cannot copy the snapshot stream to a temporary file: {exc.strerror or exc}",
                hint="set TMPDIR to a directory with room for the snapshot",
                offset=self.pos,
            ) from exc

    def at_eof(self) -> bool:
        try:
            extra = self.stream.read(1)
        except OSError:
            return True
        return not extra


def read_stream_header(stream: IO[bytes]) -> Header:
    """The header of the snapshot ``stream`` (checked: magic, version, length, CRC),
    read from where the stream stands; the rest of the stream is not read."""
    return read_header(_Input(stream))


def read_header(inp: _Input) -> Header:
    """The header, checked: magic, format version, bounded length, CRC."""
    magic = inp.read(len(MAGIC), "the magic")
    if magic != MAGIC:
        raise SnapshotFormatError(
            "not an accel snapshot (bad magic)",
            section="header",
            offset=0,
            expected=MAGIC.hex(),
            found=magic.hex(),
        )
    prefix = inp.read(_HDR_PREFIX.size, "the header")
    version, length = _HDR_PREFIX.unpack(prefix)
    if version != FORMAT_VERSION:
        raise SnapshotVersionError(
            f"snapshot format version {version}; this accel reads version {FORMAT_VERSION}",
            section="header",
            offset=len(MAGIC),
            expected=f"{FORMAT_VERSION}..{FORMAT_VERSION}",
            found=version,
        )
    if length > MAX_HEADER_LENGTH:
        raise SnapshotFormatError(
            f"snapshot header claims {length} bytes, over the bound {MAX_HEADER_LENGTH}",
            section="header",
            offset=len(MAGIC),
            expected=MAX_HEADER_LENGTH,
            found=length,
        )
    body = inp.read(length, "the header")
    (crc,) = _U32.unpack(inp.read(4, "the header checksum"))
    actual = zlib.crc32(body, zlib.crc32(prefix))
    if crc != actual:
        raise SnapshotChecksumError(
            f"snapshot header checksum mismatch (stored {crc:#010x}, computed {actual:#010x})",
            section="header",
            offset=len(MAGIC),
            expected=crc,
            found=actual,
        )
    header = decode(HEADER, body, FORMAT_VERSION)
    if header.format_name != FORMAT_NAME:
        raise SnapshotFormatError(
            f"snapshot format {header.format_name!r} is not {FORMAT_NAME!r}",
            section="header",
            expected=FORMAT_NAME,
            found=header.format_name,
        )
    return header


def scan(stream: IO[bytes], *, spool: IO[bytes] | None = None) -> Scan:
    """Read a whole snapshot once and check its structure and every checksum.

    State-section payloads are kept (bounded in number and size); RAM chunk bytes are
    checked through one reusable buffer and only their positions kept. Applies nothing.
    Raises only :class:`~accel.errors.SnapshotError` subclasses.
    """
    base = 0
    if spool is None and is_seekable(stream):
        base = stream.tell()
    inp = _Input(stream, spool)
    result = Scan(read_header(inp), base=base)
    buf = bytearray(MAX_SECTION_LENGTH)
    state_bytes = 0
    count = 0
    while True:
        start = inp.pos
        (tag,) = inp.read(1, "a section tag")
        if tag == _TAG_END:
            rest = inp.read(4 + 4, "the end record")
            (n, crc) = struct.unpack("<II", rest)
            actual = zlib.crc32(bytes((tag,)) + rest[:4])
            if crc != actual:
                raise SnapshotChecksumError(
                    "end record checksum mismatch",
                    section="end",
                    offset=start,
                    expected=crc,
                    found=actual,
                )
            if n != count:
                raise SnapshotFormatError(
                    f"end record counts {n} sections, the stream has {count}",
                    section="end",
                    offset=start,
                    expected=n,
                    found=count,
                )
            if not inp.at_eof():
                raise SnapshotFormatError(
                    f"bytes after the end of the snapshot (at {inp.pos})", offset=inp.pos
                )
            result.size = inp.pos
            return result
        if tag != _TAG_SECTION:
            raise SnapshotFormatError(
                f"bad section tag {tag:#04x} at byte {start}",
                offset=start,
                expected=_TAG_SECTION,
                found=tag,
            )
        (name_len,) = inp.read(1, "a section name length")
        if not 0 < name_len <= _NAME_MAX:
            raise SnapshotFormatError(
                f"section name length {name_len} at byte {start} is not 1..{_NAME_MAX}",
                offset=start,
                found=name_len,
            )
        raw = inp.read(name_len, "a section name")
        tail = inp.read(12, "a section header")
        instance, version_id, length = struct.unpack("<III", tail)
        name = raw.decode("ascii", "replace")
        if length > MAX_SECTION_LENGTH:
            raise SnapshotFormatError(
                f"section {name!r} instance {instance} claims {length} bytes, over the bound "
                f"{MAX_SECTION_LENGTH}",
                section=name,
                instance=instance,
                offset=start,
                expected=MAX_SECTION_LENGTH,
                found=length,
            )
        (crc,) = _U32.unpack(inp.read(4, "a section checksum"))
        head_crc = zlib.crc32(tail, zlib.crc32(bytes((tag, name_len)) + raw))
        count += 1
        if name == RAM_SECTION:
            if len(result.ram) >= MAX_RAM_CHUNKS:
                raise SnapshotFormatError(
                    f"more than {MAX_RAM_CHUNKS} RAM chunks", section=name, offset=start
                )
            if length < _RAM_PREFIX.size:
                raise SnapshotFormatError(
                    f"RAM chunk at byte {start} is {length} bytes, shorter than its prefix",
                    section=name,
                    instance=instance,
                    offset=start,
                    found=length,
                )
            prefix = inp.read(_RAM_PREFIX.size, "a RAM chunk")
            offset, n, kind = _RAM_PREFIX.unpack(prefix)
            crc_prefix = zlib.crc32(prefix, head_crc)
            data_len = length - _RAM_PREFIX.size
            problem = None
            bitmap = b""
            if kind not in (RAM_DATA, RAM_ZERO, RAM_PAGES):
                problem = f"unknown RAM chunk kind {kind}"
            elif n > RAM_CHUNK or n == 0:
                problem = f"RAM chunk length {n} is not 1..{RAM_CHUNK}"
            elif kind == RAM_PAGES:
                blen = _bitmap_len(n)
                if data_len < blen:
                    problem = f"RAM chunk of {n} bytes framed in {data_len} bytes"
                else:
                    bitmap = inp.read(blen, "a RAM page bitmap")
                    crc_prefix = zlib.crc32(bitmap, crc_prefix)
                    data_len -= blen
                    stored = _stored(bitmap, n)
                    if stored is None:
                        problem = "RAM page bitmap marks pages beyond the chunk"
                    elif data_len != stored:
                        problem = f"RAM chunk stores {stored} bytes of pages, framed in {data_len}"
            elif data_len != (n if kind == RAM_DATA else 0):
                problem = f"RAM chunk of {n} bytes framed in {data_len} bytes"
            if problem is not None:
                # Finish reading the framed bytes first so a checksum error wins over
                # a structural one when both apply (a bit flip is the likelier cause).
                view = memoryview(buf)[:data_len]
                inp.readinto(view, "a RAM chunk")
                if zlib.crc32(view, crc_prefix) != crc:
                    raise _crc_error(name, instance, start, crc, zlib.crc32(view, crc_prefix))
                raise SnapshotFormatError(
                    f"section 'ram' instance {instance}: {problem}",
                    section=name,
                    instance=instance,
                    offset=start,
                )
            data_pos = inp.pos
            view = memoryview(buf)[:data_len]
            inp.readinto(view, f"RAM chunk at {offset:#x} of region {instance}")
            actual = zlib.crc32(view, crc_prefix)
            if actual != crc:
                raise _crc_error(name, instance, start, crc, actual)
            if version_id != RAM_VERSION:
                raise SnapshotVersionError(
                    f"section 'ram' has version {version_id}; this accel reads version "
                    f"{RAM_VERSION}",
                    section=name,
                    instance=instance,
                    offset=start,
                    expected=f"{RAM_VERSION}..{RAM_VERSION}",
                    found=version_id,
                )
            result.ram.append(
                RamChunk(
                    instance,
                    offset,
                    n,
                    kind == RAM_ZERO,
                    data_pos,
                    crc_prefix,
                    crc,
                    start,
                    bitmap,
                    data_len,
                )
            )
            continue
        if len(result.sections) >= MAX_STATE_SECTIONS or state_bytes + length > MAX_STATE_BYTES:
            raise SnapshotFormatError(
                f"more than {MAX_STATE_SECTIONS} state sections or {MAX_STATE_BYTES} bytes of "
                "state",
                section=name,
                offset=start,
            )
        payload = inp.read(length, f"section {name!r}")
        actual = zlib.crc32(payload, head_crc)
        if actual != crc:
            raise _crc_error(name, instance, start, crc, actual)
        state_bytes += length
        result.sections.append(SectionRecord(name, instance, version_id, length, start, payload))


def _crc_error(name: str, instance: int, offset: int, crc: int, actual: int) -> SnapshotError:
    return SnapshotChecksumError(
        f"section {name!r} instance {instance} at byte {offset}: checksum mismatch "
        f"(stored {crc:#010x}, computed {actual:#010x})",
        section=name,
        instance=instance,
        offset=offset,
        expected=crc,
        found=actual,
    )


def read_chunk_into(stream: IO[bytes], chunk: RamChunk, target: memoryview, base: int = 0) -> None:
    """Second pass: copy a scanned chunk's bytes straight into ``target`` (its length).

    The bytes are checked against the CRC again; a mismatch means the stream changed
    between the passes (:class:`~accel.errors.SnapshotChecksumError`).
    """
    stream.seek(base + chunk.data_pos)
    inp = _Input(stream)
    inp.pos = chunk.data_pos
    inp.readinto(target, f"RAM chunk at {chunk.offset:#x} of region {chunk.region}")
    actual = zlib.crc32(target, chunk.crc_prefix)
    if actual != chunk.crc:
        raise SnapshotChecksumError(
            f"RAM chunk at {chunk.offset:#x} of region {chunk.region} changed while the "
            "snapshot was being restored",
            section=RAM_SECTION,
            instance=chunk.region,
            offset=chunk.section_offset,
            expected=chunk.crc,
            found=actual,
        )


def read_pages_into(
    stream: IO[bytes], chunk: RamChunk, target: memoryview, base: int = 0, *, zero_rest: bool
) -> None:
    """Second pass for a chunk of pages: copy each stored page straight into ``target``
    (the chunk's guest memory); with ``zero_rest`` also clear the pages not stored."""
    stream.seek(base + chunk.data_pos)
    inp = _Input(stream)
    inp.pos = chunk.data_pos
    crc = chunk.crc_prefix
    n = len(target)
    zero = bytes(PAGE)
    for i in range((n + PAGE - 1) // PAGE):
        page = target[i * PAGE : (i + 1) * PAGE]
        if chunk.pages[i >> 3] >> (i & 7) & 1:
            inp.readinto(page, f"RAM page at {chunk.offset + i * PAGE:#x} of region {chunk.region}")
            crc = zlib.crc32(page, crc)
        elif zero_rest:
            page[:] = zero[: len(page)]
    if crc != chunk.crc:
        raise SnapshotChecksumError(
            f"RAM chunk at {chunk.offset:#x} of region {chunk.region} changed while the "
            "snapshot was being restored",
            section=RAM_SECTION,
            instance=chunk.region,
            offset=chunk.section_offset,
            expected=chunk.crc,
            found=crc,
        )


def iter_sections(scan_result: Scan) -> Iterator[tuple[str, int, int, int]]:
    """``(name, instance, version_id, length)`` of every section in stream order."""
    items: list[tuple[int, tuple[str, int, int, int]]] = [
        (s.offset, (s.name, s.instance, s.version_id, s.length)) for s in scan_result.sections
    ]
    items += [
        (c.section_offset, (RAM_SECTION, c.region, RAM_VERSION, c.length)) for c in scan_result.ram
    ]
    for _, item in sorted(items):
        yield item


def is_seekable(stream: IO[bytes]) -> bool:
    try:
        return bool(stream.seekable())
    except (AttributeError, ValueError, io.UnsupportedOperation):
        return False
