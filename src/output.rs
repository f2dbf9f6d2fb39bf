//! The one set of rules for everything a command writes: a file (`extract`, `save`, `read
//! --out`, `receive --out-file`, `dump`) or a directory (`restore`, `receive --out`).
//!
//! * **Never over an input.** An output that is the same file as one of the command's inputs
//!   (same device and inode: through symbolic links and hard links too, and standard input or
//!   output redirected from or to it) is refused before anything is read or written, even with
//!   `--force`; the input is left untouched.
//! * **Never over an existing output**, unless `--force`: then the existing file (or domain
//!   image directory) is replaced in one rename, only once the new one is complete. `--force`
//!   replaces a file with a file, and a directory with a directory only if that directory is
//!   empty or holds a `domain.json` (an `xsr restore` directory); anything else is refused.
//! * **Written under a temporary name beside the final one**, `.NAME.partial-PID`, and renamed
//!   into place when complete ([`AtomicOutput::commit`]): a failed command leaves nothing that
//!   looks complete. Missing parent directories are created (and removed again when the
//!   command fails).
//! * **Removed on SIGINT, SIGTERM and SIGHUP** ([`remove_partials_on_signals`]): the temporary
//!   output is deleted and the process then dies of the signal, as it would have without
//!   xsr's handler. (The Xen commands instead stop between batches, put the domain back and
//!   unwind, which removes their partial output the same way a failure does.)
//! * **A partial left by a killed process** (SIGKILL, a crash, a power cut) is found by the next
//!   command that writes the same output: when no process with its PID exists any more it is
//!   removed, and xsr says so on standard error; when the PID is alive (another xsr still
//!   writing it) the command refuses and names the partial.
//!
//! Intermediate files (the raw image an ELF core is made from, a stream spooled from a pipe)
//! are unnamed temporary files (`O_TMPFILE` or unlinked at once), which the kernel frees
//! whatever happens to the process.

use std::fs::{self, File, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use anyhow::{Context, Result, bail};

/// The temporary name of `name` written by process `pid`.
pub fn partial_name(name: &str, pid: u32) -> String {
    format!(".{name}.partial-{pid}")
}

/// The process id in a partial name of `name` (`.NAME.partial-PID`), if `entry` is one.
fn partial_pid(entry: &str, name: &str) -> Option<u32> {
    let pid = entry.strip_prefix('.')?.strip_prefix(name)?.strip_prefix(".partial-")?;
    if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}

/// A file's identity: its device and inode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
}

impl FileId {
    fn of(meta: &Metadata) -> Self {
        Self { dev: meta.dev(), ino: meta.ino() }
    }
}

/// The metadata of an open file descriptor (standard input or output).
fn fd_metadata(fd: std::os::fd::BorrowedFd<'_>) -> Option<Metadata> {
    let owned = fd.try_clone_to_owned().ok()?;
    File::from(owned).metadata().ok()
}

/// What a command's outputs are checked against: its inputs, and whether an existing output
/// may be replaced (`--force`). See the [module documentation](self).
#[derive(Clone, Debug, Default)]
pub struct OutputRules {
    force: bool,
    inputs: Vec<(FileId, PathBuf)>,
}

impl OutputRules {
    /// Rules with no inputs yet; `force`: an existing output is replaced on success.
    pub fn new(force: bool) -> Self {
        Self { force, inputs: Vec::new() }
    }

    /// Whether an existing output is replaced.
    pub fn force(&self) -> bool {
        self.force
    }

    /// Adds the input `path` (`-`: standard input, when it is a file). A path that cannot be
    /// examined is skipped: opening it reports why.
    pub fn input(mut self, path: &Path) -> Self {
        let meta = if path.as_os_str() == "-" {
            use std::os::fd::AsFd;
            fd_metadata(io::stdin().as_fd())
        } else {
            fs::metadata(path).ok()
        };
        if let Some(meta) = meta {
            let name = if path.as_os_str() == "-" { PathBuf::from("on standard input") } else { path.to_path_buf() };
            self.inputs.push((FileId::of(&meta), name));
        }
        self
    }

