//! Every applicable row of the restore validation table (xen-stream.md 2.8), every "accepted
//! on purpose" row and the 2.9 hazards, on hand-built streams of every domain type.

mod common;

use std::collections::BTreeMap;

use common::*;
use sr_format::state::DomainState;
use sr_format::{DomainType, Layer, PageType, RecordType};
use sr_memory::{GuestMemory, MemoryError, RamMemory};
use sr_restore::{RestoreError, RestoreOptions, Restored, Restorer};

fn err(spec: &Spec, options: RestoreOptions) -> RestoreError {
    match restore(spec, options) {
        Ok(_) => panic!("stream unexpectedly restored"),
        Err(e) => e,
    }
}

fn format_err(e: &RestoreError) -> &sr_format::Error {
    match e {
        RestoreError::Format(f) => f,
        other => panic!("expected a format error, got {other:?}"),
    }
}

/// Asserts a `Rejected` error for the libxc record at `index` of `built`, of type `rtype`,
/// whose rule mentions `needle`.
#[track_caller]
fn assert_rejected(e: &RestoreError, built: &Built, index: usize, rtype: u32, needle: &str) {
    match e {
        RestoreError::Rejected { offset, index: i, record, rule } => {
            assert_eq!((*offset, *i), (built.off(index), index as u64), "wrong record: {e}");
            assert_eq!(*record, RecordType(rtype), "{e}");
            assert!(rule.contains(needle), "rule {rule:?} does not mention {needle:?}");
        }
        other => panic!("expected Rejected at record {index}, got {other:?}"),
    }
}

/// Asserts a `BadLength` format error for the record at `index`.
#[track_caller]
fn assert_bad_length(e: &RestoreError, built: &Built, index: usize, rtype: u32) {
    match format_err(e) {
        sr_format::Error::BadLength { offset, index: i, record, .. } => {
            assert_eq!((*offset, *i, *record), (built.off(index), index as u64, RecordType(rtype)), "{e}");
        }
        other => panic!("expected BadLength at record {index}, got {other:?}"),
    }
}

/// Restores, checks the memory image against the spec's model, and compares with verify.
#[track_caller]
fn restore_ok(spec: &Spec, options: RestoreOptions) -> Restored<RamMemory> {
    let bytes = spec.bytes();
    let r = restore_with(&bytes, options.clone(), limit_for(spec)).unwrap_or_else(|e| panic!("restore failed: {e}"));
    assert_memory(r.memory.as_ref().unwrap(), &spec.expected_memory());
    assert_eq!(r.stats.bytes, bytes.len() as u64);
    let v = verify_bytes(&bytes, options).unwrap_or_else(|e| panic!("verify failed: {e}"));
    assert_eq!(v.state, r.state, "verify and restore disagree on the state");
    assert_eq!(v.stats.records, r.stats.records);
    r
}

fn all_hvm_like() -> Vec<(&'static str, Spec)> {
    vec![("hvm", hvm_body(HVM)), ("pvh", hvm_body(PVH)), ("arm", arm_body(12))]
}

fn x86_bodies() -> Vec<(&'static str, Spec)> {
    vec![("pv", pv_body(3)), ("hvm", hvm_body(HVM)), ("pvh", hvm_body(PVH))]
}

fn all_bodies() -> Vec<(&'static str, Spec)> {
    vec![("pv", pv_body(3)), ("hvm", hvm_body(HVM)), ("pvh", hvm_body(PVH)), ("arm", arm_body(12))]
}

// ------------------------------------------------------------------------------------------
// Minimal streams of every type, in every container.

fn check_minimal_state(name: &str, s: &DomainState) {
    assert_eq!((s.stream_version, s.xen_major, s.xen_minor), (3, 4, 17), "{name}");
    match name {
        "pv" => {
            assert_eq!(s.domain_type, DomainType::X86_PV);
            let info = s.pv_info.unwrap();
            assert_eq!((info.guest_width, info.pt_levels), (8, 4));
            let p2m = s.p2m.as_ref().unwrap();
            assert_eq!((p2m.end_pfn, p2m.frames.as_slice()), (1023, &PV_FRAMES[..]));
            assert_eq!(s.vcpus.len(), 1);
            assert_eq!(s.vcpus[&0].basic.as_deref(), Some(&basic64(0)[8..]));
            assert!(s.vcpus[&0].extended.is_none());
            assert_eq!(s.shared_info.as_deref(), Some(&shared_info_page()[..]));
            assert!(s.hvm_context.is_none() && s.hvm_params.is_empty() && s.cpuid.is_empty());
            let types: BTreeMap<u64, PageType> =
                [(20, PageType::L1TAB), (21, PageType::L4TAB_PINNED), (22, PageType::XTAB)].into();
            assert_eq!(s.page_types, types);
        }
        "hvm" | "pvh" => {
            let t = if name == "hvm" { DomainType::X86_HVM } else { DomainType::X86_PVH };
            assert_eq!(s.domain_type, t);
            assert_eq!(s.cpuid, [CPUID_LEAF]);
            assert_eq!(s.msrs, [MSR_ENTRY]);
            assert_eq!(s.hvm_context.as_deref(), Some(HVM_BLOB));
            assert_eq!(s.hvm_params, [(1, 0xFEFF0), (17, 0xFEFF1)]);
            assert!(s.pv_info.is_none() && s.p2m.is_none() && s.vcpus.is_empty() && s.shared_info.is_none());
            assert_eq!(s.page_types, [(9, PageType::XTAB)].into());
        }
        "arm" => {
            assert_eq!(s.domain_type, DomainType::ARM);
            assert!(s.tsc.is_none() && s.cpuid.is_empty() && s.msrs.is_empty() && s.pv_info.is_none());
            assert_eq!(s.hvm_context.as_deref(), Some(HVM_BLOB));
            assert_eq!(s.hvm_params, [(1, 0x4000)]);
            assert!(s.page_types.is_empty());
        }
        _ => unreachable!(),
    }
    if name != "arm" {
        let t = s.tsc.unwrap();
        assert_eq!((t.mode, t.khz, t.nsec, t.incarnation), TSC);
    }
    assert!(s.emulator.is_empty());
}

#[test]
fn minimal_streams_of_every_type_and_container_restore_exactly() {
    let config = b"{\"c_info\": {}}\0".to_vec();
    for (name, spec) in minimal_streams() {
        for wrap in [Wrap::None, Wrap::Libxl, Wrap::Xl(config.clone())] {
            let spec = spec.clone().wrapped(wrap.clone());
            for options in [lenient(), strict()] {
                let r = restore_ok(&spec, options);
                check_minimal_state(name, &r.state);
                assert!(r.warnings.is_empty(), "{name} {wrap:?}: {:?}", r.warnings);
                assert!(!r.stats.failed_over);
                assert_eq!(r.stats.records[&RecordType::PAGE_DATA], 1);
                assert_eq!(r.stats.records[&RecordType::END], 1);
                assert_eq!(r.stats.data_pages, spec.expected_memory().len() as u64, "{name}");
                match &wrap {
                    Wrap::None => assert_eq!((r.container.layer, r.container.xl_config.as_ref()), (Layer::Libxc, None)),
                    Wrap::Libxl => {
                        assert_eq!((r.container.layer, r.container.xl_config.as_ref()), (Layer::Libxl, None))
                    }
                    Wrap::Xl(c) => {
                        assert_eq!((r.container.layer, r.container.xl_config.as_ref()), (Layer::Xl, Some(c)))
                    }
                }
            }
        }
    }
}

#[test]
fn page_types_and_counts_of_the_minimal_pv_stream() {
    let r = restore_ok(&pv(), lenient());
    let by_type = &r.stats.pages_by_type;
    assert_eq!(by_type[&PageType::NOTAB], 6);
    assert_eq!(by_type[&PageType::L1TAB], 1);
    assert_eq!(by_type[&PageType::L4TAB_PINNED], 1);
    assert_eq!(by_type[&PageType::XTAB], 1);
    assert_eq!(r.stats.data_pages, 8);
    assert_eq!(r.stats.data_bytes, 8 * 4096);
    assert_eq!(r.stats.pfn_range, Some((0, 101)));
    let mem = r.memory.unwrap();
    assert!(mem.is_populated(20) && mem.is_populated(21) && !mem.is_populated(22));
}

#[test]
fn arm_with_16k_and_64k_pages_restores() {
    for shift in [14u16, 16] {
        let spec = arm(shift);
        let r = restore_ok(&spec, strict());
        assert_eq!(r.state.page_shift, shift);
        let mem = r.memory.unwrap();
        assert_eq!(mem.page_size(), 1 << shift);
        let mut buf = vec![0u8; 1 << shift];
        mem.read_pages(&[7], &mut buf).unwrap();
        assert_eq!(buf, page(7, 0, 1 << shift));
        assert_eq!(r.stats.data_bytes, 4 << shift);
    }
}

#[test]
fn x86_page_shift_other_than_12_and_reserved_domain_types_are_rejected() {
    for dtype in [PV, HVM, PVH] {
        for shift in [14u16, 16, 11, 44] {
            let mut spec = hvm();
            spec.dtype = dtype;
            spec.page_shift = shift;
            let e = err(&spec, lenient());
            assert!(
                matches!(format_err(&e), sr_format::Error::BadPageShift { offset: 28, found, .. } if *found == shift),
                "{e:?}"
            );
        }
    }
    for shift in [13u16, 15, 32] {
        let mut spec = arm(12);
        spec.page_shift = shift;
        assert!(matches!(format_err(&err(&spec, lenient())), sr_format::Error::BadPageShift { offset: 28, .. }));
    }
    for dtype in [0, 5, u32::MAX] {
        let mut spec = hvm();
        spec.dtype = dtype;
        let e = err(&spec, lenient());
        assert!(matches!(format_err(&e), sr_format::Error::BadDomainType { offset: 24, found } if *found == dtype));
    }
}

#[test]
fn destination_page_shift_must_match_the_stream() {
    let bytes = arm(16).bytes();
    let e = Restorer::new(lenient())
        .restore(sr_format::StreamReader::from_slice(&bytes), |_| RamMemory::new(12, 64))
        .unwrap_err();
    assert!(
        matches!(e, RestoreError::Memory { offset: 24, source: MemoryError::PageShift { shift: 12 }, .. }),
        "{e:?}"
    );
    // And a backend that cannot be created at all.
    let bytes = hvm().bytes();
    let e = Restorer::new(lenient())
        .restore(sr_format::StreamReader::from_slice(&bytes), |_| RamMemory::new(12, u64::MAX))
        .unwrap_err();
    assert!(matches!(e, RestoreError::Memory { offset: 24, source: MemoryError::PfnLimit { .. }, .. }), "{e:?}");
}

