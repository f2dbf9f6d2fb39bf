//! One entry point for every per-record rule of the hypervisor: the restorer calls
//! [`check_record`] on each record it accepts, the saver on each record it is about to
//! write, with the domain as the stream described it so far.

use sr_format::body::{CpuidPolicy, HvmParams, MsrPolicy, TscInfo, Vcpu};
use sr_format::state::DomainState;
use sr_format::{DomainType, Record, RecordType};

use crate::x86::{self, CpuPolicy};
use crate::{Violation, hvm, hvm_context, pv_vcpu};

/// The MSR policy's PLATFORM_INFO value, when the stream sent one.
pub fn platform_info(state: &DomainState) -> Option<u64> {
    state.msrs.iter().rev().find(|m| m.0 == x86::MSR_INTEL_PLATFORM_INFO).map(|m| m.2)
}

/// Checks one record against what Xen 4.17's hypervisor accepts when libxc loads it:
/// X86_TSC_INFO ([`x86::check_tsc_mode`]), X86_CPUID_POLICY and X86_MSR_POLICY
/// ([`x86::check_cpuid_policy`], [`x86::check_msr_policy`]), an x86 HVM_CONTEXT
/// ([`hvm_context::check_context`]), x86 HVM_PARAMS ([`hvm::check_param`]) and the PV vcpu
/// records ([`pv_vcpu`]). `state` is the domain before the record (its CPUID and MSR policy,
/// the PV guest width); `body_offset` is where the body starts in the stream (0 for a record
/// not written yet), used in the byte offsets HVM save records are reported at.
///
/// A body whose shape is wrong is left to the format's own checks (it passes here).
///
/// # Errors
/// The first rule broken.
pub fn check_record(state: &DomainState, rtype: RecordType, body: &[u8], body_offset: u64) -> Result<(), Violation> {
    let x86 = matches!(state.domain_type, DomainType::X86_PV | DomainType::X86_HVM | DomainType::X86_PVH);
    if !x86 {
        return Ok(());
    }
    let rec =
        Record { index: 0, offset: body_offset.saturating_sub(8), rtype, body, padding_nonzero: false, elided: 0 };
    let policy = CpuPolicy::new(&state.cpuid);
    let platform = platform_info(state);
    match rtype {
        RecordType::X86_TSC_INFO => match TscInfo::parse(&rec) {
            Ok(t) => x86::check_tsc_mode(t.mode.get()),
            Err(_) => Ok(()),
        },
        RecordType::X86_CPUID_POLICY => match CpuidPolicy::parse(&rec) {
            Ok(p) => {
                let leaves: Vec<[u32; 6]> = p
                    .leaves
                    .iter()
                    .map(|l| [l.leaf.get(), l.subleaf.get(), l.eax.get(), l.ebx.get(), l.ecx.get(), l.edx.get()])
                    .collect();
                x86::check_cpuid_policy(&leaves)
            }
            Err(_) => Ok(()),
        },
        RecordType::X86_MSR_POLICY => match MsrPolicy::parse(&rec) {
            Ok(p) => {
                let entries: Vec<(u32, u32, u64)> =
                    p.entries.iter().map(|e| (e.index.get(), e.flags.get(), e.value.get())).collect();
                x86::check_msr_policy(&entries)
            }
            Err(_) => Ok(()),
        },
        RecordType::HVM_CONTEXT if state.domain_type != DomainType::X86_PV && !body.is_empty() => {
            hvm_context::check_context(body, body_offset, policy.as_ref(), platform)
        }
        RecordType::HVM_PARAMS if state.domain_type != DomainType::X86_PV => match HvmParams::parse(&rec) {
            Ok(p) => p.entries.iter().try_for_each(|e| hvm::check_param(e.index.get(), e.value.get())),
            Err(_) => Ok(()),
        },
        RecordType::X86_PV_VCPU_BASIC
        | RecordType::X86_PV_VCPU_EXTENDED
        | RecordType::X86_PV_VCPU_XSAVE
        | RecordType::X86_PV_VCPU_MSRS => {
            let (Ok(v), Some(info)) = (Vcpu::parse(&rec), state.pv_info) else {
                return Ok(());
            };
            let (id, blob) = (v.vcpu_id(), v.blob);
            if blob.is_empty() {
                return Ok(()); // Xen skips empty blobs
            }
            match rtype {
                RecordType::X86_PV_VCPU_BASIC => pv_vcpu::check_basic(id, blob, info.guest_width),
                RecordType::X86_PV_VCPU_EXTENDED => pv_vcpu::check_extended(id, blob),
                RecordType::X86_PV_VCPU_XSAVE => pv_vcpu::check_xsave(id, blob, policy.as_ref()),
                _ => pv_vcpu::check_msrs(id, blob, policy.as_ref(), platform),
            }
        }
        _ => Ok(()),
    }
}
