"""Save and restore a VM: validate everything, then apply.

:func:`save` writes a paused VM (it pauses a running one for the duration) to a stream;
:func:`restore` builds a fresh VM from a stream on any accelerator; :func:`load` restores
into an existing VM of the same layout. Both readers go through :func:`read`, which
checks the whole stream first (structure, bounds, every CRC, versions, known and
required sections, RAM coverage) and only then hands back a :class:`StagedSnapshot`
whose :meth:`~StagedSnapshot.apply` changes the target. A stream that fails any check
raises a :class:`~accel.errors.SnapshotError` subclass and the target is untouched.

Guest RAM is never held twice: the first pass checks each chunk through one 1 MiB
buffer, the second copies chunk bytes from the stream straight into the region's
memoryview. A stream that cannot seek (a pipe) is spooled to an unlinked temporary file
during the first pass, so the second pass can read it again.

The machine layer adds its devices through ``devices`` (save: descriptions with their
state objects; read: descriptions by section name) and applies their staged states itself.
"""

from __future__ import annotations

import contextlib
import enum
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import IO, Any, Self

from ..accelerator import VM, Accelerator, ClockData, Registers, SpecialRegisters, VmOptions
from ..capabilities import Capability, ClockFlags
from ..errors import (
    AccelError,
    SnapshotError,
    SnapshotFormatError,
    SnapshotMismatchError,
)
from ..files import atomic_file
from .carry import check_carry, missing_sections
from .cpu import (
    CPU_SECTIONS,
    PLATFORM_SECTIONS,
    FullVcpuState,
    PlatformState,
    apply_platform,
    apply_vcpu,
    capture_vcpu,
    carried,
    save_platform,
    save_vcpu,
    staged_platform,
    staged_vcpu,
    vcpu_state_supported,
)
from .format import (
    RAM_CHUNK,
    Header,
    RamChunk,
    Scan,
    SnapshotWriter,
    is_seekable,
    read_chunk_into,
    read_pages_into,
    scan,
)
from .state import CLOCK, CPU_REGS, CPU_SREGS, VM_LAYOUT, ClockState, RegionState, VmLayout
from .vmstate import VMStateDescription, decode, encode

__all__ = [
    "DeviceState",
    "atomic_file",
    "RestoreMode",
    "SaveResult",
    "StagedSnapshot",
    "load",
    "read",
    "restore",
    "save",
    "restored_clock",
]

_PAGE = 4096
_MSR_TSC = 0x10
#: Sections every VM snapshot has, by name (the "ram" chunks are handled by the format).
VM_SECTIONS: Mapping[str, VMStateDescription[Any]] = {
    VM_LAYOUT.name: VM_LAYOUT,
    CPU_REGS.name: CPU_REGS,
    CPU_SREGS.name: CPU_SREGS,
    CLOCK.name: CLOCK,
    **CPU_SECTIONS,
    **PLATFORM_SECTIONS,
}


class RestoreMode(enum.Enum):
    """How the guest clock continues after a restore (cloud-hypervisor's two cases).

    ``RESUME`` (same host): the guest clock continues from the saved value, as if the
    VM had only been paused. ``CATCH_UP`` (restore elsewhere, or much later): the guest
    clock is advanced by the wall time that passed since the clock was read, using the
    accelerator's REALTIME clock flag where it has one (the accelerator then adds the
    elapsed time itself when it writes the clock, at resume), else computed here.
    """

    RESUME = "resume"
    CATCH_UP = "catch-up"


@dataclass(frozen=True)
class DeviceState:
    """One device section to save: its description, instance and state object."""

    description: VMStateDescription[Any]
    instance: int
    state: object


@dataclass(frozen=True)
class SaveResult:
    """What :func:`save` wrote."""

    bytes_written: int
    sections: int
    ram_bytes: int
    clock: ClockData


# --------------------------------------------------------------------------- save


