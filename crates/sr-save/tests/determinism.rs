//! The output does not depend on the worker count, nor on whether pages are lent or copied.

mod common;

use common::{Faulty, TestGuest, guest, memory, record_counts, state};
use sr_format::{DomainType, RecordType, Strictness, walk_with};
use sr_save::{SaveOptions, Saver, ZeroPages};

fn save(g: &TestGuest, options: SaveOptions) -> (Vec<u8>, sr_save::SaveStats) {
    let mut out = Vec::new();
    let stats = Saver::new(options).save(g, &mut out).unwrap();
    (out, stats)
}

#[test]
fn byte_identical_for_1_2_4_workers_and_any_batch() {
    for dtype in [DomainType::X86_PV, DomainType::X86_HVM] {
        let g = guest(dtype, 12, 700);
        for batch in [1, 7, 1024] {
            let reference = save(&g, SaveOptions { workers: 1, batch_pfns: batch, ..Default::default() }).0;
            walk_with(&reference, Strictness::Strict).unwrap();
            let entries = walk_with(&reference, Strictness::Strict).unwrap().pfn_entries;
            assert_eq!(record_counts(&reference)[&RecordType::PAGE_DATA] as u64, entries.div_ceil(batch as u64));
            for workers in [2, 4] {
                let (out, stats) = save(&g, SaveOptions { workers, batch_pfns: batch, ..Default::default() });
                assert!(out == reference, "{dtype} batch {batch}: {workers} workers differ from 1");
                assert!(stats.zero_copy);
            }
        }
    }
}

#[test]
fn lent_and_copied_pages_give_the_same_bytes() {
    let g = guest(DomainType::X86_HVM, 12, 700);
    let (lent, stats) = save(&g, SaveOptions { workers: 2, ..Default::default() });
    assert!(stats.zero_copy);
    let copying = TestGuest::new(
        Box::new(Faulty { inner: memory(12, 700), fail_pfn: None, lend: false }),
        state(DomainType::X86_HVM, 12),
    );
    let (copied, stats) = save(&copying, SaveOptions { workers: 2, ..Default::default() });
    assert!(!stats.zero_copy);
    assert!(lent == copied);
}

#[test]
fn xalloc_zero_pages_are_deterministic_and_smaller() {
    let g = guest(DomainType::X86_HVM, 12, 700);
    let (data, _) = save(&g, SaveOptions { batch_pfns: 64, ..Default::default() });
    let opts = |workers| SaveOptions { zero_pages: ZeroPages::Xalloc, workers, batch_pfns: 64, ..Default::default() };
    let (x1, stats) = save(&g, opts(1));
    assert!(!stats.zero_copy);
    let (x4, _) = save(&g, opts(4));
    assert!(x1 == x4);
    let walk = walk_with(&x1, Strictness::Strict).unwrap();
    let zero_pages = 70; // layout(700): pfns 1500..1570 populated but never written
    assert_eq!(walk.data_pages + zero_pages + 1, walk.pfn_entries); // + 1: the XTAB hole
    // Same records and pfn words; only the zero pages' bodies are gone.
    assert_eq!(data.len() - x1.len(), zero_pages as usize * 4096);
}