    /// Adds the input directory `dir` and every entry directly inside it (a domain image
    /// directory: its memory image, manifest and blobs).
    pub fn input_dir(mut self, dir: &Path) -> Self {
        self = self.input(dir);
        if let Ok(entries) = fs::read_dir(dir) {
            for entry in entries.flatten() {
                self = self.input(&entry.path());
            }
        }
        self
    }

    /// The input that `meta` is, if any.
    fn input_of(&self, meta: &Metadata) -> Option<&Path> {
        let id = FileId::of(meta);
        self.inputs.iter().find(|(i, _)| *i == id).map(|(_, p)| p.as_path())
    }

    /// Checks that standard output, which is about to carry the output (`--out -`), is not
    /// one of the inputs (`xsr extract g.save --out - >> g.save`).
    pub fn check_stdout(&self) -> Result<()> {
        use std::os::fd::AsFd;
        if let Some(meta) = fd_metadata(io::stdout().as_fd())
            && meta.is_file()
            && let Some(input) = self.input_of(&meta)
        {
            bail!("standard output is the input {} (the same file); refusing to write over an input", input.display());
        }
        Ok(())
    }

    /// Starts writing the file `dest`: checks it against these rules, creates missing parent
    /// directories and the temporary file (empty, open for reading and writing).
    pub fn file(&self, dest: &Path) -> Result<(AtomicOutput, File)> {
        let mut out = self.prepare(dest, Kind::File)?;
        let registry = registry();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&out.tmp)
            .with_context(|| format!("cannot create {}", dest.display()));
        let file = match file {
            Ok(f) => f,
            Err(e) => {
                drop(registry);
                out.committed = true; // nothing to remove but the parents
                out.remove_created_parents();
                return Err(e);
            }
        };
        out.register(registry);
        Ok((out, file))
    }

    /// Starts writing the directory `dest`: checks it against these rules, creates missing
    /// parent directories and the temporary directory.
    pub fn dir(&self, dest: &Path) -> Result<AtomicOutput> {
        let mut out = self.prepare(dest, Kind::Dir)?;
        let registry = registry();
        if let Err(e) = fs::create_dir(&out.tmp) {
            drop(registry);
            out.committed = true;
            out.remove_created_parents();
            return Err(anyhow::Error::new(e).context(format!("cannot create {}", dest.display())));
        }
        out.register(registry);
        Ok(out)
    }

    /// Everything before the temporary output is created.
    fn prepare(&self, dest: &Path, kind: Kind) -> Result<AtomicOutput> {
        let name = match dest.file_name() {
            Some(n) if dest.as_os_str() != "-" => n.to_string_lossy().into_owned(),
            _ => bail!("{} is not a name for an output {}", dest.display(), kind.noun()),
        };
        self.check_existing(dest, kind)?;
        let parent = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let created = create_parents(&parent)
            .with_context(|| format!("cannot create the directory {} for {}", parent.display(), dest.display()))?;
        let mut out = AtomicOutput {
            tmp: dest.with_file_name(partial_name(&name, std::process::id())),
            dest: dest.to_path_buf(),
            kind,
            force: self.force,
            created,
            committed: false,
        };
        if let Err(e) = clear_stale_partials(&parent, &name, dest) {
            out.committed = true;
            out.remove_created_parents();
            return Err(e);
        }
        Ok(out)
    }

    /// Refuses an input, and an existing output without `--force` (or of another kind).
    fn check_existing(&self, dest: &Path, kind: Kind) -> Result<()> {
        let Ok(link) = fs::symlink_metadata(dest) else { return Ok(()) };
        let target = fs::metadata(dest).ok();
        if let Some(input) = target.as_ref().and_then(|m| self.input_of(m)) {
            let how = if input == dest { String::new() } else { format!(" {}", input.display()) };
            bail!(
                "{} is the input{how} (the same file); refusing to write over an input, with or without --force",
                dest.display()
            );
        }
        if !self.force {
            bail!(
                "{} already exists; refusing to overwrite it (--force replaces it once the new {} is complete)",
                dest.display(),
                kind.noun()
            );
        }
        let what = describe(&link, target.as_ref());
        match kind {
            Kind::File
                if link.is_file() || link.file_type().is_symlink() && !target.as_ref().is_some_and(|t| t.is_dir()) =>
            {
                Ok(())
            }
            Kind::File => bail!("{} is {what}; --force replaces only a file with a file", dest.display()),
            Kind::Dir if link.is_dir() => {
                let mut entries = fs::read_dir(dest).with_context(|| format!("cannot read {}", dest.display()))?;
                let empty = entries.next().is_none();
                if empty || dest.join(crate::image_dir::MANIFEST_FILE).is_file() {
                    Ok(())
                } else {
                    bail!(
                        "{} is a directory that is neither empty nor a domain image directory (no {}); --force \
                         does not replace it",
                        dest.display(),
                        crate::image_dir::MANIFEST_FILE
                    )
                }
            }
            Kind::Dir => bail!("{} is {what}; --force replaces only a directory with a directory", dest.display()),
        }
    }
}

