//! A test [`Guest`] over [`RamMemory`], guest builders for every domain type, stream
//! scanners and failing writers/backends. Shared by the sr-save tests and, through
//! `#[path]`, by the workspace's round-trip tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use sr_format::body::{VCPU_CONTEXT_64, VcpuFrames};
use sr_format::libxl::{LibxlRecordType, emulator};
use sr_format::state::{DomainState, EmulatorState, P2mState, PvInfoState, TscState, VcpuState};
use sr_format::{DomainType, Item, PageType, RecordType, StreamReader};
use sr_memory::{GuestMemory, MemoryError, Pfn, PfnBitmap, RamMemory};
use sr_save::{Guest, SaveError};

/// The pfn limit of test guests.
pub const LIMIT: u64 = 2048;
/// An unpopulated hole every guest names (XTAB).
pub const HOLE: u64 = 1800;
/// A broken page PV guests name (BROKEN).
pub const BROKEN: u64 = 1801;
/// The start_info page of PV guests' vcpu 0 (a NOTAB page of the low run).
pub const PV_START_INFO: u64 = 25;
/// The GDT frames of PV guests' vcpus 0 and 1 (NOTAB pages of the low run).
pub const PV_GDT_FRAMES: [u64; 2] = [26, 27];

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A guest over any memory backend: state behind a mutex, page types from the state,
/// pause/resume that a dirtier respects, and optional deterministic dirtying from
/// `page_types` (so live-loop tests do not depend on timing).
pub struct TestGuest {
    pub mem: Box<dyn GuestMemory>,
    pub dtype: DomainType,
    pub state: Mutex<DomainState>,
    /// Whether the guest runs; writes by the dirtier happen under this lock, so a pause
    /// waits for an in-flight write.
    running: Mutex<bool>,
    pub pause_error: Option<String>,
    pub pauses: AtomicU32,
    pub resumes: AtomicU32,
    /// Pages written by each `page_types` call while running (0: none).
    pub dirty_per_batch: usize,
    /// The pages the dirtiers write, cyclically.
    pub hot: Vec<Pfn>,
    counter: AtomicU64,
    /// `page_types` panics for a batch containing this pfn.
    pub panic_at: Option<Pfn>,
    /// Each dirtying write also advances the TSC's nsec (the state changes while running).
    pub bump_tsc: bool,
}

impl TestGuest {
    pub fn new(mem: Box<dyn GuestMemory>, state: DomainState) -> Self {
        Self {
            mem,
            dtype: state.domain_type,
            state: Mutex::new(state),
            running: Mutex::new(true),
            pause_error: None,
            pauses: AtomicU32::new(0),
            resumes: AtomicU32::new(0),
            dirty_per_batch: 0,
            hot: Vec::new(),
            counter: AtomicU64::new(0),
            panic_at: None,
            bump_tsc: false,
        }
    }

    pub fn snapshot_state(&self) -> DomainState {
        lock(&self.state).clone()
    }

    pub fn set_state(&self, f: impl FnOnce(&mut DomainState)) {
        f(&mut lock(&self.state));
    }

    pub fn is_running(&self) -> bool {
        *lock(&self.running)
    }

    /// Writes the next hot page (if running): content depends on the pfn and a counter.
    pub fn dirty_one(&self) {
        let running = lock(&self.running);
        if !*running || self.hot.is_empty() {
            return;
        }
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let pfn = self.hot[(n % self.hot.len() as u64) as usize];
        let page = page_content(self.mem.page_size(), pfn, n + 1);
        self.mem.write_pages(&[pfn], &page).expect("hot pfn in range");
        if self.bump_tsc {
            self.set_state(|s| {
                if let Some(t) = s.tsc.as_mut() {
                    t.nsec += 1;
                }
            });
        }
        drop(running);
    }

