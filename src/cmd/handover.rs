//! The receiving end of a live migration into a new Xen domain: `xsr receive --domain` and
//! `xsr migrate-receive`, both speaking `xl migrate`'s protocol (`sr_proto::xl_migrate`,
//! Xen 4.17's `tools/xl/xl_migrate.c`) over a pair of byte channels, so that a stock
//! `xl migrate`, `xsr migrate` and `xsr send --domain` can all send to it.
//!
//! 1. The banner on the ack channel.
//! 2. The stream: the `xl` header is read here (the domain's configuration), the rest (libxl
//!    stream, libxc stream inside it) is walked record by record by sr-format's reader, so
//!    that not a byte past its END is read, and copied as it arrives into a pipe that
//!    `libxl_domain_create_restore` restores from, with this program as libxl's save helper
//!    (as `xsr restore --domain`): a new domain, paused, named `NAME--incoming` as xl names it.
//! 3. READY (the domain is restored), then GO from the sender (it has renamed its copy
//!    `NAME--migratedaway`): rename to `NAME`, unpause, report the status.
//!
//! A failure before READY destroys whatever libxl made (libxl does it itself when the restore
//! fails) and writes one `XSR-TRANSFER/1 ERROR <code> <message>` line on the ack channel
//! where READY would be: `xsr` senders show the message; `xl migrate` reports unexpected data
//! instead of the ready message and resumes its guest, as for any failure there. A GO that
//! does not arrive is reported (status 0xff), the copy destroyed and the sender given
//! permission to resume, as xl does.

use std::cell::RefCell;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use serde::Serialize;
use sr_format::{Item, StreamReader};
use sr_proto::xl_migrate::{
    BANNER, Channel, GO, Message as XlMessage, READY, REPORT, Receiver, ReceiverOutcome, ReceiverStep, read_message,
};

use crate::cmd::helper::{HelperReport, REPORT_ENV};
use crate::cmd::net::hold;
use crate::cmd::restore_domain::HelperFailed;
use crate::outcome::exit_code;
use crate::transfer::Message;

/// How to receive.
#[derive(Debug, Clone, Default)]
pub struct DomainReceiveSettings {
    /// Leave the domain paused once renamed (`xl migrate-receive -p`).
    pub paused: bool,
    /// Where to note the name of the domain being made (`NAME--incoming`), for a supervising
    /// process that destroys it if this one dies.
    pub state_file: Option<PathBuf>,
    /// The helper's report file (set in its environment by [`prepare`]).
    pub report_file: Option<PathBuf>,
}

/// What a received migration made (`--json`).
#[derive(Debug, Clone, Serialize, Default)]
pub struct DomainReceived {
    /// The new domain's id.
    pub domid: u32,
    /// Its name.
    pub name: String,
    /// "pv", "pvh" or "hvm" (the configuration's type).
    pub guest_type: String,
    /// "running" or "paused".
    pub state: &'static str,
    /// Pages written into the domain.
    pub pages: u64,
    /// Bytes of the whole stream (xl header included).
    pub stream_bytes: u64,
    /// From the first byte of the stream to the restored, paused domain, milliseconds.
    pub restore_ms: f64,
    /// From the end of the stream to the restored domain (libxl's devices, the helper's END),
    /// milliseconds.
    pub after_stream_ms: f64,
    /// From READY to GO (the sender renaming its copy away), milliseconds.
    pub wait_go_ms: f64,
    /// Rename and unpause, milliseconds.
    pub start_ms: f64,
}

/// Sets this program as libxl's save helper, with its report file, while the process has one
/// thread (before a TLS session or a listener starts any). Returns the report file, which
/// lives as long as the returned guard.
pub fn prepare() -> Result<tempfile::NamedTempFile> {
    let report = tempfile::NamedTempFile::new().context("cannot create the helper's report file")?;
    let exe = std::env::current_exe().context("cannot find this program for libxl to run as its save helper")?;
    sr_xen::restore::set_helper_env(&exe, &[(REPORT_ENV, report.path().as_os_str())])
        .context("cannot set the save helper's environment")?;
    Ok(report)
}

