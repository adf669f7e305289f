//! One WebSocket connection: its socket and its bounded outbox, and how what is queued
//! gets sent.
//!
//! Ownership of the socket's bytes is split by direction and never shared:
//! * the connection's **reader thread** (`reader.rs`) is the only one that reads; pong and
//!   close replies that tungstenite produces while reading are not written by it but
//!   queued in the outbox;
//! * every write goes through `service`, run by one thread at a time: a writer of the
//!   pool (`writer.rs`), or a publisher sending inline to a few idle viewers (the
//!   `feed::Wake` below). Sends never block, so one stalled client never holds a thread.
//!
//! Feeds, sessions and the reader put frames in the outbox; a client that lets it grow
//! past its bound is closed with 1013 and told where to resume.

use std::io::{self, IoSlice};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use super::outbox::{Consumed, Item, Outbox, Phase, Sched};
use super::writer::{Flush, Serviced, Writers};
use crate::error::ErrorCode;
use crate::event::{Event, Published, one_off_frame};
use crate::feed::{Wake, Wakes};
use crate::metrics::{self, METRICS};
use crate::sys;
use crate::timer::Timer;
use crate::wire::frame;

/// Most frames, and bytes, one `sendmsg` carries.
const SEND_ITEMS: usize = 1024;
const SEND_BYTES: usize = 32 * 1024;

/// Limits and timings of every connection.
#[derive(Clone, Copy, Debug)]
pub struct ConnConfig {
    /// A client whose unsent frames pass this many bytes stops receiving live events and
    /// reads history at its own pace instead, until it has caught up.
    pub outbox_bytes: usize,
    /// A client whose socket takes nothing for this long while frames wait is closed
    /// with 1013.
    pub stall_timeout: Duration,
    /// The largest message a client may send; larger ones get an `error` event.
    pub max_message_bytes: usize,
    /// Send a ping after this long without hearing from the client.
    pub ping_interval: Duration,
    /// Close the connection when nothing arrives this long after a ping.
    pub pong_timeout: Duration,
    /// How long a closing connection may take to flush its close frame.
    pub close_grace: Duration,
    /// The same for a client closed for taking nothing (1013), which first has to read
    /// what its socket buffer holds.
    pub stall_close_grace: Duration,
}

/// Something that refills an outbox from history when it runs dry (a subscription that
/// is catching up). It stays in the connection's list until it removes itself (when it
/// goes live), and is called whenever the outbox is empty.
pub trait Refill: Send + Sync {
    /// Queues the next chunk on `conn`; returns whether it queued anything.
    fn refill(&self, conn: &Arc<Conn>) -> bool;
}

/// What became of live events offered to a connection.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Push {
    Queued,
    /// The client is too far behind to take more live events: it should catch up from
    /// history instead. Nothing was queued.
    Lagging,
    /// The connection is closing or closed.
    Closed,
}

struct State {
    outbox: Outbox,
    refills: Vec<Arc<dyn Refill>>,
}

pub struct Conn {
    pub id: u64,
    pub peer: SocketAddr,
    pub path: String,
    sock: TcpStream,
    state: Mutex<State>,
    writers: Weak<Writers>,
    timer: Timer,
    /// The writable watcher's token for this socket.
    watch: u64,
    pub config: ConnConfig,
    pub opened: Instant,
}

impl Conn {
    /// A connection on `sock`, watched for writability by `writers`.
    pub fn open(
        id: u64,
        sock: TcpStream,
        peer: SocketAddr,
        path: String,
        writers: &Arc<Writers>,
        timer: Timer,
        config: ConnConfig,
    ) -> io::Result<Arc<Conn>> {
        let fd = sock.as_raw_fd();
        let conn = Arc::new(Conn {
            id,
            peer,
            path,
            sock,
            state: Mutex::new(State {
                outbox: Outbox::new(),
                refills: Vec::new(),
            }),
            writers: Arc::downgrade(writers),
            timer,
            watch: id,
            config,
            opened: Instant::now(),
        });
        let flush: Arc<dyn Flush> = conn.clone();
        writers.watch(fd, conn.watch, Arc::downgrade(&flush))?;
        Ok(conn)
    }

    pub fn fd(&self) -> i32 {
        self.sock.as_raw_fd()
    }

