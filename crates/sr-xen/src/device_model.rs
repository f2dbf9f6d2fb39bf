//! The guest type libxl records for a domain, and the device model (upstream QEMU in dom0) of
//! an x86 HVM domain, driven as libxl drives it around a save:
//!
//! * **log-dirty**: QMP `xen-set-global-dirty-log` (`domain_suspend_switch_qemu_xen_logdirty`
//!   of `tools/libs/light/libxl_dom_save.c`): on before the memory is copied, off after; while
//!   it is on, QEMU reports the guest memory it writes (device DMA) to Xen's log-dirty bitmap.
//!   libxl switches it for HVM only (a PVH domain has no device model).
//! * **the device state**: once the guest is suspended, `stop`, then `add-fd` (the file QEMU
//!   writes, passed over the socket) and `xen-save-devices-state` with
//!   `filename=/dev/fdset/N` and `live` (QEMU 2.11 and later; `libxl__qmp_suspend_save` and
//!   `dm_state_save_to_fdset` of `tools/libs/light/libxl_qmp.c`). The file here is a memfd,
//!   so nothing is left on disk whatever happens to this process; QEMU opens it through its
//!   fdset write-only, so a write-only descriptor of it is what is passed.
//! * **resume**: `cont` before the domain itself is resumed (`libxl__dm_resume`,
//!   `libxl_dom_suspend.c`).
//! * the `EMULATOR_XENSTORE_DATA` payload: the `physmap` entries QEMU keeps under
//!   `/local/domain/0/device-model/<domid>/` (`libxl__save_emulator_xenstore_data`).
//!
//! Each QMP exchange holds libxl's lock of the domain's QMP socket
//! (`/var/lib/xen/userdata-l.<domid>.<uuid>.qmp-socket-lock`, `flock`, as
//! `libxl__ev_qmplock_init` and `libxl__userdata_path`), so it never interleaves with an
//! `xl` command talking to the same QEMU.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek};
use std::os::fd::{AsFd, AsRawFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::error::XenError;
use crate::ffi::{DomainInfo, XenStore};
use crate::qmp::Qmp;

/// Xen's run directory (`XEN_RUN_DIR`, `config/Paths.mk.in`), where libxl has QEMU listen for
/// QMP (`qmp-libxl-<domid>`).
pub const XEN_RUN_DIR: &str = "/var/run/xen";

/// Xen's library directory (`XEN_LIB_DIR`), where libxl keeps its per-domain lock files.
pub const XEN_LIB_DIR: &str = "/var/lib/xen";

/// How long one QMP command may take (libxl gives `xen-set-global-dirty-log` 10 s).
pub const QMP_TIMEOUT: Duration = Duration::from_secs(10);

/// How long QEMU may take to write its device state (a few KiB to a few MiB).
pub const DEVICE_STATE_TIMEOUT: Duration = Duration::from_secs(60);

/// The largest device state accepted from QEMU (it is held in memory and written as one
/// libxl record).
pub const MAX_DEVICE_STATE: u64 = 64 << 20;

/// The type libxl gave the domain (`libxl__domain_type` of `tools/libs/light/libxl_dom.c`:
/// PV without `XEN_DOMINF_hvm_guest`, else `/libxl/<domid>/type`, HVM when absent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestType {
    /// x86 PV.
    Pv,
    /// x86 PVH: an HVM container without device model.
    Pvh,
    /// x86 HVM, with a device model.
    Hvm,
}

impl GuestType {
    /// libxl's name: `pv`, `pvh`, `hvm`.
    pub fn name(self) -> &'static str {
        match self {
            GuestType::Pv => "pv",
            GuestType::Pvh => "pvh",
            GuestType::Hvm => "hvm",
        }
    }
}

/// The domain's type as libxl decides it.
pub(crate) fn guest_type(xs: &XenStore, info: &DomainInfo) -> GuestType {
    if !info.hvm {
        return GuestType::Pv;
    }
    match xs.read(&format!("/libxl/{}/type", info.domid)).as_deref() {
        Some("pvh") => GuestType::Pvh,
        Some("pv") => GuestType::Pv,
        _ => GuestType::Hvm,
    }
}

/// libxl's `LIBXL_UUID_FMT` of a domain handle: `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`.
pub(crate) fn uuid_string(handle: &[u8; 16]) -> String {
    let hex: Vec<String> = handle.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        hex[0..4].concat(),
        hex[4..6].concat(),
        hex[6..8].concat(),
        hex[8..10].concat(),
        hex[10..16].concat()
    )
}

