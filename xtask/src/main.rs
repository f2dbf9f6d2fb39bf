//! `cargo xtask <task>`: the workspace's check, bench and fuzz driver.
//!
//! Dependency-free (std only), in the style of gimli-rs/object's xtask: a
//! `(name, fn, help)` task table; every step prints a `==> command` header
//! and the first failing step stops the task with a non-zero exit status.
//! The alias lives in `.cargo/config.toml`; `.ci/run` calls `cargo xtask test`.

use std::borrow::BorrowMut;
use std::collections::{BTreeMap, BTreeSet};
use std::env;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

/// A task gets the repo context and the arguments after its name.
type TaskFn = fn(&Ctx, &[String]) -> Result<(), Error>;

/// The task table: `(name, fn, help)`.
const TASKS: &[(&str, TaskFn, &str)] = &[
    (
        "test",
        task_test,
        "fmt, clippy, tests (nextest if installed), doc tests, rustdoc -D warnings, fuzz-crate check, contrib python tests",
    ),
    ("ci", task_test, "same as `test` (what .ci/run calls)"),
    ("bench", task_bench, "criterion benches (`cargo bench --workspace`), then benches/cli-bench.sh if present"),
    ("fuzz", task_fuzz, "build fuzz/ with stable sancov flags and run libFuzzer on each target"),
    (
        "interop",
        task_interop,
        "real tools on the real test image: Volatility 3 layer, vol/readelf/gdb on extract's ELF and LiME",
    ),
    (
        "package",
        task_package,
        "`cargo publish --dry-run --workspace`: package and build every publishable crate in dependency order",
    ),
    (
        "realxen",
        task_realxen,
        "build xsr --features xen, run tests/realxen/*.sh on a real Xen (realxen.sh job), check dumps",
    ),
    ("help", task_help, "list the tasks"),
];

const USAGE: &str = "\
usage: cargo xtask <task> [args]

  cargo xtask test | ci
  cargo xtask bench [CARGO_BENCH_ARGS] [-- HARNESS_ARGS]   e.g. cargo xtask bench -- --quick
  cargo xtask fuzz [TARGET...] [--seconds N] [--jobs J] [-- LIBFUZZER_ARGS]
  cargo xtask fuzz --list
  cargo xtask package [CARGO_PUBLISH_ARGS]                 e.g. cargo xtask package --allow-dirty
  cargo xtask interop [--strict]     --strict: a check skipped for a missing feature or tool fails
  cargo xtask realxen [--runs N] [JOB...]                  tests/realxen/JOB.sh on a real Xen (see shared/realxen)
  cargo xtask realxen compare A.save B.save                only the host-side comparison of two save files
  cargo xtask realxen check JOB RUN_DIR/out                only the host-side checks of an earlier run of JOB";

/// Sanitizer-coverage flags that let a *stable* rustc instrument code for
/// libFuzzer (what cargo-fuzz does, minus the nightly-only `-Zsanitizer`).
const FUZZ_RUSTFLAGS: &str = "--cfg fuzzing -Cpasses=sancov-module \
    -Cllvm-args=-sanitizer-coverage-level=4 \
    -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
    -Cllvm-args=-sanitizer-coverage-pc-table \
    -Cllvm-args=-sanitizer-coverage-trace-compares \
    -Coverflow-checks=on -Cdebug-assertions=on";

const FUZZ_MANIFEST: &str = "fuzz/Cargo.toml";
/// The fuzz crate always gets its own target dir: its instrumented builds
/// must never mix with the main workspace's artifacts.
const FUZZ_TARGET_DIR: &str = "fuzz/target";
const DEFAULT_FUZZ_SECONDS: u64 = 60;
const CLI_BENCH_SCRIPT: &str = "benches/cli-bench.sh";

