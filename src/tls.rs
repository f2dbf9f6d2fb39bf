//! TLS 1.3 with mutual authentication for `xsr send --to` and `xsr receive --listen`.
//!
//! Both sides give `--tls-cert FILE --tls-key FILE --tls-ca FILE` (PEM). The sender checks
//! the receiver's certificate against its CA and the name it connected to (or `--tls-name`);
//! the receiver requires the sender's certificate, checks it against its CA and, with
//! `--tls-allow NAME`, that one of its names (DNS subject alternative names, else the common
//! name) is allowed, the way QEMU's `tls-authz` limits migration clients. Only TLS 1.3 is
//! spoken (rustls with its aws-lc-rs provider), with no session resumption: every transfer makes a
//! full handshake and checks both certificates again.
//!
//! A [`Session`] is one TLS connection over a non-blocking TCP socket. Its [`TlsReader`] and
//! [`TlsWriter`] halves are used by two threads at once (the sender reads the receiver's
//! messages while it writes the stream), so the rustls state sits behind a mutex that is held
//! only while records are encrypted, decrypted or moved to and from the socket, never while
//! waiting: waits are `poll(2)` on the socket, bounded by a deadline, so a silent peer is an
//! error, not a hang.
//!
//! The transfer handshake (`XSR-TRANSFER/1`, [`crate::transfer`]) runs inside the session
//! unchanged; the stream's end is the sender's `close_notify`, so a connection cut short is an
//! error even where the stream happens to end on a record boundary.
//!
//! TLS on one side only is a usage error on both (see [`TransportMismatch`]): each TLS end
//! names the plaintext it got instead of a TLS record, and a receiver gives a silent sender
//! [`HELLO_WAIT`], not the whole timeout (a sender without TLS waits for the receiver to speak
//! first, so neither would speak).

use std::fmt;
use std::io::{self, IoSlice, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{NoServerSessionStorage, WebPkiClientVerifier};
use rustls::{
    AlertDescription, CertificateError, ClientConfig, ClientConnection, Connection, DigitallySignedStruct,
    DistinguishedName, RootCertStore, ServerConfig, ServerConnection, SignatureScheme,
};

mod common;

pub use common::{
    HELLO_WAIT, TLS_FLAGS, TlsFailure, TlsFiles, TransportMismatch, is_not_tls, is_tls_record, plaintext_kind,
};

/// The largest PEM file read (certificates and keys are a few KiB).
const MAX_PEM_FILE: u64 = 1 << 20;

/// Encrypted bytes that may wait in a session for the socket (rustls's default): four records.
/// Measured: with 1 MiB, the records' buffers were freed and allocated again a megabyte at a
/// time, and the page faults of that churn doubled the sender's CPU time.
const SEND_BUFFER: usize = 64 << 10;

/// The peer's first bytes kept to say what it speaks when they are not TLS (xl's banner is 27
/// bytes before its comma).
const HEAD: usize = 32;

/// The provider: aws-lc-rs (X25519MLKEM768 key exchange first), TLS 1.3 cipher suites only,
/// AES-128-GCM first (the fastest with AES-NI; a peer may still pick AES-256-GCM or
/// ChaCha20-Poly1305).
fn provider() -> Arc<CryptoProvider> {
    use rustls::crypto::aws_lc_rs::{cipher_suite, default_provider};
    let mut p = default_provider();
    p.cipher_suites = vec![
        cipher_suite::TLS13_AES_128_GCM_SHA256,
        cipher_suite::TLS13_AES_256_GCM_SHA384,
        cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
    ];
    Arc::new(p)
}

fn read_pem(path: &Path, flag: &str) -> Result<Vec<u8>> {
    let file = std::fs::File::open(path).with_context(|| format!("{flag} {}: cannot open", path.display()))?;
    let mut data = Vec::new();
    file.take(MAX_PEM_FILE + 1)
        .read_to_end(&mut data)
        .with_context(|| format!("{flag} {}: cannot read", path.display()))?;
    if data.len() as u64 > MAX_PEM_FILE {
        bail!("{flag} {}: larger than {MAX_PEM_FILE} bytes, not a PEM certificate or key file", path.display());
    }
    Ok(data)
}

fn load_certs(path: &Path, flag: &str) -> Result<Vec<CertificateDer<'static>>> {
    let data = read_pem(path, flag)?;
    let certs = CertificateDer::pem_slice_iter(&data)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{flag} {}: not a PEM file", path.display()))?;
    if certs.is_empty() {
        bail!("{flag} {}: no CERTIFICATE section in it", path.display());
    }
    Ok(certs)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    let data = read_pem(path, "--tls-key")?;
    PrivateKeyDer::from_pem_slice(&data).with_context(|| {
        format!("--tls-key {}: no private key in it (PKCS#8, PKCS#1 or SEC1 PEM expected)", path.display())
    })
}

