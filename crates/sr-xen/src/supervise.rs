//! A supervising parent for a saver or dumper process: if it dies without cleaning up
//! (SIGKILL, or a crash inside one of Xen's C libraries, after which no in-process handler may
//! run), the parent puts the domain back ([`recover_domain`]).
//!
//! The child tells the parent what it holds as it goes (a pause, log-dirty mode, the device
//! model's log-dirty mode, a stopped device model): one byte per change on a pipe, written
//! when the change is made (a pause once Xen took it; QEMU's log-dirty once QEMU has the
//! command, since turning it off when it is not on makes QEMU abort). The parent undoes
//! exactly those, so it never unpauses a pause it did not take or stops QEMU's dirty log it
//! did not start.

use std::io::{PipeWriter, Read, Write};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use crate::domain::{Recovery, recover_domain};
use crate::error::XenError;
use crate::ffi;

/// What a supervised process may hold of a domain, as bits of [`Supervision::Killed::held`].
pub mod held {
    /// A toolstack pause (`xc_domain_pause`).
    pub const PAUSED: u8 = 1 << 0;
    /// Xen's log-dirty mode.
    pub const LOG_DIRTY: u8 = 1 << 1;
    /// The device model's (QEMU's) log-dirty mode.
    pub const DM_LOG_DIRTY: u8 = 1 << 2;
    /// The device model stopped (`stop`).
    pub const DM_STOPPED: u8 = 1 << 3;
}

/// The child's end of the report pipe (set in the child by [`supervise`]).
static REPORT: OnceLock<Mutex<PipeWriter>> = OnceLock::new();

/// Tells the supervising parent, if any, that this process now holds (`on`) or released the
/// [`held`] bit `bit`.
pub(crate) fn note(bit: u8, on: bool) {
    if let Some(w) = REPORT.get() {
        let mut w = w.lock().unwrap_or_else(|e| e.into_inner());
        // Best effort: a parent that is gone needs no report.
        let _ = w.write_all(&[bit | if on { 0x80 } else { 0 }]);
    }
}

/// Applies report bytes to a held mask.
fn apply(mut mask: u8, bytes: &[u8]) -> u8 {
    for &b in bytes {
        if b & 0x80 != 0 {
            mask |= b & 0x7f;
        } else {
            mask &= !b;
        }
    }
    mask
}

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
        /// What the child held when it died ([`held`] bits).
        held: u8,
        /// [`recover_domain`]'s outcome.
        recovery: Result<Recovery, XenError>,
    },
}

/// Forks: the child returns [`Supervision::Child`] at once; the parent waits for it, passing
/// on SIGINT, SIGTERM and SIGHUP it receives (the child handles them itself), and when the child
/// dies of a signal runs [`recover_domain`] for `domid` with what the child reported holding.
///
/// # Errors
/// [`XenError::Call`] if the process has more than one thread (fork would copy only this
/// one: call it before starting any), or if pipe, fork or wait fail.
pub fn supervise(domid: u32) -> Result<Supervision, XenError> {
    Ok(match supervise_child()? {
        Supervised::Child => Supervision::Child,
        Supervised::Exited(code) => Supervision::Exited(code),
        Supervised::Killed { pid, signal, held } => {
            Supervision::Killed { pid, signal, held, recovery: recover_domain(domid, held) }
        }
    })
}

/// Where [`supervise_child`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Supervised {
    /// In the child process: do the work, and exit with its outcome.
    Child,
    /// In the parent: the child exited with this status.
    Exited(u8),
    /// In the parent: the child died of `signal`; the caller cleans up after it.
    Killed {
        /// The child's pid.
        pid: i32,
        /// The signal.
        signal: i32,
        /// What the child held when it died ([`held`] bits).
        held: u8,
    },
}

/// Forks as [`supervise`] does (the child's [`held`] reports included), leaving what to do
/// after the child's death by a signal to the caller (a migration receiver destroys the copy
/// it was making).
///
/// # Errors
/// As [`supervise`].
pub fn supervise_child() -> Result<Supervised, XenError> {
    let (mut reader, writer) =
        std::io::pipe().map_err(|e| XenError::Call { call: "pipe", errno: e.raw_os_error().unwrap_or(0) })?;
    let Some(pid) = ffi::fork_single_threaded()? else {
        drop(reader);
        let _ = REPORT.set(Mutex::new(writer));
        return Ok(Supervised::Child);
    };
    drop(writer);
    // Never block on the pipe: a grandchild of the saver (libxl forks helpers) may hold its
    // end after the saver died.
    rustix::fs::fcntl_setfl(&reader, rustix::fs::OFlags::NONBLOCK)
        .map_err(|e| XenError::Call { call: "fcntl", errno: e.raw_os_error() })?;
    let pending = Arc::new(AtomicI32::new(0));
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        let flag = Arc::clone(&pending);
        ffi::on_signal(signal, move || flag.store(signal, Ordering::SeqCst))?;
    }
    let mut mask = 0u8;
    let mut buf = [0u8; 256];
    let mut drain = |mask: &mut u8| {
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            *mask = apply(*mask, &buf[..n]);
        }
    };
    loop {
        drain(&mut mask);
        if let Some(status) = ffi::try_wait(pid)? {
            drain(&mut mask);
            return Ok(match status {
                ffi::ChildEnd::Exited(code) => Supervised::Exited(u8::try_from(code).unwrap_or(2)),
                ffi::ChildEnd::Signaled(signal) => Supervised::Killed { pid, signal, held: mask },
            });
        }
        let signal = pending.swap(0, Ordering::SeqCst);
        if signal != 0 {
            ffi::signal_child(pid, signal);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_fold_into_the_held_mask() {
        let on = |b: u8| b | 0x80;
        assert_eq!(apply(0, &[on(held::PAUSED), on(held::LOG_DIRTY)]), held::PAUSED | held::LOG_DIRTY);
        assert_eq!(apply(0, &[on(held::PAUSED), held::PAUSED, on(held::DM_STOPPED)]), held::DM_STOPPED);
        assert_eq!(apply(held::DM_LOG_DIRTY, &[]), held::DM_LOG_DIRTY);
        assert_eq!(apply(held::DM_LOG_DIRTY | held::DM_STOPPED, &[held::DM_STOPPED]), held::DM_LOG_DIRTY);
    }
}