/// Where `interop` keeps its venv, the decompressed image and the outputs it checks.
const INTEROP_DIR: &str = "interop";
/// The Volatility 3 release the layer and the checks were written against.
const VOLATILITY3_REQUIREMENT: &str = "volatility3==2.28.2";
const VOLATILITY_PLUGIN_DIR: &str = "contrib/volatility3";
const PYTHON_TEST_DIR: &str = "contrib/tests";
const INTEROP_CHECKS: &str = "contrib/tests/interop_checks.py";
/// The real `xl save` file, looked up in the repo root and its ancestors (as
/// `tests/common/testdata.rs` does), or named by `XSR_REAL_SAVE_XZ`.
const REAL_SAVE_XZ: &str = "shared/testdata/xen-4.17/tiny32-1vcpu.save.xz";
/// Under the target dir: where `package` builds the packaged crates.
const PACKAGE_TARGET_DIR: &str = "publish-dry-run";

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let Some((name, rest)) = args.split_first() else {
        eprintln!("xtask: no task given\n");
        eprintln!("{}", help_text());
        return ExitCode::from(2);
    };
    if matches!(name.as_str(), "-h" | "--help") {
        println!("{}", help_text());
        return ExitCode::SUCCESS;
    }
    let Some(&(_, task, _)) = TASKS.iter().find(|(n, _, _)| n == name) else {
        eprintln!("xtask: unknown task `{name}`\n");
        eprintln!("{}", help_text());
        return ExitCode::from(2);
    };
    let ctx = match Ctx::new() {
        Ok(ctx) => ctx,
        Err(e) => {
            eprintln!("xtask: {e}");
            return ExitCode::FAILURE;
        }
    };
    match task(&ctx, rest) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("\nxtask {name}: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

fn help_text() -> String {
    let width = TASKS.iter().map(|(n, _, _)| n.len()).max().unwrap_or(0);
    let mut s = String::from("tasks:\n");
    for (name, _, help) in TASKS {
        s.push_str(&format!("  {name:<width$}  {help}\n"));
    }
    s.push('\n');
    s.push_str(USAGE);
    s
}

/// A task failure: one human-readable message.
#[derive(Debug)]
struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn err(msg: impl Into<String>) -> Error {
    Error(msg.into())
}

/// Attach a path to an I/O error.
fn io_err(what: &str, path: &Path, e: io::Error) -> Error {
    err(format!("{what} {}: {e}", path.display()))
}

/// What every task needs: the repo root (also the current directory, so all
/// paths in commands and messages are repo-relative) and the cargo to call.
#[derive(Debug)]
struct Ctx {
    root: PathBuf,
    /// `$CARGO` when run through `cargo xtask`, so nested builds use the
    /// same toolchain; plain `cargo` otherwise.
    cargo: OsString,
}

impl Ctx {
    fn new() -> Result<Self, Error> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .ok_or_else(|| err("xtask's manifest dir has no parent"))?
            .to_path_buf();
        env::set_current_dir(&root).map_err(|e| io_err("cannot enter", &root, e))?;
        let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        Ok(Ctx { root, cargo })
    }

    fn cargo<I, S>(&self, args: I) -> Command
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
fn run(mut cmd: impl BorrowMut<Command>) -> Result<(), Error> {
    let cmd = cmd.borrow_mut();
    let shown = render(cmd);
    println!("==> {shown}");
    let status = cmd.status().map_err(|e| err(format!("could not start `{shown}`: {e}")))?;
    if status.success() { Ok(()) } else { Err(err(format!("`{shown}` failed ({status})"))) }
}

/// `cmd` as a copy-pastable shell line: env overrides first, absolute
/// program paths shortened to their file name (`$CARGO` shows as `cargo`).
fn render(cmd: &Command) -> String {
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

fn quote(s: &OsStr) -> String {
    let s = s.to_string_lossy();
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_=./:,+@%".contains(c)) {
        s.into_owned()
    } else {
        format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

fn no_args(task: &str, args: &[String]) -> Result<(), Error> {
    match args.first() {
        None => Ok(()),
        Some(a) => Err(err(format!("`{task}` takes no arguments (got `{a}`)"))),
    }
}

// ---------------------------------------------------------------- help

fn task_help(_: &Ctx, _: &[String]) -> Result<(), Error> {
    println!("{}", help_text());
    Ok(())
}

// ---------------------------------------------------------------- test

/// Everything CI checks. All main-workspace steps use debug builds in the
/// default target dir and the same `--all-features` set, so clippy, tests
/// and docs share compiled dependencies.
fn task_test(ctx: &Ctx, args: &[String]) -> Result<(), Error> {
    no_args("test", args)?;
    ensure_xen_dev()?;
    run(ctx.cargo(["fmt", "--all", "--", "--check"]))?;
    run(ctx.cargo(["clippy", "--workspace", "--all-targets", "--all-features", "--", "-D", "warnings"]))?;
    if nextest_available(ctx) {
        // `--no-tests=warn`: like `cargo test`, a workspace (or a crate)
        // without tests yet is not a failure.
        run(ctx.cargo(["nextest", "run", "--workspace", "--all-features", "--no-tests=warn"]))?;
    } else {
        println!("note: cargo-nextest is not installed; using `cargo test`");
        run(ctx.cargo(["test", "--workspace", "--all-features"]))?;
    }
    run(ctx.cargo(["test", "--workspace", "--all-features", "--doc"]))?;
    run(ctx.cargo(["doc", "--workspace", "--no-deps", "--all-features"]).env("RUSTDOCFLAGS", "-D warnings"))?;
    // Plain (uninstrumented) check so the fuzz targets never rot.
    run(ctx.cargo(["check", "--manifest-path", FUZZ_MANIFEST, "--target-dir", FUZZ_TARGET_DIR]))?;
    // The Volatility layer's stream reader: standard library only, about half a second.
    // Volatility itself, readelf and gdb run in `cargo xtask interop`.
    if tool_works(OsStr::new("python3")) {
        run(Command::new("python3").args(["-m", "unittest", "discover", "-s", PYTHON_TEST_DIR]))?;
    } else {
        println!("note: python3 is not installed; skipping the {PYTHON_TEST_DIR} unit tests");
    }
    println!("xtask test: all checks passed");
    Ok(())
}

/// `--all-features` builds sr-xen, whose bindings are generated from Xen's headers: install
/// them (Debian: libxen-dev, libclang-dev for bindgen, pkg-config) when missing, as root.
fn ensure_xen_dev() -> Result<(), Error> {
    let have_headers = Command::new("pkg-config")
        .args(["--exists", "xencontrol", "xenforeignmemory", "xenstore"])
        .status()
        .is_ok_and(|s| s.success())
        && Path::new("/usr/include/xenctrl.h").exists();
    let have_clang = fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().starts_with("llvm-") && e.path().join("lib/libclang.so").exists())
        || env::var_os("LIBCLANG_PATH").is_some();
    if have_headers && have_clang {
        return Ok(());
    }
    let root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    if !root {
        return Err(err("the xen feature (sr-xen) needs Xen's headers and libclang: run as root, or \
             `sudo apt-get install libxen-dev libclang-dev pkg-config`, then `cargo xtask test` again"));
    }
    run(Command::new("apt-get").args(["-o", "DPkg::Lock::Timeout=900", "update"]))?;
    run(Command::new("apt-get")
        .args(["-o", "DPkg::Lock::Timeout=900", "install", "-y", "libxen-dev", "libclang-dev", "pkg-config"])
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

fn nextest_available(ctx: &Ctx) -> bool {
    ctx.cargo(["nextest", "--version"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

// ---------------------------------------------------------------- bench

/// `cargo bench --workspace`, then the CLI-level comparison script if any.
/// Arguments before `--` go to `cargo bench`, the rest to the bench harness.
fn task_bench(ctx: &Ctx, args: &[String]) -> Result<(), Error> {
    let (cargo_args, harness_args) = split_dashdash(args);
    let mut cmd = ctx.cargo(["bench", "--workspace"]);
    if !harness_args.is_empty() && cargo_args.is_empty() {
        // Harness flags such as criterion's `--quick` are rejected by the
        // libtest harness of every lib/bin target ("Unrecognized option"),
        // so pass them only to the `[[bench]]` targets.
        cmd.args(["--bench", "*"]);
    }
    cmd.args(cargo_args);
    if !harness_args.is_empty() {
        cmd.arg("--").args(harness_args);
    }
    let mut ran = vec![render(&cmd)];
    let start = Instant::now();
    run(cmd)?;

    let script = Path::new(CLI_BENCH_SCRIPT);
    if script.is_file() {
        let mut cmd = Command::new("bash");
        cmd.arg(script);
        ran.push(render(&cmd));
        run(cmd)?;
    } else {
        println!("note: no {CLI_BENCH_SCRIPT}; skipping CLI-level benchmarks");
    }

    println!("\nxtask bench: done in {:.0?}; ran:", start.elapsed());
    for r in &ran {
        println!("  {r}");
    }
    let reports = ctx.root.join("target/criterion/report/index.html");
    if reports.is_file() {
        println!("criterion reports: target/criterion/report/index.html");
    }
    Ok(())
}

fn split_dashdash(args: &[String]) -> (&[String], &[String]) {
    match args.iter().position(|a| a == "--") {
        Some(i) => (&args[..i], &args[i + 1..]),
        None => (args, &[]),
    }
}

// ---------------------------------------------------------------- package

/// `cargo publish --dry-run --workspace` (multi-package publishing, stable
/// since cargo 1.90): packages every member not marked `publish = false`,
/// resolves the workspace path dependencies that are not on crates.io yet
/// from a local overlay of the crates just packaged, then builds each `.crate`
/// in dependency order (sr-format, sr-memory, sr-restore, sr-save, xsr).
/// Not part of `test`: it needs the crates.io index and a clean build per
/// crate (about 2 minutes on the 2-core machine).
///
/// Cargo unpacks the packaged crates of its local overlay registry into
/// `$CARGO_HOME/registry/src/-<hash>/NAME-VERSION/` and never unpacks the
/// same name and version again, so a second dry run after a source change
/// would verify against the first run's sources (seen with cargo 1.95: a
/// crate using a new `sr-format` module failed to build). Those directories
/// are a cache of our own crates only (local registries have the `-` prefix;
/// our names are not on crates.io), so they are removed first. For the same
/// reason (a registry crate's build is never considered out of date) the
/// verification builds go to their own target dir, where our crates'
/// fingerprints are removed so they are rebuilt while third-party
/// dependencies stay compiled.
fn task_package(ctx: &Ctx, args: &[String]) -> Result<(), Error> {
    let start = Instant::now();
    let names = workspace_package_names(&ctx.root)?;
    for dir in stale_overlay_sources(&names)? {
        println!("removing the stale unpacked overlay source {}", dir.display());
        fs::remove_dir_all(&dir).map_err(|e| io_err("cannot remove", &dir, e))?;
    }
    let target = env::var_os("CARGO_TARGET_DIR").map_or_else(|| ctx.root.join("target"), PathBuf::from);
    let verify_dir = target.join(PACKAGE_TARGET_DIR);
    let fingerprints = verify_dir.join("debug/.fingerprint");
    if let Ok(entries) = fs::read_dir(&fingerprints) {
        for entry in entries.flatten() {
            if is_fingerprint_of(&entry.file_name().to_string_lossy(), &names) {
                fs::remove_dir_all(entry.path()).map_err(|e| io_err("cannot remove", &entry.path(), e))?;
            }
        }
    }
    run(ctx.cargo(["publish", "--dry-run", "--workspace", "--target-dir"]).arg(&verify_dir).args(args))?;
    println!("xtask package: every publishable crate packaged and built in {:.0?}", start.elapsed());
    Ok(())
}

/// The `[package] name`s of the root manifest and of every `crates/*/Cargo.toml`.
fn workspace_package_names(root: &Path) -> Result<Vec<String>, Error> {
    let mut manifests = vec![root.join("Cargo.toml")];
    let crates = root.join("crates");
    for entry in fs::read_dir(&crates).map_err(|e| io_err("cannot list", &crates, e))? {
        let path = entry.map_err(|e| io_err("cannot list", &crates, e))?.path().join("Cargo.toml");
        if path.is_file() {
            manifests.push(path);
        }
    }
    let mut names = Vec::new();
    for m in manifests {
        let text = fs::read_to_string(&m).map_err(|e| io_err("cannot read", &m, e))?;
        names.extend(package_name_in(&text));
    }
    Ok(names)
}

/// The `name` of a manifest's `[package]` table (a line scanner, as for the fuzz manifest).
fn package_name_in(manifest: &str) -> Option<String> {
    let mut in_package = false;
    for line in manifest.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.starts_with('[') {
            in_package = line == "[package]";
        } else if in_package
            && let Some((key, value)) = line.split_once('=')
            && key.trim() == "name"
        {
            return Some(value.trim().trim_matches(|c| c == '"' || c == '\'').to_string());
        }
    }
    None
}

/// `$CARGO_HOME/registry/src/-*/NAME-VERSION` directories of the given package names.
fn stale_overlay_sources(names: &[String]) -> Result<Vec<PathBuf>, Error> {
    let home = env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    let Some(src) = home.map(|h| h.join("registry/src")) else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    let Ok(registries) = fs::read_dir(&src) else { return Ok(out) };
    for registry in registries.flatten() {
        if !registry.file_name().to_string_lossy().starts_with('-') {
            continue;
        }
        for entry in fs::read_dir(registry.path()).map_err(|e| io_err("cannot list", &registry.path(), e))?.flatten() {
            let dir = entry.file_name().to_string_lossy().into_owned();
            if is_unpacked_crate_of(&dir, names) {
                out.push(entry.path());
            }
        }
    }
    Ok(out)
}

/// Whether `dir` is cargo's `NAME-HASH` fingerprint directory (16 hex digits) of one of `names`.
fn is_fingerprint_of(dir: &str, names: &[String]) -> bool {
    names.iter().any(|n| {
        dir.strip_prefix(n.as_str())
            .and_then(|rest| rest.strip_prefix('-'))
            .is_some_and(|h| h.len() == 16 && h.bytes().all(|b| b.is_ascii_hexdigit()))
    })
}

/// Whether `dir` is `NAME-VERSION` for one of `names` (the version starts with a digit).
fn is_unpacked_crate_of(dir: &str, names: &[String]) -> bool {
    names.iter().any(|n| {
        dir.strip_prefix(n.as_str())
            .and_then(|rest| rest.strip_prefix('-'))
            .is_some_and(|v| v.starts_with(|c: char| c.is_ascii_digit()))
    })
}

// ---------------------------------------------------------------- interop

/// One check's outcome; `Skip` is printed, never silently counted as a pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Pass,
    Fail,
    Skip,
}

#[derive(Debug, Default)]
struct Checks(Vec<(String, Verdict, String)>);

impl Checks {
    fn add(&mut self, name: &str, verdict: Verdict, detail: impl Into<String>) {
        let detail = detail.into();
        let tag = match verdict {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
            Verdict::Skip => "SKIP",
        };
        println!("--- {tag} {name}: {detail}");
        self.0.push((name.to_string(), verdict, detail));
    }

    fn count(&self, v: Verdict) -> usize {
        self.0.iter().filter(|(_, verdict, _)| *verdict == v).count()
    }
}

/// Whether `program --version` runs.
fn tool_works(program: &OsStr) -> bool {
    tool_answers(program, "--version")
}

/// Whether `program ARG` exits 0.
fn tool_answers(program: &OsStr, arg: &str) -> bool {
    Command::new(program)
        .arg(arg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `apt-get install` (through `sudo -n` when not root), waiting for the dpkg
/// lock, since other processes on the machine may hold it.
fn apt_install(packages: &[&str]) -> Result<(), Error> {
    let is_root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    let apt = |args: &[&str]| {
        let mut cmd = if is_root { Command::new("apt-get") } else { Command::new("sudo") };
        if !is_root {
            cmd.args(["-n", "apt-get"]);
        }
        cmd.args(["-o", "DPkg::Lock::Timeout=900"]).args(args).env("DEBIAN_FRONTEND", "noninteractive");
        cmd
    };
    run(apt(&["update"]))?;
    run(apt(&["install", "-y"]).args(packages))
}

fn find_real_save_xz(root: &Path) -> Option<PathBuf> {
    if let Some(p) = env::var_os("XSR_REAL_SAVE_XZ") {
        return Some(PathBuf::from(p));
    }
    root.ancestors().map(|d| d.join(REAL_SAVE_XZ)).find(|p| p.is_file())
}

/// Decompress `xz` into `out` (via a temporary name) with `xz -dc`, or
/// Python's `lzma` module where the `xz` tool is missing.
fn decompress_xz(xz: &Path, out: &Path) -> Result<(), Error> {
    let partial = out.with_extension("partial");
    let file = fs::File::create(&partial).map_err(|e| io_err("cannot create", &partial, e))?;
    let mut cmd = if tool_works(OsStr::new("xz")) {
        let mut c = Command::new("xz");
        c.arg("-dc").arg(xz);
        c
    } else {
        let mut c = Command::new("python3");
        c.args(["-c", "import lzma,shutil,sys; shutil.copyfileobj(lzma.open(sys.argv[1]), sys.stdout.buffer)"]).arg(xz);
        c
    };
    run(cmd.stdout(file))?;
    fs::rename(&partial, out).map_err(|e| io_err("cannot rename", &partial, e))
}

/// Runs `python3 contrib/tests/interop_checks.py ARGS`: exit 0 pass, 3 skip, other fail;
/// its last output line is the verdict's detail.
fn python_check(checks: &mut Checks, name: &str, args: &[&OsStr]) {
    let mut cmd = Command::new("python3");
    cmd.arg(INTEROP_CHECKS).args(args);
    println!("==> {}", render(&cmd));
    match cmd.stderr(Stdio::inherit()).output() {
        Err(e) => checks.add(name, Verdict::Fail, format!("could not start python3: {e}")),
        Ok(out) => {
            let text = String::from_utf8_lossy(&out.stdout);
            print!("{text}");
            let last = text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("(no output)");
            let detail = last.split_once(": ").map_or(last, |(_, d)| d).to_string();
            let verdict = match out.status.code() {
                Some(0) => Verdict::Pass,
                Some(3) => Verdict::Skip,
                _ => Verdict::Fail,
            };
            checks.add(name, verdict, detail);
        }
    }
}

/// Volatility 3 from PyPI in a venv under target/; `Err` says why it is unavailable.
fn ensure_volatility(venv: &Path) -> Result<PathBuf, String> {
    let vol = venv.join("bin/vol");
    // `vol` has no --version.
    if tool_answers(vol.as_os_str(), "-h") {
        return Ok(vol);
    }
    let make_venv = || run(Command::new("python3").args(["-m", "venv"]).arg(venv));
    if make_venv().is_err() {
        // Debian splits `venv` out of python3.
        apt_install(&["python3-venv"]).map_err(|e| format!("python3-venv could not be installed: {e}"))?;
        make_venv().map_err(|e| e.to_string())?;
    }
    run(Command::new(venv.join("bin/python")).args([
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "--quiet",
        VOLATILITY3_REQUIREMENT,
    ]))
    .map_err(|e| format!("pip could not install {VOLATILITY3_REQUIREMENT}: {e}"))?;
    if tool_answers(vol.as_os_str(), "-h") { Ok(vol) } else { Err(format!("{} does not run", vol.display())) }
}

/// The formats `xsr extract --format` accepts in this build (from its help).
fn extract_formats(xsr: &Path) -> Result<Vec<String>, Error> {
    let out = Command::new(xsr)
        .args(["extract", "--help"])
        .output()
        .map_err(|e| err(format!("could not run {} extract --help: {e}", xsr.display())))?;
    Ok(formats_in_help(&String::from_utf8_lossy(&out.stdout)))
}

/// The `- NAME: help` lines clap prints under "Possible values".
fn formats_in_help(help: &str) -> Vec<String> {
    help.lines()
        .filter_map(|l| l.trim().strip_prefix("- "))
        .filter_map(|l| l.split_once(':').map(|(name, _)| name.trim().to_string()))
        .collect()
}

/// The real-tool checks of issue 8 on the real `xl save` file: the
/// Volatility 3 layer in contrib/volatility3 on the unconverted file, then
/// `xsr extract` ELF and LiME outputs in Volatility 3, readelf and gdb.
/// Missing tools are installed; a check whose feature or tool is absent is
/// a visible SKIP (a failure with `--strict`).
fn task_interop(ctx: &Ctx, args: &[String]) -> Result<(), Error> {
    let strict = match args {
        [] => false,
        [a] if a == "--strict" => true,
        [a, ..] => return Err(err(format!("`interop` takes only `--strict` (got `{a}`)"))),
    };
    let start = Instant::now();
    let target = env::var_os("CARGO_TARGET_DIR").map_or_else(|| ctx.root.join("target"), PathBuf::from);
    let work = target.join(INTEROP_DIR);
    fs::create_dir_all(&work).map_err(|e| io_err("cannot create", &work, e))?;
    let mut checks = Checks::default();

    let xz = find_real_save_xz(&ctx.root)
        .ok_or_else(|| err(format!("the real test image {REAL_SAVE_XZ} is not in the repo root or above it")))?;
    let save = work.join("tiny32-1vcpu.save");
    decompress_xz(&xz, &save)?;

    let python = tool_works(OsStr::new("python3"));
    if python {
        let mut cmd = Command::new("python3");
        cmd.args(["-m", "unittest", "discover", "-s", PYTHON_TEST_DIR]);
        let ok = run(cmd).is_ok();
        checks.add(
            "python reader unit tests",
            if ok { Verdict::Pass } else { Verdict::Fail },
            format!("python3 -m unittest discover -s {PYTHON_TEST_DIR}"),
        );
    }
    let vol = if python { ensure_volatility(&work.join("venv")) } else { Err("python3 is not installed".into()) };

    if !(tool_works(OsStr::new("readelf")) && tool_works(OsStr::new("gdb")))
        && let Err(e) = apt_install(&["binutils", "gdb"])
    {
        println!("note: binutils/gdb could not be installed: {e}");
    }
    let readelf = tool_works(OsStr::new("readelf"));
    let gdb = tool_works(OsStr::new("gdb"));

    run(ctx.cargo(["build", "--release", "--bin", "xsr"]))?;
    let xsr = target.join("release/xsr");
    let formats = extract_formats(&xsr)?;
    let cache = work.join("vol-cache");
    let vol_check = |checks: &mut Checks, name: &str, image: &Path, plugins: bool| match &vol {
        Err(why) => checks.add(name, Verdict::Skip, format!("Volatility 3 unavailable: {why}")),
        Ok(vol) => {
            let o = OsStr::new;
            let mut a = vec![o("vol-banners"), o("--vol"), vol.as_os_str(), o("--cache-path"), cache.as_os_str()];
            if plugins {
                a.extend([o("--plugin-dir"), o(VOLATILITY_PLUGIN_DIR)]);
            }
            a.extend([o("--image"), image.as_os_str(), o("--save"), save.as_os_str()]);
            python_check(checks, name, &a);
        }
    };

    vol_check(&mut checks, "vol banners.Banners on the xl save file (-p contrib/volatility3)", &save, true);
    if python {
        // The same libxl stream behind libvirt's header, as `virsh save` writes it.
        let wrapped = work.join("tiny32-1vcpu.virsh.save");
        let o = OsStr::new;
        python_check(
            &mut checks,
            "virsh save file made from the real image",
            &[o("virsh-wrap"), o("--xl-save"), save.as_os_str(), o("--out"), wrapped.as_os_str()],
        );
        if wrapped.is_file() {
            vol_check(
                &mut checks,
                "vol banners.Banners on the virsh save file (-p contrib/volatility3)",
                &wrapped,
                true,
            );
        }
    }

    for format in ["elf", "lime"] {
        let out = work.join(format!("tiny32-1vcpu.{format}"));
        let name = format!("xsr extract --format {format}");
        if !formats.iter().any(|f| f == format) {
            let why = format!("this xsr build has no `extract --format {format}` (formats: {})", formats.join(", "));
            checks.add(&name, Verdict::Skip, &why);
            continue;
        }
        let mut cmd = Command::new(&xsr);
        cmd.args(["extract", "--format", format, "--out"]).arg(&out).arg(&save);
        match run(cmd) {
            Ok(()) => {
                checks.add(&name, Verdict::Pass, out.strip_prefix(&ctx.root).unwrap_or(&out).display().to_string())
            }
            Err(e) => {
                checks.add(&name, Verdict::Fail, e.to_string());
                continue;
            }
        }
        let what = if format == "elf" { "ELF core" } else { "LiME file" };
        vol_check(&mut checks, &format!("vol banners.Banners on the {what}"), &out, false);
        if format != "elf" {
            continue;
        }
        for (name, tool, present) in [("readelf-notes", "readelf", readelf), ("gdb-threads", "gdb", gdb)] {
            let label = if tool == "gdb" {
                "gdb -c on the ELF core".to_string()
            } else {
                "readelf -n on the ELF core".to_string()
            };
            if !present {
                checks.add(&label, Verdict::Skip, format!("{tool} is not installed and could not be installed"));
                continue;
            }
            if !python {
                checks.add(&label, Verdict::Skip, "python3 (which runs the check) is not installed");
                continue;
            }
            python_check(
                &mut checks,
                &label,
                &[OsStr::new(name), OsStr::new("--core"), out.as_os_str(), OsStr::new("--save"), save.as_os_str()],
            );
        }
    }

    let (pass, fail, skip) = (checks.count(Verdict::Pass), checks.count(Verdict::Fail), checks.count(Verdict::Skip));
    println!("\nxtask interop: {pass} passed, {fail} failed, {skip} skipped in {:.0?}", start.elapsed());
    for (name, verdict, detail) in &checks.0 {
        println!("  {:<4} {name}: {detail}", format!("{verdict:?}").to_uppercase());
    }
    if fail > 0 {
        Err(err(format!("{fail} interop check(s) failed; see above")))
    } else if strict && skip > 0 {
        Err(err(format!("--strict: {skip} interop check(s) skipped")))
    } else {
        Ok(())
    }
}

// ---------------------------------------------------------------- fuzz

#[derive(Debug, PartialEq, Eq)]
struct FuzzArgs {
    targets: Vec<String>,
    seconds: u64,
    jobs: u32,
    list: bool,
    libfuzzer_args: Vec<String>,
}

fn parse_fuzz_args(args: &[String]) -> Result<FuzzArgs, Error> {
    let (ours, libfuzzer_args) = split_dashdash(args);
    let mut out = FuzzArgs {
        targets: Vec::new(),
        seconds: DEFAULT_FUZZ_SECONDS,
        jobs: 1,
        list: false,
        libfuzzer_args: libfuzzer_args.to_vec(),
    };
    let mut it = ours.iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        let mut value = |name: &str| -> Result<String, Error> {
            inline.clone().or_else(|| it.next().cloned()).ok_or_else(|| err(format!("`{name}` needs a value")))
        };
        match flag {
            "--list" => out.list = true,
            "--seconds" | "-s" => {
                let v = value(flag)?;
                out.seconds = v
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| err(format!("`--seconds {v}`: expected a positive integer")))?;
            }
            "--jobs" | "-j" => {
                let v = value(flag)?;
                out.jobs = v
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| err(format!("`--jobs {v}`: expected a positive integer")))?;
            }
            f if f.starts_with('-') => {
                return Err(err(format!("unknown fuzz option `{f}` (libFuzzer options go after `--`)\n\n{USAGE}")));
            }
            _ => out.targets.push(arg.clone()),
        }
    }
    Ok(out)
}

/// The `[[bin]]` names in `fuzz/Cargo.toml`, in file order. A line scanner
/// is enough for the manifest we write ourselves, and keeps xtask std-only.
fn fuzz_targets_in(manifest: &str) -> Vec<String> {
    let mut targets = Vec::new();
    let mut in_bin = false;
    for line in manifest.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.starts_with('[') {
            in_bin = line == "[[bin]]";
        } else if in_bin
            && let Some((key, value)) = line.split_once('=')
            && key.trim() == "name"
        {
            let name = value.trim().trim_matches(|c| c == '"' || c == '\'');
            targets.push(name.to_string());
        }
    }
    targets
}

fn fuzz_targets(ctx: &Ctx) -> Result<Vec<String>, Error> {
    let path = ctx.root.join(FUZZ_MANIFEST);
    let manifest = fs::read_to_string(&path).map_err(|e| io_err("cannot read", &path, e))?;
    let targets = fuzz_targets_in(&manifest);
    if targets.is_empty() {
        return Err(err(format!("no [[bin]] targets in {FUZZ_MANIFEST}")));
    }
    Ok(targets)
}

fn host_triple() -> Result<String, Error> {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out = Command::new(&rustc)
        .arg("-vV")
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| err(format!("could not run `rustc -vV`: {e}")))?;
    if !out.status.success() {
        return Err(err(format!("`rustc -vV` failed ({})", out.status)));
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(|h| h.trim().to_string())
        .ok_or_else(|| err("`rustc -vV` printed no `host:` line"))
}

/// Stable-toolchain libFuzzer: instrumented release build of fuzz/, then
/// each selected target runs on a scratch copy of its committed seeds.
fn task_fuzz(ctx: &Ctx, args: &[String]) -> Result<(), Error> {
    let opts = parse_fuzz_args(args)?;
    let all = fuzz_targets(ctx)?;
    if opts.list {
        for t in &all {
            println!("{t}");
        }
        return Ok(());
    }
    let selected = if opts.targets.is_empty() {
        all.clone()
    } else {
        for t in &opts.targets {
            if !all.contains(t) {
                return Err(err(format!("unknown fuzz target `{t}`; targets in {FUZZ_MANIFEST}: {}", all.join(", "))));
            }
        }
        opts.targets.clone()
    };

    let triple = host_triple()?;
    // The explicit --target keeps RUSTFLAGS off build scripts and proc
    // macros (they would fail to link against the sancov symbols).
    run(ctx
        .cargo([
            "build",
            "--release",
            "--manifest-path",
            FUZZ_MANIFEST,
            "--target-dir",
            FUZZ_TARGET_DIR,
            "--target",
            &triple,
            "--bins",
        ])
        .env("RUSTFLAGS", FUZZ_RUSTFLAGS)
        .env_remove("CARGO_ENCODED_RUSTFLAGS"))?;

    let mut results = Vec::new();
    for target in &selected {
        let outcome = fuzz_one(target, &triple, &opts)?;
        results.push((target.as_str(), outcome));
    }

    println!("\nxtask fuzz: summary ({}s per target)", opts.seconds);
    let mut failed = 0;
    for (target, outcome) in &results {
        match outcome {
            Outcome::Clean => println!("  {target}: ok"),
            Outcome::Failed { artifacts, status } => {
                failed += 1;
                println!("  {target}: FAILED ({status})");
                for a in artifacts {
                    println!("    {}", a.display());
                }
            }
        }
    }
    if failed == 0 {
        println!("xtask fuzz: no crashes");
        Ok(())
    } else {
        Err(err(format!("{failed} of {} fuzz target(s) found a problem; see above", results.len())))
    }
}

#[derive(Debug)]
enum Outcome {
    Clean,
    Failed { artifacts: Vec<PathBuf>, status: String },
}

fn fuzz_one(target: &str, triple: &str, opts: &FuzzArgs) -> Result<Outcome, Error> {
    let seeds = PathBuf::from(format!("tests/corpus/{target}"));
    let work = PathBuf::from(format!("fuzz/corpus-work/{target}"));
    let artifacts = PathBuf::from(format!("fuzz/artifacts/{target}"));
    fs::create_dir_all(&work).map_err(|e| io_err("cannot create", &work, e))?;
    fs::create_dir_all(&artifacts).map_err(|e| io_err("cannot create", &artifacts, e))?;

    println!();
    if seeds.is_dir() {
        let n = copy_tree(&seeds, &work)?;
        println!("{target}: copied {n} seed input(s) from {}/ into {}/", seeds.display(), work.display());
    } else {
        println!("{target}: note: no seed corpus at {}/; starting from {}/ as it is", seeds.display(), work.display());
    }

    let before = list_files(&artifacts)?;
    let binary = PathBuf::from(format!("{FUZZ_TARGET_DIR}/{triple}/release/{target}"));
    if !binary.is_file() {
        return Err(err(format!("fuzz binary {} is missing after the build", binary.display())));
    }
    let mut cmd = Command::new(&binary);
    cmd.arg(&work)
        .arg(format!("-max_total_time={}", opts.seconds))
        .arg(format!("-artifact_prefix={}/", artifacts.display()));
    if opts.jobs > 1 {
        // Same as cargo-fuzz's --jobs: libFuzzer's fork mode, output on stdout.
        cmd.arg(format!("-fork={}", opts.jobs));
    }
    cmd.args(&opts.libfuzzer_args);
    let shown = render(&cmd);
    println!("==> {shown}");
    let status = cmd.status().map_err(|e| err(format!("could not start `{shown}`: {e}")))?;

    let new: Vec<PathBuf> = list_files(&artifacts)?.difference(&before).cloned().collect();
    if status.success() && new.is_empty() {
        return Ok(Outcome::Clean);
    }
    println!();
    if new.is_empty() {
        println!("{target}: libFuzzer failed ({status}) without writing an artifact");
    }
    for a in &new {
        println!("{target}: crash artifact: {}", a.display());
        println!("  copy it into {}/ so the ordinary tests replay it:", seeds.display());
        println!("    mkdir -p {0} && cp {1} {0}/", seeds.display(), a.display());
        println!("  reproduce: {} {}", binary.display(), a.display());
    }
    Ok(Outcome::Failed { artifacts: new, status: status.to_string() })
}

/// Regular files directly in `dir` (missing dir = empty).
fn list_files(dir: &Path) -> Result<BTreeSet<PathBuf>, Error> {
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

/// Copy the files under `from` into `to` (recursively), overwriting same-named
/// files; returns how many files were copied.
fn copy_tree(from: &Path, to: &Path) -> Result<usize, Error> {
    fs::create_dir_all(to).map_err(|e| io_err("cannot create", to, e))?;
    let mut n = 0;
    for entry in fs::read_dir(from).map_err(|e| io_err("cannot list", from, e))? {
        let entry = entry.map_err(|e| io_err("cannot list", from, e))?;
        let src = entry.path();
        let dst = to.join(entry.file_name());
        let ty = entry.file_type().map_err(|e| io_err("cannot stat", &src, e))?;
        if ty.is_dir() {
            n += copy_tree(&src, &dst)?;
        } else if src.is_file() {
            fs::copy(&src, &dst).map_err(|e| io_err("cannot copy", &src, e))?;
            n += 1;
        }
    }
    Ok(n)
}

// ---------------------------------------------------------------- realxen

/// The job scripts, their guest (`# realxen-guest: MEM:VCPUS[:DIRTY]` and `# realxen-guest-type:
/// pv|pvh|hvm` in the script) and the host-side checks; `common.sh` is copied in with each job.
const REALXEN_DIR: &str = "tests/realxen";

/// `realxen.sh`: `$REALXEN_SH`, else `shared/realxen/realxen.sh` beside the repo or an ancestor.
fn realxen_script(ctx: &Ctx) -> Result<PathBuf, Error> {
    if let Some(p) = env::var_os("REALXEN_SH") {
        return Ok(PathBuf::from(p));
    }
    ctx.root
        .ancestors()
        .map(|a| a.join("shared/realxen/realxen.sh"))
        .find(|p| p.exists())
        .ok_or_else(|| err("realxen.sh not found: set REALXEN_SH (see shared/realxen/README.md)"))
}

/// `cargo xtask realxen [--runs N] [JOB...]`: builds `target/release/xsr --features xen` and
/// runs every job of tests/realxen (or the named ones) N times (default 2) in a real Xen,
/// one boot at a time, then checks the dumps and save files it brought back and prints the
/// figures. `cargo xtask realxen compare A B`: only the host-side comparison of two save files;
/// `cargo xtask realxen check JOB OUT_DIR`: only the host-side checks of an earlier run's outputs.
fn task_realxen(ctx: &Ctx, args: &[String]) -> Result<(), Error> {
    match args.split_first().map(|(c, f)| (c.as_str(), f)) {
        Some(("compare", files)) => return realxen_compare(ctx, files),
        Some(("check", [job, out_dir])) => {
            // The host-side checks of an earlier run's outputs, without booting Xen again.
            run(ctx.cargo(["build", "--release", "--features", "xen"]))?;
            let lines = host_checks(job.trim_end_matches(".sh"), Path::new(out_dir))?;
            lines.iter().for_each(|l| println!("    CHECK-OK {l}"));
            return Ok(());
        }
        _ => {}
    }
    let mut runs = 2u32;
    let mut only = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--runs" => {
                runs = it.next().and_then(|v| v.parse().ok()).ok_or_else(|| err("--runs needs a number"))?;
            }
            name => only.push(name.trim_end_matches(".sh").to_string()),
        }
    }
    let script = realxen_script(ctx)?;
    run(ctx.cargo(["build", "--release", "--features", "xen"]))?;
    let mut jobs: Vec<PathBuf> = list_files(Path::new(REALXEN_DIR))?
        .into_iter()
        .filter(|p| p.extension() == Some(OsStr::new("sh")) && p.file_name() != Some(OsStr::new("common.sh")))
        .filter(|p| only.is_empty() || only.iter().any(|o| p.file_stem() == Some(OsStr::new(o))))
        .collect();
    jobs.sort();
    if jobs.is_empty() {
        return Err(err(format!("no jobs in {REALXEN_DIR}")));
    }
    let mut failures = Vec::new();
    let mut figures: Vec<(String, String)> = Vec::new();
    for round in 1..=runs {
        for job in &jobs {
            let name = job.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            let text = fs::read_to_string(job).map_err(|e| io_err("cannot read", job, e))?;
            let guest = text.lines().find_map(|l| l.strip_prefix("# realxen-guest: ")).unwrap_or("32:1").trim();
            // `# realxen-guest-type: pv|pvh|hvm` (default pv) picks the standard guest's type.
            let gtype = text.lines().find_map(|l| l.strip_prefix("# realxen-guest-type: ")).unwrap_or("pv").trim();
            println!("==> realxen job {name} (round {round}/{runs}, guest {guest} {gtype})");
            let started = Instant::now();
            let out = Command::new(&script)
                .args([
                    "job".as_ref(),
                    job.as_os_str(),
                    "target/release/xsr".as_ref(),
                    format!("{REALXEN_DIR}/common.sh").as_ref(),
                ])
                .env("REALXEN_GUEST", guest)
                .env("REALXEN_GUEST_TYPE", gtype)
                .stderr(Stdio::inherit())
                .output()
                .map_err(|e| err(format!("cannot run {}: {e}", script.display())))?;
            let stdout = String::from_utf8_lossy(&out.stdout);
            let out_dir = stdout.lines().last().map(PathBuf::from).unwrap_or_default();
            let log = fs::read_to_string(out_dir.join("job.log")).unwrap_or_default();
            let mut ok = out.status.success();
            for line in log.lines() {
                if let Some(i) = line.find("CHECK-") {
                    println!("    {}", &line[i..]);
                    ok &= !line[i..].starts_with("CHECK-FAIL");
                }
                if let Some(i) = line.find("FIGURE ") {
                    let mut f = line[i + 7..].splitn(2, ' ');
                    let (k, v) = (f.next().unwrap_or(""), f.next().unwrap_or("").trim());
                    println!("    figure {name}/{k} = {v}");
                    figures.push((format!("{name}/{k} (round {round})"), v.to_string()));
                }
            }
            match host_checks(&name, &out_dir) {
                Ok(lines) => lines.iter().for_each(|l| println!("    CHECK-OK {l}")),
                Err(e) => {
                    println!("    CHECK-FAIL {e}");
                    ok = false;
                }
            }
            println!(
                "    {} {name} in {:.0} s ({})",
                if ok { "PASS" } else { "FAIL" },
                started.elapsed().as_secs_f64(),
                out_dir.display()
            );
            if !ok {
                failures.push(format!("{name} (round {round})"));
            }
        }
    }
    println!("==> realxen figures");
    for (k, v) in &figures {
        println!("    {k}: {v}");
    }
    print_ratios(&figures);
    if failures.is_empty() {
        println!("xtask realxen: {} job run(s) passed", jobs.len() as u32 * runs);
        Ok(())
    } else {
        Err(err(format!("realxen jobs failed: {}", failures.join(", "))))
    }
}

/// The ratios the jobs measured (figures named `ratio-*`), one line each over the rounds:
/// every round's value, then the median.
fn print_ratios(figures: &[(String, String)]) {
    let mut ratios: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for (k, v) in figures {
        let name = k.split(" (round").next().unwrap_or(k);
        if name.rsplit('/').next().is_some_and(|n| n.starts_with("ratio-")) {
            ratios.entry(name).or_default().extend(v.parse::<f64>().ok());
        }
    }
    if ratios.is_empty() {
        return;
    }
    println!("==> realxen ratios (A-vs-B = A / B; each round, then the median)");
    for (name, mut vals) in ratios {
        let each: Vec<String> = vals.iter().map(|v| format!("{v:.2}")).collect();
        vals.sort_by(f64::total_cmp);
        let median = vals.get(vals.len().saturating_sub(1) / 2).map_or("-".to_string(), |m| format!("{m:.2}"));
        println!("    {name}: {} -> median {median}", each.join(", "));
    }
}

/// The host-side checks of a job's outputs; a line per check passed.
fn host_checks(job: &str, out: &Path) -> Result<Vec<String>, Error> {
    if let Some(checked) = save_checks(job, out) {
        return checked;
    }
    let mut done = Vec::new();
    if job != "dump" {
        return Ok(done);
    }
    let read = |name: &str| fs::read(out.join(name)).map_err(|e| io_err("cannot read", &out.join(name), e));
    let core = read("xl.core")?;
    let reference = pattern_pages(dumpcore_pages(&core)?);
    if reference.iter().any(Vec::is_empty) {
        return Err(err("xl dump-core itself lacks pattern pages: the guest is not the standard one"));
    }
    done.push(format!("xl.core: all {PATTERN_PAGES} pattern pages (reference addresses)"));
    let raw = read("xsr.raw")?;
    let raw_pages = raw.chunks_exact(4096).enumerate().map(|(pfn, p)| (pfn as u64, p));
    done.push(compare_pattern("xsr.raw", &pattern_pages(raw_pages), &reference)?);
    for elf in ["xsr-live.elf", "xsr.elf"] {
        let bytes = read(elf)?;
        done.push(compare_pattern(elf, &pattern_pages(elf_load_pages(&bytes)?.into_iter()), &reference)?);
        let path = out.join(elf);
        let headers = Command::new("readelf").arg("-lW").arg(&path).output();
        match headers {
            Ok(o) if o.status.success() => {
                let loads =
                    String::from_utf8_lossy(&o.stdout).lines().filter(|l| l.trim_start().starts_with("LOAD")).count();
                if loads == 0 {
                    return Err(err(format!("readelf sees no PT_LOAD in {elf}")));
                }
                done.push(format!("readelf -l {elf}: {loads} PT_LOAD segments"));
            }
            Ok(o) => return Err(err(format!("readelf -l {elf} failed: {}", String::from_utf8_lossy(&o.stderr)))),
            Err(_) => done.push("readelf not installed: skipped".into()),
        }
        if let Ok(o) = Command::new("readelf").arg("-nW").arg(&path).output() {
            let prstatus = String::from_utf8_lossy(&o.stdout).matches("NT_PRSTATUS").count();
            if prstatus == 0 {
                return Err(err(format!("readelf -n {elf}: no NT_PRSTATUS note (no vcpu registers)")));
            }
            done.push(format!("readelf -n {elf}: {prstatus} NT_PRSTATUS notes (one per vcpu)"));
        }
        let gdb = Command::new("gdb").args(["--batch", "-nx", "-ex", "info threads", "-c"]).arg(&path).output();
        if let Ok(o) = gdb {
            let text = String::from_utf8_lossy(&o.stdout);
            // `info threads` rows: "* 1    LWP 1   0x... in ?? ()" (current) or "  2    LWP 2 ...".
            let threads = text
                .lines()
                .filter(|l| l.contains("LWP") && l.trim_start().starts_with(|c: char| c == '*' || c.is_ascii_digit()))
                .count();
            if threads == 0 {
                return Err(err(format!("gdb sees no thread in {elf}: {text}")));
            }
            let rip = text.lines().find(|l| l.trim_start().starts_with('*')).unwrap_or("").trim().to_string();
            done.push(format!("gdb {elf}: {threads} thread(s): {rip}"));
        }
    }
    let lime = read("xsr.lime")?;
    done.push(compare_pattern("xsr.lime", &pattern_pages(lime_pages(&lime)?.into_iter()), &reference)?);
    Ok(done)
}

/// Pages of the standard realxen guest's pattern file.
const PATTERN_PAGES: usize = 1024;

/// For each pattern page number N, the pfns holding an exact copy of page N
/// (`REALXEN-PAGE-NNNNNN-` repeated over 4096 bytes, as the guest's init writes it).
fn pattern_pages<'a>(pages: impl Iterator<Item = (u64, &'a [u8])>) -> Vec<Vec<u64>> {
    let mut found = vec![Vec::new(); PATTERN_PAGES];
    for (pfn, page) in pages {
        let Some(n) = page
            .strip_prefix(b"REALXEN-PAGE-")
            .and_then(|r| std::str::from_utf8(r.get(..6)?).ok()?.parse::<usize>().ok())
        else {
            continue;
        };
        if n >= PATTERN_PAGES {
            continue;
        }
        let tag = format!("REALXEN-PAGE-{n:06}-");
        if page.iter().zip(tag.bytes().cycle()).all(|(a, b)| *a == b) && page.len() == 4096 {
            found[n].push(pfn);
        }
    }
    found
}

