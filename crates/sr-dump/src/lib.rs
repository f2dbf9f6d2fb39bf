//! Guest-memory core files for Xen domains, written once, page body by page body, straight to
//! their final offsets.
//!
//! The input is what any producer of guest memory has ([`CoreInput`]): the populated pfns in
//! order (as runs), a [`PageSource`] that copies a run's page bodies to an output offset
//! (from a raw image, from page bodies at known offsets of a save file, or from bytes a
//! callback provides) and each vcpu's registers ([`Cpus`]). The writers lay the file out
//! first (headers and notes are small), then copy every page body once:
//!
//! * [`write_elf`]: an ELF64 `ET_CORE`, one `PT_NOTE` with an `NT_PRSTATUS` ("CORE") note per
//!   vcpu (`pr_pid` = vcpu + 1, so gdb shows one thread per vcpu) and, for x86, QEMU's "QEMU"
//!   CPU-state note per vcpu (read by crash and QEMU's elf2dmp), then one `PT_LOAD` per run
//!   (`p_paddr` = `p_vaddr` = guest-physical address). More than 65534 program headers use
//!   ELF extended numbering (`e_phnum` = `PN_XNUM`, the count in section 0's `sh_info`).
//! * [`write_lime`]: LiME (`"EMiL"` range headers, version 1, inclusive end address), one
//!   range per run.
//! * [`write_raw`]: a sparse raw image, pfn p at byte `p << page_shift`.
//!
//! Pages a source reports as zero are left as holes (never written), so outputs are sparse
//! where the guest's memory is zero-filled.
//!
//! ```
//! use sr_dump::{BytesSource, CoreInput, Cpus, Machine, write_lime};
//!
//! let input = CoreInput { page_shift: 12, runs: vec![[0x10, 2]], machine: Machine::X86_64, cpus: Cpus::None };
//! let mut pages = BytesSource::new(|pfn, buf: &mut [u8]| {
//!     buf.fill(pfn as u8);
//!     Ok(())
//! });
//! let out = tempfile::tempfile()?;
//! let len = write_lime(&out, &input, &mut pages)?;
//! assert_eq!(len, 32 + 2 * 4096);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod elf;
mod lime;
mod notes;
mod raw;
mod source;

pub use elf::write_elf;
pub use lime::{LIME_MAGIC, LIME_VERSION, LimeHeader, write_lime};
pub use notes::{
    ARM64_PRSTATUS_SIZE, QEMU_CPU_STATE_SIZE, X86_64_PRSTATUS_SIZE, arm64_prstatus, qemu_cpu_state, x86_64_prstatus,
};
pub use raw::write_raw;
pub use source::{BytesSource, FileExtents, PageBody, PageSource, RawImageSource, SliceExtents};

use sr_format::DomainType;
use sr_format::body::hvm_context::decode;
use sr_format::body::pv_vcpu_regs;
use sr_format::cpu::{Aarch64Regs, X86Regs};
use sr_format::state::DomainState;

/// The architecture of the core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Machine {
    /// x86-64 (`EM_X86_64`).
    X86_64,
    /// AArch64 (`EM_AARCH64`).
    Aarch64,
}

/// Per-vcpu registers: `(vcpu id, registers)`, in the order the notes are written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cpus {
    /// No register state (the core has memory only).
    None,
    /// x86 vcpus.
    X86(Vec<(u32, X86Regs)>),
    /// AArch64 vcpus.
    Aarch64(Vec<(u32, Aarch64Regs)>),
}

impl Cpus {
    /// Number of vcpus.
    pub fn len(&self) -> usize {
        match self {
            Cpus::None => 0,
            Cpus::X86(v) => v.len(),
            Cpus::Aarch64(v) => v.len(),
        }
    }

