//! Property tests: arbitrary valid record sequences survive encode -> parse -> re-encode
//! byte for byte, with every parsed field equal to what was written.

mod common;

use std::io::{self, Write};

use proptest::prelude::*;
use sr_format::body::{
    CpuidLeaf, HvmParamEntry, HvmParamsHeader, MsrEntry, P2mFramesHeader, PvInfo, RecordBody, TscInfo, VcpuHeader,
    encode_page_data,
};
use sr_format::libxl::{LibxlHeader, LibxlRecordType};
use sr_format::xl::encode_xl_header;
use sr_format::{
    DomainHeader, DomainType, ImageHeader, Item, PAGE_TYPE_SHIFT, PFN_MASK, PFN_MAX, PFN_RESERVED_MASK, PageType,
    PfnEntry, RecordType, RecordWriter, StreamReader, Strictness, record_bytes,
};
use zerocopy::IntoBytes;
use zerocopy::little_endian::{U32, U64};

// ---------------------------------------------------------------------------------------------
// Model
// ---------------------------------------------------------------------------------------------

/// A libxc record as plain values.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Rec {
    PageData { entries: Vec<PfnEntry>, pages: Vec<u8> },
    PvInfo { width: u8, levels: u8 },
    P2m { start: u32, end: u32, frames: Vec<u64> },
    Vcpu { kind: RecordType, id: u32, blob: Vec<u8> },
    SharedInfo { page: Vec<u8> },
    Tsc { mode: u32, khz: u32, nsec: u64, incarnation: u32 },
    HvmContext { blob: Vec<u8> },
    HvmParams { params: Vec<(u64, u64)> },
    Cpuid { leaves: Vec<[u32; 6]> },
    Msr { entries: Vec<(u32, u64)> },
    Empty(RecordType),
    DirtyPfns { pfns: Vec<u64> },
    Optional { rtype: u32, body: Vec<u8> },
}

/// How a stream is laid out around its libxc records.
#[derive(Debug, Clone)]
struct Shape {
    dtype: DomainType,
    page_shift: u16,
    version: u32,
    xen: (u32, u32),
    /// 0: bare libxc, 1: libxl, 2: xl + libxl.
    wrap: u8,
    config: Option<Vec<u8>>,
    /// Emulator records (type, body) written after the libxc stream and at each checkpoint.
    emulator: Vec<(LibxlRecordType, Vec<u8>)>,
}

impl Rec {
    fn rtype(&self) -> RecordType {
        match self {
            Rec::PageData { .. } => RecordType::PAGE_DATA,
            Rec::PvInfo { .. } => RecordType::X86_PV_INFO,
            Rec::P2m { .. } => RecordType::X86_PV_P2M_FRAMES,
            Rec::Vcpu { kind, .. } => *kind,
            Rec::SharedInfo { .. } => RecordType::SHARED_INFO,
            Rec::Tsc { .. } => RecordType::X86_TSC_INFO,
            Rec::HvmContext { .. } => RecordType::HVM_CONTEXT,
            Rec::HvmParams { .. } => RecordType::HVM_PARAMS,
            Rec::Cpuid { .. } => RecordType::X86_CPUID_POLICY,
            Rec::Msr { .. } => RecordType::X86_MSR_POLICY,
            Rec::Empty(t) => *t,
            Rec::DirtyPfns { .. } => RecordType::CHECKPOINT_DIRTY_PFN_LIST,
            Rec::Optional { rtype, .. } => RecordType(*rtype),
        }
    }

