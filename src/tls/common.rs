//! The TLS types that a build without the `tls` feature has too (`src/tls_off.rs`).

use std::path::PathBuf;

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
