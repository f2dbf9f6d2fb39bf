//! A guest that rewrites page bodies between read and write (x86 PV page-table normalisation
//! in the Xen backend): every data page goes through the hook, in copy mode, with its type.

mod common;

use common::{Faulty, TestGuest, apply_pages, guest, memory, state};
use sr_format::state::DomainState;
use sr_format::{DomainType, PageType, Strictness, walk_with};
use sr_memory::GuestMemory;
use sr_save::{Guest, SaveError, SaveOptions, Saver};

/// Delegates to a [`TestGuest`] and stamps the first 8 bytes of each data page of the types
/// it rewrites with its pfn; fails at `fail_pfn`.
struct Stamping {
    inner: TestGuest,
    fail_pfn: Option<u64>,
    /// Rewrite only pages of this type (None: every type).
    only: Option<PageType>,
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
    fn rewrites(&self, page_type: PageType) -> bool {
        self.only.is_none_or(|t| t == page_type)
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

fn save(g: &Stamping, workers: usize) -> (Vec<u8>, sr_save::SaveStats) {
    let mut out = Vec::new();
    let stats = Saver::new(SaveOptions { workers, batch_pfns: 64, ..Default::default() }).save(g, &mut out).unwrap();
    walk_with(&out, Strictness::Strict).unwrap();
    (out, stats)
}

/// Every data page in `out` is the guest's page, stamped with its pfn if `stamped(pfn)`.
fn assert_stamped(out: &[u8], g: &Stamping, stamped: impl Fn(u64) -> bool) -> usize {
    let mut checked = 0;
    for (pfn, (_, body)) in apply_pages(out) {
        let Some(body) = body else { continue };
        let mut want = vec![0u8; 4096];
        g.memory().read_pages(&[pfn], &mut want).unwrap();
        if stamped(pfn) {
            want[..8].copy_from_slice(&pfn.to_le_bytes());
        }
        assert!(body == want, "pfn {pfn:#x}");
        checked += 1;
    }
    checked
}

#[test]
fn every_rewritten_page_is_rewritten_lent_or_copied_with_the_same_bytes() {
    for workers in [1, 3] {
        // Lending backend: the rewritten pages are spliced into the lent ones.
        let lent = Stamping { inner: guest(DomainType::X86_HVM, 12, 700), fail_pfn: None, only: None };
        let (out, stats) = save(&lent, workers);
        assert!(stats.zero_copy);
        assert!(assert_stamped(&out, &lent, |_| true) > 600);
        // Copying backend: the same bytes.
        let copying = Stamping {
            inner: TestGuest::new(
                Box::new(Faulty { inner: memory(12, 700), fail_pfn: None, lend: false }),
                state(DomainType::X86_HVM, 12),
            ),
            fail_pfn: None,
            only: None,
        };
        let (copied, stats) = save(&copying, workers);
        assert!(!stats.zero_copy);
        assert!(copied == out, "{workers} workers: lent and copied saves differ");
    }
}

#[test]
fn only_the_types_the_guest_names_are_rewritten() {
    // The PV test guest has page tables among ordinary pages: only L1TAB pages are stamped.
    let g = Stamping { inner: guest(DomainType::X86_PV, 12, 700), fail_pfn: None, only: Some(PageType::L1TAB) };
    let types = g.inner.snapshot_state();
    let (out, stats) = save(&g, 2);
    assert!(stats.zero_copy);
    let l1 = |pfn: u64| types.page_type(pfn) == PageType::L1TAB;
    assert!(assert_stamped(&out, &g, l1) > 600);
    assert!(types.page_types.values().any(|&t| t == PageType::L1TAB), "the test guest has L1 tables");
}

#[test]
fn a_normalisation_error_fails_the_save_before_end() {
    let g = Stamping { inner: guest(DomainType::X86_HVM, 12, 700), fail_pfn: Some(300), only: None };
    let mut out = Vec::new();
    let err =
        Saver::new(SaveOptions { workers: 2, batch_pfns: 64, ..Default::default() }).save(&g, &mut out).unwrap_err();
    assert!(err.to_string().contains("bad frame in pfn 0x12c"), "{err}");
    assert!(walk_with(&out, Strictness::Strict).is_err(), "no END after a failed normalisation");
}
