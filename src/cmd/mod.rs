//! The subcommands.

pub mod demo;
#[cfg(feature = "xen")]
pub mod dump;
pub mod diff;
pub mod extract;
pub mod grep;
pub mod inspect;
pub mod net;
pub mod read;
pub mod restore;
pub mod save;
pub mod verify;
