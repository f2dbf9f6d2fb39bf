//! The payload of every x86 HVM save record Xen 4.17 defines, at its 4.17 size
//! (`xen/include/public/arch-x86/hvm/save.h`). Field names are Xen's; C bitfields are plain
//! integers with accessors. Every struct is `Unaligned` little-endian, so a payload of the
//! right length is the struct's bytes.

use zerocopy::little_endian::{I64, U16, U32, U64};
use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::cpu::{Segment, TableReg, X86Regs};

/// `HVM_FILE_MAGIC`, the first word of the HEADER record.
pub const HVM_FILE_MAGIC: u32 = 0x5438_1286;
/// `HVM_FILE_VERSION`, the only version Xen 4.17 loads.
pub const HVM_FILE_VERSION: u32 = 1;
/// `XEN_X86_FPU_INITIALISED`, the only bit of [`HvmHwCpu::flags`] Xen 4.17 accepts.
pub const XEN_X86_FPU_INITIALISED: u32 = 1;

/// HEADER (`struct hvm_save_header`, 24 bytes).
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, PartialEq, Eq, Debug, Default)]
#[repr(C)]
pub struct HvmSaveHeader {
    /// [`HVM_FILE_MAGIC`].
    pub magic: U32,
    /// Format version ([`HVM_FILE_VERSION`]).
    pub version: U32,
    /// Version of the Xen that saved it (all ones: unknown).
    pub changeset: U64,
    /// CPUID leaf 1 EAX of the saving host.
    pub cpuid: U32,
    /// Guest TSC frequency, kHz (0: keep the restoring domain's).
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
    /// Obsolete, ignored by Xen 4.17.
    pub msr_flags: U64,
    pub msr_lstar: U64,
    pub msr_star: U64,
    pub msr_cstar: U64,
    pub msr_syscall_mask: U64,
    pub msr_efer: U64,
    pub msr_tsc_aux: U64,
    /// The guest's idea of what RDTSC would return.
    pub tsc: U64,
    /// Pending event: vector (bits 0-7), type (8-10), error code valid (11), reserved
    /// (12-30), valid (31). See [`PendingEvent`].
    pub pending_event: U32,
    pub error_code: U32,
    /// [`XEN_X86_FPU_INITIALISED`].
    pub flags: U32,
    /// Must be zero.
    pub pad0: U32,
}

/// Offset of [`HvmHwCpu::msr_tsc_aux`], the field the pre-3.4 compat form lacks.
const TSC_AUX_AT: usize = 1000;

/// The pre-3.4 CPU record (`struct hvm_hw_cpu_compat`, 1016 bytes): [`HvmHwCpu`] without
/// `msr_tsc_aux`, `flags` and `pad0`.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, PartialEq, Eq, Debug)]
#[repr(C)]
pub struct HvmHwCpuCompat {
    /// Everything up to and including `msr_efer`, laid out as in [`HvmHwCpu`].
    pub head: [u8; TSC_AUX_AT],
    /// `tsc`.
    pub tsc: U64,
    /// `pending_event`.
    pub pending_event: U32,
    /// `error_code`.
    pub error_code: U32,
}

impl HvmHwCpuCompat {
    /// The record as Xen 4.17 loads it (`_hvm_hw_fix_cpu`): `msr_tsc_aux` 0, the later fields
    /// moved, `flags` set to [`XEN_X86_FPU_INITIALISED`].
    pub fn to_current(&self) -> HvmHwCpu {
        let mut cpu = HvmHwCpu::new_zeroed();
        cpu.as_mut_bytes()[..TSC_AUX_AT].copy_from_slice(&self.head);
        cpu.tsc = self.tsc;
        cpu.pending_event = self.pending_event;
        cpu.error_code = self.error_code;
        cpu.flags = U32::new(XEN_X86_FPU_INITIALISED);
        cpu
    }
}

/// The pending-event word of a CPU record (`hvm_hw_cpu.pending_event`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PendingEvent(pub u32);

