//! [`RamMemory`]: sparse guest memory in the process's own RAM.

use std::fmt;
use std::io;
use std::sync::{PoisonError, RwLock, RwLockReadGuard};

use zerocopy::FromZeros;

use crate::bitmap::{AtomicPfnBitmap, PfnBitmap};
use crate::{GuestMemory, MemoryError, Pfn, check_batch, check_geometry, check_pfns};

/// Pages per chunk, as a shift: 512 pages, 2 MiB at 4 KiB pages.
const CHUNK_SHIFT: u32 = 9;
const CHUNK_PAGES: u64 = 1 << CHUNK_SHIFT;

type Chunk = RwLock<Option<Box<[u8]>>>;

/// What [`RamMemory::lend_pages`] lends for pages of a chunk that was never allocated: one
/// 64 KiB page at the largest page shift, or a run of up to 16 pages at 4 KiB.
static ZERO_PAGES: [u8; 1 << 16] = [0; 1 << 16];

/// A slice being assembled by `lend_pages`: a byte range of one locked chunk, or a run
/// of zero bytes.
#[derive(Clone, Copy)]
enum Lent {
    Chunk { guard: usize, start: usize, end: usize },
    Zero { len: usize },
}

/// Guest memory held in process RAM, allocated lazily in 512-page chunks.
///
/// A chunk is allocated zeroed (calloc) on the first populate or write that touches it,
/// so an untouched chunk costs one lock word and the untouched pages of a touched chunk
/// are never faulted in: a guest with a large, sparsely populated pfn space is cheap.
///
/// Each chunk has its own `RwLock`, so readers and writers of different chunks never
/// contend, and a batch run that stays inside one chunk takes its lock once.
pub struct RamMemory {
    page_shift: u32,
    pfn_limit: u64,
    chunks: Box<[Chunk]>,
    populated: AtomicPfnBitmap,
    dirty: AtomicPfnBitmap,
}

impl RamMemory {
    /// Creates empty memory for pfns `0..pfn_limit` with pages of `1 << page_shift` bytes.
    ///
    /// Fails on a page shift other than 12, 14 or 16, or a limit above
    /// [`MAX_PFN_LIMIT`](crate::MAX_PFN_LIMIT).
    pub fn new(page_shift: u32, pfn_limit: u64) -> Result<Self, MemoryError> {
        check_geometry(page_shift, pfn_limit)?;
        let chunk_count = usize::try_from(pfn_limit.div_ceil(CHUNK_PAGES))
            .map_err(|_| MemoryError::PfnLimit { limit: pfn_limit, max: crate::MAX_PFN_LIMIT })?;
        let mut chunks = Vec::new();
        chunks
            .try_reserve_exact(chunk_count)
            .map_err(|_| MemoryError::Alloc { bytes: chunk_count.saturating_mul(size_of::<Chunk>()) })?;
        chunks.resize_with(chunk_count, || RwLock::new(None));
        Ok(Self {
            page_shift,
            pfn_limit,
            chunks: chunks.into_boxed_slice(),
            populated: AtomicPfnBitmap::try_new(pfn_limit)?,
            dirty: AtomicPfnBitmap::try_new(pfn_limit)?,
        })
    }

    /// Bytes of chunk memory currently allocated (touched or not).
    pub fn allocated_bytes(&self) -> usize {
        self.chunks
            .iter()
            .map(|c| c.read().unwrap_or_else(PoisonError::into_inner).as_ref().map_or(0, |b| b.len()))
            .sum()
    }

    /// The chunk holding `pfn` (already bounds-checked) and its index.
    fn chunk(&self, pfn: Pfn) -> Result<(u64, &Chunk), MemoryError> {
        let index = pfn >> CHUNK_SHIFT;
        usize::try_from(index)
            .ok()
            .and_then(|i| self.chunks.get(i))
            .map(|c| (index, c))
            .ok_or(MemoryError::PfnOutOfRange { pfn, limit: self.pfn_limit })
    }

