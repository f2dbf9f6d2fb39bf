//! The libxl v2 stream that wraps a libxc stream: a 16-byte big-endian header, then
//! little-endian records, one of which (LIBXC_CONTEXT) is followed by the libxc stream.

use core::fmt;

use zerocopy::little_endian::U32;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned, big_endian};

use crate::error::{Error, Result};
use crate::image::Strictness;
use crate::record::{RecordHeader, padding_len};

/// "LibxlFmt" as a big-endian u64.
pub const LIBXL_IDENT: u64 = 0x4c69_6278_6c46_6d74;
/// The only libxl stream version.
pub const LIBXL_VERSION: u32 = 2;
/// Option bit 0: big-endian (rejected).
pub const LIBXL_OPT_BIG_ENDIAN: u32 = 0x1;
/// Option bit 1: converted from a legacy stream.
pub const LIBXL_OPT_LEGACY: u32 = 0x2;

/// The libxl stream header. Big-endian.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, PartialEq, Eq, Debug)]
#[repr(C)]
pub struct LibxlHeader {
    /// [`LIBXL_IDENT`].
    pub ident: big_endian::U64,
    /// [`LIBXL_VERSION`].
    pub version: big_endian::U32,
    /// Option bits.
    pub options: big_endian::U32,
}

const _: () = assert!(size_of::<LibxlHeader>() == 16);

impl LibxlHeader {
    /// A little-endian version-2 header.
    pub fn new(legacy: bool) -> Self {
        Self {
            ident: big_endian::U64::new(LIBXL_IDENT),
            version: big_endian::U32::new(LIBXL_VERSION),
            options: big_endian::U32::new(if legacy { LIBXL_OPT_LEGACY } else { 0 }),
        }
    }

    /// Checks ident, version and the big-endian bit (as libxl does); strict mode also
    /// rejects unknown option bits.
    pub fn validate(&self, offset: u64, strictness: Strictness) -> Result<()> {
        if self.ident.get() != LIBXL_IDENT {
            return Err(Error::BadLibxlIdent { offset, found: self.ident.get() });
        }
        if self.version.get() != LIBXL_VERSION {
            return Err(Error::BadLibxlVersion { offset: offset + 8, found: self.version.get() });
        }
        let opts = self.options.get();
        if opts & LIBXL_OPT_BIG_ENDIAN != 0 {
            return Err(Error::BigEndian { offset: offset + 12 });
        }
        let unknown = opts & !(LIBXL_OPT_BIG_ENDIAN | LIBXL_OPT_LEGACY);
        if strictness.is_strict() && unknown != 0 {
            return Err(Error::ReservedNonZero {
                offset: offset + 12,
                field: "libxl options",
                value: u64::from(unknown),
            });
        }
        Ok(())
    }
}

/// A libxl record type.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LibxlRecordType(pub u32);

impl LibxlRecordType {
    /// End of the libxl stream.
    pub const END: Self = Self(0);
    /// The libxc stream follows.
    pub const LIBXC_CONTEXT: Self = Self(1);
    /// Device-model xenstore keys.
    pub const EMULATOR_XENSTORE_DATA: Self = Self(2);
    /// Device-model (qemu) state.
    pub const EMULATOR_CONTEXT: Self = Self(3);
    /// End of one checkpoint's libxl records.
    pub const CHECKPOINT_END: Self = Self(4);
    /// COLO back-channel state.
    pub const CHECKPOINT_STATE: Self = Self(5);

    /// Name of a known type.
    pub const fn name(self) -> Option<&'static str> {
        match self.0 {
            0 => Some("END"),
            1 => Some("LIBXC_CONTEXT"),
            2 => Some("EMULATOR_XENSTORE_DATA"),
            3 => Some("EMULATOR_CONTEXT"),
            4 => Some("CHECKPOINT_END"),
            5 => Some("CHECKPOINT_STATE"),
            _ => None,
        }
    }

    /// Name, or "Reserved".
    pub const fn name_or_reserved(self) -> &'static str {
        match self.name() {
            Some(n) => n,
            None => "Reserved",
        }
    }
}

