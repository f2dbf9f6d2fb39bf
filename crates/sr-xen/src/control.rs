//! Leaving the domain as found: a guard that undoes what a dump or a save did to the domain
//! (log-dirty on, paused, suspended) on every path out, including errors, panics unwinding and
//! interrupts.
//!
//! Xen counts toolstack pauses (`XEN_DOMCTL_pausedomain` nests), so the guard undoes exactly
//! its own pauses: a domain an administrator had paused stays paused. Log-dirty mode is not
//! counted, so the guard turns it off only if it turned it on. A domain this process suspended
//! (the guest shut itself down with reason suspend at our request) is resumed with a suspend
//! cancel, as `xl save` does after a failed save and `xl save -c` after a successful one
//! (`libxl_domain_resume(ctx, domid, 1, NULL)` in `tools/xl/xl_saverestore.c`), unless the
//! domain was destroyed or resumed already.
//!
//! Order on the way out: log-dirty off first (while the domain is still paused or suspended, so
//! it never runs with a half-torn-down shadow mode; Xen's saver turns it off in its `cleanup`
//! before libxl resumes the guest), then unpause, then resume; a failure of one step does not
//! skip the next. A suspended domain does not run whether or not it is paused (Xen's saver never
//! pauses it), so unpausing before the resume lets it run the moment it is resumed.

use std::time::{Duration, Instant};

use crate::error::XenError;
use crate::interrupt::Interrupt;

/// `SHUTDOWN_suspend` of `xen/include/public/sched.h`: the shutdown reason of a guest that
/// suspended itself (`SCHEDOP_shutdown`) for a save.
pub const SHUTDOWN_SUSPEND: u32 = 2;

/// How often [`DomainGuard::suspend`] looks at the domain while it waits (libxl waits on
/// xenstore watches; polling every few milliseconds costs two cheap calls and adds at most this
/// much to the guest's downtime).
pub const SUSPEND_POLL: Duration = Duration::from_millis(5);

/// How long [`DomainGuard::suspend`] still waits, after a timeout or an interrupt, for a guest
/// that has acknowledged the request to finish suspending, so that it can be resumed rather
/// than left suspended.
pub const SUSPEND_GRACE: Duration = Duration::from_secs(2);

/// The operations the guard undoes. [`crate::XenDomain`] implements it over libxenctrl and
/// libxenstore; tests use a recording fake.
pub trait DomainControl {
    /// `xc_domain_pause`.
    fn pause(&self) -> Result<(), XenError>;
    /// `xc_domain_unpause`.
    fn unpause(&self) -> Result<(), XenError>;
    /// `XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY` (`on`) or `XEN_DOMCTL_SHADOW_OP_OFF`.
    fn set_log_dirty(&self, on: bool) -> Result<(), XenError>;
    /// Writes `suspend` to the guest's `control/shutdown` node (libxl's
    /// `libxl__domain_pvcontrol`).
    fn request_suspend(&self) -> Result<(), XenError>;
    /// Whether the guest acknowledged the request: `control/shutdown` holds anything but
    /// `suspend`, or nothing (libxl's `domain_suspend_pvcontrol_acked`; Linux writes "").
    fn suspend_acked(&self) -> Result<bool, XenError>;
    /// Withdraws a request the guest has not acknowledged: in one xenstore transaction, if the
    /// node still holds `suspend`, writes "" (as libxl does when the guest does not answer).
    /// `Ok(false)` if the guest acknowledged it at the last moment.
    fn cancel_suspend(&self) -> Result<bool, XenError>;
    /// The domain's shutdown reason (`SHUTDOWN_*`), `None` while it is not shut down
    /// (`XEN_DOMCTL_getdomaininfo`'s `XEN_DOMINF_shutdown` and shutdown code).
    fn shutdown_reason(&self) -> Result<Option<u32>, XenError>;
    /// Resumes a domain shut down with reason suspend in place (`xc_domain_resume` with
    /// `fast` = 1, the suspend cancel, then `xs_resume_domain`, as libxl's
    /// `domain_resume_done`); a no-op for the hypervisor part if it is not suspended.
    fn resume(&self) -> Result<(), XenError>;
    /// Turns the device model's (QEMU's) log-dirty mode on or off (QMP
    /// `xen-set-global-dirty-log`). Only asked of a domain with a device model.
    fn set_dm_log_dirty(&self, on: bool) -> Result<(), XenError> {
        let _ = on;
        Ok(())
    }
    /// Stops the device model (QMP `stop`). Only asked of a domain with a device model.
    fn stop_dm(&self) -> Result<(), XenError> {
        Ok(())
    }
    /// Lets the device model run again (QMP `cont`).
    fn cont_dm(&self) -> Result<(), XenError> {
        Ok(())
    }
}

