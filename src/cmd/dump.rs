//! `xsr dump` (feature `xen`): a running Xen domain's memory from dom0, paused or live.
//!
//! The memory comes from [`sr_xen::XenMemory`] (foreign mapping, the PV p2m, log-dirty); the
//! copy loop here writes it into a sparse raw image (pfn `p` at byte `p << 12`), which the ELF
//! writer of `extract` then turns into a core.
//!
//! * **paused** (default): pause, reread the p2m, copy every populated page, take the vcpu
//!   state, unpause: the guest is stopped for the whole copy, as with `xl dump-core`;
//! * **live** (`--live`): log-dirty on, copy everything while the guest runs, then the pages it
//!   dirtied, pass after pass, until [`sr_save::PrecopyPolicy`] says stop; then pause, reread
//!   the p2m, copy the last dirty pages, take the vcpu state, log-dirty off, unpause. The image
//!   is the guest's memory as of the pause.
//!
//! The domain is put back as found on every path out ([`sr_xen::DomainGuard`]), and SIGINT or
//! SIGTERM stop the copy within one batch.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use sr_memory::{GuestMemory, PfnBitmap};
use sr_save::{IterationStats, PrecopyPolicy};
use sr_xen::{DomainKind, Interrupt, XenDomain, XenMemory};

use sr_dump::{CoreInput, Cpus, Machine, RawImageSource};
use sr_format::body::{VcpuFrames, hvm_context, pv_vcpu_regs};

use crate::cmd::extract::{ExtractFormat, write_core};
use crate::image_dir::runs;
use crate::output::OutputRules;
use crate::progress::bytes_bar;

pub use crate::cmd::xen::DumpFormat;

/// What `dump` is asked to do.
#[derive(Clone, Debug)]
pub struct DumpSettings {
    /// Domain id or name.
    pub domain: String,
    /// Output file.
    pub out: PathBuf,
    /// Output format.
    pub format: DumpFormat,
    /// `Some`: live pre-copy with this policy; `None`: paused for the whole copy.
    pub live: Option<PrecopyPolicy>,
    /// pfns per foreign-mapping batch.
    pub batch: usize,
}

/// One copy pass.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PassSummary {
    /// Pass number from 0; the last one of a live dump is the paused one.
    pub pass: u32,
    /// Pages read from the guest.
    pub pages: u64,
    /// Pages written to the image (a compare pass writes only the pages that differ from it).
    pub written: u64,
    /// Wall seconds.
    pub seconds: f64,
    /// Whether the guest was paused during it.
    pub paused: bool,
}

/// What a dump did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct DumpSummary {
    /// Domain id.
    pub domid: u32,
    /// `pv` or `hvm`.
    pub kind: &'static str,
    /// Output format.
    pub format: DumpFormat,
    /// Whether live pre-copy was used.
    pub live: bool,
    /// How a live dump found the pages the guest changed: `log-dirty` (Xen's log-dirty
    /// bitmap) or `compare` (each pass compares every page with the image: for hypervisors
    /// without log-dirty support for the guest); `none` for a paused dump.
    pub dirty_tracking: &'static str,
    /// Populated pages in the image.
    pub pages: u64,
    /// Runs of consecutive populated pfns.
    pub runs: usize,
    /// Output file size in bytes.
    pub bytes: u64,
    /// Pages whose frame did not map (written as zeros).
    pub unreadable_pages: u64,
    /// pfns whose p2m entry changed between the first read and the pause.
    pub p2m_changes: u64,
    /// The passes.
    pub passes: Vec<PassSummary>,
    /// How long the guest was paused, in milliseconds.
    pub paused_ms: f64,
    /// Whole dump, in seconds.
    pub seconds: f64,
    /// Guest memory copied per second over the whole dump (populated pages / seconds), MiB/s.
    pub mib_per_sec: f64,
    /// vcpus whose registers went into the core's notes.
    pub vcpus: usize,
    /// Bytes of HVM context read (HVM only).
    pub hvm_context_bytes: usize,
}

