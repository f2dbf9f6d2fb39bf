//! The restorer's rules, applied to what a save is about to write (`sr_rules`, the code the
//! restorer runs), so a save never writes a stream its own restore rejects.
//!
//! The restorer sees the domain through the stream: the pfns sent (populated pages and the
//! guest's extra pfns), the type each was sent with, the bodies of the pages and the state
//! records. This module rebuilds that view from the guest and runs the same checks:
//! x86 PV pfns within the p2m (row 20), page-table entries (row 24), the END rules (rows
//! 36, 44-46) and the start_info page's frames.

use std::collections::BTreeMap;

use sr_format::state::DomainState;
use sr_format::{DomainType, PageType};
use sr_rules::Violation;

use crate::error::SaveError;
use crate::guest::Guest;

/// pfns whose types are asked for at once.
const BATCH: usize = 1024;

/// Checks that a restore of `state` with the guest's memory as it is now would succeed.
/// `extras` are the guest's extra pfns, sorted and deduplicated.
///
/// # Errors
/// [`SaveError::Rejected`] with the rule the restorer would report; [`SaveError::Memory`]
/// if a page table or the start_info page cannot be read.
pub(crate) fn check(guest: &dyn Guest, state: &DomainState, extras: &[u64]) -> Result<(), SaveError> {
    if state.domain_type != DomainType::X86_PV {
        return sr_rules::check_end(state, &|_| true, None).map(drop).map_err(SaveError::Rejected);
    }
    let Some(p2m) = &state.p2m else {
        return sr_rules::check_end(state, &|_| true, None).map(drop).map_err(SaveError::Rejected);
    };
    let max_pfn = u64::from(p2m.end_pfn);
    let memory = guest.memory();
    let populated = memory.populated();
    // Row 20: every pfn sent must be within the p2m (the pfns are ascending).
    let highest = populated.last_one().into_iter().chain(extras.last().copied()).max();
    if let Some(pfn) = highest.filter(|&p| p > max_pfn) {
        return Err(SaveError::Rejected(Violation::PfnBeyondLimit { pfn, limit: max_pfn + 1 }));
    }
    // The types the stream will carry, as the restorer records them.
    let mut types = BTreeMap::new();
    let mut pfns = Vec::with_capacity(BATCH);
    let mut out = vec![PageType::NOTAB; BATCH];
    let mut flush = |pfns: &mut Vec<u64>| -> Result<(), SaveError> {
        let out = &mut out[..pfns.len()];
        guest.page_types(pfns, out)?;
        types.extend(pfns.iter().zip(out.iter()).filter(|(_, t)| **t != PageType::NOTAB).map(|(&p, &t)| (p, t)));
        pfns.clear();
        Ok(())
    };
    for pfn in populated.iter_ones().chain(extras.iter().copied().filter(|&p| !populated.get(p))) {
        pfns.push(pfn);
        if pfns.len() == BATCH {
            flush(&mut pfns)?;
        }
    }
    flush(&mut pfns)?;
    // Row 24: page-table bodies.
    let size = memory.page_size();
    let mut page = vec![0u8; size];
    for (&pfn, &t) in types.iter().filter(|(_, t)| t.is_page_table()) {
        memory.read_pages(&[pfn], &mut page).map_err(|e| SaveError::memory(pfn, e))?;
        if guest.normalises_pages() {
            guest.normalise_pages(&[pfn], &[t], &mut page)?;
        }
        sr_rules::pv::check_page_table(pfn, t, &page, max_pfn).map_err(SaveError::Rejected)?;
    }
    let mut view = state.clone();
    view.page_types = types;
    // Empty vcpu blobs are not written (and Xen skips them): the restorer never sees them.
    for v in view.vcpus.values_mut() {
        for blob in [&mut v.basic, &mut v.extended, &mut v.xsave, &mut v.msrs] {
            if blob.as_ref().is_some_and(Vec::is_empty) {
                *blob = None;
            }
        }
    }
    let sent = |pfn: u64| populated.get(pfn) || extras.binary_search(&pfn).is_ok();
    let restored = |pfn: u64| sent(pfn) && view.page_type(pfn).populates();
    let read = |pfn: u64, out: &mut [u8]| restored(pfn) && memory.read_pages(&[pfn], out).is_ok();
    sr_rules::check_end(&view, &restored, Some(&read)).map(drop).map_err(SaveError::Rejected)
}

#[cfg(test)]
mod tests {
    use sr_format::state::{P2mState, PvInfoState, VcpuState};
    use sr_memory::{GuestMemory, RamMemory};

    use super::*;

    struct G(RamMemory, DomainState);

    impl Guest for G {
        fn memory(&self) -> &dyn GuestMemory {
            &self.0
        }
        fn domain_type(&self) -> DomainType {
            self.1.domain_type
        }
        fn page_types(&self, pfns: &[u64], out: &mut [PageType]) -> Result<(), SaveError> {
            for (p, t) in pfns.iter().zip(out) {
                *t = self.1.page_type(*p);
            }
            Ok(())
        }
        fn pause(&self) -> Result<(), SaveError> {
            Ok(())
        }
        fn state(&self) -> Result<DomainState, SaveError> {
            Ok(self.1.clone())
        }
    }

    /// A missing or empty vcpu 0 context is refused with the restorer's words for it.
    #[test]
    fn vcpu0_missing_or_empty_reads_as_restore_says() {
        let mut s = DomainState::new(DomainType::X86_PV, 12);
        s.pv_info = Some(PvInfoState { guest_width: 8, pt_levels: 4 });
        s.p2m = Some(P2mState { end_pfn: 15, frames: vec![0] });
        for vcpus in [None, Some(Vec::new())] {
            if let Some(basic) = vcpus {
                s.vcpus.insert(0, VcpuState { basic: Some(basic), ..Default::default() });
            }
            let g = G(RamMemory::new(12, 16).unwrap(), s.clone());
            g.0.populate(&[0]).unwrap();
            let e = check(&g, &s, &[]).unwrap_err();
            assert_eq!(e.to_string(), "restore would reject this domain: no X86_PV_VCPU_BASIC for vcpu 0");
        }
    }
}
