//! `xsr extract`: guest memory as a raw sparse image, an ELF64 core with the vcpus'
//! registers, or LiME.
//!
//! A regular-file input is extracted in one pass over its page bodies: the stream is
//! validated as a restore would validate it (the restore engine's verify with `--max-span`;
//! for x86 PV a second pass reads page bodies for the page-table rules, and the start_info
//! rule runs over the index), a pfn -> page-body index is built (`sr_image::PageIndex`,
//! headers and pfn words only, at most `--max-memory` of populated pages), and the output is laid out from the
//! index and filled by one `pwrite` per extent of bodies, from a map of the input (populated
//! ahead, released behind) straight to each page's final offset
//! (`sr_dump`). Standard input and pipes cannot be seeked: they are restored into a
//! temporary raw image beside the output first, then written from it.

use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::path::Path;

use anyhow::{Context, Result, bail};
use sr_dump::{CoreInput, Cpus, Machine, PageBody, PageSource, RawImageSource, SliceExtents};
use sr_format::DomainType;
use sr_format::state::DomainState;
use sr_image::{IndexError, IndexLimits, PageIndex, PageLocation};
use sr_memory::GuestMemory;
use sr_restore::RestoreOptions;

use crate::cmd::restore::{bound_hint, name_output, restore_to_image};
use crate::input::Input;
use crate::mapped::MappedFile;
use crate::output::OutputRules;

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

/// Extracts the memory of `input` into `out` (written atomically under `rules`); `-` is
/// standard output (the image is built in an unnamed temporary file, then copied: holes of a
/// raw image become zeros on the pipe). The output is checked and created before the input
/// is read, so an output that cannot be written fails at once.
pub fn extract(
    input: &Path,
    out: &Path,
    format: ExtractFormat,
    options: RestoreOptions,
    max_memory: u64,
    rules: &OutputRules,
) -> Result<Extracted> {
    if out.as_os_str() != "-" {
        let (dest, file) = rules.file(out)?;
        let done = extract_into(input, &file, out, format, options, max_memory)?;
        drop(file);
        dest.commit()?;
        return Ok(done);
    }
    rules.check_stdout()?;
    let image = tempfile::tempfile().context("cannot create a temporary file for the image")?;
    let done = extract_into(input, &image, out, format, options, max_memory)?;
    use std::os::fd::AsFd;
    let fd = std::io::stdout().as_fd().try_clone_to_owned().context("cannot use standard output")?;
    crate::pipe::widen(&fd);
    let mut image = &image;
    image.seek(SeekFrom::Start(0)).context("cannot rewind the temporary image")?;
    std::io::copy(&mut image, &mut File::from(fd)).context("cannot write the image to standard output")?;
    Ok(done)
}

