//! Golden byte vectors, written by hand from the format tables of the reference (sections 1
//! and 5), never produced by the code under test. Each test checks both directions: the
//! crate's encoders produce exactly these bytes, and parsing these bytes (through
//! `StreamReader` for records, zerocopy `read_from_bytes` for bare structs) gives the
//! expected field values.

use sr_format::body::{
    CpuidLeaf, HvmParamEntry, HvmParamsHeader, HvmSaveDescriptor, MsrEntry, P2mFramesHeader, PageDataHeader, PvInfo,
    RecordBody, TscInfo, VcpuHeader, VcpuMsrEntry, encode_page_data, encode_page_data_header,
};
use sr_format::libxl::{
    EmulatorHeader, LibxlHeader, LibxlRecordType, emulator_context_body, encode_libxl_record, xenstore_body,
};
use sr_format::xl::{XlHeader, encode_xl_header};
use sr_format::{
    DomainHeader, DomainType, Error, ImageHeader, Item, PageType, PfnEntry, Record, RecordHeader, RecordType,
    RecordWriter, StreamReader, Strictness, encode_record, record_bytes,
};
use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, IntoBytes};

// ---------------------------------------------------------------------------------------------
// Headers
// ---------------------------------------------------------------------------------------------

/// Image header, version 3: marker all ones, "XENF", version 3, options 0, reserved 0 (BE).
const IHDR_V3: [u8; 24] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // marker
    0x58, 0x45, 0x4e, 0x46, // id "XENF"
    0x00, 0x00, 0x00, 0x03, // version 3
    0x00, 0x00, // options
    0x00, 0x00, // reserved u16
    0x00, 0x00, 0x00, 0x00, // reserved u32
];

const IHDR_V2: [u8; 24] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x58, 0x45, 0x4e, 0x46, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00,
];

/// x86 PV, page_shift 12, Xen 4.17.
const DHDR_PV: [u8; 16] = [
    0x01, 0x00, 0x00, 0x00, // type 1
    0x0c, 0x00, // page_shift 12
    0x00, 0x00, // reserved
    0x04, 0x00, 0x00, 0x00, // xen_major 4
    0x11, 0x00, 0x00, 0x00, // xen_minor 17
];
/// x86 HVM, page_shift 12, Xen 4.21.
const DHDR_HVM: [u8; 16] = [0x02, 0, 0, 0, 0x0c, 0, 0, 0, 0x04, 0, 0, 0, 0x15, 0, 0, 0];
/// x86 PVH, page_shift 12, Xen 4.6.
const DHDR_PVH: [u8; 16] = [0x03, 0, 0, 0, 0x0c, 0, 0, 0, 0x04, 0, 0, 0, 0x06, 0, 0, 0];
/// ARM, 64 KiB pages, converted from a legacy image (major 0, minor 1).
const DHDR_ARM: [u8; 16] = [0x04, 0, 0, 0, 0x10, 0, 0, 0, 0x00, 0, 0, 0, 0x01, 0, 0, 0];

const END: [u8; 8] = [0; 8];

#[test]
fn image_header_golden() {
    assert_eq!(ImageHeader::new(3).as_bytes(), &IHDR_V3);
    assert_eq!(ImageHeader::new(2).as_bytes(), &IHDR_V2);
    for (bytes, version) in [(IHDR_V3, 3), (IHDR_V2, 2)] {
        let h = ImageHeader::read_from_bytes(&bytes).unwrap();
        assert_eq!(h.marker.get(), 0xFFFF_FFFF_FFFF_FFFF);
        assert_eq!(h.id.get(), 0x5845_4E46);
        assert_eq!(h.version.get(), version);
        assert_eq!((h.options.get(), h.reserved1.get(), h.reserved2.get()), (0, 0, 0));
        h.validate(0, Strictness::Strict).unwrap();
    }
    assert_eq!(sr_format::IHDR_MARKER.to_be_bytes(), IHDR_V3[..8]);
    assert_eq!(&IHDR_V3[8..12], b"XENF");
}

#[test]
fn domain_header_golden_each_type() {
    let cases = [
        (DHDR_PV, DomainType::X86_PV, 12, 4, 17),
        (DHDR_HVM, DomainType::X86_HVM, 12, 4, 21),
        (DHDR_PVH, DomainType::X86_PVH, 12, 4, 6),
        (DHDR_ARM, DomainType::ARM, 16, 0, 1),
    ];
    for (bytes, dtype, shift, major, minor) in cases {
        assert_eq!(DomainHeader::new(dtype, shift, major, minor).as_bytes(), &bytes, "{dtype}");
        let h = DomainHeader::read_from_bytes(&bytes).unwrap();
        assert_eq!(h.domain_type(), dtype);
        assert_eq!(h.page_shift.get(), shift);
        assert_eq!(h.page_size(), 1 << shift);
        assert_eq!((h.reserved.get(), h.xen_major.get(), h.xen_minor.get()), (0, major, minor));
        h.validate(24, Strictness::Strict).unwrap();

        // The same bytes through the reader.
        let mut stream = IHDR_V3.to_vec();
        stream.extend_from_slice(&bytes);
        stream.extend_from_slice(&END);
        let mut r = StreamReader::from_slice(&stream).strictness(Strictness::Strict);
        assert!(
            matches!(r.next_item().unwrap(), Some(Item::ImageHeader { offset: 0, header }) if header.version.get() == 3)
        );
        match r.next_item().unwrap() {
            Some(Item::DomainHeader { offset: 24, header }) => assert_eq!(header, h),
            other => panic!("expected a domain header, got {other:?}"),
        }
        match r.next_item().unwrap() {
            Some(Item::Record(rec)) => {
                assert_eq!((rec.offset, rec.index, rec.rtype, rec.body.len()), (40, 0, RecordType::END, 0));
            }
            other => panic!("expected END, got {other:?}"),
        }
        assert_eq!(r.next_item().unwrap(), None);
        assert!(r.is_done());
        assert_eq!(r.offset(), 48);
    }
}

