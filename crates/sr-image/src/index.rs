//! The page index: pfn -> file offset of the page body a restore would leave there.
//!
//! Built in one pass over a stream whose page bodies are skipped
//! ([`StreamReader::skip_page_bodies`]): only record headers and pfn words are read. The
//! semantics are those of Xen's restorer (`tools/libs/guest/xg_sr_restore.c`:
//! `process_page_data`, `handle_checkpoint`, `handle_verify`), as `sr-restore` implements them:
//!
//! * a data-bearing entry (NOTAB or a page table) overwrites the pfn: later passes of a live
//!   migration win;
//! * XALLOC populates a pfn that is not yet populated (it reads as zeros) and leaves the
//!   contents of a populated one alone;
//! * XTAB and BROKEN change nothing (a pfn only ever seen with them is absent);
//! * after VERIFY, data-bearing entries are compared by a restore, not written: they change
//!   nothing, except that a pfn not yet populated is populated (zeros), as restore does;
//! * in a checkpointed stream the records after a CHECKPOINT apply only when the next
//!   checkpoint completes (the next CHECKPOINT, or, in a libxl stream, libxl's CHECKPOINT_END
//!   after it); records after the last complete checkpoint are dropped at END.
//!
//! The finished index is a sorted `Vec` of 16-byte entries, one per populated pfn. While it is
//! built, entries are appended in stream order and compacted (stable sort, last one wins)
//! whenever the log doubles, so building costs at most about three times that.

use sr_format::body::PageData;
use sr_format::libxl::LibxlRecordType;
use sr_format::{ByteSource, DomainHeader, DomainType, Item, Layer, PageType, Record, RecordType, StreamReader};

use crate::error::IndexError;

/// Offsets are stored in the low 60 bits of an entry; the page type in the top 4.
const OFFSET_MASK: u64 = (1 << 60) - 1;
/// Offset value meaning "a zero page" (XALLOC, or populated by a verify pass).
const ZERO: u64 = OFFSET_MASK;
/// In the build log only: "keep the contents, zeros if not yet populated".
const KEEP: u64 = OFFSET_MASK - 1;
/// Largest file offset an entry can hold.
pub const MAX_OFFSET: u64 = OFFSET_MASK - 2;

/// Where the bytes of a populated page are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PageLocation {
    /// The page body starts at this byte offset of the stream (file offset, counting every
    /// outer layer).
    Data(u64),
    /// The page is populated but has no body: it reads as zeros (XALLOC, or first seen in a
    /// VERIFY pass).
    Zero,
}

/// One populated page.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Page {
    /// The pfn (guest frame number; guest-physical address >> page_shift).
    pub pfn: u64,
    /// The type of the last entry that populated or wrote the page.
    pub page_type: PageType,
    /// Where its bytes are.
    pub location: PageLocation,
}

/// One index entry: 16 bytes per populated page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
struct Entry {
    pfn: u64,
    /// Offset (bits 0-59) and page type nibble (bits 60-63).
    packed: u64,
}

const _: () = assert!(size_of::<Entry>() == 16);

impl Entry {
    fn new(pfn: u64, offset: u64, page_type: PageType) -> Self {
        Self { pfn, packed: offset | (u64::from(page_type.nibble()) << 60) }
    }

    fn offset(self) -> u64 {
        self.packed & OFFSET_MASK
    }

    fn page_type(self) -> PageType {
        PageType::from_nibble((self.packed >> 60) as u8)
    }

    fn page(self) -> Page {
        let location = match self.offset() {
            ZERO => PageLocation::Zero,
            o => PageLocation::Data(o),
        };
        Page { pfn: self.pfn, page_type: self.page_type(), location }
    }
}

/// Limits that keep a hostile stream from exhausting memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct IndexLimits {
    /// Most distinct populated pfns (each costs 16 bytes in the index).
    pub max_pages: u64,
    /// Exclusive pfn bound; entries at or above it are an error (as restore's bound).
    pub pfn_limit: u64,
    /// Most bytes of state records (everything but PAGE_DATA) kept.
    pub max_state_bytes: u64,
}

