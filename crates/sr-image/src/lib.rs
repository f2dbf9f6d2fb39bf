//! Random access to guest memory in a Xen domain save image, without restoring it.
//!
//! [`PageIndex`] maps each pfn to the file offset of the page body a restore would leave
//! there (later passes win, VERIFY passes and incomplete checkpoints change nothing, XALLOC
//! reads as zeros, XTAB/BROKEN pfns are absent). It is built in one pass over headers and pfn
//! words, page bodies seeked past, and costs 16 bytes per populated page.
//! [`GuestImage`] pairs it with the stream's bytes (a slice, an mmap or a [`std::fs::File`]
//! read with `pread`) for guest-physical reads of any length and alignment, and
//! [`translate`] walks x86 page tables for guest-virtual addresses ([`vcpu_paging`] finds a
//! vcpu's CR3 and paging mode in the stream: PV vcpu contexts, HVM CPU save records).
//!
//! This crate stands on `sr-format` only: it follows restore's page semantics without
//! restore's validation (run `sr-restore`'s verify for that).
//!
//! ```
//! use sr_format::{DomainHeader, DomainType, ImageHeader, PageType, PfnEntry, RecordType, RecordWriter};
//! use sr_image::{GuestImage, Holes, ReadError};
//!
//! let mut w = RecordWriter::new(Vec::new());
//! w.write_headers(&ImageHeader::new(3), &DomainHeader::new(DomainType::X86_HVM, 12, 4, 17))?;
//! let words: Vec<u8> = [PfnEntry::new(1, PageType::NOTAB), PfnEntry::new(2, PageType::NOTAB)]
//!     .iter()
//!     .flat_map(|e| e.encode().to_le_bytes())
//!     .collect();
//! w.write_page_data(2, 2, 4096, &words, &[&[0xAA; 4096], &[0xBB; 4096]])?;
//! w.write_record(RecordType::END, &[])?;
//!
//! let image = GuestImage::from_bytes(w.into_inner())?;
//! let mut buf = [0u8; 4];
//! image.read_phys(0x1FFE, &mut buf, Holes::Error)?; // crosses from pfn 1 into pfn 2
//! assert_eq!(buf, [0xAA, 0xAA, 0xBB, 0xBB]);
//! let err = image.read_phys(0x2FFF, &mut buf, Holes::Error).unwrap_err();
//! assert!(matches!(err, ReadError::Hole { addr: 0x3000, pfn: 3 }));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod error;
#[doc(hidden)]
pub mod fuzzing;
mod image;
mod index;
mod paging;
mod translate;

pub use error::{IndexError, ReadError};
pub use image::{Backing, GuestImage, Holes, PhysMemory, SliceBacking};
pub use index::{IndexLimits, MAX_OFFSET, Page, PageIndex, PageLocation, StateRecord};
pub use paging::{PagingError, VcpuPaging, vcpu_paging};
pub use translate::{CR0_PG, CR4_LA57, CR4_PAE, CR4_PSE, EFER_LMA, PagingMode, TranslateError, Translation, translate};
