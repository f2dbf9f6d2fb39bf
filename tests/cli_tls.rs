#![cfg(feature = "tls")]
//! `xsr send --to` / `xsr receive --listen` over TLS 1.3 with mutual authentication, and the
//! refusal of plaintext TCP off loopback. Certificates are made here with rcgen: two CAs, a
//! receiver for `localhost`/127.0.0.1, senders signed by either CA.
//!
//! Every refused peer must leave both sides with exit status 2 (an authentication failure is
//! a usage/I/O error, not an answer about the stream) and nothing at the receiver's output.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{stderr, stdout, xsr};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};
use sr_format::DomainType;
use sr_save::{Container, SaveOptions, Saver};
use xsr::synthetic::SyntheticGuest;

/// One side's credentials as files.
#[derive(Clone)]
struct Creds {
    cert: PathBuf,
    key: PathBuf,
    ca: PathBuf,
}

impl Creds {
    fn args(&self) -> Vec<String> {
        let s = |p: &Path| p.to_str().unwrap().to_string();
        vec!["--tls-cert".into(), s(&self.cert), "--tls-key".into(), s(&self.key), "--tls-ca".into(), s(&self.ca)]
    }
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

/// A certificate signed by `issuer` for `dns` names (plus `ip`), with common name `cn`,
/// written with its key into `dir`; `ca_pem` is the CA file this side trusts.
fn leaf(
    dir: &Path,
    file: &str,
    issuer: &CertifiedIssuer<'static, KeyPair>,
    dns: &[&str],
    ip: Option<IpAddr>,
    cn: &str,
    ca_pem: &Path,
) -> Creds {
    let mut params = CertificateParams::new(dns.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    if let Some(ip) = ip {
        params.subject_alt_names.push(SanType::IpAddress(ip));
    }
    params.distinguished_name.push(DnType::CommonName, cn);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, issuer).unwrap();
    let creds =
        Creds { cert: dir.join(format!("{file}.crt")), key: dir.join(format!("{file}.key")), ca: ca_pem.into() };
    fs::write(&creds.cert, cert.pem()).unwrap();
    fs::write(&creds.key, key.serialize_pem()).unwrap();
    creds
}

struct Fixture {
    dir: tempfile::TempDir,
    /// The guest directory the senders send.
    guest: String,
    /// The receiver: CA A, `localhost` and 127.0.0.1, CN `receiver`.
    receiver: Creds,
    /// A sender signed by CA A: `sender.example`, CN `sender`.
    sender: Creds,
    /// A sender signed by CA B (which the receiver does not trust).
    stranger: Creds,
    /// A receiver signed by CA A for `other.example` only.
    impostor: Creds,
    /// CA A's certificate.
    ca_a: PathBuf,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (a, b) = (ca("xsr test CA A"), ca("xsr test CA B"));
    let (ca_a, ca_b) = (d.join("ca-a.crt"), d.join("ca-b.crt"));
    fs::write(&ca_a, a.pem()).unwrap();
    fs::write(&ca_b, b.pem()).unwrap();
    let localhost = Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let receiver = leaf(d, "receiver", &a, &["localhost"], localhost, "receiver", &ca_a);
    let sender = leaf(d, "sender", &a, &["sender.example"], None, "sender", &ca_a);
    let stranger = leaf(d, "stranger", &b, &["sender.example"], None, "sender", &ca_a);
    let impostor = leaf(d, "impostor", &a, &["other.example"], None, "other", &ca_a);

