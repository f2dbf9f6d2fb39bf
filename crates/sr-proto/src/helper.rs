//! libxl's save/restore helper: its command line and its message protocol.
//!
//! libxl does the memory and CPU half of `xl save`, `xl restore` and `xl migrate` in a child
//! process: `libxl-save-helper`, or whatever `$LIBXL_SAVE_HELPER` names
//! (`run_helper` in `tools/libs/light/libxl_save_callout.c`). It passes the stream's file
//! descriptor and the domain's parameters as decimal arguments ([`HelperArgs`]), and the two
//! sides talk over the helper's standard input and output:
//!
//! * **helper -> libxl** (the helper's stdout): [`HelperMessage`]s, each a frame of a `u16`
//!   body length in host byte order and a body of that many bytes (at most
//!   [`MAX_BODY`]): a `u16` message number, then the arguments in host layout (`int`,
//!   `unsigned` and `uint32_t` 4 bytes, `unsigned long` and `xen_pfn_t` 8 bytes on x86-64; a
//!   STRING is a `u32` length counting its NUL, then the bytes and the NUL). The message
//!   numbers and argument lists are the table of `tools/libs/light/libxl_save_msgs_gen.pl`
//!   (unchanged from Xen 4.15 to 4.22), encoded there by the generated `helper_stub_*`
//!   functions and decoded by `libxl__srm_callout_received_{save,restore}`, which refuse a
//!   body with bytes left over, a short one, an unknown number and a STRING without its NUL.
//! * **libxl -> helper** (the helper's stdin): one host `int` ([`REPLY_LEN`] bytes) answering
//!   each message that waits for a reply ([`HelperMessage::wants_reply`]):
//!   `libxl__srm_callout_sendreply`, read by `helper_getreply` in `libxl_save_helper.c`.
//!
//! Anything else on the helper's stdout corrupts the channel; its stderr is libxl's.
//!
//! Everything here is pure: encoding and decoding over bytes and [`std::io`], tested without
//! Xen. The layout is x86-64 Linux's (little-endian, LP64), the only host Xen's helper and
//! this crate's users run on; [`HelperMessage::encode`] writes little-endian values, which is
//! host order there.

use std::ffi::{OsStr, OsString};
use std::io::{self, Read, Write};

/// The largest message body: libxl's `helper_transmitmsg` asserts a length below 64 KiB and
/// sends it as a `u16`.
pub const MAX_BODY: usize = 0xffff;
/// Bytes of a reply: one host `int`.
pub const REPLY_LEN: usize = 4;

/// `XGR_SDD_MISSING_CPUID` (`tools/include/xenguest.h`): the stream had no CPUID policy, so
/// libxl applies its legacy one in its `static_data_done` callback.
pub const SDD_MISSING_CPUID: u32 = 1 << 0;
/// `XGR_SDD_MISSING_MSR`: the stream had no MSR policy.
pub const SDD_MISSING_MSR: u32 = 1 << 1;

/// `xentoollog_level` values (`tools/include/xentoollog.h`) for [`HelperMessage::Log`].
pub mod level {
    /// `XTL_DEBUG`.
    pub const DEBUG: u32 = 1;
    /// `XTL_INFO`.
    pub const INFO: u32 = 5;
    /// `XTL_WARN`.
    pub const WARN: u32 = 7;
    /// `XTL_ERROR`.
    pub const ERROR: u32 = 8;
}

/// `xc_stream_type_t` of `tools/include/xenguest.h`: the last argument of both modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StreamType {
    /// `XC_STREAM_PLAIN` (0): one consistent state, ended by END.
    Plain,
    /// `XC_STREAM_REMUS` (1): checkpoints until the primary fails.
    Remus,
    /// `XC_STREAM_COLO` (2): COLO checkpoints with a back channel.
    Colo,
}

impl StreamType {
    /// The C value.
    pub fn value(self) -> u32 {
        match self {
            StreamType::Plain => 0,
            StreamType::Remus => 1,
            StreamType::Colo => 2,
        }
    }

    fn from_value(v: u32) -> Option<Self> {
        match v {
            0 => Some(StreamType::Plain),
            1 => Some(StreamType::Remus),
            2 => Some(StreamType::Colo),
            _ => None,
        }
    }
}

/// Which side of the protocol a message belongs to: libxl decodes with the receiver of the
/// helper's mode (`libxl__srm_callout_received_save` or `_restore`), each of which knows only
/// its mode's messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// `--save-domain`.
    Save,
    /// `--restore-domain`.
    Restore,
}

