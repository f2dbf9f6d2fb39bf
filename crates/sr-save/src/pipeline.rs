//! The memory path: pfns to PAGE_DATA records, prepared in parallel, written in order.
//!
//! ```text
//!  coordinator (calling thread)       rayon pool (`workers` threads)      writer (std thread)
//!  pfns -> batches -> window  --install-->  page types, pfn words,
//!                                           page copies / zero check
//!        <-- window, in batch order (collect_into_vec) --
//!  window --bounded(1)----------------------------------------------->  write_page_data
//!        <--------------------------------- spent window, progress ---  (vectored; pages
//!  (recycled buffers)                                                    lent or copied)
//! ```
//!
//! This is Pattern A of the workspace's style guide (rust-style 8.7): a window of about four
//! batches per worker is prepared with an indexed parallel iterator, so its order is the
//! input order and the output is byte-identical for any worker count; the coordinator sends
//! the finished window through a `bounded(1)` channel, so preparing window k+1 overlaps
//! writing window k, and at most about three windows of buffers exist (one being prepared,
//! one queued, one being written), whatever the guest size. The writer hands spent windows
//! back through a second channel and the coordinator reuses their buffers.
//!
//! Rayon tasks only compute; every blocking channel end is on the coordinator or the
//! writer, both ordinary threads inside one `std::thread::scope` (no rayon task can block a
//! pool thread, the deadlock of rayon issues #847/#1269). On an error the failing stage
//! stops, dropping its channel end; the other sees the disconnection and stops too; the
//! scope joins the writer, and the first real error in stream order is returned.
//!
//! **Zero copy.** When the backend can lend pages ([`GuestMemory::lend_pages`]) and zero
//! pages are sent as data, workers only compute page types and pfn words, and the writer
//! hands the lent pages straight to [`RecordWriter::write_page_data`](sr_format::RecordWriter::write_page_data): one copy (guest
//! memory to the output) instead of two. A page written by the guest after its lend is in
//! the dirty log, so live consistency is the same as with copies.

use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};

use crossbeam_channel::{Receiver, Sender};
use rayon::prelude::*;
use sr_format::{PageType, PfnEntry};
use sr_memory::{GuestMemory, MemoryError};

use crate::error::SaveError;
use crate::events::SaveEvent;
use crate::guest::Guest;
use crate::output::{Output, io_error};

/// Windows of this many batches per worker.
const BATCHES_PER_WORKER: usize = 4;
/// Zero checks look at this many bytes at a time (branch-free inside, early exit between).
const ZERO_CHECK_CHUNK: usize = 256;

/// One batch: the pfns of one PAGE_DATA record and what the writer needs to write it.
/// Buffers keep their capacity from window to window.
#[derive(Debug, Default)]
struct Batch {
    /// The pfns, ascending.
    pfns: Vec<u64>,
    /// The encoded little-endian pfn words.
    words: Vec<u8>,
    /// The data-bearing pfns, in order (what the writer asks the backend to lend).
    data_pfns: Vec<u64>,
    /// The types of `data_pfns` (for [`Guest::normalise_pages`]).
    data_types: Vec<PageType>,
    /// Copied page bodies: all of them in copy mode; on the zero-copy path, only the
    /// rewritten ones (at the indices `own` gives).
    data: Vec<u8>,
    /// Zero-copy path: indices into `data_pfns` of the pages whose bodies are in `data`
    /// (rewritten by [`Guest::normalise_pages`]), ascending.
    own: Vec<usize>,
    /// Skipped because the writer had already failed.
    skipped: bool,
}

/// A window the writer has written, going back for reuse, with the pass's progress.
#[derive(Debug)]
struct Done {
    window: Vec<Batch>,
    pages: u64,
    bytes: u64,
}

/// What one pass sends and how.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PassSpec {
    /// Pass number, for progress events.
    pub iteration: u32,
    /// pfns the pass will send, for progress events.
    pub total: u64,
    /// Send all-zero NOTAB pages as XALLOC (only on a first send of each pfn).
    pub elide_zero: bool,
}

/// What a pass wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct PassOutput {
    /// pfn entries written.
    pub pages: u64,
    /// Bytes written.
    pub bytes: u64,
}

/// The shared, read-only inputs of batch preparation.
struct Prep<'g> {
    guest: &'g dyn Guest,
    memory: &'g dyn GuestMemory,
    page_size: usize,
    lend: bool,
    elide_zero: bool,
    normalise: bool,
    stop: &'g AtomicBool,
}

