//! An x86 PV guest's p2m (pfn -> mfn), found and read the way Xen's saver does it
//! (`map_p2m`, `map_p2m_tree`, `map_p2m_list` in `tools/libs/guest/xg_sr_save_x86_pv.c`).
//!
//! A PV guest keeps its own p2m and publishes where it is in its shared info page
//! (`arch_shared_info` of `xen/include/public/arch-x86/xen.h`):
//!
//! * **virtual list** (`p2m_cr3 != 0`, what Linux does on 64-bit): the p2m is a linear array at
//!   guest-virtual `p2m_vaddr`, reached through the page tables rooted at `p2m_cr3`. The walk
//!   goes L4 -> L3 -> L2 -> L1 for each p2m page, and the L1 entries are the p2m pages' mfns.
//! * **frame-list tree** (`pfn_to_mfn_frame_list_list`): one page of mfns of frame-list pages,
//!   whose entries are the mfns of the p2m pages.
//!
//! `arch.max_pfn` is the number of pfns the p2m covers (Xen's saver uses it minus one as its
//! highest pfn). Everything here is pure logic over a [`FrameReader`], so it is tested without
//! a hypervisor; every count and frame read from the guest is bounded before use.

use std::collections::HashMap;

use crate::error::XenError;

/// Bytes per frame.
pub const FRAME_SIZE: usize = 4096;

/// Offset of `arch_shared_info` in a 64-bit guest's shared info page (`shared_info_x86_64`:
/// 32 vcpu_info of 64 bytes, 2 x 64 event words, 4 wallclock words).
pub const ARCH_OFFSET_64: usize = 3088;
/// Offset of `arch_shared_info` in a 32-bit guest's shared info page (`shared_info_x86_32`).
pub const ARCH_OFFSET_32: usize = 2316;

/// The most pfns a p2m may cover here: sr-memory's limit (2^36).
pub const MAX_P2M_PFNS: u64 = sr_memory::MAX_PFN_LIMIT;

/// Page-table entry bits (x86 long mode).
const PTE_PRESENT: u64 = 1;
const PTE_PSE: u64 = 1 << 7;
const PTE_FRAME_MASK: u64 = 0x000f_ffff_ffff_f000;

/// Reads guest frames by machine frame number.
pub trait FrameReader {
    /// Reads `frames` into `out` (`frames.len() * FRAME_SIZE` bytes), failing with
    /// [`XenError::Frame`] (naming `what`) for a frame that cannot be read.
    fn read_frames(&mut self, what: &'static str, frames: &[u64], out: &mut [u8]) -> Result<(), XenError>;
}

/// The p2m fields of `arch_shared_info`, widened to u64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ArchSharedInfo {
    /// `max_pfn`: the number of pfns the p2m covers.
    pub max_pfn: u64,
    /// `pfn_to_mfn_frame_list_list`: the mfn of the frame list list.
    pub frame_list_list: u64,
    /// `p2m_cr3`: page-table root (cr3 format) of the virtual p2m list; 0 if none.
    pub p2m_cr3: u64,
    /// `p2m_vaddr`: guest-virtual address of the linear p2m list.
    pub p2m_vaddr: u64,
    /// `p2m_generation`: bumped by the guest around p2m updates.
    pub p2m_generation: u64,
}

impl ArchSharedInfo {
    /// Reads the fields from a shared info page of a guest of `width` (8 or 4) bytes per word.
    pub fn parse(page: &[u8], width: u32) -> Result<Self, XenError> {
        let (base, w) = match width {
            8 => (ARCH_OFFSET_64, 8),
            4 => (ARCH_OFFSET_32, 4),
            _ => return Err(XenError::Width { width }),
        };
        if page.len() < FRAME_SIZE {
            return Err(XenError::Layout { what: "shared info page length", value: page.len() as u64 });
        }
        // Field order: max_pfn, pfn_to_mfn_frame_list_list, nmi_reason, p2m_cr3, p2m_vaddr,
        // p2m_generation.
        let field = |i: usize| word(&page[base + i * w..], w);
        Ok(Self {
            max_pfn: field(0),
            frame_list_list: field(1),
            p2m_cr3: field(3),
            p2m_vaddr: field(4),
            p2m_generation: field(5),
        })
    }

