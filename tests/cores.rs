//! Registers and cores end to end: `xsr inspect` shows each vcpu's registers, and `xsr
//! extract` writes ELF cores (checked by readelf and gdb), LiME and raw images, one-pass from
//! a file and through a temporary image from standard input, byte-identical either way; on
//! the real Xen 4.17 file (one 64-bit PV vcpu) and on a synthetic two-vcpu HVM stream.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::{real_save_file, stderr, stdout, xsr, xsr_stdin};
use sr_format::body::{HvmParamEntry, HvmParamsHeader, TscInfo, encode_page_data};
use sr_format::{DomainHeader, DomainType, ImageHeader, PageType, PfnEntry, RecordType, record_bytes};
use zerocopy::IntoBytes;
use zerocopy::little_endian::{U32, U64};

fn page_of(pfn: u64) -> Vec<u8> {
    (0..4096).map(|i| (pfn as usize * 13 + i) as u8 | 1).collect()
}

fn hvm_entry(out: &mut Vec<u8>, code: u16, instance: u16, payload: &[u8]) {
    out.extend_from_slice(&code.to_le_bytes());
    out.extend_from_slice(&instance.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(payload);
}

const HVM_RIP: [u64; 2] = [0xffff_ffff_8100_0010, 0xffff_ffff_8100_0020];
const HVM_CR3: [u64; 2] = [0x0012_3000, 0x0045_6000];

/// An x86 HVM libxc stream: pfns 0..16 with data, 16 XALLOC (zero), 0x100..0x104 with data;
/// an HVM_CONTEXT with HEADER, two CPU records, a LAPIC and END.
fn hvm_stream() -> Vec<u8> {
    let mut s = ImageHeader::new(3).as_bytes().to_vec();
    s.extend_from_slice(DomainHeader::new(DomainType::X86_HVM, 12, 4, 17).as_bytes());
    s.extend_from_slice(&record_bytes(RecordType::STATIC_DATA_END, &[]));
    let mut entries: Vec<PfnEntry> = (0..16).map(|p| PfnEntry::new(p, PageType::NOTAB)).collect();
    entries.push(PfnEntry::new(16, PageType::XALLOC));
    entries.extend((0x100..0x104).map(|p| PfnEntry::new(p, PageType::NOTAB)));
    let bodies: Vec<u8> = entries.iter().filter(|e| e.page_type.has_data()).flat_map(|e| page_of(e.pfn)).collect();
    let mut body = Vec::new();
    encode_page_data(&mut body, &entries, &bodies, 4096);
    s.extend_from_slice(&body);
    s.extend_from_slice(&record_bytes(RecordType::X86_TSC_INFO, TscInfo::new(0, 2_000_000, 1, 1).as_bytes()));
    let mut ctx = Vec::new();
    let mut header = 0x5438_1286u32.to_le_bytes().to_vec();
    header.extend_from_slice(&1u32.to_le_bytes());
    header.resize(24, 0);
    hvm_entry(&mut ctx, 1, 0, &header);
    for v in 0..2 {
        let mut cpu = vec![0u8; 1032];
        let mut put = |at: usize, x: u64| cpu[at..at + 8].copy_from_slice(&x.to_le_bytes());
        put(512 + 7 * 8, 0xffff_c900_0000_1000 + v as u64); // rsp
        put(640, HVM_RIP[v]);
        put(648, 0x246);
        put(656, 0x8005_0033);
        put(672, HVM_CR3[v]);
        put(680, 0x0020_06f0);
        put(992, 0xd01); // efer
        cpu[736..740].copy_from_slice(&0x10u32.to_le_bytes()); // cs
        hvm_entry(&mut ctx, 2, v as u16, &cpu);
    }
    let mut lapic = vec![0u8; 16];
    lapic[..8].copy_from_slice(&0xfee0_0900u64.to_le_bytes());
    hvm_entry(&mut ctx, 5, 0, &lapic);
    hvm_entry(&mut ctx, 0, 0, &[]);
    s.extend_from_slice(&record_bytes(RecordType::HVM_CONTEXT, &ctx));
    let mut params = HvmParamsHeader { count: U32::new(2), reserved: U32::ZERO }.as_bytes().to_vec();
    for (i, v) in [(1u64, 0x103u64), (17, 0x102)] {
        params.extend_from_slice(HvmParamEntry { index: U64::new(i), value: U64::new(v) }.as_bytes());
    }
    s.extend_from_slice(&record_bytes(RecordType::HVM_PARAMS, &params));
    s.extend_from_slice(&record_bytes(RecordType::END, &[]));
    s
}

fn tool(name: &str) -> bool {
    let found = Command::new(name).arg("--version").output().is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("NOTICE: {name} is not installed; its checks are skipped");
    }
    found
}

