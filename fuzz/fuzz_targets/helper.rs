//! libxl's save-helper protocol: any bytes decode as helper messages (both modes) or a clean
//! error, every decoded message encodes back to the same frame, and any NUL-separated bytes
//! parse as the helper's command line or a clean error; never a panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = sr_proto::helper::fuzz_helper(data);
});
