//! The restore error: a stream that breaks a rule, or a backend that failed.

use sr_format::RecordType;
use sr_memory::MemoryError;

/// Why a restore (or a verification) failed.
///
/// Every variant carries the absolute byte offset of the offending item; record-level ones
/// also carry the record's index and type, and `rule` names the rule of Xen's restorer (or of
/// this crate's hardening) that was broken.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RestoreError {
    /// The stream is malformed at the wire level (framing, headers, record shape).
    #[error(transparent)]
    Format(#[from] sr_format::Error),
    /// A well-formed record breaks a restore rule.
    #[error("record {index} ({record}) at byte {offset}: {rule}")]
    Rejected {
        /// Offset of the record header.
        offset: u64,
        /// Record index in the libxc stream.
        index: u64,
        /// Record type.
        record: RecordType,
        /// The rule broken.
        rule: String,
    },
    /// A libxl record breaks a restore rule.
    #[error("libxl record {index} ({record}) at byte {offset}: {rule}")]
    RejectedLibxl {
        /// Offset of the record header.
        offset: u64,
        /// Record index among libxl records.
        index: u64,
        /// Record type name.
        record: &'static str,
        /// The rule broken.
        rule: String,
    },
    /// A PAGE_DATA pfn outside what the domain or the destination can hold.
    #[error(
        "record {index} (PAGE_DATA) at byte {offset}: entry {entry} pfn {pfn:#x} is beyond the domain's pfn limit {limit:#x}"
    )]
    PfnOutOfRange {
        /// Offset of the record header.
        offset: u64,
        /// Record index.
        index: u64,
        /// Entry within the record.
        entry: usize,
        /// The pfn.
        pfn: u64,
        /// The limit (exclusive).
        limit: u64,
    },
    /// A page body breaks a rule of Xen's restorer (an x86 PV page-table entry naming a pfn
    /// beyond the p2m, `x86_pv_localise_page`).
    #[error("record {index} (PAGE_DATA) at byte {offset}: entry {entry}: {violation}")]
    PageContents {
        /// Offset of the record header.
        offset: u64,
        /// Record index.
        index: u64,
        /// Entry within the record.
        entry: usize,
        /// The rule broken, with the page's pfn and the table entry.
        violation: sr_rules::Violation,
    },
    /// The stream needs more of the destination than its bounds allow: more populated
    /// memory than [`RestoreOptions::max_populated_bytes`](crate::RestoreOptions), or pfns
    /// beyond the destination's pfn limit. Not a rule of the format: a larger destination
    /// restores the stream.
    #[error("record {index} ({record}) at byte {offset}: {}", bound_text(*bound, *needed, *limit, *page_shift))]
    BoundReached {
        /// Offset of the record header.
        offset: u64,
        /// Record index.
        index: u64,
        /// Record type.
        record: RecordType,
        /// Which bound.
        bound: Bound,
        /// The bound, in pages (populated) or pfns (span).
        limit: u64,
        /// What the stream needs so far, in the same unit.
        needed: u64,
        /// The stream's page shift (to turn pages into bytes).
        page_shift: u16,
    },
    /// The stream ended (END) without something the domain type requires.
    #[error("END at byte {offset}: {what}")]
    Incomplete {
        /// Offset of the END record.
        offset: u64,
        /// What is missing or inconsistent.
        what: String,
    },
    /// The destination memory failed.
    #[error("record {index} at byte {offset}: guest memory: {source}")]
    Memory {
        /// Offset of the record header.
        offset: u64,
        /// Record index.
        index: u64,
        /// The backend error.
        #[source]
        source: MemoryError,
    },
    /// The destination ([`RestoreTarget`](crate::RestoreTarget)) failed to apply a record that
    /// passed every rule: a hypervisor call, an I/O error. `record` is the record being applied
    /// (END for the final state; on failover at a stream break `index` is `None`).
    #[error("{}: the destination failed: {source}", target_place(*offset, *index, *record))]
    Target {
        /// Offset of the record header (or of the break, on failover).
        offset: u64,
        /// Record index; `None` on failover at a stream break.
        index: Option<u64>,
        /// The record being applied.
        record: RecordType,
        /// What failed.
        #[source]
        source: crate::TargetError,
    },
    /// A checkpointed stream broke before any checkpoint completed.
    #[error("stream broke before the first checkpoint completed: {source}")]
    NoConsistentCheckpoint {
        /// Why it broke.
        #[source]
        source: Box<RestoreError>,
    },
    /// A checkpointed stream broke after `checkpoints` complete checkpoints, and failing over
    /// to the last of them was not asked for ([`RestoreOptions::failover`](crate::RestoreOptions)).
    #[error("stream broke after checkpoint {checkpoints}; failover restores it: {source}")]
    BrokeAfterCheckpoint {
        /// Checkpoints completed before the break.
        checkpoints: u64,
        /// Why it broke.
        #[source]
        source: Box<RestoreError>,
    },
}

impl RestoreError {
    /// The absolute byte offset the error refers to.
    pub fn offset(&self) -> u64 {
        match self {
            RestoreError::Format(e) => e.offset(),
            RestoreError::Rejected { offset, .. }
            | RestoreError::RejectedLibxl { offset, .. }
            | RestoreError::PfnOutOfRange { offset, .. }
            | RestoreError::PageContents { offset, .. }
            | RestoreError::BoundReached { offset, .. }
            | RestoreError::Incomplete { offset, .. }
            | RestoreError::Memory { offset, .. }
            | RestoreError::Target { offset, .. } => *offset,
            RestoreError::NoConsistentCheckpoint { source } | RestoreError::BrokeAfterCheckpoint { source, .. } => {
                source.offset()
            }
        }
    }

    /// Whether the stream ended early or the transport failed (as opposed to a rule broken),
    /// which is when a checkpointed restore may fail over.
    pub fn is_broken_channel(&self) -> bool {
        matches!(self, RestoreError::Format(sr_format::Error::Truncated { .. } | sr_format::Error::Io { .. }))
    }
}

fn target_place(offset: u64, index: Option<u64>, record: RecordType) -> String {
    match index {
        Some(index) if record == RecordType::END => format!("END (record {index}) at byte {offset}"),
        Some(index) => format!("record {index} ({record}) at byte {offset}"),
        None => format!("last complete checkpoint (stream broke at byte {offset})"),
    }
}

/// A bound of the destination (see [`RestoreError::BoundReached`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Bound {
    /// The memory the guest populates, in pages.
    Populated,
    /// The span of guest-physical addresses, in pfns (the pfn limit).
    Span,
}

fn bound_text(bound: Bound, needed: u64, limit: u64, page_shift: u16) -> String {
    let bytes = |pages: u64| size_text(pages.saturating_mul(1 << page_shift.min(32)));
    match bound {
        Bound::Populated => format!(
            "the guest populates {needed} pages ({}), more than the destination's bound of {limit} pages ({})",
            bytes(needed),
            bytes(limit)
        ),
        Bound::Span => format!(
            "pfn {:#x} is beyond the destination's pfn limit {limit:#x} (guest-physical span {}, bound {})",
            needed.saturating_sub(1),
            bytes(needed),
            bytes(limit)
        ),
    }
}

/// `bytes` exactly, in the largest binary unit that divides it (`16 MiB`, `60 KiB`, `100
/// bytes`): a bound is given as a size (`--max-memory 16M`), and is said back as one.
fn size_text(bytes: u64) -> String {
    for (shift, unit) in [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")] {
        if bytes != 0 && bytes.trailing_zeros() >= shift {
            return format!("{} {unit}", bytes >> shift);
        }
    }
    format!("{bytes} bytes")
}
