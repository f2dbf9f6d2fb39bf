//! The core writers against independent readers: `object`'s ELF reader (program headers,
//! notes, PN_XNUM), hand-written offsets of Linux's `elf_prstatus` and QEMU's
//! `QEMUCPUState`, LiME and raw layouts, and (when installed) `readelf` and `gdb`.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::process::Command;

use object::elf::{FileHeader64, PT_LOAD, PT_NOTE};
use object::read::elf::{FileHeader, ProgramHeader};
use object::{Endianness, LittleEndian};
use proptest::prelude::*;
use sr_dump::{
    BytesSource, CoreInput, Cpus, DumpError, FileExtents, LIME_MAGIC, Machine, PageBody, PageSource, SliceExtents,
    arm64_prstatus, qemu_cpu_state, write_elf, write_lime, write_raw, x86_64_prstatus,
};
use sr_format::cpu::{Aarch64Regs, Segment, TableReg, X86Regs};

fn page_of(pfn: u64, page: usize) -> Vec<u8> {
    (0..page).map(|i| (pfn as usize * 7 + i) as u8 ^ 0x5a).collect()
}

fn fill_source() -> BytesSource<impl FnMut(u64, &mut [u8]) -> io::Result<()>> {
    BytesSource::new(|pfn, buf: &mut [u8]| {
        buf.copy_from_slice(&page_of(pfn, buf.len()));
        Ok(())
    })
}

fn regs(vcpu: u64) -> X86Regs {
    X86Regs {
        rax: 0xa0 + vcpu,
        rbx: 0xb0,
        rcx: 0xc0,
        rdx: 0xd0,
        rsi: 0x51,
        rdi: 0xd1,
        rbp: 0xb9,
        rsp: 0xffff_c900_0001_0000 + vcpu,
        r8: 8,
        r15: 15,
        rip: 0xffff_ffff_8100_0000 + vcpu,
        rflags: 0x246,
        cs: Segment { selector: 0x10, base: 0, limit: 0xffff_ffff, attr: 0xa9b },
        ss: Segment { selector: 0x18, base: 0, limit: 0xffff_ffff, attr: 0xc93 },
        fs: Segment { selector: 0, base: 0x7f00_0000_0000, limit: 0, attr: 0 },
        gs: Segment { selector: 0, base: 0xffff_8880_0000_0000, limit: 0, attr: 0 },
        gdtr: TableReg { base: 0xffff_fe00_0000_1000, limit: 0x7f },
        idtr: TableReg { base: 0xffff_fe00_0000_0000, limit: 0xfff },
        cr0: 0x8005_0033,
        cr2: 0x1234,
        cr3: 0x10_0000 + (vcpu << 12),
        cr4: 0x3606f0,
        efer: 0xd01,
        kernel_gs_base: 0x5555,
        ..X86Regs::default()
    }
}

fn get64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

fn get32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn read_all(f: &File) -> Vec<u8> {
    let mut v = Vec::new();
    (&*f).seek(SeekFrom::Start(0)).unwrap();
    (&*f).read_to_end(&mut v).unwrap();
    v
}

