//! The x86 HVM save records inside an HVM_CONTEXT blob, typed.
//!
//! The blob is what `XEN_DOMCTL_gethvmcontext` returns: back-to-back entries, each an 8-byte
//! [`HvmSaveDescriptor`] (u16 typecode, u16 instance, u32 payload length) and its payload, the
//! last one END (typecode 0, length 0). Layouts are those of
//! `xen/include/public/arch-x86/hvm/save.h` (Xen 4.17); [`decode`] types HEADER, CPU, LAPIC,
//! LAPIC_REGS, MTRR, CPU_XSAVE, CPU_MSR and TSC_ADJUST and keeps every other entry (PIC,
//! IOAPIC, timers, VIRIDIAN, VMCE and unknown codes) as opaque bytes. Every entry keeps its
//! exact payload slice, so [`HvmSaveRecords::emit`] gives back the input byte for byte.
//!
//! Lengths are checked as Xen's `hvm_load` checks them: each descriptor must fit, each payload
//! must fit, the blob must reach an END entry; HEADER, LAPIC, LAPIC_REGS, MTRR and TSC_ADJUST
//! have their exact size; CPU may be shorter than the current 1032 bytes (Xen zero-extends
//! older forms, and fixes up the pre-3.4 1016-byte form without `msr_tsc_aux`); CPU_XSAVE
//! holds at least its 24-byte header; CPU_MSR is exactly `8 + 16 * count`.

use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::HvmSaveDescriptor;
use crate::cpu::{Segment, TableReg, X86Regs};
use crate::error::{Error, Result};

/// An HVM save record type code (`DECLARE_HVM_SAVE_TYPE` in Xen's save headers).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HvmSaveType(pub u16);

impl HvmSaveType {
    /// END: terminates the blob.
    pub const END: Self = Self(0);
    /// HEADER: [`HvmSaveHeader`].
    pub const HEADER: Self = Self(1);
    /// CPU: [`HvmHwCpu`], one per vcpu.
    pub const CPU: Self = Self(2);
    /// PIC (two instances, master and slave).
    pub const PIC: Self = Self(3);
    /// IOAPIC.
    pub const IOAPIC: Self = Self(4);
    /// LAPIC: [`HvmHwLapic`], one per vcpu.
    pub const LAPIC: Self = Self(5);
    /// LAPIC_REGS: [`HvmHwLapicRegs`], one per vcpu.
    pub const LAPIC_REGS: Self = Self(6);
    /// PCI_IRQ.
    pub const PCI_IRQ: Self = Self(7);
    /// ISA_IRQ.
    pub const ISA_IRQ: Self = Self(8);
    /// PCI_LINK.
    pub const PCI_LINK: Self = Self(9);
    /// PIT.
    pub const PIT: Self = Self(10);
    /// RTC.
    pub const RTC: Self = Self(11);
    /// HPET.
    pub const HPET: Self = Self(12);
    /// PMTIMER.
    pub const PMTIMER: Self = Self(13);
    /// MTRR: [`HvmHwMtrr`], one per vcpu.
    pub const MTRR: Self = Self(14);
    /// VIRIDIAN_DOMAIN.
    pub const VIRIDIAN_DOMAIN: Self = Self(15);
    /// CPU_XSAVE: [`CpuXsave`], one per vcpu.
    pub const CPU_XSAVE: Self = Self(16);
    /// VIRIDIAN_VCPU.
    pub const VIRIDIAN_VCPU: Self = Self(17);
    /// VMCE_VCPU.
    pub const VMCE_VCPU: Self = Self(18);
    /// TSC_ADJUST: u64 IA32_TSC_ADJUST, one per vcpu.
    pub const TSC_ADJUST: Self = Self(19);
    /// CPU_MSR: [`CpuMsrs`], one per vcpu.
    pub const CPU_MSR: Self = Self(20);

    /// Xen's name for the type, or `None` for a code Xen 4.17 does not define.
    pub fn name(self) -> Option<&'static str> {
        const NAMES: [&str; 21] = [
            "END",
            "HEADER",
            "CPU",
            "PIC",
            "IOAPIC",
            "LAPIC",
            "LAPIC_REGS",
            "PCI_IRQ",
            "ISA_IRQ",
            "PCI_LINK",
            "PIT",
            "RTC",
            "HPET",
            "PMTIMER",
            "MTRR",
            "VIRIDIAN_DOMAIN",
            "CPU_XSAVE",
            "VIRIDIAN_VCPU",
            "VMCE_VCPU",
            "TSC_ADJUST",
            "CPU_MSR",
        ];
        NAMES.get(usize::from(self.0)).copied()
    }
}

