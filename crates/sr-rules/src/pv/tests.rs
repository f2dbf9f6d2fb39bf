use std::collections::BTreeSet;

use sr_format::DomainType;
use sr_format::body::{VCPU_CONTEXT_32, VCPU_CONTEXT_64};
use sr_format::state::{P2mState, VcpuState};

use super::*;

/// A 64-bit guest with max_pfn 15: p2m frame at pfn 1, start_info 2, GDT 3, L4 at 4.
fn guest(width: u8) -> (DomainState, BTreeSet<u64>) {
    let mut s = DomainState::new(DomainType::X86_PV, 12);
    let levels = if width == 8 { 4 } else { 3 };
    s.pv_info = Some(PvInfoState { guest_width: width, pt_levels: levels });
    s.p2m = Some(P2mState { end_pfn: 15, frames: vec![1] });
    let mut blob = vec![0u8; if width == 8 { VCPU_CONTEXT_64 } else { VCPU_CONTEXT_32 }];
    let mut f = VcpuFrames { start_info: 2, gdt_ents: 1, cr3_pfn: 4, ..Default::default() };
    f.gdt_frames[0] = 3;
    f.write(&mut blob, width);
    s.vcpus.insert(0, VcpuState { basic: Some(blob), ..Default::default() });
    s.page_types.insert(4, if width == 8 { PageType::L4TAB_PINNED } else { PageType::L3TAB_PINNED });
    (s, (0..16).collect())
}

fn start_info_page(width: u8, store: u64, console: u64) -> Vec<u8> {
    let mut page = vec![0u8; PAGE_SIZE];
    let ((s, c), word) = if width == 8 { (START_INFO_64, 8) } else { (START_INFO_32, 4) };
    page[s..s + word].copy_from_slice(&store.to_le_bytes()[..word]);
    page[c..c + word].copy_from_slice(&console.to_le_bytes()[..word]);
    page
}

