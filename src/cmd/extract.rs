//! `xsr extract`: guest memory as a raw sparse image or an ELF64 core.

use std::fs::{File, OpenOptions};
use std::path::Path;

use anyhow::{Context, Result};
use sr_format::DomainType;
use sr_memory::GuestMemory;
use sr_restore::RestoreOptions;

use crate::cmd::restore::restore_to_image;
use crate::elf::{EM_AARCH64, EM_X86_64, write_core};
use crate::image_dir::{AtomicFile, runs};
use crate::input::Input;

/// Output format of `extract`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ExtractFormat {
    /// Sparse raw image: pfn p at byte p << page_shift.
    Raw,
    /// ELF64 core with one PT_LOAD per run of populated pfns.
    Elf,
}

/// What was extracted.
#[derive(Debug, serde::Serialize)]
pub struct Extracted {
    /// Output bytes.
    pub bytes: u64,
    /// Populated pages.
    pub pages: u64,
    /// Runs of populated pfns.
    pub runs: usize,
}

/// Extracts the memory of `input` into `out`.
pub fn extract(
    input: &Path,
    out: &Path,
    format: ExtractFormat,
    options: RestoreOptions,
    max_memory: u64,
) -> Result<Extracted> {
    let dest = AtomicFile::new(out)?;
    let source = Input::open(input)?;
    let name = input.display().to_string();
    match format {
        ExtractFormat::Raw => {
            let restored = restore_to_image(source, "extract", &name, dest.path(), options, max_memory)?;
            let memory = restored.memory.context("no memory restored")?;
            let populated = memory.populated();
            let bytes = std::fs::metadata(dest.path())?.len();
            let pages = populated.count_ones();
            let runs = runs(populated.iter_ones()).len();
            dest.commit()?;
            Ok(Extracted { bytes, pages, runs })
        }
        ExtractFormat::Elf => {
            let raw = AtomicFile::new(&out.with_extension("raw-tmp"))?;
            let restored = restore_to_image(source, "extract", &name, raw.path(), options, max_memory)?;
            let memory = restored.memory.context("no memory restored")?;
            let populated = memory.populated();
            let runs = runs(populated.iter_ones());
            let machine = if restored.state.domain_type == DomainType::ARM { EM_AARCH64 } else { EM_X86_64 };
            let image = File::open(raw.path()).context("cannot reopen the raw image")?;
            let mut core = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(dest.path())
                .with_context(|| format!("cannot create {}", dest.path().display()))?;
            let bytes = write_core(&mut core, &image, &runs, u32::from(restored.state.page_shift), machine)
                .context("cannot write the ELF core")?;
            core.sync_all()?;
            dest.commit()?;
            Ok(Extracted { bytes, pages: populated.count_ones(), runs: runs.len() })
        }
    }
}
