"""The /dev/kvm ABI for x86-64 and the system-call layer that issues it.

The ABI: ioctl numbers, constants, sizes, offsets, structures. Everything here mirrors
``<linux/kvm.h>`` and ``<asm/kvm.h>`` (Debian ``linux-libc-dev``); tests/kvm/test_abi.py
compiles a C program against those headers and compares every size, offset and ioctl
number with this module. The ctypes structures (``kvm_regs`` ...) are defined in
:mod:`accel_kvm._structs` and imported from there on first use. :data:`IOCTLS` maps the
name of every ioctl the plugin issues to its request number; the fault-injection tests
are parametrised over it, so an ioctl added here is tested.

The system calls: every ``open``/``close``/``ioctl``/``mmap`` the plugin makes goes
through one object with the :class:`~accel_kvm._wrappers.Sys` shape, handed to
:class:`~accel_kvm.KvmAccelerator` (``sys=``) and passed down to its VMs and vCPUs.
:class:`HostSys` calls the real functions; tests wrap it with the layers of
:mod:`accel_kvm._wrappers`. :func:`call` turns a failed ioctl into
:class:`~accel.errors.BackendCallError`. :mod:`accel_kvm._ioctl` re-exports this layer
with the wrappers.
"""

from __future__ import annotations

import errno as _errno
import fcntl
import mmap as _mmap
import os

from accel import errors as _errors

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Final

    from ._wrappers import Sys as Sys

# --------------------------------------------------------------------------- ioctl encoding
# asm-generic/ioctl.h: nr 8 bits, type 8 bits, size 14 bits, dir 2 bits.
_IOC_NRSHIFT: Final = 0
_IOC_TYPESHIFT: Final = 8
_IOC_SIZESHIFT: Final = 16
_IOC_DIRSHIFT: Final = 30
_IOC_NONE: Final = 0
_IOC_WRITE: Final = 1
_IOC_READ: Final = 2


def _ioc(direction: int, type_: int, nr: int, size: int) -> int:
    return (
        (direction << _IOC_DIRSHIFT)
        | (type_ << _IOC_TYPESHIFT)
        | (nr << _IOC_NRSHIFT)
        | (size << _IOC_SIZESHIFT)
    )


def _io(type_: int, nr: int) -> int:
    return _ioc(_IOC_NONE, type_, nr, 0)


def _ior(type_: int, nr: int, size: int) -> int:
    return _ioc(_IOC_READ, type_, nr, size)


def _iow(type_: int, nr: int, size: int) -> int:
    return _ioc(_IOC_WRITE, type_, nr, size)


def _iowr(type_: int, nr: int, size: int) -> int:
    return _ioc(_IOC_READ | _IOC_WRITE, type_, nr, size)


KVMIO: Final = 0xAE
API_VERSION: Final = 12

# --------------------------------------------------------------------------- structures
# The ctypes structures live in accel_kvm._structs (imported on first use, see
# __getattr__ below); the sizes and offsets the plugin needs without them:
SIZEOF_KVM_REGS: Final = 144
SIZEOF_KVM_SREGS: Final = 312
SIZEOF_KVM_USERSPACE_MEMORY_REGION: Final = 32
SIZEOF_KVM_CLOCK_DATA: Final = 48
SIZEOF_KVM_PIT_CONFIG: Final = 64
SIZEOF_KVM_CPUID_ENTRY2: Final = 40
SIZEOF_KVM_CPUID2: Final = 8

KVM_NR_INTERRUPTS: Final = 256
KVM_MEM_READONLY: Final = 1 << 1
KVM_CLOCK_TSC_STABLE: Final = 2
KVM_CLOCK_REALTIME: Final = 1 << 2
KVM_CLOCK_HOST_TSC: Final = 1 << 3

# Offsets in kvm_run that the run loop reads (the exit union starts at 32).
RUN_IMMEDIATE_EXIT: Final = 1
RUN_EXIT_REASON: Final = 8
RUN_IO_DIRECTION: Final = 32
RUN_IO_SIZE: Final = 33
RUN_IO_PORT: Final = 34
RUN_IO_COUNT: Final = 36
RUN_IO_DATA_OFFSET: Final = 40
RUN_MMIO_PHYS_ADDR: Final = 32
RUN_MMIO_DATA: Final = 40
RUN_MMIO_LEN: Final = 48
RUN_MMIO_IS_WRITE: Final = 52
RUN_FAIL_ENTRY_REASON: Final = 32
RUN_FAIL_ENTRY_CPU: Final = 40
RUN_INTERNAL_SUBERROR: Final = 32
RUN_INTERNAL_NDATA: Final = 36
RUN_INTERNAL_DATA: Final = 40
RUN_SYSTEM_EVENT_TYPE: Final = 32

