//! [`XenMemory`]: a running domain's memory as an sr-memory [`GuestMemory`] (read-only).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use sr_memory::{AtomicPfnBitmap, GuestMemory, MemoryError, Pfn, PfnBitmap, check_batch};

use crate::dirty::bitmap_from_xen;
use crate::error::XenError;
use crate::ffi::{ForeignMemory, M2p, Mapping, PAGE_SIZE, XenCtrl};
use crate::interrupt::Interrupt;
use crate::p2m::{self, ArchSharedInfo, FrameReader};

/// How guest frames are addressed.
#[derive(Debug)]
pub(crate) enum Addressing {
    /// x86 PV: pfn -> mfn through the guest's own p2m, checked against the host's m2p.
    Pv {
        /// Guest word size (8).
        width: u32,
        /// The machine frame of the shared info page.
        shared_info_mfn: u64,
        /// The host's m2p.
        m2p: M2p,
        /// Highest machine frame of the host.
        max_mfn: u64,
        /// The p2m as last read (raw entries), indexed by pfn.
        p2m: RwLock<Vec<u64>>,
    },
    /// x86 HVM/PVH: gfns map directly.
    Hvm,
}

/// pfns per persistent mapping window (4 MiB of 4 KiB pages, one `xenforeignmemory_map`).
pub const WINDOW_PFNS: u64 = 1024;

/// The most windows kept mapped (64 GiB of guest memory, one VMA each: well below Linux's
/// default `vm.max_map_count` of 65530); beyond it the cache is emptied and refilled.
pub const MAX_WINDOWS: usize = 16_384;

/// One window: its mapping and, per pfn offset, the frame's index in it (`u32::MAX`: the pfn
/// has no frame of the guest's own and reads as zeros).
#[derive(Debug)]
pub(crate) struct Window {
    map: Mapping,
    slots: Vec<u32>,
}

/// Reads frames of one domain through a foreign mapping, for the p2m walk.
pub(crate) struct Frames<'a> {
    pub(crate) fmem: &'a Arc<ForeignMemory>,
    pub(crate) domid: u32,
}

impl FrameReader for Frames<'_> {
    fn read_frames(&mut self, what: &'static str, frames: &[u64], out: &mut [u8]) -> Result<(), XenError> {
        let map = self.fmem.map_read(self.domid, frames)?;
        for (i, (&frame, page)) in frames.iter().zip(out.chunks_exact_mut(PAGE_SIZE)).enumerate() {
            if !map.copy_frame(i, page) {
                return Err(XenError::Frame { what, frame, errno: map.error(i) });
            }
        }
        Ok(())
    }
}

/// A running Xen domain's memory, read through batches of read-only foreign mappings.
///
/// * `read_pages` copies each page once into the caller's buffer from a window of
///   [`WINDOW_PFNS`] pfns mapped with one `xenforeignmemory_map` on first use and kept mapped
///   (at most [`MAX_WINDOWS`]; a window is remapped when the p2m of one of its pfns changes). A frame that does not map (a hole, a
///   paged-out or shared frame: the per-frame errno) reads as zeros and is recorded in
///   [`unreadable`](Self::unreadable); it is not an error. PV pfns without a frame of their own
///   (the p2m entry is invalid or the m2p disagrees, Xen's `mfn_in_pseudophys_map`) are not
///   populated and read as zeros.
/// * `take_dirty` is Xen's log-dirty bitmap (`XEN_DOMCTL_SHADOW_OP_CLEAN`) while log-dirty mode
///   is on, plus the pfns whose p2m entry changed at the last
///   [`XenDomain::refresh_p2m`](crate::XenDomain::refresh_p2m) or given to
///   [`mark_dirty`](Self::mark_dirty). With log-dirty off and
///   [`track_by_compare`](Self::track_by_compare) on, it is the pages whose content changed
///   since they were last read. Otherwise, or if the hypercall or the rescan fails, every
///   populated pfn is reported dirty (never too few); a failure is kept for
///   [`failure`](Self::failure).
/// * Writes are refused: a dump never changes the guest.
/// * Every batch checks the [`Interrupt`] flag first, so SIGINT/SIGTERM stop a copy within one
///   batch.
#[derive(Debug)]
pub struct XenMemory {
    pub(crate) domid: u32,
    pub(crate) ctrl: Arc<Mutex<XenCtrl>>,
    pub(crate) fmem: Arc<ForeignMemory>,
    pub(crate) addressing: Addressing,
    /// Persistent read-only mappings of aligned windows of [`WINDOW_PFNS`] pfns, made on
    /// first read and kept, so that later passes copy without mapping again.
    pub(crate) windows: Mutex<HashMap<u64, Arc<Window>>>,
    pub(crate) pfn_limit: u64,
    pub(crate) populated: RwLock<PfnBitmap>,
    pub(crate) log_dirty: AtomicBool,
    pub(crate) pending: Mutex<PfnBitmap>,
    pub(crate) unreadable: AtomicPfnBitmap,
    pub(crate) failure: Mutex<Option<String>>,
    pub(crate) interrupt: Interrupt,
    pub(crate) mapped_batches: AtomicU64,
    /// Whether the guest cannot write its memory now (suspended): only then are pages lent.
    pub(crate) quiesced: AtomicBool,
    /// The machine frames of the PV p2m's pages, as last read (in p2m order).
    pub(crate) p2m_frames: RwLock<Vec<u64>>,
    /// Dirty tracking by comparison, once turned on ([`track_by_compare`](Self::track_by_compare)).
    pub(crate) compare: OnceLock<CompareLog>,
    /// HVM/PVH: gfns whose page Xen reports broken (as of the last scan).
    pub(crate) broken: Mutex<Vec<u64>>,
}