/// An HVM domain's QEMU (upstream, in dom0).
#[derive(Debug, Clone)]
pub(crate) struct DeviceModel {
    domid: u32,
    socket: PathBuf,
    lock: PathBuf,
}

impl DeviceModel {
    /// The device model of an HVM domain; `None` for PV and PVH domains (libxl drives none).
    ///
    /// Errors: [`XenError::Unsupported`] for a device model this saver does not drive
    /// (qemu-traditional, or QEMU in a stub domain).
    pub(crate) fn find(xs: &XenStore, info: &DomainInfo) -> Result<Option<Self>, XenError> {
        let domid = info.domid;
        if guest_type(xs, info) != GuestType::Hvm {
            return Ok(None);
        }
        match xs.read(&format!("/libxl/{domid}/dm-version")).as_deref() {
            Some("qemu_xen") => {}
            // libxl__device_model_version_running: no node means qemu-traditional.
            None | Some("qemu_xen_traditional") => {
                return Err(XenError::Unsupported {
                    domid,
                    what: "its device model is qemu-traditional (no QMP `xen-save-devices-state`): xsr saves HVM \
                           domains whose device model is upstream QEMU (device_model_version = \"qemu-xen\")"
                        .into(),
                });
            }
            Some(other) => {
                return Err(XenError::Unsupported {
                    domid,
                    what: format!("unknown device model version {other:?} in /libxl/{domid}/dm-version"),
                });
            }
        }
        if let Some(stub) = xs.read(&format!("/local/domain/{domid}/image/device-model-domid")) {
            return Err(XenError::Unsupported {
                domid,
                what: format!(
                    "its device model runs in stub domain {stub}: xsr drives a device model in dom0 only (its QMP \
                     socket and device-state file are dom0's)"
                ),
            });
        }
        Ok(Some(Self {
            domid,
            socket: PathBuf::from(format!("{XEN_RUN_DIR}/qmp-libxl-{domid}")),
            lock: PathBuf::from(format!(
                "{XEN_LIB_DIR}/userdata-l.{domid}.{}.qmp-socket-lock",
                uuid_string(&info.handle)
            )),
        }))
    }

