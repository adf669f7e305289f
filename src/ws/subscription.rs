//! A connection's subscription to a worker's feed: it catches up from `since` at the
//! pace the socket drains (as the outbox's refill), then takes live events.

use std::sync::{Arc, Mutex, Weak};

use super::conn::{Conn, Refill};
use crate::event::{Event, NewEvent, one_off_frame};
use crate::feed::store::Cursor;
use crate::feed::{CatchUp, Subscriber};
use crate::worker::Worker;

/// Events per catch-up chunk.
const CHUNK: usize = 512;

pub struct Subscription {
    id: u64,
    pub worker: Arc<Worker>,
    conn: Weak<Conn>,
    /// For the agent protocol: events are wrapped in envelopes from this worker id.
    envelope: Option<Arc<str>>,
    progress: Mutex<Progress>,
    me: Weak<Subscription>,
}

struct Progress {
    /// The last seq queued for the client.
    after: u64,
    cursor: Option<Cursor>,
}

impl Subscription {
    /// Subscribes `conn` to `worker`'s feed: from `since` (replaying what came after it),
    /// or from now.
    pub fn start(
        conn: &Arc<Conn>,
        worker: Arc<Worker>,
        since: Option<u64>,
        envelope: bool,
    ) -> Arc<Subscription> {
        let after = since.unwrap_or_else(|| worker.feed.last_seq());
        let envelope = envelope.then(|| Arc::<str>::from(worker.id.as_str()));
        let sub = Arc::new_cyclic(|me| Subscription {
            id: conn.id,
            worker,
            conn: Arc::downgrade(conn),
            envelope,
            progress: Mutex::new(Progress {
                after,
                cursor: None,
            }),
            me: me.clone(),
        });
        conn.add_refill(sub.clone());
        sub
    }

    pub fn stop(&self) {
        self.worker.feed.unsubscribe(self.id);
    }
}

impl Subscriber for Subscription {
    fn id(&self) -> u64 {
        self.id
    }

    fn deliver(&self, events: &[Arc<Event>]) -> bool {
        self.conn
            .upgrade()
            .is_some_and(|conn| conn.push_events(events, self.envelope.as_ref()))
    }

    fn feed_closed(&self, reason: &str) {
        let Some(conn) = self.conn.upgrade() else {
            return;
        };
        match &self.envelope {
            None => conn.close(1000, reason),
            Some(worker_id) => conn.send_json(&crate::protocol::envelope(
                "agent:stopped",
                serde_json::json!({"worker_id": &**worker_id, "reason": reason, "deleted": true}),
                Some(worker_id),
                None,
            )),
        }
    }
}

impl Refill for Subscription {
    fn refill(&self, conn: &Arc<Conn>) -> bool {
        let Some(me) = self.me.upgrade() else {
            return false;
        };
        let me: Arc<dyn Subscriber> = me;
        let mut progress = self.progress.lock().unwrap_or_else(|p| p.into_inner());
        let Progress { after, cursor } = &mut *progress;
        match self.worker.feed.catch_up(*after, cursor, CHUNK, &me) {
            CatchUp::Events(events) => {
                let Some(last) = events.last() else {
                    return false;
                };
                *after = last.seq;
                conn.push_events(&events, self.envelope.as_ref())
            }
            CatchUp::Live => false,
            CatchUp::Gap { first } => {
                let event = NewEvent::new(
                    "error",
                    serde_json::json!({
                        "code": "history_gap",
                        "message": format!(
                            "events up to seq {} are no longer kept; replaying from seq {first}",
                            first - 1
                        ),
                        "first_seq": first,
                        "worker_id": self.worker.id,
                    }),
                );
                conn.send_frame(one_off_frame(&event));
                *after = first - 1;
                true
            }
        }
    }
}
