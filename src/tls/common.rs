//! The TLS types that a build without the `tls` feature has too (`src/tls_off.rs`).

use std::path::PathBuf;
use std::time::Duration;

/// The credentials of one side: `--tls-cert`, `--tls-key`, `--tls-ca`.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// This side's certificate chain (PEM, leaf first).
    pub cert: PathBuf,
    /// This side's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// The certificate authorities that sign the peer's certificate (PEM, one or more).
    pub ca: PathBuf,
}

/// A TLS failure: who, and what went wrong in words that say which flag to look at.
#[derive(Debug, thiserror::Error)]
#[error("TLS with {peer}: {message}")]
pub struct TlsFailure {
    /// The peer's address.
    pub peer: String,
    /// What went wrong.
    pub message: String,
}

/// How long a receiver waits for the sender's first byte before it concludes that the sender
/// does not speak TLS (at most `--timeout`). A TLS sender sends its hello as soon as its
/// connection is up; `xsr send` without TLS waits in silence for the receiver to speak first,
/// so that without this limit both would wait out their timeouts. Five seconds leave room for
/// a loaded host and for TCP to resend a lost hello twice.
pub const HELLO_WAIT: Duration = Duration::from_secs(5);

/// How to start a side with TLS, for the hints of a transport mismatch.
pub const TLS_FLAGS: &str = "--tls-cert FILE --tls-key FILE --tls-ca FILE (docs/migrating.md, \"TLS\")";

/// Whether `head` (a connection's first bytes, at least 3) is the start of a TLS record:
/// a content type (change_cipher_spec 20, alert 21, handshake 22, application_data 23,
/// heartbeat 24), then a legacy version 3.0 to 3.4 (RFC 8446, section 5.1). A Xen stream
/// starts "Xen saved" (an `xl` file), "LibxlFmt" or 0xff bytes (libxc), xsr's messages with
/// "XSR-TRANSFER", xl's banner with "xl": none of them can.
pub fn is_tls_record(head: &[u8]) -> bool {
    matches!(head, [20..=24, 3, 0..=4, ..])
}

/// Whether `head` (one or more bytes) can no longer become a TLS record's start.
pub fn is_not_tls(head: &[u8]) -> bool {
    let n = head.len().min(3);
    n > 0
        && !(match head[..n] {
            [t] => (20..=24).contains(&t),
            [t, major] => (20..=24).contains(&t) && major == 3,
            _ => is_tls_record(head),
        })
}

/// A plaintext peer's first bytes in hex, with what they are when they are known
/// ("0x58 0x53 ..., an XSR-TRANSFER/1 message").
pub fn plaintext_kind(head: &[u8]) -> String {
    let known: [(&[u8], &str); 5] = [
        (b"Xen saved domain", "an xl save file's header"),
        (b"LibxlFmt", "a libxl stream's header"),
        (&[0xff; 8], "a libxc stream's marker"),
        (b"XSR-TRANSFER/", "an XSR-TRANSFER/1 message"),
        (b"xl migration receiver ready", "xl's migration banner"),
    ];
    // At least four bytes of the prefix, all of what arrived when it is shorter.
    let kind = known.iter().find(|(prefix, _)| {
        let n = head.len().min(prefix.len());
        n >= 4 && head[..n] == prefix[..n]
    });
    match kind {
        Some((_, kind)) => format!("{}, {kind}", hex(head)),
        None => hex(head),
    }
}

/// One end of a TCP transfer speaks TLS and the other does not, found by the plaintext end
/// (the TLS end reports its side as a [`TlsFailure`]). A usage error (exit 2): neither end
/// read anything of the stream.
#[derive(Debug, thiserror::Error)]
pub enum TransportMismatch {
    /// A plaintext receiver: the sender's first bytes are a TLS record (its hello).
    #[error(
        "the sender speaks TLS (its first bytes {} are a TLS record, not a Xen stream) and this receiver was started \
         without it: start the receiver with {TLS_FLAGS}",
        hex(head)
    )]
    SenderSpeaksTls {
        /// The first bytes.
        head: Vec<u8>,
    },
    /// A plaintext sender: the receiver answered with a TLS record where its READY (or xl's
    /// banner) would be.
    #[error(
        "{peer} speaks TLS (it answered with a TLS record, {}, where a receiver without TLS says it is ready) and \
         this sender was started without it: give the sender {TLS_FLAGS}",
        hex(head)
    )]
    ReceiverSpeaksTls {
        /// The receiver.
        peer: String,
        /// Its first bytes.
        head: Vec<u8>,
    },
}

fn hex(head: &[u8]) -> String {
    head.iter().take(8).map(|b| format!("{b:#04x}")).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_records_are_told_from_xen_streams_and_messages() {
        // A TLS 1.3 client's hello, a server's alert.
        assert!(is_tls_record(&[0x16, 0x03, 0x01, 0x05]) && is_tls_record(&[0x15, 0x03, 0x03]));
        for plain in [&b"Xen saved domain"[..], b"LibxlFmt", &[0xff; 8], b"XSR-TRANSFER/1 READY\n", b"xl migration"] {
            assert!(!is_tls_record(plain) && is_not_tls(plain), "{plain:?}");
        }
        // Too short to say, or a TLS record's start.
        for maybe in [&[][..], &[0x16], &[0x16, 0x03], &[0x17, 0x03, 0x03]] {
            assert!(!is_not_tls(maybe), "{maybe:?}");
        }
        assert!(is_not_tls(&[0x16, 0x04]) && is_not_tls(&[0x16, 0x03, 0x09]) && is_not_tls(b"X"));
    }

    #[test]
    fn plaintext_is_named_when_it_is_known() {
        assert_eq!(
            plaintext_kind(b"XSR-TRANSFER/1 READY\n"),
            "0x58 0x53 0x52 0x2d 0x54 0x52 0x41 0x4e, an XSR-TRANSFER/1 message"
        );
        assert!(plaintext_kind(b"xl migration receiver ready, send").ends_with("xl's migration banner"));
        assert!(plaintext_kind(b"Xen s").ends_with("an xl save file's header"));
        assert_eq!(plaintext_kind(&[0xff; 3]), "0xff 0xff 0xff");
        assert_eq!(plaintext_kind(b"GET /"), "0x47 0x45 0x54 0x20 0x2f");
    }
}
