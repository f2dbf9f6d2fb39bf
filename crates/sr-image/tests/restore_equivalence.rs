//! Reading every page through the index equals what a restore leaves in memory: live
//! passes, VERIFY passes, checkpoints (bare and libxl-wrapped), XALLOC, XTAB and BROKEN, on
//! hand-built streams and on random ones (proptest). The streams come from sr-restore's
//! independent test encoder.

#[path = "../../sr-restore/tests/common/mod.rs"]
mod common;

use common::*;
use proptest::prelude::*;
use sr_format::StreamReader;
use sr_image::{GuestImage, Holes, PageIndex, PageLocation};
use sr_memory::GuestMemory;

/// Builds the index of `bytes` (bodies skipped, through a seeking source as from a file)
/// and compares every pfn below `limit` with a restore of the same bytes.
fn assert_index_matches_restore(bytes: &[u8], limit: u64) -> PageIndex {
    let restored = restore_with(bytes, checkpointed(false), limit).expect("the stream restores");
    let mem = restored.memory.expect("memory");
    let src = sr_format::SeekSource::new(std::io::Cursor::new(bytes.to_vec())).unwrap();
    let index = PageIndex::build(StreamReader::new(src).skip_page_bodies(true)).expect("the index builds");
    let from_slice = GuestImage::from_bytes(bytes).expect("the index builds from a slice");
    assert_eq!(from_slice.index().pages().collect::<Vec<_>>(), index.pages().collect::<Vec<_>>());
    let image = GuestImage::new(index, bytes);
    let size = mem.page_size();
    let (mut want, mut got) = (vec![0u8; size], vec![0u8; size]);
    let mut populated = 0;
    for pfn in 0..limit {
        let present = image.read_page(pfn, &mut got).unwrap();
        assert_eq!(present, mem.is_populated(pfn), "pfn {pfn:#x}: populated in the index vs restore");
        if present {
            populated += 1;
            mem.read_pages(&[pfn], &mut want).unwrap();
            assert!(got == want, "pfn {pfn:#x}: contents differ from restore");
        }
    }
    assert_eq!(image.index().len(), populated, "no page beyond the restore's limit");
    // A whole-range physical read (holes as zeros) equals the restored memory too.
    let mut all = vec![0u8; limit as usize * size];
    image.read_phys(0, &mut all, Holes::Zero).unwrap();
    for pfn in 0..limit {
        mem.read_pages(&[pfn], &mut want).unwrap();
        assert!(all[pfn as usize * size..][..size] == want[..], "pfn {pfn:#x} in the whole read");
    }
    image.index().clone()
}

#[test]
fn live_passes_later_pages_win() {
    let spec = hvm_body(HVM)
        .pages(&notab(2..5, 1))
        .pages(&[eg(3, NOTAB, 2), e(30, XALLOC), e(4, XALLOC), e(5, XTAB), e(40, XTAB), e(41, BROKEN)])
        .pages(&[eg(2, NOTAB, 3), eg(31, NOTAB, 3)])
        .end();
    let bytes = spec.bytes();
    let index = assert_index_matches_restore(&bytes, X86_LIMIT);
    assert_eq!(index.get(30).unwrap().location, PageLocation::Zero);
    assert!(matches!(index.get(4).unwrap().location, PageLocation::Data(_)), "XALLOC keeps populated contents");
    assert!(index.get(40).is_none() && index.get(41).is_none());
    assert!(index.get(5).is_some(), "XTAB does not unpopulate");
}

#[test]
fn verify_pass_changes_nothing_but_populates_new_pfns() {
    let spec = hvm_body(HVM)
        .pages(&notab(0..8, 1))
        .rec(VERIFY, [])
        .pages(&notab(0..8, 9))
        .pages(&[eg(50, NOTAB, 9), e(51, XALLOC)])
        .end();
    let index = assert_index_matches_restore(&spec.bytes(), X86_LIMIT);
    assert_eq!(index.get(50).unwrap().location, PageLocation::Zero);
}

#[test]
fn bare_checkpoints_apply_when_complete() {
    let spec = hvm_body(HVM)
        .rec(CHECKPOINT, [])
        .pages(&notab(0..4, 2))
        .rec(HVM_CONTEXT, HVM_BLOB)
        .rec(CHECKPOINT, [])
        .pages(&notab(0..2, 3))
        .pages(&[eg(60, NOTAB, 3)])
        .end();
    let index = assert_index_matches_restore(&spec.bytes(), X86_LIMIT);
    assert_eq!(index.checkpoints(), 2);
    assert!(index.get(60).is_none(), "records after the last checkpoint are dropped");
}

