//! An xsr built without the `xen` feature keeps every Xen command and flag (in `--help` too)
//! and answers them with what is missing, exit 2, before anything is written. `cargo xtask
//! test` builds and runs this file without features (`cargo test -p xsr --test
//! cli_noxen`), since its main run builds with `--all-features`.
#![cfg(not(feature = "xen"))]

mod common;

use common::{stderr, stdout, xsr};

const MISSING: &str = "this xsr was built without Xen support (cargo build --features xen)";

#[test]
fn the_xen_commands_and_flags_are_there_and_say_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o");
    let out = out.to_str().unwrap();
    let help = stdout(&xsr(&["--help"]));
    assert!(help.contains("dump "), "{help}");
    for cmd in ["save", "send"] {
        let help = stdout(&xsr(&[cmd, "--help"]));
        for flag in ["--domain", "--live", "--keep-running", "--suspend-timeout"] {
            assert!(help.contains(flag), "{cmd} --help lacks {flag}: {help}");
        }
    }
    for (args, what) in [
        (vec!["dump", "--domain", "1", "--out", out], "dump"),
        (vec!["dump", "--domain", "guest", "--out", out, "--format", "raw", "--live"], "dump"),
        (vec!["migrate", "guest", "host"], "migrate"),
        (vec!["restore", "--domain", "/nonexistent"], "restore --domain"),
        (vec!["save", "--domain", "guest", "--out", out], "--domain"),
        (vec!["save", "--domain", "guest", "--out", out, "--live", "--keep-running"], "--domain"),
        (vec!["send", "--domain", "guest", "--to", "127.0.0.1:1"], "--domain"),
    ] {
        let o = xsr(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert_eq!(stderr(&o), format!("xsr: {what}: {MISSING}\n"), "{args:?}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "{args:?} wrote something");
    }
    // The usual checks of the command line still come first.
    let o = xsr(&["save", dir.path().to_str().unwrap(), "--domain", "g", "--out", out]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("cannot be used with"), "{}", stderr(&o));
    // --json: the error as a JSON object.
    let o = xsr(&["dump", "--domain", "1", "--out", out, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["exit_code"], 2);
    assert!(v["error"].as_str().unwrap().ends_with(MISSING), "{v}");
}
