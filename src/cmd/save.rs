//! `xsr save` and `xsr send`: a domain image directory back into a stream.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use indicatif::ProgressBar;
use sr_save::{Container, SaveEvent, SaveOptions, SaveStats, Saver, ZeroPages};

use crate::dir_guest::DirGuest;
use crate::output::OutputRules;

/// The wrapper to write around the libxc stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ContainerArg {
    /// A bare libxc stream.
    Libxc,
    /// A libxl stream around it.
    Libxl,
    /// An `xl` save file (header and config, then the libxl stream).
    Xl,
}

/// How all-zero pages are sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ZeroPagesArg {
    /// As data, like Xen.
    Data,
    /// As XALLOC entries without data (stock Xen restores them as fresh zeroed pages).
    Xalloc,
}

/// Save settings from the command line.
#[derive(Clone, Debug)]
pub struct SaveSettings {
    /// Wrapper; `None`: the one the directory was restored from.
    pub container: Option<ContainerArg>,
    /// libxc stream version.
    pub stream_version: u32,
    /// pfns per PAGE_DATA record.
    pub batch: usize,
    /// Zero-page handling.
    pub zero_pages: ZeroPagesArg,
    /// Send a VERIFY pass.
    pub verify: bool,
    /// Worker threads (0: one per core).
    pub workers: usize,
    /// Write PVH guests as HVM (domain type 2), as current Xen does.
    pub pvh_as_hvm: bool,
}

impl SaveSettings {
    /// The saver options for `guest`.
    ///
    /// # Errors
    /// A container that would drop what the directory carries: its xl configuration
    /// (`xl-config.json`) needs the xl container. The saver refuses the rest (device-model
    /// records without a libxl container, a CPU policy in a v2 stream, ...).
    pub fn options(&self, guest: &DirGuest) -> Result<SaveOptions> {
        let layer = match self.container {
            Some(c) => c,
            None => match guest.image.layer.as_str() {
                "xl" => ContainerArg::Xl,
                "libxl" => ContainerArg::Libxl,
                _ => ContainerArg::Libxc,
            },
        };
        if layer != ContainerArg::Xl && guest.image.xl_config.as_ref().is_some_and(|c| !c.is_empty()) {
            anyhow::bail!(
                "the directory has the domain's xl configuration (xl-config.json), which only the xl container carries: --container {} would drop it",
                if layer == ContainerArg::Libxl { "libxl" } else { "libxc" }
            );
        }
        let container = match layer {
            ContainerArg::Libxc => Container::Libxc,
            ContainerArg::Libxl => Container::Libxl,
            ContainerArg::Xl => Container::Xl { config: guest.image.xl_config.clone().unwrap_or_default() },
        };
        let state = &guest.image.state;
        Ok(SaveOptions {
            stream_version: self.stream_version,
            batch_pfns: self.batch,
            workers: self.workers,
            zero_pages: match self.zero_pages {
                ZeroPagesArg::Data => ZeroPages::Data,
                ZeroPagesArg::Xalloc => ZeroPages::Xalloc,
            },
            verify: self.verify,
            live: None,
            pvh_as_hvm: self.pvh_as_hvm,
            container,
            xen_version: (state.xen_major, state.xen_minor),
            libxl_legacy: guest.image.libxl_legacy,
        })
    }
}

/// A progress bar over the pages of each pass.
pub fn progress_handler(bar: &ProgressBar) -> impl FnMut(&SaveEvent) + Send + '_ {
    move |event| match event {
        SaveEvent::IterationStart { iteration, pages } => {
            bar.set_length(*pages);
            bar.set_position(0);
            bar.set_message(format!("pass {iteration}"));
        }
        SaveEvent::Progress { pages_done, .. } => bar.set_position(*pages_done),
        _ => {}
    }
}

/// The pages progress bar of a save (on standard error, hidden when it is not a terminal).
pub fn pages_bar() -> ProgressBar {
    crate::progress::pages_bar()
}

/// Saves `guest` into `out`.
pub fn save_to(guest: &DirGuest, settings: &SaveSettings, out: impl Write + Send) -> Result<SaveStats> {
    let bar = pages_bar();
    let stats = Saver::new(settings.options(guest)?).on_event(progress_handler(&bar)).save(guest, out)?;
    bar.finish_and_clear();
    Ok(stats)
}

/// `xsr save DIR --out FILE` (`-`: standard output). A file is written atomically under
/// `rules` (checked and created before the directory is read).
pub fn save(dir: &Path, out: &Path, settings: &SaveSettings, rules: &OutputRules) -> Result<SaveStats> {
    if out.as_os_str() == "-" {
        rules.check_stdout()?;
        let guest = DirGuest::open(dir)?;
        // A duplicate of fd 1 as a File: unbuffered, and `writev` reaches the pipe directly.
        use std::os::fd::AsFd;
        let fd = std::io::stdout().as_fd().try_clone_to_owned().context("cannot use standard output")?;
        crate::pipe::widen(&fd);
        return save_to(&guest, settings, std::fs::File::from(fd))
            .context("writing the stream to standard output failed");
    }
    let (dest, file) = rules.file(out)?;
    let guest = DirGuest::open(dir)?;
    let stats = save_to(&guest, settings, &file).with_context(|| format!("save to {} failed", out.display()))?;
    drop(file);
    // Like cp, no fsync: the rename below is what makes the file look complete.
    dest.commit()?;
    Ok(stats)
}
