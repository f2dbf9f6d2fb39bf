//! Opening a stream: a file (mapped when it is a regular file) or standard input, compressed
//! or not.
//!
//! A compressed input (xz, zstd or gzip, recognised by its magic bytes through
//! [`sr_format::Compression::detect`], never by its name) is decompressed on the fly for the
//! commands that read a stream front to back (inspect, verify, restore, extract), and into an
//! unlinked temporary file for those that need random access ([`Seekable`]: read, grep,
//! diff).

use std::fs::File;
use std::io::{self, Cursor, Read, Seek};
use std::path::Path;

use anyhow::{Context, Result};

use sr_format::{COMPRESSION_MAGIC_LEN, Compression, ReadSource, SeekSource};

use crate::mapped::MappedFile;

/// Where a stream comes from.
#[allow(missing_debug_implementations)]
pub enum Input {
    /// A regular file mapped read-only: parsing borrows from the map, so page bodies are
    /// copied at most once (and not even read when nothing looks at them).
    Mapped(MappedFile),
    /// Anything else (a pipe, a socket, standard input, a decompressor): read through one
    /// reused buffer.
    Reader(Box<dyn Read + Send>),
}

/// A stream opened for scanning (verify, inspect): headers and pfn words are read, page
/// bodies skipped, with seeks where the input is a regular file.
#[allow(missing_debug_implementations)]
pub enum Scan {
    /// A regular file: skipped bytes are never read.
    File(SeekSource<File>),
    /// A pipe, standard input or a decompressor: skipped bytes are read and dropped.
    Stream(ReadSource<Box<dyn Read + Send>>),
}

/// Reads the first `len` bytes of `r` (fewer when it ends first).
pub(crate) fn read_head(r: &mut impl Read, len: usize) -> io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(len);
    r.by_ref().take(len as u64).read_to_end(&mut head)?;
    Ok(head)
}

/// The first bytes of the regular file `file`, read without moving its position.
fn file_head(file: &File) -> io::Result<Vec<u8>> {
    let mut head = vec![0u8; COMPRESSION_MAGIC_LEN];
    let mut got = 0;
    while got < head.len() {
        match std::os::unix::fs::FileExt::read_at(file, &mut head[got..], got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    head.truncate(got);
    Ok(head)
}

/// A decompressing reader over `inner` (concatenated members and frames are read through, as
/// `xz -d`, `zstd -d` and `gzip -d` do).
pub fn decompressor(kind: Compression, inner: Box<dyn Read + Send>) -> Result<Box<dyn Read + Send>> {
    Ok(match kind {
        Compression::Xz => Box::new(xz2::read::XzDecoder::new_multi_decoder(inner)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(inner).context("cannot start zstd")?),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(inner)),
        _ => anyhow::bail!("{} input is not supported", kind.name()),
    })
}

/// Labels decompression errors with the format and the file.
struct Labelled {
    inner: Box<dyn Read + Send>,
    what: String,
}

impl Read for Labelled {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", self.what)))
    }
}

/// `path` opened as a byte stream: the file itself (an uncompressed regular file), or a
/// reader that yields the stream (standard input, pipes, decompression).
enum Opened {
    RegularFile(File),
    Reader(Box<dyn Read + Send>),
}

/// Opens `path` (`-` for standard input) and puts a decompressor in front of it if its first
/// bytes say it is compressed.
fn open_any(path: &Path) -> Result<(Opened, Option<Compression>)> {
    let mut reader: Box<dyn Read + Send> = if path.as_os_str() == "-" {
        crate::pipe::widen(io::stdin());
        Box::new(io::stdin())
    } else {
        let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let meta = file.metadata().with_context(|| format!("cannot stat {}", path.display()))?;
        if meta.is_file() {
            let head = file_head(&file).with_context(|| format!("cannot read {}", path.display()))?;
            if Compression::detect(&head).is_none() {
                return Ok((Opened::RegularFile(file), None));
            }
        }
        Box::new(file)
    };
    let head =
        read_head(&mut reader, COMPRESSION_MAGIC_LEN).with_context(|| format!("cannot read {}", path.display()))?;
    let kind = Compression::detect(&head);
    let whole: Box<dyn Read + Send> = Box::new(Cursor::new(head).chain(reader));
    let reader: Box<dyn Read + Send> = match kind {
        None => whole,
        Some(kind) => Box::new(Labelled {
            inner: decompressor(kind, whole)?,
            what: format!("{} ({} decompression)", path.display(), kind.name()),
        }),
    };
    Ok((Opened::Reader(reader), kind))
}

impl Scan {
    /// Opens `path` (`-` for standard input), decompressing if needed.
    pub fn open(path: &Path) -> Result<Scan> {
        Ok(Self::open_detecting(path)?.0)
    }