/// An unnamed temporary file for intermediate data (the raw image a core is made from) on
/// the file system of the output `out` (in its directory; `-`: in `$TMPDIR`). It has no name
/// (`O_TMPFILE`, or unlinked at once), so the kernel frees it whatever ends the process.
pub fn scratch_file(out: &Path) -> Result<File> {
    let dir = match out.parent() {
        _ if out.as_os_str() == "-" => std::env::temp_dir(),
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    tempfile::tempfile_in(&dir).with_context(|| format!("cannot create a temporary file in {}", dir.display()))
}

/// What is at a path, in words.
fn describe(link: &Metadata, target: Option<&Metadata>) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = link.file_type();
    if t.is_symlink() {
        return match target {
            Some(m) if m.is_dir() => "a symbolic link to a directory",
            Some(_) => "a symbolic link",
            None => "a dangling symbolic link",
        };
    }
    if t.is_dir() {
        "a directory"
    } else if t.is_file() {
        "a file"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else if t.is_fifo() {
        "a named pipe"
    } else {
        "not a regular file"
    }
}

/// Creates `dir` and its missing ancestors; returns those it created, innermost first.
fn create_parents(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut missing = Vec::new();
    let mut at = Some(dir);
    while let Some(d) = at {
        if d.as_os_str().is_empty() || fs::symlink_metadata(d).is_ok() {
            break;
        }
        missing.push(d.to_path_buf());
        at = d.parent();
    }
    let mut created = Vec::new();
    for d in missing.iter().rev() {
        match fs::create_dir(d) {
            Ok(()) => created.push(d.clone()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                for c in created.iter().rev() {
                    let _ = fs::remove_dir(c);
                }
                return Err(e);
            }
        }
    }
    created.reverse();
    Ok(created)
}

/// Whether a process with this id exists (signal 0; EPERM: it exists, owned by another user).
fn process_exists(pid: u32) -> bool {
    let Some(pid) = i32::try_from(pid).ok().and_then(rustix::process::Pid::from_raw) else { return false };
    match rustix::process::test_kill_process(pid) {
        Ok(()) => true,
        Err(e) => e != rustix::io::Errno::SRCH,
    }
}

/// Removes the partial outputs of `name` in `parent` whose process is gone; refuses when one
/// belongs to a live process.
fn clear_stale_partials(parent: &Path, name: &str, dest: &Path) -> Result<()> {
    let Ok(entries) = fs::read_dir(parent) else { return Ok(()) };
    for entry in entries.flatten() {
        let entry_name = entry.file_name();
        let Some(pid) = partial_pid(&entry_name.to_string_lossy(), name) else { continue };
        let path = entry.path();
        if pid != std::process::id() && process_exists(pid) {
            bail!(
                "{} exists: process {pid} may still be writing {}; wait for it to finish, or remove {} if no xsr \
                 runs as process {pid}",
                path.display(),
                dest.display(),
                path.display()
            );
        }
        let removed = match entry.file_type() {
            Ok(t) if t.is_dir() => fs::remove_dir_all(&path),
            _ => fs::remove_file(&path),
        };
        match removed {
            Ok(()) if pid != std::process::id() => eprintln!(
                "xsr: removed {}, a partial {} left by process {pid}, which no longer runs",
                path.display(),
                dest.display()
            ),
            Ok(()) => {}
            Err(e) => {
                return Err(anyhow::Error::new(e).context(format!(
                    "cannot remove {}, a partial {} left by process {pid}, which no longer runs",
                    path.display(),
                    dest.display()
                )));
            }
        }
    }
    Ok(())
}

/// A file or a directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    File,
    Dir,
}

