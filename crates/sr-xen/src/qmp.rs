//! QEMU's machine protocol (QMP) on an HVM domain's device-model socket, spoken the way libxl
//! speaks it (`tools/libs/light/libxl_qmp.c`): connect to `qmp-libxl-<domid>`, read QEMU's
//! greeting, `qmp_capabilities`, then one command at a time, each with an `id`, skipping the
//! asynchronous events QEMU sends in between. Messages are JSON objects ended by `"\r\n"`.
//! A file descriptor goes to QEMU with the command that takes it (`add-fd`), as `SCM_RIGHTS`
//! ancillary data of the same `sendmsg`.
//!
//! Written here rather than taken from a crate: the QMP crates bind a schema of one QEMU
//! version and an async runtime, while libxl's conversation is four fixed commands over a
//! blocking socket; the JSON itself is serde_json's.

use std::io::{BufRead, BufReader, IoSlice, Read, Write};
use std::os::fd::BorrowedFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::error::XenError;

/// The longest message read from QEMU (libxl's `QMP_MAX_SIZE_RX_BUF` is 1 MiB too).
const MAX_MESSAGE: u64 = 1 << 20;

/// An open QMP session.
#[derive(Debug)]
pub(crate) struct Qmp {
    domid: u32,
    stream: UnixStream,
    reader: BufReader<UnixStream>,
    next_id: u64,
    /// QEMU's version from the greeting (major, minor, micro).
    version: (u64, u64, u64),
}

fn failed(domid: u32, command: &'static str, detail: impl Into<String>) -> XenError {
    XenError::Qmp { domid, command, detail: detail.into() }
}

/// QEMU's version in a greeting (`{"QMP": {"version": {"qemu": {"major": ..}}}}`).
fn greeting_version(greeting: &Value) -> Option<(u64, u64, u64)> {
    let q = greeting.get("QMP")?.get("version")?.get("qemu")?;
    Some((q.get("major")?.as_u64()?, q.get("minor")?.as_u64()?, q.get("micro")?.as_u64()?))
}

/// What a response to command `id` says: `Some(Ok(return))`, `Some(Err(class: desc))`, or
/// `None` for a message that is not that response (an event, another id).
fn response_to(msg: &Value, id: u64) -> Option<Result<Value, String>> {
    if msg.get("event").is_some() {
        return None;
    }
    // QEMU answers a message it could not parse with an error without an id.
    if msg.get("id").is_some_and(|i| i.as_u64() != Some(id)) {
        return None;
    }
    if let Some(r) = msg.get("return") {
        return Some(Ok(r.clone()));
    }
    let e = msg.get("error");
    let class = e.and_then(|e| e.get("class")).and_then(Value::as_str).unwrap_or("unknown error class");
    let desc = e.and_then(|e| e.get("desc")).and_then(Value::as_str).unwrap_or("no description");
    Some(Err(format!("{class}: {desc}")))
}

impl Qmp {
    /// Connects to `socket`, reads the greeting and negotiates capabilities; every read and
    /// write afterwards waits at most `timeout`.
    pub(crate) fn connect(domid: u32, socket: &Path, timeout: Duration) -> Result<Self, XenError> {
        let stream = UnixStream::connect(socket)
            .map_err(|e| failed(domid, "connect", format!("cannot connect to {}: {e}", socket.display())))?;
        let io = |e: std::io::Error| failed(domid, "connect", e.to_string());
        stream.set_read_timeout(Some(timeout)).map_err(io)?;
        stream.set_write_timeout(Some(timeout)).map_err(io)?;
        let reader = BufReader::new(stream.try_clone().map_err(io)?);
        let mut qmp = Self { domid, stream, reader, next_id: 1, version: (0, 0, 0) };
        let greeting = qmp.read_message("greeting")?;
        qmp.version = greeting_version(&greeting)
            .ok_or_else(|| failed(domid, "greeting", format!("not a QMP greeting: {greeting}")))?;
        qmp.execute("qmp_capabilities", None)?;
        Ok(qmp)
    }

    /// QEMU's (major, minor, micro) version.
    pub(crate) fn version(&self) -> (u64, u64, u64) {
        self.version
    }

