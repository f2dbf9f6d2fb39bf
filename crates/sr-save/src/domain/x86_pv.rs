//! x86 PV (domain type 1): X86_PV_INFO, [CPU policy], STATIC_DATA_END, X86_PV_P2M_FRAMES,
//! pages, then X86_TSC_INFO, SHARED_INFO and every vcpu's records
//! (`tools/libs/guest/xg_sr_save_x86_pv.c:1055-1109`).

use sr_format::RecordType;
use sr_format::state::{DomainState, VcpuState};

use super::{Rec, check_no_emulator, invalid, x86};
use crate::error::SaveError;

/// SHARED_INFO is exactly one page.
const SHARED_INFO_SIZE: usize = 4096;

/// The x86 PV layout.
#[derive(Debug)]
pub(super) struct X86Pv;

impl super::DomainRecords for X86Pv {
    fn check(&self, state: &DomainState) -> Result<(), SaveError> {
        let Some(info) = state.pv_info else {
            return Err(invalid("PV state without pv_info (X86_PV_INFO)"));
        };
        if !matches!((info.guest_width, info.pt_levels), (8, 4) | (4, 3)) {
            let (w, l) = (info.guest_width, info.pt_levels);
            return Err(invalid(format!("PV guest width {w} with {l} page-table levels (must be 8/4 or 4/3)")));
        }
        let Some(p2m) = &state.p2m else {
            return Err(invalid("PV state without a p2m frame list (X86_PV_P2M_FRAMES)"));
        };
        let fpp = 4096 / u32::from(info.guest_width);
        let want = p2m.end_pfn as usize / fpp as usize + 1;
        if p2m.frames.len() != want {
            return Err(invalid(format!(
                "p2m of end_pfn {:#x} needs {want} frames at width {}, the state has {}",
                p2m.end_pfn,
                info.guest_width,
                p2m.frames.len()
            )));
        }
        // The restorer's per-record rules on the blobs (the END rules run in `crate::rules`).
        for (&id, v) in &state.vcpus {
            for (rtype, blob) in vcpu_blobs(v) {
                let len = blob.as_ref().map_or(0, Vec::len);
                sr_rules::pv::check_vcpu_blob(id, rtype, len, info.guest_width).map_err(SaveError::Rejected)?;
            }
        }
        match &state.shared_info {
            Some(s) if s.len() == SHARED_INFO_SIZE => {}
            Some(s) => return Err(invalid(format!("shared info of {} bytes (must be 4096)", s.len()))),
            None => return Err(invalid("PV state without a shared info page")),
        }
        if state.hvm_context.is_some() || !state.hvm_params.is_empty() {
            return Err(invalid("PV state with HVM records (hvm_context or hvm_params)"));
        }
        check_no_emulator(state)
    }

    fn static_records(&self, state: &DomainState, version: u32, out: &mut Vec<Rec>) {
        if let Some(info) = state.pv_info {
            out.push((RecordType::X86_PV_INFO, vec![info.guest_width, info.pt_levels, 0, 0, 0, 0, 0, 0]));
        }
        x86::policy_records(state, version, out);
    }

    /// X86_PV_P2M_FRAMES: start 0, end_pfn max_pfn, every frame (Xen's start-of-stream).
    fn start_records(&self, state: &DomainState, out: &mut Vec<Rec>) {
        if let Some(p2m) = &state.p2m {
            let mut body = Vec::with_capacity(8 + 8 * p2m.frames.len());
            body.extend_from_slice(&0u32.to_le_bytes());
            body.extend_from_slice(&p2m.end_pfn.to_le_bytes());
            for pfn in &p2m.frames {
                body.extend_from_slice(&pfn.to_le_bytes());
            }
            out.push((RecordType::X86_PV_P2M_FRAMES, body));
        }
    }

