//! Errors of index building, reads and address translation.

/// Why an index could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IndexError {
    /// The stream's framing or a PAGE_DATA body is malformed (the error carries the offset).
    #[error(transparent)]
    Format(#[from] sr_format::Error),
    /// The stream ended early.
    #[error("byte {offset}: incomplete stream: {what}")]
    Incomplete {
        /// Where the stream ended.
        offset: u64,
        /// What is missing.
        what: &'static str,
    },
    /// More populated pages than [`IndexLimits::max_pages`](crate::IndexLimits::max_pages).
    #[error("byte {offset}: more than {limit} populated pages")]
    TooManyPages {
        /// The PAGE_DATA record that went over.
        offset: u64,
        /// The limit.
        limit: u64,
    },
    /// More state-record bytes than [`IndexLimits::max_state_bytes`](crate::IndexLimits::max_state_bytes).
    #[error("byte {offset}: more than {limit} bytes of state records")]
    TooMuchState {
        /// The record that went over.
        offset: u64,
        /// The limit.
        limit: u64,
    },
    /// A pfn at or above the limit.
    #[error("byte {offset}: PAGE_DATA entry {entry}: pfn {pfn:#x} is not below the limit {limit:#x}")]
    PfnOutOfRange {
        /// The PAGE_DATA record.
        offset: u64,
        /// The entry in its pfn array.
        entry: u32,
        /// The pfn.
        pfn: u64,
        /// The limit.
        limit: u64,
    },
    /// A page body beyond the 2^60-byte offsets the index stores.
    #[error("byte {offset}: page body offset beyond 2^60")]
    OffsetTooLarge {
        /// The PAGE_DATA record.
        offset: u64,
    },
}

impl IndexError {
    /// The byte of the stream this error names (a record, or where the stream ended).
    pub fn offset(&self) -> u64 {
        match self {
            IndexError::Format(e) => e.offset(),
            IndexError::Incomplete { offset, .. }
            | IndexError::TooManyPages { offset, .. }
            | IndexError::TooMuchState { offset, .. }
            | IndexError::PfnOutOfRange { offset, .. }
            | IndexError::OffsetTooLarge { offset } => *offset,
        }
    }
}

/// Why guest memory could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The address is in a page the image does not populate.
    #[error("guest-physical address {addr:#x} is not populated (pfn {pfn:#x})")]
    Hole {
        /// The first address of the hole that was read.
        addr: u64,
        /// Its pfn.
        pfn: u64,
    },
    /// The range does not fit the 64-bit address space.
    #[error("range {addr:#x} + {len} overflows the address space")]
    Overflow {
        /// Start.
        addr: u64,
        /// Length.
        len: u64,
    },
    /// The backing file could not be read.
    #[error("reading {len} bytes at file offset {offset}: {source}")]
    Io {
        /// File offset.
        offset: u64,
        /// Bytes wanted.
        len: usize,
        /// The error.
        source: std::io::Error,
    },
}
