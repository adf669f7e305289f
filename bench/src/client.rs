//! A lean WebSocket client: the handshake, an incremental frame parser that can run on
//! thousands of non-blocking sockets from one thread, masked client frames, and a small
//! blocking client for the one-connection scenarios.
//!
//! The load generator shares two cores with the server it measures, so it parses frames
//! itself (no allocation per message, no JSON parsing of events: the emitter's line is
//! found by a byte search) instead of running a full WebSocket stack per connection.
//! tungstenite provides the handshake keys. And a tiny HTTP client for the REST calls
//! a scenario needs (creating a worker).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

pub const OP_CONT: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;

/// The largest frame or message accepted.
const MAX_MESSAGE: usize = 64 << 20;

/// How the server talks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Proto {
    /// workerhub's `/ws/{id}`: send `{"type":"message","content":...}`, receive JSON
    /// events whose `content.text` is a line the program printed.
    Hub,
    /// websocketd and the reference: each message is one line, both ways.
    Raw,
}

impl Proto {
    /// The text message that hands `line` to the program's stdin.
    pub fn message(self, line: &str) -> String {
        match self {
            Proto::Hub => serde_json::json!({"type": "message", "content": line}).to_string(),
            Proto::Raw => line.to_string(),
        }
    }

    /// The line the program printed, if `msg` carries one. For workerhub, the text of an
    /// `output` event (the only events with a `"text"` field); lines carry no escapes.
    pub fn line_of(self, msg: &[u8]) -> Option<&[u8]> {
        match self {
            Proto::Raw => {
                let msg = msg.strip_suffix(b"\n").unwrap_or(msg);
                Some(msg.strip_suffix(b"\r").unwrap_or(msg))
            }
            Proto::Hub => {
                const KEY: &[u8] = b"\"text\":\"";
                let at = find(msg, KEY)? + KEY.len();
                let rest = &msg[at..];
                let end = rest.iter().position(|&b| b == b'"')?;
                Some(&rest[..end])
            }
        }
    }
}

/// Position of `needle` in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let first = *needle.first()?;
    let mut from = 0;
    while from + needle.len() <= hay.len() {
        let at = from
            + hay[from..=hay.len() - needle.len()]
                .iter()
                .position(|&b| b == first)?;
        if &hay[at..at + needle.len()] == needle {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// An emitter line, `SEQ TIMESTAMP_MICROS`.
pub fn parse_emit_line(line: &[u8]) -> Option<(u64, u64)> {
    let space = line.iter().position(|&b| b == b' ')?;
    Some((parse_u64(&line[..space])?, parse_u64(&line[space + 1..])?))
}

fn parse_u64(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    let mut n = 0u64;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u64::from(d - b'0');
    }
    Some(n)
}

/// `ws://HOST:PORT/PATH`, resolved.
#[derive(Clone, Debug)]
pub struct WsUrl {
    /// `HOST:PORT`, for the Host header.
    pub host: String,
    pub addr: SocketAddr,
    /// The path and query.
    pub path: String,
    /// Sent as `Authorization: Bearer TOKEN` (workerhub with authentication).
    pub token: Option<String>,
}

impl WsUrl {
    pub fn parse(url: &str) -> Result<WsUrl, String> {
        let rest = url
            .strip_prefix("ws://")
            .ok_or_else(|| format!("`{url}` is not a ws:// URL"))?;
        let (host, path) = match rest.find('/') {
            Some(at) => (&rest[..at], &rest[at..]),
            None => (rest, "/"),
        };
        let addr = host
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve `{host}`: {e}"))?
            .next()
            .ok_or_else(|| format!("`{host}` has no address"))?;
        Ok(WsUrl {
            host: host.to_string(),
            addr,
            path: path.to_string(),
            token: None,
        })
    }

    /// The same URL, presenting `token`.
    pub fn with_token(mut self, token: Option<&str>) -> WsUrl {
        self.token = token.map(str::to_string);
        self
    }
}

/// The opening handshake request and the key whose answer to expect.
pub fn handshake_request(url: &WsUrl) -> (Vec<u8>, String) {
    let key = tungstenite::handshake::client::generate_key();
    let auth = url
        .token
        .as_ref()
        .map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{auth}\r\n",
        url.path, url.host
    );
    (request.into_bytes(), key)
}

