//! Malformed streams: every rejection comes with the right `Error` variant and the right
//! absolute offset, nothing panics, and strict-only rules stay strict-only.

mod common;

use common::{
    Chunked, PV_CONFIG, Rng, emulator_records, headers, items_from_read, items_from_slice, libxc_stream, libxl_wrap,
    small_hvm_stream, small_pv_stream, small_streams, xl_wrap,
};
use sr_format::libxl::{LibxlHeader, LibxlRecordType, encode_libxl_record};
use sr_format::xl::encode_xl_header;
use sr_format::{
    DomainType, Error, IHDR_MARKER, Item, Layer, REC_LENGTH_MAX, RecordType, StreamReader, Strictness, WalkSummary,
    record_bytes, walk, walk_with,
};
use zerocopy::IntoBytes;

const PV: DomainType = DomainType::X86_PV;

/// A v3 PV stream holding `recs` then END; the first record is at offset 40.
fn one(recs: &[Vec<u8>]) -> Vec<u8> {
    libxc_stream(PV, 3, 12, recs)
}

fn lenient(data: &[u8]) -> Result<WalkSummary, Error> {
    walk(data)
}

fn strict(data: &[u8]) -> Result<WalkSummary, Error> {
    walk_with(data, Strictness::Strict)
}

/// A raw record: header with the given type and length, then `rest` verbatim.
fn raw(rtype: u32, length: u32, rest: &[u8]) -> Vec<u8> {
    let mut v = rtype.to_le_bytes().to_vec();
    v.extend_from_slice(&length.to_le_bytes());
    v.extend_from_slice(rest);
    v
}

