//! libxc record framing: the record type space, the 8-byte record header and padding.

use core::fmt;

use zerocopy::little_endian::U32;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// Record bodies are padded with zeros to a multiple of this many bytes.
pub const REC_ALIGN: usize = 8;

/// Largest body length a restorer accepts (128 MiB); checked before any allocation.
pub const REC_LENGTH_MAX: u32 = 0x0800_0000;

/// Number of padding bytes that follow a body of `length` bytes.
pub const fn padding_len(length: u32) -> usize {
    (REC_ALIGN - (length as usize % REC_ALIGN)) % REC_ALIGN
}

/// Body length rounded up to the next multiple of [`REC_ALIGN`], computed in `u64` so that no
/// 32-bit length can wrap (Xen's libxl reader wraps for lengths >= 0xFFFF_FFF9).
pub const fn padded_len(length: u32) -> u64 {
    length as u64 + padding_len(length) as u64
}

/// A libxc record type.
///
/// A `u32` newtype rather than an enum: the type space is open, and unknown *optional* types
/// (bit 31 set) must survive parsing so that a restorer can skip them.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct RecordType(pub u32);

macro_rules! record_types {
    ($( $(#[$doc:meta])* $name:ident = $value:expr, )*) => {
        impl RecordType {
            $( $(#[$doc])* pub const $name: RecordType = RecordType($value); )*

            /// The Xen name of a known type, `None` for reserved values.
            pub const fn name(self) -> Option<&'static str> {
                match self.0 {
                    $( $value => Some(stringify!($name)), )*
                    _ => None,
                }
            }

            /// Every type defined by the format, in numeric order.
            pub const ALL: &'static [RecordType] = &[$(RecordType($value)),*];
        }
    };
}

record_types! {
    /// End of the stream.
    END = 0x00,
    /// A batch of pfns with their types and page contents.
    PAGE_DATA = 0x01,
    /// PV guest width and page-table levels.
    X86_PV_INFO = 0x02,
    /// PV p2m frame list.
    X86_PV_P2M_FRAMES = 0x03,
    /// PV vcpu basic context.
    X86_PV_VCPU_BASIC = 0x04,
    /// PV vcpu extended context.
    X86_PV_VCPU_EXTENDED = 0x05,
    /// PV vcpu xsave area.
    X86_PV_VCPU_XSAVE = 0x06,
    /// PV shared info page.
    SHARED_INFO = 0x07,
    /// TSC mode and frequency.
    X86_TSC_INFO = 0x08,
    /// HVM context blob.
    HVM_CONTEXT = 0x09,
    /// HVM parameters.
    HVM_PARAMS = 0x0A,
    /// Deprecated toolstack blob; accepted by nobody.
    TOOLSTACK = 0x0B,
    /// PV vcpu MSRs.
    X86_PV_VCPU_MSRS = 0x0C,
    /// Following pages are to be compared, not written.
    VERIFY = 0x0D,
    /// End of a checkpoint (Remus/COLO).
    CHECKPOINT = 0x0E,
    /// COLO back-channel dirty pfn list.
    CHECKPOINT_DIRTY_PFN_LIST = 0x0F,
    /// End of static data (v3).
    STATIC_DATA_END = 0x10,
    /// CPUID policy leaves.
    X86_CPUID_POLICY = 0x11,
    /// MSR policy entries.
    X86_MSR_POLICY = 0x12,
}

impl RecordType {
    /// Bit 31: a restorer that does not know the type may skip the record.
    pub const OPTIONAL_BIT: u32 = 0x8000_0000;

    /// Whether bit 31 (optional) is set.
    pub const fn is_optional(self) -> bool {
        self.0 & Self::OPTIONAL_BIT != 0
    }

    /// Whether the type is one the format defines (`0x00..=0x12`).
    pub const fn is_known(self) -> bool {
        self.name().is_some()
    }

    /// Whether the body of this type must be empty.
    pub const fn is_empty_record(self) -> bool {
        matches!(self.0, 0x00 | 0x0D | 0x0E | 0x10)
    }

    /// Whether this type was introduced by stream version 3.
    pub const fn is_v3_only(self) -> bool {
        matches!(self.0, 0x10..=0x12)
    }

    /// The Xen name, or "Reserved" / "Reserved (optional)" for undefined values.
    pub const fn name_or_reserved(self) -> &'static str {
        match self.name() {
            Some(n) => n,
            None if self.is_optional() => "Reserved (optional)",
            None => "Reserved",
        }
    }
}

impl fmt::Display for RecordType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "{:#010x}", self.0),
        }
    }
}

