//! `xsr`: inspect, verify, restore, extract, save and migrate Xen domain save images.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use sr_format::{StreamReader, Strictness};
use sr_restore::{RestoreOptions, Restorer, StreamKind};
use sr_save::PrecopyPolicy;
use xsr::cmd::demo::{DemoSettings, DemoType};
use xsr::cmd::extract::ExtractFormat;
use xsr::cmd::read::{Address, PagingArg, ReadOutput};
use xsr::cmd::save::{ContainerArg, SaveSettings, ZeroPagesArg};
use xsr::cmd::xen::DumpFormat;
#[cfg(not(feature = "xen"))]
use xsr::cmd::xen::XenUnavailable;
use xsr::cmd::{demo, diff, extract, grep, inspect, net, read, restore, save, verify};
use xsr::input::Scan;
use xsr::outcome::{self, Command as Cmd, EXIT_TABLE};
use xsr::output::OutputRules;
use xsr::size::{parse_addr, parse_bound, parse_len, parse_size, parse_timeout, parse_workers};

#[derive(Parser, Debug)]
#[command(
    name = "xsr",
    version,
    about = "Xen domain save images and migration streams (libxc v2/v3, libxl, xl)",
    after_help = EXIT_TABLE
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// List every layer, header and record with its offset, type and length, plus totals.
    #[command(after_help = Cmd::Inspect.exit_codes())]
    Inspect {
        /// The stream (`-` for standard input).
        file: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check every rule that depends on the stream alone.
    #[command(after_help = Cmd::Verify.exit_codes())]
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
    #[command(after_help = Cmd::Restore.exit_codes())]
    Restore {
        /// The stream (`-` for standard input).
        file: PathBuf,
        /// Output directory (must not exist unless --force; written atomically).
        #[arg(long, required_unless_present = "domain", conflicts_with = "domain")]
        out: Option<PathBuf>,
        /// Restore into a new Xen domain (as `xl restore` does, with xsr as libxl's save helper)
        /// and print its id.
        #[arg(long)]
        domain: bool,
        /// With --domain: the new domain's name instead of the saved one.
        #[arg(long, requires = "domain")]
        name: Option<String>,
        /// With --domain: leave the new domain paused.
        #[arg(long, requires = "domain")]
        paused: bool,
        #[command(flatten)]
        force: ForceArg,
        #[command(flatten)]
        stream: StreamArgs,
        #[command(flatten)]
        memory: MemoryArgs,
        /// Print a JSON summary.
        #[arg(long)]
        json: bool,
    },
    /// Extract guest memory as a raw sparse image, an ELF64 core with the vcpus' registers, or LiME.
    #[command(after_help = Cmd::Extract.exit_codes())]
    Extract {
        /// The stream (`-` for standard input).
        file: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value = "raw")]
        format: ExtractFormat,
        /// Output file (must not exist unless --force; written atomically; `-`: standard
        /// output, the summary then goes to stderr).
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        force: ForceArg,
        #[command(flatten)]
        stream: StreamArgs,
        #[command(flatten)]
        memory: MemoryArgs,
        /// Print a JSON summary.
        #[arg(long)]
        json: bool,
    },
    /// Dump a running Xen domain's memory from dom0 (paused, or live with a short pause).
    /// Needs a build with Xen support (--features xen).
    #[command(after_help = Cmd::Dump.exit_codes())]
    Dump {
        /// Domain id or name.
        #[arg(long)]
        domain: String,
        /// Output file (must not exist unless --force; written atomically).
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        force: ForceArg,
        /// Output format.
        #[arg(long, value_enum, default_value = "elf")]
        format: DumpFormat,
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
    #[command(after_help = Cmd::Save.exit_codes())]
    Save {
        /// The directory.
        #[arg(required_unless_present = "domain", conflicts_with = "domain")]
        dir: Option<PathBuf>,
        /// Output file (`-` for standard output; a file must not exist unless --force, and
        /// is written atomically).
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        force: ForceArg,
        #[command(flatten)]
        save: SaveArgs,
        #[command(flatten)]
        domain: DomainArgs,
        /// Print a JSON summary (on standard output; on standard error with `--out -`).
        #[arg(long)]
        json: bool,
    },
    /// Live-migrate a synthetic guest over loopback TCP into a restorer and compare the result.
    #[command(after_help = Cmd::Demo.exit_codes())]
    Demo {
        /// Guest memory (at least 256K, whole 4K pages; the guest and its copy must fit in
        /// the host's available memory).
        #[arg(long, value_parser = parse_size, default_value = "256M")]
        memory: u64,
        /// Guest type.
        #[arg(long = "type", value_enum, default_value = "hvm")]
        dtype: DemoType,
        /// Pages the running guest dirties per second.
        #[arg(long, default_value_t = 20_000)]
        dirty_rate: u64,
        /// Saver worker threads (0: one per core; at most 256).
        #[arg(long, default_value = "0", value_parser = parse_workers)]
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
    #[command(after_help = Cmd::Send.exit_codes())]
    Send {
        /// The directory.
        #[arg(required_unless_present = "domain", conflicts_with = "domain")]
        dir: Option<PathBuf>,
        /// The receiver: HOST:PORT over TCP, or `-` (the stream on standard output, the
        /// receiver's messages read from --reply).
        #[arg(long, required_unless_present = "via", conflicts_with = "via")]
        to: Option<String>,
        /// Run this shell command as the transport (e.g. `ssh host xsr receive --from - --out DIR`):
        /// the stream goes to its standard input, the receiver's messages come from its standard
        /// output. It runs in its own process group, killed whole on a timeout or an interrupt
        /// (so it cannot prompt on the terminal: use ssh keys).
        #[arg(long, value_name = "CMD")]
        via: Option<String>,
        /// With `--to -`: where the receiver's messages come from (a named pipe, /dev/fd/N).
        #[arg(long, value_name = "PATH")]
        reply: Option<PathBuf>,
        /// How long the receiver may stay silent (before READY, on a blocked write, before
        /// the outcome): seconds, or with a unit (500ms, 30s, 5m, 1h).
        #[arg(long, value_name = "DURATION", value_parser = parse_timeout, default_value = "60")]
        timeout: Duration,
        #[command(flatten)]
        tls: TlsArgs,
        /// TLS: the name the receiver's certificate must carry (default: HOST of --to).
        #[arg(long, value_name = "NAME", requires = "tls_cert", help_heading = "TLS")]
        tls_name: Option<String>,
        #[command(flatten)]
        save: SaveArgs,
        #[command(flatten)]
        domain: DomainArgs,
        /// Print a JSON summary (on standard output; on standard error with `--to -`).
        #[arg(long)]
        json: bool,
    },
    /// Read guest memory at a guest-physical or guest-virtual address: a hex dump, or raw
    /// bytes with --out.
    #[command(after_help = Cmd::Read.exit_codes())]
    Read(ReadArgs),
    /// Search guest memory for text or bytes: one line per match, its guest-physical address
    /// first.
    #[command(after_help = Cmd::Grep.exit_codes())]
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
    /// Compare the guests of two streams: pages and state records.
    #[command(after_help = Cmd::Diff.exit_codes())]
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
    #[command(after_help = Cmd::Receive.exit_codes())]
    Receive {
        /// Address to listen on (loopback unless told otherwise; port 0 picks one).
        #[arg(long, default_value = "127.0.0.1:7878", conflicts_with = "from")]
        listen: String,
        /// Read the stream from this file or pipe (`-`: standard input) and write the
        /// handshake messages on standard output, instead of listening.
        #[arg(long, value_name = "PATH")]
        from: Option<PathBuf>,
        /// Output directory (must not exist unless --force; written atomically).
        #[arg(long, required_unless_present_any = ["out_file", "domain"], conflicts_with_all = ["out_file", "domain"])]
        out: Option<PathBuf>,
        /// Restore the arriving guest into a new Xen domain and start it there, with xl's
        /// hand-over (`xl migrate`'s protocol): the sender (`send --domain`, `xsr migrate`,
        /// `xl migrate`) destroys its copy only once this one runs. Needs a build with Xen
        /// support.
        #[arg(long, conflicts_with = "out_file")]
        domain: bool,
        /// With --domain: leave the domain paused once it is handed over (`xl migrate-receive -p`).
        #[arg(long, requires = "domain")]
        paused: bool,
        /// Keep the stream as received, byte for byte, in this file (an `xl` save file when
        /// the sender sends one, for `xl restore`), checked by the restore rules as it arrives;
        /// written atomically and synced before the sender is told.
        #[arg(long, value_name = "FILE")]
        out_file: Option<PathBuf>,
        #[command(flatten)]
        force: ForceArg,
        /// How long the sender may stay silent, the wait for it to connect and the TLS
        /// handshake included: seconds, or with a unit (500ms, 30s, 5m, 1h).
        #[arg(long, value_name = "DURATION", value_parser = parse_timeout, default_value = "60")]
        timeout: Duration,
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
        /// Print a JSON summary (on standard output; on standard error with --from, whose
        /// standard output carries the handshake).
        #[arg(long)]
        json: bool,
    },
    /// Migrate a running domain to another host with `xl migrate`'s protocol: run
    /// `SSHCMD HOST xl migrate-receive` (by default `ssh HOST ...`; with `-s ''`, HOST is the
    /// whole command, e.g. 'ssh host xsr migrate-receive'), send the domain live, and destroy
    /// it here only once the receiver reports that its copy runs. Needs a build with Xen
    /// support.
    #[command(after_help = Cmd::Send.exit_codes())]
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
        /// How long the receiver may stay silent (before the banner, READY, the report):
        /// seconds, or with a unit (500ms, 30s, 5m, 1h).
        #[arg(long, value_name = "DURATION", value_parser = parse_timeout, default_value = "60")]
        timeout: Duration,
        /// Print a JSON summary.
        #[arg(long)]
        json: bool,
    },
    /// The receiving end of `xl migrate` / `xsr migrate`: the stream on standard input, xl's
    /// acknowledgements on standard output; restores into a new domain (`NAME--incoming`),
    /// starts it on the sender's permission, and reports. Needs a build with Xen support.
    #[command(name = "migrate-receive", after_help = Cmd::Receive.exit_codes())]
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
        /// How long the sender may stay silent: seconds, or with a unit.
        #[arg(long, value_name = "DURATION", value_parser = parse_timeout, default_value = "60")]
        timeout: Duration,
    },
}

