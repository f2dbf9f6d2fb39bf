//! What Xen 4.17's hypervisor checks when libxc sets an x86 PV vcpu's saved state
//! (`tools/libs/guest/xg_sr_restore_x86_pv.c`: `process_vcpu_basic`, `_extended`, `_xsave`,
//! `_msrs`), beyond the blob sizes of [`crate::pv::check_vcpu_blob`] and the frames of
//! [`crate::pv::check_end`]:
//!
//! * X86_PV_VCPU_BASIC (`XEN_DOMCTL_setvcpucontext` -> `arch_set_info_guest`,
//!   `xen/arch/x86/domain.c`): for a 64-bit guest, canonical rip, rsp, kernel_sp, fs/gs
//!   bases, callback and trap handler addresses, and an LDT base outside Xen's range; for
//!   both widths an LDT base on a page boundary and at most 8192 LDT entries, vcpu 0's
//!   `vm_assist` only with assists the guest type has, and a 64-bit vcpu in user mode needs a
//!   user page table (CR1);
//! * X86_PV_VCPU_EXTENDED (`XEN_DOMCTL_set_ext_vcpucontext`): its `size` field at least 32,
//!   canonical SYSCALL32 and SYSENTER callbacks, MCG_CAP bits a guest may have;
//! * X86_PV_VCPU_XSAVE (`XEN_DOMCTL_setvcpuextstate`): XCR0 and `xcr0_accum` as
//!   `validate_xstate` wants them and the length `xcr0_accum` needs;
//! * X86_PV_VCPU_MSRS (`XEN_DOMCTL_set_vcpu_msrs`): at most 11 entries, reserved words zero,
//!   only the MSRs it loads, each value one `guest_wrmsr` accepts.

use sr_format::RecordType;

use crate::Violation;
use crate::hvm_context::check_vmce_caps;
use crate::x86::{self, CpuPolicy, is_canonical};

/// `HYPERVISOR_VIRT_END`: the end of Xen's part of a 64-bit PV guest's address space.
const HYPERVISOR_VIRT_END: u64 = 0xffff_8800_0000_0000;
/// `VGCF_in_kernel`.
const VGCF_IN_KERNEL: u64 = 1 << 2;
/// `PV32_VM_ASSIST_MASK` (4gb_segments, 4gb_segments_notify, writable_pagetables,
/// pae_extended_cr3, architectural_iopl, runstate_update_flag).
const PV32_VM_ASSIST_MASK: u64 = 0x3f;
/// `PV64_VM_ASSIST_MASK`: the 32-bit ones and m2p_strict (32).
const PV64_VM_ASSIST_MASK: u64 = PV32_VM_ASSIST_MASK | 1 << 32;

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