fn extract(file: &str, format: &str, out: &Path) {
    let o = xsr(&["extract", file, "--format", format, "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{format}: {}", stderr(&o));
}

/// gdb's view of a core: (thread count, vcpu 0's rip).
fn gdb_threads_and_rip(core: &Path) -> Option<(usize, String)> {
    if !tool("gdb") {
        return None;
    }
    let o = Command::new("gdb")
        .args(["-batch", "-nx", "-c"])
        .arg(core)
        .args(["-ex", "info threads", "-ex", "thread 1", "-ex", "info registers rip"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let threads = text
        .lines()
        .filter(|l| {
            l.contains("LWP ")
                && l.trim_start()
                    .trim_start_matches('*')
                    .trim_start()
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_digit())
        })
        .count();
    let rip = text.lines().find(|l| l.starts_with("rip"))?.split_whitespace().nth(1)?.to_string();
    Some((threads, rip))
}

#[test]
fn real_image_registers_and_cores() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("real.save");
    let bytes = real_save_file();
    fs::write(&file, &bytes).unwrap();
    let file = file.to_str().unwrap();

    let o = xsr(&["inspect", file]);
    let text = stdout(&o);
    let line = text.lines().find(|l| l.starts_with("vcpu 0: ")).unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains("rip 0xffffffff811ba255 rsp 0xffff88800010be28"), "{line}");
    assert!(line.contains("cr3 0x3ed000") && line.ends_with("(X86_PV_VCPU_BASIC)"), "{line}");
    let o = xsr(&["inspect", "--json", file]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let regs = &v["vcpu_registers"][0]["registers"];
    assert_eq!(regs["rip"], 0xffff_ffff_811b_a255u64);
    assert_eq!(regs["cr3"], 0x3ed000);
    assert_eq!(regs["rdx"], 0x1a16, "vcpu 0's rdx is the start_info pfn");
    assert_eq!(regs.as_object().unwrap().len(), 18 + 8 * 4 + 4 + 19);

    let elf = dir.path().join("core.elf");
    extract(file, "elf", &elf);
    let lime = dir.path().join("mem.lime");
    extract(file, "lime", &lime);
    let raw = dir.path().join("mem.raw");
    extract(file, "raw", &raw);
    let (elf_b, lime_b, raw_b) = (fs::read(&elf).unwrap(), fs::read(&lime).unwrap(), fs::read(&raw).unwrap());
    assert_eq!(raw_b.len(), 8192 * 4096);
    assert_eq!(&elf_b[elf_b.len() - raw_b.len()..], &raw_b[..]);
    assert_eq!(&lime_b[..4], b"EMiL");
    assert_eq!(&lime_b[32..], &raw_b[..]);
    // The same bytes through the temporary-image path (standard input cannot be seeked).
    for (format, want) in [("elf", &elf_b), ("lime", &lime_b), ("raw", &raw_b)] {
        let out = dir.path().join(format!("stdin.{format}"));
        let o = xsr_stdin(&["extract", "-", "--format", format, "--out", out.to_str().unwrap()], &bytes);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(fs::read(&out).unwrap() == **want, "{format} from stdin differs");
    }
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 7, "no temporary files left");

    if tool("readelf") {
        let o = Command::new("readelf").arg("-nW").arg(&elf).output().unwrap();
        let notes = String::from_utf8_lossy(&o.stdout);
        assert_eq!(notes.matches("NT_PRSTATUS").count(), 1, "{notes}");
        assert_eq!(notes.lines().filter(|l| l.trim_start().starts_with("QEMU")).count(), 1, "{notes}");
    }
    if let Some((threads, rip)) = gdb_threads_and_rip(&elf) {
        assert_eq!((threads, rip.as_str()), (1, "0xffffffff811ba255"));
    }
}

