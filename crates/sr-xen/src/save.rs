//! [`PvSaveGuest`]: a running 64-bit x86 PV domain as an [`sr_save::Guest`], so sr-save's
//! saver writes the stream Xen's own saver writes for it (`tools/libs/guest/xg_sr_save.c`,
//! `xg_sr_save_x86_pv.c`; xen-stream.md 3.5-3.7 and 4.1).
//!
//! * **Suspend, not pause**: [`pause`](sr_save::Guest::pause) is the cooperative suspend
//!   ([`XenDomain::suspend`]): a PV guest resumes from a stream only through its own suspend
//!   path, which also leaves its start_info frame in vcpu 0's rdx.
//! * **Page types** from Xen (`getpageframeinfo3`) through the guest's p2m; pfns without a
//!   frame of the guest's own are XTAB.
//! * **Page tables** are sent only once the guest is suspended: while it runs (live passes)
//!   a page-table pfn is sent as XTAB and remembered, as Xen's saver does with a page table
//!   it could not normalise while the guest ran; at the suspend every remembered pfn and
//!   every pfn that is a page table then goes into the final pass. There each is normalised
//!   (machine frames to pfns, [`crate::normalise`]); a frame outside the guest is then fatal.
//! * **State** (X86_PV_INFO, CPU policy, P2M_FRAMES, TSC_INFO, SHARED_INFO, each vcpu's
//!   BASIC/EXTENDED/XSAVE/MSRS) from the hypervisor, vcpu frames normalised once suspended.
//!   Before the suspend the vcpu state is not restorable, so the rulebook runs on the state
//!   taken after it ([`sr_save::Guest::state_checkable_before_pause`] is `false`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use sr_format::state::{DomainState, P2mState, PvInfoState, TscState, VcpuState};
use sr_format::{DomainType, PageType};
use sr_memory::{GuestMemory, PfnBitmap};
use sr_save::{Guest, SaveError};

use crate::domain::{DomainKind, XenDomain};
use crate::error::XenError;
use crate::normalise::{normalise_page_table, normalise_vcpu_basic};

/// The most frames one `getpageframeinfo3` call takes (Xen's limit).
const TYPE_BATCH: usize = 1024;

/// A running x86 PV domain being saved (see the module docs).
#[derive(Debug)]
pub struct PvSaveGuest<'d> {
    domain: &'d XenDomain,
    /// Whether the guest still runs (live passes): page tables are deferred.
    running: AtomicBool,
    /// Page-table pfns sent as XTAB while the guest ran.
    deferred: Mutex<PfnBitmap>,
    /// Whether any page was sent while the guest ran (a live pass).
    sent_live: AtomicBool,
    suspend_timeout: Duration,
    /// When the suspend was requested, and how long the guest took to suspend.
    suspended: Mutex<Option<(Instant, Duration)>>,
    /// Who suspends the guest instead of this process (libxl, through the save helper's
    /// `suspend` callback).
    suspend_hook: Option<Hook<'d>>,
}

/// A suspend done by someone else (see [`PvSaveGuest::suspended_by`]): returns once the
/// domain is suspended, or says why not.
pub type SuspendHook<'d> = Box<dyn Fn() -> Result<(), String> + Send + Sync + 'd>;

/// A [`SuspendHook`] in a struct that can be `Debug`.
struct Hook<'d>(SuspendHook<'d>);

impl std::fmt::Debug for Hook<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SuspendHook")
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn xen(e: XenError) -> SaveError {
    SaveError::Guest(e.to_string())
}

impl<'d> PvSaveGuest<'d> {
    /// A saver's view of `domain`, which must be a running 64-bit PV domain. The guest is
    /// suspended (waiting at most `suspend_timeout`) when the saver pauses it.
    ///
    /// # Errors
    /// [`XenError::NotPv`] for an HVM/PVH domain (see [`crate::HvmSaveGuest`]), [`XenError::Unsupported`]
    /// for a 32-bit PV one.
    pub fn new(domain: &'d XenDomain, suspend_timeout: Duration) -> Result<Self, XenError> {
        match domain.kind() {
            DomainKind::Pv { width: 8 } => {}
            DomainKind::Pv { width: 4 } => {
                return Err(XenError::Unsupported { domid: domain.domid(), what: crate::domain::PV32_REFUSAL.into() });
            }
            DomainKind::Pv { width } => return Err(XenError::Width { width }),
            DomainKind::Hvm => return Err(XenError::NotPv { domid: domain.domid() }),
        }
        let limit = domain.memory().pfn_limit();
        Ok(Self {
            domain,
            running: AtomicBool::new(true),
            deferred: Mutex::new(PfnBitmap::new(limit)),
            sent_live: AtomicBool::new(false),
            suspend_timeout,
            suspended: Mutex::new(None),
            suspend_hook: None,
        })
    }

