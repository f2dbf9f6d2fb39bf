//! What Xen 4.17's hypervisor checks in the x86 records every domain type shares: the TSC
//! mode (`tsc_set_info`, `xen/arch/x86/time.c`), the CPUID and MSR policy records
//! (`x86_cpuid_copy_from_buffer`, `x86_msr_copy_from_buffer`, `xen/lib/x86/`), and a view of
//! the domain's CPUID policy for the rules that depend on it ([`CpuPolicy`]: features, the
//! XSAVE layout, the physical address width).
//!
//! A policy rule can only say "no" where the stream's policy lacks a feature: Xen merges the
//! stream's leaves into the domain's default policy and may clear more (never add), so a
//! feature absent from a leaf the stream sends is absent in the domain. A leaf the stream does
//! not send is unknown and its rules are not applied.

use crate::Violation;

/// `XEN_CPUID_NO_SUBLEAF`: the subleaf of a leaf without subleaves.
pub const NO_SUBLEAF: u32 = u32::MAX;

/// Register of a CPUID leaf.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reg {
    /// EAX.
    Eax = 0,
    /// EBX.
    Ebx = 1,
    /// ECX.
    Ecx = 2,
    /// EDX.
    Edx = 3,
}

/// A CPUID feature bit: where it is and Xen's name for it (`cpufeatureset.h`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Feature {
    /// Xen's name.
    pub name: &'static str,
    /// Leaf.
    pub leaf: u32,
    /// Subleaf ([`NO_SUBLEAF`] for leaves without).
    pub subleaf: u32,
    /// Register.
    pub reg: Reg,
    /// Bit.
    pub bit: u32,
}

macro_rules! features {
    ($($id:ident = $name:literal, $leaf:expr, $sub:expr, $reg:ident, $bit:expr;)*) => {
        /// The features the load rules depend on.
        #[allow(missing_docs)]
        pub mod feature {
            use super::{Feature, Reg, NO_SUBLEAF};
            $(pub const $id: Feature = Feature { name: $name, leaf: $leaf, subleaf: $sub, reg: Reg::$reg, bit: $bit };)*
        }
    };
}

features! {
    VME = "vme", 1, NO_SUBLEAF, Edx, 1;
    DE = "de", 1, NO_SUBLEAF, Edx, 2;
    PSE = "pse", 1, NO_SUBLEAF, Edx, 3;
    TSC = "tsc", 1, NO_SUBLEAF, Edx, 4;
    PAE = "pae", 1, NO_SUBLEAF, Edx, 6;
    MCE = "mce", 1, NO_SUBLEAF, Edx, 7;
    PGE = "pge", 1, NO_SUBLEAF, Edx, 13;
    MCA = "mca", 1, NO_SUBLEAF, Edx, 14;
    FXSR = "fxsr", 1, NO_SUBLEAF, Edx, 24;
    SSE = "sse", 1, NO_SUBLEAF, Edx, 25;
    VMX = "vmx", 1, NO_SUBLEAF, Ecx, 5;
    PCID = "pcid", 1, NO_SUBLEAF, Ecx, 17;
    XSAVE = "xsave", 1, NO_SUBLEAF, Ecx, 26;
    SYSCALL = "syscall", 0x8000_0001, NO_SUBLEAF, Edx, 11;
    NX = "nx", 0x8000_0001, NO_SUBLEAF, Edx, 20;
    FFXSR = "ffxsr", 0x8000_0001, NO_SUBLEAF, Edx, 25;
    RDTSCP = "rdtscp", 0x8000_0001, NO_SUBLEAF, Edx, 27;
    LM = "lm", 0x8000_0001, NO_SUBLEAF, Edx, 29;
    SVM = "svm", 0x8000_0001, NO_SUBLEAF, Ecx, 2;
    DBEXT = "dbext", 0x8000_0001, NO_SUBLEAF, Ecx, 26;
    XSAVES = "xsaves", 0xd, 1, Eax, 3;
    FSGSBASE = "fsgsbase", 7, 0, Ebx, 0;
    SMEP = "smep", 7, 0, Ebx, 7;
    MPX = "mpx", 7, 0, Ebx, 14;
    SMAP = "smap", 7, 0, Ebx, 20;
    UMIP = "umip", 7, 0, Ecx, 2;
    PKU = "pku", 7, 0, Ecx, 3;
    CET_SS = "cet-ss", 7, 0, Ecx, 7;
    RDPID = "rdpid", 7, 0, Ecx, 22;
    CET_IBT = "cet-ibt", 7, 0, Edx, 20;
    IBRSB = "ibrsb", 7, 0, Edx, 26;
    IBRS = "ibrs", 0x8000_0008, NO_SUBLEAF, Ebx, 14;
    VIRT_SSBD = "virt-ssbd", 0x8000_0008, NO_SUBLEAF, Ebx, 25;
}