    fn read_message(&mut self, command: &'static str) -> Result<Value, XenError> {
        let mut line = String::new();
        let n = (&mut self.reader)
            .take(MAX_MESSAGE)
            .read_line(&mut line)
            .map_err(|e| failed(self.domid, command, format!("reading QEMU's answer: {e}")))?;
        if n == 0 {
            return Err(failed(self.domid, command, "QEMU closed the QMP socket"));
        }
        if !line.ends_with('\n') {
            return Err(failed(self.domid, command, format!("QEMU's answer exceeds {MAX_MESSAGE} bytes")));
        }
        serde_json::from_str(line.trim_end())
            .map_err(|e| failed(self.domid, command, format!("QEMU's answer is not JSON ({e}): {}", line.trim_end())))
    }

    fn message(&mut self, command: &'static str, arguments: Option<Value>) -> (u64, Vec<u8>) {
        let id = self.next_id;
        self.next_id += 1;
        let mut msg = json!({ "execute": command, "id": id });
        if let Some(args) = arguments {
            msg["arguments"] = args;
        }
        let mut bytes = msg.to_string().into_bytes();
        bytes.extend_from_slice(b"\r\n");
        (id, bytes)
    }

    fn answer(&mut self, command: &'static str, id: u64) -> Result<Value, XenError> {
        loop {
            let msg = self.read_message(command)?;
            match response_to(&msg, id) {
                Some(Ok(v)) => return Ok(v),
                Some(Err(e)) => return Err(failed(self.domid, command, e)),
                None => continue,
            }
        }
    }

    /// Runs `command` with `arguments` and returns its `return` value.
    ///
    /// Errors: [`XenError::Qmp`] with QEMU's error class and description, or the socket's
    /// failure (a timeout included).
    pub(crate) fn execute(&mut self, command: &'static str, arguments: Option<Value>) -> Result<Value, XenError> {
        let (id, bytes) = self.message(command, arguments);
        self.stream.write_all(&bytes).map_err(|e| failed(self.domid, command, format!("sending: {e}")))?;
        self.answer(command, id)
    }

    /// Sends `command` with `arguments` but does not wait for its answer: `Ok` once QEMU has
    /// the whole command (it runs it even if this process dies now).
    pub(crate) fn send(&mut self, command: &'static str, arguments: Option<Value>) -> Result<u64, XenError> {
        let (id, bytes) = self.message(command, arguments);
        self.stream.write_all(&bytes).map_err(|e| failed(self.domid, command, format!("sending: {e}")))?;
        Ok(id)
    }

    /// Waits for the answer to a command [`send`](Self::send) sent.
    pub(crate) fn wait(&mut self, command: &'static str, id: u64) -> Result<Value, XenError> {
        self.answer(command, id)
    }

