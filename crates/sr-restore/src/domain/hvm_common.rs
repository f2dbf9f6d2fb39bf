//! HVM_CONTEXT and HVM_PARAMS, shared by HVM, PVH and ARM streams.

use sr_format::body::{HvmContext, HvmParams};
use sr_format::{Record, RecordType};

use super::{Context, Handled};
use crate::error::RestoreError;

/// HVM param 4, PAE_ENABLED: never written by current savers, dropped on restore.
pub(super) const HVM_PARAM_PAE_ENABLED: u64 = 4;

/// Handles HVM_CONTEXT and HVM_PARAMS; `NotProcessed` for anything else.
pub(super) fn handle(cx: &mut Context<'_>, rec: &Record<'_>) -> Result<Handled, RestoreError> {
    match rec.rtype {
        RecordType::HVM_CONTEXT => {
            // Stashed; the latest one is what the domain gets at END.
            let ctx = HvmContext::parse(rec)?;
            cx.state.hvm_context = Some(ctx.blob.to_vec());
        }
        RecordType::HVM_PARAMS => {
            let params = HvmParams::parse(rec)?;
            if params.entries.is_empty() {
                cx.warn(rec, "HVM_PARAMS with count 0 (written by old senders) ignored");
            }
            for e in params.entries {
                let (index, value) = (e.index.get(), e.value.get());
                if index == HVM_PARAM_PAE_ENABLED {
                    cx.warn(rec, "HVM param PAE_ENABLED (4) dropped, as Xen does");
                    continue;
                }
                cx.state.set_hvm_param(index, value);
            }
        }
        _ => return Ok(Handled::NotProcessed),
    }
    Ok(Handled::Yes)
}
