//! How the save helper's restore reads the stream descriptor libxl hands it.
//!
//! Xen's streams have many small records (an HVM guest's gfn holes are about a thousand
//! PAGE_DATA records of 8 KiB each, the gaps below 4 GiB), and a reader that takes exactly
//! each item makes two `read(2)` calls per record, each costly where system calls are
//! emulated (a PV dom0 on the nested test host). A regular file is therefore read through a
//! read-ahead buffer; since libxl reads on from the same file description once the helper is
//! done (its own records after libxc's END), [`StreamFd`] gives back what it read ahead when
//! dropped, by seeking the shared offset to just after the last byte taken, as if it had
//! read exactly. A pipe or socket cannot be sought: it is read exactly, nothing past END.

use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::time::{Duration, Instant};

/// Read-ahead of a regular file: large enough for runs of small records, and a read of at
/// least this size (a 4 MiB PAGE_DATA record) goes straight into the caller's buffer.
const READ_AHEAD: usize = 256 << 10;

/// `read(2)` calls made, and (when timed) the time spent in them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadStats {
    /// Calls made on the descriptor.
    pub calls: u64,
    /// Time spent in them, when timing was asked for (each clock reading is a system call of
    /// its own in a PV dom0: timing every read doubles their cost there).
    pub time: Option<Duration>,
}

/// Counts (and optionally times) the calls made on `R`.
#[derive(Debug)]
struct Counted<'s, R> {
    inner: R,
    stats: &'s std::cell::Cell<ReadStats>,
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut s = self.stats.get();
        s.calls += 1;
        let r = match s.time {
            Some(spent) => {
                let t = Instant::now();
                let r = self.inner.read(buf);
                s.time = Some(spent + t.elapsed());
                r
            }
            None => self.inner.read(buf),
        };
        self.stats.set(s);
        r
    }
}

impl<R: Seek> Seek for Counted<'_, R> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.inner.seek(pos)
    }
}

/// The stream descriptor as a reader: buffered and given back on drop when `R` is a regular
/// file (`seekable`), exact otherwise.
#[derive(Debug)]
pub struct StreamFd<'s, R: Read + Seek> {
    inner: Inner<'s, R>,
}

#[derive(Debug)]
enum Inner<'s, R: Read + Seek> {
    Exact(Counted<'s, R>),
    Ahead(BufReader<Counted<'s, R>>),
}

impl<'s, R: Read + Seek> StreamFd<'s, R> {
    /// A reader of `inner`, read ahead when `seekable`; its calls counted in `stats` (timed if
    /// `stats` starts with `time: Some`).
    pub fn new(inner: R, seekable: bool, stats: &'s std::cell::Cell<ReadStats>) -> Self {
        let counted = Counted { inner, stats };
        let inner =
            if seekable { Inner::Ahead(BufReader::with_capacity(READ_AHEAD, counted)) } else { Inner::Exact(counted) };
        Self { inner }
    }
}

impl<R: Read + Seek> Read for StreamFd<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.inner {
            Inner::Exact(r) => r.read(buf),
            Inner::Ahead(r) => r.read(buf),
        }
    }
}

impl<R: Read + Seek> Drop for StreamFd<'_, R> {
    fn drop(&mut self) {
        if let Inner::Ahead(r) = &mut self.inner
            && !r.buffer().is_empty()
        {
            // Back to the first byte not taken: BufReader's relative seek subtracts what it
            // holds and drops it (its `stream_position` would only compute the position, and
            // leave the file's offset where it is). A failure leaves libxl's offset past END,
            // and its next read then fails with a record it does not expect: nothing is lost
            // silently.
            let back = r.buffer().len();
            #[allow(clippy::seek_from_current)]
            if let Err(e) = r.seek(SeekFrom::Current(0)) {
                eprintln!("xsr: cannot give back {back} bytes read ahead of the stream: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::io::Write;

    /// A libxl-like file: a libxc stream (its END at `end`) followed by libxl's own bytes.
    fn file_with_tail(stream: &[u8], tail: &[u8]) -> std::fs::File {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(b"xl header 16 by.").unwrap();
        f.write_all(stream).unwrap();
        f.write_all(tail).unwrap();
        f.seek(SeekFrom::Start(16)).unwrap();
        f
    }

    #[test]
    fn a_regular_file_is_read_ahead_and_given_back_exactly() {
        let stream: Vec<u8> = (0..700_000u32).map(|i| (i % 253) as u8).collect();
        let f = file_with_tail(&stream, b"LIBXL TAIL");
        let stats = Cell::new(ReadStats::default());
        {
            let mut r = StreamFd::new(&f, true, &stats);
            // Many small items, then one large one, then small ones up to the end.
            let mut got = Vec::new();
            for n in [8usize, 16, 8, 8192].iter().cycle().take(40).chain([400_000usize, 8, 8].iter()) {
                let mut b = vec![0; *n];
                r.read_exact(&mut b).unwrap();
                got.extend_from_slice(&b);
            }
            let rest = stream.len() - got.len();
            let mut b = vec![0; rest];
            r.read_exact(&mut b).unwrap();
            got.extend_from_slice(&b);
            assert_eq!(got, stream);
        }
        // The shared offset is just after the stream: libxl reads its tail next.
        let mut tail = String::new();
        (&f).read_to_string(&mut tail).unwrap();
        assert_eq!(tail, "LIBXL TAIL");
        let s = stats.get();
        assert!(s.calls < 20, "{} read calls for ~100 items", s.calls);
        assert_eq!(s.time, None);
    }

    #[test]
    fn a_stream_left_midway_gives_back_what_was_not_taken() {
        let stream = vec![7u8; 5000];
        let f = file_with_tail(&stream, b"TAIL");
        let stats = Cell::new(ReadStats { calls: 0, time: Some(Duration::ZERO) });
        {
            let mut r = StreamFd::new(&f, true, &stats);
            let mut b = [0u8; 100];
            r.read_exact(&mut b).unwrap();
        }
        assert_eq!((&f).stream_position().unwrap(), 16 + 100);
        assert!(stats.get().time.is_some());
    }

    #[test]
    fn an_exact_reader_never_reads_ahead() {
        let stream = vec![1u8; 3000];
        let f = file_with_tail(&stream, b"TAIL");
        let stats = Cell::new(ReadStats::default());
        {
            let mut r = StreamFd::new(&f, false, &stats);
            let mut b = [0u8; 10];
            r.read_exact(&mut b).unwrap();
            assert_eq!((&f).stream_position().unwrap(), 26);
        }
        assert_eq!(stats.get().calls, 1);
    }
}
