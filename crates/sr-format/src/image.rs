//! The libxc image header (24 bytes, big-endian) and domain header (16 bytes).

use core::fmt;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned, big_endian, little_endian};

use crate::error::{Error, Result};

/// Image header marker: all ones, which no legacy image can start with.
pub const IHDR_MARKER: u64 = 0xFFFF_FFFF_FFFF_FFFF;
/// Image header id, "XENF" in ASCII.
pub const IHDR_ID: u32 = 0x5845_4E46;
/// Oldest stream version a restorer accepts.
pub const IHDR_VERSION_MIN: u32 = 2;
/// Stream version written by current Xen and by default by us.
pub const IHDR_VERSION: u32 = 3;
/// Option bit 0: the stream after the image header is big-endian.
pub const IHDR_OPT_BIG_ENDIAN: u16 = 0x0001;

/// Whether strict (Python-verifier) rules apply on top of Xen's C restorer rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Strictness {
    /// Accept what Xen's C restorer accepts; reserved fields and padding are ignored.
    #[default]
    Lenient,
    /// Also reject non-zero reserved fields and padding and bodies on empty records, as Xen's
    /// Python verifier does. (Rules that need stream context, such as v3-only records in a v2
    /// stream, are applied by the restorer in its strict mode.)
    Strict,
}

impl Strictness {
    /// Whether strict rules apply.
    pub fn is_strict(self) -> bool {
        self == Strictness::Strict
    }
}

/// The image header that starts every libxc stream. Always big-endian.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, PartialEq, Eq, Debug)]
#[repr(C)]
pub struct ImageHeader {
    /// [`IHDR_MARKER`].
    pub marker: big_endian::U64,
    /// [`IHDR_ID`].
    pub id: big_endian::U32,
    /// Stream version, 2 or 3.
    pub version: big_endian::U32,
    /// Option bits; bit 0 big-endian, the rest reserved.
    pub options: big_endian::U16,
    /// Reserved, zero.
    pub reserved1: big_endian::U16,
    /// Reserved, zero.
    pub reserved2: big_endian::U32,
}

const _: () = assert!(size_of::<ImageHeader>() == 24);
const _: () = assert!(core::mem::offset_of!(ImageHeader, id) == 8);
const _: () = assert!(core::mem::offset_of!(ImageHeader, version) == 12);
const _: () = assert!(core::mem::offset_of!(ImageHeader, options) == 16);
const _: () = assert!(core::mem::offset_of!(ImageHeader, reserved1) == 18);
const _: () = assert!(core::mem::offset_of!(ImageHeader, reserved2) == 20);

impl ImageHeader {
    /// A little-endian image header of the given version.
    pub fn new(version: u32) -> Self {
        Self {
            marker: big_endian::U64::new(IHDR_MARKER),
            id: big_endian::U32::new(IHDR_ID),
            version: big_endian::U32::new(version),
            options: big_endian::U16::ZERO,
            reserved1: big_endian::U16::ZERO,
            reserved2: big_endian::U32::ZERO,
        }
    }

    /// Checks the header found at `offset`: marker, id, version 2..=3 and the big-endian bit
    /// (rejected, as Xen does); in strict mode also the reserved option bits and words.
    pub fn validate(&self, offset: u64, strictness: Strictness) -> Result<()> {
        if self.marker.get() != IHDR_MARKER {
            return Err(Error::BadMarker { offset, found: self.marker.get() });
        }
        if self.id.get() != IHDR_ID {
            return Err(Error::BadImageId { offset: offset + 8, found: self.id.get() });
        }
        let version = self.version.get();
        if !(IHDR_VERSION_MIN..=IHDR_VERSION).contains(&version) {
            return Err(Error::BadVersion { offset: offset + 12, found: version });
        }
        let options = self.options.get();
        if options & IHDR_OPT_BIG_ENDIAN != 0 {
            return Err(Error::BigEndian { offset: offset + 16 });
        }
        if strictness.is_strict() {
            let reserved = [
                ("image header options bits 1-15", 16, u64::from(options & !IHDR_OPT_BIG_ENDIAN)),
                ("image header reserved (u16)", 18, u64::from(self.reserved1.get())),
                ("image header reserved (u32)", 20, u64::from(self.reserved2.get())),
            ];
            for (field, at, value) in reserved {
                if value != 0 {
                    return Err(Error::ReservedNonZero { offset: offset + at, field, value });
                }
            }
        }
        Ok(())
    }
}