impl fmt::Debug for RecordType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecordType({:#x} {})", self.0, self.name_or_reserved())
    }
}

/// The 8-byte record header: type and unpadded body length, little-endian.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, PartialEq, Eq, Debug)]
#[repr(C)]
pub struct RecordHeader {
    /// Record type.
    pub rtype: U32,
    /// Body length in bytes, excluding padding.
    pub length: U32,
}

const _: () = assert!(size_of::<RecordHeader>() == 8);
const _: () = assert!(core::mem::offset_of!(RecordHeader, length) == 4);

impl RecordHeader {
    /// A header for `rtype` with a body of `length` bytes.
    pub fn new(rtype: RecordType, length: u32) -> Self {
        Self { rtype: U32::new(rtype.0), length: U32::new(length) }
    }

    /// The record type.
    pub fn record_type(&self) -> RecordType {
        RecordType(self.rtype.get())
    }
}

/// One libxc record as read from a stream: where it was, what it is, and its body.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Record<'a> {
    /// Index of the record within its libxc stream, from 0.
    pub index: u64,
    /// Absolute offset of the record header.
    pub offset: u64,
    /// Record type.
    pub rtype: RecordType,
    /// The body, without padding (without its last `elided` bytes when the reader skipped
    /// them).
    pub body: &'a [u8],
    /// Whether the padding after the body had any non-zero byte.
    pub padding_nonzero: bool,
    /// Bytes at the end of the body the reader skipped without reading: the page bodies of a
    /// PAGE_DATA record, when the reader was asked to
    /// ([`StreamReader::skip_page_bodies`](crate::StreamReader::skip_page_bodies)); else 0.
    pub elided: u32,
}

impl Record<'_> {
    /// Body length as declared in the header.
    pub fn length(&self) -> u32 {
        // The reader never produces a body longer than REC_LENGTH_MAX.
        u32::try_from(self.body.len()).unwrap_or(u32::MAX).saturating_add(self.elided)
    }

    /// Total bytes the record occupies on the wire (header, body and padding).
    pub fn wire_len(&self) -> u64 {
        8 + padded_len(self.length())
    }
}

/// Appends one complete record (header, body, zero padding) to `out`.
///
/// # Panics
/// If `body` is longer than `u32::MAX` bytes, which no record can be.
pub fn encode_record(out: &mut Vec<u8>, rtype: RecordType, body: &[u8]) {
    let length = u32::try_from(body.len()).expect("record body longer than u32::MAX");
    out.extend_from_slice(RecordHeader::new(rtype, length).as_bytes());
    out.extend_from_slice(body);
    out.resize(out.len() + padding_len(length), 0);
}

/// One complete record (header, body, zero padding) as a new vector.
pub fn record_bytes(rtype: RecordType, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + body.len() + REC_ALIGN);
    encode_record(&mut out, rtype, body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_arithmetic() {
        assert_eq!(padding_len(0), 0);
        assert_eq!(padding_len(1), 7);
        assert_eq!(padding_len(8), 0);
        assert_eq!(padding_len(720), 0);
        assert_eq!(padding_len(5176), 0);
        assert_eq!(padding_len(13), 3);
        assert_eq!(padded_len(u32::MAX), 0x1_0000_0000);
        assert_eq!(padded_len(0xFFFF_FFF9), 0x1_0000_0000);
    }

    #[test]
    fn names_and_bits() {
        assert_eq!(RecordType::PAGE_DATA.to_string(), "PAGE_DATA");
        assert_eq!(RecordType(0x13).to_string(), "0x00000013");
        assert_eq!(RecordType(0x13).name_or_reserved(), "Reserved");
        assert_eq!(RecordType(0x8000_0013).name_or_reserved(), "Reserved (optional)");
        assert!(RecordType(0x8000_0000).is_optional());
        assert!(!RecordType::END.is_optional());
        assert_eq!(RecordType::ALL.len(), 19);
        assert_eq!(RecordType::X86_MSR_POLICY, RecordType(0x12));
        assert!(RecordType::STATIC_DATA_END.is_v3_only());
        assert!(RecordType::VERIFY.is_empty_record());
    }

    #[test]
    fn golden_record_bytes() {
        // TSC_INFO-like 3-byte body: header (type 8, length 3), body, 5 zero bytes.
        let got = record_bytes(RecordType::X86_TSC_INFO, &[0xAA, 0xBB, 0xCC]);
        let want = [8, 0, 0, 0, 3, 0, 0, 0, 0xAA, 0xBB, 0xCC, 0, 0, 0, 0, 0];
        assert_eq!(got, want);
        assert_eq!(record_bytes(RecordType::END, &[]), [0u8; 8]);
    }
}