/// The memory path of one save: the worker pool and the recycled batch buffers.
pub(crate) struct Pipeline<'g> {
    guest: &'g dyn Guest,
    memory: &'g dyn GuestMemory,
    pool: rayon::ThreadPool,
    batch_pfns: usize,
    window_batches: usize,
    page_size: usize,
    /// Whether the current pass lends (probed at the start of each pass).
    lend: bool,
    /// Whether lending may be used at all (zero pages sent as data).
    allow_lend: bool,
    free: Vec<Batch>,
}

impl std::fmt::Debug for Pipeline<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("workers", &self.pool.current_num_threads())
            .field("batch_pfns", &self.batch_pfns)
            .field("window_batches", &self.window_batches)
            .field("lend", &self.lend)
            .finish_non_exhaustive()
    }
}

impl<'g> Pipeline<'g> {
    /// A pipeline with its own pool of `workers` threads. `allow_lend`: the zero-copy path
    /// may be used (it is, in each pass the backend says it can lend at the start of).
    pub fn new(guest: &'g dyn Guest, workers: usize, batch_pfns: usize, allow_lend: bool) -> Result<Self, SaveError> {
        let memory = guest.memory();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(workers)
            .thread_name(|i| format!("sr-save-worker-{i}"))
            .build()
            .map_err(|e| SaveError::Worker(format!("cannot start the worker pool: {e}")))?;
        // Probe once: a lending backend calls the function with no pages and says Some.
        let lend = allow_lend && memory.lend_pages(&[], &mut |_| Ok(())).is_some();
        Ok(Self {
            guest,
            memory,
            pool,
            batch_pfns,
            window_batches: BATCHES_PER_WORKER * workers.max(1),
            page_size: memory.page_size(),
            lend,
            allow_lend,
            free: Vec::new(),
        })
    }

    /// Whether the zero-copy path is in use.
    pub fn lends(&self) -> bool {
        self.lend
    }

    /// Sends `pfns` (ascending) as PAGE_DATA records to `rw`, emitting progress events.
    pub fn run_pass<W: Write + Send>(
        &mut self,
        rw: &mut Output<W>,
        pfns: &mut dyn Iterator<Item = u64>,
        spec: PassSpec,
        emit: &mut dyn FnMut(&SaveEvent),
    ) -> Result<PassOutput, SaveError> {
        // Probe again: a backend may lend at some times only (a Xen domain once suspended).
        self.lend = self.allow_lend && self.memory.lend_pages(&[], &mut |_| Ok(())).is_some();
        let stop = AtomicBool::new(false);
        let start = rw.get_ref().written();
        let (win_tx, win_rx) = crossbeam_channel::bounded::<Vec<Batch>>(1);
        let (done_tx, done_rx) = crossbeam_channel::unbounded::<Done>();
        let (memory, lend, page_size) = (self.memory, self.lend, self.page_size);
        std::thread::scope(|s| {
            let stop = &stop;
            let writer = std::thread::Builder::new()
                .name("sr-save-writer".into())
                .spawn_scoped(s, move || write_windows(rw, &win_rx, &done_tx, memory, lend, page_size, start, stop))
                .map_err(|e| SaveError::Worker(format!("cannot start the writer thread: {e}")))?;
            let coordinated = self.coordinate(pfns, &win_tx, &done_rx, spec, emit, stop);
            // Dropping the sender ends the writer's loop once it has written what it has.
            drop(win_tx);
            let written = writer.join().unwrap_or_else(|p| Err(SaveError::from_panic(&*p)));
            for done in done_rx.try_iter() {
                self.recycle(done, spec, emit);
            }
            // The writer's error concerns earlier bytes of the stream than anything the
            // coordinator was preparing, so it is the first real error.
            let output = written?;
            coordinated?;
            Ok(output)
        })
    }

