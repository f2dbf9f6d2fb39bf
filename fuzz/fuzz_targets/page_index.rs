//! The pfn -> page-body index of `sr-image`: built three ways (bodies skipped, read, seeked
//! past) with the same result, every invariant checked, every page read.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = sr_image::fuzzing::fuzz_index(data);
});
