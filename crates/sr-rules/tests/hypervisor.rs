//! The hypervisor's load rules on hand-built records, for the branches the real Xen 4.17
//! files cannot reach (32-bit PV contexts, policies without a feature, every XCR0 and CPUID
//! range rule); the real files with one field broken are `tests/hypervisor_rules.rs` at the
//! workspace root.

use std::borrow::Cow;

use sr_format::body::hvm_context::{
    HVM_FILE_MAGIC, HvmHwCpu, HvmSaveEntry, HvmSaveHeader, HvmSaveRecord, HvmSaveRecords, HvmSaveType,
};
use sr_rules::hvm_context::check_context;
use sr_rules::x86::{CpuPolicy, NO_SUBLEAF, invalid_xcr0, wrmsr_refusal};
use sr_rules::{Violation, hvm, pv_vcpu, x86};
use zerocopy::FromZeros;

/// A context of HEADER, vcpu 0's CPU record `cpu` and END.
fn context(cpu: HvmHwCpu) -> Vec<u8> {
    let mut h = HvmSaveHeader::default();
    h.magic.set(HVM_FILE_MAGIC);
    h.version.set(1);
    let recs = HvmSaveRecords {
        entries: vec![
            HvmSaveEntry::new(HvmSaveType::HEADER, 0, HvmSaveRecord::Header(h)),
            HvmSaveEntry::new(HvmSaveType::CPU, 0, HvmSaveRecord::Cpu(Box::new(cpu))),
            HvmSaveEntry::new(HvmSaveType::END, 0, HvmSaveRecord::End),
        ],
        trailing: Cow::Borrowed(&[]),
    };
    recs.to_bytes()
}

fn cpu(f: impl FnOnce(&mut HvmHwCpu)) -> HvmHwCpu {
    let mut c = HvmHwCpu::new_zeroed();
    c.cr0.set(0x11);
    f(&mut c);
    c
}

fn rule(r: Result<(), Violation>) -> String {
    r.expect_err("rejected").to_string()
}

#[test]
fn cpu_rules_without_a_policy_keep_what_no_host_accepts() {
    assert_eq!(check_context(&context(cpu(|_| {})), 0, None, None), Ok(()));
    // A feature bit is not judged without the policy that would say ...
    assert_eq!(check_context(&context(cpu(|c| c.cr4.set(1 << 13))), 0, None, None), Ok(()));
    // ... but a bit no 4.17 guest may set is.
    let r = rule(check_context(&context(cpu(|c| c.cr4.set(1 << 24))), 100, None, None));
    assert_eq!(
        r,
        "HVM save record CPU (instance 0) at byte 132: CR4 0x1000000 has bits 0x1000000 no Xen 4.17 guest may set (hvm_load_cpu_ctxt: bad CR4)"
    );
    // Pending events: reserved bits, type 7.
    for (event, want) in [(0x8000_1000u32, "reserved bits invalid"), (0x8000_0700, "type 7")] {
        let r = rule(check_context(&context(cpu(|c| c.pending_event.set(event))), 0, None, None));
        assert!(r.contains(want), "{r}");
    }
    // An invalid event is fine when not valid (bit 31 clear).
    assert_eq!(check_context(&context(cpu(|c| c.pending_event.set(0x7_0700))), 0, None, None), Ok(()));
}

