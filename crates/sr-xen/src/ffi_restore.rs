//! The calls into Xen's libraries that a restore makes, beside `ffi` (which has those of reading
//! and saving a domain): populate, writable foreign mappings, vcpu and HVM context setters, the
//! setter domctls libxenctrl has no wrapper for (through `xc_domctl` and hypercall buffers, as
//! Xen's restorer does), page-table pinning, TSC info, HVM params, the CPU policy and the grant
//! table seed. Each is the call `tools/libs/guest/xg_sr_restore*.c` of Xen 4.17 makes for the
//! same step. Together with `ffi` and `libxl`, the only modules with `unsafe`.
//!
//! Guest memory mapped writable is written with raw copies only, never turned into a Rust
//! reference (the mapping aliases a frame another domain owns).

#![allow(unsafe_code)]

use std::ffi::{c_int, c_uint, c_ulong, c_void};
use std::ptr::NonNull;
use std::sync::Arc;

use xen_sys as sys;

use crate::error::XenError;
use crate::ffi::{ForeignMemory, HypercallBuffer, PAGE_SIZE, XenCtrl, call_error, errno};

// Xen 4.17 `tools/include/xenguest.h` (libxenguest, which libxen-sys does not bind):
// `int xc_set_domain_cpu_policy(xc_interface *xch, uint32_t domid, uint32_t nr_leaves,
//     xen_cpuid_leaf_t *leaves, uint32_t nr_msrs, xen_msr_entry_t *msrs,
//     uint32_t *err_leaf_p, uint32_t *err_subleaf_p, uint32_t *err_msr_p);` and
// `int xc_dom_gnttab_seed(xc_interface *xch, uint32_t guest_domid, bool is_hvm,
//     xen_pfn_t console_gfn, xen_pfn_t xenstore_gfn, uint32_t console_domid,
//     uint32_t xenstore_domid);` (`tools/libs/guest/xg_dom_boot.c`: maps grant frame 0 with
// `xenforeignmemory_map_resource`, falling back to the older interfaces, and writes entries
// `GNTTAB_RESERVED_CONSOLE` and `GNTTAB_RESERVED_XENSTORE`; the public call Xen's restorer makes
// for this step, used here rather than a copy of it).
#[link(name = "xenguest")]
unsafe extern "C" {
    fn xc_set_domain_cpu_policy(
        xch: *mut sys::xc_interface,
        domid: u32,
        nr_leaves: u32,
        leaves: *mut sys::xen_cpuid_leaf,
        nr_msrs: u32,
        msrs: *mut sys::xen_msr_entry,
        err_leaf_p: *mut u32,
        err_subleaf_p: *mut u32,
        err_msr_p: *mut u32,
    ) -> c_int;
    fn xc_dom_gnttab_seed(
        xch: *mut sys::xc_interface,
        guest_domid: u32,
        is_hvm: bool,
        console_gfn: sys::xen_pfn_t,
        xenstore_gfn: sys::xen_pfn_t,
        console_domid: u32,
        xenstore_domid: u32,
    ) -> c_int;
}

/// `INVALID_MFN` as populate reports a frame it could not allocate.
pub(crate) const INVALID_MFN: u64 = u64::MAX;

/// Which page-table level an `MMUEXT_PIN_L*_TABLE` op pins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Pin {
    /// 1..=4.
    pub level: u8,
    /// The table's machine frame.
    pub mfn: u64,
}

/// Where `xc_set_domain_cpu_policy` says a policy failed (`~0`: not that part).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PolicyFault {
    pub errno: i32,
    pub leaf: u32,
    pub subleaf: u32,
    pub msr: u32,
}

