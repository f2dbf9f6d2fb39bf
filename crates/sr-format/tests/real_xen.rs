//! The real Xen 4.17 `xl save` file (`tests/data/xen-4.17/tiny32-1vcpu.save.xz`): every
//! fact its README states, checked through the reader, the body views and the encoders.
//!
//! A missing file fails the tests: it is never a silent skip.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use sr_format::body::{RecordBody, VCPU_CONTEXT_64, VcpuFrames};
use sr_format::libxl::{LibxlHeader, LibxlRecordType, encode_libxl_record};
use sr_format::xl::encode_xl_header;
use sr_format::{
    DomainType, Item, Layer, PageType, RecordType, StreamReader, Strictness, WalkSummary, record_bytes, walk, walk_with,
};
use zerocopy::IntoBytes;

const SIZE: usize = 33_632_267;
const SHA256: &str = "d0ce366f8f353201e8b563ebad4e96468f51e41980fa98ac069df9ffa3059ebc";

#[path = "../../../tests/common/testdata.rs"]
mod testdata;

fn data() -> &'static [u8] {
    static DATA: OnceLock<Vec<u8>> = OnceLock::new();
    DATA.get_or_init(testdata::real_save_file)
}

// ---------------------------------------------------------------------------------------------
// SHA-256 (FIPS 180-4), small and dependency-free; checked against the standard vectors.
// ---------------------------------------------------------------------------------------------

