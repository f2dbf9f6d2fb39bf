//! [`HvmSaveGuest`]: a running x86 HVM or PVH domain as an [`sr_save::Guest`], so sr-save's
//! saver writes the stream Xen's own saver writes for it (`tools/libs/guest/xg_sr_save.c`,
//! `xg_sr_save_x86_hvm.c`) and libxl wraps around it (`tools/libs/light/libxl_dom_save.c`,
//! `libxl_stream_write.c`):
//!
//! * **records**: domain type x86 HVM for both (Xen saves a PVH guest as HVM), the CPU policy,
//!   STATIC_DATA_END, the pages, then X86_TSC_INFO, HVM_CONTEXT (Xen's blob, byte for byte),
//!   HVM_PARAMS (the 16 params Xen's saver reads, non-zero ones, in its order), END; for HVM
//!   the libxl layer adds EMULATOR_XENSTORE_DATA (if QEMU has `physmap` entries) and
//!   EMULATOR_CONTEXT (QEMU's device state);
//! * **pages**: the populated gfns only (Xen's saver visits every gfn below the maximum and
//!   sends the holes as XTAB, which its restorer ignores); each batch's types come from
//!   `XEN_DOMCTL_getpageframeinfo3` as in Xen's `write_batch`, so a gfn the guest gave back
//!   goes as XTAB, special pages (shared info, grant frames) and the ioreq pages Xen leaves
//!   out stay out, and a broken page goes as BROKEN;
//! * **device model** (HVM): its log-dirty mode on from [`new`](HvmSaveGuest::new) until
//!   [`finish`](HvmSaveGuest::finish) (libxl's `switch_qemu_logdirty` from Xen's `setup` to its
//!   `cleanup`), and at the pause, once the guest is suspended, QEMU stopped and its state
//!   saved (`libxl__qmp_suspend_save`);
//! * **suspend**: as libxl chooses for the guest ([`XenDomain::suspend_method`]), then for a
//!   plain save the populated gfns are asked again (what changed goes into the final pass);
//!   a live save's log-dirty bitmap already names gfns populated since (`p2m_add_page` marks
//!   them);
//! * everything it changed is undone by the domain's guard on every way out (log-dirty off,
//!   QEMU's log-dirty off, QEMU `cont`, the suspend cancelled).
//!
//! **Driven by the toolstack** ([`HvmSaveGuest::for_toolstack`], xsr as libxl's save helper):
//! what libxl does around `xc_domain_save` stays libxl's. The device model's log-dirty switch
//! is libxl's `switch_qemu_logdirty` callback (asked at the start and at the end, as Xen's
//! `x86_hvm_setup` and `x86_hvm_cleanup` ask it, for PVH too: libxl answers at once), the
//! suspend is libxl's `suspend` callback (which also stops QEMU and saves its state), and the
//! EMULATOR records are libxl's to write: the stream is the libxc part only. A failure leaves
//! the resume to libxl.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use sr_format::libxl::LibxlRecordType;
use sr_format::state::{DomainState, EmulatorState, TscState};
use sr_format::{DomainType, PageType};
use sr_memory::GuestMemory;
use sr_save::{Guest, SaveError};

use crate::device_model::GuestType;
use crate::domain::{DomainKind, XenDomain};
use crate::error::XenError;
use crate::save::SuspendHook;

/// The toolstack's device-model log-dirty switch (libxl's `switch_qemu_logdirty` callback when
/// xsr is its save helper): `true` on, `false` off; returns once the toolstack answered, or
/// says why it failed.
pub type LogdirtyHook<'d> = Box<dyn Fn(bool) -> Result<(), String> + Send + Sync + 'd>;

/// The callbacks of a toolstack that drives the save ([`HvmSaveGuest::for_toolstack`]).
struct Toolstack<'d> {
    suspend: SuspendHook<'d>,
    logdirty: Option<LogdirtyHook<'d>>,
    /// Whether the toolstack switched the device model's log-dirty mode on (so `finish` asks
    /// it off once, as `x86_hvm_cleanup` does).
    logdirty_on: AtomicBool,
}

impl std::fmt::Debug for Toolstack<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Toolstack").field("logdirty_on", &self.logdirty_on).finish_non_exhaustive()
    }
}

/// Emulator id of upstream QEMU in libxl's EMULATOR records (`EMULATOR_QEMU_UPSTREAM`,
/// `tools/libs/light/libxl_sr_stream_format.h`).
pub const EMULATOR_QEMU_UPSTREAM: u32 = 2;

