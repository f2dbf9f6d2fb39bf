//! The saver: the stream's layers and record order around the memory passes.

use std::io::Write;
use std::time::{Duration, Instant};

use sr_format::body::RecordBody;
use sr_format::libxl::{LibxlHeader, LibxlRecordType};
use sr_format::state::DomainState;
use sr_format::{
    DomainHeader, DomainType, ImageHeader, PFN_MAX, REC_LENGTH_MAX, Record, RecordType, RecordWriter, Strictness,
};
use sr_memory::PfnBitmap;

use crate::domain::{self, DomainRecords, Rec};
use crate::error::SaveError;
use crate::events::{IterationStats, SaveEvent, SaveStats};
use crate::guest::Guest;
use crate::live;
use crate::options::{Container, SaveOptions, ZeroPages};
use crate::output::{Counted, Output, io_error};
use crate::pipeline::{PassSpec, Pipeline};

/// Writes a guest as a Xen migration stream.
///
/// ```text
/// [xl header] [libxl header, LIBXC_CONTEXT]
///   image header, domain header, static records, [STATIC_DATA_END], start records,
///   PAGE_DATA ... (one pass, or live passes then the final pass), [VERIFY, PAGE_DATA ...],
///   end-of-state records, END                    (checkpointed: CHECKPOINT, [libxl
///                                                 emulator records, CHECKPOINT_END], ...)
/// [HVM emulator records, libxl END]
/// ```
///
/// A `Saver` can be used for any number of saves; each builds its own worker pool and
/// writer thread and joins them before returning.
pub struct Saver<'a> {
    options: SaveOptions,
    on_event: Option<EventHandler<'a>>,
}

/// The progress callback of a [`Saver`].
type EventHandler<'a> = Box<dyn FnMut(&SaveEvent) + Send + 'a>;

impl std::fmt::Debug for Saver<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Saver").field("options", &self.options).field("on_event", &self.on_event.is_some()).finish()
    }
}

impl<'a> Saver<'a> {
    /// A saver with the given options.
    pub fn new(options: SaveOptions) -> Self {
        Self { options, on_event: None }
    }

    /// Calls `f` with every [`SaveEvent`], from the thread that called `save`.
    pub fn on_event(mut self, f: impl FnMut(&SaveEvent) + Send + 'a) -> Self {
        self.on_event = Some(Box::new(f));
        self
    }

    /// The options.
    pub fn options(&self) -> &SaveOptions {
        &self.options
    }

    /// Saves `guest` to `out` as one consistent state ending with END.
    ///
    /// Non-live: the guest is paused after the headers and static records and its memory is
    /// sent in one pass. Live ([`SaveOptions::live`]): memory is sent while the guest runs,
    /// then the guest is paused and the rest is sent. The guest is left paused.
    ///
    /// On error nothing more is written (in particular no END) and every thread is joined.
    pub fn save<W: Write + Send>(&mut self, guest: &dyn Guest, out: W) -> Result<SaveStats, SaveError> {
        self.run(guest, out, None)
    }

    /// Saves `guest` to `out` as a checkpointed (Remus/COLO-style) stream.
    ///
    /// The first round is a normal save up to the end-of-state records, then CHECKPOINT
    /// (plus, in a libxl container, the emulator records and CHECKPOINT_END). Then the
    /// guest is resumed and `next(checkpoints_done)` is called while it runs; if it returns
    /// `true` the guest is paused again, the pages it dirtied and the state records are sent,
    /// and another CHECKPOINT follows. When `next` returns `false`, END (and libxl END)
    /// follows directly and the guest is left running. The receiver restores the last
    /// checkpoint. Live pre-copy, if configured, applies to the first round; VERIFY is not
    /// supported (Xen allows it only for plain streams).
    pub fn save_checkpointed<W: Write + Send>(
        &mut self,
        guest: &dyn Guest,
        out: W,
        mut next: impl FnMut(u64) -> bool,
    ) -> Result<SaveStats, SaveError> {
        self.run(guest, out, Some(&mut next))
    }

    fn run<W: Write + Send>(
        &mut self,
        guest: &dyn Guest,
        out: W,
        next: Option<&mut dyn FnMut(u64) -> bool>,
    ) -> Result<SaveStats, SaveError> {
        let started = Instant::now();
        let options = self.options.clone();
        let mut noop = |_: &SaveEvent| {};
        let emit: &mut dyn FnMut(&SaveEvent) = match self.on_event.as_deref_mut() {
            Some(f) => f,
            None => &mut noop,
        };
        let mut session = Session::start(&options, guest, out, emit, next.is_some())?;
        let stats = session.run(next, started)?;
        Ok(stats)
    }
}

