//! `VcpuFrames`: the frame fields of a PV `vcpu_guest_context`, against hand-written offsets
//! (Xen's `vcpu_guest_context` for x86_64 and its compat layout), and round trips.

use proptest::prelude::*;
use sr_format::body::{MAX_GDT_ENTS, VCPU_CONTEXT_32, VCPU_CONTEXT_64, VcpuFrames, vcpu_context_size};

fn put64(blob: &mut [u8], at: usize, v: u64) {
    blob[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

fn put32(blob: &mut [u8], at: usize, v: u32) {
    blob[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn get64(blob: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(blob[at..at + 8].try_into().unwrap())
}

fn get32(blob: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(blob[at..at + 4].try_into().unwrap())
}

/// A blob whose every byte is non-zero, so a field read from the wrong place shows.
fn filled(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 | 0x80).collect()
}

#[test]
fn sizes() {
    assert_eq!((VCPU_CONTEXT_64, VCPU_CONTEXT_32), (5168, 2800));
    assert_eq!(vcpu_context_size(8), Some(5168));
    assert_eq!(vcpu_context_size(4), Some(2800));
    assert_eq!(vcpu_context_size(2), None);
    assert_eq!(MAX_GDT_ENTS, 7168);
}

#[test]
fn golden_64bit_read() {
    let mut blob = filled(5168);
    put64(&mut blob, 616, 0x1a16); // rdx
    for i in 0..16 {
        put64(&mut blob, 4832 + 8 * i, 0x1000 + i as u64); // gdt_frames[i]
    }
    put64(&mut blob, 4960, 1000); // gdt_ents
    put64(&mut blob, 4984 + 8, 0x1c9001); // ctrlreg[1]
    put64(&mut blob, 4984 + 24, 0x3ed000); // ctrlreg[3]
    let f = VcpuFrames::read(&blob, 8).unwrap();
    assert_eq!(f.start_info, 0x1a16);
    assert_eq!(f.gdt_ents, 1000);
    assert_eq!(f.gdt_frames, std::array::from_fn(|i| 0x1000 + i as u64));
    assert_eq!(f.gdt_frame_count(), 2);
    assert_eq!(f.used_gdt_frames(), [0x1000, 0x1001]);
    assert_eq!(f.cr3_pfn, 0x3ed);
    assert_eq!(f.cr1_pfn, Some(0x1c9));
    // CR1 without bit 0 names no table.
    put64(&mut blob, 4992, 0x1c9000);
    assert_eq!(VcpuFrames::read(&blob, 8).unwrap().cr1_pfn, None);
}

#[test]
fn golden_32bit_read() {
    let mut blob = filled(2800);
    put32(&mut blob, 524, 0x345); // edx
    for i in 0..16 {
        put32(&mut blob, 2640 + 4 * i, 0x2000 + i as u32); // gdt_frames[i]
    }
    put32(&mut blob, 2704, 513); // gdt_ents
    // ctrlreg[1] has bit 0 set, but a 32-bit context's CR1 is not a frame.
    put32(&mut blob, 2716 + 4, 0x5001);
    // Extended CR3: pfn 0x123_4567 rotated left by 12 within 32 bits.
    put32(&mut blob, 2716 + 12, 0x3456_7012);
    let f = VcpuFrames::read(&blob, 4).unwrap();
    assert_eq!(f.start_info, 0x345);
    assert_eq!(f.gdt_ents, 513);
    assert_eq!(f.gdt_frames, std::array::from_fn(|i| 0x2000 + i as u64));
    assert_eq!(f.used_gdt_frames(), [0x2000, 0x2001]);
    assert_eq!(f.cr3_pfn, 0x123_4567);
    assert_eq!(f.cr1_pfn, None);
    // An ordinary small CR3 is pfn << 12.
    put32(&mut blob, 2728, 0x3_f000);
    assert_eq!(VcpuFrames::read(&blob, 4).unwrap().cr3_pfn, 0x3f);
}

#[test]
fn wrong_sizes_and_widths_read_as_none() {
    for (len, width) in [(5168, 4), (2800, 8), (5167, 8), (2801, 4), (0, 8), (5168, 2), (5168, 0)] {
        assert_eq!(VcpuFrames::read(&vec![0; len], width), None, "{len} bytes at width {width}");
    }
}

#[test]
fn golden_64bit_write() {
    let mut gdt_frames = [0u64; 16];
    gdt_frames[0] = 0xe0b;
    gdt_frames[15] = 0xfff;
    let f = VcpuFrames { start_info: 0x1a16, gdt_ents: 16, gdt_frames, cr3_pfn: 0x3ed, cr1_pfn: Some(0x1c9) };
    let before = filled(5168);
    let mut blob = before.clone();
    f.write(&mut blob, 8);
    assert_eq!(get64(&blob, 616), 0x1a16);
    assert_eq!(get64(&blob, 4832), 0xe0b);
    assert_eq!(get64(&blob, 4832 + 8), 0);
    assert_eq!(get64(&blob, 4952), 0xfff);
    assert_eq!(get64(&blob, 4960), 16);
    assert_eq!(get64(&blob, 4992), 0x1c9001);
    assert_eq!(get64(&blob, 5008), 0x3ed000);
    // Nothing else moved.
    let written = [(616, 624), (4832, 4968), (4992, 5000), (5008, 5016)];
    for (i, (&a, &b)) in before.iter().zip(&blob).enumerate() {
        if !written.iter().any(|&(s, e)| (s..e).contains(&i)) {
            assert_eq!(a, b, "byte {i} changed");
        }
    }
    // No CR1: zero.
    VcpuFrames { cr1_pfn: None, ..f }.write(&mut blob, 8);
    assert_eq!(get64(&blob, 4992), 0);
}

#[test]
fn golden_32bit_write() {
    let f = VcpuFrames { start_info: 7, gdt_ents: 600, gdt_frames: [9; 16], cr3_pfn: 0x123_4567, cr1_pfn: Some(3) };
    let before = filled(2800);
    let mut blob = before.clone();
    f.write(&mut blob, 4);
    assert_eq!(get32(&blob, 524), 7);
    assert!((0..16).all(|i| get32(&blob, 2640 + 4 * i) == 9));
    assert_eq!(get32(&blob, 2704), 600);
    assert_eq!(get32(&blob, 2728), 0x3456_7012);
    let written = [(524, 528), (2640, 2708), (2728, 2732)];
    for (i, (&a, &b)) in before.iter().zip(&blob).enumerate() {
        if !written.iter().any(|&(s, e)| (s..e).contains(&i)) {
            assert_eq!(a, b, "byte {i} changed (a 32-bit context's CR1 is left alone)");
        }
    }
}

#[test]
#[should_panic(expected = "5168 bytes")]
fn writing_into_a_wrong_sized_blob_panics() {
    VcpuFrames::default().write(&mut [0; 2800], 8);
}

proptest! {
    #[test]
    fn round_trip_64(
        start_info in any::<u64>(),
        gdt_ents in any::<u64>(),
        gdt_frames in any::<[u64; 16]>(),
        cr3_pfn in 0u64..1 << 52,
        cr1_pfn in proptest::option::of(0u64..1 << 52),
        seed in any::<u8>(),
    ) {
        let f = VcpuFrames { start_info, gdt_ents, gdt_frames, cr3_pfn, cr1_pfn };
        let mut blob = vec![seed; 5168];
        f.write(&mut blob, 8);
        prop_assert_eq!(VcpuFrames::read(&blob, 8), Some(f));
    }

    #[test]
    fn round_trip_32(
        start_info in any::<u32>(),
        gdt_ents in any::<u32>(),
        gdt_frames in any::<[u32; 16]>(),
        cr3_pfn in any::<u32>(),
        seed in any::<u8>(),
    ) {
        let f = VcpuFrames {
            start_info: start_info.into(),
            gdt_ents: gdt_ents.into(),
            gdt_frames: gdt_frames.map(u64::from),
            cr3_pfn: cr3_pfn.into(),
            cr1_pfn: None,
        };
        let mut blob = vec![seed; 2800];
        f.write(&mut blob, 4);
        prop_assert_eq!(VcpuFrames::read(&blob, 4), Some(f));
    }
}
