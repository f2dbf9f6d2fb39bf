//! Restoring a stream into a live Xen domain: [`XenRestore`], a [`RestoreTarget`] that does what
//! Xen 4.17's `xc_domain_restore` does (`tools/libs/guest/xg_sr_restore*.c`) for each domain
//! type, driven by sr-restore's engine so that every rule is checked before anything reaches Xen.
//!
//! **Contract** (libxc's): the domain exists, created **paused and empty** by the caller (libxl,
//! or a Rust toolstack) with its limits set (vcpus, max memory, for HVM/PVH the paging pool), and
//! two unbound event channels for xenstore and the console; the caller passes them as a
//! [`RestoreShell`]. [`restore_into`] fills memory and CPU state and returns the frames of the
//! xenstore and console rings ([`RestoreResults`], libxc's `restore_results`). Nothing unpauses
//! the domain, and nothing touches xenstore: the caller introduces the domain and unpauses it.
//!
//! **Cleanup**: every foreign mapping is made for one step and unmapped at its end (per
//! PAGE_DATA record, per record of state, per END step), on success and on error, so whatever
//! fails, nothing of the domain stays mapped by this process. Memory populated and state
//! applied stay in the domain: on any error **the caller destroys the domain** (libxl does:
//! `domcreate_complete` destroys a domain whose restore failed).
//!
//! | domain type | module | what is done |
//! |---|---|---|
//! | x86 PV (64-bit) | `pv` | populate pfns (order 0), page tables localised pfn -> mfn, shared info and start_info fix-ups, vcpu contexts, pinning, the guest's p2m, grant seed |
//! | x86 HVM | `hvm` | populate and write gfns, HVM params (magic pages cleared), HVM context, grant seed |
//! | x86 PVH | `pvh` | as HVM, into a PVH domain |
//!
//! Both: the stream's CPU policy at STATIC_DATA_END (and libxl's `static_data_done` callback,
//! which applies a legacy policy when the stream has none), TSC info when it arrives.

mod create;
mod hvm;
mod pv;
mod pvh;

use std::fmt;
use std::time::{Duration, Instant};

use sr_format::state::DomainState;
use sr_format::{ByteSource, DomainHeader, DomainType, Record, StreamReader};
use sr_memory::MemoryError;
use sr_restore::{PageBatch, RestoreError, RestoreOptions, RestoreTarget, Restored, Restorer, TargetError};

use crate::error::XenError;
use crate::ffi::{DomainInfo, XenCtrl};

pub use create::{CreateRestore, create_restore, destroy_domain, rename_domain, set_helper_env, unpause_domain};
pub use pv::PvFrameError;

/// `XGR_SDD_MISSING_CPUID`: the stream carried no CPUID policy.
pub const MISSING_CPUID: u32 = 1;
/// `XGR_SDD_MISSING_MSR`: the stream carried no MSR policy.
pub const MISSING_MSR: u32 = 2;

/// The domain a stream is restored into and its two ring event channels: the arguments of
/// `xc_domain_restore` (libxl allocates the channels with `xc_evtchn_alloc_unbound` in
/// `libxl__build_pre`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RestoreShell {
    /// The domain, created paused and empty.
    pub domid: u32,
    /// Its unbound event channel for xenstore (written into a PV guest's start_info, or
    /// `HVM_PARAM_STORE_EVTCHN`).
    pub store_evtchn: u32,
    /// The xenstore domain (usually 0): the grant of the xenstore ring is for it.
    pub store_domid: u32,
    /// Its unbound event channel for the console.
    pub console_evtchn: u32,
    /// The console backend's domain (usually 0).
    pub console_domid: u32,
}

/// What a restore hands back to the toolstack (libxc's `restore_results`): the frames of the
/// xenstore and console rings, for `xs_introduce_domain` and the console's `ring-ref`. For a
/// PV guest these are machine frames (mfns), for HVM and PVH guest frames (gfns).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct RestoreResults {
    /// The xenstore ring's frame (0 if the stream named none).
    pub store_gfn: u64,
    /// The console ring's frame (0 if the stream named none).
    pub console_gfn: u64,
}