fn load_roots(path: &Path) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for (i, cert) in load_certs(path, "--tls-ca")?.into_iter().enumerate() {
        roots.add(cert).with_context(|| {
            format!("--tls-ca {}: certificate {} is not a usable CA certificate", path.display(), i + 1)
        })?;
    }
    Ok(roots)
}

/// The sender's configuration: its certificate for the receiver, the receiver's CA.
/// Errors name the file and flag at fault.
pub fn client_config(files: &TlsFiles) -> Result<Arc<ClientConfig>> {
    let roots = load_roots(&files.ca)?;
    let certs = load_certs(&files.cert, "--tls-cert")?;
    let key = load_key(&files.key)?;
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .context("TLS 1.3 is not available")?
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)
        .with_context(|| {
            format!("--tls-cert {} with --tls-key {}: unusable", files.cert.display(), files.key.display())
        })?;
    config.resumption = rustls::client::Resumption::disabled();
    Ok(Arc::new(config))
}

/// The receiver's configuration: its certificate for the sender, the sender's CA, and the
/// sender names it accepts (`--tls-allow`; empty: any certificate the CA signed).
pub fn server_config(files: &TlsFiles, allow: &[String]) -> Result<(Arc<ServerConfig>, Arc<Authz>)> {
    let roots = load_roots(&files.ca)?;
    let certs = load_certs(&files.cert, "--tls-cert")?;
    let key = load_key(&files.key)?;
    // No root hints: a client that connects learns nothing of our CA before it is accepted.
    let inner = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .clear_root_hint_subjects()
        .build()
        .with_context(|| format!("--tls-ca {}: unusable", files.ca.display()))?;
    let authz = Arc::new(Authz { inner, allow: allow.to_vec(), refused: Mutex::new(None) });
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .context("TLS 1.3 is not available")?
        .with_client_cert_verifier(Arc::clone(&authz) as Arc<dyn ClientCertVerifier>)
        .with_single_cert(certs, key)
        .with_context(|| {
            format!("--tls-cert {} with --tls-key {}: unusable", files.cert.display(), files.key.display())
        })?;
    config.send_tls13_tickets = 0;
    config.session_storage = Arc::new(NoServerSessionStorage {});
    Ok((Arc::new(config), authz))
}

/// The names a certificate answers to: its DNS subject alternative names, then its subject's
/// common names (each name once). Empty when the certificate does not parse (the verifier has refused it
/// before that matters).
pub fn cert_names(der: &[u8]) -> Vec<String> {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else { return Vec::new() };
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(dns) = name {
                names.push((*dns).to_string());
            }
        }
    }
    for cn in cert.subject().iter_common_name() {
        if let Ok(s) = cn.as_str()
            && !names.iter().any(|n| n == s)
        {
            names.push(s.to_string());
        }
    }
    names
}

/// Whether one of `names` is in `allow` (ASCII case-insensitive, exact: no wildcards).
pub fn allowed(names: &[String], allow: &[String]) -> bool {
    names.iter().any(|n| allow.iter().any(|a| a.eq_ignore_ascii_case(n)))
}

/// The receiver's check of a sender's certificate: the CA's (webpki), then `--tls-allow`.
/// A name refusal is sent as the `access_denied` alert and nothing else.
pub struct Authz {
    inner: Arc<dyn ClientCertVerifier>,
    allow: Vec<String>,
    /// Why the last certificate was refused by name (for the receiver's own message).
    refused: Mutex<Option<String>>,
}

