//! HVM-like domains (x86 HVM, PVH, ARM): END requires an HVM context
//! (`tools/libs/guest/xg_sr_restore_x86_hvm.c:219-226`, validation row 36); and the x86 HVM
//! params as the hypervisor accepts them ([`check_param`]).

use sr_format::state::DomainState;

use crate::Violation;

/// END requires an HVM_CONTEXT record.
///
/// # Errors
/// [`Violation::Missing`] when the state has no HVM context.
pub fn check_end(state: &DomainState) -> Result<(), Violation> {
    if state.hvm_context.is_none() {
        return Err(Violation::Missing { what: "HVM_CONTEXT record in the stream" });
    }
    Ok(())
}

/// Xen 4.17's name for HVM param `index` (`xen/include/public/hvm/params.h`).
pub fn param_name(index: u64) -> Option<&'static str> {
    HVM_PARAM_NAMES.get(usize::try_from(index).ok()?).copied().filter(|n| !n.starts_with(char::is_numeric))
}

/// HVM param numbers and their names (unused numbers as digits).
const HVM_PARAM_NAMES: [&str; 39] = [
    "CALLBACK_IRQ",
    "STORE_PFN",
    "STORE_EVTCHN",
    "3",
    "PAE_ENABLED",
    "IOREQ_PFN",
    "BUFIOREQ_PFN",
    "7",
    "8",
    "VIRIDIAN",
    "TIMER_MODE",
    "HPET_ENABLED",
    "IDENT_PT",
    "DM_DOMAIN",
    "ACPI_S_STATE",
    "VM86_TSS",
    "VPT_ALIGN",
    "CONSOLE_PFN",
    "CONSOLE_EVTCHN",
    "ACPI_IOPORTS_LOCATION",
    "MEMORY_EVENT_CR0",
    "MEMORY_EVENT_CR3",
    "MEMORY_EVENT_CR4",
    "MEMORY_EVENT_INT3",
    "NESTEDHVM",
    "MEMORY_EVENT_SINGLE_STEP",
    "BUFIOREQ_EVTCHN",
    "PAGING_RING_PFN",
    "MONITOR_RING_PFN",
    "SHARING_RING_PFN",
    "MEMORY_EVENT_MSR",
    "TRIPLE_FAULT_REASON",
    "IOREQ_SERVER_PFN",
    "NR_IOREQ_SERVER_PAGES",
    "VM_GENERATION_ID_ADDR",
    "ALTP2M",
    "X87_FIP_WIDTH",
    "VM86_TSS_SIZED",
    "MCA_CAP",
];

/// `HVM_NR_PARAMS` of Xen 4.17.
pub const HVM_NR_PARAMS: u64 = 39;

/// `HVMPV_feature_mask`: the VIRIDIAN param bits Xen 4.17 knows (bit 0, base_freq, required).
const HVMPV_FEATURE_MASK: u64 = 0x1fff;

/// One HVM param as `HVMOP_set_param` (`hvmop_set_param`, `hvm_allow_set_param`,
/// `hvm_set_param` in `xen/arch/x86/hvm/hvm.c`) accepts it from the restoring toolstack;
/// libxc drops PAE_ENABLED (4) before that. Rules that depend on what the domain was built
/// with (params that may be set only once, ACPI_IOPORTS_LOCATION on a domain without a PM
/// timer, LMCE support of the host) are not decidable from the stream.
///
/// # Errors
/// [`Violation::HvmParam`].
pub fn check_param(index: u64, value: u64) -> Result<(), Violation> {
    let rule = match index {
        4 => return Ok(()),
        i if i >= HVM_NR_PARAMS => format!("no such param: Xen 4.17 has {HVM_NR_PARAMS} (hvmop_set_param: -EINVAL)"),
        13 | 20..=26 | 30 => "deprecated, refused (hvm_allow_set_param: -EINVAL)".into(),
        10 if value > 3 => "must be a timer mode 0-3 (hvm_set_param)".into(),
        9 if value & !HVMPV_FEATURE_MASK != 0 || value & 1 == 0 => {
            "needs base_freq (bit 0) and only the feature bits 0-12 (hvm_set_param)".into()
        }
        14 if value != 0 && value != 3 => "must be S0 (0) or S3 (3) (hvm_set_param)".into(),
        19 if value > 1 => "must be version 0 or 1 (pmtimer_change_ioport)".into(),
        35 if value > 3 => "must be an altp2m mode 0-3 (hvm_set_param)".into(),
        31 if value > 5 => "must be a shutdown reason 0-5 (hvm_set_param)".into(),
        33 if value == 0 || value > 64 => "must be 1-64 pages (hvm_set_param)".into(),
        36 if !matches!(value, 0 | 4 | 8) => "must be 0, 4 or 8 (hvm_set_param)".into(),
        15 if value > u64::from(u32::MAX) => "does not fit 32 bits (hvm_set_param)".into(),
        37 if value >> 32 < 104 => "size (bits 32-63) below the 104-byte TSS (hvm_set_param)".into(),
        38 if value & !1 != 0 => "only XEN_HVM_MCA_CAP_LMCE (bit 0) exists (vmce_enable_mca_cap)".into(),
        _ => return Ok(()),
    };
    Err(Violation::HvmParam { index, value, rule })
}
