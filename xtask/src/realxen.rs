//! `cargo xtask realxen`: the jobs of `tests/realxen/` on a real Xen (one boot each, through
//! `realxen.sh job`), then the host-side checks of the dumps and save files they bring back.

mod compare;

use std::collections::BTreeMap;
use std::env;
use std::ffi::OsStr;
use std::fs;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::util::{Ctx, Error, err, io_err, list_files, run};
use compare::{realxen_compare, save_checks};

/// The job scripts, their guest (`# realxen-guest: MEM:VCPUS[:DIRTY]` and `# realxen-guest-type:
/// pv|pvh|hvm` in the script) and the host-side checks; `common.sh` and the `lib-*.sh` files
/// (shared job bodies) are copied in with each job.
const REALXEN_DIR: &str = "tests/realxen";

/// The CPU the nested machine emulates unless `REALXEN_CPU` is set: the harness's default
/// (`max,-smap`) without XSAVE. With XSAVE, dom0's SSE/AVX registers do not survive context
/// switches on this nested host (Xen 4.17's lazy FPU switching under QEMU 7.2's TCG): threads
/// get zeros or another thread's values, which broke TLS records and glibc's heap in dom0.
/// Without it Xen and dom0's Linux switch FPU state with FXSAVE/FXRSTOR and keep it
/// (docs/xen.md, "The nested host and vector registers"; `host_fpu` in common.sh checks it).
const REALXEN_CPU: &str = "max,-smap,-xsave";

/// `tests/realxen/tools/simd-check.c`, built static with the host's C compiler (the one the
/// build of aws-lc already needs) for dom0: `host_fpu` in common.sh runs it.
fn build_simd_check(ctx: &Ctx) -> Result<PathBuf, Error> {
    let src = ctx.root.join(REALXEN_DIR).join("tools/simd-check.c");
    let dir = ctx.root.join("target/realxen-tools");
    fs::create_dir_all(&dir).map_err(|e| io_err("cannot create", &dir, e))?;
    let bin = dir.join("simd-check");
    let cc = env::var_os("CC").unwrap_or_else(|| "cc".into());
    run(Command::new(cc)
        .args(["-O2", "-static", "-pthread", "-fno-tree-vectorize", "-Wall", "-o"])
        .arg(&bin)
        .arg(&src))?;
    Ok(bin)
}

/// `tests/realxen/tools/stamp.c`, built as a shared object for dom0: the timing shim of the
/// save-helper jobs (`timed_helper` in common.sh) preloads it into Xen's helper and into xsr
/// alike, to time their start-up, work and exit the same way.
fn build_stamp(ctx: &Ctx) -> Result<PathBuf, Error> {
    let src = ctx.root.join(REALXEN_DIR).join("tools/stamp.c");
    let dir = ctx.root.join("target/realxen-tools");
    fs::create_dir_all(&dir).map_err(|e| io_err("cannot create", &dir, e))?;
    let lib = dir.join("libstamp.so");
    let cc = env::var_os("CC").unwrap_or_else(|| "cc".into());
    run(Command::new(cc).args(["-O2", "-shared", "-fPIC", "-Wall", "-o"]).arg(&lib).arg(&src))?;
    Ok(lib)
}

/// `realxen.sh`: `$REALXEN_SH`, else `shared/realxen/realxen.sh` beside the repo or an ancestor.
fn realxen_script(ctx: &Ctx) -> Result<PathBuf, Error> {
    if let Some(p) = env::var_os("REALXEN_SH") {
        return Ok(PathBuf::from(p));
    }
    ctx.root
        .ancestors()
        .map(|a| a.join("shared/realxen/realxen.sh"))
        .find(|p| p.exists())
        .ok_or_else(|| err("realxen.sh not found: set REALXEN_SH (see shared/realxen/README.md)"))
}

