//! Shared helpers for the workspace-wide tests.
#![allow(dead_code)]

#[path = "testdata.rs"]
pub mod testdata;
#[allow(unused_imports)] // not every test crate reads the real files
pub use testdata::{real_hvm_file, real_pvh_file, real_save_file};

use std::process::{Command, Output};

/// Runs the `xsr` binary.
pub fn xsr(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xsr")).args(args).output().expect("xsr runs")
}

/// Runs `xsr` with `input` on standard input.
pub fn xsr_stdin(args: &[&str], input: &[u8]) -> Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_xsr"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("xsr runs");
    let mut stdin = child.stdin.take().unwrap();
    // A consumer that stops early closes the pipe; that is not the test's concern.
    let _ = stdin.write_all(input);
    drop(stdin);
    child.wait_with_output().unwrap()
}

/// Standard output as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Standard error as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A temporary directory holding the real PV save file as `real.save` (the bytes are in
/// `stream`), with the paths the CLI tests pass to xsr.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub stream: Vec<u8>,
}

/// A fresh [`Fixture`].
pub fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let stream = real_save_file();
    std::fs::write(dir.path().join("real.save"), &stream).unwrap();
    Fixture { dir, stream }
}

impl Fixture {
    /// `name` in the fixture's directory.
    pub fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }
    /// [`Fixture::path`] as an argument.
    pub fn arg(&self, name: &str) -> String {
        self.path(name).to_str().unwrap().to_string()
    }
    /// Writes `bytes` as `name`; its path as an argument.
    pub fn write(&self, name: &str, bytes: &[u8]) -> String {
        std::fs::write(self.path(name), bytes).unwrap();
        self.arg(name)
    }
    /// `name`, removed first if it exists (file or directory), as an argument.
    pub fn out(&self, name: &str) -> String {
        let p = self.path(name);
        let _ = std::fs::remove_dir_all(&p);
        let _ = std::fs::remove_file(&p);
        self.arg(name)
    }
    /// The real file restored into the directory `guest` (once), as an argument.
    pub fn guest(&self) -> String {
        let g = self.path("guest");
        if !g.exists() {
            let o = xsr(&["restore", &self.arg("real.save"), "--out", g.to_str().unwrap()]);
            assert!(o.status.success(), "{}", stderr(&o));
        }
        self.arg("guest")
    }
}
