//! Honest outcomes a newcomer checked: bytes after a stream's END are reported (not part of
//! the stream, as Xen reads it), every JSON report or error that ends in a non-zero exit has
//! one shape (`error`, `error_offset`, `exit_code`), a usage error names its argument, and a
//! size is echoed as it was given.

mod common;

use std::io::Write;

use common::{Fixture, fixture, real_hvm_file, real_pvh_file, stderr, stdout, xsr, xsr_stdin};
use serde_json::Value;

/// The real PV file: libxc's stream runs from 0x393 (after the xl header, the libxl header and
/// LIBXC_CONTEXT) to 0x2013003 (after libxc's END); libxl's END ends the file at 0x201300b.
const LIBXC_START: usize = 0x393;
const LIBXC_END: usize = 0x2013003;

fn json(o: &std::process::Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {} {}", stdout(o), stderr(o)))
}

fn with_tail(f: &Fixture, name: &str, tail: &[u8]) -> String {
    let mut bytes = f.stream.clone();
    bytes.extend_from_slice(tail);
    f.write(name, &bytes)
}

#[test]
fn xens_own_files_end_at_their_end_record() {
    let f = fixture();
    let hvm = f.write("hvm.save", &real_hvm_file());
    let pvh = f.write("pvh.save", &real_pvh_file());
    for file in [f.arg("real.save"), hvm, pvh] {
        let o = xsr(&["verify", "--strict", "--json", &file]);
        assert_eq!(o.status.code(), Some(0), "{file}: {}", stdout(&o));
        let v = json(&o);
        assert_eq!(v["trailing_bytes"], Value::Null, "{file}");
        assert_eq!(v["exit_code"], 0);
        assert_eq!(v["bytes"].as_u64(), Some(std::fs::metadata(&file).unwrap().len()), "{file}");
    }
}

#[test]
fn verify_reports_bytes_after_end_and_strict_rejects_them() {
    let f = fixture();
    let end = f.stream.len() as u64;
    let file = with_tail(&f, "tail.save", &[0xa5; 100]);

    let o = xsr(&["verify", &file]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let warning = format!("warning: 100 bytes after the stream's END at byte {end}: not part of the stream");
    assert!(stdout(&o).starts_with("valid: ") && stdout(&o).contains(&warning), "{}", stdout(&o));

    let v = json(&xsr(&["verify", "--json", &file]));
    assert_eq!(v["valid"], true);
    assert_eq!(v["exit_code"], 0);
    assert_eq!(v["bytes"], end);
    assert_eq!(v["trailing_bytes"], serde_json::json!({ "offset": end, "count": 100 }));
    assert!(v["warnings"].as_array().unwrap().iter().any(|w| w.as_str().unwrap().contains("100 bytes after")), "{v}");

    let o = xsr(&["verify", "--strict", &file]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).starts_with(&format!("invalid: 100 bytes after the stream's END at byte {end}")),
        "{}",
        stdout(&o)
    );
    let o = xsr(&["verify", "--strict", "--json", &file]);
    assert_eq!(o.status.code(), Some(1));
    let v = json(&o);
    assert_eq!(
        (v["valid"].clone(), v["exit_code"].clone(), v["error_offset"].clone()),
        (false.into(), 1.into(), end.into())
    );
    assert_eq!(v["trailing_bytes"]["count"], 100);

    // From a pipe the same: the rest is read to its end.
    let mut bytes = f.stream.clone();
    bytes.extend_from_slice(&[0; 7]);
    let o = xsr_stdin(&["verify", "--strict", "-"], &bytes);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains(&format!("7 bytes after the stream's END at byte {end}")), "{}", stdout(&o));
}

#[test]
fn after_libxc_end_a_bare_libxc_stream_has_ended() {
    // libxc's stream alone, followed by libxl's END record (8 bytes): libxc's reader stops at
    // its END, so for a bare libxc stream the libxl record is trailing bytes.
    let f = fixture();
    let file = f.write("libxc.save", &f.stream[LIBXC_START..LIBXC_END + 8]);
    let end = (LIBXC_END - LIBXC_START) as u64;
    let v = json(&xsr(&["verify", "--json", &file]));
    assert_eq!((v["valid"].clone(), v["layer"].clone()), (true.into(), "libxc".into()), "{v}");
    assert_eq!(v["trailing_bytes"], serde_json::json!({ "offset": end, "count": 8 }));
    assert_eq!(xsr(&["verify", "--strict", &file]).status.code(), Some(1));
    let exact = f.write("exact.save", &f.stream[LIBXC_START..LIBXC_END]);
    assert_eq!(xsr(&["verify", "--strict", &exact]).status.code(), Some(0));
}