/// Copies what is read from `inner` into `out` once it is set.
struct Tee<'a, R: ?Sized> {
    inner: &'a mut R,
    out: &'a RefCell<Option<File>>,
    /// Writing the pipe failed (libxl stopped reading): its error is the one to report.
    pipe_failed: &'a RefCell<bool>,
    bytes: u64,
    last_byte: Option<Instant>,
}

impl<R: Read + ?Sized> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes += n as u64;
        if n > 0 {
            self.last_byte = Some(Instant::now());
        }
        if let Some(out) = self.out.borrow_mut().as_mut()
            && let Err(e) = out.write_all(&buf[..n])
        {
            *self.pipe_failed.borrow_mut() = true;
            return Err(e);
        }
        Ok(n)
    }
}

/// What the stream made.
struct Restored {
    domid: u32,
    name: String,
    incoming: String,
    guest_type: String,
    bytes: u64,
    restore_ms: f64,
    after_stream_ms: f64,
}

fn config_field<'a>(config: &'a serde_json::Value, section: &str, key: &str) -> Option<&'a str> {
    config.get(section)?.get(key)?.as_str()
}

/// Reads the stream exactly to its END into a new paused domain `NAME--incoming`.
fn restore_stream(stream: &mut dyn Read, settings: &DomainReceiveSettings, report: Option<&Path>) -> Result<Restored> {
    let started = Instant::now();
    let out = RefCell::new(None);
    let pipe_failed = RefCell::new(false);
    let mut tee = Tee { inner: stream, out: &out, pipe_failed: &pipe_failed, bytes: 0, last_byte: None };
    let mut reader = StreamReader::from_read(&mut tee).skip_page_bodies(true);
    let config = match reader.next_item().context("the migration stream does not start with an xl header")? {
        Some(Item::Xl { header, config, .. }) => {
            if !header.is_stream_v2() {
                bail!("the stream is a libxl v1 stream (Xen before 4.6): only v2 streams are restored");
            }
            if config.is_empty() {
                bail!("the xl header carries no configuration: a new domain needs one");
            }
            config.to_vec()
        }
        Some(_) => {
            bail!("the migration stream is not an xl stream (no xl header): a new domain needs its configuration")
        }
        None => bail!("the migration stream is empty"),
    };
    let parsed: serde_json::Value = serde_json::from_slice(config.strip_suffix(&[0]).unwrap_or(&config))
        .context("the xl header's configuration is not JSON")?;
    let name = config_field(&parsed, "c_info", "name").unwrap_or_default().to_string();
    if name.is_empty() {
        bail!("the configuration names no domain (c_info.name)");
    }
    let guest_type = config_field(&parsed, "c_info", "type").unwrap_or("?").to_string();
    let incoming = format!("{name}--incoming");
    if let Some(state) = &settings.state_file {
        std::fs::write(state, &incoming).with_context(|| format!("cannot write {}", state.display()))?;
    }
    let (pipe_r, pipe_w) = io::pipe().context("cannot make a pipe for libxl")?;
    let pipe_r = File::from(std::os::fd::OwnedFd::from(pipe_r));
    *out.borrow_mut() = Some(File::from(std::os::fd::OwnedFd::from(pipe_w)));
    let (walked, created) = std::thread::scope(|scope| {
        let config = &config;
        let incoming = &incoming;
        let restorer = scope.spawn(move || {
            let req = sr_xen::restore::CreateRestore {
                config_json: config,
                name: Some(incoming),
                helper: None,
                helper_env: &[],
                paused: true,
                interrupt: None,
            };
            let r = sr_xen::restore::create_restore(&pipe_r, &req);
            // libxl reads no more: a writer still writing learns it at once.
            drop(pipe_r);
            (r, Instant::now())
        });
        let walked = (|| -> Result<()> {
            while reader.next_item()?.is_some() {}
            Ok(())
        })();
        // The end of the stream (or its failure): libxl sees the end of its input.
        out.borrow_mut().take();
        (walked, restorer.join())
    });
    let stream_end = tee.last_byte.unwrap_or(started);
    let bytes = tee.bytes;
    let (created, restored_at) = created.map_err(|_| anyhow!("the restoring thread panicked"))?;
    let report = report.and_then(read_report);
    match (walked, created) {
        (Ok(()), Ok(domid)) => Ok(Restored {
            domid,
            name,
            incoming,
            guest_type,
            bytes,
            restore_ms: restored_at.duration_since(started).as_secs_f64() * 1e3,
            after_stream_ms: restored_at.saturating_duration_since(stream_end).as_secs_f64() * 1e3,
        }),
        (Err(e), Ok(domid)) => {
            let _ = sr_xen::restore::destroy_domain(domid);
            Err(e.context("the migration stream failed after libxl restored the domain; it was destroyed"))
        }
        (walked, Err(e)) => {
            // The stream's own failure, unless it failed because libxl stopped reading.
            if let Err(w) = walked
                && !*pipe_failed.borrow()
            {
                return Err(w.context("receiving the migration stream failed; libxl destroyed the new domain"));
            }
            if let Some(HelperReport { error: Some(text), invalid_stream, .. }) = report {
                return Err(anyhow::Error::new(HelperFailed { text, invalid_stream })
                    .context("restoring the migration stream failed; libxl destroyed the new domain"));
            }
            Err(anyhow::Error::new(e)
                .context("libxl could not restore the migration stream (its log above says why); no domain was left"))
        }
    }
}

