"""The KVM accelerator: probe of /dev/kvm, host capabilities, VM creation."""

from __future__ import annotations

import errno as _errno
import os

from accel import errors as _errors
from accel.accelerator import Accelerator, Availability, VmOptions
from accel.capabilities import Capability, CapabilityAnswer, CapabilitySet
from accel.errors import InvalidArgumentError

from . import _abi
from ._abi import ACCEL_NAME, NO_DEVICE_ERRNOS, PERMISSION_ERRNOS, HostSys, call

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Final

    from ._wrappers import Sys
    from .vm import KvmVM

__all__ = ["KVM_CAPS", "CpuidEntry", "KvmAccelerator"]

#: (function, index, flags, eax, ebx, ecx, edx) of one kvm_cpuid_entry2.
CpuidEntry = tuple[int, int, int, int, int, int, int]

#: struct kvm_cpuid2 and kvm_cpuid_entry2 in 32-bit words: a header (nent, padding), then
#: per entry function, index, flags, eax, ebx, ecx, edx and three words of padding.
_HEADER_WORDS = _abi.SIZEOF_KVM_CPUID2 // 4
_ENTRY_WORDS = _abi.SIZEOF_KVM_CPUID_ENTRY2 // 4

#: The capabilities answered straight from KVM_CHECK_EXTENSION, with their KVM_CAP names.
KVM_CAPS: Final[dict[Capability, tuple[str, int]]] = {
    Capability.USER_MEMORY: ("KVM_CAP_USER_MEMORY", _abi.KVM_CAP_USER_MEMORY),
    Capability.NR_VCPUS: ("KVM_CAP_NR_VCPUS", _abi.KVM_CAP_NR_VCPUS),
    Capability.MAX_VCPUS: ("KVM_CAP_MAX_VCPUS", _abi.KVM_CAP_MAX_VCPUS),
    Capability.IRQCHIP: ("KVM_CAP_IRQCHIP", _abi.KVM_CAP_IRQCHIP),
    Capability.PIT: ("KVM_CAP_PIT2", _abi.KVM_CAP_PIT2),
    Capability.ADJUST_CLOCK: ("KVM_CAP_ADJUST_CLOCK", _abi.KVM_CAP_ADJUST_CLOCK),
    Capability.CLOCK_CTRL: ("KVM_CAP_KVMCLOCK_CTRL", _abi.KVM_CAP_KVMCLOCK_CTRL),
    Capability.TSC_CONTROL: ("KVM_CAP_TSC_CONTROL", _abi.KVM_CAP_TSC_CONTROL),
    Capability.TSC_KHZ: ("KVM_CAP_GET_TSC_KHZ", _abi.KVM_CAP_GET_TSC_KHZ),
    Capability.IOEVENTFD: ("KVM_CAP_IOEVENTFD", _abi.KVM_CAP_IOEVENTFD),
    Capability.IRQFD: ("KVM_CAP_IRQFD", _abi.KVM_CAP_IRQFD),
    Capability.XSAVE: ("KVM_CAP_XSAVE", _abi.KVM_CAP_XSAVE),
    Capability.VM_CAPABILITY_QUERY: (
        "KVM_CAP_CHECK_EXTENSION_VM",
        _abi.KVM_CAP_CHECK_EXTENSION_VM,
    ),
}

_CPUID_START = 128
_CPUID_MAX = 1 << 16
_PV_CLOCK_BITS = (1 << _abi.KVM_FEATURE_CLOCKSOURCE) | (1 << _abi.KVM_FEATURE_CLOCKSOURCE2)
_PV_STABLE_BIT = 1 << _abi.KVM_FEATURE_CLOCKSOURCE_STABLE_BIT


def answers_from_raw(
    raw: dict[int, int], source_suffix: str = ""
) -> dict[Capability, CapabilityAnswer]:
    """Map raw KVM_CHECK_EXTENSION results onto the capability enum (with kvm's fallbacks).

    ``NR_VCPUS`` 0 means 4 and ``MAX_VCPUS`` 0 means ``NR_VCPUS``
    (Documentation/virt/kvm/api.rst, KVM_CREATE_VCPU).
    """
    out: dict[Capability, CapabilityAnswer] = {}
    for cap, (cap_name, number) in KVM_CAPS.items():
        value = raw[number]
        source = cap_name + source_suffix
        if cap is Capability.NR_VCPUS:
            out[cap] = CapabilityAnswer.yes(
                value or 4, source if value else source + " (default 4)"
            )
        elif cap is Capability.MAX_VCPUS:
            nr = raw[_abi.KVM_CAP_NR_VCPUS] or 4
            out[cap] = CapabilityAnswer.yes(
                value or nr, source if value else source + " (falls back to KVM_CAP_NR_VCPUS)"
            )
        elif cap.valued and cap is not Capability.TSC_KHZ:
            out[cap] = CapabilityAnswer.from_bool(value > 0, value, source)
        else:
            out[cap] = CapabilityAnswer.from_bool(value > 0, None, source)
    return out


