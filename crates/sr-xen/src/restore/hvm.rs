//! x86 HVM: what `tools/libs/guest/xg_sr_restore_x86_hvm.c` of Xen 4.17 does. Also the PVH
//! restore (`pvh` opens it for a PVH domain): Xen's restorer treats both alike.
//!
//! * **PAGE_DATA**: gfns are pfns; new ones are populated one frame each, then the pages are
//!   written through one writable mapping, unmapped at the end of the record.
//! * **HVM_PARAMS**, each entry when the record arrives (`handle_hvm_params`): CONSOLE_PFN and
//!   STORE_PFN are remembered (the ring frames for the toolstack) and their pages cleared,
//!   IOREQ_PFN and BUFIOREQ_PFN pages cleared, PAE_ENABLED dropped; every other entry set as
//!   it is with `xc_hvm_param_set`.
//! * **X86_TSC_INFO** when it arrives; the CPU policy at STATIC_DATA_END (`super`).
//! * **END** (`x86_hvm_stream_complete`): STORE_EVTCHN and CONSOLE_EVTCHN set to the new
//!   channels, the HVM context set (every vcpu, the LAPICs, timers, ...: the last HVM_CONTEXT
//!   sent), grant entries 0 and 1 seeded with the rings' gfns.

use std::sync::Arc;

use sr_format::body::HvmParams;
use sr_format::state::DomainState;
use sr_format::{Record, RecordType};
use sr_restore::PageBatch;
use xen_sys as sys;

use super::{RestoreResults, RestoreShell, XenRestoreError, XenRestoreStats, at};
use crate::error::XenError;
use crate::ffi::{ForeignMemory, PAGE_SIZE, XenCtrl};

/// The HVM params Xen's restorer treats specially (`xen/include/public/hvm/params.h`).
const STORE_PFN: u64 = sys::HVM_PARAM_STORE_PFN as u64;
const CONSOLE_PFN: u64 = sys::HVM_PARAM_CONSOLE_PFN as u64;
const IOREQ_PFN: u64 = sys::HVM_PARAM_IOREQ_PFN as u64;
const BUFIOREQ_PFN: u64 = sys::HVM_PARAM_BUFIOREQ_PFN as u64;
const PAE_ENABLED: u64 = sys::HVM_PARAM_PAE_ENABLED as u64;

/// What `handle_hvm_params` does with one entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ParamAction {
    /// Set it (after clearing the page it names, when `clear`).
    Set {
        /// Zero the page at the value's gfn first.
        clear: bool,
    },
    /// Drop it (PAE_ENABLED: obsolete, never applied).
    Drop,
}

/// The action for param `index` (`handle_hvm_params`).
pub(crate) fn param_action(index: u64) -> ParamAction {
    match index {
        CONSOLE_PFN | STORE_PFN | IOREQ_PFN | BUFIOREQ_PFN => ParamAction::Set { clear: true },
        PAE_ENABLED => ParamAction::Drop,
        _ => ParamAction::Set { clear: false },
    }
}

/// What applying one HVM_PARAMS record does, in order (`handle_hvm_params`): each param with
/// whether its page is cleared first, and the ring frames the record names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ParamPlan {
    /// `(index, value, clear the page at value first)`, PAE_ENABLED left out.
    pub set: Vec<(u64, u64, bool)>,
    /// STORE_PFN's value, if the record has it.
    pub store_gfn: Option<u64>,
    /// CONSOLE_PFN's value, if the record has it.
    pub console_gfn: Option<u64>,
}

/// The plan for a record's entries, in record order.
pub(crate) fn plan_params(entries: impl IntoIterator<Item = (u64, u64)>) -> ParamPlan {
    let mut plan = ParamPlan::default();
    for (index, value) in entries {
        match index {
            CONSOLE_PFN => plan.console_gfn = Some(value),
            STORE_PFN => plan.store_gfn = Some(value),
            _ => {}
        }
        if let ParamAction::Set { clear } = param_action(index) {
            plan.set.push((index, value, clear));
        }
    }
    plan
}

/// A growable bitmap of populated gfns.
#[derive(Clone, Debug, Default)]
struct Populated(Vec<u64>);

impl Populated {
    fn get(&self, gfn: u64) -> bool {
        usize::try_from(gfn / 64).ok().and_then(|w| self.0.get(w)).is_some_and(|w| w & (1 << (gfn % 64)) != 0)
    }

    fn set(&mut self, gfn: u64) {
        let Ok(w) = usize::try_from(gfn / 64) else { return };
        if w >= self.0.len() {
            self.0.resize(w + 1, 0);
        }
        self.0[w] |= 1 << (gfn % 64);
    }
}

/// The HVM (and PVH) half of a [`super::XenRestore`].
#[derive(Debug)]
pub(crate) struct HvmRestore {
    shell: RestoreShell,
    fmem: Option<Arc<ForeignMemory>>,
    populated: Populated,
    store_gfn: u64,
    console_gfn: u64,
}