/// Tracks what this process did to the domain and undoes it on [`restore`](Self::restore) or
/// drop.
#[derive(Debug)]
pub struct DomainGuard<C: DomainControl> {
    control: C,
    paused: bool,
    log_dirty: bool,
    suspended: bool,
    dm_log_dirty: bool,
    dm_stopped: bool,
}

impl<C: DomainControl> DomainGuard<C> {
    /// A guard that has changed nothing yet.
    pub fn new(control: C) -> Self {
        Self { control, paused: false, log_dirty: false, suspended: false, dm_log_dirty: false, dm_stopped: false }
    }

    /// Whether this guard turned the device model's log-dirty mode on.
    pub fn dm_log_dirty(&self) -> bool {
        self.dm_log_dirty
    }

    /// Whether this guard stopped the device model.
    pub fn dm_stopped(&self) -> bool {
        self.dm_stopped
    }

    /// Turns the device model's log-dirty mode on (once).
    pub fn enable_dm_log_dirty(&mut self) -> Result<(), XenError> {
        if !self.dm_log_dirty {
            self.control.set_dm_log_dirty(true)?;
            self.dm_log_dirty = true;
        }
        Ok(())
    }

    /// Turns the device model's log-dirty mode off if this guard turned it on.
    pub fn disable_dm_log_dirty(&mut self) -> Result<(), XenError> {
        if self.dm_log_dirty {
            // Believed off from here whatever the answer: turning it off twice makes QEMU
            // abort, leaving it on costs only its dirty reports.
            self.dm_log_dirty = false;
            self.control.set_dm_log_dirty(false)?;
        }
        Ok(())
    }

    /// Stops the device model (once); [`resume`](Self::resume) and the way out let it run
    /// again before the domain is resumed.
    pub fn stop_dm(&mut self) -> Result<(), XenError> {
        if !self.dm_stopped {
            // Held from the request on: a `cont` of a QEMU that did not stop does nothing.
            self.dm_stopped = true;
            self.control.stop_dm()?;
        }
        Ok(())
    }

