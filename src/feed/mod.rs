//! A worker's **feed**: the idea that carries workerhub's data path.
//!
//! A feed numbers a worker's events (seq 1, 2, 3, ... shared by every viewer, never
//! reused), writes each to the history files before anyone can see it, keeps the most
//! recent ones in memory, and hands each new batch to its live subscribers.
//!
//! A subscriber that asks for history (`?since=N`) is not live at first: it *catches
//! up* by pulling chunks (from memory, else from disk) at the pace its socket drains, and
//! the feed turns it live, under the same lock that publishing takes, at the moment it
//! has seen the last event. So a replay is never buffered whole, and there is no gap and
//! no duplicate at the seam.

pub mod store;

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::clock;
use crate::event::{Event, EventBatch, LineTemplate, Pipe, Published};
use store::{Cursor, Store, StoreLimits};

/// Up to this many live viewers, the publishing thread sends to them itself.
pub const INLINE_VIEWERS: usize = 4;

/// The most bytes of JSON a feed keeps in memory, whatever `memory_events` allows: a
/// terminal's events are up to 64 KiB each, and 4096 of them would be a quarter of a
/// gigabyte per worker. Older events are read from the history files.
pub const MEMORY_BYTES: usize = 16 << 20;

/// Something that takes a feed's new events as they are published.
pub trait Subscriber: Send + Sync {
    fn id(&self) -> u64;
    /// Takes a batch of new events. Returns false when it takes no more (its client is
    /// gone or too slow); the feed then forgets it. Runs under the feed's lock: work
    /// that need not (sending to a socket) is left in `wakes`, which the publisher runs
    /// once the lock is released.
    fn deliver(&self, events: &[Arc<Published>], wakes: &mut Wakes) -> bool;
    /// The feed was closed (its worker deleted); nothing more will come.
    fn feed_closed(&self, _reason: &str) {}
    /// The subscriber has caught up and is about to receive new events (called under
    /// the feed's lock, so no publish can come between). Returning false (it was
    /// stopped meanwhile) keeps it out of the live set.
    fn went_live(&self) -> bool {
        true
    }
}

/// Work a subscriber leaves for after the feed's lock: sending what it just queued.
pub trait Wake: Send + Sync {
    /// Do it now, on the publishing thread.
    fn wake(self: Arc<Self>);
    /// Leave it to others (the publishing thread is unwinding).
    fn hand_off(self: Arc<Self>);
}

/// The wakes of one publish, run once the feed's lock is released.
///
/// At low load the hand-off to another thread is the largest part of a round trip (one
/// more thread to wake on another CPU), so a publisher with few viewers sends to them
/// itself: a subscriber may leave at most `room` wakes (`claim`), the rest go to their
/// own threads as usual. A `Wakes` dropped without `run` (a panic on the way) still runs,
/// or hands off when unwinding, so no claimed work is lost.
pub struct Wakes {
    claimed: Vec<Arc<dyn Wake>>,
    room: usize,
}

impl Wakes {
    pub fn new(room: usize) -> Wakes {
        Wakes {
            claimed: Vec::new(),
            room,
        }
    }

    /// No room: every subscriber sends through its own threads.
    pub fn none() -> Wakes {
        Wakes::new(0)
    }

    /// Takes `wake` to run after the lock, if there is room.
    pub fn claim(&mut self, wake: Arc<dyn Wake>) -> bool {
        if self.room == 0 {
            return false;
        }
        self.room -= 1;
        self.claimed.push(wake);
        true
    }

    /// Runs what was claimed (call with no lock held).
    pub fn run(mut self) {
        self.run_claimed();
    }

    fn run_claimed(&mut self) {
        let unwinding = std::thread::panicking();
        for wake in std::mem::take(&mut self.claimed) {
            if unwinding {
                wake.hand_off();
            } else {
                wake.wake();
            }
        }
    }
}

