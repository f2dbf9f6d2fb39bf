//! What the Xen commands (`dump`, `save --domain`, `send --domain`) share in every build:
//! their options exist whether or not this xsr was built with Xen support, so that a build
//! without it answers with what is missing rather than "unrecognized subcommand"; and the
//! check that this host is a Xen dom0, made before Xen's libraries are called (which would
//! print their own messages on standard error).

use std::path::Path;

/// Output format of `dump`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DumpFormat {
    /// Sparse raw image: pfn p at byte p << 12.
    Raw,
    /// ELF64 core: NT_PRSTATUS and QEMU notes per vcpu, one PT_LOAD per run of populated pfns
    /// (as `extract` writes it).
    Elf,
    /// LiME: one range per run of populated pfns.
    Lime,
    /// A restorable `xl` save file (x86 PV): what `xsr save --domain --keep-running` writes.
    /// A PV guest is restorable only from its suspend path, so the guest is suspended
    /// cooperatively (not paused) for the final pass, then resumed.
    Stream,
}

/// A Xen command in an xsr built without the `xen` feature.
#[derive(Debug, thiserror::Error)]
#[error("{what}: this xsr was built without Xen support (cargo build --features xen)")]
pub struct XenUnavailable {
    /// The command or option asked for ("dump", "--domain"); the message is printed after
    /// "xsr: ".
    pub what: String,
}

/// This host cannot run the Xen commands: it is not a Xen dom0, or this process may not use
/// the hypervisor.
#[derive(Debug, thiserror::Error)]
#[error("this host is not a usable Xen dom0: {why}")]
pub struct NotDom0 {
    /// What is missing or refused.
    pub why: String,
}

/// The privileged hypercall device of a dom0 (Linux's `xen-privcmd`).
pub const PRIVCMD: &str = "/dev/xen/privcmd";

/// Checks that this host is a Xen dom0 this process may use: `/proc/xen/capabilities` says
/// `control_d` (when xenfs is mounted), and [`PRIVCMD`] exists and opens for reading and
/// writing. One clear line instead of what libxencall prints when it cannot open it.
pub fn check_host() -> Result<(), NotDom0> {
    check_host_at(Path::new(PRIVCMD), Path::new("/proc/xen/capabilities"))
}

fn check_host_at(privcmd: &Path, capabilities: &Path) -> Result<(), NotDom0> {
    if !privcmd.exists() {
        let why = if Path::new("/proc/xen").exists() || Path::new("/sys/hypervisor/type").exists() {
            format!("{} is missing (is the xen-privcmd module loaded?)", privcmd.display())
        } else {
            format!(
                "{} is missing (xsr dump, save --domain and send --domain run in dom0 of a Xen host)",
                privcmd.display()
            )
        };
        return Err(NotDom0 { why });
    }
    if let Ok(caps) = std::fs::read_to_string(capabilities)
        && !caps.split_whitespace().any(|c| c == "control_d")
    {
        return Err(NotDom0 {
            why: format!("{} does not say control_d: this is a guest (domU), not dom0", capabilities.display()),
        });
    }
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(privcmd)
        .map(drop)
        .map_err(|e| NotDom0 { why: format!("cannot open {}: {e} (run as root in dom0)", privcmd.display()) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_without_privcmd_or_with_a_domu_capability_is_refused_in_one_line() {
        let dir = tempfile::tempdir().unwrap();
        let privcmd = dir.path().join("privcmd");
        let caps = dir.path().join("capabilities");
        let e = check_host_at(&privcmd, &caps).unwrap_err().to_string();
        assert!(e.starts_with("this host is not a usable Xen dom0: ") && e.contains("is missing"), "{e}");
        std::fs::write(&privcmd, b"").unwrap();
        std::fs::write(&caps, b"").unwrap();
        let e = check_host_at(&privcmd, &caps).unwrap_err().to_string();
        assert!(e.contains("not dom0"), "{e}");
        std::fs::write(&caps, b"control_d\n").unwrap();
        check_host_at(&privcmd, &caps).unwrap();
        assert!(!e.contains('\n'));
    }
}
