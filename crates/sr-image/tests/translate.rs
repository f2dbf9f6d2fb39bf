//! Page-table walks in every paging mode over hand-built tables, and on the real Xen image.

use std::collections::BTreeMap;

use sr_image::{PagingMode, PhysMemory, ReadError, TranslateError, Translation, translate};

/// Sparse guest-physical memory of 4 KiB pages.
#[derive(Default)]
struct Mem(BTreeMap<u64, Vec<u8>>);

impl Mem {
    fn put(&mut self, addr: u64, bytes: &[u8]) {
        for (i, b) in bytes.iter().enumerate() {
            let a = addr + i as u64;
            self.0.entry(a >> 12).or_insert_with(|| vec![0; 4096])[(a & 0xFFF) as usize] = *b;
        }
    }
    fn put64(&mut self, addr: u64, v: u64) {
        self.put(addr, &v.to_le_bytes());
    }
    fn put32(&mut self, addr: u64, v: u32) {
        self.put(addr, &v.to_le_bytes());
    }
}

impl PhysMemory for Mem {
    fn read_phys(&self, addr: u64, buf: &mut [u8]) -> Result<(), ReadError> {
        for (i, b) in buf.iter_mut().enumerate() {
            let a = addr + i as u64;
            let page = self.0.get(&(a >> 12)).ok_or(ReadError::Hole { addr: a, pfn: a >> 12 })?;
            *b = page[(a & 0xFFF) as usize];
        }
        Ok(())
    }
}

const P: u64 = 1; // present
const RW: u64 = 2;
const PS: u64 = 1 << 7;
const NX: u64 = 1 << 63;

#[test]
fn four_level_4k_2m_1g_and_not_present() {
    let mut m = Mem::default();
    let (pml4, pdpt, pd, pt) = (0x1000u64, 0x2000u64, 0x3000u64, 0x4000u64);
    let va = 0xFFFF_8880_1234_5678u64; // canonical, upper half
    let idx = |va: u64, level: u32| (va >> (12 + 9 * (level - 1))) & 0x1FF;
    m.put64(pml4 + idx(va, 4) * 8, pdpt | P | RW);
    m.put64(pdpt + idx(va, 3) * 8, pd | P | RW);
    m.put64(pd + idx(va, 2) * 8, pt | P | RW);
    m.put64(pt + idx(va, 1) * 8, 0x7_6543_2000 | P | NX);
    assert_eq!(
        translate(&m, PagingMode::FourLevel, pml4, va).unwrap(),
        Translation { phys: 0x7_6543_2678, page_size: 4096, level: 1 }
    );
    // 2 MiB page in the PD: the next PD entry.
    let va2 = va + (2 << 20);
    m.put64(pd + idx(va2, 2) * 8, 0x4060_0000 | P | PS);
    assert_eq!(
        translate(&m, PagingMode::FourLevel, pml4, va2).unwrap(),
        Translation { phys: 0x4060_0000 | (va2 & 0x1F_FFFF), page_size: 2 << 20, level: 2 }
    );
    // 1 GiB page in the PDPT.
    let va3 = va + (1 << 30);
    m.put64(pdpt + idx(va3, 3) * 8, 0x80_C000_0000 | P | PS);
    assert_eq!(
        translate(&m, PagingMode::FourLevel, pml4, va3).unwrap(),
        Translation { phys: 0x80_C000_0000 | (va3 & 0x3FFF_FFFF), page_size: 1 << 30, level: 3 }
    );
    // Not present at level 1 and at level 4.
    let err = translate(&m, PagingMode::FourLevel, pml4, va + 4096).unwrap_err();
    assert!(
        matches!(err, TranslateError::NotPresent { level: 1, entry_addr, .. } if entry_addr == pt + (idx(va, 1) + 1) * 8)
    );
    let err = translate(&m, PagingMode::FourLevel, pml4, 0x1000).unwrap_err();
    assert!(matches!(err, TranslateError::NotPresent { level: 4, entry_addr: 0x1000, entry: 0, .. }), "{err}");
    // Non-canonical.
    assert!(matches!(
        translate(&m, PagingMode::FourLevel, pml4, 0x0000_8000_0000_0000).unwrap_err(),
        TranslateError::BadAddress { .. }
    ));
    // A table in a hole is a read error at its level.
    m.put64(pml4, 0x9999_9000 | P);
    assert!(matches!(
        translate(&m, PagingMode::FourLevel, pml4, 0x10).unwrap_err(),
        TranslateError::Read { level: 3, source: ReadError::Hole { addr: 0x9999_9000, .. }, .. }
    ));
}

#[test]
fn five_level_adds_a_level() {
    let mut m = Mem::default();
    let va = 0x0001_0000_0000_1234u64; // needs bits above 47: only valid with LA57
    let idx = |level: u32| (va >> (12 + 9 * (level - 1))) & 0x1FF;
    let tables = [0x1000u64, 0x2000, 0x3000, 0x4000, 0x5000];
    for (i, level) in (1..=5u32).rev().enumerate() {
        let next = if level == 1 { 0xABC_D000 } else { tables[i + 1] };
        m.put64(tables[i] + idx(level) * 8, next | P);
    }
    assert_eq!(translate(&m, PagingMode::FiveLevel, 0x1000, va).unwrap().phys, 0xABC_D234);
    assert!(matches!(translate(&m, PagingMode::FourLevel, 0x1000, va), Err(TranslateError::BadAddress { .. })));
}

