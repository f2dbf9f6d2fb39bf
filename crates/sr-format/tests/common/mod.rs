//! Stream builders shared by the integration tests (each test binary uses a different
//! subset, hence the `dead_code` allowance).
#![allow(dead_code)]

use sr_format::body::{CpuidLeaf, HvmParamEntry, HvmParamsHeader, MsrEntry, PvInfo, TscInfo, encode_page_data};
use sr_format::libxl::{LibxlHeader, LibxlRecordType, emulator_context_body, encode_libxl_record, xenstore_body};
use sr_format::xl::encode_xl_header;
use sr_format::{
    DomainHeader, DomainType, ImageHeader, Item, PageType, PfnEntry, RecordType, StreamReader, record_bytes,
};
use zerocopy::IntoBytes;
use zerocopy::little_endian::{U32, U64};

#[path = "../../../../tests/common/rng.rs"]
mod rng;
#[allow(unused_imports)] // Not every test binary draws random numbers.
pub use rng::Rng;

/// A page of `size` pseudo-random bytes derived from `seed`.
pub fn page(seed: u64, size: usize) -> Vec<u8> {
    let mut v = vec![0u8; size];
    Rng::new(seed).fill(&mut v);
    v
}

/// Image header + domain header.
pub fn headers(dtype: DomainType, version: u32, page_shift: u16) -> Vec<u8> {
    let mut out = ImageHeader::new(version).as_bytes().to_vec();
    out.extend_from_slice(DomainHeader::new(dtype, page_shift, 4, 17).as_bytes());
    out
}

/// A complete PAGE_DATA record; page bodies are derived from the pfns.
pub fn page_data(entries: &[PfnEntry], page_size: usize) -> Vec<u8> {
    let mut pages = Vec::new();
    for e in entries.iter().filter(|e| e.page_type.has_data()) {
        pages.extend_from_slice(&page(e.pfn ^ 0xABCD, page_size));
    }
    let mut out = Vec::new();
    encode_page_data(&mut out, entries, &pages, page_size);
    out
}

pub fn tsc_record(khz: u32) -> Vec<u8> {
    record_bytes(RecordType::X86_TSC_INFO, TscInfo::new(0, khz, 0x1_2345_6789, 1).as_bytes())
}

pub fn cpuid_record() -> Vec<u8> {
    let leaves = [
        CpuidLeaf {
            leaf: U32::new(0),
            subleaf: U32::new(u32::MAX),
            eax: U32::new(0xd),
            ebx: U32::new(0x6874_7541),
            ecx: U32::new(0x444d_4163),
            edx: U32::new(0x6974_6e65),
        },
        CpuidLeaf { leaf: U32::new(1), subleaf: U32::new(u32::MAX), eax: U32::new(0x00a2_0f12), ..Default::default() },
    ];
    record_bytes(RecordType::X86_CPUID_POLICY, leaves.as_bytes())
}

pub fn msr_record() -> Vec<u8> {
    let entries = [
        MsrEntry { index: U32::new(0xce), flags: U32::ZERO, value: U64::new(0) },
        MsrEntry { index: U32::new(0x10a), flags: U32::ZERO, value: U64::new(0x0a00_0000) },
    ];
    record_bytes(RecordType::X86_MSR_POLICY, entries.as_bytes())
}

fn vcpu_body(id: u32, blob: &[u8]) -> Vec<u8> {
    let mut b = id.to_le_bytes().to_vec();
    b.extend_from_slice(&[0; 4]);
    b.extend_from_slice(blob);
    b
}