/// `--force`, the same for every command that writes a file or a directory.
#[derive(Args, Debug, Clone, Copy)]
struct ForceArg {
    /// Replace an existing output (a file, or a domain image directory) once the new one is
    /// complete. Never replaces an input.
    #[arg(long)]
    force: bool,
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
    #[arg(long, requires = "virt", conflicts_with = "phys")]
    vcpu: Option<u32>,
    /// With --virt: CR3 to translate with instead of the vcpu's (e.g. for HVM streams).
    #[arg(long, value_parser = parse_addr, requires = "virt", conflicts_with = "phys")]
    cr3: Option<u64>,
    /// With --virt: paging mode instead of the vcpu's (`none`: the address is physical).
    #[arg(long, value_enum, requires = "virt", conflicts_with = "phys")]
    paging: Option<PagingArg>,
    /// Read unpopulated memory (and, with --virt, unmapped pages) as zeros instead of failing.
    #[arg(long)]
    zeros: bool,
    /// Write the raw bytes to this file (must not exist unless --force; written atomically;
    /// `-`: standard output) instead of a hex dump.
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    force: ForceArg,
    /// Print JSON: the address, the translation, and the bytes as hex digits (at most 16M),
    /// or with --out the file written (on standard error with `--out -`).
    #[arg(long)]
    json: bool,
}

