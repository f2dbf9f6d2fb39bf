//! [`XenDomain`]: one running domain opened from dom0, its memory, pause and log-dirty
//! control under a [`DomainGuard`], and its vcpu state.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use sr_memory::{AtomicPfnBitmap, PfnBitmap};

use crate::control::{DomainControl, DomainGuard, SHUTDOWN_SUSPEND};
use crate::error::XenError;
use crate::ffi::{DomainInfo, ForeignMemory, TscInfo, XenCtrl, XenStore};
use crate::interrupt::Interrupt;
use crate::memory::{Addressing, XenMemory};

/// The kind of guest, as far as memory access goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DomainKind {
    /// x86 PV with guest words of `width` bytes (8: 64-bit).
    Pv {
        /// Bytes per guest word.
        width: u32,
    },
    /// x86 HVM or PVH (gfns map directly).
    Hvm,
}

/// libxenctrl behind a lock, a read-write xenstore connection opened on first use, and the
/// domain id: the [`DomainControl`] of the guard.
#[derive(Debug, Clone)]
pub struct Control {
    ctrl: Arc<Mutex<XenCtrl>>,
    xs: Arc<Mutex<Option<XenStore>>>,
    domid: u32,
    log_dirty: Arc<AtomicBool>,
}

impl Control {
    fn ctrl(&self) -> MutexGuard<'_, XenCtrl> {
        self.ctrl.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the read-write xenstore connection, opening it first if needed.
    fn with_xs<T>(&self, f: impl FnOnce(&XenStore) -> Result<T, XenError>) -> Result<T, XenError> {
        let mut xs = self.xs.lock().unwrap_or_else(|e| e.into_inner());
        if xs.is_none() {
            *xs = Some(XenStore::open_rw()?);
        }
        match xs.as_ref() {
            Some(xs) => f(xs),
            None => Err(XenError::Call { call: "xs_open", errno: libc::ENOTCONN }),
        }
    }

    /// `/local/domain/<domid>/control/shutdown`, the node of libxl's
    /// `libxl__domain_pvcontrol_xspath`.
    fn shutdown_path(&self) -> String {
        format!("/local/domain/{}/control/shutdown", self.domid)
    }
}

impl DomainControl for Control {
    fn pause(&self) -> Result<(), XenError> {
        self.ctrl().pause(self.domid)
    }
    fn unpause(&self) -> Result<(), XenError> {
        self.ctrl().unpause(self.domid)
    }
    fn set_log_dirty(&self, on: bool) -> Result<(), XenError> {
        let op = if on { xen_sys::XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY } else { xen_sys::XEN_DOMCTL_SHADOW_OP_OFF };
        if !on {
            // Stop reading the bitmap first: from here on the dirty sets are conservative.
            self.log_dirty.store(false, Ordering::SeqCst);
        }
        self.ctrl().shadow_op(self.domid, op)?;
        self.log_dirty.store(on, Ordering::SeqCst);
        Ok(())
    }
    fn request_suspend(&self) -> Result<(), XenError> {
        let path = self.shutdown_path();
        self.with_xs(|xs| xs.write(&path, "suspend"))
    }
    fn suspend_acked(&self) -> Result<bool, XenError> {
        let path = self.shutdown_path();
        self.with_xs(|xs| Ok(xs.read(&path).as_deref() != Some("suspend")))
    }
    fn cancel_suspend(&self) -> Result<bool, XenError> {
        let path = self.shutdown_path();
        self.with_xs(|xs| xs.replace_if(&path, "suspend", ""))
    }
    fn shutdown_reason(&self) -> Result<Option<u32>, XenError> {
        Ok(self.ctrl().domain_info(self.domid)?.shutdown_reason)
    }
    fn resume(&self) -> Result<(), XenError> {
        {
            let ctrl = self.ctrl();
            // Only a domain still suspended is resumed: a retry after a half-failed resume, or
            // a domain resumed by someone else, must not get its vcpu0 eax rewritten.
            if ctrl.domain_info(self.domid)?.shutdown_reason == Some(SHUTDOWN_SUSPEND) {
                ctrl.domain_resume(self.domid, true)?;
            }
        }
        let domid = self.domid;
        self.with_xs(|xs| xs.resume_domain(domid))
    }
}