impl Drop for Wakes {
    fn drop(&mut self) {
        self.run_claimed();
    }
}

#[derive(Clone, Copy, Debug)]
pub struct FeedConfig {
    /// How many recent events stay in memory for quick replay.
    pub memory_events: usize,
    pub limits: StoreLimits,
}

/// The answer to a subscriber catching up.
pub enum CatchUp {
    /// The next events after the one asked for.
    Events(Vec<Arc<Published>>),
    /// Nothing is left to catch up: the subscriber now receives new events as they come.
    Live,
    /// Events before `first` are no longer kept; carry on from there.
    Gap { first: u64 },
}

/// A page of history for the REST API.
pub struct Page {
    pub events: Vec<Arc<Published>>,
    pub first_seq: u64,
    pub last_seq: u64,
}

pub struct Feed {
    state: Mutex<FeedState>,
    /// Events and bytes published since the server started (for metrics).
    published: AtomicU64,
    published_bytes: AtomicU64,
}

struct FeedState {
    next_seq: u64,
    recent: VecDeque<Arc<Published>>,
    /// The JSON bytes of `recent` (at most `MEMORY_BYTES`, but for the newest event).
    recent_bytes: usize,
    memory_events: usize,
    store: Option<Store>,
    live: Vec<Arc<dyn Subscriber>>,
    /// Reused buffer for the lines of one batch.
    lines: Vec<u8>,
    disk_failed: bool,
}