impl fmt::Debug for Authz {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authz").field("allow", &self.allow).finish_non_exhaustive()
    }
}

impl Authz {
    /// Why the last sender was refused by `--tls-allow`, if it was.
    pub fn refusal(&self) -> Option<String> {
        self.refused.lock().ok().and_then(|r| r.clone())
    }
}

impl ClientCertVerifier for Authz {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    /// None: the certificate request names no CA (a sender has one certificate to offer).
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self.inner.verify_client_cert(end_entity, intermediates, now)?;
        if self.allow.is_empty() {
            return Ok(verified);
        }
        let names = cert_names(end_entity);
        if allowed(&names, &self.allow) {
            return Ok(verified);
        }
        if let Ok(mut r) = self.refused.lock() {
            *r = Some(format!(
                "the sender's certificate (names: {}) is not allowed by --tls-allow ({})",
                if names.is_empty() { "none".to_string() } else { names.join(", ") },
                self.allow.join(", ")
            ));
        }
        Err(rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Which end of the connection this side is (for messages).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// `xsr send`: the TLS client.
    Sender,
    /// `xsr receive`: the TLS server.
    Receiver,
}

impl Role {
    fn peer(self) -> &'static str {
        match self {
            Role::Sender => "the receiver",
            Role::Receiver => "the sender",
        }
    }
}

/// A rustls error in the terms of this tool's flags.
pub fn explain(e: &rustls::Error, role: Role) -> String {
    use rustls::Error as E;
    let peer = role.peer();
    match e {
        E::AlertReceived(AlertDescription::UnknownCA) => {
            format!("{peer} does not trust our certificate (it is not signed by a CA in {peer}'s --tls-ca)")
        }
        E::AlertReceived(AlertDescription::AccessDenied) => {
            format!("{peer} refused our certificate's name (not in {peer}'s --tls-allow)")
        }
        E::AlertReceived(AlertDescription::CertificateRequired) => {
            format!("{peer} requires a certificate (--tls-cert and --tls-key)")
        }
        E::AlertReceived(AlertDescription::BadCertificate) => format!(
            "{peer} refused our certificate (bad_certificate: e.g. its name does not match what {peer} expects, \
             or {peer}'s --tls-ca does not sign it)"
        ),
        E::AlertReceived(AlertDescription::CertificateExpired) => format!("{peer} says our certificate has expired"),
        E::AlertReceived(AlertDescription::ProtocolVersion) => format!("{peer} does not speak TLS 1.3"),
        E::AlertReceived(alert) => format!("{peer} ended the handshake with the alert {alert:?}"),
        E::InvalidCertificate(CertificateError::UnknownIssuer) => {
            format!("{peer}'s certificate is not signed by a CA in --tls-ca (unknown issuer)")
        }
        E::InvalidCertificate(CertificateError::ApplicationVerificationFailure) => {
            format!("{peer}'s certificate is not allowed by --tls-allow")
        }
        E::InvalidCertificate(c) => format!("{peer}'s certificate is refused: {c}"),
        E::NoCertificatesPresented => {
            format!("{peer} sent no certificate (both sides need --tls-cert, --tls-key and --tls-ca)")
        }
        E::InvalidMessage(_) | E::InappropriateMessage { .. } | E::InappropriateHandshakeMessage { .. } => match role {
            Role::Sender => format!("{peer} does not speak TLS 1.3 here ({e}); is it listening without --tls-cert?"),
            Role::Receiver => format!("{peer} does not speak TLS 1.3 here ({e})"),
        },
        E::PeerIncompatible(p) => format!("{peer} is incompatible ({p:?}); xsr speaks TLS 1.3 only"),
        _ => format!("{e}"),
    }
}

/// Bytes taken from the socket per `recv(2)`: many records at once. rustls alone reads 4 KiB
/// at a time, and on loopback each of those reads also runs the acknowledgement that makes
/// the sender's side push its next segments: large reads are most of the receiver's savings.
const RECV_BUFFER: usize = 256 << 10;

