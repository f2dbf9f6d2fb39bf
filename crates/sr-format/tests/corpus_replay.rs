//! Replays the `format_walk` fuzz seed corpus (`tests/corpus/format_walk/` at the repository
//! root) through `sr_format::walk`: nothing may panic, `ok-*` seeds must walk cleanly and
//! `bad-*` seeds must be rejected.
//!
//! The seeds are written by `seeds()` below; regenerate them with
//! `cargo test -p sr-format --test corpus_replay -- --ignored generate_seed_corpus`.

mod common;

use std::path::PathBuf;

use common::{
    HVM_CONFIG, PV_CONFIG, emulator_records, headers, hvm_records, libxc_stream, libxl_wrap, pv_records,
    small_hvm_stream, small_pv_stream, xl_wrap,
};
use sr_format::libxl::{LibxlHeader, LibxlRecordType, encode_libxl_record};
use sr_format::{DomainType, Error, PageType, PfnEntry, RecordType, Strictness, record_bytes, walk, walk_with};
use zerocopy::IntoBytes;

const MAX_SEED: usize = 64 << 10;

fn corpus_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/corpus/format_walk"))
}

/// Every seed: (file name, bytes).
fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let pv = small_pv_stream();
    let hvm = small_hvm_stream();

    // PV with a VERIFY pass, an optional record and bytes after END.
    let mut recs = pv_records(3);
    recs.push(record_bytes(RecordType(0x8000_0123), b"optional, skippable"));
    recs.push(record_bytes(RecordType::VERIFY, &[]));
    recs.push(common::page_data(&[PfnEntry::new(0, PageType::NOTAB), PfnEntry::new(3, PageType::XTAB)], 4096));
    let mut verify = libxc_stream(DomainType::X86_PV, 3, 12, &recs);
    verify.extend_from_slice(b"bytes after END are never read");

    // Checkpointed HVM (Remus): two checkpoints, each closed by libxl CHECKPOINT_END.
    let mut cp = headers(DomainType::X86_HVM, 3, 12);
    for r in hvm_records(3, 12) {
        cp.extend_from_slice(&r);
    }
    for round in 0..2u64 {
        cp.extend_from_slice(&record_bytes(RecordType::CHECKPOINT, &[]));
        for (t, b) in emulator_records() {
            encode_libxl_record(&mut cp, t, &b);
        }
        encode_libxl_record(&mut cp, LibxlRecordType::CHECKPOINT_END, &[]);
        cp.extend_from_slice(&common::page_data(&[PfnEntry::new(round, PageType::NOTAB)], 4096));
    }
    cp.extend_from_slice(&record_bytes(RecordType::END, &[]));
    let checkpoint = libxl_wrap(&cp, &emulator_records());

    let mut bad_page_type = headers(DomainType::X86_PV, 3, 12);
    let mut body = vec![2, 0, 0, 0, 0, 0, 0, 0];
    body.extend_from_slice(&1u64.to_le_bytes());
    body.extend_from_slice(&(2u64 | 7 << 60).to_le_bytes());
    body.extend_from_slice(&[0x55; 4096]);
    bad_page_type.extend_from_slice(&record_bytes(RecordType::PAGE_DATA, &body));
    bad_page_type.extend_from_slice(&record_bytes(RecordType::END, &[]));

    let mut too_long = headers(DomainType::X86_HVM, 3, 12);
    too_long.extend_from_slice(&[1, 0, 0, 0, 0xf8, 0xff, 0xff, 0xff]);

    let mut libxl_unknown = LibxlHeader::new(false).as_bytes().to_vec();
    encode_libxl_record(&mut libxl_unknown, LibxlRecordType::LIBXC_CONTEXT, &[]);
    libxl_unknown.extend_from_slice(&pv);
    encode_libxl_record(&mut libxl_unknown, LibxlRecordType(0x8000_0006), &[1, 2, 3, 4]);
    encode_libxl_record(&mut libxl_unknown, LibxlRecordType::END, &[]);

    let mut legacy = xl_wrap(Some(PV_CONFIG), &[0u8; 64]);
    legacy[36] = 1; // JSON only, no STREAMv2

    let bad_tsc = libxc_stream(DomainType::X86_HVM, 3, 12, &[record_bytes(RecordType::X86_TSC_INFO, &[0; 16])]);
    let count_zero = libxc_stream(DomainType::X86_HVM, 3, 12, &[record_bytes(RecordType::PAGE_DATA, &[0; 8])]);
    let mut bad_version = hvm.clone();
    bad_version[15] = 4;
    let xl_pv = xl_wrap(Some(PV_CONFIG), &libxl_wrap(&pv, &[]));
    let truncated = xl_pv[..xl_pv.len() - 8].to_vec();
    let emu_short = libxl_wrap(&hvm, &[(LibxlRecordType::EMULATOR_CONTEXT, vec![2, 0, 0])]);
    let mut virsh_hvm = sr_format::virsh::encode_virsh_header(b"<domain type='xen'><name>hvm</name></domain>");
    virsh_hvm.extend_from_slice(&libxl_wrap(&hvm, &emulator_records()));
    let mut virsh_v1 = virsh_hvm.clone();
    virsh_v1[16] = 1;
    let mut virsh_xml_long = virsh_hvm.clone();
    virsh_xml_long[20..24].copy_from_slice(&0x00FF_FFFFu32.to_le_bytes());

    vec![
        ("ok-libxc-pv-v3.bin", pv.clone()),
        ("ok-libxc-pv-v2.bin", libxc_stream(DomainType::X86_PV, 2, 12, &pv_records(2))),
        ("ok-libxc-hvm-v3.bin", hvm.clone()),
        ("ok-libxc-hvm-v2.bin", libxc_stream(DomainType::X86_HVM, 2, 12, &hvm_records(2, 12))),
        ("ok-libxc-pvh.bin", libxc_stream(DomainType::X86_PVH, 3, 12, &hvm_records(3, 12))),
        ("ok-libxc-arm-16k-pages.bin", libxc_stream(DomainType::ARM, 3, 14, &hvm_records(3, 14))),
        ("ok-libxc-pv-verify-optional-trailing.bin", verify),
        ("ok-libxl-pv.bin", libxl_wrap(&pv, &[])),
        ("ok-libxl-hvm.bin", libxl_wrap(&hvm, &emulator_records())),
        ("ok-libxl-hvm-checkpoints.bin", checkpoint),
        ("ok-xl-pv.bin", xl_pv),
        ("ok-xl-hvm.bin", xl_wrap(Some(HVM_CONFIG), &libxl_wrap(&hvm, &emulator_records()))),
        ("ok-xl-pv-noconfig.bin", xl_wrap(None, &libxl_wrap(&pv, &[]))),
        ("ok-virsh-hvm.bin", virsh_hvm),
        ("bad-virsh-version-1.bin", virsh_v1),
        ("bad-virsh-xml-truncated.bin", virsh_xml_long),
        ("bad-xl-truncated.bin", truncated),
        ("bad-page-type-7.bin", bad_page_type),
        ("bad-record-too-long.bin", too_long),
        ("bad-libxl-unknown-record.bin", libxl_unknown),
        ("bad-xl-legacy-image.bin", legacy),
        ("bad-tsc-length.bin", bad_tsc),
        ("bad-page-data-count-zero.bin", count_zero),
        ("bad-libxc-version-4.bin", bad_version),
        ("bad-libxl-emulator-short.bin", emu_short),
    ]
}

