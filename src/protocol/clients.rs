//! Every `/ws` connection, for what is pushed to all of them: agents' status changes,
//! task updates, batch progress, periodic system status.

use std::sync::{Arc, Mutex, Weak};

use serde_json::Value;

use super::envelope;
use crate::ws::conn::Conn;
use crate::ws::frame;

#[derive(Default)]
pub struct Clients {
    conns: Mutex<Vec<Weak<Conn>>>,
}

impl Clients {
    pub fn add(&self, conn: &Arc<Conn>) {
        let mut conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        conns.retain(|c| c.strong_count() > 0);
        conns.push(Arc::downgrade(conn));
    }

    pub fn remove(&self, id: u64) {
        self.conns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|c| c.upgrade().is_some_and(|c| c.id != id));
    }

    pub fn count(&self) -> usize {
        self.conns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|c| c.strong_count() > 0)
            .count()
    }

    /// Sends one envelope to every `/ws` client. It is framed once; a client too far
    /// behind misses the push (it can ask for the state).
    pub fn push(&self, kind: &str, payload: Value, source: Option<&str>) {
        let conns: Vec<Arc<Conn>> = self
            .conns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter_map(Weak::upgrade)
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
