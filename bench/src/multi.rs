//! The many-connection scenarios (`fanout`, `conns`): every connection is a non-blocking
//! socket in one epoll set, driven by one thread (pid_max is 32,768 and the server needs
//! about one thread per connection, so the load generator must not).

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::client::{
    OP_BINARY, OP_CLOSE, OP_PING, OP_TEXT, Parser, Proto, WsUrl, check_handshake_response,
    client_frame, handshake_request, parse_emit_line,
};
use crate::procfs;
use crate::stats::percentile;
use crate::sys::{self, Epoll};

#[derive(clap::Args, Debug)]
pub struct FanoutArgs {
    /// The WebSocket every client connects to; its program must be `workerhub-bench emit
    /// --wait-go`. For workerhub use `?since=0` (no line can be missed at the start).
    #[arg(long)]
    pub url: String,
    #[arg(long, value_enum, default_value = "hub")]
    pub proto: Proto,
    #[arg(long, default_value_t = 1000)]
    pub clients: usize,
    /// Lines the program prints (its `--lines`); every client must receive all of them.
    #[arg(long, default_value_t = 2000)]
    pub lines: u64,
    /// Who sends `go`: one client (one shared worker, workerhub) or every client (one
    /// process per connection, websocketd and the reference). Default: by protocol.
    #[arg(long)]
    pub go_each: Option<bool>,
    /// Handshakes in flight at once.
    #[arg(long, default_value_t = 128)]
    pub concurrency: usize,
    #[arg(long, default_value_t = 120.0)]
    pub timeout: f64,
    /// Access token, sent as `Authorization: Bearer TOKEN` (workerhub's default
    /// authentication).
    #[arg(long)]
    pub token: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct ConnsArgs {
    /// The WebSocket to open many times (a worker running `cat`).
    #[arg(long)]
    pub url: String,
    #[arg(long, default_value_t = 10_000)]
    pub clients: usize,
    /// The server's pid, to read its memory, threads and CPU from /proc.
    #[arg(long)]
    pub pid: Option<i32>,
    /// How long to hold the connections idle while measuring CPU.
    #[arg(long, default_value_t = 3.0)]
    pub idle_secs: f64,
    #[arg(long, default_value_t = 128)]
    pub concurrency: usize,
    #[arg(long, default_value_t = 180.0)]
    pub timeout: f64,
    /// Access token, sent as `Authorization: Bearer TOKEN` (workerhub's default
    /// authentication).
    #[arg(long)]
    pub token: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum St {
    Connecting,
    Handshake,
    Open,
    Closed,
}

struct MConn {
    sock: Option<TcpStream>,
    st: St,
    key: String,
    req: Vec<u8>,
    head: Vec<u8>,
    parser: Parser,
    started: Instant,
    out: Vec<u8>,
    close_code: Option<u16>,
    close_reason: Option<String>,
}

/// Connections driven by one epoll loop.
struct Pool {
    url: WsUrl,
    epoll: Epoll,
    conns: Vec<MConn>,
    scratch: Vec<u8>,
    events: Vec<(u64, u32)>,
    in_flight: Vec<usize>,
    open: usize,
    failed: usize,
    closed_after_open: usize,
    failures: BTreeMap<String, usize>,
}

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);

impl Pool {
    fn new(url: WsUrl) -> io::Result<Pool> {
        Ok(Pool {
            url,
            epoll: Epoll::new()?,
            conns: Vec::new(),
            scratch: vec![0; 256 * 1024],
            events: Vec::new(),
            in_flight: Vec::new(),
            open: 0,
            failed: 0,
            closed_after_open: 0,
            failures: BTreeMap::new(),
        })
    }

    fn start(&mut self) {
        let i = self.conns.len();
        let (req, key) = handshake_request(&self.url);
        let mut conn = MConn {
            sock: None,
            st: St::Connecting,
            key,
            req,
            head: Vec::new(),
            parser: Parser::default(),
            started: Instant::now(),
            out: Vec::new(),
            close_code: None,
            close_reason: None,
        };
        match sys::connect_nonblocking(self.url.addr) {
            Ok(sock) => match self.epoll.add(sock.as_raw_fd(), i as u64, sys::OUT) {
                Ok(()) => {
                    conn.sock = Some(sock);
                    self.in_flight.push(i);
                }
                Err(e) => {
                    conn.st = St::Closed;
                    self.note_failure(format!("epoll: {e}"));
                }
            },
            Err(e) => {
                conn.st = St::Closed;
                self.note_failure(format!("connect: {e}"));
            }
        }
        self.conns.push(conn);
    }

