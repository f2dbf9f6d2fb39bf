//! `xl migrate`'s protocol: the banner and the hand-over messages around the stream, and the
//! sender's and receiver's state machines.
//!
//! `xl migrate` runs a transport command (by default `ssh HOST xl migrate-receive`) whose
//! standard input is the **stream channel** (sender to receiver) and whose standard output is
//! the **ack channel** (receiver to sender). One migration, in order (Xen 4.17,
//! `tools/xl/xl_migrate.c`: `migrate_domain` and `migrate_receive`; the messages in
//! `tools/xl/xl.h`):
//!
//! | # | channel | bytes | meaning |
//! |---|---|---|---|
//! | 1 | ack | [`BANNER`], 54 bytes, no NUL | the receiver is ready for the stream |
//! | 2 | stream | xl save header, JSON configuration, libxl stream | the domain (the caller's part) |
//! | 3 | ack | [`READY`], 34 bytes with its NUL | restored, paused, named `NAME--incoming` |
//! | 4 | stream | [`GO`], 44 bytes with its NUL | the sender renamed its copy `NAME--migratedaway`: start yours |
//! | 5 | ack | [`REPORT`], 39 bytes with its NUL, then one status byte | 0: the copy runs; else it failed |
//! | 6 | ack | [`GO`] again, only after a non-zero status | the receiver destroyed its copy: resume yours |
//!
//! Every message is read as exactly its length and compared byte for byte, as xl does; a
//! reader here stops at the first byte that differs, and never reads past a message. xl has no
//! timeouts: the caller bounds its channels (a reader that times out is a failed step).
//!
//! Writing GO is the point of no return. A failure before it leaves the source as the one copy
//! ([`SenderOutcome::KeepSource`]); after it, without a report, neither side can know whether
//! the other copy runs ([`SenderOutcome::Undefined`], xl's "Domain state is now undefined").
//!
//! [`Sender`] and [`Receiver`] are the two state machines as plain values: each names its
//! current [`SenderStep`]/[`ReceiverStep`] and moves on when told how that step ended.
//! [`run_sender`] and [`run_receiver`] drive them over any `Read`/`Write`, with the parts that
//! are not the protocol (writing or restoring the stream, renaming, unpausing, destroying)
//! left to the caller's [`SenderActions`]/[`ReceiverActions`].
//!
//! ```
//! use sr_proto::xl_migrate::{Sender, SenderOutcome, SenderStep, Message};
//!
//! let mut s = Sender::new();
//! assert_eq!(s.step(), SenderStep::ReadBanner);
//! assert_eq!(s.step().expects(), Some(Message::Banner));
//! s.succeeded(); // the banner arrived
//! assert_eq!(s.step(), SenderStep::WriteStream);
//! s.succeeded(); // the stream is written
//! s.failed(); // the ack channel closed instead of READY
//! assert_eq!(s.step(), SenderStep::Done(SenderOutcome::KeepSource));
//! ```

use std::error::Error as StdError;
use std::fmt;
use std::io::{self, Read, Write};

/// The receiver's banner (ack channel, first): 54 bytes, ending in a newline, no NUL.
pub const BANNER: &[u8; 54] = b"xl migration receiver ready, send binary domain data.\n";
/// The receiver has the domain, paused (ack channel, after the stream): 34 bytes with the NUL.
pub const READY: &[u8; 34] = b"domain received, ready to unpause\0";
/// Permission to unpause (stream channel, after READY); the same bytes on the ack channel,
/// after a failure report, are permission for the sender to resume: 44 bytes with the NUL.
pub const GO: &[u8; 44] = b"domain is yours, you are cleared to unpause\0";
/// The unpause report (ack channel), followed by one status byte: 39 bytes with the NUL.
pub const REPORT: &[u8; 39] = b"my copy unpause results are as follows\0";

/// The status byte for a copy that runs.
pub const STATUS_OK: u8 = 0;
/// The status byte for a start (rename or unpause) that failed: libxl's `ERROR_FAIL` (-3)
/// negated, as xl sends the negated libxl error code.
pub const STATUS_FAIL: u8 = 3;
/// The status byte xl sends when GO did not arrive: its read helper's 1, negated (-1).
pub const STATUS_NO_GO: u8 = 0xff;

/// The most bytes a sender reads from the ack channel in one migration.
pub const MAX_ACK_BYTES: usize = BANNER.len() + READY.len() + REPORT.len() + 1 + GO.len();

/// One of xl's fixed messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Message {
    /// [`BANNER`].
    Banner,
    /// [`READY`].
    Ready,
    /// [`GO`] (permission to unpause, or to resume).
    Go,
    /// [`REPORT`] (the status byte is not part of it).
    Report,
}

impl Message {
    /// The exact bytes.
    pub fn bytes(self) -> &'static [u8] {
        match self {
            Message::Banner => BANNER,
            Message::Ready => READY,
            Message::Go => GO,
            Message::Report => REPORT,
        }
    }

    /// What xl calls it.
    pub fn name(self) -> &'static str {
        match self {
            Message::Banner => "banner",
            Message::Ready => "ready message",
            Message::Go => "GO message",
            Message::Report => "success/failure report",
        }
    }

    /// Which message `bytes` is, if exactly one.
    pub fn parse(bytes: &[u8]) -> Option<Message> {
        [Message::Banner, Message::Ready, Message::Go, Message::Report].into_iter().find(|m| m.bytes() == bytes)
    }
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The two directions of a migration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    /// Sender to receiver: the stream, then GO.
    Stream,
    /// Receiver to sender: banner, READY, report and status, permission to resume.
    Ack,
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Channel::Stream => "migration stream",
            Channel::Ack => "migration ack channel",
        })
    }
}

