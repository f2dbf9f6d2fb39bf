//! What Xen 4.17's hypervisor checks when libxc hands it an x86 HVM_CONTEXT blob
//! (`XEN_DOMCTL_sethvmcontext` -> `hvm_load`, `xen/arch/x86/hvm/save.c`, and each record's
//! load handler). The blob's framing and every record's length are checked by
//! [`sr_format::body::hvm_context::decode`]; this module adds the rest:
//!
//! * `hvm_load` / `arch_hvm_load`: HEADER first, with `HVM_FILE_MAGIC` and version 1; every
//!   later record of a type with a load handler (2-20: not a second HEADER, nothing above
//!   `HVM_SAVE_CODE_MAX`);
//! * per-vcpu records name a vcpu an HVM domain can have (instance < `HVM_MAX_VCPUS`, 128);
//! * CPU (`hvm_load_cpu_ctxt` and the SVM/VMX restore common to both): `pad0` zero; CR0
//!   without reserved bits, with ET, no PG without PE; CR4 only with bits the CPUID policy
//!   offers (`hvm_cr4_guest_valid_bits`); EFER known bits, LMA only with LME and CR0.PG, each
//!   bit's feature in the policy (`hvm_efer_valid`); CR3 within the physical address width;
//!   `flags` only `XEN_X86_FPU_INITIALISED`; `msr_tsc_aux` 32 bits; a valid pending event
//!   (type not 1 and at most 6, reserved bits zero, a 16-bit error code);
//! * PIC instance 0 or 1 (`vpic_load`); LAPIC not in x2APIC mode while disabled
//!   (`lapic_load_hidden`); PCI_LINK routes at most 15 (`irq_load_link`); MTRR at most 8
//!   variable ranges (`hvm_load_mtrr_msr`); VIRIDIAN_VCPU padding zero; VMCE_VCPU
//!   capabilities a guest may have (`vmce_restore_vcpu`, for any host vendor);
//! * CPU_XSAVE (`hvm_load_cpu_xsave_states`): `validate_xstate`, and the length the area for
//!   `xcr0_accum` needs (longer only with a zero tail);
//! * CPU_MSR (`hvm_load_cpu_msrs`): reserved words zero, only the MSRs it loads, each value
//!   one `guest_wrmsr` accepts.
//!
//! Not decidable from the stream, so not checked: which vcpus the domain was created with
//! (beyond 128), the host's XSAVE features and vendor-specific limits, whether the domain has
//! the emulated devices a record restores (a PVH domain has no PIC, IO-APIC, PIT, RTC, HPET
//! or PM timer, but a Xen 4.17 stream says "x86 HVM" for both).

use sr_format::body::hvm_context::{
    APIC_BASE_ENABLE, APIC_BASE_EXTD, CpuMsrs, CpuXsave, HVM_FILE_MAGIC, HVM_FILE_VERSION, HvmHwCpu, HvmSaveEntry,
    HvmSaveRecord, HvmSaveType, MTRR_VCNT, XEN_X86_FPU_INITIALISED, decode,
};

use crate::Violation;
use crate::x86::{self, CpuPolicy, Feature, feature};

/// `HVM_MAX_VCPUS`: the most vcpus an HVM domain of Xen 4.17 has.
pub const HVM_MAX_VCPUS: u16 = 128;

