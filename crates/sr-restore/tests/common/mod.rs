//! A hand-rolled stream builder for the sr-restore integration tests.
//!
//! Streams are described as a list of [`Part`]s (libxc records, libxl records, raw bytes)
//! and encoded byte by byte here, independently of `sr-format`'s writer and of `sr-save`,
//! so that a bug in either cannot hide the same bug in the restorer. Each test binary uses a
//! different subset, hence the `dead_code` allowance.
#![allow(dead_code)]

use std::collections::BTreeMap;

use sr_memory::{GuestMemory, RamMemory};
use sr_restore::{RestoreError, RestoreOptions, Restored, Restorer, StreamKind};

// ------------------------------------------------------------------------------------------
// Wire constants, spelled out (not taken from sr-format).

pub const END: u32 = 0x00;
pub const PAGE_DATA: u32 = 0x01;
pub const PV_INFO: u32 = 0x02;
pub const P2M_FRAMES: u32 = 0x03;
pub const VCPU_BASIC: u32 = 0x04;
pub const VCPU_EXTENDED: u32 = 0x05;
pub const VCPU_XSAVE: u32 = 0x06;
pub const SHARED_INFO: u32 = 0x07;
pub const TSC_INFO: u32 = 0x08;
pub const HVM_CONTEXT: u32 = 0x09;
pub const HVM_PARAMS: u32 = 0x0A;
pub const TOOLSTACK: u32 = 0x0B;
pub const VCPU_MSRS: u32 = 0x0C;
pub const VERIFY: u32 = 0x0D;
pub const CHECKPOINT: u32 = 0x0E;
pub const DIRTY_PFN_LIST: u32 = 0x0F;
pub const SDE: u32 = 0x10;
pub const CPUID: u32 = 0x11;
pub const MSR: u32 = 0x12;

pub const PV: u32 = 1;
pub const HVM: u32 = 2;
pub const PVH: u32 = 3;
pub const ARM: u32 = 4;

pub const L_END: u32 = 0;
pub const L_LIBXC: u32 = 1;
pub const L_XENSTORE: u32 = 2;
pub const L_EMULATOR: u32 = 3;
pub const L_CHECKPOINT_END: u32 = 4;

pub const NOTAB: u8 = 0x0;
pub const L1TAB: u8 = 0x1;
pub const L3TAB: u8 = 0x3;
pub const L4TAB: u8 = 0x4;
pub const L1TAB_PINNED: u8 = 0x9;
pub const L3TAB_PINNED: u8 = 0xB;
pub const L4TAB_PINNED: u8 = 0xC;
pub const BROKEN: u8 = 0xD;
pub const XALLOC: u8 = 0xE;
pub const XTAB: u8 = 0xF;

/// The xl magic: 27 text characters, LF, space, NUL, space, CR.
pub const XL_MAGIC: &[u8; 32] = b"Xen saved domain, xl format\n \0 \r";

/// The pfn limit of the test destinations (x86: 4096 pfns; ARM a bit less for 64 KiB pages).
pub const X86_LIMIT: u64 = 4096;
pub const ARM_LIMIT: u64 = 512;

// ------------------------------------------------------------------------------------------
// Bodies.

/// Deterministic, never all-zero page contents for `pfn` in "generation" `generation`. Every
/// 8-byte word has bit 0 clear, so as an x86 PV page table it has no present entry (tests
/// that want present entries build those bodies themselves).
pub fn page(pfn: u64, generation: u8, size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(size);
    let mut x = pfn.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (u64::from(generation) << 56) ^ 0x5A5A;
    while out.len() < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&((x & !1) | 2).to_le_bytes());
    }
    out.truncate(size);
    if size >= 80 {
        // Every page is a plausible PV start_info page: xenstore frame pfn 0 and console frame
        // pfn 3 (NOTAB pages of the minimal PV stream), at the 64-bit offsets (store_mfn 56,
        // console.domU.mfn 72) and the 32-bit ones (44, 52).
        for (at, word, v) in [(56, 8, 0u64), (72, 8, 3), (44, 4, 0), (52, 4, 3)] {
            out[at..at + word].copy_from_slice(&v.to_le_bytes()[..word]);
        }
    }
    out
}

/// Whether a page type nibble carries a page body (0-4, 9-C).
pub fn has_data(nibble: u8) -> bool {
    !(5..=8).contains(&nibble) && (nibble & 7) <= 4
}

