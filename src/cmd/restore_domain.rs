//! `xsr restore --domain FILE [--name NAME] [--paused]`: an `xl` save file into a new running
//! domain in one command.
//!
//! 1. The stream is verified first (every rule that does not need page bodies; a regular file
//!    is seeked past them), so a stream that breaks a rule never creates a domain.
//! 2. libxl's public `libxl_domain_create_restore` makes the domain the way `xl restore` does
//!    (configuration from the file's header, devices, xenstore, console), with this program as
//!    its save helper (`LIBXL_SAVE_HELPER`, see `cmd::helper`): the memory and CPU half is
//!    `sr_xen::restore`. The helper reports what it did through a temporary file.
//! 3. Unless `--paused`, the domain is unpaused.
//!
//! Whatever fails, no domain is left: libxl destroys a domain whose creation or restore failed,
//! and a domain that does not unpause is destroyed here, as is one whose restore SIGINT or
//! SIGTERM interrupted (the restore runs to its end first: libxl cannot be interrupted). Only a
//! SIGKILL of this process can leave a paused, half-built domain (as with `xl restore`). The error names the rule and byte
//! offset (the helper's, for what only a restore into Xen finds), or the Xen call.
//!
//! Not done here (what `xl restore` adds beyond libxl): ballooning dom0 down for the memory
//! (`freemem`), and the monitor process that applies `on_poweroff`/`on_reboot`/`on_crash`.

use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde::Serialize;
use sr_format::{Item, SeekSource, StreamReader};
use sr_restore::{RestoreOptions, Restorer};

use crate::cmd::helper::{HelperReport, REPORT_ENV};
use crate::input::Seekable;

/// What to restore.
#[derive(Debug, Clone)]
pub struct DomainRestoreSettings {
    /// The `xl` save file (compressed files are decompressed into a temporary file first).
    pub file: PathBuf,
    /// A name instead of the one in the file's configuration.
    pub name: Option<String>,
    /// Leave the new domain paused.
    pub paused: bool,
}

/// What a restore made (`--json`).
#[derive(Debug, Clone, Serialize)]
pub struct DomainRestoreSummary {
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
    /// Page tables localised (x86 PV).
    pub page_tables: u64,
    /// Bytes of the libxc stream.
    pub stream_bytes: u64,
    /// The helper's restore (populate, pages, state, END), milliseconds.
    pub restore_ms: f64,
    /// Of which at END, milliseconds.
    pub end_ms: f64,
    /// Of which in the domain's work (populate, map, write, state, END), milliseconds.
    pub domain_ms: f64,
    /// The verification before anything was created, milliseconds.
    pub verify_ms: f64,
    /// The whole command, milliseconds.
    pub wall_ms: f64,
    /// The xenstore ring's frame.
    pub store_gfn: u64,
    /// The console ring's frame.
    pub console_gfn: u64,
}

/// The helper failed: its text, and whether the stream was at fault.
#[derive(Debug, thiserror::Error)]
#[error("{text}")]
pub struct HelperFailed {
    /// What the helper said.
    pub text: String,
    /// The stream broke a rule (exit 1) rather than Xen or I/O failing (exit 2).
    pub invalid_stream: bool,
}

fn config_field<'a>(config: &'a serde_json::Value, section: &str, key: &str) -> Option<&'a str> {
    config.get(section)?.get(key)?.as_str()
}

