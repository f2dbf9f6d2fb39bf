//! Golden vectors: the HVM_CONTEXT blobs of the real Xen 4.17 HVM and PVH `xl save` files
//! (`tests/data/xen-4.17/`), decoded into typed records and emitted back byte for byte. The
//! expected values were read out of the files independently (a Python script reading the
//! payloads at the offsets of `xen/include/public/arch-x86/hvm/save.h`).

#[path = "../../../tests/common/testdata.rs"]
mod testdata;

use sr_format::body::hvm_context::{
    APIC_BASE_ENABLE, HVM_FILE_MAGIC, HvmSaveRecord, HvmSaveRecords, HvmSaveType, XEN_X86_FPU_INITIALISED, decode,
};
use sr_format::{Item, RecordType, StreamReader};

/// The HVM_CONTEXT body of a stream and its absolute offset.
fn context_of(bytes: &[u8]) -> (Vec<u8>, u64) {
    let mut r = StreamReader::from_slice(bytes);
    while let Some(item) = r.next_item().unwrap() {
        if let Item::Record(rec) = item
            && rec.rtype == RecordType::HVM_CONTEXT
        {
            return (rec.body.to_vec(), rec.offset + 8);
        }
    }
    panic!("no HVM_CONTEXT");
}

fn names(recs: &HvmSaveRecords<'_>) -> String {
    recs.entries.iter().map(|e| e.save_type().to_string()).collect::<Vec<_>>().join(" ")
}

/// What both guests share (same kernel, same Xen, same host).
fn check_common(recs: &HvmSaveRecords<'_>, cr3: u64, rsp: u64, gs_base: u64, tsc: u64) {
    let h = recs.header().unwrap();
    assert_eq!(
        (h.magic.get(), h.version.get(), h.changeset.get(), h.cpuid.get(), h.gtsc_khz.get()),
        (HVM_FILE_MAGIC, 1, u64::MAX, 0x60fb1, 0x279d34)
    );
    let regs = recs.vcpu_regs();
    assert_eq!(regs.len(), 1);
    let (vcpu, r) = regs[0];
    assert_eq!(vcpu, 0);
    assert_eq!((r.rip, r.rflags, r.rsp, r.rdi, r.r15), (0xffff_ffff_8043_4713, 0x2, rsp, 2, 2));
    assert_eq!((r.cr0, r.cr2, r.cr3, r.cr4, r.efer), (0x8005_0033, 0, cr3, 0x1506b0, 0xd01));
    assert_eq!((r.cs.selector, r.cs.attr, r.cs.limit), (0x10, 0xa9b, 0xffff_ffff));
    assert_eq!((r.ss.selector, r.ss.attr, r.tr.selector, r.tr.base), (0x18, 0xc93, 0x40, 0xffff_fe00_0000_3000));
    assert_eq!((r.gs.base, r.idtr.base, r.idtr.limit), (gs_base, 0xffff_fe00_0000_0000, 0xfff));
    assert_eq!((r.gdtr.base, r.gdtr.limit), (0xffff_fe00_0000_1000, 0x7f));
    assert_eq!(
        (r.lstar, r.star, r.cstar, r.sfmask),
        (0xffff_ffff_8060_0040, 0x0023_0010_0000_0000, 0xffff_ffff_8060_1340, 0x257fd5)
    );
    assert_eq!((r.dr6, r.dr7), (0xffff_0ff0, 0x400));
    for e in &recs.entries {
        match &e.record {
            HvmSaveRecord::Cpu(c) => {
                assert_eq!(e.descriptor.length.get(), 1032);
                assert_eq!((c.tsc.get(), c.flags.get(), c.pad0.get()), (tsc, XEN_X86_FPU_INITIALISED, 0));
                assert!(!c.pending().valid());
            }
            HvmSaveRecord::Lapic(l) => {
                assert_eq!(e.descriptor.length.get(), 24, "Xen 4.17's LAPIC record has tdt_msr");
                assert_eq!(
                    (l.apic_base_msr.get(), l.disabled.get(), l.timer_divisor.get(), l.tdt_msr.get()),
                    (0xfee0_0d00, 2, 2, 0)
                );
                assert_ne!(l.apic_base_msr.get() & APIC_BASE_ENABLE, 0);
            }
            HvmSaveRecord::LapicRegs(r) => {
                assert_eq!(
                    (r.reg(0x20), r.reg(0x30), r.reg(0xf0), r.reg(0x320)),
                    (Some(0), Some(0x50014), Some(0xff), Some(0x10000))
                );
            }
            HvmSaveRecord::PciLink(l) => assert_eq!(l.route, [0; 4]),
            HvmSaveRecord::VmceVcpu(v) => assert_eq!(v.caps.get(), 2),
            HvmSaveRecord::TscAdjust(t) => assert_eq!(t.tsc_adjust.get(), 0),
            HvmSaveRecord::Mtrr(m) => {
                assert_eq!((m.msr_pat_cr.get(), m.msr_mtrr_cap.get()), (0x0007_0406_0007_0406, 0x508));
            }
            _ => {}
        }
    }
}

