//! `workerhub-bench terminal`: terminal workers (issue 19), against a workerhub server
//! of its own.
//!
//! * keystroke echo: one byte as `input` to a terminal worker running `cat -u` in a raw
//!   terminal, until its `terminal` event comes back, N times (p50/p99), beside the
//!   same round trip as a `message` to a `command` worker running `cat`;
//! * burst: `yes | head -c BYTES` in a terminal worker, to 1 and to 100 viewers: the
//!   program's bytes per second as the slowest viewer received them, and the server's
//!   CPU and memory while it ran.
//!
//! Prints one JSON object; with `--append FILE`, adds a Markdown section to FILE (what
//! benches/run.sh does with docs/BENCHMARKS.md after the suite wrote it).

use std::io::Write;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

use crate::client::http;
use crate::procfs;
use crate::stats::percentile;
use crate::suite::{spawn_guarded, wait_listening};

#[derive(clap::Args, Debug)]
pub struct TerminalArgs {
    /// The workerhub binary; a server of its own is started (and ended).
    #[arg(long, default_value = "target/release/workerhub")]
    pub workerhub: PathBuf,
    /// Keystroke round trips per worker.
    #[arg(long, default_value_t = 2000)]
    pub keystrokes: usize,
    /// Bytes `yes | head -c` prints in the burst.
    #[arg(long, default_value_t = 200_000_000)]
    pub bytes: u64,
    /// Viewer counts of the burst.
    #[arg(long, value_delimiter = ',', default_value = "1,100")]
    pub viewers: Vec<usize>,
    /// Append the figures as a Markdown section to this file.
    #[arg(long)]
    pub append: Option<PathBuf>,
}

type Ws = WebSocket<MaybeTlsStream<TcpStream>>;

struct Server {
    child: Child,
    addr: String,
    _data: TempData,
}

struct TempData(PathBuf);

