//! The `xsr` command-line tool's internals: subcommands, the domain image directory, the
//! ELF core writer. The libraries (`sr-format`, `sr-memory`, `sr-save`, `sr-restore`) know
//! nothing of this crate.
#![warn(missing_docs)]

pub mod cmd;
pub mod dir_guest;
pub mod elf;
#[doc(hidden)]
pub mod fuzzing;
pub mod image_dir;
pub mod input;
pub mod mapped;
pub mod progress;
pub mod size;
pub mod synthetic;
