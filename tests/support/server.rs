//! Starts the real `workerhub` binary on a free port with its own data folder, and talks
//! to it over real sockets: a small raw HTTP/1.1 client (so tests can also send
//! malformed requests) and tungstenite as the WebSocket client.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tungstenite::client::IntoClientRequest;
use tungstenite::protocol::CloseFrame;
use tungstenite::{Message, WebSocket};

use super::TempDir;

pub struct Workerhub {
    child: Option<Child>,
    pub port: u16,
    /// The token the test client presents (None with `--no-auth`).
    pub token: Option<String>,
    /// What the server printed up to its listening line.
    pub banner: Vec<String>,
    pub data_dir: PathBuf,
    /// The `XDG_RUNTIME_DIR` the server was given (where it announces itself to local
    /// clients).
    pub runtime_dir: PathBuf,
    pub log_path: PathBuf,
    _tmp: Option<TempDir>,
}

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_workerhub")
}

impl Workerhub {
    /// Starts a server with a fresh data folder and `args` added.
    pub fn start(args: &[&str]) -> Workerhub {
        let tmp = TempDir::new("wh-server").expect("temp dir");
        let data = tmp.path().join("data");
        let mut hub = Workerhub::start_in(&data, args);
        hub._tmp = Some(tmp);
        hub
    }

    /// Starts a server on the data folder `data_dir` (which may hold a previous run).
    pub fn start_in(data_dir: &Path, args: &[&str]) -> Workerhub {
        Workerhub::start_with_env(data_dir, args, &[])
    }