#[test]
fn image_header_rules() {
    let good = hvm().bytes();
    let with = |at: usize, bytes: &[u8]| {
        let mut b = good.clone();
        b[at..at + bytes.len()].copy_from_slice(bytes);
        b
    };
    let fmt = |b: &[u8], o: RestoreOptions| match restore_with(b, o, X86_LIMIT) {
        Err(RestoreError::Format(f)) => f,
        other => panic!("{other:?}"),
    };
    // Row 2: without the marker the stream is not recognised at all.
    assert!(matches!(fmt(&with(0, &[0xFE]), lenient()), sr_format::Error::UnknownLayer { offset: 0, .. }));
    // Row 3, 4, 5.
    assert!(matches!(
        fmt(&with(8, b"XENG"), lenient()),
        sr_format::Error::BadImageId { offset: 8, found: 0x5845_4E47 }
    ));
    for v in [0u32, 1, 4, 0xFFFF_FFFF] {
        assert!(
            matches!(fmt(&with(12, &v.to_be_bytes()), lenient()), sr_format::Error::BadVersion { offset: 12, found } if found == v)
        );
    }
    assert!(matches!(fmt(&with(16, &[0, 1]), lenient()), sr_format::Error::BigEndian { offset: 16 }));
    // Row 6: reserved bits ignored leniently, rejected strictly.
    let cases: [(usize, &[u8], u64); 4] =
        [(16, &[0, 2], 16), (18, &[0, 9], 18), (20, &[0, 0, 0, 1], 20), (30, &[1, 0], 30)];
    for (at, bytes, field_at) in cases {
        let b = with(at, bytes);
        let r = restore_with(&b, lenient(), X86_LIMIT).unwrap();
        assert_memory(r.memory.as_ref().unwrap(), &hvm().expected_memory());
        assert!(matches!(fmt(&b, strict()), sr_format::Error::ReservedNonZero { offset, .. } if offset == field_at));
    }
}

// ------------------------------------------------------------------------------------------
// v2 / v3 and STATIC_DATA_END.

#[test]
fn v3_memory_before_static_data_end_is_rejected() {
    for (name, spec) in all_bodies() {
        let spec = spec.without(SDE).end();
        let built = spec.build();
        let (index, rtype) =
            if name == "pv" { (spec.index_of(P2M_FRAMES), P2M_FRAMES) } else { (spec.index_of(PAGE_DATA), PAGE_DATA) };
        assert_rejected(&err(&spec, lenient()), &built, index, rtype, "STATIC_DATA_END");
    }
    // PV: SDE after P2M_FRAMES but before PAGE_DATA still fails at P2M_FRAMES.
    let spec = pv_body(3).without(SDE).insert_before(PAGE_DATA, SDE, []).end();
    assert_rejected(&err(&spec, lenient()), &spec.build(), spec.index_of(P2M_FRAMES), P2M_FRAMES, "STATIC_DATA_END");
}

#[test]
fn v2_infers_static_data_end_at_p2m_frames_for_pv_and_page_data_for_hvm() {
    // PV: inferred at P2M_FRAMES; an explicit SDE after it is a second one.
    let spec = pv_body(2).without(SDE).end();
    let r = restore_ok(&spec, lenient());
    assert_eq!(r.state.stream_version, 2);
    assert!(r.warnings.is_empty());
    restore_ok(&spec, strict());
    let late = pv_body(2).without(SDE).insert_before(PAGE_DATA, SDE, []).end();
    assert_rejected(&err(&late, lenient()), &late.build(), late.index_of(SDE), SDE, "second STATIC_DATA_END");

    // HVM-like: inferred at PAGE_DATA (CPU policies stay before it, accepted in v2 leniently).
    for (name, mut spec) in all_hvm_like() {
        spec.version = 2;
        let spec = spec.without(SDE).end();
        let r = restore_ok(&spec, lenient());
        assert_eq!(r.state.stream_version, 2);
        if name == "arm" {
            assert!(r.warnings.is_empty(), "{:?}", r.warnings);
        }
        let late = spec.clone().insert(spec.index_of(PAGE_DATA) + 1, SDE, []);
        assert_rejected(&err(&late, lenient()), &late.build(), late.index_of(SDE), SDE, "second STATIC_DATA_END");
    }
}

#[test]
fn explicit_static_data_end_and_cpu_policies_in_v2_are_lenient_only() {
    for (name, mut spec) in all_bodies() {
        spec.version = 2;
        let spec = spec.end();
        let r = restore_ok(&spec, lenient());
        assert!(warned(&r, "STATIC_DATA_END in a v2 stream"), "{name}: {:?}", r.warnings);
        // Strict rejects the first v3-only record.
        let first = spec.recs().position(|(t, _)| matches!(t, SDE | CPUID | MSR)).unwrap();
        let t = spec.recs().nth(first).unwrap().0;
        assert_rejected(&err(&spec, strict()), &spec.build(), first, t, "v2 stream");
    }
    let mut spec = hvm();
    spec.version = 2;
    let r = restore_ok(&spec, lenient());
    assert!(warned(&r, "X86_CPUID_POLICY in a v2 stream") && warned(&r, "X86_MSR_POLICY in a v2 stream"));
}

#[test]
fn a_second_static_data_end_is_rejected() {
    for (_, spec) in all_bodies() {
        let spec = spec.insert_before(SDE, SDE, []).end();
        assert_rejected(&err(&spec, lenient()), &spec.build(), spec.index_of(SDE) + 1, SDE, "second STATIC_DATA_END");
    }
}

// ------------------------------------------------------------------------------------------
// Record types.

#[test]
fn unknown_mandatory_records_fail_and_unknown_optional_ones_are_skipped() {
    for (name, spec) in all_bodies() {
        for t in [0x13, 0x100, 0x7FFF_FFFF] {
            let s = spec.clone().rec(t, [1, 2, 3]).end();
            assert_rejected(&err(&s, lenient()), &s.build(), s.index_of(t), t, "mandatory record");
        }
        for t in [0x8000_0000u32, 0x8000_0013, 0xFFFF_FFFF] {
            let s = spec.clone().rec(t, [1, 2, 3, 4, 5]).end();
            let r = restore_ok(&s, lenient());
            assert!(warned(&r, &format!("unknown optional record {t:#x} skipped")), "{name}: {:?}", r.warnings);
            assert_eq!(r.stats.records[&RecordType(t)], 1);
            assert_rejected(&err(&s, strict()), &s.build(), s.index_of(t), t, "unknown record type");
        }
    }
}

#[test]
fn toolstack_and_dirty_pfn_list_are_rejected() {
    for (_, spec) in all_bodies() {
        for (t, body) in [(TOOLSTACK, vec![1, 2, 3]), (DIRTY_PFN_LIST, 7u64.to_le_bytes().to_vec())] {
            let s = spec.clone().rec(t, body).end();
            assert_rejected(&err(&s, lenient()), &s.build(), s.index_of(t), t, "forward stream");
        }
    }
}

#[test]
fn records_of_the_other_guest_kind_are_rejected() {
    let pv_records: Vec<(u32, Vec<u8>)> = vec![
        (PV_INFO, pv_info(8, 4)),
        (P2M_FRAMES, p2m_frames(0, 1023, &PV_FRAMES)),
        (VCPU_BASIC, vcpu(0, 5168)),
        (VCPU_EXTENDED, vcpu(0, 64)),
        (VCPU_XSAVE, vcpu(0, 64)),
        (VCPU_MSRS, vcpu(0, 32)),
        (SHARED_INFO, shared_info_page()),
    ];
    for (name, spec) in all_hvm_like() {
        for (t, body) in &pv_records {
            let s = spec.clone().rec(*t, body.clone()).end();
            let e = err(&s, lenient());
            assert_rejected(&e, &s.build(), s.index_of(*t), *t, "not handled");
            assert!(e.to_string().contains(if name == "arm" { "ARM" } else { "x86 " }), "{e}");
        }
    }
    for (t, body) in [(HVM_CONTEXT, HVM_BLOB.to_vec()), (HVM_PARAMS, hvm_params(&[(1, 2)]))] {
        let s = pv_body(3).rec(t, body).end();
        assert_rejected(&err(&s, lenient()), &s.build(), s.index_of(t), t, "not handled by the x86 PV restore");
    }
    for (t, body) in
        [(TSC_INFO, tsc(TSC.0, TSC.1, TSC.2, TSC.3)), (CPUID, cpuid(&[CPUID_LEAF])), (MSR, msrs(&[MSR_ENTRY]))]
    {
        let s = arm_body(12).rec(t, body).end();
        assert_rejected(&err(&s, lenient()), &s.build(), s.index_of(t), t, "not handled by the ARM restore");
    }
}

// ------------------------------------------------------------------------------------------
// x86 PV rows 37-46.

#[test]
fn pv_info_rules() {
    let twice = pv_body(3).insert_before(SDE, PV_INFO, pv_info(8, 4)).end();
    assert_rejected(&err(&twice, lenient()), &twice.build(), 1, PV_INFO, "second X86_PV_INFO");

    let short = pv_body(3).replace(PV_INFO, [8, 4, 0, 0, 0, 0, 0]).end();
    assert_bad_length(&err(&short, lenient()), &short.build(), 0, PV_INFO);

    for (w, l) in [(4, 4), (8, 3), (0, 0), (2, 2)] {
        let bad = pv_body(3).replace(PV_INFO, pv_info(w, l)).end();
        let e = err(&bad, lenient());
        assert!(
            matches!(format_err(&e), sr_format::Error::BadPvInfo { offset: 40, index: 0, width, levels } if (*width, *levels) == (w, l)),
            "{e:?}"
        );
    }

    let long = pv_body(3).replace(PV_INFO, [8, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]).end();
    let r = restore_ok(&long, lenient());
    assert!(warned(&r, "X86_PV_INFO longer than 8 bytes"));
    assert_rejected(&err(&long, strict()), &long.build(), 0, PV_INFO, "longer than 8");
}

#[test]
fn a_32bit_pv_guest_has_1024_entries_per_p2m_frame_and_a_2800_byte_context() {
    let spec = |basic_len| {
        let body = if basic_len == 2800 { basic32(0, 21) } else { vcpu(0, basic_len) };
        pv32_body().rec(VCPU_BASIC, body).end()
    };
    let r = restore_ok(&spec(2800), strict());
    assert_eq!(r.state.pv_info.unwrap().guest_width, 4);
    assert_eq!(r.state.p2m.as_ref().unwrap().frames, [100]);
    for bad in [5168, 2799, 2801] {
        let s = spec(bad);
        assert_rejected(&err(&s, lenient()), &s.build(), 4, VCPU_BASIC, "32-bit guest's is 2800");
    }
    // Two frames for a 32-bit guest covering 0..=1023 is a frame-count mismatch.
    let two = spec(2800).replace(P2M_FRAMES, p2m_frames(0, 1023, &[100, 101]));
    assert_bad_length(&err(&two, lenient()), &two.build(), 2, P2M_FRAMES);
}

