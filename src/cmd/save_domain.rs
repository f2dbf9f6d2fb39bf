//! `xsr save --domain` and `xsr send --domain`: a running x86 PV, PVH or HVM domain as the
//! `xl` save file `xl save` writes for it (xl header with the domain's configuration, libxl
//! stream, libxc stream v3; for HVM the device model's state in libxl's EMULATOR records),
//! which stock `xl restore` resumes.
//!
//! The guest is suspended as libxl suspends it ([`sr_xen::PvSaveGuest`] for 64-bit PV,
//! [`sr_xen::HvmSaveGuest`] for PVH and HVM: QEMU's log-dirty switched and its device state
//! taken as libxl does), its memory sent by sr-save's workers (live: pre-copy first, with
//! log-dirty tracking or, where Xen refuses it for PV guests, by comparison), and the state
//! checked by the restorer's rules before END. The stream is verified strictly (`xsr verify
//! --strict`'s checks: the file once written, a sent stream as it goes) before it counts as
//! complete. Only then (the file renamed into place, or the receiver's OK) is the domain
//! destroyed, or with `--keep-running` resumed, as `xl save [-c]` does. On every failure and
//! on SIGINT/SIGTERM the guest resumes (QEMU too) and nothing complete-looking is left.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use sr_save::{Container, Guest, PrecopyPolicy, SaveEvent, SaveOptions, SaveStats, Saver};
use sr_xen::{DomainKind, HvmSaveGuest, Interrupt, PvSaveGuest, XenDomain};

use crate::cmd::net::{Handover, HandoverUndefined, Sent};
use crate::cmd::save::progress_handler;
use crate::output::{OutputRules, partial_name};

/// What to save and how.
#[derive(Clone, Debug)]
pub struct DomainSaveSettings {
    /// Domain id or name.
    pub domain: String,
    /// Live pre-copy policy; `None`: suspend first, one pass.
    pub live: Option<PrecopyPolicy>,
    /// Resume the guest after a successful save instead of destroying it (`xl save -c`).
    pub keep_running: bool,
    /// Saver worker threads (0: one per core).
    pub workers: usize,
    /// pfns per PAGE_DATA record.
    pub batch: usize,
    /// How long the guest may take to suspend.
    pub suspend_timeout: Duration,
}

/// What a domain save did (`--json`).
#[derive(Debug, Clone, Serialize)]
pub struct DomainSaveSummary {
    /// The domain id.
    pub domid: u32,
    /// The domain's type as libxl has it: "pv", "pvh" or "hvm".
    pub guest_type: &'static str,
    /// pfn entries sent over all passes.
    pub pages: u64,
    /// Bytes written, every layer included.
    pub bytes: u64,
    /// The whole operation, milliseconds (from opening the domain to destroy or resume).
    pub wall_ms: f64,
    /// How long the guest took to suspend once asked, milliseconds.
    pub suspend_ms: f64,
    /// From the suspend request until the stream was complete (file renamed into place, or
    /// the receiver's OK), milliseconds: the guest did not run in this time.
    pub downtime_ms: f64,
    /// Saver worker threads.
    pub workers: usize,
    /// Memory passes made while the guest ran.
    pub live_passes: usize,
    /// Pages sent per pass, in order (the last is the suspended pass).
    pub pass_pages: Vec<u64>,
    /// Milliseconds per pass, in order.
    pub pass_ms: Vec<f64>,
    /// Milliseconds spent making the output durable before the domain is destroyed (the
    /// file's fsync; 0 with --keep-running or a stream, where the guest lives on).
    pub sync_ms: f64,
    /// "log-dirty", "compare" (Xen refused log-dirty: pages compared with what was sent) or
    /// "none" (not live).
    pub dirty_tracking: &'static str,
    /// "destroyed" or "running" (`--keep-running`).
    pub outcome: &'static str,
    /// The xl configuration bytes in the header.
    pub config_bytes: usize,
    /// HVM/PVH: milliseconds the last search for the populated gfns took (Xen's page types,
    /// `getpageframeinfo3`, 1024 gfns a query, until the domain's pages were all found; after
    /// the suspend for a plain save, once log-dirty mode was on for a live one).
    pub gfn_scan_ms: f64,
    /// HVM/PVH: the type queries of that search.
    pub gfn_scan_calls: u64,
    /// HVM/PVH: whether that search asked about every gfn below the maximum (no early end).
    pub gfn_scan_complete: bool,
    /// HVM/PVH: the populated (or broken) gfns that search found.
    pub gfn_scan_found: u64,
    /// HVM/PVH: the pages the domain owned then (Xen's `tot_pages`).
    pub gfn_scan_owned: u64,
    /// HVM: milliseconds QEMU took to stop and save its device state, once suspended.
    pub device_model_ms: f64,
    /// HVM: bytes of QEMU device state (the EMULATOR_CONTEXT payload).
    pub device_model_bytes: usize,
    /// Milliseconds spent verifying the written file strictly before it was renamed into place
    /// (a sent stream is verified as it goes: 0).
    pub verify_ms: f64,
}

