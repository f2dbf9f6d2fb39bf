//! A synthetic guest for `xsr demo`: memory in a [`RamMemory`], plausible state for its
//! domain type, and a thread that keeps dirtying pages like a running guest until paused.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sr_format::body::{VCPU_CONTEXT_64, VcpuFrames};
use sr_format::libxl::LibxlRecordType;
use sr_format::state::{DomainState, EmulatorState, P2mState, PvInfoState, TscState, VcpuState};
use sr_format::{DomainType, PageType};
use sr_memory::{GuestMemory, MemoryError, RamMemory};
use sr_save::{Guest, SaveError};

/// A deterministic generator (xorshift64*), so demo runs are reproducible.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Self(seed | 1)
    }
    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Fills `buf`.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// Turns random bytes into a 64-bit PV `vcpu_guest_context` Xen's `arch_set_info_guest`
/// loads (`sr_rules::pv_vcpu::check_basic`): the addresses it checks canonical, kernel mode,
/// no LDT, no vm_assist. Offsets of Xen's `vcpu_guest_context`.
fn make_loadable(b: &mut [u8]) {
    let mut edit = |at: usize, f: &dyn Fn(u64) -> u64| {
        let v = u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"));
        b[at..at + 8].copy_from_slice(&f(v).to_le_bytes());
    };
    edit(512, &|v| v | 1 << 2); // flags: VGCF_in_kernel
    let addresses = [648, 672, 4976, 5112, 5120, 5128, 5144, 5152, 5160];
    for at in addresses.into_iter().chain((0..256).map(|i| 728 + 16 * i)) {
        edit(at, &|v| v & 0x0000_7fff_ffff_f000);
    }
    for at in [4816, 4824, 5136] {
        edit(at, &|_| 0); // ldt_base, ldt_ents, vm_assist
    }
}

/// A PV extended context (`xen_domctl_ext_vcpucontext`, 64 bytes) for vcpu `id`: its size
/// field, no SYSCALL32/SYSENTER callbacks, MCG_CAP with 2 banks.
fn extended_context(id: u32) -> Vec<u8> {
    let mut b = vec![0u8; 64];
    b[..4].copy_from_slice(&id.to_le_bytes());
    b[4..8].copy_from_slice(&64u32.to_le_bytes());
    b[32..40].copy_from_slice(&2u64.to_le_bytes());
    b
}

/// PV XSAVE state: xcr0 = xcr0_accum = x87|SSE, the 512-byte legacy region `fxsave`, an
/// XSAVE header with both components: 592 bytes, the size Xen wants for that xcr0_accum.
fn xsave_state(fxsave: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(16 + 576);
    b.extend_from_slice(&3u64.to_le_bytes());
    b.extend_from_slice(&3u64.to_le_bytes());
    b.extend_from_slice(&fxsave[..512]);
    b.extend_from_slice(&3u64.to_le_bytes());
    b.resize(16 + 576, 0);
    b
}

/// An HVM CPU save record (`hvm_hw_cpu`, 1032 bytes) from random bytes: random general
/// registers and FPU image, a 32-bit protected-mode vcpu without paging (CR0 PE|ET, CR4 0,
/// EFER 0), no pending event, the flags and padding Xen accepts.
fn hvm_cpu(random: &[u8]) -> Vec<u8> {
    let mut c = random[..1032].to_vec();
    let mut put = |at: usize, v: u64| c[at..at + 8].copy_from_slice(&v.to_le_bytes());
    put(640, 0x0010_0000); // rip
    put(648, 0x2); // rflags
    put(656, 0x11); // cr0: PE | ET
    put(672, 0); // cr3
    put(680, 0); // cr4
    put(992, 0); // msr_efer
    put(1000, 0); // msr_tsc_aux
    put(1016, 0); // pending_event, error_code
    put(1024, 1); // flags: XEN_X86_FPU_INITIALISED, pad0 0
    c
}