def save(
    vm: VM,
    stream: IO[bytes],
    *,
    machine_type: str = "none",
    cpu_model: str = "",
    devices: Sequence[DeviceState] = (),
    send_clock_reliable: bool = True,
    chunk_size: int = RAM_CHUNK,
) -> SaveResult:
    """Write ``vm`` to ``stream`` (only ``write()`` is needed).

    A running VM is paused for the save and resumed afterwards; a paused one stays
    paused. The clock saved is the one cached at pause, so repeated saves of a paused
    VM carry the same clock value. All state except RAM is read and encoded before the
    first byte is written: a failing clock read (or register read) raises its own error
    and nothing is written. ``send_clock_reliable`` False leaves out the
    ``clock/clock_is_reliable`` subsection (old machine types).
    """
    was_running = not vm.paused
    if was_running:
        vm.pause()
    try:
        clock_data = vm.get_clock()
        if not isinstance(clock_data, ClockData):
            raise SnapshotError(f"VM.get_clock returned {clock_data!r}, not ClockData")
        regions = vm.memory_regions
        vcpus = vm.vcpus
        layout = VmLayout(
            regions=[RegionState(r.guest_phys, r.size, r.readonly) for r in regions],
            vcpus=[v.index for v in vcpus],
        )
        parts: list[tuple[str, int, int, bytes]] = [
            (VM_LAYOUT.name, 0, VM_LAYOUT.version_id, encode(VM_LAYOUT, layout))
        ]
        full = vcpu_state_supported(vm)
        tsc: list[int] = []
        for v in vcpus:
            parts.append(
                (CPU_REGS.name, v.index, CPU_REGS.version_id, encode(CPU_REGS, v.get_regs()))
            )
            parts.append(
                (CPU_SREGS.name, v.index, CPU_SREGS.version_id, encode(CPU_SREGS, v.get_sregs()))
            )
            extra = save_vcpu(v, full)
            parts.extend(extra)
            if full and _MSR_TSC in v.msr_indices():
                tsc.append(v.get_msrs([_MSR_TSC])[_MSR_TSC])
        parts.extend(save_platform(vm, tsc))
        clock = ClockState.from_clock(clock_data, time.time_ns(), send_clock_reliable)
        parts.append((CLOCK.name, 0, CLOCK.version_id, encode(CLOCK, clock)))
        for dev in devices:
            d = dev.description
            if d.name in VM_SECTIONS or d.name == "ram":
                raise SnapshotError(f"device section name {d.name!r} is reserved", section=d.name)
            parts.append((d.name, dev.instance, d.version_id, encode(d, dev.state)))
        header = Header(
            accelerator=vm.accelerator.name,
            machine_type=machine_type,
            cpu_model=cpu_model,
        )
        writer = SnapshotWriter(stream, header)
        for name, instance, version, payload in parts:
            writer.section(name, instance, version, payload)
        ram = 0
        for index, region in enumerate(regions):
            writer.ram(index, region.view, chunk_size)
            ram += region.size
        writer.finish()
        return SaveResult(writer.bytes_written, writer.sections, ram, clock_data)
    finally:
        if was_running:
            vm.resume()


# --------------------------------------------------------------------------- read