    /// Cuts `pfns` into windows of batches, prepares each on the pool and sends it to the
    /// writer, until the pfns run out or the writer stops.
    fn coordinate(
        &mut self,
        pfns: &mut dyn Iterator<Item = u64>,
        win_tx: &Sender<Vec<Batch>>,
        done_rx: &Receiver<Done>,
        spec: PassSpec,
        emit: &mut dyn FnMut(&SaveEvent),
        stop: &AtomicBool,
    ) -> Result<(), SaveError> {
        loop {
            for done in done_rx.try_iter() {
                self.recycle(done, spec, emit);
            }
            let mut window = Vec::with_capacity(self.window_batches);
            while window.len() < self.window_batches {
                let mut batch = self.free.pop().unwrap_or_default();
                batch.pfns.clear();
                batch.pfns.extend((&mut *pfns).take(self.batch_pfns));
                if batch.pfns.is_empty() {
                    self.free.push(batch);
                    break;
                }
                window.push(batch);
            }
            if window.is_empty() {
                return Ok(());
            }
            let window = self.prepare(window, spec.elide_zero, stop)?;
            if stop.load(Ordering::Acquire) || win_tx.send(window).is_err() {
                // The writer failed; its error is what the pass returns.
                return Ok(());
            }
        }
    }

    /// Prepares a window on the pool, keeping batch order. A panic in guest or backend
    /// code becomes [`SaveError::Worker`]; the first failing batch's error is returned.
    fn prepare(&self, window: Vec<Batch>, elide_zero: bool, stop: &AtomicBool) -> Result<Vec<Batch>, SaveError> {
        let prep = Prep {
            guest: self.guest,
            memory: self.memory,
            page_size: self.page_size,
            lend: self.lend,
            elide_zero,
            normalise: self.guest.normalises_pages(),
            stop,
        };
        let mut out = Vec::with_capacity(window.len());
        catch_unwind(AssertUnwindSafe(|| {
            self.pool.install(|| {
                window
                    .into_par_iter()
                    .map_init(Vec::new, |types, batch| prepare_batch(batch, types, &prep))
                    .collect_into_vec(&mut out)
            })
        }))
        .map_err(|p| SaveError::from_panic(&*p))?;
        out.into_iter().collect()
    }

    /// Takes back a written window's buffers and reports progress.
    fn recycle(&mut self, done: Done, spec: PassSpec, emit: &mut dyn FnMut(&SaveEvent)) {
        emit(&SaveEvent::Progress {
            iteration: spec.iteration,
            pages_done: done.pages,
            pages_total: spec.total,
            bytes: done.bytes,
        });
        // At most three windows' worth are ever in flight; keep no more than that.
        let room = (3 * self.window_batches).saturating_sub(self.free.len());
        self.free.extend(done.window.into_iter().take(room));
    }
}

/// Fills in one batch: page types, then (copy mode) the page bodies and zero-page
/// elision, then the pfn words. `types` is the worker's scratch.
fn prepare_batch(mut b: Batch, types: &mut Vec<PageType>, prep: &Prep<'_>) -> Result<Batch, SaveError> {
    b.skipped = prep.stop.load(Ordering::Relaxed);
    if b.skipped {
        return Ok(b);
    }
    types.clear();
    types.resize(b.pfns.len(), PageType::NOTAB);
    prep.guest.page_types(&b.pfns, types)?;
    b.data_pfns.clear();
    b.data_types.clear();
    for (&pfn, &t) in b.pfns.iter().zip(types.iter()) {
        if !t.is_known() {
            return Err(SaveError::InvalidState(format!(
                "the guest reported reserved page type {:#x} for pfn {pfn:#x}",
                t.nibble()
            )));
        }
        if t.has_data() {
            b.data_pfns.push(pfn);
            b.data_types.push(t);
        }
    }
    b.own.clear();
    if prep.lend && prep.normalise {
        // The pages the guest rewrites are copied here; the writer lends the rest.
        let (mut pfns, mut types) = (Vec::new(), Vec::new());
        for (i, (&pfn, &t)) in b.data_pfns.iter().zip(&b.data_types).enumerate() {
            if prep.guest.rewrites(t) {
                b.own.push(i);
                pfns.push(pfn);
                types.push(t);
            }
        }
        b.data.resize(pfns.len() * prep.page_size, 0);
        if !pfns.is_empty() {
            prep.memory.read_pages(&pfns, &mut b.data).map_err(|e| SaveError::memory(pfns[0], e))?;
            prep.guest.normalise_pages(&pfns, &types, &mut b.data)?;
        }
    }
    if !prep.lend {
        let ps = prep.page_size;
        b.data.resize(b.data_pfns.len() * ps, 0);
        prep.memory
            .read_pages(&b.data_pfns, &mut b.data)
            .map_err(|e| SaveError::memory(b.data_pfns.first().or(b.pfns.first()).copied().unwrap_or_default(), e))?;
        if prep.normalise {
            prep.guest.normalise_pages(&b.data_pfns, &b.data_types, &mut b.data)?;
        }
        if prep.elide_zero {
            elide_zero_pages(&mut b, types, ps);
        }
    }
    b.words.clear();
    b.words.reserve(8 * b.pfns.len());
    for (&pfn, &t) in b.pfns.iter().zip(types.iter()) {
        b.words.extend_from_slice(&PfnEntry::new(pfn, t).encode().to_le_bytes());
    }
    Ok(b)
}

