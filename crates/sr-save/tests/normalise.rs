//! A guest that rewrites page bodies between read and write (x86 PV page-table normalisation
//! in the Xen backend): every data page goes through the hook, in copy mode, with its type.

mod common;

use common::{TestGuest, apply_pages, guest};
use sr_format::state::DomainState;
use sr_format::{DomainType, PageType, Strictness, walk_with};
use sr_memory::GuestMemory;
use sr_save::{Guest, SaveError, SaveOptions, Saver};

/// Delegates to a [`TestGuest`] and stamps each data page's first 8 bytes with its pfn; fails
/// at `fail_pfn`.
struct Stamping {
    inner: TestGuest,
    fail_pfn: Option<u64>,
}

impl Guest for Stamping {
    fn memory(&self) -> &dyn GuestMemory {
        self.inner.memory()
    }
    fn domain_type(&self) -> DomainType {
        self.inner.domain_type()
    }
    fn page_types(&self, pfns: &[u64], out: &mut [PageType]) -> Result<(), SaveError> {
        self.inner.page_types(pfns, out)
    }
    fn extra_pfns(&self) -> Vec<u64> {
        self.inner.extra_pfns()
    }
    fn pause(&self) -> Result<(), SaveError> {
        self.inner.pause()
    }
    fn state(&self) -> Result<DomainState, SaveError> {
        self.inner.state()
    }
    fn normalises_pages(&self) -> bool {
        true
    }
    fn normalise_pages(&self, pfns: &[u64], types: &[PageType], data: &mut [u8]) -> Result<(), SaveError> {
        assert_eq!(pfns.len(), types.len());
        assert_eq!(data.len(), pfns.len() * 4096);
        for ((&pfn, t), page) in pfns.iter().zip(types).zip(data.chunks_exact_mut(4096)) {
            assert!(t.has_data(), "pfn {pfn:#x} of type {t:?} reached the hook");
            if Some(pfn) == self.fail_pfn {
                return Err(SaveError::Guest(format!("bad frame in pfn {pfn:#x}")));
            }
            page[..8].copy_from_slice(&pfn.to_le_bytes());
        }
        Ok(())
    }
}

#[test]
fn every_data_page_is_rewritten_once_and_lending_is_off() {
    for workers in [1, 3] {
        let g = Stamping { inner: guest(DomainType::X86_HVM, 12, 700), fail_pfn: None };
        let mut out = Vec::new();
        let stats =
            Saver::new(SaveOptions { workers, batch_pfns: 64, ..Default::default() }).save(&g, &mut out).unwrap();
        assert!(!stats.zero_copy, "a normalising guest must not be lent from");
        walk_with(&out, Strictness::Strict).unwrap();
        let mut checked = 0;
        for (pfn, (_, body)) in apply_pages(&out) {
            let Some(body) = body else { continue };
            let mut want = vec![0u8; 4096];
            g.memory().read_pages(&[pfn], &mut want).unwrap();
            want[..8].copy_from_slice(&pfn.to_le_bytes());
            assert!(body == want, "pfn {pfn:#x}");
            checked += 1;
        }
        assert!(checked > 600, "{checked} pages checked");
    }
}

#[test]
fn a_normalisation_error_fails_the_save_before_end() {
    let g = Stamping { inner: guest(DomainType::X86_HVM, 12, 700), fail_pfn: Some(300) };
    let mut out = Vec::new();
    let err =
        Saver::new(SaveOptions { workers: 2, batch_pfns: 64, ..Default::default() }).save(&g, &mut out).unwrap_err();
    assert!(err.to_string().contains("bad frame in pfn 0x12c"), "{err}");
    assert!(walk_with(&out, Strictness::Strict).is_err(), "no END after a failed normalisation");
}