/// Dumps the domain's memory as `settings` say into `settings.out`, written atomically under
/// `rules` (checked and created before the domain is touched). The domain is put back as
/// found on every path.
pub fn dump(settings: &DumpSettings, rules: &OutputRules) -> Result<DumpSummary> {
    if settings.batch == 0 || settings.batch > 32_768 {
        bail!("--batch must be 1..=32768 pfns, not {}", settings.batch);
    }
    if settings.format == DumpFormat::Stream {
        bail!("--format stream is written by save_domain, not by the memory copier");
    }
    crate::cmd::xen::check_host()?;
    let (dest, out) = rules.file(&settings.out)?;
    let interrupt = Interrupt::install().context("cannot install the signal handlers")?;
    let domid = sr_xen::resolve_domain(&settings.domain)?;
    let domain =
        XenDomain::open(domid, interrupt).with_context(|| format!("cannot open domain {}", settings.domain))?;
    let result = run(&domain, settings, &out);
    // Explicitly (the drop would too), so that a failure to restore is reported.
    let restored = domain.restore().context("cannot put the domain back as found (log-dirty off, unpause)");
    let summary = result?;
    restored?;
    drop(out);
    dest.commit()?;
    Ok(summary)
}

/// The pages a pass copies, and its outcome.
struct Copier<'a> {
    memory: &'a dyn GuestMemory,
    image: &'a File,
    /// What the image is, for messages ("/out/d.raw", "the raw image of /out/d.elf").
    image_name: String,
    batch: usize,
    interrupt: &'a Interrupt,
}

impl Copier<'_> {
    /// Copies `pfns` (ascending) into the image; with `skip_zero`, all-zero pages are left as
    /// holes (the first pass over a fresh sparse file).
    fn pass(&self, number: u32, pfns: &PfnBitmap, skip_zero: bool, paused: bool) -> Result<PassSummary> {
        let started = Instant::now();
        let total = pfns.count_ones();
        let bar = bytes_bar(total * 4096, &format!("pass {number}{}", if paused { " (paused)" } else { "" }));
        let mut buf = vec![0u8; self.batch * 4096];
        let mut batch = Vec::with_capacity(self.batch);
        let mut ones = pfns.iter_ones().peekable();
        let mut done = 0u64;
        let stopped =
            |e: anyhow::Error, done: u64| e.context(format!("pass {number} stopped after {done} of {total} pages"));
        while ones.peek().is_some() {
            self.interrupt.check().map_err(|e| stopped(e.into(), done))?;
            batch.clear();
            batch.extend(ones.by_ref().take(self.batch));
            let data = &mut buf[..batch.len() * 4096];
            self.memory.read_pages(&batch, data).map_err(|e| stopped(e.into(), done))?;
            self.write(&batch, data, skip_zero).map_err(|e| stopped(e, done))?;
            done += batch.len() as u64;
            bar.inc(batch.len() as u64 * 4096);
        }
        bar.finish_and_clear();
        Ok(PassSummary { pass: number, pages: total, written: total, seconds: started.elapsed().as_secs_f64(), paused })
    }

    /// Reads `pfns` (ascending) and writes only the pages that differ from the image: a pass
    /// of the compare pre-copy, whose `written` count is the pages the guest changed since they
    /// were last copied. Exact (byte comparison). Memory traffic is what makes this pass cost
    /// (it is what the guest's pause covers): guest pages come from the memory's kept mappings in
    /// small cache-resident batches and are compared with the image through a read-only
    /// mapping of it, with no second copy.
    fn compare_pass(&self, number: u32, pfns: &PfnBitmap, paused: bool) -> Result<PassSummary> {
        const SMALL: usize = 16;
        let started = Instant::now();
        let total = pfns.count_ones();
        let bar = bytes_bar(total * 4096, &format!("compare pass {number}{}", if paused { " (paused)" } else { "" }));
        // SAFETY: the image is this process's own temporary file (the output's partial file,
        // created with create_new under a name of our own, or an unnamed one); nothing truncates
        // it while mapped, and our writes go through pwrite, which the shared page cache makes
        // visible to this mapping.
        #[allow(unsafe_code)]
        let image = unsafe { memmap2::Mmap::map(self.image) }.context("cannot map the image")?;
        let mut buf = vec![0u8; SMALL * 4096];
        let mut batch = Vec::with_capacity(SMALL);
        let mut ones = pfns.iter_ones().peekable();
        let (mut done, mut written) = (0u64, 0u64);
        let stopped =
            |e: anyhow::Error, done: u64| e.context(format!("pass {number} stopped after {done} of {total} pages"));
        while ones.peek().is_some() {
            self.interrupt.check().map_err(|e| stopped(e.into(), done))?;
            batch.clear();
            batch.extend(ones.by_ref().take(SMALL));
            let n = batch.len() * 4096;
            self.memory.read_pages(&batch, &mut buf[..n]).map_err(|e| stopped(e.into(), done))?;
            for (i, &pfn) in batch.iter().enumerate() {
                let page = &buf[i * 4096..(i + 1) * 4096];
                let at = usize::try_from(pfn << 12).ok().and_then(|a| image.get(a..a + 4096));
                if at != Some(page) {
                    self.write(&[pfn], page, false).map_err(|e| stopped(e, done))?;
                    written += 1;
                }
            }
            done += batch.len() as u64;
            if done % 1024 < SMALL as u64 {
                bar.set_position(done * 4096);
            }
        }
        bar.finish_and_clear();
        Ok(PassSummary { pass: number, pages: total, written, seconds: started.elapsed().as_secs_f64(), paused })
    }

    /// Writes pages at their pfn's offset, one `pwrite` per run of consecutive pfns.
    fn write(&self, pfns: &[u64], data: &[u8], skip_zero: bool) -> Result<()> {
        let mut i = 0;
        while i < pfns.len() {
            if skip_zero && data[i * 4096..(i + 1) * 4096].iter().all(|&b| b == 0) {
                i += 1;
                continue;
            }
            let mut j = i + 1;
            while j < pfns.len()
                && pfns[j] == pfns[j - 1] + 1
                && !(skip_zero && data[j * 4096..(j + 1) * 4096].iter().all(|&b| b == 0))
            {
                j += 1;
            }
            self.image
                .write_all_at(&data[i * 4096..j * 4096], pfns[i] << 12)
                .with_context(|| format!("cannot write pfn {:#x} to {}", pfns[i], self.image_name))?;
            i = j;
        }
        Ok(())
    }
}