fn u32_at(b: &[u8], at: usize) -> u64 {
    u64::from(u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes")))
}

fn fail(vcpu: u32, record: RecordType, rule: String) -> Violation {
    Violation::VcpuState { vcpu, record, rule }
}

/// X86_PV_VCPU_BASIC (a context of the right size for `guest_width`; others are left to
/// [`crate::pv::check_vcpu_blob`]).
///
/// # Errors
/// [`Violation::VcpuState`].
pub fn check_basic(vcpu: u32, blob: &[u8], guest_width: u8) -> Result<(), Violation> {
    let f = |rule: String| fail(vcpu, RecordType::X86_PV_VCPU_BASIC, rule);
    let (ldt_base, ldt_ents, vm_assist, mask) = match (guest_width, blob.len()) {
        (8, sr_format::body::VCPU_CONTEXT_64) => {
            let named = [
                ("rip", 648),
                ("rsp", 672),
                ("kernel_sp", 4976),
                ("fs_base", 5144),
                ("gs_base_kernel", 5152),
                ("gs_base_user", 5160),
                ("event_callback_eip", 5112),
                ("syscall_callback_eip", 5128),
                ("failsafe_callback_eip", 5120),
            ];
            for (name, at) in named {
                let v = u64_at(blob, at);
                if !is_canonical(v) {
                    return Err(f(format!("{name} {v:#x} is not canonical (arch_set_info_guest)")));
                }
            }
            for i in 0..256 {
                let v = u64_at(blob, 720 + 16 * i + 8);
                if !is_canonical(v) {
                    return Err(f(format!("trap_ctxt[{i}].address {v:#x} is not canonical (arch_set_info_guest)")));
                }
            }
            let (ldt_base, ldt_ents) = (u64_at(blob, 4816), u64_at(blob, 4824));
            if ldt_ents != 0 && !is_canonical(ldt_base) {
                return Err(f(format!("ldt_base {ldt_base:#x} is not canonical (arch_set_info_guest)")));
            }
            if (1 << 47..HYPERVISOR_VIRT_END).contains(&ldt_base) {
                return Err(f(format!("ldt_base {ldt_base:#x} is inside Xen's address range (arch_set_info_guest)")));
            }
            let flags = u64_at(blob, 512);
            if flags & VGCF_IN_KERNEL == 0 && u64_at(blob, 4984 + 8) == 0 {
                return Err(f(
                    "in user mode (VGCF_in_kernel clear) without a user page table (CR1 0) (arch_set_info_guest)"
                        .into(),
                ));
            }
            (ldt_base, ldt_ents, u64_at(blob, 5136), PV64_VM_ASSIST_MASK)
        }
        (4, sr_format::body::VCPU_CONTEXT_32) => {
            (u32_at(blob, 2632), u32_at(blob, 2636), u32_at(blob, 2796), PV32_VM_ASSIST_MASK)
        }
        _ => return Ok(()),
    };
    if ldt_base & 0xfff != 0 {
        return Err(f(format!("ldt_base {ldt_base:#x} is not page aligned (arch_set_info_guest: LDT safety checks)")));
    }
    if ldt_ents > 8192 {
        return Err(f(format!("ldt_ents {ldt_ents} > 8192 (arch_set_info_guest: LDT safety checks)")));
    }
    if vcpu == 0 && vm_assist & !mask != 0 {
        return Err(f(format!(
            "vm_assist {vm_assist:#x} has assists {:#x} a {}-bit PV guest cannot have (arch_set_info_guest)",
            vm_assist & !mask,
            u32::from(guest_width) * 8
        )));
    }
    Ok(())
}

/// Offset of `vmce` in `struct xen_domctl_ext_vcpucontext`.
const EXT_VMCE_AT: usize = 32;

/// X86_PV_VCPU_EXTENDED: the `xen_domctl_ext_vcpucontext` libxc copies into the domctl.
///
/// # Errors
/// [`Violation::VcpuState`].
pub fn check_extended(vcpu: u32, blob: &[u8]) -> Result<(), Violation> {
    let f = |rule: String| fail(vcpu, RecordType::X86_PV_VCPU_EXTENDED, rule);
    if blob.len() < 8 {
        return Ok(());
    }
    let size = u32_at(blob, 4);
    if size < EXT_VMCE_AT as u64 {
        return Err(f(format!("size field {size} < 32 (XEN_DOMCTL_set_ext_vcpucontext: -EINVAL)")));
    }
    for (name, at) in [("syscall32_callback_eip", 8), ("sysenter_callback_eip", 16)] {
        if blob.len() >= at + 8 && !is_canonical(u64_at(blob, at)) {
            return Err(f(format!("{name} {:#x} is not canonical (XEN_DOMCTL_set_ext_vcpucontext)", u64_at(blob, at))));
        }
    }
    // vcpu_set_vmce: the caps are loaded when the size covers them.
    if size >= EXT_VMCE_AT as u64 + 8 && blob.len() >= EXT_VMCE_AT + 8 {
        check_vmce_caps(u64_at(blob, EXT_VMCE_AT)).map_err(f)?;
    }
    Ok(())
}

/// X86_PV_VCPU_XSAVE: xcr0, xcr0_accum and the XSAVE area (`XEN_DOMCTL_setvcpuextstate`).
///
/// # Errors
/// [`Violation::VcpuState`].
pub fn check_xsave(vcpu: u32, blob: &[u8], policy: Option<&CpuPolicy<'_>>) -> Result<(), Violation> {
    let f = |rule: String| fail(vcpu, RecordType::X86_PV_VCPU_XSAVE, rule);
    const HDR: usize = 16;
    const MIN: usize = HDR + x86::XSTATE_AREA_MIN_SIZE as usize;
    if blob.len() < HDR {
        return Ok(()); // the size rule of check_vcpu_blob
    }
    let (xcr0, accum) = (u64_at(blob, 0), u64_at(blob, 8));
    if accum == 0 {
        if xcr0 != 0 {
            return Err(f(format!("xcr0 {xcr0:#x} with xcr0_accum 0 (XEN_DOMCTL_setvcpuextstate: -EINVAL)")));
        }
        if blob.len() != HDR {
            return Err(f(format!("{} bytes of state with xcr0_accum 0: only the 16-byte header loads", blob.len())));
        }
        return Ok(());
    }
    if blob.len() < MIN {
        return Err(f(format!(
            "{} bytes with xcr0_accum {accum:#x}: less than the header and the {MIN}-byte minimum area (-EINVAL)",
            blob.len()
        )));
    }
    let hdr_at = HDR + 512;
    let reserved: Vec<u64> = (0..6).map(|i| u64_at(blob, hdr_at + 16 + 8 * i)).collect();
    x86::validate_xstate(policy, xcr0, accum, u64_at(blob, hdr_at), u64_at(blob, hdr_at + 8), &reserved)
        .map_err(|r| f(format!("{r} (validate_xstate)")))?;
    if let Some(area) = policy.and_then(|p| p.xstate_size(accum)) {
        let want = HDR as u64 + area;
        if blob.len() as u64 != want {
            return Err(f(format!(
                "{} bytes, xcr0_accum {accum:#x} needs exactly {want} (XEN_DOMCTL_setvcpuextstate: -EINVAL)",
                blob.len()
            )));
        }
    }
    Ok(())
}

/// MSRs `XEN_DOMCTL_set_vcpu_msrs` loads for a PV vcpu.
const PV_LOADED_MSRS: &[u32] = &[
    x86::MSR_SPEC_CTRL,
    x86::MSR_INTEL_MISC_FEATURES_ENABLES,
    x86::MSR_TSC_AUX,
    x86::MSR_AMD64_DR0_ADDRESS_MASK,
    x86::MSR_AMD64_DR1_ADDRESS_MASK,
    x86::MSR_AMD64_DR1_ADDRESS_MASK + 1,
    x86::MSR_AMD64_DR3_ADDRESS_MASK,
];

/// The most entries `XEN_DOMCTL_set_vcpu_msrs` takes (7, 11 on a host with DBEXT).
pub const PV_MSRS_MAX: usize = 11;

/// X86_PV_VCPU_MSRS: entries of 16 bytes (index u32, reserved u32, value u64).
///
/// # Errors
/// [`Violation::VcpuState`].
pub fn check_msrs(
    vcpu: u32,
    blob: &[u8],
    policy: Option<&CpuPolicy<'_>>,
    platform_info: Option<u64>,
) -> Result<(), Violation> {
    let f = |rule: String| fail(vcpu, RecordType::X86_PV_VCPU_MSRS, rule);
    let count = blob.len() / 16;
    if count > PV_MSRS_MAX {
        return Err(f(format!("{count} MSRs, more than the {PV_MSRS_MAX} Xen 4.17 loads (XEN_DOMCTL_set_vcpu_msrs)")));
    }
    for (i, e) in blob.chunks_exact(16).enumerate() {
        let (index, reserved, value) = (u32_at(e, 0) as u32, u32_at(e, 4), u64_at(e, 8));
        if reserved != 0 {
            return Err(f(format!(
                "entry {i} (MSR {index:#x}): reserved is {reserved:#x}, must be zero (XEN_DOMCTL_set_vcpu_msrs)"
            )));
        }
        if !PV_LOADED_MSRS.contains(&index) {
            return Err(f(format!("entry {i}: MSR {index:#x} is not one XEN_DOMCTL_set_vcpu_msrs loads")));
        }
        if let Some(why) = x86::wrmsr_refusal(policy, platform_info, index, value) {
            return Err(f(format!("entry {i}: {why} (guest_wrmsr)")));
        }
    }
    Ok(())
}