/// One save in progress: the output, the pipeline and what has been sent.
pub(crate) struct Session<'s, 'g, W: Write + Send> {
    opts: &'s SaveOptions,
    guest: &'g dyn Guest,
    layout: &'static dyn DomainRecords,
    wire_type: DomainType,
    page_shift: u16,
    pipeline: Pipeline<'g>,
    rw: Output<W>,
    emit: &'s mut dyn FnMut(&SaveEvent),
    stats: SaveStats,
    next_iteration: u32,
    /// The guest's extra pfns, sorted and deduplicated.
    extras: Vec<u64>,
    /// The state taken after the pause, checked.
    state: DomainState,
}

impl<'s, 'g, W: Write + Send> Session<'s, 'g, W> {
    /// Checks options, guest and initial state (before anything is written) and starts
    /// the worker pool.
    fn start(
        opts: &'s SaveOptions,
        guest: &'g dyn Guest,
        out: W,
        emit: &'s mut dyn FnMut(&SaveEvent),
        checkpointed: bool,
    ) -> Result<Self, SaveError> {
        let memory = guest.memory();
        let dtype = guest.domain_type();
        let layout = domain::for_type(dtype)
            .ok_or_else(|| SaveError::InvalidState(format!("reserved domain type {}", dtype.0)))?;
        let page_shift =
            u16::try_from(memory.page_shift()).ok().filter(|&s| dtype.page_shift_valid(s)).ok_or_else(|| {
                SaveError::InvalidState(format!("page shift {} for a {dtype} guest", memory.page_shift()))
            })?;
        opts.validate(memory.page_size())?;
        if checkpointed && opts.verify {
            return Err(SaveError::InvalidOptions("VERIFY applies to plain saves only, as in Xen".into()));
        }
        let state = guest.state()?;
        check_state(&state, dtype, page_shift, layout)?;
        check_carried(&state, opts, layout)?;
        // Every non-memory record this state gives, checked now rather than after memory.
        let mut recs = Vec::new();
        layout.static_records(&state, opts.stream_version, &mut recs);
        layout.start_records(&state, &mut recs);
        layout.state_records(&state, &mut recs);
        check_record_sizes(&recs)?;
        recs.extend(state.optional_records.iter().cloned());
        check_records(&state, &recs)?;
        let mut extras = guest.extra_pfns();
        extras.sort_unstable();
        extras.dedup();
        if let Some(&pfn) = extras.last().filter(|&&p| p > PFN_MAX) {
            return Err(SaveError::InvalidState(format!("extra pfn {pfn:#x} does not fit a pfn word")));
        }
        // What the restorer would reject is refused before anything is written (for a guest
        // whose state becomes restorable only once paused, before END).
        if guest.state_checkable_before_pause() {
            crate::rules::check(guest, &state, &extras)?;
        }
        let wire_type = if dtype == DomainType::X86_PVH && opts.pvh_as_hvm { DomainType::X86_HVM } else { dtype };
        let pipeline = Pipeline::new(guest, opts.worker_count(), opts.batch_pfns, opts.zero_pages == ZeroPages::Data)?;
        Ok(Self {
            opts,
            guest,
            layout,
            wire_type,
            page_shift,
            pipeline,
            rw: RecordWriter::new(Counted::new(out)),
            emit,
            stats: SaveStats::default(),
            next_iteration: 0,
            extras,
            state,
        })
    }

