//! Every open WebSocket: how many (in all and per client address, for the limits), and
//! which (to close them all at shutdown). A connection is registered when its upgrade
//! completes and forgotten when its reader thread ends.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use super::conn::Conn;

#[derive(Default)]
pub struct Connections {
    /// Weak references: a connection lives as long as its reader and subscribers do.
    /// They are never upgraded under the lock (dropping the last reference of a
    /// connection must not find the lock taken).
    open: Mutex<HashMap<u64, (Weak<Conn>, IpAddr)>>,
    next_id: AtomicU64,
    /// Upgrades under way (counted against the limit until registered).
    opening: AtomicUsize,
}

/// A place held for a connection being opened.
pub struct Opening(Arc<Connections>);

impl Drop for Opening {
    fn drop(&mut self) {
        self.0.opening.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Connections {
    pub fn new() -> Arc<Connections> {
        Arc::new(Connections {
            next_id: AtomicU64::new(1),
            ..Connections::default()
        })
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<u64, (Weak<Conn>, IpAddr)>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Holds a place for a new connection if fewer than `max` are open or opening; the
    /// place is given back when the returned guard drops (by then the connection is
    /// registered, or the upgrade failed).
    pub fn reserve(self: &Arc<Self>, max: usize) -> Option<Opening> {
        let opening = self.opening.fetch_add(1, Ordering::SeqCst) + 1;
        let guard = Opening(self.clone());
        (self.count() + opening <= max).then_some(guard)
    }

    pub fn register(&self, conn: &Arc<Conn>) {
        self.lock()
            .insert(conn.id, (Arc::downgrade(conn), conn.peer.ip()));
    }

    pub fn forget(&self, id: u64) {
        self.lock().remove(&id);
    }

    /// Every open connection.
    pub fn all(&self) -> Vec<Arc<Conn>> {
        let weak: Vec<Weak<Conn>> = self.lock().values().map(|(c, _)| c.clone()).collect();
        weak.iter().filter_map(Weak::upgrade).collect()
    }

    pub fn count(&self) -> usize {
        self.lock().len()
    }

    /// Open connections from address `ip`.
    pub fn count_from(&self, ip: IpAddr) -> usize {
        self.lock().values().filter(|(_, from)| *from == ip).count()
    }
}