/// The helper's command line after the program name, as `run_helper` builds it
/// (`libxl_save_callout.c`: the mode, the stream fd, the back-channel fd, then the mode's
/// numbers, each `%lu`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HelperArgs {
    /// `--restore-domain STREAM_FD BACK_FD DOMID STORE_EVTCHN STORE_DOMID CONSOLE_EVTCHN
    /// CONSOLE_DOMID CBFLAGS STREAM_TYPE` (`libxl__xc_domain_restore`): the arguments of
    /// `xc_domain_restore`.
    Restore {
        /// Where the libxc stream is read from (its first byte is the image header).
        stream_fd: i32,
        /// The COLO back channel, `-1` without one.
        back_fd: i32,
        /// The domain to restore into (created paused and empty by libxl).
        domid: u32,
        /// The unbound event channel libxl allocated for xenstore.
        store_evtchn: u32,
        /// The xenstore domain.
        store_domid: u32,
        /// The unbound event channel libxl allocated for the console.
        console_evtchn: u32,
        /// The console backend's domain.
        console_domid: u32,
        /// Which callbacks libxl implements: bit `1 << n` for message number `n`
        /// ([`HelperMessage::number`]).
        cbflags: u32,
        /// Plain, Remus or COLO.
        stream_type: StreamType,
    },
    /// `--save-domain IO_FD RECV_FD DOMID XCFLAGS CBFLAGS STREAM_TYPE`
    /// (`libxl__xc_domain_save`): the arguments of `xc_domain_save`.
    Save {
        /// Where the libxc stream is written.
        io_fd: i32,
        /// The back channel (Remus/COLO), `-1` without one.
        recv_fd: i32,
        /// The domain to save.
        domid: u32,
        /// `XCFLAGS_*` (live, debug, checkpoint compression).
        flags: u32,
        /// Which callbacks libxl implements (as for restore).
        cbflags: u32,
        /// Plain, Remus or COLO.
        stream_type: StreamType,
    },
}

/// Why a command line is not the helper's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ArgError {
    /// The first argument is not `--restore-domain` or `--save-domain`.
    #[error("not a save/restore helper command line (the first argument is not --restore-domain or --save-domain)")]
    NotHelper,
    /// The mode takes another number of arguments.
    #[error("{mode} takes {expected} arguments after it, got {found}")]
    Count {
        /// `--restore-domain` or `--save-domain`.
        mode: &'static str,
        /// Arguments it takes.
        expected: usize,
        /// Arguments given.
        found: usize,
    },
    /// An argument is not a decimal number in the range of its C type.
    #[error("argument {position} ({name}) is {value:?}, not {what}")]
    Number {
        /// Position after the mode (1 = the stream fd).
        position: usize,
        /// The parameter's name.
        name: &'static str,
        /// The argument as given.
        value: String,
        /// What it must be.
        what: &'static str,
    },
}

const RESTORE_MODE: &str = "--restore-domain";
const SAVE_MODE: &str = "--save-domain";
const RESTORE_NAMES: [&str; 9] = [
    "stream_fd",
    "back_fd",
    "domid",
    "store_evtchn",
    "store_domid",
    "console_evtchn",
    "console_domid",
    "cbflags",
    "stream_type",
];
const SAVE_NAMES: [&str; 6] = ["io_fd", "recv_fd", "domid", "flags", "cbflags", "stream_type"];

impl HelperArgs {
    /// Whether `first` (the first argument after the program name) selects a helper mode: the
    /// cheap test a program that is also something else runs before parsing anything.
    pub fn is_helper_mode(first: &OsStr) -> bool {
        first == RESTORE_MODE || first == SAVE_MODE
    }

    /// Parses the arguments after the program name. Stricter than Xen's helper (`atoi` and
    /// `strtoul` without checks): every argument must be a decimal number of its C type's
    /// range (a file descriptor `-1` or above, a domain id below 32768 (`DOMID_FIRST_RESERVED`),
    /// the others `u32`), and the count must be exact.
    pub fn parse<S: AsRef<OsStr>>(args: &[S]) -> Result<Self, ArgError> {
        let Some((mode, rest)) = args.split_first() else { return Err(ArgError::NotHelper) };
        let mode = mode.as_ref();
        let names: &[&'static str] = if mode == RESTORE_MODE {
            &RESTORE_NAMES
        } else if mode == SAVE_MODE {
            &SAVE_NAMES
        } else {
            return Err(ArgError::NotHelper);
        };
        let mode_name = if mode == RESTORE_MODE { RESTORE_MODE } else { SAVE_MODE };
        if rest.len() != names.len() {
            return Err(ArgError::Count { mode: mode_name, expected: names.len(), found: rest.len() });
        }
        let text = |i: usize| rest[i].as_ref().to_string_lossy().into_owned();
        let bad = |i: usize, what| ArgError::Number { position: i + 1, name: names[i], value: text(i), what };
        let digits = |i: usize| {
            let t = text(i);
            let ok = !t.is_empty() && t.len() <= 20 && t.bytes().all(|b| b.is_ascii_digit());
            ok.then_some(t)
        };
        let fd = |i: usize| -> Result<i32, ArgError> {
            let t = text(i);
            if t == "-1" {
                return Ok(-1);
            }
            digits(i).and_then(|d| d.parse::<i32>().ok()).ok_or_else(|| bad(i, "a file descriptor (-1 or above)"))
        };
        let u32_at = |i: usize| -> Result<u32, ArgError> {
            digits(i).and_then(|d| d.parse().ok()).ok_or_else(|| bad(i, "a u32"))
        };
        let domid = |i: usize| -> Result<u32, ArgError> {
            digits(i)
                .and_then(|d| d.parse::<u32>().ok())
                .filter(|&d| d < 0x7ff0)
                .ok_or_else(|| bad(i, "a domain id (below 32752)"))
        };
        let stream_type = |i: usize| -> Result<StreamType, ArgError> {
            digits(i)
                .and_then(|d| d.parse::<u32>().ok())
                .and_then(StreamType::from_value)
                .ok_or_else(|| bad(i, "a stream type (0 plain, 1 Remus, 2 COLO)"))
        };
        if mode == RESTORE_MODE {
            Ok(HelperArgs::Restore {
                stream_fd: fd(0)?,
                back_fd: fd(1)?,
                domid: domid(2)?,
                store_evtchn: u32_at(3)?,
                store_domid: domid(4)?,
                console_evtchn: u32_at(5)?,
                console_domid: domid(6)?,
                cbflags: u32_at(7)?,
                stream_type: stream_type(8)?,
            })
        } else {
            Ok(HelperArgs::Save {
                io_fd: fd(0)?,
                recv_fd: fd(1)?,
                domid: domid(2)?,
                flags: u32_at(3)?,
                cbflags: u32_at(4)?,
                stream_type: stream_type(5)?,
            })
        }
    }

