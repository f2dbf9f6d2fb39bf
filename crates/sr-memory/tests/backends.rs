//! One behavioural suite, run against every backend at 4 KiB and 64 KiB pages, plus a
//! property test of each backend against a naive `BTreeMap` oracle.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use sr_memory::{FileMemory, GuestMemory, MemoryError, Pfn, RamMemory};

/// Enough pages for `RamMemory` to span three 512-page chunks.
const LIMIT: u64 = 1100;

/// A backend plus whatever must outlive it (the temporary directory of a file).
struct Fixture<M> {
    mem: M,
    _dir: Option<tempfile::TempDir>,
}

fn ram(shift: u32, limit: u64) -> Fixture<RamMemory> {
    Fixture { mem: RamMemory::new(shift, limit).unwrap(), _dir: None }
}

fn file(shift: u32, limit: u64) -> Fixture<FileMemory> {
    let dir = tempfile::tempdir().unwrap();
    let mem = FileMemory::create(dir.path().join("guest.img"), shift, limit).unwrap();
    Fixture { mem, _dir: Some(dir) }
}

#[cfg(feature = "vm-memory")]
fn vm(shift: u32, limit: u64) -> Fixture<sr_memory::VmMemory<sr_memory::vm::vm_memory::GuestMemoryMmap>> {
    Fixture {
        mem: sr_memory::VmMemory::anonymous(shift, usize::try_from(limit << shift).unwrap()).unwrap(),
        _dir: None,
    }
}

/// A page identified by `tag` at both ends, filled with a tag-dependent byte, so
/// swapped, misplaced or partly copied pages show.
fn page(size: usize, tag: u64) -> Vec<u8> {
    let mut p = vec![(tag as u8) ^ (tag >> 8) as u8 ^ 0x5a; size];
    p[..8].copy_from_slice(&tag.to_le_bytes());
    p[size - 8..].copy_from_slice(&tag.to_le_bytes());
    p
}

fn pages(size: usize, tags: impl IntoIterator<Item = u64>) -> Vec<u8> {
    let mut out = Vec::new();
    for tag in tags {
        out.extend_from_slice(&page(size, tag));
    }
    out
}

fn read_all(mem: &impl GuestMemory, pfns: &[Pfn]) -> Vec<u8> {
    let mut out = vec![0xa5; pfns.len() * mem.page_size()];
    mem.read_pages(pfns, &mut out).unwrap();
    out
}

fn ones(map: &sr_memory::PfnBitmap) -> Vec<Pfn> {
    map.iter_ones().collect()
}

/// The populated set a fresh backend starts with: nothing for sparse backends, all of
/// memory for a fixed memory map.
fn initial_populated(mem: &impl GuestMemory, sparse: bool) -> BTreeSet<Pfn> {
    if sparse { BTreeSet::new() } else { (0..mem.pfn_limit()).collect() }
}

fn round_trip(mem: &impl GuestMemory) {
    let ps = mem.page_size();
    // Unsorted, repeated pfns, across chunk boundaries; the last write of 7 and 511 wins.
    let pfns = [7, 3, 511, 512, 7, 1099, 0, 511, 513];
    let tags = [1, 2, 3, 4, 5, 6, 7, 8, 9];
    mem.write_pages(&pfns, &pages(ps, tags)).unwrap();

    let mut expect: BTreeMap<Pfn, u64> = BTreeMap::new();
    for (&p, &t) in pfns.iter().zip(&tags) {
        expect.insert(p, t);
    }
    // Read back in a different order, with repeats and never-written pfns.
    let read = [1099, 511, 7, 7, 0, 3, 512, 513, 1, 510, 1098];
    let got = read_all(mem, &read);
    for (i, &p) in read.iter().enumerate() {
        let want = expect.get(&p).map_or_else(|| vec![0; ps], |&t| page(ps, t));
        assert!(got[i * ps..(i + 1) * ps] == want[..], "pfn {p} differs");
    }

    // A second batch of consecutive pfns overwrites part of the first.
    mem.write_pages(&[510, 511, 512], &pages(ps, [20, 21, 22])).unwrap();
    assert!(read_all(mem, &[510, 511, 512, 513]) == pages(ps, [20, 21, 22, 9]));
}

fn unpopulated_reads_zero(mem: &impl GuestMemory) {
    let last = mem.pfn_limit() - 1;
    let got = read_all(mem, &[0, last, 5, 600]);
    assert!(got.iter().all(|&b| b == 0));
    // Empty batches are fine.
    mem.read_pages(&[], &mut []).unwrap();
    mem.write_pages(&[], &[]).unwrap();
    assert!(mem.take_dirty().is_empty());
}

