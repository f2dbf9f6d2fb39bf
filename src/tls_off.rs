//! `xsr` built without the `tls` feature (as the fuzz targets build it, without aws-lc): the
//! TLS flags are parsed and refused with [`NOT_BUILT`], and no TLS session can exist.

use std::io;
use std::net::TcpStream;
use std::time::Duration;

#[path = "tls/common.rs"]
mod common;

pub use common::{
    HELLO_WAIT, TLS_FLAGS, TlsFailure, TlsFiles, TransportMismatch, is_not_tls, is_tls_record, plaintext_kind,
};

/// Why the TLS flags are refused.
pub const NOT_BUILT: &str =
    "this xsr was built without TLS (the `tls` feature, on by default): rebuild it with `--features tls`";

/// A TLS session: none exists without the `tls` feature.
#[derive(Debug)]
pub enum Session {}

impl Session {
    /// Never called: there is no session.
    pub fn describe(&self) -> String {
        match *self {}
    }

    /// Never called: there is no session.
    pub fn close_notify(&self, _timeout: Duration) -> io::Result<()> {
        match *self {}
    }

    /// Never called: there is no session.
    pub fn socket(&self) -> &TcpStream {
        match *self {}
    }
}