    fn note_failure(&mut self, reason: String) {
        self.failed += 1;
        let reason: String = reason.chars().take(120).collect();
        *self.failures.entry(reason).or_default() += 1;
    }

    fn fail(&mut self, i: usize, reason: String) {
        let was_open = self.conns[i].st == St::Open;
        self.drop_conn(i);
        if was_open {
            self.open -= 1;
            self.closed_after_open += 1;
        } else {
            self.note_failure(reason);
        }
    }

    fn drop_conn(&mut self, i: usize) {
        let conn = &mut self.conns[i];
        if let Some(sock) = conn.sock.take() {
            self.epoll.delete(sock.as_raw_fd());
        }
        conn.st = St::Closed;
    }

    /// Opens `n` connections (at most `concurrency` handshakes at a time), serving
    /// messages as they come, until all are open or failed, or `deadline`.
    fn connect_all<F: FnMut(usize, &[u8], u64)>(
        &mut self,
        n: usize,
        concurrency: usize,
        deadline: Instant,
        on: &mut F,
    ) -> Result<(), String> {
        while self.open + self.failed + self.closed_after_open < n && Instant::now() < deadline {
            self.in_flight
                .retain(|&i| matches!(self.conns[i].st, St::Connecting | St::Handshake));
            while self.in_flight.len() < concurrency.max(1) && self.conns.len() < n {
                self.start();
            }
            let now = Instant::now();
            let expired: Vec<usize> = self
                .in_flight
                .iter()
                .copied()
                .filter(|&i| now - self.conns[i].started > HANDSHAKE_TIMEOUT)
                .collect();
            for i in expired {
                self.fail(i, "handshake timed out".into());
            }
            self.poll(Duration::from_millis(50), on)?;
        }
        Ok(())
    }

    /// Waits up to `timeout` for events and serves them.
    fn poll<F: FnMut(usize, &[u8], u64)>(
        &mut self,
        timeout: Duration,
        on: &mut F,
    ) -> Result<(), String> {
        let mut events = std::mem::take(&mut self.events);
        self.epoll
            .wait(timeout, &mut events)
            .map_err(|e| format!("epoll_wait: {e}"))?;
        for &(token, ev) in &events {
            self.serve(token as usize, ev, on);
        }
        self.events = events;
        Ok(())
    }

    fn serve<F: FnMut(usize, &[u8], u64)>(&mut self, i: usize, ev: u32, on: &mut F) {
        match self.conns[i].st {
            St::Closed => {}
            St::Connecting => {
                let err = match self.conns[i].sock.as_ref().map(|s| s.take_error()) {
                    Some(Ok(None)) => None,
                    Some(Ok(Some(e))) | Some(Err(e)) => Some(e.to_string()),
                    None => Some("no socket".into()),
                };
                if let Some(err) = err {
                    return self.fail(i, format!("connect: {err}"));
                }
                if ev & sys::OUT == 0 {
                    return;
                }
                self.conns[i].st = St::Handshake;
                self.send_request(i);
            }
            St::Handshake => {
                if ev & sys::OUT != 0 && !self.conns[i].req.is_empty() {
                    self.send_request(i);
                }
                if ev & (sys::IN | sys::ERR) != 0 {
                    self.read_handshake(i, on);
                }
            }
            St::Open => {
                if ev & sys::OUT != 0 {
                    self.flush(i);
                }
                if ev & (sys::IN | sys::ERR) != 0 {
                    self.read_open(i, on);
                }
            }
        }
    }

