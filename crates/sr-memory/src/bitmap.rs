//! Pfn bitmaps for populated and dirty tracking.
//!
//! [`PfnBitmap`] is a plain owned bitmap: the value returned by snapshots and dirty-log
//! takes. [`AtomicPfnBitmap`] is the shared, lock-free bitmap a backend updates from
//! many threads at once.
//!
//! Both cover the pfns `0..len`. Out-of-range pfns are ignored by setters (which report
//! it through their return value) and read as unset, so a bad pfn can never panic.
//!
//! Both remember how far bits were ever set (a word count, never lowered), and every scan
//! (counting, the highest bit, iterating, snapshots, takes) stops there: a restore bounded
//! by a 1 TiB span keeps 32 MiB bitmaps, and scanning them whole to find the 1 GiB a guest
//! populated cost page faults and memory reads of the order of 10% of the restore.

use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use zerocopy::FromZeros;

use crate::{MemoryError, Pfn};

const WORD_BITS: u64 = u64::BITS as u64;

/// Splits a pfn into (word index, bit mask), or `None` if it is not below `len`.
fn locate(pfn: Pfn, len: u64) -> Option<(usize, u64)> {
    if pfn >= len {
        return None;
    }
    let word = usize::try_from(pfn / WORD_BITS).ok()?;
    Some((word, 1 << (pfn % WORD_BITS)))
}

/// Number of words needed for `len` bits, or `None` if that does not fit a `usize`.
fn word_count(len: u64) -> Option<usize> {
    usize::try_from(len.div_ceil(WORD_BITS)).ok()
}

/// Returns the highest set bit of `words`, as a pfn.
fn last_one_of(words: impl DoubleEndedIterator<Item = u64> + ExactSizeIterator) -> Option<Pfn> {
    let (index, word) = words.enumerate().rev().find(|&(_, w)| w != 0)?;
    Some(index as u64 * WORD_BITS + u64::from(u64::BITS - 1 - word.leading_zeros()))
}

/// An owned bitmap over the pfns `0..len`.
///
/// Bits at or above `len` are always clear, so equality compares exactly the covered pfns.
#[derive(Clone, Default)]
pub struct PfnBitmap {
    words: Vec<u64>,
    len: u64,
    /// Words at or above this index are clear.
    used: usize,
}

impl PartialEq for PfnBitmap {
    fn eq(&self, other: &Self) -> bool {
        let used = self.used.max(other.used);
        self.len == other.len && self.words.get(..used) == other.words.get(..used)
    }
}

impl Eq for PfnBitmap {}

impl PfnBitmap {
    /// Creates an all-clear bitmap covering `0..len`.
    ///
    /// The storage is allocated zeroed, so a large bitmap that stays mostly clear costs
    /// little resident memory.
    ///
    /// # Panics
    ///
    /// Panics (or aborts) if the allocation fails, like `Vec`. Backends only create
    /// bitmaps of at most [`MAX_PFN_LIMIT`](crate::MAX_PFN_LIMIT) bits.
    pub fn new(len: u64) -> Self {
        let words = word_count(len).expect("PfnBitmap length exceeds the address space");
        Self { words: vec![0; words], len, used: 0 }
    }

    /// The words that may hold set bits.
    fn live(&self) -> &[u64] {
        self.words.get(..self.used).unwrap_or(&self.words)
    }

    /// Builds a bitmap covering `0..len` with the given pfns set.
    ///
    /// Fails with [`MemoryError::PfnOutOfRange`] on the first pfn not below `len`.
    pub fn from_pfns(len: u64, pfns: impl IntoIterator<Item = Pfn>) -> Result<Self, MemoryError> {
        let mut map = Self::new(len);
        for pfn in pfns {
            if !map.set(pfn) {
                return Err(MemoryError::PfnOutOfRange { pfn, limit: len });
            }
        }
        Ok(map)
    }

    /// The number of pfns covered (`0..len`), not the number set.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether no pfn is set.
    pub fn is_empty(&self) -> bool {
        self.live().iter().all(|&w| w == 0)
    }

    /// Sets `pfn`. Returns `false` (and changes nothing) if `pfn` is not below `len`.
    pub fn set(&mut self, pfn: Pfn) -> bool {
        match locate(pfn, self.len).and_then(|(i, m)| Some((i, self.words.get_mut(i)?, m))) {
            Some((i, word, mask)) => {
                *word |= mask;
                self.used = self.used.max(i + 1);
                true
            }
            None => false,
        }
    }

    /// Clears `pfn`. Returns `false` (and changes nothing) if `pfn` is not below `len`.
    pub fn clear(&mut self, pfn: Pfn) -> bool {
        match locate(pfn, self.len).and_then(|(i, m)| Some((self.words.get_mut(i)?, m))) {
            Some((word, mask)) => {
                *word &= !mask;
                true
            }
            None => false,
        }
    }

