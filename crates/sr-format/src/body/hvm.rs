//! HVM_CONTEXT and HVM_PARAMS.

use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::{bad_length, fixed_prefix};
use crate::error::Result;
use crate::record::Record;

/// HVM_CONTEXT body: Xen's opaque HVM save blob; must not be empty.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HvmContext<'a> {
    /// The blob.
    pub blob: &'a [u8],
}

impl<'a> HvmContext<'a> {
    /// Parses a non-empty body.
    pub fn parse(rec: &Record<'a>) -> Result<Self> {
        if rec.body.is_empty() {
            return Err(bad_length(rec, "non-zero"));
        }
        Ok(Self { blob: rec.body })
    }

    /// Iterates the blob's save entries (for inspection; Xen never parses the blob itself).
    pub fn entries(&self) -> HvmSaveEntries<'a> {
        HvmSaveEntries { rest: self.blob }
    }
}

/// Descriptor of one entry in an HVM save blob.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, PartialEq, Eq, Debug, Default)]
#[repr(C)]
pub struct HvmSaveDescriptor {
    /// Entry type code (1 HEADER, 2 CPU, ..., 0 END).
    pub typecode: U16,
    /// Instance (e.g. the vcpu).
    pub instance: U16,
    /// Payload length, excluding this descriptor.
    pub length: U32,
}

const _: () = assert!(size_of::<HvmSaveDescriptor>() == 8);

/// Iterator over the entries of an HVM save blob; stops at the END entry or at the first
/// entry that does not fit.
#[derive(Clone, Debug)]
pub struct HvmSaveEntries<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for HvmSaveEntries<'a> {
    type Item = (&'a HvmSaveDescriptor, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let (desc, tail) = HvmSaveDescriptor::ref_from_prefix(self.rest).ok()?;
        let len = usize::try_from(desc.length.get()).ok()?;
        if len > tail.len() {
            self.rest = &[];
            return None;
        }
        let (payload, rest) = tail.split_at(len);
        self.rest = if desc.typecode.get() == 0 { &[] } else { rest };
        Some((desc, payload))
    }
}

/// Fixed part of HVM_PARAMS.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, PartialEq, Eq, Debug, Default)]
#[repr(C)]
pub struct HvmParamsHeader {
    /// Number of entries.
    pub count: U32,
    /// Reserved, zero.
    pub reserved: U32,
}

/// One HVM_PARAMS entry.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, PartialEq, Eq, Debug, Default)]
#[repr(C)]
pub struct HvmParamEntry {
    /// Parameter index.
    pub index: U64,
    /// Parameter value.
    pub value: U64,
}

const _: () = assert!(size_of::<HvmParamsHeader>() == 8);
const _: () = assert!(size_of::<HvmParamEntry>() == 16);

/// HVM_PARAMS body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HvmParams<'a> {
    /// count and reserved word.
    pub header: &'a HvmParamsHeader,
    /// The entries.
    pub entries: &'a [HvmParamEntry],
}

impl<'a> HvmParams<'a> {
    /// Parses a body whose length must be exactly `8 + 16 * count`.
    pub fn parse(rec: &Record<'a>) -> Result<Self> {
        let (header, rest) = fixed_prefix::<HvmParamsHeader>(rec, "at least 8")?;
        let count = header.count.get();
        let want = 8 + 16 * u64::from(count);
        let entries = <[HvmParamEntry]>::ref_from_bytes(rest)
            .ok()
            .filter(|e| e.len() as u64 == u64::from(count))
            .ok_or_else(|| bad_length(rec, format!("8 + 16 * count = {want}")))?;
        Ok(Self { header, entries })
    }

    pub(crate) fn first_reserved(&self) -> Option<(u64, &'static str, u64)> {
        (self.header.reserved.get() != 0).then(|| (4, "HVM_PARAMS reserved", u64::from(self.header.reserved.get())))
    }
}
