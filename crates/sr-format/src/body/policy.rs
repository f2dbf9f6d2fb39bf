//! X86_CPUID_POLICY and X86_MSR_POLICY.

use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::nonempty_slice;
use crate::error::Result;
use crate::record::Record;

/// One CPUID leaf (Xen's `xen_cpuid_leaf_t`), 24 bytes.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, PartialEq, Eq, Debug, Default)]
#[repr(C)]
pub struct CpuidLeaf {
    /// Leaf.
    pub leaf: U32,
    /// Subleaf.
    pub subleaf: U32,
    /// EAX.
    pub eax: U32,
    /// EBX.
    pub ebx: U32,
    /// ECX.
    pub ecx: U32,
    /// EDX.
    pub edx: U32,
}

const _: () = assert!(size_of::<CpuidLeaf>() == 24);

/// One MSR policy entry (Xen's `xen_msr_entry_t`), 16 bytes.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, PartialEq, Eq, Debug, Default)]
#[repr(C)]
pub struct MsrEntry {
    /// MSR index.
    pub index: U32,
    /// Flags; must be zero.
    pub flags: U32,
    /// Value.
    pub value: U64,
}

const _: () = assert!(size_of::<MsrEntry>() == 16);
const _: () = assert!(core::mem::offset_of!(MsrEntry, value) == 8);

/// X86_CPUID_POLICY body: a non-empty array of 24-byte leaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuidPolicy<'a> {
    /// The leaves.
    pub leaves: &'a [CpuidLeaf],
}

impl<'a> CpuidPolicy<'a> {
    /// Parses a body whose length must be a non-zero multiple of 24.
    pub fn parse(rec: &Record<'a>) -> Result<Self> {
        Ok(Self { leaves: nonempty_slice(rec, "a non-zero multiple of 24")? })
    }
}

/// X86_MSR_POLICY body: a non-empty array of 16-byte entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsrPolicy<'a> {
    /// The entries.
    pub entries: &'a [MsrEntry],
}

impl<'a> MsrPolicy<'a> {
    /// Parses a body whose length must be a non-zero multiple of 16.
    pub fn parse(rec: &Record<'a>) -> Result<Self> {
        Ok(Self { entries: nonempty_slice(rec, "a non-zero multiple of 16")? })
    }

    pub(crate) fn first_reserved(&self) -> Option<(u64, &'static str, u64)> {
        let (i, e) = self.entries.iter().enumerate().find(|(_, e)| e.flags.get() != 0)?;
        Some((i as u64 * 16 + 4, "X86_MSR_POLICY entry flags", u64::from(e.flags.get())))
    }
}
