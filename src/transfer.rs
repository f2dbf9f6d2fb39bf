//! The transfer handshake: how `xsr send` learns the outcome of `xsr receive`.
//!
//! A transfer uses two byte channels: a TCP connection (one per direction), or a pipe pair
//! (`xsr send --via CMD` runs CMD with its standard input and output as the two directions;
//! `xsr send --to - --reply PATH` writes standard output and reads PATH).
//!
//! - **forward** (sender to receiver) carries exactly one Xen stream, as `xsr save` writes
//!   it (an `xl` file, a libxl stream or a bare libxc stream): nothing before it and nothing
//!   after its outermost END, so any reader of Xen streams can consume it;
//! - **back** (receiver to sender) carries the handshake messages, each one line of UTF-8
//!   text of at most [`MAX_LINE`] bytes with its `\n`:
//!
//! ```text
//! XSR-TRANSFER/1 READY
//! XSR-TRANSFER/1 OK <summary>
//! XSR-TRANSFER/1 ERROR <exit code> <message>
//! ```
//!
//! The exchange, in the spirit of `xl migrate` (tools/xl/xl_migrate.c):
//!
//! 1. The receiver prepares its destination (a temporary directory beside `--out`) and
//!    sends `READY`; when it cannot, it sends `ERROR` instead and stops.
//! 2. The sender waits for `READY` (at most the timeout), writes the stream and closes the
//!    forward channel. It reads the back channel while it writes: an `ERROR` stops the
//!    stream at once.
//! 3. The receiver restores as the bytes arrive. After the outermost END it renames the
//!    directory into place and only then sends `OK`. On any failure (a rule broken, its own
//!    bound, a truncated stream, its own I/O) it removes the temporary directory, sends
//!    `ERROR` with its exit code (1 invalid stream, 2 I/O) and message, and reads and drops
//!    the forward channel until the sender closes it (so no TCP reset discards the message).
//! 4. The sender exits 0 only on `OK`; on `ERROR` with the receiver's exit code and message;
//!    with 2 when the back channel closes without an outcome or stays silent longer than the
//!    timeout.
//!
//! A silent peer times out on both sides: the receiver when no stream byte arrives for the
//! timeout, the sender when `READY` or the outcome does not arrive in time or a write stays
//! blocked that long.

use std::io::{self, BufRead, Read, Write};
use std::os::fd::AsFd;
use std::time::Duration;

/// The protocol name and version that starts every message.
pub const PROTOCOL: &str = "XSR-TRANSFER/1";
/// The longest message line, `\n` included.
pub const MAX_LINE: usize = 4096;

/// One handshake message (receiver to sender).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// The destination is prepared: send the stream.
    Ready,
    /// The destination is committed; a one-line summary of what was received.
    Ok(String),
    /// The transfer failed at the receiver; nothing was committed.
    Error {
        /// The receiver's exit code (1: invalid stream, 2: I/O or usage).
        code: u8,
        /// The receiver's message.
        message: String,
    },
}

/// A back-channel line that is not a message of this protocol.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The line is longer than [`MAX_LINE`].
    #[error("handshake message longer than {MAX_LINE} bytes")]
    TooLong,
    /// The channel ended inside a line.
    #[error("handshake message cut after {len} bytes")]
    Cut {
        /// Bytes read.
        len: usize,
    },
    /// The line does not start with [`PROTOCOL`] or names an unknown message.
    #[error("not an {PROTOCOL} message: {line:?}")]
    Unknown {
        /// The line (lossy UTF-8, shortened).
        line: String,
    },
}

