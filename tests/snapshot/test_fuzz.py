"""Malformed streams: only SnapshotError subclasses, and the target never changes.

Five strategies share the >= 10,000 examples: bit flips, truncations, well-framed
streams with valid checksums but wrong contents (versions, names, instances, lengths,
missing / duplicated / reordered sections), huge framing lengths, and garbage.
"""

from __future__ import annotations

import io
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accel import snapshot
from accel.errors import SnapshotError
from tests.fakes import FakeAccelerator, FakeVM, state_of

from .conftest import fake_accelerator
from .streams import Record, rebuild, sections_and_end, split

COMMON = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)
#: Examples per strategy: 11,500 in all; the bit flips, truncations, huge lengths and
#: garbage alone (7,500 examples, up to 9,500 streams) are malformed by construction.
N_FLIP, N_TRUNC, N_STRUCT, N_LEN, N_GARBAGE = 4000, 2000, 4000, 1000, 500
assert N_FLIP + N_TRUNC + N_STRUCT + N_LEN + N_GARBAGE >= 10_000


def _small_vm(acc: FakeAccelerator) -> FakeVM:
    from accel import Registers, VmOptions

    vm = acc.create_vm(VmOptions(irqchip=True, pit=True))  # every state section
    vm.add_memory(0, 6 * 4096)
    vm.add_memory(0x10000, 2 * 4096)
    vm.create_vcpu().set_regs(Registers(rax=7, rip=0x100))
    vm.write_memory(0x1000, b"guest data" * 20)  # chunk 0: page 1 only -> a pages chunk
    vm.write_memory(0x2000, b"x")  # chunk 1: both pages -> a data chunk
    vm.write_memory(0x3FFF, b"y")  # chunk 2 stays zero -> a zero chunk
    vm.write_memory(0x10000, b"more")
    vm.vcpus[0].set_msrs({0xC0000082: 0xFFFFFFFF81A00000, 0x4B564D01: 0x5001})
    return vm


_ACC = fake_accelerator()
_SOURCE = _small_vm(_ACC)
_SOURCE.pause()
_buf = io.BytesIO()
snapshot.save(_SOURCE, _buf, machine_type="test-1.0", chunk_size=8192)
VALID = _buf.getvalue()
HEADER, RECORDS = split(VALID)
# ... and every section of the vCPU and chip state.
assert {r.name for r in RECORDS} >= {
    "cpu-msrs", "cpu-fpu", "cpu-debug", "cpu-events", "cpu-mp-state", "cpu-lapic", "cpuid",
    "irqchip", "pit", "tsc",
}  # fmt: skip
# The stream has every kind of RAM chunk: data, all-zero and pages (a bitmap + pages).
assert sorted({r.payload[12] for r in RECORDS if r.name == "ram"}) == [0, 1, 2]


class Target:
    """A VM of the same layout with different contents, and its state before."""

    def __init__(self) -> None:
        self.acc = fake_accelerator()
        self.vm = _small_vm(self.acc)
        self.vm.write_memory(0x2000, b"target's own bytes")
        self.before = state_of(self.vm)


_TARGET = Target()


def _check(data: bytes, *, may_succeed: bool = False) -> None:
    """Load ``data`` into the target and build a fresh VM from it; both must fail with a
    SnapshotError (or, when ``may_succeed``, may succeed) and a failure changes nothing."""
    t = _TARGET
    vms_before = len(t.acc.vms)
    try:
        snapshot.load(io.BytesIO(data), t.vm)
    except SnapshotError:
        assert state_of(t.vm) == t.before
        assert len(t.acc.vms) == vms_before
    else:
        assert may_succeed, "a malformed stream was accepted"
        # Put the target back for the next example.
        t.vm.close()
        _TARGET.__init__()  # type: ignore[misc]
        return
    try:
        vm = snapshot.restore(io.BytesIO(data), t.acc)
    except SnapshotError:
        assert all(v.closed for v in t.acc.vms[vms_before:])
    else:
        assert may_succeed
        vm.close()


def test_valid_snapshot_loads() -> None:
    _check(VALID, may_succeed=True)


