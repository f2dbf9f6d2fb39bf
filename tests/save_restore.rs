//! Round trips across the workspace: what sr-save writes, sr-restore restores (strictly) to
//! the same state and memory, for every domain type, stream version, container and saver
//! mode; and the real Xen 4.17 save file survives restore -> save -> restore unchanged.

#[path = "../crates/sr-save/tests/common/mod.rs"]
mod common;
#[path = "common/testdata.rs"]
mod testdata;

use std::sync::atomic::{AtomicBool, Ordering};

use common::{LIMIT, Seen, TestGuest, assert_same_memory, guest, scan, within};
use sr_format::state::DomainState;
use sr_format::{DomainType, Layer, PageType, RecordType, StreamReader, Strictness, walk_with};
use sr_memory::{GuestMemory, RamMemory};
use sr_restore::{RestoreOptions, Restored, Restorer, StreamKind};
use sr_save::{Container, PrecopyPolicy, SaveError, SaveOptions, SaveStats, Saver, ZeroPages};
use testdata::real_save_file;

fn strict(stream: StreamKind) -> RestoreOptions {
    RestoreOptions { strictness: Strictness::Strict, stream, ..Default::default() }
}

fn restore_with(bytes: &[u8], options: RestoreOptions, limit: u64) -> Restored<RamMemory> {
    Restorer::new(options)
        .restore(StreamReader::from_slice(bytes), |h| RamMemory::new(u32::from(h.page_shift.get()), limit))
        .unwrap_or_else(|e| panic!("restore failed: {e}"))
}

fn restore(bytes: &[u8]) -> Restored<RamMemory> {
    restore_with(bytes, strict(StreamKind::Plain), LIMIT)
}

fn save(g: &TestGuest, opts: &SaveOptions) -> (Vec<u8>, SaveStats) {
    let mut out = Vec::new();
    let stats = Saver::new(opts.clone()).save(g, &mut out).unwrap_or_else(|e| panic!("save failed: {e}"));
    walk_with(&out, Strictness::Strict).unwrap();
    (out, stats)
}

/// The state a restore of `g`'s stream must produce: the guest's state now, with what the
/// stream header says and what the chosen version and container cannot carry removed.
fn expected(g: &TestGuest, opts: &SaveOptions) -> DomainState {
    let mut want = g.snapshot_state();
    if want.domain_type == DomainType::X86_PVH && opts.pvh_as_hvm {
        want.domain_type = DomainType::X86_HVM;
    }
    want.stream_version = opts.stream_version;
    (want.xen_major, want.xen_minor) = opts.xen_version;
    want
}

/// Adds the XALLOC type the receiver records for every all-zero populated NOTAB page.
fn with_xalloc(mut want: DomainState, mem: &dyn GuestMemory) -> DomainState {
    let mut page = vec![0; mem.page_size()];
    for pfn in mem.populated().iter_ones() {
        mem.read_pages(&[pfn], &mut page).unwrap();
        if want.page_type(pfn) == PageType::NOTAB && page.iter().all(|&b| b == 0) {
            want.page_types.insert(pfn, PageType::XALLOC);
        }
    }
    want
}

fn check_round_trip(g: &TestGuest, opts: &SaveOptions) -> Restored<RamMemory> {
    let (bytes, stats) = save(g, opts);
    assert_eq!(stats.bytes, bytes.len() as u64);
    let restored = restore(&bytes);
    let mut want = expected(g, opts);
    if opts.zero_pages == ZeroPages::Xalloc {
        want = with_xalloc(want, &*g.mem);
    }
    assert_eq!(restored.state, want, "{:?} {opts:?}", g.dtype);
    assert!(restored.warnings.is_empty(), "{:?}", restored.warnings);
    assert_same_memory(restored.memory.as_ref().unwrap(), &*g.mem);
    let layer = match &opts.container {
        Container::Libxc => Layer::Libxc,
        Container::Libxl => Layer::Libxl,
        Container::Xl { config } => {
            assert_eq!(restored.container.xl_config.as_deref(), Some(&config[..]));
            Layer::Xl
        }
    };
    assert_eq!(restored.container.layer, layer);
    restored
}

/// The four domain types; ARM at 4 KiB and 64 KiB pages.
fn all_guests() -> Vec<TestGuest> {
    vec![
        guest(DomainType::X86_PV, 12, 300),
        guest(DomainType::X86_HVM, 12, 300),
        guest(DomainType::X86_PVH, 12, 300),
        guest(DomainType::ARM, 12, 300),
        guest(DomainType::ARM, 16, 40),
    ]
}

