//! `xsr read`: guest memory at a guest-physical or guest-virtual address, as raw bytes or a
//! hex dump.

use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::{Context, Result, bail};
use sr_image::{Backing, GuestImage, Holes, PagingMode, TranslateError, VcpuPaging, translate, vcpu_paging};

use crate::output::OutputRules;

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
        // Paging off: the virtual address is the physical one, no CR3 is used.
        (None, Some(PagingMode::None)) => Ok(VcpuPaging { mode: PagingMode::None, cr3: 0 }),
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

/// The most bytes `--json` prints as hex on standard output (larger reads go to a file with
/// `--out`).
pub const MAX_JSON_LEN: u64 = 16 << 20;

/// What `xsr read` read (`--json`).
#[derive(Debug, serde::Serialize)]
pub struct ReadSummary {
    /// The address given.
    pub address: u64,
    /// "physical" or "virtual".
    pub space: &'static str,
    /// With a virtual address: the vcpu, CR3 and paging mode that translated it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vcpu: Option<u32>,
    /// The CR3 used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cr3: Option<u64>,
    /// The paging mode used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paging: Option<&'static str>,
    /// Bytes read.
    pub length: u64,
    /// The file written (`--out`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub out: Option<std::path::PathBuf>,
    /// The bytes as hex digits, when they are not written to a file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

/// Where `xsr read` puts the bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadOutput<'a> {
    /// A hex dump with addresses on standard output.
    HexDump,
    /// The bytes as hex digits in the summary (`--json`), at most [`MAX_JSON_LEN`].
    Json,
    /// The raw bytes into a file (written atomically) or standard output (`-`).
    Raw(&'a Path),
}

/// Runs `xsr read`: `len` bytes at `address`, to `out`. A file output is checked against
/// `rules` and created before the stream is read. Returns what was read.
pub fn read(
    file: &Path,
    address: Address,
    len: u64,
    out: ReadOutput<'_>,
    holes: Holes,
    rules: &OutputRules,
) -> Result<ReadSummary> {
    if out == ReadOutput::Json && len > MAX_JSON_LEN {
        bail!(
            "--json prints at most {} as hex (--len {} asked); write larger reads to a file with --out",
            crate::size::format_size(MAX_JSON_LEN),
            crate::size::format_size(len)
        );
    }
    let dest = match out {
        ReadOutput::Raw(path) if path.as_os_str() == "-" => {
            rules.check_stdout()?;
            None
        }
        ReadOutput::Raw(path) => Some(rules.file(path)?),
        _ => None,
    };
    let image = crate::input::open_image(file)?;
    let (start, paging) = match address {
        Address::Phys(a) => (a, None),
        Address::Virt { va, vcpu, cr3, paging } => (va, Some(paging_for(&image, vcpu, cr3, paging)?)),
    };
    if len > 0 && start.checked_add(len - 1).is_none() {
        bail!("{start:#x} + {len} overflows the address space");
    }
    let mut buf = vec![0u8; CHUNK.min(usize::try_from(len).unwrap_or(CHUNK))];
    // Write errors name the file written (`sink`); read errors say what could not be read.
    let mut emit = |out: &mut dyn Write, hex: bool, sink: Option<&Path>| -> Result<()> {
        let named = |e: std::io::Error| match sink {
            Some(path) => anyhow::Error::new(e).context(format!("cannot write {}", path.display())),
            None => anyhow::Error::new(e),
        };
        let mut done = 0u64;
        while done < len {
            let n = (len - done).min(buf.len() as u64) as usize;
            let at = start + done;
            read_at(&image, at, paging, &mut buf[..n], holes)?;
            if hex {
                let cfg = pretty_hex::HexConfig { title: false, display_offset: at as usize, ..Default::default() };
                writeln!(out, "{}", pretty_hex::config_hex(&&buf[..n], cfg)).map_err(named)?;
            } else {
                out.write_all(&buf[..n]).map_err(named)?;
            }
            done += n as u64;
        }
        out.flush().map_err(named)?;
        Ok(())
    };
    let mut summary = ReadSummary {
        address: start,
        space: if paging.is_some() { "virtual" } else { "physical" },
        vcpu: match address {
            Address::Virt { vcpu, .. } => Some(vcpu),
            Address::Phys(_) => None,
        },
        cr3: paging.map(|p| p.cr3),
        paging: paging.map(|p| p.mode.name()),
        length: len,
        out: None,
        data: None,
    };
    match (out, dest) {
        (ReadOutput::Raw(path), Some((dest, f))) => {
            let mut w = BufWriter::new(f);
            emit(&mut w, false, Some(path))?;
            let f = w
                .into_inner()
                .map_err(|e| e.into_error())
                .with_context(|| format!("cannot write {}", path.display()))?;
            f.sync_all().with_context(|| format!("cannot write {}", path.display()))?;
            drop(f);
            dest.commit()?;
            summary.out = Some(path.to_path_buf());
        }
        // Raw bytes on standard output: the product, so a closed pipe is an error (exit 2).
        (ReadOutput::Raw(_), _) => emit(&mut std::io::stdout().lock(), false, None)?,
        (ReadOutput::Json, _) => {
            let mut bytes = Vec::with_capacity(len as usize);
            emit(&mut bytes, false, None)?;
            summary.data = Some(bytes.iter().map(|b| format!("{b:02x}")).collect());
        }
        (ReadOutput::HexDump, _) => emit(&mut std::io::stdout().lock(), true, None)?,
    }
    Ok(summary)
}