/// What one save attempt gives (see [`save_into`]).
struct Saved {
    stats: SaveStats,
    tracking: &'static str,
    /// When the suspend was requested and how long it took.
    suspended: Option<(Instant, Duration)>,
    /// How long QEMU took to save its state, and its size.
    device_model: Option<(Duration, usize)>,
    verify: Duration,
}

/// The saver of the domain's type.
enum DomainGuest<'d> {
    Pv(PvSaveGuest<'d>),
    Hvm(HvmSaveGuest<'d>),
}

impl DomainGuest<'_> {
    fn guest(&self) -> &dyn Guest {
        match self {
            DomainGuest::Pv(g) => g,
            DomainGuest::Hvm(g) => g,
        }
    }

    fn suspended(&self) -> Option<(Instant, Duration)> {
        match self {
            DomainGuest::Pv(g) => g.suspended(),
            DomainGuest::Hvm(g) => g.suspended(),
        }
    }
}

/// The domain opened for saving, with everything that outlives one save attempt.
struct Opened {
    domain: XenDomain,
    config: Vec<u8>,
    started: Instant,
}

fn open(settings: &DomainSaveSettings) -> Result<Opened> {
    let started = Instant::now();
    let interrupt = Interrupt::install().context("cannot install the signal handlers")?;
    let domid = sr_xen::resolve_domain(&settings.domain)?;
    let domain =
        XenDomain::open(domid, interrupt).with_context(|| format!("cannot open domain {}", settings.domain))?;
    let config = domain.config_json().context("cannot read the domain's configuration from libxl")?;
    Ok(Opened { domain, config, started })
}

