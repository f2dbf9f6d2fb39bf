//! What a command's exit status says. One table for every command:
//!
//! | status | meaning |
//! |---|---|
//! | 0 | success: the command did what it was asked, and its answer is "yes" (valid, identical, matched) |
//! | 1 | the answer "no" about an input that was read whole: the stream is invalid (`inspect`, `verify`, `restore`, `extract`, `receive`, `save`, `send`), the guests differ (`diff`, `demo`), nothing matched (`grep`) |
//! | 2 | anything else: usage, an input that cannot be read, an output that exists or cannot be written (a full disk), a bound reached (`--max-memory`, `--max-span`), Xen unavailable, a signal's clean-up aside |
//!
//! `send` exits with the receiver's own code. For the commands whose answer is not about
//! validity (`diff`, `grep`, `read`, `demo`, `dump`), an input that is not a valid stream is
//! an error (2): "different" or "no match" would be a wrong answer about it.

use sr_restore::RestoreError;

use crate::transfer::ReceiverFailed;

/// The commands, as far as their exit codes go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Command {
    Inspect,
    Verify,
    Restore,
    Extract,
    Dump,
    Save,
    Demo,
    Send,
    Read,
    Grep,
    Diff,
    Receive,
}

/// The general table, for `xsr --help`.
pub const EXIT_TABLE: &str = "\
Exit status (every command):
  0  success: done, or the answer is yes (valid, identical, matched)
  1  the answer is no about an input read whole: invalid stream (inspect, verify,
     restore, extract, receive, save, send), the guests differ (diff, demo),
     nothing matched (grep)
  2  anything else: usage, an input that cannot be read, an output that exists or
     cannot be written (a full disk), a bound reached (--max-memory, --max-span),
     Xen unavailable; diff, grep and read also exit 2 on an input that is not a
     valid stream
  A command interrupted by SIGINT, SIGTERM or SIGHUP removes its partial output and
  dies of the signal (the Xen commands put the domain back and exit 2).";

impl Command {
    /// Whether exit 1 is this command's answer "the input is invalid".
    pub fn answers_validity(self) -> bool {
        matches!(
            self,
            Command::Inspect
                | Command::Verify
                | Command::Restore
                | Command::Extract
                | Command::Receive
                | Command::Save
                | Command::Send
        )
    }

    /// This command's row of the exit-code table, for its `--help`.
    pub fn exit_codes(self) -> &'static str {
        match self {
            Command::Inspect => {
                "Exit status: 0 the whole stream was listed; 1 the stream is invalid (the listing stops at the \
                 error, which is shown); 2 usage or I/O error."
            }
            Command::Verify => "Exit status: 0 valid; 1 invalid; 2 usage or I/O error.",
            Command::Restore | Command::Extract => {
                "Exit status: 0 written; 1 the stream is invalid (a rule broken, truncated); 2 usage, I/O error, \
                 an existing output (without --force), a full disk, a bound reached (--max-memory, --max-span)."
            }
            Command::Receive => {
                "Exit status: 0 received and committed; 1 the stream is invalid; 2 usage, I/O or transport error, \
                 an existing output (without --force), a full disk, a bound reached, a timeout. The sender is \
                 told the same code."
            }
            Command::Save => {
                "Exit status: 0 written; 1 restore would reject the domain (nothing is written); 2 usage, I/O \
                 error, an existing output (without --force), a full disk, Xen unavailable."
            }
            Command::Send => {
                "Exit status: 0 the receiver committed the transfer; otherwise the receiver's code (1 it found the \
                 stream invalid, 2 its I/O error or bound), or 2 for a local or transport error or a timeout."
            }
            Command::Demo => "Exit status: 0 the restored guest equals the source; 1 it differs; 2 error.",
            Command::Dump => {
                "Exit status: 0 written; 2 usage, Xen or I/O error, an existing output (without --force), a full \
                 disk, Xen unavailable (the domain is left as found)."
            }
            Command::Read => {
                "Exit status: 0 read; 2 usage or I/O error, an address that is not populated or mapped (see \
                 --zeros), an input that is not a valid stream."
            }
            Command::Grep => {
                "Exit status: 0 something matched; 1 nothing matched; 2 usage or I/O error, an input that is not \
                 a valid stream."
            }
            Command::Diff => {
                "Exit status: 0 identical; 1 different; 2 usage or I/O error, an input that is not a valid stream."
            }
        }
    }
}

/// What kind of failure an error is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The input stream (or the domain to save) breaks a rule, or ends early.
    Invalid,
    /// Usage, I/O, resources, bounds, Xen.
    Error,
    /// The receiver of a transfer failed with this code.
    Receiver(u8),
}

/// Whether a restore error means the stream itself is invalid (as opposed to a transport or
/// destination failure, or a bound of the destination). A stream that ends early is invalid
/// whatever carried it.
pub fn is_invalid(e: &RestoreError) -> bool {
    match e {
        RestoreError::Format(f) => format_is_invalid(f),
        // A bound of the destination (--max-memory, --max-span): the stream may be valid.
        RestoreError::BoundReached { .. } => false,
        // The destination failed (a full disk, an allocation; a Xen domain refusing what
        // passed every rule).
        RestoreError::Memory { .. } | RestoreError::Target { .. } => false,
        RestoreError::NoConsistentCheckpoint { source } | RestoreError::BrokeAfterCheckpoint { source, .. } => {
            is_invalid(source)
        }
        _ => true,
    }
}

fn format_is_invalid(e: &sr_format::Error) -> bool {
    !matches!(e, sr_format::Error::Io { .. })
}

