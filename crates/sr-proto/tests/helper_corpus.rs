//! The `helper` fuzz target's seed corpus (`tests/corpus/helper/`): every file replays through
//! the fuzz entry without a panic, and the seeds decode to as many restore-mode messages as
//! their names say (`ok-N-*`: N messages; `bad-*`: a malformed frame, decoding stops there).
//! Regenerate with `cargo test -p sr-proto --test helper_corpus -- --ignored`.

use std::path::PathBuf;

use sr_proto::helper::{HelperMessage, fuzz_helper};

fn corpus_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/corpus/helper"))
}

fn frame(m: &HelperMessage) -> Vec<u8> {
    m.encode().unwrap()
}

fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let results = frame(&HelperMessage::RestoreResults { store_gfn: 0x2_0000, console_gfn: 0xfeff1 });
    let complete = frame(&HelperMessage::Complete { retval: 0, errnoval: 0 });
    let log = frame(&HelperMessage::log(8, 22, "xsr", "record 5 (PAGE_DATA) at byte 4096: bad page table"));
    let sdd = frame(&HelperMessage::StaticDataDone { missing: 2 });
    let restore_run = [log.clone(), sdd.clone(), results.clone(), complete.clone()].concat();
    let mut trailing = sdd.clone();
    trailing[0] += 1;
    trailing.push(0);
    let mut nul_less = log.clone();
    let last = nul_less.len() - 1;
    nul_less[last] = b'!';
    vec![
        ("ok-4-restore-run.bin", restore_run.clone()),
        (
            "ok-1-progress.bin",
            frame(&HelperMessage::Progress { context: "xc".into(), doing_what: "Frames".into(), done: 1, total: 8192 }),
        ),
        ("ok-0-save-only-logdirty.bin", frame(&HelperMessage::SwitchQemuLogdirty { domid: 3, enable: 1 })),
        ("bad-truncated-run.bin", restore_run[..restore_run.len() - 3].to_vec()),
        ("bad-trailing-byte.bin", trailing),
        ("bad-string-without-nul.bin", nul_less),
        ("bad-unknown-number.bin", vec![2, 0, 42, 0]),
        ("bad-length-beyond-data.bin", vec![0xff, 0xff, 1, 0]),
        ("ok-0-argv-restore.bin", b"--restore-domain\x003\x00-1\x005\x001\x000\x002\x000\x00768\x000".to_vec()),
        ("ok-0-argv-save-bad.bin", b"--save-domain\x003\x00-1\x00x\x001\x000\x000".to_vec()),
    ]
}

#[test]
#[ignore = "writes tests/corpus/helper/; run by hand"]
fn generate_seed_corpus() {
    std::fs::create_dir_all(corpus_dir()).unwrap();
    for (name, bytes) in seeds() {
        std::fs::write(corpus_dir().join(name), bytes).unwrap();
    }
}

#[test]
fn replay_corpus() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir()).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert!(files.len() >= seeds().len(), "{} files", files.len());
    for (name, bytes) in seeds() {
        assert!(std::fs::read(corpus_dir().join(name)).unwrap() == bytes, "{name} is stale; regenerate");
    }
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let data = std::fs::read(&path).unwrap();
        let n = fuzz_helper(&data);
        if let Some(rest) = name.strip_prefix("ok-") {
            let want: usize = rest.split('-').next().unwrap().parse().unwrap();
            assert_eq!(n, want, "{name}");
        } else if name.starts_with("bad-") {
            // Decoding stops at the malformed frame: fewer messages than frames began.
            assert!(n < 4, "{name}: {n}");
        }
    }
}
