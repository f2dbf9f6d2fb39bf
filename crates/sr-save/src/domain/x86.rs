//! Records every x86 type shares: the CPU policy (static data) and X86_TSC_INFO.

use sr_format::RecordType;
use sr_format::state::DomainState;

use super::Rec;

/// X86_CPUID_POLICY and X86_MSR_POLICY, each only when non-empty (as Xen), and only in v3:
/// v2 predates them, so a v2 stream drops the policy (the receiver then applies a default
/// compatible one, as for any v2 stream).
pub(super) fn policy_records(state: &DomainState, version: u32, out: &mut Vec<Rec>) {
    if version < 3 {
        return;
    }
    if !state.cpuid.is_empty() {
        let mut body = Vec::with_capacity(24 * state.cpuid.len());
        for leaf in &state.cpuid {
            for word in leaf {
                body.extend_from_slice(&word.to_le_bytes());
            }
        }
        out.push((RecordType::X86_CPUID_POLICY, body));
    }
    if !state.msrs.is_empty() {
        let mut body = Vec::with_capacity(16 * state.msrs.len());
        for (index, flags, value) in &state.msrs {
            body.extend_from_slice(&index.to_le_bytes());
            body.extend_from_slice(&flags.to_le_bytes());
            body.extend_from_slice(&value.to_le_bytes());
        }
        out.push((RecordType::X86_MSR_POLICY, body));
    }
}

/// X86_TSC_INFO, when the state has one.
pub(super) fn tsc_record(state: &DomainState, out: &mut Vec<Rec>) {
    if let Some(t) = &state.tsc {
        let mut body = Vec::with_capacity(24);
        body.extend_from_slice(&t.mode.to_le_bytes());
        body.extend_from_slice(&t.khz.to_le_bytes());
        body.extend_from_slice(&t.nsec.to_le_bytes());
        body.extend_from_slice(&t.incarnation.to_le_bytes());
        body.extend_from_slice(&0u32.to_le_bytes());
        out.push((RecordType::X86_TSC_INFO, body));
    }
}

#[cfg(test)]
mod tests {
    use sr_format::DomainType;
    use sr_format::state::TscState;

    use super::*;

    #[test]
    fn golden_bodies() {
        let mut s = DomainState::new(DomainType::X86_HVM, 12);
        s.cpuid = vec![[1, 2, 3, 4, 5, 6]];
        s.msrs = vec![(0x10, 0, 0x1122_3344_5566_7788)];
        s.tsc = Some(TscState { mode: 1, khz: 2, nsec: 3, incarnation: 4 });
        let mut out = Vec::new();
        policy_records(&s, 3, &mut out);
        tsc_record(&s, &mut out);
        assert_eq!(
            out[0],
            (RecordType::X86_CPUID_POLICY, [1u32, 2, 3, 4, 5, 6].iter().flat_map(|w| w.to_le_bytes()).collect())
        );
        assert_eq!(out[1].1, [0x10, 0, 0, 0, 0, 0, 0, 0, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11]);
        assert_eq!(out[2].1, [1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0]);
        let mut v2 = Vec::new();
        policy_records(&s, 2, &mut v2);
        assert!(v2.is_empty());
        s.cpuid.clear();
        s.msrs.clear();
        let mut empty = Vec::new();
        policy_records(&s, 3, &mut empty);
        assert!(empty.is_empty());
    }
}
