//! The crate's error type.

/// Everything that can go wrong talking to a running Xen domain.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum XenError {
    /// A libxenctrl / libxenforeignmemory / libxenstore call failed.
    #[error("{call} failed: {}", std::io::Error::from_raw_os_error(*errno))]
    Call {
        /// The library function.
        call: &'static str,
        /// Its errno.
        errno: i32,
    },
    /// A libxl call failed with libxl error code `rc` (`ERROR_*` of `_libxl_types.h`: -3
    /// `ERROR_FAIL`, -6 `ERROR_INVAL`, ...; libxl has logged the details on standard error).
    #[error("{call} failed: libxl error {rc}")]
    Libxl {
        /// The library function.
        call: &'static str,
        /// Its return code.
        rc: i32,
    },
    /// A save of a domain that is not x86 PV (HVM and PVH guests need the device model's
    /// state and the HVM context, which this saver does not gather).
    #[error("domain {domid} is HVM or PVH: xsr saves running x86 PV domains only")]
    NotPv {
        /// The domain.
        domid: u32,
    },
    /// No domain with this id or name.
    #[error("no domain {domain}")]
    NoSuchDomain {
        /// The id or name asked for.
        domain: String,
    },
    /// The domain is shutting down or dying.
    #[error("domain {domid} is shut down or dying")]
    NotRunning {
        /// The domain id.
        domid: u32,
    },
    /// A value read from the guest or the hypervisor is out of the range this backend accepts
    /// (a hostile or corrupt p2m, frame list, shared info or bitmap size).
    #[error("{what}: {value:#x} out of range")]
    Layout {
        /// What the value is.
        what: &'static str,
        /// The value.
        value: u64,
    },
    /// A guest page table on the way to the p2m has an entry that is not present or maps a
    /// superpage (`level` 4..1, `index` in the table, `pte` its value).
    #[error("p2m page-table walk: level {level} entry {index} is {pte:#x} (not a present 4 KiB mapping)")]
    P2mWalk {
        /// Page-table level (4 = top).
        level: u32,
        /// Entry index.
        index: usize,
        /// The entry.
        pte: u64,
    },
    /// A frame the walk needs (shared info, frame list, p2m page) could not be mapped.
    #[error("cannot map {what} frame {frame:#x}: {}", std::io::Error::from_raw_os_error(*errno))]
    Frame {
        /// Which structure.
        what: &'static str,
        /// The frame.
        frame: u64,
        /// The per-frame errno of the mapping.
        errno: i32,
    },
    /// Guest width this backend does not handle.
    #[error("unsupported PV guest width {width} (64-bit PV guests are supported)")]
    Width {
        /// Bytes per guest word.
        width: u32,
    },
    /// The guest's p2m changed while it was read (p2m_generation moved).
    #[error("the guest's p2m changed while it was read (generation {before} -> {after})")]
    P2mChanged {
        /// Generation before.
        before: u64,
        /// Generation after.
        after: u64,
    },
    /// The guest did not suspend within the time given (`acked`: it had acknowledged the
    /// request in `control/shutdown`).
    #[error("domain {domid} did not suspend within {waited_ms} ms (the guest {})", if *acked { "acknowledged the request" } else { "did not acknowledge the request, which was withdrawn" })]
    SuspendTimeout {
        /// The domain id.
        domid: u32,
        /// Whether the guest had acknowledged the request.
        acked: bool,
        /// Milliseconds waited.
        waited_ms: u64,
    },
    /// The domain shut down with another reason than suspend while it was asked to suspend
    /// (`SHUTDOWN_*` of `xen/include/public/sched.h`: 0 poweroff, 1 reboot, 3 crash, ...).
    #[error("domain {domid} shut down with reason {reason} instead of suspending")]
    UnexpectedShutdown {
        /// The domain id.
        domid: u32,
        /// The shutdown reason.
        reason: u32,
    },
    /// The domain is paused, so its guest cannot answer a suspend request.
    #[error("domain {domid} is paused: a paused guest cannot answer a suspend request")]
    Paused {
        /// The domain id.
        domid: u32,
    },
    /// SIGINT or SIGTERM arrived; the domain was (or is being) put back as found.
    #[error("interrupted by signal {signal}")]
    Interrupted {
        /// The signal number.
        signal: i32,
    },
    /// The device model (QEMU) of an HVM domain refused a QMP command, or the conversation
    /// with it failed (`command` is the QMP command, `detail` QEMU's error class and
    /// description, or what went wrong on the socket).
    #[error("device model of domain {domid}: QMP {command}: {detail}")]
    Qmp {
        /// The domain.
        domid: u32,
        /// The QMP command.
        command: &'static str,
        /// QEMU's answer or the failure.
        detail: String,
    },
    /// Something this saver does not drive, said in words (a device model other than upstream
    /// QEMU in dom0, a guest that asks to be suspended through an event channel, a 32-bit PV
    /// guest).
    #[error("domain {domid}: {what}")]
    Unsupported {
        /// The domain.
        domid: u32,
        /// What and why.
        what: String,
    },
    /// A callback of the toolstack that runs this process as its save helper (libxl's
    /// `suspend` or `switch_qemu_logdirty`) failed or did not answer.
    #[error("domain {domid}: the toolstack's {callback} callback: {detail}")]
    Toolstack {
        /// The domain.
        domid: u32,
        /// The callback (`suspend`, `switch_qemu_logdirty`).
        callback: &'static str,
        /// What it answered, or why there was no answer.
        detail: String,
    },
}

impl XenError {
    /// Whether Xen answered "not supported" (`EOPNOTSUPP`), e.g. log-dirty mode for a PV guest
    /// on a hypervisor built without shadow paging (`CONFIG_SHADOW_PAGING=n`, as Debian's 4.17).
    pub fn is_unsupported(&self) -> bool {
        matches!(self, XenError::Call { errno, .. } if *errno == libc::EOPNOTSUPP)
    }
}

impl From<XenError> for sr_memory::MemoryError {
    fn from(e: XenError) -> Self {
        sr_memory::MemoryError::Backend(e.to_string())
    }
}
