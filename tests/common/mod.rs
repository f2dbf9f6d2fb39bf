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
