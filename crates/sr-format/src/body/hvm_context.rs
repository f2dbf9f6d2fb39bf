//! The x86 HVM save records inside an HVM_CONTEXT blob, typed, at their Xen 4.17 sizes.
//!
//! The blob is what `XEN_DOMCTL_gethvmcontext` returns and `XEN_DOMCTL_sethvmcontext` loads
//! (`hvm_save`/`hvm_load`, `xen/arch/x86/hvm/save.c`): back-to-back entries, each an 8-byte
//! [`HvmSaveDescriptor`] (u16 typecode, u16 instance, u32 payload length) and its payload,
//! up to an END descriptor (typecode 0). Xen stops at END without reading its length, so
//! whatever follows END's 8 bytes is kept as [`HvmSaveRecords::trailing`].
//!
//! [`decode`] types every record Xen 4.17 writes (HEADER, CPU, PIC, IOAPIC, LAPIC,
//! LAPIC_REGS, PCI_IRQ, ISA_IRQ, PCI_LINK, PIT, RTC, HPET, PMTIMER, MTRR, VIRIDIAN_DOMAIN,
//! CPU_XSAVE, VIRIDIAN_VCPU, VMCE_VCPU, TSC_ADJUST, CPU_MSR) and checks its length the way
//! its load handler does ([`LoadLength`], [`HvmSaveType::info`]):
//!
//! * `hvm_load_entry`: exactly the 4.17 size (HEADER, PIC, IOAPIC, LAPIC_REGS, PCI_IRQ,
//!   ISA_IRQ, PCI_LINK, PIT, HPET, PMTIMER, MTRR, TSC_ADJUST);
//! * `hvm_load_entry_zeroextend`: at most the 4.17 size, an older shorter form read with zeros
//!   after it (CPU, LAPIC, RTC, VIRIDIAN_DOMAIN, VIRIDIAN_VCPU, VMCE_VCPU); the 1016-byte
//!   pre-3.4 CPU form is its own struct ([`HvmHwCpuCompat`]), moved as `_hvm_hw_fix_cpu`
//!   moves it;
//! * CPU_XSAVE: at least the 24-byte header and 576-byte legacy region and XSAVE header (the
//!   size XCR0 implies, and a zero tail after it, are rules of `sr-rules`: they need the
//!   domain's CPUID policy);
//! * CPU_MSR: at least one entry, exactly `8 + 16 * count` bytes.
//!
//! A code Xen 4.17 does not define is kept as [`HvmSaveRecord::Unknown`] (Xen's loader
//! refuses it: that, the record order and every field value are rules of `sr-rules`).
//!
//! Decoding keeps each record's descriptor and typed value, and [`HvmSaveRecords::emit`]
//! encodes them back: for any blob [`decode`] accepts, the output equals the input byte for
//! byte (a zero-extended record is written at its original length).

mod structs;

use std::borrow::Cow;

use zerocopy::little_endian::{U16, U32};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

pub use structs::*;

use super::HvmSaveDescriptor;
use crate::cpu::X86Regs;
use crate::error::{Error, Result};

/// An HVM save record type code (`DECLARE_HVM_SAVE_TYPE` in Xen's save headers).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HvmSaveType(pub u16);

/// How a record's load handler checks its length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadLength {
    /// `hvm_load_entry`: exactly [`SaveTypeInfo::size`] bytes.
    Exact,
    /// `hvm_load_entry_zeroextend`: at most [`SaveTypeInfo::size`] bytes; a shorter payload
    /// is read with zeros after it.
    ZeroExtend,
    /// CPU_XSAVE: at least [`SaveTypeInfo::size`] bytes (header, legacy region, XSAVE
    /// header); the exact size follows from `xcr0_accum`.
    Xsave,
    /// CPU_MSR: `8 + 16 * count` bytes with `count >= 1`.
    Msr,
}

/// What Xen 4.17 registers for a save record type (`HVM_REGISTER_SAVE_RESTORE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SaveTypeInfo {
    /// Xen's name.
    pub name: &'static str,
    /// The 4.17 payload size (for [`LoadLength::Xsave`] and [`LoadLength::Msr`]: the least).
    pub size: usize,
    /// How the loader checks the length.
    pub length: LoadLength,
    /// One instance per vcpu (`HVMSR_PER_VCPU`, the instance is the vcpu id) rather than per
    /// domain.
    pub per_vcpu: bool,
}

