//! Live pre-copy: send everything while the guest runs, then what it dirtied, until the
//! policy says stop; the caller then pauses the guest and sends the rest.
//!
//! Xen's loop (reference 3.5) sends a pass whose dirty count is already below the threshold
//! *live* and then stops. We simplify to **"stop, then final"**: when the dirty set is
//! small enough the loop stops without sending it, and the set is carried into the final
//! (paused) pass together with whatever is dirtied meanwhile. The guest's downtime covers
//! those few pages either way, and the stream has one pass fewer.
//!
//! Iterations are counted like Xen's: iteration 0 is the full pass, `max_iterations` bounds
//! the live passes including it (the default 5 gives at most one full and four dirty
//! passes before the final one).

use std::io::Write;

use sr_memory::PfnBitmap;

use crate::error::SaveError;
use crate::events::IterationStats;
use crate::options::PrecopyPolicy;
use crate::saver::Session;

/// Runs the live passes; returns the dirty set not yet sent (for the final pass). The
/// guest is still running when this returns.
pub(crate) fn precopy<W: Write + Send>(
    s: &mut Session<'_, '_, W>,
    policy: &PrecopyPolicy,
) -> Result<PfnBitmap, SaveError> {
    let memory = s.guest().memory();
    let page_size = memory.page_size() as u64;
    // Start the dirty log: everything written from now on is sent again.
    memory.take_dirty();
    let mut last = s.full_pass(false, false)?;
    let mut passes = 1;
    loop {
        let dirty = memory.take_dirty();
        if should_stop(policy, passes, dirty.count_ones(), page_size, &last) {
            return Ok(dirty);
        }
        last = s.dirty_pass(&dirty, false)?;
        passes += 1;
    }
}

/// The policy decision after `passes` live passes, with `dirty` pages dirtied during the
/// last one (`last`): stop when nothing or fewer than the threshold were dirtied, when the
/// pass budget is spent, or when sending the dirty pages at the last pass's rate would take
/// less than the downtime target.
pub(crate) fn should_stop(
    policy: &PrecopyPolicy,
    passes: u32,
    dirty: u64,
    page_size: u64,
    last: &IterationStats,
) -> bool {
    if dirty == 0 || dirty < policy.dirty_threshold || passes >= policy.max_iterations.max(1) {
        return true;
    }
    match policy.downtime_target {
        Some(target) => {
            let rate = last.rate().bytes_per_sec;
            // A pass too fast to measure: the rest will be too.
            rate <= 0.0 || (dirty.saturating_mul(page_size) as f64) / rate < target.as_secs_f64()
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn pass(bytes: u64, millis: u64) -> IterationStats {
        IterationStats { bytes, duration: Duration::from_millis(millis), pages: 1, ..Default::default() }
    }

    #[test]
    fn xen_defaults() {
        let p = PrecopyPolicy::default();
        let last = pass(1 << 20, 100);
        assert!(should_stop(&p, 1, 49, 4096, &last));
        assert!(!should_stop(&p, 1, 50, 4096, &last));
        assert!(!should_stop(&p, 4, 1000, 4096, &last));
        assert!(should_stop(&p, 5, 1000, 4096, &last));
        assert!(should_stop(&PrecopyPolicy { dirty_threshold: 0, ..p }, 1, 0, 4096, &last));
        assert!(should_stop(&PrecopyPolicy { max_iterations: 0, ..p }, 1, 1000, 4096, &last));
    }

    #[test]
    fn downtime_target() {
        let p = PrecopyPolicy {
            downtime_target: Some(Duration::from_millis(100)),
            dirty_threshold: 1,
            max_iterations: 100,
        };
        // 10 MB/s: 256 pages (1 MiB) take ~105 ms, 200 pages ~82 ms.
        let last = pass(1_000_000, 100);
        assert!(!should_stop(&p, 1, 256, 4096, &last));
        assert!(should_stop(&p, 1, 200, 4096, &last));
        assert!(should_stop(&p, 1, 1 << 30, 4096, &pass(0, 0)));
    }
}