    /// The arguments after the program name, as libxl passes them.
    pub fn to_args(&self) -> Vec<OsString> {
        let v: Vec<String> = match *self {
            HelperArgs::Restore {
                stream_fd,
                back_fd,
                domid,
                store_evtchn,
                store_domid,
                console_evtchn,
                console_domid,
                cbflags,
                stream_type,
            } => vec![
                RESTORE_MODE.into(),
                stream_fd.to_string(),
                back_fd.to_string(),
                domid.to_string(),
                store_evtchn.to_string(),
                store_domid.to_string(),
                console_evtchn.to_string(),
                console_domid.to_string(),
                cbflags.to_string(),
                stream_type.value().to_string(),
            ],
            HelperArgs::Save { io_fd, recv_fd, domid, flags, cbflags, stream_type } => vec![
                SAVE_MODE.into(),
                io_fd.to_string(),
                recv_fd.to_string(),
                domid.to_string(),
                flags.to_string(),
                cbflags.to_string(),
                stream_type.value().to_string(),
            ],
        };
        v.into_iter().map(OsString::from).collect()
    }

    /// The mode.
    pub fn mode(&self) -> Mode {
        match self {
            HelperArgs::Restore { .. } => Mode::Restore,
            HelperArgs::Save { .. } => Mode::Save,
        }
    }

    /// Whether libxl implements the callback of message number `number` (its bit in `cbflags`).
    pub fn has_callback(&self, number: u16) -> bool {
        let cbflags = match *self {
            HelperArgs::Restore { cbflags, .. } | HelperArgs::Save { cbflags, .. } => cbflags,
        };
        number < 32 && cbflags & (1 << number) != 0
    }
}

/// One message from the helper to libxl (the `@msgs` table of `libxl_save_msgs_gen.pl`, in
/// its order; the number is the position, from 1).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum HelperMessage {
    /// 1 `log`: a libxentoollog message for libxl's logger (`level` is an `xentoollog_level`:
    /// 8 error, 7 warning, 5 info, 1 debug). Both modes; no reply.
    Log {
        /// `xentoollog_level`.
        level: u32,
        /// errno (0: none).
        errnoval: u32,
        /// The logging context (Xen's helper: "libxl-save-helper" or "xc").
        context: String,
        /// The text.
        formatted: String,
    },
    /// 2 `progress`: both modes; no reply.
    Progress {
        /// The context.
        context: String,
        /// What is being done.
        doing_what: String,
        /// Units done.
        done: u64,
        /// Units in all.
        total: u64,
    },
    /// 3 `suspend`: asks libxl to suspend the domain. Both modes (COLO restore); reply.
    Suspend,
    /// 4 `postcopy`: both modes; reply.
    Postcopy,
    /// 5 `checkpoint`: both modes; reply.
    Checkpoint,
    /// 6 `wait_checkpoint`: both modes; reply.
    WaitCheckpoint,
    /// 7 `switch_qemu_logdirty`: save only; reply.
    SwitchQemuLogdirty {
        /// The domain.
        domid: u32,
        /// 1 to enable, 0 to disable.
        enable: u32,
    },
    /// 8 `static_data_done`: restore only; reply (non-zero: failure). `missing` is
    /// [`SDD_MISSING_CPUID`] | [`SDD_MISSING_MSR`].
    StaticDataDone {
        /// What the stream did not carry.
        missing: u32,
    },
    /// 9 `restore_results`: restore only; no reply. For a PV guest the frames are mfns, for
    /// HVM/PVH gfns.
    RestoreResults {
        /// The xenstore ring's frame.
        store_gfn: u64,
        /// The console ring's frame.
        console_gfn: u64,
    },
    /// 10 `complete`: both modes; reply. `retval` 0 is success; otherwise `errnoval` says why.
    Complete {
        /// `xc_domain_restore`'s / `xc_domain_save`'s return value.
        retval: i32,
        /// errno when it failed, else 0.
        errnoval: i32,
    },
}