/// The guest kind a stream describes.
///
/// Types 3 (PVH) and 4 (ARM) were defined by the original design of the format and later
/// dropped by Xen; we keep them. Other values are reserved.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DomainType(pub u32);

impl DomainType {
    /// x86 paravirtualised guest.
    pub const X86_PV: DomainType = DomainType(1);
    /// x86 hardware-virtualised guest (also modern PVH guests, as current Xen writes them).
    pub const X86_HVM: DomainType = DomainType(2);
    /// x86 PVH guest written as its own type.
    pub const X86_PVH: DomainType = DomainType(3);
    /// ARM guest.
    pub const ARM: DomainType = DomainType(4);

    /// The four known domain types.
    pub const ALL: [DomainType; 4] = [Self::X86_PV, Self::X86_HVM, Self::X86_PVH, Self::ARM];

    /// Name of a known type.
    pub const fn name(self) -> Option<&'static str> {
        match self.0 {
            1 => Some("x86 PV"),
            2 => Some("x86 HVM"),
            3 => Some("x86 PVH"),
            4 => Some("ARM"),
            _ => None,
        }
    }

    /// Whether the type is one of the four known ones.
    pub const fn is_known(self) -> bool {
        self.name().is_some()
    }

    /// Whether `page_shift` is valid for this type: 12 on x86; 12, 14 or 16 on ARM.
    pub const fn page_shift_valid(self, page_shift: u16) -> bool {
        match self.0 {
            1..=3 => page_shift == 12,
            4 => matches!(page_shift, 12 | 14 | 16),
            _ => false,
        }
    }
}

impl fmt::Display for DomainType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "reserved domain type {}", self.0),
        }
    }
}

impl fmt::Debug for DomainType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DomainType({} {})", self.0, self)
    }
}

/// The domain header that follows the image header. Little-endian.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, PartialEq, Eq, Debug)]
#[repr(C)]
pub struct DomainHeader {
    /// Domain type, see [`DomainType`].
    pub dtype: little_endian::U32,
    /// log2 of the page size.
    pub page_shift: little_endian::U16,
    /// Reserved, zero.
    pub reserved: little_endian::U16,
    /// Xen major version of the saver (0: converted from a legacy image).
    pub xen_major: little_endian::U32,
    /// Xen minor version of the saver.
    pub xen_minor: little_endian::U32,
}

const _: () = assert!(size_of::<DomainHeader>() == 16);
const _: () = assert!(core::mem::offset_of!(DomainHeader, page_shift) == 4);
const _: () = assert!(core::mem::offset_of!(DomainHeader, reserved) == 6);
const _: () = assert!(core::mem::offset_of!(DomainHeader, xen_major) == 8);
const _: () = assert!(core::mem::offset_of!(DomainHeader, xen_minor) == 12);

impl DomainHeader {
    /// A domain header.
    pub fn new(dtype: DomainType, page_shift: u16, xen_major: u32, xen_minor: u32) -> Self {
        Self {
            dtype: little_endian::U32::new(dtype.0),
            page_shift: little_endian::U16::new(page_shift),
            reserved: little_endian::U16::ZERO,
            xen_major: little_endian::U32::new(xen_major),
            xen_minor: little_endian::U32::new(xen_minor),
        }
    }

    /// The domain type.
    pub fn domain_type(&self) -> DomainType {
        DomainType(self.dtype.get())
    }

    /// Page size in bytes (valid only after [`validate`](Self::validate) succeeded).
    pub fn page_size(&self) -> usize {
        1usize << (self.page_shift.get() & 31)
    }

