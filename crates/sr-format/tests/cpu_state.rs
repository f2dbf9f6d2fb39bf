//! CPU state: the typed HVM save records of an HVM_CONTEXT blob (golden offsets from Xen's
//! `arch-x86/hvm/save.h`, exact round trips, hostile lengths) and the registers of x86 PV
//! `vcpu_guest_context`s of both widths; plus the `hvm_context` fuzz seed corpus
//! (`tests/corpus/hvm_context/`), regenerated with
//! `cargo test -p sr-format --test cpu_state -- --ignored generate_seed_corpus`.

use std::path::PathBuf;

#[path = "../../../tests/common/testdata.rs"]
mod testdata;

use proptest::prelude::*;
use sr_format::Error;
use sr_format::body::hvm_context::{
    HVM_FILE_MAGIC, HvmHwLapic, HvmSaveEntry, HvmSaveRecord, HvmSaveType, LoadLength, XEN_X86_FPU_INITIALISED, decode,
};
use sr_format::body::{VCPU_CONTEXT_32, VCPU_CONTEXT_64, VcpuFrames, pv_vcpu_regs};
use sr_format::{Item, RecordType, StreamReader};

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

/// A blob with every record type Xen 4.17 defines (RTC, VIRIDIAN_DOMAIN and VMCE_VCPU in
/// older, shorter forms), an unknown type and trailing bytes.
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
    entry(&mut b, 3, 0, &[0x12, 0xff, 0, 0x30, 0x21, 0x44, 0x24, 0]); // PIC master
    entry(&mut b, 3, 1, &[0x10, 0xff, 0, 0x38, 0, 0, 0x0c, 0]); // PIC slave
    let mut ioapic = vec![0u8; 400];
    put64(&mut ioapic, 0, 0xfec0_0000);
    put32(&mut ioapic, 12, 1);
    put64(&mut ioapic, 16 + 2 * 8, 0x0300_0000_0001_8030); // pin 2: vector 0x30, masked, level, dest 3
    entry(&mut b, 4, 0, &ioapic);
    let mut lapic = vec![0u8; 24];
    put64(&mut lapic, 0, 0xfee0_0900);
    put32(&mut lapic, 12, 3);
    put64(&mut lapic, 16, 0x1234_5678);
    entry(&mut b, 5, 0, &lapic);
    let mut regs = vec![0u8; 1024];
    put32(&mut regs, 0x20, 0x0100_0000); // APIC ID 1
    entry(&mut b, 6, 0, &regs);
    entry(&mut b, 7, 0, &[0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]); // PCI_IRQ
    entry(&mut b, 8, 0, &[0x04, 0, 0, 0, 0, 0, 0, 0]); // ISA_IRQ
    entry(&mut b, 9, 0, &[5, 10, 11, 0, 0, 0, 0, 0]); // PCI_LINK
    let mut pit = vec![0u8; 56];
    put32(&mut pit, 0, 65536);
    pit[13] = 2; // channel 0 mode
    put32(&mut pit, 48, 1);
    entry(&mut b, 10, 0, &pit);
    let mut rtc = vec![0u8; 16]; // the older form without rtc_offset
    rtc[..14].copy_from_slice(&[0x36, 0, 5, 0, 3, 0, 0, 6, 0x12, 0x26, 0x26, 0x02, 0x10, 0x80]);
    rtc[14] = 0x0b;
    entry(&mut b, 11, 0, &rtc);
    let mut hpet = vec![0u8; 1048];
    put64(&mut hpet, 0, 0xf4_2400_8086_a201);
    put64(&mut hpet, 16, 3);
    put64(&mut hpet, 30 * 8, 0xabcdef); // mc64
    put64(&mut hpet, 33 * 8, 0x5555); // timers[0].cmp
    put64(&mut hpet, 1048 - 8, 77); // period[2]
    entry(&mut b, 12, 0, &hpet);
    entry(&mut b, 13, 0, &[0x4f, 0, 0xee, 4, 1, 0, 0x20, 3]); // PMTIMER
    let mut mtrr = vec![0u8; 240];
    put64(&mut mtrr, 0, 0x0007_0406_0007_0406);
    put64(&mut mtrr, 224, 0x508);
    put64(&mut mtrr, 232, 0xc06);
    entry(&mut b, 14, 0, &mtrr);
    let mut viridian = vec![0u8; 16]; // the older form (hypercall_gpa, guest_os_id)
    put64(&mut viridian, 0, 0x1001);
    put64(&mut viridian, 8, 0x1_0406_0000_2580);
    entry(&mut b, 15, 0, &viridian);
    let mut xsave = vec![0u8; 24 + 576];
    put64(&mut xsave, 0, 0x7);
    put64(&mut xsave, 8, 0x3);
    put64(&mut xsave, 16, 0x7);
    put64(&mut xsave, 24 + 512, 0x3); // xstate_bv
    entry(&mut b, 16, 0, &xsave);
    let mut vv = vec![0u8; 216];
    put64(&mut vv, 0, 0x2001);
    vv[8] = 1;
    put64(&mut vv, 24 + 8 * 16 + 8 * 4, 99); // stimer_count_msr[0]
    entry(&mut b, 17, 1, &vv);
    let mut vmce = vec![0u8; 24]; // without mcg_ext_ctl
    put64(&mut vmce, 0, 0x0100_0802);
    entry(&mut b, 18, 0, &vmce);
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
    assert_eq!(types, [1, 2, 2, 3, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 99, 0]);
    assert_eq!(recs.entries[0].offset, 1000);
    assert_eq!(recs.entries[1].offset, 1000 + 32);
    assert_eq!(&*recs.trailing, b"after END");
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
            HvmSaveRecord::Pic(p) if e.instance() == 0 => {
                assert_eq!((p.irr, p.imr, p.irq_base, p.init_state(), p.priority_add()), (0x12, 0xff, 0x30, 1, 2));
                assert!(p.is_master());
            }
            HvmSaveRecord::Pic(p) => assert_eq!((p.irq_base, p.elcr, p.is_master()), (0x38, 0x0c, false)),
            HvmSaveRecord::Ioapic(io) => {
                assert_eq!((io.base_address.get(), io.id.get()), (0xfec0_0000, 1));
                let pin = io.redirtbl[2];
                assert_eq!((pin.vector(), pin.mask(), pin.trig_mode(), pin.dest_id()), (0x30, true, true, 3));
            }
            HvmSaveRecord::Lapic(l) => {
                assert_eq!(
                    (l.apic_base_msr.get(), l.timer_divisor.get(), l.tdt_msr.get()),
                    (0xfee0_0900, 3, 0x1234_5678)
                )
            }
            HvmSaveRecord::LapicRegs(r) => assert_eq!(r.reg(0x20), Some(0x0100_0000)),
            HvmSaveRecord::PciIrq(p) => assert_eq!((p.i[0].get(), p.i[1].get()), (0x80, 1 << 56)),
            HvmSaveRecord::IsaIrq(p) => assert_eq!(p.i.get(), 4),
            HvmSaveRecord::PciLink(l) => assert_eq!(l.route, [5, 10, 11, 0]),
            HvmSaveRecord::Pit(p) => {
                assert_eq!((p.channels[0].count.get(), p.channels[0].mode, p.speaker_data_on.get()), (65536, 2, 1))
            }
            HvmSaveRecord::Rtc(r) => {
                assert_eq!((r.cmos_data[9], r.cmos_index, r.rtc_offset.get()), (0x26, 0x0b, 0));
                assert_eq!(e.descriptor.length.get(), 16, "kept at its original length");
            }
            HvmSaveRecord::Hpet(h) => {
                assert_eq!((h.capability.get(), h.config.get(), h.mc64.get()), (0xf4_2400_8086_a201, 3, 0xabcdef));
                assert_eq!((h.timers[0].cmp.get(), h.period[2].get()), (0x5555, 77));
            }
            HvmSaveRecord::Pmtimer(p) => {
                assert_eq!((p.tmr_val.get(), p.pm1a_sts.get(), p.pm1a_en.get()), (0x4ee_004f, 1, 0x320))
            }
            HvmSaveRecord::Mtrr(m) => assert_eq!((m.msr_mtrr_cap.get(), m.msr_mtrr_def_type.get()), (0x508, 0xc06)),
            HvmSaveRecord::ViridianDomain(v) => {
                assert_eq!((v.hypercall_gpa.get(), v.time_ref_count.get(), v.reference_tsc.get()), (0x1001, 0, 0))
            }
            HvmSaveRecord::CpuXsave(x) => {
                assert_eq!((x.header.xcr0.get(), x.area.len(), x.xsave_hdr().xstate_bv.get()), (3, 576, 3))
            }
            HvmSaveRecord::ViridianVcpu(v) => {
                assert_eq!((v.vp_assist_msr.get(), v.apic_assist_pending, v.stimer_count_msr[0].get()), (0x2001, 1, 99))
            }
            HvmSaveRecord::VmceVcpu(v) => assert_eq!((v.caps.get(), v.mcg_ext_ctl.get()), (0x0100_0802, 0)),
            HvmSaveRecord::TscAdjust(t) => assert_eq!(t.tsc_adjust.get(), 42),
            HvmSaveRecord::CpuMsr(m) => {
                let got: Vec<(u32, u64)> = m.entries.iter().map(|e| (e.index.get(), e.val.get())).collect();
                assert_eq!(got, [(0xc000_0103, 9), (0x48, 1)]);
            }
            HvmSaveRecord::Unknown(p) => assert_eq!((e.save_type().0, &**p), (99, &b"unknown to Xen 4.17"[..])),
            HvmSaveRecord::Header(_) | HvmSaveRecord::End => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    let mut out = Vec::new();
    recs.emit(&mut out);
    assert_eq!(out, blob);
    assert_eq!(HvmSaveType(14).to_string(), "MTRR");
    assert_eq!(HvmSaveType(99).to_string(), "type 99");
    // Every code Xen 4.17 defines has its name and load rule.
    let rules: Vec<(u16, &str, usize, LoadLength)> =
        (1..=20).map(|c| HvmSaveType(c).info().map(|i| (c, i.name, i.size, i.length)).unwrap()).collect();
    assert_eq!(rules[4], (5, "LAPIC", 24, LoadLength::ZeroExtend));
    assert_eq!(rules[15], (16, "CPU_XSAVE", 600, LoadLength::Xsave));
    assert_eq!(HvmSaveType(21).info(), None);
}