#[test]
fn the_real_hvm_guests_context() {
    let bytes = testdata::real_hvm_file();
    let (blob, base) = context_of(&bytes);
    assert_eq!((blob.len(), base), (4112, 0x27f7b9f));
    let recs = decode(&blob, base).unwrap();
    assert_eq!(
        names(&recs),
        "HEADER CPU PIC PIC IOAPIC LAPIC LAPIC_REGS PCI_IRQ ISA_IRQ PCI_LINK PIT RTC HPET PMTIMER MTRR VMCE_VCPU \
         TSC_ADJUST END"
    );
    assert_eq!(recs.entries[5].offset, base + 0x5e8, "LAPIC");
    assert!(recs.trailing.is_empty());
    check_common(&recs, 0x140_8000, 0xffff_8880_001a_fe38, 0xffff_8880_01c0_0000, 0xd_d554_5da2);
    let mut pics = 0;
    for e in &recs.entries {
        match &e.record {
            HvmSaveRecord::Pic(p) => {
                let want: [u8; 8] = if e.instance() == 0 {
                    [0x12, 0xff, 0x00, 0x30, 0x00, 0x44, 0x24, 0x00]
                } else {
                    [0x10, 0xff, 0x00, 0x38, 0x00, 0x00, 0x0c, 0x00]
                };
                assert_eq!(zerocopy::IntoBytes::as_bytes(p), want);
                assert_eq!(p.is_master(), e.instance() == 0);
                pics += 1;
            }
            HvmSaveRecord::Ioapic(io) => {
                assert_eq!((io.base_address.get(), io.id.get()), (0xfec0_0000, 0));
                assert_eq!(io.redirtbl[0].bits.get(), 0x10000);
                assert!(io.redirtbl[0].mask());
                assert_eq!((io.redirtbl[2].vector(), io.redirtbl[2].mask()), (0x30, true));
            }
            HvmSaveRecord::Pit(p) => assert_eq!((p.channels[0].count.get(), p.channels[0].mode), (65536, 2)),
            HvmSaveRecord::Rtc(r) => {
                assert_eq!(e.descriptor.length.get(), 24);
                assert_eq!(r.cmos_data, [0x36, 0, 5, 0, 3, 0, 0, 6, 0x12, 0x26, 0x26, 0x02, 0x10, 0x80]);
                assert_eq!(r.rtc_offset.get(), 0);
            }
            HvmSaveRecord::Hpet(h) => {
                assert_eq!((h.capability.get(), h.config.get(), h.mc64.get()), (0xf4_2400_8086_a201, 3, 0x3056_b382));
                assert_eq!((h.timers[0].config.get(), h.timers[0].cmp.get()), (0xf0_0000_0000_2938, 0x305d_3ce5));
                assert_eq!(h.period.map(|p| p.get()), [0x98968, 0, 0]);
            }
            HvmSaveRecord::Pmtimer(p) => {
                assert_eq!((p.tmr_val.get(), p.pm1a_sts.get(), p.pm1a_en.get()), (0x4ee_004f, 0, 0x320));
            }
            HvmSaveRecord::Mtrr(m) => {
                assert_eq!(m.msr_mtrr_def_type.get(), 0xc06);
                assert_eq!((m.msr_mtrr_var[0].get(), m.msr_mtrr_var[1].get()), (0xf000_0000, 0xff_f800_0800));
            }
            _ => {}
        }
    }
    assert_eq!(pics, 2);
    assert_eq!(recs.to_bytes(), blob, "emit gives back the blob byte for byte");
    for e in &recs.entries[..recs.entries.len() - 1] {
        let at = (e.offset - base) as usize + 8;
        assert_eq!(e.payload(), blob[at..at + e.descriptor.length.get() as usize], "{}", e.save_type());
    }
}

#[test]
fn the_real_pvh_guests_context() {
    let bytes = testdata::real_pvh_file();
    let (blob, base) = context_of(&bytes);
    assert_eq!(blob.len(), 2504);
    let recs = decode(&blob, base).unwrap();
    assert_eq!(names(&recs), "HEADER CPU LAPIC LAPIC_REGS PCI_IRQ ISA_IRQ PCI_LINK MTRR VMCE_VCPU TSC_ADJUST END");
    check_common(&recs, 0x142_4000, 0xffff_8880_001a_be38, 0xffff_8880_01a0_0000, 0x7_6a45_8e22);
    let no_emulated_devices = recs.entries.iter().all(|e| {
        !matches!(
            e.save_type(),
            HvmSaveType::PIC
                | HvmSaveType::IOAPIC
                | HvmSaveType::PIT
                | HvmSaveType::RTC
                | HvmSaveType::HPET
                | HvmSaveType::PMTIMER
        )
    });
    assert!(no_emulated_devices, "a PVH domain has no emulated PIC, IO-APIC or timers");
    let mtrr = recs.entries.iter().find_map(|e| match &e.record {
        HvmSaveRecord::Mtrr(m) => Some(m),
        _ => None,
    });
    assert_eq!(mtrr.unwrap().msr_mtrr_def_type.get(), 0x806);
    assert_eq!(recs.to_bytes(), blob);
}