/// `cargo xtask realxen [--runs N] [JOB...]`: builds `target/release/xsr --features xen` and
/// runs every job of tests/realxen (or the named ones) N times (default 2) in a real Xen,
/// one boot at a time, then checks the dumps and save files it brought back and prints the
/// figures. `cargo xtask realxen compare A B`: only the host-side comparison of two save files;
/// `cargo xtask realxen check JOB OUT_DIR`: only the host-side checks of an earlier run's outputs.
pub(crate) fn task_realxen(ctx: &Ctx, args: &[String]) -> Result<(), Error> {
    match args.split_first().map(|(c, f)| (c.as_str(), f)) {
        Some(("compare", files)) => return realxen_compare(ctx, files),
        Some(("check", [job, out_dir])) => {
            // The host-side checks of an earlier run's outputs, without booting Xen again.
            run(ctx.cargo(["build", "--release", "--features", "xen"]))?;
            let job = job.trim_end_matches(".sh");
            let text = fs::read_to_string(Path::new(REALXEN_DIR).join(format!("{job}.sh"))).unwrap_or_default();
            let lines = job_host_checks(job, &text, Path::new(out_dir))?;
            lines.iter().for_each(|l| println!("    CHECK-OK {l}"));
            return Ok(());
        }
        _ => {}
    }
    let mut runs = 2u32;
    let mut only = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--runs" => {
                runs = it.next().and_then(|v| v.parse().ok()).ok_or_else(|| err("--runs needs a number"))?;
            }
            name => only.push(name.trim_end_matches(".sh").to_string()),
        }
    }
    let script = realxen_script(ctx)?;
    run(ctx.cargo(["build", "--release", "--features", "xen"]))?;
    let simd_check = build_simd_check(ctx)?;
    let stamp = build_stamp(ctx)?;
    let cpu = env::var("REALXEN_CPU").unwrap_or_else(|_| REALXEN_CPU.to_string());
    let files = list_files(Path::new(REALXEN_DIR))?;
    let is_lib = |p: &Path| {
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        name == "common.sh" || name.starts_with("lib-")
    };
    let libs: Vec<PathBuf> =
        files.iter().filter(|p| p.extension() == Some(OsStr::new("sh")) && is_lib(p)).cloned().collect();
    let mut jobs: Vec<PathBuf> = files
        .into_iter()
        .filter(|p| p.extension() == Some(OsStr::new("sh")) && !is_lib(p))
        .filter(|p| only.is_empty() || only.iter().any(|o| p.file_stem() == Some(OsStr::new(o))))
        .collect();
    jobs.sort();
    if only.is_empty() {
        // A job that is a part of another runs there only.
        let texts: Vec<String> = jobs.iter().filter_map(|j| fs::read_to_string(j).ok()).collect();
        let parts: Vec<&str> = texts.iter().flat_map(|t| job_parts(t)).map(|(_, j)| j).collect();
        jobs.retain(|j| !parts.iter().any(|p| j.file_stem() == Some(OsStr::new(p))));
    }
    if jobs.is_empty() {
        return Err(err(format!("no jobs in {REALXEN_DIR}")));
    }
    let mut failures = Vec::new();
    let mut figures: Vec<(String, String)> = Vec::new();
    for round in 1..=runs {
        for job in &jobs {
            let name = job.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            let text = fs::read_to_string(job).map_err(|e| io_err("cannot read", job, e))?;
            let guest = text.lines().find_map(|l| l.strip_prefix("# realxen-guest: ")).unwrap_or("32:1").trim();
            // `# realxen-guest-type: pv|pvh|hvm` (default pv) picks the standard guest's type.
            let gtype = text.lines().find_map(|l| l.strip_prefix("# realxen-guest-type: ")).unwrap_or("pv").trim();
            println!("==> realxen job {name} (round {round}/{runs}, guest {guest}, {gtype}, cpu {cpu})");
            let started = Instant::now();
            // `# realxen-tls` jobs get TLS certificates made here with openssl (dom0 has none).
            let mut certs =
                if text.lines().any(|l| l.trim() == "# realxen-tls") { tls_certs(ctx)? } else { Vec::new() };
            // `# realxen-perf` jobs get this host's `perf` with its libraries (dom0 has none).
            if text.lines().any(|l| l.trim() == "# realxen-perf") {
                certs.push(perf_bundle(ctx)?);
            }
            // `# realxen-xfer-mb: N`: N MiB more room for the job's outputs (see `xfer_room`).
            if let Some(mb) = text.lines().find_map(|l| l.strip_prefix("# realxen-xfer-mb: ")) {
                let mb = mb.trim().parse().map_err(|_| err(format!("{name}: realxen-xfer-mb is not a number")))?;
                certs.push(xfer_room(ctx, mb)?);
            }
            let part_scripts: Vec<PathBuf> =
                job_parts(&text).iter().map(|(_, j)| Path::new(REALXEN_DIR).join(format!("{j}.sh"))).collect();
            let out = Command::new(&script)
                .args([
                    "job".as_ref(),
                    job.as_os_str(),
                    "target/release/xsr".as_ref(),
                    simd_check.as_os_str(),
                    stamp.as_os_str(),
                ])
                .args(libs.iter().map(|l| l.as_os_str()))
                .args(part_scripts.iter().map(|p| p.as_os_str()))
                .args(&certs)
                .env("REALXEN_GUEST", guest)
                .env("REALXEN_GUEST_TYPE", gtype)
                .env("REALXEN_CPU", &cpu)
                .stderr(Stdio::inherit())
                .output()
                .map_err(|e| err(format!("cannot run {}: {e}", script.display())))?;
            let stdout = String::from_utf8_lossy(&out.stdout);
            let out_dir = stdout.lines().last().map(PathBuf::from).unwrap_or_default();
            let log = fs::read_to_string(out_dir.join("job.log")).unwrap_or_default();
            let mut ok = out.status.success();
            for line in log.lines() {
                if let Some(i) = line.find("CHECK-") {
                    println!("    {}", &line[i..]);
                    ok &= !line[i..].starts_with("CHECK-FAIL");
                }
                // Checks of Xen's own tools in the same boot: shown, never xsr's failure.
                if let Some(i) = line.find("CONTROL-") {
                    println!("    {}", &line[i..]);
                }
                if let Some(i) = line.find("FIGURE ") {
                    let mut f = line[i + 7..].splitn(2, ' ');
                    let (k, v) = (f.next().unwrap_or(""), f.next().unwrap_or("").trim());
                    println!("    figure {name}/{k} = {v}");
                    figures.push((format!("{name}/{k} (round {round})"), v.to_string()));
                }
            }
            match job_host_checks(&name, &text, &out_dir) {
                Ok(lines) => lines.iter().for_each(|l| println!("    CHECK-OK {l}")),
                Err(e) => {
                    println!("    CHECK-FAIL {e}");
                    ok = false;
                }
            }
            println!(
                "    {} {name} in {:.0} s ({})",
                if ok { "PASS" } else { "FAIL" },
                started.elapsed().as_secs_f64(),
                out_dir.display()
            );
            if !ok {
                failures.push(format!("{name} (round {round})"));
            }
        }
    }
    println!("==> realxen figures");
    for (k, v) in &figures {
        println!("    {k}: {v}");
    }
    print_ratios(&figures);
    if failures.is_empty() {
        println!("xtask realxen: {} job run(s) passed", jobs.len() as u32 * runs);
        Ok(())
    } else {
        Err(err(format!("realxen jobs failed: {}", failures.join(", "))))
    }
}

