//! `cargo xtask <task>`: the workspace's check, bench and fuzz driver.
//!
//! Dependency-free (std only), in the style of gimli-rs/object's xtask: a
//! `(name, fn, help)` task table; every step prints a `==> command` header
//! and the first failing step stops the task with a non-zero exit status.
//! The alias lives in `.cargo/config.toml`; `.ci/run` calls `cargo xtask test`.
//!
//! One module per task (`test`, `bench`, `dist`, `fuzz`, `interop`, `package`, `realxen`); `util` holds
//! what they share (`Ctx`, `run`, the error type).

mod bench;
mod dist;
mod fuzz;
mod interop;
mod package;
mod realxen;
mod test;
mod util;

use std::env;
use std::process::ExitCode;

use util::{Ctx, Error};

/// A task gets the repo context and the arguments after its name.
type TaskFn = fn(&Ctx, &[String]) -> Result<(), Error>;

/// The task table: `(name, fn, help)`.
const TASKS: &[(&str, TaskFn, &str)] = &[
    (
        "test",
        test::task_test,
        "fmt, clippy (all features; the CLI also without default features), tests (nextest if installed), doc tests, rustdoc -D warnings, fuzz-crate check, contrib python tests",
    ),
    ("ci", test::task_test, "same as `test` (what .ci/run calls)"),
    ("bench", bench::task_bench, "criterion benches (`cargo bench --workspace`), then benches/cli-bench.sh if present"),
    ("dist", dist::task_dist, "man pages (clap_mangen) and bash/zsh/fish completions (clap_complete) into target/dist"),
    ("fuzz", fuzz::task_fuzz, "build fuzz/ with stable sancov flags and run libFuzzer on each target"),
    (
        "interop",
        interop::task_interop,
        "real tools on the real test image: Volatility 3 layer, vol/readelf/gdb on extract's ELF and LiME",
    ),
    (
        "package",
        package::task_package,
        "`cargo publish --dry-run --workspace`: package and build every publishable crate in dependency order",
    ),
    (
        "realxen",
        realxen::task_realxen,
        "build xsr --features xen, run tests/realxen/*.sh on a real Xen (realxen.sh job), check dumps",
    ),
    ("help", task_help, "list the tasks"),
];

const USAGE: &str = "\
usage: cargo xtask <task> [args]

  cargo xtask test | ci
  cargo xtask bench [CARGO_BENCH_ARGS] [-- HARNESS_ARGS]   e.g. cargo xtask bench -- --quick
  cargo xtask dist [--out DIR]                             man pages and completions (default target/dist)
  cargo xtask fuzz [TARGET...] [--seconds N] [--jobs J] [-- LIBFUZZER_ARGS]
  cargo xtask fuzz --list
  cargo xtask package [CARGO_PUBLISH_ARGS]                 e.g. cargo xtask package --allow-dirty
  cargo xtask interop [--strict]     --strict: a check skipped for a missing feature or tool fails
  cargo xtask realxen [--runs N] [JOB...]                  tests/realxen/JOB.sh on a real Xen (see shared/realxen)
  cargo xtask realxen compare A.save B.save                only the host-side comparison of two save files
  cargo xtask realxen check JOB RUN_DIR/out                only the host-side checks of an earlier run of JOB";

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

fn task_help(_: &Ctx, _: &[String]) -> Result<(), Error> {
    println!("{}", help_text());
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn task_names_are_unique() {
        let names: BTreeSet<_> = TASKS.iter().map(|(n, _, _)| n).collect();
        assert_eq!(names.len(), TASKS.len());
    }
}