fn out_of_bounds_rejected(mem: &impl GuestMemory, sparse: bool) {
    let ps = mem.page_size();
    let limit = mem.pfn_limit();
    let before = mem.populated();
    for bad in [limit, limit + 1, u64::MAX, u64::MAX >> mem.page_shift()] {
        let err = mem.write_pages(&[1, 2, bad, 3], &pages(ps, [1, 2, 3, 4])).unwrap_err();
        assert!(matches!(err, MemoryError::PfnOutOfRange { pfn, limit: l } if pfn == bad && l == limit), "{err:?}");
        let mut out = vec![0; 2 * ps];
        assert!(matches!(mem.read_pages(&[0, bad], &mut out), Err(MemoryError::PfnOutOfRange { .. })));
        assert!(matches!(mem.populate(&[4, bad]), Err(MemoryError::PfnOutOfRange { .. })));
        assert!(!mem.is_populated(bad));
    }
    // No partial effect: nothing written, populated or dirtied.
    assert!(read_all(mem, &[1, 2, 3]).iter().all(|&b| b == 0));
    assert_eq!(mem.populated(), before);
    assert_eq!(mem.is_populated(4), !sparse);
    assert!(mem.take_dirty().is_empty());
}

fn length_mismatch_rejected(mem: &impl GuestMemory) {
    let ps = mem.page_size();
    let err = mem.write_pages(&[1, 2], &vec![1; 2 * ps - 1]).unwrap_err();
    assert!(
        matches!(err, MemoryError::LengthMismatch { expected, found } if expected == 2 * ps && found == 2 * ps - 1),
        "{err:?}"
    );
    assert!(matches!(mem.write_pages(&[], &[0]), Err(MemoryError::LengthMismatch { expected: 0, found: 1 })));
    assert!(matches!(mem.write_pages(&[1], &vec![1; 2 * ps]), Err(MemoryError::LengthMismatch { .. })));
    let mut out = vec![0; ps + 1];
    assert!(matches!(mem.read_pages(&[1], &mut out), Err(MemoryError::LengthMismatch { .. })));
    assert!(read_all(mem, &[1, 2]).iter().all(|&b| b == 0));
    assert!(mem.take_dirty().is_empty());
}

fn populate_idempotent_and_exact(mem: &impl GuestMemory, sparse: bool) {
    let ps = mem.page_size();
    let mut expect = initial_populated(mem, sparse);
    assert_eq!(ones(&mem.populated()), expect.iter().copied().collect::<Vec<_>>());

    mem.write_pages(&[9], &page(ps, 42)).unwrap();
    mem.populate(&[9, 8, 700, 8, 1099]).unwrap();
    mem.populate(&[700, 9]).unwrap();
    expect.extend([8, 9, 700, 1099]);

    assert!(read_all(mem, &[9]) == page(ps, 42), "populate kept contents");
    assert!(read_all(mem, &[8, 700, 1099]).iter().all(|&b| b == 0));
    let populated = mem.populated();
    assert_eq!(populated.len(), mem.pfn_limit());
    assert_eq!(ones(&populated), expect.iter().copied().collect::<Vec<_>>());
    for p in [0, 7, 8, 9, 10, 699, 700, 1099] {
        assert_eq!(mem.is_populated(p), expect.contains(&p), "pfn {p}");
    }
    // Populating is not writing.
    assert_eq!(ones(&mem.take_dirty()), [9]);
}

fn dirty_log(mem: &impl GuestMemory) {
    let ps = mem.page_size();
    assert!(mem.take_dirty().is_empty());
    mem.write_pages(&[600, 5, 5, 1099], &pages(ps, [1, 2, 3, 4])).unwrap();
    mem.populate(&[77]).unwrap();
    let dirty = mem.take_dirty();
    assert_eq!(dirty.len(), mem.pfn_limit());
    assert_eq!(ones(&dirty), [5, 600, 1099]);
    assert!(mem.take_dirty().is_empty(), "take clears the log");

    mem.write_pages(&[6], &page(ps, 9)).unwrap();
    mem.write_pages(&[600], &page(ps, 10)).unwrap();
    assert_eq!(ones(&mem.take_dirty()), [6, 600]);
    assert!(mem.take_dirty().is_empty());
}