    pub(crate) fn guest(&self) -> &'g dyn Guest {
        self.guest
    }

    fn run(&mut self, next: Option<&mut dyn FnMut(u64) -> bool>, started: Instant) -> Result<SaveStats, SaveError> {
        self.prologue()?;

        // First round: memory, with the guest paused at the end.
        let mut paused_at = match self.opts.live {
            Some(policy) => {
                let mut dirty = live::precopy(self, &policy)?;
                self.guest.pause()?;
                let paused_at = Instant::now();
                dirty.union_with(&self.guest.memory().take_dirty());
                (self.emit)(&SaveEvent::Paused { dirty_pages: dirty.count_ones() });
                self.dirty_pass(&dirty, true)?;
                paused_at
            }
            None => {
                self.guest.pause()?;
                let paused_at = Instant::now();
                // Start the dirty log, for the rounds of a checkpointed stream.
                self.guest.memory().take_dirty();
                let dirty_pages = self.full_pass_total();
                (self.emit)(&SaveEvent::Paused { dirty_pages });
                self.full_pass(true, false)?;
                paused_at
            }
        };
        if self.opts.verify {
            self.write_record(RecordType::VERIFY, &[])?;
            self.full_pass(false, true)?;
        }
        self.state_records()?;

        if let Some(next) = next {
            loop {
                self.write_record(RecordType::CHECKPOINT, &[])?;
                if self.opts.container.is_libxl() {
                    self.emulator_records()?;
                    self.write_libxl(LibxlRecordType::CHECKPOINT_END, &[])?;
                }
                self.rw.flush().map_err(|e| self.io(e))?;
                self.stats.checkpoints += 1;
                self.stats.downtime = paused_at.elapsed();
                self.guest.resume()?;
                if !next(self.stats.checkpoints) {
                    break;
                }
                self.guest.pause()?;
                paused_at = Instant::now();
                let dirty = self.guest.memory().take_dirty();
                (self.emit)(&SaveEvent::Paused { dirty_pages: dirty.count_ones() });
                self.dirty_pass(&dirty, true)?;
                self.state_records()?;
            }
            self.write_record(RecordType::END, &[])?;
            if self.opts.container.is_libxl() {
                self.write_libxl(LibxlRecordType::END, &[])?;
            }
            self.rw.flush().map_err(|e| self.io(e))?;
        } else {
            self.write_record(RecordType::END, &[])?;
            if self.opts.container.is_libxl() {
                self.emulator_records()?;
                self.write_libxl(LibxlRecordType::END, &[])?;
            }
            self.rw.flush().map_err(|e| self.io(e))?;
            self.stats.downtime = paused_at.elapsed();
        }
        self.stats.bytes = self.rw.get_ref().written();
        self.stats.zero_copy = self.pipeline.lends();
        self.stats.duration = started.elapsed();
        (self.emit)(&SaveEvent::Complete(self.stats.clone()));
        Ok(std::mem::take(&mut self.stats))
    }

    /// Container headers, image and domain headers, static records, STATIC_DATA_END (v3)
    /// and the start-of-stream records.
    fn prologue(&mut self) -> Result<(), SaveError> {
        if let Container::Xl { config } = &self.opts.container {
            let header = sr_format::xl::encode_xl_header((!config.is_empty()).then_some(config.as_slice()));
            self.rw.write_raw(&header).map_err(|e| self.io(e))?;
        }
        if self.opts.container.is_libxl() {
            self.rw.write_libxl_header(&LibxlHeader::new(self.opts.libxl_legacy)).map_err(|e| self.io(e))?;
            self.write_libxl(LibxlRecordType::LIBXC_CONTEXT, &[])?;
        }
        let version = self.opts.stream_version;
        let (major, minor) = self.opts.xen_version;
        let dhdr = DomainHeader::new(self.wire_type, self.page_shift, major, minor);
        self.rw.write_headers(&ImageHeader::new(version), &dhdr).map_err(|e| self.io(e))?;
        let mut recs = Vec::new();
        self.layout.static_records(&self.state, version, &mut recs);
        if version >= 3 {
            recs.push((RecordType::STATIC_DATA_END, Vec::new()));
        }
        self.layout.start_records(&self.state, &mut recs);
        self.write_records(&recs)
    }

    /// The end-of-state records, from the state taken now (the guest is paused).
    fn state_records(&mut self) -> Result<(), SaveError> {
        let state = self.guest.state()?;
        check_state(&state, self.guest.domain_type(), self.page_shift, self.layout)?;
        check_carried(&state, self.opts, self.layout)?;
        // Again with the state and memory the end-of-state records describe: END is written
        // only for a domain the restorer accepts.
        crate::rules::check(self.guest, &state, &self.extras)?;
        self.state = state;
        let mut recs = Vec::new();
        self.layout.state_records(&self.state, &mut recs);
        // Optional records of unknown types, once, before any CHECKPOINT: Xen's restorer
        // skips them, but fails replaying one buffered inside a checkpoint.
        if self.stats.checkpoints == 0 {
            recs.extend(self.state.optional_records.iter().cloned());
        }
        check_records(&self.state, &recs)?;
        self.write_records(&recs)
    }

    /// The HVM device-model records of the current state (libxl layer).
    fn emulator_records(&mut self) -> Result<(), SaveError> {
        if !self.layout.emulator_records() {
            return Ok(());
        }
        for i in 0..self.state.emulator.len() {
            let e = &self.state.emulator[i];
            let body = sr_format::libxl::emulator_context_body(e.id, e.index, &e.data);
            let kind = e.kind;
            self.write_libxl(kind, &body)?;
        }
        Ok(())
    }

    /// The number of pfns a full pass sends.
    fn full_pass_total(&self) -> u64 {
        let populated = self.guest.memory().populated();
        populated.count_ones() + self.extras.iter().filter(|&&p| !populated.get(p)).count() as u64
    }

    /// Sends every populated pfn and every extra pfn (iteration 0, or the VERIFY pass).
    pub(crate) fn full_pass(&mut self, final_pass: bool, verify: bool) -> Result<IterationStats, SaveError> {
        let populated = self.guest.memory().populated();
        let extras = std::mem::take(&mut self.extras);
        let total = populated.count_ones() + extras.iter().filter(|&&p| !populated.get(p)).count() as u64;
        let mut pfns = SortedUnion::new(populated.iter_ones(), extras.iter().copied());
        let elide = self.opts.zero_pages == ZeroPages::Xalloc;
        let result = self.pass(&mut pfns, total, elide, final_pass, verify);
        self.extras = extras;
        result
    }

    /// Sends the pfns of `dirty` (a later pass: zero pages always as data).
    pub(crate) fn dirty_pass(&mut self, dirty: &PfnBitmap, final_pass: bool) -> Result<IterationStats, SaveError> {
        self.pass(&mut dirty.iter_ones(), dirty.count_ones(), false, final_pass, false)
    }

    fn pass(
        &mut self,
        pfns: &mut dyn Iterator<Item = u64>,
        total: u64,
        elide_zero: bool,
        final_pass: bool,
        verify: bool,
    ) -> Result<IterationStats, SaveError> {
        let iteration = self.next_iteration;
        self.next_iteration += 1;
        (self.emit)(&SaveEvent::IterationStart { iteration, pages: total });
        let t = Instant::now();
        let spec = PassSpec { iteration, total, elide_zero };
        let out = self.pipeline.run_pass(&mut self.rw, pfns, spec, self.emit)?;
        let stats = IterationStats {
            iteration,
            pages: out.pages,
            bytes: out.bytes,
            duration: t.elapsed().max(Duration::from_nanos(1)),
            final_pass,
            verify,
        };
        self.stats.pages += out.pages;
        self.stats.iterations.push(stats.clone());
        (self.emit)(&SaveEvent::IterationEnd(stats.clone()));
        Ok(stats)
    }

    /// Writes a group of records, after checking that every body fits the record length
    /// limit restorers enforce (so an oversized blob fails before any of them is written).
    fn write_records(&mut self, recs: &[Rec]) -> Result<(), SaveError> {
        check_record_sizes(recs)?;
        for (rtype, body) in recs {
            self.write_record(*rtype, body)?;
        }
        Ok(())
    }

    fn write_record(&mut self, rtype: RecordType, body: &[u8]) -> Result<(), SaveError> {
        self.rw.write_record(rtype, body).map_err(|e| self.io(e))
    }

    fn write_libxl(&mut self, rtype: LibxlRecordType, body: &[u8]) -> Result<(), SaveError> {
        self.rw.write_libxl_record(rtype, body).map_err(|e| self.io(e))
    }

    fn io(&self, source: std::io::Error) -> SaveError {
        io_error(&self.rw, source)
    }
}

