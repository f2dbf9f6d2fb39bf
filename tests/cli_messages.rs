//! Smaller things a user meets (issue 17, item 9): one number syntax for every size and
//! duration, --paging none without a CR3, translation options refused with --phys, plurals,
//! the same `pages_by_type` shape in `verify --json` and `inspect --json`, hex bytes with 0x,
//! --json on `read`, and a JSON error object from every command given --json.

mod common;

use std::fs;
use std::path::Path;

use common::{real_save_file, stderr, stdout, xsr};
use serde_json::Value;
use sr_format::{DomainHeader, DomainType, ImageHeader, PageType, PfnEntry, RecordType, RecordWriter};

fn real(dir: &Path) -> String {
    let p = dir.join("real.save");
    if !p.exists() {
        fs::write(&p, real_save_file()).unwrap();
    }
    p.to_str().unwrap().to_string()
}

/// An HVM stream with two pages and no vcpu state at all (no HVM_CONTEXT): nothing says how
/// its vcpus page, and Xen refuses it (an HVM stream must carry HVM_CONTEXT).
fn stateless_hvm_stream() -> Vec<u8> {
    let mut pages = vec![vec![0u8; 4096]; 2];
    pages[1][..8].copy_from_slice(b"PAGE-ONE");
    let words: Vec<u8> =
        [0u64, 1].iter().flat_map(|&p| PfnEntry::new(p, PageType::NOTAB).encode().to_le_bytes()).collect();
    let mut w = RecordWriter::new(Vec::new());
    w.write_headers(&ImageHeader::new(3), &DomainHeader::new(DomainType::X86_HVM, 12, 4, 17)).unwrap();
    w.write_record(RecordType::STATIC_DATA_END, &[]).unwrap();
    let bodies: Vec<&[u8]> = pages.iter().map(|p| &p[..]).collect();
    w.write_page_data(2, 2, 4096, &words, &bodies).unwrap();
    w.write_record(RecordType::END, &[]).unwrap();
    w.into_inner()
}

