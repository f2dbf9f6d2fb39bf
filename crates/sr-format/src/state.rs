//! The decoded, non-memory contents of a stream: what a restore produces and what a save
//! writes. One type for both directions, so "restore(save(x)) == x" is a plain `==`.

use std::collections::BTreeMap;

use crate::image::DomainType;
use crate::page::PageType;

/// Everything a stream says about a domain apart from page contents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainState {
    /// Domain type from the domain header.
    pub domain_type: DomainType,
    /// log2 page size.
    pub page_shift: u16,
    /// libxc stream version (2 or 3).
    pub stream_version: u32,
    /// Xen major version of the saver.
    pub xen_major: u32,
    /// Xen minor version of the saver.
    pub xen_minor: u32,
    /// PV guest width and levels.
    pub pv_info: Option<PvInfoState>,
    /// PV p2m frame list.
    pub p2m: Option<P2mState>,
    /// Per-vcpu PV contexts, by vcpu id.
    pub vcpus: BTreeMap<u32, VcpuState>,
    /// PV shared info page.
    pub shared_info: Option<Vec<u8>>,
    /// TSC information.
    pub tsc: Option<TscState>,
    /// HVM (or ARM) context blob, the latest one sent.
    pub hvm_context: Option<Vec<u8>>,
    /// HVM params (index, value), in stream order, later values for an index replacing
    /// earlier ones in place.
    pub hvm_params: Vec<(u64, u64)>,
    /// CPUID policy leaves: leaf, subleaf, eax, ebx, ecx, edx.
    pub cpuid: Vec<[u32; 6]>,
    /// MSR policy entries: index, flags, value.
    pub msrs: Vec<(u32, u32, u64)>,
    /// libxl device-model records, in stream order (latest checkpoint only).
    pub emulator: Vec<EmulatorState>,
    /// Optional libxc records of types this crate does not know (bit 31 set), in stream
    /// order: Xen's restorer skips them, a save writes them back.
    pub optional_records: Vec<(crate::record::RecordType, Vec<u8>)>,
    /// Page types other than NOTAB, by pfn (XTAB and BROKEN pfns are not populated).
    pub page_types: BTreeMap<u64, PageType>,
}

impl DomainState {
    /// An empty state for a domain of `domain_type`.
    pub fn new(domain_type: DomainType, page_shift: u16) -> Self {
        Self {
            domain_type,
            page_shift,
            stream_version: crate::IHDR_VERSION,
            xen_major: 0,
            xen_minor: 0,
            pv_info: None,
            p2m: None,
            vcpus: BTreeMap::new(),
            shared_info: None,
            tsc: None,
            hvm_context: None,
            hvm_params: Vec::new(),
            cpuid: Vec::new(),
            msrs: Vec::new(),
            emulator: Vec::new(),
            optional_records: Vec::new(),
            page_types: BTreeMap::new(),
        }
    }

    /// Sets an HVM param, replacing an earlier value for the same index in place.
    pub fn set_hvm_param(&mut self, index: u64, value: u64) {
        match self.hvm_params.iter_mut().find(|(i, _)| *i == index) {
            Some(slot) => slot.1 = value,
            None => self.hvm_params.push((index, value)),
        }
    }

    /// The type of `pfn` as far as the stream said (NOTAB unless recorded otherwise).
    pub fn page_type(&self, pfn: u64) -> PageType {
        self.page_types.get(&pfn).copied().unwrap_or(PageType::NOTAB)
    }
}

/// X86_PV_INFO contents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PvInfoState {
    /// Guest width in bytes (4 or 8).
    pub guest_width: u8,
    /// Page-table levels (3 or 4).
    pub pt_levels: u8,
}

/// The PV p2m frame list: frame `i` covers pfns `i * fpp .. (i + 1) * fpp`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct P2mState {
    /// Highest pfn covered (max_pfn).
    pub end_pfn: u32,
    /// pfn of each p2m frame, from frame 0.
    pub frames: Vec<u64>,
}

/// The four PV vcpu blobs of one vcpu (absent when not sent or sent empty).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct VcpuState {
    /// X86_PV_VCPU_BASIC blob.
    pub basic: Option<Vec<u8>>,
    /// X86_PV_VCPU_EXTENDED blob.
    pub extended: Option<Vec<u8>>,
    /// X86_PV_VCPU_XSAVE blob.
    pub xsave: Option<Vec<u8>>,
    /// X86_PV_VCPU_MSRS blob.
    pub msrs: Option<Vec<u8>>,
}

/// X86_TSC_INFO contents.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct TscState {
    /// TSC mode.
    pub mode: u32,
    /// Frequency in kHz.
    pub khz: u32,
    /// Elapsed nanoseconds.
    pub nsec: u64,
    /// Incarnation.
    pub incarnation: u32,
}

/// One libxl EMULATOR_* record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmulatorState {
    /// EMULATOR_XENSTORE_DATA or EMULATOR_CONTEXT.
    pub kind: crate::libxl::LibxlRecordType,
    /// Emulator id.
    pub id: u32,
    /// Emulator index.
    pub index: u32,
    /// The payload after the 8-byte emulator header.
    pub data: Vec<u8>,
}