/// Dirty tracking without the hypervisor's help: a digest of every page as last read, and a
/// rescan that reports the pages whose content no longer matches it.
///
/// For hypervisors that refuse log-dirty mode (Xen without shadow paging refuses it for PV
/// guests: `EOPNOTSUPP`). The digest is XXH3-128 of the bytes `read_pages` copied out, so a
/// page counts as clean only if its content now hashes to exactly what was sent (a change is
/// missed only on a 128-bit collision); a page read while the guest wrote it has a digest of
/// the torn copy, which the next rescan finds different. 16 bytes and 1 bit per pfn.
#[derive(Debug)]
pub(crate) struct CompareLog {
    digests: Box<[[AtomicU64; 2]]>,
    known: AtomicPfnBitmap,
}

impl CompareLog {
    fn new(pfns: u64) -> Self {
        let digests = (0..pfns).map(|_| [AtomicU64::new(0), AtomicU64::new(0)]).collect();
        Self { digests, known: AtomicPfnBitmap::new(pfns) }
    }

    fn digest(page: &[u8]) -> [u64; 2] {
        let d = xxhash_rust::xxh3::xxh3_128(page);
        [d as u64, (d >> 64) as u64]
    }

    fn record(&self, pfn: u64, page: &[u8]) {
        let Some(slot) = self.digests.get(pfn as usize) else { return };
        let [a, b] = Self::digest(page);
        slot[0].store(a, Ordering::Relaxed);
        slot[1].store(b, Ordering::Relaxed);
        self.known.set(pfn);
    }

    /// Whether `page` differs from the digest recorded for `pfn` (`false` if none was).
    fn differs(&self, pfn: u64, page: &[u8]) -> bool {
        if !self.known.get(pfn) {
            return false;
        }
        let slot = &self.digests[pfn as usize];
        Self::digest(page) != [slot[0].load(Ordering::Relaxed), slot[1].load(Ordering::Relaxed)]
    }
}

impl XenMemory {
    /// Pfns whose frame failed to map in some read (they read as zeros).
    pub fn unreadable(&self) -> PfnBitmap {
        self.unreadable.snapshot()
    }

    /// The first log-dirty failure, if any (the dirty sets were then conservative).
    pub fn failure(&self) -> Option<String> {
        self.failure.lock().map(|f| f.clone()).unwrap_or_else(|e| e.into_inner().clone())
    }

    /// The host m2p's pfn for `mfn` (PV guests; `None` for HVM or beyond the table), to turn
    /// the machine frames of a vcpu context into pfns as Xen's saver does.
    pub fn mfn_to_pfn(&self, mfn: u64) -> Option<u64> {
        match &self.addressing {
            Addressing::Pv { m2p, .. } => m2p.get(mfn),
            Addressing::Hvm => None,
        }
    }