/// A caller's error (an action that failed).
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Why a migration step failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum XlMigrateError {
    /// The channel ended inside or before a message.
    #[error("the {channel} ended after {got} of the {len} bytes of the {what}", len = what.bytes().len())]
    Closed {
        /// The channel.
        channel: Channel,
        /// The message expected.
        what: Message,
        /// Bytes of it that arrived (all correct).
        got: usize,
    },
    /// The status byte after the report did not arrive.
    #[error("the {channel} ended before the status byte after the report")]
    NoStatus {
        /// The channel.
        channel: Channel,
    },
    /// A byte differs from the message.
    #[error(
        "the {channel} carries {received} where xl's {what} was expected (byte {offset} differs)",
        received = shown(received)
    )]
    Unexpected {
        /// The channel.
        channel: Channel,
        /// The message expected.
        what: Message,
        /// Offset of the first byte that differs, from the start of the message.
        offset: usize,
        /// The bytes read, up to and including the one that differs.
        received: Vec<u8>,
    },
    /// Reading or writing a channel failed.
    #[error("{step} on the {channel}: {source}")]
    Io {
        /// The channel.
        channel: Channel,
        /// What was being read or written.
        step: &'static str,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// One of the caller's actions failed.
    #[error("{action} failed: {source}")]
    Action {
        /// The action.
        action: &'static str,
        /// The caller's error.
        #[source]
        source: BoxError,
    },
}

/// Bytes as a quoted string, control characters escaped, at most 64 shown.
fn shown(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(64)];
    let mut s = String::from("\"");
    s.extend(cut.escape_ascii().map(char::from));
    s.push('"');
    if bytes.len() > cut.len() {
        s.push_str("...");
    }
    s
}

/// Reads exactly `what` from `input`, never a byte more, stopping at the first byte that
/// differs. Interrupted reads are retried; other I/O errors, a short channel and a wrong byte
/// are errors naming the message and the byte.
pub fn read_message(input: &mut dyn Read, channel: Channel, what: Message) -> Result<(), XlMigrateError> {
    let expected = what.bytes();
    let mut buf = [0u8; BANNER.len()];
    let mut got = 0;
    while got < expected.len() {
        let n = match input.read(&mut buf[got..expected.len()]) {
            Ok(0) => return Err(XlMigrateError::Closed { channel, what, got }),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => return Err(XlMigrateError::Io { channel, step: what.name(), source }),
        };
        if let Some(i) = (got..got + n).find(|&i| buf[i] != expected[i]) {
            return Err(XlMigrateError::Unexpected { channel, what, offset: i, received: buf[..=i].to_vec() });
        }
        got += n;
    }
    Ok(())
}

/// Reads the status byte that follows the report.
pub fn read_status(input: &mut dyn Read, channel: Channel) -> Result<u8, XlMigrateError> {
    let mut b = [0u8];
    loop {
        return match input.read(&mut b) {
            Ok(0) => Err(XlMigrateError::NoStatus { channel }),
            Ok(_) => Ok(b[0]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => Err(XlMigrateError::Io { channel, step: "status byte", source }),
        };
    }
}

/// Writes `bytes` and flushes.
fn write_bytes(out: &mut dyn Write, channel: Channel, step: &'static str, bytes: &[u8]) -> Result<(), XlMigrateError> {
    out.write_all(bytes).and_then(|()| out.flush()).map_err(|source| XlMigrateError::Io { channel, step, source })
}

/// How a migration ended for the sender.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SenderOutcome {
    /// The guest runs at the receiver: destroy the source copy.
    Migrated,
    /// The source copy is the only one: rename it back if it was renamed, and resume it. Either
    /// the failure came before GO, or the receiver reported that its start failed and gave
    /// permission.
    KeepSource,
    /// GO was sent but no report (or no permission) came back: whether the receiver's copy
    /// runs is unknown, so the source stays suspended and renamed for a person to decide.
    Undefined,
}

/// Where a sender is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SenderStep {
    /// Read [`BANNER`] from the ack channel.
    ReadBanner,
    /// Write the xl save header, configuration and libxl stream on the stream channel.
    WriteStream,
    /// Read [`READY`] from the ack channel.
    ReadReady,
    /// Rename the domain `NAME--migratedaway`.
    RenameAway,
    /// Write [`GO`] on the stream channel: the point of no return.
    WriteGo,
    /// Read [`REPORT`] from the ack channel.
    ReadReport,
    /// Read the status byte.
    ReadStatus,
    /// The receiver's start failed with this status: read its permission to resume ([`GO`]).
    ReadPermission {
        /// The status it reported.
        status: u8,
    },
    /// Finished.
    Done(SenderOutcome),
}

impl SenderStep {
    /// The message this step reads, if it reads one.
    pub fn expects(self) -> Option<Message> {
        match self {
            SenderStep::ReadBanner => Some(Message::Banner),
            SenderStep::ReadReady => Some(Message::Ready),
            SenderStep::ReadReport => Some(Message::Report),
            SenderStep::ReadPermission { .. } => Some(Message::Go),
            _ => None,
        }
    }

    /// The message this step writes, if it writes one.
    pub fn sends(self) -> Option<Message> {
        match self {
            SenderStep::WriteGo => Some(Message::Go),
            _ => None,
        }
    }
}

/// The sender's state machine (`xl migrate`'s side).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sender {
    step: SenderStep,
    /// The status the receiver reported.
    status: Option<u8>,
}

impl Default for Sender {
    fn default() -> Self {
        Self::new()
    }
}

impl Sender {
    /// A sender about to read the banner.
    pub fn new() -> Self {
        Self { step: SenderStep::ReadBanner, status: None }
    }

    /// The current step.
    pub fn step(&self) -> SenderStep {
        self.step
    }

    /// The status byte the receiver reported, once read.
    pub fn status(&self) -> Option<u8> {
        self.status
    }