/// The state a synthetic guest of `dtype` with `pages` pages carries.
pub fn synthetic_state(dtype: DomainType, page_shift: u16, pages: u64) -> DomainState {
    let mut rng = Rng::new(0x5EED ^ u64::from(dtype.0));
    let mut blob = |len: usize| {
        let mut b = vec![0u8; len];
        rng.fill(&mut b);
        b
    };
    let mut s = DomainState::new(dtype, page_shift);
    s.xen_major = 4;
    s.xen_minor = 17;
    let x86 = dtype != DomainType::ARM;
    if x86 {
        s.tsc = Some(TscState { mode: 0, khz: 2_596_124, nsec: 41_389_703_927, incarnation: 1 });
        // Leaves 4 and 7 have subleaves; the others carry XEN_CPUID_NO_SUBLEAF, as Xen wants.
        s.cpuid = (0..8u32)
            .map(|leaf| {
                let subleaf = if matches!(leaf, 4 | 7) { 0 } else { u32::MAX };
                [leaf, subleaf, 0x756e_6547 + leaf, 0x4965_6e69, 0x6c65_746e, leaf * 3]
            })
            .collect();
        s.msrs = vec![(0xce, 0, 0x8000_0000), (0x10a, 0, 0)];
    }
    match dtype {
        DomainType::X86_PV => {
            s.pv_info = Some(PvInfoState { guest_width: 8, pt_levels: 4 });
            // The p2m occupies the last pages of the guest: one frame per 512 pfns.
            let frames = pages.div_ceil(512);
            let end_pfn = u32::try_from(pages - 1).expect("demo guests are small");
            s.p2m = Some(P2mState { end_pfn, frames: (pages - frames..pages).collect() });
            s.shared_info = Some(blob(4096));
            // vcpu 0's context names plausible frames (Xen's restore checks them at END):
            // start_info and the one GDT frame in NOTAB pages just above the page tables,
            // CR3 the pinned L4 at pfn 1, no separate user page table (CR1).
            let mut basic = blob(VCPU_CONTEXT_64);
            make_loadable(&mut basic);
            let mut gdt_frames = [0; 16];
            gdt_frames[0] = PV_GDT_FRAME;
            VcpuFrames { start_info: PV_START_INFO, gdt_ents: 16, gdt_frames, cr3_pfn: 1, cr1_pfn: None }
                .write(&mut basic, 8);
            s.vcpus.insert(
                0,
                VcpuState {
                    basic: Some(basic),
                    extended: Some(extended_context(0)),
                    xsave: Some(xsave_state(&blob(512))),
                    msrs: None,
                },
            );
            // A small page-table tree at the start of memory.
            s.page_types.insert(1, PageType::L4TAB_PINNED);
            for pfn in 2..4 {
                s.page_types.insert(pfn, PageType::L3TAB);
            }
            for pfn in 4..8 {
                s.page_types.insert(pfn, PageType::L2TAB);
            }
            for pfn in 8..24 {
                s.page_types.insert(pfn, PageType::L1TAB_PINNED);
            }
        }
        _ => {
            // An HVM save blob: HEADER, one CPU entry, END (typecode, instance, length, payload).
            let mut ctx = Vec::new();
            let mut entry = |code: u16, payload: &[u8]| {
                ctx.extend_from_slice(&code.to_le_bytes());
                ctx.extend_from_slice(&0u16.to_le_bytes());
                ctx.extend_from_slice(&(payload.len() as u32).to_le_bytes());
                ctx.extend_from_slice(payload);
            };
            let mut header = 0x5438_1286u32.to_le_bytes().to_vec();
            header.extend_from_slice(&[1, 0, 0, 0]);
            header.resize(24, 0);
            entry(1, &header);
            entry(2, &hvm_cpu(&blob(1032)));
            entry(0, &[]);
            s.hvm_context = Some(ctx);
            let last = pages - 1;
            s.hvm_params = vec![(1, last), (17, last - 1), (5, last - 2), (6, last - 3), (38, 1)];
            if dtype == DomainType::X86_HVM {
                let mut xs = b"physmap/f0000000/start_addr\0f0000000\0physmap/f0000000/size\0800000\0".to_vec();
                xs.extend_from_slice(b"physmap/f0000000/name\0vga.vram\0");
                s.emulator = vec![
                    EmulatorState { kind: LibxlRecordType::EMULATOR_XENSTORE_DATA, id: 2, index: 0, data: xs },
                    EmulatorState { kind: LibxlRecordType::EMULATOR_CONTEXT, id: 2, index: 0, data: blob(3000) },
                ];
            }
        }
    }
    // A ballooned-out hole, sent as XTAB.
    s.page_types.insert(hole_pfn(pages), PageType::XTAB);
    s
}