#[test]
fn record_header_golden() {
    let bytes = [0x13, 0x00, 0x00, 0x80, 0x04, 0x03, 0x02, 0x01];
    let h = RecordHeader::new(RecordType(0x8000_0013), 0x0102_0304);
    assert_eq!(h.as_bytes(), &bytes);
    let p = RecordHeader::read_from_bytes(&bytes).unwrap();
    assert_eq!(p.record_type(), RecordType(0x8000_0013));
    assert!(p.record_type().is_optional());
    assert_eq!(p.length.get(), 0x0102_0304);

    // An optional record with a 3-byte body: header, body, 5 zero bytes of padding.
    let rec = [0x13, 0x00, 0x00, 0x80, 0x03, 0x00, 0x00, 0x00, 0xaa, 0xbb, 0xcc, 0, 0, 0, 0, 0];
    assert_eq!(record_bytes(RecordType(0x8000_0013), &[0xaa, 0xbb, 0xcc]), rec);
    with_record(&DHDR_PV, &rec, |r| {
        assert_eq!(r.rtype, RecordType(0x8000_0013));
        assert_eq!(r.body, [0xaa, 0xbb, 0xcc]);
        assert_eq!(r.wire_len(), 16);
        assert!(!r.padding_nonzero);
        assert_eq!(parse(&r, 12), RecordBody::Unknown(&[0xaa, 0xbb, 0xcc]));
    });
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Reads `IHDR_V3 + dhdr + record + END` with a strict `StreamReader`, hands the one record
/// to `check`, and checks the framing around it.
fn with_record(dhdr: &[u8; 16], record: &[u8], check: impl FnOnce(Record<'_>)) {
    let mut stream = IHDR_V3.to_vec();
    stream.extend_from_slice(dhdr);
    stream.extend_from_slice(record);
    stream.extend_from_slice(&END);
    let mut r = StreamReader::from_slice(&stream).strictness(Strictness::Strict);
    assert!(matches!(r.next_item().unwrap(), Some(Item::ImageHeader { offset: 0, .. })));
    assert!(matches!(r.next_item().unwrap(), Some(Item::DomainHeader { offset: 24, .. })));
    match r.next_item().unwrap() {
        Some(Item::Record(rec)) => {
            assert_eq!((rec.offset, rec.index), (40, 0));
            assert_eq!(rec.wire_len(), record.len() as u64);
            check(rec);
        }
        other => panic!("expected a record, got {other:?}"),
    }
    match r.next_item().unwrap() {
        Some(Item::Record(rec)) => {
            assert_eq!(rec.rtype, RecordType::END);
            assert_eq!((rec.offset, rec.index), (40 + record.len() as u64, 1));
        }
        other => panic!("expected END, got {other:?}"),
    }
    assert_eq!(r.next_item().unwrap(), None);
    assert_eq!(r.offset(), stream.len() as u64);
}

fn parse<'a>(rec: &Record<'a>, page_shift: u16) -> RecordBody<'a> {
    RecordBody::parse(rec, page_shift, Strictness::Strict).unwrap()
}

/// Encodes through `RecordWriter::write_record` too, and checks it matches.
fn written(rtype: RecordType, body: &[u8]) -> Vec<u8> {
    let mut w = RecordWriter::new(Vec::new());
    w.write_record(rtype, body).unwrap();
    let out = w.into_inner();
    assert_eq!(out, record_bytes(rtype, body), "write_record and record_bytes differ");
    let mut appended = vec![0xEE];
    encode_record(&mut appended, rtype, body);
    assert_eq!(appended[1..], out, "encode_record differs");
    out
}

// ---------------------------------------------------------------------------------------------
// PAGE_DATA
// ---------------------------------------------------------------------------------------------

#[test]
fn page_data_header_golden() {
    let bytes = [0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00];
    let h = PageDataHeader { count: U32::new(3), reserved: U32::ZERO };
    assert_eq!(h.as_bytes(), &bytes);
    let p = PageDataHeader::read_from_bytes(&bytes).unwrap();
    assert_eq!((p.count.get(), p.reserved.get()), (3, 0));
    // Record header + PAGE_DATA header for 3 entries, 2 of them with 4096-byte pages:
    // body length 8 + 3 * 8 + 2 * 4096 = 8224 = 0x2020.
    assert_eq!(encode_page_data_header(3, 2, 4096), [1, 0, 0, 0, 0x20, 0x20, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0]);
    // 1024 pages of 4096: 8 + 8192 + 4 MiB = 0x00402008.
    assert_eq!(encode_page_data_header(1024, 1024, 4096), [1, 0, 0, 0, 0x08, 0x20, 0x40, 0, 0, 4, 0, 0, 0, 0, 0, 0]);
}

/// Page 1 of the golden PAGE_DATA: 0xA5 fill. Page 2: byte i is i mod 256.
fn golden_pages() -> (Vec<u8>, Vec<u8>) {
    (vec![0xA5; 4096], (0..4096).map(|i| i as u8).collect())
}

fn golden_page_data_record() -> Vec<u8> {
    let (p1, p2) = golden_pages();
    let mut v: Vec<u8> = vec![
        0x01, 0x00, 0x00, 0x00, // type PAGE_DATA
        0x20, 0x20, 0x00, 0x00, // body length 8224
        0x03, 0x00, 0x00, 0x00, // count 3
        0x00, 0x00, 0x00, 0x00, // reserved
        0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // pfn 0x10, NOTAB
        0x11, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xf0, // pfn 0x11, XTAB
        0x45, 0x23, 0x01, 0x00, 0x00, 0x00, 0x00, 0x90, // pfn 0x12345, L1TAB|PINNED
    ];
    v.extend_from_slice(&p1);
    v.extend_from_slice(&p2);
    v
}

