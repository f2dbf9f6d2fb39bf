//! The subcommands.

pub mod demo;
#[cfg(feature = "xen")]
pub mod dump;
pub mod extract;
pub mod inspect;
pub mod net;
pub mod restore;
pub mod save;
pub mod verify;