impl Kind {
    fn noun(self) -> &'static str {
        match self {
            Kind::File => "file",
            Kind::Dir => "directory",
        }
    }
}

/// An output (a directory or a file) written under a temporary name beside its final one,
/// renamed into place by [`commit`](Self::commit) and removed if dropped before that (or on
/// a signal, see [`remove_partials_on_signals`]): a failed command never leaves output that
/// looks complete. Made by [`OutputRules::file`] and [`OutputRules::dir`].
#[derive(Debug)]
pub struct AtomicOutput {
    tmp: PathBuf,
    dest: PathBuf,
    kind: Kind,
    force: bool,
    /// Parent directories this output created, innermost first.
    created: Vec<PathBuf>,
    committed: bool,
}

impl AtomicOutput {
    /// Starts writing the directory `dest`, which must not exist yet, with no inputs to
    /// check against; see [`OutputRules::dir`].
    pub fn create(dest: &Path) -> Result<Self> {
        OutputRules::default().dir(dest)
    }

    /// The temporary path being written (`.NAME.partial-PID` beside the final one).
    pub fn path(&self) -> &Path {
        &self.tmp
    }

    /// Where the output appears on [`commit`](Self::commit).
    pub fn final_path(&self) -> &Path {
        &self.dest
    }

    fn register(&self, mut registry: MutexGuard<'_, Registry>) {
        registry.partials.push(Partial { tmp: self.tmp.clone(), dest: self.dest.clone(), dir: self.kind == Kind::Dir });
    }

    /// Renames the finished output into place (replacing an existing one only with `--force`,
    /// checked again now: an output that appeared meanwhile is not overwritten).
    pub fn commit(mut self) -> Result<()> {
        let mut registry = registry();
        let done = self.rename_into_place();
        if done.is_ok() {
            self.committed = true;
            registry.partials.retain(|p| p.tmp != self.tmp);
        }
        drop(registry);
        done
    }

    fn rename_into_place(&self) -> Result<()> {
        use rustix::fs::{CWD, RenameFlags, renameat_with};
        let (tmp, dest) = (&self.tmp, &self.dest);
        let failed = |e: io::Error| {
            let e = anyhow::Error::new(e);
            e.context(format!("cannot put {} in place", dest.display()))
        };
        let appeared = || {
            anyhow::anyhow!(
                "{} appeared while it was being written; refusing to overwrite it (the new {} is discarded)",
                dest.display(),
                self.kind.noun()
            )
        };
        if !self.force {
            return match renameat_with(CWD, tmp, CWD, dest, RenameFlags::NOREPLACE) {
                Ok(()) => Ok(()),
                Err(rustix::io::Errno::EXIST) => Err(appeared()),
                // A file system without renameat2 flags: a file by a hard link (which fails
                // if the name exists), a directory by a plain rename (which fails over a
                // non-empty directory; an empty one is checked for just before).
                Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS) => match self.kind {
                    Kind::File => match fs::hard_link(tmp, dest) {
                        Ok(()) => {
                            let _ = fs::remove_file(tmp);
                            Ok(())
                        }
                        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(appeared()),
                        Err(e) => Err(failed(e)),
                    },
                    Kind::Dir => {
                        if fs::symlink_metadata(dest).is_ok() {
                            return Err(appeared());
                        }
                        fs::rename(tmp, dest).map_err(failed)
                    }
                },
                Err(e) => Err(failed(e.into())),
            };
        }
        match self.kind {
            // rename(2) replaces a file (or a symbolic link) atomically.
            Kind::File => fs::rename(tmp, dest).map_err(failed),
            Kind::Dir if fs::symlink_metadata(dest).is_err() => fs::rename(tmp, dest).map_err(failed),
            Kind::Dir => {
                // Swap the two directories in one step, then remove the old one (now under
                // the temporary name: a kill here leaves it as a stale partial, never as
                // a half-removed output).
                match renameat_with(CWD, tmp, CWD, dest, RenameFlags::EXCHANGE) {
                    Ok(()) => {}
                    Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS) => {
                        let old = tmp.with_extension("old");
                        fs::rename(dest, &old).map_err(failed)?;
                        if let Err(e) = fs::rename(tmp, dest) {
                            let _ = fs::rename(&old, dest);
                            return Err(failed(e));
                        }
                        let _ = fs::rename(&old, tmp);
                    }
                    Err(e) => return Err(failed(e.into())),
                }
                fs::remove_dir_all(tmp).with_context(|| {
                    format!("{} is in place, but its old contents could not be removed", dest.display())
                })
            }
        }
    }

    fn remove_created_parents(&mut self) {
        for dir in self.created.drain(..) {
            if fs::remove_dir(&dir).is_err() {
                break;
            }
        }
    }
}