# --------------------------------------------------------------------------- exit reasons
KVM_EXIT_UNKNOWN: Final = 0
KVM_EXIT_EXCEPTION: Final = 1
KVM_EXIT_IO: Final = 2
KVM_EXIT_HYPERCALL: Final = 3
KVM_EXIT_DEBUG: Final = 4
KVM_EXIT_HLT: Final = 5
KVM_EXIT_MMIO: Final = 6
KVM_EXIT_IRQ_WINDOW_OPEN: Final = 7
KVM_EXIT_SHUTDOWN: Final = 8
KVM_EXIT_FAIL_ENTRY: Final = 9
KVM_EXIT_INTR: Final = 10
KVM_EXIT_INTERNAL_ERROR: Final = 17
KVM_EXIT_SYSTEM_EVENT: Final = 24
KVM_EXIT_IO_IN: Final = 0
KVM_EXIT_IO_OUT: Final = 1

KVM_SYSTEM_EVENT_SHUTDOWN: Final = 1
KVM_SYSTEM_EVENT_RESET: Final = 2
KVM_SYSTEM_EVENT_CRASH: Final = 3

# --------------------------------------------------------------------------- capabilities
KVM_CAP_IRQCHIP: Final = 0
KVM_CAP_USER_MEMORY: Final = 3
KVM_CAP_NR_VCPUS: Final = 9
KVM_CAP_IRQFD: Final = 32
KVM_CAP_PIT2: Final = 33
KVM_CAP_IOEVENTFD: Final = 36
KVM_CAP_ADJUST_CLOCK: Final = 39
KVM_CAP_XSAVE: Final = 55
KVM_CAP_TSC_CONTROL: Final = 60
KVM_CAP_GET_TSC_KHZ: Final = 61
KVM_CAP_MAX_VCPUS: Final = 66
KVM_CAP_KVMCLOCK_CTRL: Final = 76
KVM_CAP_CHECK_EXTENSION_VM: Final = 105
KVM_CAP_IMMEDIATE_EXIT: Final = 136

# --------------------------------------------------------------------------- paravirt CPUID
KVM_CPUID_SIGNATURE: Final = 0x40000000
KVM_CPUID_FEATURES: Final = 0x40000001
KVM_FEATURE_CLOCKSOURCE: Final = 0
KVM_FEATURE_NOP_IO_DELAY: Final = 1
KVM_FEATURE_CLOCKSOURCE2: Final = 3
KVM_FEATURE_ASYNC_PF: Final = 4
KVM_FEATURE_STEAL_TIME: Final = 5
KVM_FEATURE_PV_EOI: Final = 6
KVM_FEATURE_PV_UNHALT: Final = 7
KVM_FEATURE_PV_TLB_FLUSH: Final = 9
KVM_FEATURE_ASYNC_PF_VMEXIT: Final = 10
KVM_FEATURE_PV_SEND_IPI: Final = 11
KVM_FEATURE_POLL_CONTROL: Final = 12
KVM_FEATURE_PV_SCHED_YIELD: Final = 13
KVM_FEATURE_ASYNC_PF_INT: Final = 14
KVM_FEATURE_MSI_EXT_DEST_ID: Final = 15
KVM_FEATURE_CLOCKSOURCE_STABLE_BIT: Final = 24
MSR_KVM_SYSTEM_TIME_NEW: Final = 0x4B564D01
MSR_KVM_WALL_CLOCK_NEW: Final = 0x4B564D00

# --------------------------------------------------------------------------- ioctls
KVM_GET_API_VERSION: Final = _io(KVMIO, 0x00)
KVM_CREATE_VM: Final = _io(KVMIO, 0x01)
KVM_CHECK_EXTENSION: Final = _io(KVMIO, 0x03)
KVM_GET_VCPU_MMAP_SIZE: Final = _io(KVMIO, 0x04)
KVM_GET_SUPPORTED_CPUID: Final = _iowr(KVMIO, 0x05, SIZEOF_KVM_CPUID2)
KVM_CREATE_VCPU: Final = _io(KVMIO, 0x41)
KVM_SET_USER_MEMORY_REGION: Final = _iow(KVMIO, 0x46, SIZEOF_KVM_USERSPACE_MEMORY_REGION)
KVM_CREATE_IRQCHIP: Final = _io(KVMIO, 0x60)
KVM_CREATE_PIT2: Final = _iow(KVMIO, 0x77, SIZEOF_KVM_PIT_CONFIG)
KVM_SET_CLOCK: Final = _iow(KVMIO, 0x7B, SIZEOF_KVM_CLOCK_DATA)
KVM_GET_CLOCK: Final = _ior(KVMIO, 0x7C, SIZEOF_KVM_CLOCK_DATA)
KVM_RUN: Final = _io(KVMIO, 0x80)
KVM_GET_REGS: Final = _ior(KVMIO, 0x81, SIZEOF_KVM_REGS)
KVM_SET_REGS: Final = _iow(KVMIO, 0x82, SIZEOF_KVM_REGS)
KVM_GET_SREGS: Final = _ior(KVMIO, 0x83, SIZEOF_KVM_SREGS)
KVM_SET_SREGS: Final = _iow(KVMIO, 0x84, SIZEOF_KVM_SREGS)
KVM_SET_CPUID2: Final = _iow(KVMIO, 0x90, SIZEOF_KVM_CPUID2)
KVM_KVMCLOCK_CTRL: Final = _io(KVMIO, 0xAD)

