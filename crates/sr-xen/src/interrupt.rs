//! SIGINT, SIGTERM and SIGHUP as a flag checked once per batch, so an interrupted dump stops between
//! batches and the [`DomainGuard`](crate::DomainGuard) puts the domain back as found.
//!
//! The handlers (signal-hook's `flag::register_usize`) only store the signal number; the
//! process does not die on the signal while an [`Interrupt`] lives, it fails its current
//! operation with [`XenError::Interrupted`] and unwinds normally. SIGKILL cannot be caught:
//! a dump killed that way leaves the domain as it was at that moment.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use signal_hook::SigId;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

use crate::error::XenError;

/// The handlers and the flag they set; cheap to clone, handlers removed with the last clone.
#[derive(Debug, Clone)]
pub struct Interrupt {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    signal: Arc<AtomicUsize>,
    ids: Vec<SigId>,
}

impl Interrupt {
    /// Installs handlers for SIGINT, SIGTERM and SIGHUP (a closed terminal or ssh session).
    pub fn install() -> Result<Self, XenError> {
        let signal = Arc::new(AtomicUsize::new(0));
        let mut ids = Vec::new();
        for sig in [SIGINT, SIGTERM, SIGHUP] {
            let id = signal_hook::flag::register_usize(sig, Arc::clone(&signal), sig as usize)
                .map_err(|e| XenError::Call { call: "sigaction", errno: e.raw_os_error().unwrap_or(libc::EINVAL) })?;
            ids.push(id);
        }
        Ok(Self { inner: Arc::new(Inner { signal, ids }) })
    }

    /// A flag no signal sets (for callers that handle signals themselves, and tests).
    pub fn none() -> Self {
        Self { inner: Arc::new(Inner { signal: Arc::new(AtomicUsize::new(0)), ids: Vec::new() }) }
    }

    /// The signal received, if any.
    pub fn signal(&self) -> Option<i32> {
        match self.inner.signal.load(Ordering::SeqCst) {
            0 => None,
            s => i32::try_from(s).ok(),
        }
    }

    /// `Err(Interrupted)` once a signal arrived.
    pub fn check(&self) -> Result<(), XenError> {
        match self.signal() {
            Some(signal) => Err(XenError::Interrupted { signal }),
            None => Ok(()),
        }
    }

    /// Sets the flag as a signal would (tests, or a caller's own stop request).
    pub fn raise(&self, signal: i32) {
        self.inner.signal.store(signal.max(1) as usize, Ordering::SeqCst);
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_real_signal_sets_the_flag_instead_of_killing() {
        let i = Interrupt::install().unwrap();
        assert!(i.check().is_ok());
        signal_hook::low_level::raise(SIGTERM).unwrap();
        assert_eq!(i.signal(), Some(SIGTERM));
        assert!(matches!(i.clone().check(), Err(XenError::Interrupted { signal: SIGTERM })));
    }

    #[test]
    fn raise_without_handlers() {
        let i = Interrupt::none();
        assert!(i.check().is_ok());
        i.raise(SIGINT);
        assert!(matches!(i.check(), Err(XenError::Interrupted { signal: SIGINT })));
    }
}