    pub fn start_with_env(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Workerhub {
        Workerhub::launch(data_dir, args, env, true, &[])
    }

    /// Starts a server with exactly `args` (no token added: it generates its own unless
    /// told otherwise).
    pub fn start_untouched(data_dir: &Path, args: &[&str]) -> Workerhub {
        Workerhub::launch(data_dir, args, &[], false, &[])
    }

    /// Starts a server (fresh data folder, a token) run by `wrapper` (for example
    /// `prlimit --nofile=257:257 --`).
    pub fn start_wrapped(wrapper: &[&str], args: &[&str]) -> Workerhub {
        let tmp = TempDir::new("wh-server").expect("temp dir");
        let data = tmp.path().join("data");
        let mut hub = Workerhub::launch(&data, args, &[], true, wrapper);
        hub._tmp = Some(tmp);
        hub
    }

    fn launch(
        data_dir: &Path,
        args: &[&str],
        env: &[(&str, &str)],
        add_token: bool,
        wrapper: &[&str],
    ) -> Workerhub {
        std::fs::create_dir_all(data_dir).expect("data dir");
        // Authentication is on, as it is by default: tests present a token of their own
        // unless they choose otherwise.
        let mut token = None;
        let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        if add_token
            && !args
                .iter()
                .any(|a| a == "--no-auth" || a == "--token" || a.starts_with("--token="))
        {
            let t = format!(
                "test-token-{:016x}",
                std::process::id() as u64 * 7919 + data_dir.as_os_str().len() as u64
            );
            args.push("--token".into());
            args.push(t.clone());
            token = Some(t);
        } else if let Some(i) = args.iter().position(|a| a == "--token") {
            token = args.get(i + 1).cloned();
        }
        let log_path = data_dir.with_extension("log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("log file");
        let mut command = match wrapper.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(bin());
                c
            }
            None => Command::new(bin()),
        };
        // Where the server tells local clients about itself (`discovery`): a folder of
        // this test's, not the user's.
        let runtime_dir = data_dir.with_extension("run");
        command
            .args(["--port", "0", "--data-dir"])
            .arg(data_dir)
            .args(args)
            .env_remove("WORKERHUB_TOKEN")
            .env("XDG_RUNTIME_DIR", &runtime_dir)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        let mut child = command.spawn().expect("start workerhub");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    // Keep draining so the server never blocks on a full stdout.
                    continue;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut banner = Vec::new();
        let port = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    banner.push(line.clone());
                    if let Some(rest) = line.strip_prefix("workerhub listening on http://") {
                        let port = rest.rsplit(':').next().and_then(|p| p.parse().ok());
                        break port.expect("port in the listening line");
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    panic!(
                        "workerhub did not print its listening line; log:\n{}",
                        std::fs::read_to_string(&log_path).unwrap_or_default()
                    );
                }
            }
        };
        Workerhub {
            child: Some(child),
            port,
            token,
            banner,
            data_dir: data_dir.to_path_buf(),
            runtime_dir,
            log_path,
            _tmp: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, |c| c.id())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Sends `signal` and waits (up to `timeout`) for the server to exit.
    pub fn stop_with(&mut self, signal: i32, timeout: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        unsafe_kill(child.id(), signal);
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    pub fn crash(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    // ---- HTTP ----

    /// The `Authorization` header of this server's token.
    pub fn bearer(&self) -> Option<String> {
        self.token.as_ref().map(|t| format!("Bearer {t}"))
    }

    /// A request with the token, unless `headers` bring their own credentials.
    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
        let bearer = self.bearer();
        let mut all: Vec<(&str, &str)> = headers.to_vec();
        let has_credentials = headers.iter().any(|(k, _)| {
            k.eq_ignore_ascii_case("authorization") || k.eq_ignore_ascii_case("cookie")
        });
        if let (false, Some(b)) = (has_credentials, bearer.as_deref()) {
            all.push(("Authorization", b));
        }
        http_request(&self.addr(), method, path, &all, body)
    }

    /// A request exactly as given (no token added).
    pub fn request_raw(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Resp {
        http_request(&self.addr(), method, path, headers, body)
    }

    pub fn get(&self, path: &str) -> Resp {
        self.request("GET", path, &[], b"")
    }

    pub fn post_json(&self, path: &str, body: &Value) -> Resp {
        self.request(
            "POST",
            path,
            &[("Content-Type", "application/json")],
            body.to_string().as_bytes(),
        )
    }

    pub fn delete(&self, path: &str) -> Resp {
        self.request("DELETE", path, &[], b"")
    }

    /// Creates a worker and returns its id; panics with the server's answer otherwise.
    pub fn create_worker(&self, body: Value) -> String {
        let resp = self.post_json("/api/workers", &body);
        assert_eq!(resp.status, 201, "create worker: {}", resp.text());
        resp.json()["id"].as_str().expect("worker id").to_string()
    }

    /// A `command` worker running `argv` in a temp folder.
    pub fn command_worker(&self, argv: &[&str]) -> String {
        self.create_worker(json!({
            "ai_cli_type": "command",
            "project_path": std::env::temp_dir(),
            "command": argv,
        }))
    }

    /// Every event of a worker's history, paged over REST.
    pub fn history(&self, id: &str) -> Vec<Value> {
        let mut all = Vec::new();
        let mut since = 0;
        loop {
            let page = self
                .get(&format!(
                    "/api/workers/{id}/events?since={since}&limit=10000"
                ))
                .json();
            let events = page["events"].as_array().cloned().unwrap_or_default();
            if events.is_empty() {
                return all;
            }
            since = page["next_since"].as_u64().expect("next_since");
            all.extend(events);
        }
    }

    pub fn worker(&self, id: &str) -> Value {
        self.get(&format!("/api/workers/{id}")).json()
    }

    /// Waits until the worker's status satisfies `ok`.
    pub fn wait_status(&self, id: &str, ok: impl Fn(&str) -> bool, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let w = self.worker(id);
            if ok(w["status"].as_str().unwrap_or("")) || Instant::now() >= deadline {
                return w;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    // ---- WebSocket ----

    pub fn ws(&self, path: &str) -> Ws {
        self.ws_with(path, &[])
            .unwrap_or_else(|err| panic!("connect {path}: {err}"))
    }

    /// A WebSocket with the token, unless `headers` bring their own credentials or the
    /// path has `token=`.
    pub fn ws_with(&self, path: &str, headers: &[(&str, &str)]) -> Result<Ws, tungstenite::Error> {
        self.connector().ws_with(path, headers)
    }

    /// What a client thread needs to connect.
    pub fn connector(&self) -> Connector {
        Connector {
            addr: self.addr(),
            bearer: self.bearer(),
        }
    }
}

impl Drop for Workerhub {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.stop_with(15, Duration::from_secs(10));
        }
    }
}

fn unsafe_kill(pid: u32, signal: i32) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status();
}

/// Connects to a server from any thread.
#[derive(Clone)]
pub struct Connector {
    pub addr: String,
    pub bearer: Option<String>,
}

impl Connector {
    pub fn ws(&self, path: &str) -> Result<Ws, tungstenite::Error> {
        self.ws_with(path, &[])
    }

    pub fn ws_with(&self, path: &str, headers: &[(&str, &str)]) -> Result<Ws, tungstenite::Error> {
        let mut all: Vec<(&str, &str)> = headers.to_vec();
        let has_credentials = path.contains("token=")
            || headers.iter().any(|(k, _)| {
                k.eq_ignore_ascii_case("authorization") || k.eq_ignore_ascii_case("cookie")
            });
        if let (false, Some(b)) = (has_credentials, self.bearer.as_deref()) {
            all.push(("Authorization", b));
        }
        ws_connect(&self.addr, path, &all)
    }
}

/// A response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn error_code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }
}

/// One HTTP/1.1 request on a new connection (`Connection: close`).
pub fn http_request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut head = format!("{method} {path} HTTP/1.1\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        head.push_str(&format!("Host: {addr}\r\n"));
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    stream.write_all(head.as_bytes()).expect("write head");
    stream.write_all(body).expect("write body");
    read_response(&mut BufReader::new(stream))
}

