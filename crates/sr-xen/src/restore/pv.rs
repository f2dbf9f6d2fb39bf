//! x86 PV (64-bit): what `tools/libs/guest/xg_sr_restore_x86_pv.c` of Xen 4.17 does.
//!
//! * A **local p2m** (pfn -> the mfn Xen gave), grown by X86_PV_P2M_FRAMES (`expand_p2m`).
//! * **PAGE_DATA**: new pfns are populated one frame each (order 0, `populate_pfns`); each
//!   page table's present entries are **localised** pfn -> mfn, frames a table names but the
//!   stream has not populated yet being populated first, one call per table
//!   (`x86_pv_localise_page`); every mfn must be in the pseudo-physical map
//!   (`mfn_in_pseudophysmap`: m2p and p2m agree), or the restore fails naming the frames as
//!   `dump_bad_pseudophysmap_entry` does. The pages are then written through one writable
//!   mapping, unmapped before the next record (`process_page_data`): Xen refuses to make a
//!   frame a page table while a writable mapping of it exists.
//! * **X86_TSC_INFO** and **SHARED_INFO** when they arrive (`handle_shared_info`: the vcpu_info
//!   array and `arch` copied, the frame-list-list zeroed, pending events cleared, all masked).
//! * **END** (`x86_pv_stream_complete`), in this order: every vcpu's context (vcpu 0's
//!   start_info frame and, in start_info, the xenstore and console frames and event channels,
//!   `nr_pages`, `shared_info`, `flags`; the GDT frames, CR3 and CR1 as mfns; then the extended
//!   state, XSAVE and MSRs), the page tables with the pin bit pinned (batches of 1024), the
//!   guest's own p2m overwritten with the local one, grant entries 0 and 1 seeded.
//!
//! 32-bit PV guests (width 4, PAE page tables and the compat m2p) are refused in words: this
//! restorer has not been run on one.
//!
//! The frame logic (localisation, the context and start_info fix-ups, shared info) is pure
//! functions over bytes and a [`Frames`] view, unit-tested against pages and contexts of a
//! real `xl save` file; the rest calls Xen.

use std::collections::BTreeMap;
use std::mem::offset_of;
use std::sync::Arc;

use sr_format::body::{VCPU_CONTEXT_64, VcpuFrames};
use sr_format::state::DomainState;
use sr_format::{PageType, Record, RecordType};
use sr_restore::PageBatch;
use xen_sys as sys;

use super::{RestoreResults, RestoreShell, XenRestoreError, XenRestoreStats, at};
use crate::error::XenError;
use crate::ffi::{DomainInfo, ForeignMemory, M2p, PAGE_SIZE, XenCtrl};
use crate::ffi_restore::{INVALID_MFN, Pin};

/// Present bit of a page-table entry.
const PTE_PRESENT: u64 = 1;
/// The frame field of an entry: bits 12..=51 (`PTE_FRAME_MASK`, `xg_sr_common_x86_pv.h`).
const PTE_FRAME_MASK: u64 = 0x000f_ffff_ffff_f000;
/// Entries per page table.
const ENTRIES: usize = 512;
/// Pins per `xc_mmuext_op` (`MAX_PIN_BATCH`).
const PIN_BATCH: usize = 1024;
/// `VGCF_online`: the vcpu is up (`xen/include/public/arch-x86/xen.h`).
const VGCF_ONLINE: u64 = sys::VGCF_online as u64;
/// Byte offsets in a 64-bit `vcpu_guest_context`.
const CTX_FLAGS: usize = offset_of!(sys::vcpu_guest_context_x86_64, flags);
const CTX_CTRLREG: usize = offset_of!(sys::vcpu_guest_context_x86_64, ctrlreg);

/// Why a frame the stream names does not fit the new domain: the messages of Xen's restorer,
/// with the frames `dump_bad_pseudophysmap_entry` logs.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PvFrameError {
    /// A pfn beyond the p2m.
    #[error("{what} (pfn {pfn:#x}) out of range: max_pfn {max_pfn:#x}")]
    Range {
        /// What names the frame.
        what: String,
        /// The pfn.
        pfn: u64,
        /// The p2m's last pfn.
        max_pfn: u64,
    },
    /// A frame of the wrong page type.
    #[error("{what} (pfn {pfn:#x}) has bad type {found}, expected {expected}")]
    Type {
        /// What names the frame.
        what: String,
        /// The pfn.
        pfn: u64,
        /// Its type in the stream.
        found: PageType,
        /// The type required.
        expected: &'static str,
    },
    /// An mfn outside the pseudo-physical map: not populated, or m2p and p2m disagree.
    #[error("{what} (pfn {pfn:#x}) has bad mfn {mfn:#x}: max_mfn {max_mfn:#x}, m2p[mfn] = {}, max_pfn {max_pfn:#x}, p2m[m2p[mfn]] = {}",
        opt(*m2p), opt(*p2m))]
    BadMfn {
        /// What names the frame.
        what: String,
        /// The pfn.
        pfn: u64,
        /// Its mfn in the local p2m (`0xffffffffffffffff`: never populated).
        mfn: u64,
        /// The host's highest mfn.
        max_mfn: u64,
        /// The m2p entry of the mfn, if the mfn is in the m2p.
        m2p: Option<u64>,
        /// The p2m entry of that, if in range.
        p2m: Option<u64>,
        /// The p2m's last pfn.
        max_pfn: u64,
    },
    /// A vcpu context of the wrong size.
    #[error("vcpu {vcpu}: X86_PV_VCPU_BASIC of {len} bytes (a 64-bit vcpu_guest_context is {VCPU_CONTEXT_64})")]
    ContextSize {
        /// The vcpu.
        vcpu: u32,
        /// The blob's length.
        len: usize,
    },
}

fn opt(v: Option<u64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:#x}"))
}

/// The local p2m: pfn -> mfn as populate answered, for pfns `0..len`. Stored as `mfn + 1`, 0
/// for a pfn not populated, so that a large, mostly empty p2m costs only the pages it touches.
#[derive(Clone, Debug, Default)]
pub(crate) struct P2m {
    slots: Vec<u64>,
}

impl P2m {
    /// A p2m of `len` pfns, none populated.
    #[cfg(test)]
    pub(crate) fn new(len: usize) -> Self {
        Self { slots: vec![0; len] }
    }

    /// Grows to `len` pfns (never shrinks).
    pub(crate) fn grow(&mut self, len: usize) {
        if len > self.slots.len() {
            self.slots.resize(len, 0);
        }
    }

    /// The pfns covered.
    pub(crate) fn len(&self) -> u64 {
        self.slots.len() as u64
    }

    /// The mfn of `pfn`, if populated.
    pub(crate) fn get(&self, pfn: u64) -> Option<u64> {
        let slot = *self.slots.get(usize::try_from(pfn).ok()?)?;
        slot.checked_sub(1)
    }