@dataclass
class StagedSnapshot:
    """A snapshot that passed every check, decoded but not yet applied.

    ``devices`` maps ``(section, instance)`` to the decoded state object of each device
    section (for the machine layer to apply). Use as a context manager (or call
    :meth:`close`) to drop a spool file.
    """

    header: Header
    layout: VmLayout
    regs: dict[int, Registers]
    sregs: dict[int, SpecialRegisters]
    clock: ClockState
    clock_version: int
    devices: dict[tuple[str, int], Any]
    scan: Scan
    stream: IO[bytes]
    vcpu_state: dict[int, FullVcpuState] = field(default_factory=dict)
    platform: PlatformState = field(default_factory=PlatformState)
    warnings: list[str] = field(default_factory=list)
    """What the last :meth:`check_target` / :meth:`apply` noted: sections an older
    snapshot lacks (their state starts from reset), checks that could not be made."""
    _spool: IO[bytes] | None = field(default=None, repr=False)

    def close(self) -> None:
        if self._spool is not None:
            self._spool.close()
            self._spool = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- checks against a target
    def check_fits(self, vm: VM) -> None:
        """Raise :class:`~accel.errors.SnapshotMismatchError` unless ``vm`` has the
        snapshot's exact RAM layout and vCPU indices."""
        have = [(r.guest_phys, r.size, r.readonly) for r in vm.memory_regions]
        want = [(r.guest_phys, r.size, r.readonly) for r in self.layout.regions]
        if have != want:
            raise SnapshotMismatchError(
                "the target VM's memory layout differs from the snapshot's",
                section="vm",
                expected=_layout_text(want),
                found=_layout_text(have),
            )
        cpus = [v.index for v in vm.vcpus]
        if cpus != self.layout.vcpus:
            raise SnapshotMismatchError(
                f"the target VM has vCPUs {cpus}, the snapshot {self.layout.vcpus}",
                section="vm",
                expected=self.layout.vcpus,
                found=cpus,
            )

    def check_target(self, vm: VM) -> list[str]:
        """Raise :class:`~accel.errors.SnapshotMismatchError` unless ``vm`` fits (layout)
        and can hold all of the snapshot's state (:func:`~accel.snapshot.carry.check_carry`);
        return (and keep in :attr:`warnings`) the notes: missing sections, unchecked
        CPUID. Reads only: ``vm`` is not changed."""
        self.check_fits(vm)
        notes = check_carry(vm, self.vcpu_state, self.platform)
        missing = missing_sections(vm, self.vcpu_state, self.platform)
        if missing:
            notes.insert(
                0,
                "the snapshot has no " + ", ".join(missing) + " section(s) (written before "
                "they existed or by an accelerator without that state): that state starts "
                "from reset",
            )
        self.warnings = notes
        return notes

    def clock_for(self, vm: VM, mode: RestoreMode) -> ClockData:
        """The clock :meth:`apply` gives ``vm`` in ``mode`` (see :func:`restored_clock`)."""
        flags = _vm_clock_flags(vm)
        return restored_clock(self.clock, mode, target_flags=flags)

    def apply(self, vm: VM, mode: RestoreMode = RestoreMode.RESUME, *, fresh: bool = False) -> None:
        """Write the staged state into ``vm`` and leave it paused.

        Order: pause; registers (the step a backend is likeliest to refuse: if it does,
        the registers already set and the run state are put back and the error raised);
        RAM (second pass, straight into each region); then the clock, on the paused VM,
        so it is written before any vCPU runs, at :meth:`VM.resume`. ``fresh`` says the
        VM's RAM is known to be zero (zero chunks are then skipped).
        """
        self.check_target(vm)
        clock = self.clock_for(vm, mode)
        by_index = {v.index: v for v in vm.vcpus}
        writable = {i: carried(by_index[i], st, vm) for i, st in self.vcpu_state.items()}
        was_paused = vm.paused
        vm.pause()
        empty = FullVcpuState()
        old = [
            (
                by_index[i],
                by_index[i].get_regs(),
                by_index[i].get_sregs(),
                capture_vcpu(by_index[i], writable.get(i, empty)),
            )
            for i in self.layout.vcpus
        ]
        done = 0
        try:
            for index in self.layout.vcpus:
                cpu = by_index[index]
                cpu.set_regs(self.regs[index])
                cpu.set_sregs(self.sregs[index])
                apply_vcpu(cpu, writable.get(index, empty))
                done += 1
            self.warnings.extend(apply_platform(vm, self.platform))
        except BaseException:
            for cpu, regs, sregs, state in old[: done + 1]:
                with contextlib.suppress(Exception):
                    cpu.set_regs(regs)
                    cpu.set_sregs(sregs)
                    apply_vcpu(cpu, state)
            if not was_paused:
                with contextlib.suppress(Exception):
                    vm.resume()
            raise
        regions = vm.memory_regions
        zero = b""
        for chunk in self.scan.ram:
            view = regions[chunk.region].view[chunk.offset : chunk.offset + chunk.length]
            if chunk.zero:
                if not fresh:
                    if len(zero) < chunk.length:
                        zero = bytes(max(chunk.length, RAM_CHUNK))
                    view[:] = zero[: chunk.length]
                continue
            if chunk.pages:
                read_pages_into(self.stream, chunk, view, self.scan.base, zero_rest=not fresh)
            else:
                read_chunk_into(self.stream, chunk, view, self.scan.base)
        vm.set_clock(clock)


