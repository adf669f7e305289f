//! One WebSocket connection: its socket, its bounded outbox, and the blocking reader
//! thread that serves what the client sends.
//!
//! Ownership of the socket's bytes is split by direction and never shared:
//! * the connection's **reader thread** is the only one that reads; pong and close
//!   replies that tungstenite produces while reading are not written by it but queued in
//!   the outbox;
//! * the **writer pool** (`writer.rs`) is the only one that writes: it drains the outbox
//!   with non-blocking sends, so one stalled client never holds a thread.
//!
//! Feeds, sessions and the reader put frames in the outbox; a client that lets it grow
//! past its bound is closed with 1013 and told where to resume.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use tungstenite::protocol::{Role, WebSocketConfig, WebSocketContext};
use tungstenite::{Error as WsError, Message};

use super::frame;
use super::writer::Writers;
use crate::event::{Event, NewEvent, one_off_frame};
use crate::metrics::{self, METRICS};
use crate::sys;

thread_local! {
    /// The connections an open `InlineSends` scope on this thread has claimed, and how
    /// many more it may claim; `None` outside a scope.
    static INLINE: RefCell<Option<(Vec<Arc<Conn>>, usize)>> = const { RefCell::new(None) };
}

/// A scope in which connections that become ready to send are claimed by the current
/// thread instead of being queued for the writer pool; `finish`, called once the caller
/// holds no lock, sends to them from this thread.
///
/// At low load the hand-off to a writer thread is the largest part of a round trip (one
/// more thread to wake on another CPU), so a publisher with few viewers sends itself.
/// Only connections with an empty outbox and nothing to catch up are claimed, at most
/// `max` of them, and each gets one non-blocking send: whatever is left goes to the
/// pool as before, so a fan-out or a flood still spreads over the writers, and the
/// publisher never waits for a client.
pub struct InlineSends {
    owner: bool,
}

impl InlineSends {
    /// Opens a scope claiming at most `max` connections (none: 0). Inside an open scope
    /// this is a no-op, and the outer scope's `finish` sends.
    pub fn begin(max: usize) -> InlineSends {
        let owner = max > 0
            && INLINE.with(|slot| {
                let mut slot = slot.borrow_mut();
                if slot.is_some() {
                    return false;
                }
                *slot = Some((Vec::new(), max));
                true
            });
        InlineSends { owner }
    }

    /// Sends to the claimed connections now.
    pub fn finish(mut self) {
        self.flush();
    }

    fn flush(&mut self) {
        if !std::mem::take(&mut self.owner) {
            return;
        }
        let claimed = INLINE
            .with(|slot| slot.borrow_mut().take())
            .map(|(conns, _)| conns)
            .unwrap_or_default();
        if std::thread::panicking() {
            // Unwinding, perhaps with a feed lock still held that a refill would take
            // again: leave every claimed connection to the writer pool.
            for conn in claimed {
                conn.hand_to_pool();
            }
            return;
        }
        for conn in claimed {
            // As in the writer pool: a bug in serving one connection closes that one,
            // and neither the publishing thread nor the other claimed connections pay.
            let served = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| conn.service(1)));
            match served {
                Ok(Serviced::Again) => conn.hand_to_pool(),
                Ok(Serviced::Done) => {}
                Err(_) => {
                    log::error!("serving connection {} panicked; closing it", conn.id);
                    conn.shutdown_now();
                }
            }
        }
    }

    /// Claims `conn` for the open scope, if there is one with room.
    fn claim(conn: &Arc<Conn>) -> bool {
        INLINE.with(|slot| match slot.borrow_mut().as_mut() {
            Some((conns, room)) if *room > 0 => {
                *room -= 1;
                conns.push(conn.clone());
                true
            }
            _ => false,
        })
    }
}

impl Drop for InlineSends {
    /// A scope left early (a panic on the way) still sends, so no claimed connection is
    /// left marked running with nobody to run it.
    fn drop(&mut self) {
        self.flush();
    }
}

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