/// Counters of what a restore did in the domain.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenRestoreStats {
    /// Frames populated.
    pub populated: u64,
    /// Pages written (page bodies copied into the domain).
    pub pages_written: u64,
    /// Page tables localised (PV).
    pub page_tables: u64,
    /// Page tables pinned (PV).
    pub pinned: u64,
    /// vcpu contexts set.
    pub vcpus: u32,
    /// Time spent opening the domain (Xen's libraries, the domain's info; x86 PV: the host's
    /// m2p mapped), before the first record.
    pub setup: Duration,
    /// Time spent at END (vcpus, pinning, the guest's p2m, grants; or the HVM context).
    pub end: Duration,
    /// Time spent in this destination's work for the whole stream (setup, populating, mapping
    /// and writing pages, applying state, END): the rest of a restore is reading and checking
    /// the stream.
    pub busy: Duration,
}

/// Why a restore into a domain failed in the domain (the stream itself passed every rule).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum XenRestoreError {
    /// A Xen library call failed.
    #[error(transparent)]
    Xen(#[from] XenError),
    /// A Xen call failed while doing `what` (the pfn, mfn and page type involved, as Xen's
    /// restorer logs them: Xen often answers only EINVAL).
    #[error("{what}: {source}")]
    At {
        /// The step and the frames involved.
        what: String,
        /// The failing call.
        #[source]
        source: XenError,
    },
    /// A frame named by the stream does not fit the domain (x86 PV's pseudo-physical map).
    #[error(transparent)]
    Frame(#[from] PvFrameError),
    /// The stream's domain type does not fit the domain.
    #[error("the stream is {stream} but domain {domid} is {domain}")]
    WrongDomain {
        /// The stream's domain type.
        stream: DomainType,
        /// The domain.
        domid: u32,
        /// What the domain is.
        domain: &'static str,
    },
    /// Something this restorer does not do, in words.
    #[error("{0}")]
    Unsupported(String),
    /// The CPU policy was refused (`xc_set_domain_cpu_policy`: the leaf, subleaf or MSR Xen
    /// named, `0xffffffff` when none).
    #[error(
        "xc_set_domain_cpu_policy refused the stream's CPU policy ({}): leaf {leaf:#x}, subleaf {subleaf:#x}, msr {msr:#x}",
        std::io::Error::from_raw_os_error(*errno)
    )]
    CpuPolicy {
        /// errno.
        errno: i32,
        /// The CPUID leaf.
        leaf: u32,
        /// The CPUID subleaf.
        subleaf: u32,
        /// The MSR.
        msr: u32,
    },
    /// The toolstack's `static_data_done` callback failed.
    #[error("the toolstack's static_data_done callback failed: {0}")]
    Callback(String),
}

/// The error of a failed Xen call made while doing `what` (formatted only on failure: a
/// restore makes these calls once per record, and the messages name pfns and counts).
fn at<S: Into<String>>(what: impl FnOnce() -> S) -> impl FnOnce(XenError) -> XenRestoreError {
    move |source| XenRestoreError::At { what: what().into(), source }
}

fn memory_error(e: XenRestoreError) -> MemoryError {
    MemoryError::Backend(e.to_string())
}

/// The toolstack's `static_data_done` callback: called at STATIC_DATA_END with
/// [`MISSING_CPUID`] | [`MISSING_MSR`] for what the stream did not carry (libxl then applies its
/// legacy CPUID policy); an `Err` fails the restore.
pub type StaticDataDone<'a> = Box<dyn FnMut(u32) -> Result<(), String> + 'a>;

/// The per-type half.
#[derive(Debug)]
enum Kind {
    Pv(Box<pv::PvRestore>),
    Hvm(hvm::HvmRestore),
}

