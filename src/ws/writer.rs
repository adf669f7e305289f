//! The writer pool: a few threads that send what connections have queued.
//!
//! A connection with something to send is put in the run queue once; a writer thread
//! drains its outbox with non-blocking `sendmsg` calls (many frames per call), and when
//! the client's socket is full the connection waits, holding no thread, until the
//! *writable watcher* sees the socket drain (edge-triggered epoll) and queues it again.
//! The pool knows connections only as [`Flush`]: it schedules, it does not look inside.

use std::collections::HashMap;
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender, unbounded};

use crate::sys::{self, Epoll, EventFd};

/// How many bytes one connection may send before others get a turn.
const FAIR_SHARE: usize = 1 << 20;
const WAKE_TOKEN: u64 = u64::MAX;

/// What a connection does when a writer gets to it.
pub trait Flush: Send + Sync {
    /// Sends what is queued, up to `budget` bytes (without blocking).
    fn service(self: Arc<Self>, budget: usize) -> Serviced;
    /// Its socket has room again.
    fn on_writable(self: Arc<Self>);
    /// Serving it failed: cut it off.
    fn shutdown_now(&self);
}

/// What a connection's turn with a writer ended with.
pub enum Serviced {
    /// Nothing left, or waiting for the socket to drain.
    Done,
    /// More to send: back to the end of the queue.
    Again,
}

/// A message for a writer thread.
enum Job {
    Serve(Arc<dyn Flush>),
    Stop,
}

pub struct Writers {
    run_tx: Sender<Job>,
    epoll: Epoll,
    wake: EventFd,
    /// The watched sockets, by token.
    watched: Mutex<HashMap<u64, Weak<dyn Flush>>>,
    stopping: AtomicBool,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Writers {
    /// Starts `threads` writer threads and the writable watcher.
    pub fn start(threads: usize) -> io::Result<Arc<Writers>> {
        let (run_tx, run_rx) = unbounded();
        let writers = Arc::new(Writers {
            run_tx,
            epoll: Epoll::new()?,
            wake: EventFd::new()?,
            watched: Mutex::new(HashMap::new()),
            stopping: AtomicBool::new(false),
            threads: Mutex::new(Vec::new()),
        });
        writers
            .epoll
            .add(writers.wake.fd(), WAKE_TOKEN, sys::EPOLL_IN)?;
        let mut handles = Vec::new();
        for i in 0..threads.max(1) {
            let rx: Receiver<Job> = run_rx.clone();
            let pool = Arc::downgrade(&writers);
            handles.push(
                std::thread::Builder::new()
                    .name(format!("ws-writer-{i}"))
                    .spawn(move || write_loop(&rx, &pool))?,
            );
        }
        let watcher = Arc::downgrade(&writers);
        handles.push(
            std::thread::Builder::new()
                .name("ws-writable".into())
                .spawn(move || watch_writable(watcher))?,
        );
        *writers.lock_threads() = handles;
        Ok(writers)
    }

    fn lock_threads(&self) -> MutexGuard<'_, Vec<JoinHandle<()>>> {
        self.threads.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_watched(&self) -> MutexGuard<'_, HashMap<u64, Weak<dyn Flush>>> {
        self.watched.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `conn` for a writer thread.
    pub fn run(&self, conn: Arc<dyn Flush>) {
        let _ = self.run_tx.send(Job::Serve(conn));
    }

    /// Watches socket `fd` for room (edge-triggered), to wake `conn` with `token`.
    pub fn watch(&self, fd: RawFd, token: u64, conn: Weak<dyn Flush>) -> io::Result<()> {
        self.lock_watched().insert(token, conn);
        self.epoll
            .add(fd, token, sys::EPOLL_OUT_EDGE)
            .inspect_err(|_| {
                self.lock_watched().remove(&token);
            })
    }

    pub fn unwatch(&self, fd: RawFd, token: u64) {
        if self.lock_watched().remove(&token).is_some() {
            self.epoll.delete(fd);
        }
    }

    /// Stops the writer threads and the watcher, and waits for them.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        let threads = std::mem::take(&mut *self.lock_threads());
        for _ in 0..threads.len() {
            let _ = self.run_tx.send(Job::Stop);
        }
        self.wake.signal();
        for thread in threads {
            let _ = thread.join();
        }
    }
}

fn write_loop(rx: &Receiver<Job>, pool: &Weak<Writers>) {
    while let Ok(Job::Serve(conn)) = rx.recv() {
        // A bug in serving one connection must not take the writer (and with it every
        // client) down: drop that connection instead.
        let served = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            conn.clone().service(FAIR_SHARE)
        }));
        match served {
            Ok(Serviced::Again) => match pool.upgrade() {
                Some(pool) => pool.run(conn),
                None => return,
            },
            Ok(Serviced::Done) => {}
            Err(_) => {
                log::error!("serving a connection panicked; closing it");
                conn.shutdown_now();
            }
        }
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
            let conn = pool.lock_watched().get(&token).and_then(Weak::upgrade);
            if let Some(conn) = conn {
                conn.on_writable();
            }
        }
    }
}
