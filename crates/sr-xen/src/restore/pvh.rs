//! x86 PVH: a PVH domain is an HVM domain without a device model (Xen: `XEN_DOMINF_hvm_guest`
//! with `XEN_X86_EMU_LAPIC` as its only emulation, `libxl__arch_domain_prepare_config`), and
//! Xen's restorer treats its stream as an HVM one (`x86_hvm_setup`: Xen 4.17 saves PVH guests
//! with domain type 2, x86 HVM). The records and their application are the `hvm` module's;
//! what differs is which streams a PVH domain takes:
//!
//! * domain type 2 (x86 HVM), what Xen writes for a PVH guest;
//! * domain type 3 (x86 PVH), which Xen 4.17's restorer refuses but older Xen and xsr's saver
//!   (`--pvh-as-hvm` not given) write: the records are the same, so it is restored alike.
//!
//! A PVH guest has no device model, but libxl places the same magic pages for it (xenstore,
//! console, ioreq, the paging/monitor/sharing rings): its HVM params are applied as an HVM
//! guest's are (the saver sends only the non-zero ones).

use xen_sys as sys;

use super::RestoreShell;
use super::hvm::HvmRestore;
use crate::ffi::DomainInfo;

/// Whether `info` is a PVH domain: HVM-like with the local APIC as its only emulated device.
pub(crate) fn is_pvh(info: &DomainInfo) -> bool {
    info.hvm && info.emulation_flags == sys::XEN_X86_EMU_LAPIC
}

/// The restore of an HVM or PVH stream into `info`'s domain, if it is PVH.
pub(crate) fn open(info: &DomainInfo, shell: &RestoreShell) -> Option<HvmRestore> {
    is_pvh(info).then(|| HvmRestore::new(shell))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(hvm: bool, emulation_flags: u32) -> DomainInfo {
        DomainInfo {
            domid: 3,
            paused: true,
            hvm,
            shutdown: false,
            shutdown_reason: None,
            tot_pages: 0,
            max_pages: 8448,
            shared_info_frame: 0,
            max_vcpu_id: 0,
            nr_online_vcpus: 1,
            handle: [0; 16],
            emulation_flags,
        }
    }

    #[test]
    fn pvh_is_hvm_with_only_the_lapic() {
        assert!(is_pvh(&info(true, sys::XEN_X86_EMU_LAPIC)));
        // libxl's HVM: everything but vPCI.
        assert!(!is_pvh(&info(true, sys::XEN_X86_EMU_ALL & !sys::XEN_X86_EMU_VPCI)));
        assert!(!is_pvh(&info(false, 0)));
        let shell = RestoreShell { domid: 3, store_evtchn: 1, store_domid: 0, console_evtchn: 2, console_domid: 0 };
        assert!(open(&info(true, sys::XEN_X86_EMU_LAPIC), &shell).is_some());
        assert!(open(&info(true, 0x3fe), &shell).is_none());
    }
}
