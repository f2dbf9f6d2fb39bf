//! The restore engine: the stream-level state machine that every domain type shares.
//!
//! It reads items from a [`StreamReader`], keeps the v2/v3 and STATIC_DATA_END rules,
//! handles END, PAGE_DATA, VERIFY, CHECKPOINT and unknown records itself, buffers
//! checkpoints, and hands every other record to the domain type's handler.

use std::io::Read;

use sr_format::body::RecordBody;
use sr_format::libxl::{LibxlRecord, LibxlRecordType, emulator};
use sr_format::state::{DomainState, EmulatorState};
use sr_format::{ByteSource, DomainHeader, Item, Layer, Record, RecordType, StreamReader};
use sr_memory::{GuestMemory, MemoryError};

use crate::domain::{Context, DomainHandler, Handled, StaticData, Warnings, handler_for, reject};
use crate::error::RestoreError;
use crate::options::{RestoreOptions, StreamKind};
use crate::pages::PageApplier;
use crate::report::{Container, Stats, Warning};
use crate::skipped::SkippedChecks;
use crate::target::{RestoreTarget, TargetError};

/// The outcome of a successful restore.
#[derive(Debug)]
pub struct Restored<M> {
    /// The domain's non-memory state.
    pub state: DomainState,
    /// Counters.
    pub stats: Stats,
    /// What the stream did that Xen ignores (reserved fields, padding, ...).
    pub warnings: Vec<Warning>,
    /// The outer layers.
    pub container: Container,
    /// Rules on page contents that could not be checked (page bodies skipped, or no
    /// destination to read the restored pages from).
    pub skipped: SkippedChecks,
    /// The destination memory, if there was one.
    pub memory: Option<M>,
}

/// The memory of a verification: there is none (the type has no values).
#[derive(Debug)]
pub enum NoMemory {}

impl GuestMemory for NoMemory {
    fn page_shift(&self) -> u32 {
        match *self {}
    }
    fn pfn_limit(&self) -> u64 {
        match *self {}
    }
    fn populate(&self, _: &[u64]) -> Result<(), MemoryError> {
        match *self {}
    }
    fn is_populated(&self, _: u64) -> bool {
        match *self {}
    }
    fn populated(&self) -> sr_memory::PfnBitmap {
        match *self {}
    }
    fn write_pages(&self, _: &[u64], _: &[u8]) -> Result<(), MemoryError> {
        match *self {}
    }
    fn read_pages(&self, _: &[u64], _: &mut [u8]) -> Result<(), MemoryError> {
        match *self {}
    }
    fn take_dirty(&self) -> sr_memory::PfnBitmap {
        match *self {}
    }
}

/// A destination's failure while applying `rec`.
fn target_err(rec: &Record<'_>, source: TargetError) -> RestoreError {
    RestoreError::Target { offset: rec.offset, index: Some(rec.index), record: rec.rtype, source }
}

/// A record kept while a checkpoint is being received.
#[derive(Debug)]
struct OwnedRecord {
    index: u64,
    offset: u64,
    rtype: RecordType,
    body: Vec<u8>,
    padding_nonzero: bool,
    elided: u32,
}

impl OwnedRecord {
    fn new(rec: &Record<'_>) -> Self {
        Self {
            index: rec.index,
            offset: rec.offset,
            rtype: rec.rtype,
            body: rec.body.to_vec(),
            padding_nonzero: rec.padding_nonzero,
            elided: rec.elided,
        }
    }

    fn as_record(&self) -> Record<'_> {
        Record {
            index: self.index,
            offset: self.offset,
            rtype: self.rtype,
            body: &self.body,
            padding_nonzero: self.padding_nonzero,
            elided: self.elided,
        }
    }
}

/// Restores streams according to its options.
pub struct Restorer<'p> {
    options: RestoreOptions,
    progress: Option<Box<dyn FnMut(u64) + 'p>>,
}

impl std::fmt::Debug for Restorer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Restorer").field("options", &self.options).finish_non_exhaustive()
    }
}

