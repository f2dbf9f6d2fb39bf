//! A new running domain from a save file in one call, the way `xl restore` makes it: libxl's
//! public `libxl_domain_create_restore` builds the domain (paused), its xenstore entries,
//! console and devices, and runs the save helper for the libxc stream; with
//! [`CreateRestore::helper`] naming this program, the memory and CPU half is
//! [`super::restore_into`]'s. libxl destroys the domain itself when anything fails.

use std::ffi::OsStr;
use std::os::fd::AsRawFd;
use std::path::Path;

use crate::error::XenError;
use crate::interrupt::Interrupt;
use crate::libxl::{Libxl, set_env};

/// What [`create_restore`] makes.
#[derive(Clone, Copy, Debug)]
pub struct CreateRestore<'a> {
    /// The domain configuration from the `xl` file's header (JSON with its NUL).
    pub config_json: &'a [u8],
    /// A name for the new domain instead of the configuration's.
    pub name: Option<&'a str>,
    /// The save helper libxl runs (`LIBXL_SAVE_HELPER`): this program for a restore in Rust.
    /// `None` keeps libxl's choice (the environment's, or Xen's own helper).
    pub helper: Option<&'a Path>,
    /// More variables for the helper's environment.
    pub helper_env: &'a [(&'a str, &'a OsStr)],
    /// Leave the domain paused (`xl restore -p`).
    pub paused: bool,
    /// SIGINT/SIGTERM handlers: a signal during the restore lets it finish (libxl is not
    /// interruptible), then destroys the new domain instead of unpausing it. (A terminal's ^C
    /// also reaches the helper, which dies of it; libxl then fails and destroys the domain.)
    pub interrupt: Option<&'a Interrupt>,
}

/// Restores the libxl stream `stream` is positioned at (just after the `xl` header) into a new
/// domain; returns its id, running unless [`CreateRestore::paused`]. Must be called while the
/// process has one thread (it sets the helper's environment).
///
/// # Errors
/// [`XenError::Libxl`] from `libxl_domain_create_restore` (libxl has logged why on standard
/// error, and destroyed the domain) or `libxl_domain_unpause` (the domain is then destroyed
/// here, so that a domain that does not come up is not left behind);
/// [`XenError::Interrupted`] after a signal (the domain destroyed).
pub fn create_restore(stream: &std::fs::File, req: &CreateRestore<'_>) -> Result<u32, XenError> {
    let mut vars: Vec<(&str, &OsStr)> = req.helper_env.to_vec();
    if let Some(helper) = req.helper {
        vars.push(("LIBXL_SAVE_HELPER", helper.as_os_str()));
    }
    // Nothing to set: the caller set the helper's environment while it had one thread
    // ([`set_helper_env`]), and may have more now.
    if !vars.is_empty() {
        set_env(&vars)?;
    }
    let libxl = Libxl::open()?;
    let created = libxl.create_restore(req.config_json, req.name, stream.as_raw_fd());
    if let Some(Err(e)) = req.interrupt.map(Interrupt::check) {
        if let Ok(domid) = created {
            let _ = libxl.destroy(domid);
        }
        return Err(e);
    }
    let domid = created?;
    if !req.paused
        && let Err(e) = libxl.unpause(domid)
    {
        let _ = libxl.destroy(domid);
        return Err(e);
    }
    Ok(domid)
}

/// Sets the save helper libxl runs (`LIBXL_SAVE_HELPER`) and more variables for its environment,
/// for a later [`create_restore`] with no `helper` and no `helper_env` from a process that has
/// started threads by then (a receiver reading the stream from a TLS session).
///
/// # Errors
/// [`XenError::Call`] if the process already has more than one thread.
pub fn set_helper_env(helper: &Path, vars: &[(&str, &OsStr)]) -> Result<(), XenError> {
    let mut all = vars.to_vec();
    all.push(("LIBXL_SAVE_HELPER", helper.as_os_str()));
    set_env(&all)
}

/// Renames domain `domid` from `old` to `new` (`libxl_domain_rename`, which checks the old name
/// and writes the new one in one xenstore transaction): the hand-over of a migration
/// (`NAME--incoming` to `NAME` on the receiver, `NAME` to `NAME--migratedaway` on the sender).
///
/// # Errors
/// [`XenError::Libxl`] (e.g. another domain has the name, or `old` is not the domain's name).
pub fn rename_domain(domid: u32, old: &str, new: &str) -> Result<(), XenError> {
    Libxl::open()?.rename(domid, old, new)
}

/// Unpauses domain `domid` (`libxl_domain_unpause`: for HVM it first lets QEMU run).
///
/// # Errors
/// [`XenError::Libxl`].
pub fn unpause_domain(domid: u32) -> Result<(), XenError> {
    Libxl::open()?.unpause(domid)
}

/// Destroys domain `domid` (`libxl_domain_destroy`, synchronous): a received copy that is not
/// to run.
///
/// # Errors
/// [`XenError::Libxl`].
pub fn destroy_domain(domid: u32) -> Result<(), XenError> {
    Libxl::open()?.destroy(domid)
}
