//! A whole-stream structural walk: every layer, header, record and body shape, with no
//! semantics. It is what the fuzz target drives and a quick structural check for tools.

use crate::body::RecordBody;
use crate::error::Result;
use crate::image::Strictness;
use crate::libxl::LibxlRecordType;
use crate::reader::{Item, Layer, StreamReader};

/// What a walk saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WalkSummary {
    /// The outermost layer.
    pub layer: Option<Layer>,
    /// libxc records read, END included.
    pub records: u64,
    /// libxl records read.
    pub libxl_records: u64,
    /// PAGE_DATA entries.
    pub pfn_entries: u64,
    /// Page bodies.
    pub data_pages: u64,
    /// Bytes consumed (bytes after the outermost END are not read).
    pub bytes: u64,
}

/// Walks a whole stream held in memory, leniently.
pub fn walk(data: &[u8]) -> Result<WalkSummary> {
    walk_with(data, Strictness::Lenient)
}

/// Walks a whole stream held in memory with the given strictness.
pub fn walk_with(data: &[u8], strictness: Strictness) -> Result<WalkSummary> {
    let mut reader = StreamReader::from_slice(data).strictness(strictness);
    let mut summary = WalkSummary::default();
    let mut page_shift = 12;
    while let Some(item) = reader.next_item()? {
        match item {
            Item::DomainHeader { header, .. } => page_shift = header.page_shift.get(),
            Item::Record(rec) => {
                summary.records += 1;
                if let RecordBody::PageData(p) = RecordBody::parse(&rec, page_shift, strictness)? {
                    summary.pfn_entries += p.count() as u64;
                    summary.data_pages += p.data_pages() as u64;
                }
            }
            Item::LibxlRecord(rec) => {
                summary.libxl_records += 1;
                match rec.rtype {
                    LibxlRecordType::EMULATOR_XENSTORE_DATA => {
                        rec.xenstore_pairs()?;
                    }
                    LibxlRecordType::EMULATOR_CONTEXT => {
                        rec.emulator()?;
                    }
                    _ => {}
                }
            }
            Item::Xl { .. } | Item::Virsh { .. } | Item::LibxlHeader { .. } | Item::ImageHeader { .. } => {}
        }
    }
    summary.layer = reader.layer();
    summary.bytes = reader.offset();
    Ok(summary)
}
