//! `xsr send` and `xsr receive`: one transfer between two processes, over TCP or a pipe
//! pair, whose exit status is the outcome of the whole transfer (see [`crate::transfer`] for
//! the handshake).

use std::fs::File;
use std::io::{self, BufRead, BufReader, IoSlice, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use sr_memory::{FileMemory, GuestMemory};
use sr_restore::{NoMemory, RestoreOptions, Restored};
use sr_save::{SaveError, SaveStats};

use crate::cmd::restore::restore_into;
use crate::cmd::save::{SaveSettings, save_to};
use crate::dir_guest::DirGuest;
use crate::image_dir::{AtomicDir, AtomicFile};
use crate::input::{Input, read_head};
use crate::outcome::{exit_code, render};
use crate::output::OutputRules;
#[cfg(feature = "tls")]
use crate::tls::{Authz, TlsReader, TlsWriter};
use crate::tls::{HELLO_WAIT, Session, TLS_FLAGS, TlsFailure, TlsFiles, TransportMismatch, is_tls_record};
use crate::transfer::{Message, ReadError, ReceiverFailed, TimeoutReader, read_message};
use sr_proto::xl_migrate::{self as xl, XlMigrateError};

/// The default for `--timeout`: how long a peer may stay silent.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Whether plaintext TCP may use `addr` without `--insecure`: loopback addresses only
/// (127.0.0.0/8, ::1 and ::ffff:127.0.0.0/104). The unspecified address (listening on every
/// interface) is not loopback.
pub fn is_loopback(addr: &SocketAddr) -> bool {
    match addr.ip() {
        IpAddr::V4(ip) => ip.is_loopback(),
        IpAddr::V6(ip) => ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
    }
}

/// Refuses plaintext TCP to or on an address that is not loopback, unless `insecure`: the
/// guest's memory would cross a network unencrypted, and anyone who reaches the port could
/// send or receive a guest. `flag` and `spec` are what the user gave (`--to`, `HOST:PORT`).
pub fn check_plaintext(flag: &str, spec: &str, addrs: &[SocketAddr], insecure: bool) -> Result<()> {
    if insecure {
        return Ok(());
    }
    if let Some(bad) = addrs.iter().find(|a| !is_loopback(a)) {
        let ssh = if flag == "--listen" {
            "let the sender carry the transfer over ssh to `xsr receive --from -`"
        } else {
            "carry the transfer over ssh (send --via 'ssh HOST xsr receive --from - ...')"
        };
        bail!(
            "refusing plaintext TCP with {flag} {spec} ({bad} is not a loopback address): guest memory would cross \
             the network unencrypted and unauthenticated. Use TLS (--tls-cert FILE --tls-key FILE --tls-ca FILE on \
             both sides), {ssh}, or pass --insecure on a network you trust"
        );
    }
    Ok(())
}

fn resolve(flag: &str, spec: &str) -> Result<Vec<SocketAddr>> {
    let addrs: Vec<SocketAddr> =
        spec.to_socket_addrs().with_context(|| format!("{flag} {spec}: not an address (HOST:PORT)"))?.collect();
    if addrs.is_empty() {
        bail!("{flag} {spec}: the name has no address");
    }
    Ok(addrs)
}

/// The host part of `HOST:PORT` (`[v6]:PORT` without its brackets).
#[cfg(feature = "tls")]
fn host_of(spec: &str) -> &str {
    let host = spec.rsplit_once(':').map_or(spec, |(h, _)| h);
    host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host)
}

/// The sender's TLS settings, loaded and checked before anything is sent.
#[cfg(feature = "tls")]
#[derive(Clone, Debug)]
pub struct ClientTls {
    config: Arc<rustls::ClientConfig>,
    /// The name the receiver's certificate must carry.
    name: rustls::pki_types::ServerName<'static>,
}

/// The receiver's TLS settings.
#[cfg(feature = "tls")]
#[derive(Clone, Debug)]
pub struct ServerTls {
    config: Arc<rustls::ServerConfig>,
    authz: Arc<Authz>,
}

#[cfg(feature = "tls")]
impl ServerTls {
    /// The handshake with the sender that connected from `peer` (within `timeout`), logged
    /// on standard error; a refused peer gets one TLS alert and the command fails.
    fn accept(&self, stream: TcpStream, peer: SocketAddr, timeout: Duration) -> Result<Arc<Session>> {
        let session =
            Session::accept(stream, Arc::clone(&self.config), Arc::clone(&self.authz), peer.to_string(), timeout)
                .context("refused the connection")?;
        eprintln!("accepted {peer}: {}", session.describe());
        Ok(session)
    }
}

/// Ends a receiver's TLS session: `close_notify`, then the socket shut down.
#[cfg(feature = "tls")]
fn end_session(session: &Session, timeout: Duration) {
    let _ = session.close_notify(timeout);
    let _ = session.socket().shutdown(Shutdown::Both);
}

/// The sender's TLS settings: none can exist in a build without the `tls` feature.
#[cfg(not(feature = "tls"))]
#[derive(Clone, Debug)]
pub enum ClientTls {}

/// The receiver's TLS settings: none can exist in a build without the `tls` feature.
#[cfg(not(feature = "tls"))]
#[derive(Clone, Debug)]
pub enum ServerTls {}

/// Where `xsr send` sends.
#[derive(Clone, Debug)]
pub enum Peer {
    /// `--to HOST:PORT`: a TCP connection carries both directions, in TLS when `tls` is set.
    Tcp {
        /// HOST:PORT as given.
        addr: String,
        /// The TLS settings (none: plaintext).
        tls: Option<ClientTls>,
    },
    /// `--via CMD`: `sh -c CMD` is started with its standard input as the forward channel
    /// and its standard output as the back channel (its standard error is ours).
    Via(String),
    /// `--to - --reply PATH`: the stream goes to standard output, the messages are read
    /// from PATH (a named pipe, `/dev/fd/N`).
    Stdout {
        /// The back channel.
        reply: PathBuf,
    },
}

impl Peer {
    /// `--to HOST:PORT`, checked up front: with `tls`, the credentials are loaded and the
    /// receiver's certificate must name `tls_name` (default: HOST); without, HOST must be
    /// loopback unless `insecure` (see [`check_plaintext`]).
    pub fn tcp(to: &str, tls: Option<&TlsFiles>, tls_name: Option<&str>, insecure: bool) -> Result<Peer> {
        let tls = match tls {
            None => {
                check_plaintext("--to", to, &resolve("--to", to)?, insecure)?;
                None
            }
            #[cfg(not(feature = "tls"))]
            Some(_) => {
                let _ = tls_name;
                bail!("{}", crate::tls::NOT_BUILT)
            }
            #[cfg(feature = "tls")]
            Some(files) => {
                let name = tls_name.unwrap_or_else(|| host_of(to));
                let name = rustls::pki_types::ServerName::try_from(name.to_string()).with_context(|| {
                    format!("{name:?} is not a DNS name or IP address to check the receiver against (--tls-name)")
                })?;
                Some(ClientTls { config: crate::tls::client_config(files)?, name })
            }
        };
        Ok(Peer::Tcp { addr: to.to_string(), tls })
    }

    fn name(&self) -> String {
        match self {
            Peer::Tcp { addr, .. } => addr.clone(),
            Peer::Via(cmd) => format!("`{cmd}`"),
            Peer::Stdout { reply } => format!("the receiver replying on {}", reply.display()),
        }
    }
}

/// What a successful send did.
#[derive(Debug)]
pub struct Sent {
    /// The saver's statistics.
    pub stats: SaveStats,
    /// The receiver's summary (from its `OK`).
    pub summary: String,
    /// Over TLS: the session (cipher suite, key exchange, the receiver's certificate names).
    pub tls: Option<String>,
}

/// The environment variable that makes a migration wait at one stage (`STAGE:SECONDS`), so
/// that the fault tests can cut the network or kill a process there. Stages: the sender's
/// `precopy` (a live send's first pass sent, the second not begun: the stream in flight),
/// `sent` (stream written, READY not yet read), `renamed` (renamed away, GO not yet sent),
/// `go` (GO sent, no report yet); the receiver's `restored` (before READY), `go` (GO read,
/// not yet started), `started` (running, report not yet written).
pub const HOLD_ENV: &str = "XSR_TEST_HOLD";

/// Waits at `stage` when [`HOLD_ENV`] names it.
pub fn hold(stage: &str) {
    let Some(v) = std::env::var_os(HOLD_ENV) else { return };
    let v = v.to_string_lossy();
    let Some((at, secs)) = v.split_once(':') else { return };
    if at == stage
        && let Ok(secs) = secs.parse::<u64>()
    {
        eprintln!("xsr: holding at {stage} for {secs} s ({HOLD_ENV})");
        std::thread::sleep(Duration::from_secs(secs));
    }
}

/// Where the sender notes that it is about to send GO, for its supervising process (see
/// [`set_go_note`]).
static GO_NOTE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Names the file in which the sender writes `go` just before it sends GO: a supervising
/// process that finds its saver dead and the domain renamed away learns from it whether GO
/// may have left (then the domain must stay suspended) or not (then it is renamed back and
/// resumed).
pub fn set_go_note(path: PathBuf) {
    let _ = GO_NOTE.set(path);
}

