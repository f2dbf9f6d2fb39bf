//! `xsr --restore-domain ...` and `xsr --save-domain ...`: xsr as libxl's save helper.
//!
//! libxl runs the program named by `$LIBXL_SAVE_HELPER` (default Xen's `libxl-save-helper`)
//! with the helper's command line (`sr_proto::helper::HelperArgs`) and talks to it over its
//! standard input and output (`sr_proto::helper::HelperMessage`). So
//! `LIBXL_SAVE_HELPER=/usr/local/bin/xsr xl restore FILE` runs stock `xl`, with libxl doing the
//! domain, xenstore, console, devices and device model, and xsr the memory and CPU half:
//! `sr_xen::restore::restore_into`, which reads the libxc stream from the descriptor libxl
//! passes exactly up to END (libxl reads its own records after it from the same descriptor).
//!
//! The channel: before anything else the real standard output is moved to a private
//! descriptor for the protocol and descriptor 1 is pointed at standard error, so nothing but
//! protocol frames can reach libxl's pipe. Then, as `libxl_save_helper.c` does: the
//! `static_data_done` callback (when libxl implements it, bit 8 of `cbflags`), then
//! `restore_results` (the ring frames, always sent) and `complete` (0, or -1 and an errno,
//! after a `log` message at error level with the rule and the file offset, or the Xen call,
//! that failed), libxl's reply to `complete`, exit 0. libxl destroys the domain when the
//! result is a failure.
//!
//! Save mode (`xl save`, `xl migrate`): the domain's libxc stream written to the descriptor
//! libxl passes, by sr-save through `sr_xen::PvSaveGuest` (x86 PV) or
//! `sr_xen::HvmSaveGuest::for_toolstack` (HVM, PVH), with the guest suspended by libxl (the
//! `suspend` callback, answered before the final pass; for HVM libxl also stops QEMU and saves
//! its state there, and writes the EMULATOR records after the libxc stream), QEMU's log-dirty
//! mode switched by libxl (`switch_qemu_logdirty`, on at the start and off at the end, as
//! Xen's HVM saver asks it) and, live, pre-copy with Xen's log-dirty mode or, where Xen
//! refuses it for PV, by comparison; then `complete`. Checkpointed streams (Remus, COLO) are
//! refused in the protocol (a `log` saying so, a failed `complete`; libxl fails the save and
//! the guest runs on).
//!
//! `XSR_HELPER_REPORT=PATH` in the environment makes the helper write a JSON summary there
//! ([`HelperReport`]); `xsr restore --domain` reads it for its own summary.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Write};

use serde::{Deserialize, Serialize};
use sr_proto::helper::{HelperArgs, HelperMessage, StreamType, level, read_reply};

/// The environment variable naming the report file.
pub const REPORT_ENV: &str = "XSR_HELPER_REPORT";

/// An environment variable a timing wrapper may set to the wall clock just before it runs the
/// helper (nanoseconds since the Unix epoch, as `date +%s%N` prints them): the report then
/// says, to the millisecond, when main started and when the work began and ended
/// ([`HelperReport::at_main_ms`]), where `/proc/self/stat` only has 10 ms ticks.
pub const T0_ENV: &str = "XSR_HELPER_T0";

/// `XSR_HELPER_TIMING=1` has a restore time each `read(2)` of the stream
/// ([`HelperReport::read_ms`]); off by default, as each clock reading is a system call of its
/// own in a PV dom0 (4000 of them for an HVM guest's 2000 reads cost more than the reads).
pub const TIMING_ENV: &str = "XSR_HELPER_TIMING";

/// Milliseconds since [`T0_ENV`]'s time, `None` without it.
pub fn since_t0_ms() -> Option<f64> {
    let t0: u128 = std::env::var(T0_ENV).ok()?.trim().parse().ok()?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok()?.as_nanos();
    Some(now.checked_sub(t0)? as f64 / 1e6)
}

/// The log context of xsr's messages in libxl's log (Xen's helper uses "libxl-save-helper").
const CONTEXT: &str = "xsr";

/// [`since_t0_ms`] when [`run`] began.
static AT_MAIN: std::sync::OnceLock<Option<f64>> = std::sync::OnceLock::new();

fn at_main() -> Option<f64> {
    AT_MAIN.get().copied().flatten()
}