    /// Allocates the zeroed backing of chunk `index`; the last chunk may be short.
    fn alloc_chunk(&self, index: u64) -> Result<Box<[u8]>, MemoryError> {
        let first = index << CHUNK_SHIFT;
        let pages = self.pfn_limit.saturating_sub(first).min(CHUNK_PAGES);
        let bytes = usize::try_from(pages << self.page_shift).unwrap_or(usize::MAX);
        // Zeroing allocation (calloc): fresh pages come straight from the kernel and are
        // only faulted in when written.
        <[u8]>::new_box_zeroed_with_elems(bytes).map_err(|_| MemoryError::Alloc { bytes })
    }

    /// The byte range of `pfn` within its chunk.
    fn page_range(&self, pfn: Pfn) -> std::ops::Range<usize> {
        // Both values are below CHUNK_PAGES << 16, so the casts and shifts are exact.
        let start = ((pfn % CHUNK_PAGES) as usize) << self.page_shift;
        start..start + self.page_size()
    }

    /// An error for a page that lies outside its chunk, which validation rules out.
    fn out_of_chunk(&self, pfn: Pfn) -> MemoryError {
        MemoryError::PfnOutOfRange { pfn, limit: self.pfn_limit }
    }
}

impl fmt::Debug for RamMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RamMemory")
            .field("page_shift", &self.page_shift)
            .field("pfn_limit", &self.pfn_limit)
            .field("populated", &self.populated.count_ones())
            .field("allocated_bytes", &self.allocated_bytes())
            .finish()
    }
}

impl GuestMemory for RamMemory {
    fn page_shift(&self) -> u32 {
        self.page_shift
    }

    fn pfn_limit(&self) -> u64 {
        self.pfn_limit
    }

    fn populate(&self, pfns: &[Pfn]) -> Result<(), MemoryError> {
        check_pfns(pfns, self.pfn_limit)?;
        for &pfn in pfns {
            if self.populated.get(pfn) {
                continue;
            }
            let (index, chunk) = self.chunk(pfn)?;
            let mut guard = chunk.write().unwrap_or_else(PoisonError::into_inner);
            if guard.is_none() {
                *guard = Some(self.alloc_chunk(index)?);
            }
            self.populated.set(pfn);
        }
        Ok(())
    }

    fn is_populated(&self, pfn: Pfn) -> bool {
        self.populated.get(pfn)
    }

    fn populated(&self) -> PfnBitmap {
        self.populated.snapshot()
    }

    fn write_pages(&self, pfns: &[Pfn], data: &[u8]) -> Result<(), MemoryError> {
        check_batch(pfns, data.len(), self.page_shift, self.pfn_limit)?;
        let page_size = self.page_size();
        let mut i = 0;
        while let Some(&first) = pfns.get(i) {
            let (index, chunk) = self.chunk(first)?;
            let mut guard = chunk.write().unwrap_or_else(PoisonError::into_inner);
            let buf = match &mut *guard {
                Some(buf) => buf,
                empty => empty.insert(self.alloc_chunk(index)?),
            };
            // One lock acquisition for every following page in the same chunk, and one copy
            // and one bitmap update per run of consecutive pfns in it.
            while let Some(&pfn) = pfns.get(i).filter(|&&p| p >> CHUNK_SHIFT == index) {
                let same_chunk_run = pfns[i..]
                    .iter()
                    .zip(pfn..)
                    .take_while(|&(&p, want)| p == want && p >> CHUNK_SHIFT == index)
                    .count();
                let (start, len) = (self.page_range(pfn).start, same_chunk_run * page_size);
                let (Some(dst), Some(src)) =
                    (buf.get_mut(start..start + len), data.get(i * page_size..(i + same_chunk_run) * page_size))
                else {
                    return Err(self.out_of_chunk(pfn));
                };
                dst.copy_from_slice(src);
                // Marked after the copy: a saver that takes the dirty bit and then reads
                // the page is guaranteed to see this write.
                let run = pfn..pfn + same_chunk_run as u64;
                self.populated.set_range(run.clone());
                self.dirty.set_range(run);
                i += same_chunk_run;
            }
        }
        Ok(())
    }

