//! The real Xen 4.17 `xl save` file of `../shared/testdata/xen-4.17/`, shared by the tests of
//! every crate (included with `#[path]`). CI clones the repository with `shared/` beside it,
//! so the file is found by walking up from the crate; a missing file fails the test.

use std::io::Read;
use std::path::PathBuf;

/// The file, decompressed.
pub fn real_save_file() -> Vec<u8> {
    let rel = "shared/testdata/xen-4.17/tiny32-1vcpu.save.xz";
    let mut dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let path = loop {
        if dir.join(rel).exists() {
            break dir.join(rel);
        }
        assert!(dir.pop(), "{rel} not found above {}", env!("CARGO_MANIFEST_DIR"));
    };
    let mut out = Vec::new();
    xz2::read::XzDecoder::new(std::fs::File::open(path).unwrap()).read_to_end(&mut out).unwrap();
    out
}