    /// Runs `command` with `fd` passed along (`SCM_RIGHTS` on the same message), as libxl
    /// sends `add-fd`.
    pub(crate) fn execute_with_fd(
        &mut self,
        command: &'static str,
        arguments: Option<Value>,
        fd: BorrowedFd<'_>,
    ) -> Result<Value, XenError> {
        use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags, sendmsg};
        let (id, bytes) = self.message(command, arguments);
        let fds = [fd];
        let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
            return Err(failed(self.domid, command, "no room for the file descriptor"));
        }
        let sent = sendmsg(&self.stream, &[IoSlice::new(&bytes)], &mut control, SendFlags::NOSIGNAL)
            .map_err(|e| failed(self.domid, command, format!("sending with a file descriptor: {e}")))?;
        // The descriptor went with the first byte; the rest (if the socket took less) follows.
        self.stream.write_all(&bytes[sent..]).map_err(|e| failed(self.domid, command, format!("sending: {e}")))?;
        self.answer(command, id)
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixListener;

    use super::*;

    #[test]
    fn greeting_and_responses() {
        let g: Value = serde_json::from_str(
            r#"{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": "Debian 1:7.2+dfsg-7"}, "capabilities": []}}"#,
        )
        .unwrap();
        assert_eq!(greeting_version(&g), Some((7, 2, 0)));
        assert_eq!(greeting_version(&json!({"return": {}})), None);
        assert_eq!(response_to(&json!({"return": {"x": 1}, "id": 4}), 4), Some(Ok(json!({"x": 1}))));
        assert_eq!(response_to(&json!({"return": {}, "id": 3}), 4), None);
        assert_eq!(response_to(&json!({"event": "STOP", "timestamp": {}}), 4), None);
        assert_eq!(
            response_to(&json!({"error": {"class": "GenericError", "desc": "no"}, "id": 4}), 4),
            Some(Err("GenericError: no".to_string()))
        );
        // A parse error comes back without an id: it answers whatever was sent.
        assert_eq!(
            response_to(&json!({"error": {"class": "GenericError", "desc": "JSON parse error"}}), 9),
            Some(Err("GenericError: JSON parse error".to_string()))
        );
    }

    /// A fake QEMU on a socket pair: greeting, capabilities, an event, then answers, and an
    /// `add-fd` whose descriptor arrives with the message.
    #[test]
    fn a_session_against_a_fake_qemu() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qmp");
        let listener = UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, recvmsg};
            let (conn, _) = listener.accept().unwrap();
            let mut w = conn.try_clone().unwrap();
            let mut r = BufReader::new(conn.try_clone().unwrap());
            w.write_all(b"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 1, \"minor\": 2, \"major\": 7}}, \"capabilities\": []}}\r\n").unwrap();
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            let m: Value = serde_json::from_str(&line).unwrap();
            assert_eq!(m["execute"], "qmp_capabilities");
            w.write_all(format!("{{\"return\": {{}}, \"id\": {}}}\r\n", m["id"]).as_bytes()).unwrap();
            line.clear();
            r.read_line(&mut line).unwrap();
            let m: Value = serde_json::from_str(&line).unwrap();
            assert_eq!(m["execute"], "stop");
            w.write_all(b"{\"event\": \"STOP\", \"timestamp\": {\"seconds\": 1}}\r\n").unwrap();
            w.write_all(format!("{{\"return\": {{}}, \"id\": {}}}\r\n", m["id"]).as_bytes()).unwrap();
            // add-fd: read with recvmsg to receive the descriptor.
            let mut buf = vec![0u8; 4096];
            let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
            let mut control = RecvAncillaryBuffer::new(&mut space);
            let got =
                recvmsg(&conn, &mut [std::io::IoSliceMut::new(&mut buf)], &mut control, RecvFlags::empty()).unwrap();
            let text = String::from_utf8_lossy(&buf[..got.bytes]).into_owned();
            let m: Value = serde_json::from_str(text.trim_end()).unwrap();
            assert_eq!(m["execute"], "add-fd");
            let mut fds = Vec::new();
            for msg in control.drain() {
                if let RecvAncillaryMessage::ScmRights(f) = msg {
                    fds.extend(f);
                }
            }
            assert_eq!(fds.len(), 1);
            let mut file = std::fs::File::from(fds.pop().unwrap());
            file.write_all(b"device state").unwrap();
            w.write_all(format!("{{\"return\": {{\"fdset-id\": 3, \"fd\": 7}}, \"id\": {}}}\r\n", m["id"]).as_bytes())
                .unwrap();
            line.clear();
            r.read_line(&mut line).unwrap();
            let m: Value = serde_json::from_str(&line).unwrap();
            w.write_all(
                format!("{{\"error\": {{\"class\": \"GenericError\", \"desc\": \"nope\"}}, \"id\": {}}}\r\n", m["id"])
                    .as_bytes(),
            )
            .unwrap();
        });
        let mut qmp = Qmp::connect(5, &path, Duration::from_secs(10)).unwrap();
        assert_eq!(qmp.version(), (7, 2, 1));
        assert_eq!(qmp.execute("stop", None).unwrap(), json!({}));
        let mut file = tempfile::tempfile().unwrap();
        let r = qmp.execute_with_fd("add-fd", None, file.as_fd()).unwrap();
        assert_eq!(r["fdset-id"], 3);
        let e = qmp.execute("cont", None).unwrap_err();
        assert_eq!(e.to_string(), "device model of domain 5: QMP cont: GenericError: nope");
        server.join().unwrap();
        let mut got = String::new();
        use std::io::Seek;
        file.rewind().unwrap();
        file.read_to_string(&mut got).unwrap();
        assert_eq!(got, "device state");
    }
}