    /// Writes the record with the crate's builders.
    fn write<W: Write>(&self, w: &mut RecordWriter<W>, page_size: usize) -> io::Result<()> {
        let t = self.rtype();
        match self {
            Rec::PageData { entries, pages } => {
                let words: Vec<u8> = entries.iter().flat_map(|e| e.encode().to_le_bytes()).collect();
                let per_page: Vec<&[u8]> = pages.chunks(page_size).collect();
                w.write_page_data(entries.len(), per_page.len(), page_size, &words, &per_page)
            }
            Rec::PvInfo { width, levels } => w.write_record(t, PvInfo::new(*width, *levels).as_bytes()),
            Rec::P2m { start, end, frames } => {
                let h = P2mFramesHeader { start_pfn: U32::new(*start), end_pfn: U32::new(*end) };
                let f: Vec<U64> = frames.iter().map(|&x| U64::new(x)).collect();
                w.write_record_parts(t, &[h.as_bytes(), f.as_bytes()])
            }
            Rec::Vcpu { id, blob, .. } => {
                let h = VcpuHeader { vcpu_id: U32::new(*id), reserved: U32::ZERO };
                w.write_record_parts(t, &[h.as_bytes(), blob])
            }
            Rec::SharedInfo { page } => w.write_record(t, page),
            Rec::Tsc { mode, khz, nsec, incarnation } => {
                w.write_record(t, TscInfo::new(*mode, *khz, *nsec, *incarnation).as_bytes())
            }
            Rec::HvmContext { blob } => w.write_record(t, blob),
            Rec::HvmParams { params } => {
                let h = HvmParamsHeader { count: U32::new(params.len() as u32), reserved: U32::ZERO };
                let e: Vec<HvmParamEntry> =
                    params.iter().map(|&(i, v)| HvmParamEntry { index: U64::new(i), value: U64::new(v) }).collect();
                w.write_record_parts(t, &[h.as_bytes(), e.as_bytes()])
            }
            Rec::Cpuid { leaves } => {
                let l: Vec<CpuidLeaf> = leaves
                    .iter()
                    .map(|a| CpuidLeaf {
                        leaf: U32::new(a[0]),
                        subleaf: U32::new(a[1]),
                        eax: U32::new(a[2]),
                        ebx: U32::new(a[3]),
                        ecx: U32::new(a[4]),
                        edx: U32::new(a[5]),
                    })
                    .collect();
                w.write_record(t, l.as_bytes())
            }
            Rec::Msr { entries } => {
                let e: Vec<MsrEntry> = entries
                    .iter()
                    .map(|&(i, v)| MsrEntry { index: U32::new(i), flags: U32::ZERO, value: U64::new(v) })
                    .collect();
                w.write_record(t, e.as_bytes())
            }
            Rec::Empty(_) => w.write_record(t, &[]),
            Rec::DirtyPfns { pfns } => {
                let p: Vec<U64> = pfns.iter().map(|&x| U64::new(x)).collect();
                w.write_record(t, p.as_bytes())
            }
            Rec::Optional { body, .. } => w.write_record(t, body),
        }
    }