    /// The current step ended well (its message arrived intact, its write or action
    /// completed). At [`SenderStep::ReadStatus`] use [`Sender::status_read`]; when done,
    /// nothing changes.
    pub fn succeeded(&mut self) -> SenderStep {
        self.step = match self.step {
            SenderStep::ReadBanner => SenderStep::WriteStream,
            SenderStep::WriteStream => SenderStep::ReadReady,
            SenderStep::ReadReady => SenderStep::RenameAway,
            SenderStep::RenameAway => SenderStep::WriteGo,
            SenderStep::WriteGo => SenderStep::ReadReport,
            SenderStep::ReadReport => SenderStep::ReadStatus,
            // A status byte is a value, not a success: without it, the step stays.
            SenderStep::ReadStatus => SenderStep::ReadStatus,
            SenderStep::ReadPermission { .. } => SenderStep::Done(SenderOutcome::KeepSource),
            done @ SenderStep::Done(_) => done,
        };
        self.step
    }

    /// The status byte arrived (at [`SenderStep::ReadStatus`]; elsewhere nothing changes).
    pub fn status_read(&mut self, status: u8) -> SenderStep {
        if self.step == SenderStep::ReadStatus {
            self.status = Some(status);
            self.step = if status == STATUS_OK {
                SenderStep::Done(SenderOutcome::Migrated)
            } else {
                SenderStep::ReadPermission { status }
            };
        }
        self.step
    }

    /// The current step failed: a wrong or missing message, an I/O error, an action's error.
    pub fn failed(&mut self) -> SenderStep {
        self.step = match self.step {
            SenderStep::ReadBanner | SenderStep::WriteStream | SenderStep::ReadReady | SenderStep::RenameAway => {
                SenderStep::Done(SenderOutcome::KeepSource)
            }
            SenderStep::WriteGo
            | SenderStep::ReadReport
            | SenderStep::ReadStatus
            | SenderStep::ReadPermission { .. } => SenderStep::Done(SenderOutcome::Undefined),
            done @ SenderStep::Done(_) => done,
        };
        self.step
    }
}

/// How a migration ended for the receiver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReceiverOutcome {
    /// The copy was renamed and started (or left paused when asked): it is the guest now.
    Running,
    /// There is no copy here: it was never made, or it was destroyed.
    NoCopy,
    /// The copy could not be destroyed after a failure: it is still here, paused, and the
    /// sender was not given permission to resume.
    Undefined,
}

/// Where a receiver is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReceiverStep {
    /// Write [`BANNER`] on the ack channel.
    WriteBanner,
    /// Read the stream (exactly, nothing past its end) and restore a paused `NAME--incoming`.
    ReadStream,
    /// Write [`READY`] on the ack channel.
    WriteReady,
    /// Read [`GO`] from the stream channel.
    ReadGo,
    /// Rename the copy `NAME` and unpause it (unless asked to leave it paused).
    Start,
    /// Write [`REPORT`] on the ack channel; the status byte follows.
    WriteReport {
        /// The status to report.
        status: u8,
    },
    /// Write the status byte.
    WriteStatus {
        /// The status.
        status: u8,
    },
    /// Destroy this side's copy.
    Destroy {
        /// Whether the sender is then given permission to resume (after a failure report).
        permission: bool,
    },
    /// Write [`GO`] on the ack channel: the sender may resume its copy.
    WritePermission,
    /// Finished.
    Done(ReceiverOutcome),
}

impl ReceiverStep {
    /// The message this step reads, if it reads one.
    pub fn expects(self) -> Option<Message> {
        match self {
            ReceiverStep::ReadGo => Some(Message::Go),
            _ => None,
        }
    }

    /// The message this step writes, if it writes one.
    pub fn sends(self) -> Option<Message> {
        match self {
            ReceiverStep::WriteBanner => Some(Message::Banner),
            ReceiverStep::WriteReady => Some(Message::Ready),
            ReceiverStep::WriteReport { .. } => Some(Message::Report),
            ReceiverStep::WritePermission => Some(Message::Go),
            _ => None,
        }
    }
}

/// The receiver's state machine (`xl migrate-receive`'s side).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receiver {
    step: ReceiverStep,
}

impl Default for Receiver {
    fn default() -> Self {
        Self::new()
    }
}

impl Receiver {
    /// A receiver about to write the banner.
    pub fn new() -> Self {
        Self { step: ReceiverStep::WriteBanner }
    }

    /// The current step.
    pub fn step(&self) -> ReceiverStep {
        self.step
    }

    /// The current step ended well.
    pub fn succeeded(&mut self) -> ReceiverStep {
        self.step = match self.step {
            ReceiverStep::WriteBanner => ReceiverStep::ReadStream,
            ReceiverStep::ReadStream => ReceiverStep::WriteReady,
            ReceiverStep::WriteReady => ReceiverStep::ReadGo,
            ReceiverStep::ReadGo => ReceiverStep::Start,
            ReceiverStep::Start => ReceiverStep::WriteReport { status: STATUS_OK },
            ReceiverStep::WriteReport { status } => ReceiverStep::WriteStatus { status },
            ReceiverStep::WriteStatus { status: STATUS_OK } => ReceiverStep::Done(ReceiverOutcome::Running),
            ReceiverStep::WriteStatus { .. } => ReceiverStep::Destroy { permission: true },
            ReceiverStep::Destroy { permission: true } => ReceiverStep::WritePermission,
            ReceiverStep::Destroy { permission: false } | ReceiverStep::WritePermission => {
                ReceiverStep::Done(ReceiverOutcome::NoCopy)
            }
            done @ ReceiverStep::Done(_) => done,
        };
        self.step
    }