/// Certificates for the TLS jobs, made with openssl as docs/migrating.md shows: one CA
/// (`ca.crt`) signing `dst.example` and `src.example` (each `.crt` and `.key`, serverAuth and
/// clientAuth), and `rogue.example` signed by another CA. Returns the files.
fn tls_certs(ctx: &Ctx) -> Result<Vec<PathBuf>, Error> {
    let dir = ctx.root.join("target/realxen-tls");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).map_err(|e| io_err("cannot create", &dir, e))?;
    let sh = |script: &str| -> Result<(), Error> {
        let status = Command::new("sh")
            .arg("-ec")
            .arg(script)
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|e| err(format!("cannot run openssl: {e}")))?;
        if status.success() { Ok(()) } else { Err(err(format!("openssl failed: {script}"))) }
    };
    for ca in ["ca", "rogue-ca"] {
        sh(&format!(
            "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj '/CN={ca}' \
             -keyout {ca}.key -out {ca}.crt"
        ))?;
    }
    for (host, ca) in [("dst.example", "ca"), ("src.example", "ca"), ("rogue.example", "rogue-ca")] {
        sh(&format!(
            "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj '/CN={host}' -keyout {host}.key \
             -out {host}.csr
             printf 'subjectAltName=DNS:%s\nextendedKeyUsage=serverAuth,clientAuth\n' {host} > {host}.ext
             openssl x509 -req -in {host}.csr -CA {ca}.crt -CAkey {ca}.key -CAcreateserial -days 30 \
             -extfile {host}.ext -out {host}.crt"
        ))?;
    }
    Ok([
        "ca.crt",
        "dst.example.crt",
        "dst.example.key",
        "src.example.crt",
        "src.example.key",
        "rogue.example.crt",
        "rogue.example.key",
    ]
    .iter()
    .map(|f| dir.join(f))
    .collect())
}

