//! Zero-copy forwarding between two TCP sockets with `splice(2)`: bytes move socket → pipe →
//! socket inside the kernel and never enter this process. Used by passthrough chains (the
//! client's own TLS is forwarded untouched), where the user-space copy of a buffered copy
//! loop was most of the proxy's cost on bulk transfers.
//!
//! Each direction owns one pipe. A direction moves what the source has (up to the pipe's
//! capacity) into its pipe, then drains the pipe into the destination before reading again,
//! so a slow reader holds back its writer exactly as a copy loop's buffer does. End of input
//! shuts the destination's write side (half-close is forwarded); the call ends when both
//! directions have ended, or at the first error.

use std::io;
use std::os::fd::OwnedFd;

use rustix::pipe::{PipeFlags, SpliceFlags};
use tokio::io::Interest;
use tokio::net::TcpStream;

use std::sync::atomic::{AtomicU64, Ordering};

use super::Counters;

/// Pipe capacity asked for (the default is 16 pages): a larger pipe moves more per pair of
/// calls and keeps more in flight while the destination drains. Pages are only allocated
/// for bytes actually in the pipe.
const PIPE_SIZE: usize = 512 * 1024;

/// Forwards both ways between `downstream` and `upstream` until both directions end,
/// counting bytes into `counters` as they move.
pub(super) async fn bidirectional(
    downstream: &TcpStream,
    upstream: &TcpStream,
    counters: &Counters,
) -> io::Result<()> {
    let (up, up_size) = pipe()?;
    let (down, down_size) = pipe()?;
    tokio::try_join!(
        one_way(downstream, upstream, &up, up_size, &counters.received),
        one_way(upstream, downstream, &down, down_size, &counters.sent),
    )?;
    Ok(())
}

/// Writes all of `buf` to `to`.
pub(super) async fn write_all(to: &TcpStream, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        let n = to
            .async_io(Interest::WRITABLE, || to.try_write(buf))
            .await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        buf = &buf[n..];
    }
    Ok(())
}

/// A pipe and its capacity (the default when the larger size is refused, e.g. over the
/// user's pipe-buffer limit).
fn pipe() -> io::Result<((OwnedFd, OwnedFd), usize)> {
    let (r, w) = rustix::pipe::pipe_with(PipeFlags::NONBLOCK | PipeFlags::CLOEXEC)?;
    let size = rustix::pipe::fcntl_setpipe_size(&w, PIPE_SIZE)
        .or_else(|_| rustix::pipe::fcntl_getpipe_size(&w))?;
    Ok(((r, w), size))
}

async fn one_way(
    from: &TcpStream,
    to: &TcpStream,
    pipe: &(OwnedFd, OwnedFd),
    capacity: usize,
    moved: &AtomicU64,
) -> io::Result<()> {
    let (read_end, write_end) = pipe;
    let flags = SpliceFlags::MOVE | SpliceFlags::NONBLOCK;
    loop {
        let n = from
            .async_io(Interest::READABLE, || {
                Ok(rustix::pipe::splice(
                    from, None, write_end, None, capacity, flags,
                )?)
            })
            .await?;
        if n == 0 {
            // End of input: forward the half-close.
            let _ = rustix::net::shutdown(to, rustix::net::Shutdown::Write);
            return Ok(());
        }
        let mut left = n;
        while left > 0 {
            let m = to
                .async_io(Interest::WRITABLE, || {
                    Ok(rustix::pipe::splice(read_end, None, to, None, left, flags)?)
                })
                .await?;
            if m == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "splice wrote nothing",
                ));
            }
            left -= m;
            moved.fetch_add(m as u64, Ordering::Relaxed);
        }
    }
}