/// Text made safe for one message line: control characters become spaces and the whole
/// fits in a line with room for the prefix.
fn one_line(text: &str) -> String {
    let mut s: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let room = MAX_LINE - PROTOCOL.len() - 16;
    if s.len() > room {
        let mut cut = room;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

impl Message {
    /// The message as a line, `\n` included (never longer than [`MAX_LINE`]).
    pub fn encode(&self) -> Vec<u8> {
        let line = match self {
            Message::Ready => format!("{PROTOCOL} READY\n"),
            Message::Ok(summary) => format!("{PROTOCOL} OK {}\n", one_line(summary)),
            Message::Error { code, message } => format!("{PROTOCOL} ERROR {code} {}\n", one_line(message)),
        };
        line.into_bytes()
    }

    /// Parses one line (without its `\n`).
    pub fn parse(line: &[u8]) -> Result<Message, ProtocolError> {
        let unknown = || {
            let shown = &line[..line.len().min(80)];
            ProtocolError::Unknown { line: String::from_utf8_lossy(shown).into_owned() }
        };
        if line.len() >= MAX_LINE {
            return Err(ProtocolError::TooLong);
        }
        let text = std::str::from_utf8(line).map_err(|_| unknown())?;
        let rest = text.strip_prefix(PROTOCOL).and_then(|r| r.strip_prefix(' ')).ok_or_else(unknown)?;
        let (verb, args) = rest.split_once(' ').unwrap_or((rest, ""));
        match verb {
            "READY" if args.is_empty() => Ok(Message::Ready),
            "OK" => Ok(Message::Ok(args.to_string())),
            "ERROR" => {
                let (code, message) = args.split_once(' ').unwrap_or((args, ""));
                match code.parse::<u8>() {
                    Ok(code @ 1..=125) => Ok(Message::Error { code, message: message.to_string() }),
                    _ => Err(unknown()),
                }
            }
            _ => Err(unknown()),
        }
    }

    /// Writes the message and flushes.
    pub fn write_to(&self, out: &mut dyn Write) -> io::Result<()> {
        out.write_all(&self.encode())?;
        out.flush()
    }
}

/// Reads one message; `Ok(None)` when the channel ends before its first byte. Reads at most
/// [`MAX_LINE`] bytes whatever the peer sends.
pub fn read_message(input: &mut dyn BufRead) -> Result<Option<Message>, ReadError> {
    let mut line = Vec::new();
    let n = input.take(MAX_LINE as u64).read_until(b'\n', &mut line).map_err(ReadError::Io)?;
    if n == 0 {
        return Ok(None);
    }
    if line.last() != Some(&b'\n') {
        return Err(ReadError::Protocol(if n >= MAX_LINE {
            ProtocolError::TooLong
        } else {
            ProtocolError::Cut { len: n }
        }));
    }
    line.pop();
    Message::parse(&line).map(Some).map_err(ReadError::Protocol)
}

/// Why a message could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The channel failed.
    #[error("reading the back channel: {0}")]
    Io(#[source] io::Error),
    /// The peer does not speak this protocol.
    #[error(transparent)]
    Protocol(ProtocolError),
}

/// The receiver refused the stream or failed: its exit code and message. `xsr send` exits
/// with that code.
#[derive(Debug, thiserror::Error)]
#[error("the receiver failed (exit {code}): {message}")]
pub struct ReceiverFailed {
    /// The receiver's exit code.
    pub code: u8,
    /// The receiver's message.
    pub message: String,
}

/// A reader that waits at most `timeout` for each read to have data (poll(2) on its file
/// descriptor), then fails with [`io::ErrorKind::TimedOut`]: a silent peer becomes an error
/// instead of a hang. Reads are passed through unbuffered.
#[derive(Debug)]
pub struct TimeoutReader<R> {
    inner: R,
    timeout: Duration,
}

impl<R: Read + AsFd> TimeoutReader<R> {
    /// Wraps `inner`.
    pub fn new(inner: R, timeout: Duration) -> Self {
        Self { inner, timeout }
    }

    fn wait(&self) -> io::Result<()> {
        use rustix::event::{PollFd, PollFlags, Timespec, poll};
        let timeout = Timespec {
            tv_sec: self.timeout.as_secs().try_into().unwrap_or(i64::MAX),
            tv_nsec: i64::from(self.timeout.subsec_nanos()),
        };
        loop {
            let mut fds = [PollFd::new(&self.inner, PollFlags::IN)];
            match poll(&mut fds, Some(&timeout)) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("no data from the peer for {} s (--timeout)", self.timeout.as_secs_f64()),
                    ));
                }
                Ok(_) => return Ok(()),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

impl<R: Read + AsFd> Read for TimeoutReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        self.wait()?;
        self.inner.read(buf)
    }
}

