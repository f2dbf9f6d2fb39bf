//! The engine's destination hook ([`RestoreTarget`]): the order of its moments, and that nothing
//! reaches it before its record passed every rule.

mod common;

use std::cell::RefCell;
use std::rc::Rc;

use common::*;
use sr_format::state::DomainState;
use sr_format::{PageType, Record, StreamReader};
use sr_memory::{GuestMemory, MemoryError, RamMemory};
use sr_restore::{PageBatch, RestoreError, RestoreOptions, RestoreTarget, Restored, Restorer, TargetError};

/// What a recording target saw, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Call {
    /// STATIC_DATA_END, with the CPUID leaves and PV width known then.
    Sde { leaves: usize, width: Option<u8> },
    /// PAGE_DATA record `index`: populated pfns, then (pfn, type nibble) of each page body.
    Pages { index: u64, populate: Vec<u64>, bodies: Vec<(u64, u8)> },
    /// VERIFY comparison of record `index`.
    Compare { index: u64 },
    /// A state record: its type and index.
    Record { rtype: u32, index: u64 },
    /// END, with the number of vcpus in the final state.
    End { vcpus: usize },
}

/// A target over RAM that records every call; `fail_on` makes the first call of that kind fail.
#[derive(Debug)]
struct Recorder {
    mem: RamMemory,
    calls: Rc<RefCell<Vec<Call>>>,
    fail_on: Option<&'static str>,
}

impl Recorder {
    fn fail(&self, what: &'static str) -> Result<(), TargetError> {
        if self.fail_on == Some(what) { Err(format!("{what} refused by the test target").into()) } else { Ok(()) }
    }
}

impl RestoreTarget for Recorder {
    fn page_shift(&self) -> u32 {
        GuestMemory::page_shift(&self.mem)
    }
    fn pfn_limit(&self) -> u64 {
        GuestMemory::pfn_limit(&self.mem)
    }
    fn is_populated(&self, pfn: u64) -> bool {
        GuestMemory::is_populated(&self.mem, pfn)
    }
    fn read_pages(&self, pfns: &[u64], out: &mut [u8]) -> Result<(), MemoryError> {
        GuestMemory::read_pages(&self.mem, pfns, out)
    }
    fn apply_pages(&mut self, batch: &PageBatch<'_>) -> Result<(), MemoryError> {
        assert_eq!(batch.pfns.len(), batch.types.len());
        assert_eq!(batch.data.len(), batch.pfns.len() * 4096);
        self.calls.borrow_mut().push(Call::Pages {
            index: batch.index,
            populate: batch.populate.to_vec(),
            bodies: batch.pfns.iter().zip(batch.types).map(|(&p, t)| (p, t.nibble())).collect(),
        });
        if self.fail_on == Some("pages") {
            return Err(MemoryError::Backend("pages refused by the test target".into()));
        }
        self.mem.populate(batch.populate)?;
        self.mem.write_pages(batch.pfns, batch.data)
    }
    fn compare_pages(&mut self, batch: &PageBatch<'_>, mismatch: &mut dyn FnMut(u64)) -> Result<(), MemoryError> {
        self.calls.borrow_mut().push(Call::Compare { index: batch.index });
        let mut got = vec![0; batch.data.len()];
        GuestMemory::read_pages(&self.mem, batch.pfns, &mut got)?;
        for ((pfn, a), b) in batch.pfns.iter().zip(got.chunks(4096)).zip(batch.data.chunks(4096)) {
            if a != b {
                mismatch(*pfn);
            }
        }
        Ok(())
    }
    fn static_data_end(&mut self, state: &DomainState) -> Result<(), TargetError> {
        let width = state.pv_info.map(|i| i.guest_width);
        self.calls.borrow_mut().push(Call::Sde { leaves: state.cpuid.len(), width });
        self.fail("sde")
    }
    fn state_record(&mut self, rec: &Record<'_>, state: &DomainState) -> Result<(), TargetError> {
        // The state already holds what the record said.
        if rec.rtype == sr_format::RecordType::X86_TSC_INFO {
            assert!(state.tsc.is_some());
        }
        self.calls.borrow_mut().push(Call::Record { rtype: rec.rtype.0, index: rec.index });
        self.fail("record")
    }
    fn end(&mut self, state: &DomainState) -> Result<(), TargetError> {
        self.calls.borrow_mut().push(Call::End { vcpus: state.vcpus.len() });
        self.fail("end")
    }
}