/// The registers of a PV guest's vcpu contexts, with the machine frames Xen's saver turns into
/// pfns (CR3, the 64-bit user CR1, the used GDT frames: `write_one_vcpu_basic` of
/// `tools/libs/guest/xg_sr_save_x86_pv.c`) translated through the m2p first, so the notes say
/// what a save file's would. A frame the m2p does not know is left as it is. (rdx is not
/// touched: only a suspended guest's holds a start_info frame.)
fn pv_cpus(contexts: &[(u32, Vec<u8>)], width: u32, mfn_to_pfn: impl Fn(u64) -> Option<u64>) -> Cpus {
    let Ok(w) = u8::try_from(width) else { return Cpus::None };
    let regs: Vec<_> = contexts
        .iter()
        .filter_map(|(id, blob)| {
            let mut blob = blob.clone();
            if let Some(mut f) = VcpuFrames::read(&blob, w) {
                let pfn = |mfn: u64| mfn_to_pfn(mfn).unwrap_or(mfn);
                f.cr3_pfn = pfn(f.cr3_pfn);
                f.cr1_pfn = f.cr1_pfn.map(pfn);
                let used = f.used_gdt_frames().len();
                for frame in &mut f.gdt_frames[..used] {
                    *frame = pfn(*frame);
                }
                f.write(&mut blob, w);
            }
            Some((*id, pv_vcpu_regs(&blob, w)?))
        })
        .collect();
    if regs.is_empty() { Cpus::None } else { Cpus::X86(regs) }
}

/// Pauses the guest and returns the pfns the final pass must cover (`dirty`, plus what the log
/// holds now and every pfn whose p2m entry changed; with log-dirty off, every populated pfn),
/// with the time since the pause, and the number of p2m changes.
fn pause_and_collect(
    domain: &XenDomain,
    memory: &XenMemory,
    mut dirty: PfnBitmap,
) -> Result<((PfnBitmap, Duration), u64)> {
    domain.pause()?;
    let paused_at = Instant::now();
    let changes = domain.refresh_p2m()?;
    dirty.union_with(&memory.take_dirty());
    Ok(((dirty, paused_at.elapsed()), changes))
}

fn stats_of(pass: &PassSummary) -> IterationStats {
    IterationStats {
        iteration: pass.pass,
        pages: pass.pages,
        bytes: pass.pages * 4096,
        duration: Duration::from_secs_f64(pass.seconds),
        ..IterationStats::default()
    }
}

