//! The real Xen 4.17 `xl save` file restores and verifies.

#[path = "../../../tests/common/testdata.rs"]
mod testdata;

use sr_format::{DomainType, Layer, PageType, RecordType, StreamReader};
use sr_memory::{GuestMemory, RamMemory};
use sr_restore::{RestoreOptions, Restorer};
use testdata::real_save_file;

#[test]
fn restores_the_real_pv_guest() {
    let bytes = real_save_file();
    let restored = Restorer::new(RestoreOptions::default())
        .restore(StreamReader::from_slice(&bytes), |h| RamMemory::new(u32::from(h.page_shift.get()), 1 << 20))
        .unwrap();
    let s = &restored.state;
    assert_eq!(s.domain_type, DomainType::X86_PV);
    assert_eq!((s.xen_major, s.xen_minor, s.stream_version), (4, 17, 3));
    assert_eq!(restored.container.layer, Layer::Xl);
    assert!(restored.container.xl_config.as_ref().unwrap().starts_with(b"{\n    \"c_info\""));
    let pv = s.pv_info.unwrap();
    assert_eq!((pv.guest_width, pv.pt_levels), (8, 4));
    let p2m = s.p2m.as_ref().unwrap();
    assert_eq!((p2m.end_pfn, p2m.frames.len()), (8191, 16));
    assert_eq!(s.vcpus.len(), 1);
    assert_eq!(s.vcpus[&0].basic.as_ref().unwrap().len(), 5168);
    assert_eq!(s.shared_info.as_ref().unwrap().len(), 4096);
    assert!(s.tsc.is_some() && !s.cpuid.is_empty() && !s.msrs.is_empty());
    assert_eq!(restored.stats.records[&RecordType::PAGE_DATA], 8);
    let by_type = &restored.stats.pages_by_type;
    assert_eq!(by_type[&PageType::NOTAB], 8073);
    assert_eq!(by_type[&PageType::L1TAB], 15);
    assert_eq!(by_type[&PageType::L1TAB_PINNED], 15);
    assert_eq!(by_type[&PageType::L2TAB], 10);
    assert_eq!(by_type[&PageType::L3TAB], 72);
    assert_eq!(by_type[&PageType::L4TAB_PINNED], 7);
    assert_eq!(s.page_types.len(), 8192 - 8073);

    // Every one of the guest's 1024 tagged tmpfs pages is in restored memory.
    let mem = restored.memory.unwrap();
    let pfns: Vec<u64> = (0..8192).collect();
    let mut image = vec![0u8; 8192 * 4096];
    mem.read_pages(&pfns, &mut image).unwrap();
    let mut found = std::collections::BTreeSet::new();
    for page in image.chunks_exact(4096) {
        // A tagged page: "REALXEN-PAGE-%06d-" repeated (other pages may mention the prefix).
        let Some(rest) = page.strip_prefix(b"REALXEN-PAGE-") else { continue };
        let Some(n) = std::str::from_utf8(&rest[..6]).ok().and_then(|d| d.parse::<u32>().ok()) else { continue };
        if rest[6] == b'-' && page[20..40] == page[..20] {
            found.insert(n);
        }
    }
    assert_eq!(found.len(), 1024);
    assert_eq!(found.last(), Some(&1023));
}

#[test]
fn verifies_the_real_file_from_a_reader_too() {
    let bytes = real_save_file();
    let from_slice = Restorer::new(RestoreOptions::default()).verify(StreamReader::from_slice(&bytes)).unwrap();
    let from_read = Restorer::new(RestoreOptions::default()).verify(StreamReader::from_read(&bytes[..])).unwrap();
    assert_eq!(from_slice.state, from_read.state);
    assert_eq!(from_slice.stats, from_read.stats);
    assert_eq!(from_slice.stats.bytes, bytes.len() as u64);
}

#[test]
fn verify_skipping_page_bodies_sees_the_same_stream() {
    let bytes = real_save_file();
    let full = Restorer::new(RestoreOptions::default()).verify(StreamReader::from_slice(&bytes)).unwrap();
    let source = sr_format::SeekSource::new(std::io::Cursor::new(&bytes[..])).unwrap();
    let skipping =
        Restorer::new(RestoreOptions::default()).verify(StreamReader::new(source).skip_page_bodies(true)).unwrap();
    assert_eq!(skipping.state, full.state);
    assert_eq!(skipping.stats, full.stats);
    assert_eq!(skipping.stats.data_bytes, 8192 * 4096);

    // A restore needs the bodies: asking for one without them is a clear error.
    let err = Restorer::new(RestoreOptions::default())
        .restore(StreamReader::from_slice(&bytes).skip_page_bodies(true), |h| {
            RamMemory::new(u32::from(h.page_shift.get()), 1 << 20)
        })
        .unwrap_err();
    assert!(err.to_string().contains("page bodies were skipped"), "{err}");
}