#[test]
fn page_data_record_golden() {
    let want = golden_page_data_record();
    assert_eq!(want.len(), 8 + 8224);
    let (p1, p2) = golden_pages();
    let entries = [
        PfnEntry::new(0x10, PageType::NOTAB),
        PfnEntry::new(0x11, PageType::XTAB),
        PfnEntry::new(0x12345, PageType::L1TAB_PINNED),
    ];
    assert_eq!(entries.map(|e| e.encode()), [0x10, 0xF000_0000_0000_0011, 0x9000_0000_0001_2345]);

    // encode_page_data.
    let pages = [p1.clone(), p2.clone()].concat();
    let mut out = Vec::new();
    encode_page_data(&mut out, &entries, &pages, 4096);
    assert_eq!(out, want);

    // RecordWriter::write_page_data, vectored, one slice per page.
    let words: Vec<u8> = entries.iter().flat_map(|e| e.encode().to_le_bytes()).collect();
    let mut w = RecordWriter::new(Vec::new());
    w.write_page_data(3, 2, 4096, &words, &[&p1, &p2]).unwrap();
    assert_eq!(w.offset(), want.len() as u64);
    assert_eq!(w.into_inner(), want);

    // Generic record framing gives the same bytes.
    assert_eq!(written(RecordType::PAGE_DATA, &want[8..]), want);

    with_record(&DHDR_PV, &want, |rec| {
        assert_eq!(rec.rtype, RecordType::PAGE_DATA);
        assert_eq!(rec.length(), 8224);
        let RecordBody::PageData(pd) = parse(&rec, 12) else { panic!("not PAGE_DATA") };
        assert_eq!((pd.header.count.get(), pd.header.reserved.get()), (3, 0));
        assert_eq!((pd.count(), pd.data_pages(), pd.page_size()), (3, 2, 4096));
        assert_eq!(pd.entries().collect::<Vec<_>>(), entries);
        let data: Vec<_> = pd.data().collect();
        assert_eq!(data.len(), 2);
        assert_eq!(data[0].0, entries[0]);
        assert_eq!(data[0].1, &p1[..]);
        assert_eq!(data[1].0, entries[2]);
        assert_eq!(data[1].1, &p2[..]);
    });
}

#[test]
fn pfn_words_golden() {
    // (word bytes little-endian, pfn, type nibble, reserved)
    let cases: [([u8; 8], u64, u8, u8); 5] = [
        ([0x00, 0, 0, 0, 0, 0, 0, 0x00], 0, 0x0, 0),
        ([0xff, 0x1f, 0, 0, 0, 0, 0, 0x40], 0x1fff, 0x4, 0),
        ([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f, 0xc0], 0x000F_FFFF_FFFF_FFFF, 0xC, 0),
        ([0x07, 0, 0, 0, 0, 0, 0xa0, 0xe0], 7, 0xE, 0x0A),
        ([0x01, 0, 0, 0, 0, 0, 0, 0xd0], 1, 0xD, 0),
    ];
    for (bytes, pfn, nibble, reserved) in cases {
        let e = PfnEntry::decode(u64::from_le_bytes(bytes));
        assert_eq!((e.pfn, e.page_type.nibble(), e.reserved), (pfn, nibble, reserved));
        assert_eq!(e.encode().to_le_bytes(), bytes);
    }
}

// ---------------------------------------------------------------------------------------------
// x86 PV records
// ---------------------------------------------------------------------------------------------

#[test]
fn pv_info_golden() {
    let body = [0x08, 0x04, 0, 0, 0, 0, 0, 0];
    assert_eq!(PvInfo::new(8, 4).as_bytes(), &body);
    let p = PvInfo::read_from_bytes(&body).unwrap();
    assert_eq!((p.guest_width, p.pt_levels, p.reserved), (8, 4, [0; 6]));
    assert_eq!(p.frames_per_page(), 512);

    let rec = [0x02, 0, 0, 0, 0x08, 0, 0, 0, 0x08, 0x04, 0, 0, 0, 0, 0, 0];
    assert_eq!(written(RecordType::X86_PV_INFO, PvInfo::new(8, 4).as_bytes()), rec);
    with_record(&DHDR_PV, &rec, |r| {
        let RecordBody::PvInfo(p) = parse(&r, 12) else { panic!() };
        assert_eq!((p.guest_width, p.pt_levels), (8, 4));
    });

    // 32-bit PAE guest.
    let rec32 = [0x02, 0, 0, 0, 0x08, 0, 0, 0, 0x04, 0x03, 0, 0, 0, 0, 0, 0];
    assert_eq!(record_bytes(RecordType::X86_PV_INFO, PvInfo::new(4, 3).as_bytes()), rec32);
    with_record(&DHDR_PV, &rec32, |r| {
        let RecordBody::PvInfo(p) = parse(&r, 12) else { panic!() };
        assert_eq!((p.guest_width, p.pt_levels, p.frames_per_page()), (4, 3, 1024));
    });
}

