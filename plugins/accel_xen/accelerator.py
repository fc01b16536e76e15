"""Xen: an honest stub that probes the host but does not drive libxenctrl.

What it looks at (every path under an injectable ``root``, ``/`` by default):

* ``/sys/hypervisor/type`` — ``xen`` when Linux runs under Xen;
* ``/proc/xen/capabilities`` — contains ``control_d`` in the control domain (dom0);
* ``/dev/xen/privcmd`` — the hypercall device a toolstack needs in dom0.

Outcomes: not under Xen → absent (:meth:`Availability.absent <accel.Availability.absent>`:
unavailable and not applicable, "not running under Xen"); a guest domain (domU) → absent
too ("this is a Xen guest (domU)": no domU can ever create domains); running under Xen
but xenfs unmounted or privcmd missing → unavailable (present but broken: fixable);
dom0 → :meth:`Availability.present <accel.Availability.present>`: present and answering
capabilities, but it creates no VMs (``creates_vms`` False, so default selection passes
over it with its reason), and :meth:`XenAccelerator.create_vm` raises
:class:`~accel.errors.UnsupportedError`, because creating a domain needs libxenctrl,
which this plugin does not drive.

Also here: the stub's capability answers (:func:`xen_answers`) and the conformance
features it declares unsupported (:data:`UNSUPPORTED`).
"""

from __future__ import annotations

import os
import stat
from typing import Final

from accel.accelerator import VM, Accelerator, Availability, VmOptions
from accel.capabilities import Capability, CapabilityAnswer, CapabilitySet, Support
from accel.errors import AcceleratorUnavailableError, UnsupportedError

__all__ = ["UNSUPPORTED", "XenAccelerator", "xen_answers"]

NAME: Final = "xen"
HYPERVISOR_TYPE: Final = "sys/hypervisor/type"
CAPABILITIES: Final = "proc/xen/capabilities"
PRIVCMD: Final = "dev/xen/privcmd"
#: Longest host attribute file read (a sysfs attribute is at most a page).
MAX_ATTRIBUTE: Final = 4096

_NOT_DRIVEN = "this stub does not drive libxenctrl"
_WHY = f"{_NOT_DRIVEN}, so it cannot ask the hypervisor"
_NO_VMS = "this stub does not drive libxenctrl, so it creates no VMs"
_USE_INSTEAD = "use the xl toolstack to create Xen domains, or the kvm/tcg accelerators"

#: The stub's answer for every capability, in :class:`~accel.Capability` order:
#: (capability value, support value, source). :func:`xen_answers` builds its
#: :class:`~accel.CapabilitySet` from it.
_ANSWERS: tuple[tuple[str, str, str], ...] = (
    ("user-memory", "no", "Xen guest RAM is hypervisor-owned, mapped by foreign mapping"),
    ("nr-vcpus", "unknown", _WHY),
    ("max-vcpus", "unknown", _WHY),
    ("irqchip", "yes", "Xen emulates PIC/IOAPIC/LAPIC in the hypervisor for HVM guests"),
    ("pit", "yes", "Xen emulates the i8254 PIT in the hypervisor for HVM guests (as in QEMU)"),
    (
        "pv-clocksource",
        "unknown",
        "the guest's paravirtual clock is Xen's own (not kvmclock); " + _WHY,
    ),
    ("pv-clocksource-stable", "unknown", _WHY),
    ("adjust-clock", "unknown", _WHY),
    ("clock-ctrl", "unknown", _WHY),
    ("tsc-control", "unknown", _WHY),
    ("tsc-khz", "unknown", _WHY),
    ("ioeventfd", "unknown", _WHY),
    ("irqfd", "unknown", _WHY),
    ("xsave", "unknown", _WHY),
    ("vm-capability-query", "no", f"no VMs: {_NOT_DRIVEN}"),
    ("interrupt-injection", "no", f"no VMs: {_NOT_DRIVEN}"),
    ("vcpu-state", "no", f"no VMs: {_NOT_DRIVEN}"),
)

