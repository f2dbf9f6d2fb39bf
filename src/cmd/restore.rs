//! `xsr restore` (and `xsr receive`): a stream into a domain image directory.

use std::fs::File;
use std::path::Path;

use anyhow::{Context, Result};
use sr_format::{ByteSource, StreamReader};
use sr_memory::{FileMemory, GuestMemory, MemoryError};
use sr_restore::{Bound, RestoreError, RestoreOptions, Restored, Restorer};

use crate::image_dir::{AtomicDir, DomainImage, MEMORY_FILE, write_manifest};
use crate::input::Input;
use crate::output::OutputRules;
use crate::progress::bytes_bar;

/// Restores `input` (a mapped file or a reader) into a sparse raw image in the empty file
/// `image` (pfn p at p << page_shift) populating at most `max_memory` bytes of guest memory (and at most
/// `options.max_populated_bytes`), over a span of at most `options.max_span_bytes`. `verb`
/// ("restore", "extract") and `name` (the source) head the error message, which also says
/// which option raises a bound the stream hit.
pub fn restore_to_image(
    input: Input,
    verb: &str,
    name: &str,
    image: &File,
    mut options: RestoreOptions,
    max_memory: u64,
) -> Result<Restored<FileMemory>> {
    options.max_populated_bytes = options.max_populated_bytes.min(max_memory);
    let total = input.known_len().unwrap_or(0);
    let restored = match input {
        Input::Mapped(map) => {
            // A window of the map ahead of the reader is populated in one call per step (no
            // page faults), and pages behind it are released: page bodies are copied once,
            // map to image, and resident memory stays at a few records whatever the size.
            let reader = StreamReader::from_slice(map.bytes());
            run(reader, total, |offset| map.window(offset), image, options)
        }
        Input::Reader(r) => run(StreamReader::from_read(r), total, |_| {}, image, options),
    }
    .map_err(|e| {
        let hint = bound_hint(&e);
        anyhow::Error::new(e).context(format!("{verb} of {name} failed{hint}"))
    })?;
    if let Some(m) = &restored.memory {
        // Like cp, no fsync: the rename at the end is what makes a restore look complete.
        m.finish().context("cannot finish the memory image")?;
    }
    Ok(restored)
}

/// `e` with the output `out` named when the output is what failed (a full disk), so the
/// message says what could not be written.
pub(crate) fn name_output(e: anyhow::Error, out: &str) -> anyhow::Error {
    let destination = e.chain().any(|c| matches!(c.downcast_ref::<RestoreError>(), Some(RestoreError::Memory { .. })));
    match (destination, out) {
        (false, _) => e,
        (true, "-") => {
            e.context(format!("cannot write the image for standard output in {}", std::env::temp_dir().display()))
        }
        (true, _) => e.context(format!("cannot write {out}")),
    }
}

/// When `e` is a bound of the destination, which option raises it and the least value the
/// stream needs (it may need more further on); when a checkpointed stream broke after a
/// complete checkpoint, the option that restores it.
pub(crate) fn bound_hint(e: &RestoreError) -> String {
    if let RestoreError::BrokeAfterCheckpoint { checkpoints, .. } = e {
        return format!(" (--failover restores checkpoint {checkpoints})");
    }
    let RestoreError::BoundReached { bound, needed, page_shift, .. } = e else { return String::new() };
    let bytes = needed.saturating_mul(1 << (*page_shift).min(32));
    let option = match bound {
        Bound::Populated => "--max-memory",
        _ => "--max-span",
    };
    // What the stream needed when it stopped: a lower bound for the whole stream.
    format!(" (raise {option}: at least {} is needed)", crate::size::format_size_up(bytes))
}

fn run<S: ByteSource>(
    reader: StreamReader<S>,
    total: u64,
    mut consumed: impl FnMut(u64),
    image: &File,
    options: RestoreOptions,
) -> Result<Restored<FileMemory>, sr_restore::RestoreError> {
    let bar = bytes_bar(total, "restoring");
    let restored = Restorer::new(options.clone())
        .on_progress(|offset| {
            bar.set_position(offset);
            consumed(offset);
        })
        .restore(reader, |h| {
            // The image's bookkeeping (two bits per pfn, from the zeroing allocator) covers
            // the span allowed; the sparse file itself grows with the pages written.
            let shift = u32::from(h.page_shift.get());
            let span = (options.max_span_bytes >> shift).clamp(1, sr_memory::MAX_PFN_LIMIT);
            let file = image.try_clone().map_err(|source| MemoryError::Image { op: "dup", source })?;
            FileMemory::from_file(file, shift, span)
        });
    bar.finish_and_clear();
    restored
}