/// A live Xen domain as the destination of sr-restore's engine (see the module docs).
pub struct XenRestore<'a> {
    kind: Kind,
    ctrl: XenCtrl,
    shell: RestoreShell,
    static_data_done: StaticDataDone<'a>,
    results: Option<RestoreResults>,
    stats: XenRestoreStats,
}

impl fmt::Debug for XenRestore<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XenRestore")
            .field("kind", &self.kind)
            .field("shell", &self.shell)
            .field("results", &self.results)
            .finish_non_exhaustive()
    }
}

/// What the domain is, for the type check of `open`.
fn domain_kind(info: &DomainInfo) -> &'static str {
    if !info.hvm {
        "x86 PV"
    } else if pvh::is_pvh(info) {
        "x86 PVH"
    } else {
        "x86 HVM"
    }
}

impl<'a> XenRestore<'a> {
    /// The destination for a stream whose domain header is `header`, in `shell`'s domain:
    /// x86 PV streams into PV domains, HVM streams (type 2, which Xen also writes for PVH
    /// guests) into HVM or PVH domains, PVH streams (type 3) into PVH domains; 4 KiB pages.
    pub fn open(
        shell: &RestoreShell,
        header: &DomainHeader,
        static_data_done: StaticDataDone<'a>,
    ) -> Result<Self, XenRestoreError> {
        let started = Instant::now();
        let ctrl = XenCtrl::open()?;
        let info = ctrl.domain_info(shell.domid)?;
        let stream = header.domain_type();
        let wrong = || XenRestoreError::WrongDomain { stream, domid: shell.domid, domain: domain_kind(&info) };
        if header.page_shift.get() != 12 {
            return Err(XenRestoreError::Unsupported(format!(
                "page shift {} (x86 domains have 4 KiB pages)",
                header.page_shift.get()
            )));
        }
        if info.shutdown {
            return Err(XenError::NotRunning { domid: shell.domid }.into());
        }
        let kind = match stream {
            DomainType::X86_PV if !info.hvm => Kind::Pv(Box::new(pv::PvRestore::new(&ctrl, shell, &info)?)),
            DomainType::X86_HVM if info.hvm && !pvh::is_pvh(&info) => Kind::Hvm(hvm::HvmRestore::new(shell)),
            DomainType::X86_HVM | DomainType::X86_PVH if info.hvm => {
                Kind::Hvm(pvh::open(&info, shell).ok_or_else(wrong)?)
            }
            _ => return Err(wrong()),
        };
        let setup = started.elapsed();
        let stats = XenRestoreStats { setup, busy: setup, ..XenRestoreStats::default() };
        Ok(Self { kind, ctrl, shell: *shell, static_data_done, results: None, stats })
    }

    /// The ring frames, once END was applied.
    pub fn results(&self) -> Option<RestoreResults> {
        self.results
    }

    /// What was done so far.
    pub fn stats(&self) -> XenRestoreStats {
        self.stats
    }

    /// The domain.
    pub fn domid(&self) -> u32 {
        self.shell.domid
    }

    fn static_data(&mut self, state: &DomainState) -> Result<(), XenRestoreError> {
        let mut missing = 0;
        if state.cpuid.is_empty() {
            missing |= MISSING_CPUID;
        }
        if state.msrs.is_empty() {
            missing |= MISSING_MSR;
        }
        if !state.cpuid.is_empty() || !state.msrs.is_empty() {
            self.ctrl.set_cpu_policy(self.shell.domid, &state.cpuid, &state.msrs).map_err(|f| {
                XenRestoreError::CpuPolicy { errno: f.errno, leaf: f.leaf, subleaf: f.subleaf, msr: f.msr }
            })?;
        }
        (self.static_data_done)(missing).map_err(XenRestoreError::Callback)
    }
}

