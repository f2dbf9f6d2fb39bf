//! How a restore behaves.

use sr_format::Strictness;

/// Whether the sender checkpoints (Remus/COLO) or sends one consistent state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum StreamKind {
    /// One state, ended by END; a CHECKPOINT record is an error.
    #[default]
    Plain,
    /// Repeated states separated by CHECKPOINT records.
    Checkpointed,
}

/// Restore options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoreOptions {
    /// Lenient (Xen's C restorer) or strict (also Xen's Python verifier's rejections).
    pub strictness: Strictness,
    /// Plain or checkpointed stream.
    pub stream: StreamKind,
    /// For a checkpointed stream that breaks: restore the last complete checkpoint instead
    /// of failing.
    pub failover: bool,
    /// Highest vcpu id accepted in PV vcpu records.
    pub max_vcpu_id: u32,
    /// Exclusive pfn bound when restoring without a destination (verification); with a
    /// destination its own bound applies.
    pub pfn_limit: u64,
    /// Most guest memory a restore into a destination populates, in bytes (pages populated
    /// times the page size), whatever span the stream declares; beyond it the restore fails
    /// with [`Bound::Populated`](crate::Bound). Default: unbounded.
    pub max_populated_bytes: u64,
    /// Largest guest-physical span accepted, in bytes: every pfn sent and an x86 PV p2m's
    /// end must lie below `max_span_bytes >> page_shift` (on top of the destination's own
    /// pfn limit, or [`pfn_limit`](Self::pfn_limit) without one); beyond it the restore
    /// fails with [`Bound::Span`](crate::Bound). A caller creating its destination from the
    /// domain header sizes its bookkeeping from this. Default (`u64::MAX`): unbounded.
    pub max_span_bytes: u64,
    /// Whether the restore of a domain type whose page types carry no rule (x86 HVM, PVH,
    /// ARM: Xen's restorer ignores them) records the types of its pfns in
    /// [`DomainState::page_types`](sr_format::state::DomainState) (the XTAB pfns of the holes
    /// a saver sends, about a million for a guest spanning 4 GiB). x86 PV always records them
    /// (its END rules and a live restore's pinning read them). Default `true`; a destination
    /// that needs no record of them (a live Xen domain) turns it off.
    pub hvm_page_types: bool,
}

impl Default for RestoreOptions {
    fn default() -> Self {
        Self {
            strictness: Strictness::Lenient,
            stream: StreamKind::Plain,
            failover: false,
            max_vcpu_id: 4095,
            // 2^40 pfns: 4 PiB of 4 KiB pages; verification tracks pfns sparsely.
            pfn_limit: 1 << 40,
            max_populated_bytes: u64::MAX,
            max_span_bytes: u64::MAX,
            hvm_page_types: true,
        }
    }
}