/// The domain's CPUID policy as the stream's X86_CPUID_POLICY record gives it.
#[derive(Clone, Copy, Debug)]
pub struct CpuPolicy<'a> {
    leaves: &'a [[u32; 6]],
}

/// Bytes of the XSAVE legacy region and header: the least any XSAVE area holds.
pub const XSTATE_AREA_MIN_SIZE: u64 = 576;

impl<'a> CpuPolicy<'a> {
    /// The policy of `leaves` (leaf, subleaf, eax, ebx, ecx, edx), or `None` when the stream
    /// sent none.
    pub fn new(leaves: &'a [[u32; 6]]) -> Option<Self> {
        (!leaves.is_empty()).then_some(Self { leaves })
    }

    /// A leaf's registers; the last entry wins, as in Xen's merge. `None` if not sent.
    pub fn leaf(&self, leaf: u32, subleaf: u32) -> Option<[u32; 4]> {
        self.leaves.iter().rev().find(|l| l[0] == leaf && l[1] == subleaf).map(|l| [l[2], l[3], l[4], l[5]])
    }

    /// Whether the policy has `f`; `None` if its leaf was not sent.
    pub fn has(&self, f: Feature) -> Option<bool> {
        self.leaf(f.leaf, f.subleaf).map(|r| r[f.reg as usize] >> f.bit & 1 != 0)
    }

    /// `Some(true)` only when the policy is known to lack `f`.
    pub fn lacks(&self, f: Feature) -> bool {
        self.has(f) == Some(false)
    }

    /// The XCR0 bits the guest may set (leaf 0xd subleaf 0, EDX:EAX; `cpu_policy_xcr0_max`).
    pub fn xcr0_max(&self) -> Option<u64> {
        self.leaf(0xd, 0).map(|r| u64::from(r[3]) << 32 | u64::from(r[0]))
    }

    /// Size of the standard-form (uncompressed) XSAVE area for `xcr0`, as Xen's
    /// `xstate_ctxt_size` computes it from the hardware: the end of the highest component
    /// (leaf 0xd subleaf i: EAX size, EBX offset), at least the legacy region and header; 0
    /// for `xcr0` 0. `None` if a component's subleaf was not sent.
    pub fn xstate_size(&self, xcr0: u64) -> Option<u64> {
        if xcr0 == 0 {
            return Some(0);
        }
        let mut size = XSTATE_AREA_MIN_SIZE;
        for i in 2..63 {
            if xcr0 >> i & 1 != 0 {
                let r = self.leaf(0xd, i)?;
                size = size.max(u64::from(r[1]) + u64::from(r[0]));
            }
        }
        Some(size)
    }

    /// The guest's physical address width (leaf 0x80000008 EAX bits 0-7).
    pub fn maxphysaddr(&self) -> Option<u32> {
        self.leaf(0x8000_0008, NO_SUBLEAF).map(|r| r[0] & 0xff)
    }
}

/// XCR0 bits (`X86_XCR0_*`).
mod xcr0 {
    pub const FP: u64 = 1 << 0;
    pub const SSE: u64 = 1 << 1;
    pub const YMM: u64 = 1 << 2;
    pub const BNDREGS: u64 = 1 << 3;
    pub const BNDCSR: u64 = 1 << 4;
    pub const OPMASK: u64 = 1 << 5;
    pub const ZMM: u64 = 1 << 6;
    pub const HI_ZMM: u64 = 1 << 7;
}

