//! A connection's subscription to a worker's feed.
//!
//! It starts by catching up from `since` (as a refill of the outbox, so history is read
//! at the pace the socket drains), turns live when it has seen the last event, and goes
//! back to catching up whenever the client falls more than the outbox bound behind. So a
//! slow client reads from history instead of piling up memory, and nobody waits for it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use super::conn::{Conn, Push, Refill};
use crate::error::ErrorCode;
use crate::event::{ErrorEvent, Event, Published, one_off_frame};
use crate::feed::store::Cursor;
use crate::feed::{CatchUp, Subscriber, Wakes};
use crate::worker::Worker;

/// Events per catch-up chunk.
const CHUNK: usize = 512;

pub struct Subscription {
    id: u64,
    pub worker: Arc<Worker>,
    conn: Weak<Conn>,
    /// For the agent protocol: events are wrapped in envelopes from this worker id.
    envelope: Option<Arc<str>>,
    /// The last seq queued for the client.
    after: AtomicU64,
    /// Where catching up left off in the history files.
    cursor: Mutex<Option<Cursor>>,
    /// The client unsubscribed or left: never go live again.
    stopped: AtomicBool,
    me: Weak<Subscription>,
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
            after: AtomicU64::new(after),
            cursor: Mutex::new(None),
            stopped: AtomicBool::new(false),
            me: me.clone(),
        });
        conn.add_refill(sub.clone());
        sub
    }

    pub fn stop(&self) {
        // Set before taking the feed's lock: a catch-up that turns live after this sees
        // it (in `went_live`), and one that turned live before is removed here.
        self.stopped.store(true, Ordering::SeqCst);
        self.worker.feed.unsubscribe(self.id);
        if let (Some(conn), Some(me)) = (self.conn.upgrade(), self.me.upgrade()) {
            let me: Arc<dyn Refill> = me;
            conn.remove_refill(&me);
        }
    }
}

impl Subscriber for Subscription {
    fn id(&self) -> u64 {
        self.id
    }

    fn deliver(&self, events: &[Arc<Published>], wakes: &mut Wakes) -> bool {
        let Some(conn) = self.conn.upgrade() else {
            return false;
        };
        match conn.push_live(events, self.envelope.as_ref(), wakes) {
            Push::Queued => {
                if let Some(last) = events.last() {
                    self.after.store(last.seq, Ordering::SeqCst);
                }
                true
            }
            Push::Lagging => {
                // Catch up from history instead, starting after what is queued.
                if let Some(me) = self.me.upgrade() {
                    conn.add_refill(me);
                }
                false
            }
            Push::Closed => false,
        }
    }

    fn went_live(&self) -> bool {
        if self.stopped.load(Ordering::SeqCst) {
            return false;
        }
        if let (Some(conn), Some(me)) = (self.conn.upgrade(), self.me.upgrade()) {
            let me: Arc<dyn Refill> = me;
            conn.remove_refill(&me);
        }
        true
    }

    fn feed_closed(&self, reason: &str) {
        let Some(conn) = self.conn.upgrade() else {
            return;
        };
        match &self.envelope {
            None => conn.close(1000, reason),
            Some(worker_id) => conn.send_json(&crate::wire::envelope::envelope(
                crate::wire::envelope::ServerType::AgentStopped,
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
        let mut cursor = self.cursor.lock().unwrap_or_else(|p| p.into_inner());
        let after = self.after.load(Ordering::SeqCst);
        match self.worker.feed.catch_up(after, &mut cursor, CHUNK, &me) {
            CatchUp::Events(events) => {
                let Some(last) = events.last() else {
                    return false;
                };
                self.after.store(last.seq, Ordering::SeqCst);
                conn.push_replay(&events, self.envelope.as_ref())
            }
            CatchUp::Live => false,
            CatchUp::Gap { first } => {
                let mut gap = ErrorEvent::new(
                    ErrorCode::HistoryGap,
                    format!(
                        "events up to seq {} are no longer kept; replaying from seq {first}",
                        first - 1
                    ),
                );
                gap.first_seq = Some(first);
                gap.worker_id = Some(self.worker.id.clone());
                conn.send_frame(one_off_frame(&Event::Error(gap)));
                self.after.store(first - 1, Ordering::SeqCst);
                true
            }
        }
    }
}
