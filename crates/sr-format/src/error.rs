//! The one error type of the wire layer.
//!
//! Every variant names one malformation and carries the absolute byte offset in the input
//! where it was found; record-level variants also carry the record's index in its layer and
//! its type, so a caller can print "record 7 (PAGE_DATA) at byte 0x1a8: ...".

use crate::record::RecordType;

/// Result alias for this crate.
pub type Result<T, E = Error> = core::result::Result<T, E>;

/// A malformed or unreadable stream.
///
/// `offset` is always an absolute byte offset from the start of the input (the first byte of
/// an `xl` file, libxl stream or libxc stream, whichever the caller started reading at). For
/// record-level variants it is the offset of the record header; `index` counts records of the
/// same layer from 0.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input ended inside an item.
    #[error("truncated at byte {offset}: {what} needs {needed} bytes, only {got} available")]
    Truncated {
        /// Offset where the item starts.
        offset: u64,
        /// What was being read.
        what: &'static str,
        /// Bytes the item needs.
        needed: u64,
        /// Bytes that were available.
        got: u64,
    },
    /// The underlying reader or writer failed.
    #[error("I/O error at byte {offset}: {message}")]
    Io {
        /// Offset at which the operation failed.
        offset: u64,
        /// The I/O error kind.
        kind: std::io::ErrorKind,
        /// The I/O error's message.
        message: String,
    },
    /// The input starts with none of the known layers (xl file, libxl stream, libxc stream).
    #[error("byte {offset}: not a Xen save image (starts with {})", hex_bytes(found))]
    UnknownLayer {
        /// Offset of the first byte inspected.
        offset: u64,
        /// The first bytes found.
        found: [u8; 8],
    },
    /// Image header marker is not all ones.
    #[error("byte {offset}: invalid image marker {found:#018x} (expected 0xffffffffffffffff)")]
    BadMarker {
        /// Offset of the image header.
        offset: u64,
        /// Marker found.
        found: u64,
    },
    /// Image header id is not "XENF".
    #[error("byte {offset}: invalid image id {found:#010x} (expected 0x58454e46, \"XENF\")")]
    BadImageId {
        /// Offset of the image header.
        offset: u64,
        /// Id found.
        found: u32,
    },
    /// Image version outside 2..=3.
    #[error("byte {offset}: unsupported stream version {found} (supported: 2 and 3)")]
    BadVersion {
        /// Offset of the image header.
        offset: u64,
        /// Version found.
        found: u32,
    },
    /// Image or libxl header says the stream is big-endian.
    #[error("byte {offset}: big-endian streams are not supported")]
    BigEndian {
        /// Offset of the header.
        offset: u64,
    },
    /// A reserved field or bit is non-zero (strict checking only).
    #[error("byte {offset}: reserved field {field} is {value:#x}, must be zero")]
    ReservedNonZero {
        /// Offset of the field.
        offset: u64,
        /// Name of the field.
        field: &'static str,
        /// Value found.
        value: u64,
    },
    /// Domain header type is 0 or not a known domain type.
    #[error("byte {offset}: unknown domain type {found}")]
    BadDomainType {
        /// Offset of the domain header.
        offset: u64,
        /// Type found.
        found: u32,
    },
    /// Domain header page_shift is not valid for the domain type.
    #[error("byte {offset}: page_shift {found} is not valid for a {domain} domain")]
    BadPageShift {
        /// Offset of the domain header.
        offset: u64,
        /// Name of the domain type.
        domain: &'static str,
        /// page_shift found.
        found: u16,
    },
    /// Record body longer than the 128 MiB limit (detected before reading the body).
    #[error("record {index} ({record}) at byte {offset}: body length {length} exceeds the limit {limit}")]
    RecordTooLong {
        /// Offset of the record header.
        offset: u64,
        /// Record index.
        index: u64,
        /// Record type.
        record: RecordType,
        /// Declared body length.
        length: u32,
        /// The limit in force.
        limit: u32,
    },
    /// Non-zero bytes in the padding after a record body (strict checking only).
    #[error("record {index} ({record}) at byte {offset}: non-zero padding")]
    NonZeroPadding {
        /// Offset of the record header.
        offset: u64,
        /// Record index.
        index: u64,
        /// Record type.
        record: RecordType,
    },
    /// A record body of the wrong length.
    #[error("record {index} ({record}) at byte {offset}: body length {found}, expected {rule}")]
    BadLength {
        /// Offset of the record header.
        offset: u64,
        /// Record index.
        index: u64,
        /// Record type.
        record: RecordType,
        /// Body length found.
        found: u32,
        /// The rule broken, e.g. "exactly 24" or "8 + 8 * count + 4096 * pages = 4202504".
        rule: String,
    },
    /// An HVM save record (inside HVM_CONTEXT) whose length Xen would reject.
    #[error(
        "HVM save record {} (type {typecode}, instance {instance}) at byte {offset}: length {length}, expected {rule}",
        crate::body::hvm_context::HvmSaveType(*typecode)
    )]
    BadHvmSaveRecord {
        /// Offset of the record's descriptor.
        offset: u64,
        /// Type code.
        typecode: u16,
        /// Instance.
        instance: u16,
        /// Payload length found.
        length: u32,
        /// The rule broken, e.g. "exactly 16 bytes".
        rule: String,
    },
    /// A record that must be empty has a body (strict checking only).
    #[error("record {index} ({record}) at byte {offset}: has a body of {length} bytes, must be empty")]
    UnexpectedBody {
        /// Offset of the record header.
        offset: u64,
        /// Record index.
        index: u64,
        /// Record type.
        record: RecordType,
        /// Body length found.
        length: u32,
    },
    /// PAGE_DATA with a count of zero.
    #[error("record {index} (PAGE_DATA) at byte {offset}: pfn count is 0")]
    PageDataCountZero {
        /// Offset of the record header.
        offset: u64,
        /// Record index.
        index: u64,
    },
    /// A PAGE_DATA entry with a reserved page type (0x5..=0x8).
    #[error(
        "record {index} (PAGE_DATA) at byte {offset}: entry {entry} (pfn {pfn:#x}) has unknown page type {nibble:#x}"
    )]
    UnknownPageType {
        /// Offset of the record header.
        offset: u64,
        /// Record index.
        index: u64,
        /// Entry index within the record.
        entry: u32,
        /// The entry's pfn.
        pfn: u64,
        /// The page type nibble.
        nibble: u8,
    },
    /// X86_PV_INFO with an invalid (guest_width, pt_levels) pair.
    #[error(
        "record {index} (X86_PV_INFO) at byte {offset}: (guest_width, pt_levels) = ({width}, {levels}), expected (4, 3) or (8, 4)"
    )]
    BadPvInfo {
        /// Offset of the record header.
        offset: u64,
        /// Record index.
        index: u64,
        /// Guest width in bytes.
        width: u8,
        /// Page-table levels.
        levels: u8,
    },
    /// X86_PV_P2M_FRAMES with start_pfn > end_pfn.
    #[error("record {index} (X86_PV_P2M_FRAMES) at byte {offset}: start_pfn {start:#x} > end_pfn {end:#x}")]
    BadP2mRange {
        /// Offset of the record header.
        offset: u64,
        /// Record index.
        index: u64,
        /// start_pfn.
        start: u32,
        /// end_pfn.
        end: u32,
    },
    /// libxl stream header ident is not "LibxlFmt".
    #[error("byte {offset}: invalid libxl stream ident {found:#018x}")]
    BadLibxlIdent {
        /// Offset of the libxl header.
        offset: u64,
        /// Ident found.
        found: u64,
    },
    /// libxl stream version is not 2.
    #[error("byte {offset}: unsupported libxl stream version {found} (supported: 2)")]
    BadLibxlVersion {
        /// Offset of the libxl header.
        offset: u64,
        /// Version found.
        found: u32,
    },
    /// A libxl record of a type libxl does not know (libxl fails even for bit 31).
    #[error("libxl record {index} at byte {offset}: unknown type {found:#x}")]
    UnknownLibxlRecord {
        /// Offset of the record header.
        offset: u64,
        /// Record index.
        index: u64,
        /// Type found.
        found: u32,
    },
    /// A libxl record of the wrong length.
    #[error("libxl record {index} ({record}) at byte {offset}: body length {found}, expected {rule}")]
    BadLibxlLength {
        /// Offset of the record header.
        offset: u64,
        /// Record index.
        index: u64,
        /// Name of the record type.
        record: &'static str,
        /// Body length found.
        found: u32,
        /// The rule broken.
        rule: &'static str,
    },
    /// A libxl record that is not allowed at this point of the stream.
    #[error("libxl record {index} ({record}) at byte {offset}: {why}")]
    MisplacedLibxlRecord {
        /// Offset of the record header.
        offset: u64,
        /// Record index.
        index: u64,
        /// Name of the record type.
        record: &'static str,
        /// Why it is not allowed here.
        why: &'static str,
    },
    /// A malformed EMULATOR_XENSTORE_DATA body.
    #[error("libxl record {index} (EMULATOR_XENSTORE_DATA) at byte {offset}: {why}")]
    BadXenstoreData {
        /// Offset of the record header.
        offset: u64,
        /// Record index.
        index: u64,
        /// What is wrong.
        why: &'static str,
    },
    /// `xl` file magic mismatch.
    #[error("byte {offset}: not an xl save file (bad magic)")]
    BadXlMagic {
        /// Offset of the xl header.
        offset: u64,
    },
    /// `xl` byte-order marker is not 0x01020304 in little-endian order.
    #[error("byte {offset}: xl byte-order marker {found:#010x} (expected 0x01020304 little-endian)")]
    BadXlByteOrder {
        /// Offset of the marker.
        offset: u64,
        /// Value read little-endian.
        found: u32,
    },
    /// `xl` mandatory flags with unknown bits.
    #[error("byte {offset}: xl mandatory flags {found:#x} have unknown bits")]
    BadXlFlags {
        /// Offset of the flags.
        offset: u64,
        /// Flags found.
        found: u32,
    },
    /// `xl` optional data too short for its config length.
    #[error("byte {offset}: xl config length {config_len} does not fit optional data of {optional_len} bytes")]
    BadXlConfig {
        /// Offset of the optional data.
        offset: u64,
        /// Declared config length.
        config_len: u32,
        /// Declared optional data length.
        optional_len: u32,
    },
    /// The header `virsh save` writes is malformed.
    #[error("byte {offset}: virsh save header: bad {what}")]
    BadVirshHeader {
        /// Offset of the bad field.
        offset: u64,
        /// Which field, with the value found.
        what: String,
    },
    /// An `xl` file without the STREAMv2 flag: a pre-4.6 legacy image.
    #[error("byte {offset}: legacy (pre-Xen 4.6) save image; convert it with convert-legacy-stream first")]
    LegacyImage {
        /// Offset of the xl header.
        offset: u64,
    },
    /// A libxl record body longer than the limit (detected before reading the body).
    #[error("libxl record {index} ({record}) at byte {offset}: body length {length} exceeds the limit {limit}")]
    LibxlRecordTooLong {
        /// Offset of the record header.
        offset: u64,
        /// Record index among libxl records.
        index: u64,
        /// Record type name.
        record: &'static str,
        /// Declared body length.
        length: u32,
        /// The limit in force.
        limit: u32,
    },
}