/// A running domain opened for reading from dom0.
///
/// Dropping it puts the domain back as found (see [`DomainGuard`]); call
/// [`restore`](Self::restore) to see errors.
#[derive(Debug)]
pub struct XenDomain {
    info: DomainInfo,
    kind: DomainKind,
    memory: Arc<XenMemory>,
    guard: Mutex<DomainGuard<Control>>,
    interrupt: Interrupt,
}

/// What [`recover_domain`] found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// The domain no longer exists (a save that completed had destroyed it).
    Gone,
    /// It was suspended: it was resumed (suspend cancel), as a saver's guard would have.
    Resumed,
    /// It was not suspended: nothing to resume.
    Untouched,
    /// It is named `NAME--migratedaway`: a migration had handed it over (or was about to), so
    /// the receiver may run the guest; it was left as it was (suspended), for a person to
    /// decide, as `xl migrate` leaves it when the hand-over fails.
    HandedOver,
}

/// The suffix `xl migrate` gives the source domain's name just before it lets the receiver
/// start its copy (`tools/xl/xl_migrate.c`).
pub const MIGRATED_AWAY: &str = "--migratedaway";

/// Puts back a domain whose saver process died without cleaning up (killed with SIGKILL, or
/// crashed inside a library): log-dirty mode off (best effort: Xen refuses it when it was not
/// on) and, if the domain is shut down with reason suspend, the cooperative resume
/// (`xc_domain_resume` with suspend cancel, then `xs_resume_domain`) the saver's
/// [`DomainGuard`] would have done. For a supervising process; it never pauses or suspends.
pub fn recover_domain(domid: u32) -> Result<Recovery, XenError> {
    let ctrl = XenCtrl::open()?;
    let info = match ctrl.domain_info(domid) {
        Ok(info) => info,
        Err(XenError::NoSuchDomain { .. }) => return Ok(Recovery::Gone),
        Err(e) => return Err(e),
    };
    let _ = ctrl.shadow_op(domid, xen_sys::XEN_DOMCTL_SHADOW_OP_OFF);
    if domain_name(domid)?.is_some_and(|n| n.ends_with(MIGRATED_AWAY)) {
        return Ok(Recovery::HandedOver);
    }
    if info.shutdown_reason != Some(SHUTDOWN_SUSPEND) {
        return Ok(Recovery::Untouched);
    }
    ctrl.domain_resume(domid, true)?;
    XenStore::open_rw()?.resume_domain(domid)?;
    Ok(Recovery::Resumed)
}

/// The domain's name (xenstore's `/local/domain/DOMID/name`, as `xl list` shows it), if it
/// has one.
///
/// # Errors
/// [`XenError`] when xenstore cannot be opened.
pub fn domain_name(domid: u32) -> Result<Option<String>, XenError> {
    Ok(XenStore::open()?.read(&format!("/local/domain/{domid}/name")))
}

/// Resolves `DOMID` or a domain name (xenstore's `/local/domain/*/name`, as `xl domid` does).
pub fn resolve_domain(domain: &str) -> Result<u32, XenError> {
    if let Ok(id) = domain.parse::<u32>() {
        return Ok(id);
    }
    let xs = XenStore::open()?;
    for id in xs.directory("/local/domain") {
        if xs.read(&format!("/local/domain/{id}/name")).as_deref() == Some(domain)
            && let Ok(id) = id.parse()
        {
            return Ok(id);
        }
    }
    Err(XenError::NoSuchDomain { domain: domain.to_string() })
}