    /// PV: the machine frames of the guest's p2m pages as last read (one per 512 pfns, in
    /// p2m order: the X86_PV_P2M_FRAMES record's frames before their conversion to pfns).
    /// HVM: empty.
    pub fn p2m_frame_mfns(&self) -> Vec<u64> {
        self.p2m_frames.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// PV: a copy of the shared info page (the SHARED_INFO record's body, as Xen's saver
    /// sends it: raw). HVM: `None`.
    pub fn shared_info_page(&self) -> Result<Option<Vec<u8>>, XenError> {
        let Some((mfn, _, _)) = self.pv_layout() else { return Ok(None) };
        let mut page = vec![0u8; PAGE_SIZE];
        Frames { fmem: &self.fmem, domid: self.domid }.read_frames("shared info", &[mfn], &mut page)?;
        Ok(Some(page))
    }

    /// Says whether the guest cannot write its memory now (a suspended domain). While it
    /// cannot, [`GuestMemory::lend_pages`] hands the mapped frames themselves to the saver's
    /// writer (`writev` straight from the foreign mapping, as Xen's saver writes), so the
    /// final pass of a save copies no page in user space; while it can, lending declines and
    /// pages are copied out. Set by [`crate::PvSaveGuest`] once the guest has suspended.
    pub fn set_quiesced(&self, quiesced: bool) {
        self.quiesced.store(quiesced, Ordering::SeqCst);
    }

    /// Turns on dirty tracking by comparison:
    /// from now on every page `read_pages` copies is digested, and `take_dirty` (while
    /// log-dirty mode is off) rereads every digested page and reports those whose content
    /// changed since, instead of every populated pfn. Pages never read since are not reported:
    /// whoever skipped them must send them later. Costs one read of the digested memory per
    /// `take_dirty`.
    pub fn track_by_compare(&self) {
        self.compare.get_or_init(|| CompareLog::new(self.pfn_limit));
    }

    /// Whether dirty tracking by comparison is on.
    pub fn tracks_by_compare(&self) -> bool {
        self.compare.get().is_some()
    }

    /// Adds `pfns` to the next dirty set (e.g. pages a saver skipped while the guest ran).
    pub fn mark_dirty(&self, pfns: impl IntoIterator<Item = u64>) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        for pfn in pfns {
            if pfn < pending.len() {
                pending.set(pfn);
            }
        }
    }

    /// The machine frame of `pfn` in the p2m as last read, if the pfn is backed by a frame of
    /// the guest's own (PV); the pfn itself for HVM.
    pub fn pfn_to_mfn(&self, pfn: u64) -> Option<u64> {
        if !self.is_populated(pfn) {
            return None;
        }
        match &self.addressing {
            Addressing::Pv { p2m, .. } => p2m.read().unwrap_or_else(|e| e.into_inner()).get(pfn as usize).copied(),
            Addressing::Hvm => Some(pfn),
        }
    }

    /// Runs `f` with Xen's `mfn_in_pseudophys_map` + `mfn_to_pfn` for this PV guest: the pfn
    /// the host m2p gives for an mfn, if the guest's p2m (as last read) maps that pfn back to
    /// the same mfn. `None` for every frame of an HVM guest.
    pub fn with_pseudophys<R>(&self, f: impl FnOnce(&dyn Fn(u64) -> Option<u64>) -> R) -> R {
        match &self.addressing {
            Addressing::Pv { m2p, p2m, .. } => {
                let p2m = p2m.read().unwrap_or_else(|e| e.into_inner());
                let lookup = |mfn: u64| m2p.get(mfn).filter(|&pfn| p2m.get(pfn as usize) == Some(&mfn));
                f(&lookup)
            }
            Addressing::Hvm => f(&|_| None),
        }
    }

    /// The window holding `pfn`: `current` when it is that window (pfns read in ascending
    /// order mostly stay in one), else mapped or looked up and kept in `current`.
    fn window_of(&self, pfn: u64, current: &mut Option<(u64, Arc<Window>)>) -> Result<Arc<Window>, XenError> {
        let w = pfn / WINDOW_PFNS;
        if let Some((cw, win)) = current.as_ref()
            && *cw == w
        {
            return Ok(Arc::clone(win));
        }
        let win = self.window(w)?;
        *current = Some((w, Arc::clone(&win)));
        Ok(win)
    }