fn read_report(path: &Path) -> Option<HelperReport> {
    let bytes = std::fs::read(path).ok().filter(|b| !b.is_empty())?;
    serde_json::from_slice(&bytes).ok()
}

fn write(ack: &mut dyn Write, bytes: &[u8], what: &str) -> Result<()> {
    ack.write_all(bytes).and_then(|()| ack.flush()).with_context(|| format!("cannot write the {what} to the sender"))
}

/// Receives one migration: `stream` is the stream channel (read exactly: GO follows the
/// stream), `ack` the ack channel. Returns once the guest runs here (or stays paused with
/// [`DomainReceiveSettings::paused`]); every other ending is an error, after this side's copy
/// was destroyed (or, when even that failed, left paused and said so).
pub fn receive_domain(
    stream: &mut dyn Read,
    ack: &mut dyn Write,
    settings: &DomainReceiveSettings,
) -> Result<DomainReceived> {
    let mut machine = Receiver::new();
    let mut errors: Vec<anyhow::Error> = Vec::new();
    let mut restored: Option<Restored> = None;
    let mut summary = DomainReceived::default();
    let mut ready_at = Instant::now();
    loop {
        let step = machine.step();
        let result: Result<()> = match step {
            ReceiverStep::Done(outcome) => break finish(outcome, restored, summary, errors),
            ReceiverStep::WriteBanner => write(ack, BANNER, "banner"),
            ReceiverStep::ReadStream => {
                match restore_stream(stream, settings, settings.report_file.as_deref()) {
                    Ok(r) => {
                        restored = Some(r);
                        Ok(())
                    }
                    Err(e) => {
                        // Where READY would be: the reason, for an xsr sender.
                        let code = exit_code(&e, crate::outcome::Command::Receive);
                        let line = Message::Error { code, message: crate::outcome::render(&e) }.encode();
                        let _ = ack.write_all(&line).and_then(|()| ack.flush());
                        Err(e)
                    }
                }
            }
            ReceiverStep::WriteReady => {
                hold("restored");
                let r = write(ack, READY, "ready message");
                ready_at = Instant::now();
                r
            }
            ReceiverStep::ReadGo => {
                let r = read_message(stream, Channel::Stream, XlMessage::Go)
                    .map_err(|e| anyhow!(e).context("the sender did not give permission to start (GO)"));
                summary.wait_go_ms = ready_at.elapsed().as_secs_f64() * 1e3;
                if r.is_ok() {
                    // The sender has given its copy up: if this process dies now, its
                    // supervisor starts this copy rather than destroy it.
                    if let Some(state) = &settings.state_file {
                        let _ =
                            std::fs::OpenOptions::new().append(true).open(state).and_then(|mut f| f.write_all(b"\ngo"));
                    }
                    hold("go");
                }
                r
            }
            ReceiverStep::Start => {
                let begun = Instant::now();
                let r = match restored.as_ref() {
                    Some(r) => start(r, settings.paused),
                    None => Err((sr_proto::xl_migrate::STATUS_FAIL, anyhow!("no domain to start"))),
                };
                summary.start_ms = begun.elapsed().as_secs_f64() * 1e3;
                match r {
                    Ok(()) => {
                        hold("started");
                        Ok(())
                    }
                    Err((status, e)) => {
                        errors.push(e);
                        machine.start_failed(status);
                        continue;
                    }
                }
            }
            ReceiverStep::WriteReport { .. } => write(ack, REPORT, "report"),
            ReceiverStep::WriteStatus { status } => write(ack, &[status], "status byte"),
            ReceiverStep::Destroy { .. } => match restored.take() {
                Some(r) => sr_xen::restore::destroy_domain(r.domid).map_err(|e| {
                    // Still here: keep it for the report.
                    let err = anyhow!(e).context(format!("cannot destroy the received copy, domain {}", r.domid));
                    restored = Some(r);
                    err
                }),
                None => Ok(()),
            },
            ReceiverStep::WritePermission => write(ack, GO, "permission for the sender to resume"),
        };
        match result {
            Ok(()) => machine.succeeded(),
            Err(e) => {
                errors.push(e);
                machine.failed()
            }
        };
    }
}

