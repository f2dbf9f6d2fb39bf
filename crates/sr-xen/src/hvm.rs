//! x86 HVM and PVH guests: which gfns are populated.
//!
//! Xen's HVM saver sends every gfn below `xc_domain_nr_gpfns` and lets
//! `XEN_DOMCTL_getpageframeinfo3` sort them (`write_batch` of `tools/libs/guest/xg_sr_save.c`):
//! XTAB for a hole (no page, or a page of Xen's own such as the shared-info and grant-table
//! frames the guest mapped: `is_special_page` in `xen/arch/x86/domctl.c`), BROKEN for a broken
//! page, NOTAB for guest RAM. The same answers decide the populated set here, so that the copy
//! passes visit only populated gfns and holes (the VGA and MMIO holes, what the guest gave
//! back) stay holes.
//!
//! Asking about every gfn costs one type query per 1024 gfns whatever is there: 1020 queries
//! for the standard guest (32 MiB of RAM under a maximum gfn of 0xfefff), several seconds on a
//! nested Xen under TCG. The scan stops early instead, once it has found as many of the
//! domain's own pages as the domain has (`tot_pages` of `XENMEM_get_pod_target`): a gfn Xen
//! types NOTAB maps a page the domain owns and Xen counts in `tot_pages` (pages Xen allocates
//! for a domain without counting them are `PGC_extra`, hence special, hence XTAB), one page at
//! one gfn; so once the count is reached, every gfn left could only hold a page of another
//! domain (a foreign mapping of a privileged guest, a shared page), which is not this guest's
//! memory. Windows of 1024 gfns are visited where guest memory is: up from gfn 0, down from the
//! top (the special pages below 4 GiB), the region hvmloader and libxl reserve for ACPI and
//! those pages (from 0xfc000000, `RESERVED_MEMBASE` / `ACPI_INFO_PHYSICAL_ADDRESS`), the
//! device model's `physmap` ranges (VRAM), up from 4 GiB; then the rest, in order, only while
//! pages are still missing. A domain with populate-on-demand entries, or where more pages show
//! up than it owns, is scanned in full. A scan of a running guest races with its balloon; the
//! callers scan again once the guest is paused, or with log-dirty mode on (which marks every
//! gfn populated afterwards).

use std::ops::Range;
use std::time::{Duration, Instant};

use sr_memory::PfnBitmap;

use crate::error::XenError;
use crate::ffi::{PAGE_TYPE_BATCH, XenCtrl};
use crate::interrupt::Interrupt;

/// gfns per type query and per window of the walk.
const WINDOW: u64 = PAGE_TYPE_BATCH as u64;

/// Where hvmloader and libxl put the ACPI tables and the special pages below 4 GiB
/// (`RESERVED_MEMBASE` of `tools/firmware/hvmloader/config.h`, `ACPI_INFO_PHYSICAL_ADDRESS` of
/// `tools/libs/light/libxl_arch.h`): gfns 0xfc000..0xff000.
pub(crate) const RESERVED_GFNS: Range<u64> = 0xfc000..0xff000;

/// The first gfn above 4 GiB (where an HVM guest's RAM above the MMIO hole starts).
const GFN_4G: u64 = 1 << 20;

/// How a gfn scan went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GfnScanInfo {
    /// Type queries made (one per 1024 gfns visited).
    pub calls: u64,
    /// How long the scan took.
    pub took: Duration,
    /// Populated (and broken) gfns found.
    pub found: u64,
    /// The pages the domain owns (`tot_pages`) when the scan started.
    pub owned: u64,
    /// Whether every gfn below the limit was asked about (a populate-on-demand domain, more
    /// pages mapped than owned, or the count not reached).
    pub complete: bool,
}

