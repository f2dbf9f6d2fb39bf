//! [`VmMemory`]: an adapter over rust-vmm `vm-memory` guest memory.
//!
//! vm-memory only defines consumer-side access (`Bytes` reads and writes at a guest
//! address); this adapter adds what save and restore need on top: pfn batches, a
//! populated set and a dirty log. Pages are copied with `Bytes::write_slice` and
//! `Bytes::read_slice`, which use volatile accesses, so a guest running on the same
//! memory cannot cause undefined behaviour here.

use std::fmt;
use std::ops::Range;

/// The vm-memory version this adapter is built against, for naming its types.
pub use vm_memory;
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

use crate::bitmap::{AtomicPfnBitmap, PfnBitmap};
use crate::{
    GuestMemory, MemoryError, Pfn, check_batch, check_geometry, check_page_shift, check_pfns, consecutive_runs,
};

/// [`GuestMemory`] over any vm-memory
/// [`GuestMemoryBackend`](https://docs.rs/vm-memory/0.18/vm_memory/trait.GuestMemoryBackend.html), e.g. a
/// [`GuestMemoryMmap`](https://docs.rs/vm-memory/0.18/vm_memory/mmap/type.GuestMemoryMmap.html).
///
/// pfn `p` is the page at `GuestAddress(p << page_shift)`. The memory map is fixed:
/// every page inside a region is populated from the start, pages in holes between
/// regions read as zeros and cannot be populated or written
/// ([`MemoryError::Unpopulated`]). The pfn limit is the end of the last region.
///
/// The dirty log records writes made through [`write_pages`](GuestMemory::write_pages)
/// only; writes by a guest running on the same memory are not seen.
pub struct VmMemory<M> {
    mem: M,
    page_shift: u32,
    pfn_limit: u64,
    populated: AtomicPfnBitmap,
    dirty: AtomicPfnBitmap,
}

impl<M: GuestMemoryBackend> VmMemory<M> {
    /// Wraps `mem`, whose regions must start and end on page boundaries.
    pub fn new(mem: M, page_shift: u32) -> Result<Self, MemoryError> {
        check_page_shift(page_shift)?;
        let page_mask = (1u64 << page_shift) - 1;
        let mut pfn_ranges: Vec<Range<Pfn>> = Vec::new();
        for region in mem.iter() {
            let start = region.start_addr().0;
            let len = region.len();
            let end = start.checked_add(len).ok_or_else(|| {
                MemoryError::Backend(format!("region at {start:#x} of {len:#x} bytes overflows the address space"))
            })?;
            if start & page_mask != 0 || len & page_mask != 0 {
                return Err(MemoryError::Backend(format!(
                    "region at {start:#x} of {len:#x} bytes is not aligned to {} byte pages",
                    page_mask + 1
                )));
            }
            pfn_ranges.push(start >> page_shift..end >> page_shift);
        }
        let pfn_limit = pfn_ranges.iter().map(|r| r.end).max().unwrap_or(0);
        check_geometry(page_shift, pfn_limit)?;
        let populated = AtomicPfnBitmap::try_new(pfn_limit)?;
        for range in pfn_ranges {
            populated.set_range(range);
        }
        Ok(Self { mem, page_shift, pfn_limit, populated, dirty: AtomicPfnBitmap::try_new(pfn_limit)? })
    }

    /// The wrapped vm-memory object.
    pub fn inner(&self) -> &M {
        &self.mem
    }

    /// Unwraps the vm-memory object.
    pub fn into_inner(self) -> M {
        self.mem
    }
}

impl VmMemory<GuestMemoryMmap> {
    /// Creates `bytes` of anonymous memory as a single region at guest address 0.
    ///
    /// `bytes` must be a non-zero multiple of the page size.
    pub fn anonymous(page_shift: u32, bytes: usize) -> Result<Self, MemoryError> {
        check_page_shift(page_shift)?;
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), bytes)])
            .map_err(|e| MemoryError::Backend(format!("anonymous {bytes} byte region: {e}")))?;
        Self::new(mem, page_shift)
    }
}

impl<M> VmMemory<M> {
    /// Fails with [`MemoryError::Unpopulated`] on the first pfn in a hole.
    fn check_backed(&self, pfns: &[Pfn]) -> Result<(), MemoryError> {
        match pfns.iter().find(|&&pfn| !self.populated.get(pfn)) {
            Some(&pfn) => Err(MemoryError::Unpopulated { pfn }),
            None => Ok(()),
        }
    }

    /// The guest address of a bounds-checked pfn.
    fn addr(&self, pfn: Pfn) -> GuestAddress {
        // pfn < pfn_limit <= MAX_PFN_LIMIT (2^36) and page_shift <= 16: no overflow.
        GuestAddress(pfn << self.page_shift)
    }

    fn backend_err(op: &str, pfn: Pfn, e: impl fmt::Display) -> MemoryError {
        MemoryError::Backend(format!("{op} at pfn {pfn:#x}: {e}"))
    }
}

impl<M> fmt::Debug for VmMemory<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VmMemory")
            .field("page_shift", &self.page_shift)
            .field("pfn_limit", &self.pfn_limit)
            .field("populated", &self.populated.count_ones())
            .finish_non_exhaustive()
    }
}

