//! The Xen commands' command lines in a `--features xen` build, on a machine that need not run
//! Xen: what is refused before any domain is touched, and that a failure leaves no output.
//! (They run against a real Xen in `cargo xtask realxen`.)
#![cfg(feature = "xen")]

mod common;

use common::{stderr, xsr};

#[test]
fn directory_only_options_are_refused_with_domain() {
    for flag in [
        &["--verify"][..],
        &["--container", "libxc"],
        &["--stream-version", "2"],
        &["--zero-pages", "xalloc"],
        &["--pvh-as-hvm"],
    ] {
        let mut args = vec!["save", "--domain", "guest", "--out", "/nonexistent/x.save"];
        args.extend_from_slice(flag);
        let o = xsr(&args);
        assert_eq!(o.status.code(), Some(2), "{flag:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(&format!("{} applies to a directory save", flag[0])), "{}", stderr(&o));
    }
}

#[test]
fn domain_options_need_domain_and_exclude_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    for args in [
        &["save", d, "--domain", "guest", "--out", "x"][..],
        &["save", d, "--live", "--out", "x"],
        &["save", d, "--keep-running", "--out", "x"],
        &["save", "--domain", "guest", "--max-iterations", "3", "--out", "x"],
        &["send", d, "--domain", "guest", "--to", "127.0.0.1:1"],
    ] {
        let o = xsr(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
    }
}

#[test]
fn a_save_that_cannot_reach_xen_fails_and_leaves_no_file() {
    // Outside dom0 (or without the domain) opening fails before anything is written.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("guest.save");
    for cmd in [
        vec!["save", "--domain", "no-such-guest-xsr", "--out", out.to_str().unwrap()],
        vec!["dump", "--domain", "no-such-guest-xsr", "--format", "stream", "--out", out.to_str().unwrap()],
    ] {
        let o = xsr(&cmd);
        assert_eq!(o.status.code(), Some(2), "{cmd:?}: {}", stderr(&o));
        assert!(stderr(&o).starts_with("xsr: "), "{}", stderr(&o));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "{cmd:?} left a file");
    }
}

/// A small HVM guest as an `xl` file: xl header with a config, libxl stream, libxc stream.
fn hvm_xl_file() -> Vec<u8> {
    use sr_format::libxl::{LibxlHeader, LibxlRecordType};
    use sr_format::{DomainHeader, DomainType, ImageHeader, PageType, PfnEntry, RecordType, RecordWriter};
    let config = b"{\"c_info\": {\"type\": \"hvm\", \"name\": \"t\"}}\0";
    let mut w = RecordWriter::new(sr_format::xl::encode_xl_header(Some(config)));
    w.write_libxl_header(&LibxlHeader::new(false)).unwrap();
    w.write_libxl_record(LibxlRecordType::LIBXC_CONTEXT, &[]).unwrap();
    w.write_headers(&ImageHeader::new(3), &DomainHeader::new(DomainType::X86_HVM, 12, 4, 17)).unwrap();
    w.write_record(RecordType::STATIC_DATA_END, &[]).unwrap();
    let word = PfnEntry::new(3, PageType::NOTAB).encode().to_le_bytes();
    w.write_page_data(1, 1, 4096, &word, &[&[0x42; 4096]]).unwrap();
    // An HVM context Xen 4.17 loads: its 24-byte HEADER (magic, version 1) and END.
    let mut ctx = b"\x01\x00\x00\x00\x18\x00\x00\x00".to_vec();
    ctx.extend_from_slice(&0x5438_1286u32.to_le_bytes());
    ctx.extend_from_slice(&1u32.to_le_bytes());
    ctx.resize(8 + 24, 0);
    ctx.extend_from_slice(&[0; 8]);
    w.write_record(RecordType::HVM_CONTEXT, &ctx).unwrap();
    w.write_record(RecordType::END, &[]).unwrap();
    w.write_libxl_record(LibxlRecordType::END, &[]).unwrap();
    w.into_inner()
}

#[test]
fn restore_domain_refuses_a_bad_stream_before_it_creates_anything() {
    // The stream is verified first: a truncated file fails with its byte offset (exit 1), a
    // stream without an xl header (no configuration for a new domain) with exit 2, and neither
    // reaches libxl (no Xen is needed to see it).
    let dir = tempfile::tempdir().unwrap();
    let real = hvm_xl_file();
    let cut = dir.path().join("cut.save");
    std::fs::write(&cut, &real[..real.len() - 20]).unwrap();
    let o = xsr(&["restore", "--domain", cut.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("truncated at byte "), "{}", stderr(&o));
    assert!(common::stdout(&o).is_empty());
    // The same file's libxc stream alone (from its image header on).
    let at = real.windows(12).position(|w| w == b"\xff\xff\xff\xff\xff\xff\xff\xffXENF").unwrap();
    let bare = dir.path().join("bare.libxc");
    std::fs::write(&bare, &real[at..]).unwrap();
    let o = xsr(&["restore", "--domain", bare.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("is not an `xl` save file (a libxc stream)"), "{}", stderr(&o));
}

#[test]
fn restore_domain_options_go_with_domain_only() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("d");
    for args in [
        &["restore", "x.save", "--name", "copy", "--out", d.to_str().unwrap()][..],
        &["restore", "x.save", "--paused", "--out", d.to_str().unwrap()],
        &["restore", "x.save", "--domain", "--out", d.to_str().unwrap()],
        &["restore", "x.save"],
    ] {
        let o = xsr(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
    }
    assert!(!d.exists());
}

#[test]
fn outside_dom0_the_xen_commands_say_so_in_one_line() {
    if std::path::Path::new("/dev/xen/privcmd").exists() {
        eprintln!("note: this host has /dev/xen/privcmd; the outside-dom0 message is not shown here");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o");
    for args in [
        vec!["dump", "--domain", "1", "--out", out.to_str().unwrap()],
        vec!["dump", "--domain", "guest", "--out", out.to_str().unwrap(), "--format", "stream"],
        vec!["save", "--domain", "guest", "--out", out.to_str().unwrap()],
        vec!["send", "--domain", "guest", "--to", "127.0.0.1:1"],
    ] {
        let o = xsr(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "{args:?}: one line, not the libraries' own: {err}");
        assert!(err.starts_with("xsr: this host is not a usable Xen dom0: /dev/xen/privcmd is missing"), "{err}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "{args:?} wrote something");
    }
}