    /// As [`open`](Self::open), also saying which compression the input had.
    pub fn open_detecting(path: &Path) -> Result<(Scan, Option<Compression>)> {
        let (opened, compression) = open_any(path)?;
        let scan = match opened {
            Opened::RegularFile(file) => {
                let src = SeekSource::new(file).with_context(|| format!("cannot seek in {}", path.display()))?;
                Scan::File(src)
            }
            Opened::Reader(r) => Scan::Stream(ReadSource::new(r)),
        };
        Ok((scan, compression))
    }
}

impl Input {
    /// Opens `path`, `-` meaning standard input; an uncompressed regular file is mapped, a
    /// compressed one decompressed as it is read.
    pub fn open(path: &Path) -> Result<Input> {
        match open_any(path)?.0 {
            // An empty file cannot be mapped; it reads as the empty stream it is.
            Opened::RegularFile(file) => Ok(match MappedFile::map(file, path)? {
                Some(mapped) => Input::Mapped(mapped),
                None => Input::Reader(Box::new(io::empty())),
            }),
            Opened::Reader(r) => Ok(Input::Reader(r)),
        }
    }

    /// The stream's length, when known.
    pub fn known_len(&self) -> Option<u64> {
        match self {
            Input::Mapped(m) => Some(m.bytes().len() as u64),
            Input::Reader(_) => None,
        }
    }
}

/// A stream as a seekable file, for the commands that read guest memory at random (read,
/// grep, diff): an uncompressed regular file is used as it is; a compressed file, standard
/// input or a pipe is first copied (decompressed) into an unlinked temporary file in
/// `$TMPDIR`, which disappears when this value is dropped or the process dies.
#[derive(Debug)]
pub struct Seekable {
    /// The file, positioned at its start.
    pub file: File,
    /// How the stream was stored: `None` for a plain file used in place.
    pub spooled: Option<Spooled>,
}

/// What [`Seekable::open`] had to copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spooled {
    /// The compression, if the input was compressed.
    pub compression: Option<Compression>,
    /// Bytes of stream written to the temporary file.
    pub bytes: u64,
}

impl Seekable {
    /// Opens `path` (`-` for standard input) for random access.
    pub fn open(path: &Path) -> Result<Seekable> {
        match open_any(path)? {
            (Opened::RegularFile(file), _) => Ok(Seekable { file, spooled: None }),
            (Opened::Reader(mut r), compression) => {
                let mut file = tempfile::tempfile().context("cannot create a temporary file for the stream")?;
                let bytes = io::copy(&mut r, &mut file)
                    .with_context(|| format!("cannot copy {} into a temporary file", path.display()))?;
                file.rewind()?;
                Ok(Seekable { file, spooled: Some(Spooled { compression, bytes }) })
            }
        }
    }
}

/// A reader of `file` from its first byte, page bodies seeked past (a clone of the
/// descriptor: every pass starts anew).
pub fn scan_file(file: &File, name: &str) -> Result<sr_format::StreamReader<SeekSource<File>>> {
    let mut f = file.try_clone()?;
    f.seek(io::SeekFrom::Start(0)).with_context(|| format!("cannot seek in {name}"))?;
    let src = SeekSource::new(f).with_context(|| format!("cannot seek in {name}"))?;
    Ok(sr_format::StreamReader::new(src).skip_page_bodies(true))
}

/// Checks `file`'s stream with the restore engine's verification (every rule a restore
/// applies that needs no destination): once without page bodies, and for x86 PV, whose
/// page-table entries Xen checks as they arrive, once more reading the page tables' bodies.
/// The outer error is I/O on `file`; the inner one the stream's. Returns the first pass's
/// outcome (the domain's state).
pub fn verify_file(
    file: &File,
    name: &str,
    options: sr_restore::RestoreOptions,
) -> Result<std::result::Result<sr_restore::Restored<sr_restore::NoMemory>, sr_restore::RestoreError>> {
    let verified = match sr_restore::Restorer::new(options.clone()).verify(scan_file(file, name)?) {
        Ok(v) => v,
        Err(e) => return Ok(Err(e)),
    };
    if verified.skipped.page_tables > 0
        && let Err(e) = sr_restore::Restorer::new(options).verify(scan_file(file, name)?.skip_page_bodies(false))
    {
        return Ok(Err(e));
    }
    Ok(Ok(verified))
}

/// Opens `path` as a [`sr_image::GuestImage`] for `read`, `grep` and `diff`: the stream is
/// verified first as a restore would check it (a stream Xen would refuse, such as one with an
/// unknown mandatory record, is an error, not an image with pages missing), then indexed in
/// one pass (page bodies seeked past) and read with `pread`. A compressed file or a pipe is
/// spooled first (see [`Seekable`]).
pub fn open_image(path: &Path) -> Result<sr_image::GuestImage<File>> {
    let Seekable { file, .. } = Seekable::open(path)?;
    let name = path.display().to_string();
    let options = sr_restore::RestoreOptions::default();
    verify_file(&file, &name, options)?.with_context(|| format!("{name} is not a valid stream"))?;
    sr_image::GuestImage::from_file(file).with_context(|| format!("cannot index {name}"))
}
