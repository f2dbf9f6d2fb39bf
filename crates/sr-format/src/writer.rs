//! The record writer: headers and records to any `std::io::Write`, with a vectored path that
//! sends PAGE_DATA as header + pfn words + page bodies without concatenating them.

use std::io::{self, IoSlice, Write};

use zerocopy::IntoBytes;

use crate::body::encode_page_data_header;
use crate::image::{DomainHeader, ImageHeader};
use crate::libxl::{LibxlHeader, LibxlRecordType};
use crate::record::{RecordHeader, RecordType, padding_len};

/// Linux's `IOV_MAX`: at most this many slices go to one `writev`.
pub const IOV_MAX: usize = 1024;

const ZEROS: [u8; 8] = [0; 8];

/// Writes stream items to `W`, counting the bytes written.
#[derive(Debug)]
pub struct RecordWriter<W> {
    inner: W,
    offset: u64,
}

impl<W: Write> RecordWriter<W> {
    /// A writer at offset 0.
    pub fn new(inner: W) -> Self {
        Self { inner, offset: 0 }
    }

    /// Bytes written so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The underlying writer.
    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    /// The underlying writer, mutably (bytes written through it are not counted).
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    /// The underlying writer.
    pub fn into_inner(self) -> W {
        self.inner
    }

    /// Writes raw bytes (a pre-encoded item).
    pub fn write_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.inner.write_all(bytes)?;
        self.offset += bytes.len() as u64;
        Ok(())
    }

    /// Writes the image and domain headers as one 40-byte write, as Xen does.
    pub fn write_headers(&mut self, ihdr: &ImageHeader, dhdr: &DomainHeader) -> io::Result<()> {
        let mut buf = [0u8; 40];
        buf[..24].copy_from_slice(ihdr.as_bytes());
        buf[24..].copy_from_slice(dhdr.as_bytes());
        self.write_raw(&buf)
    }

    /// Writes a complete record: header, body, zero padding.
    ///
    /// Fails with `InvalidInput` if the body is longer than `u32::MAX`.
    pub fn write_record(&mut self, rtype: RecordType, body: &[u8]) -> io::Result<()> {
        self.write_record_parts(rtype, &[body])
    }

    /// Writes a record whose body is the concatenation of `parts`, with one vectored write.
    pub fn write_record_parts(&mut self, rtype: RecordType, parts: &[&[u8]]) -> io::Result<()> {
        let len = body_len(parts)?;
        self.write_framed(RecordHeader::new(rtype, len), parts)
    }

    /// Writes the libxl stream header.
    pub fn write_libxl_header(&mut self, header: &LibxlHeader) -> io::Result<()> {
        self.write_raw(header.as_bytes())
    }

    /// Writes a libxl record: header, body, zero padding.
    pub fn write_libxl_record(&mut self, rtype: LibxlRecordType, body: &[u8]) -> io::Result<()> {
        let len = body_len(&[body])?;
        self.write_framed(RecordHeader { rtype: rtype.0.into(), length: len.into() }, &[body])
    }

    fn write_framed(&mut self, header: RecordHeader, parts: &[&[u8]]) -> io::Result<()> {
        let pad = padding_len(header.length.get());
        let mut slices = Vec::with_capacity(parts.len() + 2);
        slices.push(IoSlice::new(header.as_bytes()));
        slices.extend(parts.iter().filter(|p| !p.is_empty()).map(|p| IoSlice::new(p)));
        if pad > 0 {
            slices.push(IoSlice::new(&ZEROS[..pad]));
        }
        self.write_slices(&mut slices)
    }

    /// Writes a PAGE_DATA record from its parts without concatenating them: `words` are the
    /// encoded little-endian pfn words, `pages` the bodies of the data-bearing entries in
    /// order (each slice may hold several consecutive pages). `data_pages` is the number of
    /// data-bearing entries.
    pub fn write_page_data(
        &mut self,
        count: usize,
        data_pages: usize,
        page_size: usize,
        words: &[u8],
        pages: &[&[u8]],
    ) -> io::Result<()> {
        let page_bytes: usize = pages.iter().map(|p| p.len()).sum();
        if words.len() != count * 8 || page_bytes != data_pages * page_size {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "PAGE_DATA parts do not match count/data_pages"));
        }
        if crate::body::page_data_body_len(count, data_pages, page_size).is_none() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "PAGE_DATA batch exceeds u32 length"));
        }
        let header = encode_page_data_header(count, data_pages, page_size);
        let mut slices = Vec::with_capacity(pages.len() + 2);
        slices.push(IoSlice::new(&header));
        slices.push(IoSlice::new(words));
        slices.extend(pages.iter().filter(|p| !p.is_empty()).map(|p| IoSlice::new(p)));
        self.write_slices(&mut slices)
    }

    /// Writes every byte of `slices` with `write_vectored`, at most [`IOV_MAX`] slices per
    /// call, resuming after partial writes.
    pub fn write_slices(&mut self, mut slices: &mut [IoSlice<'_>]) -> io::Result<()> {
        IoSlice::advance_slices(&mut slices, 0);
        while !slices.is_empty() {
            let n = slices.len().min(IOV_MAX);
            match self.inner.write_vectored(&slices[..n]) {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "failed to write whole record")),
                Ok(k) => {
                    self.offset += k as u64;
                    IoSlice::advance_slices(&mut slices, k);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Flushes the underlying writer.
    pub fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn body_len(parts: &[&[u8]]) -> io::Result<u32> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    u32::try_from(len).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "record body longer than u32::MAX"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::page::{PageType, PfnEntry};

    /// A writer that accepts at most `max` bytes per call and only the first slice, like the
    /// default `write_vectored`, to exercise the resume logic.
    struct Stingy {
        out: Vec<u8>,
        max: usize,
    }

    impl Write for Stingy {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let n = buf.len().min(self.max);
            self.out.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn vectored_page_data_equals_encoded_record() {
        let entries: Vec<PfnEntry> = (0..1500u64)
            .map(|i| PfnEntry::new(i * 3, if i % 7 == 0 { PageType::XTAB } else { PageType::NOTAB }))
            .collect();
        let data = entries.iter().filter(|e| e.page_type.has_data()).count();
        let pages: Vec<u8> = (0..data * 4096).map(|i| (i % 251) as u8).collect();
        let mut want = Vec::new();
        crate::body::encode_page_data(&mut want, &entries, &pages, 4096);

        let words: Vec<u8> = entries.iter().flat_map(|e| e.encode().to_le_bytes()).collect();
        let per_page: Vec<&[u8]> = pages.chunks(4096).collect(); // > IOV_MAX slices
        let mut w = RecordWriter::new(Stingy { out: Vec::new(), max: 10_000 });
        w.write_page_data(entries.len(), data, 4096, &words, &per_page).unwrap();
        assert_eq!(w.offset(), want.len() as u64);
        assert_eq!(w.into_inner().out, want);
    }

    #[test]
    fn padded_records_and_headers() {
        let mut w = RecordWriter::new(Vec::new());
        w.write_headers(&ImageHeader::new(3), &DomainHeader::new(crate::DomainType::X86_HVM, 12, 4, 21)).unwrap();
        w.write_record_parts(RecordType::HVM_CONTEXT, &[&[1, 2], &[3]]).unwrap();
        let out = w.into_inner();
        assert_eq!(out.len(), 40 + 8 + 8);
        assert_eq!(&out[40..], &[9, 0, 0, 0, 3, 0, 0, 0, 1, 2, 3, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn mismatched_page_data_is_rejected() {
        let mut w = RecordWriter::new(Vec::new());
        let err = w.write_page_data(2, 1, 4096, &[0; 16], &[&[0; 100]]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(w.offset(), 0);
    }
}