/// Why an XCR0 value is not one a CPU can hold (Xen's `valid_xcr0`), or `None`.
pub fn invalid_xcr0(v: u64) -> Option<&'static str> {
    use xcr0::*;
    if v & FP == 0 {
        return Some("x87 (bit 0) clear");
    }
    if v & YMM != 0 && v & SSE == 0 {
        return Some("YMM without SSE");
    }
    let avx512 = OPMASK | ZMM | HI_ZMM;
    if v & avx512 != 0 && (v & YMM == 0 || v & avx512 != avx512) {
        return Some("OPMASK, ZMM and HI_ZMM not all set together with YMM");
    }
    if (v & BNDREGS == 0) != (v & BNDCSR == 0) {
        return Some("BNDREGS and BNDCSR differ");
    }
    None
}

/// Xen's `validate_xstate`: the XCR0 pair and the XSAVE header of a saved area, against the
/// domain's policy when known. `xstate_bv`, `xcomp_bv` and `reserved` are the header's fields.
///
/// # Errors
/// The rule broken, as text.
pub fn validate_xstate(
    policy: Option<&CpuPolicy<'_>>,
    xcr0: u64,
    xcr0_accum: u64,
    xstate_bv: u64,
    xcomp_bv: u64,
    reserved: &[u64],
) -> Result<(), String> {
    if xstate_bv & !xcr0_accum != 0 {
        return Err(format!("xstate_bv {xstate_bv:#x} has components outside xcr0_accum {xcr0_accum:#x}"));
    }
    if xcr0 & !xcr0_accum != 0 {
        return Err(format!("xcr0 {xcr0:#x} has bits outside xcr0_accum {xcr0_accum:#x}"));
    }
    if let Some(max) = policy.and_then(CpuPolicy::xcr0_max)
        && xcr0_accum & !max != 0
    {
        return Err(format!("xcr0_accum {xcr0_accum:#x} has bits the CPUID policy does not offer (max {max:#x})"));
    }
    if let Some(why) = invalid_xcr0(xcr0) {
        return Err(format!("xcr0 {xcr0:#x} is not a valid XCR0: {why}"));
    }
    if let Some(why) = invalid_xcr0(xcr0_accum) {
        return Err(format!("xcr0_accum {xcr0_accum:#x} is not a valid XCR0: {why}"));
    }
    if xcomp_bv != 0 {
        return Err(format!("xcomp_bv {xcomp_bv:#x}: only the standard (uncompressed) form loads"));
    }
    if let Some((i, v)) = reserved.iter().enumerate().find(|(_, v)| **v != 0) {
        return Err(format!("XSAVE header reserved word {i} is {v:#x}, must be zero"));
    }
    Ok(())
}

/// TSC modes Xen 4.17 accepts (`tsc_set_info`): 0 default, 1 always emulate, 2 never
/// emulate (PVRDTSCP, 3, was removed).
pub const TSC_MODE_MAX: u32 = 2;

/// X86_TSC_INFO: the mode must be one `tsc_set_info` accepts.
///
/// # Errors
/// [`Violation::TscMode`].
pub fn check_tsc_mode(mode: u32) -> Result<(), Violation> {
    if mode > TSC_MODE_MAX { Err(Violation::TscMode { mode }) } else { Ok(()) }
}

/// Leaves a 4.17 policy holds (`CPUID_MAX_SERIALISED_LEAVES`).
pub const CPUID_MAX_SERIALISED_LEAVES: usize = 14 + 2 + 5 + 1 + 62 + 0x22 + 2;

