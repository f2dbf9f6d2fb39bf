//! HVM-like domains (x86 HVM, PVH, ARM): END requires an HVM context
//! (`tools/libs/guest/xg_sr_restore_x86_hvm.c:219-226`, validation row 36).

use sr_format::state::DomainState;

use crate::Violation;

/// END requires an HVM_CONTEXT record.
///
/// # Errors
/// [`Violation::Missing`] when the state has no HVM context.
pub fn check_end(state: &DomainState) -> Result<(), Violation> {
    if state.hvm_context.is_none() {
        return Err(Violation::Missing { what: "HVM_CONTEXT record in the stream" });
    }
    Ok(())
}
