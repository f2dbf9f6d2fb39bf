//! The page contents Xen's restorer reads for x86 PV (issue 7, section 3): every present
//! entry of a page-table page names a pfn `<= max_pfn` (`x86_pv_localise_page`), and the
//! start_info page's xenstore and console frames are populated pfns `<= max_pfn`
//! (`process_start_info`). Restore checks both; verification checks page tables when it
//! reads their bodies and says what it skipped.

mod common;

use common::*;
use sr_memory::GuestMemory;
use sr_restore::{RestoreError, Restorer};

/// The guest: a 64-bit PV guest whose p2m ends at pfn 15 (one p2m frame, pfn 1);
/// start_info pfn 2, GDT pfn 3, an L1 table at pfn 4 and the pinned L4 at pfn 5.
const FRAMES: Frames =
    Frames { start_info: 2, gdt_ents: 16, gdt: [3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], cr3: 5, cr1: None };
/// Data index of the L1 table and of the start_info page in the PAGE_DATA record.
const L1_DATA: usize = 4;
const START_INFO_DATA: usize = 2;
const ENTRIES: usize = 6;

fn small_pv() -> Spec {
    let entries = [e(0, NOTAB), e(1, NOTAB), e(2, NOTAB), e(3, NOTAB), e(4, L1TAB), e(5, L4TAB_PINNED)];
    Spec::new(3, PV, 12)
        .rec(PV_INFO, pv_info(8, 4))
        .rec(SDE, [])
        .rec(P2M_FRAMES, p2m_frames(0, 15, &[1]))
        .pages(&entries)
        .rec(SHARED_INFO, vec![0u8; 4096])
        .rec(VCPU_BASIC, basic(0, 8, &FRAMES))
        .end()
}

/// Byte offset of 8-byte word `word` of data page `data` in a PAGE_DATA body of `ENTRIES` entries.
fn at(data: usize, word: usize) -> usize {
    8 + 8 * ENTRIES + data * 4096 + word * 8
}

fn with_word(spec: Spec, data: usize, word: usize, value: u64) -> Spec {
    spec.edit(PAGE_DATA, |b| b[at(data, word)..at(data, word) + 8].copy_from_slice(&value.to_le_bytes()))
}

fn limit() -> u64 {
    X86_LIMIT
}

#[test]
fn the_small_guest_restores() {
    let spec = small_pv();
    let r = restore_with(&spec.bytes(), strict(), limit()).unwrap();
    assert!(!r.skipped.any());
    // Verification reads the page tables but cannot read the start_info page.
    let v = verify_bytes(&spec.bytes(), strict()).unwrap();
    assert_eq!((v.skipped.page_tables, v.skipped.start_info), (0, true));
}

#[test]
fn a_present_entry_beyond_max_pfn_is_rejected_with_record_pfn_and_entry() {
    let spec = with_word(small_pv(), L1_DATA, 5, 0x1_0000_0000 | 0x67);
    let built = spec.build();
    let pd = spec.index_of(PAGE_DATA);
    let want = format!(
        "record {pd} (PAGE_DATA) at byte {}: entry 4: L1TAB page at pfn 0x4: entry 5 (0x0000000100000067) names pfn \
         0x100000, beyond max_pfn 0xf",
        built.off(pd)
    );
    for options in [lenient(), strict()] {
        let e = restore_with(&built.bytes, options.clone(), limit()).unwrap_err();
        assert!(matches!(e, RestoreError::PageContents { entry: 4, .. }), "{e:?}");
        assert_eq!(e.to_string(), want);
        // A verification that reads the bodies applies the same rule.
        assert_eq!(verify_bytes(&built.bytes, options).unwrap_err().to_string(), want);
    }
    // One past max_pfn is already too far; max_pfn itself is fine.
    let e = restore_with(&with_word(small_pv(), L1_DATA, 0, 16 << 12 | 1).bytes(), lenient(), limit()).unwrap_err();
    assert!(e.to_string().ends_with("entry 0 (0x0000000000010001) names pfn 0x10, beyond max_pfn 0xf"), "{e}");
    restore_with(&with_word(small_pv(), L1_DATA, 0, 15 << 12 | 1).bytes(), strict(), limit()).unwrap();
    // The pinned top-level table is checked too.
    let l4 = with_word(small_pv(), 5, 511, 0x20 << 12 | 3);
    let e = restore_with(&l4.bytes(), lenient(), limit()).unwrap_err();
    assert!(e.to_string().contains("entry 5: L4TAB|PINNED page at pfn 0x5: entry 511"), "{e}");
}

