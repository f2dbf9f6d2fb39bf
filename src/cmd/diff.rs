//! `xsr diff`: what differs between the guests of two save images.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;
use sr_image::{Backing, GuestImage, PageIndex, StateRecord};

/// Runs of pfns, `[first, count]`.
pub type Runs = Vec<[u64; 2]>;

/// One state record that differs.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct StateDiff {
    /// Record type name (or "DOMAIN_HEADER").
    pub record: String,
    /// The vcpu, for per-vcpu records.
    pub vcpu: Option<u32>,
    /// "differs", "only in A" or "only in B".
    pub change: &'static str,
    /// Body lengths in A and B.
    pub lengths: [Option<usize>; 2],
}

/// The comparison.
#[derive(Serialize, Debug, Default)]
pub struct DiffReport {
    /// Whether the guests are the same: same pages, contents, types and state records.
    pub identical: bool,
    /// The exit status: 0 identical, 1 different.
    pub exit_code: u8,
    /// Populated pages in A and B.
    pub pages: [u64; 2],
    /// Pages in both whose contents differ.
    pub differ: Runs,
    /// Pages populated only in A.
    pub only_in_a: Runs,
    /// Pages populated only in B.
    pub only_in_b: Runs,
    /// Pages in both with the same contents but another page type.
    pub type_differs: Runs,
    /// Counts of the four page lists.
    pub counts: DiffCounts,
    /// State records that differ.
    pub state: Vec<StateDiff>,
}

/// Page counts of a [`DiffReport`].
#[derive(Serialize, Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DiffCounts {
    /// Contents differ.
    pub differ: u64,
    /// Only in A.
    pub only_in_a: u64,
    /// Only in B.
    pub only_in_b: u64,
    /// Page type differs.
    pub type_differs: u64,
}

fn push(runs: &mut Runs, pfn: u64) {
    match runs.last_mut() {
        Some([first, count]) if *first + *count == pfn => *count += 1,
        _ => runs.push([pfn, 1]),
    }
}

fn key(r: &StateRecord) -> (u32, Option<u32>) {
    (r.rtype.0, r.vcpu_id())
}

fn state_diffs(a: &PageIndex, b: &PageIndex) -> Vec<StateDiff> {
    let mut out = Vec::new();
    let (ha, hb) = (a.domain_header(), b.domain_header());
    if ha != hb || a.stream_version() != b.stream_version() {
        out.push(StateDiff { record: "DOMAIN_HEADER".into(), vcpu: None, change: "differs", lengths: [None, None] });
    }
    for ra in a.state_records() {
        let rb = b.state_records().iter().find(|rb| key(rb) == key(ra));
        let change = match rb {
            None => "only in A",
            Some(rb) if rb.body != ra.body => "differs",
            Some(_) => continue,
        };
        out.push(StateDiff {
            record: ra.rtype.to_string(),
            vcpu: ra.vcpu_id(),
            change,
            lengths: [Some(ra.body.len()), rb.map(|r| r.body.len())],
        });
    }
    for rb in b.state_records() {
        if !a.state_records().iter().any(|ra| key(ra) == key(rb)) {
            out.push(StateDiff {
                record: rb.rtype.to_string(),
                vcpu: rb.vcpu_id(),
                change: "only in B",
                lengths: [None, Some(rb.body.len())],
            });
        }
    }
    out
}

/// Compares two images: pages merged in pfn order, contents compared byte for byte (one page
/// of each in memory at a time), then the state records (by type and vcpu).
pub fn compare<A: Backing, B: Backing>(a: &GuestImage<A>, b: &GuestImage<B>) -> Result<DiffReport> {
    let (ia, ib) = (a.index(), b.index());
    let mut r = DiffReport { pages: [ia.len() as u64, ib.len() as u64], ..DiffReport::default() };
    r.state = state_diffs(ia, ib);
    let same_size = ia.page_size() == ib.page_size();
    let (mut pa, mut pb) = (vec![0u8; ia.page_size()], vec![0u8; ib.page_size()]);
    let (mut xa, mut xb) = (ia.pages().peekable(), ib.pages().peekable());
    loop {
        match (xa.peek().copied(), xb.peek().copied()) {
            (None, None) => break,
            (Some(p), None) => {
                push(&mut r.only_in_a, p.pfn);
                xa.next();
            }
            (None, Some(q)) => {
                push(&mut r.only_in_b, q.pfn);
                xb.next();
            }
            (Some(p), Some(q)) if p.pfn < q.pfn => {
                push(&mut r.only_in_a, p.pfn);
                xa.next();
            }
            (Some(p), Some(q)) if p.pfn > q.pfn => {
                push(&mut r.only_in_b, q.pfn);
                xb.next();
            }
            (Some(p), Some(q)) => {
                a.read_page(p.pfn, &mut pa).context("reading A")?;
                b.read_page(q.pfn, &mut pb).context("reading B")?;
                if !same_size || pa != pb {
                    push(&mut r.differ, p.pfn);
                } else if p.page_type != q.page_type {
                    push(&mut r.type_differs, p.pfn);
                }
                xa.next();
                xb.next();
            }
        }
    }
    let total = |runs: &Runs| runs.iter().map(|[_, n]| n).sum::<u64>();
    r.counts = DiffCounts {
        differ: total(&r.differ),
        only_in_a: total(&r.only_in_a),
        only_in_b: total(&r.only_in_b),
        type_differs: total(&r.type_differs),
    };
    r.identical = r.counts == DiffCounts::default() && r.state.is_empty();
    r.exit_code = u8::from(!r.identical);
    Ok(r)
}

/// Opens and compares two files.
pub fn diff(a: &Path, b: &Path) -> Result<DiffReport> {
    let ia = crate::input::open_image(a)?;
    let ib = crate::input::open_image(b)?;
    compare(&ia, &ib)
}

fn print_runs(out: &mut dyn Write, what: &str, runs: &Runs) -> std::io::Result<()> {
    for [first, count] in runs {
        if *count == 1 {
            writeln!(out, "{what} pfn {first:#x}")?;
        } else {
            writeln!(out, "{what} pfns {first:#x}-{:#x} ({count} pages)", first + count - 1)?;
        }
    }
    Ok(())
}

/// Prints the report as text: one line per run of pages and per state record, then a summary.
pub fn print_text(r: &DiffReport, out: &mut dyn Write) -> std::io::Result<()> {
    print_runs(out, "differ:", &r.differ)?;
    print_runs(out, "only in A:", &r.only_in_a)?;
    print_runs(out, "only in B:", &r.only_in_b)?;
    print_runs(out, "type differs:", &r.type_differs)?;
    for s in &r.state {
        let vcpu = s.vcpu.map(|v| format!(" vcpu {v}")).unwrap_or_default();
        writeln!(out, "state: {}{vcpu} {}", s.record, s.change)?;
    }
    let c = r.counts;
    if r.identical {
        writeln!(out, "identical: {}, same state records", crate::text::count(r.pages[0], "page"))
    } else {
        use crate::text::{count, count_usize};
        writeln!(
            out,
            "differ: {} {}, {} only in A, {} only in B, {} with another type; {} {}",
            count(c.differ, "page"),
            if c.differ == 1 { "differs" } else { "differ" },
            c.only_in_a,
            c.only_in_b,
            c.type_differs,
            count_usize(r.state.len(), "state record"),
            if r.state.len() == 1 { "differs" } else { "differ" }
        )
    }
}