impl<'p> Restorer<'p> {
    /// A restorer with the given options.
    pub fn new(options: RestoreOptions) -> Self {
        Self { options, progress: None }
    }

    /// Calls `f` with the bytes consumed so far after every record.
    pub fn on_progress(mut self, f: impl FnMut(u64) + 'p) -> Self {
        self.progress = Some(Box::new(f));
        self
    }

    /// Checks a stream without a destination: every rule that depends on the stream alone.
    /// Page bodies are never copied (with a slice source they are never even read).
    pub fn verify<S: ByteSource>(&mut self, reader: StreamReader<S>) -> Result<Restored<NoMemory>, RestoreError> {
        self.run(reader, None::<fn(&DomainHeader) -> Result<NoMemory, MemoryError>>)
    }

    /// Restores a stream into the destination that `open` creates once the domain header says
    /// the domain type and page size: any [`GuestMemory`], or a [`RestoreTarget`] that takes the
    /// stream's moments too. The destination's page shift must match the stream's.
    pub fn restore<S, M, F>(&mut self, reader: StreamReader<S>, open: F) -> Result<Restored<M>, RestoreError>
    where
        S: ByteSource,
        M: RestoreTarget,
        F: FnOnce(&DomainHeader) -> Result<M, MemoryError>,
    {
        self.run(reader, Some(open))
    }

    /// Restores from any reader into the destination created by `open`.
    pub fn restore_read<R, M, F>(&mut self, reader: R, open: F) -> Result<Restored<M>, RestoreError>
    where
        R: Read,
        M: RestoreTarget,
        F: FnOnce(&DomainHeader) -> Result<M, MemoryError>,
    {
        let reader = StreamReader::from_read(reader).strictness(self.options.strictness);
        self.restore(reader, open)
    }

    fn run<S, M, F>(&mut self, reader: StreamReader<S>, open: Option<F>) -> Result<Restored<M>, RestoreError>
    where
        S: ByteSource,
        M: RestoreTarget,
        F: FnOnce(&DomainHeader) -> Result<M, MemoryError>,
    {
        let mut reader = reader.strictness(self.options.strictness);
        let mut run = Run::<M>::new(&self.options);
        let mut open = open;
        let mut version = 0;
        loop {
            let item = match reader.next_item() {
                Ok(Some(item)) => item,
                Ok(None) => break,
                Err(e) => return run.broken(RestoreError::from(e), reader.offset()),
            };
            match item {
                Item::Xl { config, .. } => run.container.xl_config = Some(config.to_vec()),
                Item::Virsh { .. } => {}
                Item::LibxlHeader { header, .. } => {
                    run.wrapped = true;
                    run.container.libxl_legacy = header.options.get() & sr_format::libxl::LIBXL_OPT_LEGACY != 0;
                }
                Item::ImageHeader { header, .. } => version = header.version.get(),
                Item::DomainHeader { offset, header } => run.start(offset, &header, version, open.take())?,
                Item::Record(rec) => run.record(&rec)?,
                Item::LibxlRecord(rec) => run.libxl_record(&rec)?,
            }
            if let Some(progress) = self.progress.as_mut() {
                progress(reader.offset());
            }
        }
        run.container.layer = reader.layer().unwrap_or(Layer::Libxc);
        run.stats.bytes = reader.offset();
        run.finish(reader.offset())
    }
}

/// The state of one restore.
struct Run<'o, M> {
    options: &'o RestoreOptions,
    container: Container,
    stats: Stats,
    warnings: Warnings,
    session: Option<Session<M>>,
    /// Whether a libxl stream wraps the libxc stream: then a checkpoint is complete only
    /// when libxl's CHECKPOINT_END follows the libxc CHECKPOINT.
    wrapped: bool,
}

