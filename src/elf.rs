//! An ELF64 core file of guest memory: one PT_LOAD per run of consecutive populated pfns,
//! physical (and virtual) address = guest physical address.

use std::fs::File;
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;

/// ELF machine for x86-64.
pub const EM_X86_64: u16 = 62;
/// ELF machine for AArch64.
pub const EM_AARCH64: u16 = 183;
const PN_XNUM: u16 = 0xFFFF;
const EHDR_SIZE: u64 = 64;
const PHDR_SIZE: u64 = 56;
const SHDR_SIZE: u64 = 64;

/// Writes an ELF core to `out` with the memory runs `runs` ([first pfn, count]) read from the
/// raw image `image` (pfn p at byte p << page_shift). Returns the bytes written.
pub fn write_core(out: &mut File, image: &File, runs: &[[u64; 2]], page_shift: u32, machine: u16) -> io::Result<u64> {
    let page = 1u64 << page_shift;
    let phnum = runs.len() as u64;
    let extended = phnum >= u64::from(PN_XNUM);
    let shoff = if extended { EHDR_SIZE } else { 0 };
    let phoff = EHDR_SIZE + if extended { SHDR_SIZE } else { 0 };
    let mut data_off = (phoff + phnum * PHDR_SIZE).div_ceil(page) * page;

    let mut w = BufWriter::new(&mut *out);
    // e_ident: magic, 64-bit, little-endian, version 1, System V ABI.
    w.write_all(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0])?;
    w.write_all(&4u16.to_le_bytes())?; // ET_CORE
    w.write_all(&machine.to_le_bytes())?;
    w.write_all(&1u32.to_le_bytes())?; // EV_CURRENT
    w.write_all(&0u64.to_le_bytes())?; // e_entry
    w.write_all(&phoff.to_le_bytes())?;
    w.write_all(&shoff.to_le_bytes())?;
    w.write_all(&0u32.to_le_bytes())?; // e_flags
    w.write_all(&(EHDR_SIZE as u16).to_le_bytes())?;
    w.write_all(&(PHDR_SIZE as u16).to_le_bytes())?;
    w.write_all(&(if extended { PN_XNUM } else { phnum as u16 }).to_le_bytes())?;
    w.write_all(&(SHDR_SIZE as u16).to_le_bytes())?;
    w.write_all(&(u16::from(extended)).to_le_bytes())?; // e_shnum
    w.write_all(&0u16.to_le_bytes())?; // e_shstrndx
    if extended {
        // Section 0 carries the real program header count in sh_info (PN_XNUM convention).
        let mut shdr = [0u8; SHDR_SIZE as usize];
        shdr[44..48].copy_from_slice(&u32::try_from(phnum).unwrap_or(u32::MAX).to_le_bytes());
        w.write_all(&shdr)?;
    }
    let mut offsets = Vec::with_capacity(runs.len());
    for &[pfn, count] in runs {
        let (addr, len) = (pfn << page_shift, count << page_shift);
        w.write_all(&1u32.to_le_bytes())?; // PT_LOAD
        w.write_all(&7u32.to_le_bytes())?; // PF_R | PF_W | PF_X
        w.write_all(&data_off.to_le_bytes())?;
        w.write_all(&addr.to_le_bytes())?; // p_vaddr
        w.write_all(&addr.to_le_bytes())?; // p_paddr
        w.write_all(&len.to_le_bytes())?; // p_filesz
        w.write_all(&len.to_le_bytes())?; // p_memsz
        w.write_all(&page.to_le_bytes())?; // p_align
        offsets.push(data_off);
        data_off += len;
    }
    w.flush()?;
    drop(w);
    let mut buf = vec![0u8; 4 << 20];
    for (&[pfn, count], &off) in runs.iter().zip(&offsets) {
        let (mut src, end) = (pfn << page_shift, (pfn + count) << page_shift);
        out.seek(SeekFrom::Start(off))?;
        while src < end {
            let n = buf.len().min((end - src) as usize);
            read_exact_or_zero(image, &mut buf[..n], src)?;
            out.write_all(&buf[..n])?;
            src += n as u64;
        }
    }
    Ok(data_off)
}

/// Reads `buf.len()` bytes at `offset`, zero-filling past the end of the file.
fn read_exact_or_zero(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => {
                buf[done..].fill(0);
                break;
            }
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
