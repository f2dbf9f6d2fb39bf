//! The body of the `page_index` fuzz target, shared with the corpus replay test.

use sr_format::{SeekSource, StreamReader};

use crate::{GuestImage, Holes, IndexLimits, PageIndex, PageLocation};

/// Limits that keep a fuzz input cheap: 2^16 pages below pfn 2^20.
pub fn limits() -> IndexLimits {
    IndexLimits::default().with_max_pages(1 << 16).with_pfn_limit(1 << 20)
}

/// Builds the index of `data` three ways (bodies skipped from a slice, bodies read from a
/// slice, bodies seeked past in a file-like source), requires the same outcome, then checks
/// the index's invariants and reads every page. Returns the number of populated pages, or
/// the error's text.
///
/// # Panics
///
/// When the three builds disagree or an invariant breaks: the bugs the target looks for.
pub fn fuzz_index(data: &[u8]) -> Result<usize, String> {
    let skipped = PageIndex::build_with(StreamReader::from_slice(data).skip_page_bodies(true), limits());
    let read = PageIndex::build_with(StreamReader::from_slice(data), limits());
    let src = SeekSource::new(std::io::Cursor::new(data)).expect("a cursor seeks");
    let seeked = PageIndex::build_with(StreamReader::new(src).skip_page_bodies(true), limits());
    let index = match (skipped, read, seeked) {
        (Ok(a), Ok(b), Ok(c)) => {
            let pages: Vec<_> = a.pages().collect();
            assert_eq!(pages, b.pages().collect::<Vec<_>>(), "skipping bodies changed the index");
            assert_eq!(pages, c.pages().collect::<Vec<_>>(), "seeking changed the index");
            a
        }
        (Err(a), Err(_), Err(_)) => return Err(a.to_string()),
        (a, b, c) => {
            panic!("builds disagree: {:?} / {:?} / {:?}", a.map(|i| i.len()), b.map(|i| i.len()), c.map(|i| i.len()))
        }
    };
    let size = index.page_size();
    let mut last = None;
    for p in index.pages() {
        assert!(last.is_none_or(|l| l < p.pfn), "pfns strictly increase");
        last = Some(p.pfn);
        assert!(p.page_type.populates(), "only populating types are indexed");
        if let PageLocation::Data(o) = p.location {
            assert!(o as usize + size <= data.len(), "a page body beyond the stream");
        }
    }
    assert!(index.len() as u64 <= limits().max_pages);
    let n = index.len();
    let image = GuestImage::new(index, data);
    let mut page = vec![0u8; size];
    for p in image.index().pages().take(1024) {
        assert!(image.read_page(p.pfn, &mut page).expect("every indexed page reads"));
    }
    if let Some(first) = image.index().pages().next() {
        let mut buf = vec![0u8; 3 * size];
        let addr = (first.pfn << image.index().page_shift()).saturating_sub(1);
        image.read_phys(addr, &mut buf, Holes::Zero).expect("reads with zero holes");
    }
    Ok(n)
}