impl Default for IndexLimits {
    fn default() -> Self {
        // 2^28 pages: 1 TiB of 4 KiB pages, a 4 GiB index; 2^40 pfns as restore's verify.
        Self { max_pages: 1 << 28, pfn_limit: 1 << 40, max_state_bytes: 256 << 20 }
    }
}

impl IndexLimits {
    /// Limits with at most `max_pages` populated pages.
    pub fn with_max_pages(mut self, max_pages: u64) -> Self {
        self.max_pages = max_pages;
        self
    }

    /// Limits with an exclusive pfn bound.
    pub fn with_pfn_limit(mut self, pfn_limit: u64) -> Self {
        self.pfn_limit = pfn_limit;
        self
    }
}

/// A libxc record other than PAGE_DATA that a restore applied (the domain's state).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateRecord {
    /// Its type.
    pub rtype: RecordType,
    /// Offset of its record header in the stream.
    pub offset: u64,
    /// Its body (without padding).
    pub body: Vec<u8>,
}

impl StateRecord {
    /// A [`Record`] view of it (index 0, no padding), for the parsers of [`sr_format::body`].
    pub fn as_record(&self) -> Record<'_> {
        Record { index: 0, offset: self.offset, rtype: self.rtype, body: &self.body, padding_nonzero: false, elided: 0 }
    }

    /// The vcpu id of an X86_PV_VCPU_* record (its first 4 bytes), else `None`.
    pub fn vcpu_id(&self) -> Option<u32> {
        let is_vcpu = matches!(
            self.rtype,
            RecordType::X86_PV_VCPU_BASIC
                | RecordType::X86_PV_VCPU_EXTENDED
                | RecordType::X86_PV_VCPU_XSAVE
                | RecordType::X86_PV_VCPU_MSRS
        );
        if !is_vcpu {
            return None;
        }
        self.body.get(..4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// The pfn -> page-body index of one stream, with the state records a restore applied.
///
/// ```
/// # use sr_format::{DomainHeader, DomainType, ImageHeader, PageType, PfnEntry, RecordType, RecordWriter, StreamReader};
/// use sr_image::{PageIndex, PageLocation};
///
/// // pfn 7 is sent twice (a live pass, then the final one) and pfn 9 is XALLOC.
/// let mut w = RecordWriter::new(Vec::new());
/// w.write_headers(&ImageHeader::new(3), &DomainHeader::new(DomainType::X86_HVM, 12, 4, 17))?;
/// for fill in [1u8, 2] {
///     let words = PfnEntry::new(7, PageType::NOTAB).encode().to_le_bytes();
///     w.write_page_data(1, 1, 4096, &words, &[&[fill; 4096]])?;
/// }
/// let words = PfnEntry::new(9, PageType::XALLOC).encode().to_le_bytes();
/// w.write_page_data(1, 0, 4096, &words, &[])?;
/// w.write_record(RecordType::END, &[])?;
/// let bytes = w.into_inner();
///
/// let index = PageIndex::build(StreamReader::from_slice(&bytes).skip_page_bodies(true))?;
/// assert_eq!(index.len(), 2);
/// let PageLocation::Data(at) = index.get(7).unwrap().location else { panic!() };
/// assert_eq!(bytes[at as usize], 2); // the second pass won
/// assert_eq!(index.get(9).unwrap().location, PageLocation::Zero);
/// assert!(index.get(8).is_none());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct PageIndex {
    entries: Vec<Entry>,
    header: DomainHeader,
    stream_version: u32,
    layer: Layer,
    stream_len: u64,
    state: Vec<StateRecord>,
    checkpoints: u64,
}

impl PageIndex {
    /// Builds the index from `reader` with the default [`IndexLimits`]. Give it a reader with
    /// [`skip_page_bodies(true)`](StreamReader::skip_page_bodies) over a seekable source to
    /// read only headers and pfn words (bodies are never looked at anyway).
    ///
    /// # Errors
    ///
    /// A framing or PAGE_DATA error of the stream, a stream without END, or a limit exceeded
    /// ([`IndexError`], each with its byte offset).
    pub fn build<S: ByteSource>(reader: StreamReader<S>) -> Result<Self, IndexError> {
        Self::build_with(reader, IndexLimits::default())
    }

    /// Builds the index with explicit limits.
    ///
    /// # Errors
    ///
    /// As [`build`](Self::build).
    pub fn build_with<S: ByteSource>(mut reader: StreamReader<S>, limits: IndexLimits) -> Result<Self, IndexError> {
        let mut b = Builder::new(limits);
        let mut version = 0;
        while let Some(item) = reader.next_item()? {
            match item {
                Item::ImageHeader { header, .. } => version = header.version.get(),
                Item::DomainHeader { header, .. } => {
                    b.header = Some(header);
                    b.page_shift = header.page_shift.get();
                }
                Item::LibxlHeader { .. } => b.wrapped = true,
                Item::LibxlRecord(rec) if rec.rtype == LibxlRecordType::CHECKPOINT_END && b.checkpoint_pending => {
                    b.complete_checkpoint()?;
                }
                Item::Record(rec) => b.record(&rec)?,
                _ => {}
            }
        }
        let stream_len = reader.offset();
        let header = b.header.ok_or(IndexError::Incomplete { offset: stream_len, what: "no domain header" })?;
        if !b.ended {
            return Err(IndexError::Incomplete { offset: stream_len, what: "no libxc END record" });
        }
        b.compact();
        if b.sorted as u64 > b.limits.max_pages {
            return Err(IndexError::TooManyPages { offset: stream_len, limit: b.limits.max_pages });
        }
        let mut entries = b.log;
        entries.shrink_to_fit();
        Ok(Self {
            entries,
            header,
            stream_version: version,
            layer: reader.layer().unwrap_or(Layer::Libxc),
            stream_len,
            state: b.state,
            checkpoints: b.checkpoints,
        })
    }

    /// Number of populated pages.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no page is populated.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The populated page `pfn`, or `None` for a hole.
    pub fn get(&self, pfn: u64) -> Option<Page> {
        self.entries.binary_search_by_key(&pfn, |e| e.pfn).ok().map(|i| self.entries[i].page())
    }

    /// Populated pages in pfn order, starting at the first pfn >= `from`.
    pub fn pages_from(&self, from: u64) -> impl ExactSizeIterator<Item = Page> + '_ {
        let start = self.entries.partition_point(|e| e.pfn < from);
        self.entries[start..].iter().map(|e| e.page())
    }

    /// All populated pages in pfn order.
    pub fn pages(&self) -> impl ExactSizeIterator<Item = Page> + '_ {
        self.entries.iter().map(|e| e.page())
    }

    /// The page type of `pfn` (see [`Page::page_type`]), or `None` for a hole.
    pub fn page_type(&self, pfn: u64) -> Option<PageType> {
        self.get(pfn).map(|p| p.page_type)
    }

    /// The stream's domain header.
    pub fn domain_header(&self) -> &DomainHeader {
        &self.header
    }

    /// The domain type.
    pub fn domain_type(&self) -> DomainType {
        self.header.domain_type()
    }

    /// log2 of the page size.
    pub fn page_shift(&self) -> u32 {
        u32::from(self.header.page_shift.get())
    }

    /// The page size in bytes.
    pub fn page_size(&self) -> usize {
        1 << self.page_shift()
    }

    /// The libxc stream version (2 or 3).
    pub fn stream_version(&self) -> u32 {
        self.stream_version
    }

    /// The outermost layer.
    pub fn layer(&self) -> Layer {
        self.layer
    }

    /// Bytes of the stream read (up to and including the outermost END).
    pub fn stream_len(&self) -> u64 {
        self.stream_len
    }

    /// Complete checkpoints seen.
    pub fn checkpoints(&self) -> u64 {
        self.checkpoints
    }

    /// The state records a restore applied, in stream order, the last of each kind (type,
    /// and vcpu id for per-vcpu records) only.
    pub fn state_records(&self) -> &[StateRecord] {
        &self.state
    }

    /// The last applied record of type `rtype` (for a per-vcpu type: of vcpu `vcpu`).
    pub fn state_record(&self, rtype: RecordType, vcpu: Option<u32>) -> Option<&StateRecord> {
        self.state.iter().rev().find(|r| r.rtype == rtype && (vcpu.is_none() || r.vcpu_id() == vcpu))
    }

    /// Bytes of memory the index holds (16 per page plus the state records).
    pub fn heap_bytes(&self) -> usize {
        self.entries.capacity() * size_of::<Entry>() + self.state.iter().map(|r| r.body.capacity()).sum::<usize>()
    }
}

