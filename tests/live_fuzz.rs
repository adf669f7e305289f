//! A live fuzzer: random and mutated HTTP requests and WebSocket frames (invalid
//! opcodes, fragments, huge lengths, unmasked frames, invalid UTF-8, deep JSON) sent to a
//! running server, which must then still serve a normal client. `LIVE_FUZZ_CASES` sets
//! how many (default 1,500; `make fuzz` runs more).

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::json;
use support::server::Workerhub;

/// A small deterministic generator (xorshift), so a failure can be replayed by seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// Up to `max` random bytes.
    fn bytes(&mut self, max: u64) -> Vec<u8> {
        let n = self.below(max) as usize;
        (0..n).map(|_| self.next() as u8).collect()
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

fn cases() -> u64 {
    std::env::var("LIVE_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_500)
}

/// Sends bytes and reads whatever comes back, within a bound.
fn poke(addr: &str, bytes: &[u8]) {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(40)));
    let _ = s.set_write_timeout(Some(Duration::from_millis(200)));
    let _ = s.write_all(bytes);
    let mut buf = [0u8; 4096];
    let _ = s.read(&mut buf);
}

fn random_request(rng: &mut Rng, token: &str, worker: &str) -> Vec<u8> {
    let method = rng.pick(&[
        "GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "BREW", "", "G\0T",
    ]);
    let paths = [
        "/",
        "/api/workers",
        "/api/workers/x",
        "/api/exec",
        "/api/tasks",
        "/ws",
        "/metrics",
        "/api/status",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/api/workers/%zz",
        "/api/workers/../../x",
        "//",
        "/api/ai-clis?x=%ff",
        "/api/workers?since=-1&limit=99999999999999999999",
    ];
    let mut path = rng.pick(&paths).to_string();
    if rng.below(4) == 0 {
        path = format!("/api/workers/{worker}/events?since={}", rng.next());
    }
    if rng.below(5) == 0 {
        path.push_str(&"A".repeat(rng.below(20_000) as usize));
    }
    let version = rng.pick(&["HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/9", ""]);
    let mut req = format!("{method} {path} {version}\r\n").into_bytes();
    if rng.below(3) > 0 {
        req.extend_from_slice(format!("Authorization: Bearer {token}\r\n").as_bytes());
    }
    for _ in 0..rng.below(6) {
        let header = rng.pick(&[
            "Host: 127.0.0.1",
            "Host: evil.example",
            "Content-Type: application/json",
            "Content-Type: text/plain",
            "Content-Length: 5",
            "Content-Length: -1",
            "Content-Length: 99999999999",
            "Transfer-Encoding: chunked",
            "Expect: 100-continue",
            "Connection: upgrade",
            "Upgrade: websocket",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
            "Sec-WebSocket-Version: 13",
            "Origin: http://evil.example",
            "Cookie: workerhub_token=nope",
            "X-Long: ",
        ]);
        req.extend_from_slice(header.as_bytes());
        if header == "X-Long: " {
            req.extend(std::iter::repeat_n(b'x', rng.below(100_000) as usize));
        }
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"\r\n");
    match rng.below(4) {
        0 => req.extend(rng.bytes(3000)),
        1 => req.extend_from_slice(
            json!({"project_path": "/tmp", "command": ["true"], "argv": ["true"]})
                .to_string()
                .as_bytes(),
        ),
        2 => req.extend_from_slice(&b"[".repeat(rng.below(100_000) as usize)),
        _ => {}
    }
    if rng.below(6) == 0 {
        // Cut anywhere, or pure noise.
        let cut = rng.below(req.len() as u64 + 1) as usize;
        req.truncate(cut);
    }
    if rng.below(8) == 0 {
        req = rng.bytes(2000);
    }
    req
}