fn note_go() {
    if let Some(path) = GO_NOTE.get() {
        let _ = std::fs::write(path, "go");
    }
}

/// The sender's part of a hand-over (`send --domain` into a receiver that restores into a
/// domain and speaks xl's migration protocol).
pub trait Handover {
    /// Whether this send may hand the guest over (checked once the receiver's banner came,
    /// before the stream).
    fn can_hand_over(&self) -> Result<()>;
    /// Renames the source `NAME--migratedaway`; GO follows at once (xl's point of no return).
    fn rename_away(&mut self) -> Result<()>;
}

/// The hand-over ended without a report: GO was sent (or may have been), and whether the
/// receiver's copy runs is unknown. The source must stay as it is (suspended, renamed away).
#[derive(Debug, thiserror::Error)]
#[error(
    "the migration failed during the final hand-over ({why}): the state of the domain is undefined. The source is \
     left suspended and renamed NAME--migratedaway: check both ends for a running copy before resuming at most one"
)]
pub struct HandoverUndefined {
    /// What failed.
    pub why: String,
}

/// State shared by the sender, its back-channel reader and its watchdog.
#[derive(Debug)]
struct Shared {
    start: Instant,
    /// The receiver sent ERROR: the writer fails at its next write.
    peer_failed: AtomicBool,
    /// Milliseconds since `start` when the pending write began (`u64::MAX`: none pending).
    write_since: AtomicU64,
    /// The watchdog gave up on a blocked write.
    stalled: AtomicBool,
    /// The stream is finished: the watchdog stops.
    done: AtomicBool,
}

impl Shared {
    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis().try_into().unwrap_or(u64::MAX - 1)
    }
}

/// The forward channel, failing as soon as the receiver reported an error, and telling the
/// watchdog when a write is pending.
struct Guarded {
    inner: Box<dyn Write + Send>,
    shared: Arc<Shared>,
}

impl Guarded {
    fn run<T>(&mut self, f: impl FnOnce(&mut dyn Write) -> io::Result<T>) -> io::Result<T> {
        if self.shared.peer_failed.load(Ordering::Acquire) {
            return Err(io::Error::new(io::ErrorKind::ConnectionAborted, "the receiver reported an error"));
        }
        self.shared.write_since.store(self.shared.now_ms(), Ordering::Release);
        let r = f(&mut *self.inner);
        self.shared.write_since.store(u64::MAX, Ordering::Release);
        r
    }
}

impl Write for Guarded {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.run(|w| w.write(buf))
    }
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.run(|w| w.write_vectored(bufs))
    }
    fn flush(&mut self) -> io::Result<()> {
        self.run(|w| w.flush())
    }
}

type BackOpener = Box<dyn FnOnce() -> io::Result<Box<dyn Read + Send>> + Send>;

/// The two channels to the receiver.
struct Link {
    forward: Option<Box<dyn Write + Send>>,
    back: Option<BackOpener>,
    tcp: Option<TcpStream>,
    tls: Option<Arc<Session>>,
    child: Option<Arc<Mutex<Child>>>,
    timeout: Duration,
}

impl Link {
    fn open(peer: &Peer, timeout: Duration) -> Result<Link> {
        match peer {
            Peer::Tcp { addr: to, tls: None } => {
                let stream = connect(to, timeout)?;
                stream.set_nodelay(true).ok();
                let back = stream.try_clone().context("cannot clone the connection")?;
                let forward = stream.try_clone().context("cannot clone the connection")?;
                Ok(Link {
                    forward: Some(Box::new(forward)),
                    back: Some(Box::new(move || Ok(Box::new(back) as Box<dyn Read + Send>))),
                    tcp: Some(stream),
                    tls: None,
                    child: None,
                    timeout,
                })
            }
            #[cfg(not(feature = "tls"))]
            Peer::Tcp { tls: Some(tls), .. } => match *tls {},
            #[cfg(feature = "tls")]
            Peer::Tcp { addr: to, tls: Some(tls) } => {
                let stream = connect(to, timeout)?;
                stream.set_nodelay(true).ok();
                let tcp = stream.try_clone().context("cannot clone the connection")?;
                let session = Session::connect(stream, Arc::clone(&tls.config), tls.name.clone(), to.clone(), timeout)?;
                let back = TlsReader::new(Arc::clone(&session), timeout);
                Ok(Link {
                    forward: Some(Box::new(TlsWriter::new(Arc::clone(&session), timeout))),
                    back: Some(Box::new(move || Ok(Box::new(back) as Box<dyn Read + Send>))),
                    tcp: Some(tcp),
                    tls: Some(session),
                    child: None,
                    timeout,
                })
            }
            Peer::Via(cmd) => {
                // Its own process group, so that a timeout or an interrupt ends the command
                // with everything it started (an ssh and its ProxyCommand, both sides of a
                // shell pipeline), not only the shell.
                let mut child = Command::new("sh")
                    .arg("-c")
                    .arg(cmd)
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .process_group(0)
                    .spawn()
                    .with_context(|| format!("cannot start `{cmd}`"))?;
                let pgid = i32::try_from(child.id()).context("process id out of range")?;
                crate::output::kill_process_group_on_signals(pgid);
                let forward = child.stdin.take().context("no pipe to the command")?;
                crate::pipe::widen(&forward);
                let back = child.stdout.take().context("no pipe from the command")?;
                Ok(Link {
                    forward: Some(Box::new(forward)),
                    back: Some(Box::new(move || Ok(Box::new(back) as Box<dyn Read + Send>))),
                    tcp: None,
                    tls: None,
                    child: Some(Arc::new(Mutex::new(child))),
                    timeout,
                })
            }
            Peer::Stdout { reply } => {
                // A duplicate of fd 1 as a File: unbuffered, and `writev` reaches the pipe directly.
                let fd = io::stdout().as_fd().try_clone_to_owned().context("cannot use standard output")?;
                crate::pipe::widen(&fd);
                let reply = reply.clone();
                Ok(Link {
                    forward: Some(Box::new(File::from(fd))),
                    // Opening a named pipe blocks until the receiver's side opens it, so it
                    // is opened by the reader thread, under the READY timeout.
                    back: Some(Box::new(move || {
                        File::open(&reply)
                            .map(|f| Box::new(f) as Box<dyn Read + Send>)
                            .map_err(|e| io::Error::new(e.kind(), format!("cannot open {}: {e}", reply.display())))
                    })),
                    tcp: None,
                    tls: None,
                    child: None,
                    timeout,
                })
            }
        }
    }

    /// Unblocks a write that the receiver does not read: the connection is shut down, the
    /// transport command killed. Standard output cannot be unblocked: the process exits.
    fn aborter(&self) -> impl Fn() + Send + 'static {
        let tcp = self.tcp.as_ref().and_then(|s| s.try_clone().ok());
        let child = self.child.clone();
        let stdout = tcp.is_none() && child.is_none();
        move || {
            if let Some(s) = &tcp {
                let _ = s.shutdown(Shutdown::Both);
            }
            if let Some(c) = &child
                && let Ok(mut c) = c.lock()
            {
                kill_transport(&mut c);
            }
            if stdout {
                eprintln!("xsr: the receiver has not read the stream for the whole timeout (--timeout); giving up");
                std::process::exit(2);
            }
        }
    }

    /// Closes the forward channel: the receiver sees the end of the stream (in TLS, the
    /// `close_notify` that proves it is the end).
    fn close_forward(&mut self) {
        self.forward = None;
        if let Some(session) = &self.tls {
            let _ = session.close_notify(self.timeout);
        }
        if let Some(s) = &self.tcp {
            let _ = s.shutdown(Shutdown::Write);
        }
    }

    /// Ends the transfer: the transport command gets `grace` to exit, then its whole process
    /// group is killed; after a failure (`!ok`) the group is killed even when the command
    /// itself has exited (what it started may not have).
    fn finish(&mut self, grace: Duration, ok: bool) {
        if self.forward.is_some() {
            self.close_forward();
        }
        if let Some(s) = self.tcp.take() {
            let _ = s.shutdown(Shutdown::Both);
        }
        if let Some(child) = self.child.take()
            && let Ok(mut c) = child.lock()
        {
            let deadline = Instant::now().checked_add(grace);
            while matches!(c.try_wait(), Ok(None)) && deadline.is_none_or(|d| Instant::now() < d) {
                std::thread::sleep(Duration::from_millis(10));
            }
            if !ok || matches!(c.try_wait(), Ok(None)) {
                kill_transport(&mut c);
            }
            if let Ok(pgid) = i32::try_from(c.id()) {
                crate::output::forget_process_group(pgid);
            }
        }
    }
}

/// Kills the transport command's process group (SIGKILL) and reaps the command.
fn kill_transport(c: &mut Child) {
    if let Ok(pgid) = i32::try_from(c.id()) {
        crate::output::kill_process_group(pgid);
    }
    let _ = c.kill();
    let _ = c.wait();
}

