//! Where page bodies come from: [`PageSource`] and its three implementations.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;

/// Copies the bodies of runs of guest pages into an output file.
pub trait PageSource {
    /// Copies pages `first .. first + count` (each `1 << page_shift` bytes) to `out` at byte
    /// `offset`. Runs are copied in ascending output offsets and the writer sets the output's
    /// final length afterwards, so pages that are all zeros may be skipped (they read back as
    /// zeros, and stay holes in a sparse file).
    fn copy_run(&mut self, first: u64, count: u64, page_shift: u32, out: &File, offset: u64) -> io::Result<()>;
}

/// Copies `len` bytes from `src` at `src_off` to `out` at `out_off` inside the kernel
/// (`copy_file_range` through [`std::io::copy`] between two files; a read/write loop where
/// the kernel cannot), so page bodies never pass through our memory.
pub(crate) fn kernel_copy(src: &File, src_off: u64, out: &File, out_off: u64, len: u64) -> io::Result<()> {
    let mut s = src;
    s.seek(SeekFrom::Start(src_off))?;
    let mut o = out;
    o.seek(SeekFrom::Start(out_off))?;
    let copied = io::copy(&mut s.take(len), &mut o)?;
    if copied != len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("source ends {copied} bytes into a {len}-byte copy from byte {src_off}"),
        ));
    }
    Ok(())
}

/// Page bodies in a raw image file: pfn p at byte `p << page_shift` (what `xsr restore`
/// writes as `memory.img`).
#[derive(Debug)]
pub struct RawImageSource<'a> {
    file: &'a File,
}

impl<'a> RawImageSource<'a> {
    /// Reads pages from `file`.
    pub fn new(file: &'a File) -> Self {
        Self { file }
    }
}

impl PageSource for RawImageSource<'_> {
    fn copy_run(&mut self, first: u64, count: u64, page_shift: u32, out: &File, offset: u64) -> io::Result<()> {
        let len = self.file.metadata()?.len();
        let (start, end) = (first << page_shift, (first + count) << page_shift);
        // Past the end of a sparse raw image everything is zero: leave it to the output's
        // holes.
        let end = end.min(len.max(start));
        if end > start {
            kernel_copy(self.file, start, out, offset, end - start)?;
        }
        Ok(())
    }
}

/// Where one page's body is in a [`FileExtents`] source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageBody {
    /// At this byte offset of the file.
    At(u64),
    /// All zeros (e.g. a page the stream populated without data).
    Zero,
}

/// Page bodies at arbitrary offsets of one file, e.g. the PAGE_DATA bodies of a save image
/// found through a pfn -> offset index. Consecutive pfns whose bodies are consecutive in the
/// file are copied with one kernel copy; zero pages are skipped.
pub struct FileExtents<'a, F> {
    file: &'a File,
    lookup: F,
}

impl<F> std::fmt::Debug for FileExtents<'_, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileExtents").field("file", &self.file).finish_non_exhaustive()
    }
}

impl<'a, F: FnMut(u64) -> Option<PageBody>> FileExtents<'a, F> {
    /// Reads bodies from `file` at the offsets `lookup(pfn)` gives; `None` for a pfn of a run
    /// is an error (the runs and the lookup disagree).
    pub fn new(file: &'a File, lookup: F) -> Self {
        Self { file, lookup }
    }
}

impl<F: FnMut(u64) -> Option<PageBody>> PageSource for FileExtents<'_, F> {
    fn copy_run(&mut self, first: u64, count: u64, page_shift: u32, out: &File, offset: u64) -> io::Result<()> {
        let file = self.file;
        gather_extents(first, count, page_shift, offset, &mut self.lookup, |s, d, len| {
            kernel_copy(file, s, out, d, len)
        })
    }
}