impl std::fmt::Display for HvmSaveType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "type {}", self.0),
        }
    }
}

/// `HVM_FILE_MAGIC`, the first word of the HEADER record.
pub const HVM_FILE_MAGIC: u32 = 0x5438_1286;

/// HEADER (`struct hvm_save_header`, 24 bytes).
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, PartialEq, Eq, Debug, Default)]
#[repr(C)]
pub struct HvmSaveHeader {
    /// [`HVM_FILE_MAGIC`].
    pub magic: U32,
    /// Format version (1).
    pub version: U32,
    /// Version of the Xen that saved it.
    pub changeset: U64,
    /// CPUID leaf 1 EAX of the saving host.
    pub cpuid: U32,
    /// Guest TSC frequency, kHz.
    pub gtsc_khz: U32,
}

/// CPU (`struct hvm_hw_cpu`, 1032 bytes in Xen 4.17): the vcpu's architectural state.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, PartialEq, Eq, Debug)]
#[repr(C)]
#[allow(missing_docs)] // field names are Xen's
pub struct HvmHwCpu {
    /// FXSAVE image of the x87/SSE state.
    pub fpu_regs: [u8; 512],
    pub rax: U64,
    pub rbx: U64,
    pub rcx: U64,
    pub rdx: U64,
    pub rbp: U64,
    pub rsi: U64,
    pub rdi: U64,
    pub rsp: U64,
    pub r8: U64,
    pub r9: U64,
    pub r10: U64,
    pub r11: U64,
    pub r12: U64,
    pub r13: U64,
    pub r14: U64,
    pub r15: U64,
    pub rip: U64,
    pub rflags: U64,
    pub cr0: U64,
    pub cr2: U64,
    pub cr3: U64,
    pub cr4: U64,
    pub dr0: U64,
    pub dr1: U64,
    pub dr2: U64,
    pub dr3: U64,
    pub dr6: U64,
    pub dr7: U64,
    /// Selectors: cs, ds, es, fs, gs, ss, tr, ldtr.
    pub sel: [U32; 8],
    /// Limits: cs, ds, es, fs, gs, ss, tr, ldtr, idtr, gdtr.
    pub limit: [U32; 10],
    /// Bases: cs, ds, es, fs, gs, ss, tr, ldtr, idtr, gdtr.
    pub base: [U64; 10],
    /// Access rights ("arbytes"): cs, ds, es, fs, gs, ss, tr, ldtr.
    pub arbytes: [U32; 8],
    pub sysenter_cs: U64,
    pub sysenter_esp: U64,
    pub sysenter_eip: U64,
    /// IA32_KERNEL_GS_BASE.
    pub shadow_gs: U64,
    pub msr_flags: U64,
    pub msr_lstar: U64,
    pub msr_star: U64,
    pub msr_cstar: U64,
    pub msr_syscall_mask: U64,
    pub msr_efer: U64,
    pub msr_tsc_aux: U64,
    pub tsc: U64,
    /// Pending event (vector, type, error-valid and valid bits).
    pub pending_event: U32,
    pub error_code: U32,
    /// `XEN_X86_FPU_INITIALISED` and friends.
    pub flags: U32,
    pub pad0: U32,
}

const _: () = assert!(size_of::<HvmSaveHeader>() == 24);
const _: () = assert!(size_of::<HvmHwCpu>() == 1032);

/// Size of the pre-3.4 CPU record (`struct hvm_hw_cpu_compat`, no `msr_tsc_aux`, no flags).
pub const HVM_HW_CPU_COMPAT_SIZE: usize = 1016;

impl HvmHwCpu {
    /// Decodes a CPU payload as Xen loads it: the 1016-byte compat form gets `msr_tsc_aux`
    /// inserted as 0; any other form no longer than 1032 bytes is zero-extended. `None` if the
    /// payload is longer than 1032 bytes.
    pub fn decode(payload: &[u8]) -> Option<Self> {
        const TSC_AUX_AT: usize = 1000; // offset of msr_tsc_aux
        if payload.len() > size_of::<Self>() {
            return None;
        }
        let mut cpu = Self::new_zeroed();
        let dst = cpu.as_mut_bytes();
        if payload.len() == HVM_HW_CPU_COMPAT_SIZE {
            // compat: ... msr_efer, tsc, pending_event, error_code (no msr_tsc_aux, no flags).
            dst[..TSC_AUX_AT].copy_from_slice(&payload[..TSC_AUX_AT]);
            dst[TSC_AUX_AT + 8..HVM_HW_CPU_COMPAT_SIZE + 8].copy_from_slice(&payload[TSC_AUX_AT..]);
        } else {
            dst[..payload.len()].copy_from_slice(payload);
        }
        Some(cpu)
    }