def _layout_text(regions: Iterable[tuple[int, int, bool]]) -> str:
    return (
        ", ".join(f"{base:#x}+{size:#x}{' ro' if ro else ''}" for base, size, ro in regions)
        or "no RAM"
    )


def _vm_clock_flags(vm: VM) -> ClockFlags:
    try:
        answer = vm.capabilities()[Capability.ADJUST_CLOCK]
    except Exception:  # an accelerator that cannot answer gets the computed catch-up
        return ClockFlags.NONE
    return answer.flags if answer.is_yes else ClockFlags.NONE


def restored_clock(
    state: ClockState,
    mode: RestoreMode,
    *,
    target_flags: ClockFlags = ClockFlags.NONE,
    now_ns: int | None = None,
) -> ClockData:
    """The clock to set on the target.

    ``RESUME``: the saved value, no REALTIME (nothing is added). ``CATCH_UP``: the wall
    time base is the saved read's ``realtime`` when it carried the REALTIME flag, else
    the time the snapshot was written; when the target's clock takes REALTIME
    (``target_flags``) the value goes with that flag and the accelerator adds the
    elapsed wall time when it writes the clock; otherwise the elapsed time is added here.
    """
    stable = ClockFlags.TSC_STABLE if state.reliable else ClockFlags.NONE
    if mode is RestoreMode.RESUME:
        return ClockData(state.clock, stable)
    if state.clock_flags & ClockFlags.REALTIME and state.realtime:
        base = state.realtime
    else:
        base = state.saved_at
    if not base:
        raise SnapshotMismatchError(
            "catch-up restore needs the wall time of the save, which this snapshot lacks",
            section="clock",
            hint="restore it in resume mode",
        )
    if target_flags & ClockFlags.REALTIME:
        return ClockData(state.clock, stable | ClockFlags.REALTIME, realtime=base)
    now = time.time_ns() if now_ns is None else now_ns
    return ClockData(state.clock + max(0, now - base), stable)