/// Saves the opened domain into `out`; the guest is left suspended on success (for HVM, QEMU
/// stopped), with log-dirty modes off.
fn save_into(opened: &Opened, settings: &DomainSaveSettings, out: impl Write + Send) -> Result<Saved> {
    let domain = &opened.domain;
    let guest = match domain.kind() {
        DomainKind::Pv { .. } => DomainGuest::Pv(PvSaveGuest::new(domain, settings.suspend_timeout)?),
        DomainKind::Hvm => DomainGuest::Hvm(
            HvmSaveGuest::new(domain, settings.live.is_some(), settings.suspend_timeout)
                .context("cannot switch the device model's log-dirty mode on")?,
        ),
    };
    let mut tracking = "none";
    if settings.live.is_some() {
        tracking = match domain.enable_log_dirty() {
            Ok(()) => "log-dirty",
            Err(e) if e.is_unsupported() => {
                domain.memory().track_by_compare();
                "compare"
            }
            Err(e) => {
                return Err(anyhow::Error::new(e)
                    .context("cannot turn log-dirty mode on (is another save or live dump running?)"));
            }
        };
        if tracking == "log-dirty" && domain.kind() == DomainKind::Hvm {
            // The populated gfns once more, now that Xen logs every gfn populated afterwards
            // (`p2m_add_page` marks it dirty): the final pass needs no scan.
            domain.refresh_p2m().context("cannot find the domain's populated gfns")?;
        }
    }
    let options = SaveOptions {
        batch_pfns: settings.batch,
        workers: settings.workers,
        live: settings.live,
        container: Container::Xl { config: opened.config.clone() },
        xen_version: domain.xen_version()?,
        ..SaveOptions::default()
    };
    let bar = crate::cmd::save::pages_bar();
    let mut progress = progress_handler(&bar);
    let on_event = move |event: &SaveEvent| {
        // The fault tests' `precopy` stage: the stream in flight (pass 0 sent, the receiver
        // holding part of it), the guest running on at the source.
        if matches!(event, SaveEvent::IterationStart { iteration: 1, .. }) {
            crate::cmd::net::hold("precopy");
        }
        progress(event);
    };
    let stats = Saver::new(options).on_event(on_event).save(guest.guest(), out);
    bar.finish_and_clear();
    let stats = stats?;
    let device_model = match &guest {
        DomainGuest::Pv(_) => {
            if tracking == "log-dirty" {
                domain.disable_log_dirty()?;
            }
            None
        }
        DomainGuest::Hvm(g) => {
            g.finish().context("cannot turn log-dirty mode off")?;
            g.device_model_saved()
        }
    };
    Ok(Saved { stats, tracking, suspended: guest.suspended(), device_model, verify: Duration::ZERO })
}

/// The strict verification `xsr verify --strict` makes (page bodies skipped), of a written
/// file: every layer, header and record shape, reserved field and record order, and the
/// restorer's rules at END.
fn verify_file(path: &Path) -> Result<()> {
    let file = std::fs::File::open(path).with_context(|| format!("cannot reopen {}", path.display()))?;
    let options = sr_restore::RestoreOptions { strictness: sr_format::Strictness::Strict, ..Default::default() };
    let source = sr_format::SeekSource::new(file).with_context(|| format!("cannot read {}", path.display()))?;
    sr_restore::Restorer::new(options)
        .verify(sr_format::StreamReader::new(source).skip_page_bodies(true))
        .map(drop)
        .with_context(|| format!("the written file {} does not verify strictly", path.display()))
}

/// After the output is complete: destroy the domain, or resume it with `--keep-running`.
fn finish(opened: Opened, settings: &DomainSaveSettings, saved: Saved, sync: Duration) -> Result<DomainSaveSummary> {
    let complete = Instant::now();
    let Saved { stats, tracking, suspended, device_model, verify } = saved;
    let domain = &opened.domain;
    let outcome = if settings.keep_running {
        domain.resume().context("the save is complete, but the domain could not be resumed")?;
        "running"
    } else {
        domain.destroy().context("the save is complete, but the domain could not be destroyed")?;
        "destroyed"
    };
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let (suspend_ms, downtime_ms) = match suspended {
        Some((requested, took)) => (ms(took), ms(complete.duration_since(requested))),
        None => (0.0, 0.0),
    };
    let scan = domain.gfn_scan().unwrap_or_default();
    Ok(DomainSaveSummary {
        domid: domain.domid(),
        guest_type: domain.guest_type().name(),
        pages: stats.pages,
        bytes: stats.bytes,
        wall_ms: ms(opened.started.elapsed()),
        suspend_ms,
        downtime_ms,
        workers: if settings.workers == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            settings.workers
        },
        live_passes: stats.live_passes(),
        pass_pages: stats.iterations.iter().map(|i| i.pages).collect(),
        pass_ms: stats.iterations.iter().map(|i| ms(i.duration)).collect(),
        sync_ms: ms(sync),
        dirty_tracking: tracking,
        outcome,
        config_bytes: opened.config.len(),
        gfn_scan_ms: ms(scan.took),
        gfn_scan_calls: scan.calls,
        gfn_scan_complete: scan.complete,
        gfn_scan_found: scan.found,
        gfn_scan_owned: scan.owned,
        device_model_ms: device_model.map_or(0.0, |(d, _)| ms(d)),
        device_model_bytes: device_model.map_or(0, |(_, n)| n),
        verify_ms: ms(verify),
    })
}

