//! x86 PV (domain type 1): X86_PV_INFO first, then the p2m frame list, vcpu contexts and the
//! shared info page, plus the shared x86 records.
//!
//! The rules on the state (vcpu blob sizes here; at END the frames the records name and the
//! start_info page, rows 44-46) and on page-table bodies live in `sr_rules::pv`, which the
//! saver applies too.

use sr_format::body::{P2mFrames, PvInfo, SharedInfo, Vcpu};
use sr_format::state::{P2mState, PvInfoState};
use sr_format::{Record, RecordType};

use super::{Context, DomainHandler, Handled, reject, x86_common};
use crate::error::RestoreError;

/// The x86 PV handler.
#[derive(Debug, Default)]
pub(crate) struct X86Pv {
    /// Highest pfn of the p2m, once X86_PV_P2M_FRAMES was read.
    max_pfn: Option<u32>,
}

impl X86Pv {
    fn width(cx: &Context<'_>, rec: &Record<'_>) -> Result<u8, RestoreError> {
        match cx.state.pv_info {
            Some(info) => Ok(info.guest_width),
            None => Err(reject(rec, format!("{} before X86_PV_INFO", rec.rtype))),
        }
    }

    fn pv_info(cx: &mut Context<'_>, rec: &Record<'_>) -> Result<(), RestoreError> {
        if cx.state.pv_info.is_some() {
            return Err(reject(rec, "second X86_PV_INFO"));
        }
        let info = PvInfo::parse(rec)?;
        if rec.body.len() != 8 {
            if cx.options.strictness.is_strict() {
                return Err(reject(rec, "X86_PV_INFO longer than 8 bytes"));
            }
            cx.warn(rec, "X86_PV_INFO longer than 8 bytes (tail ignored)");
        }
        cx.state.pv_info = Some(PvInfoState { guest_width: info.guest_width, pt_levels: info.pt_levels });
        Ok(())
    }

    fn p2m_frames(&mut self, cx: &mut Context<'_>, rec: &Record<'_>) -> Result<(), RestoreError> {
        let width = Self::width(cx, rec)?;
        cx.require_static_data_end(rec)?;
        let frames = P2mFrames::parse(rec)?;
        frames.check_frame_count(rec, width)?;
        let (start, end) = (frames.header.start_pfn.get(), frames.header.end_pfn.get());
        if u64::from(end) >= cx.pfn_limit {
            return Err(RestoreError::BoundReached {
                offset: rec.offset,
                index: rec.index,
                record: rec.rtype,
                bound: crate::error::Bound::Span,
                limit: cx.pfn_limit,
                needed: u64::from(end) + 1,
                page_shift: cx.state.page_shift,
            });
        }
        let fpp = 4096 / u32::from(width);
        let p2m = cx.state.p2m.get_or_insert_with(P2mState::default);
        // The p2m grows when a later record covers more pfns (the guest grew mid-migration).
        if self.max_pfn.is_none_or(|m| end > m) {
            self.max_pfn = Some(end);
            p2m.end_pfn = end;
            p2m.frames.resize((end / fpp) as usize + 1, u64::MAX);
        }
        let first = (start / fpp) as usize;
        for (slot, pfn) in p2m.frames[first..].iter_mut().zip(frames.frames) {
            *slot = pfn.get();
        }
        Ok(())
    }

    fn vcpu(cx: &mut Context<'_>, rec: &Record<'_>) -> Result<(), RestoreError> {
        let width = Self::width(cx, rec)?;
        let v = Vcpu::parse(rec)?;
        if v.blob.is_empty() {
            cx.warn(rec, "empty vcpu blob skipped");
            return Ok(());
        }
        let id = v.vcpu_id();
        if id > cx.options.max_vcpu_id {
            return Err(reject(rec, format!("vcpu_id {id} > max_vcpu_id {}", cx.options.max_vcpu_id)));
        }
        sr_rules::pv::check_vcpu_blob(id, rec.rtype, v.blob.len(), width).map_err(|v| reject(rec, v.to_string()))?;
        let slot = cx.state.vcpus.entry(id).or_default();
        let blob = Some(v.blob.to_vec());
        match rec.rtype {
            RecordType::X86_PV_VCPU_BASIC => slot.basic = blob,
            RecordType::X86_PV_VCPU_EXTENDED => slot.extended = blob,
            RecordType::X86_PV_VCPU_XSAVE => slot.xsave = blob,
            _ => slot.msrs = blob,
        }
        Ok(())
    }
}

impl DomainHandler for X86Pv {
    fn handle(&mut self, cx: &mut Context<'_>, rec: &Record<'_>) -> Result<Handled, RestoreError> {
        match rec.rtype {
            RecordType::X86_PV_INFO => Self::pv_info(cx, rec)?,
            RecordType::X86_PV_P2M_FRAMES => self.p2m_frames(cx, rec)?,
            RecordType::X86_PV_VCPU_BASIC
            | RecordType::X86_PV_VCPU_EXTENDED
            | RecordType::X86_PV_VCPU_XSAVE
            | RecordType::X86_PV_VCPU_MSRS => Self::vcpu(cx, rec)?,
            RecordType::SHARED_INFO => {
                Self::width(cx, rec)?;
                cx.state.shared_info = Some(SharedInfo::parse(rec)?.page.to_vec());
            }
            _ => return x86_common::handle(cx, rec),
        }
        Ok(Handled::Yes)
    }

    fn tracks_populated(&self) -> bool {
        true
    }

    fn page_types_matter(&self) -> bool {
        true
    }

    fn pfn_bound(&self, _cx: &Context<'_>) -> Result<u64, &'static str> {
        match self.max_pfn {
            Some(m) => Ok(u64::from(m) + 1),
            None => Err("PAGE_DATA before X86_PV_P2M_FRAMES: the PV guest's max_pfn is not known yet"),
        }
    }

    fn page_table_max_pfn(&self) -> Option<u64> {
        self.max_pfn.map(u64::from)
    }
}
