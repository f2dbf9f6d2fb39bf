//! What a restore reports besides the domain state: statistics and warnings.

use std::collections::BTreeMap;

use sr_format::{Layer, PageType, RecordType};

/// Most warnings kept; later ones are only counted.
pub const MAX_WARNINGS: usize = 1000;
/// Most verify mismatches listed by pfn; later ones are only counted.
pub const MAX_MISMATCH_PFNS: usize = 1024;

/// Something the stream did that Xen's restorer ignores but a careful reader should know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    /// Absolute offset of the item concerned.
    pub offset: u64,
    /// Record index, when about a libxc record.
    pub index: Option<u64>,
    /// What happened.
    pub message: String,
}

/// Counters gathered while restoring.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// libxc records by type.
    pub records: BTreeMap<RecordType, u64>,
    /// libxl records read.
    pub libxl_records: u64,
    /// PAGE_DATA entries by page type.
    pub pages_by_type: BTreeMap<PageType, u64>,
    /// Page bodies applied (written, or compared in verify mode).
    pub data_pages: u64,
    /// Bytes of page bodies.
    pub data_bytes: u64,
    /// Lowest and highest pfn seen in PAGE_DATA.
    pub pfn_range: Option<(u64, u64)>,
    /// Pages compared after a VERIFY record.
    pub verified_pages: u64,
    /// Pages that differed after a VERIFY record.
    pub verify_mismatches: u64,
    /// The first [`MAX_MISMATCH_PFNS`] pfns that differed.
    pub mismatch_pfns: Vec<u64>,
    /// Checkpoints completed.
    pub checkpoints: u64,
    /// Whether the result is the last complete checkpoint of a stream that broke.
    pub failed_over: bool,
    /// Warnings not kept because [`MAX_WARNINGS`] were already kept.
    pub warnings_dropped: u64,
    /// Bytes of stream consumed.
    pub bytes: u64,
}

/// The outer layers of the stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Container {
    /// The outermost layer.
    pub layer: Layer,
    /// The `xl` configuration (JSON with its NUL), for `xl` files.
    pub xl_config: Option<Vec<u8>>,
    /// libxl header option "converted from legacy".
    pub libxl_legacy: bool,
}