/// Walks the pages `first .. first + count` of a run through `lookup` and calls
/// `copy(source offset, output offset, length)` once per extent of bodies that are
/// consecutive in the source; zero pages are skipped.
fn gather_extents(
    first: u64,
    count: u64,
    page_shift: u32,
    offset: u64,
    lookup: &mut dyn FnMut(u64) -> Option<PageBody>,
    mut copy: impl FnMut(u64, u64, u64) -> io::Result<()>,
) -> io::Result<()> {
    let page = 1u64 << page_shift;
    // The extent being gathered: (source offset, output offset, length).
    let mut pending: Option<(u64, u64, u64)> = None;
    for i in 0..count {
        let pfn = first + i;
        let dst = offset + (i << page_shift);
        let body = lookup(pfn).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, format!("pfn {pfn:#x} is in a run but has no page body"))
        })?;
        match (body, &mut pending) {
            (PageBody::At(src), Some((s, _, len))) if *s + *len == src => *len += page,
            (PageBody::At(src), _) => {
                if let Some((s, d, len)) = pending.take() {
                    copy(s, d, len)?;
                }
                pending = Some((src, dst, page));
            }
            (PageBody::Zero, _) => {
                if let Some((s, d, len)) = pending.take() {
                    copy(s, d, len)?;
                }
            }
        }
    }
    if let Some((s, d, len)) = pending {
        copy(s, d, len)?;
    }
    Ok(())
}

/// Page bodies at offsets of a byte slice, typically a read-only map of the save file: each
/// extent of bodies consecutive in the slice is written with `pwrite`s of at most 64 KiB
/// (see `write_extent_at`; one copy, map to output). Page bodies in a stream are never page-aligned, so this beats a kernel
/// `copy_file_range`, which falls back to a slow path for unaligned ranges. `window(offset)`
/// is called before each extent is read, so the caller can populate the map ahead and
/// release it behind.
pub struct SliceExtents<'a, F, W> {
    bytes: &'a [u8],
    lookup: F,
    window: W,
}

impl<F, W> std::fmt::Debug for SliceExtents<'_, F, W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SliceExtents").field("len", &self.bytes.len()).finish_non_exhaustive()
    }
}

impl<'a, F: FnMut(u64) -> Option<PageBody>, W: FnMut(u64)> SliceExtents<'a, F, W> {
    /// Reads bodies from `bytes` at the offsets `lookup(pfn)` gives.
    pub fn new(bytes: &'a [u8], lookup: F, window: W) -> Self {
        Self { bytes, lookup, window }
    }
}

impl<F: FnMut(u64) -> Option<PageBody>, W: FnMut(u64)> PageSource for SliceExtents<'_, F, W> {
    fn copy_run(&mut self, first: u64, count: u64, page_shift: u32, out: &File, offset: u64) -> io::Result<()> {
        let bytes = self.bytes;
        let window = &mut self.window;
        gather_extents(first, count, page_shift, offset, &mut self.lookup, |s, d, len| {
            let body = usize::try_from(s)
                .ok()
                .zip(usize::try_from(len).ok())
                .and_then(|(s, len)| bytes.get(s..s.checked_add(len)?))
                .ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "a {len}-byte page extent at byte {s} lies past the end of the input ({} bytes)",
                            bytes.len()
                        ),
                    )
                })?;
            window(s);
            // Pieces aligned in the output, as restore writes its image (see there for why).
            sr_memory::file::write_run_at(out, body, d)
        })
    }
}

/// Page bodies from a callback that fills one page at a time (e.g. pages mapped from a
/// running domain). Up to 1 MiB of consecutive pages is gathered per write.
pub struct BytesSource<F> {
    fill: F,
    buf: Vec<u8>,
}

impl<F> std::fmt::Debug for BytesSource<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BytesSource").field("buffer", &self.buf.len()).finish_non_exhaustive()
    }
}

impl<F: FnMut(u64, &mut [u8]) -> io::Result<()>> BytesSource<F> {
    /// `fill(pfn, page)` writes the body of `pfn` into `page` (exactly one page long).
    pub fn new(fill: F) -> Self {
        Self { fill, buf: Vec::new() }
    }
}

impl<F: FnMut(u64, &mut [u8]) -> io::Result<()>> PageSource for BytesSource<F> {
    fn copy_run(&mut self, first: u64, count: u64, page_shift: u32, out: &File, offset: u64) -> io::Result<()> {
        let page = 1usize << page_shift;
        let batch = ((1usize << 20) / page).max(1) as u64;
        let mut done = 0u64;
        while done < count {
            let n = batch.min(count - done);
            self.buf.resize(n as usize * page, 0);
            for (i, chunk) in self.buf.chunks_exact_mut(page).enumerate() {
                (self.fill)(first + done + i as u64, chunk)?;
            }
            out.write_all_at(&self.buf, offset + (done << page_shift))?;
            done += n;
        }
        Ok(())
    }
}
