//! Byte sources the stream reader pulls from: a borrowed slice (or mmap) without copying, or
//! any `std::io::Read` through one reused buffer.

use std::io::{self, Read, Seek, SeekFrom};

/// Why a [`ByteSource`] could not deliver.
#[derive(Debug)]
pub enum SourceError {
    /// The input ended after `got` of the requested bytes.
    Eof {
        /// Bytes that were available.
        got: u64,
    },
    /// The underlying reader failed.
    Io(io::Error),
}

/// Where the stream reader gets its bytes.
pub trait ByteSource {
    /// Reads exactly `n` bytes and returns them; the view is valid until the next call.
    fn take(&mut self, n: usize) -> Result<&[u8], SourceError>;

    /// Moves past `n` bytes without returning them (a seek where the source can).
    fn skip(&mut self, mut n: u64) -> Result<(), SourceError> {
        let mut got = 0;
        while n > 0 {
            let step = n.min(SKIP_STEP as u64) as usize;
            match self.take(step) {
                Ok(_) => (got, n) = (got + step as u64, n - step as u64),
                Err(SourceError::Eof { got: more }) => return Err(SourceError::Eof { got: got + more }),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Moves to the end of the source (a seek where the source can, else reading and dropping
    /// in 1 MiB steps) and returns how many bytes that passed. After a stream's END these are
    /// the bytes that follow it, which Xen's readers never read: not for a socket whose sender
    /// keeps it open.
    fn skip_rest(&mut self) -> Result<u64, SourceError> {
        match self.skip(u64::MAX) {
            Err(SourceError::Eof { got }) => Ok(got),
            Err(e) => Err(e),
            // Only a source of 2^64 bytes gets here.
            Ok(()) => Ok(u64::MAX),
        }
    }
}

impl<S: ByteSource + ?Sized> ByteSource for &mut S {
    fn take(&mut self, n: usize) -> Result<&[u8], SourceError> {
        (**self).take(n)
    }

    fn skip(&mut self, n: u64) -> Result<(), SourceError> {
        (**self).skip(n)
    }
}

/// A source over bytes already in memory (a `Vec`, a `&[u8]`, an mmapped file): every
/// [`take`](ByteSource::take) is a sub-slice, nothing is copied.
#[derive(Debug, Clone)]
pub struct SliceSource<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> SliceSource<'a> {
    /// A source reading `data` from its start.
    pub fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    /// Bytes not yet taken.
    pub fn remaining(&self) -> &'a [u8] {
        self.data.get(self.pos..).unwrap_or_default()
    }

    /// Bytes taken so far.
    pub fn position(&self) -> usize {
        self.pos
    }
}

impl ByteSource for SliceSource<'_> {
    fn skip(&mut self, n: u64) -> Result<(), SourceError> {
        let rest = self.remaining().len() as u64;
        if n > rest {
            self.pos = self.data.len();
            return Err(SourceError::Eof { got: rest });
        }
        self.pos += n as usize;
        Ok(())
    }

    fn take(&mut self, n: usize) -> Result<&[u8], SourceError> {
        let rest = self.remaining();
        match rest.get(..n) {
            Some(out) => {
                self.pos += n;
                Ok(out)
            }
            None => {
                self.pos = self.data.len();
                Err(SourceError::Eof { got: rest.len() as u64 })
            }
        }
    }
}

/// Step of [`ByteSource::skip`]'s reads.
const SKIP_STEP: usize = 1 << 20;

/// What a [`ReadSource`] buffer too small for an item grows to first: only once that many of
/// the item's bytes arrived does it grow to the whole item (the record length limit, 128 MiB,
/// bounds that). A header that claims a huge body thus costs 64 KiB until the body's bytes
/// really arrive; after that, the rest is a fresh zeroed allocation, resident only as `read`
/// fills it. One step, not doubling: each new buffer's pages are faulted in afresh, and a page
/// fault is costly where page tables are the hypervisor's (a PV dom0).
const FIRST_STEP: usize = 64 << 10;

/// Where in the [`ReadSource`] buffer an item ends: on a multiple of this many bytes, once the
/// buffer has room. A PAGE_DATA record's pages end its body, so they are page-aligned in memory
/// and copies out of them (into guest memory) are aligned at both ends: `memcpy` then takes its
/// aligned path (on the nested test host's TCG-emulated CPU the misaligned one, SSSE3
/// `palignr`, was most of the helper's copy time).
const END_ALIGN: usize = 4096;

/// A source over any reader (file, pipe, socket) with one reused buffer.
///
/// The buffer grows to the largest item read so far (at most one record, plus 4 KiB) and is
/// then reused, so memory use is bounded by one record, not by the stream. An item that fits
/// with room to spare is placed to end on a 4 KiB boundary: a PAGE_DATA record's pages are then
/// page-aligned in memory.
#[derive(Debug)]
pub struct ReadSource<R> {
    inner: R,
    buf: Vec<u8>,
}

impl<R: Read> ReadSource<R> {
    /// A source reading from `inner`.
    pub fn new(inner: R) -> Self {
        Self { inner, buf: Vec::new() }
    }