    /// The current step failed. At [`ReceiverStep::Start`] the report carries
    /// [`STATUS_FAIL`]; use [`Receiver::start_failed`] for another status.
    pub fn failed(&mut self) -> ReceiverStep {
        if self.step == ReceiverStep::Start {
            return self.start_failed(STATUS_FAIL);
        }
        self.step = match self.step {
            ReceiverStep::WriteBanner => ReceiverStep::Done(ReceiverOutcome::NoCopy),
            // Whatever was made of the domain goes; the sender, without READY, keeps its own.
            ReceiverStep::ReadStream | ReceiverStep::WriteReady => ReceiverStep::Destroy { permission: false },
            ReceiverStep::ReadGo => ReceiverStep::WriteReport { status: STATUS_NO_GO },
            // The sender gets no report: it cannot know. A running copy keeps running; a
            // failed one is destroyed, and the sender is not told (the channel is broken).
            ReceiverStep::WriteReport { status: STATUS_OK } | ReceiverStep::WriteStatus { status: STATUS_OK } => {
                ReceiverStep::Done(ReceiverOutcome::Running)
            }
            ReceiverStep::WriteReport { .. } | ReceiverStep::WriteStatus { .. } => {
                ReceiverStep::Destroy { permission: false }
            }
            ReceiverStep::Destroy { .. } => ReceiverStep::Done(ReceiverOutcome::Undefined),
            ReceiverStep::WritePermission => ReceiverStep::Done(ReceiverOutcome::NoCopy),
            ReceiverStep::Start => unreachable!("handled above"),
            done @ ReceiverStep::Done(_) => done,
        };
        self.step
    }

    /// The start failed with `status` (not [`STATUS_OK`]; 0 is taken as [`STATUS_FAIL`]).
    pub fn start_failed(&mut self, status: u8) -> ReceiverStep {
        if self.step == ReceiverStep::Start {
            let status = if status == STATUS_OK { STATUS_FAIL } else { status };
            self.step = ReceiverStep::WriteReport { status };
        }
        self.step
    }
}

/// The sender's parts of a migration that are not the protocol.
pub trait SenderActions {
    /// Writes the xl save header, the JSON configuration and the libxl stream (suspending the
    /// domain along the way); nothing after the stream's end.
    fn send_stream(&mut self, stream: &mut dyn Write) -> Result<(), BoxError>;
    /// Renames the domain `NAME--migratedaway` (GO follows at once).
    fn rename_away(&mut self) -> Result<(), BoxError>;
}

/// The receiver's parts of a migration that are not the protocol.
pub trait ReceiverActions {
    /// Reads the stream (xl save header, configuration, libxl stream) from `stream`, exactly:
    /// GO follows it on the same channel, so not a byte past the libxl END may be read. Leaves
    /// the domain restored and paused as `NAME--incoming`.
    fn receive_stream(&mut self, stream: &mut dyn Read) -> Result<(), BoxError>;
    /// Renames the copy `NAME` and unpauses it (unless it is to stay paused). `Err` with a
    /// status byte (not 0) to report; [`STATUS_FAIL`] is what xl sends for most failures.
    fn start(&mut self) -> Result<(), (u8, BoxError)>;
    /// Destroys this side's copy (whatever of it exists).
    fn destroy(&mut self) -> Result<(), BoxError>;
}

/// How a driven migration ended.
#[derive(Debug)]
pub struct Ended<O> {
    /// The outcome.
    pub outcome: O,
    /// The status byte reported (sender: read; receiver: written), if it got that far.
    pub status: Option<u8>,
    /// The first failure, if any (later ones, e.g. while cleaning up, are in `more`).
    pub error: Option<XlMigrateError>,
    /// Failures after the first.
    pub more: Vec<XlMigrateError>,
}

impl<O> Ended<O> {
    fn new(outcome: O, status: Option<u8>, mut errors: Vec<XlMigrateError>) -> Self {
        let error = if errors.is_empty() { None } else { Some(errors.remove(0)) };
        Self { outcome, status, error, more: errors }
    }
}

fn action(action: &'static str) -> impl FnOnce(BoxError) -> XlMigrateError {
    move |source| XlMigrateError::Action { action, source }
}

/// Runs the sender's side: reads `ack`, writes `stream`, calls `actions`; returns the
/// outcome, which the caller carries out (destroy, resume, or leave for a person).
pub fn run_sender(ack: &mut dyn Read, stream: &mut dyn Write, actions: &mut dyn SenderActions) -> Ended<SenderOutcome> {
    let mut sender = Sender::new();
    let mut errors = Vec::new();
    loop {
        let step = sender.step();
        let result = match step {
            SenderStep::Done(outcome) => return Ended::new(outcome, sender.status(), errors),
            SenderStep::ReadBanner => read_message(ack, Channel::Ack, Message::Banner),
            SenderStep::WriteStream => actions.send_stream(stream).map_err(action("sending the stream")),
            SenderStep::ReadReady => read_message(ack, Channel::Ack, Message::Ready),
            SenderStep::RenameAway => actions.rename_away().map_err(action("renaming the domain away")),
            SenderStep::WriteGo => write_bytes(stream, Channel::Stream, Message::Go.name(), GO),
            SenderStep::ReadReport => read_message(ack, Channel::Ack, Message::Report),
            SenderStep::ReadStatus => match read_status(ack, Channel::Ack) {
                Ok(status) => {
                    sender.status_read(status);
                    continue;
                }
                Err(e) => Err(e),
            },
            SenderStep::ReadPermission { .. } => read_message(ack, Channel::Ack, Message::Go),
        };
        match result {
            Ok(()) => sender.succeeded(),
            Err(e) => {
                errors.push(e);
                sender.failed()
            }
        };
    }
}

