//! The stream reader: one pull parser over all three layers (`xl` file, libxl stream, libxc
//! stream), tracking the absolute offset of everything it returns.
//!
//! It checks framing only: headers, the record length limit (before any allocation), padding
//! (in strict mode) and where each layer hands over to the next. Record bodies are returned
//! raw; [`RecordBody::parse`](crate::body::RecordBody::parse) gives them shape, and the
//! restorer gives them meaning.

use std::io::Read;

use zerocopy::FromBytes;

use crate::error::{Error, Result};
use crate::image::{DomainHeader, IHDR_MARKER, ImageHeader, Strictness};
use crate::libxl::{LIBXL_IDENT, LibxlHeader, LibxlRecord, LibxlRecordType};
use crate::record::{REC_LENGTH_MAX, Record, RecordHeader, RecordType, padded_len};
use crate::source::{ByteSource, ReadSource, SliceSource, SourceError};
use crate::virsh::{VIRSH_MAGIC, VirshHeader, virsh_xml};
use crate::xl::{XL_MAGIC, XlHeader, xl_config};

/// The outermost layer a stream starts with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layer {
    /// An `xl` save file (xl header, libxl stream, libxc stream).
    Xl,
    /// A `virsh save` file of a libxl domain (libvirt header and domain XML, libxl stream,
    /// libxc stream).
    Virsh,
    /// A libxl stream (libxl header and records around a libxc stream).
    Libxl,
    /// A bare libxc stream (image header, domain header, records).
    Libxc,
}

impl Layer {
    /// Detects the layer from the first 8 bytes of a stream.
    pub fn detect(first: &[u8; 8]) -> Option<Layer> {
        if first[..] == XL_MAGIC[..8] {
            Some(Layer::Xl)
        } else if first[..] == VIRSH_MAGIC[..8] {
            Some(Layer::Virsh)
        } else if u64::from_be_bytes(*first) == LIBXL_IDENT {
            Some(Layer::Libxl)
        } else if u64::from_be_bytes(*first) == IHDR_MARKER {
            Some(Layer::Libxc)
        } else {
            None
        }
    }

    /// A short name: "xl", "virsh", "libxl" or "libxc".
    pub fn name(self) -> &'static str {
        match self {
            Layer::Xl => "xl",
            Layer::Virsh => "virsh",
            Layer::Libxl => "libxl",
            Layer::Libxc => "libxc",
        }
    }
}