    /// The underlying reader, positioned just after the last byte taken.
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// A reference to the underlying reader.
    pub fn get_ref(&self) -> &R {
        &self.inner
    }
}

/// The offset in `buf` at which an item of `n` bytes ends on an [`END_ALIGN`] boundary, if it
/// fits there; else 0.
fn aligned_start(buf: &[u8], n: usize) -> usize {
    let start = (END_ALIGN - (buf.as_ptr().addr().wrapping_add(n)) % END_ALIGN) % END_ALIGN;
    if start + n <= buf.len() { start } else { 0 }
}

impl<R> ReadSource<R> {
    /// Replaces the buffer by a fresh zeroed one for an item of `n` bytes, `got` of which
    /// arrived at `start`: `want` bytes ([`FIRST_STEP`]), or the whole item with room to end
    /// it aligned. Returns where the item starts in the new buffer.
    ///
    /// A fresh zeroed allocation of a large buffer comes from the kernel's zero pages (`calloc`
    /// of an `mmap`ed chunk): nothing is written to it, and its pages become resident only as
    /// `read` fills them. `Vec::resize` would write zeros over every new byte first (and move
    /// the old ones with `mremap`), which costs more than copying the bytes already read where
    /// `memset` is slow: a TCG-emulated CPU (the nested test host) runs `rep stosb` a byte at a
    /// time.
    fn grow(&mut self, want: usize, n: usize, start: usize, got: usize) -> usize {
        let fresh = if want == n { vec![0; n + END_ALIGN - 1] } else { vec![0; want] };
        let at = if want == n { aligned_start(&fresh, n) } else { 0 };
        let old = std::mem::replace(&mut self.buf, fresh);
        self.buf[at..at + got].copy_from_slice(&old[start..start + got]);
        at
    }
}

impl<R: Read> ByteSource for ReadSource<R> {
    fn take(&mut self, n: usize) -> Result<&[u8], SourceError> {
        let mut start = aligned_start(&self.buf, n);
        let mut got = 0;
        while got < n {
            if self.buf.len() <= start + got {
                // A first step, then (once its bytes arrived) the whole item.
                let want = if got < FIRST_STEP { n.min(FIRST_STEP) } else { n };
                start = self.grow(want, n, start, got);
            }
            let end = (start + n).min(self.buf.len());
            match self.inner.read(&mut self.buf[start + got..end]) {
                Ok(0) => return Err(SourceError::Eof { got: got as u64 }),
                Ok(k) => got += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(SourceError::Io(e)),
            }
        }
        Ok(&self.buf[start..start + n])
    }
}

/// A source over a file (or anything seekable with a known end): bytes are read through one
/// reused buffer, and [`skip`](ByteSource::skip) seeks, so skipped bytes are never read.
#[derive(Debug)]
pub struct SeekSource<R> {
    inner: ReadSource<R>,
    pos: u64,
    len: u64,
}

impl<R: Read + Seek> SeekSource<R> {
    /// A source reading `inner` from its current position to its end.
    pub fn new(mut inner: R) -> io::Result<Self> {
        let pos = inner.stream_position()?;
        let len = inner.seek(SeekFrom::End(0))?;
        inner.seek(SeekFrom::Start(pos))?;
        Ok(Self { inner: ReadSource::new(inner), pos, len })
    }
}

impl<R: Read + Seek> ByteSource for SeekSource<R> {
    fn take(&mut self, n: usize) -> Result<&[u8], SourceError> {
        let out = self.inner.take(n)?;
        self.pos += n as u64;
        Ok(out)
    }

    fn skip(&mut self, n: u64) -> Result<(), SourceError> {
        let rest = self.len.saturating_sub(self.pos);
        if n > rest {
            // As the other sources: the bytes there were are passed.
            self.inner.inner.seek(SeekFrom::Start(self.len)).map_err(SourceError::Io)?;
            self.pos = self.len;
            return Err(SourceError::Eof { got: rest });
        }
        let delta = i64::try_from(n).map_err(|_| SourceError::Eof { got: rest })?;
        self.inner.inner.seek(SeekFrom::Current(delta)).map_err(SourceError::Io)?;
        self.pos += n;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_source_takes_and_reports_eof() {
        let data = [1u8, 2, 3, 4, 5];
        let mut s = SliceSource::new(&data);
        assert_eq!(s.take(2).unwrap(), &[1, 2]);
        assert_eq!(s.take(0).unwrap(), &[] as &[u8]);
        assert!(matches!(s.take(4), Err(SourceError::Eof { got: 3 })));
    }

    /// A reader handing out at most `step` bytes (cycling through `steps`) per call.
    struct Chunked<'a> {
        data: &'a [u8],
        steps: Vec<usize>,
        call: usize,
    }

