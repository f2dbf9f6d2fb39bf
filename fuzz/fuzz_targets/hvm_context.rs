//! HVM_CONTEXT blob: decode every Xen 4.17 save record into its typed form; whatever decodes
//! must encode back to the same bytes, entry by entry and as a whole, and decode again to the
//! same records.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(records) = sr_format::body::hvm_context::decode(data, 0) {
        let out = records.to_bytes();
        assert_eq!(out, data);
        for e in &records.entries {
            let at = e.offset as usize + 8;
            if e.save_type() != sr_format::body::hvm_context::HvmSaveType::END {
                assert_eq!(e.payload(), &data[at..at + e.descriptor.length.get() as usize]);
            }
            let _ = e.cpu_as_loaded();
        }
        let again = sr_format::body::hvm_context::decode(&out, 0).expect("emitted blob decodes");
        assert_eq!(again, records);
        let _ = records.vcpu_regs();
    }
});