/// The populated gfns of an HVM/PVH guest below a limit, as Xen types them.
#[derive(Debug, Clone)]
pub(crate) struct GfnScan {
    /// Gfns with a page of the guest's own (Xen's type is neither XTAB nor BROKEN).
    pub(crate) populated: PfnBitmap,
    /// Gfns whose page is broken (sent as BROKEN, without data, as Xen's saver does).
    pub(crate) broken: Vec<u64>,
    /// How it went.
    pub(crate) info: GfnScanInfo,
}

/// The 1024-gfn windows of `0..limit` and which of them were visited.
struct Walk {
    windows: u64,
    visited: Vec<bool>,
}

impl Walk {
    fn new(limit: u64) -> Self {
        let windows = limit.div_ceil(WINDOW);
        Self { windows, visited: vec![false; windows as usize] }
    }

    fn windows_of(&self, gfns: &Range<u64>) -> Range<u64> {
        (gfns.start / WINDOW).min(self.windows)..gfns.end.div_ceil(WINDOW).min(self.windows)
    }
}

/// Asks Xen the type of the gfns in `0..limit`, [`PAGE_TYPE_BATCH`] at a time
/// (`xc_get_pfn_type_batch`), in the order of the module docs, until the domain's pages are all
/// found or every gfn was asked; checks `interrupt` between queries. `hints` are gfn ranges
/// likely to hold pages (the device model's `physmap`).
pub(crate) fn scan_gfns(
    ctrl: &XenCtrl,
    domid: u32,
    limit: u64,
    hints: &[Range<u64>],
    interrupt: &Interrupt,
) -> Result<GfnScan, XenError> {
    let (owned, _cache, pod_entries) = ctrl.pod_target(domid)?;
    walk_gfns(limit, owned, pod_entries == 0, hints, interrupt, |gfns, types| ctrl.page_types(domid, gfns, types))
}

/// The walk of [`scan_gfns`] over `query` (the type nibbles of a batch of gfns): `owned` pages
/// to find, and whether finding them may end the walk.
fn walk_gfns(
    limit: u64,
    owned: u64,
    may_stop: bool,
    hints: &[Range<u64>],
    interrupt: &Interrupt,
    mut query: impl FnMut(&[u64], &mut [u8]) -> Result<(), XenError>,
) -> Result<GfnScan, XenError> {
    let start = Instant::now();
    let mut may_stop = may_stop;
    let mut populated = PfnBitmap::new(limit);
    let mut broken = Vec::new();
    let mut gfns = Vec::with_capacity(PAGE_TYPE_BATCH);
    let mut types = vec![0u8; PAGE_TYPE_BATCH];
    let mut info = GfnScanInfo { owned, ..GfnScanInfo::default() };
    let mut walk = Walk::new(limit);
    // Visits window `w` if not visited yet; returns how many pages it held.
    let mut visit = |w: u64, walk: &mut Walk, info: &mut GfnScanInfo| -> Result<u64, XenError> {
        if walk.visited[w as usize] {
            return Ok(0);
        }
        walk.visited[w as usize] = true;
        interrupt.check()?;
        let base = w * WINDOW;
        let n = (limit - base).min(WINDOW);
        gfns.clear();
        gfns.extend(base..base + n);
        let types = &mut types[..n as usize];
        query(&gfns, types)?;
        info.calls += 1;
        let mut held = 0;
        for (&gfn, &t) in gfns.iter().zip(types.iter()) {
            match t {
                XTAB => continue,
                BROKEN => broken.push(gfn),
                _ => {
                    populated.set(gfn);
                }
            }
            held += 1;
        }
        info.found += held;
        Ok(held)
    };
    let windows = walk.windows;
    let mut done = |info: &GfnScanInfo| {
        if info.found > owned {
            // More than the domain owns: the count proves nothing, ask about every gfn.
            may_stop = false;
        }
        may_stop && info.found == owned
    };
    'walk: {
        for w in 0..windows {
            if visit(w, &mut walk, &mut info)? == 0 || done(&info) {
                break;
            }
        }
        if done(&info) {
            break 'walk;
        }
        for w in (0..windows).rev() {
            if walk.visited[w as usize] || visit(w, &mut walk, &mut info)? == 0 || done(&info) {
                break;
            }
        }
        let mut likely = vec![walk.windows_of(&RESERVED_GFNS)];
        likely.extend(hints.iter().map(|h| walk.windows_of(h)));
        for range in likely {
            for w in range {
                visit(w, &mut walk, &mut info)?;
                if done(&info) {
                    break 'walk;
                }
            }
        }
        for w in walk.windows_of(&(GFN_4G..limit)) {
            if visit(w, &mut walk, &mut info)? == 0 || done(&info) {
                break;
            }
        }
        for w in 0..windows {
            if done(&info) {
                break 'walk;
            }
            visit(w, &mut walk, &mut info)?;
        }
    }
    info.complete = walk.visited.iter().all(|&v| v);
    info.took = start.elapsed();
    Ok(GfnScan { populated, broken, info })
}

