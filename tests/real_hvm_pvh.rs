//! The real Xen 4.17 HVM and PVH `xl save` files of `tests/data/xen-4.17/`, end to end through
//! the CLI: `verify --strict`, `inspect`, `extract` (raw and ELF) and a round trip through a
//! restored directory (`restore`, then `save DIR`), checked against facts read out of the
//! files independently (the data folder's README).

mod common;

use std::fs;
use std::io::Read;
use std::path::Path;
use std::process::Command;

use common::testdata::{HVM, PVH, save_file};
use common::{stderr, stdout, xsr};

/// What the data folder's README states about one file.
struct Facts {
    name: &'static str,
    bytes: u64,
    /// Populated pfns (NOTAB) and XTAB pfns.
    notab: u64,
    xtab: u64,
    /// HVM_CONTEXT length and its save records, in order.
    context_len: u64,
    save_records: &'static str,
    /// libxl records after the libxc stream (besides END).
    emulator: bool,
    /// vcpu 0's registers, read out of the CPU save record independently (see
    /// `crates/sr-format/tests/real_hvm_context.rs`): rip, rsp, cr3, gs_base.
    vcpu0: [u64; 4],
}

const HVM_FACTS: Facts = Facts {
    name: HVM,
    bytes: 41_919_663,
    notab: 8187,
    xtab: 1_036_293,
    context_len: 4112,
    save_records: "HEADER CPU PIC PIC IOAPIC LAPIC LAPIC_REGS PCI_IRQ ISA_IRQ PCI_LINK PIT RTC HPET PMTIMER MTRR \
                   VMCE_VCPU TSC_ADJUST END",
    emulator: true,
    vcpu0: [0xffff_ffff_8043_4713, 0xffff_8880_001a_fe38, 0x140_8000, 0xffff_8880_01c0_0000],
};

const PVH_FACTS: Facts = Facts {
    name: PVH,
    bytes: 41_735_149,
    notab: 8144,
    xtab: 1_036_336,
    context_len: 2504,
    save_records: "HEADER CPU LAPIC LAPIC_REGS PCI_IRQ ISA_IRQ PCI_LINK MTRR VMCE_VCPU TSC_ADJUST END",
    emulator: false,
    vcpu0: [0xffff_ffff_8043_4713, 0xffff_8880_001a_be38, 0x142_4000, 0xffff_8880_01a0_0000],
};

/// The test pattern's 1024 pages, in order (page i: `REALXEN-PAGE-%06d-` repeated).
fn pattern_page(i: usize) -> Vec<u8> {
    format!("REALXEN-PAGE-{i:06}-").into_bytes().into_iter().cycle().take(4096).collect()
}

fn json(o: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}{}", stdout(o), stderr(o)))
}

fn write_input(dir: &Path, f: &Facts) -> String {
    let path = dir.join(format!("{}.save", f.name));
    let bytes = save_file(f.name);
    assert_eq!(bytes.len() as u64, f.bytes);
    fs::write(&path, bytes).unwrap();
    path.to_str().unwrap().to_string()
}

fn check_verify_and_inspect(file: &str, f: &Facts) {
    let o = xsr(&["verify", "--strict", file]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let text = stdout(&o);
    assert!(text.starts_with(&format!("valid: x86 HVM stream v3 (xl), 1027 records, {} bytes\n", f.bytes)), "{text}");
    assert!(text.contains(&format!("NOTAB {}, XTAB {} ({} with data)", f.notab, f.xtab, f.notab)), "{text}");

    let o = xsr(&["inspect", "--json", file]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v = json(&o);
    assert_eq!(v["error"], serde_json::Value::Null);
    assert_eq!(v["totals"]["bytes"], f.bytes);
    assert_eq!(v["totals"]["records"], 1027);
    assert_eq!(v["totals"]["pages_by_type"]["NOTAB"], f.notab);
    assert_eq!(v["totals"]["pfn_range"], serde_json::json!([0, 0xfefff]));
    let kinds: Vec<&str> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["layer"] == "libxc" && !i["index"].is_null())
        .map(|i| i["kind"].as_str().unwrap())
        .filter(|k| *k != "PAGE_DATA")
        .collect();
    assert_eq!(
        kinds,
        ["X86_CPUID_POLICY", "X86_MSR_POLICY", "STATIC_DATA_END", "X86_TSC_INFO", "HVM_CONTEXT", "HVM_PARAMS", "END"]
    );
    let pages = v["items"].as_array().unwrap().iter().filter(|i| i["kind"] == "PAGE_DATA").count();
    assert_eq!(pages, 1020);
    let libxl: Vec<&str> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["layer"] == "libxl" && !i["index"].is_null())
        .map(|i| i["kind"].as_str().unwrap())
        .collect();
    let want: &[&str] =
        if f.emulator { &["LIBXC_CONTEXT", "EMULATOR_CONTEXT", "END"] } else { &["LIBXC_CONTEXT", "END"] };
    assert_eq!(libxl, want);
    let ctx = v["items"].as_array().unwrap().iter().find(|i| i["kind"] == "HVM_CONTEXT").unwrap();
    assert_eq!(ctx["length"], f.context_len);
    let detail = ctx["detail"].as_str().unwrap();
    let n = f.save_records.split_whitespace().count();
    assert_eq!(detail, format!("{} bytes, {n} save entries; records: {}", f.context_len, f.save_records));

    // Every vcpu's registers, from the CPU save record.
    let regs = v["vcpu_registers"].as_array().unwrap();
    assert_eq!(regs.len(), 1, "{regs:?}");
    assert_eq!((regs[0]["vcpu"].as_u64(), regs[0]["source"].as_str()), (Some(0), Some("HVM_CONTEXT")));
    let r = &regs[0]["registers"];
    let [rip, rsp, cr3, gs_base] = f.vcpu0;
    assert_eq!((r["rip"].as_u64(), r["rsp"].as_u64()), (Some(rip), Some(rsp)));
    assert_eq!((r["cr3"].as_u64(), r["gs_base"].as_u64()), (Some(cr3), Some(gs_base)));
    assert_eq!(
        (r["cr0"].as_u64(), r["cr4"].as_u64(), r["efer"].as_u64()),
        (Some(0x8005_0033), Some(0x1506b0), Some(0xd01))
    );
    let o = xsr(&["inspect", file]);
    let text = stdout(&o);
    let line = text.lines().find(|l| l.starts_with("vcpu 0: ")).unwrap_or_else(|| panic!("{text}"));
    assert!(
        line.starts_with(&format!("vcpu 0: rip {rip:#x} rsp {rsp:#x} rflags 0x2 cr0 0x80050033 cr3 {cr3:#x}")),
        "{line}"
    );
    assert!(line.ends_with("(HVM_CONTEXT)"), "{line}");
}

