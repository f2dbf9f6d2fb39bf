//! HVM_CONTEXT blob: decode the typed save records; whatever decodes must emit the same bytes.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(records) = sr_format::body::hvm_context::decode(data, 0) {
        let mut out = Vec::with_capacity(data.len());
        records.emit(&mut out);
        assert_eq!(out, data);
        let _ = records.vcpu_regs();
    }
});