fn assert_bad_length(r: Result<WalkSummary, Error>, offset: u64, index: u64, record: RecordType, found: u32) {
    match r {
        Err(Error::BadLength { offset: o, index: i, record: t, found: f, .. }) => {
            assert_eq!((o, i, t, f), (offset, index, record, found));
        }
        other => panic!("expected BadLength for {record} of {found} bytes, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Image and domain headers
// ---------------------------------------------------------------------------------------------

#[test]
fn bad_marker() {
    // A bare libxc stream is recognised by its marker, so a bad marker is an unknown layer...
    let mut s = small_pv_stream();
    s[7] = 0xfe;
    assert_eq!(
        lenient(&s),
        Err(Error::UnknownLayer { offset: 0, found: [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe] })
    );
    // ...and inside a libxl stream it is a bad marker at the image header's offset (24).
    let mut s = libxl_wrap(&small_pv_stream(), &[]);
    s[24] = 0x7f;
    assert_eq!(lenient(&s), Err(Error::BadMarker { offset: 24, found: 0x7fff_ffff_ffff_ffff }));
    // A legacy (pre-4.6) image has a zero bit in its first 8 bytes.
    let mut s = libxl_wrap(&small_pv_stream(), &[]);
    s[24..32].copy_from_slice(&0x0000_0000_0000_1000u64.to_le_bytes());
    assert!(matches!(lenient(&s), Err(Error::BadMarker { offset: 24, .. })));
    assert_eq!(IHDR_MARKER, u64::MAX);
}

#[test]
fn bad_image_id() {
    let mut s = small_pv_stream();
    s[11] = b'G';
    assert_eq!(lenient(&s), Err(Error::BadImageId { offset: 8, found: 0x5845_4E47 }));
    let mut s = xl_wrap(None, &libxl_wrap(&small_pv_stream(), &[]));
    let ihdr = 52 + 24;
    s[ihdr + 8] = 0;
    assert_eq!(lenient(&s), Err(Error::BadImageId { offset: ihdr as u64 + 8, found: 0x0045_4E46 }));
}

#[test]
fn bad_versions() {
    for v in [0u32, 1, 4, 0x0300_0000, u32::MAX] {
        let mut s = small_pv_stream();
        s[12..16].copy_from_slice(&v.to_be_bytes());
        assert_eq!(lenient(&s), Err(Error::BadVersion { offset: 12, found: v }), "version {v}");
    }
    // Version 2 and 3 are accepted.
    for v in [2u32, 3] {
        let s = libxc_stream(PV, v, 12, &common::pv_records(v));
        assert!(lenient(&s).is_ok());
        assert!(strict(&s).is_ok());
    }
}

#[test]
fn big_endian_bit_and_reserved_options() {
    let mut s = small_pv_stream();
    s[17] = 0x01;
    assert_eq!(lenient(&s), Err(Error::BigEndian { offset: 16 }));
    assert_eq!(strict(&s), Err(Error::BigEndian { offset: 16 }));
    // Bits 1-15: ignored by C, rejected by strict.
    for (byte, value, at, field_value) in
        [(17, 0x02u8, 16u64, 0x02u64), (16, 0x80, 16, 0x8000), (19, 1, 18, 1), (23, 9, 20, 9)]
    {
        let mut s = small_pv_stream();
        s[byte] = value;
        assert!(lenient(&s).is_ok(), "byte {byte}");
        match strict(&s) {
            Err(Error::ReservedNonZero { offset, value, .. }) => assert_eq!((offset, value), (at, field_value)),
            other => panic!("byte {byte}: {other:?}"),
        }
    }
}

#[test]
fn bad_domain_header() {
    for t in [0u32, 5, 0x100, u32::MAX] {
        let mut s = small_pv_stream();
        s[24..28].copy_from_slice(&t.to_le_bytes());
        assert_eq!(lenient(&s), Err(Error::BadDomainType { offset: 24, found: t }));
    }
    for shift in [0u16, 11, 13, 16, 32, 44] {
        let mut s = small_pv_stream();
        s[28..30].copy_from_slice(&shift.to_le_bytes());
        assert!(
            matches!(lenient(&s), Err(Error::BadPageShift { offset: 28, found, .. }) if found == shift),
            "page_shift {shift}"
        );
    }
    let mut s = small_pv_stream();
    s[31] = 0x40;
    assert!(lenient(&s).is_ok());
    assert!(matches!(strict(&s), Err(Error::ReservedNonZero { offset: 30, value: 0x4000, .. })));
}

#[test]
fn truncated_headers_every_length() {
    let full = headers(PV, 3, 12);
    assert_eq!(full.len(), 40);
    for n in 0..=40usize {
        let prefix = &full[..n];
        let want = match n {
            0..8 => Some((0, 8, n as u64)),
            8..24 => Some((0, 24, n as u64)),
            24..40 => Some((24, 16, n as u64 - 24)),
            _ => Some((40, 8, 0)), // the first record header
        };
        for got in [lenient(prefix), items_from_read(prefix, 3).1.map(|_| WalkSummary::default())] {
            match (got, want) {
                (Err(Error::Truncated { offset, needed, got, .. }), Some(w)) => {
                    assert_eq!((offset, needed, got), w, "prefix of {n} bytes");
                }
                (other, _) => panic!("prefix of {n} bytes: {other:?}"),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Record framing
// ---------------------------------------------------------------------------------------------

/// A `Read` that records the largest buffer it was handed and the bytes it delivered.
struct Counting<'a> {
    data: &'a [u8],
    max_buf: usize,
    delivered: usize,
}

impl std::io::Read for Counting<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.max_buf = self.max_buf.max(buf.len());
        let n = buf.len().min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        self.delivered += n;
        Ok(n)
    }
}

#[test]
fn record_longer_than_the_limit() {
    for length in [REC_LENGTH_MAX + 1, 0xFFFF_FFF8, 0xFFFF_FFF9, u32::MAX] {
        // Nothing but the headers and one record header: any attempt to allocate or read
        // the claimed body would be visible in the counting reader.
        let mut s = headers(PV, 3, 12);
        s.extend_from_slice(&raw(1, length, &[]));
        let want =
            Error::RecordTooLong { offset: 40, index: 0, record: RecordType::PAGE_DATA, length, limit: REC_LENGTH_MAX };
        assert_eq!(lenient(&s), Err(want.clone()));
        let mut src = Counting { data: &s, max_buf: 0, delivered: 0 };
        let mut r = StreamReader::from_read(&mut src);
        r.next_item().unwrap();
        r.next_item().unwrap();
        assert_eq!(r.next_item().map(|_| ()), Err(want));
        drop(r);
        assert_eq!(src.delivered, 48);
        assert!(src.max_buf <= 64, "reader asked for {} bytes", src.max_buf);
    }
    // After two valid records the index is 2.
    let mut s = headers(PV, 3, 12);
    s.extend_from_slice(&common::tsc_record(1));
    s.extend_from_slice(&record_bytes(RecordType::VERIFY, &[]));
    s.extend_from_slice(&raw(0x8000_0001, REC_LENGTH_MAX + 1, &[]));
    assert!(matches!(
        lenient(&s),
        Err(Error::RecordTooLong { offset: 80, index: 2, record: RecordType(0x8000_0001), .. })
    ));
}

#[test]
fn record_at_the_limit_is_only_truncated() {
    let mut s = headers(PV, 3, 12);
    s.extend_from_slice(&raw(0x8000_0000, REC_LENGTH_MAX, &[1, 2, 3]));
    let want = Error::Truncated { offset: 40, what: "record", needed: 8 + u64::from(REC_LENGTH_MAX), got: 11 };
    assert_eq!(lenient(&s), Err(want.clone()));
    // Through a reader, memory grows only with bytes that really arrive.
    let mut src = Counting { data: &s, max_buf: 0, delivered: 0 };
    let mut r = StreamReader::from_read(&mut src);
    r.next_item().unwrap();
    r.next_item().unwrap();
    assert_eq!(r.next_item().map(|_| ()), Err(want));
    drop(r);
    assert!(src.max_buf <= 2 << 20, "reader handed a {} byte buffer for a 3-byte body", src.max_buf);
}

#[test]
fn lowered_length_limit() {
    let s = one(&[record_bytes(RecordType::HVM_CONTEXT, &[1; 4097])]);
    let mut r = StreamReader::from_slice(&s).length_limit(4096);
    r.next_item().unwrap();
    r.next_item().unwrap();
    assert!(matches!(r.next_item(), Err(Error::RecordTooLong { offset: 40, length: 4097, limit: 4096, .. })));
    // It can never be raised.
    let mut s = headers(PV, 3, 12);
    s.extend_from_slice(&raw(9, REC_LENGTH_MAX + 1, &[]));
    let mut r = StreamReader::from_slice(&s).length_limit(u32::MAX);
    r.next_item().unwrap();
    r.next_item().unwrap();
    assert!(matches!(r.next_item(), Err(Error::RecordTooLong { limit: REC_LENGTH_MAX, .. })));
}

#[test]
fn libxl_record_longer_than_the_limit() {
    // libxl's C reader has no cap and wraps its rounding for these; we refuse them up front.
    for length in [0xFFFF_FFF9u32, REC_LENGTH_MAX + 1] {
        let mut s = LibxlHeader::new(false).as_bytes().to_vec();
        s.extend_from_slice(&raw(3, length, &[]));
        assert!(
            matches!(lenient(&s), Err(Error::LibxlRecordTooLong { offset: 16, index: 0, length: l, .. }) if l == length),
            "{length:#x}"
        );
        // After LIBXC_CONTEXT and a whole libxc stream, the libxl index is 1.
        let mut s = libxl_wrap(&small_pv_stream(), &[]);
        let end = s.len() - 8;
        s[end..].copy_from_slice(&raw(2, length, &[]));
        assert!(
            matches!(lenient(&s), Err(Error::LibxlRecordTooLong { offset, index: 1, .. }) if offset == end as u64),
            "{length:#x}"
        );
    }
}

#[test]
fn non_zero_padding() {
    let mut rec = record_bytes(RecordType::HVM_CONTEXT, &[5; 20]);
    rec[8 + 22] = 1;
    let s = one(&[rec]);
    assert!(lenient(&s).is_ok());
    let (items, end) = items_from_slice(&s);
    end.unwrap();
    assert!(items.iter().any(|i| matches!(i, common::Owned::Record { offset: 40, padding_nonzero: true, .. })));
    assert_eq!(strict(&s), Err(Error::NonZeroPadding { offset: 40, index: 0, record: RecordType::HVM_CONTEXT }));

    // libxl records: strict rejects through the record's own check.
    let mut emu = Vec::new();
    encode_libxl_record(&mut emu, LibxlRecordType::EMULATOR_CONTEXT, &[2, 0, 0, 0, 0, 0, 0, 0, 9]);
    let last = emu.len() - 1;
    emu[last] = 0xff;
    let mut s = LibxlHeader::new(false).as_bytes().to_vec();
    encode_libxl_record(&mut s, LibxlRecordType::LIBXC_CONTEXT, &[]);
    s.extend_from_slice(&small_hvm_stream());
    let emu_at = s.len() as u64;
    s.extend_from_slice(&emu);
    encode_libxl_record(&mut s, LibxlRecordType::END, &[]);
    assert!(lenient(&s).is_ok());
    assert!(matches!(strict(&s), Err(Error::BadLibxlLength { offset, index: 1, .. }) if offset == emu_at));
}

#[test]
fn truncation_at_every_byte_of_every_layer() {
    for (name, full) in small_streams() {
        let summary = lenient(&full).unwrap();
        assert_eq!(summary.bytes, full.len() as u64, "{name}");
        for p in 0..full.len() {
            match lenient(&full[..p]) {
                Err(Error::Truncated { offset, needed, got, .. }) => {
                    assert!(offset <= p as u64, "{name}[..{p}]: offset {offset}");
                    assert_eq!(offset + got, p as u64, "{name}[..{p}]: offset {offset} got {got}");
                    assert!(offset + needed > p as u64, "{name}[..{p}]: item fits");
                }
                other => panic!("{name}[..{p}]: {other:?}"),
            }
        }
    }
}

#[test]
fn truncation_through_a_reader_matches_the_slice() {
    for (name, full) in small_streams() {
        let step = if name.starts_with("libxc") { 1 } else { 61 };
        for p in (0..full.len()).step_by(step).chain(full.len() - 64..full.len()) {
            let (a_items, a_end) = items_from_slice(&full[..p]);
            let (b_items, b_end) = items_from_read(&full[..p], 1000);
            assert_eq!(a_items, b_items, "{name}[..{p}]");
            assert_eq!(a_end, b_end, "{name}[..{p}]");
            assert!(matches!(a_end, Err(Error::Truncated { .. })), "{name}[..{p}]: {a_end:?}");
        }
    }
}

#[test]
fn bytes_after_end_are_not_read() {
    for (name, mut full) in small_streams() {
        let n = full.len() as u64;
        full.extend_from_slice(b"trailing garbage \xff\xff\xff");
        assert_eq!(lenient(&full).unwrap().bytes, n, "{name}");
        assert_eq!(strict(&full).unwrap().bytes, n, "{name}");
    }
}

#[test]
fn reader_is_poisoned_after_an_error() {
    let mut s = small_pv_stream();
    s[24] = 9;
    let mut r = StreamReader::from_slice(&s);
    r.next_item().unwrap();
    assert!(matches!(r.next_item(), Err(Error::BadDomainType { .. })));
    assert_eq!(r.next_item(), Ok(None));
    assert_eq!(r.next_item(), Ok(None));
}

// ---------------------------------------------------------------------------------------------
// PAGE_DATA
// ---------------------------------------------------------------------------------------------

fn pfn_word(pfn: u64, nibble: u64) -> [u8; 8] {
    (pfn | nibble << 60).to_le_bytes()
}

#[test]
fn unknown_page_types() {
    for nibble in 5u8..=8 {
        let mut body = vec![3, 0, 0, 0, 0, 0, 0, 0];
        body.extend_from_slice(&pfn_word(1, 0));
        body.extend_from_slice(&pfn_word(2, 0xF));
        body.extend_from_slice(&pfn_word(0x777, u64::from(nibble)));
        body.extend_from_slice(&[0; 4096]);
        let s = one(&[common::tsc_record(5), record_bytes(RecordType::PAGE_DATA, &body)]);
        let want = Error::UnknownPageType { offset: 72, index: 1, entry: 2, pfn: 0x777, nibble };
        assert_eq!(lenient(&s), Err(want.clone()));
        assert_eq!(strict(&s), Err(want));
    }
}

#[test]
fn page_data_count_zero() {
    for body in [vec![0u8; 8], [vec![0u8; 8], vec![0xAA; 4096]].concat()] {
        let s = one(&[record_bytes(RecordType::PAGE_DATA, &body)]);
        assert_eq!(lenient(&s), Err(Error::PageDataCountZero { offset: 40, index: 0 }));
    }
}

#[test]
fn page_data_length_mismatches() {
    let pd = RecordType::PAGE_DATA;
    let hdr = |count: u32| [count.to_le_bytes(), [0; 4]].concat();
    let cases: Vec<Vec<u8>> = vec![
        // Too short for the header.
        vec![],
        vec![1, 0, 0, 0],
        vec![1, 0, 0, 0, 0, 0, 0],
        // Too short for the pfn words.
        hdr(1),
        [hdr(2), pfn_word(0, 0xF).to_vec()].concat(),
        [hdr(2), pfn_word(0, 0xF).to_vec(), vec![0; 7]].concat(),
        // One page short.
        [hdr(2), pfn_word(0, 0).to_vec(), pfn_word(1, 1).to_vec(), vec![0; 4096]].concat(),
        // One byte short.
        [hdr(1), pfn_word(0, 0).to_vec(), vec![0; 4095]].concat(),
        // One page too many.
        [hdr(1), pfn_word(0, 0).to_vec(), vec![0; 8192]].concat(),
        // A page for an XTAB / BROKEN / XALLOC entry.
        [hdr(1), pfn_word(0, 0xF).to_vec(), vec![0; 4096]].concat(),
        [hdr(1), pfn_word(0, 0xD).to_vec(), vec![0; 4096]].concat(),
        [hdr(1), pfn_word(0, 0xE).to_vec(), vec![0; 8]].concat(),
        // A count claiming 2^32 - 1 entries.
        [hdr(u32::MAX), pfn_word(0, 0).to_vec(), vec![0; 4096]].concat(),
        [hdr(u32::MAX), vec![0xff; 64]].concat(),
        // 0x2000_0000 entries would need exactly 4 GiB of pfn words.
        [hdr(0x2000_0000), pfn_word(0, 0xF).to_vec()].concat(),
    ];
    for body in cases {
        let found = body.len() as u32;
        let s = one(&[common::tsc_record(1), record_bytes(pd, &body)]);
        assert_bad_length(lenient(&s), 72, 1, pd, found);
    }
    // The accepted shapes: only non-data entries; data for pinned and unpinned tables.
    for body in [
        [hdr(3), pfn_word(0, 0xF).to_vec(), pfn_word(1, 0xD).to_vec(), pfn_word(2, 0xE).to_vec()].concat(),
        [hdr(2), pfn_word(0, 0xC).to_vec(), pfn_word(1, 0x4).to_vec(), vec![0; 8192]].concat(),
    ] {
        let s = one(&[record_bytes(pd, &body)]);
        assert!(strict(&s).is_ok());
    }
}

// ---------------------------------------------------------------------------------------------
// Fixed-size and array bodies
// ---------------------------------------------------------------------------------------------

#[test]
fn fixed_length_records() {
    let cases: [(RecordType, &[usize], &[usize]); 7] = [
        (RecordType::X86_TSC_INFO, &[0, 8, 16, 23, 25, 32], &[24]),
        (RecordType::SHARED_INFO, &[0, 8, 4095, 4097, 8192], &[4096]),
        (RecordType::X86_CPUID_POLICY, &[0, 8, 23, 25, 47, 73], &[24, 48, 240]),
        (RecordType::X86_MSR_POLICY, &[0, 8, 15, 17, 24, 40], &[16, 32, 160]),
        (RecordType::HVM_CONTEXT, &[0], &[1, 8, 1000]),
        (RecordType::CHECKPOINT_DIRTY_PFN_LIST, &[1, 12, 17], &[0, 8, 64]),
        (RecordType::X86_PV_VCPU_BASIC, &[0, 4, 7], &[8, 9, 5176]),
    ];
    for (rtype, bad, good) in cases {
        for &len in bad {
            let s = one(&[record_bytes(rtype, &vec![0; len])]);
            assert_bad_length(lenient(&s), 40, 0, rtype, len as u32);
        }
        for &len in good {
            let s = one(&[record_bytes(rtype, &vec![0; len])]);
            assert!(strict(&s).is_ok(), "{rtype} of {len} bytes");
        }
    }
    for rtype in [RecordType::X86_PV_VCPU_EXTENDED, RecordType::X86_PV_VCPU_XSAVE, RecordType::X86_PV_VCPU_MSRS] {
        let s = one(&[record_bytes(rtype, &[0; 7])]);
        assert_bad_length(lenient(&s), 40, 0, rtype, 7);
    }
}

#[test]
fn hvm_params_lengths() {
    let body = |count: u32, entries: usize| {
        let mut b = count.to_le_bytes().to_vec();
        b.extend_from_slice(&[0; 4]);
        b.extend_from_slice(&vec![0x11; 16 * entries]);
        b
    };
    let hp = RecordType::HVM_PARAMS;
    for b in [vec![], vec![0; 4], body(2, 1), body(1, 2), body(0, 1), [body(1, 1), vec![0; 8]].concat()] {
        let found = b.len() as u32;
        assert_bad_length(lenient(&one(&[record_bytes(hp, &b)])), 40, 0, hp, found);
    }
    // u32::MAX entries: 8 + 16 * count does not wrap.
    assert_bad_length(lenient(&one(&[record_bytes(hp, &body(u32::MAX, 1))])), 40, 0, hp, 24);
    // Count 0 (old senders) and exact lengths are accepted.
    for b in [body(0, 0), body(1, 1), body(3, 3)] {
        assert!(strict(&one(&[record_bytes(hp, &b)])).is_ok());
    }
}

#[test]
fn pv_info_pairs_and_lengths() {
    for (w, l) in [(4u8, 4u8), (8, 3), (0, 0), (8, 8), (2, 2), (4, 2)] {
        let s = one(&[record_bytes(RecordType::X86_PV_INFO, &[w, l, 0, 0, 0, 0, 0, 0])]);
        assert_eq!(lenient(&s), Err(Error::BadPvInfo { offset: 40, index: 0, width: w, levels: l }));
    }
    for len in [0usize, 2, 7] {
        let mut b = vec![0; len];
        if len >= 2 {
            b[..2].copy_from_slice(&[8, 4]);
        }
        assert_bad_length(
            lenient(&one(&[record_bytes(RecordType::X86_PV_INFO, &b)])),
            40,
            0,
            RecordType::X86_PV_INFO,
            len as u32,
        );
    }
    // Longer than 8 is accepted by C.
    assert!(lenient(&one(&[record_bytes(RecordType::X86_PV_INFO, &[8, 4, 0, 0, 0, 0, 0, 0, 1, 2])])).is_ok());
    assert!(lenient(&one(&[record_bytes(RecordType::X86_PV_INFO, &[4, 3, 0, 0, 0, 0, 0, 0])])).is_ok());
}

#[test]
fn p2m_frames_shapes() {
    let p2m = RecordType::X86_PV_P2M_FRAMES;
    let body = |start: u32, end: u32, frames: usize| {
        let mut b = start.to_le_bytes().to_vec();
        b.extend_from_slice(&end.to_le_bytes());
        b.extend_from_slice(&vec![0; 8 * frames]);
        b
    };
    let s = one(&[record_bytes(p2m, &body(513, 512, 1))]);
    assert_eq!(lenient(&s), Err(Error::BadP2mRange { offset: 40, index: 0, start: 513, end: 512 }));
    let s = one(&[record_bytes(p2m, &body(u32::MAX, 0, 1))]);
    assert_eq!(lenient(&s), Err(Error::BadP2mRange { offset: 40, index: 0, start: u32::MAX, end: 0 }));
    for b in [vec![], vec![0; 4], vec![0; 7], [body(0, 10, 1), vec![0; 4]].concat()] {
        let found = b.len() as u32;
        assert_bad_length(lenient(&one(&[record_bytes(p2m, &b)])), 40, 0, p2m, found);
    }
    assert!(strict(&one(&[record_bytes(p2m, &body(7, 7, 1))])).is_ok());
}

#[test]
fn empty_records_with_bodies() {
    for rtype in [RecordType::VERIFY, RecordType::CHECKPOINT, RecordType::STATIC_DATA_END] {
        let s = one(&[record_bytes(rtype, &[1, 2, 3])]);
        assert!(lenient(&s).is_ok(), "{rtype}");
        assert_eq!(strict(&s), Err(Error::UnexpectedBody { offset: 40, index: 0, record: rtype, length: 3 }));
    }
    // END with a body still ends the stream leniently.
    let mut s = headers(PV, 3, 12);
    s.extend_from_slice(&record_bytes(RecordType::END, &[0; 16]));
    assert_eq!(lenient(&s).unwrap().bytes, 40 + 24);
    assert_eq!(strict(&s), Err(Error::UnexpectedBody { offset: 40, index: 0, record: RecordType::END, length: 16 }));
}

#[test]
fn reserved_body_fields_are_strict_only() {
    let with = |rtype: RecordType, body: Vec<u8>| one(&[common::tsc_record(1), record_bytes(rtype, &body)]);
    // (stream, absolute offset of the reserved field, value)
    let mut pd = common::page_data(&[sr_format::PfnEntry::new(1, sr_format::PageType::XTAB)], 4096);
    pd[12] = 0x5;
    let pd = one(&[common::tsc_record(1), pd]);
    let mut pd_word = common::page_data(
        &[
            sr_format::PfnEntry::new(1, sr_format::PageType::XTAB),
            sr_format::PfnEntry::new(2, sr_format::PageType::XTAB),
        ],
        4096,
    );
    pd_word[8 + 8 + 8 + 6] = 0x30; // entry 1, bits 52-55
    let pd_word = one(&[common::tsc_record(1), pd_word]);
    let mut tsc = sr_format::body::TscInfo::new(1, 2, 3, 4).as_bytes().to_vec();
    tsc[20] = 7;
    let mut hp = vec![0, 0, 0, 0, 1, 0, 0, 0];
    hp[4] = 1;
    let msr = [[0xce, 0, 0, 0, 0, 0, 0, 0], [0; 8], [0x10, 0, 0, 0, 2, 0, 0, 0], [0; 8]].concat();
    let cases: Vec<(Vec<u8>, u64, u64)> = vec![
        (pd, 72 + 8 + 4, 5),
        (pd_word, 72 + 8 + 8 + 8, 3),
        (with(RecordType::X86_PV_INFO, vec![8, 4, 0, 0, 0, 0, 0, 1]), 72 + 8 + 2, 1),
        (with(RecordType::X86_PV_VCPU_BASIC, vec![0, 0, 0, 0, 9, 0, 0, 0]), 72 + 8 + 4, 9),
        (with(RecordType::X86_TSC_INFO, tsc), 72 + 8 + 20, 7),
        (with(RecordType::HVM_PARAMS, hp), 72 + 8 + 4, 1),
        (with(RecordType::X86_MSR_POLICY, msr), 72 + 8 + 16 + 4, 2),
    ];
    for (s, at, v) in cases {
        assert!(lenient(&s).is_ok());
        match strict(&s) {
            Err(Error::ReservedNonZero { offset, value, .. }) => assert_eq!((offset, value), (at, v)),
            other => panic!("expected ReservedNonZero at {at}, got {other:?}"),
        }
    }
}

#[test]
fn v3_records_in_a_v2_stream_are_left_to_the_restorer() {
    // The framing layer accepts them in both modes (C does too); the strict v2/v3 rule is
    // applied by sr-restore's engine, which keys on `RecordType::is_v3_only`.
    for rtype in [RecordType::STATIC_DATA_END, RecordType::X86_CPUID_POLICY, RecordType::X86_MSR_POLICY] {
        assert!(rtype.is_v3_only());
        let rec = match rtype {
            RecordType::X86_CPUID_POLICY => common::cpuid_record(),
            RecordType::X86_MSR_POLICY => common::msr_record(),
            _ => record_bytes(rtype, &[]),
        };
        let s = libxc_stream(PV, 2, 12, &[common::tsc_record(1), rec.clone()]);
        assert_eq!(lenient(&s).unwrap().records, 3, "{rtype}");
        assert_eq!(strict(&s).unwrap().records, 3, "{rtype}");
    }
    assert!(RecordType::ALL.iter().filter(|t| t.is_v3_only()).count() == 3);
}

// ---------------------------------------------------------------------------------------------
// libxl layer
// ---------------------------------------------------------------------------------------------

/// `xl` header (no config, 52 bytes) around a libxl stream, so the libxl header is at 52.
fn in_xl(libxl: &[u8]) -> Vec<u8> {
    xl_wrap(None, libxl)
}

#[test]
fn libxl_header_rejections() {
    let good = libxl_wrap(&small_pv_stream(), &[]);
    // Bad ident: an unknown layer at the start, a bad ident after an xl header.
    let mut s = good.clone();
    s[7] = b'T';
    assert!(matches!(lenient(&s), Err(Error::UnknownLayer { offset: 0, .. })));
    let mut s = in_xl(&good);
    s[52] = b'l';
    assert_eq!(lenient(&s), Err(Error::BadLibxlIdent { offset: 52, found: 0x6c69_6278_6c46_6d74 }));
    for v in [0u32, 1, 3] {
        let mut s = good.clone();
        s[8..12].copy_from_slice(&v.to_be_bytes());
        assert_eq!(lenient(&s), Err(Error::BadLibxlVersion { offset: 8, found: v }));
        let mut s = in_xl(&good);
        s[60..64].copy_from_slice(&v.to_be_bytes());
        assert_eq!(lenient(&s), Err(Error::BadLibxlVersion { offset: 60, found: v }));
    }
    let mut s = good.clone();
    s[15] = 1;
    assert_eq!(lenient(&s), Err(Error::BigEndian { offset: 12 }));
    let mut s = good.clone();
    s[15] = 3; // BE + legacy
    assert_eq!(lenient(&s), Err(Error::BigEndian { offset: 12 }));
    let mut s = good.clone();
    s[15] = 2; // converted from legacy: fine
    assert!(strict(&s).is_ok());
    let mut s = good.clone();
    s[12] = 0x80;
    assert!(lenient(&s).is_ok());
    assert!(matches!(strict(&s), Err(Error::ReservedNonZero { offset: 12, value: 0x8000_0000, .. })));
}

#[test]
fn libxl_unknown_record_types() {
    for t in [6u32, 7, 0x100, 0x8000_0000, 0x8000_0001, 0x8000_0005, u32::MAX] {
        // Before the libxc stream...
        let mut s = LibxlHeader::new(false).as_bytes().to_vec();
        s.extend_from_slice(&raw(t, 0, &[]));
        assert_eq!(lenient(&s), Err(Error::UnknownLibxlRecord { offset: 16, index: 0, found: t }));
        // ...and after it.
        let libxc = small_pv_stream();
        let s = libxl_wrap(&libxc, &[(LibxlRecordType(t), vec![1, 2, 3])]);
        let at = 16 + 8 + libxc.len() as u64;
        assert_eq!(lenient(&s), Err(Error::UnknownLibxlRecord { offset: at, index: 1, found: t }));
    }
}

#[test]
fn libxl_misplaced_records() {
    let libxc = small_pv_stream();
    let after = 24 + libxc.len() as u64;
    let misplaced = |s: &[u8]| match lenient(s) {
        Err(Error::MisplacedLibxlRecord { offset, index, record, .. }) => (offset, index, record),
        other => panic!("expected MisplacedLibxlRecord, got {other:?}"),
    };
    // CHECKPOINT_END outside a checkpoint: first record, or after a plain libxc END.
    let mut s = LibxlHeader::new(false).as_bytes().to_vec();
    encode_libxl_record(&mut s, LibxlRecordType::CHECKPOINT_END, &[]);
    assert_eq!(misplaced(&s), (16, 0, "CHECKPOINT_END"));
    let s = libxl_wrap(&libxc, &[(LibxlRecordType::CHECKPOINT_END, vec![])]);
    assert_eq!(misplaced(&s), (after, 1, "CHECKPOINT_END"));
    // CHECKPOINT_STATE is back-channel only.
    let s = libxl_wrap(&libxc, &[(LibxlRecordType::CHECKPOINT_STATE, 0u32.to_le_bytes().to_vec())]);
    assert_eq!(misplaced(&s), (after, 1, "CHECKPOINT_STATE"));
    let mut s = LibxlHeader::new(false).as_bytes().to_vec();
    encode_libxl_record(&mut s, LibxlRecordType::CHECKPOINT_STATE, &[]);
    assert_eq!(misplaced(&s), (16, 0, "CHECKPOINT_STATE"));
    // A second LIBXC_CONTEXT.
    let s = libxl_wrap(&libxc, &[(LibxlRecordType::LIBXC_CONTEXT, vec![])]);
    assert_eq!(misplaced(&s), (after, 1, "LIBXC_CONTEXT"));
    // libxl END inside a checkpoint (after CHECKPOINT, before CHECKPOINT_END).
    let mut cp = headers(DomainType::X86_HVM, 3, 12);
    cp.extend_from_slice(&record_bytes(RecordType::CHECKPOINT, &[]));
    let s = libxl_wrap(&cp, &[]);
    assert_eq!(misplaced(&s), (24 + 48, 1, "END"));
    // The same checkpoint, properly closed, is fine.
    let mut cp2 = cp.clone();
    encode_libxl_record(&mut cp2, LibxlRecordType::CHECKPOINT_END, &[]);
    cp2.extend_from_slice(&record_bytes(RecordType::END, &[]));
    let s = libxl_wrap(&cp2, &[]);
    assert_eq!(strict(&s).unwrap().libxl_records, 3);
}

#[test]
fn libxl_record_bodies() {
    let libxc = small_hvm_stream();
    let at = 24 + libxc.len() as u64;
    // Emulator records shorter than their 8-byte header.
    for t in [LibxlRecordType::EMULATOR_XENSTORE_DATA, LibxlRecordType::EMULATOR_CONTEXT] {
        for len in [0usize, 4, 7] {
            let s = libxl_wrap(&libxc, &[(t, vec![2; len])]);
            assert!(
                matches!(lenient(&s), Err(Error::BadLibxlLength { offset, index: 1, found, .. }) if offset == at && found == len as u32),
                "{t} of {len}: {:?}",
                lenient(&s)
            );
        }
    }
    // Malformed xenstore data.
    for data in [&b"key"[..], b"key\0", b"\0value\0", b"/abs\0v\0", b"k\0v\0k2"] {
        let body = [&[2, 0, 0, 0, 0, 0, 0, 0][..], data].concat();
        let s = libxl_wrap(&libxc, &[(LibxlRecordType::EMULATOR_XENSTORE_DATA, body)]);
        assert!(
            matches!(lenient(&s), Err(Error::BadXenstoreData { offset, index: 1, .. }) if offset == at),
            "{data:?}"
        );
    }
    // Non-empty LIBXC_CONTEXT / END bodies: ignored by C, rejected by strict.
    let mut s = LibxlHeader::new(false).as_bytes().to_vec();
    encode_libxl_record(&mut s, LibxlRecordType::LIBXC_CONTEXT, &[1, 2, 3, 4, 5, 6, 7, 8]);
    s.extend_from_slice(&libxc);
    encode_libxl_record(&mut s, LibxlRecordType::END, &[]);
    assert!(lenient(&s).is_ok());
    assert!(matches!(strict(&s), Err(Error::BadLibxlLength { offset: 16, index: 0, found: 8, .. })));
    let mut s = libxl_wrap(&libxc, &[]);
    s.truncate(s.len() - 8);
    encode_libxl_record(&mut s, LibxlRecordType::END, &[0]);
    assert!(lenient(&s).is_ok());
    assert!(matches!(strict(&s), Err(Error::BadLibxlLength { index: 1, found: 1, .. })));
}

// ---------------------------------------------------------------------------------------------
// xl layer
// ---------------------------------------------------------------------------------------------

fn xl_good() -> Vec<u8> {
    xl_wrap(Some(PV_CONFIG), &libxl_wrap(&small_pv_stream(), &[]))
}

#[test]
fn xl_magic_byteorder_flags() {
    let good = xl_good();
    assert_eq!(lenient(&good).unwrap().layer, Some(Layer::Xl));
    for i in [8usize, 26, 27, 28, 29, 30, 31] {
        let mut s = good.clone();
        s[i] ^= 0x20;
        assert_eq!(lenient(&s), Err(Error::BadXlMagic { offset: 0 }), "magic byte {i}");
    }
    let mut s = good.clone();
    s[0] = b'x';
    assert!(matches!(lenient(&s), Err(Error::UnknownLayer { offset: 0, .. })));
    let mut s = good.clone();
    s[32..36].copy_from_slice(&[1, 2, 3, 4]);
    assert_eq!(lenient(&s), Err(Error::BadXlByteOrder { offset: 32, found: 0x0403_0201 }));
    for flags in [4u32 | 2, 2 | 8, 0x8000_0002, u32::MAX] {
        let mut s = good.clone();
        s[36..40].copy_from_slice(&flags.to_le_bytes());
        assert_eq!(lenient(&s), Err(Error::BadXlFlags { offset: 36, found: flags }));
    }
    // Optional flags are not checked.
    let mut s = good.clone();
    s[40..44].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(strict(&s).is_ok());
}

#[test]
fn xl_without_stream_v2_is_legacy() {
    for flags in [0u32, 1] {
        let mut s = xl_good();
        s[36..40].copy_from_slice(&flags.to_le_bytes());
        assert_eq!(lenient(&s), Err(Error::LegacyImage { offset: 0 }));
    }
}

#[test]
fn xl_config_lengths() {
    let libxl = libxl_wrap(&small_pv_stream(), &[]);
    // optional data 8 bytes: config length 5 does not fit the 4 bytes after the length word.
    let mut s = encode_xl_header(None)[..48].to_vec();
    s[44..48].copy_from_slice(&8u32.to_le_bytes());
    s.extend_from_slice(&5u32.to_le_bytes());
    s.extend_from_slice(b"{}\0\0");
    s.extend_from_slice(&libxl);
    assert_eq!(lenient(&s), Err(Error::BadXlConfig { offset: 48, config_len: 5, optional_len: 8 }));
    // Config length u32::MAX.
    let mut t = s.clone();
    t[48..52].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(lenient(&t), Err(Error::BadXlConfig { offset: 48, config_len: u32::MAX, optional_len: 8 }));
    // Optional data shorter than the length word.
    let mut s = encode_xl_header(None)[..48].to_vec();
    s[44..48].copy_from_slice(&2u32.to_le_bytes());
    s.extend_from_slice(&[0, 0]);
    s.extend_from_slice(&libxl);
    assert!(matches!(lenient(&s), Err(Error::BadXlConfig { offset: 48, optional_len: 2, .. })));
    // Config shorter than the optional data: the tail is ignored, as xl does.
    let mut s = encode_xl_header(None)[..48].to_vec();
    s[44..48].copy_from_slice(&12u32.to_le_bytes());
    s.extend_from_slice(&3u32.to_le_bytes());
    s.extend_from_slice(b"{}\0tail\0");
    s.extend_from_slice(&libxl);
    let mut r = StreamReader::from_slice(&s);
    assert!(matches!(r.next_item(), Ok(Some(Item::Xl { config: b"{}\0", .. }))));
    assert!(lenient(&s).is_ok());
    // No optional data at all.
    let mut s = encode_xl_header(None)[..48].to_vec();
    s[44..48].copy_from_slice(&0u32.to_le_bytes());
    s.extend_from_slice(&libxl);
    assert!(lenient(&s).is_ok());
    // An absurd optional-data length is refused before it is read.
    let mut s = xl_good();
    s[44..48].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
    assert!(matches!(lenient(&s), Err(Error::BadXlConfig { offset: 44, optional_len: 0x7fff_ffff, .. })));
    // Optional data cut short by the end of the file.
    let s = &xl_good()[..60];
    assert!(matches!(lenient(s), Err(Error::Truncated { offset: 48, .. })));
}

// ---------------------------------------------------------------------------------------------
// Random corruption
// ---------------------------------------------------------------------------------------------

#[test]
fn random_byte_flips_never_panic_and_agree() {
    let streams = small_streams();
    let mut rng = Rng::new(0x5EED_F00D);
    let mut outcomes = [0usize; 2];
    for iter in 0..3000u32 {
        let (name, base) = &streams[iter as usize % streams.len()];
        let mut m = base.clone();
        let flips = 1 + rng.below(4);
        for _ in 0..flips {
            let at = match rng.below(3) {
                // Bias towards the headers, where most structure is.
                0 => rng.below(m.len().min(160) as u64) as usize,
                _ => rng.below(m.len() as u64) as usize,
            };
            m[at] ^= 1 << rng.below(8);
            if rng.below(8) == 0 {
                m[at] = [0x00, 0xff, 0x7f, 0x80, 0x08][rng.below(5) as usize];
            }
        }
        if rng.below(10) == 0 {
            let cut = rng.below(m.len() as u64) as usize;
            m.truncate(cut);
        }
        let l = lenient(&m);
        let s = strict(&m);
        outcomes[usize::from(l.is_ok())] += 1;
        if let Ok(sum) = &s {
            assert_eq!(l.as_ref().ok(), Some(sum), "{name} #{iter}: strict accepted what lenient refused");
        }
        match &l {
            Ok(sum) => assert!(sum.bytes <= m.len() as u64),
            Err(e) => assert!(e.offset() <= m.len() as u64, "{name} #{iter}: {e} beyond the input"),
        }
        let (a, ae) = items_from_slice(&m);
        let (b, be) = items_from_read(&m, 1 + rng.below(5000) as usize);
        assert_eq!(a, b, "{name} #{iter}");
        assert_eq!(ae, be, "{name} #{iter}");
    }
    // Both outcomes occur: the flips are neither all harmless nor all fatal.
    assert!(outcomes[0] > 100 && outcomes[1] > 100, "{outcomes:?}");
}

#[test]
fn chunked_reader_sees_the_same_items_for_valid_streams() {
    for (name, s) in small_streams() {
        let (a, ae) = items_from_slice(&s);
        ae.unwrap();
        for max in [1, 7, 8, 4093, 1 << 20] {
            let (b, be) = items_from_read(&s, max);
            be.unwrap();
            assert_eq!(a, b, "{name}, reads of at most {max}");
        }
        let mut r = StreamReader::from_read(Chunked { data: &s, max: 5 });
        let mut n = 0;
        while r.next_item().unwrap().is_some() {
            n += 1;
        }
        assert_eq!(n, a.len());
        assert_eq!(r.offset(), s.len() as u64);
    }
    // HVM adds the emulator records after the libxc stream.
    assert_eq!(emulator_records().len(), 2);
}