    /// Dirties pages until `stop`, pausing with the guest.
    pub fn dirty_loop(&self, stop: &AtomicBool) {
        while !stop.load(Ordering::Relaxed) {
            for _ in 0..4 {
                self.dirty_one();
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

impl Guest for TestGuest {
    fn memory(&self) -> &dyn GuestMemory {
        &*self.mem
    }
    fn domain_type(&self) -> DomainType {
        self.dtype
    }
    fn page_types(&self, pfns: &[u64], out: &mut [PageType]) -> Result<(), SaveError> {
        if let Some(p) = self.panic_at
            && pfns.contains(&p)
        {
            panic!("page_types exploded at pfn {p:#x}");
        }
        {
            let s = lock(&self.state);
            for (pfn, t) in pfns.iter().zip(out.iter_mut()) {
                *t = s.page_type(*pfn);
            }
        }
        for _ in 0..self.dirty_per_batch {
            self.dirty_one();
        }
        Ok(())
    }
    fn extra_pfns(&self) -> Vec<u64> {
        let s = lock(&self.state);
        s.page_types.iter().filter(|(p, t)| !t.has_data() && !self.mem.is_populated(**p)).map(|(p, _)| *p).collect()
    }
    fn pause(&self) -> Result<(), SaveError> {
        self.pauses.fetch_add(1, Ordering::Relaxed);
        if let Some(e) = &self.pause_error {
            return Err(SaveError::Guest(e.clone()));
        }
        *lock(&self.running) = false;
        Ok(())
    }
    fn resume(&self) -> Result<(), SaveError> {
        self.resumes.fetch_add(1, Ordering::Relaxed);
        *lock(&self.running) = true;
        Ok(())
    }
    fn state(&self) -> Result<DomainState, SaveError> {
        Ok(self.snapshot_state())
    }
}

/// A page identified by pfn and version at both ends, with a fill derived from both.
pub fn page_content(size: usize, pfn: Pfn, version: u64) -> Vec<u8> {
    let tag = pfn << 20 | (version & 0xfffff);
    let mut p = vec![(tag as u8) ^ (tag >> 8) as u8 ^ 0x5a; size];
    p[..8].copy_from_slice(&tag.to_le_bytes());
    let n = p.len();
    p[n - 8..].copy_from_slice(&tag.to_le_bytes());
    // Every page is a plausible 64-bit PV start_info page (Xen's restore reads vcpu 0's):
    // store_mfn (byte 56) and console.domU.mfn (byte 72) name populated pages of the low run.
    if n >= 80 {
        p[56..64].copy_from_slice(&PV_GDT_FRAMES[0].to_le_bytes());
        p[72..80].copy_from_slice(&PV_GDT_FRAMES[1].to_le_bytes());
    }
    p
}

/// The populated pfns of a test guest with `pages` low pages: `0..pages` with data, a
/// sparse run with data, and a run populated but left zero.
pub fn layout(pages: u64) -> (Vec<Pfn>, Vec<Pfn>) {
    let data: Vec<Pfn> = (0..pages).chain((1000..1000 + pages / 2).step_by(3)).collect();
    let zero: Vec<Pfn> = (1500..1500 + pages / 10).collect();
    (data, zero)
}

/// Memory with [`layout`]'s pages.
pub fn memory(shift: u32, pages: u64) -> RamMemory {
    let mem = RamMemory::new(shift, LIMIT).unwrap();
    let (data, zero) = layout(pages);
    let size = 1usize << shift;
    let mut buf = Vec::with_capacity(data.len() * size);
    for &pfn in &data {
        buf.extend_from_slice(&page_content(size, pfn, 0));
    }
    mem.write_pages(&data, &buf).unwrap();
    mem.populate(&zero).unwrap();
    mem.take_dirty();
    mem
}

/// Makes a 64-bit `vcpu_guest_context` one Xen's `arch_set_info_guest` loads: canonical
/// addresses (the fields it checks, cut to the lower half), kernel mode, no LDT, no
/// vm_assist (offsets of Xen's layout).
pub fn make_loadable(b: &mut [u8]) {
    let mut edit = |at: usize, f: &dyn Fn(u64) -> u64| {
        let v = u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
        b[at..at + 8].copy_from_slice(&f(v).to_le_bytes());
    };
    edit(512, &|v| v | 1 << 2);
    for at in [648, 672, 4976, 5144, 5152, 5160, 5112, 5120, 5128].into_iter().chain((0..256).map(|i| 728 + 16 * i)) {
        edit(at, &|v| v & 0x0000_7fff_ffff_f000);
    }
    for at in [4816, 4824, 5136] {
        edit(at, &|_| 0);
    }
}

/// An X86_PV_VCPU_EXTENDED blob Xen loads: `pattern` with its size field, canonical
/// callbacks and MCG_CAP 2 banks.
pub fn extended_blob(pattern: &[u8]) -> Vec<u8> {
    let mut b = pattern.to_vec();
    let len = b.len() as u32;
    b[4..8].copy_from_slice(&len.to_le_bytes());
    b[8..24].fill(0);
    b[32..40].copy_from_slice(&2u64.to_le_bytes());
    b
}

/// An X86_PV_VCPU_XSAVE blob of `len` bytes (592: the size Xen wants for it): xcr0 = xcr0_accum = x87|SSE,
/// xstate_bv x87|SSE, the legacy region's bytes a pattern.
pub fn xsave_blob(len: usize) -> Vec<u8> {
    let mut b: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(7)).collect();
    b[..16].copy_from_slice(&[3, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0]);
    b[16 + 512..].fill(0);
    b[16 + 512] = 3;
    b
}

/// An X86_PV_VCPU_MSRS blob of `(index, value)` entries.
pub fn msrs_blob(entries: &[(u32, u64)]) -> Vec<u8> {
    entries.iter().flat_map(|(i, v)| i.to_le_bytes().into_iter().chain([0; 4]).chain(v.to_le_bytes())).collect()
}

/// An x86 HVM context Xen loads: HEADER (gtsc_khz `tag`), one CPU record (real-mode reset
/// state: CR0 ET, rip `tag`), END.
pub fn hvm_context(tag: u32) -> Vec<u8> {
    let mut b = Vec::new();
    let mut entry = |code: u16, payload: &[u8]| {
        b.extend_from_slice(&code.to_le_bytes());
        b.extend_from_slice(&0u16.to_le_bytes());
        b.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        b.extend_from_slice(payload);
    };
    let mut header = 0x5438_1286u32.to_le_bytes().to_vec();
    header.extend_from_slice(&1u32.to_le_bytes());
    header.extend_from_slice(&u64::MAX.to_le_bytes());
    header.extend_from_slice(&0x60fb1u32.to_le_bytes());
    header.extend_from_slice(&tag.to_le_bytes());
    entry(1, &header);
    let mut cpu = vec![0u8; 1032];
    cpu[640..648].copy_from_slice(&u64::from(tag).to_le_bytes()); // rip
    cpu[656..664].copy_from_slice(&0x10u64.to_le_bytes()); // cr0: ET
    entry(2, &cpu);
    entry(0, &[]);
    b
}

/// A complete state of `dtype` at Xen 4.17, v3, with every optional libxc record the type
/// has (device-model records: [`add_emulator`]).
pub fn state(dtype: DomainType, shift: u32) -> DomainState {
    let mut s = DomainState::new(dtype, shift as u16);
    s.xen_major = 4;
    s.xen_minor = 17;
    s.stream_version = 3;
    let x86 = dtype != DomainType::ARM;
    if x86 {
        s.cpuid = vec![
            [0, u32::MAX, 0xd, 0x756e_6547, 0x6c65_746e, 0x4965_6e69],
            [1, u32::MAX, 0x906ea, 0x800, 0x7ffa_fbff, 0xbfeb_fbff],
        ];
        s.msrs = vec![(0xce, 0, 0x8000_0000), (0x10a, 0, 0x0c)];
        s.tsc = Some(TscState { mode: 0, khz: 2_592_000, nsec: 123_456_789, incarnation: 2 });
    }
    match dtype {
        DomainType::X86_PV => {
            s.pv_info = Some(PvInfoState { guest_width: 8, pt_levels: 4 });
            // 512 entries per frame at width 8: pfns 0..2048 need 4 frames.
            s.p2m = Some(P2mState { end_pfn: (LIMIT - 1) as u32, frames: vec![10, 11, 12, 13] });
            let blob = |len: usize, seed: u8| (0..len).map(|i| (i as u8).wrapping_mul(seed)).collect::<Vec<u8>>();
            // Contexts naming plausible frames (validation row 45): start_info and the GDT in
            // NOTAB pages of the low run, CR3 (and vcpu 1's CR1) the pinned L4 at pfn 20.
            let basic = |seed: u8, frames: VcpuFrames| {
                let mut b = blob(VCPU_CONTEXT_64, seed);
                make_loadable(&mut b);
                frames.write(&mut b, 8);
                b
            };
            let mut gdt_frames = [0; 16];
            gdt_frames[0] = PV_GDT_FRAMES[0];
            let vcpu0 = VcpuFrames { start_info: PV_START_INFO, gdt_ents: 16, gdt_frames, cr3_pfn: 20, cr1_pfn: None };
            gdt_frames[0] = PV_GDT_FRAMES[1];
            let vcpu1 = VcpuFrames { start_info: 0, gdt_frames, cr1_pfn: Some(20), ..vcpu0 };
            s.vcpus.insert(
                0,
                VcpuState {
                    basic: Some(basic(3, vcpu0)),
                    extended: Some(extended_blob(&blob(64, 5))),
                    xsave: Some(xsave_blob(592)),
                    msrs: Some(msrs_blob(&[(0xc000_0103, 9), (0x48, 1)])),
                },
            );
            s.vcpus.insert(1, VcpuState { basic: Some(basic(11, vcpu1)), ..Default::default() });
            s.shared_info = Some(blob(4096, 13));
            for (pfn, t) in [
                (20, PageType::L4TAB_PINNED),
                (21, PageType::L3TAB),
                (22, PageType::L2TAB),
                (23, PageType::L1TAB),
                (24, PageType::L1TAB_PINNED),
                (BROKEN, PageType::BROKEN),
            ] {
                s.page_types.insert(pfn, t);
            }
        }
        _ => {
            s.hvm_context = Some(hvm_context(0x7777));
            s.hvm_params = vec![(1, 0xfeffc), (17, 0xfefff), (12, 0xfeffd000)];
        }
    }
    s.page_types.insert(HOLE, PageType::XTAB);
    s
}

/// Adds QEMU's device-model records (libxl EMULATOR_XENSTORE_DATA and EMULATOR_CONTEXT) to
/// an HVM state: only a libxl or xl container carries them (a libxc save refuses them).
pub fn add_emulator(s: &mut DomainState) {
    if s.domain_type == DomainType::X86_HVM {
        s.emulator = vec![
            EmulatorState {
                kind: LibxlRecordType::EMULATOR_XENSTORE_DATA,
                id: emulator::QEMU_UPSTREAM,
                index: 0,
                data: b"physmap/f0000000/start_addr\0f0000000\0physmap/f0000000/size\0800000\0".to_vec(),
            },
            EmulatorState {
                kind: LibxlRecordType::EMULATOR_CONTEXT,
                id: emulator::QEMU_UPSTREAM,
                index: 0,
                data: b"QEVM\0\0\0\x03qemu device state".to_vec(),
            },
        ];
    }
}

/// A guest of `dtype` with `pages` low pages.
pub fn guest(dtype: DomainType, shift: u32, pages: u64) -> TestGuest {
    TestGuest::new(Box::new(memory(shift, pages)), state(dtype, shift))
}

/// Everything in a stream, layer by layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seen {
    Xl,
    LibxlHeader,
    Libxl(LibxlRecordType),
    ImageHeader(u32),
    DomainHeader(DomainType, u16),
    Record(RecordType),
}

/// Scans a stream (strictly) until it ends or breaks; returns what was seen and the error.
pub fn scan(bytes: &[u8]) -> (Vec<Seen>, Option<sr_format::Error>) {
    let mut r = StreamReader::from_slice(bytes).strictness(sr_format::Strictness::Strict);
    let mut seen = Vec::new();
    loop {
        match r.next_item() {
            Ok(None) => return (seen, None),
            Err(e) => return (seen, Some(e)),
            Ok(Some(item)) => seen.push(match item {
                // sr-save never writes a virsh header; it would show as the outer header it is.
                Item::Xl { .. } | Item::Virsh { .. } => Seen::Xl,
                Item::LibxlHeader { .. } => Seen::LibxlHeader,
                Item::LibxlRecord(r) => Seen::Libxl(r.rtype),
                Item::ImageHeader { header, .. } => Seen::ImageHeader(header.version.get()),
                Item::DomainHeader { header, .. } => Seen::DomainHeader(header.domain_type(), header.page_shift.get()),
                Item::Record(r) => Seen::Record(r.rtype),
            }),
        }
    }
}

/// The libxc record types of a complete stream, runs of PAGE_DATA collapsed to one.
pub fn record_order(bytes: &[u8]) -> Vec<RecordType> {
    let (seen, err) = scan(bytes);
    assert!(err.is_none(), "stream does not scan: {err:?}");
    let mut out: Vec<RecordType> = Vec::new();
    for s in seen {
        if let Seen::Record(t) = s
            && !(t == RecordType::PAGE_DATA && out.last() == Some(&RecordType::PAGE_DATA))
        {
            out.push(t);
        }
    }
    out
}

/// How many of each libxc record type a stream has.
pub fn record_counts(bytes: &[u8]) -> BTreeMap<RecordType, usize> {
    let mut out = BTreeMap::new();
    for s in scan(bytes).0 {
        if let Seen::Record(t) = s {
            *out.entry(t).or_default() += 1;
        }
    }
    out
}

/// A writer that accepts `limit` bytes, then fails (or, with `zero`, reports 0 bytes
/// written, as a closed pipe seen through a broken adapter would).
pub struct FailAfter {
    pub out: Vec<u8>,
    pub limit: usize,
    pub zero: bool,
}

impl FailAfter {
    pub fn new(limit: usize) -> Self {
        Self { out: Vec::new(), limit, zero: false }
    }
}

impl Write for FailAfter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = self.limit - self.out.len();
        if room == 0 && !buf.is_empty() {
            if self.zero {
                return Ok(0);
            }
            return Err(io::Error::new(io::ErrorKind::StorageFull, "no space left on device"));
        }
        let n = buf.len().min(room);
        self.out.extend_from_slice(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A backend wrapper: optional failure reading `fail_pfn`, optional lending.
pub struct Faulty {
    pub inner: RamMemory,
    pub fail_pfn: Option<Pfn>,
    pub lend: bool,
}

impl GuestMemory for Faulty {
    fn page_shift(&self) -> u32 {
        self.inner.page_shift()
    }
    fn pfn_limit(&self) -> u64 {
        self.inner.pfn_limit()
    }
    fn populate(&self, pfns: &[Pfn]) -> Result<(), MemoryError> {
        self.inner.populate(pfns)
    }
    fn is_populated(&self, pfn: Pfn) -> bool {
        self.inner.is_populated(pfn)
    }
    fn populated(&self) -> PfnBitmap {
        self.inner.populated()
    }
    fn write_pages(&self, pfns: &[Pfn], data: &[u8]) -> Result<(), MemoryError> {
        self.inner.write_pages(pfns, data)
    }
    fn read_pages(&self, pfns: &[Pfn], out: &mut [u8]) -> Result<(), MemoryError> {
        if let Some(bad) = self.fail_pfn.filter(|p| pfns.contains(p)) {
            return Err(MemoryError::Io { op: "pread", pfn: bad, source: io::Error::other("media error") });
        }
        self.inner.read_pages(pfns, out)
    }
    fn take_dirty(&self) -> PfnBitmap {
        self.inner.take_dirty()
    }
    fn lend_pages(&self, pfns: &[Pfn], f: &mut dyn FnMut(&[&[u8]]) -> io::Result<()>) -> Option<io::Result<()>> {
        if !self.lend {
            return None;
        }
        if let Some(bad) = self.fail_pfn.filter(|p| pfns.contains(p)) {
            let err = MemoryError::Io { op: "map", pfn: bad, source: io::Error::other("media error") };
            return Some(Err(io::Error::new(io::ErrorKind::InvalidInput, err)));
        }
        self.inner.lend_pages(pfns, f)
    }
}

/// Runs `f` on a thread and fails the test if it does not finish in `secs` seconds.
pub fn within<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(v) => {
            handle.join().unwrap();
            v
        }
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => panic!("did not finish within {secs} s (hang?)"),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            // The closure panicked: re-raise its panic.
            match handle.join() {
                Err(p) => std::panic::resume_unwind(p),
                Ok(()) => unreachable!("sent nothing but returned"),
            }
        }
    }
}