    fn send_request(&mut self, i: usize) {
        let conn = &mut self.conns[i];
        let Some(sock) = conn.sock.as_mut() else {
            return;
        };
        match sock.write(&conn.req) {
            Ok(n) => {
                conn.req.drain(..n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return self.fail(i, format!("send handshake: {e}")),
        }
        let events = if conn.req.is_empty() {
            sys::IN
        } else {
            sys::IN | sys::OUT
        };
        let fd = sock.as_raw_fd();
        if let Err(e) = self.epoll.modify(fd, i as u64, events) {
            self.fail(i, format!("epoll: {e}"));
        }
    }

    fn read_handshake<F: FnMut(usize, &[u8], u64)>(&mut self, i: usize, on: &mut F) {
        let conn = &mut self.conns[i];
        let Some(sock) = conn.sock.as_mut() else {
            return;
        };
        match sock.read(&mut self.scratch) {
            Ok(0) => return self.fail(i, "closed during the handshake".into()),
            Ok(n) => conn.head.extend_from_slice(&self.scratch[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) => return self.fail(i, format!("handshake: {e}")),
        }
        match check_handshake_response(&conn.head, &conn.key) {
            Ok(None) => {}
            Ok(Some(used)) => {
                conn.st = St::Open;
                let rest = conn.head.split_off(used);
                conn.head = Vec::new();
                self.open += 1;
                if !rest.is_empty() {
                    self.deliver(i, &rest, on);
                }
            }
            Err(e) => self.fail(i, e),
        }
    }

    fn read_open<F: FnMut(usize, &[u8], u64)>(&mut self, i: usize, on: &mut F) {
        let mut scratch = std::mem::take(&mut self.scratch);
        for _ in 0..4 {
            let Some(sock) = self.conns[i].sock.as_mut() else {
                break;
            };
            match sock.read(&mut scratch) {
                Ok(0) => {
                    self.fail(i, "closed".into());
                    break;
                }
                Ok(n) => {
                    self.deliver(i, &scratch[..n], on);
                    if n < scratch.len() {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.fail(i, format!("read: {e}"));
                    break;
                }
            }
        }
        self.scratch = scratch;
    }

    fn deliver<F: FnMut(usize, &[u8], u64)>(&mut self, i: usize, data: &[u8], on: &mut F) {
        let now_us = sys::realtime_micros();
        let mut pings: Vec<Vec<u8>> = Vec::new();
        let mut close: Option<(u16, String)> = None;
        let conn = &mut self.conns[i];
        let parsed = conn.parser.feed(data, &mut |op, payload| match op {
            OP_TEXT | OP_BINARY => on(i, payload, now_us),
            OP_PING => pings.push(payload.to_vec()),
            OP_CLOSE => {
                let code = if payload.len() >= 2 {
                    u16::from_be_bytes([payload[0], payload[1]])
                } else {
                    1005
                };
                close = Some((code, crate::client::close_text(payload)));
            }
            _ => {}
        });
        if let Err(e) = parsed {
            return self.fail(i, e);
        }
        for ping in pings {
            let mut frame = Vec::new();
            client_frame(0xA, &ping, &mut frame);
            self.send(i, &frame);
        }
        if let Some((code, reason)) = close {
            self.conns[i].close_code = Some(code);
            self.conns[i].close_reason = Some(reason.clone());
            self.fail(i, format!("closed by the server ({reason})"));
        }
    }

    /// Queues `bytes` on connection `i` and writes what the socket takes.
    fn send(&mut self, i: usize, bytes: &[u8]) {
        self.conns[i].out.extend_from_slice(bytes);
        self.flush(i);
    }

    fn flush(&mut self, i: usize) {
        let conn = &mut self.conns[i];
        let Some(sock) = conn.sock.as_mut() else {
            return;
        };
        let had = !conn.out.is_empty();
        while !conn.out.is_empty() {
            match sock.write(&conn.out) {
                Ok(n) => {
                    conn.out.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.fail(i, format!("write: {e}")),
            }
        }
        if had || !conn.out.is_empty() {
            let events = if conn.out.is_empty() {
                sys::IN
            } else {
                sys::IN | sys::OUT
            };
            let fd = sock.as_raw_fd();
            if let Err(e) = self.epoll.modify(fd, i as u64, events) {
                self.fail(i, format!("epoll: {e}"));
            }
        }
    }

    fn send_text(&mut self, i: usize, text: &str) {
        let mut frame = Vec::new();
        client_frame(OP_TEXT, text.as_bytes(), &mut frame);
        self.send(i, &frame);
    }

    fn failures_json(&self) -> Value {
        let mut top: Vec<(&String, &usize)> = self.failures.iter().collect();
        top.sort_by(|a, b| b.1.cmp(a.1));
        json!(
            top.iter()
                .take(5)
                .map(|(k, v)| json!({"reason": k, "count": v}))
                .collect::<Vec<_>>()
        )
    }
}

/// What the fanout clients received.
struct Tally {
    proto: Proto,
    want: u64,
    lines: Vec<u64>,
    done_at: Vec<Option<Instant>>,
    delivered: u64,
    bytes: u64,
    done: usize,
    seen_running: Vec<bool>,
    lat: Vec<u32>,
}

impl Tally {
    fn on(&mut self, i: usize, msg: &[u8], now_us: u64) {
        if let Some((_, ts)) = self.proto.line_of(msg).and_then(parse_emit_line) {
            self.bytes += msg.len() as u64;
            self.lines[i] += 1;
            self.delivered += 1;
            if self.lat.len() < self.lat.capacity() {
                self.lat
                    .push(now_us.saturating_sub(ts).min(u32::MAX as u64) as u32);
            }
            if self.lines[i] == self.want {
                self.done_at[i] = Some(Instant::now());
                self.done += 1;
            }
        } else if self.proto == Proto::Hub
            && !self.seen_running[i]
            && crate::client::find(msg, b"\"status\":\"running\"").is_some()
        {
            self.seen_running[i] = true;
        }
    }
}

pub fn fanout(a: &FanoutArgs) -> Result<Value, String> {
    sys::raise_fd_limit();
    let url = WsUrl::parse(&a.url)?.with_token(a.token.as_deref());
    let deadline = Instant::now() + Duration::from_secs_f64(a.timeout);
    let go_each = a.go_each.unwrap_or(a.proto == Proto::Raw);
    let cpu0 = sys::self_cpu_seconds();
    let mut pool = Pool::new(url).map_err(|e| e.to_string())?;
    let c = a.clients;
    let mut t = Tally {
        proto: a.proto,
        want: a.lines,
        lines: vec![0; c],
        done_at: vec![None; c],
        delivered: 0,
        bytes: 0,
        done: 0,
        seen_running: vec![false; c],
        lat: Vec::with_capacity((c as u64 * a.lines).min(50_000_000) as usize),
    };

    let t_connect = Instant::now();
    pool.connect_all(c, a.concurrency, deadline, &mut |i, m, now| t.on(i, m, now))?;
    let connect_secs = t_connect.elapsed().as_secs_f64();
    if pool.open == 0 {
        return Err(format!("no connection opened: {}", pool.failures_json()));
    }
    // Let replayed status events arrive (workerhub with ?since=0) and the server settle.
    let settle = Instant::now() + Duration::from_millis(300);
    while Instant::now() < settle {
        pool.poll(Duration::from_millis(20), &mut |i, m, now| t.on(i, m, now))?;
    }
    let open_at_go = pool.open;

    let t0 = Instant::now();
    let cpu_go = sys::self_cpu_seconds();
    if go_each {
        for i in 0..pool.conns.len() {
            if pool.conns[i].st == St::Open {
                pool.send_text(i, &a.proto.message("go"));
            }
        }
    } else if let Some(i) = pool.conns.iter().position(|c| c.st == St::Open) {
        pool.send_text(i, &a.proto.message("go"));
    }
    let mut last_progress = (0u64, Instant::now());
    let mut last_check = Instant::now();
    while Instant::now() < deadline && t.done < open_at_go {
        pool.poll(Duration::from_millis(50), &mut |i, m, now| t.on(i, m, now))?;
        if last_check.elapsed() > Duration::from_millis(100) {
            last_check = Instant::now();
            let pending = pool
                .conns
                .iter()
                .enumerate()
                .any(|(i, c)| c.st == St::Open && t.lines[i] < t.want);
            if !pending {
                break;
            }
            // Stop when nothing has arrived for 10 s: the rest is not coming.
            if t.delivered != last_progress.0 {
                last_progress = (t.delivered, Instant::now());
            } else if last_progress.1.elapsed() > Duration::from_secs(10) {
                break;
            }
        }
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let cpu_end = sys::self_cpu_seconds();
    let completions: Vec<f64> = t
        .done_at
        .iter()
        .flatten()
        .map(|d| (*d - t0).as_secs_f64())
        .collect();
    let complete = completions.len();
    let slowest = if complete == open_at_go {
        completions.iter().cloned().fold(0.0, f64::max)
    } else {
        elapsed
    };
    let fastest = completions.iter().cloned().fold(f64::INFINITY, f64::min);
    let mut close_codes: BTreeMap<String, usize> = BTreeMap::new();
    for conn in pool.conns.iter().filter(|c| c.close_code.is_some()) {
        let reason = conn.close_reason.as_deref().unwrap_or("");
        // Resume hints (`?since=N`) differ per client; group by the rest.
        let reason = reason.split("?since=").next().unwrap_or(reason);
        *close_codes.entry(reason.to_string()).or_default() += 1;
    }
    let rate = |n: u64| {
        if slowest > 0.0 {
            n as f64 / slowest
        } else {
            0.0
        }
    };
    Ok(json!({
        "scenario": "fanout",
        "clients": c,
        "connected": open_at_go,
        "failed": pool.failed,
        "failures": pool.failures_json(),
        "lines": t.want,
        "complete_clients": complete,
        "delivered": t.delivered,
        "expected": t.want * open_at_go as u64,
        "bytes": t.bytes,
        "connect_secs": connect_secs,
        "slowest_ms": slowest * 1000.0,
        "fastest_ms": if complete > 0 { fastest * 1000.0 } else { 0.0 },
        "events_per_sec": rate(t.delivered),
        "mb_per_sec": rate(t.bytes) / 1e6,
        "latency_p50_ms": percentile(&mut t.lat, 50.0) as f64 / 1000.0,
        "latency_p99_ms": percentile(&mut t.lat, 99.0) as f64 / 1000.0,
        "latency_max_ms": percentile(&mut t.lat, 100.0) as f64 / 1000.0,
        "close_codes": close_codes,
        "client_cpu_secs_delivery": cpu_end - cpu_go,
        "client_cpu_secs_total": cpu_end - cpu0,
        "delivery_secs": elapsed,
        "hub_running_seen": t.seen_running.iter().filter(|s| **s).count(),
    }))
}

pub fn conns(a: &ConnsArgs) -> Result<Value, String> {
    let fd_limit = sys::raise_fd_limit();
    let url = WsUrl::parse(&a.url)?.with_token(a.token.as_deref());
    let deadline = Instant::now() + Duration::from_secs_f64(a.timeout);
    let mut pool = Pool::new(url).map_err(|e| e.to_string())?;
    let mut messages = 0u64;

    let before = a.pid.and_then(|p| procfs::tree(p, true));
    let t_connect = Instant::now();
    pool.connect_all(a.clients, a.concurrency, deadline, &mut |_, _, _| {
        messages += 1
    })?;
    let connect_secs = t_connect.elapsed().as_secs_f64();
    let established = pool.open + pool.closed_after_open;

    // Settle, then hold every connection idle while the server's CPU is measured.
    let settle = Instant::now() + Duration::from_secs(1);
    while Instant::now() < settle {
        pool.poll(Duration::from_millis(100), &mut |_, _, _| messages += 1)?;
    }
    let idle_msgs_before = messages;
    let cpu0 = a.pid.and_then(|p| procfs::tree(p, false));
    let t_idle = Instant::now();
    let idle = Duration::from_secs_f64(a.idle_secs);
    while t_idle.elapsed() < idle {
        pool.poll(idle.saturating_sub(t_idle.elapsed()), &mut |_, _, _| {
            messages += 1
        })?;
    }
    let idle_secs = t_idle.elapsed().as_secs_f64();
    let after = a.pid.and_then(|p| procfs::tree(p, true));
    let held = pool.open;

    let mut out = json!({
        "scenario": "conns",
        "clients": a.clients,
        "established": established,
        "held": held,
        "failed": pool.failed,
        "failures": pool.failures_json(),
        "connect_secs": connect_secs,
        "idle_secs": idle_secs,
        "idle_messages": messages - idle_msgs_before,
        "loadgen_fd_limit": fd_limit,
    });
    if let (Some(before), Some(cpu0), Some(after)) = (before, cpu0, after) {
        let ticks = procfs::cpu_ticks_between(&cpu0, &after);
        let cpu_pct = ticks as f64 / sys::clock_ticks() / idle_secs * 100.0;
        let map = out.as_object_mut().ok_or("not an object")?;
        map.insert("rss_mb".into(), json!(after.root.rss_kb as f64 / 1024.0));
        map.insert(
            "rss_before_mb".into(),
            json!(before.root.rss_kb as f64 / 1024.0),
        );
        map.insert("threads".into(), json!(after.root.threads));
        map.insert("tree_procs".into(), json!(after.procs));
        map.insert("tree_threads".into(), json!(after.threads));
        map.insert("tree_pss_mb".into(), json!(after.pss_kb as f64 / 1024.0));
        map.insert(
            "tree_pss_before_mb".into(),
            json!(before.pss_kb as f64 / 1024.0),
        );
        map.insert(
            "kb_per_conn".into(),
            json!(after.pss_kb.saturating_sub(before.pss_kb) as f64 / established.max(1) as f64),
        );
        map.insert("idle_cpu_pct".into(), json!(cpu_pct));
    }
    Ok(out)
}