impl HvmRestore {
    pub(crate) fn new(shell: &RestoreShell) -> Self {
        Self { shell: *shell, fmem: None, populated: Populated::default(), store_gfn: 0, console_gfn: 0 }
    }

    fn fmem(&mut self) -> Result<Arc<ForeignMemory>, XenError> {
        if self.fmem.is_none() {
            self.fmem = Some(Arc::new(ForeignMemory::open()?));
        }
        Ok(Arc::clone(self.fmem.as_ref().expect("opened above")))
    }

    pub(crate) fn is_populated(&self, gfn: u64) -> bool {
        self.populated.get(gfn)
    }

    /// One PAGE_DATA record: populate the new gfns, write (or compare) the pages.
    pub(crate) fn apply_pages(
        &mut self,
        ctrl: &XenCtrl,
        batch: &PageBatch<'_>,
        compare: Option<&mut dyn FnMut(u64)>,
        stats: &mut XenRestoreStats,
    ) -> Result<(), XenRestoreError> {
        let domid = self.shell.domid;
        let mut fresh: Vec<u64> = batch.populate.iter().copied().filter(|&g| !self.populated.get(g)).collect();
        fresh.dedup();
        if !fresh.is_empty() {
            let (first, last) = (fresh[0], fresh[fresh.len() - 1]);
            let mut frames = fresh.clone();
            ctrl.populate_physmap(domid, &mut frames)
                .map_err(at(|| format!("populating {} gfns ({first:#x}..{last:#x})", fresh.len())))?;
            for &g in &fresh {
                self.populated.set(g);
            }
            stats.populated += fresh.len() as u64;
        }
        if batch.pfns.is_empty() {
            return Ok(());
        }
        let fmem = self.fmem()?;
        let map = fmem.map_rw(domid, batch.pfns).map_err(at(|| {
            format!("mapping {} gfns of PAGE_DATA record {} writable", batch.pfns.len(), batch.index)
        }))?;
        let mut scratch = vec![0u8; PAGE_SIZE];
        let mut compare = compare;
        for (i, &gfn) in batch.pfns.iter().enumerate() {
            let body = &batch.data[i * PAGE_SIZE..(i + 1) * PAGE_SIZE];
            map.put_page(i, gfn, body, &mut scratch, &mut compare).map_err(|errno| XenRestoreError::At {
                what: format!("mapping gfn {gfn:#x} (type {})", batch.types[i]),
                source: XenError::Call { call: "xenforeignmemory_map", errno },
            })?;
        }
        if compare.is_none() {
            stats.pages_written += batch.pfns.len() as u64;
        }
        Ok(())
    }

    /// Reads restored pages back.
    pub(crate) fn read_pages(&self, ctrl: &XenCtrl, gfns: &[u64], out: &mut [u8]) -> Result<(), XenRestoreError> {
        let _ = ctrl;
        out.fill(0);
        let fmem = match &self.fmem {
            Some(f) => Arc::clone(f),
            None => Arc::new(ForeignMemory::open()?),
        };
        let (idx, present): (Vec<usize>, Vec<u64>) =
            gfns.iter().enumerate().filter(|&(_, &g)| self.populated.get(g)).map(|(i, &g)| (i, g)).unzip();
        let map = fmem.map_read(self.shell.domid, &present)?;
        for (k, &i) in idx.iter().enumerate() {
            if !map.copy_frame(k, &mut out[i * PAGE_SIZE..(i + 1) * PAGE_SIZE]) {
                return Err(XenError::Frame { what: "restored page", frame: present[k], errno: map.error(k) }.into());
            }
        }
        Ok(())
    }