/// X86_CPUID_POLICY as `x86_cpuid_copy_from_buffer` loads it: at most
/// [`CPUID_MAX_SERIALISED_LEAVES`] entries, each leaf one the policy has room for (basic
/// leaves 0-0xd, with subleaves only for 4 (< 6), 7 (< 3), 0xb (< 2) and 0xd (< 63); 0x40000000
/// and 0x40000100; extended leaves 0x80000000-0x80000021), others without a subleaf.
///
/// # Errors
/// [`Violation::CpuidPolicy`] for the first entry out of range.
pub fn check_cpuid_policy(leaves: &[[u32; 6]]) -> Result<(), Violation> {
    if leaves.len() > CPUID_MAX_SERIALISED_LEAVES {
        return Err(Violation::CpuidPolicy {
            leaf: None,
            rule: format!(
                "{} leaves, more than the {CPUID_MAX_SERIALISED_LEAVES} a policy holds (-E2BIG)",
                leaves.len()
            ),
        });
    }
    for l in leaves {
        let (leaf, subleaf) = (l[0], l[1]);
        let sub_limit = match leaf {
            4 => Some(6),
            7 => Some(3),
            0xb => Some(2),
            0xd => Some(63),
            0..=0xc | 0x4000_0000 | 0x4000_0100 | 0x8000_0000..=0x8000_0021 => None,
            _ => {
                return Err(Violation::CpuidPolicy {
                    leaf: Some((leaf, subleaf)),
                    rule: "no such leaf in a Xen 4.17 policy (out of range)".into(),
                });
            }
        };
        let ok = match sub_limit {
            Some(n) => subleaf < n,
            None => subleaf == NO_SUBLEAF,
        };
        if !ok {
            let rule = match sub_limit {
                Some(n) => format!("subleaf out of range (this leaf has {n})"),
                None => "this leaf has no subleaves (subleaf must be 0xffffffff)".into(),
            };
            return Err(Violation::CpuidPolicy { leaf: Some((leaf, subleaf)), rule });
        }
    }
    Ok(())
}

/// `MSR_INTEL_PLATFORM_INFO`.
pub const MSR_INTEL_PLATFORM_INFO: u32 = 0xce;
/// `MSR_ARCH_CAPABILITIES`.
pub const MSR_ARCH_CAPABILITIES: u32 = 0x10a;

/// X86_MSR_POLICY as `x86_msr_copy_from_buffer` loads it: at most 2 entries, flags zero, only
/// PLATFORM_INFO (a 32-bit value) and ARCH_CAPABILITIES.
///
/// # Errors
/// [`Violation::MsrPolicy`] for the first bad entry.
pub fn check_msr_policy(entries: &[(u32, u32, u64)]) -> Result<(), Violation> {
    if entries.len() > 2 {
        return Err(Violation::MsrPolicy {
            index: None,
            rule: format!("{} entries, more than the 2 a Xen 4.17 policy holds (-E2BIG)", entries.len()),
        });
    }
    for &(index, flags, value) in entries {
        let rule = if flags != 0 {
            format!("flags {flags:#x}, must be zero (-EINVAL)")
        } else if index != MSR_INTEL_PLATFORM_INFO && index != MSR_ARCH_CAPABILITIES {
            "not an MSR a Xen 4.17 policy holds (only 0xce PLATFORM_INFO and 0x10a ARCH_CAPABILITIES; -ERANGE)".into()
        } else if index == MSR_INTEL_PLATFORM_INFO && value > u64::from(u32::MAX) {
            format!("value {value:#x} does not fit the policy's 32-bit PLATFORM_INFO (-EOVERFLOW)")
        } else {
            continue;
        };
        return Err(Violation::MsrPolicy { index: Some(index), rule });
    }
    Ok(())
}

/// Whether `v` is a canonical 48-bit virtual address (`is_canonical_address`).
pub fn is_canonical(v: u64) -> bool {
    (v.cast_signed() >> 47) == (v.cast_signed() >> 63)
}

