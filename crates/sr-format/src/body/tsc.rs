//! X86_TSC_INFO.

use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::fixed_exact;
use crate::error::Result;
use crate::record::Record;

/// X86_TSC_INFO body: exactly 24 bytes.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, PartialEq, Eq, Debug, Default)]
#[repr(C)]
pub struct TscInfo {
    /// TSC mode.
    pub mode: U32,
    /// TSC frequency in kHz.
    pub khz: U32,
    /// Elapsed nanoseconds.
    pub nsec: U64,
    /// TSC incarnation.
    pub incarnation: U32,
    /// Reserved, zero.
    pub reserved: U32,
}

const _: () = assert!(size_of::<TscInfo>() == 24);
const _: () = assert!(core::mem::offset_of!(TscInfo, nsec) == 8);
const _: () = assert!(core::mem::offset_of!(TscInfo, incarnation) == 16);
const _: () = assert!(core::mem::offset_of!(TscInfo, reserved) == 20);

impl TscInfo {
    /// A TSC_INFO body.
    pub fn new(mode: u32, khz: u32, nsec: u64, incarnation: u32) -> Self {
        Self {
            mode: U32::new(mode),
            khz: U32::new(khz),
            nsec: U64::new(nsec),
            incarnation: U32::new(incarnation),
            reserved: U32::ZERO,
        }
    }

    /// Parses a body that must be exactly 24 bytes.
    pub fn parse<'a>(rec: &Record<'a>) -> Result<&'a Self> {
        fixed_exact(rec, "exactly 24")
    }

    pub(crate) fn first_reserved(&self) -> Option<(u64, &'static str, u64)> {
        (self.reserved.get() != 0).then(|| (20, "X86_TSC_INFO reserved", u64::from(self.reserved.get())))
    }
}
