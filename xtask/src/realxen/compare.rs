//! `cargo xtask realxen compare` and the save jobs' host-side checks: an xsr save file
//! against `xl save`'s of the same guest.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;
use std::process::Command;

use super::{compare_pattern, le_u64, pattern_pages};
use crate::util::{Ctx, Error, err, io_err, run};

/// The save files each job brings back, as (file, reference) pairs: the first is compared with
/// the second, an `xl save -c` of the same guest in the same boot. `save`'s first pair is the
/// control: two `xl save -c` files, showing what two saves of one guest share.
const SAVE_PAIRS: &[(&str, &[(&str, &str)])] = &[
    ("save", &[("xl2.save", "xl.save"), ("xsr-keep.save", "xl.save"), ("xsr.save", "xl.save")]),
    ("save-live", &[("xsr-plain.save", "xl.save"), ("xsr-live1.save", "xl.save"), ("xsr-live2.save", "xl.save")]),
    ("save-2vcpu", &[("xsr.save", "xl.save")]),
    ("migrate", &[("recv.save", "xl.save")]),
];

/// Page-table pages (types L1TAB..L4TAB, pinned or not) present in both files whose contents must
/// be identical, at least: saves seconds apart of one idle-ish guest share most page tables, and
/// they compare equal only when both savers normalised every entry from mfn to pfn. Two `xl save
/// -c` of the standard guest, seconds apart, share 91-96% (the realxen samples: 32:1, 32:2 and
/// 32:1:256); tables left with mfns (or pfns of another guest) share next to none. Saves of two
/// guests booted alike still share 88-90%, so this check is about normalisation, not identity.
const MIN_SAME_PAGE_TABLES: f64 = 0.75;

/// A 64-bit PV `vcpu_guest_context` (Xen's `public/arch-x86/xen.h`, x86_64): its size and the
/// offset of `ctrlreg[0]` (after fpu_ctxt 512, flags 8, user_regs 200, trap_ctxt 4096, ldt
/// base and entries 16, gdt_frames 128, gdt_ents, kernel_ss and kernel_sp 24).
const PV64_VCPU_CONTEXT: usize = 5168;
const PV64_CTRLREG: usize = 4984;

/// How far the count of one page type may differ between two saves of one running guest: the
/// guest's page tables come and go a little between them.
fn type_count_tolerance(a: usize, b: usize) -> usize {
    4.max(a.max(b) / 10)
}

/// One item of `xsr inspect --json` (its "items" array): a header or a record.
#[derive(Debug, Clone, PartialEq, Eq)]
struct InspectItem {
    layer: String,
    kind: String,
    offset: usize,
    length: usize,
    detail: String,
}

/// The items of `xsr inspect --json` output. xtask has no JSON library (std only), so this reads
/// the shape serde_json's pretty printer gives that output: one `"key": value` per line, each
/// item's fields from "offset" to "detail", and the array ends where "totals" begins.
fn inspect_items(json: &str) -> Result<Vec<InspectItem>, Error> {
    let mut items = Vec::new();
    let mut cur: Option<InspectItem> = None;
    for line in json.lines() {
        let line = line.trim().trim_end_matches(',');
        let Some((key, value)) = line.split_once("\": ") else { continue };
        let key = key.trim_start_matches('"');
        let text = || value.trim_matches('"').replace("\\\"", "\"");
        let num = || value.parse::<usize>().map_err(|_| err(format!("inspect --json: bad {key}: {value}")));
        match key {
            "totals" => break,
            "offset" => {
                cur = Some(InspectItem {
                    layer: String::new(),
                    kind: String::new(),
                    offset: num()?,
                    length: 0,
                    detail: String::new(),
                })
            }
            _ => {
                let Some(item) = cur.as_mut() else { continue };
                match key {
                    "layer" => item.layer = text(),
                    "kind" => item.kind = text(),
                    "length" => item.length = num()?,
                    "detail" => {
                        item.detail = text();
                        items.extend(cur.take());
                    }
                    _ => {}
                }
            }
        }
    }
    if items.is_empty() {
        return Err(err("inspect --json listed no items"));
    }
    Ok(items)
}

