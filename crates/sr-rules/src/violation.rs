//! A broken rule: what the restorer rejects, in the words both sides print.

use std::fmt;

use sr_format::body::hvm_context::HvmSaveType;
use sr_format::{PageType, RecordType};

/// A frame an x86 PV vcpu context names (validation row 45).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame {
    /// vcpu 0's start_info frame (rdx / edx).
    StartInfo,
    /// GDT frame `n`.
    Gdt(usize),
    /// The top-level page table (CR3).
    Cr3,
    /// The 64-bit user page table (CR1).
    Cr1,
}

impl fmt::Display for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Frame::StartInfo => f.write_str("start_info"),
            Frame::Gdt(n) => write!(f, "GDT frame {n}"),
            Frame::Cr3 => f.write_str("CR3"),
            Frame::Cr1 => f.write_str("CR1"),
        }
    }
}

/// Why a frame a record names cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameProblem {
    /// Beyond the guest's p2m (`pfn > max_pfn`).
    BeyondMaxPfn {
        /// The p2m's last pfn.
        max_pfn: u64,
    },
    /// Of the wrong page type.
    WrongType {
        /// The type the stream gave the pfn.
        found: PageType,
        /// What Xen requires ("NOTAB", "the top-level L4TAB", ...).
        want: &'static str,
    },
    /// Never populated (Xen: "bad mfn").
    Unpopulated,
}

impl fmt::Display for FrameProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameProblem::BeyondMaxPfn { max_pfn } => write!(f, "is beyond max_pfn {max_pfn:#x}"),
            FrameProblem::WrongType { found, want } => write!(f, "has page type {found}, not {want}"),
            FrameProblem::Unpopulated => f.write_str("was never populated"),
        }
    }
}