impl PendingEvent {
    /// Bits 0-7.
    pub fn vector(self) -> u8 {
        self.0 as u8
    }
    /// Bits 8-10: 0 external interrupt, 2 NMI, 3 hardware exception, 4 software interrupt,
    /// 5 privileged software exception, 6 software exception (1 is reserved).
    pub fn event_type(self) -> u8 {
        (self.0 >> 8 & 7) as u8
    }
    /// Bit 11.
    pub fn error_valid(self) -> bool {
        self.0 & 1 << 11 != 0
    }
    /// Bits 12-30, must be zero when the event is valid.
    pub fn reserved(self) -> u32 {
        self.0 >> 12 & 0x7_ffff
    }
    /// Bit 31.
    pub fn valid(self) -> bool {
        self.0 & 1 << 31 != 0
    }
}

impl HvmHwCpu {
    /// The pending event.
    pub fn pending(&self) -> PendingEvent {
        PendingEvent(self.pending_event.get())
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

/// PIC (`struct hvm_hw_vpic`, 8 bytes; instance 0 master, 1 slave).
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, PartialEq, Eq, Debug, Default)]
#[repr(C)]
pub struct HvmHwVpic {
    /// Interrupt request register.
    pub irr: u8,
    /// Interrupt mask register.
    pub imr: u8,
    /// In-service register.
    pub isr: u8,
    /// Line IRx maps to IRQ irq_base + x.
    pub irq_base: u8,
    /// Bits 0-3 `init_state`, bits 4-7 `priority_add`.
    pub init_priority: u8,
    /// Bits 0-6: `readsel_isr`, `poll`, `auto_eoi`, `rotate_on_auto_eoi`,
    /// `special_fully_nested_mode`, `special_mask_mode`, `is_master`.
    pub mode_bits: u8,
    /// Edge/level trigger selection.
    pub elcr: u8,
    /// Virtual INT output.
    pub int_output: u8,
}

impl HvmHwVpic {
    /// `init_state` (where the ICW2-4 initialisation is).
    pub fn init_state(&self) -> u8 {
        self.init_priority & 0xf
    }
    /// `priority_add` (the IR line with the highest priority).
    pub fn priority_add(&self) -> u8 {
        self.init_priority >> 4
    }
    /// `is_master`.
    pub fn is_master(&self) -> bool {
        self.mode_bits & 1 << 6 != 0
    }
}

/// `VIOAPIC_NUM_PINS`: redirection entries of the x86 IO-APIC record.
pub const VIOAPIC_NUM_PINS: usize = 48;

/// One IO-APIC redirection entry (`union vioapic_redir_entry`).
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, PartialEq, Eq, Debug, Default)]
#[repr(C)]
pub struct VioapicRedirEntry {
    /// The 64-bit entry.
    pub bits: U64,
}

impl VioapicRedirEntry {
    /// Bits 0-7.
    pub fn vector(&self) -> u8 {
        self.bits.get() as u8
    }
    /// Bits 8-10.
    pub fn delivery_mode(&self) -> u8 {
        (self.bits.get() >> 8 & 7) as u8
    }
    /// Bit 15: level triggered.
    pub fn trig_mode(&self) -> bool {
        self.bits.get() & 1 << 15 != 0
    }
    /// Bit 16.
    pub fn mask(&self) -> bool {
        self.bits.get() & 1 << 16 != 0
    }
    /// Bits 56-63.
    pub fn dest_id(&self) -> u8 {
        (self.bits.get() >> 56) as u8
    }
}

/// IOAPIC (`struct hvm_hw_vioapic`, 400 bytes).
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, PartialEq, Eq, Debug)]
#[repr(C)]
pub struct HvmHwVioapic {
    /// MMIO base.
    pub base_address: U64,
    /// IOREGSEL.
    pub ioregsel: U32,
    /// IO-APIC id.
    pub id: U32,
    /// The redirection table.
    pub redirtbl: [VioapicRedirEntry; VIOAPIC_NUM_PINS],
}