impl fmt::Display for LibxlRecordType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "{:#010x}", self.0),
        }
    }
}

impl fmt::Debug for LibxlRecordType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LibxlRecordType({:#x} {})", self.0, self.name_or_reserved())
    }
}

/// Emulator ids of EMULATOR_* records.
pub mod emulator {
    /// Unknown (legacy-converted).
    pub const UNKNOWN: u32 = 0;
    /// qemu-traditional.
    pub const QEMU_TRADITIONAL: u32 = 1;
    /// qemu-upstream, the only one written today.
    pub const QEMU_UPSTREAM: u32 = 2;
}

/// The 8-byte header of EMULATOR_XENSTORE_DATA and EMULATOR_CONTEXT bodies.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, PartialEq, Eq, Debug, Default)]
#[repr(C)]
pub struct EmulatorHeader {
    /// Emulator id (see [`emulator`]).
    pub id: U32,
    /// Emulator index.
    pub index: U32,
}

const _: () = assert!(size_of::<EmulatorHeader>() == 8);

/// One libxl record as read from a stream.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct LibxlRecord<'a> {
    /// Index of the record among libxl records, from 0.
    pub index: u64,
    /// Absolute offset of the record header.
    pub offset: u64,
    /// Record type.
    pub rtype: LibxlRecordType,
    /// Body without padding.
    pub body: &'a [u8],
    /// Whether the padding had a non-zero byte.
    pub padding_nonzero: bool,
}

impl<'a> LibxlRecord<'a> {
    fn bad_length(&self, rule: &'static str) -> Error {
        Error::BadLibxlLength {
            offset: self.offset,
            index: self.index,
            record: self.rtype.name_or_reserved(),
            found: u32::try_from(self.body.len()).unwrap_or(u32::MAX),
            rule,
        }
    }

    /// For EMULATOR_* records, the emulator header and the payload (length >= 8).
    pub fn emulator(&self) -> Result<(&'a EmulatorHeader, &'a [u8])> {
        EmulatorHeader::ref_from_prefix(self.body).map_err(|_| self.bad_length("at least 8"))
    }

    /// For EMULATOR_XENSTORE_DATA, the (key, value) pairs: NUL-terminated strings, keys
    /// non-empty and relative, as libxl requires.
    pub fn xenstore_pairs(&self) -> Result<Vec<(&'a [u8], &'a [u8])>> {
        let (_, mut data) = self.emulator()?;
        let bad = |why| Error::BadXenstoreData { offset: self.offset, index: self.index, why };
        let next = |data: &mut &'a [u8]| -> Result<&'a [u8]> {
            let nul = data.iter().position(|&b| b == 0).ok_or_else(|| bad("string not NUL terminated"))?;
            let (s, rest) = data.split_at(nul);
            *data = &rest[1..];
            Ok(s)
        };
        let mut pairs = Vec::new();
        while !data.is_empty() {
            let key = next(&mut data)?;
            if data.is_empty() {
                return Err(bad("key without a value"));
            }
            let value = next(&mut data)?;
            if key.is_empty() {
                return Err(bad("empty key"));
            }
            if key[0] == b'/' {
                return Err(bad("absolute key"));
            }
            pairs.push((key, value));
        }
        Ok(pairs)
    }

    /// Strict checks: non-zero padding, bodies on empty records.
    pub fn check_strict(&self) -> Result<()> {
        if self.padding_nonzero {
            return Err(Error::BadLibxlLength {
                offset: self.offset,
                index: self.index,
                record: self.rtype.name_or_reserved(),
                found: u32::try_from(self.body.len()).unwrap_or(u32::MAX),
                rule: "zero padding",
            });
        }
        let must_be_empty = matches!(
            self.rtype,
            LibxlRecordType::END | LibxlRecordType::LIBXC_CONTEXT | LibxlRecordType::CHECKPOINT_END
        );
        if must_be_empty && !self.body.is_empty() {
            return Err(self.bad_length("0"));
        }
        Ok(())
    }
}

