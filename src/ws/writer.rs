//! The writer pool: a few threads that own every byte going out on every WebSocket.
//!
//! A connection with something to send is put in the run queue once; a writer thread
//! drains its outbox with non-blocking `sendmsg` calls (many frames per call), and when
//! the client's socket is full the connection waits, holding no thread, until the
//! *writable watcher* sees the socket drain (edge-triggered epoll) and queues it again.

use std::collections::{HashMap, HashSet};
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, unbounded};

use super::conn::{Conn, Serviced};
use crate::sys::{self, Epoll, EventFd};
use crate::timer::Timer;

/// How many bytes one connection may send before others get a turn.
const FAIR_SHARE: usize = 1 << 20;
const WAKE_TOKEN: u64 = u64::MAX;

pub struct Writers {
    run_tx: Sender<Arc<Conn>>,
    epoll: Epoll,
    wake: EventFd,
    conns: Mutex<HashMap<u64, (Weak<Conn>, RawFd)>>,
    next_id: AtomicU64,
    stopping: AtomicBool,
    timer: Timer,
}

impl Writers {
    pub fn start(threads: usize, timer: Timer) -> io::Result<Arc<Writers>> {
        let (run_tx, run_rx) = unbounded();
        let writers = Arc::new(Writers {
            run_tx,
            epoll: Epoll::new()?,
            wake: EventFd::new()?,
            conns: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            stopping: AtomicBool::new(false),
            timer,
        });
        writers
            .epoll
            .add(writers.wake.fd(), WAKE_TOKEN, sys::EPOLL_IN)?;
        for i in 0..threads.max(1) {
            let rx: Receiver<Arc<Conn>> = run_rx.clone();
            let pool = Arc::downgrade(&writers);
            std::thread::Builder::new()
                .name(format!("ws-writer-{i}"))
                .spawn(move || {
                    while let Ok(conn) = rx.recv() {
                        if let Serviced::Again = conn.service(FAIR_SHARE) {
                            match pool.upgrade() {
                                Some(pool) => pool.run(conn),
                                None => return,
                            }
                        }
                    }
                })?;
        }
        let watcher = Arc::downgrade(&writers);
        std::thread::Builder::new()
            .name("ws-writable".into())
            .spawn(move || watch_writable(watcher))?;
        Ok(writers)
    }

    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Queues `conn` for a writer thread.
    pub fn run(&self, conn: Arc<Conn>) {
        let _ = self.run_tx.send(conn);
    }

    pub fn register(&self, conn: &Arc<Conn>) -> io::Result<()> {
        self.lock()
            .insert(conn.id, (Arc::downgrade(conn), conn.fd()));
        self.epoll.add(conn.fd(), conn.id, sys::EPOLL_OUT_EDGE)
    }

    pub fn forget(&self, id: u64) {
        if let Some((_, fd)) = self.lock().remove(&id) {
            self.epoll.delete(fd);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, (Weak<Conn>, RawFd)>> {
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Shuts `conn` down after `grace` if its close frame has not gone out by then.
    pub fn close_deadline(&self, conn: &Arc<Conn>, grace: Duration) {
        let conn = Arc::downgrade(conn);
        self.timer.after(grace, move || {
            if let Some(conn) = conn.upgrade() {
                conn.shutdown_now();
            }
        });
    }

    /// Runs `job` on the timer thread after `delay`.
    pub fn after(&self, delay: Duration, job: impl FnOnce() + Send + 'static) {
        self.timer.after(delay, job);
    }

    /// Every open connection.
    pub fn connections(&self) -> Vec<Arc<Conn>> {
        self.lock()
            .values()
            .filter_map(|(c, _)| c.upgrade())
            .collect()
    }

    pub fn count(&self) -> usize {
        self.lock().len()
    }

    /// Descriptors that belong to connections already (skipped when looking for the
    /// socket of a new upgrade).
    pub fn owned_fds(&self) -> HashSet<RawFd> {
        self.lock().values().map(|(_, fd)| *fd).collect()
    }

    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.wake.signal();
    }
}

fn watch_writable(writers: Weak<Writers>) {
    let mut tokens = Vec::new();
    loop {
        let Some(pool) = writers.upgrade() else {
            return;
        };
        if pool.stopping.load(Ordering::SeqCst) {
            return;
        }
        // Holding the pool only while waiting is fine: `stop` wakes this wait.
        if let Err(err) = pool.epoll.wait(&mut tokens, None) {
            log::error!("epoll_wait failed: {err}");
            return;
        }
        for &token in &tokens {
            if token == WAKE_TOKEN {
                continue;
            }
            let conn = pool.lock().get(&token).and_then(|(c, _)| c.upgrade());
            if let Some(conn) = conn {
                conn.on_writable();
            }
        }
    }
}