#[test]
fn paging_none_needs_no_cr3_and_translation_options_are_refused_with_phys() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hvm.save");
    fs::write(&file, common::real_hvm_file()).unwrap();
    let file = file.to_str().unwrap();
    // --paging none: virtual addresses are physical ones, whatever the vcpu's CR3.
    let o = xsr(&["read", file, "--virt", "0x400000", "--len", "16", "--paging", "none"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let p = xsr(&["read", file, "--phys", "0x400000", "--len", "16"]);
    assert_eq!(stdout(&o), stdout(&p));
    for extra in [&["--cr3", "0x1000"][..], &["--paging", "4level"], &["--vcpu", "1"]] {
        let mut args = vec!["read", file, "--phys", "0x1000", "--len", "8"];
        args.extend_from_slice(extra);
        let o = xsr(&args);
        assert_eq!(o.status.code(), Some(2), "{extra:?}: {}", stdout(&o));
        assert!(
            stderr(&o).contains("cannot be used with") && stderr(&o).contains("--phys"),
            "{extra:?}: {}",
            stderr(&o)
        );
    }
    // A stream without vcpu state is one Xen refuses: read says so rather than guess.
    let bare = dir.path().join("bare.save");
    fs::write(&bare, stateless_hvm_stream()).unwrap();
    let o = xsr(&["read", bare.to_str().unwrap(), "--virt", "0x1000", "--len", "8", "--paging", "none"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no HVM_CONTEXT record"), "{}", stderr(&o));
}

#[test]
fn one_syntax_for_sizes_and_durations() {
    let dir = tempfile::tempdir().unwrap();
    let real = real(dir.path());
    let out = dir.path().join("out");
    let out = out.to_str().unwrap();
    // Hex is a size everywhere --len accepts it; below one page is no bound.
    let o = xsr(&["restore", &real, "--out", out, "--max-memory", "0x1000"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("(raise --max-memory: at least"), "a bound, not a parse error: {}", stderr(&o));
    for (flag, value) in [("--max-span", "1K"), ("--max-memory", "0"), ("--max-span", "4095")] {
        let o = xsr(&["restore", &real, "--out", out, flag, value]);
        assert_eq!(o.status.code(), Some(2));
        assert!(stderr(&o).contains("is less than one page (4K)"), "{flag} {value}: {}", stderr(&o));
    }
    let o = xsr(&["extract", &real, "--out", out, "--max-span", "0x2000000"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // Any positive duration, with or without a unit.
    let guest = dir.path().join("nowhere");
    for t in ["4294967296", "0.5", "500ms", "30s", "5m", "1h"] {
        let o = xsr(&["send", guest.to_str().unwrap(), "--to", "127.0.0.1:1", "--timeout", t]);
        assert_eq!(o.status.code(), Some(2));
        assert!(!stderr(&o).contains("--timeout"), "{t} was refused: {}", stderr(&o));
    }
    for (t, why) in [("0", "more than zero"), ("-3", "more than zero"), ("soon", "not a duration")] {
        let o = xsr(&["receive", "--out", out, &format!("--timeout={t}")]);
        assert_eq!(o.status.code(), Some(2));
        assert!(stderr(&o).contains(why), "{t}: {}", stderr(&o));
    }
}

#[test]
fn counts_read_as_words() {
    let dir = tempfile::tempdir().unwrap();
    let real = real(dir.path());
    let elf = dir.path().join("g.elf");
    let o = xsr(&["extract", &real, "--format", "elf", "--out", elf.to_str().unwrap()]);
    let text = stdout(&o);
    assert!(text.starts_with("extracted 8192 pages in 1 run to "), "{text}");
    assert!(text.contains("registers of 1 vcpu)"), "{text}");
    let text = stdout(&xsr(&["inspect", &real]));
    assert!(text.contains("\nvcpus: 1 (id 0)\n"), "{text}");
    let mut changed = real_save_file();
    changed[0x763 + 16 + 8192 + 100] ^= 0xff;
    let c = dir.path().join("changed.save");
    fs::write(&c, changed).unwrap();
    let text = stdout(&xsr(&["diff", &real, c.to_str().unwrap()]));
    assert!(text.contains("differ: 1 page differs, 0 only in A"), "{text}");
    assert!(text.contains("0 state records differ"), "{text}");
}

#[test]
fn verify_and_inspect_count_page_types_in_the_same_shape() {
    let dir = tempfile::tempdir().unwrap();
    let real = real(dir.path());
    let v: Value = serde_json::from_slice(&xsr(&["verify", "--json", &real]).stdout).unwrap();
    let i: Value = serde_json::from_slice(&xsr(&["inspect", "--json", &real]).stdout).unwrap();
    assert!(v["pages_by_type"].is_object(), "{}", v["pages_by_type"]);
    assert_eq!(v["pages_by_type"], i["totals"]["pages_by_type"]);
    assert_eq!(v["pages_by_type"]["NOTAB"], 8073);
}

#[test]
fn bytes_in_messages_are_hex_with_0x() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("notes.txt");
    fs::write(&f, b"hello, world\n").unwrap();
    let o = xsr(&["verify", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("not a Xen save image (starts with 0x68 0x65 0x6c 0x6c 0x6f 0x2c 0x20 0x77)"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn read_prints_json() {
    let dir = tempfile::tempdir().unwrap();
    let real = real(dir.path());
    let o = xsr(&["read", &real, "--phys", "0x1436000", "--len", "4", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["data"], "5245414c");
    assert_eq!(v["space"], "physical");
    assert_eq!(v["address"], 0x1436000);
    let o = xsr(&["read", &real, "--virt", "0xffffffff81000000", "--len", "2", "--json"]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (v["space"].as_str(), v["vcpu"].as_u64(), v["paging"].as_str()),
        (Some("virtual"), Some(0), Some("4-level"))
    );
    assert_eq!(v["data"], "488d");
    let out = dir.path().join("b.bin");
    let o = xsr(&["read", &real, "--phys", "0x1436000", "--len", "4", "--out", out.to_str().unwrap(), "--json"]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["out"], out.to_str().unwrap());
    assert!(v.get("data").is_none());
    // Raw bytes on standard output: the JSON goes to standard error.
    let o = xsr(&["read", &real, "--phys", "0x1436000", "--len", "4", "--out", "-", "--json"]);
    assert_eq!(o.stdout, b"REAL");
    let v: Value = serde_json::from_slice(&o.stderr).unwrap();
    assert_eq!(v["length"], 4);
    let o = xsr(&["read", &real, "--phys", "0", "--len", "17M", "--json"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn with_json_every_command_fails_with_a_json_error_object() {
    let dir = tempfile::tempdir().unwrap();
    let real = real(dir.path());
    let missing = dir.path().join("missing");
    let m = missing.to_str().unwrap();
    let existing = dir.path().join("exists");
    fs::create_dir(&existing).unwrap();
    let e = existing.to_str().unwrap();
    // (arguments, the JSON is on standard error because standard output carries the product)
    let cases: Vec<(Vec<&str>, bool)> = vec![
        (vec!["inspect", m], false),
        (vec!["verify", m], false),
        (vec!["restore", m, "--out", e], false),
        (vec!["extract", m, "--out", e], false),
        (vec!["extract", m, "--out", "-"], true),
        (vec!["dump", "--domain", "1", "--out", e], false),
        (vec!["save", m, "--out", e], false),
        (vec!["save", m, "--out", "-"], true),
        (vec!["demo", "--memory", "0"], false),
        (vec!["send", m, "--to", "127.0.0.1:1"], false),
        (vec!["send", m, "--to", "-", "--reply", m], true),
        (vec!["read", m, "--phys", "0", "--len", "1"], false),
        (vec!["read", m, "--phys", "0", "--len", "1", "--out", "-"], true),
        (vec!["grep", m, "x"], false),
        (vec!["diff", &real, m], false),
        (vec!["receive", "--listen", "127.0.0.1:0", "--out", e], false),
        (vec!["receive", "--from", &real, "--out", e], true),
        // A usage error, too.
        (vec!["inspect"], false),
    ];
    for (args, on_stderr) in cases {
        let mut all = args.clone();
        all.push("--json");
        let o = xsr(&all);
        let code = o.status.code().unwrap();
        assert_ne!(code, 0, "{args:?}");
        let json = if on_stderr { &o.stderr } else { &o.stdout };
        let v: Value = serde_json::from_slice(json)
            .unwrap_or_else(|err| panic!("{args:?}: {err}: stdout {} stderr {}", stdout(&o), stderr(&o)));
        assert_eq!(v["exit_code"], code, "{args:?}: {v}");
        assert!(v["error"].as_str().is_some_and(|s| !s.is_empty()), "{args:?}: {v}");
        // The human line is on standard error as well (unless that carries the JSON); clap's
        // own text of a usage error puts the argument it names on a line of its own.
        let words = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            on_stderr || words(&stderr(&o)).contains(&words(v["error"].as_str().unwrap())),
            "{args:?}: {}",
            stderr(&o)
        );
    }
    // A stream error names its byte offset.
    let cut = dir.path().join("cut.save");
    fs::write(&cut, &real_save_file()[..5000]).unwrap();
    let o = xsr(&["restore", cut.to_str().unwrap(), "--out", dir.path().join("r").to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["exit_code"], 1);
    assert!(v["error_offset"].is_u64(), "{v}");
}
