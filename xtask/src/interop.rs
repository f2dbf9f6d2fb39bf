//! `cargo xtask interop`: the analysts' tools (Volatility 3, readelf, gdb) on the real test
//! image and on what `xsr extract` makes of it.

use std::env;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::util::{Ctx, Error, err, io_err, render, run, tool_answers, tool_works};

/// Where `interop` keeps its venv, the decompressed image and the outputs it checks.
const INTEROP_DIR: &str = "interop";
/// The Volatility 3 release the layer and the checks were written against.
const VOLATILITY3_REQUIREMENT: &str = "volatility3==2.28.2";
const VOLATILITY_PLUGIN_DIR: &str = "contrib/volatility3";
pub(crate) const PYTHON_TEST_DIR: &str = "contrib/tests";
const INTEROP_CHECKS: &str = "contrib/tests/interop_checks.py";
/// The real `xl save` file in the checkout (as `tests/common/testdata.rs` finds it), or the
/// file named by `XSR_REAL_SAVE_XZ`.
const REAL_SAVE_XZ: &str = "tests/data/xen-4.17/tiny32-1vcpu.save.xz";

/// One check's outcome; `Skip` is printed, never silently counted as a pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Pass,
    Fail,
    Skip,
}

#[derive(Debug, Default)]
struct Checks(Vec<(String, Verdict, String)>);

impl Checks {
    fn add(&mut self, name: &str, verdict: Verdict, detail: impl Into<String>) {
        let detail = detail.into();
        let tag = match verdict {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
            Verdict::Skip => "SKIP",
        };
        println!("--- {tag} {name}: {detail}");
        self.0.push((name.to_string(), verdict, detail));
    }

    fn count(&self, v: Verdict) -> usize {
        self.0.iter().filter(|(_, verdict, _)| *verdict == v).count()
    }
}

/// `apt-get install` (through `sudo -n` when not root), waiting for the dpkg
/// lock, since other processes on the machine may hold it.
fn apt_install(packages: &[&str]) -> Result<(), Error> {
    let is_root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    let apt = |args: &[&str]| {
        let mut cmd = if is_root { Command::new("apt-get") } else { Command::new("sudo") };
        if !is_root {
            cmd.args(["-n", "apt-get"]);
        }
        cmd.args(["-o", "DPkg::Lock::Timeout=900"]).args(args).env("DEBIAN_FRONTEND", "noninteractive");
        cmd
    };
    run(apt(&["update"]))?;
    run(apt(&["install", "-y"]).args(packages))
}

fn find_real_save_xz(root: &Path) -> Option<PathBuf> {
    if let Some(p) = env::var_os("XSR_REAL_SAVE_XZ") {
        return Some(PathBuf::from(p));
    }
    Some(root.join(REAL_SAVE_XZ)).filter(|p| p.is_file())
}

/// Decompress `xz` into `out` (via a temporary name) with `xz -dc`, or
/// Python's `lzma` module where the `xz` tool is missing.
fn decompress_xz(xz: &Path, out: &Path) -> Result<(), Error> {
    let partial = out.with_extension("partial");
    let file = fs::File::create(&partial).map_err(|e| io_err("cannot create", &partial, e))?;
    let mut cmd = if tool_works(OsStr::new("xz")) {
        let mut c = Command::new("xz");
        c.arg("-dc").arg(xz);
        c
    } else {
        let mut c = Command::new("python3");
        c.args(["-c", "import lzma,shutil,sys; shutil.copyfileobj(lzma.open(sys.argv[1]), sys.stdout.buffer)"]).arg(xz);
        c
    };
    run(cmd.stdout(file))?;
    fs::rename(&partial, out).map_err(|e| io_err("cannot rename", &partial, e))
}

/// Runs `python3 contrib/tests/interop_checks.py ARGS`: exit 0 pass, 3 skip, other fail;
/// its last output line is the verdict's detail.
fn python_check(checks: &mut Checks, name: &str, args: &[&OsStr]) {
    let mut cmd = Command::new("python3");
    cmd.arg(INTEROP_CHECKS).args(args);
    println!("==> {}", render(&cmd));
    match cmd.stderr(Stdio::inherit()).output() {
        Err(e) => checks.add(name, Verdict::Fail, format!("could not start python3: {e}")),
        Ok(out) => {
            let text = String::from_utf8_lossy(&out.stdout);
            print!("{text}");
            let last = text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("(no output)");
            let detail = last.split_once(": ").map_or(last, |(_, d)| d).to_string();
            let verdict = match out.status.code() {
                Some(0) => Verdict::Pass,
                Some(3) => Verdict::Skip,
                _ => Verdict::Fail,
            };
            checks.add(name, verdict, detail);
        }
    }
}

