//! One rulebook (issue 7, section 2): for any domain state, populated set, page types and
//! page contents, `sr-save` either refuses (with the rule restore would report) or writes a
//! stream that verifies strictly and restores to the same state and memory. One property
//! per domain type, over states built by breaking a valid guest at random.

#[path = "../crates/sr-save/tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;

use common::{LIMIT, TestGuest, guest};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use sr_format::body::VcpuFrames;
use sr_format::state::DomainState;
use sr_format::{DomainType, PageType, StreamReader, Strictness};
use sr_memory::{GuestMemory, RamMemory};
use sr_restore::{RestoreOptions, Restored, Restorer};
use sr_save::{Guest, SaveError, SaveOptions, Saver};

/// Random edits to a valid guest.
#[derive(Clone, Debug)]
struct Edits {
    /// (pfn, type nibble) set in the state's page types.
    types: Vec<(u64, u8)>,
    /// pfns populated (zero pages) on top of the layout.
    populate: Vec<u64>,
    /// PV: a new p2m end_pfn (the frame list resized to match).
    end_pfn: Option<u32>,
    /// PV: p2m frame pfns.
    p2m_frames: Vec<u64>,
    /// PV: vcpu 0's start_info, GDT frame 0 and CR3 pfns.
    vcpu0: Option<(u64, u64, u64)>,
    /// 8-byte words written into pages: (pfn, word index, value).
    words: Vec<(u64, usize, u64)>,
    /// HVM-like: the HVM context (None: removed).
    hvm_context: Option<Option<Vec<u8>>>,
}

fn low_pfn() -> impl Strategy<Value = u64> {
    prop_oneof![4 => 0u64..40, 1 => 0u64..LIMIT + 8]
}

fn nibble() -> impl Strategy<Value = u8> {
    prop::sample::select(vec![0u8, 1, 2, 3, 4, 9, 10, 11, 12, 13, 14, 15])
}

fn word() -> impl Strategy<Value = (u64, usize, u64)> {
    // Page-table entries (present or not, within the p2m or far beyond) and start_info
    // fields (words 7 and 9 of a 64-bit start_info page).
    let value = prop_oneof![
        (0u64..64).prop_map(|p| p << 12 | 0x67),
        (0u64..1 << 20).prop_map(|p| p << 12 | 1),
        0u64..3000,
        any::<u64>(),
    ];
    (0u64..40, prop_oneof![Just(7usize), Just(9), 0usize..512], value)
}

fn edits() -> impl Strategy<Value = Edits> {
    (
        prop::collection::vec((low_pfn(), nibble()), 0..5),
        prop::collection::vec(low_pfn(), 0..3),
        prop::option::weighted(0.3, 20u32..2048),
        prop::collection::vec(0u64..40, 0..4),
        prop::option::weighted(0.4, (0u64..40, 0u64..40, 0u64..40)),
        prop::collection::vec(word(), 0..4),
        prop::option::weighted(0.3, prop::option::of(prop::collection::vec(any::<u8>(), 0..3))),
    )
        .prop_map(|(types, populate, end_pfn, p2m_frames, vcpu0, words, hvm_context)| Edits {
            types,
            populate,
            end_pfn,
            p2m_frames,
            vcpu0,
            words,
            hvm_context,
        })
}

fn apply(g: &TestGuest, e: &Edits) {
    let size = g.mem.page_size();
    for &pfn in e.populate.iter().filter(|&&p| p < LIMIT) {
        g.mem.populate(&[pfn]).unwrap();
    }
    for &(pfn, at, value) in &e.words {
        if g.mem.is_populated(pfn) && (at + 1) * 8 <= size {
            let mut page = vec![0u8; size];
            g.mem.read_pages(&[pfn], &mut page).unwrap();
            page[at * 8..at * 8 + 8].copy_from_slice(&value.to_le_bytes());
            g.mem.write_pages(&[pfn], &page).unwrap();
        }
    }
    g.set_state(|s| {
        for &(pfn, n) in &e.types {
            let t = PageType::from_nibble(n);
            if t == PageType::NOTAB {
                s.page_types.remove(&pfn);
            } else {
                s.page_types.insert(pfn, t);
            }
        }
        if let Some(p2m) = s.p2m.as_mut() {
            if let Some(end) = e.end_pfn {
                p2m.end_pfn = end;
                p2m.frames.resize(end as usize / 512 + 1, 10);
            }
            for (slot, &pfn) in p2m.frames.iter_mut().zip(&e.p2m_frames) {
                *slot = pfn;
            }
        }
        if let (Some((start_info, gdt, cr3)), Some(basic)) =
            (e.vcpu0, s.vcpus.get_mut(&0).and_then(|v| v.basic.as_mut()))
        {
            let mut f = VcpuFrames::read(basic, 8).unwrap();
            (f.start_info, f.gdt_frames[0], f.cr3_pfn) = (start_info, gdt, cr3);
            f.write(basic, 8);
        }
        if let Some(ctx) = &e.hvm_context
            && s.domain_type != DomainType::X86_PV
        {
            s.hvm_context = ctx.clone();
        }
    });
}