impl HvmSaveType {
    /// END: terminates the blob.
    pub const END: Self = Self(0);
    /// HEADER: [`HvmSaveHeader`].
    pub const HEADER: Self = Self(1);
    /// CPU: [`HvmHwCpu`], one per vcpu.
    pub const CPU: Self = Self(2);
    /// PIC: [`HvmHwVpic`], instances 0 (master) and 1 (slave).
    pub const PIC: Self = Self(3);
    /// IOAPIC: [`HvmHwVioapic`].
    pub const IOAPIC: Self = Self(4);
    /// LAPIC: [`HvmHwLapic`], one per vcpu.
    pub const LAPIC: Self = Self(5);
    /// LAPIC_REGS: [`HvmHwLapicRegs`], one per vcpu.
    pub const LAPIC_REGS: Self = Self(6);
    /// PCI_IRQ: [`HvmHwPciIrqs`].
    pub const PCI_IRQ: Self = Self(7);
    /// ISA_IRQ: [`HvmHwIsaIrqs`].
    pub const ISA_IRQ: Self = Self(8);
    /// PCI_LINK: [`HvmHwPciLink`].
    pub const PCI_LINK: Self = Self(9);
    /// PIT: [`HvmHwPit`].
    pub const PIT: Self = Self(10);
    /// RTC: [`HvmHwRtc`].
    pub const RTC: Self = Self(11);
    /// HPET: [`HvmHwHpet`].
    pub const HPET: Self = Self(12);
    /// PMTIMER: [`HvmHwPmtimer`].
    pub const PMTIMER: Self = Self(13);
    /// MTRR: [`HvmHwMtrr`], one per vcpu.
    pub const MTRR: Self = Self(14);
    /// VIRIDIAN_DOMAIN: [`HvmViridianDomainContext`].
    pub const VIRIDIAN_DOMAIN: Self = Self(15);
    /// CPU_XSAVE: [`CpuXsave`], one per vcpu.
    pub const CPU_XSAVE: Self = Self(16);
    /// VIRIDIAN_VCPU: [`HvmViridianVcpuContext`], one per vcpu.
    pub const VIRIDIAN_VCPU: Self = Self(17);
    /// VMCE_VCPU: [`HvmVmceVcpu`], one per vcpu.
    pub const VMCE_VCPU: Self = Self(18);
    /// TSC_ADJUST: [`HvmTscAdjust`], one per vcpu.
    pub const TSC_ADJUST: Self = Self(19);
    /// CPU_MSR: [`CpuMsrs`], one per vcpu.
    pub const CPU_MSR: Self = Self(20);
    /// `HVM_SAVE_CODE_MAX` of Xen 4.17: the highest code its loader knows.
    pub const MAX: Self = Self(20);