/// One item of a stream, in wire order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Item<'a> {
    /// The `xl` header and its optional data.
    Xl {
        /// Offset of the header.
        offset: u64,
        /// The fixed header.
        header: XlHeader,
        /// The configuration (JSON with its NUL, or empty).
        config: &'a [u8],
    },
    /// The `virsh save` header and the domain XML.
    Virsh {
        /// Offset of the header.
        offset: u64,
        /// The fixed header.
        header: VirshHeader,
        /// The domain XML, up to its NUL.
        xml: &'a [u8],
    },
    /// The libxl stream header.
    LibxlHeader {
        /// Offset of the header.
        offset: u64,
        /// The header.
        header: LibxlHeader,
    },
    /// A libxl record. After LIBXC_CONTEXT the libxc stream follows.
    LibxlRecord(LibxlRecord<'a>),
    /// The libxc image header.
    ImageHeader {
        /// Offset of the header.
        offset: u64,
        /// The header.
        header: ImageHeader,
    },
    /// The libxc domain header.
    DomainHeader {
        /// Offset of the header.
        offset: u64,
        /// The header.
        header: DomainHeader,
    },
    /// A libxc record.
    Record(Record<'a>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Start,
    LibxlHeader,
    LibxlRecords,
    ImageHeader,
    DomainHeader,
    Records,
    Done,
}

/// A pull parser over a whole stream, whatever layer it starts with.
///
/// Memory use is bounded by one record: with a [`SliceSource`] nothing is copied, with a
/// [`ReadSource`] one buffer is reused.
#[derive(Debug)]
pub struct StreamReader<S> {
    src: S,
    offset: u64,
    strictness: Strictness,
    state: State,
    layer: Option<Layer>,
    wrapped: bool,
    in_checkpoint: bool,
    libxc_seen: bool,
    index: u64,
    libxl_index: u64,
    length_limit: u32,
    skip_pages: bool,
    /// PAGE_DATA header and pfn words when page bodies are skipped.
    scratch: Vec<u8>,
}

impl<'a> StreamReader<SliceSource<'a>> {
    /// A reader over bytes in memory (no copies).
    pub fn from_slice(data: &'a [u8]) -> Self {
        Self::new(SliceSource::new(data))
    }
}

impl<R: Read> StreamReader<ReadSource<R>> {
    /// A reader over any `Read`, buffering one record at a time.
    pub fn from_read(reader: R) -> Self {
        Self::new(ReadSource::new(reader))
    }
}

impl<S: ByteSource> StreamReader<S> {
    /// A reader over `src`, lenient by default.
    pub fn new(src: S) -> Self {
        Self {
            src,
            offset: 0,
            strictness: Strictness::Lenient,
            state: State::Start,
            layer: None,
            wrapped: false,
            in_checkpoint: false,
            libxc_seen: false,
            index: 0,
            libxl_index: 0,
            length_limit: REC_LENGTH_MAX,
            skip_pages: false,
            scratch: Vec::new(),
        }
    }

    /// Sets the strictness (strict: padding must be zero, reserved header fields zero).
    pub fn strictness(mut self, strictness: Strictness) -> Self {
        self.strictness = strictness;
        self
    }

    /// Skips the page bodies of PAGE_DATA records instead of reading them: records come with
    /// their header and pfn words only and [`Record::elided`] set, and with a seekable source
    /// ([`SeekSource`](crate::SeekSource)) the bodies are never read at all. For checking and
    /// listing a stream, not for restoring its memory.
    pub fn skip_page_bodies(mut self, skip: bool) -> Self {
        self.skip_pages = skip;
        self
    }

    /// Counts offsets from `offset` instead of 0: for a stream that starts inside a file (a
    /// save helper reads the libxc stream from the middle of an `xl` file), so that every
    /// offset in items and errors is the file's.
    pub fn starting_at(mut self, offset: u64) -> Self {
        self.offset = offset;
        self
    }

    /// Lowers the record length limit below [`REC_LENGTH_MAX`] (never raises it).
    pub fn length_limit(mut self, limit: u32) -> Self {
        self.length_limit = limit.min(REC_LENGTH_MAX);
        self
    }

    /// Bytes consumed so far; the offset of the next item.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The outermost layer, once the first item was read.
    pub fn layer(&self) -> Option<Layer> {
        self.layer
    }

    /// Whether the stream has ended (the outermost END was read).
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The source, positioned after the last byte read (bytes after END are left unread).
    pub fn into_source(self) -> S {
        self.src
    }

    fn take(&mut self, n: u64, what: &'static str) -> Result<&[u8]> {
        take_from(&mut self.src, &mut self.offset, n, what)
    }

    fn take_struct<T: FromBytes>(&mut self, what: &'static str) -> Result<T> {
        let offset = self.offset;
        let bytes = self.take(size_of::<T>() as u64, what)?;
        T::read_from_bytes(bytes).map_err(|_| Error::Truncated { offset, what, needed: 0, got: 0 })
    }

    /// The next item, or `None` after the outermost END.
    pub fn next_item(&mut self) -> Result<Option<Item<'_>>> {
        // Poisoned until the read succeeds: after an error the reader only returns `None`.
        let state = core::mem::replace(&mut self.state, State::Done);
        match state {
            State::Done => Ok(None),
            State::Start => self.read_start().map(Some),
            State::LibxlHeader => self.read_libxl_header().map(Some),
            State::LibxlRecords => self.read_libxl_record().map(Some),
            State::ImageHeader => self.read_image_header().map(Some),
            State::DomainHeader => self.read_domain_header().map(Some),
            State::Records => self.read_record().map(Some),
        }
    }

    fn read_start(&mut self) -> Result<Item<'_>> {
        let offset = self.offset;
        let mut first = [0u8; 8];
        first.copy_from_slice(self.take(8, "stream start")?);
        let layer = Layer::detect(&first).ok_or(Error::UnknownLayer { offset, found: first })?;
        self.layer = Some(layer);
        match layer {
            Layer::Xl => {
                let mut raw = [0u8; 48];
                raw[..8].copy_from_slice(&first);
                raw[8..].copy_from_slice(self.take(40, "xl header").map_err(|e| relocate(e, offset, 48))?);
                let header = XlHeader::read_from_bytes(&raw).map_err(|_| Error::BadXlMagic { offset })?;
                header.validate(offset)?;
                if !header.is_stream_v2() {
                    return Err(Error::LegacyImage { offset });
                }
                let opt_offset = self.offset;
                let len = u64::from(header.optional_data_len.get());
                let optional = take_from(&mut self.src, &mut self.offset, len, "xl optional data")?;
                let config = xl_config(optional, opt_offset)?;
                self.state = State::LibxlHeader;
                self.wrapped = true;
                Ok(Item::Xl { offset, header, config })
            }
            Layer::Virsh => {
                let mut raw = [0u8; 64];
                raw[..8].copy_from_slice(&first);
                raw[8..].copy_from_slice(self.take(56, "virsh header").map_err(|e| relocate(e, offset, 64))?);
                let header = VirshHeader::read_from_bytes(&raw)
                    .map_err(|_| Error::BadVirshHeader { offset, what: "size".into() })?;
                header.validate(offset)?;
                let len = u64::from(header.xml_len.get());
                let xml = take_from(&mut self.src, &mut self.offset, len, "virsh domain XML")?;
                self.state = State::LibxlHeader;
                self.wrapped = true;
                Ok(Item::Virsh { offset, header, xml: virsh_xml(xml) })
            }
            Layer::Libxl => {
                let mut raw = [0u8; 16];
                raw[..8].copy_from_slice(&first);
                raw[8..].copy_from_slice(self.take(8, "libxl header").map_err(|e| relocate(e, offset, 16))?);
                self.finish_libxl_header(offset, raw)
            }
            Layer::Libxc => {
                let mut raw = [0u8; 24];
                raw[..8].copy_from_slice(&first);
                raw[8..].copy_from_slice(self.take(16, "image header").map_err(|e| relocate(e, offset, 24))?);
                self.finish_image_header(offset, raw)
            }
        }
    }

    fn read_libxl_header(&mut self) -> Result<Item<'_>> {
        let offset = self.offset;
        let raw: [u8; 16] = self.take_struct("libxl header")?;
        self.finish_libxl_header(offset, raw)
    }

    fn finish_libxl_header(&mut self, offset: u64, raw: [u8; 16]) -> Result<Item<'_>> {
        let header = LibxlHeader::read_from_bytes(&raw).map_err(|_| Error::BadLibxlIdent { offset, found: 0 })?;
        header.validate(offset, self.strictness)?;
        self.wrapped = true;
        self.state = State::LibxlRecords;
        Ok(Item::LibxlHeader { offset, header })
    }

    fn read_image_header(&mut self) -> Result<Item<'_>> {
        let offset = self.offset;
        let raw: [u8; 24] = self.take_struct("image header")?;
        self.finish_image_header(offset, raw)
    }

    fn finish_image_header(&mut self, offset: u64, raw: [u8; 24]) -> Result<Item<'_>> {
        let header = ImageHeader::read_from_bytes(&raw).map_err(|_| Error::BadMarker { offset, found: 0 })?;
        header.validate(offset, self.strictness)?;
        self.state = State::DomainHeader;
        Ok(Item::ImageHeader { offset, header })
    }

    fn read_domain_header(&mut self) -> Result<Item<'_>> {
        let offset = self.offset;
        let header: DomainHeader = self.take_struct("domain header")?;
        header.validate(offset, self.strictness)?;
        self.state = State::Records;
        Ok(Item::DomainHeader { offset, header })
    }

    /// Reads a record header (either layer) and checks the length limit; `index` is the
    /// record's index in its layer.
    fn read_frame_header(&mut self, index: u64, what: &'static str, libxl: bool) -> Result<(u64, u32, u32)> {
        let offset = self.offset;
        let hdr: RecordHeader = self.take_struct(what)?;
        let (rtype, length) = (hdr.rtype.get(), hdr.length.get());
        if length > self.length_limit {
            let limit = self.length_limit;
            return Err(if libxl {
                let record = LibxlRecordType(rtype).name_or_reserved();
                Error::LibxlRecordTooLong { offset, index, record, length, limit }
            } else {
                Error::RecordTooLong { offset, index, record: RecordType(rtype), length, limit }
            });
        }
        Ok((offset, rtype, length))
    }

    fn read_record(&mut self) -> Result<Item<'_>> {
        let index = self.index;
        let (offset, rtype, length) = self.read_frame_header(index, "record header", false)?;
        let rtype = RecordType(rtype);
        let next = if rtype == RecordType::END {
            if self.wrapped { State::LibxlRecords } else { State::Done }
        } else if rtype == RecordType::CHECKPOINT && self.wrapped {
            // libxl's records of this checkpoint follow, up to CHECKPOINT_END.
            self.in_checkpoint = true;
            State::LibxlRecords
        } else {
            State::Records
        };
        if self.skip_pages && rtype == RecordType::PAGE_DATA && length >= 8 {
            return self.read_page_data_skipping(index, offset, length, next);
        }
        let (body, padding_nonzero) = take_body(&mut self.src, &mut self.offset, offset, length)?;
        if self.strictness.is_strict() && padding_nonzero {
            return Err(Error::NonZeroPadding { offset, index, record: rtype });
        }
        self.index += 1;
        self.state = next;
        Ok(Item::Record(Record { index, offset, rtype, body, padding_nonzero, elided: 0 }))
    }

    /// PAGE_DATA with page bodies skipped: reads the 8-byte header and the pfn words (as
    /// many as the body can hold), skips the rest of the body and its padding.
    fn read_page_data_skipping(&mut self, index: u64, offset: u64, length: u32, next: State) -> Result<Item<'_>> {
        // A truncation anywhere in the body is reported as a full read reports it.
        let needed = 8 + padded_len(length);
        let truncated = |consumed: u64| {
            move |e| match e {
                Error::Truncated { got, .. } => {
                    Error::Truncated { offset, what: "record", needed, got: 8 + consumed + got }
                }
                other => other,
            }
        };
        let header = take_from(&mut self.src, &mut self.offset, 8, "record").map_err(truncated(0))?;
        let count = u64::from(u32::from_le_bytes([header[0], header[1], header[2], header[3]]));
        self.scratch.clear();
        self.scratch.extend_from_slice(header);
        let words = (8 * count).min(u64::from(length) - 8);
        let pfns = take_from(&mut self.src, &mut self.offset, words, "record").map_err(truncated(8))?;
        self.scratch.extend_from_slice(pfns);
        let kept = 8 + words;
        let skipped = padded_len(length) - kept;
        match self.src.skip(skipped) {
            Ok(()) => self.offset += skipped,
            Err(SourceError::Eof { got }) => {
                return Err(Error::Truncated { offset, what: "record", needed, got: 8 + kept + got });
            }
            Err(SourceError::Io(e)) => return Err(Error::io(self.offset, &e)),
        }
        self.index += 1;
        self.state = next;
        let elided = u32::try_from(u64::from(length) - kept).unwrap_or(u32::MAX);
        let rtype = RecordType::PAGE_DATA;
        Ok(Item::Record(Record { index, offset, rtype, body: &self.scratch, padding_nonzero: false, elided }))
    }

    fn read_libxl_record(&mut self) -> Result<Item<'_>> {
        let index = self.libxl_index;
        let (offset, rtype, length) = self.read_frame_header(index, "libxl record header", true)?;
        let rtype = LibxlRecordType(rtype);
        let misplaced = |why| Error::MisplacedLibxlRecord { offset, index, record: rtype.name_or_reserved(), why };
        let next = match rtype {
            LibxlRecordType::END if self.in_checkpoint => {
                return Err(misplaced("END inside a checkpoint (before CHECKPOINT_END)"));
            }
            LibxlRecordType::END => State::Done,
            LibxlRecordType::LIBXC_CONTEXT if self.libxc_seen => return Err(misplaced("second LIBXC_CONTEXT")),
            LibxlRecordType::LIBXC_CONTEXT => {
                self.libxc_seen = true;
                State::ImageHeader
            }
            LibxlRecordType::EMULATOR_XENSTORE_DATA | LibxlRecordType::EMULATOR_CONTEXT => State::LibxlRecords,
            LibxlRecordType::CHECKPOINT_END if !self.in_checkpoint => {
                return Err(misplaced("CHECKPOINT_END outside a checkpoint"));
            }
            LibxlRecordType::CHECKPOINT_END => {
                self.in_checkpoint = false;
                State::Records
            }
            LibxlRecordType::CHECKPOINT_STATE => {
                return Err(misplaced("CHECKPOINT_STATE belongs to the COLO back channel"));
            }
            _ => return Err(Error::UnknownLibxlRecord { offset, index, found: rtype.0 }),
        };
        let (body, padding_nonzero) = take_body(&mut self.src, &mut self.offset, offset, length)?;
        let rec = LibxlRecord { index, offset, rtype, body, padding_nonzero };
        if self.strictness.is_strict() {
            rec.check_strict()?;
        }
        self.libxl_index += 1;
        self.state = next;
        Ok(Item::LibxlRecord(rec))
    }
}

