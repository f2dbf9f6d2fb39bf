//! Hostile streams: truncations, byte flips and limits end in an error with an offset, never
//! a panic or an unbounded allocation.

#[path = "../../sr-restore/tests/common/mod.rs"]
mod common;

use common::*;
use sr_format::StreamReader;
use sr_image::{IndexError, IndexLimits, PageIndex};

fn build(bytes: &[u8]) -> Result<PageIndex, IndexError> {
    PageIndex::build(StreamReader::from_slice(bytes).skip_page_bodies(true))
}

#[test]
fn every_truncation_is_an_error() {
    let bytes = hvm_body(HVM).pages(&notab(10..12, 1)).rec(VERIFY, []).pages(&notab(10..12, 2)).end().bytes();
    assert!(build(&bytes).is_ok());
    for len in 0..bytes.len() {
        let err = build(&bytes[..len]).expect_err("a truncated stream");
        let text = err.to_string();
        assert!(text.contains("byte") || text.contains("offset"), "{len}: {text}");
    }
}

#[test]
fn byte_flips_never_panic() {
    let bytes = pv().wrapped(Wrap::Xl(b"{}\0".to_vec())).bytes();
    let mut rng = Rng::new(0x5EED);
    for _ in 0..3000 {
        let mut b = bytes.clone();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(b.len() as u64) as usize;
            b[at] ^= 1 << rng.below(8);
        }
        let _ = sr_image::fuzzing::fuzz_index(&b);
    }
}

#[test]
fn limits_are_enforced() {
    let bytes = hvm_body(HVM).pages(&notab(0..3, 1)).end().bytes();
    let reader = || StreamReader::from_slice(&bytes).skip_page_bodies(true);
    let err = PageIndex::build_with(reader(), IndexLimits::default().with_max_pages(4)).unwrap_err();
    assert!(matches!(err, IndexError::TooManyPages { limit: 4, .. }), "{err}");
    let err = PageIndex::build_with(reader(), IndexLimits::default().with_pfn_limit(5)).unwrap_err();
    assert!(matches!(err, IndexError::PfnOutOfRange { pfn: 5, limit: 5, .. }), "{err}");
    assert_eq!(PageIndex::build_with(reader(), IndexLimits::default().with_max_pages(6)).unwrap().len(), 6);
}

#[test]
fn a_stream_without_end_is_incomplete() {
    let bytes = hvm_body(HVM).bytes();
    assert!(matches!(build(&bytes).unwrap_err(), IndexError::Format(_) | IndexError::Incomplete { .. }));
    let err = build(&[]).unwrap_err();
    assert!(matches!(err, IndexError::Format(_)), "{err}");
}