/// Every pattern page is in `dump`, and at a pfn where `xl dump-core` has the same page.
fn compare_pattern(name: &str, dump: &[Vec<u64>], reference: &[Vec<u64>]) -> Result<String, Error> {
    let missing: Vec<usize> = (0..PATTERN_PAGES).filter(|&n| dump[n].is_empty()).collect();
    if !missing.is_empty() {
        return Err(err(format!(
            "{name}: {} pattern pages missing (first: {:?})",
            missing.len(),
            &missing[..missing.len().min(8)]
        )));
    }
    let misplaced: Vec<usize> =
        (0..PATTERN_PAGES).filter(|&n| !dump[n].iter().any(|p| reference[n].contains(p))).collect();
    if !misplaced.is_empty() {
        return Err(err(format!(
            "{name}: {} pattern pages at pfns where xl dump-core has something else (page {} at {:x?}, dump-core {:x?})",
            misplaced.len(),
            misplaced[0],
            dump[misplaced[0]],
            reference[misplaced[0]]
        )));
    }
    Ok(format!("{name}: all {PATTERN_PAGES} pattern pages, each at a pfn where xl dump-core has it"))
}

fn le_u64(b: &[u8], at: usize) -> Result<u64, Error> {
    b.get(at..at + 8).map(|s| u64::from_le_bytes(s.try_into().unwrap_or([0; 8]))).ok_or_else(|| err("ELF truncated"))
}

