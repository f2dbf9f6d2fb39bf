//! `xsr save --domain` and `xsr send --domain`: a running x86 PV domain as the `xl` save file
//! `xl save` writes (xl header with the domain's configuration, libxl stream, libxc stream
//! v3), which stock `xl restore` resumes.
//!
//! The guest is suspended cooperatively ([`sr_xen::PvSaveGuest`]), its memory sent by
//! sr-save's workers (live: pre-copy first, with log-dirty tracking or, where Xen refuses it
//! for PV guests, by comparison), and the state checked by the restorer's rules before END.
//! Only once the output is complete (the file renamed into place, or the receiver's OK) is
//! the domain destroyed, or with `--keep-running` resumed, as `xl save [-c]` does. On every
//! failure and on SIGINT/SIGTERM the guest resumes and nothing complete-looking is left.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;
use sr_save::{Container, PrecopyPolicy, SaveOptions, SaveStats, Saver};
use sr_xen::{Interrupt, PvSaveGuest, XenDomain};

use crate::cmd::net::Sent;
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
}

/// What one save attempt gives: the saver's statistics, the dirty tracking used, and when
/// the suspend was requested and how long it took.
type Saved = (SaveStats, &'static str, Option<(Instant, Duration)>);

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

/// Saves the opened domain into `out`; the guest is left suspended on success.
fn save_into(opened: &Opened, settings: &DomainSaveSettings, out: impl Write + Send) -> Result<Saved> {
    let domain = &opened.domain;
    let guest = PvSaveGuest::new(domain, settings.suspend_timeout)?;
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
    let stats = Saver::new(options).on_event(progress_handler(&bar)).save(&guest, out);
    bar.finish_and_clear();
    let stats = stats?;
    if tracking == "log-dirty" {
        domain.disable_log_dirty()?;
    }
    Ok((stats, tracking, guest.suspended()))
}

/// After the output is complete: destroy the domain, or resume it with `--keep-running`.
fn finish(opened: Opened, settings: &DomainSaveSettings, saved: Saved, sync: Duration) -> Result<DomainSaveSummary> {
    let complete = Instant::now();
    let (stats, tracking, suspended) = saved;
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
    Ok(DomainSaveSummary {
        domid: domain.domid(),
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
        let saved = save_into(&opened, settings, &file).with_context(|| format!("save to {} failed", out.display()))?;
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

/// `xsr send --domain D ...`: the stream goes through `exchange` (the transfer with the
/// receiver's acknowledgement, which calls the save it is given with its forward channel);
/// the domain is destroyed (or resumed) only after the receiver's OK. Returns the summary and
/// the receiver's own.
pub fn send_domain(
    settings: &DomainSaveSettings,
    exchange: impl FnOnce(&mut dyn FnMut(Box<dyn Write + Send>) -> Result<SaveStats>) -> Result<Sent>,
) -> Result<(DomainSaveSummary, String)> {
    let opened = open(settings)?;
    let mut extra = None;
    let sent = guarded(&opened, || {
        exchange(&mut |w| {
            let (stats, tracking, suspended) = save_into(&opened, settings, w)?;
            extra = Some((tracking, suspended));
            Ok(stats)
        })
    })?;
    let (tracking, suspended) = extra.context("the transfer reported success without a save")?;
    let summary = finish(opened, settings, (sent.stats, tracking, suspended), Duration::ZERO)?;
    Ok((summary, sent.summary))
}

/// Runs the rest of the command in a supervised child process ([`sr_xen::supervise`]): in
/// the child `None` (do the work); in the parent, once the child ended, the exit status to
/// end with. If the child died of a signal, the domain was put back and the child's partial
/// `out` file is removed here.
pub fn supervise(domain: &str, out: Option<&Path>) -> Result<Option<u8>> {
    crate::cmd::xen::check_host()?;
    let domid = sr_xen::resolve_domain(domain)?;
    match sr_xen::supervise(domid).context("cannot start the saver process")? {
        sr_xen::Supervision::Child => Ok(None),
        sr_xen::Supervision::Exited(code) => Ok(Some(code)),
        sr_xen::Supervision::Killed { pid, signal, recovery } => {
            if let Some(out) = out.filter(|o| o.as_os_str() != "-")
                && let Some(name) = out.file_name()
            {
                let pid = u32::try_from(pid).unwrap_or_default();
                let _ = std::fs::remove_file(out.with_file_name(partial_name(&name.to_string_lossy(), pid)));
            }
            let what = match recovery {
                Ok(sr_xen::Recovery::Resumed) => "it was left suspended and has been resumed".to_string(),
                Ok(sr_xen::Recovery::Untouched) => "it was not suspended".to_string(),
                Ok(sr_xen::Recovery::Gone) => "it no longer exists".to_string(),
                Err(e) => format!("it could not be put back: {e}"),
            };
            eprintln!(
                "xsr: the saver process {pid} died of signal {signal}; domain {domid}: {what}; no output is left"
            );
            Ok(Some(2))
        }
    }
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