#[test]
fn prstatus_and_qemu_state_at_their_offsets() {
    let r = regs(1);
    let p = x86_64_prstatus(3, &r);
    assert_eq!(p.len(), 336);
    assert_eq!(get32(&p, 32), 4, "pr_pid = vcpu + 1");
    let reg = |i: usize| get64(&p, 112 + 8 * i);
    assert_eq!((reg(0), reg(4), reg(10), reg(12)), (15, 0xb9, 0xa1, 0xd0)); // r15 rbp rax rdx
    assert_eq!((reg(15), reg(16), reg(17), reg(18), reg(19)), (u64::MAX, r.rip, 0x10, 0x246, r.rsp));
    assert_eq!((reg(20), reg(21), reg(22)), (0x18, 0x7f00_0000_0000, 0xffff_8880_0000_0000));

    let q = qemu_cpu_state(&r);
    assert_eq!((get32(&q, 0), get32(&q, 4)), (1, 440));
    assert_eq!((get64(&q, 8), get64(&q, 8 + 6 * 8), get64(&q, 8 + 16 * 8)), (0xa1, r.rsp, r.rip));
    // cs: selector, limit, flags (arbytes 0xa9b -> type b, S, P, L, G), base.
    assert_eq!((get32(&q, 152), get32(&q, 156), get32(&q, 160)), (0x10, 0xffff_ffff, 0x00a0_9b00));
    // gdt is the 9th segment, idt the 10th.
    assert_eq!((get32(&q, 152 + 24 * 8 + 4), get64(&q, 152 + 24 * 8 + 16)), (0x7f, 0xffff_fe00_0000_1000));
    assert_eq!((get32(&q, 152 + 24 * 9 + 4), get64(&q, 152 + 24 * 9 + 16)), (0xfff, 0xffff_fe00_0000_0000));
    assert_eq!((get64(&q, 392), get64(&q, 400), get64(&q, 416), get64(&q, 424)), (0x8005_0033, 0, 0x10_1000, 0x3606f0));
    assert_eq!(get64(&q, 432), 0x5555);

    let mut a =
        Aarch64Regs { pc: 0xffff_8000_1000_0000, sp: 0xffff_8000_2000_0000, pstate: 0x3c5, ..Default::default() };
    a.x[0] = 7;
    a.x[30] = 0x30;
    let p = arm64_prstatus(0, &a);
    assert_eq!(p.len(), 392);
    assert_eq!(get32(&p, 32), 1);
    assert_eq!((get64(&p, 112), get64(&p, 112 + 30 * 8)), (7, 0x30));
    assert_eq!((get64(&p, 112 + 31 * 8), get64(&p, 112 + 32 * 8), get64(&p, 112 + 33 * 8)), (a.sp, a.pc, 0x3c5));
}

/// (p_type, offset, paddr, filesz) of every program header, read by `object`.
fn program_headers(data: &[u8]) -> Vec<(u32, u64, u64, u64)> {
    let h = FileHeader64::<Endianness>::parse(data).unwrap();
    let e = h.endian().unwrap();
    h.program_headers(e, data)
        .unwrap()
        .iter()
        .map(|p| (p.p_type(e), p.p_offset(e), p.p_paddr(e), p.p_filesz(e)))
        .collect()
}

/// (name, type, desc) of every note, read by `object`.
fn notes(data: &[u8]) -> Vec<(Vec<u8>, u32, Vec<u8>)> {
    let h = FileHeader64::<Endianness>::parse(data).unwrap();
    let e = h.endian().unwrap();
    let mut out = Vec::new();
    for p in h.program_headers(e, data).unwrap() {
        if let Some(mut it) = p.notes(e, data).unwrap() {
            while let Some(n) = it.next().unwrap() {
                out.push((n.name().to_vec(), n.n_type(e), n.desc().to_vec()));
            }
        }
    }
    out
}

#[test]
fn elf_core_layout_notes_and_page_bodies() {
    let input = CoreInput {
        page_shift: 12,
        runs: vec![[0, 3], [0x10, 1], [0x100, 2]],
        machine: Machine::X86_64,
        cpus: Cpus::X86(vec![(0, regs(0)), (1, regs(1))]),
    };
    let out = tempfile::tempfile().unwrap();
    let len = write_elf(&out, &input, &mut fill_source()).unwrap();
    let data = read_all(&out);
    assert_eq!(data.len() as u64, len);
    let h = FileHeader64::<LittleEndian>::parse(&data[..]).unwrap();
    assert_eq!((h.e_type.get(LittleEndian), h.e_machine.get(LittleEndian)), (4, 62));
    let ph = program_headers(&data);
    assert_eq!(ph.len(), 4);
    assert_eq!(ph[0].0, PT_NOTE);
    for (p, &[first, count]) in ph[1..].iter().zip(&input.runs) {
        assert_eq!((p.0, p.2, p.3), (PT_LOAD, first << 12, count << 12));
        assert_eq!(p.1 % 4096, 0);
        for i in 0..count {
            let at = (p.1 + (i << 12)) as usize;
            assert!(data[at..at + 4096] == page_of(first + i, 4096)[..], "pfn {:#x}", first + i);
        }
    }
    let n = notes(&data);
    let kinds: Vec<(&[u8], u32)> = n.iter().map(|(name, t, _)| (&name[..], *t)).collect();
    assert_eq!(kinds, [(&b"CORE"[..], 1), (b"CORE", 1), (b"QEMU", 0), (b"QEMU", 0)]);
    assert_eq!(n[1].2, x86_64_prstatus(1, &regs(1)));
    assert_eq!(n[3].2, qemu_cpu_state(&regs(1)));
}

