//! x86 PV records: X86_PV_INFO, X86_PV_P2M_FRAMES, X86_PV_VCPU_* and SHARED_INFO.

use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::{bad_length, fixed_prefix};
use crate::error::{Error, Result};
use crate::record::{Record, RecordType};

/// X86_PV_INFO body: guest width and page-table levels. At least 8 bytes (C accepts more).
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, PartialEq, Eq, Debug, Default)]
#[repr(C)]
pub struct PvInfo {
    /// Guest width in bytes: 4 or 8.
    pub guest_width: u8,
    /// Page-table levels: 3 or 4.
    pub pt_levels: u8,
    /// Reserved, zero.
    pub reserved: [u8; 6],
}

const _: () = assert!(size_of::<PvInfo>() == 8);

impl PvInfo {
    /// A PV_INFO body.
    pub fn new(guest_width: u8, pt_levels: u8) -> Self {
        Self { guest_width, pt_levels, reserved: [0; 6] }
    }

    /// Parses a body of at least 8 bytes whose (width, levels) is (4, 3) or (8, 4).
    pub fn parse<'a>(rec: &Record<'a>) -> Result<&'a Self> {
        let (info, _) = fixed_prefix::<Self>(rec, "at least 8")?;
        if !matches!((info.guest_width, info.pt_levels), (4, 3) | (8, 4)) {
            return Err(Error::BadPvInfo {
                offset: rec.offset,
                index: rec.index,
                width: info.guest_width,
                levels: info.pt_levels,
            });
        }
        Ok(info)
    }

    /// p2m entries per p2m frame (4096 / width).
    pub fn frames_per_page(&self) -> u32 {
        4096 / u32::from(self.guest_width.max(1))
    }

    pub(crate) fn first_reserved(&self) -> Option<(u64, &'static str, u64)> {
        let v = self.reserved.iter().fold(0u64, |acc, &b| acc << 8 | u64::from(b));
        (v != 0).then_some((2, "X86_PV_INFO reserved", v))
    }
}

/// Fixed part of X86_PV_P2M_FRAMES.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, PartialEq, Eq, Debug, Default)]
#[repr(C)]
pub struct P2mFramesHeader {
    /// First pfn covered.
    pub start_pfn: U32,
    /// Last pfn covered (inclusive).
    pub end_pfn: U32,
}

const _: () = assert!(size_of::<P2mFramesHeader>() == 8);

/// X86_PV_P2M_FRAMES body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct P2mFrames<'a> {
    /// start_pfn and end_pfn.
    pub header: &'a P2mFramesHeader,
    /// One pfn per p2m frame.
    pub frames: &'a [U64],
}

impl<'a> P2mFrames<'a> {
    /// Parses a body of at least 8 bytes, a multiple of 8, with start_pfn <= end_pfn.
    pub fn parse(rec: &Record<'a>) -> Result<Self> {
        let (header, rest) = fixed_prefix::<P2mFramesHeader>(rec, "at least 8")?;
        let frames = <[U64]>::ref_from_bytes(rest).map_err(|_| bad_length(rec, "8 + 8 * frames"))?;
        let (start, end) = (header.start_pfn.get(), header.end_pfn.get());
        if start > end {
            return Err(Error::BadP2mRange { offset: rec.offset, index: rec.index, start, end });
        }
        Ok(Self { header, frames })
    }

    /// Number of frames a guest of `guest_width` needs for start_pfn..=end_pfn.
    pub fn expected_frames(&self, guest_width: u8) -> u64 {
        let fpp = u64::from(4096 / u32::from(guest_width.max(1)));
        u64::from(self.header.end_pfn.get()) / fpp + 1 - u64::from(self.header.start_pfn.get()) / fpp
    }

    /// Checks the frame count against the guest width (Xen's exact length rule).
    pub fn check_frame_count(&self, rec: &Record<'_>, guest_width: u8) -> Result<()> {
        let want = self.expected_frames(guest_width);
        if self.frames.len() as u64 != want {
            return Err(bad_length(rec, format!("8 + 8 * {want} frames = {}", 8 + 8 * want)));
        }
        Ok(())
    }
}

/// The 8-byte header of every X86_PV_VCPU_* record.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, PartialEq, Eq, Debug, Default)]
#[repr(C)]
pub struct VcpuHeader {
    /// vcpu id.
    pub vcpu_id: U32,
    /// Reserved, zero.
    pub reserved: U32,
}

const _: () = assert!(size_of::<VcpuHeader>() == 8);

/// One MSR of X86_PV_VCPU_MSRS, 16 bytes.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, PartialEq, Eq, Debug, Default)]
#[repr(C)]
pub struct VcpuMsrEntry {
    /// MSR index.
    pub index: U32,
    /// Reserved, zero.
    pub reserved: U32,
    /// Value.
    pub value: U64,
}

const _: () = assert!(size_of::<VcpuMsrEntry>() == 16);

/// An X86_PV_VCPU_{BASIC,EXTENDED,XSAVE,MSRS} body: header plus opaque blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vcpu<'a> {
    /// Which of the four vcpu records this is.
    pub kind: RecordType,
    /// vcpu id and reserved word.
    pub header: &'a VcpuHeader,
    /// The context blob (may be empty: Xen skips such records).
    pub blob: &'a [u8],
}

impl<'a> Vcpu<'a> {
    /// Parses a body of at least 8 bytes.
    pub fn parse(rec: &Record<'a>) -> Result<Self> {
        let (header, blob) = fixed_prefix::<VcpuHeader>(rec, "at least 8")?;
        Ok(Self { kind: rec.rtype, header, blob })
    }

    /// The vcpu id.
    pub fn vcpu_id(&self) -> u32 {
        self.header.vcpu_id.get()
    }

    /// For X86_PV_VCPU_MSRS, the entries (`None` if the blob is not a multiple of 16).
    pub fn msrs(&self) -> Option<&'a [VcpuMsrEntry]> {
        <[VcpuMsrEntry]>::ref_from_bytes(self.blob).ok()
    }

    pub(crate) fn first_reserved(&self) -> Option<(u64, &'static str, u64)> {
        (self.header.reserved.get() != 0).then(|| (4, "vcpu record reserved", u64::from(self.header.reserved.get())))
    }
}

/// Size of the SHARED_INFO body.
pub const SHARED_INFO_SIZE: usize = 4096;

/// SHARED_INFO body: exactly one 4096-byte page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SharedInfo<'a> {
    /// The raw page.
    pub page: &'a [u8],
}

impl<'a> SharedInfo<'a> {
    /// Parses a body that must be exactly 4096 bytes.
    pub fn parse(rec: &Record<'a>) -> Result<Self> {
        if rec.body.len() != SHARED_INFO_SIZE {
            return Err(bad_length(rec, "exactly 4096"));
        }
        Ok(Self { page: rec.body })
    }
}