#[test]
fn pae_4k_and_2m() {
    let mut m = Mem::default();
    // The PDPT is 32-byte aligned, not page aligned, in PAE mode.
    let (pdpt, pd, pt) = (0x1020u64, 0x2000u64, 0x3000u64);
    let va = 0xC012_3456u64;
    m.put64(pdpt + 3 * 8, pd | P);
    m.put64(pd + ((va >> 21) & 0x1FF) * 8, pt | P);
    m.put64(pt + ((va >> 12) & 0x1FF) * 8, 0x1_2345_6000 | P);
    assert_eq!(translate(&m, PagingMode::Pae, pdpt, va).unwrap().phys, 0x1_2345_6456);
    let va2 = 0xC060_0010u64;
    m.put64(pd + ((va2 >> 21) & 0x1FF) * 8, 0x20_0000 | P | PS);
    assert_eq!(
        translate(&m, PagingMode::Pae, pdpt, va2).unwrap(),
        Translation { phys: 0x20_0010, page_size: 2 << 20, level: 2 }
    );
    assert!(matches!(translate(&m, PagingMode::Pae, pdpt, 0x1000), Err(TranslateError::NotPresent { level: 3, .. })));
    assert!(matches!(translate(&m, PagingMode::Pae, pdpt, 1 << 32), Err(TranslateError::BadAddress { .. })));
}

#[test]
fn two_level_4k_and_4m_pse36() {
    let mut m = Mem::default();
    let (pd, pt) = (0x5000u64, 0x6000u64);
    let va = 0x0804_8123u64;
    m.put32(pd + (va >> 22) * 4, (pt | P) as u32);
    m.put32(pt + ((va >> 12) & 0x3FF) * 4, 0x0012_3000 | P as u32);
    let mode = PagingMode::TwoLevel { pse: true };
    assert_eq!(translate(&m, mode, pd, va).unwrap().phys, 0x12_3123);
    // 4 MiB page with PSE-36 bits 39:32 = 0x3.
    let va2 = 0xC040_1234u64;
    m.put32(pd + (va2 >> 22) * 4, (0x0080_0000 | (0x3 << 13) | PS | P) as u32);
    assert_eq!(
        translate(&m, mode, pd, va2).unwrap(),
        Translation { phys: 0x3_0080_0000 | 0x1234, page_size: 4 << 20, level: 2 }
    );
    // Without CR4.PSE the PS bit is ignored: the entry is a page table.
    assert!(matches!(
        translate(&m, PagingMode::TwoLevel { pse: false }, pd, va2),
        Err(TranslateError::Read { level: 1, .. })
    ));
    assert!(matches!(translate(&m, mode, pd, 0x1000), Err(TranslateError::NotPresent { level: 2, .. })));
}

#[test]
fn modes_from_registers() {
    use sr_image::{CR0_PG, CR4_LA57, CR4_PAE, CR4_PSE, EFER_LMA};
    assert_eq!(PagingMode::from_registers(0, CR4_PAE, EFER_LMA), PagingMode::None);
    assert_eq!(PagingMode::from_registers(CR0_PG, CR4_PSE, 0), PagingMode::TwoLevel { pse: true });
    assert_eq!(PagingMode::from_registers(CR0_PG, CR4_PAE, 0), PagingMode::Pae);
    assert_eq!(PagingMode::from_registers(CR0_PG, CR4_PAE, EFER_LMA), PagingMode::FourLevel);
    assert_eq!(PagingMode::from_registers(CR0_PG, CR4_PAE | CR4_LA57, EFER_LMA), PagingMode::FiveLevel);
    assert_eq!(PagingMode::for_pv(4, 3), Some(PagingMode::Pae));
    assert_eq!(PagingMode::for_pv(8, 4), Some(PagingMode::FourLevel));
    assert_eq!(PagingMode::for_pv(8, 3), None);
    assert_eq!(translate(&Mem::default(), PagingMode::None, 0, 0x1234).unwrap().phys, 0x1234);
}

#[path = "../../../tests/common/testdata.rs"]
mod testdata;

/// The real 64-bit PV guest: 4-level paging from X86_PV_INFO, CR3 from vcpu 0's context; Linux
/// maps all memory at 0xffff888000000000 (no KASLR in PV), so those addresses translate to
/// `va - 0xffff888000000000`.
#[test]
fn real_pv_guest_direct_map() {
    let bytes = testdata::real_save_file();
    let image = sr_image::GuestImage::from_bytes(&bytes[..]).unwrap();
    let paging = sr_image::vcpu_paging(image.index(), 0).unwrap();
    assert_eq!(paging.mode, PagingMode::FourLevel, "a 64-bit PV guest");
    assert!(image.index().get(paging.cr3 >> 12).is_some(), "the top-level table is populated");
    // A page with the guest's marker, seen through its direct-map address.
    let marked = image
        .index()
        .pages()
        .find(|p| {
            let mut head = [0u8; 13];
            image.read_phys(p.pfn << 12, &mut head, sr_image::Holes::Error).is_ok() && &head == b"REALXEN-PAGE-"
        })
        .expect("a marked page");
    let va = 0xFFFF_8880_0000_0000 + (marked.pfn << 12) + 5;
    let t = translate(&image, paging.mode, paging.cr3, va).unwrap();
    assert_eq!(t.phys, (marked.pfn << 12) + 5);
    assert!(sr_image::vcpu_paging(image.index(), 1).is_err(), "one vcpu only");
}

