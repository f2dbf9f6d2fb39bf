//! `xsr restore` (and `xsr receive`): a stream into a domain image directory.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result};
use sr_format::StreamReader;
use sr_memory::{FileMemory, GuestMemory};
use sr_restore::{RestoreOptions, Restored, Restorer};

use crate::image_dir::{AtomicDir, DomainImage, MEMORY_FILE, write_manifest};
use crate::input::Input;
use crate::progress::bytes_bar;

/// Opens `input` (`-` is standard input) for reading as a stream, with its length if known.
pub fn open_stream(input: &Path) -> Result<(Box<dyn Read + Send>, u64)> {
    let total = std::fs::metadata(input).map(|m| if m.is_file() { m.len() } else { 0 }).unwrap_or(0);
    match Input::open(input, false)? {
        Input::Reader(r) => Ok((r, total)),
        Input::Mapped(_) => unreachable!("opened without mapping"),
    }
}

/// Restores the stream `reader` into a sparse raw image at `image` (pfn p at p << page_shift)
/// holding at most `max_memory` bytes of guest memory. `total` (0 if unknown) sizes the
/// progress bar; `name` names the source in errors.
pub fn restore_to_image(
    reader: impl Read,
    total: u64,
    name: &str,
    image: &Path,
    options: RestoreOptions,
    max_memory: u64,
) -> Result<Restored<FileMemory>> {
    let bar = bytes_bar(total, "restoring");
    let restored = Restorer::new(options)
        .on_progress(|b| bar.set_position(b))
        .restore(StreamReader::from_read(reader), |h| {
            let shift = u32::from(h.page_shift.get());
            FileMemory::create(image, shift, (max_memory >> shift).max(1))
        })
        .map_err(|e| anyhow::Error::new(e).context(format!("restore of {name} failed")))?;
    bar.finish_and_clear();
    if let Some(m) = &restored.memory {
        m.finish().context("cannot finish the memory image")?;
        m.sync().context("cannot sync the memory image")?;
    }
    Ok(restored)
}

/// Restores the stream `reader` into the directory `out` (written atomically).
pub fn restore_reader(
    reader: impl Read,
    total: u64,
    name: &str,
    out: &Path,
    options: RestoreOptions,
    max_memory: u64,
) -> Result<Restored<FileMemory>> {
    let dir = AtomicDir::create(out)?;
    let restored = restore_to_image(reader, total, name, &dir.path().join(MEMORY_FILE), options, max_memory)?;
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

/// Restores the file `input` (`-` is standard input) into the directory `out`.
pub fn restore(input: &Path, out: &Path, options: RestoreOptions, max_memory: u64) -> Result<Restored<FileMemory>> {
    let (reader, total) = open_stream(input)?;
    restore_reader(reader, total, &input.display().to_string(), out, options, max_memory)
}
