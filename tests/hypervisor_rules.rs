//! What Xen 4.17's hypervisor refuses when libxc loads a record (`sr_rules::check_record`):
//! each rule on the real HVM, PVH and PV files of `tests/data/xen-4.17/` with one field
//! broken. Every case must be rejected alike by `verify` and `restore` (the restorer, naming
//! the record and its byte offset) and by `save` (the saver refuses the state before writing
//! a byte), and the unbroken record must pass: without its rule, a case fails.

mod common;

use std::borrow::Cow;
use std::fs;

use common::testdata::{HVM, PV, PVH, save_file};
use common::{stderr, xsr};
use sr_format::body::hvm_context::{
    CpuMsrEntry, CpuMsrHeader, CpuMsrs, CpuXsave, CpuXsaveHeader, HvmHwCpu, HvmSaveEntry, HvmSaveRecord,
    HvmSaveRecords, HvmSaveType, HvmViridianVcpuContext, decode,
};
use sr_format::state::{DomainState, TscState};
use sr_format::{Item, RecordType, StreamReader};
use sr_memory::RamMemory;
use sr_restore::{RestoreError, RestoreOptions, Restorer};
use sr_save::{SaveError, SaveOptions, Saver};
use zerocopy::FromZeros;
use zerocopy::little_endian::{U32, U64};

#[path = "../crates/sr-save/tests/common/mod.rs"]
mod save_common;

/// One libxc record of a stream.
#[derive(Clone, Copy, Debug)]
struct Rec {
    index: u64,
    offset: u64,
    rtype: RecordType,
    len: usize,
}

fn records(bytes: &[u8]) -> Vec<Rec> {
    let mut out = Vec::new();
    let mut r = StreamReader::from_slice(bytes);
    while let Some(item) = r.next_item().unwrap() {
        if let Item::Record(rec) = item {
            out.push(Rec { index: rec.index, offset: rec.offset, rtype: rec.rtype, len: rec.body.len() });
        }
    }
    out
}

/// `bytes` with the body of `rec` replaced (header length and padding rewritten).
fn splice(bytes: &[u8], rec: Rec, body: &[u8]) -> Vec<u8> {
    let start = rec.offset as usize;
    let old_end = start + 8 + rec.len.next_multiple_of(8);
    let mut out = bytes[..start].to_vec();
    out.extend_from_slice(&rec.rtype.0.to_le_bytes());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(body);
    out.resize(out.len().next_multiple_of(8), 0);
    out.extend_from_slice(&bytes[old_end..]);
    out
}

/// The state a restore of a stream whose `rtype` record has `body` ends with.
fn apply(state: &mut DomainState, rtype: RecordType, body: &[u8]) {
    let u32_at = |at: usize| u32::from_le_bytes(body[at..at + 4].try_into().unwrap());
    let u64_at = |at: usize| u64::from_le_bytes(body[at..at + 8].try_into().unwrap());
    match rtype {
        RecordType::HVM_CONTEXT => state.hvm_context = Some(body.to_vec()),
        RecordType::HVM_PARAMS => {
            state.hvm_params = (0..u32_at(0) as usize).map(|i| (u64_at(8 + 16 * i), u64_at(16 + 16 * i))).collect();
        }
        RecordType::X86_TSC_INFO => {
            state.tsc = Some(TscState { mode: u32_at(0), khz: u32_at(4), nsec: u64_at(8), incarnation: u32_at(16) });
        }
        RecordType::X86_CPUID_POLICY => {
            state.cpuid = body
                .chunks_exact(24)
                .map(|c| std::array::from_fn(|i| u32::from_le_bytes(c[4 * i..4 * i + 4].try_into().unwrap())))
                .collect();
        }
        RecordType::X86_MSR_POLICY => {
            state.msrs = body
                .chunks_exact(16)
                .map(|c| {
                    let w = |at: usize| u32::from_le_bytes(c[at..at + 4].try_into().unwrap());
                    (w(0), w(4), u64::from_le_bytes(c[8..16].try_into().unwrap()))
                })
                .collect();
        }
        _ => {
            let v = state.vcpus.entry(u32_at(0)).or_default();
            let blob = Some(body[8..].to_vec());
            match rtype {
                RecordType::X86_PV_VCPU_BASIC => v.basic = blob,
                RecordType::X86_PV_VCPU_EXTENDED => v.extended = blob,
                RecordType::X86_PV_VCPU_XSAVE => v.xsave = blob,
                _ => v.msrs = blob,
            }
        }
    }
}

type Edit = Box<dyn Fn(&mut Vec<u8>)>;

/// One rule: the file, the record (the first of its type) and how to break it, and what the
/// rejection says.
struct Case {
    file: &'static str,
    rtype: RecordType,
    edit: Edit,
    needle: &'static str,
}

