//! Exit codes and messages say what happened: closed outputs, truncated and broken
//! checkpointed streams, record lengths in `inspect`, the restore summary's counts.

mod common;

use std::fs;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{Fixture, fixture, stderr, stdout, xsr, xsr_stdin};

/// The checks of this file on [`Fixture`].
trait Leftovers {
    fn assert_nothing_left(&self, out: &Path);
}

impl Leftovers for Fixture {
    fn assert_nothing_left(&self, out: &Path) {
        assert!(!out.exists(), "{} exists", out.display());
        let names: Vec<_> = fs::read_dir(self.dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert!(names.iter().all(|n| !n.to_string_lossy().contains("partial")), "{names:?}");
    }
}

/// Runs xsr with standard output a pipe whose reader is already closed.
fn with_closed_stdout(args: &[&str], stdin: Option<&Path>) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut c = Command::new(env!("CARGO_BIN_EXE_xsr"));
    c.args(args).stdout(writer).stderr(Stdio::piped());
    if let Some(p) = stdin {
        c.stdin(fs::File::open(p).unwrap());
    }
    c.output().unwrap()
}

#[test]
fn a_closed_output_is_an_error_for_streams_and_images_and_quiet_for_reports() {
    let f = fixture();
    let guest = f.guest();
    let real = f.arg("real.save");
    // Products on standard output: exit 2 with a message.
    let products: &[(&[&str], Option<&Path>)] = &[
        (&["save", &guest, "--out", "-"], None),
        (&["save", &guest, "--out", "-", "--container", "xl", "--verify"], None),
        (&["extract", &real, "--out", "-"], None),
        (&["extract", &real, "--out", "-", "--format", "elf"], None),
        (&["receive", "--from", "-", "--out", "never"], Some(&f.path("real.save"))),
    ];
    for (args, stdin) in products {
        let o = with_closed_stdout(args, *stdin);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).starts_with("xsr: ") && stderr(&o).contains("Broken pipe"), "{args:?}: {}", stderr(&o));
    }
    assert!(!Path::new("never").exists());
    // send --to -: the receiver's READY is already in the reply pipe; the stream cannot be
    // written and no outcome comes.
    let fifo = f.path("reply");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let mut reply = fs::OpenOptions::new().read(true).write(true).open(&fifo).unwrap();
    std::io::Write::write_all(&mut reply, b"XSR-TRANSFER/1 READY\n").unwrap();
    let o =
        with_closed_stdout(&["send", &guest, "--to", "-", "--reply", fifo.to_str().unwrap(), "--timeout", "1"], None);
    drop(reply);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("Broken pipe") && stderr(&o).contains("no outcome"), "{}", stderr(&o));
    // Reports on standard output: a reader that stopped early is not an error.
    let reports: &[&[&str]] = &[&["inspect", &real], &["verify", &real], &["inspect", "--json", &real]];
    for args in reports {
        let o = with_closed_stdout(args, None);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
        assert_eq!(stderr(&o), "", "{args:?}");
    }
    // The restore's product is its directory; the summary is a report.
    let out = f.path("restored");
    let o = with_closed_stdout(&["restore", &real, "--out", out.to_str().unwrap()], None);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(out.join("domain.json").exists());
    let out = f.path("restored-json");
    let o = with_closed_stdout(&["restore", "--json", &real, "--out", out.to_str().unwrap()], None);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(out.join("domain.json").exists());
}