#[test]
fn p2m_frames_rules() {
    // Before PV_INFO.
    let spec = pv_body(3).without(PV_INFO).end();
    assert_rejected(&err(&spec, lenient()), &spec.build(), 1, P2M_FRAMES, "before X86_PV_INFO");
    // Length < 8, start > end, frame count.
    let i = pv_body(3).index_of(P2M_FRAMES);
    let s = pv_body(3).replace(P2M_FRAMES, [0, 0, 0, 0]).end();
    assert_bad_length(&err(&s, lenient()), &s.build(), i, P2M_FRAMES);
    let s = pv_body(3).replace(P2M_FRAMES, p2m_frames(513, 512, &[100])).end();
    let e = err(&s, lenient());
    assert!(matches!(format_err(&e), sr_format::Error::BadP2mRange { start: 513, end: 512, .. }), "{e:?}");
    for frames in [&[100][..], &[100, 101, 102]] {
        let s = pv_body(3).replace(P2M_FRAMES, p2m_frames(0, 1023, frames)).end();
        assert_bad_length(&err(&s, lenient()), &s.build(), i, P2M_FRAMES);
    }
    let s = pv_body(3).edit(P2M_FRAMES, |b| b.push(0)).end();
    assert_bad_length(&err(&s, lenient()), &s.build(), i, P2M_FRAMES);
    // end_pfn beyond the destination.
    let s = pv_body(3).replace(P2M_FRAMES, p2m_frames(0, 4096, &[100, 101, 102, 103, 104, 105, 106, 107, 108])).end();
    let e = err(&s, lenient());
    assert!(matches!(e, RestoreError::BoundReached { index, needed: 4097, limit: X86_LIMIT, .. } if index == i as u64));
    assert!(
        e.to_string().ends_with(
            "pfn 0x1000 is beyond the destination's pfn limit 0x1000 (guest-physical span 16388 KiB, bound 16 MiB)"
        ),
        "{e}"
    );
}

#[test]
fn a_second_p2m_frames_with_a_larger_end_grows_the_p2m() {
    let spec = pv_body(3)
        .insert_before(TSC_INFO, P2M_FRAMES, p2m_frames(1024, 2047, &[102, 103]))
        .insert_before(TSC_INFO, PAGE_DATA, page_data(&[e(102, NOTAB), e(103, NOTAB), e(1500, NOTAB)], 4096))
        .end();
    let r = restore_ok(&spec, strict());
    let p2m = r.state.p2m.as_ref().unwrap();
    assert_eq!((p2m.end_pfn, p2m.frames.as_slice()), (2047, &[100, 101, 102, 103][..]));
    // Without the growth, pfn 1500 is beyond max_pfn.
    let no_growth =
        spec.clone().without(P2M_FRAMES).insert_before(PAGE_DATA, P2M_FRAMES, p2m_frames(0, 1023, &PV_FRAMES));
    let pd = no_growth.recs().enumerate().filter(|(_, (t, _))| *t == PAGE_DATA).nth(1).unwrap().0;
    let e = err(&no_growth, lenient());
    assert!(
        matches!(e, RestoreError::PfnOutOfRange { pfn: 1500, limit: 1024, entry: 2, index, .. } if index == pd as u64),
        "{e:?}"
    );
    // A later record covering a lower part keeps max_pfn.
    let shrink = spec.insert_before(END, P2M_FRAMES, p2m_frames(0, 511, &[100]));
    let r = restore_ok(&shrink, lenient());
    assert_eq!(r.state.p2m.as_ref().unwrap().end_pfn, 2047);
}

#[test]
fn shared_info_rules() {
    let s = pv_body(3).insert(0, SHARED_INFO, shared_info_page()).end();
    assert_rejected(&err(&s, lenient()), &s.build(), 0, SHARED_INFO, "before X86_PV_INFO");
    for len in [0, 4095, 4097, 8192] {
        let s = pv_body(3).replace(SHARED_INFO, vec![1u8; len]).end();
        assert_bad_length(&err(&s, lenient()), &s.build(), s.index_of(SHARED_INFO), SHARED_INFO);
    }
}

#[test]
fn vcpu_records_before_pv_info_are_rejected() {
    for t in [VCPU_BASIC, VCPU_EXTENDED, VCPU_XSAVE, VCPU_MSRS] {
        let s = pv_body(3).insert(0, t, vcpu(0, 16)).end();
        assert_rejected(&err(&s, lenient()), &s.build(), 0, t, "before X86_PV_INFO");
    }
}

#[test]
fn empty_vcpu_blobs_are_skipped_before_the_id_check() {
    for t in [VCPU_BASIC, VCPU_EXTENDED, VCPU_XSAVE, VCPU_MSRS] {
        let s = pv_body(3).rec(t, vcpu(99_999, 0)).end();
        let r = restore_ok(&s, strict());
        assert!(warned(&r, "empty vcpu blob skipped"));
        assert_eq!(r.state.vcpus.len(), 1, "the empty blob made no vcpu");
        // Shorter than the vcpu header.
        let s = pv_body(3).rec(t, [0u8; 7]).end();
        assert_bad_length(&err(&s, lenient()), &s.build(), s.recs().count() - 2, t);
    }
}

#[test]
fn vcpu_id_must_not_exceed_max_vcpu_id() {
    let opts = RestoreOptions { max_vcpu_id: 3, ..lenient() };
    let ok = pv_body(3).rec(VCPU_BASIC, basic64(3)).end();
    let r = restore_ok(&ok, opts.clone());
    assert_eq!(r.state.vcpus.keys().copied().collect::<Vec<_>>(), [0, 3]);
    for t in [VCPU_BASIC, VCPU_EXTENDED, VCPU_XSAVE, VCPU_MSRS] {
        let s = pv_body(3).rec(t, vcpu(4, 32)).end();
        let i = s.recs().count() - 2;
        assert_rejected(&err(&s, opts.clone()), &s.build(), i, t, "vcpu_id 4 > max_vcpu_id 3");
    }
    // The default bound is 4095.
    let s = pv_body(3).rec(VCPU_BASIC, vcpu(4096, 5168)).end();
    let i = s.recs().count() - 2;
    assert_rejected(&err(&s, lenient()), &s.build(), i, VCPU_BASIC, "vcpu_id 4096");
}

#[test]
fn vcpu_blob_sizes() {
    // BASIC must be exactly the context size of a 64-bit guest.
    for bad in [5167, 5169, 2800, 1] {
        let s = pv_body(3).replace(VCPU_BASIC, vcpu(0, bad)).end();
        assert_rejected(&err(&s, lenient()), &s.build(), s.index_of(VCPU_BASIC), VCPU_BASIC, "64-bit guest's is 5168");
    }
    let cases = [
        (VCPU_EXTENDED, 128, 129, "extended context of 129 bytes"),
        (VCPU_XSAVE, 16, 15, "xsave blob of 15 bytes"),
        (VCPU_MSRS, 32, 24, "MSR blob of 24 bytes"),
    ];
    for (t, good, bad, why) in cases {
        let s = pv_body(3).rec(t, vcpu_rec(t, 0, good)).end();
        let r = restore_ok(&s, strict());
        let v = &r.state.vcpus[&0];
        let stored = match t {
            VCPU_EXTENDED => &v.extended,
            VCPU_XSAVE => &v.xsave,
            _ => &v.msrs,
        };
        assert_eq!(stored.as_deref(), Some(&vcpu_rec(t, 0, good)[8..]));
        let s = pv_body(3).rec(t, vcpu(0, bad)).end();
        assert_rejected(&err(&s, lenient()), &s.build(), s.index_of(t), t, why);
    }
    // A later blob for the same vcpu replaces the earlier one.
    let mut later = basic64(0);
    later[100] ^= 0xFF;
    let r = restore_ok(&pv_body(3).rec(VCPU_BASIC, later.clone()).end(), lenient());
    assert_eq!(r.state.vcpus[&0].basic.as_deref(), Some(&later[8..]));
}

#[test]
fn pv_end_requires_vcpu0_basic() {
    for spec in [pv_body(3).replace(VCPU_BASIC, basic64(1)).end(), pv_body(3).without(VCPU_BASIC).end()] {
        let built = spec.build();
        let end = *built.recs.last().unwrap();
        let e = err(&spec, lenient());
        assert!(
            matches!(&e, RestoreError::Incomplete { offset, what } if *offset == end && what.contains("vcpu 0")),
            "{e:?}"
        );
    }
    // Only EXTENDED for vcpu 0 is not enough either.
    let spec = pv_body(3).without(VCPU_BASIC).rec(VCPU_EXTENDED, vcpu_rec(VCPU_EXTENDED, 0, 64)).end();
    assert!(matches!(err(&spec, lenient()), RestoreError::Incomplete { .. }));
}

#[test]
fn pv_end_checks_every_p2m_frame() {
    let cases: [(&[u64], &str); 5] = [
        (&[100, 200], "frame 1 at pfn 0xc8 was never populated"),
        (&[20, 101], "frame 0 at pfn 0x14 has page type L1TAB"),
        (&[100, 21], "has page type L4TAB|PINNED"),
        (&[100, 22], "has page type XTAB"),
        (&[100, 2000], "beyond max_pfn"),
    ];
    for (frames, why) in cases {
        let spec = pv_body(3).replace(P2M_FRAMES, p2m_frames(0, 1023, frames)).end();
        let end = *spec.build().recs.last().unwrap();
        for options in [lenient(), strict()] {
            let e = err(&spec, options);
            assert!(
                matches!(&e, RestoreError::Incomplete { offset, what } if *offset == end && what.contains(why)),
                "{frames:?}: {e:?}"
            );
        }
        assert!(matches!(verify_bytes(&spec.bytes(), lenient()), Err(RestoreError::Incomplete { .. })));
    }
    // An XALLOC frame is populated but not NOTAB.
    let spec = pv_body(3)
        .replace(P2M_FRAMES, p2m_frames(0, 1023, &[100, 300]))
        .insert_before(TSC_INFO, PAGE_DATA, page_data(&[e(300, XALLOC)], 4096))
        .end();
    assert!(matches!(err(&spec, lenient()), RestoreError::Incomplete { what, .. } if what.contains("XALLOC")));
}

// Row 45: the frames a vcpu context names.

