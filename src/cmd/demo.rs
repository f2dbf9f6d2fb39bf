//! `xsr demo`: a synthetic guest saved live over loopback TCP into a restorer, then compared.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::time::Instant;

use anyhow::{Context, Result, anyhow};
use serde::Serialize;
use sr_format::DomainType;
use sr_memory::{GuestMemory, RamMemory};
use sr_restore::{RestoreOptions, Restorer};
use sr_save::{Container, PrecopyPolicy, SaveOptions, SaveStats, Saver, ZeroPages};

use crate::cmd::save::progress_handler;
use crate::synthetic::SyntheticGuest;

/// The guest type of a demo.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DemoType {
    /// x86 PV.
    Pv,
    /// x86 HVM.
    Hvm,
    /// x86 PVH (domain type 3).
    Pvh,
    /// ARM.
    Arm,
}

impl DemoType {
    fn domain_type(self) -> DomainType {
        match self {
            DemoType::Pv => DomainType::X86_PV,
            DemoType::Hvm => DomainType::X86_HVM,
            DemoType::Pvh => DomainType::X86_PVH,
            DemoType::Arm => DomainType::ARM,
        }
    }
}

/// Demo settings.
#[derive(Clone, Debug)]
pub struct DemoSettings {
    /// Guest memory in bytes.
    pub memory: u64,
    /// Guest type.
    pub dtype: DemoType,
    /// Pages the guest dirties per second while running.
    pub dirty_rate: u64,
    /// Saver worker threads (0: one per core).
    pub workers: usize,
    /// Precopy policy.
    pub policy: PrecopyPolicy,
}

/// One pass of the migration, for the summary.
#[derive(Serialize, Debug)]
pub struct PassSummary {
    /// Pass number (0 = the full first pass).
    pub iteration: u32,
    /// Whether this was the final pass with the guest paused.
    pub paused: bool,
    /// Pages sent.
    pub pages: u64,
    /// Bytes sent.
    pub bytes: u64,
    /// Seconds.
    pub seconds: f64,
    /// Pages per second.
    pub pages_per_second: f64,
}

/// What the demo measured and found.
#[derive(Serialize, Debug)]
pub struct DemoSummary {
    /// Domain type.
    pub domain_type: String,
    /// Guest pages.
    pub pages: u64,
    /// The passes.
    pub passes: Vec<PassSummary>,
    /// Seconds from pause to the end of the stream.
    pub downtime_seconds: f64,
    /// Stream bytes.
    pub bytes: u64,
    /// Seconds for the whole migration.
    pub seconds: f64,
    /// Pages the guest wrote during the migration.
    pub pages_dirtied: u64,
    /// Whether the restored memory and state equal the source at the pause.
    pub identical: bool,
    /// The exit status: 0 identical, 1 different.
    pub exit_code: u8,
    /// What differed, if anything.
    pub differences: Vec<String>,
}

/// The smallest demo guest: the synthetic guest's state (page tables, the hole below the
/// top) needs 64 pages.
pub const MIN_MEMORY: u64 = 64 << 12;

/// What the host has available for new allocations (`MemAvailable` in `/proc/meminfo`), in
/// bytes; `None` when it does not say.
pub fn available_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u64 =
        info.lines().find_map(|l| l.strip_prefix("MemAvailable:"))?.trim().strip_suffix("kB")?.trim().parse().ok()?;
    kib.checked_mul(1024)
}

/// Checks `--memory` before anything is allocated: whole 4 KiB pages, at least
/// [`MIN_MEMORY`], and the guest and its restored copy (twice the memory, both held in RAM)
/// within what the host has available (`available`, bytes).
pub fn check_memory(memory: u64, available: Option<u64>) -> Result<()> {
    use crate::size::{format_size, format_size_up};
    let given = format_size(memory);
    if memory < MIN_MEMORY {
        anyhow::bail!("--memory {given}: the demo guest needs at least {} (64 pages)", format_size(MIN_MEMORY));
    }
    if !memory.is_multiple_of(4096) {
        anyhow::bail!("--memory {given} is not a whole number of 4K pages");
    }
    let needed = memory.saturating_mul(2);
    if let Some(available) = available
        && needed > available
    {
        anyhow::bail!(
            "--memory {given}: the demo holds the guest and its restored copy in RAM ({} in all), more than the {} \
             this host has available (MemAvailable in /proc/meminfo)",
            format_size(needed),
            format_size_up(available)
        );
    }
    Ok(())
}

