"""The KVM accelerator: probe of /dev/kvm, host capabilities, VM creation.

:class:`KvmAccelerator` opens the device on its first :meth:`~KvmAccelerator.probe`,
reads host capabilities once (KVM_CHECK_EXTENSION, KVM_GET_SUPPORTED_CPUID) and answers
them from memory afterwards, and creates :class:`~accel_kvm.vm.KvmVM` handles.
"""

from __future__ import annotations

import errno
import os

from accel.accelerator import Accelerator, Availability, CpuSpec, VmOptions
from accel.capabilities import Capability, CapabilityAnswer, CapabilitySet
from accel.errors import (
    AcceleratorUnavailableError,
    BackendCallError,
    CapabilityError,
    HandleClosedError,
    InvalidArgumentError,
)

from . import bindings as b
from .capabilities import KVM_CAPS, answers_from_raw, plugin_answers, pv_clock_answers
from .ioctls import (
    ACCEL_NAME,
    KVM_CHECK_EXTENSION,
    KVM_CREATE_IRQCHIP,
    KVM_CREATE_PIT2,
    KVM_CREATE_VM,
    KVM_GET_API_VERSION,
    KVM_GET_MSR_INDEX_LIST,
    KVM_GET_SUPPORTED_CPUID,
    KVM_GET_VCPU_MMAP_SIZE,
    KVM_X86_GET_MCE_CAP_SUPPORTED,
    NO_DEVICE_ERRNOS,
    PERMISSION_ERRNOS,
    HostSys,
    Sys,
    call,
)
from .vcpu import cpuid_buffer, filter_cpuid, hide_user_apic_features, mce_cap
from .vm import KvmVM

__all__ = ["KvmAccelerator"]

_CPUID_START = 128
_CPUID_MAX = 1 << 16
#: How many (CPU spec, APIC ID) CPUID structs an accelerator keeps (vcpu_cpuid).
_VCPU_CPUID_KEEP = 256


