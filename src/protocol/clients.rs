//! Every `/ws` connection, for what is pushed to all of them: agents' status changes,
//! task updates, batch progress, periodic system status. A push about a worker or a
//! task reaches only the connections whose token may see it.

use std::sync::{Arc, Mutex, Weak};

use serde_json::Value;

use super::envelope;
use crate::http::auth::{Access, Caller};
use crate::ws::conn::Conn;
use crate::ws::frame;

/// Who a push is for.
#[derive(Clone, Copy, Debug)]
pub enum Audience<'a> {
    /// Every connection (server-wide figures).
    Everyone,
    /// Connections that may read what `owner` owns (a worker's or a task's owner).
    ReadersOf(Option<&'a str>),
}

#[derive(Default)]
pub struct Clients {
    conns: Mutex<Vec<(Weak<Conn>, Caller)>>,
}

impl Clients {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(Weak<Conn>, Caller)>> {
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn add(&self, conn: &Arc<Conn>, caller: &Caller) {
        let mut conns = self.lock();
        conns.retain(|(c, _)| c.strong_count() > 0);
        conns.push((Arc::downgrade(conn), caller.clone()));
    }

    pub fn remove(&self, id: u64) {
        self.lock()
            .retain(|(c, _)| c.upgrade().is_some_and(|c| c.id != id));
    }

    pub fn count(&self) -> usize {
        self.lock()
            .iter()
            .filter(|(c, _)| c.strong_count() > 0)
            .count()
    }

    /// Sends one envelope to every `/ws` client of `audience`. It is framed once; a
    /// client too far behind misses the push (it can ask for the state).
    pub fn push(&self, kind: &str, payload: Value, source: Option<&str>, audience: Audience<'_>) {
        let conns: Vec<Arc<Conn>> = self
            .lock()
            .iter()
            .filter(|(_, caller)| match audience {
                Audience::Everyone => true,
                Audience::ReadersOf(owner) => caller.may(Access::Read, owner),
            })
            .filter_map(|(c, _)| c.upgrade())
            .collect();
        if conns.is_empty() {
            return;
        }
        let bytes: Arc<[u8]> =
            frame::text(envelope(kind, payload, source, None).to_string().as_bytes()).into();
        for conn in conns {
            conn.push_shared(bytes.clone());
        }
    }
}