/// Checks the server's answer to the handshake. `Ok(None)`: the head is not complete yet;
/// `Ok(Some(n))`: the head is `n` bytes long and says 101 with the right accept key.
pub fn check_handshake_response(buf: &[u8], key: &str) -> Result<Option<usize>, String> {
    let Some(end) = find(buf, b"\r\n\r\n") else {
        if buf.len() > 16 * 1024 {
            return Err("handshake answer head over 16 KiB".into());
        }
        return Ok(None);
    };
    let head = String::from_utf8_lossy(&buf[..end]);
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or("");
    if status.split_whitespace().nth(1) != Some("101") {
        let body = String::from_utf8_lossy(&buf[end + 4..]);
        return Err(format!(
            "handshake refused: {status} {}",
            body.chars().take(200).collect::<String>()
        ));
    }
    let want = tungstenite::handshake::derive_accept_key(key.as_bytes());
    let accepted = lines.any(|line| {
        line.split_once(':').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("sec-websocket-accept") && v.trim() == want
        })
    });
    if !accepted {
        return Err("handshake answer without the right Sec-WebSocket-Accept".into());
    }
    Ok(Some(end + 4))
}

/// Appends a masked client frame (FIN set) to `out`.
pub fn client_frame(op: u8, payload: &[u8], out: &mut Vec<u8>) {
    out.push(0x80 | op);
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= u16::MAX as usize {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    // Servers only need a mask to be present; a benchmark has nothing to hide from
    // intermediaries, so the key is fixed.
    let mask = [0x5a, 0x1c, 0xe3, 0x97];
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i & 3]));
}

/// Incremental frame parser for one connection. Bytes that do not make a whole frame
/// yet are kept (normally a few bytes per connection).
#[derive(Default)]
pub struct Parser {
    pending: Vec<u8>,
    frag: Vec<u8>,
    frag_op: u8,
}

impl Parser {
    /// Parses `data` (after what was pending) and calls `on(opcode, payload)` for every
    /// whole message and control frame.
    pub fn feed<F: FnMut(u8, &[u8])>(&mut self, data: &[u8], on: &mut F) -> Result<(), String> {
        if self.pending.is_empty() {
            let used = parse_frames(data, &mut self.frag, &mut self.frag_op, on)?;
            self.pending.extend_from_slice(&data[used..]);
        } else {
            self.pending.extend_from_slice(data);
            let pending = std::mem::take(&mut self.pending);
            let used = parse_frames(&pending, &mut self.frag, &mut self.frag_op, on);
            self.pending = pending;
            self.pending.drain(..used?);
        }
        Ok(())
    }
}

