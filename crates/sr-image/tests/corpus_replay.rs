//! Replays the `page_index` fuzz seed corpus (`tests/corpus/page_index/` at the repository
//! root) through the fuzz target's body: nothing may panic, `ok-*` seeds must index, `bad-*`
//! seeds must be rejected.
//!
//! The seeds are written by `seeds()` below; regenerate them with
//! `cargo test -p sr-image --test corpus_replay -- --ignored generate_seed_corpus`.

#[path = "../../sr-restore/tests/common/mod.rs"]
mod common;

use std::path::PathBuf;

use common::*;
use sr_image::fuzzing::fuzz_index;

fn corpus_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/corpus/page_index"))
}

fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let passes = hvm_body(HVM)
        .pages(&notab(2..5, 1))
        .pages(&[eg(3, NOTAB, 2), e(30, XALLOC), e(4, XALLOC), e(5, XTAB), e(41, BROKEN)])
        .end();
    let verify = hvm_body(HVM).rec(VERIFY, []).pages(&notab(0..3, 9)).pages(&[e(50, NOTAB)]).end();
    let checkpoints =
        hvm_body(HVM).rec(CHECKPOINT, []).pages(&notab(0..2, 2)).rec(CHECKPOINT, []).pages(&[eg(60, NOTAB, 3)]).end();
    let libxl_checkpoints = hvm_body(HVM)
        .rec(CHECKPOINT, [])
        .libxl(L_CHECKPOINT_END, [])
        .pages(&notab(0..2, 2))
        .rec(CHECKPOINT, [])
        .libxl(L_CHECKPOINT_END, [])
        .end()
        .wrapped(Wrap::Xl(b"{}\0".to_vec()));
    let mut truncated = passes.bytes();
    truncated.truncate(truncated.len() - 20);
    let beyond = hvm_body(HVM).pages(&[e(1 << 21, NOTAB)]).end().bytes();
    let mut bad_type = hvm_body(HVM).pages(&[e(7, NOTAB)]).end();
    bad_type = bad_type.edit(PAGE_DATA, |b| b[15] = 0x70);
    vec![
        ("ok-hvm-passes-xalloc-xtab.bin", passes.bytes()),
        ("ok-hvm-verify.bin", verify.bytes()),
        ("ok-hvm-checkpoints.bin", checkpoints.bytes()),
        ("ok-xl-libxl-checkpoints.bin", libxl_checkpoints.bytes()),
        ("ok-pv.bin", pv().bytes()),
        ("ok-arm-64k.bin", arm(16).bytes()),
        ("bad-truncated.bin", truncated),
        ("bad-pfn-beyond-limit.bin", beyond),
        ("bad-page-type-7.bin", bad_type.bytes()),
        ("bad-no-end.bin", hvm_body(HVM).bytes()),
    ]
}

#[test]
#[ignore = "writes tests/corpus/page_index/; run by hand"]
fn generate_seed_corpus() {
    let dir = corpus_dir();
    std::fs::create_dir_all(&dir).unwrap();
    for (name, bytes) in seeds() {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

#[test]
fn corpus_on_disk_matches_the_generator() {
    for (name, bytes) in seeds() {
        let on_disk = std::fs::read(corpus_dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}; regenerate"));
        assert!(on_disk == bytes, "{name} is stale; regenerate the corpus (see the module docs)");
    }
}

#[test]
fn replay_corpus() {
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(corpus_dir()).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect();
    files.sort();
    assert!(files.len() >= 10, "only {} seeds", files.len());
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let result = fuzz_index(&std::fs::read(&path).unwrap());
        if name.starts_with("ok-") {
            assert!(result.unwrap_or_else(|e| panic!("{name}: {e}")) > 0, "{name}");
        } else if name.starts_with("bad-") {
            assert!(result.is_err(), "{name} was accepted");
        }
    }
}
