//! `xsr read`: guest memory at a guest-physical or guest-virtual address, as raw bytes or a
//! hex dump.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::{Context, Result, bail};
use sr_image::{Backing, GuestImage, Holes, PagingMode, TranslateError, VcpuPaging, translate, vcpu_paging};

use crate::image_dir::AtomicFile;

/// Bytes read and written per step: memory stays bounded whatever `--len` is.
const CHUNK: usize = 1 << 20;

/// A paging mode named on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PagingArg {
    /// Paging off: virtual = physical.
    None,
    /// 32-bit paging without 4 MiB pages.
    #[value(name = "2level")]
    TwoLevel,
    /// 32-bit paging with 4 MiB pages (CR4.PSE).
    #[value(name = "2level-pse")]
    TwoLevelPse,
    /// PAE paging.
    Pae,
    /// 4-level (x86-64) paging.
    #[value(name = "4level")]
    FourLevel,
    /// 5-level paging.
    #[value(name = "5level")]
    FiveLevel,
}

impl From<PagingArg> for PagingMode {
    fn from(a: PagingArg) -> Self {
        match a {
            PagingArg::None => PagingMode::None,
            PagingArg::TwoLevel => PagingMode::TwoLevel { pse: false },
            PagingArg::TwoLevelPse => PagingMode::TwoLevel { pse: true },
            PagingArg::Pae => PagingMode::Pae,
            PagingArg::FourLevel => PagingMode::FourLevel,
            PagingArg::FiveLevel => PagingMode::FiveLevel,
        }
    }
}

/// Where to read.
#[derive(Clone, Copy, Debug)]
pub enum Address {
    /// A guest-physical address.
    Phys(u64),
    /// A guest-virtual address of a vcpu; `cr3` and `paging` override what the stream says.
    Virt {
        /// The address.
        va: u64,
        /// The vcpu whose CR3 and paging mode translate it.
        vcpu: u32,
        /// An explicit CR3.
        cr3: Option<u64>,
        /// An explicit paging mode.
        paging: Option<PagingMode>,
    },
}

/// The paging state to translate with: the stream's, with explicit overrides.
pub fn paging_for<B: Backing>(
    image: &GuestImage<B>,
    vcpu: u32,
    cr3: Option<u64>,
    paging: Option<PagingMode>,
) -> Result<VcpuPaging> {
    match (cr3, paging) {
        (Some(cr3), Some(mode)) => Ok(VcpuPaging { mode, cr3 }),
        _ => {
            let from_stream = vcpu_paging(image.index(), vcpu).with_context(|| {
                format!("vcpu {vcpu}: no paging state (give --cr3 and --paging to translate explicitly)")
            })?;
            Ok(VcpuPaging { mode: paging.unwrap_or(from_stream.mode), cr3: cr3.unwrap_or(from_stream.cr3) })
        }
    }
}

/// Reads `buf.len()` bytes at `addr` into `buf`; a virtual range is translated page by page
/// (4 KiB steps: each virtual page may map anywhere).
pub fn read_at<B: Backing>(
    image: &GuestImage<B>,
    addr: u64,
    paging: Option<VcpuPaging>,
    buf: &mut [u8],
    holes: Holes,
) -> Result<()> {
    let Some(p) = paging else {
        return image.read_phys(addr, buf, holes).map_err(anyhow::Error::from);
    };
    let mut done = 0usize;
    while done < buf.len() {
        let va = addr.checked_add(done as u64).context("virtual range overflows the address space")?;
        let n = (4096 - (va & 0xFFF) as usize).min(buf.len() - done);
        match translate(image, p.mode, p.cr3, va) {
            Ok(t) => image.read_phys(t.phys, &mut buf[done..done + n], holes)?,
            Err(TranslateError::NotPresent { .. }) if holes == Holes::Zero => buf[done..done + n].fill(0),
            Err(e) => return Err(e.into()),
        }
        done += n;
    }
    Ok(())
}

/// Runs `xsr read`: `len` bytes at `address` to `out` (raw; `-` is standard output) or
/// standard output (hex dump with addresses). Returns the bytes read.
pub fn read(file: &Path, address: Address, len: u64, out: Option<&Path>, holes: Holes) -> Result<u64> {
    let image = crate::input::open_image(file)?;
    let (start, paging) = match address {
        Address::Phys(a) => (a, None),
        Address::Virt { va, vcpu, cr3, paging } => (va, Some(paging_for(&image, vcpu, cr3, paging)?)),
    };
    if len > 0 && start.checked_add(len - 1).is_none() {
        bail!("{start:#x} + {len} overflows the address space");
    }
    let mut buf = vec![0u8; CHUNK.min(usize::try_from(len).unwrap_or(CHUNK))];
    let mut emit = |out: &mut dyn Write, hex: bool| -> Result<()> {
        let mut done = 0u64;
        while done < len {
            let n = (len - done).min(buf.len() as u64) as usize;
            let at = start + done;
            read_at(&image, at, paging, &mut buf[..n], holes)?;
            if hex {
                let cfg = pretty_hex::HexConfig { title: false, display_offset: at as usize, ..Default::default() };
                writeln!(out, "{}", pretty_hex::config_hex(&&buf[..n], cfg))?;
            } else {
                out.write_all(&buf[..n])?;
            }
            done += n as u64;
        }
        out.flush()?;
        Ok(())
    };
    match out {
        // Raw bytes on standard output: the product, so a closed pipe is an error (exit 2).
        Some(path) if path.as_os_str() == "-" => emit(&mut std::io::stdout().lock(), false)?,
        Some(path) => {
            let dest = AtomicFile::new(path)?;
            let f = File::create(dest.path()).with_context(|| format!("cannot create {}", dest.path().display()))?;
            let mut w = BufWriter::new(f);
            emit(&mut w, false)?;
            w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
            dest.commit()?;
        }
        None => emit(&mut std::io::stdout().lock(), true)?,
    }
    Ok(len)
}