    /// The model of a parsed body.
    fn from_body(rtype: RecordType, body: &RecordBody<'_>) -> Rec {
        match *body {
            RecordBody::PageData(p) => Rec::PageData { entries: p.entries().collect(), pages: p.pages.to_vec() },
            RecordBody::PvInfo(p) => Rec::PvInfo { width: p.guest_width, levels: p.pt_levels },
            RecordBody::P2mFrames(p) => Rec::P2m {
                start: p.header.start_pfn.get(),
                end: p.header.end_pfn.get(),
                frames: p.frames.iter().map(|f| f.get()).collect(),
            },
            RecordBody::Vcpu(v) => Rec::Vcpu { kind: v.kind, id: v.vcpu_id(), blob: v.blob.to_vec() },
            RecordBody::SharedInfo(s) => Rec::SharedInfo { page: s.page.to_vec() },
            RecordBody::TscInfo(t) => {
                Rec::Tsc { mode: t.mode.get(), khz: t.khz.get(), nsec: t.nsec.get(), incarnation: t.incarnation.get() }
            }
            RecordBody::HvmContext(c) => Rec::HvmContext { blob: c.blob.to_vec() },
            RecordBody::HvmParams(p) => {
                Rec::HvmParams { params: p.entries.iter().map(|e| (e.index.get(), e.value.get())).collect() }
            }
            RecordBody::CpuidPolicy(c) => Rec::Cpuid {
                leaves: c
                    .leaves
                    .iter()
                    .map(|l| [l.leaf.get(), l.subleaf.get(), l.eax.get(), l.ebx.get(), l.ecx.get(), l.edx.get()])
                    .collect(),
            },
            RecordBody::MsrPolicy(m) => {
                assert!(m.entries.iter().all(|e| e.flags.get() == 0));
                Rec::Msr { entries: m.entries.iter().map(|e| (e.index.get(), e.value.get())).collect() }
            }
            RecordBody::Verify => Rec::Empty(RecordType::VERIFY),
            RecordBody::Checkpoint => Rec::Empty(RecordType::CHECKPOINT),
            RecordBody::StaticDataEnd => Rec::Empty(RecordType::STATIC_DATA_END),
            RecordBody::End => Rec::Empty(RecordType::END),
            RecordBody::DirtyPfnList(d) => Rec::DirtyPfns { pfns: d.pfns.iter().map(|p| p.get()).collect() },
            RecordBody::Unknown(b) => Rec::Optional { rtype: rtype.0, body: b.to_vec() },
            ref other => panic!("unexpected body {other:?}"),
        }
    }
}

/// Writes a whole stream: optional xl and libxl layers around the libxc records. With a
/// libxl layer, each CHECKPOINT is followed by the emulator records and CHECKPOINT_END.
fn write_stream(shape: &Shape, recs: &[Rec]) -> Vec<u8> {
    let page_size = 1usize << shape.page_shift;
    let mut w = RecordWriter::new(Vec::new());
    if shape.wrap >= 2 {
        w.write_raw(&encode_xl_header(shape.config.as_deref())).unwrap();
    }
    if shape.wrap >= 1 {
        w.write_libxl_header(&LibxlHeader::new(false)).unwrap();
        w.write_libxl_record(LibxlRecordType::LIBXC_CONTEXT, &[]).unwrap();
    }
    w.write_headers(
        &ImageHeader::new(shape.version),
        &DomainHeader::new(shape.dtype, shape.page_shift, shape.xen.0, shape.xen.1),
    )
    .unwrap();
    for r in recs {
        r.write(&mut w, page_size).unwrap();
        if shape.wrap >= 1 && r.rtype() == RecordType::CHECKPOINT {
            for (t, b) in &shape.emulator {
                w.write_libxl_record(*t, b).unwrap();
            }
            w.write_libxl_record(LibxlRecordType::CHECKPOINT_END, &[]).unwrap();
        }
    }
    w.write_record(RecordType::END, &[]).unwrap();
    if shape.wrap >= 1 {
        for (t, b) in &shape.emulator {
            w.write_libxl_record(*t, b).unwrap();
        }
        w.write_libxl_record(LibxlRecordType::END, &[]).unwrap();
    }
    w.into_inner()
}

struct Parsed {
    shape_seen: (u32, u32, u16, (u32, u32)),
    config: Option<Vec<u8>>,
    recs: Vec<Rec>,
    libxl: Vec<(LibxlRecordType, Vec<u8>)>,
    /// Every item re-framed with the generic encoders.
    reframed: Vec<u8>,
}