/// The start_info pfn of a synthetic PV guest's vcpu 0 (an ordinary page).
pub const PV_START_INFO: u64 = 24;
/// The GDT frame of a synthetic PV guest's vcpu 0 (an ordinary page).
pub const PV_GDT_FRAME: u64 = 25;

/// The xenstore and console pfns the synthetic PV guest's start_info page names.
pub const PV_STORE: u64 = 26;
/// See [`PV_STORE`].
pub const PV_CONSOLE: u64 = 27;

/// The page tables and start_info page of a synthetic PV guest of `pages` pages, which
/// Xen's restore reads (and xsr's save and restore check, `sr_rules::pv`): the pinned L4 at
/// pfn 1 maps the L3s at 2-3, they the L2s at 4-7, they the L1s at 8-23, and the L1s map the
/// ordinary pages from pfn 32 up (present entries only for pfns the guest has); start_info
/// (pfn 24) carries Xen's magic and names the xenstore and console pages.
pub fn pv_special_pages(pages: u64) -> Vec<(u64, Vec<u8>)> {
    const FLAGS: u64 = 0x67; // present, writable, user, accessed, dirty
    let table = |entries: &mut dyn Iterator<Item = u64>| {
        let mut page = vec![0u8; 4096];
        for (slot, pfn) in entries.take(512).enumerate() {
            if pfn < pages {
                page[slot * 8..slot * 8 + 8].copy_from_slice(&(pfn << 12 | FLAGS).to_le_bytes());
            }
        }
        page
    };
    let mut out = vec![(1, table(&mut (2..4)))];
    out.extend((2..4).map(|pfn| (pfn, table(&mut (4 + (pfn - 2) * 2..6 + (pfn - 2) * 2)))));
    out.extend((4..8).map(|pfn| (pfn, table(&mut (8 + (pfn - 4) * 4..12 + (pfn - 4) * 4)))));
    out.extend((8..24).map(|pfn| (pfn, table(&mut (32 + (pfn - 8) * 512..)))));
    let mut start_info = vec![0u8; 4096];
    start_info[..15].copy_from_slice(b"xen-3.0-x86_64\0");
    start_info[32..40].copy_from_slice(&pages.to_le_bytes());
    start_info[56..64].copy_from_slice(&PV_STORE.to_le_bytes());
    start_info[72..80].copy_from_slice(&PV_CONSOLE.to_le_bytes());
    out.push((PV_START_INFO, start_info));
    out
}

/// The one pfn of a synthetic guest that is a hole (below the PV p2m frames).
pub fn hole_pfn(pages: u64) -> u64 {
    pages - pages.div_ceil(512) - 1
}

/// A synthetic guest whose memory a background thread keeps writing until [`sr_save::Guest::pause`].
pub struct SyntheticGuest {
    memory: Arc<RamMemory>,
    state: Mutex<DomainState>,
    paused: Arc<AtomicBool>,
    /// Held by the dirtier while it writes; `pause` takes it so no write is in flight after.
    writing: Arc<Mutex<()>>,
    dirtier: Mutex<Option<JoinHandle<()>>>,
    dirtied: Arc<AtomicU64>,
    pages: u64,
}

impl std::fmt::Debug for SyntheticGuest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyntheticGuest").field("pages", &self.pages).finish_non_exhaustive()
    }
}