/// The fuzz entry point (the `handshake` fuzz target and the replay of its corpus): reads
/// messages from `data` until it ends or a line is rejected. Panics if a message does not
/// survive encoding, or if more than [`MAX_LINE`] bytes were taken for one message.
pub fn fuzz_handshake(data: &[u8]) -> usize {
    let mut input = io::Cursor::new(data);
    let mut messages = 0;
    loop {
        let before = input.position();
        let m = match read_message(&mut input) {
            Ok(Some(m)) => m,
            Ok(None) | Err(_) => return messages,
        };
        assert!(input.position() - before <= MAX_LINE as u64, "a message took more than MAX_LINE bytes");
        let line = m.encode();
        assert!(line.len() <= MAX_LINE);
        let again = read_message(&mut io::Cursor::new(&line)).expect("an encoded message parses").expect("one message");
        match (&m, &again) {
            (Message::Ready, Message::Ready) | (Message::Ok(_), Message::Ok(_)) => {}
            (Message::Error { code: a, .. }, Message::Error { code: b, .. }) => assert_eq!(a, b),
            _ => panic!("{m:?} encoded as {again:?}"),
        }
        assert_eq!(again.encode(), line, "encoding is stable");
        messages += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        for m in [
            Message::Ready,
            Message::Ok("received x86 PV domain: 8192 pages".into()),
            Message::Ok(String::new()),
            Message::Error { code: 1, message: "record 4 at byte 1747: bad".into() },
            Message::Error { code: 2, message: String::new() },
        ] {
            let line = m.encode();
            assert!(line.len() <= MAX_LINE && line.ends_with(b"\n"));
            let mut r = io::Cursor::new(line);
            assert_eq!(read_message(&mut r).unwrap(), Some(m));
            assert_eq!(read_message(&mut r).unwrap(), None);
        }
    }

    #[test]
    fn exact_bytes() {
        assert_eq!(Message::Ready.encode(), b"XSR-TRANSFER/1 READY\n");
        assert_eq!(
            Message::Error { code: 1, message: "a\nb".into() }.encode(),
            b"XSR-TRANSFER/1 ERROR 1 a b\n",
            "a message stays on one line"
        );
    }

    #[test]
    fn long_messages_are_shortened_to_one_line() {
        let m = Message::Error { code: 2, message: "é".repeat(5000) };
        let line = m.encode();
        assert!(line.len() <= MAX_LINE);
        let Some(Message::Error { code: 2, message }) = read_message(&mut io::Cursor::new(line)).unwrap() else {
            panic!()
        };
        assert!(message.chars().all(|c| c == 'é') && message.len() > 4000);
    }

    #[test]
    fn hostile_lines_are_errors() {
        let cases: &[&[u8]] = &[
            b"HELLO\n",
            b"XSR-TRANSFER/2 READY\n",
            b"XSR-TRANSFER/1 READY now\n",
            b"XSR-TRANSFER/1 ERROR 0 zero is success\n",
            b"XSR-TRANSFER/1 ERROR x msg\n",
            b"XSR-TRANSFER/1 ERROR 300 msg\n",
            b"XSR-TRANSFER/1 MAYBE\n",
            b"XSR-TRANSFER/1\n",
            b"\xff\xfe\n",
            b"XSR-TRANSFER/1 READY",
        ];
        for c in cases {
            assert!(read_message(&mut io::Cursor::new(c.to_vec())).is_err(), "{:?}", String::from_utf8_lossy(c));
        }
        let endless = vec![b'X'; 10 * MAX_LINE];
        assert!(matches!(
            read_message(&mut io::Cursor::new(endless)),
            Err(ReadError::Protocol(ProtocolError::TooLong))
        ));
    }

    /// Replays `tests/corpus/handshake/`: `ok-N-*` files hold N messages, `bad-*` files
    /// none before the first rejected line.
    #[test]
    fn corpus_replays() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/handshake");
        let mut n = 0;
        for e in std::fs::read_dir(dir).unwrap() {
            let path = e.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let got = fuzz_handshake(&std::fs::read(&path).unwrap());
            let want: usize = if let Some(rest) = name.strip_prefix("ok-") {
                rest.split('-').next().unwrap().parse().unwrap()
            } else {
                assert!(name.starts_with("bad-"), "{name}");
                0
            };
            assert_eq!(got, want, "{name}");
            n += 1;
        }
        assert!(n >= 8, "only {n} corpus files");
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(proptest::num::u8::ANY, 0..9000)) {
            fuzz_handshake(&data);
        }

        #[test]
        fn any_text_survives_as_one_line(code in 1u8..=125, text in ".{0,200}") {
            let m = Message::Error { code, message: text.clone() };
            let back = read_message(&mut io::Cursor::new(m.encode())).unwrap().unwrap();
            let want: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
            proptest::prop_assert_eq!(back, Message::Error { code, message: want });
        }
    }

    #[test]
    fn a_silent_pipe_times_out() {
        let (r, _w) = std::io::pipe().unwrap();
        let mut t = TimeoutReader::new(r, Duration::from_millis(50));
        let e = t.read(&mut [0u8; 8]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    }

    #[test]
    fn data_passes_through() {
        let (r, mut w) = std::io::pipe().unwrap();
        w.write_all(b"abc").unwrap();
        drop(w);
        let mut t = TimeoutReader::new(r, Duration::from_secs(5));
        let mut s = String::new();
        t.read_to_string(&mut s).unwrap();
        assert_eq!(s, "abc");
    }
}