#[test]
fn inspect_lists_bytes_after_end_without_failing() {
    let f = fixture();
    let end = f.stream.len() as u64;
    let file = with_tail(&f, "tail.save", b"trailing");
    let o = xsr(&["inspect", &file]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).contains(&format!("warning: 8 bytes after the stream's END at byte {end}")), "{}", stdout(&o));
    let v = json(&xsr(&["inspect", "--json", &file]));
    assert_eq!(v["trailing_bytes"], serde_json::json!({ "offset": end, "count": 8 }));
    assert_eq!(v["exit_code"], 0);
    let v = json(&xsr(&["inspect", "--json", &f.arg("real.save")]));
    assert_eq!(v["trailing_bytes"], Value::Null);
}

#[test]
fn a_compressed_file_is_read_to_the_end_of_its_container() {
    // Reading on after END reaches the container's own trailer: an `.xz` cut inside its index
    // is an I/O error (exit 2) for verify and inspect, not a valid stream.
    let f = fixture();
    let mut xz = xz2::write::XzEncoder::new(Vec::new(), 0);
    xz.write_all(&f.stream).unwrap();
    let whole = xz.finish().unwrap();
    let good = f.write("g.save.xz", &whole);
    assert_eq!(xsr(&["verify", "--strict", &good]).status.code(), Some(0));
    let cut = f.write("cut.save.xz", &whole[..whole.len() - 4]);
    for command in ["verify", "inspect"] {
        let o = xsr(&[command, &cut]);
        assert_eq!(o.status.code(), Some(2), "{command}: {}", stdout(&o));
        assert!(stderr(&o).contains("xz decompression"), "{command}: {}", stderr(&o));
    }
}