#: Every ioctl the plugin issues, by name (the fault-injection tests cover each one).
IOCTLS: Final[dict[str, int]] = {
    "KVM_GET_API_VERSION": KVM_GET_API_VERSION,
    "KVM_CREATE_VM": KVM_CREATE_VM,
    "KVM_CHECK_EXTENSION": KVM_CHECK_EXTENSION,
    "KVM_GET_VCPU_MMAP_SIZE": KVM_GET_VCPU_MMAP_SIZE,
    "KVM_GET_SUPPORTED_CPUID": KVM_GET_SUPPORTED_CPUID,
    "KVM_CREATE_VCPU": KVM_CREATE_VCPU,
    "KVM_SET_USER_MEMORY_REGION": KVM_SET_USER_MEMORY_REGION,
    "KVM_CREATE_IRQCHIP": KVM_CREATE_IRQCHIP,
    "KVM_CREATE_PIT2": KVM_CREATE_PIT2,
    "KVM_SET_CLOCK": KVM_SET_CLOCK,
    "KVM_GET_CLOCK": KVM_GET_CLOCK,
    "KVM_RUN": KVM_RUN,
    "KVM_GET_REGS": KVM_GET_REGS,
    "KVM_SET_REGS": KVM_SET_REGS,
    "KVM_GET_SREGS": KVM_GET_SREGS,
    "KVM_SET_SREGS": KVM_SET_SREGS,
    "KVM_SET_CPUID2": KVM_SET_CPUID2,
    "KVM_KVMCLOCK_CTRL": KVM_KVMCLOCK_CTRL,
}

#: Request number -> name (for error messages and the fault-injection wrapper).
IOCTL_NAMES: Final[dict[int, str]] = {number: name for name, number in IOCTLS.items()}

# --------------------------------------------------------------------------- system calls
ACCEL_NAME = "kvm"

#: The ctypes ``c_char`` type, made on first use from :mod:`_ctypes` alone.
_char: list[Any] = []


class HostSys:
    """The real system calls (``os.open``, ``fcntl.ioctl``, ``mmap.mmap``).

    ``ioctl`` is :func:`fcntl.ioctl` itself, so the vCPU run loop pays no extra call.
    """

    ioctl = staticmethod(fcntl.ioctl)

    def open(self, path: str, flags: int) -> int:
        return os.open(path, flags)

    def close(self, fd: int) -> None:
        os.close(fd)

    def mmap(self, fd: int, length: int) -> _mmap.mmap:
        if fd == -1:
            return _mmap.mmap(
                -1,
                length,
                flags=_mmap.MAP_PRIVATE | _mmap.MAP_ANONYMOUS,
                prot=_mmap.PROT_READ | _mmap.PROT_WRITE,
            )
        return _mmap.mmap(
            fd, length, flags=_mmap.MAP_SHARED, prot=_mmap.PROT_READ | _mmap.PROT_WRITE
        )


#: errnos that mean "no such device" when opening /dev/kvm.
NO_DEVICE_ERRNOS = frozenset({_errno.ENOENT, _errno.ENODEV, _errno.ENXIO})
#: errnos that mean "permission denied".
PERMISSION_ERRNOS = frozenset({_errno.EACCES, _errno.EPERM})


def call(sys: Sys, name: str, fd: int, request: int, arg: Any = 0) -> Any:
    """``sys.ioctl`` with an ``OSError`` turned into :class:`BackendCallError` naming ``name``."""
    try:
        return sys.ioctl(fd, request, arg)
    except OSError as exc:
        raise _errors.BackendCallError(name, exc.errno, accelerator=ACCEL_NAME) from exc


