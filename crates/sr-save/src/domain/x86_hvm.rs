//! x86 HVM (domain type 2): [CPU policy], STATIC_DATA_END, pages, then X86_TSC_INFO,
//! HVM_CONTEXT, [HVM_PARAMS] (`tools/libs/guest/xg_sr_save_x86_hvm.c:172-212`); the libxl
//! layer adds the device-model records.

use sr_format::state::DomainState;

use super::{Rec, check_emulator, check_hvm_context, check_no_pv, hvm_records, x86};
use crate::error::SaveError;

/// The x86 HVM layout.
#[derive(Debug)]
pub(super) struct X86Hvm;

impl super::DomainRecords for X86Hvm {
    fn check(&self, state: &DomainState) -> Result<(), SaveError> {
        check_no_pv(state)?;
        check_hvm_context(state)?;
        check_emulator(state)
    }

    fn static_records(&self, state: &DomainState, version: u32, out: &mut Vec<Rec>) {
        x86::policy_records(state, version, out);
    }

    fn state_records(&self, state: &DomainState, out: &mut Vec<Rec>) {
        x86::tsc_record(state, out);
        hvm_records(state, out);
    }

    fn emulator_records(&self) -> bool {
        true
    }
}
