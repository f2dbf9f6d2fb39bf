//! Record order, layers and versions of what the saver writes, for every domain type.

mod common;

use common::{Seen, guest, record_counts, record_order, scan};
use sr_format::libxl::LibxlRecordType;
use sr_format::{DomainType, RecordType as R, Strictness, walk_with};
use sr_save::{Container, SaveOptions, Saver};

fn save(g: &common::TestGuest, options: SaveOptions) -> Vec<u8> {
    let mut out = Vec::new();
    let stats = Saver::new(options).save(g, &mut out).unwrap();
    assert_eq!(stats.bytes, out.len() as u64);
    walk_with(&out, Strictness::Strict).unwrap();
    out
}

/// PV end-of-state records: vcpu 0 has all four blobs, vcpu 1 only BASIC.
const PV_TAIL: [R; 8] = [
    R::X86_TSC_INFO,
    R::SHARED_INFO,
    R::X86_PV_VCPU_BASIC,
    R::X86_PV_VCPU_EXTENDED,
    R::X86_PV_VCPU_XSAVE,
    R::X86_PV_VCPU_MSRS,
    R::X86_PV_VCPU_BASIC,
    R::END,
];

fn pv_order(v3: bool) -> Vec<R> {
    let mut o = vec![R::X86_PV_INFO];
    if v3 {
        o.extend([R::X86_CPUID_POLICY, R::X86_MSR_POLICY, R::STATIC_DATA_END]);
    }
    o.extend([R::X86_PV_P2M_FRAMES, R::PAGE_DATA]);
    o.extend(PV_TAIL);
    o
}

fn hvm_order(v3: bool) -> Vec<R> {
    let mut o = Vec::new();
    if v3 {
        o.extend([R::X86_CPUID_POLICY, R::X86_MSR_POLICY, R::STATIC_DATA_END]);
    }
    o.extend([R::PAGE_DATA, R::X86_TSC_INFO, R::HVM_CONTEXT, R::HVM_PARAMS, R::END]);
    o
}

fn arm_order(v3: bool) -> Vec<R> {
    let mut o = Vec::new();
    if v3 {
        o.push(R::STATIC_DATA_END);
    }
    o.extend([R::PAGE_DATA, R::HVM_CONTEXT, R::HVM_PARAMS, R::END]);
    o
}

#[test]
fn record_order_per_domain_type_v3_and_v2() {
    for v3 in [true, false] {
        let version = if v3 { 3 } else { 2 };
        let opts = SaveOptions { stream_version: version, workers: 2, ..Default::default() };
        let cases = [
            (DomainType::X86_PV, 12, pv_order(v3)),
            (DomainType::X86_HVM, 12, hvm_order(v3)),
            (DomainType::X86_PVH, 12, hvm_order(v3)),
            (DomainType::ARM, 12, arm_order(v3)),
            (DomainType::ARM, 16, arm_order(v3)),
        ];
        for (dtype, shift, want) in cases {
            let pages = if shift == 16 { 40 } else { 300 };
            let g = guest(dtype, shift, pages);
            if !v3 && dtype != DomainType::ARM {
                // A v2 stream cannot carry a CPU policy: the save refuses rather than drop it.
                let e = Saver::new(opts.clone()).save(&g, Vec::new()).unwrap_err();
                assert!(e.to_string().contains("which a v2 stream cannot carry"), "{e}");
                g.set_state(|s| {
                    s.cpuid.clear();
                    s.msrs.clear();
                });
            }
            let out = save(&g, opts.clone());
            assert_eq!(record_order(&out), want, "{dtype} page_shift {shift} v{version}");
            let (seen, _) = scan(&out);
            assert_eq!(seen[0], Seen::ImageHeader(version));
            assert_eq!(seen[1], Seen::DomainHeader(dtype, shift as u16));
            let counts = record_counts(&out);
            if !v3 {
                for t in [R::STATIC_DATA_END, R::X86_CPUID_POLICY, R::X86_MSR_POLICY] {
                    assert!(!counts.contains_key(&t), "{t} in a v2 {dtype} stream");
                }
            }
            // Exactly one pass over populated + extra pfns, in 1024-pfn batches.
            let populated = g.mem.populated().count_ones();
            let extras = if dtype == DomainType::X86_PV { 2 } else { 1 };
            let entries = walk_with(&out, Strictness::Strict).unwrap().pfn_entries;
            assert_eq!(entries, populated + extras);
            assert_eq!(counts[&R::PAGE_DATA] as u64, entries.div_ceil(1024));
        }
    }
}

