//! [`XenDomain`]: one running domain opened from dom0, its memory, pause and log-dirty
//! control under a [`DomainGuard`], and its vcpu state.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use sr_memory::{AtomicPfnBitmap, PfnBitmap};

use crate::control::{DomainControl, DomainGuard, SHUTDOWN_SUSPEND};
use crate::device_model::{DeviceModel, GuestType, guest_type};
use crate::error::XenError;
use crate::ffi::{DomainInfo, ForeignMemory, TscInfo, XenCtrl, XenStore};
use crate::ffi_hvm::{HVM_PARAM_ACPI_S_STATE, HVM_PARAM_CALLBACK_IRQ};
use crate::hvm::GfnScanInfo;
use crate::interrupt::Interrupt;
use crate::memory::{Addressing, XenMemory};
use crate::supervise::{held, note};

/// Why a 32-bit PV domain is refused, in words (the dump, `save --domain` and `send
/// --domain` all stop at [`XenDomain::open`]).
pub const PV32_REFUSAL: &str = "it is a 32-bit PV guest: xsr dumps and saves 64-bit x86 PV, PVH and HVM domains only; \
     a 32-bit PV guest's p2m (32-bit entries), page tables (3-level PAE, normalised mfn to pfn as Xen's saver does) \
     and vcpu context (the 32-bit compat layout) are not implemented";

/// How a suspend is asked of the guest (libxl's choice in `domain_suspend_callback_common`,
/// `tools/libs/light/libxl_dom_suspend.c`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SuspendBy {
    /// `suspend` into `control/shutdown` in xenstore; the guest's PV drivers suspend it (PV
    /// guests, PVH guests, HVM guests with PV drivers).
    Xenstore,
    /// `xc_domain_shutdown(SHUTDOWN_suspend)` from outside: an HVM guest without PV drivers
    /// (`HVM_PARAM_CALLBACK_IRQ` 0) or in an ACPI sleep state; the guest does not take part.
    Hypercall,
}

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
    /// The device model, for an HVM domain.
    dm: Option<DeviceModel>,
    /// How the next suspend is asked.
    suspend_by: Arc<Mutex<SuspendBy>>,
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