    /// Xen's name for the type, or `None` for a code Xen 4.17 does not define.
    pub fn name(self) -> Option<&'static str> {
        if self == Self::END {
            return Some("END");
        }
        self.info().map(|i| i.name)
    }

    /// What Xen 4.17 registers for the type; `None` for END and unknown codes.
    pub fn info(self) -> Option<SaveTypeInfo> {
        use LoadLength::{Exact, Msr, Xsave, ZeroExtend};
        let (name, size, length, per_vcpu) = match self.0 {
            1 => ("HEADER", size_of::<HvmSaveHeader>(), Exact, false),
            2 => ("CPU", size_of::<HvmHwCpu>(), ZeroExtend, true),
            3 => ("PIC", size_of::<HvmHwVpic>(), Exact, false),
            4 => ("IOAPIC", size_of::<HvmHwVioapic>(), Exact, false),
            5 => ("LAPIC", size_of::<HvmHwLapic>(), ZeroExtend, true),
            6 => ("LAPIC_REGS", size_of::<HvmHwLapicRegs>(), Exact, true),
            7 => ("PCI_IRQ", size_of::<HvmHwPciIrqs>(), Exact, false),
            8 => ("ISA_IRQ", size_of::<HvmHwIsaIrqs>(), Exact, false),
            9 => ("PCI_LINK", size_of::<HvmHwPciLink>(), Exact, false),
            10 => ("PIT", size_of::<HvmHwPit>(), Exact, false),
            11 => ("RTC", size_of::<HvmHwRtc>(), ZeroExtend, false),
            12 => ("HPET", size_of::<HvmHwHpet>(), Exact, false),
            13 => ("PMTIMER", size_of::<HvmHwPmtimer>(), Exact, false),
            14 => ("MTRR", size_of::<HvmHwMtrr>(), Exact, true),
            15 => ("VIRIDIAN_DOMAIN", size_of::<HvmViridianDomainContext>(), ZeroExtend, false),
            16 => ("CPU_XSAVE", size_of::<CpuXsaveHeader>() + XSTATE_AREA_MIN_SIZE, Xsave, true),
            17 => ("VIRIDIAN_VCPU", size_of::<HvmViridianVcpuContext>(), ZeroExtend, true),
            18 => ("VMCE_VCPU", size_of::<HvmVmceVcpu>(), ZeroExtend, true),
            19 => ("TSC_ADJUST", size_of::<HvmTscAdjust>(), Exact, true),
            20 => ("CPU_MSR", size_of::<CpuMsrHeader>() + size_of::<CpuMsrEntry>(), Msr, true),
            _ => return None,
        };
        Some(SaveTypeInfo { name, size, length, per_vcpu })
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

/// Size of the pre-3.4 CPU record ([`HvmHwCpuCompat`]).
pub const HVM_HW_CPU_COMPAT_SIZE: usize = size_of::<HvmHwCpuCompat>();

/// CPU_XSAVE: the header and the XSAVE area (legacy region, XSAVE header, components, and
/// any tail after the size `xcr0_accum` implies).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuXsave<'a> {
    /// The fixed part.
    pub header: CpuXsaveHeader,
    /// The XSAVE area, at least [`XSTATE_AREA_MIN_SIZE`] bytes.
    pub area: Cow<'a, [u8]>,
}

impl CpuXsave<'_> {
    /// The XSAVE header at byte 512 of the area.
    pub fn xsave_hdr(&self) -> XsaveHdr {
        XsaveHdr::read_from_prefix(&self.area[512..]).map(|(h, _)| h).expect("the area holds the XSAVE header")
    }
}

/// CPU_MSR: the MSRs Xen saves beside the CPU record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuMsrs<'a> {
    /// count and padding.
    pub header: CpuMsrHeader,
    /// The entries (`header.count` of them).
    pub entries: Cow<'a, [CpuMsrEntry]>,
}

