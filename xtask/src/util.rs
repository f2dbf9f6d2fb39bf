//! What every task shares: the error type, the repo context, running a command with its
//! `==> command` header, and small helpers for arguments, tools and files.

use std::borrow::BorrowMut;
use std::collections::BTreeSet;
use std::env;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A task failure: one human-readable message.
#[derive(Debug)]
pub(crate) struct Error(pub(crate) String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

pub(crate) fn err(msg: impl Into<String>) -> Error {
    Error(msg.into())
}

/// Attach a path to an I/O error.
pub(crate) fn io_err(what: &str, path: &Path, e: io::Error) -> Error {
    err(format!("{what} {}: {e}", path.display()))
}

/// What every task needs: the repo root (also the current directory, so all
/// paths in commands and messages are repo-relative) and the cargo to call.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub(crate) root: PathBuf,
    /// `$CARGO` when run through `cargo xtask`, so nested builds use the
    /// same toolchain; plain `cargo` otherwise.
    cargo: OsString,
}

impl Ctx {
    pub(crate) fn new() -> Result<Self, Error> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .ok_or_else(|| err("xtask's manifest dir has no parent"))?
            .to_path_buf();
        env::set_current_dir(&root).map_err(|e| io_err("cannot enter", &root, e))?;
        let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        Ok(Ctx { root, cargo })
    }

    pub(crate) fn cargo<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new(&self.cargo);
        cmd.args(args);
        cmd
    }
}

/// Print the `==> ...` header, run `cmd` with inherited stdio, and turn a
/// non-zero exit into an error naming the step.
pub(crate) fn run(mut cmd: impl BorrowMut<Command>) -> Result<(), Error> {
    let cmd = cmd.borrow_mut();
    let shown = render(cmd);
    println!("==> {shown}");
    let status = cmd.status().map_err(|e| err(format!("could not start `{shown}`: {e}")))?;
    if status.success() { Ok(()) } else { Err(err(format!("`{shown}` failed ({status})"))) }
}

/// `cmd` as a copy-pastable shell line: env overrides first, absolute
/// program paths shortened to their file name (`$CARGO` shows as `cargo`).
pub(crate) fn render(cmd: &Command) -> String {
    let mut parts = Vec::new();
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            parts.push(format!("{}={}", k.to_string_lossy(), quote(v)));
        }
    }
    let program = Path::new(cmd.get_program());
    let program =
        if program.is_absolute() { program.file_name().unwrap_or(program.as_os_str()) } else { program.as_os_str() };
    parts.push(quote(program));
    parts.extend(cmd.get_args().map(quote));
    parts.join(" ")
}

pub(crate) fn quote(s: &OsStr) -> String {
    let s = s.to_string_lossy();
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_=./:,+@%".contains(c)) {
        s.into_owned()
    } else {
        format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

pub(crate) fn no_args(task: &str, args: &[String]) -> Result<(), Error> {
    match args.first() {
        None => Ok(()),
        Some(a) => Err(err(format!("`{task}` takes no arguments (got `{a}`)"))),
    }
}

pub(crate) fn split_dashdash(args: &[String]) -> (&[String], &[String]) {
    match args.iter().position(|a| a == "--") {
        Some(i) => (&args[..i], &args[i + 1..]),
        None => (args, &[]),
    }
}

/// Whether `program --version` runs.
pub(crate) fn tool_works(program: &OsStr) -> bool {
    tool_answers(program, "--version")
}

/// Whether `program ARG` exits 0.
pub(crate) fn tool_answers(program: &OsStr, arg: &str) -> bool {
    Command::new(program)
        .arg(arg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Regular files directly in `dir` (missing dir = empty).
pub(crate) fn list_files(dir: &Path) -> Result<BTreeSet<PathBuf>, Error> {
    let mut out = BTreeSet::new();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io_err("cannot list", dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| io_err("cannot list", dir, e))?;
        if entry.file_type().is_ok_and(|t| t.is_file()) {
            out.insert(entry.path());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_quotes_what_needs_it() {
        let mut cmd = Command::new("/usr/bin/cargo");
        cmd.args(["doc", "--no-deps"]).env("RUSTDOCFLAGS", "-D warnings");
        assert_eq!(render(&cmd), "RUSTDOCFLAGS=\"-D warnings\" cargo doc --no-deps");
    }
}