#[test]
fn p2m_frames_golden() {
    let hdr = [0x00, 0x00, 0x00, 0x00, 0xff, 0x03, 0x00, 0x00];
    let h = P2mFramesHeader { start_pfn: U32::new(0), end_pfn: U32::new(1023) };
    assert_eq!(h.as_bytes(), &hdr);
    let p = P2mFramesHeader::read_from_bytes(&hdr).unwrap();
    assert_eq!((p.start_pfn.get(), p.end_pfn.get()), (0, 1023));

    // 64-bit guest, pfns 0..=1023: 512 per frame, two frames at pfns 0x1ff5 and 0x1ff4.
    let rec = [
        0x03, 0x00, 0x00, 0x00, 0x18, 0x00, 0x00, 0x00, // type 3, length 24
        0x00, 0x00, 0x00, 0x00, 0xff, 0x03, 0x00, 0x00, // start 0, end 1023
        0xf5, 0x1f, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // frame 0
        0xf4, 0x1f, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // frame 1
    ];
    let mut body = h.as_bytes().to_vec();
    body.extend_from_slice([U64::new(0x1ff5), U64::new(0x1ff4)].as_bytes());
    assert_eq!(written(RecordType::X86_PV_P2M_FRAMES, &body), rec);
    with_record(&DHDR_PV, &rec, |r| {
        let RecordBody::P2mFrames(f) = parse(&r, 12) else { panic!() };
        assert_eq!((f.header.start_pfn.get(), f.header.end_pfn.get()), (0, 1023));
        assert_eq!(f.frames.iter().map(|x| x.get()).collect::<Vec<_>>(), [0x1ff5, 0x1ff4]);
        assert_eq!(f.expected_frames(8), 2);
        f.check_frame_count(&r, 8).unwrap();
        // A 32-bit guest has 1024 entries per frame: one frame, so the length is wrong.
        assert_eq!(f.expected_frames(4), 1);
        assert!(matches!(f.check_frame_count(&r, 4), Err(Error::BadLength { offset: 40, found: 24, .. })));
    });
}

#[test]
fn vcpu_header_and_records_golden() {
    let hdr = [0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00];
    assert_eq!(VcpuHeader { vcpu_id: U32::new(1), reserved: U32::ZERO }.as_bytes(), &hdr);
    assert_eq!(VcpuHeader::read_from_bytes(&hdr).unwrap().vcpu_id.get(), 1);

    // BASIC, vcpu 1, 5-byte blob: body 13, 3 bytes of padding.
    let basic = [4, 0, 0, 0, 13, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 0, 0, 0];
    // EXTENDED, vcpu 0, 8-byte blob.
    let extended = [5, 0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11];
    // XSAVE, vcpu 2, empty blob (Xen skips it).
    let xsave = [6, 0, 0, 0, 8, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0];
    // MSRS, vcpu 0: EFER (0xc0000080) = 0xd01, SYSENTER_CS (0x174) = 0x10.
    let msrs = [
        0x0c, 0, 0, 0, 40, 0, 0, 0, // type 0x0c, length 40
        0, 0, 0, 0, 0, 0, 0, 0, // vcpu 0, reserved
        0x80, 0, 0, 0xc0, 0, 0, 0, 0, 0x01, 0x0d, 0, 0, 0, 0, 0, 0, // EFER
        0x74, 0x01, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0, 0, 0, 0, // SYSENTER_CS
    ];
    let vcpu_body = |id: u32, blob: &[u8]| {
        let mut b = VcpuHeader { vcpu_id: U32::new(id), reserved: U32::ZERO }.as_bytes().to_vec();
        b.extend_from_slice(blob);
        b
    };
    let msr_entries = [
        VcpuMsrEntry { index: U32::new(0xc000_0080), reserved: U32::ZERO, value: U64::new(0xd01) },
        VcpuMsrEntry { index: U32::new(0x174), reserved: U32::ZERO, value: U64::new(0x10) },
    ];
    assert_eq!(msr_entries[0].as_bytes(), &msrs[16..32]);
    let cases: [(RecordType, &[u8], u32, Vec<u8>); 4] = [
        (RecordType::X86_PV_VCPU_BASIC, &basic, 1, vec![1, 2, 3, 4, 5]),
        (RecordType::X86_PV_VCPU_EXTENDED, &extended, 0, vec![0x11; 8]),
        (RecordType::X86_PV_VCPU_XSAVE, &xsave, 2, vec![]),
        (RecordType::X86_PV_VCPU_MSRS, &msrs, 0, msr_entries.as_bytes().to_vec()),
    ];
    for (rtype, golden, id, blob) in cases {
        assert_eq!(written(rtype, &vcpu_body(id, &blob)), golden, "{rtype}");
        with_record(&DHDR_PV, golden, |r| {
            assert_eq!(r.rtype, rtype);
            let RecordBody::Vcpu(v) = parse(&r, 12) else { panic!() };
            assert_eq!((v.kind, v.vcpu_id(), v.header.reserved.get(), v.blob), (rtype, id, 0, &blob[..]));
            if rtype == RecordType::X86_PV_VCPU_MSRS {
                let m = v.msrs().unwrap();
                assert_eq!(m, msr_entries);
                assert_eq!((m[0].index.get(), m[0].value.get()), (0xc000_0080, 0xd01));
            }
        });
    }
    let e = VcpuMsrEntry::read_from_bytes(&msrs[32..48]).unwrap();
    assert_eq!((e.index.get(), e.reserved.get(), e.value.get()), (0x174, 0, 0x10));
}

#[test]
fn shared_info_golden() {
    let page: Vec<u8> = (0..4096u32).map(|i| (i * 7) as u8).collect();
    let mut want = vec![0x07, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00];
    want.extend_from_slice(&page);
    assert_eq!(written(RecordType::SHARED_INFO, &page), want);
    with_record(&DHDR_PV, &want, |r| {
        let RecordBody::SharedInfo(s) = parse(&r, 12) else { panic!() };
        assert_eq!(s.page, &page[..]);
    });
}

// ---------------------------------------------------------------------------------------------
// Common x86 records
// ---------------------------------------------------------------------------------------------