    /// The register set: everything the record carries (general purpose, rip, rflags, all
    /// eight segments with base, limit and access rights, GDTR, IDTR, CR0/2/3/4, EFER,
    /// KERNEL_GS_BASE, debug registers, SYSENTER and SYSCALL MSRs).
    pub fn regs(&self) -> X86Regs {
        let seg = |i: usize| Segment {
            selector: self.sel[i].get() as u16,
            base: self.base[i].get(),
            limit: self.limit[i].get(),
            attr: self.arbytes[i].get(),
        };
        X86Regs {
            rax: self.rax.get(),
            rbx: self.rbx.get(),
            rcx: self.rcx.get(),
            rdx: self.rdx.get(),
            rsi: self.rsi.get(),
            rdi: self.rdi.get(),
            rbp: self.rbp.get(),
            rsp: self.rsp.get(),
            r8: self.r8.get(),
            r9: self.r9.get(),
            r10: self.r10.get(),
            r11: self.r11.get(),
            r12: self.r12.get(),
            r13: self.r13.get(),
            r14: self.r14.get(),
            r15: self.r15.get(),
            rip: self.rip.get(),
            rflags: self.rflags.get(),
            cs: seg(0),
            ds: seg(1),
            es: seg(2),
            fs: seg(3),
            gs: seg(4),
            ss: seg(5),
            tr: seg(6),
            ldtr: seg(7),
            idtr: TableReg { base: self.base[8].get(), limit: self.limit[8].get() },
            gdtr: TableReg { base: self.base[9].get(), limit: self.limit[9].get() },
            cr0: self.cr0.get(),
            cr2: self.cr2.get(),
            cr3: self.cr3.get(),
            cr4: self.cr4.get(),
            efer: self.msr_efer.get(),
            kernel_gs_base: self.shadow_gs.get(),
            dr0: self.dr0.get(),
            dr1: self.dr1.get(),
            dr2: self.dr2.get(),
            dr3: self.dr3.get(),
            dr6: self.dr6.get(),
            dr7: self.dr7.get(),
            sysenter_cs: self.sysenter_cs.get(),
            sysenter_esp: self.sysenter_esp.get(),
            sysenter_eip: self.sysenter_eip.get(),
            star: self.msr_star.get(),
            lstar: self.msr_lstar.get(),
            cstar: self.msr_cstar.get(),
            sfmask: self.msr_syscall_mask.get(),
        }
    }
}

/// LAPIC (`struct hvm_hw_lapic`, 16 bytes).
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, PartialEq, Eq, Debug, Default)]
#[repr(C)]
pub struct HvmHwLapic {
    /// IA32_APIC_BASE.
    pub apic_base_msr: U64,
    /// `VLAPIC_*_DISABLED` bits.
    pub disabled: U32,
    /// Timer divisor.
    pub timer_divisor: U32,
}

/// LAPIC_REGS (`struct hvm_hw_lapic_regs`): the 1024-byte APIC register page.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, PartialEq, Eq, Debug)]
#[repr(C)]
pub struct HvmHwLapicRegs {
    /// Registers at their MMIO offsets (each 32-bit register on a 16-byte boundary).
    pub data: [u8; 1024],
}

impl HvmHwLapicRegs {
    /// The 32-bit register at MMIO offset `reg` (e.g. 0x20 APIC ID, 0x80 TPR); `None` past
    /// the page.
    pub fn reg(&self, reg: usize) -> Option<u32> {
        self.data.get(reg..reg + 4).map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
    }
}

/// MTRR (`struct hvm_hw_mtrr`, 240 bytes).
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, PartialEq, Eq, Debug, Default)]
#[repr(C)]
pub struct HvmHwMtrr {
    /// IA32_PAT.
    pub msr_pat_cr: U64,
    /// Variable ranges: PHYSBASE0, PHYSMASK0, ... (8 pairs).
    pub msr_mtrr_var: [U64; 16],
    /// The 11 fixed-range MTRRs.
    pub msr_mtrr_fixed: [U64; 11],
    /// IA32_MTRRCAP.
    pub msr_mtrr_cap: U64,
    /// IA32_MTRR_DEF_TYPE.
    pub msr_mtrr_def_type: U64,
}

const _: () = assert!(size_of::<HvmHwLapic>() == 16);
const _: () = assert!(size_of::<HvmHwLapicRegs>() == 1024);
const _: () = assert!(size_of::<HvmHwMtrr>() == 240);