/// Everything after the domain header.
struct Session<M> {
    handler: Box<dyn DomainHandler>,
    state: DomainState,
    static_data: StaticData,
    memory: Option<M>,
    pages: PageApplier,
    verify_mode: bool,
    /// Records of the checkpoint being received (after the first CHECKPOINT).
    buffer: Option<Vec<OwnedRecord>>,
    /// A libxc CHECKPOINT was read in a libxl stream and waits for libxl's CHECKPOINT_END.
    checkpoint_pending: bool,
    /// Device-model records not yet committed by CHECKPOINT_END or libxl END.
    emulator: Vec<EmulatorState>,
    ended: bool,
}

impl<'o, M: RestoreTarget> Run<'o, M> {
    fn new(options: &'o RestoreOptions) -> Self {
        Self {
            options,
            container: Container { layer: Layer::Libxc, xl_config: None, libxl_legacy: false },
            stats: Stats::default(),
            warnings: Warnings::default(),
            session: None,
            wrapped: false,
        }
    }

    fn start<F>(
        &mut self,
        offset: u64,
        header: &DomainHeader,
        version: u32,
        open: Option<F>,
    ) -> Result<(), RestoreError>
    where
        F: FnOnce(&DomainHeader) -> Result<M, MemoryError>,
    {
        let dtype = header.domain_type();
        let handler = handler_for(dtype).ok_or(sr_format::Error::BadDomainType { offset, found: dtype.0 })?;
        let track_populated = handler.tracks_populated();
        let page_shift = header.page_shift.get();
        let mem_err = |source| RestoreError::Memory { offset, index: 0, source };
        let memory = match open {
            Some(open) => {
                let m = open(header).map_err(mem_err)?;
                if m.page_shift() != u32::from(page_shift) {
                    return Err(mem_err(MemoryError::PageShift { shift: m.page_shift() }));
                }
                Some(m)
            }
            None => None,
        };
        let mut state = DomainState::new(dtype, page_shift);
        state.stream_version = version;
        state.xen_major = header.xen_major.get();
        state.xen_minor = header.xen_minor.get();
        if state.xen_major == 0 {
            self.warnings.push(Warning {
                offset,
                index: None,
                message: format!("xen_major 0: converted from a legacy image (converter version {})", state.xen_minor),
            });
        }
        self.session = Some(Session {
            handler,
            state,
            static_data: StaticData::Open,
            memory,
            pages: PageApplier::new(track_populated),
            verify_mode: false,
            buffer: None,
            checkpoint_pending: false,
            emulator: Vec::new(),
            ended: false,
        });
        Ok(())
    }

    fn session(&mut self) -> &mut Session<M> {
        self.session.as_mut().expect("the reader yields the domain header before any record")
    }

    fn pfn_limit(&self) -> u64 {
        let limit = match self.session.as_ref().and_then(|s| s.memory.as_ref()) {
            Some(m) => m.pfn_limit(),
            None => self.options.pfn_limit,
        };
        let shift = self.session.as_ref().map_or(12, |s| s.state.page_shift);
        match self.options.max_span_bytes {
            u64::MAX => limit,
            span => limit.min(span >> shift.min(63)),
        }
    }

    fn record(&mut self, rec: &Record<'_>) -> Result<(), RestoreError> {
        *self.stats.records.entry(rec.rtype).or_default() += 1;
        let options = self.options;
        match rec.rtype {
            RecordType::CHECKPOINT => {
                if options.stream == StreamKind::Plain {
                    return Err(reject(rec, "CHECKPOINT in a non-checkpointed stream"));
                }
                self.lint_empty(rec)?;
                if self.wrapped {
                    // As in Xen, libxl's records of this checkpoint (up to CHECKPOINT_END) are
                    // read first; only then is the checkpoint complete and its records applied.
                    self.session().checkpoint_pending = true;
                    return Ok(());
                }
                self.complete_checkpoint()
            }
            RecordType::END => {
                self.lint_empty(rec)?;
                // Records after the last CHECKPOINT were never completed: dropped, as Xen does.
                self.session().buffer = None;
                self.complete(rec.offset, Some(rec))?;
                self.session().ended = true;
                Ok(())
            }
            _ => match self.session().buffer.as_mut() {
                Some(buffer) => {
                    buffer.push(OwnedRecord::new(rec));
                    Ok(())
                }
                None => self.process(rec, false),
            },
        }
    }