/// The typed payload of one save record, as found (zero-extended to the 4.17 size where
/// the loader zero-extends; the descriptor keeps the original length).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HvmSaveRecord<'a> {
    /// HEADER.
    Header(HvmSaveHeader),
    /// CPU in the 4.17 form (or a shorter form other than 1016 bytes, zero-extended).
    Cpu(Box<HvmHwCpu>),
    /// CPU in the 1016-byte pre-3.4 form.
    CpuCompat(Box<HvmHwCpuCompat>),
    /// PIC.
    Pic(HvmHwVpic),
    /// IOAPIC.
    Ioapic(Box<HvmHwVioapic>),
    /// LAPIC.
    Lapic(HvmHwLapic),
    /// LAPIC_REGS.
    LapicRegs(Box<HvmHwLapicRegs>),
    /// PCI_IRQ.
    PciIrq(HvmHwPciIrqs),
    /// ISA_IRQ.
    IsaIrq(HvmHwIsaIrqs),
    /// PCI_LINK.
    PciLink(HvmHwPciLink),
    /// PIT.
    Pit(HvmHwPit),
    /// RTC.
    Rtc(HvmHwRtc),
    /// HPET.
    Hpet(Box<HvmHwHpet>),
    /// PMTIMER.
    Pmtimer(HvmHwPmtimer),
    /// MTRR.
    Mtrr(HvmHwMtrr),
    /// VIRIDIAN_DOMAIN.
    ViridianDomain(HvmViridianDomainContext),
    /// CPU_XSAVE.
    CpuXsave(CpuXsave<'a>),
    /// VIRIDIAN_VCPU.
    ViridianVcpu(Box<HvmViridianVcpuContext>),
    /// VMCE_VCPU.
    VmceVcpu(HvmVmceVcpu),
    /// TSC_ADJUST.
    TscAdjust(HvmTscAdjust),
    /// CPU_MSR.
    CpuMsr(CpuMsrs<'a>),
    /// A code Xen 4.17 does not define: the payload as found.
    Unknown(Cow<'a, [u8]>),
    /// END.
    End,
}

impl HvmSaveRecord<'_> {
    /// The fixed-size struct's bytes, for the records that have one.
    fn fixed_bytes(&self) -> Option<&[u8]> {
        Some(match self {
            Self::Header(r) => r.as_bytes(),
            Self::Cpu(r) => r.as_bytes(),
            Self::CpuCompat(r) => r.as_bytes(),
            Self::Pic(r) => r.as_bytes(),
            Self::Ioapic(r) => r.as_bytes(),
            Self::Lapic(r) => r.as_bytes(),
            Self::LapicRegs(r) => r.as_bytes(),
            Self::PciIrq(r) => r.as_bytes(),
            Self::IsaIrq(r) => r.as_bytes(),
            Self::PciLink(r) => r.as_bytes(),
            Self::Pit(r) => r.as_bytes(),
            Self::Rtc(r) => r.as_bytes(),
            Self::Hpet(r) => r.as_bytes(),
            Self::Pmtimer(r) => r.as_bytes(),
            Self::Mtrr(r) => r.as_bytes(),
            Self::ViridianDomain(r) => r.as_bytes(),
            Self::ViridianVcpu(r) => r.as_bytes(),
            Self::VmceVcpu(r) => r.as_bytes(),
            Self::TscAdjust(r) => r.as_bytes(),
            Self::CpuXsave(_) | Self::CpuMsr(_) | Self::Unknown(_) | Self::End => return None,
        })
    }

    /// The length of the record's full form: the 4.17 size of a fixed record, the bytes of a
    /// variable one.
    pub fn natural_len(&self) -> usize {
        match self {
            Self::CpuXsave(x) => size_of::<CpuXsaveHeader>() + x.area.len(),
            Self::CpuMsr(m) => size_of::<CpuMsrHeader>() + m.entries.len() * size_of::<CpuMsrEntry>(),
            Self::Unknown(b) => b.len(),
            Self::End => 0,
            fixed => fixed.fixed_bytes().map_or(0, <[u8]>::len),
        }
    }

    /// Appends the payload: a fixed record's first `len` bytes (zeros past its size), a
    /// variable record's bytes (`len` ignored).
    fn encode(&self, len: usize, out: &mut Vec<u8>) {
        match self {
            Self::CpuXsave(x) => {
                out.extend_from_slice(x.header.as_bytes());
                out.extend_from_slice(&x.area);
            }
            Self::CpuMsr(m) => {
                out.extend_from_slice(m.header.as_bytes());
                out.extend_from_slice(m.entries.as_bytes());
            }
            Self::Unknown(b) => out.extend_from_slice(b),
            Self::End => {}
            fixed => {
                let bytes = fixed.fixed_bytes().unwrap_or_default();
                let n = len.min(bytes.len());
                out.extend_from_slice(&bytes[..n]);
                out.resize(out.len() + (len - n), 0);
            }
        }
    }
}

/// One entry of the blob: where it is, its descriptor and its typed payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HvmSaveEntry<'a> {
    /// Byte offset of the descriptor (absolute when [`decode`] was given the blob's offset;
    /// 0 for an entry made with [`HvmSaveEntry::new`]).
    pub offset: u64,
    /// The descriptor as found. For a fixed-size record its `length` says how many of the
    /// struct's bytes are encoded; for END it is written back verbatim.
    pub descriptor: HvmSaveDescriptor,
    /// The typed payload.
    pub record: HvmSaveRecord<'a>,
}

impl<'a> HvmSaveEntry<'a> {
    /// An entry of type `save_type` for `record` at its natural length
    /// ([`HvmSaveRecord::natural_len`]).
    pub fn new(save_type: HvmSaveType, instance: u16, record: HvmSaveRecord<'a>) -> Self {
        let descriptor = HvmSaveDescriptor {
            typecode: U16::new(save_type.0),
            instance: U16::new(instance),
            length: U32::new(u32::try_from(record.natural_len()).unwrap_or(u32::MAX)),
        };
        Self { offset: 0, descriptor, record }
    }

    /// The record type.
    pub fn save_type(&self) -> HvmSaveType {
        HvmSaveType(self.descriptor.typecode.get())
    }

    /// The instance (the vcpu for per-vcpu records).
    pub fn instance(&self) -> u16 {
        self.descriptor.instance.get()
    }