/// A record of a checkpoint not yet complete.
#[derive(Debug)]
enum Pending {
    Pages(u64, Vec<Entry>),
    Verify,
    State(StateRecord),
}

struct Builder {
    limits: IndexLimits,
    header: Option<DomainHeader>,
    page_shift: u16,
    /// Entries in stream order after the compacted, sorted prefix `log[..sorted]`.
    log: Vec<Entry>,
    sorted: usize,
    verify: bool,
    wrapped: bool,
    buffer: Option<Vec<Pending>>,
    /// A VERIFY is among the buffered records.
    buffer_verify: bool,
    buffered_entries: u64,
    checkpoint_pending: bool,
    checkpoints: u64,
    state: Vec<StateRecord>,
    state_bytes: u64,
    ended: bool,
    scratch: Vec<Entry>,
}

impl Builder {
    fn new(limits: IndexLimits) -> Self {
        Self {
            limits,
            header: None,
            page_shift: 12,
            log: Vec::new(),
            sorted: 0,
            verify: false,
            wrapped: false,
            buffer: None,
            buffer_verify: false,
            buffered_entries: 0,
            checkpoint_pending: false,
            checkpoints: 0,
            state: Vec::new(),
            state_bytes: 0,
            ended: false,
            scratch: Vec::new(),
        }
    }