/// The rustls connection and the bytes received for it, behind the session's mutex.
struct State {
    conn: Connection,
    inbuf: Box<[u8]>,
    start: usize,
    end: usize,
    /// The first bytes the peer sent (at most [`HEAD`]), to name what it speaks instead of TLS.
    head: Vec<u8>,
}

impl fmt::Debug for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("State").field("buffered", &(self.end - self.start)).finish_non_exhaustive()
    }
}

impl std::ops::Deref for State {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        &self.conn
    }
}

impl std::ops::DerefMut for State {
    fn deref_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }
}

/// One TLS connection shared by a reader and a writer half.
#[derive(Debug)]
pub struct Session {
    conn: Mutex<State>,
    sock: TcpStream,
    peer: String,
    role: Role,
    authz: Option<Arc<Authz>>,
}

/// What `poll(2)` waits for.
#[derive(Clone, Copy)]
struct Want {
    read: bool,
    write: bool,
}

impl Session {
    /// Connects as the sender over `sock` (already connected) and completes the handshake
    /// within `timeout`: the receiver's certificate is checked against the CA and `name`.
    pub fn connect(
        sock: TcpStream,
        config: Arc<ClientConfig>,
        name: ServerName<'static>,
        peer: String,
        timeout: Duration,
    ) -> Result<Arc<Session>> {
        let conn = ClientConnection::new(config, name).context("cannot start a TLS session")?;
        Session::start(sock, conn.into(), peer, Role::Sender, None, timeout)
    }

    /// Accepts the sender on `sock` (just accepted) and completes the handshake within
    /// `timeout`: the sender's certificate is required, checked against the CA and by
    /// `authz`. A peer that fails gets one TLS alert and nothing else.
    pub fn accept(
        sock: TcpStream,
        config: Arc<ServerConfig>,
        authz: Arc<Authz>,
        peer: String,
        timeout: Duration,
    ) -> Result<Arc<Session>> {
        let conn = ServerConnection::new(config).context("cannot start a TLS session")?;
        Session::start(sock, conn.into(), peer, Role::Receiver, Some(authz), timeout)
    }

    fn start(
        sock: TcpStream,
        mut conn: Connection,
        peer: String,
        role: Role,
        authz: Option<Arc<Authz>>,
        timeout: Duration,
    ) -> Result<Arc<Session>> {
        sock.set_nonblocking(true).context("cannot make the socket non-blocking")?;
        conn.set_buffer_limit(Some(SEND_BUFFER));
        let state = State { conn, inbuf: vec![0; RECV_BUFFER].into_boxed_slice(), start: 0, end: 0, head: Vec::new() };
        let session = Arc::new(Session { conn: Mutex::new(state), sock, peer, role, authz });
        session.handshake(Instant::now() + timeout, timeout)?;
        Ok(session)
    }

