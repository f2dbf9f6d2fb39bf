//! x86 HVM (domain type 2): CPU policies, TSC, HVM params and a required HVM context; no PV
//! records. Also what current Xen writes for PVH guests.

use sr_format::Record;

use super::{Context, DomainHandler, Handled, hvm_common, x86_common};
use crate::error::RestoreError;

/// The x86 HVM handler.
#[derive(Debug, Default)]
pub(crate) struct X86Hvm;

impl DomainHandler for X86Hvm {
    fn handle(&mut self, cx: &mut Context<'_>, rec: &Record<'_>) -> Result<Handled, RestoreError> {
        match x86_common::handle(cx, rec)? {
            Handled::Yes => Ok(Handled::Yes),
            Handled::NotProcessed => hvm_common::handle(cx, rec),
        }
    }

    fn accepts_emulator_records(&self) -> bool {
        true
    }
}