/// A running domain to save (`xsr save --domain`, `xsr send --domain`), in Xen builds.
#[derive(Args, Debug)]
struct DomainArgs {
    /// Save this running x86 PV domain (id or name) as `xl save` does: an `xl` file with
    /// its configuration that `xl restore` resumes. The domain is destroyed after a
    /// successful save unless --keep-running. Needs a build with Xen support.
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
    /// With --domain: how long the guest may take to suspend (seconds, or 500ms, 30s, 5m).
    #[arg(long, value_name = "DURATION", value_parser = parse_timeout, default_value = "60", requires = "domain")]
    suspend_timeout: Duration,
}

impl DomainArgs {
    /// The settings of a domain save, refusing the directory-only options; `None` without
    /// --domain.
    #[cfg(feature = "xen")]
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
                downtime_target: self.downtime_ms.map(Duration::from_millis),
            }),
            keep_running: self.keep_running,
            workers: save.workers,
            batch: save.batch,
            suspend_timeout: self.suspend_timeout,
        }))
    }

    /// Without Xen support, --domain is refused with what is missing.
    #[cfg(not(feature = "xen"))]
    fn settings(&self, _: &SaveArgs) -> Result<Option<std::convert::Infallible>> {
        match &self.domain {
            Some(_) => Err(XenUnavailable { what: "--domain".into() }.into()),
            None => Ok(None),
        }
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
    /// Worker threads preparing batches (0: one per core; at most 256).
    #[arg(long, default_value = "0", value_parser = parse_workers)]
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
    /// Most guest memory the stream may populate (pages restored), e.g. 64G or 0x40000000.
    #[arg(long, value_parser = parse_bound, default_value = "64G")]
    max_memory: u64,
    /// Largest guest-physical span accepted (highest address a pfn or a PV p2m may reach),
    /// e.g. 1T; its bookkeeping costs up to 2 bits per page of span (64 MiB per TiB).
    #[arg(long, value_parser = parse_bound, default_value = "1T")]
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
        Scan::File(src) => restorer.verify(StreamReader::new(src).skip_page_bodies(true)),
        Scan::Stream(src) => restorer.verify(StreamReader::new(src).skip_page_bodies(true)),
    };
    if let Err(sr_restore::RestoreError::Format(e @ sr_format::Error::Io { .. })) = result {
        return Err(anyhow::Error::new(e).context(format!("cannot read {}", file.display())));
    }
    let report = verify::VerifyReport::new(&result);
    if json {
        print_json(&report)?;
    } else {
        report.print_text(&mut std::io::stdout().lock())?;
    }
    Ok(if report.valid { ExitCode::SUCCESS } else { ExitCode::from(1) })
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