fn connect(to: &str, timeout: Duration) -> Result<TcpStream> {
    let addrs: Vec<SocketAddr> =
        to.to_socket_addrs().with_context(|| format!("cannot connect to {to}: bad address"))?.collect();
    let mut last = None;
    for a in &addrs {
        match TcpStream::connect_timeout(a, timeout) {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(match last {
        Some(e) => anyhow!(e).context(format!("cannot connect to {to}")),
        None => anyhow!("cannot connect to {to}: no address"),
    })
}

type Incoming = Result<Option<Message>, ReadError>;

/// The bytes that tell a TLS record from plaintext (see [`is_tls_record`]).
const TLS_HEAD: usize = 3;

/// The forward channel of a receiver without TLS: its first bytes are checked before any is
/// passed on, and a TLS record there (a TLS sender's hello) fails the read and is noted in
/// [`TlsSender`], so that the receiver says "the sender speaks TLS" (exit 2), not that the
/// stream is invalid.
struct RefuseTls<R> {
    inner: R,
    /// The first bytes, checked, not yet passed on.
    head: Vec<u8>,
    checked: bool,
    seen: TlsSender,
}

/// Whether a [`RefuseTls`] channel found a TLS sender (its first bytes).
#[derive(Clone, Debug, Default)]
struct TlsSender(Arc<OnceLock<Vec<u8>>>);

impl TlsSender {
    /// `e`, or the mismatch in its place when the sender spoke TLS.
    fn or(&self, e: anyhow::Error) -> anyhow::Error {
        match self.0.get() {
            Some(head) => TransportMismatch::SenderSpeaksTls { head: head.clone() }.into(),
            None => e,
        }
    }
}

impl<R: Read> RefuseTls<R> {
    fn new(inner: R) -> (Self, TlsSender) {
        let seen = TlsSender::default();
        (RefuseTls { inner, head: Vec::new(), checked: false, seen: seen.clone() }, seen)
    }
}

impl<R: Read> Read for RefuseTls<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.checked {
            self.head = read_head(&mut self.inner, TLS_HEAD)?;
            self.checked = true;
            if is_tls_record(&self.head) {
                let head = std::mem::take(&mut self.head);
                let _ = self.seen.0.set(head.clone());
                return Err(io::Error::new(io::ErrorKind::InvalidData, TransportMismatch::SenderSpeaksTls { head }));
            }
        }
        if !self.head.is_empty() {
            let n = buf.len().min(self.head.len());
            buf[..n].copy_from_slice(&self.head[..n]);
            self.head.drain(..n);
            return Ok(n);
        }
        self.inner.read(buf)
    }
}

/// The TLS failure inside an I/O error, if that is what it is.
fn tls_failure(e: &io::Error) -> Option<&TlsFailure> {
    e.get_ref().and_then(|inner| inner.downcast_ref::<TlsFailure>())
}

/// Sends the image in `dir` to `peer` and returns once the receiver reported the outcome.
/// Errors: the receiver's own failure as [`ReceiverFailed`] (its exit code and message);
/// a closed back channel, a silent peer (`timeout`), a local failure otherwise.
pub fn send(dir: &Path, peer: &Peer, settings: &SaveSettings, timeout: Duration) -> Result<Sent> {
    let guest = DirGuest::open(dir)?;
    send_with(peer, timeout, &mut |w| save_to(&guest, settings, w), None)
}

/// Like [`send`], with the stream written by `save` into the forward channel it is given
/// (which fails as soon as the receiver reports an error). A receiver that answers with xl's
/// migration banner (`receive --domain`, `migrate-receive`, stock `xl migrate-receive`) gets
/// the hand-over of xl's protocol with `handover`'s actions; without them it is refused
/// before anything is sent. Errors as [`send`]; [`HandoverUndefined`] when GO was sent and no
/// report came back.
pub fn send_with(
    peer: &Peer,
    timeout: Duration,
    save: &mut dyn FnMut(Box<dyn Write + Send>) -> Result<SaveStats>,
    handover: Option<&mut dyn Handover>,
) -> Result<Sent> {
    let name = peer.name();
    let mut link = Link::open(peer, timeout)?;
    let mut result = exchange(&mut link, &name, timeout, save, handover);
    if let (Ok(sent), Some(session)) = (&mut result, &link.tls) {
        sent.tls = Some(session.describe());
    }
    let ok = result.is_ok();
    link.finish(if ok { timeout } else { Duration::from_millis(500) }, ok);
    result
}

fn exchange(
    link: &mut Link,
    name: &str,
    timeout: Duration,
    save: &mut dyn FnMut(Box<dyn Write + Send>) -> Result<SaveStats>,
    handover: Option<&mut dyn Handover>,
) -> Result<Sent> {
    let shared = Arc::new(Shared {
        start: Instant::now(),
        peer_failed: AtomicBool::new(false),
        write_since: AtomicU64::new(u64::MAX),
        stalled: AtomicBool::new(false),
        done: AtomicBool::new(false),
    });

    // The back channel is read by its own thread for the whole transfer, so an ERROR stops
    // the stream while it is being written.
    let (tx, rx) = mpsc::channel::<Back>();
    let open_back = link.back.take().context("back channel already used")?;
    let reader_shared = Arc::clone(&shared);
    std::thread::spawn(move || {
        let back = match open_back() {
            Ok(b) => b,
            Err(e) => {
                let _ = tx.send(Back::Line(Err(ReadError::Io(e))));
                return;
            }
        };
        // The receiver's first bytes: a TLS record there is a receiver that speaks TLS.
        let mut back = back;
        let head = match read_head(&mut back, TLS_HEAD) {
            Ok(head) => head,
            Err(e) => {
                let _ = tx.send(Back::Line(Err(ReadError::Io(e))));
                return;
            }
        };
        if is_tls_record(&head) {
            let _ = tx.send(Back::Tls(head));
            return;
        }
        let mut back = BufReader::new(Box::new(io::Cursor::new(head).chain(back)) as Box<dyn Read + Send>);
        // xl's banner starts with 'x', every XSR-TRANSFER message with 'X'.
        if matches!(back.fill_buf().map(|b| b.first().copied()), Ok(Some(b'x'))) {
            read_xl_acks(&mut back, &tx, &reader_shared);
            return;
        }
        loop {
            let m = read_message(&mut back);
            let more = matches!(m, Ok(Some(Message::Ready)));
            if matches!(m, Ok(Some(Message::Error { .. }))) {
                reader_shared.peer_failed.store(true, Ordering::Release);
            }
            if tx.send(Back::Line(m)).is_err() || !more {
                return;
            }
        }
    });

    // 1. READY (or xl's banner).
    let plain_tcp = link.tcp.is_some() && link.tls.is_none();
    let first = match rx.recv_timeout(timeout) {
        Ok(Back::Line(m)) => Ok(m),
        Ok(Back::Tls(head)) => return Err(TransportMismatch::ReceiverSpeaksTls { peer: name.to_string(), head }.into()),
        Ok(Back::Xl(XlAck::Banner)) => {
            let Some(handover) = handover else {
                bail!(
                    "{name} restores into a Xen domain (it answered with xl's migration banner): only `send --domain` \
                     can hand a running guest over to it"
                );
            };
            handover.can_hand_over()?;
            return xl_exchange(link, name, timeout, save, handover, &shared, &rx);
        }
        Ok(Back::Xl(other)) => bail!("{name}: {}", other.describe()),
        Err(e) => Err(e),
    };
    match first {
        Ok(Ok(Some(Message::Ready))) => {}
        Ok(Ok(Some(Message::Error { code, message }))) => return Err(ReceiverFailed { code, message }.into()),
        Ok(Ok(Some(Message::Ok(_)))) => bail!("{name} reported success before the stream was sent"),
        Ok(Ok(None)) if plain_tcp => bail!(
            "{name} closed the connection without saying it was ready; a receiver started with TLS does that to a \
             sender without it: if it was, give this sender {TLS_FLAGS}"
        ),
        Ok(Ok(None)) => bail!("{name} closed the back channel without saying it was ready"),
        // A TLS refusal says all there is to say (the receiver sends nothing else).
        Ok(Err(ReadError::Io(e))) if tls_failure(&e).is_some() => return Err(anyhow!(e)),
        Ok(Err(e)) => return Err(anyhow!(e).context(format!("no handshake from {name}"))),
        Err(RecvTimeoutError::Timeout) if plain_tcp => bail!(
            "{name} did not say it was ready within {} s (--timeout); a receiver started with TLS waits in silence \
             for a sender without it (up to {} s): if it was, give this sender {TLS_FLAGS}",
            timeout.as_secs_f64(),
            HELLO_WAIT.as_secs()
        ),
        Err(RecvTimeoutError::Timeout) => {
            bail!("{name} did not say it was ready within {} s (--timeout)", timeout.as_secs_f64())
        }
        Err(RecvTimeoutError::Disconnected) => bail!("the back channel from {name} failed"),
    }

    // 2. The stream, under the watchdog.
    let forward = link.forward.take().context("forward channel already used")?;
    let saved = write_stream(link, forward, &shared, timeout, save);
    link.close_forward();
    if shared.stalled.load(Ordering::Acquire) {
        bail!("{name} did not read the stream for {} s (--timeout)", timeout.as_secs_f64());
    }

    // 3. The outcome.
    let outcome = match rx.recv_timeout(timeout) {
        Ok(Back::Line(m)) => Ok(m),
        // The reader sends xl acks only after xl's banner, a TLS record only first.
        Ok(Back::Xl(_) | Back::Tls(_)) => Ok(Ok(None)),
        Err(e) => Err(e),
    };
    let transport_failed = match &saved {
        Ok(_) => false,
        Err(e) => e.chain().any(|c| matches!(c.downcast_ref::<SaveError>(), Some(SaveError::Io { .. }))),
    };
    match (saved, outcome) {
        (Ok(stats), Ok(Ok(Some(Message::Ok(summary))))) => Ok(Sent { stats, summary, tls: None }),
        (Err(e), _) if !transport_failed => {
            Err(e.context(format!("sending to {name} failed; the receiver discards the partial stream")))
        }
        (_, Ok(Ok(Some(Message::Error { code, message })))) => Err(ReceiverFailed { code, message }.into()),
        (Ok(_), Ok(Ok(Some(Message::Ready)))) => bail!("{name} sent READY twice"),
        (saved, outcome) => {
            let why = match outcome {
                Ok(Ok(None)) | Err(RecvTimeoutError::Disconnected) => {
                    format!("{name} closed the back channel without reporting an outcome")
                }
                Ok(Err(ReadError::Io(e))) => {
                    format!("{name} closed the back channel without reporting an outcome ({e})")
                }
                Ok(Err(e)) => format!("no outcome from {name}: {e}"),
                Err(RecvTimeoutError::Timeout) => {
                    format!("no outcome from {name} within {} s (--timeout)", timeout.as_secs_f64())
                }
                Ok(Ok(Some(_))) => format!("{name} sent an unexpected message"),
            };
            match saved {
                Ok(_) => Err(anyhow!(why)),
                Err(e) => Err(e.context(format!("sending to {name} failed ({why})"))),
            }
        }
    }
}

