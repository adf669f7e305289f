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
    let raw = ctx.fd.as_raw_fd();
    if sys::set_nonblocking(raw, true).is_err() {
        return;
    }
    let mut file = File::from(ctx.fd);
    let mut chunk = vec![0u8; 64 * 1024];
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
    loop {
        match file.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                pending.extend_from_slice(&chunk[..n]);
                if let Some(last_newline) = pending.iter().rposition(|&b| b == b'\n') {
                    let rest = pending.split_off(last_newline + 1);
                    if !send(std::mem::replace(&mut pending, rest)) {
                        return;
                    }
                }
                while pending.len() >= ctx.max_line {
                    let rest = pending.split_off(ctx.max_line);
                    if !send(std::mem::replace(&mut pending, rest)) {
                        return;
                    }
                }
            }
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                match sys::wait_readable(raw, &ctx.wake, None) {
                    Ok(true) => {}
                    // Woken: the process is gone and its drain grace is over.
                    Ok(false) | Err(_) => break,
                }
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    if !pending.is_empty() {
        send(pending);
    }
}