    /// The highest pfn the p2m covers (`max_pfn - 1`), checked against [`MAX_P2M_PFNS`].
    pub fn highest_pfn(&self) -> Result<u64, XenError> {
        if self.max_pfn == 0 || self.max_pfn > MAX_P2M_PFNS {
            return Err(XenError::Layout { what: "shared info arch.max_pfn", value: self.max_pfn });
        }
        Ok(self.max_pfn - 1)
    }
}

/// A little-endian word of `w` (4 or 8) bytes at the start of `b`; 32-bit all-ones (an
/// invalid entry of a 32-bit guest) widens to `u64::MAX`.
fn word(b: &[u8], w: usize) -> u64 {
    if w == 8 {
        u64::from_le_bytes(b[..8].try_into().expect("8 bytes"))
    } else {
        let v = u32::from_le_bytes(b[..4].try_into().expect("4 bytes"));
        if v == u32::MAX { u64::MAX } else { u64::from(v) }
    }
}

/// Words of a guest of `width` per frame.
fn per_frame(width: u32) -> u64 {
    FRAME_SIZE as u64 / u64::from(width)
}

/// The number of p2m pages for `highest_pfn` (Xen's `(max_pfn / fpp) + 1`).
pub fn p2m_frame_count(highest_pfn: u64, width: u32) -> u64 {
    highest_pfn / per_frame(width) + 1
}

/// The mfns of the guest's p2m pages, by the virtual list when `p2m_cr3` is set (64-bit
/// guests only, as Xen), else by the frame-list tree. Every mfn is checked `<= max_mfn`.
pub fn p2m_frames(
    reader: &mut dyn FrameReader,
    info: &ArchSharedInfo,
    width: u32,
    max_mfn: u64,
) -> Result<Vec<u64>, XenError> {
    if width != 8 && width != 4 {
        return Err(XenError::Width { width });
    }
    let highest = info.highest_pfn()?;
    if info.p2m_cr3 != 0 && width == 8 {
        list_frames(reader, info, highest, max_mfn)
    } else {
        tree_frames(reader, info, width, highest, max_mfn)
    }
}

fn check_mfn(what: &'static str, mfn: u64, max_mfn: u64) -> Result<u64, XenError> {
    if mfn > max_mfn {
        return Err(XenError::Layout { what, value: mfn });
    }
    Ok(mfn)
}

/// The frame-list tree: frame list list -> frame lists -> p2m pages.
fn tree_frames(
    reader: &mut dyn FrameReader,
    info: &ArchSharedInfo,
    width: u32,
    highest: u64,
    max_mfn: u64,
) -> Result<Vec<u64>, XenError> {
    let fpp = per_frame(width);
    let w = width as usize;
    let fll = check_mfn("pfn_to_mfn_frame_list_list", info.frame_list_list, max_mfn)?;
    if fll == 0 {
        return Err(XenError::Layout { what: "pfn_to_mfn_frame_list_list", value: fll });
    }
    let n_frames = p2m_frame_count(highest, width);
    let n_lists = highest / (fpp * fpp) + 1;
    if n_lists > fpp {
        return Err(XenError::Layout { what: "p2m frame lists beyond one frame list list", value: n_lists });
    }
    let mut page = vec![0u8; FRAME_SIZE];
    reader.read_frames("p2m frame list list", &[fll], &mut page)?;
    let lists = (0..n_lists as usize)
        .map(|i| check_mfn("p2m frame list", word(&page[i * w..], w), max_mfn))
        .collect::<Result<Vec<_>, _>>()?;
    let mut list_pages = vec![0u8; lists.len() * FRAME_SIZE];
    reader.read_frames("p2m frame list", &lists, &mut list_pages)?;
    (0..n_frames as usize).map(|i| check_mfn("p2m frame", word(&list_pages[i * w..], w), max_mfn)).collect()
}

