//! A backend that lends only once the guest is paused (sr-xen lends a domain's frames while it
//! is suspended): the live passes copy, the final pass lends, and the stream carries the
//! guest's memory as it is at the end.

mod common;

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use common::{TestGuest, memory, state};
use sr_format::state::DomainState;
use sr_format::{DomainType, PageType, Strictness, walk_with};
use sr_memory::{GuestMemory, MemoryError, Pfn, PfnBitmap, RamMemory};
use sr_save::{Guest, PrecopyPolicy, SaveError, SaveOptions, Saver};

/// RAM that lends only while `quiesced`, counting the lends it served.
struct LendsWhenPaused {
    inner: RamMemory,
    quiesced: AtomicBool,
    lends: AtomicU32,
    lending: bool,
}

impl GuestMemory for LendsWhenPaused {
    fn page_shift(&self) -> u32 {
        self.inner.page_shift()
    }
    fn pfn_limit(&self) -> u64 {
        self.inner.pfn_limit()
    }
    fn populate(&self, pfns: &[Pfn]) -> Result<(), MemoryError> {
        self.inner.populate(pfns)
    }
    fn is_populated(&self, pfn: Pfn) -> bool {
        self.inner.is_populated(pfn)
    }
    fn populated(&self) -> PfnBitmap {
        self.inner.populated()
    }
    fn write_pages(&self, pfns: &[Pfn], data: &[u8]) -> Result<(), MemoryError> {
        self.inner.write_pages(pfns, data)
    }
    fn read_pages(&self, pfns: &[Pfn], out: &mut [u8]) -> Result<(), MemoryError> {
        self.inner.read_pages(pfns, out)
    }
    fn take_dirty(&self) -> PfnBitmap {
        self.inner.take_dirty()
    }
    fn lend_pages(&self, pfns: &[Pfn], f: &mut dyn FnMut(&[&[u8]]) -> io::Result<()>) -> Option<io::Result<()>> {
        if !self.lending || !self.quiesced.load(Ordering::SeqCst) {
            return None;
        }
        if !pfns.is_empty() {
            self.lends.fetch_add(1, Ordering::Relaxed);
        }
        self.inner.lend_pages(pfns, f)
    }
}

/// A guest over that memory whose pause quiesces it.
struct PausesMemory {
    inner: TestGuest,
    memory: Arc<LendsWhenPaused>,
}

impl Guest for PausesMemory {
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
        self.memory.quiesced.store(true, Ordering::SeqCst);
        self.inner.pause()
    }
    fn state(&self) -> Result<DomainState, SaveError> {
        self.inner.state()
    }
}

fn setup(lending: bool) -> PausesMemory {
    let memory = Arc::new(LendsWhenPaused {
        inner: memory(12, 700),
        quiesced: AtomicBool::new(false),
        lends: AtomicU32::new(0),
        lending,
    });
    let mut inner = TestGuest::new(Box::new(Arc::clone(&memory)), state(DomainType::X86_PV, 12));
    inner.hot = memory.populated().iter_ones().take(20).collect();
    PausesMemory { inner, memory }
}

#[test]
fn live_passes_copy_the_paused_pass_lends_and_the_stream_matches_memory() {
    let options =
        SaveOptions { workers: 2, batch_pfns: 64, live: Some(PrecopyPolicy::default()), ..Default::default() };
    let g = setup(true);
    // Dirty a few pages after the first pass so the final pass has something to lend.
    let mut out = Vec::new();
    let mut dirtied = false;
    let stats = Saver::new(options.clone())
        .on_event(|e| {
            if !dirtied && matches!(e, sr_save::SaveEvent::IterationEnd(_)) {
                dirtied = true;
                for _ in 0..10 {
                    g.inner.dirty_one();
                }
            }
        })
        .save(&g, &mut out)
        .unwrap();
    walk_with(&out, Strictness::Strict).unwrap();
    assert!(stats.zero_copy, "the final (paused) pass lends: {stats:?}");
    assert!(g.memory.lends.load(Ordering::Relaxed) > 0, "pages were lent after the pause: {:?}", stats.iterations);
    assert!(stats.live_passes() >= 1);
    // The restored view equals the guest's memory now, page for page.
    common::assert_stream_matches_memory(&out, g.memory());
}

#[test]
fn a_backend_that_never_lends_is_copied_from_in_every_pass() {
    let g = setup(false);
    let mut out = Vec::new();
    let options = SaveOptions { workers: 2, live: Some(PrecopyPolicy::default()), ..Default::default() };
    let stats = Saver::new(options).save(&g, &mut out).unwrap();
    assert!(!stats.zero_copy);
    assert_eq!(g.memory.lends.load(Ordering::Relaxed), 0);
    common::assert_stream_matches_memory(&out, g.memory());
}
