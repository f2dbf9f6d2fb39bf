//! Index build speed on a 1 GiB HVM stream in a file, against `xsr verify`'s work.
//!
//! * `index_file`: [`PageIndex::build`] over a `SeekSource` of the file with page bodies
//!   skipped (what `xsr read/grep/diff` do before the first read);
//! * `verify_file`: `Restorer::verify` over the same source (what `xsr verify FILE` does);
//! * `index_slice` / `verify_slice`: the same over the bytes in memory (no syscalls).
//!
//! The target is an index built at verify speed: `index_*` within about 1x `verify_*`.

use std::fs::File;
use std::hint::black_box;
use std::io::{BufWriter, Write};
use std::time::Duration;

use criterion::{Criterion, SamplingMode, Throughput, criterion_group};
use sr_format::{
    DomainHeader, DomainType, ImageHeader, PageType, PfnEntry, RecordType, RecordWriter, SeekSource, StreamReader,
};
use sr_image::PageIndex;
use sr_restore::{RestoreOptions, Restorer};

const PAGE_SIZE: usize = 4096;
const RECORDS: usize = 256;
const PAGES_PER_RECORD: usize = 1024;
const GUEST_BYTES: u64 = (RECORDS * PAGES_PER_RECORD * PAGE_SIZE) as u64;

fn write_stream(out: impl Write) {
    let mut w = RecordWriter::new(BufWriter::with_capacity(1 << 20, out));
    w.write_headers(&ImageHeader::new(3), &DomainHeader::new(DomainType::X86_HVM, 12, 4, 17)).unwrap();
    w.write_record(RecordType::STATIC_DATA_END, &[]).unwrap();
    let mut pages = vec![0u8; PAGES_PER_RECORD * PAGE_SIZE];
    for r in 0..RECORDS {
        let first = (r * PAGES_PER_RECORD) as u64;
        let words: Vec<u8> = (first..first + PAGES_PER_RECORD as u64)
            .flat_map(|pfn| PfnEntry::new(pfn, PageType::NOTAB).encode().to_le_bytes())
            .collect();
        for (i, page) in pages.chunks_exact_mut(PAGE_SIZE).enumerate() {
            page.fill(0xA5 ^ (r as u8));
            page[..8].copy_from_slice(&(first + i as u64).to_le_bytes());
        }
        w.write_page_data(PAGES_PER_RECORD, PAGES_PER_RECORD, PAGE_SIZE, &words, &[&pages]).unwrap();
    }
    w.write_record(RecordType::X86_TSC_INFO, &[0; 24]).unwrap();
    w.write_record(RecordType::HVM_CONTEXT, &[1; 64]).unwrap();
    w.write_record(RecordType::END, &[]).unwrap();
    w.into_inner().into_inner().map_err(|e| e.into_error()).unwrap().flush().unwrap();
}

fn index_1gib(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench.stream");
    write_stream(File::create(&path).unwrap());
    let bytes = std::fs::read(&path).unwrap();
    let file_src = || SeekSource::new(File::open(&path).unwrap()).unwrap();
    let index = PageIndex::build(StreamReader::new(file_src()).skip_page_bodies(true)).unwrap();
    assert_eq!(index.len(), RECORDS * PAGES_PER_RECORD);
    Restorer::new(RestoreOptions::default()).verify(StreamReader::new(file_src()).skip_page_bodies(true)).unwrap();

    let mut group = c.benchmark_group("index_1GiB_hvm");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Bytes(GUEST_BYTES));
    group.bench_function("index_file", |b| {
        b.iter(|| PageIndex::build(StreamReader::new(file_src()).skip_page_bodies(true)).unwrap());
    });
    group.bench_function("verify_file", |b| {
        b.iter(|| {
            Restorer::new(RestoreOptions::default())
                .verify(StreamReader::new(file_src()).skip_page_bodies(true))
                .unwrap()
        });
    });
    group.bench_function("index_slice", |b| {
        b.iter(|| PageIndex::build(StreamReader::from_slice(black_box(&bytes)).skip_page_bodies(true)).unwrap());
    });
    group.bench_function("verify_slice", |b| {
        b.iter(|| {
            Restorer::new(RestoreOptions::default()).verify(StreamReader::from_slice(black_box(&bytes))).unwrap()
        });
    });
    group.finish();
}

criterion_group!(benches, index_1gib);
criterion::criterion_main!(benches);