/// Runs `attempt`; on failure puts the domain back (log-dirty off, unpaused, resumed if this
/// process suspended it) and returns the error, with a failure to put it back added.
fn guarded<T>(opened: &Opened, attempt: impl FnOnce() -> Result<T>) -> Result<T> {
    match attempt() {
        Ok(t) => Ok(t),
        Err(e) => match opened.domain.restore() {
            Ok(()) => Err(e.context(format!("save of domain {} failed; the guest runs on", opened.domain.domid()))),
            Err(r) => Err(e.context(format!(
                "save of domain {} failed, and the domain could not be put back as found: {r}",
                opened.domain.domid()
            ))),
        },
    }
}

/// `xsr save --domain D --out FILE` (`-`: standard output). The file is written atomically
/// under `rules`, checked and created before the domain is touched.
pub fn save_domain(settings: &DomainSaveSettings, out: &Path, rules: &OutputRules) -> Result<DomainSaveSummary> {
    let target = if out.as_os_str() == "-" {
        rules.check_stdout()?;
        None
    } else {
        Some(rules.file(out)?)
    };
    let opened = open(settings)?;
    let mut sync = Duration::ZERO;
    let saved = guarded(&opened, || {
        let Some((dest, file)) = target else {
            use std::os::fd::AsFd;
            let fd = std::io::stdout().as_fd().try_clone_to_owned().context("cannot use standard output")?;
            crate::pipe::widen(&fd);
            return save_into(&opened, settings, std::fs::File::from(fd))
                .context("writing the stream to standard output failed");
        };
        let mut saved =
            save_into(&opened, settings, &file).with_context(|| format!("save to {} failed", out.display()))?;
        let started = Instant::now();
        verify_file(dest.path())?;
        saved.verify = started.elapsed();
        if !settings.keep_running {
            // The domain is destroyed next: the file, its only copy, must be on disk first.
            let started = Instant::now();
            file.sync_all().with_context(|| format!("cannot sync {}", out.display()))?;
            sync = started.elapsed();
        }
        drop(file);
        dest.commit()?;
        Ok(saved)
    })?;
    finish(opened, settings, saved, sync)
}

/// The source's side of a hand-over: renamed `NAME--migratedaway` just before GO, as
/// `xl migrate` does, and back when the migration fails before the receiver may start.
struct AwayName {
    domid: u32,
    keep_running: bool,
    /// (the name, the name while away) once renamed.
    renamed: Option<(String, String)>,
}

impl Handover for AwayName {
    fn can_hand_over(&self) -> Result<()> {
        if self.keep_running {
            bail!(
                "the receiver starts the guest (it restores into a domain), so --keep-running would run it twice; \
                 nothing was sent"
            );
        }
        Ok(())
    }

    fn rename_away(&mut self) -> Result<()> {
        let name =
            sr_xen::domain_name(self.domid)?.with_context(|| format!("domain {} has no name to rename", self.domid))?;
        let away = format!("{name}{}", sr_xen::MIGRATED_AWAY);
        sr_xen::restore::rename_domain(self.domid, &name, &away)
            .with_context(|| format!("cannot rename domain {} from {name} to {away}", self.domid))?;
        self.renamed = Some((name, away));
        Ok(())
    }
}

