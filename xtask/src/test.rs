//! `cargo xtask test` (and `ci`): every check CI runs.

use std::env;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::fuzz::{FUZZ_MANIFEST, FUZZ_TARGET_DIR};
use crate::interop::PYTHON_TEST_DIR;
use crate::util::{Ctx, Error, err, no_args, run, tool_works};

/// Everything CI checks. All main-workspace steps use debug builds in the
/// default target dir and the same `--all-features` set, so clippy, tests
/// and docs share compiled dependencies.
pub(crate) fn task_test(ctx: &Ctx, args: &[String]) -> Result<(), Error> {
    no_args("test", args)?;
    ensure_xen_dev()?;
    run(ctx.cargo(["fmt", "--all", "--", "--check"]))?;
    run(ctx.cargo(["clippy", "--workspace", "--all-targets", "--all-features", "--", "-D", "warnings"]))?;
    // The CLI without Xen and TLS too: code gated on the features has broken (and warned)
    // only there before. `check`-mode builds, so this costs little.
    run(ctx.cargo(["clippy", "-p", "xsr", "--all-targets", "--no-default-features", "--", "-D", "warnings"]))?;
    if nextest_available(ctx) {
        // `--no-tests=warn`: like `cargo test`, a workspace (or a crate)
        // without tests yet is not a failure.
        run(ctx.cargo(["nextest", "run", "--workspace", "--all-features", "--no-tests=warn"]))?;
    } else {
        println!("note: cargo-nextest is not installed; using `cargo test`");
        run(ctx.cargo(["test", "--workspace", "--all-features"]))?;
    }
    // The binary without the `xen` feature: its Xen commands say what is missing.
    run(ctx.cargo(["test", "-p", "xsr", "--test", "cli_noxen"]))?;
    run(ctx.cargo(["test", "--workspace", "--all-features", "--doc"]))?;
    run(ctx.cargo(["doc", "--workspace", "--no-deps", "--all-features"]).env("RUSTDOCFLAGS", "-D warnings"))?;
    check_doc_links(ctx)?;
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

/// Fails on a link rustdoc rendered as plain text (`[<code>NAME</code>]`): an intra-doc link to
/// a crate outside the workspace, which `--no-deps` cannot resolve and rustdoc does not warn
/// about. Links to other workspace crates (`sr_memory::GuestMemory`) are left alone: they
/// resolve where all of them are documented together (docs.rs).
fn check_doc_links(ctx: &Ctx) -> Result<(), Error> {
    let target = env::var_os("CARGO_TARGET_DIR").map_or_else(|| ctx.root.join("target"), PathBuf::from);
    let crates: Vec<String> =
        crate::package::workspace_package_names(&ctx.root)?.iter().map(|n| n.replace('-', "_")).collect();
    // The items the workspace documents (`struct.PageBatch.html` -> `PageBatch`): rustdoc
    // renders a link to another workspace crate's item as text when it documents the linking
    // crate before the linked one is written (cargo runs rustdoc on crates in parallel), so a
    // link whose first segment names one of them resolves where all are documented together.
    // Every file under the crates' doc folders, walked once for both passes below.
    let mut files = Vec::new();
    let mut dirs: Vec<PathBuf> = crates.iter().map(|name| target.join("doc").join(name)).collect();
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() { dirs.push(path) } else { files.push(path) }
        }
    }
    let mut documented = std::collections::HashSet::new();
    for path in &files {
        if let Some(file) = path.file_name().and_then(|f| f.to_str())
            && let Some(stem) = file.strip_suffix(".html")
            && let Some((_, item)) = stem.split_once('.')
        {
            documented.insert(item.to_string());
        }
    }
    let mut bad = Vec::new();
    for path in files.iter().filter(|p| p.extension().is_some_and(|e| e == "html")) {
        for text in fs::read_to_string(path).unwrap_or_default().split("[<code>").skip(1) {
            let link = text.split("</code>]").next().unwrap_or_default();
            let first = link.split("::").next().unwrap_or_default();
            if !crates.iter().any(|c| link.starts_with(&format!("{c}::"))) && !documented.contains(first) {
                bad.push(format!("{}: [{link}]", path.display()));
            }
        }
    }
    if bad.is_empty() {
        return Ok(());
    }
    Err(err(format!(
        "doc links rendered as text (give another crate's item a URL: [`Item`](https://docs.rs/...)):\n  {}",
        bad.join("\n  ")
    )))
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