/// Why bytes are not a helper message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MessageError {
    /// The body is shorter than a message number.
    #[error("message body of {len} bytes has no message number")]
    NoNumber {
        /// Body length.
        len: usize,
    },
    /// A number outside the table, or one the mode's receiver does not know.
    #[error("message number {number} is not a {mode:?}-mode message")]
    UnknownNumber {
        /// The number.
        number: u16,
        /// The mode decoded for.
        mode: Mode,
    },
    /// The body ends inside an argument.
    #[error("message {name} ends inside argument {arg}")]
    Short {
        /// The message.
        name: &'static str,
        /// The argument.
        arg: &'static str,
    },
    /// Bytes are left after the last argument.
    #[error("message {name} has {extra} bytes after its last argument")]
    Trailing {
        /// The message.
        name: &'static str,
        /// Bytes left over.
        extra: usize,
    },
    /// A STRING of length 0, without its terminating NUL, or with a NUL inside.
    #[error("message {name} argument {arg}: {why}")]
    BadString {
        /// The message.
        name: &'static str,
        /// The argument.
        arg: &'static str,
        /// What is wrong.
        why: &'static str,
    },
    /// A message whose body would not fit the `u16` frame length.
    #[error("message {name} body of {len} bytes exceeds the {MAX_BODY}-byte frame")]
    TooLong {
        /// The message.
        name: &'static str,
        /// Its body length.
        len: usize,
    },
}

/// A helper message read from a channel, or why the channel ended.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The channel ended before a frame began (a clean end).
    #[error("the channel closed")]
    Closed,
    /// The channel ended inside a frame.
    #[error("the channel closed inside a frame ({got} of {needed} bytes)")]
    Truncated {
        /// Bytes of the frame read.
        got: usize,
        /// Bytes the frame needs.
        needed: usize,
    },
    /// The frame's body is not a message.
    #[error(transparent)]
    Message(#[from] MessageError),
    /// Reading failed.
    #[error("reading the helper channel: {0}")]
    Io(#[from] io::Error),
}

const NAMES: [&str; 10] = [
    "log",
    "progress",
    "suspend",
    "postcopy",
    "checkpoint",
    "wait_checkpoint",
    "switch_qemu_logdirty",
    "static_data_done",
    "restore_results",
    "complete",
];

/// A little-endian body reader that names what it was reading when it ran out.
struct Body<'a> {
    name: &'static str,
    rest: &'a [u8],
}

impl<'a> Body<'a> {
    fn bytes(&mut self, n: usize, arg: &'static str) -> Result<&'a [u8], MessageError> {
        if self.rest.len() < n {
            return Err(MessageError::Short { name: self.name, arg });
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn u32(&mut self, arg: &'static str) -> Result<u32, MessageError> {
        Ok(u32::from_le_bytes(self.bytes(4, arg)?.try_into().expect("4 bytes")))
    }

    fn i32(&mut self, arg: &'static str) -> Result<i32, MessageError> {
        Ok(i32::from_le_bytes(self.bytes(4, arg)?.try_into().expect("4 bytes")))
    }

    fn u64(&mut self, arg: &'static str) -> Result<u64, MessageError> {
        Ok(u64::from_le_bytes(self.bytes(8, arg)?.try_into().expect("8 bytes")))
    }

    /// A STRING: `u32` length counting the NUL, the bytes, the NUL (libxl's `STRING_get`
    /// refuses length 0 and a last byte other than NUL). A NUL inside is refused here too,
    /// since libxl would read the text only up to it.
    fn string(&mut self, arg: &'static str) -> Result<String, MessageError> {
        let len = self.u32(arg)? as usize;
        let bad = |why| MessageError::BadString { name: self.name, arg, why };
        if len == 0 {
            return Err(bad("length 0 (a STRING counts its NUL)"));
        }
        let bytes = self.bytes(len, arg)?;
        let (nul, text) = bytes.split_last().expect("len > 0");
        if *nul != 0 {
            return Err(MessageError::BadString { name: self.name, arg, why: "no terminating NUL" });
        }
        if text.contains(&0) {
            return Err(MessageError::BadString { name: self.name, arg, why: "a NUL before its end" });
        }
        // libxl takes any bytes; this decoder, which only checks what a helper sends, wants
        // the UTF-8 every encoder here writes.
        String::from_utf8(text.to_vec()).map_err(|_| MessageError::BadString { name: self.name, arg, why: "not UTF-8" })
    }

    fn finish(self) -> Result<(), MessageError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(MessageError::Trailing { name: self.name, extra: self.rest.len() })
        }
    }
}

fn put_string(out: &mut Vec<u8>, s: &str) {
    // A NUL inside would end the text early on libxl's side: cut there, as C would.
    let text = s.as_bytes().split(|&b| b == 0).next().unwrap_or_default();
    out.extend_from_slice(&(text.len() as u32 + 1).to_le_bytes());
    out.extend_from_slice(text);
    out.push(0);
}

impl HelperMessage {
    /// The message number (1-based position in `libxl_save_msgs_gen.pl`'s table); the
    /// callback flag of a message is `1 << number`.
    pub fn number(&self) -> u16 {
        match self {
            HelperMessage::Log { .. } => 1,
            HelperMessage::Progress { .. } => 2,
            HelperMessage::Suspend => 3,
            HelperMessage::Postcopy => 4,
            HelperMessage::Checkpoint => 5,
            HelperMessage::WaitCheckpoint => 6,
            HelperMessage::SwitchQemuLogdirty { .. } => 7,
            HelperMessage::StaticDataDone { .. } => 8,
            HelperMessage::RestoreResults { .. } => 9,
            HelperMessage::Complete { .. } => 10,
        }
    }

