//! Guest-virtual to guest-physical translation: an x86 page-table walk over guest-physical
//! memory.
//!
//! The walk follows the Intel SDM, vol. 3A, chapter 4 ("Paging"): 32-bit paging (2 levels,
//! 4 MiB pages with CR4.PSE), PAE paging (3 levels, 2 MiB pages), 4-level paging (2 MiB and
//! 1 GiB pages) and 5-level paging (CR4.LA57). Levels are numbered as the SDM's tables:
//! 5 PML5, 4 PML4, 3 PDPT, 2 page directory, 1 page table.
//!
//! The walk is the same for PV and HVM guests because Xen's saver normalises PV page tables:
//! it rewrites every L1-L4 entry's frame from an mfn to a pfn
//! (`tools/libs/guest/xg_sr_save_x86_pv.c`, `normalise_pagetable`), so in a PV stream an
//! entry's address bits hold `pfn << 12`, a guest-physical address as in HVM.

use crate::error::ReadError;
use crate::image::PhysMemory;

/// Address bits 51:12 of a 64-bit (PAE / long-mode) entry.
const ADDR_MASK_64: u64 = 0x000F_FFFF_FFFF_F000;
const PRESENT: u64 = 1;
const PAGE_SIZE_BIT: u64 = 1 << 7;

/// CR0.PG.
pub const CR0_PG: u64 = 1 << 31;
/// CR4.PSE.
pub const CR4_PSE: u64 = 1 << 4;
/// CR4.PAE.
pub const CR4_PAE: u64 = 1 << 5;
/// CR4.LA57.
pub const CR4_LA57: u64 = 1 << 12;
/// EFER.LMA.
pub const EFER_LMA: u64 = 1 << 10;

/// An x86 paging mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PagingMode {
    /// Paging off (CR0.PG clear): virtual addresses are physical.
    None,
    /// 32-bit paging, 2 levels of 4-byte entries; `pse` allows 4 MiB pages (CR4.PSE).
    TwoLevel {
        /// CR4.PSE.
        pse: bool,
    },
    /// PAE paging: 3 levels of 8-byte entries, 2 MiB pages.
    Pae,
    /// 4-level paging (IA-32e): 2 MiB and 1 GiB pages.
    FourLevel,
    /// 5-level paging (CR4.LA57).
    FiveLevel,
}

impl PagingMode {
    /// The mode of a vcpu with these control registers (SDM vol. 3A, 4.1.1).
    pub fn from_registers(cr0: u64, cr4: u64, efer: u64) -> Self {
        if cr0 & CR0_PG == 0 {
            PagingMode::None
        } else if cr4 & CR4_PAE == 0 {
            PagingMode::TwoLevel { pse: cr4 & CR4_PSE != 0 }
        } else if efer & EFER_LMA == 0 {
            PagingMode::Pae
        } else if cr4 & CR4_LA57 != 0 {
            PagingMode::FiveLevel
        } else {
            PagingMode::FourLevel
        }
    }

    /// The mode of an x86 PV guest from X86_PV_INFO: 64-bit guests (width 8, 4 levels) use
    /// 4-level paging, 32-bit guests (width 4, 3 levels) PAE; anything else is `None`.
    pub fn for_pv(guest_width: u8, pt_levels: u8) -> Option<Self> {
        match (guest_width, pt_levels) {
            (8, 4) => Some(PagingMode::FourLevel),
            (4, 3) => Some(PagingMode::Pae),
            _ => None,
        }
    }

    /// A short name.
    pub fn name(self) -> &'static str {
        match self {
            PagingMode::None => "none",
            PagingMode::TwoLevel { .. } => "2-level",
            PagingMode::Pae => "PAE",
            PagingMode::FourLevel => "4-level",
            PagingMode::FiveLevel => "5-level",
        }
    }
}

/// A successful translation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Translation {
    /// The guest-physical address.
    pub phys: u64,
    /// Size of the page that maps it (4 KiB, 2 MiB, 4 MiB or 1 GiB).
    pub page_size: u64,
    /// The level of the entry that mapped it (1 for a 4 KiB page).
    pub level: u8,
}

/// Why a translation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TranslateError {
    /// An entry on the walk is not present.
    #[error("virtual address {va:#x}: level-{level} entry at {entry_addr:#x} is not present ({entry:#x})")]
    NotPresent {
        /// The virtual address.
        va: u64,
        /// Its level (5 PML5 .. 1 page table).
        level: u8,
        /// Guest-physical address of the entry.
        entry_addr: u64,
        /// The entry.
        entry: u64,
    },
    /// The address is not canonical (or beyond 32 bits in a 32-bit mode).
    #[error("virtual address {va:#x} is not valid in {mode} paging")]
    BadAddress {
        /// The virtual address.
        va: u64,
        /// The mode's name.
        mode: &'static str,
    },
    /// A page-table page could not be read.
    #[error("virtual address {va:#x}: reading the level-{level} table: {source}")]
    Read {
        /// The virtual address.
        va: u64,
        /// The level being read.
        level: u8,
        /// The error.
        source: ReadError,
    },
}

