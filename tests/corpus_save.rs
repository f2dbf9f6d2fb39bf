//! Replays `tests/corpus/save/` through the `save` fuzz target's entry function
//! (`xsr::fuzzing::fuzz_save`): `ok-*` directories save into streams that verify strictly and
//! restore, `bad-*` ones are refused with a clear error, nothing panics. Crash inputs the
//! fuzzer finds go in the same directory.
//!
//! `cargo test --test corpus_save -- --ignored` rewrites the seeds.

use std::path::PathBuf;

use serde_json::Value;
use sr_format::DomainType;
use xsr::fuzzing::{FuzzSaveOutcome, encode_input, fuzz_save};
use xsr::image_dir::{DomainImage, MANIFEST_FILE, MEMORY_FILE, write_manifest};
use xsr::synthetic::{hole_pfn, pv_special_pages, synthetic_state};

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/save")
}

/// A guest of `dtype` with 64 pages as an input: the manifest, its blobs and a memory
/// image holding the PV page tables and start_info page (zeros elsewhere, trimmed).
fn guest_input(dtype: DomainType, edit: impl FnOnce(&mut Value, &mut Vec<u8>)) -> Vec<u8> {
    let pages = 64;
    let dir = tempfile::tempdir().unwrap();
    let state = synthetic_state(dtype, 12, pages);
    let populated: Vec<u64> = (0..pages).filter(|&p| p != hole_pfn(pages)).collect();
    // HVM guests carry device-model records, which only a libxl container holds.
    let layer = if dtype == DomainType::X86_HVM { "libxl" } else { "libxc" };
    let image = DomainImage { state, layer: layer.into(), xl_config: None, libxl_legacy: false, populated, pages };
    write_manifest(dir.path(), &image).unwrap();
    let mut memory = Vec::new();
    if dtype == DomainType::X86_PV {
        for (pfn, page) in pv_special_pages(pages) {
            let at = pfn as usize * 4096;
            memory.resize(memory.len().max(at + 4096), 0);
            memory[at..at + 4096].copy_from_slice(&page);
        }
    } else {
        memory = vec![0x5A; 2 * 4096];
    }
    let mut manifest: Value = serde_json::from_slice(&std::fs::read(dir.path().join(MANIFEST_FILE)).unwrap()).unwrap();
    edit(&mut manifest, &mut memory);
    let mut files: Vec<(String, Vec<u8>)> = vec![(MEMORY_FILE.to_string(), memory)];
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name.ends_with(".bin") {
            files.push((name.clone(), std::fs::read(dir.path().join(&name)).unwrap()));
        }
    }
    files.sort();
    let refs: Vec<(&str, &[u8])> = files.iter().map(|(n, d)| (n.as_str(), d.as_slice())).collect();
    encode_input(&serde_json::to_vec_pretty(&manifest).unwrap(), &refs)
}

fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let keep = |_: &mut Value, _: &mut Vec<u8>| {};
    vec![
        ("ok-pv", guest_input(DomainType::X86_PV, keep)),
        ("ok-hvm", guest_input(DomainType::X86_HVM, keep)),
        ("ok-pvh", guest_input(DomainType::X86_PVH, keep)),
        ("ok-arm", guest_input(DomainType::ARM, keep)),
        ("ok-pv-xl-layer", guest_input(DomainType::X86_PV, |m, _| m["container"]["layer"] = "xl".into())),
        // Issue 7's three edits: page types cleared, a p2m frame typed L1TAB, a pfn past the p2m.
        ("bad-pv-page-types-cleared", guest_input(DomainType::X86_PV, |m, _| m["page_types"] = Value::Array(vec![]))),
        (
            "bad-pv-p2m-frame-l1tab",
            guest_input(DomainType::X86_PV, |m, _| {
                let frame = m["p2m"]["frames"][0].clone();
                m["page_types"].as_array_mut().unwrap().push(serde_json::json!([frame, 1, "L1TAB"]));
            }),
        ),
        ("bad-pv-populated-past-p2m", guest_input(DomainType::X86_PV, |m, _| m["p2m"]["end_pfn"] = 60.into())),
        (
            "bad-pv-pte-beyond-max-pfn",
            guest_input(DomainType::X86_PV, |_, mem| {
                let at = 8 * 4096 + 5 * 8;
                mem[at..at + 8].copy_from_slice(&(0x1_0000_0000u64 | 0x67).to_le_bytes());
            }),
        ),
        (
            "bad-pv-start-info-store-beyond",
            guest_input(DomainType::X86_PV, |_, mem| {
                let at = 24 * 4096 + 56;
                mem[at..at + 8].copy_from_slice(&1000u64.to_le_bytes());
            }),
        ),
        ("bad-hvm-no-context", guest_input(DomainType::X86_HVM, |m, _| m["hvm_context"] = Value::Null)),
        (
            "bad-hvm-huge-populated-run",
            guest_input(DomainType::X86_HVM, |m, _| m["memory"]["populated"] = serde_json::json!([[0, 1u64 << 40]])),
        ),
        (
            "bad-hvm-huge-type-run",
            guest_input(DomainType::X86_HVM, |m, _| m["page_types"] = serde_json::json!([[0, 1u64 << 40, "XTAB"]])),
        ),
        (
            "bad-hvm-pages-beyond-image",
            guest_input(DomainType::X86_HVM, |m, _| m["memory"]["pages"] = (1u64 << 40).into()),
        ),
        ("bad-hvm-blob-path", guest_input(DomainType::X86_HVM, |m, _| m["hvm_context"] = "../../etc/passwd".into())),
        ("bad-hvm-format", guest_input(DomainType::X86_HVM, |m, _| m["format"] = "xsr-domain-image/9".into())),
        ("bad-json", b"{\"format\": \"xsr-domain-image/1\", \"domain_type\": ".to_vec()),
        ("bad-empty", Vec::new()),
    ]
}

#[test]
fn every_corpus_input_behaves_as_its_name_says() {
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(corpus_dir()).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect();
    files.sort();
    let (mut ok, mut bad) = (0, 0);
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        match (fuzz_save(&std::fs::read(path).unwrap()), name.starts_with("ok-")) {
            (FuzzSaveOutcome::Saved(bytes), true) => {
                assert!(bytes > 0);
                ok += 1;
            }
            (FuzzSaveOutcome::Refused(why), false) => {
                assert!(!why.is_empty());
                bad += 1;
            }
            (outcome, _) => panic!("{name}: {outcome:?}"),
        }
    }
    assert!(ok >= 5 && bad >= 10, "{ok} ok, {bad} bad");
}

#[test]
fn the_committed_seeds_are_the_generated_ones() {
    for (name, bytes) in seeds() {
        let path = corpus_dir().join(name);
        let on_disk =
            std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e} (regenerate with --ignored)", path.display()));
        assert!(on_disk == bytes, "{name} differs from its generator (regenerate with --ignored)");
    }
}

#[test]
#[ignore = "writes tests/corpus/save; run with --ignored to regenerate the seeds"]
fn write_seeds() {
    std::fs::create_dir_all(corpus_dir()).unwrap();
    for (name, bytes) in seeds() {
        std::fs::write(corpus_dir().join(name), bytes).unwrap();
    }
}