/// A 32-bit PV stream without END: PV_INFO(4,3), SDE, P2M_FRAMES 0..=1023 (one frame, pfn
/// 100), PAGE_DATA (pfns 0..4, 100, a pinned L3 table at 21).
fn pv32_body() -> Spec {
    let mut entries = notab(0..4, 0);
    entries.extend([e(100, NOTAB), e(21, L3TAB_PINNED)]);
    Spec::new(3, PV, 12)
        .rec(PV_INFO, pv_info(4, 3))
        .rec(SDE, [])
        .rec(P2M_FRAMES, p2m_frames(0, 1023, &[100]))
        .pages(&entries)
}

/// A 32-bit BASIC body for vcpu `id` with start_info pfn 2, one GDT frame at pfn 3 and CR3
/// naming `cr3`.
fn basic32(id: u32, cr3: u64) -> Vec<u8> {
    basic(id, 4, &Frames { cr3, ..PV_VCPU_FRAMES })
}

/// The minimal PV stream with vcpu 0's context naming `f`.
fn pv_with(f: Frames) -> Spec {
    pv_body(3).replace(VCPU_BASIC, basic(0, 8, &f)).end()
}

/// Asserts that restore (lenient and strict) and verify fail at END with `Incomplete`
/// naming exactly `why`.
#[track_caller]
fn assert_vcpu_rejected(spec: &Spec, why: &str) {
    let built = spec.build();
    let end = *built.recs.last().unwrap();
    let errors = [err(spec, lenient()), err(spec, strict()), verify_bytes(&built.bytes, lenient()).unwrap_err()];
    for e in errors {
        assert!(
            matches!(&e, RestoreError::Incomplete { offset, what } if *offset == end && what == why),
            "{why}: {e:?}"
        );
        assert!(e.to_string().contains(why), "{e}");
    }
}

#[test]
fn pv_end_checks_vcpu0_start_info() {
    let f = PV_VCPU_FRAMES;
    let cases = [
        (1024, "vcpu 0: start_info pfn 0x400 is beyond max_pfn 0x3ff"),
        (20, "vcpu 0: start_info pfn 0x14 has page type L1TAB, not NOTAB"),
        (22, "vcpu 0: start_info pfn 0x16 has page type XTAB, not NOTAB"),
        (500, "vcpu 0: start_info pfn 0x1f4 was never populated"),
    ];
    for (pfn, why) in cases {
        assert_vcpu_rejected(&pv_with(Frames { start_info: pfn, ..f }), why);
    }
    // Any populated NOTAB pfn will do, the p2m frames included.
    for pfn in [0, 3, 100] {
        restore_ok(&pv_with(Frames { start_info: pfn, ..f }), strict());
    }
    // Only vcpu 0 has a start_info frame.
    let s = pv_body(3).rec(VCPU_BASIC, basic(1, 8, &Frames { start_info: u64::MAX, ..f })).end();
    restore_ok(&s, strict());
}

#[test]
fn pv_end_checks_the_gdt() {
    let f = PV_VCPU_FRAMES;
    assert_vcpu_rejected(&pv_with(Frames { gdt_ents: 7169, ..f }), "vcpu 0: gdt_ents 7169 > 7168");
    assert_vcpu_rejected(&pv_with(Frames { gdt_ents: u64::MAX, ..f }), "vcpu 0: gdt_ents 18446744073709551615 > 7168");
    // 7168 entries use 14 frames; the two slots beyond are not looked at.
    let mut gdt = [3; 16];
    gdt[14..].fill(u64::MAX);
    restore_ok(&pv_with(Frames { gdt_ents: 7168, gdt, ..f }), strict());
    // No entries, no frames.
    restore_ok(&pv_with(Frames { gdt_ents: 0, gdt: [u64::MAX; 16], ..f }), strict());
    // 512 entries use one frame, 513 two.
    let mut gdt = [3; 16];
    gdt[1] = 21;
    restore_ok(&pv_with(Frames { gdt_ents: 512, gdt, ..f }), strict());
    let why = "vcpu 0: GDT frame 1 pfn 0x15 has page type L4TAB|PINNED, not NOTAB";
    assert_vcpu_rejected(&pv_with(Frames { gdt_ents: 513, gdt, ..f }), why);
    let cases = [
        (2000, "vcpu 0: GDT frame 0 pfn 0x7d0 is beyond max_pfn 0x3ff"),
        (20, "vcpu 0: GDT frame 0 pfn 0x14 has page type L1TAB, not NOTAB"),
        (900, "vcpu 0: GDT frame 0 pfn 0x384 was never populated"),
    ];
    for (pfn, why) in cases {
        let mut gdt = f.gdt;
        gdt[0] = pfn;
        assert_vcpu_rejected(&pv_with(Frames { gdt, ..f }), why);
    }
}

#[test]
fn pv_end_checks_cr3_and_cr1() {
    let f = PV_VCPU_FRAMES;
    for (name, pick) in [("CR3", false), ("CR1", true)] {
        let with = |pfn: u64| if pick { Frames { cr1: Some(pfn), ..f } } else { Frames { cr3: pfn, ..f } };
        let cases = [
            (2000, "pfn 0x7d0 is beyond max_pfn 0x3ff"),
            (20, "pfn 0x14 has page type L1TAB, not the top-level L4TAB"),
            (2, "pfn 0x2 has page type NOTAB, not the top-level L4TAB"),
            (22, "pfn 0x16 has page type XTAB, not the top-level L4TAB"),
        ];
        for (pfn, why) in cases {
            assert_vcpu_rejected(&pv_with(with(pfn)), &format!("vcpu 0: {name} {why}"));
        }
        // Pinned or not.
        let unpinned = pv_body(3).insert_before(VCPU_BASIC, PAGE_DATA, page_data(&[e(24, L4TAB)], 4096));
        restore_ok(&unpinned.replace(VCPU_BASIC, basic(0, 8, &with(24))).end(), strict());
    }
    // CR1 without bit 0 names no table, whatever its frame bits say.
    let s = pv_body(3).edit(VCPU_BASIC, |b| b[8 + 4992..8 + 5000].copy_from_slice(&0xFFFF_F000u64.to_le_bytes())).end();
    restore_ok(&s, strict());
    // CR3's low 12 bits are flags, not frame bits.
    let s = pv_body(3).edit(VCPU_BASIC, |b| b[8 + 5008..8 + 5016].copy_from_slice(&0x15FFFu64.to_le_bytes())).end();
    restore_ok(&s, strict());
}

#[test]
fn pv_end_checks_every_vcpu_and_names_it() {
    let bad = Frames { cr3: 20, ..PV_VCPU_FRAMES };
    let s = pv_body(3).rec(VCPU_BASIC, basic64(1)).rec(VCPU_BASIC, basic(2, 8, &bad)).end();
    assert_vcpu_rejected(&s, "vcpu 2: CR3 pfn 0x14 has page type L1TAB, not the top-level L4TAB");
    // A later, good context for the vcpu replaces the bad one.
    let s = pv_body(3).rec(VCPU_BASIC, basic(2, 8, &bad)).rec(VCPU_BASIC, basic64(2)).end();
    let r = restore_ok(&s, strict());
    assert_eq!(r.state.vcpus.keys().copied().collect::<Vec<_>>(), [0, 2]);
    // A vcpu with only an EXTENDED context has nothing to check.
    let s = pv_body(3).rec(VCPU_EXTENDED, vcpu_rec(VCPU_EXTENDED, 5, 64)).end();
    restore_ok(&s, strict());
}

#[test]
fn pv_end_decodes_a_32bit_extended_cr3() {
    // The 32-bit context packs CR3 as the pfn rotated left by 12 within 32 bits.
    let r = restore_ok(&pv32_body().rec(VCPU_BASIC, basic32(0, 21)).end(), strict());
    assert_eq!(r.state.pv_info.unwrap().pt_levels, 3);
    // Low bits of the word are the high bits of the pfn: 0x15001 is pfn 0x100015, not 0x15.
    let s = pv32_body().rec(VCPU_BASIC, basic32(0, 21)).edit(VCPU_BASIC, |b| b[8 + 2728] = 1).end();
    assert_vcpu_rejected(&s, "vcpu 0: CR3 pfn 0x100015 is beyond max_pfn 0x3ff");
    // Three levels: the top-level table is an L3.
    let s = pv32_body().rec(VCPU_BASIC, basic32(0, 2)).end();
    assert_vcpu_rejected(&s, "vcpu 0: CR3 pfn 0x2 has page type NOTAB, not the top-level L3TAB");
    // A 32-bit context's CR1 is not converted, so not checked.
    let s = pv32_body()
        .rec(VCPU_BASIC, basic32(0, 21))
        .edit(VCPU_BASIC, |b| b[8 + 2720..8 + 2724].copy_from_slice(&0xFFFF_F001u32.to_le_bytes()))
        .end();
    restore_ok(&s, strict());
    // The 32-bit offsets: start_info in edx, GDT frames of 4 bytes.
    let f = Frames { cr3: 21, ..PV_VCPU_FRAMES };
    let s = pv32_body().rec(VCPU_BASIC, basic(0, 4, &Frames { start_info: 21, ..f })).end();
    assert_vcpu_rejected(&s, "vcpu 0: start_info pfn 0x15 has page type L3TAB|PINNED, not NOTAB");
    let mut gdt = f.gdt;
    gdt[1] = 21;
    restore_ok(&pv32_body().rec(VCPU_BASIC, basic(0, 4, &Frames { gdt_ents: 512, gdt, ..f })).end(), strict());
    let s = pv32_body().rec(VCPU_BASIC, basic(0, 4, &Frames { gdt_ents: 513, gdt, ..f })).end();
    assert_vcpu_rejected(&s, "vcpu 0: GDT frame 1 pfn 0x15 has page type L3TAB|PINNED, not NOTAB");
}

#[test]
fn pv_page_data_needs_p2m_frames_first() {
    // Hazard 2.9: PAGE_DATA before any P2M_FRAMES (max_pfn unknown) is a clean rejection.
    let spec =
        pv_body(3).without(P2M_FRAMES).insert_before(TSC_INFO, P2M_FRAMES, p2m_frames(0, 1023, &PV_FRAMES)).end();
    let built = spec.build();
    let bytes = built.bytes.clone();
    let mem = RamMemory::new(12, X86_LIMIT).unwrap();
    let err0 = Restorer::new(lenient()).restore(sr_format::StreamReader::from_slice(&bytes), |_| Ok(&mem)).unwrap_err();
    assert_rejected(&err0, &built, spec.index_of(PAGE_DATA), PAGE_DATA, "before X86_PV_P2M_FRAMES");
    assert_eq!(mem.populated().count_ones(), 0, "nothing was written");
    // Also for pfn 0 alone, and with an end_pfn 0 p2m later on.
    let spec = Spec::new(3, PV, 12).rec(PV_INFO, pv_info(8, 4)).rec(SDE, []).pages(&[e(0, NOTAB)]).end();
    assert_rejected(&err(&spec, lenient()), &spec.build(), 2, PAGE_DATA, "before X86_PV_P2M_FRAMES");
}