    /// The message's name in the table.
    pub fn name(&self) -> &'static str {
        NAMES[usize::from(self.number()) - 1]
    }

    /// Whether the helper waits for libxl's reply (flags `W` and `A` in the table).
    pub fn wants_reply(&self) -> bool {
        !matches!(
            self,
            HelperMessage::Log { .. } | HelperMessage::Progress { .. } | HelperMessage::RestoreResults { .. }
        )
    }

    /// Whether `mode`'s receiver knows this message (flags `s` and `r` in the table).
    pub fn in_mode(&self, mode: Mode) -> bool {
        match self {
            HelperMessage::SwitchQemuLogdirty { .. } => mode == Mode::Save,
            HelperMessage::StaticDataDone { .. } | HelperMessage::RestoreResults { .. } => mode == Mode::Restore,
            _ => true,
        }
    }

    /// The body: the number, then the arguments. Strings are cut at an inner NUL.
    pub fn body(&self) -> Vec<u8> {
        let mut out = self.number().to_le_bytes().to_vec();
        match self {
            HelperMessage::Log { level, errnoval, context, formatted } => {
                out.extend_from_slice(&level.to_le_bytes());
                out.extend_from_slice(&errnoval.to_le_bytes());
                put_string(&mut out, context);
                put_string(&mut out, formatted);
            }
            HelperMessage::Progress { context, doing_what, done, total } => {
                put_string(&mut out, context);
                put_string(&mut out, doing_what);
                out.extend_from_slice(&done.to_le_bytes());
                out.extend_from_slice(&total.to_le_bytes());
            }
            HelperMessage::Suspend
            | HelperMessage::Postcopy
            | HelperMessage::Checkpoint
            | HelperMessage::WaitCheckpoint => {}
            HelperMessage::SwitchQemuLogdirty { domid, enable } => {
                out.extend_from_slice(&domid.to_le_bytes());
                out.extend_from_slice(&enable.to_le_bytes());
            }
            HelperMessage::StaticDataDone { missing } => out.extend_from_slice(&missing.to_le_bytes()),
            HelperMessage::RestoreResults { store_gfn, console_gfn } => {
                out.extend_from_slice(&store_gfn.to_le_bytes());
                out.extend_from_slice(&console_gfn.to_le_bytes());
            }
            HelperMessage::Complete { retval, errnoval } => {
                out.extend_from_slice(&retval.to_le_bytes());
                out.extend_from_slice(&errnoval.to_le_bytes());
            }
        }
        out
    }

    /// The frame: the `u16` body length, then the body.
    ///
    /// # Errors
    /// [`MessageError::TooLong`] if the body exceeds [`MAX_BODY`] (only a log or progress
    /// message with long text can; [`HelperMessage::log`] shortens its text to fit).
    pub fn encode(&self) -> Result<Vec<u8>, MessageError> {
        let body = self.body();
        let len =
            u16::try_from(body.len()).map_err(|_| MessageError::TooLong { name: self.name(), len: body.len() })?;
        let mut out = len.to_le_bytes().to_vec();
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// A log message whose text is shortened (at a character boundary, with "...") so that
    /// the frame fits.
    pub fn log(level: u32, errnoval: u32, context: &str, text: &str) -> Self {
        // number, level, errno, two lengths, two NULs.
        let room = MAX_BODY - 2 - 4 - 4 - 4 - 4 - 2 - context.len().min(256);
        let context: String = context.chars().take(256).collect();
        let mut formatted = text.to_string();
        if formatted.len() > room {
            let mut cut = room - 3;
            while !formatted.is_char_boundary(cut) {
                cut -= 1;
            }
            formatted.truncate(cut);
            formatted.push_str("...");
        }
        HelperMessage::Log { level, errnoval, context, formatted }
    }

    /// Decodes a body as `mode`'s receiver in libxl does.
    pub fn decode(body: &[u8], mode: Mode) -> Result<Self, MessageError> {
        if body.len() < 2 {
            return Err(MessageError::NoNumber { len: body.len() });
        }
        let number = u16::from_le_bytes([body[0], body[1]]);
        let unknown = MessageError::UnknownNumber { number, mode };
        let name = *NAMES.get(usize::from(number).wrapping_sub(1)).ok_or(unknown.clone())?;
        let mut b = Body { name, rest: &body[2..] };
        let m = match number {
            1 => HelperMessage::Log {
                level: b.u32("level")?,
                errnoval: b.u32("errnoval")?,
                context: b.string("context")?,
                formatted: b.string("formatted")?,
            },
            2 => HelperMessage::Progress {
                context: b.string("context")?,
                doing_what: b.string("doing_what")?,
                done: b.u64("done")?,
                total: b.u64("total")?,
            },
            3 => HelperMessage::Suspend,
            4 => HelperMessage::Postcopy,
            5 => HelperMessage::Checkpoint,
            6 => HelperMessage::WaitCheckpoint,
            7 => HelperMessage::SwitchQemuLogdirty { domid: b.u32("domid")?, enable: b.u32("enable")? },
            8 => HelperMessage::StaticDataDone { missing: b.u32("missing")? },
            9 => HelperMessage::RestoreResults { store_gfn: b.u64("store_gfn")?, console_gfn: b.u64("console_gfn")? },
            _ => HelperMessage::Complete { retval: b.i32("retval")?, errnoval: b.i32("errnoval")? },
        };
        if !m.in_mode(mode) {
            return Err(unknown);
        }
        b.finish()?;
        Ok(m)
    }

    /// Writes the frame in one `write_all`.
    pub fn write_to(&self, w: &mut impl Write) -> io::Result<()> {
        let frame = self.encode().map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        w.write_all(&frame)?;
        w.flush()
    }

    /// Reads one frame and decodes it for `mode`; [`ReadError::Closed`] at a clean end.
    pub fn read_from(r: &mut impl Read, mode: Mode) -> Result<Self, ReadError> {
        let mut len = [0u8; 2];
        let got = read_full(r, &mut len)?;
        if got == 0 {
            return Err(ReadError::Closed);
        }
        if got < 2 {
            return Err(ReadError::Truncated { got, needed: 2 });
        }
        let n = usize::from(u16::from_le_bytes(len));
        let mut body = vec![0u8; n];
        let got = read_full(r, &mut body)?;
        if got < n {
            return Err(ReadError::Truncated { got: 2 + got, needed: 2 + n });
        }
        Ok(Self::decode(&body, mode)?)
    }
}

/// Reads until `buf` is full or the reader ends; the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// libxl's answer to a message that waits for one: a host `int`.
pub fn encode_reply(value: i32) -> [u8; REPLY_LEN] {
    value.to_le_bytes()
}

/// Reads libxl's reply. An end of the channel is an `UnexpectedEof` error (Xen's helper
/// exits with status -2 then).
pub fn read_reply(r: &mut impl Read) -> io::Result<i32> {
    let mut b = [0u8; REPLY_LEN];
    let got = read_full(r, &mut b)?;
    if got < REPLY_LEN {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("libxl closed the reply channel ({got} of {REPLY_LEN} bytes of a reply)"),
        ));
    }
    Ok(i32::from_le_bytes(b))
}

