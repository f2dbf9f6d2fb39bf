//! `xsr send` and `xsr receive`: the same transfer between two processes over TCP.

use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;

use anyhow::{Context, Result};
use sr_memory::FileMemory;
use sr_restore::{RestoreOptions, Restored};
use sr_save::SaveStats;

use crate::cmd::restore::restore_reader;
use crate::cmd::save::{SaveSettings, save_to};
use crate::dir_guest::DirGuest;

/// Sends the image in `dir` to `to` (HOST:PORT).
pub fn send(dir: &Path, to: &str, settings: &SaveSettings) -> Result<SaveStats> {
    let guest = DirGuest::open(dir)?;
    let stream = TcpStream::connect(to).with_context(|| format!("cannot connect to {to}"))?;
    stream.set_nodelay(true).ok();
    let stats = save_to(&guest, settings, &stream).with_context(|| format!("sending to {to} failed"))?;
    // Tell the receiver we are done, then wait for it to close: the transfer is complete only
    // when the receiver has read everything.
    stream.shutdown(Shutdown::Write).context("cannot finish the connection")?;
    Ok(stats)
}

/// Listens on `listen`, accepts one sender and restores its stream into `out`. `ready` is
/// called with the bound address before accepting (port 0 picks a free port).
pub fn receive(
    listen: &str,
    out: &Path,
    options: RestoreOptions,
    max_memory: u64,
    ready: impl FnOnce(std::net::SocketAddr),
) -> Result<Restored<FileMemory>> {
    let listener = TcpListener::bind(listen).with_context(|| format!("cannot listen on {listen}"))?;
    ready(listener.local_addr()?);
    let (stream, peer) = listener.accept().context("accept failed")?;
    restore_reader(stream, &format!("the stream from {peer}"), out, options, max_memory)
}