#[test]
fn pv_p2m_with_end_pfn_0_is_handled() {
    // Hazard 2.9: end_pfn 0 with the local p2m never sized. A one-pfn guest cannot be valid
    // (pfn 0 is its p2m frame, NOTAB, and its L4 table at once), so the stream runs to END
    // and only the vcpu context's CR3 check (row 45) fails there.
    let zero = Frames { start_info: 0, gdt_ents: 0, gdt: [0; 16], cr3: 0, cr1: None };
    let spec = Spec::new(3, PV, 12)
        .rec(PV_INFO, pv_info(8, 4))
        .rec(SDE, [])
        .rec(P2M_FRAMES, p2m_frames(0, 0, &[0]))
        .pages(&[e(0, NOTAB)])
        .rec(VCPU_BASIC, basic(0, 8, &zero))
        .end();
    let end = *spec.build().recs.last().unwrap();
    for e in [err(&spec, strict()), verify_bytes(&spec.bytes(), strict()).unwrap_err()] {
        assert!(
            matches!(&e, RestoreError::Incomplete { offset, what } if *offset == end
                && what == "vcpu 0: CR3 pfn 0x0 has page type NOTAB, not the top-level L4TAB"),
            "{e:?}"
        );
    }
    let spec = spec.edit(PAGE_DATA, |b| *b = page_data(&[e(1, NOTAB)], 4096));
    assert!(matches!(err(&spec, lenient()), RestoreError::PfnOutOfRange { pfn: 1, limit: 1, .. }));
}

#[test]
fn pv_first_p2m_frames_not_starting_at_0_leaves_no_uninitialised_frames() {
    // Hazard 2.9: the first growth must not leave frame slots uninitialised; the unsent
    // frame 0 is reported at END instead of being read as garbage.
    let spec = pv_body(3).replace(P2M_FRAMES, p2m_frames(512, 1023, &[101])).end();
    let r = verify_bytes(&spec.bytes(), lenient());
    assert!(matches!(r, Err(RestoreError::Incomplete { ref what, .. }) if what.contains("frame 0")), "{r:?}");
}

#[test]
fn pv_page_tables_naming_pfns_not_yet_sent_are_accepted_verbatim() {
    // Accepted on purpose: an L1 table whose present PTEs name pfns that arrive later (or
    // never). Page tables are stored as sent (pfn-based, no localisation in this restorer).
    let mut l1 = vec![0u8; 4096];
    for (i, pfn) in [700u64, 701, 5, 1023].iter().enumerate() {
        l1[i * 8..i * 8 + 8].copy_from_slice(&(pfn << 12 | 0x67).to_le_bytes());
    }
    let mut body = page_data(&[e(30, L1TAB)], 4096);
    body[16..].copy_from_slice(&l1);
    let spec = pv_body(3)
        .insert_before(TSC_INFO, PAGE_DATA, body)
        .insert_before(TSC_INFO, PAGE_DATA, page_data(&[e(700, NOTAB)], 4096))
        .end();
    let r = restore(&spec, strict()).unwrap();
    let mem = r.memory.unwrap();
    let mut buf = vec![0u8; 4096];
    mem.read_pages(&[30], &mut buf).unwrap();
    assert_eq!(buf, l1);
    assert_eq!(r.state.page_types.get(&30), Some(&PageType::L1TAB));
    assert!(mem.is_populated(700) && !mem.is_populated(701));
}

#[test]
fn pv_pfn_beyond_max_pfn_is_rejected() {
    let spec = pv_body(3).insert_before(TSC_INFO, PAGE_DATA, page_data(&[e(1023, NOTAB)], 4096)).end();
    restore_ok(&spec, lenient());
    let spec = pv_body(3).insert_before(TSC_INFO, PAGE_DATA, page_data(&[e(5, NOTAB), e(1024, XTAB)], 4096)).end();
    let index = spec.recs().enumerate().filter(|(_, (t, _))| *t == PAGE_DATA).nth(1).unwrap().0;
    let e = err(&spec, lenient());
    assert!(
        matches!(e, RestoreError::PfnOutOfRange { index: i, entry: 1, pfn: 1024, limit: 1024, .. } if i == index as u64),
        "{e:?}"
    );
    assert_eq!(e.offset(), spec.build().off(index));
}

// ------------------------------------------------------------------------------------------
// HVM, PVH, ARM records.

#[test]
fn hvm_like_streams_need_an_hvm_context_at_end() {
    for (name, spec) in all_hvm_like() {
        let spec = spec.without(HVM_CONTEXT).end();
        let end = *spec.build().recs.last().unwrap();
        for options in [lenient(), strict()] {
            let e = err(&spec, options);
            assert!(
                matches!(&e, RestoreError::Incomplete { offset, what } if *offset == end && what.contains("HVM_CONTEXT")),
                "{name}: {e:?}"
            );
        }
    }
}

#[test]
fn hvm_context_must_not_be_empty_and_the_latest_one_wins() {
    for (_, spec) in all_hvm_like() {
        let s = spec.clone().replace(HVM_CONTEXT, []).end();
        assert_bad_length(&err(&s, lenient()), &s.build(), s.index_of(HVM_CONTEXT), HVM_CONTEXT);
        let s = spec.rec(HVM_CONTEXT, hvm_blob(2)).end();
        let r = restore_ok(&s, strict());
        assert_eq!(r.state.hvm_context.as_deref(), Some(&hvm_blob(2)[..]));
    }
}

#[test]
fn hvm_params_rules() {
    for (_, spec) in all_hvm_like() {
        let i = spec.index_of(HVM_PARAMS);
        // Count 0: ignored with a warning.
        let s = spec.clone().replace(HVM_PARAMS, hvm_params(&[])).end();
        let r = restore_ok(&s, strict());
        assert!(r.state.hvm_params.is_empty());
        assert!(warned(&r, "HVM_PARAMS with count 0"));
        // PAE_ENABLED dropped; later values replace earlier ones in place.
        let s = spec.clone().replace(HVM_PARAMS, hvm_params(&[(4, 1), (1, 5), (2, 6), (1, 7)])).end();
        let r = restore_ok(&s, strict());
        assert_eq!(r.state.hvm_params, [(1, 7), (2, 6)]);
        assert!(warned(&r, "PAE_ENABLED"));
        // Lengths.
        let mut short = hvm_params(&[(1, 2), (3, 4)]);
        short.truncate(8 + 16);
        for body in [vec![1, 0, 0, 0], short, {
            let mut long = hvm_params(&[(1, 2)]);
            long.extend_from_slice(&[0; 8]);
            long
        }] {
            let s = spec.clone().replace(HVM_PARAMS, body).end();
            assert_bad_length(&err(&s, lenient()), &s.build(), i, HVM_PARAMS);
        }
    }
}

#[test]
fn tsc_info_must_be_24_bytes() {
    for (_, spec) in x86_bodies() {
        for len in [0usize, 16, 23, 25, 32] {
            let mut body = tsc(1, 2, 3, 4);
            body.resize(len, 0);
            let s = spec.clone().replace(TSC_INFO, body).end();
            assert_bad_length(&err(&s, lenient()), &s.build(), s.index_of(TSC_INFO), TSC_INFO);
        }
    }
}

#[test]
fn cpu_policy_lengths() {
    for (_, spec) in x86_bodies() {
        for (t, len) in [(CPUID, 0usize), (CPUID, 25), (CPUID, 23), (MSR, 0), (MSR, 24), (MSR, 8)] {
            let s = spec.clone().insert(0, t, vec![0u8; len]).end();
            assert_bad_length(&err(&s, lenient()), &s.build(), 0, t);
        }
        // Two leaves, two MSRs (all a Xen 4.17 MSR policy holds).
        let leaf1 = [1, u32::MAX, 2, 3, 4, 5];
        let s = spec
            .clone()
            .insert(0, CPUID, cpuid(&[CPUID_LEAF, leaf1]))
            .insert(0, MSR, msrs(&[MSR_ENTRY, (0xce, 0, 2)]))
            .end();
        let r = restore_ok(&s, strict());
        if spec.dtype == PV {
            assert_eq!(r.state.cpuid, [CPUID_LEAF, leaf1]);
            assert_eq!(r.state.msrs.len(), 2);
        }
        // A policy after SDE is stored (Xen never applies it) with a warning.
        let s = spec.clone().rec(CPUID, cpuid(&[[7, 0, 1, 1, 1, 1]])).end();
        let r = restore_ok(&s, strict());
        assert_eq!(r.state.cpuid, [[7, 0, 1, 1, 1, 1]]);
        assert!(warned(&r, "CPU policy after STATIC_DATA_END"));
    }
}

// ------------------------------------------------------------------------------------------
// PAGE_DATA.

#[test]
fn broken_and_xtab_pages_are_not_populated_and_xalloc_pages_read_zero() {
    for (name, spec) in all_bodies() {
        let size = spec.page_size();
        let entries = [e(30, NOTAB), e(31, BROKEN), e(32, XTAB), e(33, XALLOC), e(34, NOTAB)];
        let pos = if name == "pv" { spec.index_of(TSC_INFO) } else { spec.index_of(HVM_PARAMS) };
        let s = spec.insert(pos, PAGE_DATA, page_data(&entries, size)).end();
        let r = restore_ok(&s, strict());
        let mem = r.memory.as_ref().unwrap();
        assert!(mem.is_populated(30) && mem.is_populated(33) && mem.is_populated(34));
        assert!(!mem.is_populated(31) && !mem.is_populated(32), "{name}");
        assert_eq!(r.state.page_types.get(&31), Some(&PageType::BROKEN));
        assert_eq!(r.state.page_types.get(&32), Some(&PageType::XTAB));
        assert_eq!(r.state.page_types.get(&33), Some(&PageType::XALLOC));
        assert_eq!(r.state.page_types.get(&30), None);
        assert_eq!(r.stats.pages_by_type[&PageType::BROKEN], 1);
        assert_eq!(r.stats.pages_by_type[&PageType::XALLOC], 1);
    }
}

#[test]
fn page_data_without_any_page_body_is_accepted() {
    for (_, spec) in all_bodies() {
        let entries = [e(40, XTAB), e(41, BROKEN), e(42, XALLOC), e(43, XTAB)];
        let body = page_data(&entries, spec.page_size());
        assert_eq!(body.len(), 8 + 8 * 4);
        let s = spec.rec(PAGE_DATA, body).end();
        let r = restore_ok(&s, strict());
        assert!(r.memory.unwrap().is_populated(42));
    }
}

