//! The rules Xen's restorer applies to a decoded domain, in one place for both directions.
//!
//! `sr-restore` calls these functions while it reads a stream (per record and at END);
//! `sr-save` calls the same functions on the state, page types, populated set and page
//! bodies it is about to write, and refuses before the output is committed. So what the
//! saver writes, the restorer accepts, and a refusal reads the same on both sides: the
//! [`Violation`] text is the rule, each side only says where (a record and byte offset on
//! restore, "restore would reject this domain" on save).
//!
//! The rules are pure functions of a [`DomainState`] (which
//! carries the page types), a populated-pfn predicate and, for the page-contents rules, the
//! bodies of a few pages. Each names its place in Xen's sources
//! (`tools/libs/guest/xg_sr_restore_x86_pv.c`, `xg_sr_restore_x86_hvm.c`).
//!
//! ```
//! use sr_format::state::DomainState;
//! use sr_format::DomainType;
//!
//! // An HVM domain without an HVM context fails at END, as in Xen.
//! let state = DomainState::new(DomainType::X86_HVM, 12);
//! let err = sr_rules::check_end(&state, &|_| false, None).unwrap_err();
//! assert_eq!(err.to_string(), "no HVM_CONTEXT record in the stream");
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod hvm;
pub mod hvm_context;
pub mod pv;
pub mod pv_vcpu;
mod records;
mod violation;
pub mod x86;

use sr_format::DomainType;
use sr_format::state::DomainState;

pub use records::{check_record, platform_info};
pub use violation::{Frame, FrameProblem, Violation};

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// Reads the final contents of one page into `out` (one page long); `false` when the page
/// is not available (a verification without a destination), which skips the checks that
/// need it.
pub type PageReader<'a> = &'a dyn Fn(u64, &mut [u8]) -> bool;

/// Checks of page contents that could not be made because the page bodies were not at hand.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Skipped {
    /// The xenstore and console frames named by the x86 PV start_info page (Xen's
    /// `process_start_info`) were not checked.
    pub start_info: bool,
}

/// What must hold at END for a domain of `state.domain_type`: the records it requires and,
/// for x86 PV, the frames they name (validation rows 36, 44-46 and the start_info frames).
///
/// `populated` says whether a pfn is populated in the restored domain; `pages` reads a
/// page's final contents when they are at hand.
///
/// # Errors
/// The first rule broken, in Xen's order.
pub fn check_end(
    state: &DomainState,
    populated: &dyn Fn(u64) -> bool,
    pages: Option<PageReader<'_>>,
) -> Result<Skipped, Violation> {
    match state.domain_type {
        DomainType::X86_PV => pv::check_end(state, populated, pages),
        _ => hvm::check_end(state).map(|()| Skipped::default()),
    }
}