/// Runs the demo.
pub fn demo(settings: &DemoSettings) -> Result<DemoSummary> {
    check_memory(settings.memory, available_memory())?;
    let dtype = settings.dtype.domain_type();
    let guest = SyntheticGuest::new(dtype, 12, settings.memory).context("cannot build the synthetic guest")?;
    let pages = guest.pages();
    let listener = TcpListener::bind("127.0.0.1:0").context("cannot listen on loopback")?;
    let addr = listener.local_addr()?;

    let options = SaveOptions {
        live: Some(settings.policy),
        workers: settings.workers,
        container: if dtype == DomainType::X86_HVM { Container::Libxl } else { Container::Libxc },
        zero_pages: ZeroPages::Data,
        ..SaveOptions::default()
    };
    guest.start_dirtying(settings.dirty_rate);
    let start = Instant::now();
    let bar = crate::progress::pages_bar();
    bar.set_length(pages);
    let (saved, restored) = std::thread::scope(|scope| {
        let receiver = scope.spawn(move || -> Result<_> {
            let (stream, _) = listener.accept().context("accept failed")?;
            Restorer::new(RestoreOptions::default())
                .restore_read(stream, |h| RamMemory::new(u32::from(h.page_shift.get()), pages))
                .map_err(|e| anyhow!(e).context("restore failed"))
        });
        let sender = || -> Result<SaveStats> {
            let stream = TcpStream::connect(addr).context("cannot connect over loopback")?;
            stream.set_nodelay(true).ok();
            let stats = Saver::new(options).on_event(progress_handler(&bar)).save(&guest, &stream)?;
            stream.shutdown(std::net::Shutdown::Write).ok();
            Ok(stats)
        };
        let saved = sender();
        let restored = receiver.join().map_err(|_| anyhow!("the receiver thread panicked"))?;
        Ok::<_, anyhow::Error>((saved?, restored?))
    })?;
    bar.finish_and_clear();
    let seconds = start.elapsed().as_secs_f64();

    // Compare with the source at the pause (the dirtier is stopped now).
    let mut differences = Vec::new();
    let source = guest.current_state();
    if restored.state != source {
        differences.push(state_difference(&source, &restored.state));
    }
    let dest = restored.memory.context("no memory restored")?;
    let (src_pop, dst_pop) = (guest.ram().populated(), dest.populated());
    if src_pop != dst_pop {
        differences.push(format!(
            "populated pages differ: source {}, restored {}",
            src_pop.count_ones(),
            dst_pop.count_ones()
        ));
    }
    let page = guest.ram().page_size();
    let (mut a, mut b) = (vec![0u8; 1024 * page], vec![0u8; 1024 * page]);
    let pfns: Vec<u64> = (0..pages).collect();
    let mut mismatched = 0u64;
    for chunk in pfns.chunks(1024) {
        let n = chunk.len() * page;
        guest.ram().read_pages(chunk, &mut a[..n])?;
        dest.read_pages(chunk, &mut b[..n])?;
        mismatched += a[..n].chunks_exact(page).zip(b[..n].chunks_exact(page)).filter(|(x, y)| x != y).count() as u64;
    }
    if mismatched > 0 {
        differences.push(format!("{mismatched} pages differ"));
    }
    let passes = saved
        .iterations
        .iter()
        .map(|it| {
            let secs = it.duration.as_secs_f64();
            PassSummary {
                iteration: it.iteration,
                paused: it.final_pass,
                pages: it.pages,
                bytes: it.bytes,
                seconds: secs,
                pages_per_second: if secs > 0.0 { it.pages as f64 / secs } else { 0.0 },
            }
        })
        .collect();
    Ok(DemoSummary {
        domain_type: dtype.to_string(),
        pages,
        passes,
        downtime_seconds: saved.downtime.as_secs_f64(),
        bytes: saved.bytes,
        seconds,
        pages_dirtied: guest.dirtied(),
        identical: differences.is_empty(),
        exit_code: u8::from(!differences.is_empty()),
        differences,
    })
}

