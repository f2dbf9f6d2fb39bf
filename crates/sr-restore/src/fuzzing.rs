//! The fuzz entry point, shared by the `restore` fuzz target and the corpus replay test
//! (hidden from the documentation: not a stable API).
//!
//! [`fuzz_restore`] restores one input in every mode and panics if the modes disagree in a
//! way they never may; a panic anywhere (including an arithmetic overflow in fuzz builds) is
//! a bug.

use std::cell::Cell;

use sr_format::{StreamReader, Strictness};
use sr_memory::{GuestMemory, RamMemory};

use crate::{RestoreError, RestoreOptions, Restored, Restorer, StreamKind};

/// Guest memory the fuzz destination may hold: 256 MiB (65536 pfns of 4 KiB).
const FUZZ_MEMORY_BYTES: u64 = 1 << 28;

/// The pfn limit of the fuzz destination for a page shift.
pub fn fuzz_pfn_limit(page_shift: u32) -> u64 {
    FUZZ_MEMORY_BYTES >> page_shift.min(28)
}

/// What restoring one input did in each mode.
#[derive(Debug)]
pub struct FuzzOutcome {
    /// Lenient restore of a plain stream into [`RamMemory`].
    pub lenient: Result<(), RestoreError>,
    /// Strict restore of a plain stream.
    pub strict: Result<(), RestoreError>,
    /// Lenient restore of a checkpointed stream with failover.
    pub checkpointed: Result<(), RestoreError>,
}

fn restore(data: &[u8], options: RestoreOptions, shift: &Cell<u32>) -> Result<Restored<RamMemory>, RestoreError> {
    Restorer::new(options).restore(StreamReader::from_slice(data), |h| {
        let page_shift = u32::from(h.page_shift.get());
        shift.set(page_shift);
        RamMemory::new(page_shift, fuzz_pfn_limit(page_shift))
    })
}

/// Checks what must hold for any successful restore into memory of `limit` pfns.
fn check_restored(r: &Restored<RamMemory>, limit: u64) {
    let mem = r.memory.as_ref().expect("a restore has memory");
    assert!(mem.populated().last_one().is_none_or(|p| p < limit), "populated pfn beyond the limit");
    assert!(r.state.page_types.keys().next_back().is_none_or(|&p| p < limit), "page type beyond the limit");
    assert!(r.stats.pfn_range.is_none_or(|(lo, hi)| lo <= hi && hi < limit), "pfn range beyond the limit");
    assert!(r.stats.verify_mismatches <= r.stats.verified_pages);
    assert!(r.stats.bytes > 0);
}

/// Restores `data` leniently, strictly and as a checkpointed stream into a capped
/// [`RamMemory`], and verifies it (from a slice, from a reader, and skipping page bodies)
/// with the same pfn limit.
///
/// # Panics
/// When the modes disagree: lenient restore and verification with the same limit must
/// agree, a strict success implies a lenient one with the same state, a plain success
/// implies the same checkpointed result, and a slice and a reader give the same answer.
pub fn fuzz_restore(data: &[u8]) -> FuzzOutcome {
    let shift = Cell::new(12);
    let lenient_options = RestoreOptions::default();
    let lenient = restore(data, lenient_options.clone(), &shift);
    let limit = fuzz_pfn_limit(shift.get());
    if let Ok(r) = &lenient {
        check_restored(r, limit);
    }

    // Verification with the destination's limit reaches the same verdict and state.
    let same_limit = RestoreOptions { pfn_limit: limit, ..lenient_options.clone() };
    let verified = Restorer::new(same_limit.clone()).verify(StreamReader::from_slice(data));
    match (&lenient, &verified) {
        (Ok(r), Ok(v)) => assert_eq!(r.state, v.state, "restore and verify disagree on the state"),
        // Without a destination the start_info page cannot be read at END: verification
        // passes END and accepts the stream or fails further on.
        (Err(RestoreError::Incomplete { .. }), Ok(v)) if v.skipped.start_info => {}
        (Err(a @ RestoreError::Incomplete { .. }), Err(b)) if b.offset() > a.offset() => {}
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "restore and verify fail differently"),
        (a, b) => panic!("restore ok: {}, verify ok: {}", a.is_ok(), b.is_ok()),
    }
    // Skipping page bodies (seeking past them, as `xsr verify` does) changes nothing.
    let seeking = sr_format::SeekSource::new(std::io::Cursor::new(data)).expect("a cursor seeks");
    let skipping = Restorer::new(same_limit.clone()).verify(StreamReader::new(seeking).skip_page_bodies(true));
    match (&verified, &skipping) {
        (Ok(a), Ok(b)) => assert_eq!((&a.state, &a.stats), (&b.state, &b.stats), "skipping page bodies changed it"),
        // Page-table entries are checked only when their bodies are read: skipping them, the
        // stream is accepted or fails further on.
        (Err(RestoreError::PageContents { .. }), Ok(b)) if b.skipped.page_tables > 0 => {}
        (Err(a @ RestoreError::PageContents { .. }), Err(b)) if b.offset() > a.offset() => {}
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "skipping page bodies fails differently"),
        (a, b) => panic!("full read ok: {}, skipping ok: {}", a.is_ok(), b.is_ok()),
    }
    // A reader gives the same answer as a slice.
    let from_read = Restorer::new(same_limit).verify(StreamReader::from_read(data));
    match (&verified, &from_read) {
        (Ok(a), Ok(b)) => assert_eq!((&a.state, &a.stats), (&b.state, &b.stats), "slice and reader disagree"),
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "slice and reader fail differently"),
        (a, b) => panic!("slice ok: {}, reader ok: {}", a.is_ok(), b.is_ok()),
    }

    let strict_options = RestoreOptions { strictness: Strictness::Strict, ..lenient_options.clone() };
    let strict = restore(data, strict_options, &shift);
    if let Ok(s) = &strict {
        check_restored(s, limit);
        let l = lenient.as_ref().expect("strict accepted what lenient rejected");
        assert_eq!(s.state, l.state, "strict and lenient disagree on the state");
    }

    let ckpt_options = RestoreOptions { stream: StreamKind::Checkpointed, failover: true, ..lenient_options };
    let checkpointed = restore(data, ckpt_options, &shift);
    if let Ok(c) = &checkpointed {
        check_restored(c, limit);
    }
    if let Ok(l) = &lenient {
        // A plain stream has no CHECKPOINT, so the checkpointed restore reads it the same way.
        let c = checkpointed.as_ref().expect("checkpointed restore rejected a plain stream");
        assert_eq!(c.state, l.state, "plain and checkpointed restores disagree");
        assert!(!c.stats.failed_over);
    }

    FuzzOutcome { lenient: lenient.map(drop), strict: strict.map(drop), checkpointed: checkpointed.map(drop) }
}