fn run(command: Command) -> Result<ExitCode> {
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
                Err(XenUnavailable { what: "xsr dump".into() }.into())
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
                    if let Some(code) = xsr::cmd::save_domain::supervise(&settings.domain, Some(&out))? {
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
                    if let Some(code) = xsr::cmd::save_domain::supervise(&settings.domain, Some(&out))? {
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
            Ok(if summary.identical { ExitCode::SUCCESS } else { ExitCode::from(1) })
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
                    if let Some(code) = xsr::cmd::save_domain::supervise(&settings.domain, None)? {
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
            receive_domain(&net::Source::Path(PathBuf::from("-")), paused, false, timeout)
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
            Ok(if report.error.is_some() { ExitCode::from(1) } else { ExitCode::SUCCESS })
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
            Ok(if report.identical { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        Command::Restore { file, out, domain, name, paused, force, stream, memory, json } => {
            if domain {
                #[cfg(not(feature = "xen"))]
                {
                    let _ = (name, paused);
                    return Err(XenUnavailable { what: "xsr restore --domain".into() }.into());
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

impl Command {
    /// The command, for its exit codes.
    fn kind(&self) -> Cmd {
        match self {
            Command::Inspect { .. } => Cmd::Inspect,
            Command::Verify { .. } => Cmd::Verify,
            Command::Restore { .. } => Cmd::Restore,
            Command::Extract { .. } => Cmd::Extract,
            Command::Dump { .. } => Cmd::Dump,
            Command::Save { .. } => Cmd::Save,
            Command::Demo { .. } => Cmd::Demo,
            Command::Send { .. } => Cmd::Send,
            Command::Read(_) => Cmd::Read,
            Command::Grep { .. } => Cmd::Grep,
            Command::Diff { .. } => Cmd::Diff,
            Command::Receive { .. } | Command::MigrateReceive { .. } => Cmd::Receive,
            Command::Migrate { .. } => Cmd::Send,
        }
    }

    /// Where this command's JSON goes with `--json`; `None` without it.
    fn json_sink(&self) -> Option<JsonSink> {
        let (json, product_on_stdout) = match self {
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
        json.then_some(JsonSink::unless_stdout_carries(product_on_stdout))
    }

    /// Whether the command talks to Xen: it handles its own signals (stopping between
    /// batches and putting the domain back), and may fork a supervising parent first.
    fn touches_xen(&self) -> bool {
        match self {
            Command::Dump { .. } => true,
            Command::Save { domain, .. } | Command::Send { domain, .. } => domain.domain.is_some(),
            // restore --domain handles SIGINT/SIGTERM itself: the restore finishes, then the new
            // domain is destroyed (a half-built domain is never left by a signal). receive
            // --domain and migrate-receive run under a supervisor that destroys (or, after GO,
            // starts) the copy their worker was making; migrate is send --domain.
            Command::Restore { domain, .. } | Command::Receive { domain, .. } => *domain,
            Command::Migrate { .. } | Command::MigrateReceive { .. } => true,
            _ => false,
        }
    }

    /// Whether everything the command writes on standard output is a report, so a reader
    /// that stops early (`xsr inspect FILE | head`) cuts nothing that matters. A stream or
    /// an image on standard output (`save --out -`, `extract --out -`, `send --to -`, the
    /// handshake of `receive --from`) is the command's product: a closed output is an error.
    fn output_is_report(&self) -> bool {
        match self {
            Command::Inspect { .. } | Command::Verify { .. } | Command::Demo { .. } | Command::Restore { .. } => true,
            Command::Grep { .. } | Command::Diff { .. } => true,
            // The dump goes to a file (written atomically); standard output has the summary.
            Command::Dump { .. } => true,
            // A hex dump is a report; raw bytes on standard output (`--out -`) are the product.
            Command::Read(a) => a.out.as_deref().is_none_or(|o| o.as_os_str() != "-"),
            Command::Extract { out, .. } | Command::Save { out, .. } => out.as_os_str() != "-",
            // A transfer's product is the transfer: a broken pipe or connection anywhere fails it.
            Command::Send { .. } | Command::Receive { .. } => false,
            Command::Migrate { .. } | Command::MigrateReceive { .. } => false,
        }
    }
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

#[cfg(not(feature = "xen"))]
fn migrate(_: String, _: String, _: Duration, _: bool) -> Result<ExitCode> {
    Err(XenUnavailable { what: "xsr migrate".into() }.into())
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
                let message = e.kind().as_str().map_or_else(|| e.to_string(), str::to_string);
                let first = e.to_string().lines().next().unwrap_or_default().trim_start_matches("error: ").to_string();
                let v = serde_json::json!({ "error": if first.is_empty() { message } else { first }, "exit_code": 2 });
                let _ = write_json(&v, JsonSink::Stdout);
            }
            e.exit();
        }
    };
    let command = cli.command;
    let report = command.output_is_report();
    let kind = command.kind();
    let json = command.json_sink();
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