#: Conformance features the stub cannot provide, with the reason: every feature that
#: needs a VM, and every capability it cannot answer "yes" (the source says why).
UNSUPPORTED: dict[str, str] = dict.fromkeys(
    (
        "vm",
        "multiple-vms",
        "registers",
        "guest-code",
        "port-io",
        "mmio",
        "protected-mode",
        "clock",
        "pause",
        "clock-devices",
        "snapshot",
    ),
    _NO_VMS,
)
UNSUPPORTED.update((cap, source) for cap, support, source in _ANSWERS if support != "yes")


def xen_answers() -> CapabilitySet:
    """Capability answers for a Xen dom0 as far as this stub can tell without libxenctrl."""
    return CapabilitySet(
        {
            Capability(cap): CapabilityAnswer(Support(support), None, source)
            for cap, support, source in _ANSWERS
        }
    )


class XenAccelerator(Accelerator):
    """The Xen accelerator stub: present in dom0, but creates no VMs.

    ``root`` prefixes every probed path, so tests can build a fake host under a
    temporary directory.
    """

    name = NAME

    def __init__(self, root: str | os.PathLike[str] = "/") -> None:
        # os.path, not pathlib: pathlib's imports cost every `accel` command a few ms.
        self._root = os.fspath(root)
        self._availability: Availability | None = None
        self._caps: CapabilitySet | None = None

    @property
    def root(self) -> str:
        return self._root

    def _read(self, rel: str) -> str | None:
        """The text of a small host file (a sysfs or procfs attribute), or None when it
        cannot be read, is not a regular file, or is longer than :data:`MAX_ATTRIBUTE`
        bytes: opening never waits (a FIFO under a test root), reading is bounded."""
        try:
            fd = os.open(os.path.join(self._root, rel), os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
            data = os.read(fd, MAX_ATTRIBUTE + 1)
        except OSError:
            return None
        finally:
            os.close(fd)
        if len(data) > MAX_ATTRIBUTE:
            return None
        return data.decode("utf-8", errors="replace").strip()

    def probe(self) -> Availability:
        if self._availability is None:
            self._availability = self._probe()
        return self._availability

    def _probe(self) -> Availability:
        type_path = "/" + HYPERVISOR_TYPE
        hv = self._read(HYPERVISOR_TYPE)
        if hv is None:
            return Availability.absent(
                f"not running under Xen: {type_path} does not exist",
                hint="boot this host as a Xen dom0 to use the xen accelerator",
                path=type_path,
            )
        if hv != "xen":
            return Availability.absent(
                f"not running under Xen: {type_path} says {hv!r}",
                hint="boot this host as a Xen dom0 to use the xen accelerator",
                path=type_path,
                hypervisor=hv,
            )
        caps = self._read(CAPABILITIES)
        if caps is None:
            return Availability.unavailable(
                "running under Xen, but /proc/xen/capabilities is missing "
                "(xenfs not mounted?), so this cannot be told to be dom0",
                hint="mount xenfs: mount -t xenfs xenfs /proc/xen",
                path="/" + CAPABILITIES,
            )
        if "control_d" not in caps.split():
            return Availability.absent(
                "this is a Xen guest (domU): only the control domain (dom0) can create VMs",
                hint="run accel in dom0, or use tcg inside this guest",
                capabilities=caps,
            )
        if not os.path.exists(os.path.join(self._root, PRIVCMD)):
            return Availability.unavailable(
                "Xen dom0, but /dev/xen/privcmd is missing",
                hint="load the xen-privcmd module",
                path="/" + PRIVCMD,
            )
        return Availability.present(
            f"Xen dom0, but {_NO_VMS}",
            hint=_USE_INSTEAD,
            dom0=True,
            capabilities=caps,
        )

    def _require(self) -> None:
        self._check_open()
        avail = self.probe()
        if not avail:
            raise AcceleratorUnavailableError(
                f"xen is unavailable: {avail.reason}",
                hint=avail.hint,
                accelerator=NAME,
                reason=avail.reason,
            )

    def capabilities(self) -> CapabilitySet:
        self._require()
        if self._caps is None:
            self._caps = xen_answers()
        return self._caps

    def create_vm(self, options: VmOptions | None = None) -> VM:
        self._require()
        raise UnsupportedError(
            f"xen: creating a VM is not supported: {_NOT_DRIVEN}",
            hint=_USE_INSTEAD,
            accelerator=NAME,
            feature="create-vm",
        )

    def _close(self) -> None:
        pass
