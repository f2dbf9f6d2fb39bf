//! What a failed command's exit status says: 1 for a stream that is invalid (a rule broken,
//! a bound hit, a truncated stream), 2 for usage and I/O problems, the receiver's own code
//! for a transfer it refused.

use sr_restore::RestoreError;

use crate::transfer::ReceiverFailed;

/// Whether a restore error means the stream itself is invalid (as opposed to a transport or
/// destination failure). A stream that ends early is invalid whatever carried it.
pub fn is_invalid(e: &RestoreError) -> bool {
    match e {
        RestoreError::Format(sr_format::Error::Io { .. }) => false,
        // The destination (a Xen domain) failed to apply what passed every rule.
        RestoreError::Target { .. } => false,
        RestoreError::NoConsistentCheckpoint { source } | RestoreError::BrokeAfterCheckpoint { source, .. } => {
            is_invalid(source)
        }
        _ => true,
    }
}

/// The exit code for a command that failed with `e`.
pub fn exit_code(e: &anyhow::Error) -> u8 {
    for cause in e.chain() {
        if let Some(f) = cause.downcast_ref::<ReceiverFailed>() {
            return f.code;
        }
        if let Some(r) = cause.downcast_ref::<RestoreError>() {
            return if is_invalid(r) { 1 } else { 2 };
        }
        // The page index of a stream (extract): a stream problem or a bound, unless I/O.
        if let Some(i) = cause.downcast_ref::<sr_image::IndexError>() {
            return if matches!(i, sr_image::IndexError::Format(sr_format::Error::Io { .. })) { 2 } else { 1 };
        }
        // The save helper of `xsr restore --domain` failed: a stream rule (1) or Xen (2).
        #[cfg(feature = "xen")]
        if let Some(h) = cause.downcast_ref::<crate::cmd::restore_domain::HelperFailed>() {
            return if h.invalid_stream { 1 } else { 2 };
        }
        // A save that refuses because restore would reject the domain: the domain is invalid.
        if let Some(sr_save::SaveError::Rejected(_) | sr_save::SaveError::RejectedRecord { .. }) =
            cause.downcast_ref::<sr_save::SaveError>()
        {
            return 1;
        }
    }
    2
}

/// Whether `e` is a write to an output whose reader has gone (EPIPE).
pub fn is_closed_output(e: &anyhow::Error) -> bool {
    use std::io::ErrorKind::BrokenPipe;
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == BrokenPipe)
            // serde_json keeps the io::Error inside, not as a source.
            || c.downcast_ref::<serde_json::Error>().is_some_and(|j| j.io_error_kind() == Some(BrokenPipe))
    })
}

/// The error and its causes on one line, each message once: a cause whose text its parent
/// already includes (a `Display` that embeds its source) is not repeated.
pub fn render(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}
