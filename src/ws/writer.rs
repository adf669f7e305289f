//! The writer pool: a few threads that own every byte going out on every WebSocket.
//!
//! A connection with something to send is put in the run queue once; a writer thread
//! drains its outbox with non-blocking `sendmsg` calls (many frames per call), and when
//! the client's socket is full the connection waits, holding no thread, until the
//! *writable watcher* sees the socket drain (edge-triggered epoll) and queues it again.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, unbounded};

use super::conn::{Conn, Serviced};
use crate::sys::{self, Epoll, EventFd};
use crate::timer::Timer;

/// How many bytes one connection may send before others get a turn.
const FAIR_SHARE: usize = 1 << 20;
const WAKE_TOKEN: u64 = u64::MAX;

/// A registered connection: a weak reference, its descriptor and its client's address.
type Registered = (Weak<Conn>, RawFd, IpAddr);

pub struct Writers {
    run_tx: Sender<Arc<Conn>>,
    epoll: Epoll,
    wake: EventFd,
    /// Every connection: a weak reference (never upgraded under the lock: dropping the
    /// last reference takes the lock again), its descriptor and its client's address.
    conns: Mutex<HashMap<u64, Registered>>,
    /// The descriptors of `conns`, as a bitset: an upgrade skips them when it looks for
    /// its own socket, and that look must not cost more as connections grow.
    owned: Mutex<FdSet>,
    next_id: AtomicU64,
    /// Upgrades under way (counted against the connection limit until registered).
    opening: AtomicUsize,
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
            owned: Mutex::new(FdSet::default()),
            next_id: AtomicU64::new(1),
            opening: AtomicUsize::new(0),
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
                        // A bug in serving one connection must not take the writer (and
                        // with it every client) down: drop that connection instead.
                        let served = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            conn.service(FAIR_SHARE)
                        }));
                        match served {
                            Ok(Serviced::Again) => match pool.upgrade() {
                                Some(pool) => pool.run(conn),
                                None => return,
                            },
                            Ok(Serviced::Done) => {}
                            Err(_) => {
                                log::error!("serving connection {} panicked; closing it", conn.id);
                                conn.shutdown_now();
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

    /// Holds a place for a new connection if fewer than `max` are open or opening; the
    /// place is given back when the returned guard drops (by then the connection is
    /// registered, or the upgrade failed).
    pub fn reserve(self: &Arc<Self>, max: usize) -> Option<Opening> {
        let opening = self.opening.fetch_add(1, Ordering::SeqCst) + 1;
        let guard = Opening(self.clone());
        (self.count() + opening <= max).then_some(guard)
    }

    pub fn register(&self, conn: &Arc<Conn>) -> io::Result<()> {
        self.lock()
            .insert(conn.id, (Arc::downgrade(conn), conn.fd(), conn.peer.ip()));
        self.lock_owned().insert(conn.fd());
        self.epoll.add(conn.fd(), conn.id, sys::EPOLL_OUT_EDGE)
    }

    pub fn forget(&self, id: u64) {
        if let Some((_, fd, _)) = self.lock().remove(&id) {
            self.lock_owned().remove(fd);
            self.epoll.delete(fd);
        }
    }

    fn lock_owned(&self) -> std::sync::MutexGuard<'_, FdSet> {
        self.owned.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Registered>> {
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
        let weak: Vec<Weak<Conn>> = self.lock().values().map(|(c, _, _)| c.clone()).collect();
        weak.iter().filter_map(Weak::upgrade).collect()
    }

    pub fn count(&self) -> usize {
        self.lock().len()
    }

    /// Open connections from address `ip`.
    pub fn count_from(&self, ip: IpAddr) -> usize {
        self.lock()
            .values()
            .filter(|(_, _, from)| *from == ip)
            .count()
    }

    /// Descriptors that belong to connections already (skipped when looking for the
    /// socket of a new upgrade).
    pub fn owned_fds(&self) -> FdSet {
        self.lock_owned().clone()
    }

    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.wake.signal();
    }
}

/// A set of descriptor numbers, one bit each.
#[derive(Clone, Default, Debug)]
pub struct FdSet {
    words: Vec<u64>,
}

impl FdSet {
    fn slot(fd: RawFd) -> Option<(usize, u64)> {
        let fd = usize::try_from(fd).ok()?;
        Some((fd / 64, 1u64 << (fd % 64)))
    }

    pub fn insert(&mut self, fd: RawFd) {
        if let Some((word, bit)) = Self::slot(fd) {
            if self.words.len() <= word {
                self.words.resize(word + 1, 0);
            }
            self.words[word] |= bit;
        }
    }

    pub fn remove(&mut self, fd: RawFd) {
        if let Some((word, bit)) = Self::slot(fd)
            && let Some(w) = self.words.get_mut(word)
        {
            *w &= !bit;
        }
    }

    pub fn contains(&self, fd: RawFd) -> bool {
        Self::slot(fd).is_some_and(|(word, bit)| self.words.get(word).is_some_and(|w| w & bit != 0))
    }

    /// One past the highest descriptor the set could hold without growing.
    pub fn bound(&self) -> RawFd {
        RawFd::try_from(self.words.len() * 64).unwrap_or(RawFd::MAX)
    }
}

/// A place held for a connection being opened.
pub struct Opening(Arc<Writers>);

impl Drop for Opening {
    fn drop(&mut self) {
        self.0.opening.fetch_sub(1, Ordering::SeqCst);
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
            let weak = pool.lock().get(&token).map(|(c, _, _)| c.clone());
            let conn = weak.and_then(|c| c.upgrade());
            if let Some(conn) = conn {
                conn.on_writable();
            }
        }
    }
}
