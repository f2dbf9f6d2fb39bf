//! `PfnBitmap` and `AtomicPfnBitmap` against a naive `BTreeSet` oracle.

use std::collections::BTreeSet;

use proptest::prelude::*;
use sr_memory::{AtomicPfnBitmap, MemoryError, Pfn, PfnBitmap};

#[derive(Debug, Clone)]
enum Op {
    Set(Pfn),
    Clear(Pfn),
    SetRange(Pfn, Pfn),
    Take,
}

/// Lengths around word boundaries, and pfns up to a little past the end.
fn len_and_ops() -> impl Strategy<Value = (u64, Vec<Op>)> {
    prop_oneof![Just(0u64), 1..3u64, 60..70u64, 120..300u64].prop_flat_map(|len| {
        let pfn = 0..len + 70;
        let op = prop_oneof![
            5 => pfn.clone().prop_map(Op::Set),
            2 => pfn.clone().prop_map(Op::Clear),
            1 => (pfn.clone(), pfn).prop_map(|(a, b)| Op::SetRange(a.min(b), a.max(b))),
            1 => Just(Op::Take),
        ];
        (Just(len), proptest::collection::vec(op, 0..80))
    })
}

fn check_plain(map: &PfnBitmap, oracle: &BTreeSet<Pfn>) -> Result<(), TestCaseError> {
    let ones: Vec<Pfn> = map.iter_ones().collect();
    prop_assert_eq!(&ones, &oracle.iter().copied().collect::<Vec<_>>());
    prop_assert_eq!(map.count_ones(), oracle.len() as u64);
    prop_assert_eq!(map.is_empty(), oracle.is_empty());
    prop_assert_eq!(map.last_one(), oracle.last().copied());
    for pfn in 0..map.len() + 70 {
        prop_assert_eq!(map.get(pfn), oracle.contains(&pfn), "pfn {}", pfn);
    }
    Ok(())
}

proptest! {
    #[test]
    fn plain_bitmap_matches_oracle((len, ops) in len_and_ops()) {
        let mut map = PfnBitmap::new(len);
        let mut oracle = BTreeSet::new();
        for op in &ops {
            match *op {
                Op::Set(p) => {
                    prop_assert_eq!(map.set(p), p < len);
                    if p < len { oracle.insert(p); }
                }
                Op::Clear(p) => {
                    prop_assert_eq!(map.clear(p), p < len);
                    oracle.remove(&p);
                }
                Op::SetRange(a, b) => {
                    for p in a..b.min(len) { map.set(p); oracle.insert(p); }
                }
                Op::Take => {}
            }
        }
        prop_assert_eq!(map.len(), len);
        check_plain(&map, &oracle)?;
        let rebuilt = PfnBitmap::from_pfns(len, oracle.iter().copied()).unwrap();
        prop_assert_eq!(&rebuilt, &map);
    }

    #[test]
    fn atomic_bitmap_matches_oracle((len, ops) in len_and_ops()) {
        let map = AtomicPfnBitmap::new(len);
        let mut oracle = BTreeSet::new();
        for op in &ops {
            match *op {
                Op::Set(p) => {
                    prop_assert_eq!(map.set(p), p < len);
                    if p < len { oracle.insert(p); }
                }
                Op::Clear(p) => {
                    prop_assert_eq!(map.clear(p), p < len);
                    oracle.remove(&p);
                }
                Op::SetRange(a, b) => {
                    prop_assert_eq!(map.set_range(a..b), b <= len || a == b);
                    oracle.extend(a..b.min(len));
                }
                Op::Take => {
                    let taken = map.take();
                    check_plain(&taken, &oracle)?;
                    oracle.clear();
                    prop_assert!(map.is_empty());
                }
            }
            prop_assert_eq!(map.count_ones(), oracle.len() as u64);
        }
        prop_assert_eq!(map.last_one(), oracle.last().copied());
        for pfn in 0..len + 70 {
            prop_assert_eq!(map.get(pfn), oracle.contains(&pfn));
        }
        check_plain(&map.snapshot(), &oracle)?;
        check_plain(&map.snapshot(), &oracle)?; // a snapshot does not clear
        check_plain(&map.take(), &oracle)?;
        prop_assert!(map.take().is_empty());
    }

    #[test]
    fn union_matches_oracle(
        (a_len, a) in (0..200u64).prop_flat_map(|l| (Just(l), proptest::collection::btree_set(0..l.max(1), 0..40))),
        (b_len, b) in (0..200u64).prop_flat_map(|l| (Just(l), proptest::collection::btree_set(0..l.max(1), 0..40))),
    ) {
        let a: BTreeSet<Pfn> = a.into_iter().filter(|&p| p < a_len).collect();
        let b: BTreeSet<Pfn> = b.into_iter().filter(|&p| p < b_len).collect();
        let mut map = PfnBitmap::from_pfns(a_len, a.iter().copied()).unwrap();
        map.union_with(&PfnBitmap::from_pfns(b_len, b.iter().copied()).unwrap());
        prop_assert_eq!(map.len(), a_len.max(b_len));
        check_plain(&map, &a.union(&b).copied().collect())?;
    }
}

