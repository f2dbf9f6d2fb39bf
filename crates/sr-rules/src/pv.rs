//! x86 PV (domain type 1): the frames the records name, the vcpu blobs, and the page
//! contents Xen's restorer reads (page tables and the start_info page).
//!
//! Sources: `tools/libs/guest/xg_sr_restore_x86_pv.c` (`handle_x86_pv_vcpu_blob`,
//! `x86_pv_localise_page`, `process_start_info`, `process_vcpu_basic`, `update_guest_p2m`,
//! `update_vcpu_context`) and validation rows 20, 24 and 42-46 of the reference.

use sr_format::body::{MAX_GDT_ENTS, VcpuFrames, vcpu_context_size};
use sr_format::state::{DomainState, PvInfoState};
use sr_format::{PageType, RecordType};

use crate::violation::{Frame, FrameProblem, Violation};
use crate::{PageReader, Skipped};

/// Largest extended vcpu context Xen accepts.
pub const VCPU_EXTENDED_MAX: usize = 128;
/// Smallest xsave blob Xen accepts.
pub const VCPU_XSAVE_MIN: usize = 16;
/// Size of an x86 PV page (and of a page table).
pub const PAGE_SIZE: usize = 4096;
/// The present bit of a page-table entry.
pub const PTE_PRESENT: u64 = 1;
/// The frame field of a page-table entry (bits 12-51, Xen's `PTE_FRAME_MASK`).
pub const PTE_FRAME_MASK: u64 = 0x000F_FFFF_FFFF_F000;

/// Byte offsets of `store_mfn` and `console.domU.mfn` in a 64-bit guest's `start_info`
/// (`xen/include/public/xen.h`: magic\[32\], nr_pages, shared_info, flags, store_mfn,
/// store_evtchn, console).
const START_INFO_64: (usize, usize) = (56, 72);
/// The same in a 32-bit guest's (4-byte `unsigned long` and `xen_pfn_t`).
const START_INFO_32: (usize, usize) = (44, 52);

/// Checks one vcpu blob's size against the guest width (rows 42-43). An empty blob is
/// always accepted (Xen skips it).
///
/// # Errors
/// [`Violation::VcpuBlob`].
pub fn check_vcpu_blob(vcpu: u32, record: RecordType, len: usize, guest_width: u8) -> Result<(), Violation> {
    let ok = len == 0
        || match record {
            RecordType::X86_PV_VCPU_BASIC => Some(len) == vcpu_context_size(guest_width),
            RecordType::X86_PV_VCPU_EXTENDED => len <= VCPU_EXTENDED_MAX,
            RecordType::X86_PV_VCPU_XSAVE => len >= VCPU_XSAVE_MIN,
            _ => len.is_multiple_of(16),
        };
    if ok { Ok(()) } else { Err(Violation::VcpuBlob { vcpu, record, len, guest_width }) }
}

