//! Hostile input: truncation at every offset, random corruption, absurd lengths and counts,
//! huge pfns. Nothing may panic, nothing truncated may restore, and no allocation may be
//! proportional to a claimed length or a pfn value (checked with a per-thread counting
//! allocator).
#![allow(unsafe_code)]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::{Duration, Instant};

use common::*;
use sr_format::{REC_LENGTH_MAX, RecordType, StreamReader};
use sr_memory::{GuestMemory, RamMemory};
use sr_restore::{RestoreError, RestoreOptions, Restorer};

// ------------------------------------------------------------------------------------------
// A global allocator that tracks the live and peak bytes of the current thread, so that
// tests running in parallel do not see each other's allocations.

struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn track(delta: isize) {
    // `try_with`: never panic inside the allocator, even during thread teardown.
    let _ = LIVE.try_with(|live| {
        let now = live.get() + delta;
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so the
// `GlobalAlloc` contract is exactly the system allocator's; the bookkeeping only touches
// const-initialised thread-locals without destructors, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's valid layout.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            track(layout.size().cast_signed());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's valid layout.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            track(layout.size().cast_signed());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` (through us) with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        track(-layout.size().cast_signed());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` was allocated by `System` (through us) with `layout`.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            track(new_size.cast_signed() - layout.size().cast_signed());
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f` and returns its result with the peak number of bytes it had allocated at once
/// on this thread (above what was live when it started).
fn peak_alloc<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let start = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(start));
    let out = f();
    let peak = PEAK.with(Cell::get);
    (out, (peak - start).max(0) as usize)
}

const MIB: usize = 1 << 20;

// ------------------------------------------------------------------------------------------

fn containers(spec: &Spec) -> Vec<(String, Spec)> {
    [Wrap::None, Wrap::Libxl, Wrap::Xl(b"{\"x\": 1}\0".to_vec())]
        .into_iter()
        .map(|w| (format!("{w:?}"), spec.clone().wrapped(w)))
        .collect()
}

/// Small streams of every type: the minimal ones with fewer pages, so that restoring every
/// prefix stays cheap.
fn small_streams() -> Vec<(&'static str, Spec)> {
    let pv = pv_body(3).edit(PAGE_DATA, |b| {
        // pfns 2, 3 and 21: the start_info, GDT and L4 frames of vcpu 0's context.
        let entries = [e(0, NOTAB), e(2, NOTAB), e(3, NOTAB), e(100, NOTAB), e(101, NOTAB)];
        let tables = [e(20, L1TAB), e(21, L4TAB_PINNED), e(22, XTAB), e(23, XALLOC)];
        *b = page_data(&[&entries[..], &tables].concat(), 4096)
    });
    let hvm = |t| hvm_body(t).edit(PAGE_DATA, |b| *b = page_data(&[e(0, NOTAB), e(3, XTAB), e(4, XALLOC)], 4096));
    let arm = arm_body(12).edit(PAGE_DATA, |b| *b = page_data(&[e(1, NOTAB), e(2, BROKEN)], 4096));
    vec![("pv", pv.end()), ("hvm", hvm(HVM).end()), ("pvh", hvm(PVH).end()), ("arm", arm.end())]
}

#[test]
fn every_truncation_of_every_type_and_container_fails_cleanly() {
    for (name, spec) in small_streams() {
        for (wrap, spec) in containers(&spec) {
            let bytes = spec.bytes();
            let limit = limit_for(&spec);
            // The whole stream restores.
            let full = restore_with(&bytes, lenient(), limit).unwrap();
            assert_memory(full.memory.as_ref().unwrap(), &spec.expected_memory());
            for cut in 0..bytes.len() {
                let prefix = &bytes[..cut];
                let r = restore_with(prefix, lenient(), limit);
                let e = match r {
                    Ok(_) => panic!("{name} {wrap}: prefix of {cut} bytes restored"),
                    Err(e) => e,
                };
                assert!(e.offset() <= cut as u64, "{name} {wrap} cut {cut}: {e}");
                assert!(
                    matches!(
                        e,
                        RestoreError::Format(sr_format::Error::Truncated { .. }) | RestoreError::Incomplete { .. }
                    ),
                    "{name} {wrap} cut {cut}: {e:?}"
                );
                let v = verify_bytes(prefix, strict()).unwrap_err();
                assert!(v.offset() <= cut as u64, "{name} {wrap} cut {cut}: {v}");
            }
        }
    }
}

#[test]
fn truncated_checkpointed_streams_never_restore_a_partial_checkpoint() {
    // A checkpointed stream cut anywhere either fails or fails over to a complete checkpoint,
    // whose memory is exactly the first or the second checkpoint's.
    let spec = hvm_body(HVM)
        .rec(CHECKPOINT, [])
        .rec(PAGE_DATA, page_data(&notab(0..3, 1), 4096))
        .rec(CHECKPOINT, [])
        .rec(PAGE_DATA, page_data(&notab(0..3, 2), 4096));
    let built = spec.build();
    let first_ckpt = built.off(spec.index_of(CHECKPOINT)) as usize;
    for cut in 0..=built.bytes.len() {
        match restore_with(&built.bytes[..cut], checkpointed(true), X86_LIMIT) {
            Ok(r) => {
                assert!(cut >= first_ckpt + 8 && r.stats.failed_over, "cut {cut}");
                let mem = r.memory.unwrap();
                let mut buf = vec![0u8; 4096];
                mem.read_pages(&[1], &mut buf).unwrap();
                let generation = r.stats.checkpoints as u8 - 1;
                assert_eq!(buf, page(1, generation, 4096), "cut {cut}");
            }
            Err(e) => assert!(cut < first_ckpt + 8, "cut {cut}: {e}"),
        }
    }
}

/// The pfns of a stream's records' structural bytes: headers and the start of each body.
fn structural_offsets(built: &Built) -> Vec<usize> {
    let mut v: Vec<usize> = (0..(built.libxc_at as usize + 40)).collect();
    for &r in built.recs.iter().chain(&built.libxl_recs) {
        v.extend((r as usize..r as usize + 32).filter(|&o| o < built.bytes.len()));
    }
    v
}

#[test]
fn random_corruption_never_panics_and_never_escapes_the_destination() {
    let mut rng = Rng::new(0x5EED_0001);
    let mut outcomes = [0usize; 2];
    for (name, spec) in small_streams() {
        for (wrap, spec) in containers(&spec).into_iter().take(2) {
            let built = spec.build();
            let structural = structural_offsets(&built);
            let limit = limit_for(&spec);
            for case in 0..1000 {
                let mut bytes = built.bytes.clone();
                for _ in 0..=rng.below(3) {
                    let at = if rng.below(4) == 0 {
                        rng.below(bytes.len() as u64) as usize
                    } else {
                        structural[rng.below(structural.len() as u64) as usize]
                    };
                    bytes[at] = match rng.below(3) {
                        0 => bytes[at] ^ (1 << rng.below(8)),
                        1 => rng.next_u64() as u8,
                        _ => [0, 0xFF, 0x80, 0x7F, 0x10][rng.below(5) as usize],
                    };
                }
                let r = restore_with(&bytes, lenient(), limit);
                let same_limit = RestoreOptions { pfn_limit: limit, ..lenient() };
                let v = verify_bytes(&bytes, same_limit);
                outcomes[usize::from(r.is_ok())] += 1;
                match (&r, &v) {
                    (Ok(r), Ok(v)) => {
                        let mem = r.memory.as_ref().unwrap();
                        assert!(mem.populated().last_one().is_none_or(|p| p < limit));
                        assert!(r.state.page_types.keys().all(|&p| p < limit), "{name} {wrap} case {case}");
                        assert!(r.stats.pfn_range.is_none_or(|(_, hi)| hi < limit));
                        assert_eq!(r.state, v.state, "{name} {wrap} case {case}");
                    }
                    (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{name} {wrap} case {case}"),
                    // Verification has no destination to read the start_info page from.
                    (Err(RestoreError::Incomplete { what, .. }), Ok(v))
                        if v.skipped.start_info && what.contains("start_info page") => {}
                    _ => panic!("{name} {wrap} case {case}: restore {:?} but verify {:?}", r.is_ok(), v.is_ok()),
                }
                // Strict never accepts what lenient rejects.
                if r.is_err() {
                    assert!(restore_with(&bytes, strict(), limit).is_err());
                }
            }
        }
    }
    // The corruption must exercise both outcomes.
    assert!(outcomes[0] > 1000 && outcomes[1] > 100, "{outcomes:?}");
}

#[test]
fn a_huge_record_length_is_rejected_before_any_allocation() {
    for length in [0xFFFF_FFF8u32, 0xFFFF_FFFF, REC_LENGTH_MAX + 1] {
        let mut bytes = Spec::new(3, HVM, 12).bytes();
        bytes.extend_from_slice(&PAGE_DATA.to_le_bytes());
        bytes.extend_from_slice(&length.to_le_bytes());
        bytes.extend_from_slice(&[0; 64]);
        let (r, peak) = peak_alloc(|| {
            Restorer::new(lenient()).restore_read(&bytes[..], |h| RamMemory::new(u32::from(h.page_shift.get()), 16))
        });
        let e = r.unwrap_err();
        assert!(
            matches!(&e, RestoreError::Format(sr_format::Error::RecordTooLong { offset: 40, index: 0, record, length: l, limit })
                if *record == RecordType::PAGE_DATA && *l == length && *limit == REC_LENGTH_MAX),
            "{e:?}"
        );
        assert!(peak < MIB, "peak {peak}");
    }
    // The same in a libxl record.
    let mut bytes = b"LibxlFmt\0\0\0\x02\0\0\0\0".to_vec();
    bytes.extend_from_slice(&L_EMULATOR.to_le_bytes());
    bytes.extend_from_slice(&0xFFFF_FFF8u32.to_le_bytes());
    bytes.extend_from_slice(&[0; 64]);
    let (r, peak) = peak_alloc(|| Restorer::new(lenient()).verify(StreamReader::from_read(&bytes[..])));
    assert!(
        matches!(r, Err(RestoreError::Format(sr_format::Error::LibxlRecordTooLong { offset: 16, index: 0, .. }))),
        "{r:?}"
    );
    assert!(peak < MIB, "peak {peak}");
}

#[test]
fn a_record_claiming_the_maximum_length_allocates_only_what_arrives() {
    let mut bytes = Spec::new(3, HVM, 12).rec(SDE, []).bytes();
    bytes.extend_from_slice(&HVM_CONTEXT.to_le_bytes());
    bytes.extend_from_slice(&REC_LENGTH_MAX.to_le_bytes());
    bytes.extend_from_slice(&[7; 3000]);
    let (r, peak) = peak_alloc(|| Restorer::new(lenient()).verify(StreamReader::from_read(&bytes[..])));
    assert!(
        matches!(r, Err(RestoreError::Format(sr_format::Error::Truncated { offset: 48, got, .. })) if got == 3008),
        "{r:?}"
    );
    assert!(peak < 4 * MIB, "peak {peak}");
}

#[test]
fn absurd_counts_are_length_errors() {
    let cases: [(u32, Vec<u8>); 4] = [
        (PAGE_DATA, [0xFFFF_FFFFu32.to_le_bytes(), [0; 4]].concat()),
        (PAGE_DATA, [&0xFFFF_FFFFu32.to_le_bytes()[..], &[0; 4], &[0; 64]].concat()),
        (HVM_PARAMS, [&0xFFFF_FFFFu32.to_le_bytes()[..], &[0; 4], &[0; 32]].concat()),
        (HVM_PARAMS, [&0x1000_0000u32.to_le_bytes()[..], &[0; 4]].concat()),
    ];
    for (t, body) in cases {
        let spec = hvm_body(HVM).rec(t, body).end();
        let built = spec.build();
        let index = built.recs.len() - 2;
        let (r, peak) = peak_alloc(|| restore_with(&built.bytes, lenient(), X86_LIMIT));
        let e = r.unwrap_err();
        assert!(
            matches!(&e, RestoreError::Format(sr_format::Error::BadLength { offset, index: i, .. })
                if *offset == built.off(index) && *i == index as u64),
            "{e:?}"
        );
        assert!(peak < 8 * MIB, "peak {peak}");
    }
    // A p2m claiming 2^32 pfns with a single frame: a frame-count error.
    let spec = pv_body(3).replace(P2M_FRAMES, p2m_frames(0, u32::MAX, &[100])).end();
    assert!(matches!(restore(&spec, lenient()), Err(RestoreError::Format(sr_format::Error::BadLength { .. }))));
}

fn max_pfn_stream(nibble: u8) -> Vec<u8> {
    hvm_body(HVM).rec(PAGE_DATA, page_data(&[e(50, NOTAB), e(sr_format::PFN_MAX, nibble)], 4096)).end().bytes()
}

#[test]
fn the_largest_pfn_is_out_of_range_for_a_destination() {
    for nibble in [NOTAB, XALLOC, L1TAB_PINNED] {
        let bytes = max_pfn_stream(nibble);
        let mem = RamMemory::new(12, X86_LIMIT).unwrap();
        let e = Restorer::new(lenient()).restore(StreamReader::from_slice(&bytes), |_| Ok(&mem)).unwrap_err();
        // An HVM pfn is never invalid (Xen): it is the destination's bound that is hit.
        assert!(
            matches!(e, RestoreError::BoundReached { bound: sr_restore::Bound::Span, needed, limit: X86_LIMIT, .. }
                if needed == sr_format::PFN_MAX + 1),
            "{e:?}"
        );
        assert!(!mem.is_populated(50), "nothing of the record was applied");
        // Verification has its own (default 2^40) bound.
        let e = verify_bytes(&bytes, lenient()).unwrap_err();
        assert!(matches!(e, RestoreError::BoundReached { limit: 0x100_0000_0000, .. }), "{e:?}");
    }
}

#[test]
fn verifying_the_largest_pfn_does_not_allocate_by_pfn_value() {
    let unbounded = RestoreOptions { pfn_limit: u64::MAX, ..lenient() };
    for nibble in [NOTAB, XALLOC, XTAB] {
        let bytes = max_pfn_stream(nibble);
        let start = Instant::now();
        let (r, peak) = peak_alloc(|| verify_bytes(&bytes, unbounded.clone()));
        let r = r.unwrap();
        assert!(start.elapsed() < Duration::from_secs(5));
        assert!(peak < MIB, "peak {peak}");
        assert_eq!(r.stats.pfn_range, Some((0, sr_format::PFN_MAX)));
    }
}

#[test]
fn sparse_pfns_cost_memory_proportional_to_the_record_not_to_the_spread() {
    // 16384 allocate-only entries, each in its own 32768-pfn region: a 128 KiB record.
    let entries: Vec<Entry> = (0..16384u64).map(|i| e(i << 15 | i, XALLOC)).collect();
    let body = page_data(&entries, 4096);
    let bytes = hvm_body(HVM).rec(PAGE_DATA, body.clone()).end().bytes();
    let (r, peak) = peak_alloc(|| verify_bytes(&bytes, lenient()));
    let r = r.unwrap();
    assert_eq!(r.stats.pages_by_type[&sr_format::PageType::XALLOC], 16384);
    // The page-type map and the populated set together stay within a small multiple of
    // the record (the record itself is borrowed, not copied).
    assert!(peak < 16 * body.len(), "peak {peak} for a record of {} bytes", body.len());
}

#[test]
fn pv_frames_outside_the_destination_are_rejected_before_allocation() {
    // A p2m end_pfn near 2^32 with one frame: rejected against the destination's limit
    // before the frame list grows.
    let spec = pv_body(3).replace(P2M_FRAMES, p2m_frames(u32::MAX, u32::MAX, &[100])).end();
    let (r, peak) = peak_alloc(|| restore(&spec, lenient()));
    let e = r.unwrap_err();
    assert!(
        matches!(&e, RestoreError::BoundReached { record, bound: sr_restore::Bound::Span, limit: X86_LIMIT, needed, .. }
            if *record == RecordType::X86_PV_P2M_FRAMES && *needed == 1 << 32),
        "{e:?}"
    );
    assert!(peak < 4 * MIB, "peak {peak}");
}