    /// Whether `pfn` is set; `false` for pfns not below `len`.
    pub fn get(&self, pfn: Pfn) -> bool {
        locate(pfn, self.len).and_then(|(i, m)| Some(self.words.get(i)? & m != 0)).unwrap_or(false)
    }

    /// The number of set pfns.
    pub fn count_ones(&self) -> u64 {
        self.live().iter().map(|w| u64::from(w.count_ones())).sum()
    }

    /// The highest set pfn, if any.
    pub fn last_one(&self) -> Option<Pfn> {
        last_one_of(self.live().iter().copied())
    }

    /// Iterates over the set pfns in ascending order, skipping clear words whole.
    pub fn iter_ones(&self) -> Ones<'_> {
        Ones { words: self.live().iter().enumerate(), base: 0, current: 0 }
    }

    /// Sets every pfn set in `other`. If `other` covers more pfns, `self` grows to match.
    pub fn union_with(&mut self, other: &PfnBitmap) {
        if other.len > self.len {
            self.words.resize(other.words.len(), 0);
            self.len = other.len;
        }
        for (mine, theirs) in self.words.iter_mut().zip(other.live()) {
            *mine |= theirs;
        }
        self.used = self.used.max(other.used);
    }

    /// The raw words, bit `p % 64` of word `p / 64` standing for pfn `p`.
    pub fn as_words(&self) -> &[u64] {
        &self.words
    }
}

impl fmt::Debug for PfnBitmap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 16;
        let mut list = f.debug_list();
        list.entries(self.iter_ones().take(SHOWN));
        if self.count_ones() > SHOWN as u64 {
            list.entry(&format_args!("... ({} set of {})", self.count_ones(), self.len));
        }
        list.finish()
    }
}

impl<'a> IntoIterator for &'a PfnBitmap {
    type Item = Pfn;
    type IntoIter = Ones<'a>;

    fn into_iter(self) -> Ones<'a> {
        self.iter_ones()
    }
}

/// Iterator over the set pfns of a [`PfnBitmap`], ascending.
#[derive(Debug, Clone)]
pub struct Ones<'a> {
    words: std::iter::Enumerate<std::slice::Iter<'a, u64>>,
    /// The pfn of bit 0 of `current`.
    base: u64,
    /// The not-yet-yielded bits of the current word.
    current: u64,
}

impl Iterator for Ones<'_> {
    type Item = Pfn;

    fn next(&mut self) -> Option<Pfn> {
        while self.current == 0 {
            // Clear words are skipped whole.
            let (index, &word) = self.words.next()?;
            self.base = index as u64 * WORD_BITS;
            self.current = word;
        }
        let bit = self.current.trailing_zeros();
        self.current &= self.current - 1;
        Some(self.base + u64::from(bit))
    }
}

/// A bitmap over the pfns `0..len` that many threads may update at once.
///
/// Setters use `fetch_or` with `Release`, readers `Acquire`, and [`take`](Self::take)
/// swaps words with zero, so no set bit is ever lost: a bit set concurrently with a take
/// is either in the returned bitmap or left for the next take.
pub struct AtomicPfnBitmap {
    words: Box<[AtomicU64]>,
    len: u64,
    /// Words at or above this index are clear; only ever raised, after the word is set.
    used: AtomicUsize,
}

impl AtomicPfnBitmap {
    /// Creates an all-clear bitmap covering `0..len`, or [`MemoryError::Alloc`] if the
    /// storage cannot be allocated.
    ///
    /// The storage comes from the zeroing allocator, so clear regions cost no resident
    /// memory until a bit in them is set.
    pub fn try_new(len: u64) -> Result<Self, MemoryError> {
        let alloc_err = || MemoryError::Alloc { bytes: usize::try_from(len.div_ceil(8)).unwrap_or(usize::MAX) };
        let count = word_count(len).ok_or_else(alloc_err)?;
        let words = <[AtomicU64]>::new_box_zeroed_with_elems(count).map_err(|_| alloc_err())?;
        Ok(Self { words, len, used: AtomicUsize::new(0) })
    }

    /// Creates an all-clear bitmap covering `0..len`.
    ///
    /// # Panics
    ///
    /// Panics if the storage cannot be allocated; use [`try_new`](Self::try_new) to get
    /// an error instead.
    pub fn new(len: u64) -> Self {
        match Self::try_new(len) {
            Ok(map) => map,
            Err(e) => panic!("AtomicPfnBitmap::new({len}): {e}"),
        }
    }

