//! A domain image directory (domain.json, blobs, memory.img; see `xsr::fuzzing`) fed to the
//! saver as `xsr save` does: it must give a clear error or a stream that `verify --strict`
//! accepts and a restore restores (`xsr::fuzzing::fuzz_save` panics otherwise). The same
//! function replays `tests/corpus/save/` in the ordinary test suite.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = xsr::fuzzing::fuzz_save(data);
});