#[test]
fn pvh_as_hvm_writes_domain_type_2() {
    let g = guest(DomainType::X86_PVH, 12, 100);
    let out = save(&g, SaveOptions { pvh_as_hvm: true, ..Default::default() });
    assert_eq!(scan(&out).0[1], Seen::DomainHeader(DomainType::X86_HVM, 12));
    assert_eq!(record_order(&out), hvm_order(true));
}

#[test]
fn empty_policies_and_missing_tsc_are_not_written() {
    let g = guest(DomainType::X86_HVM, 12, 50);
    g.set_state(|s| {
        s.cpuid.clear();
        s.msrs.clear();
        s.tsc = None;
        s.hvm_params.clear();
    });
    let out = save(&g, SaveOptions::default());
    assert_eq!(record_order(&out), [R::STATIC_DATA_END, R::PAGE_DATA, R::HVM_CONTEXT, R::END]);
}

#[test]
fn libxl_and_xl_containers_wrap_the_libxc_stream() {
    let config = b"{\"c_info\": {}}\n\0".to_vec();
    for dtype in [DomainType::X86_HVM, DomainType::X86_PV, DomainType::X86_PVH] {
        let g = guest(dtype, 12, 100);
        let bare = save(&g, SaveOptions::default());
        g.set_state(common::add_emulator);
        for container in [Container::Libxl, Container::Xl { config: config.clone() }] {
            let out = save(&g, SaveOptions { container: container.clone(), ..Default::default() });
            let (seen, err) = scan(&out);
            assert!(err.is_none());
            let mut want = Vec::new();
            if matches!(container, Container::Xl { .. }) {
                want.push(Seen::Xl);
            }
            want.extend([Seen::LibxlHeader, Seen::Libxl(LibxlRecordType::LIBXC_CONTEXT)]);
            let inner = scan(&bare).0;
            want.extend(inner);
            if dtype == DomainType::X86_HVM {
                want.extend([
                    Seen::Libxl(LibxlRecordType::EMULATOR_XENSTORE_DATA),
                    Seen::Libxl(LibxlRecordType::EMULATOR_CONTEXT),
                ]);
            }
            want.push(Seen::Libxl(LibxlRecordType::END));
            assert_eq!(seen, want, "{dtype} {container:?}");
            // The libxc stream inside is byte-for-byte the bare one.
            let start = out.windows(8).position(|w| w == [0xff; 8]).unwrap();
            assert_eq!(&out[start..start + bare.len()], &bare[..]);
            if let Container::Xl { .. } = container {
                let mut r = sr_format::StreamReader::from_slice(&out);
                match r.next_item().unwrap().unwrap() {
                    sr_format::Item::Xl { config: c, header, .. } => {
                        assert_eq!(c, &config[..]);
                        assert!(header.is_json() && header.is_stream_v2());
                    }
                    other => panic!("{other:?}"),
                }
            }
        }
    }
}