/// Whether the pages of `pfns` hold the same bytes in both memories.
pub fn same_pages(a: &dyn GuestMemory, b: &dyn GuestMemory, pfns: &[Pfn]) -> bool {
    let size = a.page_size();
    let mut x = vec![0; size * pfns.len()];
    let mut y = vec![0; size * pfns.len()];
    a.read_pages(pfns, &mut x).unwrap();
    b.read_pages(pfns, &mut y).unwrap();
    x == y
}

/// Asserts two memories have the same populated pfns with the same contents.
pub fn assert_same_memory(a: &dyn GuestMemory, b: &dyn GuestMemory) {
    let pa: Vec<Pfn> = a.populated().iter_ones().collect();
    let pb: Vec<Pfn> = b.populated().iter_ones().collect();
    assert_eq!(pa.len(), pb.len(), "populated counts differ");
    assert!(pa == pb, "populated pfns differ");
    for chunk in pa.chunks(256) {
        assert!(
            same_pages(a, b, chunk),
            "page contents differ in pfns {:#x}..={:#x}",
            chunk[0],
            chunk[chunk.len() - 1]
        );
    }
}

/// A minimal receiver: every PAGE_DATA body in stream order (later copies win), stopping
/// at VERIFY; returns pfn -> (type, page body if any).
pub fn apply_pages(bytes: &[u8]) -> BTreeMap<Pfn, (PageType, Option<Vec<u8>>)> {
    use sr_format::body::RecordBody;
    let mut r = StreamReader::from_slice(bytes);
    let mut shift = 12;
    let mut out = BTreeMap::new();
    while let Some(item) = r.next_item().unwrap() {
        match item {
            Item::DomainHeader { header, .. } => shift = header.page_shift.get(),
            Item::Record(rec) if rec.rtype == RecordType::VERIFY => break,
            Item::Record(rec) => {
                if let RecordBody::PageData(p) = RecordBody::parse(&rec, shift, sr_format::Strictness::Strict).unwrap()
                {
                    let mut bodies = p.pages.chunks_exact(p.page_size());
                    for e in p.entries() {
                        let body = e.page_type.has_data().then(|| bodies.next().unwrap().to_vec());
                        out.insert(e.pfn, (e.page_type, body));
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// Asserts the pages a stream carries are exactly the guest's populated memory now.
pub fn assert_stream_matches_memory(bytes: &[u8], mem: &dyn GuestMemory) {
    let pages = apply_pages(bytes);
    let size = mem.page_size();
    let mut buf = vec![0; size];
    for pfn in mem.populated().iter_ones() {
        let (t, body) = pages.get(&pfn).unwrap_or_else(|| panic!("pfn {pfn:#x} never sent"));
        mem.read_pages(&[pfn], &mut buf).unwrap();
        match body {
            Some(b) => assert!(b[..] == buf[..], "pfn {pfn:#x}: stale page in the stream"),
            None => assert!(*t == PageType::XALLOC && buf.iter().all(|&x| x == 0), "pfn {pfn:#x} sent as {t}"),
        }
    }
}