fn case(file: &'static str, rtype: RecordType, needle: &'static str, edit: impl Fn(&mut Vec<u8>) + 'static) -> Case {
    Case { file, rtype, edit: Box::new(edit), needle }
}

/// An edit of the HVM context through its typed records.
fn ctx(f: impl Fn(&mut HvmSaveRecords<'static>) + 'static) -> impl Fn(&mut Vec<u8>) {
    move |body: &mut Vec<u8>| {
        let copy = body.clone();
        let mut recs = decode(&copy, 0).unwrap();
        let mut owned: HvmSaveRecords<'static> = HvmSaveRecords {
            entries: recs
                .entries
                .drain(..)
                .map(|e| HvmSaveEntry { offset: e.offset, descriptor: e.descriptor, record: to_owned(e.record) })
                .collect(),
            trailing: Cow::Owned(recs.trailing.to_vec()),
        };
        f(&mut owned);
        *body = owned.to_bytes();
    }
}

fn to_owned(r: HvmSaveRecord<'_>) -> HvmSaveRecord<'static> {
    match r {
        HvmSaveRecord::CpuXsave(x) => {
            HvmSaveRecord::CpuXsave(CpuXsave { header: x.header, area: Cow::Owned(x.area.into_owned()) })
        }
        HvmSaveRecord::CpuMsr(m) => {
            HvmSaveRecord::CpuMsr(CpuMsrs { header: m.header, entries: Cow::Owned(m.entries.into_owned()) })
        }
        HvmSaveRecord::Unknown(b) => HvmSaveRecord::Unknown(Cow::Owned(b.into_owned())),
        HvmSaveRecord::Header(h) => HvmSaveRecord::Header(h),
        HvmSaveRecord::Cpu(c) => HvmSaveRecord::Cpu(c),
        HvmSaveRecord::CpuCompat(c) => HvmSaveRecord::CpuCompat(c),
        HvmSaveRecord::Pic(p) => HvmSaveRecord::Pic(p),
        HvmSaveRecord::Ioapic(p) => HvmSaveRecord::Ioapic(p),
        HvmSaveRecord::Lapic(p) => HvmSaveRecord::Lapic(p),
        HvmSaveRecord::LapicRegs(p) => HvmSaveRecord::LapicRegs(p),
        HvmSaveRecord::PciIrq(p) => HvmSaveRecord::PciIrq(p),
        HvmSaveRecord::IsaIrq(p) => HvmSaveRecord::IsaIrq(p),
        HvmSaveRecord::PciLink(p) => HvmSaveRecord::PciLink(p),
        HvmSaveRecord::Pit(p) => HvmSaveRecord::Pit(p),
        HvmSaveRecord::Rtc(p) => HvmSaveRecord::Rtc(p),
        HvmSaveRecord::Hpet(p) => HvmSaveRecord::Hpet(p),
        HvmSaveRecord::Pmtimer(p) => HvmSaveRecord::Pmtimer(p),
        HvmSaveRecord::Mtrr(p) => HvmSaveRecord::Mtrr(p),
        HvmSaveRecord::ViridianDomain(p) => HvmSaveRecord::ViridianDomain(p),
        HvmSaveRecord::ViridianVcpu(p) => HvmSaveRecord::ViridianVcpu(p),
        HvmSaveRecord::VmceVcpu(p) => HvmSaveRecord::VmceVcpu(p),
        HvmSaveRecord::TscAdjust(p) => HvmSaveRecord::TscAdjust(p),
        HvmSaveRecord::End => HvmSaveRecord::End,
        other => panic!("unexpected record {other:?}"),
    }
}

/// An edit of vcpu 0's CPU record.
fn cpu(f: impl Fn(&mut HvmHwCpu) + 'static) -> impl Fn(&mut Vec<u8>) {
    ctx(move |r| {
        let e = r.entries.iter_mut().find(|e| e.save_type() == HvmSaveType::CPU).unwrap();
        let HvmSaveRecord::Cpu(c) = &mut e.record else { panic!() };
        f(c);
    })
}

/// The first entry of a type.
fn entry<'r>(r: &'r mut HvmSaveRecords<'static>, t: HvmSaveType) -> &'r mut HvmSaveEntry<'static> {
    r.entries.iter_mut().find(|e| e.save_type() == t).unwrap()
}

/// Inserts `record` (of type `t`, instance 0) before END.
fn insert(r: &mut HvmSaveRecords<'static>, t: HvmSaveType, record: HvmSaveRecord<'static>) {
    let end = r.entries.len() - 1;
    r.entries.insert(end, HvmSaveEntry::new(t, 0, record));
}