#[test]
fn repeated_and_unsorted_pfns_populate_once_and_the_last_data_wins() {
    for (name, spec) in all_bodies() {
        let entries = [eg(50, NOTAB, 1), eg(47, NOTAB, 1), eg(50, NOTAB, 2), eg(45, NOTAB, 1), eg(47, XALLOC, 0)];
        let s = spec
            .rec(PAGE_DATA, page_data(&entries, 4096))
            .rec(PAGE_DATA, page_data(&[eg(45, NOTAB, 3), eg(2, NOTAB, 4)], 4096))
            .end();
        let r = restore_ok(&s, strict());
        let mem = r.memory.unwrap();
        let mut buf = vec![0u8; 4096];
        for (pfn, generation) in [(50, 2), (47, 1), (45, 3), (2, 4)] {
            mem.read_pages(&[pfn], &mut buf).unwrap();
            assert_eq!(buf, page(pfn, generation, 4096), "{name} pfn {pfn}");
        }
    }
}

#[test]
fn reserved_page_type_nibbles_are_rejected() {
    for (_, spec) in all_bodies() {
        for nibble in 5u8..=8 {
            let entries = [e(60, NOTAB), e(61, XTAB), e(62, nibble)];
            let s = spec.clone().rec(PAGE_DATA, page_data(&entries, spec.page_size())).end();
            let built = s.build();
            let index = built.recs.len() - 2;
            let e = err(&s, lenient());
            assert!(
                matches!(format_err(&e), sr_format::Error::UnknownPageType { offset, index: i, entry: 2, pfn: 62, nibble: n }
                    if *offset == built.off(index) && *i == index as u64 && *n == nibble),
                "{e:?}"
            );
        }
    }
}

#[test]
fn page_data_length_rules() {
    for (_, spec) in all_bodies() {
        let size = spec.page_size();
        let good = page_data(&[e(70, NOTAB), e(71, XTAB), e(72, NOTAB)], size);
        let mut count0 = good.clone();
        count0[..4].copy_from_slice(&0u32.to_le_bytes());
        let s = spec.clone().rec(PAGE_DATA, count0).end();
        let index = s.recs().count() - 2;
        let e = err(&s, lenient());
        assert!(
            matches!(format_err(&e), sr_format::Error::PageDataCountZero { index: i, .. } if *i == index as u64),
            "{e:?}"
        );
        let bodies: Vec<Vec<u8>> = vec![
            vec![],
            good[..4].to_vec(),
            good[..7].to_vec(),
            good[..8 + 8 * 2].to_vec(),
            good[..good.len() - size].to_vec(),
            good[..good.len() - 1].to_vec(),
            [good.clone(), vec![0; size]].concat(),
            [good.clone(), vec![0; 8]].concat(),
        ];
        for body in bodies {
            let s = spec.clone().rec(PAGE_DATA, body).end();
            assert_bad_length(&err(&s, lenient()), &s.build(), index, PAGE_DATA);
        }
    }
}

#[test]
fn a_pfn_beyond_the_destination_is_rejected_with_nothing_written() {
    for (_, spec) in all_bodies() {
        let limit = limit_for(&spec);
        let size = spec.page_size();
        let (first_ok, pfn) = (40, limit);
        let mut spec = spec;
        if spec.dtype == PV {
            // Grow the p2m to the whole destination so the PV bound is the destination's.
            let frames: Vec<u64> = (0..limit / 512).map(|i| 100 + (i % 2)).collect();
            spec = spec.replace(P2M_FRAMES, p2m_frames(0, limit as u32 - 1, &frames));
        }
        let s =
            spec.rec(PAGE_DATA, page_data(&[e(first_ok, NOTAB), e(pfn, NOTAB), e(first_ok + 1, NOTAB)], size)).end();
        let built = s.build();
        let index = built.recs.len() - 2;
        let mem = RamMemory::new(u32::from(s.page_shift), limit).unwrap();
        let bytes = built.bytes.clone();
        let e =
            Restorer::new(lenient()).restore(sr_format::StreamReader::from_slice(&bytes), |_| Ok(&mem)).unwrap_err();
        // PV: the p2m ends at the destination's limit, so the domain's rule (pfn <= max_pfn)
        // is broken; the other types have no such rule and hit the destination's bound.
        if s.dtype == PV {
            assert!(
                matches!(e, RestoreError::PfnOutOfRange { offset, index: i, entry: 1, pfn: p, limit: l }
                    if offset == built.off(index) && i == index as u64 && p == pfn && l == limit),
                "{e:?}"
            );
        } else {
            assert!(
                matches!(e, RestoreError::BoundReached { offset, index: i, limit: l, needed, .. }
                    if offset == built.off(index) && i == index as u64 && needed == pfn + 1 && l == limit),
                "{e:?}"
            );
        }
        // The earlier records are in memory, nothing of the failing one is.
        let mut before = s.clone();
        before.parts.truncate(before.parts.len() - 2);
        assert_memory(&mem, &before.expected_memory());
        assert!(!mem.is_populated(first_ok));
        // Verify (no destination) uses its own limit and accepts it.
        if spec_is_hvm_like(&s) {
            verify_bytes(&bytes, lenient()).unwrap();
            let small = RestoreOptions { pfn_limit: limit, ..lenient() };
            assert!(matches!(verify_bytes(&bytes, small), Err(RestoreError::BoundReached { .. })));
        }
    }
}

fn spec_is_hvm_like(s: &Spec) -> bool {
    s.dtype != PV
}

// ------------------------------------------------------------------------------------------
// Empty records, reserved fields, padding.

#[test]
fn bodies_on_empty_records_are_warnings_leniently_and_errors_strictly() {
    for (_, spec) in all_bodies() {
        for t in [END, SDE, VERIFY] {
            let s = if t == END {
                spec.clone().rec(END, [1, 2, 3])
            } else if t == SDE {
                spec.clone().replace(SDE, [9u8; 8]).end()
            } else {
                spec.clone().rec(VERIFY, [0u8; 16]).end()
            };
            let built = s.build();
            let index = s.index_of(t);
            let r = restore_ok(&s, lenient());
            assert!(warned(&r, "has a body of"), "{:?}", r.warnings);
            let e = err(&s, strict());
            assert!(
                matches!(format_err(&e), sr_format::Error::UnexpectedBody { offset, index: i, record, .. }
                    if *offset == built.off(index) && *i == index as u64 && *record == RecordType(t)),
                "{e:?}"
            );
        }
    }
}

#[test]
fn reserved_fields_are_warnings_leniently_and_errors_strictly() {
    struct Case {
        rtype: u32,
        /// Byte offset within the body, and the value to write there.
        at: usize,
        value: u8,
        /// Where the error must point, relative to the body start.
        field_at: u64,
    }
    let cases = |dtype: u32| {
        let mut v = vec![
            Case { rtype: PAGE_DATA, at: 4, value: 1, field_at: 4 },
            Case { rtype: PAGE_DATA, at: 8 + 8 + 6, value: 0x10, field_at: 16 }, // pfn word 1, bit 52
            Case { rtype: PAGE_DATA, at: 8 + 7, value: 0x0F, field_at: 8 },      // pfn word 0, bits 56-59
        ];
        if dtype != ARM {
            v.push(Case { rtype: TSC_INFO, at: 20, value: 1, field_at: 20 });
        }
        if dtype == PV {
            v.push(Case { rtype: PV_INFO, at: 7, value: 1, field_at: 2 });
            v.push(Case { rtype: VCPU_BASIC, at: 4, value: 1, field_at: 4 });
        } else {
            v.push(Case { rtype: HVM_PARAMS, at: 6, value: 1, field_at: 4 });
        }
        v
    };
    for (name, spec) in all_bodies() {
        let spec = if spec.dtype == PV { spec.insert(1, MSR, msrs(&[MSR_ENTRY])) } else { spec };
        for c in cases(spec.dtype) {
            let s = spec.clone().edit(c.rtype, |b| b[c.at] |= c.value).end();
            let built = s.build();
            let index = s.index_of(c.rtype);
            let r = restore_ok(&s, lenient());
            assert!(warned(&r, "must be zero (ignored)"), "{name} {:#x}: {:?}", c.rtype, r.warnings);
            assert_eq!(r.warnings.len(), 1);
            assert_eq!((r.warnings[0].offset, r.warnings[0].index), (built.off(index), Some(index as u64)));
            let e = err(&s, strict());
            let want = built.off(index) + 8 + c.field_at;
            assert!(
                matches!(format_err(&e), sr_format::Error::ReservedNonZero { offset, .. } if *offset == want),
                "{name} {:#x}: {e:?}, want offset {want}",
                c.rtype
            );
        }
    }
    // An MSR policy entry's flags are reserved too, but the hypervisor refuses them
    // (x86_msr_copy_from_buffer: -EINVAL), so a lenient restore rejects them as well.
    for (name, spec) in x86_bodies() {
        let spec = if spec.dtype == PV { spec.insert(1, MSR, msrs(&[MSR_ENTRY])) } else { spec };
        let s = spec.edit(MSR, |b| b[4] |= 1).end();
        let e = err(&s, lenient());
        assert_rejected(&e, &s.build(), s.index_of(MSR), MSR, "MSR policy MSR 0x10a: flags 0x1, must be zero");
        let e = err(&s, strict());
        assert!(matches!(format_err(&e), sr_format::Error::ReservedNonZero { .. }), "{name}: {e:?}");
    }
}

#[test]
fn non_zero_padding_is_a_warning_leniently_and_an_error_strictly() {
    for (_, spec) in all_hvm_like() {
        // HVM_CONTEXT of 45 bytes (HEADER, END and 5 bytes Xen ignores after END) with a
        // non-zero padding byte, written raw.
        let mut raw = HVM_CONTEXT.to_le_bytes().to_vec();
        raw.extend_from_slice(&45u32.to_le_bytes());
        raw.extend_from_slice(HVM_BLOB);
        raw.extend_from_slice(b"abcde\0\x01\0");
        let mut s = spec.without(HVM_CONTEXT);
        s.parts.push(Part::Raw(raw));
        let s = s.end();
        let built = s.build();
        let ctx_at = built.recs[built.recs.len() - 1] - 56;
        let r = restore_with(&built.bytes, lenient(), limit_for(&s)).unwrap();
        assert_eq!(r.state.hvm_context.as_deref(), Some(&[HVM_BLOB, b"abcde"].concat()[..]));
        assert!(warned(&r, "non-zero padding"));
        let e = restore_with(&built.bytes, strict(), limit_for(&s)).unwrap_err();
        assert!(
            matches!(format_err(&e), sr_format::Error::NonZeroPadding { offset, .. } if *offset == ctx_at),
            "{e:?}"
        );
    }
}