fn end(s: &DomainState, populated: &BTreeSet<u64>, page: Option<&[u8]>) -> Result<Skipped, Violation> {
    let read = |pfn: u64, out: &mut [u8]| match page {
        Some(p) if pfn == 2 => {
            out.copy_from_slice(p);
            true
        }
        _ => false,
    };
    check_end(s, &|p| populated.contains(&p), page.map(|_| &read as PageReader<'_>))
}

#[test]
fn a_plausible_guest_passes_and_says_what_it_skipped() {
    for width in [4, 8] {
        let (s, pop) = guest(width);
        assert_eq!(end(&s, &pop, None), Ok(Skipped { start_info: true }));
        let page = start_info_page(width, 5, 6);
        assert_eq!(end(&s, &pop, Some(&page)), Ok(Skipped { start_info: false }));
    }
}

#[test]
fn start_info_frames_must_be_populated_and_within_max_pfn() {
    for width in [4, 8] {
        let (s, mut pop) = guest(width);
        let page = start_info_page(width, 16, 6);
        assert_eq!(
            end(&s, &pop, Some(&page)).unwrap_err().to_string(),
            "vcpu 0: start_info page at pfn 0x2: xenstore frame (store_mfn) pfn 0x10 is beyond max_pfn 0xf"
        );
        let page = start_info_page(width, 5, 7);
        pop.remove(&7);
        assert_eq!(
            end(&s, &pop, Some(&page)).unwrap_err().to_string(),
            "vcpu 0: start_info page at pfn 0x2: console frame (console.domU.mfn) pfn 0x7 was never populated"
        );
    }
}

#[test]
fn end_rules_in_xen_order_with_their_messages() {
    type Breaker = fn(&mut DomainState, &mut BTreeSet<u64>);
    let cases: [(Breaker, &str); 8] = [
        (|s, _| s.pv_info = None, "no X86_PV_INFO record"),
        (|s, _| s.p2m = None, "no X86_PV_P2M_FRAMES record"),
        (|s, _| s.vcpus.clear(), "no X86_PV_VCPU_BASIC for vcpu 0"),
        (|s, _| s.p2m.as_mut().unwrap().frames[0] = 16, "p2m frame 0 at pfn 0x10 is beyond max_pfn 0xf"),
        (
            |s, _| {
                s.page_types.insert(1, PageType::L1TAB);
            },
            "p2m frame 0 at pfn 0x1 has page type L1TAB, not NOTAB",
        ),
        (
            |_, p| {
                p.remove(&1);
            },
            "p2m frame 0 at pfn 0x1 was never populated",
        ),
        (
            |s, _| {
                s.page_types.remove(&4);
            },
            "vcpu 0: CR3 pfn 0x4 has page type NOTAB, not the top-level L4TAB",
        ),
        (
            |_, p| {
                p.remove(&3);
            },
            "vcpu 0: GDT frame 0 pfn 0x3 was never populated",
        ),
    ];
    for (break_it, message) in cases {
        let (mut s, mut pop) = guest(8);
        break_it(&mut s, &mut pop);
        assert_eq!(end(&s, &pop, None).unwrap_err().to_string(), message);
    }
}

#[test]
fn page_table_entries_must_name_pfns_within_max_pfn() {
    let mut page = vec![0u8; PAGE_SIZE];
    // Present entries naming pfns 15 and 3 (twice), a non-present one naming 0x100000.
    for (slot, pte) in [(0usize, 15u64 << 12 | 0x67), (1, 3 << 12 | 1), (2, 3 << 12 | 1), (3, 0x1_0000_0000 | 0x66)] {
        page[slot * 8..slot * 8 + 8].copy_from_slice(&pte.to_le_bytes());
    }
    for t in [PageType::L1TAB, PageType::L2TAB_PINNED, PageType::L4TAB] {
        check_page_table(20, t, &page, 15).unwrap();
    }
    page[5 * 8..6 * 8].copy_from_slice(&(0x1_0000_0000u64 | 0x67).to_le_bytes());
    let err = check_page_table(20, PageType::L1TAB_PINNED, &page, 15).unwrap_err();
    assert_eq!(
        err.to_string(),
        "L1TAB|PINNED page at pfn 0x14: entry 5 (0x0000000100000067) names pfn 0x100000, beyond max_pfn 0xf"
    );
    assert!(matches!(err, Violation::PageTableEntry { slot: 5, frame: 0x10_0000, .. }));
    // Only page tables are read.
    for t in [PageType::NOTAB, PageType::XALLOC] {
        check_page_table(20, t, &page, 15).unwrap();
    }
    // Bits 52-63 (NX, software bits) are not part of the frame.
    let mut nx = vec![0u8; PAGE_SIZE];
    nx[..8].copy_from_slice(&(1u64 << 63 | 0xFF0 << 52 | 15 << 12 | 1).to_le_bytes());
    check_page_table(20, PageType::L1TAB, &nx, 15).unwrap();
}

#[test]
fn vcpu_blob_sizes() {
    let b = RecordType::X86_PV_VCPU_BASIC;
    check_vcpu_blob(0, b, VCPU_CONTEXT_64, 8).unwrap();
    check_vcpu_blob(0, b, 0, 8).unwrap();
    assert_eq!(
        check_vcpu_blob(1, b, VCPU_CONTEXT_32, 8).unwrap_err().to_string(),
        "vcpu 1: vcpu context of 2800 bytes; a 64-bit guest's is 5168"
    );
    assert!(check_vcpu_blob(0, RecordType::X86_PV_VCPU_EXTENDED, 129, 8).is_err());
    assert!(check_vcpu_blob(0, RecordType::X86_PV_VCPU_XSAVE, 15, 8).is_err());
    assert!(check_vcpu_blob(0, RecordType::X86_PV_VCPU_MSRS, 24, 8).is_err());
    check_vcpu_blob(0, RecordType::X86_PV_VCPU_MSRS, 32, 8).unwrap();
}
