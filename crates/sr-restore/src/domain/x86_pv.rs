//! x86 PV (domain type 1): X86_PV_INFO first, then the p2m frame list, vcpu contexts and the
//! shared info page, plus the shared x86 records.

use sr_format::body::{P2mFrames, PvInfo, SharedInfo, Vcpu};
use sr_format::state::{P2mState, PvInfoState};
use sr_format::{PageType, Record, RecordType};

use super::{Context, DomainHandler, Handled, reject, x86_common};
use crate::error::RestoreError;

/// Size of a 64-bit guest's `vcpu_guest_context`.
pub(crate) const VCPU_CONTEXT_64: usize = 5168;
/// Size of a 32-bit guest's `vcpu_guest_context`.
pub(crate) const VCPU_CONTEXT_32: usize = 2800;
/// Largest extended vcpu context Xen accepts.
const VCPU_EXTENDED_MAX: usize = 128;
/// Smallest xsave blob Xen accepts.
const VCPU_XSAVE_MIN: usize = 16;

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
            return Err(reject(
                rec,
                format!("end_pfn {end:#x} beyond the destination's pfn limit {:#x}", cx.pfn_limit),
            ));
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
        let len = v.blob.len();
        let ok = match rec.rtype {
            RecordType::X86_PV_VCPU_BASIC => len == if width == 8 { VCPU_CONTEXT_64 } else { VCPU_CONTEXT_32 },
            RecordType::X86_PV_VCPU_EXTENDED => len <= VCPU_EXTENDED_MAX,
            RecordType::X86_PV_VCPU_XSAVE => len >= VCPU_XSAVE_MIN,
            _ => len % 16 == 0,
        };
        if !ok {
            let rule = match rec.rtype {
                RecordType::X86_PV_VCPU_BASIC => format!(
                    "vcpu context of {len} bytes; a {}-bit guest's is {}",
                    u32::from(width) * 8,
                    if width == 8 { VCPU_CONTEXT_64 } else { VCPU_CONTEXT_32 }
                ),
                RecordType::X86_PV_VCPU_EXTENDED => format!("extended context of {len} bytes > {VCPU_EXTENDED_MAX}"),
                RecordType::X86_PV_VCPU_XSAVE => format!("xsave blob of {len} bytes < {VCPU_XSAVE_MIN}"),
                _ => format!("MSR blob of {len} bytes is not a multiple of 16"),
            };
            return Err(reject(rec, rule));
        }
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

    fn pfn_bound(&self, cx: &Context<'_>) -> Result<u64, &'static str> {
        match self.max_pfn {
            Some(m) => Ok((u64::from(m) + 1).min(cx.pfn_limit)),
            None => Err("PAGE_DATA before X86_PV_P2M_FRAMES: the PV guest's max_pfn is not known yet"),
        }
    }

    fn complete(
        &mut self,
        cx: &mut Context<'_>,
        end: u64,
        populated: &dyn Fn(u64) -> bool,
    ) -> Result<(), RestoreError> {
        let incomplete = |what: String| RestoreError::Incomplete { offset: end, what };
        if cx.state.pv_info.is_none() {
            return Err(incomplete("no X86_PV_INFO record".into()));
        }
        let Some(p2m) = &cx.state.p2m else {
            return Err(incomplete("no X86_PV_P2M_FRAMES record".into()));
        };
        if cx.state.vcpus.get(&0).and_then(|v| v.basic.as_ref()).is_none() {
            return Err(incomplete("no X86_PV_VCPU_BASIC for vcpu 0".into()));
        }
        for (i, &pfn) in p2m.frames.iter().enumerate() {
            if pfn > u64::from(p2m.end_pfn) {
                return Err(incomplete(format!("p2m frame {i} at pfn {pfn:#x} is beyond max_pfn {:#x}", p2m.end_pfn)));
            }
            let t = cx.state.page_type(pfn);
            if t != PageType::NOTAB {
                return Err(incomplete(format!("p2m frame {i} at pfn {pfn:#x} has page type {t}, not NOTAB")));
            }
            if !populated(pfn) {
                return Err(incomplete(format!("p2m frame {i} at pfn {pfn:#x} was never populated")));
            }
        }
        Ok(())
    }
}