fn le_u16(b: &[u8], at: usize) -> Result<usize, Error> {
    b.get(at..at + 2).map(|s| usize::from(u16::from_le_bytes([s[0], s[1]]))).ok_or_else(|| err("ELF truncated"))
}

/// The (pfn, page) pairs of an `xl dump-core` file: `.xen_pages` in the order of `.xen_p2m`
/// (PV: {pfn, gmfn} pairs) or `.xen_pfn` (HVM: pfns) (Xen's `tools/libs/ctrl/xc_core.h`).
fn dumpcore_pages(elf: &[u8]) -> Result<impl Iterator<Item = (u64, &[u8])>, Error> {
    let shoff = le_u64(elf, 0x28)? as usize;
    let (shentsize, shnum, shstrndx) = (le_u16(elf, 0x3a)?, le_u16(elf, 0x3c)?, le_u16(elf, 0x3e)?);
    let section = |i: usize| -> Result<(u32, usize, usize), Error> {
        let at = shoff + i * shentsize;
        let name = elf
            .get(at..at + 4)
            .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
            .ok_or_else(|| err("ELF truncated"))?;
        Ok((name, le_u64(elf, at + 0x18)? as usize, le_u64(elf, at + 0x20)? as usize))
    };
    let (_, stroff, _) = section(shstrndx)?;
    let mut pages = None;
    let mut pfns: Option<Vec<u64>> = None;
    for i in 0..shnum {
        let (name, off, size) = section(i)?;
        let name = elf.get(stroff + name as usize..).and_then(|s| s.split(|&b| b == 0).next()).unwrap_or_default();
        let body = elf.get(off..off + size).ok_or_else(|| err("dump-core section beyond the file"))?;
        match name {
            b".xen_pages" => pages = Some(body),
            b".xen_p2m" => pfns = Some(body.chunks_exact(16).map(|e| le_u64(e, 0).unwrap_or(u64::MAX)).collect()),
            b".xen_pfn" => pfns = Some(body.chunks_exact(8).map(|e| le_u64(e, 0).unwrap_or(u64::MAX)).collect()),
            _ => {}
        }
    }
    let (pages, pfns) =
        pages.zip(pfns).ok_or_else(|| err("xl dump-core file without .xen_pages and .xen_p2m/.xen_pfn"))?;
    Ok(pfns.into_iter().zip(pages.chunks_exact(4096)))
}

