//! Replays `tests/corpus/restore/` (at the repository root) through the `restore` fuzz
//! target's entry function: `ok-*` inputs restore (`ok-ckpt-*` as checkpointed streams),
//! `bad-*` inputs fail in every mode, and nothing panics. Crash inputs found by the fuzzer
//! go in the same directory, named `bad-crash-*` or `ok-crash-*` once fixed.
//!
//! `cargo test -p sr-restore --test corpus_replay -- --ignored` rewrites the seeds.

mod common;

use std::path::PathBuf;

use common::*;
use sr_restore::fuzzing::fuzz_restore;

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/corpus/restore")
}

#[test]
fn every_corpus_input_behaves_as_its_name_says() {
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(corpus_dir()).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect();
    files.sort();
    assert!(files.len() >= 10, "only {} corpus files", files.len());
    let (mut ok, mut bad) = (0, 0);
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let data = std::fs::read(path).unwrap();
        let out = fuzz_restore(&data);
        if name.starts_with("ok-ckpt-") {
            assert!(out.lenient.is_err(), "{name}: a checkpointed stream is not a plain one");
            if let Err(e) = &out.checkpointed {
                panic!("{name}: {e}");
            }
            ok += 1;
        } else if name.starts_with("ok-") {
            for (mode, r) in [("lenient", &out.lenient), ("checkpointed", &out.checkpointed)] {
                if let Err(e) = r {
                    panic!("{name} ({mode}): {e}");
                }
            }
            if !name.contains("lenient-only") {
                assert!(out.strict.is_ok(), "{name} (strict): {:?}", out.strict);
            } else {
                assert!(out.strict.is_err(), "{name}: expected a strict rejection");
            }
            ok += 1;
        } else if name.starts_with("bad-") {
            assert!(out.lenient.is_err() && out.strict.is_err() && out.checkpointed.is_err(), "{name}: {out:?}");
            bad += 1;
        } else {
            panic!("{name}: corpus files are named ok-* or bad-*");
        }
    }
    assert!(ok >= 5 && bad >= 5, "{ok} ok, {bad} bad");
}

