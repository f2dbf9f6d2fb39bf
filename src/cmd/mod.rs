//! The subcommands.

pub mod demo;
pub mod diff;
#[cfg(feature = "xen")]
pub mod dump;
pub mod extract;
pub mod grep;
pub mod inspect;
pub mod net;
pub mod read;
pub mod restore;
pub mod save;
#[cfg(feature = "xen")]
pub mod save_domain;
pub mod verify;
pub mod xen;