    /// The pfns of `pfns` whose content differs from the digest of their last read.
    fn compare_pass(&self, log: &CompareLog, pfns: impl Iterator<Item = u64>) -> Result<PfnBitmap, MemoryError> {
        let mut dirty = PfnBitmap::new(self.pfn_limit);
        let mut page = vec![0u8; PAGE_SIZE];
        let mut current: Option<(u64, Arc<Window>)> = None;
        for pfn in pfns.filter(|&p| log.known.get(p)) {
            self.interrupt.check()?;
            let window = self.window_of(pfn, &mut current)?;
            let slot = window.slots[(pfn % WINDOW_PFNS) as usize];
            if slot == u32::MAX || !window.map.copy_frame(slot as usize, &mut page) {
                page.fill(0);
            }
            if log.differs(pfn, &page) {
                dirty.set(pfn);
            }
        }
        Ok(dirty)
    }

    /// PV: the p2m as last read (at open or the last
    /// [`XenDomain::refresh_p2m`](crate::XenDomain::refresh_p2m)), raw entries indexed by pfn
    /// (the mfn, or an invalid entry for a pfn without a frame: check
    /// [`is_populated`](GuestMemory::is_populated)). HVM: `None`.
    pub fn p2m_entries(&self) -> Option<Vec<u64>> {
        match &self.addressing {
            Addressing::Pv { p2m, .. } => Some(p2m.read().unwrap_or_else(|e| e.into_inner()).clone()),
            Addressing::Hvm => None,
        }
    }

    /// Foreign-mapping calls made so far (one per window).
    pub fn mapped_batches(&self) -> u64 {
        self.mapped_batches.load(Ordering::Relaxed)
    }

    /// The shared-info page's machine frame and the guest width, for a PV guest.
    pub(crate) fn pv_layout(&self) -> Option<(u64, u32, u64)> {
        match &self.addressing {
            Addressing::Pv { shared_info_mfn, width, max_mfn, .. } => Some((*shared_info_mfn, *width, *max_mfn)),
            Addressing::Hvm => None,
        }
    }

