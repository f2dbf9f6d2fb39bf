//! A running Xen domain's memory from dom0, as an [`sr_memory::GuestMemory`] backend.
//!
//! [`XenDomain::open`] opens a domain by id ([`resolve_domain`] turns a name into one) with
//! libxenctrl and libxenforeignmemory; [`XenDomain::memory`] is its memory:
//!
//! * **frames** are mapped read-only in 4 MiB windows (`xenforeignmemory_map`) kept across
//!   passes, one copy per page; a frame that does not map is a hole (zeros, counted), not a
//!   failure;
//! * **x86 PV** guests are addressed through their own p2m, found as Xen's saver finds it
//!   ([`p2m`]: the virtual p2m list through the guest's page tables, or the frame-list tree
//!   in the shared info page), each entry checked against the host's m2p; **x86 HVM/PVH**
//!   gfns map directly;
//! * the **dirty log** is Xen's log-dirty mode (`XEN_DOMCTL_shadow_op` through libxenctrl:
//!   enable, clean, off), so sr-save's live pre-copy and `xsr dump --live` drive it;
//! * **pause/unpause, log-dirty and cooperative suspend** go through a [`DomainGuard`] that
//!   puts the domain back as found (log-dirty off, then unpaused, then resumed if this process
//!   suspended it) on every way out, and SIGINT/SIGTERM/SIGHUP set an [`Interrupt`] flag every batch
//!   and every suspend wait checks;
//! * **vcpu state**: [`XenDomain::vcpu_contexts`] (PV) and [`XenDomain::hvm_context`] (HVM);
//!   for a PV saver also the extended context, xsave state and MSRs of each vcpu, the CPU
//!   policy, TSC info and each frame's page type (`XEN_DOMCTL_getpageframeinfo3`);
//! * **HVM and PVH**: the populated gfns are found from Xen's page types in a walk that stops
//!   once the domain's pages are all found ([`GfnScanInfo`]); [`HvmSaveGuest`] saves such a
//!   domain as Xen's saver and libxl do (HVM context passed through, HVM params, for HVM the
//!   device model's state over QMP with its log-dirty mode switched, libxl's suspend choice);
//! * **supervision**: [`supervise`] forks the working process and, if it dies of a signal,
//!   undoes what it reported holding ([`held`]) and resumes a suspended domain.
//!
//! All `unsafe` is in the `ffi` module. Bindings come from `libxen-sys` (bindgen over the
//! installed Xen headers: `apt-get install libxen-dev libclang-dev pkg-config`); at run time
//! the domain's host needs Xen's libraries (dom0 has them) and root.

#![warn(missing_docs)]
#![deny(unsafe_code)]

mod control;
mod device_model;
pub mod dirty;
mod domain;
mod error;
mod ffi;
mod ffi_hvm;
mod ffi_restore;
mod hvm;
mod hvm_save;
mod interrupt;
mod libxl;
mod libxl_sys;
mod memory;
pub mod normalise;
pub mod p2m;
mod qmp;
pub mod restore;
mod save;
mod supervise;

pub use control::{DomainControl, DomainGuard, SHUTDOWN_SUSPEND, SUSPEND_GRACE, SUSPEND_POLL};
pub use device_model::{GuestType, XEN_LIB_DIR, XEN_RUN_DIR};
pub use domain::{
    Control, DomainKind, MIGRATED_AWAY, PV32_REFUSAL, Recovery, SuspendBy, XenDomain, domain_name, recover_domain,
    resolve_domain,
};
pub use error::XenError;
pub use ffi::{DomainInfo, PAGE_SIZE, PAGE_TYPE_BATCH, TscInfo};
pub use ffi_restore::inherited_fd;
pub use interrupt::Interrupt;

/// The README's examples, compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
pub use hvm::GfnScanInfo;
pub use hvm_save::{EMULATOR_QEMU_UPSTREAM, HvmSaveGuest, LogdirtyHook};
pub use memory::{MAX_WINDOWS, WINDOW_PFNS, XenMemory};
pub use save::{PvSaveGuest, SuspendHook};
pub use supervise::{Supervised, Supervision, held, supervise, supervise_child};
