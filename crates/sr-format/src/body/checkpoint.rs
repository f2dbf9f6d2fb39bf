//! CHECKPOINT_DIRTY_PFN_LIST (COLO back channel only).

use zerocopy::FromBytes;
use zerocopy::little_endian::U64;

use super::bad_length;
use crate::error::Result;
use crate::record::Record;

/// CHECKPOINT_DIRTY_PFN_LIST body: a list of u64 pfns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DirtyPfnList<'a> {
    /// The pfns.
    pub pfns: &'a [U64],
}

impl<'a> DirtyPfnList<'a> {
    /// Parses a body whose length must be a multiple of 8.
    pub fn parse(rec: &Record<'a>) -> Result<Self> {
        let pfns = <[U64]>::ref_from_bytes(rec.body).map_err(|_| bad_length(rec, "a multiple of 8"))?;
        Ok(Self { pfns })
    }
}