    /// TSC info and HVM params, applied when they arrive.
    pub(crate) fn state_record(&mut self, ctrl: &XenCtrl, rec: &Record<'_>) -> Result<(), XenRestoreError> {
        let domid = self.shell.domid;
        match rec.rtype {
            RecordType::X86_TSC_INFO => {
                let t =
                    sr_format::body::TscInfo::parse(rec).map_err(|e| XenRestoreError::Unsupported(e.to_string()))?;
                ctrl.set_tsc_info(domid, t.mode.get(), t.nsec.get(), t.khz.get(), t.incarnation.get())
                    .map_err(at(|| "applying X86_TSC_INFO"))?;
            }
            RecordType::HVM_PARAMS => {
                let params = HvmParams::parse(rec).map_err(|e| XenRestoreError::Unsupported(e.to_string()))?;
                let plan = plan_params(params.entries.iter().map(|e| (e.index.get(), e.value.get())));
                self.store_gfn = plan.store_gfn.unwrap_or(self.store_gfn);
                self.console_gfn = plan.console_gfn.unwrap_or(self.console_gfn);
                for (index, value, clear) in plan.set {
                    if clear {
                        // Xen's restorer ignores a failure to clear (the page is then whatever
                        // the stream sent), and so does this one.
                        let _ = ctrl.clear_domain_page(domid, value);
                    }
                    let index32 =
                        u32::try_from(index).map_err(|_| XenError::Layout { what: "HVM param index", value: index })?;
                    ctrl.hvm_param_set(domid, index32, value)
                        .map_err(at(|| format!("setting HVM param {index} to {value:#x}")))?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// END: the event channel params, the HVM context, the grants.
    pub(crate) fn end(&mut self, ctrl: &XenCtrl, state: &DomainState) -> Result<RestoreResults, XenRestoreError> {
        let s = self.shell;
        ctrl.hvm_param_set(s.domid, sys::HVM_PARAM_STORE_EVTCHN, u64::from(s.store_evtchn))
            .map_err(at(|| "setting HVM_PARAM_STORE_EVTCHN"))?;
        ctrl.hvm_param_set(s.domid, sys::HVM_PARAM_CONSOLE_EVTCHN, u64::from(s.console_evtchn))
            .map_err(at(|| "setting HVM_PARAM_CONSOLE_EVTCHN"))?;
        let ctx = state.hvm_context.as_deref().expect("the END rules require an HVM context");
        ctrl.hvm_set_context(s.domid, ctx).map_err(at(|| format!("setting the HVM context ({} bytes)", ctx.len())))?;
        ctrl.gnttab_seed(s.domid, true, self.console_gfn, self.store_gfn, s.console_domid, s.store_domid)
            .map_err(at(|| "seeding the grant table"))?;
        Ok(RestoreResults { store_gfn: self.store_gfn, console_gfn: self.console_gfn })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_are_treated_as_libxc_does() {
        assert_eq!(param_action(1), ParamAction::Set { clear: true }, "STORE_PFN");
        assert_eq!(param_action(17), ParamAction::Set { clear: true }, "CONSOLE_PFN");
        assert_eq!(param_action(5), ParamAction::Set { clear: true }, "IOREQ_PFN");
        assert_eq!(param_action(6), ParamAction::Set { clear: true }, "BUFIOREQ_PFN");
        assert_eq!(param_action(4), ParamAction::Drop, "PAE_ENABLED");
        for other in [2, 9, 12, 18, 32, 33, 34, 35, 36] {
            assert_eq!(param_action(other), ParamAction::Set { clear: false }, "{other}");
        }
    }

    fn entries(body: &[u8]) -> Vec<(u64, u64)> {
        let n = u32::from_le_bytes(body[..4].try_into().unwrap()) as usize;
        assert_eq!(body.len(), 8 + 16 * n);
        let w = |o: usize| u64::from_le_bytes(body[o..o + 8].try_into().unwrap());
        (0..n).map(|i| (w(8 + 16 * i), w(16 + 16 * i))).collect()
    }

    /// Recorded inputs: the HVM_PARAMS records of real `xl save` files of the test guest as
    /// HVM and as PVH (`tests/data/xen-4.17-hvm-pieces/README.md`).
    #[test]
    fn the_real_params_records_clear_the_magic_pages_and_name_the_rings() {
        let hvm = include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/data/xen-4.17-hvm-pieces/hvm-params-hvm.bin"
        ));
        let pvh = include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/data/xen-4.17-hvm-pieces/hvm-params-pvh.bin"
        ));
        for (name, body, count) in [("hvm", &hvm[..], 12), ("pvh", &pvh[..], 8)] {
            let e = entries(body);
            let plan = plan_params(e.clone());
            assert_eq!(plan.set.len(), count, "{name}: every param is set, in record order");
            assert_eq!(plan.set.iter().map(|&(i, v, _)| (i, v)).collect::<Vec<_>>(), e, "{name}");
            let cleared: Vec<u64> = plan.set.iter().filter(|s| s.2).map(|s| s.1).collect();
            // STORE, IOREQ, BUFIOREQ, CONSOLE: the pages libxc clears.
            assert_eq!(cleared, [0xfeffc, 0xfeffd, 0xfeffb, 0xfefff], "{name}");
            assert_eq!((plan.store_gfn, plan.console_gfn), (Some(0xfeffc), Some(0xfefff)), "{name}");
        }
        // PAE_ENABLED from an old stream is dropped, the rest kept in order.
        let plan = plan_params([(4, 1), (2, 5)]);
        assert_eq!(plan.set, [(2, 5, false)]);
        assert_eq!(plan.store_gfn, None);
    }

    #[test]
    fn the_populated_bitmap_grows() {
        let mut p = Populated::default();
        assert!(!p.get(0xfeff0));
        p.set(0xfeff0);
        p.set(3);
        assert!(p.get(0xfeff0) && p.get(3) && !p.get(4) && !p.get(u64::MAX));
    }
}