impl Error {
    /// The absolute byte offset the error refers to.
    pub fn offset(&self) -> u64 {
        match *self {
            Error::Truncated { offset, .. }
            | Error::Io { offset, .. }
            | Error::UnknownLayer { offset, .. }
            | Error::BadMarker { offset, .. }
            | Error::BadImageId { offset, .. }
            | Error::BadVersion { offset, .. }
            | Error::BigEndian { offset }
            | Error::ReservedNonZero { offset, .. }
            | Error::BadDomainType { offset, .. }
            | Error::BadPageShift { offset, .. }
            | Error::RecordTooLong { offset, .. }
            | Error::NonZeroPadding { offset, .. }
            | Error::BadLength { offset, .. }
            | Error::BadHvmSaveRecord { offset, .. }
            | Error::UnexpectedBody { offset, .. }
            | Error::PageDataCountZero { offset, .. }
            | Error::UnknownPageType { offset, .. }
            | Error::BadPvInfo { offset, .. }
            | Error::BadP2mRange { offset, .. }
            | Error::BadLibxlIdent { offset, .. }
            | Error::BadLibxlVersion { offset, .. }
            | Error::UnknownLibxlRecord { offset, .. }
            | Error::BadLibxlLength { offset, .. }
            | Error::MisplacedLibxlRecord { offset, .. }
            | Error::BadXenstoreData { offset, .. }
            | Error::BadXlMagic { offset }
            | Error::BadXlByteOrder { offset, .. }
            | Error::BadXlFlags { offset, .. }
            | Error::BadXlConfig { offset, .. }
            | Error::LegacyImage { offset }
            | Error::BadVirshHeader { offset, .. }
            | Error::LibxlRecordTooLong { offset, .. } => offset,
        }
    }

    /// Wraps an I/O error that happened at `offset`.
    pub fn io(offset: u64, err: &std::io::Error) -> Self {
        Error::Io { offset, kind: err.kind(), message: err.to_string() }
    }
}

/// Bytes as `0x`-prefixed hex, space-separated: `0x58 0x65 0x6e`.
fn hex_bytes(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:#04x}")).collect::<Vec<_>>().join(" ")
}
