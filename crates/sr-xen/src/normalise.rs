//! Machine frames to pfns: what Xen's saver does to a 64-bit x86 PV guest's page tables and
//! vcpu contexts before they go into a stream (`normalise_pagetable` and
//! `write_one_vcpu_basic` in `tools/libs/guest/xg_sr_save_x86_pv.c`; xen-stream.md 4.1).
//!
//! A PV guest's page tables and control registers hold machine frame numbers (mfns), which
//! mean nothing on another host; the stream carries pfns, and the restorer turns them back
//! into the new domain's mfns. A frame is converted only if it is in the guest's
//! pseudo-physical map (the m2p says pfn `p` and the guest's p2m says `p -> mfn` back: Xen's
//! `mfn_in_pseudophys_map`); the caller supplies that check as a function.
//!
//! Pure logic over byte slices, tested without a hypervisor; only 64-bit guests (the width
//! [`crate::XenDomain`] supports).

use sr_format::PageType;
use sr_format::body::{VCPU_CONTEXT_64, VcpuFrames};

/// Present bit of a page-table entry.
const PTE_PRESENT: u64 = 1;
/// Page-size bit (a superpage when set above L1).
const PTE_PSE: u64 = 1 << 7;
/// The frame field of an entry: bits 12..=51.
const PTE_FRAME_MASK: u64 = 0x000f_ffff_ffff_f000;
/// L4 slots owned by Xen in a 64-bit PV guest (virtual `0xffff_8000_0000_0000..=
/// 0xffff_87ff_ffff_ffff`), zeroed in the stream as Xen's saver does.
pub const XEN_L4_SLOTS: std::ops::RangeInclusive<usize> = 256..=271;
/// Entries per 4 KiB page table.
const ENTRIES: usize = 512;

/// Why a page or context could not be normalised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NormaliseError {
    /// A present entry above L1 maps a superpage, which PV migration cannot carry (Xen: E2BIG).
    #[error("L{level} entry {index} is a superpage ({pte:#018x}), which PV migration cannot carry")]
    Superpage {
        /// Page-table level (2..=4).
        level: u8,
        /// Entry index (0..512).
        index: usize,
        /// The entry.
        pte: u64,
    },
    /// A present entry's frame is not one of the guest's own (Xen: EAGAIN while the guest
    /// runs, ERANGE once it is paused).
    #[error("L{level} entry {index} maps mfn {mfn:#x}, which is not in the guest's pseudo-physical map")]
    ForeignFrame {
        /// Page-table level (1..=4).
        level: u8,
        /// Entry index (0..512).
        index: usize,
        /// The machine frame.
        mfn: u64,
    },
    /// The page type is not a page table, or the body is not one 4 KiB page.
    #[error("pfn {pfn:#x}: {what}")]
    NotAPageTable {
        /// The pfn.
        pfn: u64,
        /// What is wrong.
        what: &'static str,
    },
    /// A vcpu context frame (start_info, GDT, CR3, CR1) is not one of the guest's own.
    #[error("vcpu {vcpu}: {field} mfn {mfn:#x} is not in the guest's pseudo-physical map")]
    VcpuFrame {
        /// The vcpu.
        vcpu: u32,
        /// Which field (`start_info (rdx)`, `gdt_frames[i]`, `cr3`, `cr1`).
        field: &'static str,
        /// The machine frame.
        mfn: u64,
    },
    /// The vcpu context is not a 64-bit `vcpu_guest_context` (5168 bytes).
    #[error("vcpu {vcpu}: context of {len} bytes (a 64-bit vcpu_guest_context is 5168)")]
    VcpuSize {
        /// The vcpu.
        vcpu: u32,
        /// Its length.
        len: usize,
    },
}

/// Normalises one 64-bit page table of `page_type` (L1TAB..L4TAB, pinned or not) in place:
/// Xen's L4 slots [`XEN_L4_SLOTS`] are zeroed, and every present entry's frame field
/// becomes the pfn `pfn_of(mfn)` gives, flags kept. Not-present entries are left as they are.
///
/// # Errors
/// [`NormaliseError::Superpage`] for a present PSE entry above L1,
/// [`NormaliseError::ForeignFrame`] for a frame `pfn_of` does not know (the page is then
/// partly rewritten: the caller discards it), [`NormaliseError::NotAPageTable`] if the type
/// is not a page table or `page` is not 4096 bytes.
pub fn normalise_page_table(
    pfn: u64,
    page_type: PageType,
    page: &mut [u8],
    pfn_of: impl Fn(u64) -> Option<u64>,
) -> Result<(), NormaliseError> {
    let Some(level) = page_type.is_page_table().then(|| page_type.nibble() & 0x7) else {
        return Err(NormaliseError::NotAPageTable { pfn, what: "not a page-table type" });
    };
    if page.len() != ENTRIES * 8 {
        return Err(NormaliseError::NotAPageTable { pfn, what: "a page table is 4096 bytes" });
    }
    for (index, entry) in page.chunks_exact_mut(8).enumerate() {
        if level == 4 && XEN_L4_SLOTS.contains(&index) {
            entry.fill(0);
            continue;
        }
        let pte = u64::from_le_bytes(entry.try_into().expect("8-byte chunk"));
        if pte & PTE_PRESENT == 0 {
            continue;
        }
        if level > 1 && pte & PTE_PSE != 0 {
            return Err(NormaliseError::Superpage { level, index, pte });
        }
        let mfn = (pte & PTE_FRAME_MASK) >> 12;
        let Some(p) = pfn_of(mfn).filter(|&p| p <= PTE_FRAME_MASK >> 12) else {
            return Err(NormaliseError::ForeignFrame { level, index, mfn });
        };
        entry.copy_from_slice(&((pte & !PTE_FRAME_MASK) | (p << 12)).to_le_bytes());
    }
    Ok(())
}

