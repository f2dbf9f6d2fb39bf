//! The Xen domain save image and live-migration stream, byte for byte.
//!
//! This crate describes the three layers of a Xen save image:
//!
//! * the **libxc migration stream** v2/v3 ("libxenguest"): a 24-byte big-endian
//!   [`ImageHeader`], a 16-byte [`DomainHeader`], then 8-byte-aligned records
//!   ([`RecordHeader`], [`RecordType`]) whose bodies have typed views in [`body`];
//! * the **libxl stream** ([`libxl`]) that wraps it with a 16-byte header and records such as
//!   the device-model state;
//! * the **`xl` save file** header ([`xl`]) with the domain configuration, or the header
//!   **`virsh save`** writes for a libxl domain ([`virsh`]) with the domain XML.
//!
//! Wire structs are `#[repr(C)]` [`zerocopy`](https://docs.rs/zerocopy) types with explicit byte-order fields, so they
//! parse from any offset on any host. Reading goes through one pull parser,
//! [`StreamReader`], over a slice (no copies) or any [`std::io::Read`] (one reused buffer);
//! writing through [`RecordWriter`], which sends PAGE_DATA with vectored writes. Every length
//! is checked before it is used, and every error says where ([`Error`]).
//!
//! ```
//! use sr_format::{DomainHeader, DomainType, ImageHeader, Item, RecordType, RecordWriter, StreamReader};
//!
//! let mut w = RecordWriter::new(Vec::new());
//! w.write_headers(&ImageHeader::new(3), &DomainHeader::new(DomainType::X86_HVM, 12, 4, 17))?;
//! w.write_record(RecordType::END, &[])?;
//! let bytes = w.into_inner();
//!
//! let mut r = StreamReader::from_slice(&bytes);
//! let mut types = Vec::new();
//! while let Some(item) = r.next_item()? {
//!     if let Item::Record(rec) = item {
//!         types.push(rec.rtype);
//!     }
//! }
//! assert_eq!(types, [RecordType::END]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod body;
mod compression;
pub mod cpu;
mod error;
mod image;
pub mod libxl;
mod page;
mod reader;
mod record;
mod source;
pub mod state;
pub mod virsh;
mod walk;
mod writer;
pub mod xl;

pub use compression::{COMPRESSION_MAGIC_LEN, Compression};
pub use error::{Error, Result};
pub use image::{
    DomainHeader, DomainType, IHDR_ID, IHDR_MARKER, IHDR_OPT_BIG_ENDIAN, IHDR_VERSION, IHDR_VERSION_MIN, ImageHeader,
    Strictness,
};
pub use page::{PAGE_TYPE_SHIFT, PFN_MASK, PFN_MAX, PFN_RESERVED_MASK, PageType, PfnEntry};
pub use reader::{Item, Layer, StreamReader};
pub use record::{
    REC_ALIGN, REC_LENGTH_MAX, Record, RecordHeader, RecordType, encode_record, padded_len, padding_len, record_bytes,
};
pub use source::{ByteSource, ReadSource, SeekSource, SliceSource, SourceError};
pub use walk::{WalkSummary, walk, walk_with};
pub use writer::{IOV_MAX, RecordWriter};

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