impl Control {
    fn suspend_by(&self) -> SuspendBy {
        *self.suspend_by.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn dm(&self) -> Result<&DeviceModel, XenError> {
        self.dm.as_ref().ok_or(XenError::Unsupported { domid: self.domid, what: "it has no device model".into() })
    }
}

impl DomainControl for Control {
    fn pause(&self) -> Result<(), XenError> {
        self.ctrl().pause(self.domid)?;
        note(held::PAUSED, true);
        Ok(())
    }
    fn unpause(&self) -> Result<(), XenError> {
        self.ctrl().unpause(self.domid)?;
        note(held::PAUSED, false);
        Ok(())
    }
    fn set_log_dirty(&self, on: bool) -> Result<(), XenError> {
        let op = if on { xen_sys::XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY } else { xen_sys::XEN_DOMCTL_SHADOW_OP_OFF };
        if !on {
            // Stop reading the bitmap first: from here on the dirty sets are conservative.
            self.log_dirty.store(false, Ordering::SeqCst);
        } else {
            // Held from the request on, in case this process dies inside it.
            note(held::LOG_DIRTY, true);
        }
        let r = self.ctrl().shadow_op(self.domid, op);
        if !on || r.is_err() {
            // Off, or refused: not held. A refused request left it off (Xen refuses log-dirty
            // mode for PV guests where it has no shadow paging, EOPNOTSUPP), and turning off
            // what never went on fails there (EINVAL): a supervisor must not try it.
            note(held::LOG_DIRTY, false);
        }
        r?;
        self.log_dirty.store(on, Ordering::SeqCst);
        Ok(())
    }
    fn request_suspend(&self) -> Result<(), XenError> {
        match self.suspend_by() {
            SuspendBy::Xenstore => {
                let path = self.shutdown_path();
                self.with_xs(|xs| xs.write(&path, "suspend"))
            }
            SuspendBy::Hypercall => self.ctrl().domain_shutdown(self.domid, SHUTDOWN_SUSPEND),
        }
    }
    fn suspend_acked(&self) -> Result<bool, XenError> {
        if self.suspend_by() == SuspendBy::Hypercall {
            // The guest does not take part (libxl sets guest_responded at once).
            return Ok(true);
        }
        let path = self.shutdown_path();
        self.with_xs(|xs| Ok(xs.read(&path).as_deref() != Some("suspend")))
    }
    fn cancel_suspend(&self) -> Result<bool, XenError> {
        if self.suspend_by() == SuspendBy::Hypercall {
            return Ok(false);
        }
        let path = self.shutdown_path();
        self.with_xs(|xs| xs.replace_if(&path, "suspend", ""))
    }
    fn set_dm_log_dirty(&self, on: bool) -> Result<(), XenError> {
        let dm = self.dm()?;
        if on {
            // Held once QEMU has the command: turning it off when it is not on makes QEMU abort.
            dm.set_log_dirty(true, || note(held::DM_LOG_DIRTY, true))
        } else {
            // Released before the request, for the same reason.
            note(held::DM_LOG_DIRTY, false);
            dm.set_log_dirty(false, || {})
        }
    }
    fn stop_dm(&self) -> Result<(), XenError> {
        note(held::DM_STOPPED, true);
        self.dm()?.stop()
    }
    fn cont_dm(&self) -> Result<(), XenError> {
        self.dm()?.cont()?;
        note(held::DM_STOPPED, false);
        Ok(())
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
    guest_type: GuestType,
    memory: Arc<XenMemory>,
    guard: Mutex<DomainGuard<Control>>,
    interrupt: Interrupt,
    /// The last gfn scan (HVM/PVH).
    scan: Mutex<Option<GfnScanInfo>>,
    /// The device model's `physmap` ranges (gfns), where a gfn scan looks early.
    hints: Vec<std::ops::Range<u64>>,
}

/// What [`recover_domain`] found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// The domain no longer exists (a save that completed had destroyed it).
    Gone,
    /// It was suspended: it was resumed (suspend cancel), as a saver's guard would have,
    /// after what the process held (`released`, [`held`](crate::held) bits) was released.
    Resumed {
        /// What was released.
        released: u8,
    },
    /// It was not suspended; what the process held (`released`) was released (0: nothing).
    Released {
        /// What was released.
        released: u8,
    },
    /// It is named `NAME--migratedaway`: a migration had handed it over (or was about to), so
    /// the receiver may run the guest; log-dirty modes were turned off but it was otherwise left
    /// as it was (suspended), for a person to decide, as `xl migrate` leaves it when the
    /// hand-over fails.
    HandedOver,
}

/// The suffix `xl migrate` gives the source domain's name just before it lets the receiver
/// start its copy (`tools/xl/xl_migrate.c`).
pub const MIGRATED_AWAY: &str = "--migratedaway";

/// Puts back a domain whose saver or dumper process died without cleaning up (killed with
/// SIGKILL, or crashed inside a library), given what that process reported holding
/// ([`held`](crate::held) bits, see [`supervise`](crate::supervise)): in the order its
/// [`DomainGuard`] would have, log-dirty mode off, the device model's log-dirty mode off, then,
/// unless the domain was handed over to a migration's receiver ([`Recovery::HandedOver`]), the
/// pause released, the device model's `cont`, and, if the domain is shut down with reason
/// suspend, the cooperative resume (`xc_domain_resume` with suspend cancel, then
/// `xs_resume_domain`). It never pauses or suspends; every step is tried, the first error is
/// returned.
pub fn recover_domain(domid: u32, holding: u8) -> Result<Recovery, XenError> {
    let ctrl = XenCtrl::open()?;
    let info = match ctrl.domain_info(domid) {
        Ok(info) => info,
        Err(XenError::NoSuchDomain { .. }) => return Ok(Recovery::Gone),
        Err(e) => return Err(e),
    };
    let mut result = Ok(());
    let mut keep = |r: Result<(), XenError>| {
        if let Err(e) = r
            && result.is_ok()
        {
            result = Err(e);
        }
    };
    if holding & held::LOG_DIRTY != 0 {
        keep(ctrl.shadow_op(domid, xen_sys::XEN_DOMCTL_SHADOW_OP_OFF));
    }
    let dm = if holding & (held::DM_LOG_DIRTY | held::DM_STOPPED) != 0 {
        match XenStore::open().and_then(|xs| DeviceModel::find(&xs, &info)) {
            Ok(dm) => dm,
            Err(e) => {
                keep(Err(e));
                None
            }
        }
    } else {
        None
    };
    if let Some(dm) = &dm
        && holding & held::DM_LOG_DIRTY != 0
    {
        keep(dm.set_log_dirty(false, || {}));
    }
    match domain_name(domid) {
        Ok(Some(name)) if name.ends_with(MIGRATED_AWAY) => return result.map(|()| Recovery::HandedOver),
        Ok(_) => {}
        Err(e) => keep(Err(e)),
    }
    if holding & held::PAUSED != 0 {
        keep(ctrl.unpause(domid));
    }
    if let Some(dm) = &dm
        && holding & held::DM_STOPPED != 0
    {
        keep(dm.cont());
    }
    let outcome = if info.shutdown_reason == Some(SHUTDOWN_SUSPEND) {
        keep(ctrl.domain_resume(domid, true));
        keep(XenStore::open_rw().and_then(|xs| xs.resume_domain(domid)));
        Recovery::Resumed { released: holding }
    } else {
        Recovery::Released { released: holding }
    };
    result.map(|()| outcome)
}

/// The gfn ranges of the device model's `physmap` entries (`start_addr` and `size`, hex, under
/// `/local/domain/0/device-model/<domid>/physmap/<id>/`: QEMU's VRAM and ROMs), where a gfn
/// scan looks early. Entries that do not parse are left out (they only order the scan).
fn physmap_hints(domid: u32) -> Result<Vec<std::ops::Range<u64>>, XenError> {
    let xs = XenStore::open()?;
    let root = format!("/local/domain/0/device-model/{domid}/physmap");
    let hex = |p: String| u64::from_str_radix(p.trim_start_matches("0x"), 16).ok();
    Ok(xs
        .directory(&root)
        .into_iter()
        .filter_map(|e| {
            let start = xs.read(&format!("{root}/{e}/start_addr")).and_then(hex)? >> 12;
            let size = xs.read(&format!("{root}/{e}/size")).and_then(hex)?;
            Some(start..start.checked_add(size.div_ceil(4096))?)
        })
        .collect())
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
        Self::open_with(domid, interrupt, true)
    }