fn concurrent_write_and_read(mem: &impl GuestMemory) {
    const ROUNDS: u64 = 200;
    let ps = mem.page_size();
    // Spread over two chunks and some gaps, written as one batch per round.
    let pfns: Vec<Pfn> = (0..32).chain(500..530).chain([900, 1099]).collect();
    let mut seen_dirty = BTreeSet::new();
    std::thread::scope(|s| {
        let pfns = &pfns;
        s.spawn(move || {
            for round in 1..=ROUNDS {
                let data = pages(ps, pfns.iter().map(|&p| (round << 32) | p));
                mem.write_pages(pfns, &data).unwrap();
            }
        });
        let reader = s.spawn(move || {
            let mut dirty = BTreeSet::new();
            let mut out = vec![0; pfns.len() * ps];
            for _ in 0..ROUNDS {
                mem.read_pages(pfns, &mut out).unwrap();
                for (chunk, &p) in out.chunks_exact(ps).zip(pfns) {
                    for end in [&chunk[..8], &chunk[ps - 8..]] {
                        let tag = u64::from_le_bytes(end.try_into().unwrap());
                        // Either untouched or some round's value for this very pfn.
                        assert!(tag == 0 || tag & 0xffff_ffff == p, "pfn {p} read {tag:#x}");
                    }
                }
                dirty.extend(mem.take_dirty().iter_ones());
            }
            dirty
        });
        seen_dirty = reader.join().unwrap();
    });
    seen_dirty.extend(mem.take_dirty().iter_ones());
    assert_eq!(seen_dirty.into_iter().collect::<Vec<_>>(), pfns, "every write shows up in exactly the dirty log");
    let want = pages(ps, pfns.iter().map(|&p| (ROUNDS << 32) | p));
    assert!(read_all(mem, &pfns) == want, "final contents are the last round");
}

macro_rules! backend_suite {
    ($name:ident, $make:path, sparse = $sparse:expr) => {
        mod $name {
            use super::*;

            #[test]
            fn round_trip_4k() {
                round_trip(&$make(12, LIMIT).mem);
            }
            #[test]
            fn round_trip_64k() {
                round_trip(&$make(16, LIMIT).mem);
            }
            #[test]
            fn unpopulated_reads_zero_4k() {
                unpopulated_reads_zero(&$make(12, LIMIT).mem);
            }
            #[test]
            fn unpopulated_reads_zero_64k() {
                unpopulated_reads_zero(&$make(16, LIMIT).mem);
            }
            #[test]
            fn out_of_bounds_rejected_4k() {
                out_of_bounds_rejected(&$make(12, LIMIT).mem, $sparse);
            }
            #[test]
            fn out_of_bounds_rejected_64k() {
                out_of_bounds_rejected(&$make(16, LIMIT).mem, $sparse);
            }
            #[test]
            fn length_mismatch_rejected_4k() {
                length_mismatch_rejected(&$make(12, LIMIT).mem);
            }
            #[test]
            fn length_mismatch_rejected_64k() {
                length_mismatch_rejected(&$make(16, LIMIT).mem);
            }
            #[test]
            fn populate_idempotent_and_exact_4k() {
                populate_idempotent_and_exact(&$make(12, LIMIT).mem, $sparse);
            }
            #[test]
            fn populate_idempotent_and_exact_64k() {
                populate_idempotent_and_exact(&$make(16, LIMIT).mem, $sparse);
            }
            #[test]
            fn dirty_log_4k() {
                dirty_log(&$make(12, LIMIT).mem);
            }
            #[test]
            fn dirty_log_64k() {
                dirty_log(&$make(16, LIMIT).mem);
            }
            #[test]
            fn concurrent_write_and_read_4k() {
                concurrent_write_and_read(&$make(12, LIMIT).mem);
            }
            #[test]
            fn concurrent_write_and_read_64k() {
                concurrent_write_and_read(&$make(16, LIMIT).mem);
            }
            #[test]
            fn works_through_pointers() {
                let fixture = $make(12, LIMIT);
                let shared = std::sync::Arc::new(fixture.mem);
                let boxed: Box<dyn GuestMemory> = Box::new(std::sync::Arc::clone(&shared));
                dirty_log(&boxed);
                round_trip(&&*shared);
            }

            proptest! {
                #![proptest_config(ProptestConfig::with_cases(48))]
                #[test]
                fn matches_oracle(ops in proptest::collection::vec(op(), 1..40)) {
                    let fixture = $make(12, ORACLE_LIMIT);
                    check_against_oracle(&fixture.mem, $sparse, &ops)?;
                }
            }
        }
    };
}

