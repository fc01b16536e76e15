"""CPU models and ``-cpu`` specs.

A CPU is chosen like QEMU's ``-cpu``: a model name and flags switched on or off
(``host,-pv-flag,+x2apic``), parsed by :meth:`accel.CpuSpec.parse`. The machine type
gives the default model; ``host`` (the host CPU passed through) needs a hardware
accelerator, as in QEMU ("CPU model 'host' requires KVM or HVF").

Flags an accelerator understands (its paravirtual features, for instance) default
per accelerator: the accelerator's plugin reads ``machine.cpu.flag(name, default)`` with
its own default, so a flag the user did not name takes that accelerator's default
(QEMU turns its paravirtual clock flag on for every named model under a hypervisor
that has one, and the flag means nothing elsewhere). The core only records the user's
choices; it never names an accelerator's flag.

:data:`CPU_MODELS` is built when this module is imported and never changes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING

from ..accelerator import CpuSpec
from ..errors import ConfigError, InvalidArgumentError, did_you_mean

if TYPE_CHECKING:
    from ..plugin import AcceleratorInfo

__all__ = [
    "CPU_FLAG_ALIASES",
    "CPU_MODELS",
    "CPU_PROPERTIES",
    "PASSTHROUGH_PROPERTIES",
    "X86_FEATURES",
    "CpuModel",
    "canonical_flag",
    "cpu_models",
    "resolve_cpu",
]


@dataclasses.dataclass(frozen=True, slots=True)
class CpuModel:
    """A named CPU model: what ``-cpu help`` lists."""

    name: str
    description: str
    requires_hardware: bool = False
    bits: int = 64

    def to_json(self) -> dict[str, object]:
        return dataclasses.asdict(self)


#: Every CPU model by name, in ``-cpu help`` order (read-only).
CPU_MODELS: Mapping[str, CpuModel] = MappingProxyType(
    {
        m.name: m
        for m in (
            CpuModel("host", "the host CPU, all supported features", True),
            CpuModel("max", "all features the accelerator supports"),
            CpuModel("base", "base CPU model with no features enabled"),
            CpuModel("qemu64", "QEMU Virtual CPU version 2.5+ (64-bit)"),
            CpuModel("qemu32", "QEMU Virtual CPU version 2.5+ (32-bit)", bits=32),
            CpuModel("486", "Intel 486", bits=32),
            CpuModel("pentium", "Intel Pentium", bits=32),
            CpuModel("pentium2", "Intel Pentium II", bits=32),
            CpuModel("pentium3", "Intel Pentium III", bits=32),
            CpuModel("core2duo", "Intel Core 2 Duo"),
            CpuModel("Nehalem", "Intel Core i7 9xx (Nehalem Class Core i7)"),
            CpuModel("SandyBridge", "Intel Xeon E312xx (Sandy Bridge)"),
            CpuModel("Haswell", "Intel Core Processor (Haswell)"),
            CpuModel("Skylake-Client", "Intel Core Processor (Skylake)"),
            CpuModel("EPYC", "AMD EPYC Processor"),
        )
    }
)


def _words(*words: str) -> frozenset[str]:
    return frozenset(name for word in words for name in word.split())


#: QEMU 7.2's generic x86 feature names (``feature_word_info`` in target/i386/cpu.c),
#: one string per feature word. Flags an accelerator gives meaning to (its paravirtual
#: features) are not here: its plugin declares them (``AcceleratorInfo.cpu_flags``).
X86_FEATURES: frozenset[str] = _words(
    # CPUID 1 EDX
    "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 pn clflush"
    " ds acpi mmx fxsr sse sse2 ss ht tm ia64 pbe",
    # CPUID 1 ECX
    "pni pclmulqdq dtes64 monitor ds-cpl vmx smx est tm2 ssse3 cid fma cx16 xtpr pdcm"
    " pcid dca sse4.1 sse4.2 x2apic movbe popcnt tsc-deadline aes xsave avx f16c"
    " rdrand hypervisor",
    # CPUID 0x80000001 EDX
    "syscall nx mmxext fxsr-opt pdpe1gb rdtscp lm 3dnowext 3dnow",
    # CPUID 0x80000001 ECX
    "lahf-lm cmp-legacy svm extapic cr8legacy abm sse4a misalignsse 3dnowprefetch osvw ibs"
    " xop skinit wdt lwp fma4 tce nodeid-msr tbm topoext perfctr-core perfctr-nb",
    # CPUID 0xC0000001 EDX (VIA PadLock)
    "xstore xstore-en xcrypt xcrypt-en ace2 ace2-en phe phe-en pmm pmm-en",
    # CPUID 6 EAX
    "arat",
    # CPUID 7.0 EBX
    "fsgsbase tsc-adjust sgx bmi1 hle avx2 smep bmi2 erms invpcid rtm mpx avx512f avx512dq"
    " rdseed adx smap avx512ifma pcommit clflushopt clwb intel-pt avx512pf avx512er"
    " avx512cd sha-ni avx512bw avx512vl",
    # CPUID 7.0 ECX
    "avx512vbmi umip pku waitpkg avx512vbmi2 gfni vaes vpclmulqdq avx512vnni avx512bitalg"
    " avx512-vpopcntdq la57 rdpid bus-lock-detect cldemote movdiri movdir64b sgxlc pks",
    # CPUID 7.0 EDX
    "avx512-4vnniw avx512-4fmaps fsrm avx512-vp2intersect md-clear serialize tsx-ldtrk"
    " arch-lbr amx-bf16 avx512-fp16 amx-tile amx-int8 spec-ctrl stibp arch-capabilities"
    " core-capability ssbd",
    # CPUID 7.1 EAX
    "avx-vnni avx512-bf16",
    # CPUID 0xD.1 EAX
    "xsaveopt xsavec xgetbv1 xsaves xfd",
    # CPUID 0x12.0 EAX (SGX)
    "sgx1 sgx2",
    # CPUID 0x12.1 EAX (SGX attributes)
    "sgx-debug sgx-mode64 sgx-provisionkey sgx-tokenkey sgx-kss sgx-exinfo",
    # CPUID 0x14.0 ECX
    "intel-pt-lip",
    # CPUID 0x80000007 EDX
    "invtsc",
    # CPUID 0x80000008 EBX
    "clzero xsaveerptr wbnoinvd ibpb amd-stibp ibrs amd-ssbd virt-ssbd amd-no-ssb",
    # CPUID 0x8000000A EDX (SVM)
    "npt lbrv svm-lock nrip-save tsc-scale vmcb-clean flushbyasid decodeassists"
    " pause-filter pfthreshold avic v-vmsave-vmload vgif svme-addr-chk",
    # MSR IA32_ARCH_CAPABILITIES, IA32_CORE_CAPABILITY, IA32_PERF_CAPABILITIES
    "rdctl-no ibrs-all rsba skip-l1dfl-vmentry ssb-no mds-no pschange-mc-no tsx-ctrl"
    " taa-no split-lock-detect full-width-write",
    # The VMX capability MSRs (nested VMX controls)
    "vmx-activity-hlt vmx-activity-shutdown vmx-activity-wait-sipi vmx-apicv-register"
    " vmx-apicv-vid vmx-apicv-x2apic vmx-apicv-xapic vmx-cr3-load-noexit"
    " vmx-cr3-store-noexit vmx-cr8-load-exit vmx-cr8-store-exit vmx-desc-exit"
    " vmx-encls-exit vmx-entry-ia32e-mode vmx-entry-load-bndcfgs vmx-entry-load-efer"
    " vmx-entry-load-pat vmx-entry-load-perf-global-ctrl vmx-entry-load-pkrs"
    " vmx-entry-load-rtit-ctl vmx-entry-noload-debugctl vmx-ept vmx-ept-1gb vmx-ept-2mb"
    " vmx-ept-advanced-exitinfo vmx-ept-execonly vmx-eptad vmx-eptp-switching"
    " vmx-exit-ack-intr vmx-exit-clear-bndcfgs vmx-exit-clear-rtit-ctl vmx-exit-load-efer"
    " vmx-exit-load-pat vmx-exit-load-perf-global-ctrl vmx-exit-load-pkrs"
    " vmx-exit-nosave-debugctl vmx-exit-save-efer vmx-exit-save-pat"
    " vmx-exit-save-preemption-timer vmx-flexpriority vmx-hlt-exit vmx-ins-outs"
    " vmx-intr-exit vmx-invept vmx-invept-all-context vmx-invept-single-context"
    " vmx-invept-single-context-noglobals vmx-invlpg-exit vmx-invpcid-exit vmx-invvpid"
    " vmx-invvpid-all-context vmx-invvpid-single-addr vmx-io-bitmap vmx-io-exit"
    " vmx-monitor-exit vmx-movdr-exit vmx-msr-bitmap vmx-mtf vmx-mwait-exit vmx-nmi-exit"
    " vmx-page-walk-4 vmx-page-walk-5 vmx-pause-exit vmx-ple vmx-pml vmx-posted-intr"
    " vmx-preemption-timer vmx-rdpmc-exit vmx-rdrand-exit vmx-rdseed-exit vmx-rdtsc-exit"
    " vmx-rdtscp-exit vmx-secondary-ctls vmx-shadow-vmcs vmx-store-lma vmx-true-ctls"
    " vmx-tsc-offset vmx-tsc-scaling vmx-unrestricted-guest vmx-vintr-pending vmx-vmfunc"
    " vmx-vmwrite-vmexit-fields vmx-vnmi vmx-vnmi-pending vmx-vpid vmx-wbinvd-exit"
    " vmx-xsaves vmx-zero-len-inject",
)

#: QEMU 7.2's X86CPU boolean properties that ``-cpu MODEL,NAME=on|off`` also takes.
CPU_PROPERTIES: frozenset[str] = _words(
    "check enforce pmu l3-cache host-phys-bits lmce fill-mtrr-mask full-cpuid-auto-level"
    " cpuid-0xb x-force-features"
)

#: The properties only ``host`` and ``max`` have (QEMU refuses ``qemu64,migratable=off``).
PASSTHROUGH_PROPERTIES: frozenset[str] = _words("migratable host-cache-info")
PASSTHROUGH_MODELS: frozenset[str] = frozenset({"host", "max"})

#: QEMU's alternative names (``object_property_add_alias`` in x86_cpu_initfn) -> name.
#: ``_`` is read as ``-`` first, as QEMU's feat2prop does (``sse4_1`` is ``sse4-1``).
CPU_FLAG_ALIASES: Mapping[str, str] = MappingProxyType(
    {
        "sse3": "pni",
        "pclmuldq": "pclmulqdq",
        "sse4-1": "sse4.1",
        "sse4-2": "sse4.2",
        "xd": "nx",
        "ffxsr": "fxsr-opt",
        "i64": "lm",
    }
)


def canonical_flag(name: str) -> str:
    """``name`` as QEMU reads it: ``_`` as ``-``, then an alias as its feature name."""
    name = name.replace("_", "-")
    return CPU_FLAG_ALIASES.get(name, name)


def cpu_models() -> list[CpuModel]:
    """Every CPU model, in ``-cpu help`` order."""
    return list(CPU_MODELS.values())


def resolve_cpu(
    spec: str | CpuSpec | None,
    default_model: str,
    info: AcceleratorInfo | None = None,
    *,
    accelerators: Iterable[AcceleratorInfo] = (),
) -> CpuSpec:
    """The :class:`CpuSpec` for ``spec`` (None: the machine type's ``default_model``),
    its flags under their canonical names (``sse4_1`` -> ``sse4.1``).

    A flag must be one of QEMU's generic x86 names (:data:`X86_FEATURES`,
    :data:`CPU_PROPERTIES`, :data:`CPU_FLAG_ALIASES`) or declared in the ``cpu_flags``
    of ``info`` or of one of ``accelerators`` (the registered ones), as QEMU refuses a
    property its CPU does not have. Raises :class:`~accel.errors.ConfigError` for an
    unknown model or flag (with a did-you-mean), or for a model that needs hardware
    virtualization on an accelerator that is not (``info.hardware`` False).
    """
    if spec is None:
        cpu = CpuSpec(default_model)
    elif isinstance(spec, CpuSpec):
        cpu = spec
    else:
        try:
            cpu = CpuSpec.parse(spec)
        except InvalidArgumentError as exc:
            raise ConfigError(exc.message, hint=exc.hint, cpu=spec) from None
    model = CPU_MODELS.get(cpu.model)
    if model is None:
        guess = did_you_mean(cpu.model, list(CPU_MODELS))
        raise ConfigError(
            f"unknown CPU model {cpu.model!r}",
            hint=(f"did you mean {guess!r}? " if guess else "")
            + "models: "
            + ", ".join(CPU_MODELS),
            cpu=str(cpu),
        )
    if model.requires_hardware and info is not None and not info.hardware:
        raise ConfigError(
            f"CPU model {cpu.model!r} requires a hardware accelerator; {info.name} is not one",
            hint="use a named model such as 'qemu64' or 'max'",
            cpu=str(cpu),
            accelerator=info.name,
        )
    return _check_flags(cpu, info, accelerators)


def _check_flags(
    cpu: CpuSpec, info: AcceleratorInfo | None, accelerators: Iterable[AcceleratorInfo]
) -> CpuSpec:
    if not cpu.flags:
        return cpu
    declared: set[str] = set(info.cpu_flags if info is not None else ())
    for other in accelerators:
        declared.update(other.cpu_flags)
    flags: list[tuple[str, bool]] = []
    for name, on in cpu.flags:
        canon = canonical_flag(name)
        known = canon in X86_FEATURES or canon in CPU_PROPERTIES or canon in declared
        if not known and canon in PASSTHROUGH_PROPERTIES:
            known = cpu.model in PASSTHROUGH_MODELS
        if not known:
            if name in declared:
                canon = name
            else:
                raise _unknown_flag(cpu, name, declared)
        flags.append((canon, on))
    return CpuSpec(cpu.model, tuple(flags))


def _unknown_flag(cpu: CpuSpec, name: str, declared: set[str]) -> ConfigError:
    known = sorted({*X86_FEATURES, *CPU_PROPERTIES, *CPU_FLAG_ALIASES, *declared})
    guess = did_you_mean(name.replace("_", "-"), known)
    plugin = ", ".join(sorted(declared))
    return ConfigError(
        f"CPU model {cpu.model!r} has no flag {name!r} "
        f"(QEMU: Property '{cpu.model}-x86_64-cpu.{name}' not found)",
        hint=(f"did you mean {guess!r}? " if guess else "")
        + "a flag is one of QEMU's x86 feature names (sse4.1, x2apic, ...)"
        + (f" or one the registered accelerators declare ({plugin})" if plugin else ""),
        cpu=str(cpu),
        flag=name,
    )