    /// X86_TSC_INFO, SHARED_INFO, then per vcpu (ascending id): BASIC, and EXTENDED, XSAVE,
    /// MSRS when non-empty (Xen skips empty ones and its restorer ignores them).
    fn state_records(&self, state: &DomainState, out: &mut Vec<Rec>) {
        x86::tsc_record(state, out);
        if let Some(page) = &state.shared_info {
            out.push((RecordType::SHARED_INFO, page.clone()));
        }
        for (&id, v) in &state.vcpus {
            for (rtype, blob) in vcpu_blobs(v) {
                let Some(blob) = blob.as_ref().filter(|b| !b.is_empty()) else { continue };
                let mut body = Vec::with_capacity(8 + blob.len());
                body.extend_from_slice(&id.to_le_bytes());
                body.extend_from_slice(&0u32.to_le_bytes());
                body.extend_from_slice(blob);
                out.push((rtype, body));
            }
        }
    }
}

/// A vcpu's four context blobs with the record type each is sent as, in Xen's order.
fn vcpu_blobs(v: &VcpuState) -> [(RecordType, &Option<Vec<u8>>); 4] {
    [
        (RecordType::X86_PV_VCPU_BASIC, &v.basic),
        (RecordType::X86_PV_VCPU_EXTENDED, &v.extended),
        (RecordType::X86_PV_VCPU_XSAVE, &v.xsave),
        (RecordType::X86_PV_VCPU_MSRS, &v.msrs),
    ]
}

#[cfg(test)]
mod tests {
    use sr_format::DomainType;
    use sr_format::body::{VCPU_CONTEXT_32, VCPU_CONTEXT_64};
    use sr_format::state::{P2mState, PvInfoState, VcpuState};

    use super::super::DomainRecords;
    use super::*;

    fn pv_state() -> DomainState {
        let mut s = DomainState::new(DomainType::X86_PV, 12);
        s.pv_info = Some(PvInfoState { guest_width: 8, pt_levels: 4 });
        s.p2m = Some(P2mState { end_pfn: 1023, frames: vec![5, 6] });
        s.vcpus.insert(0, VcpuState { basic: Some(vec![0; VCPU_CONTEXT_64]), ..Default::default() });
        s.shared_info = Some(vec![0; 4096]);
        s
    }

    #[test]
    fn required_pv_state() {
        X86Pv.check(&pv_state()).unwrap();
        type Breaker = fn(&mut DomainState);
        let cases: [(&str, Breaker); 7] = [
            ("pv_info", |s| s.pv_info = None),
            ("width", |s| s.pv_info = Some(PvInfoState { guest_width: 8, pt_levels: 3 })),
            ("p2m", |s| s.p2m = None),
            ("frames", |s| s.p2m.as_mut().unwrap().frames.push(7)),
            ("basic size", |s| s.vcpus.get_mut(&0).unwrap().basic = Some(vec![0; VCPU_CONTEXT_32])),
            ("shared info", |s| s.shared_info = Some(vec![0; 100])),
            ("hvm", |s| s.hvm_context = Some(vec![1])),
        ];
        for (what, break_it) in cases {
            let mut s = pv_state();
            break_it(&mut s);
            assert!(matches!(X86Pv.check(&s), Err(SaveError::InvalidState(_) | SaveError::Rejected(_))), "{what}");
        }
    }

    #[test]
    fn record_order() {
        let mut s = pv_state();
        s.vcpus.get_mut(&0).unwrap().xsave = Some(vec![1; 64]);
        s.vcpus.get_mut(&0).unwrap().extended = Some(Vec::new());
        s.vcpus.insert(1, VcpuState { basic: Some(vec![0; VCPU_CONTEXT_64]), ..Default::default() });
        let mut out = Vec::new();
        X86Pv.static_records(&s, 3, &mut out);
        X86Pv.start_records(&s, &mut out);
        X86Pv.state_records(&s, &mut out);
        let types: Vec<_> = out.iter().map(|r| r.0).collect();
        assert_eq!(
            types,
            [
                RecordType::X86_PV_INFO,
                RecordType::X86_PV_P2M_FRAMES,
                RecordType::SHARED_INFO,
                RecordType::X86_PV_VCPU_BASIC,
                RecordType::X86_PV_VCPU_XSAVE,
                RecordType::X86_PV_VCPU_BASIC,
            ]
        );
        assert_eq!(out[1].1.len(), 8 + 16);
        assert_eq!(&out[1].1[..8], &[0, 0, 0, 0, 0xff, 3, 0, 0]);
        assert_eq!(&out[5].1[..8], &[1, 0, 0, 0, 0, 0, 0, 0]);
    }
}