    fn read_pages(&self, pfns: &[Pfn], out: &mut [u8]) -> Result<(), MemoryError> {
        check_batch(pfns, out.len(), self.page_shift, self.pfn_limit)?;
        let page_size = self.page_size();
        let mut pages = pfns.iter().copied().zip(out.chunks_exact_mut(page_size)).peekable();
        while let Some(&(first, _)) = pages.peek() {
            let (index, chunk) = self.chunk(first)?;
            let guard = chunk.read().unwrap_or_else(PoisonError::into_inner);
            while let Some((pfn, dst)) = pages.next_if(|&(pfn, _)| pfn >> CHUNK_SHIFT == index) {
                match guard.as_deref() {
                    Some(buf) => {
                        dst.copy_from_slice(buf.get(self.page_range(pfn)).ok_or_else(|| self.out_of_chunk(pfn))?)
                    }
                    None => dst.fill(0),
                }
            }
        }
        Ok(())
    }

    fn take_dirty(&self) -> PfnBitmap {
        self.dirty.take()
    }

    /// Lends the pages under the read locks of every chunk involved, taken in ascending
    /// chunk order (writers only ever hold one chunk lock, so a consistent order rules out
    /// deadlock between lenders). Consecutive pfns within one chunk are one slice; pages
    /// of a never-allocated chunk are lent from a static zero buffer.
    fn lend_pages(&self, pfns: &[Pfn], f: &mut dyn FnMut(&[&[u8]]) -> io::Result<()>) -> Option<io::Result<()>> {
        Some(self.lend(pfns, f))
    }
}