/// A CPU_XSAVE record: header, the 512-byte legacy region, XSAVE header (xstate_bv,
/// xcomp_bv, reserved[0]), then `extra` bytes of components.
fn xsave(xcr0: u64, accum: u64, bv: u64, comp: u64, rsvd: u64, extra: usize) -> HvmSaveRecord<'static> {
    let mut area = vec![0u8; 576 + extra];
    area[512..520].copy_from_slice(&bv.to_le_bytes());
    area[520..528].copy_from_slice(&comp.to_le_bytes());
    area[528..536].copy_from_slice(&rsvd.to_le_bytes());
    let header = CpuXsaveHeader { xfeature_mask: U64::new(0x207), xcr0: U64::new(xcr0), xcr0_accum: U64::new(accum) };
    HvmSaveRecord::CpuXsave(CpuXsave { header, area: Cow::Owned(area) })
}

fn msr(entries: &[(u32, u32, u64)]) -> HvmSaveRecord<'static> {
    let entries: Vec<CpuMsrEntry> = entries
        .iter()
        .map(|&(i, r, v)| CpuMsrEntry { index: U32::new(i), rsvd: U32::new(r), val: U64::new(v) })
        .collect();
    let header = CpuMsrHeader { count: U32::new(entries.len() as u32), rsvd: U32::ZERO };
    HvmSaveRecord::CpuMsr(CpuMsrs { header, entries: Cow::Owned(entries) })
}

fn put64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// Sets HVM param `index` (present in the record) to `value`.
fn param(index: u64, value: u64) -> impl Fn(&mut Vec<u8>) {
    move |b: &mut Vec<u8>| {
        let n = u32::from_le_bytes(b[..4].try_into().unwrap()) as usize;
        let i = (0..n).find(|i| u64::from_le_bytes(b[8 + 16 * i..16 + 16 * i].try_into().unwrap()) == index).unwrap();
        put64(b, 16 + 16 * i, value);
    }
}

/// Changes the index of the first HVM param to `index`.
fn param_index(index: u64) -> impl Fn(&mut Vec<u8>) {
    move |b: &mut Vec<u8>| put64(b, 8, index)
}