#[test]
fn bytes_after_end_are_left_unread() {
    let mut s = hvm();
    s.parts.push(Part::Raw(b"trailing garbage".to_vec()));
    let built = s.build();
    let r = restore_with(&built.bytes, strict(), X86_LIMIT).unwrap();
    assert_eq!(r.stats.bytes, built.bytes.len() as u64 - 16);
}

#[test]
fn a_legacy_converted_stream_is_reported() {
    let mut s = hvm();
    s.xen = (0, 1);
    let r = restore_ok(&s, strict());
    assert!(warned(&r, "converted from a legacy image"));
    assert_eq!((r.state.xen_major, r.state.xen_minor), (0, 1));
}

// ------------------------------------------------------------------------------------------
// VERIFY.

#[test]
fn after_verify_pages_are_compared_not_written() {
    for (name, spec) in all_bodies() {
        let size = spec.page_size();
        // Second pass over pfns 0..3: pfn 1 and 2 differ, 0 matches; plus an XTAB.
        let second = [eg(0, NOTAB, 0), eg(1, NOTAB, 9), eg(2, NOTAB, 9), e(5, XTAB)];
        let s = spec.rec(VERIFY, []).rec(PAGE_DATA, page_data(&second, size)).end();
        let r = restore_ok(&s, strict());
        assert_eq!(r.stats.verified_pages, 3, "{name}");
        assert_eq!(r.stats.verify_mismatches, 2);
        assert_eq!(r.stats.mismatch_pfns, [1, 2]);
        // The memory image is the first pass: restore_ok compared it with the model, which
        // stops at VERIFY.
        // Without a destination the comparison is skipped.
        let v = verify_bytes(&s.bytes(), lenient()).unwrap();
        assert_eq!((v.stats.verified_pages, v.stats.verify_mismatches), (0, 0));
    }
}

#[test]
fn verify_mismatch_pfn_list_is_bounded() {
    let n = sr_restore::MAX_MISMATCH_PFNS as u64 + 10;
    let mut s = hvm_body(HVM).rec(PAGE_DATA, page_data(&notab(100..100 + n, 0), 4096)).rec(VERIFY, []);
    s = s.rec(PAGE_DATA, page_data(&notab(100..100 + n, 1), 4096)).end();
    let r = restore_ok(&s, lenient());
    assert_eq!(r.stats.verify_mismatches, n);
    assert_eq!(r.stats.mismatch_pfns.len(), sr_restore::MAX_MISMATCH_PFNS);
    assert_eq!(r.stats.mismatch_pfns[0], 100);
}

#[test]
fn verify_counts_compared_pages_as_applied() {
    let size = 4096;
    let s = hvm_body(HVM).rec(VERIFY, []).rec(PAGE_DATA, page_data(&notab(0..6, 0), size)).end();
    let r = restore_ok(&s, lenient());
    assert_eq!(r.stats.verified_pages, 6);
    assert_eq!(r.stats.verify_mismatches, 0);
    // 6 pages in the first pass, 6 compared in the second.
    assert_eq!(r.stats.data_pages, 12);
    assert_eq!(r.stats.data_bytes, 12 * 4096);
    let v = verify_bytes(&s.bytes(), lenient()).unwrap();
    assert_eq!((v.stats.data_pages, v.stats.data_bytes), (12, 12 * 4096));
}

// ------------------------------------------------------------------------------------------
// Checkpoints.

#[test]
fn checkpoint_in_a_plain_stream_is_rejected() {
    for (_, spec) in all_bodies() {
        let s = spec.rec(CHECKPOINT, []).end();
        assert_rejected(&err(&s, lenient()), &s.build(), s.index_of(CHECKPOINT), CHECKPOINT, "non-checkpointed");
    }
}

/// An HVM checkpointed stream: checkpoint 1 = the minimal body, checkpoint 2 rewrites pfns 0
/// and 1 (generation 1) and sets a new context, then the open checkpoint 3 rewrites pfn 0
/// again (generation 2).
fn checkpointed_hvm() -> Spec {
    hvm_body(HVM)
        .rec(CHECKPOINT, [])
        .rec(PAGE_DATA, page_data(&notab(0..2, 1), 4096))
        .rec(HVM_CONTEXT, hvm_blob(2))
        .rec(CHECKPOINT, [])
        .rec(PAGE_DATA, page_data(&notab(0..1, 2), 4096))
        .rec(HVM_CONTEXT, hvm_blob(3))
}

fn read_page(mem: &RamMemory, pfn: u64) -> Vec<u8> {
    let mut buf = vec![0u8; mem.page_size()];
    mem.read_pages(&[pfn], &mut buf).unwrap();
    buf
}

#[test]
fn records_after_a_checkpoint_wait_for_the_next_one_and_end_drops_the_rest() {
    let s = checkpointed_hvm().end();
    let r = restore_with(&s.bytes(), checkpointed(false), X86_LIMIT).unwrap();
    assert_eq!(r.stats.checkpoints, 2);
    assert!(!r.stats.failed_over);
    assert_eq!(r.state.hvm_context.as_deref(), Some(&hvm_blob(2)[..]));
    let mem = r.memory.unwrap();
    assert_eq!(read_page(&mem, 0), page(0, 1, 4096));
    assert_eq!(read_page(&mem, 1), page(1, 1, 4096));
    assert_eq!(read_page(&mem, 2), page(2, 0, 4096));

    // A bad record after the last CHECKPOINT is never looked at (END drops it) ...
    let s = checkpointed_hvm().rec(TOOLSTACK, [1]).end();
    restore_with(&s.bytes(), checkpointed(false), X86_LIMIT).unwrap();
    // ... but one inside a checkpoint fails when the next CHECKPOINT replays it.
    let s = checkpointed_hvm().rec(TOOLSTACK, [1]).rec(CHECKPOINT, []).end();
    let e = restore_with(&s.bytes(), checkpointed(false), X86_LIMIT).unwrap_err();
    assert_rejected(&e, &s.build(), s.index_of(TOOLSTACK), TOOLSTACK, "forward stream");
    // An unknown optional record is skipped directly, but fails during a replay.
    let s = hvm_body(HVM).rec(0x8000_1234, [1]).rec(CHECKPOINT, []).end();
    let r = restore_with(&s.bytes(), checkpointed(false), X86_LIMIT).unwrap();
    assert!(warned(&r, "skipped"));
    let s = checkpointed_hvm().rec(0x8000_1234, [1]).rec(CHECKPOINT, []).end();
    let e = restore_with(&s.bytes(), checkpointed(false), X86_LIMIT).unwrap_err();
    assert_rejected(&e, &s.build(), s.index_of(0x8000_1234), 0x8000_1234, "inside a checkpoint");
}

#[test]
fn a_broken_checkpointed_stream_fails_over_to_the_last_complete_checkpoint() {
    let built = checkpointed_hvm().build();
    // Cut inside the last PAGE_DATA of the open checkpoint, and right after each record of it.
    let last_ckpt = built.recs[built.recs.len() - 3];
    let last_rec = built.recs[built.recs.len() - 1] as usize;
    let cuts = [built.bytes.len() - 5, built.bytes.len(), last_rec + 3, last_ckpt as usize + 8];
    for cut in cuts {
        let bytes = &built.bytes[..cut];
        let r = restore_with(bytes, checkpointed(true), X86_LIMIT).unwrap();
        assert!(r.stats.failed_over, "cut {cut}");
        assert_eq!(r.stats.checkpoints, 2);
        assert!(r.stats.bytes <= cut as u64);
        assert_eq!(r.state.hvm_context.as_deref(), Some(&hvm_blob(2)[..]));
        let mem = r.memory.unwrap();
        assert_eq!(read_page(&mem, 0), page(0, 1, 4096));
        assert!(warned_plain(&r.warnings, "restored the last complete checkpoint"));
        // Without failover: the error says how many checkpoints completed.
        let e = restore_with(bytes, checkpointed(false), X86_LIMIT).unwrap_err();
        assert!(
            matches!(&e, RestoreError::BrokeAfterCheckpoint { checkpoints: 2, source } if source.is_broken_channel()),
            "{e:?}"
        );
        assert!(e.to_string().starts_with("stream broke after checkpoint 2; failover restores it: "), "{e}");
    }
    // Broken before the first CHECKPOINT: a plain truncation error.
    let first_ckpt = built.recs[checkpointed_hvm().index_of(CHECKPOINT)];
    let e = restore_with(&built.bytes[..first_ckpt as usize], checkpointed(true), X86_LIMIT).unwrap_err();
    assert!(matches!(e, RestoreError::Format(sr_format::Error::Truncated { .. })), "{e:?}");
    // Failover still runs the END checks: a checkpoint without HVM_CONTEXT cannot be used.
    let s = hvm_body(HVM).without(HVM_CONTEXT).rec(CHECKPOINT, []).rec(PAGE_DATA, page_data(&notab(0..1, 1), 4096));
    let e = restore_with(&s.bytes(), checkpointed(true), X86_LIMIT).unwrap_err();
    assert!(matches!(e, RestoreError::Incomplete { .. }), "{e:?}");
}

fn warned_plain(w: &[sr_restore::Warning], needle: &str) -> bool {
    w.iter().any(|w| w.message.contains(needle))
}

/// A checkpointed libxl HVM stream: each CHECKPOINT is followed by libxl emulator records
/// and CHECKPOINT_END, then the libxc records of the next checkpoint.
fn checkpointed_libxl(ckpt: u8) -> Spec {
    let mut s = hvm_body(HVM).rec(CHECKPOINT, []);
    s.wrap = Wrap::Libxl;
    s.libxl(L_XENSTORE, emulator(2, 0, b"physmap/1/name\0vga\0"))
        .libxl(L_EMULATOR, emulator(2, 0, b"qemu-state-1"))
        .libxl(L_CHECKPOINT_END, [])
        .rec(PAGE_DATA, page_data(&notab(0..2, ckpt), 4096))
        .rec(CHECKPOINT, [])
        .libxl(L_EMULATOR, emulator(2, 0, b"qemu-state-2"))
        .libxl(L_CHECKPOINT_END, [])
        .rec(PAGE_DATA, page_data(&notab(0..1, 7), 4096))
}

#[test]
fn a_checkpointed_libxl_stream_restores_each_checkpoint_with_its_emulator_records() {
    let s = checkpointed_libxl(1).end().libxl(L_EMULATOR, emulator(2, 0, b"qemu-final")).libxl(L_END, []);
    let r = restore_with(&s.bytes(), checkpointed(false), X86_LIMIT).unwrap();
    assert_eq!(r.container.layer, Layer::Libxl);
    assert_eq!(r.stats.checkpoints, 2);
    let mem = r.memory.as_ref().unwrap();
    assert_eq!(read_page(mem, 0), page(0, 1, 4096), "END dropped the open checkpoint");
    assert_eq!(r.state.emulator.len(), 1);
    assert_eq!(r.state.emulator[0].data, b"qemu-final");
}

