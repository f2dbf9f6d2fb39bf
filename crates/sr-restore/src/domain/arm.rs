//! ARM (domain type 4): STATIC_DATA_END, PAGE_DATA, HVM_PARAMS and a required HVM_CONTEXT
//! (the ARM domain context blob); no x86-only records (TSC_INFO, CPU policies, PV records).
//! page_shift 12, 14 or 16 (checked with the domain header).

use sr_format::Record;

use super::{Context, DomainHandler, Handled, hvm_common};
use crate::error::RestoreError;

/// The ARM handler.
#[derive(Debug, Default)]
pub(crate) struct Arm;

impl DomainHandler for Arm {
    fn handle(&mut self, cx: &mut Context<'_>, rec: &Record<'_>) -> Result<Handled, RestoreError> {
        hvm_common::handle(cx, rec)
    }
}