/// What a helper run did, written to `$XSR_HELPER_REPORT`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct HelperReport {
    /// The domain restored into.
    pub domid: u32,
    /// Whether the restore completed.
    pub ok: bool,
    /// Why not (the rule and byte offset, or the Xen call).
    pub error: Option<String>,
    /// Whether the error is about the stream (exit 1) rather than Xen or I/O (exit 2).
    pub invalid_stream: bool,
    /// The xenstore ring's frame handed to libxl.
    pub store_gfn: u64,
    /// The console ring's frame handed to libxl.
    pub console_gfn: u64,
    /// Pages written into the domain.
    pub pages: u64,
    /// Frames populated.
    pub populated: u64,
    /// Page tables localised and pinned (x86 PV).
    pub page_tables: u64,
    /// Page tables pinned (x86 PV).
    pub pinned: u64,
    /// Bytes of libxc stream read.
    pub bytes: u64,
    /// Wall time of the restore, milliseconds.
    pub restore_ms: f64,
    /// Of which at END (vcpus, pinning, p2m, grants or the HVM context), milliseconds.
    pub end_ms: f64,
    /// Of which in the domain's work (setup, populate, map, write, state, END), milliseconds;
    /// the rest is reading and checking the stream.
    pub domain_ms: f64,
    /// Of which opening the domain before the first record (Xen's libraries, the domain's
    /// info; x86 PV: the host's m2p), milliseconds.
    #[serde(default)]
    pub setup_ms: f64,
    /// Of which waiting in `read(2)` on the stream's descriptor, milliseconds (the rest of what
    /// is not in the domain is checking the stream and bookkeeping); measured only with
    /// `XSR_HELPER_TIMING=1` (timing each read costs two clock readings, each a system call
    /// in a PV dom0).
    #[serde(default)]
    pub read_ms: Option<f64>,
    /// The `read(2)` calls made on the stream's descriptor.
    #[serde(default)]
    pub read_calls: u64,
    /// From the process's start (its exec) to the restore's start, milliseconds (from
    /// `/proc/self/stat`, so in steps of the kernel's clock tick, 10 ms); `None` if unknown.
    #[serde(default)]
    pub startup_ms: Option<f64>,
    /// Save mode: opening the domain (Xen's libraries, the p2m or the populated gfns),
    /// milliseconds.
    #[serde(default)]
    pub open_ms: Option<f64>,
    /// Save mode: from the suspend request to the end of the stream, milliseconds (the guest's
    /// downtime as far as the helper sees it).
    #[serde(default)]
    pub downtime_ms: Option<f64>,
    /// Save mode: the domain's type (`pv`, `pvh`, `hvm`).
    #[serde(default)]
    pub guest_type: Option<String>,
    /// With [`T0_ENV`]: from the wrapper's clock reading to main (the exec, the dynamic
    /// loader and Rust's start-up), milliseconds.
    #[serde(default)]
    pub at_main_ms: Option<f64>,
    /// With [`T0_ENV`]: to the start of the restore or save proper (after the channel, the
    /// arguments, the descriptors and, for a save, the domain opened), milliseconds.
    #[serde(default)]
    pub at_start_ms: Option<f64>,
    /// With [`T0_ENV`]: to the moment `complete` is sent, milliseconds (the rest of the
    /// helper's life is libxl's reply and the exit).
    #[serde(default)]
    pub at_complete_ms: Option<f64>,
    /// The process's peak resident memory when `complete` is sent (`VmHWM` of
    /// `/proc/self/status`), KiB: what its exit has to give back.
    #[serde(default)]
    pub peak_rss_kib: Option<u64>,
}

/// `VmHWM` of `/proc/self/status`, KiB.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?.trim().strip_suffix("kB")?.trim().parse().ok()
}

/// Milliseconds since this process started (exec), from its start time in `/proc/self/stat`
/// (clock ticks since boot, field 22) and `/proc/uptime`; `None` where they cannot be read.
/// For the helper's timing figures: libxl's view of a helper includes its exec and startup.
pub fn since_exec_ms() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let after = &stat[stat.rfind(')')? + 1..];
    let start_ticks: f64 = after.split_whitespace().nth(19)?.parse().ok()?;
    let uptime: f64 = std::fs::read_to_string("/proc/uptime").ok()?.split_whitespace().next()?.parse().ok()?;
    let tick = rustix::param::clock_ticks_per_second() as f64;
    Some((uptime - start_ticks / tick) * 1e3)
}

