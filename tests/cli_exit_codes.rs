//! One exit-code table for every command (src/outcome.rs): 0 success; 1 the answer "invalid",
//! "different" or "no match" about an input read whole; 2 usage, I/O and resource errors
//! (a bound, a full disk, an existing output, Xen unavailable). Each command's row is tested
//! here, and the table is in `--help`.

mod common;

use std::fs;
use std::process::{Command, Output, Stdio};

use common::{Fixture, stderr, stdout, xsr, xsr_stdin};

fn fixture() -> Fixture {
    let f = common::fixture();
    let (dir, stream) = (&f.dir, &f.stream);
    fs::write(dir.path().join("cut.save"), &stream[..0xc06793 + 100]).unwrap();
    fs::write(dir.path().join("empty"), b"").unwrap();
    let mut changed = stream.clone();
    // One byte of a page body of the first PAGE_DATA record (at 0x763: 8 + 8 + 1024 * 8 bytes
    // of header and pfn words before the first page).
    changed[0x763 + 16 + 8192 + 100] ^= 0xff;
    fs::write(dir.path().join("changed.save"), &changed).unwrap();
    f
}

fn code(o: &Output) -> Option<i32> {
    o.status.code()
}

fn check(name: &str, o: &Output, want: i32) {
    assert_eq!(code(o), Some(want), "{name}: stdout {} stderr {}", stdout(o), stderr(o));
    if want == 2 {
        assert!(stderr(o).starts_with("xsr: ") || stderr(o).starts_with("error: "), "{name}: {}", stderr(o));
    }
}

#[test]
fn the_table_is_in_every_help() {
    let o = xsr(&["--help"]);
    let text = stdout(&o);
    assert!(text.contains("Exit status (every command):"), "{text}");
    for line in ["  0  success", "  1  the answer is no", "  2  anything else"] {
        assert!(text.contains(line), "{line}: {text}");
    }
    for cmd in
        ["inspect", "verify", "restore", "extract", "dump", "save", "demo", "send", "read", "grep", "diff", "receive"]
    {
        let o = xsr(&[cmd, "--help"]);
        assert_eq!(code(&o), Some(0), "{cmd}");
        assert!(stdout(&o).contains("Exit status: 0 "), "{cmd}: {}", stdout(&o));
    }
}

#[test]
fn inspect_and_verify() {
    let f = fixture();
    for cmd in ["inspect", "verify"] {
        check(cmd, &xsr(&[cmd, &f.arg("real.save")]), 0);
        check(cmd, &xsr(&[cmd, &f.arg("cut.save")]), 1);
        check(cmd, &xsr_stdin(&[cmd, "-"], &f.stream[..1000]), 1);
        // Nothing at all is an invalid stream, from a file or a device alike.
        check(cmd, &xsr(&[cmd, &f.arg("empty")]), 1);
        check(cmd, &xsr(&[cmd, "/dev/null"]), 1);
        let o = xsr(&[cmd, "/dev/null"]);
        assert!(stdout(&o).contains("truncated at byte 0"), "{cmd}: {}", stdout(&o));
        check(cmd, &xsr(&[cmd, &f.arg("missing")]), 2);
        // A directory cannot be read as a stream.
        check(cmd, &xsr(&[cmd, f.dir.path().to_str().unwrap()]), 2);
        check(cmd, &xsr(&[cmd]), 2);
    }
}

#[test]
fn restore_extract_and_receive() {
    let f = fixture();
    let real = f.arg("real.save");
    for (name, make) in [
        (
            "restore",
            (|i: &str, o: &str| vec!["restore".into(), i.into(), "--out".into(), o.into()])
                as fn(&str, &str) -> Vec<String>,
        ),
        ("extract", |i, o| vec!["extract".into(), i.into(), "--out".into(), o.into()]),
        ("extract elf", |i, o| {
            vec!["extract".into(), i.into(), "--format".into(), "elf".into(), "--out".into(), o.into()]
        }),
        ("receive", |i, o| vec!["receive".into(), "--from".into(), i.into(), "--out".into(), o.into()]),
        ("receive file", |i, o| vec!["receive".into(), "--from".into(), i.into(), "--out-file".into(), o.into()]),
    ] {
        let run = |input: &str, out: &str, extra: &[&str]| {
            let mut args = make(input, out);
            args.extend(extra.iter().map(|s| s.to_string()));
            xsr(&args.iter().map(String::as_str).collect::<Vec<_>>())
        };
        let out = f.out("out");
        check(name, &run(&real, &out, &[]), 0);
        // An existing output: 2.
        check(name, &run(&real, &out, &[]), 2);
        let out = f.out("out");
        check(name, &run(&f.arg("cut.save"), &out, &[]), 1);
        check(name, &run(&f.arg("empty"), &out, &[]), 1);
        check(name, &run("/dev/null", &out, &[]), 1);
        check(name, &run(&f.arg("missing"), &out, &[]), 2);
        // A bound: the stream may be valid, so 2. (--out-file keeps no memory: only the span
        // is bounded there.)
        if name != "receive file" {
            check(name, &run(&real, &out, &["--max-memory", "16M"]), 2);
        }
        check(name, &run(&real, &out, &["--max-span", "16M"]), 2);
    }
}

