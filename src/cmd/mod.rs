//! The subcommands.

pub mod demo;
pub mod extract;
pub mod inspect;
pub mod net;
pub mod restore;
pub mod save;
pub mod verify;