/// LAPIC (`struct hvm_hw_lapic`, 24 bytes in Xen 4.17: `tdt_msr` was added to the older
/// 16-byte form, which loads zero-extended).
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, PartialEq, Eq, Debug, Default)]
#[repr(C)]
pub struct HvmHwLapic {
    /// IA32_APIC_BASE.
    pub apic_base_msr: U64,
    /// `VLAPIC_*_DISABLED` bits.
    pub disabled: U32,
    /// Timer divisor.
    pub timer_divisor: U32,
    /// IA32_TSC_DEADLINE.
    pub tdt_msr: U64,
}

/// IA32_APIC_BASE bit 11: the local APIC is enabled.
pub const APIC_BASE_ENABLE: u64 = 1 << 11;
/// IA32_APIC_BASE bit 10: x2APIC mode.
pub const APIC_BASE_EXTD: u64 = 1 << 10;

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
        self.data.get(reg..reg.checked_add(4)?).map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
    }
}

/// PCI_IRQ (`struct hvm_hw_pci_irqs`, 16 bytes): the INTx wires of 32 devices, bit
/// `device * 4 + INTx`.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, PartialEq, Eq, Debug, Default)]
#[repr(C)]
pub struct HvmHwPciIrqs {
    /// The 128-bit bitmap.
    pub i: [U64; 2],
}

/// ISA_IRQ (`struct hvm_hw_isa_irqs`, 8 bytes): the 16 ISA IRQ wires, bit per IRQ.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, PartialEq, Eq, Debug, Default)]
#[repr(C)]
pub struct HvmHwIsaIrqs {
    /// The bitmap.
    pub i: U64,
}

/// PCI_LINK (`struct hvm_hw_pci_link`, 8 bytes): the PCI-ISA interrupt router.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, PartialEq, Eq, Debug, Default)]
#[repr(C)]
pub struct HvmHwPciLink {
    /// The ISA IRQ each of the four links routes to (0: none; Xen refuses above 15).
    pub route: [u8; 4],
    /// Padding.
    pub pad0: [u8; 4],
}

/// One PIT channel (`struct hvm_hw_pit_channel`, 16 bytes).
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, PartialEq, Eq, Debug, Default)]
#[repr(C)]
#[allow(missing_docs)] // field names are Xen's
pub struct HvmHwPitChannel {
    /// Reload count (can be 65536).
    pub count: U32,
    pub latched_count: U16,
    pub count_latched: u8,
    pub status_latched: u8,
    pub status: u8,
    pub read_state: u8,
    pub write_state: u8,
    pub write_latch: u8,
    pub rw_mode: u8,
    pub mode: u8,
    pub bcd: u8,
    pub gate: u8,
}

/// PIT (`struct hvm_hw_pit`, 56 bytes).
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, PartialEq, Eq, Debug, Default)]
#[repr(C)]
pub struct HvmHwPit {
    /// Channels 0-2.
    pub channels: [HvmHwPitChannel; 3],
    /// Port 0x61 speaker data bit.
    pub speaker_data_on: U32,
    /// Padding.
    pub pad0: U32,
}

/// `RTC_CMOS_SIZE`.
pub const RTC_CMOS_SIZE: usize = 14;

/// RTC (`struct hvm_hw_rtc`, 24 bytes in Xen 4.17; the older 16-byte form without
/// `rtc_offset` loads zero-extended).
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, PartialEq, Eq, Debug, Default)]
#[repr(C)]
pub struct HvmHwRtc {
    /// CMOS bytes 0-13 (clock and status registers A-D).
    pub cmos_data: [u8; RTC_CMOS_SIZE],
    /// Index register.
    pub cmos_index: u8,
    /// Padding.
    pub pad0: u8,
    /// RTC offset from host time, seconds.
    pub rtc_offset: I64,
}

/// `HPET_TIMER_NUM`.
pub const HPET_TIMER_NUM: usize = 3;

/// One HPET timer's registers.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, PartialEq, Eq, Debug, Default)]
#[repr(C)]
pub struct HvmHwHpetTimer {
    /// Configuration and capabilities.
    pub config: U64,
    /// Comparator.
    pub cmp: U64,
    /// FSB route.
    pub fsb: U64,
    /// Reserved.
    pub res4: U64,
}

