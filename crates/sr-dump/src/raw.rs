//! Sparse raw images.

use std::fs::File;

use crate::{CoreInput, DumpError, PageSource, copy_runs};

/// Writes a raw image of `input` to `out` (an empty file): pfn p at byte `p << page_shift`,
/// the file as long as the last populated page's end, unpopulated ranges left as holes.
/// Returns the file length.
///
/// # Errors
///
/// [`DumpError`] for runs out of order, or an I/O error with the output offset.
pub fn write_raw(out: &File, input: &CoreInput, pages: &mut dyn PageSource) -> Result<u64, DumpError> {
    input.check()?;
    let len = input.runs.last().map_or(0, |&[first, count]| (first + count) << input.page_shift);
    copy_runs(out, input, pages, |i| input.runs[i][0] << input.page_shift)?;
    out.set_len(len).map_err(|source| DumpError::Io { offset: len, source })?;
    Ok(len)
}
