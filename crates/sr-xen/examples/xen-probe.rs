//! Exercises every Xen call a PV saver needs on a real domain, for checking sr-xen on a Xen
//! host (run as root in dom0):
//!
//! ```text
//! xen-probe NAME|DOMID [--destroy] [--dump DIR] [--suspend-timeout-ms N]
//! ```
//!
//! Opens the domain while it runs and prints the page-type histogram of its p2m frames, each
//! vcpu's basic/extended/xsave/MSR sizes, the CPU policy's counts, the TSC info and the xl
//! config JSON's size; then suspends it cooperatively, reads the vcpu contexts, the p2m, the
//! page types and every page again from the suspended domain, and resumes it (suspend cancel),
//! or with `--destroy` destroys it as `xl save` does.
//!
//! `--dump DIR` writes the record bodies Xen's saver would write (`config.json` as in the xl
//! header, `cpuid.bin` and `msr.bin` as X86_CPUID_POLICY and X86_MSR_POLICY, `extended-N.bin`
//! per vcpu), to compare byte for byte with an `xl save` file. `--suspend-timeout-ms N` only
//! tries a suspend with that (too short) timeout, to exercise the failure path: the request is
//! withdrawn or the guest resumed, and the domain must be running afterwards.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use sr_memory::GuestMemory;
use sr_xen::{Interrupt, XenDomain, resolve_domain};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const NAMES: [&str; 16] = [
    "NOTAB",
    "L1TAB",
    "L2TAB",
    "L3TAB",
    "L4TAB",
    "5?",
    "6?",
    "7?",
    "8?",
    "L1TAB|PINNED",
    "L2TAB|PINNED",
    "L3TAB|PINNED",
    "L4TAB|PINNED",
    "BROKEN",
    "XALLOC",
    "XTAB",
];

/// The page types of every populated pfn's frame, as `NAME count` pairs.
fn type_histogram(domain: &XenDomain) -> Result<String> {
    let memory = domain.memory();
    let p2m = memory.p2m_entries().ok_or("not a PV domain")?;
    let pfns: Vec<u64> = memory.populated().iter_ones().collect();
    let mfns: Vec<u64> = pfns.iter().map(|&p| p2m[p as usize]).collect();
    let mut types = vec![0u8; mfns.len()];
    let t = Instant::now();
    domain.frame_types(&mfns, &mut types)?;
    let took = t.elapsed();
    let mut hist = BTreeMap::new();
    for t in types {
        *hist.entry(t).or_insert(0u64) += 1;
    }
    let parts: Vec<String> = hist.iter().map(|(&t, n)| format!("{} {n}", NAMES[usize::from(t & 0xf)])).collect();
    Ok(format!("{} frames in {:.1} ms: {}", mfns.len(), took.as_secs_f64() * 1e3, parts.join(", ")))
}

fn vcpus(domain: &XenDomain, dump: Option<&std::path::Path>) -> Result<()> {
    for (vcpu, basic) in domain.vcpu_contexts()? {
        let ext = domain.vcpu_extended(vcpu)?;
        if let Some(dir) = dump {
            std::fs::write(dir.join(format!("extended-{vcpu}.bin")), &ext)?;
        }
        let xsave = domain.vcpu_xsave(vcpu)?;
        let msrs = domain.vcpu_msrs(vcpu)?;
        println!(
            "vcpu {vcpu}: basic {} bytes, extended {} bytes, xsave {}, msrs {}",
            basic.len(),
            ext.len(),
            xsave.map_or("none".into(), |x| format!(
                "{} bytes (xcr0 {:#x})",
                x.len(),
                u64::from_le_bytes(x[..8].try_into().unwrap_or_default())
            )),
            msrs.map_or("none".into(), |m| format!("{} bytes ({} MSRs)", m.len(), m.len() / 16)),
        );
    }
    Ok(())
}

