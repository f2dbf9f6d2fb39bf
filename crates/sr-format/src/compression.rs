//! Compressed save files, recognised by their magic bytes (never by file name).
//!
//! Decompression itself is left to the caller (the CLI uses the `xz2`, `zstd` and `flate2`
//! crates), so this crate stays free of codecs.

/// A compression format a save file may be stored in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Compression {
    /// xz (`FD 37 7A 58 5A 00`, the .xz file format, section 2.1.1.1).
    Xz,
    /// Zstandard (frame magic `28 B5 2F FD`, RFC 8878 section 3.1.1).
    Zstd,
    /// gzip (`1F 8B`, RFC 1952 section 2.3.1; method 8 deflate in the third byte).
    Gzip,
}

/// Bytes [`Compression::detect`] looks at at most.
pub const COMPRESSION_MAGIC_LEN: usize = 6;

impl Compression {
    /// The format whose magic starts `head` (the first [`COMPRESSION_MAGIC_LEN`] bytes of a
    /// file, or fewer if the file is shorter), or `None`. No stream layer starts like these:
    /// an `xl` file starts "Xen saved", a libxl stream "LibxlFmt", a libxc stream 0xFF bytes,
    /// a `virsh save` file "libvirt-".
    pub fn detect(head: &[u8]) -> Option<Self> {
        if head.starts_with(&[0xFD, b'7', b'z', b'X', b'Z', 0x00]) {
            Some(Compression::Xz)
        } else if head.starts_with(&[0x28, 0xB5, 0x2F, 0xFD]) {
            Some(Compression::Zstd)
        } else if head.starts_with(&[0x1F, 0x8B, 0x08]) {
            Some(Compression::Gzip)
        } else {
            None
        }
    }

    /// The name: "xz", "zstd" or "gzip".
    pub fn name(self) -> &'static str {
        match self {
            Compression::Xz => "xz",
            Compression::Zstd => "zstd",
            Compression::Gzip => "gzip",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magics() {
        assert_eq!(Compression::detect(b"\xFD7zXZ\0\0\x04"), Some(Compression::Xz));
        assert_eq!(Compression::detect(b"\x28\xB5\x2F\xFD\x04"), Some(Compression::Zstd));
        assert_eq!(Compression::detect(b"\x1F\x8B\x08\0"), Some(Compression::Gzip));
        assert_eq!(Compression::detect(b"\xFD7zXZ"), None, "too short to be sure");
        assert_eq!(Compression::detect(b"Xen saved domain"), None);
        assert_eq!(Compression::detect(b"LibxlFmt"), None);
        assert_eq!(Compression::detect(&[0xFF; 8]), None);
        assert_eq!(Compression::detect(b"libvirt-xml"), None);
        assert_eq!(Compression::detect(b""), None);
    }
}