/// Checks that every body fits the record length limit restorers enforce, and that it
/// passes the strict shape and reserved-field checks `verify --strict` applies (the same
/// `sr_format` code), so no state writes a record a strict verifier rejects.
fn check_record_sizes(recs: &[Rec]) -> Result<(), SaveError> {
    if let Some((rtype, body)) = recs.iter().find(|(_, b)| b.len() > REC_LENGTH_MAX as usize) {
        return Err(SaveError::InvalidState(format!(
            "{rtype} body of {} bytes exceeds the record length limit of {REC_LENGTH_MAX}",
            body.len()
        )));
    }
    for (rtype, body) in recs {
        let rec = Record { index: 0, offset: 0, rtype: *rtype, body, padding_nonzero: false, elided: 0 };
        RecordBody::parse(&rec, 12, Strictness::Strict).and_then(|b| b.check_reserved(&rec)).map_err(|e| {
            SaveError::InvalidState(format!("the state's {rtype} record would not verify strictly: {e}"))
        })?;
    }
    Ok(())
}

/// Refuses options under which the stream could not carry everything the state has, so a
/// save never drops a record silently: device-model records need a libxl container, a CPU
/// policy a v3 stream, the libxl legacy option a libxl header; optional records of unknown
/// types must be optional (bit 31) and fit a record.
fn check_carried(state: &DomainState, opts: &SaveOptions, layout: &dyn DomainRecords) -> Result<(), SaveError> {
    let refuse = |msg: String| Err(SaveError::InvalidOptions(msg));
    if !state.emulator.is_empty() && layout.emulator_records() && !opts.container.is_libxl() {
        return refuse(format!(
            "the state has {} device-model record(s) (libxl EMULATOR_*), which only a libxl or xl container carries: a bare libxc stream would drop them",
            state.emulator.len()
        ));
    }
    if opts.stream_version < 3 && (!state.cpuid.is_empty() || !state.msrs.is_empty()) {
        return refuse(format!(
            "the state has a CPU policy ({} CPUID leaves, {} MSRs), which a v2 stream cannot carry (X86_CPUID_POLICY and X86_MSR_POLICY are v3 records): save as v3",
            state.cpuid.len(),
            state.msrs.len()
        ));
    }
    if opts.libxl_legacy && !opts.container.is_libxl() {
        return refuse("the libxl \"converted from legacy\" option needs a libxl or xl container".into());
    }
    for (rtype, body) in &state.optional_records {
        if !rtype.is_optional() || rtype.is_known() {
            return refuse(format!("optional record {rtype} is not an unknown optional record type (bit 31 set)"));
        }
        if body.len() > REC_LENGTH_MAX as usize {
            return refuse(format!("optional record {rtype} of {} bytes exceeds the record length limit", body.len()));
        }
    }
    Ok(())
}