#[test]
fn more_than_65534_segments_use_extended_numbering() {
    // 70000 one-page runs of zero pages: the source writes nothing (zero pages may stay holes).
    struct Zeros;
    impl PageSource for Zeros {
        fn copy_run(&mut self, _: u64, _: u64, _: u32, _: &File, _: u64) -> io::Result<()> {
            Ok(())
        }
    }
    let runs: Vec<[u64; 2]> = (0..70_000u64).map(|i| [2 * i, 1]).collect();
    let input = CoreInput { page_shift: 12, runs, machine: Machine::X86_64, cpus: Cpus::X86(vec![(0, regs(0))]) };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("xnum.core");
    let out = File::options().read(true).write(true).create_new(true).open(&path).unwrap();
    write_elf(&out, &input, &mut Zeros).unwrap();
    let mut head = vec![0u8; 8 << 20];
    out.read_exact_at(&mut head, 0).unwrap();
    assert_eq!(u16::from_le_bytes([head[56], head[57]]), 0xffff, "e_phnum = PN_XNUM");
    let shoff = get64(&head, 40) as usize;
    assert_eq!(u16::from_le_bytes([head[60], head[61]]), 1, "e_shnum: section 0 only");
    assert_eq!(get32(&head, shoff + 44), 70_001, "section 0 sh_info = real count");
    // object's reader follows PN_XNUM to the real count.
    let data = std::fs::read(&path).unwrap();
    let ph = program_headers(&data);
    assert_eq!(ph.len(), 70_001);
    assert_eq!((ph[70_000].2, ph[70_000].3), ((2 * 69_999) << 12, 4096));
    match Command::new("readelf").args(["-lW"]).arg(&path).output() {
        Ok(o) => {
            let text = String::from_utf8_lossy(&o.stdout);
            assert!(text.contains("There are 70001 program headers"), "{}", &text[..text.len().min(600)]);
        }
        Err(_) => eprintln!("NOTICE: readelf not installed; extended numbering checked with object's reader only"),
    }
}

#[test]
fn lime_and_raw_layouts() {
    let input = CoreInput { page_shift: 12, runs: vec![[1, 2], [9, 1]], machine: Machine::X86_64, cpus: Cpus::None };
    let out = tempfile::tempfile().unwrap();
    assert_eq!(write_lime(&out, &input, &mut fill_source()).unwrap(), 2 * 32 + 3 * 4096);
    let d = read_all(&out);
    assert_eq!(&d[..4], b"EMiL");
    assert_eq!(
        (get32(&d, 0), get32(&d, 4), get64(&d, 8), get64(&d, 16), get64(&d, 24)),
        (LIME_MAGIC, 1, 0x1000, 0x2fff, 0)
    );
    assert!(d[32..32 + 4096] == page_of(1, 4096)[..] && d[32 + 4096..32 + 8192] == page_of(2, 4096)[..]);
    let h2 = 32 + 8192;
    assert_eq!((get64(&d, h2 + 8), get64(&d, h2 + 16)), (0x9000, 0x9fff));
    assert!(d[h2 + 32..] == page_of(9, 4096)[..]);

    let out = tempfile::tempfile().unwrap();
    assert_eq!(write_raw(&out, &input, &mut fill_source()).unwrap(), 10 * 4096);
    let d = read_all(&out);
    assert!(d[..4096].iter().all(|&b| b == 0));
    assert!(d[4096..8192] == page_of(1, 4096)[..] && d[9 * 4096..] == page_of(9, 4096)[..]);
    assert!(d[3 * 4096..9 * 4096].iter().all(|&b| b == 0));
}

