//! Whole restore of any input (xl file, libxl stream or libxc stream): lenient, strict and
//! checkpointed restores into a capped `RamMemory`, plus verification from a slice and from a
//! reader, cross-checked by `sr_restore::fuzzing::fuzz_restore` (which panics when the modes
//! disagree). The same function replays `tests/corpus/restore/` in the ordinary test suite.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = sr_restore::fuzzing::fuzz_restore(data);
});
