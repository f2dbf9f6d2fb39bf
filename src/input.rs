//! Opening a stream: a file (mapped when it is a regular file) or standard input.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use anyhow::{Context, Result};
use memmap2::Mmap;

/// Where a stream comes from.
#[allow(missing_debug_implementations)]
pub enum Input {
    /// A regular file mapped read-only: parsing borrows from the map, page bodies are never
    /// copied (nor read, unless something looks at them).
    Mapped(Mmap),
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
            // SAFETY: the map is read-only and private to this process. If another process
            // truncates the file while we read it, accesses past the new end raise SIGBUS;
            // that is the documented limit of reading a save file that is being rewritten,
            // and no Rust reference outlives a concurrent modification of bytes we parse
            // (the parser copies every value it keeps).
            #[allow(unsafe_code)]
            let map = unsafe { Mmap::map(&file) }.with_context(|| format!("cannot map {}", path.display()))?;
            let _ = map.advise(memmap2::Advice::Sequential);
            return Ok(Input::Mapped(map));
        }
        Ok(Input::Reader(Box::new(file)))
    }
}
