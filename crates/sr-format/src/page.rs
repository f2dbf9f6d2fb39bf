//! PAGE_DATA pfn words and page types.
//!
//! A pfn word is a little-endian u64: bits 0-51 pfn, bits 52-59 reserved, bits 60-63 the page
//! type (Xen's `XEN_DOMCTL_PFINFO_*` nibble).

use core::fmt;

/// Mask of the pfn field of a pfn word.
pub const PFN_MASK: u64 = 0x000F_FFFF_FFFF_FFFF;
/// Mask of the reserved bits 52-59 of a pfn word.
pub const PFN_RESERVED_MASK: u64 = 0x0FF0_0000_0000_0000;
/// Shift of the page-type nibble in a pfn word.
pub const PAGE_TYPE_SHIFT: u32 = 60;
/// Largest pfn a pfn word can carry.
pub const PFN_MAX: u64 = PFN_MASK;

/// A page type: the high nibble of a pfn word.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct PageType(u8);

impl PageType {
    /// Ordinary page.
    pub const NOTAB: PageType = PageType(0x0);
    /// PV L1 page table.
    pub const L1TAB: PageType = PageType(0x1);
    /// PV L2 page table.
    pub const L2TAB: PageType = PageType(0x2);
    /// PV L3 page table.
    pub const L3TAB: PageType = PageType(0x3);
    /// PV L4 page table.
    pub const L4TAB: PageType = PageType(0x4);
    /// The pin bit (LPINTAB); alone it is not a valid type.
    pub const PINNED: u8 = 0x8;
    /// Pinned L1 page table.
    pub const L1TAB_PINNED: PageType = PageType(0x9);
    /// Pinned L2 page table.
    pub const L2TAB_PINNED: PageType = PageType(0xA);
    /// Pinned L3 page table.
    pub const L3TAB_PINNED: PageType = PageType(0xB);
    /// Pinned L4 page table.
    pub const L4TAB_PINNED: PageType = PageType(0xC);
    /// Broken page: no data, not populated.
    pub const BROKEN: PageType = PageType(0xD);
    /// Allocate-only page: no data, populated (zeroed).
    pub const XALLOC: PageType = PageType(0xE);
    /// Invalid / unmapped page: no data, not populated.
    pub const XTAB: PageType = PageType(0xF);

    /// The type with nibble `n` (only the low four bits are kept).
    pub const fn from_nibble(n: u8) -> Self {
        PageType(n & 0xF)
    }

    /// The nibble.
    pub const fn nibble(self) -> u8 {
        self.0
    }

    /// Whether the format defines this nibble (0x5..=0x8 are reserved).
    pub const fn is_known(self) -> bool {
        !matches!(self.0, 0x5..=0x8)
    }

    /// Whether a page body follows in the record (NOTAB and page tables, pinned or not).
    pub const fn has_data(self) -> bool {
        self.is_known() && (self.0 & 0x7) <= 4
    }

    /// Whether restore allocates memory for the pfn (data-bearing types and XALLOC).
    pub const fn populates(self) -> bool {
        self.has_data() || self.0 == Self::XALLOC.0
    }

    /// Whether this is a PV page table (L1-L4, pinned or not).
    pub const fn is_page_table(self) -> bool {
        self.is_known() && matches!(self.0 & 0x7, 1..=4)
    }

    /// Whether this is a pinned page table.
    pub const fn is_pinned(self) -> bool {
        self.is_page_table() && self.0 & Self::PINNED != 0
    }

    /// The Xen name of a known type, e.g. "L1TAB|PINNED".
    pub const fn name(self) -> &'static str {
        match self.0 {
            0x0 => "NOTAB",
            0x1 => "L1TAB",
            0x2 => "L2TAB",
            0x3 => "L3TAB",
            0x4 => "L4TAB",
            0x9 => "L1TAB|PINNED",
            0xA => "L2TAB|PINNED",
            0xB => "L3TAB|PINNED",
            0xC => "L4TAB|PINNED",
            0xD => "BROKEN",
            0xE => "XALLOC",
            0xF => "XTAB",
            _ => "Reserved",
        }
    }

    /// Parses a name as printed by [`name`](Self::name).
    pub fn from_name(name: &str) -> Option<Self> {
        (0..16u8).map(PageType).find(|t| t.is_known() && t.name() == name)
    }
}

impl fmt::Display for PageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_known() { f.write_str(self.name()) } else { write!(f, "Reserved({:#x})", self.0) }
    }
}

impl fmt::Debug for PageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PageType({:#x} {})", self.0, self)
    }
}

/// A decoded pfn word.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct PfnEntry {
    /// The pfn (52 bits).
    pub pfn: u64,
    /// The page type.
    pub page_type: PageType,
    /// Reserved bits 52-59, shifted down (ignored by restore, reported by strict checks).
    pub reserved: u8,
}

impl PfnEntry {
    /// An entry with zero reserved bits.
    pub const fn new(pfn: u64, page_type: PageType) -> Self {
        Self { pfn, page_type, reserved: 0 }
    }

    /// Decodes a pfn word.
    pub const fn decode(word: u64) -> Self {
        Self {
            pfn: word & PFN_MASK,
            page_type: PageType((word >> PAGE_TYPE_SHIFT) as u8),
            reserved: ((word & PFN_RESERVED_MASK) >> 52) as u8,
        }
    }

    /// Encodes the pfn word (the pfn is masked to 52 bits).
    pub const fn encode(self) -> u64 {
        (self.pfn & PFN_MASK) | ((self.reserved as u64) << 52) | ((self.page_type.0 as u64) << PAGE_TYPE_SHIFT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predicates_match_the_spec_table() {
        // (nibble, known, has_data, populates)
        let table = [
            (0x0, true, true, true),
            (0x1, true, true, true),
            (0x2, true, true, true),
            (0x3, true, true, true),
            (0x4, true, true, true),
            (0x5, false, false, false),
            (0x6, false, false, false),
            (0x7, false, false, false),
            (0x8, false, false, false),
            (0x9, true, true, true),
            (0xA, true, true, true),
            (0xB, true, true, true),
            (0xC, true, true, true),
            (0xD, true, false, false),
            (0xE, true, false, true),
            (0xF, true, false, false),
        ];
        for (n, known, data, pop) in table {
            let t = PageType::from_nibble(n);
            assert_eq!((t.is_known(), t.has_data(), t.populates()), (known, data, pop), "nibble {n:#x}");
        }
        assert!(PageType::L4TAB_PINNED.is_pinned());
        assert!(!PageType::L4TAB.is_pinned());
        assert!(!PageType::XTAB.is_page_table());
        assert_eq!(PageType::from_name("L1TAB|PINNED"), Some(PageType::L1TAB_PINNED));
        assert_eq!(PageType::from_name("Reserved"), None);
    }

    #[test]
    fn golden_pfn_words() {
        assert_eq!(PfnEntry::new(0x1234, PageType::L1TAB_PINNED).encode(), 0x9000_0000_0000_1234);
        assert_eq!(PfnEntry::new(PFN_MAX, PageType::XTAB).encode(), 0xF00F_FFFF_FFFF_FFFF);
        let e = PfnEntry::decode(0xE0A0_0000_0000_0007);
        assert_eq!(e, PfnEntry { pfn: 7, page_type: PageType::XALLOC, reserved: 0x0A });
        assert_eq!(e.encode(), 0xE0A0_0000_0000_0007);
    }
}
