//! Reading with `skip_page_bodies`: the same records, offsets, shapes and errors as a full
//! read, without the page bodies, whether the source seeks, slices or reads.

mod common;
#[path = "../../../tests/common/testdata.rs"]
mod testdata;

use std::io::Cursor;

use common::small_streams;
use sr_format::body::RecordBody;
use sr_format::{ByteSource, Item, ReadSource, RecordType, SeekSource, SliceSource, StreamReader, Strictness};

/// (offset, index, type, declared length, pfn words if PAGE_DATA, data pages) of every record,
/// or the error that ended the stream.
type Seen = (Vec<(u64, u64, u32, u32, Vec<u64>, usize)>, Option<sr_format::Error>);

fn scan<S: ByteSource>(reader: StreamReader<S>) -> Seen {
    let mut reader = reader.strictness(Strictness::Lenient);
    let mut out = Vec::new();
    let mut page_shift = 12;
    loop {
        match reader.next_item() {
            Ok(None) => return (out, None),
            Err(e) => return (out, Some(e)),
            Ok(Some(Item::DomainHeader { header, .. })) => page_shift = header.page_shift.get(),
            Ok(Some(Item::Record(rec))) => {
                let (words, data) = match RecordBody::parse(&rec, page_shift, Strictness::Lenient) {
                    Ok(RecordBody::PageData(p)) => (p.entries().map(|e| e.encode()).collect(), p.data_pages()),
                    _ => (Vec::new(), 0),
                };
                out.push((rec.offset, rec.index, rec.rtype.0, rec.length(), words, data));
            }
            Ok(Some(_)) => {}
        }
    }
}

fn all_ways(data: &[u8]) -> [Seen; 4] {
    [
        scan(StreamReader::from_slice(data)),
        scan(StreamReader::new(SliceSource::new(data)).skip_page_bodies(true)),
        scan(StreamReader::new(SeekSource::new(Cursor::new(data)).unwrap()).skip_page_bodies(true)),
        scan(StreamReader::new(ReadSource::new(data)).skip_page_bodies(true)),
    ]
}

#[test]
fn same_records_as_a_full_read() {
    for (name, data) in small_streams() {
        let [full, slice, seek, read] = all_ways(&data);
        assert!(full.1.is_none(), "{name}: {:?}", full.1);
        assert!(full.0.iter().any(|r| r.2 == RecordType::PAGE_DATA.0 && r.5 > 0), "{name} has page bodies");
        assert_eq!(slice, full, "{name}");
        assert_eq!(seek, full, "{name}");
        assert_eq!(read, full, "{name}");
    }
}

#[test]
fn same_errors_at_every_truncation() {
    for (name, data) in small_streams() {
        // Every cut for the slice source; every 7th (which still lands in every record and
        // header) for the seeking and reading sources, to keep the test quick.
        for cut in 0..data.len() {
            let part = &data[..cut];
            let full = scan(StreamReader::from_slice(part));
            assert!(full.1.is_some(), "{name} cut at {cut}");
            assert_eq!(scan(StreamReader::new(SliceSource::new(part)).skip_page_bodies(true)), full, "{name} {cut}");
            if cut % 7 == 0 {
                let [_, _, seek, read] = all_ways(part);
                assert_eq!(seek, full, "{name} cut at {cut}");
                assert_eq!(read, full, "{name} cut at {cut}");
            }
        }
    }
}

#[test]
fn skipped_records_say_what_they_left_out() {
    let data = testdata::real_save_file();
    let mut reader = StreamReader::new(SeekSource::new(Cursor::new(data.clone())).unwrap()).skip_page_bodies(true);
    let mut pages = 0;
    while let Some(item) = reader.next_item().unwrap() {
        if let Item::Record(rec) = item {
            if rec.rtype == RecordType::PAGE_DATA {
                assert_eq!((rec.body.len(), rec.elided), (8 + 8 * 1024, 1024 * 4096));
                assert_eq!(rec.length(), 4_202_504);
                pages += 1;
            } else {
                assert_eq!(rec.elided, 0);
            }
        }
    }
    assert_eq!(pages, 8);
    assert_eq!(reader.offset(), data.len() as u64);
    let [full, slice, seek, read] = all_ways(&data);
    assert_eq!((&slice, &seek, &read), (&full, &full, &full));
}