/// Checks an x86 HVM_CONTEXT blob as Xen 4.17 loads it. `base` is the blob's offset in the
/// stream (reported with each save record), `policy` the domain's CPUID policy when the stream
/// sent one, `platform_info` the MSR policy's PLATFORM_INFO.
///
/// # Errors
/// [`Violation::HvmContext`] for the framing (from the decoder, with its byte offset) and
/// the header's place; [`Violation::HvmSaveRecord`] for a record Xen refuses.
pub fn check_context(
    blob: &[u8],
    base: u64,
    policy: Option<&CpuPolicy<'_>>,
    platform_info: Option<u64>,
) -> Result<(), Violation> {
    let recs = decode(blob, base).map_err(|e| Violation::HvmContext { rule: e.to_string() })?;
    let first = &recs.entries[0];
    let HvmSaveRecord::Header(h) = &first.record else {
        return Err(Violation::HvmContext {
            rule: format!(
                "the first save record (at byte {}) is {}, not HEADER (hvm_load reads the header first)",
                first.offset,
                first.save_type()
            ),
        });
    };
    let fail = |e: &HvmSaveEntry<'_>, rule: String| Violation::HvmSaveRecord {
        typecode: e.descriptor.typecode.get(),
        instance: e.instance(),
        offset: e.offset,
        rule,
    };
    if h.magic.get() != HVM_FILE_MAGIC {
        return Err(fail(
            first,
            format!("magic {:#x}, not HVM_FILE_MAGIC {HVM_FILE_MAGIC:#x} (arch_hvm_load)", h.magic.get()),
        ));
    }
    if h.version.get() != HVM_FILE_VERSION {
        return Err(fail(first, format!("version {}, Xen 4.17 loads version 1 only (arch_hvm_load)", h.version.get())));
    }
    for e in &recs.entries[1..] {
        let t = e.save_type();
        if t == HvmSaveType::END {
            break;
        }
        let Some(info) = t.info().filter(|_| t != HvmSaveType::HEADER) else {
            return Err(fail(
                e,
                "Xen 4.17 has no load handler for this type (hvm_load: unknown entry typecode)".into(),
            ));
        };
        if info.per_vcpu && e.instance() >= HVM_MAX_VCPUS {
            return Err(fail(
                e,
                format!("vcpu {} does not exist: an HVM domain has at most {HVM_MAX_VCPUS} vcpus", e.instance()),
            ));
        }
        check_record(e, policy, platform_info).map_err(|rule| fail(e, rule))?;
    }
    Ok(())
}

/// The rules of one record's load handler; the rule broken as text.
fn check_record(
    e: &HvmSaveEntry<'_>,
    policy: Option<&CpuPolicy<'_>>,
    platform_info: Option<u64>,
) -> Result<(), String> {
    match &e.record {
        HvmSaveRecord::Cpu(_) | HvmSaveRecord::CpuCompat(_) => {
            check_cpu(&e.cpu_as_loaded().expect("a CPU record"), policy)
        }
        HvmSaveRecord::Pic(_) if e.instance() > 1 => {
            Err(format!("instance {}: there are two PICs, 0 and 1 (vpic_load)", e.instance()))
        }
        HvmSaveRecord::Lapic(l) => {
            let base = l.apic_base_msr.get();
            if base & APIC_BASE_EXTD != 0 && base & APIC_BASE_ENABLE == 0 {
                return Err(format!(
                    "apic_base_msr {base:#x}: x2APIC mode (EXTD) with the APIC disabled (lapic_load_hidden)"
                ));
            }
            Ok(())
        }
        HvmSaveRecord::PciLink(l) => match l.route.iter().enumerate().find(|(_, r)| **r > 15) {
            Some((i, r)) => Err(format!("link {i} routes to IRQ {r}, above 15 (irq_load_link)")),
            None => Ok(()),
        },
        HvmSaveRecord::Mtrr(m) => {
            let vcnt = m.msr_mtrr_cap.get() & 0xff;
            if vcnt > MTRR_VCNT as u64 {
                return Err(format!(
                    "msr_mtrr_cap {:#x} declares {vcnt} variable ranges, the record holds {MTRR_VCNT} (hvm_load_mtrr_msr)",
                    m.msr_mtrr_cap.get()
                ));
            }
            Ok(())
        }
        HvmSaveRecord::ViridianVcpu(v) if v.pad != [0; 7] => Err("_pad is not zero (viridian_load_vcpu_ctxt)".into()),
        HvmSaveRecord::VmceVcpu(v) => check_vmce_caps(v.caps.get()),
        HvmSaveRecord::CpuXsave(x) => check_xsave(x, e.descriptor.length.get(), policy),
        HvmSaveRecord::CpuMsr(m) => check_msrs(m, policy, platform_info),
        _ => Ok(()),
    }
}

