//! A supervising parent for a saver process: if the saver dies without cleaning up (SIGKILL,
//! or a crash inside one of Xen's C libraries, after which no in-process handler may run),
//! the parent puts the domain back ([`recover_domain`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use crate::domain::{Recovery, recover_domain};
use crate::error::XenError;
use crate::ffi;

/// Where [`supervise`] returns.
#[derive(Debug)]
pub enum Supervision {
    /// In the child process: do the work, and exit with its outcome.
    Child,
    /// In the parent: the child exited with this status.
    Exited(u8),
    /// In the parent: the child died of `signal`; `recovery` is what was done to the domain.
    Killed {
        /// The child's pid.
        pid: i32,
        /// The signal.
        signal: i32,
        /// [`recover_domain`]'s outcome.
        recovery: Result<Recovery, XenError>,
    },
}

/// Forks: the child returns [`Supervision::Child`] at once; the parent waits for it, passing
/// on SIGINT, SIGTERM and SIGHUP it receives (the child handles them itself), and when the child dies
/// of a signal runs [`recover_domain`] for `domid`.
///
/// # Errors
/// [`XenError::Call`] if the process has more than one thread (fork would copy only this
/// one: call it before starting any), or if fork or wait fail.
pub fn supervise(domid: u32) -> Result<Supervision, XenError> {
    let Some(pid) = ffi::fork_single_threaded()? else { return Ok(Supervision::Child) };
    let pending = Arc::new(AtomicI32::new(0));
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        let flag = Arc::clone(&pending);
        ffi::on_signal(signal, move || flag.store(signal, Ordering::SeqCst))?;
    }
    loop {
        if let Some(status) = ffi::try_wait(pid)? {
            return Ok(match status {
                ffi::ChildEnd::Exited(code) => Supervision::Exited(u8::try_from(code).unwrap_or(2)),
                ffi::ChildEnd::Signaled(signal) => Supervision::Killed { pid, signal, recovery: recover_domain(domid) },
            });
        }
        let signal = pending.swap(0, Ordering::SeqCst);
        if signal != 0 {
            ffi::signal_child(pid, signal);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