#[test]
fn entries_built_from_typed_records_emit_their_natural_length() {
    let mut lapic = HvmHwLapic::default();
    lapic.apic_base_msr.set(0xfee0_0900);
    let e = HvmSaveEntry::new(HvmSaveType::LAPIC, 3, HvmSaveRecord::Lapic(lapic));
    assert_eq!((e.descriptor.length.get(), e.instance(), e.payload().len()), (24, 3, 24));
    let blob = full_blob();
    let mut recs = decode(&blob, 0).unwrap();
    recs.entries.insert(1, e);
    let bytes = recs.to_bytes();
    let again = decode(&bytes, 0).unwrap();
    assert_eq!(again.entries[1].record, HvmSaveRecord::Lapic(lapic));
    assert_eq!(again.to_bytes(), recs.to_bytes());
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
    assert!(matches!(recs.entries[0].record, HvmSaveRecord::CpuCompat(_)));
    let c = recs.entries[0].cpu_as_loaded().unwrap();
    assert_eq!((c.msr_tsc_aux.get(), c.tsc.get(), c.error_code.get()), (0, 0x1122_3344, 0));
    assert_eq!((c.msr_efer.get(), c.flags.get()), (0xd01, XEN_X86_FPU_INITIALISED));
    let HvmSaveRecord::Cpu(raw) = &recs.entries[1].record else { panic!() };
    assert_eq!(raw.flags.get(), 0, "the typed record is the bytes as found");
    let c = recs.entries[1].cpu_as_loaded().unwrap();
    assert_eq!((c.cr3.get(), c.rip.get(), c.msr_efer.get()), (0x1234_5000, 0xffff_ffff_8100_0000, 0));
    assert_eq!(c.flags.get(), XEN_X86_FPU_INITIALISED, "_hvm_hw_fix_cpu sets it for any short form");
    assert_eq!(recs.entries[2].cpu_as_loaded(), None);
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
    let wrong = [
        (1u16, 23usize),
        (1, 25),
        (2, 1033),
        (3, 7),
        (4, 401),
        (5, 25),
        (6, 1025),
        (7, 15),
        (8, 9),
        (9, 7),
        (10, 55),
        (11, 25),
        (12, 1047),
        (13, 9),
        (14, 232),
        (15, 33),
        (16, 599),
        (17, 217),
        (18, 33),
        (19, 4),
    ];
    for (code, len) in wrong {
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
    // CPU_MSR without entries (Xen: length < HVM_CPU_MSR_SIZE(1)).
    let mut b = Vec::new();
    entry(&mut b, 20, 0, &[0; 8]);
    entry(&mut b, 0, 0, &[]);
    let e = bad(&b);
    assert!(matches!(&e, Error::BadHvmSaveRecord { typecode: 20, rule, .. } if rule.contains("at least one")), "{e:?}");
    assert!(e.to_string().starts_with("HVM save record CPU_MSR (type 20, instance 0) at byte 100: length 8"), "{e}");
    // Shorter forms of the zero-extended records load.
    for code in [2u16, 5, 11, 15, 17, 18] {
        let mut b = Vec::new();
        entry(&mut b, code, 0, &[0; 7]);
        entry(&mut b, 0, 0, &[]);
        assert!(decode(&b, 0).is_ok(), "{code}");
    }
}

#[test]
fn end_is_where_xen_stops_whatever_its_length_says() {
    // hvm_load returns at a zero typecode without reading the length: what follows END's
    // descriptor is ignored, and kept.
    let mut b = Vec::new();
    entry(&mut b, 3, 0, &[0; 8]);
    b.extend_from_slice(&[0, 0, 5, 0, 4, 0, 0, 0, 1, 2]);
    let recs = decode(&b, 0).unwrap();
    assert_eq!(recs.entries.len(), 2);
    assert_eq!((recs.entries[1].instance(), recs.entries[1].descriptor.length.get()), (5, 4));
    assert_eq!(&*recs.trailing, [1, 2]);
    assert_eq!(recs.to_bytes(), b);
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
    let sized = |code: u16, lens: std::ops::RangeInclusive<usize>| {
        (any::<u16>(), proptest::collection::vec(any::<u8>(), lens)).prop_map(move |(i, p)| (code, i, p))
    };
    prop_oneof![
        sized(1, 24..=24),
        sized(2, 0..=1032),
        sized(2, 1016..=1016),
        sized(3, 8..=8),
        sized(4, 400..=400),
        sized(5, 0..=24),
        sized(6, 1024..=1024),
        sized(7, 16..=16),
        sized(8, 8..=8),
        sized(9, 8..=8),
        sized(10, 56..=56),
        sized(11, 0..=24),
        sized(12, 1048..=1048),
        sized(13, 8..=8),
        sized(14, 240..=240),
        sized(15, 0..=32),
        sized(16, 600..=900),
        sized(17, 0..=216),
        sized(18, 0..=32),
        sized(19, 8..=8),
        (any::<u16>(), 1u32..8, any::<u32>()).prop_map(|(i, n, fill)| {
            let mut p = vec![0u8; 8 + 16 * n as usize];
            p[..4].copy_from_slice(&n.to_le_bytes());
            for (k, b) in p[8..].iter_mut().enumerate() {
                *b = (fill >> (k % 4 * 8)) as u8;
            }
            (20, i, p)
        }),
        (21u16..u16::MAX, any::<u16>(), proptest::collection::vec(any::<u8>(), 0..64)).prop_map(|(c, i, p)| (c, i, p)),
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
        // Each typed record encodes back to its payload, and a full-size CPU record is the
        // payload's own bytes.
        for (e, (_, _, payload)) in recs.entries.iter().zip(&entries) {
            prop_assert_eq!(&e.payload(), payload);
            if let HvmSaveRecord::Cpu(c) = &e.record
                && payload.len() == 1032
            {
                prop_assert_eq!(zerocopy::IntoBytes::as_bytes(&**c), &payload[..]);
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

/// The HVM_CONTEXT blob of a real stream.
fn real_context(bytes: &[u8]) -> Vec<u8> {
    let mut r = StreamReader::from_slice(bytes);
    while let Some(item) = r.next_item().unwrap() {
        if let Item::Record(rec) = item
            && rec.rtype == RecordType::HVM_CONTEXT
        {
            return rec.body.to_vec();
        }
    }
    panic!("no HVM_CONTEXT");
}

fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let full = full_blob();
    let mut minimal = Vec::new();
    entry(&mut minimal, 0, 0, &[]);
    let mut short_lapic = Vec::new();
    entry(&mut short_lapic, 5, 0, &[0; 16]);
    entry(&mut short_lapic, 0, 0, &[]);
    let mut long_lapic = Vec::new();
    entry(&mut long_lapic, 5, 0, &[0; 25]);
    entry(&mut long_lapic, 0, 0, &[]);
    vec![
        ("ok-full.bin", full.clone()),
        ("ok-end-only.bin", minimal),
        ("ok-lapic-16.bin", short_lapic),
        ("ok-real-hvm.bin", real_context(&testdata::real_hvm_file())),
        ("ok-real-pvh.bin", real_context(&testdata::real_pvh_file())),
        ("bad-truncated.bin", full[..full.len() / 2].to_vec()),
        ("bad-lapic-25.bin", long_lapic),
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
