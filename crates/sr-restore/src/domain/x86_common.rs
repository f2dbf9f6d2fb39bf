//! Records every x86 domain type shares: X86_TSC_INFO, X86_CPUID_POLICY, X86_MSR_POLICY.

use sr_format::body::{CpuidPolicy, MsrPolicy, TscInfo};
use sr_format::state::TscState;
use sr_format::{Record, RecordType};

use super::{Context, Handled, StaticData};
use crate::error::RestoreError;

/// Handles the shared x86 records; `NotProcessed` for anything else.
pub(super) fn handle(cx: &mut Context<'_>, rec: &Record<'_>) -> Result<Handled, RestoreError> {
    match rec.rtype {
        RecordType::X86_TSC_INFO => {
            let t = TscInfo::parse(rec)?;
            cx.state.tsc = Some(TscState {
                mode: t.mode.get(),
                khz: t.khz.get(),
                nsec: t.nsec.get(),
                incarnation: t.incarnation.get(),
            });
        }
        RecordType::X86_CPUID_POLICY => {
            let p = CpuidPolicy::parse(rec)?;
            late_policy(cx, rec);
            cx.state.cpuid = p
                .leaves
                .iter()
                .map(|l| [l.leaf.get(), l.subleaf.get(), l.eax.get(), l.ebx.get(), l.ecx.get(), l.edx.get()])
                .collect();
        }
        RecordType::X86_MSR_POLICY => {
            let p = MsrPolicy::parse(rec)?;
            late_policy(cx, rec);
            cx.state.msrs = p.entries.iter().map(|e| (e.index.get(), e.flags.get(), e.value.get())).collect();
        }
        _ => return Ok(Handled::NotProcessed),
    }
    Ok(Handled::Yes)
}

/// Xen stores a CPU policy that arrives after STATIC_DATA_END but never applies it.
fn late_policy(cx: &mut Context<'_>, rec: &Record<'_>) {
    if *cx.static_data != StaticData::Open {
        cx.warn(rec, "CPU policy after STATIC_DATA_END: Xen stores it but never applies it");
    }
}
