//! The `xsr` command line on the real Xen 4.17 file and on broken copies of it.

mod common;

use std::fs;

use common::{real_save_file, stderr, stdout, xsr, xsr_stdin};

fn write_tmp(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> String {
    let p = dir.path().join(name);
    fs::write(&p, bytes).unwrap();
    p.to_str().unwrap().to_string()
}

#[test]
fn inspect_lists_every_layer_and_record() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_tmp(&dir, "real.save", &real_save_file());
    let out = xsr(&["inspect", &file]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("layers: xl -> libxl -> libxc\n"), "{text}");
    assert!(text.contains("0x6d3  libxc      4  X86_PV_P2M_FRAMES"), "{text}");
    assert!(text.contains("pages: L1TAB 15, L1TAB|PINNED 15, L2TAB 10, L3TAB 72, L4TAB|PINNED 7, NOTAB 8073"));
    assert!(text.contains("vcpus: 1 (id 0)"), "{text}");

    let out = xsr(&["inspect", "--json", &file]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 5 + 19 + 1);
    assert_eq!(items[5]["kind"], "X86_PV_INFO");
    assert_eq!(items[5]["offset"], 0x3bb);
    assert_eq!(v["totals"]["records"], 19);
    assert_eq!(v["totals"]["bytes"], 33_632_267);
    assert!(v["error"].is_null());
}

#[test]
fn verify_exit_codes() {
    let bytes = real_save_file();
    let dir = tempfile::tempdir().unwrap();
    let good = write_tmp(&dir, "good.save", &bytes);
    let out = xsr(&["verify", &good]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("valid: x86 PV stream v3 (xl), 19 records, 33632267 bytes"));
    let out = xsr(&["verify", "--strict", "--json", &good]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["valid"], true);
    assert_eq!(v["data_pages"], 8192);

    // Truncated inside the fourth PAGE_DATA record.
    let cut = write_tmp(&dir, "cut.save", &bytes[..0xc06793 + 100]);
    let out = xsr(&["verify", &cut]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("truncated at byte 12609427"), "{}", stdout(&out));

    // A reserved bit in the domain header: ignored by restore, rejected by --strict.
    let mut reserved = bytes.clone();
    reserved[0x3ab + 6] = 1;
    let res = write_tmp(&dir, "reserved.save", &reserved);
    assert_eq!(xsr(&["verify", &res]).status.code(), Some(0));
    let out = xsr(&["verify", "--strict", &res]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("domain header reserved"), "{}", stdout(&out));

    // A PAGE_DATA entry with page type nibble 5.
    let mut bad_type = bytes.clone();
    bad_type[0x763 + 16 + 7] = 0x50;
    let bad = write_tmp(&dir, "badtype.save", &bad_type);
    let out = xsr(&["verify", &bad]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("unknown page type 0x5"), "{}", stdout(&out));

    assert_eq!(xsr(&["verify", "/nonexistent/file"]).status.code(), Some(2));
    assert_eq!(xsr(&["verify"]).status.code(), Some(2));
}

#[test]
fn verify_and_inspect_read_stdin() {
    let bytes = real_save_file();
    let out = xsr_stdin(&["verify", "-"], &bytes);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = xsr_stdin(&["verify", "-"], &bytes[..5000]);
    assert_eq!(out.status.code(), Some(1));
    let out = xsr_stdin(&["inspect", "-"], &bytes);
    assert!(stdout(&out).contains("totals: 19 libxc records, 2 libxl records, 33632267 bytes"));
}

#[test]
fn restore_writes_a_complete_directory_or_nothing() {
    let bytes = real_save_file();
    let dir = tempfile::tempdir().unwrap();
    let file = write_tmp(&dir, "real.save", &bytes);
    let out_dir = dir.path().join("restored");
    let out = xsr(&["restore", &file, "--out", out_dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let image = fs::read(out_dir.join("memory.img")).unwrap();
    assert_eq!(image.len(), 8192 * 4096);
    // The tagged pages of the guest's tmpfs file are in the image.
    let tagged: std::collections::BTreeSet<&[u8]> = image
        .chunks_exact(4096)
        .filter(|p| p.starts_with(b"REALXEN-PAGE-") && p[19] == b'-' && p[20..40] == p[..20])
        .map(|p| &p[13..19])
        .collect();
    assert_eq!(tagged.len(), 1024);
    let manifest: serde_json::Value = serde_json::from_slice(&fs::read(out_dir.join("domain.json")).unwrap()).unwrap();
    assert_eq!(manifest["domain_type"], 1);
    assert_eq!(manifest["pv_info"]["guest_width"], 8);
    assert_eq!(manifest["container"]["layer"], "xl");
    assert_eq!(fs::read(out_dir.join("vcpu0-basic.bin")).unwrap().len(), 5168);
    assert!(fs::read(out_dir.join("xl-config.json")).unwrap().starts_with(b"{\n    \"c_info\""));

    // Refuses to overwrite.
    let out = xsr(&["restore", &file, "--out", out_dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));

    // A stream that breaks leaves nothing behind, not even the temporary directory.
    let cut = write_tmp(&dir, "cut.save", &bytes[..bytes.len() - 100]);
    let failed = dir.path().join("failed");
    let out = xsr(&["restore", &cut, "--out", failed.to_str().unwrap()]);
    assert_ne!(out.status.code(), Some(0));
    assert!(stderr(&out).contains("truncated"), "{}", stderr(&out));
    assert!(!failed.exists());
    let names: Vec<String> =
        fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(names.iter().all(|n| !n.contains("partial")), "{names:?}");

    // A bound below the guest's size is a clear error (2: the stream may well be valid).
    let small = dir.path().join("small");
    let out = xsr(&["restore", &file, "--out", small.to_str().unwrap(), "--max-memory", "16M"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("(raise --max-memory: at least 20M is needed)"), "{}", stderr(&out));
    assert!(!small.exists());
}

#[test]
fn extract_raw_and_elf_agree() {
    let bytes = real_save_file();
    let dir = tempfile::tempdir().unwrap();
    let file = write_tmp(&dir, "real.save", &bytes);
    let raw = dir.path().join("mem.raw");
    let elf = dir.path().join("mem.elf");
    assert!(xsr(&["extract", &file, "--out", raw.to_str().unwrap()]).status.success());
    let out = xsr(&["extract", &file, "--format", "elf", "--out", elf.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let raw = fs::read(raw).unwrap();
    let elf = fs::read(elf).unwrap();
    assert_eq!(&elf[..4], b"\x7fELF");
    assert_eq!(u16::from_le_bytes([elf[16], elf[17]]), 4, "ET_CORE");
    assert_eq!(u16::from_le_bytes([elf[18], elf[19]]), 62, "EM_X86_64");
    assert_eq!(u16::from_le_bytes([elf[56], elf[57]]), 2, "PT_NOTE, then one PT_LOAD: pfns 0..8192 are one run");
    assert_eq!(u32::from_le_bytes(elf[64..68].try_into().unwrap()), 4, "PT_NOTE");
    let ph = &elf[120..176];
    let field = |at: usize| u64::from_le_bytes(ph[at..at + 8].try_into().unwrap());
    assert_eq!(u32::from_le_bytes(ph[..4].try_into().unwrap()), 1, "PT_LOAD");
    let (offset, paddr, filesz) = (field(8) as usize, field(24), field(32) as usize);
    assert_eq!((paddr, filesz), (0, 8192 * 4096));
    assert_eq!(&elf[offset..offset + filesz], &raw[..]);
    // No temporary files left beside the outputs.
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 3);
}
