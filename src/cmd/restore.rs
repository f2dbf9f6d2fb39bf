//! `xsr restore` (and `xsr receive`): a stream into a domain image directory.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result};
use sr_format::{ByteSource, StreamReader};
use sr_memory::{FileMemory, GuestMemory};
use sr_restore::{RestoreOptions, Restored, Restorer};

use crate::image_dir::{AtomicDir, DomainImage, MEMORY_FILE, write_manifest};
use crate::input::Input;
use crate::progress::bytes_bar;

/// Restores `input` (a mapped file or a reader) into a sparse raw image at `image` (pfn p at
/// p << page_shift) holding at most `max_memory` bytes of guest memory. `name` names the
/// source in errors.
pub fn restore_to_image(
    input: Input,
    name: &str,
    image: &Path,
    options: RestoreOptions,
    max_memory: u64,
) -> Result<Restored<FileMemory>> {
    let total = input.known_len().unwrap_or(0);
    let restored = match input {
        Input::Mapped(map) => {
            // A window of the map ahead of the reader is populated in one call per step (no
            // page faults), and pages behind it are released: page bodies are copied once,
            // map to image, and resident memory stays at a few records whatever the size.
            let reader = StreamReader::from_slice(map.bytes());
            run(reader, total, |offset| map.window(offset), image, options, max_memory)
        }
        Input::Reader(r) => run(StreamReader::from_read(r), total, |_| {}, image, options, max_memory),
    }
    .map_err(|e| anyhow::Error::new(e).context(format!("restore of {name} failed")))?;
    if let Some(m) = &restored.memory {
        // Like cp, no fsync: the rename at the end is what makes a restore look complete.
        m.finish().context("cannot finish the memory image")?;
    }
    Ok(restored)
}

fn run<S: ByteSource>(
    reader: StreamReader<S>,
    total: u64,
    mut consumed: impl FnMut(u64),
    image: &Path,
    options: RestoreOptions,
    max_memory: u64,
) -> Result<Restored<FileMemory>, sr_restore::RestoreError> {
    let bar = bytes_bar(total, "restoring");
    let restored = Restorer::new(options)
        .on_progress(|offset| {
            bar.set_position(offset);
            consumed(offset);
        })
        .restore(reader, |h| {
            let shift = u32::from(h.page_shift.get());
            FileMemory::create(image, shift, (max_memory >> shift).max(1))
        });
    bar.finish_and_clear();
    restored
}

/// Restores `input` into the directory `out` (written atomically).
pub fn restore_input(
    input: Input,
    name: &str,
    out: &Path,
    options: RestoreOptions,
    max_memory: u64,
) -> Result<Restored<FileMemory>> {
    let dir = AtomicDir::create(out)?;
    let restored = restore_to_image(input, name, &dir.path().join(MEMORY_FILE), options, max_memory)?;
    let memory = restored.memory.as_ref().context("stream restored without memory")?;
    let populated: Vec<u64> = memory.populated().iter_ones().collect();
    let pages = populated.last().map_or(0, |p| p + 1);
    let image = DomainImage {
        state: restored.state.clone(),
        layer: restored.container.layer.name().to_string(),
        xl_config: restored.container.xl_config.clone(),
        libxl_legacy: restored.container.libxl_legacy,
        populated,
        pages,
    };
    write_manifest(dir.path(), &image)?;
    dir.commit()?;
    Ok(restored)
}

/// Restores a stream read from `reader` (a socket, a pipe) into the directory `out`.
pub fn restore_reader(
    reader: impl Read + Send + 'static,
    name: &str,
    out: &Path,
    options: RestoreOptions,
    max_memory: u64,
) -> Result<Restored<FileMemory>> {
    restore_input(Input::Reader(Box::new(reader)), name, out, options, max_memory)
}

/// Restores the file `input` (`-` is standard input) into the directory `out`.
pub fn restore(input: &Path, out: &Path, options: RestoreOptions, max_memory: u64) -> Result<Restored<FileMemory>> {
    let source = Input::open(input)?;
    restore_input(source, &input.display().to_string(), out, options, max_memory)
}
