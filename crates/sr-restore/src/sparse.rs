//! A sparse pfn set: 256-pfn bitmap chunks (32 bytes, stored inline in an ordered map),
//! with the chunk in use kept out of the map so runs of nearby pfns cost one lookup.
//!
//! Small chunks keep the cost of a hostile stream that scatters pfns (one per chunk) within
//! a small multiple of the 8-byte pfn words that named them, while a dense guest costs about
//! 2.5 bits per pfn.

use std::collections::BTreeMap;

const CHUNK_BITS: u32 = 8;
const WORDS: usize = 1 << (CHUNK_BITS - 6);

type Chunk = [u64; WORDS];

/// A set of pfns whose memory grows with the chunks touched, not with the pfn values.
#[derive(Debug, Default)]
pub(crate) struct SparsePfnSet {
    chunks: BTreeMap<u64, Chunk>,
    hot: Option<(u64, Chunk)>,
}

impl SparsePfnSet {
    fn chunk(&mut self, key: u64) -> &mut Chunk {
        if self.hot.as_ref().is_none_or(|(k, _)| *k != key) {
            if let Some((k, c)) = self.hot.take() {
                self.chunks.insert(k, c);
            }
            let c = self.chunks.remove(&key).unwrap_or_default();
            self.hot = Some((key, c));
        }
        let (_, c) = self.hot.as_mut().expect("hot chunk was just set");
        c
    }

    /// Adds `pfn`; returns whether it was new.
    pub fn insert(&mut self, pfn: u64) -> bool {
        let bit = (pfn & ((1 << CHUNK_BITS) - 1)) as usize;
        let word = &mut self.chunk(pfn >> CHUNK_BITS)[bit / 64];
        let mask = 1u64 << (bit % 64);
        let new = *word & mask == 0;
        *word |= mask;
        new
    }

    /// Whether `pfn` is in the set.
    pub fn contains(&self, pfn: u64) -> bool {
        let key = pfn >> CHUNK_BITS;
        let chunk = match &self.hot {
            Some((k, c)) if *k == key => Some(c),
            _ => self.chunks.get(&key),
        };
        let bit = (pfn & ((1 << CHUNK_BITS) - 1)) as usize;
        chunk.is_some_and(|c| c[bit / 64] & (1 << (bit % 64)) != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_a_btreeset() {
        let mut set = SparsePfnSet::default();
        let mut oracle = std::collections::BTreeSet::new();
        let mut x = 0x1234_5678_u64;
        for _ in 0..20_000 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let pfn = if x & 1 == 0 { (x >> 20) & 0xF_FFFF_FFFF_FFFF } else { (x >> 40) & 0xFFFF };
            assert_eq!(set.insert(pfn), oracle.insert(pfn));
            assert!(set.contains(pfn));
        }
        for pfn in (0..0x1_0000).chain([u64::MAX >> 12, 1 << 51]) {
            assert_eq!(set.contains(pfn), oracle.contains(&pfn));
        }
    }
}
