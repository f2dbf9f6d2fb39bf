//! Leaving the domain as found: a guard that undoes what a dump did to the domain (log-dirty
//! on, paused) on every path out, including errors, panics unwinding and interrupts.
//!
//! Xen counts toolstack pauses (`XEN_DOMCTL_pausedomain` nests), so the guard undoes exactly
//! its own pauses: a domain an administrator had paused stays paused. Log-dirty mode is not
//! counted, so the guard turns it off only if it turned it on. Order on the way out: log-dirty
//! off first (while the domain is still paused, so it never runs with a half-torn-down
//! shadow mode), then unpause; a failure of the first does not skip the second.

use crate::error::XenError;

/// The operations the guard undoes. [`crate::XenDomain`] implements it over libxenctrl; tests
/// use a recording fake.
pub trait DomainControl {
    /// `xc_domain_pause`.
    fn pause(&self) -> Result<(), XenError>;
    /// `xc_domain_unpause`.
    fn unpause(&self) -> Result<(), XenError>;
    /// `XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY` (`on`) or `XEN_DOMCTL_SHADOW_OP_OFF`.
    fn set_log_dirty(&self, on: bool) -> Result<(), XenError>;
}

/// Tracks what this process did to the domain and undoes it on [`restore`](Self::restore) or
/// drop.
#[derive(Debug)]
pub struct DomainGuard<C: DomainControl> {
    control: C,
    paused: bool,
    log_dirty: bool,
}

impl<C: DomainControl> DomainGuard<C> {
    /// A guard that has changed nothing yet.
    pub fn new(control: C) -> Self {
        Self { control, paused: false, log_dirty: false }
    }

    /// The controlled object.
    pub fn control(&self) -> &C {
        &self.control
    }

    /// Whether this guard holds a pause.
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// Whether this guard turned log-dirty mode on.
    pub fn log_dirty(&self) -> bool {
        self.log_dirty
    }

    /// Pauses the domain (once; a second call is a no-op).
    pub fn pause(&mut self) -> Result<(), XenError> {
        if !self.paused {
            self.control.pause()?;
            self.paused = true;
        }
        Ok(())
    }

    /// Releases this guard's pause, if it holds one.
    pub fn unpause(&mut self) -> Result<(), XenError> {
        if self.paused {
            self.control.unpause()?;
            self.paused = false;
        }
        Ok(())
    }

    /// Turns log-dirty mode on (fails if it is already on, e.g. another saver runs).
    pub fn enable_log_dirty(&mut self) -> Result<(), XenError> {
        if !self.log_dirty {
            self.control.set_log_dirty(true)?;
            self.log_dirty = true;
        }
        Ok(())
    }

    /// Turns log-dirty mode off if this guard turned it on.
    pub fn disable_log_dirty(&mut self) -> Result<(), XenError> {
        if self.log_dirty {
            self.control.set_log_dirty(false)?;
            self.log_dirty = false;
        }
        Ok(())
    }

    /// Puts the domain back as found: log-dirty off, then unpause; both are attempted, the
    /// first error is returned. Idempotent.
    pub fn restore(&mut self) -> Result<(), XenError> {
        let off = self.disable_log_dirty();
        let run = self.unpause();
        off.and(run)
    }
}

impl<C: DomainControl> Drop for DomainGuard<C> {
    fn drop(&mut self) {
        // Nothing to report to from a drop; `restore` is called explicitly on the normal path.
        let _ = self.restore();
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;

    #[derive(Default)]
    struct Fake {
        calls: RefCell<Vec<&'static str>>,
        fail: RefCell<Vec<&'static str>>,
    }

    impl Fake {
        fn op(&self, name: &'static str) -> Result<(), XenError> {
            self.calls.borrow_mut().push(name);
            if self.fail.borrow().contains(&name) {
                Err(XenError::Call { call: name, errno: libc::EIO })
            } else {
                Ok(())
            }
        }
    }

    impl DomainControl for &Fake {
        fn pause(&self) -> Result<(), XenError> {
            self.op("pause")
        }
        fn unpause(&self) -> Result<(), XenError> {
            self.op("unpause")
        }
        fn set_log_dirty(&self, on: bool) -> Result<(), XenError> {
            self.op(if on { "logdirty-on" } else { "logdirty-off" })
        }
    }

    #[test]
    fn drop_turns_log_dirty_off_before_unpausing() {
        let fake = Fake::default();
        {
            let mut g = DomainGuard::new(&fake);
            g.enable_log_dirty().unwrap();
            g.pause().unwrap();
            g.pause().unwrap(); // held once
        }
        assert_eq!(*fake.calls.borrow(), ["logdirty-on", "pause", "logdirty-off", "unpause"]);
    }

    #[test]
    fn restore_is_idempotent_and_undoes_only_its_own_changes() {
        let fake = Fake::default();
        let mut g = DomainGuard::new(&fake);
        g.restore().unwrap();
        g.pause().unwrap();
        g.restore().unwrap();
        g.restore().unwrap();
        drop(g);
        assert_eq!(*fake.calls.borrow(), ["pause", "unpause"]);
    }

    #[test]
    fn a_failing_log_dirty_off_still_unpauses() {
        let fake = Fake::default();
        fake.fail.borrow_mut().push("logdirty-off");
        let mut g = DomainGuard::new(&fake);
        g.enable_log_dirty().unwrap();
        g.pause().unwrap();
        let err = g.restore().unwrap_err();
        assert!(matches!(err, XenError::Call { call: "logdirty-off", .. }));
        assert!(!g.is_paused());
        assert!(g.log_dirty()); // still believed on: the drop tries once more
        drop(g);
        assert_eq!(*fake.calls.borrow(), ["logdirty-on", "pause", "logdirty-off", "unpause", "logdirty-off"]);
    }

    #[test]
    fn a_failed_pause_is_not_undone() {
        let fake = Fake::default();
        fake.fail.borrow_mut().extend(["pause", "logdirty-on"]);
        let mut g = DomainGuard::new(&fake);
        assert!(g.enable_log_dirty().is_err());
        assert!(g.pause().is_err());
        drop(g);
        assert_eq!(*fake.calls.borrow(), ["logdirty-on", "pause"]);
    }

    #[test]
    fn guard_restores_when_a_panic_unwinds() {
        let fake = Fake::default();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut g = DomainGuard::new(&fake);
            g.pause().unwrap();
            panic!("copy failed");
        }));
        assert!(r.is_err());
        assert_eq!(*fake.calls.borrow(), ["pause", "unpause"]);
    }
}