/// Whether the arguments after the program name are the helper's (checked before any other
/// command-line parsing).
pub fn is_helper_invocation(args: &[OsString]) -> bool {
    args.first().is_some_and(|a| HelperArgs::is_helper_mode(a))
}

/// The protocol channel: frames to the saved standard output, replies from standard input.
struct Channel {
    out: File,
}

impl Channel {
    /// Moves standard output out of the way (see the module docs).
    fn open() -> io::Result<Self> {
        let out = rustix::io::dup(io::stdout())?;
        rustix::stdio::dup2_stdout(io::stderr())?;
        Ok(Self { out: File::from(out) })
    }

    fn send(&mut self, m: &HelperMessage) -> io::Result<()> {
        m.write_to(&mut self.out)
    }

    /// Sends `m` and waits for libxl's reply.
    fn call(&mut self, m: &HelperMessage) -> io::Result<i32> {
        self.send(m)?;
        read_reply(&mut io::stdin().lock())
    }

    /// A `log` message; `errnoval` `None` is sent as -1, which libxl's logger prints without
    /// an errno text (0 would print ": Success").
    fn log(&mut self, lvl: u32, errnoval: Option<i32>, text: &str) -> io::Result<()> {
        let errnoval = errnoval.map_or(u32::MAX, |e| e.unsigned_abs());
        self.send(&HelperMessage::log(lvl, errnoval, CONTEXT, text))
    }

    /// `complete`, libxl's reply, and the exit status Xen's helper gives: 0 once libxl has
    /// replied, 2 when the reply channel broke.
    fn complete(&mut self, retval: i32, errnoval: i32) -> u8 {
        match self.call(&HelperMessage::Complete { retval, errnoval }) {
            Ok(_) => 0,
            Err(e) => {
                eprintln!("xsr: libxl did not answer the save helper's completion: {e}");
                2
            }
        }
    }
}

fn write_report(report: &HelperReport) {
    let Some(path) = std::env::var_os(REPORT_ENV) else { return };
    let report = &HelperReport {
        at_main_ms: at_main(),
        at_complete_ms: since_t0_ms(),
        peak_rss_kib: peak_rss_kib(),
        ..report.clone()
    };
    let written = serde_json::to_vec_pretty(report).map_err(io::Error::other).and_then(|b| {
        let mut f = File::create(&path)?;
        f.write_all(&b)?;
        f.sync_all()
    });
    if let Err(e) = written {
        eprintln!("xsr: cannot write the helper report to {}: {e}", path.to_string_lossy());
    }
}

/// Runs the helper; returns the exit status.
pub fn run(args: &[OsString]) -> u8 {
    let at_main = since_t0_ms();
    AT_MAIN.get_or_init(|| at_main);
    let parsed = match HelperArgs::parse(args) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("xsr: save helper: {e}");
            return 2;
        }
    };
    let mut channel = match Channel::open() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("xsr: save helper: cannot set up the channel to libxl: {e}");
            return 2;
        }
    };
    match parsed {
        HelperArgs::Save { stream_type, domid, .. } if stream_type != StreamType::Plain => {
            let text = format!(
                "checkpointed saves ({stream_type:?}) are not done by xsr (domain {domid}): use Xen's libxl-save-helper"
            );
            eprintln!("xsr: {text}");
            let _ = channel.log(level::ERROR, Some(libc_eopnotsupp()), &text);
            channel.complete(-1, libc_eopnotsupp())
        }
        HelperArgs::Save { .. } => save(&parsed, channel),
        HelperArgs::Restore { stream_type, domid, .. } if stream_type != StreamType::Plain => {
            let text = format!(
                "checkpointed streams ({stream_type:?}) are not restored by xsr (domain {domid}): use Xen's libxl-save-helper"
            );
            refuse(&mut channel, domid, &text)
        }
        HelperArgs::Restore { .. } => restore(&parsed, channel),
    }
}

/// `XCFLAGS_LIVE` of `xc_domain_save`'s flags (xenguest.h): a live (pre-copy) save.
#[cfg(feature = "xen")]
const XCFLAGS_LIVE: u32 = 1;