/// Volatility 3 from PyPI in a venv under target/; `Err` says why it is unavailable.
fn ensure_volatility(venv: &Path) -> Result<PathBuf, String> {
    let vol = venv.join("bin/vol");
    // `vol` has no --version.
    if tool_answers(vol.as_os_str(), "-h") {
        return Ok(vol);
    }
    let make_venv = || run(Command::new("python3").args(["-m", "venv"]).arg(venv));
    if make_venv().is_err() {
        // Debian splits `venv` out of python3.
        apt_install(&["python3-venv"]).map_err(|e| format!("python3-venv could not be installed: {e}"))?;
        make_venv().map_err(|e| e.to_string())?;
    }
    run(Command::new(venv.join("bin/python")).args([
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "--quiet",
        VOLATILITY3_REQUIREMENT,
    ]))
    .map_err(|e| format!("pip could not install {VOLATILITY3_REQUIREMENT}: {e}"))?;
    if tool_answers(vol.as_os_str(), "-h") { Ok(vol) } else { Err(format!("{} does not run", vol.display())) }
}

/// The formats `xsr extract --format` accepts in this build (from its help).
fn extract_formats(xsr: &Path) -> Result<Vec<String>, Error> {
    let out = Command::new(xsr)
        .args(["extract", "--help"])
        .output()
        .map_err(|e| err(format!("could not run {} extract --help: {e}", xsr.display())))?;
    Ok(formats_in_help(&String::from_utf8_lossy(&out.stdout)))
}

/// The `- NAME: help` lines clap prints under "Possible values".
fn formats_in_help(help: &str) -> Vec<String> {
    help.lines()
        .filter_map(|l| l.trim().strip_prefix("- "))
        .filter_map(|l| l.split_once(':').map(|(name, _)| name.trim().to_string()))
        .collect()
}