impl Drop for AtomicOutput {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        let mut registry = registry();
        let _ = match self.kind {
            Kind::Dir => fs::remove_dir_all(&self.tmp),
            Kind::File => fs::remove_file(&self.tmp),
        };
        registry.partials.retain(|p| p.tmp != self.tmp);
        drop(registry);
        self.remove_created_parents();
    }
}

/// A temporary output, for the signal handler.
#[derive(Debug)]
struct Partial {
    tmp: PathBuf,
    dest: PathBuf,
    dir: bool,
}

/// The partial outputs and transport process groups of this process, for the signal handler.
#[derive(Debug, Default)]
struct Registry {
    partials: Vec<Partial>,
    /// Process groups to kill (`send --via CMD`).
    groups: Vec<i32>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry { partials: Vec::new(), groups: Vec::new() });

fn registry() -> MutexGuard<'static, Registry> {
    // A panic while the lock was held leaves the lists as they were: still right.
    REGISTRY.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Registers the process group `pgid` (a transport command and its children) to be killed
/// when this process is interrupted; see [`forget_process_group`].
pub fn kill_process_group_on_signals(pgid: i32) {
    registry().groups.push(pgid);
}

/// Undoes [`kill_process_group_on_signals`] (the group is gone or was killed).
pub fn forget_process_group(pgid: i32) {
    registry().groups.retain(|&g| g != pgid);
}

