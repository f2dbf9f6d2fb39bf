//! PAGE_DATA: a batch of pfn words followed by the bodies of the data-bearing pages.

use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::{bad_length, fixed_prefix};
use crate::error::{Error, Result};
use crate::page::PfnEntry;
use crate::record::{Record, RecordHeader, RecordType};

/// Fixed part of PAGE_DATA.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, PartialEq, Eq, Debug, Default)]
#[repr(C)]
pub struct PageDataHeader {
    /// Number of pfn words.
    pub count: U32,
    /// Reserved, zero.
    pub reserved: U32,
}

const _: () = assert!(size_of::<PageDataHeader>() == 8);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::page::PageType;

    #[test]
    fn type_masks_match_the_predicates() {
        for n in 0..16u8 {
            let t = PageType::from_nibble(n);
            assert_eq!((KNOWN_TYPES >> n) & 1 == 1, t.is_known(), "{n:#x}");
            assert_eq!((DATA_TYPES >> n) & 1 == 1, t.has_data(), "{n:#x}");
        }
    }
}

/// Bit n set: page type nibble n is defined (all but 0x5..=0x8).
const KNOWN_TYPES: u16 = 0b1111_1110_0001_1111;
/// Bit n set: page type nibble n carries a page body (0x0..=0x4 and 0x9..=0xC).
const DATA_TYPES: u16 = 0b0001_1110_0001_1111;

/// Body length of a PAGE_DATA record with `count` entries of which `data_pages` carry data,
/// or `None` if it does not fit a u32.
pub fn page_data_body_len(count: usize, data_pages: usize, page_size: usize) -> Option<u32> {
    let words = count.checked_mul(8)?;
    let pages = data_pages.checked_mul(page_size)?;
    u32::try_from(8usize.checked_add(words)?.checked_add(pages)?).ok()
}

/// A validated PAGE_DATA body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageData<'a> {
    /// count and reserved word.
    pub header: &'a PageDataHeader,
    /// The raw pfn words.
    pub words: &'a [U64],
    /// The page bodies, `data_pages * page_size` bytes, in pfn-array order (empty when the
    /// reader skipped them: see [`Record::elided`]).
    pub pages: &'a [u8],
    page_size: usize,
    data_pages: usize,
}

impl<'a> PageData<'a> {
    /// Parses and checks a PAGE_DATA body in Xen's order: length >= 8, count >= 1,
    /// length >= 8 + 8 * count, every type known, then length == 8 + 8 * count +
    /// page_size * data_pages. All arithmetic is checked.
    pub fn parse(rec: &Record<'a>, page_shift: u16) -> Result<Self> {
        let (header, rest) = fixed_prefix::<PageDataHeader>(rec, "at least 8")?;
        let count = header.count.get();
        if count == 0 {
            return Err(Error::PageDataCountZero { offset: rec.offset, index: rec.index });
        }
        let (words, pages) = <[U64]>::ref_from_prefix_with_elems(rest, count as usize)
            .map_err(|_| bad_length(rec, format!("at least 8 + 8 * count = {}", 8 + 8 * u64::from(count))))?;
        // One branch-free pass (it vectorises): count the data-bearing entries and note
        // whether any type is reserved; only then look for the first reserved one.
        let (mut data_pages, mut unknown) = (0usize, 0u16);
        for w in words {
            let nibble = (w.get() >> 60) as u32;
            unknown |= (!KNOWN_TYPES >> nibble) & 1;
            data_pages += usize::from((DATA_TYPES >> nibble) & 1);
        }
        if unknown != 0 {
            let (i, e) = words
                .iter()
                .map(|w| PfnEntry::decode(w.get()))
                .enumerate()
                .find(|(_, e)| !e.page_type.is_known())
                .expect("a reserved type was seen");
            return Err(Error::UnknownPageType {
                offset: rec.offset,
                index: rec.index,
                entry: i as u32,
                pfn: e.pfn,
                nibble: e.page_type.nibble(),
            });
        }
        let page_size = 1usize << (page_shift & 31);
        if data_pages.checked_mul(page_size) != Some(pages.len() + rec.elided as usize) {
            let want = 8 + 8 * u64::from(count) + (page_size as u64) * data_pages as u64;
            return Err(bad_length(rec, format!("8 + 8 * {count} + {page_size} * {data_pages} data pages = {want}")));
        }
        Ok(Self { header, words, pages, page_size, data_pages })
    }

    /// Number of entries.
    pub fn count(&self) -> usize {
        self.words.len()
    }

    /// Number of entries that carry a page body.
    pub fn data_pages(&self) -> usize {
        self.data_pages
    }

    /// Whether the page bodies are here (not skipped by the reader).
    pub fn has_bodies(&self) -> bool {
        self.pages.len() == self.data_pages * self.page_size
    }

    /// Page size of the stream.
    pub fn page_size(&self) -> usize {
        self.page_size
    }

    /// The decoded entries, in order.
    pub fn entries(&self) -> impl ExactSizeIterator<Item = PfnEntry> + 'a {
        self.words.iter().map(|w| PfnEntry::decode(w.get()))
    }

    /// The data-bearing entries with their page bodies, in order (none if the bodies were
    /// skipped).
    pub fn data(&self) -> impl Iterator<Item = (PfnEntry, &'a [u8])> + 'a {
        let pages = self.pages.chunks_exact(self.page_size);
        self.entries().filter(|e| e.page_type.has_data()).zip(pages)
    }

    pub(crate) fn first_reserved(&self) -> Option<(u64, &'static str, u64)> {
        if self.header.reserved.get() != 0 {
            return Some((4, "PAGE_DATA reserved", u64::from(self.header.reserved.get())));
        }
        let (i, e) = self.entries().enumerate().find(|(_, e)| e.reserved != 0)?;
        Some((8 + 8 * i as u64, "PAGE_DATA pfn word bits 52-59", u64::from(e.reserved)))
    }
}

/// The 16 bytes that start a PAGE_DATA record: record header and PAGE_DATA header.
///
/// # Panics
/// If the body length does not fit a u32; callers bound their batches first.
pub fn encode_page_data_header(count: usize, data_pages: usize, page_size: usize) -> [u8; 16] {
    let len = page_data_body_len(count, data_pages, page_size).expect("PAGE_DATA batch too large");
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(RecordHeader::new(RecordType::PAGE_DATA, len).as_bytes());
    let count = u32::try_from(count).expect("count checked above");
    out[8..].copy_from_slice(PageDataHeader { count: U32::new(count), reserved: U32::ZERO }.as_bytes());
    out
}

/// Appends a complete PAGE_DATA record; `pages` holds the bodies of the data-bearing entries
/// in order.
///
/// # Panics
/// If `pages.len()` is not `page_size` times the number of data-bearing entries, or the
/// record would not fit a u32 length.
pub fn encode_page_data(out: &mut Vec<u8>, entries: &[PfnEntry], pages: &[u8], page_size: usize) {
    let data = entries.iter().filter(|e| e.page_type.has_data()).count();
    assert_eq!(pages.len(), data * page_size, "page bodies do not match the data-bearing entries");
    out.extend_from_slice(&encode_page_data_header(entries.len(), data, page_size));
    for e in entries {
        out.extend_from_slice(&e.encode().to_le_bytes());
    }
    out.extend_from_slice(pages);
    // 8 + 8n + page_size * d is a multiple of 8 for every page size, so there is no padding.
}