/// Whether restore allocates memory for a nibble (data types and XALLOC).
pub fn populates(nibble: u8) -> bool {
    has_data(nibble) || nibble == XALLOC
}

/// A PAGE_DATA entry: pfn, type nibble, page generation (what its body is derived from).
#[derive(Clone, Copy, Debug)]
pub struct Entry {
    pub pfn: u64,
    pub nibble: u8,
    pub generation: u8,
}

pub fn e(pfn: u64, nibble: u8) -> Entry {
    Entry { pfn, nibble, generation: 0 }
}

pub fn eg(pfn: u64, nibble: u8, generation: u8) -> Entry {
    Entry { pfn, nibble, generation }
}

/// NOTAB entries for `pfns`, generation `g`.
pub fn notab(pfns: impl IntoIterator<Item = u64>, generation: u8) -> Vec<Entry> {
    pfns.into_iter().map(|pfn| eg(pfn, NOTAB, generation)).collect()
}

/// A PAGE_DATA body.
pub fn page_data(entries: &[Entry], page_size: usize) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    for en in entries {
        out.extend_from_slice(&(en.pfn | (u64::from(en.nibble) << 60)).to_le_bytes());
    }
    for en in entries.iter().filter(|en| has_data(en.nibble)) {
        out.extend_from_slice(&page(en.pfn, en.generation, page_size));
    }
    out
}

/// An X86_PV_INFO body.
pub fn pv_info(width: u8, levels: u8) -> Vec<u8> {
    vec![width, levels, 0, 0, 0, 0, 0, 0]
}

/// An X86_PV_P2M_FRAMES body.
pub fn p2m_frames(start: u32, end: u32, frames: &[u64]) -> Vec<u8> {
    let mut out = start.to_le_bytes().to_vec();
    out.extend_from_slice(&end.to_le_bytes());
    for f in frames {
        out.extend_from_slice(&f.to_le_bytes());
    }
    out
}

/// A PV vcpu record body: vcpu id, reserved, blob of `len` bytes derived from the id.
pub fn vcpu(id: u32, len: usize) -> Vec<u8> {
    let mut out = id.to_le_bytes().to_vec();
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend((0..len).map(|i| (i as u8) ^ (id as u8) ^ 0x77));
    out
}

/// Makes a `vcpu_guest_context` of `width` one Xen's `arch_set_info_guest` loads: canonical
/// addresses (the 64-bit fields it checks, cut to the lower half), kernel mode, no LDT, no
/// vm_assist. Offsets spelled out from Xen's layout.
pub fn make_loadable(blob: &mut [u8], width: u8) {
    let mut put = |at: usize, f: &dyn Fn(u64) -> u64| {
        if width == 8 {
            let v = u64::from_le_bytes(blob[at..at + 8].try_into().unwrap());
            blob[at..at + 8].copy_from_slice(&f(v).to_le_bytes());
        } else {
            let v = u64::from(u32::from_le_bytes(blob[at..at + 4].try_into().unwrap()));
            blob[at..at + 4].copy_from_slice(&(f(v) as u32).to_le_bytes());
        }
    };
    let low_half = |v: u64| v & 0x0000_7fff_ffff_f000;
    if width == 8 {
        put(512, &|v| v | 1 << 2); // flags: VGCF_in_kernel
        for at in [648, 672, 4976, 5144, 5152, 5160, 5112, 5120, 5128] {
            put(at, &low_half);
        }
        for i in 0..256 {
            put(720 + 16 * i + 8, &low_half);
        }
        for at in [4816, 4824, 5136] {
            put(at, &|_| 0); // ldt_base, ldt_ents, vm_assist
        }
    } else {
        for at in [2632, 2636, 2796] {
            put(at, &|_| 0);
        }
    }
}

