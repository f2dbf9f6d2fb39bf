//! xl's migration handshake: any bytes on the sender's ack channel (or the receiver's stream
//! channel) end in the outcome a reference reading of them gives, never in a panic, and no
//! side reads past the protocol's messages.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = sr_proto::xl_migrate::fuzz_xl_migrate(data);
});
