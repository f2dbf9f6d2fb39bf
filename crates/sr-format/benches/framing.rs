//! Framing throughput of the stream reader and writer.
//!
//! * `pages_256MiB`: a PV stream of 64 PAGE_DATA records of 1024 pages (256 MiB of page
//!   bodies) plus a few small records, read from a slice (zero-copy), read and body-parsed,
//!   read through `std::io::Read` (one copy), and written with the vectored `RecordWriter`
//!   path into a pre-sized `Vec`. Throughput in bytes.
//! * `small_records_100k`: 100 000 X86_TSC_INFO records, the same four paths, throughput in
//!   records.
//!
//! Sample size 10 and short measurement windows keep the whole run under a minute.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sr_format::body::{PvInfo, RecordBody, TscInfo};
use sr_format::{
    DomainHeader, DomainType, ImageHeader, Item, PageType, PfnEntry, RecordType, RecordWriter, StreamReader, Strictness,
};
use zerocopy::IntoBytes;

const PAGE: usize = 4096;
const PAGES_PER_RECORD: usize = 1024;
const PAGE_RECORDS: usize = 64;
const SMALL_RECORDS: usize = 100_000;

/// Pfn words of batch `batch`: 1024 consecutive pfns, mostly NOTAB, a few page tables.
fn words(batch: usize) -> Vec<u8> {
    (0..PAGES_PER_RECORD)
        .flat_map(|i| {
            let t = if i % 97 == 0 { PageType::L1TAB } else { PageType::NOTAB };
            PfnEntry::new((batch * PAGES_PER_RECORD + i) as u64, t).encode().to_le_bytes()
        })
        .collect()
}

/// Writes the big stream: headers, PV_INFO, TSC, 64 PAGE_DATA, END.
fn write_page_stream<W: std::io::Write>(w: &mut RecordWriter<W>, words: &[Vec<u8>], pages: &[&[u8]]) {
    w.write_headers(&ImageHeader::new(3), &DomainHeader::new(DomainType::X86_PV, 12, 4, 17)).unwrap();
    w.write_record(RecordType::X86_PV_INFO, PvInfo::new(8, 4).as_bytes()).unwrap();
    w.write_record(RecordType::X86_TSC_INFO, TscInfo::new(0, 2_000_000, 1, 1).as_bytes()).unwrap();
    w.write_record(RecordType::STATIC_DATA_END, &[]).unwrap();
    for batch_words in words {
        w.write_page_data(PAGES_PER_RECORD, PAGES_PER_RECORD, PAGE, batch_words, pages).unwrap();
    }
    w.write_record(RecordType::END, &[]).unwrap();
}

fn write_small_stream<W: std::io::Write>(w: &mut RecordWriter<W>) {
    w.write_headers(&ImageHeader::new(3), &DomainHeader::new(DomainType::X86_HVM, 12, 4, 17)).unwrap();
    for i in 0..SMALL_RECORDS as u64 {
        w.write_record(RecordType::X86_TSC_INFO, TscInfo::new(0, 2_000_000, i, 1).as_bytes()).unwrap();
    }
    w.write_record(RecordType::END, &[]).unwrap();
}

/// Walks every item; returns the number of libxc records and body bytes seen.
fn walk_items<S: sr_format::ByteSource>(mut r: StreamReader<S>) -> (u64, u64) {
    let (mut n, mut bytes) = (0, 0);
    while let Some(item) = r.next_item().unwrap() {
        if let Item::Record(rec) = item {
            n += 1;
            bytes += black_box(rec.body).len() as u64;
        }
    }
    (n, bytes)
}

/// Walks and parses every body; returns the number of records and data pages.
fn walk_parse(data: &[u8]) -> (u64, u64) {
    let mut r = StreamReader::from_slice(data);
    let (mut n, mut pages) = (0, 0);
    while let Some(item) = r.next_item().unwrap() {
        if let Item::Record(rec) = item {
            n += 1;
            match RecordBody::parse(&rec, 12, Strictness::Lenient).unwrap() {
                RecordBody::PageData(p) => pages += p.data_pages() as u64,
                RecordBody::TscInfo(t) => pages += u64::from(black_box(t.khz.get()) == 0),
                _ => {}
            }
        }
    }
    (n, pages)
}

fn pages_256mib(c: &mut Criterion) {
    let page_buf: Vec<u8> = (0..PAGES_PER_RECORD * PAGE).map(|i| (i % 251) as u8).collect();
    let pages: Vec<&[u8]> = page_buf.chunks(PAGE).collect();
    let words: Vec<Vec<u8>> = (0..PAGE_RECORDS).map(words).collect();
    let mut w = RecordWriter::new(Vec::with_capacity(PAGE_RECORDS * (PAGES_PER_RECORD * (PAGE + 8) + 16) + 4096));
    write_page_stream(&mut w, &words, &pages);
    let stream = w.into_inner();
    let len = stream.len();
    let records = (PAGE_RECORDS + 4) as u64;
    assert_eq!(walk_items(StreamReader::from_slice(&stream)).0, records);
    assert_eq!(walk_parse(&stream), (records, (PAGE_RECORDS * PAGES_PER_RECORD) as u64));

    let mut group = c.benchmark_group("pages_256MiB");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Bytes(len as u64));
    group.bench_function("slice_walk", |b| b.iter(|| walk_items(StreamReader::from_slice(black_box(&stream)))));
    group.bench_function("slice_walk_parse", |b| b.iter(|| walk_parse(black_box(&stream))));
    group.bench_function("read_walk", |b| b.iter(|| walk_items(StreamReader::from_read(black_box(&stream[..])))));
    let mut out: Vec<u8> = Vec::with_capacity(len);
    group.bench_function("writer_vectored", |b| {
        b.iter(|| {
            out.clear();
            let mut w = RecordWriter::new(&mut out);
            write_page_stream(&mut w, &words, black_box(&pages));
            w.offset()
        })
    });
    assert!(out == stream);
    group.finish();
}

fn small_records(c: &mut Criterion) {
    let mut w = RecordWriter::new(Vec::with_capacity(40 + (SMALL_RECORDS + 1) * 32));
    write_small_stream(&mut w);
    let stream = w.into_inner();
    let records = SMALL_RECORDS as u64 + 1;
    assert_eq!(walk_items(StreamReader::from_slice(&stream)).0, records);

    let mut group = c.benchmark_group("small_records_100k");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Elements(records));
    group.bench_function("slice_walk", |b| b.iter(|| walk_items(StreamReader::from_slice(black_box(&stream)))));
    group.bench_function("slice_walk_parse", |b| b.iter(|| walk_parse(black_box(&stream))));
    group.bench_function("read_walk", |b| b.iter(|| walk_items(StreamReader::from_read(black_box(&stream[..])))));
    let mut out: Vec<u8> = Vec::with_capacity(stream.len());
    group.bench_function("writer", |b| {
        b.iter(|| {
            out.clear();
            let mut w = RecordWriter::new(&mut out);
            write_small_stream(&mut w);
            w.offset()
        })
    });
    assert!(out == stream);
    group.finish();
}

criterion_group!(benches, pages_256mib, small_records);
criterion_main!(benches);