impl AwayName {
    fn rename_back(&mut self) -> Result<()> {
        if let Some((name, away)) = self.renamed.take() {
            sr_xen::restore::rename_domain(self.domid, &away, &name)
                .with_context(|| format!("cannot rename domain {} back from {away} to {name}", self.domid))?;
        }
        Ok(())
    }
}

/// `xsr send --domain D ...`: the stream goes through `exchange` (the transfer with the
/// receiver's acknowledgement, which calls the save it is given with its forward channel,
/// and the hand-over actions when the receiver restores into a domain); the domain is
/// destroyed (or resumed) only after the receiver's OK or its report that the guest runs.
/// A failure before the hand-over resumes the guest here (renamed back); one after GO leaves
/// it suspended and renamed away ([`HandoverUndefined`]). Returns the summary and the
/// receiver's own.
pub fn send_domain(
    settings: &DomainSaveSettings,
    exchange: impl FnOnce(&mut dyn FnMut(Box<dyn Write + Send>) -> Result<SaveStats>, &mut dyn Handover) -> Result<Sent>,
) -> Result<(DomainSaveSummary, String)> {
    let opened = open(settings)?;
    let mut extra = None;
    let mut away = AwayName { domid: opened.domain.domid(), keep_running: settings.keep_running, renamed: None };
    let result = exchange(
        &mut |w| {
            let (tee, verifier) = VerifyingWriter::new(w);
            let saved = save_into(&opened, settings, tee)?;
            // Before the transfer waits for the receiver's OK: a stream that does not verify
            // strictly is never reported sent (nor its domain destroyed).
            verifier.finish().context("the sent stream does not verify strictly")?;
            let stats = saved.stats.clone();
            extra = Some(saved);
            Ok(stats)
        },
        &mut away,
    );
    let sent = match result {
        Ok(sent) => sent,
        Err(e) if e.downcast_ref::<HandoverUndefined>().is_some() => {
            opened.domain.leave_suspended();
            return Err(e);
        }
        Err(e) => {
            let back = away.rename_back();
            let e = guarded(&opened, || Err::<(), _>(e)).unwrap_err();
            return Err(match back {
                Ok(()) => e,
                Err(b) => e.context(format!("{b:#}")),
            });
        }
    };
    let mut saved = extra.context("the transfer reported success without a save")?;
    saved.stats = sent.stats;
    let summary = finish(opened, settings, saved, Duration::ZERO)?;
    Ok((summary, sent.summary))
}

/// A writer that passes every byte on and feeds a copy to a strict verifier on its own
/// thread (the same engine as `xsr verify --strict`, reading page bodies as they come).
struct VerifyingWriter<W: Write> {
    inner: W,
    tx: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
    buf: Vec<u8>,
}

/// The verifier's side: [`finish`](Self::finish) waits for its verdict.
struct Verifier {
    handle: std::thread::JoinHandle<Result<()>>,
}

/// Bytes handed to the verifier at a time.
const VERIFY_CHUNK: usize = 1 << 20;

impl<W: Write> VerifyingWriter<W> {
    fn new(inner: W) -> (Self, Verifier) {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(8);
        let handle = std::thread::spawn(move || {
            let reader = ChannelReader { rx, cur: Vec::new(), at: 0 };
            let options =
                sr_restore::RestoreOptions { strictness: sr_format::Strictness::Strict, ..Default::default() };
            let verified = sr_restore::Restorer::new(options).verify(sr_format::StreamReader::from_read(reader));
            verified.map(drop).map_err(anyhow::Error::new)
        });
        (Self { inner, tx: Some(tx), buf: Vec::with_capacity(VERIFY_CHUNK) }, Verifier { handle })
    }

    fn pass(&mut self, data: &[u8]) {
        if self.tx.is_none() {
            return;
        }
        self.buf.extend_from_slice(data);
        if self.buf.len() >= VERIFY_CHUNK {
            self.send();
        }
    }