/// The fuzz entry point (the `helper` fuzz target and the replay of its corpus): decodes
/// `data` as a sequence of frames in both modes and, for every message, checks that encoding
/// it again gives the same frame; then parses the bytes as a command line (split at NULs).
/// Returns the messages decoded in restore mode. Panics on any inconsistency.
pub fn fuzz_helper(data: &[u8]) -> usize {
    let mut decoded = 0;
    for mode in [Mode::Restore, Mode::Save] {
        let mut input = data;
        loop {
            let before = input.len();
            match HelperMessage::read_from(&mut input, mode) {
                Ok(m) => {
                    let consumed = before - input.len();
                    assert!(consumed <= 2 + MAX_BODY);
                    assert!(m.in_mode(mode));
                    let frame = m.encode().expect("a decoded message fits its frame");
                    assert_eq!(frame.len(), consumed, "{m:?} re-encodes to another length");
                    assert_eq!(HelperMessage::decode(&frame[2..], mode).expect("re-decodes"), m);
                    if mode == Mode::Restore {
                        decoded += 1;
                    }
                }
                Err(ReadError::Closed | ReadError::Truncated { .. } | ReadError::Message(_)) => break,
                Err(ReadError::Io(e)) => panic!("a slice cannot fail to read: {e}"),
            }
        }
    }
    let args: Vec<OsString> =
        data.split(|&b| b == 0).map(|a| OsString::from(String::from_utf8_lossy(a).into_owned())).collect();
    if let Ok(parsed) = HelperArgs::parse(&args) {
        assert_eq!(HelperArgs::parse(&parsed.to_args()).expect("re-parses"), parsed);
    }
    decoded
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_messages() -> Vec<HelperMessage> {
        vec![
            HelperMessage::Log { level: 8, errnoval: 22, context: "xc".into(), formatted: "bad page".into() },
            HelperMessage::Progress { context: "xc".into(), doing_what: "Memory".into(), done: 5, total: 1 << 40 },
            HelperMessage::Suspend,
            HelperMessage::Postcopy,
            HelperMessage::Checkpoint,
            HelperMessage::WaitCheckpoint,
            HelperMessage::SwitchQemuLogdirty { domid: 7, enable: 1 },
            HelperMessage::StaticDataDone { missing: SDD_MISSING_MSR },
            HelperMessage::RestoreResults { store_gfn: 0x1_2345_6789, console_gfn: 0xfeff0 },
            HelperMessage::Complete { retval: -1, errnoval: 22 },
        ]
    }

    #[test]
    fn frames_are_byte_exact() {
        // restore_results: len 18, number 9, two 8-byte frames (little-endian host order).
        let m = HelperMessage::RestoreResults { store_gfn: 0x1122, console_gfn: 0x33 };
        let mut want = vec![18, 0, 9, 0];
        want.extend_from_slice(&0x1122u64.to_le_bytes());
        want.extend_from_slice(&0x33u64.to_le_bytes());
        assert_eq!(m.encode().unwrap(), want);
        // complete(-1, EINVAL): number 10, two ints.
        let m = HelperMessage::Complete { retval: -1, errnoval: 22 };
        assert_eq!(m.encode().unwrap(), [10, 0, 10, 0, 0xff, 0xff, 0xff, 0xff, 22, 0, 0, 0]);
        // log: a STRING counts its NUL.
        let m = HelperMessage::Log { level: 8, errnoval: 0, context: "xc".into(), formatted: "hi".into() };
        let f = m.encode().unwrap();
        assert_eq!(&f[..2], &(2u16 + 4 + 4 + 4 + 3 + 4 + 3).to_le_bytes());
        assert_eq!(&f[2..4], &[1, 0]);
        assert_eq!(&f[12..19], &[3, 0, 0, 0, b'x', b'c', 0]);
        assert_eq!(&f[19..], &[3, 0, 0, 0, b'h', b'i', 0]);
        // static_data_done: number 8, one unsigned; suspend: the number alone.
        assert_eq!(HelperMessage::StaticDataDone { missing: 3 }.encode().unwrap(), [6, 0, 8, 0, 3, 0, 0, 0]);
        assert_eq!(HelperMessage::Suspend.encode().unwrap(), [2, 0, 3, 0]);
        assert_eq!(encode_reply(-2), [0xfe, 0xff, 0xff, 0xff]);
    }

    #[test]
    fn every_message_round_trips_in_its_modes_only() {
        for m in all_messages() {
            for mode in [Mode::Restore, Mode::Save] {
                let frame = m.encode().unwrap();
                let got = HelperMessage::read_from(&mut &frame[..], mode);
                if m.in_mode(mode) {
                    assert_eq!(got.unwrap(), m);
                } else {
                    assert!(
                        matches!(got, Err(ReadError::Message(MessageError::UnknownNumber { .. }))),
                        "{m:?} in {mode:?}"
                    );
                }
            }
        }
        let replies: Vec<bool> = all_messages().iter().map(HelperMessage::wants_reply).collect();
        assert_eq!(replies, [false, false, true, true, true, true, true, true, false, true]);
        assert_eq!(HelperMessage::StaticDataDone { missing: 0 }.name(), "static_data_done");
    }

    #[test]
    fn malformed_bodies_are_refused_as_libxl_refuses_them() {
        let dec = |b: &[u8]| HelperMessage::decode(b, Mode::Restore);
        assert_eq!(dec(&[9]), Err(MessageError::NoNumber { len: 1 }));
        assert_eq!(dec(&[0, 0]), Err(MessageError::UnknownNumber { number: 0, mode: Mode::Restore }));
        assert_eq!(dec(&[11, 0]), Err(MessageError::UnknownNumber { number: 11, mode: Mode::Restore }));
        // Short and trailing.
        assert_eq!(dec(&[9, 0, 1, 2, 3]), Err(MessageError::Short { name: "restore_results", arg: "store_gfn" }));
        assert_eq!(dec(&[8, 0, 1, 0, 0, 0, 9]), Err(MessageError::Trailing { name: "static_data_done", extra: 1 }));
        assert_eq!(dec(&[3, 0, 0]), Err(MessageError::Trailing { name: "suspend", extra: 1 }));
        // STRINGs: length 0, no NUL, a NUL inside, longer than the body.
        let log = |s: &[u8]| {
            let mut b = vec![1, 0, 8, 0, 0, 0, 0, 0, 0, 0];
            b.extend_from_slice(&3u32.to_le_bytes());
            b.extend_from_slice(b"xc\0");
            b.extend_from_slice(s);
            b
        };
        assert!(matches!(dec(&log(&[0, 0, 0, 0])), Err(MessageError::BadString { arg: "formatted", .. })));
        assert!(matches!(
            dec(&log(&[2, 0, 0, 0, b'a', b'b'])),
            Err(MessageError::BadString { why: "no terminating NUL", .. })
        ));
        assert!(matches!(
            dec(&log(&[3, 0, 0, 0, b'a', 0, 0])),
            Err(MessageError::BadString { why: "a NUL before its end", .. })
        ));
        assert!(matches!(dec(&log(&[0xff, 0xff, 0, 0, b'a', 0])), Err(MessageError::Short { arg: "formatted", .. })));
        assert!(matches!(dec(&log(&[2, 0, 0, 0, 0xff, 0])), Err(MessageError::BadString { why: "not UTF-8", .. })));
        assert!(dec(&log(&[2, 0, 0, 0, b'a', 0])).is_ok());
    }

    #[test]
    fn short_frames_and_closed_channels() {
        let frame = HelperMessage::Complete { retval: 0, errnoval: 0 }.encode().unwrap();
        assert!(matches!(HelperMessage::read_from(&mut &[][..], Mode::Restore), Err(ReadError::Closed)));
        assert!(matches!(
            HelperMessage::read_from(&mut &frame[..1], Mode::Restore),
            Err(ReadError::Truncated { got: 1, needed: 2 })
        ));
        assert!(matches!(
            HelperMessage::read_from(&mut &frame[..7], Mode::Restore),
            Err(ReadError::Truncated { got: 7, needed: 12 })
        ));
        // Two frames back to back read one at a time.
        let mut two = frame.clone();
        two.extend_from_slice(&HelperMessage::Suspend.encode().unwrap());
        let mut r = &two[..];
        assert_eq!(
            HelperMessage::read_from(&mut r, Mode::Save).unwrap(),
            HelperMessage::Complete { retval: 0, errnoval: 0 }
        );
        assert_eq!(HelperMessage::read_from(&mut r, Mode::Save).unwrap(), HelperMessage::Suspend);
        assert!(matches!(HelperMessage::read_from(&mut r, Mode::Save), Err(ReadError::Closed)));
        assert_eq!(read_reply(&mut &[7, 0, 0, 0][..]).unwrap(), 7);
        assert_eq!(read_reply(&mut &[7, 0][..]).unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn oversized_messages_do_not_encode_and_log_text_is_shortened_to_fit() {
        let huge = "x".repeat(70_000);
        let m = HelperMessage::Log { level: 8, errnoval: 0, context: "xc".into(), formatted: huge.clone() };
        assert!(matches!(m.encode(), Err(MessageError::TooLong { name: "log", .. })));
        let m = HelperMessage::log(8, 0, "xsr", &format!("é{huge}"));
        let f = m.encode().unwrap();
        assert!(f.len() <= 2 + MAX_BODY);
        let HelperMessage::Log { formatted, .. } = HelperMessage::decode(&f[2..], Mode::Restore).unwrap() else {
            panic!()
        };
        assert!(formatted.starts_with('é') && formatted.ends_with("..."));
        // An inner NUL cuts the text where C would.
        let m = HelperMessage::Log { level: 8, errnoval: 0, context: "x\0y".into(), formatted: "a".into() };
        let HelperMessage::Log { context, .. } = HelperMessage::decode(&m.encode().unwrap()[2..], Mode::Save).unwrap()
        else {
            panic!()
        };
        assert_eq!(context, "x");
    }

    #[test]
    fn command_lines_as_libxl_passes_them() {
        // libxl__xc_domain_restore: domid 5, store port 1 / domid 0, console port 2 / domid 0,
        // cbflags static_data_done | restore_results, plain.
        let a = ["--restore-domain", "3", "-1", "5", "1", "0", "2", "0", "768", "0"];
        let parsed = HelperArgs::parse(&a).unwrap();
        assert_eq!(
            parsed,
            HelperArgs::Restore {
                stream_fd: 3,
                back_fd: -1,
                domid: 5,
                store_evtchn: 1,
                store_domid: 0,
                console_evtchn: 2,
                console_domid: 0,
                cbflags: 768,
                stream_type: StreamType::Plain,
            }
        );
        assert!(parsed.has_callback(8) && parsed.has_callback(9) && !parsed.has_callback(5));
        assert_eq!(parsed.to_args(), a.map(OsString::from));
        assert_eq!(parsed.mode(), Mode::Restore);
        let s = ["--save-domain", "4", "-1", "12", "1", "128", "0"];
        let parsed = HelperArgs::parse(&s).unwrap();
        assert!(matches!(parsed, HelperArgs::Save { io_fd: 4, domid: 12, flags: 1, cbflags: 128, .. }));
        assert_eq!(parsed.to_args(), s.map(OsString::from));
        assert!(HelperArgs::is_helper_mode(OsStr::new("--restore-domain")));
        assert!(!HelperArgs::is_helper_mode(OsStr::new("restore")));
    }

    #[test]
    fn malformed_command_lines_are_refused_in_words() {
        let p = |a: &[&str]| HelperArgs::parse(a).unwrap_err();
        assert_eq!(p(&[]), ArgError::NotHelper);
        assert_eq!(p(&["restore"]), ArgError::NotHelper);
        assert_eq!(p(&["--restore-domain", "3"]), ArgError::Count { mode: "--restore-domain", expected: 9, found: 1 });
        let e = p(&["--restore-domain", "3", "-1", "5x", "1", "0", "2", "0", "768", "0"]);
        assert_eq!(e.to_string(), "argument 3 (domid) is \"5x\", not a domain id (below 32752)");
        assert!(matches!(
            p(&["--restore-domain", "-3", "-1", "5", "1", "0", "2", "0", "768", "0"]),
            ArgError::Number { position: 1, .. }
        ));
        assert!(matches!(
            p(&["--restore-domain", "3", "-1", "5", "1", "0", "2", "0", "768", "3"]),
            ArgError::Number { name: "stream_type", .. }
        ));
        assert!(matches!(
            p(&["--restore-domain", "3", "-1", "5", "4294967296", "0", "2", "0", "768", "0"]),
            ArgError::Number { name: "store_evtchn", .. }
        ));
        assert!(matches!(
            p(&["--restore-domain", "3", "-1", "32752", "1", "0", "2", "0", "768", "0"]),
            ArgError::Number { name: "domid", .. }
        ));
        assert!(matches!(
            p(&["--save-domain", "3", "-1", "5", "1", "+2", "0"]),
            ArgError::Number { name: "cbflags", .. }
        ));
    }

    #[test]
    fn the_fuzz_entry_counts_messages() {
        let mut data = Vec::new();
        for m in all_messages().iter().filter(|m| m.in_mode(Mode::Restore)) {
            data.extend_from_slice(&m.encode().unwrap());
        }
        assert_eq!(fuzz_helper(&data), 9);
        assert_eq!(fuzz_helper(&[]), 0);
    }
}