    pub(super) fn socket(&self) -> &TcpStream {
        &self.sock
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn phase(&self) -> Phase {
        self.lock().outbox.phase
    }

    pub fn is_open(&self) -> bool {
        self.phase() == Phase::Open
    }

    /// Offers new events of a live subscription. A client that is more than the outbox
    /// bound behind gets `Lagging` and nothing is queued: its subscription then catches
    /// up from history at the client's pace, so no client holds more than the bound in
    /// memory and none slows the others down. When the connection was idle and the
    /// publisher has room in `wakes`, the publisher sends it itself after its lock.
    pub fn push_live(
        self: &Arc<Self>,
        events: &[Arc<Published>],
        envelope_source: Option<&Arc<str>>,
        wakes: &mut Wakes,
    ) -> Push {
        let mut st = self.lock();
        if st.outbox.phase != Phase::Open {
            return Push::Closed;
        }
        let incoming: usize = events.iter().map(|e| e.frame().len()).sum();
        let queued = st.outbox.queued();
        if queued > 0 && queued + incoming > self.config.outbox_bytes {
            return Push::Lagging;
        }
        self.queue_events(&mut st, events, envelope_source, Some(wakes));
        Push::Queued
    }

    /// Queues a chunk of history (asked for by a refill, so already paced).
    pub fn push_replay(
        self: &Arc<Self>,
        events: &[Arc<Published>],
        envelope_source: Option<&Arc<str>>,
    ) -> bool {
        let mut st = self.lock();
        if st.outbox.phase != Phase::Open {
            return false;
        }
        self.queue_events(&mut st, events, envelope_source, None);
        true
    }

    fn queue_events(
        self: &Arc<Self>,
        st: &mut State,
        events: &[Arc<Published>],
        envelope_source: Option<&Arc<str>>,
        wakes: Option<&mut Wakes>,
    ) {
        METRICS
            .ws_messages_sent
            .fetch_add(events.len() as u64, Ordering::Relaxed);
        for event in events {
            st.outbox.push(match envelope_source {
                None => Item::Event(event.clone()),
                Some(src) => Item::Envelope(event.clone(), src.clone()),
            });
        }
        self.schedule(st, wakes);
    }

    /// Queues a frame for this client only. Frames for a closing connection are dropped.
    pub fn send_frame(self: &Arc<Self>, frame: Vec<u8>) {
        let mut st = self.lock();
        if st.outbox.phase != Phase::Open {
            return;
        }
        st.outbox.push(Item::Frame(frame.into()));
        metrics::inc(&METRICS.ws_messages_sent);
        self.schedule(&mut st, None);
    }

    /// Queues a frame shared with other clients (a push), unless this client is already
    /// too far behind; returns whether it was queued.
    pub fn push_shared(self: &Arc<Self>, frame: Arc<[u8]>) -> bool {
        let mut st = self.lock();
        if st.outbox.phase != Phase::Open || st.outbox.queued() > self.config.outbox_bytes {
            return false;
        }
        st.outbox.push(Item::Frame(frame));
        metrics::inc(&METRICS.ws_messages_sent);
        self.schedule(&mut st, None);
        true
    }

    /// Queues a JSON text message for this client only.
    pub fn send_json(self: &Arc<Self>, value: &serde_json::Value) {
        self.send_frame(frame::text(value.to_string().as_bytes()));
    }

    /// Sends this client an `error` event (not part of any feed, so without a seq).
    pub fn send_error(self: &Arc<Self>, code: ErrorCode, message: &str) {
        self.send_event(&Event::error(code, message));
    }

    /// Sends this client an event of its own (without a seq).
    pub fn send_event(self: &Arc<Self>, event: &Event) {
        self.send_frame(one_off_frame(event));
    }

    /// Queues what tungstenite answered while reading (pongs; a close reply, after which
    /// the connection is closing).
    pub(super) fn queue_reply(self: &Arc<Self>, bytes: Vec<u8>, closing: bool) {
        let mut st = self.lock();
        if st.outbox.phase != Phase::Open {
            return;
        }
        let bytes: Arc<[u8]> = bytes.into();
        if closing {
            st.outbox.push(Item::Close(bytes));
            st.outbox.phase = Phase::Closing;
            st.refills.clear();
        } else {
            st.outbox.push(Item::Frame(bytes));
        }
        self.schedule(&mut st, None);
    }

    /// Starts the closing handshake: queued frames go first, then the close frame, then
    /// the socket is shut down (at the latest after the close grace).
    pub fn close(self: &Arc<Self>, code: u16, reason: &str) {
        let mut st = self.lock();
        if st.outbox.phase != Phase::Open {
            return;
        }
        self.queue_close(&mut st, code, reason);
    }

    fn queue_close(self: &Arc<Self>, st: &mut State, code: u16, reason: &str) {
        st.outbox
            .push(Item::Close(frame::close(code, reason).into()));
        st.outbox.phase = Phase::Closing;
        st.refills.clear();
        self.schedule(st, None);
        // A stalled client gets long enough to read up to the close frame and learn where
        // to resume; any other close is quick.
        let grace = if code == 1013 {
            self.config.stall_close_grace
        } else {
            self.config.close_grace
        };
        let conn = Arc::downgrade(self);
        self.timer.after(grace, move || {
            if let Some(conn) = conn.upgrade() {
                conn.shutdown_now();
            }
        });
    }

    /// The client takes nothing: drop what it has not started receiving and close with
    /// 1013, telling it where to resume.
    fn close_stalled(self: &Arc<Self>, st: &mut State) {
        let resume = st.outbox.drop_unstarted();
        log::info!(
            "connection {} from {} took nothing for {:.0}s; closing it with 1013",
            self.id,
            self.peer,
            self.config.stall_timeout.as_secs_f64()
        );
        let reason = format!("too slow: reconnect with ?since={resume}");
        self.queue_close(st, 1013, &reason);
    }

    /// Closes the connection with 1013 if its socket has taken nothing for the stall
    /// timeout; otherwise checks again later while it is still blocked.
    fn check_stall(self: &Arc<Self>) {
        let mut st = self.lock();
        st.outbox.stall_check = false;
        if st.outbox.phase != Phase::Open || st.outbox.sched != Sched::AwaitWritable {
            return;
        }
        let Some(since) = st.outbox.stalled_since else {
            return;
        };
        let stalled = since.elapsed();
        if stalled >= self.config.stall_timeout {
            self.close_stalled(&mut st);
        } else {
            self.arm_stall_check(&mut st, self.config.stall_timeout - stalled);
        }
    }

    fn arm_stall_check(self: &Arc<Self>, st: &mut State, after: Duration) {
        if st.outbox.stall_check {
            return;
        }
        st.outbox.stall_check = true;
        let conn = Arc::downgrade(self);
        self.timer.after(after, move || {
            if let Some(conn) = conn.upgrade() {
                conn.check_stall();
            }
        });
    }

    /// Makes `refill` top up this outbox whenever it runs dry (once, however often it
    /// is added).
    pub fn add_refill(self: &Arc<Self>, refill: Arc<dyn Refill>) {
        let mut st = self.lock();
        if st.outbox.phase != Phase::Open {
            return;
        }
        if !st.refills.iter().any(|r| Arc::ptr_eq(r, &refill)) {
            st.refills.push(refill);
        }
        self.schedule(&mut st, None);
    }

    pub fn remove_refill(&self, refill: &Arc<dyn Refill>) {
        self.lock().refills.retain(|r| !Arc::ptr_eq(r, refill));
    }

    /// Gets what was queued on its way: at once by the publisher (when it has room in
    /// `wakes`, the connection has nothing to catch up and no thread is sending), or by
    /// a writer of the pool.
    fn schedule(self: &Arc<Self>, st: &mut State, wakes: Option<&mut Wakes>) {
        if st.outbox.sched != Sched::Idle {
            return;
        }
        if let Some(wakes) = wakes
            && st.refills.is_empty()
            && wakes.claim(self.clone())
        {
            // The publisher runs `service` once it has let go of its locks.
            st.outbox.sched = Sched::Running;
            return;
        }
        st.outbox.sched = Sched::Queued;
        if let Some(writers) = self.writers.upgrade() {
            writers.run(self.clone());
        }
    }

    /// Puts a connection a publisher had claimed (`Running`) in the writer pool's queue.
    fn hand_to_pool(self: &Arc<Self>) {
        self.lock().outbox.sched = Sched::Queued;
        if let Some(writers) = self.writers.upgrade() {
            writers.run(self.clone());
        }
    }

    /// Sends what the outbox holds until it is empty, the socket is full, or this
    /// connection has had `budget` bytes. Run by one thread at a time.
    fn send_queued(self: &Arc<Self>, budget: usize) -> Serviced {
        {
            let mut st = self.lock();
            st.outbox.sched = Sched::Running;
            st.outbox.kicked = false;
        }
        let mut sent_total = 0;
        let mut items: Vec<Item> = Vec::with_capacity(SEND_ITEMS);
        loop {
            let refills = {
                let st = self.lock();
                if st.outbox.is_empty() && st.outbox.phase == Phase::Open {
                    st.refills.clone()
                } else {
                    Vec::new()
                }
            };
            for refill in refills {
                if refill.refill(self) {
                    break;
                }
            }

            let front_sent = {
                let mut st = self.lock();
                if st.outbox.is_empty() {
                    st.outbox.sched = Sched::Idle;
                    return Serviced::Done;
                }
                st.outbox.front(&mut items, SEND_ITEMS, SEND_BYTES)
            };
            let slices: Vec<IoSlice<'_>> = items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    let bytes = item.bytes();
                    IoSlice::new(if i == 0 { &bytes[front_sent..] } else { bytes })
                })
                .collect();
            match sys::send_now(self.fd(), &slices) {
                Ok(n) => {
                    drop(slices);
                    let mut st = self.lock();
                    st.outbox.stalled_since = None;
                    // The reader may have shut the connection down (emptying the outbox)
                    // while the bytes were on their way: nothing left to account for.
                    if st.outbox.phase != Phase::Closed && st.outbox.consume(n) == Consumed::Closed
                    {
                        self.shut(&mut st);
                    }
                    sent_total += n;
                    if sent_total >= budget && !st.outbox.is_empty() {
                        // Others are waiting for a writer: go to the back of the queue.
                        st.outbox.sched = Sched::Queued;
                        return Serviced::Again;
                    }
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    let mut st = self.lock();
                    if st.outbox.kicked {
                        st.outbox.kicked = false;
                        continue;
                    }
                    st.outbox.sched = Sched::AwaitWritable;
                    st.outbox.stalled_since.get_or_insert_with(Instant::now);
                    let timeout = self.config.stall_timeout;
                    self.arm_stall_check(&mut st, timeout);
                    return Serviced::Done;
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    // The client is gone; the reader thread sees it too and cleans up.
                    let mut st = self.lock();
                    self.shut(&mut st);
                    st.outbox.sched = Sched::Idle;
                    return Serviced::Done;
                }
            }
        }
    }

    fn shut(&self, st: &mut State) {
        st.outbox.phase = Phase::Closed;
        st.outbox.clear();
        st.refills.clear();
        let _ = self.sock.shutdown(Shutdown::Both);
    }

    /// Shuts the socket down now, whatever is queued (end of the close grace, or the
    /// reader saw the client go).
    pub fn shutdown_now(&self) {
        let mut st = self.lock();
        self.shut(&mut st);
    }

    /// Bytes queued and not yet sent.
    pub fn queued_bytes(&self) -> usize {
        self.lock().outbox.queued()
    }
}

