//! Typed, borrowing views of record bodies.
//!
//! Each view checks the *shape* of its own body (lengths, counts, value ranges) exactly as
//! Xen's C restorer does; reserved fields are exposed, and checked only by
//! [`Strictness::Strict`](crate::Strictness). Rules that need stream context (the
//! guest width for P2M frame counts and vcpu blob sizes, ordering) belong to the restorer.

mod checkpoint;
mod hvm;
pub mod hvm_context;
mod page_data;
mod policy;
mod pv;
mod pv_vcpu;
mod tsc;

pub use checkpoint::DirtyPfnList;
pub use hvm::{HvmContext, HvmParamEntry, HvmParams, HvmParamsHeader, HvmSaveDescriptor, HvmSaveEntries};
pub use page_data::{PageData, PageDataHeader, encode_page_data, encode_page_data_header, page_data_body_len};
pub use policy::{CpuidLeaf, CpuidPolicy, MsrEntry, MsrPolicy};
pub use pv::{P2mFrames, P2mFramesHeader, PvInfo, SHARED_INFO_SIZE, SharedInfo, Vcpu, VcpuHeader, VcpuMsrEntry};
pub use pv_vcpu::{
    GDT_ENTS_PER_FRAME, GDT_FRAME_SLOTS, MAX_GDT_ENTS, VCPU_CONTEXT_32, VCPU_CONTEXT_64, VcpuFrames, pv_vcpu_regs,
    vcpu_context_size,
};
pub use tsc::TscInfo;

use zerocopy::{FromBytes, Immutable, KnownLayout};

use crate::error::{Error, Result};
use crate::image::Strictness;
use crate::record::{Record, RecordType};

