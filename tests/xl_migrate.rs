//! xl's migration protocol (`sr_proto::xl_migrate`) end to end: the sender's and the
//! receiver's state machines against each other over a socketpair (one socket carries both
//! channels, as ssh's stdin and stdout do), with a real `xl` save stream in between. The
//! receiver reads the stream with sr-format and checks it with the restore rules, exactly to
//! its libxl END, then reads GO from the same channel; its "copy" is the stream as received,
//! kept under a temporary name until the start renames it into place.
//!
//! The streams are synthetic `xl` files (PV, HVM, PVH) written by the saver; the real Xen
//! files join them here once they ship in the repository (`tests/data/xen-4.17/`).

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::thread;

use sr_format::{DomainType, StreamReader};
use sr_proto::xl_migrate::{
    BoxError, ReceiverActions, ReceiverOutcome, STATUS_NO_GO, SenderActions, SenderOutcome, run_receiver, run_sender,
};
use sr_restore::{RestoreOptions, Restorer};
use sr_save::{Container, SaveOptions, Saver};
use xsr::synthetic::SyntheticGuest;

/// A synthetic guest of `dtype` saved as an `xl` file.
fn xl_stream(dtype: DomainType) -> Vec<u8> {
    let guest = SyntheticGuest::new(dtype, 12, 8 << 20).unwrap();
    let config = format!("{{\"c_info\":{{\"name\":\"guest-{}\"}}}}\0", dtype.0).into_bytes();
    let options = SaveOptions { container: Container::Xl { config }, ..Default::default() };
    let mut out = Vec::new();
    Saver::new(options).save(&guest, &mut out).unwrap();
    out
}

/// The streams to migrate: synthetic ones, and the real Xen files when the repository has them.
fn streams() -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = [DomainType::X86_PV, DomainType::X86_HVM, DomainType::X86_PVH]
        .into_iter()
        .map(|t| (format!("synthetic {t}"), xl_stream(t)))
        .collect();
    let real = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/xen-4.17");
    if let Ok(dir) = fs::read_dir(&real) {
        for e in dir {
            let path = e.unwrap().path();
            if path.to_string_lossy().ends_with(".save.xz") {
                let mut bytes = Vec::new();
                xz2::read::XzDecoder::new(fs::File::open(&path).unwrap()).read_to_end(&mut bytes).unwrap();
                out.push((path.file_name().unwrap().to_string_lossy().into_owned(), bytes));
            }
        }
    }
    out
}

/// The sender: writes the stream; "renames" by recording it. `die_before_go`: the sender
/// stops (and closes both channels) where it would rename.
struct Source {
    stream: Vec<u8>,
    renamed: bool,
    die_before_go: bool,
}

impl SenderActions for Source {
    fn send_stream(&mut self, out: &mut dyn Write) -> Result<(), BoxError> {
        out.write_all(&self.stream)?;
        Ok(())
    }
    fn rename_away(&mut self) -> Result<(), BoxError> {
        if self.die_before_go {
            return Err("the sender was stopped".into());
        }
        self.renamed = true;
        Ok(())
    }
}

/// A reader that keeps a copy of everything read through it.
struct Tee<'a> {
    inner: &'a mut dyn Read,
    copy: &'a mut Vec<u8>,
}

impl Read for Tee<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.copy.extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

/// The receiver: checks the stream with the restore rules as it arrives and keeps it as
/// `incoming`; starting renames it to `final_path`; destroying removes it.
struct Destination {
    incoming: PathBuf,
    final_path: PathBuf,
    fail_start: bool,
    domain_type: Option<DomainType>,
}

impl ReceiverActions for Destination {
    fn receive_stream(&mut self, stream: &mut dyn Read) -> Result<(), BoxError> {
        let mut copy = Vec::new();
        let verified = Restorer::new(RestoreOptions::default())
            .verify(StreamReader::from_read(Tee { inner: stream, copy: &mut copy }))?;
        self.domain_type = Some(verified.state.domain_type);
        fs::write(&self.incoming, &copy)?;
        Ok(())
    }
    fn start(&mut self) -> Result<(), (u8, BoxError)> {
        if self.fail_start {
            return Err((3, "the domain would not unpause".into()));
        }
        fs::rename(&self.incoming, &self.final_path).map_err(|e| (3, e.into()))
    }
    fn destroy(&mut self) -> Result<(), BoxError> {
        match fs::remove_file(&self.incoming) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }
}

struct Run {
    sender: sr_proto::xl_migrate::Ended<SenderOutcome>,
    receiver: sr_proto::xl_migrate::Ended<ReceiverOutcome>,
    renamed: bool,
    received: Option<Vec<u8>>,
    leftover: bool,
    domain_type: Option<DomainType>,
}