impl XenCtrl {
    /// `xc_domain_populate_physmap_exact(domid, n, order 0, flags 0, frames)`: one 4 KiB frame
    /// per entry of `frames`, which go in as gpfns; for a PV guest Xen writes each new mfn back
    /// in place (an HVM guest's array is left as it was). `sr_restore.c`'s `populate_pfns`.
    pub(crate) fn populate_physmap(&self, domid: u32, frames: &mut [u64]) -> Result<(), XenError> {
        let n = c_ulong::try_from(frames.len())
            .map_err(|_| XenError::Layout { what: "populate count", value: frames.len() as u64 })?;
        // SAFETY: `frames` holds `n` xen_pfn_t (u64 on x86_64), which libxenctrl bounces to
        // Xen and back.
        let rc = unsafe { sys::xc_domain_populate_physmap_exact(self.raw(), domid, n, 0, 0, frames.as_mut_ptr()) };
        if rc != 0 { Err(call_error("xc_domain_populate_physmap_exact")) } else { Ok(()) }
    }

    /// `xc_domain_set_tsc_info` (`XEN_DOMCTL_settscinfo`), as Xen's restorer applies an
    /// X86_TSC_INFO record (`handle_x86_tsc_info`).
    pub(crate) fn set_tsc_info(
        &self,
        domid: u32,
        mode: u32,
        nsec: u64,
        khz: u32,
        incarnation: u32,
    ) -> Result<(), XenError> {
        // SAFETY: scalar arguments.
        let rc = unsafe { sys::xc_domain_set_tsc_info(self.raw(), domid, mode, nsec, khz, incarnation) };
        if rc != 0 { Err(call_error("xc_domain_set_tsc_info")) } else { Ok(()) }
    }

    /// `xc_set_domain_cpu_policy` with the stream's CPUID leaves (`[leaf, subleaf, a, b, c,
    /// d]`) and MSRs (`(index, flags, value)`), as `x86_static_data_complete` does.
    pub(crate) fn set_cpu_policy(
        &self,
        domid: u32,
        cpuid: &[[u32; 6]],
        msrs: &[(u32, u32, u64)],
    ) -> Result<(), PolicyFault> {
        let mut leaves: Vec<sys::xen_cpuid_leaf> = cpuid
            .iter()
            .map(|l| sys::xen_cpuid_leaf { leaf: l[0], subleaf: l[1], a: l[2], b: l[3], c: l[4], d: l[5] })
            .collect();
        let mut entries: Vec<sys::xen_msr_entry> =
            msrs.iter().map(|&(idx, flags, val)| sys::xen_msr_entry { idx, flags, val }).collect();
        let fault = |errno| PolicyFault { errno, leaf: !0, subleaf: !0, msr: !0 };
        let nr_leaves = u32::try_from(leaves.len()).map_err(|_| fault(libc::E2BIG))?;
        let nr_msrs = u32::try_from(entries.len()).map_err(|_| fault(libc::E2BIG))?;
        let (mut leaf, mut subleaf, mut msr) = (!0u32, !0u32, !0u32);
        // SAFETY: the arrays hold `nr_leaves` and `nr_msrs` entries of the installed headers'
        // layout (checked by bindgen); the three out pointers are valid.
        let rc = unsafe {
            xc_set_domain_cpu_policy(
                self.raw(),
                domid,
                nr_leaves,
                leaves.as_mut_ptr(),
                nr_msrs,
                entries.as_mut_ptr(),
                &mut leaf,
                &mut subleaf,
                &mut msr,
            )
        };
        if rc != 0 { Err(PolicyFault { errno: errno(), leaf, subleaf, msr }) } else { Ok(()) }
    }

    /// `xc_vcpu_setcontext` with a 64-bit `vcpu_guest_context` in stream layout (5168 bytes,
    /// the X86_PV_VCPU_BASIC blob with its frames already machine frames).
    pub(crate) fn set_vcpu_context(&self, domid: u32, vcpu: u32, blob: &[u8]) -> Result<(), XenError> {
        if blob.len() != size_of::<sys::vcpu_guest_context_x86_64_t>() {
            return Err(XenError::Layout { what: "vcpu_guest_context length", value: blob.len() as u64 });
        }
        let mut ctxt = sys::vcpu_guest_context_any_t::default();
        // SAFETY: `ctxt` is at least as large as its x86_64 member (the union), whose size the
        // blob has; the blob is a distinct allocation. Every bit pattern is a valid context.
        unsafe { std::ptr::copy_nonoverlapping(blob.as_ptr(), (&raw mut ctxt).cast::<u8>(), blob.len()) };
        // SAFETY: a full, initialised context union; libxenctrl bounces it to Xen.
        let rc = unsafe { sys::xc_vcpu_setcontext(self.raw(), domid, vcpu, &mut ctxt) };
        if rc != 0 { Err(call_error("xc_vcpu_setcontext")) } else { Ok(()) }
    }