fn sha256(data: &[u8]) -> [u8; 32] {
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
        0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
        0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
        0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
        0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
        0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
        0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];
    let mut h: [u32; 8] =
        [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];
    let mut tail = data[data.len() / 64 * 64..].to_vec();
    tail.push(0x80);
    while tail.len() % 64 != 56 {
        tail.push(0);
    }
    tail.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
    let blocks = data[..data.len() / 64 * 64].chunks_exact(64).chain(tail.chunks_exact(64));
    let mut w = [0u32; 64];
    for block in blocks {
        for (i, word) in block.chunks_exact(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16].wrapping_add(s0).wrapping_add(w[i - 7]).wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = h;
        for i in 0..64 {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let t1 = hh.wrapping_add(s1).wrapping_add(ch).wrapping_add(K[i]).wrapping_add(w[i]);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            hh = g;
            g = f;
            f = e;
            e = d.wrapping_add(t1);
            d = c;
            c = b;
            b = a;
            a = t1.wrapping_add(t2);
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 32];
    for (o, x) in out.chunks_exact_mut(4).zip(h) {
        o.copy_from_slice(&x.to_be_bytes());
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn sha256_known_answers() {
    assert_eq!(hex(&sha256(b"")), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    assert_eq!(hex(&sha256(b"abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_eq!(
        hex(&sha256(b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
    );
}

#[test]
fn file_is_the_documented_one() {
    let d = data();
    assert_eq!(d.len(), SIZE);
    assert_eq!(hex(&sha256(d)), SHA256);
}

// ---------------------------------------------------------------------------------------------
// Structure
// ---------------------------------------------------------------------------------------------

const LIBXC_SEQUENCE: [RecordType; 19] = [
    RecordType::X86_PV_INFO,
    RecordType::X86_CPUID_POLICY,
    RecordType::X86_MSR_POLICY,
    RecordType::STATIC_DATA_END,
    RecordType::X86_PV_P2M_FRAMES,
    RecordType::PAGE_DATA,
    RecordType::PAGE_DATA,
    RecordType::PAGE_DATA,
    RecordType::PAGE_DATA,
    RecordType::PAGE_DATA,
    RecordType::PAGE_DATA,
    RecordType::PAGE_DATA,
    RecordType::PAGE_DATA,
    RecordType::X86_TSC_INFO,
    RecordType::SHARED_INFO,
    RecordType::X86_PV_VCPU_BASIC,
    RecordType::X86_PV_VCPU_EXTENDED,
    RecordType::X86_PV_VCPU_XSAVE,
    RecordType::END,
];

#[derive(Debug, Default)]
struct Facts {
    layers: Vec<&'static str>,
    libxl: Vec<LibxlRecordType>,
    libxc: Vec<RecordType>,
    config: Vec<u8>,
    libxc_start: u64,
    libxc_end: u64,
    xl_optional_len: u32,
    version: u32,
    dtype: u32,
    page_shift: u16,
    xen: (u32, u32),
    pv_info: (u8, u8),
    p2m: (u32, u32, usize, bool),
    type_counts: BTreeMap<PageType, usize>,
    pfn_seen: BTreeMap<u64, usize>,
    /// Tag number -> whether one page with that tag is exactly the tag repeated.
    tagged: BTreeMap<u32, bool>,
    /// The type of every pfn sent.
    pfn_types: BTreeMap<u64, PageType>,
    /// X86_PV_VCPU_BASIC blobs by vcpu id.
    basic: BTreeMap<u32, Vec<u8>>,
}

fn facts() -> Facts {
    let d = data();
    let mut f = Facts::default();
    let mut r = StreamReader::from_slice(d);
    while let Some(item) = r.next_item().unwrap() {
        match item {
            Item::Virsh { .. } => panic!("the real file is an xl file"),
            Item::Xl { offset, header, config } => {
                assert_eq!(offset, 0);
                assert!(header.is_json() && header.is_stream_v2());
                f.xl_optional_len = header.optional_data_len.get();
                f.config = config.to_vec();
                f.layers.push("xl");
            }
            Item::LibxlHeader { header, .. } => {
                assert_eq!(header, LibxlHeader::new(false));
                f.layers.push("libxl");
            }
            Item::LibxlRecord(rec) => {
                assert!(rec.body.is_empty(), "PV stream: only empty libxl records");
                f.libxl.push(rec.rtype);
            }
            Item::ImageHeader { offset, header } => {
                f.libxc_start = offset;
                f.version = header.version.get();
                f.layers.push("libxc");
            }
            Item::DomainHeader { header, .. } => {
                f.dtype = header.dtype.get();
                f.page_shift = header.page_shift.get();
                f.xen = (header.xen_major.get(), header.xen_minor.get());
            }
            Item::Record(rec) => {
                f.libxc.push(rec.rtype);
                if rec.rtype == RecordType::END {
                    f.libxc_end = rec.offset + rec.wire_len();
                }
                match RecordBody::parse(&rec, f.page_shift, Strictness::Strict).unwrap() {
                    RecordBody::PvInfo(p) => f.pv_info = (p.guest_width, p.pt_levels),
                    RecordBody::P2mFrames(p) => {
                        f.p2m = (
                            p.header.start_pfn.get(),
                            p.header.end_pfn.get(),
                            p.frames.len(),
                            p.check_frame_count(&rec, f.pv_info.0).is_ok(),
                        );
                    }
                    RecordBody::Vcpu(v) if rec.rtype == RecordType::X86_PV_VCPU_BASIC => {
                        f.basic.insert(v.vcpu_id(), v.blob.to_vec());
                    }
                    RecordBody::PageData(p) => {
                        for e in p.entries() {
                            *f.type_counts.entry(e.page_type).or_default() += 1;
                            *f.pfn_seen.entry(e.pfn).or_default() += 1;
                            f.pfn_types.insert(e.pfn, e.page_type);
                        }
                        for (_, page) in p.data() {
                            if let Some(n) = realxen_tag(page) {
                                let exact = page.iter().enumerate().all(|(i, &b)| b == page[i % 20]);
                                *f.tagged.entry(n).or_default() |= exact;
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    assert!(r.is_done());
    assert_eq!(r.offset(), d.len() as u64, "the libxl END is the last thing in the file");
    f
}

/// `REALXEN-PAGE-%06d-` at the start of a page: the number.
fn realxen_tag(page: &[u8]) -> Option<u32> {
    let tag = page.get(..20)?;
    if &tag[..13] != b"REALXEN-PAGE-" || tag[19] != b'-' || !tag[13..19].iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(&tag[13..19]).ok()?.parse().ok()
}

fn facts_once() -> &'static Facts {
    static FACTS: OnceLock<Facts> = OnceLock::new();
    FACTS.get_or_init(facts)
}

#[test]
fn layers_and_record_sequence() {
    let f = facts_once();
    assert_eq!(f.layers, ["xl", "libxl", "libxc"]);
    assert_eq!(f.libxl, [LibxlRecordType::LIBXC_CONTEXT, LibxlRecordType::END]);
    assert_eq!(f.libxc, LIBXC_SEQUENCE);
    // xl header 48 + optional data, libxl header 16, LIBXC_CONTEXT 8.
    assert_eq!(f.libxc_start, 48 + u64::from(f.xl_optional_len) + 16 + 8);
    assert_eq!(f.libxc_end + 8, SIZE as u64, "libxl END follows the libxc END directly");
}

#[test]
fn headers_and_pv_records() {
    let f = facts_once();
    assert_eq!(f.version, 3);
    assert_eq!(f.dtype, 1);
    assert_eq!(DomainType(f.dtype), DomainType::X86_PV);
    assert_eq!(f.page_shift, 12);
    assert_eq!(f.xen, (4, 17));
    assert_eq!(f.pv_info, (8, 4));
    assert_eq!(f.p2m, (0, 8191, 16, true));
}

#[test]
fn page_types_and_pfn_coverage() {
    let f = facts_once();
    let want: BTreeMap<PageType, usize> = [
        (PageType::NOTAB, 8073),
        (PageType::L1TAB, 15),
        (PageType::L1TAB_PINNED, 15),
        (PageType::L2TAB, 10),
        (PageType::L3TAB, 72),
        (PageType::L4TAB_PINNED, 7),
    ]
    .into_iter()
    .collect();
    assert_eq!(f.type_counts, want);
    assert_eq!(f.type_counts.values().sum::<usize>(), 8192);
    assert_eq!(f.pfn_seen.len(), 8192);
    assert_eq!(f.pfn_seen.keys().copied().collect::<Vec<_>>(), (0..8192).collect::<Vec<u64>>());
    assert!(f.pfn_seen.values().all(|&n| n == 1), "every pfn exactly once");
}

#[test]
fn vcpu0_context_names_plausible_frames() {
    let f = facts_once();
    assert_eq!(f.basic.keys().copied().collect::<Vec<_>>(), [0]);
    let blob = &f.basic[&0];
    assert_eq!(blob.len(), VCPU_CONTEXT_64);
    let v = VcpuFrames::read(blob, 8).unwrap();
    assert_eq!(v.start_info, 0x1a16);
    assert_eq!((v.gdt_ents, v.gdt_frame_count(), v.used_gdt_frames()), (16, 1, &[0xe0b][..]));
    assert_eq!(v.cr3_pfn, 0x3ed);
    assert_eq!(v.cr1_pfn, Some(0x1c9));
    assert_eq!(VcpuFrames::read(blob, 4), None, "a 64-bit context is not a 32-bit one");
    let ty = |pfn: u64| f.pfn_types[&pfn];
    assert_eq!(ty(v.start_info), PageType::NOTAB);
    assert_eq!(ty(0xe0b), PageType::NOTAB);
    assert_eq!(ty(v.cr3_pfn), PageType::L4TAB_PINNED);
    assert_eq!(ty(0x1c9), PageType::L4TAB_PINNED);
    // Writing the frames back reproduces the blob.
    let mut copy = blob.clone();
    v.write(&mut copy, 8);
    assert!(copy == *blob, "VcpuFrames::write changed the real context");
}

#[test]
fn all_1024_guest_pages_are_present() {
    let f = facts_once();
    let numbers: BTreeSet<u32> = f.tagged.keys().copied().collect();
    assert_eq!(numbers, (0..1024).collect::<BTreeSet<u32>>());
    let missing: Vec<u32> = f.tagged.iter().filter(|(_, exact)| !**exact).map(|(n, _)| *n).collect();
    assert!(missing.is_empty(), "no page is the full repeated tag for {missing:?}");
}

#[test]
fn config_is_the_json_of_the_domain() {
    let f = facts_once();
    let cfg = &f.config;
    assert_eq!(f.xl_optional_len as usize, 4 + cfg.len());
    let (nul, text) = cfg.split_last().expect("non-empty config");
    assert_eq!(*nul, 0, "config carries its NUL");
    let text = std::str::from_utf8(text).expect("UTF-8 config");
    assert!(!text.contains('\0'));
    assert!(text.trim_start().starts_with('{') && text.trim_end().ends_with('}'));
    assert!(text.contains("\"name\": \"realxen-tiny32-1vcpu\""), "{text}");
    assert!(text.contains("\"type\": \"pv\""));
    // Balanced braces and brackets outside strings: a structural JSON sanity check.
    let (mut depth, mut in_str, mut escaped) = (0i32, false, false);
    for c in text.chars() {
        if in_str {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_str = true,
            '{' | '[' => depth += 1,
            '}' | ']' => depth -= 1,
            _ => {}
        }
        assert!(depth >= 0);
    }
    assert_eq!((depth, in_str), (0, false));
}

#[test]
fn walk_lenient_and_strict() {
    let want = WalkSummary {
        layer: Some(Layer::Xl),
        records: 19,
        libxl_records: 2,
        pfn_entries: 8192,
        data_pages: 8192,
        bytes: SIZE as u64,
    };
    assert_eq!(walk(data()).unwrap(), want);
    assert_eq!(walk_with(data(), Strictness::Strict).unwrap(), want);
}

#[test]
fn read_source_matches_slice_source() {
    let d = data();
    let mut a = StreamReader::from_slice(d);
    let mut b = StreamReader::from_read(common::Chunked { data: d, max: 4093 });
    let mut n = 0;
    loop {
        let x = a.next_item().unwrap();
        let y = b.next_item().unwrap();
        // Compare without printing multi-MiB bodies on failure.
        assert!(x == y, "item {n} differs: {:?} vs {:?}", x.map(|i| common::own(&i)), y.map(|i| common::own(&i)));
        if x.is_none() {
            break;
        }
        n += 1;
        assert_eq!(a.offset(), b.offset());
    }
    // xl, libxl header, 2 libxl records, ihdr, dhdr, 19 records.
    assert_eq!(n, 25);
    assert_eq!(b.offset(), SIZE as u64);
}

#[test]
fn reencoding_reproduces_the_file() {
    let d = data();
    let mut r = StreamReader::from_slice(d);
    let mut out = Vec::with_capacity(d.len());
    let mut libxc = (0usize, 0usize);
    while let Some(item) = r.next_item().unwrap() {
        match item {
            Item::Xl { config, .. } => out.extend_from_slice(&encode_xl_header(Some(config))),
            Item::Virsh { .. } => panic!("the real file is an xl file"),
            Item::LibxlHeader { header, .. } => out.extend_from_slice(header.as_bytes()),
            Item::LibxlRecord(rec) => encode_libxl_record(&mut out, rec.rtype, rec.body),
            Item::ImageHeader { header, .. } => {
                libxc.0 = out.len();
                out.extend_from_slice(header.as_bytes());
            }
            Item::DomainHeader { header, .. } => out.extend_from_slice(header.as_bytes()),
            Item::Record(rec) => {
                out.extend_from_slice(&record_bytes(rec.rtype, rec.body));
                if rec.rtype == RecordType::END {
                    libxc.1 = out.len();
                }
            }
        }
    }
    let (s, e) = libxc;
    assert_eq!(s, 915);
    assert!(out[s..e] == d[s..e], "libxc part re-encodes differently");
    assert_eq!(out.len(), d.len());
    assert!(out == d, "whole file re-encodes differently");
}