/// IA32_MCG_CAP bits a vcpu may have on any host (`vmce_restore_vcpu`: Intel's
/// `INTEL_GUEST_MCG_CAP | MCG_LMCE_P` or AMD's bank count, plus the count and MCG_CTL_P).
const MCG_CAP_ALLOWED: u64 = 0xff | 1 << 8 | 1 << 10 | 1 << 11 | 1 << 24 | 1 << 27;

/// A vcpu's saved IA32_MCG_CAP (HVM VMCE_VCPU, PV extended context).
///
/// # Errors
/// The rule broken, as text.
pub fn check_vmce_caps(caps: u64) -> Result<(), String> {
    if caps & !MCG_CAP_ALLOWED != 0 {
        return Err(format!(
            "MCG_CAP {caps:#x} has capabilities {:#x} no Xen 4.17 host offers a guest (vmce_restore_vcpu)",
            caps & !MCG_CAP_ALLOWED
        ));
    }
    Ok(())
}

/// CR0 bits that may be set (`HVM_CR0_GUEST_RESERVED_BITS` is the rest).
const CR0_VALID: u64 = 0x1 | 0x2 | 0x4 | 0x8 | 0x10 | 0x20 | 1 << 16 | 1 << 18 | 1 << 29 | 1 << 30 | 1 << 31;
const CR0_PE: u64 = 1;
const CR0_ET: u64 = 0x10;
const CR0_PG: u64 = 1 << 31;

/// CR4 bits and the features that allow them (`hvm_cr4_guest_valid_bits`). PCE (bit 8) needs
/// none; VMXE also needs nested virtualisation, which the stream does not say.
const CR4_BITS: &[(u32, &str, &[Feature])] = &[
    (0, "VME", &[feature::VME]),
    (1, "PVI", &[feature::VME]),
    (2, "TSD", &[feature::TSC]),
    (3, "DE", &[feature::DE]),
    (4, "PSE", &[feature::PSE]),
    (5, "PAE", &[feature::PAE]),
    (6, "MCE", &[feature::MCE, feature::MCA]),
    (7, "PGE", &[feature::PGE]),
    (8, "PCE", &[]),
    (9, "OSFXSR", &[feature::FXSR]),
    (10, "OSXMMEXCPT", &[feature::SSE]),
    (11, "UMIP", &[feature::UMIP]),
    (13, "VMXE", &[feature::VMX]),
    (16, "FSGSBASE", &[feature::FSGSBASE]),
    (17, "PCIDE", &[feature::PCID]),
    (18, "OSXSAVE", &[feature::XSAVE]),
    (20, "SMEP", &[feature::SMEP]),
    (21, "SMAP", &[feature::SMAP]),
    (22, "PKE", &[feature::PKU]),
    (23, "CET", &[feature::CET_SS, feature::CET_IBT]),
];

/// EFER bits Xen 4.17 knows (`EFER_KNOWN_MASK`) and the features they need (`hvm_efer_valid`).
const EFER_BITS: &[(u32, &str, &[Feature])] = &[
    (0, "SCE", &[feature::SYSCALL]),
    (8, "LME", &[feature::LM]),
    (10, "LMA", &[feature::LM]),
    (11, "NXE", &[feature::NX]),
    (12, "SVME", &[feature::SVM]),
    (14, "FFXSE", &[feature::FFXSR]),
];
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;

fn names(features: &[Feature]) -> String {
    features.iter().map(|f| f.name).collect::<Vec<_>>().join(" or ")
}