#[test]
fn cpu_rules_with_a_policy() {
    // leaf 1: EDX fpu|pse|pae, ECX 0; 0x80000001 EDX lm|syscall, ECX 0; 0x80000008 36 bits.
    let leaves = [
        [1, NO_SUBLEAF, 0, 0, 0, 1 | 1 << 3 | 1 << 6],
        [0x8000_0001, NO_SUBLEAF, 0, 0, 0, 1 << 29 | 1 << 11],
        [0x8000_0008, NO_SUBLEAF, 36, 0, 0, 0],
    ];
    let p = CpuPolicy::new(&leaves).unwrap();
    let long_mode = |c: &mut HvmHwCpu| {
        c.cr0.set(0x8000_0011);
        c.cr4.set(1 << 5);
        c.msr_efer.set(0x501);
    };
    assert_eq!(check_context(&context(cpu(long_mode)), 0, Some(&p), None), Ok(()));
    let with = |f: fn(&mut HvmHwCpu)| {
        rule(check_context(
            &context(cpu(|c| {
                long_mode(c);
                f(c);
            })),
            0,
            Some(&p),
            None,
        ))
    };
    assert!(with(|c| c.cr4.set(1 << 5 | 1 << 7)).contains("sets PGE but the CPUID policy has no pge"));
    assert!(with(|c| c.cr4.set(1 << 5 | 1 << 6)).contains("sets MCE but the CPUID policy has no mce or mca"));
    assert!(with(|c| c.msr_efer.set(0xd01)).contains("sets NXE but the CPUID policy has no nx"));
    assert!(with(|c| c.msr_efer.set(0x4501)).contains("sets FFXSE but the CPUID policy has no ffxsr"));
    assert!(with(|c| c.cr3.set(1 << 36)).contains("beyond the 36-bit physical address width"));
}

#[test]
fn xcr0_validity() {
    assert_eq!(invalid_xcr0(0x7), None);
    assert_eq!(invalid_xcr0(0xe7), None);
    assert_eq!(invalid_xcr0(0x1b), None);
    assert_eq!(invalid_xcr0(0x2), Some("x87 (bit 0) clear"));
    assert_eq!(invalid_xcr0(0x5), Some("YMM without SSE"));
    assert!(invalid_xcr0(0x27).unwrap().contains("OPMASK, ZMM and HI_ZMM"));
    assert!(invalid_xcr0(0xe3).unwrap().contains("OPMASK, ZMM and HI_ZMM"));
    assert_eq!(invalid_xcr0(0xb), Some("BNDREGS and BNDCSR differ"));
}

#[test]
fn xstate_sizes_follow_the_policy() {
    let leaves = [[0xd, 2, 0x100, 0x240, 0, 0], [0xd, 9, 8, 0xa80, 0, 0]];
    let p = CpuPolicy::new(&leaves).unwrap();
    assert_eq!(p.xstate_size(0), Some(0));
    assert_eq!(p.xstate_size(3), Some(576));
    assert_eq!(p.xstate_size(7), Some(0x340));
    assert_eq!(p.xstate_size(0x207), Some(0xa88));
    assert_eq!(p.xstate_size(0x1b), None, "the BND subleaves were not sent");
}

#[test]
fn cpuid_policy_ranges() {
    use x86::check_cpuid_policy as check;
    let ok = [[4, 5, 0, 0, 0, 0], [0xb, 1, 0, 0, 0, 0], [0xd, 62, 0, 0, 0, 0], [0x4000_0100, NO_SUBLEAF, 0, 0, 0, 0]];
    assert_eq!(check(&ok), Ok(()));
    for (l, s, want) in [
        (4, 6, "subleaf out of range (this leaf has 6)"),
        (0xb, 2, "subleaf out of range (this leaf has 2)"),
        (0xd, 63, "subleaf out of range (this leaf has 63)"),
        (0xe, NO_SUBLEAF, "no such leaf"),
        (0x4000_0001, NO_SUBLEAF, "no such leaf"),
        (0x8000_0022, NO_SUBLEAF, "no such leaf"),
        (0x4000_0000, 0, "this leaf has no subleaves"),
    ] {
        let r = rule(check(&[[l, s, 0, 0, 0, 0]]));
        assert!(r.contains(want), "{l:#x}/{s:#x}: {r}");
    }
}

#[test]
fn tsc_modes_and_msr_policy() {
    for mode in 0..=2 {
        assert_eq!(x86::check_tsc_mode(mode), Ok(()));
    }
    assert!(rule(x86::check_tsc_mode(3)).starts_with("TSC mode 3: Xen 4.17 accepts 0"));
    assert_eq!(x86::check_msr_policy(&[(0xce, 0, 0x8000_0000), (0x10a, 0, u64::MAX)]), Ok(()));
    assert!(rule(x86::check_msr_policy(&[(0x10a, 2, 0)])).contains("flags 0x2, must be zero"));
}