    /// Records `pfn -> mfn`; `false` if `pfn` is beyond the p2m.
    pub(crate) fn set(&mut self, pfn: u64, mfn: u64) -> bool {
        match usize::try_from(pfn).ok().and_then(|p| self.slots.get_mut(p)) {
            Some(slot) => {
                *slot = mfn.wrapping_add(1);
                true
            }
            None => false,
        }
    }

    /// The guest's p2m as it must read after the restore: one little-endian `u64` per pfn
    /// `0..=max_pfn`, the mfn or all ones (`INVALID_MFN`) for a hole (`update_guest_p2m`).
    pub(crate) fn guest_image(&self, max_pfn: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity((max_pfn as usize + 1) * 8);
        for pfn in 0..=max_pfn {
            out.extend_from_slice(&self.get(pfn).unwrap_or(INVALID_MFN).to_le_bytes());
        }
        out
    }
}

/// The host's machine-to-phys table as a lookup (the mapped m2p, or a model of it in tests).
pub(crate) trait M2pLookup {
    /// The pfn `mfn` belongs to, `None` beyond the table.
    fn pfn(&self, mfn: u64) -> Option<u64>;
}

impl M2pLookup for M2p {
    fn pfn(&self, mfn: u64) -> Option<u64> {
        self.get(mfn)
    }
}

impl<F: Fn(u64) -> Option<u64>> M2pLookup for F {
    fn pfn(&self, mfn: u64) -> Option<u64> {
        self(mfn)
    }
}

/// The pseudo-physical view a frame conversion checks against: the local p2m, its last pfn,
/// and the host's m2p (`mfn_in_pseudophysmap`, `xg_sr_common_x86_pv.c`).
pub(crate) struct Frames<'a> {
    pub p2m: &'a P2m,
    pub max_pfn: u64,
    pub max_mfn: u64,
    pub m2p: &'a dyn M2pLookup,
}

impl Frames<'_> {
    /// Whether `mfn` is one of the guest's own: `mfn <= max_mfn`, `m2p[mfn] <= max_pfn` and
    /// `p2m[m2p[mfn]] == mfn`.
    pub(crate) fn in_pseudophysmap(&self, mfn: u64) -> bool {
        mfn <= self.max_mfn
            && self.m2p.pfn(mfn).is_some_and(|pfn| pfn <= self.max_pfn && self.p2m.get(pfn) == Some(mfn))
    }

    /// The mfn of `pfn` for `what`: in range and in the pseudo-physical map.
    pub(crate) fn mfn(&self, what: &dyn Fn() -> String, pfn: u64) -> Result<u64, PvFrameError> {
        if pfn > self.max_pfn {
            return Err(PvFrameError::Range { what: what(), pfn, max_pfn: self.max_pfn });
        }
        let mfn = self.p2m.get(pfn).unwrap_or(INVALID_MFN);
        if !self.in_pseudophysmap(mfn) {
            return Err(self.bad(what(), pfn, mfn));
        }
        Ok(mfn)
    }

    /// The mfn of `pfn`, which must also be of a type `ok` accepts (`expected` in words).
    pub(crate) fn typed_mfn(
        &self,
        what: &dyn Fn() -> String,
        pfn: u64,
        page_type: PageType,
        ok: fn(PageType) -> bool,
        expected: &'static str,
    ) -> Result<u64, PvFrameError> {
        if pfn > self.max_pfn {
            return Err(PvFrameError::Range { what: what(), pfn, max_pfn: self.max_pfn });
        }
        if !ok(page_type) {
            return Err(PvFrameError::Type { what: what(), pfn, found: page_type, expected });
        }
        self.mfn(what, pfn)
    }

    /// libxc's `dump_bad_pseudophysmap_entry`, as an error.
    fn bad(&self, what: String, pfn: u64, mfn: u64) -> PvFrameError {
        let m2p = (mfn <= self.max_mfn).then(|| self.m2p.pfn(mfn)).flatten();
        let p2m = m2p.filter(|&p| p <= self.max_pfn).and_then(|p| self.p2m.get(p));
        PvFrameError::BadMfn { what, pfn, mfn, max_mfn: self.max_mfn, m2p, p2m, max_pfn: self.max_pfn }
    }
}

fn word(page: &[u8], i: usize) -> u64 {
    u64::from_le_bytes(page[i * 8..i * 8 + 8].try_into().expect("8 bytes"))
}