/// What the comparison needs of one save file.
#[derive(Debug, Default)]
struct SaveFacts {
    /// `layer:KIND` of every libxl and libxc item after the xl header, a run of PAGE_DATA as one.
    sequence: Vec<String>,
    /// The xl header's flags (inspect's detail up to ", config").
    xl_flags: String,
    /// The domain's config in the xl header.
    config: Vec<u8>,
    /// libxc records other than PAGE_DATA: (kind, vcpu for per-vcpu records, body).
    records: Vec<(String, Option<u32>, Vec<u8>)>,
    /// Every pfn's type nibble and page body, as the last PAGE_DATA naming it left them.
    pages: BTreeMap<u64, (u8, Option<Vec<u8>>)>,
}

/// Names of the PAGE_DATA type nibbles (Xen's `XEN_DOMCTL_PFINFO_*` >> 28).
fn page_type_name(t: u8) -> String {
    let level = match t & 7 {
        0 => return if t == 0 { "NOTAB".into() } else { format!("type {t:#x}") },
        l @ 1..=4 => format!("L{l}TAB"),
        _ => {
            return match t {
                0xd => "BROKEN".into(),
                0xe => "XALLOC".into(),
                0xf => "XTAB".into(),
                _ => format!("type {t:#x}"),
            };
        }
    };
    if t & 8 != 0 { format!("{level}|PINNED") } else { level }
}

/// `file`'s facts from its bytes and `xsr inspect --json` of it. Record bodies are read at the
/// offsets inspect gives (body = 8 bytes after the record header); PAGE_DATA bodies as Xen's
/// `xg_sr_save.c` writes them: u32 count, u32 reserved, count u64 pfn words (pfn in bits 0-51,
/// type in 60-63), then 4096 bytes per data-bearing entry (type & 7 in 0..=4).
fn save_facts(bytes: &[u8], items: &[InspectItem]) -> Result<SaveFacts, Error> {
    let mut f = SaveFacts::default();
    let body = |it: &InspectItem| {
        bytes
            .get(it.offset + 8..it.offset + 8 + it.length)
            .ok_or_else(|| err(format!("{} at byte {} beyond the file", it.kind, it.offset)))
    };
    for it in items {
        match (it.layer.as_str(), it.kind.as_str()) {
            ("xl", "XL_HEADER") => {
                let (flags, config) = it.detail.split_once(", config ").unwrap_or((&it.detail, "0 bytes"));
                f.xl_flags = flags.to_string();
                let n: usize = config
                    .trim_end_matches(" bytes")
                    .parse()
                    .map_err(|_| err(format!("XL_HEADER detail: {}", it.detail)))?;
                let end = it.offset + it.length;
                f.config =
                    bytes.get(end.saturating_sub(n)..end).ok_or_else(|| err("xl config beyond the file"))?.to_vec();
                continue;
            }
            ("xz", _) | ("xl", _) => continue,
            _ => {}
        }
        let step = format!("{}:{}", it.layer, it.kind);
        if f.sequence.last() != Some(&step) || it.kind != "PAGE_DATA" {
            f.sequence.push(step);
        }
        if it.layer != "libxc" || matches!(it.kind.as_str(), "IMAGE_HEADER" | "DOMAIN_HEADER") {
            continue;
        }
        let b = body(it)?;
        if it.kind != "PAGE_DATA" {
            let vcpu = it
                .kind
                .contains("_VCPU_")
                .then(|| b.get(..4).map(|v| u32::from_le_bytes([v[0], v[1], v[2], v[3]])))
                .flatten();
            f.records.push((it.kind.clone(), vcpu, b.to_vec()));
            continue;
        }
        let count = b
            .get(..4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as usize)
            .ok_or_else(|| err("PAGE_DATA shorter than its header"))?;
        let mut data = 8 + 8 * count;
        for i in 0..count {
            let word = le_u64(b, 8 + 8 * i)?;
            let (pfn, t) = (word & 0x000F_FFFF_FFFF_FFFF, (word >> 60) as u8);
            let page = if t & 7 <= 4 {
                let p = b.get(data..data + 4096).ok_or_else(|| {
                    err(format!("PAGE_DATA at byte {}: page of pfn {pfn:#x} beyond the record", it.offset))
                })?;
                data += 4096;
                Some(p.to_vec())
            } else {
                None
            };
            f.pages.insert(pfn, (t, page));
        }
    }
    Ok(f)
}

