//! Applying PAGE_DATA to guest memory: bounds first, then populate, types, and one batched
//! write (or compare, after VERIFY) of all the record's page bodies.

use crate::error::{Bound, RestoreError};
use crate::report::{MAX_MISMATCH_PFNS, Stats};
use crate::skipped::SkippedChecks;
use crate::sparse::SparsePfnSet;
use crate::target::{PageBatch, RestoreTarget};
use sr_format::body::PageData;
use sr_format::state::DomainState;
use sr_format::{PFN_MASK, PageType, Record};

/// The bounds one PAGE_DATA record is applied under.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bounds {
    /// Exclusive pfn bound of the domain type (x86 PV: max_pfn + 1).
    pub domain: u64,
    /// Exclusive pfn bound of the destination.
    pub destination: u64,
    /// Most pages the destination populates.
    pub populated_pages: u64,
    /// x86 PV: the last pfn page-table entries may name.
    pub pt_max_pfn: Option<u64>,
    /// Record each entry's type in the state's page-type map.
    pub page_types: bool,
}

/// Per-restore PAGE_DATA state; its vectors are reused from record to record.
#[derive(Debug, Default)]
pub(crate) struct PageApplier {
    pub populated: SparsePfnSet,
    to_populate: Vec<u64>,
    data_pfns: Vec<u64>,
    data_types: Vec<PageType>,
    pub type_counts: [u64; 16],
    /// Keep `populated` even without a destination (the domain's END checks use it).
    pub track_populated: bool,
    /// Page-contents checks not made.
    pub skipped: SkippedChecks,
    /// pfns populated so far in the destination.
    populated_count: u64,
}

impl PageApplier {
    /// An applier; `track_populated` keeps the populated set even without a destination.
    pub fn new(track_populated: bool) -> Self {
        Self { track_populated, ..Self::default() }
    }

