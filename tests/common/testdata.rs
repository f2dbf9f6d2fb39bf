//! The real Xen 4.17 `xl save` files of `tests/data/xen-4.17/` (see its README), shared by the
//! tests of every crate (included with `#[path]`). The folder is found by walking up from the
//! including crate's manifest directory to the workspace root (the first ancestor whose
//! `Cargo.toml` declares `[workspace]`), so a fresh clone needs nothing beside it. A missing
//! file fails the test: it is never a silent skip.
#![allow(dead_code)] // not every test crate reads every file

use std::io::Read;
use std::path::{Path, PathBuf};

/// Where the files live, relative to the workspace root.
pub const DATA_DIR: &str = "tests/data/xen-4.17";

/// The 64-bit PV guest (`tiny32-1vcpu.save.xz`).
pub const PV: &str = "tiny32-1vcpu";
/// The HVM guest with QEMU as device model (`tiny32-hvm.save.xz`).
pub const HVM: &str = "tiny32-hvm";
/// The PVH guest (`tiny32-pvh.save.xz`).
pub const PVH: &str = "tiny32-pvh";

/// The workspace root: the nearest ancestor of `CARGO_MANIFEST_DIR` whose `Cargo.toml` has a
/// `[workspace]` table.
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .find(|d| {
            std::fs::read_to_string(d.join("Cargo.toml")).is_ok_and(|t| t.lines().any(|l| l.trim() == "[workspace]"))
        })
        .unwrap_or_else(|| panic!("no workspace Cargo.toml above {}", manifest.display()))
        .to_path_buf()
}

/// `tests/data/xen-4.17/` of this checkout.
pub fn data_dir() -> PathBuf {
    workspace_root().join(DATA_DIR)
}

/// The compressed file of guest `name` (one of [`PV`], [`HVM`], [`PVH`]) as stored.
pub fn xz_path(name: &str) -> PathBuf {
    let path = data_dir().join(format!("{name}.save.xz"));
    assert!(path.is_file(), "{} is missing from the checkout", path.display());
    path
}

/// The decompressed `xl save` file of guest `name`.
pub fn save_file(name: &str) -> Vec<u8> {
    let path = xz_path(name);
    let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = Vec::with_capacity(48 << 20);
    xz2::read::XzDecoder::new(std::io::BufReader::new(file))
        .read_to_end(&mut out)
        .unwrap_or_else(|e| panic!("{}: xz: {e}", path.display()));
    out
}

/// The PV guest's file, decompressed (33 632 267 bytes).
pub fn real_save_file() -> Vec<u8> {
    save_file(PV)
}

/// The HVM guest's file, decompressed (41 919 663 bytes).
pub fn real_hvm_file() -> Vec<u8> {
    save_file(HVM)
}

/// The PVH guest's file, decompressed (41 735 149 bytes).
pub fn real_pvh_file() -> Vec<u8> {
    save_file(PVH)
}