/// Turns all-zero NOTAB pages into XALLOC entries and drops their bodies, compacting the
/// data buffer in place. Page tables keep their (zero) bodies: only ordinary pages may be
/// allocate-only.
fn elide_zero_pages(b: &mut Batch, types: &mut [PageType], ps: usize) {
    let mut next = 0; // index of the next page body, in data order
    let mut kept = 0;
    let mut kept_pfns = 0;
    for t in types.iter_mut().filter(|t| t.has_data()) {
        let range = next * ps..(next + 1) * ps;
        next += 1;
        if *t == PageType::NOTAB && is_zero(&b.data[range.clone()]) {
            *t = PageType::XALLOC;
            continue;
        }
        if kept != next - 1 {
            b.data.copy_within(range, kept * ps);
            b.data_pfns[kept_pfns] = b.data_pfns[next - 1];
        }
        kept += 1;
        kept_pfns += 1;
    }
    b.data.truncate(kept * ps);
    b.data_pfns.truncate(kept_pfns);
}

/// Whether a page is all zeros; an OR-fold per chunk vectorises, the chunks exit early.
fn is_zero(page: &[u8]) -> bool {
    page.chunks(ZERO_CHECK_CHUNK).all(|c| c.iter().fold(0u8, |acc, &b| acc | b) == 0)
}

/// The writer thread: writes each window's batches in order until the coordinator hangs
/// up, returning the pfn entries and bytes written. On an error it raises `stop` (so workers skip the
/// rest of their window) and returns, which disconnects the coordinator's sender.
#[allow(clippy::too_many_arguments)]
fn write_windows<W: Write>(
    rw: &mut Output<W>,
    win_rx: &Receiver<Vec<Batch>>,
    done_tx: &Sender<Done>,
    memory: &dyn GuestMemory,
    lend: bool,
    page_size: usize,
    start: u64,
    stop: &AtomicBool,
) -> Result<PassOutput, SaveError> {
    let mut pages = 0u64;
    let mut fallback = Vec::new();
    for window in win_rx.iter() {
        for b in window.iter().filter(|b| !b.skipped) {
            if let Err(e) = write_batch(rw, b, memory, lend, page_size, &mut fallback) {
                stop.store(true, Ordering::Release);
                return Err(e);
            }
            pages += b.pfns.len() as u64;
        }
        // Unbounded, so this never blocks; the coordinator may already be gone.
        let _ = done_tx.send(Done { window, pages, bytes: rw.get_ref().written() - start });
    }
    Ok(PassOutput { pages, bytes: rw.get_ref().written() - start })
}

/// Writes one PAGE_DATA record, lending the pages from the backend or from the batch's
/// copies.
fn write_batch<W: Write>(
    rw: &mut Output<W>,
    b: &Batch,
    memory: &dyn GuestMemory,
    lend: bool,
    page_size: usize,
    fallback: &mut Vec<u8>,
) -> Result<(), SaveError> {
    let count = b.pfns.len();
    let data_pages = b.data_pfns.len();
    let first_pfn = b.data_pfns.first().or(b.pfns.first()).copied().unwrap_or_default();
    if lend {
        let mut write_failed = false;
        let lent = memory.lend_pages(&b.data_pfns, &mut |pages| {
            if b.own.is_empty() {
                return rw
                    .write_page_data(count, data_pages, page_size, &b.words, pages)
                    .inspect_err(|_| write_failed = true);
            }
            let Some(spliced) = splice(pages, &b.own, &b.data, page_size) else {
                return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "lent slices are not whole pages"));
            };
            rw.write_page_data(count, data_pages, page_size, &b.words, &spliced).inspect_err(|_| write_failed = true)
        });
        return match lent {
            Some(Ok(())) => Ok(()),
            Some(Err(source)) if write_failed => Err(io_error(rw, source)),
            Some(Err(e)) => Err(memory_error_from_io(first_pfn, e)),
            None => {
                // The backend stopped lending after the probe: copy this batch instead.
                fallback.resize(data_pages * page_size, 0);
                memory.read_pages(&b.data_pfns, fallback).map_err(|e| SaveError::memory(first_pfn, e))?;
                for (k, &i) in b.own.iter().enumerate() {
                    fallback[i * page_size..(i + 1) * page_size]
                        .copy_from_slice(&b.data[k * page_size..(k + 1) * page_size]);
                }
                rw.write_page_data(count, data_pages, page_size, &b.words, &[fallback])
                    .map_err(|source| io_error(rw, source))
            }
        };
    }
    rw.write_page_data(count, data_pages, page_size, &b.words, &[&b.data]).map_err(|source| io_error(rw, source))
}

