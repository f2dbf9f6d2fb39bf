//! Restore throughput of a 1 GiB HVM stream held in memory, against the memcpy floor.
//!
//! * `restore_ram`: `Restorer::restore` from a slice into a fresh `RamMemory` (allocated by
//!   the restore's `open` callback, so its calloc and page faults are timed);
//! * `memcpy_fresh_vec`: the same page bytes, record by record, `copy_from_slice`d into a
//!   fresh `vec![0u8; 1 GiB]` (calloc'd too, so it pays the same page faults);
//! * `verify`: `Restorer::verify` of the same stream (headers and pfn arrays only);
//! * `ram_write_pages`: for reference, the same pages written straight into a fresh
//!   `RamMemory` with one `write_pages` per record, without the restorer: the difference
//!   to `restore_ram` is the restore engine's own cost, the difference to
//!   `memcpy_fresh_vec` the backend's.
//!
//! Outputs are dropped outside the timed region on both copying sides. The target is a
//! restore at >= 0.8x the memcpy throughput.
//!
//! Both copying sides must get fresh zero pages (and so page faults) in every iteration. The
//! 1 GiB vector always does (glibc mmaps it), but `RamMemory`'s 2 MiB chunks fall under
//! glibc's *dynamic* mmap threshold once the first chunk is freed and are then recycled from
//! the heap, already faulted in, which makes the result depend on the allocator's history.
//! On glibc the bench therefore re-executes itself once with a fixed mmap threshold
//! (`GLIBC_TUNABLES=glibc.malloc.mmap_threshold=1048576`) unless `GLIBC_TUNABLES` is set.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, SamplingMode, Throughput, criterion_group};
use sr_format::{DomainHeader, DomainType, ImageHeader, PageType, PfnEntry, RecordType, RecordWriter, StreamReader};
use sr_memory::{GuestMemory, RamMemory};
use sr_restore::{RestoreOptions, Restorer};

const PAGE_SHIFT: u32 = 12;
const PAGE_SIZE: usize = 1 << PAGE_SHIFT;
const RECORDS: usize = 256;
const PAGES_PER_RECORD: usize = 1024;
const GUEST_BYTES: usize = RECORDS * PAGES_PER_RECORD * PAGE_SIZE;
const PFN_LIMIT: u64 = 1 << 18;

/// The stream, and where each record's page bodies are in it.
fn build_stream() -> (Vec<u8>, Vec<std::ops::Range<usize>>) {
    let mut w = RecordWriter::new(Vec::with_capacity(GUEST_BYTES + (RECORDS << 14) + 4096));
    w.write_headers(&ImageHeader::new(3), &DomainHeader::new(DomainType::X86_HVM, PAGE_SHIFT as u16, 4, 17)).unwrap();
    w.write_record(RecordType::STATIC_DATA_END, &[]).unwrap();
    let mut pages = vec![0u8; PAGES_PER_RECORD * PAGE_SIZE];
    let mut ranges = Vec::with_capacity(RECORDS);
    let mut body = Vec::new();
    for r in 0..RECORDS {
        let first = (r * PAGES_PER_RECORD) as u64;
        let entries: Vec<PfnEntry> =
            (first..first + PAGES_PER_RECORD as u64).map(|pfn| PfnEntry::new(pfn, PageType::NOTAB)).collect();
        // Non-zero content, different in every page.
        for (i, page) in pages.chunks_exact_mut(PAGE_SIZE).enumerate() {
            page.fill(0xA5 ^ (r as u8));
            page[..8].copy_from_slice(&(first + i as u64).to_le_bytes());
        }
        body.clear();
        sr_format::body::encode_page_data(&mut body, &entries, &pages, PAGE_SIZE);
        let start = w.offset() as usize + body.len() - pages.len();
        w.write_raw(&body).unwrap();
        ranges.push(start..start + pages.len());
    }
    w.write_record(RecordType::X86_TSC_INFO, &[0; 24]).unwrap();
    w.write_record(RecordType::HVM_CONTEXT, &[1; 64]).unwrap();
    w.write_record(RecordType::END, &[]).unwrap();
    (w.into_inner(), ranges)
}

fn restore_1gib(c: &mut Criterion) {
    let (stream, ranges) = build_stream();
    // Sanity: the stream restores and every page landed.
    let r = Restorer::new(RestoreOptions::default())
        .restore(StreamReader::from_slice(&stream), |_| RamMemory::new(PAGE_SHIFT, PFN_LIMIT))
        .expect("the bench stream restores");
    assert_eq!(r.stats.data_bytes, GUEST_BYTES as u64);
    drop(r);

    let mut group = c.benchmark_group("restore_1GiB_hvm");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10))
        .throughput(Throughput::Bytes(GUEST_BYTES as u64));

    group.bench_function("restore_ram", |b| {
        b.iter_batched(
            || (),
            |()| {
                Restorer::new(RestoreOptions::default())
                    .restore(StreamReader::from_slice(black_box(&stream)), |h| {
                        RamMemory::new(u32::from(h.page_shift.get()), PFN_LIMIT)
                    })
                    .expect("restores")
            },
            BatchSize::PerIteration,
        );
    });

    group.bench_function("memcpy_fresh_vec", |b| {
        b.iter_batched(
            || (),
            |()| {
                let mut dst = vec![0u8; GUEST_BYTES];
                for (chunk, range) in dst.chunks_exact_mut(PAGES_PER_RECORD * PAGE_SIZE).zip(&ranges) {
                    chunk.copy_from_slice(black_box(&stream[range.clone()]));
                }
                dst
            },
            BatchSize::PerIteration,
        );
    });

    let pfns: Vec<Vec<u64>> = (0..RECORDS as u64)
        .map(|r| (r * PAGES_PER_RECORD as u64..(r + 1) * PAGES_PER_RECORD as u64).collect())
        .collect();
    group.bench_function("ram_write_pages", |b| {
        b.iter_batched(
            || (),
            |()| {
                let mem = RamMemory::new(PAGE_SHIFT, PFN_LIMIT).expect("valid geometry");
                for (pfns, range) in pfns.iter().zip(&ranges) {
                    mem.write_pages(pfns, black_box(&stream[range.clone()])).expect("in range");
                }
                mem
            },
            BatchSize::PerIteration,
        );
    });

    group.bench_function("verify", |b| {
        b.iter(|| {
            Restorer::new(RestoreOptions::default()).verify(StreamReader::from_slice(black_box(&stream))).unwrap()
        });
    });

    group.finish();
}

criterion_group!(benches, restore_1gib);

fn main() {
    if cfg!(all(target_os = "linux", target_env = "gnu")) && std::env::var_os("GLIBC_TUNABLES").is_none() {
        let status = std::process::Command::new(std::env::current_exe().expect("own path"))
            .args(std::env::args_os().skip(1))
            .env("GLIBC_TUNABLES", "glibc.malloc.mmap_threshold=1048576")
            .status()
            .expect("re-executing the bench");
        std::process::exit(status.code().unwrap_or(1));
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