/// A PV vcpu record body of type `t` (EXTENDED, XSAVE or MSRS) for vcpu `id` whose blob of
/// `len` bytes Xen loads where that length allows it: EXTENDED with its `size` field and
/// canonical callbacks, XSAVE with xcr0 = xcr0_accum = x87|SSE (16 bytes: nothing saved),
/// MSRS as TSC_AUX entries.
pub fn vcpu_rec(t: u32, id: u32, len: usize) -> Vec<u8> {
    let mut out = vcpu(id, len);
    let blob = &mut out[8..];
    fn put(blob: &mut [u8], at: usize, v: u64) {
        if at + 8 <= blob.len() {
            blob[at..at + 8].copy_from_slice(&v.to_le_bytes());
        }
    }
    match t {
        VCPU_EXTENDED => {
            put(blob, 0, u64::from(id) | (len as u64) << 32);
            put(blob, 8, 0x1234_5000);
            put(blob, 16, 0x1234_6000);
            put(blob, 32, 2); // MCG_CAP: 2 banks
        }
        VCPU_XSAVE => {
            blob.fill(0);
            if len > 16 {
                put(blob, 0, 3);
                put(blob, 8, 3);
                put(blob, 16 + 512, 3); // xstate_bv
            }
        }
        VCPU_MSRS => {
            for (i, e) in blob.chunks_exact_mut(16).enumerate() {
                e[..4].copy_from_slice(&0xc000_0103u32.to_le_bytes());
                e[4..8].fill(0);
                e[8..].copy_from_slice(&(i as u64 + u64::from(id)).to_le_bytes());
            }
        }
        _ => {}
    }
    out
}

/// The frame fields of a PV `vcpu_guest_context`, in stream form (pfns).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frames {
    /// start_info pfn (rdx / edx).
    pub start_info: u64,
    pub gdt_ents: u64,
    pub gdt: [u64; 16],
    /// Top-level page table pfn (encoded into CR3).
    pub cr3: u64,
    /// User page table pfn (CR1 = pfn << 12 | 1), 64-bit only.
    pub cr1: Option<u64>,
}

/// The frames of the minimal PV stream's vcpus: start_info at pfn 2, one GDT frame at pfn 3
/// (both NOTAB pages of its PAGE_DATA), CR3 the pinned L4 table at pfn 21, no CR1.
pub const PV_VCPU_FRAMES: Frames =
    Frames { start_info: 2, gdt_ents: 16, gdt: [3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], cr3: 21, cr1: None };

/// An X86_PV_VCPU_BASIC body for vcpu `id` of a guest `width` (4 or 8) bytes wide: the
/// pattern of [`vcpu`], made loadable ([`make_loadable`]), with the frame fields of `f`
/// written in. The offsets are spelled out
/// here (Xen's `vcpu_guest_context` and its compat layout), not taken from sr-format.
pub fn basic(id: u32, width: u8, f: &Frames) -> Vec<u8> {
    let mut out = vcpu(id, if width == 8 { 5168 } else { 2800 });
    make_loadable(&mut out[8..], width);
    let blob = &mut out[8..];
    if width == 8 {
        let mut put = |at: usize, v: u64| blob[at..at + 8].copy_from_slice(&v.to_le_bytes());
        put(616, f.start_info);
        for (i, &g) in f.gdt.iter().enumerate() {
            put(4832 + 8 * i, g);
        }
        put(4960, f.gdt_ents);
        put(4984 + 8, f.cr1.map_or(0, |p| p << 12 | 1));
        put(4984 + 24, f.cr3 << 12);
    } else {
        let mut put = |at: usize, v: u32| blob[at..at + 4].copy_from_slice(&v.to_le_bytes());
        put(524, f.start_info as u32);
        for (i, &g) in f.gdt.iter().enumerate() {
            put(2640 + 4 * i, g as u32);
        }
        put(2704, f.gdt_ents as u32);
        put(2716 + 4, 0);
        // Extended CR3: the frame number rotated left by 12 within 32 bits.
        let pfn = f.cr3 as u32;
        put(2716 + 12, pfn.rotate_left(12));
    }
    out
}

/// A plausible 64-bit BASIC body for vcpu `id` of the minimal PV stream.
pub fn basic64(id: u32) -> Vec<u8> {
    basic(id, 8, &PV_VCPU_FRAMES)
}