#[test]
fn every_type_version_and_container() {
    let containers = [Container::Libxc, Container::Libxl, Container::Xl { config: b"{\"c_info\": {}}\n\0".to_vec() }];
    for g in all_guests() {
        // HVM guests with QEMU's device-model records: written back, or the save refuses.
        g.set_state(common::add_emulator);
        for version in [3, 2] {
            for container in &containers {
                let opts = SaveOptions { stream_version: version, container: container.clone(), ..Default::default() };
                let s = g.snapshot_state();
                let drops = if !s.emulator.is_empty() && *container == Container::Libxc {
                    Some("which only a libxl or xl container carries")
                } else if version < 3 && !s.cpuid.is_empty() {
                    Some("which a v2 stream cannot carry")
                } else {
                    None
                };
                match drops {
                    Some(why) => {
                        let mut out = Vec::new();
                        let e = Saver::new(opts.clone()).save(&g, &mut out).unwrap_err();
                        assert!(matches!(&e, SaveError::InvalidOptions(m) if m.contains(why)), "{e}");
                        assert!(out.is_empty());
                    }
                    None => {
                        check_round_trip(&g, &opts);
                    }
                }
            }
        }
    }
}

/// Optional records of types xsr does not know: a lenient restore keeps them in the state
/// (Xen skips them), a save writes them back, once, before any CHECKPOINT (Xen fails
/// replaying one inside a checkpoint).
#[test]
fn unknown_optional_records_are_written_back() {
    let lenient = |stream| RestoreOptions { stream, ..Default::default() };
    for g in all_guests() {
        let records = vec![(RecordType(0x8000_0123), b"kept".to_vec()), (RecordType(0x8000_0042), Vec::new())];
        g.set_state(|s| s.optional_records = records.clone());
        let mut out = Vec::new();
        Saver::new(SaveOptions::default()).save(&g, &mut out).unwrap();
        let restored = restore_with(&out, lenient(StreamKind::Plain), LIMIT);
        assert_eq!(restored.state.optional_records, records, "{}", g.dtype);
        assert_eq!(restored.warnings.len(), 2, "{:?}", restored.warnings);
        assert!(restored.warnings[0].message.contains("0x80000123 skipped (kept in the state)"));
        // A strict verification refuses them, as Xen's Python verifier does.
        assert!(Restorer::new(strict(StreamKind::Plain)).verify(StreamReader::from_slice(&out)).is_err());
        // Checkpointed: written with the first state records only.
        let mut out = Vec::new();
        Saver::new(SaveOptions::default()).save_checkpointed(&g, &mut out, |done| done < 3).unwrap();
        let restored = restore_with(&out, lenient(StreamKind::Checkpointed), LIMIT);
        assert_eq!(restored.state.optional_records, records, "{} checkpointed", g.dtype);
        // A record type that is not an unknown optional one is refused.
        g.set_state(|s| s.optional_records = vec![(RecordType(0x55), vec![1])]);
        let e = Saver::new(SaveOptions::default()).save(&g, Vec::new()).unwrap_err();
        assert!(e.to_string().contains("is not an unknown optional record type"), "{e}");
    }
}

#[test]
fn pvh_written_as_hvm() {
    let g = guest(DomainType::X86_PVH, 12, 300);
    for container in [Container::Libxc, Container::Libxl] {
        let restored = check_round_trip(&g, &SaveOptions { pvh_as_hvm: true, container, ..Default::default() });
        assert_eq!(restored.state.domain_type, DomainType::X86_HVM);
    }
}

#[test]
fn zero_pages_as_xalloc() {
    for g in all_guests() {
        for workers in [1, 3] {
            let opts = SaveOptions { zero_pages: ZeroPages::Xalloc, workers, batch_pfns: 100, ..Default::default() };
            let restored = check_round_trip(&g, &opts);
            assert!(restored.stats.pages_by_type[&PageType::XALLOC] > 0);
        }
    }
}

#[test]
fn verify_mode_compares_every_page() {
    for g in all_guests() {
        for live in [None, Some(PrecopyPolicy::default())] {
            let opts = SaveOptions { verify: true, live, ..Default::default() };
            let restored = check_round_trip(&g, &opts);
            let data_pages = g.mem.populated().count_ones();
            assert_eq!(restored.stats.verified_pages, data_pages);
            assert_eq!(restored.stats.verify_mismatches, 0);
            assert_eq!(restored.stats.records[&RecordType::VERIFY], 1);
        }
    }
}

