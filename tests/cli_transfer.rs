//! `xsr send` / `xsr receive`: the exit status of each side is the outcome of the whole
//! transfer, over TCP and over pipe pairs, whichever side fails and wherever.

mod common;

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Output, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{real_save_file, stderr, stdout, xsr};

const READY: &[u8] = b"XSR-TRANSFER/1 READY\n";

/// Bytes of the stream set in flight: (offset, new value).
type Patches = Vec<(usize, u8)>;

struct Fixture {
    dir: tempfile::TempDir,
    /// The real Xen file; `xsr save` of `guest` reproduces it byte for byte.
    stream: Vec<u8>,
    guest: String,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("real.save");
    let stream = real_save_file();
    fs::write(&file, &stream).unwrap();
    let guest = dir.path().join("guest");
    let o = xsr(&["restore", file.to_str().unwrap(), "--out", guest.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    Fixture { dir, stream, guest: guest.to_str().unwrap().to_string() }
}

impl Fixture {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The error `xsr verify` gives for the stream with `patches` applied.
    fn verify_error(&self, patches: &[(usize, u8)]) -> String {
        let mut bytes = self.stream.clone();
        for &(at, value) in patches {
            bytes[at] = value;
        }
        let p = self.path("patched.save");
        fs::write(&p, &bytes).unwrap();
        let o = xsr(&["verify", p.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
        stdout(&o).trim_end().strip_prefix("invalid: ").unwrap().to_string()
    }

    /// The offsets of the type bytes of every PAGE_DATA entry whose type nibble is `nibble`.
    fn page_type_bytes(&self, nibble: u8) -> Vec<usize> {
        let o = xsr(&["inspect", "--json", self.path("real.save").to_str().unwrap()]);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let mut at = Vec::new();
        for item in v["items"].as_array().unwrap() {
            if item["kind"] != "PAGE_DATA" {
                continue;
            }
            let body = item["offset"].as_u64().unwrap() as usize + 8;
            let count = u32::from_le_bytes(self.stream[body..body + 4].try_into().unwrap()) as usize;
            for i in 0..count {
                let b = body + 8 + 8 * i + 7;
                if self.stream[b] >> 4 == nibble {
                    at.push(b);
                }
            }
        }
        at
    }

    /// A rejection at the header, mid-stream and at END: (name, patches, what the receiver says).
    fn rejections(&self) -> Vec<(&'static str, Patches, String)> {
        let header = vec![(0, b'Y')];
        // A PAGE_DATA entry with page type nibble 5 (the fourth record's first entry).
        let mid = vec![(0x763 + 16 + 7, 0x50)];
        // Every L4TAB|PINNED page made NOTAB: vcpu 0's CR3 then names a NOTAB page, which
        // only the END checks see.
        let end: Patches = self.page_type_bytes(0xc).into_iter().map(|at| (at, self.stream[at] & 0x0f)).collect();
        assert_eq!(end.len(), 7);
        let mut out = Vec::new();
        for (name, patches) in [("header", header), ("mid-stream", mid), ("END", end)] {
            let err = self.verify_error(&patches);
            out.push((name, patches, err));
        }
        assert!(out[0].2.starts_with("byte 0: not a Xen save image"), "{}", out[0].2);
        assert!(out[1].2.contains("unknown page type 0x5"), "{}", out[1].2);
        assert!(out[2].2.starts_with("END at byte 33632251") && out[2].2.contains("NOTAB"), "{}", out[2].2);
        out
    }

    /// Asserts that nothing complete-looking (nor any partial directory) is left at `out`.
    fn assert_nothing_at(&self, out: &Path) {
        assert!(!out.exists(), "{} exists", out.display());
        let names: Vec<_> = fs::read_dir(self.dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert!(names.iter().all(|n| !n.to_string_lossy().contains("partial")), "{names:?}");
    }

    fn assert_received(&self, out: &Path) {
        for name in ["domain.json", "memory.img", "vcpu0-basic.bin", "shared_info.bin", "xl-config.json"] {
            assert!(fs::read(out.join(name)).unwrap() == fs::read(self.path("guest").join(name)).unwrap(), "{name}");
        }
    }
}

fn xsr_cmd(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_xsr"));
    c.args(args);
    c
}

/// A TCP receiver: the child, its address, and its standard error after the first line.
fn tcp_receiver(out: &Path, extra: &[&str]) -> (Child, String, ChildStderr) {
    let mut args = vec!["--out", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    tcp_receiver_with(&args)
}

/// A TCP receiver with these arguments after `receive --listen 127.0.0.1:0`.
fn tcp_receiver_with(extra: &[&str]) -> (Child, String, ChildStderr) {
    let mut args = vec!["receive", "--listen", "127.0.0.1:0"];
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

fn finish(mut child: Child, mut err: ChildStderr) -> (Option<i32>, String) {
    let status = child.wait().unwrap();
    let mut text = String::new();
    err.read_to_string(&mut text).unwrap();
    (status.code(), text)
}

/// Forwards one TCP connection to `target`, setting the bytes `patches` names in the
/// sender-to-receiver direction; the other direction passes unchanged.
fn patching_proxy(target: String, patches: Patches) -> (String, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let handle = std::thread::spawn(move || {
        let (client, _) = listener.accept().unwrap();
        let server = TcpStream::connect(target).unwrap();
        let (mut c_in, mut s_out) = (client.try_clone().unwrap(), server.try_clone().unwrap());
        let back = std::thread::spawn({
            let (mut s_in, mut c_out) = (server.try_clone().unwrap(), client.try_clone().unwrap());
            move || {
                let _ = std::io::copy(&mut s_in, &mut c_out);
                let _ = c_out.shutdown(Shutdown::Write);
            }
        });
        copy_patched(&mut c_in, &mut s_out, &patches);
        let _ = s_out.shutdown(Shutdown::Write);
        back.join().unwrap();
    });
    (addr, handle)
}

/// Copies `from` to `to` with `patches` applied, until either side ends.
fn copy_patched(from: &mut dyn Read, to: &mut dyn Write, patches: &[(usize, u8)]) {
    let mut buf = vec![0u8; 64 << 10];
    let mut pos = 0usize;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        for &(at, value) in patches {
            if (pos..pos + n).contains(&at) {
                buf[at - pos] = value;
            }
        }
        pos += n;
        if to.write_all(&buf[..n]).is_err() {
            return;
        }
    }
}

/// The offset an error names ("... at byte N ...").
fn error_offset(message: &str) -> u64 {
    let rest = message.split("at byte ").nth(1).unwrap_or_else(|| panic!("no offset in {message}"));
    rest.split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap()
}

fn send(args: &[&str]) -> Output {
    let mut all = vec!["send"];
    all.extend_from_slice(args);
    xsr(&all)
}

#[test]
fn over_tcp_send_exits_0_only_after_the_receiver_committed() {
    let f = fixture();
    let out = f.path("copy");
    let (receiver, addr, err) = tcp_receiver(&out, &[]);
    let o = send(&[&f.guest, "--to", &addr]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!(
            "the receiver committed it: received x86 PV domain: 8192 pages (33632267 bytes) into {}",
            out.display()
        )),
        "{}",
        stderr(&o)
    );
    let (code, text) = finish(receiver, err);
    assert_eq!(code, Some(0), "{text}");
    f.assert_received(&out);
}

#[test]
fn over_tcp_a_rejection_anywhere_fails_both_sides_with_the_receivers_message() {
    let f = fixture();
    for (name, patches, why) in f.rejections() {
        let out = f.path("copy");
        let (receiver, target, err) = tcp_receiver(&out, &[]);
        let (addr, proxy) = patching_proxy(target, patches);
        let o = send(&[&f.guest, "--to", &addr]);
        proxy.join().unwrap();
        let (code, text) = finish(receiver, err);
        assert_eq!(code, Some(1), "{name}: {text}");
        assert!(text.contains(&why), "{name}: {text}");
        assert_eq!(o.status.code(), Some(1), "{name}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("the receiver failed (exit 1)") && stderr(&o).contains(&why),
            "{name}: {}",
            stderr(&o)
        );
        f.assert_nothing_at(&out);
    }
}

#[test]
fn over_tcp_the_receivers_own_bound_refuses_early() {
    let f = fixture();
    let out = f.path("copy");
    let (receiver, addr, err) = tcp_receiver(&out, &["--max-memory", "16K"]);
    let start = Instant::now();
    let o = send(&[&f.guest, "--to", &addr]);
    let (code, text) = finish(receiver, err);
    // A bound of the receiver: 2 on both sides (the stream may well be valid).
    assert_eq!(code, Some(2), "{text}");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    // The receiver's message, word for word, at the sender; and it refused early: within
    // the first PAGE_DATA record (at 0x763, 4202504 bytes long), not at END.
    let why = text.trim_end().rsplit("xsr: ").next().unwrap().to_string();
    assert!(why.contains("restore of the stream from"), "{text}");
    assert!(stderr(&o).contains(&format!("the receiver failed (exit 2): {why}")), "{why}\n{}", stderr(&o));
    assert!(error_offset(&why) < 0x763 + 4202504 + 16, "{why}");
    assert!(start.elapsed() < Duration::from_secs(30));
    f.assert_nothing_at(&out);
}

#[test]
fn over_tcp_a_receiver_that_dies_fails_the_send() {
    let f = fixture();
    // Says READY, reads 1 MiB, dies without an outcome.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let peer = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.write_all(READY).unwrap();
        let mut buf = vec![0u8; 1 << 20];
        s.read_exact(&mut buf).unwrap();
    });
    let o = send(&[&f.guest, "--to", &addr]);
    peer.join().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("without reporting an outcome"), "{}", stderr(&o));

    // Nobody listening.
    let o = send(&[&f.guest, "--to", "127.0.0.1:1"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("cannot connect"), "{}", stderr(&o));
}

#[test]
fn over_tcp_a_receiver_killed_mid_stream_fails_the_send() {
    let f = fixture();
    let out = f.path("copy");
    let (receiver, target, err) = tcp_receiver(&out, &[]);
    let pid = receiver.id();
    // Forwards 1 MiB of the stream, then kills the receiver and keeps forwarding.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let proxy = std::thread::spawn(move || {
        let (mut client, _) = listener.accept().unwrap();
        let mut server = TcpStream::connect(target).unwrap();
        let mut ready = [0u8; READY.len()];
        server.read_exact(&mut ready).unwrap();
        client.write_all(&ready).unwrap();
        let mut first = vec![0u8; 1 << 20];
        client.read_exact(&mut first).unwrap();
        server.write_all(&first).unwrap();
        assert!(Command::new("kill").args(["-KILL", &pid.to_string()]).status().unwrap().success());
        let back = std::thread::spawn({
            let (mut s_in, mut c_out) = (server.try_clone().unwrap(), client.try_clone().unwrap());
            move || {
                let _ = std::io::copy(&mut s_in, &mut c_out);
                let _ = c_out.shutdown(Shutdown::Both);
            }
        });
        let _ = std::io::copy(&mut client, &mut server);
        let _ = server.shutdown(Shutdown::Both);
        back.join().unwrap();
    });
    let o = send(&[&f.guest, "--to", &addr]);
    proxy.join().unwrap();
    let (code, _) = finish(receiver, err);
    assert_eq!(code, None, "killed");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("without reporting an outcome"), "{}", stderr(&o));
    // A killed process cannot clean up its temporary directory, but nothing is committed.
    assert!(!out.exists());
}