/// Writes the stream with `save` into `forward`, under a watchdog that aborts the link when a
/// write stays blocked longer than `timeout` (then `shared.stalled` is set).
fn write_stream(
    link: &Link,
    forward: Box<dyn Write + Send>,
    shared: &Arc<Shared>,
    timeout: Duration,
    save: &mut dyn FnMut(Box<dyn Write + Send>) -> Result<SaveStats>,
) -> Result<SaveStats> {
    let abort = link.aborter();
    let dog_shared = Arc::clone(shared);
    shared.done.store(false, Ordering::Release);
    let watchdog = std::thread::spawn(move || {
        let limit: u64 = timeout.as_millis().try_into().unwrap_or(u64::MAX);
        let tick = (timeout / 10).clamp(Duration::from_millis(5), Duration::from_millis(100));
        while !dog_shared.done.load(Ordering::Acquire) {
            let since = dog_shared.write_since.load(Ordering::Acquire);
            if since != u64::MAX && dog_shared.now_ms().saturating_sub(since) > limit {
                dog_shared.stalled.store(true, Ordering::Release);
                abort();
                return;
            }
            // Woken early when the stream is done, so the join below does not wait a tick.
            std::thread::park_timeout(tick);
        }
    });
    let saved = save(Box::new(Guarded { inner: forward, shared: Arc::clone(shared) }));
    shared.done.store(true, Ordering::Release);
    watchdog.thread().unpark();
    let _ = watchdog.join();
    saved
}

/// What the back channel carried.
enum Back {
    /// An `XSR-TRANSFER/1` message (or the end of the channel, or its failure).
    Line(Incoming),
    /// A step of xl's migration protocol.
    Xl(XlAck),
    /// The receiver's first bytes are a TLS record (it speaks TLS; this sender does not).
    Tls(Vec<u8>),
}

/// What an xl-protocol receiver said, in order.
#[derive(Debug)]
enum XlAck {
    /// The banner: ready for the stream.
    Banner,
    /// The domain is restored, paused: ready to unpause.
    Ready,
    /// The receiver failed before READY and said why (an `XSR-TRANSFER/1 ERROR` line where
    /// READY would be).
    Error(ReceiverFailed),
    /// The report and its status byte.
    Status(u8),
    /// After a failure status: permission to resume the source.
    Permission,
    /// The channel ended or carried something else.
    Failed(XlMigrateError),
}

impl XlAck {
    fn describe(&self) -> String {
        match self {
            XlAck::Banner => "the banner came twice".into(),
            XlAck::Ready => "READY came before the stream".into(),
            XlAck::Error(e) => e.to_string(),
            XlAck::Status(s) => format!("a status ({s}) came before the stream"),
            XlAck::Permission => "permission to resume came before the stream".into(),
            XlAck::Failed(e) => e.to_string(),
        }
    }
}

/// Reads an xl-protocol ack channel to its end, passing each step on: the banner, READY (or
/// the receiver's error line), the report's status and, after a failure status, the
/// permission to resume. A failure before READY stops the stream at the next write.
fn read_xl_acks(back: &mut BufReader<Box<dyn Read + Send>>, tx: &mpsc::Sender<Back>, shared: &Shared) {
    let failed = |e: XlMigrateError| {
        shared.peer_failed.store(true, Ordering::Release);
        let _ = tx.send(Back::Xl(XlAck::Failed(e)));
    };
    if let Err(e) = xl::read_message(back, xl::Channel::Ack, xl::Message::Banner) {
        return failed(e);
    }
    if tx.send(Back::Xl(XlAck::Banner)).is_err() {
        return;
    }
    // READY, or an xsr receiver's reason for failing.
    if matches!(back.fill_buf().map(|b| b.first().copied()), Ok(Some(b'X'))) {
        shared.peer_failed.store(true, Ordering::Release);
        let ack = match read_message(back) {
            Ok(Some(Message::Error { code, message })) => XlAck::Error(ReceiverFailed { code, message }),
            _ => XlAck::Failed(XlMigrateError::Unexpected {
                channel: xl::Channel::Ack,
                what: xl::Message::Ready,
                offset: 0,
                received: b"X".to_vec(),
            }),
        };
        let _ = tx.send(Back::Xl(ack));
        return;
    }
    if let Err(e) = xl::read_message(back, xl::Channel::Ack, xl::Message::Ready) {
        return failed(e);
    }
    if tx.send(Back::Xl(XlAck::Ready)).is_err() {
        return;
    }
    let status = xl::read_message(back, xl::Channel::Ack, xl::Message::Report)
        .and_then(|()| xl::read_status(back, xl::Channel::Ack));
    let status = match status {
        Ok(s) => s,
        Err(e) => return failed(e),
    };
    if tx.send(Back::Xl(XlAck::Status(status))).is_err() || status == xl::STATUS_OK {
        return;
    }
    match xl::read_message(back, xl::Channel::Ack, xl::Message::Go) {
        Ok(()) => {
            let _ = tx.send(Back::Xl(XlAck::Permission));
        }
        Err(e) => failed(e),
    }
}

/// A writer shared between the stream (given away to the saver) and GO, written after it.
struct SharedWriter(Arc<Mutex<Box<dyn Write + Send>>>);

impl Write for SharedWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).write(buf)
    }
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).write_vectored(bufs)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).flush()
    }
}