/// Appends one libxl record (header, body, zero padding).
///
/// # Panics
/// If `body` is longer than `u32::MAX`.
pub fn encode_libxl_record(out: &mut Vec<u8>, rtype: LibxlRecordType, body: &[u8]) {
    let length = u32::try_from(body.len()).expect("libxl record body longer than u32::MAX");
    out.extend_from_slice(RecordHeader { rtype: U32::new(rtype.0), length: U32::new(length) }.as_bytes());
    out.extend_from_slice(body);
    out.resize(out.len() + padding_len(length), 0);
}

/// Body of an EMULATOR_XENSTORE_DATA record from (key, value) pairs.
pub fn xenstore_body(id: u32, index: u32, pairs: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut out = EmulatorHeader { id: U32::new(id), index: U32::new(index) }.as_bytes().to_vec();
    for (k, v) in pairs {
        out.extend_from_slice(k);
        out.push(0);
        out.extend_from_slice(v);
        out.push(0);
    }
    out
}

/// Body of an EMULATOR_CONTEXT record.
pub fn emulator_context_body(id: u32, index: u32, state: &[u8]) -> Vec<u8> {
    let mut out = EmulatorHeader { id: U32::new(id), index: U32::new(index) }.as_bytes().to_vec();
    out.extend_from_slice(state);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_libxl_header() {
        // Bytes of the real Xen 4.17 xl save file.
        let want = [0x4c, 0x69, 0x62, 0x78, 0x6c, 0x46, 0x6d, 0x74, 0, 0, 0, 2, 0, 0, 0, 0];
        assert_eq!(LibxlHeader::new(false).as_bytes(), &want);
        assert_eq!(&want[..8], b"LibxlFmt");
        let h = LibxlHeader::read_from_bytes(&want).unwrap();
        h.validate(0, Strictness::Strict).unwrap();
        assert_eq!(LibxlHeader::new(true).as_bytes()[15], 2);
    }

    #[test]
    fn libxl_header_rejections() {
        let mut h = LibxlHeader::new(false);
        h.version.set(1);
        assert!(matches!(h.validate(0, Strictness::Lenient), Err(Error::BadLibxlVersion { .. })));
        let mut h = LibxlHeader::new(false);
        h.options.set(1);
        assert!(matches!(h.validate(0, Strictness::Lenient), Err(Error::BigEndian { offset: 12 })));
        let mut h = LibxlHeader::new(false);
        h.options.set(4);
        h.validate(0, Strictness::Lenient).unwrap();
        assert!(h.validate(0, Strictness::Strict).is_err());
        let mut h = LibxlHeader::new(false);
        h.ident.set(0);
        assert!(matches!(h.validate(0, Strictness::Lenient), Err(Error::BadLibxlIdent { .. })));
    }

    #[test]
    fn xenstore_pairs_round_trip_and_rejections() {
        let body = xenstore_body(2, 0, &[(b"physmap/1/name", b"vga"), (b"physmap/1/size", b"800000")]);
        let golden: &[u8] = b"\x02\0\0\0\0\0\0\0physmap/1/name\0vga\0physmap/1/size\0800000\0";
        assert_eq!(body, golden);
        let rec = LibxlRecord {
            index: 3,
            offset: 64,
            rtype: LibxlRecordType::EMULATOR_XENSTORE_DATA,
            body: &body,
            padding_nonzero: false,
        };
        let pairs = rec.xenstore_pairs().unwrap();
        assert_eq!(pairs, vec![(&b"physmap/1/name"[..], &b"vga"[..]), (&b"physmap/1/size"[..], &b"800000"[..])]);
        for bad in [
            &b"\x02\0\0\0\0\0\0\0key"[..],
            b"\x02\0\0\0\0\0\0\0key\0",
            b"\x02\0\0\0\0\0\0\0\0v\0",
            b"\x02\0\0\0\0\0\0\0/abs\0v\0",
        ] {
            let rec = LibxlRecord { body: bad, ..rec };
            assert!(
                matches!(rec.xenstore_pairs(), Err(Error::BadXenstoreData { offset: 64, index: 3, .. })),
                "{bad:?}"
            );
        }
        let short = LibxlRecord { body: &[1, 2, 3], ..rec };
        assert!(matches!(short.emulator(), Err(Error::BadLibxlLength { .. })));
    }
}
