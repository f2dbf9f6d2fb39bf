//! Failed and completed saves leave no thread behind. Its own test binary, so that no other
//! test's threads are counted.

mod common;

use std::time::{Duration, Instant};

use common::{FailAfter, guest};
use sr_format::DomainType;
use sr_save::{PrecopyPolicy, SaveOptions, Saver};

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").map(|d| d.count()).unwrap_or(0)
}

#[test]
fn saves_join_or_end_all_their_threads() {
    if threads() == 0 {
        return; // no procfs
    }
    let baseline = threads();
    let g = guest(DomainType::X86_HVM, 12, 300);
    for i in 0..40 {
        use sr_save::Guest;
        g.resume().unwrap();
        let opts = SaveOptions {
            workers: 4,
            batch_pfns: 16,
            live: (i % 2 == 0).then(PrecopyPolicy::default),
            ..Default::default()
        };
        let mut w = FailAfter::new(1000 + i * 7919);
        assert!(Saver::new(opts.clone()).save(&g, &mut w).is_err());
        g.resume().unwrap();
        Saver::new(opts).save(&g, std::io::sink()).unwrap();
    }
    // The writer is joined before `save` returns; pool workers exit once the pool is
    // dropped, asynchronously, so give them a moment.
    let deadline = Instant::now() + Duration::from_secs(10);
    while threads() > baseline && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(threads() <= baseline, "{} threads, {baseline} before 80 saves", threads());
}