/// `perf.tar`: this host's `perf` and the shared libraries it loads except glibc's own (dom0 runs
/// the same Debian release, so its glibc fits), for jobs that profile in dom0 (`# realxen-perf`):
/// they unpack it and run `perf` with `LD_LIBRARY_PATH` pointing there. A PV dom0 has no PMU,
/// so they sample the `cpu-clock` software event.
fn perf_bundle(ctx: &Ctx) -> Result<PathBuf, Error> {
    let dir = ctx.root.join("target/realxen-perf");
    let _ = fs::remove_dir_all(&dir);
    let bundle = dir.join("perf");
    fs::create_dir_all(&bundle).map_err(|e| io_err("cannot create", &bundle, e))?;
    let perf = Path::new("/usr/bin/perf");
    if !perf.exists() {
        return Err(err("a `# realxen-perf` job needs perf on this host: apt-get install linux-perf"));
    }
    let ldd = Command::new("ldd").arg(perf).output().map_err(|e| err(format!("cannot run ldd: {e}")))?;
    let glibc = ["libc.so", "libm.so", "libpthread.so", "libdl.so", "librt.so", "ld-linux"];
    let mut files = vec![perf.to_path_buf()];
    for line in String::from_utf8_lossy(&ldd.stdout).lines() {
        // "libelf.so.1 => /lib/x86_64-linux-gnu/libelf.so.1 (0x...)"
        let Some(path) = line.split("=> ").nth(1).and_then(|r| r.split_whitespace().next()) else { continue };
        let name = Path::new(path).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if !glibc.iter().any(|g| name.starts_with(g)) {
            files.push(PathBuf::from(path));
        }
    }
    for f in &files {
        let to = bundle.join(f.file_name().expect("a file"));
        fs::copy(f, &to).map_err(|e| io_err("cannot copy", f, e))?;
    }
    let tar = dir.join("perf.tar");
    run(Command::new("tar").arg("-C").arg(&dir).arg("-cf").arg(&tar).arg("perf"))?;
    Ok(tar)
}

/// A file of `mb` MiB of zeros, `target/realxen-xfer/xfer-room`, passed to a job to make its
/// transfer disk bigger: `realxen.sh job` sizes the disk that carries the job's files in and its
/// outputs back as 1 GiB plus its inputs, too small for the saves and dumps of a 128 MiB guest
/// in one boot. The job deletes it first thing (`lib-parts.sh`), leaving the room to its outputs.
fn xfer_room(ctx: &Ctx, mb: u64) -> Result<PathBuf, Error> {
    let dir = ctx.root.join("target/realxen-xfer");
    let path = dir.join("xfer-room");
    let want = mb * 1024 * 1024;
    if fs::metadata(&path).map(|m| m.len()).ok() == Some(want) {
        return Ok(path);
    }
    fs::create_dir_all(&dir).map_err(|e| io_err("cannot create", &dir, e))?;
    let mut f = fs::File::create(&path).map_err(|e| io_err("cannot create", &path, e))?;
    // Written, not sparse: the harness measures its inputs with `du`.
    std::io::copy(&mut std::io::repeat(0).take(want), &mut f).map_err(|e| io_err("cannot write", &path, e))?;
    Ok(path)
}

/// The ratios the jobs measured (figures named `ratio-*`), one line each over the rounds:
/// every round's value, then the median.
fn print_ratios(figures: &[(String, String)]) {
    let mut ratios: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for (k, v) in figures {
        let name = k.split(" (round").next().unwrap_or(k);
        if name.rsplit('/').next().is_some_and(|n| n.starts_with("ratio-")) {
            ratios.entry(name).or_default().extend(v.parse::<f64>().ok());
        }
    }
    if ratios.is_empty() {
        return;
    }
    println!("==> realxen ratios (A-vs-B = A / B; each round, then the median)");
    for (name, mut vals) in ratios {
        let each: Vec<String> = vals.iter().map(|v| format!("{v:.2}")).collect();
        vals.sort_by(f64::total_cmp);
        // The middle value, or the mean of the two middle ones for an even count.
        let n = vals.len();
        let median = match n {
            0 => "-".to_string(),
            _ if n % 2 == 1 => format!("{:.2}", vals[n / 2]),
            _ => format!("{:.2}", (vals[n / 2 - 1] + vals[n / 2]) / 2.0),
        };
        println!("    {name}: {} -> median {median}", each.join(", "));
    }
}

/// The parts of a job that runs several job bodies in one boot (one guest boot instead of
/// several: an HVM guest takes 15-20 s to boot under TCG): its `part DIR JOB` lines
/// (`lib-parts.sh`), each running `JOB.sh` into `$OUT/DIR`, whose outputs get JOB's host-side
/// checks.
fn job_parts(text: &str) -> Vec<(&str, &str)> {
    text.lines()
        .filter_map(|l| l.strip_prefix("part "))
        .filter_map(|p| match p.split_whitespace().collect::<Vec<_>>()[..] {
            [dir, job] => Some((dir, job)),
            _ => None,
        })
        .collect()
}

/// The host-side checks of a job's outputs, and of each of its parts' ([`job_parts`]), the
/// part's lines prefixed with its folder.
fn job_host_checks(job: &str, text: &str, out: &Path) -> Result<Vec<String>, Error> {
    let mut lines = host_checks(job, out)?;
    let mut failures = Vec::new();
    for (dir, part) in job_parts(text) {
        match host_checks(part, &out.join(dir)) {
            Ok(done) => lines.extend(done.into_iter().map(|l| format!("{dir}: {l}"))),
            Err(e) => failures.push(format!("{dir}: {}", e.0)),
        }
    }
    if failures.is_empty() { Ok(lines) } else { Err(err(failures.join(" | "))) }
}