impl RestoreTarget for XenRestore<'_> {
    fn page_shift(&self) -> u32 {
        12
    }

    fn pfn_limit(&self) -> u64 {
        sr_memory::MAX_PFN_LIMIT
    }

    fn is_populated(&self, pfn: u64) -> bool {
        match &self.kind {
            Kind::Pv(pv) => pv.is_populated(pfn),
            Kind::Hvm(hvm) => hvm.is_populated(pfn),
        }
    }

    fn read_pages(&self, pfns: &[u64], out: &mut [u8]) -> Result<(), MemoryError> {
        match &self.kind {
            Kind::Pv(pv) => pv.read_pages(pfns, out),
            Kind::Hvm(hvm) => hvm.read_pages(&self.ctrl, pfns, out),
        }
        .map_err(memory_error)
    }

    fn apply_pages(&mut self, batch: &PageBatch<'_>) -> Result<(), MemoryError> {
        let started = Instant::now();
        let r = match &mut self.kind {
            Kind::Pv(pv) => pv.apply_pages(&self.ctrl, batch, None, &mut self.stats),
            Kind::Hvm(hvm) => hvm.apply_pages(&self.ctrl, batch, None, &mut self.stats),
        };
        self.stats.busy += started.elapsed();
        r.map_err(memory_error)
    }

    fn compare_pages(&mut self, batch: &PageBatch<'_>, mismatch: &mut dyn FnMut(u64)) -> Result<(), MemoryError> {
        match &mut self.kind {
            Kind::Pv(pv) => pv.apply_pages(&self.ctrl, batch, Some(mismatch), &mut self.stats),
            Kind::Hvm(hvm) => hvm.apply_pages(&self.ctrl, batch, Some(mismatch), &mut self.stats),
        }
        .map_err(memory_error)
    }

    fn static_data_end(&mut self, state: &DomainState) -> Result<(), TargetError> {
        let started = Instant::now();
        let r = self.static_data(state);
        self.stats.busy += started.elapsed();
        Ok(r?)
    }

    fn state_record(&mut self, rec: &Record<'_>, state: &DomainState) -> Result<(), TargetError> {
        let started = Instant::now();
        let r = match &mut self.kind {
            Kind::Pv(pv) => pv.state_record(&self.ctrl, rec, state),
            Kind::Hvm(hvm) => hvm.state_record(&self.ctrl, rec),
        };
        self.stats.busy += started.elapsed();
        Ok(r?)
    }

    fn end(&mut self, state: &DomainState) -> Result<(), TargetError> {
        let started = Instant::now();
        let results = match &mut self.kind {
            Kind::Pv(pv) => pv.end(&self.ctrl, state, &mut self.stats)?,
            Kind::Hvm(hvm) => hvm.end(&self.ctrl, state)?,
        };
        self.stats.end = started.elapsed();
        self.stats.busy += self.stats.end;
        self.results = Some(results);
        Ok(())
    }
}

/// Restores `reader`'s stream into `shell`'s domain (see the module docs for the contract):
/// sr-restore's engine checks every rule, and what passes goes to the domain at the moment
/// Xen's restorer applies it. `reader` is read up to the libxc END record and no further (a
/// libxl stream's records after it are the caller's). On success the domain holds the guest,
/// still paused, and the returned [`Restored`] carries the [`XenRestore`] (its
/// [`results`](XenRestore::results)). On error the caller destroys the domain.
pub fn restore_into<'a, S: ByteSource>(
    reader: StreamReader<S>,
    shell: &RestoreShell,
    options: RestoreOptions,
    static_data_done: StaticDataDone<'a>,
) -> Result<Restored<XenRestore<'a>>, RestoreError> {
    let mut callback = Some(static_data_done);
    Restorer::new(options).restore(reader, |header| {
        let cb = callback.take().expect("the domain header comes once");
        XenRestore::open(shell, header, cb).map_err(memory_error)
    })
}