/// Reads one response (Content-Length bodies, or until close).
pub fn read_response(reader: &mut impl BufRead) -> Resp {
    let mut line = String::new();
    reader.read_line(&mut line).expect("status line");
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {line:?}"));
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).expect("header");
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let len = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok());
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).expect("chunk size");
            let n = usize::from_str_radix(size.trim(), 16).expect("hex chunk size");
            let mut chunk = vec![0; n + 2];
            reader.read_exact(&mut chunk).expect("chunk");
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
        return Resp {
            status,
            headers,
            body,
        };
    }
    match len {
        Some(n) => {
            body.resize(n, 0);
            reader.read_exact(&mut body).expect("body");
        }
        None => {
            let _ = reader.read_to_end(&mut body);
        }
    }
    Resp {
        status,
        headers,
        body,
    }
}

/// A WebSocket client connection.
pub struct Ws {
    pub inner: WebSocket<TcpStream>,
}

pub fn ws_connect(
    addr: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Ws, tungstenite::Error> {
    let mut request = format!("ws://{addr}{path}").into_client_request()?;
    for (k, v) in headers {
        request.headers_mut().insert(
            tungstenite::http::HeaderName::from_bytes(k.as_bytes()).expect("header name"),
            v.parse().expect("header value"),
        );
    }
    let stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let (inner, _) = tungstenite::client(request, stream).map_err(|e| match e {
        tungstenite::HandshakeError::Failure(e) => e,
        tungstenite::HandshakeError::Interrupted(_) => tungstenite::Error::ConnectionClosed,
    })?;
    Ok(Ws { inner })
}

/// What a receive produced.
#[derive(Debug)]
pub enum Got {
    Json(Value),
    Closed(Option<CloseFrame>),
    TimedOut,
}

impl Ws {
    pub fn send_json(&mut self, value: &Value) {
        self.inner
            .send(Message::text(value.to_string()))
            .expect("send");
    }

    pub fn send_text(&mut self, text: &str) {
        self.inner
            .send(Message::text(text.to_string()))
            .expect("send");
    }

    pub fn set_timeout(&mut self, timeout: Duration) {
        let _ = self.inner.get_mut().set_read_timeout(Some(timeout));
    }

    /// The next JSON message, a close, or a timeout (pings and pongs do not count).
    pub fn next(&mut self, timeout: Duration) -> Got {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Got::TimedOut;
            }
            self.set_timeout(left);
            match self.inner.read() {
                Ok(Message::Text(t)) => {
                    return Got::Json(
                        serde_json::from_str(&t).unwrap_or_else(|e| panic!("not JSON ({e}): {t}")),
                    );
                }
                Ok(Message::Close(frame)) => return Got::Closed(frame),
                Ok(_) => continue,
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Got::TimedOut;
                }
                Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::Interrupted => {
                    continue;
                }
                Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                    return Got::Closed(None);
                }
                // The server shut the socket down right after its close frame.
                Err(tungstenite::Error::Protocol(
                    tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
                )) => {
                    return Got::Closed(None);
                }
                Err(tungstenite::Error::Io(e))
                    if e.kind() == std::io::ErrorKind::ConnectionReset =>
                {
                    return Got::Closed(None);
                }
                Err(e) => panic!("websocket error: {e}"),
            }
        }
    }

    /// The next JSON message; panics on close or timeout.
    pub fn recv(&mut self, timeout: Duration) -> Value {
        match self.next(timeout) {
            Got::Json(v) => v,
            other => panic!("expected a message, got {other:?}"),
        }
    }

    /// Messages until one satisfies `done` (included), or panics after `timeout`.
    pub fn recv_until(&mut self, timeout: Duration, done: impl Fn(&Value) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        let mut got = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "timed out; received so far: {got:#?}");
            match self.next(left) {
                Got::Json(v) => {
                    let stop = done(&v);
                    got.push(v);
                    if stop {
                        return got;
                    }
                }
                other => panic!("expected messages, got {other:?} after {got:#?}"),
            }
        }
    }

    /// Collects messages until none arrives for `quiet`.
    pub fn drain(&mut self, quiet: Duration) -> Vec<Value> {
        let mut got = Vec::new();
        while let Got::Json(v) = self.next(quiet) {
            got.push(v);
        }
        got
    }
}

/// The names of a process's threads, sorted (to say which ones a count is made of).
pub fn thread_names(pid: u32) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|dir| {
            dir.flatten()
                .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
                .map(|name| name.trim().to_string())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// A process's resident memory (KiB), thread count and open descriptors, from /proc.
pub fn proc_stats(pid: u32) -> (u64, u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64);
    (field("VmRSS:"), field("Threads:"), fds)
}