/// One WebSocket frame as a client would (or would not) send it.
fn frame(rng: &mut Rng) -> Vec<u8> {
    let opcode = match rng.below(8) {
        0 => rng.below(16) as u8, // any, including reserved ones
        1 => 0x0,                 // a continuation out of nowhere
        2 => 0x9,                 // ping
        3 => 0x8,                 // close
        4 => 0x2,                 // binary
        _ => 0x1,                 // text
    };
    let fin = rng.below(4) != 0;
    let payload: Vec<u8> = match rng.below(6) {
        0 => rng.bytes(300),
        1 => {
            let depth = rng.below(50_000) as usize;
            format!("{}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes()
        }
        2 => vec![0xff, 0xfe, 0xc3, 0x28],
        3 => json!({"id": "x", "type": "command:execute", "payload": {"argv": ["true"]}})
            .to_string()
            .into_bytes(),
        4 => json!({"type": "message", "content": "fuzz"})
            .to_string()
            .into_bytes(),
        _ => Vec::new(),
    };
    // Reserved bits set now and then, which no extension allows.
    let rsv = if rng.below(6) == 0 {
        (rng.below(8) as u8) << 4
    } else {
        0
    };
    let mut out = vec![if fin { 0x80 } else { 0 } | rsv | opcode];
    let masked = rng.below(10) != 0;
    let len = payload.len();
    let huge = rng.below(12) == 0;
    let mask_bit = if masked { 0x80 } else { 0 };
    if huge {
        out.push(mask_bit | 127);
        out.extend_from_slice(&(u64::MAX >> rng.below(40)).to_be_bytes());
    } else if len < 126 {
        out.push(mask_bit | len as u8);
    } else if len < 65536 {
        out.push(mask_bit | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(mask_bit | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    let key = [
        rng.next() as u8,
        rng.next() as u8,
        rng.next() as u8,
        rng.next() as u8,
    ];
    if masked {
        out.extend_from_slice(&key);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    } else {
        out.extend_from_slice(&payload);
    }
    out
}

#[test]
fn random_requests_and_frames_leave_the_server_serving() {
    let hub = Workerhub::start(&["--max-message-bytes", "65536", "--http-timeout", "2"]);
    let worker = hub.command_worker(&["cat"]);
    let token = hub.token.clone().unwrap();
    let baseline = hub.get("/api/status").json()["process"].clone();
    let seed = std::env::var("LIVE_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x9e37_79b9_7f4a_7c15);
    let mut rng = Rng(seed);
    let total = cases();
    let mut sent = 0;
    for i in 0..total {
        if i % 2 == 0 {
            poke(&hub.addr(), &random_request(&mut rng, &token, &worker));
        } else {
            let path = if rng.below(2) == 0 {
                "/ws".to_string()
            } else {
                format!("/ws/{worker}")
            };
            let Ok(ws) = hub.ws_with(&path, &[]) else {
                continue;
            };
            let mut stream = ws.inner.into_inner();
            let _ = stream.set_read_timeout(Some(Duration::from_millis(20)));
            for _ in 0..1 + rng.below(4) {
                let _ = stream.write_all(&frame(&mut rng));
            }
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
        }
        sent += 1;
    }
    println!("live fuzzer: {sent} cases (seed {seed:#x})");

    // A normal client is still served, over HTTP and WebSocket.
    assert_eq!(hub.get("/api/workers").status, 200);
    let mut ws = hub.ws(&format!("/ws/{worker}"));
    std::thread::sleep(Duration::from_millis(100));
    ws.send_json(&json!({"type": "message", "content": "still alive"}));
    ws.recv_until(Duration::from_secs(10), |e| {
        e["type"] == "output" && e["content"]["text"] == "still alive"
    });
    // Nothing piles up: once the HTTP timeout and tiny_http's idle threads (5 s) have
    // passed, threads and descriptors are back near where they started.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let settled = |key: &str, slack: u64| {
        let start = baseline[key].as_u64().unwrap();
        loop {
            let now = hub.get("/api/status").json()["process"][key]
                .as_u64()
                .unwrap();
            if now <= start + slack {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{key}: {start} before, {now} after the fuzzing"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    };
    settled("threads", 8);
    settled("open_fds", 8);
}
