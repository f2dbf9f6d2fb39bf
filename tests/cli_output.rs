//! The rules every command that writes follows (src/output.rs), driven through the binary:
//! an output is never an input, an existing output is replaced only with --force, missing
//! parent directories are created (and removed again on failure), a signal removes the partial
//! output, and a partial left by a killed process is cleared or named.

mod common;

use std::fs;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{Fixture, fixture, stderr, stdout, xsr};

/// The checks of this file on [`Fixture`].
trait Partials {
    fn partials(&self) -> Vec<String>;
}

impl Partials for Fixture {
    /// Names in the fixture's directory containing "partial".
    fn partials(&self) -> Vec<String> {
        partials_in(self.dir.path())
    }
}

fn partials_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("partial"))
        .collect();
    names.sort();
    names
}

fn spawn(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_xsr"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn with_stdin_file(args: &[&str], input: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xsr")).args(args).stdin(fs::File::open(input).unwrap()).output().unwrap()
}

/// Waits until a partial output appears in `dir`.
fn wait_for_partial(dir: &Path) -> String {
    let start = Instant::now();
    loop {
        if let Some(p) = partials_in(dir).into_iter().next() {
            return p;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "no partial output appeared in {}", dir.display());
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn signal(child: &Child, sig: rustix::process::Signal) {
    let pid = rustix::process::Pid::from_raw(child.id().cast_signed()).unwrap();
    rustix::process::kill_process(pid, sig).unwrap();
}

#[test]
fn an_output_that_is_an_input_is_refused_and_the_input_is_untouched() {
    let f = fixture();
    let real = f.arg("real.save");
    let guest = f.guest();
    let link = f.path("link.save");
    std::os::unix::fs::symlink(f.path("real.save"), &link).unwrap();
    let hard = f.path("hard.save");
    fs::hard_link(f.path("real.save"), &hard).unwrap();
    let (link, hard) = (link.to_str().unwrap(), hard.to_str().unwrap());
    let memory = format!("{guest}/memory.img");
    let image_before = fs::read(&memory).unwrap();
    let manifest = format!("{guest}/domain.json");
    let cases: Vec<Vec<&str>> = vec![
        vec!["read", &real, "--phys", "0", "--len", "16", "--out", &real],
        vec!["read", &real, "--phys", "0", "--len", "16", "--out", &real, "--force"],
        vec!["extract", &real, "--out", &real],
        vec!["extract", &real, "--out", &real, "--force"],
        vec!["extract", &real, "--format", "elf", "--out", link, "--force"],
        vec!["extract", link, "--out", hard, "--force"],
        vec!["save", &guest, "--out", &memory],
        vec!["save", &guest, "--out", &memory, "--force"],
        vec!["save", &guest, "--out", &manifest, "--force"],
        vec!["save", &guest, "--out", &guest, "--force"],
        vec!["restore", &real, "--out", &real, "--force"],
        vec!["receive", "--from", &real, "--out-file", hard, "--force"],
    ];
    for args in &cases {
        let o = xsr(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("refusing to write over an input"), "{args:?}: {}", stderr(&o));
        assert!(fs::read(f.path("real.save")).unwrap() == f.stream, "{args:?} changed the input");
        assert!(fs::read(&memory).unwrap() == image_before, "{args:?} changed the memory image");
        assert!(f.partials().is_empty(), "{args:?}: {:?}", f.partials());
    }
    // Standard input or output redirected from or to the output, too.
    let o = with_stdin_file(&["extract", "-", "--out", &real, "--force"], &f.path("real.save"));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("is the input on standard input"), "{}", stderr(&o));
    let appended = fs::OpenOptions::new().append(true).open(f.path("real.save")).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_xsr"))
        .args(["extract", &real, "--out", "-"])
        .stdout(appended)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("standard output is the input"), "{}", stderr(&o));
    assert!(fs::read(f.path("real.save")).unwrap() == f.stream);
    // A different output is fine.
    let o = xsr(&["read", &real, "--phys", "0x1436000", "--len", "16", "--out", &f.arg("bytes")]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(fs::read(f.path("bytes")).unwrap(), b"REALXEN-PAGE-000");
}

#[test]
fn every_command_refuses_an_existing_output_unless_forced_and_force_replaces_it_only_on_success() {
    let f = fixture();
    let real = f.arg("real.save");
    let guest = f.guest();
    let cut = f.path("cut.save");
    fs::write(&cut, &f.stream[..f.stream.len() - 100]).unwrap();
    let cut = cut.to_str().unwrap();
    let old = f.path("old");
    let old_s = old.to_str().unwrap();
    type Case<'a> = (&'a str, Vec<&'a str>);
    let file_cases: Vec<Case<'_>> = vec![
        ("extract", vec!["extract", &real, "--out", old_s]),
        ("extract elf", vec!["extract", &real, "--format", "elf", "--out", old_s]),
        ("save", vec!["save", &guest, "--out", old_s]),
        ("read", vec!["read", &real, "--phys", "0x1436000", "--len", "16", "--out", old_s]),
        ("receive --out-file", vec!["receive", "--from", &real, "--out-file", old_s]),
    ];
    for (name, args) in &file_cases {
        fs::write(&old, b"precious").unwrap();
        let o = xsr(args);
        assert_eq!(o.status.code(), Some(2), "{name}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("already exists; refusing to overwrite it (--force replaces it"),
            "{name}: {}",
            stderr(&o)
        );
        assert_eq!(fs::read(&old).unwrap(), b"precious", "{name}");
        let mut forced = args.clone();
        forced.push("--force");
        let o = xsr(&forced);
        assert_eq!(o.status.code(), Some(0), "{name}: {}", stderr(&o));
        assert_ne!(fs::read(&old).unwrap(), b"precious", "{name}: not replaced");
        assert!(f.partials().is_empty(), "{name}: {:?}", f.partials());
    }
    // A failure with --force leaves the existing output as it was.
    fs::write(&old, b"precious").unwrap();
    for args in [
        vec!["extract", cut, "--out", old_s, "--force"],
        vec!["receive", "--from", cut, "--out-file", old_s, "--force"],
    ] {
        let o = xsr(&args);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", stderr(&o));
        assert_eq!(fs::read(&old).unwrap(), b"precious", "{args:?}");
        assert!(f.partials().is_empty(), "{args:?}: {:?}", f.partials());
    }
    // Directories: restore and receive --out replace an image directory with --force only.
    let copy = f.path("copy");
    let copy_s = copy.to_str().unwrap();
    for args in [vec!["restore", &real, "--out", copy_s], vec!["receive", "--from", &real, "--out", copy_s]] {
        fs::create_dir_all(&copy).unwrap();
        fs::write(copy.join("domain.json"), b"old").unwrap();
        let o = xsr(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("already exists"), "{args:?}: {}", stderr(&o));
        assert_eq!(fs::read(copy.join("domain.json")).unwrap(), b"old");
        let mut forced = args.clone();
        forced.push("--force");
        let o = xsr(&forced);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
        assert!(fs::read(copy.join("domain.json")).unwrap().starts_with(b"{"), "{args:?}");
        assert!(copy.join("memory.img").exists());
        fs::remove_dir_all(&copy).unwrap();
        assert!(f.partials().is_empty(), "{args:?}: {:?}", f.partials());
    }
    // --force never replaces a directory that is not an image directory, nor a directory
    // with a file; and it says so before reading anything.
    let docs = f.path("docs");
    fs::create_dir(&docs).unwrap();
    fs::write(docs.join("notes.txt"), b"mine").unwrap();
    let docs_s = docs.to_str().unwrap();
    for args in [
        vec!["restore", &real, "--out", docs_s, "--force"],
        vec!["extract", &real, "--out", docs_s, "--force"],
        vec!["save", &guest, "--out", docs_s, "--force"],
    ] {
        let o = xsr(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert_eq!(fs::read(docs.join("notes.txt")).unwrap(), b"mine");
    }
}

#[test]
fn extract_to_an_existing_directory_fails_before_reading_the_input() {
    let f = fixture();
    let dir = f.path("somedir");
    fs::create_dir(&dir).unwrap();
    for force in [false, true] {
        // Standard input stays open and empty: a command that read it first would hang.
        let mut args = vec!["extract", "-", "--out", dir.to_str().unwrap()];
        if force {
            args.push("--force");
        }
        let mut child = spawn(&args);
        let start = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            assert!(start.elapsed() < Duration::from_secs(20), "extract waited for its input");
            std::thread::sleep(Duration::from_millis(20));
        };
        let o = child.wait_with_output().unwrap();
        assert_eq!(status.code(), Some(2), "{}", stderr(&o));
        assert!(stderr(&o).contains(dir.to_str().unwrap()), "{}", stderr(&o));
    }
}

#[test]
fn missing_parent_directories_are_created_and_removed_again_on_failure() {
    let f = fixture();
    let real = f.arg("real.save");
    let guest = f.guest();
    let cut = f.path("cut.save");
    fs::write(&cut, &f.stream[..f.stream.len() - 100]).unwrap();
    let cut = cut.to_str().unwrap();
    type Case = (&'static str, fn(&str, &str) -> Vec<String>);
    let cases: Vec<Case> = vec![
        ("restore", |input, out| vec!["restore".into(), input.into(), "--out".into(), out.into()]),
        ("extract", |input, out| vec!["extract".into(), input.into(), "--out".into(), out.into()]),
        ("extract elf", |input, out| {
            vec!["extract".into(), input.into(), "--format".into(), "elf".into(), "--out".into(), out.into()]
        }),
        ("receive", |input, out| {
            vec!["receive".into(), "--from".into(), input.into(), "--out-file".into(), out.into()]
        }),
    ];
    for (name, make) in &cases {
        let out = f.path(&format!("new/{name}/deeper/out"));
        let args = make(cut, out.to_str().unwrap());
        let o = xsr(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(o.status.code(), Some(1), "{name}: {}", stderr(&o));
        assert!(!f.path("new").exists(), "{name}: the created parents are left");
        let args = make(&real, out.to_str().unwrap());
        let o = xsr(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(o.status.code(), Some(0), "{name}: {}", stderr(&o));
        assert!(out.exists(), "{name}");
        fs::remove_dir_all(f.path("new")).unwrap();
    }
    let out = f.path("new/a/b.save");
    let o = xsr(&["save", &guest, "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(fs::read(&out).unwrap(), f.stream);
    let out = f.path("new/b/c.bin");
    let o = xsr(&["read", &real, "--phys", "0x1436000", "--len", "4", "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(fs::read(&out).unwrap(), b"REAL");
    // A read of a hole fails: nothing is left, not even the new directory.
    let out = f.path("new2/c.bin");
    let o = xsr(&["read", &real, "--phys", "0x2000000", "--len", "4", "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(!f.path("new2").exists());
}

/// The commands whose input can be held back (standard input, or a named pipe nobody
/// writes), so that a signal is sure to find their partial output.
fn stalled_writers(f: &Fixture) -> Vec<(&'static str, Vec<String>, bool)> {
    let out = f.arg("out");
    let guest = f.guest();
    // A copy of the guest whose domain.json is a named pipe: save blocks reading it, with its
    // output already created.
    let stalled_guest = f.path("stalled-guest");
    if !stalled_guest.exists() {
        fs::create_dir(&stalled_guest).unwrap();
        for e in fs::read_dir(&guest).unwrap() {
            let e = e.unwrap();
            if e.file_name() != "domain.json" {
                fs::copy(e.path(), stalled_guest.join(e.file_name())).unwrap();
            }
        }
        let fifo = stalled_guest.join("domain.json");
        assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    }
    let sg = stalled_guest.to_str().unwrap().to_string();
    let s = |v: &[&str]| v.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    vec![
        ("restore", s(&["restore", "-", "--out", &out]), true),
        ("extract raw", s(&["extract", "-", "--out", &out]), true),
        ("extract elf", s(&["extract", "-", "--format", "elf", "--out", &out]), true),
        ("extract lime", s(&["extract", "-", "--format", "lime", "--out", &out]), true),
        ("read --out", s(&["read", "-", "--phys", "0", "--len", "16", "--out", &out]), true),
        ("receive --out", s(&["receive", "--from", "-", "--out", &out]), true),
        ("receive --out-file", s(&["receive", "--from", "-", "--out-file", &out]), true),
        ("save", s(&["save", &sg, "--out", &out]), false),
    ]
}

#[test]
fn sigint_sigterm_and_sighup_remove_the_partial_output_of_every_writing_command() {
    use rustix::process::Signal;
    let f = fixture();
    for sig in [Signal::INT, Signal::TERM, Signal::HUP] {
        for (name, args, feed) in stalled_writers(&f) {
            let mut child = spawn(&args.iter().map(String::as_str).collect::<Vec<_>>());
            let mut stdin = child.stdin.take().unwrap();
            if feed {
                // Half the stream; the rest never comes.
                let _ = stdin.write_all(&f.stream[..f.stream.len() / 2]);
            }
            let partial = wait_for_partial(f.dir.path());
            assert!(partial.starts_with(".out.partial-"), "{name}: {partial}");
            signal(&child, sig);
            let o = child.wait_with_output().unwrap();
            drop(stdin);
            assert_eq!(o.status.signal(), Some(sig.as_raw()), "{name} {sig:?}: {:?} {}", o.status, stderr(&o));
            assert!(f.partials().is_empty(), "{name} {sig:?}: {:?}", f.partials());
            assert!(!f.path("out").exists(), "{name} {sig:?}");
            let err = stderr(&o);
            assert!(
                err.contains("interrupted") && err.contains(&format!("removed the partial {}", f.arg("out"))),
                "{name}: {err}"
            );
        }
    }
}

#[test]
fn a_partial_left_by_a_killed_process_is_removed_when_its_process_is_gone_and_named_while_it_runs() {
    use rustix::process::Signal;
    let f = fixture();
    let out = f.arg("out");
    // SIGKILL cannot be caught: the partial stays.
    let mut child = spawn(&["restore", "-", "--out", &out]);
    let mut stdin = child.stdin.take().unwrap();
    let _ = stdin.write_all(&f.stream[..f.stream.len() / 2]);
    let partial = wait_for_partial(f.dir.path());
    let pid = child.id();
    assert_eq!(partial, format!(".out.partial-{pid}"));
    signal(&child, Signal::KILL);
    child.wait().unwrap();
    drop(stdin);
    assert_eq!(f.partials(), vec![partial.clone()]);
    // The next command writing the same output removes it, and says so.
    let o = xsr(&["extract", &f.arg("real.save"), "--out", &out]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains(&format!("removed {}/{partial}", f.dir.path().display())), "{}", stderr(&o));
    assert!(stderr(&o).contains(&format!("left by process {pid}, which no longer runs")), "{}", stderr(&o));
    assert!(f.partials().is_empty());
    fs::remove_file(f.path("out")).unwrap();

    // A partial whose process still runs (another xsr writing the same output) is named in
    // the error, and left alone.
    let mut sleeper = Command::new("sleep").arg("60").spawn().unwrap();
    let live = format!(".out.partial-{}", sleeper.id());
    fs::write(f.path(&live), b"being written").unwrap();
    let o = xsr(&["restore", &f.arg("real.save"), "--out", &out]);
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("{live} exists: process {} may still be writing {out}", sleeper.id())),
        "{}",
        stderr(&o)
    );
    assert_eq!(fs::read(f.path(&live)).unwrap(), b"being written");
    assert!(!f.path("out").exists());
}

#[test]
fn a_full_disk_fails_with_2_and_names_the_output_not_the_partial_file() {
    let f = fixture();
    let real = f.arg("real.save");
    let guest = f.guest();
    // A file-size limit (RLIMIT_FSIZE, SIGXFSZ ignored) makes every write past 1 MiB fail as a
    // full disk does, on any machine; a small tmpfs shows ENOSPC itself where mounting works.
    let limited = |args: &[&str]| -> Output {
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg("ulimit -f 2048; trap '' XFSZ; exec \"$@\"")
            .arg("sh")
            .arg(env!("CARGO_BIN_EXE_xsr"))
            .args(args);
        c.output().unwrap()
    };
    let out = f.arg("full");
    let cases: Vec<Vec<&str>> = vec![
        vec!["restore", &real, "--out", &out],
        vec!["extract", &real, "--out", &out],
        vec!["extract", &real, "--format", "elf", "--out", &out],
        vec!["save", &guest, "--out", &out],
        vec!["read", &real, "--phys", "0", "--len", "4M", "--out", &out],
        vec!["receive", "--from", &real, "--out", &out],
        vec!["receive", "--from", &real, "--out-file", &out],
    ];
    for args in &cases {
        let o = limited(args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("File too large"), "{args:?}: {err}");
        assert_eq!(err.matches("File too large").count(), 1, "{args:?}: the cause once: {err}");
        assert!(err.contains(&out), "{args:?}: names the output: {err}");
        assert!(!err.contains("partial"), "{args:?}: names the partial file: {err}");
        assert!(f.partials().is_empty() && !f.path("full").exists(), "{args:?}");
    }
    // The receiver's full disk reaches the sender as 2, its message once.
    let via = format!("'{}' receive --from - --out '{out}'", env!("CARGO_BIN_EXE_xsr"));
    let o = limited(&["send", &guest, "--via", &via]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    // (The receiver's standard error is the sender's: its own line is there too.)
    let err = stderr(&o);
    let line =
        err.lines().find(|l| l.starts_with("xsr: the receiver failed (exit 2): ")).unwrap_or_else(|| panic!("{err}"));
    assert_eq!(line.matches("File too large").count(), 1, "{line}");
    assert!(line.contains(&format!("cannot write {out}")), "{line}");
    // Standard output on a full device.
    for args in [vec!["extract", &real, "--out", "-"], vec!["save", &guest, "--out", "-"]] {
        let o = Command::new(env!("CARGO_BIN_EXE_xsr"))
            .args(&args)
            .stdout(fs::OpenOptions::new().write(true).open("/dev/full").unwrap())
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("No space left on device"), "{args:?}: {}", stderr(&o));
    }
    // A real ENOSPC where a private tmpfs can be mounted (a user namespace).
    let probe = Command::new("unshare").args(["-rm", "true"]).output();
    if probe.is_ok_and(|p| p.status.success()) {
        let mnt = f.path("mnt");
        fs::create_dir(&mnt).unwrap();
        let small = format!("{}/x", mnt.display());
        for args in [vec!["restore", real.as_str(), "--out", &small], vec!["extract", real.as_str(), "--out", &small]] {
            let o = Command::new("unshare")
                .args(["-rm", "sh", "-c", "mount -t tmpfs -o size=1m none \"$1\" && shift && exec \"$@\"", "sh"])
                .arg(&mnt)
                .arg(env!("CARGO_BIN_EXE_xsr"))
                .args(&args)
                .output()
                .unwrap();
            assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
            assert_eq!(stderr(&o).matches("No space left on device").count(), 1, "{args:?}: {}", stderr(&o));
            assert!(stderr(&o).contains(&small) && !stderr(&o).contains("partial"), "{}", stderr(&o));
        }
    } else {
        eprintln!("note: no user namespaces here; the tmpfs (ENOSPC) half of this test did not run");
    }
    let _ = stdout;
}

/// A report redirected onto the command's own input (`xsr inspect g.save >> g.save`) is
/// refused before anything is printed, the JSON error included: the input keeps its bytes.
#[test]
fn standard_output_onto_an_input_is_refused_for_every_reading_command() {
    let f = fixture();
    let input = f.arg("real.save");
    for args in [
        vec!["inspect", &input],
        vec!["inspect", &input, "--json"],
        vec!["verify", &input, "--json"],
        vec!["read", &input, "--phys", "0x1000", "--len", "16"],
        vec!["grep", &input, "abc", "--json"],
        vec!["diff", &input, &input],
        vec!["restore", &input, "--out", "/nonexistent-dir-xsr/r"],
    ] {
        let appended = fs::OpenOptions::new().append(true).open(f.path("real.save")).unwrap();
        let o = Command::new(env!("CARGO_BIN_EXE_xsr")).args(&args).stdout(appended).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("standard output is the input"), "{args:?}: {}", stderr(&o));
        assert!(fs::read(f.path("real.save")).unwrap() == f.stream, "{args:?} changed its input");
    }
}
