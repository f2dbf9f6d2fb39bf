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
            let step = n.min(GROW_STEP as u64) as usize;
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

/// Initial and growth step of the [`ReadSource`] buffer: memory grows only as bytes really
/// arrive, so a header that claims a huge body cannot make us allocate it up front.
const GROW_STEP: usize = 1 << 20;

/// A source over any reader (file, pipe, socket) with one reused buffer.
///
/// The buffer grows to the largest item read so far (at most one record) and is then reused,
/// so memory use is bounded by one record, not by the stream.
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

impl<R> ReadSource<R> {
    /// Replaces the buffer by a fresh zeroed one of `len` bytes that starts with the first
    /// `keep` bytes of the old one.
    ///
    /// A fresh zeroed allocation of a large buffer comes from the kernel's zero pages (`calloc`
    /// of an `mmap`ed chunk): nothing is written to it, and its pages become resident only as
    /// `read` fills them. `Vec::resize` would write zeros over every new byte first (and move
    /// the old ones with `mremap`), which costs more than copying the bytes already read where
    /// `memset` is slow: a TCG-emulated CPU (the nested test host) runs `rep stosb` a byte at a
    /// time.
    fn grow(&mut self, len: usize, keep: usize) {
        let mut fresh = vec![0; len];
        fresh[..keep].copy_from_slice(&self.buf[..keep]);
        self.buf = fresh;
    }
}

impl<R: Read> ByteSource for ReadSource<R> {
    fn take(&mut self, n: usize) -> Result<&[u8], SourceError> {
        let mut got = 0;
        while got < n {
            if self.buf.len() <= got {
                // Twice what arrived (at least a step); the whole item once that leaves less
                // than a step, so a 4 MiB PAGE_DATA record grows 1, 2, then 4 MiB and 8 KiB.
                let mut want = n.min(got.saturating_mul(2).max(GROW_STEP));
                if n - want < GROW_STEP {
                    want = n;
                }
                self.grow(want, got);
            }
            let end = n.min(self.buf.len());
            match self.inner.read(&mut self.buf[got..end]) {
                Ok(0) => return Err(SourceError::Eof { got: got as u64 }),
                Ok(k) => got += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(SourceError::Io(e)),
            }
        }
        Ok(&self.buf[..n])
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
        assert!(s.buf.len() <= GROW_STEP);
    }
}
