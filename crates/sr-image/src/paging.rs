//! A vcpu's paging state (mode and CR3) as the stream records it.

use sr_format::body::{PvInfo, Vcpu, VcpuFrames};
use sr_format::{DomainType, RecordType};

use crate::index::PageIndex;
use crate::translate::PagingMode;

/// What [`translate`](crate::translate) needs for one vcpu.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VcpuPaging {
    /// The paging mode.
    pub mode: PagingMode,
    /// CR3 as the hardware sees it (for PV: the top-level table's pfn << 12).
    pub cr3: u64,
}

/// Why a vcpu's paging state is not known.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PagingError {
    /// The stream has no record with it.
    #[error("no {what} in the stream")]
    Missing {
        /// What is missing.
        what: String,
    },
    /// The record is there but malformed.
    #[error("byte {offset}: {what}")]
    Malformed {
        /// The record's offset.
        offset: u64,
        /// What is wrong.
        what: String,
    },
    /// The domain type has no CPU state this crate decodes.
    #[error("{domain} streams: the CPU state is not decoded here; give CR3 and the paging mode explicitly")]
    Unsupported {
        /// The domain type's name.
        domain: String,
    },
}

/// The paging state of `vcpu`.
///
/// For x86 PV: the mode from X86_PV_INFO (guest width and page-table levels:
/// [`PagingMode::for_pv`]) and CR3 from the vcpu's X86_PV_VCPU_BASIC context (already a pfn:
/// the saver converted it). For x86 HVM and PVH: CR0, CR3, CR4 and EFER from the vcpu's CPU
/// save record in HVM_CONTEXT ([`PagingMode::from_registers`]). ARM is
/// [`PagingError::Unsupported`] (its stage-1 tables are not walked here).
///
/// # Errors
///
/// A missing or malformed record, or an unsupported domain type.
pub fn vcpu_paging(index: &PageIndex, vcpu: u32) -> Result<VcpuPaging, PagingError> {
    match index.domain_type() {
        DomainType::X86_PV => pv_paging(index, vcpu),
        DomainType::X86_HVM | DomainType::X86_PVH => hvm_paging(index, vcpu),
        other => Err(PagingError::Unsupported { domain: other.to_string() }),
    }
}

fn malformed(offset: u64, what: String) -> PagingError {
    PagingError::Malformed { offset, what }
}

fn hvm_paging(index: &PageIndex, vcpu: u32) -> Result<VcpuPaging, PagingError> {
    let ctx = index
        .state_record(RecordType::HVM_CONTEXT, None)
        .ok_or_else(|| PagingError::Missing { what: "HVM_CONTEXT".into() })?;
    let records = sr_format::body::hvm_context::decode(&ctx.body, ctx.offset + 8)
        .map_err(|e| malformed(ctx.offset, e.to_string()))?;
    let (_, regs) = records
        .vcpu_regs()
        .into_iter()
        .find(|(instance, _)| u32::from(*instance) == vcpu)
        .ok_or_else(|| PagingError::Missing { what: format!("HVM CPU save record for vcpu {vcpu}") })?;
    Ok(VcpuPaging { mode: PagingMode::from_registers(regs.cr0, regs.cr4, regs.efer), cr3: regs.cr3 })
}

fn pv_paging(index: &PageIndex, vcpu: u32) -> Result<VcpuPaging, PagingError> {
    let info = index
        .state_record(RecordType::X86_PV_INFO, None)
        .ok_or_else(|| PagingError::Missing { what: "X86_PV_INFO".into() })?;
    let info = PvInfo::parse(&info.as_record()).map_err(|e| malformed(info.offset, e.to_string()))?;
    let (width, levels) = (info.guest_width, info.pt_levels);
    let mode = PagingMode::for_pv(width, levels)
        .ok_or_else(|| malformed(0, format!("guest width {width} with {levels} page-table levels")))?;
    let basic = index
        .state_record(RecordType::X86_PV_VCPU_BASIC, Some(vcpu))
        .ok_or_else(|| PagingError::Missing { what: format!("X86_PV_VCPU_BASIC for vcpu {vcpu}") })?;
    let rec = basic.as_record();
    let ctx = Vcpu::parse(&rec).map_err(|e| malformed(basic.offset, e.to_string()))?;
    let frames = VcpuFrames::read(ctx.blob, width).ok_or_else(|| {
        malformed(basic.offset, format!("vcpu context of {} bytes for a guest width of {width}", ctx.blob.len()))
    })?;
    Ok(VcpuPaging { mode, cr3: frames.cr3_pfn << 12 })
}