    /// Takes libxl's QMP lock (waiting at most [`QMP_TIMEOUT`]) and opens a session whose
    /// reads wait at most `timeout`.
    fn session(&self, timeout: Duration) -> Result<(File, Qmp), XenError> {
        let lock =
            OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&self.lock).map_err(|e| {
                XenError::Qmp {
                    domid: self.domid,
                    command: "lock",
                    detail: format!("cannot open libxl's QMP lock {}: {e}", self.lock.display()),
                }
            })?;
        let start = Instant::now();
        loop {
            match lock.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) if start.elapsed() < QMP_TIMEOUT => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => {
                    return Err(XenError::Qmp {
                        domid: self.domid,
                        command: "lock",
                        detail: format!("cannot lock {} (held by another toolstack call?): {e}", self.lock.display()),
                    });
                }
            }
        }
        let qmp = Qmp::connect(self.domid, &self.socket, timeout)?;
        Ok((lock, qmp))
    }

    /// `xen-set-global-dirty-log` with `enable`; `sent` is called once QEMU has the whole
    /// command (it acts on it even if this process dies before the answer).
    pub(crate) fn set_log_dirty(&self, enable: bool, sent: impl FnOnce()) -> Result<(), XenError> {
        let (_lock, mut qmp) = self.session(QMP_TIMEOUT)?;
        let id = qmp.send("xen-set-global-dirty-log", Some(json!({ "enable": enable })))?;
        sent();
        qmp.wait("xen-set-global-dirty-log", id).map(drop)
    }

    /// `stop`: QEMU's vcpus and devices stop (its emulated devices no longer touch guest
    /// memory).
    pub(crate) fn stop(&self) -> Result<(), XenError> {
        let (_lock, mut qmp) = self.session(QMP_TIMEOUT)?;
        qmp.execute("stop", None).map(drop)
    }

    /// `cont`: QEMU runs again.
    pub(crate) fn cont(&self) -> Result<(), XenError> {
        let (_lock, mut qmp) = self.session(QMP_TIMEOUT)?;
        qmp.execute("cont", None).map(drop)
    }

    /// `query-status`: QEMU's run state (`running`, `paused`, `save-vm`, ...).
    pub(crate) fn status(&self) -> Result<String, XenError> {
        let (_lock, mut qmp) = self.session(QMP_TIMEOUT)?;
        let r = qmp.execute("query-status", None)?;
        r.get("status").and_then(|s| s.as_str()).map(str::to_string).ok_or_else(|| XenError::Qmp {
            domid: self.domid,
            command: "query-status",
            detail: format!("no status in {r}"),
        })
    }

    /// QEMU's device state, as libxl saves it into the EMULATOR_CONTEXT record: `add-fd` of a
    /// write-only descriptor of a memfd, `xen-save-devices-state` into `/dev/fdset/N` (with
    /// `live` from QEMU 2.11 on), `remove-fd`, then the memfd's contents. QEMU must be stopped
    /// ([`stop`](Self::stop)) first, so that it does not start again afterwards.
    ///
    /// Errors: [`XenError::Qmp`]; a state larger than [`MAX_DEVICE_STATE`] or empty.
    pub(crate) fn save_state(&self, live: bool) -> Result<Vec<u8>, XenError> {
        let fail = |detail: String| XenError::Qmp { domid: self.domid, command: "xen-save-devices-state", detail };
        let memfd = rustix::fs::memfd_create("xsr-device-state", rustix::fs::MemfdFlags::CLOEXEC)
            .map_err(|e| fail(format!("memfd_create: {e}")))?;
        let mut state = File::from(memfd);
        // QEMU takes a descriptor from the fdset whose access mode matches its open
        // (O_WRONLY): a write-only reopen of the same memfd.
        let writer = OpenOptions::new()
            .write(true)
            .open(format!("/proc/self/fd/{}", state.as_raw_fd()))
            .map_err(|e| fail(format!("reopening the memfd write-only: {e}")))?;
        let (_lock, mut qmp) = self.session(DEVICE_STATE_TIMEOUT)?;
        let added = qmp.execute_with_fd("add-fd", None, writer.as_fd())?;
        drop(writer);
        let fdset = added.get("fdset-id").and_then(serde_json::Value::as_u64).ok_or_else(|| XenError::Qmp {
            domid: self.domid,
            command: "add-fd",
            detail: format!("no fdset-id in {added}"),
        })?;
        let mut args = json!({ "filename": format!("/dev/fdset/{fdset}") });
        if qmp.version() >= (2, 11, 0) {
            args["live"] = json!(live);
        }
        let saved = qmp.execute("xen-save-devices-state", Some(args));
        // QEMU closes the fdset once its monitor disconnects anyway; removing it says so now.
        let _ = qmp.execute("remove-fd", Some(json!({ "fdset-id": fdset })));
        saved?;
        let len = state.seek(std::io::SeekFrom::End(0)).map_err(|e| fail(format!("memfd: {e}")))?;
        if len == 0 || len > MAX_DEVICE_STATE {
            return Err(fail(format!("QEMU wrote {len} bytes of device state (1..={MAX_DEVICE_STATE} expected)")));
        }
        state.rewind().map_err(|e| fail(format!("memfd: {e}")))?;
        let mut out = Vec::with_capacity(len as usize);
        state.read_to_end(&mut out).map_err(|e| fail(format!("reading the memfd: {e}")))?;
        Ok(out)
    }

    /// The EMULATOR_XENSTORE_DATA payload (after the emulator header): for each entry under
    /// `/local/domain/0/device-model/<domid>/physmap`, its `start_addr`, `size` and `name` as
    /// NUL-terminated relative key and value strings; empty when there is no entry (libxl then
    /// writes no record).
    ///
    /// Errors: [`XenError::Layout`] for an entry missing a key (libxl fails the save too).
    pub(crate) fn xenstore_data(&self, xs: &XenStore) -> Result<Vec<u8>, XenError> {
        let root = format!("/local/domain/0/device-model/{}", self.domid);
        let mut out = Vec::new();
        for entry in xs.directory(&format!("{root}/physmap")) {
            for key in ["start_addr", "size", "name"] {
                let rel = format!("physmap/{entry}/{key}");
                let value = xs.read(&format!("{root}/{rel}")).ok_or(XenError::Layout {
                    what: "device-model physmap entry without start_addr/size/name",
                    value: 0,
                })?;
                out.extend_from_slice(rel.as_bytes());
                out.push(0);
                out.extend_from_slice(value.as_bytes());
                out.push(0);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_is_libxl_formatted() {
        let h = [0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef];
        assert_eq!(uuid_string(&h), "12345678-9abc-def0-0123-456789abcdef");
    }
}
