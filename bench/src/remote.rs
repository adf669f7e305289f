//! `remote`: workers on another host, over ssh, against the same workers run locally,
//! on one server in one run. It starts its own OpenSSH server on a loopback port (the
//! integration tests' `tests/support/sshd.rs`) and its own workerhub with a hosts file
//! naming it `bench-ssh`, then measures, each local and remote variant taking turns:
//!
//! * **stream**: a `command` worker running `workerhub-bench emit --lines N`: events/s
//!   from the `go` message to the N-th `output` event read by one client;
//! * **echo**: a `cat` worker: the time from sending a message to reading its echo,
//!   K messages one after another (p50, p99);
//! * **reconnect**: a remote worker printing a line every 10 ms; sshd is stopped (every
//!   session with it) until the worker shows `disconnected`, kept down 1 s, started
//!   again: the time from sshd listening again to the first `output` event after it
//!   (workerhub's back-off between attempts included).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::client::{Ws, WsUrl, find, http};
use crate::stats::{percentile, summary};

#[path = "../../tests/support/sshd.rs"]
#[allow(dead_code)]
mod sshd;

#[derive(clap::Args, Debug)]
pub struct RemoteArgs {
    /// The workerhub binary to start.
    #[arg(long, default_value = "target/release/workerhub")]
    pub workerhub: PathBuf,
    /// Runs of each measurement (local and remote take turns).
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Lines of the stream.
    #[arg(long, default_value_t = 200_000)]
    pub lines: u64,
    /// Messages of the echo, per run.
    #[arg(long, default_value_t = 300)]
    pub pings: usize,
    /// Times sshd goes down and comes back.
    #[arg(long, default_value_t = 3)]
    pub outages: usize,
}

/// The server under measurement, killed when dropped.
struct Hub {
    child: Child,
    addr: String,
    token: String,
}

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_hub(binary: &Path, dir: &Path, hosts: &Path) -> Result<Hub, String> {
    let token = "bench-remote-token".to_string();
    let mut child = Command::new(binary)
        .args(["--port", "0", "--token", &token, "--data-dir"])
        .arg(dir.join("data"))
        .arg("--hosts")
        .arg(hosts)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("start {}: {e}", binary.display()))?;
    // The banner names the address: `listening on http://127.0.0.1:PORT`.
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut reader = std::io::BufReader::new(stdout);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut line = String::new();
    let addr = loop {
        line.clear();
        if std::io::BufRead::read_line(&mut reader, &mut line).map_err(|e| e.to_string())? == 0
            || Instant::now() > deadline
        {
            let _ = child.kill();
            return Err("workerhub did not say where it listens".into());
        }
        if let Some(at) = line.find("http://127.0.0.1:") {
            let rest = &line[at + "http://".len()..];
            let end = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ':'))
                .unwrap_or(rest.len());
            break rest[..end].to_string();
        }
    };
    std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
    Ok(Hub { child, addr, token })
}

impl Hub {
    fn create(&self, body: Value) -> Result<String, String> {
        let (status, v) = http(
            &self.addr,
            Some(&self.token),
            "POST",
            "/api/workers",
            Some(&body),
        )?;
        match v["id"].as_str() {
            Some(id) if status == 201 => Ok(id.to_string()),
            _ => Err(format!("create worker: {status} {v}")),
        }
    }

    fn delete(&self, id: &str) {
        let _ = http(
            &self.addr,
            Some(&self.token),
            "DELETE",
            &format!("/api/workers/{id}"),
            None,
        );
    }

    fn ws(&self, id: &str) -> Result<Ws, String> {
        let url = WsUrl::parse(&format!("ws://{}/ws/{id}?since=0", self.addr))?
            .with_token(Some(&self.token));
        Ws::connect(&url, Duration::from_secs(10))
    }
}

