//! The subcommands.

pub mod extract;
pub mod inspect;
pub mod restore;
pub mod verify;
