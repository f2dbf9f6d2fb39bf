//! The send/receive handshake: any bytes on the back channel give messages or an error,
//! never a panic, and never more than one line's bytes per message.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = xsr::transfer::fuzz_handshake(data);
});
