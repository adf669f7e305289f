//! The one-connection scenarios (`echo`, `stream`) and `http`.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::client::{Proto, Ws, WsUrl, parse_emit_line};
use crate::stats::percentile;

#[derive(clap::Args, Debug)]
pub struct EchoArgs {
    /// The WebSocket to drive, e.g. ws://127.0.0.1:7788/ws/ID (its program must be `cat`).
    #[arg(long)]
    pub url: String,
    #[arg(long, value_enum, default_value = "hub")]
    pub proto: Proto,
    /// Round trips measured.
    #[arg(long, default_value_t = 2000)]
    pub n: usize,
    /// Round trips before measuring.
    #[arg(long, default_value_t = 200)]
    pub warmup: usize,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 60.0)]
    pub timeout: f64,
    /// Access token, sent as `Authorization: Bearer TOKEN` (workerhub's default
    /// authentication).
    #[arg(long)]
    pub token: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct StreamArgs {
    /// The WebSocket to drive; its program must be `workerhub-bench emit --wait-go`. For
    /// workerhub use `?since=0` so the worker's `running` status is seen before `go`.
    #[arg(long)]
    pub url: String,
    #[arg(long, value_enum, default_value = "hub")]
    pub proto: Proto,
    /// Lines the program prints (its `--lines`).
    #[arg(long, default_value_t = 1_000_000)]
    pub lines: u64,
    #[arg(long, default_value_t = 60.0)]
    pub timeout: f64,
    /// Access token, sent as `Authorization: Bearer TOKEN` (workerhub's default
    /// authentication).
    #[arg(long)]
    pub token: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct HttpArgs {
    /// HOST:PORT of the server.
    #[arg(long)]
    pub addr: String,
    #[arg(long, default_value = "/api/workers")]
    pub path: String,
    /// Client threads, each with one keep-alive connection.
    #[arg(long, default_value_t = 4)]
    pub threads: usize,
    /// How long to send requests.
    #[arg(long, default_value_t = 2.0)]
    pub secs: f64,
    /// Access token, sent as `Authorization: Bearer TOKEN` (workerhub's default
    /// authentication).
    #[arg(long)]
    pub token: Option<String>,
}

fn us(d: u64) -> f64 {
    (d as f64 / 1000.0 * 10.0).round() / 10.0
}

pub fn echo(a: &EchoArgs) -> Result<Value, String> {
    let url = WsUrl::parse(&a.url)?.with_token(a.token.as_deref());
    let deadline = Instant::now() + Duration::from_secs_f64(a.timeout);
    let mut ws = Ws::connect(&url, Duration::from_secs(10))?;
    if a.proto == Proto::Hub {
        // Let the worker's status events (if any are replayed) pass first.
        let quiet = Instant::now() + Duration::from_millis(100);
        while ws.read_some(quiet, &mut |_, _| {})? {}
    }
    let mut samples: Vec<u64> = Vec::with_capacity(a.n);
    for i in 0..a.warmup + a.n {
        let payload = format!("e{i}");
        let message = a.proto.message(&payload);
        let t0 = Instant::now();
        ws.send_text(&message)?;
        let mut got = false;
        while !got {
            let read = ws.read_some(deadline, &mut |msg, _| {
                if a.proto.line_of(msg) == Some(payload.as_bytes()) {
                    got = true;
                }
            })?;
            if !read {
                return Err(format!("timed out waiting for echo {i}"));
            }
            if ws.closed && !got {
                return Err(format!(
                    "connection closed before echo {i}: {}",
                    ws.close_reason.as_deref().unwrap_or("no close frame")
                ));
            }
        }
        let rtt = t0.elapsed().as_nanos() as u64;
        if i >= a.warmup {
            samples.push(rtt);
        }
    }
    ws.close();
    let p50 = percentile(&mut samples, 50.0);
    let p99 = percentile(&mut samples, 99.0);
    let max = percentile(&mut samples, 100.0);
    Ok(json!({
        "scenario": "echo",
        "n": a.n,
        "p50_us": us(p50),
        "p99_us": us(p99),
        "max_us": us(max),
    }))
}

pub fn stream(a: &StreamArgs) -> Result<Value, String> {
    let url = WsUrl::parse(&a.url)?.with_token(a.token.as_deref());
    let deadline = Instant::now() + Duration::from_secs_f64(a.timeout);
    let mut ws = Ws::connect(&url, Duration::from_secs(10))?;
    if a.proto == Proto::Hub {
        // The worker takes messages once it runs: wait for its `running` status.
        let until = Instant::now() + Duration::from_secs(5);
        let mut running = false;
        while !running
            && ws.read_some(until, &mut |m, _| {
                running |= crate::client::find(m, b"\"status\":\"running\"").is_some()
            })?
        {}
    }
    let mut lines = 0u64;
    let mut bytes = 0u64;
    let mut out_of_order = 0u64;
    let mut lat: Vec<u32> = Vec::with_capacity(a.lines.min(50_000_000) as usize);
    let mut first: Option<Instant> = None;
    let t0 = Instant::now();
    ws.send_text(&a.proto.message("go"))?;
    while lines < a.lines && !ws.closed {
        let read = ws.read_some(deadline, &mut |msg, now_us| {
            bytes += msg.len() as u64;
            if let Some((seq, ts)) = a.proto.line_of(msg).and_then(parse_emit_line) {
                lines += 1;
                if seq != lines {
                    out_of_order += 1;
                }
                if lat.len() < lat.capacity() {
                    lat.push(now_us.saturating_sub(ts).min(u32::MAX as u64) as u32);
                }
            }
        })?;
        if first.is_none() && lines > 0 {
            first = Some(Instant::now());
        }
        if !read {
            break;
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    ws.close();
    if lines < a.lines {
        let why = match (&ws.close_reason, ws.closed) {
            (Some(reason), _) => format!("the server closed the connection: {reason}"),
            (None, true) => "the connection was closed".to_string(),
            (None, false) => "timed out".to_string(),
        };
        return Err(format!(
            "received {lines} of {} lines in {secs:.1}s: {why}",
            a.lines
        ));
    }
    Ok(json!({
        "scenario": "stream",
        "lines": lines,
        "bytes": bytes,
        "secs": secs,
        "events_per_sec": lines as f64 / secs,
        "mb_per_sec": bytes as f64 / secs / 1e6,
        "bytes_per_event": bytes as f64 / lines.max(1) as f64,
        "first_line_ms": first.map_or(0.0, |f| (f - t0).as_secs_f64() * 1000.0),
        "out_of_order": out_of_order,
        "latency_p50_ms": percentile(&mut lat, 50.0) as f64 / 1000.0,
        "latency_p99_ms": percentile(&mut lat, 99.0) as f64 / 1000.0,
    }))
}

/// Reads one HTTP/1.1 response; returns its status.
fn read_response(reader: &mut BufReader<&TcpStream>) -> io::Result<u16> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed"));
    }
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::other(format!("bad status line {line:?}")))?;
    let mut length = None;
    let mut chunked = false;
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed"));
        }
        let h = line.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.trim().eq_ignore_ascii_case("content-length") {
                length = v.trim().parse::<usize>().ok();
            } else if k.trim().eq_ignore_ascii_case("transfer-encoding")
                && v.to_ascii_lowercase().contains("chunked")
            {
                chunked = true;
            }
        }
    }
    if chunked {
        loop {
            line.clear();
            reader.read_line(&mut line)?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| io::Error::other("bad chunk size"))?;
            io::copy(&mut (&mut *reader).take(size as u64 + 2), &mut io::sink())?;
            if size == 0 {
                break;
            }
        }
    } else if let Some(n) = length {
        io::copy(&mut (&mut *reader).take(n as u64), &mut io::sink())?;
    }
    Ok(status)
}

