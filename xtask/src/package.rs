//! `cargo xtask package`: `cargo publish --dry-run --workspace`, with our own crates'
//! stale unpacked copies and build fingerprints removed first.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::util::{Ctx, Error, io_err, run};

/// Under the target dir: where `package` builds the packaged crates.
const PACKAGE_TARGET_DIR: &str = "publish-dry-run";

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
pub(crate) fn task_package(ctx: &Ctx, args: &[String]) -> Result<(), Error> {
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
pub(crate) fn workspace_package_names(root: &Path) -> Result<Vec<String>, Error> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
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
}