    /// Checks the header found at `offset`: a known domain type and a page_shift valid for
    /// it; in strict mode also the reserved field.
    pub fn validate(&self, offset: u64, strictness: Strictness) -> Result<()> {
        let dtype = self.domain_type();
        let Some(name) = dtype.name() else {
            return Err(Error::BadDomainType { offset, found: dtype.0 });
        };
        let shift = self.page_shift.get();
        if !dtype.page_shift_valid(shift) {
            return Err(Error::BadPageShift { offset: offset + 4, domain: name, found: shift });
        }
        if strictness.is_strict() && self.reserved.get() != 0 {
            return Err(Error::ReservedNonZero {
                offset: offset + 6,
                field: "domain header reserved",
                value: u64::from(self.reserved.get()),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_image_header() {
        let want: [u8; 24] = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // marker
            0x58, 0x45, 0x4e, 0x46, // "XENF"
            0x00, 0x00, 0x00, 0x03, // version 3, big-endian
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        ];
        assert_eq!(ImageHeader::new(3).as_bytes(), &want);
        let parsed = ImageHeader::read_from_bytes(&want).unwrap();
        assert_eq!(parsed.version.get(), 3);
        parsed.validate(0, Strictness::Strict).unwrap();
    }

    #[test]
    fn golden_domain_header() {
        // Values from the real Xen 4.17 save file: x86 PV, page_shift 12, Xen 4.17.
        let want: [u8; 16] = [1, 0, 0, 0, 12, 0, 0, 0, 4, 0, 0, 0, 17, 0, 0, 0];
        assert_eq!(DomainHeader::new(DomainType::X86_PV, 12, 4, 17).as_bytes(), &want);
    }

    #[test]
    fn image_header_rejections() {
        let good = ImageHeader::new(3);
        let mut h = good;
        h.marker.set(0xFFFF_FFFF_FFFF_FFFE);
        assert!(matches!(h.validate(0, Strictness::Lenient), Err(Error::BadMarker { .. })));
        let mut h = good;
        h.id.set(0x5845_4E47);
        assert!(matches!(h.validate(0, Strictness::Lenient), Err(Error::BadImageId { offset: 8, .. })));
        for v in [0, 1, 4, u32::MAX] {
            let h = ImageHeader::new(v);
            assert!(matches!(h.validate(0, Strictness::Lenient), Err(Error::BadVersion { .. })));
        }
        ImageHeader::new(2).validate(0, Strictness::Strict).unwrap();
        let mut h = good;
        h.options.set(1);
        assert_eq!(h.validate(40, Strictness::Lenient), Err(Error::BigEndian { offset: 56 }));
        let mut h = good;
        h.options.set(2);
        h.validate(0, Strictness::Lenient).unwrap();
        assert!(matches!(h.validate(0, Strictness::Strict), Err(Error::ReservedNonZero { offset: 16, .. })));
        let mut h = good;
        h.reserved2.set(7);
        assert!(matches!(h.validate(0, Strictness::Strict), Err(Error::ReservedNonZero { offset: 20, .. })));
    }

    #[test]
    fn domain_header_rules() {
        for t in [0, 5, u32::MAX] {
            let h = DomainHeader::new(DomainType(t), 12, 4, 17);
            assert!(matches!(h.validate(24, Strictness::Lenient), Err(Error::BadDomainType { offset: 24, .. })));
        }
        for t in DomainType::ALL {
            DomainHeader::new(t, 12, 4, 17).validate(0, Strictness::Strict).unwrap();
            for bad in [0, 11, 13, 32, 44] {
                assert!(DomainHeader::new(t, bad, 4, 17).validate(0, Strictness::Lenient).is_err());
            }
        }
        for s in [14, 16] {
            DomainHeader::new(DomainType::ARM, s, 4, 17).validate(0, Strictness::Lenient).unwrap();
            assert!(DomainHeader::new(DomainType::X86_HVM, s, 4, 17).validate(0, Strictness::Lenient).is_err());
        }
        let mut h = DomainHeader::new(DomainType::X86_HVM, 12, 4, 17);
        h.reserved.set(1);
        h.validate(0, Strictness::Lenient).unwrap();
        assert!(h.validate(0, Strictness::Strict).is_err());
    }
}