/// An X86_TSC_INFO body.
pub fn tsc(mode: u32, khz: u32, nsec: u64, incarnation: u32) -> Vec<u8> {
    let mut out = mode.to_le_bytes().to_vec();
    out.extend_from_slice(&khz.to_le_bytes());
    out.extend_from_slice(&nsec.to_le_bytes());
    out.extend_from_slice(&incarnation.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out
}

/// An HVM_PARAMS body.
pub fn hvm_params(params: &[(u64, u64)]) -> Vec<u8> {
    let mut out = (params.len() as u32).to_le_bytes().to_vec();
    out.extend_from_slice(&0u32.to_le_bytes());
    for (i, v) in params {
        out.extend_from_slice(&i.to_le_bytes());
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// An X86_CPUID_POLICY body.
pub fn cpuid(leaves: &[[u32; 6]]) -> Vec<u8> {
    leaves.iter().flatten().flat_map(|v| v.to_le_bytes()).collect()
}

/// An X86_MSR_POLICY body.
pub fn msrs(entries: &[(u32, u32, u64)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, f, v) in entries {
        out.extend_from_slice(&i.to_le_bytes());
        out.extend_from_slice(&f.to_le_bytes());
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// An EMULATOR_* libxl body: id, index, payload.
pub fn emulator(id: u32, index: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = id.to_le_bytes().to_vec();
    out.extend_from_slice(&index.to_le_bytes());
    out.extend_from_slice(payload);
    out
}

pub fn shared_info_page() -> Vec<u8> {
    (0..4096).map(|i| (i % 253) as u8).collect()
}

/// The minimal x86 HVM context Xen loads: HEADER (HVM_FILE_MAGIC, version 1, changeset,
/// cpuid, gtsc_khz) and END. ARM streams carry it too (their blob is opaque to xsr).
pub const HVM_BLOB: &[u8] = b"\x01\x00\x00\x00\x18\x00\x00\x00\x86\x12\x38\x54\x01\x00\x00\x00\
    \xff\xff\xff\xff\xff\xff\xff\xff\xb1\x0f\x06\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00";

/// [`HVM_BLOB`] with `tag` as its gtsc_khz: distinct contexts Xen loads alike.
pub fn hvm_blob(tag: u32) -> Vec<u8> {
    let mut b = HVM_BLOB.to_vec();
    b[28..32].copy_from_slice(&tag.to_le_bytes());
    b
}
pub const CPUID_LEAF: [u32; 6] = [0xD, 1, 0x11, 0x22, 0x33, 0x44];
pub const MSR_ENTRY: (u32, u32, u64) = (0x10A, 0, 0xD01);
pub const TSC: (u32, u32, u64, u32) = (1, 2_400_000, 123_456_789, 7);

// ------------------------------------------------------------------------------------------
// Streams.

/// One item of a stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Part {
    /// A libxc record: type and body (padding added by the encoder).
    Rec(u32, Vec<u8>),
    /// A libxl record.
    Libxl(u32, Vec<u8>),
    /// Raw bytes.
    Raw(Vec<u8>),
}

/// The outer layers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Wrap {
    None,
    Libxl,
    /// An xl file with this config.
    Xl(Vec<u8>),
}

/// A stream description.
#[derive(Clone, Debug)]
pub struct Spec {
    pub version: u32,
    pub dtype: u32,
    pub page_shift: u16,
    pub xen: (u32, u32),
    pub ihdr_options: u16,
    pub dhdr_reserved: u16,
    pub wrap: Wrap,
    pub parts: Vec<Part>,
}

/// An encoded stream and where its libxc records are.
#[derive(Clone, Debug)]
pub struct Built {
    pub bytes: Vec<u8>,
    /// Offset of the libxc image header.
    pub libxc_at: u64,
    /// Offset of each libxc record header, by record index.
    pub recs: Vec<u64>,
    /// Offset of each libxl record header, by libxl record index.
    pub libxl_recs: Vec<u64>,
}

impl Built {
    /// Offset of the record at `index`.
    pub fn off(&self, index: usize) -> u64 {
        self.recs[index]
    }
}

fn put_rec(out: &mut Vec<u8>, rtype: u32, body: &[u8]) {
    out.extend_from_slice(&rtype.to_le_bytes());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(body);
    out.resize(out.len() + body.len().next_multiple_of(8) - body.len(), 0);
}

impl Spec {
    pub fn new(version: u32, dtype: u32, page_shift: u16) -> Self {
        Self {
            version,
            dtype,
            page_shift,
            xen: (4, 17),
            ihdr_options: 0,
            dhdr_reserved: 0,
            wrap: Wrap::None,
            parts: Vec::new(),
        }
    }

    pub fn page_size(&self) -> usize {
        1 << self.page_shift
    }

    pub fn rec(mut self, rtype: u32, body: impl Into<Vec<u8>>) -> Self {
        self.parts.push(Part::Rec(rtype, body.into()));
        self
    }

    pub fn libxl(mut self, rtype: u32, body: impl Into<Vec<u8>>) -> Self {
        self.parts.push(Part::Libxl(rtype, body.into()));
        self
    }

    pub fn pages(self, entries: &[Entry]) -> Self {
        let body = page_data(entries, self.page_size());
        self.rec(PAGE_DATA, body)
    }

    pub fn end(self) -> Self {
        self.rec(END, [])
    }

    /// Wraps in a libxl stream (or an xl file), appending the libxl END.
    pub fn wrapped(mut self, wrap: Wrap) -> Self {
        if wrap != Wrap::None {
            self.parts.push(Part::Libxl(L_END, Vec::new()));
        }
        self.wrap = wrap;
        self
    }

    /// Index (among libxc records) of the first record of `rtype`.
    pub fn index_of(&self, rtype: u32) -> usize {
        self.recs().position(|(t, _)| t == rtype).unwrap_or_else(|| panic!("no record {rtype:#x}"))
    }

    /// The libxc records, in order.
    pub fn recs(&self) -> impl Iterator<Item = (u32, &Vec<u8>)> {
        self.parts.iter().filter_map(|p| match p {
            Part::Rec(t, b) => Some((*t, b)),
            _ => None,
        })
    }

    fn part_of_rec(&self, index: usize) -> usize {
        self.parts
            .iter()
            .enumerate()
            .filter(|(_, p)| matches!(p, Part::Rec(..)))
            .nth(index)
            .map(|(i, _)| i)
            .unwrap_or_else(|| panic!("no record {index}"))
    }

    /// Inserts a record before the libxc record at `index`.
    pub fn insert(mut self, index: usize, rtype: u32, body: impl Into<Vec<u8>>) -> Self {
        let at = self.part_of_rec(index);
        self.parts.insert(at, Part::Rec(rtype, body.into()));
        self
    }

    /// Inserts a record before the first record of `before`.
    pub fn insert_before(self, before: u32, rtype: u32, body: impl Into<Vec<u8>>) -> Self {
        let i = self.index_of(before);
        self.insert(i, rtype, body)
    }

    /// Removes every record of `rtype`.
    pub fn without(mut self, rtype: u32) -> Self {
        self.parts.retain(|p| !matches!(p, Part::Rec(t, _) if *t == rtype));
        self
    }

    /// Replaces the body of the first record of `rtype`.
    pub fn replace(mut self, rtype: u32, body: impl Into<Vec<u8>>) -> Self {
        let i = self.index_of(rtype);
        let at = self.part_of_rec(i);
        self.parts[at] = Part::Rec(rtype, body.into());
        self
    }

    /// Applies `f` to the body of the first record of `rtype`.
    pub fn edit(mut self, rtype: u32, f: impl FnOnce(&mut Vec<u8>)) -> Self {
        let i = self.index_of(rtype);
        let at = self.part_of_rec(i);
        if let Part::Rec(_, body) = &mut self.parts[at] {
            f(body);
        }
        self
    }

    pub fn build(&self) -> Built {
        let mut out = Vec::new();
        if let Wrap::Xl(config) = &self.wrap {
            out.extend_from_slice(XL_MAGIC);
            out.extend_from_slice(&[4, 3, 2, 1]);
            out.extend_from_slice(&3u32.to_le_bytes()); // JSON config, STREAMv2
            out.extend_from_slice(&0u32.to_le_bytes());
            out.extend_from_slice(&(4 + config.len() as u32).to_le_bytes());
            out.extend_from_slice(&(config.len() as u32).to_le_bytes());
            out.extend_from_slice(config);
        }
        let mut libxl_recs = Vec::new();
        if self.wrap != Wrap::None {
            out.extend_from_slice(b"LibxlFmt");
            out.extend_from_slice(&2u32.to_be_bytes());
            out.extend_from_slice(&0u32.to_be_bytes());
            libxl_recs.push(out.len() as u64);
            put_rec(&mut out, L_LIBXC, &[]);
        }
        let libxc_at = out.len() as u64;
        out.extend_from_slice(&[0xFF; 8]);
        out.extend_from_slice(b"XENF");
        out.extend_from_slice(&self.version.to_be_bytes());
        out.extend_from_slice(&self.ihdr_options.to_be_bytes());
        out.extend_from_slice(&[0; 6]);
        out.extend_from_slice(&self.dtype.to_le_bytes());
        out.extend_from_slice(&self.page_shift.to_le_bytes());
        out.extend_from_slice(&self.dhdr_reserved.to_le_bytes());
        out.extend_from_slice(&self.xen.0.to_le_bytes());
        out.extend_from_slice(&self.xen.1.to_le_bytes());
        let mut recs = Vec::new();
        for p in &self.parts {
            match p {
                Part::Rec(t, b) => {
                    recs.push(out.len() as u64);
                    put_rec(&mut out, *t, b);
                }
                Part::Libxl(t, b) => {
                    libxl_recs.push(out.len() as u64);
                    put_rec(&mut out, *t, b);
                }
                Part::Raw(b) => out.extend_from_slice(b),
            }
        }
        Built { bytes: out, libxc_at, recs, libxl_recs }
    }

    pub fn bytes(&self) -> Vec<u8> {
        self.build().bytes
    }

    /// The memory image the stream should restore to: the pages of every PAGE_DATA before the
    /// first VERIFY (populated pfns with their last contents; XALLOC pfns zero).
    pub fn expected_memory(&self) -> BTreeMap<u64, Vec<u8>> {
        let size = self.page_size();
        let mut mem = BTreeMap::new();
        for (t, body) in self.recs() {
            if t == VERIFY {
                break;
            }
            if t != PAGE_DATA {
                continue;
            }
            let count = u32::from_le_bytes(body[..4].try_into().unwrap()) as usize;
            let mut data = &body[8 + 8 * count..];
            for i in 0..count {
                let word = u64::from_le_bytes(body[8 + 8 * i..16 + 8 * i].try_into().unwrap());
                let (pfn, nibble) = (word & ((1 << 52) - 1), (word >> 60) as u8);
                if has_data(nibble) {
                    mem.insert(pfn, data[..size].to_vec());
                    data = &data[size..];
                } else if populates(nibble) {
                    mem.entry(pfn).or_insert_with(|| vec![0; size]);
                }
            }
        }
        mem
    }
}

// ------------------------------------------------------------------------------------------
// Minimal valid streams.

/// Frame pfns of the minimal PV stream's p2m (0..=1023, 64-bit guest: two frames).
pub const PV_FRAMES: [u64; 2] = [100, 101];

/// The minimal PV stream without END: PV_INFO(8,4), SDE, P2M_FRAMES 0..=1023, PAGE_DATA
/// (pfns 0..4, the two p2m frames, an L1 and a pinned L4 table, an XTAB), TSC, SHARED_INFO,
/// VCPU_BASIC for vcpu 0 (naming [`PV_VCPU_FRAMES`]).
pub fn pv_body(version: u32) -> Spec {
    let mut entries = notab(0..4, 0);
    entries.extend(notab(PV_FRAMES, 0));
    entries.extend([e(20, L1TAB), e(21, L4TAB_PINNED), e(22, XTAB)]);
    Spec::new(version, PV, 12)
        .rec(PV_INFO, pv_info(8, 4))
        .rec(SDE, [])
        .rec(P2M_FRAMES, p2m_frames(0, 1023, &PV_FRAMES))
        .pages(&entries)
        .rec(TSC_INFO, tsc(TSC.0, TSC.1, TSC.2, TSC.3))
        .rec(SHARED_INFO, shared_info_page())
        .rec(VCPU_BASIC, basic64(0))
}

pub fn pv() -> Spec {
    pv_body(3).end()
}

/// The minimal HVM-like stream without END (HVM and PVH): CPUID, MSR, SDE, PAGE_DATA (pfns
/// 0..6 and an XTAB), TSC, HVM_CONTEXT, HVM_PARAMS.
pub fn hvm_body(dtype: u32) -> Spec {
    let mut entries = notab(0..6, 0);
    entries.push(e(9, XTAB));
    Spec::new(3, dtype, 12)
        .rec(CPUID, cpuid(&[CPUID_LEAF]))
        .rec(MSR, msrs(&[MSR_ENTRY]))
        .rec(SDE, [])
        .pages(&entries)
        .rec(TSC_INFO, tsc(TSC.0, TSC.1, TSC.2, TSC.3))
        .rec(HVM_CONTEXT, HVM_BLOB)
        .rec(HVM_PARAMS, hvm_params(&[(1, 0xFEFF0), (17, 0xFEFF1)]))
}

pub fn hvm() -> Spec {
    hvm_body(HVM).end()
}

pub fn pvh() -> Spec {
    hvm_body(PVH).end()
}

/// The minimal ARM stream without END: SDE, PAGE_DATA (pfns 0..3 and 7), HVM_PARAMS,
/// HVM_CONTEXT.
pub fn arm_body(page_shift: u16) -> Spec {
    let mut entries = notab(0..3, 0);
    entries.push(e(7, NOTAB));
    Spec::new(3, ARM, page_shift)
        .rec(SDE, [])
        .pages(&entries)
        .rec(HVM_PARAMS, hvm_params(&[(1, 0x4000)]))
        .rec(HVM_CONTEXT, HVM_BLOB)
}

pub fn arm(page_shift: u16) -> Spec {
    arm_body(page_shift).end()
}

/// The minimal stream of every domain type (ARM with 4 KiB pages), with names.
pub fn minimal_streams() -> Vec<(&'static str, Spec)> {
    vec![("pv", pv()), ("hvm", hvm()), ("pvh", pvh()), ("arm", arm(12))]
}

pub fn limit_for(spec: &Spec) -> u64 {
    if spec.dtype == ARM { ARM_LIMIT } else { X86_LIMIT }
}

// ------------------------------------------------------------------------------------------
// Running.

pub fn lenient() -> RestoreOptions {
    RestoreOptions::default()
}

pub fn strict() -> RestoreOptions {
    RestoreOptions { strictness: sr_format::Strictness::Strict, ..RestoreOptions::default() }
}

pub fn checkpointed(failover: bool) -> RestoreOptions {
    RestoreOptions { stream: StreamKind::Checkpointed, failover, ..RestoreOptions::default() }
}

/// Restores `bytes` into a fresh `RamMemory` of `limit` pfns.
pub fn restore_with(bytes: &[u8], options: RestoreOptions, limit: u64) -> Result<Restored<RamMemory>, RestoreError> {
    Restorer::new(options)
        .restore(sr_format::StreamReader::from_slice(bytes), |h| RamMemory::new(u32::from(h.page_shift.get()), limit))
}

/// Restores a spec into a `RamMemory` sized for its domain type.
pub fn restore(spec: &Spec, options: RestoreOptions) -> Result<Restored<RamMemory>, RestoreError> {
    restore_with(&spec.bytes(), options, limit_for(spec))
}

pub fn verify_bytes(bytes: &[u8], options: RestoreOptions) -> Result<Restored<sr_restore::NoMemory>, RestoreError> {
    Restorer::new(options).verify(sr_format::StreamReader::from_slice(bytes))
}

/// Reads back every pfn below the memory's limit and compares it with `want`: populated
/// exactly where `want` has a page, with exactly that content; zeros elsewhere.
pub fn assert_memory(mem: &impl GuestMemory, want: &BTreeMap<u64, Vec<u8>>) {
    let size = mem.page_size();
    let zero = vec![0u8; size];
    let mut buf = vec![0u8; size];
    for pfn in 0..mem.pfn_limit() {
        mem.read_pages(&[pfn], &mut buf).unwrap();
        match want.get(&pfn) {
            Some(page) => {
                assert!(mem.is_populated(pfn), "pfn {pfn:#x} should be populated");
                assert!(buf == *page, "pfn {pfn:#x} has the wrong contents");
            }
            None => {
                assert!(!mem.is_populated(pfn), "pfn {pfn:#x} should not be populated");
                assert!(buf == zero, "pfn {pfn:#x} should read as zeros");
            }
        }
    }
}

/// Whether any warning's message contains `needle`.
pub fn warned<M>(r: &Restored<M>, needle: &str) -> bool {
    r.warnings.iter().any(|w| w.message.contains(needle))
}

/// The offending record of a `Rejected` error: (offset, index).
pub fn rejected_at(err: &RestoreError) -> Option<(u64, u64)> {
    match err {
        RestoreError::Rejected { offset, index, .. } => Some((*offset, *index)),
        _ => None,
    }
}

#[path = "../../../../tests/common/rng.rs"]
mod rng;
#[allow(unused_imports)] // Not every test binary draws random numbers.
pub use rng::Rng;