#[test]
fn synthetic_hvm_registers_and_cores() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hvm.stream");
    let bytes = hvm_stream();
    fs::write(&file, &bytes).unwrap();
    let file = file.to_str().unwrap();
    let o = xsr(&["verify", file]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));

    let o = xsr(&["inspect", file]);
    let text = stdout(&o);
    assert!(text.contains("records: HEADER CPU CPU LAPIC END"), "{text}");
    for v in 0..2 {
        let line = text.lines().find(|l| l.starts_with(&format!("vcpu {v}: "))).unwrap_or_else(|| panic!("{text}"));
        assert!(
            line.contains(&format!("rip {:#x} rsp {:#x}", HVM_RIP[v], 0xffff_c900_0000_1000u64 + v as u64)),
            "{line}"
        );
        assert!(line.contains(&format!("cr3 {:#x}", HVM_CR3[v])) && line.contains("efer 0xd01"), "{line}");
        assert!(line.ends_with("(HVM_CONTEXT)"), "{line}");
    }

    let elf = dir.path().join("core.elf");
    let o = xsr(&["extract", file, "--format", "elf", "--out", elf.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!((v["pages"].as_u64(), v["runs"].as_u64(), v["vcpus"].as_u64()), (Some(21), Some(2), Some(2)));
    assert_eq!(v["one_pass"], true);
    let lime = dir.path().join("mem.lime");
    extract(file, "lime", &lime);
    let raw = dir.path().join("mem.raw");
    extract(file, "raw", &raw);
    let raw_b = fs::read(&raw).unwrap();
    assert_eq!(raw_b.len(), 0x104 * 4096);
    for pfn in (0..16).chain(0x100..0x104) {
        assert!(raw_b[pfn as usize * 4096..][..4096] == page_of(pfn)[..], "pfn {pfn:#x}");
    }
    assert!(raw_b[16 * 4096..0x100 * 4096].iter().all(|&b| b == 0), "XALLOC and the hole read as zeros");
    let lime_b = fs::read(&lime).unwrap();
    assert_eq!(lime_b.len(), 2 * 32 + 21 * 4096);
    assert_eq!(u64::from_le_bytes(lime_b[16..24].try_into().unwrap()), 17 * 4096 - 1, "first range ends at pfn 16");
    for (format, path) in [("elf", &elf), ("lime", &lime), ("raw", &raw)] {
        let out = dir.path().join(format!("stdin.{format}"));
        let o = xsr_stdin(&["extract", "-", "--format", format, "--out", out.to_str().unwrap()], &bytes);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(fs::read(&out).unwrap() == fs::read(path).unwrap(), "{format} from stdin differs");
    }

    if tool("readelf") {
        let o = Command::new("readelf").arg("-nW").arg(&elf).output().unwrap();
        let notes = String::from_utf8_lossy(&o.stdout);
        assert_eq!(notes.matches("NT_PRSTATUS").count(), 2, "{notes}");
        let o = Command::new("readelf").arg("-lW").arg(&elf).output().unwrap();
        let segs = String::from_utf8_lossy(&o.stdout);
        assert!(segs.contains("0x0000000000100000 0x0000000000100000 0x004000 0x004000 RWE"), "{segs}");
    }
    if let Some((threads, rip)) = gdb_threads_and_rip(&elf) {
        assert_eq!((threads, rip), (2, format!("{:#x}", HVM_RIP[0])));
    }
}

#[test]
fn extract_refuses_streams_that_do_not_validate() {
    let dir = tempfile::tempdir().unwrap();
    // HVM_PARAMS names a pfn beyond --max-span: restore's bound, and extract's.
    let file = dir.path().join("hvm.stream");
    fs::write(&file, hvm_stream()).unwrap();
    let out = dir.path().join("core.elf");
    let o = xsr(&[
        "extract",
        file.to_str().unwrap(),
        "--format",
        "elf",
        "--out",
        out.to_str().unwrap(),
        "--max-span",
        "64K",
    ]);
    assert_eq!(o.status.code(), Some(2), "a bound: {}", stderr(&o));
    assert!(stderr(&o).contains("pfn limit"), "{}", stderr(&o));
    // A stream cut short.
    let mut cut = hvm_stream();
    cut.truncate(cut.len() - 8);
    fs::write(&file, &cut).unwrap();
    for format in ["elf", "lime", "raw"] {
        let o = xsr(&["extract", file.to_str().unwrap(), "--format", format, "--out", out.to_str().unwrap()]);
        assert!(!o.status.success(), "{format}");
    }
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1, "nothing but the input is left");
}

#[test]
fn arm_streams_give_aarch64_cores_with_memory_only() {
    // ARM: no TSC_INFO; the HVM_CONTEXT blob is opaque to us (Xen defines no ARM save records).
    let mut s = ImageHeader::new(3).as_bytes().to_vec();
    s.extend_from_slice(DomainHeader::new(DomainType::ARM, 12, 4, 17).as_bytes());
    s.extend_from_slice(&record_bytes(RecordType::STATIC_DATA_END, &[]));
    let entries: Vec<PfnEntry> = (0x40..0x48).map(|p| PfnEntry::new(p, PageType::NOTAB)).collect();
    let bodies: Vec<u8> = entries.iter().flat_map(|e| page_of(e.pfn)).collect();
    let mut body = Vec::new();
    encode_page_data(&mut body, &entries, &bodies, 4096);
    s.extend_from_slice(&body);
    s.extend_from_slice(&record_bytes(RecordType::HVM_CONTEXT, &[0xa5; 64]));
    s.extend_from_slice(&record_bytes(RecordType::END, &[]));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("arm.stream");
    fs::write(&file, &s).unwrap();
    let elf = dir.path().join("arm.elf");
    let o = xsr(&["extract", file.to_str().unwrap(), "--format", "elf", "--out", elf.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!((v["pages"].as_u64(), v["vcpus"].as_u64()), (Some(8), Some(0)));
    let b = fs::read(&elf).unwrap();
    assert_eq!(u16::from_le_bytes([b[18], b[19]]), 183, "EM_AARCH64");
    assert_eq!(u16::from_le_bytes([b[56], b[57]]), 1, "one PT_LOAD, no PT_NOTE");
    let ph = &b[64..120];
    assert_eq!(u64::from_le_bytes(ph[24..32].try_into().unwrap()), 0x40 << 12, "p_paddr");
    let off = u64::from_le_bytes(ph[8..16].try_into().unwrap()) as usize;
    assert!(b[off..off + 4096] == page_of(0x40)[..]);
}
