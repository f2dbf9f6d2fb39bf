//! The `xl` save-file header: 32-byte magic, byte-order marker, flags, then optional data
//! holding the domain configuration.

use zerocopy::little_endian::U32;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::error::{Error, Result};

/// The 32-byte magic: 27 text characters, LF, space, NUL, space, CR.
pub const XL_MAGIC: [u8; 32] = *b"Xen saved domain, xl format\n \0 \r";
/// The byte-order marker as written by a little-endian host.
pub const XL_BYTEORDER: u32 = 0x0102_0304;
/// Mandatory flag: the config is JSON.
pub const XL_FLAG_CONFIG_JSON: u32 = 1 << 0;
/// Mandatory flag: a libxl v2 stream follows (without it, a legacy image follows).
pub const XL_FLAG_STREAM_V2: u32 = 1 << 1;
/// All mandatory flags xl knows.
pub const XL_FLAGS_KNOWN: u32 = XL_FLAG_CONFIG_JSON | XL_FLAG_STREAM_V2;
/// Largest optional-data length we accept (the config is a few KiB in practice).
pub const XL_OPTIONAL_MAX: u32 = 16 << 20;

/// The fixed 48-byte `xl` header. Its integers are in the writer's byte order, which the
/// byte-order marker checks to be little-endian.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, PartialEq, Eq, Debug)]
#[repr(C)]
pub struct XlHeader {
    /// [`XL_MAGIC`].
    pub magic: [u8; 32],
    /// [`XL_BYTEORDER`].
    pub byteorder: U32,
    /// Mandatory flags; unknown bits are rejected.
    pub mandatory_flags: U32,
    /// Optional flags; ignored.
    pub optional_flags: U32,
    /// Bytes of optional data that follow.
    pub optional_data_len: U32,
}

const _: () = assert!(size_of::<XlHeader>() == 48);
const _: () = assert!(core::mem::offset_of!(XlHeader, byteorder) == 32);
const _: () = assert!(core::mem::offset_of!(XlHeader, optional_data_len) == 44);

impl XlHeader {
    /// A header for a libxl v2 stream with the given config length (JSON if any).
    pub fn new(config_len: Option<u32>) -> Self {
        let json = if config_len.is_some() { XL_FLAG_CONFIG_JSON } else { 0 };
        Self {
            magic: XL_MAGIC,
            byteorder: U32::new(XL_BYTEORDER),
            mandatory_flags: U32::new(XL_FLAG_STREAM_V2 | json),
            optional_flags: U32::ZERO,
            optional_data_len: U32::new(4 + config_len.unwrap_or(0)),
        }
    }

    /// Checks magic, byte order, mandatory flags and the optional-data size bound.
    pub fn validate(&self, offset: u64) -> Result<()> {
        if self.magic != XL_MAGIC {
            return Err(Error::BadXlMagic { offset });
        }
        if self.byteorder.get() != XL_BYTEORDER {
            return Err(Error::BadXlByteOrder { offset: offset + 32, found: self.byteorder.get() });
        }
        let flags = self.mandatory_flags.get();
        if flags & !XL_FLAGS_KNOWN != 0 {
            return Err(Error::BadXlFlags { offset: offset + 36, found: flags });
        }
        if self.optional_data_len.get() > XL_OPTIONAL_MAX {
            return Err(Error::BadXlConfig {
                offset: offset + 44,
                config_len: 0,
                optional_len: self.optional_data_len.get(),
            });
        }
        Ok(())
    }

    /// Whether a libxl v2 stream follows.
    pub fn is_stream_v2(&self) -> bool {
        self.mandatory_flags.get() & XL_FLAG_STREAM_V2 != 0
    }

    /// Whether the config is JSON.
    pub fn is_json(&self) -> bool {
        self.mandatory_flags.get() & XL_FLAG_CONFIG_JSON != 0
    }
}

/// Extracts the config from the optional data found at `offset`: u32 length, then that many
/// bytes (JSON including its NUL). Any tail is ignored, as xl does.
pub fn xl_config(optional: &[u8], offset: u64) -> Result<&[u8]> {
    if optional.is_empty() {
        return Ok(&[]);
    }
    let optional_len = u32::try_from(optional.len()).unwrap_or(u32::MAX);
    let bad = |config_len| Error::BadXlConfig { offset, config_len, optional_len };
    let (len, rest) = U32::read_from_prefix(optional).map_err(|_| bad(0))?;
    let len = len.get();
    rest.get(..len as usize).ok_or_else(|| bad(len))
}

/// The complete header and optional data of an `xl` save file holding `config`.
///
/// # Panics
/// If the config is longer than [`XL_OPTIONAL_MAX`].
pub fn encode_xl_header(config: Option<&[u8]>) -> Vec<u8> {
    let len =
        config.map(|c| u32::try_from(c.len()).ok().filter(|&l| l < XL_OPTIONAL_MAX - 4).expect("xl config too large"));
    let mut out = XlHeader::new(len).as_bytes().to_vec();
    out.extend_from_slice(&len.unwrap_or(0).to_le_bytes());
    out.extend_from_slice(config.unwrap_or_default());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_xl_header() {
        let out = encode_xl_header(Some(b"{}\0"));
        let mut want = b"Xen saved domain, xl format\n \0 \r".to_vec();
        want.extend_from_slice(&[4, 3, 2, 1, 3, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 3, 0, 0, 0, b'{', b'}', 0]);
        assert_eq!(out, want);
        let h = XlHeader::read_from_prefix(&out).unwrap().0;
        h.validate(0).unwrap();
        assert!(h.is_stream_v2() && h.is_json());
        assert_eq!(xl_config(&out[48..], 48).unwrap(), b"{}\0");
    }

    #[test]
    fn xl_rejections() {
        let good = XlHeader::new(Some(0));
        let mut h = good;
        h.magic[31] = b'\n';
        assert_eq!(h.validate(0), Err(Error::BadXlMagic { offset: 0 }));
        let mut h = good;
        h.byteorder = U32::from_bytes([1, 2, 3, 4]);
        assert!(matches!(h.validate(0), Err(Error::BadXlByteOrder { offset: 32, .. })));
        let mut h = good;
        h.mandatory_flags.set(4 | 2);
        assert!(matches!(h.validate(0), Err(Error::BadXlFlags { offset: 36, found: 6 })));
        assert!(matches!(xl_config(&[10, 0, 0, 0, 1, 2], 48), Err(Error::BadXlConfig { config_len: 10, .. })));
        assert!(matches!(xl_config(&[1, 0], 48), Err(Error::BadXlConfig { .. })));
    }
}