fn put_word(page: &mut [u8], i: usize, v: u64) {
    page[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
}

/// The pfns a page table names in present entries that are not populated yet, in entry order,
/// each once (populated before the table is localised, as `x86_pv_localise_page` does).
pub(crate) fn unpopulated_frames(page: &[u8], p2m: &P2m) -> Vec<u64> {
    let mut out = Vec::new();
    for i in 0..ENTRIES {
        let pte = word(page, i);
        if pte & PTE_PRESENT != 0 {
            let pfn = (pte & PTE_FRAME_MASK) >> 12;
            if p2m.get(pfn).is_none() && !out.contains(&pfn) {
                out.push(pfn);
            }
        }
    }
    out
}

/// Localises one page table (`page_type` L1TAB..L4TAB, pinned or not) of pfn `pfn` in place:
/// every present entry's frame becomes its mfn, all other bits kept (flags, NX, software bits,
/// PSE); entries that are not present are left as they are (they may hold guest data). Xen's
/// own L4 slots are zero in the stream and Xen fills them when it validates the table.
pub(crate) fn localise(
    pfn: u64,
    page_type: PageType,
    page: &mut [u8],
    frames: &Frames<'_>,
) -> Result<(), PvFrameError> {
    let level = page_type.nibble() & 7;
    for i in 0..ENTRIES {
        let pte = word(page, i);
        if pte & PTE_PRESENT == 0 {
            continue;
        }
        let target = (pte & PTE_FRAME_MASK) >> 12;
        let what = || format!("L{level} table at pfn {pfn:#x}, entry {i} ({pte:#018x})");
        let mfn = frames.mfn(&what, target)?;
        put_word(page, i, (pte & !PTE_FRAME_MASK) | (mfn << 12));
    }
    Ok(())
}

fn is_notab(t: PageType) -> bool {
    t == PageType::NOTAB
}

fn is_l4(t: PageType) -> bool {
    t.is_page_table() && t.nibble() & 7 == 4
}

/// Rewrites vcpu `vcpu`'s X86_PV_VCPU_BASIC blob (a 64-bit `vcpu_guest_context` in stream
/// form) for the new domain, as `process_vcpu_basic`: `VGCF_online` set; the GDT frames in use
/// (NOTAB pages), CR3 (an L4 table) and CR1 when its bit 0 is set (an L4 table, stored as
/// `mfn << 12`) become mfns; for vcpu 0, rdx (the start_info frame, a NOTAB page) too, whose
/// mfn is returned for the start_info fix-up.
pub(crate) fn fix_vcpu_basic(
    vcpu: u32,
    blob: &mut [u8],
    page_type: &dyn Fn(u64) -> PageType,
    frames: &Frames<'_>,
) -> Result<Option<u64>, PvFrameError> {
    let Some(mut f) = VcpuFrames::read(blob, 8) else {
        return Err(PvFrameError::ContextSize { vcpu, len: blob.len() });
    };
    let mut start_info = None;
    if vcpu == 0 {
        let what = || "Start Info (vcpu 0 rdx)".to_string();
        let mfn = frames.typed_mfn(&what, f.start_info, page_type(f.start_info), is_notab, "NOTAB")?;
        f.start_info = mfn;
        start_info = Some(mfn);
    }
    let flags = u64::from_le_bytes(blob[CTX_FLAGS..CTX_FLAGS + 8].try_into().expect("8 bytes"));
    blob[CTX_FLAGS..CTX_FLAGS + 8].copy_from_slice(&(flags | VGCF_ONLINE).to_le_bytes());
    // gdt_ents <= 7168 is an END rule of the stream (sr_rules), checked before this runs.
    for i in 0..f.gdt_frame_count() {
        let pfn = f.gdt_frames[i];
        let what = || format!("vcpu {vcpu} GDT frame {i}");
        f.gdt_frames[i] = frames.typed_mfn(&what, pfn, page_type(pfn), is_notab, "NOTAB")?;
    }
    let what = || format!("vcpu {vcpu} cr3");
    f.cr3_pfn = frames.typed_mfn(&what, f.cr3_pfn, page_type(f.cr3_pfn), is_l4, "an L4 table")?;
    let cr1_raw = get64(blob, CTX_CTRLREG + 8);
    let cr1 = match f.cr1_pfn {
        Some(pfn) => {
            let what = || format!("vcpu {vcpu} cr1");
            Some(frames.typed_mfn(&what, pfn, page_type(pfn), is_l4, "an L4 table")?)
        }
        None => None,
    };
    f.write(blob, 8);
    // Xen takes CR1 as `mfn << 12`, without the stream's present bit; with bit 0 clear the
    // register is left exactly as the stream had it.
    put64(blob, CTX_CTRLREG + 8, cr1.map_or(cr1_raw, |mfn| mfn << 12));
    Ok(start_info)
}

/// Byte offsets in a 64-bit `start_info` (`xen/include/public/xen.h`).
const SI_NR_PAGES: usize = offset_of!(sys::start_info, nr_pages);
const SI_SHARED_INFO: usize = offset_of!(sys::start_info, shared_info);
const SI_FLAGS: usize = offset_of!(sys::start_info, flags);
const SI_STORE_MFN: usize = offset_of!(sys::start_info, store_mfn);
const SI_STORE_EVTCHN: usize = offset_of!(sys::start_info, store_evtchn);
const SI_CONSOLE_MFN: usize =
    offset_of!(sys::start_info, console) + offset_of!(sys::start_info__bindgen_ty_1__bindgen_ty_1, mfn);
const SI_CONSOLE_EVTCHN: usize =
    offset_of!(sys::start_info, console) + offset_of!(sys::start_info__bindgen_ty_1__bindgen_ty_1, evtchn);

fn get64(page: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(page[at..at + 8].try_into().expect("8 bytes"))
}

fn put64(page: &mut [u8], at: usize, v: u64) {
    page[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

fn put32(page: &mut [u8], at: usize, v: u32) {
    page[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// Rewrites a 64-bit guest's start_info page for the new domain, as `process_start_info`: the
/// xenstore and console frames become mfns (returned, for the toolstack) with the new event
/// channels, `nr_pages` is `max_pfn + 1`, `shared_info` the new shared info frame's machine
/// address, `flags` 0.
pub(crate) fn fix_start_info(
    page: &mut [u8],
    frames: &Frames<'_>,
    shell: &RestoreShell,
    shared_info_frame: u64,
) -> Result<RestoreResults, PvFrameError> {
    let store_pfn = get64(page, SI_STORE_MFN);
    let store = frames.mfn(&|| "XenStore frame (start_info store_mfn)".into(), store_pfn)?;
    put64(page, SI_STORE_MFN, store);
    put32(page, SI_STORE_EVTCHN, shell.store_evtchn);
    let console_pfn = get64(page, SI_CONSOLE_MFN);
    let console = frames.mfn(&|| "Console frame (start_info console.domU.mfn)".into(), console_pfn)?;
    put64(page, SI_CONSOLE_MFN, console);
    put32(page, SI_CONSOLE_EVTCHN, shell.console_evtchn);
    put64(page, SI_NR_PAGES, frames.max_pfn + 1);
    put64(page, SI_SHARED_INFO, shared_info_frame << 12);
    put32(page, SI_FLAGS, 0);
    Ok(RestoreResults { store_gfn: store, console_gfn: console })
}

/// Byte offsets in a 64-bit `shared_info` (`xen/include/public/xen.h`).
const SH_VCPU_INFO: usize = offset_of!(sys::shared_info, vcpu_info);
const SH_VCPU_INFO_LEN: usize = size_of::<[sys::vcpu_info; 32]>();
const SH_PENDING_SEL: usize = offset_of!(sys::vcpu_info, evtchn_pending_sel);
const SH_EVTCHN_PENDING: usize = offset_of!(sys::shared_info, evtchn_pending);
const SH_EVTCHN_MASK: usize = offset_of!(sys::shared_info, evtchn_mask);
const SH_EVTCHN_LEN: usize = size_of::<[sys::xen_ulong_t; 64]>();
const SH_ARCH: usize = offset_of!(sys::shared_info, arch);
const SH_ARCH_LEN: usize = size_of::<sys::arch_shared_info>();
const SH_FRAME_LIST_LIST: usize = SH_ARCH + offset_of!(sys::arch_shared_info, pfn_to_mfn_frame_list_list);

/// Merges the saved shared info page into the new domain's, as `handle_shared_info`: the
/// `vcpu_info` array and `arch` come from the stream (time fields stay Xen's), the
/// frame-list-list is zeroed (the guest rebuilds it on resume), every pending event and
/// pending selector is cleared and every event channel masked.
pub(crate) fn fix_shared_info(guest: &mut [u8], saved: &[u8]) {
    guest[SH_VCPU_INFO..SH_VCPU_INFO + SH_VCPU_INFO_LEN]
        .copy_from_slice(&saved[SH_VCPU_INFO..SH_VCPU_INFO + SH_VCPU_INFO_LEN]);
    guest[SH_ARCH..SH_ARCH + SH_ARCH_LEN].copy_from_slice(&saved[SH_ARCH..SH_ARCH + SH_ARCH_LEN]);
    put64(guest, SH_FRAME_LIST_LIST, 0);
    guest[SH_EVTCHN_PENDING..SH_EVTCHN_PENDING + SH_EVTCHN_LEN].fill(0);
    for v in 0..32 {
        put64(guest, SH_VCPU_INFO + v * size_of::<sys::vcpu_info>() + SH_PENDING_SEL, 0);
    }
    guest[SH_EVTCHN_MASK..SH_EVTCHN_MASK + SH_EVTCHN_LEN].fill(0xff);
}

/// The page tables to pin, in pfn order: every pfn whose type carries the pin bit (the level
/// from its type; `pin_pagetables`), with its mfn.
pub(crate) fn pins(page_types: &BTreeMap<u64, PageType>, p2m: &P2m) -> Result<Vec<(u64, Pin)>, PvFrameError> {
    let mut out = Vec::new();
    for (&pfn, &t) in page_types {
        if !t.is_page_table() || t.nibble() & 8 == 0 {
            continue;
        }
        let Some(mfn) = p2m.get(pfn) else {
            return Err(PvFrameError::BadMfn {
                what: format!("pinned {t} table"),
                pfn,
                mfn: INVALID_MFN,
                max_mfn: 0,
                m2p: None,
                p2m: None,
                max_pfn: p2m.len().saturating_sub(1),
            });
        };
        out.push((pfn, Pin { level: t.nibble() & 7, mfn }));
    }
    Ok(out)
}

/// The x86 PV half of a [`super::XenRestore`].
pub(crate) struct PvRestore {
    domid: u32,
    shell: RestoreShell,
    fmem: Arc<ForeignMemory>,
    m2p: M2p,
    max_mfn: u64,
    shared_info_frame: u64,
    max_vcpu_id: u32,
    p2m: P2m,
    /// The p2m's last pfn, once X86_PV_P2M_FRAMES said it.
    max_pfn: Option<u64>,
}

impl std::fmt::Debug for PvRestore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PvRestore")
            .field("domid", &self.domid)
            .field("max_mfn", &self.max_mfn)
            .field("max_pfn", &self.max_pfn)
            .finish_non_exhaustive()
    }
}

impl PvRestore {
    /// Opens the pieces a PV restore needs (`x86_pv_setup`): the domain's width (64-bit), the
    /// host's m2p (read-only) and highest mfn.
    pub(crate) fn new(ctrl: &XenCtrl, shell: &RestoreShell, info: &DomainInfo) -> Result<Self, XenRestoreError> {
        let width = ctrl.guest_width(shell.domid)?;
        if width != 8 {
            return Err(XenRestoreError::Unsupported(format!(
                "domain {} has a guest width of {width} bytes: only 64-bit PV domains are restored",
                shell.domid
            )));
        }
        let max_mfn = ctrl.maximum_ram_page()?;
        let m2p = ctrl.map_m2p(max_mfn)?;
        Ok(Self {
            domid: shell.domid,
            shell: *shell,
            fmem: Arc::new(ForeignMemory::open()?),
            m2p,
            max_mfn,
            shared_info_frame: info.shared_info_frame,
            max_vcpu_id: info.max_vcpu_id,
            p2m: P2m::default(),
            max_pfn: None,
        })
    }

    fn frames(&self) -> Frames<'_> {
        Frames { p2m: &self.p2m, max_pfn: self.max_pfn.unwrap_or(0), max_mfn: self.max_mfn, m2p: &self.m2p }
    }

    pub(crate) fn is_populated(&self, pfn: u64) -> bool {
        self.p2m.get(pfn).is_some()
    }

    /// Populates the pfns of `pfns` not populated yet, one frame each, recording their mfns.
    fn populate(&mut self, ctrl: &XenCtrl, pfns: &[u64], stats: &mut XenRestoreStats) -> Result<(), XenRestoreError> {
        let mut frames: Vec<u64> = pfns.iter().copied().filter(|&p| self.p2m.get(p).is_none()).collect();
        frames.dedup();
        if frames.is_empty() {
            return Ok(());
        }
        let wanted = frames.clone();
        let (first, last) = (wanted[0], wanted[wanted.len() - 1]);
        ctrl.populate_physmap(self.domid, &mut frames)
            .map_err(at(|| format!("populating {} pfns ({first:#x}..{last:#x})", wanted.len())))?;
        for (&pfn, &mfn) in wanted.iter().zip(&frames) {
            if mfn == INVALID_MFN || !self.p2m.set(pfn, mfn) {
                return Err(XenRestoreError::At {
                    what: format!("populating pfn {pfn:#x}"),
                    source: XenError::Layout { what: "mfn from XENMEM_populate_physmap", value: mfn },
                });
            }
        }
        stats.populated += wanted.len() as u64;
        Ok(())
    }

    /// One PAGE_DATA record: populate, localise the page tables (into copies), then write
    /// every page through one writable mapping (or, with `compare`, compare with it).
    pub(crate) fn apply_pages(
        &mut self,
        ctrl: &XenCtrl,
        batch: &PageBatch<'_>,
        compare: Option<&mut dyn FnMut(u64)>,
        stats: &mut XenRestoreStats,
    ) -> Result<(), XenRestoreError> {
        if self.max_pfn.is_none() {
            return Err(XenRestoreError::Unsupported("PAGE_DATA before X86_PV_P2M_FRAMES".into()));
        }
        self.populate(ctrl, batch.populate, stats)?;
        // Page tables: populate what they name, then localise a copy of each.
        let mut localised: Vec<(usize, Vec<u8>)> = Vec::new();
        for (i, (&pfn, &t)) in batch.pfns.iter().zip(batch.types).enumerate() {
            if !t.is_page_table() {
                continue;
            }
            let mut page = batch.data[i * PAGE_SIZE..(i + 1) * PAGE_SIZE].to_vec();
            let missing = unpopulated_frames(&page, &self.p2m);
            self.populate(ctrl, &missing, stats)?;
            localise(pfn, t, &mut page, &self.frames())?;
            localised.push((i, page));
            stats.page_tables += 1;
        }
        let mut mfns = Vec::with_capacity(batch.pfns.len());
        for &pfn in batch.pfns {
            mfns.push(self.p2m.get(pfn).ok_or_else(|| {
                XenRestoreError::Frame(self.frames().bad(
                    format!("page of PAGE_DATA record {}", batch.index),
                    pfn,
                    INVALID_MFN,
                ))
            })?);
        }
        let map = self
            .fmem
            .map_rw(self.domid, &mfns)
            .map_err(at(|| format!("mapping {} frames of PAGE_DATA record {} writable", mfns.len(), batch.index)))?;
        let mut next_table = localised.iter().peekable();
        let mut scratch = vec![0u8; PAGE_SIZE];
        let mut compare = compare;
        for (i, (&pfn, &t)) in batch.pfns.iter().zip(batch.types).enumerate() {
            let body = match next_table.peek() {
                Some((j, page)) if *j == i => {
                    next_table.next();
                    page.as_slice()
                }
                _ => &batch.data[i * PAGE_SIZE..(i + 1) * PAGE_SIZE],
            };
            map.put_page(i, pfn, body, &mut scratch, &mut compare).map_err(|errno| XenRestoreError::At {
                what: format!("mapping pfn {pfn:#x} (mfn {:#x}, type {t})", mfns[i]),
                source: XenError::Call { call: "xenforeignmemory_map", errno },
            })?;
        }
        if compare.is_none() {
            stats.pages_written += batch.pfns.len() as u64;
        }
        Ok(())
    }

    /// Reads restored pages back (for the END rule on the start_info page).
    pub(crate) fn read_pages(&self, pfns: &[u64], out: &mut [u8]) -> Result<(), XenRestoreError> {
        out.fill(0);
        let (mut idx, mut mfns) = (Vec::new(), Vec::new());
        for (i, &pfn) in pfns.iter().enumerate() {
            if let Some(mfn) = self.p2m.get(pfn) {
                idx.push(i);
                mfns.push(mfn);
            }
        }
        let map = self.fmem.map_read(self.domid, &mfns)?;
        for (k, &i) in idx.iter().enumerate() {
            if !map.copy_frame(k, &mut out[i * PAGE_SIZE..(i + 1) * PAGE_SIZE]) {
                return Err(XenError::Frame { what: "restored page", frame: mfns[k], errno: map.error(k) }.into());
            }
        }
        Ok(())
    }

    /// A record of state: the 64-bit check at X86_PV_INFO, the p2m's growth, TSC info and
    /// shared info applied at once, vcpu ids within the domain.
    pub(crate) fn state_record(
        &mut self,
        ctrl: &XenCtrl,
        rec: &Record<'_>,
        state: &DomainState,
    ) -> Result<(), XenRestoreError> {
        match rec.rtype {
            RecordType::X86_PV_INFO => {
                let info = state.pv_info.expect("the handler recorded X86_PV_INFO");
                if info.guest_width != 8 {
                    return Err(XenRestoreError::Unsupported(format!(
                        "the stream is a {}-bit PV guest: 32-bit PV guests (address size, PAE page tables, the compat m2p) \
                         are not restored by xsr",
                        u32::from(info.guest_width) * 8
                    )));
                }
            }
            RecordType::X86_PV_P2M_FRAMES => {
                let end = u64::from(state.p2m.as_ref().expect("the handler recorded the p2m").end_pfn);
                if self.max_pfn.is_none_or(|m| end > m) {
                    let len =
                        usize::try_from(end + 1).map_err(|_| XenError::Layout { what: "p2m size", value: end + 1 })?;
                    self.p2m.grow(len);
                    self.max_pfn = Some(end);
                }
            }
            RecordType::X86_TSC_INFO => {
                let t = state.tsc.expect("the handler recorded X86_TSC_INFO");
                ctrl.set_tsc_info(self.domid, t.mode, t.nsec, t.khz, t.incarnation)
                    .map_err(at(|| "applying X86_TSC_INFO"))?;
            }
            RecordType::SHARED_INFO => {
                let saved = state.shared_info.as_deref().expect("the handler recorded SHARED_INFO");
                let map = self
                    .fmem
                    .map_rw(self.domid, &[self.shared_info_frame])
                    .map_err(at(|| format!("mapping the shared info frame {:#x}", self.shared_info_frame)))?;
                let mut page = vec![0u8; PAGE_SIZE];
                if !map.read(0, &mut page) {
                    return Err(XenError::Frame {
                        what: "shared info",
                        frame: self.shared_info_frame,
                        errno: map.error(0),
                    }
                    .into());
                }
                fix_shared_info(&mut page, saved);
                map.write(0, &page);
            }
            RecordType::X86_PV_VCPU_BASIC
            | RecordType::X86_PV_VCPU_EXTENDED
            | RecordType::X86_PV_VCPU_XSAVE
            | RecordType::X86_PV_VCPU_MSRS => {
                let id = u32::from_le_bytes(rec.body[..4].try_into().expect("the handler checked the vcpu header"));
                if id > self.max_vcpu_id {
                    return Err(XenRestoreError::Unsupported(format!(
                        "{} for vcpu {id}, but domain {} has vcpus 0..={} (give it more vcpus)",
                        rec.rtype, self.domid, self.max_vcpu_id
                    )));
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// END: vcpus, pins, the guest's p2m, grants (`x86_pv_stream_complete`).
    pub(crate) fn end(
        &mut self,
        ctrl: &XenCtrl,
        state: &DomainState,
        stats: &mut XenRestoreStats,
    ) -> Result<RestoreResults, XenRestoreError> {
        let max_pfn =
            self.max_pfn.ok_or_else(|| XenRestoreError::Unsupported("END before X86_PV_P2M_FRAMES".into()))?;
        let mut results = None;
        // 1. vcpu state, vcpu 0 first (`update_vcpu_context`).
        for (&id, v) in &state.vcpus {
            if let Some(basic) = &v.basic {
                let mut blob = basic.clone();
                let si = fix_vcpu_basic(id, &mut blob, &|pfn| state.page_type(pfn), &self.frames())?;
                if let Some(mfn) = si {
                    results = Some(self.fix_start_info(mfn)?);
                }
                let frames = VcpuFrames::read(&blob, 8).expect("checked size");
                ctrl.set_vcpu_context(self.domid, id, &blob).map_err(at(|| {
                    format!(
                        "setting vcpu {id}'s context (cr3 mfn {:#x}, {} GDT frames{})",
                        frames.cr3_pfn,
                        frames.gdt_frame_count(),
                        if id == 0 { format!(", start_info mfn {:#x}", frames.start_info) } else { String::new() }
                    )
                }))?;
                stats.vcpus += 1;
            } else if id == 0 {
                return Err(XenRestoreError::Unsupported("the sender did not send vcpu 0's basic state".into()));
            }
            if let Some(ext) = &v.extended {
                ctrl.set_ext_vcpu_context(self.domid, ext)
                    .map_err(at(|| format!("setting vcpu {id}'s extended context")))?;
            }
            if let Some(xsave) = &v.xsave {
                ctrl.set_vcpu_ext_state(self.domid, id, xsave)
                    .map_err(at(|| format!("setting vcpu {id}'s xsave state")))?;
            }
            if let Some(msrs) = &v.msrs {
                ctrl.set_vcpu_msrs(self.domid, id, msrs).map_err(at(|| format!("setting vcpu {id}'s MSRs")))?;
            }
        }
        let results = results
            .ok_or_else(|| XenRestoreError::Unsupported("the sender did not send vcpu 0's basic state".into()))?;
        // 2. pin (`pin_pagetables`); a batch Xen refuses is pinned one by one to name the table.
        let pins = pins(&state.page_types, &self.p2m)?;
        for chunk in pins.chunks(PIN_BATCH) {
            let ops: Vec<Pin> = chunk.iter().map(|(_, p)| *p).collect();
            if let Err(e) = ctrl.pin_tables(self.domid, &ops) {
                for (pfn, pin) in chunk {
                    ctrl.pin_tables(self.domid, std::slice::from_ref(pin)).map_err(at(|| {
                        format!(
                            "pinning the L{} table at pfn {pfn:#x} (mfn {:#x}, type {})",
                            pin.level,
                            pin.mfn,
                            state.page_type(*pfn)
                        )
                    }))?;
                }
                return Err(XenRestoreError::At { what: format!("pinning {} page tables", chunk.len()), source: e });
            }
            stats.pinned += chunk.len() as u64;
        }
        // 3. the guest's p2m (`update_guest_p2m`).
        let p2m = state.p2m.as_ref().expect("the END rules require X86_PV_P2M_FRAMES");
        let frames = self.frames();
        let mut mfns = Vec::with_capacity(p2m.frames.len());
        for (i, &pfn) in p2m.frames.iter().enumerate() {
            let what = || format!("p2m frame list entry {i}");
            mfns.push(frames.typed_mfn(&what, pfn, state.page_type(pfn), is_notab, "NOTAB")?);
        }
        let image = self.p2m.guest_image(max_pfn);
        let map =
            self.fmem.map_rw(self.domid, &mfns).map_err(at(|| format!("mapping the {} p2m frames", mfns.len())))?;
        for (i, &mfn) in mfns.iter().enumerate() {
            let mut page = vec![0xffu8; PAGE_SIZE];
            let have = image.len().saturating_sub(i * PAGE_SIZE).min(PAGE_SIZE);
            if have == 0 {
                break;
            }
            // The last frame keeps what the guest had beyond max_pfn (libxc copies only
            // (max_pfn + 1) entries).
            if have < PAGE_SIZE && !map.read(i, &mut page) {
                return Err(XenError::Frame { what: "p2m", frame: mfn, errno: map.error(i) }.into());
            }
            page[..have].copy_from_slice(&image[i * PAGE_SIZE..i * PAGE_SIZE + have]);
            if !map.write(i, &page) {
                return Err(XenError::Frame { what: "p2m", frame: mfn, errno: map.error(i) }.into());
            }
        }
        drop(map);
        // 4. grant entries 0 (console) and 1 (xenstore) (`xc_dom_gnttab_seed`).
        ctrl.gnttab_seed(
            self.domid,
            false,
            results.console_gfn,
            results.store_gfn,
            self.shell.console_domid,
            self.shell.store_domid,
        )
        .map_err(at(|| "seeding the grant table"))?;
        Ok(results)
    }

    /// Maps the start_info frame and fixes it up (`process_start_info`).
    fn fix_start_info(&self, mfn: u64) -> Result<RestoreResults, XenRestoreError> {
        let map = self.fmem.map_rw(self.domid, &[mfn]).map_err(at(|| format!("mapping Start Info at mfn {mfn:#x}")))?;
        let mut page = vec![0u8; PAGE_SIZE];
        if !map.read(0, &mut page) {
            return Err(XenError::Frame { what: "start_info", frame: mfn, errno: map.error(0) }.into());
        }
        let results = fix_start_info(&mut page, &self.frames(), &self.shell, self.shared_info_frame)?;
        map.write(0, &page);
        Ok(results)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Recorded inputs: pages and contexts of `tiny32-1vcpu.save` (a real `xl save` of a 64-bit
    /// PV guest under Xen 4.17.7), see `tests/data/xen-4.17-pv-pieces/README.md`.
    macro_rules! piece {
        ($name:literal) => {
            include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/data/xen-4.17-pv-pieces/", $name))
        };
    }
    const L4: &[u8] = piece!("l4-pfn-3ed.bin");
    const L3: &[u8] = piece!("l3-pfn-468.bin");
    const L2: &[u8] = piece!("l2-pfn-466.bin");
    const L1: &[u8] = piece!("l1-pfn-45e.bin");
    const BASIC: &[u8] = piece!("vcpu0-basic.bin");
    const START_INFO: &[u8] = piece!("start-info-pfn-1a16.bin");
    const SHARED_INFO: &[u8] = piece!("shared-info.bin");
    const TYPES: &str =
        include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/data/xen-4.17-pv-pieces/page-types.txt"));

    /// The recorded guest's p2m ends at pfn 0x1fff.
    const MAX_PFN: u64 = 0x1fff;

    fn types() -> BTreeMap<u64, PageType> {
        TYPES
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| {
                let mut w = l.split(' ');
                let pfn = u64::from_str_radix(w.next().unwrap(), 16).unwrap();
                let t = u8::from_str_radix(w.next().unwrap(), 16).unwrap();
                (pfn, PageType::from_nibble(t))
            })
            .collect()
    }

    /// A new domain where pfn p got mfn 0x80000 + p*7 % 0x2000 (scattered, as populate gives),
    /// every pfn populated, and the host's m2p agreeing.
    fn domain() -> (P2m, impl Fn(u64) -> Option<u64>) {
        let mut p2m = P2m::new(MAX_PFN as usize + 1);
        for pfn in 0..=MAX_PFN {
            p2m.set(pfn, mfn_of(pfn));
        }
        let m2p = |mfn: u64| (0x80000..0x82000).contains(&mfn).then(|| ((mfn - 0x80000) * 0xdb7) % 0x2000);
        (p2m, m2p)
    }

    fn mfn_of(pfn: u64) -> u64 {
        0x80000 + (pfn * 7) % 0x2000
    }

    #[test]
    fn the_model_domain_is_consistent() {
        // 7 * 0xdb7 = 1 mod 0x2000: m2p inverts p2m.
        let (p2m, m2p) = domain();
        let f = Frames { p2m: &p2m, max_pfn: MAX_PFN, max_mfn: 0x100000, m2p: &m2p };
        for pfn in [0, 1, 0x3ed, 0x1fff] {
            assert!(f.in_pseudophysmap(mfn_of(pfn)), "{pfn:#x}");
        }
        assert!(!f.in_pseudophysmap(0x7ffff));
        assert!(!f.in_pseudophysmap(0x200000), "beyond max_mfn");
    }

    #[test]
    fn every_present_entry_of_real_page_tables_is_localised_and_nothing_else_changes() {
        let (p2m, m2p) = domain();
        let f = Frames { p2m: &p2m, max_pfn: MAX_PFN, max_mfn: 0x100000, m2p: &m2p };
        let mut checked = 0;
        for (pfn, t, page) in [
            (0x3ed, PageType::L4TAB_PINNED, L4),
            (0x468, PageType::L3TAB, L3),
            (0x466, PageType::L2TAB, L2),
            (0x45e, PageType::L1TAB_PINNED, L1),
        ] {
            assert_eq!(types()[&pfn], t, "the recorded type of {pfn:#x}");
            let mut out = page.to_vec();
            assert!(unpopulated_frames(&out, &p2m).is_empty());
            localise(pfn, t, &mut out, &f).unwrap();
            let mut present = 0;
            for i in 0..ENTRIES {
                let (before, after) = (word(page, i), word(&out, i));
                if before & PTE_PRESENT == 0 {
                    assert_eq!(after, before, "{t} entry {i}: not present, untouched");
                    continue;
                }
                present += 1;
                // Flags, NX and software bits kept; the frame is the new mfn.
                assert_eq!(after & !PTE_FRAME_MASK, before & !PTE_FRAME_MASK);
                assert_eq!((after & PTE_FRAME_MASK) >> 12, mfn_of((before & PTE_FRAME_MASK) >> 12));
            }
            assert!(present > 0, "{t} at {pfn:#x} has present entries");
            if t == PageType::L4TAB_PINNED {
                // Xen's slots 256..=271 are zero in the stream and stay zero.
                assert!((256..=271).all(|i| word(&out, i) == 0));
            }
            checked += present;
        }
        assert!(checked > 4);
    }

    #[test]
    fn localisation_refuses_what_libxc_refuses_naming_the_frames() {
        let (mut p2m, m2p) = domain();
        let mut l1 = L1.to_vec();
        let first = (0..ENTRIES).find(|&i| word(&l1, i) & 1 != 0).unwrap();
        let target = (word(&l1, first) & PTE_FRAME_MASK) >> 12;
        // A frame the m2p does not give back (not the guest's own).
        p2m.set(target, 0x7_0000);
        let f = Frames { p2m: &p2m, max_pfn: MAX_PFN, max_mfn: 0x100000, m2p: &m2p };
        let e = localise(0x45e, PageType::L1TAB, &mut l1, &f).unwrap_err();
        assert!(matches!(e, PvFrameError::BadMfn { pfn, mfn: 0x7_0000, m2p: None, .. } if pfn == target), "{e:?}");
        assert!(e.to_string().starts_with(&format!("L1 table at pfn 0x45e, entry {first} (")), "{e}");
        // An unpopulated frame: listed for population first, refused if it was not.
        let mut p2m = P2m::new(MAX_PFN as usize + 1);
        let f = Frames { p2m: &p2m, max_pfn: MAX_PFN, max_mfn: 0x100000, m2p: &m2p };
        let mut l2 = L2.to_vec();
        let missing = unpopulated_frames(&l2, &p2m);
        assert!(!missing.is_empty());
        assert!(matches!(
            localise(0x466, PageType::L2TAB, &mut l2, &f),
            Err(PvFrameError::BadMfn { mfn: INVALID_MFN, .. })
        ));
        for pfn in missing {
            p2m.set(pfn, mfn_of(pfn));
        }
        let f = Frames { p2m: &p2m, max_pfn: MAX_PFN, max_mfn: 0x100000, m2p: &m2p };
        localise(0x466, PageType::L2TAB, &mut l2, &f).unwrap();
        // Beyond max_pfn.
        let mut page = vec![0u8; PAGE_SIZE];
        put_word(&mut page, 3, (MAX_PFN + 1) << 12 | 0x63);
        let e = localise(1, PageType::L3TAB, &mut page, &f).unwrap_err();
        assert_eq!(
            e.to_string(),
            "L3 table at pfn 0x1, entry 3 (0x0000000002000063) (pfn 0x2000) out of range: max_pfn 0x1fff"
        );
    }

    #[test]
    fn the_real_vcpu_context_gets_machine_frames() {
        let (p2m, m2p) = domain();
        let f = Frames { p2m: &p2m, max_pfn: MAX_PFN, max_mfn: 0x100000, m2p: &m2p };
        let types = types();
        let ty = |pfn: u64| types.get(&pfn).copied().unwrap_or(PageType::NOTAB);
        let before = VcpuFrames::read(BASIC, 8).unwrap();
        assert_eq!((before.start_info, before.cr3_pfn, before.cr1_pfn), (0x1a16, 0x3ed, Some(0x1c9)));
        let mut blob = BASIC.to_vec();
        let si = fix_vcpu_basic(0, &mut blob, &ty, &f).unwrap();
        assert_eq!(si, Some(mfn_of(0x1a16)));
        let after = VcpuFrames::read(&blob, 8).unwrap();
        assert_eq!(after.start_info, mfn_of(0x1a16));
        assert_eq!(after.cr3_pfn, mfn_of(0x3ed));
        assert_eq!(get64(&blob, CTX_CTRLREG + 24), mfn_of(0x3ed) << 12);
        // CR1 as Xen takes it: mfn << 12, no present bit.
        assert_eq!(get64(&blob, CTX_CTRLREG + 8), mfn_of(0x1c9) << 12);
        assert_eq!(after.gdt_ents, before.gdt_ents);
        for i in 0..before.gdt_frame_count() {
            assert_eq!(after.gdt_frames[i], mfn_of(before.gdt_frames[i]));
        }
        assert_eq!(after.gdt_frames[before.gdt_frame_count()..], before.gdt_frames[before.gdt_frame_count()..]);
        assert_eq!(get64(&blob, CTX_FLAGS), get64(BASIC, CTX_FLAGS) | VGCF_ONLINE);
        // Nothing else changed.
        let fields = [616, CTX_FLAGS, CTX_CTRLREG + 8, CTX_CTRLREG + 24];
        for (at, (a, b)) in blob.iter().zip(BASIC).enumerate() {
            let in_field = fields.iter().any(|&f| (f..f + 8).contains(&at)) || (4832..4832 + 8).contains(&at);
            assert!(in_field || a == b, "byte {at} changed");
        }
        // Another vcpu's rdx is a register, not a frame.
        let mut other = BASIC.to_vec();
        assert_eq!(fix_vcpu_basic(1, &mut other, &ty, &f).unwrap(), None);
        assert_eq!(get64(&other, 616), 0x1a16);
    }

    #[test]
    fn vcpu_frames_of_the_wrong_type_or_range_are_refused() {
        let (p2m, m2p) = domain();
        let f = Frames { p2m: &p2m, max_pfn: MAX_PFN, max_mfn: 0x100000, m2p: &m2p };
        let types = types();
        let ty = |pfn: u64| types.get(&pfn).copied().unwrap_or(PageType::NOTAB);
        let with = |edit: &dyn Fn(&mut VcpuFrames)| {
            let mut blob = BASIC.to_vec();
            let mut fr = VcpuFrames::read(&blob, 8).unwrap();
            edit(&mut fr);
            fr.write(&mut blob, 8);
            fix_vcpu_basic(0, &mut blob, &ty, &f).unwrap_err().to_string()
        };
        assert_eq!(with(&|fr| fr.cr3_pfn = 0x468), "vcpu 0 cr3 (pfn 0x468) has bad type L3TAB, expected an L4 table");
        assert_eq!(
            with(&|fr| fr.start_info = 0x3ed),
            "Start Info (vcpu 0 rdx) (pfn 0x3ed) has bad type L4TAB|PINNED, expected NOTAB"
        );
        assert_eq!(
            with(&|fr| fr.gdt_frames[0] = 0x2000),
            "vcpu 0 GDT frame 0 (pfn 0x2000) out of range: max_pfn 0x1fff"
        );
        assert_eq!(
            with(&|fr| fr.cr1_pfn = Some(0x45e)),
            "vcpu 0 cr1 (pfn 0x45e) has bad type L1TAB|PINNED, expected an L4 table"
        );
        let mut short = vec![0u8; 100];
        assert!(matches!(fix_vcpu_basic(0, &mut short, &ty, &f), Err(PvFrameError::ContextSize { len: 100, .. })));
    }

    #[test]
    fn the_real_start_info_gets_the_new_frames_and_channels() {
        let (p2m, m2p) = domain();
        let f = Frames { p2m: &p2m, max_pfn: MAX_PFN, max_mfn: 0x100000, m2p: &m2p };
        let shell = RestoreShell { domid: 9, store_evtchn: 1, store_domid: 0, console_evtchn: 2, console_domid: 0 };
        let mut page = START_INFO.to_vec();
        assert_eq!(&page[..8], b"xen-3.0-");
        assert_eq!((get64(&page, SI_STORE_MFN), get64(&page, SI_CONSOLE_MFN)), (0x1a17, 0x1a18));
        let r = fix_start_info(&mut page, &f, &shell, 0x1234).unwrap();
        assert_eq!(r, RestoreResults { store_gfn: mfn_of(0x1a17), console_gfn: mfn_of(0x1a18) });
        assert_eq!(get64(&page, SI_STORE_MFN), mfn_of(0x1a17));
        assert_eq!(get64(&page, SI_CONSOLE_MFN), mfn_of(0x1a18));
        assert_eq!(&page[SI_STORE_EVTCHN..SI_STORE_EVTCHN + 4], &1u32.to_le_bytes());
        assert_eq!(&page[SI_CONSOLE_EVTCHN..SI_CONSOLE_EVTCHN + 4], &2u32.to_le_bytes());
        assert_eq!(get64(&page, SI_NR_PAGES), 0x2000);
        assert_eq!(get64(&page, SI_SHARED_INFO), 0x1234 << 12);
        assert_eq!(&page[SI_FLAGS..SI_FLAGS + 4], &[0; 4]);
        // The layout is xen.h's: 56, 64, 72, 80.
        assert_eq!((SI_STORE_MFN, SI_STORE_EVTCHN, SI_CONSOLE_MFN, SI_CONSOLE_EVTCHN), (56, 64, 72, 80));
        // Everything past the console fields (pt_base, mfn_list, cmd_line, ...) unchanged.
        assert_eq!(&page[88..], &START_INFO[88..]);
        // A console frame outside the guest.
        let mut bad = START_INFO.to_vec();
        put64(&mut bad, SI_CONSOLE_MFN, 0x5000);
        let e = fix_start_info(&mut bad, &f, &shell, 0x1234).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Console frame (start_info console.domU.mfn) (pfn 0x5000) out of range: max_pfn 0x1fff"
        );
    }

    #[test]
    fn the_real_shared_info_is_merged_as_libxc_does() {
        let mut guest: Vec<u8> = (0..PAGE_SIZE).map(|i| (i * 31 % 251) as u8).collect();
        let fresh = guest.clone();
        fix_shared_info(&mut guest, SHARED_INFO);
        assert_eq!((SH_EVTCHN_PENDING, SH_EVTCHN_MASK, SH_ARCH), (2048, 2560, 3088));
        for v in 0..32 {
            let base = v * 64;
            assert_eq!(&guest[base..base + 8], &SHARED_INFO[base..base + 8], "vcpu {v} flags");
            assert_eq!(get64(&guest, base + 8), 0, "vcpu {v} pending selector cleared");
            assert_eq!(&guest[base + 16..base + 64], &SHARED_INFO[base + 16..base + 64], "vcpu {v} arch and time");
        }
        assert!(guest[2048..2560].iter().all(|&b| b == 0));
        assert!(guest[2560..3072].iter().all(|&b| b == 0xff));
        assert_eq!(&guest[3072..3088], &fresh[3072..3088], "wallclock stays Xen's");
        assert_eq!(get64(&guest, 3088), get64(SHARED_INFO, 3088), "max_pfn");
        assert_eq!(get64(&guest, 3096), 0, "frame list list zeroed");
        assert_eq!(&guest[3104..3136], &SHARED_INFO[3104..3136], "nmi_reason, p2m_cr3/vaddr/generation");
        assert_eq!(&guest[3136..], &fresh[3136..], "beyond the structure");
    }

    #[test]
    fn pins_follow_the_pin_bit_in_pfn_order_and_the_guest_p2m_has_holes_all_ones() {
        let (p2m, _) = domain();
        let pins = pins(&types(), &p2m).unwrap();
        // tiny32-1vcpu: L1TAB|PINNED 15, L4TAB|PINNED 7.
        assert_eq!(pins.len(), 22);
        assert!(pins.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(pins.iter().filter(|(_, p)| p.level == 4).count(), 7);
        assert!(pins.iter().any(|&(pfn, p)| pfn == 0x3ed && p == Pin { level: 4, mfn: mfn_of(0x3ed) }));
        let mut holes = P2m::new(4);
        holes.set(1, 0xabc);
        let img = holes.guest_image(3);
        assert_eq!(img.len(), 32);
        assert_eq!(&img[..8], &[0xff; 8]);
        assert_eq!(&img[8..16], &0xabcu64.to_le_bytes());
        assert!(img[16..].iter().all(|&b| b == 0xff));
        // mfn 0 is a frame, not a hole.
        holes.set(2, 0);
        assert_eq!(holes.get(2), Some(0));
    }
}
