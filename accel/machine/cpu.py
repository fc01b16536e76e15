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
    "CPU_DEFINITIONS",
    "CPU_FLAG_ALIASES",
    "CPU_MODELS",
    "CPU_PROPERTIES",
    "PASSTHROUGH_PROPERTIES",
    "X86_FEATURES",
    "CpuDefinition",
    "CpuidEntry",
    "FEATURE_BITS",
    "ModelCpuidHost",
    "CpuModel",
    "canonical_flag",
    "model_cpuid",
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
            CpuModel("kvm64", "Common KVM processor"),
            CpuModel("kvm32", "Common 32-bit KVM processor", bits=32),
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


# --------------------------------------------------------------------------- named models
#: One CPUID entry as the accelerators' ABI takes it: (function, index, flags, eax, ebx,
#: ecx, edx); ``flags`` uses KVM's ``KVM_CPUID_FLAG_*`` encoding (the de-facto x86 ABI).
CpuidEntry = tuple[int, int, int, int, int, int, int]

#: ``flags`` of an entry whose subleaf (ECX) matters, and of the stateful leaf 2.
FLAG_SIGNIFICANT_INDEX = 1
FLAG_STATEFUL = 2 | 4

#: A feature word: (leaf, subleaf, register), e.g. ``(1, 0, "ecx")``.
FeatureWord = tuple[int, int, str]

_WORD_NAMES: dict[FeatureWord, str] = {
    (1, 0, "edx"): "fpu vme de pse tsc msr pae mce cx8 apic - sep mtrr pge mca cmov pat pse36"
    " pn clflush - ds acpi mmx fxsr sse sse2 ss ht tm ia64 pbe",
    (1, 0, "ecx"): "pni pclmulqdq dtes64 monitor ds-cpl vmx smx est tm2 ssse3 cid - fma cx16"
    " xtpr pdcm - pcid dca sse4.1 sse4.2 x2apic movbe popcnt tsc-deadline aes xsave -"
    " avx f16c rdrand hypervisor",
    (0x80000001, 0, "edx"): "- - - - - - - - - - - syscall - - - - - - - - nx - mmxext -"
    " - fxsr-opt pdpe1gb rdtscp - lm 3dnowext 3dnow",
    (0x80000001, 0, "ecx"): "lahf-lm cmp-legacy svm extapic cr8legacy abm sse4a"
    " misalignsse 3dnowprefetch osvw ibs xop skinit wdt - lwp fma4 tce - nodeid-msr - tbm"
    " topoext perfctr-core perfctr-nb",
    (0x8000000A, 0, "edx"): "npt lbrv svm-lock nrip-save tsc-scale vmcb-clean flushbyasid"
    " decodeassists - - pause-filter - pfthreshold avic - v-vmsave-vmload vgif - - - - - -"
    " - - - - - svme-addr-chk",
    (7, 0, "ebx"): "fsgsbase tsc-adjust sgx bmi1 hle avx2 - smep bmi2 erms invpcid rtm - -"
    " mpx - avx512f avx512dq rdseed adx smap avx512ifma pcommit clflushopt clwb intel-pt"
    " avx512pf avx512er avx512cd sha-ni avx512bw avx512vl",
    (7, 0, "ecx"): "- avx512vbmi umip pku - waitpkg avx512vbmi2 - gfni vaes vpclmulqdq"
    " avx512vnni avx512bitalg - avx512-vpopcntdq - la57 - - - - - rdpid - bus-lock-detect"
    " cldemote - movdiri movdir64b - sgxlc pks",
    (7, 0, "edx"): "- - avx512-4vnniw avx512-4fmaps fsrm - - - avx512-vp2intersect -"
    " md-clear - - - serialize - tsx-ldtrk - - arch-lbr - - amx-bf16 avx512-fp16 amx-tile"
    " amx-int8 spec-ctrl stibp - arch-capabilities core-capability ssbd",
    (7, 1, "eax"): "- - - - avx-vnni avx512-bf16",
    (6, 0, "eax"): "- - arat",
    (0xD, 1, "eax"): "xsaveopt xsavec xgetbv1 xsaves xfd",
    (0x80000007, 0, "edx"): "- - - - - - - - invtsc",
    (0x80000008, 0, "ebx"): "clzero - xsaveerptr - - - - - - wbnoinvd - - ibpb - ibrs"
    " amd-stibp - - - - - - - - amd-ssbd virt-ssbd amd-no-ssb",
}