    /// The payload length (the descriptor's for fixed records and END, the bytes' for
    /// variable ones).
    pub fn payload_len(&self) -> usize {
        match &self.record {
            HvmSaveRecord::CpuXsave(_) | HvmSaveRecord::CpuMsr(_) | HvmSaveRecord::Unknown(_) => {
                self.record.natural_len()
            }
            _ => self.descriptor.length.get() as usize,
        }
    }

    /// The payload bytes, encoded from the typed record.
    pub fn payload(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.payload_len());
        if self.save_type() != HvmSaveType::END {
            self.record.encode(self.payload_len(), &mut out);
        }
        out
    }

    /// The CPU record as Xen 4.17 loads it (`hvm_load_entry_zeroextend` and
    /// `_hvm_hw_fix_cpu`): the compat form moved; any form shorter than 1032 bytes gets
    /// `flags` = [`XEN_X86_FPU_INITIALISED`]. `None` for other records.
    pub fn cpu_as_loaded(&self) -> Option<HvmHwCpu> {
        match &self.record {
            HvmSaveRecord::CpuCompat(c) => Some(c.to_current()),
            HvmSaveRecord::Cpu(c) => {
                let mut cpu = (**c).clone();
                if self.descriptor.length.get() as usize != size_of::<HvmHwCpu>() {
                    cpu.flags = U32::new(XEN_X86_FPU_INITIALISED);
                }
                Some(cpu)
            }
            _ => None,
        }
    }
}

/// A decoded HVM_CONTEXT blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HvmSaveRecords<'a> {
    /// The entries, in blob order, the last one END.
    pub entries: Vec<HvmSaveEntry<'a>>,
    /// Bytes after END's descriptor (Xen ignores them, whatever END's length says); kept so
    /// that emitting is exact.
    pub trailing: Cow<'a, [u8]>,
}

impl<'a> HvmSaveRecords<'a> {
    /// Encodes the blob: each descriptor (with the payload's length) and payload, END's
    /// descriptor verbatim, then the trailing bytes. For any blob [`decode`] accepts, the
    /// output equals the input.
    pub fn emit(&self, out: &mut Vec<u8>) {
        for e in &self.entries {
            let mut d = e.descriptor;
            if e.save_type() == HvmSaveType::END {
                out.extend_from_slice(d.as_bytes());
                continue;
            }
            d.length = U32::new(u32::try_from(e.payload_len()).unwrap_or(u32::MAX));
            out.extend_from_slice(d.as_bytes());
            e.record.encode(e.payload_len(), out);
        }
        out.extend_from_slice(&self.trailing);
    }