fn state_difference(a: &sr_format::state::DomainState, b: &sr_format::state::DomainState) -> String {
    let fields: [(&str, bool); 12] = [
        ("domain type", a.domain_type == b.domain_type),
        ("versions", (a.stream_version, a.xen_major, a.xen_minor) == (b.stream_version, b.xen_major, b.xen_minor)),
        ("pv_info", a.pv_info == b.pv_info),
        ("p2m", a.p2m == b.p2m),
        ("vcpus", a.vcpus == b.vcpus),
        ("shared_info", a.shared_info == b.shared_info),
        ("tsc", a.tsc == b.tsc),
        ("hvm_context", a.hvm_context == b.hvm_context),
        ("hvm_params", a.hvm_params == b.hvm_params),
        ("cpu policy", a.cpuid == b.cpuid && a.msrs == b.msrs),
        ("emulator", a.emulator == b.emulator),
        ("page types", a.page_types == b.page_types),
    ];
    let differing: Vec<&str> = fields.iter().filter(|(_, same)| !same).map(|(n, _)| *n).collect();
    format!("state differs: {}", differing.join(", "))
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

/// Prints the summary as text.
pub fn print_summary(s: &DemoSummary, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(
        out,
        "{} guest, {} ({}), live-migrated over loopback TCP",
        s.domain_type,
        crate::text::count(s.pages, "page"),
        crate::size::format_size(s.pages * 4096)
    )?;
    for p in &s.passes {
        let label = if p.paused { "final (paused)".to_string() } else { format!("pass {}", p.iteration) };
        writeln!(
            out,
            "  {label:<15} {:>8} pages {:>9.1} MiB in {:>7.3} s  ({:>9.0} pages/s, {:>7.1} MiB/s)",
            p.pages,
            mib(p.bytes),
            p.seconds,
            p.pages_per_second,
            if p.seconds > 0.0 { mib(p.bytes) / p.seconds } else { 0.0 }
        )?;
    }
    writeln!(
        out,
        "  guest dirtied {} pages while running; downtime {:.1} ms",
        s.pages_dirtied,
        s.downtime_seconds * 1e3
    )?;
    writeln!(
        out,
        "  total {:.1} MiB in {:.3} s ({:.1} MiB/s)",
        mib(s.bytes),
        s.seconds,
        if s.seconds > 0.0 { mib(s.bytes) / s.seconds } else { 0.0 }
    )?;
    if s.identical {
        writeln!(out, "verdict: PASS - restored memory and state equal the source at the pause")
    } else {
        writeln!(out, "verdict: FAIL - {}", s.differences.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_is_checked_against_the_host() {
        assert!(check_memory(0, None).unwrap_err().to_string().contains("at least 256K"));
        // A size is echoed as given, not in bytes.
        let e = check_memory(100 << 10, None).unwrap_err().to_string();
        assert!(e.starts_with("--memory 100K: ") && !e.contains("102400"), "{e}");
        assert!(check_memory(MIN_MEMORY + 1, None).unwrap_err().to_string().contains("whole number of 4K pages"));
        let e = check_memory(1 << 40, Some(8 << 30)).unwrap_err().to_string();
        assert!(e.contains("--memory 1T") && e.contains("2T in all") && e.contains("8G"), "{e}");
        check_memory(256 << 20, Some(8 << 30)).unwrap();
    }
}