    fn record(&mut self, rec: &Record<'_>) -> Result<(), IndexError> {
        if self.header.is_none() || self.ended {
            // The reader yields the domain header first and nothing after END.
            return Err(IndexError::Incomplete { offset: rec.offset, what: "record outside the libxc stream" });
        }
        match rec.rtype {
            RecordType::CHECKPOINT => {
                if self.wrapped {
                    self.checkpoint_pending = true;
                    Ok(())
                } else {
                    self.complete_checkpoint()
                }
            }
            RecordType::END => {
                self.buffer = None;
                self.buffer_verify = false;
                self.ended = true;
                Ok(())
            }
            RecordType::PAGE_DATA => {
                let entries = self.page_entries(rec)?;
                match self.buffer.as_mut() {
                    Some(buffer) => {
                        self.buffered_entries += entries.len() as u64;
                        if self.buffered_entries > self.limits.max_pages {
                            return Err(IndexError::TooManyPages { offset: rec.offset, limit: self.limits.max_pages });
                        }
                        buffer.push(Pending::Pages(rec.offset, entries));
                        Ok(())
                    }
                    None => {
                        let applied = self.apply_pages(&entries, rec.offset);
                        self.scratch = entries;
                        applied
                    }
                }
            }
            RecordType::VERIFY => {
                match self.buffer.as_mut() {
                    Some(buffer) => {
                        buffer.push(Pending::Verify);
                        self.buffer_verify = true;
                    }
                    None => self.verify = true,
                }
                Ok(())
            }
            _ => {
                self.state_bytes += rec.body.len() as u64;
                if self.state_bytes > self.limits.max_state_bytes {
                    return Err(IndexError::TooMuchState { offset: rec.offset, limit: self.limits.max_state_bytes });
                }
                let r = StateRecord { rtype: rec.rtype, offset: rec.offset, body: rec.body.to_vec() };
                match self.buffer.as_mut() {
                    Some(buffer) => buffer.push(Pending::State(r)),
                    None => self.apply_state(r),
                }
                Ok(())
            }
        }
    }

