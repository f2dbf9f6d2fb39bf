//! The libxenctrl calls an HVM or PVH save needs beyond the PV ones: HVM params and the
//! hypercall suspend. FFI-only module (with `ffi` and `libxl`, the only ones with `unsafe`),
//! kept apart from `ffi` so that the HVM saver's calls stay in one place.

#![allow(unsafe_code)]

use xen_sys as sys;

use crate::error::XenError;
use crate::ffi::XenCtrl;

/// `HVM_PARAM_CALLBACK_IRQ` of `xen/include/public/hvm/params.h`: non-zero once the guest's PV
/// drivers registered their event-channel upcall (libxl's "PV drivers present" test).
pub const HVM_PARAM_CALLBACK_IRQ: u32 = sys::HVM_PARAM_CALLBACK_IRQ;

/// `HVM_PARAM_ACPI_S_STATE`: the guest's ACPI sleep state (0: S0, running).
pub const HVM_PARAM_ACPI_S_STATE: u32 = sys::HVM_PARAM_ACPI_S_STATE;

impl XenCtrl {
    /// `xc_hvm_param_get` (`HVMOP_get_param`): HVM param `index` of an HVM or PVH
    /// domain.
    ///
    /// Errors: [`XenError::Call`] with Xen's errno (e.g. `EINVAL` for a PV domain or an
    /// unknown index).
    pub fn hvm_param(&self, domid: u32, index: u32) -> Result<u64, XenError> {
        let mut value: u64 = 0;
        // SAFETY: `value` is a valid out parameter; the other arguments are scalars.
        let rc = unsafe { sys::xc_hvm_param_get(self.raw(), domid, index, &mut value) };
        if rc != 0 {
            return Err(XenError::Call {
                call: "xc_hvm_param_get",
                errno: std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
            });
        }
        Ok(value)
    }

    /// `xc_domain_get_pod_target` (`XENMEM_get_pod_target`): the domain's pages (its
    /// `tot_pages`), its populate-on-demand cache and its populate-on-demand entries.
    pub fn pod_target(&self, domid: u32) -> Result<(u64, u64, u64), XenError> {
        let (mut tot, mut cache, mut entries) = (0u64, 0u64, 0u64);
        // SAFETY: three valid out parameters.
        let rc = unsafe { sys::xc_domain_get_pod_target(self.raw(), domid, &mut tot, &mut cache, &mut entries) };
        if rc != 0 {
            return Err(XenError::Call {
                call: "xc_domain_get_pod_target",
                errno: std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
            });
        }
        Ok((tot, cache, entries))
    }

    /// `xc_domain_shutdown(domid, reason)` (`SCHEDOP_remote_shutdown`): shuts the domain down
    /// with `reason` from outside; with `SHUTDOWN_suspend` this is how libxl suspends an HVM
    /// guest without PV drivers (`domain_suspend_callback_common` in
    /// `tools/libs/light/libxl_dom_suspend.c`).
    pub fn domain_shutdown(&self, domid: u32, reason: u32) -> Result<(), XenError> {
        let reason = std::ffi::c_int::try_from(reason)
            .map_err(|_| XenError::Layout { what: "shutdown reason", value: reason.into() })?;
        // SAFETY: scalar arguments.
        let rc = unsafe { sys::xc_domain_shutdown(self.raw(), domid, reason) };
        if rc != 0 {
            return Err(XenError::Call {
                call: "xc_domain_shutdown",
                errno: std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
            });
        }
        Ok(())
    }
}