/// Translates `va` with the paging structures rooted at `cr3` (the register value: for PAE
/// bits 31:5 address the PDPT, otherwise bits 51:12 the top table).
///
/// # Errors
///
/// [`TranslateError::NotPresent`] with the level of the first non-present entry, an invalid
/// address for the mode, or a read error (e.g. a page table in a hole).
pub fn translate(
    mem: &(impl PhysMemory + ?Sized),
    mode: PagingMode,
    cr3: u64,
    va: u64,
) -> Result<Translation, TranslateError> {
    let bad = || TranslateError::BadAddress { va, mode: mode.name() };
    let read = |level: u8, addr: u64, width: usize| -> Result<u64, TranslateError> {
        let mut b = [0u8; 8];
        mem.read_phys(addr, &mut b[..width]).map_err(|source| TranslateError::Read { va, level, source })?;
        Ok(u64::from_le_bytes(b))
    };
    let not_present = |level, entry_addr, entry| TranslateError::NotPresent { va, level, entry_addr, entry };
    match mode {
        PagingMode::None => Ok(Translation { phys: va, page_size: 4096, level: 0 }),
        PagingMode::TwoLevel { pse } => {
            if va >> 32 != 0 {
                return Err(bad());
            }
            let pde_addr = (cr3 & 0xFFFF_F000) + ((va >> 22) & 0x3FF) * 4;
            let pde = read(2, pde_addr, 4)?;
            if pde & PRESENT == 0 {
                return Err(not_present(2, pde_addr, pde));
            }
            if pse && pde & PAGE_SIZE_BIT != 0 {
                // PSE-36: bits 20:13 of the entry are address bits 39:32.
                let base = (pde & 0xFFC0_0000) | ((pde >> 13) & 0xFF) << 32;
                return Ok(Translation { phys: base | (va & 0x3F_FFFF), page_size: 4 << 20, level: 2 });
            }
            let pte_addr = (pde & 0xFFFF_F000) + ((va >> 12) & 0x3FF) * 4;
            let pte = read(1, pte_addr, 4)?;
            if pte & PRESENT == 0 {
                return Err(not_present(1, pte_addr, pte));
            }
            Ok(Translation { phys: (pte & 0xFFFF_F000) | (va & 0xFFF), page_size: 4096, level: 1 })
        }
        PagingMode::Pae => {
            if va >> 32 != 0 {
                return Err(bad());
            }
            let pdpte_addr = (cr3 & 0xFFFF_FFE0) + ((va >> 30) & 3) * 8;
            let pdpte = read(3, pdpte_addr, 8)?;
            if pdpte & PRESENT == 0 {
                return Err(not_present(3, pdpte_addr, pdpte));
            }
            walk_64(&read, &not_present, pdpte & ADDR_MASK_64, va, 2)
        }
        PagingMode::FourLevel | PagingMode::FiveLevel => {
            let top: u8 = if mode == PagingMode::FiveLevel { 5 } else { 4 };
            let bits = 12 + 9 * u32::from(top);
            // Canonical: bits 63..bits-1 all equal.
            let high = va.cast_signed() >> (bits - 1);
            if high != 0 && high != -1 {
                return Err(bad());
            }
            walk_64(&read, &not_present, cr3 & ADDR_MASK_64, va, top)
        }
    }
}

/// Walks 8-byte entries from the table at `table` (level `level`) down to the page.
fn walk_64(
    read: &dyn Fn(u8, u64, usize) -> Result<u64, TranslateError>,
    not_present: &dyn Fn(u8, u64, u64) -> TranslateError,
    mut table: u64,
    va: u64,
    mut level: u8,
) -> Result<Translation, TranslateError> {
    loop {
        let shift = 12 + 9 * u32::from(level - 1);
        let entry_addr = table + ((va >> shift) & 0x1FF) * 8;
        let entry = read(level, entry_addr, 8)?;
        if entry & PRESENT == 0 {
            return Err(not_present(level, entry_addr, entry));
        }
        // A large page at the PDPT (1 GiB) or the page directory (2 MiB); a page at level 1.
        if level == 1 || (matches!(level, 2 | 3) && entry & PAGE_SIZE_BIT != 0) {
            let page_size = 1u64 << shift;
            let base = entry & ADDR_MASK_64 & !(page_size - 1);
            return Ok(Translation { phys: base | (va & (page_size - 1)), page_size, level });
        }
        table = entry & ADDR_MASK_64;
        level -= 1;
    }
}
