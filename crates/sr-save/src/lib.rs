//! Saving a Xen guest as a migration stream: the libxc stream v2/v3, optionally wrapped in
//! the libxl stream and the `xl` save-file header.
//!
//! A [`Guest`] supplies memory (any [`sr_memory::GuestMemory`]), page types, the non-memory
//! state ([`sr_format::state::DomainState`], the type the restorer produces, so a round trip
//! compares with `==`) and pause/resume. A [`Saver`] writes it to any `Write + Send`:
//!
//! * record order per domain type exactly as Xen's saver (x86 PV, x86 HVM, PVH written as
//!   type 3 or as HVM, ARM with 4/16/64 KiB pages);
//! * memory in PAGE_DATA batches prepared by a worker pool and written in order by a writer
//!   thread, byte-identical for any worker count, with bounded memory and a zero-copy path
//!   for backends that lend pages ([`sr_memory::GuestMemory::lend_pages`]);
//! * non-live or live pre-copy ([`PrecopyPolicy`]), an optional VERIFY pass, checkpointed
//!   streams ([`Saver::save_checkpointed`]);
//! * progress as [`SaveEvent`]s, and on any failure a clean [`SaveError`] with no END
//!   written and no thread left behind.
//!
//! ```
//! use std::sync::Mutex;
//! use sr_format::state::DomainState;
//! use sr_format::{DomainType, PageType};
//! use sr_memory::{GuestMemory, RamMemory};
//! use sr_save::{Guest, SaveError, SaveOptions, Saver};
//!
//! struct Tiny { mem: RamMemory, state: DomainState }
//!
//! impl Guest for Tiny {
//!     fn memory(&self) -> &dyn GuestMemory { &self.mem }
//!     fn domain_type(&self) -> DomainType { DomainType::X86_HVM }
//!     fn page_types(&self, pfns: &[u64], out: &mut [PageType]) -> Result<(), SaveError> {
//!         for (p, t) in pfns.iter().zip(out) { *t = self.state.page_type(*p) }
//!         Ok(())
//!     }
//!     fn pause(&self) -> Result<(), SaveError> { Ok(()) }
//!     fn state(&self) -> Result<DomainState, SaveError> { Ok(self.state.clone()) }
//! }
//!
//! let mem = RamMemory::new(12, 64)?;
//! mem.write_pages(&[0, 1], &[7u8; 8192])?;
//! let mut state = DomainState::new(DomainType::X86_HVM, 12);
//! // The HVM context: the HEADER save record Xen loads (HVM_FILE_MAGIC, version 1), then END.
//! let header = [&0x0018_0000_0001u64.to_le_bytes()[..], &0x5438_1286u32.to_le_bytes(), &1u32.to_le_bytes(), &[0; 16]];
//! state.hvm_context = Some([&header.concat()[..], &[0; 8]].concat());
//! let guest = Tiny { mem, state };
//!
//! let mut out = Vec::new();
//! let stats = Saver::new(SaveOptions::default()).save(&guest, &mut out)?;
//! assert_eq!(stats.bytes, out.len() as u64);
//! sr_format::walk_with(&out, sr_format::Strictness::Strict)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod domain;
mod error;
mod events;
mod guest;
mod live;
mod options;
mod output;
mod pipeline;
mod rules;
mod saver;

pub use error::SaveError;
pub use events::{IterationStats, Rate, SaveEvent, SaveStats};
pub use guest::Guest;
pub use options::{Container, DEFAULT_BATCH_PFNS, PrecopyPolicy, SaveOptions, ZeroPages, max_batch_pfns};
pub use saver::Saver;

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