    /// The guest is suspended by `hook` instead of by this process: libxl's `suspend`
    /// callback when xsr is libxl's save helper (`libxl__domain_suspend_callback`, which
    /// also suspends the device model and waits for the guest). After the hook returns, Xen
    /// must report the domain shut down with reason suspend; nothing resumes it on failure
    /// (the caller that suspended it does that: libxl resumes the guest when a save fails).
    pub fn suspended_by(mut self, hook: impl Fn() -> Result<(), String> + Send + Sync + 'd) -> Self {
        self.suspend_hook = Some(Hook(Box::new(hook)));
        self
    }

    /// When the suspend was requested and how long the guest took to suspend, once it has.
    pub fn suspended(&self) -> Option<(Instant, Duration)> {
        *lock(&self.suspended)
    }

    /// Ends the save on the domain's side as Xen's saver's `cleanup` does: log-dirty mode off
    /// if this process turned it on (a no-op otherwise). The guest stays suspended until the
    /// domain is destroyed or resumed.
    pub fn finish(&self) -> Result<(), XenError> {
        self.domain.disable_log_dirty()
    }

    /// Page types of `pfns` as Xen reports them now, without the live-phase deferral.
    fn xen_types(&self, pfns: &[u64], out: &mut [PageType]) -> Result<(), SaveError> {
        let memory = self.domain.memory();
        let mut mfns = Vec::with_capacity(TYPE_BATCH);
        let mut slots = Vec::with_capacity(TYPE_BATCH);
        let mut nibbles = vec![0u8; TYPE_BATCH];
        for (chunk_pfns, chunk_out) in pfns.chunks(TYPE_BATCH).zip(out.chunks_mut(TYPE_BATCH)) {
            mfns.clear();
            slots.clear();
            for (i, &pfn) in chunk_pfns.iter().enumerate() {
                match memory.pfn_to_mfn(pfn) {
                    Some(mfn) => {
                        mfns.push(mfn);
                        slots.push(i);
                    }
                    None => chunk_out[i] = PageType::XTAB,
                }
            }
            let nibbles = &mut nibbles[..mfns.len()];
            self.domain.frame_types(&mfns, nibbles).map_err(xen)?;
            for (&i, &n) in slots.iter().zip(nibbles.iter()) {
                chunk_out[i] = PageType::from_nibble(n);
            }
        }
        Ok(())
    }

    /// Every populated pfn that is a page table now.
    fn page_table_pfns(&self) -> Result<Vec<u64>, SaveError> {
        let populated = self.domain.memory().populated();
        let pfns: Vec<u64> = populated.iter_ones().collect();
        let mut types = vec![PageType::NOTAB; pfns.len()];
        self.xen_types(&pfns, &mut types)?;
        Ok(pfns.iter().zip(&types).filter(|(_, t)| t.is_page_table()).map(|(&p, _)| p).collect())
    }

    /// Every vcpu's four context records; BASIC normalised when `suspended`.
    fn vcpus(&self, suspended: bool) -> Result<std::collections::BTreeMap<u32, VcpuState>, SaveError> {
        let mut out = std::collections::BTreeMap::new();
        let memory = self.domain.memory();
        for (id, mut basic) in self.domain.vcpu_contexts().map_err(xen)? {
            if suspended {
                memory
                    .with_pseudophys(|pfn_of| normalise_vcpu_basic(id, &mut basic, pfn_of))
                    .map_err(|e| SaveError::Guest(e.to_string()))?;
            }
            let v = VcpuState {
                basic: Some(basic),
                extended: Some(self.domain.vcpu_extended(id).map_err(xen)?),
                xsave: self.domain.vcpu_xsave(id).map_err(xen)?,
                msrs: self.domain.vcpu_msrs(id).map_err(xen)?,
            };
            out.insert(id, v);
        }
        Ok(out)
    }
}