    /// Reads the PV p2m afresh (Xen's `map_p2m`): the p2m and the pfns backed by a frame of the
    /// guest's own (ascending); retried while the guest's `p2m_generation` moves under the walk.
    pub(crate) fn read_pv_p2m(&self) -> Result<(Vec<u64>, Vec<u64>), XenError> {
        let Addressing::Pv { width, shared_info_mfn, m2p, max_mfn, .. } = &self.addressing else {
            return Err(XenError::Layout { what: "p2m of a non-PV guest", value: 0 });
        };
        let mut reader = Frames { fmem: &self.fmem, domid: self.domid };
        let read_info = |reader: &mut Frames<'_>| -> Result<ArchSharedInfo, XenError> {
            let mut page = vec![0u8; PAGE_SIZE];
            reader.read_frames("shared info", &[*shared_info_mfn], &mut page)?;
            ArchSharedInfo::parse(&page, *width)
        };
        let mut last = (0, 0);
        for _ in 0..5 {
            self.interrupt.check()?;
            let info = read_info(&mut reader)?;
            let frames = p2m::p2m_frames(&mut reader, &info, *width, *max_mfn)?;
            let highest = info.highest_pfn()?;
            if highest >= self.pfn_limit {
                return Err(XenError::Layout {
                    what: "p2m grew beyond the size at open (max_pfn)",
                    value: info.max_pfn,
                });
            }
            let p2m = p2m::read_p2m(&mut reader, &frames, highest, *width)?;
            let after = read_info(&mut reader)?;
            if info.p2m_cr3 != 0 && (after.p2m_generation != info.p2m_generation || info.p2m_generation & 1 == 1) {
                last = (info.p2m_generation, after.p2m_generation);
                continue;
            }
            *self.p2m_frames.write().unwrap_or_else(|e| e.into_inner()) = frames;
            let backed = p2m
                .iter()
                .enumerate()
                .filter(|&(pfn, &mfn)| p2m::entry_is_backed(pfn as u64, mfn, |m| m2p.get(m)))
                .map(|(pfn, _)| pfn as u64)
                .collect();
            return Ok((p2m, backed));
        }
        Err(XenError::P2mChanged { before: last.0, after: last.1 })
    }

    /// Installs a freshly read p2m; the pfns whose entry or populated state changed are added
    /// to the next dirty set. Returns their number.
    pub(crate) fn install_p2m(&self, p2m: Vec<u64>, backed: &[u64]) -> Result<u64, XenError> {
        let Addressing::Pv { p2m: current, .. } = &self.addressing else { return Ok(0) };
        let populated = PfnBitmap::from_pfns(self.pfn_limit, backed.iter().copied())
            .map_err(|_| XenError::Layout { what: "p2m size", value: p2m.len() as u64 })?;
        let mut current = current.write().unwrap_or_else(|e| e.into_inner());
        let mut old_pop = self.populated.write().unwrap_or_else(|e| e.into_inner());
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let mut changed = 0;
        let n = p2m.len().max(current.len());
        for pfn in 0..n {
            let a = current.get(pfn).copied().unwrap_or(u64::MAX);
            let b = p2m.get(pfn).copied().unwrap_or(u64::MAX);
            let p = pfn as u64;
            if (a != b || old_pop.get(p) != populated.get(p)) && !current.is_empty() && pending.set(p) {
                changed += 1;
            }
        }
        let was_empty = current.is_empty();
        *current = p2m;
        *old_pop = populated;
        let changed_pfns: Vec<u64> = pending.iter_ones().collect();
        drop((current, old_pop, pending));
        self.forget_windows(changed_pfns.into_iter(), was_empty);
        Ok(changed)
    }

    /// The window of pfns `w * WINDOW_PFNS ..`, mapped on first use (one foreign-mapping call
    /// for the window's populated pfns).
    fn window(&self, w: u64) -> Result<Arc<Window>, XenError> {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(win) = windows.get(&w) {
            return Ok(Arc::clone(win));
        }
        if windows.len() >= MAX_WINDOWS {
            windows.clear();
        }
        let first = w * WINDOW_PFNS;
        let end = (first + WINDOW_PFNS).min(self.pfn_limit);
        let populated = self.populated.read().unwrap_or_else(|e| e.into_inner());
        let p2m_guard = match &self.addressing {
            Addressing::Pv { p2m, .. } => Some(p2m.read().unwrap_or_else(|e| e.into_inner())),
            Addressing::Hvm => None,
        };
        let mut slots = vec![u32::MAX; WINDOW_PFNS as usize];
        let mut frames = Vec::with_capacity(WINDOW_PFNS as usize);
        for pfn in first..end {
            // Only populated pfns are mapped: an HVM hole would cost a failed mapping each.
            let frame = match &p2m_guard {
                Some(p2m) => populated.get(pfn).then(|| p2m.get(pfn as usize).copied()).flatten(),
                None => populated.get(pfn).then_some(pfn),
            };
            if let Some(frame) = frame {
                slots[(pfn - first) as usize] = frames.len() as u32;
                frames.push(frame);
            }
        }
        drop((populated, p2m_guard));
        let map = self.fmem.map_read(self.domid, &frames)?;
        self.mapped_batches.fetch_add(1, Ordering::Relaxed);
        let win = Arc::new(Window { map, slots });
        windows.insert(w, Arc::clone(&win));
        Ok(win)
    }

    /// Drops the windows holding any of `pfns` (their frames changed), and every window if
    /// `all`.
    fn forget_windows(&self, pfns: impl Iterator<Item = u64>, all: bool) {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if all {
            windows.clear();
        }
        for pfn in pfns {
            windows.remove(&(pfn / WINDOW_PFNS));
        }
    }

    /// Drops every cached mapping window (before the domain is destroyed: a foreign mapping
    /// holds a reference on each of its frames).
    pub(crate) fn forget_all_windows(&self) {
        self.forget_windows(std::iter::empty(), true);
    }

    fn log_dirty_words(&self) -> Result<Vec<u64>, XenError> {
        let ctrl = self.ctrl.lock().unwrap_or_else(|e| e.into_inner());
        // Once the guest is suspended this is the final CLEAN: for HVM, Xen's saver sets
        // XEN_DOMCTL_SHADOW_LOGDIRTY_FINAL then.
        let final_pass = matches!(self.addressing, Addressing::Hvm) && self.quiesced.load(Ordering::SeqCst);
        ctrl.logdirty_bitmap(self.domid, self.pfn_limit, false, final_pass)
    }

    /// HVM/PVH: installs a fresh populated set (a gfn scan); the gfns that were populated or
    /// given back since go into the next dirty set and their windows are remapped. Returns
    /// their number.
    pub(crate) fn install_populated(&self, populated: PfnBitmap, broken: Vec<u64>) -> u64 {
        let mut old = self.populated.write().unwrap_or_else(|e| e.into_inner());
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let mut changed = Vec::new();
        let (a, b) = (old.as_words(), populated.as_words());
        for (i, (&x, &y)) in a.iter().zip(b).enumerate() {
            let mut diff = x ^ y;
            while diff != 0 {
                let pfn = i as u64 * 64 + u64::from(diff.trailing_zeros());
                diff &= diff - 1;
                if pfn < pending.len() {
                    pending.set(pfn);
                    changed.push(pfn);
                }
            }
        }
        *old = populated;
        *self.broken.lock().unwrap_or_else(|e| e.into_inner()) = broken;
        drop((old, pending));
        let n = changed.len() as u64;
        self.forget_windows(changed.into_iter(), false);
        n
    }

    /// HVM/PVH: gfns whose page Xen reported broken at the last scan (a saver sends them as
    /// BROKEN, without data).
    pub fn broken_pfns(&self) -> Vec<u64> {
        self.broken.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// HVM/PVH: of `pfns` (ascending), those not in the populated set that Xen now types as
    /// the guest's own are added to it (their windows remapped): a gfn the guest populated
    /// after the scan shows up in the log-dirty bitmap (`p2m_add_page` marks it), and must be
    /// read, not taken for a hole.
    fn adopt_populated(&self, pfns: &[u64]) -> Result<(), XenError> {
        let fresh: Vec<u64> = {
            let populated = self.populated.read().unwrap_or_else(|e| e.into_inner());
            pfns.iter().copied().filter(|&p| p < populated.len() && !populated.get(p)).collect()
        };
        if fresh.is_empty() {
            return Ok(());
        }
        let mut types = vec![0u8; fresh.len()];
        self.ctrl.lock().unwrap_or_else(|e| e.into_inner()).page_types(self.domid, &fresh, &mut types)?;
        let adopted: Vec<u64> = fresh
            .iter()
            .zip(&types)
            .filter(|(_, t)| !matches!(**t, crate::hvm::XTAB | crate::hvm::BROKEN))
            .map(|(&p, _)| p)
            .collect();
        if adopted.is_empty() {
            return Ok(());
        }
        {
            let mut populated = self.populated.write().unwrap_or_else(|e| e.into_inner());
            for &p in &adopted {
                populated.set(p);
            }
        }
        self.forget_windows(adopted.into_iter(), false);
        Ok(())
    }
}

