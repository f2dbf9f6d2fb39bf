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
    /// for every batch of every pass, so types may change while the guest runs.
    fn page_types(&self, pfns: &[u64], out: &mut [PageType]);

    /// Pfns that must be sent although not populated (XTAB/BROKEN holes, XALLOC), in any
    /// order; sent in the first pass only. Default: none.
    fn extra_pfns(&self) -> Vec<u64> {
        Vec::new()
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
