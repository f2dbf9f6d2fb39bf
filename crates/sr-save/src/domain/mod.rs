//! Per-domain-type record layout: which non-memory records a stream of each domain type
//! carries, in which order, and which state they need.
//!
//! The saver writes, for every type: headers, [`static_records`](DomainRecords::static_records),
//! STATIC_DATA_END (v3), [`start_records`](DomainRecords::start_records), the memory passes,
//! then [`state_records`](DomainRecords::state_records) after every pause (reference 3.3).
//! Adding a domain type is one module plus one line in [`for_type`].

mod arm;
mod pvh;
mod x86;
mod x86_hvm;
mod x86_pv;

use sr_format::libxl::{LibxlRecord, LibxlRecordType};
use sr_format::state::DomainState;
use sr_format::{DomainType, RecordType};

use crate::error::SaveError;

/// One non-memory record: type and body.
pub(crate) type Rec = (RecordType, Vec<u8>);

/// The record layout of one domain type.
pub(crate) trait DomainRecords: Sync {
    /// Checks that `state` has everything the records need and nothing a stream of this
    /// type cannot carry, so that a save fails before writing rather than producing a
    /// stream the restorer rejects.
    fn check(&self, state: &DomainState) -> Result<(), SaveError>;

    /// Records before STATIC_DATA_END (also written, without it, in a v2 stream).
    fn static_records(&self, state: &DomainState, version: u32, out: &mut Vec<Rec>);

    /// Records after STATIC_DATA_END and before the first page (once per stream).
    fn start_records(&self, _state: &DomainState, _out: &mut Vec<Rec>) {}

    /// The end-of-state records, after the memory of a save or of a checkpoint.
    fn state_records(&self, state: &DomainState, out: &mut Vec<Rec>);

    /// Whether libxl device-model records belong to this type (HVM only: a PVH guest has
    /// no emulator, and libxl writes none for it).
    fn emulator_records(&self) -> bool {
        false
    }
}

/// The layout for `dtype`, or `None` for a reserved type.
pub(crate) fn for_type(dtype: DomainType) -> Option<&'static dyn DomainRecords> {
    match dtype {
        DomainType::X86_PV => Some(&x86_pv::X86Pv),
        DomainType::X86_HVM => Some(&x86_hvm::X86Hvm),
        DomainType::X86_PVH => Some(&pvh::X86Pvh),
        DomainType::ARM => Some(&arm::Arm),
        _ => None,
    }
}

pub(crate) fn invalid(msg: impl Into<String>) -> SaveError {
    SaveError::InvalidState(msg.into())
}

/// Checks that a non-PV state carries no PV records.
fn check_no_pv(state: &DomainState) -> Result<(), SaveError> {
    if state.pv_info.is_some() || state.p2m.is_some() || !state.vcpus.is_empty() || state.shared_info.is_some() {
        return Err(invalid(format!(
            "{} state with PV records (pv_info, p2m, vcpus or shared_info)",
            state.domain_type
        )));
    }
    Ok(())
}

/// Checks the HVM context every HVM-like type needs (Xen fails at END without one).
fn check_hvm_context(state: &DomainState) -> Result<(), SaveError> {
    match &state.hvm_context {
        Some(ctx) if !ctx.is_empty() => Ok(()),
        Some(_) => Err(invalid(format!("{} state with an empty HVM context", state.domain_type))),
        None => Err(invalid(format!("{} state without an HVM context", state.domain_type))),
    }
}

/// Checks that the state has no device-model records, for types without an emulator.
fn check_no_emulator(state: &DomainState) -> Result<(), SaveError> {
    if !state.emulator.is_empty() {
        return Err(invalid(format!("{} state with device-model (emulator) records", state.domain_type)));
    }
    Ok(())
}

