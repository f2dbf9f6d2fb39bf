//! x86 PVH (domain type 3, or 2 with `pvh_as_hvm`): the records of an HVM stream, but no
//! device-model records (a PVH guest has no emulator; libxl writes none for it).

use sr_format::state::DomainState;

use super::{Rec, check_hvm_context, check_no_emulator, check_no_pv, hvm_records, x86};
use crate::error::SaveError;

/// The x86 PVH layout.
#[derive(Debug)]
pub(super) struct X86Pvh;

impl super::DomainRecords for X86Pvh {
    fn check(&self, state: &DomainState) -> Result<(), SaveError> {
        check_no_pv(state)?;
        check_hvm_context(state)?;
        check_no_emulator(state)
    }

    fn static_records(&self, state: &DomainState, version: u32, out: &mut Vec<Rec>) {
        x86::policy_records(state, version, out);
    }

    fn state_records(&self, state: &DomainState, out: &mut Vec<Rec>) {
        x86::tsc_record(state, out);
        hvm_records(state, out);
    }
}