/// One entry of an outbox.
#[derive(Clone)]
pub enum Item {
    /// A feed event, sent as the feed framed it.
    Event(Arc<Event>),
    /// A feed event wrapped in an agent-protocol envelope for worker `source`.
    Envelope(Arc<Event>, Arc<str>),
    /// A frame for this connection only (answers, errors, pings, pongs).
    Frame(Arc<[u8]>),
    /// The close frame: the last thing sent before the socket is shut down.
    Close(Arc<[u8]>),
}

impl Item {
    fn bytes(&self) -> &[u8] {
        match self {
            Item::Event(e) => e.frame(),
            Item::Envelope(e, source) => {
                e.envelope_frame(|e| crate::protocol::envelope_event_frame(e, source))
            }
            Item::Frame(b) | Item::Close(b) => b,
        }
    }
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

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Sched {
    /// Nothing to send; not in any queue.
    Idle,
    /// In the writer pool's run queue.
    Queued,
    /// A writer thread is sending.
    Running,
    /// The socket is full; the writable watcher re-queues it.
    AwaitWritable,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Phase {
    Open,
    /// A close frame is queued; nothing else is accepted.
    Closing,
    /// The socket is shut down.
    Closed,
}

struct Outbox {
    queue: VecDeque<Item>,
    /// Bytes of the front item already sent.
    front_sent: usize,
    /// Bytes queued and not yet sent.
    queued: usize,
    sched: Sched,
    /// The socket became writable while a writer was running.
    kicked: bool,
    phase: Phase,
    refills: Vec<Arc<dyn Refill>>,
    /// The highest feed seq whose frame was written whole.
    last_sent_seq: u64,
    /// Since when the socket has taken nothing while frames wait.
    stalled_since: Option<Instant>,
    /// A stall check is scheduled.
    stall_check: bool,
}

pub struct Conn {
    pub id: u64,
    pub peer: SocketAddr,
    pub path: String,
    sock: TcpStream,
    out: Mutex<Outbox>,
    writers: Weak<Writers>,
    pub config: ConnConfig,
    pub opened: Instant,
}

impl Conn {
    pub(super) fn new(
        id: u64,
        sock: TcpStream,
        peer: SocketAddr,
        path: String,
        writers: &Arc<Writers>,
        config: ConnConfig,
    ) -> Conn {
        Conn {
            id,
            peer,
            path,
            sock,
            out: Mutex::new(Outbox {
                queue: VecDeque::new(),
                front_sent: 0,
                queued: 0,
                sched: Sched::Idle,
                kicked: false,
                phase: Phase::Open,
                refills: Vec::new(),
                last_sent_seq: 0,
                stalled_since: None,
                stall_check: false,
            }),
            writers: Arc::downgrade(writers),
            config,
            opened: Instant::now(),
        }
    }

    pub fn fd(&self) -> i32 {
        self.sock.as_raw_fd()
    }

    fn lock(&self) -> MutexGuard<'_, Outbox> {
        self.out.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn phase(&self) -> Phase {
        self.lock().phase
    }

    pub fn is_open(&self) -> bool {
        self.phase() == Phase::Open
    }

    /// Offers new events of a live subscription. A client that is more than the outbox
    /// bound behind gets `Lagging` and nothing is queued: its subscription then catches
    /// up from history at the client's pace, so no client holds more than the bound in
    /// memory and none slows the others down.
    pub fn push_live(
        self: &Arc<Self>,
        events: &[Arc<Event>],
        envelope_source: Option<&Arc<str>>,
    ) -> Push {
        let mut ob = self.lock();
        if ob.phase != Phase::Open {
            return Push::Closed;
        }
        let incoming: usize = events.iter().map(|e| e.frame().len()).sum();
        if ob.queued > 0 && ob.queued + incoming > self.config.outbox_bytes {
            return Push::Lagging;
        }
        self.queue_events(&mut ob, events, envelope_source);
        Push::Queued
    }

    /// Queues a chunk of history (asked for by a refill, so already paced).
    pub fn push_replay(
        self: &Arc<Self>,
        events: &[Arc<Event>],
        envelope_source: Option<&Arc<str>>,
    ) -> bool {
        let mut ob = self.lock();
        if ob.phase != Phase::Open {
            return false;
        }
        self.queue_events(&mut ob, events, envelope_source);
        true
    }

    fn queue_events(
        self: &Arc<Self>,
        ob: &mut Outbox,
        events: &[Arc<Event>],
        envelope_source: Option<&Arc<str>>,
    ) {
        METRICS
            .ws_messages_sent
            .fetch_add(events.len() as u64, Ordering::Relaxed);
        for event in events {
            let item = match envelope_source {
                None => Item::Event(event.clone()),
                Some(src) => Item::Envelope(event.clone(), src.clone()),
            };
            ob.queued += item.bytes().len();
            ob.queue.push_back(item);
        }
        self.schedule(ob);
    }

    /// Queues a frame for this client only. Frames for a closing connection are dropped.
    pub fn send_frame(self: &Arc<Self>, frame: Vec<u8>) {
        let mut ob = self.lock();
        if ob.phase != Phase::Open {
            return;
        }
        ob.queued += frame.len();
        ob.queue.push_back(Item::Frame(frame.into()));
        metrics::inc(&METRICS.ws_messages_sent);
        self.schedule(&mut ob);
    }

    /// Queues a frame shared with other clients (a push), unless this client is already
    /// too far behind; returns whether it was queued.
    pub fn push_shared(self: &Arc<Self>, frame: Arc<[u8]>) -> bool {
        let mut ob = self.lock();
        if ob.phase != Phase::Open || ob.queued > self.config.outbox_bytes {
            return false;
        }
        ob.queued += frame.len();
        ob.queue.push_back(Item::Frame(frame));
        metrics::inc(&METRICS.ws_messages_sent);
        self.schedule(&mut ob);
        true
    }

    /// Queues a JSON text message for this client only.
    pub fn send_json(self: &Arc<Self>, value: &serde_json::Value) {
        self.send_frame(frame::text(value.to_string().as_bytes()));
    }

    /// Sends this client an `error` event (not part of any feed, so without a seq).
    pub fn send_error(self: &Arc<Self>, code: &str, message: &str) {
        let event = NewEvent::new(
            "error",
            serde_json::json!({"code": code, "message": message}),
        );
        self.send_frame(one_off_frame(&event));
    }

    /// Starts the closing handshake: queued frames go first, then the close frame, then
    /// the socket is shut down (at the latest after the close grace).
    pub fn close(self: &Arc<Self>, code: u16, reason: &str) {
        let mut ob = self.lock();
        if ob.phase != Phase::Open {
            return;
        }
        self.queue_close(&mut ob, code, reason);
    }

    fn queue_close(self: &Arc<Self>, ob: &mut Outbox, code: u16, reason: &str) {
        let frame: Arc<[u8]> = frame::close(code, reason).into();
        ob.queued += frame.len();
        ob.queue.push_back(Item::Close(frame));
        ob.phase = Phase::Closing;
        ob.refills.clear();
        self.schedule(ob);
        // A stalled client gets long enough to read up to the close frame and learn where
        // to resume; any other close is quick.
        let grace = if code == 1013 {
            self.config.stall_close_grace
        } else {
            self.config.close_grace
        };
        if let Some(writers) = self.writers.upgrade() {
            writers.close_deadline(self, grace);
        }
    }

    /// The client takes nothing: drop what it has not started receiving and close with
    /// 1013, telling it where to resume.
    fn close_stalled(self: &Arc<Self>, ob: &mut Outbox) {
        // A frame already begun is finished before the close frame, so the client will
        // have it: resume after it.
        let keep = usize::from(ob.front_sent > 0);
        let resume = match ob.queue.front() {
            Some(Item::Event(e) | Item::Envelope(e, _)) if keep == 1 => e.seq,
            _ => ob.last_sent_seq,
        };
        while ob.queue.len() > keep {
            if let Some(item) = ob.queue.pop_back() {
                ob.queued -= item.bytes().len();
            }
        }
        log::info!(
            "connection {} from {} took nothing for {:.0}s; closing it with 1013",
            self.id,
            self.peer,
            self.config.stall_timeout.as_secs_f64()
        );
        let reason = format!("too slow: reconnect with ?since={resume}");
        self.queue_close(ob, 1013, &reason);
    }

    /// Closes the connection with 1013 if its socket has taken nothing for the stall
    /// timeout; otherwise checks again later while it is still blocked.
    fn check_stall(self: &Arc<Self>) {
        let mut ob = self.lock();
        ob.stall_check = false;
        if ob.phase != Phase::Open || ob.sched != Sched::AwaitWritable {
            return;
        }
        let Some(since) = ob.stalled_since else {
            return;
        };
        let stalled = since.elapsed();
        if stalled >= self.config.stall_timeout {
            self.close_stalled(&mut ob);
        } else {
            self.arm_stall_check(&mut ob, self.config.stall_timeout - stalled);
        }
    }

    fn arm_stall_check(self: &Arc<Self>, ob: &mut Outbox, after: Duration) {
        if ob.stall_check {
            return;
        }
        ob.stall_check = true;
        if let Some(writers) = self.writers.upgrade() {
            let conn = Arc::downgrade(self);
            writers.after(after, move || {
                if let Some(conn) = conn.upgrade() {
                    conn.check_stall();
                }
            });
        }
    }

    /// Makes `refill` top up this outbox whenever it runs dry (once, however often it
    /// is added).
    pub fn add_refill(self: &Arc<Self>, refill: Arc<dyn Refill>) {
        let mut ob = self.lock();
        if ob.phase != Phase::Open {
            return;
        }
        if !ob.refills.iter().any(|r| Arc::ptr_eq(r, &refill)) {
            ob.refills.push(refill);
        }
        self.schedule(&mut ob);
    }

    pub fn remove_refill(&self, refill: &Arc<dyn Refill>) {
        self.lock().refills.retain(|r| !Arc::ptr_eq(r, refill));
    }

    fn schedule(self: &Arc<Self>, ob: &mut Outbox) {
        if ob.sched == Sched::Idle {
            if ob.refills.is_empty() && InlineSends::claim(self) {
                // The scope's owner runs `service` once it has let go of its locks.
                ob.sched = Sched::Running;
                return;
            }
            ob.sched = Sched::Queued;
            if let Some(writers) = self.writers.upgrade() {
                writers.run(self.clone());
            }
        }
    }

    /// Puts a connection this thread had claimed (`Running`) in the writer pool's queue.
    fn hand_to_pool(self: &Arc<Self>) {
        self.lock().sched = Sched::Queued;
        if let Some(writers) = self.writers.upgrade() {
            writers.run(self.clone());
        }
    }

    /// Called by the writable watcher when the socket has room again.
    pub(super) fn on_writable(self: &Arc<Self>) {
        let mut ob = self.lock();
        match ob.sched {
            Sched::AwaitWritable => {
                ob.sched = Sched::Idle;
                self.schedule(&mut ob);
            }
            Sched::Running => ob.kicked = true,
            Sched::Idle | Sched::Queued => {}
        }
    }

    /// Sends what the outbox holds until it is empty, the socket is full, or this
    /// connection has had its share of the writer. Run by one writer thread at a time.
    pub(super) fn service(self: &Arc<Self>, budget: usize) -> Serviced {
        {
            let mut ob = self.lock();
            ob.sched = Sched::Running;
            ob.kicked = false;
        }
        let mut sent_total = 0;
        let mut items: Vec<Item> = Vec::with_capacity(SEND_ITEMS);
        loop {
            let refills = {
                let ob = self.lock();
                if ob.queue.is_empty() && ob.phase == Phase::Open {
                    ob.refills.clone()
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
                let mut ob = self.lock();
                if ob.queue.is_empty() {
                    ob.sched = Sched::Idle;
                    return Serviced::Done;
                }
                items.clear();
                let mut bytes = 0;
                for item in ob.queue.iter().take(SEND_ITEMS) {
                    bytes += item.bytes().len();
                    items.push(item.clone());
                    if bytes >= SEND_BYTES {
                        break;
                    }
                }
                ob.front_sent
            };
            let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let bytes = item.bytes();
                slices.push(IoSlice::new(if i == 0 {
                    &bytes[front_sent..]
                } else {
                    bytes
                }));
            }
            match sys::send_now(self.fd(), &slices) {
                Ok(n) => {
                    drop(slices);
                    let mut ob = self.lock();
                    ob.stalled_since = None;
                    self.consume(&mut ob, n);
                    sent_total += n;
                    if sent_total >= budget && !ob.queue.is_empty() {
                        // Others are waiting for a writer: go to the back of the queue.
                        ob.sched = Sched::Queued;
                        return Serviced::Again;
                    }
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    let mut ob = self.lock();
                    if ob.kicked {
                        ob.kicked = false;
                        continue;
                    }
                    ob.sched = Sched::AwaitWritable;
                    ob.stalled_since.get_or_insert_with(Instant::now);
                    let timeout = self.config.stall_timeout;
                    self.arm_stall_check(&mut ob, timeout);
                    return Serviced::Done;
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    // The client is gone; the reader thread sees it too and cleans up.
                    let mut ob = self.lock();
                    self.shut(&mut ob);
                    ob.sched = Sched::Idle;
                    return Serviced::Done;
                }
            }
        }
    }

    /// Removes `n` sent bytes from the front of the outbox.
    fn consume(&self, ob: &mut Outbox, mut n: usize) {
        // The reader may have shut the connection down (emptying the outbox) while the
        // bytes were on their way: then there is nothing left to account for.
        if ob.phase == Phase::Closed {
            return;
        }
        ob.queued = ob.queued.saturating_sub(n);
        while n > 0 {
            let Some(front) = ob.queue.front() else {
                break;
            };
            let left = front.bytes().len() - ob.front_sent;
            if n < left {
                ob.front_sent += n;
                return;
            }
            n -= left;
            ob.front_sent = 0;
            match ob.queue.pop_front() {
                Some(Item::Event(e)) | Some(Item::Envelope(e, _)) => {
                    ob.last_sent_seq = ob.last_sent_seq.max(e.seq)
                }
                Some(Item::Close(_)) => self.shut(ob),
                _ => {}
            }
        }
    }

    fn shut(&self, ob: &mut Outbox) {
        ob.phase = Phase::Closed;
        ob.queue.clear();
        ob.queued = 0;
        ob.front_sent = 0;
        ob.refills.clear();
        let _ = self.sock.shutdown(Shutdown::Both);
    }

    /// Shuts the socket down now, whatever is queued (end of the close grace, or the
    /// reader saw the client go).
    pub fn shutdown_now(&self) {
        let mut ob = self.lock();
        self.shut(&mut ob);
    }

    /// Bytes queued and not yet sent.
    pub fn queued_bytes(&self) -> usize {
        self.lock().queued
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let Some(writers) = self.writers.upgrade() {
            writers.forget(self.id);
        }
    }
}

pub(super) enum Serviced {
    Done,
    Again,
}

/// What a WebSocket endpoint does with a connection.
pub trait Session: Send {
    /// The connection is open (send a greeting, start subscriptions).
    fn on_open(&mut self, conn: &Arc<Conn>);
    /// A text message arrived (already checked against the size limit).
    fn on_text(&mut self, conn: &Arc<Conn>, text: &str);
    /// The connection is over, however it ended.
    fn on_close(&mut self, conn: &Arc<Conn>);
}

/// The socket as tungstenite sees it from the reader thread: reads come from the
/// socket, and anything tungstenite wants to write (pongs, close replies) is collected
/// for the outbox instead.
struct ReaderIo<'a> {
    sock: &'a TcpStream,
    replies: &'a mut Vec<u8>,
}

impl Read for ReaderIo<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self.sock).read(buf)
    }
}

