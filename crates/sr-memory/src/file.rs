//! [`FileMemory`]: guest memory in a sparse raw image file.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Mutex;

use rustix::fs::SeekFrom;
use rustix::io::Errno;

use crate::bitmap::{AtomicPfnBitmap, PfnBitmap};
use crate::{GuestMemory, MemoryError, Pfn, check_batch, check_geometry, check_pfns, consecutive_runs};

/// Guest memory stored in a sparse raw image: pfn `p` lives at byte offset
/// `p << page_shift` and pages never written are holes.
///
/// This is the format `xsr` extracts a save file into and saves from. Runs of
/// consecutive pfns in a batch become a single `pwrite`/`pread`, and reads go straight
/// into the caller's buffer, so batch I/O runs at the speed of the page cache.
///
/// Pages beyond the end of the file read as zeros. A write past the end first extends
/// the file (a hole) to the next multiple of [`IMAGE_GROW_STEP`] (within the pfn limit): writing
/// inside a file is cheaper than appending to it (see there). Call
/// [`finish`](Self::finish) when done: it sets the image length to end at the highest
/// populated page, so pages populated but never written at the top of memory are included
/// and the hole grown ahead of the last write is cut off.
///
/// # Populated pages of an existing image
///
/// [`open`](Self::open) and [`from_file`](Self::from_file) derive the populated set from
/// the file's data extents (`lseek` with `SEEK_DATA`/`SEEK_HOLE`, through rustix's safe
/// wrapper): a page overlapping data is populated, a page wholly in a hole is not. This
/// costs one system call per extent instead of a read of the whole image, and it keeps
/// pages written with zeros populated. Two consequences:
///
/// * pages populated but never written are holes, so they are not populated after a
///   reopen (they still read as zeros);
/// * on a file system that does not report holes, the whole file is one data extent and
///   every page of it counts as populated.
#[derive(Debug)]
pub struct FileMemory {
    file: File,
    page_shift: u32,
    pfn_limit: u64,
    populated: AtomicPfnBitmap,
    dirty: AtomicPfnBitmap,
    length: Mutex<Length>,
}

/// How far a write past the end of the image extends it at once (a hole, no blocks).
///
/// Measured on Linux 6.18 with ext4 (the 2-core development VM), 1 GiB written in 4 MiB
/// `pwrite`s at 2 MiB-aligned offsets: appending (each write past the end of the file)
/// took 0.5 to 1.6 s of system time from run to run, writing the same bytes into a file
/// sized first 0.23 to 0.40 s, as `cp` does (`xsr restore` appended; `xsr extract`, which
/// sizes its output first, did not have the spread). On tmpfs both cost the same.
pub const IMAGE_GROW_STEP: u64 = 1 << 30;

/// The image length as this value set it.
#[derive(Debug, Clone, Copy)]
struct Length {
    /// The file length now (as far as this value changed it).
    now: u64,
    /// The length the file had when wrapped: never cut below it.
    initial: u64,
}

impl FileMemory {
    /// Creates (or truncates) the image at `path` for pfns `0..pfn_limit`.
    pub fn create(path: impl AsRef<Path>, page_shift: u32, pfn_limit: u64) -> Result<Self, MemoryError> {
        check_geometry(page_shift, pfn_limit)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(|source| MemoryError::Image { op: "create", source })?;
        Self::from_file(file, page_shift, pfn_limit)
    }

    /// Opens an existing image read-only; writes to it fail with [`MemoryError::Io`].
    ///
    /// The pfn limit is the image length in pages, rounded up; the populated set comes
    /// from the file's data extents (see the type-level docs).
    pub fn open(path: impl AsRef<Path>, page_shift: u32) -> Result<Self, MemoryError> {
        let file = File::open(path).map_err(|source| MemoryError::Image { op: "open", source })?;
        Self::from_image(file, page_shift)
    }