impl SyntheticGuest {
    /// A guest of `dtype` with `bytes` of memory, every page filled with seeded content.
    pub fn new(dtype: DomainType, page_shift: u16, bytes: u64) -> Result<Self, MemoryError> {
        let page = 1u64 << page_shift;
        let pages = (bytes / page).max(64);
        let memory = RamMemory::new(u32::from(page_shift), pages)?;
        let hole = hole_pfn(pages);
        let mut rng = Rng::new(0xDEC0DE);
        let batch = 256u64;
        let mut buf = vec![0u8; (batch * page) as usize];
        let mut first = 0;
        while first < pages {
            let n = batch.min(pages - first);
            let pfns: Vec<u64> = (first..first + n).filter(|&p| p != hole).collect();
            let data = &mut buf[..pfns.len() * page as usize];
            rng.fill(data);
            memory.write_pages(&pfns, data)?;
            first += n;
        }
        if dtype == DomainType::X86_PV {
            for (pfn, body) in pv_special_pages(pages) {
                memory.write_pages(&[pfn], &body)?;
            }
        }
        Ok(Self {
            memory: Arc::new(memory),
            state: Mutex::new(synthetic_state(dtype, page_shift, pages)),
            paused: Arc::new(AtomicBool::new(false)),
            writing: Arc::new(Mutex::new(())),
            dirtier: Mutex::new(None),
            dirtied: Arc::new(AtomicU64::new(0)),
            pages,
        })
    }

    /// Pages of memory.
    pub fn pages(&self) -> u64 {
        self.pages
    }

    /// The memory, shared.
    pub fn ram(&self) -> &Arc<RamMemory> {
        &self.memory
    }

    /// Pages written by the dirtier so far.
    pub fn dirtied(&self) -> u64 {
        self.dirtied.load(Ordering::Relaxed)
    }

    /// Starts a thread that writes `rate` random pages per second (in 10 ms ticks).
    pub fn start_dirtying(&self, rate: u64) {
        if rate == 0 {
            return;
        }
        let (memory, paused, writing, dirtied) =
            (self.memory.clone(), self.paused.clone(), self.writing.clone(), self.dirtied.clone());
        let pages = self.pages;
        // Page tables and the p2m stay put; the guest dirties ordinary pages above them.
        let low = 32.min(pages / 2);
        let handle = std::thread::spawn(move || {
            let mut rng = Rng::new(0xD1B7);
            let page = memory.page_size();
            let start = Instant::now();
            let mut done = 0u64;
            let mut buf = vec![0u8; page];
            while !paused.load(Ordering::Acquire) {
                let due = rate * start.elapsed().as_millis() as u64 / 1000;
                if done >= due {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
                let _guard = writing.lock().unwrap_or_else(|e| e.into_inner());
                if paused.load(Ordering::Acquire) {
                    break;
                }
                for _ in 0..(due - done).min(4096) {
                    // Below the hole and the p2m frames.
                    let pfn = low + rng.next_u64() % hole_pfn(pages).saturating_sub(low).max(1);
                    rng.fill(&mut buf);
                    if memory.write_pages(&[pfn], &buf).is_err() {
                        return;
                    }
                    done += 1;
                    dirtied.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        *self.dirtier.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle);
    }

    /// Stops the dirtier (idempotent).
    fn stop(&self) {
        self.paused.store(true, Ordering::Release);
        drop(self.writing.lock().unwrap_or_else(|e| e.into_inner()));
        if let Some(h) = self.dirtier.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = h.join();
        }
    }

    /// The state now.
    pub fn current_state(&self) -> DomainState {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Drop for SyntheticGuest {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Guest for SyntheticGuest {
    fn memory(&self) -> &dyn GuestMemory {
        &*self.memory
    }
    fn domain_type(&self) -> DomainType {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).domain_type
    }
    fn page_types(&self, pfns: &[u64], out: &mut [PageType]) -> Result<(), SaveError> {
        let s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        for (pfn, t) in pfns.iter().zip(out.iter_mut()) {
            *t = s.page_type(*pfn);
        }
        Ok(())
    }
    fn extra_pfns(&self) -> Vec<u64> {
        let s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.page_types.iter().filter(|(_, t)| !t.has_data()).map(|(p, _)| *p).collect()
    }
    fn pause(&self) -> Result<(), SaveError> {
        self.stop();
        Ok(())
    }
    fn state(&self) -> Result<DomainState, SaveError> {
        Ok(self.current_state())
    }
}