fn parse_stream(data: &[u8], strictness: Strictness) -> Parsed {
    let mut r = StreamReader::from_slice(data).strictness(strictness);
    let mut p = Parsed {
        shape_seen: (0, 0, 0, (0, 0)),
        config: None,
        recs: Vec::new(),
        libxl: Vec::new(),
        reframed: Vec::new(),
    };
    while let Some(item) = r.next_item().unwrap() {
        match item {
            Item::Xl { header, config, .. } => {
                p.config = Some(config.to_vec());
                p.reframed.extend_from_slice(&encode_xl_header(header.is_json().then_some(config)));
            }
            Item::Virsh { xml, .. } => p.reframed.extend_from_slice(&sr_format::virsh::encode_virsh_header(xml)),
            Item::LibxlHeader { header, .. } => p.reframed.extend_from_slice(header.as_bytes()),
            Item::LibxlRecord(rec) => {
                if !matches!(
                    rec.rtype,
                    LibxlRecordType::LIBXC_CONTEXT | LibxlRecordType::END | LibxlRecordType::CHECKPOINT_END
                ) {
                    p.libxl.push((rec.rtype, rec.body.to_vec()));
                }
                sr_format::libxl::encode_libxl_record(&mut p.reframed, rec.rtype, rec.body);
            }
            Item::ImageHeader { header, .. } => {
                p.shape_seen.0 = header.version.get();
                p.reframed.extend_from_slice(header.as_bytes());
            }
            Item::DomainHeader { header, .. } => {
                p.shape_seen.1 = header.dtype.get();
                p.shape_seen.2 = header.page_shift.get();
                p.shape_seen.3 = (header.xen_major.get(), header.xen_minor.get());
                p.reframed.extend_from_slice(header.as_bytes());
            }
            Item::Record(rec) => {
                p.reframed.extend_from_slice(&record_bytes(rec.rtype, rec.body));
                if rec.rtype == RecordType::END {
                    continue;
                }
                let body = RecordBody::parse(&rec, p.shape_seen.2, strictness).unwrap();
                p.recs.push(Rec::from_body(rec.rtype, &body));
            }
        }
    }
    assert!(r.is_done());
    assert_eq!(r.offset(), data.len() as u64);
    p
}

// ---------------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------------

fn page_bytes(seed: u64, size: usize) -> Vec<u8> {
    match seed % 4 {
        0 => vec![0; size],
        1 => vec![seed as u8; size],
        _ => common::page(seed, size),
    }
}

fn known_type() -> impl Strategy<Value = PageType> {
    prop::sample::select(vec![0u8, 1, 2, 3, 4, 9, 10, 11, 12, 13, 14, 15]).prop_map(PageType::from_nibble)
}

fn page_data(page_size: usize) -> impl Strategy<Value = Rec> {
    prop::collection::vec((0..=PFN_MAX, known_type(), any::<u64>()), 1..40).prop_map(move |v| {
        let entries: Vec<PfnEntry> = v.iter().map(|&(pfn, t, _)| PfnEntry::new(pfn, t)).collect();
        let mut pages = Vec::new();
        for &(_, t, seed) in &v {
            if t.has_data() {
                pages.extend_from_slice(&page_bytes(seed, page_size));
            }
        }
        Rec::PageData { entries, pages }
    })
}

fn blob(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..max)
}

