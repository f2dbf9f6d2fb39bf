//! Whole libxc migration stream: walk every record and discard the results.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = sr_format::walk(data);
});