impl XenDomain {
    /// Opens domain `domid`: libxenctrl and foreign-memory handles, the domain's kind and, for
    /// PV, the host m2p and the guest's p2m (read while it runs;
    /// [`refresh_p2m`](Self::refresh_p2m) rereads it once paused).
    pub fn open(domid: u32, interrupt: Interrupt) -> Result<Self, XenError> {
        let ctrl = XenCtrl::open()?;
        let info = ctrl.domain_info(domid)?;
        if info.shutdown {
            return Err(XenError::NotRunning { domid });
        }
        let fmem = Arc::new(ForeignMemory::open()?);
        let (kind, addressing, pfn_limit) = if info.hvm {
            let max_gpfn = ctrl.maximum_gpfn(domid)?;
            let limit = max_gpfn.checked_add(1).filter(|&l| l <= sr_memory::MAX_PFN_LIMIT);
            let limit = limit.ok_or(XenError::Layout { what: "maximum gpfn", value: max_gpfn })?;
            (DomainKind::Hvm, Addressing::Hvm, limit)
        } else {
            let width = ctrl.guest_width(domid)?;
            if width != 8 {
                return Err(XenError::Width { width });
            }
            let max_mfn = ctrl.maximum_ram_page()?;
            let m2p = ctrl.map_m2p(max_mfn)?;
            let addressing = Addressing::Pv {
                width,
                shared_info_mfn: info.shared_info_frame,
                m2p,
                max_mfn,
                p2m: RwLock::new(Vec::new()),
            };
            // Until the p2m is read, its size bounds nothing: use sr-memory's cap, then shrink.
            (DomainKind::Pv { width }, addressing, sr_memory::MAX_PFN_LIMIT)
        };
        let ctrl = Arc::new(Mutex::new(ctrl));
        let log_dirty = Arc::new(AtomicBool::new(false));
        let mut memory = XenMemory {
            domid,
            ctrl: Arc::clone(&ctrl),
            fmem,
            addressing,
            windows: Mutex::new(std::collections::HashMap::new()),
            pfn_limit,
            populated: RwLock::new(PfnBitmap::new(0)),
            log_dirty: AtomicBool::new(false),
            pending: Mutex::new(PfnBitmap::new(0)),
            unreadable: AtomicPfnBitmap::new(0),
            failure: Mutex::new(None),
            interrupt: interrupt.clone(),
            mapped_batches: AtomicU64::new(0),
            p2m_frames: RwLock::new(Vec::new()),
            quiesced: AtomicBool::new(false),
            compare: std::sync::OnceLock::new(),
        };
        match kind {
            DomainKind::Pv { .. } => {
                let (p2m, backed) = memory.read_pv_p2m()?;
                // The p2m's size at open bounds every later read of it.
                memory.pfn_limit = p2m.len() as u64;
                memory.populated = RwLock::new(PfnBitmap::new(memory.pfn_limit));
                memory.pending = Mutex::new(PfnBitmap::new(memory.pfn_limit));
                memory.install_p2m(p2m, &backed)?;
            }
            DomainKind::Hvm => {
                let mut all = PfnBitmap::new(pfn_limit);
                for p in 0..pfn_limit {
                    all.set(p);
                }
                memory.populated = RwLock::new(all);
            }
        }
        memory.pending = Mutex::new(PfnBitmap::new(memory.pfn_limit));
        memory.unreadable = AtomicPfnBitmap::new(memory.pfn_limit);
        let memory = Arc::new(memory);
        let control = Control { ctrl, xs: Arc::new(Mutex::new(None)), domid, log_dirty };
        Ok(Self { info, kind, memory, guard: Mutex::new(DomainGuard::new(control)), interrupt })
    }

    /// What Xen said about the domain when it was opened.
    pub fn info(&self) -> DomainInfo {
        self.info
    }

    /// The domain id.
    pub fn domid(&self) -> u32 {
        self.info.domid
    }

    /// PV (with its width) or HVM.
    pub fn kind(&self) -> DomainKind {
        self.kind
    }

    /// The domain's memory as a [`sr_memory::GuestMemory`].
    pub fn memory(&self) -> &Arc<XenMemory> {
        &self.memory
    }

    /// The interrupt flag this domain's reads check.
    pub fn interrupt(&self) -> &Interrupt {
        &self.interrupt
    }