#[test]
fn from_pfns_rejects_out_of_range() {
    let err = PfnBitmap::from_pfns(10, [1, 10, 3]).unwrap_err();
    assert!(matches!(err, MemoryError::PfnOutOfRange { pfn: 10, limit: 10 }));
}

#[test]
fn iter_ones_skips_large_clear_spans() {
    let mut map = PfnBitmap::new(1 << 24);
    for p in [0, 63, 64, 1 << 20, (1 << 24) - 1] {
        assert!(map.set(p));
    }
    let ones: Vec<Pfn> = map.iter_ones().collect();
    assert_eq!(ones, [0, 63, 64, 1 << 20, (1 << 24) - 1]);
    assert_eq!((&map).into_iter().count(), 5);
    assert!(format!("{map:?}").contains("1048576"));
}

#[test]
fn concurrent_sets_are_never_lost() {
    let map = AtomicPfnBitmap::new(4096);
    let mut taken = PfnBitmap::new(4096);
    std::thread::scope(|s| {
        for t in 0..2u64 {
            let map = &map;
            s.spawn(move || {
                for p in (t..4096).step_by(2) {
                    map.set(p);
                }
            });
        }
        for _ in 0..100 {
            taken.union_with(&map.take());
        }
    });
    taken.union_with(&map.take());
    assert_eq!(taken.count_ones(), 4096);
}

#[test]
fn scans_stop_at_the_highest_word_ever_set_and_equality_ignores_it() {
    let span = 1u64 << 28; // a 1 TiB span at 4 KiB pages: 32 MiB of words
    let atomic = AtomicPfnBitmap::new(span);
    assert!(atomic.is_empty() && atomic.snapshot().is_empty());
    for pfn in [3, 64, 1000, 70_000] {
        atomic.set(pfn);
    }
    atomic.set_range(80_000..80_100);
    atomic.clear(1000);
    let snap = atomic.snapshot();
    assert_eq!(snap.count_ones(), 103);
    assert_eq!(snap.last_one(), Some(80_099));
    let ones: Vec<Pfn> = snap.iter_ones().take(4).collect();
    assert_eq!(ones, [3, 64, 70_000, 80_000]);
    let mut rebuilt = PfnBitmap::new(span);
    for pfn in [3, 64, 70_000, 5_000_000] {
        rebuilt.set(pfn);
    }
    rebuilt.clear(5_000_000); // sets "used" far past the snapshot's
    for pfn in 80_000..80_100 {
        rebuilt.set(pfn);
    }
    assert_eq!(rebuilt, snap);
    let taken = atomic.take();
    assert_eq!(taken, snap);
    assert!(atomic.is_empty() && atomic.take().is_empty());
    // A bit set after a take, below the highest word ever set, is taken next time.
    atomic.set(64);
    assert_eq!(atomic.take().iter_ones().collect::<Vec<_>>(), [64]);
    let mut union = PfnBitmap::new(span);
    union.union_with(&snap);
    assert_eq!(union, snap);
}