impl Feed {
    /// Opens the feed whose history is in `dir`; numbering continues after the last seq
    /// found there.
    pub fn open(dir: &Path, config: FeedConfig) -> std::io::Result<Feed> {
        let (store, last_seq) = Store::open(dir, config.limits)?;
        Ok(Feed {
            published: AtomicU64::new(0),
            published_bytes: AtomicU64::new(0),
            state: Mutex::new(FeedState {
                next_seq: last_seq + 1,
                recent: VecDeque::new(),
                recent_bytes: 0,
                memory_events: config.memory_events.max(1),
                store: Some(store),
                live: Vec::new(),
                lines: Vec::new(),
                disk_failed: false,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, FeedState> {
        // A panic while holding the lock leaves consistent data behind (every step
        // below is complete before the next), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Numbers, stores and fans out `events`; returns the seq of the last one.
    pub fn publish(&self, events: &[Event]) -> u64 {
        let (last, wakes) = self.publish_deferred(events);
        wakes.run();
        last
    }

    /// As `publish`, returning the events as published (for those who follow them).
    pub fn publish_events(&self, events: &[Event]) -> Vec<Arc<Published>> {
        let (batch, wakes) = self.publish_batch(events);
        wakes.run();
        batch
    }

    /// Numbers, stores and queues `events` for every live viewer, but leaves sending to
    /// the viewers this thread would serve itself to the `Wakes` returned: the caller
    /// runs it when it is ready (after handing a message to its program, say).
    pub fn publish_deferred(&self, events: &[Event]) -> (u64, Wakes) {
        let (batch, wakes) = self.publish_batch(events);
        let last = batch.last().map_or_else(|| self.last_seq(), |e| e.seq);
        (last, wakes)
    }

    fn publish_batch(&self, events: &[Event]) -> (Vec<Arc<Published>>, Wakes) {
        let size = events.iter().map(Event::size_hint).sum();
        self.publish_built(events.len(), size, |batch, first, timestamp| {
            for (seq, event) in (first..).zip(events) {
                batch.push_event(seq, timestamp, event);
            }
        })
    }

    /// Publishes each of the newline-separated `lines` (no trailing newline) as an
    /// `output` event, as `publish` would with `NewEvent::Line`s, straight from the bytes.
    pub fn publish_lines(&self, pipe: Pipe, lines: &[u8]) -> u64 {
        let count = lines.iter().filter(|&&b| b == b'\n').count() + 1;
        let size = lines.len() + count * Event::LINE_OVERHEAD;
        let (batch, wakes) = self.publish_built(count, size, |batch, first, timestamp| {
            let template = LineTemplate::new(pipe, timestamp);
            for (seq, line) in (first..).zip(lines.split(|&b| b == b'\n')) {
                batch.push_line(seq, &template, line);
            }
        });
        wakes.run();
        batch.last().map_or_else(|| self.last_seq(), |e| e.seq)
    }

    /// Numbers, stores and fans out the `count` events that `build` adds to a batch,
    /// given the first seq and the timestamp; returns them as published, and the sends
    /// left for after the lock.
    fn publish_built(
        &self,
        count: usize,
        size: usize,
        build: impl FnOnce(&mut EventBatch, u64, &str),
    ) -> (Vec<Arc<Published>>, Wakes) {
        if count == 0 {
            return (Vec::new(), Wakes::none());
        }
        let timestamp = clock::now_rfc3339();
        let mut st = self.lock();
        let first = st.next_seq;
        let mut built = EventBatch::with_capacity(count, size);
        build(&mut built, first, &timestamp);
        let batch = built.finish();
        st.next_seq += batch.len() as u64;
        st.write_to_disk(&batch, first);
        self.published
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        let bytes: usize = batch.iter().map(|e| e.json().len()).sum();
        self.published_bytes
            .fetch_add(bytes as u64, Ordering::Relaxed);
        for event in &batch {
            st.recent_bytes += event.json().len();
            st.recent.push_back(event.clone());
        }
        while st.recent.len() > st.memory_events
            || (st.recent_bytes > MEMORY_BYTES && st.recent.len() > 1)
        {
            if let Some(old) = st.recent.pop_front() {
                st.recent_bytes -= old.json().len();
            }
        }
        // With few viewers this thread sends to them itself, after the lock is released
        // (see `Wakes`); a larger fan-out goes to the viewers' own threads.
        let mut wakes = Wakes::new(if st.live.len() <= INLINE_VIEWERS {
            INLINE_VIEWERS
        } else {
            0
        });
        st.live.retain(|sub| sub.deliver(&batch, &mut wakes));
        drop(st);
        (batch, wakes)
    }

    pub fn publish_one(&self, event: Event) -> u64 {
        self.publish(&[event])
    }

    /// The next chunk (at most `max` events) after seq `after` for `sub`; when there is
    /// none, `sub` is made live in the same step.
    pub fn catch_up(
        &self,
        after: u64,
        cursor: &mut Option<Cursor>,
        max: usize,
        sub: &Arc<dyn Subscriber>,
    ) -> CatchUp {
        self.read(after, cursor, max, Some(sub))
    }

    /// The next chunk after `after`; at the end, `go_live` (if any) is made live and
    /// `Live` is returned.
    fn read(
        &self,
        after: u64,
        cursor: &mut Option<Cursor>,
        max: usize,
        go_live: Option<&Arc<dyn Subscriber>>,
    ) -> CatchUp {
        let mut st = self.lock();
        if st.store.is_none() {
            return CatchUp::Events(Vec::new());
        }
        if after + 1 >= st.next_seq {
            if let Some(sub) = go_live.filter(|sub| sub.went_live()) {
                st.live.push(sub.clone());
            }
            return CatchUp::Live;
        }
        let memory_first = st.recent.front().map_or(st.next_seq, |e| e.seq);
        if after + 1 >= memory_first {
            let skip = (after + 1 - memory_first) as usize;
            return CatchUp::Events(st.recent.iter().skip(skip).take(max).cloned().collect());
        }
        let first = st.first_seq();
        if after + 1 < first {
            return CatchUp::Gap { first };
        }
        let segments = st.store.as_ref().map(|s| s.segments()).unwrap_or_default();
        drop(st);
        match store::read_after(&segments, after, memory_first, cursor, max) {
            Ok(events) if !events.is_empty() => CatchUp::Events(events),
            Ok(_) => CatchUp::Gap {
                first: memory_first,
            },
            Err(err) => {
                log::warn!("reading history failed: {err}");
                CatchUp::Gap {
                    first: memory_first,
                }
            }
        }
    }

    /// Delivers every event published from now on to `sub` (until it says no more).
    pub fn subscribe(&self, sub: Arc<dyn Subscriber>) {
        self.lock().live.push(sub);
    }

    /// Stops delivering to subscriber `id`.
    pub fn unsubscribe(&self, id: u64) {
        self.lock().live.retain(|s| s.id() != id);
    }

    /// Up to `limit` events after seq `after`, and about `max_bytes` of JSON at most
    /// (a page always holds at least one event when there is one), for paging through
    /// history.
    pub fn page(&self, after: u64, limit: usize, max_bytes: usize) -> Page {
        let mut events: Vec<Arc<Published>> = Vec::new();
        let mut bytes = 0;
        let mut cursor = None;
        let mut after = after;
        let (first_seq, last_seq) = self.bounds();
        after = after.max(first_seq.saturating_sub(1));
        'pages: while events.len() < limit && after < last_seq {
            match self.read(after, &mut cursor, (limit - events.len()).min(512), None) {
                CatchUp::Events(chunk) if !chunk.is_empty() => {
                    for event in chunk {
                        let size = event.json().len() + 1;
                        if !events.is_empty() && bytes + size > max_bytes {
                            break 'pages;
                        }
                        bytes += size;
                        after = event.seq;
                        events.push(event);
                    }
                }
                CatchUp::Gap { first } if first > after + 1 => after = first - 1,
                _ => break,
            }
        }
        Page {
            events,
            first_seq,
            last_seq,
        }
    }

    pub fn published(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }

    pub fn published_bytes(&self) -> u64 {
        self.published_bytes.load(Ordering::Relaxed)
    }

    pub fn last_seq(&self) -> u64 {
        self.lock().next_seq - 1
    }

    /// The first and last seq this feed can still replay (first > last when empty).
    pub fn bounds(&self) -> (u64, u64) {
        let st = self.lock();
        (st.first_seq(), st.next_seq - 1)
    }

    pub fn subscriber_count(&self) -> usize {
        self.lock().live.len()
    }

    pub fn disk_bytes(&self) -> u64 {
        self.lock().store.as_ref().map_or(0, |s| s.bytes())
    }

    /// Makes everything published so far durable. The disk is waited for outside the
    /// feed's lock, so publishing goes on meanwhile.
    pub fn sync(&self) {
        let paths = self.lock().store.as_mut().map(Store::take_unsynced);
        for path in paths.unwrap_or_default() {
            let synced = std::fs::File::open(&path).and_then(|file| file.sync_data());
            // A segment dropped meanwhile (past the size limit) needs no sync.
            if let Err(err) = synced
                && err.kind() != std::io::ErrorKind::NotFound
            {
                log::warn!("syncing history {} failed: {err}", path.display());
            }
        }
    }

    /// Closes the history file until the next event (the worker's process ended).
    pub fn release_file(&self) {
        if let Some(store) = self.lock().store.as_mut() {
            store.release();
        }
    }

    /// Drops the in-memory window of recent events (they are all in the history files),
    /// for a worker that has stopped: a thousand stopped workers must not each keep
    /// thousands of events in memory. Replays then read from disk.
    pub fn release_memory(&self) {
        let mut st = self.lock();
        if !st.disk_failed && !st.recent.is_empty() {
            st.recent = VecDeque::new();
            st.recent_bytes = 0;
        }
    }

    /// Closes the feed (its worker is being deleted): publishes nothing more and returns
    /// the live subscribers so the caller can tell them.
    pub fn close(&self) -> Vec<Arc<dyn Subscriber>> {
        let mut st = self.lock();
        st.store = None;
        st.recent.clear();
        st.recent_bytes = 0;
        std::mem::take(&mut st.live)
    }
}

impl FeedState {
    fn first_seq(&self) -> u64 {
        let memory_first = self.recent.front().map_or(self.next_seq, |e| e.seq);
        self.store
            .as_ref()
            .and_then(|s| s.first_seq())
            .map_or(memory_first, |f| f.min(memory_first))
    }

    fn write_to_disk(&mut self, batch: &[Arc<Published>], first: u64) {
        let Some(store) = self.store.as_mut() else {
            return;
        };
        self.lines.clear();
        for event in batch {
            self.lines.extend_from_slice(event.json());
            self.lines.push(b'\n');
        }
        match store.append(&self.lines, first) {
            Ok(()) => self.disk_failed = false,
            Err(err) => {
                // Keep serving live viewers; the gap in history is logged once per outage.
                if !self.disk_failed {
                    log::error!("writing history failed, events are not being kept: {err}");
                }
                self.disk_failed = true;
            }
        }
        if self.lines.capacity() > 1 << 20 {
            self.lines = Vec::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    struct Collect {
        seqs: Mutex<Vec<u64>>,
        id: u64,
    }
    impl Subscriber for Collect {
        fn id(&self) -> u64 {
            self.id
        }
        fn deliver(&self, events: &[Arc<Published>], _: &mut Wakes) -> bool {
            self.seqs
                .lock()
                .unwrap()
                .extend(events.iter().map(|e| e.seq));
            true
        }
    }

    fn feed(name: &str, memory: usize) -> (Feed, std::path::PathBuf) {
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "workerhub-feed-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let config = FeedConfig {
            memory_events: memory,
            limits: StoreLimits {
                segment_bytes: 4096,
                max_bytes: 1 << 30,
            },
        };
        (Feed::open(&dir, config).unwrap(), dir)
    }

    fn line(n: u64) -> Event {
        Event::line(Pipe::Stdout, n.to_string())
    }

    #[test]
    fn catching_up_from_disk_then_memory_then_live_has_no_gap_or_duplicate() {
        let (feed, dir) = feed("catchup", 10);
        for n in 1..=100 {
            feed.publish_one(line(n));
        }
        let sub = Arc::new(Collect {
            seqs: Mutex::new(Vec::new()),
            id: 1,
        });
        let dyn_sub: Arc<dyn Subscriber> = sub.clone();
        let mut after = 37;
        let mut cursor = None;
        let mut rounds = 0;
        loop {
            rounds += 1;
            match feed.catch_up(after, &mut cursor, 16, &dyn_sub) {
                CatchUp::Events(evs) => {
                    sub.seqs.lock().unwrap().extend(evs.iter().map(|e| e.seq));
                    after = evs.last().unwrap().seq;
                    // Publishing while catching up must not create a gap.
                    if rounds < 5 {
                        feed.publish_one(line(0));
                    }
                }
                CatchUp::Live => break,
                CatchUp::Gap { .. } => panic!("unexpected gap"),
            }
        }
        feed.publish_one(line(0));
        let seqs = sub.seqs.lock().unwrap().clone();
        let last = feed.last_seq();
        assert_eq!(seqs, (38..=last).collect::<Vec<_>>());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn numbering_continues_after_reopening() {
        let (feed, dir) = feed("reopen", 10);
        for n in 1..=5 {
            feed.publish_one(line(n));
        }
        drop(feed);
        let reopened = Feed::open(
            &dir,
            FeedConfig {
                memory_events: 10,
                limits: StoreLimits {
                    segment_bytes: 4096,
                    max_bytes: 1 << 30,
                },
            },
        )
        .unwrap();
        assert_eq!(reopened.publish_one(line(6)), 6);
        let page = reopened.page(0, 100, 1 << 20);
        assert_eq!(
            page.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![1, 2, 3, 4, 5, 6]
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
