//! [`XenMemory`]: a running domain's memory as an sr-memory [`GuestMemory`] (read-only).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use sr_memory::{AtomicPfnBitmap, GuestMemory, MemoryError, Pfn, PfnBitmap, check_batch};

use crate::dirty::bitmap_from_xen;
use crate::error::XenError;
use crate::ffi::{ForeignMemory, M2p, PAGE_SIZE, XenCtrl};
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

/// Reads frames of one domain through a foreign mapping, for the p2m walk.
pub(crate) struct Frames<'a> {
    pub(crate) fmem: &'a ForeignMemory,
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
/// * `read_pages` maps one batch (one `xenforeignmemory_map` of the batch's frames), copies
///   each page once into the caller's buffer and unmaps. A frame that does not map (a hole, a
///   paged-out or shared frame: the per-frame errno) reads as zeros and is recorded in
///   [`unreadable`](Self::unreadable); it is not an error. PV pfns without a frame of their own
///   (the p2m entry is invalid or the m2p disagrees, Xen's `mfn_in_pseudophys_map`) are not
///   populated and read as zeros.
/// * `take_dirty` is Xen's log-dirty bitmap (`XEN_DOMCTL_SHADOW_OP_CLEAN`) while log-dirty mode
///   is on, plus the pfns whose p2m entry changed at the last [`XenDomain::refresh_p2m`]
///   (crate::XenDomain::refresh_p2m). With log-dirty off, or if the hypercall fails, every
///   populated pfn is reported dirty (never too few); a failure is kept for
///   [`failure`](Self::failure).
/// * Writes are refused: a dump never changes the guest.
/// * Every batch checks the [`Interrupt`] flag first, so SIGINT/SIGTERM stop a copy within one
///   batch.
#[derive(Debug)]
pub struct XenMemory {
    pub(crate) domid: u32,
    pub(crate) ctrl: Arc<Mutex<XenCtrl>>,
    pub(crate) fmem: ForeignMemory,
    pub(crate) addressing: Addressing,
    pub(crate) pfn_limit: u64,
    pub(crate) populated: RwLock<PfnBitmap>,
    pub(crate) log_dirty: AtomicBool,
    pub(crate) pending: Mutex<PfnBitmap>,
    pub(crate) unreadable: AtomicPfnBitmap,
    pub(crate) failure: Mutex<Option<String>>,
    pub(crate) interrupt: Interrupt,
    pub(crate) mapped_batches: AtomicU64,
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

    /// Foreign-mapping calls made so far (one per batch).
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
        *current = p2m;
        *old_pop = populated;
        Ok(changed)
    }

    fn frame_of(&self, pfn: Pfn, p2m: Option<&[u64]>, populated: &PfnBitmap) -> Option<u64> {
        match p2m {
            Some(p2m) => populated.get(pfn).then(|| p2m.get(pfn as usize).copied()).flatten(),
            None => Some(pfn),
        }
    }

    fn log_dirty_words(&self) -> Result<Vec<u64>, XenError> {
        let ctrl = self.ctrl.lock().unwrap_or_else(|e| e.into_inner());
        ctrl.logdirty_bitmap(self.domid, self.pfn_limit, false)
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
        let populated = self.populated.read().unwrap_or_else(|e| e.into_inner());
        let p2m_guard = match &self.addressing {
            Addressing::Pv { p2m, .. } => Some(p2m.read().unwrap_or_else(|e| e.into_inner())),
            Addressing::Hvm => None,
        };
        let p2m = p2m_guard.as_deref().map(Vec::as_slice);
        let mut slots = Vec::with_capacity(pfns.len());
        let mut frames = Vec::with_capacity(pfns.len());
        for (i, &pfn) in pfns.iter().enumerate() {
            match self.frame_of(pfn, p2m, &populated) {
                Some(frame) => {
                    slots.push(i);
                    frames.push(frame);
                }
                None => out[i * PAGE_SIZE..(i + 1) * PAGE_SIZE].fill(0),
            }
        }
        drop(populated);
        let map = self.fmem.map_read(self.domid, &frames)?;
        self.mapped_batches.fetch_add(1, Ordering::Relaxed);
        for (j, &i) in slots.iter().enumerate() {
            let page = &mut out[i * PAGE_SIZE..(i + 1) * PAGE_SIZE];
            if !map.copy_frame(j, page) {
                page.fill(0);
                self.unreadable.set(pfns[i]);
            }
        }
        Ok(())
    }

    fn take_dirty(&self) -> PfnBitmap {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let extra = std::mem::replace(&mut *pending, PfnBitmap::new(self.pfn_limit));
        drop(pending);
        let mut dirty = if self.log_dirty.load(Ordering::SeqCst) {
            match self
                .log_dirty_words()
                .map_err(MemoryError::from)
                .and_then(|w| bitmap_from_xen(&w, self.pfn_limit, self.pfn_limit))
            {
                Ok(d) => d,
                Err(e) => {
                    let mut f = self.failure.lock().unwrap_or_else(|e| e.into_inner());
                    f.get_or_insert_with(|| e.to_string());
                    self.populated()
                }
            }
        } else {
            self.populated()
        };
        dirty.union_with(&extra);
        dirty
    }
}