    /// [`emit`](Self::emit) into a new vector.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.emit(&mut out);
        out
    }

    /// The first HEADER record, if any.
    pub fn header(&self) -> Option<&HvmSaveHeader> {
        self.entries.iter().find_map(|e| match &e.record {
            HvmSaveRecord::Header(h) => Some(h),
            _ => None,
        })
    }

    /// Each vcpu's registers from its CPU record (as loaded), by instance, in blob order
    /// (EFER and the SYSCALL MSRs come from the CPU record itself, which carries them).
    pub fn vcpu_regs(&self) -> Vec<(u16, X86Regs)> {
        self.entries.iter().filter_map(|e| e.cpu_as_loaded().map(|c| (e.instance(), c.regs()))).collect()
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

/// A fixed record read as its loader reads it: exactly, or zero-extended.
fn fixed<T: FromBytes + IntoBytes + KnownLayout + Immutable>(payload: &[u8], length: LoadLength) -> Option<T> {
    match length {
        LoadLength::Exact => T::read_from_bytes(payload).ok(),
        _ if payload.len() > size_of::<T>() => None,
        _ => {
            let mut v = T::new_zeroed();
            v.as_mut_bytes()[..payload.len()].copy_from_slice(payload);
            Some(v)
        }
    }
}

fn typed<'a>(t: HvmSaveType, info: SaveTypeInfo, payload: &'a [u8]) -> Option<HvmSaveRecord<'a>> {
    use HvmSaveRecord as R;
    let l = info.length;
    Some(match t {
        HvmSaveType::HEADER => R::Header(fixed(payload, l)?),
        HvmSaveType::CPU if payload.len() == HVM_HW_CPU_COMPAT_SIZE => {
            R::CpuCompat(Box::new(fixed(payload, LoadLength::Exact)?))
        }
        HvmSaveType::CPU => R::Cpu(Box::new(fixed(payload, l)?)),
        HvmSaveType::PIC => R::Pic(fixed(payload, l)?),
        HvmSaveType::IOAPIC => R::Ioapic(Box::new(fixed(payload, l)?)),
        HvmSaveType::LAPIC => R::Lapic(fixed(payload, l)?),
        HvmSaveType::LAPIC_REGS => R::LapicRegs(Box::new(fixed(payload, l)?)),
        HvmSaveType::PCI_IRQ => R::PciIrq(fixed(payload, l)?),
        HvmSaveType::ISA_IRQ => R::IsaIrq(fixed(payload, l)?),
        HvmSaveType::PCI_LINK => R::PciLink(fixed(payload, l)?),
        HvmSaveType::PIT => R::Pit(fixed(payload, l)?),
        HvmSaveType::RTC => R::Rtc(fixed(payload, l)?),
        HvmSaveType::HPET => R::Hpet(Box::new(fixed(payload, l)?)),
        HvmSaveType::PMTIMER => R::Pmtimer(fixed(payload, l)?),
        HvmSaveType::MTRR => R::Mtrr(fixed(payload, l)?),
        HvmSaveType::VIRIDIAN_DOMAIN => R::ViridianDomain(fixed(payload, l)?),
        HvmSaveType::VIRIDIAN_VCPU => R::ViridianVcpu(Box::new(fixed(payload, l)?)),
        HvmSaveType::VMCE_VCPU => R::VmceVcpu(fixed(payload, l)?),
        HvmSaveType::TSC_ADJUST => R::TscAdjust(fixed(payload, l)?),
        HvmSaveType::CPU_XSAVE => {
            if payload.len() < info.size {
                return None;
            }
            let (header, area) = CpuXsaveHeader::read_from_prefix(payload).ok()?;
            R::CpuXsave(CpuXsave { header, area: Cow::Borrowed(area) })
        }
        HvmSaveType::CPU_MSR => {
            let (header, rest) = CpuMsrHeader::read_from_prefix(payload).ok()?;
            let entries = <[CpuMsrEntry]>::ref_from_bytes(rest).ok()?;
            if entries.is_empty() || entries.len() as u64 != u64::from(header.count.get()) {
                return None;
            }
            R::CpuMsr(CpuMsrs { header, entries: Cow::Borrowed(entries) })
        }
        _ => return None,
    })
}

fn length_rule(info: SaveTypeInfo, payload: &[u8]) -> String {
    match info.length {
        LoadLength::Exact => format!("exactly {} bytes", info.size),
        LoadLength::ZeroExtend => format!("at most {} bytes (shorter forms are zero-extended)", info.size),
        LoadLength::Xsave => {
            format!("at least {} bytes (24-byte header, 512-byte legacy region, 64-byte XSAVE header)", info.size)
        }
        LoadLength::Msr => {
            let count = CpuMsrHeader::read_from_prefix(payload).map_or(0, |(h, _)| h.count.get());
            if count == 0 {
                "at least one entry (8 + 16 * count with count >= 1)".into()
            } else {
                format!("8 + 16 * count = {}", 8 + 16 * u64::from(count))
            }
        }
    }
}

/// Decodes an HVM_CONTEXT blob. `base` is the blob's absolute offset in the input (the
/// record's offset + 8), used in errors and [`HvmSaveEntry::offset`].
///
/// # Errors
///
/// [`Error::Truncated`] when a descriptor or payload runs past the blob (no END entry is
/// reached); [`Error::BadHvmSaveRecord`] when a record of a type Xen 4.17 defines has a length
/// its load handler rejects (see the module documentation).
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
        let t = HvmSaveType(d.typecode.get());
        if t == HvmSaveType::END {
            entries.push(HvmSaveEntry { offset, descriptor: d, record: HvmSaveRecord::End });
            return Ok(HvmSaveRecords { entries, trailing: Cow::Borrowed(tail) });
        }
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
        let record = match t.info() {
            Some(info) => typed(t, info, payload).ok_or_else(|| bad(offset, &d, length_rule(info, payload)))?,
            None => HvmSaveRecord::Unknown(Cow::Borrowed(payload)),
        };
        entries.push(HvmSaveEntry { offset, descriptor: d, record });
        at += 8 + len;
    }
}