    /// Opens an existing image for reading and writing, like [`open`](Self::open)
    /// otherwise. Pages can be rewritten but the pfn limit stays the image's length.
    pub fn open_rw(path: impl AsRef<Path>, page_shift: u32) -> Result<Self, MemoryError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|source| MemoryError::Image { op: "open", source })?;
        Self::from_image(file, page_shift)
    }

    /// Wraps an already open file as memory for pfns `0..pfn_limit`.
    ///
    /// The file may be empty or hold an image; existing data extents become populated
    /// pages. Fails with [`MemoryError::PfnOutOfRange`] if the file is longer than
    /// `pfn_limit` pages.
    pub fn from_file(file: File, page_shift: u32, pfn_limit: u64) -> Result<Self, MemoryError> {
        check_geometry(page_shift, pfn_limit)?;
        let len = file_len(&file)?;
        let pages = len.div_ceil(1 << page_shift);
        if pages > pfn_limit {
            return Err(MemoryError::PfnOutOfRange { pfn: pages - 1, limit: pfn_limit });
        }
        let mem = Self {
            file,
            page_shift,
            pfn_limit,
            populated: AtomicPfnBitmap::try_new(pfn_limit)?,
            dirty: AtomicPfnBitmap::try_new(pfn_limit)?,
            length: Mutex::new(Length { now: len, initial: len }),
        };
        mem.scan_extents(len)?;
        Ok(mem)
    }

    fn from_image(file: File, page_shift: u32) -> Result<Self, MemoryError> {
        crate::check_page_shift(page_shift)?;
        let pfn_limit = file_len(&file)?.div_ceil(1 << page_shift);
        Self::from_file(file, page_shift, pfn_limit)
    }

    /// Marks every page overlapping a data extent of the first `len` bytes as populated.
    fn scan_extents(&self, len: u64) -> Result<(), MemoryError> {
        let seek_err = |op| move |e: Errno| MemoryError::Image { op, source: io::Error::from(e) };
        let page_size = 1u64 << self.page_shift;
        let mut pos = 0;
        while pos < len {
            let data = match rustix::fs::seek(&self.file, SeekFrom::Data(pos)) {
                Ok(data) => data,
                // No data at or after `pos`: the rest is a hole.
                Err(Errno::NXIO) => break,
                // SEEK_DATA unsupported: treat the file as one data extent.
                Err(Errno::INVAL) if pos == 0 => 0,
                Err(e) => return Err(seek_err("lseek(SEEK_DATA)")(e)),
            };
            if data >= len {
                break;
            }
            let hole = match rustix::fs::seek(&self.file, SeekFrom::Hole(data)) {
                Ok(hole) => hole.min(len),
                Err(Errno::NXIO | Errno::INVAL) => len,
                Err(e) => return Err(seek_err("lseek(SEEK_HOLE)")(e)),
            };
            self.populated.set_range(data >> self.page_shift..hole.div_ceil(page_size));
            // Always make progress, whatever the file system reports.
            pos = hole.max(data + 1);
        }
        Ok(())
    }

    /// Sets the image length to `(highest populated pfn + 1) << page_shift` and returns
    /// it: populated-but-unwritten pages at the top of memory are included, and the hole
    /// that writes grew ahead of the highest page ([`IMAGE_GROW_STEP`]) is cut off. The file is
    /// never made shorter than it was when this value was created.
    pub fn finish(&self) -> Result<u64, MemoryError> {
        let mut length = self.length.lock().unwrap_or_else(|p| p.into_inner());
        let len = file_len(&self.file)?;
        // `last < pfn_limit <= MAX_PFN_LIMIT` and the shift is at most 16: no overflow.
        let want = self.populated.last_one().map_or(0, |last| (last + 1) << self.page_shift).max(length.initial);
        if len != want && (len < want || len == length.now) {
            self.file.set_len(want).map_err(|source| MemoryError::Image { op: "set_len", source })?;
            length.now = want;
            return Ok(want);
        }
        Ok(len)
    }

    /// Makes the file at least `end` bytes long before a write that reaches `end`: the
    /// next multiple of [`IMAGE_GROW_STEP`], within the pfn limit.
    fn grow_for(&self, end: u64, pfn: Pfn) -> Result<(), MemoryError> {
        let mut length = self.length.lock().unwrap_or_else(|p| p.into_inner());
        if end <= length.now {
            return Ok(());
        }
        // `pfn_limit <= MAX_PFN_LIMIT` (2^36) and the shift is at most 16: no overflow.
        let limit = self.pfn_limit << self.page_shift;
        let to = end.next_multiple_of(IMAGE_GROW_STEP).min(limit).max(end);
        self.file.set_len(to).map_err(|source| MemoryError::Io { op: "ftruncate", pfn, source })?;
        length.now = to;
        Ok(())
    }

    /// Flushes data and metadata to stable storage (`fsync`).
    pub fn sync(&self) -> Result<(), MemoryError> {
        self.file.sync_all().map_err(|source| MemoryError::Image { op: "sync", source })
    }

    /// The underlying file.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Returns the underlying file, e.g. to hand the finished image on.
    pub fn into_file(self) -> File {
        self.file
    }

    /// The byte offset of a bounds-checked pfn.
    fn offset(&self, pfn: Pfn) -> u64 {
        // pfn < pfn_limit <= MAX_PFN_LIMIT (2^36) and page_shift <= 16: fits easily.
        pfn << self.page_shift
    }

    /// The run `(start, len)` of `pfns` and its byte range in a batch buffer.
    fn run_bytes(&self, start: usize, len: usize) -> std::ops::Range<usize> {
        (start << self.page_shift)..((start + len) << self.page_shift)
    }
}