#[test]
fn tsc_info_golden() {
    let body = [
        0x01, 0x00, 0x00, 0x00, // mode 1
        0x80, 0x84, 0x1e, 0x00, // khz 2_000_000
        0xf7, 0xc2, 0x04, 0xa3, 0x09, 0x00, 0x00, 0x00, // nsec 0x9_a304_c2f7
        0x03, 0x00, 0x00, 0x00, // incarnation 3
        0x00, 0x00, 0x00, 0x00, // reserved
    ];
    let t = TscInfo::new(1, 2_000_000, 0x9_a304_c2f7, 3);
    assert_eq!(t.as_bytes(), &body);
    let p = TscInfo::read_from_bytes(&body).unwrap();
    assert_eq!(
        (p.mode.get(), p.khz.get(), p.nsec.get(), p.incarnation.get(), p.reserved.get()),
        (1, 2_000_000, 0x9_a304_c2f7, 3, 0)
    );

    let mut rec = vec![0x08, 0, 0, 0, 0x18, 0, 0, 0];
    rec.extend_from_slice(&body);
    assert_eq!(written(RecordType::X86_TSC_INFO, t.as_bytes()), rec);
    for dhdr in [DHDR_PV, DHDR_HVM] {
        with_record(&dhdr, &rec, |r| {
            let RecordBody::TscInfo(p) = parse(&r, 12) else { panic!() };
            assert_eq!(*p, t);
        });
    }
}

#[test]
fn cpuid_policy_golden() {
    let rec = [
        0x11, 0, 0, 0, 0x30, 0, 0, 0, // type 0x11, length 48
        0x00, 0x00, 0x00, 0x00, // leaf 0
        0xff, 0xff, 0xff, 0xff, // subleaf none
        0x0d, 0x00, 0x00, 0x00, // eax
        0x41, 0x75, 0x74, 0x68, // ebx "Auth"
        0x63, 0x41, 0x4d, 0x44, // ecx "cAMD"
        0x65, 0x6e, 0x74, 0x69, // edx "enti"
        0x07, 0x00, 0x00, 0x00, // leaf 7
        0x00, 0x00, 0x00, 0x00, // subleaf 0
        0x00, 0x00, 0x00, 0x00, // eax
        0xa9, 0x01, 0x9c, 0x00, // ebx
        0x00, 0x00, 0x00, 0x00, // ecx
        0x00, 0x00, 0x00, 0x00, // edx
    ];
    let leaves = [
        CpuidLeaf {
            leaf: U32::new(0),
            subleaf: U32::new(u32::MAX),
            eax: U32::new(0xd),
            ebx: U32::new(0x6874_7541),
            ecx: U32::new(0x444d_4163),
            edx: U32::new(0x6974_6e65),
        },
        CpuidLeaf { leaf: U32::new(7), ebx: U32::new(0x009c_01a9), ..Default::default() },
    ];
    let l = CpuidLeaf::read_from_bytes(&rec[8..32]).unwrap();
    assert_eq!(l, leaves[0]);
    assert_eq!(written(RecordType::X86_CPUID_POLICY, leaves.as_bytes()), rec);
    with_record(&DHDR_HVM, &rec, |r| {
        let RecordBody::CpuidPolicy(c) = parse(&r, 12) else { panic!() };
        assert_eq!(c.leaves, leaves);
        assert_eq!(c.leaves[1].ebx.get(), 0x009c_01a9);
    });
}

#[test]
fn msr_policy_golden() {
    let rec = [
        0x12, 0, 0, 0, 0x20, 0, 0, 0, // type 0x12, length 32
        0xce, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // index 0xce, flags 0
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // value 0
        0x0a, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // index 0x10a, flags 0
        0x00, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x00, 0x00, // value 0x0a000000
    ];
    let entries = [
        MsrEntry { index: U32::new(0xce), flags: U32::ZERO, value: U64::new(0) },
        MsrEntry { index: U32::new(0x10a), flags: U32::ZERO, value: U64::new(0x0a00_0000) },
    ];
    let e = MsrEntry::read_from_bytes(&rec[24..40]).unwrap();
    assert_eq!((e.index.get(), e.flags.get(), e.value.get()), (0x10a, 0, 0x0a00_0000));
    assert_eq!(written(RecordType::X86_MSR_POLICY, entries.as_bytes()), rec);
    with_record(&DHDR_PV, &rec, |r| {
        let RecordBody::MsrPolicy(m) = parse(&r, 12) else { panic!() };
        assert_eq!(m.entries, entries);
    });
}

// ---------------------------------------------------------------------------------------------
// HVM records
// ---------------------------------------------------------------------------------------------

#[test]
fn hvm_save_descriptor_golden() {
    let bytes = [0x02, 0x00, 0x01, 0x00, 0x00, 0x04, 0x00, 0x00];
    let d = HvmSaveDescriptor { typecode: 2.into(), instance: 1.into(), length: U32::new(1024) };
    assert_eq!(d.as_bytes(), &bytes);
    let p = HvmSaveDescriptor::read_from_bytes(&bytes).unwrap();
    assert_eq!((p.typecode.get(), p.instance.get(), p.length.get()), (2, 1, 1024));
}

#[test]
fn hvm_context_golden() {
    // HEADER entry (typecode 1, instance 0, 4-byte payload), END entry (all zero).
    // Body 20 bytes, then 4 bytes of padding.
    let rec = [
        0x09, 0, 0, 0, 0x14, 0, 0, 0, // type 9, length 20
        0x01, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, // HEADER descriptor
        0xde, 0xad, 0xbe, 0xef, // payload
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // END descriptor
        0x00, 0x00, 0x00, 0x00, // padding
    ];
    assert_eq!(written(RecordType::HVM_CONTEXT, &rec[8..28]), rec);
    with_record(&DHDR_HVM, &rec, |r| {
        assert_eq!(r.length(), 20);
        let RecordBody::HvmContext(c) = parse(&r, 12) else { panic!() };
        assert_eq!(c.blob, &rec[8..28]);
        let entries: Vec<_> = c.entries().map(|(d, p)| (d.typecode.get(), d.instance.get(), p.to_vec())).collect();
        assert_eq!(entries, [(1, 0, vec![0xde, 0xad, 0xbe, 0xef]), (0, 0, vec![])]);
    });
}