fn cases() -> Vec<Case> {
    use HvmSaveType as T;
    use RecordType as R;
    let h = |needle, f| case(HVM, R::HVM_CONTEXT, needle, f);
    let mut v = vec![
        // hvm_load / arch_hvm_load
        h(
            "magic 0x54381287, not HVM_FILE_MAGIC",
            Box::new(ctx(|r| {
                let HvmSaveRecord::Header(hd) = &mut r.entries[0].record else { panic!() };
                hd.magic.set(0x5438_1287);
            })) as Edit,
        ),
        h(
            "version 2, Xen 4.17 loads version 1 only",
            Box::new(ctx(|r| {
                let HvmSaveRecord::Header(hd) = &mut r.entries[0].record else { panic!() };
                hd.version.set(2);
            })),
        ),
        h("is CPU, not HEADER", Box::new(ctx(|r| r.entries.swap(0, 1)))),
        h("no load handler for this type", Box::new(ctx(|r| entry(r, T::TSC_ADJUST).descriptor.typecode.set(21)))),
        h(
            "no load handler for this type",
            Box::new(ctx(|r| {
                let header = r.entries[0].clone();
                r.entries.insert(3, header);
            })),
        ),
        h("vcpu 200 does not exist", Box::new(ctx(|r| entry(r, T::LAPIC).descriptor.instance.set(200)))),
        h(
            "length 25, expected at most 24 bytes",
            Box::new(ctx(|r| {
                // A LAPIC record one byte longer than Xen 4.17's.
                let mut raw = r.entries[0].clone();
                raw.descriptor.typecode.set(5);
                raw.record = HvmSaveRecord::Unknown(Cow::Owned(vec![0; 25]));
                let end = r.entries.len() - 1;
                r.entries.insert(end, raw);
            })),
        ),
        // hvm_load_cpu_ctxt and the SVM/VMX restore
        h("pad0 is 0x1, must be zero", Box::new(cpu(|c| c.pad0.set(1)))),
        h("has reserved bits 0x40 set (hvm_load_cpu_ctxt: bad CR0)", Box::new(cpu(|c| c.cr0.set(c.cr0.get() | 0x40)))),
        h("has ET (bit 4) clear", Box::new(cpu(|c| c.cr0.set(c.cr0.get() & !0x10)))),
        h("paging without protected mode", Box::new(cpu(|c| c.cr0.set(c.cr0.get() & !1)))),
        h(
            "CR4 0x1516b0 has bits 0x1000 no Xen 4.17 guest may set",
            Box::new(cpu(|c| c.cr4.set(c.cr4.get() | 1 << 12))),
        ),
        h("sets VMXE but the CPUID policy has no vmx", Box::new(cpu(|c| c.cr4.set(c.cr4.get() | 1 << 13)))),
        h("EFER 0x200d01 has unknown bits 0x200000", Box::new(cpu(|c| c.msr_efer.set(c.msr_efer.get() | 1 << 21)))),
        h("sets SVME but the CPUID policy has no svm", Box::new(cpu(|c| c.msr_efer.set(c.msr_efer.get() | 1 << 12)))),
        h("LMA without LME or CR0.PG", Box::new(cpu(|c| c.msr_efer.set(c.msr_efer.get() & !(1 << 8))))),
        h("beyond the 40-bit physical address width", Box::new(cpu(|c| c.cr3.set(1 << 45)))),
        h("flags 0x3: only XEN_X86_FPU_INITIALISED", Box::new(cpu(|c| c.flags.set(3)))),
        h("msr_tsc_aux 0x100000000 does not fit 32 bits", Box::new(cpu(|c| c.msr_tsc_aux.set(1 << 32)))),
        h("pending event 0x80000101: type 1", Box::new(cpu(|c| c.pending_event.set(0x8000_0101)))),
        h(
            "error code 0x10000 does not fit 16 bits",
            Box::new(cpu(|c| {
                c.pending_event.set(0x8000_0b0e);
                c.error_code.set(0x1_0000);
            })),
        ),
        // other load handlers
        h("there are two PICs", Box::new(ctx(|r| entry(r, T::PIC).descriptor.instance.set(2)))),
        h(
            "x2APIC mode (EXTD) with the APIC disabled",
            Box::new(ctx(|r| {
                let HvmSaveRecord::Lapic(l) = &mut entry(r, T::LAPIC).record else { panic!() };
                l.apic_base_msr.set(0xfee0_0400);
            })),
        ),
        h(
            "link 2 routes to IRQ 16",
            Box::new(ctx(|r| {
                let HvmSaveRecord::PciLink(l) = &mut entry(r, T::PCI_LINK).record else { panic!() };
                l.route[2] = 16;
            })),
        ),
        h(
            "declares 9 variable ranges",
            Box::new(ctx(|r| {
                let HvmSaveRecord::Mtrr(m) = &mut entry(r, T::MTRR).record else { panic!() };
                m.msr_mtrr_cap.set(0x509);
            })),
        ),
        h(
            "MCG_CAP 0x40000002 has capabilities 0x40000000",
            Box::new(ctx(|r| {
                let HvmSaveRecord::VmceVcpu(v) = &mut entry(r, T::VMCE_VCPU).record else { panic!() };
                v.caps.set(0x4000_0002);
            })),
        ),
        h(
            "_pad is not zero",
            Box::new(ctx(|r| {
                let mut vv = HvmViridianVcpuContext::new_zeroed();
                vv.pad[3] = 1;
                insert(r, T::VIRIDIAN_VCPU, HvmSaveRecord::ViridianVcpu(Box::new(vv)));
            })),
        ),
        // hvm_load_cpu_xsave_states (the policy offers x87, SSE, YMM and PKRU: xcr0_max 0x207)
        h(
            "xcr0 0x7 has bits outside xcr0_accum 0x3",
            Box::new(ctx(|r| insert(r, T::CPU_XSAVE, xsave(7, 3, 3, 0, 0, 0)))),
        ),
        h(
            "xstate_bv 0x7 has components outside xcr0_accum 0x3",
            Box::new(ctx(|r| insert(r, T::CPU_XSAVE, xsave(3, 3, 7, 0, 0, 0)))),
        ),
        h("does not offer (max 0x207)", Box::new(ctx(|r| insert(r, T::CPU_XSAVE, xsave(3, 0x1b, 3, 0, 0, 0))))),
        h(
            "xcr0 0x6 is not a valid XCR0: x87 (bit 0) clear",
            Box::new(ctx(|r| insert(r, T::CPU_XSAVE, xsave(6, 7, 3, 0, 0, 0)))),
        ),
        h(
            "only the standard (uncompressed) form loads",
            Box::new(ctx(|r| insert(r, T::CPU_XSAVE, xsave(3, 3, 3, 1 << 63 | 3, 0, 0)))),
        ),
        h("XSAVE header reserved word 0 is 0x1", Box::new(ctx(|r| insert(r, T::CPU_XSAVE, xsave(3, 3, 3, 0, 1, 0))))),
        h(
            "length 600 < the 856 bytes xcr0_accum 0x7 needs",
            Box::new(ctx(|r| insert(r, T::CPU_XSAVE, xsave(7, 7, 7, 0, 0, 0)))),
        ),
        h(
            "with non-zero data at byte 856",
            Box::new(ctx(|r| {
                let HvmSaveRecord::CpuXsave(x) = xsave(7, 7, 7, 0, 0, 300) else { unreachable!() };
                let mut area = x.area.into_owned();
                area[832] = 1;
                insert(r, T::CPU_XSAVE, HvmSaveRecord::CpuXsave(CpuXsave { header: x.header, area: Cow::Owned(area) }));
            })),
        ),
        // hvm_load_cpu_msrs and guest_wrmsr
        h("entry 0 (MSR 0x48): _rsvd is 0x1", Box::new(ctx(|r| insert(r, T::CPU_MSR, msr(&[(0x48, 1, 1)]))))),
        h(
            "MSR 0xc0000080 is not one hvm_load_cpu_msrs loads",
            Box::new(ctx(|r| insert(r, T::CPU_MSR, msr(&[(0x140, 0, 0), (0xc000_0080, 0, 0xd01)])))),
        ),
        h(
            "XSS value 0x1: Xen 4.17 supports no XSS features",
            Box::new(ctx(|r| insert(r, T::CPU_MSR, msr(&[(0xda0, 0, 1)])))),
        ),
        h(
            "SPEC_CTRL value 0x200 sets bits no Xen 4.17 guest may set",
            Box::new(ctx(|r| insert(r, T::CPU_MSR, msr(&[(0x48, 0, 0x200)])))),
        ),
        h("BNDCFGS without mpx in the CPUID policy", Box::new(ctx(|r| insert(r, T::CPU_MSR, msr(&[(0xd90, 0, 1)]))))),
        // HVM params (hvm_set_param and friends)
        case(HVM, R::HVM_PARAMS, "HVM param 39 = 0xfeffc: no such param", param_index(39)),
        case(HVM, R::HVM_PARAMS, "HVM param 24 (NESTEDHVM) = 0xfeffc: deprecated", param_index(24)),
        case(HVM, R::HVM_PARAMS, "HVM param 10 (TIMER_MODE) = 0xfeffc: must be a timer mode 0-3", param_index(10)),
        case(HVM, R::HVM_PARAMS, "HVM param 9 (VIRIDIAN) = 0xfeffc: needs base_freq", param_index(9)),
        case(HVM, R::HVM_PARAMS, "HVM param 14 (ACPI_S_STATE) = 0xfeffc: must be S0 (0) or S3 (3)", param_index(14)),
        case(HVM, R::HVM_PARAMS, "(ACPI_IOPORTS_LOCATION) = 0x2: must be version 0 or 1", param(19, 2)),
        case(HVM, R::HVM_PARAMS, "HVM param 35 (ALTP2M) = 0xfeffc: must be an altp2m mode 0-3", param_index(35)),
        case(
            HVM,
            R::HVM_PARAMS,
            "HVM param 31 (TRIPLE_FAULT_REASON) = 0xfeffc: must be a shutdown reason",
            param_index(31),
        ),
        case(HVM, R::HVM_PARAMS, "(NR_IOREQ_SERVER_PAGES) = 0x0: must be 1-64 pages", param(33, 0)),
        case(HVM, R::HVM_PARAMS, "HVM param 36 (X87_FIP_WIDTH) = 0xfeffc: must be 0, 4 or 8", param_index(36)),
        case(HVM, R::HVM_PARAMS, "HVM param 15 (VM86_TSS) = 0x100000000: does not fit 32 bits", |b| {
            param_index(15)(b);
            put64(b, 16, 1 << 32);
        }),
        case(
            HVM,
            R::HVM_PARAMS,
            "(VM86_TSS_SIZED) = 0x6700000280: size (bits 32-63) below the 104-byte TSS",
            param(37, 0x67_0000_0280),
        ),
        case(HVM, R::HVM_PARAMS, "HVM param 38 (MCA_CAP) = 0xfeffc: only XEN_HVM_MCA_CAP_LMCE", param_index(38)),
        // tsc_set_info, x86_cpuid_copy_from_buffer, x86_msr_copy_from_buffer
        case(PVH, R::X86_TSC_INFO, "TSC mode 3: Xen 4.17 accepts 0", |b| b[..4].copy_from_slice(&3u32.to_le_bytes())),
        case(PVH, R::X86_CPUID_POLICY, "CPUID policy leaf 0x1 subleaf 0x0: this leaf has no subleaves", |b| {
            // Leaf 1 (the second entry) with subleaf 0.
            b[24 + 4..24 + 8].copy_from_slice(&0u32.to_le_bytes());
        }),
        case(PVH, R::X86_CPUID_POLICY, "CPUID policy leaf 0x7 subleaf 0x3: subleaf out of range", |b| {
            let i = b.chunks_exact(24).position(|c| c[..8] == [7, 0, 0, 0, 0, 0, 0, 0]).unwrap();
            b[24 * i + 4] = 3;
        }),
        case(PVH, R::X86_CPUID_POLICY, "CPUID policy leaf 0x20 subleaf 0xffffffff: no such leaf", |b| {
            b[..4].copy_from_slice(&0x20u32.to_le_bytes())
        }),
        case(PVH, R::X86_CPUID_POLICY, "121 leaves, more than the 120", |b| {
            let first = b[..24].to_vec();
            while b.len() < 121 * 24 {
                b.extend_from_slice(&first);
            }
        }),
        case(PVH, R::X86_MSR_POLICY, "MSR policy MSR 0xc0000080: not an MSR a Xen 4.17 policy holds", |b| {
            b[..4].copy_from_slice(&0xc000_0080u32.to_le_bytes())
        }),
        case(PVH, R::X86_MSR_POLICY, "MSR policy: 3 entries, more than the 2", |b| {
            let first = b[..16].to_vec();
            b.extend_from_slice(&first);
        }),
        case(PVH, R::X86_MSR_POLICY, "does not fit the policy's 32-bit PLATFORM_INFO", |b| {
            let i = b.chunks_exact(16).position(|c| c[..4] == [0xce, 0, 0, 0]).unwrap();
            b[16 * i + 12] = 1;
        }),
        // arch_set_info_guest (64-bit PV)
        case(PV, R::X86_PV_VCPU_BASIC, "vcpu 0: X86_PV_VCPU_BASIC: rip 0x800000000000 is not canonical", |b| {
            put64(b, 8 + 648, 1 << 47)
        }),
        case(PV, R::X86_PV_VCPU_BASIC, "trap_ctxt[14].address 0x1000000000000 is not canonical", |b| {
            put64(b, 8 + 720 + 16 * 14 + 8, 1 << 48);
        }),
        case(PV, R::X86_PV_VCPU_BASIC, "ldt_base 0xffff800000001000 is inside Xen's address range", |b| {
            put64(b, 8 + 4816, 0xffff_8000_0000_1000);
        }),
        case(PV, R::X86_PV_VCPU_BASIC, "ldt_base 0x10 is not page aligned", |b| put64(b, 8 + 4816, 0x10)),
        case(PV, R::X86_PV_VCPU_BASIC, "ldt_ents 8193 > 8192", |b| put64(b, 8 + 4824, 8193)),
        case(PV, R::X86_PV_VCPU_BASIC, "vm_assist 0x80 has assists 0x80 a 64-bit PV guest cannot have", |b| {
            put64(b, 8 + 5136, 0x80)
        }),
        case(PV, R::X86_PV_VCPU_BASIC, "in user mode (VGCF_in_kernel clear) without a user page table", |b| {
            let flags = u64::from_le_bytes(b[8 + 512..8 + 520].try_into().unwrap());
            put64(b, 8 + 512, flags & !4);
            put64(b, 8 + 4984 + 8, 0);
        }),
        // XEN_DOMCTL_set_ext_vcpucontext, _setvcpuextstate, _set_vcpu_msrs
        case(PV, R::X86_PV_VCPU_EXTENDED, "size field 24 < 32", |b| {
            b[8 + 4..8 + 8].copy_from_slice(&24u32.to_le_bytes())
        }),
        case(PV, R::X86_PV_VCPU_EXTENDED, "sysenter_callback_eip 0x800000000000 is not canonical", |b| {
            put64(b, 8 + 16, 1 << 47)
        }),
        case(PV, R::X86_PV_VCPU_EXTENDED, "MCG_CAP 0x80000002 has capabilities 0x80000000", |b| {
            put64(b, 8 + 32, 0x8000_0002)
        }),
        case(PV, R::X86_PV_VCPU_XSAVE, "xcr0 0x7 with xcr0_accum 0", |b| {
            b.truncate(8 + 16);
            put64(b, 8, 7);
            put64(b, 16, 0);
        }),
        case(PV, R::X86_PV_VCPU_XSAVE, "xcr0 0x1f has bits outside xcr0_accum 0x7", |b| put64(b, 8, 0x1f)),
        case(PV, R::X86_PV_VCPU_XSAVE, "848 bytes, xcr0_accum 0x3 needs exactly 592", |b| {
            put64(b, 8, 3);
            put64(b, 16, 3);
            put64(b, 8 + 16 + 512, 3);
        }),
        case(PV, R::X86_PV_VCPU_XSAVE, "only the standard (uncompressed) form loads", |b| {
            put64(b, 8 + 16 + 520, 1 << 63)
        }),
    ];
    // X86_PV_VCPU_MSRS: the real PV file has none; one is appended after vcpu 0's XSAVE.
    let msrs = |entries: &'static [(u32, u32, u64)]| {
        move |b: &mut Vec<u8>| {
            b.truncate(8);
            for &(i, r, v) in entries {
                b.extend(i.to_le_bytes().into_iter().chain(r.to_le_bytes()).chain(v.to_le_bytes()));
            }
        }
    };
    v.extend([
        case(PV, R::X86_PV_VCPU_MSRS, "entry 0 (MSR 0xc0000103): reserved is 0x1", msrs(&[(0xc000_0103, 1, 0)])),
        case(PV, R::X86_PV_VCPU_MSRS, "MSR 0xda0 is not one XEN_DOMCTL_set_vcpu_msrs loads", msrs(&[(0xda0, 0, 0)])),
        case(
            PV,
            R::X86_PV_VCPU_MSRS,
            "TSC_AUX value 0x100000000 does not fit 32 bits",
            msrs(&[(0xc000_0103, 0, 1 << 32)]),
        ),
        case(
            PV,
            R::X86_PV_VCPU_MSRS,
            "DR address mask without dbext in the CPUID policy",
            msrs(&[(0xc001_1019, 0, 1)]),
        ),
        case(PV, R::X86_PV_VCPU_MSRS, "MISC_FEATURES_ENABLES value 0x2", msrs(&[(0x140, 0, 2)])),
        case(PV, R::X86_PV_VCPU_MSRS, "12 MSRs, more than the 11", msrs(&[(0xc000_0103, 0, 1); 12])),
    ]);
    v
}

