//! Wider pipes for streams between two xsr processes.
//!
//! A Linux pipe holds 64 KiB by default, so `xsr save --out - | xsr restore -` (or `send
//! --via`) hands over a guest 64 KiB at a time, with a context switch for each. One MiB, the
//! largest size an unprivileged process may set by default (`/proc/sys/fs/pipe-max-size`),
//! lets each side move a whole PAGE_DATA record's worth at once.

use std::os::fd::AsFd;

/// The pipe size asked for.
pub const PIPE_SIZE: usize = 1 << 20;

/// Asks for a [`PIPE_SIZE`] buffer on `fd` if it is a pipe. Anything else (a file, a
/// terminal, a socket, a lower system limit) leaves it as it is: the stream is only slower.
pub fn widen(fd: impl AsFd) {
    let _ = rustix::pipe::fcntl_setpipe_size(fd, PIPE_SIZE);
}
