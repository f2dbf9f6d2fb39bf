//! The frame-number fields of an x86 PV `vcpu_guest_context` (the X86_PV_VCPU_BASIC blob).
//!
//! The saver converts these fields from mfns to pfns, and the restorer converts them back and
//! checks them (validation row 45): vcpu 0's start_info frame (in rdx / edx), the first
//! `ceil(gdt_ents / 512)` GDT frames, CR3 and, for 64-bit guests, CR1 when its bit 0 is set.
//! Everything else in the blob is opaque to the stream.
//!
//! Byte offsets (all fields little-endian, u64 in a 64-bit context, u32 in a 32-bit one):
//!
//! | field | 64-bit | 32-bit |
//! |---|---|---|
//! | context size | 5168 | 2800 |
//! | rdx / edx | 616 | 524 |
//! | gdt_frames\[16\] | 4832..4960 | 2640..2704 |
//! | gdt_ents | 4960 | 2704 |
//! | ctrlreg\[8\] | 4984..5048 | 2716..2748 |
//!
//! CR3 holds the frame number shifted by 12 in a 64-bit context; a 32-bit (PAE) context uses
//! Xen's extended-CR3 packing, the frame number rotated left by 12 within 32 bits. CR1 (the
//! 64-bit user page table) is `pfn << 12 | 1` when present.

/// Size of a 64-bit guest's `vcpu_guest_context`.
pub const VCPU_CONTEXT_64: usize = 5168;
/// Size of a 32-bit guest's `vcpu_guest_context`.
pub const VCPU_CONTEXT_32: usize = 2800;
/// Largest `gdt_ents` Xen accepts (`FIRST_RESERVED_GDT_ENTRY`).
pub const MAX_GDT_ENTS: u64 = 7168;
/// GDT entries per GDT frame.
pub const GDT_ENTS_PER_FRAME: u64 = 512;
/// Number of `gdt_frames` slots in the context.
pub const GDT_FRAME_SLOTS: usize = 16;

/// Field offsets of one context layout.
#[derive(Clone, Copy, Debug)]
struct Layout {
    size: usize,
    word: usize,
    rdx: usize,
    gdt_frames: usize,
    gdt_ents: usize,
    ctrlreg: usize,
}

const LAYOUT_64: Layout =
    Layout { size: VCPU_CONTEXT_64, word: 8, rdx: 616, gdt_frames: 4832, gdt_ents: 4960, ctrlreg: 4984 };
const LAYOUT_32: Layout =
    Layout { size: VCPU_CONTEXT_32, word: 4, rdx: 524, gdt_frames: 2640, gdt_ents: 2704, ctrlreg: 2716 };

impl Layout {
    fn for_width(guest_width: u8) -> Option<Self> {
        match guest_width {
            8 => Some(LAYOUT_64),
            4 => Some(LAYOUT_32),
            _ => None,
        }
    }

    fn get(&self, blob: &[u8], at: usize) -> u64 {
        let b = &blob[at..at + self.word];
        if self.word == 8 {
            u64::from_le_bytes(b.try_into().expect("8 bytes"))
        } else {
            u64::from(u32::from_le_bytes(b.try_into().expect("4 bytes")))
        }
    }

    /// Stores `v` (truncated to 32 bits in a 32-bit context).
    fn put(&self, blob: &mut [u8], at: usize, v: u64) {
        let b = &mut blob[at..at + self.word];
        if self.word == 8 {
            b.copy_from_slice(&v.to_le_bytes());
        } else {
            b.copy_from_slice(&(v as u32).to_le_bytes());
        }
    }

    fn ctrlreg(&self, n: usize) -> usize {
        self.ctrlreg + n * self.word
    }
}

/// The size of a `vcpu_guest_context` for a guest of `guest_width` bytes (4 or 8).
pub fn vcpu_context_size(guest_width: u8) -> Option<usize> {
    Layout::for_width(guest_width).map(|l| l.size)
}