impl GuestMemory for XenMemory {
    fn page_shift(&self) -> u32 {
        12
    }

    fn pfn_limit(&self) -> u64 {
        self.pfn_limit
    }

    fn populate(&self, pfns: &[Pfn]) -> Result<(), MemoryError> {
        match pfns.iter().find(|&&p| !self.is_populated(p)) {
            Some(&pfn) => Err(MemoryError::Unpopulated { pfn }),
            None => Ok(()),
        }
    }

    fn is_populated(&self, pfn: Pfn) -> bool {
        self.populated.read().map(|p| pfn < p.len() && p.get(pfn)).unwrap_or(false)
    }

    fn populated(&self) -> PfnBitmap {
        self.populated.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn write_pages(&self, pfns: &[Pfn], data: &[u8]) -> Result<(), MemoryError> {
        check_batch(pfns, data.len(), 12, self.pfn_limit)?;
        Err(MemoryError::Backend("sr-xen maps the domain read-only: it never writes guest memory".into()))
    }

    fn read_pages(&self, pfns: &[Pfn], out: &mut [u8]) -> Result<(), MemoryError> {
        check_batch(pfns, out.len(), 12, self.pfn_limit)?;
        self.interrupt.check()?;
        let mut current: Option<(u64, Arc<Window>)> = None;
        for (&pfn, page) in pfns.iter().zip(out.chunks_exact_mut(PAGE_SIZE)) {
            let window = self.window_of(pfn, &mut current)?;
            let slot = window.slots[(pfn % WINDOW_PFNS) as usize];
            if slot == u32::MAX {
                page.fill(0);
            } else if !window.map.copy_frame(slot as usize, page) {
                page.fill(0);
                self.unreadable.set(pfn);
            }
            if let Some(log) = self.compare.get() {
                log.record(pfn, page);
            }
        }
        Ok(())
    }

    /// Lends the mapped frames (see [`set_quiesced`](Self::set_quiesced)); declines (`None`:
    /// the caller copies) while the guest may write, or when a frame of the batch did not map
    /// (the copy then reads zeros and records it as unreadable). A pfn without a frame of the
    /// guest's own lends a page of zeros, as `read_pages` reads it.
    fn lend_pages(
        &self,
        pfns: &[Pfn],
        f: &mut dyn FnMut(&[&[u8]]) -> std::io::Result<()>,
    ) -> Option<std::io::Result<()>> {
        static ZERO: [u8; PAGE_SIZE] = [0; PAGE_SIZE];
        if !self.quiesced.load(Ordering::SeqCst) {
            return None;
        }
        if pfns.is_empty() {
            return Some(f(&[]));
        }
        if let Err(e) = check_batch(pfns, pfns.len() * PAGE_SIZE, 12, self.pfn_limit) {
            return Some(Err(std::io::Error::other(e)));
        }
        if let Err(e) = self.interrupt.check() {
            return Some(Err(std::io::Error::other(MemoryError::from(e))));
        }
        // The windows first (kept alive for the call), then slices borrowing them.
        let mut windows: Vec<(u64, Arc<Window>)> = Vec::new();
        for &pfn in pfns {
            let w = pfn / WINDOW_PFNS;
            if windows.last().is_none_or(|(cw, _)| *cw != w) {
                match self.window(w) {
                    Ok(win) => windows.push((w, win)),
                    Err(e) => return Some(Err(std::io::Error::other(MemoryError::from(e)))),
                }
            }
        }
        let mut slices: Vec<&[u8]> = Vec::with_capacity(pfns.len());
        let mut at = 0;
        for &pfn in pfns {
            let w = pfn / WINDOW_PFNS;
            while windows[at].0 != w {
                at += 1;
            }
            let window = &windows[at].1;
            let slot = window.slots[(pfn % WINDOW_PFNS) as usize];
            if slot == u32::MAX {
                slices.push(&ZERO);
            } else {
                slices.push(window.map.frame(slot as usize)?);
            }
        }
        Some(f(&slices))
    }

    fn take_dirty(&self) -> PfnBitmap {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let extra = std::mem::replace(&mut *pending, PfnBitmap::new(self.pfn_limit));
        drop(pending);
        let mut dirty = if self.log_dirty.load(Ordering::SeqCst) {
            let hvm = matches!(self.addressing, Addressing::Hvm);
            match self
                .log_dirty_words()
                .map_err(MemoryError::from)
                .and_then(|w| bitmap_from_xen(&w, self.pfn_limit, self.pfn_limit))
                .and_then(|d| {
                    if hvm {
                        let pfns: Vec<u64> = d.iter_ones().collect();
                        self.adopt_populated(&pfns)?;
                    }
                    Ok(d)
                }) {
                Ok(d) => d,
                Err(e) => {
                    let mut f = self.failure.lock().unwrap_or_else(|e| e.into_inner());
                    f.get_or_insert_with(|| e.to_string());
                    self.populated()
                }
            }
        } else if let Some(log) = self.compare.get() {
            let populated = self.populated();
            match self.compare_pass(log, populated.iter_ones()) {
                Ok(d) => d,
                Err(e) => {
                    let mut f = self.failure.lock().unwrap_or_else(|e| e.into_inner());
                    f.get_or_insert_with(|| e.to_string());
                    populated
                }
            }
        } else {
            self.populated()
        };
        dirty.union_with(&extra);
        dirty
    }
}