#[test]
fn file_extents_copy_contiguous_bodies_and_skip_zero_pages() {
    // A "stream" file: bodies of pfns 5, 6 back to back at 100, pfn 8 at 10000, pfn 7 zero.
    let src = tempfile::tempfile().unwrap();
    src.write_all_at(&page_of(5, 4096), 100).unwrap();
    src.write_all_at(&page_of(6, 4096), 4196).unwrap();
    src.write_all_at(&page_of(8, 4096), 10_000).unwrap();
    let input = CoreInput { page_shift: 12, runs: vec![[5, 4]], machine: Machine::X86_64, cpus: Cpus::None };
    let mut calls = Vec::new();
    let mut pages = FileExtents::new(&src, |pfn| {
        calls.push(pfn);
        match pfn {
            5 => Some(PageBody::At(100)),
            6 => Some(PageBody::At(4196)),
            7 => Some(PageBody::Zero),
            8 => Some(PageBody::At(10_000)),
            _ => None,
        }
    });
    let out = tempfile::tempfile().unwrap();
    write_raw(&out, &input, &mut pages).unwrap();
    let _ = pages;
    assert_eq!(calls, [5, 6, 7, 8]);
    let d = read_all(&out);
    assert!(d[5 * 4096..6 * 4096] == page_of(5, 4096)[..] && d[6 * 4096..7 * 4096] == page_of(6, 4096)[..]);
    assert!(d[7 * 4096..8 * 4096].iter().all(|&b| b == 0));
    assert!(d[8 * 4096..] == page_of(8, 4096)[..]);

    // A run the lookup does not know, and a body past the end of the source: errors.
    let bad = CoreInput { runs: vec![[5, 5]], ..input.clone() };
    let mut pages = FileExtents::new(&src, |pfn| (pfn < 9).then_some(PageBody::At(100)));
    let e = write_raw(&tempfile::tempfile().unwrap(), &bad, &mut pages).unwrap_err();
    assert!(matches!(&e, DumpError::Io { source, .. } if source.kind() == io::ErrorKind::InvalidInput), "{e}");
    let mut pages = FileExtents::new(&src, |_| Some(PageBody::At(1 << 20)));
    let e = write_raw(&tempfile::tempfile().unwrap(), &input, &mut pages).unwrap_err();
    assert!(matches!(&e, DumpError::Io { source, .. } if source.kind() == io::ErrorKind::UnexpectedEof), "{e}");
}

#[test]
fn bad_inputs_are_rejected_before_writing() {
    let ok = CoreInput { page_shift: 12, runs: vec![[0, 1]], machine: Machine::X86_64, cpus: Cpus::None };
    let cases = [
        CoreInput { runs: vec![[4, 2], [5, 1]], ..ok.clone() },
        CoreInput { runs: vec![[4, 0]], ..ok.clone() },
        CoreInput { runs: vec![[u64::MAX - 1, 4]], ..ok.clone() },
        CoreInput { page_shift: 40, ..ok.clone() },
        CoreInput { machine: Machine::Aarch64, cpus: Cpus::X86(vec![(0, regs(0))]), ..ok.clone() },
    ];
    for c in cases {
        let out = tempfile::tempfile().unwrap();
        assert!(write_elf(&out, &c, &mut fill_source()).is_err(), "{c:?}");
        assert!(write_lime(&out, &c, &mut fill_source()).is_err(), "{c:?}");
        assert_eq!(out.metadata().unwrap().len(), 0, "nothing written for {c:?}");
    }
}