fn run(
    bytes: &[u8],
    options: RestoreOptions,
    fail_on: Option<&'static str>,
) -> (Result<Restored<Recorder>, RestoreError>, Vec<Call>) {
    let calls = Rc::new(RefCell::new(Vec::new()));
    let c = Rc::clone(&calls);
    let r = Restorer::new(options).restore(StreamReader::from_slice(bytes), move |_| {
        Ok(Recorder { mem: RamMemory::new(12, X86_LIMIT)?, calls: c, fail_on })
    });
    let calls = calls.borrow().clone();
    (r, calls)
}

fn rec(rtype: u32, index: u64) -> Call {
    Call::Record { rtype, index }
}

#[test]
fn pv_moments_come_in_stream_order_with_page_types() {
    let spec = pv().insert(1, CPUID, cpuid(&[CPUID_LEAF]));
    let (r, calls) = run(&spec.bytes(), lenient(), None);
    let restored = r.unwrap();
    // PV_INFO(0) CPUID(1) SDE(2) P2M(3) PAGE_DATA(4) TSC(5) SHARED_INFO(6) BASIC(7) END(8).
    let mut bodies: Vec<(u64, u8)> = [0, 1, 2, 3, 100, 101].iter().map(|&p| (p, NOTAB)).collect();
    bodies.extend([(20, L1TAB), (21, L4TAB_PINNED)]);
    let populate = vec![0, 1, 2, 3, 100, 101, 20, 21];
    assert_eq!(
        calls,
        [
            rec(PV_INFO, 0),
            rec(CPUID, 1),
            Call::Sde { leaves: 1, width: Some(8) },
            rec(P2M_FRAMES, 3),
            Call::Pages { index: 4, populate, bodies },
            rec(TSC_INFO, 5),
            rec(SHARED_INFO, 6),
            rec(VCPU_BASIC, 7),
            Call::End { vcpus: 1 },
        ]
    );
    // The destination is handed back, with the pages written.
    let mut page = vec![0; 4096];
    GuestMemory::read_pages(&restored.memory.unwrap().mem, &[21], &mut page).unwrap();
    assert_eq!(page, common::page(21, 0, 4096));
    assert_eq!(restored.state.page_type(21), PageType::L4TAB_PINNED);
}

#[test]
fn a_v2_stream_infers_static_data_end_before_the_first_memory_record() {
    // PV: at X86_PV_P2M_FRAMES (before its record moment); HVM: at the first PAGE_DATA.
    let (r, calls) = run(&pv_body(2).without(SDE).end().bytes(), lenient(), None);
    r.unwrap();
    assert_eq!(&calls[..3], [rec(PV_INFO, 0), Call::Sde { leaves: 0, width: Some(8) }, rec(P2M_FRAMES, 1)]);
    let mut hvm2 = hvm_body(HVM).without(SDE).end();
    hvm2.version = 2;
    let (r, calls) = run(&hvm2.bytes(), lenient(), None);
    r.unwrap();
    assert_eq!(calls[2], Call::Sde { leaves: 1, width: None });
    assert!(matches!(calls[3], Call::Pages { index: 2, .. }), "{calls:?}");
}