impl Guest for PvSaveGuest<'_> {
    fn memory(&self) -> &dyn GuestMemory {
        &**self.domain.memory()
    }

    fn domain_type(&self) -> DomainType {
        DomainType::X86_PV
    }

    fn page_types(&self, pfns: &[u64], out: &mut [PageType]) -> Result<(), SaveError> {
        self.xen_types(pfns, out)?;
        if self.running.load(Ordering::SeqCst) {
            self.sent_live.store(true, Ordering::SeqCst);
            let mut deferred = lock(&self.deferred);
            for (&pfn, t) in pfns.iter().zip(out.iter_mut()) {
                if t.is_page_table() {
                    deferred.set(pfn);
                    *t = PageType::XTAB;
                }
            }
        }
        Ok(())
    }

    /// Like Xen's saver, every pfn of the p2m is sent: those without a frame as XTAB.
    fn extra_pfns(&self) -> Vec<u64> {
        let memory = self.domain.memory();
        (0..memory.pfn_limit()).filter(|&p| !memory.is_populated(p)).collect()
    }

    fn normalises_pages(&self) -> bool {
        true
    }

    fn rewrites(&self, page_type: PageType) -> bool {
        page_type.is_page_table()
    }

    fn normalise_pages(&self, pfns: &[u64], types: &[PageType], data: &mut [u8]) -> Result<(), SaveError> {
        self.domain.memory().with_pseudophys(|pfn_of| {
            for ((&pfn, &t), page) in pfns.iter().zip(types).zip(data.chunks_exact_mut(crate::PAGE_SIZE)) {
                if t.is_page_table() {
                    normalise_page_table(pfn, t, page, pfn_of)
                        .map_err(|e| SaveError::Guest(format!("page table at pfn {pfn:#x} ({t}): {e}")))?;
                }
            }
            Ok(())
        })
    }

    fn state_checkable_before_pause(&self) -> bool {
        false
    }

    /// Suspends the guest (cooperatively), rereads its p2m, and queues for the final pass every
    /// page table deferred while it ran and every pfn that is a page table now.
    fn pause(&self) -> Result<(), SaveError> {
        if !self.running.load(Ordering::SeqCst) {
            return Ok(());
        }
        let requested = Instant::now();
        let took = match &self.suspend_hook {
            None => self.domain.suspend(self.suspend_timeout).map_err(xen)?,
            Some(Hook(hook)) => {
                hook().map_err(|e| SaveError::Guest(format!("suspending the domain: {e}")))?;
                if !self.domain.suspended_now().map_err(xen)? {
                    return Err(SaveError::Guest(format!(
                        "domain {} is not suspended after its suspend callback returned",
                        self.domain.domid()
                    )));
                }
                requested.elapsed()
            }
        };
        *lock(&self.suspended) = Some((requested, took));
        self.running.store(false, Ordering::SeqCst);
        // From here the guest cannot write its memory: the writer may send the mapped frames.
        self.domain.memory().set_quiesced(true);
        self.domain.refresh_p2m().map_err(xen)?;
        if self.sent_live.load(Ordering::SeqCst) {
            // Pages went out while the guest ran: the final pass must carry every page table.
            let memory = self.domain.memory();
            let deferred = std::mem::replace(&mut *lock(&self.deferred), PfnBitmap::new(0));
            memory.mark_dirty(deferred.iter_ones());
            memory.mark_dirty(self.page_table_pfns()?);
        }
        Ok(())
    }

    fn state(&self) -> Result<DomainState, SaveError> {
        let suspended = !self.running.load(Ordering::SeqCst);
        let memory = self.domain.memory();
        let mut s = DomainState::new(DomainType::X86_PV, 12);
        s.pv_info = Some(PvInfoState { guest_width: 8, pt_levels: 4 });
        let limit = memory.pfn_limit();
        let end_pfn = u32::try_from(limit.saturating_sub(1))
            .map_err(|_| SaveError::InvalidState(format!("a p2m of {limit} pfns does not fit X86_PV_P2M_FRAMES")))?;
        let frames = memory.with_pseudophys(|pfn_of| {
            memory.p2m_frame_mfns().iter().map(|&mfn| pfn_of(mfn).ok_or(mfn)).collect::<Result<Vec<u64>, u64>>()
        });
        let frames = frames.map_err(|mfn| {
            SaveError::Guest(format!("p2m frame mfn {mfn:#x} is not in the guest's pseudo-physical map"))
        })?;
        s.p2m = Some(P2mState { end_pfn, frames });
        let (cpuid, msrs) = self.domain.cpu_policy().map_err(xen)?;
        s.cpuid = cpuid;
        s.msrs = msrs;
        let tsc = self.domain.tsc_info().map_err(xen)?;
        s.tsc = Some(TscState { mode: tsc.mode, khz: tsc.khz, nsec: tsc.nsec, incarnation: tsc.incarnation });
        s.shared_info = memory.shared_info_page().map_err(xen)?;
        s.vcpus = self.vcpus(suspended)?;
        Ok(s)
    }
}