#[test]
fn aarch64_core_has_the_arm_register_note() {
    let mut r =
        Aarch64Regs { pc: 0xffff_8000_1008_0000, sp: 0xffff_8000_1200_0000, pstate: 0x3c5, ..Default::default() };
    r.x[29] = 0xffff_8000_11ff_ff00;
    let input =
        CoreInput { page_shift: 16, runs: vec![[4, 2]], machine: Machine::Aarch64, cpus: Cpus::Aarch64(vec![(0, r)]) };
    let out = tempfile::tempfile().unwrap();
    write_elf(&out, &input, &mut fill_source()).unwrap();
    let data = read_all(&out);
    let h = FileHeader64::<LittleEndian>::parse(&data[..]).unwrap();
    assert_eq!(h.e_machine.get(LittleEndian), 183);
    let ph = program_headers(&data);
    assert_eq!((ph[1].1 % 65536, ph[1].2, ph[1].3), (0, 4 << 16, 2 << 16));
    let n = notes(&data);
    assert_eq!(n.len(), 1);
    assert_eq!((&n[0].0[..], n[0].1), (&b"CORE"[..], 1));
    assert_eq!(n[0].2, arm64_prstatus(0, &r));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]
    #[test]
    fn every_page_lands_at_its_address(pfns in proptest::collection::btree_set(0u64..4096, 1..64), with_regs: bool) {
        let input = CoreInput {
            page_shift: 12,
            runs: CoreInput::runs_of(pfns.iter().copied()),
            machine: Machine::X86_64,
            cpus: if with_regs { Cpus::X86(vec![(0, regs(0))]) } else { Cpus::None },
        };
        prop_assert_eq!(input.pages(), pfns.len() as u64);
        let out = tempfile::tempfile().unwrap();
        write_elf(&out, &input, &mut fill_source()).unwrap();
        let data = read_all(&out);
        let ph = program_headers(&data);
        prop_assert_eq!(ph.len(), input.runs.len() + usize::from(with_regs));
        let mut seen = 0;
        for (_, off, paddr, filesz) in ph.into_iter().filter(|p| p.0 == PT_LOAD) {
            for i in 0..filesz >> 12 {
                let at = (off + (i << 12)) as usize;
                prop_assert!(data[at..at + 4096] == page_of((paddr >> 12) + i, 4096)[..]);
                prop_assert!(pfns.contains(&((paddr >> 12) + i)));
                seen += 1;
            }
        }
        prop_assert_eq!(seen, pfns.len());

        let out = tempfile::tempfile().unwrap();
        write_lime(&out, &input, &mut fill_source()).unwrap();
        let data = read_all(&out);
        let (mut at, mut seen) = (0usize, 0usize);
        while at < data.len() {
            prop_assert_eq!(get32(&data, at), LIME_MAGIC);
            let (start, end) = (get64(&data, at + 8), get64(&data, at + 16));
            at += 32;
            for a in (start..=end).step_by(4096) {
                prop_assert!(data[at..at + 4096] == page_of(a >> 12, 4096)[..]);
                at += 4096;
                seen += 1;
            }
        }
        prop_assert_eq!(seen, pfns.len());
    }
}

#[test]
fn slice_extents_write_what_file_extents_write_and_call_the_window_per_extent() {
    // The same "stream" as above, as bytes (a map of the file, in extract).
    let mut stream = vec![0u8; 10_000 + 4096];
    stream[100..4196].copy_from_slice(&page_of(5, 4096));
    stream[4196..8292].copy_from_slice(&page_of(6, 4096));
    stream[10_000..].copy_from_slice(&page_of(8, 4096));
    let src = tempfile::tempfile().unwrap();
    src.write_all_at(&stream, 0).unwrap();
    let lookup = |pfn| match pfn {
        5 => Some(PageBody::At(100)),
        6 => Some(PageBody::At(4196)),
        7 => Some(PageBody::Zero),
        8 => Some(PageBody::At(10_000)),
        _ => None,
    };
    let input = CoreInput { page_shift: 12, runs: vec![[5, 4]], machine: Machine::X86_64, cpus: Cpus::None };
    for write in [write_raw, write_elf, write_lime] {
        let by_file = tempfile::tempfile().unwrap();
        write(&by_file, &input, &mut FileExtents::new(&src, lookup)).unwrap();
        let mut windows = Vec::new();
        let by_slice = tempfile::tempfile().unwrap();
        write(&by_slice, &input, &mut SliceExtents::new(&stream, lookup, |o| windows.push(o))).unwrap();
        assert_eq!(read_all(&by_file), read_all(&by_slice));
        // One extent for pfns 5-6 (contiguous bodies), none for the zero page, one for pfn 8.
        assert_eq!(windows, [100, 10_000]);
    }
    // A body past the end of the slice is an error, not a panic.
    let mut pages = SliceExtents::new(&stream, |_| Some(PageBody::At(10_001)), |_| {});
    let e = write_raw(&tempfile::tempfile().unwrap(), &input, &mut pages).unwrap_err();
    assert!(matches!(&e, DumpError::Io { source, .. } if source.kind() == io::ErrorKind::UnexpectedEof), "{e}");
}
