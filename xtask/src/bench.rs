//! `cargo xtask bench`: the criterion benches, then the CLI-level comparison script.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use crate::util::{Ctx, Error, render, run, split_dashdash};

const CLI_BENCH_SCRIPT: &str = "benches/cli-bench.sh";

/// `cargo bench --workspace`, then the CLI-level comparison script if any.
/// Arguments before `--` go to `cargo bench`, the rest to the bench harness.
pub(crate) fn task_bench(ctx: &Ctx, args: &[String]) -> Result<(), Error> {
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