/// HPET (`struct hvm_hw_hpet`, 1048 bytes).
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, PartialEq, Eq, Debug)]
#[repr(C)]
#[allow(missing_docs)] // field names are Xen's
pub struct HvmHwHpet {
    pub capability: U64,
    pub res0: U64,
    pub config: U64,
    pub res1: U64,
    /// Interrupt status.
    pub isr: U64,
    pub res2: [U64; 25],
    /// Main counter.
    pub mc64: U64,
    pub res3: U64,
    pub timers: [HvmHwHpetTimer; HPET_TIMER_NUM],
    pub res5: [U64; 4 * (24 - HPET_TIMER_NUM)],
    /// Last value written to each comparator.
    pub period: [U64; HPET_TIMER_NUM],
}

/// PMTIMER (`struct hvm_hw_pmtimer`, 8 bytes).
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, PartialEq, Eq, Debug, Default)]
#[repr(C)]
pub struct HvmHwPmtimer {
    /// PM_TMR_BLK.TMR_VAL.
    pub tmr_val: U32,
    /// PM1a_STS.
    pub pm1a_sts: U16,
    /// PM1a_EN.
    pub pm1a_en: U16,
}

/// `MTRR_VCNT`: variable-range MTRR pairs the record holds.
pub const MTRR_VCNT: usize = 8;
/// `NUM_FIXED_MSR`.
pub const NUM_FIXED_MSR: usize = 11;

/// MTRR (`struct hvm_hw_mtrr`, 240 bytes).
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, PartialEq, Eq, Debug, Default)]
#[repr(C)]
pub struct HvmHwMtrr {
    /// IA32_PAT.
    pub msr_pat_cr: U64,
    /// Variable ranges: PHYSBASE0, PHYSMASK0, ... (8 pairs).
    pub msr_mtrr_var: [U64; MTRR_VCNT * 2],
    /// The 11 fixed-range MTRRs.
    pub msr_mtrr_fixed: [U64; NUM_FIXED_MSR],
    /// IA32_MTRRCAP (bits 0-7: VCNT, the number of variable ranges).
    pub msr_mtrr_cap: U64,
    /// IA32_MTRR_DEF_TYPE.
    pub msr_mtrr_def_type: U64,
}

/// VIRIDIAN_DOMAIN (`struct hvm_viridian_domain_context`, 32 bytes in Xen 4.17; shorter
/// older forms load zero-extended).
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, PartialEq, Eq, Debug, Default)]
#[repr(C)]
#[allow(missing_docs)] // field names are Xen's
pub struct HvmViridianDomainContext {
    pub hypercall_gpa: U64,
    pub guest_os_id: U64,
    pub time_ref_count: U64,
    pub reference_tsc: U64,
}

/// Fixed part of CPU_XSAVE (`struct hvm_hw_cpu_xsave`, before the save area).
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, PartialEq, Eq, Debug, Default)]
#[repr(C)]
pub struct CpuXsaveHeader {
    /// Features the saving host supported (ignored on load).
    pub xfeature_mask: U64,
    /// The guest's XCR0.
    pub xcr0: U64,
    /// Union of every XCR0 the guest has used.
    pub xcr0_accum: U64,
}

/// The XSAVE header inside the save area (`struct hvm_hw_cpu_xsave_hdr`, at byte 512 of
/// the area).
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, PartialEq, Eq, Debug, Default)]
#[repr(C)]
pub struct XsaveHdr {
    /// Components whose state the area holds.
    pub xstate_bv: U64,
    /// Compaction (bit 63) and compacted components; Xen 4.17 loads only the standard form
    /// (0).
    pub xcomp_bv: U64,
    /// Must be zero.
    pub reserved: [U64; 6],
}

/// `XSTATE_AREA_MIN_SIZE`: the legacy (FXSAVE) region and the XSAVE header.
pub const XSTATE_AREA_MIN_SIZE: usize = 512 + 64;

