//! `cargo xtask dist`: xsr's man pages and shell completions, generated from its clap
//! definition (`xsr::cli::Cli`) by `examples/dist.rs` (the root package's `dist` feature), so
//! that this crate stays dependency-free.

use std::env;
use std::path::PathBuf;

use crate::util::{Ctx, Error, err, run};

/// Under the target dir: where the files go unless `--out DIR` says otherwise.
const DIST_DIR: &str = "dist";

/// `cargo xtask dist [--out DIR]`: writes `DIR/man/man1/xsr.1` and `xsr-SUBCOMMAND.1`, and
/// `DIR/completions/xsr.bash`, `_xsr` (zsh), `xsr.fish`. The generator is built without the
/// default `tls` feature (the command line is the same; aws-lc need not be built for it).
pub(crate) fn task_dist(ctx: &Ctx, args: &[String]) -> Result<(), Error> {
    let out = match args {
        [] => env::var_os("CARGO_TARGET_DIR").map_or_else(|| ctx.root.join("target"), PathBuf::from).join(DIST_DIR),
        [flag, dir] if flag == "--out" => PathBuf::from(dir),
        _ => return Err(err("usage: cargo xtask dist [--out DIR]")),
    };
    run(ctx
        .cargo([
            "run",
            "--quiet",
            "-p",
            "xsr",
            "--no-default-features",
            "--features",
            "dist",
            "--example",
            "dist",
            "--",
        ])
        .arg(&out))?;
    println!(
        "\nxtask dist: man pages in {0}/man/man1, completions in {0}/completions; to install them for one user:\n  \
         install -Dm644 -t ~/.local/share/man/man1 {0}/man/man1/*.1\n  \
         install -Dm644 {0}/completions/xsr.bash ~/.local/share/bash-completion/completions/xsr\n  \
         install -Dm644 {0}/completions/_xsr ~/.local/share/zsh/site-functions/_xsr   (a directory in $fpath)\n  \
         install -Dm644 {0}/completions/xsr.fish ~/.config/fish/completions/xsr.fish",
        out.display()
    );
    Ok(())
}
