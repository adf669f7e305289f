//! A child's stdin: a non-blocking pipe written directly by `Process::write_stdin` when
//! it has room, and a thread that writes what the pipe did not take at once, in order,
//! waiting for room. The backlog is bounded in bytes, so a child that never reads its
//! input costs bounded memory.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crossbeam_channel::{Sender, unbounded};

use super::StdinError;
use crate::sys::{self, EventFd};

/// The child's stdin: a non-blocking pipe written directly by `Process::write_stdin`, and
/// a thread that writes what the pipe did not take at once, waiting for room.
pub(super) struct Stdin {
    pipe: File,
    backlog: Sender<Vec<u8>>,
    /// Bytes handed to the thread and not yet written: while there are any, new bytes
    /// must queue behind them.
    queued: Arc<AtomicUsize>,
    /// Wakes the thread when stdin is closed, so a child that never reads cannot hold it.
    wake: Arc<EventFd>,
}

/// How many bytes may wait for a child that does not read its stdin (one message of
/// any size is always taken).
const STDIN_BACKLOG_BYTES: usize = 8 << 20;

impl Stdin {
    pub(super) fn start(process: u64, pipe: File) -> io::Result<Stdin> {
        sys::set_nonblocking(pipe.as_raw_fd(), true)?;
        let (backlog, rx) = unbounded::<Vec<u8>>();
        let queued = Arc::new(AtomicUsize::new(0));
        let wake = Arc::new(EventFd::new()?);
        let mut thread_pipe = pipe.try_clone()?;
        let (thread_queued, thread_wake) = (queued.clone(), wake.clone());
        std::thread::Builder::new()
            .name(format!("proc-{process}-stdin"))
            .stack_size(128 * 1024)
            .spawn(move || {
                for bytes in rx {
                    if !write_waiting(&mut thread_pipe, &bytes, &thread_wake) {
                        // The child's end is gone: later writes go straight to the pipe
                        // and are refused as closed, not as a full backlog.
                        thread_queued.store(0, Ordering::SeqCst);
                        break;
                    }
                    thread_queued.fetch_sub(bytes.len(), Ordering::SeqCst);
                }
            })?;
        Ok(Stdin {
            pipe,
            backlog,
            queued,
            wake,
        })
    }

    pub(super) fn write(&mut self, bytes: Vec<u8>) -> Result<(), StdinError> {
        let queued = self.queued.load(Ordering::SeqCst);
        if queued > 0 && queued + bytes.len() > STDIN_BACKLOG_BYTES {
            return Err(StdinError::Full);
        }
        let mut written = 0;
        if queued == 0 {
            while written < bytes.len() {
                match self.pipe.write(&bytes[written..]) {
                    Ok(n) => written += n,
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => return Err(StdinError::Closed),
                }
            }
            if written == bytes.len() {
                return Ok(());
            }
        }
        let rest = if written == 0 {
            bytes
        } else {
            bytes[written..].to_vec()
        };
        // Counted before it is sent; the thread subtracts it once written.
        let len = rest.len();
        self.queued.fetch_add(len, Ordering::SeqCst);
        if self.backlog.send(rest).is_err() {
            self.queued.fetch_sub(len, Ordering::SeqCst);
            return Err(StdinError::Closed);
        }
        Ok(())
    }
}

impl Drop for Stdin {
    fn drop(&mut self) {
        // The thread finishes what is queued (the backlog sender goes with `self`), unless
        // the pipe stays full: then the wake lets it give up instead of waiting forever.
        self.wake.signal();
    }
}

/// Writes all of `bytes` to the non-blocking `pipe`, waiting for room; false when the
/// child's end is gone, or stdin was closed while the pipe stayed full.
fn write_waiting(pipe: &mut File, bytes: &[u8], wake: &EventFd) -> bool {
    let mut written = 0;
    while written < bytes.len() {
        match pipe.write(&bytes[written..]) {
            Ok(n) => written += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                match sys::wait_writable(pipe.as_raw_fd(), wake, None) {
                    Ok(true) => {}
                    Ok(false) | Err(_) => return false,
                }
            }
            Err(_) => return false,
        }
    }
    true
}
