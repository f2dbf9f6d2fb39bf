//! Opening a stream: a file (mapped when it is a regular file) or standard input.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use anyhow::{Context, Result};

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

impl Input {
    /// Opens `path`, `-` meaning standard input. With `map`, regular files are mapped.
    pub fn open(path: &Path, map: bool) -> Result<Input> {
        if path.as_os_str() == "-" {
            return Ok(Input::Reader(Box::new(io::stdin())));
        }
        let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let meta = file.metadata().with_context(|| format!("cannot stat {}", path.display()))?;
        if map && meta.is_file() && meta.len() > 0 {
            if let Some(mapped) = MappedFile::map(file, path)? {
                return Ok(Input::Mapped(mapped));
            }
            // Unreachable (the file is not empty), but a plain read is always correct.
            let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
            return Ok(Input::Reader(Box::new(file)));
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