/// The host-side checks of a job's outputs; a line per check passed.
fn host_checks(job: &str, out: &Path) -> Result<Vec<String>, Error> {
    if let Some(checked) = save_checks(job, out) {
        return checked;
    }
    let mut done = Vec::new();
    if job != "dump" && !job.starts_with("dump-") {
        return Ok(done);
    }
    let read = |name: &str| fs::read(out.join(name)).map_err(|e| io_err("cannot read", &out.join(name), e));
    // The reference addresses: `xl dump-core` of the guest, or (a PVH guest, whose dump-core
    // maps each of ~1M gfns on its own: 13 minutes here) `xl save -c` of it.
    let (reference, source) = if out.join("xl.core").exists() {
        (pattern_pages(dumpcore_pages(&read("xl.core")?)?), "xl.core")
    } else {
        (compare::save_pattern_reference(&out.join("xl.save"))?, "xl.save")
    };
    if reference.iter().any(Vec::is_empty) {
        return Err(err(format!("{source} itself lacks pattern pages: the guest is not the standard one")));
    }
    done.push(format!("{source}: all {PATTERN_PAGES} pattern pages (reference addresses)"));
    // The raw image of an HVM/PVH guest spans every gfn below the maximum (4 GiB for the
    // standard guest): those jobs leave it out (their ELF and LiME files are written from the
    // same raw image).
    if out.join("xsr.raw").exists() {
        let raw = read("xsr.raw")?;
        let raw_pages = raw.chunks_exact(4096).enumerate().map(|(pfn, p)| (pfn as u64, p));
        done.push(compare_pattern("xsr.raw", &pattern_pages(raw_pages), &reference)?);
    }
    // The guest's vcpus, as `xl vcpu-list` counted them in dom0 (jobs that write it).
    let want_vcpus: Option<usize> = fs::read_to_string(out.join("vcpus.txt")).ok().and_then(|t| t.trim().parse().ok());
    for elf in ["xsr-live.elf", "xsr.elf"] {
        let bytes = read(elf)?;
        done.push(compare_pattern(elf, &pattern_pages(elf_load_pages(&bytes)?.into_iter()), &reference)?);
        let path = out.join(elf);
        let headers = Command::new("readelf").arg("-lW").arg(&path).output();
        match headers {
            Ok(o) if o.status.success() => {
                let loads =
                    String::from_utf8_lossy(&o.stdout).lines().filter(|l| l.trim_start().starts_with("LOAD")).count();
                if loads == 0 {
                    return Err(err(format!("readelf sees no PT_LOAD in {elf}")));
                }
                done.push(format!("readelf -l {elf}: {loads} PT_LOAD segments"));
            }
            Ok(o) => return Err(err(format!("readelf -l {elf} failed: {}", String::from_utf8_lossy(&o.stderr)))),
            Err(_) => done.push("readelf not installed: skipped".into()),
        }
        if let Ok(o) = Command::new("readelf").arg("-nW").arg(&path).output() {
            let prstatus = String::from_utf8_lossy(&o.stdout).matches("NT_PRSTATUS").count();
            if prstatus == 0 {
                return Err(err(format!("readelf -n {elf}: no NT_PRSTATUS note (no vcpu registers)")));
            }
            if let Some(n) = want_vcpus.filter(|&n| n != prstatus) {
                return Err(err(format!("readelf -n {elf}: {prstatus} NT_PRSTATUS notes for a guest of {n} vcpus")));
            }
            done.push(format!("readelf -n {elf}: {prstatus} NT_PRSTATUS notes (one per vcpu)"));
        }
        let gdb = Command::new("gdb").args(["--batch", "-nx", "-ex", "info threads", "-c"]).arg(&path).output();
        if let Ok(o) = gdb {
            let text = String::from_utf8_lossy(&o.stdout);
            // `info threads` rows: "* 1    LWP 1   0x... in ?? ()" (current) or "  2    LWP 2 ...".
            let threads = text
                .lines()
                .filter(|l| l.contains("LWP") && l.trim_start().starts_with(|c: char| c == '*' || c.is_ascii_digit()))
                .count();
            if threads == 0 {
                return Err(err(format!("gdb sees no thread in {elf}: {text}")));
            }
            if let Some(n) = want_vcpus.filter(|&n| n != threads) {
                return Err(err(format!("gdb sees {threads} threads in {elf} for a guest of {n} vcpus: {text}")));
            }
            let rip = text.lines().find(|l| l.trim_start().starts_with('*')).unwrap_or("").trim().to_string();
            done.push(format!("gdb {elf}: {threads} thread(s): {rip}"));
        }
    }
    let lime = read("xsr.lime")?;
    done.push(compare_pattern("xsr.lime", &pattern_pages(lime_pages(&lime)?.into_iter()), &reference)?);
    if source == "xl.save" {
        done.iter_mut().for_each(|l| *l = l.replace("xl dump-core", "xl save -c"));
    }
    Ok(done)
}