/// Restores `settings.file` into a new domain.
pub fn restore_domain(settings: &DomainRestoreSettings) -> Result<DomainRestoreSummary> {
    let started = Instant::now();
    let Seekable { mut file, .. } = Seekable::open(&settings.file)?;
    // 1. Verify.
    let source = SeekSource::new(&file).context("cannot read the save file")?;
    let options = RestoreOptions { hvm_page_types: false, ..RestoreOptions::default() };
    let verified = Restorer::new(options).verify(StreamReader::new(source).skip_page_bodies(true))?;
    let verify_ms = started.elapsed().as_secs_f64() * 1e3;
    let Some(config) = verified.container.xl_config.clone() else {
        bail!(
            "{} is not an `xl` save file (a {} stream): a new domain needs the configuration in the xl header",
            settings.file.display(),
            verified.container.layer.name()
        );
    };
    let parsed: serde_json::Value = serde_json::from_slice(config.strip_suffix(&[0]).unwrap_or(&config))
        .context("the xl header's configuration is not JSON")?;
    let name = settings
        .name
        .clone()
        .or_else(|| config_field(&parsed, "c_info", "name").map(str::to_string))
        .unwrap_or_default();
    let guest_type = config_field(&parsed, "c_info", "type").unwrap_or("?").to_string();
    // 2. The libxl stream starts right after the xl header.
    file.rewind()?;
    let libxl_at = {
        let mut reader = StreamReader::from_read(&file);
        match reader.next_item()? {
            Some(Item::Xl { .. }) => reader.offset(),
            _ => bail!("{}: no xl header", settings.file.display()),
        }
    };
    file.seek(SeekFrom::Start(libxl_at))?;
    let report_file = tempfile::NamedTempFile::new().context("cannot create the helper's report file")?;
    let report_path = report_file.path().to_path_buf();
    let exe = std::env::current_exe().context("cannot find this program for libxl to run as its save helper")?;
    let interrupt = sr_xen::Interrupt::install().context("cannot install the SIGINT/SIGTERM handlers")?;
    let req = sr_xen::restore::CreateRestore {
        config_json: &config,
        name: settings.name.as_deref(),
        helper: Some(&exe),
        helper_env: &[(REPORT_ENV, report_path.as_os_str())],
        paused: settings.paused,
        interrupt: Some(&interrupt),
    };
    let created = sr_xen::restore::create_restore(&file, &req);
    let report = read_report(&report_path);
    let domid = match created {
        Ok(domid) => domid,
        Err(e @ sr_xen::XenError::Interrupted { .. }) => {
            return Err(anyhow::Error::new(e).context(format!(
                "restoring {} was interrupted; the new domain was destroyed",
                settings.file.display()
            )));
        }
        Err(e) => {
            if let Some(HelperReport { error: Some(text), invalid_stream, .. }) = report {
                return Err(anyhow::Error::new(HelperFailed { text, invalid_stream })
                    .context(format!("restoring {} failed; libxl destroyed the new domain", settings.file.display())));
            }
            return Err(anyhow::Error::new(e).context(format!(
                "libxl could not restore {} (its log above says why); no domain was left",
                settings.file.display()
            )));
        }
    };
    let report = report.unwrap_or_default();
    Ok(DomainRestoreSummary {
        domid,
        name,
        guest_type,
        state: if settings.paused { "paused" } else { "running" },
        pages: report.pages,
        page_tables: report.page_tables,
        stream_bytes: report.bytes,
        restore_ms: report.restore_ms,
        end_ms: report.end_ms,
        domain_ms: report.domain_ms,
        verify_ms,
        wall_ms: started.elapsed().as_secs_f64() * 1e3,
        store_gfn: report.store_gfn,
        console_gfn: report.console_gfn,
    })
}

fn read_report(path: &Path) -> Option<HelperReport> {
    let bytes = std::fs::read(path).ok().filter(|b| !b.is_empty())?;
    serde_json::from_slice(&bytes).ok()
}

/// The text summary: the domain id first.
pub fn print_summary(s: &DomainRestoreSummary, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "{}", s.domid)?;
    writeln!(
        out,
        "domain {} ({}, {}) {}: {} pages{} in {:.0} ms (END {:.0} ms), {:.0} ms in all",
        s.domid,
        s.name,
        s.guest_type,
        s.state,
        s.pages,
        if s.page_tables > 0 { format!(" ({} page tables)", s.page_tables) } else { String::new() },
        s.restore_ms,
        s.end_ms,
        s.wall_ms
    )
}