/// Why a register value fails its bit table: bits outside it, or a bit (its name and the
/// features it needs) whose features the policy lacks.
enum BitProblem {
    Unknown(u64),
    Lacks(&'static str, String),
}

/// The bits of `value` outside `table`, and the first bit whose features the policy lacks.
fn feature_bits(
    value: u64,
    table: &[(u32, &'static str, &[Feature])],
    policy: Option<&CpuPolicy<'_>>,
) -> Result<(), BitProblem> {
    let known: u64 = table.iter().map(|(b, _, _)| 1u64 << b).sum();
    if value & !known != 0 {
        return Err(BitProblem::Unknown(value & !known));
    }
    for &(bit, name, needs) in table {
        if value >> bit & 1 != 0
            && !needs.is_empty()
            && let Some(p) = policy
            && needs.iter().all(|f| p.lacks(*f))
        {
            return Err(BitProblem::Lacks(name, names(needs)));
        }
    }
    Ok(())
}

/// The CPU record as loaded: `hvm_load_cpu_ctxt` and the SVM/VMX restore.
fn check_cpu(c: &HvmHwCpu, policy: Option<&CpuPolicy<'_>>) -> Result<(), String> {
    if c.pad0.get() != 0 {
        return Err(format!("pad0 is {:#x}, must be zero (hvm_load_cpu_ctxt)", c.pad0.get()));
    }
    let cr0 = c.cr0.get();
    if cr0 & !CR0_VALID != 0 {
        return Err(format!("CR0 {cr0:#x} has reserved bits {:#x} set (hvm_load_cpu_ctxt: bad CR0)", cr0 & !CR0_VALID));
    }
    if cr0 & CR0_ET == 0 {
        return Err(format!("CR0 {cr0:#x} has ET (bit 4) clear (hvm_load_cpu_ctxt: bad CR0)"));
    }
    if cr0 & (CR0_PE | CR0_PG) == CR0_PG {
        return Err(format!("CR0 {cr0:#x} has paging without protected mode (hvm_load_cpu_ctxt: bad CR0)"));
    }
    let cr4 = c.cr4.get();
    match feature_bits(cr4, CR4_BITS, policy) {
        Err(BitProblem::Unknown(bad)) => {
            return Err(format!(
                "CR4 {cr4:#x} has bits {bad:#x} no Xen 4.17 guest may set (hvm_load_cpu_ctxt: bad CR4)"
            ));
        }
        Err(BitProblem::Lacks(name, needs)) => {
            return Err(format!(
                "CR4 {cr4:#x} sets {name} but the CPUID policy has no {needs} (hvm_cr4_guest_valid_bits: bad CR4)"
            ));
        }
        Ok(()) => {}
    }
    let efer = c.msr_efer.get();
    match feature_bits(efer, EFER_BITS, policy) {
        Err(BitProblem::Unknown(bad)) => {
            return Err(format!("EFER {efer:#x} has unknown bits {bad:#x} set (hvm_efer_valid)"));
        }
        Err(BitProblem::Lacks(name, needs)) => {
            return Err(format!("EFER {efer:#x} sets {name} but the CPUID policy has no {needs} (hvm_efer_valid)"));
        }
        Ok(()) => {}
    }
    if efer & EFER_LMA != 0 && (efer & EFER_LME == 0 || cr0 & CR0_PG == 0) {
        return Err(format!(
            "EFER {efer:#x} has LMA without LME or CR0.PG (hvm_efer_valid: LMA/LME/CR0.PG inconsistency)"
        ));
    }
    if let Some(width) = policy.and_then(CpuPolicy::maxphysaddr)
        && c.cr3.get().checked_shr(width).unwrap_or(0) != 0
    {
        return Err(format!(
            "CR3 {:#x} is beyond the {width}-bit physical address width (hvm_load_cpu_ctxt: bad CR3)",
            c.cr3.get()
        ));
    }
    let flags = c.flags.get();
    if flags & !XEN_X86_FPU_INITIALISED != 0 {
        return Err(format!("flags {flags:#x}: only XEN_X86_FPU_INITIALISED (1) exists (hvm_load_cpu_ctxt)"));
    }
    let aux = c.msr_tsc_aux.get();
    if aux > u64::from(u32::MAX) {
        return Err(format!("msr_tsc_aux {aux:#x} does not fit 32 bits (hvm_load_cpu_ctxt)"));
    }
    let p = c.pending();
    if p.valid() {
        if p.event_type() == 1 || p.event_type() > 6 || p.reserved() != 0 {
            return Err(format!(
                "pending event {:#x}: type {} or reserved bits invalid (svm/vmx restore: invalid pending event)",
                p.0,
                p.event_type()
            ));
        }
        if p.error_valid() && c.error_code.get() > 0xffff {
            return Err(format!("pending event's error code {:#x} does not fit 16 bits", c.error_code.get()));
        }
    }
    Ok(())
}

/// CPU_XSAVE: `validate_xstate`, then the area's length for `xcr0_accum`.
fn check_xsave(x: &CpuXsave<'_>, length: u32, policy: Option<&CpuPolicy<'_>>) -> Result<(), String> {
    let hdr = x.xsave_hdr();
    let reserved: Vec<u64> = hdr.reserved.iter().map(|r| r.get()).collect();
    let (xcr0, accum) = (x.header.xcr0.get(), x.header.xcr0_accum.get());
    x86::validate_xstate(policy, xcr0, accum, hdr.xstate_bv.get(), hdr.xcomp_bv.get(), &reserved)
        .map_err(|r| format!("{r} (validate_xstate)"))?;
    let Some(area) = policy.and_then(|p| p.xstate_size(accum)) else {
        return Ok(());
    };
    let want = 24 + area;
    let have = u64::from(length);
    if have > want {
        if let Some(at) = x.area.iter().skip((want - 24) as usize).position(|b| *b != 0) {
            return Err(format!(
                "length {have} > the {want} bytes xcr0_accum {accum:#x} needs, with non-zero data at byte {} (hvm_load_cpu_xsave_states)",
                want as usize + at
            ));
        }
    } else if have < want {
        return Err(format!(
            "length {have} < the {want} bytes xcr0_accum {accum:#x} needs (hvm_load_cpu_xsave_states)"
        ));
    }
    Ok(())
}

/// MSRs `hvm_load_cpu_msrs` loads.
const HVM_LOADED_MSRS: &[u32] = &[
    x86::MSR_SPEC_CTRL,
    x86::MSR_INTEL_MISC_FEATURES_ENABLES,
    x86::MSR_IA32_BNDCFGS,
    x86::MSR_IA32_XSS,
    x86::MSR_VIRT_SPEC_CTRL,
    x86::MSR_AMD64_DR0_ADDRESS_MASK,
    x86::MSR_AMD64_DR1_ADDRESS_MASK,
    x86::MSR_AMD64_DR1_ADDRESS_MASK + 1,
    x86::MSR_AMD64_DR3_ADDRESS_MASK,
];

fn check_msrs(m: &CpuMsrs<'_>, policy: Option<&CpuPolicy<'_>>, platform_info: Option<u64>) -> Result<(), String> {
    if let Some((i, e)) = m.entries.iter().enumerate().find(|(_, e)| e.rsvd.get() != 0) {
        return Err(format!(
            "entry {i} (MSR {:#x}): _rsvd is {:#x}, must be zero (hvm_load_cpu_msrs)",
            e.index.get(),
            e.rsvd.get()
        ));
    }
    for (i, e) in m.entries.iter().enumerate() {
        let (index, value) = (e.index.get(), e.val.get());
        if !HVM_LOADED_MSRS.contains(&index) {
            return Err(format!("entry {i}: MSR {index:#x} is not one hvm_load_cpu_msrs loads"));
        }
        if let Some(why) = x86::wrmsr_refusal(policy, platform_info, index, value) {
            return Err(format!("entry {i}: {why} (guest_wrmsr)"));
        }
    }
    Ok(())
}