/// A rule of Xen's restorer that a domain breaks.
///
/// The `Display` text is the rule alone; the restorer prefixes the record and byte offset,
/// the saver says that restore would reject the domain.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Violation {
    /// A record the domain type requires was not sent.
    #[error("no {what}")]
    Missing {
        /// What is missing.
        what: &'static str,
    },
    /// A p2m frame that cannot be used (row 46, `update_guest_p2m`).
    #[error("p2m frame {frame} at pfn {pfn:#x} {problem}")]
    P2mFrame {
        /// Index in the p2m frame list.
        frame: usize,
        /// Its pfn.
        pfn: u64,
        /// What is wrong.
        problem: FrameProblem,
    },
    /// A frame a vcpu context names that cannot be used (row 45, `process_vcpu_basic`).
    #[error("vcpu {vcpu}: {frame} pfn {pfn:#x} {problem}")]
    VcpuFrame {
        /// vcpu id.
        vcpu: u32,
        /// Which frame.
        frame: Frame,
        /// Its pfn.
        pfn: u64,
        /// What is wrong.
        problem: FrameProblem,
    },
    /// `gdt_ents` above `FIRST_RESERVED_GDT_ENTRY` (row 45).
    #[error("vcpu {vcpu}: gdt_ents {ents} > {max}", max = sr_format::body::MAX_GDT_ENTS)]
    GdtEnts {
        /// vcpu id.
        vcpu: u32,
        /// The context's gdt_ents.
        ents: u64,
    },
    /// A vcpu blob of a size Xen rejects (rows 42-43, `handle_x86_pv_vcpu_blob`).
    #[error("vcpu {vcpu}: {}", blob_rule(*record, *len, *guest_width))]
    VcpuBlob {
        /// vcpu id.
        vcpu: u32,
        /// X86_PV_VCPU_BASIC, _EXTENDED, _XSAVE or _MSRS.
        record: RecordType,
        /// Blob length in bytes.
        len: usize,
        /// Guest width in bytes (4 or 8).
        guest_width: u8,
    },
    /// A present page-table entry naming a frame the restore cannot map (row 24,
    /// `x86_pv_localise_page`).
    #[error(
        "{page_type} page at pfn {pfn:#x}: entry {slot} ({pte:#018x}) names pfn {frame:#x}, beyond max_pfn {max_pfn:#x}"
    )]
    PageTableEntry {
        /// The page table's pfn.
        pfn: u64,
        /// Its type.
        page_type: PageType,
        /// Entry index within the table (0..512).
        slot: usize,
        /// The entry.
        pte: u64,
        /// The pfn it names (bits 12-51).
        frame: u64,
        /// The p2m's last pfn.
        max_pfn: u64,
    },
    /// A frame the start_info page names that cannot be used (`process_start_info`).
    #[error("vcpu 0: start_info page at pfn {start_info:#x}: {field} pfn {pfn:#x} {problem}")]
    StartInfoFrame {
        /// The start_info page's pfn.
        start_info: u64,
        /// "xenstore frame (store_mfn)" or "console frame (console.domU.mfn)".
        field: &'static str,
        /// The pfn the field holds.
        pfn: u64,
        /// What is wrong.
        problem: FrameProblem,
    },
    /// An HVM_CONTEXT blob Xen cannot walk, or whose first record is not HEADER (the rule
    /// carries the byte offset).
    #[error("HVM context: {rule}")]
    HvmContext {
        /// What is wrong.
        rule: String,
    },
    /// A save record inside HVM_CONTEXT that its load handler refuses.
    #[error("HVM save record {} (instance {instance}) at byte {offset}: {rule}", HvmSaveType(*typecode))]
    HvmSaveRecord {
        /// Type code.
        typecode: u16,
        /// Instance (the vcpu for per-vcpu records).
        instance: u16,
        /// Offset of its descriptor (absolute for a restore, within the blob for a save).
        offset: u64,
        /// What is wrong, with the Xen function that refuses it.
        rule: String,
    },
    /// An HVM param `HVMOP_set_param` refuses.
    #[error("HVM param {index}{} = {value:#x}: {rule}", crate::hvm::param_name(*index).map(|n| format!(" ({n})")).unwrap_or_default())]
    HvmParam {
        /// Param index.
        index: u64,
        /// Value.
        value: u64,
        /// What is wrong.
        rule: String,
    },
    /// A TSC mode `tsc_set_info` refuses.
    #[error("TSC mode {mode}: Xen 4.17 accepts 0 (default), 1 (always emulate) and 2 (never emulate) (tsc_set_info)")]
    TscMode {
        /// The mode.
        mode: u32,
    },
    /// A CPUID policy `x86_cpuid_copy_from_buffer` refuses.
    #[error("CPUID policy{}: {rule}", leaf.map(|(l, s)| format!(" leaf {l:#x} subleaf {s:#x}")).unwrap_or_default())]
    CpuidPolicy {
        /// The leaf and subleaf at fault (none for the count).
        leaf: Option<(u32, u32)>,
        /// What is wrong.
        rule: String,
    },
    /// An MSR policy `x86_msr_copy_from_buffer` refuses.
    #[error("MSR policy{}: {rule}", index.map(|i| format!(" MSR {i:#x}")).unwrap_or_default())]
    MsrPolicy {
        /// The MSR at fault (none for the count).
        index: Option<u32>,
        /// What is wrong.
        rule: String,
    },
    /// A PV vcpu record the hypervisor refuses to load (`arch_set_info_guest` and the vcpu
    /// domctls).
    #[error("vcpu {vcpu}: {record}: {rule}")]
    VcpuState {
        /// vcpu id.
        vcpu: u32,
        /// X86_PV_VCPU_BASIC, _EXTENDED, _XSAVE or _MSRS.
        record: RecordType,
        /// What is wrong, with the Xen function that refuses it.
        rule: String,
    },
    /// A pfn beyond what the domain can hold (row 20: PV `pfn > max_pfn`).
    #[error("pfn {pfn:#x} is beyond the domain's pfn limit {limit:#x}")]
    PfnBeyondLimit {
        /// The pfn.
        pfn: u64,
        /// The exclusive limit.
        limit: u64,
    },
}

fn blob_rule(record: RecordType, len: usize, guest_width: u8) -> String {
    use crate::pv::{VCPU_EXTENDED_MAX, VCPU_XSAVE_MIN};
    match record {
        RecordType::X86_PV_VCPU_BASIC => format!(
            "vcpu context of {len} bytes; a {}-bit guest's is {}",
            u32::from(guest_width) * 8,
            sr_format::body::vcpu_context_size(guest_width).unwrap_or(0)
        ),
        RecordType::X86_PV_VCPU_EXTENDED => format!("extended context of {len} bytes > {VCPU_EXTENDED_MAX}"),
        RecordType::X86_PV_VCPU_XSAVE => format!("xsave blob of {len} bytes < {VCPU_XSAVE_MIN}"),
        _ => format!("MSR blob of {len} bytes is not a multiple of 16"),
    }
}