impl Flush for Conn {
    fn service(self: Arc<Self>, budget: usize) -> Serviced {
        self.send_queued(budget)
    }

    /// The writable watcher saw the socket drain.
    fn on_writable(self: Arc<Self>) {
        let mut st = self.lock();
        match st.outbox.sched {
            Sched::AwaitWritable => {
                st.outbox.sched = Sched::Idle;
                self.schedule(&mut st, None);
            }
            Sched::Running => st.outbox.kicked = true,
            Sched::Idle | Sched::Queued => {}
        }
    }

    fn shutdown_now(&self) {
        Conn::shutdown_now(self);
    }
}

/// A publisher with few viewers sends to an idle one itself, once (see `feed::Wakes`):
/// whatever that send cannot finish goes to the writer pool as usual.
impl Wake for Conn {
    fn wake(self: Arc<Self>) {
        // As in the writer pool: a bug in serving one connection closes that one, and
        // neither the publishing thread nor the other viewers pay.
        let served = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.send_queued(1)));
        match served {
            Ok(Serviced::Again) => self.hand_to_pool(),
            Ok(Serviced::Done) => {}
            Err(_) => {
                log::error!("serving connection {} panicked; closing it", self.id);
                self.shutdown_now();
            }
        }
    }

    fn hand_off(self: Arc<Self>) {
        self.hand_to_pool();
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let Some(writers) = self.writers.upgrade() {
            writers.unwatch(self.fd(), self.watch);
        }
    }
}
