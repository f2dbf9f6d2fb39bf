//! bindgen's bindings to libxl and libxentoollog (see `build.rs`): FFI declarations only.

#![allow(
    unsafe_code,
    unsafe_op_in_unsafe_fn,
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    dead_code,
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    clippy::all,
    clippy::undocumented_unsafe_blocks,
    clippy::multiple_unsafe_ops_per_block,
    clippy::pedantic
)]

include!(concat!(env!("OUT_DIR"), "/libxl.rs"));