#[test]
fn over_tcp_a_sender_that_dies_leaves_nothing_and_is_told_why() {
    let f = fixture();
    let out = f.path("half");
    let (receiver, addr, err) = tcp_receiver(&out, &[]);
    let mut s = TcpStream::connect(&addr).unwrap();
    let mut back = BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    back.read_line(&mut line).unwrap();
    assert_eq!(line.as_bytes(), READY);
    s.write_all(&f.stream[..f.stream.len() / 2]).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let (code, text) = finish(receiver, err);
    assert_eq!(code, Some(1), "a truncated stream is invalid: {text}");
    assert!(text.contains("truncated at byte"), "{text}");
    line.clear();
    back.read_line(&mut line).unwrap();
    assert!(line.starts_with("XSR-TRANSFER/1 ERROR 1 ") && line.contains("truncated at byte"), "{line}");
    f.assert_nothing_at(&out);
}

#[test]
fn over_tcp_a_silent_peer_times_out() {
    let f = fixture();
    let timeout = ["--timeout", "0.5"];
    // A receiver that accepts and says nothing.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let start = Instant::now();
    let o = send(&[&f.guest, "--to", &addr, timeout[0], timeout[1]]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("did not say it was ready within 0.5 s"), "{}", stderr(&o));
    assert!(start.elapsed() < Duration::from_secs(20));
    drop(listener);

    // A receiver that says READY and then never reads: the write blocks, the watchdog fires.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let peer = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.write_all(READY).unwrap();
        std::thread::sleep(Duration::from_secs(5));
    });
    let o = send(&[&f.guest, "--to", &addr, timeout[0], timeout[1]]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("did not read the stream for 0.5 s"), "{}", stderr(&o));
    peer.join().unwrap();

    // A receiver that reads everything and never reports.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let peer = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.write_all(READY).unwrap();
        let _ = std::io::copy(&mut s, &mut std::io::sink());
        std::thread::sleep(Duration::from_secs(2));
    });
    let o = send(&[&f.guest, "--to", &addr, timeout[0], timeout[1]]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("no outcome from 127.0.0.1:"), "{}", stderr(&o));
    peer.join().unwrap();

    // A sender that connects and says nothing.
    let out = f.path("silent");
    let (receiver, addr, err) = tcp_receiver(&out, &timeout);
    let s = TcpStream::connect(&addr).unwrap();
    let (code, text) = finish(receiver, err);
    drop(s);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("no data from the peer for 0.5 s"), "{text}");
    f.assert_nothing_at(&out);
}