fn check_extract(dir: &Path, file: &str, f: &Facts) {
    let raw = dir.join(format!("{}.raw", f.name));
    let o = xsr(&["extract", file, "--format", "raw", "--out", raw.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(fs::metadata(&raw).unwrap().len(), 0xff000 * 4096, "pfn 0xfefff is the last");
    // Guest RAM below the MMIO hole: pfns 0..8192 (32 MiB). Every pattern page is there, each
    // exactly once at a page boundary at least, and in them the file's md5 as the guest computed.
    let mut low = vec![0u8; 8192 * 4096];
    fs::File::open(&raw).unwrap().read_exact(&mut low).unwrap();
    let mut found = vec![false; 1024];
    for page in low.chunks(4096) {
        if let Some(num) = page.strip_prefix(b"REALXEN-PAGE-").and_then(|r| std::str::from_utf8(&r[..6]).ok())
            && let Ok(i) = num.parse::<usize>()
            && i < 1024
            && page == pattern_page(i)
        {
            found[i] = true;
        }
    }
    let missing: Vec<usize> = (0..1024).filter(|&i| !found[i]).collect();
    assert!(missing.is_empty(), "{}: pattern pages missing: {missing:?}", f.name);

    let elf = dir.join(format!("{}.elf", f.name));
    let o = xsr(&["extract", file, "--format", "elf", "--out", elf.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v = json(&o);
    assert_eq!((v["pages"].as_u64(), v["vcpus"].as_u64()), (Some(f.notab), Some(1)));
    assert!(!stderr(&o).contains("warning"), "{}", stderr(&o));
    let elf_b = fs::read(&elf).unwrap();
    assert_eq!(&elf_b[..4], b"\x7fELF");
    if Command::new("readelf").arg("--version").output().is_ok_and(|o| o.status.success()) {
        let o = Command::new("readelf").arg("-lW").arg(&elf).output().unwrap();
        let segs = String::from_utf8_lossy(&o.stdout);
        let loads: u64 = segs
            .lines()
            .filter(|l| l.trim_start().starts_with("LOAD"))
            .map(|l| u64::from_str_radix(l.split_whitespace().nth(5).unwrap().trim_start_matches("0x"), 16).unwrap())
            .sum();
        assert_eq!(loads, f.notab * 4096, "PT_LOAD sizes add up to the populated pages\n{segs}");
        let o = Command::new("readelf").arg("-nW").arg(&elf).output().unwrap();
        let notes = String::from_utf8_lossy(&o.stdout);
        assert_eq!(notes.matches("NT_PRSTATUS").count(), 1, "one per vcpu\n{notes}");
        // NT_PRSTATUS of x86-64: pr_reg at byte 112, rip is its 17th register.
        let note_start = elf_b.windows(5).position(|w| w == b"CORE\0").expect("a CORE note") + 8;
        let rip_at = note_start + 112 + 16 * 8;
        assert_eq!(u64::from_le_bytes(elf_b[rip_at..rip_at + 8].try_into().unwrap()), f.vcpu0[0]);
    } else {
        eprintln!("NOTICE: readelf is not installed; its checks are skipped");
    }
}

fn check_round_trip(dir: &Path, file: &str, f: &Facts) {
    let restored = dir.join(format!("{}.dir", f.name));
    let o = xsr(&["restore", file, "--out", restored.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let again = dir.join(format!("{}.again", f.name));
    let o = xsr(&["save", restored.to_str().unwrap(), "--out", again.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // xsr's saver writes what Xen's wrote for this state, record for record and byte for byte.
    assert!(fs::read(&again).unwrap() == fs::read(file).unwrap(), "{}: the saved file differs", f.name);
}

fn end_to_end(f: &Facts) {
    let dir = tempfile::tempdir().unwrap();
    let file = write_input(dir.path(), f);
    check_verify_and_inspect(&file, f);
    check_extract(dir.path(), &file, f);
    check_round_trip(dir.path(), &file, f);
}

#[test]
fn real_hvm_file_end_to_end() {
    end_to_end(&HVM_FACTS);
}

#[test]
fn real_pvh_file_end_to_end() {
    end_to_end(&PVH_FACTS);
}
