//! `xsr read`, `grep` and `diff`, compressed inputs and the `virsh save` wrapper, end to end:
//! on the real Xen 4.17 file (as shipped, xz-compressed) and on synthetic HVM and ARM guests
//! saved live (several passes), checked against `xsr restore`.

mod common;

use std::fs;
use std::io::Write;
use std::path::Path;

use common::{real_save_file, stderr, stdout, xsr};
use sr_format::DomainType;
use sr_save::{Container, PrecopyPolicy, SaveOptions, Saver, ZeroPages};
use xsr::synthetic::SyntheticGuest;

/// The real PV guest's file, as it is stored (xz).
fn real_xz() -> String {
    common::testdata::xz_path(common::testdata::PV).to_str().unwrap().to_string()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let p = dir.join(name);
    fs::write(&p, bytes).unwrap();
    p.to_str().unwrap().to_string()
}

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}{}", stdout(out), stderr(out)))
}

/// Where pfn `pfn`'s body is in `bytes` (through the library, as a consumer would).
fn body_offset(bytes: &[u8], pfn: u64) -> usize {
    let image = sr_image::GuestImage::from_bytes(bytes).unwrap();
    match image.index().get(pfn).unwrap().location {
        sr_image::PageLocation::Data(o) => o as usize,
        sr_image::PageLocation::Zero => panic!("pfn {pfn:#x} has no body"),
    }
}