/// Extracts `input` into the empty file `file`, which becomes `out` (named in messages).
fn extract_into(
    input: &Path,
    file: &File,
    out: &Path,
    format: ExtractFormat,
    options: RestoreOptions,
    max_memory: u64,
) -> Result<Extracted> {
    let name = input.display().to_string();
    if input.as_os_str() != "-" {
        let f = File::open(input).with_context(|| format!("cannot open {name}"))?;
        if f.metadata().with_context(|| format!("cannot stat {name}"))?.is_file() {
            // A compressed file is decompressed into an unlinked temporary file first.
            let seekable = crate::input::Seekable::open(input)?;
            return one_pass(seekable.file, &name, file, out, format, options, max_memory);
        }
    }
    via_restore(Input::open(input)?, &name, file, out, format, options, max_memory)
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

/// Writes the image of `input` in `format` into `file` (empty), which becomes `out` (named
/// in messages). Returns the bytes written.
pub(crate) fn write_core(
    file: &File,
    out: &Path,
    format: ExtractFormat,
    input: &CoreInput,
    pages: &mut dyn PageSource,
) -> Result<u64> {
    match format {
        ExtractFormat::Raw => sr_dump::write_raw(file, input, pages),
        ExtractFormat::Elf => sr_dump::write_elf(file, input, pages),
        ExtractFormat::Lime => sr_dump::write_lime(file, input, pages),
    }
    .with_context(|| format!("cannot write {}", out.display()))
}

fn one_pass(
    file: File,
    name: &str,
    dest: &File,
    out: &Path,
    format: ExtractFormat,
    mut options: RestoreOptions,
    max_memory: u64,
) -> Result<Extracted> {
    let scan = |f: &File| crate::input::scan_file(f, name);
    // The restore engine's verify first: what we write comes from a stream that validates,
    // with the pfn bound a restore into --max-memory would have.
    let shift = {
        let mut r = scan(&file)?;
        loop {
            match r.next_item().with_context(|| format!("extract of {name} failed"))? {
                Some(sr_format::Item::DomainHeader { header, .. }) => break u32::from(header.page_shift.get()),
                Some(_) => {}
                None => bail!("extract of {name} failed: no domain header"),
            }
        }
    };
    options.max_populated_bytes = options.max_populated_bytes.min(max_memory);
    let failed = |e: sr_restore::RestoreError| {
        let hint = bound_hint(&e);
        anyhow::Error::new(e).context(format!("extract of {name} failed{hint}"))
    };
    // x86 PV's page tables are read too (reads only; still one write per page), so a bad
    // entry is reported exactly as a restore reports it.
    let verified = crate::input::verify_file(&file, name, options)?.map_err(failed)?;
    // --max-memory bounds the pages the guest populates, as in a restore (the verification
    // has no destination to count them in; the index does). The index itself may grow past
    // the bound up to 2^24 pages (256 MiB of index), so the hint can name the exact need.
    let max_pages = (max_memory >> shift.min(63)).max(1);
    let limits = IndexLimits::default().with_max_pages(max_pages.max(1 << 24));
    let index = PageIndex::build_with(scan(&file)?, limits).map_err(|e| {
        let hint = match e {
            IndexError::TooManyPages { limit, .. } => format!(
                " (raise --max-memory: at least {} is needed)",
                crate::size::format_size_up(limit.saturating_add(1) << shift.min(32))
            ),
            _ => String::new(),
        };
        anyhow::Error::new(e).context(format!("extract of {name} failed{hint}"))
    })?;
    let populated = index.len() as u64;
    if populated > max_pages {
        let e = IndexError::TooManyPages { offset: index.stream_len(), limit: max_pages };
        return Err(anyhow::Error::new(e).context(format!(
            "extract of {name} failed (raise --max-memory: at least {} is needed): the guest populates {populated} pages",
            crate::size::format_size_up(populated << shift.min(32))
        )));
    }
    if verified.skipped.start_info {
        // The END rules that need final page contents (the start_info frames), from the same
        // rulebook a restore applies, with the pages the index says a restore leaves.
        let page_size = index.page_size();
        let read = |pfn: u64, out: &mut [u8]| -> bool {
            use std::os::unix::fs::FileExt;
            match index.get(pfn).map(|p| p.location) {
                Some(PageLocation::Data(offset)) => out.len() == page_size && file.read_exact_at(out, offset).is_ok(),
                Some(PageLocation::Zero) => {
                    out.fill(0);
                    true
                }
                None => false,
            }
        };
        sr_rules::check_end(&verified.state, &|pfn| index.get(pfn).is_some(), Some(&read))
            .with_context(|| format!("extract of {name} failed at END"))?;
    }
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
    let lookup = |pfn| {
        while pages_iter.next_if(|p| p.pfn < pfn).is_some() {}
        let p = pages_iter.next_if(|p| p.pfn == pfn)?;
        Some(match p.location {
            PageLocation::Data(offset) => PageBody::At(offset),
            PageLocation::Zero => PageBody::Zero,
        })
    };
    // Bodies are copied from a map of the stream, populated ahead of the copy and released
    // behind it as restore does: one copy per page, no page faults, bounded resident memory.
    let map = MappedFile::map(file.try_clone().with_context(|| format!("cannot reopen {name}"))?, Path::new(name))?
        .with_context(|| format!("{name} is empty"))?;
    let mut source = SliceExtents::new(map.bytes(), lookup, |offset| map.window(offset));
    let bytes = write_core(dest, out, format, &input, &mut source)?;
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
    dest: &File,
    out: &Path,
    format: ExtractFormat,
    options: RestoreOptions,
    max_memory: u64,
) -> Result<Extracted> {
    if format == ExtractFormat::Raw {
        // The restore's own image is the raw output.
        let restored = restore_to_image(source, "extract", name, dest, options, max_memory)
            .map_err(|e| name_output(e, &out.display().to_string()))?;
        let memory = restored.memory.context("no memory restored")?;
        let populated = memory.populated();
        let bytes = dest.metadata().with_context(|| format!("cannot stat {}", out.display()))?.len();
        let runs = CoreInput::runs_of(populated.iter_ones()).len();
        return Ok(Extracted { bytes, pages: populated.count_ones(), runs, vcpus: 0, one_pass: false, warning: None });
    }
    // The raw image the core is made from: an unnamed file beside the output (the same file
    // system), which disappears with the process whatever happens to it.
    let raw = crate::output::scratch_file(out)?;
    let restored = restore_to_image(source, "extract", name, &raw, options, max_memory)
        .map_err(|e| name_output(e, &out.display().to_string()))?;
    let memory = restored.memory.context("no memory restored")?;
    let (cpus, warning) = cpus_of(&restored.state);
    let input = CoreInput {
        page_shift: u32::from(restored.state.page_shift),
        runs: CoreInput::runs_of(memory.populated().iter_ones()),
        machine: machine_of(&restored.state),
        cpus: if format == ExtractFormat::Elf { cpus } else { Cpus::None },
    };
    let bytes = write_core(dest, out, format, &input, &mut RawImageSource::new(&raw))?;
    Ok(Extracted {
        bytes,
        pages: input.pages(),
        runs: input.runs.len(),
        vcpus: input.cpus.len(),
        one_pass: false,
        warning: if format == ExtractFormat::Elf { warning } else { None },
    })
}

/// Prints the one-line summary of an extraction into `out`.
pub fn print_summary(done: &Extracted, out: &Path, sink: &mut dyn std::io::Write) -> std::io::Result<()> {
    use crate::text::{count, count_usize};
    let registers =
        if done.vcpus > 0 { format!(", registers of {}", count_usize(done.vcpus, "vcpu")) } else { String::new() };
    let to = if out.as_os_str() == "-" { "standard output".to_string() } else { out.display().to_string() };
    writeln!(
        sink,
        "extracted {} in {} to {to} ({} bytes{registers})",
        count(done.pages, "page"),
        count_usize(done.runs, "run"),
        done.bytes,
    )
}
