//! The toolstack protocols that travel beside a Xen migration stream.
//!
//! A libxc stream never travels alone: libxl runs the memory/CPU half of a save or restore
//! in a helper process (`libxl-save-helper`, or the program named by `$LIBXL_SAVE_HELPER`)
//! and talks to it over a pipe pair, and `xl migrate` wraps the stream in a handshake that
//! hands the guest over so that exactly one copy runs at any moment. This crate holds those
//! protocols as codecs: pure functions over bytes, with no Xen library behind them, so they
//! build and are tested (and fuzzed) on any machine.
//!
//! Sources (Xen 4.17): `tools/libs/light/libxl_save_msgs_gen.pl`,
//! `tools/libs/light/libxl_save_helper.c`, `tools/libs/light/libxl_save_callout.c`,
//! `tools/xl/xl_migrate.c` and `tools/xl/xl.h`.

#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod helper;
pub mod xl_migrate;

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
