//! `GuestMemory::lend_pages`: lending backends agree with `read_pages`, the others say `None`.

use sr_memory::{FileMemory, GuestMemory, Pfn, RamMemory};

fn lent(mem: &dyn GuestMemory, pfns: &[Pfn]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let res = mem.lend_pages(pfns, &mut |slices| {
        slices.iter().for_each(|s| out.extend_from_slice(s));
        Ok(())
    })?;
    res.unwrap();
    Some(out)
}

#[test]
fn ram_lends_what_it_reads() {
    for shift in [12, 14, 16] {
        let mem = RamMemory::new(shift, 3000).unwrap();
        let size = 1usize << shift;
        let pfns: Vec<Pfn> = (0..3000).filter(|p| p % 7 == 0 || (500..530).contains(p)).collect();
        let data: Vec<u8> = (0..pfns.len() * size).map(|i| (i / size) as u8 ^ (i % 251) as u8).collect();
        mem.write_pages(&pfns, &data).unwrap();
        let ask: Vec<Pfn> = (0..3000).step_by(3).chain([2999, 0, 0]).collect();
        let mut want = vec![0; ask.len() * size];
        mem.read_pages(&ask, &mut want).unwrap();
        assert_eq!(lent(&mem, &ask).unwrap(), want, "shift {shift}");
        // Forwarding through pointers.
        assert_eq!(lent(&&mem, &ask).unwrap(), want);
        assert_eq!(lent(&Box::new(&mem), &ask).unwrap(), want);
    }
}

#[test]
fn file_memory_does_not_lend() {
    let dir = tempfile::tempdir().unwrap();
    let mem = FileMemory::create(dir.path().join("g.img"), 12, 16).unwrap();
    assert!(lent(&mem, &[]).is_none());
    assert!(lent(&mem, &[1]).is_none());
}