    fn lock(&self) -> io::Result<MutexGuard<'_, State>> {
        self.conn.lock().map_err(|_| io::Error::other("the TLS session's other user panicked"))
    }

    /// A failure as an I/O error whose source is a [`TlsFailure`]; `head` is what the peer
    /// sent first: when it cannot be TLS, that is what the message says.
    fn failure(&self, e: &rustls::Error, head: &[u8]) -> io::Error {
        if let Some(message) = self.plaintext(head) {
            return io::Error::other(TlsFailure { peer: self.peer.clone(), message });
        }
        let mut message = explain(e, self.role);
        if let (rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure), Some(authz)) =
            (e, &self.authz)
            && let Some(why) = authz.refusal()
        {
            message = why;
        }
        io::Error::other(TlsFailure { peer: self.peer.clone(), message })
    }

    /// What to say when the peer's first bytes, `head`, cannot be TLS: it speaks plaintext.
    fn plaintext(&self, head: &[u8]) -> Option<String> {
        if !is_not_tls(head) {
            return None;
        }
        Some(match self.role {
            Role::Sender => format!(
                "the receiver answered in plaintext, not TLS ({}): it was started without TLS; start it with {TLS_FLAGS}",
                plaintext_kind(head)
            ),
            Role::Receiver => format!(
                "the sender speaks plaintext, not TLS (its first bytes: {}), and this receiver accepts only TLS: give \
                 the sender {TLS_FLAGS}",
                plaintext_kind(head)
            ),
        })
    }

    /// A receiver's handshake that got no byte from the sender within `waited` (`by_timeout`:
    /// the limit was `--timeout`): the sender is told with `close_notify` (a TLS record, which a
    /// plaintext `xsr send` recognises), and the error says what the silence means.
    fn silent_sender(&self, waited: Duration, by_timeout: bool) -> io::Error {
        if let Ok(mut conn) = self.lock() {
            // rustls has no call that sends an alert of our choosing; close_notify is the one
            // it sends on request, in the clear before a handshake (RFC 8446, section 6.1).
            conn.send_close_notify();
            let _ = self.flush_some(&mut conn);
        }
        let message = format!(
            "the sender sent nothing for {} s{}, where a TLS sender sends its hello at once: `xsr send` without TLS \
             waits in silence for the receiver to speak first. If that is the sender, give it {TLS_FLAGS}; this \
             receiver accepts only TLS",
            waited.as_secs_f64(),
            if by_timeout { " (--timeout)" } else { "" }
        );
        io::Error::new(io::ErrorKind::TimedOut, TlsFailure { peer: self.peer.clone(), message })
    }

    /// Moves queued records to the socket until it would block. `Ok(true)`: nothing is left.
    fn flush_some(&self, conn: &mut Connection) -> io::Result<bool> {
        while conn.wants_write() {
            match conn.write_tls(&mut &self.sock) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Hands received bytes to rustls (reading the socket first when none are left) and
    /// processes them: the bytes taken (0: the peer closed the connection) and the plaintext
    /// now waiting; `Ok(None)`: the socket had nothing.
    fn pull(&self, st: &mut State) -> io::Result<Option<(usize, usize)>> {
        if st.start == st.end {
            loop {
                match (&self.sock).read(&mut st.inbuf) {
                    Ok(n) => {
                        (st.start, st.end) = (0, n);
                        let keep = n.min(HEAD - st.head.len());
                        st.head.extend_from_slice(&st.inbuf[..keep]);
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        }
        let State { conn, inbuf, start, end, head } = st;
        // An empty slice is the end of the connection, for rustls as for us.
        let n = conn.read_tls(&mut &inbuf[*start..*end])?;
        *start += n;
        match conn.process_new_packets() {
            Ok(state) => Ok(Some((n, state.plaintext_bytes_to_read()))),
            Err(e) => {
                // The alert that tells the peer why: best effort, never blocking.
                let _ = self.flush_some(conn);
                Err(self.failure(&e, head))
            }
        }
    }

    /// Waits until the socket is ready for `want` or `deadline` passes.
    fn wait(&self, want: Want, deadline: Instant, timeout: Duration, what: &str) -> io::Result<()> {
        use rustix::event::{PollFd, PollFlags, Timespec, poll};
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("{what}: nothing from {} for {} s (--timeout)", self.peer, timeout.as_secs_f64()),
                ));
            }
            let mut flags = PollFlags::empty();
            if want.read {
                flags |= PollFlags::IN;
            }
            if want.write {
                flags |= PollFlags::OUT;
            }
            let ts = Timespec {
                tv_sec: left.as_secs().try_into().unwrap_or(i64::MAX),
                tv_nsec: i64::from(left.subsec_nanos()),
            };
            let mut fds = [PollFd::new(&self.sock, flags)];
            match poll(&mut fds, Some(&ts)) {
                Ok(0) => continue,
                Ok(_) => return Ok(()),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn handshake(&self, deadline: Instant, timeout: Duration) -> Result<()> {
        let what = "TLS handshake";
        // A receiver gives a silent sender [`HELLO_WAIT`], not the whole timeout.
        let hello_wait = HELLO_WAIT.min(timeout);
        let hello_by = Instant::now() + hello_wait;
        loop {
            let mut want = Want { read: false, write: false };
            // Nothing from a sender yet: the wait ends at `hello_by`.
            let silent = {
                let mut conn = self.lock()?;
                let flushed = self.flush_some(&mut conn)?;
                if !conn.is_handshaking() && flushed {
                    return Ok(());
                }
                want.write = !flushed;
                if conn.is_handshaking() && conn.wants_read() {
                    match self.pull(&mut conn)? {
                        Some((0, _)) => {
                            let message = self.plaintext(&conn.head).unwrap_or_else(|| self.closed_early(&conn.head));
                            return Err(io::Error::new(
                                io::ErrorKind::UnexpectedEof,
                                TlsFailure { peer: self.peer.clone(), message },
                            )
                            .into());
                        }
                        Some(_) => continue,
                        None => want.read = true,
                    }
                }
                self.role == Role::Receiver && conn.head.is_empty()
            };
            match self.wait(want, if silent { hello_by.min(deadline) } else { deadline }, timeout, what) {
                Err(e) if silent && e.kind() == io::ErrorKind::TimedOut => {
                    return Err(self.silent_sender(hello_wait, hello_wait == timeout).into());
                }
                r => r?,
            }
        }
    }

    /// Why the peer closed the connection during the handshake, having sent `head`.
    fn closed_early(&self, head: &[u8]) -> String {
        let closed = format!("{} closed the connection during the handshake", self.role.peer());
        match self.role {
            // `xsr send` without TLS waits for READY, then gives up at its --timeout.
            Role::Receiver if head.is_empty() => format!(
                "{closed}, having sent nothing: if it is `xsr send` without TLS (which waits in silence for the \
                 receiver to speak first), give it {TLS_FLAGS}"
            ),
            // An alert record (content type 21) before the receiver's hello, which rustls
            // passes over as a warning: the close_notify of a receiver that waited too long for
            // ours.
            Role::Sender if head.first() == Some(&21) => format!(
                "{closed}, before it answered our hello: a receiver waits {} s (at most its --timeout) for a \
                 sender's hello; its own message says why",
                HELLO_WAIT.as_secs()
            ),
            _ => closed,
        }
    }

    /// The negotiated cipher suite and the peer certificate's names, for the log line.
    pub fn describe(&self) -> String {
        let Ok(st) = self.lock() else { return String::new() };
        let conn = &st.conn;
        let suite = conn.negotiated_cipher_suite().map(|s| format!("{:?}", s.suite())).unwrap_or_default();
        let kx = conn.negotiated_key_exchange_group().map(|g| format!("{:?}", g.name())).unwrap_or_default();
        let names = conn.peer_certificates().and_then(|c| c.first()).map(|c| cert_names(c)).unwrap_or_default();
        format!("TLS 1.3 {suite} {kx}, {} certificate {}", self.role.peer(), names.join(", "))
    }

    /// Reads plaintext, waiting at most `timeout` for some to arrive. `Ok(0)`: the peer ended
    /// its direction with `close_notify`; a connection closed without it is an error.
    fn read_plain(&self, buf: &mut [u8], timeout: Duration) -> io::Result<usize> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(n) = self.read_ready(buf)? {
                return Ok(n);
            }
            let write = self.lock()?.wants_write();
            self.wait(Want { read: true, write }, deadline, timeout, "reading")?;
        }
    }

    /// Reads the plaintext that is there without waiting: `Ok(None)` when a read would have
    /// to wait for the peer.
    fn read_ready(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        if buf.is_empty() {
            return Ok(Some(0));
        }
        let mut conn = self.lock()?;
        loop {
            match conn.reader().read(buf) {
                Ok(n) => return Ok(Some(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("{} closed the TLS connection without close_notify", self.role.peer()),
                    ));
                }
                Err(e) => return Err(e),
            }
            // Several records per visit: fewer lock round trips and polls.
            let mut got = false;
            for _ in 0..64 {
                match self.pull(&mut conn)? {
                    Some((0, _)) => {
                        got = true;
                        break;
                    }
                    Some((_, waiting)) => {
                        got = true;
                        // rustls refuses to read more once it holds 16 KiB of plaintext.
                        if waiting >= buf.len().min(16 << 10) {
                            break;
                        }
                    }
                    None => break,
                }
            }
            // Key updates and alerts that processing queued.
            self.flush_some(&mut conn)?;
            if !got {
                return Ok(None);
            }
        }
    }

    /// Encrypts some of `bufs` and moves what it can to the socket, waiting at most `timeout`
    /// for room.
    fn write_plain(&self, bufs: &[IoSlice<'_>], timeout: Duration) -> io::Result<usize> {
        if bufs.iter().all(|b| b.is_empty()) {
            return Ok(0);
        }
        let deadline = Instant::now() + timeout;
        loop {
            {
                let mut conn = self.lock()?;
                self.flush_some(&mut conn)?;
                let n = conn.writer().write_vectored(bufs)?;
                if n > 0 {
                    self.flush_some(&mut conn)?;
                    return Ok(n);
                }
            }
            self.wait(Want { read: false, write: true }, deadline, timeout, "writing")?;
        }
    }

    /// Writes every queued record, waiting at most `timeout` for room.
    fn flush_all(&self, timeout: Duration) -> io::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.flush_some(&mut *self.lock()?)? {
                return Ok(());
            }
            self.wait(Want { read: false, write: true }, deadline, timeout, "writing")?;
        }
    }

    /// Ends this side's direction: `close_notify`, flushed (the peer then reads the end of
    /// the data); the other direction stays open.
    pub fn close_notify(&self, timeout: Duration) -> io::Result<()> {
        self.lock()?.send_close_notify();
        self.flush_all(timeout)
    }

    /// The socket (to shut it down).
    pub fn socket(&self) -> &TcpStream {
        &self.sock
    }
}