#[test]
fn checkpointed_record_order() {
    for container in [Container::Libxc, Container::Libxl] {
        let g = guest(DomainType::X86_HVM, 12, 100);
        let mut out = Vec::new();
        let opts = SaveOptions { container: container.clone(), ..Default::default() };
        let mut rounds = 0;
        let stats = Saver::new(opts)
            .save_checkpointed(&g, &mut out, |done| {
                rounds += 1;
                assert_eq!(done, rounds);
                done < 3
            })
            .unwrap();
        assert_eq!(stats.checkpoints, 3);
        walk_with(&out, Strictness::Strict).unwrap();
        let (seen, err) = scan(&out);
        assert!(err.is_none());
        let libxc: Vec<R> = seen.iter().filter_map(|s| if let Seen::Record(t) = s { Some(*t) } else { None }).collect();
        let round = [R::X86_TSC_INFO, R::HVM_CONTEXT, R::HVM_PARAMS, R::CHECKPOINT];
        let mut want = vec![R::X86_CPUID_POLICY, R::X86_MSR_POLICY, R::STATIC_DATA_END, R::PAGE_DATA];
        want.extend(round);
        // No page was dirtied between checkpoints: later rounds have no PAGE_DATA.
        want.extend(round);
        want.extend(round);
        want.push(R::END);
        assert_eq!(libxc, want, "{container:?}");
        let checkpoint_ends = seen.iter().filter(|s| **s == Seen::Libxl(LibxlRecordType::CHECKPOINT_END)).count();
        assert_eq!(checkpoint_ends, if container == Container::Libxl { 3 } else { 0 });
        assert_eq!(g.resumes.load(std::sync::atomic::Ordering::Relaxed), 3);
        assert!(g.is_running(), "the guest runs on after a checkpointed save");
    }
}

#[test]
fn invalid_state_fails_before_anything_is_written() {
    type Breaker = fn(&mut sr_format::state::DomainState);
    let cases: [(DomainType, Breaker); 6] = [
        (DomainType::X86_PV, |s| s.pv_info = None),
        (DomainType::X86_PV, |s| {
            s.vcpus.remove(&0);
        }),
        (DomainType::X86_PV, |s| s.shared_info = None),
        (DomainType::X86_HVM, |s| s.hvm_context = None),
        (DomainType::ARM, |s| s.hvm_context = None),
        // Larger than the 128 MiB record limit.
        (DomainType::X86_HVM, |s| s.hvm_context = Some(vec![1; 0x0800_0001])),
    ];
    for (dtype, break_it) in cases {
        let g = guest(dtype, 12, 30);
        g.set_state(break_it);
        let mut out = Vec::new();
        let err = Saver::new(SaveOptions::default()).save(&g, &mut out).unwrap_err();
        assert!(matches!(err, sr_save::SaveError::InvalidState(_) | sr_save::SaveError::Rejected(_)), "{err}");
        assert!(out.is_empty());
        assert_eq!(g.pauses.load(std::sync::atomic::Ordering::Relaxed), 0);
    }
}

#[test]
fn bad_options_fail_before_anything_is_written() {
    let g = guest(DomainType::X86_HVM, 12, 30);
    for (opts, check) in [
        (SaveOptions { stream_version: 1, ..Default::default() }, "unsupported stream version 1"),
        (SaveOptions { batch_pfns: 0, ..Default::default() }, "batch_pfns"),
        (SaveOptions { batch_pfns: 40_000, ..Default::default() }, "at most 32704"),
    ] {
        let mut out = Vec::new();
        let err = Saver::new(opts).save(&g, &mut out).unwrap_err();
        assert!(err.to_string().contains(check), "{err}");
        assert!(out.is_empty());
    }
    let mut out = Vec::new();
    let err = Saver::new(SaveOptions { verify: true, ..Default::default() })
        .save_checkpointed(&g, &mut out, |_| false)
        .unwrap_err();
    assert!(matches!(err, sr_save::SaveError::InvalidOptions(_)));
}

#[test]
fn largest_batch_fits_one_record() {
    let g = guest(DomainType::X86_HVM, 12, 300);
    let out = save(&g, SaveOptions { batch_pfns: sr_save::max_batch_pfns(4096), ..Default::default() });
    assert_eq!(record_counts(&out)[&R::PAGE_DATA], 1);
}