def read(
    stream: IO[bytes],
    *,
    devices: Mapping[str, VMStateDescription[Any]] | None = None,
    required: Iterable[tuple[str, int]] = (),
    machine_type: str | None = None,
) -> StagedSnapshot:
    """First pass: check the whole stream and decode its state; apply nothing.

    ``devices`` are the device sections this target understands (by name; any other
    name is refused as unknown); ``required`` the ``(section, instance)`` pairs that
    must be present; ``machine_type`` (when given) must equal the header's.
    Raises only :class:`~accel.errors.SnapshotError` subclasses for a bad stream.
    """
    known: dict[str, VMStateDescription[Any]] = dict(VM_SECTIONS)
    for name, device_desc in (devices or {}).items():
        if name in known or name == "ram":
            raise SnapshotError(f"device section name {name!r} is reserved", section=name)
        known[name] = device_desc
    spool: IO[bytes] | None = None
    source = stream
    if not is_seekable(stream):
        spool = tempfile.TemporaryFile(prefix="accel-snapshot-")  # noqa: SIM115
    try:
        result = scan(stream, spool=spool)
        if spool is not None:
            source = spool
        if machine_type is not None and result.header.machine_type != machine_type:
            raise SnapshotMismatchError(
                f"the snapshot is of machine type {result.header.machine_type!r}, the target "
                f"is {machine_type!r}",
                section="header",
                expected=machine_type,
                found=result.header.machine_type,
            )
        decoded: dict[tuple[str, int], Any] = {}
        versions: dict[tuple[str, int], int] = {}
        for sec in result.sections:
            desc = known.get(sec.name)
            if desc is None:
                raise SnapshotMismatchError(
                    f"unknown section {sec.name!r} (instance {sec.instance}, version "
                    f"{sec.version_id}) for this target",
                    section=sec.name,
                    instance=sec.instance,
                    found=sec.name,
                    expected=sorted(known),
                    offset=sec.offset,
                )
            key = (sec.name, sec.instance)
            if key in decoded:
                raise SnapshotFormatError(
                    f"section {sec.name!r} instance {sec.instance} appears twice",
                    section=sec.name,
                    instance=sec.instance,
                    offset=sec.offset,
                )
            decoded[key] = decode(desc, sec.payload, sec.version_id, instance=sec.instance)
            versions[key] = sec.version_id
            sec.payload = b""  # decoded: drop the bytes
        layout = _require(decoded, VM_LAYOUT.name, 0)
        assert isinstance(layout, VmLayout)
        _check_layout(layout)
        _check_ram(layout, result.ram)
        regs: dict[int, Registers] = {}
        sregs: dict[int, SpecialRegisters] = {}
        for index in layout.vcpus:
            regs[index] = _require(decoded, CPU_REGS.name, index)
            sregs[index] = _require(decoded, CPU_SREGS.name, index)
        clock = _require(decoded, CLOCK.name, 0)
        for name, instance in required:
            _require(decoded, name, instance)
        vm_keys = {(VM_LAYOUT.name, 0), (CLOCK.name, 0)}
        vm_keys |= {(CPU_REGS.name, i) for i in layout.vcpus}
        vm_keys |= {(CPU_SREGS.name, i) for i in layout.vcpus}
        vm_keys |= {(name, i) for name in CPU_SECTIONS for i in layout.vcpus}
        vm_keys |= {(name, 0) for name in PLATFORM_SECTIONS}
        for key in decoded:
            if key[0] in VM_SECTIONS and key not in vm_keys:
                raise SnapshotMismatchError(
                    f"section {key[0]!r} instance {key[1]} belongs to no vCPU of the snapshot",
                    section=key[0],
                    instance=key[1],
                )
        staged = StagedSnapshot(
            header=result.header,
            layout=layout,
            regs=regs,
            sregs=sregs,
            clock=clock,
            clock_version=versions[(CLOCK.name, 0)],
            devices={k: v for k, v in decoded.items() if k[0] not in VM_SECTIONS},
            scan=result,
            stream=source,
            vcpu_state={i: staged_vcpu(decoded, i) for i in layout.vcpus},
            platform=staged_platform(decoded),
            _spool=spool,
        )
        spool = None
        return staged
    finally:
        if spool is not None:
            spool.close()


def _require(decoded: Mapping[tuple[str, int], Any], name: str, instance: int) -> Any:
    try:
        return decoded[name, instance]
    except KeyError:
        raise SnapshotMismatchError(
            f"section {name!r} instance {instance} is missing from the snapshot",
            section=name,
            instance=instance,
            hint="the snapshot is incomplete or was written for another configuration",
        ) from None


def _check_layout(layout: VmLayout) -> None:
    end = -1
    for i, r in enumerate(layout.regions):
        if r.size <= 0 or r.size % _PAGE or r.guest_phys % _PAGE:
            raise SnapshotFormatError(
                f"RAM region {i} ({r.guest_phys:#x}+{r.size:#x}) is empty or not page-aligned",
                section="vm",
                instance=0,
            )
        if r.guest_phys < end:
            raise SnapshotFormatError(
                f"RAM region at {r.guest_phys:#x} overlaps the one before or is out of "
                "guest-physical order",
                section="vm",
            )
        end = r.guest_phys + r.size
    if end > 1 << 52:
        raise SnapshotFormatError("RAM regions reach beyond 2**52", section="vm")
    if len(set(layout.vcpus)) != len(layout.vcpus):
        raise SnapshotFormatError("duplicate vCPU index in the layout", section="vm")


def _check_ram(layout: VmLayout, chunks: Sequence[RamChunk]) -> None:
    """Each region's chunks must cover it exactly once, in order."""
    next_off = [0] * len(layout.regions)
    for c in chunks:
        if c.region >= len(layout.regions):
            raise SnapshotMismatchError(
                f"RAM chunk for region {c.region}; the snapshot has {len(layout.regions)}",
                section="ram",
                instance=c.region,
                offset=c.section_offset,
            )
        if c.offset != next_off[c.region] or c.offset + c.length > layout.regions[c.region].size:
            raise SnapshotFormatError(
                f"RAM chunk at {c.offset:#x}+{c.length:#x} of region {c.region} is out of "
                f"order or outside it (expected offset {next_off[c.region]:#x})",
                section="ram",
                instance=c.region,
                offset=c.section_offset,
                expected=next_off[c.region],
                found=c.offset,
            )
        next_off[c.region] += c.length
    for i, (r, got) in enumerate(zip(layout.regions, next_off, strict=True)):
        if got != r.size:
            raise SnapshotMismatchError(
                f"RAM of region {i} is incomplete: {got:#x} of {r.size:#x} bytes",
                section="ram",
                instance=i,
                expected=r.size,
                found=got,
            )


