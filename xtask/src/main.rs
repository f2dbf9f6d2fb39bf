//! `cargo xtask <task>`: the workspace's check, bench and fuzz driver.
//!
//! Dependency-free (std only), in the style of gimli-rs/object's xtask: a
//! `(name, fn, help)` task table; every step prints a `==> command` header
//! and the first failing step stops the task with a non-zero exit status.
//! The alias lives in `.cargo/config.toml`; `.ci/run` calls `cargo xtask test`.

use std::borrow::BorrowMut;
use std::collections::BTreeSet;
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
    ("help", task_help, "list the tasks"),
];

const USAGE: &str = "\
usage: cargo xtask <task> [args]

  cargo xtask test | ci
  cargo xtask bench [CARGO_BENCH_ARGS] [-- HARNESS_ARGS]   e.g. cargo xtask bench -- --quick
  cargo xtask fuzz [TARGET...] [--seconds N] [--jobs J] [-- LIBFUZZER_ARGS]
  cargo xtask fuzz --list
  cargo xtask package [CARGO_PUBLISH_ARGS]                 e.g. cargo xtask package --allow-dirty
  cargo xtask interop [--strict]     --strict: a check skipped for a missing feature or tool fails";

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

#[cfg(test)]
mod tests {
    use super::*;

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