/// Pages of the standard realxen guest's pattern file.
const PATTERN_PAGES: usize = 1024;

/// For each pattern page number N, the pfns holding an exact copy of page N
/// (`REALXEN-PAGE-NNNNNN-` repeated over 4096 bytes, as the guest's init writes it).
fn pattern_pages<'a>(pages: impl Iterator<Item = (u64, &'a [u8])>) -> Vec<Vec<u64>> {
    let mut found = vec![Vec::new(); PATTERN_PAGES];
    for (pfn, page) in pages {
        let Some(n) = page
            .strip_prefix(b"REALXEN-PAGE-")
            .and_then(|r| std::str::from_utf8(r.get(..6)?).ok()?.parse::<usize>().ok())
        else {
            continue;
        };
        if n >= PATTERN_PAGES {
            continue;
        }
        let tag = format!("REALXEN-PAGE-{n:06}-");
        if page.iter().zip(tag.bytes().cycle()).all(|(a, b)| *a == b) && page.len() == 4096 {
            found[n].push(pfn);
        }
    }
    found
}

/// Every pattern page is in `dump`, and at a pfn where `xl dump-core` has the same page.
fn compare_pattern(name: &str, dump: &[Vec<u64>], reference: &[Vec<u64>]) -> Result<String, Error> {
    let missing: Vec<usize> = (0..PATTERN_PAGES).filter(|&n| dump[n].is_empty()).collect();
    if !missing.is_empty() {
        return Err(err(format!(
            "{name}: {} pattern pages missing (first: {:?})",
            missing.len(),
            &missing[..missing.len().min(8)]
        )));
    }
    let misplaced: Vec<usize> =
        (0..PATTERN_PAGES).filter(|&n| !dump[n].iter().any(|p| reference[n].contains(p))).collect();
    if !misplaced.is_empty() {
        return Err(err(format!(
            "{name}: {} pattern pages at pfns where xl dump-core has something else (page {} at {:x?}, dump-core {:x?})",
            misplaced.len(),
            misplaced[0],
            dump[misplaced[0]],
            reference[misplaced[0]]
        )));
    }
    Ok(format!("{name}: all {PATTERN_PAGES} pattern pages, each at a pfn where xl dump-core has it"))
}

fn le_u64(b: &[u8], at: usize) -> Result<u64, Error> {
    b.get(at..at + 8).map(|s| u64::from_le_bytes(s.try_into().unwrap_or([0; 8]))).ok_or_else(|| err("ELF truncated"))
}

fn le_u16(b: &[u8], at: usize) -> Result<usize, Error> {
    b.get(at..at + 2).map(|s| usize::from(u16::from_le_bytes([s[0], s[1]]))).ok_or_else(|| err("ELF truncated"))
}

/// The (pfn, page) pairs of an `xl dump-core` file: `.xen_pages` in the order of `.xen_p2m`
/// (PV: {pfn, gmfn} pairs) or `.xen_pfn` (HVM: pfns) (Xen's `tools/libs/ctrl/xc_core.h`).
fn dumpcore_pages(elf: &[u8]) -> Result<impl Iterator<Item = (u64, &[u8])>, Error> {
    let shoff = le_u64(elf, 0x28)? as usize;
    let (shentsize, shnum, shstrndx) = (le_u16(elf, 0x3a)?, le_u16(elf, 0x3c)?, le_u16(elf, 0x3e)?);
    let section = |i: usize| -> Result<(u32, usize, usize), Error> {
        let at = shoff + i * shentsize;
        let name = elf
            .get(at..at + 4)
            .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
            .ok_or_else(|| err("ELF truncated"))?;
        Ok((name, le_u64(elf, at + 0x18)? as usize, le_u64(elf, at + 0x20)? as usize))
    };
    let (_, stroff, _) = section(shstrndx)?;
    let mut pages = None;
    let mut pfns: Option<Vec<u64>> = None;
    for i in 0..shnum {
        let (name, off, size) = section(i)?;
        let name = elf.get(stroff + name as usize..).and_then(|s| s.split(|&b| b == 0).next()).unwrap_or_default();
        let body = elf.get(off..off + size).ok_or_else(|| err("dump-core section beyond the file"))?;
        match name {
            b".xen_pages" => pages = Some(body),
            b".xen_p2m" => pfns = Some(body.chunks_exact(16).map(|e| le_u64(e, 0).unwrap_or(u64::MAX)).collect()),
            b".xen_pfn" => pfns = Some(body.chunks_exact(8).map(|e| le_u64(e, 0).unwrap_or(u64::MAX)).collect()),
            _ => {}
        }
    }
    let (pages, pfns) =
        pages.zip(pfns).ok_or_else(|| err("xl dump-core file without .xen_pages and .xen_p2m/.xen_pfn"))?;
    Ok(pfns.into_iter().zip(pages.chunks_exact(4096)))
}