/// The real PV file with an (empty-rule) X86_PV_VCPU_MSRS record for vcpu 0 after its XSAVE
/// record, so the MSR cases have a record to break.
fn with_msrs_record(bytes: &[u8]) -> Vec<u8> {
    let recs = records(bytes);
    let xsave = recs.iter().find(|r| r.rtype == RecordType::X86_PV_VCPU_XSAVE).unwrap();
    let at = xsave.offset as usize + 8 + xsave.len.next_multiple_of(8);
    let mut body = vec![0u8; 8];
    body.extend(0xc000_0103u32.to_le_bytes().into_iter().chain([0; 4]).chain(7u64.to_le_bytes()));
    let mut out = bytes[..at].to_vec();
    out.extend_from_slice(&RecordType::X86_PV_VCPU_MSRS.0.to_le_bytes());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    out.extend_from_slice(&bytes[at..]);
    out
}

/// `bytes` without the PAGE_DATA records that only mark pfns XTAB (the HVM guests' 4 GiB of
/// unpopulated space: a million pfns a verification walks one by one). The records the rules
/// are about, and every page with data, stay as Xen wrote them.
fn without_xtab_runs(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut kept = 0usize;
    let mut r = StreamReader::from_slice(bytes);
    while let Some(item) = r.next_item().unwrap() {
        if let Item::Record(rec) = item
            && rec.rtype == RecordType::PAGE_DATA
            && let Ok(sr_format::body::RecordBody::PageData(p)) =
                sr_format::body::RecordBody::parse(&rec, 12, sr_format::Strictness::Lenient)
            && p.entries().all(|e| e.page_type == sr_format::PageType::XTAB)
        {
            let start = rec.offset as usize;
            out.extend_from_slice(&bytes[kept..start]);
            kept = start + 8 + rec.body.len().next_multiple_of(8);
        }
    }
    out.extend_from_slice(&bytes[kept..]);
    out
}