    /// Applies one validated PAGE_DATA record. Nothing is written unless every pfn is below
    /// both pfn bounds, the populated pages stay within their bound, and, when
    /// `bounds.pt_max_pfn` is given (x86 PV), every page-table page passes
    /// [`sr_rules::pv::check_page_table`]. `compare` selects verify mode: pages are compared,
    /// not written (page tables are still checked, as Xen localises them in both modes).
    #[allow(clippy::too_many_arguments)]
    pub fn apply(
        &mut self,
        rec: &Record<'_>,
        pages: &PageData<'_>,
        bounds: &Bounds,
        memory: Option<&mut dyn RestoreTarget>,
        compare: bool,
        state: &mut DomainState,
        stats: &mut Stats,
    ) -> Result<(), RestoreError> {
        self.to_populate.clear();
        self.data_pfns.clear();
        self.data_types.clear();
        // Bounds first, in one branch-free pass (which also counts the types), so a record with
        // a bad pfn changes nothing.
        let (mut lo, mut hi) = stats.pfn_range.unwrap_or((u64::MAX, 0));
        let (mut rec_lo, mut rec_hi) = (u64::MAX, 0);
        let mut counts = [0u64; 16];
        for w in pages.words {
            let w = w.get();
            let pfn = w & PFN_MASK;
            rec_lo = rec_lo.min(pfn);
            rec_hi = rec_hi.max(pfn);
            counts[(w >> 60) as usize] += 1;
        }
        let bound = bounds.domain.min(bounds.destination);
        if rec_hi >= bound {
            let (entry, e) = pages.entries().enumerate().find(|(_, e)| e.pfn >= bound).expect("seen above");
            if e.pfn < bounds.domain {
                return Err(RestoreError::BoundReached {
                    offset: rec.offset,
                    index: rec.index,
                    record: rec.rtype,
                    bound: Bound::Span,
                    limit: bounds.destination,
                    needed: rec_hi + 1,
                    page_shift: state.page_shift,
                });
            }
            return Err(RestoreError::PfnOutOfRange {
                offset: rec.offset,
                index: rec.index,
                entry,
                pfn: e.pfn,
                limit: bound,
            });
        }
        (lo, hi) = (lo.min(rec_lo), hi.max(rec_hi));
        if let Some(max_pfn) = bounds.pt_max_pfn {
            self.check_page_tables(rec, pages, max_pfn)?;
        }
        // Without a destination (verification) the populated set is kept only for handlers
        // whose END checks ask for it.
        let with_memory = memory.is_some();
        let track_populated = with_memory || self.track_populated;
        for (total, n) in self.type_counts.iter_mut().zip(counts) {
            *total += n;
        }
        // A record of holes only (XTAB, BROKEN: what a saver sends for the gaps of an HVM
        // guest's span, about a million entries for 4 GiB) populates and writes nothing: unless
        // its types are recorded, there is nothing more to do per entry.
        let populating = pages.data_pages() > 0 || counts[usize::from(PageType::XALLOC.nibble())] > 0;
        let walk = bounds.page_types || (populating && (track_populated || with_memory));
        for e in pages.entries().filter(|_| walk) {
            let t = e.page_type;
            if track_populated && t.populates() && self.populated.insert(e.pfn) && with_memory {
                self.to_populate.push(e.pfn);
            }
            if with_memory && t.has_data() {
                self.data_pfns.push(e.pfn);
                self.data_types.push(t);
            }
            if bounds.page_types {
                if t != PageType::NOTAB {
                    state.page_types.insert(e.pfn, t);
                } else if !state.page_types.is_empty() {
                    state.page_types.remove(&e.pfn);
                }
            }
        }
        stats.pfn_range = Some((lo, hi));
        if with_memory {
            self.populated_count += self.to_populate.len() as u64;
            if self.populated_count > bounds.populated_pages {
                return Err(RestoreError::BoundReached {
                    offset: rec.offset,
                    index: rec.index,
                    record: rec.rtype,
                    bound: Bound::Populated,
                    limit: bounds.populated_pages,
                    needed: self.populated_count,
                    page_shift: state.page_shift,
                });
            }
        }
        let mem_err = |source| RestoreError::Memory { offset: rec.offset, index: rec.index, source };
        let data_bytes = (pages.data_pages() * pages.page_size()) as u64;
        let Some(memory) = memory else {
            stats.data_pages += pages.data_pages() as u64;
            stats.data_bytes += data_bytes;
            return Ok(());
        };
        if !pages.has_bodies() {
            return Err(crate::domain::reject(rec, "page bodies were skipped by the reader; a restore needs them"));
        }
        // Written or compared, the page bodies count as applied.
        stats.data_pages += self.data_pfns.len() as u64;
        stats.data_bytes += data_bytes;
        if self.to_populate.is_empty() && self.data_pfns.is_empty() {
            return Ok(());
        }
        let batch = PageBatch {
            index: rec.index,
            offset: rec.offset,
            populate: &self.to_populate,
            pfns: &self.data_pfns,
            types: &self.data_types,
            data: pages.pages,
        };
        if compare {
            memory
                .compare_pages(&batch, &mut |pfn| {
                    stats.verify_mismatches += 1;
                    if stats.mismatch_pfns.len() < MAX_MISMATCH_PFNS {
                        stats.mismatch_pfns.push(pfn);
                    }
                })
                .map_err(mem_err)?;
            stats.verified_pages += self.data_pfns.len() as u64;
        } else {
            memory.apply_pages(&batch).map_err(mem_err)?;
        }
        Ok(())
    }

    /// Checks the entries of the record's page tables, or counts them as skipped when the
    /// reader elided the bodies.
    fn check_page_tables(&mut self, rec: &Record<'_>, pages: &PageData<'_>, max_pfn: u64) -> Result<(), RestoreError> {
        let size = pages.page_size();
        let mut data = 0;
        for (entry, e) in pages.entries().enumerate() {
            if e.page_type.is_page_table() {
                if !pages.has_bodies() {
                    self.skipped.page_tables += 1;
                } else if let Some(body) = pages.pages.get(data * size..(data + 1) * size) {
                    sr_rules::pv::check_page_table(e.pfn, e.page_type, body, max_pfn).map_err(|violation| {
                        RestoreError::PageContents { offset: rec.offset, index: rec.index, entry, violation }
                    })?;
                }
            }
            if e.page_type.has_data() {
                data += 1;
            }
        }
        Ok(())
    }

    /// The entry counts by page type.
    pub fn pages_by_type(&self) -> impl Iterator<Item = (PageType, u64)> + '_ {
        self.type_counts.iter().enumerate().filter(|(_, n)| **n > 0).map(|(t, n)| (PageType::from_nibble(t as u8), *n))
    }
}