/// A running HVM or PVH domain being saved (see the module docs).
#[derive(Debug)]
pub struct HvmSaveGuest<'d> {
    domain: &'d XenDomain,
    live: bool,
    suspend_timeout: Duration,
    running: AtomicBool,
    /// When the suspend was requested, and how long the guest took to suspend.
    suspended: Mutex<Option<(Instant, Duration)>>,
    /// The device model's records, taken at the pause.
    emulator: Mutex<Vec<EmulatorState>>,
    /// How long the device model's state took to save, and its size.
    device_model: Mutex<Option<(Duration, usize)>>,
    /// The toolstack's callbacks, when it drives the save.
    toolstack: Option<Toolstack<'d>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn xen(e: XenError) -> SaveError {
    SaveError::Guest(e.to_string())
}

impl<'d> HvmSaveGuest<'d> {
    /// A saver's view of `domain`, a running HVM or PVH domain; `live` says whether the save
    /// pre-copies while the guest runs (passed on to QEMU with its device state). Turns the
    /// device model's log-dirty mode on (HVM), as Xen's saver has libxl do in its `setup`.
    ///
    /// # Errors
    /// [`XenError::Unsupported`] for a PV domain (see [`crate::PvSaveGuest`]); the QMP error
    /// if QEMU refuses the log-dirty switch.
    pub fn new(domain: &'d XenDomain, live: bool, suspend_timeout: Duration) -> Result<Self, XenError> {
        let guest = Self::unstarted(domain, live, suspend_timeout, None)?;
        domain.enable_device_model_log_dirty()?;
        Ok(guest)
    }

    /// A saver's view of `domain`, a running HVM or PVH domain opened with
    /// [`XenDomain::open_for_toolstack`], for a save the toolstack drives (xsr as libxl's save
    /// helper, see the module docs): `suspend` suspends the guest (libxl's `suspend` callback,
    /// which also stops the device model and saves its state; Xen must report the domain
    /// suspended afterwards), `logdirty` switches the device model's log-dirty mode (libxl's
    /// `switch_qemu_logdirty`; `None` when the toolstack offers no such callback). Asks
    /// `logdirty` on now, as Xen's `x86_hvm_setup` does. The stream carries no EMULATOR
    /// records (the toolstack writes its own).
    ///
    /// # Errors
    /// [`XenError::Unsupported`] for a PV domain; [`XenError::Toolstack`] when `logdirty`
    /// fails.
    pub fn for_toolstack(
        domain: &'d XenDomain,
        live: bool,
        suspend: impl Fn() -> Result<(), String> + Send + Sync + 'd,
        logdirty: Option<LogdirtyHook<'d>>,
    ) -> Result<Self, XenError> {
        let toolstack = Toolstack { suspend: Box::new(suspend), logdirty, logdirty_on: AtomicBool::new(false) };
        let guest = Self::unstarted(domain, live, Duration::ZERO, Some(toolstack))?;
        if let Some(t) = &guest.toolstack
            && let Some(switch) = &t.logdirty
        {
            switch(true).map_err(|detail| XenError::Toolstack {
                domid: domain.domid(),
                callback: "switch_qemu_logdirty",
                detail: format!("switching the device model's log-dirty mode on: {detail}"),
            })?;
            t.logdirty_on.store(true, Ordering::SeqCst);
        }
        Ok(guest)
    }

    fn unstarted(
        domain: &'d XenDomain,
        live: bool,
        suspend_timeout: Duration,
        toolstack: Option<Toolstack<'d>>,
    ) -> Result<Self, XenError> {
        if domain.kind() != DomainKind::Hvm {
            return Err(XenError::Unsupported {
                domid: domain.domid(),
                what: "it is a PV domain: its saver is PvSaveGuest".into(),
            });
        }
        Ok(Self {
            domain,
            live,
            suspend_timeout,
            running: AtomicBool::new(true),
            suspended: Mutex::new(None),
            emulator: Mutex::new(Vec::new()),
            device_model: Mutex::new(None),
            toolstack,
        })
    }

    /// When the suspend was requested and how long the guest took to suspend, once it has.
    pub fn suspended(&self) -> Option<(Instant, Duration)> {
        *lock(&self.suspended)
    }

    /// How long the device model took to save its state, and how many bytes it wrote (HVM,
    /// once paused).
    pub fn device_model_saved(&self) -> Option<(Duration, usize)> {
        *lock(&self.device_model)
    }

