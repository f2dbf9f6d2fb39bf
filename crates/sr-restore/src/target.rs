//! Where a restore goes: [`RestoreTarget`], the engine's one destination interface.
//!
//! A plain [`GuestMemory`] (RAM, a raw image file, `vm-memory`) is a target through the blanket
//! implementation below: populate, then write the page bodies. A richer destination, such as a
//! live hypervisor domain that must rewrite page tables and apply CPU state at fixed moments of
//! the stream (Xen's own restorer, `tools/libs/guest/xg_sr_restore.c`), implements the trait
//! itself and overrides the moments it needs:
//!
//! | moment | when the engine calls it |
//! |---|---|
//! | (creation) | the `open` closure, once the domain header says the type and page size |
//! | [`static_data_end`](RestoreTarget::static_data_end) | at STATIC_DATA_END, or where a v2 stream infers it (first memory record) |
//! | [`apply_pages`](RestoreTarget::apply_pages) | each PAGE_DATA record, after its pfns and page tables passed every rule |
//! | [`state_record`](RestoreTarget::state_record) | each other record the domain handler accepted (vcpu, shared info, TSC, HVM params, ...) |
//! | [`end`](RestoreTarget::end) | END (or the last complete checkpoint on failover), after the END rules passed |
//!
//! The engine calls a target only with what passed every rule up to that point: a record that
//! breaks a rule reaches the target in no form, and END reaches it only when
//! [`sr_rules::check_end`] holds. Records of a checkpoint are handed over when the checkpoint is
//! complete, in stream order.

use sr_format::state::DomainState;
use sr_format::{PageType, Record};
use sr_memory::{GuestMemory, MemoryError};

/// What a target's moment may fail with: any error of the destination (a hypervisor call, an
/// I/O error), reported by the engine as [`RestoreError::Target`](crate::RestoreError::Target)
/// with the record it was applying.
pub type TargetError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// One PAGE_DATA record as the engine applies it, after every rule held.
#[derive(Clone, Copy, Debug)]
pub struct PageBatch<'a> {
    /// Index of the record in the libxc stream.
    pub index: u64,
    /// Absolute byte offset of the record.
    pub offset: u64,
    /// The pfns this record populates for the first time (a populating type: NOTAB, the
    /// page-table types and XALLOC; never XTAB or BROKEN), in record order, each once.
    pub populate: &'a [u64],
    /// The pfns with a page body (NOTAB and the page-table types), in record order.
    pub pfns: &'a [u64],
    /// The stream's page type of each of [`pfns`](Self::pfns).
    pub types: &'a [PageType],
    /// The page bodies: `pfns.len()` pages, one after the other.
    pub data: &'a [u8],
}

/// The destination of a restore (see the module documentation for when each method runs).
///
/// Every [`GuestMemory`] is a `RestoreTarget` (populate, then write; no moments). The methods
/// that read back ([`is_populated`](Self::is_populated), [`read_pages`](Self::read_pages)) serve
/// the END rules that look at page contents (the x86 PV start_info page) and the VERIFY
/// comparison.
pub trait RestoreTarget {
    /// The page shift; it must equal the stream's.
    fn page_shift(&self) -> u32;

    /// The exclusive pfn bound: PAGE_DATA pfns at or beyond it are a bound reached.
    fn pfn_limit(&self) -> u64;

    /// Whether `pfn` is populated in the destination.
    fn is_populated(&self, pfn: u64) -> bool;

    /// Copies one page per pfn into `out` (`pfns.len()` pages); unpopulated pages read as zeros.
    fn read_pages(&self, pfns: &[u64], out: &mut [u8]) -> Result<(), MemoryError>;

    /// Applies one PAGE_DATA record: populates [`PageBatch::populate`], then writes the page
    /// bodies. Called before any record that follows.
    fn apply_pages(&mut self, batch: &PageBatch<'_>) -> Result<(), MemoryError>;

    /// In VERIFY mode (after a VERIFY record): populates [`PageBatch::populate`] and compares the
    /// page bodies with the destination instead of writing them, calling `mismatch` with each
    /// pfn whose page differs, in record order. The provided implementation reads the pages
    /// back with [`read_pages`](Self::read_pages); a destination that transforms pages on the
    /// way in (Xen's page-table localisation) compares what it would have written.
    fn compare_pages(&mut self, batch: &PageBatch<'_>, mismatch: &mut dyn FnMut(u64)) -> Result<(), MemoryError> {
        if !batch.populate.is_empty() {
            self.apply_pages(&PageBatch { pfns: &[], types: &[], data: &[], ..*batch })?;
        }
        let size = 1usize << self.page_shift();
        let mut scratch = vec![0; batch.data.len()];
        self.read_pages(batch.pfns, &mut scratch)?;
        for ((pfn, want), got) in batch.pfns.iter().zip(batch.data.chunks_exact(size)).zip(scratch.chunks_exact(size)) {
            if want != got {
                mismatch(*pfn);
            }
        }
        Ok(())
    }

    /// The static data is complete (STATIC_DATA_END, explicit or inferred): `state` holds the
    /// CPU policy (`cpuid`, `msrs`; empty when the stream had none) and, for x86 PV, the guest
    /// width and levels. Called before any memory record is applied.
    fn static_data_end(&mut self, state: &DomainState) -> Result<(), TargetError> {
        let _ = state;
        Ok(())
    }

    /// A record other than PAGE_DATA, VERIFY, CHECKPOINT, STATIC_DATA_END and END passed its
    /// handler's rules: `rec` is the record (its body is validated), `state` the domain state
    /// with it applied.
    fn state_record(&mut self, rec: &Record<'_>, state: &DomainState) -> Result<(), TargetError> {
        let _ = (rec, state);
        Ok(())
    }

    /// The stream is complete and its END rules hold: `state` is the final domain state (the
    /// same value the restore returns).
    fn end(&mut self, state: &DomainState) -> Result<(), TargetError> {
        let _ = state;
        Ok(())
    }
}

/// Every guest memory is a target: populate, then write.
impl<M: GuestMemory> RestoreTarget for M {
    fn page_shift(&self) -> u32 {
        GuestMemory::page_shift(self)
    }

    fn pfn_limit(&self) -> u64 {
        GuestMemory::pfn_limit(self)
    }

    fn is_populated(&self, pfn: u64) -> bool {
        GuestMemory::is_populated(self, pfn)
    }

    fn read_pages(&self, pfns: &[u64], out: &mut [u8]) -> Result<(), MemoryError> {
        GuestMemory::read_pages(self, pfns, out)
    }

    fn apply_pages(&mut self, batch: &PageBatch<'_>) -> Result<(), MemoryError> {
        if !batch.populate.is_empty() {
            self.populate(batch.populate)?;
        }
        if !batch.pfns.is_empty() {
            self.write_pages(batch.pfns, batch.data)?;
        }
        Ok(())
    }
}