/// The (pfn, page) pairs of a LiME file: 32-byte range headers ("EMiL", version 1, start and
/// inclusive end address) each followed by the range's bytes.
fn lime_pages(lime: &[u8]) -> Result<Vec<(u64, &[u8])>, Error> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < lime.len() {
        if lime.get(at..at + 4) != Some(&0x4C69_4D45u32.to_le_bytes()[..]) {
            return Err(err(format!("LiME: no range header at byte {at}")));
        }
        let (start, end) = (le_u64(lime, at + 8)?, le_u64(lime, at + 16)?);
        let len = end.checked_sub(start).map(|l| l + 1).ok_or_else(|| err("LiME: end before start"))? as usize;
        let body = lime.get(at + 32..at + 32 + len).ok_or_else(|| err("LiME: range beyond the file"))?;
        out.extend(body.chunks_exact(4096).enumerate().map(|(k, p)| ((start >> 12) + k as u64, p)));
        at += 32 + len;
    }
    Ok(out)
}

/// The (pfn, page) pairs of an ELF core's PT_LOAD segments (p_paddr = guest-physical address).
fn elf_load_pages(elf: &[u8]) -> Result<Vec<(u64, &[u8])>, Error> {
    let phoff = le_u64(elf, 0x20)? as usize;
    let (phentsize, mut phnum) = (le_u16(elf, 0x36)?, le_u16(elf, 0x38)?);
    if phnum == 0xffff {
        // PN_XNUM: the real count is section 0's sh_info.
        let shoff = le_u64(elf, 0x28)? as usize;
        phnum = elf.get(shoff + 44..shoff + 48).map_or(0, |s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as usize);
    }
    let mut out = Vec::new();
    for i in 0..phnum {
        let at = phoff + i * phentsize;
        if elf.get(at..at + 4) != Some(&1u32.to_le_bytes()[..]) {
            continue;
        }
        let (off, paddr, filesz) =
            (le_u64(elf, at + 8)? as usize, le_u64(elf, at + 0x18)?, le_u64(elf, at + 0x20)? as usize);
        let body = elf.get(off..off + filesz).ok_or_else(|| err("PT_LOAD beyond the file"))?;
        out.extend(body.chunks_exact(4096).enumerate().map(|(k, p)| ((paddr >> 12) + k as u64, p)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn pattern(n: usize) -> Vec<u8> {
        format!("REALXEN-PAGE-{n:06}-").bytes().cycle().take(4096).collect()
    }

    #[test]
    fn a_job_names_its_parts() {
        let text = "# realxen-guest: 128:2:256\n# part x y in a comment\npart dump dump-hvm\npart  save  save-hvm \npart broken\nexit $fail\n";
        assert_eq!(job_parts(text), vec![("dump", "dump-hvm"), ("save", "save-hvm")]);
        assert!(job_parts("# realxen-guest: 32:1\n").is_empty());
    }

    #[test]
    fn pattern_pages_need_the_whole_page() {
        let mut bad = pattern(3);
        bad[4000] ^= 1;
        let pages = [pattern(1), bad, pattern(1024), pattern(2), vec![0; 4096]];
        let found = pattern_pages(pages.iter().enumerate().map(|(i, p)| (i as u64 + 10, p.as_slice())));
        assert_eq!(found[1], [10]);
        assert_eq!(found[2], [13]);
        assert!(found[3].is_empty());
        assert_eq!(found.iter().map(Vec::len).sum::<usize>(), 2);
    }

    #[test]
    fn pattern_comparison_wants_every_page_at_a_reference_pfn() {
        let reference: Vec<Vec<u64>> = (0..PATTERN_PAGES as u64).map(|n| vec![100 + n]).collect();
        let mut dump = reference.clone();
        dump[7].push(5); // a stale second copy elsewhere is fine
        assert!(compare_pattern("x", &dump, &reference).is_ok());
        dump[7] = vec![5];
        assert!(compare_pattern("x", &dump, &reference).unwrap_err().0.contains("1 pattern pages at pfns"));
        dump[7].clear();
        assert!(compare_pattern("x", &dump, &reference).unwrap_err().0.contains("1 pattern pages missing"));
    }

    /// An ELF64 with the given sections (name, body) and PT_LOADs (paddr, body).
    fn elf(sections: &[(&str, Vec<u8>)], loads: &[(u64, Vec<u8>)]) -> Vec<u8> {
        let mut shstr = vec![0u8];
        let mut names = Vec::new();
        for (n, _) in sections {
            names.push(shstr.len() as u32);
            shstr.extend(n.bytes().chain([0]));
        }
        let mut out = vec![0u8; 64];
        let phoff = out.len();
        out.resize(phoff + 56 * loads.len(), 0);
        let mut bodies = Vec::new();
        for (i, (paddr, body)) in loads.iter().enumerate() {
            let at = phoff + i * 56;
            let off = out.len();
            out.extend(body);
            out[at..at + 4].copy_from_slice(&1u32.to_le_bytes());
            out[at + 8..at + 16].copy_from_slice(&(off as u64).to_le_bytes());
            out[at + 0x18..at + 0x20].copy_from_slice(&paddr.to_le_bytes());
            out[at + 0x20..at + 0x28].copy_from_slice(&(body.len() as u64).to_le_bytes());
        }
        for (_, body) in sections {
            bodies.push((out.len() as u64, body.len() as u64));
            out.extend(body);
        }
        let stroff = out.len() as u64;
        out.extend(&shstr);
        let shoff = out.len();
        out.resize(shoff + 64 * (sections.len() + 1), 0);
        for (i, ((off, len), name)) in
            bodies.iter().chain([&(stroff, shstr.len() as u64)]).zip(names.iter().chain([&0])).enumerate()
        {
            let at = shoff + i * 64;
            out[at..at + 4].copy_from_slice(&name.to_le_bytes());
            out[at + 0x18..at + 0x20].copy_from_slice(&off.to_le_bytes());
            out[at + 0x20..at + 0x28].copy_from_slice(&len.to_le_bytes());
        }
        out[0x20..0x28].copy_from_slice(&(phoff as u64).to_le_bytes());
        out[0x28..0x30].copy_from_slice(&(shoff as u64).to_le_bytes());
        out[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        out[0x38..0x3a].copy_from_slice(&(loads.len() as u16).to_le_bytes());
        out[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
        out[0x3c..0x3e].copy_from_slice(&((sections.len() + 1) as u16).to_le_bytes());
        out[0x3e..0x40].copy_from_slice(&(sections.len() as u16).to_le_bytes());
        out
    }

    #[test]
    fn dump_core_pages_follow_the_p2m_section() {
        let p2m: Vec<u8> = [(9u64, 900u64), (4, 400)]
            .iter()
            .flat_map(|(p, m)| p.to_le_bytes().into_iter().chain(m.to_le_bytes()))
            .collect();
        let pages = [pattern(0), pattern(1)].concat();
        let core = elf(&[(".note.Xen", vec![1, 2]), (".xen_p2m", p2m), (".xen_pages", pages)], &[]);
        let pfns: Vec<u64> = dumpcore_pages(&core).unwrap().map(|(pfn, _)| pfn).collect();
        assert_eq!(pfns, [9, 4]);
        let found = pattern_pages(dumpcore_pages(&core).unwrap());
        assert_eq!((found[0].as_slice(), found[1].as_slice()), (&[9][..], &[4][..]));
        assert!(dumpcore_pages(&core[..100]).is_err());
        assert!(dumpcore_pages(&elf(&[(".xen_pages", pattern(0))], &[])).is_err());
    }

    #[test]
    fn lime_ranges_are_addressed_by_start() {
        let mut lime = Vec::new();
        for (start, pages) in [(0x3000u64, vec![pattern(8), pattern(9)]), (0x10000, vec![pattern(10)])] {
            let len = pages.len() as u64 * 4096;
            lime.extend(0x4C69_4D45u32.to_le_bytes());
            lime.extend(1u32.to_le_bytes());
            lime.extend(start.to_le_bytes());
            lime.extend((start + len - 1).to_le_bytes());
            lime.extend([0; 8]);
            lime.extend(pages.concat());
        }
        let found = pattern_pages(lime_pages(&lime).unwrap().into_iter());
        assert_eq!((found[8].as_slice(), found[9].as_slice(), found[10].as_slice()), (&[3][..], &[4][..], &[16][..]));
        assert!(lime_pages(&lime[..lime.len() - 1]).is_err());
        assert!(lime_pages(&lime[1..]).is_err());
    }

    #[test]
    fn elf_loads_are_addressed_by_paddr() {
        let core = elf(&[], &[(0x5000, [pattern(2), pattern(3)].concat()), (0x1000, pattern(4))]);
        let found = pattern_pages(elf_load_pages(&core).unwrap().into_iter());
        assert_eq!((found[2].as_slice(), found[3].as_slice(), found[4].as_slice()), (&[5][..], &[6][..], &[1][..]));
        assert!(elf_load_pages(&core[..core.len() - 5000]).is_err());
    }
}