#[cfg(not(feature = "xen"))]
fn save(args: &HelperArgs, mut channel: Channel) -> u8 {
    let HelperArgs::Save { domid, .. } = *args else { unreachable!("save mode") };
    let text = format!("this xsr was built without the xen feature: it cannot save domain {domid}");
    eprintln!("xsr: {text}");
    let _ = channel.log(level::ERROR, Some(libc_eopnotsupp()), &text);
    channel.complete(-1, libc_eopnotsupp())
}

/// Save mode: the libxc stream of the domain written to `io_fd` by sr-save, as
/// `xc_domain_save` writes it (`libxl_save_helper.c`'s `--save-domain`). The guest is
/// suspended by libxl (the `suspend` callback; libxl also stops the device model and saves its
/// state, and resumes the guest when the save fails); live (`XCFLAGS_LIVE`, `xl migrate`)
/// pre-copies with Xen's log-dirty mode or, where Xen refuses it (x86 PV on a Xen without
/// shadow paging), by comparing pages with what was sent. x86 PV through
/// `sr_xen::PvSaveGuest`; HVM and PVH through `sr_xen::HvmSaveGuest::for_toolstack`, with
/// QEMU's log-dirty mode switched by libxl's `switch_qemu_logdirty` callback at the start and
/// the end (as Xen's `x86_hvm_setup` / `x86_hvm_cleanup` ask it). The domain is left as found
/// on failure (log-dirty off, QEMU's log-dirty asked off); libxl destroys it after a successful
/// `xl save`.
#[cfg(feature = "xen")]
fn save(args: &HelperArgs, channel: Channel) -> u8 {
    use std::io::BufWriter;
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    use sr_save::{Container, PrecopyPolicy, SaveOptions, Saver};
    use sr_xen::{DomainKind, HvmSaveGuest, Interrupt, PvSaveGuest, XenDomain};

    let HelperArgs::Save { io_fd, domid, flags, cbflags, .. } = *args else { unreachable!("save mode") };
    let channel = Mutex::new(channel);
    let lock = || channel.lock().unwrap_or_else(|e| e.into_inner());
    let started = Instant::now();
    let startup_ms = since_exec_ms();
    let fail = |channel: &mut Channel, text: String, errno: i32| -> u8 {
        eprintln!("xsr: save of domain {domid} failed: {text}");
        write_report(&HelperReport { domid, error: Some(text.clone()), startup_ms, ..HelperReport::default() });
        let _ = channel.log(level::ERROR, Some(errno), &format!("save of domain {domid} failed: {text}"));
        channel.complete(-1, errno)
    };
    if cbflags & (1 << HelperMessage::Suspend.number()) == 0 {
        return fail(&mut lock(), "libxl passed no suspend callback".into(), 22);
    }
    let out = match sr_xen::inherited_fd(io_fd) {
        Ok(f) => f,
        Err(e) => return fail(&mut lock(), format!("the stream descriptor {io_fd}: {e}"), 9),
    };
    let interrupt = match Interrupt::install() {
        Ok(i) => i,
        Err(e) => return fail(&mut lock(), format!("cannot install the signal handlers: {e}"), 5),
    };
    // The device model is libxl's: it switches QEMU's log-dirty mode, stops QEMU and saves its
    // state (in its suspend callback) and writes the EMULATOR records itself.
    let domain = match XenDomain::open_for_toolstack(domid, interrupt) {
        Ok(d) => d,
        Err(e) => return fail(&mut lock(), format!("cannot open the domain: {e}"), 5),
    };
    let opened_ms = started.elapsed().as_secs_f64() * 1e3;
    let at_start = since_t0_ms();
    let live = flags & XCFLAGS_LIVE != 0;
    // libxl's callbacks: `suspend` answers 1 for a suspended domain (xc_domain_save checks
    // non-zero), `switch_qemu_logdirty` 0 for done.
    let suspend = || match lock().call(&HelperMessage::Suspend) {
        Ok(0) => Err("libxl's suspend callback failed".to_string()),
        Ok(_) => Ok(()),
        Err(e) => Err(format!("no answer from libxl to the suspend callback: {e}")),
    };
    let logdirty = |enable: bool| match lock().call(&HelperMessage::SwitchQemuLogdirty { domid, enable: enable.into() })
    {
        Ok(0) => Ok(()),
        Ok(r) => Err(format!("libxl answered {r}")),
        Err(e) => Err(format!("no answer from libxl: {e}")),
    };
    let wants_logdirty = args.has_callback(HelperMessage::SwitchQemuLogdirty { domid, enable: 0 }.number());
    let guest = match domain.kind() {
        DomainKind::Pv { .. } => {
            PvSaveGuest::new(&domain, Duration::from_secs(60)).map(|g| HelperGuest::Pv(g.suspended_by(suspend)))
        }
        DomainKind::Hvm => HvmSaveGuest::for_toolstack(
            &domain,
            live,
            suspend,
            wants_logdirty.then(|| Box::new(logdirty) as sr_xen::LogdirtyHook<'_>),
        )
        .map(HelperGuest::Hvm),
    };
    let guest = match guest {
        Ok(g) => g,
        Err(e) => {
            let _ = domain.restore();
            return fail(&mut lock(), e.to_string(), 5);
        }
    };
    // The saver's statistics and the dirty tracking used.
    type Saved = (sr_save::SaveStats, &'static str);
    let attempt = || -> Result<Saved, String> {
        let mut tracking = "none";
        if live {
            tracking = match domain.enable_log_dirty() {
                Ok(()) => "log-dirty",
                Err(e) if e.is_unsupported() => {
                    domain.memory().track_by_compare();
                    "compare"
                }
                Err(e) => return Err(format!("cannot turn log-dirty mode on: {e}")),
            };
            if tracking == "log-dirty" && domain.kind() == DomainKind::Hvm {
                // The populated gfns once more, now that Xen logs every gfn populated
                // afterwards: the final pass needs no scan.
                domain.refresh_p2m().map_err(|e| format!("cannot find the domain's populated gfns: {e}"))?;
            }
        }
        let options = SaveOptions {
            live: live.then(PrecopyPolicy::default),
            container: Container::Libxc,
            xen_version: domain.xen_version().map_err(|e| e.to_string())?,
            ..SaveOptions::default()
        };
        let mut writer = BufWriter::with_capacity(1 << 20, &out);
        let stats = Saver::new(options).save(guest.guest(), &mut writer).map_err(|e| error_chain(&e))?;
        writer.into_inner().map_err(|e| format!("writing the stream: {}", e.error()))?;
        Ok((stats, tracking))
    };
    let result = attempt();
    // Xen's saver's cleanup, after success and failure alike: log-dirty off, then (HVM/PVH)
    // QEMU's log-dirty mode off through libxl.
    let cleanup = guest.finish().map_err(|e| format!("cannot turn log-dirty mode off: {e}"));
    let result = result.and_then(|saved| cleanup.map(|()| saved));
    match result {
        Ok((stats, tracking)) => {
            let ms = |d: Duration| d.as_secs_f64() * 1e3;
            let suspended = guest.suspended();
            let report = HelperReport {
                domid,
                ok: true,
                pages: stats.pages,
                bytes: stats.bytes,
                restore_ms: ms(started.elapsed()),
                startup_ms,
                open_ms: Some(opened_ms),
                downtime_ms: suspended.map(|(at, _)| ms(at.elapsed())),
                guest_type: Some(domain.guest_type().name().to_string()),
                at_start_ms: at_start,
                ..HelperReport::default()
            };
            write_report(&report);
            let mut channel = lock();
            let _ = channel.log(
                level::INFO,
                None,
                &format!(
                    "saved domain {domid} ({}): {} pages, {} bytes in {:.0} ms ({} live passes, dirty tracking {tracking}, suspended {:.0} ms after the request; opened in {opened_ms:.0} ms, started {} ms after exec)",
                    domain.guest_type().name(),
                    stats.pages,
                    stats.bytes,
                    report.restore_ms,
                    stats.live_passes(),
                    suspended.map_or(0.0, |(_, took)| ms(took)),
                    startup_ms.map_or("?".into(), |ms| format!("{ms:.0}")),
                ),
            );
            channel.complete(0, 0)
        }
        Err(text) => {
            // Log-dirty off and nothing of ours left on the domain; libxl resumes the guest
            // it suspended.
            let text = match domain.restore() {
                Ok(()) => text,
                Err(r) => format!("{text}; and the domain could not be put back as found: {r}"),
            };
            fail(&mut lock(), text, 5)
        }
    }
}

/// The saver of the domain's type, driven by libxl's callbacks.
#[cfg(feature = "xen")]
enum HelperGuest<'d> {
    Pv(sr_xen::PvSaveGuest<'d>),
    Hvm(sr_xen::HvmSaveGuest<'d>),
}

#[cfg(feature = "xen")]
impl HelperGuest<'_> {
    fn guest(&self) -> &dyn sr_save::Guest {
        match self {
            HelperGuest::Pv(g) => g,
            HelperGuest::Hvm(g) => g,
        }
    }

    fn suspended(&self) -> Option<(std::time::Instant, std::time::Duration)> {
        match self {
            HelperGuest::Pv(g) => g.suspended(),
            HelperGuest::Hvm(g) => g.suspended(),
        }
    }

    /// Log-dirty off (PV: if on); HVM/PVH: also QEMU's, through libxl.
    fn finish(&self) -> Result<(), sr_xen::XenError> {
        match self {
            HelperGuest::Pv(g) => g.finish(),
            HelperGuest::Hvm(g) => g.finish(),
        }
    }
}

/// `EOPNOTSUPP` on Linux.
fn libc_eopnotsupp() -> i32 {
    95
}

/// A restore refused before it started: results 0, failed completion.
fn refuse(channel: &mut Channel, domid: u32, text: &str) -> u8 {
    eprintln!("xsr: {text}");
    write_report(&HelperReport { domid, error: Some(text.to_string()), ..HelperReport::default() });
    let _ = channel.log(level::ERROR, Some(libc_eopnotsupp()), text);
    let _ = channel.send(&HelperMessage::RestoreResults { store_gfn: 0, console_gfn: 0 });
    channel.complete(-1, libc_eopnotsupp())
}

#[cfg(not(feature = "xen"))]
fn restore(args: &HelperArgs, mut channel: Channel) -> u8 {
    let HelperArgs::Restore { domid, .. } = *args else { unreachable!("restore mode") };
    refuse(&mut channel, domid, "this xsr was built without the xen feature: it cannot restore into a domain")
}

#[cfg(feature = "xen")]
fn restore(args: &HelperArgs, channel: Channel) -> u8 {
    use std::io::Seek;
    use std::time::{Duration, Instant};

    use crate::cmd::stream_fd::{ReadStats, StreamFd};
    use sr_format::StreamReader;
    use sr_restore::RestoreOptions;
    use sr_xen::restore::{RestoreShell, restore_into};

    let HelperArgs::Restore { stream_fd, domid, store_evtchn, store_domid, console_evtchn, console_domid, .. } = *args
    else {
        unreachable!("restore mode")
    };
    let channel = std::cell::RefCell::new(channel);
    let mut report = HelperReport { domid, ..HelperReport::default() };
    let file = match sr_xen::inherited_fd(stream_fd) {
        Ok(f) => f,
        Err(e) => return refuse(&mut channel.borrow_mut(), domid, &format!("the stream descriptor {stream_fd}: {e}")),
    };
    // A regular file: offsets in errors are the file's (libxl hands the descriptor over
    // positioned at the libxc stream). A pipe: from the libxc stream's start.
    let base = (&file).stream_position().unwrap_or(0);
    let shell = RestoreShell { domid, store_evtchn, store_domid, console_evtchn, console_domid };
    // Page types of HVM holes mean nothing to Xen (and cost a map entry per XTAB pfn).
    let options = RestoreOptions { max_span_bytes: 1 << 40, hvm_page_types: false, ..RestoreOptions::default() };
    let started = Instant::now();
    report.startup_ms = since_exec_ms();
    report.at_start_ms = since_t0_ms();
    let timed = std::env::var_os(TIMING_ENV).is_some_and(|v| v == "1");
    let read_stats = std::cell::Cell::new(ReadStats { calls: 0, time: timed.then_some(Duration::ZERO) });
    // A regular file is read ahead (and given back when the reader is dropped, at the end of
    // `restore_into`); a pipe or socket exactly.
    let seekable = file.metadata().is_ok_and(|m| m.is_file());
    let wants_sdd = args.has_callback(8);
    let result = {
        let static_data_done = Box::new(|missing: u32| -> Result<(), String> {
            if !wants_sdd {
                return Ok(());
            }
            match channel.borrow_mut().call(&HelperMessage::StaticDataDone { missing }) {
                Ok(0) => Ok(()),
                Ok(r) => Err(format!("libxl answered {r} (missing {missing:#x})")),
                Err(e) => Err(format!("no answer from libxl: {e}")),
            }
        });
        let reader = StreamReader::from_read(StreamFd::new(&file, seekable, &read_stats)).starting_at(base);
        restore_into(reader, &shell, options, static_data_done).map(|restored| {
            let target = restored.memory.expect("a restore returns its destination");
            (target.results().unwrap_or_default(), target.stats(), restored.stats.bytes)
        })
    };
    report.restore_ms = started.elapsed().as_secs_f64() * 1e3;
    let reads = read_stats.get();
    (report.read_ms, report.read_calls) = (reads.time.map(|t| t.as_secs_f64() * 1e3), reads.calls);
    let mut channel = channel.into_inner();
    match result {
        Ok((results, stats, bytes)) => {
            report.ok = true;
            report.store_gfn = results.store_gfn;
            report.console_gfn = results.console_gfn;
            report.pages = stats.pages_written;
            report.populated = stats.populated;
            report.page_tables = stats.page_tables;
            report.pinned = stats.pinned;
            report.bytes = bytes.saturating_sub(base);
            report.end_ms = stats.end.as_secs_f64() * 1e3;
            report.setup_ms = stats.setup.as_secs_f64() * 1e3;
            report.domain_ms = stats.busy.as_secs_f64() * 1e3;
            let _ = channel.log(
                level::INFO,
                None,
                &format!(
                    "restored domain {domid}: {} pages in {:.0} ms ({:.0} ms in the domain: setup {:.0} ms, END {:.0} ms; {} reads of the stream{}; started {} ms after exec), xenstore frame {:#x}, console frame {:#x}",
                    stats.pages_written,
                    report.restore_ms,
                    report.domain_ms,
                    report.setup_ms,
                    report.end_ms,
                    report.read_calls,
                    report.read_ms.map_or(String::new(), |ms| format!(" in {ms:.0} ms")),
                    report.startup_ms.map_or("?".into(), |ms| format!("{ms:.0}")),
                    results.store_gfn,
                    results.console_gfn
                ),
            );
            write_report(&report);
            if channel
                .send(&HelperMessage::RestoreResults { store_gfn: results.store_gfn, console_gfn: results.console_gfn })
                .is_err()
            {
                eprintln!("xsr: libxl closed the save helper channel");
                return 2;
            }
            channel.complete(0, 0)
        }
        Err(e) => {
            let (text, errno, invalid) = describe(&e);
            eprintln!("xsr: restore of domain {domid} failed: {text}");
            report.error = Some(text.clone());
            report.invalid_stream = invalid;
            write_report(&report);
            let _ = channel.log(level::ERROR, Some(errno), &format!("restore of domain {domid} failed: {text}"));
            let _ = channel.send(&HelperMessage::RestoreResults { store_gfn: 0, console_gfn: 0 });
            channel.complete(-1, errno)
        }
    }
}

/// The error's text, the errno for libxl, and whether the stream is at fault.
#[cfg(feature = "xen")]
fn describe(e: &sr_restore::RestoreError) -> (String, i32, bool) {
    use sr_restore::RestoreError;
    use sr_xen::XenError;
    use sr_xen::restore::XenRestoreError;

    let text = crate::outcome::render(&anyhow::Error::msg(error_chain(e)));
    let invalid = crate::outcome::is_invalid(e) && !matches!(e, RestoreError::Memory { .. });
    let xen_errno = |x: &XenError| match x {
        XenError::Call { errno, .. } | XenError::Frame { errno, .. } => Some(*errno),
        _ => None,
    };
    let errno = match e {
        RestoreError::Target { source, .. } => match source.downcast_ref::<XenRestoreError>() {
            Some(XenRestoreError::Xen(x) | XenRestoreError::At { source: x, .. }) => xen_errno(x),
            Some(XenRestoreError::CpuPolicy { errno, .. }) => Some(*errno),
            _ => None,
        },
        RestoreError::Format(sr_format::Error::Io { .. }) => Some(5),
        _ => None,
    }
    .unwrap_or(if invalid { 22 } else { 5 });
    (text, errno, invalid)
}

/// `e` and its sources, each once.
#[cfg(feature = "xen")]
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let t = c.to_string();
        if !out.contains(&t) {
            out.push_str(": ");
            out.push_str(&t);
        }
        cause = c.source();
    }
    out
}