#[test]
fn hvm_records_in_order_and_a_second_pages_record_populates_only_new_pfns() {
    let spec = hvm_body(HVM).pages(&[eg(2, NOTAB, 1), eg(7, NOTAB, 1), e(8, XALLOC)]).end();
    let (r, calls) = run(&spec.bytes(), lenient(), None);
    r.unwrap();
    let kinds: Vec<&Call> = calls.iter().collect();
    assert_eq!(kinds[0], &rec(CPUID, 0));
    assert_eq!(kinds[1], &rec(MSR, 1));
    assert_eq!(kinds[2], &Call::Sde { leaves: 1, width: None });
    assert!(matches!(kinds[3], Call::Pages { index: 3, .. }));
    assert_eq!(&calls[4..7], [rec(TSC_INFO, 4), rec(HVM_CONTEXT, 5), rec(HVM_PARAMS, 6)]);
    // pfn 2 again (already populated): written, not populated; XALLOC 8: populated, no body.
    assert_eq!(calls[7], Call::Pages { index: 7, populate: vec![7, 8], bodies: vec![(2, NOTAB), (7, NOTAB)] });
    assert_eq!(calls[8], Call::End { vcpus: 0 });
}

#[test]
fn a_record_that_breaks_a_rule_reaches_the_target_in_no_form() {
    // A page table naming a pfn beyond max_pfn: the PAGE_DATA record (index 3) never arrives.
    let spec = pv_body(3)
        .edit(PAGE_DATA, |body| {
            // The L1 table at pfn 20 is the 7th page body: make its entry 0 present, pfn 0x5000.
            let at = 8 + 9 * 8 + 6 * 4096;
            body[at..at + 8].copy_from_slice(&(0x5000u64 << 12 | 1).to_le_bytes());
        })
        .end();
    let (r, calls) = run(&spec.bytes(), lenient(), None);
    assert!(matches!(r, Err(RestoreError::PageContents { index: 3, .. })), "{r:?}");
    assert_eq!(calls, [rec(PV_INFO, 0), Call::Sde { leaves: 0, width: Some(8) }, rec(P2M_FRAMES, 2)]);

    // A pfn beyond the p2m: nothing of the record, and nothing after.
    let spec = pv_body(3).pages(&[e(5000, NOTAB)]).end();
    let (r, calls) = run(&spec.bytes(), lenient(), None);
    assert!(matches!(r, Err(RestoreError::PfnOutOfRange { .. })), "{r:?}");
    assert!(!calls.iter().any(|c| matches!(c, Call::Pages { index: 8, .. })), "{calls:?}");
    assert!(!calls.contains(&Call::End { vcpus: 1 }));

    // A vcpu record breaking its size rule: not handed over.
    let spec = pv_body(3).rec(VCPU_BASIC, vcpu(1, 100)).end();
    let (r, calls) = run(&spec.bytes(), lenient(), None);
    assert!(matches!(r, Err(RestoreError::Rejected { index: 7, .. })), "{r:?}");
    assert_eq!(calls.last(), Some(&rec(VCPU_BASIC, 6)));
}

#[test]
fn end_reaches_the_target_only_when_the_end_rules_hold() {
    // No vcpu 0 BASIC: the END rule fails, the target never hears of END.
    let spec = pv_body(3).without(VCPU_BASIC).end();
    let (r, calls) = run(&spec.bytes(), lenient(), None);
    assert!(matches!(r, Err(RestoreError::Incomplete { .. })), "{r:?}");
    assert!(!calls.iter().any(|c| matches!(c, Call::End { .. })), "{calls:?}");
    // A stream cut short: no END either.
    let bytes = pv().bytes();
    let (r, calls) = run(&bytes[..bytes.len() - 8], lenient(), None);
    assert!(r.is_err());
    assert!(!calls.iter().any(|c| matches!(c, Call::End { .. })), "{calls:?}");
}

