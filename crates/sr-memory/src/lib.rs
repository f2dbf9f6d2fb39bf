//! Pluggable guest-memory backends for the Xen save/restore stream.
//!
//! The saver reads guest pages to put them in a stream; the restorer writes pages it
//! takes out of one. Both talk to guest memory only through the batch-oriented
//! [`GuestMemory`] trait defined here, so the same pipeline can run against:
//!
//! * [`RamMemory`]: sparse in-process RAM, for tests, benchmarks and synthetic guests;
//! * [`FileMemory`]: a sparse raw image file (pfn `p` at byte `p << page_shift`), for
//!   offline extraction of a save file and for saving from an image;
//! * `VmMemory` (module `vm`, feature `vm-memory`, on by default): an adapter over rust-vmm
//!   `vm-memory` guest memory, as used by VMMs.
//!
//! # Design
//!
//! * **Batches.** Every call takes a slice of pfns (one PAGE_DATA record's worth), so
//!   backends can amortise locking and coalesce I/O over runs of consecutive pfns.
//! * **`&self` everywhere.** Backends use interior mutability so that a saver's worker
//!   threads can read while another thread (a simulated running guest) writes, as in
//!   live migration.
//! * **No borrowed guest memory.** A running guest may change its memory at any time,
//!   so pages are never handed out as `&[u8]`; reads copy into a buffer the caller owns,
//!   which also gives the stream a consistent image of each page. The one exception is
//!   [`GuestMemory::lend_pages`], which lends pages to a callback *under the backend's
//!   locks*, so a saver can write them to its output without a second copy.
//! * **Populated and dirty tracking** use [`AtomicPfnBitmap`]s; [`GuestMemory::take_dirty`]
//!   is the pre-copy dirty log.
//! * **Validation before effect.** Every pfn and the buffer length are checked before a
//!   backend touches memory, so a bad batch from an untrusted stream is an error with
//!   no partial effect, never a panic.
//!
//! This crate contains no `unsafe` code.
//!
//! # Example
//!
//! ```
//! use sr_memory::{GuestMemory, RamMemory};
//!
//! let mem = RamMemory::new(12, 1024)?;
//! let page = vec![0xab; mem.page_size()];
//! mem.write_pages(&[7], &page)?;
//!
//! let mut out = vec![0; 2 * mem.page_size()];
//! mem.read_pages(&[7, 8], &mut out)?;
//! assert_eq!(&out[..4096], &page[..]);
//! assert!(out[4096..].iter().all(|&b| b == 0)); // pfn 8 was never written
//! assert_eq!(mem.take_dirty().iter_ones().collect::<Vec<_>>(), [7]);
//! # Ok::<(), sr_memory::MemoryError>(())
//! ```

#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod bitmap;
mod error;
pub mod file;
pub mod ram;
#[cfg(feature = "vm-memory")]
pub mod vm;

use std::sync::Arc;

pub use bitmap::{AtomicPfnBitmap, PfnBitmap};
pub use error::MemoryError;
pub use file::FileMemory;
pub use ram::RamMemory;
#[cfg(feature = "vm-memory")]
pub use vm::VmMemory;

/// A guest page frame number: the guest-physical address shifted right by the page shift.
pub type Pfn = u64;

/// The largest pfn limit a backend accepts (2^36 pfns, 256 TiB at 4 KiB pages).
///
/// Backends keep two bitmaps of `pfn_limit` bits; the cap keeps a corrupt or hostile
/// size from turning into an enormous allocation.
pub const MAX_PFN_LIMIT: u64 = 1 << 36;

/// Batch-oriented guest memory.
///
/// All methods take `&self`: implementations use interior mutability so that a saver's
/// worker threads can read while a (simulated) running guest writes, as in live
/// migration. Guest memory is never handed out as `&[u8]`: reads copy out (the one exception,
/// [`lend_pages`](Self::lend_pages), lends pages to a callback while holding the locks).
///
/// Batch methods validate every pfn and the buffer length before they have any effect,
/// so an `Err` from a bad batch leaves the memory unchanged.
pub trait GuestMemory: Send + Sync {
    /// The page shift: 12, 14 or 16.
    fn page_shift(&self) -> u32;

    /// The page size in bytes, `1 << page_shift()`.
    fn page_size(&self) -> usize {
        1 << self.page_shift()
    }

