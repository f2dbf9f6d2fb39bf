//! Bounds apply to what is populated, not to what is declared (issue 7, section 4), from the
//! command line: a PV guest whose p2m declares 128 GiB restores and extracts with the
//! default bounds into a sparse image; a bound that is hit names the option that raises it
//! and to what; extract's errors say "extract".

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::{real_save_file, stderr, xsr};
use serde_json::Value;

/// The real guest (8192 pages populated) with its p2m grown to declare 128 GiB, saved to
/// `dir/big.save`.
fn declared_128g(dir: &Path) -> String {
    let file = dir.join("real.save");
    fs::write(&file, real_save_file()).unwrap();
    let restored = dir.join("restored");
    let o = xsr(&["restore", file.to_str().unwrap(), "--out", restored.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let path = restored.join("domain.json");
    let mut m: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    let end = (128u64 << 18) - 1;
    let first = m["p2m"]["frames"][0].clone();
    m["p2m"]["end_pfn"] = Value::from(end);
    let frames = m["p2m"]["frames"].as_array_mut().unwrap();
    // The extra p2m frames repeat the first one (Xen accepts a frame listed twice).
    frames.resize((end / 512 + 1) as usize, first);
    fs::write(&path, serde_json::to_vec(&m).unwrap()).unwrap();
    let big = dir.join("big.save");
    let o = xsr(&["save", restored.to_str().unwrap(), "--out", big.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    big.to_str().unwrap().to_string()
}

#[test]
fn a_guest_declaring_128_gib_restores_and_extracts_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let big = declared_128g(dir.path());
    let out = dir.path().join("r");
    let o = xsr(&["restore", &big, "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let m: Value = serde_json::from_slice(&fs::read(out.join("domain.json")).unwrap()).unwrap();
    assert_eq!(m["p2m"]["end_pfn"], Value::from((128u64 << 18) - 1));
    // The image holds what is populated: 32 MiB of data, not 128 GiB.
    let image = fs::metadata(out.join("memory.img")).unwrap();
    assert!(image.len() <= 32 << 20 && image.blocks() * 512 <= 33 << 20, "{} bytes", image.len());
    let raw = dir.path().join("x.raw");
    let o = xsr(&["extract", &big, "--out", raw.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(fs::metadata(&raw).unwrap().blocks() * 512 <= 33 << 20);
}

#[test]
fn a_bound_that_is_hit_names_its_option_and_value() {
    let dir = tempfile::tempdir().unwrap();
    let big = declared_128g(dir.path());
    let out = dir.path().join("r");
    // 8192 pages (32 MiB) populated: a 16 MiB bound is hit while restoring.
    let o = xsr(&["restore", &big, "--out", out.to_str().unwrap(), "--max-memory", "16M"]);
    assert_ne!(o.status.code(), Some(0));
    let err = stderr(&o);
    assert!(err.starts_with(&format!("xsr: restore of {big} failed (raise --max-memory: at least ")), "{err}");
    assert!(err.contains("more than the destination's bound of 4096 pages (16 MiB)"), "{err}");
    assert!(!out.exists());
    // Following the hints reaches a bound that restores the stream.
    let mut bound = "16M".to_string();
    for _ in 0..8 {
        let o = xsr(&["restore", &big, "--out", out.to_str().unwrap(), "--max-memory", &bound]);
        if o.status.success() {
            break;
        }
        let err = stderr(&o);
        let hint = err.split("at least ").nth(1).unwrap().split(' ').next().unwrap().to_string();
        assert!(xsr::size::parse_size(&hint).unwrap() > xsr::size::parse_size(&bound).unwrap(), "{err}");
        bound = hint;
    }
    assert!(out.join("domain.json").exists(), "--max-memory {bound} did not restore it");
    assert!(xsr::size::parse_size(&bound).unwrap() >= 32 << 20);
    // The declared span is bounded by --max-span, named with the value that restores it.
    let raw = dir.path().join("x.raw");
    let o = xsr(&["extract", &big, "--out", raw.to_str().unwrap(), "--max-span", "64G"]);
    let err = stderr(&o);
    assert!(
        err.starts_with(&format!("xsr: extract of {big} failed (raise --max-span: at least 128G is needed)")),
        "{err}"
    );
    assert!(err.contains("pfn 0x1ffffff is beyond the destination's pfn limit 0x1000000"), "{err}");
    assert!(!raw.exists());
    let o = xsr(&["extract", &big, "--out", raw.to_str().unwrap(), "--max-span", "128G"]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn extract_bounds_the_populated_memory_like_restore_from_a_file_and_a_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let big = declared_128g(dir.path());
    for (name, from_stdin) in [("file.raw", false), ("pipe.raw", true)] {
        let raw = dir.path().join(name);
        let args =
            ["extract", if from_stdin { "-" } else { &big }, "--out", raw.to_str().unwrap(), "--max-memory", "16M"];
        let o = if from_stdin { xsr_stdin(&args, &big) } else { xsr(&args) };
        assert_eq!(o.status.code(), Some(2), "a bound, not an invalid stream: {}", stderr(&o));
        let err = stderr(&o);
        assert!(err.contains("failed (raise --max-memory: at least "), "{err}");
        assert!(!raw.exists());
        // Following the hint extracts it.
        let hint = err.split("at least ").nth(1).unwrap().split(' ').next().unwrap().to_string();
        let mut bound = hint;
        for _ in 0..8 {
            let args = [
                "extract",
                if from_stdin { "-" } else { &big },
                "--out",
                raw.to_str().unwrap(),
                "--max-memory",
                &bound,
            ];
            let o = if from_stdin { xsr_stdin(&args, &big) } else { xsr(&args) };
            if o.status.success() {
                break;
            }
            let err = stderr(&o);
            bound = err.split("at least ").nth(1).unwrap().split(' ').next().unwrap().to_string();
        }
        assert!(raw.exists(), "--max-memory {bound} did not extract it");
    }
}

fn xsr_stdin(args: &[&str], input: &str) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_xsr"))
        .args(args)
        .stdin(std::fs::File::open(input).unwrap())
        .output()
        .unwrap()
}

#[test]
fn demo_memory_is_checked_against_the_host_before_anything_is_allocated() {
    let start = std::time::Instant::now();
    let o = common::xsr(&["demo", "--memory", "1T"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("--memory 1T: the demo holds the guest and its restored copy in RAM (2T in all), more than the")
            && err.contains("this host has available (MemAvailable in /proc/meminfo)"),
        "{err}"
    );
    assert!(start.elapsed() < std::time::Duration::from_secs(10));
    let o = common::xsr(&["demo", "--memory", "0"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--memory 0: the demo guest needs at least 256K (64 pages)"), "{}", stderr(&o));
    let o = common::xsr(&["demo", "--memory", "300000"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("not a whole number of 4K pages"), "{}", stderr(&o));
}

#[test]
fn worker_counts_are_capped_with_a_message_naming_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let out = dir.path().join("x.save");
    for args in [
        vec!["save", d, "--out", out.to_str().unwrap(), "--workers", "100000"],
        vec!["send", d, "--to", "127.0.0.1:1", "--workers", "100000"],
        vec!["demo", "--workers", "100000"],
    ] {
        let start = std::time::Instant::now();
        let o = common::xsr(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(
            stderr(&o).contains("100000 is more than the limit of 256 worker threads (0: one per core)"),
            "{}",
            stderr(&o)
        );
        assert!(start.elapsed() < std::time::Duration::from_secs(10));
    }
    assert!(!out.exists());
}