    /// The entries of one PAGE_DATA record, in record order, with body offsets.
    fn page_entries(&mut self, rec: &Record<'_>) -> Result<Vec<Entry>, IndexError> {
        let pages = PageData::parse(rec, self.page_shift)?;
        let page_size = pages.page_size() as u64;
        // Record header (8), PAGE_DATA header (8), the pfn words, then the bodies.
        let mut next = rec.offset + 16 + 8 * pages.count() as u64;
        let mut out = std::mem::take(&mut self.scratch);
        out.clear();
        for (i, e) in pages.entries().enumerate() {
            if e.pfn >= self.limits.pfn_limit {
                return Err(IndexError::PfnOutOfRange {
                    offset: rec.offset,
                    entry: i as u32,
                    pfn: e.pfn,
                    limit: self.limits.pfn_limit,
                });
            }
            let t = e.page_type;
            if t.has_data() {
                if next > MAX_OFFSET {
                    return Err(IndexError::OffsetTooLarge { offset: rec.offset });
                }
                let offset = if self.verify_now() { KEEP } else { next };
                out.push(Entry::new(e.pfn, offset, t));
                next += page_size;
            } else if t == PageType::XALLOC {
                out.push(Entry::new(e.pfn, KEEP, t));
            }
        }
        Ok(out)
    }

    /// Whether entries read now are compared rather than written: after VERIFY, counting a
    /// VERIFY buffered in the current checkpoint.
    fn verify_now(&self) -> bool {
        self.verify || self.buffer_verify
    }

    fn apply_pages(&mut self, entries: &[Entry], offset: u64) -> Result<(), IndexError> {
        self.log.extend_from_slice(entries);
        // Compact when the log has doubled (amortised O(n log n)), or when it could hold more
        // pages than allowed: the log never grows past about twice the limit.
        let grown = self.log.len() - self.sorted > self.sorted.max(1 << 16);
        if grown || self.log.len() as u64 > self.limits.max_pages.saturating_mul(2) {
            self.compact();
            if self.sorted as u64 > self.limits.max_pages {
                return Err(IndexError::TooManyPages { offset, limit: self.limits.max_pages });
            }
        }
        Ok(())
    }

    fn apply_state(&mut self, r: StateRecord) {
        let key = (r.rtype, r.vcpu_id());
        if let Some(i) = self.state.iter().position(|s| (s.rtype, s.vcpu_id()) == key) {
            let old = self.state.remove(i);
            self.state_bytes -= old.body.len() as u64;
        }
        self.state.push(r);
    }

    fn complete_checkpoint(&mut self) -> Result<(), IndexError> {
        self.checkpoint_pending = false;
        if let Some(buffer) = self.buffer.take() {
            for p in buffer {
                match p {
                    Pending::Pages(offset, entries) => self.apply_pages(&entries, offset)?,
                    Pending::Verify => self.verify = true,
                    Pending::State(r) => self.apply_state(r),
                }
            }
        }
        self.buffered_entries = 0;
        self.buffer_verify = false;
        self.buffer = Some(Vec::new());
        self.checkpoints += 1;
        Ok(())
    }

    /// Sorts the log by pfn (stable: stream order within a pfn) and folds each pfn's entries
    /// into the one a restore leaves.
    fn compact(&mut self) {
        let log = &mut self.log;
        // A stable sort: the sorted prefix and the new run are merged.
        log.sort_by_key(|e| e.pfn);
        let mut out = 0;
        let mut i = 0;
        while i < log.len() {
            let pfn = log[i].pfn;
            let mut acc = log[i];
            if acc.offset() == KEEP {
                acc = Entry::new(pfn, ZERO, acc.page_type());
            }
            i += 1;
            while i < log.len() && log[i].pfn == pfn {
                let e = log[i];
                acc = if e.offset() == KEEP { Entry::new(pfn, acc.offset(), e.page_type()) } else { e };
                i += 1;
            }
            log[out] = acc;
            out += 1;
        }
        log.truncate(out);
        self.sorted = out;
    }
}
