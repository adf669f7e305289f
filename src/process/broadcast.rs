//! The broadcast thread: it receives every child's output and exit, in order, and hands
//! each to its owner (a worker parses and publishes it; a one-off command collects it).
//!
//! The channel is bounded: when children print faster than events can be stored, the
//! reader threads block, the children's pipes fill up, and the children are slowed down.
//! Back-pressure instead of memory.

use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, bounded, select};

use super::{Output, OutputTx};

/// Messages the channel holds before readers wait.
const CHANNEL_SIZE: usize = 256;

pub struct Broadcast {
    thread: Option<JoinHandle<()>>,
    /// Tells the thread to hand on what is queued and end (the senders live as long
    /// as the server's services, so their going cannot be what ends it).
    stop: Sender<()>,
    /// Closed when the thread ends, so stopping can wait with a bound.
    done: Receiver<()>,
}

/// Hands one output to its owner; one owner's bad line must not stop everyone's output.
fn deliver(output: Output) {
    let process = output.process;
    let handled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        output.sink.on_process_event(output.process, output.event);
    }));
    if handled.is_err() {
        log::error!("handling output of process {process} panicked; the event was dropped");
    }
}

impl Broadcast {
    /// Starts the thread; returns it and the channel's sending end (for `Processes`).
    pub fn start() -> std::io::Result<(Broadcast, OutputTx)> {
        let (tx, rx) = bounded::<Output>(CHANNEL_SIZE);
        let (done_tx, done) = bounded::<()>(0);
        let (stop, stopped) = bounded::<()>(1);
        let thread = std::thread::Builder::new()
            .name("broadcast".into())
            .spawn(move || {
                let _done = done_tx;
                loop {
                    select! {
                        recv(rx) -> output => match output {
                            Ok(output) => deliver(output),
                            Err(_) => return,
                        },
                        recv(stopped) -> _ => {
                            while let Ok(output) = rx.try_recv() {
                                deliver(output);
                            }
                            return;
                        },
                    }
                }
            })?;
        Ok((
            Broadcast {
                thread: Some(thread),
                stop,
                done,
            },
            tx,
        ))
    }

    /// Ends the thread once it has handed on what is queued (call when every process
    /// is reaped), waiting for it up to `timeout`.
    pub fn join(mut self, timeout: Duration) {
        let _ = self.stop.try_send(());
        let ended = matches!(
            self.done.recv_timeout(timeout),
            Err(RecvTimeoutError::Disconnected)
        );
        if let Some(thread) = self.thread.take() {
            if ended {
                let _ = thread.join();
            } else {
                log::warn!("the broadcast thread did not end in time; not waiting");
            }
        }
    }
}
