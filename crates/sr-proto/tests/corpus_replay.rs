//! Replays the `xl_migrate` fuzz seed corpus (`tests/corpus/xl_migrate/` at the repository
//! root) through `sr_proto::xl_migrate::fuzz_xl_migrate`, which runs each input as the
//! sender's ack channel and as the receiver's stream channel against a reference reading of
//! the bytes. The file name starts with the sender's outcome: `migrated-`, `keep-` or
//! `undefined-`. Nothing may panic.
//!
//! The seeds are written by `seeds()` below; regenerate them with
//! `cargo test -p sr-proto --test corpus_replay -- --ignored generate_seed_corpus`.

use std::path::PathBuf;

use sr_proto::xl_migrate::{BANNER, GO, READY, REPORT, SenderOutcome, fuzz_xl_migrate};

fn corpus_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/corpus/xl_migrate"))
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// Every seed: (file name, bytes).
fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let mut ready_garbled = READY.to_vec();
    ready_garbled[33] = b'\n';
    let mut go_garbled = GO.to_vec();
    go_garbled[42] = b'E';
    vec![
        ("migrated-good", cat(&[BANNER, READY, REPORT, &[0]])),
        ("migrated-good-then-junk", cat(&[BANNER, READY, REPORT, &[0], b"ignored"])),
        ("keep-refused-with-permission", cat(&[BANNER, READY, REPORT, &[3], GO])),
        ("keep-refused-no-go-with-permission", cat(&[BANNER, READY, REPORT, &[0xff], GO])),
        ("keep-empty", Vec::new()),
        ("keep-banner-short", BANNER[..20].to_vec()),
        ("keep-banner-garbled", b"bash: xl: command not found\n".to_vec()),
        ("keep-banner-oversized", cat(&[BANNER, b"extra\n", READY, REPORT, &[0]])),
        ("keep-banner-without-newline", cat(&[&BANNER[..53], READY])),
        ("keep-closed-after-banner", BANNER.to_vec()),
        ("keep-ready-garbled", cat(&[BANNER, &ready_garbled])),
        ("keep-ready-without-nul", cat(&[BANNER, &READY[..33], REPORT])),
        ("undefined-closed-after-ready", cat(&[BANNER, READY])),
        ("undefined-report-short", cat(&[BANNER, READY, &REPORT[..10]])),
        ("undefined-no-status", cat(&[BANNER, READY, REPORT])),
        ("undefined-no-permission", cat(&[BANNER, READY, REPORT, &[3]])),
        ("undefined-permission-garbled", cat(&[BANNER, READY, REPORT, &[3], &go_garbled])),
        ("undefined-report-is-go", cat(&[BANNER, READY, GO])),
        // As a receiver's stream channel: a length byte, the "stream", then GO.
        ("keep-receiver-stream-then-go", cat(&[&[3], b"abc", GO])),
        ("keep-receiver-stream-short", vec![9, b'a']),
        ("keep-receiver-go-garbled", cat(&[&[0], &go_garbled])),
        ("keep-receiver-go-short", cat(&[&[1], b"x", &GO[..30]])),
    ]
}

fn expected(name: &str) -> SenderOutcome {
    match name.split('-').next() {
        Some("migrated") => SenderOutcome::Migrated,
        Some("keep") => SenderOutcome::KeepSource,
        Some("undefined") => SenderOutcome::Undefined,
        _ => panic!("{name}: the name must start with migrated-, keep- or undefined-"),
    }
}

/// Writes the seed corpus. Run by hand after changing `seeds()`.
#[test]
#[ignore = "writes tests/corpus/xl_migrate/; run by hand"]
fn generate_seed_corpus() {
    let dir = corpus_dir();
    std::fs::create_dir_all(&dir).unwrap();
    for (name, bytes) in seeds() {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

#[test]
fn seeds_have_the_intended_outcome() {
    for (name, bytes) in seeds() {
        assert_eq!(fuzz_xl_migrate(&bytes), expected(name), "{name}");
    }
}

/// Every file in the corpus (seeds and whatever the fuzzer added) replays without a panic,
/// with the outcome its name says.
#[test]
fn corpus_replays() {
    let mut n = 0;
    for e in std::fs::read_dir(corpus_dir()).unwrap() {
        let path = e.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(fuzz_xl_migrate(&bytes), expected(&name), "{name}");
        n += 1;
    }
    assert!(n >= seeds().len(), "only {n} files in the corpus");
}

proptest::proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
        fuzz_xl_migrate(&data);
    }

    /// The good sequences with one byte changed, cut, or both: every step's failure.
    #[test]
    fn damaged_good_sequences(
        which in 0usize..2,
        at in 0usize..220,
        value in proptest::num::u8::ANY,
        cut in 0usize..230,
    ) {
        let mut data = if which == 0 { cat(&[BANNER, READY, REPORT, &[0]]) } else { cat(&[BANNER, READY, REPORT, &[3], GO]) };
        if at < data.len() {
            data[at] = value;
        }
        data.truncate(cut);
        fuzz_xl_migrate(&data);
    }
}