    fn send(&mut self) {
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(VERIFY_CHUNK));
        if let Some(tx) = &self.tx
            && tx.send(chunk).is_err()
        {
            // The verifier stopped (it found a fault): its verdict says why.
            self.tx = None;
        }
    }
}

impl<W: Write> Write for VerifyingWriter<W> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(data)?;
        self.pass(&data[..n]);
        Ok(n)
    }

    fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
        let n = self.inner.write_vectored(bufs)?;
        let mut left = n;
        for b in bufs {
            if left == 0 {
                break;
            }
            let take = left.min(b.len());
            self.pass(&b[..take]);
            left -= take;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl<W: Write> Drop for VerifyingWriter<W> {
    fn drop(&mut self) {
        if !self.buf.is_empty() {
            self.send();
        }
        // Dropping the sender ends the verifier's input.
        self.tx = None;
    }
}

impl Verifier {
    /// Waits for the verdict on everything written (the writer must have been dropped).
    fn finish(self) -> Result<()> {
        match self.handle.join() {
            Ok(r) => r,
            Err(_) => bail!("the stream verifier panicked"),
        }
    }
}

/// The verifier's input: the chunks the writer passed, in order, then the end.
struct ChannelReader {
    rx: std::sync::mpsc::Receiver<Vec<u8>>,
    cur: Vec<u8>,
    at: usize,
}

impl std::io::Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.cur.len() {
            match self.rx.recv() {
                Ok(chunk) => {
                    self.cur = chunk;
                    self.at = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.cur.len() - self.at);
        out[..n].copy_from_slice(&self.cur[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Runs the rest of the command in a supervised child process ([`sr_xen::supervise`]): in
/// the child `None` (do the work); in the parent, once the child ended, the exit status to
/// end with. If the child died of a signal, the domain was put back (what the child held
/// released, a suspend cancelled) and the child's partial files among `outs` are removed here.
pub fn supervise(domain: &str, outs: &[&Path]) -> Result<Option<u8>> {
    crate::cmd::xen::check_host()?;
    let domid = sr_xen::resolve_domain(domain)?;
    let note = tempfile::NamedTempFile::new().context("cannot create the hand-over note")?;
    crate::cmd::net::set_go_note(note.path().to_path_buf());
    match sr_xen::supervise(domid).context("cannot start the saver process")? {
        sr_xen::Supervision::Child => Ok(None),
        sr_xen::Supervision::Exited(code) => Ok(Some(code)),
        sr_xen::Supervision::Killed { pid, signal, held, mut recovery } => {
            let pid = u32::try_from(pid).unwrap_or_default();
            for out in outs.iter().filter(|o| o.as_os_str() != "-") {
                if let Some(name) = out.file_name() {
                    let _ = std::fs::remove_file(out.with_file_name(partial_name(&name.to_string_lossy(), pid)));
                }
            }
            // Renamed away but GO never attempted: the receiver cannot start, so the guest is
            // this copy: its name back, then resumed.
            let go = std::fs::read_to_string(note.path()).unwrap_or_default() == "go";
            let mut renamed_back = None;
            // Decided by the name, not by the recovery's result: a step of it that failed
            // (log-dirty mode that would not turn off) must not keep the guest renamed away.
            let away = matches!(sr_xen::domain_name(domid), Ok(Some(n)) if n.ends_with(sr_xen::MIGRATED_AWAY));
            if away && !go {
                match rename_back(domid) {
                    Ok(()) => {
                        renamed_back = Some("renamed back (GO was never sent); ");
                        recovery = sr_xen::recover_domain(
                            domid,
                            held & !(sr_xen::held::LOG_DIRTY | sr_xen::held::DM_LOG_DIRTY),
                        );
                    }
                    Err(e) => eprintln!("xsr: cannot rename domain {domid} back: {e:#}"),
                }
            }
            let what = match recovery {
                Ok(sr_xen::Recovery::Resumed { .. }) => {
                    format!("{}; it was left suspended and has been resumed", released(held))
                }
                Ok(sr_xen::Recovery::Released { .. }) => format!("{}; it was not suspended", released(held)),
                Ok(sr_xen::Recovery::Gone) => "it no longer exists".to_string(),
                Ok(sr_xen::Recovery::HandedOver) => "it was renamed away and GO may have reached the receiver (the \
                     receiver may run the guest), so it was left suspended: check both ends before resuming at most \
                     one copy"
                    .to_string(),
                Err(e) if away && go => format!(
                    "it was renamed away and GO may have reached the receiver (the receiver may run the guest), so \
                     it was left suspended (releasing what the process held failed: {e}): check both ends before \
                     resuming at most one copy"
                ),
                Err(e) => format!("it could not be put back: {e}"),
            };
            let what = format!("{}{what}", renamed_back.unwrap_or(""));
            eprintln!("xsr: the process {pid} died of signal {signal}; domain {domid}: {what}; no output is left");
            Ok(Some(2))
        }
    }
}

/// What a killed child held and the supervisor released, in words.
fn released(held: u8) -> String {
    let names = [
        (sr_xen::held::LOG_DIRTY, "log-dirty mode turned off"),
        (sr_xen::held::DM_LOG_DIRTY, "QEMU's log-dirty mode turned off"),
        (sr_xen::held::PAUSED, "unpaused"),
        (sr_xen::held::DM_STOPPED, "QEMU continued"),
    ];
    let done: Vec<&str> = names.iter().filter(|(b, _)| held & b != 0).map(|(_, n)| *n).collect();
    if done.is_empty() { "nothing was held".to_string() } else { done.join(", ") }
}

/// Renames a domain `NAME--migratedaway` back to `NAME`.
fn rename_back(domid: u32) -> Result<()> {
    let away = sr_xen::domain_name(domid)?.context("the domain has no name")?;
    let name = away.strip_suffix(sr_xen::MIGRATED_AWAY).context("not renamed away")?;
    sr_xen::restore::rename_domain(domid, &away, name)?;
    Ok(())
}

/// Prints the summary as text.
pub fn print_summary(s: &DomainSaveSummary, out: &mut impl Write) -> std::io::Result<()> {
    let live = if s.live_passes > 0 {
        format!(" live ({} pre-copy passes, {} tracking)", s.live_passes, s.dirty_tracking)
    } else {
        String::new()
    };
    writeln!(
        out,
        "saved domain {}{live}: {} pages, {} bytes in {:.0} ms; suspended in {:.0} ms, guest stopped for {:.0} ms; domain {}",
        s.domid, s.pages, s.bytes, s.wall_ms, s.suspend_ms, s.downtime_ms, s.outcome
    )?;
    let passes: Vec<String> = s.pass_pages.iter().zip(&s.pass_ms).map(|(p, ms)| format!("{p} in {ms:.0} ms")).collect();
    writeln!(out, "passes: {}", passes.join(", "))?;
    if s.sync_ms > 0.0 {
        writeln!(out, "synced the file in {:.0} ms before destroying the domain", s.sync_ms)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use sr_format::DomainType;
    use sr_format::state::DomainState;
    use sr_memory::{GuestMemory, RamMemory};
    use sr_save::SaveError;

    use super::*;

    struct Tiny {
        mem: RamMemory,
        state: DomainState,
    }

    impl Guest for Tiny {
        fn memory(&self) -> &dyn sr_memory::GuestMemory {
            &self.mem
        }
        fn domain_type(&self) -> DomainType {
            DomainType::X86_HVM
        }
        fn page_types(&self, pfns: &[u64], out: &mut [sr_format::PageType]) -> Result<(), SaveError> {
            for (p, t) in pfns.iter().zip(out) {
                *t = self.state.page_type(*p);
            }
            Ok(())
        }
        fn pause(&self) -> Result<(), SaveError> {
            Ok(())
        }
        fn state(&self) -> Result<DomainState, SaveError> {
            Ok(self.state.clone())
        }
    }

    /// An xl file of a small HVM guest (its HVM context: the HEADER save record Xen loads,
    /// HVM_FILE_MAGIC version 1, then END).
    fn xl_file() -> Vec<u8> {
        let mem = RamMemory::new(12, 4096).unwrap();
        for pfn in [0u64, 1, 7, 1000, 4095] {
            mem.write_pages(&[pfn], &[(pfn % 250) as u8 + 1; 4096]).unwrap();
        }
        let mut state = DomainState::new(DomainType::X86_HVM, 12);
        let header =
            [&0x0018_0000_0001u64.to_le_bytes()[..], &0x5438_1286u32.to_le_bytes(), &1u32.to_le_bytes(), &[0; 16]];
        state.hvm_context = Some([&header.concat()[..], &[0; 8]].concat());
        let options = SaveOptions { container: Container::Xl { config: b"{}\0".to_vec() }, ..SaveOptions::default() };
        let mut out = Vec::new();
        Saver::new(options).save(&Tiny { mem, state }, &mut out).unwrap();
        out
    }

    #[test]
    fn a_sent_stream_is_verified_as_it_goes() {
        let file = xl_file();
        // Written in odd pieces and vectored, as the saver's writer does.
        let mut sink = Vec::new();
        let (mut tee, verifier) = VerifyingWriter::new(&mut sink);
        let (a, b) = file.split_at(1234);
        tee.write_all(a).unwrap();
        let halves = b.split_at(b.len() / 2);
        let mut rest = (halves.0, halves.1);
        while !rest.0.is_empty() || !rest.1.is_empty() {
            let n = tee.write_vectored(&[std::io::IoSlice::new(rest.0), std::io::IoSlice::new(rest.1)]).unwrap();
            let first = n.min(rest.0.len());
            rest = (&rest.0[first..], &rest.1[n - first..]);
        }
        drop(tee);
        verifier.finish().unwrap();
        assert_eq!(sink, file);
    }

    #[test]
    fn a_stream_that_does_not_verify_strictly_is_refused() {
        let mut file = xl_file();
        // A reserved bit of the libxc image header's options (big-endian u16 at byte 16):
        // ignored by Xen, rejected by a strict verification.
        let ihdr = file.windows(8).position(|w| w == b"\xff\xff\xff\xff\xff\xff\xff\xff").expect("libxc marker");
        file[ihdr + 17] |= 0x02;
        let (mut tee, verifier) = VerifyingWriter::new(std::io::sink());
        tee.write_all(&file).unwrap();
        drop(tee);
        let e = verifier.finish().unwrap_err();
        assert!(format!("{e:#}").contains("option"), "{e:#}");
        // A truncated stream too.
        let file = xl_file();
        let (mut tee, verifier) = VerifyingWriter::new(std::io::sink());
        tee.write_all(&file[..file.len() - 16]).unwrap();
        drop(tee);
        assert!(verifier.finish().is_err());
    }

    #[test]
    fn a_written_file_is_verified_strictly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.save");
        std::fs::write(&path, xl_file()).unwrap();
        verify_file(&path).unwrap();
        let mut bad = xl_file();
        let n = bad.len();
        bad.truncate(n - 8);
        std::fs::write(&path, bad).unwrap();
        let e = verify_file(&path).unwrap_err();
        assert!(format!("{e:#}").contains("does not verify strictly"), "{e:#}");
    }

    #[test]
    fn what_a_killed_process_held_reads_as_words() {
        assert_eq!(released(0), "nothing was held");
        assert_eq!(
            released(sr_xen::held::PAUSED | sr_xen::held::DM_LOG_DIRTY),
            "QEMU's log-dirty mode turned off, unpaused"
        );
    }
}
