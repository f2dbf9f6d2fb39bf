//! `xsr grep`: search guest memory for bytes, page by page in pfn order.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result, bail};
use memchr::memmem::Finder;
use serde::Serialize;
use sr_image::{Backing, GuestImage};

/// Bytes of context shown on each side of a match.
pub const CONTEXT: usize = 16;

/// One match.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct Match {
    /// Guest-physical address of its first byte.
    pub addr: u64,
    /// Its pfn.
    pub pfn: u64,
    /// Up to [`CONTEXT`] bytes before, the match, and up to [`CONTEXT`] after, as far as the
    /// searched window reaches (never across a hole), printable ASCII with `.` for the rest.
    pub context: String,
    /// The same bytes in hex.
    pub context_hex: String,
    /// Bytes of context before the match.
    pub before: usize,
}

/// Parses a pattern: text as given, or with `hex`, hex digits (spaces, `:` and a `0x` prefix
/// allowed).
pub fn parse_pattern(pattern: &str, hex: bool) -> Result<Vec<u8>> {
    if !hex {
        if pattern.is_empty() {
            bail!("the pattern is empty");
        }
        return Ok(pattern.as_bytes().to_vec());
    }
    let digits: String =
        pattern.trim().trim_start_matches("0x").chars().filter(|c| !c.is_whitespace() && *c != ':').collect();
    if digits.is_empty() || !digits.len().is_multiple_of(2) {
        bail!("{pattern:?}: a hex pattern needs an even, non-zero number of hex digits");
    }
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).with_context(|| format!("{pattern:?} is not hex")))
        .collect()
}

fn printable(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| if b.is_ascii_graphic() || b == b' ' { b as char } else { '.' }).collect()
}

/// Searches every populated page in pfn order and calls `found` for each match (stop early
/// by returning `false`). A match may cross from a page into the next pfn when that pfn is
/// populated too. Memory: one page plus `pattern.len() - 1` bytes of carry.
pub fn search<B: Backing>(
    image: &GuestImage<B>,
    pattern: &[u8],
    mut found: impl FnMut(Match) -> Result<bool>,
) -> Result<u64> {
    let finder = Finder::new(pattern);
    let page_size = image.index().page_size();
    let shift = image.index().page_shift();
    let keep = pattern.len() - 1 + CONTEXT;
    // window = [tail of the previous page (if consecutive)] + [this page] + [head of the next
    // page, read when needed for context after a match at the end].
    let mut window: Vec<u8> = Vec::with_capacity(keep + page_size);
    let mut page = vec![0u8; page_size];
    let mut prev: Option<u64> = None;
    let mut count = 0u64;
    for p in image.index().pages() {
        image.read_page(p.pfn, &mut page).context("reading a page")?;
        let carried = if prev.is_some_and(|q| q + 1 == p.pfn) { window.len().min(keep) } else { 0 };
        let tail_start = window.len() - carried;
        window.drain(..tail_start);
        window.extend_from_slice(&page);
        let base = (p.pfn << shift) - carried as u64;
        for i in finder.find_iter(&window) {
            // Matches wholly inside the carried tail were reported with the previous page.
            if i + pattern.len() <= carried {
                continue;
            }
            let addr = base + i as u64;
            let from = i.saturating_sub(CONTEXT);
            let to = (i + pattern.len() + CONTEXT).min(window.len());
            let ctx = &window[from..to];
            let m =
                Match { addr, pfn: addr >> shift, context: printable(ctx), context_hex: hex(ctx), before: i - from };
            count += 1;
            if !found(m)? {
                return Ok(count);
            }
        }
        prev = Some(p.pfn);
    }
    Ok(count)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs `xsr grep`; returns the number of matches (at most `max` when given).
pub fn grep(file: &Path, pattern: &[u8], max: Option<u64>, json: bool) -> Result<u64> {
    let image = crate::input::open_image(file)?;
    let mut out = std::io::stdout().lock();
    let mut first = true;
    let mut printed = 0u64;
    if json {
        write!(out, "[")?;
    }
    let count = search(&image, pattern, |m| {
        if json {
            write!(out, "{}\n  {}", if first { "" } else { "," }, serde_json::to_string(&m)?)?;
        } else {
            writeln!(out, "{:#x}  pfn {:#x}  {}", m.addr, m.pfn, m.context)?;
        }
        first = false;
        printed += 1;
        Ok(max.is_none_or(|max| printed < max))
    });
    let count = count?;
    if json {
        writeln!(out, "{}]", if first { "" } else { "\n" })?;
    }
    out.flush()?;
    Ok(count)
}