fn record(page_size: usize) -> impl Strategy<Value = Rec> {
    prop_oneof![
        4 => page_data(page_size),
        1 => prop::bool::ANY.prop_map(|wide| if wide {
            Rec::PvInfo { width: 8, levels: 4 }
        } else {
            Rec::PvInfo { width: 4, levels: 3 }
        }),
        1 => (any::<u32>(), any::<u32>(), prop::collection::vec(any::<u64>(), 0..20)).prop_map(|(a, b, frames)| {
            Rec::P2m { start: a.min(b), end: a.max(b), frames }
        }),
        2 => (
            prop::sample::select(vec![
                RecordType::X86_PV_VCPU_BASIC,
                RecordType::X86_PV_VCPU_EXTENDED,
                RecordType::X86_PV_VCPU_XSAVE,
                RecordType::X86_PV_VCPU_MSRS,
            ]),
            any::<u32>(),
            blob(300),
        )
            .prop_map(|(kind, id, blob)| Rec::Vcpu { kind, id, blob }),
        1 => any::<u64>().prop_map(|s| Rec::SharedInfo { page: page_bytes(s, 4096) }),
        1 => (any::<u32>(), any::<u32>(), any::<u64>(), any::<u32>())
            .prop_map(|(mode, khz, nsec, incarnation)| Rec::Tsc { mode, khz, nsec, incarnation }),
        1 => prop::collection::vec(any::<u8>(), 1..400).prop_map(|blob| Rec::HvmContext { blob }),
        1 => prop::collection::vec(any::<(u64, u64)>(), 0..12).prop_map(|params| Rec::HvmParams { params }),
        // v2 streams are read leniently, where v3-only records are accepted (as C does).
        1 => prop::collection::vec(any::<[u32; 6]>(), 1..10).prop_map(|leaves| Rec::Cpuid { leaves }),
        1 => prop::collection::vec(any::<(u32, u64)>(), 1..10).prop_map(|entries| Rec::Msr { entries }),
        1 => prop::sample::select(vec![RecordType::VERIFY, RecordType::CHECKPOINT, RecordType::STATIC_DATA_END])
            .prop_map(Rec::Empty),
        1 => prop::collection::vec(any::<u64>(), 0..16).prop_map(|pfns| Rec::DirtyPfns { pfns }),
        1 => (0x8000_0000u32..=u32::MAX, blob(64)).prop_map(|(rtype, body)| {
            // 0x8000_0000.. are all reserved-optional: never a known type.
            Rec::Optional { rtype, body }
        }),
    ]
}

fn shape() -> impl Strategy<Value = Shape> {
    (
        prop::sample::select(DomainType::ALL.to_vec()),
        prop::bool::ANY,
        2u32..=3,
        (0u32..=4, any::<u32>()),
        0u8..=2,
        prop::option::of(prop::collection::vec(1u8..=255, 0..100)),
        prop::bool::ANY,
    )
        .prop_map(|(dtype, big_pages, version, xen, wrap, config, emu)| Shape {
            dtype,
            page_shift: if dtype == DomainType::ARM && big_pages { 14 } else { 12 },
            version,
            xen,
            wrap,
            config: config.map(|mut c| {
                c.push(0);
                c
            }),
            emulator: if emu { common::emulator_records() } else { Vec::new() },
        })
}