/// Reads a save file (xz-compressed ones through `xz -dc`) and `xsr inspect --json` of it.
fn load_save(xsr: &Path, path: &Path) -> Result<SaveFacts, Error> {
    let mut bytes = fs::read(path).map_err(|e| io_err("cannot read", path, e))?;
    if bytes.starts_with(b"\xfd7zXZ\0") {
        let o = Command::new("xz").arg("-dc").arg(path).output().map_err(|e| err(format!("cannot run xz: {e}")))?;
        if !o.status.success() {
            return Err(err(format!("xz -dc {} failed", path.display())));
        }
        bytes = o.stdout;
    }
    let o = Command::new(xsr)
        .args(["inspect", "--json"])
        .arg(path)
        .output()
        .map_err(|e| err(format!("cannot run {}: {e}", xsr.display())))?;
    if !o.status.success() {
        return Err(err(format!(
            "xsr inspect --json {} failed: {}",
            path.display(),
            String::from_utf8_lossy(&o.stderr).trim()
        )));
    }
    save_facts(&bytes, &inspect_items(&String::from_utf8_lossy(&o.stdout))?)
}

/// JSON text without the whitespace outside strings.
fn json_squeezed(json: &[u8]) -> Vec<u8> {
    let (mut out, mut in_string, mut escaped) = (Vec::with_capacity(json.len()), false, false);
    for &c in json {
        if in_string {
            in_string = escaped || c != b'"';
            escaped = !escaped && c == b'\\';
        } else if c == b'"' {
            in_string = true;
        } else if c.is_ascii_whitespace() {
            continue;
        }
        out.push(c);
    }
    out
}

/// One row of the comparison table: what, A's value, B's value, and the failure if any.
type Row = (String, String, String, Option<String>);

