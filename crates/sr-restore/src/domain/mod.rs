//! Per-domain-type restore rules.
//!
//! The engine handles what every stream shares (END, PAGE_DATA, VERIFY, CHECKPOINT,
//! STATIC_DATA_END, unknown records); everything else goes to the handler of the stream's
//! domain type, which owns which records are legal, their order and their validation, and
//! what must have been seen at END. Adding a domain type is one module plus one line in
//! [`handler_for`].

mod arm;
mod hvm_common;
mod pvh;
mod x86_common;
mod x86_hvm;
mod x86_pv;

use sr_format::{DomainType, Record, state::DomainState};

use crate::error::RestoreError;
use crate::options::RestoreOptions;
use crate::report::Warning;

/// Whether a handler took a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Handled {
    /// Processed.
    Yes,
    /// Not a record of this domain type: a mandatory failure unless bit 31 is set.
    NotProcessed,
}

/// The static-data-end state of the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StaticData {
    /// Still in the static data.
    Open,
    /// STATIC_DATA_END was read.
    Explicit,
    /// Inferred at the first memory record of a v2 stream.
    Inferred,
}

/// What a handler may see and change while handling one record.
pub(crate) struct Context<'a> {
    pub state: &'a mut DomainState,
    pub static_data: &'a mut StaticData,
    pub warnings: &'a mut Warnings,
    pub options: &'a RestoreOptions,
    /// Exclusive pfn bound of the destination.
    pub pfn_limit: u64,
}

impl Context<'_> {
    /// Requires STATIC_DATA_END before a memory record: explicit in v3, inferred in v2.
    pub fn require_static_data_end(&mut self, rec: &Record<'_>) -> Result<(), RestoreError> {
        if *self.static_data == StaticData::Open {
            if self.state.stream_version >= 3 {
                return Err(reject(rec, "no STATIC_DATA_END before memory (required in a v3 stream)"));
            }
            *self.static_data = StaticData::Inferred;
        }
        Ok(())
    }

    /// Records a warning about `rec`.
    pub fn warn(&mut self, rec: &Record<'_>, message: impl Into<String>) {
        self.warnings.push(Warning { offset: rec.offset, index: Some(rec.index), message: message.into() });
    }
}

/// A bounded warning list.
#[derive(Debug, Default)]
pub(crate) struct Warnings {
    pub kept: Vec<Warning>,
    pub dropped: u64,
}

impl Warnings {
    pub fn push(&mut self, w: Warning) {
        if self.kept.len() < crate::report::MAX_WARNINGS {
            self.kept.push(w);
        } else {
            self.dropped += 1;
        }
    }
}

/// A rule violation by `rec`.
pub(crate) fn reject(rec: &Record<'_>, rule: impl Into<String>) -> RestoreError {
    RestoreError::Rejected { offset: rec.offset, index: rec.index, record: rec.rtype, rule: rule.into() }
}

/// The restore rules of one domain type.
pub(crate) trait DomainHandler {
    /// Handles a record the engine does not handle itself.
    fn handle(&mut self, cx: &mut Context<'_>, rec: &Record<'_>) -> Result<Handled, RestoreError>;

    /// The exclusive pfn bound the domain type puts on PAGE_DATA now (the destination's
    /// own limit applies on top), or why there is none yet.
    fn pfn_bound(&self, _cx: &Context<'_>) -> Result<u64, &'static str> {
        Ok(u64::MAX)
    }

    /// Whether [`complete`](Self::complete) asks which pfns were populated (so a restore
    /// without a destination must keep track of them).
    fn tracks_populated(&self) -> bool {
        false
    }

    /// For x86 PV, the last pfn page-table entries may name (the p2m's max_pfn): PAGE_DATA
    /// page tables are checked against it. `None`: page bodies carry no rule.
    fn page_table_max_pfn(&self) -> Option<u64> {
        None
    }

    /// Whether the types of PAGE_DATA entries carry rules or meaning for this domain type
    /// (x86 PV: END rules, pinning), so they are recorded whatever
    /// [`RestoreOptions::hvm_page_types`] says.
    fn page_types_matter(&self) -> bool {
        false
    }

    /// Whether libxl device-model (EMULATOR_*) records belong to this domain type.
    fn accepts_emulator_records(&self) -> bool {
        false
    }

    /// Checks what must hold at END (or at the last checkpoint on failover): the rules of
    /// [`sr_rules::check_end`], which the saver applies too. `pages` reads a restored page
    /// when there is a destination; what could not be checked without it is returned.
    fn complete(
        &mut self,
        cx: &mut Context<'_>,
        end_offset: u64,
        populated: &dyn Fn(u64) -> bool,
        pages: Option<sr_rules::PageReader<'_>>,
    ) -> Result<sr_rules::Skipped, RestoreError> {
        sr_rules::check_end(cx.state, populated, pages)
            .map_err(|v| RestoreError::Incomplete { offset: end_offset, what: v.to_string() })
    }
}

/// The handler for `dtype`, or `None` for a reserved type.
pub(crate) fn handler_for(dtype: DomainType) -> Option<Box<dyn DomainHandler>> {
    match dtype {
        DomainType::X86_PV => Some(Box::new(x86_pv::X86Pv::default())),
        DomainType::X86_HVM => Some(Box::new(x86_hvm::X86Hvm)),
        DomainType::X86_PVH => Some(Box::new(pvh::X86Pvh)),
        DomainType::ARM => Some(Box::new(arm::Arm)),
        _ => None,
    }
}