    /// Applies the records buffered since the previous checkpoint and starts buffering the next.
    fn complete_checkpoint(&mut self) -> Result<(), RestoreError> {
        let s = self.session();
        s.checkpoint_pending = false;
        if let Some(buffered) = s.buffer.take() {
            for r in &buffered {
                self.process(&r.as_record(), true)?;
            }
        }
        self.session().buffer = Some(Vec::new());
        self.stats.checkpoints += 1;
        Ok(())
    }

    fn lint_empty(&mut self, rec: &Record<'_>) -> Result<(), RestoreError> {
        RecordBody::parse(rec, 12, self.options.strictness)?;
        if !rec.body.is_empty() {
            self.warn(rec, format!("{} has a body of {} bytes (ignored)", rec.rtype, rec.body.len()));
        }
        Ok(())
    }

    fn warn(&mut self, rec: &Record<'_>, message: String) {
        self.warnings.push(Warning { offset: rec.offset, index: Some(rec.index), message });
    }

    /// Processes one record (directly, or replayed from a checkpoint buffer).
    fn process(&mut self, rec: &Record<'_>, replay: bool) -> Result<(), RestoreError> {
        let strict = self.options.strictness.is_strict();
        let pfn_limit = self.pfn_limit();
        let page_shift = self.session().state.page_shift;
        let version = self.session().state.stream_version;
        if rec.padding_nonzero {
            self.warn(rec, "non-zero padding (ignored)".into());
        }
        if version < 3 && rec.rtype.is_v3_only() {
            if strict {
                return Err(reject(rec, format!("{} in a v2 stream", rec.rtype)));
            }
            self.warn(rec, format!("{} in a v2 stream (accepted, as Xen does)", rec.rtype));
        }
        let body = RecordBody::parse(rec, page_shift, sr_format::Strictness::Lenient)?;
        if let Err(e) = body.check_reserved(rec) {
            if strict {
                return Err(e.into());
            }
            self.warn(rec, format!("{e} (ignored)"));
        }
        if rec.rtype.is_empty_record() && !rec.body.is_empty() {
            if strict {
                return Err(sr_format::Error::UnexpectedBody {
                    offset: rec.offset,
                    index: rec.index,
                    record: rec.rtype,
                    length: rec.length(),
                }
                .into());
            }
            self.warn(rec, format!("{} has a body of {} bytes (ignored)", rec.rtype, rec.body.len()));
        }
        let options = self.options;
        let Run { session, stats, warnings, .. } = self;
        let s = session.as_mut().expect("the reader yields the domain header before any record");
        let static_open = s.static_data == StaticData::Open;
        let mut cx = Context { state: &mut s.state, static_data: &mut s.static_data, warnings, options, pfn_limit };
        match (rec.rtype, body) {
            (RecordType::PAGE_DATA, RecordBody::PageData(pages)) => {
                cx.require_static_data_end(rec)?;
                let bound = s.handler.pfn_bound(&cx).map_err(|why| reject(rec, why))?;
                if static_open {
                    // A v2 stream: STATIC_DATA_END is inferred here, before the memory.
                    if let Some(target) = s.memory.as_mut() {
                        target.static_data_end(cx.state).map_err(|e| target_err(rec, e))?;
                    }
                }
                let memory = s.memory.as_mut().map(|m| m as &mut dyn RestoreTarget);
                let pt_max_pfn = s.handler.page_table_max_pfn();
                let bounds = crate::pages::Bounds {
                    domain: bound,
                    destination: cx.pfn_limit,
                    populated_pages: options.max_populated_bytes >> page_shift.min(63),
                    pt_max_pfn,
                    page_types: options.hvm_page_types || s.handler.page_types_matter(),
                };
                s.pages.apply(rec, &pages, &bounds, memory, s.verify_mode, cx.state, stats)
            }
            (RecordType::VERIFY, _) => {
                s.verify_mode = true;
                Ok(())
            }
            (RecordType::STATIC_DATA_END, _) => {
                if *cx.static_data != StaticData::Open {
                    return Err(reject(rec, "second STATIC_DATA_END"));
                }
                *cx.static_data = StaticData::Explicit;
                match s.memory.as_mut() {
                    Some(target) => target.static_data_end(cx.state).map_err(|e| target_err(rec, e)),
                    None => Ok(()),
                }
            }
            (RecordType::TOOLSTACK | RecordType::CHECKPOINT_DIRTY_PFN_LIST, _) => {
                Err(reject(rec, format!("{} is not accepted in a forward stream", rec.rtype)))
            }
            _ => match s.handler.handle(&mut cx, rec)? {
                // What the hypervisor checks when libxc loads the record (sr_rules, which
                // the saver applies to what it writes), before the target sees it.
                Handled::Yes => {
                    sr_rules::check_record(cx.state, rec.rtype, rec.body, rec.offset + 8)
                        .map_err(|v| reject(rec, v.to_string()))?;
                    let Some(target) = s.memory.as_mut() else { return Ok(()) };
                    if static_open && *cx.static_data != StaticData::Open {
                        // A v2 x86 PV stream: inferred at X86_PV_P2M_FRAMES.
                        target.static_data_end(cx.state).map_err(|e| target_err(rec, e))?;
                    }
                    target.state_record(rec, cx.state).map_err(|e| target_err(rec, e))
                }
                Handled::NotProcessed if rec.rtype.is_optional() && !rec.rtype.is_known() => {
                    if replay {
                        return Err(reject(
                            rec,
                            "unknown optional record inside a checkpoint (Xen fails replaying it)",
                        ));
                    }
                    if strict {
                        return Err(reject(rec, "unknown record type (strict: only 0x00..=0x12 are allowed)"));
                    }
                    cx.warn(rec, format!("unknown optional record {:#x} skipped (kept in the state)", rec.rtype.0));
                    // Xen skips it; the state keeps it, so that a save writes it back.
                    cx.state.optional_records.push((rec.rtype, rec.body.to_vec()));
                    Ok(())
                }
                Handled::NotProcessed => Err(reject(
                    rec,
                    format!("mandatory record {} not handled by the {} restore", rec.rtype, s.state.domain_type),
                )),
            },
        }
    }