#[test]
fn hvm_params_golden() {
    let rec = [
        0x0a, 0, 0, 0, 0x28, 0, 0, 0, // type 0x0a, length 40
        0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // count 2, reserved
        0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // index 1 (STORE_PFN)
        0xfc, 0xef, 0x0f, 0x00, 0x00, 0x00, 0x00, 0x00, // value 0xfeffc
        0x11, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // index 17 (CONSOLE_PFN)
        0xff, 0xef, 0x0f, 0x00, 0x00, 0x00, 0x00, 0x00, // value 0xfefff
    ];
    let hdr = HvmParamsHeader { count: U32::new(2), reserved: U32::ZERO };
    assert_eq!(hdr.as_bytes(), &rec[8..16]);
    let h = HvmParamsHeader::read_from_bytes(&rec[8..16]).unwrap();
    assert_eq!((h.count.get(), h.reserved.get()), (2, 0));
    let entries = [
        HvmParamEntry { index: U64::new(1), value: U64::new(0xfeffc) },
        HvmParamEntry { index: U64::new(17), value: U64::new(0xfefff) },
    ];
    let e = HvmParamEntry::read_from_bytes(&rec[32..48]).unwrap();
    assert_eq!((e.index.get(), e.value.get()), (17, 0xfefff));
    let mut w = RecordWriter::new(Vec::new());
    w.write_record_parts(RecordType::HVM_PARAMS, &[hdr.as_bytes(), entries.as_bytes()]).unwrap();
    assert_eq!(w.into_inner(), rec);
    with_record(&DHDR_HVM, &rec, |r| {
        let RecordBody::HvmParams(p) = parse(&r, 12) else { panic!() };
        assert_eq!(p.header.count.get(), 2);
        assert_eq!(p.entries, entries);
    });
}

// ---------------------------------------------------------------------------------------------
// Checkpoint and empty records
// ---------------------------------------------------------------------------------------------

#[test]
fn dirty_pfn_list_golden() {
    let rec = [
        0x0f, 0, 0, 0, 0x10, 0, 0, 0, // type 0x0f, length 16
        0x01, 0, 0, 0, 0, 0, 0, 0, // pfn 1
        0x00, 0, 0, 0, 0x01, 0, 0, 0, // pfn 0x1_0000_0000
    ];
    assert_eq!(written(RecordType::CHECKPOINT_DIRTY_PFN_LIST, [U64::new(1), U64::new(1 << 32)].as_bytes()), rec);
    with_record(&DHDR_HVM, &rec, |r| {
        let RecordBody::DirtyPfnList(d) = parse(&r, 12) else { panic!() };
        assert_eq!(d.pfns.iter().map(|p| p.get()).collect::<Vec<_>>(), [1, 1 << 32]);
    });
}