impl Drop for TempData {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        crate::sys::kill(self.child.id() as i32, libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(binary: &PathBuf) -> Result<Server, String> {
    let data = std::env::temp_dir().join(format!("wh-bench-terminal-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let mut cmd = Command::new(binary);
    cmd.args(["--port", "0", "--no-auth", "--data-dir"])
        .arg(&data)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = spawn_guarded(&mut cmd).map_err(|e| format!("start {binary:?}: {e}"))?;
    let port = wait_listening(&mut child, "workerhub listening on http://")?;
    Ok(Server {
        child,
        addr: format!("127.0.0.1:{port}"),
        _data: TempData(data),
    })
}

fn create(server: &Server, body: Value) -> Result<(String, u64), String> {
    let (status, worker) = http(&server.addr, None, "POST", "/api/workers", Some(&body))?;
    if status != 201 {
        return Err(format!("create a worker: HTTP {status}: {worker}"));
    }
    let id = worker["id"].as_str().unwrap_or("").to_string();
    // Running, and the seq to watch from (no snapshot, no replay).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let w = get_worker(server, &id)?;
        if w["status"] == "running" {
            return Ok((id, w["last_seq"].as_u64().unwrap_or(0)));
        }
        if Instant::now() > deadline {
            return Err(format!("worker {id} did not start: {w}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The worker as `GET /api/workers/{id}` shows it.
fn get_worker(server: &Server, id: &str) -> Result<Value, String> {
    let path = format!("/api/workers/{id}");
    http(&server.addr, None, "GET", &path, None).map(|(_, w)| w)
}

/// Deletes the worker (stopping its program); a failure only leaves it to the server's end.
fn delete(server: &Server, id: &str) {
    let _ = http(
        &server.addr,
        None,
        "DELETE",
        &format!("/api/workers/{id}"),
        None,
    );
}

fn connect(server: &Server, id: &str, since: u64) -> Result<Ws, String> {
    let (ws, _) = tungstenite::connect(format!("ws://{}/ws/{id}?since={since}", server.addr))
        .map_err(|e| format!("connect: {e}"))?;
    if let MaybeTlsStream::Plain(s) = ws.get_ref() {
        let _ = s.set_read_timeout(Some(Duration::from_secs(60)));
        let _ = s.set_nodelay(true);
    }
    Ok(ws)
}

fn send(ws: &mut Ws, value: Value) -> Result<(), String> {
    ws.send(Message::text(value.to_string()))
        .map_err(|e| format!("send: {e}"))
}

/// Reads frames until one contains all of `needles`.
fn wait_frame(ws: &mut Ws, needles: &[&str]) -> Result<(), String> {
    loop {
        match ws.read().map_err(|e| format!("read: {e}"))? {
            Message::Text(text) if needles.iter().all(|n| text.contains(n)) => return Ok(()),
            _ => {}
        }
    }
}

/// Round trips of one byte (`terminal`) or one line (`command`), in microseconds.
fn round_trips(server: &Server, n: usize, terminal: bool) -> Result<(u64, u64, u64), String> {
    let body = if terminal {
        json!({"command": ["sh", "-c", "stty raw -echo; echo ready; exec cat -u"], "terminal": true, "project_path": "/tmp"})
    } else {
        json!({"command": ["cat"], "project_path": "/tmp"})
    };
    let (id, _) = create(server, body)?;
    let mut ws = connect(server, &id, 0)?;
    let (message, needles): (fn(&str) -> Value, [&str; 2]) = if terminal {
        wait_frame(&mut ws, &["\"terminal\"", "ready"])?;
        (
            |c| json!({"type": "input", "data": c}),
            ["\"terminal\"", ""],
        )
    } else {
        (
            |c| json!({"type": "message", "content": c}),
            ["\"output\"", ""],
        )
    };
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let c = ["a", "b", "c", "d"][i % 4];
        let expect = format!("\"{c}\"");
        let started = Instant::now();
        send(&mut ws, message(c))?;
        wait_frame(&mut ws, &[needles[0], &expect])?;
        samples.push(started.elapsed().as_micros() as u64);
    }
    delete(server, &id);
    let p50 = percentile(&mut samples, 50.0);
    let p99 = percentile(&mut samples, 99.0);
    let max = samples.iter().copied().max().unwrap_or(0);
    Ok((p50, p99, max))
}

/// `yes | head -c BYTES` to `viewers` viewers: seconds until the slowest saw the end,
/// the server's CPU seconds meanwhile, and its memory at the end.
fn burst(server: &Server, bytes: u64, viewers: usize) -> Result<Value, String> {
    let script = format!("stty -echo; read go; yes | head -c {bytes}; echo; echo BURST-DONE");
    let (id, since) = create(
        server,
        json!({"command": ["sh", "-c", script], "terminal": true, "project_path": "/tmp"}),
    )?;
    let mut clients = Vec::new();
    for _ in 0..viewers {
        clients.push(connect(server, &id, since)?);
    }
    let (tx, rx) = std::sync::mpsc::channel::<Result<(Duration, u64), String>>();
    let go = std::sync::Arc::new(std::sync::Barrier::new(viewers + 1));
    let started = std::sync::Arc::new(std::sync::OnceLock::<Instant>::new());
    let mut driver = connect(server, &id, since)?;
    for mut ws in clients {
        let (tx, go, started) = (tx.clone(), go.clone(), started.clone());
        std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || {
                go.wait();
                let mut received = 0u64;
                let result = loop {
                    match ws.read() {
                        Ok(Message::Text(text)) => {
                            received += text.len() as u64;
                            if text.contains("BURST-DONE") {
                                let t0 = started.get().copied().unwrap_or_else(Instant::now);
                                break Ok((t0.elapsed(), received));
                            }
                        }
                        Ok(_) => {}
                        Err(e) => break Err(format!("viewer: {e}")),
                    }
                };
                let _ = tx.send(result);
            })
            .map_err(|e| e.to_string())?;
    }
    drop(tx);
    let pid = server.child.id() as i32;
    let before = procfs::read(pid).map(|p| p.cpu_ticks).unwrap_or(0);
    go.wait();
    let _ = started.set(Instant::now());
    send(&mut driver, json!({"type": "input", "data": "go\r"}))?;
    let mut slowest = Duration::ZERO;
    let mut frames_bytes = 0u64;
    for result in rx.iter() {
        let (took, received) = result?;
        slowest = slowest.max(took);
        frames_bytes += received;
    }
    let after = procfs::read(pid);
    let cpu = after
        .as_ref()
        .map_or(0, |p| p.cpu_ticks.saturating_sub(before)) as f64
        / crate::sys::clock_ticks();
    let rss_mb = after.as_ref().map_or(0, |p| p.rss_kb) as f64 / 1024.0;
    let w = get_worker(server, &id)?;
    let terminal_events = w["last_seq"].as_u64().unwrap_or(0).saturating_sub(since);
    delete(server, &id);
    let secs = slowest.as_secs_f64().max(1e-9);
    Ok(json!({
        "viewers": viewers,
        "bytes": bytes,
        "seconds": secs,
        "program_mb_per_s": bytes as f64 / secs / 1e6,
        "delivered_mb_per_s": frames_bytes as f64 / secs / 1e6,
        "events": terminal_events,
        "server_cpu_seconds": cpu,
        "server_cpu_percent": cpu / secs * 100.0,
        "server_rss_mb": rss_mb,
    }))
}

pub fn run(a: &TerminalArgs) -> Result<Value, String> {
    let server = start(&a.workerhub)?;
    let (t50, t99, tmax) = round_trips(&server, a.keystrokes, true)?;
    let (c50, c99, cmax) = round_trips(&server, a.keystrokes, false)?;
    let mut bursts = Vec::new();
    for &viewers in &a.viewers {
        bursts.push(burst(&server, a.bytes, viewers)?);
    }
    let result = json!({
        "keystroke_echo_us": {"terminal": {"p50": t50, "p99": t99, "max": tmax},
                              "command": {"p50": c50, "p99": c99, "max": cmax},
                              "round_trips": a.keystrokes},
        "bursts": bursts,
    });
    if let Some(path) = &a.append {
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        file.write_all(markdown(&result).as_bytes())
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(result)
}

fn markdown(r: &Value) -> String {
    let ms = |v: &Value| format!("{:.2} ms", v.as_f64().unwrap_or(0.0) / 1000.0);
    let k = &r["keystroke_echo_us"];
    let mut out = format!(
        "\n## Terminal workers\n\n`workerhub-bench terminal` (benches/run.sh runs it after the suite, against a \
         server of its own).\n\nKeystroke echo, {} round trips one after the other: one byte as `input` to a terminal \
         worker running `cat -u` in a raw terminal until its `terminal` event is back, beside a one-character \
         `message` to a `command` worker running `cat` until its `output` event is back.\n\n\
         | round trip | p50 | p99 | max |\n| --- | --- | --- | --- |\n\
         | terminal worker (`input` → `terminal`) | {} | {} | {} |\n\
         | command worker (`message` → `output`) | {} | {} | {} |\n\n",
        k["round_trips"],
        ms(&k["terminal"]["p50"]),
        ms(&k["terminal"]["p99"]),
        ms(&k["terminal"]["max"]),
        ms(&k["command"]["p50"]),
        ms(&k["command"]["p99"]),
        ms(&k["command"]["max"]),
    );
    out.push_str(
        "`yes | head -c BYTES` in a terminal worker (the terminal turns each `\\n` into `\\r\\n`, so 1.5 times the \
         bytes cross it), until the slowest viewer has the end; the server's CPU over that time (100% is one core) \
         and its memory after.\n\n\
         | viewers | program bytes | seconds | program MB/s | MB/s to all viewers (JSON) | events | server CPU | server RSS |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for b in r["bursts"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "| {} | {} MB | {:.1} | {:.1} | {:.1} | {} | {:.0}% | {:.0} MB |\n",
            b["viewers"],
            b["bytes"].as_u64().unwrap_or(0) / 1_000_000,
            b["seconds"].as_f64().unwrap_or(0.0),
            b["program_mb_per_s"].as_f64().unwrap_or(0.0),
            b["delivered_mb_per_s"].as_f64().unwrap_or(0.0),
            b["events"],
            b["server_cpu_percent"].as_f64().unwrap_or(0.0),
            b["server_rss_mb"].as_f64().unwrap_or(0.0),
        ));
    }
    out
}