pub fn http(a: &HttpArgs) -> Result<Value, String> {
    let addr: SocketAddr = a
        .addr
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {}: {e}", a.addr))?
        .next()
        .ok_or("no address")?;
    let auth = a
        .token
        .as_ref()
        .map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nAccept: application/json\r\n{auth}\r\n",
        a.path, a.addr
    )
    .into_bytes();
    let secs = Duration::from_secs_f64(a.secs);
    let start = Instant::now();
    let handles: Vec<_> = (0..a.threads.max(1))
        .map(|_| {
            let request = request.clone();
            std::thread::spawn(move || {
                let deadline = start + secs;
                let mut samples: Vec<u64> = Vec::new();
                let mut errors = 0u64;
                let mut last_error = String::new();
                while Instant::now() < deadline {
                    let sock = match TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
                        Ok(s) => s,
                        Err(e) => {
                            errors += 1;
                            last_error = e.to_string();
                            std::thread::sleep(Duration::from_millis(10));
                            continue;
                        }
                    };
                    let _ = sock.set_nodelay(true);
                    let _ = sock.set_read_timeout(Some(Duration::from_secs(10)));
                    let _ = sock.set_write_timeout(Some(Duration::from_secs(10)));
                    let mut reader = BufReader::with_capacity(64 * 1024, &sock);
                    while Instant::now() < deadline {
                        let t0 = Instant::now();
                        let result = (&sock)
                            .write_all(&request)
                            .and_then(|_| read_response(&mut reader));
                        match result {
                            Ok(200) => samples.push(t0.elapsed().as_nanos() as u64),
                            Ok(status) => {
                                errors += 1;
                                last_error = format!("status {status}");
                            }
                            Err(e) => {
                                errors += 1;
                                last_error = e.to_string();
                                break;
                            }
                        }
                    }
                }
                (samples, errors, last_error)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut errors = 0;
    let mut last_error = String::new();
    for h in handles {
        let (s, e, l) = h.join().map_err(|_| "a client thread panicked")?;
        all.extend(s);
        errors += e;
        if !l.is_empty() {
            last_error = l;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let n = all.len();
    Ok(json!({
        "scenario": "http",
        "requests": n,
        "errors": errors,
        "last_error": last_error,
        "threads": a.threads,
        "req_per_sec": n as f64 / elapsed,
        "p50_us": us(percentile(&mut all, 50.0)),
        "p99_us": us(percentile(&mut all, 99.0)),
    }))
}