impl RamMemory {
    fn lend(&self, pfns: &[Pfn], f: &mut dyn FnMut(&[&[u8]]) -> io::Result<()>) -> io::Result<()> {
        check_pfns(pfns, self.pfn_limit).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let page_size = self.page_size();
        let mut indices: Vec<u64> = pfns.iter().map(|&pfn| pfn >> CHUNK_SHIFT).collect();
        indices.sort_unstable();
        indices.dedup();
        let mut guards: Vec<RwLockReadGuard<'_, Option<Box<[u8]>>>> = Vec::with_capacity(indices.len());
        for &index in &indices {
            let (_, chunk) = self.chunk(index << CHUNK_SHIFT).map_err(io::Error::other)?;
            guards.push(chunk.read().unwrap_or_else(PoisonError::into_inner));
        }
        // Assemble the runs first (indices into `guards`), then borrow the slices.
        let mut runs: Vec<Lent> = Vec::new();
        for &pfn in pfns {
            let guard =
                indices.binary_search(&(pfn >> CHUNK_SHIFT)).map_err(|_| io::Error::other(self.out_of_chunk(pfn)))?;
            let next = match guards[guard].as_deref() {
                Some(buf) => {
                    let range = self.page_range(pfn);
                    if range.end > buf.len() {
                        return Err(io::Error::other(self.out_of_chunk(pfn)));
                    }
                    Lent::Chunk { guard, start: range.start, end: range.end }
                }
                None => Lent::Zero { len: page_size },
            };
            match (runs.last_mut(), next) {
                (Some(Lent::Chunk { guard: g, end, .. }), Lent::Chunk { guard: ng, start, end: ne })
                    if *g == ng && *end == start =>
                {
                    *end = ne;
                }
                (Some(Lent::Zero { len }), Lent::Zero { len: more }) if *len + more <= ZERO_PAGES.len() => {
                    *len += more;
                }
                _ => runs.push(next),
            }
        }
        let mut slices: Vec<&[u8]> = Vec::with_capacity(runs.len());
        for run in runs {
            slices.push(match run {
                Lent::Chunk { guard, start, end } => {
                    guards[guard].as_deref().and_then(|buf| buf.get(start..end)).unwrap_or_default()
                }
                Lent::Zero { len } => &ZERO_PAGES[..len],
            });
        }
        f(&slices)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_lazy_and_the_last_one_is_short() {
        let mem = RamMemory::new(12, 600).unwrap();
        assert_eq!(mem.allocated_bytes(), 0);
        mem.populate(&[3]).unwrap();
        assert_eq!(mem.allocated_bytes(), 512 * 4096);
        mem.write_pages(&[599], &[1; 4096]).unwrap();
        assert_eq!(mem.allocated_bytes(), 600 * 4096);
        // Idempotent populate does not reallocate or clear.
        mem.populate(&[599]).unwrap();
        let mut out = [0; 4096];
        mem.read_pages(&[599], &mut out).unwrap();
        assert_eq!(out, [1; 4096]);
    }

    /// Concatenates what `lend_pages` lends, and counts the slices.
    fn lent(mem: &RamMemory, pfns: &[Pfn]) -> (Vec<u8>, usize) {
        let mut out = Vec::new();
        let mut slices = 0;
        mem.lend_pages(pfns, &mut |s| {
            slices = s.len();
            s.iter().for_each(|p| out.extend_from_slice(p));
            Ok(())
        })
        .expect("RamMemory lends")
        .unwrap();
        (out, slices)
    }

    #[test]
    fn lend_matches_read_and_merges_runs() {
        let mem = RamMemory::new(12, 2048).unwrap();
        let data: Vec<u8> = (0..4 * 4096).map(|i| (i / 4096 + 1) as u8).collect();
        // 510..=513 straddles the chunk boundary at 512; 1100.. is in a chunk never allocated.
        mem.write_pages(&[510, 511, 512, 513], &data).unwrap();
        let pfns = [3, 510, 511, 512, 513, 1100, 1101, 1102, 7, 7];
        let mut want = vec![0xa5; pfns.len() * 4096];
        mem.read_pages(&pfns, &mut want).unwrap();
        let (got, slices) = lent(&mem, &pfns);
        assert_eq!(got, want);
        // [3] [510 511] [512 513] [1100..=1102 zero] [7] [7]
        assert_eq!(slices, 6);
        let (empty, slices) = lent(&mem, &[]);
        assert!(empty.is_empty() && slices == 0);
    }

    #[test]
    fn lend_checks_pfns_before_calling() {
        let mem = RamMemory::new(12, 600).unwrap();
        let mut called = false;
        let err = mem
            .lend_pages(&[1, 600], &mut |_| {
                called = true;
                Ok(())
            })
            .unwrap()
            .unwrap_err();
        assert!(!called);
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        let inner = err.into_inner().unwrap().downcast::<MemoryError>().unwrap();
        assert!(matches!(*inner, MemoryError::PfnOutOfRange { pfn: 600, limit: 600 }));
        // The callback's own error comes back as is.
        let err = mem.lend_pages(&[1], &mut |_| Err(io::Error::other("peer gone"))).unwrap().unwrap_err();
        assert_eq!(err.to_string(), "peer gone");
    }

    #[test]
    fn lend_at_64k_pages_and_through_pointers() {
        let mem = std::sync::Arc::new(RamMemory::new(16, 1024).unwrap());
        mem.write_pages(&[5], &vec![9; 1 << 16]).unwrap();
        let pfns = [4, 5, 600, 601];
        let mut want = vec![0; 4 << 16];
        mem.read_pages(&pfns, &mut want).unwrap();
        let mut got = Vec::new();
        let by_ref: &dyn GuestMemory = &mem;
        by_ref
            .lend_pages(&pfns, &mut |s| {
                s.iter().for_each(|p| got.extend_from_slice(p));
                Ok(())
            })
            .unwrap()
            .unwrap();
        assert_eq!(got, want);
    }

    #[test]
    fn writers_wait_for_a_lend() {
        let mem = RamMemory::new(12, 16).unwrap();
        mem.write_pages(&[2], &[1; 4096]).unwrap();
        std::thread::scope(|s| {
            mem.lend_pages(&[2], &mut |pages| {
                let writer = s.spawn(|| mem.write_pages(&[2], &[2; 4096]).unwrap());
                std::thread::sleep(std::time::Duration::from_millis(50));
                // The writer is blocked on the chunk lock: the lent page is still intact.
                assert!(!writer.is_finished());
                assert!(pages[0].iter().all(|&b| b == 1));
                Ok(())
            })
            .unwrap()
            .unwrap();
        });
        let mut out = [0; 4096];
        mem.read_pages(&[2], &mut out).unwrap();
        assert_eq!(out, [2; 4096]);
        assert!(mem.take_dirty().get(2));
    }

    #[test]
    fn rejects_bad_geometry() {
        assert!(matches!(RamMemory::new(13, 1), Err(MemoryError::PageShift { shift: 13 })));
        assert!(matches!(RamMemory::new(12, u64::MAX), Err(MemoryError::PfnLimit { .. })));
        let empty = RamMemory::new(12, 0).unwrap();
        assert!(matches!(empty.read_pages(&[0], &mut [0; 4096]), Err(MemoryError::PfnOutOfRange { pfn: 0, limit: 0 })));
        empty.read_pages(&[], &mut []).unwrap();
    }
}
