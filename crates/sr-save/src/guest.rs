//! What the saver needs from a guest.

use sr_format::state::DomainState;
use sr_format::{DomainType, PageType};
use sr_memory::GuestMemory;

use crate::error::SaveError;

/// What the saver needs from a guest: its memory, page types, and the non-memory state,
/// plus pause/resume. A real hypervisor binding implements this later; tests and the CLI
/// implement it over in-process memory or an image directory.
///
/// `Sync` because worker threads call [`page_types`](Self::page_types) and read
/// [`memory`](Self::memory) in parallel while the coordinating thread pauses and resumes.
pub trait Guest: Sync {
    /// The guest's memory.
    fn memory(&self) -> &dyn GuestMemory;

    /// The domain type (the domain header's type, unless a PVH guest is written as HVM).
    fn domain_type(&self) -> DomainType;

    /// Current type of each pfn (NOTAB for ordinary pages, L1TAB.. for PV page tables,
    /// XTAB/BROKEN for holes). `out` has the length of `pfns`. Called from worker threads
    /// for every batch of every pass, so types may change while the guest runs. An error
    /// (e.g. the hypervisor's type query failed) fails the save.
    fn page_types(&self, pfns: &[u64], out: &mut [PageType]) -> Result<(), SaveError>;

    /// Whether [`normalise_pages`](Self::normalise_pages) rewrites page bodies. Default:
    /// `false`. On the zero-copy path, the pages whose type [`rewrites`](Self::rewrites)
    /// names are copied and rewritten by the workers and the rest is lent; otherwise every
    /// page is copied, then rewritten.
    fn normalises_pages(&self) -> bool {
        false
    }

    /// Which page types [`normalise_pages`](Self::normalise_pages) rewrites (x86 PV: page
    /// tables). Only asked if [`normalises_pages`](Self::normalises_pages). Default: all.
    fn rewrites(&self, page_type: PageType) -> bool {
        let _ = page_type;
        true
    }

    /// Rewrites page bodies between the read and the write, in place: x86 PV page tables
    /// hold machine frame numbers, which Xen's saver turns into pfns
    /// (`normalise_pagetable` in `tools/libs/guest/xg_sr_save_x86_pv.c`). `pfns` are
    /// data-bearing pfns of one batch in order (at least those whose type
    /// [`rewrites`](Self::rewrites) names), `types` their types, `data` their bodies
    /// (`pfns.len()` pages). Called from worker threads, only if
    /// [`normalises_pages`](Self::normalises_pages). An error fails the save. Default: no change.
    fn normalise_pages(&self, pfns: &[u64], types: &[PageType], data: &mut [u8]) -> Result<(), SaveError> {
        let _ = (pfns, types, data);
        Ok(())
    }

    /// Pfns that must be sent although not populated (XTAB/BROKEN holes, XALLOC), in any
    /// order; sent in the first pass only. Default: none.
    fn extra_pfns(&self) -> Vec<u64> {
        Vec::new()
    }

    /// Whether the state [`state`](Self::state) returns before [`pause`](Self::pause) already
    /// satisfies the restorer's END rules. An image does; a running Xen PV domain does not
    /// (vcpu 0 holds its start_info frame only once the guest has suspended), so for it the
    /// rulebook runs on the state taken after the pause, before END. Default: `true`.
    fn state_checkable_before_pause(&self) -> bool {
        true
    }

    /// Stop the guest changing memory and state (before the final pass). When this returns,
    /// no write to guest memory may be in flight.
    fn pause(&self) -> Result<(), SaveError>;

    /// Let it run again (between checkpoints); default Ok.
    fn resume(&self) -> Result<(), SaveError> {
        Ok(())
    }

    /// The non-memory state now (called at the start for the static data, and after every
    /// pause for the end-of-state records). Its `page_types`, `stream_version` and Xen
    /// version fields are not used: page types come from [`page_types`](Self::page_types),
    /// versions from the options.
    fn state(&self) -> Result<DomainState, SaveError>;
}
