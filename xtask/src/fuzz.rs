//! `cargo xtask fuzz`: libFuzzer on the stable toolchain, from the seed corpora in
//! `tests/corpus/`.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::USAGE;
use crate::util::{Ctx, Error, err, io_err, list_files, render, run, split_dashdash};

/// Sanitizer-coverage flags that let a *stable* rustc instrument code for
/// libFuzzer (what cargo-fuzz does, minus the nightly-only `-Zsanitizer`).
const FUZZ_RUSTFLAGS: &str = "--cfg fuzzing -Cpasses=sancov-module \
    -Cllvm-args=-sanitizer-coverage-level=4 \
    -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
    -Cllvm-args=-sanitizer-coverage-pc-table \
    -Cllvm-args=-sanitizer-coverage-trace-compares \
    -Coverflow-checks=on -Cdebug-assertions=on";

pub(crate) const FUZZ_MANIFEST: &str = "fuzz/Cargo.toml";
/// The fuzz crate always gets its own target dir: its instrumented builds
/// must never mix with the main workspace's artifacts.
pub(crate) const FUZZ_TARGET_DIR: &str = "fuzz/target";
const DEFAULT_FUZZ_SECONDS: u64 = 60;

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
pub(crate) fn task_fuzz(ctx: &Ctx, args: &[String]) -> Result<(), Error> {
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
