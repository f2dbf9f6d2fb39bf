//! `xsr verify`: every check that depends on the stream alone.

use std::collections::BTreeMap;
use std::io::Write;

use serde::Serialize;
use sr_restore::{NoMemory, RestoreError, Restored};

/// The outcome, for printing.
#[derive(Serialize, Debug)]
pub struct VerifyReport {
    /// Whether the stream is valid.
    pub valid: bool,
    /// The rule broken, with offset and record.
    pub error: Option<String>,
    /// Offset of the error.
    pub error_offset: Option<u64>,
    /// Domain type name.
    pub domain_type: Option<String>,
    /// Stream version.
    pub stream_version: Option<u32>,
    /// Outer layer.
    pub layer: Option<String>,
    /// libxc records.
    pub records: u64,
    /// PAGE_DATA entries by type name (the same object as `inspect --json`'s
    /// `totals.pages_by_type`).
    pub pages_by_type: BTreeMap<String, u64>,
    /// Page bodies.
    pub data_pages: u64,
    /// Checkpoints.
    pub checkpoints: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Warnings (what Xen ignores).
    pub warnings: Vec<String>,
    /// Rules on page contents this verification could not check (`xsr restore` checks them).
    pub not_checked: Vec<String>,
}

/// What a verification did not check, in words.
pub fn not_checked(skipped: &sr_restore::SkippedChecks) -> Vec<String> {
    let mut out = Vec::new();
    if skipped.page_tables > 0 {
        out.push(format!(
            "entries of {} x86 PV page-table pages (page bodies skipped): each present entry must name a pfn <= max_pfn",
            skipped.page_tables
        ));
    }
    if skipped.start_info {
        out.push(
            "the x86 PV start_info page's xenstore and console frames (no restored memory to read): each must be a \
             populated pfn <= max_pfn"
                .to_string(),
        );
    }
    out
}

impl VerifyReport {
    /// Builds the report from a verification result.
    pub fn new(result: &Result<Restored<NoMemory>, RestoreError>) -> Self {
        match result {
            Ok(r) => VerifyReport {
                valid: true,
                error: None,
                error_offset: None,
                domain_type: Some(r.state.domain_type.to_string()),
                stream_version: Some(r.state.stream_version),
                layer: Some(r.container.layer.name().to_string()),
                records: r.stats.records.values().sum(),
                pages_by_type: r.stats.pages_by_type.iter().map(|(t, n)| (t.to_string(), *n)).collect(),
                data_pages: r.stats.data_pages,
                checkpoints: r.stats.checkpoints,
                bytes: r.stats.bytes,
                warnings: r
                    .warnings
                    .iter()
                    .map(|w| format!("byte {}: {}", w.offset, w.message))
                    .chain((r.stats.warnings_dropped > 0).then(|| format!("... and {} more", r.stats.warnings_dropped)))
                    .collect(),
                not_checked: not_checked(&r.skipped),
            },
            Err(e) => VerifyReport {
                valid: false,
                error: Some(e.to_string()),
                error_offset: Some(e.offset()),
                domain_type: None,
                stream_version: None,
                layer: None,
                records: 0,
                pages_by_type: BTreeMap::new(),
                data_pages: 0,
                checkpoints: 0,
                bytes: 0,
                warnings: Vec::new(),
                not_checked: Vec::new(),
            },
        }
    }

    /// Prints the report as text.
    pub fn print_text(&self, out: &mut dyn Write) -> std::io::Result<()> {
        if let Some(err) = &self.error {
            return writeln!(out, "invalid: {err}");
        }
        let pages: Vec<String> = self.pages_by_type.iter().map(|(t, n)| format!("{t} {n}")).collect();
        writeln!(
            out,
            "valid: {} stream v{} ({}), {}, {} bytes",
            self.domain_type.as_deref().unwrap_or("?"),
            self.stream_version.unwrap_or(0),
            self.layer.as_deref().unwrap_or("?"),
            crate::text::count(self.records, "record"),
            self.bytes
        )?;
        if !pages.is_empty() {
            writeln!(out, "pages: {} ({} with data)", pages.join(", "), self.data_pages)?;
        }
        if self.checkpoints > 0 {
            writeln!(out, "checkpoints: {}", self.checkpoints)?;
        }
        for w in &self.warnings {
            writeln!(out, "warning: {w}")?;
        }
        for what in &self.not_checked {
            writeln!(out, "not checked: {what}")?;
        }
        Ok(())
    }
}