/// Sends SIGKILL to the process group `pgid`.
pub fn kill_process_group(pgid: i32) {
    if let Some(pid) = rustix::process::Pid::from_raw(pgid) {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}

/// The signals whose default action this process keeps: those it inherited as ignored
/// (`nohup` ignores SIGHUP; a shell's background job may ignore SIGINT), from the `SigIgn`
/// mask of `/proc/self/status`.
fn ignored_signals() -> u64 {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .unwrap_or(0)
}

/// On SIGINT, SIGTERM and SIGHUP (each unless inherited as ignored): removes every partial
/// output of this process, kills the registered transport process groups, says so on
/// standard error, and dies of the signal. Called once at the start of every command but the
/// Xen ones (which stop between batches and put the domain back instead).
pub fn remove_partials_on_signals() -> Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let ignored = ignored_signals();
    let wanted: Vec<i32> = [SIGINT, SIGTERM, SIGHUP].into_iter().filter(|s| ignored & (1 << (s - 1)) == 0).collect();
    let mut signals = signal_hook::iterator::Signals::new(&wanted).context("cannot install the signal handlers")?;
    std::thread::Builder::new()
        .name("xsr-signals".into())
        .spawn(move || {
            if let Some(signal) = signals.forever().next() {
                // Held until the process is gone: no commit can rename a partial meanwhile.
                let registry = registry();
                for &group in &registry.groups {
                    kill_process_group(group);
                }
                let mut removed = Vec::new();
                for p in &registry.partials {
                    // A directory's writer may add a file while it is being removed: retry.
                    for _ in 0..10 {
                        let r = if p.dir { fs::remove_dir_all(&p.tmp) } else { fs::remove_file(&p.tmp) };
                        if r.is_ok() || fs::symlink_metadata(&p.tmp).is_err() {
                            removed.push(format!("{} ({})", p.dest.display(), p.tmp.display()));
                            break;
                        }
                    }
                }
                let name = match signal {
                    SIGINT => "SIGINT",
                    SIGTERM => "SIGTERM",
                    _ => "SIGHUP",
                };
                if removed.is_empty() {
                    eprintln!("xsr: interrupted ({name})");
                } else {
                    eprintln!("xsr: interrupted ({name}); removed the partial {}", removed.join(", "));
                }
                let _ = signal_hook::low_level::emulate_default_handler(signal);
                // Not reached: the default action of these signals ends the process.
                std::process::exit(128 + signal);
            }
        })
        .context("cannot start the signal thread")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_names_round_trip() {
        assert_eq!(partial_name("g.save", 42), ".g.save.partial-42");
        assert_eq!(partial_pid(".g.save.partial-42", "g.save"), Some(42));
        assert_eq!(partial_pid(".g.save.partial-", "g.save"), None);
        assert_eq!(partial_pid(".g.save.partial-4x", "g.save"), None);
        assert_eq!(partial_pid(".g.saveX.partial-4", "g.save"), None);
        assert_eq!(partial_pid(".g.save.old.partial-4", "g.save"), None);
    }

    #[test]
    fn a_dropped_directory_is_removed_with_the_parents_it_created() {
        let base = tempfile::tempdir().unwrap();
        let dest = base.path().join("a/b/out");
        {
            let d = OutputRules::default().dir(&dest).unwrap();
            fs::write(d.path().join("x"), b"1").unwrap();
            assert!(base.path().join("a/b").is_dir());
        }
        assert_eq!(fs::read_dir(base.path()).unwrap().count(), 0);
        let d = OutputRules::default().dir(&dest).unwrap();
        d.commit().unwrap();
        assert!(dest.is_dir());
        assert!(OutputRules::default().dir(&dest).is_err());
    }

    #[test]
    fn force_replaces_files_and_image_directories_only() {
        let base = tempfile::tempdir().unwrap();
        let file = base.path().join("f");
        fs::write(&file, b"old").unwrap();
        assert!(OutputRules::new(false).file(&file).is_err());
        let (out, f) = OutputRules::new(true).file(&file).unwrap();
        std::io::Write::write_all(&mut &f, b"new").unwrap();
        assert_eq!(fs::read(&file).unwrap(), b"old", "replaced only on commit");
        out.commit().unwrap();
        assert_eq!(fs::read(&file).unwrap(), b"new");

        let dir = base.path().join("d");
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join("other"), b"x").unwrap();
        assert!(OutputRules::new(true).dir(&dir).is_err(), "not an image directory");
        assert!(OutputRules::new(true).file(&dir).is_err(), "a file does not replace a directory");
        fs::write(dir.join("domain.json"), b"{}").unwrap();
        let d = OutputRules::new(true).dir(&dir).unwrap();
        fs::write(d.path().join("domain.json"), b"new").unwrap();
        d.commit().unwrap();
        assert_eq!(fs::read(dir.join("domain.json")).unwrap(), b"new");
        assert!(!dir.join("other").exists());
        let names: Vec<_> = fs::read_dir(base.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn an_input_is_never_an_output() {
        let base = tempfile::tempdir().unwrap();
        let input = base.path().join("in");
        fs::write(&input, b"data").unwrap();
        let link = base.path().join("link");
        std::os::unix::fs::symlink(&input, &link).unwrap();
        let hard = base.path().join("hard");
        fs::hard_link(&input, &hard).unwrap();
        let rules = OutputRules::new(true).input(&input);
        for out in [&input, &link, &hard] {
            let e = rules.file(out).unwrap_err().to_string();
            assert!(e.contains("refusing to write over an input"), "{e}");
        }
        assert_eq!(fs::read(&input).unwrap(), b"data");
    }

    #[test]
    fn a_stale_partial_of_a_dead_process_is_removed_and_a_live_ones_refused() {
        let base = tempfile::tempdir().unwrap();
        let dest = base.path().join("o");
        // A pid that cannot exist (above pid_max's largest value).
        let stale = base.path().join(partial_name("o", 4_194_305));
        fs::write(&stale, b"half").unwrap();
        let (out, _) = OutputRules::default().file(&dest).unwrap();
        assert!(!stale.exists());
        drop(out);
        // Process 1 always exists.
        let live = base.path().join(partial_name("o", 1));
        fs::write(&live, b"half").unwrap();
        let e = OutputRules::default().file(&dest).unwrap_err().to_string();
        assert!(e.contains("process 1 may still be writing"), "{e}");
        assert!(live.exists());
    }
}
