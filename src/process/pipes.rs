//! A reader thread per output pipe of a child: it reads up to 64 KiB at a time and sends
//! every complete line of the read as one message into the bounded broadcast channel,
//! so a child that prints faster than workerhub can store is slowed by its full pipe
//! rather than by growing memory. A line longer than the limit is passed on in pieces.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

use crossbeam_channel::Sender;

use super::{Output, OutputTx, ProcEvent, ProcessSink};
use crate::event::Pipe;
use crate::sys::{self, EventFd};

/// The most bytes one read takes.
const CHUNK: usize = 64 * 1024;

pub(super) struct ReaderCtx {
    pub pipe: Pipe,
    pub fd: OwnedFd,
    pub wake: Arc<EventFd>,
    pub sink: Arc<dyn ProcessSink>,
    pub process: u64,
    pub output: OutputTx,
    pub max_line: usize,
    /// Dropped when the reader ends, which the waiter notices.
    pub _done: Sender<()>,
}

pub(super) fn read_pipe(ctx: ReaderCtx) {
    let mut pending: Vec<u8> = Vec::new();
    let send = |data: Vec<u8>| {
        ctx.output
            .send(Output {
                sink: ctx.sink.clone(),
                process: ctx.process,
                event: ProcEvent::Lines {
                    pipe: ctx.pipe,
                    data,
                },
            })
            .is_ok()
    };
    let on_read = |pending: &mut Vec<u8>| {
        if let Some(last_newline) = pending.iter().rposition(|&b| b == b'\n') {
            let rest = pending.split_off(last_newline + 1);
            if !send(std::mem::replace(pending, rest)) {
                return false;
            }
        }
        while pending.len() >= ctx.max_line {
            let rest = pending.split_off(ctx.max_line);
            if !send(std::mem::replace(pending, rest)) {
                return false;
            }
        }
        true
    };
    if read_until_end(ctx.fd, &ctx.wake, &mut pending, usize::MAX, on_read, |_| {
        true
    }) && !pending.is_empty()
    {
        send(pending);
    }
}

/// The loop of every output reader (a pipe's, a terminal's): reads `fd` without
/// blocking, appending to `pending` at most `room` bytes beyond what it holds, and
/// calls `on_read` after each read and `on_idle` when nothing more is there at once,
/// before it waits; it waits until `fd` is readable or the waiter's `wake` (the
/// process is gone and its drain grace is over). Ends at the end of `fd`, a read
/// error (a terminal's EIO once every slave is closed), or a wake: true then, so the
/// caller sends what `pending` still holds; false when a callback said nobody listens.
pub(super) fn read_until_end(
    fd: OwnedFd,
    wake: &EventFd,
    pending: &mut Vec<u8>,
    room: usize,
    mut on_read: impl FnMut(&mut Vec<u8>) -> bool,
    mut on_idle: impl FnMut(&mut Vec<u8>) -> bool,
) -> bool {
    let raw = fd.as_raw_fd();
    if sys::set_nonblocking(raw, true).is_err() {
        return true;
    }
    let mut file = File::from(fd);
    let mut chunk = vec![0u8; CHUNK];
    loop {
        let want = room.saturating_sub(pending.len()).clamp(1, CHUNK);
        match file.read(&mut chunk[..want]) {
            Ok(0) => return true,
            Ok(n) => {
                pending.extend_from_slice(&chunk[..n]);
                if !on_read(pending) {
                    return false;
                }
            }
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                if !on_idle(pending) {
                    return false;
                }
                match sys::wait_readable(raw, wake, None) {
                    Ok(true) => {}
                    Ok(false) | Err(_) => return true,
                }
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return true,
        }
    }
}
