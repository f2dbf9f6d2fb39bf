//! `xsr verify`: every check that depends on the stream alone.

use std::collections::BTreeMap;
use std::io::Write;

use serde::Serialize;
use sr_format::{ByteSource, SourceError, StreamReader};
use sr_restore::{NoMemory, RestoreError, Restored, Restorer};

/// Bytes that follow a stream's END in its file. They are not part of the stream: Xen's
/// readers stop at END and never read them (libxc hands the fd back to libxl at its END,
/// `tools/libs/guest/xg_sr_restore.c`; libxl completes at its own END,
/// `tools/libs/light/libxl_stream_read.c`), so a restore ignores them; `verify` warns, and
/// `verify --strict` rejects them.
#[derive(Serialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trailing {
    /// Offset of the first byte after END (in the decompressed stream for a compressed file).
    pub offset: u64,
    /// How many bytes follow.
    pub count: u64,
}

impl std::fmt::Display for Trailing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} after the stream's END at byte {}: not part of the stream (Xen stops reading at END)",
            crate::text::count(self.count, "byte"),
            self.offset
        )
    }
}

/// Reads `src` from `offset` (just after a stream's END) to its end: the bytes there, if any.
/// Only for a file or a pipe that ends, never for a transfer's socket.
pub fn trailing_bytes<S: ByteSource>(src: &mut S, offset: u64) -> Result<Option<Trailing>, sr_format::Error> {
    let count = match src.skip_rest() {
        Ok(count) | Err(SourceError::Eof { got: count }) => count,
        Err(SourceError::Io(e)) => return Err(sr_format::Error::io(offset, &e)),
    };
    Ok((count > 0).then_some(Trailing { offset, count }))
}

/// Verifies the stream in `src` (page bodies skipped), then reads on to the end of `src` for
/// bytes after the stream's END.
pub fn verify<S: ByteSource>(
    restorer: &mut Restorer<'_>,
    mut src: S,
) -> Result<(Restored<NoMemory>, Option<Trailing>), RestoreError> {
    let restored = restorer.verify(StreamReader::new(&mut src).skip_page_bodies(true))?;
    let trailing = trailing_bytes(&mut src, restored.stats.bytes)?;
    Ok((restored, trailing))
}

/// The outcome, for printing.
#[derive(Serialize, Debug)]
pub struct VerifyReport {
    /// Whether the stream is valid.
    pub valid: bool,
    /// The rule broken, with offset and record.
    pub error: Option<String>,
    /// Offset of the error.
    pub error_offset: Option<u64>,
    /// The exit status: 0 valid, 1 invalid.
    pub exit_code: u8,
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
    /// Bytes of the stream, up to and including its END.
    pub bytes: u64,
    /// Bytes after the stream's END, if any (a warning; an error with `--strict`).
    pub trailing_bytes: Option<Trailing>,
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
    /// Builds the report from a verification result; with `strict`, bytes after END make the
    /// stream invalid.
    pub fn new(result: &Result<(Restored<NoMemory>, Option<Trailing>), RestoreError>, strict: bool) -> Self {
        match result {
            Ok((r, trailing)) => VerifyReport {
                valid: true,
                error: None,
                error_offset: None,
                exit_code: 0,
                domain_type: Some(r.state.domain_type.to_string()),
                stream_version: Some(r.state.stream_version),
                layer: Some(r.container.layer.name().to_string()),
                records: r.stats.records.values().sum(),
                pages_by_type: r.stats.pages_by_type.iter().map(|(t, n)| (t.to_string(), *n)).collect(),
                data_pages: r.stats.data_pages,
                checkpoints: r.stats.checkpoints,
                bytes: r.stats.bytes,
                trailing_bytes: *trailing,
                warnings: r
                    .warnings
                    .iter()
                    .map(|w| format!("byte {}: {}", w.offset, w.message))
                    .chain((r.stats.warnings_dropped > 0).then(|| format!("... and {} more", r.stats.warnings_dropped)))
                    .collect(),
                not_checked: not_checked(&r.skipped),
            }
            .with_trailing(strict),
            Err(e) => VerifyReport {
                valid: false,
                error: Some(e.to_string()),
                error_offset: Some(e.offset()),
                exit_code: 1,
                domain_type: None,
                stream_version: None,
                layer: None,
                records: 0,
                pages_by_type: BTreeMap::new(),
                data_pages: 0,
                checkpoints: 0,
                bytes: 0,
                trailing_bytes: None,
                warnings: Vec::new(),
                not_checked: Vec::new(),
            },
        }
    }

    /// Bytes after END: a warning, or with `strict` what makes the stream invalid.
    fn with_trailing(mut self, strict: bool) -> Self {
        if let Some(t) = self.trailing_bytes {
            if strict {
                self.valid = false;
                self.error = Some(format!("{t} (--strict)"));
                self.error_offset = Some(t.offset);
                self.exit_code = 1;
            } else {
                self.warnings.push(t.to_string());
            }
        }
        self
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
