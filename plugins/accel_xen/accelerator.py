"""Xen: an honest stub that probes the host but does not drive libxenctrl.

What it looks at (every path under an injectable ``root``, ``/`` by default):

* ``/sys/hypervisor/type`` — ``xen`` when Linux runs under Xen;
* ``/proc/xen/capabilities`` — contains ``control_d`` in the control domain (dom0);
* ``/dev/xen/privcmd`` — the hypercall device a toolstack needs in dom0.

Outcomes: not under Xen → unavailable ("not running under Xen"); a guest domain (domU)
→ unavailable ("this is a Xen guest (domU)"); dom0 → available, but
:meth:`XenAccelerator.create_vm` raises :class:`~accel.errors.UnsupportedError`, because
creating a domain needs libxenctrl, which this plugin does not drive.
"""

from __future__ import annotations

import os

from accel.accelerator import VM, Accelerator, Availability, VmOptions
from accel.capabilities import Capability, CapabilityAnswer, CapabilitySet, Support
from accel.errors import AcceleratorUnavailableError, UnsupportedError

from . import _ANSWERS, _NOT_DRIVEN

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Final

__all__ = ["XenAccelerator", "xen_answers"]

NAME: Final = "xen"
HYPERVISOR_TYPE: Final = "sys/hypervisor/type"
CAPABILITIES: Final = "proc/xen/capabilities"
PRIVCMD: Final = "dev/xen/privcmd"


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
        try:
            with open(os.path.join(self._root, rel), encoding="utf-8", errors="replace") as f:
                return f.read().strip()
        except OSError:
            return None

    def probe(self) -> Availability:
        if self._availability is None:
            self._availability = self._probe()
        return self._availability

    def _probe(self) -> Availability:
        type_path = "/" + HYPERVISOR_TYPE
        hv = self._read(HYPERVISOR_TYPE)
        if hv is None:
            return Availability.unavailable(
                f"not running under Xen: {type_path} does not exist",
                hint="boot this host as a Xen dom0 to use the xen accelerator",
                path=type_path,
            )
        if hv != "xen":
            return Availability.unavailable(
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
            return Availability.unavailable(
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
        return Availability.ok(
            f"Xen dom0 ({_NOT_DRIVEN}: VM creation is unsupported)",
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
            hint="use the xl toolstack to create Xen domains, or the kvm/tcg accelerators",
            accelerator=NAME,
            feature="create-vm",
        )

    def _close(self) -> None:
        pass