class KvmAccelerator(Accelerator):
    """The Linux KVM accelerator on ``/dev/kvm``.

    ``device`` is the device path (default ``$ACCEL_KVM_DEVICE`` or ``/dev/kvm``); ``sys``
    the system-call layer (default :class:`~accel_kvm._ioctl.HostSys`; tests pass a
    :class:`~accel_kvm._ioctl.FaultInjector`). Construction does no I/O. The device stays
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
        self._cpuid: tuple[CpuidEntry, ...] | None = None
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
            version = self._sys.ioctl(fd, _abi.KVM_GET_API_VERSION, 0)
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
        if version != _abi.API_VERSION:
            self._sys.close(fd)
            return Availability.unavailable(
                f"{path}: KVM API version {version}, expected {_abi.API_VERSION}",
                "this kernel's KVM is incompatible; use a kernel with KVM API version 12",
                path=path,
                api_version=version,
                expected=_abi.API_VERSION,
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
            f"{path}: cannot open: {_errno.errorcode.get(err, err)} ({os.strerror(err)})",
            "check the device node and the kernel log (dmesg)",
            errno=err,
            path=path,
        )

    def _require(self) -> int:
        availability = self.probe()
        if not availability.available:
            from accel.errors import AcceleratorUnavailableError

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
        value = int(
            call(self._sys, "KVM_CHECK_EXTENSION", fd, _abi.KVM_CHECK_EXTENSION, cap_number)
        )
        self._raw[cap_number] = value
        return value

    def supported_cpuid(self) -> tuple[CpuidEntry, ...]:
        """KVM_GET_SUPPORTED_CPUID (read once; the buffer grows on E2BIG)."""
        self._check_open()
        if self._cpuid is None:
            fd = self._require()
            nent = _CPUID_START
            while True:
                buf = bytearray(4 * (_HEADER_WORDS + nent * _ENTRY_WORDS))
                buf[:4] = nent.to_bytes(4, "little")
                try:
                    self._sys.ioctl(fd, _abi.KVM_GET_SUPPORTED_CPUID, buf)
                except OSError as exc:
                    if exc.errno == _errno.E2BIG and nent < _CPUID_MAX:
                        nent *= 2
                        continue
                    raise _errors.BackendCallError(
                        "KVM_GET_SUPPORTED_CPUID", exc.errno, accelerator=ACCEL_NAME
                    ) from exc
                break
            words = memoryview(buf).cast("I")
            flat = words.tolist()
            words.release()
            end = _HEADER_WORDS + flat[0] * _ENTRY_WORDS
            entries: list[Any] = [flat[i : i + 7] for i in range(_HEADER_WORDS, end, _ENTRY_WORDS)]
            self._cpuid_struct = bytes(buf[: 4 * end])
            self._cpuid = tuple(map(tuple, entries))
        return self._cpuid

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
        request = _abi.KVM_CHECK_EXTENSION
        for _, number in KVM_CAPS.values():
            value = known.get(number)
            if value is None:
                try:
                    value = known[number] = int(ioctl(fd, request, number))
                except OSError as exc:  # as call() reports it
                    raise _errors.BackendCallError(
                        "KVM_CHECK_EXTENSION", exc.errno, accelerator=ACCEL_NAME
                    ) from exc
            raw[number] = value
        cpuid = self.supported_cpuid()
        answers = answers_from_raw(raw)
        pv_eax = 0
        for entry in cpuid:
            if entry[0] == _abi.KVM_CPUID_FEATURES and entry[1] == 0:
                pv_eax = entry[3]
        adjust = raw[_abi.KVM_CAP_ADJUST_CLOCK] > 0
        pv = bool(pv_eax & _PV_CLOCK_BITS) and adjust
        src = "KVM_GET_SUPPORTED_CPUID 0x40000001 EAX"
        answers[Capability.PV_CLOCKSOURCE] = CapabilityAnswer.from_bool(
            pv, None, f"{src} bits 0/3 + KVM_CAP_ADJUST_CLOCK"
        )
        answers[Capability.PV_CLOCKSOURCE_STABLE] = CapabilityAnswer.from_bool(
            pv and bool(pv_eax & _PV_STABLE_BIT), None, f"{src} bit 24"
        )
        caps = CapabilitySet(answers)
        self._answers = {c.value: a for c, a in answers.items()}
        self._caps = caps
        return caps

    def check(self, cap: Capability) -> CapabilityAnswer:
        """One host-level answer, from memory after the first read."""
        if self._closed:
            raise _errors.HandleClosedError(self._describe())
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
                call(self._sys, "KVM_GET_VCPU_MMAP_SIZE", fd, _abi.KVM_GET_VCPU_MMAP_SIZE, 0)
            )
        return self._mmap_size

    # ------------------------------------------------------------------ VMs
    def create_vm(self, options: VmOptions | None = None) -> KvmVM:
        """KVM_CREATE_VM, then the in-kernel irqchip and PIT if ``options`` ask for them."""
        from .vm import KvmVM

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
                from accel.errors import CapabilityError

                raise CapabilityError(
                    f"kvm does not support {KVM_CAPS[cap][0]}",
                    hint="create the VM without it",
                    accelerator=ACCEL_NAME,
                    capability=cap,
                )
        vm_fd = int(call(self._sys, "KVM_CREATE_VM", fd, _abi.KVM_CREATE_VM, 0))
        try:
            if opts.irqchip:
                call(self._sys, "KVM_CREATE_IRQCHIP", vm_fd, _abi.KVM_CREATE_IRQCHIP, 0)
            if opts.pit:
                pit = _abi.kvm_pit_config()
                call(self._sys, "KVM_CREATE_PIT2", vm_fd, _abi.KVM_CREATE_PIT2, pit)
        except BaseException:
            self._sys.close(vm_fd)
            raise
        vm = KvmVM(self, vm_fd, opts, self._sys)
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