#[test]
fn hvm_params_xen_ignores_or_accepts() {
    // PAE_ENABLED is dropped by libxc; unused numbers are accepted and stored.
    assert_eq!(hvm::check_param(4, u64::MAX), Ok(()));
    assert_eq!(hvm::check_param(3, 5), Ok(()));
    assert_eq!(hvm::check_param(9, 1 | 1 << 12), Ok(()));
    assert!(rule(hvm::check_param(9, 1 << 13 | 1)).contains("(VIRIDIAN)"));
    assert!(rule(hvm::check_param(9, 0)).contains("needs base_freq"));
    assert_eq!(hvm::check_param(14, 3), Ok(()));
    assert_eq!(hvm::check_param(33, 64), Ok(()));
    assert!(rule(hvm::check_param(33, 65)).contains("1-64"));
}

#[test]
fn msr_values_guest_wrmsr_refuses() {
    // A policy lacking rdtscp, rdpid, virt-ssbd, dbext and mpx.
    let leaves = [[7, 0, 0, 0, 0, 0], [0x8000_0001, NO_SUBLEAF, 0, 0, 0, 0], [0x8000_0008, NO_SUBLEAF, 0, 0, 0, 0]];
    let p = CpuPolicy::new(&leaves).unwrap();
    let refusal = |i, v| wrmsr_refusal(Some(&p), None, i, v).unwrap_or_default();
    assert!(refusal(x86::MSR_TSC_AUX, 1).contains("without rdtscp or rdpid"));
    assert!(refusal(x86::MSR_VIRT_SPEC_CTRL, 0).contains("without virt-ssbd"));
    assert!(refusal(x86::MSR_AMD64_DR0_ADDRESS_MASK, 1 << 32).contains("does not fit 32 bits"));
    assert!(refusal(x86::MSR_IA32_BNDCFGS, 0x4).contains("reserved bits 2-11"));
    // Without a policy only what no guest may have is refused.
    assert_eq!(wrmsr_refusal(None, None, x86::MSR_TSC_AUX, 1), None);
    // CPUID faulting needs PLATFORM_INFO's bit 31.
    let faulting = |platform| wrmsr_refusal(None, platform, x86::MSR_INTEL_MISC_FEATURES_ENABLES, 1);
    assert!(faulting(Some(0)).unwrap().contains("without it in the MSR policy's PLATFORM_INFO"));
    assert_eq!(faulting(Some(0x8000_0000)), None);
}

#[test]
fn pv_32bit_contexts() {
    let mut b = vec![0u8; 2800];
    assert_eq!(pv_vcpu::check_basic(0, &b, 4), Ok(()));
    b[2632..2636].copy_from_slice(&0xc000_0800u32.to_le_bytes());
    assert!(rule(pv_vcpu::check_basic(0, &b, 4)).contains("ldt_base 0xc0000800 is not page aligned"));
    b[2632..2636].fill(0);
    b[2636..2640].copy_from_slice(&9000u32.to_le_bytes());
    assert!(rule(pv_vcpu::check_basic(0, &b, 4)).contains("ldt_ents 9000 > 8192"));
    b[2636..2640].fill(0);
    b[2796..2800].copy_from_slice(&0x40u32.to_le_bytes());
    assert!(rule(pv_vcpu::check_basic(0, &b, 4)).contains("a 32-bit PV guest cannot have"));
    // vm_assist is vcpu 0's only.
    assert_eq!(pv_vcpu::check_basic(1, &b, 4), Ok(()));
    // A 64-bit guest may have m2p_strict (bit 32).
    let mut b = vec![0u8; 5168];
    b[512] = 4; // in kernel mode
    b[5136..5144].copy_from_slice(&(1u64 << 32 | 0x3f).to_le_bytes());
    assert_eq!(pv_vcpu::check_basic(0, &b, 8), Ok(()));
}

#[test]
fn vmce_caps_any_host_vendor_offers() {
    use sr_rules::hvm_context::check_vmce_caps;
    assert_eq!(check_vmce_caps(2), Ok(()));
    assert_eq!(check_vmce_caps(1 << 24 | 1 << 11 | 1 << 10 | 1 << 27 | 1 << 8 | 2), Ok(()));
    assert!(check_vmce_caps(1 << 9).is_err(), "MCG_EXT_P is not offered to guests");
}
