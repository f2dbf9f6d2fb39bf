//! The output: a `Write` that counts what the destination accepted.

use std::io::{self, IoSlice, Write};

use sr_format::RecordWriter;

use crate::error::SaveError;

/// Counts the bytes the inner writer accepted.
///
/// [`RecordWriter::offset`] advances only when a whole item was written, so after a
/// failure inside a header it still names the item's start; the count here is exact, which
/// is what [`SaveError::Io`] reports.
#[derive(Debug)]
pub(crate) struct Counted<W> {
    inner: W,
    written: u64,
}

impl<W: Write> Counted<W> {
    pub fn new(inner: W) -> Self {
        Self { inner, written: 0 }
    }

    /// Bytes accepted by the inner writer so far.
    pub fn written(&self) -> u64 {
        self.written
    }
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let n = self.inner.write_vectored(bufs)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The stream writer of a save.
pub(crate) type Output<W> = RecordWriter<Counted<W>>;

/// A write error at the output's current position.
pub(crate) fn io_error<W: Write>(out: &Output<W>, source: io::Error) -> SaveError {
    SaveError::Io { offset: out.get_ref().written(), source }
}
