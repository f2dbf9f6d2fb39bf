//! Live pre-copy: convergence, the policy knobs, events, and a consistent final image.

mod common;

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use common::{TestGuest, assert_stream_matches_memory, guest, record_counts, within};
use sr_format::{DomainType, RecordType, Strictness, walk_with};
use sr_save::{PrecopyPolicy, SaveEvent, SaveOptions, SaveStats, Saver};

/// A guest whose every batch preparation (while running) dirties 8 pages of a 100-page
/// hot set, cyclically: every pass leaves at least 100 dirty pages, deterministically.
fn busy_guest() -> TestGuest {
    let mut g = guest(DomainType::X86_HVM, 12, 400);
    g.hot = (100..200).collect();
    g.dirty_per_batch = 8;
    g
}

fn save_live(g: &TestGuest, policy: PrecopyPolicy) -> (Vec<u8>, SaveStats, Vec<SaveEvent>) {
    let mut out = Vec::new();
    let mut events = Vec::new();
    let opts = SaveOptions { live: Some(policy), batch_pfns: 8, workers: 2, ..Default::default() };
    let stats = Saver::new(opts).on_event(|e| events.push(e.clone())).save(g, &mut out).unwrap();
    walk_with(&out, Strictness::Strict).unwrap();
    assert!(!g.is_running(), "left paused");
    assert_stream_matches_memory(&out, &*g.mem);
    (out, stats, events)
}

fn finals(stats: &SaveStats) -> usize {
    stats.iterations.iter().filter(|i| i.final_pass).count()
}

#[test]
fn busy_guest_hits_the_iteration_limit() {
    let g = busy_guest();
    let (out, stats, _) = save_live(&g, PrecopyPolicy::default());
    assert_eq!((stats.live_passes(), finals(&stats)), (5, 1));
    // Dirty passes send the 100 hot pages each; the final pass what the last one dirtied.
    for it in &stats.iterations[1..5] {
        assert_eq!(it.pages, 100, "{it:?}");
    }
    let pages: u64 = stats.iterations.iter().map(|i| i.pages).sum();
    assert_eq!(walk_with(&out, Strictness::Strict).unwrap().pfn_entries, pages);
}

#[test]
fn knobs_change_the_iteration_count() {
    let cases = [
        (PrecopyPolicy { max_iterations: 1, ..Default::default() }, 1),
        (PrecopyPolicy { max_iterations: 3, ..Default::default() }, 3),
        (PrecopyPolicy { max_iterations: 8, ..Default::default() }, 8),
        (PrecopyPolicy { dirty_threshold: u64::MAX, ..Default::default() }, 1),
        (PrecopyPolicy { dirty_threshold: 101, max_iterations: 10, ..Default::default() }, 1),
        (PrecopyPolicy { dirty_threshold: 100, max_iterations: 4, ..Default::default() }, 4),
        (PrecopyPolicy { downtime_target: Some(Duration::from_secs(3600)), ..Default::default() }, 1),
        (PrecopyPolicy { downtime_target: Some(Duration::ZERO), max_iterations: 6, ..Default::default() }, 6),
    ];
    for (policy, live_passes) in cases {
        let g = busy_guest();
        let (_, stats, _) = save_live(&g, policy);
        assert_eq!(stats.live_passes(), live_passes, "{policy:?}");
        assert_eq!(finals(&stats), 1);
        assert_eq!(stats.iterations.len(), live_passes + 1);
    }
}

#[test]
fn quiet_guest_stops_after_the_first_pass_and_carries_the_dirty_set() {
    // Dirties 8 pages per batch of a 10-page hot set: below the threshold of 50.
    let mut g = guest(DomainType::X86_PV, 12, 400);
    g.hot = (30..40).collect();
    g.dirty_per_batch = 8;
    let (_, stats, events) = save_live(&g, PrecopyPolicy::default());
    assert_eq!((stats.live_passes(), finals(&stats)), (1, 1));
    // The dirty set not sent live is sent in the final pass.
    assert_eq!(stats.iterations[1].pages, 10);
    assert!(events.contains(&SaveEvent::Paused { dirty_pages: 10 }));
}

#[test]
fn threaded_dirtier_converges_under_the_default_policy() {
    within(60, || {
        let mut g = guest(DomainType::X86_HVM, 12, 1500);
        g.hot = (200..216).collect();
        let stop = AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| g.dirty_loop(&stop));
            let mut out = Vec::new();
            let opts = SaveOptions { live: Some(PrecopyPolicy::default()), workers: 2, ..Default::default() };
            let stats = Saver::new(opts).save(&g, &mut out).unwrap();
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            assert!(stats.live_passes() >= 1 && stats.live_passes() <= 5, "{stats:?}");
            assert_eq!(finals(&stats), 1);
            assert!(stats.downtime <= stats.duration);
            // The guest is paused: memory is what the stream ends with.
            assert_stream_matches_memory(&out, &*g.mem);
        });
    });
}

#[test]
fn events_describe_the_passes() {
    let g = busy_guest();
    let (_, stats, events) = save_live(&g, PrecopyPolicy { max_iterations: 2, ..Default::default() });
    let mut current: Option<(u32, u64)> = None;
    let mut last_done = 0;
    let mut ends = Vec::new();
    let mut paused_before_final = false;
    for e in &events {
        match e {
            SaveEvent::IterationStart { iteration, pages } => {
                assert!(current.is_none());
                current = Some((*iteration, *pages));
                last_done = 0;
            }
            SaveEvent::Progress { iteration, pages_done, pages_total, bytes } => {
                let (it, total) = current.expect("progress inside a pass");
                assert_eq!((*iteration, *pages_total), (it, total));
                assert!(*pages_done >= last_done && *pages_done <= total && *bytes > 0);
                last_done = *pages_done;
            }
            SaveEvent::IterationEnd(s) => {
                let (it, total) = current.take().expect("end after start");
                assert_eq!((s.iteration, s.pages), (it, total));
                assert_eq!(last_done, total, "last progress covers the pass");
                if s.final_pass {
                    assert!(paused_before_final);
                }
                ends.push(s.clone());
            }
            SaveEvent::Paused { .. } => paused_before_final = true,
            SaveEvent::Complete(s) => assert_eq!(s, &stats),
        }
    }
    assert!(matches!(events.last(), Some(SaveEvent::Complete(_))));
    assert_eq!(ends, stats.iterations);
    assert_eq!(ends.iter().map(|s| s.iteration).collect::<Vec<_>>(), [0, 1, 2]);
    assert!(ends.iter().all(|s| s.rate().bytes_per_sec > 0.0));
}

#[test]
fn verify_pass_follows_the_final_pass() {
    let g = guest(DomainType::X86_HVM, 12, 300);
    let mut out = Vec::new();
    let stats = Saver::new(SaveOptions { verify: true, live: Some(PrecopyPolicy::default()), ..Default::default() })
        .save(&g, &mut out)
        .unwrap();
    let order = common::record_order(&out);
    let v = order.iter().position(|t| *t == RecordType::VERIFY).unwrap();
    assert_eq!(order[v - 1], RecordType::PAGE_DATA);
    assert_eq!(order[v + 1], RecordType::PAGE_DATA);
    assert_eq!(order[v + 2], RecordType::X86_TSC_INFO);
    let last = stats.iterations.last().unwrap();
    assert!(last.verify && !last.final_pass);
    assert_eq!(last.pages, stats.iterations[0].pages);
    assert_eq!(record_counts(&out)[&RecordType::VERIFY], 1);
}