fn migrate(stream: &[u8], fail_start: bool, die_before_go: bool) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let (s, r) = UnixStream::pair().unwrap();
    let mut dest = Destination {
        incoming: dir.path().join("guest--incoming"),
        final_path: dir.path().join("guest"),
        fail_start,
        domain_type: None,
    };
    let receiver = thread::spawn(move || {
        let mut ack = r.try_clone().unwrap();
        let mut input = r;
        let ended = run_receiver(&mut input, &mut ack, &mut dest);
        (ended, dest)
    });
    let mut source = Source { stream: stream.to_vec(), renamed: false, die_before_go };
    let mut ack = s.try_clone().unwrap();
    let mut out = s;
    let sender = run_sender(&mut ack, &mut out, &mut source);
    // The sender is done with both channels (a stopped sender's are closed).
    drop(out);
    drop(ack);
    let (receiver, dest) = receiver.join().unwrap();
    Run {
        sender,
        receiver,
        renamed: source.renamed,
        received: fs::read(&dest.final_path).ok(),
        leftover: dest.incoming.exists(),
        domain_type: dest.domain_type,
    }
}

#[test]
fn a_real_stream_migrates_between_the_state_machines() {
    for (name, stream) in streams() {
        let run = migrate(&stream, false, false);
        assert_eq!(run.sender.outcome, SenderOutcome::Migrated, "{name}: {:?}", run.sender.error);
        assert_eq!(run.receiver.outcome, ReceiverOutcome::Running, "{name}: {:?}", run.receiver.error);
        assert_eq!((run.sender.status, run.receiver.status), (Some(0), Some(0)), "{name}");
        assert!(run.renamed, "{name}");
        assert!(run.received.as_deref() == Some(&stream[..]), "{name}: the copy differs from the stream");
        assert!(!run.leftover, "{name}");
        assert!(run.domain_type.is_some(), "{name}");
    }
}

#[test]
fn a_start_that_fails_gives_the_sender_its_guest_back() {
    let stream = xl_stream(DomainType::X86_PV);
    let run = migrate(&stream, true, false);
    assert_eq!(run.sender.outcome, SenderOutcome::KeepSource, "{:?}", run.sender.error);
    assert!(run.sender.error.is_none(), "permission to resume is not an error: {:?}", run.sender.error);
    assert_eq!(run.sender.status, Some(3));
    assert_eq!(run.receiver.outcome, ReceiverOutcome::NoCopy);
    assert!(run.receiver.error.unwrap().to_string().contains("would not unpause"));
    assert!(run.received.is_none() && !run.leftover, "the receiver's copy was destroyed");
}

#[test]
fn a_sender_stopped_before_go_leaves_one_copy() {
    let stream = xl_stream(DomainType::X86_HVM);
    let run = migrate(&stream, false, true);
    assert_eq!(run.sender.outcome, SenderOutcome::KeepSource);
    assert!(!run.renamed);
    // The receiver had READY out, then the channel closed where GO should be: it tries to
    // report (status 0xff), finds the channel gone too, and destroys its copy.
    assert_eq!(run.receiver.outcome, ReceiverOutcome::NoCopy, "{:?}", run.receiver.error);
    assert!(
        run.receiver
            .error
            .as_ref()
            .unwrap()
            .to_string()
            .starts_with("the migration stream ended after 0 of the 44 bytes"),
        "{:?}",
        run.receiver.error
    );
    assert!(run.receiver.status.is_none() || run.receiver.status == Some(STATUS_NO_GO));
    assert!(run.received.is_none() && !run.leftover);
}

#[test]
fn a_damaged_stream_is_refused_before_ready() {
    let mut stream = xl_stream(DomainType::X86_PV);
    // The libxc image header's all-ones marker, after the xl header and the libxl header: the
    // receiver refuses there, while the sender still has most of the stream to write.
    let at = stream.windows(8).position(|w| w == [0xff; 8]).unwrap();
    stream[at] = 0xfe;
    let run = migrate(&stream, false, false);
    assert_eq!(run.receiver.outcome, ReceiverOutcome::NoCopy);
    assert!(run.receiver.error.unwrap().to_string().starts_with("receiving the stream failed"));
    // The receiver hung up: the sender's write fails, or READY never comes.
    assert_eq!(run.sender.outcome, SenderOutcome::KeepSource, "{:?}", run.sender.error);
    assert!(!run.renamed);
    assert!(run.received.is_none() && !run.leftover);
}