/// Checks the present entries of a page-table page (types L1TAB..L4TAB, pinned or not;
/// anything else passes): each must name a pfn `<= max_pfn`, the pfns the restore can map.
/// A pfn not sent (yet) is fine: Xen populates it early.
///
/// # Errors
/// [`Violation::PageTableEntry`] for the first bad entry.
pub fn check_page_table(pfn: u64, page_type: PageType, page: &[u8], max_pfn: u64) -> Result<(), Violation> {
    if !page_type.is_page_table() {
        return Ok(());
    }
    // One pass with no early exit in the common case: the largest frame of a present entry.
    let worst = page
        .chunks_exact(8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
        .map(|pte| if pte & PTE_PRESENT != 0 { (pte & PTE_FRAME_MASK) >> 12 } else { 0 })
        .max()
        .unwrap_or(0);
    if worst <= max_pfn {
        return Ok(());
    }
    let (slot, pte) = page
        .chunks_exact(8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
        .enumerate()
        .find(|(_, pte)| pte & PTE_PRESENT != 0 && (pte & PTE_FRAME_MASK) >> 12 > max_pfn)
        .expect("found above");
    Err(Violation::PageTableEntry { pfn, page_type, slot, pte, frame: (pte & PTE_FRAME_MASK) >> 12, max_pfn })
}

/// The xenstore and console pfns a start_info page holds (`store_mfn`, `console.domU.mfn`;
/// the guest turned them into pfns before suspending), or `None` for a width that is not 4
/// or 8 or a page too short.
pub fn start_info_frames(page: &[u8], guest_width: u8) -> Option<(u64, u64)> {
    let ((store, console), word) = match guest_width {
        8 => (START_INFO_64, 8),
        4 => (START_INFO_32, 4),
        _ => return None,
    };
    let read = |at: usize| -> Option<u64> {
        let b = page.get(at..at + word)?;
        Some(if word == 8 {
            u64::from_le_bytes(b.try_into().ok()?)
        } else {
            u64::from(u32::from_le_bytes(b.try_into().ok()?))
        })
    };
    Some((read(store)?, read(console)?))
}

/// What must hold at END for an x86 PV domain (rows 44-46 and `process_start_info`):
/// X86_PV_INFO, X86_PV_P2M_FRAMES and vcpu 0's X86_PV_VCPU_BASIC were sent; every p2m
/// frame is a populated NOTAB pfn `<= max_pfn`; every vcpu's BASIC context names usable
/// frames: vcpu 0's start_info and the first `ceil(gdt_ents / 512)` GDT frames populated
/// NOTAB pfns `<= max_pfn`, `gdt_ents <= 7168`, CR3 (and a 64-bit context's CR1 when bit 0
/// is set) a populated pfn `<= max_pfn` of the top-level table type, pinned or not; and the
/// start_info page's xenstore and console frames populated pfns `<= max_pfn` (checked when
/// `pages` can read the page, else reported in [`Skipped`]).
///
/// # Errors
/// The first rule broken.
pub fn check_end(
    state: &DomainState,
    populated: &dyn Fn(u64) -> bool,
    pages: Option<PageReader<'_>>,
) -> Result<Skipped, Violation> {
    let Some(info) = state.pv_info else {
        return Err(Violation::Missing { what: "X86_PV_INFO record" });
    };
    let Some(p2m) = &state.p2m else {
        return Err(Violation::Missing { what: "X86_PV_P2M_FRAMES record" });
    };
    if state.vcpus.get(&0).and_then(|v| v.basic.as_ref()).is_none() {
        return Err(Violation::Missing { what: "X86_PV_VCPU_BASIC for vcpu 0" });
    }
    let max_pfn = u64::from(p2m.end_pfn);
    for (frame, &pfn) in p2m.frames.iter().enumerate() {
        frame_usable(state, populated, pfn, max_pfn, None).map_err(|problem| Violation::P2mFrame {
            frame,
            pfn,
            problem,
        })?;
    }
    let mut skipped = Skipped::default();
    for (&vcpu, v) in &state.vcpus {
        let Some(blob) = &v.basic else { continue };
        let start_info = check_vcpu_frames(state, info, max_pfn, populated, vcpu, blob)?;
        if let Some(pfn) = start_info {
            skipped.start_info = !check_start_info(info, max_pfn, populated, pfn, pages)?;
        }
    }
    Ok(skipped)
}

/// Whether `pfn` is `<= max_pfn`, populated and of the wanted type: NOTAB when `top_level`
/// is `None`, else the top-level table of that many levels (pinned or not).
fn frame_usable(
    state: &DomainState,
    populated: &dyn Fn(u64) -> bool,
    pfn: u64,
    max_pfn: u64,
    top_level: Option<u8>,
) -> Result<(), FrameProblem> {
    if pfn > max_pfn {
        return Err(FrameProblem::BeyondMaxPfn { max_pfn });
    }
    let found = state.page_type(pfn);
    match top_level {
        Some(levels) if found.nibble() & 7 != levels => {
            let want = if levels == 4 { "the top-level L4TAB" } else { "the top-level L3TAB" };
            return Err(FrameProblem::WrongType { found, want });
        }
        None if found != PageType::NOTAB => return Err(FrameProblem::WrongType { found, want: "NOTAB" }),
        _ => {}
    }
    if !populated(pfn) {
        return Err(FrameProblem::Unpopulated);
    }
    Ok(())
}

/// Row 45 for one vcpu's BASIC context; returns vcpu 0's start_info pfn.
fn check_vcpu_frames(
    state: &DomainState,
    info: PvInfoState,
    max_pfn: u64,
    populated: &dyn Fn(u64) -> bool,
    vcpu: u32,
    blob: &[u8],
) -> Result<Option<u64>, Violation> {
    let Some(f) = VcpuFrames::read(blob, info.guest_width) else {
        return Err(Violation::VcpuBlob {
            vcpu,
            record: RecordType::X86_PV_VCPU_BASIC,
            len: blob.len(),
            guest_width: info.guest_width,
        });
    };
    let check = |frame: Frame, pfn: u64, top_level: Option<u8>| {
        frame_usable(state, populated, pfn, max_pfn, top_level).map_err(|problem| Violation::VcpuFrame {
            vcpu,
            frame,
            pfn,
            problem,
        })
    };
    if vcpu == 0 {
        check(Frame::StartInfo, f.start_info, None)?;
    }
    if f.gdt_ents > MAX_GDT_ENTS {
        return Err(Violation::GdtEnts { vcpu, ents: f.gdt_ents });
    }
    for (i, &pfn) in f.used_gdt_frames().iter().enumerate() {
        check(Frame::Gdt(i), pfn, None)?;
    }
    check(Frame::Cr3, f.cr3_pfn, Some(info.pt_levels))?;
    if let Some(pfn) = f.cr1_pfn {
        check(Frame::Cr1, pfn, Some(info.pt_levels))?;
    }
    Ok((vcpu == 0).then_some(f.start_info))
}

/// The start_info page's xenstore and console frames; `Ok(false)` when the page could not
/// be read.
fn check_start_info(
    info: PvInfoState,
    max_pfn: u64,
    populated: &dyn Fn(u64) -> bool,
    start_info: u64,
    pages: Option<PageReader<'_>>,
) -> Result<bool, Violation> {
    let mut page = [0u8; PAGE_SIZE];
    if !pages.is_some_and(|read| read(start_info, &mut page)) {
        return Ok(false);
    }
    let (store, console) = start_info_frames(&page, info.guest_width).unwrap_or((0, 0));
    for (field, pfn) in [("xenstore frame (store_mfn)", store), ("console frame (console.domU.mfn)", console)] {
        let problem = if pfn > max_pfn {
            FrameProblem::BeyondMaxPfn { max_pfn }
        } else if !populated(pfn) {
            FrameProblem::Unpopulated
        } else {
            continue;
        };
        return Err(Violation::StartInfoFrame { start_info, field, pfn, problem });
    }
    Ok(true)
}

#[cfg(test)]
mod tests;
