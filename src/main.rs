//! `xsr`: inspect, verify, restore, extract, save and migrate Xen domain save images.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::Parser;
use sr_format::{StreamReader, Strictness};
use sr_restore::Restorer;
use sr_save::PrecopyPolicy;
use xsr::cli::{Cli, Command, StreamArgs};
use xsr::cmd::demo::DemoSettings;
use xsr::cmd::read::{Address, ReadOutput};
#[cfg(feature = "xen")]
use xsr::cmd::xen::DumpFormat;
#[cfg(not(feature = "xen"))]
use xsr::cmd::xen::XenUnavailable;
use xsr::cmd::{demo, diff, extract, grep, inspect, net, read, restore, save, verify};
use xsr::input::Scan;
use xsr::outcome;
use xsr::output::OutputRules;

/// Where a command's JSON (its summary, or its error) goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum JsonSink {
    Stdout,
    /// Standard output carries the command's product (a stream, an image, the handshake).
    Stderr,
}

impl JsonSink {
    fn writer(self) -> Box<dyn Write> {
        match self {
            JsonSink::Stdout => Box::new(std::io::stdout().lock()),
            JsonSink::Stderr => Box::new(std::io::stderr().lock()),
        }
    }

    /// Where the summary of a command whose product may be on standard output goes.
    fn unless_stdout_carries(product_on_stdout: bool) -> Self {
        if product_on_stdout { JsonSink::Stderr } else { JsonSink::Stdout }
    }
}

fn write_json<T: serde::Serialize>(value: &T, sink: JsonSink) -> Result<()> {
    let mut out = sink.writer();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    out.flush()?;
    Ok(())
}

fn print_json<T: serde::Serialize>(value: &T) -> Result<()> {
    write_json(value, JsonSink::Stdout)
}

/// Runs `xsr verify`; returns the exit code.
fn run_verify(file: &Path, strict: bool, stream: &StreamArgs, json: bool) -> Result<ExitCode> {
    let strictness = if strict { Strictness::Strict } else { Strictness::Lenient };
    let mut restorer = Restorer::new(stream.options(strictness));
    let result = match Scan::open(file)? {
        Scan::File(src) => verify::verify(&mut restorer, src),
        Scan::Stream(src) => verify::verify(&mut restorer, src),
    };
    if let Err(sr_restore::RestoreError::Format(e @ sr_format::Error::Io { .. })) = result {
        return Err(anyhow::Error::new(e).context(format!("cannot read {}", file.display())));
    }
    let report = verify::VerifyReport::new(&result, strict);
    if json {
        print_json(&report)?;
    } else {
        report.print_text(&mut std::io::stdout().lock())?;
    }
    Ok(ExitCode::from(report.exit_code))
}

fn print_save_summary(stats: &sr_save::SaveStats, sink: &mut dyn Write) -> std::io::Result<()> {
    writeln!(
        sink,
        "saved {}, {} bytes in {:.3} s{}",
        xsr::text::count(stats.pages, "page"),
        stats.bytes,
        stats.duration.as_secs_f64(),
        if stats.zero_copy { " (zero-copy page path)" } else { "" }
    )
}

fn precopy(max_iterations: u32, dirty_threshold: u64, downtime_ms: Option<u64>) -> PrecopyPolicy {
    PrecopyPolicy { max_iterations, dirty_threshold, downtime_target: downtime_ms.map(Duration::from_millis) }
}

/// The files `command` reads, for the check that standard output is none of them: a text
/// report redirected onto its own input (`xsr inspect g.save >> g.save`) would change the
/// input, which no command may do.
fn file_inputs(command: &Command) -> Vec<&Path> {
    match command {
        Command::Inspect { file, .. }
        | Command::Verify { file, .. }
        | Command::Restore { file, .. }
        | Command::Extract { file, .. }
        | Command::Grep { file, .. } => vec![file.as_path()],
        Command::Read(a) => vec![a.file.as_path()],
        Command::Diff { a, b, .. } => vec![a.as_path(), b.as_path()],
        Command::Receive { from: Some(from), .. } => vec![from.as_path()],
        _ => Vec::new(),
    }
}