    /// A domctl with the union filled from `bytes` (at most its 128 bytes), as Xen's restorer
    /// `memcpy`s the X86_PV_VCPU_EXTENDED blob into `u.ext_vcpucontext`.
    fn domctl_with_bytes(&self, cmd: u32, domid: u32, call: &'static str, bytes: &[u8]) -> Result<(), XenError> {
        let domain =
            sys::domid_t::try_from(domid).map_err(|_| XenError::Layout { what: "domid", value: domid.into() })?;
        let mut d = sys::xen_domctl { cmd, domain, ..Default::default() };
        // SAFETY: the union is 128 plain bytes (`pad`); writing the pad member fills it.
        let pad = unsafe { &mut d.u.pad };
        if bytes.len() > pad.len() {
            return Err(XenError::Layout { what: "domctl payload length", value: bytes.len() as u64 });
        }
        pad[..bytes.len()].copy_from_slice(bytes);
        // SAFETY: an initialised domctl of the installed headers' layout without buffer handles.
        let rc = unsafe { sys::xc_domctl(self.raw(), &mut d) };
        if rc < 0 { Err(call_error(call)) } else { Ok(()) }
    }

    /// `XEN_DOMCTL_set_ext_vcpucontext` with the X86_PV_VCPU_EXTENDED blob as the union's
    /// bytes (its own `vcpu` and `size` fields included), as `process_vcpu_extended`.
    pub(crate) fn set_ext_vcpu_context(&self, domid: u32, blob: &[u8]) -> Result<(), XenError> {
        self.domctl_with_bytes(sys::XEN_DOMCTL_set_ext_vcpucontext, domid, "XEN_DOMCTL_set_ext_vcpucontext", blob)
    }

    /// `XEN_DOMCTL_setvcpuextstate` of vcpu `vcpu` with the X86_PV_VCPU_XSAVE blob in a
    /// hypercall buffer (`process_vcpu_xsave`: `xfeature_mask` left 0, `size` the blob's).
    pub(crate) fn set_vcpu_ext_state(&self, domid: u32, vcpu: u32, blob: &[u8]) -> Result<(), XenError> {
        let mut buf = HypercallBuffer::alloc(self, blob.len(), "xc_hypercall_buffer_alloc")?;
        buf.fill(blob);
        let domain =
            sys::domid_t::try_from(domid).map_err(|_| XenError::Layout { what: "domid", value: domid.into() })?;
        let mut d = sys::xen_domctl { cmd: sys::XEN_DOMCTL_setvcpuextstate, domain, ..Default::default() };
        d.u.vcpuextstate = sys::xen_domctl_vcpuextstate {
            vcpu,
            xfeature_mask: 0,
            size: blob.len() as u64,
            buffer: sys::__guest_handle_uint64 { p: buf.as_ptr() },
        };
        // SAFETY: the domctl's buffer handle points into `buf`, alive until after the call.
        let rc = unsafe { sys::xc_domctl(self.raw(), &mut d) };
        if rc < 0 { Err(call_error("XEN_DOMCTL_setvcpuextstate")) } else { Ok(()) }
    }