/// Fixed part of CPU_XSAVE (`struct hvm_hw_cpu_xsave`, before the save area).
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, PartialEq, Eq, Debug, Default)]
#[repr(C)]
pub struct CpuXsaveHeader {
    /// Features the saving host supported.
    pub xfeature_mask: U64,
    /// The guest's XCR0.
    pub xcr0: U64,
    /// Union of every XCR0 the guest has used.
    pub xcr0_accum: U64,
}

/// CPU_XSAVE: the header and the XSAVE area (legacy region, XSAVE header, components).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuXsave<'a> {
    /// The fixed part.
    pub header: &'a CpuXsaveHeader,
    /// The XSAVE area.
    pub area: &'a [u8],
}

/// Fixed part of CPU_MSR (`struct hvm_msr`).
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, PartialEq, Eq, Debug, Default)]
#[repr(C)]
pub struct CpuMsrHeader {
    /// Number of entries.
    pub count: U32,
    /// Reserved.
    pub rsvd: U32,
}

/// One CPU_MSR entry (`struct hvm_one_msr`).
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, PartialEq, Eq, Debug, Default)]
#[repr(C)]
pub struct CpuMsrEntry {
    /// MSR index.
    pub index: U32,
    /// Reserved.
    pub rsvd: U32,
    /// Value.
    pub val: U64,
}

/// CPU_MSR: the MSRs Xen saves beside the CPU record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuMsrs<'a> {
    /// count and reserved word.
    pub header: &'a CpuMsrHeader,
    /// The entries.
    pub entries: &'a [CpuMsrEntry],
}

/// The typed view of one save record.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HvmSaveRecord<'a> {
    /// HEADER.
    Header(&'a HvmSaveHeader),
    /// CPU, decoded as Xen loads it (older forms zero-extended).
    Cpu(Box<HvmHwCpu>),
    /// LAPIC.
    Lapic(&'a HvmHwLapic),
    /// LAPIC_REGS.
    LapicRegs(&'a HvmHwLapicRegs),
    /// MTRR.
    Mtrr(&'a HvmHwMtrr),
    /// CPU_XSAVE.
    CpuXsave(CpuXsave<'a>),
    /// CPU_MSR.
    CpuMsr(CpuMsrs<'a>),
    /// TSC_ADJUST: IA32_TSC_ADJUST.
    TscAdjust(u64),
    /// Any other record (PIC, IOAPIC, PCI_IRQ, ISA_IRQ, PCI_LINK, PIT, RTC, HPET, PMTIMER,
    /// VIRIDIAN_*, VMCE_VCPU, or a code Xen 4.17 does not define): the payload, opaque.
    Opaque(&'a [u8]),
    /// END.
    End,
}

/// One entry of the blob: where it is, its descriptor, its exact payload and its typed view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HvmSaveEntry<'a> {
    /// Byte offset of the descriptor (absolute when [`decode`] was given the blob's offset).
    pub offset: u64,
    /// The descriptor as found.
    pub descriptor: HvmSaveDescriptor,
    /// The payload as found (what [`HvmSaveRecords::emit`] writes back).
    pub payload: &'a [u8],
    /// The typed view.
    pub record: HvmSaveRecord<'a>,
}

impl HvmSaveEntry<'_> {
    /// The record type.
    pub fn save_type(&self) -> HvmSaveType {
        HvmSaveType(self.descriptor.typecode.get())
    }

    /// The instance (the vcpu for per-vcpu records).
    pub fn instance(&self) -> u16 {
        self.descriptor.instance.get()
    }
}

/// A decoded HVM_CONTEXT blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HvmSaveRecords<'a> {
    /// The entries, in blob order, the last one END.
    pub entries: Vec<HvmSaveEntry<'a>>,
    /// Bytes after END (Xen ignores them); kept so that emitting is exact.
    pub trailing: &'a [u8],
}

impl<'a> HvmSaveRecords<'a> {
    /// Writes the blob back: each descriptor and payload as found, then the trailing bytes.
    /// For any blob [`decode`] accepts, the output equals the input.
    pub fn emit(&self, out: &mut Vec<u8>) {
        for e in &self.entries {
            out.extend_from_slice(e.descriptor.as_bytes());
            out.extend_from_slice(e.payload);
        }
        out.extend_from_slice(self.trailing);
    }

    /// The HEADER record, if present.
    pub fn header(&self) -> Option<&'a HvmSaveHeader> {
        self.entries.iter().find_map(|e| match e.record {
            HvmSaveRecord::Header(h) => Some(h),
            _ => None,
        })
    }

    /// Each vcpu's registers from its CPU record, by instance, in blob order (EFER and the
    /// SYSCALL MSRs come from the CPU record itself, which carries them).
    pub fn vcpu_regs(&self) -> Vec<(u16, X86Regs)> {
        self.entries
            .iter()
            .filter_map(|e| match &e.record {
                HvmSaveRecord::Cpu(cpu) => Some((e.instance(), cpu.regs())),
                _ => None,
            })
            .collect()
    }
}

fn bad(offset: u64, d: &HvmSaveDescriptor, rule: impl Into<String>) -> Error {
    Error::BadHvmSaveRecord {
        offset,
        typecode: d.typecode.get(),
        instance: d.instance.get(),
        length: d.length.get(),
        rule: rule.into(),
    }
}

fn exact<'a, T: FromBytes + KnownLayout + Immutable>(
    payload: &'a [u8],
    offset: u64,
    d: &HvmSaveDescriptor,
) -> Result<&'a T> {
    T::ref_from_bytes(payload).map_err(|_| bad(offset, d, format!("exactly {} bytes", size_of::<T>())))
}

