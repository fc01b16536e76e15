"""Section versions: older within the minimum loads, newer or older than the minimum is
refused naming both versions; subsections; device descriptions with per-field versions."""

from __future__ import annotations

import io
from dataclasses import dataclass

import pytest

from accel import snapshot
from accel.errors import SnapshotMismatchError, SnapshotVersionError
from accel.snapshot import (
    U8,
    U16,
    U32,
    U64,
    Array,
    Bytes,
    DeviceState,
    Field,
    Nested,
    RestoreMode,
    Subsection,
    VMStateDescription,
    decode,
    encode,
)
from accel.snapshot.state import CLOCK, ClockState
from tests.fakes import FakeAccelerator, FakeVM

from .streams import Record, rebuild, split

#: The clock section as version 1 wrote it: no ``saved_at`` field yet.
CLOCK_V1: VMStateDescription[ClockState] = VMStateDescription(
    "clock",
    version_id=1,
    minimum_version_id=1,
    factory=ClockState,
    fields=tuple(f for f in CLOCK.fields if f.since <= 1),
    subsections=CLOCK.subsections,
)


def _with_clock(data: bytes, payload: bytes, version: int) -> bytes:
    _, recs = split(data)
    out = [Record(r.name, r.instance, version, payload) if r.name == "clock" else r for r in recs]
    return rebuild(data, out)


def test_older_clock_version_loads(acc: FakeAccelerator, vm: FakeVM, snapshot_bytes: bytes) -> None:
    vm.pause()
    saved = vm.get_clock()
    st = ClockState.from_clock(saved, saved_at=0, send_reliable=True)
    data = _with_clock(snapshot_bytes, encode(CLOCK_V1, st), 1)
    staged = snapshot.read(io.BytesIO(data))
    assert staged.clock_version == 1
    assert staged.clock.clock == saved.clock and staged.clock.saved_at == 0
    vm2 = snapshot.restore(io.BytesIO(data), acc)
    assert vm2.get_clock().clock == saved.clock
    # Catch-up still works from the read's own wall time (REALTIME flag).
    vm3 = snapshot.restore(io.BytesIO(data), acc, mode=RestoreMode.CATCH_UP)
    assert vm3.paused


def test_newer_clock_version_is_refused_naming_both(snapshot_bytes: bytes) -> None:
    _, recs = split(snapshot_bytes)
    clock = next(r for r in recs if r.name == "clock")
    data = _with_clock(snapshot_bytes, clock.payload, 3)
    with pytest.raises(SnapshotVersionError) as info:
        snapshot.read(io.BytesIO(data))
    err = info.value
    assert err.section == "clock" and err.found == 3 and err.expected == "1..2"
    assert "version 3" in err.message and "version 2" in err.message


def test_version_below_minimum_is_refused(snapshot_bytes: bytes) -> None:
    _, recs = split(snapshot_bytes)
    clock = next(r for r in recs if r.name == "clock")
    with pytest.raises(SnapshotVersionError, match=r"version 0.*version 1"):
        snapshot.read(io.BytesIO(_with_clock(snapshot_bytes, clock.payload, 0)))


def test_unknown_subsection_is_refused(snapshot_bytes: bytes) -> None:
    st = ClockState(clock=1)
    extra = VMStateDescription(
        "clock/from-the-future", 1, 1, ClockState, fields=(Field("clock", U64),)
    )
    future = VMStateDescription(
        "clock",
        2,
        1,
        ClockState,
        fields=CLOCK.fields,
        subsections=(*CLOCK.subsections, Subsection(extra, lambda s: True)),
    )
    data = _with_clock(snapshot_bytes, encode(future, st), 2)
    with pytest.raises(SnapshotMismatchError, match="from-the-future"):
        snapshot.read(io.BytesIO(data))


# --------------------------------------------------------------------------- devices


@dataclass
class Rtc:
    seconds: int = 0
    century: int = 0x20
    cmos: bytes = bytes(8)
    alarms: list[int] | None = None
    loaded: int = 0


def _post_load(obj: Rtc, version: int) -> None:
    obj.loaded = version


RTC_V1: VMStateDescription[Rtc] = VMStateDescription(
    "rtc", 1, 1, Rtc, fields=(Field("seconds", U64), Field("cmos", Bytes(8)))
)
RTC_V2: VMStateDescription[Rtc] = VMStateDescription(
    "rtc",
    2,
    1,
    Rtc,
    fields=(
        Field("seconds", U64),
        Field("cmos", Bytes(8)),
        Field("century", U8, since=2),
        Field("alarms", Array(U16, 4), since=2),
    ),
    post_load=_post_load,
)


def test_device_section_versions(acc: FakeAccelerator, vm: FakeVM) -> None:
    vm.pause()
    old = io.BytesIO()
    snapshot.save(vm, old, devices=[DeviceState(RTC_V1, 0, Rtc(seconds=42, cmos=b"ABCDEFGH"))])
    old.seek(0)
    staged = snapshot.read(old, devices={"rtc": RTC_V2}, required=[("rtc", 0)])
    rtc = staged.devices["rtc", 0]
    assert (rtc.seconds, rtc.cmos, rtc.century, rtc.loaded) == (42, b"ABCDEFGH", 0x20, 1)

    new = io.BytesIO()
    snapshot.save(vm, new, devices=[DeviceState(RTC_V2, 0, Rtc(7, 0x19, bytes(8), [1, 2]))])
    new.seek(0)
    with pytest.raises(SnapshotVersionError) as info:
        snapshot.read(new, devices={"rtc": RTC_V1})
    assert "version 2" in info.value.message and "version 1" in info.value.message

    new.seek(0)
    with pytest.raises(SnapshotMismatchError, match="unknown section 'rtc'"):
        snapshot.read(new)
    new.seek(0)
    with pytest.raises(SnapshotMismatchError, match="'hpet' instance 0 is missing"):
        snapshot.read(new, devices={"rtc": RTC_V2, "hpet": RTC_V2}, required=[("hpet", 0)])


def test_nested_and_bounds() -> None:
    @dataclass
    class Pair:
        a: int = 0
        b: int = 0

    pair = VMStateDescription("pair", 1, 1, Pair, fields=(Field("a", U32), Field("b", U32)))

    @dataclass
    class Outer:
        items: list[Pair] | None = None

    outer = VMStateDescription(
        "outer", 1, 1, Outer, fields=(Field("items", Array(Nested(pair), 2)),)
    )
    data = encode(outer, Outer([Pair(1, 2), Pair(3, 4)]))
    assert decode(outer, data, 1).items == [Pair(1, 2), Pair(3, 4)]
    from accel.errors import SnapshotError, SnapshotFormatError

    with pytest.raises(SnapshotError):
        encode(outer, Outer([Pair()] * 3))
    with pytest.raises(SnapshotFormatError, match="exceeds the bound"):
        decode(outer, b"\xff\xff\xff\xff", 1)
    with pytest.raises(SnapshotFormatError, match="left over"):
        decode(outer, data[:-1] + b"\x00\x00", 1)
