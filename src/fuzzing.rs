//! The fuzz entry point of the `save` target: a domain image directory fed to the saver
//! (hidden from the documentation: not a stable API). The corpus replay test calls the same
//! function.
//!
//! An input is `domain.json`, a NUL, then files, each `[name length: u8][name][data length:
//! u32 LE][data]` (`memory.img` among them; other names are blobs the manifest may name).
//! [`fuzz_save`] writes them into a fresh directory and runs what `xsr save` runs: it must
//! give a clear error or a stream that `verify --strict` accepts and a restore restores;
//! anything else panics.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sr_format::{StreamReader, Strictness};
use sr_memory::RamMemory;
use sr_restore::{RestoreOptions, Restorer};
use sr_save::{Guest, SaveError, Saver};

use crate::cmd::save::{SaveSettings, ZeroPagesArg};
use crate::dir_guest::DirGuest;
use crate::image_dir::{MANIFEST_FILE, MEMORY_FILE};

/// The memory image is extended (sparsely) to this many bytes, so manifests may name pages
/// their blob does not hold.
pub const FUZZ_IMAGE_BYTES: u64 = 16 << 20;
/// Page-type runs may cover this many pfns in a fuzz input (the CLI allows more).
pub const FUZZ_MAX_TYPED: u64 = 1 << 16;
/// Largest file in an input.
const MAX_FILE: usize = 1 << 20;

/// Encodes an input from `domain.json` and named files.
pub fn encode_input(manifest: &[u8], files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = manifest.to_vec();
    out.push(0);
    for (name, data) in files {
        out.push(name.len() as u8);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(data);
    }
    out
}

/// Splits an input into `domain.json` and files (names kept to `[A-Za-z0-9._-]`, at most
/// 32 bytes, not `.`/`..`; a truncated tail is dropped).
pub fn decode_input(data: &[u8]) -> (Vec<u8>, Vec<(String, Vec<u8>)>) {
    let (json, mut rest) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let mut files = Vec::new();
    while let Some((&n, tail)) = rest.split_first() {
        let Some((name, tail)) = tail.split_at_checked(usize::from(n)) else { break };
        let Some((len, tail)) = tail.split_at_checked(4) else { break };
        let len = (u32::from_le_bytes(len.try_into().expect("4 bytes")) as usize).min(MAX_FILE);
        let Some((body, tail)) = tail.split_at_checked(len.min(tail.len())) else { break };
        rest = tail;
        let name = String::from_utf8_lossy(name).into_owned();
        let plain = !name.is_empty()
            && name.len() <= 32
            && name != "."
            && name != ".."
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if plain && name != MANIFEST_FILE {
            files.push((name, body.to_vec()));
        }
    }
    (json.to_vec(), files)
}

/// A directory removed when dropped.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new() -> std::io::Result<Self> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("xsr-fuzz-save-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)?;
        Ok(Self(path))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What saving one input did.
#[derive(Debug)]
pub enum FuzzSaveOutcome {
    /// The directory could not be opened or the saver refused it; the message.
    Refused(String),
    /// The saver wrote a stream of this many bytes, which verifies strictly and restores.
    Saved(u64),
}

fn write_dir(dir: &Path, data: &[u8]) -> std::io::Result<()> {
    let (json, files) = decode_input(data);
    std::fs::write(dir.join(MANIFEST_FILE), json)?;
    for (name, body) in &files {
        std::fs::write(dir.join(name), body)?;
    }
    let image = std::fs::OpenOptions::new().create(true).append(true).open(dir.join(MEMORY_FILE))?;
    let len = image.metadata()?.len();
    image.set_len(len.max(FUZZ_IMAGE_BYTES))
}

/// Saves the domain image directory an input describes, as `xsr save` does, and checks the
/// result.
///
/// # Panics
/// When the saver panics, or writes a stream that strict verification or a restore rejects.
pub fn fuzz_save(data: &[u8]) -> FuzzSaveOutcome {
    let dir = ScratchDir::new().expect("a scratch directory");
    write_dir(&dir.0, data).expect("the scratch directory is writable");
    let guest = match DirGuest::open_with(&dir.0, Some(FUZZ_MAX_TYPED)) {
        Ok(g) => g,
        Err(e) => return FuzzSaveOutcome::Refused(format!("{e:#}")),
    };
    let settings = SaveSettings {
        container: None,
        stream_version: 3,
        batch: 1024,
        zero_pages: ZeroPagesArg::Data,
        verify: false,
        workers: 1,
        pvh_as_hvm: false,
    };
    let options = match settings.options(&guest) {
        Ok(o) => o,
        Err(e) => return FuzzSaveOutcome::Refused(format!("{e:#}")),
    };
    let mut out = Vec::new();
    match Saver::new(options).save(&guest, &mut out) {
        Err(SaveError::Worker(msg)) => panic!("save worker panicked: {msg}"),
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.is_empty());
            return FuzzSaveOutcome::Refused(msg);
        }
        Ok(_) => {}
    }
    // Strictly valid, unless the directory carries optional records of unknown types (kept,
    // as the stream it came from had them; a strict verification rejects those, as Xen's
    // Python verifier does).
    let strictness =
        if guest.image.state.optional_records.is_empty() { Strictness::Strict } else { Strictness::Lenient };
    let strict = RestoreOptions { strictness, ..RestoreOptions::default() };
    if let Err(e) = Restorer::new(strict).verify(StreamReader::from_slice(&out)) {
        panic!("save wrote a stream that verify rejects: {e}");
    }
    let limit = guest.memory().pfn_limit();
    let restored = Restorer::new(RestoreOptions::default())
        .restore(StreamReader::from_slice(&out), |h| RamMemory::new(u32::from(h.page_shift.get()), limit));
    match restored {
        Ok(r) => assert_eq!(r.state.p2m, guest.image.state.p2m, "the p2m did not survive"),
        Err(e) => panic!("save wrote a stream that restore rejects: {e}"),
    }
    FuzzSaveOutcome::Saved(out.len() as u64)
}
