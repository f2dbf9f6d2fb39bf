//! Bounds apply to what is populated, not to what is declared (issue 7, section 4): a PV
//! guest whose p2m declares 128 GiB with 16 pages populated restores into a destination
//! whose pfn limit covers the span, and the populated-memory bound counts pages populated.

mod common;

use common::*;
use sr_memory::{GuestMemory, RamMemory};
use sr_restore::{Bound, RestoreError, RestoreOptions, Restorer};

/// 128 GiB of 4 KiB pages.
const SPAN: u64 = 128 << 18;

/// The minimal PV stream with a p2m declaring 128 GiB: 65536 p2m frames, all the two
/// populated frames of the minimal stream; 16 pages populated.
fn sparse_pv() -> Spec {
    let frames: Vec<u64> = (0..SPAN / 512).map(|i| PV_FRAMES[(i % 2) as usize]).collect();
    let extra: Vec<Entry> = notab(200..208, 0);
    pv_body(3).replace(P2M_FRAMES, p2m_frames(0, (SPAN - 1) as u32, &frames)).pages(&extra).end()
}

#[test]
fn a_sparse_guest_of_128_gib_restores_by_its_populated_pages() {
    let spec = sparse_pv();
    let bytes = spec.bytes();
    let r = Restorer::new(lenient())
        .restore(sr_format::StreamReader::from_slice(&bytes), |h| RamMemory::new(u32::from(h.page_shift.get()), SPAN))
        .unwrap();
    let mem = r.memory.unwrap();
    assert_eq!(mem.populated().count_ones(), 16);
    assert_eq!(r.state.p2m.unwrap().end_pfn as u64, SPAN - 1);
    // Only the pages touched cost memory, not the declared span.
    assert!(mem.allocated_bytes() <= 4 << 20, "{} bytes", mem.allocated_bytes());
}

#[test]
fn the_populated_bound_counts_populated_pages() {
    let spec = sparse_pv();
    let built = spec.build();
    let open = |h: &sr_format::DomainHeader| RamMemory::new(u32::from(h.page_shift.get()), SPAN);
    // 16 pages fit a 16-page bound exactly.
    let fits = RestoreOptions { max_populated_bytes: 16 * 4096, ..lenient() };
    Restorer::new(fits).restore(sr_format::StreamReader::from_slice(&built.bytes), open).unwrap();
    // 15 do not: the second PAGE_DATA record (8 more pages on top of 8) passes the bound.
    let tight = RestoreOptions { max_populated_bytes: 15 * 4096, ..lenient() };
    let e = Restorer::new(tight).restore(sr_format::StreamReader::from_slice(&built.bytes), open).unwrap_err();
    let pd = spec.recs().enumerate().filter(|(_, (t, _))| *t == PAGE_DATA).nth(1).unwrap().0;
    assert!(
        matches!(e, RestoreError::BoundReached { bound: Bound::Populated, limit: 15, needed: 16, index, .. }
            if index == pd as u64),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        format!(
            "record {pd} (PAGE_DATA) at byte {}: the guest populates 16 pages (64 KiB), more than the \
             destination's bound of 15 pages (60 KiB)",
            built.off(pd)
        )
    );
    // The span is the destination's to bound: one pfn short of it fails with the span bound.
    let e = Restorer::new(lenient())
        .restore(sr_format::StreamReader::from_slice(&built.bytes), |h| {
            RamMemory::new(u32::from(h.page_shift.get()), SPAN - 1)
        })
        .unwrap_err();
    assert!(matches!(e, RestoreError::BoundReached { bound: Bound::Span, needed: SPAN, .. }), "{e:?}");
}