impl Write for ReaderIo<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.replies.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The reader thread's loop: blocks in `read` until the client sends something, answers
/// pings, pings an idle client and drops one that does not answer.
pub(super) fn read_loop(conn: Arc<Conn>, mut session: Box<dyn Session>, early: Vec<u8>) {
    let cfg = conn.config;
    // Allow messages above the API's limit at the protocol level so that a too-large
    // message gets a clear `error` event on an open connection; only far larger ones
    // (over 4x) close it with 1009.
    let protocol_limit = cfg.max_message_bytes.saturating_mul(4).max(64 * 1024);
    let ws_config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_message_size(Some(protocol_limit))
        .max_frame_size(Some(protocol_limit));
    let mut ctx = WebSocketContext::from_partially_read(early, Role::Server, Some(ws_config));
    let mut replies = Vec::new();
    let mut pinged: Option<Instant> = None;
    let _ = conn.sock.set_read_timeout(Some(cfg.ping_interval));

    session.on_open(&conn);
    loop {
        let result = ctx.read(&mut ReaderIo {
            sock: &conn.sock,
            replies: &mut replies,
        });
        if !replies.is_empty() {
            let bytes: Arc<[u8]> = std::mem::take(&mut replies).into();
            let mut ob = conn.lock();
            if ob.phase == Phase::Open {
                ob.queued += bytes.len();
                if matches!(result, Ok(Message::Close(_))) {
                    // tungstenite answered the client's close: send it, then shut down.
                    ob.queue.push_back(Item::Close(bytes));
                    ob.phase = Phase::Closing;
                    ob.refills.clear();
                } else {
                    ob.queue.push_back(Item::Frame(bytes));
                }
                conn.schedule(&mut ob);
            }
        }
        let heard = !matches!(&result, Err(WsError::Io(_)));
        if heard && pinged.take().is_some() {
            let _ = conn.sock.set_read_timeout(Some(cfg.ping_interval));
        }
        if matches!(result, Ok(Message::Text(_) | Message::Binary(_))) {
            metrics::inc(&METRICS.ws_messages_received);
        }
        match result {
            Ok(Message::Text(text)) => {
                if text.len() > cfg.max_message_bytes {
                    conn.send_error(
                        "message_too_large",
                        &format!(
                            "message of {} bytes is over the limit of {} bytes",
                            text.len(),
                            cfg.max_message_bytes
                        ),
                    );
                } else {
                    // A bug in handling one message costs that message, not the
                    // connection (and never the server).
                    let handled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        session.on_text(&conn, &text)
                    }));
                    if handled.is_err() {
                        log::error!("connection {}: handling a message panicked", conn.id);
                        conn.send_error(
                            "internal",
                            "the server failed while handling this message (it was logged)",
                        );
                    }
                }
            }
            Ok(Message::Binary(_)) => conn.send_error(
                "binary_not_supported",
                "binary frames are not accepted: send JSON as a text message",
            ),
            Ok(_) => {}
            Err(WsError::Io(err))
                if matches!(
                    err.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                if pinged.is_some() {
                    log::info!(
                        "connection {} from {} did not answer a ping; closing it",
                        conn.id,
                        conn.peer
                    );
                    conn.close(1001, "no answer to ping");
                    conn.shutdown_now();
                    break;
                }
                conn.send_frame(frame::ping(b"workerhub"));
                pinged = Some(Instant::now());
                let _ = conn.sock.set_read_timeout(Some(cfg.pong_timeout));
            }
            Err(WsError::Io(err)) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(WsError::Capacity(err)) => {
                conn.close(1009, &format!("message too big: {err}"));
                break;
            }
            Err(WsError::Utf8(_)) => {
                conn.close(1007, "text message is not valid UTF-8");
                break;
            }
            // The client went away without a closing handshake: nobody to tell.
            Err(WsError::Protocol(
                tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
            )) => break,
            Err(WsError::Protocol(err)) => {
                conn.close(1002, &format!("protocol error: {err}"));
                break;
            }
            Err(_) => break,
        }
    }
    session.on_close(&conn);
    // Give a queued close frame its grace to go out; otherwise shut down at once.
    if conn.phase() == Phase::Open {
        conn.shutdown_now();
    }
}