/// Reads messages until `done` says so (given each message), or fails at `deadline`.
fn read_until(
    ws: &mut Ws,
    deadline: Instant,
    mut done: impl FnMut(&[u8]) -> bool,
) -> Result<(), String> {
    let mut finished = false;
    while !finished {
        if Instant::now() > deadline {
            return Err("timed out".into());
        }
        ws.read_some(deadline, &mut |msg, _| {
            if !finished && done(msg) {
                finished = true;
            }
        })?;
        if ws.closed && !finished {
            return Err("the server closed the connection".into());
        }
    }
    Ok(())
}

fn is_output(msg: &[u8]) -> bool {
    find(msg, b"\"type\":\"output\"").is_some()
}

fn is_status(msg: &[u8], status: &str) -> bool {
    find(msg, b"\"type\":\"status\"").is_some()
        && find(msg, format!("\"status\":\"{status}\"").as_bytes()).is_some()
}

/// A worker of `body` (`host` set or not), with a client connected once it runs.
fn worker(hub: &Hub, body: Value) -> Result<(String, Ws), String> {
    let id = hub.create(body)?;
    let mut ws = hub.ws(&id)?;
    // Its first events (starting, running) are replayed to a new client: wait for them.
    let deadline = Instant::now() + Duration::from_secs(20);
    read_until(&mut ws, deadline, |m| is_status(m, "running"))?;
    Ok((id, ws))
}

fn with_host(mut body: Value, host: Option<&str>) -> Value {
    if let Some(host) = host {
        body["host"] = json!(host);
    }
    body
}

/// Events/s of `lines` emitted lines to one client.
fn stream(
    hub: &Hub,
    a: &RemoteArgs,
    bench: &Path,
    project: &Path,
    host: Option<&str>,
) -> Result<f64, String> {
    let body = json!({
        "project_path": project,
        "command": [bench, "emit", "--lines", a.lines.to_string(), "--wait-go"],
    });
    let (id, mut ws) = worker(hub, with_host(body, host))?;
    let started = Instant::now();
    ws.send_text(&json!({"type": "message", "content": "go"}).to_string())?;
    let mut seen = 0u64;
    let result = read_until(&mut ws, Instant::now() + Duration::from_secs(300), |m| {
        if is_output(m) {
            seen += 1;
        }
        seen >= a.lines
    });
    let secs = started.elapsed().as_secs_f64();
    ws.close();
    hub.delete(&id);
    result.map(|_| a.lines as f64 / secs)
}

/// Microseconds from a message to its echo by `cat`, `pings` times.
fn echo(hub: &Hub, a: &RemoteArgs, project: &Path, host: Option<&str>) -> Result<Vec<u64>, String> {
    let body = json!({"project_path": project, "command": ["cat"]});
    let (id, mut ws) = worker(hub, with_host(body, host))?;
    let mut samples = Vec::with_capacity(a.pings);
    let mut failed = None;
    for i in 0..a.pings {
        let text = format!("ping-{i}-{}", "x".repeat(40));
        let sent = Instant::now();
        if let Err(e) = ws.send_text(&json!({"type": "message", "content": text}).to_string()) {
            failed = Some(e);
            break;
        }
        let needle = format!("\"text\":\"{text}\"");
        if let Err(e) = read_until(&mut ws, Instant::now() + Duration::from_secs(10), |m| {
            is_output(m) && find(m, needle.as_bytes()).is_some()
        }) {
            failed = Some(e);
            break;
        }
        samples.push(sent.elapsed().as_micros() as u64);
    }
    ws.close();
    hub.delete(&id);
    match failed {
        Some(e) => Err(e),
        None => Ok(samples),
    }
}