/// The (pfn, page) pairs of a LiME file: 32-byte range headers ("EMiL", version 1, start and
/// inclusive end address) each followed by the range's bytes.
fn lime_pages(lime: &[u8]) -> Result<Vec<(u64, &[u8])>, Error> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < lime.len() {
        if lime.get(at..at + 4) != Some(&0x4C69_4D45u32.to_le_bytes()[..]) {
            return Err(err(format!("LiME: no range header at byte {at}")));
        }
        let (start, end) = (le_u64(lime, at + 8)?, le_u64(lime, at + 16)?);
        let len = end.checked_sub(start).map(|l| l + 1).ok_or_else(|| err("LiME: end before start"))? as usize;
        let body = lime.get(at + 32..at + 32 + len).ok_or_else(|| err("LiME: range beyond the file"))?;
        out.extend(body.chunks_exact(4096).enumerate().map(|(k, p)| ((start >> 12) + k as u64, p)));
        at += 32 + len;
    }
    Ok(out)
}

/// The (pfn, page) pairs of an ELF core's PT_LOAD segments (p_paddr = guest-physical address).
fn elf_load_pages(elf: &[u8]) -> Result<Vec<(u64, &[u8])>, Error> {
    let phoff = le_u64(elf, 0x20)? as usize;
    let (phentsize, mut phnum) = (le_u16(elf, 0x36)?, le_u16(elf, 0x38)?);
    if phnum == 0xffff {
        // PN_XNUM: the real count is section 0's sh_info.
        let shoff = le_u64(elf, 0x28)? as usize;
        phnum = elf.get(shoff + 44..shoff + 48).map_or(0, |s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as usize);
    }
    let mut out = Vec::new();
    for i in 0..phnum {
        let at = phoff + i * phentsize;
        if elf.get(at..at + 4) != Some(&1u32.to_le_bytes()[..]) {
            continue;
        }
        let (off, paddr, filesz) =
            (le_u64(elf, at + 8)? as usize, le_u64(elf, at + 0x18)?, le_u64(elf, at + 0x20)? as usize);
        let body = elf.get(off..off + filesz).ok_or_else(|| err("PT_LOAD beyond the file"))?;
        out.extend(body.chunks_exact(4096).enumerate().map(|(k, p)| ((paddr >> 12) + k as u64, p)));
    }
    Ok(out)
}

// ------------------------------------------------ realxen: xsr save files against xl save's

/// The save files each job brings back, as (file, reference) pairs: the first is compared with
/// the second, an `xl save -c` of the same guest in the same boot. `save`'s first pair is the
/// control: two `xl save -c` files, showing what two saves of one guest share.
const SAVE_PAIRS: &[(&str, &[(&str, &str)])] = &[
    ("save", &[("xl2.save", "xl.save"), ("xsr-keep.save", "xl.save"), ("xsr.save", "xl.save")]),
    ("save-live", &[("xsr-plain.save", "xl.save"), ("xsr-live1.save", "xl.save"), ("xsr-live2.save", "xl.save")]),
    ("save-2vcpu", &[("xsr.save", "xl.save")]),
    ("migrate", &[("recv.save", "xl.save")]),
];

/// Page-table pages (types L1TAB..L4TAB, pinned or not) present in both files whose contents must
/// be identical, at least: saves seconds apart of one idle-ish guest share most page tables, and
/// they compare equal only when both savers normalised every entry from mfn to pfn. Two `xl save
/// -c` of the standard guest, seconds apart, share 91-96% (the realxen samples: 32:1, 32:2 and
/// 32:1:256); tables left with mfns (or pfns of another guest) share next to none. Saves of two
/// guests booted alike still share 88-90%, so this check is about normalisation, not identity.
const MIN_SAME_PAGE_TABLES: f64 = 0.75;

/// A 64-bit PV `vcpu_guest_context` (Xen's `public/arch-x86/xen.h`, x86_64): its size and the
/// offset of `ctrlreg[0]` (after fpu_ctxt 512, flags 8, user_regs 200, trap_ctxt 4096, ldt
/// base and entries 16, gdt_frames 128, gdt_ents, kernel_ss and kernel_sp 24).
const PV64_VCPU_CONTEXT: usize = 5168;
const PV64_CTRLREG: usize = 4984;

/// How far the count of one page type may differ between two saves of one running guest: the
/// guest's page tables come and go a little between them.
fn type_count_tolerance(a: usize, b: usize) -> usize {
    4.max(a.max(b) / 10)
}

/// One item of `xsr inspect --json` (its "items" array): a header or a record.
#[derive(Debug, Clone, PartialEq, Eq)]
struct InspectItem {
    layer: String,
    kind: String,
    offset: usize,
    length: usize,
    detail: String,
}

/// The items of `xsr inspect --json` output. xtask has no JSON library (std only), so this reads
/// the shape serde_json's pretty printer gives that output: one `"key": value` per line, each
/// item's fields from "offset" to "detail", and the array ends where "totals" begins.
fn inspect_items(json: &str) -> Result<Vec<InspectItem>, Error> {
    let mut items = Vec::new();
    let mut cur: Option<InspectItem> = None;
    for line in json.lines() {
        let line = line.trim().trim_end_matches(',');
        let Some((key, value)) = line.split_once("\": ") else { continue };
        let key = key.trim_start_matches('"');
        let text = || value.trim_matches('"').replace("\\\"", "\"");
        let num = || value.parse::<usize>().map_err(|_| err(format!("inspect --json: bad {key}: {value}")));
        match key {
            "totals" => break,
            "offset" => {
                cur = Some(InspectItem {
                    layer: String::new(),
                    kind: String::new(),
                    offset: num()?,
                    length: 0,
                    detail: String::new(),
                })
            }
            _ => {
                let Some(item) = cur.as_mut() else { continue };
                match key {
                    "layer" => item.layer = text(),
                    "kind" => item.kind = text(),
                    "length" => item.length = num()?,
                    "detail" => {
                        item.detail = text();
                        items.extend(cur.take());
                    }
                    _ => {}
                }
            }
        }
    }
    if items.is_empty() {
        return Err(err("inspect --json listed no items"));
    }
    Ok(items)
}

/// What the comparison needs of one save file.
#[derive(Debug, Default)]
struct SaveFacts {
    /// `layer:KIND` of every libxl and libxc item after the xl header, a run of PAGE_DATA as one.
    sequence: Vec<String>,
    /// The xl header's flags (inspect's detail up to ", config").
    xl_flags: String,
    /// The domain's config in the xl header.
    config: Vec<u8>,
    /// libxc records other than PAGE_DATA: (kind, vcpu for per-vcpu records, body).
    records: Vec<(String, Option<u32>, Vec<u8>)>,
    /// Every pfn's type nibble and page body, as the last PAGE_DATA naming it left them.
    pages: BTreeMap<u64, (u8, Option<Vec<u8>>)>,
}

/// Names of the PAGE_DATA type nibbles (Xen's `XEN_DOMCTL_PFINFO_*` >> 28).
fn page_type_name(t: u8) -> String {
    let level = match t & 7 {
        0 => return if t == 0 { "NOTAB".into() } else { format!("type {t:#x}") },
        l @ 1..=4 => format!("L{l}TAB"),
        _ => {
            return match t {
                0xd => "BROKEN".into(),
                0xe => "XALLOC".into(),
                0xf => "XTAB".into(),
                _ => format!("type {t:#x}"),
            };
        }
    };
    if t & 8 != 0 { format!("{level}|PINNED") } else { level }
}

