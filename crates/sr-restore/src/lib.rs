//! Restoring Xen domain save images and migration streams.
//!
//! [`Restorer`] reads a stream from any [`std::io::Read`] or byte slice (through
//! [`sr_format::StreamReader`], which detects the `xl`, libxl and libxc layers), validates it
//! against every rule of Xen's restorer (and, in [strict](sr_format::Strictness::Strict)
//! mode, Xen's Python verifier), dispatches each record to the handler of the stream's domain
//! type (x86 PV, x86 HVM, PVH, ARM), and applies what passed to a [`RestoreTarget`]: any
//! [`sr_memory::GuestMemory`], or a richer destination (a live hypervisor domain) that also takes
//! the stream's moments (STATIC_DATA_END, each state record, END) and each page's type.
//!
//! The result is the domain's [`DomainState`](sr_format::state::DomainState) plus
//! [`Stats`] and [`Warning`]s. Memory use is bounded by one record (plus, for checkpointed
//! streams, the records of one checkpoint) and the page-type map, whatever the guest size.
//!
//! ```
//! use sr_format::{DomainHeader, DomainType, ImageHeader, RecordType, RecordWriter};
//! use sr_restore::{RestoreError, RestoreOptions, Restorer};
//!
//! // An HVM stream with no HVM_CONTEXT is rejected at END, as Xen does.
//! let mut w = RecordWriter::new(Vec::new());
//! w.write_headers(&ImageHeader::new(3), &DomainHeader::new(DomainType::X86_HVM, 12, 4, 17))?;
//! w.write_record(RecordType::STATIC_DATA_END, &[])?;
//! w.write_record(RecordType::END, &[])?;
//! let bytes = w.into_inner();
//! let err = Restorer::new(RestoreOptions::default())
//!     .verify(sr_format::StreamReader::from_slice(&bytes))
//!     .unwrap_err();
//! assert!(matches!(err, RestoreError::Incomplete { offset: 48, .. }));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]

mod domain;
mod engine;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod options;
mod pages;
mod report;
mod skipped;
mod sparse;
mod target;

pub use engine::{NoMemory, Restored, Restorer};
pub use error::{Bound, RestoreError};
pub use options::{RestoreOptions, StreamKind};
pub use report::{Container, MAX_MISMATCH_PFNS, MAX_WARNINGS, Stats, Warning};
pub use skipped::SkippedChecks;
pub use target::{PageBatch, RestoreTarget, TargetError};

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