fn restore(bytes: &[u8]) -> Result<Restored<RamMemory>, sr_restore::RestoreError> {
    let strict = RestoreOptions { strictness: Strictness::Strict, ..Default::default() };
    Restorer::new(strict)
        // A destination larger than any pfn the edits name: for HVM, PVH and ARM a pfn beyond
        // the guest is a bound of the destination (Xen has no rule for it), which no saver
        // can know, so the property is about a destination that fits.
        .restore(StreamReader::from_slice(bytes), |h| RamMemory::new(u32::from(h.page_shift.get()), LIMIT + 64))
}

/// The state a restore must produce: the guest's, with the types of the pfns sent.
fn expected(g: &TestGuest) -> DomainState {
    let mut want = g.snapshot_state();
    let extras = g.extra_pfns();
    let sent = |p: u64| g.mem.is_populated(p) || extras.contains(&p);
    want.page_types =
        want.page_types.iter().filter(|(p, _)| sent(**p)).map(|(&p, &t)| (p, t)).collect::<BTreeMap<_, _>>();
    // A bare libxc stream carries no device-model records.
    want.emulator.clear();
    want
}

/// The restored memory is what the stream said: the pages of populating types, with their
/// data (XALLOC pages zeroed); pages the guest typed as holes are not populated.
fn assert_memory(restored: &RamMemory, g: &TestGuest) {
    let state = g.snapshot_state();
    let size = g.mem.page_size();
    let mut want: Vec<u64> = g.mem.populated().iter_ones().filter(|&p| state.page_type(p).populates()).collect();
    want.extend(g.extra_pfns().into_iter().filter(|&p| state.page_type(p) == PageType::XALLOC));
    want.sort_unstable();
    let got: Vec<u64> = restored.populated().iter_ones().collect();
    assert_eq!(got, want, "populated pfns");
    let (mut a, mut b) = (vec![0u8; size], vec![0u8; size]);
    for pfn in want {
        restored.read_pages(&[pfn], &mut a).unwrap();
        if state.page_type(pfn).has_data() {
            g.mem.read_pages(&[pfn], &mut b).unwrap();
        } else {
            b.fill(0);
        }
        assert!(a == b, "pfn {pfn:#x} differs");
    }
}

/// Runs the property for guests of `dtype`; returns (refused, saved) counts.
fn property(dtype: DomainType, shift: u32, cases: u32) -> (u32, u32) {
    let (refused, saved) = (std::cell::Cell::new(0u32), std::cell::Cell::new(0u32));
    // A fixed seed: the refused/saved counts asserted below are then the same on every run
    // (with a random seed, 48 ARM cases once drew only 2 refusals and CI went red). Explore
    // further locally by raising `cases`.
    let config = Config { cases, failure_persistence: None, ..Config::default() };
    let mut runner = TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha));
    let result = runner.run(&edits(), |e| {
        let g = guest(dtype, shift, 60);
        apply(&g, &e);
        let mut bytes = Vec::new();
        match Saver::new(SaveOptions { workers: 1, ..Default::default() }).save(&g, &mut bytes) {
            Err(SaveError::Rejected(v)) => {
                // The refusal names a rule; restore of the same domain would say the same.
                prop_assert!(!v.to_string().is_empty());
                refused.set(refused.get() + 1);
            }
            Err(SaveError::RejectedRecord { violation, .. }) => {
                prop_assert!(!violation.to_string().is_empty());
                refused.set(refused.get() + 1);
            }
            Err(SaveError::InvalidState(_)) => refused.set(refused.get() + 1),
            Err(other) => return Err(TestCaseError::fail(format!("unexpected save error: {other}"))),
            Ok(_) => {
                let strict = RestoreOptions { strictness: Strictness::Strict, ..Default::default() };
                if let Err(err) = Restorer::new(strict).verify(StreamReader::from_slice(&bytes)) {
                    return Err(TestCaseError::fail(format!("verify --strict rejects what save wrote: {err}")));
                }
                let r = restore(&bytes).map_err(|err| TestCaseError::fail(format!("restore rejects: {err}")))?;
                prop_assert_eq!(&r.state, &expected(&g));
                assert_memory(r.memory.as_ref().unwrap(), &g);
                saved.set(saved.get() + 1);
            }
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{dtype}: {e}");
    }
    (refused.get(), saved.get())
}

#[test]
fn x86_pv_save_refuses_or_writes_what_restore_accepts() {
    let (refused, saved) = property(DomainType::X86_PV, 12, 96);
    assert!(refused >= 10 && saved >= 10, "refused {refused}, saved {saved}");
}

#[test]
fn x86_hvm_save_refuses_or_writes_what_restore_accepts() {
    let (refused, saved) = property(DomainType::X86_HVM, 12, 48);
    assert!(refused >= 3 && saved >= 10, "refused {refused}, saved {saved}");
}

#[test]
fn x86_pvh_save_refuses_or_writes_what_restore_accepts() {
    let (refused, saved) = property(DomainType::X86_PVH, 12, 48);
    assert!(refused >= 3 && saved >= 10, "refused {refused}, saved {saved}");
}

#[test]
fn arm_save_refuses_or_writes_what_restore_accepts() {
    let (refused, saved) = property(DomainType::ARM, 12, 48);
    assert!(refused >= 3 && saved >= 10, "refused {refused}, saved {saved}");
}