/// The real-tool checks of issue 8 on the real `xl save` file: the
/// Volatility 3 layer in contrib/volatility3 on the unconverted file, then
/// `xsr extract` ELF and LiME outputs in Volatility 3, readelf and gdb.
/// Missing tools are installed; a check whose feature or tool is absent is
/// a visible SKIP (a failure with `--strict`).
pub(crate) fn task_interop(ctx: &Ctx, args: &[String]) -> Result<(), Error> {
    let strict = match args {
        [] => false,
        [a] if a == "--strict" => true,
        [a, ..] => return Err(err(format!("`interop` takes only `--strict` (got `{a}`)"))),
    };
    let start = Instant::now();
    let target = env::var_os("CARGO_TARGET_DIR").map_or_else(|| ctx.root.join("target"), PathBuf::from);
    let work = target.join(INTEROP_DIR);
    fs::create_dir_all(&work).map_err(|e| io_err("cannot create", &work, e))?;
    let mut checks = Checks::default();

    let xz = find_real_save_xz(&ctx.root)
        .ok_or_else(|| err(format!("the real test image {REAL_SAVE_XZ} is not in the checkout")))?;
    let save = work.join("tiny32-1vcpu.save");
    decompress_xz(&xz, &save)?;

    let python = tool_works(OsStr::new("python3"));
    if python {
        let mut cmd = Command::new("python3");
        cmd.args(["-m", "unittest", "discover", "-s", PYTHON_TEST_DIR]);
        let ok = run(cmd).is_ok();
        checks.add(
            "python reader unit tests",
            if ok { Verdict::Pass } else { Verdict::Fail },
            format!("python3 -m unittest discover -s {PYTHON_TEST_DIR}"),
        );
    }
    let vol = if python { ensure_volatility(&work.join("venv")) } else { Err("python3 is not installed".into()) };

    if !(tool_works(OsStr::new("readelf")) && tool_works(OsStr::new("gdb")))
        && let Err(e) = apt_install(&["binutils", "gdb"])
    {
        println!("note: binutils/gdb could not be installed: {e}");
    }
    let readelf = tool_works(OsStr::new("readelf"));
    let gdb = tool_works(OsStr::new("gdb"));

    run(ctx.cargo(["build", "--release", "--bin", "xsr"]))?;
    let xsr = target.join("release/xsr");
    let formats = extract_formats(&xsr)?;
    let cache = work.join("vol-cache");
    let vol_check = |checks: &mut Checks, name: &str, image: &Path, plugins: bool| match &vol {
        Err(why) => checks.add(name, Verdict::Skip, format!("Volatility 3 unavailable: {why}")),
        Ok(vol) => {
            let o = OsStr::new;
            let mut a = vec![o("vol-banners"), o("--vol"), vol.as_os_str(), o("--cache-path"), cache.as_os_str()];
            if plugins {
                a.extend([o("--plugin-dir"), o(VOLATILITY_PLUGIN_DIR)]);
            }
            a.extend([o("--image"), image.as_os_str(), o("--save"), save.as_os_str()]);
            python_check(checks, name, &a);
        }
    };

    vol_check(&mut checks, "vol banners.Banners on the xl save file (-p contrib/volatility3)", &save, true);
    if python {
        // The same libxl stream behind libvirt's header, as `virsh save` writes it.
        let wrapped = work.join("tiny32-1vcpu.virsh.save");
        let o = OsStr::new;
        python_check(
            &mut checks,
            "virsh save file made from the real image",
            &[o("virsh-wrap"), o("--xl-save"), save.as_os_str(), o("--out"), wrapped.as_os_str()],
        );
        if wrapped.is_file() {
            vol_check(
                &mut checks,
                "vol banners.Banners on the virsh save file (-p contrib/volatility3)",
                &wrapped,
                true,
            );
        }
    }

    for format in ["elf", "lime"] {
        let out = work.join(format!("tiny32-1vcpu.{format}"));
        let name = format!("xsr extract --format {format}");
        if !formats.iter().any(|f| f == format) {
            let why = format!("this xsr build has no `extract --format {format}` (formats: {})", formats.join(", "));
            checks.add(&name, Verdict::Skip, &why);
            continue;
        }
        let mut cmd = Command::new(&xsr);
        // --force: the work directory is kept between runs.
        cmd.args(["extract", "--format", format, "--force", "--out"]).arg(&out).arg(&save);
        match run(cmd) {
            Ok(()) => {
                checks.add(&name, Verdict::Pass, out.strip_prefix(&ctx.root).unwrap_or(&out).display().to_string())
            }
            Err(e) => {
                checks.add(&name, Verdict::Fail, e.to_string());
                continue;
            }
        }
        let what = if format == "elf" { "ELF core" } else { "LiME file" };
        vol_check(&mut checks, &format!("vol banners.Banners on the {what}"), &out, false);
        if format != "elf" {
            continue;
        }
        for (name, tool, present) in [("readelf-notes", "readelf", readelf), ("gdb-threads", "gdb", gdb)] {
            let label = if tool == "gdb" {
                "gdb -c on the ELF core".to_string()
            } else {
                "readelf -n on the ELF core".to_string()
            };
            if !present {
                checks.add(&label, Verdict::Skip, format!("{tool} is not installed and could not be installed"));
                continue;
            }
            if !python {
                checks.add(&label, Verdict::Skip, "python3 (which runs the check) is not installed");
                continue;
            }
            python_check(
                &mut checks,
                &label,
                &[OsStr::new(name), OsStr::new("--core"), out.as_os_str(), OsStr::new("--save"), save.as_os_str()],
            );
        }
    }

    let (pass, fail, skip) = (checks.count(Verdict::Pass), checks.count(Verdict::Fail), checks.count(Verdict::Skip));
    println!("\nxtask interop: {pass} passed, {fail} failed, {skip} skipped in {:.0?}", start.elapsed());
    for (name, verdict, detail) in &checks.0 {
        println!("  {:<4} {name}: {detail}", format!("{verdict:?}").to_uppercase());
    }
    if fail > 0 {
        Err(err(format!("{fail} interop check(s) failed; see above")))
    } else if strict && skip > 0 {
        Err(err(format!("--strict: {skip} interop check(s) skipped")))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extract_formats_from_clap_help() {
        let help = "Options:\n      --format <FORMAT>\n          Output format\n\n          Possible values:\n          \
                    - raw: Sparse raw image: pfn p at byte p << page_shift\n          - elf: ELF64 core\n\n";
        assert_eq!(formats_in_help(help), ["raw", "elf"]);
    }
}