/// Milliseconds from sshd listening again to the first resumed event, per outage.
fn reconnect(
    hub: &Hub,
    a: &RemoteArgs,
    sshd: &mut sshd::Sshd,
    project: &Path,
) -> Result<Vec<f64>, String> {
    let body = json!({
        "host": "bench-ssh", "project_path": project,
        "command": ["sh", "-c", "while :; do echo tick; sleep 0.01; done"],
    });
    let (id, mut ws) = worker(hub, body)?;
    let mut times = Vec::new();
    let mut result = Ok(());
    for _ in 0..a.outages {
        sshd.stop();
        let step = read_until(&mut ws, Instant::now() + Duration::from_secs(60), |m| {
            is_status(m, "disconnected")
        });
        std::thread::sleep(Duration::from_secs(1));
        if let Err(e) = sshd.restart() {
            result = Err(e);
            break;
        }
        let back = Instant::now();
        // What was read before is no longer wanted: the first output after the restart.
        let step = step
            .and_then(|_| read_until(&mut ws, Instant::now() + Duration::from_secs(60), is_output));
        if let Err(e) = step {
            result = Err(e);
            break;
        }
        times.push(back.elapsed().as_secs_f64() * 1000.0);
        // Let it run a little before the next outage.
        let _ = read_until(&mut ws, Instant::now() + Duration::from_millis(500), |_| {
            false
        });
    }
    ws.close();
    hub.delete(&id);
    result.map(|_| times)
}

fn median(values: &[f64]) -> f64 {
    summary(values).map_or(f64::NAN, |s| s.0)
}

pub fn run(a: &RemoteArgs) -> Result<Value, String> {
    let tmp = std::env::temp_dir().join(format!("workerhub-bench-remote-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).map_err(|e| e.to_string())?;
    let result = measure(a, &tmp);
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

fn measure(a: &RemoteArgs, tmp: &Path) -> Result<Value, String> {
    let mut sshd = sshd::Sshd::start(tmp, &["bench-ssh"])?;
    let bench = std::env::current_exe().map_err(|e| e.to_string())?;
    let hosts =
        json!({"bench-ssh": {"ssh": "bench-ssh", "config_file": sshd.home.join(".ssh/config")}});
    let hosts_file = tmp.join("hosts.json");
    std::fs::write(&hosts_file, hosts.to_string()).map_err(|e| e.to_string())?;
    let project = tmp.join("project");
    std::fs::create_dir_all(&project).map_err(|e| e.to_string())?;
    let hub = start_hub(&a.workerhub, tmp, &hosts_file)?;

    let (mut local_eps, mut remote_eps) = (Vec::new(), Vec::new());
    let (mut local_echo, mut remote_echo) = (Vec::new(), Vec::new());
    for run in 1..=a.runs {
        local_eps.push(stream(&hub, a, &bench, &project, None)?);
        remote_eps.push(stream(&hub, a, &bench, &project, Some("bench-ssh"))?);
        local_echo.extend(echo(&hub, a, &project, None)?);
        remote_echo.extend(echo(&hub, a, &project, Some("bench-ssh"))?);
        eprintln!(
            "[remote {run}/{}] stream local {:.0} ev/s, remote {:.0} ev/s",
            a.runs,
            local_eps[run - 1],
            remote_eps[run - 1]
        );
    }
    let outages = reconnect(&hub, a, &mut sshd, &project)?;
    let (local_stream, remote_stream) = (median(&local_eps), median(&remote_eps));
    Ok(json!({
        "scenario": "remote",
        "lines": a.lines,
        "runs": a.runs,
        "stream_local_eps": local_stream,
        "stream_remote_eps": remote_stream,
        "stream_remote_over_local": remote_stream / local_stream,
        "stream_local_runs": local_eps,
        "stream_remote_runs": remote_eps,
        "pings": local_echo.len(),
        "echo_local_p50_us": percentile(&mut local_echo, 50.0),
        "echo_local_p99_us": percentile(&mut local_echo, 99.0),
        "echo_remote_p50_us": percentile(&mut remote_echo, 50.0),
        "echo_remote_p99_us": percentile(&mut remote_echo, 99.0),
        "reconnect_ms": outages,
        "reconnect_median_ms": median(&outages),
    }))
}