#[test]
fn save_to_a_reader_that_stops_early_fails() {
    // The example: xsr save DIR --out - | head -c 1000
    let f = fixture();
    let guest = f.guest();
    let mut child = Command::new(env!("CARGO_BIN_EXE_xsr"))
        .args(["save", &guest, "--out", "-"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut head = vec![0u8; 1000];
    child.stdout.take().unwrap().read_exact(&mut head).unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(&head[..], &f.stream[..1000]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("writing the stream to standard output failed"), "{}", stderr(&o));
    assert!(stderr(&o).contains("Broken pipe"), "{}", stderr(&o));
}

#[test]
fn a_truncated_stream_is_invalid_for_verify_restore_and_extract() {
    let f = fixture();
    // Cut inside the fourth PAGE_DATA record, and inside a record header.
    for cut in [0xc06793 + 100, 0x763 + 3] {
        let file = f.write("cut.save", &f.stream[..cut]);
        let bytes = &f.stream[..cut];
        let out = f.path("out");
        let outs = out.to_str().unwrap();
        let runs: Vec<(&str, Output)> = vec![
            ("verify", xsr(&["verify", &file])),
            ("verify -", xsr_stdin(&["verify", "-"], bytes)),
            ("restore", xsr(&["restore", &file, "--out", outs])),
            ("restore -", xsr_stdin(&["restore", "-", "--out", outs], bytes)),
            ("extract", xsr(&["extract", &file, "--out", outs])),
            ("extract -", xsr_stdin(&["extract", "-", "--out", outs], bytes)),
            ("extract elf", xsr(&["extract", &file, "--format", "elf", "--out", outs])),
        ];
        for (name, o) in runs {
            assert_eq!(o.status.code(), Some(1), "{name} cut {cut}: {}{}", stdout(&o), stderr(&o));
            let text = format!("{}{}", stdout(&o), stderr(&o));
            assert_eq!(text.matches("truncated at byte").count(), 1, "{name} cut {cut}: once: {text}");
            f.assert_nothing_left(&out);
        }
    }
}

/// A libxc stream of the real guest with `checkpoints` checkpoints, then END.
fn checkpointed_stream(guest: &str, checkpoints: u64) -> Vec<u8> {
    let guest = xsr::dir_guest::DirGuest::open(Path::new(guest)).unwrap();
    let options = sr_save::SaveOptions { container: sr_save::Container::Libxc, ..sr_save::SaveOptions::default() };
    let mut out = Vec::new();
    sr_save::Saver::new(options).save_checkpointed(&guest, &mut out, |done| done < checkpoints).unwrap();
    out
}

#[test]
fn a_checkpointed_stream_that_breaks_says_after_which_checkpoint() {
    let f = fixture();
    let stream = checkpointed_stream(&f.guest(), 3);
    let whole = f.write("ckpt.save", &stream);
    let o = xsr(&["verify", "--checkpointed", &whole]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(stdout(&o).contains("checkpoints: 3"), "{}", stdout(&o));

    // Cut before END (8 bytes): three checkpoints are complete.
    let cut = f.write("ckpt-cut.save", &stream[..stream.len() - 8 + 3]);
    let out = f.path("out");
    let o = xsr(&["restore", "--checkpointed", &cut, "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let text = stderr(&o);
    assert!(text.contains("stream broke after checkpoint 3; failover restores it: truncated at byte"), "{text}");
    assert!(text.contains("(--failover restores checkpoint 3)"), "{text}");
    assert_eq!(text.matches("truncated at byte").count(), 1, "printed once: {text}");
    assert!(!text.contains("before the first checkpoint"), "{text}");
    f.assert_nothing_left(&out);
    let o = xsr(&["verify", "--checkpointed", &cut]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("stream broke after checkpoint 3; failover restores it"), "{}", stdout(&o));

    // With --failover the last checkpoint is restored, and the summary says so.
    let o = xsr(&["restore", "--checkpointed", "--failover", &cut, "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.contains("8192 pages") && text.contains("checkpoints: 3 (the stream broke; restored the last one)"),
        "{text}"
    );
    fs::remove_dir_all(&out).unwrap();

    // Cut inside the first round: no checkpoint completed.
    let early = f.write("ckpt-early.save", &stream[..0x763 + 1000]);
    let o = xsr(&["restore", "--checkpointed", "--failover", &early, "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(stderr(&o).matches("truncated at byte").count(), 1, "{}", stderr(&o));
}

#[test]
fn inspect_shows_each_records_length_from_its_header() {
    let f = fixture();
    let real = f.arg("real.save");
    let from_file = stdout(&xsr(&["inspect", &real]));
    let from_pipe = stdout(&xsr_stdin(&["inspect", "-"], &f.stream));
    for text in [&from_file, &from_pipe] {
        assert!(text.contains("     0x763  libxc      5  PAGE_DATA                    4202504  1024 pfns"), "{text}");
        assert!(!text.contains(" 8200 "), "{text}");
    }
    let o = xsr(&["inspect", "--json", &real]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let items = v["items"].as_array().unwrap();
    let page_data: Vec<u64> =
        items.iter().filter(|i| i["kind"] == "PAGE_DATA").map(|i| i["length"].as_u64().unwrap()).collect();
    assert_eq!(page_data.len(), 8);
    assert!(page_data.iter().all(|&l| l == 8 + 1024 * 8 + 1024 * 4096), "{page_data:?}");
    // Offsets follow from the lengths: each record is its header, body and padding.
    let offsets: Vec<u64> = items.iter().map(|i| i["offset"].as_u64().unwrap()).collect();
    for (i, item) in items.iter().enumerate().skip(5) {
        if let (Some(next), Some(len)) = (offsets.get(i + 1), item["length"].as_u64())
            && item["layer"] == "libxc"
            && items[i + 1]["layer"] == "libxc"
        {
            assert_eq!(*next, offsets[i] + 8 + len.next_multiple_of(8), "{item}");
        }
    }
}

#[test]
fn the_restore_summary_counts_guest_pages_and_lists_verify_mismatches() {
    let f = fixture();
    let guest = f.guest();
    let v = f.path("verify.save");
    let o = xsr(&["save", &guest, "--out", v.to_str().unwrap(), "--verify"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut stream = fs::read(&v).unwrap();

    let out = f.path("out");
    let o = xsr(&["restore", v.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    let text = stdout(&o);
    assert!(text.starts_with("restored x86 PV domain: 8192 pages (33554432 bytes of memory) from "), "{text}");
    assert!(text.contains("verify pass: 8192 pages compared, 0 differed\n"), "{text}");
    assert!(text.contains("page bodies read: 16384"), "{text}");
    fs::remove_dir_all(&out).unwrap();

    // One byte of one page body in the VERIFY pass differs.
    let o = xsr(&["inspect", "--json", v.to_str().unwrap()]);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let items = j["items"].as_array().unwrap();
    let verify_at = items.iter().position(|i| i["kind"] == "VERIFY").unwrap();
    let rec = items[verify_at..].iter().find(|i| i["kind"] == "PAGE_DATA").unwrap();
    let body = rec["offset"].as_u64().unwrap() as usize + 8;
    let count = u32::from_le_bytes(stream[body..body + 4].try_into().unwrap()) as usize;
    let entry = |i: usize| u64::from_le_bytes(stream[body + 8 + 8 * i..body + 16 + 8 * i].try_into().unwrap());
    let pfns: Vec<u64> = (0..count).map(|i| entry(i) & ((1 << 52) - 1)).collect();
    assert!((0..count).all(|i| entry(i) >> 60 != 0xf), "every entry carries data");
    let first_page = body + 8 + 8 * count;
    stream[first_page + 100] ^= 0xff;
    stream[first_page + 3 * 4096] ^= 0x01;
    let bad = f.write("bad-verify.save", &stream);
    let o = xsr(&["restore", &bad, "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let want = format!("verify pass: 8192 pages compared, 2 differed: pfn {:#x}, {:#x}\n", pfns[0], pfns[3]);
    assert!(stdout(&o).contains(&want), "{}", stdout(&o));
    fs::remove_dir_all(&out).unwrap();
    let o = xsr(&["restore", "--json", &bad, "--out", out.to_str().unwrap()]);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["pages"], 8192);
    assert_eq!(j["page_bodies"], 16384);
    assert_eq!(j["verified_pages"], 8192);
    assert_eq!(j["verify_mismatches"], 2);
    assert_eq!(j["mismatch_pfns"], serde_json::json!([pfns[0], pfns[3]]));
}
