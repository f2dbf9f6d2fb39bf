//! Save throughput from RAM into memory: a 1 GiB HVM guest in `RamMemory` (every page
//! written once, so it is faulted in) saved into a pre-sized `Vec<u8>` sink, against a plain
//! `copy_from_slice` of 1 GiB into a pre-sized `Vec<u8>` sink.
//!
//! With the zero-copy path (the backend lends pages to the writer) a save does one copy,
//! guest memory to sink, like the memcpy; the target is at least 0.8x its throughput. The
//! copying path (workers copy into batch buffers, the writer copies those into the sink)
//! is measured too, with 1 and 2 workers.
//!
//! Run with `cargo bench -p sr-save --bench save`; it prints a summary with the ratios.

use std::hint::black_box;
use std::io::Write;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use sr_format::state::DomainState;
use sr_format::{DomainType, PageType};
use sr_memory::{GuestMemory, MemoryError, Pfn, PfnBitmap, RamMemory};
use sr_save::{Guest, SaveError, SaveOptions, Saver};

const PAGE_SHIFT: u32 = 12;
const GUEST_BYTES: usize = 1 << 30;
const PAGES: u64 = (GUEST_BYTES >> PAGE_SHIFT) as u64;

/// `RamMemory` without lending, to measure the copying path.
struct NoLend(RamMemory);

impl GuestMemory for NoLend {
    fn page_shift(&self) -> u32 {
        self.0.page_shift()
    }
    fn pfn_limit(&self) -> u64 {
        self.0.pfn_limit()
    }
    fn populate(&self, pfns: &[Pfn]) -> Result<(), MemoryError> {
        self.0.populate(pfns)
    }
    fn is_populated(&self, pfn: Pfn) -> bool {
        self.0.is_populated(pfn)
    }
    fn populated(&self) -> PfnBitmap {
        self.0.populated()
    }
    fn write_pages(&self, pfns: &[Pfn], data: &[u8]) -> Result<(), MemoryError> {
        self.0.write_pages(pfns, data)
    }
    fn read_pages(&self, pfns: &[Pfn], out: &mut [u8]) -> Result<(), MemoryError> {
        self.0.read_pages(pfns, out)
    }
    fn take_dirty(&self) -> PfnBitmap {
        self.0.take_dirty()
    }
}

struct BenchGuest<M> {
    mem: M,
    state: DomainState,
}

impl<M: GuestMemory> Guest for BenchGuest<M> {
    fn memory(&self) -> &dyn GuestMemory {
        &self.mem
    }
    fn domain_type(&self) -> DomainType {
        DomainType::X86_HVM
    }
    fn page_types(&self, _pfns: &[u64], out: &mut [PageType]) -> Result<(), SaveError> {
        out.fill(PageType::NOTAB);
        Ok(())
    }
    fn pause(&self) -> Result<(), SaveError> {
        Ok(())
    }
    fn state(&self) -> Result<DomainState, SaveError> {
        Ok(self.state.clone())
    }
}

/// 1 GiB of RAM with every page written (non-zero, distinct).
fn guest_memory() -> RamMemory {
    let mem = RamMemory::new(PAGE_SHIFT, PAGES).expect("valid geometry");
    let batch = 1024usize;
    let mut buf = vec![0u8; batch << PAGE_SHIFT];
    let pfns: Vec<Pfn> = (0..PAGES).collect();
    for chunk in pfns.chunks(batch) {
        for (i, page) in buf.chunks_exact_mut(1 << PAGE_SHIFT).enumerate() {
            page.fill((chunk[0] as usize + i) as u8 | 1);
        }
        mem.write_pages(chunk, &buf).expect("in range");
    }
    mem.take_dirty();
    mem
}

fn state() -> DomainState {
    let mut s = DomainState::new(DomainType::X86_HVM, PAGE_SHIFT as u16);
    s.hvm_context = Some(vec![1; 1024]);
    s
}

fn save_into(guest: &dyn Guest, workers: usize, sink: &mut Vec<u8>) {
    sink.clear();
    let cap = sink.capacity();
    let opts = SaveOptions { workers, ..Default::default() };
    Saver::new(opts).save(guest, &mut *sink).expect("save");
    debug_assert_eq!(sink.capacity(), cap, "the sink was pre-sized exactly");
}

fn memcpy_into(src: &[u8], sink: &mut [u8]) {
    sink.copy_from_slice(black_box(src));
}

fn best_of(n: usize, mut f: impl FnMut()) -> Duration {
    (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .min()
        .unwrap_or_default()
}

fn bench(c: &mut Criterion) {
    let lending = BenchGuest { mem: guest_memory(), state: state() };
    let copying = BenchGuest { mem: NoLend(guest_memory()), state: state() };
    let mut probe = Vec::new();
    Saver::new(SaveOptions::default()).save(&lending, &mut probe).expect("save");
    let stream_len = probe.len();
    drop(probe);
    let mut sink: Vec<u8> = Vec::with_capacity(stream_len);
    // Fault the sink in once, as the memcpy sink below is.
    save_into(&lending, 2, &mut sink);
    let src: Vec<u8> = (0..GUEST_BYTES).map(|i| (i >> PAGE_SHIFT) as u8 | 1).collect();
    let mut copy_sink = vec![0u8; GUEST_BYTES];
    memcpy_into(&src, &mut copy_sink); // fault it in

    let mut group = c.benchmark_group("save_1GiB_from_ram");
    group
        .sample_size(10)
        // Each iteration takes ~0.1 s: the same iteration count per sample.
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Bytes(GUEST_BYTES as u64));
    group.bench_function("memcpy", |b| b.iter(|| memcpy_into(&src, &mut copy_sink)));
    group.bench_function("zero_copy_workers_1", |b| b.iter(|| save_into(&lending, 1, &mut sink)));
    group.bench_function("zero_copy_workers_2", |b| b.iter(|| save_into(&lending, 2, &mut sink)));
    group.bench_function("copying_workers_1", |b| b.iter(|| save_into(&copying, 1, &mut sink)));
    group.bench_function("copying_workers_2", |b| b.iter(|| save_into(&copying, 2, &mut sink)));
    group.finish();

    // A compact summary (best of 5) with the ratios to memcpy.
    let gib = |d: Duration| GUEST_BYTES as f64 / (1u64 << 30) as f64 / d.as_secs_f64();
    let memcpy = best_of(5, || memcpy_into(&src, &mut copy_sink));
    let mut out = std::io::stderr().lock();
    let _ = writeln!(out, "\nsummary (best of 5, 1 GiB guest, stream {stream_len} bytes):");
    let _ = writeln!(out, "  {:<22} {:>6.2} GiB/s", "memcpy", gib(memcpy));
    for (name, guest, workers) in [
        ("zero_copy_workers_1", &lending as &dyn Guest, 1),
        ("zero_copy_workers_2", &lending, 2),
        ("copying_workers_1", &copying, 1),
        ("copying_workers_2", &copying, 2),
    ] {
        let t = best_of(5, || save_into(guest, workers, &mut sink));
        let _ =
            writeln!(out, "  {name:<22} {:>6.2} GiB/s  {:.2}x memcpy", gib(t), memcpy.as_secs_f64() / t.as_secs_f64());
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
