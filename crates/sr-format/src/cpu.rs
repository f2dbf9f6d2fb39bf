//! Register sets of a guest's vcpus: [`X86Regs`] (decoded from an HVM_CONTEXT CPU save
//! record or an x86 PV `vcpu_guest_context`) and [`Aarch64Regs`].
//!
//! The sets hold values only; where they came from (and which fields a source cannot
//! supply) is documented on the decoders: [`HvmHwCpu::regs`](crate::body::hvm_context::HvmHwCpu::regs)
//! and [`pv_vcpu_regs`](crate::body::pv_vcpu_regs). No Xen stream carries an ARM vcpu's
//! registers (Xen's `arch-arm/hvm/save.h` defines no save records), so [`Aarch64Regs`] is
//! filled by callers that read a live domain.

/// One x86 segment register: selector and the hidden descriptor cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Segment {
    /// Selector.
    pub selector: u16,
    /// Base address.
    pub base: u64,
    /// Limit (bytes - 1).
    pub limit: u32,
    /// Access rights in Xen's packed "arbytes" form (type, S, DPL, P, AVL, L, D/B, G in bits
    /// 0-11); 0 when the source does not carry them.
    pub attr: u32,
}

/// A descriptor-table register (GDTR, IDTR).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableReg {
    /// Linear base address.
    pub base: u64,
    /// Limit (bytes - 1).
    pub limit: u32,
}

/// The architectural state of one x86 vcpu. Fields a source does not carry are 0 (see the
/// decoder's documentation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[allow(missing_docs)] // the fields are the architectural register names
pub struct X86Regs {
    pub rax: u64,
    pub rbx: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub rbp: u64,
    pub rsp: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
    pub rip: u64,
    pub rflags: u64,
    pub cs: Segment,
    pub ss: Segment,
    pub ds: Segment,
    pub es: Segment,
    pub fs: Segment,
    pub gs: Segment,
    pub tr: Segment,
    pub ldtr: Segment,
    pub gdtr: TableReg,
    pub idtr: TableReg,
    pub cr0: u64,
    pub cr2: u64,
    pub cr3: u64,
    pub cr4: u64,
    pub efer: u64,
    /// IA32_KERNEL_GS_BASE (the base `swapgs` exchanges with GS's).
    pub kernel_gs_base: u64,
    pub dr0: u64,
    pub dr1: u64,
    pub dr2: u64,
    pub dr3: u64,
    pub dr6: u64,
    pub dr7: u64,
    pub sysenter_cs: u64,
    pub sysenter_esp: u64,
    pub sysenter_eip: u64,
    pub star: u64,
    pub lstar: u64,
    pub cstar: u64,
    pub sfmask: u64,
}

