"""The KVM vCPU handle: defined in :mod:`accel_kvm.vm` with the VM, re-exported here."""

from __future__ import annotations

from .vm import PV_FLAGS, KvmVcpu, cpuid_buffer, filter_cpuid

__all__ = ["PV_FLAGS", "KvmVcpu", "cpuid_buffer", "filter_cpuid"]
