//! `xsr extract`: guest memory as a raw sparse image, an ELF64 core with the vcpus'
//! registers, or LiME.
//!
//! A regular-file input is extracted in one pass over its page bodies: the stream is
//! validated as a restore would validate it (the restore engine's verify, with the same pfn
//! bound a restore into `--max-memory` has), a pfn -> page-body index is built
//! (`sr_image::PageIndex`, headers and pfn words only), and the output is laid out from the
//! index and filled by kernel copies from the input straight to each page's final offset
//! (`sr_dump`). Standard input and pipes cannot be seeked: they are restored into a
//! temporary raw image beside the output first, then written from it.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom};
use std::path::Path;

use anyhow::{Context, Result, bail};
use sr_dump::{CoreInput, Cpus, FileExtents, Machine, PageBody, PageSource, RawImageSource};
use sr_format::state::DomainState;
use sr_format::{DomainType, SeekSource, StreamReader};
use sr_image::{PageIndex, PageLocation};
use sr_memory::GuestMemory;
use sr_restore::{RestoreOptions, Restorer};

use crate::cmd::restore::restore_to_image;
use crate::image_dir::AtomicFile;
use crate::input::Input;

/// Output format of `extract`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ExtractFormat {
    /// Sparse raw image: pfn p at byte p << page_shift.
    Raw,
    /// ELF64 core: NT_PRSTATUS and QEMU notes per vcpu, one PT_LOAD per run of populated pfns.
    Elf,
    /// LiME: one range per run of populated pfns.
    Lime,
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
    /// vcpus whose registers are in the output (ELF only).
    pub vcpus: usize,
    /// True when the output was written in one pass from the input (no temporary image).
    pub one_pass: bool,
    /// Why the registers are missing, when they are.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

/// Extracts the memory of `input` into `out`.
pub fn extract(
    input: &Path,
    out: &Path,
    format: ExtractFormat,
    options: RestoreOptions,
    max_memory: u64,
) -> Result<Extracted> {
    let name = input.display().to_string();
    if input.as_os_str() != "-" {
        let file = File::open(input).with_context(|| format!("cannot open {name}"))?;
        if file.metadata().with_context(|| format!("cannot stat {name}"))?.is_file() {
            // A compressed file is decompressed into an unlinked temporary file first.
            let seekable = crate::input::Seekable::open(input)?;
            return one_pass(seekable.file, &name, out, format, options, max_memory);
        }
    }
    via_restore(Input::open(input)?, &name, out, format, options, max_memory)
}

fn machine_of(state: &DomainState) -> Machine {
    if state.domain_type == DomainType::ARM { Machine::Aarch64 } else { Machine::X86_64 }
}

/// The registers of `state`, or none and the reason.
fn cpus_of(state: &DomainState) -> (Cpus, Option<String>) {
    match Cpus::from_state(state) {
        Ok(c) => (c, None),
        Err(e) => (Cpus::None, Some(format!("no registers in the core: HVM_CONTEXT: {e}"))),
    }
}

/// Creates the output under its temporary name, writes it and renames it into place.
pub(crate) fn write_output(
    out: &Path,
    format: ExtractFormat,
    input: &CoreInput,
    pages: &mut dyn PageSource,
) -> Result<u64> {
    let dest = AtomicFile::new(out)?;
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(dest.path())
        .with_context(|| format!("cannot create {}", dest.path().display()))?;
    let bytes = match format {
        ExtractFormat::Raw => sr_dump::write_raw(&file, input, pages),
        ExtractFormat::Elf => sr_dump::write_elf(&file, input, pages),
        ExtractFormat::Lime => sr_dump::write_lime(&file, input, pages),
    }
    .with_context(|| format!("cannot write {}", out.display()))?;
    drop(file);
    dest.commit()?;
    Ok(bytes)
}