/// `file`'s facts from its bytes and `xsr inspect --json` of it. Record bodies are read at the
/// offsets inspect gives (body = 8 bytes after the record header); PAGE_DATA bodies as Xen's
/// `xg_sr_save.c` writes them: u32 count, u32 reserved, count u64 pfn words (pfn in bits 0-51,
/// type in 60-63), then 4096 bytes per data-bearing entry (type & 7 in 0..=4).
fn save_facts(bytes: &[u8], items: &[InspectItem]) -> Result<SaveFacts, Error> {
    let mut f = SaveFacts::default();
    let body = |it: &InspectItem| {
        bytes
            .get(it.offset + 8..it.offset + 8 + it.length)
            .ok_or_else(|| err(format!("{} at byte {} beyond the file", it.kind, it.offset)))
    };
    for it in items {
        match (it.layer.as_str(), it.kind.as_str()) {
            ("xl", "XL_HEADER") => {
                let (flags, config) = it.detail.split_once(", config ").unwrap_or((&it.detail, "0 bytes"));
                f.xl_flags = flags.to_string();
                let n: usize = config
                    .trim_end_matches(" bytes")
                    .parse()
                    .map_err(|_| err(format!("XL_HEADER detail: {}", it.detail)))?;
                let end = it.offset + it.length;
                f.config =
                    bytes.get(end.saturating_sub(n)..end).ok_or_else(|| err("xl config beyond the file"))?.to_vec();
                continue;
            }
            ("xz", _) | ("xl", _) => continue,
            _ => {}
        }
        let step = format!("{}:{}", it.layer, it.kind);
        if f.sequence.last() != Some(&step) || it.kind != "PAGE_DATA" {
            f.sequence.push(step);
        }
        if it.layer != "libxc" || matches!(it.kind.as_str(), "IMAGE_HEADER" | "DOMAIN_HEADER") {
            continue;
        }
        let b = body(it)?;
        if it.kind != "PAGE_DATA" {
            let vcpu = it
                .kind
                .contains("_VCPU_")
                .then(|| b.get(..4).map(|v| u32::from_le_bytes([v[0], v[1], v[2], v[3]])))
                .flatten();
            f.records.push((it.kind.clone(), vcpu, b.to_vec()));
            continue;
        }
        let count = b
            .get(..4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as usize)
            .ok_or_else(|| err("PAGE_DATA shorter than its header"))?;
        let mut data = 8 + 8 * count;
        for i in 0..count {
            let word = le_u64(b, 8 + 8 * i)?;
            let (pfn, t) = (word & 0x000F_FFFF_FFFF_FFFF, (word >> 60) as u8);
            let page = if t & 7 <= 4 {
                let p = b.get(data..data + 4096).ok_or_else(|| {
                    err(format!("PAGE_DATA at byte {}: page of pfn {pfn:#x} beyond the record", it.offset))
                })?;
                data += 4096;
                Some(p.to_vec())
            } else {
                None
            };
            f.pages.insert(pfn, (t, page));
        }
    }
    Ok(f)
}

/// Reads a save file (xz-compressed ones through `xz -dc`) and `xsr inspect --json` of it.
fn load_save(xsr: &Path, path: &Path) -> Result<SaveFacts, Error> {
    let mut bytes = fs::read(path).map_err(|e| io_err("cannot read", path, e))?;
    if bytes.starts_with(b"\xfd7zXZ\0") {
        let o = Command::new("xz").arg("-dc").arg(path).output().map_err(|e| err(format!("cannot run xz: {e}")))?;
        if !o.status.success() {
            return Err(err(format!("xz -dc {} failed", path.display())));
        }
        bytes = o.stdout;
    }
    let o = Command::new(xsr)
        .args(["inspect", "--json"])
        .arg(path)
        .output()
        .map_err(|e| err(format!("cannot run {}: {e}", xsr.display())))?;
    if !o.status.success() {
        return Err(err(format!(
            "xsr inspect --json {} failed: {}",
            path.display(),
            String::from_utf8_lossy(&o.stderr).trim()
        )));
    }
    save_facts(&bytes, &inspect_items(&String::from_utf8_lossy(&o.stdout))?)
}

/// JSON text without the whitespace outside strings.
fn json_squeezed(json: &[u8]) -> Vec<u8> {
    let (mut out, mut in_string, mut escaped) = (Vec::with_capacity(json.len()), false, false);
    for &c in json {
        if in_string {
            in_string = escaped || c != b'"';
            escaped = !escaped && c == b'\\';
        } else if c == b'"' {
            in_string = true;
        } else if c.is_ascii_whitespace() {
            continue;
        }
        out.push(c);
    }
    out
}

/// One row of the comparison table: what, A's value, B's value, and the failure if any.
type Row = (String, String, String, Option<String>);

/// Compares save file A with the reference B of the same guest: equal where two saves of one
/// guest are equal, close where the running guest legitimately moved on. Rows in table order.
fn compare_saves(a: &SaveFacts, b: &SaveFacts) -> Vec<Row> {
    let mut rows: Vec<Row> = Vec::new();
    let mut row = |what: &str, va: String, vb: String, fail: Option<String>| rows.push((what.into(), va, vb, fail));
    // 1. The record sequence.
    let first_diff = a
        .sequence
        .iter()
        .zip(&b.sequence)
        .position(|(x, y)| x != y)
        .or((a.sequence.len() != b.sequence.len()).then(|| a.sequence.len().min(b.sequence.len())));
    row(
        "record sequence",
        format!("{} steps", a.sequence.len()),
        format!("{} steps", b.sequence.len()),
        first_diff.map(|i| {
            format!(
                "step {i}: {} against {}",
                a.sequence.get(i).map_or("(end)", String::as_str),
                b.sequence.get(i).map_or("(end)", String::as_str)
            )
        }),
    );
    // 2. The xl header: flags and the domain's config.
    row("xl header flags", a.xl_flags.clone(), b.xl_flags.clone(), (a.xl_flags != b.xl_flags).then(|| "differ".into()));
    // Byte for byte, else without the whitespace between JSON tokens (libxl's generator and
    // another one may indent differently); keys and values must match either way.
    let (ca, cb) = (json_squeezed(&a.config), json_squeezed(&b.config));
    let at = ca.iter().zip(&cb).position(|(x, y)| x != y).or((ca.len() != cb.len()).then(|| ca.len().min(cb.len())));
    let context = |c: &[u8], i: usize| {
        String::from_utf8_lossy(&c[i.saturating_sub(30).min(c.len())..(i + 30).min(c.len())]).into_owned()
    };
    let how = if a.config == b.config {
        "same bytes"
    } else if at.is_none() {
        "same JSON tokens"
    } else {
        "differs"
    };
    row(
        "xl config (JSON)",
        format!("{} bytes", a.config.len()),
        format!("{} bytes ({how})", b.config.len()),
        at.map(|i| format!("first difference at token byte {i}: A `{}` B `{}`", context(&ca, i), context(&cb, i))),
    );
    // 3. State records: static ones byte for byte, the others by length.
    let kinds: BTreeSet<(&str, Option<u32>)> =
        a.records.iter().chain(&b.records).map(|(k, v, _)| (k.as_str(), *v)).collect();
    let find = |f: &SaveFacts, k: &str, v: Option<u32>| {
        f.records.iter().rev().find(|(rk, rv, _)| rk == k && *rv == v).map(|(_, _, body)| body.clone())
    };
    for (kind, vcpu) in kinds {
        let (ra, rb) = (find(a, kind, vcpu), find(b, kind, vcpu));
        let what = match vcpu {
            Some(v) => format!("{kind} vcpu {v}"),
            None => kind.to_string(),
        };
        let len = |r: &Option<Vec<u8>>| r.as_ref().map_or("absent".to_string(), |r| format!("{} bytes", r.len()));
        let same = ra == rb;
        let exact = matches!(kind, "X86_PV_INFO" | "X86_CPUID_POLICY" | "X86_MSR_POLICY" | "STATIC_DATA_END" | "END");
        let fail = match (&ra, &rb) {
            (Some(x), Some(y)) if exact && x != y => Some("contents differ".to_string()),
            (Some(x), Some(y)) if x.len() != y.len() => Some("lengths differ".to_string()),
            (Some(_), Some(_)) => None,
            _ => Some("in one file only".to_string()),
        };
        let note = match (&ra, &rb) {
            _ if same => " (same bytes)",
            (Some(x), Some(y)) if x.len() == y.len() => " (lengths equal, contents differ)",
            _ => "",
        };
        row(&what, len(&ra), format!("{}{note}", len(&rb)), fail);
    }
    // The page tables a 64-bit PV vcpu runs on: ctrlreg[3] (kernel) and ctrlreg[1] (user)
    // must name top-level tables in the file's own pages, and a vcpu on the same address space
    // (cr3) as in the reference must have its user table too (a vcpu restored without it dies
    // on its way to user mode: Xen's "Guest switching to user mode with no user page tables").
    // cr1 0 on another cr3 is legitimate: Linux's own init_mm has no user table.
    for (kind, vcpu, body) in &a.records {
        let Some(v) = vcpu.filter(|_| kind == "X86_PV_VCPU_BASIC" && body.len() == 8 + PV64_VCPU_CONTEXT) else {
            continue;
        };
        let reference = find(b, kind, Some(v));
        let cr = |body: &[u8], n: usize| le_u64(body, 8 + PV64_CTRLREG + 8 * n).unwrap_or(0);
        let l4 = |f: &SaveFacts, c: u64| f.pages.get(&(c >> 12)).is_some_and(|(t, _)| t & 7 == 4 && *t < 0xd);
        let (cr3, cr1) = (cr(body, 3), cr(body, 1));
        let (ref_cr3, ref_cr1) = reference.as_deref().map_or((0, 0), |r| (cr(r, 3), cr(r, 1)));
        let fail = if !l4(a, cr3) {
            Some(format!("cr3 {cr3:#x} names no L4 page table"))
        } else if cr1 == 0 && ref_cr1 != 0 && cr3 == ref_cr3 {
            Some("no user page table (cr1 0) on the address space where the reference has one".to_string())
        } else if cr1 != 0 && !l4(a, cr1) {
            Some(format!("cr1 {cr1:#x} names no L4 page table"))
        } else {
            None
        };
        row(
            &format!("vcpu {v} cr3 / cr1 (kernel / user tables)"),
            format!("{cr3:#x} / {cr1:#x}"),
            format!("{ref_cr3:#x} / {ref_cr1:#x}"),
            fail,
        );
    }
    // 4. Memory: the same pfns, page types close, page tables identical, the pattern in place.
    let (pa, pb): (BTreeSet<u64>, BTreeSet<u64>) =
        (a.pages.keys().copied().collect(), b.pages.keys().copied().collect());
    row(
        "pfns",
        format!("{}", pa.len()),
        format!("{}", pb.len()),
        (pa != pb)
            .then(|| format!("{} only in A, {} only in B", pa.difference(&pb).count(), pb.difference(&pa).count())),
    );
    let counts = |f: &SaveFacts| {
        let mut c: BTreeMap<String, usize> = BTreeMap::new();
        f.pages.values().for_each(|(t, _)| *c.entry(page_type_name(*t)).or_default() += 1);
        c
    };
    let (ca, cb) = (counts(a), counts(b));
    for t in ca.keys().chain(cb.keys()).collect::<BTreeSet<_>>() {
        let (x, y) = (ca.get(t).copied().unwrap_or(0), cb.get(t).copied().unwrap_or(0));
        let tol = type_count_tolerance(x, y);
        let fail = (t != "NOTAB" && x.abs_diff(y) > tol).then(|| format!("differ by more than {tol}"));
        row(&format!("pages {t}"), x.to_string(), y.to_string(), fail);
    }
    let is_table = |t: u8| (1..=4).contains(&(t & 7)) && t < 0xd;
    let (mut tables, mut same) = (0usize, 0usize);
    for (pfn, (ta, da)) in &a.pages {
        if let Some((tb, db)) = b.pages.get(pfn)
            && is_table(*ta)
            && is_table(*tb)
        {
            tables += 1;
            same += usize::from(da == db);
        }
    }
    let share = if tables == 0 { 0.0 } else { same as f64 / tables as f64 };
    row(
        "page tables with the same contents",
        format!("{same} of {tables} ({:.0}%)", share * 100.0),
        "-".into(),
        (share < MIN_SAME_PAGE_TABLES)
            .then(|| format!("below {:.0}%: entries not normalised as xl's are?", MIN_SAME_PAGE_TABLES * 100.0)),
    );
    let pattern =
        |f: &SaveFacts| pattern_pages(f.pages.iter().filter_map(|(pfn, (_, d))| d.as_deref().map(|d| (*pfn, d))));
    let (xa, xb) = (pattern(a), pattern(b));
    let count = |p: &[Vec<u64>]| p.iter().filter(|v| !v.is_empty()).count().to_string();
    let fail = if xb.iter().any(Vec::is_empty) {
        Some("the reference lacks pattern pages: not the standard guest".to_string())
    } else {
        compare_pattern("A", &xa, &xb).err().map(|e| e.0.replace("xl dump-core", "B").replace("dump-core", "B"))
    };
    row("pattern pages (at B's pfns)", count(&xa), count(&xb), fail);
    rows
}

