//! x86 HVM and PVH guests: which gfns are populated.
//!
//! Xen's HVM saver sends every gfn below `xc_domain_nr_gpfns` and lets
//! `XEN_DOMCTL_getpageframeinfo3` sort them (`write_batch` of `tools/libs/guest/xg_sr_save.c`):
//! XTAB for a hole (no page, or a page of Xen's own such as the shared-info and grant-table
//! frames the guest mapped, `is_special_page` in `xen/arch/x86/domctl.c`), BROKEN for a broken
//! page, NOTAB for guest RAM. The same answers decide the populated set here, once, so that the
//! copy passes visit only populated gfns and holes (the VGA and MMIO holes, what the guest gave
//! back) stay holes.

use std::time::{Duration, Instant};

use sr_memory::PfnBitmap;

use crate::error::XenError;
use crate::ffi::{PAGE_TYPE_BATCH, XenCtrl};
use crate::interrupt::Interrupt;

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

/// The populated gfns of an HVM/PVH guest below a limit, as Xen types them.
#[derive(Debug, Clone)]
pub(crate) struct GfnScan {
    /// Gfns with a page of the guest's own (Xen's type is neither XTAB nor BROKEN).
    pub(crate) populated: PfnBitmap,
    /// Gfns whose page is broken (sent as BROKEN, without data, as Xen's saver does).
    pub(crate) broken: Vec<u64>,
    /// Type queries made (one per [`PAGE_TYPE_BATCH`] gfns).
    pub(crate) calls: u64,
    /// How long the scan took.
    pub(crate) took: Duration,
}

/// Asks Xen the type of every gfn in `0..limit`, [`PAGE_TYPE_BATCH`] at a time
/// (`xc_get_pfn_type_batch`), checking `interrupt` between batches.
pub(crate) fn scan_gfns(ctrl: &XenCtrl, domid: u32, limit: u64, interrupt: &Interrupt) -> Result<GfnScan, XenError> {
    let start = Instant::now();
    let mut populated = PfnBitmap::new(limit);
    let mut broken = Vec::new();
    let mut gfns = Vec::with_capacity(PAGE_TYPE_BATCH);
    let mut types = vec![0u8; PAGE_TYPE_BATCH];
    let mut calls = 0;
    let mut base = 0;
    while base < limit {
        interrupt.check()?;
        let n = (limit - base).min(PAGE_TYPE_BATCH as u64);
        gfns.clear();
        gfns.extend(base..base + n);
        let types = &mut types[..n as usize];
        ctrl.page_types(domid, &gfns, types)?;
        calls += 1;
        for (&gfn, &t) in gfns.iter().zip(types.iter()) {
            match t {
                XTAB => {}
                BROKEN => broken.push(gfn),
                _ => {
                    populated.set(gfn);
                }
            }
        }
        base += n;
    }
    Ok(GfnScan { populated, broken, calls, took: start.elapsed() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_params_are_xens_list_in_its_order() {
        assert_eq!(SAVED_PARAMS, [1, 5, 6, 27, 28, 29, 37, 17, 19, 9, 12, 34, 32, 33, 36, 38]);
    }
}