    // A synthetic x86 PV guest saved as an `xl` file (16 MiB: several PAGE_DATA records),
    // restored into the directory that the senders send.
    let guest = SyntheticGuest::new(DomainType::X86_PV, 12, 16 << 20).unwrap();
    let options =
        SaveOptions { container: Container::Xl { config: b"{\"c_info\":{}}\0".to_vec() }, ..Default::default() };
    let mut stream = Vec::new();
    Saver::new(options).save(&guest, &mut stream).unwrap();
    let file = d.join("guest.save");
    fs::write(&file, &stream).unwrap();
    let guest = d.join("guest");
    let o = xsr(&["restore", file.to_str().unwrap(), "--out", guest.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    Fixture { guest: guest.to_str().unwrap().to_string(), dir, receiver, sender, stranger, impostor, ca_a }
}

impl Fixture {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Asserts that nothing (complete or partial) was left for `out`.
    fn assert_nothing_at(&self, out: &Path) {
        assert!(!out.exists(), "{} exists", out.display());
        let names: Vec<_> = fs::read_dir(self.dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert!(names.iter().all(|n| !n.to_string_lossy().contains("partial")), "{names:?}");
    }

    /// A receiver with the receiver's credentials on a loopback port, restoring into the
    /// directory `name` (returned first), with `extra` arguments.
    fn tls_receiver(&self, name: &str, extra: &[&str]) -> (PathBuf, Child, String, ChildStderr) {
        let out = self.path(name);
        let mut args = self.receiver.args();
        args.extend(strings(&["--out", out.to_str().unwrap()]));
        args.extend(strings(extra));
        let (child, addr, err) = receiver("127.0.0.1:0", &args);
        (out, child, addr, err)
    }

    fn assert_same_dir(&self, out: &Path) {
        let mut n = 0;
        for e in fs::read_dir(&self.guest).unwrap() {
            let name = e.unwrap().file_name();
            assert!(
                fs::read(out.join(&name)).unwrap() == fs::read(Path::new(&self.guest).join(&name)).unwrap(),
                "{name:?} differs"
            );
            n += 1;
        }
        assert!(n >= 4, "only {n} files");
        assert_eq!(fs::read_dir(out).unwrap().count(), n);
    }
}

fn xsr_cmd(args: &[String]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_xsr"));
    c.args(args);
    c
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// A receiver started with `receive --listen LISTEN` and `extra`: the child, its address,
/// and its standard error after the `listening on` line.
fn receiver(listen: &str, extra: &[String]) -> (Child, String, ChildStderr) {
    let mut args = strings(&["receive", "--listen", listen]);
    args.extend_from_slice(extra);
    let mut child = xsr_cmd(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut err = child.stderr.take().unwrap();
    let mut line = Vec::new();
    let mut byte = [0u8];
    while err.read(&mut byte).unwrap() == 1 && byte[0] != b'\n' {
        line.push(byte[0]);
    }
    let line = String::from_utf8(line).unwrap();
    let addr = line.strip_prefix("listening on ").unwrap_or_else(|| panic!("{line}")).to_string();
    (child, addr, err)
}

/// Waits for a receiver, with its whole standard error.
fn finish(child: Child, mut err: ChildStderr) -> (Output, String) {
    let mut rest = String::new();
    err.read_to_string(&mut rest).unwrap();
    let o = child.wait_with_output().unwrap();
    (o, rest)
}

fn send(guest: &str, to: &str, extra: &[String]) -> Output {
    let mut args = strings(&["send", guest, "--to", to]);
    args.extend_from_slice(extra);
    xsr_cmd(&args).output().unwrap()
}

#[test]
fn tls_round_trip_is_byte_identical() {
    let f = fixture();
    // Into a directory, the sender allowed by name.
    let out = f.path("received");
    let mut extra = f.receiver.args();
    extra.extend(strings(&[
        "--out",
        out.to_str().unwrap(),
        "--tls-allow",
        "other.example",
        "--tls-allow",
        "SENDER.example",
    ]));
    let (child, addr, err) = receiver("127.0.0.1:0", &extra);
    let s = send(&f.guest, &addr, &f.sender.args());
    let (r, rerr) = finish(child, err);
    assert_eq!(s.status.code(), Some(0), "sender: {}", stderr(&s));
    assert_eq!(r.status.code(), Some(0), "receiver: {rerr}");
    assert!(
        rerr.contains("TLS 1.3 TLS13_AES_128_GCM_SHA256 X25519MLKEM768, the sender certificate sender.example, sender"),
        "{rerr}"
    );
    assert!(stdout(&r).starts_with("received x86 PV domain: 4095 pages"), "{}", stdout(&r));
    assert!(stderr(&s).contains("the receiver committed it: received x86 PV domain"), "{}", stderr(&s));
    assert!(stderr(&s).contains("X25519MLKEM768, the receiver certificate localhost, receiver\n"), "{}", stderr(&s));
    f.assert_same_dir(&out);

    // As a file: byte for byte what `xsr save` of the directory writes; the receiver named by
    // its DNS name this time, and listening on every interface (TLS needs no --insecure).
    let file = f.path("received.save");
    let mut extra = f.receiver.args();
    extra.extend(strings(&["--out-file", file.to_str().unwrap()]));
    let (child, addr, err) = receiver("0.0.0.0:0", &extra);
    let port = addr.rsplit_once(':').unwrap().1;
    let s = send(&f.guest, &format!("localhost:{port}"), &f.sender.args());
    let (r, rerr) = finish(child, err);
    assert_eq!(s.status.code(), Some(0), "sender: {}", stderr(&s));
    assert_eq!(r.status.code(), Some(0), "receiver: {rerr}");
    let expected = xsr(&["save", &f.guest, "--out", "-"]);
    assert!(expected.status.success());
    assert!(fs::read(&file).unwrap() == expected.stdout, "the received file differs from `xsr save`");
}

/// What both sides of a refused transfer said, and when each ended.
struct Refused {
    /// The sender's standard error and output.
    sender: String,
    sender_out: String,
    /// The receiver's standard error (after `listening on`) and output.
    receiver: String,
    receiver_out: String,
    /// From the sender's start to its end, and to the receiver's.
    sender_took: Duration,
    receiver_took: Duration,
}

impl Refused {
    /// Both sides' standard error, (sender's, receiver's), once the receiver printed nothing
    /// on its standard output.
    fn stderrs(self) -> (String, String) {
        assert!(self.receiver_out.is_empty(), "{}", self.receiver_out);
        (self.sender, self.receiver)
    }
}

/// Runs one refused transfer: a receiver with `receiver_creds` (none: plaintext) and
/// `receiver_extra`, a sender with `sender_args`; both must exit 2 and nothing may be left at
/// the output.
fn refused(
    f: &Fixture,
    name: &str,
    receiver_creds: Option<&Creds>,
    receiver_extra: &[&str],
    sender_args: &[String],
    to_host: &str,
    sender_timeout: &str,
) -> Refused {
    let out = f.path(&format!("refused-{name}"));
    let mut extra = receiver_creds.map(Creds::args).unwrap_or_default();
    extra.extend(strings(&["--out", out.to_str().unwrap(), "--timeout", "20"]));
    extra.extend(strings(receiver_extra));
    let (mut child, addr, err) = receiver("127.0.0.1:0", &extra);
    let port = addr.rsplit_once(':').unwrap().1;
    let mut args = strings(&["--timeout", sender_timeout]);
    args.extend_from_slice(sender_args);
    let start = Instant::now();
    let s = send(&f.guest, &format!("{to_host}:{port}"), &args);
    let sender_took = start.elapsed();
    // A sender that never connected leaves the receiver listening: not for ever.
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let receiver_took = start.elapsed();
    if child.try_wait().unwrap().is_none() {
        let _ = child.kill();
        panic!("{name}: the receiver is still running; sender: {}", stderr(&s));
    }
    let (r, rerr) = finish(child, err);
    assert_eq!(s.status.code(), Some(2), "{name}: sender: {}", stderr(&s));
    assert_eq!(r.status.code(), Some(2), "{name}: receiver: {rerr}");
    f.assert_nothing_at(&out);
    Refused {
        sender: stderr(&s),
        sender_out: stdout(&s),
        receiver: rerr,
        receiver_out: stdout(&r),
        sender_took,
        receiver_took,
    }
}

#[test]
fn refused_peers_exit_2_on_both_sides_and_nothing_is_committed() {
    let f = fixture();

    // A sender whose certificate another CA signed.
    let (s, r) = refused(&f, "other-ca", Some(&f.receiver), &[], &f.stranger.args(), "127.0.0.1", "20").stderrs();
    assert!(r.contains("the sender's certificate is not signed by a CA in --tls-ca (unknown issuer)"), "{r}");
    assert!(s.contains("the receiver does not trust our certificate"), "{s}");

    // A sender the CA signed, but not in --tls-allow.
    let (s, r) = refused(
        &f,
        "not-allowed",
        Some(&f.receiver),
        &["--tls-allow", "backup.example"],
        &f.sender.args(),
        "127.0.0.1",
        "20",
    )
    .stderrs();
    assert!(
        r.contains(
            "the sender's certificate (names: sender.example, sender) is not allowed by --tls-allow (backup.example)"
        ),
        "{r}"
    );
    assert!(s.contains("the receiver refused our certificate's name (not in the receiver's --tls-allow)"), "{s}");

    // A receiver whose certificate does not carry the name the sender asked for: by default
    // the host of --to, or --tls-name.
    let (s, r) = refused(&f, "impostor", Some(&f.impostor), &[], &f.sender.args(), "localhost", "20").stderrs();
    assert!(s.contains("the receiver's certificate is refused") && s.contains("localhost"), "{s}");
    assert!(r.contains("the sender refused our certificate"), "{r}");
    let mut args = f.sender.args();
    args.extend(strings(&["--tls-name", "backup.example"]));
    let (s, _) = refused(&f, "tls-name", Some(&f.receiver), &[], &args, "127.0.0.1", "20").stderrs();
    assert!(s.contains("the receiver's certificate is refused") && s.contains("backup.example"), "{s}");

    // A plaintext sender at a TLS receiver whose --timeout ends before the receiver's wait
    // for a hello (5 s): each side hints at TLS (see also
    // a_plaintext_sender_at_a_tls_receiver_fails_fast_with_a_hint).
    let (s, r) = refused(&f, "plaintext", Some(&f.receiver), &[], &[], "127.0.0.1", "1").stderrs();
    assert!(
        r.contains("the sender closed the connection during the handshake, having sent nothing")
            && r.contains("if it is `xsr send` without TLS")
            && r.contains("give it --tls-cert FILE --tls-key FILE --tls-ca FILE"),
        "{r}"
    );
    assert!(s.contains("did not say it was ready within 1 s (--timeout)"), "{s}");
    assert!(
        s.contains("a receiver started with TLS waits in silence") && s.contains("give this sender --tls-cert"),
        "{s}"
    );
}

/// A sender that offers no certificate (a client made here with rustls, since `xsr send`
/// always has one): refused with the certificate_required alert, and the receiver exits 2.
#[test]
fn a_sender_without_a_certificate_is_refused() {
    let f = fixture();
    let (out, child, addr, err) = f.tls_receiver("no-cert", &[]);

    let mut roots = rustls::RootCertStore::empty();
    let pem = fs::read(&f.ca_a).unwrap();
    for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(&pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut sock = TcpStream::connect(&addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut tls = rustls::Stream::new(&mut conn, &mut sock);
    // The client finishes its half of the handshake; the refusal comes as the first read.
    let mut buf = [0u8; 64];
    let e = tls.read(&mut buf).expect_err("the receiver said something to a sender without a certificate");
    assert!(e.to_string().contains("CertificateRequired"), "{e}");

    let (r, rerr) = finish(child, err);
    assert_eq!(r.status.code(), Some(2), "{rerr}");
    assert!(rerr.contains("the sender sent no certificate"), "{rerr}");
    f.assert_nothing_at(&out);
}

/// The JSON error object of a failed side (`--json`): the three fields, exit 2, no offset
/// (a transport mismatch names no byte of a stream).
fn json_error(text: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"));
    let fields: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(fields, ["error", "exit_code"], "{v}");
    assert_eq!(v["exit_code"], 2, "{v}");
    v["error"].as_str().unwrap().to_string()
}

/// A TLS sender at a plaintext receiver: the receiver finds a TLS record where the stream
/// would start and says the sender speaks TLS (exit 2, not "invalid stream"); the sender
/// finds READY where the receiver's TLS hello would be. Both end at once, well within the
/// default 60 s timeout, nothing is left, and `--json` prints the error object.
#[test]
fn a_tls_sender_at_a_plaintext_receiver_fails_fast_with_a_hint() {
    let f = fixture();
    let r = refused(&f, "plain", None, &[], &f.sender.args(), "127.0.0.1", "60");
    let hint = "start the receiver with --tls-cert FILE --tls-key FILE --tls-ca FILE (docs/migrating.md, \"TLS\")";
    assert!(
        r.receiver.contains("the sender speaks TLS (its first bytes 0x16 0x03 0x01 are a TLS record"),
        "{}",
        r.receiver
    );
    assert!(r.receiver.contains(hint), "{}", r.receiver);
    assert!(
        r.sender.contains(
            "the receiver answered in plaintext, not TLS (0x58 0x53 0x52 0x2d 0x54 0x52 0x41 0x4e, an \
             XSR-TRANSFER/1 message): it was started without TLS; start it with --tls-cert FILE"
        ),
        "{}",
        r.sender
    );
    assert!(r.sender_took < Duration::from_secs(10) && r.receiver_took < Duration::from_secs(10));

    // With --json on both sides; the receiver keeping a file this time.
    let file = f.path("plain.save");
    let mut extra = strings(&["--out-file", file.to_str().unwrap(), "--json", "--timeout", "20"]);
    let (child, addr, err) = receiver("127.0.0.1:0", &extra);
    extra = f.sender.args();
    extra.push("--json".into());
    let s = send(&f.guest, &addr, &extra);
    let (r, rerr) = finish(child, err);
    assert_eq!((s.status.code(), r.status.code()), (Some(2), Some(2)), "{rerr}");
    assert!(json_error(&stdout(&r)).contains(hint), "{}", stdout(&r));
    assert!(json_error(&stdout(&s)).contains("the receiver answered in plaintext, not TLS"), "{}", stdout(&s));
    f.assert_nothing_at(&file);
}

/// A plaintext sender at a TLS receiver: the sender waits for READY, which a receiver
/// without TLS sends first; a TLS receiver waits for the sender's hello. The receiver gives up
/// after 5 s of silence (not its timeout, 20 s here; the sender's is 60 s) with
/// `close_notify`, which the sender knows for a TLS record. Both exit 2 with a hint, nothing
/// is left, and `--json` prints the error object.
#[test]
fn a_plaintext_sender_at_a_tls_receiver_fails_fast_with_a_hint() {
    let f = fixture();
    let r = refused(&f, "tls", Some(&f.receiver), &["--json"], &strings(&["--json"]), "127.0.0.1", "60");
    let receiver = json_error(&r.receiver_out);
    assert!(
        receiver.contains(
            "the sender sent nothing for 5 s, where a TLS sender sends its hello at once: `xsr send` \
             without TLS waits in silence for the receiver to speak first. If that is the sender, give \
             it --tls-cert FILE --tls-key FILE --tls-ca FILE"
        ),
        "{receiver}"
    );
    let sender = json_error(&r.sender_out);
    assert!(
        sender.contains(
            "speaks TLS (it answered with a TLS record, 0x15 0x03 0x03, where a receiver without TLS \
             says it is ready) and this sender was started without it: give the sender --tls-cert FILE"
        ),
        "{sender}"
    );
    assert!(r.receiver.contains(&receiver) && r.sender.contains(&sender), "{} / {}", r.receiver, r.sender);
    assert!(r.sender_took < Duration::from_secs(10), "{:?}", r.sender_took);
    assert!(r.receiver_took < Duration::from_secs(10), "{:?}", r.receiver_took);
}

/// A TLS receiver never takes a plaintext stream, not even from loopback (where plaintext
/// TCP needs no --insecure): an `xl` file sent as it is (`nc`) is refused, named for what it
/// is, and nothing is written.
#[test]
fn a_plaintext_stream_at_a_tls_receiver_is_refused_and_named() {
    let f = fixture();
    let (out, child, addr, err) = f.tls_receiver("raw", &[]);
    let saved = xsr(&["save", &f.guest, "--out", "-"]);
    assert!(saved.status.success());
    let mut sock = TcpStream::connect(&addr).unwrap();
    let _ = sock.write_all(&saved.stdout);
    let (r, rerr) = finish(child, err);
    assert_eq!(r.status.code(), Some(2), "{rerr}");
    assert!(
        rerr.contains(
            "the sender speaks plaintext, not TLS (its first bytes: 0x58 0x65 0x6e 0x20 0x73 0x61 0x76 \
             0x65, an xl save file's header), and this receiver accepts only TLS: give the sender --tls-cert"
        ),
        "{rerr}"
    );
    f.assert_nothing_at(&out);
}

/// A peer that connects and says nothing costs the receiver at most --timeout.
#[test]
fn a_silent_peer_times_out_in_the_handshake() {
    let f = fixture();
    let (out, child, addr, err) = f.tls_receiver("silent", &["--timeout", "1"]);
    let start = Instant::now();
    let mut sock = TcpStream::connect(&addr).unwrap();
    let (r, rerr) = finish(child, err);
    let took = start.elapsed();
    assert_eq!(r.status.code(), Some(2), "{rerr}");
    assert!(rerr.contains("the sender sent nothing for 1 s (--timeout), where a TLS sender sends its hello"), "{rerr}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    // It said nothing before closing but close_notify, in the clear: a TLS alert record
    // (type 21, version 3.3, 2 bytes: warning, close_notify).
    let mut got = Vec::new();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = sock.read_to_end(&mut got);
    assert_eq!(got, [0x15, 0x03, 0x03, 0x00, 0x02, 0x01, 0x00]);
    let _ = sock.write_all(b"late");
    f.assert_nothing_at(&out);
}

#[test]
fn plaintext_off_loopback_is_refused_up_front() {
    let f = fixture();
    // 192.0.2.1 (TEST-NET-1) is never connected to: the refusal comes first, at once.
    let start = Instant::now();
    let s = send(&f.guest, "192.0.2.1:7878", &[]);
    assert_eq!(s.status.code(), Some(2), "{}", stderr(&s));
    let e = stderr(&s);
    assert!(e.contains("refusing plaintext TCP with --to 192.0.2.1:7878"), "{e}");
    assert!(e.contains("--tls-cert FILE --tls-key FILE --tls-ca FILE") && e.contains("--insecure"), "{e}");
    assert!(start.elapsed() < Duration::from_secs(5));

    let out = f.path("plain-out");
    for listen in ["0.0.0.0:0", "192.0.2.1:0", "[::]:0"] {
        let o = xsr(&["receive", "--listen", listen, "--out", out.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(2), "{listen}: {}", stderr(&o));
        assert!(stderr(&o).contains(&format!("refusing plaintext TCP with --listen {listen}")), "{}", stderr(&o));
        assert!(!stderr(&o).contains("listening on"), "{}", stderr(&o));
    }
    f.assert_nothing_at(&out);

    // Loopback by name or number needs nothing; --insecure lets the rest through.
    let (child, addr, err) = receiver("0.0.0.0:0", &strings(&["--out", out.to_str().unwrap(), "--insecure"]));
    let port = addr.rsplit_once(':').unwrap().1;
    let s = send(&f.guest, &format!("localhost:{port}"), &[]);
    let (r, rerr) = finish(child, err);
    assert_eq!(s.status.code(), Some(0), "{}", stderr(&s));
    assert_eq!(r.status.code(), Some(0), "{rerr}");
    f.assert_same_dir(&out);

    // The TLS flags go together, and not with pipes.
    let o = xsr(&["send", &f.guest, "--to", "127.0.0.1:9", "--tls-cert", "x"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--tls-key"), "{}", stderr(&o));
    let mut args = strings(&["send", &f.guest, "--via", "true"]);
    args.extend(f.sender.args());
    let o = xsr_cmd(&args).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--tls-* and --insecure are for TCP"), "{}", stderr(&o));
    let o = xsr(&["send", &f.guest, "--to", "127.0.0.1:9", "--insecure", "--tls-allow", "x"]);
    assert_eq!(o.status.code(), Some(2));
}
