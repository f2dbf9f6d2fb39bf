//! Failures end the save cleanly: a `SaveError`, no END, no panic, no hang.

mod common;

use common::{FailAfter, Faulty, Seen, TestGuest, guest, memory, scan, state, within};
use sr_format::libxl::LibxlRecordType;
use sr_format::{DomainType, RecordType};
use sr_save::{Container, PrecopyPolicy, SaveError, SaveOptions, Saver};

/// Whether the (possibly truncated) stream contains its outermost END.
fn has_end(bytes: &[u8], libxl: bool) -> bool {
    scan(bytes)
        .0
        .iter()
        .any(|s| if libxl { *s == Seen::Libxl(LibxlRecordType::END) } else { *s == Seen::Record(RecordType::END) })
}

/// Offsets worth failing at: every byte of the headers, around every record boundary,
/// inside page data, and a stride through the rest.
fn interesting_offsets(full: &[u8]) -> Vec<usize> {
    let mut offsets: Vec<usize> = (0..=80).collect();
    let mut r = sr_format::StreamReader::from_slice(full);
    let mut boundaries = Vec::new();
    while let Ok(Some(item)) = r.next_item() {
        if let sr_format::Item::Record(rec) = item {
            boundaries.push(rec.offset as usize);
        }
    }
    for b in boundaries {
        offsets.extend([b.saturating_sub(1), b, b + 1, b + 7, b + 8, b + 15, b + 16, b + 17, b + 100, b + 5000]);
    }
    offsets.extend((0..full.len()).step_by(40_009));
    offsets.retain(|&o| o < full.len());
    offsets.sort_unstable();
    offsets.dedup();
    offsets
}

fn fail_at_many_offsets(dtype: DomainType, container: Container, live: bool) {
    within(120, move || {
        let g = guest(dtype, 12, 300);
        let opts = SaveOptions {
            workers: 2,
            batch_pfns: 64,
            container: container.clone(),
            live: live.then(PrecopyPolicy::default),
            ..Default::default()
        };
        let mut full = Vec::new();
        Saver::new(opts.clone()).save(&g, &mut full).unwrap();
        let offsets = interesting_offsets(&full);
        assert!(offsets.len() > 100);
        for n in offsets {
            for zero in [false, true] {
                g.resume().unwrap();
                let mut w = FailAfter::new(n);
                w.zero = zero;
                let err = Saver::new(opts.clone()).save(&g, &mut w).unwrap_err();
                match &err {
                    SaveError::Io { offset, source } => {
                        assert_eq!(*offset, n as u64, "{dtype} fail after {n}: {err}");
                        let kind = if zero { std::io::ErrorKind::WriteZero } else { std::io::ErrorKind::StorageFull };
                        assert_eq!(source.kind(), kind);
                    }
                    other => panic!("fail after {n}: unexpected {other}"),
                }
                // Deterministic output: exactly the prefix of the complete stream.
                assert!(w.out[..] == full[..n], "fail after {n}: not a prefix");
                assert!(!has_end(&w.out, container.is_libxl()), "fail after {n}: END written");
            }
        }
    });
}

use sr_save::Guest;

#[test]
fn writer_failing_after_n_bytes_pv() {
    fail_at_many_offsets(DomainType::X86_PV, Container::Libxc, false);
}

#[test]
fn writer_failing_after_n_bytes_hvm_xl() {
    fail_at_many_offsets(DomainType::X86_HVM, Container::Xl { config: b"{}\0".to_vec() }, false);
}

#[test]
fn writer_failing_after_n_bytes_arm_live() {
    fail_at_many_offsets(DomainType::ARM, Container::Libxl, true);
}

#[test]
fn backend_read_failure() {
    within(60, || {
        for lend in [false, true] {
            for workers in [1, 3] {
                let g = TestGuest::new(
                    Box::new(Faulty { inner: memory(12, 500), fail_pfn: Some(333), lend }),
                    state(DomainType::X86_HVM, 12),
                );
                let mut out = Vec::new();
                let err = Saver::new(SaveOptions { workers, batch_pfns: 16, ..Default::default() })
                    .save(&g, &mut out)
                    .unwrap_err();
                assert!(matches!(err, SaveError::Memory { pfn: 333, .. }), "lend {lend}: {err}");
                assert!(!has_end(&out, false));
                // Everything before the failing batch was written, in order.
                let (seen, _) = scan(&out);
                let pages = seen.iter().filter(|s| **s == Seen::Record(RecordType::PAGE_DATA)).count();
                assert!(pages <= 333 / 16, "{pages} batches written");
            }
        }
    });
}

#[test]
fn pause_failure() {
    within(60, || {
        for live in [None, Some(PrecopyPolicy::default())] {
            let mut g = guest(DomainType::X86_PV, 12, 200);
            g.pause_error = Some("domain is dying".into());
            let mut out = Vec::new();
            let err = Saver::new(SaveOptions { live, ..Default::default() }).save(&g, &mut out).unwrap_err();
            assert!(matches!(&err, SaveError::Guest(m) if m == "domain is dying"), "{err}");
            assert!(!out.is_empty(), "headers and static records precede the pause");
            assert!(!has_end(&out, false));
            let data = scan(&out).0.contains(&Seen::Record(RecordType::PAGE_DATA));
            assert_eq!(data, live.is_some(), "live passes precede the pause");
        }
    });
}

#[test]
fn panicking_guest_code_is_a_worker_error() {
    within(60, || {
        for workers in [1, 2] {
            let mut g = guest(DomainType::X86_HVM, 12, 300);
            g.panic_at = Some(200);
            let mut out = Vec::new();
            let err = Saver::new(SaveOptions { workers, batch_pfns: 32, ..Default::default() })
                .save(&g, &mut out)
                .unwrap_err();
            assert!(matches!(&err, SaveError::Worker(m) if m.contains("exploded at pfn 0xc8")), "{err}");
            assert!(!has_end(&out, false));
        }
    });
}

#[test]
fn reserved_page_type_from_the_guest() {
    let g = guest(DomainType::X86_HVM, 12, 50);
    g.set_state(|s| {
        s.page_types.insert(7, sr_format::PageType::from_nibble(6));
    });
    let mut out = Vec::new();
    let err = Saver::new(SaveOptions::default()).save(&g, &mut out).unwrap_err();
    assert!(matches!(&err, SaveError::InvalidState(m) if m.contains("reserved page type 0x6")), "{err}");
    assert!(!has_end(&out, false));
}

#[test]
fn state_that_goes_bad_after_the_pause() {
    let g = guest(DomainType::X86_HVM, 12, 50);
    let mut out = Vec::new();
    let g = std::sync::Arc::new(g);
    let g2 = g.clone();
    let err = Saver::new(SaveOptions::default())
        .on_event(move |e| {
            if let sr_save::SaveEvent::Paused { .. } = e {
                g2.set_state(|s| s.hvm_context = None);
            }
        })
        .save(&*g, &mut out)
        .unwrap_err();
    assert!(matches!(err, SaveError::InvalidState(_)), "{err}");
    assert!(!has_end(&out, false));
}
