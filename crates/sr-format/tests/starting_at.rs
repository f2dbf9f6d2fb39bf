//! `StreamReader::starting_at`: offsets counted from where the stream starts inside a file.

use sr_format::{DomainHeader, DomainType, Error, ImageHeader, Item, RecordType, RecordWriter, StreamReader};

#[test]
fn offsets_are_the_files() {
    let mut w = RecordWriter::new(Vec::new());
    w.write_headers(&ImageHeader::new(3), &DomainHeader::new(DomainType::X86_HVM, 12, 4, 17)).unwrap();
    w.write_record(RecordType::STATIC_DATA_END, &[]).unwrap();
    w.write_record(RecordType::END, &[]).unwrap();
    let bytes = w.into_inner();
    let mut r = StreamReader::from_slice(&bytes).starting_at(0x393);
    let mut offsets = Vec::new();
    while let Some(item) = r.next_item().unwrap() {
        if let Item::Record(rec) = item {
            offsets.push(rec.offset);
        }
    }
    assert_eq!(offsets, [0x393 + 40, 0x393 + 48]);
    assert_eq!(r.offset(), 0x393 + bytes.len() as u64);
    // A truncation is reported at the file's offset too.
    let mut r = StreamReader::from_slice(&bytes[..44]).starting_at(1000);
    let e = loop {
        match r.next_item() {
            Ok(Some(_)) => {}
            Ok(None) => panic!("ended"),
            Err(e) => break e,
        }
    };
    assert!(matches!(e, Error::Truncated { offset: 1040, .. }), "{e:?}");
}