/// The reading half of a [`Session`]: each read waits at most its timeout.
#[derive(Debug, Clone)]
pub struct TlsReader {
    session: Arc<Session>,
    timeout: Duration,
}

impl TlsReader {
    /// A reader of `session` whose reads wait at most `timeout`.
    pub fn new(session: Arc<Session>, timeout: Duration) -> Self {
        Self { session, timeout }
    }
}

impl Read for TlsReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.session.read_plain(buf, self.timeout)
    }
}

/// The writing half of a [`Session`]: each write waits at most its timeout for room.
#[derive(Debug, Clone)]
pub struct TlsWriter {
    session: Arc<Session>,
    timeout: Duration,
}

impl TlsWriter {
    /// A writer to `session` whose writes wait at most `timeout`.
    pub fn new(session: Arc<Session>, timeout: Duration) -> Self {
        Self { session, timeout }
    }
}

impl Write for TlsWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.session.write_plain(&[IoSlice::new(buf)], self.timeout)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.session.write_plain(bufs, self.timeout)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.session.flush_all(self.timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_exactly_and_ignore_ascii_case() {
        let names = vec!["Sender.Example".to_string(), "sender".to_string()];
        assert!(allowed(&names, &["sender.example".to_string()]));
        assert!(allowed(&names, &["x".to_string(), "SENDER".to_string()]));
        assert!(!allowed(&names, &["example".to_string()]));
        assert!(!allowed(&names, &["*.example".to_string()]));
        assert!(!allowed(&[], &["sender".to_string()]));
    }

    #[test]
    fn names_come_from_sans_then_the_common_name() {
        let mut params = rcgen::CertificateParams::new(vec!["a.example".to_string(), "b.example".to_string()]).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, "the-cn");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(cert_names(cert.der()), ["a.example", "b.example", "the-cn"]);
        assert!(cert_names(b"not a certificate").is_empty());
    }

    #[test]
    fn bad_files_name_the_flag() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, b"").unwrap();
        let missing = dir.path().join("missing.pem");
        let files = TlsFiles { cert: empty.clone(), key: empty.clone(), ca: missing.clone() };
        let e = format!("{:#}", client_config(&files).unwrap_err());
        assert!(e.starts_with("--tls-ca ") && e.contains("cannot open"), "{e}");
        let files = TlsFiles { cert: empty.clone(), key: empty.clone(), ca: empty.clone() };
        let e = format!("{:#}", server_config(&files, &[]).unwrap_err());
        assert!(e.contains("--tls-ca") && e.contains("no CERTIFICATE"), "{e}");
    }
}