def release_mapping(mm: _mmap.mmap) -> None:
    """Unmap ``mm`` now, or (if a caller still holds a view of it) when that view dies."""
    # If a memoryview handed to the caller (MemoryRegion.view, exit.data) is still alive,
    # close() raises BufferError; the mmap object unmaps once the last view is gone.
    try:
        mm.close()
    except BufferError:
        return


def buffer_address(buf: _mmap.mmap) -> int:
    """The address of ``buf``'s first byte (``ctypes.addressof(c_char.from_buffer(buf))``).

    Read from the mmap object itself where that can be checked, which costs a few
    microseconds; otherwise through the C module :mod:`_ctypes` (not the :mod:`ctypes`
    package), whose first import costs several hundred.
    """
    address = _object_address(buf)
    if address is not None:
        return address
    import _ctypes

    if not _char:
        _char.append(type("c_char", (_ctypes._SimpleCData,), {"_type_": "c"}))
    anchor = _char[0].from_buffer(buf)
    address = _ctypes.addressof(anchor)
    del anchor
    return address


#: Where CPython's mmap object keeps ``char *data`` and then ``Py_ssize_t size``: right
#: after the object header; and their size, two pointers.
_MMAP_FIELDS_OFFSET = object.__basicsize__
_MMAP_FIELDS_SIZE = 2 * memoryview(bytes(8)).cast("P").itemsize


def _object_address(buf: _mmap.mmap) -> int | None:
    """``buf``'s address read through /proc/self/mem from the mmap object (``id(buf)`` is
    its address in CPython), or None when that fails or cannot be confirmed.

    Confirmed three ways: the size field equals ``len(buf)``, the address is page-aligned,
    and 16 random bytes written through ``buf`` read back at the address (then the bytes
    there before are put back: ``buf`` must not be in use elsewhere meanwhile, as a new
    guest RAM mapping is not).
    """
    if len(buf) < 16:
        return None
    try:
        fd = os.open("/proc/self/mem", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fields = os.pread(fd, _MMAP_FIELDS_SIZE, id(buf) + _MMAP_FIELDS_OFFSET)
        if len(fields) != _MMAP_FIELDS_SIZE:
            return None
        address, size = memoryview(fields).cast("P")
        if size != len(buf) or address % _mmap.PAGESIZE:
            return None
        before = buf[:16]
        marker = os.urandom(16)
        buf[:16] = marker
        try:
            seen = os.pread(fd, 16, address)
        finally:
            buf[:16] = before
        return address if seen == marker else None
    except (OSError, OverflowError, TypeError):
        return None
    finally:
        os.close(fd)


#: The names :mod:`accel_kvm._structs` defines (``kvm_regs`` ... and ``STRUCTS``).
_STRUCT_NAMES: Final = frozenset(
    {
        "STRUCTS",
        "kvm_clock_data",
        "kvm_cpuid2",
        "kvm_cpuid_entry2",
        "kvm_dtable",
        "kvm_pit_config",
        "kvm_regs",
        "kvm_run",
        "kvm_run_exit_union",
        "kvm_run_fail_entry",
        "kvm_run_internal",
        "kvm_run_io",
        "kvm_run_mmio",
        "kvm_run_system_event",
        "kvm_segment",
        "kvm_sregs",
        "kvm_userspace_memory_region",
    }
)

if not TYPE_CHECKING:
    from accel._lazy import exports

    # The ctypes structures (``kvm_regs``, ``STRUCTS`` ...) and the :class:`Sys` protocol
    # (defined in :mod:`accel_kvm._wrappers`), imported on first use.
    __getattr__, __dir__ = exports(
        globals(), {**dict.fromkeys(_STRUCT_NAMES, "._structs"), "Sys": "._wrappers"}
    )
    del exports
else:
    from ._structs import STRUCTS as STRUCTS
    from ._structs import kvm_clock_data as kvm_clock_data
    from ._structs import kvm_cpuid2 as kvm_cpuid2
    from ._structs import kvm_cpuid_entry2 as kvm_cpuid_entry2
    from ._structs import kvm_dtable as kvm_dtable
    from ._structs import kvm_pit_config as kvm_pit_config
    from ._structs import kvm_regs as kvm_regs
    from ._structs import kvm_run as kvm_run
    from ._structs import kvm_run_exit_union as kvm_run_exit_union
    from ._structs import kvm_run_fail_entry as kvm_run_fail_entry
    from ._structs import kvm_run_internal as kvm_run_internal
    from ._structs import kvm_run_io as kvm_run_io
    from ._structs import kvm_run_mmio as kvm_run_mmio
    from ._structs import kvm_run_system_event as kvm_run_system_event
    from ._structs import kvm_segment as kvm_segment
    from ._structs import kvm_sregs as kvm_sregs
    from ._structs import kvm_userspace_memory_region as kvm_userspace_memory_region