/// The MSRs a vcpu's saved state may load (`guest_wrmsr` as the HVM CPU_MSR loader and the
/// PV `XEN_DOMCTL_set_vcpu_msrs` call it): why `value` is refused for `index`, or `None`.
/// `platform_info` is the MSR policy's PLATFORM_INFO value when the stream sent it.
pub fn wrmsr_refusal(
    policy: Option<&CpuPolicy<'_>>,
    platform_info: Option<u64>,
    index: u32,
    value: u64,
) -> Option<String> {
    use feature as f;
    let lacks = |feat: Feature| policy.is_some_and(|p| p.lacks(feat));
    let lacks_both = |a: Feature, b: Feature| lacks(a) && lacks(b);
    match index {
        MSR_SPEC_CTRL => {
            const ANY: u64 = 0b100_1111_1111; // IBRS STIBP SSBD IPRED_DIS_U/S RRSBA_DIS_U/S PSFD BHI_DIS_S
            if value & !ANY != 0 {
                return Some(format!("SPEC_CTRL value {value:#x} sets bits no Xen 4.17 guest may set"));
            }
            lacks_both(f::IBRSB, f::IBRS).then(|| "SPEC_CTRL without ibrsb or ibrs in the CPUID policy".into())
        }
        MSR_INTEL_MISC_FEATURES_ENABLES => {
            if value & !1 != 0 {
                return Some(format!("MISC_FEATURES_ENABLES value {value:#x}: only CPUID faulting (bit 0) exists"));
            }
            (value & 1 != 0 && platform_info.is_some_and(|p| p >> 31 & 1 == 0))
                .then(|| "CPUID faulting enabled without it in the MSR policy's PLATFORM_INFO".into())
        }
        MSR_IA32_BNDCFGS => {
            if !is_canonical(value) || value & 0xffc != 0 {
                return Some(format!("BNDCFGS value {value:#x} is not canonical or sets reserved bits 2-11"));
            }
            lacks(f::MPX).then(|| "BNDCFGS without mpx in the CPUID policy".into())
        }
        MSR_IA32_XSS => {
            if value != 0 {
                return Some(format!("XSS value {value:#x}: Xen 4.17 supports no XSS features for guests"));
            }
            lacks(f::XSAVES).then(|| "XSS without xsaves in the CPUID policy".into())
        }
        MSR_TSC_AUX => {
            if value > u64::from(u32::MAX) {
                return Some(format!("TSC_AUX value {value:#x} does not fit 32 bits"));
            }
            lacks_both(f::RDTSCP, f::RDPID).then(|| "TSC_AUX without rdtscp or rdpid in the CPUID policy".into())
        }
        MSR_VIRT_SPEC_CTRL => {
            lacks(f::VIRT_SSBD).then(|| "VIRT_SPEC_CTRL without virt-ssbd in the CPUID policy".into())
        }
        MSR_AMD64_DR0_ADDRESS_MASK | MSR_AMD64_DR1_ADDRESS_MASK..=MSR_AMD64_DR3_ADDRESS_MASK => {
            if value > u64::from(u32::MAX) {
                return Some(format!("DR address mask {value:#x} does not fit 32 bits"));
            }
            lacks(f::DBEXT).then(|| "DR address mask without dbext in the CPUID policy".into())
        }
        _ => Some("not an MSR Xen 4.17 loads from saved state".into()),
    }
}

/// `MSR_SPEC_CTRL`.
pub const MSR_SPEC_CTRL: u32 = 0x48;
/// `MSR_INTEL_MISC_FEATURES_ENABLES`.
pub const MSR_INTEL_MISC_FEATURES_ENABLES: u32 = 0x140;
/// `MSR_IA32_BNDCFGS`.
pub const MSR_IA32_BNDCFGS: u32 = 0xd90;
/// `MSR_IA32_XSS`.
pub const MSR_IA32_XSS: u32 = 0xda0;
/// `MSR_TSC_AUX`.
pub const MSR_TSC_AUX: u32 = 0xc000_0103;
/// `MSR_VIRT_SPEC_CTRL`.
pub const MSR_VIRT_SPEC_CTRL: u32 = 0xc001_011f;
/// `MSR_AMD64_DR0_ADDRESS_MASK`.
pub const MSR_AMD64_DR0_ADDRESS_MASK: u32 = 0xc001_1027;
/// `MSR_AMD64_DR1_ADDRESS_MASK`.
pub const MSR_AMD64_DR1_ADDRESS_MASK: u32 = 0xc001_1019;
/// `MSR_AMD64_DR3_ADDRESS_MASK`.
pub const MSR_AMD64_DR3_ADDRESS_MASK: u32 = 0xc001_101b;