#: QEMU 7.2's CPUID feature names (``feature_word_info``) -> (word, bit), for the words
#: a named model fills.
FEATURE_BITS: Mapping[str, tuple[FeatureWord, int]] = MappingProxyType(
    {
        name: (word, bit)
        for word, names in _WORD_NAMES.items()
        for bit, name in enumerate(names.split())
        if name != "-"
    }
)

_L1_EDX = (1, 0, "edx")
_L1_ECX = (1, 0, "ecx")
_EXT_EDX = (0x80000001, 0, "edx")
_EXT_ECX = (0x80000001, 0, "ecx")
_SVM = (0x8000000A, 0, "edx")
#: CPUID[1].EDX bits an AMD CPU repeats in CPUID[0x80000001].EDX (CPUID_EXT2_AMD_ALIASES).
_AMD_ALIASES = 0x0183F3FF


@dataclasses.dataclass(frozen=True, slots=True)
class _Cache:
    """One cache as QEMU's CPUCacheInfo describes it."""

    kind: int  # CPUID[4] type: 1 data, 2 instruction, 3 unified
    level: int
    size: int
    line: int
    assoc: int
    sets: int
    lines_per_tag: int = 0
    self_init: bool = False
    no_invd_sharing: bool = False
    inclusive: bool = False
    complex_indexing: bool = False


_K = 1024
_M = 1024 * 1024
#: QEMU 7.2's legacy caches (models without cache_info): CPUID 2/4 (Intel) and the AMD
#: leaves 0x80000005/6; ``l3`` is the same in both.
_LEGACY_CPUID4 = (
    _Cache(1, 1, 32 * _K, 64, 8, 64, self_init=True, no_invd_sharing=True),
    _Cache(2, 1, 32 * _K, 64, 8, 64, self_init=True, no_invd_sharing=True),
    _Cache(3, 2, 4 * _M, 64, 16, 4096, self_init=True, no_invd_sharing=True),
)
_LEGACY_L3 = _Cache(3, 3, 16 * _M, 64, 16, 16384, 1, True, False, True, True)
_LEGACY_AMD = (
    _Cache(1, 1, 64 * _K, 64, 2, 512, 1, True, True),
    _Cache(2, 1, 64 * _K, 64, 2, 512, 1, True, True),
    _Cache(3, 2, 512 * _K, 64, 16, 512, 1),
    _LEGACY_L3,
)
#: QEMU 7.2's ``epyc_cache_info``.
_EPYC_CACHES = (
    _Cache(1, 1, 32 * _K, 64, 8, 64, 1, True, True),
    _Cache(2, 1, 64 * _K, 64, 4, 256, 1, True, True),
    _Cache(3, 2, 512 * _K, 64, 8, 1024, 1),
    _Cache(3, 3, 8 * _M, 64, 16, 8192, 1, True, False, True, True),
)
#: CPUID[2] descriptors of the legacy caches: L1d 0x2c, L1i 0x30, L2 (2 MiB) 0x7d, L3 0x4d.
_LEGACY_CPUID2 = (0x2C, 0x30, 0x7D, 0x4D)