fn file_len(file: &File) -> Result<u64, MemoryError> {
    file.metadata().map(|m| m.len()).map_err(|source| MemoryError::Image { op: "stat", source })
}

/// Fills `buf` from `offset`, zero-filling whatever lies beyond end of file.
fn read_full_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
    while !buf.is_empty() {
        match file.read_at(buf, offset) {
            Ok(0) => {
                buf.fill(0);
                break;
            }
            Ok(n) => {
                buf = buf.get_mut(n..).unwrap_or_default();
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

impl GuestMemory for FileMemory {
    fn page_shift(&self) -> u32 {
        self.page_shift
    }

    fn pfn_limit(&self) -> u64 {
        self.pfn_limit
    }

    fn populate(&self, pfns: &[Pfn]) -> Result<(), MemoryError> {
        check_pfns(pfns, self.pfn_limit)?;
        // A hole already reads as zeros; the file is extended by `finish`.
        for &pfn in pfns {
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
        for (start, len) in consecutive_runs(pfns) {
            let (Some(run), Some(bytes)) = (pfns.get(start..start + len), data.get(self.run_bytes(start, len))) else {
                continue; // unreachable: runs partition the validated batch
            };
            let first = run.first().copied().unwrap_or_default();
            self.grow_for(self.offset(first) + bytes.len() as u64, first)?;
            self.file.write_all_at(bytes, self.offset(first)).map_err(|source| MemoryError::Io {
                op: "pwrite",
                pfn: first,
                source,
            })?;
            // Marked after the write, so a saver that takes the dirty bit and then reads
            // the page sees this write.
            for &pfn in run {
                self.populated.set(pfn);
                self.dirty.set(pfn);
            }
        }
        Ok(())
    }

    fn read_pages(&self, pfns: &[Pfn], out: &mut [u8]) -> Result<(), MemoryError> {
        check_batch(pfns, out.len(), self.page_shift, self.pfn_limit)?;
        for (start, len) in consecutive_runs(pfns) {
            let range = self.run_bytes(start, len);
            let (Some(&first), Some(buf)) = (pfns.get(start), out.get_mut(range)) else {
                continue; // unreachable: runs partition the validated batch
            };
            read_full_at(&self.file, buf, self.offset(first)).map_err(|source| MemoryError::Io {
                op: "pread",
                pfn: first,
                source,
            })?;
        }
        Ok(())
    }

    fn take_dirty(&self) -> PfnBitmap {
        self.dirty.take()
    }
}
