//! `xsr save`, `demo`, `send` and `receive` end to end.

mod common;

use std::fs;
use std::process::Command;

use common::{real_save_file, stderr, stdout, xsr, xsr_stdin};

/// Restores the real Xen file into `dir/restored`, returning (the file, the directory).
fn restored_real(dir: &tempfile::TempDir) -> (String, String) {
    let file = dir.path().join("real.save");
    fs::write(&file, real_save_file()).unwrap();
    let out = dir.path().join("restored");
    let o = xsr(&["restore", file.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    (file.to_str().unwrap().to_string(), out.to_str().unwrap().to_string())
}

#[test]
fn resaving_a_restored_xen_file_reproduces_it_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let (file, restored) = restored_real(&dir);
    let again = dir.path().join("again.save");
    let o = xsr(&["save", &restored, "--out", again.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(fs::read(&again).unwrap() == fs::read(&file).unwrap(), "the re-saved file differs from Xen's");

    // And restoring that gives the same directory again.
    let twice = dir.path().join("twice");
    assert!(xsr(&["restore", again.to_str().unwrap(), "--out", twice.to_str().unwrap()]).status.success());
    for name in ["domain.json", "memory.img", "vcpu0-basic.bin", "shared_info.bin", "xl-config.json"] {
        assert_eq!(
            fs::read(twice.join(name)).unwrap(),
            fs::read(dir.path().join("restored").join(name)).unwrap(),
            "{name}"
        );
    }
}

#[test]
fn save_options_all_give_strictly_valid_streams() {
    let dir = tempfile::tempdir().unwrap();
    let (_, restored) = restored_real(&dir);
    let cases: &[&[&str]] =
        &[&["--container", "xl"], &["--batch", "7"], &["--zero-pages", "xalloc"], &["--verify"], &["--workers", "1"]];
    for extra in cases {
        let mut args = vec!["save", restored.as_str(), "--out", "-"];
        args.extend_from_slice(extra);
        let o = Command::new(env!("CARGO_BIN_EXE_xsr")).args(&args).output().unwrap();
        assert!(o.status.success(), "{extra:?}: {}", stderr(&o));
        let v = xsr_stdin(&["verify", "--strict", "-"], &o.stdout);
        assert_eq!(v.status.code(), Some(0), "{extra:?}: {}", stdout(&v));
    }
    // What would drop something the directory carries is refused, saying what and why.
    let refused: &[(&[&str], &str)] = &[
        (
            &["--container", "libxc"],
            "xl configuration (xl-config.json), which only the xl container carries: --container libxc",
        ),
        (&["--container", "libxl"], "--container libxl would drop it"),
        (&["--stream-version", "2"], "CPU policy (30 CPUID leaves, 2 MSRs), which a v2 stream cannot carry"),
    ];
    for (extra, why) in refused {
        let out = dir.path().join("refused.save");
        let mut args = vec!["save", restored.as_str(), "--out", out.to_str().unwrap()];
        args.extend_from_slice(extra);
        let o = xsr(&args);
        assert_eq!(o.status.code(), Some(2), "{extra:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(why), "{extra:?}: {}", stderr(&o));
        assert!(!out.exists());
    }
    // Without the xl configuration and the CPU policy, the other containers and v2 work.
    let manifest = std::path::Path::new(&restored).join("domain.json");
    let mut m: serde_json::Value = serde_json::from_slice(&fs::read(&manifest).unwrap()).unwrap();
    m["container"]["xl_config"] = serde_json::Value::Null;
    m["cpuid"] = serde_json::json!([]);
    m["msrs"] = serde_json::json!([]);
    fs::write(&manifest, serde_json::to_vec(&m).unwrap()).unwrap();
    for extra in
        [&["--container", "libxc"][..], &["--container", "libxl"], &["--stream-version", "2", "--container", "libxc"]]
    {
        let mut args = vec!["save", restored.as_str(), "--out", "-"];
        args.extend_from_slice(extra);
        let o = Command::new(env!("CARGO_BIN_EXE_xsr")).args(&args).output().unwrap();
        assert!(o.status.success(), "{extra:?}: {}", stderr(&o));
        let v = xsr_stdin(&["verify", "--strict", "-"], &o.stdout);
        assert_eq!(v.status.code(), Some(0), "{extra:?}: {}", stdout(&v));
    }
    // v2 writes no STATIC_DATA_END, no CPU policy.
    let o = Command::new(env!("CARGO_BIN_EXE_xsr"))
        .args(["save", &restored, "--out", "-", "--stream-version", "2", "--container", "libxc"])
        .output()
        .unwrap();
    let i = xsr_stdin(&["inspect", "-"], &o.stdout);
    let text = stdout(&i);
    assert!(text.contains("version 2") && !text.contains("STATIC_DATA_END") && !text.contains("CPUID"), "{text}");
}

#[test]
fn save_of_a_broken_directory_leaves_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let (_, restored) = restored_real(&dir);
    fs::remove_file(dir.path().join("restored/vcpu0-basic.bin")).unwrap();
    let out = dir.path().join("out.save");
    let o = xsr(&["save", &restored, "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("vcpu0-basic.bin"), "{}", stderr(&o));
    assert!(!out.exists());
    let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(names.iter().all(|n| !n.to_string_lossy().contains("partial")), "{names:?}");
}

#[test]
fn demo_migrates_every_domain_type() {
    for t in ["pv", "hvm", "pvh", "arm"] {
        let o = xsr(&["demo", "--type", t, "--memory", "16M", "--dirty-rate", "5000", "--json"]);
        assert_eq!(o.status.code(), Some(0), "{t}: {}{}", stdout(&o), stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["identical"], true, "{t}: {v}");
        assert_eq!(v["pages"], 4096);
        let passes = v["passes"].as_array().unwrap();
        assert!(passes.len() >= 2 && passes.len() <= 6, "{t}: {passes:?}");
        assert_eq!(passes[0]["pages"], 4096 + 1 - 1, "pass 0 sends every pfn (4095 pages and the XTAB hole)");
        assert_eq!(passes.last().unwrap()["paused"], true);
    }
    // The text summary names every pass and the verdict.
    let o = xsr(&["demo", "--memory", "8M", "--max-iterations", "1"]);
    let text = stdout(&o);
    assert!(text.contains("pass 0") && text.contains("final (paused)") && text.contains("verdict: PASS"), "{text}");
    assert!(!text.contains("pass 1 "), "max-iterations 1 allows one live pass: {text}");
}

// send / receive: tests/cli_transfer.rs.
