//! Xen's log-dirty bitmap as an sr-memory [`PfnBitmap`].
//!
//! `XEN_DOMCTL_SHADOW_OP_CLEAN` fills an array of `unsigned long`s in which bit `p % 64` of
//! word `p / 64` is pfn `p` (`xen/arch/x86/mm/paging.c`, `paging_log_dirty_op`), for the first
//! `pages` pfns.

use sr_memory::{MemoryError, PfnBitmap};

/// The pfns set in `words`, below `pages`, as a bitmap of length `len` (`>= pages`).
pub fn bitmap_from_xen(words: &[u64], pages: u64, len: u64) -> Result<PfnBitmap, MemoryError> {
    let pages = pages.min(words.len() as u64 * 64);
    let ones = words.iter().enumerate().flat_map(|(i, &w)| {
        let base = i as u64 * 64;
        BitIter(w).map(move |b| base + b)
    });
    PfnBitmap::from_pfns(len, ones.take_while(|&p| p < pages))
}

/// The set bits of a word, ascending.
struct BitIter(u64);

impl Iterator for BitIter {
    type Item = u64;
    fn next(&mut self) -> Option<u64> {
        if self.0 == 0 {
            return None;
        }
        let b = self.0.trailing_zeros();
        self.0 &= self.0 - 1;
        Some(u64::from(b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_become_pfns() {
        let words = [0b1010_0001u64, 0, 1 << 63, u64::MAX];
        let bm = bitmap_from_xen(&words, 200, 256).unwrap();
        let ones: Vec<u64> = bm.iter_ones().collect();
        let mut want = vec![0, 5, 7, 191];
        want.extend(192..200);
        assert_eq!(ones, want);
        assert_eq!(bm.len(), 256);
    }

    #[test]
    fn bits_beyond_the_length_are_rejected() {
        // pages larger than the bitmap: a pfn out of range is an error, not a panic.
        assert!(bitmap_from_xen(&[u64::MAX], 64, 10).is_err());
        assert_eq!(bitmap_from_xen(&[], 64, 10).unwrap().count_ones(), 0);
    }
}
