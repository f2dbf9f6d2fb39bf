//! `xsr save DIR` writes back everything a restored directory carries, or refuses and says
//! why (issue 17: a save never silently drops what its input had), one test per kind: the
//! device-model records, HVM params, the TSC and CPU policy records, optional records of
//! unknown types, the xl configuration, the libxl legacy option, fields of domain.json this
//! xsr does not know, and data in memory.img outside the populated pages.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::testdata::{HVM, PV, save_file};
use common::{stderr, stdout, xsr};
use serde_json::Value;

/// Restores the real file of `name` into `dir/name`, returning (the file, the directory).
fn restored(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let file = dir.join(format!("{name}.save"));
    fs::write(&file, save_file(name)).unwrap();
    let out = dir.join(name);
    let o = xsr(&["restore", file.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    (file, out)
}

fn manifest(dir: &Path) -> Value {
    serde_json::from_slice(&fs::read(dir.join("domain.json")).unwrap()).unwrap()
}

fn set_manifest(dir: &Path, m: &Value) {
    fs::write(dir.join("domain.json"), serde_json::to_vec_pretty(m).unwrap()).unwrap();
}

/// Runs `xsr save DIR --out OUT extra...`; returns the output.
fn save(dir: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["save", dir.to_str().unwrap(), "--out", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    xsr(&args)
}

/// Asserts a refusal (exit 2, nothing written) that says `why`.
#[track_caller]
fn assert_refused(o: &std::process::Output, out: &Path, why: &str) {
    assert_eq!(o.status.code(), Some(2), "{}{}", stdout(o), stderr(o));
    assert!(stderr(o).contains(why), "{}", stderr(o));
    assert!(!out.exists(), "{} was written", out.display());
}

/// The libxl and libxc record types of a stream, in order.
fn records(file: &Path) -> Vec<String> {
    let o = xsr(&["inspect", "--json", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    v["items"].as_array().unwrap().iter().map(|i| i["kind"].as_str().unwrap().to_string()).collect()
}

#[test]
fn device_model_records_are_kept_or_the_save_refuses() {
    let tmp = tempfile::tempdir().unwrap();
    let (file, dir) = restored(tmp.path(), HVM);
    assert_eq!(manifest(&dir)["emulator"][0]["kind"], "EMULATOR_CONTEXT");
    // xl (the directory's own container) and libxl carry QEMU's state.
    for (extra, name) in [(&[][..], "xl.save"), (&["--container", "libxl"][..], "libxl.save")] {
        let out = tmp.path().join(name);
        if !extra.is_empty() {
            // libxl cannot carry the xl configuration: take it out of the directory first.
            let mut m = manifest(&dir);
            m["container"]["xl_config"] = Value::Null;
            set_manifest(&dir, &m);
        }
        let o = save(&dir, &out, extra);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let kinds = records(&out);
        assert_eq!(kinds.iter().filter(|k| *k == "EMULATOR_CONTEXT").count(), 1, "{name}: {kinds:?}");
        if extra.is_empty() {
            assert!(fs::read(&out).unwrap() == fs::read(&file).unwrap(), "the xl file is Xen's, byte for byte");
        }
    }
    // A bare libxc stream cannot: refused.
    let out = tmp.path().join("libxc.save");
    let o = save(&dir, &out, &["--container", "libxc"]);
    assert_refused(
        &o,
        &out,
        "the state has 1 device-model record(s) (libxl EMULATOR_*), which only a libxl or xl container carries",
    );
}

#[test]
fn hvm_params_tsc_and_policies_are_kept_and_foreign_ones_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, dir) = restored(tmp.path(), PV);
    let out = tmp.path().join("again.save");
    let o = save(&dir, &out, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let kinds = records(&out);
    for k in ["X86_CPUID_POLICY", "X86_MSR_POLICY", "X86_TSC_INFO"] {
        assert!(kinds.iter().any(|x| x == k), "{k} missing: {kinds:?}");
    }
    fs::remove_file(&out).unwrap();
    // HVM params in a PV directory: no PV stream carries them; refused.
    let mut m = manifest(&dir);
    m["hvm_params"] = serde_json::json!([[1, 0x1000]]);
    set_manifest(&dir, &m);
    assert_refused(&save(&dir, &out, &[]), &out, "PV state with HVM records (hvm_context or hvm_params)");
    // A CPU policy in a v2 stream: refused (v2 predates the policy records).
    m["hvm_params"] = serde_json::json!([]);
    set_manifest(&dir, &m);
    assert_refused(&save(&dir, &out, &["--stream-version", "2"]), &out, "which a v2 stream cannot carry");
}

#[test]
fn unknown_optional_records_are_written_back() {
    let tmp = tempfile::tempdir().unwrap();
    let (file, _) = restored(tmp.path(), PV);
    // The real file with an optional record of an unknown type before its libxc END.
    let mut bytes = fs::read(&file).unwrap();
    let end = bytes.len() - 16; // libxc END, then libxl END (8 bytes each)
    let mut rec = 0x8000_0123u32.to_le_bytes().to_vec();
    rec.extend_from_slice(&5u32.to_le_bytes());
    rec.extend_from_slice(b"kept!\0\0\0");
    bytes.splice(end..end, rec);
    let with = tmp.path().join("with.save");
    fs::write(&with, &bytes).unwrap();
    let dir = tmp.path().join("with");
    let o = xsr(&["restore", with.to_str().unwrap(), "--out", dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let m = manifest(&dir);
    assert_eq!(m["optional_records"], serde_json::json!([{ "record_type": 0x8000_0123u32, "file": "optional0.bin" }]));
    assert_eq!(fs::read(dir.join("optional0.bin")).unwrap(), b"kept!");
    let out = tmp.path().join("again.save");
    let o = save(&dir, &out, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // Written back: Xen skips it, xsr's lenient verify too, the strict one refuses it.
    assert!(records(&out).iter().any(|k| k.contains("0x80000123") || k.contains("80000123")), "{:?}", records(&out));
    assert!(fs::read(&out).unwrap().windows(5).any(|w| w == b"kept!"));
    assert_eq!(xsr(&["verify", out.to_str().unwrap()]).status.code(), Some(0));
    assert_eq!(xsr(&["verify", "--strict", out.to_str().unwrap()]).status.code(), Some(1));
}

#[test]
fn the_xl_configuration_and_the_libxl_legacy_option_are_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, dir) = restored(tmp.path(), PV);
    // The xl configuration: only the xl container carries it.
    for c in ["libxl", "libxc"] {
        let out = tmp.path().join(format!("{c}.save"));
        assert_refused(&save(&dir, &out, &["--container", c]), &out, "which only the xl container carries");
    }
    // The libxl "converted from legacy" option: written into the libxl header again.
    let mut m = manifest(&dir);
    m["container"]["libxl_legacy"] = Value::Bool(true);
    set_manifest(&dir, &m);
    let out = tmp.path().join("legacy.save");
    let o = save(&dir, &out, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = xsr(&["inspect", out.to_str().unwrap()]);
    assert!(stdout(&o).contains("LIBXL_HEADER                      16  version 2, options 0x2"), "{}", stdout(&o));
    let again = tmp.path().join("legacy-dir");
    let o = xsr(&["restore", out.to_str().unwrap(), "--out", again.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(manifest(&again)["container"]["libxl_legacy"], Value::Bool(true));
}

#[test]
fn fields_this_xsr_does_not_know_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, dir) = restored(tmp.path(), PV);
    for (path, field) in [(None, "future_records"), (Some("tsc"), "offset"), (Some("container"), "extra")] {
        let mut m = manifest(&dir);
        let target = match path {
            Some(p) => &mut m[p],
            None => &mut m,
        };
        target[field] = serde_json::json!(1);
        set_manifest(&dir, &m);
        let out = tmp.path().join("out.save");
        assert_refused(&save(&dir, &out, &[]), &out, &format!("unknown field `{field}`"));
        if let Some(p) = path {
            m[p].as_object_mut().unwrap().remove(field);
        } else {
            m.as_object_mut().unwrap().remove(field);
        }
        set_manifest(&dir, &m);
    }
}

#[test]
fn data_outside_the_populated_pages_is_refused() {
    use std::io::{Seek, SeekFrom, Write};
    let tmp = tempfile::tempdir().unwrap();
    let (_, dir) = restored(tmp.path(), HVM);
    // pfn 0x10 is XTAB in the real HVM guest: not populated, a hole in memory.img.
    let m = manifest(&dir);
    assert!(m["memory"]["populated"][0] == serde_json::json!([0, 16]), "{}", m["memory"]["populated"]);
    let out = tmp.path().join("out.save");
    let mut img = fs::OpenOptions::new().write(true).open(dir.join("memory.img")).unwrap();
    // Zeros written there are not data: the save goes on.
    img.seek(SeekFrom::Start(0x10 << 12)).unwrap();
    img.write_all(&[0; 4096]).unwrap();
    let o = save(&dir, &out, &["--container", "xl"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    fs::remove_file(&out).unwrap();
    // Non-zero bytes would be dropped: refused.
    img.seek(SeekFrom::Start((0x10 << 12) + 100)).unwrap();
    img.write_all(b"edited").unwrap();
    drop(img);
    assert_refused(
        &save(&dir, &out, &[]),
        &out,
        "memory.img holds data at pfn 0x10, which domain.json does not list as populated",
    );
}
