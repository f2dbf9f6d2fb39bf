//! Rules on page contents a restore or a verification could not check.

/// The page-contents rules (`sr_rules::pv`) that were not checked, and why.
///
/// A restore into memory checks them all. A verification reads no destination, so it
/// cannot read the start_info page at END; one that skips page bodies (`xsr verify` of a
/// file) cannot check page tables either.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SkippedChecks {
    /// x86 PV page-table pages (PAGE_DATA entries of types L1TAB..L4TAB) whose entries were
    /// not checked because their bodies were skipped.
    pub page_tables: u64,
    /// Whether the x86 PV start_info page's xenstore and console frames were not checked
    /// (no destination to read the page from).
    pub start_info: bool,
}

impl SkippedChecks {
    /// Whether anything was skipped.
    pub fn any(&self) -> bool {
        self.page_tables > 0 || self.start_info
    }
}