/// The frame-number fields of a PV `vcpu_guest_context`, as pfns (stream form).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct VcpuFrames {
    /// start_info pfn (rdx / edx); only meaningful for vcpu 0.
    pub start_info: u64,
    /// Number of GDT entries.
    pub gdt_ents: u64,
    /// GDT frame pfns; the first [`gdt_frame_count`](Self::gdt_frame_count) are used.
    pub gdt_frames: [u64; GDT_FRAME_SLOTS],
    /// The top-level page table pfn, decoded from CR3.
    pub cr3_pfn: u64,
    /// The 64-bit user page table pfn, from CR1 when its bit 0 is set (always `None` for a
    /// 32-bit context, where Xen does not convert CR1).
    pub cr1_pfn: Option<u64>,
}

impl VcpuFrames {
    /// Reads the fields of `blob`, a context of a guest `guest_width` bytes wide; `None` if the
    /// width is not 4 or 8 or the blob is not that width's context size.
    pub fn read(blob: &[u8], guest_width: u8) -> Option<Self> {
        let l = Layout::for_width(guest_width)?;
        if blob.len() != l.size {
            return None;
        }
        let mut gdt_frames = [0u64; GDT_FRAME_SLOTS];
        for (i, f) in gdt_frames.iter_mut().enumerate() {
            *f = l.get(blob, l.gdt_frames + i * l.word);
        }
        let cr3 = l.get(blob, l.ctrlreg(3));
        let (cr3_pfn, cr1_pfn) = if guest_width == 8 {
            let cr1 = l.get(blob, l.ctrlreg(1));
            (cr3 >> 12, (cr1 & 1 != 0).then_some(cr1 >> 12))
        } else {
            let cr3 = cr3 as u32;
            (u64::from(cr3.rotate_right(12)), None)
        };
        Some(Self { start_info: l.get(blob, l.rdx), gdt_ents: l.get(blob, l.gdt_ents), gdt_frames, cr3_pfn, cr1_pfn })
    }

    /// Writes the fields into `blob`, a context of a guest `guest_width` bytes wide: CR3 is
    /// encoded back (rotated in a 32-bit context), CR1 becomes `pfn << 12 | 1` or 0 (64-bit
    /// only; a 32-bit context's CR1 is left alone). Values are truncated to 32 bits in a 32-bit
    /// context.
    ///
    /// # Panics
    ///
    /// If the width is not 4 or 8 or the blob is not that width's context size.
    pub fn write(&self, blob: &mut [u8], guest_width: u8) {
        let l = Layout::for_width(guest_width).unwrap_or_else(|| panic!("guest width {guest_width} is not 4 or 8"));
        assert_eq!(blob.len(), l.size, "a {}-bit vcpu context is {} bytes", u32::from(guest_width) * 8, l.size);
        l.put(blob, l.rdx, self.start_info);
        l.put(blob, l.gdt_ents, self.gdt_ents);
        for (i, &f) in self.gdt_frames.iter().enumerate() {
            l.put(blob, l.gdt_frames + i * l.word, f);
        }
        if guest_width == 8 {
            l.put(blob, l.ctrlreg(3), self.cr3_pfn << 12);
            l.put(blob, l.ctrlreg(1), self.cr1_pfn.map_or(0, |p| p << 12 | 1));
        } else {
            l.put(blob, l.ctrlreg(3), u64::from((self.cr3_pfn as u32).rotate_left(12)));
        }
    }

    /// How many GDT frames are in use: `ceil(gdt_ents / 512)` (capped at the 16 slots).
    pub fn gdt_frame_count(&self) -> usize {
        self.gdt_ents.div_ceil(GDT_ENTS_PER_FRAME).min(GDT_FRAME_SLOTS as u64) as usize
    }

    /// The GDT frames in use.
    pub fn used_gdt_frames(&self) -> &[u64] {
        &self.gdt_frames[..self.gdt_frame_count()]
    }
}

/// `VGCF_in_kernel`: the vcpu was running in guest kernel mode (flags bit 2).
const VGCF_IN_KERNEL: u64 = 1 << 2;