/// Renames the copy `NAME` and unpauses it; on failure, the status byte (libxl's error code
/// negated, as xl sends it) and the error.
fn start(r: &Restored, paused: bool) -> Result<(), (u8, anyhow::Error)> {
    let status = |e: &sr_xen::XenError| match e {
        sr_xen::XenError::Libxl { rc, .. } => u8::try_from(-rc).ok().filter(|&s| s != 0).unwrap_or(3),
        _ => 3,
    };
    sr_xen::restore::rename_domain(r.domid, &r.incoming, &r.name).map_err(|e| {
        (status(&e), anyhow!(e).context(format!("cannot rename domain {} from {} to {}", r.domid, r.incoming, r.name)))
    })?;
    if !paused {
        sr_xen::restore::unpause_domain(r.domid)
            .map_err(|e| (status(&e), anyhow!(e).context(format!("cannot unpause domain {}", r.domid))))?;
    }
    Ok(())
}

fn finish(
    outcome: ReceiverOutcome,
    restored: Option<Restored>,
    mut summary: DomainReceived,
    mut errors: Vec<anyhow::Error>,
) -> Result<DomainReceived> {
    match outcome {
        ReceiverOutcome::Running => {
            let r = restored.context("running without a domain")?;
            if !errors.is_empty() {
                eprintln!("xsr: domain {} ({}) runs, but the sender was not told: {:#}", r.domid, r.name, errors[0]);
            }
            summary.domid = r.domid;
            summary.name = r.name;
            summary.guest_type = r.guest_type;
            summary.stream_bytes = r.bytes;
            summary.restore_ms = r.restore_ms;
            summary.after_stream_ms = r.after_stream_ms;
            Ok(summary)
        }
        ReceiverOutcome::NoCopy => {
            let e = if errors.is_empty() { anyhow!("the migration failed") } else { errors.remove(0) };
            Err(e.context("the migration was not received; no copy of the domain is left here"))
        }
        ReceiverOutcome::Undefined => {
            let e = if errors.is_empty() { anyhow!("the migration failed") } else { errors.remove(0) };
            let more: Vec<String> = errors.iter().map(|e| format!("{e:#}")).collect();
            let left = restored.map_or(String::new(), |r| format!(" (domain {}, {})", r.domid, r.incoming));
            Err(e.context(format!(
                "the migration failed and the received copy{left} could not be destroyed ({}); it is left paused and \
                 the sender was not given permission to resume",
                more.join("; ")
            )))
        }
    }
}