fn stream() -> impl Strategy<Value = (Shape, Vec<Rec>)> {
    shape().prop_flat_map(|s| {
        let recs = prop::collection::vec(record(1 << s.page_shift), 0..10);
        (Just(s), recs)
    })
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn streams_round_trip((shape, recs) in stream()) {
        let bytes = write_stream(&shape, &recs);
        let strictness = if shape.version >= 3 { Strictness::Strict } else { Strictness::Lenient };
        let parsed = parse_stream(&bytes, strictness);

        // Fields.
        prop_assert_eq!(parsed.shape_seen, (shape.version, shape.dtype.0, shape.page_shift, shape.xen));
        prop_assert_eq!(&parsed.recs, &recs);
        if shape.wrap >= 2 {
            prop_assert_eq!(parsed.config.as_deref(), Some(shape.config.as_deref().unwrap_or_default()));
        }
        let checkpoints = recs.iter().filter(|r| **r == Rec::Empty(RecordType::CHECKPOINT)).count();
        let want_libxl = if shape.wrap >= 1 { shape.emulator.len() * (checkpoints + 1) } else { 0 };
        prop_assert_eq!(parsed.libxl.len(), want_libxl);
        for (i, (t, b)) in parsed.libxl.iter().enumerate() {
            let (wt, wb) = &shape.emulator[i % shape.emulator.len()];
            prop_assert_eq!(t, wt);
            prop_assert_eq!(b, wb);
        }

        // Bytes: re-encoding the parsed model, and re-framing the raw bodies.
        let again = write_stream(&shape, &parsed.recs);
        prop_assert!(again == bytes, "re-encoded model differs");
        prop_assert!(parsed.reframed == bytes, "re-framed items differ");

        // The walk agrees.
        let summary = sr_format::walk_with(&bytes, strictness).unwrap();
        prop_assert_eq!(summary.bytes, bytes.len() as u64);
        prop_assert_eq!(summary.records as usize, recs.len() + 1);
        let (entries, data) = recs.iter().fold((0usize, 0usize), |(e, d), r| match r {
            Rec::PageData { entries, .. } => {
                (e + entries.len(), d + entries.iter().filter(|x| x.page_type.has_data()).count())
            }
            _ => (e, d),
        });
        prop_assert_eq!((summary.pfn_entries as usize, summary.data_pages as usize), (entries, data));
    }

    #[test]
    fn page_data_encoders_agree(rec in page_data(4096), max in 1usize..20_000) {
        let Rec::PageData { entries, pages } = &rec else { unreachable!() };
        let mut a = Vec::new();
        encode_page_data(&mut a, entries, pages, 4096);
        // Vectored writer into a sink that takes a random number of bytes per call.
        let mut w = RecordWriter::new(Trickle { out: Vec::new(), max, calls: 0 });
        rec.write(&mut w, 4096).unwrap();
        prop_assert_eq!(w.offset(), a.len() as u64);
        prop_assert!(w.get_ref().out == a);
        // One slice holding all pages gives the same bytes as one slice per page.
        let words: Vec<u8> = entries.iter().flat_map(|e| e.encode().to_le_bytes()).collect();
        let mut w = RecordWriter::new(Vec::new());
        w.write_page_data(entries.len(), pages.len() / 4096, 4096, &words, &[pages]).unwrap();
        prop_assert!(w.into_inner() == a);
    }

    #[test]
    fn pfn_word_decode_encode_identity(word in any::<u64>()) {
        let e = PfnEntry::decode(word);
        prop_assert_eq!(e.pfn, word & PFN_MASK);
        prop_assert_eq!(u64::from(e.page_type.nibble()), word >> PAGE_TYPE_SHIFT);
        prop_assert_eq!(u64::from(e.reserved), (word & PFN_RESERVED_MASK) >> 52);
        prop_assert_eq!(e.encode(), word);
    }

    #[test]
    fn pfn_entry_encode_decode_identity(pfn in 0..=PFN_MAX, t in known_type(), reserved in any::<u8>()) {
        let e = PfnEntry { pfn, page_type: t, reserved };
        let word = e.encode();
        prop_assert_eq!(PfnEntry::decode(word), e);
        prop_assert!(PfnEntry::decode(word).page_type.is_known());
        prop_assert_eq!(word >> 60, u64::from(t.nibble()));
        // The pfn is masked to 52 bits on encode.
        prop_assert_eq!(PfnEntry::new(pfn | (1 << 52), t).encode(), PfnEntry::new(pfn, t).encode());
    }
}

#[test]
fn pfn_words_every_nibble_and_edge_pfn() {
    for nibble in 0u8..16 {
        for pfn in [0, 1, 0x7_ffff, 0x8_0000, 0xFFFF_FFFF, PFN_MAX - 1, PFN_MAX] {
            for reserved in [0u8, 1, 0x80, 0xff] {
                let e = PfnEntry { pfn, page_type: PageType::from_nibble(nibble), reserved };
                let w = e.encode();
                assert_eq!(w, pfn | u64::from(reserved) << 52 | u64::from(nibble) << 60);
                assert_eq!(PfnEntry::decode(w), e);
            }
        }
    }
}

/// A writer that accepts between 1 and `max` bytes per call, only from the first buffer
/// (like the default `write_vectored`).
struct Trickle {
    out: Vec<u8>,
    max: usize,
    calls: u64,
}

impl Write for Trickle {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.calls += 1;
        let n = buf.len().min(1 + (self.calls as usize * 7919) % self.max);
        self.out.extend_from_slice(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