@dataclasses.dataclass(frozen=True, slots=True)
class CpuDefinition:
    """A named model as QEMU 7.2's ``builtin_x86_defs`` (version 1, which the pc and q35
    machine types of 7.2 resolve the unversioned alias to) defines it."""

    name: str
    vendor: str
    family: int
    model: int
    stepping: int
    level: int
    xlevel: int
    model_id: str
    features: frozenset[str]
    caches: tuple[_Cache, ...] = _LEGACY_AMD  # the AMD-leaf caches; legacy unless given

    @property
    def version(self) -> int:
        """CPUID[1].EAX: stepping, model, family with QEMU's extended fields."""
        f, m = self.family, self.model
        eax = (0xF << 8) | ((f - 0xF) << 20) if f > 0xF else f << 8
        return eax | ((m & 0xF) << 4) | ((m >> 4) << 16) | self.stepping


def _def(
    name: str,
    vendor: str,
    family: int,
    model: int,
    stepping: int,
    level: int,
    xlevel: int,
    model_id: str,
    features: str,
    caches: tuple[_Cache, ...] = _LEGACY_AMD,
) -> CpuDefinition:
    feats = frozenset(features.split())
    unknown = feats - FEATURE_BITS.keys()
    assert not unknown, (name, unknown)
    return CpuDefinition(
        name, vendor, family, model, stepping, level, xlevel, model_id, feats, caches
    )


_PPRO = "fpu de pse tsc msr pae mce cx8 apic sep pge cmov pat mmx fxsr sse sse2"
_BASE64 = "fpu de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx"
_BASE64 += " fxsr sse sse2 pni cx16 hypervisor syscall nx lm"
_NEHALEM = _BASE64 + " vme ssse3 sse4.1 sse4.2 popcnt lahf-lm"
_SANDY = _NEHALEM + " pclmulqdq x2apic tsc-deadline aes xsave avx rdtscp arat xsaveopt"
_HASWELL = (
    _SANDY + " fma pcid movbe f16c rdrand abm fsgsbase bmi1 hle avx2 smep bmi2 erms invpcid rtm"
)

#: The named models with QEMU 7.2's definitions (``-cpu help`` order), read-only.
CPU_DEFINITIONS: Mapping[str, CpuDefinition] = MappingProxyType(
    {
        d.name: d
        for d in (
            _def("qemu64", "AuthenticAMD", 15, 107, 1, 0xD, 0x8000000A,
                 "QEMU Virtual CPU version 2.5+", _BASE64 + " lahf-lm svm"),
            _def("qemu32", "GenuineIntel", 6, 6, 3, 0x4, 0x80000004,
                 "QEMU Virtual CPU version 2.5+", _PPRO + " pni hypervisor"),
            _def("kvm64", "GenuineIntel", 15, 6, 1, 0xD, 0x80000008,
                 "Common KVM processor", _BASE64 + " vme"),
            _def("kvm32", "GenuineIntel", 15, 6, 1, 0x5, 0x80000008,
                 "Common 32-bit KVM processor",
                 _PPRO + " vme mtrr mca pse36 clflush pni hypervisor"),
            _def("486", "GenuineIntel", 4, 8, 0, 0x1, 0, "", "fpu vme pse hypervisor"),
            _def("pentium", "GenuineIntel", 5, 4, 3, 0x1, 0, "",
                 "fpu vme de pse tsc msr mce cx8 apic mmx hypervisor"),
            _def("pentium2", "GenuineIntel", 6, 5, 2, 0x2, 0, "",
                 "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat"
                 " pse36 mmx fxsr hypervisor"),
            _def("pentium3", "GenuineIntel", 6, 7, 3, 0x3, 0, "",
                 "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat"
                 " pse36 mmx fxsr sse hypervisor"),
            _def("core2duo", "GenuineIntel", 6, 15, 11, 0xA, 0x80000008,
                 "Intel(R) Core(TM)2 Duo CPU     T7700  @ 2.40GHz",
                 _BASE64 + " vme acpi ss monitor ssse3 lahf-lm"),
            _def("Nehalem", "GenuineIntel", 6, 26, 3, 0xB, 0x80000008,
                 "Intel Core i7 9xx (Nehalem Class Core i7)", _NEHALEM),
            _def("SandyBridge", "GenuineIntel", 6, 42, 1, 0xD, 0x80000008,
                 "Intel Xeon E312xx (Sandy Bridge)", _SANDY),
            _def("Haswell", "GenuineIntel", 6, 60, 4, 0xD, 0x80000008,
                 "Intel Core Processor (Haswell)", _HASWELL),
            _def("Skylake-Client", "GenuineIntel", 6, 94, 3, 0xD, 0x80000008,
                 "Intel Core Processor (Skylake)",
                 _HASWELL + " 3dnowprefetch rdseed adx smap xsavec xgetbv1"),
            _def("EPYC", "AuthenticAMD", 23, 1, 2, 0xD, 0x8000001E, "AMD EPYC Processor",
                 _BASE64 + " vme pclmulqdq monitor ssse3 fma sse4.1 sse4.2 movbe popcnt"
                 " aes xsave avx f16c rdrand mmxext fxsr-opt pdpe1gb rdtscp lahf-lm svm"
                 " cr8legacy abm sse4a misalignsse 3dnowprefetch osvw topoext npt"
                 " nrip-save fsgsbase bmi1 avx2 smep bmi2 rdseed adx smap clflushopt"
                 " sha-ni arat xsaveopt xsavec xgetbv1", _EPYC_CACHES),
        )
    }
)  # fmt: skip