/// An HVM stream whose vcpu 0 runs in long mode with CR3 at pfn 1: PML4 (pfn 1) -> PDPT
/// (pfn 2) -> PD (pfn 3) -> PT (pfn 4) -> data page pfn 9 at `HVM_VA`, and a 2 MiB page at
/// `HVM_VA + 2 MiB` mapping pfns 0x200.. (only 0x200 is populated).
pub const HVM_VA: u64 = 0xFFFF_8000_0040_0000;

fn hvm_stream() -> Vec<u8> {
    use sr_format::body::hvm_context::HvmHwCpu;
    use sr_format::{DomainHeader, DomainType, ImageHeader, PageType, PfnEntry, RecordType, RecordWriter};
    use zerocopy::{FromZeros, IntoBytes};
    let idx = |level: u32| ((HVM_VA >> (12 + 9 * (level - 1))) & 0x1FF) as usize;
    let mut pages = vec![vec![0u8; 4096]; 5];
    let mut set =
        |page: usize, slot: usize, v: u64| pages[page][slot * 8..slot * 8 + 8].copy_from_slice(&v.to_le_bytes());
    set(1, idx(4), 0x2000 | P | RW);
    set(2, idx(3), 0x3000 | P | RW);
    set(3, idx(2), 0x4000 | P | RW);
    set(3, idx(2) + 1, 0x20_0000 | P | PS);
    set(4, idx(1), 0x9000 | P | NX);
    let mut data = vec![0u8; 4096];
    data[..16].copy_from_slice(b"HVM-VIRTUAL-PAGE");
    let mut big = vec![0u8; 4096];
    big[..8].copy_from_slice(b"BIG-PAGE");
    let pfns = [1u64, 2, 3, 4, 9, 0x200];
    let words: Vec<u8> = pfns.iter().flat_map(|&p| PfnEntry::new(p, PageType::NOTAB).encode().to_le_bytes()).collect();
    let bodies = [&pages[1][..], &pages[2][..], &pages[3][..], &pages[4][..], &data[..], &big[..]];

    let mut cpu = HvmHwCpu::new_zeroed();
    cpu.cr0.set(0x8000_0011); // PG | ET | PE
    cpu.cr4.set(0x20); // PAE
    cpu.msr_efer.set(0x500); // LMA | LME
    cpu.cr3.set(0x1000);
    let mut blob = Vec::new();
    let mut entry = |code: u16, payload: &[u8]| {
        blob.extend_from_slice(&code.to_le_bytes());
        blob.extend_from_slice(&0u16.to_le_bytes());
        blob.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        blob.extend_from_slice(payload);
    };
    entry(1, &[0u8; 24]);
    entry(2, cpu.as_bytes());
    entry(0, &[]);

    let mut w = RecordWriter::new(Vec::new());
    w.write_headers(&ImageHeader::new(3), &DomainHeader::new(DomainType::X86_HVM, 12, 4, 17)).unwrap();
    w.write_record(RecordType::STATIC_DATA_END, &[]).unwrap();
    w.write_page_data(pfns.len(), pfns.len(), 4096, &words, &bodies).unwrap();
    w.write_record(RecordType::HVM_CONTEXT, &blob).unwrap();
    w.write_record(RecordType::END, &[]).unwrap();
    w.into_inner()
}

#[test]
fn hvm_paging_comes_from_the_cpu_save_record() {
    let bytes = hvm_stream();
    let image = sr_image::GuestImage::from_bytes(&bytes[..]).unwrap();
    let paging = sr_image::vcpu_paging(image.index(), 0).unwrap();
    assert_eq!(paging, sr_image::VcpuPaging { mode: PagingMode::FourLevel, cr3: 0x1000 });
    let t = translate(&image, paging.mode, paging.cr3, HVM_VA + 3).unwrap();
    assert_eq!(t, Translation { phys: 0x9003, page_size: 4096, level: 1 });
    let mut buf = [0u8; 16];
    image.read_phys(t.phys - 3, &mut buf, sr_image::Holes::Error).unwrap();
    assert_eq!(&buf, b"HVM-VIRTUAL-PAGE");
    let t = translate(&image, paging.mode, paging.cr3, HVM_VA + (2 << 20) + 0x1234).unwrap();
    assert_eq!(t, Translation { phys: 0x20_1234, page_size: 2 << 20, level: 2 });
    assert!(sr_image::vcpu_paging(image.index(), 1).is_err(), "no CPU record for vcpu 1");
}
