//! What a save writes and how: stream version, batching, parallelism, live policy, container.

use std::time::Duration;

use sr_format::REC_LENGTH_MAX;

use crate::error::SaveError;
use crate::events::IterationStats;

/// Xen's batch size: 1024 pfns, 4 MiB of 4 KiB pages, the limit of one `getpageframeinfo3`.
pub const DEFAULT_BATCH_PFNS: usize = 1024;

/// Save options. `Default` is what `xl save` does: a non-live v3 libxc stream, 1024-pfn
/// batches, zero pages sent as data, no VERIFY pass, Xen 4.17 in the domain header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SaveOptions {
    /// libxc stream version: 3 (default, Xen 4.14 and later) or 2 (for older receivers: no
    /// STATIC_DATA_END and no CPUID/MSR policy records, which v2 predates).
    pub stream_version: u32,
    /// pfns per PAGE_DATA record; at most [`max_batch_pfns`] for the page size.
    pub batch_pfns: usize,
    /// Worker threads preparing batches; 0 means the available parallelism. Output is
    /// byte-identical for every value.
    pub workers: usize,
    /// How all-zero ordinary pages are sent.
    pub zero_pages: ZeroPages,
    /// After the final pass, send a VERIFY record and every page again, for the receiver
    /// to compare (Xen's `--debug` migration). Plain saves only.
    pub verify: bool,
    /// Live pre-copy policy; `None` pauses the guest first and sends memory in one pass.
    pub live: Option<PrecopyPolicy>,
    /// Write a PVH guest (domain type 3) with domain header type 2, as current Xen does
    /// for its HVM-container PVH guests.
    pub pvh_as_hvm: bool,
    /// The layers around the libxc stream.
    pub container: Container,
    /// Xen version written in the domain header (major, minor).
    pub xen_version: (u32, u32),
    /// Set libxl's "converted from a legacy stream" header option (a libxl or xl
    /// container only), as the stream the state came from had it.
    pub libxl_legacy: bool,
}

impl Default for SaveOptions {
    fn default() -> Self {
        Self {
            stream_version: 3,
            batch_pfns: DEFAULT_BATCH_PFNS,
            workers: 0,
            zero_pages: ZeroPages::Data,
            verify: false,
            live: None,
            pvh_as_hvm: false,
            container: Container::Libxc,
            xen_version: (4, 17),
            libxl_legacy: false,
        }
    }
}

impl SaveOptions {
    /// The number of worker threads these options ask for (0 resolved to the available
    /// parallelism).
    pub fn worker_count(&self) -> usize {
        match self.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }

    /// Checks everything that does not depend on the guest beyond its page size.
    pub(crate) fn validate(&self, page_size: usize) -> Result<(), SaveError> {
        if !(2..=3).contains(&self.stream_version) {
            return Err(SaveError::UnsupportedVersion(self.stream_version));
        }
        if self.batch_pfns == 0 {
            return Err(SaveError::InvalidOptions("batch_pfns must be at least 1".into()));
        }
        let max = max_batch_pfns(page_size);
        if self.batch_pfns > max {
            return Err(SaveError::BatchTooLarge { batch: self.batch_pfns, max });
        }
        if let Container::Xl { config } = &self.container
            && config.len() >= (sr_format::xl::XL_OPTIONAL_MAX - 4) as usize
        {
            return Err(SaveError::InvalidOptions(format!("xl config of {} bytes is too large", config.len())));
        }
        Ok(())
    }
}

/// The largest batch whose PAGE_DATA record (8 + 8 per pfn + one page per pfn) stays within
/// the 128 MiB record length limit every restorer enforces: 32 704 pfns at 4 KiB pages,
/// 2047 at 64 KiB.
pub fn max_batch_pfns(page_size: usize) -> usize {
    (REC_LENGTH_MAX as usize - 8) / (8 + page_size)
}

/// When live pre-copy stops iterating and pauses the guest.
///
/// The defaults are Xen's compiled-in `simple_precopy_policy`: stop when fewer than 50
/// pages were dirtied or after 5 passes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrecopyPolicy {
    /// Live passes at most, iteration 0 (everything) included; at least one is always made.
    pub max_iterations: u32,
    /// Stop when fewer pages than this were dirtied during the last pass.
    pub dirty_threshold: u64,
    /// Also stop when sending the dirty pages at the last pass's measured rate would take
    /// less than this (the expected downtime is then below the target).
    pub downtime_target: Option<Duration>,
}

impl Default for PrecopyPolicy {
    fn default() -> Self {
        Self { max_iterations: 5, dirty_threshold: 50, downtime_target: None }
    }
}

impl PrecopyPolicy {
    /// The saver's decision after `passes` live passes, with `dirty` pages dirtied during the
    /// last one (`last`): whether to pause now. Public so that other pre-copy loops (e.g. a
    /// memory dump into a raw image) follow exactly the saver's policy.
    pub fn should_stop(&self, passes: u32, dirty: u64, page_size: u64, last: &IterationStats) -> bool {
        crate::live::should_stop(self, passes, dirty, page_size, last)
    }
}

/// How all-zero ordinary (NOTAB) pages are sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ZeroPages {
    /// As ordinary pages with a zero body, as Xen does.
    #[default]
    Data,
    /// As XALLOC entries without a body: the receiver allocates a zeroed page. Used only
    /// for the first send of a page (iteration 0 and the VERIFY pass): in a later pass the
    /// receiver may hold older non-zero data for the pfn, which an XALLOC entry would not
    /// overwrite. Costs a zero check per page and rules out the zero-copy path.
    Xalloc,
}

/// The layers written around the libxc stream.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Container {
    /// A bare libxc stream (what `xc_domain_save` writes).
    #[default]
    Libxc,
    /// A libxl v2 stream: libxl header, LIBXC_CONTEXT, the libxc stream, the device-model
    /// records of an HVM guest, libxl END (what libxl sends on a migration).
    Libxl,
    /// An `xl` save file: the `xl` header with the domain configuration (JSON, including
    /// its NUL; empty for none), then the libxl stream (what `xl save` writes).
    Xl {
        /// The configuration bytes.
        config: Vec<u8>,
    },
}

impl Container {
    /// Whether the libxc stream is wrapped in a libxl stream.
    pub fn is_libxl(&self) -> bool {
        !matches!(self, Container::Libxc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_limits_fit_the_record_cap() {
        for shift in [12, 14, 16] {
            let size = 1usize << shift;
            let max = max_batch_pfns(size);
            let len = sr_format::body::page_data_body_len(max, max, size).unwrap();
            assert!(len <= REC_LENGTH_MAX);
            assert!(sr_format::body::page_data_body_len(max + 1, max + 1, size).unwrap() > REC_LENGTH_MAX);
        }
        assert_eq!(max_batch_pfns(4096), 32_704);
    }

    #[test]
    fn validation() {
        let o = SaveOptions::default();
        o.validate(4096).unwrap();
        assert!(matches!(
            SaveOptions { stream_version: 4, ..o.clone() }.validate(4096),
            Err(SaveError::UnsupportedVersion(4))
        ));
        assert!(matches!(SaveOptions { batch_pfns: 0, ..o.clone() }.validate(4096), Err(SaveError::InvalidOptions(_))));
        assert!(matches!(
            SaveOptions { batch_pfns: 4096, ..o }.validate(1 << 16),
            Err(SaveError::BatchTooLarge { batch: 4096, max: 2047 })
        ));
    }
}