/// The HVM params Xen's saver reads, in its order (`write_hvm_params` of
/// `tools/libs/guest/xg_sr_save_x86_hvm.c`; numbers from `xen/include/public/hvm/params.h`):
/// STORE_PFN, IOREQ_PFN, BUFIOREQ_PFN, PAGING_RING_PFN, MONITOR_RING_PFN, SHARING_RING_PFN,
/// VM86_TSS_SIZED, CONSOLE_PFN, ACPI_IOPORTS_LOCATION, VIRIDIAN, IDENT_PT,
/// VM_GENERATION_ID_ADDR, IOREQ_SERVER_PFN, NR_IOREQ_SERVER_PAGES, X87_FIP_WIDTH, MCA_CAP.
pub(crate) const SAVED_PARAMS: [u32; 16] = {
    use xen_sys as p;
    [
        p::HVM_PARAM_STORE_PFN,
        p::HVM_PARAM_IOREQ_PFN,
        p::HVM_PARAM_BUFIOREQ_PFN,
        p::HVM_PARAM_PAGING_RING_PFN,
        p::HVM_PARAM_MONITOR_RING_PFN,
        p::HVM_PARAM_SHARING_RING_PFN,
        p::HVM_PARAM_VM86_TSS_SIZED,
        p::HVM_PARAM_CONSOLE_PFN,
        p::HVM_PARAM_ACPI_IOPORTS_LOCATION,
        p::HVM_PARAM_VIRIDIAN,
        p::HVM_PARAM_IDENT_PT,
        p::HVM_PARAM_VM_GENERATION_ID_ADDR,
        p::HVM_PARAM_IOREQ_SERVER_PFN,
        p::HVM_PARAM_NR_IOREQ_SERVER_PAGES,
        p::HVM_PARAM_X87_FIP_WIDTH,
        p::HVM_PARAM_MCA_CAP,
    ]
};