fn via(out: &Path, extra: &str) -> String {
    format!("'{}' receive --from - --out '{}' {extra}", env!("CARGO_BIN_EXE_xsr"), out.display())
}

#[test]
fn over_a_pipe_pair_via_a_transport_command() {
    let f = fixture();
    let out = f.path("copy");
    let o = send(&[&f.guest, "--via", &via(&out, "")]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("the receiver committed it: received x86 PV domain: 8192 pages"), "{}", stderr(&o));
    f.assert_received(&out);

    // The receiver's own bound, early.
    let out = f.path("bounded");
    let o = send(&[&f.guest, "--via", &via(&out, "--max-memory 16K")]);
    assert_eq!(o.status.code(), Some(2), "a bound: {}", stderr(&o));
    let text = stderr(&o);
    let why = text.split("the receiver failed (exit 2): ").nth(1).unwrap_or_else(|| panic!("{text}"));
    assert!(why.starts_with("restore of standard input failed"), "{text}");
    assert!(error_offset(why) < 0x763 + 4202504 + 16, "{why}");
    f.assert_nothing_at(&out);

    // The destination exists: refused before READY.
    let o = send(&[&f.guest, "--via", &via(&f.path("copy"), "")]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
}

/// `xsr send GUEST --to - --reply FIFO` and `xsr receive --from - --out OUT > FIFO`, with the
/// stream between them left to the test (the sender's stdout, the receiver's stdin).
fn spawn_fifo_pair(guest: &str, fifo: &Path, out: &Path, sender_stderr: Stdio) -> (Child, Child) {
    let sender = xsr_cmd(&["send", guest, "--to", "-", "--reply", fifo.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(sender_stderr)
        .spawn()
        .unwrap();
    // Opened read-write, so this open does not wait for a reader; the receiver gets its own copy.
    let reply = fs::OpenOptions::new().read(true).write(true).open(fifo).unwrap();
    let receiver = xsr_cmd(&["receive", "--from", "-", "--out", out.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(reply)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    (sender, receiver)
}

#[test]
fn over_a_pipe_pair_a_rejection_anywhere_fails_both_sides() {
    let f = fixture();
    let fifo = f.path("reply");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    for (name, patches, why) in f.rejections() {
        let out = f.path("copy");
        // xsr send --to - --reply FIFO | (patch) | xsr receive --from - > FIFO
        let (mut sender, mut receiver) = spawn_fifo_pair(&f.guest, &fifo, &out, Stdio::piped());
        let mut from = sender.stdout.take().unwrap();
        let mut to = receiver.stdin.take().unwrap();
        copy_patched(&mut from, &mut to, &patches);
        drop(to);
        drop(from);
        let r = receiver.wait_with_output().unwrap();
        let s = sender.wait_with_output().unwrap();
        assert_eq!(r.status.code(), Some(1), "{name}: {}", stderr(&r));
        assert!(stderr(&r).contains(&why), "{name}: {}", stderr(&r));
        assert_eq!(s.status.code(), Some(1), "{name}: {}", stderr(&s));
        assert!(stderr(&s).contains(&why), "{name}: {}", stderr(&s));
        f.assert_nothing_at(&out);
    }
}

#[test]
fn over_a_pipe_pair_the_unpatched_stream_commits_with_reply_on_a_named_pipe() {
    let f = fixture();
    let fifo = f.path("reply");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let out = f.path("copy");
    let script = format!(
        "'{x}' send '{g}' --to - --reply '{r}' | '{x}' receive --from - --out '{o}' > '{r}'",
        x = env!("CARGO_BIN_EXE_xsr"),
        g = f.guest,
        r = fifo.display(),
        o = out.display()
    );
    let o = Command::new("bash").args(["-c", &format!("set -o pipefail; {script}")]).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("the receiver committed it"), "{}", stderr(&o));
    f.assert_received(&out);
}

#[test]
fn over_a_pipe_pair_a_receiver_that_dies_fails_the_send() {
    let f = fixture();
    let o = send(&[&f.guest, "--via", "printf 'XSR-TRANSFER/1 READY\\n'; head -c 1048576 > /dev/null"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("without reporting an outcome"), "{}", stderr(&o));
    // A transport that is not an xsr receiver at all.
    let o = send(&[&f.guest, "--via", "echo hello; cat > /dev/null"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("not an XSR-TRANSFER/1 message: \"hello\""), "{}", stderr(&o));
}

#[test]
fn over_a_pipe_a_sender_that_dies_leaves_nothing() {
    let f = fixture();
    let out = f.path("half");
    let o =
        common::xsr_stdin(&["receive", "--from", "-", "--out", out.to_str().unwrap()], &f.stream[..f.stream.len() / 2]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let text = stdout(&o);
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("XSR-TRANSFER/1 READY"));
    let err = lines.next().unwrap();
    assert!(err.starts_with("XSR-TRANSFER/1 ERROR 1 restore of standard input failed: truncated at byte"), "{err}");
    assert_eq!(lines.next(), None);
    f.assert_nothing_at(&out);
}

/// A TLS hello where the stream should start (here on a pipe: `--from -`) is a transport
/// error (exit 2, told to the sender too), not an invalid stream, and leaves nothing.
#[test]
fn a_tls_hello_instead_of_a_stream_is_a_transport_error() {
    let f = fixture();
    let out = f.path("tls");
    let hello = [0x16, 0x03, 0x01, 0x05, 0xa3, 0x01, 0x00, 0x05];
    let o = common::xsr_stdin(&["receive", "--from", "-", "--out", out.to_str().unwrap()], &hello);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let text = stdout(&o);
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("XSR-TRANSFER/1 READY"));
    let err = lines.next().unwrap();
    assert!(
        err.starts_with(
            "XSR-TRANSFER/1 ERROR 2 the sender speaks TLS (its first bytes 0x16 0x03 0x01 are a TLS record, not a \
             Xen stream) and this receiver was started without it: start the receiver with --tls-cert FILE"
        ),
        "{err}"
    );
    assert!(stderr(&o).contains(&err["XSR-TRANSFER/1 ERROR 2 ".len()..]), "{}", stderr(&o));
    f.assert_nothing_at(&out);
}

#[test]
fn over_a_pipe_pair_a_killed_sender_leaves_nothing() {
    let f = fixture();
    let fifo = f.path("reply");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let out = f.path("copy");
    let (mut sender, mut receiver) = spawn_fifo_pair(&f.guest, &fifo, &out, Stdio::null());
    let mut from = sender.stdout.take().unwrap();
    let mut to = receiver.stdin.take().unwrap();
    let mut first = vec![0u8; 1 << 20];
    from.read_exact(&mut first).unwrap();
    to.write_all(&first).unwrap();
    sender.kill().unwrap();
    let _ = std::io::copy(&mut from, &mut to);
    drop(to);
    assert!(sender.wait().unwrap().code().is_none(), "killed");
    let r = receiver.wait_with_output().unwrap();
    assert_eq!(r.status.code(), Some(1), "{}", stderr(&r));
    assert!(stderr(&r).contains("truncated at byte"), "{}", stderr(&r));
    f.assert_nothing_at(&out);
}

#[test]
fn over_a_pipe_a_silent_peer_times_out() {
    let f = fixture();
    let start = Instant::now();
    let o = send(&[&f.guest, "--timeout", "0.5", "--via", "exec sleep 30"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("did not say it was ready within 0.5 s"), "{}", stderr(&o));
    // READY, then nothing read: the watchdog kills the transport.
    let o = send(&[&f.guest, "--timeout", "0.5", "--via", "printf 'XSR-TRANSFER/1 READY\\n'; exec sleep 30"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("did not read the stream for 0.5 s"), "{}", stderr(&o));
    assert!(start.elapsed() < Duration::from_secs(25), "the transport commands were not waited for");

    // A receiver whose standard input stays open and silent.
    let out = f.path("silent");
    let mut receiver = xsr_cmd(&["receive", "--from", "-", "--out", out.to_str().unwrap(), "--timeout", "0.5"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdin = receiver.stdin.take().unwrap();
    let o = receiver.wait_with_output().unwrap();
    drop(stdin);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("no data from the peer for 0.5 s"), "{}", stderr(&o));
    assert!(stdout(&o).contains("XSR-TRANSFER/1 ERROR 2 "), "{}", stdout(&o));
    f.assert_nothing_at(&out);
}

#[test]
fn send_flags_are_checked() {
    let f = fixture();
    let o = send(&[&f.guest, "--to", "-"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--to - needs --reply"), "{}", stderr(&o));
    let o = send(&[&f.guest, "--to", "127.0.0.1:1", "--reply", "x"]);
    assert_eq!(o.status.code(), Some(2));
    let o = send(&[&f.guest, "--to", "127.0.0.1:1", "--via", "cat"]);
    assert_eq!(o.status.code(), Some(2));
    let o = send(&[&f.guest, "--to", "127.0.0.1:1", "--timeout", "0"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(xsr(&["receive", "--from", "-", "--listen", "127.0.0.1:0", "--out", "x"]).status.code(), Some(2));
}

#[test]
fn over_tcp_out_file_keeps_the_stream_byte_for_byte() {
    let f = fixture();
    let out = f.path("received.save");
    let (receiver, addr, err) = tcp_receiver_with(&["--out-file", out.to_str().unwrap()]);
    let o = send(&[&f.guest, "--to", &addr]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let (code, text) = finish(receiver, err);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        stderr(&o).contains(&format!(
            "the receiver committed it: received x86 PV domain: 8192 pages, 33632267 bytes into {}",
            out.display()
        )),
        "{}",
        stderr(&o)
    );
    // The directory saves back to the real Xen file, and the receiver kept exactly that.
    assert!(fs::read(&out).unwrap() == f.stream);
}

#[test]
fn over_tcp_out_file_a_rejection_anywhere_leaves_no_file() {
    let f = fixture();
    for (name, patches, why) in f.rejections() {
        let out = f.path("received.save");
        let (receiver, target, err) = tcp_receiver_with(&["--out-file", out.to_str().unwrap()]);
        let (addr, proxy) = patching_proxy(target, patches);
        let o = send(&[&f.guest, "--to", &addr]);
        proxy.join().unwrap();
        let (code, text) = finish(receiver, err);
        assert_eq!(code, Some(1), "{name}: {text}");
        assert!(text.contains(&why), "{name}: {text}");
        assert_eq!(o.status.code(), Some(1), "{name}: {}", stderr(&o));
        f.assert_nothing_at(&out);
    }
}

#[test]
fn out_file_and_out_are_exclusive_and_one_is_needed() {
    let o = xsr(&["receive", "--from", "-", "--out", "a", "--out-file", "b"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = xsr(&["receive", "--from", "-"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--out"), "{}", stderr(&o));
}

/// Whether process `pid` is gone (or a zombie nobody reaped yet: it runs no more).
fn process_gone(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

#[test]
fn a_transport_command_that_times_out_is_killed_with_everything_it_started() {
    let f = fixture();
    // The command starts two processes of its own (as `ssh` with a ProxyCommand, or a shell
    // pipeline would) and never answers.
    let pids = f.path("pids");
    let cmd = format!("sleep 300 & echo $! > '{p}'; sleep 301 & echo $! >> '{p}'; wait", p = pids.display());
    let start = Instant::now();
    let o = xsr(&["send", &f.guest, "--via", &cmd, "--timeout", "1"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("did not say it was ready within 1 s (--timeout)"), "{}", stderr(&o));
    assert!(start.elapsed() < Duration::from_secs(20));
    let pids: Vec<u32> = fs::read_to_string(&pids).unwrap().lines().map(|l| l.trim().parse().unwrap()).collect();
    assert_eq!(pids.len(), 2);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !pids.iter().all(|&p| process_gone(p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    for p in pids {
        assert!(process_gone(p), "process {p} that the transport command started still runs");
    }
}

#[test]
fn an_interrupted_send_kills_its_transport_command_too() {
    let f = fixture();
    let pids = f.path("pids");
    let cmd = format!("sleep 300 & echo $! > '{p}'; wait", p = pids.display());
    let mut child =
        xsr_cmd(&["send", &f.guest, "--via", &cmd, "--timeout", "100"]).stderr(Stdio::piped()).spawn().unwrap();
    let start = Instant::now();
    while fs::read_to_string(&pids).map_or(true, |s| !s.ends_with('\n')) {
        assert!(start.elapsed() < Duration::from_secs(20));
        std::thread::sleep(Duration::from_millis(10));
    }
    let pid: u32 = fs::read_to_string(&pids).unwrap().trim().parse().unwrap();
    let xsr_pid = rustix::process::Pid::from_raw(child.id().cast_signed()).unwrap();
    rustix::process::kill_process(xsr_pid, rustix::process::Signal::TERM).unwrap();
    let status = child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(15));
    let deadline = Instant::now() + Duration::from_secs(5);
    while !process_gone(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(process_gone(pid), "the transport's process {pid} still runs");
}

#[test]
fn receive_timeout_bounds_the_wait_for_a_sender() {
    let f = fixture();
    let out = f.path("copy");
    let start = Instant::now();
    let o = xsr(&["receive", "--listen", "127.0.0.1:0", "--out", out.to_str().unwrap(), "--timeout", "1"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("no sender connected within 1 s (--timeout)"), "{}", stderr(&o));
    assert!(start.elapsed() < Duration::from_secs(20), "{:?}", start.elapsed());
    f.assert_nothing_at(&out);
    // A named pipe nobody opens for writing.
    let fifo = f.path("fifo");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let start = Instant::now();
    let o = xsr(&["receive", "--from", fifo.to_str().unwrap(), "--out", out.to_str().unwrap(), "--timeout", "1"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("(--timeout)"), "{}", stderr(&o));
    assert!(start.elapsed() < Duration::from_secs(20), "{:?}", start.elapsed());
    f.assert_nothing_at(&out);
    // An output that cannot be written fails at once, not after the wait for a sender.
    let start = Instant::now();
    let o = xsr(&["receive", "--listen", "127.0.0.1:0", "--out", &f.guest]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("listening on"), "{}", stderr(&o));
    assert!(start.elapsed() < Duration::from_secs(20), "{:?}", start.elapsed());
}

#[test]
fn send_and_receive_print_json_summaries() {
    let f = fixture();
    let out = f.path("copy");
    let (receiver, addr, err) = tcp_receiver(&out, &["--json"]);
    let o = send(&[&f.guest, "--to", &addr, "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(&o)));
    assert_eq!(s["pages"], 8192);
    assert!(s["receiver"].as_str().unwrap().starts_with("received x86 PV domain: 8192 pages"), "{s}");
    let r = receiver.wait_with_output().unwrap();
    drop(err);
    assert_eq!(r.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(&r)));
    assert_eq!(v["kind"], "directory");
    assert_eq!(v["pages"], 8192);
    assert_eq!(v["domain_type"], "x86 PV");
    assert_eq!(v["out"], out.to_str().unwrap());
    // With --from, standard output carries the handshake: the JSON goes to standard error.
    let file = f.path("copy.save");
    let o = xsr(&[
        "receive",
        "--from",
        f.path("real.save").to_str().unwrap(),
        "--out-file",
        file.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).starts_with("XSR-TRANSFER/1 READY\nXSR-TRANSFER/1 OK "), "{}", stdout(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stderr).unwrap_or_else(|e| panic!("{e}: {}", stderr(&o)));
    assert_eq!(v["kind"], "file");
    assert_eq!(v["bytes"], f.stream.len());
    // A failure is a JSON error object with the exit code.
    let o = xsr(&[
        "receive",
        "--from",
        f.path("real.save").to_str().unwrap(),
        "--out-file",
        file.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&o.stderr).unwrap_or_else(|e| panic!("{e}: {}", stderr(&o)));
    assert_eq!(v["exit_code"], 2);
    assert!(v["error"].as_str().unwrap().contains("already exists"), "{v}");
}
