//! Progress events and statistics.

use std::time::Duration;

/// Something the saver reports while it runs, from the coordinating thread (the thread that
/// called [`Saver::save`](crate::Saver::save)), in stream order.
#[derive(Clone, Debug, PartialEq)]
pub enum SaveEvent {
    /// A memory pass starts: `pages` pfn entries will be sent.
    IterationStart {
        /// Pass number, from 0.
        iteration: u32,
        /// pfns in this pass.
        pages: u64,
    },
    /// Part of a pass was written (after every window of batches).
    Progress {
        /// Pass number.
        iteration: u32,
        /// pfn entries written so far in this pass.
        pages_done: u64,
        /// pfns in this pass.
        pages_total: u64,
        /// Bytes written so far in this pass.
        bytes: u64,
    },
    /// A pass was completely written.
    IterationEnd(IterationStats),
    /// The guest was paused; `dirty_pages` remain for the final pass.
    Paused {
        /// pfns in the final pass.
        dirty_pages: u64,
    },
    /// The stream is complete (END written and flushed).
    Complete(SaveStats),
}

/// One memory pass.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct IterationStats {
    /// Pass number, from 0 (later checkpoints continue the count).
    pub iteration: u32,
    /// pfn entries sent.
    pub pages: u64,
    /// Bytes of PAGE_DATA records written.
    pub bytes: u64,
    /// Wall-clock time of the pass.
    pub duration: Duration,
    /// Whether this is a pass made with the guest paused (the final pass of a save or of a
    /// checkpoint, or the only pass of a non-live save).
    pub final_pass: bool,
    /// Whether this is the second, compare-only pass after a VERIFY record.
    pub verify: bool,
}

/// A throughput.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct Rate {
    /// pfn entries per second.
    pub pages_per_sec: f64,
    /// Bytes per second.
    pub bytes_per_sec: f64,
}

impl IterationStats {
    /// The pass's throughput (zero for a pass that took no measurable time).
    pub fn rate(&self) -> Rate {
        let secs = self.duration.as_secs_f64();
        if secs <= 0.0 {
            return Rate::default();
        }
        Rate { pages_per_sec: self.pages as f64 / secs, bytes_per_sec: self.bytes as f64 / secs }
    }
}

/// What a whole save did.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SaveStats {
    /// Every memory pass, in order (live passes, final passes, VERIFY pass).
    pub iterations: Vec<IterationStats>,
    /// Bytes of the whole output, every layer included.
    pub bytes: u64,
    /// pfn entries sent over all passes.
    pub pages: u64,
    /// From the (last) pause to the end of the guest's stop: to the end of the stream for
    /// a plain save, to the last CHECKPOINT (when the guest resumes) for a checkpointed one.
    pub downtime: Duration,
    /// CHECKPOINT records written.
    pub checkpoints: u64,
    /// Wall-clock time of the whole save.
    pub duration: Duration,
    /// Whether pages went from guest memory to the output without an intermediate copy
    /// (the backend lends pages and zero pages are sent as data).
    pub zero_copy: bool,
}

impl SaveStats {
    /// The live passes (made while the guest was running).
    pub fn live_passes(&self) -> usize {
        self.iterations.iter().filter(|i| !i.final_pass && !i.verify).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_of_a_pass() {
        let s = IterationStats {
            pages: 1000,
            bytes: 4_096_000,
            duration: Duration::from_millis(500),
            ..Default::default()
        };
        let r = s.rate();
        assert_eq!((r.pages_per_sec, r.bytes_per_sec), (2000.0, 8_192_000.0));
        assert_eq!(IterationStats::default().rate(), Rate::default());
    }
}