    /// True when there is no register state.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The registers a stream's state carries: x86 PV vcpu contexts (X86_PV_VCPU_BASIC,
    /// decoded for the guest width of X86_PV_INFO) or the CPU records of an x86 HVM_CONTEXT
    /// blob. ARM streams carry no register records (Xen defines none), so they give
    /// [`Cpus::None`], as does a PV vcpu whose context is not its width's size.
    ///
    /// # Errors
    ///
    /// The HVM_CONTEXT blob's save records are malformed (see
    /// [`sr_format::body::hvm_context::decode`]; offsets are relative to the blob).
    pub fn from_state(state: &DomainState) -> Result<Self, sr_format::Error> {
        if state.domain_type == DomainType::ARM {
            return Ok(Cpus::None);
        }
        if let Some(info) = state.pv_info {
            let regs: Vec<(u32, X86Regs)> = state
                .vcpus
                .iter()
                .filter_map(|(&id, v)| Some((id, pv_vcpu_regs(v.basic.as_deref()?, info.guest_width)?)))
                .collect();
            return Ok(if regs.is_empty() { Cpus::None } else { Cpus::X86(regs) });
        }
        match &state.hvm_context {
            Some(blob) => {
                let regs: Vec<(u32, X86Regs)> =
                    decode(blob, 0)?.vcpu_regs().into_iter().map(|(id, r)| (u32::from(id), r)).collect();
                Ok(if regs.is_empty() { Cpus::None } else { Cpus::X86(regs) })
            }
            None => Ok(Cpus::None),
        }
    }
}

/// What a core is written from (the page bodies come from a [`PageSource`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoreInput {
    /// log2 of the page size (12 for 4 KiB).
    pub page_shift: u32,
    /// Runs of populated pfns, `[first pfn, count]`, ascending and not overlapping.
    pub runs: Vec<[u64; 2]>,
    /// The architecture.
    pub machine: Machine,
    /// Registers.
    pub cpus: Cpus,
}

impl CoreInput {
    /// Builds the runs from populated pfns in ascending order.
    pub fn runs_of(pfns: impl IntoIterator<Item = u64>) -> Vec<[u64; 2]> {
        let mut runs: Vec<[u64; 2]> = Vec::new();
        for pfn in pfns {
            match runs.last_mut() {
                Some([first, count]) if *first + *count == pfn => *count += 1,
                _ => runs.push([pfn, 1]),
            }
        }
        runs
    }

    /// Populated pages.
    pub fn pages(&self) -> u64 {
        self.runs.iter().map(|r| r[1]).sum()
    }

    pub(crate) fn check(&self) -> Result<(), DumpError> {
        if !(12..=30).contains(&self.page_shift) {
            return Err(DumpError::BadPageShift(self.page_shift));
        }
        let mut next = 0u64;
        for (i, &[first, count]) in self.runs.iter().enumerate() {
            let end = first.checked_add(count).filter(|&e| e <= (u64::MAX >> self.page_shift));
            match end {
                Some(end) if count > 0 && (i == 0 || first >= next) => next = end,
                _ => return Err(DumpError::BadRun { index: i, first, count }),
            }
        }
        let arch_ok = matches!(
            (&self.cpus, self.machine),
            (Cpus::None, _) | (Cpus::X86(_), Machine::X86_64) | (Cpus::Aarch64(_), Machine::Aarch64)
        );
        if !arch_ok {
            return Err(DumpError::MachineMismatch);
        }
        Ok(())
    }
}

/// Why a core could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DumpError {
    /// A run is empty, overlaps or precedes the one before, or ends past the address space.
    #[error("run {index} (first pfn {first:#x}, {count} pages) is empty, out of order or beyond the address space")]
    BadRun {
        /// Index of the run.
        index: usize,
        /// Its first pfn.
        first: u64,
        /// Its page count.
        count: u64,
    },
    /// The page shift is outside 12..=30.
    #[error("page shift {0} is outside 12..=30")]
    BadPageShift(u32),
    /// The registers are for another architecture than the machine.
    #[error("the vcpu registers do not match the core's machine")]
    MachineMismatch,
    /// Reading a page body or writing the output failed.
    #[error("I/O error at output byte {offset}: {source}")]
    Io {
        /// Output offset being written.
        offset: u64,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The ELF writer failed.
    #[error("ELF writer: {0}")]
    Elf(String),
}

impl From<DumpError> for std::io::Error {
    fn from(e: DumpError) -> Self {
        match e {
            DumpError::Io { source, .. } => source,
            other => std::io::Error::other(other),
        }
    }
}

/// Copies every run's page bodies to its output offset (`offset_of(run index)`).
pub(crate) fn copy_runs(
    out: &std::fs::File,
    input: &CoreInput,
    pages: &mut dyn PageSource,
    offset_of: impl Fn(usize) -> u64,
) -> Result<(), DumpError> {
    for (i, &[first, count]) in input.runs.iter().enumerate() {
        let at = offset_of(i);
        pages
            .copy_run(first, count, input.page_shift, out, at)
            .map_err(|source| DumpError::Io { offset: at, source })?;
    }
    Ok(())
}

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
