//! xsr as libxl's save helper (`xsr --restore-domain ...` / `--save-domain ...`), without Xen:
//! the command line is checked, only protocol frames reach standard output, refusals are
//! answered in the protocol (a `log` at error level, `restore_results`, a failed `complete`)
//! and the helper exits 0 once libxl replied to `complete`, as Xen's helper does.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use sr_proto::helper::{HelperMessage, Mode, ReadError, encode_reply, level};

fn helper(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_xsr"))
        .args(args)
        .env_remove("XSR_HELPER_REPORT")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

/// Every frame on standard output, decoded as libxl's receiver of `mode` does; panics on any
/// byte that is not part of a frame.
fn frames(out: &[u8], mode: Mode) -> Vec<HelperMessage> {
    let mut r = out;
    let mut msgs = Vec::new();
    loop {
        match HelperMessage::read_from(&mut r, mode) {
            Ok(m) => msgs.push(m),
            Err(ReadError::Closed) => return msgs,
            Err(e) => panic!("not a frame on stdout: {e} ({out:?})"),
        }
    }
}

#[test]
#[cfg_attr(not(feature = "xen"), ignore = "save mode needs the xen feature")]
fn a_save_without_a_suspend_callback_or_a_stream_fails_in_the_protocol() {
    // cbflags 0: libxl implements no suspend callback, which xc_domain_save needs.
    let o = helper(&["--save-domain", "3", "-1", "7", "0", "0", "0"], &encode_reply(0));
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let msgs = frames(&o.stdout, Mode::Save);
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    let HelperMessage::Log { level: l, errnoval, context, formatted } = &msgs[0] else { panic!("{msgs:?}") };
    assert_eq!((*l, context.as_str()), (level::ERROR, "xsr"));
    assert!(formatted.contains("save of domain 7 failed: libxl passed no suspend callback"), "{formatted}");
    assert_eq!(*errnoval, 22);
    assert_eq!(msgs[1], HelperMessage::Complete { retval: -1, errnoval: 22 });
    // The suspend callback (bit 3) but descriptor 99, which is not open in the helper.
    let o = helper(&["--save-domain", "99", "-1", "7", "1", "8", "0"], &encode_reply(0));
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let msgs = frames(&o.stdout, Mode::Save);
    let HelperMessage::Log { formatted, .. } = &msgs[0] else { panic!("{msgs:?}") };
    assert!(formatted.contains("the stream descriptor 99"), "{formatted}");
    assert_eq!(msgs.last(), Some(&HelperMessage::Complete { retval: -1, errnoval: 9 }));
    // A checkpointed save (Remus) is refused in words.
    let o = helper(&["--save-domain", "3", "-1", "7", "0", "40", "1"], &encode_reply(0));
    let msgs = frames(&o.stdout, Mode::Save);
    let HelperMessage::Log { formatted, .. } = &msgs[0] else { panic!("{msgs:?}") };
    assert!(formatted.contains("checkpointed saves (Remus) are not done by xsr"), "{formatted}");
    assert_eq!(msgs.last(), Some(&HelperMessage::Complete { retval: -1, errnoval: 95 }));
}

#[test]
fn a_restore_that_cannot_start_answers_results_and_a_failed_completion() {
    // Descriptor 99 is not open in the helper.
    let o = helper(&["--restore-domain", "99", "-1", "5", "1", "0", "2", "0", "768", "0"], &encode_reply(0));
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let msgs = frames(&o.stdout, Mode::Restore);
    assert_eq!(msgs.len(), 3, "{msgs:?}");
    assert!(matches!(&msgs[0], HelperMessage::Log { level: level::ERROR, .. }), "{msgs:?}");
    assert_eq!(msgs[1], HelperMessage::RestoreResults { store_gfn: 0, console_gfn: 0 });
    assert_eq!(msgs[2], HelperMessage::Complete { retval: -1, errnoval: 95 });
    assert!(!o.stderr.is_empty(), "the reason goes to stderr too");
}

#[test]
fn checkpointed_streams_are_refused_in_words() {
    let o = helper(&["--restore-domain", "3", "-1", "5", "1", "0", "2", "0", "800", "1"], &encode_reply(0));
    assert_eq!(o.status.code(), Some(0));
    let msgs = frames(&o.stdout, Mode::Restore);
    let HelperMessage::Log { formatted, .. } = &msgs[0] else { panic!("{msgs:?}") };
    assert!(formatted.contains("checkpointed streams (Remus) are not restored by xsr"), "{formatted}");
    assert_eq!(msgs.last(), Some(&HelperMessage::Complete { retval: -1, errnoval: 95 }));
}

#[test]
fn a_missing_reply_is_exit_2_and_a_bad_command_line_writes_nothing_to_stdout() {
    // libxl gone before it replied to complete.
    let o = helper(&["--save-domain", "3", "-1", "7", "0", "0", "0"], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(frames(&o.stdout, Mode::Save).len(), 2);
    // Not libxl's command line: nothing on stdout, the reason on stderr, exit 2.
    for args in [&["--restore-domain", "3"][..], &["--save-domain", "3", "-1", "x", "0", "0", "0"]] {
        let o = helper(args, &[]);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(o.stdout.is_empty(), "{args:?}");
        assert!(String::from_utf8_lossy(&o.stderr).contains("save helper"), "{args:?}");
    }
}

#[test]
fn the_helper_writes_its_report_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_xsr"))
        .args(["--restore-domain", "99", "-1", "5", "1", "0", "2", "0", "768", "0"])
        .env("XSR_HELPER_REPORT", &report)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&encode_reply(0)).unwrap();
    assert!(child.wait().unwrap().success());
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(json["domid"], 5);
    assert_eq!(json["ok"], false);
    // Without the xen feature the helper cannot restore at all; with it, descriptor 99 is named.
    let error = json["error"].as_str().unwrap();
    assert!(error.contains("descriptor 99") || error.contains("without the xen feature"), "{json}");
}

/// With a timing wrapper's clock reading (`XSR_HELPER_T0`), the report says when main started
/// and when `complete` went out, in order, and the peak resident memory; without it, neither
/// mark (the clock reading is never guessed).
#[test]
fn the_report_carries_the_timing_marks_of_a_wrapper() {
    let run = |t0: Option<String>| {
        let dir = tempfile::tempdir().unwrap();
        let report = dir.path().join("report.json");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_xsr"));
        cmd.args(["--restore-domain", "99", "-1", "5", "1", "0", "2", "0", "768", "0"])
            .env("XSR_HELPER_REPORT", &report)
            .env_remove("XSR_HELPER_T0")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(t0) = t0 {
            cmd.env("XSR_HELPER_T0", t0);
        }
        let mut child = cmd.spawn().unwrap();
        child.stdin.take().unwrap().write_all(&encode_reply(0)).unwrap();
        assert!(child.wait().unwrap().success());
        serde_json::from_slice::<serde_json::Value>(&std::fs::read(&report).unwrap()).unwrap()
    };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let json = run(Some(now.to_string()));
    let main = json["at_main_ms"].as_f64().unwrap();
    let complete = json["at_complete_ms"].as_f64().unwrap();
    assert!(main >= 0.0 && main <= complete, "{json}");
    assert!(json["peak_rss_kib"].as_u64().unwrap() > 0, "{json}");
    let json = run(None);
    assert!(json["at_main_ms"].is_null() && json["at_complete_ms"].is_null(), "{json}");
    // A reading in the future (another machine's clock) is no mark either.
    let json = run(Some((now + 3_600_000_000_000).to_string()));
    assert!(json["at_main_ms"].is_null(), "{json}");
}