/// The sender's side of xl's protocol after the banner, driven by sr-proto's [`xl::Sender`]:
/// the stream, READY, rename away, GO, the report. Returns once the guest runs at the
/// receiver; otherwise an error, [`HandoverUndefined`] when GO went out and no report came.
fn xl_exchange(
    link: &mut Link,
    name: &str,
    timeout: Duration,
    save: &mut dyn FnMut(Box<dyn Write + Send>) -> Result<SaveStats>,
    handover: &mut dyn Handover,
    shared: &Arc<Shared>,
    rx: &mpsc::Receiver<Back>,
) -> Result<Sent> {
    use xl::{SenderOutcome, SenderStep};
    let mut machine = xl::Sender::new();
    machine.succeeded(); // the banner
    let forward = Arc::new(Mutex::new(link.forward.take().context("forward channel already used")?));
    let mut stats = None;
    let mut errors: Vec<anyhow::Error> = Vec::new();
    let next = |what: &str| -> Result<XlAck> {
        match rx.recv_timeout(timeout) {
            Ok(Back::Xl(XlAck::Failed(e))) => Err(anyhow!(e).context(format!("no {what} from {name}"))),
            Ok(Back::Xl(XlAck::Error(e))) => Err(e.into()),
            Ok(Back::Xl(ack)) => Ok(ack),
            Ok(Back::Line(_) | Back::Tls(_)) | Err(RecvTimeoutError::Disconnected) => {
                bail!("{name} closed the ack channel before its {what}")
            }
            Err(RecvTimeoutError::Timeout) => {
                bail!("no {what} from {name} within {} s (--timeout)", timeout.as_secs_f64())
            }
        }
    };
    let outcome = loop {
        let result: Result<()> = match machine.step() {
            SenderStep::Done(outcome) => break outcome,
            SenderStep::ReadBanner => Ok(()),
            SenderStep::WriteStream => {
                let saved = write_stream(link, Box::new(SharedWriter(Arc::clone(&forward))), shared, timeout, save);
                if shared.stalled.load(Ordering::Acquire) {
                    Err(anyhow!("{name} did not read the stream for {} s (--timeout)", timeout.as_secs_f64()))
                } else {
                    match saved {
                        Ok(s) => {
                            stats = Some(s);
                            hold("sent");
                            Ok(())
                        }
                        // The receiver's reason, when it gave one, says more than the write.
                        Err(e) => match rx.recv_timeout(Duration::from_millis(500)) {
                            Ok(Back::Xl(XlAck::Error(f))) => Err(f.into()),
                            _ => Err(e.context(format!("sending the stream to {name} failed"))),
                        },
                    }
                }
            }
            SenderStep::ReadReady => match next("READY") {
                Ok(XlAck::Ready) => Ok(()),
                Ok(other) => Err(anyhow!("{name}: {}", other.describe())),
                Err(e) => Err(e),
            },
            SenderStep::RenameAway => handover.rename_away().map(|()| hold("renamed")),
            SenderStep::WriteGo => {
                note_go();
                let mut w = forward.lock().unwrap_or_else(|e| e.into_inner());
                let first = loop {
                    match w.write(xl::GO) {
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        r => break r,
                    }
                };
                match first {
                    // The transport took none of GO: it never left, so the receiver cannot
                    // start its copy and this one is still the guest (xl counts every failure
                    // of this write as undefined).
                    Err(_) | Ok(0) => {
                        let e = first.err().map_or_else(|| anyhow!("the channel took no byte"), |e| anyhow!(e));
                        errors.push(e.context(format!("cannot send GO to {name} (none of it left)")));
                        break SenderOutcome::KeepSource;
                    }
                    // From here the receiver may have GO: no way back.
                    Ok(n) => w
                        .write_all(&xl::GO[n..])
                        .and_then(|()| w.flush())
                        .map(|()| hold("go"))
                        .with_context(|| format!("cannot send GO to {name}")),
                }
            }
            SenderStep::ReadReport => Ok(()),
            SenderStep::ReadStatus => match next("report") {
                Ok(XlAck::Status(s)) => {
                    machine.status_read(s);
                    continue;
                }
                Ok(other) => Err(anyhow!("{name}: {}", other.describe())),
                Err(e) => Err(e),
            },
            SenderStep::ReadPermission { status } => {
                errors.push(anyhow!("{name} could not start its copy (status {status}) and destroyed it"));
                match next("permission to resume") {
                    Ok(XlAck::Permission) => Ok(()),
                    Ok(other) => Err(anyhow!("{name}: {}", other.describe())),
                    Err(e) => Err(e),
                }
            }
        };
        match result {
            Ok(()) => machine.succeeded(),
            Err(e) => {
                errors.push(e);
                machine.failed()
            }
        };
    };
    // The end of the stream channel (TLS: close_notify).
    drop(forward);
    link.close_forward();
    match outcome {
        SenderOutcome::Migrated => Ok(Sent {
            stats: stats.context("migrated without a stream")?,
            summary: format!("{name} runs the guest (it reported status 0)"),
            tls: None,
        }),
        SenderOutcome::KeepSource => {
            let e = if errors.is_empty() { anyhow!("the migration failed") } else { errors.remove(0) };
            Err(e.context(format!("migrating to {name} failed before the hand-over")))
        }
        SenderOutcome::Undefined => {
            let why = errors.iter().map(|e| format!("{e:#}")).collect::<Vec<_>>().join("; ");
            Err(HandoverUndefined { why }.into())
        }
    }
}

/// Where `xsr receive` reads.
#[derive(Clone, Debug)]
pub enum Source {
    /// `--listen ADDR`: accept one TCP connection (in TLS when `tls` is set).
    Listen {
        /// The addresses to bind, resolved and checked.
        addrs: Vec<SocketAddr>,
        /// ADDR as given.
        spec: String,
        /// The TLS settings (none: plaintext).
        tls: Option<ServerTls>,
    },
    /// `--from PATH` (`-`: standard input): read the stream there, write the messages on
    /// standard output.
    Path(PathBuf),
}

impl Source {
    /// `--listen ADDR`, checked up front: with `tls`, the credentials are loaded and only
    /// senders whose certificate names one of `allow` (when not empty) are accepted; without,
    /// ADDR must be loopback unless `insecure` (see [`check_plaintext`]).
    pub fn listen(spec: &str, tls: Option<&TlsFiles>, allow: &[String], insecure: bool) -> Result<Source> {
        let addrs = resolve("--listen", spec)?;
        let tls = match tls {
            None => {
                check_plaintext("--listen", spec, &addrs, insecure)?;
                None
            }
            #[cfg(not(feature = "tls"))]
            Some(_) => {
                let _ = allow;
                bail!("{}", crate::tls::NOT_BUILT)
            }
            #[cfg(feature = "tls")]
            Some(files) => {
                let (config, authz) = crate::tls::server_config(files, allow)?;
                Some(ServerTls { config, authz })
            }
        };
        Ok(Source::Listen { addrs, spec: spec.to_string(), tls })
    }
}

/// Where `xsr receive` puts what it receives.
#[derive(Clone, Copy, Debug)]
pub enum Target<'a> {
    /// `--out DIR`: restored into a domain image directory.
    Dir(&'a Path),
    /// `--out-file FILE`: the stream as received, byte for byte (an `xl` save file when the
    /// sender sends one), checked by the restore rules as it arrives.
    File(&'a Path),
}

/// What `xsr receive` received.
#[derive(Debug)]
pub enum Received {
    /// Restored into a directory.
    Dir(Restored<FileMemory>),
    /// Written as a file (verified, no memory restored).
    File(Restored<NoMemory>),
}

/// Receives one stream from `source` into `target` (written atomically under `rules`) and
/// reports the outcome to the sender; returns it and the summary line the sender was sent.
/// `listening` is called with the bound address before accepting (port 0 picks a free port).
/// The wait for a sender (a connection, or a writer on a named pipe) is bounded by `timeout`
/// like every other wait.
#[allow(clippy::too_many_arguments)]
pub fn receive(
    source: &Source,
    target: Target<'_>,
    options: RestoreOptions,
    max_memory: u64,
    timeout: Duration,
    rules: &OutputRules,
    listening: impl FnOnce(SocketAddr),
) -> Result<(Received, String)> {
    // The output is checked and created first: a receiver that cannot write it says so at
    // once (to the sender too, on a pipe), instead of after waiting for a sender.
    let prepared = match target {
        Target::Dir(out) => rules.dir(out).map(Prepared::Dir),
        Target::File(out) => rules.file(out).map(|(dest, file)| Prepared::File(dest, file)),
    };
    let out = match target {
        Target::Dir(out) | Target::File(out) => out,
    };
    match source {
        Source::Listen { addrs, spec, tls } => {
            let prepared = prepared?;
            let listener = TcpListener::bind(&addrs[..]).with_context(|| format!("cannot listen on {spec}"))?;
            listening(listener.local_addr()?);
            let (stream, peer) = accept_within(&listener, timeout)?;
            stream.set_nodelay(true).ok();
            let name = format!("the stream from {peer}");
            match tls {
                None => {
                    let (forward, tls) = RefuseTls::new(TimeoutReader::new(
                        stream.try_clone().context("cannot clone the connection")?,
                        timeout,
                    ));
                    let drain = TimeoutReader::new(stream.try_clone().context("cannot clone the connection")?, timeout);
                    let mut back = &stream;
                    let forward = Box::new(forward);
                    serve(forward, Box::new(drain), &mut back, &name, out, prepared, options, max_memory, &tls)
                }
                #[cfg(not(feature = "tls"))]
                Some(tls) => match *tls {},
                #[cfg(feature = "tls")]
                Some(tls) => {
                    // A refused peer gets one TLS alert; the prepared output is removed and
                    // the command fails.
                    let session = tls.accept(stream, peer, timeout)?;
                    let forward = TlsReader::new(Arc::clone(&session), timeout);
                    let drain = TlsReader::new(Arc::clone(&session), timeout);
                    let mut back = TlsWriter::new(Arc::clone(&session), timeout);
                    let (forward, drain) = (Box::new(forward), Box::new(drain));
                    let none = TlsSender::default();
                    let result = serve(forward, drain, &mut back, &name, out, prepared, options, max_memory, &none);
                    end_session(&session, timeout);
                    result
                }
            }
        }
        Source::Path(path) => {
            let mut back = File::from(io::stdout().as_fd().try_clone_to_owned().context("cannot use standard output")?);
            let prepared = match prepared {
                Ok(p) => p,
                Err(e) => {
                    report_error(&mut back, &e);
                    return Err(e);
                }
            };
            let forward = open_input(path)?;
            let drain = TimeoutReader::new(forward.try_clone().context("cannot duplicate the input")?, timeout);
            let (forward, tls) = RefuseTls::new(TimeoutReader::new(forward, timeout));
            let name = if path.as_os_str() == "-" { "standard input".to_string() } else { path.display().to_string() };
            serve(Box::new(forward), Box::new(drain), &mut back, &name, out, prepared, options, max_memory, &tls)
        }
    }
}

/// Receives one migration from `source` into a new Xen domain (see
/// [`crate::cmd::handover`]); `listening` is called with the bound address before accepting.
#[cfg(feature = "xen")]
pub fn receive_domain(
    source: &Source,
    settings: &crate::cmd::handover::DomainReceiveSettings,
    timeout: Duration,
    listening: impl FnOnce(SocketAddr),
) -> Result<crate::cmd::handover::DomainReceived> {
    use crate::cmd::handover::receive_domain as run;
    match source {
        Source::Listen { addrs, spec, tls } => {
            let listener = TcpListener::bind(&addrs[..]).with_context(|| format!("cannot listen on {spec}"))?;
            listening(listener.local_addr()?);
            let (stream, peer) = accept_within(&listener, timeout)?;
            stream.set_nodelay(true).ok();
            match tls {
                None => {
                    let (mut forward, tls) = RefuseTls::new(TimeoutReader::new(
                        stream.try_clone().context("cannot clone the connection")?,
                        timeout,
                    ));
                    let mut back = &stream;
                    let result = run(&mut forward, &mut back, settings).map_err(|e| tls.or(e));
                    if result.is_err() {
                        // Read what the sender still sends until it closes: closing with unread
                        // data would reset the connection, and the reset can discard the reason.
                        let _ = io::copy(&mut forward, &mut io::sink());
                    }
                    let _ = stream.shutdown(Shutdown::Both);
                    result
                }
                Some(tls) => {
                    let session = tls.accept(stream, peer, timeout)?;
                    let mut forward = TlsReader::new(Arc::clone(&session), timeout);
                    let mut back = TlsWriter::new(Arc::clone(&session), timeout);
                    let result = run(&mut forward, &mut back, settings);
                    if result.is_err() {
                        let _ = io::copy(&mut forward, &mut io::sink());
                    }
                    end_session(&session, timeout);
                    result
                }
            }
        }
        Source::Path(path) => {
            let (mut forward, tls) = RefuseTls::new(TimeoutReader::new(open_input(path)?, timeout));
            let mut back = File::from(io::stdout().as_fd().try_clone_to_owned().context("cannot use standard output")?);
            run(&mut forward, &mut back, settings).map_err(|e| tls.or(e))
        }
    }
}

/// Tells the sender that the transfer failed, with the exit code and message.
fn report_error(back: &mut dyn Write, e: &anyhow::Error) {
    let code = exit_code(e, crate::outcome::Command::Receive);
    let _ = Message::Error { code, message: render(e) }.write_to(back);
}

/// Accepts one connection, waiting at most `timeout` for it.
fn accept_within(listener: &TcpListener, timeout: Duration) -> Result<(TcpStream, SocketAddr)> {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let limit = Timespec {
        tv_sec: timeout.as_secs().try_into().unwrap_or(i64::MAX),
        tv_nsec: i64::from(timeout.subsec_nanos()),
    };
    loop {
        let mut fds = [PollFd::new(listener, PollFlags::IN)];
        match poll(&mut fds, Some(&limit)) {
            Ok(0) => bail!("no sender connected within {} s (--timeout)", timeout.as_secs_f64()),
            Ok(_) => return listener.accept().context("accept failed"),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(anyhow::Error::new(io::Error::from(e)).context("waiting for a sender failed")),
        }
    }
}

/// Opens the file or named pipe `path` for reading without waiting for a writer (the wait
/// is the first read's, under the timeout); `-` is standard input (its pipe widened).
fn open_input(path: &Path) -> Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    if path.as_os_str() == "-" {
        let fd = io::stdin().as_fd().try_clone_to_owned().context("cannot use standard input")?;
        crate::pipe::widen(&fd);
        return Ok(File::from(fd));
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits().cast_signed())
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    // Reads block again (each one after a poll of at most the timeout).
    rustix::fs::fcntl_setfl(&file, rustix::fs::OFlags::empty())
        .map_err(io::Error::from)
        .with_context(|| format!("cannot use {}", path.display()))?;
    Ok(file)
}

