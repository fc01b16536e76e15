"""The injectable system-call layer under the KVM plugin.

Every ``open``/``close``/``ioctl``/``mmap`` the plugin makes goes through one object with
the :class:`Sys` shape, handed to :class:`~accel_kvm.KvmAccelerator` (``sys=``) and passed
down to its VMs and vCPUs. :class:`HostSys` calls the real functions; tests wrap it with
:class:`FaultInjector` (make a named ioctl fail with an errno) or :class:`RecordingSys`
(log the ioctls in order), which live in :mod:`accel_kvm._wrappers` and are re-exported
here on first use. :func:`call` turns a failed ioctl into
:class:`~accel.errors.BackendCallError`. The layer is defined in :mod:`accel_kvm._abi`,
with the ABI it issues, and re-exported here.
"""

from __future__ import annotations

from accel._lazy import exports

from ._abi import ACCEL_NAME as ACCEL_NAME
from ._abi import NO_DEVICE_ERRNOS as NO_DEVICE_ERRNOS
from ._abi import PERMISSION_ERRNOS as PERMISSION_ERRNOS
from ._abi import HostSys as HostSys
from ._abi import buffer_address as buffer_address
from ._abi import call as call
from ._abi import release_mapping as release_mapping

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ._wrappers import FaultInjector, RecordingSys, Sys, ioctl_name

__all__ = ["FaultInjector", "HostSys", "RecordingSys", "Sys", "ioctl_name"]


#: The :class:`Sys` shape and the wrapping layers of :mod:`accel_kvm._wrappers`, imported
#: on first use.
__getattr__ = exports(
    globals(), dict.fromkeys(("FaultInjector", "RecordingSys", "Sys", "ioctl_name"), "._wrappers")
)[0]
del exports