/// The kind of failure `e` is: the first cause in its chain that says.
pub fn classify(e: &anyhow::Error) -> Failure {
    for cause in e.chain() {
        if let Some(f) = cause.downcast_ref::<ReceiverFailed>() {
            return Failure::Receiver(f.code);
        }
        if let Some(r) = cause.downcast_ref::<RestoreError>() {
            return if is_invalid(r) { Failure::Invalid } else { Failure::Error };
        }
        if let Some(f) = cause.downcast_ref::<sr_format::Error>() {
            return if format_is_invalid(f) { Failure::Invalid } else { Failure::Error };
        }
        // The page index of a stream (extract, read, grep, diff).
        if let Some(i) = cause.downcast_ref::<sr_image::IndexError>() {
            use sr_image::IndexError as I;
            return match i {
                I::Format(f) if format_is_invalid(f) => Failure::Invalid,
                I::Incomplete { .. } | I::PfnOutOfRange { .. } | I::OffsetTooLarge { .. } => Failure::Invalid,
                // Bounds of the index, and I/O.
                _ => Failure::Error,
            };
        }
        // The save helper of `xsr restore --domain` failed: a stream rule (1) or Xen (2).
        #[cfg(feature = "xen")]
        if let Some(h) = cause.downcast_ref::<crate::cmd::restore_domain::HelperFailed>() {
            return if h.invalid_stream { Failure::Invalid } else { Failure::Error };
        }
        // A save that refuses because restore would reject the domain: the domain is invalid.
        if let Some(sr_save::SaveError::Rejected(_) | sr_save::SaveError::RejectedRecord { .. }) =
            cause.downcast_ref::<sr_save::SaveError>()
        {
            return Failure::Invalid;
        }
        if cause.downcast_ref::<sr_save::SaveError>().is_some() {
            return Failure::Error;
        }
        if cause.downcast_ref::<std::io::Error>().is_some() {
            return Failure::Error;
        }
    }
    Failure::Error
}

/// The exit code for `command` failing with `e` (see the [module documentation](self)).
pub fn exit_code(e: &anyhow::Error, command: Command) -> u8 {
    match classify(e) {
        Failure::Receiver(code) => code,
        Failure::Invalid if command.answers_validity() => 1,
        Failure::Invalid | Failure::Error => 2,
    }
}

/// The byte offset an error names in the stream, if it is a stream error.
pub fn offset(e: &anyhow::Error) -> Option<u64> {
    for cause in e.chain() {
        if let Some(r) = cause.downcast_ref::<RestoreError>() {
            return Some(r.offset());
        }
        if let Some(f) = cause.downcast_ref::<sr_format::Error>() {
            return Some(f.offset());
        }
        // The page index of a stream (read, grep, diff, extract).
        if let Some(i) = cause.downcast_ref::<sr_image::IndexError>() {
            return Some(i.offset());
        }
    }
    None
}

/// The JSON object a command given `--json` prints when it fails:
/// `{"error": MESSAGE, "error_offset": N, "exit_code": N}`, `"error_offset"` only when the
/// error names a byte of the stream. The same three fields as in `verify --json` and
/// `inspect --json` reports.
pub fn json_error(e: &anyhow::Error, code: u8) -> serde_json::Value {
    let mut v = serde_json::json!({ "error": render(e) });
    if let Some(offset) = offset(e) {
        v["error_offset"] = offset.into();
    }
    v["exit_code"] = code.into();
    v
}

/// The JSON error object of a usage error (exit 2), in the shape of [`json_error`]: clap's
/// message on one line, naming the arguments it is about (for a missing one, each missing
/// argument), which are also listed under `"arguments"`.
pub fn usage_json_error(e: &clap::Error) -> serde_json::Value {
    use clap::error::{ContextKind, ContextValue};
    let arguments: Vec<String> = match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(a)) => vec![a.clone()],
        Some(ContextValue::Strings(a)) => a.clone(),
        _ => Vec::new(),
    };
    let text = e.to_string();
    let first = text.lines().next().unwrap_or_default().trim_start_matches("error: ").trim();
    let mut message = if first.is_empty() {
        e.kind().as_str().unwrap_or("usage error").to_string()
    } else {
        first.trim_end_matches(':').to_string()
    };
    // clap's first line ends with a colon when the arguments follow on lines of their own.
    if !arguments.is_empty() && !arguments.iter().any(|a| message.contains(a.as_str())) {
        message = format!("{message}: {}", arguments.join(", "));
    }
    let mut v = serde_json::json!({ "error": message, "exit_code": 2 });
    if !arguments.is_empty() {
        v["arguments"] = arguments.into();
    }
    v
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_rendered_once_per_cause() {
        let io = std::io::Error::new(std::io::ErrorKind::StorageFull, "No space left on device (os error 28)");
        let e = anyhow::Error::new(io).context("pwrite at pfn 0x0 failed: No space left on device (os error 28)");
        let e = e.context("restore of x failed");
        assert_eq!(render(&e), "restore of x failed: pwrite at pfn 0x0 failed: No space left on device (os error 28)");
        assert_eq!(exit_code(&e, Command::Restore), 2);
    }

    #[test]
    fn invalid_is_one_only_where_it_is_the_answer() {
        let e = anyhow::Error::new(sr_format::Error::Truncated { offset: 0, needed: 8, got: 0, what: "x" });
        assert_eq!(exit_code(&e, Command::Extract), 1);
        assert_eq!(exit_code(&e, Command::Diff), 2);
        assert_eq!(exit_code(&e, Command::Grep), 2);
        assert_eq!(exit_code(&e, Command::Read), 2);
    }
}