    /// Runs the domain type's END checks, then hands the complete state to the destination.
    /// `end` is the END record (`None` when failing over at a stream break).
    fn complete(&mut self, end_offset: u64, end: Option<&Record<'_>>) -> Result<(), RestoreError> {
        let pfn_limit = self.pfn_limit();
        let options = self.options;
        let Run { session, warnings, .. } = self;
        let s = session.as_mut().expect("the reader yields the domain header before any record");
        let mut cx = Context { state: &mut s.state, static_data: &mut s.static_data, warnings, options, pfn_limit };
        let populated = &s.pages.populated;
        let memory = s.memory.as_ref();
        let read =
            |pfn: u64, out: &mut [u8]| memory.is_some_and(|m| m.is_populated(pfn) && m.read_pages(&[pfn], out).is_ok());
        let pages = memory.is_some().then_some(&read as sr_rules::PageReader<'_>);
        let skipped = s.handler.complete(&mut cx, end_offset, &|pfn| populated.contains(pfn), pages)?;
        s.pages.skipped.start_info = skipped.start_info;
        if let Some(target) = s.memory.as_mut() {
            target.end(&s.state).map_err(|source| RestoreError::Target {
                offset: end_offset,
                index: end.map(|r| r.index),
                record: end.map_or(RecordType::END, |r| r.rtype),
                source,
            })?;
        }
        Ok(())
    }

    fn libxl_record(&mut self, rec: &LibxlRecord<'_>) -> Result<(), RestoreError> {
        self.stats.libxl_records += 1;
        let strict = self.options.strictness.is_strict();
        let reject = |rule: String| RestoreError::RejectedLibxl {
            offset: rec.offset,
            index: rec.index,
            record: rec.rtype.name_or_reserved(),
            rule,
        };
        match rec.rtype {
            LibxlRecordType::EMULATOR_XENSTORE_DATA | LibxlRecordType::EMULATOR_CONTEXT => {
                let Some(s) = self.session.as_mut() else {
                    return Err(reject("emulator record before the libxc stream".into()));
                };
                if !s.handler.accepts_emulator_records() {
                    return Err(reject(format!("emulator record for a {} domain", s.state.domain_type)));
                }
                let (header, data) = rec.emulator()?;
                if rec.rtype == LibxlRecordType::EMULATOR_XENSTORE_DATA {
                    rec.xenstore_pairs()?;
                }
                let id = header.id.get();
                if id > emulator::QEMU_UPSTREAM {
                    if strict {
                        return Err(reject(format!("unknown emulator id {id}")));
                    }
                    self.warnings.push(Warning {
                        offset: rec.offset,
                        index: None,
                        message: format!("unknown emulator id {id} (ignored, as libxl does)"),
                    });
                }
                s.emulator.push(EmulatorState { kind: rec.rtype, id, index: header.index.get(), data: data.to_vec() });
            }
            LibxlRecordType::CHECKPOINT_END | LibxlRecordType::END => {
                if rec.rtype == LibxlRecordType::CHECKPOINT_END
                    && self.session.as_ref().is_some_and(|s| s.checkpoint_pending)
                {
                    self.complete_checkpoint()?;
                }
                if let Some(s) = self.session.as_mut()
                    && !s.emulator.is_empty()
                {
                    s.state.emulator = std::mem::take(&mut s.emulator);
                }
            }
            _ => {
                if !rec.body.is_empty() {
                    self.warnings.push(Warning {
                        offset: rec.offset,
                        index: None,
                        message: format!("libxl {} has a body of {} bytes (ignored)", rec.rtype, rec.body.len()),
                    });
                }
            }
        }
        Ok(())
    }

    /// The stream broke (truncated, or the transport failed).
    fn broken(mut self, err: RestoreError, offset: u64) -> Result<Restored<M>, RestoreError> {
        let buffering = self.session.as_ref().is_some_and(|s| (s.buffer.is_some() || s.checkpoint_pending) && !s.ended);
        if !buffering || !err.is_broken_channel() {
            return Err(err);
        }
        if self.stats.checkpoints == 0 {
            return Err(RestoreError::NoConsistentCheckpoint { source: Box::new(err) });
        }
        if !self.options.failover {
            return Err(RestoreError::BrokeAfterCheckpoint {
                checkpoints: self.stats.checkpoints,
                source: Box::new(err),
            });
        }
        // Fail over to the last complete checkpoint: the records and device-model state of
        // the incomplete one are dropped.
        let s = self.session();
        s.buffer = None;
        s.checkpoint_pending = false;
        s.emulator.clear();
        self.complete(offset, None)?;
        self.stats.failed_over = true;
        self.stats.bytes = offset;
        self.warnings.push(Warning {
            offset,
            index: None,
            message: format!("stream broke ({err}); restored the last complete checkpoint"),
        });
        self.into_restored()
    }

    fn finish(self, offset: u64) -> Result<Restored<M>, RestoreError> {
        if !self.session.as_ref().is_some_and(|s| s.ended) {
            return Err(RestoreError::Incomplete { offset, what: "stream without a libxc END record".into() });
        }
        self.into_restored()
    }

    fn into_restored(self) -> Result<Restored<M>, RestoreError> {
        let Run { mut stats, warnings, session, container, .. } = self;
        let s = session.expect("checked by the callers");
        stats.pages_by_type = s.pages.pages_by_type().collect();
        stats.warnings_dropped = warnings.dropped;
        Ok(Restored {
            state: s.state,
            stats,
            warnings: warnings.kept,
            container,
            skipped: s.pages.skipped,
            memory: s.memory,
        })
    }
}
