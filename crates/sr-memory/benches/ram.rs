//! Write throughput of `RamMemory` against a plain `memcpy` into fresh memory.
//!
//! Both sides copy 256 MiB in 1024-page (4 MiB) batches into memory allocated just
//! before the timed routine, so both pay the same page faults. `RamMemory` is expected
//! to reach at least 0.8x the `memcpy` throughput.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use sr_memory::{GuestMemory, Pfn, RamMemory};

const PAGE_SHIFT: u32 = 12;
const TOTAL_BYTES: usize = 256 << 20;
const BATCH_PAGES: usize = 1024;

fn write_256mib(c: &mut Criterion) {
    let batch: Vec<u8> = (0..BATCH_PAGES << PAGE_SHIFT).map(|i| (i % 251) as u8).collect();
    let pfn_count = (TOTAL_BYTES >> PAGE_SHIFT) as u64;
    let pfns: Vec<Pfn> = (0..pfn_count).collect();

    let mut group = c.benchmark_group("write_256MiB");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .throughput(Throughput::Bytes(TOTAL_BYTES as u64));

    group.bench_function("memcpy_fresh_vec", |b| {
        b.iter_batched(
            || vec![0u8; TOTAL_BYTES],
            |mut dst| {
                for chunk in dst.chunks_exact_mut(batch.len()) {
                    chunk.copy_from_slice(black_box(&batch));
                }
                dst
            },
            BatchSize::PerIteration,
        );
    });

    group.bench_function("ram_memory_write_pages", |b| {
        b.iter_batched(
            || RamMemory::new(PAGE_SHIFT, pfn_count).expect("valid geometry"),
            |mem| {
                for batch_pfns in pfns.chunks(BATCH_PAGES) {
                    mem.write_pages(batch_pfns, black_box(&batch)).expect("in-range batch");
                }
                mem
            },
            BatchSize::PerIteration,
        );
    });

    group.finish();
}

criterion_group!(benches, write_256mib);
criterion_main!(benches);