/// A target made ready before READY is sent.
enum Prepared {
    Dir(AtomicDir),
    File(AtomicFile, File),
}

/// Copies every byte `reader` gives into `out` as it is read. A failed write is kept in
/// `failed` (and fails the read), so that the error names the output, not the stream.
struct Tee<R> {
    inner: R,
    out: io::BufWriter<File>,
    failed: Option<io::Error>,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Err(e) = self.out.write_all(&buf[..n]) {
            let kind = e.kind();
            self.failed = Some(e);
            return Err(io::Error::new(kind, "the output file could not be written"));
        }
        Ok(n)
    }
}

/// `--out-file`: the stream verified by the restore rules (page bodies read, so PV page
/// tables are checked) while every byte goes to the file; after END nothing more may come.
/// The file is synced and renamed into place before the sender is told.
fn receive_file(
    reader: impl Read + Send + 'static,
    name: &str,
    dest: AtomicFile,
    file: File,
    mut options: RestoreOptions,
    max_memory: u64,
) -> Result<(Received, String)> {
    options.max_populated_bytes = options.max_populated_bytes.min(max_memory);
    let out = dest.final_path().to_path_buf();
    let cannot_write = |e: io::Error| anyhow::Error::new(e).context(format!("cannot write {}", out.display()));
    let mut tee = Tee { inner: reader, out: io::BufWriter::with_capacity(1 << 20, file), failed: None };
    let verified = sr_restore::Restorer::new(options).verify(sr_format::StreamReader::from_read(&mut tee));
    if let Some(e) = tee.failed.take() {
        return Err(cannot_write(e));
    }
    let verified = verified.map_err(|e| anyhow::Error::new(e).context(format!("receive of {name} failed")))?;
    let mut rest = [0u8; 1];
    if tee.inner.read(&mut rest).context("reading after the end of the stream failed")? != 0 {
        bail!("receive of {name} failed: bytes follow the end of the stream");
    }
    let file = tee.out.into_inner().map_err(|e| cannot_write(e.into_error()))?;
    file.sync_all().map_err(cannot_write)?;
    drop(file);
    dest.commit()?;
    let line = format!(
        "received {} domain: {}, {} bytes into {}",
        verified.state.domain_type,
        crate::text::count(verified.stats.data_pages, "page"),
        verified.stats.bytes,
        out.display()
    );
    Ok((Received::File(verified), line))
}

/// What `xsr receive --json` prints.
#[derive(Debug, serde::Serialize)]
pub struct ReceiveSummary {
    /// "directory" (`--out`) or "file" (`--out-file`).
    pub kind: &'static str,
    /// What was written.
    pub out: PathBuf,
    /// Domain type name.
    pub domain_type: String,
    /// Guest pages populated (a directory) or page bodies received (a file).
    pub pages: u64,
    /// Stream bytes received.
    pub bytes: u64,
    /// The line the sender was sent with OK.
    pub summary: String,
}

impl ReceiveSummary {
    /// The summary of `received`, written to `out`, whose OK line was `line`.
    pub fn new(received: &Received, out: &Path, line: &str) -> Self {
        let (kind, state, pages, bytes) = match received {
            Received::Dir(r) => {
                let pages = r.memory.as_ref().map_or(0, |m| m.populated().count_ones());
                ("directory", &r.state, pages, r.stats.bytes)
            }
            Received::File(r) => ("file", &r.state, r.stats.data_pages, r.stats.bytes),
        };
        ReceiveSummary {
            kind,
            out: out.to_path_buf(),
            domain_type: state.domain_type.to_string(),
            pages,
            bytes,
            summary: line.to_string(),
        }
    }
}

/// The one-line summary of a received domain.
pub fn summary(restored: &Restored<FileMemory>, out: &Path) -> String {
    let pages = restored.memory.as_ref().map_or(0, |m| m.populated().count_ones());
    format!(
        "received {} domain: {} ({} bytes) into {}",
        restored.state.domain_type,
        crate::text::count(pages, "page"),
        restored.stats.bytes,
        out.display()
    )
}

