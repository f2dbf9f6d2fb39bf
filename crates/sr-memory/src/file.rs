//! [`FileMemory`]: guest memory in a sparse raw image file.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use rustix::fs::SeekFrom;
use rustix::io::Errno;

use crate::bitmap::{AtomicPfnBitmap, PfnBitmap};
use crate::{GuestMemory, MemoryError, Pfn, check_batch, check_geometry, check_pfns, consecutive_runs};

/// Guest memory stored in a sparse raw image: pfn `p` lives at byte offset
/// `p << page_shift` and pages never written are holes.
///
/// This is the format `xsr` extracts a save file into and saves from. Runs of
/// consecutive pfns in a batch become one `pread`, and `pwrite`s of at most 64 KiB (see
/// `write_run_at` why); reads go straight
/// into the caller's buffer, so batch I/O runs at the speed of the page cache.
///
/// Pages beyond the end of the file read as zeros, so the file only grows as far as
/// the highest page written. Call [`finish`](Self::finish) when done so that pages
/// populated but never written at the top of memory are included in the image length.
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

    /// Extends the file to cover the highest populated page, so the image length is
    /// exactly `(highest populated pfn + 1) << page_shift`, and returns that length.
    ///
    /// Only populated-but-unwritten pages at the top of memory need this (written pages
    /// already extend the file); it never shrinks the file.
    pub fn finish(&self) -> Result<u64, MemoryError> {
        let len = file_len(&self.file)?;
        let Some(last) = self.populated.last_one() else {
            return Ok(len);
        };
        // `last < pfn_limit <= MAX_PFN_LIMIT` and the shift is at most 16: no overflow.
        let want = (last + 1) << self.page_shift;
        if len >= want {
            return Ok(len);
        }
        self.file.set_len(want).map_err(|source| MemoryError::Image { op: "set_len", source })?;
        Ok(want)
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

/// The largest `pwrite` of page data, and the alignment of its end in the file.
const WRITE_PIECE: usize = 64 << 10;

/// Writes one run of pages at `offset` in pieces that end on multiples of 64 KiB in the file.
///
/// Measured on Linux 6.18 with ext4 (the 2-core development VM; `xsr restore` of 1 GiB, the
/// previous output removed before each run, 6 to 7 interleaved rounds with `cp`): the whole
/// 4 MiB run per `pwrite` took 0.68 to 3.61 s from round to round (2 MiB-aligned writes get
/// the page cache's largest folios, and the time their memory took varied), 64 KiB pieces
/// 0.28 to 0.30 s, as `cp` (0.28 to 0.29 s; its kernel copy writes 64 KiB at a time).
/// Writing the first 64 KiB of each run apart (0.28 to 2.35 s) or 1 MiB pieces still
/// varied. 16 `pwrite`s per 4 MiB cost no measurable time.
///
/// Shared with sr-dump's core writers, which write page bodies the same way.
///
/// # Errors
/// The first `pwrite(2)` error.
pub fn write_run_at(file: &File, mut bytes: &[u8], mut offset: u64) -> io::Result<()> {
    while !bytes.is_empty() {
        // Up to the next multiple of WRITE_PIECE in the file.
        let room = WRITE_PIECE as u64 - offset % WRITE_PIECE as u64;
        let (piece, rest) = bytes.split_at(bytes.len().min(usize::try_from(room).unwrap_or(usize::MAX)));
        file.write_all_at(piece, offset)?;
        offset += piece.len() as u64;
        bytes = rest;
    }
    Ok(())
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
            write_run_at(&self.file, bytes, self.offset(first)).map_err(|source| MemoryError::Io {
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