/// Restores `input` into `dir` (made by [`OutputRules::dir`]) and commits it: on success the
/// directory is in place when this returns; on failure it is removed.
pub fn restore_into(
    dir: AtomicDir,
    input: Input,
    name: &str,
    options: RestoreOptions,
    max_memory: u64,
) -> Result<Restored<FileMemory>> {
    let out = dir.final_path().display().to_string();
    let image = File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(dir.path().join(MEMORY_FILE))
        .with_context(|| format!("cannot create {out}/{MEMORY_FILE}"))?;
    let restored =
        restore_to_image(input, "restore", name, &image, options, max_memory).map_err(|e| name_output(e, &out))?;
    drop(image);
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
    write_manifest(dir.path(), &image).with_context(|| format!("cannot write {out}"))?;
    dir.commit()?;
    Ok(restored)
}

/// Restores the file `input` (`-` is standard input) into the directory `out`, written
/// atomically under `rules`. The directory is checked and created before the input is read.
pub fn restore(
    input: &Path,
    out: &Path,
    options: RestoreOptions,
    max_memory: u64,
    rules: &OutputRules,
) -> Result<Restored<FileMemory>> {
    let dir = rules.dir(out)?;
    let source = Input::open(input)?;
    let name = if input.as_os_str() == "-" { "standard input".to_string() } else { input.display().to_string() };
    restore_into(dir, source, &name, options, max_memory)
}

/// What `xsr restore` reports: the guest's pages (not the page bodies the stream carried,
/// which include VERIFY passes and earlier checkpoints), and every VERIFY mismatch by pfn.
#[derive(Debug, serde::Serialize)]
pub struct RestoreSummary {
    /// The output directory.
    pub out: std::path::PathBuf,
    /// Domain type name.
    pub domain_type: String,
    /// Guest pages populated in the result.
    pub pages: u64,
    /// Bytes of guest memory those pages hold.
    pub memory_bytes: u64,
    /// Page bodies read from the stream (each pass, each checkpoint, the VERIFY pass).
    pub page_bodies: u64,
    /// Stream bytes read.
    pub bytes: u64,
    /// Checkpoints completed.
    pub checkpoints: u64,
    /// Whether the result is the last complete checkpoint of a stream that broke.
    pub failed_over: bool,
    /// Pages compared after a VERIFY record.
    pub verified_pages: u64,
    /// Pages that differed after a VERIFY record.
    pub verify_mismatches: u64,
    /// The pfns that differed (the first [`sr_restore::MAX_MISMATCH_PFNS`]).
    pub mismatch_pfns: Vec<u64>,
    /// Warnings, "byte OFFSET: message".
    pub warnings: Vec<String>,
}

impl RestoreSummary {
    /// The summary of `restored`, written to `out`.
    pub fn new(restored: &Restored<FileMemory>, out: &Path) -> Self {
        let s = &restored.stats;
        let pages = restored.memory.as_ref().map_or(0, |m| m.populated().count_ones());
        RestoreSummary {
            out: out.to_path_buf(),
            domain_type: restored.state.domain_type.to_string(),
            pages,
            memory_bytes: pages << restored.state.page_shift,
            page_bodies: s.data_pages,
            bytes: s.bytes,
            checkpoints: s.checkpoints,
            failed_over: s.failed_over,
            verified_pages: s.verified_pages,
            verify_mismatches: s.verify_mismatches,
            mismatch_pfns: s.mismatch_pfns.clone(),
            warnings: restored.warnings.iter().map(|w| format!("byte {}: {}", w.offset, w.message)).collect(),
        }
    }

    /// Prints the summary as text.
    pub fn print_text(&self, o: &mut dyn std::io::Write) -> std::io::Result<()> {
        writeln!(
            o,
            "restored {} domain: {} pages ({} bytes of memory) from {} bytes into {}",
            self.domain_type,
            self.pages,
            self.memory_bytes,
            self.bytes,
            self.out.display()
        )?;
        if self.checkpoints > 0 {
            let how = if self.failed_over { " (the stream broke; restored the last one)" } else { "" };
            writeln!(o, "checkpoints: {}{how}", self.checkpoints)?;
        }
        if self.verified_pages > 0 {
            write!(o, "verify pass: {} pages compared, {} differed", self.verified_pages, self.verify_mismatches)?;
            if !self.mismatch_pfns.is_empty() {
                let pfns: Vec<String> = self.mismatch_pfns.iter().map(|p| format!("{p:#x}")).collect();
                write!(o, ": pfn {}", pfns.join(", "))?;
                let more = self.verify_mismatches.saturating_sub(self.mismatch_pfns.len() as u64);
                if more > 0 {
                    write!(o, " and {more} more")?;
                }
            }
            writeln!(o)?;
        }
        if self.page_bodies != self.pages {
            writeln!(o, "page bodies read: {} (every pass, checkpoint and VERIFY copy)", self.page_bodies)?;
        }
        for w in &self.warnings {
            writeln!(o, "warning: {w}")?;
        }
        Ok(())
    }
}