/// Prints the table of `compare_saves(A, B)`; Ok with a summary when no row failed.
fn print_comparison(name_a: &str, name_b: &str, rows: &[Row]) -> Result<String, Error> {
    let short = |n: &str| Path::new(n).file_name().map_or(n.to_string(), |f| f.to_string_lossy().into_owned());
    let w = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    let wa = rows.iter().map(|r| r.1.len()).max().unwrap_or(0).max(short(name_a).len());
    println!("    {:<w$}  {:<wa$}  {}", "A against B", short(name_a), short(name_b));
    for (what, va, vb, fail) in rows {
        let verdict = fail.as_ref().map_or(String::new(), |f| format!("   <-- FAIL: {f}"));
        println!("    {what:<w$}  {va:<wa$}  {vb}{verdict}");
    }
    let failed: Vec<String> =
        rows.iter().filter_map(|(what, _, _, f)| f.as_ref().map(|f| format!("{what}: {f}"))).collect();
    if failed.is_empty() {
        Ok(format!("{name_a} matches {name_b} ({} rows: records, static state, memory, pattern pages)", rows.len()))
    } else {
        Err(err(format!("{name_a} against {name_b}: {}", failed.join("; "))))
    }
}

/// The save-file comparisons of a job's outputs (see [`SAVE_PAIRS`]), if it has any.
fn save_checks(job: &str, out: &Path) -> Option<Result<Vec<String>, Error>> {
    let (_, pairs) = SAVE_PAIRS.iter().find(|(j, _)| *j == job)?;
    let xsr = Path::new("target/release/xsr");
    let run = || {
        let mut done = Vec::new();
        let mut failures = Vec::new();
        for (a, b) in *pairs {
            let compared = load_save(xsr, &out.join(a)).and_then(|fa| {
                let fb = load_save(xsr, &out.join(b))?;
                print_comparison(a, b, &compare_saves(&fa, &fb))
            });
            match compared {
                Ok(line) => done.push(line),
                Err(e) => failures.push(e.0),
            }
        }
        if failures.is_empty() { Ok(done) } else { Err(err(failures.join(" | "))) }
    };
    Some(run())
}