@dataclasses.dataclass(frozen=True, slots=True)
class ModelCpuidHost:
    """What an accelerator tells :func:`model_cpuid` about itself.

    ``supported`` maps a feature word to the bits the accelerator can give (a word not
    there: none); ``defaults`` the flags it switches on or off for every named model
    before the user's (QEMU's accelerator default properties); ``vendor`` replaces the
    model's vendor where the accelerator runs the host's (QEMU under KVM gives the host's
    vendor); ``xsave`` maps an XSAVE component (2..63) to its (size, offset), and
    ``xcr0`` the components it supports. ``phys_bits`` is CPUID[0x80000008].EAX's
    physical address width of a 64-bit model (QEMU's default 40).
    """

    supported: Mapping[FeatureWord, int]
    defaults: Mapping[str, bool] = dataclasses.field(default_factory=dict)
    vendor: str | None = None
    xsave: Mapping[int, tuple[int, int]] = dataclasses.field(default_factory=dict)
    xcr0: int = 0
    phys_bits: int = 40


def _vendor_words(vendor: str) -> tuple[int, int, int]:
    raw = vendor.encode().ljust(12, b"\0")[:12]
    return (
        int.from_bytes(raw[0:4], "little"),
        int.from_bytes(raw[4:8], "little"),
        int.from_bytes(raw[8:12], "little"),
    )


def _amd_assoc(ways: int) -> int:
    table = {0: 0, 1: 1, 2: 2, 4: 4, 8: 6, 16: 8, 32: 0xA, 48: 0xB, 64: 0xC, 96: 0xD}
    return table.get(ways, 0xF)