/// Decodes the registers of an x86 PV `vcpu_guest_context` in stream form (the
/// X86_PV_VCPU_BASIC blob) for a guest `guest_width` bytes wide; `None` unless the width is
/// 4 or 8 and the blob is that width's context size.
///
/// Layouts: `xen/include/public/arch-x86/xen.h` (`vcpu_guest_context`) with `cpu_user_regs`
/// from `xen-x86_64.h` / `xen-x86_32.h`. What a PV context carries, and what the set gets:
///
/// * general-purpose registers, rip, rflags, the six segment selectors, CR0/CR2/CR4 and the
///   debug registers as saved;
/// * CR3 as a guest-physical address in the stream's pfn space (`cr3_pfn << 12`; the saver
///   converted the frame to a pfn, and a 32-bit context's extended-CR3 packing is undone);
/// * 64-bit: FS base, and the GS base of the mode the vcpu was in (`gs_base_kernel` when
///   `VGCF_in_kernel` is set, else `gs_base_user`), the other one in `kernel_gs_base`;
/// * LDTR base and limit from `ldt_base` / `ldt_ents`; GDTR limit from `gdt_ents` with base 0
///   (a PV guest's GDT lives in the frames of `gdt_frames`, mapped by Xen, not at a
///   guest-chosen linear address); IDTR, EFER, segment limits and attributes, SYSENTER and
///   SYSCALL MSRs are not in the context and stay 0.
pub fn pv_vcpu_regs(blob: &[u8], guest_width: u8) -> Option<crate::cpu::X86Regs> {
    use crate::cpu::{Segment, TableReg, X86Regs};
    let l = Layout::for_width(guest_width)?;
    let frames = VcpuFrames::read(blob, guest_width)?;
    let g = |at: usize| l.get(blob, at);
    let sel = |at: usize| Segment { selector: u16::from_le_bytes([blob[at], blob[at + 1]]), ..Segment::default() };
    let table =
        |base: u64, ents: u64| TableReg { base, limit: (ents * 8).saturating_sub(1).min(u64::from(u32::MAX)) as u32 };
    let mut r = X86Regs::default();
    let flags = g(512);
    if guest_width == 8 {
        let u = 520;
        [r.r15, r.r14, r.r13, r.r12, r.rbp, r.rbx, r.r11, r.r10, r.r9, r.r8, r.rax, r.rcx, r.rdx, r.rsi, r.rdi] =
            std::array::from_fn(|i| g(u + 8 * i));
        r.rip = g(648);
        r.cs = sel(656);
        r.rflags = g(664);
        r.rsp = g(672);
        [r.ss, r.es, r.ds, r.fs, r.gs] = std::array::from_fn(|i| sel(680 + 8 * i));
        r.fs.base = g(5144);
        let (kernel, user) = (g(5152), g(5160));
        (r.gs.base, r.kernel_gs_base) = if flags & VGCF_IN_KERNEL != 0 { (kernel, user) } else { (user, kernel) };
    } else {
        [r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rbp, r.rax] = std::array::from_fn(|i| g(516 + 4 * i));
        r.rip = g(548);
        r.cs = sel(552);
        r.rflags = g(556);
        r.rsp = g(560);
        [r.ss, r.es, r.ds, r.fs, r.gs] = std::array::from_fn(|i| sel(564 + 4 * i));
    }
    // ldt_base and ldt_ents sit just before gdt_frames.
    let ldt = l.gdt_frames - 2 * l.word;
    let t = table(g(ldt), g(ldt + l.word));
    r.ldtr = Segment { base: t.base, limit: t.limit, ..Segment::default() };
    r.gdtr = table(0, frames.gdt_ents);
    r.cr0 = g(l.ctrlreg(0));
    r.cr2 = g(l.ctrlreg(2));
    r.cr3 = frames.cr3_pfn << 12;
    r.cr4 = g(l.ctrlreg(4));
    let dr = l.ctrlreg(8);
    [r.dr0, r.dr1, r.dr2, r.dr3] = std::array::from_fn(|i| g(dr + l.word * i));
    r.dr6 = g(dr + 6 * l.word);
    r.dr7 = g(dr + 7 * l.word);
    Some(r)
}