/// Decodes an HVM_CONTEXT blob. `base` is the blob's absolute offset in the input (the
/// record's offset + 8), used in errors and [`HvmSaveEntry::offset`].
///
/// # Errors
///
/// [`Error::Truncated`] when a descriptor or payload runs past the blob (or no END entry is
/// reached); [`Error::BadHvmSaveRecord`] when a typed record has a length Xen would reject
/// (see the module documentation) or END has a payload.
pub fn decode(blob: &[u8], base: u64) -> Result<HvmSaveRecords<'_>> {
    let mut entries = Vec::new();
    let mut at = 0usize;
    loop {
        let offset = base + at as u64;
        let rest = &blob[at..];
        let Ok((d, tail)) = HvmSaveDescriptor::read_from_prefix(rest) else {
            return Err(Error::Truncated {
                offset,
                what: "HVM save descriptor (no END record)",
                needed: 8,
                got: rest.len() as u64,
            });
        };
        let len = d.length.get() as usize;
        if len > tail.len() {
            return Err(Error::Truncated {
                offset,
                what: "HVM save record",
                needed: 8 + u64::from(d.length.get()),
                got: rest.len() as u64,
            });
        }
        let payload = &tail[..len];
        let t = HvmSaveType(d.typecode.get());
        let record = match t {
            HvmSaveType::END if len != 0 => return Err(bad(offset, &d, "END has no payload")),
            HvmSaveType::END => HvmSaveRecord::End,
            HvmSaveType::HEADER => HvmSaveRecord::Header(exact(payload, offset, &d)?),
            HvmSaveType::CPU => HvmSaveRecord::Cpu(Box::new(
                HvmHwCpu::decode(payload).ok_or_else(|| bad(offset, &d, "at most 1032 bytes"))?,
            )),
            HvmSaveType::LAPIC => HvmSaveRecord::Lapic(exact(payload, offset, &d)?),
            HvmSaveType::LAPIC_REGS => HvmSaveRecord::LapicRegs(exact(payload, offset, &d)?),
            HvmSaveType::MTRR => HvmSaveRecord::Mtrr(exact(payload, offset, &d)?),
            HvmSaveType::TSC_ADJUST => HvmSaveRecord::TscAdjust(exact::<U64>(payload, offset, &d)?.get()),
            HvmSaveType::CPU_XSAVE => {
                let (header, area) =
                    CpuXsaveHeader::ref_from_prefix(payload).map_err(|_| bad(offset, &d, "at least 24 bytes"))?;
                HvmSaveRecord::CpuXsave(CpuXsave { header, area })
            }
            HvmSaveType::CPU_MSR => {
                let rule = || {
                    let count = CpuMsrHeader::ref_from_prefix(payload).map_or(0, |(h, _)| h.count.get());
                    format!("8 + 16 * count = {}", 8 + 16 * u64::from(count))
                };
                let (header, rest) = CpuMsrHeader::ref_from_prefix(payload).map_err(|_| bad(offset, &d, rule()))?;
                let entries = <[CpuMsrEntry]>::ref_from_bytes(rest)
                    .ok()
                    .filter(|e| e.len() as u64 == u64::from(header.count.get()))
                    .ok_or_else(|| bad(offset, &d, rule()))?;
                HvmSaveRecord::CpuMsr(CpuMsrs { header, entries })
            }
            _ => HvmSaveRecord::Opaque(payload),
        };
        entries.push(HvmSaveEntry { offset, descriptor: d, payload, record });
        at += 8 + len;
        if t == HvmSaveType::END {
            return Ok(HvmSaveRecords { entries, trailing: &blob[at..] });
        }
    }
}