def _amd_l1(c: _Cache) -> int:
    return (c.size // _K) << 24 | c.assoc << 16 | c.lines_per_tag << 8 | c.line


def _cpuid4(c: _Cache) -> tuple[int, int, int, int]:
    eax = c.kind | c.level << 5 | (0x100 if c.self_init else 0)
    ebx = (c.line - 1) | (c.assoc - 1) << 22
    edx = int(c.no_invd_sharing) | int(c.inclusive) << 1 | int(c.complex_indexing) << 2
    return eax, ebx, c.sets - 1, edx


def _words_of(
    definition: CpuDefinition, cpu: CpuSpec, defaults: Mapping[str, bool]
) -> dict[FeatureWord, int]:
    on = set(definition.features)
    for name, value in (*defaults.items(), *cpu.flags):
        name = canonical_flag(name)
        if name in FEATURE_BITS:
            (on.add if value else on.discard)(name)
    words: dict[FeatureWord, int] = {}
    for name in on:
        word, bit = FEATURE_BITS[name]
        words[word] = words.get(word, 0) | 1 << bit
    if not words.get(_EXT_ECX, 0) & 1 << FEATURE_BITS["svm"][1]:
        words.pop(_SVM, None)  # no SVM: no SVM features
    return words


def model_cpuid(
    definition: CpuDefinition,
    cpu: CpuSpec,
    host: ModelCpuidHost,
    *,
    apic_id: int = 0,
    cores: int = 1,
) -> list[CpuidEntry]:
    """The CPUID QEMU 7.2 gives a vCPU of ``definition`` with ``cpu``'s flags, for an
    accelerator described by ``host`` (what it supports, its defaults).

    As QEMU: the model's features, then the accelerator's defaults, then the user's
    flags; the levels raised to cover every feature word in use (full-cpuid-auto-level);
    then each word filtered by what the accelerator supports; the AMD aliases of
    CPUID[1].EDX copied into CPUID[0x80000001].EDX for an AMD vendor. The leaves are
    0..level and 0x80000000..xlevel as QEMU's ``cpu_x86_cpuid`` fills them for a vCPU
    with ``apic_id`` in a socket of ``cores`` cores of one thread each (QEMU 7.2's
    ``-smp N``: N cores; 1 for the sockets of older machine types); all-zero leaves are left out,
    as QEMU's KVM code does (a missing leaf reads as zeros). The accelerator's own leaves
    (a hypervisor range) are not here.
    """
    words = _words_of(definition, cpu, host.defaults)
    level, xlevel, func7 = definition.level, definition.xlevel, 0
    for (leaf, sub, _reg), bits in words.items():
        if not bits:
            continue
        if leaf >= 0x80000000:
            xlevel = max(xlevel, leaf)
        else:
            level = max(level, leaf)
            if leaf == 7:
                func7 = max(func7, sub)
    if words.get(_EXT_ECX, 0) & 1 << FEATURE_BITS["svm"][1]:
        xlevel = max(xlevel, 0x8000000A)  # SVM requires CPUID[0x8000000A]
    for word in list(words):
        words[word] &= host.supported.get(word, 0)
    vendor = host.vendor or definition.vendor
    amd = vendor in ("AuthenticAMD", "HygonGenuine")
    intel = vendor == "GenuineIntel"
    if amd:
        edx = words.get(_EXT_EDX, 0) & ~_AMD_ALIASES
        words[_EXT_EDX] = edx | (words.get(_L1_EDX, 0) & _AMD_ALIASES)

    def w(leaf: int, sub: int, reg: str) -> int:
        return words.get((leaf, sub, reg), 0)

    vb, vd, vc = _vendor_words(vendor)
    out: list[CpuidEntry] = []
    # One socket of ``cores`` cores, one thread each: the core ID is the APIC ID, the
    # package's APIC-ID field is ceil(log2(cores)) bits wide.
    pkg_bits = (cores - 1).bit_length()
    multi = cores > 1
    leaf1_ebx = apic_id << 24 | 8 << 8 | (cores << 16 if multi else 0)
    leaf1_edx = w(1, 0, "edx") | (1 << 28 if multi else 0)  # HT: more than one per package

    def put(fn: int, idx: int, flags: int, *regs: int) -> None:
        if any(regs) or flags & FLAG_SIGNIFICANT_INDEX or fn == 2:
            out.append((fn, idx, flags, *regs))  # type: ignore[arg-type]

    xsave = bool(w(1, 0, "ecx") & 1 << FEATURE_BITS["xsave"][1])
    xcr0 = _xcr0(words, host) if xsave else 0
    for leaf in range(level + 1):
        if leaf == 0:
            put(0, 0, 0, level, vb, vc, vd)
        elif leaf == 1:
            put(1, 0, 0, definition.version, leaf1_ebx, w(1, 0, "ecx"), leaf1_edx)
        elif leaf == 2:
            regs = (1, 0, _LEGACY_CPUID2[3], *_cpuid2_edx()) if intel else (0, 0, 0, 0)
            put(2, 0, FLAG_STATEFUL, *regs)
        elif leaf == 4:
            caches = (*_LEGACY_CPUID4, _LEGACY_L3) if intel else ()
            for i, cache in enumerate(caches):
                c_eax, c_ebx, c_ecx, c_edx = _cpuid4(cache)
                sharing = (1 << pkg_bits) - 1 if cache.level == 3 else 0
                c_eax |= (cores - 1) << 26 | sharing << 14
                put(4, i, FLAG_SIGNIFICANT_INDEX, c_eax, c_ebx, c_ecx, c_edx)
            put(4, len(caches), FLAG_SIGNIFICANT_INDEX, 0, 0, 0, 0)
        elif leaf == 5:
            put(5, 0, 0, 0, 0, 3, 0)  # MONITOR/MWAIT: EMX | IBE
        elif leaf == 6:
            put(6, 0, 0, w(6, 0, "eax"), 0, 0, 0)
        elif leaf == 7:
            put(7, 0, FLAG_SIGNIFICANT_INDEX, func7, w(7, 0, "ebx"), w(7, 0, "ecx"),
                w(7, 0, "edx"))  # fmt: skip
            if func7 >= 1:
                put(7, 1, FLAG_SIGNIFICANT_INDEX, w(7, 1, "eax"), 0, 0, 0)
        elif leaf == 0xB:
            put(0xB, 0, FLAG_SIGNIFICANT_INDEX, 0, 1, 0x100, apic_id)
            put(0xB, 1, FLAG_SIGNIFICANT_INDEX, pkg_bits, cores, 0x201, apic_id)
            put(0xB, 2, FLAG_SIGNIFICANT_INDEX, 0, 0, 2, apic_id)
        elif leaf == 0xD and xsave:
            size = _xsave_size(xcr0, host)
            put(0xD, 0, FLAG_SIGNIFICANT_INDEX, xcr0 & 0xFFFFFFFF, size, size, xcr0 >> 32)
            put(0xD, 1, FLAG_SIGNIFICANT_INDEX, w(0xD, 1, "eax"), 0, 0, 0)
            for comp in range(2, 64):
                if xcr0 >> comp & 1:
                    csize, offset = host.xsave[comp]
                    put(0xD, comp, FLAG_SIGNIFICANT_INDEX, csize, offset, 0, 0)
    if xlevel >= 0x80000000:
        virt = 57 if w(7, 0, "ecx") & 1 << FEATURE_BITS["la57"][1] else 48
        lm = bool(w(0x80000001, 0, "edx") & 1 << FEATURE_BITS["lm"][1])
        pse36 = bool(w(1, 0, "edx") & 1 << FEATURE_BITS["pse36"][1])
        phys = host.phys_bits if lm else (36 if pse36 else 32)
        model_id = definition.model_id.encode().ljust(48, b"\0")[:48]
        l1d, l1i, l2, l3 = definition.caches
        for leaf in range(0x80000000, xlevel + 1):
            if leaf == 0x80000000:
                put(leaf, 0, 0, xlevel, vb, vc, vd)
            elif leaf == 0x80000001:
                # CmpLegacy with more than one core, but not for Intel (Linux then drops
                # the thread information).
                ecx = w(leaf, 0, "ecx") | (2 if multi and not intel else 0)
                put(leaf, 0, 0, definition.version, 0, ecx, w(leaf, 0, "edx"))
            elif leaf <= 0x80000004:
                base = (leaf - 0x80000002) * 16
                chars = [int.from_bytes(model_id[base + 4 * i : base + 4 * i + 4], "little")
                         for i in range(4)]  # fmt: skip
                put(leaf, 0, 0, *chars)
            elif leaf == 0x80000005 and not intel:
                put(leaf, 0, 0, 0x01FF01FF, 0x01FF01FF, _amd_l1(l1d), _amd_l1(l1i))
            elif leaf == 0x80000006:
                ecx = (l2.size // _K) << 16 | _amd_assoc(l2.assoc) << 12
                ecx |= l2.lines_per_tag << 8 | l2.line
                edx = (l3.size // (512 * _K)) << 18 | _amd_assoc(l3.assoc) << 12
                edx |= l3.lines_per_tag << 8 | l3.line
                put(leaf, 0, 0, 0, 0x42004200, ecx, edx)
            elif leaf == 0x80000007:
                put(leaf, 0, 0, 0, 0, 0, w(leaf, 0, "edx"))
            elif leaf == 0x80000008:
                ecx = (cores - 1) | pkg_bits << 12 if multi else 0
                put(leaf, 0, 0, phys | (virt << 8 if lm else 0), w(leaf, 0, "ebx"), ecx, 0)
            elif leaf == 0x8000000A and w(0x80000001, 0, "ecx") & 1 << FEATURE_BITS["svm"][1]:
                put(leaf, 0, 0, 1, 0x10, 0, w(leaf, 0, "edx"))
            elif leaf == 0x8000001D and w(0x80000001, 0, "ecx") & 1 << FEATURE_BITS["topoext"][1]:
                for i, cache in enumerate(definition.caches):
                    c_eax, c_ebx, c_ecx, c_edx = _cpuid4(cache)
                    c_eax |= (cores - 1 if cache.level == 3 else 0) << 14  # L3: the socket's
                    put(leaf, i, FLAG_SIGNIFICANT_INDEX, c_eax, c_ebx, c_ecx, c_edx)
                put(leaf, len(definition.caches), FLAG_SIGNIFICANT_INDEX, 0, 0, 0, 0)
            elif leaf == 0x8000001E and w(0x80000001, 0, "ecx") & 1 << FEATURE_BITS["topoext"][1]:
                core_id = apic_id & ((1 << pkg_bits) - 1)
                put(leaf, 0, 0, apic_id, core_id, apic_id >> pkg_bits, 0)  # core, socket
    return out


def _cpuid2_edx() -> tuple[int]:
    l1d, l1i, l2, _l3 = _LEGACY_CPUID2
    return (l1d << 16 | l1i << 8 | l2,)


#: The XSAVE components a CPUID feature needs (QEMU's x86_ext_save_areas): AVX's YMM,
#: AVX-512's opmask/ZMM_Hi256/Hi16_ZMM, MPX's two, PKU's PKRU.
_XSAVE_NEEDS = {
    2: ((1, 0, "ecx"), "avx"),
    3: ((7, 0, "ebx"), "mpx"),
    4: ((7, 0, "ebx"), "mpx"),
    5: ((7, 0, "ebx"), "avx512f"),
    6: ((7, 0, "ebx"), "avx512f"),
    7: ((7, 0, "ebx"), "avx512f"),
    9: ((7, 0, "ecx"), "pku"),
}


def _xcr0(words: Mapping[FeatureWord, int], host: ModelCpuidHost) -> int:
    xcr0 = 0b11  # x87 and SSE
    for comp, (word, name) in _XSAVE_NEEDS.items():
        if words.get(word, 0) & 1 << FEATURE_BITS[name][1]:
            xcr0 |= 1 << comp
    return xcr0 & (host.xcr0 | 0b11)


def _xsave_size(xcr0: int, host: ModelCpuidHost) -> int:
    end = 0x240  # legacy area + XSAVE header
    for comp in range(2, 64):
        if xcr0 >> comp & 1 and comp in host.xsave:
            size, offset = host.xsave[comp]
            end = max(end, offset + size)
    return end
