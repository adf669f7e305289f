//! workerhub patch: what one client may cost the server before a request reaches the
//! application.
//!
//! Upstream reads a request head of any size, for as long as the client keeps sending,
//! on a thread per connection with no limit on connections. Here the accept loop counts
//! open connections (in all and per client address) and refuses those past the limits
//! with a `503`, and each connection's request head is bounded in bytes (`431`) and in
//! total time (`408`), however slowly it trickles in.

use std::collections::HashMap;
use std::io::Write;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::connection::Connection;

/// Limits the accept loop and every connection enforce.
#[derive(Clone, Debug)]
pub struct ConnectionLimits {
    /// The most bytes of one request head (request line and headers); past it the
    /// client gets `431` and the connection is closed.
    pub max_head_bytes: usize,
    /// The longest one request head may take to arrive, counted from the moment the
    /// server starts waiting for it (so it also bounds an idle keep-alive connection).
    pub head_timeout: Option<Duration>,
    /// The most HTTP connections open at once.
    pub max_connections: usize,
    /// The most HTTP connections open at once from one client address.
    pub max_connections_per_ip: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_head_bytes: 64 * 1024,
            head_timeout: None,
            max_connections: usize::MAX,
            max_connections_per_ip: usize::MAX,
        }
    }
}

/// Open connections, in all and per address.
#[derive(Default)]
pub(crate) struct ConnectionTracker {
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// A connection's place against the limits, given back when it drops.
pub(crate) struct Admission {
    tracker: Arc<ConnectionTracker>,
    ip: Option<IpAddr>,
}

impl ConnectionTracker {
    fn lock(&self) -> MutexGuard<'_, (usize, HashMap<IpAddr, usize>)> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a place for a connection from `ip`, or says why there is none.
    pub(crate) fn admit(
        self: &Arc<Self>,
        ip: Option<IpAddr>,
        limits: &ConnectionLimits,
    ) -> Result<Admission, &'static str> {
        let mut open = self.lock();
        if open.0 >= limits.max_connections {
            return Err("the server holds its limit of HTTP connections");
        }
        if let Some(ip) = ip {
            let from_ip = open.1.entry(ip).or_insert(0);
            if *from_ip >= limits.max_connections_per_ip {
                return Err("too many HTTP connections from this address");
            }
            *from_ip += 1;
        }
        open.0 += 1;
        Ok(Admission {
            tracker: self.clone(),
            ip,
        })
    }

    /// Open connections in all.
    pub(crate) fn count(&self) -> usize {
        self.lock().0
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut open = self.tracker.lock();
        open.0 = open.0.saturating_sub(1);
        if let Some(ip) = self.ip {
            if let Some(n) = open.1.get_mut(&ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    open.1.remove(&ip);
                }
            }
        }
    }
}

/// Answers a connection the server will not serve with `503` and closes it, without
/// reading its request and without ever blocking the accept loop.
pub(crate) fn refuse(mut conn: Connection, why: &str) {
    if let Connection::Tcp(sock) = &conn {
        let _ = sock.set_nonblocking(true);
    }
    let body = format!(
        "{{\"error\":{{\"code\":\"server_busy\",\"message\":\"{why}; try again shortly\"}}}}\n"
    );
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: {}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = conn.write_all(head.as_bytes());
    let _ = conn.write_all(body.as_bytes());
    let _ = conn.shutdown(std::net::Shutdown::Write);
}

/// The deadline of the request head being read, shared between the connection (which
/// sets and clears it) and its socket's reading half (which bounds each read by it).
#[derive(Clone, Default)]
pub(crate) struct HeadDeadline(Arc<Mutex<Option<Instant>>>);

impl HeadDeadline {
    pub(crate) fn set(&self, deadline: Option<Instant>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = deadline;
    }

    pub(crate) fn get(&self) -> Option<Instant> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Keeps one descriptor in reserve so that, with the descriptor table full, the accept
/// loop can still take a connection off the queue and tell it `503` instead of leaving
/// it (and every other client) waiting.
pub(crate) struct Reserve(Option<std::fs::File>);

impl Reserve {
    pub(crate) fn new() -> Reserve {
        Reserve(std::fs::File::open("/dev/null").ok())
    }

    /// Frees the reserve for `use_it`, then takes it back.
    pub(crate) fn spend<T>(&mut self, use_it: impl FnOnce() -> T) -> T {
        self.0 = None;
        let result = use_it();
        self.0 = std::fs::File::open("/dev/null").ok();
        result
    }
}