fn verify(bytes: &[u8]) -> Result<DomainState, RestoreError> {
    // Page bodies skipped, as `xsr verify` reads a file: the record rules do not need them.
    Restorer::new(RestoreOptions::default())
        .verify(StreamReader::from_slice(bytes).skip_page_bodies(true))
        .map(|r| r.state)
}

/// Saves `state` (memory empty: the record rules run before any page is read).
fn save(state: &DomainState) -> (Result<(), SaveError>, Vec<u8>) {
    let mem = RamMemory::new(u32::from(state.page_shift), 0x10_0000).unwrap();
    let guest = save_common::TestGuest::new(Box::new(mem), state.clone());
    let mut out = Vec::new();
    // libxl: the HVM guest's device-model record needs it.
    let opts = SaveOptions { workers: 1, container: sr_save::Container::Libxl, ..Default::default() };
    let r = Saver::new(opts).save(&guest, &mut out).map(drop);
    (r, out)
}

#[test]
fn every_rule_rejects_its_broken_record_in_verify_restore_and_save() {
    // The full files verify (the control); the cases use them without their XTAB-only
    // PAGE_DATA records, so that each of the 79 verifications is quick.
    let files: Vec<(&str, Vec<u8>)> = [HVM, PVH, PV]
        .into_iter()
        .map(|f| (f, save_file(f)))
        .map(|(f, b)| (f, if f == PV { with_msrs_record(&b) } else { b }))
        .collect();
    let cases = cases();
    let mut per_record = std::collections::BTreeMap::<String, usize>::new();
    for (file, full) in &files {
        verify(full).unwrap_or_else(|e| panic!("{file}: the unbroken file is rejected: {e}"));
        let good = &without_xtab_runs(full);
        let state = verify(good).unwrap_or_else(|e| panic!("{file}: the unbroken file is rejected: {e}"));
        let recs = records(good);
        for c in cases.iter().filter(|c| c.file == *file) {
            let rec = *recs.iter().find(|r| r.rtype == c.rtype).unwrap();
            let at = rec.offset as usize + 8;
            let mut body = good[at..at + rec.len].to_vec();
            // Control: the record as it is passes its rules.
            sr_rules::check_record(&state, c.rtype, &body, at as u64).unwrap_or_else(|e| panic!("{file}: {e}"));
            (c.edit)(&mut body);
            let broken = splice(good, rec, &body);
            // verify and restore: the same engine, the record and its offset named.
            match verify(&broken) {
                Err(RestoreError::Rejected { offset, index, record, rule }) => {
                    assert_eq!(
                        (offset, index, record),
                        (rec.offset, rec.index, c.rtype),
                        "{file} {}: {rule}",
                        c.needle
                    );
                    assert!(rule.contains(c.needle), "{file}: {rule:?} does not say {:?}", c.needle);
                }
                other => panic!("{file} {}: verify gave {other:?}", c.needle),
            }
            // save: the same rule, before anything is written.
            let mut broken_state = state.clone();
            apply(&mut broken_state, c.rtype, &body);
            let (r, out) = save(&broken_state);
            match r {
                Err(SaveError::RejectedRecord { record, violation }) => {
                    assert_eq!(record, c.rtype);
                    assert!(violation.to_string().contains(c.needle), "{file}: save: {violation}");
                }
                other => panic!("{file} {}: save gave {other:?}", c.needle),
            }
            assert!(out.is_empty(), "{file} {}: save wrote {} bytes", c.needle, out.len());
            *per_record.entry(c.rtype.to_string()).or_default() += 1;
        }
    }
    assert_eq!(per_record.values().sum::<usize>(), cases.len(), "{per_record:?}");
    eprintln!("rules checked per record type: {per_record:?}");
}

