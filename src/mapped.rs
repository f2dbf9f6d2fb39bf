//! Read-only file maps whose pages are handed back to the kernel as soon as they have been
//! used, so that streaming through a large file costs no more resident memory than a read
//! buffer would, while the bytes are copied once instead of twice.

use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result};
use memmap2::{Advice, Mmap, UncheckedAdvice};

/// A read-only map of a whole file.
#[derive(Debug)]
pub struct MappedFile {
    file: File,
    map: Mmap,
    /// Bytes below this offset were released already.
    released: AtomicUsize,
    /// Bytes below this offset were populated already.
    populated: AtomicUsize,
}

/// Granule of releases.
const RELEASE_GRANULE: usize = 1 << 20;
/// How far ahead of the reader [`MappedFile::window`] keeps the map populated.
const WINDOW: usize = 16 << 20;

impl MappedFile {
    /// Maps `file` (read-only, private). `None` for an empty file, which cannot be mapped.
    pub fn map(file: File, path: &Path) -> Result<Option<Self>> {
        let len = file.metadata().with_context(|| format!("cannot stat {}", path.display()))?.len();
        if len == 0 {
            return Ok(None);
        }
        // SAFETY: the map is read-only and private. The save images and streams we map are
        // not modified while we read them; if another process truncated one anyway, reads
        // past the new end would raise SIGBUS (the documented limit of mapped I/O), and a
        // concurrent rewrite could make the bytes we parse change under us, which the
        // parsers tolerate (every value they keep is copied out and checked first).
        #[allow(unsafe_code)]
        let map = unsafe { Mmap::map(&file) }.with_context(|| format!("cannot map {}", path.display()))?;
        let _ = map.advise(Advice::Sequential);
        Ok(Some(Self { file, map, released: AtomicUsize::new(0), populated: AtomicUsize::new(0) }))
    }

    /// The file.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// The mapped bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.map
    }

    /// Drops the pages of `start..end` from this process (they stay in the page cache).
    pub fn release(&self, start: usize, end: usize) {
        let page = 4096;
        let start = start.next_multiple_of(page);
        let end = end.min(self.map.len()) / page * page;
        if end > start {
            // SAFETY: MADV_DONTNEED on a private, read-only file mapping only drops this
            // process's page-table entries: the next access faults the same bytes back in
            // from the file. No memory is freed under a live reference, and nothing we wrote
            // is lost (we never write through this map).
            #[allow(unsafe_code)]
            let _ = unsafe { self.map.unchecked_advise_range(UncheckedAdvice::DontNeed, start, end - start) };
        }
    }

    /// Fills the page tables of `start..end` in one call (`MADV_POPULATE_READ`), so copying
    /// out of that range takes no page faults; a kernel without it just faults as usual.
    pub fn populate(&self, start: usize, end: usize) {
        let end = end.min(self.map.len());
        if end > start {
            let _ = self.map.advise_range(Advice::PopulateRead, start, end - start);
        }
    }

    /// For a reader at `offset` going forward: keeps the next 16 MiB populated
    /// (in half-window steps) and releases what lies behind.
    pub fn window(&self, offset: u64) {
        let at = usize::try_from(offset).unwrap_or(usize::MAX).min(self.map.len());
        let ahead = self.populated.load(Ordering::Relaxed);
        if at + WINDOW / 2 > ahead && ahead < self.map.len() {
            let from = ahead.max(at);
            self.populate(from, at + WINDOW);
            self.populated.store(at + WINDOW, Ordering::Relaxed);
        }
        self.release_before(offset);
    }

    /// Releases everything below `offset`, in steps of at least 1 MiB (cheap to call often).
    pub fn release_before(&self, offset: u64) {
        let offset = usize::try_from(offset).unwrap_or(usize::MAX).min(self.map.len());
        let done = self.released.load(Ordering::Relaxed);
        if offset >= done + RELEASE_GRANULE || (offset == self.map.len() && offset > done) {
            self.release(done, offset);
            self.released.store(offset / 4096 * 4096, Ordering::Relaxed);
        }
    }
}
