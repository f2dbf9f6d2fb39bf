//! CPU state: the typed HVM save records of an HVM_CONTEXT blob (golden offsets from Xen's
//! `arch-x86/hvm/save.h`, exact round trips, hostile lengths) and the registers of x86 PV
//! `vcpu_guest_context`s of both widths; plus the `hvm_context` fuzz seed corpus
//! (`tests/corpus/hvm_context/`), regenerated with
//! `cargo test -p sr-format --test cpu_state -- --ignored generate_seed_corpus`.

use std::path::PathBuf;

use proptest::prelude::*;
use sr_format::Error;
use sr_format::body::hvm_context::{HVM_FILE_MAGIC, HvmSaveRecord, HvmSaveType, decode};
use sr_format::body::{VCPU_CONTEXT_32, VCPU_CONTEXT_64, VcpuFrames, pv_vcpu_regs};

fn put64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn entry(out: &mut Vec<u8>, code: u16, instance: u16, payload: &[u8]) {
    out.extend_from_slice(&code.to_le_bytes());
    out.extend_from_slice(&instance.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(payload);
}

/// A CPU payload with distinct values at Xen's offsets (hvm_hw_cpu, 1032 bytes).
fn cpu_payload(vcpu: u64) -> Vec<u8> {
    let mut c = vec![0u8; 1032];
    for i in 0..16 {
        put64(&mut c, 512 + 8 * i, 0x1000 * vcpu + i as u64); // rax rbx rcx rdx rbp rsi rdi rsp r8..r15
    }
    put64(&mut c, 640, 0xffff_ffff_8100_0000 + vcpu); // rip
    put64(&mut c, 648, 0x246); // rflags
    put64(&mut c, 656, 0x8005_0033); // cr0
    put64(&mut c, 664, 0xdead_0000); // cr2
    put64(&mut c, 672, 0x1234_5000 + (vcpu << 12)); // cr3
    put64(&mut c, 680, 0x3606f0); // cr4
    put32(&mut c, 736, 0x10); // cs_sel
    put32(&mut c, 756, 0x18); // ss_sel
    put32(&mut c, 800, 0x47); // idtr_limit
    put32(&mut c, 804, 0x7f); // gdtr_limit
    put64(&mut c, 832, 0x7f00_0000_0000); // fs_base
    put64(&mut c, 840, 0xffff_8880_0000_0000 + vcpu); // gs_base
    put64(&mut c, 872, 0xffff_fe00_0000_0000); // idtr_base
    put64(&mut c, 880, 0xffff_fe00_0000_1000); // gdtr_base
    put32(&mut c, 888, 0xa9b); // cs_arbytes
    put64(&mut c, 944, 0x5555); // shadow_gs
    put64(&mut c, 960, 0xffff_ffff_8160_0000); // msr_lstar
    put64(&mut c, 992, 0xd01); // msr_efer
    put64(&mut c, 1000, 0x77); // msr_tsc_aux
    put64(&mut c, 1008, 0x1122_3344); // tsc
    put32(&mut c, 1024, 1); // flags
    c
}

/// A blob with every typed record, an opaque PIC, an unknown type and trailing bytes.
fn full_blob() -> Vec<u8> {
    let mut b = Vec::new();
    let mut header = Vec::new();
    header.extend_from_slice(&HVM_FILE_MAGIC.to_le_bytes());
    header.extend_from_slice(&1u32.to_le_bytes());
    header.extend_from_slice(&0x0411_0000u64.to_le_bytes());
    header.extend_from_slice(&0x000a_0655u32.to_le_bytes());
    header.extend_from_slice(&2_596_124u32.to_le_bytes());
    entry(&mut b, 1, 0, &header);
    for v in 0..2u16 {
        entry(&mut b, 2, v, &cpu_payload(u64::from(v)));
    }
    entry(&mut b, 3, 0, &[1, 2, 3, 4, 5, 6, 7, 8]); // PIC: opaque
    let mut lapic = vec![0u8; 16];
    put64(&mut lapic, 0, 0xfee0_0900);
    put32(&mut lapic, 12, 3);
    entry(&mut b, 5, 0, &lapic);
    let mut regs = vec![0u8; 1024];
    put32(&mut regs, 0x20, 0x0100_0000); // APIC ID 1
    entry(&mut b, 6, 0, &regs);
    let mut mtrr = vec![0u8; 240];
    put64(&mut mtrr, 0, 0x0007_0406_0007_0406);
    put64(&mut mtrr, 232, 0xc06);
    entry(&mut b, 14, 0, &mtrr);
    let mut xsave = vec![0u8; 24 + 576];
    put64(&mut xsave, 0, 0x7);
    put64(&mut xsave, 8, 0x3);
    put64(&mut xsave, 16, 0x7);
    entry(&mut b, 16, 0, &xsave);
    entry(&mut b, 19, 0, &42u64.to_le_bytes());
    let mut msr = vec![0u8; 8 + 32];
    put32(&mut msr, 0, 2);
    put32(&mut msr, 8, 0xc000_0103);
    put64(&mut msr, 16, 9);
    put32(&mut msr, 24, 0x48);
    put64(&mut msr, 32, 1);
    entry(&mut b, 20, 0, &msr);
    entry(&mut b, 99, 7, b"unknown to Xen 4.17");
    entry(&mut b, 0, 0, &[]);
    b.extend_from_slice(b"after END");
    b
}

#[test]
fn typed_records_golden() {
    let blob = full_blob();
    let recs = decode(&blob, 1000).unwrap();
    let types: Vec<u16> = recs.entries.iter().map(|e| e.save_type().0).collect();
    assert_eq!(types, [1, 2, 2, 3, 5, 6, 14, 16, 19, 20, 99, 0]);
    assert_eq!(recs.entries[0].offset, 1000);
    assert_eq!(recs.entries[1].offset, 1000 + 32);
    assert_eq!(recs.trailing, b"after END");
    let h = recs.header().unwrap();
    assert_eq!((h.magic.get(), h.version.get(), h.gtsc_khz.get()), (HVM_FILE_MAGIC, 1, 2_596_124));
    let regs = recs.vcpu_regs();
    assert_eq!(regs.len(), 2);
    let (v, r) = regs[1];
    assert_eq!(v, 1);
    assert_eq!((r.rax, r.rbx, r.rsp, r.r15), (0x1000, 0x1001, 0x1007, 0x100f));
    assert_eq!((r.rip, r.rflags), (0xffff_ffff_8100_0001, 0x246));
    assert_eq!((r.cr0, r.cr2, r.cr3, r.cr4), (0x8005_0033, 0xdead_0000, 0x1234_6000, 0x3606f0));
    assert_eq!((r.cs.selector, r.cs.attr, r.ss.selector), (0x10, 0xa9b, 0x18));
    assert_eq!((r.fs.base, r.gs.base, r.kernel_gs_base), (0x7f00_0000_0000, 0xffff_8880_0000_0001, 0x5555));
    assert_eq!((r.idtr.base, r.idtr.limit), (0xffff_fe00_0000_0000, 0x47));
    assert_eq!((r.gdtr.base, r.gdtr.limit), (0xffff_fe00_0000_1000, 0x7f));
    assert_eq!((r.efer, r.lstar), (0xd01, 0xffff_ffff_8160_0000));
    for e in &recs.entries {
        match &e.record {
            HvmSaveRecord::Cpu(c) => {
                assert_eq!((c.msr_tsc_aux.get(), c.tsc.get(), c.flags.get()), (0x77, 0x1122_3344, 1))
            }
            HvmSaveRecord::Lapic(l) => assert_eq!((l.apic_base_msr.get(), l.timer_divisor.get()), (0xfee0_0900, 3)),
            HvmSaveRecord::LapicRegs(r) => assert_eq!(r.reg(0x20), Some(0x0100_0000)),
            HvmSaveRecord::Mtrr(m) => assert_eq!(m.msr_mtrr_def_type.get(), 0xc06),
            HvmSaveRecord::CpuXsave(x) => assert_eq!((x.header.xcr0.get(), x.area.len()), (3, 576)),
            HvmSaveRecord::TscAdjust(t) => assert_eq!(*t, 42),
            HvmSaveRecord::CpuMsr(m) => {
                let got: Vec<(u32, u64)> = m.entries.iter().map(|e| (e.index.get(), e.val.get())).collect();
                assert_eq!(got, [(0xc000_0103, 9), (0x48, 1)]);
            }
            HvmSaveRecord::Opaque(p) => {
                assert!(e.save_type() == HvmSaveType::PIC && p.len() == 8 || e.save_type().0 == 99)
            }
            HvmSaveRecord::Header(_) | HvmSaveRecord::End => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    let mut out = Vec::new();
    recs.emit(&mut out);
    assert_eq!(out, blob);
    assert_eq!(HvmSaveType(14).to_string(), "MTRR");
    assert_eq!(HvmSaveType(99).to_string(), "type 99");
}

#[test]
fn compat_and_short_cpu_records_load_as_xen_loads_them() {
    let full = cpu_payload(0);
    // The 1016-byte compat form: no msr_tsc_aux (at 1000) and no flags/pad.
    let mut compat = full[..1000].to_vec();
    compat.extend_from_slice(&full[1008..1024]);
    let mut b = Vec::new();
    entry(&mut b, 2, 0, &compat);
    entry(&mut b, 2, 1, &full[..700]); // zero-extended
    entry(&mut b, 0, 0, &[]);
    let recs = decode(&b, 0).unwrap();
    let HvmSaveRecord::Cpu(c) = &recs.entries[0].record else { panic!() };
    assert_eq!((c.msr_tsc_aux.get(), c.tsc.get(), c.error_code.get()), (0, 0x1122_3344, 0));
    assert_eq!(c.msr_efer.get(), 0xd01);
    let HvmSaveRecord::Cpu(c) = &recs.entries[1].record else { panic!() };
    assert_eq!((c.cr3.get(), c.rip.get(), c.msr_efer.get()), (0x1234_5000, 0xffff_ffff_8100_0000, 0));
    let mut out = Vec::new();
    recs.emit(&mut out);
    assert_eq!(out, b);
}

#[test]
fn hostile_lengths_are_rejected_with_offsets() {
    let bad = |blob: &[u8]| decode(blob, 100).unwrap_err();
    // No END.
    let mut b = Vec::new();
    entry(&mut b, 3, 0, &[0; 8]);
    assert!(matches!(bad(&b), Error::Truncated { offset: 116, needed: 8, got: 0, .. }));
    // Payload past the end.
    let mut b = Vec::new();
    entry(&mut b, 3, 0, &[0; 8]);
    b.truncate(12);
    assert!(matches!(bad(&b), Error::Truncated { offset: 100, needed: 16, got: 12, .. }));
    // Length field near u32::MAX.
    let mut b = vec![2, 0, 0, 0, 0xff, 0xff, 0xff, 0xff];
    b.extend_from_slice(&[0; 64]);
    assert!(matches!(bad(&b), Error::Truncated { offset: 100, .. }));
    // Wrong fixed sizes.
    for (code, len) in [(1u16, 23usize), (5, 15), (6, 1025), (14, 232), (19, 4), (2, 1040), (16, 23)] {
        let mut b = Vec::new();
        entry(&mut b, 3, 0, &[0; 8]);
        entry(&mut b, code, 2, &vec![0; len]);
        entry(&mut b, 0, 0, &[]);
        let e = bad(&b);
        assert!(
            matches!(e, Error::BadHvmSaveRecord { offset: 116, typecode, instance: 2, length, .. } if typecode == code && length as usize == len),
            "{code}/{len}: {e:?}"
        );
    }
    // CPU_MSR count disagrees with the length.
    let mut msr = vec![0u8; 8 + 16];
    put32(&mut msr, 0, 2);
    let mut b = Vec::new();
    entry(&mut b, 20, 0, &msr);
    entry(&mut b, 0, 0, &[]);
    let e = bad(&b);
    assert!(matches!(&e, Error::BadHvmSaveRecord { typecode: 20, rule, .. } if rule.contains("40")), "{e:?}");
    // END with a payload.
    let mut b = Vec::new();
    entry(&mut b, 0, 0, &[0; 4]);
    assert!(matches!(bad(&b), Error::BadHvmSaveRecord { typecode: 0, length: 4, .. }));
}

#[test]
fn truncations_and_flips_never_panic_and_accepted_blobs_round_trip() {
    let blob = full_blob();
    for cut in 0..blob.len() {
        if let Ok(r) = decode(&blob[..cut], 0) {
            let mut out = Vec::new();
            r.emit(&mut out);
            assert_eq!(out, &blob[..cut]);
        }
    }
    let mut rng = 0x1234_5678_9abc_def1u64;
    for _ in 0..2000 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let mut b = blob.clone();
        let at = (rng as usize) % b.len();
        b[at] ^= 1 << (rng >> 60 & 7);
        if let Ok(r) = decode(&b, 0) {
            let mut out = Vec::new();
            r.emit(&mut out);
            assert_eq!(out, b);
        }
    }
}

fn arb_entry() -> impl Strategy<Value = (u16, u16, Vec<u8>)> {
    let fixed = |code: u16, len: usize| {
        (any::<u16>(), proptest::collection::vec(any::<u8>(), len)).prop_map(move |(i, p)| (code, i, p))
    };
    prop_oneof![
        fixed(1, 24),
        (any::<u16>(), proptest::collection::vec(any::<u8>(), 0..=1032)).prop_map(|(i, p)| (2, i, p)),
        fixed(5, 16),
        fixed(6, 1024),
        fixed(14, 240),
        fixed(19, 8),
        (any::<u16>(), proptest::collection::vec(any::<u8>(), 24..200)).prop_map(|(i, p)| (16, i, p)),
        (any::<u16>(), 0u32..8, any::<u32>()).prop_map(|(i, n, fill)| {
            let mut p = vec![0u8; 8 + 16 * n as usize];
            p[..4].copy_from_slice(&n.to_le_bytes());
            for (k, b) in p[8..].iter_mut().enumerate() {
                *b = (fill >> (k % 4 * 8)) as u8;
            }
            (20, i, p)
        }),
        (21u16..u16::MAX, any::<u16>(), proptest::collection::vec(any::<u8>(), 0..64)).prop_map(|(c, i, p)| (c, i, p)),
        (
            prop_oneof![Just(3u16), Just(4), Just(7), Just(12), Just(15), Just(18)],
            any::<u16>(),
            proptest::collection::vec(any::<u8>(), 0..64)
        ),
    ]
}

proptest! {
    #[test]
    fn decode_emit_round_trip(entries in proptest::collection::vec(arb_entry(), 0..12), trailing in proptest::collection::vec(any::<u8>(), 0..16)) {
        let mut blob = Vec::new();
        for (code, inst, payload) in &entries {
            entry(&mut blob, *code, *inst, payload);
        }
        entry(&mut blob, 0, 0, &[]);
        blob.extend_from_slice(&trailing);
        let recs = decode(&blob, 0).unwrap();
        prop_assert_eq!(recs.entries.len(), entries.len() + 1);
        let mut out = Vec::new();
        recs.emit(&mut out);
        prop_assert_eq!(&out, &blob);
        // Exact-size typed records are the payload's own bytes.
        for e in &recs.entries {
            if let HvmSaveRecord::Cpu(c) = &e.record
                && e.payload.len() == 1032
            {
                prop_assert_eq!(zerocopy::IntoBytes::as_bytes(&**c), e.payload);
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        if let Ok(r) = decode(&bytes, 0) {
            let mut out = Vec::new();
            r.emit(&mut out);
            prop_assert_eq!(out, bytes);
        }
    }
}

fn filled(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 | 0x80).collect()
}

#[test]
fn pv_64bit_registers_at_xen_offsets() {
    let mut b = filled(VCPU_CONTEXT_64);
    put64(&mut b, 512, 1 << 2); // flags: VGCF_in_kernel
    let gprs = ["r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8", "rax", "rcx", "rdx", "rsi", "rdi"];
    for i in 0..gprs.len() {
        put64(&mut b, 520 + 8 * i, 0x100 + i as u64);
    }
    put64(&mut b, 648, 0xffff_ffff_8100_1234); // rip
    b[656..658].copy_from_slice(&0xe033u16.to_le_bytes()); // cs
    put64(&mut b, 664, 0x282); // rflags
    put64(&mut b, 672, 0xffff_c900_0000_8000); // rsp
    for (i, s) in [0xe02bu16, 0, 0, 0, 0].iter().enumerate() {
        b[680 + 8 * i..682 + 8 * i].copy_from_slice(&s.to_le_bytes()); // ss es ds fs gs
    }
    put64(&mut b, 4816, 0); // ldt_base
    put64(&mut b, 4824, 0); // ldt_ents
    let mut frames = VcpuFrames { start_info: 0x106, gdt_ents: 16, cr3_pfn: 0x1a2b, ..VcpuFrames::default() };
    frames.gdt_frames[0] = 0x77;
    frames.write(&mut b, 8);
    put64(&mut b, 4984, 0x8005_003b); // cr0
    put64(&mut b, 5000, 0x7fff_0000); // cr2
    put64(&mut b, 5016, 0x2660); // cr4
    put64(&mut b, 5048 + 7 * 8, 0x400); // dr7
    put64(&mut b, 5144, 0x7f12_3400); // fs_base
    put64(&mut b, 5152, 0xffff_8880_3fc0_0000); // gs_base_kernel
    put64(&mut b, 5160, 0x7f00_0000_1000); // gs_base_user
    let r = pv_vcpu_regs(&b, 8).unwrap();
    // rdx holds the start_info pfn (written by VcpuFrames::write above).
    assert_eq!((r.r15, r.rbp, r.rax, r.rdx, r.rdi), (0x100, 0x104, 0x10a, 0x106, 0x10e));
    assert_eq!((r.rip, r.rflags, r.rsp), (0xffff_ffff_8100_1234, 0x282, 0xffff_c900_0000_8000));
    assert_eq!((r.cs.selector, r.ss.selector), (0xe033, 0xe02b));
    assert_eq!((r.cr0, r.cr2, r.cr3, r.cr4, r.dr7), (0x8005_003b, 0x7fff_0000, 0x1a2b000, 0x2660, 0x400));
    assert_eq!((r.fs.base, r.gs.base, r.kernel_gs_base), (0x7f12_3400, 0xffff_8880_3fc0_0000, 0x7f00_0000_1000));
    assert_eq!((r.gdtr.base, r.gdtr.limit, r.ldtr.limit), (0, 127, 0));
    // In user mode the two GS bases swap.
    put64(&mut b, 512, 0);
    let r = pv_vcpu_regs(&b, 8).unwrap();
    assert_eq!((r.gs.base, r.kernel_gs_base), (0x7f00_0000_1000, 0xffff_8880_3fc0_0000));
    assert_eq!(pv_vcpu_regs(&b[1..], 8), None);
    assert_eq!(pv_vcpu_regs(&b, 2), None);
}

#[test]
fn pv_32bit_registers_at_xen_offsets() {
    let mut b = filled(VCPU_CONTEXT_32);
    for i in 0..7 {
        put32(&mut b, 516 + 4 * i, 0x200 + i as u32); // ebx ecx edx esi edi ebp eax
    }
    put32(&mut b, 548, 0xc100_0000); // eip
    b[552..554].copy_from_slice(&0x61u16.to_le_bytes()); // cs
    put32(&mut b, 556, 0x246); // eflags
    put32(&mut b, 560, 0xc1ff_f000); // esp
    b[564..566].copy_from_slice(&0x69u16.to_le_bytes()); // ss
    put32(&mut b, 2632, 0xc000_0000); // ldt_base
    put32(&mut b, 2636, 2); // ldt_ents
    let frames = VcpuFrames { gdt_ents: 32, cr3_pfn: 0x12_3456, ..VcpuFrames::default() };
    frames.write(&mut b, 4);
    put32(&mut b, 2716, 0x8005_003b); // cr0
    put32(&mut b, 2732, 0x6f0); // cr4
    let r = pv_vcpu_regs(&b, 4).unwrap();
    // edx holds the start_info pfn (0 here, written by VcpuFrames::write).
    assert_eq!((r.rbx, r.rcx, r.rdx, r.rax), (0x200, 0x201, 0, 0x206));
    assert_eq!((r.rip, r.rflags, r.rsp), (0xc100_0000, 0x246, 0xc1ff_f000));
    assert_eq!((r.cs.selector, r.ss.selector), (0x61, 0x69));
    assert_eq!((r.cr0, r.cr3, r.cr4), (0x8005_003b, 0x12_3456 << 12, 0x6f0));
    assert_eq!((r.ldtr.base, r.ldtr.limit, r.gdtr.limit), (0xc000_0000, 15, 255));
    assert_eq!((r.r8, r.fs.base, r.gs.base), (0, 0, 0));
}

// ---------------------------------------------------------------- fuzz seed corpus

fn corpus_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/corpus/hvm_context"))
}

fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let full = full_blob();
    let mut minimal = Vec::new();
    entry(&mut minimal, 0, 0, &[]);
    let mut short_lapic = Vec::new();
    entry(&mut short_lapic, 5, 0, &[0; 15]);
    entry(&mut short_lapic, 0, 0, &[]);
    vec![
        ("ok-full.bin", full.clone()),
        ("ok-end-only.bin", minimal),
        ("bad-truncated.bin", full[..full.len() / 2].to_vec()),
        ("bad-lapic-15.bin", short_lapic),
    ]
}

#[test]
#[ignore = "writes tests/corpus/hvm_context/; run by hand"]
fn generate_seed_corpus() {
    std::fs::create_dir_all(corpus_dir()).unwrap();
    for (name, bytes) in seeds() {
        std::fs::write(corpus_dir().join(name), bytes).unwrap();
    }
}

#[test]
fn replay_corpus() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir()).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert!(files.len() >= seeds().len());
    for (name, bytes) in seeds() {
        assert!(std::fs::read(corpus_dir().join(name)).unwrap() == bytes, "{name} is stale; regenerate");
    }
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let data = std::fs::read(&path).unwrap();
        let r = std::panic::catch_unwind(|| {
            decode(&data, 0).map(|r| {
                let mut out = Vec::new();
                r.emit(&mut out);
                out
            })
        })
        .unwrap_or_else(|_| panic!("{name}: decode panicked"));
        match r {
            Ok(out) => {
                assert!(!name.starts_with("bad-"), "{name} decoded");
                assert_eq!(out, data, "{name}: emit differs");
            }
            Err(e) => assert!(!name.starts_with("ok-"), "{name}: {e}"),
        }
    }
}
