//! The `xsr` command-line tool's internals: subcommands and the domain image directory. The
//! libraries (`sr-format`, `sr-memory`, `sr-save`, `sr-restore`, `sr-image`, `sr-dump`) know
//! nothing of this crate.
#![warn(missing_docs)]

// The command line (clap's derive): documented by `xsr --help` and the man pages; hidden here
// because clap's derived trait impls carry doc links to clap that do not resolve under
// `--no-deps`.
#[doc(hidden)]
pub mod cli;
pub mod cmd;
pub mod dir_guest;
#[cfg(feature = "dist")]
pub mod dist;
#[doc(hidden)]
pub mod fuzzing;
pub mod image_dir;
pub mod input;
pub mod mapped;
pub mod outcome;
pub mod output;
pub mod pipe;
pub mod progress;
pub mod size;
pub mod synthetic;
pub mod text;
#[cfg(feature = "tls")]
pub mod tls;
/// Built without the `tls` feature: the TLS flags are refused.
#[cfg(not(feature = "tls"))]
#[path = "tls_off.rs"]
pub mod tls;
pub mod transfer;

/// The example of `docs/library.md`, compiled as a doc test (`no_run`: it reads `guest.save`).
#[cfg(doctest)]
#[doc = include_str!("../docs/library.md")]
pub struct DocsLibraryDoctests;