/// The backend's lent `pages` (whole pages each, in order) with the pages at the ascending
/// indices `own` replaced by the batch's own copies in `copies`; `None` if a slice is not a
/// whole number of pages or `own` names a page beyond them.
fn splice<'a>(pages: &[&'a [u8]], own: &[usize], copies: &'a [u8], ps: usize) -> Option<Vec<&'a [u8]>> {
    let mut out = Vec::with_capacity(pages.len() + 2 * own.len());
    let mut next = own.iter().copied().peekable();
    let (mut page, mut k) = (0usize, 0usize);
    for &s in pages {
        if s.len() % ps != 0 {
            return None;
        }
        let n = s.len() / ps;
        let mut start = 0;
        for j in 0..n {
            if next.peek() == Some(&(page + j)) {
                if j > start {
                    out.push(&s[start * ps..j * ps]);
                }
                out.push(copies.get(k * ps..(k + 1) * ps)?);
                k += 1;
                next.next();
                start = j + 1;
            }
        }
        if n > start {
            out.push(&s[start * ps..]);
        }
        page += n;
    }
    (next.peek().is_none()).then_some(out)
}

/// A lending backend's own error (a bad pfn) back as a memory error.
fn memory_error_from_io(pfn: u64, e: std::io::Error) -> SaveError {
    let source = match e.into_inner().map(|inner| inner.downcast::<MemoryError>()) {
        Some(Ok(mem)) => *mem,
        Some(Err(other)) => MemoryError::Backend(other.to_string()),
        None => MemoryError::Backend("lending pages failed".into()),
    };
    SaveError::memory(pfn, source)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splice_replaces_exactly_the_own_pages() {
        let ps = 4;
        let a = [1u8; 12]; // pages 0..3
        let b = [2u8; 4]; // page 3
        let c = [3u8; 8]; // pages 4..6
        let copies = [9u8, 9, 9, 9, 8, 8, 8, 8, 7, 7, 7, 7];
        let out = splice(&[&a, &b, &c], &[0, 3, 5], &copies, ps).unwrap();
        let flat: Vec<u8> = out.concat();
        let mut want = Vec::new();
        want.extend([9u8; 4]);
        want.extend([1u8; 8]);
        want.extend([8u8; 4]);
        want.extend([3u8; 4]);
        want.extend([7u8; 4]);
        assert_eq!(flat, want);
        assert!(splice(&[&a], &[], &[], ps).unwrap().concat() == a);
        assert!(splice(&[&a[..5]], &[0], &copies, ps).is_none(), "a slice of a page and a bit");
        assert!(splice(&[&a], &[3], &copies, ps).is_none(), "an own page beyond the lent ones");
    }

    #[test]
    fn zero_check() {
        assert!(is_zero(&[0; 4096]));
        let mut p = [0u8; 4096];
        p[4095] = 1;
        assert!(!is_zero(&p));
        assert!(is_zero(&[]));
    }

    #[test]
    fn elision_compacts_bodies_and_keeps_page_tables() {
        let ps = 16;
        let mut b = Batch { pfns: vec![1, 2, 3, 4, 5], data_pfns: vec![1, 2, 3, 5], ..Default::default() };
        // pfn 1 zero NOTAB, 2 data, 3 zero L1TAB, 4 XTAB (no body), 5 zero NOTAB.
        b.data = [vec![0; ps], vec![7; ps], vec![0; ps], vec![0; ps]].concat();
        let mut types = vec![PageType::NOTAB, PageType::NOTAB, PageType::L1TAB, PageType::XTAB, PageType::NOTAB];
        elide_zero_pages(&mut b, &mut types, ps);
        assert_eq!(types, [PageType::XALLOC, PageType::NOTAB, PageType::L1TAB, PageType::XTAB, PageType::XALLOC]);
        assert_eq!(b.data, [vec![7; ps], vec![0; ps]].concat());
        assert_eq!(b.data_pfns, [2, 3]);
    }
}
