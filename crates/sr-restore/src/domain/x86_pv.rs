//! x86 PV (domain type 1): X86_PV_INFO first, then the p2m frame list, vcpu contexts and the
//! shared info page, plus the shared x86 records.
//!
//! At END (validation rows 44-46): X86_PV_INFO, X86_PV_P2M_FRAMES and vcpu 0's
//! X86_PV_VCPU_BASIC must have been sent; every p2m frame must be a populated NOTAB pfn
//! `<= max_pfn`; and every vcpu's BASIC context must name plausible frames (row 45, Xen's
//! `process_vcpu_basic`): vcpu 0's start_info pfn (rdx / edx) and the first
//! `ceil(gdt_ents / 512)` GDT frames populated NOTAB pfns `<= max_pfn`, `gdt_ents <= 7168`,
//! and the CR3 pfn (and, in a 64-bit context with CR1 bit 0 set, the CR1 pfn) a populated pfn
//! `<= max_pfn` whose type, pinned or not, is the top-level table of the guest's paging
//! levels (L4TAB for 4 levels, L3TAB for 3). See [`VcpuFrames`] for the field layout.

use sr_format::body::{
    MAX_GDT_ENTS, P2mFrames, PvInfo, SharedInfo, VCPU_CONTEXT_32, VCPU_CONTEXT_64, Vcpu, VcpuFrames,
};
use sr_format::state::{DomainState, P2mState, PvInfoState};
use sr_format::{PageType, Record, RecordType};

use super::{Context, DomainHandler, Handled, reject, x86_common};
use crate::error::RestoreError;

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

    fn tracks_populated(&self) -> bool {
        true
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
        let Some(info) = cx.state.pv_info else {
            return Err(incomplete("no X86_PV_INFO record".into()));
        };
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
        let max_pfn = u64::from(p2m.end_pfn);
        for (&id, v) in &cx.state.vcpus {
            let Some(blob) = &v.basic else { continue };
            check_vcpu_frames(cx.state, info, max_pfn, populated, id, blob)
                .map_err(|why| incomplete(format!("vcpu {id}: {why}")))?;
        }
        Ok(())
    }
}

/// Validation row 45 for one vcpu's BASIC context (`process_vcpu_basic` of
/// `tools/libs/guest/xg_sr_restore_x86_pv.c`): each frame the context names must be a pfn
/// `<= max_pfn`, of the expected page type, and populated (Xen's "bad mfn" check).
fn check_vcpu_frames(
    state: &DomainState,
    info: PvInfoState,
    max_pfn: u64,
    populated: &dyn Fn(u64) -> bool,
    id: u32,
    blob: &[u8],
) -> Result<(), String> {
    // The record handler already checked the size against the width.
    let Some(f) = VcpuFrames::read(blob, info.guest_width) else {
        return Err(format!("basic context of {} bytes", blob.len()));
    };
    let frame = |what: &str, pfn: u64, top_level: bool| -> Result<(), String> {
        if pfn > max_pfn {
            return Err(format!("{what} pfn {pfn:#x} is beyond max_pfn {max_pfn:#x}"));
        }
        let t = state.page_type(pfn);
        if top_level {
            if t.nibble() & 7 != info.pt_levels {
                let want = if info.pt_levels == 4 { "L4TAB" } else { "L3TAB" };
                return Err(format!("{what} pfn {pfn:#x} has page type {t}, not the top-level {want}"));
            }
        } else if t != PageType::NOTAB {
            return Err(format!("{what} pfn {pfn:#x} has page type {t}, not NOTAB"));
        }
        if !populated(pfn) {
            return Err(format!("{what} pfn {pfn:#x} was never populated"));
        }
        Ok(())
    };
    if id == 0 {
        frame("start_info", f.start_info, false)?;
    }
    if f.gdt_ents > MAX_GDT_ENTS {
        return Err(format!("gdt_ents {} > {MAX_GDT_ENTS}", f.gdt_ents));
    }
    for (i, &pfn) in f.used_gdt_frames().iter().enumerate() {
        frame(&format!("GDT frame {i}"), pfn, false)?;
    }
    frame("CR3", f.cr3_pfn, true)?;
    if let Some(pfn) = f.cr1_pfn {
        frame("CR1", pfn, true)?;
    }
    Ok(())
}
