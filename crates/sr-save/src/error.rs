//! The saver's single error type.

use sr_memory::MemoryError;

/// Why a save failed.
///
/// One flat enum, so a caller can tell a broken transport ([`Io`](Self::Io)) from a failing
/// guest or backend without knowing the pipeline. Whatever the variant, a failed save has
/// written no END record: the receiver sees a truncated stream and rejects it, exactly as
/// with Xen's saver.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SaveError {
    /// Writing the stream failed (disk full, peer gone, ...) after `offset` bytes had been
    /// written successfully.
    #[error("stream write failed at byte {offset}: {source}")]
    Io {
        /// Bytes of the stream written before the failure.
        offset: u64,
        /// The writer's error.
        #[source]
        source: std::io::Error,
    },

    /// Reading guest memory failed.
    #[error("reading guest memory at pfn {pfn:#x} failed: {source}")]
    Memory {
        /// The pfn concerned (the failing pfn when the backend names one, else the first
        /// data-bearing pfn of the batch).
        pfn: u64,
        /// The backend's error.
        #[source]
        source: MemoryError,
    },

    /// The guest (hypervisor binding) reported a failure, e.g. it could not be paused.
    #[error("guest: {0}")]
    Guest(String),

    /// `batch_pfns` is larger than what one PAGE_DATA record can carry (the record length
    /// limit of 128 MiB at this page size).
    #[error("batch of {batch} pfns does not fit one PAGE_DATA record (at most {max} at this page size)")]
    BatchTooLarge {
        /// The requested batch size.
        batch: usize,
        /// The largest batch that fits.
        max: usize,
    },

    /// The requested libxc stream version is not 2 or 3.
    #[error("unsupported stream version {0} (2 or 3)")]
    UnsupportedVersion(u32),

    /// The guest's state cannot be written as a valid stream (a PV guest without X86_PV_INFO
    /// or vcpu 0, an HVM guest without an HVM context, a blob of the wrong size, ...).
    #[error("invalid domain state: {0}")]
    InvalidState(String),

    /// Restore would reject the domain as it is: the state, page types, populated pfns or
    /// page contents break a rule of Xen's restorer (the `sr_rules` check the restorer
    /// runs, with the same text). Checked before anything is written and again before END.
    #[error("restore would reject this domain: {0}")]
    Rejected(sr_rules::Violation),

    /// Restore would reject one of the records the save is about to write: the hypervisor
    /// refuses what libxc loads from it ([`sr_rules::check_record`], which the restorer runs
    /// on the same bytes; offsets inside an HVM_CONTEXT are within the blob). Checked before
    /// anything is written and again before END.
    #[error("restore would reject this domain: {record}: {violation}")]
    RejectedRecord {
        /// The record.
        record: sr_format::RecordType,
        /// The rule it breaks.
        violation: sr_rules::Violation,
    },

    /// The options contradict each other or the guest (batch of 0 pfns, VERIFY on a
    /// checkpointed stream, an oversized xl config, ...).
    #[error("invalid save options: {0}")]
    InvalidOptions(String),

    /// A worker thread panicked (in guest or backend code); the message is the panic's.
    #[error("save worker panicked: {0}")]
    Worker(String),
}

impl SaveError {
    /// A memory error for `pfn`, naming the backend's own pfn when it has one.
    pub(crate) fn memory(pfn: u64, source: MemoryError) -> Self {
        let pfn = match &source {
            MemoryError::PfnOutOfRange { pfn, .. } | MemoryError::Unpopulated { pfn } => *pfn,
            MemoryError::Io { pfn, .. } => *pfn,
            _ => pfn,
        };
        SaveError::Memory { pfn, source }
    }

    /// A worker panic, with the panic message when it is a string.
    pub(crate) fn from_panic(payload: &(dyn std::any::Any + Send)) -> Self {
        let msg = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "non-string panic payload".to_owned());
        SaveError::Worker(msg)
    }
}