/// The seeds: small streams of every type and container, valid and malformed.
fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let small_pv = || {
        pv_body(3).edit(PAGE_DATA, |b| {
            // pfns 2, 3 and 21: the start_info, GDT and L4 frames of vcpu 0's context.
            let entries = [e(0, NOTAB), e(2, NOTAB), e(3, NOTAB), e(100, NOTAB), e(101, NOTAB)];
            let tables = [e(20, L1TAB_PINNED), e(21, L4TAB_PINNED), e(22, XTAB)];
            *b = page_data(&[&entries[..], &tables].concat(), 4096)
        })
    };
    let small_hvm = |t| {
        hvm_body(t).edit(PAGE_DATA, |b| *b = page_data(&[e(0, NOTAB), e(3, XTAB), e(4, XALLOC), e(5, BROKEN)], 4096))
    };
    let small_arm =
        |shift: u16| arm_body(shift).edit(PAGE_DATA, |b| *b = page_data(&[e(1, NOTAB), e(2, XTAB)], 1 << shift));
    let xl = Wrap::Xl(b"{\"c_info\": {\"name\": \"seed\"}}\0".to_vec());
    let mut v2_hvm = small_hvm(HVM).without(SDE).without(CPUID).without(MSR);
    v2_hvm.version = 2;
    let mut hvm_emu = small_hvm(HVM).end();
    hvm_emu.wrap = xl.clone();
    let hvm_emu = hvm_emu
        .libxl(L_XENSTORE, emulator(2, 0, b"physmap/1/name\0vga\0"))
        .libxl(L_EMULATOR, emulator(2, 0, b"qemu-state"))
        .libxl(L_END, []);
    let mut ckpt_libxl = small_hvm(HVM).rec(CHECKPOINT, []);
    ckpt_libxl.wrap = Wrap::Libxl;
    let ckpt_libxl = ckpt_libxl
        .libxl(L_EMULATOR, emulator(2, 0, b"qemu-1"))
        .libxl(L_CHECKPOINT_END, [])
        .pages(&[eg(0, NOTAB, 1)])
        .rec(CHECKPOINT, [])
        .libxl(L_CHECKPOINT_END, [])
        .pages(&[eg(0, NOTAB, 2)]);
    let mut truncated = small_hvm(HVM).end().bytes();
    truncated.truncate(truncated.len() - 20);
    let mut huge = Spec::new(3, HVM, 12).rec(SDE, []).bytes();
    huge.extend_from_slice(&PAGE_DATA.to_le_bytes());
    huge.extend_from_slice(&0xFFFF_FFF8u32.to_le_bytes());
    vec![
        ("ok-pv-libxc", small_pv().end().bytes()),
        ("ok-pv-libxl", small_pv().end().wrapped(Wrap::Libxl).bytes()),
        ("ok-pv-v2-inferred-sde", {
            let mut s = small_pv().without(SDE).end();
            s.version = 2;
            s.bytes()
        }),
        ("ok-hvm-libxc", small_hvm(HVM).end().bytes()),
        ("ok-hvm-xl-emulator", hvm_emu.bytes()),
        ("ok-hvm-v2-inferred-sde", v2_hvm.end().bytes()),
        ("ok-hvm-verify", small_hvm(HVM).rec(VERIFY, []).pages(&[eg(0, NOTAB, 5)]).end().bytes()),
        ("ok-hvm-lenient-only-optional-record", small_hvm(HVM).rec(0x8000_0042, [1, 2, 3]).end().bytes()),
        ("ok-pvh-libxl", small_hvm(PVH).end().wrapped(Wrap::Libxl).bytes()),
        ("ok-arm-xl", small_arm(12).end().wrapped(xl).bytes()),
        ("ok-arm-16k", small_arm(14).end().bytes()),
        ("ok-ckpt-hvm-libxc", small_hvm(HVM).rec(CHECKPOINT, []).pages(&[eg(0, NOTAB, 1)]).end().bytes()),
        ("ok-ckpt-hvm-libxl-broken", ckpt_libxl.bytes()),
        ("bad-hvm-truncated", truncated),
        ("bad-hvm-record-too-long", huge),
        ("bad-hvm-no-context", small_hvm(HVM).without(HVM_CONTEXT).end().bytes()),
        ("bad-hvm-pages-before-sde", small_hvm(HVM).without(SDE).end().bytes()),
        ("bad-hvm-second-sde", small_hvm(HVM).rec(SDE, []).end().bytes()),
        ("bad-hvm-page-type-5", small_hvm(HVM).pages(&[e(9, 5)]).end().bytes()),
        ("bad-hvm-pfn-max", small_hvm(HVM).pages(&[e(sr_format::PFN_MAX, XALLOC)]).end().bytes()),
        ("bad-pv-no-vcpu0", small_pv().without(VCPU_BASIC).end().bytes()),
        ("bad-pv-pfn-beyond-max-pfn", small_pv().pages(&[e(1024, NOTAB)]).end().bytes()),
        ("bad-pv-pages-before-p2m", small_pv().without(P2M_FRAMES).end().bytes()),
        ("bad-pv-emulator-record", {
            let mut s = small_pv().end();
            s.wrap = Wrap::Libxl;
            s.libxl(L_EMULATOR, emulator(2, 0, b"qemu")).libxl(L_END, []).bytes()
        }),
        ("bad-pvh-pv-record", small_hvm(PVH).rec(PV_INFO, pv_info(8, 4)).end().bytes()),
        ("bad-arm-tsc", small_arm(12).rec(TSC_INFO, tsc(1, 2, 3, 4)).end().bytes()),
        // What the hypervisor refuses when libxc loads the record (sr_rules::check_record).
        ("bad-hvm-tsc-mode-3", small_hvm(HVM).replace(TSC_INFO, tsc(3, 2, 3, 4)).end().bytes()),
        ("bad-hvm-context-version-2", small_hvm(HVM).edit(HVM_CONTEXT, |b| b[12] = 2).end().bytes()),
        ("bad-hvm-param-timer-mode-9", small_hvm(HVM).rec(HVM_PARAMS, hvm_params(&[(10, 9)])).end().bytes()),
        ("bad-pv-vcpu-rip-not-canonical", small_pv().edit(VCPU_BASIC, |b| b[8 + 648 + 6] = 0x80).end().bytes()),
    ]
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
#[ignore = "writes tests/corpus/restore; run with --ignored to regenerate the seeds"]
fn write_seeds() {
    std::fs::create_dir_all(corpus_dir()).unwrap();
    for (name, bytes) in seeds() {
        std::fs::write(corpus_dir().join(name), bytes).unwrap();
    }
}