/// What the hypervisor checks when a restore loads each of these records
/// ([`sr_rules::check_record`], as the restorer applies it), before any is written.
fn check_records(state: &DomainState, recs: &[Rec]) -> Result<(), SaveError> {
    for (rtype, body) in recs {
        sr_rules::check_record(state, *rtype, body, 0)
            .map_err(|violation| SaveError::RejectedRecord { record: *rtype, violation })?;
    }
    Ok(())
}

/// Checks a state against the guest it came from and the layout of its type.
fn check_state(
    state: &DomainState,
    dtype: DomainType,
    page_shift: u16,
    layout: &dyn DomainRecords,
) -> Result<(), SaveError> {
    if state.domain_type != dtype {
        return Err(SaveError::InvalidState(format!(
            "the state is of a {} domain, the guest a {dtype} one",
            state.domain_type
        )));
    }
    if state.page_shift != page_shift {
        return Err(SaveError::InvalidState(format!(
            "the state has page shift {}, the guest's memory {page_shift}",
            state.page_shift
        )));
    }
    layout.check(state)
}

/// The ascending union of two ascending pfn sequences, each pfn once.
struct SortedUnion<A: Iterator<Item = u64>, B: Iterator<Item = u64>> {
    a: std::iter::Peekable<A>,
    b: std::iter::Peekable<B>,
}

impl<A: Iterator<Item = u64>, B: Iterator<Item = u64>> SortedUnion<A, B> {
    fn new(a: A, b: B) -> Self {
        Self { a: a.peekable(), b: b.peekable() }
    }
}

impl<A: Iterator<Item = u64>, B: Iterator<Item = u64>> Iterator for SortedUnion<A, B> {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        match (self.a.peek().copied(), self.b.peek().copied()) {
            (Some(x), Some(y)) if x < y => self.a.next(),
            (Some(x), Some(y)) if y < x => self.b.next(),
            (Some(_), Some(_)) => {
                self.b.next();
                self.a.next()
            }
            (Some(_), None) => self.a.next(),
            (None, _) => self.b.next(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_union() {
        let u: Vec<u64> = SortedUnion::new([1, 3, 5, 9].into_iter(), [0, 3, 4, 10, 11].into_iter()).collect();
        assert_eq!(u, [0, 1, 3, 4, 5, 9, 10, 11]);
        assert_eq!(SortedUnion::new(std::iter::empty(), [2].into_iter()).collect::<Vec<_>>(), [2]);
    }
}