/// The records (without END) of a small x86 PV stream: 8 pfns, 1 vcpu.
pub fn pv_records(version: u32) -> Vec<Vec<u8>> {
    let mut recs = vec![record_bytes(RecordType::X86_PV_INFO, PvInfo::new(8, 4).as_bytes())];
    if version >= 3 {
        recs.push(cpuid_record());
        recs.push(msr_record());
        recs.push(record_bytes(RecordType::STATIC_DATA_END, &[]));
    }
    let mut p2m = 0u32.to_le_bytes().to_vec();
    p2m.extend_from_slice(&7u32.to_le_bytes());
    p2m.extend_from_slice(&5u64.to_le_bytes());
    recs.push(record_bytes(RecordType::X86_PV_P2M_FRAMES, &p2m));
    recs.push(page_data(
        &[
            PfnEntry::new(0, PageType::NOTAB),
            PfnEntry::new(1, PageType::L4TAB_PINNED),
            PfnEntry::new(2, PageType::L3TAB),
            PfnEntry::new(3, PageType::XTAB),
        ],
        4096,
    ));
    recs.push(page_data(
        &[
            PfnEntry::new(4, PageType::L2TAB),
            PfnEntry::new(5, PageType::NOTAB),
            PfnEntry::new(6, PageType::L1TAB_PINNED),
            PfnEntry::new(7, PageType::BROKEN),
        ],
        4096,
    ));
    recs.push(tsc_record(2_000_000));
    recs.push(record_bytes(RecordType::SHARED_INFO, &page(77, 4096)));
    recs.push(record_bytes(RecordType::X86_PV_VCPU_BASIC, &vcpu_body(0, &page(1, 64))));
    recs.push(record_bytes(RecordType::X86_PV_VCPU_EXTENDED, &vcpu_body(0, &[0x40; 13])));
    recs.push(record_bytes(RecordType::X86_PV_VCPU_XSAVE, &vcpu_body(0, &[7; 24])));
    let mut msrs = Vec::new();
    msrs.extend_from_slice(&0xC000_0080u32.to_le_bytes());
    msrs.extend_from_slice(&[0; 4]);
    msrs.extend_from_slice(&0xd01u64.to_le_bytes());
    recs.push(record_bytes(RecordType::X86_PV_VCPU_MSRS, &vcpu_body(0, &msrs)));
    recs
}

/// The records (without END) of a small x86 HVM stream.
pub fn hvm_records(version: u32, page_shift: u16) -> Vec<Vec<u8>> {
    let mut recs = Vec::new();
    if version >= 3 {
        recs.push(cpuid_record());
        recs.push(msr_record());
        recs.push(record_bytes(RecordType::STATIC_DATA_END, &[]));
    }
    recs.push(page_data(
        &[
            PfnEntry::new(0, PageType::NOTAB),
            PfnEntry::new(0xfeff0, PageType::XTAB),
            PfnEntry::new(0xfeffc, PageType::NOTAB),
            PfnEntry::new(0x100000, PageType::XALLOC),
        ],
        1 << page_shift,
    ));
    recs.push(tsc_record(3_000_000));
    // HVM save blob: HEADER entry (4-byte payload) then END entry.
    let mut ctx = vec![1, 0, 0, 0, 4, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef];
    ctx.extend_from_slice(&[0; 8]);
    recs.push(record_bytes(RecordType::HVM_CONTEXT, &ctx));
    let params = [(1u64, 0xfeffcu64), (17, 0xfefff), (4, 1)];
    let mut body = HvmParamsHeader { count: U32::new(params.len() as u32), reserved: U32::ZERO }.as_bytes().to_vec();
    for (i, v) in params {
        body.extend_from_slice(HvmParamEntry { index: U64::new(i), value: U64::new(v) }.as_bytes());
    }
    recs.push(record_bytes(RecordType::HVM_PARAMS, &body));
    recs
}

/// A complete libxc stream: headers, records, END.
pub fn libxc_stream(dtype: DomainType, version: u32, page_shift: u16, records: &[Vec<u8>]) -> Vec<u8> {
    let mut out = headers(dtype, version, page_shift);
    for r in records {
        out.extend_from_slice(r);
    }
    out.extend_from_slice(&record_bytes(RecordType::END, &[]));
    out
}

pub fn small_pv_stream() -> Vec<u8> {
    libxc_stream(DomainType::X86_PV, 3, 12, &pv_records(3))
}

pub fn small_hvm_stream() -> Vec<u8> {
    libxc_stream(DomainType::X86_HVM, 3, 12, &hvm_records(3, 12))
}

/// Emulator records libxl writes after an HVM libxc stream.
pub fn emulator_records() -> Vec<(LibxlRecordType, Vec<u8>)> {
    vec![
        (
            LibxlRecordType::EMULATOR_XENSTORE_DATA,
            xenstore_body(
                2,
                0,
                &[(b"physmap/f0000000/start_addr", b"f0000000"), (b"physmap/f0000000/size", b"800000")],
            ),
        ),
        (LibxlRecordType::EMULATOR_CONTEXT, emulator_context_body(2, 0, b"QEVM\0\0\0\x03qemu device state")),
    ]
}

/// libxl header, LIBXC_CONTEXT, the libxc stream, `after`, libxl END.
pub fn libxl_wrap(libxc: &[u8], after: &[(LibxlRecordType, Vec<u8>)]) -> Vec<u8> {
    let mut out = LibxlHeader::new(false).as_bytes().to_vec();
    encode_libxl_record(&mut out, LibxlRecordType::LIBXC_CONTEXT, &[]);
    out.extend_from_slice(libxc);
    for (t, b) in after {
        encode_libxl_record(&mut out, *t, b);
    }
    encode_libxl_record(&mut out, LibxlRecordType::END, &[]);
    out
}