/// Byte offset of `ctrlreg[1]` in a 64-bit `vcpu_guest_context` (ctrlreg\[8\] at 4984).
const CTRLREG1_64: usize = 4984 + 8;

/// Normalises vcpu `vcpu`'s 64-bit `vcpu_guest_context` (the X86_PV_VCPU_BASIC body) in
/// place, as Xen's `write_one_vcpu_basic`: for vcpu 0 the start_info frame in rdx (the
/// argument of the guest's suspend hypercall), the GDT frames in use, CR3 and, when non-zero,
/// CR1 (the user page table) become pfns. Xen hands out CR1 as `mfn << 12` and the stream
/// carries it as `pfn << 12 | 1` (bit 0: present), which the restorer requires.
///
/// # Errors
/// [`NormaliseError::VcpuSize`] if the blob is not 5168 bytes; [`NormaliseError::VcpuFrame`]
/// naming the field whose frame `pfn_of` does not know.
pub fn normalise_vcpu_basic(
    vcpu: u32,
    blob: &mut [u8],
    pfn_of: impl Fn(u64) -> Option<u64>,
) -> Result<(), NormaliseError> {
    let Some(mut frames) = VcpuFrames::read(blob, 8).filter(|_| blob.len() == VCPU_CONTEXT_64) else {
        return Err(NormaliseError::VcpuSize { vcpu, len: blob.len() });
    };
    let convert = |field: &'static str, mfn: u64| pfn_of(mfn).ok_or(NormaliseError::VcpuFrame { vcpu, field, mfn });
    if vcpu == 0 {
        frames.start_info = convert("start_info (rdx)", frames.start_info)?;
    }
    const GDT_FIELDS: [&str; 16] = [
        "gdt_frames[0]",
        "gdt_frames[1]",
        "gdt_frames[2]",
        "gdt_frames[3]",
        "gdt_frames[4]",
        "gdt_frames[5]",
        "gdt_frames[6]",
        "gdt_frames[7]",
        "gdt_frames[8]",
        "gdt_frames[9]",
        "gdt_frames[10]",
        "gdt_frames[11]",
        "gdt_frames[12]",
        "gdt_frames[13]",
        "gdt_frames[14]",
        "gdt_frames[15]",
    ];
    let used = frames.gdt_frame_count();
    for (i, field) in GDT_FIELDS.iter().enumerate().take(used) {
        frames.gdt_frames[i] = convert(field, frames.gdt_frames[i])?;
    }
    frames.cr3_pfn = convert("cr3", frames.cr3_pfn)?;
    // The machine form has no present bit: any non-zero CR1 is a user page table.
    let cr1 = u64::from_le_bytes(blob[CTRLREG1_64..CTRLREG1_64 + 8].try_into().expect("8 bytes"));
    frames.cr1_pfn = if cr1 == 0 { None } else { Some(convert("cr1", cr1 >> 12)?) };
    frames.write(blob, 8);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(page: &mut [u8], i: usize, v: u64) {
        page[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
    }
    fn get(page: &[u8], i: usize) -> u64 {
        u64::from_le_bytes(page[i * 8..i * 8 + 8].try_into().unwrap())
    }
    /// mfn = pfn + 0x1000 for pfns below 0x100.
    fn m2p(mfn: u64) -> Option<u64> {
        mfn.checked_sub(0x1000).filter(|&p| p < 0x100)
    }

    #[test]
    fn present_entries_get_pfns_with_flags_kept() {
        let mut page = vec![0u8; 4096];
        put(&mut page, 0, 0x1005 << 12 | 0x67); // present, rw, user, accessed, dirty
        put(&mut page, 1, 0x8000_0000_0000_0000 | 0x10ff << 12 | 0x3); // NX bit kept
        put(&mut page, 2, 0xdead_b000); // not present: left alone
        put(&mut page, 3, 0x1010 << 12 | 0x81); // PSE on L1 is PAT: fine
        normalise_page_table(9, PageType::L1TAB, &mut page, m2p).unwrap();
        assert_eq!(get(&page, 0), 0x5 << 12 | 0x67);
        assert_eq!(get(&page, 1), 0x8000_0000_0000_0000 | 0xff << 12 | 0x3);
        assert_eq!(get(&page, 2), 0xdead_b000);
        assert_eq!(get(&page, 3), 0x10 << 12 | 0x81);
    }

    #[test]
    fn xen_l4_slots_are_zeroed_and_only_in_l4() {
        let mut l4 = vec![0u8; 4096];
        for i in 250..280 {
            put(&mut l4, i, 0x1001 << 12 | 1);
        }
        let mut l3 = l4.clone();
        normalise_page_table(1, PageType::L4TAB_PINNED, &mut l4, m2p).unwrap();
        for i in 250..280 {
            let want = if (256..=271).contains(&i) { 0 } else { 0x1 << 12 | 1 };
            assert_eq!(get(&l4, i), want, "L4 slot {i}");
        }
        normalise_page_table(1, PageType::L3TAB, &mut l3, m2p).unwrap();
        assert_eq!(get(&l3, 260), 0x1 << 12 | 1);
    }

    #[test]
    fn superpages_and_foreign_frames_are_errors() {
        let mut page = vec![0u8; 4096];
        put(&mut page, 7, 0x1002 << 12 | 0x81);
        let e = normalise_page_table(1, PageType::L2TAB, &mut page, m2p).unwrap_err();
        assert_eq!(e, NormaliseError::Superpage { level: 2, index: 7, pte: 0x1002 << 12 | 0x81 });
        let mut page = vec![0u8; 4096];
        put(&mut page, 9, 0x9999 << 12 | 1);
        let e = normalise_page_table(1, PageType::L3TAB, &mut page, m2p).unwrap_err();
        assert_eq!(e, NormaliseError::ForeignFrame { level: 3, index: 9, mfn: 0x9999 });
        assert!(e.to_string().contains("mfn 0x9999"), "{e}");
        assert!(matches!(
            normalise_page_table(1, PageType::NOTAB, &mut page, m2p),
            Err(NormaliseError::NotAPageTable { .. })
        ));
        assert!(matches!(
            normalise_page_table(1, PageType::L1TAB, &mut page[..100], m2p),
            Err(NormaliseError::NotAPageTable { .. })
        ));
    }

    #[test]
    fn vcpu_frames_become_pfns() {
        let mut blob = vec![0u8; VCPU_CONTEXT_64];
        let mut f = VcpuFrames { start_info: 0x1003, gdt_ents: 513, cr3_pfn: 0x1020, ..Default::default() };
        f.gdt_frames[0] = 0x1030;
        f.gdt_frames[1] = 0x1031;
        f.gdt_frames[2] = 0xdead; // unused slot: left alone
        f.write(&mut blob, 8);
        // Xen hands out CR1 as mfn << 12, without the stream's present bit.
        blob[CTRLREG1_64..CTRLREG1_64 + 8].copy_from_slice(&(0x1021u64 << 12).to_le_bytes());
        let mut other = blob.clone();
        normalise_vcpu_basic(0, &mut blob, m2p).unwrap();
        let n = VcpuFrames::read(&blob, 8).unwrap();
        assert_eq!((n.start_info, n.cr3_pfn, n.cr1_pfn), (0x3, 0x20, Some(0x21)));
        assert_eq!(&blob[CTRLREG1_64..CTRLREG1_64 + 8], &(0x21u64 << 12 | 1).to_le_bytes());
        assert_eq!(&n.gdt_frames[..3], &[0x30, 0x31, 0xdead]);
        // Only vcpu 0's rdx is the start_info frame.
        normalise_vcpu_basic(1, &mut other, m2p).unwrap();
        assert_eq!(VcpuFrames::read(&other, 8).unwrap().start_info, 0x1003);
        // No user page table (a vcpu that never ran user code): CR1 stays 0.
        let mut kernel_only = vec![0u8; VCPU_CONTEXT_64];
        VcpuFrames { start_info: 0x1003, cr3_pfn: 0x1020, ..Default::default() }.write(&mut kernel_only, 8);
        normalise_vcpu_basic(0, &mut kernel_only, m2p).unwrap();
        assert_eq!(VcpuFrames::read(&kernel_only, 8).unwrap().cr1_pfn, None);
        // A frame outside the guest is named.
        let mut bad = vec![0u8; VCPU_CONTEXT_64];
        VcpuFrames { start_info: 0x1003, cr3_pfn: 0x7777, ..Default::default() }.write(&mut bad, 8);
        let e = normalise_vcpu_basic(0, &mut bad, m2p).unwrap_err();
        assert_eq!(e, NormaliseError::VcpuFrame { vcpu: 0, field: "cr3", mfn: 0x7777 });
        assert!(matches!(normalise_vcpu_basic(0, &mut [0u8; 10], m2p), Err(NormaliseError::VcpuSize { len: 10, .. })));
    }
}