/// The XTAB nibble (`XEN_DOMCTL_PFINFO_XTAB >> 28`): no page of the guest's own.
pub(crate) const XTAB: u8 = 0xf;
/// The BROKEN nibble (`XEN_DOMCTL_PFINFO_BROKEN >> 28`).
pub(crate) const BROKEN: u8 = 0xd;

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake guest: populated gfns (`pages`), broken ones, and the walk's queries counted.
    fn walk(
        limit: u64,
        pages: &[Range<u64>],
        broken: &[u64],
        owned: u64,
        may_stop: bool,
        hints: &[Range<u64>],
    ) -> GfnScan {
        let query = |gfns: &[u64], types: &mut [u8]| {
            for (g, t) in gfns.iter().zip(types.iter_mut()) {
                *t = if broken.contains(g) {
                    BROKEN
                } else if pages.iter().any(|r| r.contains(g)) {
                    0
                } else {
                    XTAB
                };
            }
            Ok(())
        };
        walk_gfns(limit, owned, may_stop, hints, &Interrupt::none(), query).unwrap()
    }

    /// The standard PVH guest's layout (as Xen 4.17 typed it on the real host).
    const PVH: [Range<u64>; 6] =
        [0..0x10, 0x11..0x1d0, 0x200..0x1000, 0x1010..0x2000, 0xfc000..0xfc009, 0xfeff8..0xff000];

    #[test]
    fn the_walk_stops_once_every_owned_page_is_found() {
        let owned: u64 = PVH.iter().map(|r| r.end - r.start).sum();
        let s = walk(0xff000, &PVH, &[], owned, true, &[]);
        assert_eq!(s.info.found, owned);
        assert_eq!(s.populated.count_ones(), owned);
        assert!(PVH.iter().all(|r| r.clone().all(|g| s.populated.get(g))));
        // Eight windows of RAM and the empty one after, the top window and the empty one below
        // it, the reserved region's first window: 12 queries instead of 1020.
        assert_eq!(s.info.calls, 12);
        assert!(!s.info.complete);
    }

    #[test]
    fn pages_away_from_the_likely_places_are_still_found() {
        // VRAM in the MMIO hole, a page in the middle of nowhere, and RAM above 4 GiB.
        let pages = [0..0x800, 0xf0000..0xf0400, 0x80123..0x80124, 0x100000..0x100800, 0xfeff0..0xff000];
        let owned: u64 = pages.iter().map(|r| r.end - r.start).sum();
        let s = walk(0x100800, &pages, &[], owned, true, &pages[1..2]);
        assert_eq!(s.info.found, owned);
        assert!(pages.iter().all(|r| r.clone().all(|g| s.populated.get(g))));
        // The lone page costs a walk up to it; nothing beyond it is asked.
        assert!(!s.info.complete);
        assert_eq!(s.info.calls, 3 + 3 + 12 + 1 + (0x200 - 3 + 1));
    }

    #[test]
    fn without_a_trustworthy_count_every_gfn_is_asked() {
        let owned: u64 = PVH.iter().map(|r| r.end - r.start).sum();
        // Populate-on-demand: the count says nothing.
        let s = walk(0xff000, &PVH, &[], owned, false, &[]);
        assert!(s.info.complete);
        assert_eq!(s.info.calls, 0x3fc);
        // More pages mapped than owned (a foreign mapping): every gfn.
        let s = walk(0xff000, &PVH, &[], owned - 5, true, &[]);
        assert!(s.info.complete);
        // A count never reached (a page the domain owns but has not mapped): every gfn.
        let s = walk(0xff000, &PVH, &[], owned + 1, true, &[]);
        assert!(s.info.complete);
        assert_eq!(s.info.found, owned);
        // Broken pages count as the domain's and are listed.
        let s = walk(0xff000, &PVH, &[0x500], owned, true, &[]);
        assert_eq!(s.broken, [0x500]);
        assert!(!s.populated.get(0x500));
        assert!(!s.info.complete);
    }

    #[test]
    fn an_interrupt_stops_the_walk() {
        let i = Interrupt::none();
        i.raise(2);
        let r = walk_gfns(0xff000, 1, true, &[], &i, |_, _| Ok(()));
        assert!(matches!(r, Err(XenError::Interrupted { signal: 2 })));
    }

    #[test]
    fn windows_of_a_range_are_clamped_to_the_limit() {
        let walk = Walk::new(0xff000);
        assert_eq!(walk.windows, 0x3fc);
        assert_eq!(walk.windows_of(&RESERVED_GFNS), 0x3f0..0x3fc);
        assert_eq!(walk.windows_of(&(GFN_4G..GFN_4G + 0x800)), 0x3fc..0x3fc);
        assert_eq!(walk.windows_of(&(0x1001..0x1002)), 4..5);
    }

    #[test]
    fn saved_params_are_xens_list_in_its_order() {
        assert_eq!(SAVED_PARAMS, [1, 5, 6, 27, 28, 29, 37, 17, 19, 9, 12, 34, 32, 33, 36, 38]);
    }
}