#[test]
fn a_checkpointed_libxl_stream_breaking_inside_libxl_records_fails_over_to_the_previous_checkpoint() {
    let s = checkpointed_libxl(1);
    let built = s.build();
    // Cut inside the second checkpoint's emulator record: its libxc records (pfns 0..2 of
    // generation 1) are not complete until CHECKPOINT_END, so the first checkpoint is used.
    let cut = (built.libxl_recs[4] + 4) as usize;
    let r = restore_with(&built.bytes[..cut], checkpointed(true), X86_LIMIT).unwrap();
    assert!(r.stats.failed_over);
    assert_eq!(r.stats.checkpoints, 1);
    let mem = r.memory.as_ref().unwrap();
    assert_eq!(read_page(mem, 0), page(0, 0, 4096));
    assert_eq!(read_page(mem, 1), page(1, 0, 4096));
    assert_eq!(r.state.emulator.len(), 2);
    assert_eq!(r.state.emulator[1].data, b"qemu-state-1");

    // Cut after the second CHECKPOINT_END: the second checkpoint is complete.
    let cut = (built.libxl_recs[5] + 8 + 3) as usize;
    let r = restore_with(&built.bytes[..cut], checkpointed(true), X86_LIMIT).unwrap();
    assert_eq!(r.stats.checkpoints, 2);
    assert_eq!(read_page(r.memory.as_ref().unwrap(), 0), page(0, 1, 4096));
    assert_eq!(r.state.emulator.len(), 1);
    assert_eq!(r.state.emulator[0].data, b"qemu-state-2");

    // Cut inside the first checkpoint's libxl records: no checkpoint ever completed.
    let cut = (built.libxl_recs[2] + 4) as usize;
    let e = restore_with(&built.bytes[..cut], checkpointed(true), X86_LIMIT).unwrap_err();
    assert!(matches!(e, RestoreError::NoConsistentCheckpoint { .. }), "{e:?}");
}

// ------------------------------------------------------------------------------------------
// libxl and xl.

#[test]
fn emulator_records_belong_to_hvm_only() {
    let body = emulator(2, 0, b"qemu");
    for (name, spec) in [("pv", pv()), ("pvh", pvh()), ("arm", arm(12))] {
        for t in [L_XENSTORE, L_EMULATOR] {
            let mut s = spec.clone();
            s.wrap = Wrap::Libxl;
            let b = if t == L_XENSTORE { emulator(2, 0, b"physmap/1/size\x00800000\x00") } else { body.clone() };
            let s = s.libxl(t, b).libxl(L_END, []);
            let built = s.build();
            let e = restore_with(&built.bytes, lenient(), limit_for(&s)).unwrap_err();
            assert!(
                matches!(&e, RestoreError::RejectedLibxl { offset, index: 1, .. } if *offset == built.libxl_recs[1]),
                "{name}: {e:?}"
            );
        }
    }
    let mut s = hvm();
    s.wrap = Wrap::Xl(b"{}\0".to_vec());
    let s = s
        .libxl(L_XENSTORE, emulator(2, 0, b"physmap/1/start_addr\0f0000000\0physmap/1/size\0800000\0"))
        .libxl(L_EMULATOR, emulator(2, 1, b"QEVM-device-state"))
        .libxl(L_END, []);
    for options in [lenient(), strict()] {
        let r = restore_ok(&s, options);
        assert_eq!(r.container.layer, Layer::Xl);
        assert_eq!(r.container.xl_config.as_deref(), Some(&b"{}\0"[..]));
        assert_eq!(r.state.emulator.len(), 2);
        let (a, b) = (&r.state.emulator[0], &r.state.emulator[1]);
        assert_eq!((a.kind.0, a.id, a.index), (L_XENSTORE, 2, 0));
        assert_eq!(a.data, b"physmap/1/start_addr\0f0000000\0physmap/1/size\0800000\0");
        assert_eq!((b.kind.0, b.id, b.index, b.data.as_slice()), (L_EMULATOR, 2, 1, &b"QEVM-device-state"[..]));
        assert_eq!(r.stats.libxl_records, 4);
    }
}

#[test]
fn emulator_record_validation() {
    let with = |t: u32, body: Vec<u8>| {
        let mut s = hvm();
        s.wrap = Wrap::Libxl;
        s.libxl(t, body).libxl(L_END, [])
    };
    // Unknown emulator id: libxl ignores it, strict rejects it.
    let s = with(L_EMULATOR, emulator(7, 0, b"x"));
    let r = restore_ok(&s, lenient());
    assert!(warned(&r, "unknown emulator id 7"));
    assert!(matches!(restore(&s, strict()), Err(RestoreError::RejectedLibxl { .. })));
    // Shorter than the emulator header.
    for t in [L_XENSTORE, L_EMULATOR] {
        let e = restore(&with(t, vec![2, 0, 0, 0]), lenient()).unwrap_err();
        assert!(matches!(format_err(&e), sr_format::Error::BadLibxlLength { index: 1, .. }), "{e:?}");
    }
    // Malformed xenstore data.
    for payload in [&b"key"[..], b"key\0", b"\0v\0", b"/abs\0v\0"] {
        let e = restore(&with(L_XENSTORE, emulator(2, 0, payload)), lenient()).unwrap_err();
        assert!(matches!(format_err(&e), sr_format::Error::BadXenstoreData { index: 1, .. }), "{e:?}");
    }
}

#[test]
fn a_non_empty_libxc_context_record_is_a_warning_leniently() {
    let mut bytes = hvm().wrapped(Wrap::Libxl).bytes();
    // Patch LIBXC_CONTEXT (at 16) to carry an 8-byte body by inserting it.
    bytes[20..24].copy_from_slice(&8u32.to_le_bytes());
    bytes.splice(24..24, *b"ignored!");
    let r = restore_with(&bytes, lenient(), X86_LIMIT).unwrap();
    assert!(warned_plain(&r.warnings, "LIBXC_CONTEXT has a body of 8 bytes"));
    assert_memory(r.memory.as_ref().unwrap(), &hvm().expected_memory());
    let e = restore_with(&bytes, strict(), X86_LIMIT).unwrap_err();
    assert!(matches!(format_err(&e), sr_format::Error::BadLibxlLength { offset: 16, .. }), "{e:?}");
}

#[test]
fn the_libxl_legacy_bit_is_reported() {
    let mut bytes = hvm().wrapped(Wrap::Libxl).bytes();
    bytes[15] = 2;
    let r = restore_with(&bytes, strict(), X86_LIMIT).unwrap();
    assert!(r.container.libxl_legacy);
    let r = restore_with(&hvm().wrapped(Wrap::Libxl).bytes(), strict(), X86_LIMIT).unwrap();
    assert!(!r.container.libxl_legacy);
}

#[test]
fn a_libxl_stream_without_a_libxc_stream_is_incomplete() {
    let mut bytes = b"LibxlFmt".to_vec();
    bytes.extend_from_slice(&[0, 0, 0, 2, 0, 0, 0, 0]);
    bytes.extend_from_slice(&[0; 8]); // libxl END
    let e = restore_with(&bytes, lenient(), X86_LIMIT).unwrap_err();
    assert!(matches!(e, RestoreError::Incomplete { offset: 24, .. }), "{e:?}");
    // An emulator record before LIBXC_CONTEXT.
    let mut bytes = b"LibxlFmt".to_vec();
    bytes.extend_from_slice(&[0, 0, 0, 2, 0, 0, 0, 0]);
    bytes.extend_from_slice(&3u32.to_le_bytes());
    bytes.extend_from_slice(&8u32.to_le_bytes());
    bytes.extend_from_slice(&[2, 0, 0, 0, 0, 0, 0, 0]);
    bytes.extend_from_slice(&[0; 8]);
    let e = restore_with(&bytes, lenient(), X86_LIMIT).unwrap_err();
    assert!(matches!(e, RestoreError::RejectedLibxl { offset: 16, index: 0, .. }), "{e:?}");
}

#[test]
fn progress_reports_monotonic_offsets_up_to_the_end() {
    let bytes = pv().wrapped(Wrap::Libxl).bytes();
    let mut seen = Vec::new();
    Restorer::new(lenient())
        .on_progress(|o| seen.push(o))
        .restore(sr_format::StreamReader::from_slice(&bytes), |h| {
            RamMemory::new(u32::from(h.page_shift.get()), X86_LIMIT)
        })
        .unwrap();
    assert!(seen.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(seen.last().copied(), Some(bytes.len() as u64));
}

#[test]
fn restore_read_matches_restore_from_a_slice() {
    for (_, spec) in minimal_streams() {
        let bytes = spec.clone().wrapped(Wrap::Libxl).bytes();
        let r = Restorer::new(lenient())
            .restore_read(&bytes[..], |h| RamMemory::new(u32::from(h.page_shift.get()), limit_for(&spec)))
            .unwrap();
        assert_memory(r.memory.as_ref().unwrap(), &spec.expected_memory());
        let s = restore_with(&bytes, lenient(), limit_for(&spec)).unwrap();
        assert_eq!(r.state, s.state);
        assert_eq!(r.stats, s.stats);
    }
}

#[test]
fn the_builder_matches_sr_format_encoders() {
    // The hand-rolled encoder agrees with sr-format's on a PAGE_DATA record and headers.
    let entries = [e(1, NOTAB), e(2, XTAB), e(3, L1TAB_PINNED)];
    let ours = page_data(&entries, 4096);
    let mut theirs = Vec::new();
    let fe: Vec<sr_format::PfnEntry> =
        entries.iter().map(|x| sr_format::PfnEntry::new(x.pfn, PageType::from_nibble(x.nibble))).collect();
    let pages: Vec<u8> = [page(1, 0, 4096), page(3, 0, 4096)].concat();
    sr_format::body::encode_page_data(&mut theirs, &fe, &pages, 4096);
    assert_eq!(&theirs[8..], &ours[..]);
    let mut w = sr_format::RecordWriter::new(Vec::new());
    w.write_headers(&sr_format::ImageHeader::new(3), &sr_format::DomainHeader::new(DomainType::X86_HVM, 12, 4, 17))
        .unwrap();
    assert_eq!(w.into_inner(), Spec::new(3, HVM, 12).bytes());
    let xl = sr_format::xl::encode_xl_header(Some(b"{}\0"));
    assert_eq!(&hvm().wrapped(Wrap::Xl(b"{}\0".to_vec())).bytes()[..xl.len()], &xl[..]);
}