/// Compares save file A with the reference B of the same guest: equal where two saves of one
/// guest are equal, close where the running guest legitimately moved on. Rows in table order.
fn compare_saves(a: &SaveFacts, b: &SaveFacts) -> Vec<Row> {
    let mut rows: Vec<Row> = Vec::new();
    let mut row = |what: &str, va: String, vb: String, fail: Option<String>| rows.push((what.into(), va, vb, fail));
    // 1. The record sequence.
    let first_diff = a
        .sequence
        .iter()
        .zip(&b.sequence)
        .position(|(x, y)| x != y)
        .or((a.sequence.len() != b.sequence.len()).then(|| a.sequence.len().min(b.sequence.len())));
    row(
        "record sequence",
        format!("{} steps", a.sequence.len()),
        format!("{} steps", b.sequence.len()),
        first_diff.map(|i| {
            format!(
                "step {i}: {} against {}",
                a.sequence.get(i).map_or("(end)", String::as_str),
                b.sequence.get(i).map_or("(end)", String::as_str)
            )
        }),
    );
    // 2. The xl header: flags and the domain's config.
    row("xl header flags", a.xl_flags.clone(), b.xl_flags.clone(), (a.xl_flags != b.xl_flags).then(|| "differ".into()));
    // Byte for byte, else without the whitespace between JSON tokens (libxl's generator and
    // another one may indent differently); keys and values must match either way.
    let (ca, cb) = (json_squeezed(&a.config), json_squeezed(&b.config));
    let at = ca.iter().zip(&cb).position(|(x, y)| x != y).or((ca.len() != cb.len()).then(|| ca.len().min(cb.len())));
    let context = |c: &[u8], i: usize| {
        String::from_utf8_lossy(&c[i.saturating_sub(30).min(c.len())..(i + 30).min(c.len())]).into_owned()
    };
    let how = if a.config == b.config {
        "same bytes"
    } else if at.is_none() {
        "same JSON tokens"
    } else {
        "differs"
    };
    row(
        "xl config (JSON)",
        format!("{} bytes", a.config.len()),
        format!("{} bytes ({how})", b.config.len()),
        at.map(|i| format!("first difference at token byte {i}: A `{}` B `{}`", context(&ca, i), context(&cb, i))),
    );
    // 3. State records: static ones byte for byte, the others by length.
    let kinds: BTreeSet<(&str, Option<u32>)> =
        a.records.iter().chain(&b.records).map(|(k, v, _)| (k.as_str(), *v)).collect();
    let find = |f: &SaveFacts, k: &str, v: Option<u32>| {
        f.records.iter().rev().find(|(rk, rv, _)| rk == k && *rv == v).map(|(_, _, body)| body.clone())
    };
    for (kind, vcpu) in kinds {
        let (ra, rb) = (find(a, kind, vcpu), find(b, kind, vcpu));
        let what = match vcpu {
            Some(v) => format!("{kind} vcpu {v}"),
            None => kind.to_string(),
        };
        let len = |r: &Option<Vec<u8>>| r.as_ref().map_or("absent".to_string(), |r| format!("{} bytes", r.len()));
        let same = ra == rb;
        let exact = matches!(kind, "X86_PV_INFO" | "X86_CPUID_POLICY" | "X86_MSR_POLICY" | "STATIC_DATA_END" | "END");
        let fail = match (&ra, &rb) {
            (Some(x), Some(y)) if exact && x != y => Some("contents differ".to_string()),
            (Some(x), Some(y)) if x.len() != y.len() => Some("lengths differ".to_string()),
            (Some(_), Some(_)) => None,
            _ => Some("in one file only".to_string()),
        };
        let note = match (&ra, &rb) {
            _ if same => " (same bytes)",
            (Some(x), Some(y)) if x.len() == y.len() => " (lengths equal, contents differ)",
            _ => "",
        };
        row(&what, len(&ra), format!("{}{note}", len(&rb)), fail);
    }
    // The page tables a 64-bit PV vcpu runs on: ctrlreg[3] (kernel) and ctrlreg[1] (user)
    // must name top-level tables in the file's own pages, and a vcpu on the same address space
    // (cr3) as in the reference must have its user table too (a vcpu restored without it dies
    // on its way to user mode: Xen's "Guest switching to user mode with no user page tables").
    // cr1 0 on another cr3 is legitimate: Linux's own init_mm has no user table.
    for (kind, vcpu, body) in &a.records {
        let Some(v) = vcpu.filter(|_| kind == "X86_PV_VCPU_BASIC" && body.len() == 8 + PV64_VCPU_CONTEXT) else {
            continue;
        };
        let reference = find(b, kind, Some(v));
        let cr = |body: &[u8], n: usize| le_u64(body, 8 + PV64_CTRLREG + 8 * n).unwrap_or(0);
        let l4 = |f: &SaveFacts, c: u64| f.pages.get(&(c >> 12)).is_some_and(|(t, _)| t & 7 == 4 && *t < 0xd);
        let (cr3, cr1) = (cr(body, 3), cr(body, 1));
        let (ref_cr3, ref_cr1) = reference.as_deref().map_or((0, 0), |r| (cr(r, 3), cr(r, 1)));
        let fail = if !l4(a, cr3) {
            Some(format!("cr3 {cr3:#x} names no L4 page table"))
        } else if cr1 == 0 && ref_cr1 != 0 && cr3 == ref_cr3 {
            Some("no user page table (cr1 0) on the address space where the reference has one".to_string())
        } else if cr1 != 0 && !l4(a, cr1) {
            Some(format!("cr1 {cr1:#x} names no L4 page table"))
        } else {
            None
        };
        row(
            &format!("vcpu {v} cr3 / cr1 (kernel / user tables)"),
            format!("{cr3:#x} / {cr1:#x}"),
            format!("{ref_cr3:#x} / {ref_cr1:#x}"),
            fail,
        );
    }
    // 4. Memory: the same pfns, page types close, page tables identical, the pattern in place.
    let (pa, pb): (BTreeSet<u64>, BTreeSet<u64>) =
        (a.pages.keys().copied().collect(), b.pages.keys().copied().collect());
    row(
        "pfns",
        format!("{}", pa.len()),
        format!("{}", pb.len()),
        (pa != pb)
            .then(|| format!("{} only in A, {} only in B", pa.difference(&pb).count(), pb.difference(&pa).count())),
    );
    let counts = |f: &SaveFacts| {
        let mut c: BTreeMap<String, usize> = BTreeMap::new();
        f.pages.values().for_each(|(t, _)| *c.entry(page_type_name(*t)).or_default() += 1);
        c
    };
    let (ca, cb) = (counts(a), counts(b));
    for t in ca.keys().chain(cb.keys()).collect::<BTreeSet<_>>() {
        let (x, y) = (ca.get(t).copied().unwrap_or(0), cb.get(t).copied().unwrap_or(0));
        let tol = type_count_tolerance(x, y);
        let fail = (t != "NOTAB" && x.abs_diff(y) > tol).then(|| format!("differ by more than {tol}"));
        row(&format!("pages {t}"), x.to_string(), y.to_string(), fail);
    }
    let is_table = |t: u8| (1..=4).contains(&(t & 7)) && t < 0xd;
    let (mut tables, mut same) = (0usize, 0usize);
    for (pfn, (ta, da)) in &a.pages {
        if let Some((tb, db)) = b.pages.get(pfn)
            && is_table(*ta)
            && is_table(*tb)
        {
            tables += 1;
            same += usize::from(da == db);
        }
    }
    let share = if tables == 0 { 0.0 } else { same as f64 / tables as f64 };
    row(
        "page tables with the same contents",
        format!("{same} of {tables} ({:.0}%)", share * 100.0),
        "-".into(),
        (share < MIN_SAME_PAGE_TABLES)
            .then(|| format!("below {:.0}%: entries not normalised as xl's are?", MIN_SAME_PAGE_TABLES * 100.0)),
    );
    let pattern =
        |f: &SaveFacts| pattern_pages(f.pages.iter().filter_map(|(pfn, (_, d))| d.as_deref().map(|d| (*pfn, d))));
    let (xa, xb) = (pattern(a), pattern(b));
    let count = |p: &[Vec<u64>]| p.iter().filter(|v| !v.is_empty()).count().to_string();
    let fail = if xb.iter().any(Vec::is_empty) {
        Some("the reference lacks pattern pages: not the standard guest".to_string())
    } else {
        compare_pattern("A", &xa, &xb).err().map(|e| e.0.replace("xl dump-core", "B").replace("dump-core", "B"))
    };
    row("pattern pages (at B's pfns)", count(&xa), count(&xb), fail);
    rows
}