/// `cargo xtask realxen compare A B`: the host-side comparison of save file A with B.
fn realxen_compare(ctx: &Ctx, files: &[String]) -> Result<(), Error> {
    let [a, b] = files else { return Err(err("usage: cargo xtask realxen compare A.save B.save")) };
    run(ctx.cargo(["build", "--release", "--features", "xen"]))?;
    let xsr = Path::new("target/release/xsr");
    let (fa, fb) = (load_save(xsr, Path::new(a))?, load_save(xsr, Path::new(b))?);
    let line = print_comparison(a, b, &compare_saves(&fa, &fb))?;
    println!("{line}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(n: usize) -> Vec<u8> {
        format!("REALXEN-PAGE-{n:06}-").bytes().cycle().take(4096).collect()
    }

    #[test]
    fn pattern_pages_need_the_whole_page() {
        let mut bad = pattern(3);
        bad[4000] ^= 1;
        let pages = [pattern(1), bad, pattern(1024), pattern(2), vec![0; 4096]];
        let found = pattern_pages(pages.iter().enumerate().map(|(i, p)| (i as u64 + 10, p.as_slice())));
        assert_eq!(found[1], [10]);
        assert_eq!(found[2], [13]);
        assert!(found[3].is_empty());
        assert_eq!(found.iter().map(Vec::len).sum::<usize>(), 2);
    }

    #[test]
    fn pattern_comparison_wants_every_page_at_a_reference_pfn() {
        let reference: Vec<Vec<u64>> = (0..PATTERN_PAGES as u64).map(|n| vec![100 + n]).collect();
        let mut dump = reference.clone();
        dump[7].push(5); // a stale second copy elsewhere is fine
        assert!(compare_pattern("x", &dump, &reference).is_ok());
        dump[7] = vec![5];
        assert!(compare_pattern("x", &dump, &reference).unwrap_err().0.contains("1 pattern pages at pfns"));
        dump[7].clear();
        assert!(compare_pattern("x", &dump, &reference).unwrap_err().0.contains("1 pattern pages missing"));
    }

    /// An ELF64 with the given sections (name, body) and PT_LOADs (paddr, body).
    fn elf(sections: &[(&str, Vec<u8>)], loads: &[(u64, Vec<u8>)]) -> Vec<u8> {
        let mut shstr = vec![0u8];
        let mut names = Vec::new();
        for (n, _) in sections {
            names.push(shstr.len() as u32);
            shstr.extend(n.bytes().chain([0]));
        }
        let mut out = vec![0u8; 64];
        let phoff = out.len();
        out.resize(phoff + 56 * loads.len(), 0);
        let mut bodies = Vec::new();
        for (i, (paddr, body)) in loads.iter().enumerate() {
            let at = phoff + i * 56;
            let off = out.len();
            out.extend(body);
            out[at..at + 4].copy_from_slice(&1u32.to_le_bytes());
            out[at + 8..at + 16].copy_from_slice(&(off as u64).to_le_bytes());
            out[at + 0x18..at + 0x20].copy_from_slice(&paddr.to_le_bytes());
            out[at + 0x20..at + 0x28].copy_from_slice(&(body.len() as u64).to_le_bytes());
        }
        for (_, body) in sections {
            bodies.push((out.len() as u64, body.len() as u64));
            out.extend(body);
        }
        let stroff = out.len() as u64;
        out.extend(&shstr);
        let shoff = out.len();
        out.resize(shoff + 64 * (sections.len() + 1), 0);
        for (i, ((off, len), name)) in
            bodies.iter().chain([&(stroff, shstr.len() as u64)]).zip(names.iter().chain([&0])).enumerate()
        {
            let at = shoff + i * 64;
            out[at..at + 4].copy_from_slice(&name.to_le_bytes());
            out[at + 0x18..at + 0x20].copy_from_slice(&off.to_le_bytes());
            out[at + 0x20..at + 0x28].copy_from_slice(&len.to_le_bytes());
        }
        out[0x20..0x28].copy_from_slice(&(phoff as u64).to_le_bytes());
        out[0x28..0x30].copy_from_slice(&(shoff as u64).to_le_bytes());
        out[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        out[0x38..0x3a].copy_from_slice(&(loads.len() as u16).to_le_bytes());
        out[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
        out[0x3c..0x3e].copy_from_slice(&((sections.len() + 1) as u16).to_le_bytes());
        out[0x3e..0x40].copy_from_slice(&(sections.len() as u16).to_le_bytes());
        out
    }

    #[test]
    fn dump_core_pages_follow_the_p2m_section() {
        let p2m: Vec<u8> = [(9u64, 900u64), (4, 400)]
            .iter()
            .flat_map(|(p, m)| p.to_le_bytes().into_iter().chain(m.to_le_bytes()))
            .collect();
        let pages = [pattern(0), pattern(1)].concat();
        let core = elf(&[(".note.Xen", vec![1, 2]), (".xen_p2m", p2m), (".xen_pages", pages)], &[]);
        let pfns: Vec<u64> = dumpcore_pages(&core).unwrap().map(|(pfn, _)| pfn).collect();
        assert_eq!(pfns, [9, 4]);
        let found = pattern_pages(dumpcore_pages(&core).unwrap());
        assert_eq!((found[0].as_slice(), found[1].as_slice()), (&[9][..], &[4][..]));
        assert!(dumpcore_pages(&core[..100]).is_err());
        assert!(dumpcore_pages(&elf(&[(".xen_pages", pattern(0))], &[])).is_err());
    }

    #[test]
    fn lime_ranges_are_addressed_by_start() {
        let mut lime = Vec::new();
        for (start, pages) in [(0x3000u64, vec![pattern(8), pattern(9)]), (0x10000, vec![pattern(10)])] {
            let len = pages.len() as u64 * 4096;
            lime.extend(0x4C69_4D45u32.to_le_bytes());
            lime.extend(1u32.to_le_bytes());
            lime.extend(start.to_le_bytes());
            lime.extend((start + len - 1).to_le_bytes());
            lime.extend([0; 8]);
            lime.extend(pages.concat());
        }
        let found = pattern_pages(lime_pages(&lime).unwrap().into_iter());
        assert_eq!((found[8].as_slice(), found[9].as_slice(), found[10].as_slice()), (&[3][..], &[4][..], &[16][..]));
        assert!(lime_pages(&lime[..lime.len() - 1]).is_err());
        assert!(lime_pages(&lime[1..]).is_err());
    }

    #[test]
    fn elf_loads_are_addressed_by_paddr() {
        let core = elf(&[], &[(0x5000, [pattern(2), pattern(3)].concat()), (0x1000, pattern(4))]);
        let found = pattern_pages(elf_load_pages(&core).unwrap().into_iter());
        assert_eq!((found[2].as_slice(), found[3].as_slice(), found[4].as_slice()), (&[5][..], &[6][..], &[1][..]));
        assert!(elf_load_pages(&core[..core.len() - 5000]).is_err());
    }

    /// `xsr inspect --json` as the release binary prints it (the real test file's first items).
    const INSPECT_JSON: &str = r#"{
  "layers": [
    "xl",
    "libxl",
    "libxc"
  ],
  "items": [
    {
      "offset": 0,
      "layer": "xl",
      "index": null,
      "kind": "XL_HEADER",
      "length": 891,
      "detail": "mandatory flags 0x3 JSON STREAMv2, config 839 bytes"
    },
    {
      "offset": 955,
      "layer": "libxc",
      "index": 0,
      "kind": "X86_PV_INFO",
      "length": 8,
      "detail": "guest width 8, 4 levels"
    }
  ],
  "totals": {
    "records": 19,
    "offset": 7
  }
}"#;

    #[test]
    fn inspect_items_read_the_pretty_json() {
        let items = inspect_items(INSPECT_JSON).unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!((items[0].layer.as_str(), items[0].kind.as_str(), items[0].length), ("xl", "XL_HEADER", 891));
        assert_eq!(items[1].offset, 955);
        assert_eq!(items[1].detail, "guest width 8, 4 levels");
        assert!(inspect_items("{}").is_err());
        assert!(inspect_items(&INSPECT_JSON.replace("955", "x")).is_err());
    }

    fn item(layer: &str, kind: &str, offset: usize, length: usize, detail: &str) -> InspectItem {
        InspectItem { layer: layer.into(), kind: kind.into(), offset, length, detail: detail.into() }
    }

    /// A record: u32 type, u32 length, the body padded to 8 bytes (the body's offset is 8 on).
    fn record(rtype: u32, body: &[u8]) -> Vec<u8> {
        let mut r = rtype.to_le_bytes().to_vec();
        r.extend((body.len() as u32).to_le_bytes());
        r.extend(body);
        r.resize(r.len().next_multiple_of(8), 0);
        r
    }

    /// A small save file: an xl header with a config, X86_PV_INFO, two PAGE_DATA (the second
    /// rewrites pfn 5 as a pinned L1 table and sends pfn 9 as XTAB), a vcpu record; and its items.
    fn small_save(config: &str, info: [u8; 8]) -> (Vec<u8>, Vec<InspectItem>) {
        let mut file = vec![0u8; 52];
        file.extend(config.bytes());
        let mut items = vec![item(
            "xl",
            "XL_HEADER",
            0,
            file.len(),
            &format!("mandatory flags 0x3 JSON, config {} bytes", config.len()),
        )];
        let mut push = |file: &mut Vec<u8>, kind: &str, rtype: u32, body: Vec<u8>| {
            items.push(item("libxc", kind, file.len(), body.len(), ""));
            file.extend(record(rtype, &body));
        };
        push(&mut file, "X86_PV_INFO", 0x3, info.to_vec());
        let page_data = |entries: &[(u64, u64)], pages: &[Vec<u8>]| {
            let mut b = (entries.len() as u32).to_le_bytes().to_vec();
            b.extend([0; 4]);
            entries.iter().for_each(|(pfn, t)| b.extend((pfn | t << 60).to_le_bytes()));
            pages.iter().for_each(|p| b.extend(p));
            b
        };
        push(&mut file, "PAGE_DATA", 0x1, page_data(&[(4, 0), (5, 0)], &[pattern(0), pattern(1)]));
        push(&mut file, "PAGE_DATA", 0x1, page_data(&[(5, 0x9), (9, 0xf)], &[vec![7; 4096]]));
        push(
            &mut file,
            "X86_PV_VCPU_BASIC",
            0x5,
            [1u32.to_le_bytes(), 0u32.to_le_bytes(), 3u32.to_le_bytes()].concat(),
        );
        push(&mut file, "END", 0x0, Vec::new());
        (file, items)
    }

    #[test]
    fn save_facts_take_the_last_write_of_each_pfn() {
        let (file, items) = small_save("{\"x\": 1}", [8, 0, 0, 0, 4, 0, 0, 0]);
        let f = save_facts(&file, &items).unwrap();
        assert_eq!(f.config, b"{\"x\": 1}");
        assert_eq!(f.xl_flags, "mandatory flags 0x3 JSON");
        assert_eq!(f.sequence, ["libxc:X86_PV_INFO", "libxc:PAGE_DATA", "libxc:X86_PV_VCPU_BASIC", "libxc:END"]);
        assert_eq!(f.pages.len(), 3);
        assert_eq!(f.pages[&4], (0, Some(pattern(0))));
        assert_eq!(f.pages[&5], (0x9, Some(vec![7; 4096])));
        assert_eq!(f.pages[&9], (0xf, None));
        let vcpu = f.records.iter().find(|r| r.0 == "X86_PV_VCPU_BASIC").unwrap();
        assert_eq!(vcpu.1, Some(1));
        // A record reaching beyond the file, and a PAGE_DATA whose pages are cut short, fail.
        assert!(save_facts(&file[..file.len() - 40], &items).is_err());
        let mut short = items.clone();
        short[2].length -= 4096;
        assert!(save_facts(&file, &short).is_err());
    }

    fn failures(rows: &[Row]) -> Vec<&str> {
        rows.iter().filter(|r| r.3.is_some()).map(|r| r.0.as_str()).collect()
    }

    #[test]
    fn comparison_wants_equal_static_state_and_memory_in_place() {
        let facts = |config: &str, info| {
            let (file, items) = small_save(config, info);
            save_facts(&file, &items).unwrap()
        };
        let a = facts("{\"x\": 1}", [8, 0, 0, 0, 4, 0, 0, 0]);
        // Same guest, another indentation of the config: nothing fails.
        let b = facts("{\n  \"x\":1}", [8, 0, 0, 0, 4, 0, 0, 0]);
        let rows = compare_saves(&a, &b);
        assert_eq!(failures(&rows), ["pattern pages (at B's pfns)"], "only the (tiny) pattern is incomplete");
        // Another guest width: X86_PV_INFO must be byte-identical.
        let c = facts("{\"x\": 1}", [4, 0, 0, 0, 3, 0, 0, 0]);
        assert!(failures(&compare_saves(&a, &c)).contains(&"X86_PV_INFO"));
        // Another config value, a missing vcpu record, a moved page, an unnormalised page table.
        let d = facts("{\"x\": 2}", [8, 0, 0, 0, 4, 0, 0, 0]);
        assert!(failures(&compare_saves(&a, &d)).contains(&"xl config (JSON)"));
        let mut e = facts("{\"x\": 1}", [8, 0, 0, 0, 4, 0, 0, 0]);
        e.records.retain(|r| r.0 != "X86_PV_VCPU_BASIC");
        e.sequence.retain(|s| !s.ends_with("VCPU_BASIC"));
        let rows = compare_saves(&a, &e);
        let failed = failures(&rows);
        assert!(failed.contains(&"record sequence") && failed.contains(&"X86_PV_VCPU_BASIC vcpu 1"), "{failed:?}");
        let mut g = facts("{\"x\": 1}", [8, 0, 0, 0, 4, 0, 0, 0]);
        g.pages.insert(5, (0x9, Some(vec![8; 4096])));
        assert!(failures(&compare_saves(&a, &g)).contains(&"page tables with the same contents"));
        g.pages.remove(&9);
        assert!(failures(&compare_saves(&a, &g)).contains(&"pfns"));
    }

    #[test]
    fn comparison_passes_the_full_pattern_and_tolerates_a_few_page_tables() {
        let mut a = SaveFacts::default();
        for n in 0..PATTERN_PAGES as u64 {
            a.pages.insert(0x100 + n, (0, Some(pattern(n as usize))));
        }
        for pfn in 0..20u64 {
            a.pages.insert(0x1000 + pfn, (0x1, Some(vec![pfn as u8; 4096])));
        }
        let mut b = SaveFacts { pages: a.pages.clone(), ..SaveFacts::default() };
        // Two page tables became ordinary pages (the guest freed them): within the tolerance.
        for pfn in [0x1000u64, 0x1001] {
            b.pages.insert(pfn, (0, Some(vec![0; 4096])));
        }
        assert_eq!(failures(&compare_saves(&a, &b)), Vec::<&str>::new());
        // A pattern page elsewhere fails.
        let p = a.pages.remove(&0x100).unwrap();
        a.pages.insert(0x100, (0, Some(vec![0; 4096])));
        a.pages.insert(0x2000, p);
        b.pages.insert(0x2000, (0, Some(vec![0; 4096])));
        assert_eq!(failures(&compare_saves(&a, &b)), ["pattern pages (at B's pfns)"]);
    }

    /// A 64-bit PV X86_PV_VCPU_BASIC body for vcpu `v` with the given cr3 and cr1.
    fn basic64(v: u32, cr3: u64, cr1: u64) -> Vec<u8> {
        let mut b = vec![0u8; 8 + PV64_VCPU_CONTEXT];
        b[..4].copy_from_slice(&v.to_le_bytes());
        b[8 + PV64_CTRLREG + 8..][..8].copy_from_slice(&cr1.to_le_bytes());
        b[8 + PV64_CTRLREG + 24..][..8].copy_from_slice(&cr3.to_le_bytes());
        b
    }

    #[test]
    fn comparison_wants_each_vcpus_kernel_and_user_tables() {
        let tables = |f: &mut SaveFacts| {
            f.pages.insert(0x40, (0xc, Some(vec![1; 4096]))); // L4TAB|PINNED
            f.pages.insert(0x41, (0x4, Some(vec![2; 4096]))); // L4TAB
            f.pages.insert(0x42, (0x1, Some(vec![3; 4096]))); // L1TAB
        };
        let facts = |cr3: u64, cr1: u64| {
            let mut f = SaveFacts::default();
            tables(&mut f);
            f.records.push(("X86_PV_VCPU_BASIC".into(), Some(1), basic64(1, cr3, cr1)));
            f
        };
        let rows_failing = |a: &SaveFacts, b: &SaveFacts| {
            compare_saves(a, b).into_iter().filter(|r| r.0.starts_with("vcpu 1 cr3") && r.3.is_some()).count()
        };
        let reference = facts(0x40000, 0x41001);
        assert_eq!(rows_failing(&facts(0x40000, 0x41001), &reference), 0);
        assert_eq!(rows_failing(&facts(0x40000, 0), &reference), 1, "user table dropped");
        assert_eq!(rows_failing(&facts(0x41000, 0), &reference), 0, "another address space, kernel-only");
        assert_eq!(rows_failing(&facts(0x42000, 0x41001), &reference), 1, "cr3 on an L1 table");
        assert_eq!(rows_failing(&facts(0x40000, 0x99001), &reference), 1, "cr1 on no page");
        assert_eq!(rows_failing(&facts(0x40000, 0), &facts(0x40000, 0)), 0, "neither has a user table");
    }

    #[test]
    fn json_squeezing_keeps_strings() {
        assert_eq!(json_squeezed(b"{ \"a b\" : [1, \"x\\\" y\"] }\n"), b"{\"a b\":[1,\"x\\\" y\"]}");
        assert_eq!(page_type_name(0), "NOTAB");
        assert_eq!(page_type_name(0x9), "L1TAB|PINNED");
        assert_eq!(page_type_name(0x4), "L4TAB");
        assert_eq!(page_type_name(0xf), "XTAB");
        assert_eq!(page_type_name(0x5), "type 0x5");
        assert_eq!(type_count_tolerance(3, 5), 4);
        assert_eq!(type_count_tolerance(8000, 8100), 810);
    }

    fn strings(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn task_names_are_unique() {
        let names: BTreeSet<_> = TASKS.iter().map(|(n, _, _)| n).collect();
        assert_eq!(names.len(), TASKS.len());
    }

    #[test]
    fn fuzz_args_defaults_and_flags() {
        let a = parse_fuzz_args(&[]).unwrap();
        assert_eq!(a.seconds, DEFAULT_FUZZ_SECONDS);
        assert_eq!(a.jobs, 1);
        assert!(a.targets.is_empty() && !a.list);

        let a =
            parse_fuzz_args(&strings(&["format_walk", "--seconds", "300", "--jobs=2", "--", "-max_len=4096"])).unwrap();
        assert_eq!(a.targets, ["format_walk"]);
        assert_eq!((a.seconds, a.jobs), (300, 2));
        assert_eq!(a.libfuzzer_args, ["-max_len=4096"]);

        assert!(parse_fuzz_args(&strings(&["--seconds"])).is_err());
        assert!(parse_fuzz_args(&strings(&["--seconds", "0"])).is_err());
        assert!(parse_fuzz_args(&strings(&["--bogus"])).is_err());
        assert!(parse_fuzz_args(&strings(&["--list"])).unwrap().list);
    }

    #[test]
    fn bins_from_manifest() {
        let manifest = r#"
[package]
name = "xsr-fuzz"

[dependencies]
libfuzzer-sys = "0.4"

[[bin]]
name = "format_walk"   # comment
path = "fuzz_targets/format_walk.rs"

[[bin]]
path = "fuzz_targets/page_data.rs"
name = 'page_data'
"#;
        assert_eq!(fuzz_targets_in(manifest), ["format_walk", "page_data"]);
    }

    #[test]
    fn package_names_and_unpacked_dirs() {
        let manifest =
            "[workspace]\nmembers = []\n\n[package]\nname = \"sr-format\" # wire\n\n[dependencies]\nname = 1\n";
        assert_eq!(package_name_in(manifest).as_deref(), Some("sr-format"));
        assert_eq!(package_name_in("[workspace]\nname = \"x\"\n"), None);
        let names = strings(&["sr-format", "xsr"]);
        assert!(is_unpacked_crate_of("sr-format-0.1.0", &names));
        assert!(is_unpacked_crate_of("xsr-12.0.0-rc.1", &names));
        assert!(!is_unpacked_crate_of("sr-format-extra-0.1.0", &names));
        assert!(!is_unpacked_crate_of("sr-formats-0.1.0", &names));
        assert!(!is_unpacked_crate_of("serde-1.0.0", &names));
        assert!(is_fingerprint_of("sr-format-0123456789abcdef", &names));
        assert!(!is_fingerprint_of("sr-format-extra-0123456789abcdef", &names));
        assert!(!is_fingerprint_of("sr-format-0123", &names));
    }

    #[test]
    fn extract_formats_from_clap_help() {
        let help = "Options:\n      --format <FORMAT>\n          Output format\n\n          Possible values:\n          \
                    - raw: Sparse raw image: pfn p at byte p << page_shift\n          - elf: ELF64 core\n\n";
        assert_eq!(formats_in_help(help), ["raw", "elf"]);
    }

    #[test]
    fn render_quotes_what_needs_it() {
        let mut cmd = Command::new("/usr/bin/cargo");
        cmd.args(["doc", "--no-deps"]).env("RUSTDOCFLAGS", "-D warnings");
        assert_eq!(render(&cmd), "RUSTDOCFLAGS=\"-D warnings\" cargo doc --no-deps");
    }

    #[test]
    fn copy_tree_copies_nested_files() {
        let base = env::temp_dir().join(format!("xtask-copy-{}", std::process::id()));
        let (from, to) = (base.join("from"), base.join("to"));
        fs::create_dir_all(from.join("sub")).unwrap();
        fs::write(from.join("a"), b"1").unwrap();
        fs::write(from.join("sub/b"), b"2").unwrap();
        assert_eq!(copy_tree(&from, &to).unwrap(), 2);
        assert_eq!(fs::read(to.join("sub/b")).unwrap(), b"2");
        fs::remove_dir_all(&base).unwrap();
    }
}