class KvmAccelerator(Accelerator):
    """The Linux KVM accelerator on ``/dev/kvm``.

    ``device`` is the device path (default ``$ACCEL_KVM_DEVICE`` or ``/dev/kvm``); ``sys``
    the system-call layer (default :class:`~accel_kvm.ioctls.HostSys`; tests pass a
    :class:`~accel_kvm.testing.FaultInjector`). Construction does no I/O. The device stays
    open from the first successful :meth:`probe` until :meth:`close`; host capabilities
    are read once and answered from memory afterwards.
    """

    name = ACCEL_NAME

    def __init__(self, *, device: str | None = None, sys: Sys | None = None) -> None:
        self._sys: Sys = sys if sys is not None else HostSys()
        self._device = device or os.environ.get("ACCEL_KVM_DEVICE", "/dev/kvm")
        self._fd = -1
        self._availability: Availability | None = None
        self._raw: dict[int, int] = {}
        self._caps: CapabilitySet | None = None
        self._answers: dict[str, CapabilityAnswer] = {}
        self._closed = False
        self._cpuid: tuple[b.CpuidEntry, ...] | None = None
        self._msr_list: tuple[int, ...] | None = None
        self._mce_cap: int | None = None
        # (CPU spec, APIC ID, cores) -> (KVM_SET_CPUID2 struct, MCG_CAP): see vcpu_cpuid.
        self._vcpu_cpuid: dict[tuple[CpuSpec, int, int, bool], tuple[bytes, int]] = {}
        # The KVM_GET_SUPPORTED_CPUID result as the kernel wrote it (a struct kvm_cpuid2).
        self._cpuid_struct = b""
        self._mmap_size = 0
        self._vms: list[KvmVM] = []

    # ------------------------------------------------------------------ probe
    @property
    def device(self) -> str:
        return self._device

    @property
    def fd(self) -> int:
        """The /dev/kvm file descriptor (-1 before a successful probe)."""
        return self._fd

    def probe(self) -> Availability:
        """Open the device (O_CLOEXEC) and check KVM_GET_API_VERSION; never raises."""
        self._check_open()
        if self._fd >= 0 and self._availability is not None:
            return self._availability
        path = self._device
        try:
            fd = self._sys.open(path, os.O_RDWR | os.O_CLOEXEC)
        except OSError as exc:
            return self._unavailable_open(path, exc.errno or 0)
        try:
            version = self._sys.ioctl(fd, KVM_GET_API_VERSION, 0)
        except OSError as exc:
            self._sys.close(fd)
            err = exc.errno or 0
            return Availability.unavailable(
                f"{path}: KVM_GET_API_VERSION failed: {os.strerror(err)}",
                "check the kernel log (dmesg) for kvm errors",
                errno=err,
                path=path,
                call="KVM_GET_API_VERSION",
            )
        if version != b.API_VERSION:
            self._sys.close(fd)
            return Availability.unavailable(
                f"{path}: KVM API version {version}, expected {b.API_VERSION}",
                "this kernel's KVM is incompatible; use a kernel with KVM API version 12",
                path=path,
                api_version=version,
                expected=b.API_VERSION,
            )
        self._fd = fd
        self._availability = Availability.ok(
            f"{path}: KVM API version {version}", path=path, api_version=version
        )
        return self._availability

    @staticmethod
    def _unavailable_open(path: str, err: int) -> Availability:
        if err in NO_DEVICE_ERRNOS:
            return Availability.unavailable(
                f"{path} does not exist (the kvm module is not loaded)",
                "load kvm_intel or kvm_amd (modprobe) and enable virtualization in the "
                "firmware; inside a VM, enable nested virtualization",
                errno=err,
                path=path,
            )
        if err in PERMISSION_ERRNOS:
            return Availability.unavailable(
                f"{path}: permission denied",
                f"add your user to the kvm group (or fix the mode of {path}, e.g. 0660 "
                "root:kvm), then log in again",
                errno=err,
                path=path,
            )
        return Availability.unavailable(
            f"{path}: cannot open: {errno.errorcode.get(err, err)} ({os.strerror(err)})",
            "check the device node and the kernel log (dmesg)",
            errno=err,
            path=path,
        )

    def _require(self) -> int:
        availability = self.probe()
        if not availability.available:
            raise AcceleratorUnavailableError(
                f"kvm is unavailable: {availability.reason}",
                hint=availability.hint,
                accelerator=ACCEL_NAME,
                reason=availability.reason,
                **{
                    k: v
                    for k, v in availability.details.items()
                    if k not in ("accelerator", "reason")
                },
            )
        return self._fd

    # ------------------------------------------------------------------ capabilities
    def check_extension(self, cap_number: int) -> int:
        """Raw KVM_CHECK_EXTENSION on /dev/kvm (0 = absent, including unknown numbers)."""
        self._check_open()
        if not isinstance(cap_number, int) or cap_number < 0:
            raise InvalidArgumentError(
                f"KVM capability number must be a non-negative int, not {cap_number!r}",
                argument="cap_number",
                value=cap_number,
            )
        cached = self._raw.get(cap_number)
        if cached is not None:
            return cached
        fd = self._require()
        value = int(call(self._sys, "KVM_CHECK_EXTENSION", fd, KVM_CHECK_EXTENSION, cap_number))
        self._raw[cap_number] = value
        return value

    def supported_cpuid(self) -> tuple[b.CpuidEntry, ...]:
        """KVM_GET_SUPPORTED_CPUID (read once; the buffer grows on E2BIG)."""
        self._check_open()
        if self._cpuid is None:
            fd = self._require()
            nent = _CPUID_START
            while True:
                buf = bytearray(4 * (b.CPUID2_HEADER_WORDS + nent * b.CPUID_ENTRY2_WORDS))
                buf[:4] = nent.to_bytes(4, "little")
                try:
                    self._sys.ioctl(fd, KVM_GET_SUPPORTED_CPUID, buf)
                except OSError as exc:
                    if exc.errno == errno.E2BIG and nent < _CPUID_MAX:
                        nent *= 2
                        continue
                    raise BackendCallError(
                        "KVM_GET_SUPPORTED_CPUID", exc.errno, accelerator=ACCEL_NAME
                    ) from exc
                break
            words = memoryview(buf).cast("I")
            flat = words.tolist()
            words.release()
            end = b.CPUID2_HEADER_WORDS + flat[0] * b.CPUID_ENTRY2_WORDS
            step = b.CPUID_ENTRY2_WORDS
            self._cpuid_struct = bytes(buf[: 4 * end])
            self._cpuid = tuple(
                (
                    flat[i],
                    flat[i + 1],
                    flat[i + 2],
                    flat[i + 3],
                    flat[i + 4],
                    flat[i + 5],
                    flat[i + 6],
                )
                for i in range(b.CPUID2_HEADER_WORDS, end, step)
            )
        return self._cpuid

    def msr_index_list(self) -> tuple[int, ...]:
        """KVM_GET_MSR_INDEX_LIST: the MSRs KVM saves and restores (read once; the first
        call with room for none learns the count from E2BIG, as QEMU's kvm_get_supported_msrs)."""
        self._check_open()
        if self._msr_list is None:
            fd = self._require()
            n = 0
            while True:
                buf = bytearray(4 + 4 * n)
                buf[:4] = n.to_bytes(4, "little")
                try:
                    self._sys.ioctl(fd, KVM_GET_MSR_INDEX_LIST, buf)
                except OSError as exc:
                    wanted = int.from_bytes(buf[:4], "little")
                    if exc.errno == errno.E2BIG and wanted > n:
                        n = wanted
                        continue
                    raise BackendCallError(
                        "KVM_GET_MSR_INDEX_LIST", exc.errno, accelerator=ACCEL_NAME
                    ) from exc
                break
            count = int.from_bytes(buf[:4], "little")
            words = memoryview(buf).cast("I")
            self._msr_list = tuple(words[1 : 1 + count])
            words.release()
        return self._msr_list

    def mce_cap_supported(self) -> int:
        """The MCG_CAP KVM can give a vCPU: KVM_X86_GET_MCE_CAP_SUPPORTED's capability bits
        with the number of banks (KVM_CAP_MCE's value, as QEMU's kvm_get_mce_cap_supported)
        in bits 0-7. Read once; 0 where KVM_CAP_MCE is absent."""
        self._check_open()
        if self._mce_cap is None:
            banks = self.check_extension(b.KVM_CAP_MCE)
            if banks <= 0:
                self._mce_cap = 0
            else:
                buf = bytearray(8)
                call(
                    self._sys,
                    "KVM_X86_GET_MCE_CAP_SUPPORTED",
                    self._require(),
                    KVM_X86_GET_MCE_CAP_SUPPORTED,
                    buf,
                )
                self._mce_cap = (int.from_bytes(buf, "little") & ~0xFF) | (banks & 0xFF)
        return self._mce_cap

    def vcpu_cpuid(
        self, cpu: CpuSpec, apic_id: int, cores: int = 1, *, user_apic: bool = False
    ) -> tuple[bytes, int]:
        """The ``struct kvm_cpuid2`` a vCPU of ``cpu`` with ``apic_id`` in a socket of
        ``cores`` is given
        (:func:`~accel_kvm.vcpu.filter_cpuid`; nothing filtered out: a copy of the kernel's
        own struct, whose padding it zeroed) and its MCG_CAP (:func:`~accel_kvm.vcpu.mce_cap`,
        0: no KVM_X86_SETUP_MCE). Both follow from host capabilities read once, so they
        are computed once per (spec, APIC ID, cores) and kept (at most :data:`_VCPU_CPUID_KEEP`).
        ``user_apic``: the vCPU's local APIC is modelled outside KVM (a VM without the
        in-kernel irqchip), so x2APIC and TSC-deadline are hidden
        (:func:`~accel_kvm.vcpu.hide_user_apic_features`)."""
        key = (cpu, apic_id, cores, user_apic)
        hit = self._vcpu_cpuid.get(key)
        if hit is None:
            supported = self.supported_cpuid()
            entries = filter_cpuid(supported, cpu, apic_id=apic_id, cores=cores)
            if user_apic:
                entries = hide_user_apic_features(entries)
            kernel_struct = self.supported_cpuid_struct()
            if entries == list(supported) and kernel_struct:
                struct = kernel_struct
            else:
                struct = bytes(cpuid_buffer(entries))
            hit = (struct, mce_cap(entries, self.mce_cap_supported()))
            if len(self._vcpu_cpuid) >= _VCPU_CPUID_KEEP:
                self._vcpu_cpuid.clear()
            self._vcpu_cpuid[key] = hit
        return hit

    def supported_cpuid_struct(self) -> bytes:
        """KVM_GET_SUPPORTED_CPUID's result as the kernel wrote it (a ``struct kvm_cpuid2``)."""
        self.supported_cpuid()
        return self._cpuid_struct

    def capabilities(self) -> CapabilitySet:
        """Every :class:`Capability`, read once from KVM_CHECK_EXTENSION and CPUID."""
        caps = self._caps
        if caps is not None and not self._closed:
            return caps
        self._check_open()
        fd = self._require()
        known = self._raw
        raw: dict[int, int] = {}
        ioctl = self._sys.ioctl
        request = KVM_CHECK_EXTENSION
        for _, number in KVM_CAPS.values():
            value = known.get(number)
            if value is None:
                try:
                    value = known[number] = int(ioctl(fd, request, number))
                except OSError as exc:  # as call() reports it
                    raise BackendCallError(
                        "KVM_CHECK_EXTENSION", exc.errno, accelerator=ACCEL_NAME
                    ) from exc
            raw[number] = value
        cpuid = self.supported_cpuid()
        answers = answers_from_raw(raw)
        answers.update(pv_clock_answers(cpuid, raw[b.KVM_CAP_ADJUST_CLOCK] > 0))
        answers.update(plugin_answers())
        caps = CapabilitySet(answers)
        self._answers = {c.value: a for c, a in answers.items()}
        self._caps = caps
        return caps

    def check(self, cap: Capability) -> CapabilityAnswer:
        """One host-level answer, from memory after the first read."""
        if self._closed:
            raise HandleClosedError(self._describe())
        try:
            # keyed by the member's value: Enum.__hash__ is a Python-level call
            return self._answers[cap._value_]
        except (KeyError, AttributeError):
            return self.capabilities()[cap]

    def vcpu_mmap_size(self) -> int:
        """KVM_GET_VCPU_MMAP_SIZE (read once)."""
        self._check_open()
        if not self._mmap_size:
            fd = self._require()
            self._mmap_size = int(
                call(self._sys, "KVM_GET_VCPU_MMAP_SIZE", fd, KVM_GET_VCPU_MMAP_SIZE, 0)
            )
        return self._mmap_size

    # ------------------------------------------------------------------ VMs
    def create_vm(self, options: VmOptions | None = None) -> KvmVM:
        """KVM_CREATE_VM, then the in-kernel irqchip and PIT if ``options`` ask for them."""
        self._check_open()
        opts = options if options is not None else VmOptions()
        fd = self._require()
        caps = self.capabilities()
        if opts.pit and not opts.irqchip:
            raise InvalidArgumentError(
                "an in-kernel PIT needs the in-kernel irqchip",
                hint="pass VmOptions(irqchip=True, pit=True)",
                argument="options",
                value=opts,
            )
        for wanted, cap in ((opts.irqchip, Capability.IRQCHIP), (opts.pit, Capability.PIT)):
            if wanted and not caps.supports(cap):
                raise CapabilityError(
                    f"kvm does not support {KVM_CAPS[cap][0]}",
                    hint="create the VM without it",
                    accelerator=ACCEL_NAME,
                    capability=cap,
                )
        vm_fd = int(call(self._sys, "KVM_CREATE_VM", fd, KVM_CREATE_VM, 0))
        try:
            if opts.irqchip:
                call(self._sys, "KVM_CREATE_IRQCHIP", vm_fd, KVM_CREATE_IRQCHIP, 0)
            if opts.pit:
                pit = b.kvm_pit_config()
                call(self._sys, "KVM_CREATE_PIT2", vm_fd, KVM_CREATE_PIT2, pit)
        except BaseException:
            self._sys.close(vm_fd)
            raise
        vm = KvmVM(self, vm_fd, opts, self._sys, host=self, on_close=self._forget)
        self._vms.append(vm)
        return vm

    @property
    def vms(self) -> tuple[KvmVM, ...]:
        """Open VMs in creation order."""
        return tuple(self._vms)

    def _forget(self, vm: KvmVM) -> None:
        if vm in self._vms:
            self._vms.remove(vm)

    def _close(self) -> None:
        for vm in list(self._vms):
            vm.close()
        self._vms.clear()
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            self._sys.close(fd)