    /// `XEN_DOMCTL_set_vcpu_msrs` of vcpu `vcpu` with the X86_PV_VCPU_MSRS blob (16-byte
    /// `xen_domctl_vcpu_msr_t` entries) in a hypercall buffer (`process_vcpu_msrs`).
    pub(crate) fn set_vcpu_msrs(&self, domid: u32, vcpu: u32, blob: &[u8]) -> Result<(), XenError> {
        const ENTRY: usize = size_of::<sys::xen_domctl_vcpu_msr_t>();
        if !blob.len().is_multiple_of(ENTRY) {
            return Err(XenError::Layout { what: "vcpu MSR blob length", value: blob.len() as u64 });
        }
        let count = u32::try_from(blob.len() / ENTRY)
            .map_err(|_| XenError::Layout { what: "vcpu MSR count", value: blob.len() as u64 })?;
        let mut buf = HypercallBuffer::alloc(self, blob.len(), "xc_hypercall_buffer_alloc")?;
        buf.fill(blob);
        let domain =
            sys::domid_t::try_from(domid).map_err(|_| XenError::Layout { what: "domid", value: domid.into() })?;
        let mut d = sys::xen_domctl { cmd: sys::XEN_DOMCTL_set_vcpu_msrs, domain, ..Default::default() };
        d.u.vcpu_msrs = sys::xen_domctl_vcpu_msrs {
            vcpu,
            msr_count: count,
            msrs: sys::__guest_handle_xen_domctl_vcpu_msr_t { p: buf.as_ptr() },
        };
        // SAFETY: the domctl's handle points into `buf`, alive until after the call.
        let rc = unsafe { sys::xc_domctl(self.raw(), &mut d) };
        if rc < 0 { Err(call_error("XEN_DOMCTL_set_vcpu_msrs")) } else { Ok(()) }
    }

    /// `xc_mmuext_op` with one `MMUEXT_PIN_L<level>_TABLE` per entry (`pin_pagetables`).
    pub(crate) fn pin_tables(&self, domid: u32, pins: &[Pin]) -> Result<(), XenError> {
        let mut ops: Vec<sys::mmuext_op> = Vec::with_capacity(pins.len());
        for p in pins {
            let cmd = match p.level {
                1 => sys::MMUEXT_PIN_L1_TABLE,
                2 => sys::MMUEXT_PIN_L2_TABLE,
                3 => sys::MMUEXT_PIN_L3_TABLE,
                4 => sys::MMUEXT_PIN_L4_TABLE,
                l => return Err(XenError::Layout { what: "page-table level to pin", value: l.into() }),
            };
            let mut op = sys::mmuext_op { cmd, ..Default::default() };
            op.arg1.mfn = p.mfn;
            ops.push(op);
        }
        let n =
            c_uint::try_from(ops.len()).map_err(|_| XenError::Layout { what: "pin count", value: ops.len() as u64 })?;
        // SAFETY: `ops` holds `n` initialised mmuext_ops, which libxenctrl bounces to Xen.
        let rc = unsafe { sys::xc_mmuext_op(self.raw(), ops.as_mut_ptr(), n, domid) };
        if rc != 0 { Err(call_error("xc_mmuext_op")) } else { Ok(()) }
    }

    /// `xc_hvm_param_set`.
    pub(crate) fn hvm_param_set(&self, domid: u32, index: u32, value: u64) -> Result<(), XenError> {
        // SAFETY: scalar arguments.
        let rc = unsafe { sys::xc_hvm_param_set(self.raw(), domid, index, value) };
        if rc < 0 { Err(call_error("xc_hvm_param_set")) } else { Ok(()) }
    }

    /// `xc_clear_domain_page` (`xc_clear_domain_pages(.., gfn, 1)`): zeroes one populated frame.
    pub(crate) fn clear_domain_page(&self, domid: u32, gfn: u64) -> Result<(), XenError> {
        // SAFETY: scalar arguments.
        let rc = unsafe { sys::xc_clear_domain_pages(self.raw(), domid, gfn, 1) };
        if rc != 0 { Err(call_error("xc_clear_domain_page")) } else { Ok(()) }
    }