    /// Opens domain `domid` as [`open`](Self::open) does, but leaves its device model to the
    /// toolstack: when xsr is libxl's save helper, libxl switches QEMU's log-dirty mode
    /// (the `switch_qemu_logdirty` callback), stops QEMU and saves its state itself (in its
    /// `suspend` callback) and writes the EMULATOR records around the libxc stream, so this
    /// process never talks to QEMU ([`has_device_model`](Self::has_device_model) is `false`,
    /// and an HVM domain with a device model xsr does not drive, such as qemu-traditional or a
    /// stub domain, is taken too).
    pub fn open_for_toolstack(domid: u32, interrupt: Interrupt) -> Result<Self, XenError> {
        Self::open_with(domid, interrupt, false)
    }

    fn open_with(domid: u32, interrupt: Interrupt, device_model: bool) -> Result<Self, XenError> {
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
            if width == 4 {
                return Err(XenError::Unsupported { domid, what: PV32_REFUSAL.into() });
            }
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
        let mut scan = None;
        let mut hints = Vec::new();
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
            broken: Mutex::new(Vec::new()),
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
                hints = physmap_hints(domid)?;
                let scanned = {
                    let ctrl = memory.ctrl.lock().unwrap_or_else(|e| e.into_inner());
                    crate::hvm::scan_gfns(&ctrl, domid, pfn_limit, &hints, &interrupt)?
                };
                scan = Some(scanned.info);
                memory.populated = RwLock::new(scanned.populated);
                memory.broken = Mutex::new(scanned.broken);
            }
        }
        memory.pending = Mutex::new(PfnBitmap::new(memory.pfn_limit));
        memory.unreadable = AtomicPfnBitmap::new(memory.pfn_limit);
        let memory = Arc::new(memory);
        let xs = XenStore::open()?;
        let guest_type = guest_type(&xs, &info);
        let dm = if device_model { DeviceModel::find(&xs, &info)? } else { None };
        let control = Control {
            ctrl,
            xs: Arc::new(Mutex::new(None)),
            domid,
            log_dirty,
            dm,
            suspend_by: Arc::new(Mutex::new(SuspendBy::Xenstore)),
        };
        Ok(Self {
            info,
            kind,
            guest_type,
            memory,
            guard: Mutex::new(DomainGuard::new(control)),
            interrupt,
            scan: Mutex::new(scan),
            hints,
        })
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
        let by = self.suspend_method()?;
        // A paused guest cannot answer; one suspended from outside need not.
        if now.paused && by == SuspendBy::Xenstore {
            return Err(XenError::Paused { domid: self.info.domid });
        }
        *g.control().suspend_by.lock().unwrap_or_else(|e| e.into_inner()) = by;
        g.suspend(timeout, &self.interrupt, self.info.domid)
    }

    /// How libxl would ask this guest to suspend (`domain_suspend_callback_common`): for an
    /// HVM or PVH guest it reads `HVM_PARAM_CALLBACK_IRQ` (PV drivers present) and
    /// `HVM_PARAM_ACPI_S_STATE`; a guest in S0 that published a suspend event channel
    /// (`device/suspend/event-channel`, non-empty) is asked through it; an HVM guest without PV
    /// drivers, or asleep, is shut down with reason suspend from outside; every other guest
    /// through xenstore `control/shutdown`.
    ///
    /// Errors: [`XenError::Unsupported`] for the event-channel case, which xsr does not drive
    /// (Linux does not publish one; Windows PV drivers do).
    pub fn suspend_method(&self) -> Result<SuspendBy, XenError> {
        let domid = self.info.domid;
        let (pvdrv, s_state) = if self.info.hvm {
            let ctrl = self.ctrl();
            (ctrl.hvm_param(domid, HVM_PARAM_CALLBACK_IRQ)?, ctrl.hvm_param(domid, HVM_PARAM_ACPI_S_STATE)?)
        } else {
            (0, 0)
        };
        let port = XenStore::open()?
            .read(&format!("/local/domain/{domid}/device/suspend/event-channel"))
            .filter(|p| !p.is_empty());
        if s_state == 0
            && let Some(port) = port
        {
            return Err(XenError::Unsupported {
                domid,
                what: format!(
                    "the guest asks to be suspended through its suspend event channel (port {port} in \
                     device/suspend/event-channel), which xsr does not drive: libxl notifies it with \
                     xc_suspend_evtchn_init_exclusive"
                ),
            });
        }
        if self.guest_type == GuestType::Hvm && (pvdrv == 0 || s_state != 0) {
            return Ok(SuspendBy::Hypercall);
        }
        Ok(SuspendBy::Xenstore)
    }

    /// The type libxl gave the domain (PV, PVH or HVM).
    pub fn guest_type(&self) -> GuestType {
        self.guest_type
    }

    /// Whether the domain has a device model this process drives (upstream QEMU of an HVM
    /// domain).
    pub fn has_device_model(&self) -> bool {
        self.guard().control().dm.is_some()
    }

    /// HVM/PVH: how the last search for the populated gfns went (at open, or the last
    /// [`refresh_p2m`](Self::refresh_p2m)). PV: `None`.
    pub fn gfn_scan(&self) -> Option<GfnScanInfo> {
        *self.scan.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Turns the device model's log-dirty mode on (QMP `xen-set-global-dirty-log`, as Xen's
    /// HVM saver has libxl do in its `setup`), held by the guard until
    /// [`disable_device_model_log_dirty`](Self::disable_device_model_log_dirty) or the way
    /// out. A no-op without a device model (PV, PVH).
    pub fn enable_device_model_log_dirty(&self) -> Result<(), XenError> {
        let mut g = self.guard();
        if g.control().dm.is_none() {
            return Ok(());
        }
        g.enable_dm_log_dirty()
    }

    /// Turns the device model's log-dirty mode off, if this process turned it on.
    pub fn disable_device_model_log_dirty(&self) -> Result<(), XenError> {
        self.guard().disable_dm_log_dirty()
    }

    /// The device model's state once the guest is suspended, as libxl takes it
    /// (`libxl__qmp_suspend_save`): QMP `stop` (held by the guard: `cont` on the way out or at
    /// [`resume`](Self::resume)), then `xen-save-devices-state` into a memfd passed with
    /// `add-fd`; `live` is passed on to QEMU (a migration rather than a snapshot). Returns
    /// QEMU's bytes, the EMULATOR_CONTEXT payload.
    ///
    /// Errors: [`XenError::Unsupported`] without a device model; [`XenError::Qmp`].
    pub fn save_device_model(&self, live: bool) -> Result<Vec<u8>, XenError> {
        let mut g = self.guard();
        let Some(dm) = g.control().dm.clone() else {
            return Err(XenError::Unsupported { domid: self.info.domid, what: "it has no device model".into() });
        };
        g.stop_dm()?;
        dm.save_state(live)
    }

    /// The EMULATOR_XENSTORE_DATA payload of the device model (its `physmap` entries; empty
    /// when it has none or there is no device model).
    pub fn device_model_xenstore_data(&self) -> Result<Vec<u8>, XenError> {
        let dm = self.guard().control().dm.clone();
        match dm {
            Some(dm) => dm.xenstore_data(&XenStore::open()?),
            None => Ok(Vec::new()),
        }
    }

    /// The device model's run state (QMP `query-status`: `running`, `paused`, ...), `None`
    /// without a device model.
    pub fn device_model_status(&self) -> Result<Option<String>, XenError> {
        let dm = self.guard().control().dm.clone();
        dm.map(|dm| dm.status()).transpose()
    }

    /// The HVM params Xen's saver sends (`write_hvm_params` of
    /// `tools/libs/guest/xg_sr_save_x86_hvm.c`), in its order, the non-zero ones only: the
    /// HVM_PARAMS record's entries. Empty for PV.
    pub fn hvm_params(&self) -> Result<Vec<(u64, u64)>, XenError> {
        if !self.info.hvm {
            return Ok(Vec::new());
        }
        let ctrl = self.ctrl();
        let mut out = Vec::new();
        for index in crate::hvm::SAVED_PARAMS {
            let value = ctrl.hvm_param(self.info.domid, index)?;
            if value != 0 {
                out.push((u64::from(index), value));
            }
        }
        Ok(out)
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
    /// whose frame changed into the next dirty set; returns how many. HVM/PVH: asks Xen the
    /// type of every gfn again and queues the gfns that were populated or given back since
    /// (the guest's balloon driver, a grant or shared-info mapping).
    pub fn refresh_p2m(&self) -> Result<u64, XenError> {
        if self.kind == DomainKind::Hvm {
            let scanned = {
                let ctrl = self.ctrl();
                crate::hvm::scan_gfns(&ctrl, self.info.domid, self.memory.pfn_limit, &self.hints, &self.interrupt)?
            };
            *self.scan.lock().unwrap_or_else(|e| e.into_inner()) = Some(scanned.info);
            return Ok(self.memory.install_populated(scanned.populated, scanned.broken));
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