/// Prints the table of `compare_saves(A, B)`; Ok with a summary when no row failed.
fn print_comparison(name_a: &str, name_b: &str, rows: &[Row]) -> Result<String, Error> {
    let short = |n: &str| Path::new(n).file_name().map_or(n.to_string(), |f| f.to_string_lossy().into_owned());
    let w = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    let wa = rows.iter().map(|r| r.1.len()).max().unwrap_or(0).max(short(name_a).len());
    println!("    {:<w$}  {:<wa$}  {}", "A against B", short(name_a), short(name_b));
    for (what, va, vb, fail) in rows {
        let verdict = fail.as_ref().map_or(String::new(), |f| format!("   <-- FAIL: {f}"));
        println!("    {what:<w$}  {va:<wa$}  {vb}{verdict}");
    }
    let failed: Vec<String> =
        rows.iter().filter_map(|(what, _, _, f)| f.as_ref().map(|f| format!("{what}: {f}"))).collect();
    if failed.is_empty() {
        Ok(format!("{name_a} matches {name_b} ({} rows: records, static state, memory, pattern pages)", rows.len()))
    } else {
        Err(err(format!("{name_a} against {name_b}: {}", failed.join("; "))))
    }
}

/// The save-file comparisons of a job's outputs (see [`SAVE_PAIRS`]), if it has any.
pub(super) fn save_checks(job: &str, out: &Path) -> Option<Result<Vec<String>, Error>> {
    let (_, pairs) = SAVE_PAIRS.iter().find(|(j, _)| *j == job)?;
    let xsr = Path::new("target/release/xsr");
    let run = || {
        let mut done = Vec::new();
        let mut failures = Vec::new();
        for (a, b) in *pairs {
            let compared = load_save(xsr, &out.join(a)).and_then(|fa| {
                let fb = load_save(xsr, &out.join(b))?;
                print_comparison(a, b, &compare_saves(&fa, &fb))
            });
            match compared {
                Ok(line) => done.push(line),
                Err(e) => failures.push(e.0),
            }
        }
        if failures.is_empty() { Ok(done) } else { Err(err(failures.join(" | "))) }
    };
    Some(run())
}

