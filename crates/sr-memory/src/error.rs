//! The crate's single error type.

use crate::Pfn;

/// Everything that can go wrong in a guest-memory backend.
///
/// One flat enum for all backends, so that the saver and restorer can match on the
/// cause (a bad pfn from the stream versus a failing disk) without knowing which
/// backend they run against. Every variant carries the values needed to explain it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MemoryError {
    /// The page shift is not one Xen uses (12, 14 or 16).
    #[error("unsupported page shift {shift} (expected 12, 14 or 16)")]
    PageShift {
        /// The rejected shift.
        shift: u32,
    },

    /// The pfn limit is above [`MAX_PFN_LIMIT`](crate::MAX_PFN_LIMIT), so its tracking
    /// bitmaps would not fit in memory.
    #[error("pfn limit {limit:#x} exceeds the supported maximum {max:#x}")]
    PfnLimit {
        /// The requested limit.
        limit: u64,
        /// The largest accepted limit.
        max: u64,
    },

    /// A pfn is at or above the backend's exclusive limit.
    #[error("pfn {pfn:#x} out of range (limit {limit:#x})")]
    PfnOutOfRange {
        /// The offending pfn.
        pfn: Pfn,
        /// The exclusive limit.
        limit: u64,
    },

    /// A data buffer is not exactly `pfns.len() * page_size` bytes long.
    #[error("page buffer is {found} bytes, expected {expected}")]
    LengthMismatch {
        /// The required length (saturated at `usize::MAX`).
        expected: usize,
        /// The length supplied.
        found: usize,
    },

    /// The backend cannot populate this pfn, e.g. it falls in a hole of a fixed
    /// memory map.
    #[error("pfn {pfn:#x} cannot be populated by this backend")]
    Unpopulated {
        /// The offending pfn.
        pfn: Pfn,
    },

    /// Allocating backing memory failed.
    #[error("failed to allocate {bytes} bytes of guest memory")]
    Alloc {
        /// The size of the failed allocation.
        bytes: usize,
    },

    /// A page-level I/O operation (pread/pwrite) failed.
    #[error("{op} at pfn {pfn:#x} failed: {source}")]
    Io {
        /// The operation, e.g. `"pwrite"`.
        op: &'static str,
        /// The first pfn of the failing run.
        pfn: Pfn,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A whole-image I/O operation (open, create, set_len, sync, seek) failed.
    #[error("{op} of memory image failed: {source}")]
    Image {
        /// The operation, e.g. `"set_len"`.
        op: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// An adapter's underlying library reported an error.
    #[error("memory backend error: {0}")]
    Backend(String),
}
