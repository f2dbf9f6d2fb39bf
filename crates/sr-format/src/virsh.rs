//! The header `virsh save` writes in front of a Xen (libxl) domain's stream.
//!
//! libvirt's libxl driver (`src/libxl/libxl_conf.h`, `libxlSavefileHeader`; written by
//! `libxlDoDomainSave` in `libxl_driver.c`, read by `libxlDomainSaveImageOpen` in
//! `libxl_domain.c`) puts a 64-byte header and the domain XML before the stream that
//! `libxl_domain_suspend` writes:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 16 | magic `"libvirt-xml\n \0 \r"` |
//! | 16 | 4 | version (host order, little-endian on x86 and Arm): 1 legacy stream, 2 libxl v2 stream |
//! | 20 | 4 | xmlLen: bytes of domain XML that follow, including its NUL |
//! | 24 | 40 | unused, zero |
//!
//! Then `xmlLen` bytes of XML and, for version 2, a libxl stream (no `xl` header).

use zerocopy::little_endian::U32;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::error::{Error, Result};

/// The 16-byte magic: "libvirt-xml", LF, space, NUL, space, CR.
pub const VIRSH_MAGIC: [u8; 16] = *b"libvirt-xml\n \0 \r";
/// The version whose stream is a libxl v2 stream (`LIBXL_HAVE_SRM_V2`).
pub const VIRSH_VERSION_V2: u32 = 2;
/// Largest XML length accepted (a domain definition is a few KiB in practice).
pub const VIRSH_XML_MAX: u32 = 16 << 20;

/// The fixed 64-byte header.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, PartialEq, Eq, Debug)]
#[repr(C)]
pub struct VirshHeader {
    /// [`VIRSH_MAGIC`].
    pub magic: [u8; 16],
    /// 1 (legacy stream follows) or 2 (libxl v2 stream follows).
    pub version: U32,
    /// Bytes of XML that follow, including the NUL.
    pub xml_len: U32,
    /// Unused, zero.
    pub unused: [U32; 10],
}

const _: () = assert!(size_of::<VirshHeader>() == 64);

impl VirshHeader {
    /// A version-2 header for `xml_len` bytes of XML.
    pub fn new(xml_len: u32) -> Self {
        Self {
            magic: VIRSH_MAGIC,
            version: U32::new(VIRSH_VERSION_V2),
            xml_len: U32::new(xml_len),
            unused: [U32::ZERO; 10],
        }
    }

    /// Checks the magic, the version (1 is a legacy stream, which this crate does not read;
    /// above 2 is unknown) and the XML length bound (non-zero, at most [`VIRSH_XML_MAX`]),
    /// as libvirt's reader does.
    pub fn validate(&self, offset: u64) -> Result<()> {
        if self.magic != VIRSH_MAGIC {
            return Err(Error::BadVirshHeader { offset, what: "magic".into() });
        }
        match self.version.get() {
            VIRSH_VERSION_V2 => {}
            1 => return Err(Error::LegacyImage { offset }),
            v => return Err(Error::BadVirshHeader { offset: offset + 16, what: format!("version {v} (expected 2)") }),
        }
        let len = self.xml_len.get();
        if len == 0 || len > VIRSH_XML_MAX {
            return Err(Error::BadVirshHeader {
                offset: offset + 20,
                what: format!("XML length {len} (expected 1..={VIRSH_XML_MAX})"),
            });
        }
        Ok(())
    }
}

/// The XML text of the `xml_len` bytes after the header: up to the first NUL.
pub fn virsh_xml(bytes: &[u8]) -> &[u8] {
    bytes.split(|&b| b == 0).next().unwrap_or_default()
}

/// The header and XML (with a NUL appended) that `virsh save` writes before the libxl stream.
///
/// # Panics
/// If the XML is longer than [`VIRSH_XML_MAX`] - 1.
pub fn encode_virsh_header(xml: &[u8]) -> Vec<u8> {
    let len = u32::try_from(xml.len() + 1).ok().filter(|&l| l <= VIRSH_XML_MAX).expect("domain XML too large");
    let mut out = VirshHeader::new(len).as_bytes().to_vec();
    out.extend_from_slice(xml);
    out.push(0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_virsh_header() {
        let out = encode_virsh_header(b"<domain/>");
        let mut want = b"libvirt-xml\n \0 \r".to_vec();
        want.extend_from_slice(&[2, 0, 0, 0, 10, 0, 0, 0]);
        want.extend_from_slice(&[0; 40]);
        want.extend_from_slice(b"<domain/>\0");
        assert_eq!(out, want);
        let h = VirshHeader::read_from_prefix(&out).unwrap().0;
        h.validate(0).unwrap();
        assert_eq!(virsh_xml(&out[64..]), b"<domain/>");
    }

    #[test]
    fn virsh_rejections() {
        let good = VirshHeader::new(10);
        let mut h = good;
        h.magic[15] = b'\n';
        assert!(matches!(h.validate(0), Err(Error::BadVirshHeader { offset: 0, .. })));
        let mut h = good;
        h.version.set(1);
        assert_eq!(h.validate(0), Err(Error::LegacyImage { offset: 0 }));
        h.version.set(3);
        assert!(matches!(h.validate(0), Err(Error::BadVirshHeader { offset: 16, .. })));
        let mut h = good;
        h.xml_len.set(0);
        assert!(matches!(h.validate(0), Err(Error::BadVirshHeader { offset: 20, .. })));
        h.xml_len.set(VIRSH_XML_MAX + 1);
        assert!(matches!(h.validate(64), Err(Error::BadVirshHeader { offset: 84, .. })));
    }
}