/// Checks the device-model records of an HVM state as libxl's reader will.
fn check_emulator(state: &DomainState) -> Result<(), SaveError> {
    for (i, e) in state.emulator.iter().enumerate() {
        let mut body = Vec::with_capacity(8 + e.data.len());
        body.extend_from_slice(&e.id.to_le_bytes());
        body.extend_from_slice(&e.index.to_le_bytes());
        body.extend_from_slice(&e.data);
        let rec = LibxlRecord { index: 0, offset: 0, rtype: e.kind, body: &body, padding_nonzero: false };
        match e.kind {
            LibxlRecordType::EMULATOR_XENSTORE_DATA => {
                rec.xenstore_pairs().map_err(|err| invalid(format!("emulator record {i}: {err}")))?;
            }
            LibxlRecordType::EMULATOR_CONTEXT => {}
            other => return Err(invalid(format!("emulator record {i} has libxl type {other}"))),
        }
    }
    Ok(())
}

/// HVM_CONTEXT, then HVM_PARAMS when there are any (the saver's order: the restorer applies
/// the context only at END, so params may follow it).
fn hvm_records(state: &DomainState, out: &mut Vec<Rec>) {
    if let Some(ctx) = &state.hvm_context {
        out.push((RecordType::HVM_CONTEXT, ctx.clone()));
    }
    if !state.hvm_params.is_empty() {
        let mut body = Vec::with_capacity(8 + 16 * state.hvm_params.len());
        let count = u32::try_from(state.hvm_params.len()).unwrap_or(u32::MAX);
        body.extend_from_slice(&count.to_le_bytes());
        body.extend_from_slice(&0u32.to_le_bytes());
        for (index, value) in &state.hvm_params {
            body.extend_from_slice(&index.to_le_bytes());
            body.extend_from_slice(&value.to_le_bytes());
        }
        out.push((RecordType::HVM_PARAMS, body));
    }
}

#[cfg(test)]
mod tests {
    use sr_format::state::{EmulatorState, PvInfoState};

    use super::*;

    #[test]
    fn layouts_exist_for_the_four_types_only() {
        for t in DomainType::ALL {
            assert!(for_type(t).is_some());
        }
        assert!(for_type(DomainType(0)).is_none());
        assert!(for_type(DomainType(5)).is_none());
    }

    #[test]
    fn hvm_like_types_need_a_context_and_no_pv_records() {
        for t in [DomainType::X86_HVM, DomainType::X86_PVH, DomainType::ARM] {
            let layout = for_type(t).unwrap();
            let mut s = DomainState::new(t, 12);
            assert!(matches!(layout.check(&s), Err(SaveError::InvalidState(_))));
            s.hvm_context = Some(Vec::new());
            assert!(layout.check(&s).is_err());
            s.hvm_context = Some(vec![1]);
            layout.check(&s).unwrap();
            s.pv_info = Some(PvInfoState { guest_width: 8, pt_levels: 4 });
            assert!(layout.check(&s).is_err());
        }
    }

    #[test]
    fn emulator_records_only_for_hvm_and_well_formed() {
        let mut s = DomainState::new(DomainType::X86_HVM, 12);
        s.hvm_context = Some(vec![1]);
        s.emulator.push(EmulatorState {
            kind: LibxlRecordType::EMULATOR_XENSTORE_DATA,
            id: 2,
            index: 0,
            data: b"physmap/1/name\0vga\0".to_vec(),
        });
        for_type(DomainType::X86_HVM).unwrap().check(&s).unwrap();
        s.domain_type = DomainType::X86_PVH;
        assert!(for_type(DomainType::X86_PVH).unwrap().check(&s).is_err());
        s.domain_type = DomainType::X86_HVM;
        s.emulator[0].data = b"/abs\0v\0".to_vec();
        assert!(for_type(DomainType::X86_HVM).unwrap().check(&s).is_err());
        s.emulator[0].kind = LibxlRecordType::CHECKPOINT_END;
        assert!(for_type(DomainType::X86_HVM).unwrap().check(&s).is_err());
    }
}
