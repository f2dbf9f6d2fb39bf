//! `xsr`: inspect, verify, restore, extract, save and migrate Xen domain save images.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use sr_format::{StreamReader, Strictness};
use sr_restore::{RestoreOptions, Restorer, StreamKind};
use sr_save::PrecopyPolicy;
use xsr::cmd::demo::{DemoSettings, DemoType};
use xsr::cmd::extract::ExtractFormat;
use xsr::cmd::read::{Address, PagingArg};
use xsr::cmd::save::{ContainerArg, SaveSettings, ZeroPagesArg};
use xsr::cmd::{demo, diff, extract, grep, inspect, net, read, restore, save, verify};
use xsr::input::Scan;
use xsr::size::{parse_addr, parse_len, parse_size};

#[derive(Parser, Debug)]
#[command(name = "xsr", version, about = "Xen domain save images and migration streams (libxc v2/v3, libxl, xl)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// List every layer, header and record with its offset, type and length, plus totals.
    Inspect {
        /// The stream (`-` for standard input).
        file: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check every rule that depends on the stream alone. Exit 0 valid, 1 invalid, 2 error.
    Verify {
        /// The stream (`-` for standard input).
        file: PathBuf,
        /// Also reject what restore merely ignores (reserved fields, padding, bodies on
        /// empty records, v3-only records in v2, unknown optional records).
        #[arg(long)]
        strict: bool,
        #[command(flatten)]
        stream: StreamArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Restore a stream into a directory: memory.img (sparse raw image) and domain.json. With
    /// --domain (Xen builds): an `xl` save file into a new running Xen domain.
    Restore {
        /// The stream (`-` for standard input).
        file: PathBuf,
        /// Output directory (must not exist; written atomically).
        #[cfg_attr(feature = "xen", arg(long, required_unless_present = "domain", conflicts_with = "domain"))]
        #[cfg_attr(not(feature = "xen"), arg(long, required = true))]
        out: Option<PathBuf>,
        /// Restore into a new Xen domain (as `xl restore` does, with xsr as libxl's save helper)
        /// and print its id.
        #[cfg(feature = "xen")]
        #[arg(long)]
        domain: bool,
        /// With --domain: the new domain's name instead of the saved one.
        #[cfg(feature = "xen")]
        #[arg(long, requires = "domain")]
        name: Option<String>,
        /// With --domain: leave the new domain paused.
        #[cfg(feature = "xen")]
        #[arg(long, requires = "domain")]
        paused: bool,
        #[command(flatten)]
        stream: StreamArgs,
        #[command(flatten)]
        memory: MemoryArgs,
        /// Print a JSON summary.
        #[arg(long)]
        json: bool,
    },
    /// Extract guest memory as a raw sparse image, an ELF64 core with the vcpus' registers, or LiME.
    Extract {
        /// The stream (`-` for standard input).
        file: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value = "raw")]
        format: ExtractFormat,
        /// Output file (written atomically; `-`: standard output, the summary then goes to stderr).
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        stream: StreamArgs,
        #[command(flatten)]
        memory: MemoryArgs,
        /// Print a JSON summary.
        #[arg(long)]
        json: bool,
    },
    /// Dump a running Xen domain's memory from dom0 (paused, or live with a short pause).
    #[cfg(feature = "xen")]
    Dump {
        /// Domain id or name.
        #[arg(long)]
        domain: String,
        /// Output file (written atomically).
        #[arg(long)]
        out: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value = "elf")]
        format: xsr::cmd::dump::DumpFormat,
        /// Copy while the guest runs (log-dirty pre-copy), then pause only for the last dirty pages.
        #[arg(long)]
        live: bool,
        /// Live: most copy passes before pausing.
        #[arg(long, default_value_t = 5, requires = "live")]
        max_iterations: u32,
        /// Live: pause once fewer pages than this were dirtied during a pass.
        #[arg(long, default_value_t = 50, requires = "live")]
        dirty_threshold: u64,
        /// Live: pause once the dirty pages would take less than this many milliseconds.
        #[arg(long, requires = "live")]
        downtime_ms: Option<u64>,
        /// pfns per foreign-mapping batch.
        #[arg(long, default_value_t = 1024)]
        batch: usize,
        /// Print a JSON summary.
        #[arg(long)]
        json: bool,
    },
    /// Write a domain image directory (from `xsr restore`) as a stream: the inverse of
    /// restore. With --domain (Xen builds): save a running x86 PV domain as `xl save` does.
    Save {
        /// The directory.
        #[cfg_attr(feature = "xen", arg(required_unless_present = "domain", conflicts_with = "domain"))]
        #[cfg_attr(not(feature = "xen"), arg(required = true))]
        dir: Option<PathBuf>,
        /// Output file (`-` for standard output; a file is written atomically).
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        save: SaveArgs,
        #[cfg(feature = "xen")]
        #[command(flatten)]
        domain: DomainArgs,
        /// Print a JSON summary (on standard output; on standard error with `--out -`).
        #[arg(long)]
        json: bool,
    },
    /// Live-migrate a synthetic guest over loopback TCP into a restorer and compare the result.
    Demo {
        /// Guest memory.
        #[arg(long, value_parser = parse_size, default_value = "256M")]
        memory: u64,
        /// Guest type.
        #[arg(long = "type", value_enum, default_value = "hvm")]
        dtype: DemoType,
        /// Pages the running guest dirties per second.
        #[arg(long, default_value_t = 20_000)]
        dirty_rate: u64,
        /// Saver worker threads (0: one per core).
        #[arg(long, default_value_t = 0)]
        workers: usize,
        /// Precopy: most live passes before pausing.
        #[arg(long, default_value_t = 5)]
        max_iterations: u32,
        /// Precopy: pause once fewer pages than this are dirty.
        #[arg(long, default_value_t = 50)]
        dirty_threshold: u64,
        /// Precopy: pause once the dirty pages would take less than this many milliseconds.
        #[arg(long)]
        downtime_ms: Option<u64>,
        /// Print a JSON summary.
        #[arg(long)]
        json: bool,
    },
    /// Send a domain image directory to `xsr receive`; exits 0 only when the receiver
    /// reports that its directory is complete (see the handshake in docs/transfers.md).
    Send {
        /// The directory.
        #[cfg_attr(feature = "xen", arg(required_unless_present = "domain", conflicts_with = "domain"))]
        #[cfg_attr(not(feature = "xen"), arg(required = true))]
        dir: Option<PathBuf>,
        /// The receiver: HOST:PORT over TCP, or `-` (the stream on standard output, the
        /// receiver's messages read from --reply).
        #[arg(long, required_unless_present = "via", conflicts_with = "via")]
        to: Option<String>,
        /// Run this shell command as the transport (e.g. `ssh host xsr receive --from - --out DIR`):
        /// the stream goes to its standard input, the receiver's messages come from its standard output.
        #[arg(long, value_name = "CMD")]
        via: Option<String>,
        /// With `--to -`: where the receiver's messages come from (a named pipe, /dev/fd/N).
        #[arg(long, value_name = "PATH")]
        reply: Option<PathBuf>,
        /// Seconds the receiver may stay silent (before READY, on a blocked write, before the outcome).
        #[arg(long, value_name = "SECONDS", value_parser = parse_timeout, default_value = "60")]
        timeout: std::time::Duration,
        #[command(flatten)]
        tls: TlsArgs,
        /// TLS: the name the receiver's certificate must carry (default: HOST of --to).
        #[arg(long, value_name = "NAME", requires = "tls_cert", help_heading = "TLS")]
        tls_name: Option<String>,
        #[command(flatten)]
        save: SaveArgs,
        #[cfg(feature = "xen")]
        #[command(flatten)]
        domain: DomainArgs,
        /// Print a JSON summary of a --domain send on standard output.
        #[cfg(feature = "xen")]
        #[arg(long)]
        json: bool,
    },
    /// Read guest memory at a guest-physical or guest-virtual address: a hex dump, or raw
    /// bytes with --out.
    Read(ReadArgs),
    /// Search guest memory for text or bytes: one line per match, its guest-physical address
    /// first. Exit 0 when something matched, 1 when nothing did, 2 on errors.
    Grep {
        /// The stream (`-` for standard input; compressed files are read too).
        file: PathBuf,
        /// The text to find (with --hex: hex digits).
        pattern: String,
        /// The pattern is hex digits ("de ad be ef", "0xdeadbeef").
        #[arg(long)]
        hex: bool,
        /// Stop after this many matches.
        #[arg(long, short = 'm')]
        max_count: Option<u64>,
        /// Print a JSON array of matches.
        #[arg(long)]
        json: bool,
    },
    /// Compare the guests of two streams: pages and state records. Exit 0 identical, 1
    /// different, 2 on errors.
    Diff {
        /// The first stream.
        a: PathBuf,
        /// The second stream.
        b: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Receive one stream (TCP or a pipe), restore it into a directory (or keep it as a
    /// file) and report the outcome to the sender.
    Receive {
        /// Address to listen on (loopback unless told otherwise; port 0 picks one).
        #[arg(long, default_value = "127.0.0.1:7878", conflicts_with = "from")]
        listen: String,
        /// Read the stream from this file or pipe (`-`: standard input) and write the
        /// handshake messages on standard output, instead of listening.
        #[arg(long, value_name = "PATH")]
        from: Option<PathBuf>,
        /// Output directory (must not exist; written atomically).
        #[cfg_attr(feature = "xen", arg(long, required_unless_present_any = ["out_file", "domain"], conflicts_with_all = ["out_file", "domain"]))]
        #[cfg_attr(not(feature = "xen"), arg(long, required_unless_present = "out_file", conflicts_with = "out_file"))]
        out: Option<PathBuf>,
        /// Restore the arriving guest into a new Xen domain and start it there, with xl's
        /// hand-over (`xl migrate`'s protocol): the sender (`send --domain`, `xsr migrate`,
        /// `xl migrate`) destroys its copy only once this one runs.
        #[cfg(feature = "xen")]
        #[arg(long, conflicts_with = "out_file")]
        domain: bool,
        /// With --domain: leave the domain paused once it is handed over (`xl migrate-receive -p`).
        #[cfg(feature = "xen")]
        #[arg(long, requires = "domain")]
        paused: bool,
        /// With --domain: print a JSON summary.
        #[cfg(feature = "xen")]
        #[arg(long, requires = "domain")]
        json: bool,
        /// Keep the stream as received, byte for byte, in this file (an `xl` save file when
        /// the sender sends one, for `xl restore`), checked by the restore rules as it arrives;
        /// written atomically and synced before the sender is told.
        #[arg(long, value_name = "FILE")]
        out_file: Option<PathBuf>,
        /// Seconds the sender may stay silent (also the bound on the TLS handshake).
        #[arg(long, value_name = "SECONDS", value_parser = parse_timeout, default_value = "60")]
        timeout: std::time::Duration,
        #[command(flatten)]
        tls: TlsArgs,
        /// TLS: accept only a sender whose certificate carries this name (a DNS subject
        /// alternative name or the common name; exact, case-insensitive). Repeatable.
        #[arg(long, value_name = "NAME", requires = "tls_cert", help_heading = "TLS")]
        tls_allow: Vec<String>,
        #[command(flatten)]
        stream: StreamArgs,
        #[command(flatten)]
        memory: MemoryArgs,
    },
    /// Migrate a running domain to another host with `xl migrate`'s protocol: run
    /// `SSHCMD HOST xl migrate-receive` (by default `ssh HOST ...`; with `-s ''`, HOST is the
    /// whole command, e.g. 'ssh host xsr migrate-receive'), send the domain live, and destroy
    /// it here only once the receiver reports that its copy runs.
    #[cfg(feature = "xen")]
    Migrate {
        /// The domain (id or name).
        guest: String,
        /// The destination host (with `-s ''`: the command to run).
        host: String,
        /// The ssh command (passed to sh); empty: HOST is the whole command.
        #[arg(short = 's', value_name = "SSHCMD", default_value = "ssh")]
        ssh: String,
        /// Ask the receiver not to wait in the background for the domain's death (xl's `-e`).
        #[arg(short = 'e')]
        no_monitor: bool,
        /// Ask the receiver to stay in the foreground (xl's `-F`; passed as `-e`, as xl does).
        #[arg(short = 'F')]
        foreground: bool,
        /// Ask the receiver to leave the domain paused (xl's `-p`).
        #[arg(short = 'p')]
        paused: bool,
        /// Ask the receiver for debug output (xl's `--debug`, passed as `-d`).
        #[arg(long)]
        debug: bool,
        /// Accepted for compatibility (xl ignores it too): a migration is always live.
        #[arg(long)]
        live: bool,
        /// Seconds the receiver may stay silent (before the banner, READY, the report).
        #[arg(long, value_name = "SECONDS", value_parser = parse_timeout, default_value = "60")]
        timeout: std::time::Duration,
        /// Print a JSON summary.
        #[arg(long)]
        json: bool,
    },
    /// The receiving end of `xl migrate` / `xsr migrate`: the stream on standard input, xl's
    /// acknowledgements on standard output; restores into a new domain (`NAME--incoming`),
    /// starts it on the sender's permission, and reports.
    #[cfg(feature = "xen")]
    MigrateReceive {
        /// Accepted (xl: stay in the foreground); xsr never daemonizes.
        #[arg(short = 'F')]
        foreground: bool,
        /// Accepted (xl: no monitor for the domain's death); xsr never keeps one.
        #[arg(short = 'e')]
        no_monitor: bool,
        /// Accepted (xl: debug output).
        #[arg(short = 'd')]
        debug: bool,
        /// Leave the domain paused once handed over.
        #[arg(short = 'p')]
        paused: bool,
        /// Seconds the sender may stay silent.
        #[arg(long, value_name = "SECONDS", value_parser = parse_timeout, default_value = "60")]
        timeout: std::time::Duration,
    },
}

/// Arguments of `xsr read`.
#[derive(Args, Debug)]
#[group(required = true, multiple = false, id = "address")]
struct AddressArgs {
    /// Guest-physical address (hex with 0x, or decimal).
    #[arg(long, value_parser = parse_addr, group = "address")]
    phys: Option<u64>,
    /// Guest-virtual address, translated with the vcpu's CR3 and paging mode.
    #[arg(long, value_parser = parse_addr, group = "address")]
    virt: Option<u64>,
}

#[derive(Args, Debug)]
struct ReadArgs {
    /// The stream (`-` for standard input; compressed files are read too).
    file: PathBuf,
    #[command(flatten)]
    address: AddressArgs,
    /// Bytes to read (e.g. 64, 0x100, 4K).
    #[arg(long, value_parser = parse_len)]
    len: u64,
    /// With --virt: the vcpu whose CR3 and paging mode translate the address.
    #[arg(long, default_value_t = 0, requires = "virt")]
    vcpu: u32,
    /// With --virt: CR3 to translate with instead of the vcpu's (e.g. for HVM streams).
    #[arg(long, value_parser = parse_addr, requires = "virt")]
    cr3: Option<u64>,
    /// With --virt: paging mode instead of the vcpu's.
    #[arg(long, value_enum, requires = "virt")]
    paging: Option<PagingArg>,
    /// Read unpopulated memory (and, with --virt, unmapped pages) as zeros instead of failing.
    #[arg(long)]
    zeros: bool,
    /// Write the raw bytes to this file (atomically; `-`: standard output) instead of a hex dump.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// A running domain to save (`xsr save --domain`, `xsr send --domain`).
#[cfg(feature = "xen")]
#[derive(Args, Debug)]
struct DomainArgs {
    /// Save this running x86 PV domain (id or name) as `xl save` does: an `xl` file with
    /// its configuration that `xl restore` resumes. The domain is destroyed after a
    /// successful save unless --keep-running.
    #[arg(long, value_name = "DOMID|NAME")]
    domain: Option<String>,
    /// With --domain: send memory while the guest runs (pre-copy), then suspend it for the
    /// last dirty pages.
    #[arg(long, requires = "domain")]
    live: bool,
    /// Live: most pre-copy passes before suspending.
    #[arg(long, default_value_t = 5, requires = "live")]
    max_iterations: u32,
    /// Live: suspend once fewer pages than this were dirtied during a pass.
    #[arg(long, default_value_t = 50, requires = "live")]
    dirty_threshold: u64,
    /// Live: suspend once the dirty pages would take less than this many milliseconds.
    #[arg(long, requires = "live")]
    downtime_ms: Option<u64>,
    /// With --domain: resume the guest after the save instead of destroying it (`xl save -c`).
    #[arg(long, requires = "domain")]
    keep_running: bool,
    /// With --domain: seconds the guest may take to suspend.
    #[arg(long, value_name = "SECONDS", value_parser = parse_timeout, default_value = "60", requires = "domain")]
    suspend_timeout: std::time::Duration,
}

#[cfg(feature = "xen")]
impl DomainArgs {
    /// The settings of a domain save, refusing the directory-only options.
    fn settings(&self, save: &SaveArgs) -> Result<Option<xsr::cmd::save_domain::DomainSaveSettings>> {
        let Some(domain) = &self.domain else { return Ok(None) };
        let dir_only = [
            (save.container.is_some_and(|c| c != ContainerArg::Xl), "--container"),
            (save.stream_version != 3, "--stream-version"),
            (save.zero_pages != ZeroPagesArg::Data, "--zero-pages"),
            (save.verify, "--verify"),
            (save.pvh_as_hvm, "--pvh-as-hvm"),
        ];
        if let Some((_, name)) = dir_only.iter().find(|(set, _)| *set) {
            anyhow::bail!("{name} applies to a directory save, not to --domain (which writes what `xl save` writes)");
        }
        Ok(Some(xsr::cmd::save_domain::DomainSaveSettings {
            domain: domain.clone(),
            live: self.live.then_some(PrecopyPolicy {
                max_iterations: self.max_iterations,
                dirty_threshold: self.dirty_threshold,
                downtime_target: self.downtime_ms.map(std::time::Duration::from_millis),
            }),
            keep_running: self.keep_running,
            workers: save.workers,
            batch: save.batch,
            suspend_timeout: self.suspend_timeout,
        }))
    }
}

#[derive(Args, Debug)]
struct SaveArgs {
    /// Wrapper around the libxc stream (default: the one the directory was restored from).
    #[arg(long, value_enum)]
    container: Option<ContainerArg>,
    /// libxc stream version to write.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(2..=3))]
    stream_version: u32,
    /// pfns per PAGE_DATA record.
    #[arg(long, default_value_t = sr_save::DEFAULT_BATCH_PFNS)]
    batch: usize,
    /// How all-zero pages are sent.
    #[arg(long, value_enum, default_value = "data")]
    zero_pages: ZeroPagesArg,
    /// After the memory, send VERIFY and every page again (the receiver compares).
    #[arg(long)]
    verify: bool,
    /// Worker threads preparing batches (0: one per core).
    #[arg(long, default_value_t = 0)]
    workers: usize,
    /// Write a PVH guest as HVM (domain type 2), as current Xen does.
    #[arg(long)]
    pvh_as_hvm: bool,
}

impl SaveArgs {
    fn settings(&self) -> SaveSettings {
        SaveSettings {
            container: self.container,
            stream_version: self.stream_version,
            batch: self.batch,
            zero_pages: self.zero_pages,
            verify: self.verify,
            workers: self.workers,
            pvh_as_hvm: self.pvh_as_hvm,
        }
    }
}

/// TLS on a `send --to` / `receive --listen` TCP connection (see docs/migrating.md).
#[derive(Args, Debug)]
struct TlsArgs {
    /// TLS 1.3: this side's certificate chain (PEM, leaf first). Needs --tls-key and --tls-ca.
    #[arg(long, value_name = "FILE", requires_all = ["tls_key", "tls_ca"], help_heading = "TLS")]
    tls_cert: Option<PathBuf>,
    /// TLS: this side's private key (PEM).
    #[arg(long, value_name = "FILE", requires_all = ["tls_cert", "tls_ca"], help_heading = "TLS")]
    tls_key: Option<PathBuf>,
    /// TLS: the certificate authorities that sign the other side's certificate (PEM).
    #[arg(long, value_name = "FILE", requires_all = ["tls_cert", "tls_key"], help_heading = "TLS")]
    tls_ca: Option<PathBuf>,
    /// Allow plaintext TCP on an address that is not loopback (a network you trust).
    #[arg(long, conflicts_with = "tls_cert", help_heading = "TLS")]
    insecure: bool,
}

impl TlsArgs {
    fn files(&self) -> Option<xsr::tls::TlsFiles> {
        match (&self.tls_cert, &self.tls_key, &self.tls_ca) {
            (Some(cert), Some(key), Some(ca)) => {
                Some(xsr::tls::TlsFiles { cert: cert.clone(), key: key.clone(), ca: ca.clone() })
            }
            _ => None,
        }
    }

    /// Refuses the TLS flags where they do not apply (pipes, standard input and output).
    fn only_for(&self, what: &str) -> Result<()> {
        if self.tls_cert.is_some() || self.insecure {
            anyhow::bail!("--tls-* and --insecure are for TCP ({what}); ssh already protects a pipe transport");
        }
        Ok(())
    }
}

#[derive(Args, Debug)]
struct StreamArgs {
    /// The stream is checkpointed (Remus/COLO): CHECKPOINT records are allowed.
    #[arg(long)]
    checkpointed: bool,
    /// With --checkpointed: if the stream breaks, restore the last complete checkpoint.
    #[arg(long, requires = "checkpointed")]
    failover: bool,
}

#[derive(Args, Debug)]
struct MemoryArgs {
    /// Most guest memory the stream may populate (pages restored), e.g. 64G.
    #[arg(long, value_parser = parse_size, default_value = "64G")]
    max_memory: u64,
    /// Largest guest-physical span accepted (highest address a pfn or a PV p2m may reach),
    /// e.g. 1T; its bookkeeping costs up to 2 bits per page of span (64 MiB per TiB).
    #[arg(long, value_parser = parse_size, default_value = "1T")]
    max_span: u64,
}

impl MemoryArgs {
    /// `options` with these bounds.
    fn bound(&self, options: RestoreOptions) -> RestoreOptions {
        RestoreOptions { max_populated_bytes: self.max_memory, max_span_bytes: self.max_span, ..options }
    }
}

impl StreamArgs {
    fn options(&self, strictness: Strictness) -> RestoreOptions {
        RestoreOptions {
            strictness,
            stream: if self.checkpointed { StreamKind::Checkpointed } else { StreamKind::Plain },
            failover: self.failover,
            ..RestoreOptions::default()
        }
    }
}

/// `--timeout`: seconds, fractions allowed.
fn parse_timeout(s: &str) -> Result<std::time::Duration, String> {
    match s.parse::<f64>() {
        Ok(secs) if secs > 0.0 && secs.is_finite() && secs < 1e9 => Ok(std::time::Duration::from_secs_f64(secs)),
        _ => Err(format!("{s:?} is not a positive number of seconds")),
    }
}

fn print_json<T: serde::Serialize>(value: &T) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

/// Runs `xsr verify`; returns the exit code.
fn run_verify(file: &Path, strict: bool, stream: &StreamArgs, json: bool) -> Result<ExitCode> {
    let strictness = if strict { Strictness::Strict } else { Strictness::Lenient };
    let mut restorer = Restorer::new(stream.options(strictness));
    let result = match Scan::open(file)? {
        Scan::File(src) => restorer.verify(StreamReader::new(src).skip_page_bodies(true)),
        Scan::Stream(src) => restorer.verify(StreamReader::new(src).skip_page_bodies(true)),
    };
    if let Err(sr_restore::RestoreError::Format(sr_format::Error::Io { .. })) = &result {
        anyhow::bail!("{}", result.err().map(|e| e.to_string()).unwrap_or_default());
    }
    let report = verify::VerifyReport::new(&result);
    if json {
        print_json(&report)?;
    } else {
        report.print_text(&mut std::io::stdout().lock())?;
    }
    Ok(if report.valid { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// Where a save's summary goes: standard output, unless that carries the stream (`--out -`).
fn summary_sink(out: &std::path::Path) -> Box<dyn Write> {
    if out.as_os_str() == "-" { Box::new(std::io::stderr()) } else { Box::new(std::io::stdout()) }
}

fn print_save_summary(stats: &sr_save::SaveStats, sink: &mut dyn Write) -> std::io::Result<()> {
    writeln!(
        sink,
        "saved {} pages, {} bytes in {:.3} s{}",
        stats.pages,
        stats.bytes,
        stats.duration.as_secs_f64(),
        if stats.zero_copy { " (zero-copy page path)" } else { "" }
    )
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        #[cfg(feature = "xen")]
        Command::Dump { domain, out, format, live, max_iterations, dirty_threshold, downtime_ms, batch, json } => {
            let policy = live.then_some(PrecopyPolicy {
                max_iterations,
                dirty_threshold,
                downtime_target: downtime_ms.map(std::time::Duration::from_millis),
            });
            if format == xsr::cmd::dump::DumpFormat::Stream {
                // A restorable stream of a running PV domain is a save that resumes the guest.
                let settings = xsr::cmd::save_domain::DomainSaveSettings {
                    domain,
                    live: policy,
                    keep_running: true,
                    workers: 0,
                    batch,
                    suspend_timeout: std::time::Duration::from_secs(60),
                };
                if let Some(code) = xsr::cmd::save_domain::supervise(&settings.domain, Some(&out))? {
                    return Ok(ExitCode::from(code));
                }
                let summary = xsr::cmd::save_domain::save_domain(&settings, &out)?;
                if json {
                    print_json(&summary)?;
                } else {
                    xsr::cmd::save_domain::print_summary(&summary, &mut std::io::stdout().lock())?;
                }
                return Ok(ExitCode::SUCCESS);
            }
            let settings = xsr::cmd::dump::DumpSettings {
                domain,
                out,
                format,
                live: live.then_some(PrecopyPolicy {
                    max_iterations,
                    dirty_threshold,
                    downtime_target: downtime_ms.map(std::time::Duration::from_millis),
                }),
                batch,
            };
            let summary = xsr::cmd::dump::dump(&settings)?;
            if json {
                print_json(&summary)?;
            } else {
                xsr::cmd::dump::print_summary(&summary, &mut std::io::stdout().lock())?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Save {
            dir,
            out,
            save,
            #[cfg(feature = "xen")]
            domain,
            json,
        } => {
            #[cfg(feature = "xen")]
            if let Some(settings) = domain.settings(&save)? {
                if let Some(code) = xsr::cmd::save_domain::supervise(&settings.domain, Some(&out))? {
                    return Ok(ExitCode::from(code));
                }
                let summary = xsr::cmd::save_domain::save_domain(&settings, &out)?;
                let mut sink = summary_sink(&out);
                if json {
                    serde_json::to_writer_pretty(&mut sink, &summary)?;
                    writeln!(sink)?;
                } else {
                    xsr::cmd::save_domain::print_summary(&summary, &mut sink)?;
                }
                return Ok(ExitCode::SUCCESS);
            }
            let dir = anyhow::Context::context(dir, "a directory (or --domain) is needed")?;
            let stats = save::save(&dir, &out, &save.settings())?;
            let mut sink = summary_sink(&out);
            if json {
                let summary = serde_json::json!({
                    "pages": stats.pages,
                    "bytes": stats.bytes,
                    "seconds": stats.duration.as_secs_f64(),
                });
                serde_json::to_writer_pretty(&mut sink, &summary)?;
                writeln!(sink)?;
            } else {
                print_save_summary(&stats, &mut sink)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo { memory, dtype, dirty_rate, workers, max_iterations, dirty_threshold, downtime_ms, json } => {
            let settings = DemoSettings {
                memory,
                dtype,
                dirty_rate,
                workers,
                policy: PrecopyPolicy {
                    max_iterations,
                    dirty_threshold,
                    downtime_target: downtime_ms.map(std::time::Duration::from_millis),
                },
            };
            let summary = demo::demo(&settings)?;
            if json {
                print_json(&summary)?;
            } else {
                demo::print_summary(&summary, &mut std::io::stdout().lock())?;
            }
            Ok(if summary.identical { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        Command::Send {
            dir,
            to,
            via,
            reply,
            timeout,
            tls,
            tls_name,
            save,
            #[cfg(feature = "xen")]
            domain,
            #[cfg(feature = "xen")]
            json,
        } => {
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
            #[cfg(feature = "xen")]
            if let Some(settings) = domain.settings(&save)? {
                if let Some(code) = xsr::cmd::save_domain::supervise(&settings.domain, None)? {
                    return Ok(ExitCode::from(code));
                }
                let (summary, receiver) =
                    xsr::cmd::save_domain::send_domain(&settings, |save, handover| {
                        net::send_with(&peer, timeout, save, Some(handover))
                    })?;
                // With --to -, standard output carries the stream.
                let stdout_is_stream = matches!(peer, net::Peer::Stdout { .. });
                if json && !stdout_is_stream {
                    print_json(&summary)?;
                } else {
                    xsr::cmd::save_domain::print_summary(&summary, &mut std::io::stderr().lock())?;
                }
                eprintln!("the receiver committed it: {receiver}");
                return Ok(ExitCode::SUCCESS);
            }
            let dir = anyhow::Context::context(dir, "a directory (or --domain) is needed")?;
            let sent = net::send(&dir, &peer, &save.settings(), timeout)?;
            if let Some(tls) = &sent.tls {
                eprintln!("{tls}");
            }
            let stats = &sent.stats;
            eprintln!(
                "sent {} pages, {} bytes in {:.3} s; the receiver committed it: {}",
                stats.pages,
                stats.bytes,
                stats.duration.as_secs_f64(),
                sent.summary
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Receive {
            listen,
            from,
            out,
            #[cfg(feature = "xen")]
            domain,
            #[cfg(feature = "xen")]
            paused,
            #[cfg(feature = "xen")]
            json,
            out_file,
            timeout,
            tls,
            tls_allow,
            stream,
            memory,
        } => {
            let source = match from {
                Some(path) => {
                    tls.only_for("--listen")?;
                    net::Source::Path(path)
                }
                None => net::Source::listen(&listen, tls.files().as_ref(), &tls_allow, tls.insecure)?,
            };
            let piped = matches!(source, net::Source::Path(_));
            #[cfg(feature = "xen")]
            if domain {
                return receive_domain(&source, paused, json, timeout);
            }
            let options = memory.bound(stream.options(Strictness::Lenient));
            let target = match (&out, &out_file) {
                (Some(dir), _) => net::Target::Dir(dir),
                (None, Some(file)) => net::Target::File(file),
                (None, None) => anyhow::bail!("--out DIR or --out-file FILE is needed"),
            };
            let (_, line) = net::receive(&source, target, options, memory.max_memory, timeout, |addr| {
                eprintln!("listening on {addr}");
            })?;
            // With --from, standard output carries the handshake: the summary goes to stderr.
            if piped {
                eprintln!("{line}");
            } else {
                println!("{line}");
            }
            Ok(ExitCode::SUCCESS)
        }
        #[cfg(feature = "xen")]
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
            let settings = xsr::cmd::save_domain::DomainSaveSettings {
                domain: guest.clone(),
                live: Some(PrecopyPolicy::default()),
                keep_running: false,
                workers: 0,
                batch: sr_save::SaveOptions::default().batch_pfns,
                suspend_timeout: std::time::Duration::from_secs(60),
            };
            if let Some(code) = xsr::cmd::save_domain::supervise(&guest, None)? {
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
        #[cfg(feature = "xen")]
        Command::MigrateReceive { foreground: _, no_monitor: _, debug: _, paused, timeout } => {
            receive_domain(&net::Source::Path(PathBuf::from("-")), paused, false, timeout)
        }
        Command::Inspect { file, json } => {
            let (scan, compression) = Scan::open_detecting(&file)?;
            let mut report = match scan {
                Scan::File(src) => inspect::inspect(StreamReader::new(src).skip_page_bodies(true)),
                Scan::Stream(src) => inspect::inspect(StreamReader::new(src).skip_page_bodies(true)),
            };
            // A compressed file shows its compression as the outermost layer.
            if let Some(c) = compression {
                report.layers.insert(0, c.name());
            }
            if json {
                print_json(&report)?;
            } else {
                inspect::print_text(&report, &mut std::io::stdout().lock())?;
            }
            Ok(if report.error.is_some() { ExitCode::from(1) } else { ExitCode::SUCCESS })
        }
        Command::Verify { file, strict, stream, json } => run_verify(&file, strict, &stream, json),
        Command::Read(a) => {
            let address = match (a.address.phys, a.address.virt) {
                (Some(p), _) => Address::Phys(p),
                (None, Some(va)) => Address::Virt { va, vcpu: a.vcpu, cr3: a.cr3, paging: a.paging.map(Into::into) },
                (None, None) => anyhow::bail!("give --phys or --virt"),
            };
            let holes = if a.zeros { sr_image::Holes::Zero } else { sr_image::Holes::Error };
            read::read(&a.file, address, a.len, a.out.as_deref(), holes)?;
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
            Ok(if report.identical { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        Command::Restore {
            file,
            out,
            #[cfg(feature = "xen")]
            domain,
            #[cfg(feature = "xen")]
            name,
            #[cfg(feature = "xen")]
            paused,
            stream,
            memory,
            json,
        } => {
            #[cfg(feature = "xen")]
            if domain {
                let settings = xsr::cmd::restore_domain::DomainRestoreSettings { file, name, paused };
                let summary = xsr::cmd::restore_domain::restore_domain(&settings)?;
                if json {
                    print_json(&summary)?;
                } else {
                    xsr::cmd::restore_domain::print_summary(&summary, &mut std::io::stdout().lock())?;
                }
                return Ok(ExitCode::SUCCESS);
            }
            let out = anyhow::Context::context(out, "--out DIR is needed")?;
            let restored =
                restore::restore(&file, &out, memory.bound(stream.options(Strictness::Lenient)), memory.max_memory)?;
            let summary = restore::RestoreSummary::new(&restored, &out);
            if json {
                print_json(&summary)?;
            } else {
                summary.print_text(&mut std::io::stdout().lock())?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Extract { file, format, out, stream, memory, json } => {
            let done = extract::extract(
                &file,
                &out,
                format,
                memory.bound(stream.options(Strictness::Lenient)),
                memory.max_memory,
            )?;
            if let Some(w) = &done.warning {
                eprintln!("warning: {w}");
            }
            // With `--out -` the image is on standard output: the summary goes to stderr.
            let mut o: Box<dyn Write> =
                if out.as_os_str() == "-" { Box::new(std::io::stderr()) } else { Box::new(std::io::stdout()) };
            if json {
                serde_json::to_writer_pretty(&mut o, &done)?;
                writeln!(o)?;
            } else {
                writeln!(
                    o,
                    "extracted {} pages in {} runs to {} ({} bytes{})",
                    done.pages,
                    done.runs,
                    out.display(),
                    done.bytes,
                    if done.vcpus > 0 { format!(", registers of {} vcpus", done.vcpus) } else { String::new() }
                )?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

impl Command {
    /// Whether everything the command writes on standard output is a report, so a reader
    /// that stops early (`xsr inspect FILE | head`) cuts nothing that matters. A stream or
    /// an image on standard output (`save --out -`, `extract --out -`, `send --to -`, the
    /// handshake of `receive --from`) is the command's product: a closed output is an error.
    fn output_is_report(&self) -> bool {
        match self {
            Command::Inspect { .. } | Command::Verify { .. } | Command::Demo { .. } | Command::Restore { .. } => true,
            Command::Grep { .. } | Command::Diff { .. } => true,
            // The dump goes to a file (written atomically); standard output has the summary.
            #[cfg(feature = "xen")]
            Command::Dump { .. } => true,
            // A hex dump is a report; raw bytes on standard output (`--out -`) are the product.
            Command::Read(a) => a.out.as_deref().is_none_or(|o| o.as_os_str() != "-"),
            Command::Extract { out, .. } | Command::Save { out, .. } => out.as_os_str() != "-",
            // A transfer's product is the transfer: a broken pipe or connection anywhere fails it.
            Command::Send { .. } | Command::Receive { .. } => false,
            #[cfg(feature = "xen")]
            Command::Migrate { .. } | Command::MigrateReceive { .. } => false,
        }
    }
}

/// `receive --domain` and `migrate-receive`: supervised (a receiver killed by a signal leaves
/// no half-made domain), with the save helper set up while the process has one thread.
#[cfg(feature = "xen")]
fn receive_domain(source: &net::Source, paused: bool, json: bool, timeout: std::time::Duration) -> Result<ExitCode> {
    use xsr::cmd::handover;
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

fn main() -> ExitCode {
    // libxl runs its save helper as `HELPER --restore-domain ...` / `--save-domain ...`:
    // answered before any other parsing, with nothing but protocol frames on stdout.
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if xsr::cmd::helper::is_helper_invocation(&args) {
        return ExitCode::from(xsr::cmd::helper::run(&args));
    }
    let cli = Cli::parse();
    let report = cli.command.output_is_report();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            if report && xsr::outcome::is_closed_output(&e) {
                return ExitCode::SUCCESS;
            }
            eprintln!("xsr: {}", xsr::outcome::render(&e));
            // A stream that breaks a rule or ends early is "invalid" (1); usage and I/O
            // problems are 2; a transfer the receiver refused exits with the receiver's code.
            ExitCode::from(xsr::outcome::exit_code(&e))
        }
    }
}