    /// The number of pfns covered (`0..len`), not the number set.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether no pfn is set (a racy observation if other threads are setting bits).
    pub fn is_empty(&self) -> bool {
        self.live().iter().all(|w| w.load(Ordering::Acquire) == 0)
    }

    /// The words that may hold set bits. A bit set after this call may lie beyond them;
    /// it is seen by the next call (`used` is raised after the word is set, and read with
    /// `Acquire` here).
    fn live(&self) -> &[AtomicU64] {
        let used = self.used.load(Ordering::Acquire);
        self.words.get(..used).unwrap_or(&self.words)
    }

    /// Records that word `i` may hold set bits (after it was set).
    fn note_used(&self, i: usize) {
        if self.used.load(Ordering::Relaxed) <= i {
            self.used.fetch_max(i + 1, Ordering::Release);
        }
    }

    /// Sets `pfn`. Returns `false` (and changes nothing) if `pfn` is not below `len`.
    pub fn set(&self, pfn: Pfn) -> bool {
        match locate(pfn, self.len).and_then(|(i, m)| Some((self.words.get(i)?, m))) {
            Some((word, mask)) => {
                // Always a read-modify-write (never "skip if already set"): the RMW is
                // what orders it against a concurrent `take`, so a page written before
                // its bit is set is seen by whoever takes that bit.
                word.fetch_or(mask, Ordering::Release);
                self.note_used(usize::try_from(pfn / WORD_BITS).unwrap_or(usize::MAX));
                true
            }
            None => false,
        }
    }

    /// Sets every pfn in `range`, a word at a time. Pfns at or above `len` are ignored;
    /// returns `false` if there were any.
    pub fn set_range(&self, range: std::ops::Range<Pfn>) -> bool {
        let in_range = range.end <= self.len || range.is_empty();
        let (mut pfn, end) = (range.start, range.end.min(self.len));
        while pfn < end {
            let offset = pfn % WORD_BITS;
            let bits = (end - pfn).min(WORD_BITS - offset);
            let mask = if bits == WORD_BITS { u64::MAX } else { ((1u64 << bits) - 1) << offset };
            if let Some((i, word)) = usize::try_from(pfn / WORD_BITS).ok().and_then(|i| Some((i, self.words.get(i)?))) {
                word.fetch_or(mask, Ordering::Release);
                self.note_used(i);
            }
            pfn += bits;
        }
        in_range
    }

    /// Clears `pfn`. Returns `false` (and changes nothing) if `pfn` is not below `len`.
    pub fn clear(&self, pfn: Pfn) -> bool {
        match locate(pfn, self.len).and_then(|(i, m)| Some((self.words.get(i)?, m))) {
            Some((word, mask)) => {
                word.fetch_and(!mask, Ordering::Release);
                true
            }
            None => false,
        }
    }

    /// Whether `pfn` is set; `false` for pfns not below `len`.
    pub fn get(&self, pfn: Pfn) -> bool {
        locate(pfn, self.len)
            .and_then(|(i, m)| Some(self.words.get(i)?.load(Ordering::Acquire) & m != 0))
            .unwrap_or(false)
    }

    /// The number of set pfns (a racy observation if other threads are setting bits).
    pub fn count_ones(&self) -> u64 {
        self.live().iter().map(|w| u64::from(w.load(Ordering::Acquire).count_ones())).sum()
    }

    /// The highest set pfn, if any.
    pub fn last_one(&self) -> Option<Pfn> {
        last_one_of(self.live().iter().map(|w| w.load(Ordering::Acquire)))
    }

    /// Returns the set pfns and clears them, word by word.
    ///
    /// Clear words are only loaded, never written, so taking a sparse bitmap does not
    /// fault in its untouched storage.
    pub fn take(&self) -> PfnBitmap {
        let mut out = PfnBitmap::new(self.len);
        let live = self.live();
        for (dst, src) in out.words.iter_mut().zip(live) {
            if src.load(Ordering::Relaxed) != 0 {
                *dst = src.swap(0, Ordering::AcqRel);
            }
        }
        out.used = live.len();
        out
    }

    /// Returns a copy of the set pfns without clearing them.
    pub fn snapshot(&self) -> PfnBitmap {
        let mut out = PfnBitmap::new(self.len);
        let live = self.live();
        out.used = live.len();
        for (dst, src) in out.words.iter_mut().zip(live) {
            // Only set words are stored: the new bitmap's zeroed pages stay untouched (and
            // unallocated), so a snapshot of a sparse bitmap over a large span stays cheap.
            let word = src.load(Ordering::Acquire);
            if word != 0 {
                *dst = word;
            }
        }
        out
    }
}

impl fmt::Debug for AtomicPfnBitmap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AtomicPfnBitmap").field("len", &self.len).field("set", &self.count_ones()).finish()
    }
}