fn take_from<'s, S: ByteSource>(src: &'s mut S, offset: &mut u64, n: u64, what: &'static str) -> Result<&'s [u8]> {
    let start = *offset;
    let len = usize::try_from(n).map_err(|_| Error::Truncated { offset: start, what, needed: n, got: 0 })?;
    match src.take(len) {
        Ok(bytes) => {
            *offset += n;
            Ok(bytes)
        }
        Err(SourceError::Eof { got }) => Err(Error::Truncated { offset: start, what, needed: n, got }),
        Err(SourceError::Io(e)) => Err(Error::io(start, &e)),
    }
}

/// Takes a body of `length` bytes plus padding; returns the unpadded body and whether the
/// padding had a non-zero byte. Truncation is reported from the record header.
fn take_body<'s, S: ByteSource>(
    src: &'s mut S,
    offset: &mut u64,
    record: u64,
    length: u32,
) -> Result<(&'s [u8], bool)> {
    let bytes = take_from(src, offset, padded_len(length), "record").map_err(|e| relocate_body(e, record))?;
    let (body, padding) = bytes.split_at(length as usize);
    Ok((body, padding.iter().any(|&b| b != 0)))
}

/// A truncated header continuation reported from the header's own start.
fn relocate(e: Error, offset: u64, needed: u64) -> Error {
    match e {
        Error::Truncated { what, got, .. } => Error::Truncated { offset, what, needed, got: got + 8 },
        other => other,
    }
}

/// A truncated body reported with the record header's offset.
fn relocate_body(e: Error, record_offset: u64) -> Error {
    match e {
        Error::Truncated { what, needed, got, .. } => {
            Error::Truncated { offset: record_offset, what, needed: needed + 8, got: got + 8 }
        }
        other => other,
    }
}
