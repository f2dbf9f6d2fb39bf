//! ARM (domain type 4): STATIC_DATA_END, pages, HVM_CONTEXT (the ARM domain context blob),
//! [HVM_PARAMS]; no x86 records (CPU policy, TSC) and no PV records. Pages may be 4, 16 or
//! 64 KiB.

use sr_format::state::DomainState;

use super::{Rec, check_hvm_context, check_no_emulator, check_no_pv, hvm_records, invalid};
use crate::error::SaveError;

/// The ARM layout.
#[derive(Debug)]
pub(super) struct Arm;

impl super::DomainRecords for Arm {
    fn check(&self, state: &DomainState) -> Result<(), SaveError> {
        check_no_pv(state)?;
        if state.tsc.is_some() || !state.cpuid.is_empty() || !state.msrs.is_empty() {
            return Err(invalid("ARM state with x86 records (tsc, cpuid or msrs)"));
        }
        check_hvm_context(state)?;
        check_no_emulator(state)
    }

    fn static_records(&self, _state: &DomainState, _version: u32, _out: &mut Vec<Rec>) {}

    fn state_records(&self, state: &DomainState, out: &mut Vec<Rec>) {
        hvm_records(state, out);
    }
}

#[cfg(test)]
mod tests {
    use sr_format::DomainType;
    use sr_format::state::TscState;

    use super::super::DomainRecords;
    use super::*;

    #[test]
    fn arm_rejects_x86_state() {
        let mut s = DomainState::new(DomainType::ARM, 16);
        s.hvm_context = Some(vec![1, 2, 3]);
        Arm.check(&s).unwrap();
        s.tsc = Some(TscState::default());
        assert!(Arm.check(&s).is_err());
    }
}