/// Runs the receiver's side: writes `ack`, reads `stream`, calls `actions`; returns the
/// outcome (the actions have already started or destroyed the copy).
pub fn run_receiver(
    stream: &mut dyn Read,
    ack: &mut dyn Write,
    actions: &mut dyn ReceiverActions,
) -> Ended<ReceiverOutcome> {
    let mut receiver = Receiver::new();
    let mut errors = Vec::new();
    let mut status = None;
    loop {
        let step = receiver.step();
        let result = match step {
            ReceiverStep::Done(outcome) => return Ended::new(outcome, status, errors),
            ReceiverStep::WriteBanner => write_bytes(ack, Channel::Ack, Message::Banner.name(), BANNER),
            ReceiverStep::ReadStream => actions.receive_stream(stream).map_err(action("receiving the stream")),
            ReceiverStep::WriteReady => write_bytes(ack, Channel::Ack, Message::Ready.name(), READY),
            ReceiverStep::ReadGo => read_message(stream, Channel::Stream, Message::Go),
            ReceiverStep::Start => match actions.start() {
                Ok(()) => Ok(()),
                Err((code, source)) => {
                    errors.push(XlMigrateError::Action { action: "starting the domain", source });
                    receiver.start_failed(code);
                    continue;
                }
            },
            ReceiverStep::WriteReport { .. } => write_bytes(ack, Channel::Ack, Message::Report.name(), REPORT),
            ReceiverStep::WriteStatus { status: s } => {
                status = Some(s);
                write_bytes(ack, Channel::Ack, "status byte", &[s])
            }
            ReceiverStep::Destroy { .. } => actions.destroy().map_err(action("destroying the copy")),
            ReceiverStep::WritePermission => write_bytes(ack, Channel::Ack, "permission for the sender to resume", GO),
        };
        match result {
            Ok(()) => receiver.succeeded(),
            Err(e) => {
                errors.push(e);
                receiver.failed()
            }
        };
    }
}

