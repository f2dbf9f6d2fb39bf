//! `FileMemory` specifics: exact image length, holes, reopening an image.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;

use sr_memory::{FileMemory, GuestMemory, MemoryError, Pfn};

fn page(size: usize, tag: u8) -> Vec<u8> {
    let mut p = vec![tag; size];
    p[0] = tag.wrapping_add(1);
    p
}

#[test]
fn finish_makes_the_image_length_exact() {
    for shift in [12, 14, 16] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("img");
        let mem = FileMemory::create(&path, shift, 100).unwrap();
        let ps = mem.page_size() as u64;
        assert_eq!(mem.finish().unwrap(), 0, "nothing populated: empty image");

        mem.write_pages(&[5], &page(mem.page_size(), 1)).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 6 * ps);
        // Populated but never written, above every written page.
        mem.populate(&[9]).unwrap();
        assert_eq!(mem.finish().unwrap(), 10 * ps);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 10 * ps);
        // Lower pages do not change the length; finish never shrinks.
        mem.write_pages(&[0], &page(mem.page_size(), 2)).unwrap();
        assert_eq!(mem.finish().unwrap(), 10 * ps);
        mem.sync().unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 10 * ps);
    }
}

#[test]
fn holes_stay_holes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("img");
    let far: Pfn = 100_000; // ~400 MiB apparent size at 4 KiB pages
    let mem = FileMemory::create(&path, 12, far + 1).unwrap();
    mem.write_pages(&[0, far], &[page(4096, 1), page(4096, 2)].concat()).unwrap();
    mem.populate(&[50_000]).unwrap();
    assert_eq!(mem.finish().unwrap(), (far + 1) * 4096);
    mem.sync().unwrap();

    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(meta.len(), (far + 1) * 4096);
    let allocated = meta.blocks() * 512;
    assert!(allocated < 1 << 20, "{allocated} bytes allocated for a {} byte sparse image", meta.len());
    let mut out = vec![0xff; 4096];
    mem.read_pages(&[50_000], &mut out).unwrap();
    assert!(out.iter().all(|&b| b == 0));
}

#[test]
fn reopening_gives_the_same_contents_and_populated_set() {
    for shift in [12, 16] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("img");
        let ps = 1usize << shift;
        let mut written: BTreeMap<Pfn, Vec<u8>> = BTreeMap::new();
        {
            let mem = FileMemory::create(&path, shift, 2000).unwrap();
            let batches: [&[Pfn]; 3] = [&[3, 4, 5, 600], &[1000, 2, 1500, 4], &[1799]];
            for (n, pfns) in batches.into_iter().enumerate() {
                let data: Vec<u8> = pfns.iter().enumerate().flat_map(|(i, _)| page(ps, (n * 16 + i) as u8)).collect();
                mem.write_pages(pfns, &data).unwrap();
                for (&p, chunk) in pfns.iter().zip(data.chunks_exact(ps)) {
                    written.insert(p, chunk.to_vec());
                }
            }
            // A page written with zeros is still populated data.
            mem.write_pages(&[700], &vec![0; ps]).unwrap();
            written.insert(700, vec![0; ps]);
            mem.finish().unwrap();
            mem.sync().unwrap();
        }

        let mem = FileMemory::open(&path, shift).unwrap();
        assert_eq!(mem.page_shift(), shift);
        assert_eq!(mem.pfn_limit(), 1800, "limit = image length in pages");
        let populated: Vec<Pfn> = mem.populated().iter_ones().collect();
        assert_eq!(populated, written.keys().copied().collect::<Vec<_>>());
        assert!(mem.take_dirty().is_empty(), "a fresh open has a clean log");

        let all: Vec<Pfn> = (0..mem.pfn_limit()).collect();
        let mut out = vec![0xa5; all.len() * ps];
        mem.read_pages(&all, &mut out).unwrap();
        for (&p, got) in all.iter().zip(out.chunks_exact(ps)) {
            match written.get(&p) {
                Some(want) => assert!(got == &want[..], "pfn {p}"),
                None => assert!(got.iter().all(|&b| b == 0), "pfn {p} not zero"),
            }
        }

        // Read-only: writes fail with the pfn and operation, reads still work.
        let err = mem.write_pages(&[3], &page(ps, 9)).unwrap_err();
        assert!(matches!(err, MemoryError::Io { op: "pwrite", pfn: 3, .. }), "{err:?}");
        drop(mem);

        // Read-write reopen can update pages in place.
        let mem = FileMemory::open_rw(&path, shift).unwrap();
        mem.write_pages(&[3], &page(ps, 9)).unwrap();
        let mut out = vec![0; ps];
        mem.read_pages(&[3], &mut out).unwrap();
        assert!(out == page(ps, 9));
        assert_eq!(mem.into_file().metadata().unwrap().len(), 1800 * ps as u64);
    }
}

#[test]
fn reads_beyond_end_of_file_are_zero() {
    let dir = tempfile::tempdir().unwrap();
    let mem = FileMemory::create(dir.path().join("img"), 12, 100).unwrap();
    mem.write_pages(&[2], &page(4096, 7)).unwrap();
    // One run straddling EOF, and one entirely past it.
    let mut out = vec![0xff; 3 * 4096];
    mem.read_pages(&[2, 3, 50], &mut out).unwrap();
    assert!(out[..4096] == page(4096, 7)[..]);
    assert!(out[4096..].iter().all(|&b| b == 0));
}

#[test]
fn from_file_checks_the_limit_against_the_image() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("img");
    std::fs::write(&path, vec![1u8; 3 * 4096 + 10]).unwrap();

    let file = std::fs::File::open(&path).unwrap();
    let err = FileMemory::from_file(file, 12, 3).unwrap_err();
    assert!(matches!(err, MemoryError::PfnOutOfRange { pfn: 3, limit: 3 }), "{err:?}");

    // A partial last page counts as a page, reading zeros past the end.
    let mem = FileMemory::open(&path, 12).unwrap();
    assert_eq!(mem.pfn_limit(), 4);
    assert_eq!(mem.populated().count_ones(), 4);
    let mut out = vec![0; 4096];
    mem.read_pages(&[3], &mut out).unwrap();
    assert!(out[..10].iter().all(|&b| b == 1) && out[10..].iter().all(|&b| b == 0));

    let file = std::fs::File::open(&path).unwrap();
    let mem = FileMemory::from_file(file, 12, 1000).unwrap();
    assert_eq!(mem.pfn_limit(), 1000);
}

#[test]
fn rejects_bad_geometry_without_touching_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("img");
    assert!(matches!(FileMemory::create(&path, 13, 10), Err(MemoryError::PageShift { shift: 13 })));
    assert!(matches!(FileMemory::create(&path, 12, u64::MAX), Err(MemoryError::PfnLimit { .. })));
    assert!(!path.exists());
    assert!(matches!(FileMemory::open(&path, 12), Err(MemoryError::Image { op: "open", .. })));
}