/// Fills in the pages from the helper's report.
pub fn add_report(summary: &mut DomainReceived, report: &Path, paused: bool) {
    if let Some(r) = read_report(report) {
        summary.pages = r.pages;
    }
    summary.state = if paused { "paused" } else { "running" };
}

/// The text summary.
pub fn print_summary(s: &DomainReceived, out: &mut dyn Write) -> io::Result<()> {
    writeln!(
        out,
        "received domain {} ({}, {}) {}: {} pages, {} bytes; restored {:.0} ms after the first byte ({:.0} ms after the \
         last), started {:.0} ms after GO",
        s.domid, s.name, s.guest_type, s.state, s.pages, s.stream_bytes, s.restore_ms, s.after_stream_ms, s.start_ms
    )
}

/// Runs the rest of the command in a supervised child process: in the child `None` (do the
/// work, noting the domain it makes in `state`); in the parent, once the child ended, the exit
/// status to end with. If the child died of a signal, a domain still named as the child noted
/// (`NAME--incoming`: not handed over) is destroyed here.
pub fn supervise(state: &Path) -> Result<Option<u8>> {
    match sr_xen::supervise_child().context("cannot start the receiver process")? {
        sr_xen::Supervised::Child => Ok(None),
        sr_xen::Supervised::Exited(code) => Ok(Some(code)),
        sr_xen::Supervised::Killed { pid, signal, .. } => {
            let noted = std::fs::read_to_string(state).unwrap_or_default();
            let mut lines = noted.lines();
            let incoming = lines.next().unwrap_or_default().to_string();
            let go = lines.next() == Some("go");
            let what = if incoming.is_empty() {
                "it had made no domain".to_string()
            } else {
                match sr_xen::resolve_domain(&incoming) {
                    // GO had come: the sender gave its copy up, so this one is started.
                    Ok(domid) if go => {
                        let name = incoming.strip_suffix("--incoming").unwrap_or(&incoming);
                        match sr_xen::restore::rename_domain(domid, &incoming, name)
                            .and_then(|()| sr_xen::restore::unpause_domain(domid))
                        {
                            Ok(()) => format!("GO had come, so its copy, domain {domid}, was started as {name}"),
                            Err(e) => format!("GO had come, but its copy, domain {domid}, could not be started: {e}"),
                        }
                    }
                    Ok(domid) => match sr_xen::restore::destroy_domain(domid) {
                        Ok(()) => format!("its copy, domain {domid} ({incoming}), has been destroyed"),
                        Err(e) => format!("its copy, domain {domid} ({incoming}), could not be destroyed: {e}"),
                    },
                    Err(_) if go => {
                        // Renamed already: unpause it if it is still paused.
                        let name = incoming.strip_suffix("--incoming").unwrap_or(&incoming);
                        match sr_xen::resolve_domain(name) {
                            Ok(domid) => match sr_xen::restore::unpause_domain(domid) {
                                Ok(()) => format!("GO had come; its copy, domain {domid} ({name}), was unpaused"),
                                Err(_) => format!("GO had come; its copy is domain {domid} ({name})"),
                            },
                            Err(_) => format!("GO had come, but no domain {incoming} or {name} is left"),
                        }
                    }
                    Err(_) => format!("no domain {incoming} is left"),
                }
            };
            eprintln!("xsr: the receiver process {pid} died of signal {signal}; {what}");
            Ok(Some(2))
        }
    }
}