    /// Lets a device model this guard stopped run again.
    pub fn cont_dm(&mut self) -> Result<(), XenError> {
        if self.dm_stopped {
            self.control.cont_dm()?;
            self.dm_stopped = false;
        }
        Ok(())
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

    /// Whether this guard suspended the domain and has not resumed it yet.
    pub fn is_suspended(&self) -> bool {
        self.suspended
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

    /// Suspends the guest cooperatively, as libxl does for a PV guest
    /// (`tools/libs/light/libxl_dom_suspend.c`): `suspend` into `control/shutdown`, then wait
    /// until the guest acknowledged it and the domain is shut down with reason
    /// [`SHUTDOWN_SUSPEND`], looking every [`SUSPEND_POLL`] and checking `interrupt`. Returns the
    /// time from the request to the suspended domain. A no-op (zero) if this guard already
    /// suspended it.
    ///
    /// Errors: the domain already shut down ([`XenError::NotRunning`]); it shut down with
    /// another reason ([`XenError::UnexpectedShutdown`]); `timeout` passed
    /// ([`XenError::SuspendTimeout`]) or a signal arrived ([`XenError::Interrupted`]): then an
    /// unacknowledged request is withdrawn, and a guest that had acknowledged it is given
    /// [`SUSPEND_GRACE`] to finish suspending, after which the guard holds it suspended so that
    /// it is resumed on the way out.
    pub fn suspend(&mut self, timeout: Duration, interrupt: &Interrupt, domid: u32) -> Result<Duration, XenError> {
        if self.suspended {
            return Ok(Duration::ZERO);
        }
        if self.control.shutdown_reason()?.is_some() {
            return Err(XenError::NotRunning { domid });
        }
        let start = Instant::now();
        self.control.request_suspend()?;
        let mut acked = false;
        loop {
            match self.control.shutdown_reason()? {
                Some(SHUTDOWN_SUSPEND) => {
                    self.suspended = true;
                    return Ok(start.elapsed());
                }
                Some(reason) => return Err(XenError::UnexpectedShutdown { domid, reason }),
                None => {}
            }
            if !acked {
                acked = self.control.suspend_acked()?;
            }
            let stop = match interrupt.check() {
                Err(e) => Some(e),
                Ok(()) if start.elapsed() >= timeout => {
                    Some(XenError::SuspendTimeout { domid, acked, waited_ms: start.elapsed().as_millis() as u64 })
                }
                Ok(()) => None,
            };
            if let Some(err) = stop {
                if !acked && self.control.cancel_suspend()? {
                    return Err(err);
                }
                // The guest has taken the request: it is on its way to suspending. Give it a
                // moment, so that it is resumed on the way out rather than left suspended.
                let grace = Instant::now();
                while grace.elapsed() < SUSPEND_GRACE {
                    match self.control.shutdown_reason()? {
                        Some(SHUTDOWN_SUSPEND) => {
                            self.suspended = true;
                            return Err(err);
                        }
                        Some(_) => return Err(err),
                        None => std::thread::sleep(SUSPEND_POLL),
                    }
                }
                return Err(err);
            }
            std::thread::sleep(SUSPEND_POLL);
        }
    }

    /// Resumes the domain if this guard suspended it (suspend cancel: the guest carries on
    /// where it suspended, as after `xl save -c`), after letting a device model this guard
    /// stopped run again (libxl's `libxl__domain_resume`: `cont`, then `xc_domain_resume`).
    pub fn resume(&mut self) -> Result<(), XenError> {
        let dm = self.cont_dm();
        if self.suspended {
            self.control.resume()?;
            self.suspended = false;
        }
        dm
    }

    /// Forgets everything this guard would undo: the domain is gone (destroyed after a
    /// successful save), so there is nothing to turn off, unpause or resume.
    pub fn disarm(&mut self) {
        self.paused = false;
        self.log_dirty = false;
        self.suspended = false;
        self.dm_log_dirty = false;
        self.dm_stopped = false;
    }

    /// Puts the domain back as found: log-dirty off, the device model's log-dirty off (Xen's
    /// saver's `cleanup` order), unpause, then the device model's `cont` and the resume if
    /// this guard suspended it; every step is attempted, the first error is returned.
    /// Idempotent.
    pub fn restore(&mut self) -> Result<(), XenError> {
        let off = self.disable_log_dirty();
        let dm_off = self.disable_dm_log_dirty();
        let run = self.unpause();
        let resume = self.resume();
        off.and(dm_off).and(run).and(resume)
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
    use std::cell::{Cell, RefCell};
    use std::collections::VecDeque;

    use super::*;

    /// Records every call; `fail` names the calls that fail. The domain's shutdown state and
    /// the guest's acknowledgement follow scripts (the last entry repeats).
    #[derive(Default)]
    struct Fake {
        calls: RefCell<Vec<&'static str>>,
        fail: RefCell<Vec<&'static str>>,
        shutdown: RefCell<VecDeque<Option<u32>>>,
        acked: RefCell<VecDeque<bool>>,
        /// What `cancel_suspend` finds: the request still there (true) or a last-minute ack.
        cancel_finds_request: Cell<bool>,
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

        fn next<T: Copy>(script: &RefCell<VecDeque<T>>, default: T) -> T {
            let mut s = script.borrow_mut();
            if s.len() > 1 { s.pop_front().unwrap_or(default) } else { s.front().copied().unwrap_or(default) }
        }

        /// Calls other than the polls (`shutdown?` and `acked?` can repeat any number of times).
        fn actions(&self) -> Vec<&'static str> {
            self.calls.borrow().iter().copied().filter(|c| !c.ends_with('?')).collect()
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
        fn request_suspend(&self) -> Result<(), XenError> {
            self.op("request")
        }
        fn suspend_acked(&self) -> Result<bool, XenError> {
            self.op("acked?")?;
            Ok(Fake::next(&self.acked, false))
        }
        fn cancel_suspend(&self) -> Result<bool, XenError> {
            self.op("cancel")?;
            Ok(self.cancel_finds_request.get())
        }
        fn shutdown_reason(&self) -> Result<Option<u32>, XenError> {
            self.op("shutdown?")?;
            Ok(Fake::next(&self.shutdown, None))
        }
        fn resume(&self) -> Result<(), XenError> {
            self.op("resume")
        }
        fn set_dm_log_dirty(&self, on: bool) -> Result<(), XenError> {
            self.op(if on { "dm-logdirty-on" } else { "dm-logdirty-off" })
        }
        fn stop_dm(&self) -> Result<(), XenError> {
            self.op("dm-stop")
        }
        fn cont_dm(&self) -> Result<(), XenError> {
            self.op("dm-cont")
        }
    }

    /// Xen's saver's cleanup order, then libxl's resume: log-dirty off, QEMU's log-dirty off,
    /// QEMU's `cont`, the domain's resume; and nothing of the device model that was not done.
    #[test]
    fn device_model_is_put_back_before_the_resume() {
        let fake = Fake::default();
        fake.shutdown.borrow_mut().extend([None, Some(SHUTDOWN_SUSPEND)]);
        fake.acked.borrow_mut().push_back(true);
        {
            let mut g = DomainGuard::new(&fake);
            g.enable_dm_log_dirty().unwrap();
            g.enable_log_dirty().unwrap();
            g.suspend(LONG, &Interrupt::none(), 1).unwrap();
            g.stop_dm().unwrap();
            g.stop_dm().unwrap(); // once
        }
        assert_eq!(
            fake.actions(),
            [
                "dm-logdirty-on",
                "logdirty-on",
                "request",
                "dm-stop",
                "logdirty-off",
                "dm-logdirty-off",
                "dm-cont",
                "resume"
            ]
        );
        let fake = Fake::default();
        drop(DomainGuard::new(&fake));
        assert!(fake.actions().is_empty());
    }

    /// A failed `xen-set-global-dirty-log` off is not tried again (a second off makes QEMU
    /// abort); a failed `cont` is, and the resume still happens.
    #[test]
    fn device_model_failures() {
        let fake = Fake::default();
        fake.fail.borrow_mut().extend(["dm-logdirty-off", "dm-cont"]);
        let mut g = DomainGuard::new(&fake);
        g.enable_dm_log_dirty().unwrap();
        g.stop_dm().unwrap();
        let e = g.restore().unwrap_err();
        assert!(matches!(e, XenError::Call { call: "dm-logdirty-off", .. }));
        assert!(!g.dm_log_dirty());
        assert!(g.dm_stopped());
        drop(g);
        assert_eq!(fake.actions(), ["dm-logdirty-on", "dm-stop", "dm-logdirty-off", "dm-cont", "dm-cont"]);
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

    const LONG: Duration = Duration::from_secs(30);

    #[test]
    fn suspend_waits_for_the_ack_and_the_suspend_shutdown_then_drop_resumes() {
        let fake = Fake::default();
        // Running at the check, then twice more running (acked on the second look), then
        // shut down with reason suspend.
        fake.shutdown.borrow_mut().extend([None, None, None, Some(SHUTDOWN_SUSPEND)]);
        fake.acked.borrow_mut().extend([false, true]);
        {
            let mut g = DomainGuard::new(&fake);
            let took = g.suspend(LONG, &Interrupt::none(), 7).unwrap();
            assert!(took < LONG);
            assert!(g.is_suspended());
            // A second suspend of a domain this guard holds suspended is a no-op.
            assert_eq!(g.suspend(LONG, &Interrupt::none(), 7).unwrap(), Duration::ZERO);
        }
        assert_eq!(fake.actions(), ["request", "resume"]);
        let calls = fake.calls.borrow();
        assert_eq!(calls.iter().filter(|&&c| c == "acked?").count(), 2, "no more ack polls once acked");
    }

    #[test]
    fn way_out_order_is_log_dirty_off_unpause_resume() {
        let fake = Fake::default();
        fake.shutdown.borrow_mut().extend([None, Some(SHUTDOWN_SUSPEND)]);
        let mut g = DomainGuard::new(&fake);
        g.enable_log_dirty().unwrap();
        g.suspend(LONG, &Interrupt::none(), 7).unwrap();
        g.pause().unwrap();
        g.restore().unwrap();
        g.restore().unwrap(); // idempotent
        drop(g);
        assert_eq!(fake.actions(), ["logdirty-on", "request", "pause", "logdirty-off", "unpause", "resume"]);
    }

    #[test]
    fn a_failing_unpause_still_resumes_and_a_failed_resume_is_retried_by_drop() {
        let fake = Fake::default();
        fake.shutdown.borrow_mut().extend([None, Some(SHUTDOWN_SUSPEND)]);
        fake.fail.borrow_mut().extend(["unpause", "resume"]);
        let mut g = DomainGuard::new(&fake);
        g.suspend(LONG, &Interrupt::none(), 7).unwrap();
        g.pause().unwrap();
        let err = g.restore().unwrap_err();
        assert!(matches!(err, XenError::Call { call: "unpause", .. }));
        assert!(g.is_suspended());
        fake.fail.borrow_mut().clear();
        drop(g);
        assert_eq!(fake.actions(), ["request", "pause", "unpause", "resume", "unpause", "resume"]);
    }

    #[test]
    fn explicit_resume_and_disarm_leave_nothing_to_undo() {
        let fake = Fake::default();
        fake.shutdown.borrow_mut().extend([None, Some(SHUTDOWN_SUSPEND)]);
        let mut g = DomainGuard::new(&fake);
        g.suspend(LONG, &Interrupt::none(), 7).unwrap();
        g.resume().unwrap();
        g.resume().unwrap(); // no-op once resumed
        assert!(!g.is_suspended());
        drop(g);
        assert_eq!(fake.actions(), ["request", "resume"]);

        let fake = Fake::default();
        fake.shutdown.borrow_mut().extend([None, Some(SHUTDOWN_SUSPEND)]);
        let mut g = DomainGuard::new(&fake);
        g.enable_log_dirty().unwrap();
        g.pause().unwrap();
        g.suspend(LONG, &Interrupt::none(), 7).unwrap();
        g.disarm(); // destroyed
        drop(g);
        assert_eq!(fake.actions(), ["logdirty-on", "pause", "request"]);
    }

    #[test]
    fn a_guest_that_never_answers_gets_its_request_withdrawn() {
        let fake = Fake::default();
        fake.cancel_finds_request.set(true);
        let mut g = DomainGuard::new(&fake);
        let err = g.suspend(Duration::from_millis(30), &Interrupt::none(), 7).unwrap_err();
        assert!(matches!(err, XenError::SuspendTimeout { domid: 7, acked: false, waited_ms } if waited_ms >= 30));
        assert!(!g.is_suspended());
        drop(g);
        assert_eq!(fake.actions(), ["request", "cancel"]);
    }

    #[test]
    fn an_interrupt_withdraws_the_request() {
        let fake = Fake::default();
        fake.cancel_finds_request.set(true);
        let interrupt = Interrupt::none();
        interrupt.raise(libc::SIGINT);
        let mut g = DomainGuard::new(&fake);
        let err = g.suspend(LONG, &interrupt, 7).unwrap_err();
        assert!(matches!(err, XenError::Interrupted { signal: libc::SIGINT }));
        drop(g);
        assert_eq!(fake.actions(), ["request", "cancel"]);
    }

    #[test]
    fn a_guest_suspending_after_the_deadline_is_resumed_on_the_way_out() {
        // Acknowledged but slow: the timeout passes, the guest suspends during the grace.
        let fake = Fake::default();
        let mut script = vec![None; 8];
        script.push(Some(SHUTDOWN_SUSPEND));
        fake.shutdown.borrow_mut().extend(script);
        fake.acked.borrow_mut().push_back(true);
        let mut g = DomainGuard::new(&fake);
        let err = g.suspend(Duration::from_millis(10), &Interrupt::none(), 7).unwrap_err();
        assert!(matches!(err, XenError::SuspendTimeout { acked: true, .. }));
        assert!(g.is_suspended(), "held suspended so that the way out resumes it");
        drop(g);
        assert_eq!(fake.actions(), ["request", "resume"]);

        // A last-minute ack found by the cancel: the same grace applies.
        let fake = Fake::default();
        fake.shutdown.borrow_mut().extend([None, None, None, None, None, None, None, Some(SHUTDOWN_SUSPEND)]);
        fake.cancel_finds_request.set(false);
        let mut g = DomainGuard::new(&fake);
        assert!(g.suspend(Duration::from_millis(10), &Interrupt::none(), 7).is_err());
        drop(g);
        assert_eq!(fake.actions(), ["request", "cancel", "resume"]);
    }

    #[test]
    fn suspend_refuses_a_shut_down_domain_and_reports_another_shutdown_reason() {
        let fake = Fake::default();
        fake.shutdown.borrow_mut().push_back(Some(SHUTDOWN_SUSPEND));
        let mut g = DomainGuard::new(&fake);
        assert!(matches!(g.suspend(LONG, &Interrupt::none(), 7), Err(XenError::NotRunning { domid: 7 })));
        drop(g);
        assert!(fake.actions().is_empty(), "nothing requested, nothing resumed");

        let fake = Fake::default();
        fake.shutdown.borrow_mut().extend([None, None, Some(3)]); // crashed meanwhile
        let mut g = DomainGuard::new(&fake);
        let err = g.suspend(LONG, &Interrupt::none(), 7).unwrap_err();
        assert!(matches!(err, XenError::UnexpectedShutdown { domid: 7, reason: 3 }));
        drop(g);
        assert_eq!(fake.actions(), ["request"]);
    }
}