/// VIRIDIAN_VCPU (`struct hvm_viridian_vcpu_context`, 216 bytes in Xen 4.17; shorter older
/// forms load zero-extended).
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, PartialEq, Eq, Debug)]
#[repr(C)]
#[allow(missing_docs)] // field names are Xen's
pub struct HvmViridianVcpuContext {
    pub vp_assist_msr: U64,
    pub apic_assist_pending: u8,
    /// Must be zero.
    pub pad: [u8; 7],
    pub simp_msr: U64,
    pub sint_msr: [U64; 16],
    pub stimer_config_msr: [U64; 4],
    pub stimer_count_msr: [U64; 4],
}

/// VMCE_VCPU (`struct hvm_vmce_vcpu`, 32 bytes in Xen 4.17; shorter older forms load
/// zero-extended).
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, PartialEq, Eq, Debug, Default)]
#[repr(C)]
pub struct HvmVmceVcpu {
    /// The vcpu's IA32_MCG_CAP.
    pub caps: U64,
    /// MCi_CTL2 of bank 0.
    pub mci_ctl2_bank0: U64,
    /// MCi_CTL2 of bank 1.
    pub mci_ctl2_bank1: U64,
    /// IA32_MCG_EXT_CTL.
    pub mcg_ext_ctl: U64,
}

/// TSC_ADJUST (`struct hvm_tsc_adjust`, 8 bytes).
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, PartialEq, Eq, Debug, Default)]
#[repr(C)]
pub struct HvmTscAdjust {
    /// IA32_TSC_ADJUST.
    pub tsc_adjust: U64,
}

/// Fixed part of CPU_MSR (`struct hvm_msr` up to its array, which is 8-byte aligned).
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, PartialEq, Eq, Debug, Default)]
#[repr(C)]
pub struct CpuMsrHeader {
    /// Number of entries.
    pub count: U32,
    /// Alignment padding (not checked by Xen).
    pub rsvd: U32,
}

/// One CPU_MSR entry (`struct hvm_one_msr`).
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, PartialEq, Eq, Debug, Default)]
#[repr(C)]
pub struct CpuMsrEntry {
    /// MSR index.
    pub index: U32,
    /// Must be zero.
    pub rsvd: U32,
    /// Value.
    pub val: U64,
}

const _: () = assert!(size_of::<HvmSaveHeader>() == 24);
const _: () = assert!(size_of::<HvmHwCpu>() == 1032);
const _: () = assert!(size_of::<HvmHwCpuCompat>() == 1016);
const _: () = assert!(std::mem::offset_of!(HvmHwCpu, msr_tsc_aux) == TSC_AUX_AT);
const _: () = assert!(size_of::<HvmHwVpic>() == 8);
const _: () = assert!(size_of::<HvmHwVioapic>() == 400);
const _: () = assert!(size_of::<HvmHwLapic>() == 24);
const _: () = assert!(size_of::<HvmHwLapicRegs>() == 1024);
const _: () = assert!(size_of::<HvmHwPciIrqs>() == 16);
const _: () = assert!(size_of::<HvmHwIsaIrqs>() == 8);
const _: () = assert!(size_of::<HvmHwPciLink>() == 8);
const _: () = assert!(size_of::<HvmHwPit>() == 56);
const _: () = assert!(size_of::<HvmHwRtc>() == 24);
const _: () = assert!(size_of::<HvmHwHpet>() == 1048);
const _: () = assert!(size_of::<HvmHwPmtimer>() == 8);
const _: () = assert!(size_of::<HvmHwMtrr>() == 240);
const _: () = assert!(size_of::<HvmViridianDomainContext>() == 32);
const _: () = assert!(size_of::<CpuXsaveHeader>() == 24);
const _: () = assert!(size_of::<XsaveHdr>() == 64);
const _: () = assert!(size_of::<HvmViridianVcpuContext>() == 216);
const _: () = assert!(size_of::<HvmVmceVcpu>() == 32);
const _: () = assert!(size_of::<HvmTscAdjust>() == 8);
const _: () = assert!(size_of::<CpuMsrHeader>() == 8);
const _: () = assert!(size_of::<CpuMsrEntry>() == 16);