/// xl header + optional data, then the libxl stream.
pub fn xl_wrap(config: Option<&[u8]>, libxl: &[u8]) -> Vec<u8> {
    let mut out = encode_xl_header(config);
    out.extend_from_slice(libxl);
    out
}

pub const PV_CONFIG: &[u8] =
    b"{\n    \"c_info\": {\n        \"type\": \"pv\",\n        \"name\": \"seed-pv\"\n    }\n}\n\0";
pub const HVM_CONFIG: &[u8] =
    b"{\n    \"c_info\": {\n        \"type\": \"hvm\",\n        \"name\": \"seed-hvm\"\n    }\n}\n\0";

/// A small valid stream of each layer: (name, bytes).
pub fn small_streams() -> Vec<(&'static str, Vec<u8>)> {
    let pv = small_pv_stream();
    let hvm = small_hvm_stream();
    vec![
        ("libxc-pv", pv.clone()),
        ("libxc-hvm", hvm.clone()),
        ("libxl-pv", libxl_wrap(&pv, &[])),
        ("libxl-hvm", libxl_wrap(&hvm, &emulator_records())),
        ("xl-pv", xl_wrap(Some(PV_CONFIG), &libxl_wrap(&pv, &[]))),
        ("xl-hvm", xl_wrap(Some(HVM_CONFIG), &libxl_wrap(&hvm, &emulator_records()))),
    ]
}

/// An owned, comparable summary of one stream item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owned {
    Xl { offset: u64, config: Vec<u8> },
    Virsh { offset: u64, xml: Vec<u8> },
    LibxlHeader { offset: u64 },
    LibxlRecord { offset: u64, index: u64, rtype: u32, body: Vec<u8>, padding_nonzero: bool },
    ImageHeader { offset: u64, version: u32 },
    DomainHeader { offset: u64, dtype: u32 },
    Record { offset: u64, index: u64, rtype: u32, body: Vec<u8>, padding_nonzero: bool },
}

pub fn own(item: &Item<'_>) -> Owned {
    match *item {
        Item::Xl { offset, config, .. } => Owned::Xl { offset, config: config.to_vec() },
        Item::Virsh { offset, xml, .. } => Owned::Virsh { offset, xml: xml.to_vec() },
        Item::LibxlHeader { offset, .. } => Owned::LibxlHeader { offset },
        Item::LibxlRecord(r) => Owned::LibxlRecord {
            offset: r.offset,
            index: r.index,
            rtype: r.rtype.0,
            body: r.body.to_vec(),
            padding_nonzero: r.padding_nonzero,
        },
        Item::ImageHeader { offset, header } => Owned::ImageHeader { offset, version: header.version.get() },
        Item::DomainHeader { offset, header } => Owned::DomainHeader { offset, dtype: header.dtype.get() },
        Item::Record(r) => Owned::Record {
            offset: r.offset,
            index: r.index,
            rtype: r.rtype.0,
            body: r.body.to_vec(),
            padding_nonzero: r.padding_nonzero,
        },
    }
}

/// Every item of a stream read from a slice, and how reading ended.
pub fn items_from_slice(data: &[u8]) -> (Vec<Owned>, Result<(), sr_format::Error>) {
    let mut r = StreamReader::from_slice(data);
    let mut out = Vec::new();
    loop {
        match r.next_item() {
            Ok(Some(item)) => out.push(own(&item)),
            Ok(None) => return (out, Ok(())),
            Err(e) => {
                // A failed reader is poisoned.
                assert!(matches!(r.next_item(), Ok(None)), "reader not poisoned after {e}");
                return (out, Err(e));
            }
        }
    }
}

/// A `Read` that returns at most `max` bytes per call.
#[derive(Debug)]
pub struct Chunked<'a> {
    pub data: &'a [u8],
    pub max: usize,
}

impl std::io::Read for Chunked<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.data.len()).min(self.max);
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// Every item of a stream read through `Read` in chunks of at most `max` bytes.
pub fn items_from_read(data: &[u8], max: usize) -> (Vec<Owned>, Result<(), sr_format::Error>) {
    let mut r = StreamReader::from_read(Chunked { data, max });
    let mut out = Vec::new();
    loop {
        match r.next_item() {
            Ok(Some(item)) => out.push(own(&item)),
            Ok(None) => return (out, Ok(())),
            Err(e) => return (out, Err(e)),
        }
    }
}