/// Runs the receiver's side of the handshake around the restore. `forward` and `drain` read
/// the same stream (each read bounded by the timeout); `drain` empties it after a failure.
/// `tls` says whether `forward` (a [`RefuseTls`] channel) found a TLS sender.
#[allow(clippy::too_many_arguments)]
fn serve(
    forward: Box<dyn Read + Send>,
    mut drain: Box<dyn Read + Send>,
    back: &mut dyn Write,
    name: &str,
    out: &Path,
    prepared: Prepared,
    options: RestoreOptions,
    max_memory: u64,
    tls: &TlsSender,
) -> Result<(Received, String)> {
    Message::Ready.write_to(back).context("cannot tell the sender we are ready")?;
    let reader = forward;
    let received = match prepared {
        Prepared::Dir(dir) => restore_into(dir, Input::Reader(reader), name, options, max_memory).map(|r| {
            let line = summary(&r, out);
            (Received::Dir(r), line)
        }),
        Prepared::File(dest, file) => receive_file(reader, name, dest, file, options, max_memory),
    }
    .map_err(|e| tls.or(e));
    match received {
        Ok((received, line)) => {
            Message::Ok(line.clone())
                .write_to(back)
                .context("the output is complete but the sender could not be told")?;
            Ok((received, line))
        }
        Err(e) => {
            report_error(back, &e);
            // Read what the sender still sends until it closes: closing with unread data
            // would reset a TCP connection, and the reset can discard the message.
            let _ = io::copy(&mut drain, &mut io::sink());
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_is_loopback() {
        let yes = ["127.0.0.1:1", "127.255.0.9:1", "[::1]:1", "[::ffff:127.0.0.1]:1"];
        let no = [
            "0.0.0.0:1",
            "[::]:1",
            "192.0.2.1:1",
            "10.0.0.1:1",
            "[::ffff:10.0.0.1]:1",
            "[2001:db8::1]:1",
            "[fe80::1]:1",
        ];
        for a in yes {
            assert!(is_loopback(&a.parse().unwrap()), "{a}");
        }
        for a in no {
            assert!(!is_loopback(&a.parse().unwrap()), "{a}");
        }
    }

    #[test]
    fn plaintext_policy() {
        let lo: Vec<SocketAddr> = vec!["127.0.0.1:7".parse().unwrap(), "[::1]:7".parse().unwrap()];
        assert!(check_plaintext("--to", "localhost:7", &lo, false).is_ok());
        let mixed: Vec<SocketAddr> = vec!["127.0.0.1:7".parse().unwrap(), "192.0.2.1:7".parse().unwrap()];
        let e = check_plaintext("--to", "host:7", &mixed, false).unwrap_err().to_string();
        assert!(e.contains("192.0.2.1:7 is not a loopback address") && e.contains("--tls-cert"), "{e}");
        assert!(check_plaintext("--to", "host:7", &mixed, true).is_ok());
    }

    #[cfg(feature = "tls")]
    #[test]
    fn host_of_strips_port_and_brackets() {
        assert_eq!(host_of("example.org:7878"), "example.org");
        assert_eq!(host_of("[::1]:7878"), "::1");
        assert_eq!(host_of("10.1.2.3:1"), "10.1.2.3");
    }

    /// A plaintext receiver's forward channel passes a stream through whole however it is
    /// read (short inputs too), and refuses one that starts with a TLS record.
    #[test]
    fn refuse_tls_checks_only_the_first_bytes() {
        // A reader that gives one byte per read: a chain of one-byte slices.
        let one_byte = |input: &'static [u8]| {
            input.chunks(1).fold(Box::new(io::empty()) as Box<dyn Read>, |r, b| Box::new(r.chain(b)))
        };
        let stream = b"Xen saved domain, xl format\n \0 \r\x16\x03\x01";
        for input in [&stream[..], &stream[..2], &[0x16, 0x03][..], &[][..]] {
            let (mut r, seen) = RefuseTls::new(one_byte(input));
            let mut out = Vec::new();
            r.read_to_end(&mut out).unwrap();
            assert_eq!(out, input);
            assert!(seen.0.get().is_none());
        }
        let (mut r, seen) = RefuseTls::new(one_byte(&[0x16, 0x03, 0x01, 0x05, 0xa3]));
        let e = r.read(&mut [0u8; 64]).unwrap_err();
        assert!(e.to_string().contains("the sender speaks TLS (its first bytes 0x16 0x03 0x01"), "{e}");
        assert_eq!(seen.0.get().map(Vec::as_slice), Some(&[0x16, 0x03, 0x01][..]));
        let e = seen.or(anyhow!("not a Xen save image"));
        assert_eq!(crate::outcome::exit_code(&e, crate::outcome::Command::Receive), 2);
    }

    /// The hand-over from the sender's side, against a scripted xl-protocol receiver over
    /// loopback TCP (sr-proto's `run_receiver`), with no Xen: the stream is 4096 bytes.
    mod handover {
        use super::*;
        use sr_proto::xl_migrate::{BoxError, ReceiverActions, ReceiverOutcome, run_receiver};

        const STREAM: usize = 4096;

        /// The receiver's actions: read the stream, then start (or fail to).
        struct Acts {
            start_status: Option<u8>,
        }
        impl ReceiverActions for Acts {
            fn receive_stream(&mut self, stream: &mut dyn Read) -> Result<(), BoxError> {
                let mut b = vec![0u8; STREAM];
                stream.read_exact(&mut b)?;
                Ok(())
            }
            fn start(&mut self) -> Result<(), (u8, BoxError)> {
                match self.start_status {
                    None => Ok(()),
                    Some(s) => Err((s, "cannot unpause".into())),
                }
            }
            fn destroy(&mut self) -> Result<(), BoxError> {
                Ok(())
            }
        }

        /// What the sender's hand-over did.
        #[derive(Default)]
        struct Away {
            renamed: u32,
            refuse: bool,
        }
        impl Handover for Away {
            fn can_hand_over(&self) -> Result<()> {
                if self.refuse { bail!("refused here") } else { Ok(()) }
            }
            fn rename_away(&mut self) -> Result<()> {
                self.renamed += 1;
                Ok(())
            }
        }

        /// Runs a receiver `serve` on a loopback port and a sender against it.
        fn run(
            serve: impl FnOnce(TcpStream) -> Option<ReceiverOutcome> + Send + 'static,
            away: Option<&mut Away>,
        ) -> (Result<Sent>, Option<ReceiverOutcome>, u64) {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let port = listener.local_addr().unwrap().port();
            let receiver = std::thread::spawn(move || serve(listener.accept().unwrap().0));
            let peer = Peer::tcp(&format!("127.0.0.1:{port}"), None, None, false).unwrap();
            let mut written = 0u64;
            let sent = send_with(
                &peer,
                Duration::from_secs(10),
                &mut |mut w| {
                    w.write_all(&[7u8; STREAM])?;
                    written += STREAM as u64;
                    Ok(SaveStats::default())
                },
                away.map(|a| a as &mut dyn Handover),
            );
            (sent, receiver.join().unwrap(), written)
        }

        fn xl_receiver(start_status: Option<u8>) -> impl FnOnce(TcpStream) -> Option<ReceiverOutcome> + Send {
            move |s| {
                let mut r = s.try_clone().unwrap();
                let mut w = s;
                Some(run_receiver(&mut r, &mut w, &mut Acts { start_status }).outcome)
            }
        }

        /// A CA and two certificates it signed, written into `dir`: the receiver's
        /// (`dst.example`) and the sender's (`src.example`).
        #[cfg(feature = "tls")]
        fn tls_pair(dir: &Path) -> (TlsFiles, TlsFiles) {
            use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
            let ca_pem = dir.join("ca.crt");
            std::fs::write(&ca_pem, ca.pem()).unwrap();
            let leaf = |name: &str| {
                let key = KeyPair::generate().unwrap();
                let cert = CertificateParams::new(vec![name.to_string()]).unwrap().signed_by(&key, &ca).unwrap();
                let (c, k) = (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")));
                std::fs::write(&c, cert.pem()).unwrap();
                std::fs::write(&k, key.serialize_pem()).unwrap();
                TlsFiles { cert: c, key: k, ca: ca_pem.clone() }
            };
            (leaf("dst.example"), leaf("src.example"))
        }

        /// A TLS receiver on a loopback port (certificates from [`tls_pair`] in `dir`): its
        /// thread accepts one connection and gives `serve` the handshake's outcome within
        /// `timeout`. Returns the port, the thread and the sender's credentials.
        #[cfg(feature = "tls")]
        fn tls_receiver<T: Send + 'static>(
            dir: &Path,
            timeout: Duration,
            serve: impl FnOnce(Result<Arc<Session>>) -> T + Send + 'static,
        ) -> (u16, std::thread::JoinHandle<T>, TlsFiles) {
            let (server, client) = tls_pair(dir);
            let (config, authz) = crate::tls::server_config(&server, &[]).unwrap();
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let port = listener.local_addr().unwrap().port();
            let receiver = std::thread::spawn(move || {
                let (sock, peer) = listener.accept().unwrap();
                serve(Session::accept(sock, config, authz, peer.to_string(), timeout))
            });
            (port, receiver, client)
        }

        /// A large stream over TLS, written in uneven vectored pieces while the ack channel is
        /// read on another thread, arrives byte for byte and the hand-over completes.
        #[test]
        #[cfg(feature = "tls")]
        fn a_large_stream_over_tls_arrives_intact() {
            const BIG: usize = 24 << 20;
            let byte = |i: usize| (i.wrapping_mul(2_654_435_761) >> 13) as u8;
            let dir = tempfile::tempdir().unwrap();
            let t = Duration::from_secs(20);
            let (port, receiver, client) = tls_receiver(dir.path(), t, move |session| {
                let session = session.unwrap();
                let mut r = TlsReader::new(Arc::clone(&session), t);
                let mut w = TlsWriter::new(Arc::clone(&session), t);
                struct Check(usize);
                impl ReceiverActions for Check {
                    fn receive_stream(&mut self, stream: &mut dyn Read) -> Result<(), BoxError> {
                        let mut b = vec![0u8; 1 << 20];
                        while self.0 < BIG {
                            let n = stream.read(&mut b[..(BIG - self.0).min(1 << 20)])?;
                            if n == 0 {
                                return Err("short".into());
                            }
                            for (k, &v) in b[..n].iter().enumerate() {
                                let i = self.0 + k;
                                if v != (i.wrapping_mul(2_654_435_761) >> 13) as u8 {
                                    return Err(format!("byte {i} differs").into());
                                }
                            }
                            self.0 += n;
                        }
                        Ok(())
                    }
                    fn start(&mut self) -> Result<(), (u8, BoxError)> {
                        Ok(())
                    }
                    fn destroy(&mut self) -> Result<(), BoxError> {
                        Ok(())
                    }
                }
                let ended = run_receiver(&mut r, &mut w, &mut Check(0));
                let _ = session.close_notify(t);
                (ended.outcome, ended.error.map(|e| e.to_string()))
            });
            let peer = Peer::tcp(&format!("127.0.0.1:{port}"), Some(&client), Some("dst.example"), false).unwrap();
            let data: Vec<u8> = (0..BIG).map(byte).collect();
            let mut away = Away::default();
            let sent = send_with(
                &peer,
                Duration::from_secs(20),
                &mut |mut w| {
                    let mut at = 0;
                    let mut k = 0usize;
                    while at < BIG {
                        // Three slices of uneven sizes per call, resumed after partial writes.
                        let sizes = [4096 * (1 + k % 7), 24 + k % 5, 4096 * (1 + k % 3)];
                        let mut parts = Vec::new();
                        let mut p = at;
                        for s in sizes {
                            let e = (p + s).min(BIG);
                            parts.push(&data[p..e]);
                            p = e;
                        }
                        let mut slices: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
                        let mut rest = &mut slices[..];
                        while !rest.is_empty() {
                            let n = w.write_vectored(rest)?;
                            at += n;
                            IoSlice::advance_slices(&mut rest, n);
                        }
                        k += 1;
                    }
                    Ok(SaveStats::default())
                },
                Some(&mut away),
            );
            let (outcome, error) = receiver.join().unwrap();
            assert_eq!(outcome, ReceiverOutcome::Running, "{error:?}");
            sent.unwrap();
        }

        #[test]
        fn the_guest_runs_at_the_receiver() {
            let mut away = Away::default();
            let (sent, outcome, written) = run(xl_receiver(None), Some(&mut away));
            let sent = sent.unwrap();
            assert!(sent.summary.contains("runs the guest"), "{}", sent.summary);
            assert_eq!(outcome, Some(ReceiverOutcome::Running));
            assert_eq!((away.renamed, written), (1, STREAM as u64));
        }

        #[test]
        fn a_failed_start_keeps_the_source() {
            let mut away = Away::default();
            let (sent, outcome, _) = run(xl_receiver(Some(5)), Some(&mut away));
            let e = sent.unwrap_err();
            assert!(e.downcast_ref::<HandoverUndefined>().is_none(), "{e:#}");
            assert!(format!("{e:#}").contains("could not start its copy (status 5)"), "{e:#}");
            assert_eq!(outcome, Some(ReceiverOutcome::NoCopy));
            assert_eq!(away.renamed, 1, "renamed away; the caller renames it back");
        }

        #[test]
        fn the_receivers_reason_before_ready() {
            let serve = |mut s: TcpStream| {
                s.write_all(xl::BANNER).unwrap();
                let mut b = vec![0u8; STREAM];
                s.read_exact(&mut b).unwrap();
                let line = Message::Error { code: 2, message: "libxl could not create the domain".into() };
                s.write_all(&line.encode()).unwrap();
                let _ = io::copy(&mut s, &mut io::sink());
                None
            };
            let mut away = Away::default();
            let (sent, _, _) = run(serve, Some(&mut away));
            let e = sent.unwrap_err();
            assert_eq!(crate::outcome::exit_code(&e, crate::outcome::Command::Send), 2);
            assert!(format!("{e:#}").contains("libxl could not create the domain"), "{e:#}");
            assert_eq!(away.renamed, 0);
        }

        #[test]
        fn no_report_after_go_is_undefined() {
            let serve = |mut s: TcpStream| {
                s.write_all(xl::BANNER).unwrap();
                let mut b = vec![0u8; STREAM];
                s.read_exact(&mut b).unwrap();
                s.write_all(xl::READY).unwrap();
                let mut go = [0u8; 44];
                s.read_exact(&mut go).unwrap();
                assert_eq!(&go, xl::GO);
                None // closed without a report
            };
            let mut away = Away::default();
            let (sent, _, _) = run(serve, Some(&mut away));
            let e = sent.unwrap_err();
            assert!(e.downcast_ref::<HandoverUndefined>().is_some(), "{e:#}");
            assert_eq!(away.renamed, 1);
        }

        /// `send --domain` without TLS into a receiver with TLS (`receive --domain
        /// --tls-cert ...`): the receiver hears nothing where a TLS sender sends its hello
        /// and gives up after its hello wait (here its 1 s timeout) with `close_notify`, which
        /// the sender takes for what it is, a TLS record, before anything was handed over.
        #[test]
        #[cfg(feature = "tls")]
        fn a_plaintext_hand_over_into_a_tls_receiver_is_told_so() {
            let dir = tempfile::tempdir().unwrap();
            let (port, receiver, _) = tls_receiver(dir.path(), Duration::from_secs(1), Result::unwrap_err);
            let start = Instant::now();
            let peer = Peer::tcp(&format!("127.0.0.1:{port}"), None, None, false).unwrap();
            let mut away = Away::default();
            let sent = send_with(
                &peer,
                Duration::from_secs(60),
                &mut |_| -> Result<SaveStats> { panic!("no stream may be sent") },
                Some(&mut away),
            );
            let e = sent.unwrap_err();
            let took = start.elapsed();
            assert!(
                matches!(e.downcast_ref::<TransportMismatch>(), Some(TransportMismatch::ReceiverSpeaksTls { .. })),
                "{e:#}"
            );
            assert!(format!("{e:#}").contains("give the sender --tls-cert FILE --tls-key FILE --tls-ca FILE"), "{e:#}");
            assert_eq!(crate::outcome::exit_code(&e, crate::outcome::Command::Send), 2);
            assert_eq!(away.renamed, 0);
            let r = format!("{:#}", receiver.join().unwrap());
            assert!(r.contains("the sender sent nothing for 1 s (--timeout)"), "{r}");
            assert!(took < Duration::from_secs(10), "{took:?}");
        }

        /// A TLS sender whose hello comes later than the receiver's wait for it (here its 1 s
        /// timeout) is turned away like a silent sender, and says that the receiver closed the
        /// connection before answering its hello.
        #[test]
        #[cfg(feature = "tls")]
        fn a_tls_sender_later_than_the_hello_wait_is_told_so() {
            let dir = tempfile::tempdir().unwrap();
            let (port, receiver, client) = tls_receiver(dir.path(), Duration::from_secs(1), Result::unwrap_err);
            let sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
            let r = format!("{:#}", receiver.join().unwrap());
            assert!(r.contains("the sender sent nothing for 1 s (--timeout)"), "{r}");
            let config = crate::tls::client_config(&client).unwrap();
            let name = rustls::pki_types::ServerName::try_from("dst.example").unwrap();
            let e = Session::connect(sock, config, name, "r".into(), Duration::from_secs(5)).unwrap_err();
            assert!(
                format!("{e:#}").contains(
                    "the receiver closed the connection during the handshake, before it answered our hello: a \
                     receiver waits 5 s (at most its --timeout) for a sender's hello"
                ),
                "{e:#}"
            );
        }

        /// `send --domain` with TLS into `receive --domain` without it: the sender finds xl's
        /// banner where the receiver's TLS hello would be, the receiver a TLS record where the
        /// xl header would be; each says what the other speaks. The receiver fails before it
        /// makes a domain, so this runs without Xen.
        #[test]
        #[cfg(all(feature = "tls", feature = "xen"))]
        fn a_tls_hand_over_into_a_plaintext_domain_receiver_is_told_so() {
            let dir = tempfile::tempdir().unwrap();
            let (_, client) = tls_pair(dir.path());
            let source = Source::listen("127.0.0.1:0", None, &[], false).unwrap();
            let (tx, rx) = mpsc::channel();
            let timeout = Duration::from_secs(60);
            let receiver = std::thread::spawn(move || {
                receive_domain(&source, &Default::default(), timeout, |a| tx.send(a).unwrap()).unwrap_err()
            });
            let addr = rx.recv().unwrap();
            let start = Instant::now();
            let peer = Peer::tcp(&addr.to_string(), Some(&client), Some("dst.example"), false).unwrap();
            let mut away = Away::default();
            let sent = send_with(
                &peer,
                timeout,
                &mut |_| -> Result<SaveStats> { panic!("no stream may be sent") },
                Some(&mut away),
            );
            let e = format!("{:#}", sent.unwrap_err());
            assert!(
                e.contains("the receiver answered in plaintext, not TLS") && e.contains("xl's migration banner"),
                "{e}"
            );
            assert_eq!(away.renamed, 0);
            let r = receiver.join().unwrap();
            let took = start.elapsed();
            assert!(
                matches!(r.downcast_ref::<TransportMismatch>(), Some(TransportMismatch::SenderSpeaksTls { .. })),
                "{r:#}"
            );
            assert_eq!(crate::outcome::exit_code(&r, crate::outcome::Command::Receive), 2);
            assert!(format!("{r:#}").contains("start the receiver with --tls-cert FILE"), "{r:#}");
            assert!(took < Duration::from_secs(10), "{took:?}");
        }

        #[test]
        fn no_hand_over_without_a_domain_or_when_refused() {
            // A directory send: refused after the banner, nothing sent.
            let (sent, outcome, written) = run(xl_receiver(None), None);
            assert!(format!("{:#}", sent.unwrap_err()).contains("only `send --domain`"));
            assert_eq!((outcome, written), (Some(ReceiverOutcome::NoCopy), 0));
            let mut away = Away { refuse: true, ..Away::default() };
            let (sent, _, written) = run(xl_receiver(None), Some(&mut away));
            assert!(format!("{:#}", sent.unwrap_err()).contains("refused here"));
            assert_eq!((away.renamed, written), (0, 0));
        }
    }
}