fn one_pass(
    file: File,
    name: &str,
    out: &Path,
    format: ExtractFormat,
    mut options: RestoreOptions,
    max_memory: u64,
) -> Result<Extracted> {
    // Clones share the file position: each pass starts from byte 0.
    let scan = |f: &File| -> Result<StreamReader<SeekSource<File>>> {
        let mut f = f.try_clone()?;
        f.seek(SeekFrom::Start(0)).with_context(|| format!("cannot seek in {name}"))?;
        let src = SeekSource::new(f).with_context(|| format!("cannot seek in {name}"))?;
        Ok(StreamReader::new(src).skip_page_bodies(true))
    };
    // The restore engine's verify first: what we write comes from a stream that validates,
    // with the pfn bound a restore into --max-memory would have.
    let shift = {
        let mut r = scan(&file)?;
        loop {
            match r.next_item().with_context(|| format!("restore of {name} failed"))? {
                Some(sr_format::Item::DomainHeader { header, .. }) => break u32::from(header.page_shift.get()),
                Some(_) => {}
                None => bail!("restore of {name} failed: no domain header"),
            }
        }
    };
    options.pfn_limit = (max_memory >> shift.min(63)).max(1);
    let verified = Restorer::new(options).verify(scan(&file)?).with_context(|| format!("restore of {name} failed"))?;
    let index = PageIndex::build(scan(&file)?).with_context(|| format!("cannot index {name}"))?;
    let mut pages_iter = index.pages().peekable();
    let input = CoreInput {
        page_shift: index.page_shift(),
        runs: CoreInput::runs_of(index.pages().map(|p| p.pfn)),
        machine: machine_of(&verified.state),
        cpus: Cpus::None,
    };
    let (cpus, warning) = cpus_of(&verified.state);
    let input = CoreInput { cpus: if format == ExtractFormat::Elf { cpus } else { Cpus::None }, ..input };
    // Runs are copied in pfn order, so the index is walked once alongside.
    let mut source = FileExtents::new(&file, |pfn| {
        while pages_iter.next_if(|p| p.pfn < pfn).is_some() {}
        let p = pages_iter.next_if(|p| p.pfn == pfn)?;
        Some(match p.location {
            PageLocation::Data(offset) => PageBody::At(offset),
            PageLocation::Zero => PageBody::Zero,
        })
    });
    let bytes = write_output(out, format, &input, &mut source)?;
    Ok(Extracted {
        bytes,
        pages: input.pages(),
        runs: input.runs.len(),
        vcpus: input.cpus.len(),
        one_pass: true,
        warning: if format == ExtractFormat::Elf { warning } else { None },
    })
}

fn via_restore(
    source: Input,
    name: &str,
    out: &Path,
    format: ExtractFormat,
    options: RestoreOptions,
    max_memory: u64,
) -> Result<Extracted> {
    if format == ExtractFormat::Raw {
        // The restore's own image is the raw output.
        let dest = AtomicFile::new(out)?;
        let restored = restore_to_image(source, name, dest.path(), options, max_memory)?;
        let memory = restored.memory.context("no memory restored")?;
        let populated = memory.populated();
        let bytes = std::fs::metadata(dest.path())?.len();
        let runs = CoreInput::runs_of(populated.iter_ones()).len();
        dest.commit()?;
        return Ok(Extracted { bytes, pages: populated.count_ones(), runs, vcpus: 0, one_pass: false, warning: None });
    }
    let raw = AtomicFile::new(&out.with_extension("raw-tmp"))?;
    let restored = restore_to_image(source, name, raw.path(), options, max_memory)?;
    let memory = restored.memory.context("no memory restored")?;
    let (cpus, warning) = cpus_of(&restored.state);
    let input = CoreInput {
        page_shift: u32::from(restored.state.page_shift),
        runs: CoreInput::runs_of(memory.populated().iter_ones()),
        machine: machine_of(&restored.state),
        cpus: if format == ExtractFormat::Elf { cpus } else { Cpus::None },
    };
    let image = File::open(raw.path()).context("cannot reopen the raw image")?;
    let bytes = write_output(out, format, &input, &mut RawImageSource::new(&image))?;
    Ok(Extracted {
        bytes,
        pages: input.pages(),
        runs: input.runs.len(),
        vcpus: input.cpus.len(),
        one_pass: false,
        warning: if format == ExtractFormat::Elf { warning } else { None },
    })
}