impl X86Regs {
    /// Every register as `(name, value)`, in a fixed order: general purpose, rip, rflags,
    /// segments (`cs`, `cs_base`, `cs_limit`, `cs_attr`, ...), descriptor tables, control and
    /// debug registers, MSRs. Names are lower-case architectural names.
    pub fn fields(&self) -> Vec<(&'static str, u64)> {
        let mut v = vec![
            ("rax", self.rax),
            ("rbx", self.rbx),
            ("rcx", self.rcx),
            ("rdx", self.rdx),
            ("rsi", self.rsi),
            ("rdi", self.rdi),
            ("rbp", self.rbp),
            ("rsp", self.rsp),
            ("r8", self.r8),
            ("r9", self.r9),
            ("r10", self.r10),
            ("r11", self.r11),
            ("r12", self.r12),
            ("r13", self.r13),
            ("r14", self.r14),
            ("r15", self.r15),
            ("rip", self.rip),
            ("rflags", self.rflags),
        ];
        let segs: [(&'static [&'static str; 4], &Segment); 8] = [
            (&["cs", "cs_base", "cs_limit", "cs_attr"], &self.cs),
            (&["ss", "ss_base", "ss_limit", "ss_attr"], &self.ss),
            (&["ds", "ds_base", "ds_limit", "ds_attr"], &self.ds),
            (&["es", "es_base", "es_limit", "es_attr"], &self.es),
            (&["fs", "fs_base", "fs_limit", "fs_attr"], &self.fs),
            (&["gs", "gs_base", "gs_limit", "gs_attr"], &self.gs),
            (&["tr", "tr_base", "tr_limit", "tr_attr"], &self.tr),
            (&["ldtr", "ldtr_base", "ldtr_limit", "ldtr_attr"], &self.ldtr),
        ];
        for (names, s) in segs {
            v.push((names[0], u64::from(s.selector)));
            v.push((names[1], s.base));
            v.push((names[2], u64::from(s.limit)));
            v.push((names[3], u64::from(s.attr)));
        }
        v.extend([
            ("gdtr_base", self.gdtr.base),
            ("gdtr_limit", u64::from(self.gdtr.limit)),
            ("idtr_base", self.idtr.base),
            ("idtr_limit", u64::from(self.idtr.limit)),
            ("cr0", self.cr0),
            ("cr2", self.cr2),
            ("cr3", self.cr3),
            ("cr4", self.cr4),
            ("efer", self.efer),
            ("kernel_gs_base", self.kernel_gs_base),
            ("dr0", self.dr0),
            ("dr1", self.dr1),
            ("dr2", self.dr2),
            ("dr3", self.dr3),
            ("dr6", self.dr6),
            ("dr7", self.dr7),
            ("sysenter_cs", self.sysenter_cs),
            ("sysenter_esp", self.sysenter_esp),
            ("sysenter_eip", self.sysenter_eip),
            ("star", self.star),
            ("lstar", self.lstar),
            ("cstar", self.cstar),
            ("sfmask", self.sfmask),
        ]);
        v
    }
}

/// The state of one AArch64 vcpu (EL1 view).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Aarch64Regs {
    /// x0..x30 (x30 is the link register).
    pub x: [u64; 31],
    /// The stack pointer of the vcpu's current exception level (SP_EL1 when PSTATE.M says
    /// EL1h, SP_EL0 otherwise).
    pub sp: u64,
    /// Program counter.
    pub pc: u64,
    /// PSTATE (SPSR form).
    pub pstate: u64,
    /// SP_EL0.
    pub sp_el0: u64,
    /// SP_EL1.
    pub sp_el1: u64,
    /// ELR_EL1.
    pub elr_el1: u64,
    /// SPSR_EL1.
    pub spsr_el1: u64,
    /// SCTLR_EL1.
    pub sctlr: u64,
    /// TCR_EL1.
    pub tcr: u64,
    /// TTBR0_EL1.
    pub ttbr0: u64,
    /// TTBR1_EL1.
    pub ttbr1: u64,
}

impl Aarch64Regs {
    /// Every register as `(name, value)`: x0..x30, sp, pc, pstate, then the EL1 system
    /// registers.
    pub fn fields(&self) -> Vec<(&'static str, u64)> {
        const X: [&str; 31] = [
            "x0", "x1", "x2", "x3", "x4", "x5", "x6", "x7", "x8", "x9", "x10", "x11", "x12", "x13", "x14", "x15",
            "x16", "x17", "x18", "x19", "x20", "x21", "x22", "x23", "x24", "x25", "x26", "x27", "x28", "x29", "x30",
        ];
        let mut v: Vec<(&'static str, u64)> = X.iter().copied().zip(self.x).collect();
        v.extend([
            ("sp", self.sp),
            ("pc", self.pc),
            ("pstate", self.pstate),
            ("sp_el0", self.sp_el0),
            ("sp_el1", self.sp_el1),
            ("elr_el1", self.elr_el1),
            ("spsr_el1", self.spsr_el1),
            ("sctlr", self.sctlr),
            ("tcr", self.tcr),
            ("ttbr0", self.ttbr0),
            ("ttbr1", self.ttbr1),
        ]);
        v
    }
}