#[test]
fn every_json_report_that_exits_non_zero_carries_exit_code_and_the_offset() {
    let f = fixture();
    let cut = f.write("cut.save", &f.stream[..20_000_000]);
    let mut changed = f.stream.clone();
    changed[0x763 + 16 + 1024 * 8] ^= 1;
    let changed = f.write("changed.save", &changed);

    // verify and inspect: their report, exit 1, with the stream byte.
    let v = json(&xsr(&["verify", "--json", &cut]));
    assert_eq!((v["valid"].clone(), v["exit_code"].clone()), (false.into(), 1.into()), "{v}");
    let offset = v["error_offset"].as_u64().unwrap();
    let o = xsr(&["inspect", "--json", &cut]);
    assert_eq!(o.status.code(), Some(1));
    let v = json(&o);
    assert_eq!((v["exit_code"].clone(), v["error_offset"].clone()), (1.into(), offset.into()), "{v}");

    // read, grep, diff: the error object, exit 2, with the same byte under the same name.
    let real = f.arg("real.save");
    for args in [
        vec!["read", &cut, "--phys", "0", "--len", "16", "--json"],
        vec!["grep", &cut, "x", "--json"],
        vec!["diff", &real, &cut, "--json"],
        vec!["restore", &cut, "--out", &f.arg("r"), "--json"],
    ] {
        let o = xsr(&args);
        let v = json(&o);
        assert_eq!(v["exit_code"], o.status.code().unwrap(), "{args:?}: {v}");
        assert_eq!(v["error_offset"], offset, "{args:?}: {v}");
        assert!(v["error"].as_str().unwrap().contains(&format!("at byte {offset}")), "{v}");
    }

    // diff's report of guests that differ.
    let o = xsr(&["diff", &real, &changed, "--json"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(json(&o)["exit_code"], 1);
    assert_eq!(json(&xsr(&["diff", &real, &real, "--json"]))["exit_code"], 0);
}

#[test]
fn a_usage_error_names_the_argument() {
    let o = xsr(&["inspect", "--json"]);
    assert_eq!(o.status.code(), Some(2));
    let v = json(&o);
    assert_eq!(v["exit_code"], 2);
    assert_eq!(v["error"], "the following required arguments were not provided: <FILE>");
    assert_eq!(v["arguments"], serde_json::json!(["<FILE>"]));
    let v = json(&xsr(&["read", "x.save", "--phys", "0", "--json"]));
    assert!(v["error"].as_str().unwrap().ends_with("not provided: --len <LEN>"), "{v}");
    let v = json(&xsr(&["verify", "--bogus", "--json"]));
    assert_eq!(v["arguments"], serde_json::json!(["--bogus"]));
}

#[test]
fn sizes_are_echoed_as_given() {
    let o = xsr(&["demo", "--memory", "100K"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--memory 100K: the demo guest needs at least 256K"), "{}", stderr(&o));
    let f = fixture();
    let o = xsr(&["read", &f.arg("real.save"), "--phys", "0", "--len", "17M", "--json"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(json(&o)["error"].as_str().unwrap().contains("at most 16M as hex (--len 17M asked)"), "{}", stdout(&o));
    for o in [&o, &xsr(&["demo", "--memory", "0x19000"])] {
        assert!(!stdout(o).contains("102400") && !stderr(o).contains("102400") && !stderr(o).contains("17825792"));
    }
}

/// The real PVH file with its first PAGE_DATA record's type turned into an unknown mandatory
/// record (0x41): a stream Xen refuses. `read`, `grep` and `diff` must say so (exit 2, the
/// record's offset), not answer from an image with that record's 1024 pages missing.
#[test]
fn read_grep_and_diff_refuse_a_stream_a_restore_refuses() {
    let f = fixture();
    let good = real_pvh_file();
    // The first PAGE_DATA record of the PVH file starts at byte 4004269 (0x3d19ad).
    const REC: usize = 0x3d19ad;
    assert_eq!(&good[REC..REC + 4], &1u32.to_le_bytes(), "PAGE_DATA's type where the test expects it");
    let mut bad = good.clone();
    bad[REC] = 0x41;
    let good = f.write("pvh.save", &good);
    let bad = f.write("flip.save", &bad);
    let v = json(&xsr(&["verify", "--json", &bad]));
    assert_eq!((v["exit_code"].as_u64(), v["error_offset"].as_u64()), (Some(1), Some(REC as u64)));
    for args in [
        vec!["read", bad.as_str(), "--phys", "0x400000", "--len", "16", "--json"],
        vec!["grep", bad.as_str(), "REALXEN-PAGE-", "--json"],
        vec!["diff", good.as_str(), bad.as_str(), "--json"],
    ] {
        let o = xsr(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stdout(&o));
        let v = json(&o);
        assert_eq!(v["error_offset"].as_u64(), Some(REC as u64), "{args:?}");
        assert!(v["error"].as_str().unwrap().contains("mandatory record 0x00000041"), "{args:?}: {v}");
    }
    // The good file reads, and the page the bad record held is there.
    let o = xsr(&["read", &good, "--phys", "0x400000", "--len", "16"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

/// `inspect` stops at a record Xen cannot take and exits 1 there: an unknown mandatory record,
/// and a PAGE_DATA record whose length disagrees with its count (after which every later
/// "record" would be read out of the wrong bytes, and a made-up END found).
#[test]
fn inspect_stops_at_a_record_xen_cannot_take() {
    let f = fixture();
    const REC: usize = 0x3d19ad;
    let good = real_pvh_file();
    let mut unknown = good.clone();
    unknown[REC] = 0x41;
    let mut bad_length = good.clone();
    bad_length[REC + 5] ^= 0x01;
    for (name, bytes, why) in
        [("unknown.save", unknown, "unknown mandatory record type"), ("length.save", bad_length, "body length")]
    {
        let file = f.write(name, &bytes);
        let o = xsr(&["inspect", "--json", &file]);
        assert_eq!(o.status.code(), Some(1), "{name}: {}", stderr(&o));
        let v = json(&o);
        assert_eq!(v["exit_code"], 1, "{name}");
        assert_eq!(v["error_offset"].as_u64(), Some(REC as u64), "{name}");
        assert!(v["error"].as_str().unwrap().contains(why), "{name}: {v}");
        assert_eq!(v["trailing_bytes"], Value::Null, "{name}: no bytes 'after END' when END was never read");
        let items = v["items"].as_array().unwrap();
        assert_eq!(
            items.last().unwrap()["offset"].as_u64(),
            Some(REC as u64),
            "{name}: the listing ends at the record"
        );
    }
}