fn run(domain: &XenDomain, settings: &DumpSettings, out: &File) -> Result<DumpSummary> {
    let started = Instant::now();
    let memory: &XenMemory = domain.memory();
    let limit = memory.pfn_limit();
    // A raw dump is the image itself; a core is made from an unnamed raw image beside it.
    let scratch;
    let image = match settings.format {
        DumpFormat::Raw => out,
        _ => {
            scratch = crate::output::scratch_file(&settings.out)?;
            &scratch
        }
    };
    image.set_len(limit << 12).with_context(|| format!("cannot size the raw image of {}", settings.out.display()))?;
    let image_name = match settings.format {
        DumpFormat::Raw => settings.out.display().to_string(),
        _ => format!("the raw image of {}", settings.out.display()),
    };
    let copier =
        Copier { memory: &**domain.memory(), image, image_name, batch: settings.batch, interrupt: domain.interrupt() };

    let mut passes = Vec::new();
    let paused_at;
    let p2m_changes;
    let mut tracking = "none";
    match settings.live {
        None => {
            domain.pause()?;
            paused_at = Instant::now();
            p2m_changes = domain.refresh_p2m()?;
            passes.push(copier.pass(0, &memory.populated(), true, true)?);
        }
        Some(policy) => {
            tracking = match domain.enable_log_dirty() {
                Ok(()) => "log-dirty",
                Err(e) if e.is_unsupported() => "compare",
                Err(e) => {
                    return Err(anyhow::Error::new(e)
                        .context("cannot turn log-dirty mode on (is another save or live dump running?)"));
                }
            };
            memory.take_dirty(); // log-dirty: clear the bitmap; from now on every write is in it
            passes.push(copier.pass(0, &memory.populated(), true, false)?);
            let (rest, changes) = if tracking == "log-dirty" {
                loop {
                    let dirty = memory.take_dirty();
                    let last = stats_of(passes.last().expect("one pass"));
                    if policy.should_stop(passes.len() as u32, dirty.count_ones(), 4096, &last) {
                        break pause_and_collect(domain, memory, dirty)?;
                    }
                    passes.push(copier.pass(passes.len() as u32, &dirty, false, false)?);
                }
            } else {
                loop {
                    let p = copier.compare_pass(passes.len() as u32, &memory.populated(), false)?;
                    let (n, changed) = (passes.len() as u32 + 1, p.written);
                    let last = stats_of(&p);
                    passes.push(p);
                    if policy.should_stop(n, changed, 4096, &last) {
                        // Compare mode has no log: the final pass checks every page.
                        break pause_and_collect(domain, memory, PfnBitmap::new(limit))?;
                    }
                }
            };
            paused_at = Instant::now() - rest.1;
            p2m_changes = changes;
            let rest = rest.0;
            let final_pass = if tracking == "log-dirty" {
                copier.pass(passes.len() as u32, &rest, false, true)?
            } else {
                copier.compare_pass(passes.len() as u32, &rest, true)?
            };
            passes.push(final_pass);
            if let Some(failure) = memory.failure() {
                bail!("the log-dirty bitmap could not be read ({failure}); the image may be inconsistent");
            }
        }
    }
    let vcpus = domain.vcpu_contexts()?;
    let hvm_context = domain.hvm_context()?;
    domain.disable_log_dirty()?;
    domain.unpause()?;
    let paused = paused_at.elapsed();

    let populated = memory.populated();
    let pfn_runs = runs(populated.iter_ones());
    image.sync_data().context("cannot flush the raw image")?;
    let cpus = match domain.kind() {
        DomainKind::Pv { width } => pv_cpus(&vcpus, width, |mfn| memory.mfn_to_pfn(mfn)),
        DomainKind::Hvm => match &hvm_context {
            Some(blob) => Cpus::X86(
                hvm_context::decode(blob, 0)
                    .context("cannot decode the domain's HVM context")?
                    .vcpu_regs()
                    .into_iter()
                    .map(|(id, r)| (u32::from(id), r))
                    .collect(),
            ),
            None => Cpus::None,
        },
    };
    let registers = cpus.len();
    let bytes = match settings.format {
        DumpFormat::Raw | DumpFormat::Stream => image.metadata()?.len(),
        DumpFormat::Elf | DumpFormat::Lime => {
            let format = if settings.format == DumpFormat::Elf { ExtractFormat::Elf } else { ExtractFormat::Lime };
            let input = CoreInput { page_shift: 12, runs: pfn_runs.clone(), machine: Machine::X86_64, cpus };
            write_core(out, &settings.out, format, &input, &mut RawImageSource::new(image))?
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    let pages = populated.count_ones();
    Ok(DumpSummary {
        domid: domain.domid(),
        kind: match domain.kind() {
            DomainKind::Pv { .. } => "pv",
            DomainKind::Hvm => "hvm",
        },
        format: settings.format,
        live: settings.live.is_some(),
        dirty_tracking: tracking,
        pages,
        runs: pfn_runs.len(),
        bytes,
        unreadable_pages: memory.unreadable().count_ones(),
        p2m_changes,
        passes,
        paused_ms: paused.as_secs_f64() * 1e3,
        seconds,
        mib_per_sec: (pages * 4096) as f64 / (1 << 20) as f64 / seconds.max(1e-9),
        vcpus: registers,
        hvm_context_bytes: hvm_context.map_or(0, |c| c.len()),
    })
}

/// Prints the summary as text.
pub fn print_summary(s: &DumpSummary, out: &mut impl std::io::Write) -> std::io::Result<()> {
    let format = match s.format {
        DumpFormat::Stream => "xl stream",
        DumpFormat::Raw => "raw",
        DumpFormat::Elf => "ELF",
        DumpFormat::Lime => "LiME",
    };
    writeln!(
        out,
        "dumped domain {} ({}) {}: {} in {}, {} bytes of {format}, {:.3} s ({:.1} MiB/s)",
        s.domid,
        s.kind,
        if s.live { format!("live ({} pre-copy)", s.dirty_tracking) } else { "paused".to_string() },
        crate::text::count(s.pages, "page"),
        crate::text::count_usize(s.runs, "run"),
        s.bytes,
        s.seconds,
        s.mib_per_sec
    )?;
    for p in &s.passes {
        writeln!(
            out,
            "  pass {}: {} pages read, {} written, {:.3} s{}",
            p.pass,
            p.pages,
            p.written,
            p.seconds,
            if p.paused { " (paused)" } else { "" }
        )?;
    }
    writeln!(
        out,
        "  guest paused {:.1} ms; {} vcpu register notes; {} unreadable pages; {} p2m changes",
        s.paused_ms, s.vcpus, s.unreadable_pages, s.p2m_changes
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use sr_memory::RamMemory;

    fn setup(pages: &[(u64, u8)]) -> (RamMemory, tempfile::NamedTempFile) {
        let mem = RamMemory::new(12, 64).unwrap();
        for &(pfn, byte) in pages {
            mem.write_pages(&[pfn], &[byte; 4096]).unwrap();
        }
        let image = tempfile::NamedTempFile::new().unwrap();
        image.as_file().set_len(64 * 4096).unwrap();
        (mem, image)
    }

    fn page_at(image: &File, pfn: u64) -> Vec<u8> {
        let mut page = vec![0; 4096];
        image.read_exact_at(&mut page, pfn << 12).unwrap();
        page
    }

    #[test]
    fn copy_pass_puts_pages_at_their_pfn_and_leaves_zero_pages_as_holes() {
        let (mem, image) = setup(&[(1, 0xaa), (2, 0), (3, 0xbb), (40, 0xcc)]);
        let interrupt = Interrupt::none();
        let copier = Copier {
            memory: &mem,
            image: image.as_file(),
            image_name: "x.raw".into(),
            batch: 2,
            interrupt: &interrupt,
        };
        let p = copier.pass(0, &mem.populated(), true, false).unwrap();
        assert_eq!((p.pages, p.written), (4, 4));
        assert_eq!(page_at(image.as_file(), 1), [0xaa; 4096]);
        assert_eq!(page_at(image.as_file(), 3), [0xbb; 4096]);
        assert_eq!(page_at(image.as_file(), 40), [0xcc; 4096]);
        assert_eq!(page_at(image.as_file(), 2), [0; 4096]);
        // A later change to the zero page is caught by a compare pass; an unchanged rewrite is not
        // written again.
        mem.write_pages(&[2], &[0x11; 4096]).unwrap();
        mem.write_pages(&[40], &[0xcc; 4096]).unwrap(); // rewritten with the same bytes
        let p = copier.compare_pass(1, &mem.populated(), true).unwrap();
        assert_eq!((p.pages, p.written), (4, 1));
        assert_eq!(page_at(image.as_file(), 2), [0x11; 4096]);
    }

    #[test]
    fn a_raised_interrupt_stops_a_pass_between_batches() {
        let (mem, image) = setup(&[(1, 1), (2, 2), (3, 3)]);
        let interrupt = Interrupt::none();
        interrupt.raise(15);
        let copier = Copier {
            memory: &mem,
            image: image.as_file(),
            image_name: "x.raw".into(),
            batch: 1,
            interrupt: &interrupt,
        };
        let e = copier.pass(0, &mem.populated(), true, true).unwrap_err();
        let text = format!("{e:#}");
        assert!(
            text.contains("pass 0 stopped after 0 of 3 pages") && text.contains("interrupted by signal 15"),
            "{text}"
        );
        assert_eq!(page_at(image.as_file(), 1), [0; 4096]);
    }

    #[test]
    fn pv_registers_carry_pfns_not_machine_frames() {
        // A 64-bit vcpu_guest_context (5168 bytes): rip at user_regs + 128 = 512 + 8 + 128,
        // gdt_frames at 4832, gdt_ents at 4960, ctrlreg at 4984 (sr_format::body::pv_vcpu).
        let mut blob = vec![0u8; 5168];
        let put = |b: &mut [u8], at: usize, v: u64| b[at..at + 8].copy_from_slice(&v.to_le_bytes());
        put(&mut blob, 4832, 0x5005); // GDT frame 0 (mfn)
        put(&mut blob, 4960, 16); // gdt_ents: one frame used
        put(&mut blob, 4984 + 3 * 8, 0x7007 << 12); // cr3 = mfn << 12
        put(&mut blob, 4984 + 8, 0x8008 << 12 | 1); // cr1: user page table
        let m2p = |mfn: u64| match mfn {
            0x5005 => Some(5),
            0x7007 => Some(7),
            0x8008 => Some(8),
            _ => None,
        };
        let Cpus::X86(regs) = pv_cpus(&[(0, blob.clone()), (3, blob)], 8, m2p) else { panic!("no registers") };
        assert_eq!(regs.iter().map(|r| r.0).collect::<Vec<_>>(), [0, 3]);
        assert_eq!(regs[0].1.cr3, 7 << 12);
        let mut frames = vec![0u8; 5168];
        put(&mut frames, 4984 + 3 * 8, 0x9009 << 12); // unknown to the m2p: left alone
        let Cpus::X86(regs) = pv_cpus(&[(0, frames)], 8, m2p) else { panic!("no registers") };
        assert_eq!(regs[0].1.cr3, 0x9009 << 12);
        assert!(matches!(pv_cpus(&[(0, vec![0; 100])], 8, m2p), Cpus::None));
    }

    #[test]
    fn text_summary_names_passes_tracking_and_pause() {
        let s = DumpSummary {
            domid: 3,
            kind: "pv",
            format: DumpFormat::Lime,
            live: true,
            dirty_tracking: "compare",
            pages: 8192,
            runs: 1,
            bytes: 33554464,
            unreadable_pages: 0,
            p2m_changes: 2,
            passes: vec![
                PassSummary { pass: 0, pages: 8192, written: 8192, seconds: 1.0, paused: false },
                PassSummary { pass: 1, pages: 8192, written: 7, seconds: 0.5, paused: true },
            ],
            paused_ms: 512.5,
            seconds: 2.0,
            mib_per_sec: 16.0,
            vcpus: 1,
            hvm_context_bytes: 0,
        };
        let mut out = Vec::new();
        print_summary(&s, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with(
                "dumped domain 3 (pv) live (compare pre-copy): 8192 pages in 1 run, 33554464 bytes of LiME"
            )
        );
        assert!(text.contains("  pass 1: 8192 pages read, 7 written, 0.500 s (paused)\n"));
        assert!(text.contains("guest paused 512.5 ms; 1 vcpu register notes; 0 unreadable pages; 2 p2m changes"));
    }

    #[test]
    fn pass_stats_feed_the_saver_policy() {
        let p = PassSummary { pass: 2, pages: 256, written: 3, seconds: 0.1, paused: false };
        let s = stats_of(&p);
        assert_eq!((s.iteration, s.pages, s.bytes), (2, 256, 256 * 4096));
        let policy =
            PrecopyPolicy { max_iterations: 10, dirty_threshold: 1, downtime_target: Some(Duration::from_millis(50)) };
        // 10 MiB/s: 64 pages take 25 ms (stop), 256 pages 100 ms (go on).
        assert!(policy.should_stop(1, 64, 4096, &s));
        assert!(!policy.should_stop(1, 256, 4096, &s));
    }
}