#[test]
fn grep_finds_every_marked_page_of_the_real_guest() {
    let out = xsr(&["grep", &real_xz(), "REALXEN-PAGE-", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let matches = json(&out);
    let mut tags = std::collections::BTreeSet::new();
    for m in matches.as_array().unwrap() {
        let addr = m["addr"].as_u64().unwrap();
        assert_eq!(m["pfn"].as_u64().unwrap(), addr >> 12);
        // The guest's 1024 tmpfs pages each start with their tag.
        if addr % 4096 == 0 {
            let (ctx, before) = (m["context"].as_str().unwrap(), m["before"].as_u64().unwrap() as usize);
            assert_eq!(&ctx[before..before + 13], "REALXEN-PAGE-");
            tags.insert(ctx[before + 13..before + 19].to_string());
        }
    }
    let missing: Vec<u32> = (0..1024).filter(|i| !tags.contains(&format!("{i:06}"))).collect();
    assert!(missing.is_empty(), "pages not found: {missing:?} (tags seen: {})", tags.len());

    // Text output: address first, then the pfn and the context; -m stops early.
    let out = xsr(&["grep", &real_xz(), "REALXEN-PAGE-000777-", "-m", "1"]);
    assert_eq!(out.status.code(), Some(0));
    let line = stdout(&out);
    assert_eq!(line.lines().count(), 1);
    assert!(line.starts_with("0x") && line.contains("  pfn 0x") && line.contains("REALXEN-PAGE-000777-"), "{line}");
    // Hex patterns, and a miss exits 1.
    let out = xsr(&["grep", &real_xz(), "--hex", "5245414c58454e2d504147452d303030373737"]);
    assert_eq!(out.status.code(), Some(0));
    let out = xsr(&["grep", &real_xz(), "NOT-IN-THIS-GUEST-XYZZY"]);
    assert_eq!((out.status.code(), out.stdout.len()), (Some(1), 0));
    let out = xsr(&["grep", &real_xz(), "--hex", "abc"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn read_physical_and_virtual_on_the_real_guest() {
    let dir = tempfile::tempdir().unwrap();
    let out = xsr(&["grep", &real_xz(), "REALXEN-PAGE-000042-", "--json", "-m", "1"]);
    let addr = json(&out)[0]["addr"].as_u64().unwrap();
    let raw = dir.path().join("page.bin");
    let out =
        xsr(&["read", &real_xz(), "--phys", &format!("{addr:#x}"), "--len", "40", "--out", raw.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(fs::read(&raw).unwrap(), b"REALXEN-PAGE-000042-REALXEN-PAGE-000042-");
    // `--out -`: the raw bytes on standard output, no file named "-".
    let out = xsr(&["read", &real_xz(), "--phys", &format!("{addr:#x}"), "--len", "40", "--out", "-"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout, b"REALXEN-PAGE-000042-REALXEN-PAGE-000042-");

    // The same bytes through the kernel's direct map (vcpu 0's page tables, 4-level PV).
    let va = 0xFFFF_8880_0000_0000u64 + addr;
    let out = xsr(&["read", &real_xz(), "--virt", &format!("{va:#x}"), "--len", "32"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with(&format!("{va:x}:")), "{text}");
    assert!(text.contains("REALXEN-PAGE-000"), "{text}");
    // Kernel text at the start of the kernel mapping: the first instruction bytes exist.
    let out = xsr(&["read", &real_xz(), "--virt", "0xffffffff81000000", "--len", "16"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Unmapped virtual address: an error naming the level.
    let out = xsr(&["read", &real_xz(), "--virt", "0x1000", "--len", "16"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("not present"), "{}", stderr(&out));
    // A physical read across the end of memory: a hole error, or zeros when asked.
    let out = xsr(&["read", &real_xz(), "--phys", "0x1fffff0", "--len", "32"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("0x2000000 is not populated"), "{}", stderr(&out));
    let out = xsr(&["read", &real_xz(), "--phys", "0x1fffff0", "--len", "32", "--zeros"]);
    assert!(out.status.success());
    assert!(stdout(&out).contains("2000000:   00 00 00 00"), "{}", stdout(&out));
    // A failed read leaves no output file.
    let failed = dir.path().join("failed.bin");
    let out = xsr(&["read", &real_xz(), "--phys", "0x1fffff0", "--len", "32", "--out", failed.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!failed.exists());
}

#[test]
fn diff_reports_pages_and_state() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = real_save_file();
    let plain = write(dir.path(), "plain.save", &bytes);
    let out = xsr(&["diff", &real_xz(), &plain]);
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(stdout(&out), "identical: 8192 pages, same state records\n");

    let mut changed = bytes.clone();
    changed[body_offset(&bytes, 0x1404) + 100] ^= 0xFF;
    changed[body_offset(&bytes, 0x1405) + 4095] ^= 0x01;
    changed[body_offset(&bytes, 0x10) + 7] ^= 0x01;
    // The TSC_INFO body (a state record): its nsec field.
    let tsc = sr_image::GuestImage::from_bytes(&bytes[..])
        .unwrap()
        .index()
        .state_record(sr_format::RecordType::X86_TSC_INFO, None)
        .unwrap()
        .offset as usize;
    changed[tsc + 8 + 8] ^= 1;
    let changed = write(dir.path(), "changed.save", &changed);
    let out = xsr(&["diff", &plain, &changed]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.contains("differ: pfns 0x1404-0x1405 (2 pages)\n"), "{text}");
    assert!(text.contains("differ: pfn 0x10\n"), "{text}");
    assert!(text.contains("state: X86_TSC_INFO differs\n"), "{text}");
    let v = json(&xsr(&["diff", "--json", &plain, &changed]));
    assert_eq!(v["identical"], false);
    assert_eq!(v["counts"]["differ"], 3);
    assert_eq!(v["differ"], serde_json::json!([[0x10, 1], [0x1404, 2]]));
    let out = xsr(&["diff", &plain, "/nonexistent"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn compressed_inputs_work_for_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = real_save_file();
    let zst = write(dir.path(), "real.anyname", &zstd::encode_all(&bytes[..], 3).unwrap());
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&bytes).unwrap();
    let gz = write(dir.path(), "real.bin", &gz.finish().unwrap());
    let plain = write(dir.path(), "real.save", &bytes);
    for (file, layer) in [(real_xz(), "xz"), (zst, "zstd"), (gz, "gzip")] {
        let out = xsr(&["inspect", &file]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(stdout(&out).starts_with(&format!("layers: {layer} -> xl -> libxl -> libxc\n")), "{}", stdout(&out));
        let out = xsr(&["verify", &file]);
        assert!(stdout(&out).starts_with("valid: x86 PV stream v3 (xl), 19 records, 33632267 bytes"), "{layer}");
        let out = xsr(&["grep", &file, "REALXEN-PAGE-000001-", "-m", "1"]);
        assert_eq!(out.status.code(), Some(0), "{layer}");
        let out = xsr(&["diff", &file, &plain]);
        assert_eq!(out.status.code(), Some(0), "{layer}");
        let raw = dir.path().join(format!("{layer}.raw"));
        let out = xsr(&["extract", &file, "--out", raw.to_str().unwrap()]);
        assert!(out.status.success(), "{layer}: {}", stderr(&out));
        let restored = dir.path().join(format!("{layer}.dir"));
        let out = xsr(&["restore", &file, "--out", restored.to_str().unwrap()]);
        assert!(out.status.success(), "{layer}: {}", stderr(&out));
        assert!(fs::read(restored.join("memory.img")).unwrap() == fs::read(&raw).unwrap());
    }
    // Corrupt compressed data is an I/O error naming the format.
    let mut broken = zstd::encode_all(&bytes[..], 3).unwrap();
    let n = broken.len();
    broken.truncate(n / 2);
    let broken = write(dir.path(), "broken.zst", &broken);
    let out = xsr(&["verify", &broken]);
    assert_ne!(out.status.code(), Some(0));
}

/// The real file with its xl header replaced by the header `virsh save` writes.
fn real_as_virsh() -> Vec<u8> {
    let xl = real_save_file();
    let mut r = sr_format::StreamReader::from_slice(&xl);
    r.next_item().unwrap();
    let libxl_at = r.offset() as usize;
    let mut out = sr_format::virsh::encode_virsh_header(b"<domain type='xen'><name>tiny32</name></domain>\n");
    out.extend_from_slice(&xl[libxl_at..]);
    out
}

#[test]
fn virsh_save_files_read_through_the_wrapper() {
    let dir = tempfile::tempdir().unwrap();
    let virsh = write(dir.path(), "guest.virsh", &real_as_virsh());
    let out = xsr(&["inspect", &virsh]);
    let text = stdout(&out);
    assert!(text.starts_with("layers: virsh -> libxl -> libxc\n"), "{text}");
    assert!(text.contains("VIRSH_HEADER") && text.contains("domain XML 48 bytes"), "{text}");
    let out = xsr(&["verify", &virsh]);
    assert!(stdout(&out).starts_with("valid: x86 PV stream v3 (virsh)"), "{}", stdout(&out));
    let out = xsr(&["grep", &virsh, "REALXEN-PAGE-001023-", "-m", "1"]);
    assert_eq!(out.status.code(), Some(0));
    let out = xsr(&["diff", &virsh, &real_xz()]);
    assert_eq!(out.status.code(), Some(0), "same guest: {}", stdout(&out));
    let restored = dir.path().join("r");
    let out = xsr(&["restore", &virsh, "--out", restored.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Compressed and wrapped.
    let xz = write(dir.path(), "guest.virsh.zst", &zstd::encode_all(&real_as_virsh()[..], 1).unwrap());
    let out = xsr(&["inspect", &xz]);
    assert!(stdout(&out).starts_with("layers: zstd -> virsh -> libxl -> libxc\n"), "{}", stdout(&out));
}

/// A synthetic guest saved live (dirtied while saving: several passes).
fn synthetic_stream(dtype: DomainType, container: Container) -> Vec<u8> {
    let guest = SyntheticGuest::new(dtype, 12, 4 << 20).unwrap();
    guest.start_dirtying(50_000);
    let options = SaveOptions {
        live: Some(PrecopyPolicy { max_iterations: 4, dirty_threshold: 0, downtime_target: None }),
        container,
        zero_pages: ZeroPages::Data,
        verify: true,
        ..SaveOptions::default()
    };
    let mut out = Vec::new();
    Saver::new(options).save(&guest, &mut out).unwrap();
    out
}

#[test]
fn synthetic_hvm_and_arm_read_as_restore_leaves_them() {
    let dir = tempfile::tempdir().unwrap();
    for (name, dtype, container) in
        [("hvm", DomainType::X86_HVM, Container::Libxl), ("arm", DomainType::ARM, Container::Libxc)]
    {
        let bytes = synthetic_stream(dtype, container);
        let file = write(dir.path(), &format!("{name}.stream"), &bytes);
        let restored = dir.path().join(format!("{name}.dir"));
        let out = xsr(&["restore", &file, "--out", restored.to_str().unwrap()]);
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        let memory = fs::read(restored.join("memory.img")).unwrap();
        // One read of the whole guest, holes as zeros, equals the restored sparse image.
        let all = dir.path().join(format!("{name}.read"));
        let len = format!("{:#x}", memory.len());
        let out = xsr(&["read", &file, "--phys", "0", "--len", &len, "--zeros", "--out", all.to_str().unwrap()]);
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        assert!(fs::read(&all).unwrap() == memory, "{name}: read differs from restore");
        // A pattern that crosses from pfn 100 into pfn 101 is found at its address.
        let at = 101 * 4096 - 7;
        let pattern: String = memory[at..at + 16].iter().map(|b| format!("{b:02x}")).collect();
        let v = json(&xsr(&["grep", &file, "--hex", &pattern, "--json"]));
        assert!(v.as_array().unwrap().iter().any(|m| m["addr"] == at), "{name}: {v}");
        // Virtual = physical with paging off, given explicitly.
        let phys = xsr(&["read", &file, "--phys", "0x65000", "--len", "16"]);
        let out = xsr(&["read", &file, "--virt", "0x65000", "--cr3", "0", "--paging", "none", "--len", "16"]);
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        assert_eq!(out.stdout, phys.stdout);
        let out = xsr(&["read", &file, "--virt", "0x65000", "--len", "16"]);
        if dtype == DomainType::ARM {
            // ARM page tables are not walked: the paging state must be given.
            assert_eq!(out.status.code(), Some(2), "{name}");
            assert!(stderr(&out).contains("--cr3"), "{}", stderr(&out));
        } else {
            // The synthetic CPU save record (0x42 bytes) has CR0.PG clear: paging off.
            assert!(out.status.success(), "{name}: {}", stderr(&out));
            assert_eq!(out.stdout, phys.stdout);
        }
    }
    // One byte changed in pfn 0x80: that page differs; a stream against itself is identical.
    let hvm = fs::read(dir.path().join("hvm.stream")).unwrap();
    let mut changed = hvm.clone();
    changed[body_offset(&hvm, 0x80) + 33] ^= 0x10;
    let a = write(dir.path(), "changed.stream", &changed);
    let b = dir.path().join("hvm.stream").to_str().unwrap().to_string();
    let out = xsr(&["diff", &a, &b]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).starts_with("differ: pfn 0x80\n"), "{}", stdout(&out));
    let out = xsr(&["diff", &b, &b]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let arm = dir.path().join("arm.stream");
    let v = json(&xsr(&["diff", "--json", &b, arm.to_str().unwrap()]));
    assert_eq!(v["identical"], false);
    assert!(v["state"].as_array().unwrap().iter().any(|s| s["record"] == "DOMAIN_HEADER"));
}