backend_suite!(ram_memory, ram, sparse = true);
backend_suite!(file_memory, file, sparse = true);
#[cfg(feature = "vm-memory")]
backend_suite!(vm_memory, vm, sparse = false);

// ---- Property test against a naive oracle ---------------------------------------

/// Three `RamMemory` chunks, the last one short.
const ORACLE_LIMIT: u64 = 1030;

#[derive(Debug, Clone)]
enum Op {
    Write(Vec<Pfn>, u8),
    Read(Vec<Pfn>),
    Populate(Vec<Pfn>),
    TakeDirty,
}

/// Pfns clustered where bugs live: low pages, a chunk boundary, the limit (and beyond).
fn pfn() -> impl Strategy<Value = Pfn> {
    prop_oneof![
        4 => 0..6u64,
        4 => 508..516u64,
        3 => ORACLE_LIMIT - 4..ORACLE_LIMIT,
        1 => ORACLE_LIMIT..ORACLE_LIMIT + 3,
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let pfns = || proptest::collection::vec(pfn(), 0..10);
    prop_oneof![
        4 => (pfns(), any::<u8>()).prop_map(|(p, t)| Op::Write(p, t)),
        3 => pfns().prop_map(Op::Read),
        2 => pfns().prop_map(Op::Populate),
        1 => Just(Op::TakeDirty),
    ]
}

fn check_against_oracle(mem: &impl GuestMemory, sparse: bool, ops: &[Op]) -> Result<(), TestCaseError> {
    let ps = mem.page_size();
    let limit = mem.pfn_limit();
    let mut contents: BTreeMap<Pfn, Vec<u8>> = BTreeMap::new();
    let mut populated = initial_populated(mem, sparse);
    let mut dirty: BTreeSet<Pfn> = BTreeSet::new();

    for (step, op) in ops.iter().enumerate() {
        let in_range = |pfns: &[Pfn]| pfns.iter().all(|&p| p < limit);
        match op {
            Op::Write(pfns, tag) => {
                let tags = (0..pfns.len() as u64).map(|i| (u64::from(*tag) << 16) | (step as u64 * 64 + i));
                let data = pages(ps, tags);
                let result = mem.write_pages(pfns, &data);
                if in_range(pfns) {
                    prop_assert!(result.is_ok(), "{result:?}");
                    for (&p, chunk) in pfns.iter().zip(data.chunks_exact(ps)) {
                        contents.insert(p, chunk.to_vec());
                        populated.insert(p);
                        dirty.insert(p);
                    }
                } else {
                    let is_oob = matches!(result, Err(MemoryError::PfnOutOfRange { .. }));
                    prop_assert!(is_oob, "{result:?}");
                }
            }
            Op::Read(pfns) => {
                let mut out = vec![0x5a; pfns.len() * ps];
                let result = mem.read_pages(pfns, &mut out);
                if in_range(pfns) {
                    prop_assert!(result.is_ok(), "{result:?}");
                    for (&p, chunk) in pfns.iter().zip(out.chunks_exact(ps)) {
                        let zero = vec![0; ps];
                        let want = contents.get(&p).unwrap_or(&zero);
                        prop_assert!(chunk == &want[..], "step {step}: pfn {p} differs");
                    }
                } else {
                    prop_assert!(result.is_err());
                }
            }
            Op::Populate(pfns) => {
                let result = mem.populate(pfns);
                if in_range(pfns) {
                    prop_assert!(result.is_ok(), "{result:?}");
                    populated.extend(pfns);
                } else {
                    prop_assert!(result.is_err());
                }
            }
            Op::TakeDirty => {
                let got: Vec<Pfn> = mem.take_dirty().iter_ones().collect();
                prop_assert_eq!(got, std::mem::take(&mut dirty).into_iter().collect::<Vec<_>>());
            }
        }
        let got: Vec<Pfn> = mem.populated().iter_ones().collect();
        prop_assert_eq!(&got, &populated.iter().copied().collect::<Vec<_>>(), "step {}", step);
    }
    // Every page, read back in one batch, equals the oracle.
    let all: Vec<Pfn> = (0..limit).collect();
    let got = read_all(mem, &all);
    for (&p, chunk) in all.iter().zip(got.chunks_exact(ps)) {
        match contents.get(&p) {
            Some(want) => prop_assert!(chunk == &want[..], "final pfn {p}"),
            None => prop_assert!(chunk.iter().all(|&b| b == 0), "final pfn {p} not zero"),
        }
    }
    Ok(())
}