# --------------------------------------------------------------------------- restore


def restore(
    stream: IO[bytes],
    accelerator: Accelerator,
    *,
    mode: RestoreMode = RestoreMode.RESUME,
    options: VmOptions | None = None,
    warnings: list[str] | None = None,
) -> VM:
    """A new VM on ``accelerator`` holding the snapshot's state, paused.

    The stream is checked in full before the VM is created; if applying then fails
    (a backend error, a file changed between the passes, state the target cannot hold:
    see :mod:`accel.snapshot.carry`) the new VM is closed. Call ``vm.resume()`` to go
    on: the clock is written before any vCPU runs, then KVM_KVMCLOCK_CTRL (or the
    accelerator's equivalent) per vCPU. ``warnings`` (a list) receives the restore's
    notes (sections the snapshot lacks).
    """
    with read(stream) as staged:
        vm = build_vm(staged, accelerator, mode=mode, options=options)
        if warnings is not None:
            warnings.extend(staged.warnings)
        return vm


def build_vm(
    staged: StagedSnapshot,
    accelerator: Accelerator,
    *,
    mode: RestoreMode = RestoreMode.RESUME,
    options: VmOptions | None = None,
) -> VM:
    """Create a VM with ``staged``'s layout on ``accelerator`` and apply it (paused).

    A target that cannot hold the layout (too many vCPUs, RAM it cannot map) raises
    :class:`~accel.errors.SnapshotMismatchError` carrying the accelerator's own error;
    any VM made on the way is closed again.
    """
    max_vcpus = accelerator.capabilities().value(Capability.MAX_VCPUS)
    if max_vcpus is not None and any(i >= max_vcpus for i in staged.layout.vcpus):
        raise SnapshotMismatchError(
            f"the snapshot has vCPUs {staged.layout.vcpus}; {accelerator.name} allows "
            f"indices below {max_vcpus}",
            section="vm",
            expected=max_vcpus,
            found=max(staged.layout.vcpus),
        )
    caps = accelerator.capabilities()
    if (
        options is None
        and staged.platform.irqchip is not None
        and caps.supports(Capability.IRQCHIP)
    ):
        # the snapshot's chips were held in the accelerator: ask the target for them too
        pit = staged.platform.pit is not None and caps.supports(Capability.PIT)
        options = VmOptions(irqchip=True, pit=pit)
    vm = accelerator.create_vm(options)
    try:
        try:
            for r in staged.layout.regions:
                vm.add_memory(r.guest_phys, r.size, readonly=r.readonly)
            for index in staged.layout.vcpus:
                vm.create_vcpu(index)
        except AccelError as exc:
            raise SnapshotMismatchError(
                f"{accelerator.name} cannot recreate the snapshot's VM layout: {exc}",
                section="vm",
                error=str(exc),
            ) from exc
        staged.apply(vm, mode, fresh=True)
    except BaseException:
        vm.close()
        raise
    return vm


def load(stream: IO[bytes], vm: VM, *, mode: RestoreMode = RestoreMode.RESUME) -> StagedSnapshot:
    """Restore into the existing ``vm`` (same RAM layout and vCPUs), leaving it paused.

    Everything is checked before ``vm`` is touched, including that it fits; on any
    :class:`~accel.errors.SnapshotError` from the checks ``vm`` is exactly as it was.
    Returns the staged snapshot (closed) for its header and device states.
    """
    with read(stream) as staged:
        staged.check_target(vm)
        staged.clock_for(vm, mode)
        staged.apply(vm, mode)
        return staged