fn parse_frames<F: FnMut(u8, &[u8])>(
    buf: &[u8],
    frag: &mut Vec<u8>,
    frag_op: &mut u8,
    on: &mut F,
) -> Result<usize, String> {
    let mut pos = 0;
    loop {
        let b = &buf[pos..];
        if b.len() < 2 {
            return Ok(pos);
        }
        let fin = b[0] & 0x80 != 0;
        let op = b[0] & 0x0f;
        let masked = b[1] & 0x80 != 0;
        let mut len = u64::from(b[1] & 0x7f);
        let mut head = 2;
        if len == 126 {
            if b.len() < 4 {
                return Ok(pos);
            }
            len = u64::from(u16::from_be_bytes([b[2], b[3]]));
            head = 4;
        } else if len == 127 {
            if b.len() < 10 {
                return Ok(pos);
            }
            let mut eight = [0u8; 8];
            eight.copy_from_slice(&b[2..10]);
            len = u64::from_be_bytes(eight);
            head = 10;
        }
        if len > MAX_MESSAGE as u64 {
            return Err(format!("frame of {len} bytes"));
        }
        let mut mask = None;
        if masked {
            if b.len() < head + 4 {
                return Ok(pos);
            }
            mask = Some([b[head], b[head + 1], b[head + 2], b[head + 3]]);
            head += 4;
        }
        let total = head + len as usize;
        if b.len() < total {
            return Ok(pos);
        }
        let unmasked;
        let payload: &[u8] = match mask {
            None => &b[head..total],
            Some(m) => {
                unmasked = b[head..total]
                    .iter()
                    .enumerate()
                    .map(|(i, x)| x ^ m[i & 3])
                    .collect::<Vec<u8>>();
                &unmasked
            }
        };
        match op {
            OP_CONT => {
                if frag.len() + payload.len() > MAX_MESSAGE {
                    return Err("message too large".into());
                }
                frag.extend_from_slice(payload);
                if fin {
                    on(*frag_op, frag);
                    frag.clear();
                }
            }
            OP_TEXT | OP_BINARY if !fin => {
                *frag_op = op;
                frag.clear();
                frag.extend_from_slice(payload);
            }
            _ => on(op, payload),
        }
        pos += total;
    }
}

/// A close frame's payload as `CODE reason` (`1005` when it has no code).
pub fn close_text(payload: &[u8]) -> String {
    if payload.len() < 2 {
        return "1005".into();
    }
    let code = u16::from_be_bytes([payload[0], payload[1]]);
    let reason = String::from_utf8_lossy(&payload[2..]);
    if reason.is_empty() {
        code.to_string()
    } else {
        format!("{code} {reason}")
    }
}

/// A tiny HTTP/1.1 client for the REST API (one request per connection, JSON both
/// ways): the status and the body (`Null` when it is not JSON). `addr` is `HOST:PORT`.
pub fn http(
    addr: &str,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
) -> Result<(u16, serde_json::Value), String> {
    let mut sock = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         {auth}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    sock.write_all(head.as_bytes())
        .and_then(|_| sock.write_all(body.as_bytes()))
        .map_err(|e| e.to_string())?;
    let mut resp = Vec::new();
    sock.read_to_end(&mut resp).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&resp);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let json = text
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str(b.trim()).ok())
        .unwrap_or(serde_json::Value::Null);
    Ok((status, json))
}

/// A blocking client for the scenarios with one connection per thread.
pub struct Ws {
    pub sock: TcpStream,
    parser: Parser,
    scratch: Vec<u8>,
    early: Vec<u8>,
    out: Vec<u8>,
    pub closed: bool,
    /// The server's close frame, as `CODE reason`.
    pub close_reason: Option<String>,
}