/// The fuzz entry point (the `xl_migrate` fuzz target and the replay of its corpus): `data`
/// is what arrives on the sender's ack channel, and (separately) on the receiver's stream
/// channel, where a first byte `n` and `n` bytes stand for the Xen stream. Each side is run
/// against a reference reading of the bytes; returns the sender's outcome. Panics when a
/// side reads more than the protocol allows or its outcome disagrees with the reference.
#[doc(hidden)]
pub fn fuzz_xl_migrate(data: &[u8]) -> SenderOutcome {
    struct Acts {
        renamed: bool,
    }
    impl SenderActions for Acts {
        fn send_stream(&mut self, stream: &mut dyn Write) -> Result<(), BoxError> {
            stream.write_all(b"xl header, config, libxl stream")?;
            Ok(())
        }
        fn rename_away(&mut self) -> Result<(), BoxError> {
            self.renamed = true;
            Ok(())
        }
    }
    let mut ack = io::Cursor::new(data);
    let mut stream = Vec::new();
    let mut acts = Acts { renamed: false };
    let ended = run_sender(&mut ack, &mut stream, &mut acts);
    assert!(ack.position() as usize <= MAX_ACK_BYTES, "the sender read {} bytes", ack.position());

    // The reference: the prefix of the good sequences that `data` matches.
    let ok_prefix = [&BANNER[..], READY, REPORT].concat();
    let expected = if !data.starts_with(&ok_prefix[..BANNER.len() + READY.len()]) {
        SenderOutcome::KeepSource
    } else if !data.starts_with(&ok_prefix) || data.len() == ok_prefix.len() {
        SenderOutcome::Undefined
    } else if data[ok_prefix.len()] == STATUS_OK {
        SenderOutcome::Migrated
    } else if data[ok_prefix.len() + 1..].starts_with(GO) {
        SenderOutcome::KeepSource
    } else {
        SenderOutcome::Undefined
    };
    assert_eq!(ended.outcome, expected, "{:?}", ended.error);
    let permitted = expected == SenderOutcome::KeepSource && ended.status.is_some_and(|s| s != STATUS_OK);
    assert_eq!(ended.error.is_none(), expected == SenderOutcome::Migrated || permitted);
    let sent_go = stream.ends_with(GO);
    assert_eq!(sent_go, data.starts_with(&ok_prefix[..BANNER.len() + READY.len()]));
    assert_eq!(acts.renamed, sent_go);

    // The receiver, with `data` as its stream channel.
    struct Recv {
        copy: bool,
        stream_len: usize,
    }
    impl ReceiverActions for Recv {
        fn receive_stream(&mut self, stream: &mut dyn Read) -> Result<(), BoxError> {
            self.copy = true;
            let mut n = [0u8];
            stream.read_exact(&mut n)?;
            let mut body = vec![0u8; usize::from(n[0])];
            stream.read_exact(&mut body)?;
            self.stream_len = 1 + body.len();
            Ok(())
        }
        fn start(&mut self) -> Result<(), (u8, BoxError)> {
            Ok(())
        }
        fn destroy(&mut self) -> Result<(), BoxError> {
            self.copy = false;
            Ok(())
        }
    }
    let mut input = io::Cursor::new(data);
    let mut ack = Vec::new();
    let mut acts = Recv { copy: false, stream_len: 0 };
    let ended = run_receiver(&mut input, &mut ack, &mut acts);
    let body = data.first().map(|&n| 1 + usize::from(n)).filter(|&end| end <= data.len());
    let want = match body {
        Some(end) if data[end..].starts_with(GO) => ReceiverOutcome::Running,
        _ => ReceiverOutcome::NoCopy,
    };
    assert_eq!(ended.outcome, want, "{:?}", ended.error);
    assert_eq!(acts.copy, want == ReceiverOutcome::Running);
    let consumed = input.position() as usize;
    assert!(consumed <= body.unwrap_or(data.len()) + GO.len(), "the receiver read {consumed} bytes");
    let reply = match (body, want) {
        (None, _) => BANNER.to_vec(),
        (Some(_), ReceiverOutcome::Running) => [&BANNER[..], READY, REPORT, &[STATUS_OK]].concat(),
        (Some(_), _) => [&BANNER[..], READY, REPORT, &[STATUS_NO_GO], GO].concat(),
    };
    assert_eq!(ack, reply);
    expected
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_xls_bytes_and_lengths() {
        assert_eq!(BANNER.len(), 54);
        assert_eq!(READY.len(), 34);
        assert_eq!(GO.len(), 44);
        assert_eq!(REPORT.len(), 39);
        assert!(BANNER.ends_with(b".\n") && !BANNER.contains(&0));
        for m in [READY.as_slice(), GO, REPORT] {
            assert_eq!(m.iter().position(|&b| b == 0), Some(m.len() - 1), "one NUL, at the end");
        }
        assert_eq!(MAX_ACK_BYTES, 172);
        for m in [Message::Banner, Message::Ready, Message::Go, Message::Report] {
            assert_eq!(Message::parse(m.bytes()), Some(m));
        }
        assert_eq!(Message::parse(b"domain received, ready to unpause"), None, "the NUL belongs to it");
    }

    #[test]
    fn each_message_round_trips_and_reads_no_further() {
        for m in [Message::Banner, Message::Ready, Message::Go, Message::Report] {
            let mut out = Vec::new();
            write_bytes(&mut out, Channel::Ack, m.name(), m.bytes()).unwrap();
            out.extend_from_slice(b"next");
            let mut r = io::Cursor::new(&out);
            read_message(&mut r, Channel::Ack, m).unwrap();
            assert_eq!(r.position() as usize, m.bytes().len(), "{m}");
        }
    }

    /// A reader that hands out one byte per read.
    struct Trickle<'a>(&'a [u8]);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match self.0.split_first() {
                Some((&b, rest)) if !buf.is_empty() => {
                    buf[0] = b;
                    self.0 = rest;
                    Ok(1)
                }
                _ => Ok(0),
            }
        }
    }

    #[test]
    fn short_garbled_and_oversized_banners() {
        // Short: the channel ends inside it.
        let e = read_message(&mut &BANNER[..20], Channel::Ack, Message::Banner).unwrap_err();
        assert!(matches!(e, XlMigrateError::Closed { got: 20, what: Message::Banner, .. }), "{e}");
        assert_eq!(e.to_string(), "the migration ack channel ended after 20 of the 54 bytes of the banner");
        // Empty.
        let e = read_message(&mut &b""[..], Channel::Ack, Message::Banner).unwrap_err();
        assert!(matches!(e, XlMigrateError::Closed { got: 0, .. }));
        // Garbled: what ssh says when xl is missing; the read stops at the first wrong byte.
        let mut r = Trickle(b"bash: xl: command not found\n");
        let e = read_message(&mut r, Channel::Ack, Message::Banner).unwrap_err();
        assert!(matches!(e, XlMigrateError::Unexpected { offset: 0, .. }));
        assert_eq!(r.0.len(), 27, "one byte read");
        assert_eq!(
            e.to_string(),
            "the migration ack channel carries \"b\" where xl's banner was expected (byte 0 differs)"
        );
        let mut late = BANNER.to_vec();
        late[52] = b'!';
        let e = read_message(&mut &late[..], Channel::Ack, Message::Banner).unwrap_err();
        assert!(matches!(e, XlMigrateError::Unexpected { offset: 52, ref received, .. } if received.len() == 53));
        assert!(e.to_string().contains("send binary domain data!\""), "{e}");
        // Oversized: the banner reads clean, and the extra bytes are where READY should be.
        let mut over = BANNER.to_vec();
        over.extend_from_slice(b"extra\n");
        let mut r = io::Cursor::new(&over);
        read_message(&mut r, Channel::Ack, Message::Banner).unwrap();
        assert_eq!(r.position(), 54);
        let e = read_message(&mut r, Channel::Ack, Message::Ready).unwrap_err();
        assert!(matches!(e, XlMigrateError::Unexpected { offset: 0, what: Message::Ready, .. }));
    }

    #[test]
    fn short_and_garbled_messages_and_status() {
        for m in [Message::Ready, Message::Go, Message::Report] {
            let b = m.bytes();
            let e = read_message(&mut &b[..b.len() - 1], Channel::Stream, m).unwrap_err();
            assert!(matches!(e, XlMigrateError::Closed { got, .. } if got == b.len() - 1), "{e}");
            let mut wrong = b.to_vec();
            *wrong.last_mut().unwrap() = b'\n';
            let e = read_message(&mut &wrong[..], Channel::Stream, m).unwrap_err();
            assert!(matches!(e, XlMigrateError::Unexpected { offset, .. } if offset == b.len() - 1), "{e}");
            // Trickled in, it is the same message.
            read_message(&mut Trickle(b), Channel::Stream, m).unwrap();
        }
        assert_eq!(read_status(&mut &[7u8][..], Channel::Ack).unwrap(), 7);
        assert!(matches!(read_status(&mut &b""[..], Channel::Ack), Err(XlMigrateError::NoStatus { .. })));
        let e = XlMigrateError::Unexpected {
            channel: Channel::Ack,
            what: Message::Go,
            offset: 70,
            received: vec![b'x'; 71],
        };
        assert!(e.to_string().contains("xxx\"..."), "{e}");
    }

    #[test]
    fn sender_paths() {
        let mut s = Sender::new();
        assert_eq!(s.step().expects(), Some(Message::Banner));
        for want in [
            SenderStep::WriteStream,
            SenderStep::ReadReady,
            SenderStep::RenameAway,
            SenderStep::WriteGo,
            SenderStep::ReadReport,
            SenderStep::ReadStatus,
        ] {
            assert_eq!(s.succeeded(), want);
        }
        assert_eq!(s.succeeded(), SenderStep::ReadStatus, "a status byte is needed");
        assert_eq!(s.status_read(0), SenderStep::Done(SenderOutcome::Migrated));
        assert_eq!(s.status(), Some(0));
        assert_eq!(s.failed(), SenderStep::Done(SenderOutcome::Migrated), "done stays done");

        // A failure at each step before GO keeps the source; from GO on, it is undefined.
        let before = [SenderStep::ReadBanner, SenderStep::WriteStream, SenderStep::ReadReady, SenderStep::RenameAway];
        for n in 0..7 {
            let mut s = Sender::new();
            for _ in 0..n {
                s.succeeded();
            }
            let at = s.step();
            let want = if before.contains(&at) { SenderOutcome::KeepSource } else { SenderOutcome::Undefined };
            assert_eq!(s.failed(), SenderStep::Done(want), "failure at {at:?}");
        }
        // A failed start, then the permission: the source is kept; without it: undefined.
        let mut s = Sender::new();
        for _ in 0..6 {
            s.succeeded();
        }
        assert_eq!(s.status_read(3), SenderStep::ReadPermission { status: 3 });
        assert_eq!(s.step().expects(), Some(Message::Go));
        let mut t = s.clone();
        assert_eq!(s.succeeded(), SenderStep::Done(SenderOutcome::KeepSource));
        assert_eq!(t.failed(), SenderStep::Done(SenderOutcome::Undefined));
        assert_eq!(SenderStep::WriteGo.sends(), Some(Message::Go));
    }

    #[test]
    fn receiver_paths() {
        let mut r = Receiver::new();
        assert_eq!(r.step().sends(), Some(Message::Banner));
        for want in [
            ReceiverStep::ReadStream,
            ReceiverStep::WriteReady,
            ReceiverStep::ReadGo,
            ReceiverStep::Start,
            ReceiverStep::WriteReport { status: 0 },
            ReceiverStep::WriteStatus { status: 0 },
            ReceiverStep::Done(ReceiverOutcome::Running),
        ] {
            assert_eq!(r.succeeded(), want);
        }
        // No GO: report 0xff, destroy, permission.
        let mut r = Receiver::new();
        for _ in 0..3 {
            r.succeeded();
        }
        assert_eq!(r.step().expects(), Some(Message::Go));
        assert_eq!(r.failed(), ReceiverStep::WriteReport { status: STATUS_NO_GO });
        assert_eq!(r.succeeded(), ReceiverStep::WriteStatus { status: STATUS_NO_GO });
        assert_eq!(r.succeeded(), ReceiverStep::Destroy { permission: true });
        assert_eq!(r.succeeded(), ReceiverStep::WritePermission);
        assert_eq!(r.succeeded(), ReceiverStep::Done(ReceiverOutcome::NoCopy));
        // A failed start reports its status (0 is not a failure status).
        let mut r = Receiver::new();
        for _ in 0..4 {
            r.succeeded();
        }
        let mut r2 = r.clone();
        assert_eq!(r.start_failed(5), ReceiverStep::WriteReport { status: 5 });
        assert_eq!(r2.start_failed(0), ReceiverStep::WriteReport { status: STATUS_FAIL });
        // A stream that fails: whatever exists is destroyed, no permission is sent.
        let mut r = Receiver::new();
        r.succeeded();
        assert_eq!(r.failed(), ReceiverStep::Destroy { permission: false });
        assert_eq!(r.succeeded(), ReceiverStep::Done(ReceiverOutcome::NoCopy));
        // A copy that cannot be destroyed is left, and said so.
        let mut r = Receiver::new();
        r.succeeded();
        r.failed();
        assert_eq!(r.failed(), ReceiverStep::Done(ReceiverOutcome::Undefined));
        // The report cannot be written: a running copy runs on, a failed one goes.
        let mut r = Receiver::new();
        for _ in 0..5 {
            r.succeeded();
        }
        assert_eq!(r.clone().failed(), ReceiverStep::Done(ReceiverOutcome::Running));
        let mut r = Receiver::new();
        r.succeeded();
        r.succeeded();
        r.succeeded();
        r.failed();
        assert_eq!(r.failed(), ReceiverStep::Destroy { permission: false });
    }

    /// Scripted actions that record what was done.
    #[derive(Default)]
    struct Script {
        log: Vec<&'static str>,
        fail: Option<&'static str>,
    }
    impl Script {
        fn act(&mut self, name: &'static str) -> Result<(), BoxError> {
            self.log.push(name);
            if self.fail == Some(name) { Err(format!("{name} refused").into()) } else { Ok(()) }
        }
    }
    impl SenderActions for Script {
        fn send_stream(&mut self, stream: &mut dyn Write) -> Result<(), BoxError> {
            self.act("stream")?;
            stream.write_all(b"STREAM")?;
            Ok(())
        }
        fn rename_away(&mut self) -> Result<(), BoxError> {
            self.act("rename")
        }
    }
    impl ReceiverActions for Script {
        fn receive_stream(&mut self, stream: &mut dyn Read) -> Result<(), BoxError> {
            self.act("receive")?;
            let mut b = [0u8; 6];
            stream.read_exact(&mut b)?;
            if &b != b"STREAM" {
                return Err("not the stream".into());
            }
            Ok(())
        }
        fn start(&mut self) -> Result<(), (u8, BoxError)> {
            self.act("start").map_err(|e| (9, e))
        }
        fn destroy(&mut self) -> Result<(), BoxError> {
            self.act("destroy")
        }
    }

    /// The sender reading a scripted ack channel: each prefix of the good answer is a peer
    /// that closes at that step.
    #[test]
    fn a_receiver_that_closes_at_each_step() {
        let good = [&BANNER[..], READY, REPORT, &[0]].concat();
        for cut in 0..=good.len() {
            let mut acts = Script::default();
            let mut stream = Vec::new();
            let ended = run_sender(&mut &good[..cut], &mut stream, &mut acts);
            let want = if cut < 88 {
                SenderOutcome::KeepSource
            } else if cut < good.len() {
                SenderOutcome::Undefined
            } else {
                SenderOutcome::Migrated
            };
            assert_eq!(ended.outcome, want, "cut at {cut}: {:?}", ended.error);
            assert_eq!(ended.error.is_none(), cut == good.len());
            assert_eq!(acts.log.contains(&"stream"), cut >= 54, "cut at {cut}");
            assert_eq!(acts.log.contains(&"rename"), cut >= 88, "cut at {cut}");
            assert_eq!(stream.ends_with(GO), cut >= 88);
        }
        // A failed start with permission.
        let refused = [&BANNER[..], READY, REPORT, &[3], GO].concat();
        let ended = run_sender(&mut &refused[..], &mut Vec::new(), &mut Script::default());
        assert_eq!((ended.outcome, ended.status), (SenderOutcome::KeepSource, Some(3)));
        let ended = run_sender(&mut &refused[..refused.len() - 1], &mut Vec::new(), &mut Script::default());
        assert_eq!(ended.outcome, SenderOutcome::Undefined);
        // The sender's own failures.
        for (fail, want) in [("stream", SenderOutcome::KeepSource), ("rename", SenderOutcome::KeepSource)] {
            let mut acts = Script { fail: Some(fail), ..Default::default() };
            let mut stream = Vec::new();
            let ended = run_sender(&mut &good[..], &mut stream, &mut acts);
            assert_eq!(ended.outcome, want);
            assert!(ended.error.unwrap().to_string().contains(&format!("{fail} refused")));
            assert!(!stream.ends_with(GO));
        }
    }

    /// The receiver reading a scripted stream channel: each prefix is a sender that closes.
    #[test]
    fn a_sender_that_closes_at_each_step() {
        let good = [&b"STREAM"[..], GO].concat();
        for cut in 0..=good.len() {
            let mut acts = Script::default();
            let mut ack = Vec::new();
            let ended = run_receiver(&mut &good[..cut], &mut ack, &mut acts);
            let (want, log, reply): (_, &[&str], Vec<u8>) = if cut < 6 {
                (ReceiverOutcome::NoCopy, &["receive", "destroy"], BANNER.to_vec())
            } else if cut < good.len() {
                (
                    ReceiverOutcome::NoCopy,
                    &["receive", "destroy"],
                    [&BANNER[..], READY, REPORT, &[STATUS_NO_GO], GO].concat(),
                )
            } else {
                (ReceiverOutcome::Running, &["receive", "start"], [&BANNER[..], READY, REPORT, &[0]].concat())
            };
            assert_eq!(ended.outcome, want, "cut at {cut}");
            assert_eq!(acts.log, log, "cut at {cut}");
            assert_eq!(ack, reply, "cut at {cut}");
        }
        // A start that fails: its status, then destroy and permission.
        let mut acts = Script { fail: Some("start"), ..Default::default() };
        let mut ack = Vec::new();
        let ended = run_receiver(&mut &good[..], &mut ack, &mut acts);
        assert_eq!((ended.outcome, ended.status), (ReceiverOutcome::NoCopy, Some(9)));
        assert_eq!(acts.log, ["receive", "start", "destroy"]);
        assert_eq!(ack, [&BANNER[..], READY, REPORT, &[9], GO].concat());
        // A copy that cannot be destroyed: no permission.
        let mut acts = Script { fail: Some("destroy"), ..Default::default() };
        let mut ack = Vec::new();
        let ended = run_receiver(&mut &good[..3], &mut ack, &mut acts);
        assert_eq!(ended.outcome, ReceiverOutcome::Undefined);
        assert_eq!(ended.more.len(), 1);
        assert_eq!(ack, BANNER);
    }

    /// A channel whose writes fail after `room` bytes.
    struct Full {
        room: usize,
        out: Vec<u8>,
    }
    impl Write for Full {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(io::ErrorKind::BrokenPipe.into());
            }
            let n = buf.len().min(self.room);
            self.room -= n;
            self.out.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn broken_ack_channel_at_each_write() {
        let good = [&b"STREAM"[..], GO].concat();
        let full = [&BANNER[..], READY, REPORT, &[0]].concat();
        for room in 0..full.len() {
            let mut acts = Script::default();
            let mut ack = Full { room, out: Vec::new() };
            let ended = run_receiver(&mut &good[..], &mut ack, &mut acts);
            let want = if room < 88 { ReceiverOutcome::NoCopy } else { ReceiverOutcome::Running };
            assert_eq!(ended.outcome, want, "room {room}");
            assert!(matches!(ended.error, Some(XlMigrateError::Io { .. })), "room {room}");
            assert_eq!(acts.log.contains(&"destroy"), (54..88).contains(&room), "room {room}: {:?}", acts.log);
        }
        // The sender cannot write GO: undefined.
        let answers = [&BANNER[..], READY, REPORT, &[0]].concat();
        let mut stream = Full { room: 6, out: Vec::new() };
        let ended = run_sender(&mut &answers[..], &mut stream, &mut Script::default());
        assert_eq!(ended.outcome, SenderOutcome::Undefined);
    }

    #[test]
    fn fuzz_entry_agrees_with_itself_on_the_good_sequences() {
        let migrated = [&BANNER[..], READY, REPORT, &[0]].concat();
        assert_eq!(fuzz_xl_migrate(&migrated), SenderOutcome::Migrated);
        let refused = [&BANNER[..], READY, REPORT, &[3], GO].concat();
        assert_eq!(fuzz_xl_migrate(&refused), SenderOutcome::KeepSource);
        assert_eq!(fuzz_xl_migrate(&refused[..refused.len() - 2]), SenderOutcome::Undefined);
        assert_eq!(fuzz_xl_migrate(b""), SenderOutcome::KeepSource);
        // As a receiver's input: a 2-byte stream, then GO.
        let mut r = vec![2, b'a', b'b'];
        r.extend_from_slice(GO);
        assert_eq!(fuzz_xl_migrate(&r), SenderOutcome::KeepSource);
    }
}