@settings(COMMON, max_examples=N_FLIP)
@given(
    st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 7)), min_size=1, max_size=8)
)
def test_bit_flips(flips: list[tuple[int, int]]) -> None:
    data = bytearray(VALID)
    for pos, bit in flips:
        data[pos] ^= 1 << bit
    if bytes(data) == VALID:
        return
    _check(bytes(data))


@settings(COMMON, max_examples=N_TRUNC)
@given(st.integers(0, len(VALID) - 1), st.binary(max_size=8))
def test_truncations_and_trailing_bytes(cut: int, extra: bytes) -> None:
    _check(VALID[:cut])
    if extra:
        _check(VALID + extra)


_U32 = st.integers(0, 2**32 - 1)
_NAMES = st.sampled_from(["vm", "cpu-regs", "cpu-sregs", "clock", "ram", "rtc", "x" * 64])


@st.composite
def _mutated_records(draw: st.DrawFn) -> tuple[list[Record], bool]:
    recs = [Record(r.name, r.instance, r.version_id, r.payload) for r in RECORDS]
    kind = draw(
        st.sampled_from(
            ["version", "name", "instance", "payload", "u32", "drop", "dup", "swap", "end"]
        )
    )
    i = draw(st.integers(0, len(recs) - 1))
    r = recs[i]
    if kind == "version":
        r.version_id = draw(st.one_of(st.integers(0, 4), _U32))
    elif kind == "name":
        r.name = draw(_NAMES)
    elif kind == "instance":
        r.instance = draw(st.one_of(st.integers(0, 3), _U32))
    elif kind == "payload":
        data = bytearray(r.payload)
        if data:
            j = draw(st.integers(0, len(data) - 1))
            data[j] = draw(st.integers(0, 255))
        r.payload = bytes(data) + draw(st.binary(max_size=2))
    elif kind == "u32":  # a length or count inside a payload becomes huge
        if len(r.payload) >= 4:
            j = draw(st.integers(0, len(r.payload) - 4))
            r.payload = r.payload[:j] + struct.pack("<I", draw(_U32)) + r.payload[j + 4 :]
    elif kind == "drop":
        del recs[i]
    elif kind == "dup":
        recs.insert(draw(st.integers(0, len(recs))), r)
    elif kind == "swap":
        j = draw(st.integers(0, len(recs) - 1))
        recs[i], recs[j] = recs[j], recs[i]
    return recs, kind == "end"


@settings(COMMON, max_examples=N_STRUCT)
@given(_mutated_records(), st.integers(-2, 2))
def test_well_framed_but_wrong(mutation: tuple[list[Record], bool], delta: int) -> None:
    recs, bad_end = mutation
    if bad_end and delta:
        data = HEADER + sections_and_end(recs, end_count=len(recs) + delta)
        _check(data)
        return
    # Some mutations (a register byte changed, two RAM chunks of equal content swapped)
    # leave a valid snapshot: it may load. Anything else must be refused untouched.
    _check(rebuild(VALID, recs), may_succeed=True)


@settings(COMMON, max_examples=N_LEN)
@given(st.integers(0, len(RECORDS) - 1), st.integers(2**20 + 65, 2**32 - 1), st.booleans())
def test_huge_lengths(index: int, length: int, header: bool) -> None:
    data = bytearray(VALID)
    if header:  # the header's own length field
        struct.pack_into("<H", data, 14, min(length, 0xFFFF))
    else:
        pos = len(HEADER)
        for r in RECORDS[:index]:
            pos += 2 + len(r.name) + 16 + len(r.payload)
        struct.pack_into("<I", data, pos + 2 + len(RECORDS[index].name) + 8, length)
    _check(bytes(data))


@settings(COMMON, max_examples=N_GARBAGE)
@given(st.binary(max_size=256), st.booleans())
def test_garbage(data: bytes, with_magic: bool) -> None:
    _check((HEADER[:12] if with_magic else b"") + data)


@pytest.mark.parametrize("cut", [0, 5, 12, len(HEADER), len(HEADER) + 3, len(VALID) - 1])
def test_truncation_is_typed(cut: int) -> None:
    from accel.errors import SnapshotFormatError, SnapshotTruncatedError

    with pytest.raises((SnapshotTruncatedError, SnapshotFormatError)):
        snapshot.read(io.BytesIO(VALID[:cut]))