    impl Read for Chunked<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let step = self.steps[self.call % self.steps.len()].max(1);
            self.call += 1;
            let n = buf.len().min(self.data.len()).min(step);
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
        /// Whatever the item sizes (across the buffer's growth steps) and the reader's
        /// chunking, every item is the stream's next bytes.
        #[test]
        fn read_source_items_are_the_stream(
            sizes in proptest::collection::vec(
                proptest::prop_oneof![0usize..64, 4000usize..9000, (FIRST_STEP - 10)..(FIRST_STEP + 10), (1usize << 20)..(5 << 20)],
                1..6,
            ),
            steps in proptest::collection::vec(1usize..(3 << 20), 1..4),
        ) {
            let total: usize = sizes.iter().sum();
            let data: Vec<u8> = (0..total).map(|i| (i * 7 + i / 4093) as u8).collect();
            let mut s = ReadSource::new(Chunked { data: &data, steps, call: 0 });
            let mut at = 0;
            for n in sizes {
                proptest::prop_assert_eq!(s.take(n).unwrap(), &data[at..at + n]);
                at += n;
            }
        }
    }

    #[test]
    fn read_source_ends_items_aligned_once_it_has_room() {
        // Two PAGE_DATA-sized items of 1024 pages: the buffer grows for the first (which ends
        // aligned too: it is the buffer's last growth), the second reuses it.
        let n = 8 + 8 * 1024 + 4096 * 1024;
        let data: Vec<u8> = (0..2 * n + 100).map(|i| (i % 251) as u8).collect();
        let mut s = ReadSource::new(Chunked { data: &data, steps: vec![65536, 1 << 20, 3], call: 0 });
        for k in 0..2 {
            let item = s.take(n).unwrap();
            assert_eq!(item, &data[k * n..(k + 1) * n]);
            assert_eq!(item.as_ptr().addr().wrapping_add(n) % END_ALIGN, 0, "item {k} ends aligned");
        }
        // A small item after them fits with room, so it ends aligned as well.
        let item = s.take(100).unwrap();
        assert_eq!(item, &data[2 * n..2 * n + 100]);
        assert_eq!(item.as_ptr().addr().wrapping_add(100) % END_ALIGN, 0);
    }

    #[test]
    fn read_source_reassembles_short_reads() {
        struct Trickle<'a>(&'a [u8]);
        impl Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = buf.len().min(self.0.len()).min(3);
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let data: Vec<u8> = (0..=255).collect();
        let mut s = ReadSource::new(Trickle(&data));
        assert_eq!(s.take(100).unwrap(), &data[..100]);
        assert_eq!(s.take(150).unwrap(), &data[100..250]);
        assert!(matches!(s.take(10), Err(SourceError::Eof { got: 6 })));
    }

    /// The three sources over the bytes 0..=255.
    fn every_source(data: &[u8]) -> Vec<Box<dyn ByteSource + '_>> {
        vec![
            Box::new(SliceSource::new(data)),
            Box::new(SeekSource::new(io::Cursor::new(data.to_vec())).unwrap()),
            Box::new(ReadSource::new(data)),
        ]
    }

    #[test]
    fn skipping_sources_agree() {
        let data: Vec<u8> = (0..=255).collect();
        for mut s in every_source(&data) {
            assert_eq!(s.take(3).unwrap(), &[0, 1, 2]);
            s.skip(100).unwrap();
            assert_eq!(s.take(2).unwrap(), &[103, 104]);
            assert!(matches!(s.skip(200), Err(SourceError::Eof { got: 151 })));
            // A skip past the end leaves every source at its end.
            assert_eq!(s.skip_rest().unwrap(), 0);
        }
    }

    #[test]
    fn the_rest_of_every_source_is_counted() {
        let data: Vec<u8> = (0..=255).collect();
        for mut s in every_source(&data) {
            s.take(6).unwrap();
            assert_eq!(s.skip_rest().unwrap(), 250);
            assert_eq!(s.skip_rest().unwrap(), 0);
        }
    }

    #[test]
    fn read_source_does_not_allocate_claimed_length() {
        let mut s = ReadSource::new(&[0u8; 10][..]);
        assert!(matches!(s.take(0x7FFF_FFF8), Err(SourceError::Eof { got: 10 })));
        assert!(s.buf.len() <= FIRST_STEP);
    }
}