    /// Ends the save on the domain's side as Xen's saver's `cleanup` does: log-dirty mode
    /// off, then the device model's log-dirty mode off (through the toolstack when it drives
    /// the save, once, if it was switched on). The guest stays suspended (and QEMU stopped)
    /// until the domain is destroyed or resumed. Also the cleanup after a failed save: every
    /// step is tried, the first error returned.
    pub fn finish(&self) -> Result<(), XenError> {
        let off = self.domain.disable_log_dirty();
        let dm_off = self.domain.disable_device_model_log_dirty();
        let toolstack_off = match &self.toolstack {
            Some(t) if t.logdirty_on.swap(false, Ordering::SeqCst) => match &t.logdirty {
                Some(switch) => switch(false).map_err(|detail| XenError::Toolstack {
                    domid: self.domain.domid(),
                    callback: "switch_qemu_logdirty",
                    detail: format!("switching the device model's log-dirty mode off: {detail}"),
                }),
                None => Ok(()),
            },
            _ => Ok(()),
        };
        off.and(dm_off).and(toolstack_off)
    }
}

impl Guest for HvmSaveGuest<'_> {
    fn memory(&self) -> &dyn GuestMemory {
        &**self.domain.memory()
    }

    fn domain_type(&self) -> DomainType {
        DomainType::X86_HVM
    }

    /// Xen's types for the gfns now (`getpageframeinfo3`, as `write_batch` asks them).
    fn page_types(&self, pfns: &[u64], out: &mut [PageType]) -> Result<(), SaveError> {
        let mut nibbles = vec![0u8; pfns.len()];
        self.domain.frame_types(pfns, &mut nibbles).map_err(xen)?;
        for (t, n) in out.iter_mut().zip(nibbles) {
            *t = PageType::from_nibble(n);
        }
        Ok(())
    }

    /// The broken gfns, sent as BROKEN (the holes are not sent at all).
    fn extra_pfns(&self) -> Vec<u64> {
        self.domain.memory().broken_pfns()
    }

    /// Suspends the guest (libxl's way for it), then, for HVM, stops QEMU and takes its
    /// device state; a plain save then asks the populated gfns again.
    fn pause(&self) -> Result<(), SaveError> {
        if !self.running.load(Ordering::SeqCst) {
            return Ok(());
        }
        let requested = Instant::now();
        let took = match &self.toolstack {
            None => self.domain.suspend(self.suspend_timeout).map_err(xen)?,
            Some(t) => {
                (t.suspend)().map_err(|detail| {
                    xen(XenError::Toolstack { domid: self.domain.domid(), callback: "suspend", detail })
                })?;
                if !self.domain.suspended_now().map_err(xen)? {
                    return Err(SaveError::Guest(format!(
                        "domain {} is not suspended after the toolstack's suspend callback returned",
                        self.domain.domid()
                    )));
                }
                requested.elapsed()
            }
        };
        *lock(&self.suspended) = Some((requested, took));
        self.running.store(false, Ordering::SeqCst);
        if self.toolstack.is_none() && self.domain.has_device_model() {
            let t = Instant::now();
            let state = self.domain.save_device_model(self.live).map_err(xen)?;
            *lock(&self.device_model) = Some((t.elapsed(), state.len()));
            let xenstore = self.domain.device_model_xenstore_data().map_err(xen)?;
            let mut emulator = Vec::with_capacity(2);
            if !xenstore.is_empty() {
                emulator.push(EmulatorState {
                    kind: LibxlRecordType::EMULATOR_XENSTORE_DATA,
                    id: EMULATOR_QEMU_UPSTREAM,
                    index: 0,
                    data: xenstore,
                });
            }
            emulator.push(EmulatorState {
                kind: LibxlRecordType::EMULATOR_CONTEXT,
                id: EMULATOR_QEMU_UPSTREAM,
                index: 0,
                data: state,
            });
            *lock(&self.emulator) = emulator;
        }
        // From here neither the guest nor QEMU writes its memory: pages may be lent.
        self.domain.memory().set_quiesced(true);
        if !self.live {
            self.domain.refresh_p2m().map_err(xen)?;
        }
        Ok(())
    }

    fn state(&self) -> Result<DomainState, SaveError> {
        let mut s = DomainState::new(DomainType::X86_HVM, 12);
        let (cpuid, msrs) = self.domain.cpu_policy().map_err(xen)?;
        s.cpuid = cpuid;
        s.msrs = msrs;
        let tsc = self.domain.tsc_info().map_err(xen)?;
        s.tsc = Some(TscState { mode: tsc.mode, khz: tsc.khz, nsec: tsc.nsec, incarnation: tsc.incarnation });
        s.hvm_context = self.domain.hvm_context().map_err(xen)?;
        for (index, value) in self.domain.hvm_params().map_err(xen)? {
            s.set_hvm_param(index, value);
        }
        if self.domain.guest_type() == GuestType::Hvm {
            s.emulator = lock(&self.emulator).clone();
        }
        Ok(s)
    }
}