#[test]
fn hvm_save_records_are_reported_at_their_byte_offset() {
    let good = save_file(HVM);
    let rec = *records(&good).iter().find(|r| r.rtype == RecordType::HVM_CONTEXT).unwrap();
    let at = rec.offset as usize + 8;
    let mut body = good[at..at + rec.len].to_vec();
    cpu(|c| c.cr0.set(0x8005_0023))(&mut body);
    let broken = splice(&good, rec, &body);
    let e = verify(&broken).unwrap_err().to_string();
    // The CPU record's descriptor is at byte 0x20 of the blob.
    let want = format!(
        "record 1024 (HVM_CONTEXT) at byte {}: HVM save record CPU (instance 0) at byte {}: CR0 0x80050023 has ET (bit 4) clear (hvm_load_cpu_ctxt: bad CR0)",
        rec.offset,
        at + 0x20
    );
    assert_eq!(e, want);
}

/// The CLI end to end: `verify`, `restore` and `save DIR` of a real HVM guest whose CPU record
/// breaks a rule exit 1 with the same rule; nothing is written.
#[test]
fn the_cli_rejects_alike() {
    let dir = tempfile::tempdir().unwrap();
    let good = save_file(HVM);
    let good_path = dir.path().join("good.save");
    fs::write(&good_path, &good).unwrap();
    let rec = *records(&good).iter().find(|r| r.rtype == RecordType::HVM_CONTEXT).unwrap();
    let at = rec.offset as usize + 8;
    let mut body = good[at..at + rec.len].to_vec();
    let edit = cpu(|c| c.cr4.set(c.cr4.get() | 1 << 13));
    edit(&mut body);
    let broken_path = dir.path().join("broken.save");
    fs::write(&broken_path, splice(&good, rec, &body)).unwrap();
    let rule = "CR4 0x1526b0 sets VMXE but the CPUID policy has no vmx (hvm_cr4_guest_valid_bits: bad CR4)";
    let prefix = format!(
        "record 1024 (HVM_CONTEXT) at byte {}: HVM save record CPU (instance 0) at byte {}: ",
        rec.offset,
        at + 0x20
    );

    let o = xsr(&["verify", broken_path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        common::stdout(&o).contains(&format!("{prefix}{rule}")) || stderr(&o).contains(&format!("{prefix}{rule}")),
        "{}{}",
        common::stdout(&o),
        stderr(&o)
    );

    let out = dir.path().join("restored");
    let o = xsr(&["restore", broken_path.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains(&format!("{prefix}{rule}")), "{}", stderr(&o));
    assert!(!out.exists());

    // save: a directory restored from the good file, its HVM context broken the same way.
    let good_dir = dir.path().join("good");
    let o = xsr(&["restore", good_path.to_str().unwrap(), "--out", good_dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let blob = good_dir.join("hvm_context.bin");
    let mut ctx = fs::read(&blob).unwrap();
    edit(&mut ctx);
    fs::write(&blob, &ctx).unwrap();
    let saved = dir.path().join("saved.save");
    let o = xsr(&["save", good_dir.to_str().unwrap(), "--out", saved.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let want =
        format!("restore would reject this domain: HVM_CONTEXT: HVM save record CPU (instance 0) at byte 32: {rule}");
    assert!(stderr(&o).contains(&want), "{}", stderr(&o));
    assert!(!saved.exists());
}