/// Writes the seed corpus. Run by hand after changing `seeds()`.
#[test]
#[ignore = "writes tests/corpus/format_walk/; run by hand"]
fn generate_seed_corpus() {
    let dir = corpus_dir();
    std::fs::create_dir_all(&dir).unwrap();
    for (name, bytes) in seeds() {
        assert!(bytes.len() < MAX_SEED, "{name} is {} bytes", bytes.len());
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

#[test]
fn seeds_have_the_intended_outcome() {
    for (name, bytes) in seeds() {
        assert!(bytes.len() < MAX_SEED, "{name}");
        let r = walk(&bytes);
        if name.starts_with("ok-") {
            let s = r.unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(s.records >= 2, "{name}");
            // Valid seeds are written with zero reserved fields and padding, and the v2
            // ones carry no v3-only record: the strict walk accepts them too.
            walk_with(&bytes, Strictness::Strict).unwrap_or_else(|e| panic!("{name} (strict): {e}"));
        } else {
            assert!(name.starts_with("bad-"), "{name}");
            let e = r.expect_err(name);
            let kind_ok = match name {
                "bad-xl-truncated.bin" => matches!(e, Error::Truncated { .. }),
                "bad-page-type-7.bin" => matches!(e, Error::UnknownPageType { nibble: 7, entry: 1, .. }),
                "bad-record-too-long.bin" => matches!(e, Error::RecordTooLong { offset: 40, .. }),
                "bad-libxl-unknown-record.bin" => matches!(e, Error::UnknownLibxlRecord { found: 0x8000_0006, .. }),
                "bad-xl-legacy-image.bin" => matches!(e, Error::LegacyImage { offset: 0 }),
                "bad-tsc-length.bin" => matches!(e, Error::BadLength { offset: 40, found: 16, .. }),
                "bad-page-data-count-zero.bin" => matches!(e, Error::PageDataCountZero { offset: 40, .. }),
                "bad-libxc-version-4.bin" => matches!(e, Error::BadVersion { offset: 12, found: 4 }),
                "bad-libxl-emulator-short.bin" => matches!(e, Error::BadLibxlLength { found: 3, .. }),
                "bad-virsh-version-1.bin" => matches!(e, Error::LegacyImage { offset: 0 }),
                "bad-virsh-xml-truncated.bin" => {
                    matches!(e, Error::Truncated { offset: 64, what: "virsh domain XML", needed: 0x00FF_FFFF, .. })
                }
                _ => false,
            };
            assert!(kind_ok, "{name}: unexpected {e:?}");
        }
    }
}

#[test]
fn corpus_on_disk_matches_the_generator() {
    let dir = corpus_dir();
    for (name, bytes) in seeds() {
        let on_disk = std::fs::read(dir.join(name))
            .unwrap_or_else(|e| panic!("{}/{name}: {e}; regenerate the corpus (see the module docs)", dir.display()));
        assert!(on_disk == bytes, "{name} is stale; regenerate the corpus (see the module docs)");
    }
}

#[test]
fn replay_corpus() {
    let dir = corpus_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(files.len() >= 10, "only {} seed files in {}", files.len(), dir.display());
    let (mut ok, mut bad) = (0, 0);
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let data = std::fs::read(path).unwrap();
        let lenient = std::panic::catch_unwind(|| walk(&data)).unwrap_or_else(|_| panic!("{name}: walk panicked"));
        let strict = std::panic::catch_unwind(|| walk_with(&data, Strictness::Strict))
            .unwrap_or_else(|_| panic!("{name}: strict walk panicked"));
        if strict.is_ok() {
            assert_eq!(strict, lenient, "{name}: strict and lenient disagree");
        }
        if name.starts_with("ok-") {
            let s = lenient.unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(s.bytes <= data.len() as u64);
            ok += 1;
        } else if name.starts_with("bad-") {
            assert!(lenient.is_err(), "{name} walked cleanly");
            bad += 1;
        }
    }
    assert!(ok >= 5 && bad >= 5, "{ok} ok-* and {bad} bad-* seeds");
}