    fn guard(&self) -> MutexGuard<'_, DomainGuard<Control>> {
        self.guard.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Pauses the domain (undone by [`unpause`](Self::unpause), [`restore`](Self::restore) or
    /// drop).
    pub fn pause(&self) -> Result<(), XenError> {
        self.guard().pause()
    }

    /// Releases this process's pause.
    pub fn unpause(&self) -> Result<(), XenError> {
        self.guard().unpause()
    }

    /// Turns log-dirty mode on and starts the memory's dirty log (the first
    /// [`take_dirty`](sr_memory::GuestMemory::take_dirty) after this clears the bitmap).
    pub fn enable_log_dirty(&self) -> Result<(), XenError> {
        let mut g = self.guard();
        g.enable_log_dirty()?;
        self.memory.log_dirty.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// Turns log-dirty mode off (the dirty log then reports everything).
    pub fn disable_log_dirty(&self) -> Result<(), XenError> {
        self.memory.log_dirty.store(false, Ordering::SeqCst);
        self.guard().disable_log_dirty()
    }

    /// Whether this process holds log-dirty mode on.
    pub fn log_dirty(&self) -> bool {
        self.guard().log_dirty()
    }

    /// Suspends the guest cooperatively as libxl does for a PV guest
    /// (`tools/libs/light/libxl_dom_suspend.c`): writes `suspend` to
    /// `/local/domain/<id>/control/shutdown`, then waits (looking every
    /// [`SUSPEND_POLL`](crate::SUSPEND_POLL), checking the [`Interrupt`] flag) until the guest
    /// acknowledged it (the node no longer holds `suspend`) and Xen reports the domain shut
    /// down with reason `SHUTDOWN_suspend`, within `timeout`. Returns how long that took (the
    /// start of the guest's downtime is the request).
    ///
    /// From then on [`restore`](Self::restore) and drop resume the guest (suspend cancel, as
    /// `xl save -c`) unless [`destroy`](Self::destroy) or [`resume`](Self::resume) was called.
    /// The suspended domain is not paused by the toolstack (as with Xen's saver); its memory,
    /// page types and vcpu state stay readable.
    ///
    /// Errors: the domain is paused ([`XenError::Paused`]: its guest could not answer) or
    /// already shut down ([`XenError::NotRunning`]); it shut down for another reason
    /// ([`XenError::UnexpectedShutdown`]); on timeout ([`XenError::SuspendTimeout`]) or a
    /// signal ([`XenError::Interrupted`]) an unacknowledged request is withdrawn (libxl writes
    /// "" over it in a transaction if it still holds `suspend`, and so does this), and a guest
    /// that acknowledged is given [`SUSPEND_GRACE`](crate::SUSPEND_GRACE) to finish, then
    /// resumed on the way out.
    pub fn suspend(&self, timeout: std::time::Duration) -> Result<std::time::Duration, XenError> {
        let mut g = self.guard();
        if g.is_suspended() {
            return Ok(std::time::Duration::ZERO);
        }
        let now = self.ctrl().domain_info(self.info.domid)?;
        if now.paused {
            return Err(XenError::Paused { domid: self.info.domid });
        }
        g.suspend(timeout, &self.interrupt, self.info.domid)
    }

    /// Resumes a domain this process suspended (suspend cancel, as `xl save -c` does: the
    /// guest's suspend hypercall returns 1 and it carries on in place; `xc_domain_resume` with
    /// `fast` = 1, then `xs_resume_domain`); a no-op if it is not suspended by this process.
    pub fn resume(&self) -> Result<(), XenError> {
        // The guest writes its memory again: no more lending of its frames.
        self.memory.set_quiesced(false);
        self.guard().resume()
    }

    /// Whether Xen reports the domain shut down with reason suspend now
    /// (`XEN_DOMCTL_getdomaininfo`), whoever suspended it.
    pub fn suspended_now(&self) -> Result<bool, XenError> {
        Ok(self.ctrl().domain_info(self.info.domid)?.shutdown_reason == Some(SHUTDOWN_SUSPEND))
    }

    /// The domain's configuration as `xl save` puts it in the xl header (`save_domain_core_begin`
    /// of `tools/xl/xl_saverestore.c`): `libxl_retrieve_domain_configuration`, `c_info.domid`
    /// 0 (xl's default without `-D`), `libxl_domain_config_to_json`; the JSON bytes including
    /// the terminating NUL (xl's `config_len` counts it). libxl warnings go to standard error.
    ///
    /// Errors: [`XenError::Libxl`] (e.g. a domain libxl did not create, so it keeps no config).
    pub fn config_json(&self) -> Result<Vec<u8>, XenError> {
        crate::libxl::Libxl::open()?.domain_config_json(self.info.domid)
    }

    /// Destroys the domain as `xl save` does after a successful save
    /// (`libxl_domain_destroy`, synchronous), after turning log-dirty mode off and dropping
    /// this process's foreign mappings of its memory (a mapped page would keep the dying
    /// domain's memory allocated). Disarms the guard: nothing is resumed or unpaused
    /// afterwards. The memory is not readable afterwards.
    ///
    /// Errors: [`XenError::Libxl`]; the guard then stays armed (a domain that survived is
    /// resumed on the way out).
    pub fn destroy(&self) -> Result<(), XenError> {
        let mut g = self.guard();
        self.memory.log_dirty.store(false, Ordering::SeqCst);
        // Best effort: the domain goes anyway, and Xen drops log-dirty state with it.
        let _ = g.disable_log_dirty();
        self.memory.forget_all_windows();
        crate::libxl::Libxl::open()?.destroy(self.info.domid)?;
        g.disarm();
        Ok(())
    }

    /// Leaves the domain as it is now (suspended) when this process ends: log-dirty off, and
    /// the guard disarmed, so that nothing resumes or unpauses it. For a migration whose
    /// hand-over failed after the receiver was told to start its copy: resuming this one
    /// could run the guest twice.
    pub fn leave_suspended(&self) {
        let mut g = self.guard();
        self.memory.log_dirty.store(false, Ordering::SeqCst);
        let _ = g.disable_log_dirty();
        g.disarm();
    }

    /// Puts the domain back as found: log-dirty off, then unpause, then resume it if this
    /// process suspended it (every step tried; the first error returned).
    pub fn restore(&self) -> Result<(), XenError> {
        self.memory.log_dirty.store(false, Ordering::SeqCst);
        self.memory.set_quiesced(false);
        self.guard().restore()
    }

    /// PV: rereads the p2m (normally once paused, for a consistent image) and queues the pfns
    /// whose frame changed into the next dirty set; returns how many. HVM: 0.
    pub fn refresh_p2m(&self) -> Result<u64, XenError> {
        if self.memory.pv_layout().is_none() {
            return Ok(0);
        }
        let (p2m, backed) = self.memory.read_pv_p2m()?;
        self.memory.install_p2m(p2m, &backed)
    }

    /// PV: each online vcpu's `vcpu_guest_context` (Xen's layout for the guest's width, machine
    /// frames not normalised), by vcpu id. HVM: empty (see [`hvm_context`](Self::hvm_context)).
    pub fn vcpu_contexts(&self) -> Result<Vec<(u32, Vec<u8>)>, XenError> {
        let DomainKind::Pv { width } = self.kind else { return Ok(Vec::new()) };
        let ctrl = self.memory.ctrl.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        for vcpu in 0..=self.info.max_vcpu_id {
            if let Some(ctx) = ctrl.vcpu_context(self.info.domid, vcpu, width)? {
                out.push((vcpu, ctx));
            }
        }
        Ok(out)
    }

    /// HVM: the HVM context blob (`xc_domain_hvm_getcontext`), the body of an HVM_CONTEXT
    /// record, with every vcpu's CPU registers. PV: `None`.
    pub fn hvm_context(&self) -> Result<Option<Vec<u8>>, XenError> {
        if self.kind != DomainKind::Hvm {
            return Ok(None);
        }
        let ctrl = self.memory.ctrl.lock().unwrap_or_else(|e| e.into_inner());
        ctrl.hvm_context(self.info.domid).map(Some)
    }

    fn ctrl(&self) -> MutexGuard<'_, XenCtrl> {
        self.memory.ctrl.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Xen's page type of each machine frame (`xc_get_pfn_type_batch`, i.e.
    /// `XEN_DOMCTL_getpageframeinfo3`, in batches of at most [`PAGE_TYPE_BATCH`](crate::PAGE_TYPE_BATCH)
    /// frames, as Xen's saver asks in `write_batch` of `tools/libs/guest/xg_sr_save.c`), as the
    /// 4-bit nibble of the stream's PAGE_DATA pfn word (`XEN_DOMCTL_PFINFO_*` >> 28): 0 NOTAB,
    /// 1..=4 L1TAB..L4TAB, +8 pinned (LPINTAB), 0xd BROKEN, 0xf XTAB (absent or special
    /// frame); 0xe XALLOC never comes from Xen. For HVM the frames are gfns.
    ///
    /// Errors: `mfns.len() != out.len()` or an answer outside bits 28-31
    /// ([`XenError::Layout`]), or the hypercall's errno ([`XenError::Call`]).
    pub fn frame_types(&self, mfns: &[u64], out: &mut [u8]) -> Result<(), XenError> {
        self.ctrl().page_types(self.info.domid, mfns, out)
    }

    /// `XEN_DOMCTL_get_ext_vcpucontext` for `vcpu`: the bytes Xen's saver sends as the body of
    /// X86_PV_VCPU_EXTENDED after the vcpu header (`struct xen_domctl_ext_vcpucontext`, its
    /// first `size` bytes as Xen reports them: 64 in Xen 4.17; `write_one_vcpu_extended` in
    /// `tools/libs/guest/xg_sr_save_x86_pv.c`; the saver skips the record when `size` is 0).
    pub fn vcpu_extended(&self, vcpu: u32) -> Result<Vec<u8>, XenError> {
        self.ctrl().ext_vcpu_context(self.info.domid, vcpu)
    }

    /// `XEN_DOMCTL_getvcpuextstate` for `vcpu`: the X86_PV_VCPU_XSAVE body (`xcr0`,
    /// `xcr0_accum`, then the xsave area; `write_one_vcpu_xsave`): a size query first, then the
    /// state into a hypercall buffer. `None` when Xen reports no xsave feature or size 0 (no
    /// record).
    pub fn vcpu_xsave(&self, vcpu: u32) -> Result<Option<Vec<u8>>, XenError> {
        self.ctrl().vcpu_ext_state(self.info.domid, vcpu)
    }

    /// `XEN_DOMCTL_get_vcpu_msrs` for `vcpu`: the X86_PV_VCPU_MSRS body, an array of
    /// `xen_domctl_vcpu_msr_t` (16 bytes each: `u32` index, `u32` reserved, `u64` value;
    /// `write_one_vcpu_msrs`). `None` when Xen reports 0 MSRs (no record; Xen skips MSRs whose
    /// value is 0).
    pub fn vcpu_msrs(&self, vcpu: u32) -> Result<Option<Vec<u8>>, XenError> {
        self.ctrl().vcpu_msrs(self.info.domid, vcpu)
    }

    /// The domain's CPU policy as Xen's saver serialises it into X86_CPUID_POLICY and
    /// X86_MSR_POLICY (`xc_cpu_policy_get_domain` + `xc_cpu_policy_serialise` of libxenguest,
    /// `write_x86_cpu_policy_records` in `tools/libs/guest/xg_sr_common_x86.c`): CPUID leaves
    /// as `[leaf, subleaf, a, b, c, d]` (`xen_cpuid_leaf_t`) and MSRs as `(index, flags,
    /// value)` (`xen_msr_entry_t`).
    #[allow(clippy::type_complexity)]
    pub fn cpu_policy(&self) -> Result<(Vec<[u32; 6]>, Vec<(u32, u32, u64)>), XenError> {
        self.ctrl().cpu_policy(self.info.domid)
    }

    /// `xc_domain_get_tsc_info`: the X86_TSC_INFO record's fields (`write_x86_tsc_info`).
    pub fn tsc_info(&self) -> Result<TscInfo, XenError> {
        self.ctrl().tsc_info(self.info.domid)
    }

    /// The hypervisor's (major, minor) version, as Xen's saver writes it in the domain header.
    pub fn xen_version(&self) -> Result<(u32, u32), XenError> {
        self.memory.ctrl.lock().unwrap_or_else(|e| e.into_inner()).xen_version()
    }

    /// Whether Xen reports the domain paused now (by anyone).
    pub fn paused_now(&self) -> Result<bool, XenError> {
        let ctrl = self.memory.ctrl.lock().unwrap_or_else(|e| e.into_inner());
        ctrl.domain_info(self.info.domid).map(|i| i.paused)
    }
}

impl Drop for XenDomain {
    fn drop(&mut self) {
        let _ = self.restore();
    }
}