/// Refuses a standard output that is one of `command`'s input files.
fn check_stdout_is_no_input(command: &Command) -> Result<()> {
    file_inputs(command).into_iter().fold(OutputRules::default(), OutputRules::input).check_stdout()
}

fn run(command: Command) -> Result<ExitCode> {
    check_stdout_is_no_input(&command)?;
    match command {
        Command::Dump {
            domain,
            out,
            force,
            format,
            live,
            max_iterations,
            dirty_threshold,
            downtime_ms,
            batch,
            json,
        } => {
            #[cfg(not(feature = "xen"))]
            {
                let _ = (domain, out, force, format, live, max_iterations, dirty_threshold, downtime_ms, batch, json);
                Err(XenUnavailable { what: "dump".into() }.into())
            }
            #[cfg(feature = "xen")]
            {
                let policy = live.then_some(precopy(max_iterations, dirty_threshold, downtime_ms));
                let rules = OutputRules::new(force.force);
                if format == DumpFormat::Stream {
                    // A restorable stream of a running PV domain is a save that resumes the guest.
                    let settings = xsr::cmd::save_domain::DomainSaveSettings {
                        domain,
                        live: policy,
                        keep_running: true,
                        workers: 0,
                        batch,
                        suspend_timeout: Duration::from_secs(60),
                    };
                    if let Some(code) = xsr::cmd::save_domain::supervise(&settings.domain, &[&out])? {
                        return Ok(ExitCode::from(code));
                    }
                    let summary = xsr::cmd::save_domain::save_domain(&settings, &out, &rules)?;
                    if json {
                        print_json(&summary)?;
                    } else {
                        xsr::cmd::save_domain::print_summary(&summary, &mut std::io::stdout().lock())?;
                    }
                    return Ok(ExitCode::SUCCESS);
                }
                let settings = xsr::cmd::dump::DumpSettings { domain, out, format, live: policy, batch };
                // A dump killed outright (SIGKILL) cannot unpause the guest or turn log-dirty mode
                // off: its supervising parent does, and removes its partial output (the raw image
                // an ELF or LiME file is made from has no name).
                if let Some(code) = xsr::cmd::save_domain::supervise(&settings.domain, &[&settings.out])? {
                    return Ok(ExitCode::from(code));
                }
                let summary = xsr::cmd::dump::dump(&settings, &rules)?;
                if json {
                    print_json(&summary)?;
                } else {
                    xsr::cmd::dump::print_summary(&summary, &mut std::io::stdout().lock())?;
                }
                Ok(ExitCode::SUCCESS)
            }
        }
        Command::Save { dir, out, force, save, domain, json } => {
            let sink = JsonSink::unless_stdout_carries(out.as_os_str() == "-");
            if let Some(settings) = domain.settings(&save)? {
                #[cfg(not(feature = "xen"))]
                match settings {}
                #[cfg(feature = "xen")]
                {
                    if let Some(code) = xsr::cmd::save_domain::supervise(&settings.domain, &[&out])? {
                        return Ok(ExitCode::from(code));
                    }
                    let summary = xsr::cmd::save_domain::save_domain(&settings, &out, &OutputRules::new(force.force))?;
                    if json {
                        write_json(&summary, sink)?;
                    } else {
                        xsr::cmd::save_domain::print_summary(&summary, &mut sink.writer())?;
                    }
                    return Ok(ExitCode::SUCCESS);
                }
            }
            let dir = anyhow::Context::context(dir, "a directory (or --domain) is needed")?;
            let rules = OutputRules::new(force.force).input_dir(&dir);
            let stats = save::save(&dir, &out, &save.settings(), &rules)?;
            if json {
                let summary = serde_json::json!({
                    "pages": stats.pages,
                    "bytes": stats.bytes,
                    "seconds": stats.duration.as_secs_f64(),
                });
                write_json(&summary, sink)?;
            } else {
                print_save_summary(&stats, &mut sink.writer())?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo { memory, dtype, dirty_rate, workers, max_iterations, dirty_threshold, downtime_ms, json } => {
            let settings = DemoSettings {
                memory,
                dtype,
                dirty_rate,
                workers,
                policy: precopy(max_iterations, dirty_threshold, downtime_ms),
            };
            let summary = demo::demo(&settings)?;
            if json {
                print_json(&summary)?;
            } else {
                demo::print_summary(&summary, &mut std::io::stdout().lock())?;
            }
            Ok(ExitCode::from(summary.exit_code))
        }
        Command::Send { dir, to, via, reply, timeout, tls, tls_name, save, domain, json } => {
            // Checked before anything is read or any domain touched: the TLS files, and the
            // refusal of plaintext off loopback.
            let peer = match (to, via, reply) {
                (_, Some(cmd), None) => {
                    tls.only_for("--to HOST:PORT")?;
                    net::Peer::Via(cmd)
                }
                (Some(to), None, Some(reply)) if to == "-" => {
                    tls.only_for("--to HOST:PORT")?;
                    net::Peer::Stdout { reply }
                }
                (Some(to), None, None) if to == "-" => {
                    anyhow::bail!(
                        "--to - needs --reply PATH (where the receiver's outcome comes back), or use --via CMD"
                    )
                }
                (Some(to), None, None) => net::Peer::tcp(&to, tls.files().as_ref(), tls_name.as_deref(), tls.insecure)?,
                _ => anyhow::bail!("--reply goes with --to - only"),
            };
            // With --to -, standard output carries the stream.
            let stdout_is_stream = matches!(peer, net::Peer::Stdout { .. });
            let sink = JsonSink::unless_stdout_carries(stdout_is_stream);
            if let Some(settings) = domain.settings(&save)? {
                #[cfg(not(feature = "xen"))]
                match settings {}
                #[cfg(feature = "xen")]
                {
                    if let Some(code) = xsr::cmd::save_domain::supervise(&settings.domain, &[])? {
                        return Ok(ExitCode::from(code));
                    }
                    let (summary, receiver) = xsr::cmd::save_domain::send_domain(&settings, |save, handover| {
                        net::send_with(&peer, timeout, save, Some(handover))
                    })?;
                    if json {
                        let mut v = serde_json::to_value(&summary)?;
                        v["receiver"] = receiver.into();
                        write_json(&v, sink)?;
                    } else {
                        xsr::cmd::save_domain::print_summary(&summary, &mut std::io::stderr().lock())?;
                        eprintln!("the receiver committed it: {receiver}");
                    }
                    return Ok(ExitCode::SUCCESS);
                }
            }
            let dir = anyhow::Context::context(dir, "a directory (or --domain) is needed")?;
            if stdout_is_stream {
                OutputRules::default().input_dir(&dir).check_stdout()?;
            }
            let sent = net::send(&dir, &peer, &save.settings(), timeout)?;
            if let Some(tls) = &sent.tls {
                eprintln!("{tls}");
            }
            let stats = &sent.stats;
            if json {
                let summary = serde_json::json!({
                    "pages": stats.pages,
                    "bytes": stats.bytes,
                    "seconds": stats.duration.as_secs_f64(),
                    "receiver": sent.summary,
                });
                write_json(&summary, sink)?;
            } else {
                eprintln!(
                    "sent {}, {} bytes in {:.3} s; the receiver committed it: {}",
                    xsr::text::count(stats.pages, "page"),
                    stats.bytes,
                    stats.duration.as_secs_f64(),
                    sent.summary
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Receive {
            listen,
            from,
            out,
            domain,
            paused,
            out_file,
            force,
            timeout,
            tls,
            tls_allow,
            stream,
            memory,
            json,
        } => {
            let mut rules = OutputRules::new(force.force);
            if let Some(from) = &from {
                rules = rules.input(from);
            }
            let source = match from {
                Some(path) => {
                    tls.only_for("--listen")?;
                    net::Source::Path(path)
                }
                None => net::Source::listen(&listen, tls.files().as_ref(), &tls_allow, tls.insecure)?,
            };
            let piped = matches!(source, net::Source::Path(_));
            if domain {
                return receive_domain(&source, paused, json, timeout);
            }
            let options = memory.bound(stream.options(Strictness::Lenient));
            let target = match (&out, &out_file) {
                (Some(dir), _) => net::Target::Dir(dir),
                (None, Some(file)) => net::Target::File(file),
                (None, None) => anyhow::bail!("--out DIR or --out-file FILE is needed"),
            };
            let (received, line) =
                net::receive(&source, target, options, memory.max_memory, timeout, &rules, |addr| {
                    eprintln!("listening on {addr}");
                })?;
            // With --from, standard output carries the handshake: the summary goes to stderr.
            let sink = JsonSink::unless_stdout_carries(piped);
            if json {
                let out = out.as_deref().or(out_file.as_deref()).unwrap_or(Path::new(""));
                write_json(&net::ReceiveSummary::new(&received, out, &line), sink)?;
            } else {
                writeln!(sink.writer(), "{line}")?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate { guest, host, ssh, no_monitor, foreground, paused, debug, live: _, timeout, json } => {
            // xl's command line for the receiver (main_migrate in tools/xl/xl_migrate.c).
            let rune = if ssh.is_empty() {
                host
            } else {
                use std::io::IsTerminal;
                format!(
                    "exec {ssh} {host} xl{} migrate-receive{}{}{}",
                    if std::io::stderr().is_terminal() { " -t" } else { "" },
                    if no_monitor || foreground { " -e" } else { "" },
                    if debug { " -d" } else { "" },
                    if paused { " -p" } else { "" },
                )
            };
            migrate(guest, rune, timeout, json)
        }
        Command::MigrateReceive { foreground: _, no_monitor: _, debug: _, paused, timeout } => {
            receive_domain(&net::Source::Path(std::path::PathBuf::from("-")), paused, false, timeout)
        }
        Command::Inspect { file, json } => {
            let (scan, compression) = Scan::open_detecting(&file)?;
            let mut report = match scan {
                Scan::File(src) => inspect::inspect(StreamReader::new(src).skip_page_bodies(true)),
                Scan::Stream(src) => inspect::inspect(StreamReader::new(src).skip_page_bodies(true)),
            };
            // Reading failed (not the stream): an error, not the answer "invalid".
            if let Some(e) = report.read_error.take() {
                return Err(anyhow::Error::new(e).context(format!("cannot read {}", file.display())));
            }
            // A compressed file shows its compression as the outermost layer.
            if let Some(c) = compression {
                report.layers.insert(0, c.name());
            }
            if json {
                print_json(&report)?;
            } else {
                inspect::print_text(&report, &mut std::io::stdout().lock())?;
            }
            Ok(ExitCode::from(report.exit_code))
        }
        Command::Verify { file, strict, stream, json } => run_verify(&file, strict, &stream, json),
        Command::Read(a) => {
            let address = match (a.address.phys, a.address.virt) {
                (Some(p), _) => Address::Phys(p),
                (None, Some(va)) => {
                    Address::Virt { va, vcpu: a.vcpu.unwrap_or(0), cr3: a.cr3, paging: a.paging.map(Into::into) }
                }
                (None, None) => anyhow::bail!("give --phys or --virt"),
            };
            let holes = if a.zeros { sr_image::Holes::Zero } else { sr_image::Holes::Error };
            let output = match (&a.out, a.json) {
                (Some(path), _) => ReadOutput::Raw(path),
                (None, true) => ReadOutput::Json,
                (None, false) => ReadOutput::HexDump,
            };
            let rules = OutputRules::new(a.force.force).input(&a.file);
            let summary = read::read(&a.file, address, a.len, output, holes, &rules)?;
            if a.json {
                let raw_on_stdout = a.out.as_deref().is_some_and(|o| o.as_os_str() == "-");
                write_json(&summary, JsonSink::unless_stdout_carries(raw_on_stdout))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Grep { file, pattern, hex, max_count, json } => {
            let pattern = grep::parse_pattern(&pattern, hex)?;
            let n = grep::grep(&file, &pattern, max_count, json)?;
            Ok(if n > 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        Command::Diff { a, b, json } => {
            let report = diff::diff(&a, &b)?;
            if json {
                print_json(&report)?;
            } else {
                diff::print_text(&report, &mut std::io::stdout().lock())?;
            }
            Ok(ExitCode::from(report.exit_code))
        }
        Command::Restore { file, out, domain, name, paused, force, stream, memory, json } => {
            if domain {
                #[cfg(not(feature = "xen"))]
                {
                    let _ = (name, paused);
                    return Err(XenUnavailable { what: "restore --domain".into() }.into());
                }
                #[cfg(feature = "xen")]
                {
                    let settings = xsr::cmd::restore_domain::DomainRestoreSettings { file, name, paused };
                    let summary = xsr::cmd::restore_domain::restore_domain(&settings)?;
                    if json {
                        print_json(&summary)?;
                    } else {
                        xsr::cmd::restore_domain::print_summary(&summary, &mut std::io::stdout().lock())?;
                    }
                    return Ok(ExitCode::SUCCESS);
                }
            }
            let out = anyhow::Context::context(out, "--out DIR is needed")?;
            let rules = OutputRules::new(force.force).input(&file);
            let options = memory.bound(stream.options(Strictness::Lenient));
            let restored = restore::restore(&file, &out, options, memory.max_memory, &rules)?;
            let summary = restore::RestoreSummary::new(&restored, &out);
            if json {
                print_json(&summary)?;
            } else {
                summary.print_text(&mut std::io::stdout().lock())?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Extract { file, format, out, force, stream, memory, json } => {
            let rules = OutputRules::new(force.force).input(&file);
            let options = memory.bound(stream.options(Strictness::Lenient));
            let done = extract::extract(&file, &out, format, options, memory.max_memory, &rules)?;
            if let Some(w) = &done.warning {
                eprintln!("warning: {w}");
            }
            // With `--out -` the image is on standard output: the summary goes to stderr.
            let sink = JsonSink::unless_stdout_carries(out.as_os_str() == "-");
            if json {
                write_json(&done, sink)?;
            } else {
                extract::print_summary(&done, &out, &mut sink.writer())?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Where this command's JSON goes with `--json`; `None` without it.
fn json_sink(command: &Command) -> Option<JsonSink> {
    let (json, product_on_stdout) = match command {
        Command::Inspect { json, .. }
        | Command::Verify { json, .. }
        | Command::Restore { json, .. }
        | Command::Dump { json, .. }
        | Command::Demo { json, .. }
        | Command::Grep { json, .. }
        | Command::Diff { json, .. } => (*json, false),
        Command::Extract { json, out, .. } | Command::Save { json, out, .. } => (*json, out.as_os_str() == "-"),
        Command::Send { json, to, .. } => (*json, to.as_deref() == Some("-")),
        Command::Receive { json, from, .. } => (*json, from.is_some()),
        Command::Migrate { json, .. } => (*json, false),
        Command::MigrateReceive { .. } => (false, true),
        Command::Read(a) => (a.json, a.out.as_deref().is_some_and(|o| o.as_os_str() == "-")),
    };
    // Standard output onto an input: even the JSON error goes to standard error.
    json.then(|| JsonSink::unless_stdout_carries(product_on_stdout || check_stdout_is_no_input(command).is_err()))
}

/// `xsr migrate`: a live `send --domain` through `rune` (xl's transport command), with xl's
/// hand-over.
#[cfg(feature = "xen")]
fn migrate(guest: String, rune: String, timeout: Duration, json: bool) -> Result<ExitCode> {
    let settings = xsr::cmd::save_domain::DomainSaveSettings {
        domain: guest.clone(),
        live: Some(PrecopyPolicy::default()),
        keep_running: false,
        workers: 0,
        batch: sr_save::SaveOptions::default().batch_pfns,
        suspend_timeout: Duration::from_secs(60),
    };
    if let Some(code) = xsr::cmd::save_domain::supervise(&guest, &[])? {
        return Ok(ExitCode::from(code));
    }
    let peer = net::Peer::Via(rune);
    let (summary, receiver) = xsr::cmd::save_domain::send_domain(&settings, |save, handover| {
        net::send_with(&peer, timeout, save, Some(handover))
    })?;
    if json {
        print_json(&summary)?;
    } else {
        xsr::cmd::save_domain::print_summary(&summary, &mut std::io::stderr().lock())?;
    }
    eprintln!("migration successful: {receiver}");
    Ok(ExitCode::SUCCESS)
}

#[cfg(not(feature = "xen"))]
fn migrate(_: String, _: String, _: Duration, _: bool) -> Result<ExitCode> {
    Err(XenUnavailable { what: "migrate".into() }.into())
}

/// `receive --domain` and `migrate-receive`: supervised (a receiver killed by a signal leaves
/// no half-made domain), with the save helper set up while the process has one thread.
#[cfg(feature = "xen")]
fn receive_domain(source: &net::Source, paused: bool, json: bool, timeout: Duration) -> Result<ExitCode> {
    use xsr::cmd::handover;
    xsr::cmd::xen::check_host()?;
    let state = tempfile::NamedTempFile::new()?;
    let report = handover::prepare()?;
    if let Some(code) = handover::supervise(state.path())? {
        return Ok(ExitCode::from(code));
    }
    let settings = handover::DomainReceiveSettings {
        paused,
        state_file: Some(state.path().to_path_buf()),
        report_file: Some(report.path().to_path_buf()),
    };
    let mut received = net::receive_domain(source, &settings, timeout, |addr| eprintln!("listening on {addr}"))?;
    handover::add_report(&mut received, report.path(), paused);
    // With --from - (and migrate-receive) standard output is the ack channel.
    if json && !matches!(source, net::Source::Path(_)) {
        print_json(&received)?;
    } else {
        handover::print_summary(&received, &mut std::io::stderr().lock())?;
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(not(feature = "xen"))]
fn receive_domain(_: &net::Source, _: bool, _: bool, _: Duration) -> Result<ExitCode> {
    Err(XenUnavailable { what: "receive --domain".into() }.into())
}

/// Prints a failure: the `xsr:` line on standard error, and with `--json` the JSON error
/// object where the command's JSON goes.
fn report_failure(e: &anyhow::Error, code: u8, json: Option<JsonSink>) {
    let line = format!("xsr: {}", outcome::render(e));
    match json {
        Some(sink) => {
            let _ = write_json(&outcome::json_error(e, code), sink);
            if sink == JsonSink::Stdout {
                eprintln!("{line}");
            }
        }
        None => eprintln!("{line}"),
    }
}

fn main() -> ExitCode {
    // libxl runs its save helper as `HELPER --restore-domain ...` / `--save-domain ...`:
    // answered before any other parsing, with nothing but protocol frames on stdout.
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if xsr::cmd::helper::is_helper_invocation(&args) {
        return ExitCode::from(xsr::cmd::helper::run(&args));
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Usage errors exit 2 (clap's own); with --json also as a JSON error object.
            if e.use_stderr() && std::env::args_os().any(|a| a == "--json") {
                let _ = write_json(&outcome::usage_json_error(&e), JsonSink::Stdout);
            }
            e.exit();
        }
    };
    let command = cli.command;
    let report = command.output_is_report();
    let kind = command.kind();
    let json = json_sink(&command);
    if !command.touches_xen()
        && let Err(e) = xsr::output::remove_partials_on_signals()
    {
        report_failure(&e, 2, json);
        return ExitCode::from(2);
    }
    match run(command) {
        Ok(code) => code,
        Err(e) => {
            if report && outcome::is_closed_output(&e) {
                return ExitCode::SUCCESS;
            }
            let code = outcome::exit_code(&e, kind);
            report_failure(&e, code, json);
            ExitCode::from(code)
        }
    }
}