#[test]
fn empty_records_golden() {
    let cases: [([u8; 8], RecordType, RecordBody<'static>); 4] = [
        ([0x00, 0, 0, 0, 0, 0, 0, 0], RecordType::END, RecordBody::End),
        ([0x0d, 0, 0, 0, 0, 0, 0, 0], RecordType::VERIFY, RecordBody::Verify),
        ([0x0e, 0, 0, 0, 0, 0, 0, 0], RecordType::CHECKPOINT, RecordBody::Checkpoint),
        ([0x10, 0, 0, 0, 0, 0, 0, 0], RecordType::STATIC_DATA_END, RecordBody::StaticDataEnd),
    ];
    for (bytes, rtype, want) in cases {
        assert_eq!(written(rtype, &[]), bytes);
        assert!(rtype.is_empty_record());
        if rtype == RecordType::END {
            let mut stream = IHDR_V3.to_vec();
            stream.extend_from_slice(&DHDR_PV);
            stream.extend_from_slice(&bytes);
            let mut r = StreamReader::from_slice(&stream);
            r.next_item().unwrap();
            r.next_item().unwrap();
            let Some(Item::Record(rec)) = r.next_item().unwrap() else { panic!() };
            assert_eq!(parse(&rec, 12), want);
            assert_eq!(r.next_item().unwrap(), None);
            assert!(r.is_done());
            continue;
        }
        with_record(&DHDR_PV, &bytes, |r| {
            assert_eq!(r.rtype, rtype);
            assert_eq!(parse(&r, 12), want);
        });
    }
}

#[test]
fn page_data_with_64k_pages_golden() {
    // ARM with page_shift 16: one NOTAB entry, one 64 KiB page of 0x3c.
    let mut rec = vec![
        0x01, 0, 0, 0, // PAGE_DATA
        0x10, 0x00, 0x01, 0x00, // length 8 + 8 + 65536 = 0x10010
        0x01, 0, 0, 0, 0, 0, 0, 0, // count 1
        0x2a, 0, 0, 0, 0, 0, 0, 0, // pfn 42, NOTAB
    ];
    rec.extend_from_slice(&[0x3c; 65536]);
    let mut out = Vec::new();
    encode_page_data(&mut out, &[PfnEntry::new(42, PageType::NOTAB)], &[0x3c; 65536], 65536);
    assert_eq!(out, rec);
    with_record(&DHDR_ARM, &rec, |r| {
        let RecordBody::PageData(pd) = parse(&r, 16) else { panic!() };
        assert_eq!((pd.count(), pd.data_pages(), pd.page_size()), (1, 1, 65536));
    });
}

// ---------------------------------------------------------------------------------------------
// libxl layer
// ---------------------------------------------------------------------------------------------

const LIBXL_HDR: [u8; 16] = [
    0x4c, 0x69, 0x62, 0x78, 0x6c, 0x46, 0x6d, 0x74, // "LibxlFmt"
    0x00, 0x00, 0x00, 0x02, // version 2 (BE)
    0x00, 0x00, 0x00, 0x00, // options (BE)
];

#[test]
fn libxl_header_golden() {
    assert_eq!(&LIBXL_HDR[..8], b"LibxlFmt");
    assert_eq!(LibxlHeader::new(false).as_bytes(), &LIBXL_HDR);
    let mut legacy = LIBXL_HDR;
    legacy[15] = 0x02;
    assert_eq!(LibxlHeader::new(true).as_bytes(), &legacy);
    for (bytes, options) in [(LIBXL_HDR, 0), (legacy, 2)] {
        let h = LibxlHeader::read_from_bytes(&bytes).unwrap();
        assert_eq!((h.ident.get(), h.version.get(), h.options.get()), (0x4c69_6278_6c46_6d74, 2, options));
        h.validate(0, Strictness::Strict).unwrap();
    }
}

#[test]
fn emulator_header_golden() {
    let bytes = [0x02, 0, 0, 0, 0x07, 0, 0, 0];
    assert_eq!(EmulatorHeader { id: U32::new(2), index: U32::new(7) }.as_bytes(), &bytes);
    let h = EmulatorHeader::read_from_bytes(&bytes).unwrap();
    assert_eq!((h.id.get(), h.index.get()), (2, 7));
}

/// Hand-written libxl records.
const LX_END: [u8; 8] = [0, 0, 0, 0, 0, 0, 0, 0];
const LX_LIBXC_CONTEXT: [u8; 8] = [1, 0, 0, 0, 0, 0, 0, 0];
const LX_CHECKPOINT_END: [u8; 8] = [4, 0, 0, 0, 0, 0, 0, 0];
/// CHECKPOINT_STATE SVM_READY (2): u32 id, 4 bytes of padding.
const LX_CHECKPOINT_STATE: [u8; 16] = [5, 0, 0, 0, 4, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0];
/// EMULATOR_CONTEXT, qemu-upstream (2), index 0, 8 bytes of state.
const LX_EMU_CONTEXT: [u8; 24] = [
    3, 0, 0, 0, 16, 0, 0, 0, // type 3, length 16
    2, 0, 0, 0, 0, 0, 0, 0, // emulator id 2, index 0
    b'Q', b'E', b'V', b'M', 0, 0, 0, 3, // state
];

/// EMULATOR_XENSTORE_DATA, id 2, index 0, "physmap/f0000000/size" = "800000":
/// body 8 + 22 + 7 = 37, 3 bytes of padding.
fn lx_xenstore() -> Vec<u8> {
    let mut v = vec![2, 0, 0, 0, 37, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0];
    v.extend_from_slice(b"physmap/f0000000/size\0800000\0");
    v.extend_from_slice(&[0, 0, 0]);
    v
}

#[test]
fn libxl_records_golden_encoding() {
    let xs = lx_xenstore();
    assert_eq!(xs.len(), 48);
    let cases: [(LibxlRecordType, Vec<u8>, &[u8]); 6] = [
        (LibxlRecordType::END, vec![], &LX_END),
        (LibxlRecordType::LIBXC_CONTEXT, vec![], &LX_LIBXC_CONTEXT),
        (LibxlRecordType::EMULATOR_XENSTORE_DATA, xenstore_body(2, 0, &[(b"physmap/f0000000/size", b"800000")]), &xs),
        (LibxlRecordType::EMULATOR_CONTEXT, emulator_context_body(2, 0, b"QEVM\0\0\0\x03"), &LX_EMU_CONTEXT),
        (LibxlRecordType::CHECKPOINT_END, vec![], &LX_CHECKPOINT_END),
        (LibxlRecordType::CHECKPOINT_STATE, 2u32.to_le_bytes().to_vec(), &LX_CHECKPOINT_STATE),
    ];
    for (rtype, body, golden) in cases {
        let mut out = Vec::new();
        encode_libxl_record(&mut out, rtype, &body);
        assert_eq!(out, golden, "{rtype}");
        let mut w = RecordWriter::new(Vec::new());
        w.write_libxl_record(rtype, &body).unwrap();
        assert_eq!(w.into_inner(), golden, "{rtype} via RecordWriter");
    }
}

#[test]
fn libxl_stream_golden_parse() {
    // header, LIBXC_CONTEXT, libxc (ihdr, dhdr, CHECKPOINT), XENSTORE_DATA, EMULATOR_CONTEXT,
    // CHECKPOINT_END, libxc END, libxl END.
    let xs = lx_xenstore();
    let parts: [&[u8]; 10] = [
        &LIBXL_HDR,
        &LX_LIBXC_CONTEXT,
        &IHDR_V3,
        &DHDR_HVM,
        &[0x0e, 0, 0, 0, 0, 0, 0, 0],
        &xs,
        &LX_EMU_CONTEXT,
        &LX_CHECKPOINT_END,
        &END,
        &LX_END,
    ];
    let stream = parts.concat();
    assert_eq!(stream.len(), 168);
    let mut r = StreamReader::from_slice(&stream).strictness(Strictness::Strict);
    let mut seen = Vec::new();
    while let Some(item) = r.next_item().unwrap() {
        match item {
            Item::LibxlHeader { offset, header } => {
                assert_eq!(header, LibxlHeader::new(false));
                seen.push(format!("libxl-header@{offset}"));
            }
            Item::LibxlRecord(rec) => {
                match rec.rtype {
                    LibxlRecordType::EMULATOR_XENSTORE_DATA => {
                        let (h, _) = rec.emulator().unwrap();
                        assert_eq!((h.id.get(), h.index.get()), (2, 0));
                        assert_eq!(rec.xenstore_pairs().unwrap(), [(&b"physmap/f0000000/size"[..], &b"800000"[..])]);
                    }
                    LibxlRecordType::EMULATOR_CONTEXT => {
                        let (h, state) = rec.emulator().unwrap();
                        assert_eq!((h.id.get(), h.index.get(), state), (2, 0, &b"QEVM\0\0\0\x03"[..]));
                    }
                    _ => assert!(rec.body.is_empty()),
                }
                seen.push(format!("libxl-{}#{}@{}", rec.rtype, rec.index, rec.offset));
            }
            Item::ImageHeader { offset, .. } => seen.push(format!("ihdr@{offset}")),
            Item::DomainHeader { offset, header } => {
                assert_eq!(header.domain_type(), DomainType::X86_HVM);
                seen.push(format!("dhdr@{offset}"));
            }
            Item::Record(rec) => seen.push(format!("{}#{}@{}", rec.rtype, rec.index, rec.offset)),
            Item::Xl { .. } | Item::Virsh { .. } => panic!("no xl or virsh header here"),
        }
    }
    assert_eq!(
        seen,
        [
            "libxl-header@0",
            "libxl-LIBXC_CONTEXT#0@16",
            "ihdr@24",
            "dhdr@48",
            "CHECKPOINT#0@64",
            "libxl-EMULATOR_XENSTORE_DATA#1@72",
            "libxl-EMULATOR_CONTEXT#2@120",
            "libxl-CHECKPOINT_END#3@144",
            "END#1@152",
            "libxl-END#4@160",
        ]
    );
    assert!(r.is_done());
    assert_eq!(r.offset(), 168);

    // CHECKPOINT_STATE belongs to the COLO back channel: the reader refuses it in a stream.
    let stream = [&LIBXL_HDR[..], &LX_CHECKPOINT_STATE].concat();
    let mut r = StreamReader::from_slice(&stream);
    r.next_item().unwrap();
    assert!(matches!(r.next_item(), Err(Error::MisplacedLibxlRecord { offset: 16, index: 0, .. })));
}

// ---------------------------------------------------------------------------------------------
// xl layer
// ---------------------------------------------------------------------------------------------

const XL_MAGIC: &[u8; 32] = b"Xen saved domain, xl format\n \0 \r";

#[test]
fn xl_header_golden() {
    assert_eq!(XL_MAGIC[27..], [b'\n', b' ', 0, b' ', b'\r']);
    // With an 8-byte JSON config (NUL included): flags JSON|STREAMv2, optional data 12.
    let config = b"{\"a\":1}\0";
    let mut with_cfg = XL_MAGIC.to_vec();
    with_cfg.extend_from_slice(&[
        0x04, 0x03, 0x02, 0x01, // byteorder
        0x03, 0x00, 0x00, 0x00, // mandatory flags
        0x00, 0x00, 0x00, 0x00, // optional flags
        0x0c, 0x00, 0x00, 0x00, // optional data length 12
        0x08, 0x00, 0x00, 0x00, // config length 8
    ]);
    with_cfg.extend_from_slice(config);
    assert_eq!(encode_xl_header(Some(config)), with_cfg);

    // Without a config: STREAMv2 only, and the 4-byte zero length is still written.
    let mut without = XL_MAGIC.to_vec();
    without.extend_from_slice(&[4, 3, 2, 1, 2, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(encode_xl_header(None), without);
    assert_eq!(XlHeader::new(None).as_bytes(), &without[..48]);

    let h = XlHeader::read_from_bytes(&with_cfg[..48]).unwrap();
    assert_eq!(&h.magic, XL_MAGIC);
    assert_eq!((h.byteorder.get(), h.mandatory_flags.get(), h.optional_flags.get()), (0x0102_0304, 3, 0));
    assert_eq!(h.optional_data_len.get(), 12);
    assert!(h.is_json() && h.is_stream_v2());
    let h = XlHeader::read_from_bytes(&without[..48]).unwrap();
    assert!(!h.is_json() && h.is_stream_v2());

    // Whole xl files through the reader: xl, libxl header, LIBXC_CONTEXT, ihdr, dhdr, END, END.
    for (head, cfg) in [(&with_cfg, &config[..]), (&without, &[][..])] {
        let parts: [&[u8]; 7] = [head, &LIBXL_HDR, &LX_LIBXC_CONTEXT, &IHDR_V3, &DHDR_PV, &END, &LX_END];
        let stream = parts.concat();
        let mut r = StreamReader::from_slice(&stream).strictness(Strictness::Strict);
        match r.next_item().unwrap() {
            Some(Item::Xl { offset: 0, header, config }) => {
                assert_eq!(header.as_bytes(), &head[..48]);
                assert_eq!(config, cfg);
            }
            other => panic!("expected the xl header, got {other:?}"),
        }
        let l = head.len() as u64;
        assert!(matches!(r.next_item().unwrap(), Some(Item::LibxlHeader { offset, .. }) if offset == l));
        assert!(matches!(r.next_item().unwrap(), Some(Item::LibxlRecord(x)) if x.offset == l + 16));
        assert!(matches!(r.next_item().unwrap(), Some(Item::ImageHeader { offset, .. }) if offset == l + 24));
        assert!(matches!(r.next_item().unwrap(), Some(Item::DomainHeader { offset, .. }) if offset == l + 48));
        assert!(matches!(r.next_item().unwrap(), Some(Item::Record(x)) if x.offset == l + 64));
        assert!(
            matches!(r.next_item().unwrap(), Some(Item::LibxlRecord(x)) if x.offset == l + 72 && x.rtype == LibxlRecordType::END)
        );
        assert_eq!(r.next_item().unwrap(), None);
        assert_eq!(r.layer(), Some(sr_format::Layer::Xl));
        assert_eq!(sr_format::walk(&stream).unwrap().bytes, stream.len() as u64);
    }
}