/// The virtual list: walk the guest's 4-level page tables from `p2m_cr3` for every p2m page.
fn list_frames(
    reader: &mut dyn FrameReader,
    info: &ArchSharedInfo,
    highest: u64,
    max_mfn: u64,
) -> Result<Vec<u64>, XenError> {
    let n_frames = p2m_frame_count(highest, 8);
    let va0 = info.p2m_vaddr;
    if !va0.is_multiple_of(FRAME_SIZE as u64) {
        return Err(XenError::Layout { what: "p2m_vaddr (not page aligned)", value: va0 });
    }
    let span = n_frames * FRAME_SIZE as u64;
    if va0.checked_add(span).is_none() {
        return Err(XenError::Layout { what: "p2m_vaddr + p2m size", value: va0 });
    }
    // 64-bit PV cr3 format: the frame number shifted by 12 (xen_cr3_to_pfn_x86_64).
    let root = check_mfn("p2m_cr3", info.p2m_cr3 >> 12, max_mfn)?;
    let mut tables: HashMap<u64, Vec<u8>> = HashMap::new();
    let mut frames = Vec::with_capacity(n_frames as usize);
    for k in 0..n_frames {
        let va = va0 + k * FRAME_SIZE as u64;
        let mut table = root;
        for level in (1..=4u32).rev() {
            if let std::collections::hash_map::Entry::Vacant(slot) = tables.entry(table) {
                let mut page = vec![0u8; FRAME_SIZE];
                reader.read_frames("p2m page table", &[table], &mut page)?;
                slot.insert(page);
            }
            let index = ((va >> (12 + 9 * (level - 1))) & 511) as usize;
            let pte = word(&tables[&table][index * 8..], 8);
            if pte & PTE_PRESENT == 0 || (level > 1 && pte & PTE_PSE != 0) {
                return Err(XenError::P2mWalk { level, index, pte });
            }
            table = check_mfn("p2m page-table frame", (pte & PTE_FRAME_MASK) >> 12, max_mfn)?;
        }
        frames.push(table);
    }
    Ok(frames)
}

/// Reads the p2m entries for pfns `0..=highest_pfn` from the p2m pages `frames`, in batches
/// of up to 1024 frames. Entries are raw (u64::MAX or anything else for a pfn without a
/// frame); the caller decides which are the guest's own frames (see [`entry_is_backed`]).
pub fn read_p2m(
    reader: &mut dyn FrameReader,
    frames: &[u64],
    highest_pfn: u64,
    width: u32,
) -> Result<Vec<u64>, XenError> {
    let fpp = per_frame(width);
    let w = width as usize;
    let want = p2m_frame_count(highest_pfn, width);
    if frames.len() as u64 != want {
        return Err(XenError::Layout { what: "p2m frame count", value: frames.len() as u64 });
    }
    let total =
        usize::try_from(highest_pfn + 1).map_err(|_| XenError::Layout { what: "p2m size", value: highest_pfn })?;
    let mut p2m = Vec::with_capacity(total);
    let mut buf = Vec::new();
    for chunk in frames.chunks(1024) {
        buf.resize(chunk.len() * FRAME_SIZE, 0);
        reader.read_frames("p2m", chunk, &mut buf)?;
        for e in buf.chunks_exact(w) {
            if p2m.len() == total {
                break;
            }
            p2m.push(word(e, w));
        }
    }
    debug_assert_eq!(p2m.len() as u64, (frames.len() as u64 * fpp).min(highest_pfn + 1));
    Ok(p2m)
}