impl<M: GuestMemoryBackend + Send + Sync> GuestMemory for VmMemory<M> {
    fn page_shift(&self) -> u32 {
        self.page_shift
    }

    fn pfn_limit(&self) -> u64 {
        self.pfn_limit
    }

    fn populate(&self, pfns: &[Pfn]) -> Result<(), MemoryError> {
        check_pfns(pfns, self.pfn_limit)?;
        // The map is fixed: pages in regions are always populated, holes never can be.
        self.check_backed(pfns)
    }

    fn is_populated(&self, pfn: Pfn) -> bool {
        self.populated.get(pfn)
    }

    fn populated(&self) -> PfnBitmap {
        self.populated.snapshot()
    }

    fn write_pages(&self, pfns: &[Pfn], data: &[u8]) -> Result<(), MemoryError> {
        check_batch(pfns, data.len(), self.page_shift, self.pfn_limit)?;
        self.check_backed(pfns)?;
        for (start, len) in consecutive_runs(pfns) {
            let range = (start << self.page_shift)..((start + len) << self.page_shift);
            let (Some(run), Some(bytes)) = (pfns.get(start..start + len), data.get(range)) else {
                continue; // unreachable: runs partition the validated batch
            };
            let first = run.first().copied().unwrap_or_default();
            // A run of backed consecutive pages is one contiguous guest range, which
            // vm-memory splits across adjacent regions itself.
            self.mem.write_slice(bytes, self.addr(first)).map_err(|e| Self::backend_err("write_slice", first, e))?;
            for &pfn in run {
                self.dirty.set(pfn);
            }
        }
        Ok(())
    }

    fn read_pages(&self, pfns: &[Pfn], out: &mut [u8]) -> Result<(), MemoryError> {
        check_batch(pfns, out.len(), self.page_shift, self.pfn_limit)?;
        for (start, len) in consecutive_runs(pfns) {
            let Some(run) = pfns.get(start..start + len) else {
                continue; // unreachable: runs partition the validated batch
            };
            // Split the run where it enters or leaves a hole.
            let mut offset = 0;
            while let Some(&first) = run.get(offset) {
                let backed = self.populated.get(first);
                let count = run
                    .get(offset..)
                    .unwrap_or_default()
                    .iter()
                    .take_while(|&&pfn| self.populated.get(pfn) == backed)
                    .count();
                let range = ((start + offset) << self.page_shift)..((start + offset + count) << self.page_shift);
                let Some(buf) = out.get_mut(range) else {
                    break; // unreachable: the range lies inside the validated buffer
                };
                if backed {
                    self.mem
                        .read_slice(buf, self.addr(first))
                        .map_err(|e| Self::backend_err("read_slice", first, e))?;
                } else {
                    buf.fill(0);
                }
                offset += count;
            }
        }
        Ok(())
    }

    fn take_dirty(&self) -> PfnBitmap {
        self.dirty.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_regions() -> VmMemory<GuestMemoryMmap> {
        // pfns 0..4 and 8..12, a hole at 4..8.
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 4 << 12), (GuestAddress(8 << 12), 4 << 12)])
            .unwrap();
        VmMemory::new(mem, 12).unwrap()
    }

    #[test]
    fn holes_read_zero_and_reject_writes() {
        let mem = two_regions();
        assert_eq!(mem.pfn_limit(), 12);
        let populated: Vec<_> = mem.populated().iter_ones().collect();
        assert_eq!(populated, [0, 1, 2, 3, 8, 9, 10, 11]);

        let pfns = [2, 3, 4, 5, 8, 9];
        let data: Vec<u8> = (0..pfns.len() * 4096).map(|i| (i / 4096 + 1) as u8).collect();
        assert!(matches!(mem.write_pages(&pfns, &data), Err(MemoryError::Unpopulated { pfn: 4 })));
        assert!(mem.take_dirty().is_empty(), "rejected batch left no trace");
        assert!(matches!(mem.populate(&[0, 7]), Err(MemoryError::Unpopulated { pfn: 7 })));

        mem.write_pages(&[2, 3, 8, 9], &[[1; 4096], [2; 4096], [3; 4096], [4; 4096]].concat()).unwrap();
        let mut out = vec![0xff; pfns.len() * 4096];
        mem.read_pages(&pfns, &mut out).unwrap();
        let expect = [[1; 4096], [2; 4096], [0; 4096], [0; 4096], [3; 4096], [4; 4096]].concat();
        assert!(out == expect);
    }

    #[test]
    fn rejects_misaligned_regions() {
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 4096 + 512)]).unwrap();
        assert!(matches!(VmMemory::new(mem, 12), Err(MemoryError::Backend(_))));
        assert!(matches!(VmMemory::anonymous(12, 0), Err(MemoryError::Backend(_))));
    }

    #[test]
    fn anonymous_is_fully_populated() {
        let mem = VmMemory::anonymous(16, 4 << 16).unwrap();
        assert_eq!(mem.pfn_limit(), 4);
        assert_eq!(mem.populated().count_ones(), 4);
        assert!(mem.take_dirty().is_empty());
    }
}