#[test]
fn verification_that_skips_page_bodies_says_which_checks_it_skipped() {
    let spec = with_word(small_pv(), L1_DATA, 5, 0x1_0000_0000 | 0x67);
    let bytes = spec.bytes();
    let seeking = sr_format::SeekSource::new(std::io::Cursor::new(&bytes)).unwrap();
    let v = Restorer::new(strict()).verify(sr_format::StreamReader::new(seeking).skip_page_bodies(true)).unwrap();
    assert_eq!((v.skipped.page_tables, v.skipped.start_info), (2, true));
}

#[test]
fn entries_xen_accepts_stay_accepted() {
    // Non-present entries name anything; a present entry may name a pfn never sent (Xen
    // populates it early), or the same pfn as another entry.
    let mut spec = with_word(small_pv(), L1_DATA, 0, 0xFFFF_FFFF_FFFF_F000);
    spec = with_word(spec, L1_DATA, 1, 9 << 12 | 0x67);
    spec = with_word(spec, L1_DATA, 2, 9 << 12 | 0x25);
    spec = with_word(spec, L1_DATA, 3, 1 << 63 | 3 << 12 | 1);
    let r = restore_with(&spec.bytes(), strict(), limit()).unwrap();
    assert!(!r.memory.unwrap().is_populated(9));
}

#[test]
fn start_info_frames_must_be_populated_pfns_within_max_pfn() {
    let cases = [
        (7, 16, "xenstore frame (store_mfn) pfn 0x10 is beyond max_pfn 0xf"),
        (9, 0x10_0000, "console frame (console.domU.mfn) pfn 0x100000 is beyond max_pfn 0xf"),
        (7, 9, "xenstore frame (store_mfn) pfn 0x9 was never populated"),
        (9, 12, "console frame (console.domU.mfn) pfn 0xc was never populated"),
    ];
    for (word, pfn, why) in cases {
        let spec = with_word(small_pv(), START_INFO_DATA, word, pfn);
        let built = spec.build();
        let end = built.off(spec.index_of(END));
        let e = restore_with(&built.bytes, lenient(), limit()).unwrap_err();
        assert!(matches!(e, RestoreError::Incomplete { offset, .. } if offset == end), "{e:?}");
        assert_eq!(e.to_string(), format!("END at byte {end}: vcpu 0: start_info page at pfn 0x2: {why}"));
        // Verification has no restored page to read: it accepts and says so.
        assert!(verify_bytes(&built.bytes, lenient()).unwrap().skipped.start_info);
    }
    // The final contents count: a later copy of the page that fixes it is accepted.
    let bad = with_word(small_pv(), START_INFO_DATA, 7, 16);
    let fixed = bad.insert_before(SHARED_INFO, PAGE_DATA, page_data(&[e(2, NOTAB)], 4096));
    restore_with(&fixed.bytes(), strict(), limit()).unwrap();
}

#[test]
fn a_32_bit_guest_has_its_own_start_info_layout() {
    let entries = [e(0, NOTAB), e(1, NOTAB), e(2, NOTAB), e(3, NOTAB), e(4, L1TAB), e(5, L3TAB_PINNED)];
    let spec = Spec::new(3, PV, 12)
        .rec(PV_INFO, pv_info(4, 3))
        .rec(SDE, [])
        .rec(P2M_FRAMES, p2m_frames(0, 15, &[1]))
        .pages(&entries)
        .rec(SHARED_INFO, vec![0u8; 4096])
        .rec(VCPU_BASIC, basic(0, 4, &FRAMES))
        .end();
    restore_with(&spec.bytes(), strict(), limit()).unwrap();
    // store_mfn at byte 44 (a 4-byte field), console.domU.mfn at 52.
    let store = spec.clone().edit(PAGE_DATA, |b| b[at(2, 0) + 44..at(2, 0) + 48].copy_from_slice(&20u32.to_le_bytes()));
    let e = restore_with(&store.bytes(), lenient(), limit()).unwrap_err();
    assert!(e.to_string().ends_with("xenstore frame (store_mfn) pfn 0x14 is beyond max_pfn 0xf"), "{e}");
    let console = spec.edit(PAGE_DATA, |b| b[at(2, 0) + 52..at(2, 0) + 56].copy_from_slice(&11u32.to_le_bytes()));
    let e = restore_with(&console.bytes(), lenient(), limit()).unwrap_err();
    assert!(e.to_string().ends_with("console frame (console.domU.mfn) pfn 0xb was never populated"), "{e}");
}