/// Xen's `mfn_in_pseudophys_map` test for pfn `pfn` with p2m entry `mfn`: the frame exists on
/// the host and the m2p maps it back to `pfn` (so it is this guest's frame for that pfn).
pub fn entry_is_backed(pfn: u64, mfn: u64, m2p: impl Fn(u64) -> Option<u64>) -> bool {
    mfn != u64::MAX && m2p(mfn) == Some(pfn)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames in a map; reading an absent one fails like a hole.
    #[derive(Default)]
    struct Fake {
        frames: HashMap<u64, Vec<u8>>,
        reads: usize,
    }

    impl Fake {
        fn put_words(&mut self, mfn: u64, words: &[u64]) {
            let mut page = vec![0u8; FRAME_SIZE];
            for (i, w) in words.iter().enumerate() {
                page[i * 8..i * 8 + 8].copy_from_slice(&w.to_le_bytes());
            }
            self.frames.insert(mfn, page);
        }
    }

    impl FrameReader for Fake {
        fn read_frames(&mut self, what: &'static str, frames: &[u64], out: &mut [u8]) -> Result<(), XenError> {
            assert_eq!(out.len(), frames.len() * FRAME_SIZE);
            for (f, o) in frames.iter().zip(out.chunks_exact_mut(FRAME_SIZE)) {
                self.reads += 1;
                let page = self.frames.get(f).ok_or(XenError::Frame { what, frame: *f, errno: libc::EFAULT })?;
                o.copy_from_slice(page);
            }
            Ok(())
        }
    }

    fn shared_info(width: u32, info: &ArchSharedInfo) -> Vec<u8> {
        let mut page = vec![0u8; FRAME_SIZE];
        let (base, w) = if width == 8 { (ARCH_OFFSET_64, 8) } else { (ARCH_OFFSET_32, 4) };
        let fields = [info.max_pfn, info.frame_list_list, 0, info.p2m_cr3, info.p2m_vaddr, info.p2m_generation];
        for (i, v) in fields.iter().enumerate() {
            page[base + i * w..base + (i + 1) * w].copy_from_slice(&v.to_le_bytes()[..w]);
        }
        page
    }

    #[test]
    fn arch_offsets_match_xen_headers() {
        assert_eq!(std::mem::offset_of!(xen_sys::shared_info_x86_64, arch), ARCH_OFFSET_64);
        assert_eq!(std::mem::offset_of!(xen_sys::shared_info_x86_32, arch), ARCH_OFFSET_32);
        let info = ArchSharedInfo {
            max_pfn: 8192,
            frame_list_list: 77,
            p2m_cr3: 0x5000,
            p2m_vaddr: 0xffff_c900_0000_0000,
            p2m_generation: 3,
        };
        assert_eq!(ArchSharedInfo::parse(&shared_info(8, &info), 8).unwrap(), info);
        let small = ArchSharedInfo { max_pfn: 4096, frame_list_list: 9, p2m_cr3: 0, p2m_vaddr: 0, p2m_generation: 0 };
        assert_eq!(ArchSharedInfo::parse(&shared_info(4, &small), 4).unwrap(), small);
        assert!(matches!(ArchSharedInfo::parse(&shared_info(8, &info), 2), Err(XenError::Width { width: 2 })));
        assert!(matches!(ArchSharedInfo::parse(&[0; 100], 8), Err(XenError::Layout { .. })));
    }

    /// A guest of `n` pfns (pfn p at mfn 1000 + p) with its p2m pages at mfns 500.. .
    fn p2m_pages(fake: &mut Fake, n: u64) -> Vec<u64> {
        let mfns: Vec<u64> = (0..n).map(|p| 1000 + p).collect();
        let frames: Vec<u64> = (0..n.div_ceil(512)).map(|i| 500 + i).collect();
        for (i, chunk) in mfns.chunks(512).enumerate() {
            let mut words = chunk.to_vec();
            words.resize(512, u64::MAX);
            fake.put_words(frames[i], &words);
        }
        frames
    }

    #[test]
    fn tree_walk_finds_every_p2m_frame() {
        let mut fake = Fake::default();
        let n = 3 * 512 + 7;
        let frames = p2m_pages(&mut fake, n);
        fake.put_words(300, &frames);
        fake.put_words(200, &[300]);
        let info = ArchSharedInfo { max_pfn: n, frame_list_list: 200, ..Default::default() };
        let found = p2m_frames(&mut fake, &info, 8, 1 << 20).unwrap();
        assert_eq!(found, frames);
        let p2m = read_p2m(&mut fake, &found, info.highest_pfn().unwrap(), 8).unwrap();
        assert_eq!(p2m.len() as u64, n);
        assert!(p2m.iter().enumerate().all(|(p, &m)| m == 1000 + p as u64));
    }

    #[test]
    fn tree_walk_rejects_bad_frames() {
        let mut fake = Fake::default();
        let frames = p2m_pages(&mut fake, 1024);
        fake.put_words(300, &frames);
        fake.put_words(200, &[300]);
        let info = ArchSharedInfo { max_pfn: 1024, frame_list_list: 200, ..Default::default() };
        // A frame beyond the host's memory.
        assert!(matches!(
            p2m_frames(&mut fake, &info, 8, 400),
            Err(XenError::Layout { what: "p2m frame", value: 500 })
        ));
        // An unreadable frame list list.
        let gone = ArchSharedInfo { frame_list_list: 201, ..info };
        assert!(matches!(p2m_frames(&mut fake, &gone, 8, 1 << 20), Err(XenError::Frame { frame: 201, .. })));
        // max_pfn 0 and absurd sizes.
        for max_pfn in [0, MAX_P2M_PFNS + 1] {
            let bad = ArchSharedInfo { max_pfn, ..info };
            assert!(matches!(p2m_frames(&mut fake, &bad, 8, 1 << 20), Err(XenError::Layout { .. })));
        }
        // More frame lists than one frame list list holds.
        let huge = ArchSharedInfo { max_pfn: 512 * 512 * 513, ..info };
        assert!(matches!(p2m_frames(&mut fake, &huge, 8, 1 << 20), Err(XenError::Layout { .. })));
    }

    #[test]
    fn tree_walk_of_a_32_bit_guest() {
        let mut fake = Fake::default();
        let n = 1500u64;
        // 1024 entries of 4 bytes per page.
        let mut p2m_page = |mfn: u64, entries: &[u32]| {
            let mut page = vec![0xffu8; FRAME_SIZE];
            for (i, e) in entries.iter().enumerate() {
                page[i * 4..i * 4 + 4].copy_from_slice(&e.to_le_bytes());
            }
            fake.frames.insert(mfn, page);
        };
        let all: Vec<u32> = (0..n as u32).map(|p| 7000 + p).collect();
        p2m_page(600, &all[..1024]);
        p2m_page(601, &all[1024..]);
        p2m_page(400, &[600, 601]);
        p2m_page(100, &[400]);
        let info = ArchSharedInfo { max_pfn: n, frame_list_list: 100, ..Default::default() };
        let frames = p2m_frames(&mut fake, &info, 4, 1 << 20).unwrap();
        assert_eq!(frames, [600, 601]);
        let p2m = read_p2m(&mut fake, &frames, n - 1, 4).unwrap();
        assert_eq!(p2m[1499], 8499);
        assert_eq!(p2m.len(), 1500);
    }

    /// Page tables mapping `va0..` to the p2m pages `frames`, rooted at mfn 10.
    fn list_tables(fake: &mut Fake, va0: u64, frames: &[u64]) {
        let idx = |va: u64, level: u32| ((va >> (12 + 9 * (level - 1))) & 511) as usize;
        let mut l4 = vec![0u64; 512];
        let mut l3 = vec![0u64; 512];
        let mut l2 = vec![0u64; 512];
        let mut l1s: HashMap<usize, Vec<u64>> = HashMap::new();
        l4[idx(va0, 4)] = (11 << 12) | 0x67;
        l3[idx(va0, 3)] = (12 << 12) | 0x67;
        for (k, &f) in frames.iter().enumerate() {
            let va = va0 + k as u64 * 4096;
            let l2i = idx(va, 2);
            l2[l2i] = ((20 + l2i as u64) << 12) | 0x67;
            l1s.entry(l2i).or_insert_with(|| vec![0; 512])[idx(va, 1)] = (f << 12) | 0x8000_0000_0000_0025;
        }
        fake.put_words(10, &l4);
        fake.put_words(11, &l3);
        fake.put_words(12, &l2);
        for (l2i, l1) in l1s {
            fake.put_words(20 + l2i as u64, &l1);
        }
    }

    #[test]
    fn list_walk_follows_the_page_tables() {
        let mut fake = Fake::default();
        let n = 700 * 512; // 700 p2m pages: crosses an L2 entry (512 pages per L1 table)
        let frames: Vec<u64> = (0..700).map(|i| 5000 + i).collect();
        let va0 = 0xffff_c900_0000_0000 + 510 * 4096; // starts 2 pages before an L1 boundary
        list_tables(&mut fake, va0, &frames);
        let info = ArchSharedInfo {
            max_pfn: n,
            p2m_cr3: 10 << 12,
            p2m_vaddr: va0,
            frame_list_list: u64::MAX,
            ..Default::default()
        };
        let found = p2m_frames(&mut fake, &info, 8, 1 << 20).unwrap();
        assert_eq!(found, frames);
        // Tables are read once each: L4, L3, L2 and 3 L1 tables, not once per p2m page.
        assert_eq!(fake.reads, 6);
    }

    #[test]
    fn list_walk_rejects_missing_and_huge_mappings() {
        let mut fake = Fake::default();
        let frames: Vec<u64> = (0..4).map(|i| 5000 + i).collect();
        let va0 = 0x4000_0000;
        list_tables(&mut fake, va0, &frames);
        let info = ArchSharedInfo { max_pfn: 4 * 512 + 1, p2m_cr3: 10 << 12, p2m_vaddr: va0, ..Default::default() };
        // One p2m page more than mapped: the L1 entry is not present.
        assert!(matches!(
            p2m_frames(&mut fake, &info, 8, 1 << 20),
            Err(XenError::P2mWalk { level: 1, index: 4, pte: 0 })
        ));
        // A 2 MiB superpage at L2.
        let mut l2 = vec![0u64; 512];
        l2[0] = (30 << 12) | PTE_PSE | 1;
        fake.put_words(12, &l2);
        let info = ArchSharedInfo { max_pfn: 512, ..info };
        assert!(matches!(p2m_frames(&mut fake, &info, 8, 1 << 20), Err(XenError::P2mWalk { level: 2, .. })));
        let unaligned = ArchSharedInfo { p2m_vaddr: va0 + 8, ..info };
        assert!(matches!(p2m_frames(&mut fake, &unaligned, 8, 1 << 20), Err(XenError::Layout { .. })));
        let wraps = ArchSharedInfo { p2m_vaddr: !4095, ..info };
        assert!(matches!(p2m_frames(&mut fake, &wraps, 8, 1 << 20), Err(XenError::Layout { .. })));
    }

    #[test]
    fn read_p2m_checks_the_frame_count() {
        let mut fake = Fake::default();
        let frames = p2m_pages(&mut fake, 1024);
        assert!(matches!(read_p2m(&mut fake, &frames[..1], 1023, 8), Err(XenError::Layout { .. })));
        let p2m = read_p2m(&mut fake, &frames, 600, 8).unwrap();
        assert_eq!(p2m.len(), 601);
    }

    #[test]
    fn backed_entries_need_the_m2p_to_agree() {
        let m2p = |mfn: u64| (mfn < 100).then_some(mfn + 1);
        assert!(entry_is_backed(5, 4, m2p));
        assert!(!entry_is_backed(5, 5, m2p));
        assert!(!entry_is_backed(5, u64::MAX, m2p));
        assert!(!entry_is_backed(5, 1 << 62 | 5, m2p));
    }
}