    /// The exclusive pfn bound: valid pfns are `0..pfn_limit()`.
    fn pfn_limit(&self) -> u64;

    /// Allocates zeroed backing for `pfns`.
    ///
    /// Idempotent: populating a populated page leaves its contents alone. All pfns are
    /// bounds-checked first, so a bad pfn has no partial effect. A backend with a fixed
    /// memory map fails with [`MemoryError::Unpopulated`] for pfns it cannot back.
    fn populate(&self, pfns: &[Pfn]) -> Result<(), MemoryError>;

    /// Whether `pfn` has backing. Out-of-range pfns are never populated.
    fn is_populated(&self, pfn: Pfn) -> bool;

    /// A snapshot of the populated pfns.
    fn populated(&self) -> PfnBitmap;

    /// Writes one page per pfn from `data`, which must be `pfns.len() * page_size()` bytes.
    ///
    /// Populates pages as needed and marks them dirty. Pages are written in order, so
    /// for a repeated pfn the last write wins. All pfns are bounds-checked before
    /// anything is written.
    fn write_pages(&self, pfns: &[Pfn], data: &[u8]) -> Result<(), MemoryError>;

    /// Copies one page per pfn into `out`, which must be `pfns.len() * page_size()` bytes.
    ///
    /// Unpopulated pages read as zeros.
    fn read_pages(&self, pfns: &[Pfn], out: &mut [u8]) -> Result<(), MemoryError>;

    /// Returns the pages written since the last call and clears the log.
    ///
    /// The first call after creation returns every page written since creation.
    fn take_dirty(&self) -> PfnBitmap;

    /// Calls `f` with the pages' bytes borrowed under the backend's locks, so that a writer
    /// can send them without an intermediate copy; `None` if this backend cannot lend.
    ///
    /// The slices passed to `f` hold the pages of `pfns` in order, `pfns.len() * page_size()`
    /// bytes in all; runs of consecutive pfns may be one slice. Unpopulated pages read as
    /// zeros, as with [`read_pages`](Self::read_pages). The pfns are checked exactly like
    /// `read_pages` checks them, before `f` is called: a bad pfn is an `InvalidInput`
    /// [`std::io::Error`] wrapping the [`MemoryError`] (recover it with
    /// [`std::io::Error::into_inner`] and a downcast), and `f` is not called. Otherwise the
    /// result is whatever `f` returned.
    ///
    /// This is the one exception to "no borrowed guest memory": the pages cannot change
    /// while `f` runs (writers of the pages involved wait), so each page is a consistent
    /// image, and writes made after the lend are caught by the dirty log like any others.
    /// Keep `f` short: it blocks the guest's writes to those pages.
    ///
    /// The provided implementation cannot lend and returns `None` without calling `f`.
    /// Probe a backend with an empty `pfns`: a backend that lends now calls `f(&[])` and
    /// returns `Some`. A backend may lend at some times only (sr-xen lends a domain's frames
    /// while it is suspended), so callers probe before each pass and copy when a lend is
    /// declined.
    fn lend_pages(
        &self,
        pfns: &[Pfn],
        f: &mut dyn FnMut(&[&[u8]]) -> std::io::Result<()>,
    ) -> Option<std::io::Result<()>> {
        let _ = (pfns, f);
        None
    }
}

macro_rules! forward_guest_memory {
    ($($ty:ty),*) => {$(
        /// Forwards to the pointee, so that backends can be shared by reference or pointer.
        impl<T: GuestMemory + ?Sized> GuestMemory for $ty {
            fn page_shift(&self) -> u32 {
                (**self).page_shift()
            }
            fn page_size(&self) -> usize {
                (**self).page_size()
            }
            fn pfn_limit(&self) -> u64 {
                (**self).pfn_limit()
            }
            fn populate(&self, pfns: &[Pfn]) -> Result<(), MemoryError> {
                (**self).populate(pfns)
            }
            fn is_populated(&self, pfn: Pfn) -> bool {
                (**self).is_populated(pfn)
            }
            fn populated(&self) -> PfnBitmap {
                (**self).populated()
            }
            fn write_pages(&self, pfns: &[Pfn], data: &[u8]) -> Result<(), MemoryError> {
                (**self).write_pages(pfns, data)
            }
            fn read_pages(&self, pfns: &[Pfn], out: &mut [u8]) -> Result<(), MemoryError> {
                (**self).read_pages(pfns, out)
            }
            fn take_dirty(&self) -> PfnBitmap {
                (**self).take_dirty()
            }
            fn lend_pages(
                &self,
                pfns: &[Pfn],
                f: &mut dyn FnMut(&[&[u8]]) -> std::io::Result<()>,
            ) -> Option<std::io::Result<()>> {
                (**self).lend_pages(pfns, f)
            }
        }
    )*};
}

