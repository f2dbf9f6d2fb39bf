//! Opening a stream: a file (mapped when it is a regular file) or standard input.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use anyhow::{Context, Result};

use sr_format::{ReadSource, SeekSource};

use crate::mapped::MappedFile;

/// Where a stream comes from.
#[allow(missing_debug_implementations)]
pub enum Input {
    /// A regular file mapped read-only: parsing borrows from the map, so page bodies are
    /// copied at most once (and not even read when nothing looks at them).
    Mapped(MappedFile),
    /// Anything else (a pipe, a socket, standard input): read through one reused buffer.
    Reader(Box<dyn Read + Send>),
}

/// A stream opened for scanning (verify, inspect): headers and pfn words are read, page
/// bodies skipped, with seeks where the input is a regular file.
#[allow(missing_debug_implementations)]
pub enum Scan {
    /// A regular file: skipped bytes are never read.
    File(SeekSource<File>),
    /// A pipe or standard input: skipped bytes are read and dropped.
    Stream(ReadSource<Box<dyn Read + Send>>),
}

impl Scan {
    /// Opens `path` (`-` for standard input).
    pub fn open(path: &Path) -> Result<Scan> {
        if path.as_os_str() == "-" {
            return Ok(Scan::Stream(ReadSource::new(Box::new(io::stdin()))));
        }
        let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let meta = file.metadata().with_context(|| format!("cannot stat {}", path.display()))?;
        if meta.is_file() {
            let src = SeekSource::new(file).with_context(|| format!("cannot seek in {}", path.display()))?;
            return Ok(Scan::File(src));
        }
        Ok(Scan::Stream(ReadSource::new(Box::new(file))))
    }
}

impl Input {
    /// Opens `path`, `-` meaning standard input; a regular file is mapped.
    pub fn open(path: &Path) -> Result<Input> {
        if path.as_os_str() == "-" {
            return Ok(Input::Reader(Box::new(io::stdin())));
        }
        let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let meta = file.metadata().with_context(|| format!("cannot stat {}", path.display()))?;
        if meta.is_file() {
            // An empty file cannot be mapped; it reads as the empty stream it is.
            return Ok(match MappedFile::map(file, path)? {
                Some(mapped) => Input::Mapped(mapped),
                None => Input::Reader(Box::new(io::empty())),
            });
        }
        Ok(Input::Reader(Box::new(file)))
    }

    /// The stream's length, when known.
    pub fn known_len(&self) -> Option<u64> {
        match self {
            Input::Mapped(m) => Some(m.bytes().len() as u64),
            Input::Reader(_) => None,
        }
    }
}
