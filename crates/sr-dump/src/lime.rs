//! LiME, the Linux Memory Extractor's format: each range of physical memory is a 32-byte
//! header followed by the range's bytes (LiME's `lime_mem_range_header`, as Volatility's
//! `LimeLayer` reads it).

use std::fs::File;
use std::os::unix::fs::FileExt;

use crate::{CoreInput, DumpError, PageSource};

/// `0x4C694D45`, "EMiL" on disk (little-endian).
pub const LIME_MAGIC: u32 = 0x4C69_4D45;
/// The format version written.
pub const LIME_VERSION: u32 = 1;

/// One range header (32 bytes, little-endian).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LimeHeader {
    /// First physical address of the range.
    pub start: u64,
    /// Last physical address of the range (inclusive).
    pub end: u64,
}

impl LimeHeader {
    /// Size on disk.
    pub const SIZE: u64 = 32;

    /// The on-disk bytes: magic, version, start, end, 8 reserved zero bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        let mut b = [0u8; 32];
        b[..4].copy_from_slice(&LIME_MAGIC.to_le_bytes());
        b[4..8].copy_from_slice(&LIME_VERSION.to_le_bytes());
        b[8..16].copy_from_slice(&self.start.to_le_bytes());
        b[16..24].copy_from_slice(&self.end.to_le_bytes());
        b
    }
}

/// Writes `input` as LiME to `out` (an empty file): one range per run. Returns the file
/// length.
///
/// # Errors
///
/// [`DumpError`] for runs out of order, or an I/O error with the output offset.
pub fn write_lime(out: &File, input: &CoreInput, pages: &mut dyn PageSource) -> Result<u64, DumpError> {
    input.check()?;
    let shift = input.page_shift;
    // Each header right before its range's bodies: the file grows like an append.
    let mut at = 0u64;
    for &[first, count] in &input.runs {
        let header = LimeHeader { start: first << shift, end: ((first + count) << shift) - 1 };
        out.write_all_at(&header.to_bytes(), at).map_err(|source| DumpError::Io { offset: at, source })?;
        at += LimeHeader::SIZE;
        pages.copy_run(first, count, shift, out, at).map_err(|source| DumpError::Io { offset: at, source })?;
        at += count << shift;
    }
    out.set_len(at).map_err(|source| DumpError::Io { offset: at, source })?;
    Ok(at)
}