#[test]
fn save_and_send() {
    let f = fixture();
    let guest = f.guest();
    check("save", &xsr(&["save", &guest, "--out", &f.out("s.save")]), 0);
    check("save existing", &xsr(&["save", &guest, "--out", &f.arg("s.save")]), 2);
    check("save missing", &xsr(&["save", &f.arg("missing"), "--out", &f.out("s.save")]), 2);
    // A domain restore would reject (page types cleared by hand): 1, nothing written.
    let bad = f.dir.path().join("bad-guest");
    fs::create_dir(&bad).unwrap();
    for e in fs::read_dir(&guest).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), bad.join(e.file_name())).unwrap();
    }
    let mut m: serde_json::Value = serde_json::from_slice(&fs::read(bad.join("domain.json")).unwrap()).unwrap();
    m["page_types"] = serde_json::json!([]);
    fs::write(bad.join("domain.json"), serde_json::to_vec(&m).unwrap()).unwrap();
    let out = f.out("bad.save");
    let o = xsr(&["save", bad.to_str().unwrap(), "--out", &out]);
    check("save rejected", &o, 1);
    assert!(stderr(&o).contains("restore would reject this domain"), "{}", stderr(&o));
    assert!(!std::path::Path::new(&out).exists());

    let xsr_bin = env!("CARGO_BIN_EXE_xsr");
    let via = |out: &str, extra: &str| format!("'{xsr_bin}' receive --from - --out '{out}' {extra}");
    check("send", &xsr(&["send", &guest, "--via", &via(&f.out("copy"), "")]), 0);
    // The receiver's answers: its bound (2), an existing output (2).
    check("send bound", &xsr(&["send", &guest, "--via", &via(&f.out("c2"), "--max-memory 16K")]), 2);
    check("send existing", &xsr(&["send", &guest, "--via", &via(&f.arg("copy"), "")]), 2);
    // The receiver finds the stream invalid: 1. (The domain restore would reject is saved
    // by nobody: send refuses it first, with 1 too.)
    check("send rejected", &xsr(&["send", bad.to_str().unwrap(), "--via", &via(&f.out("c3"), "")]), 1);
    // Nobody to send to, and a receiver that never answers: 2.
    check("send refused", &xsr(&["send", &guest, "--to", "127.0.0.1:1", "--timeout", "2"]), 2);
    check("send silent", &xsr(&["send", &guest, "--via", "sleep 5", "--timeout", "0.5"]), 2);
}

#[test]
fn read_grep_and_diff_never_answer_about_an_invalid_input() {
    let f = fixture();
    let real = f.arg("real.save");
    let cut = f.arg("cut.save");
    check("read", &xsr(&["read", &real, "--phys", "0x1436000", "--len", "16"]), 0);
    check("read hole", &xsr(&["read", &real, "--phys", "0x2000000", "--len", "16"]), 2);
    check("read cut", &xsr(&["read", &cut, "--phys", "0", "--len", "16"]), 2);
    check("read empty", &xsr(&["read", &f.arg("empty"), "--phys", "0", "--len", "16"]), 2);
    check("read missing", &xsr(&["read", &f.arg("missing"), "--phys", "0", "--len", "16"]), 2);

    check("grep", &xsr(&["grep", &real, "REALXEN-PAGE-000042-"]), 0);
    check("grep none", &xsr(&["grep", &real, "no such text anywhere 0123"]), 1);
    // A truncated or unreadable stream is no "no match".
    check("grep cut", &xsr(&["grep", &cut, "REALXEN"]), 2);
    check("grep empty", &xsr(&["grep", &f.arg("empty"), "REALXEN"]), 2);
    check("grep devnull", &xsr(&["grep", "/dev/null", "REALXEN"]), 2);
    check("grep dir", &xsr(&["grep", f.dir.path().to_str().unwrap(), "REALXEN"]), 2);
    check("grep missing", &xsr(&["grep", &f.arg("missing"), "REALXEN"]), 2);

    check("diff", &xsr(&["diff", &real, &real]), 0);
    check("diff changed", &xsr(&["diff", &real, &f.arg("changed.save")]), 1);
    // ... nor "different".
    check("diff cut", &xsr(&["diff", &real, &cut]), 2);
    check("diff cut first", &xsr(&["diff", &cut, &real]), 2);
    check("diff empty", &xsr(&["diff", &real, &f.arg("empty")]), 2);
    check("diff dir", &xsr(&["diff", &real, f.dir.path().to_str().unwrap()]), 2);
    check("diff missing", &xsr(&["diff", &real, &f.arg("missing")]), 2);
}

#[test]
fn demo_and_dump() {
    check("demo", &xsr(&["demo", "--memory", "256K", "--type", "pv"]), 0);
    check("demo zero", &xsr(&["demo", "--memory", "0"]), 2);
    check("demo huge", &xsr(&["demo", "--memory", "1000T"]), 2);
    // Without Xen support, or outside dom0: 2, one line.
    let dir = tempfile::tempdir().unwrap();
    let o = xsr(&["dump", "--domain", "1", "--out", dir.path().join("d.elf").to_str().unwrap()]);
    check("dump", &o, 2);
    if !std::path::Path::new("/dev/xen/privcmd").exists() {
        assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
    }
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn a_full_standard_output_is_2_for_every_command_that_writes_its_product_there() {
    let f = fixture();
    let real = f.arg("real.save");
    let guest = f.guest();
    for args in [
        vec!["extract", real.as_str(), "--out", "-"],
        vec!["save", guest.as_str(), "--out", "-"],
        vec!["read", real.as_str(), "--phys", "0", "--len", "1M", "--out", "-"],
    ] {
        let o = Command::new(env!("CARGO_BIN_EXE_xsr"))
            .args(&args)
            .stdout(fs::OpenOptions::new().write(true).open("/dev/full").unwrap())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        check(&format!("{args:?}"), &o, 2);
    }
}