/// Reads every populated page; returns (pages, pages that did not map, md5-free checksum).
fn read_all(domain: &XenDomain) -> Result<(u64, u64, u64)> {
    let memory = domain.memory();
    let pfns: Vec<u64> = memory.populated().iter_ones().collect();
    let mut buf = vec![0u8; 1024 * 4096];
    let mut sum = 0u64;
    for chunk in pfns.chunks(1024) {
        let out = &mut buf[..chunk.len() * 4096];
        memory.read_pages(chunk, out)?;
        for w in out.chunks_exact(8) {
            sum = sum.wrapping_mul(31).wrapping_add(u64::from_le_bytes(w.try_into().unwrap_or_default()));
        }
    }
    Ok((pfns.len() as u64, memory.unreadable().count_ones(), sum))
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(name) = args.first() else {
        eprintln!("usage: xen-probe NAME|DOMID [--destroy]");
        std::process::exit(2);
    };
    let destroy = args.iter().any(|a| a == "--destroy");
    let value = |flag: &str| args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).cloned();
    let dump = value("--dump").map(std::path::PathBuf::from);
    let short_timeout = value("--suspend-timeout-ms").map(|v| v.parse::<u64>()).transpose()?;
    let domid = resolve_domain(name)?;
    let t = Instant::now();
    let domain = XenDomain::open(domid, Interrupt::install()?)?;
    println!("domain {domid} ({name}): {:?}, opened in {:.1} ms", domain.kind(), t.elapsed().as_secs_f64() * 1e3);
    println!("info: {:?}", domain.info());
    if let Some(ms) = short_timeout {
        let t = Instant::now();
        let result = domain.suspend(Duration::from_millis(ms));
        println!("suspend with a {ms} ms timeout: {result:?} after {:.1} ms", t.elapsed().as_secs_f64() * 1e3);
        println!("then: {}", sr_xen_info(&domain));
        domain.restore()?;
        println!("after restore: {}", sr_xen_info(&domain));
        return if result.is_err() { Ok(()) } else { Err("the suspend did not fail".into()) };
    }
    println!("running: page types of {}", type_histogram(&domain)?);
    vcpus(&domain, dump.as_deref())?;
    let (leaves, msrs) = domain.cpu_policy()?;
    println!("cpu policy: {} CPUID leaves, {} MSRs", leaves.len(), msrs.len());
    if let Some(dir) = &dump {
        // xen_cpuid_leaf_t and xen_msr_entry_t, little-endian, as the records carry them.
        let cpuid: Vec<u8> = leaves.iter().flatten().flat_map(|w| w.to_le_bytes()).collect();
        let msr: Vec<u8> = msrs
            .iter()
            .flat_map(|(i, f, v)| i.to_le_bytes().into_iter().chain(f.to_le_bytes()).chain(v.to_le_bytes()))
            .collect();
        std::fs::write(dir.join("cpuid.bin"), cpuid)?;
        std::fs::write(dir.join("msr.bin"), msr)?;
    }
    for (idx, flags, val) in &msrs {
        println!("  msr {idx:#x} flags {flags:#x} value {val:#x}");
    }
    println!("tsc: {:?}", domain.tsc_info()?);
    let json = domain.config_json()?;
    if let Some(dir) = &dump {
        std::fs::write(dir.join("config.json"), &json)?;
    }
    let text = String::from_utf8_lossy(&json[..json.len().saturating_sub(1)]);
    println!(
        "config json: {} bytes incl. NUL (last byte {:#x}), first line {:?}, name line {:?}",
        json.len(),
        json.last().copied().unwrap_or(0xff),
        text.lines().next().unwrap_or(""),
        text.lines().find(|l| l.contains("\"name\"")).unwrap_or("").trim(),
    );

    let took = domain.suspend(Duration::from_secs(30))?;
    let t = Instant::now();
    println!(
        "suspended in {:.1} ms; suspended_now {}, paused_now {}",
        took.as_secs_f64() * 1e3,
        domain.suspended_now()?,
        domain.paused_now()?
    );
    println!("suspended: info {:?}", sr_xen_info(&domain));
    vcpus(&domain, None)?;
    let changed = domain.refresh_p2m()?;
    println!("suspended: p2m reread, {changed} pfns changed");
    println!("suspended: page types of {}", type_histogram(&domain)?);
    let (pages, holes, sum) = read_all(&domain)?;
    println!("suspended: read {pages} pages, {holes} did not map, checksum {sum:#018x}");
    println!("suspended: tsc {:?}", domain.tsc_info()?);
    println!("suspended for {:.1} ms of reads", t.elapsed().as_secs_f64() * 1e3);

    if destroy {
        let t = Instant::now();
        domain.destroy()?;
        println!("destroyed in {:.1} ms", t.elapsed().as_secs_f64() * 1e3);
        drop(domain);
        match XenDomain::open(domid, Interrupt::none()) {
            Err(e) => println!("after destroy: open says: {e}"),
            Ok(_) => return Err("the domain is still there after destroy".into()),
        }
    } else {
        let t = Instant::now();
        domain.resume()?;
        println!("resumed in {:.1} ms; suspended_now {}", t.elapsed().as_secs_f64() * 1e3, domain.suspended_now()?);
        domain.restore()?;
    }
    Ok(())
}

/// The domain's state as Xen reports it now (through `suspended_now`/`paused_now`).
fn sr_xen_info(domain: &XenDomain) -> String {
    format!(
        "suspended {:?}, paused {:?}",
        domain.suspended_now().map_err(|e| e.to_string()),
        domain.paused_now().map_err(|e| e.to_string())
    )
}
