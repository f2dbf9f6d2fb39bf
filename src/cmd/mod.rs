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
pub mod verify;
