//! The command line of `xsr`: clap's definition of every subcommand and flag, shared by the
//! binary (`src/main.rs`) and by what is generated from it (man pages and shell completions,
//! `xsr::dist` with the `dist` feature, `cargo xtask dist`).
//!
//! The doc comments of the fields are the `--help` text of the flags.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use sr_format::Strictness;
use sr_restore::{RestoreOptions, StreamKind};
#[cfg(feature = "xen")]
use sr_save::PrecopyPolicy;

use crate::cmd::demo::DemoType;
use crate::cmd::extract::ExtractFormat;
use crate::cmd::read::PagingArg;
use crate::cmd::save::{ContainerArg, SaveSettings, ZeroPagesArg};
use crate::cmd::xen::DumpFormat;
#[cfg(not(feature = "xen"))]
use crate::cmd::xen::XenUnavailable;
use crate::outcome::{Command as Cmd, EXIT_TABLE};
use crate::size::{parse_addr, parse_bound, parse_len, parse_size, parse_timeout, parse_workers};

// `xsr`'s arguments. (No doc comments on the clap types themselves: clap would make them
// help text.)
#[allow(missing_docs)]
#[derive(Parser, Debug)]
#[command(
    name = "xsr",
    version,
    about = "Xen domain save images and migration streams (libxc v2/v3, libxl, xl)",
    after_help = EXIT_TABLE
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// The subcommands: each variant's doc comment is its help.
#[allow(missing_docs)]
#[derive(Subcommand, Debug)]
pub enum Command {
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
        /// empty records, v3-only records in v2, unknown optional records, bytes after the
        /// stream's END).
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
pub struct ForceArg {
    /// Replace an existing output (a file, or a domain image directory) once the new one is
    /// complete. Never replaces an input.
    #[arg(long)]
    pub force: bool,
}

/// The address of `xsr read`: one of --phys, --virt.
#[derive(Args, Debug)]
#[group(required = true, multiple = false, id = "address")]
pub struct AddressArgs {
    /// Guest-physical address (hex with 0x, or decimal).
    #[arg(long, value_parser = parse_addr, group = "address")]
    pub phys: Option<u64>,
    /// Guest-virtual address, translated with the vcpu's CR3 and paging mode.
    #[arg(long, value_parser = parse_addr, group = "address")]
    pub virt: Option<u64>,
}

/// Arguments of `xsr read`.
#[derive(Args, Debug)]
pub struct ReadArgs {
    /// The stream (`-` for standard input; compressed files are read too).
    pub file: PathBuf,
    // Flattened groups have no doc comment here (clap would take it for help text).
    #[allow(missing_docs)]
    #[command(flatten)]
    pub address: AddressArgs,
    /// Bytes to read (e.g. 64, 0x100, 4K).
    #[arg(long, value_parser = parse_len)]
    pub len: u64,
    /// With --virt: the vcpu whose CR3 and paging mode translate the address.
    #[arg(long, requires = "virt", conflicts_with = "phys")]
    pub vcpu: Option<u32>,
    /// With --virt: CR3 to translate with instead of the vcpu's (e.g. for HVM streams).
    #[arg(long, value_parser = parse_addr, requires = "virt", conflicts_with = "phys")]
    pub cr3: Option<u64>,
    /// With --virt: paging mode instead of the vcpu's (`none`: the address is physical).
    #[arg(long, value_enum, requires = "virt", conflicts_with = "phys")]
    pub paging: Option<PagingArg>,
    /// Read unpopulated memory (and, with --virt, unmapped pages) as zeros instead of failing.
    #[arg(long)]
    pub zeros: bool,
    /// Write the raw bytes to this file (must not exist unless --force; written atomically;
    /// `-`: standard output) instead of a hex dump.
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[allow(missing_docs)]
    #[command(flatten)]
    pub force: ForceArg,
    /// Print JSON: the address, the translation, and the bytes as hex digits (at most 16M),
    /// or with --out the file written (on standard error with `--out -`).
    #[arg(long)]
    pub json: bool,
}

/// A running domain to save (`xsr save --domain`, `xsr send --domain`), in Xen builds.
#[derive(Args, Debug)]
pub struct DomainArgs {
    /// Save this running x86 PV domain (id or name) as `xl save` does: an `xl` file with
    /// its configuration that `xl restore` resumes. The domain is destroyed after a
    /// successful save unless --keep-running. Needs a build with Xen support.
    #[arg(long, value_name = "DOMID|NAME")]
    pub domain: Option<String>,
    /// With --domain: send memory while the guest runs (pre-copy), then suspend it for the
    /// last dirty pages.
    #[arg(long, requires = "domain")]
    pub live: bool,
    /// Live: most pre-copy passes before suspending.
    #[arg(long, default_value_t = 5, requires = "live")]
    pub max_iterations: u32,
    /// Live: suspend once fewer pages than this were dirtied during a pass.
    #[arg(long, default_value_t = 50, requires = "live")]
    pub dirty_threshold: u64,
    /// Live: suspend once the dirty pages would take less than this many milliseconds.
    #[arg(long, requires = "live")]
    pub downtime_ms: Option<u64>,
    /// With --domain: resume the guest after the save instead of destroying it (`xl save -c`).
    #[arg(long, requires = "domain")]
    pub keep_running: bool,
    /// With --domain: how long the guest may take to suspend (seconds, or 500ms, 30s, 5m).
    #[arg(long, value_name = "DURATION", value_parser = parse_timeout, default_value = "60", requires = "domain")]
    pub suspend_timeout: Duration,
}

impl DomainArgs {
    /// The settings of a domain save, refusing the directory-only options; `None` without
    /// --domain.
    #[cfg(feature = "xen")]
    pub fn settings(&self, save: &SaveArgs) -> Result<Option<crate::cmd::save_domain::DomainSaveSettings>> {
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
        Ok(Some(crate::cmd::save_domain::DomainSaveSettings {
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
    pub fn settings(&self, _: &SaveArgs) -> Result<Option<std::convert::Infallible>> {
        match &self.domain {
            Some(_) => Err(XenUnavailable { what: "--domain".into() }.into()),
            None => Ok(None),
        }
    }
}

/// How `xsr save` and `xsr send` write the stream.
#[derive(Args, Debug)]
pub struct SaveArgs {
    /// Wrapper around the libxc stream (default: the one the directory was restored from).
    #[arg(long, value_enum)]
    pub container: Option<ContainerArg>,
    /// libxc stream version to write.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(2..=3))]
    pub stream_version: u32,
    /// pfns per PAGE_DATA record.
    #[arg(long, default_value_t = sr_save::DEFAULT_BATCH_PFNS)]
    pub batch: usize,
    /// How all-zero pages are sent.
    #[arg(long, value_enum, default_value = "data")]
    pub zero_pages: ZeroPagesArg,
    /// After the memory, send VERIFY and every page again (the receiver compares).
    #[arg(long)]
    pub verify: bool,
    /// Worker threads preparing batches (0: one per core; at most 256).
    #[arg(long, default_value = "0", value_parser = parse_workers)]
    pub workers: usize,
    /// Write a PVH guest as HVM (domain type 2), as current Xen does.
    #[arg(long)]
    pub pvh_as_hvm: bool,
}

impl SaveArgs {
    /// The settings of a directory save.
    pub fn settings(&self) -> SaveSettings {
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
pub struct TlsArgs {
    /// TLS 1.3: this side's certificate chain (PEM, leaf first). Needs --tls-key and --tls-ca.
    #[arg(long, value_name = "FILE", requires_all = ["tls_key", "tls_ca"], help_heading = "TLS")]
    pub tls_cert: Option<PathBuf>,
    /// TLS: this side's private key (PEM).
    #[arg(long, value_name = "FILE", requires_all = ["tls_cert", "tls_ca"], help_heading = "TLS")]
    pub tls_key: Option<PathBuf>,
    /// TLS: the certificate authorities that sign the other side's certificate (PEM).
    #[arg(long, value_name = "FILE", requires_all = ["tls_cert", "tls_key"], help_heading = "TLS")]
    pub tls_ca: Option<PathBuf>,
    /// Allow plaintext TCP on an address that is not loopback (a network you trust).
    #[arg(long, conflicts_with = "tls_cert", help_heading = "TLS")]
    pub insecure: bool,
}

impl TlsArgs {
    /// The three credential files, when given.
    pub fn files(&self) -> Option<crate::tls::TlsFiles> {
        match (&self.tls_cert, &self.tls_key, &self.tls_ca) {
            (Some(cert), Some(key), Some(ca)) => {
                Some(crate::tls::TlsFiles { cert: cert.clone(), key: key.clone(), ca: ca.clone() })
            }
            _ => None,
        }
    }

    /// Refuses the TLS flags where they do not apply (pipes, standard input and output).
    pub fn only_for(&self, what: &str) -> Result<()> {
        if self.tls_cert.is_some() || self.insecure {
            anyhow::bail!("--tls-* and --insecure are for TCP ({what}); ssh already protects a pipe transport");
        }
        Ok(())
    }
}

/// What kind of stream is expected.
#[derive(Args, Debug)]
pub struct StreamArgs {
    /// The stream is checkpointed (Remus/COLO): CHECKPOINT records are allowed.
    #[arg(long)]
    pub checkpointed: bool,
    /// With --checkpointed: if the stream breaks, restore the last complete checkpoint.
    #[arg(long, requires = "checkpointed")]
    pub failover: bool,
}

/// The bounds of a restore's destination.
#[derive(Args, Debug)]
pub struct MemoryArgs {
    /// Most guest memory the stream may populate (pages restored), e.g. 64G or 0x40000000.
    #[arg(long, value_parser = parse_bound, default_value = "64G")]
    pub max_memory: u64,
    /// Largest guest-physical span accepted (highest address a pfn or a PV p2m may reach),
    /// e.g. 1T; its bookkeeping costs up to 2 bits per page of span (64 MiB per TiB).
    #[arg(long, value_parser = parse_bound, default_value = "1T")]
    pub max_span: u64,
}

impl MemoryArgs {
    /// `options` with these bounds.
    pub fn bound(&self, options: RestoreOptions) -> RestoreOptions {
        RestoreOptions { max_populated_bytes: self.max_memory, max_span_bytes: self.max_span, ..options }
    }
}

impl StreamArgs {
    /// The restore options of these flags at `strictness`.
    pub fn options(&self, strictness: Strictness) -> RestoreOptions {
        RestoreOptions {
            strictness,
            stream: if self.checkpointed { StreamKind::Checkpointed } else { StreamKind::Plain },
            failover: self.failover,
            ..RestoreOptions::default()
        }
    }
}

impl Command {
    /// The command, for its exit codes.
    pub fn kind(&self) -> Cmd {
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

    /// Whether the command talks to Xen: it handles its own signals (stopping between
    /// batches and putting the domain back), and may fork a supervising parent first.
    pub fn touches_xen(&self) -> bool {
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
    pub fn output_is_report(&self) -> bool {
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