#[test]
fn libxl_checkpoints_complete_at_checkpoint_end() {
    let spec = hvm_body(HVM)
        .rec(CHECKPOINT, [])
        .libxl(L_CHECKPOINT_END, [])
        .pages(&notab(0..4, 2))
        .rec(VERIFY, [])
        .pages(&notab(0..4, 7))
        .rec(CHECKPOINT, [])
        .libxl(L_CHECKPOINT_END, [])
        .pages(&notab(0..4, 3))
        .pages(&[eg(70, NOTAB, 4)])
        .end()
        .wrapped(Wrap::Xl(b"{}\0".to_vec()));
    let index = assert_index_matches_restore(&spec.bytes(), X86_LIMIT);
    assert!(index.get(70).is_none(), "records after the last CHECKPOINT_END are dropped");
    assert_eq!(index.checkpoints(), 2);
}

#[test]
fn every_domain_type_and_page_size() {
    for (name, spec) in minimal_streams() {
        let index = assert_index_matches_restore(&spec.bytes(), limit_for(&spec));
        assert!(!index.is_empty(), "{name}");
    }
    for shift in [14, 16] {
        let spec = arm_body(shift).pages(&notab(1..3, 5)).end();
        assert_index_matches_restore(&spec.bytes(), ARM_LIMIT);
    }
}

#[test]
fn page_types_are_the_last_populating_entry() {
    let index = assert_index_matches_restore(&pv().bytes(), X86_LIMIT);
    assert_eq!(index.page_type(21), Some(sr_format::PageType::L4TAB_PINNED));
    assert_eq!(index.page_type(20), Some(sr_format::PageType::L1TAB));
    assert_eq!(index.page_type(0), Some(sr_format::PageType::NOTAB));
    assert_eq!(index.page_type(22), None);
}

#[derive(Clone, Debug)]
enum Op {
    Pages(Vec<(u64, u8)>, u8),
    Verify,
    Checkpoint,
}

fn op() -> impl Strategy<Value = Op> {
    let entry = (0u64..48, prop::sample::select(vec![NOTAB, NOTAB, NOTAB, XALLOC, XTAB, BROKEN]));
    prop_oneof![
        6 => (prop::collection::vec(entry, 1..12), any::<u8>()).prop_map(|(v, g)| Op::Pages(v, g)),
        1 => Just(Op::Verify),
        1 => Just(Op::Checkpoint),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]
    #[test]
    fn random_streams_match_restore(ops in prop::collection::vec(op(), 0..16), wrap in any::<bool>()) {
        let mut spec = hvm_body(HVM);
        for op in &ops {
            spec = match op {
                Op::Pages(v, g) => spec.pages(&v.iter().map(|&(pfn, t)| eg(pfn, t, *g)).collect::<Vec<_>>()),
                Op::Verify => spec.rec(VERIFY, []),
                // In a libxl stream libxl's CHECKPOINT_END completes the checkpoint.
                Op::Checkpoint if wrap => spec.rec(CHECKPOINT, []).libxl(L_CHECKPOINT_END, []),
                Op::Checkpoint => spec.rec(CHECKPOINT, []),
            };
        }
        let spec = spec.end().wrapped(if wrap { Wrap::Libxl } else { Wrap::None });
        let bytes = spec.bytes();
        // Every generated stream is valid: a failure here is a bug in the generator.
        assert_index_matches_restore(&bytes, X86_LIMIT);
    }
}

#[test]
fn compaction_during_the_build_keeps_the_last_entry() {
    // More entries than the first compaction threshold (65536), over several passes.
    let n = 70_000u64;
    let xalloc: Vec<Entry> = (0..n).map(|pfn| e(pfn, XALLOC)).collect();
    let spec = hvm_body(HVM)
        .pages(&xalloc[..40_000])
        .pages(&xalloc[30_000..])
        .pages(&[eg(7, NOTAB, 1), eg(n - 1, NOTAB, 1), eg(45_000, NOTAB, 2)])
        .pages(&xalloc)
        .pages(&[eg(7, NOTAB, 3)])
        .end();
    let index = assert_index_matches_restore(&spec.bytes(), n);
    assert_eq!(index.len() as u64, n);
    assert!(index.heap_bytes() <= 16 * n as usize + 4096 * 4, "16 bytes per page: {}", index.heap_bytes());
}