#[test]
fn live_with_a_dirtier() {
    within(120, || {
        for dtype in [DomainType::X86_PV, DomainType::X86_HVM, DomainType::ARM] {
            for zero_pages in [ZeroPages::Data, ZeroPages::Xalloc] {
                let mut g = guest(dtype, 12, 1500);
                g.hot = (40..240).step_by(2).collect();
                g.bump_tsc = dtype != DomainType::ARM;
                let stop = AtomicBool::new(false);
                let policy = PrecopyPolicy { max_iterations: 4, dirty_threshold: 20, downtime_target: None };
                let opts = SaveOptions {
                    live: Some(policy),
                    workers: 2,
                    batch_pfns: 128,
                    zero_pages,
                    container: Container::Libxl,
                    ..Default::default()
                };
                let (bytes, stats) = std::thread::scope(|s| {
                    s.spawn(|| g.dirty_loop(&stop));
                    let r = save(&g, &opts);
                    stop.store(true, Ordering::Relaxed);
                    r
                });
                assert!(stats.live_passes() >= 1 && stats.live_passes() <= 4);
                // The guest is paused: its memory and state now are what was sent last.
                let restored = restore(&bytes);
                let mut want = expected(&g, &opts);
                if zero_pages == ZeroPages::Xalloc {
                    // Only pages zero at their first send became XALLOC; the dirtier never
                    // writes zero pages and never touches the zero run, so that is all of them.
                    want = with_xalloc(want, &*g.mem);
                }
                assert_eq!(restored.state, want, "{dtype} {zero_pages:?}");
                assert_same_memory(restored.memory.as_ref().unwrap(), &*g.mem);
            }
        }
    });
}

#[test]
fn checkpointed_streams_restore_the_last_checkpoint() {
    within(120, || {
        for (dtype, container) in [
            (DomainType::X86_HVM, Container::Libxl),
            (DomainType::X86_PV, Container::Libxc),
            (DomainType::X86_PVH, Container::Xl { config: b"{}\0".to_vec() }),
            (DomainType::ARM, Container::Libxc),
        ] {
            for live in [None, Some(PrecopyPolicy::default())] {
                let g = guest(dtype, 12, 300);
                g.set_state(common::add_emulator);
                let rounds = 4;
                let mut out = Vec::new();
                let opts = SaveOptions { live, container: container.clone(), workers: 2, ..Default::default() };
                let stats = Saver::new(opts.clone())
                    .save_checkpointed(&g, &mut out, |done| {
                        if done == rounds {
                            return false;
                        }
                        // The guest runs: change memory (a new page too) and state.
                        let size = g.mem.page_size();
                        let pfns = [done * 3, 400 + done, 1200 + done];
                        let data: Vec<u8> =
                            pfns.iter().flat_map(|&p| common::page_content(size, p, 100 + done)).collect();
                        g.mem.write_pages(&pfns, &data).unwrap();
                        g.set_state(|s| {
                            s.hvm_params.iter_mut().for_each(|p| p.1 += 1);
                            if let Some(t) = s.tsc.as_mut() {
                                t.nsec += 1000;
                            }
                            if let Some(info) = s.shared_info.as_mut() {
                                info[0] = done as u8;
                            }
                            if let Some(e) = s.emulator.last_mut() {
                                e.data.push(done as u8);
                            }
                        });
                        true
                    })
                    .unwrap();
                assert_eq!(stats.checkpoints, rounds);
                walk_with(&out, Strictness::Strict).unwrap();
                let restored = restore_with(&out, strict(StreamKind::Checkpointed), LIMIT);
                assert_eq!(restored.stats.checkpoints, rounds);
                assert_eq!(restored.state, expected(&g, &opts), "{dtype}");
                assert_same_memory(restored.memory.as_ref().unwrap(), &*g.mem);
                // A plain restore refuses the stream.
                assert!(Restorer::new(strict(StreamKind::Plain)).verify(StreamReader::from_slice(&out)).is_err());
            }
        }
    });
}

#[test]
fn real_xen_file_saves_again_identically() {
    let original = real_save_file();
    let limit = 1 << 20;
    let first = restore_with(&original, RestoreOptions::default(), limit);
    let config = first.container.xl_config.clone().expect("an xl file");
    let state = first.state.clone();
    let mem = first.memory.expect("restored into memory");
    let g = TestGuest::new(Box::new(mem), state.clone());
    let opts = SaveOptions {
        stream_version: 3,
        batch_pfns: 1024,
        container: Container::Xl { config },
        xen_version: (state.xen_major, state.xen_minor),
        ..Default::default()
    };
    let (ours, _) = save(&g, &opts);

    // It restores strictly to the identical state and memory.
    let second = restore_with(&ours, strict(StreamKind::Plain), limit);
    assert_eq!(second.state, state);
    assert_same_memory(second.memory.as_ref().unwrap(), &*g.mem);
    assert_eq!(second.stats.pages_by_type, first.stats.pages_by_type);

    // The same records in the same order, layer by layer: Xen's non-live pass is 8
    // batches of 1024 pfns, and so is ours.
    let (theirs_seen, e1) = scan(&original);
    let (ours_seen, e2) = scan(&ours);
    assert!(e1.is_none() && e2.is_none());
    assert_eq!(ours_seen, theirs_seen);
    assert_eq!(ours_seen.iter().filter(|s| **s == Seen::Record(RecordType::PAGE_DATA)).count(), 8);
    // In fact byte for byte: nothing in the stream depends on who wrote it.
    assert_eq!(ours.len(), original.len());
    assert!(ours == original, "the re-saved stream differs from Xen's");
}