/// `cargo xtask realxen compare A B`: the host-side comparison of save file A with B.
pub(super) fn realxen_compare(ctx: &Ctx, files: &[String]) -> Result<(), Error> {
    let [a, b] = files else { return Err(err("usage: cargo xtask realxen compare A.save B.save")) };
    run(ctx.cargo(["build", "--release", "--features", "xen"]))?;
    let xsr = Path::new("target/release/xsr");
    let (fa, fb) = (load_save(xsr, Path::new(a))?, load_save(xsr, Path::new(b))?);
    let line = print_comparison(a, b, &compare_saves(&fa, &fb))?;
    println!("{line}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::realxen::PATTERN_PAGES;
    use crate::realxen::tests::pattern;

    /// `xsr inspect --json` as the release binary prints it (the real test file's first items).
    const INSPECT_JSON: &str = r#"{
  "layers": [
    "xl",
    "libxl",
    "libxc"
  ],
  "items": [
    {
      "offset": 0,
      "layer": "xl",
      "index": null,
      "kind": "XL_HEADER",
      "length": 891,
      "detail": "mandatory flags 0x3 JSON STREAMv2, config 839 bytes"
    },
    {
      "offset": 955,
      "layer": "libxc",
      "index": 0,
      "kind": "X86_PV_INFO",
      "length": 8,
      "detail": "guest width 8, 4 levels"
    }
  ],
  "totals": {
    "records": 19,
    "offset": 7
  }
}"#;

    #[test]
    fn inspect_items_read_the_pretty_json() {
        let items = inspect_items(INSPECT_JSON).unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!((items[0].layer.as_str(), items[0].kind.as_str(), items[0].length), ("xl", "XL_HEADER", 891));
        assert_eq!(items[1].offset, 955);
        assert_eq!(items[1].detail, "guest width 8, 4 levels");
        assert!(inspect_items("{}").is_err());
        assert!(inspect_items(&INSPECT_JSON.replace("955", "x")).is_err());
    }

    fn item(layer: &str, kind: &str, offset: usize, length: usize, detail: &str) -> InspectItem {
        InspectItem { layer: layer.into(), kind: kind.into(), offset, length, detail: detail.into() }
    }

    /// A record: u32 type, u32 length, the body padded to 8 bytes (the body's offset is 8 on).
    fn record(rtype: u32, body: &[u8]) -> Vec<u8> {
        let mut r = rtype.to_le_bytes().to_vec();
        r.extend((body.len() as u32).to_le_bytes());
        r.extend(body);
        r.resize(r.len().next_multiple_of(8), 0);
        r
    }

    /// A small save file: an xl header with a config, X86_PV_INFO, two PAGE_DATA (the second
    /// rewrites pfn 5 as a pinned L1 table and sends pfn 9 as XTAB), a vcpu record; and its items.
    fn small_save(config: &str, info: [u8; 8]) -> (Vec<u8>, Vec<InspectItem>) {
        let mut file = vec![0u8; 52];
        file.extend(config.bytes());
        let mut items = vec![item(
            "xl",
            "XL_HEADER",
            0,
            file.len(),
            &format!("mandatory flags 0x3 JSON, config {} bytes", config.len()),
        )];
        let mut push = |file: &mut Vec<u8>, kind: &str, rtype: u32, body: Vec<u8>| {
            items.push(item("libxc", kind, file.len(), body.len(), ""));
            file.extend(record(rtype, &body));
        };
        push(&mut file, "X86_PV_INFO", 0x3, info.to_vec());
        let page_data = |entries: &[(u64, u64)], pages: &[Vec<u8>]| {
            let mut b = (entries.len() as u32).to_le_bytes().to_vec();
            b.extend([0; 4]);
            entries.iter().for_each(|(pfn, t)| b.extend((pfn | t << 60).to_le_bytes()));
            pages.iter().for_each(|p| b.extend(p));
            b
        };
        push(&mut file, "PAGE_DATA", 0x1, page_data(&[(4, 0), (5, 0)], &[pattern(0), pattern(1)]));
        push(&mut file, "PAGE_DATA", 0x1, page_data(&[(5, 0x9), (9, 0xf)], &[vec![7; 4096]]));
        push(
            &mut file,
            "X86_PV_VCPU_BASIC",
            0x5,
            [1u32.to_le_bytes(), 0u32.to_le_bytes(), 3u32.to_le_bytes()].concat(),
        );
        push(&mut file, "END", 0x0, Vec::new());
        (file, items)
    }

    #[test]
    fn save_facts_take_the_last_write_of_each_pfn() {
        let (file, items) = small_save("{\"x\": 1}", [8, 0, 0, 0, 4, 0, 0, 0]);
        let f = save_facts(&file, &items).unwrap();
        assert_eq!(f.config, b"{\"x\": 1}");
        assert_eq!(f.xl_flags, "mandatory flags 0x3 JSON");
        assert_eq!(f.sequence, ["libxc:X86_PV_INFO", "libxc:PAGE_DATA", "libxc:X86_PV_VCPU_BASIC", "libxc:END"]);
        assert_eq!(f.pages.len(), 3);
        assert_eq!(f.pages[&4], (0, Some(pattern(0))));
        assert_eq!(f.pages[&5], (0x9, Some(vec![7; 4096])));
        assert_eq!(f.pages[&9], (0xf, None));
        let vcpu = f.records.iter().find(|r| r.0 == "X86_PV_VCPU_BASIC").unwrap();
        assert_eq!(vcpu.1, Some(1));
        // A record reaching beyond the file, and a PAGE_DATA whose pages are cut short, fail.
        assert!(save_facts(&file[..file.len() - 40], &items).is_err());
        let mut short = items.clone();
        short[2].length -= 4096;
        assert!(save_facts(&file, &short).is_err());
    }

    fn failures(rows: &[Row]) -> Vec<&str> {
        rows.iter().filter(|r| r.3.is_some()).map(|r| r.0.as_str()).collect()
    }

    #[test]
    fn comparison_wants_equal_static_state_and_memory_in_place() {
        let facts = |config: &str, info| {
            let (file, items) = small_save(config, info);
            save_facts(&file, &items).unwrap()
        };
        let a = facts("{\"x\": 1}", [8, 0, 0, 0, 4, 0, 0, 0]);
        // Same guest, another indentation of the config: nothing fails.
        let b = facts("{\n  \"x\":1}", [8, 0, 0, 0, 4, 0, 0, 0]);
        let rows = compare_saves(&a, &b);
        assert_eq!(failures(&rows), ["pattern pages (at B's pfns)"], "only the (tiny) pattern is incomplete");
        // Another guest width: X86_PV_INFO must be byte-identical.
        let c = facts("{\"x\": 1}", [4, 0, 0, 0, 3, 0, 0, 0]);
        assert!(failures(&compare_saves(&a, &c)).contains(&"X86_PV_INFO"));
        // Another config value, a missing vcpu record, a moved page, an unnormalised page table.
        let d = facts("{\"x\": 2}", [8, 0, 0, 0, 4, 0, 0, 0]);
        assert!(failures(&compare_saves(&a, &d)).contains(&"xl config (JSON)"));
        let mut e = facts("{\"x\": 1}", [8, 0, 0, 0, 4, 0, 0, 0]);
        e.records.retain(|r| r.0 != "X86_PV_VCPU_BASIC");
        e.sequence.retain(|s| !s.ends_with("VCPU_BASIC"));
        let rows = compare_saves(&a, &e);
        let failed = failures(&rows);
        assert!(failed.contains(&"record sequence") && failed.contains(&"X86_PV_VCPU_BASIC vcpu 1"), "{failed:?}");
        let mut g = facts("{\"x\": 1}", [8, 0, 0, 0, 4, 0, 0, 0]);
        g.pages.insert(5, (0x9, Some(vec![8; 4096])));
        assert!(failures(&compare_saves(&a, &g)).contains(&"page tables with the same contents"));
        g.pages.remove(&9);
        assert!(failures(&compare_saves(&a, &g)).contains(&"pfns"));
    }

    #[test]
    fn comparison_passes_the_full_pattern_and_tolerates_a_few_page_tables() {
        let mut a = SaveFacts::default();
        for n in 0..PATTERN_PAGES as u64 {
            a.pages.insert(0x100 + n, (0, Some(pattern(n as usize))));
        }
        for pfn in 0..20u64 {
            a.pages.insert(0x1000 + pfn, (0x1, Some(vec![pfn as u8; 4096])));
        }
        let mut b = SaveFacts { pages: a.pages.clone(), ..SaveFacts::default() };
        // Two page tables became ordinary pages (the guest freed them): within the tolerance.
        for pfn in [0x1000u64, 0x1001] {
            b.pages.insert(pfn, (0, Some(vec![0; 4096])));
        }
        assert_eq!(failures(&compare_saves(&a, &b)), Vec::<&str>::new());
        // A pattern page elsewhere fails.
        let p = a.pages.remove(&0x100).unwrap();
        a.pages.insert(0x100, (0, Some(vec![0; 4096])));
        a.pages.insert(0x2000, p);
        b.pages.insert(0x2000, (0, Some(vec![0; 4096])));
        assert_eq!(failures(&compare_saves(&a, &b)), ["pattern pages (at B's pfns)"]);
    }

    /// A 64-bit PV X86_PV_VCPU_BASIC body for vcpu `v` with the given cr3 and cr1.
    fn basic64(v: u32, cr3: u64, cr1: u64) -> Vec<u8> {
        let mut b = vec![0u8; 8 + PV64_VCPU_CONTEXT];
        b[..4].copy_from_slice(&v.to_le_bytes());
        b[8 + PV64_CTRLREG + 8..][..8].copy_from_slice(&cr1.to_le_bytes());
        b[8 + PV64_CTRLREG + 24..][..8].copy_from_slice(&cr3.to_le_bytes());
        b
    }

    #[test]
    fn comparison_wants_each_vcpus_kernel_and_user_tables() {
        let tables = |f: &mut SaveFacts| {
            f.pages.insert(0x40, (0xc, Some(vec![1; 4096]))); // L4TAB|PINNED
            f.pages.insert(0x41, (0x4, Some(vec![2; 4096]))); // L4TAB
            f.pages.insert(0x42, (0x1, Some(vec![3; 4096]))); // L1TAB
        };
        let facts = |cr3: u64, cr1: u64| {
            let mut f = SaveFacts::default();
            tables(&mut f);
            f.records.push(("X86_PV_VCPU_BASIC".into(), Some(1), basic64(1, cr3, cr1)));
            f
        };
        let rows_failing = |a: &SaveFacts, b: &SaveFacts| {
            compare_saves(a, b).into_iter().filter(|r| r.0.starts_with("vcpu 1 cr3") && r.3.is_some()).count()
        };
        let reference = facts(0x40000, 0x41001);
        assert_eq!(rows_failing(&facts(0x40000, 0x41001), &reference), 0);
        assert_eq!(rows_failing(&facts(0x40000, 0), &reference), 1, "user table dropped");
        assert_eq!(rows_failing(&facts(0x41000, 0), &reference), 0, "another address space, kernel-only");
        assert_eq!(rows_failing(&facts(0x42000, 0x41001), &reference), 1, "cr3 on an L1 table");
        assert_eq!(rows_failing(&facts(0x40000, 0x99001), &reference), 1, "cr1 on no page");
        assert_eq!(rows_failing(&facts(0x40000, 0), &facts(0x40000, 0)), 0, "neither has a user table");
    }

    #[test]
    fn json_squeezing_keeps_strings() {
        assert_eq!(json_squeezed(b"{ \"a b\" : [1, \"x\\\" y\"] }\n"), b"{\"a b\":[1,\"x\\\" y\"]}");
        assert_eq!(page_type_name(0), "NOTAB");
        assert_eq!(page_type_name(0x9), "L1TAB|PINNED");
        assert_eq!(page_type_name(0x4), "L4TAB");
        assert_eq!(page_type_name(0xf), "XTAB");
        assert_eq!(page_type_name(0x5), "type 0x5");
        assert_eq!(type_count_tolerance(3, 5), 4);
        assert_eq!(type_count_tolerance(8000, 8100), 810);
    }
}