    /// `xc_domain_hvm_setcontext` with the HVM_CONTEXT blob.
    pub(crate) fn hvm_set_context(&self, domid: u32, blob: &[u8]) -> Result<(), XenError> {
        let size = u32::try_from(blob.len())
            .map_err(|_| XenError::Layout { what: "HVM context length", value: blob.len() as u64 })?;
        let mut copy = blob.to_vec();
        // SAFETY: `copy` holds `size` bytes; libxenctrl bounces them to Xen (it takes a
        // mutable pointer but only reads).
        let rc = unsafe { sys::xc_domain_hvm_setcontext(self.raw(), domid, copy.as_mut_ptr(), size) };
        if rc < 0 { Err(call_error("xc_domain_hvm_setcontext")) } else { Ok(()) }
    }

    /// `xc_dom_gnttab_seed`: grant entries 0 (console) and 1 (xenstore) of `domid`'s table
    /// for their backends, the frames being mfns for PV and gfns for HVM/PVH.
    pub(crate) fn gnttab_seed(
        &self,
        domid: u32,
        is_hvm: bool,
        console_gfn: u64,
        store_gfn: u64,
        console_domid: u32,
        store_domid: u32,
    ) -> Result<(), XenError> {
        // SAFETY: scalar arguments.
        let rc = unsafe {
            xc_dom_gnttab_seed(self.raw(), domid, is_hvm, console_gfn, store_gfn, console_domid, store_domid)
        };
        if rc != 0 { Err(call_error("xc_dom_gnttab_seed")) } else { Ok(()) }
    }
}

impl ForeignMemory {
    /// Maps `frames` of `domid` readable and writable (`xenforeignmemory_map` with
    /// `PROT_READ | PROT_WRITE`), one mapping for the batch as Xen's restorer maps a PAGE_DATA
    /// record's frames; per-frame failures are in [`MappingRw::error`].
    pub(crate) fn map_rw(self: &Arc<Self>, domid: u32, frames: &[u64]) -> Result<MappingRw, XenError> {
        let mut errs = vec![0 as c_int; frames.len()];
        if frames.is_empty() {
            return Ok(MappingRw { fmem: Arc::clone(self), ptr: None, errs });
        }
        // SAFETY: `frames` and `errs` have `frames.len()` elements; the result is a fresh
        // mapping this value unmaps on drop.
        let ptr = unsafe {
            sys::xenforeignmemory_map(
                self.raw(),
                domid,
                libc::PROT_READ | libc::PROT_WRITE,
                frames.len(),
                frames.as_ptr(),
                errs.as_mut_ptr(),
            )
        };
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or_else(|| call_error("xenforeignmemory_map"))?;
        Ok(MappingRw { fmem: Arc::clone(self), ptr: Some(ptr), errs })
    }
}

/// Frames of another domain mapped writable; unmapped on drop (so no writable mapping of a
/// frame outlives the step that needed it: Xen refuses to make a frame a page table while a
/// writable mapping of it exists).
#[derive(Debug)]
pub(crate) struct MappingRw {
    fmem: Arc<ForeignMemory>,
    ptr: Option<NonNull<u8>>,
    errs: Vec<c_int>,
}

impl MappingRw {
    /// The errno of frame `i` (0: mapped); `EINVAL` beyond the mapping.
    pub(crate) fn error(&self, i: usize) -> i32 {
        self.errs.get(i).map_or(libc::EINVAL, |e| e.abs())
    }

    /// The address of frame `i` if it mapped.
    fn frame(&self, i: usize) -> Option<*mut u8> {
        let ptr = self.ptr?;
        if self.error(i) != 0 {
            return None;
        }
        // SAFETY: `i` < the number of frames (`error` is EINVAL otherwise), so the offset stays
        // inside the mapping.
        Some(unsafe { ptr.as_ptr().add(i * PAGE_SIZE) })
    }

    /// Copies `data` (one page) into frame `i`; `false` if it did not map or `data` is not a page.
    pub(crate) fn write(&self, i: usize, data: &[u8]) -> bool {
        let Some(dst) = self.frame(i).filter(|_| data.len() == PAGE_SIZE) else { return false };
        // SAFETY: frame `i` is mapped writable for PAGE_SIZE bytes; `data` is a distinct buffer
        // of that size. A raw copy: no Rust reference to the foreign frame is made.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), dst, PAGE_SIZE) };
        true
    }

