//! A connection's outbox: the frames waiting to go out on its socket, in order, with
//! the bookkeeping the writer needs (how much of the front frame went out, how many
//! bytes wait, the last feed event sent whole). Plain data: no socket, no threads, no
//! locks; `Conn` holds it under its lock.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use crate::event::Published;
use crate::wire::envelope::envelope_event_frame;

/// One entry of an outbox.
#[derive(Clone)]
pub enum Item {
    /// A feed event, sent as the feed framed it.
    Event(Arc<Published>),
    /// A feed event wrapped in an agent-protocol envelope for worker `source`.
    Envelope(Arc<Published>, Arc<str>),
    /// A frame for this connection only (answers, errors, pings, pongs).
    Frame(Arc<[u8]>),
    /// The close frame: the last thing sent before the socket is shut down.
    Close(Arc<[u8]>),
}

impl Item {
    pub fn bytes(&self) -> &[u8] {
        match self {
            Item::Event(e) => e.frame(),
            Item::Envelope(e, source) => {
                e.envelope_frame(|e| envelope_event_frame(e.seq, e.json(), source))
            }
            Item::Frame(b) | Item::Close(b) => b,
        }
    }

    /// The feed seq this item carries, if it is a feed event.
    fn seq(&self) -> Option<u64> {
        match self {
            Item::Event(e) | Item::Envelope(e, _) => Some(e.seq),
            Item::Frame(_) | Item::Close(_) => None,
        }
    }
}

/// Where the connection is in the writer's scheduling.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Sched {
    /// Nothing to send; not in any queue.
    Idle,
    /// In the writer pool's run queue.
    Queued,
    /// A thread is sending (a writer, or a publisher sending inline).
    Running,
    /// The socket is full; the writable watcher re-queues it.
    AwaitWritable,
}

/// Where the connection is in its life.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Phase {
    Open,
    /// A close frame is queued; nothing else is accepted.
    Closing,
    /// The socket is shut down.
    Closed,
}

pub struct Outbox {
    queue: VecDeque<Item>,
    /// Bytes of the front item already sent.
    front_sent: usize,
    /// Bytes queued and not yet sent.
    queued: usize,
    pub sched: Sched,
    /// The socket became writable while a thread was sending.
    pub kicked: bool,
    pub phase: Phase,
    /// The highest feed seq whose frame was written whole.
    last_sent_seq: u64,
    /// Since when the socket has taken nothing while frames wait.
    pub stalled_since: Option<Instant>,
    /// A stall check is scheduled.
    pub stall_check: bool,
}

/// What `consume` reached.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Consumed {
    /// More is queued, or nothing was.
    More,
    /// The close frame went out whole: the socket can be shut down.
    Closed,
}

impl Outbox {
    pub fn new() -> Outbox {
        Outbox {
            queue: VecDeque::new(),
            front_sent: 0,
            queued: 0,
            sched: Sched::Idle,
            kicked: false,
            phase: Phase::Open,
            last_sent_seq: 0,
            stalled_since: None,
            stall_check: false,
        }
    }

    pub fn push(&mut self, item: Item) {
        self.queued += item.bytes().len();
        self.queue.push_back(item);
    }

    /// Bytes queued and not yet sent.
    pub fn queued(&self) -> usize {
        self.queued
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Up to `max_items` items (and about `max_bytes`) from the front, for one send;
    /// returns how much of the first one already went out.
    pub fn front(&self, items: &mut Vec<Item>, max_items: usize, max_bytes: usize) -> usize {
        items.clear();
        let mut bytes = 0;
        for item in self.queue.iter().take(max_items) {
            bytes += item.bytes().len();
            items.push(item.clone());
            if bytes >= max_bytes {
                break;
            }
        }
        self.front_sent
    }

    /// Removes `n` sent bytes from the front.
    pub fn consume(&mut self, mut n: usize) -> Consumed {
        self.queued = self.queued.saturating_sub(n);
        while n > 0 {
            let Some(front) = self.queue.front() else {
                break;
            };
            let left = front.bytes().len() - self.front_sent;
            if n < left {
                self.front_sent += n;
                return Consumed::More;
            }
            n -= left;
            self.front_sent = 0;
            match self.queue.pop_front() {
                Some(Item::Close(_)) => return Consumed::Closed,
                Some(item) => {
                    if let Some(seq) = item.seq() {
                        self.last_sent_seq = self.last_sent_seq.max(seq);
                    }
                }
                None => {}
            }
        }
        Consumed::More
    }

    /// Drops everything the client has not started receiving (a frame already begun is
    /// kept, so the client gets it whole); returns the seq it will have received last,
    /// where it should resume.
    pub fn drop_unstarted(&mut self) -> u64 {
        let keep = usize::from(self.front_sent > 0);
        let resume = match self.queue.front().and_then(Item::seq) {
            Some(seq) if keep == 1 => seq,
            _ => self.last_sent_seq,
        };
        while self.queue.len() > keep {
            if let Some(item) = self.queue.pop_back() {
                self.queued -= item.bytes().len();
            }
        }
        resume
    }

    /// Forgets everything queued (the socket is shut down).
    pub fn clear(&mut self) {
        self.queue.clear();
        self.queued = 0;
        self.front_sent = 0;
    }
}

impl Default for Outbox {
    fn default() -> Self {
        Outbox::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: usize) -> Item {
        Item::Frame(vec![0u8; n].into())
    }

    #[test]
    fn sent_bytes_are_taken_from_the_front_across_items() {
        let mut ob = Outbox::new();
        ob.push(frame(10));
        ob.push(Item::Event(Arc::new(Published::from_json(
            4,
            br#"{"seq":4}"#,
        ))));
        ob.push(Item::Close(vec![1u8; 4].into()));
        assert_eq!(ob.consume(7), Consumed::More);
        let mut items = Vec::new();
        assert_eq!(ob.front(&mut items, 10, 1 << 20), 7);
        assert_eq!(items.len(), 3);
        let event_len = items[1].bytes().len();
        assert_eq!(ob.consume(3 + event_len), Consumed::More);
        assert_eq!(ob.drop_unstarted(), 4, "the last event sent whole");
        assert!(ob.is_empty());
    }

    #[test]
    fn a_begun_frame_is_kept_when_the_rest_is_dropped() {
        let mut ob = Outbox::new();
        ob.push(Item::Event(Arc::new(Published::from_json(
            9,
            br#"{"seq":9}"#,
        ))));
        ob.push(frame(5));
        assert_eq!(ob.consume(1), Consumed::More);
        assert_eq!(ob.drop_unstarted(), 9);
        let mut items = Vec::new();
        ob.front(&mut items, 10, 1 << 20);
        assert_eq!(items.len(), 1);
    }
}