/// A parsed record body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecordBody<'a> {
    /// END.
    End,
    /// PAGE_DATA.
    PageData(PageData<'a>),
    /// X86_PV_INFO.
    PvInfo(&'a PvInfo),
    /// X86_PV_P2M_FRAMES.
    P2mFrames(P2mFrames<'a>),
    /// X86_PV_VCPU_BASIC, _EXTENDED, _XSAVE or _MSRS (see the record type).
    Vcpu(Vcpu<'a>),
    /// SHARED_INFO.
    SharedInfo(SharedInfo<'a>),
    /// X86_TSC_INFO.
    TscInfo(&'a TscInfo),
    /// HVM_CONTEXT.
    HvmContext(HvmContext<'a>),
    /// HVM_PARAMS.
    HvmParams(HvmParams<'a>),
    /// TOOLSTACK (deprecated; nobody accepts it in a restore).
    Toolstack(&'a [u8]),
    /// VERIFY.
    Verify,
    /// CHECKPOINT.
    Checkpoint,
    /// CHECKPOINT_DIRTY_PFN_LIST.
    DirtyPfnList(DirtyPfnList<'a>),
    /// STATIC_DATA_END.
    StaticDataEnd,
    /// X86_CPUID_POLICY.
    CpuidPolicy(CpuidPolicy<'a>),
    /// X86_MSR_POLICY.
    MsrPolicy(MsrPolicy<'a>),
    /// A reserved type (mandatory or optional): the raw body.
    Unknown(&'a [u8]),
}

impl<'a> RecordBody<'a> {
    /// Parses and shape-checks the body of `rec` for a stream with the given page shift.
    ///
    /// Strict mode also rejects non-zero reserved fields and padding and bodies on records
    /// that must be empty.
    pub fn parse(rec: &Record<'a>, page_shift: u16, strictness: Strictness) -> Result<Self> {
        let strict = strictness.is_strict();
        if strict && rec.padding_nonzero {
            return Err(Error::NonZeroPadding { offset: rec.offset, index: rec.index, record: rec.rtype });
        }
        if rec.rtype.is_empty_record() && strict && !rec.body.is_empty() {
            return Err(Error::UnexpectedBody {
                offset: rec.offset,
                index: rec.index,
                record: rec.rtype,
                length: rec.length(),
            });
        }
        let body = match rec.rtype {
            RecordType::END => RecordBody::End,
            RecordType::VERIFY => RecordBody::Verify,
            RecordType::CHECKPOINT => RecordBody::Checkpoint,
            RecordType::STATIC_DATA_END => RecordBody::StaticDataEnd,
            RecordType::PAGE_DATA => RecordBody::PageData(PageData::parse(rec, page_shift)?),
            RecordType::X86_PV_INFO => RecordBody::PvInfo(PvInfo::parse(rec)?),
            RecordType::X86_PV_P2M_FRAMES => RecordBody::P2mFrames(P2mFrames::parse(rec)?),
            RecordType::X86_PV_VCPU_BASIC
            | RecordType::X86_PV_VCPU_EXTENDED
            | RecordType::X86_PV_VCPU_XSAVE
            | RecordType::X86_PV_VCPU_MSRS => RecordBody::Vcpu(Vcpu::parse(rec)?),
            RecordType::SHARED_INFO => RecordBody::SharedInfo(SharedInfo::parse(rec)?),
            RecordType::X86_TSC_INFO => RecordBody::TscInfo(TscInfo::parse(rec)?),
            RecordType::HVM_CONTEXT => RecordBody::HvmContext(HvmContext::parse(rec)?),
            RecordType::HVM_PARAMS => RecordBody::HvmParams(HvmParams::parse(rec)?),
            RecordType::TOOLSTACK => RecordBody::Toolstack(rec.body),
            RecordType::CHECKPOINT_DIRTY_PFN_LIST => RecordBody::DirtyPfnList(DirtyPfnList::parse(rec)?),
            RecordType::X86_CPUID_POLICY => RecordBody::CpuidPolicy(CpuidPolicy::parse(rec)?),
            RecordType::X86_MSR_POLICY => RecordBody::MsrPolicy(MsrPolicy::parse(rec)?),
            _ => RecordBody::Unknown(rec.body),
        };
        if strict {
            body.check_reserved(rec)?;
        }
        Ok(body)
    }

    /// The first non-zero reserved field, as an error (what strict mode rejects and a lenient
    /// restore reports as a warning).
    pub fn check_reserved(&self, rec: &Record<'_>) -> Result<()> {
        let found = match self {
            RecordBody::PageData(p) => p.first_reserved(),
            RecordBody::PvInfo(p) => p.first_reserved(),
            RecordBody::Vcpu(v) => v.first_reserved(),
            RecordBody::TscInfo(t) => t.first_reserved(),
            RecordBody::HvmParams(h) => h.first_reserved(),
            RecordBody::MsrPolicy(m) => m.first_reserved(),
            _ => None,
        };
        match found {
            Some((at, field, value)) => Err(Error::ReservedNonZero { offset: rec.offset + 8 + at, field, value }),
            None => Ok(()),
        }
    }
}

/// A length error for `rec` with a rule description.
pub(crate) fn bad_length(rec: &Record<'_>, rule: impl Into<String>) -> Error {
    Error::BadLength { offset: rec.offset, index: rec.index, record: rec.rtype, found: rec.length(), rule: rule.into() }
}

/// Reads a fixed-size struct from the front of `rec`'s body, requiring at least its size.
pub(crate) fn fixed_prefix<'a, T>(rec: &Record<'a>, rule: &str) -> Result<(&'a T, &'a [u8])>
where
    T: FromBytes + KnownLayout + Immutable,
{
    T::ref_from_prefix(rec.body).map_err(|_| bad_length(rec, rule))
}

/// Reads exactly one fixed-size struct as the whole body of `rec`.
pub(crate) fn fixed_exact<'a, T>(rec: &Record<'a>, rule: &str) -> Result<&'a T>
where
    T: FromBytes + KnownLayout + Immutable,
{
    T::ref_from_bytes(rec.body).map_err(|_| bad_length(rec, rule))
}

/// Reads the whole body of `rec` as a slice of `T`, requiring a non-empty exact multiple.
pub(crate) fn nonempty_slice<'a, T>(rec: &Record<'a>, rule: &str) -> Result<&'a [T]>
where
    T: FromBytes + KnownLayout + Immutable,
{
    if rec.body.is_empty() {
        return Err(bad_length(rec, rule));
    }
    <[T]>::ref_from_bytes(rec.body).map_err(|_| bad_length(rec, rule))
}