    /// Copies frame `i` into `out` (one page); `false` if it did not map or `out` is not a page.
    pub(crate) fn read(&self, i: usize, out: &mut [u8]) -> bool {
        let Some(src) = self.frame(i).filter(|_| out.len() == PAGE_SIZE) else { return false };
        // SAFETY: frame `i` is mapped readable for PAGE_SIZE bytes; `out` is a distinct buffer.
        unsafe { std::ptr::copy_nonoverlapping(src, out.as_mut_ptr(), PAGE_SIZE) };
        true
    }

    /// One page of a PAGE_DATA record: writes `body` into frame `i`, or, with `compare`, reads
    /// frame `i` into `scratch` (one page) and calls `compare(pfn)` when it differs from `body`.
    /// Shared by the PV and HVM restore backends.
    ///
    /// Errors: the errno of a frame that did not map (`EFAULT` when it mapped but a buffer was
    /// not one page).
    pub(crate) fn put_page(
        &self,
        i: usize,
        pfn: u64,
        body: &[u8],
        scratch: &mut [u8],
        compare: &mut Option<&mut dyn FnMut(u64)>,
    ) -> Result<(), i32> {
        let errno = self.error(i);
        if errno != 0 {
            return Err(errno);
        }
        let done = match compare {
            Some(mismatch) => {
                let read = self.read(i, scratch);
                if read && scratch != body {
                    mismatch(pfn);
                }
                read
            }
            None => self.write(i, body),
        };
        if done { Ok(()) } else { Err(libc::EFAULT) }
    }
}

// SAFETY: the mapping is owned by this value and accessed only through raw copies.
unsafe impl Send for MappingRw {}

impl Drop for MappingRw {
    fn drop(&mut self) {
        if let Some(ptr) = self.ptr {
            // SAFETY: unmaps the `errs.len()` pages mapped by `map_rw`, once.
            unsafe { sys::xenforeignmemory_unmap(self.fmem.raw(), ptr.as_ptr().cast::<c_void>(), self.errs.len()) };
        }
    }
}

/// A file descriptor this process was given by its parent (libxl passes the stream's as a
/// decimal argument to its save helper), as a `File` that closes it on drop.
///
/// # Errors
/// `EBADF` if `fd` is negative, one of the standard streams, or not open.
pub fn inherited_fd(fd: i32) -> Result<std::fs::File, XenError> {
    use std::os::fd::FromRawFd;
    // SAFETY: fcntl(F_GETFD) only queries the descriptor.
    if fd <= 2 || unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return Err(XenError::Call { call: "an inherited file descriptor", errno: libc::EBADF });
    }
    // SAFETY: `fd` is open (checked above) and was handed to this process to own (libxl
    // dup()s it for the helper and never uses the helper's copy); nothing else in this
    // process wraps it.
    Ok(unsafe { std::fs::File::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restore_layouts_match_xen_4_17() {
        assert_eq!(size_of::<sys::vcpu_guest_context_x86_64_t>(), 5168);
        assert_eq!(size_of::<sys::mmuext_op>(), 24);
        // SAFETY-free: the union of xen_domctl is 128 bytes, enough for any EXTENDED blob libxc
        // accepts (at most 128).
        assert_eq!(size_of::<sys::xen_domctl__bindgen_ty_1>(), 128);
        assert_eq!(size_of::<sys::xen_domctl_vcpu_msr_t>(), 16);
        assert_eq!(sys::MMUEXT_PIN_L1_TABLE, 0);
        assert_eq!(sys::MMUEXT_PIN_L4_TABLE, 3);
    }

    #[test]
    fn standard_streams_are_not_adopted() {
        for fd in [-1, 0, 1, 2] {
            assert!(matches!(inherited_fd(fd), Err(XenError::Call { errno: libc::EBADF, .. })));
        }
    }
}