impl Ws {
    /// Connects and completes the handshake within `timeout`.
    pub fn connect(url: &WsUrl, timeout: Duration) -> Result<Ws, String> {
        let deadline = Instant::now() + timeout;
        let mut sock = TcpStream::connect_timeout(&url.addr, timeout)
            .map_err(|e| format!("connect {}: {e}", url.addr))?;
        sock.set_nodelay(true).map_err(|e| e.to_string())?;
        let (request, key) = handshake_request(url);
        sock.set_write_timeout(Some(timeout))
            .map_err(|e| e.to_string())?;
        sock.write_all(&request)
            .map_err(|e| format!("send handshake: {e}"))?;
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        let used = loop {
            if let Some(n) = check_handshake_response(&head, &key)? {
                break n;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err("handshake timed out".into());
            }
            sock.set_read_timeout(Some(left))
                .map_err(|e| e.to_string())?;
            match sock.read(&mut buf) {
                Ok(0) => return Err("connection closed during the handshake".into()),
                Ok(n) => head.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("handshake: {e}")),
            }
        };
        Ok(Ws {
            sock,
            parser: Parser::default(),
            scratch: vec![0; 256 * 1024],
            early: head[used..].to_vec(),
            out: Vec::new(),
            closed: false,
            close_reason: None,
        })
    }

    pub fn send_text(&mut self, text: &str) -> Result<(), String> {
        self.out.clear();
        client_frame(OP_TEXT, text.as_bytes(), &mut self.out);
        self.sock
            .write_all(&self.out)
            .map_err(|e| format!("send: {e}"))
    }

    /// One read (waiting at most until `deadline`); calls `on` for each text or binary
    /// message, with the wall-clock time (µs) at which the read returned. Answers pings; a close frame or EOF sets `closed`. Returns false when the
    /// deadline passed with nothing read.
    pub fn read_some<F: FnMut(&[u8], u64)>(
        &mut self,
        deadline: Instant,
        on: &mut F,
    ) -> Result<bool, String> {
        let early;
        let data: &[u8] = if !self.early.is_empty() {
            early = std::mem::take(&mut self.early);
            &early
        } else {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(false);
            }
            self.sock
                .set_read_timeout(Some(left))
                .map_err(|e| e.to_string())?;
            match self.sock.read(&mut self.scratch) {
                Ok(0) => {
                    self.closed = true;
                    return Ok(true);
                }
                Ok(n) => &self.scratch[..n],
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(false);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(true),
                Err(e) => return Err(format!("read: {e}")),
            }
        };
        let now_us = crate::sys::realtime_micros();
        let mut pings: Vec<Vec<u8>> = Vec::new();
        let mut closed: Option<String> = None;
        self.parser.feed(data, &mut |op, payload| match op {
            OP_TEXT | OP_BINARY => on(payload, now_us),
            OP_PING => pings.push(payload.to_vec()),
            OP_CLOSE => closed = Some(close_text(payload)),
            _ => {}
        })?;
        for ping in pings {
            self.out.clear();
            client_frame(0xA, &ping, &mut self.out);
            let _ = self.sock.write_all(&self.out);
        }
        if let Some(reason) = closed {
            self.closed = true;
            self.close_reason = Some(reason);
        }
        Ok(true)
    }

    /// Sends a close frame (best effort).
    pub fn close(&mut self) {
        self.out.clear();
        client_frame(OP_CLOSE, &1000u16.to_be_bytes(), &mut self.out);
        let _ = self.sock.write_all(&self.out);
        let _ = self.sock.shutdown(std::net::Shutdown::Write);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_anywhere_are_reassembled() {
        let mut wire = Vec::new();
        for text in ["a", &"x".repeat(300), &"y".repeat(70_000)] {
            wire.push(0x81);
            let len = text.len();
            if len < 126 {
                wire.push(len as u8);
            } else if len < 65536 {
                wire.push(126);
                wire.extend_from_slice(&(len as u16).to_be_bytes());
            } else {
                wire.push(127);
                wire.extend_from_slice(&(len as u64).to_be_bytes());
            }
            wire.extend_from_slice(text.as_bytes());
        }
        for step in [1, 7, 1000, wire.len()] {
            let mut p = Parser::default();
            let mut got = Vec::new();
            for chunk in wire.chunks(step) {
                p.feed(chunk, &mut |op, m| got.push((op, m.len()))).unwrap();
            }
            assert_eq!(got, vec![(1, 1), (1, 300), (1, 70_000)]);
        }
    }

    #[test]
    fn lines_are_found_in_both_protocols() {
        let ev = br#"{"seq":5,"type":"output","timestamp":"T","content":{"stream":"stdout","text":"12 345"}}"#;
        assert_eq!(Proto::Hub.line_of(ev), Some(&b"12 345"[..]));
        assert_eq!(
            Proto::Hub.line_of(br#"{"type":"user_message","content":"go"}"#),
            None
        );
        assert_eq!(parse_emit_line(b"12 345"), Some((12, 345)));
        assert_eq!(parse_emit_line(b"12"), None);
        assert_eq!(Proto::Raw.line_of(b"7 8\n"), Some(&b"7 8"[..]));
    }
}