forward_guest_memory!(&T, Arc<T>, Box<T>);

/// Checks that `shift` is a page shift Xen uses (12, 14 or 16).
pub fn check_page_shift(shift: u32) -> Result<(), MemoryError> {
    match shift {
        12 | 14 | 16 => Ok(()),
        _ => Err(MemoryError::PageShift { shift }),
    }
}

/// Checks a backend's geometry: a supported page shift and a pfn limit of at most
/// [`MAX_PFN_LIMIT`].
///
/// With both checks passed, `pfn_limit << page_shift` fits comfortably in a `u64` and
/// in a file offset, so backends can compute byte offsets without overflow.
pub fn check_geometry(page_shift: u32, pfn_limit: u64) -> Result<(), MemoryError> {
    check_page_shift(page_shift)?;
    if pfn_limit > MAX_PFN_LIMIT {
        return Err(MemoryError::PfnLimit { limit: pfn_limit, max: MAX_PFN_LIMIT });
    }
    Ok(())
}

/// Validates a batch before any effect: `buf_len` must be `pfns.len() << page_shift`
/// and every pfn must be below `pfn_limit`.
///
/// Public so that other [`GuestMemory`] implementations apply exactly the same rules.
pub fn check_batch(pfns: &[Pfn], buf_len: usize, page_shift: u32, pfn_limit: u64) -> Result<(), MemoryError> {
    let expected = pfns.len().checked_shl(page_shift).filter(|&n| n >> page_shift == pfns.len()).unwrap_or(usize::MAX);
    if buf_len != expected {
        return Err(MemoryError::LengthMismatch { expected, found: buf_len });
    }
    check_pfns(pfns, pfn_limit)
}

/// Checks that every pfn is below `pfn_limit`, reporting the first one that is not.
pub fn check_pfns(pfns: &[Pfn], pfn_limit: u64) -> Result<(), MemoryError> {
    match pfns.iter().find(|&&pfn| pfn >= pfn_limit) {
        Some(&pfn) => Err(MemoryError::PfnOutOfRange { pfn, limit: pfn_limit }),
        None => Ok(()),
    }
}

/// Splits `pfns` into maximal runs of consecutive pfns (`p, p+1, p+2, ...`), yielding
/// `(index of the run's first pfn, run length)`.
///
/// Backends use this to turn a batch into few large copies or I/O calls.
pub(crate) fn consecutive_runs(pfns: &[Pfn]) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut start = 0;
    std::iter::from_fn(move || {
        let rest = pfns.get(start..).filter(|rest| !rest.is_empty())?;
        let len = 1 + rest.iter().zip(rest.iter().skip(1)).take_while(|&(&a, &b)| a.checked_add(1) == Some(b)).count();
        let run = (start, len);
        start += len;
        Some(run)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_split_on_gaps_and_repeats() {
        let pfns = [1, 2, 3, 7, 7, 8, 0, u64::MAX];
        let runs: Vec<_> = consecutive_runs(&pfns).collect();
        assert_eq!(runs, [(0, 3), (3, 1), (4, 2), (6, 1), (7, 1)]);
        assert_eq!(consecutive_runs(&[]).count(), 0);
    }

    #[test]
    fn batch_checks() {
        assert!(check_batch(&[0, 1], 8192, 12, 2).is_ok());
        assert!(matches!(
            check_batch(&[0, 1], 8191, 12, 2),
            Err(MemoryError::LengthMismatch { expected: 8192, found: 8191 })
        ));
        assert!(matches!(check_batch(&[0, 2], 8192, 12, 2), Err(MemoryError::PfnOutOfRange { pfn: 2, limit: 2 })));
        assert!(matches!(check_page_shift(13), Err(MemoryError::PageShift { shift: 13 })));
        assert!(matches!(check_geometry(12, MAX_PFN_LIMIT + 1), Err(MemoryError::PfnLimit { .. })));
    }
}

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
