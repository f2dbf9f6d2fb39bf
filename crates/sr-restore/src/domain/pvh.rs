//! x86 PVH (domain type 3): the records of an HVM stream (CPU policies, TSC, HVM params and a
//! required HVM context), no PV records, and no device-model records (a PVH guest has no
//! emulator).

use sr_format::Record;

use super::{Context, DomainHandler, Handled, hvm_common, x86_common};
use crate::error::RestoreError;

/// The x86 PVH handler.
#[derive(Debug, Default)]
pub(crate) struct X86Pvh;

impl DomainHandler for X86Pvh {
    fn handle(&mut self, cx: &mut Context<'_>, rec: &Record<'_>) -> Result<Handled, RestoreError> {
        match x86_common::handle(cx, rec)? {
            Handled::Yes => Ok(Handled::Yes),
            Handled::NotProcessed => hvm_common::handle(cx, rec),
        }
    }
}