#[test]
fn a_failing_target_stops_the_restore_with_the_record_it_was_applying() {
    let bytes = pv().bytes();
    let built = pv().build();
    for (what, index, rtype) in [("record", 0u64, "X86_PV_INFO"), ("sde", 1, "STATIC_DATA_END"), ("end", 7, "END")] {
        let (r, calls) = run(&bytes, lenient(), Some(what));
        let e = r.unwrap_err();
        assert!(
            matches!(&e, RestoreError::Target { index: Some(i), offset, .. } if *i == index && *offset == built.off(index as usize)),
            "{what}: {e:?}"
        );
        assert!(e.to_string().contains(&format!("{what} refused by the test target")), "{e}");
        assert!(e.to_string().contains(rtype) || what == "end", "{e}");
        // Nothing after the failing moment.
        let last = calls.len() - 1;
        assert!(!calls[..last].iter().any(|c| matches!(c, Call::End { .. })));
    }
    let (r, _) = run(&bytes, lenient(), Some("end"));
    assert_eq!(
        r.unwrap_err().to_string(),
        format!("END (record 7) at byte {}: the destination failed: end refused by the test target", built.off(7))
    );
    let (r, calls) = run(&bytes, lenient(), Some("pages"));
    assert!(matches!(r, Err(RestoreError::Memory { index: 3, .. })), "{r:?}");
    assert!(matches!(calls.last(), Some(Call::Pages { index: 3, .. })));
}

#[test]
fn checkpoint_records_reach_the_target_when_their_checkpoint_completes() {
    // Plain libxc checkpointed stream: records after CHECKPOINT wait for the next CHECKPOINT;
    // the last (incomplete) batch is dropped at END.
    let spec = hvm_body(HVM)
        .rec(CHECKPOINT, [])
        .rec(TSC_INFO, tsc(1, 2, 3, 4))
        .rec(CHECKPOINT, [])
        .rec(TSC_INFO, tsc(5, 6, 7, 8))
        .end();
    let (r, calls) = run(&spec.bytes(), checkpointed(false), None);
    r.unwrap();
    let tsc_records: Vec<&Call> = calls.iter().filter(|c| matches!(c, Call::Record { rtype: TSC_INFO, .. })).collect();
    // The body's TSC (index 4) and the first checkpoint's (index 8); not the dropped one (10).
    assert_eq!(tsc_records, [&rec(TSC_INFO, 4), &rec(TSC_INFO, 8)]);
    let pos = |c: &Call| calls.iter().position(|x| x == c).unwrap();
    assert!(pos(&rec(TSC_INFO, 8)) < pos(&Call::End { vcpus: 0 }));
}

#[test]
fn verify_mode_compares_through_the_target() {
    let spec = hvm_body(HVM).rec(VERIFY, []).pages(&[eg(1, NOTAB, 0), eg(2, NOTAB, 5)]).end();
    let (r, calls) = run(&spec.bytes(), lenient(), None);
    let restored = r.unwrap();
    assert!(calls.contains(&Call::Compare { index: 8 }), "{calls:?}");
    assert!(!calls.iter().any(|c| matches!(c, Call::Pages { index: 8, .. })));
    assert_eq!(restored.stats.verify_mismatches, 1);
    assert_eq!(restored.stats.mismatch_pfns, [2]);
}

#[test]
fn plain_guest_memory_is_a_target_unchanged() {
    // The blanket implementation: the existing callers' RamMemory restores as before.
    let restored = restore(&pv(), lenient()).unwrap();
    assert_memory(restored.memory.as_ref().unwrap(), &pv().expected_memory());
}

#[test]
fn hvm_page_types_can_be_left_unrecorded_but_pv_ones_never() {
    let no_types = RestoreOptions { hvm_page_types: false, ..lenient() };
    // HVM: the XTAB pfn 9 is recorded by default, not with the option off; memory the same.
    let (r, _) = run(&hvm().bytes(), lenient(), None);
    assert_eq!(r.unwrap().state.page_type(9), PageType::XTAB);
    let (r, calls) = run(&hvm().bytes(), no_types.clone(), None);
    let r = r.unwrap();
    assert!(r.state.page_types.is_empty());
    assert!(calls.iter().any(|c| matches!(c, Call::Pages { index: 3, .. })));
    // PV: recorded whatever the option (pinning and the END rules read them).
    let (r, _) = run(&pv().bytes(), no_types, None);
    let r = r.unwrap();
    assert_eq!(r.state.page_type(21), PageType::L4TAB_PINNED);
    assert_eq!(r.state.page_type(22), PageType::XTAB);
}
