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

/// The page contents rules hold for the real guest, and they read real fields: its
/// start_info page (found through vcpu 0's context) carries Xen's magic for a 64-bit
/// guest and names xenstore and console frames inside its p2m, and its page tables have
/// present entries.
#[test]
fn the_real_guest_has_the_page_contents_xen_checks() {
    let bytes = real_save_file();
    let restored = Restorer::new(RestoreOptions::default())
        .restore(StreamReader::from_slice(&bytes), |h| RamMemory::new(u32::from(h.page_shift.get()), 1 << 20))
        .unwrap();
    assert!(!restored.skipped.any());
    let s = &restored.state;
    let info = s.pv_info.unwrap();
    let max_pfn = u64::from(s.p2m.as_ref().unwrap().end_pfn);
    let basic = s.vcpus[&0].basic.as_ref().unwrap();
    let frames = sr_format::body::VcpuFrames::read(basic, info.guest_width).unwrap();
    let mem = restored.memory.unwrap();
    let mut page = vec![0u8; 4096];
    mem.read_pages(&[frames.start_info], &mut page).unwrap();
    assert_eq!(info.guest_width, 8);
    assert!(page.starts_with(b"xen-3.0-x86_64\0"), "{:?}", &page[..32]);
    let (store, console) = sr_rules::pv::start_info_frames(&page, info.guest_width).unwrap();
    assert!(store > 0 && store <= max_pfn && mem.is_populated(store), "store {store:#x}");
    assert!(console > 0 && console <= max_pfn && console != store && mem.is_populated(console), "console {console:#x}");
    // Page tables with present entries, every one within the p2m.
    let mut present = 0;
    for (&pfn, t) in s.page_types.iter().filter(|(_, t)| t.is_page_table()) {
        mem.read_pages(&[pfn], &mut page).unwrap();
        sr_rules::pv::check_page_table(pfn, *t, &page, max_pfn).unwrap();
        present += page.chunks_exact(8).filter(|w| w[0] & 1 != 0).count();
    }
    assert!(present > 1000, "{present} present entries");
}
