//! Note descriptors: the `elf_prstatus` of Linux core files (x86-64 and AArch64) and QEMU's
//! `QEMUCPUState`.

use sr_format::cpu::{Aarch64Regs, Segment, X86Regs};

/// Size of Linux's x86-64 `struct elf_prstatus`: the common prefix (`pr_info`, `pr_cursig`,
/// `pr_sigpend`, `pr_sighold`, pid/ppid/pgrp/sid, four `timeval`s: 112 bytes), 27 `pr_reg`
/// words (`user_regs_struct`), `pr_fpvalid` and padding.
pub const X86_64_PRSTATUS_SIZE: usize = 336;
/// Size of Linux's AArch64 `struct elf_prstatus`: the 112-byte prefix, 34 `pr_reg` words
/// (x0..x30, sp, pc, pstate), `pr_fpvalid` and padding.
pub const ARM64_PRSTATUS_SIZE: usize = 392;
/// Size of QEMU's x86 `QEMUCPUState` (`target/i386/arch_dump.c`): version, size, 18
/// general/rip/rflags words, ten 24-byte segments (cs ds es fs gs ss ldt tr gdt idt), cr0..cr4,
/// kernel_gs_base.
pub const QEMU_CPU_STATE_SIZE: usize = 440;

const PR_PID: usize = 32;
const PR_REG: usize = 112;

fn put(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// The x86-64 `elf_prstatus` of vcpu `vcpu` (`pr_pid` = vcpu + 1; gdb numbers threads by
/// LWP, and 0 is not a valid one). `pr_reg` is `user_regs_struct`: r15 r14 r13 r12 rbp rbx
/// r11 r10 r9 r8 rax rcx rdx rsi rdi orig_rax rip cs eflags rsp ss fs_base gs_base ds es fs
/// gs; `orig_rax` is -1 (not in a system call).
pub fn x86_64_prstatus(vcpu: u32, r: &X86Regs) -> [u8; X86_64_PRSTATUS_SIZE] {
    let mut b = [0u8; X86_64_PRSTATUS_SIZE];
    b[PR_PID..PR_PID + 4].copy_from_slice(&vcpu.saturating_add(1).to_le_bytes());
    let regs = [
        r.r15,
        r.r14,
        r.r13,
        r.r12,
        r.rbp,
        r.rbx,
        r.r11,
        r.r10,
        r.r9,
        r.r8,
        r.rax,
        r.rcx,
        r.rdx,
        r.rsi,
        r.rdi,
        u64::MAX,
        r.rip,
        u64::from(r.cs.selector),
        r.rflags,
        r.rsp,
        u64::from(r.ss.selector),
        r.fs.base,
        r.gs.base,
        u64::from(r.ds.selector),
        u64::from(r.es.selector),
        u64::from(r.fs.selector),
        u64::from(r.gs.selector),
    ];
    for (i, v) in regs.into_iter().enumerate() {
        put(&mut b, PR_REG + 8 * i, v);
    }
    b
}

/// The AArch64 `elf_prstatus` of vcpu `vcpu` (`pr_pid` = vcpu + 1): `pr_reg` is
/// `user_pt_regs` (x0..x30, sp, pc, pstate).
pub fn arm64_prstatus(vcpu: u32, r: &Aarch64Regs) -> [u8; ARM64_PRSTATUS_SIZE] {
    let mut b = [0u8; ARM64_PRSTATUS_SIZE];
    b[PR_PID..PR_PID + 4].copy_from_slice(&vcpu.saturating_add(1).to_le_bytes());
    for (i, v) in r.x.iter().chain([r.sp, r.pc, r.pstate].iter()).enumerate() {
        put(&mut b, PR_REG + 8 * i, *v);
    }
    b
}

/// QEMU's segment flags (the descriptor's second dword: type in bits 8-11, S 12, DPL 13-14,
/// P 15, AVL 20, L 21, D/B 22, G 23) from Xen's packed arbytes (type 0-3, S 4, DPL 5-6, P 7,
/// AVL 8, L 9, D/B 10, G 11).
fn qemu_flags(attr: u32) -> u32 {
    (attr & 0xff) << 8 | (attr >> 8 & 0xf) << 20
}

/// QEMU's `QEMUCPUState` (version 1, size 440) for one x86 vcpu, as QEMU's `dump-guest-memory`
/// writes it in a "QEMU" note: general registers, rip, rflags, segments with selector,
/// limit, flags and base, LDT, TR, GDT and IDT, CR0..CR4 (CR1 is 0) and KERNEL_GS_BASE.
pub fn qemu_cpu_state(r: &X86Regs) -> [u8; QEMU_CPU_STATE_SIZE] {
    let mut b = [0u8; QEMU_CPU_STATE_SIZE];
    b[0..4].copy_from_slice(&1u32.to_le_bytes());
    b[4..8].copy_from_slice(&(QEMU_CPU_STATE_SIZE as u32).to_le_bytes());
    let words = [
        r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rsp, r.rbp, r.r8, r.r9, r.r10, r.r11, r.r12, r.r13, r.r14, r.r15,
        r.rip, r.rflags,
    ];
    for (i, v) in words.into_iter().enumerate() {
        put(&mut b, 8 + 8 * i, v);
    }
    let table = |base: u64, limit: u32| Segment { selector: 0, base, limit, attr: 0 };
    let segs = [
        r.cs,
        r.ds,
        r.es,
        r.fs,
        r.gs,
        r.ss,
        r.ldtr,
        r.tr,
        table(r.gdtr.base, r.gdtr.limit),
        table(r.idtr.base, r.idtr.limit),
    ];
    for (i, s) in segs.iter().enumerate() {
        let at = 152 + 24 * i;
        b[at..at + 4].copy_from_slice(&u32::from(s.selector).to_le_bytes());
        b[at + 4..at + 8].copy_from_slice(&s.limit.to_le_bytes());
        b[at + 8..at + 12].copy_from_slice(&qemu_flags(s.attr).to_le_bytes());
        put(&mut b, at + 16, s.base);
    }
    for (i, v) in [r.cr0, 0, r.cr2, r.cr3, r.cr4].into_iter().enumerate() {
        put(&mut b, 392 + 8 * i, v);
    }
    put(&mut b, 432, r.kernel_gs_base);
    b
}

/// Appends one ELF note (namesz, descsz, type, name padded to 4, desc padded to 4).
pub(crate) fn push_note(out: &mut Vec<u8>, name: &[u8], n_type: u32, desc: &[u8]) {
    let namesz = name.len() + 1;
    out.extend_from_slice(&(namesz as u32).to_le_bytes());
    out.extend_from_slice(&(desc.len() as u32).to_le_bytes());
    out.extend_from_slice(&n_type.to_le_bytes());
    out.extend_from_slice(name);
    out.resize(out.len() + namesz.next_multiple_of(4) - name.len(), 0);
    out.extend_from_slice(desc);
    out.resize(out.len().next_multiple_of(4), 0);
}
