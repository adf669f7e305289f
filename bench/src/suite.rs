//! `suite`: every scenario against workerhub, websocketd and the limit reference, several
//! runs each, interleaved (run 1 of each server, then run 2, ...) so that the noise of a
//! shared machine spreads evenly; then docs/BENCHMARKS.md with medians, min and max,
//! ratios and the targets. After them, workerhub alone: the agent protocol, and
//! supervised Claude Code (approval round trips through `approval-cli`, turn start of a
//! live session against a process per turn with the real Claude Code when it is
//! installed).
//!
//! Every run gets a fresh server. Servers and load generators are child processes with
//! a parent-death signal and a deadline, and are killed (with their process groups) on
//! every path out, so nothing is left behind.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::client::http;
use crate::procfs;
use crate::stats::summary;
use crate::sys;

#[derive(clap::Args, Debug, Clone)]
// A later flag wins over an earlier one: benches/run.sh gives `--out` first, and
// `benches/run.sh --out FILE` writes elsewhere.
#[command(args_override_self = true)]
pub struct SuiteArgs {
    /// Where to write the report.
    #[arg(long, default_value = "docs/BENCHMARKS.md")]
    pub out: PathBuf,
    /// The workerhub binary [default: next to this one].
    #[arg(long)]
    pub workerhub: Option<PathBuf>,
    /// The limit reference binary [default: ws-reference next to this one].
    #[arg(long)]
    pub reference: Option<PathBuf>,
    #[arg(long, default_value = "/usr/bin/websocketd")]
    pub websocketd: PathBuf,
    /// Runs of the light scenarios (stream, http).
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Runs of echo (cheap, and the most sensitive to where the scheduler puts threads).
    #[arg(long, default_value_t = 9)]
    pub echo_runs: usize,
    /// Runs of the heavy scenarios (fanout, conns).
    #[arg(long, default_value_t = 3)]
    pub heavy_runs: usize,
    /// Only these scenarios (echo,stream,fanout,fanout-paced,conns,http,agent,approvals,
    /// turn-start; `supervision` is approvals and turn-start).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Only these servers (workerhub,websocketd,reference).
    #[arg(long, value_delimiter = ',')]
    pub servers: Vec<String>,
    /// Tiny sizes, to check that the suite works (targets are then not judged).
    #[arg(long)]
    pub quick: bool,
    #[arg(long, default_value_t = 2000)]
    pub echo_n: usize,
    /// Lines of the stream scenario for workerhub.
    #[arg(long, default_value_t = 2_000_000)]
    pub stream_lines: u64,
    /// Lines of the stream scenario for the reference (about 5 times faster).
    #[arg(long, default_value_t = 8_000_000)]
    pub stream_lines_reference: u64,
    /// Lines of the stream scenario for websocketd (about 8 times slower: fewer lines
    /// keep each run near one second).
    #[arg(long, default_value_t = 250_000)]
    pub stream_lines_websocketd: u64,
    #[arg(long, default_value_t = 1000)]
    pub fanout_clients: usize,
    #[arg(long, default_value_t = 2000)]
    pub fanout_lines: u64,
    /// Lines per second of the paced fanout (times the clients: the offered events/s).
    #[arg(long, default_value_t = 2200)]
    pub paced_rate: u64,
    /// Lines of the paced fanout.
    #[arg(long, default_value_t = 4400)]
    pub paced_lines: u64,
    #[arg(long, default_value_t = 10_000)]
    pub conns: usize,
    /// Connections of the conns scenario for websocketd and the reference: they run a
    /// process per connection and need 3-4 descriptors each (the limit here is 20,000).
    #[arg(long, default_value_t = 2000)]
    pub conns_per_process: usize,
    #[arg(long, default_value_t = 3.0)]
    pub idle_secs: f64,
    #[arg(long, default_value_t = 2.0)]
    pub http_secs: f64,
    #[arg(long, default_value_t = 4)]
    pub http_threads: usize,
    /// The fake CLI of the approval figures [default: approval-cli next to this one].
    #[arg(long)]
    pub approval_cli: Option<PathBuf>,
    /// Claude Code, for the turn-start figures (not measured when it is missing).
    #[arg(long, default_value = "tests/clis/node_modules/.bin/claude")]
    pub claude: PathBuf,
    /// Turns of the approvals scenario (the first is a warm-up).
    #[arg(long, default_value_t = 21)]
    pub approval_turns: usize,
    /// Approval requests per turn.
    #[arg(long, default_value_t = 50)]
    pub approval_asks: usize,
    /// Clients of the approvals variant with several viewers (one answers).
    #[arg(long, default_value_t = 4)]
    pub approval_viewers: usize,
    /// Messages to each worker in turn-start (the first is reported apart).
    #[arg(long, default_value_t = 6)]
    pub turn_start_turns: usize,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Kind {
    Workerhub,
    Websocketd,
    Reference,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Workerhub => "workerhub",
            Kind::Websocketd => "websocketd",
            Kind::Reference => "reference",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Scen {
    Echo,
    Stream,
    Fanout,
    FanoutPaced,
    Conns,
    Http,
}

impl Scen {
    fn name(self) -> &'static str {
        match self {
            Scen::Echo => "echo",
            Scen::Stream => "stream",
            Scen::Fanout => "fanout",
            Scen::FanoutPaced => "fanout-paced",
            Scen::Conns => "conns",
            Scen::Http => "http",
        }
    }
    const ALL: [Scen; 6] = [
        Scen::Echo,
        Scen::Stream,
        Scen::Fanout,
        Scen::FanoutPaced,
        Scen::Conns,
        Scen::Http,
    ];
}

struct Paths {
    bench: PathBuf,
    workerhub: PathBuf,
    reference: PathBuf,
    websocketd: PathBuf,
    tmp: PathBuf,
    /// The token workerhub is started with, when it has authentication (`--token`).
    token: Option<String>,
    /// Whether workerhub limits connections per client address
    /// (`--max-connections-per-ip`), which the conns scenario must raise.
    per_ip_limit: bool,
    /// Whether workerhub caps concurrent one-off commands (`--max-commands`,
    /// `--max-commands-per-token`), which the agent scenario's clients must not hit.
    command_limits: bool,
    /// Whether workerhub takes `--claude-binary` (the supervision figures need it).
    claude_binary_flag: bool,
    /// The fake CLI of the approval figures.
    approval_cli: PathBuf,
}

/// A server under test; stopped (with everything it started) when dropped.
struct Server {
    child: Option<Child>,
    pid: i32,
    port: u16,
    /// The worker for workerhub.
    worker: Option<String>,
    log: PathBuf,
}

impl Server {
    /// The server's last warnings and errors, to explain a failed run.
    fn complaints(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| {
                let l = l.to_ascii_lowercase();
                ["warn", "error", "panic", "slow", "killed"]
                    .iter()
                    .any(|w| l.contains(w))
            })
            .collect();
        lines[lines.len().saturating_sub(3)..].join(" / ")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let tree = procfs::descendants(self.pid);
        sys::kill(self.pid, libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(8);
        loop {
            match child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() >= deadline => {
                    eprintln!(
                        "  (server {} did not stop on SIGTERM: killing it)",
                        self.pid
                    );
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        // Its process group (websocketd's and the reference's children), and anything
        // else it started (workerhub's workers have their own groups).
        sys::kill(-self.pid, libc::SIGKILL);
        for pid in tree.into_iter().filter(|&p| p != self.pid) {
            if Path::new(&format!("/proc/{pid}")).exists() {
                sys::kill(pid, libc::SIGKILL);
            }
        }
    }
}

pub(crate) fn spawn_guarded(cmd: &mut Command) -> std::io::Result<Child> {
    // SAFETY: the closure only calls prctl, which is async-signal-safe.
    unsafe {
        cmd.pre_exec(sys::die_with_parent);
    }
    cmd.spawn()
}

/// Reads the child's stdout in a thread; returns the port from the first line that has
/// `prefix` followed by `HOST:PORT`.
pub(crate) fn wait_listening(child: &mut Child, prefix: &str) -> Result<u16, String> {
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            // Keep draining after the port was found, so the server never blocks.
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                if let Some(rest) = line.trim().strip_prefix(prefix) {
                    return rest
                        .rsplit(':')
                        .next()
                        .and_then(|p| p.trim_end_matches('/').parse().ok())
                        .ok_or_else(|| format!("no port in {line:?}"));
                }
            }
            Err(_) => return Err(format!("no `{prefix}` line within 20 s")),
        }
    }
}

fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

/// Starts a server running `program`; `extra` are more flags for workerhub, which gets
/// no worker when `program` is empty.
fn start_server(
    kind: Kind,
    program: &[String],
    p: &Paths,
    n: usize,
    extra: &[String],
) -> Result<Server, String> {
    let log_path = p.tmp.join(format!("{}-{n}.log", kind.name()));
    let log = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
    let mut cmd;
    match kind {
        Kind::Workerhub => {
            let data = p.tmp.join(format!("data-{n}"));
            cmd = Command::new(&p.workerhub);
            cmd.args(["--port", "0", "--data-dir"]).arg(&data);
            if let Some(token) = &p.token {
                cmd.args(["--token", token]);
            }
            cmd.args(extra);
        }
        Kind::Websocketd => {
            cmd = Command::new(&p.websocketd);
            cmd.arg(format!("--port={}", free_port()?))
                .args(["--address=127.0.0.1", "--loglevel=error"])
                .args(program);
        }
        Kind::Reference => {
            cmd = Command::new(&p.reference);
            cmd.args(["--port", "0", "--"]).args(program);
        }
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .process_group(0);
    let child = spawn_guarded(&mut cmd).map_err(|e| format!("start {kind:?}: {e}"))?;
    let pid = child.id() as i32;
    let mut server = Server {
        child: Some(child),
        pid,
        port: 0,
        worker: None,
        log: log_path.clone(),
    };
    let child = server.child.as_mut().ok_or("no child")?;
    server.port = match kind {
        Kind::Workerhub => wait_listening(child, "workerhub listening on http://")?,
        Kind::Reference => wait_listening(child, "ws-reference listening on")?,
        Kind::Websocketd => {
            let port = cmd
                .get_args()
                .find_map(|a| a.to_str()?.strip_prefix("--port=")?.parse().ok())
                .ok_or("no port")?;
            let deadline = Instant::now() + Duration::from_secs(10);
            while TcpStream::connect(("127.0.0.1", port)).is_err() {
                if Instant::now() > deadline {
                    return Err("websocketd did not listen within 10 s".into());
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            port
        }
    };
    if kind == Kind::Workerhub && !program.is_empty() {
        let addr = format!("127.0.0.1:{}", server.port);
        let (status, body) = http(
            &addr,
            p.token.as_deref(),
            "POST",
            "/api/workers",
            Some(&json!({"project_path": "/tmp", "ai_cli_type": "command", "command": program})),
        )?;
        let id = body["id"]
            .as_str()
            .filter(|_| status == 201)
            .ok_or_else(|| format!("create worker: {status} {body}"))?
            .to_string();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (_, w) = http(
                &addr,
                p.token.as_deref(),
                "GET",
                &format!("/api/workers/{id}"),
                None,
            )?;
            if w["status"] == "running" {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!("worker not running: {w}"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        server.worker = Some(id);
    }
    Ok(server)
}

/// Runs `workerhub-bench ARGS` and returns its JSON answer.
fn loadgen(p: &Paths, args: &[String], timeout: Duration) -> Result<Value, String> {
    let mut cmd = Command::new(&p.bench);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = spawn_guarded(&mut cmd).map_err(|e| format!("start load generator: {e}"))?;
    let mut stdout = child.stdout.take().ok_or("no stdout")?;
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("load generator timed out after {timeout:?}"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(e.to_string()),
        }
    }
    let out = reader.join().map_err(|_| "reader panicked")?;
    let last = out.lines().last().unwrap_or("");
    let value: Value =
        serde_json::from_str(last).map_err(|_| format!("load generator said {out:?}"))?;
    if let Some(err) = value.get("error") {
        return Err(err.as_str().unwrap_or("error").to_string());
    }
    Ok(value)
}

struct Suite<'a> {
    a: &'a SuiteArgs,
    p: Paths,
    kinds: Vec<Kind>,
    results: BTreeMap<(Scen, Kind), Vec<Value>>,
    errors: Vec<String>,
    /// (scenario, server) -> (server command, load generator command), for the report.
    commands: BTreeMap<(Scen, Kind), (String, String)>,
    counter: usize,
    /// Load averages (1, 5, 15 min) before and after the runs.
    load: (String, String),
    /// The 1-minute load average sampled before every run.
    load_samples: Vec<f64>,
}

impl Suite<'_> {
    fn lines_for(&self, scen: Scen, kind: Kind) -> u64 {
        match (scen, kind) {
            (Scen::Fanout, _) => self.a.fanout_lines,
            (Scen::FanoutPaced, _) => self.a.paced_lines,
            (_, Kind::Websocketd) => self.a.stream_lines_websocketd,
            (_, Kind::Reference) => self.a.stream_lines_reference,
            _ => self.a.stream_lines,
        }
    }

    fn program(&self, scen: Scen, kind: Kind) -> Vec<String> {
        match scen {
            Scen::Stream | Scen::Fanout => vec![
                self.p.bench.display().to_string(),
                "emit".into(),
                "--lines".into(),
                self.lines_for(scen, kind).to_string(),
                "--wait-go".into(),
            ],
            Scen::FanoutPaced => vec![
                self.p.bench.display().to_string(),
                "emit".into(),
                "--lines".into(),
                self.lines_for(scen, kind).to_string(),
                "--rate".into(),
                self.a.paced_rate.to_string(),
                "--wait-go".into(),
            ],
            _ => vec!["cat".into()],
        }
    }

    fn loadgen_args(&self, scen: Scen, kind: Kind, s: &Server) -> Vec<String> {
        let hub = kind == Kind::Workerhub;
        let id = s.worker.clone().unwrap_or_default();
        let base = format!("ws://127.0.0.1:{}", s.port);
        let url = |since: bool| {
            if hub {
                format!("{base}/ws/{id}{}", if since { "?since=0" } else { "" })
            } else {
                format!("{base}/")
            }
        };
        let proto = if hub { "hub" } else { "raw" }.to_string();
        let v = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let mut args = self.scenario_args(scen, kind, s, &url, &proto, &v);
        if let (true, Some(token)) = (hub, &self.p.token) {
            args.extend(["--token".to_string(), token.clone()]);
        }
        args
    }

    /// Flags for workerhub in this scenario: the 10,000 connections of `conns` all come
    /// from 127.0.0.1, past the default per-address limit.
    fn server_extra(&self, scen: Scen, kind: Kind) -> Vec<String> {
        if scen == Scen::Conns && kind == Kind::Workerhub && self.p.per_ip_limit {
            vec![
                "--max-connections-per-ip".into(),
                (self.a.conns + 100).max(2000).to_string(),
            ]
        } else {
            Vec::new()
        }
    }

    fn scenario_args(
        &self,
        scen: Scen,
        kind: Kind,
        s: &Server,
        url: &dyn Fn(bool) -> String,
        proto: &str,
        v: &dyn Fn(&[&str]) -> Vec<String>,
    ) -> Vec<String> {
        match scen {
            Scen::Echo => {
                let mut a = v(&["echo", "--url", &url(false), "--proto", proto]);
                a.extend(v(&["--n", &self.a.echo_n.to_string()]));
                a
            }
            Scen::Stream => v(&[
                "stream",
                "--url",
                &url(true),
                "--proto",
                proto,
                "--lines",
                &self.lines_for(scen, kind).to_string(),
            ]),
            Scen::Fanout | Scen::FanoutPaced => v(&[
                "fanout",
                "--url",
                &url(true),
                "--proto",
                proto,
                "--clients",
                &self.a.fanout_clients.to_string(),
                "--lines",
                &self.lines_for(scen, kind).to_string(),
            ]),
            Scen::Conns => v(&[
                "conns",
                "--url",
                &url(false),
                "--clients",
                &self.conns_for(kind).to_string(),
                "--pid",
                &s.pid.to_string(),
                "--idle-secs",
                &self.a.idle_secs.to_string(),
            ]),
            Scen::Http => v(&[
                "http",
                "--addr",
                &format!("127.0.0.1:{}", s.port),
                "--threads",
                &self.a.http_threads.to_string(),
                "--secs",
                &self.a.http_secs.to_string(),
            ]),
        }
    }

    fn conns_for(&self, kind: Kind) -> usize {
        if kind == Kind::Workerhub {
            self.a.conns
        } else {
            self.a.conns_per_process
        }
    }

    fn timeout(scen: Scen) -> Duration {
        Duration::from_secs(match scen {
            Scen::Echo | Scen::Http => 90,
            Scen::Stream => 120,
            Scen::Fanout | Scen::FanoutPaced => 180,
            Scen::Conns => 300,
        })
    }

    /// The commands of one (scenario, server), as the report shows them.
    fn describe(&self, scen: Scen, kind: Kind, s: &Server, args: &[String]) -> (String, String) {
        let show = |text: String| {
            let mut text = text.replace(
                &self.p.bench.display().to_string(),
                "target/release/workerhub-bench",
            );
            text = text.replace(&format!(":{}", s.port), ":PORT");
            if let Some(id) = &s.worker {
                text = text.replace(id.as_str(), "ID");
            }
            if let Some(token) = &self.p.token {
                text = text.replace(token.as_str(), "TOKEN");
            }
            text.replace(&format!("--pid {}", s.pid), "--pid SERVER_PID")
        };
        let program = self.program(scen, kind).join(" ");
        let server = match kind {
            Kind::Workerhub => format!(
                "target/release/workerhub --port 0 --data-dir TMP{}{}; POST /api/workers \
                 {{\"project_path\":\"/tmp\",\"ai_cli_type\":\"command\",\"command\":[{}]}}",
                if self.p.token.is_some() {
                    " --token TOKEN"
                } else {
                    ""
                },
                self.server_extra(scen, kind)
                    .iter()
                    .map(|a| format!(" {a}"))
                    .collect::<String>(),
                self.program(scen, kind)
                    .iter()
                    .map(|a| format!("\"{a}\""))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            Kind::Websocketd => {
                format!("websocketd --port=PORT --address=127.0.0.1 --loglevel=error {program}")
            }
            Kind::Reference => format!("target/release/ws-reference --port 0 -- {program}"),
        };
        (
            show(server),
            show(format!("target/release/workerhub-bench {}", args.join(" "))),
        )
    }

    fn run_one(&mut self, scen: Scen, kind: Kind) -> Result<Value, String> {
        self.counter += 1;
        if let Some(l) = load_average()
            .split_whitespace()
            .next()
            .and_then(|l| l.parse().ok())
        {
            self.load_samples.push(l);
        }
        let program = self.program(scen, kind);
        let extra = self.server_extra(scen, kind);
        let mut server = start_server(kind, &program, &self.p, self.counter, &extra)?;
        let args = self.loadgen_args(scen, kind, &server);
        if !self.commands.contains_key(&(scen, kind)) {
            let d = self.describe(scen, kind, &server, &args);
            self.commands.insert((scen, kind), d);
        }
        let result = loadgen(&self.p, &args, Self::timeout(scen));
        let alive = server
            .child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)));
        let result = result.map_err(|e| {
            let said = server.complaints();
            let mut e = e;
            if !alive {
                e.push_str(" [the server had exited]");
            }
            if !said.is_empty() {
                e.push_str(&format!(" [server log: {said}]"));
            }
            e
        });
        drop(server);
        result
    }
}

fn headline(scen: Scen, v: &Value) -> String {
    let f = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    match scen {
        Scen::Echo => format!("p50 {:.0} µs, p99 {:.0} µs", f("p50_us"), f("p99_us")),
        Scen::Stream => format!(
            "{} events/s, {:.1} MB/s",
            num(f("events_per_sec")),
            f("mb_per_sec")
        ),
        Scen::Fanout | Scen::FanoutPaced => format!(
            "{} events/s, slowest {:.0} ms, latency p50 {:.1} ms p99 {:.1} ms, {}/{} complete{}",
            num(f("events_per_sec")),
            f("slowest_ms"),
            f("latency_p50_ms"),
            f("latency_p99_ms"),
            v["complete_clients"],
            v["connected"],
            match v["close_codes"].as_object() {
                Some(m) if !m.is_empty() => format!(", closed by the server: {}", v["close_codes"]),
                _ => String::new(),
            }
        ),
        Scen::Conns => format!(
            "{} held, RSS {:.0} MB, {} threads, idle CPU {:.2}%, {:.1} s to open",
            v["held"],
            f("rss_mb"),
            v["tree_threads"],
            f("idle_cpu_pct"),
            f("connect_secs")
        ),
        Scen::Http => format!("{} req/s, p99 {:.0} µs", num(f("req_per_sec")), f("p99_us")),
    }
}

/// A number for a table: thousands separated, decimals by magnitude.
fn num(x: f64) -> String {
    if !x.is_finite() {
        return "–".into();
    }
    if x.abs() >= 1000.0 || (x.fract() == 0.0 && x.abs() < 1e15) {
        let s = format!("{:.0}", x);
        let (sign, digits) = s.strip_prefix('-').map_or(("", s.as_str()), |d| ("-", d));
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        format!("{sign}{out}")
    } else if x.abs() >= 100.0 {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

struct Figure {
    scen: Scen,
    key: &'static str,
    label: &'static str,
    higher_better: bool,
}

const FIGURES: &[Figure] = &[
    Figure {
        scen: Scen::Echo,
        key: "p50_us",
        label: "round trip p50 (µs)",
        higher_better: false,
    },
    Figure {
        scen: Scen::Echo,
        key: "p99_us",
        label: "round trip p99 (µs)",
        higher_better: false,
    },
    Figure {
        scen: Scen::Echo,
        key: "max_us",
        label: "round trip max (µs)",
        higher_better: false,
    },
    Figure {
        scen: Scen::Stream,
        key: "events_per_sec",
        label: "events/s to one client",
        higher_better: true,
    },
    Figure {
        scen: Scen::Stream,
        key: "mb_per_sec",
        label: "MB/s (WebSocket payload)",
        higher_better: true,
    },
    Figure {
        scen: Scen::Stream,
        key: "bytes_per_event",
        label: "bytes per event",
        higher_better: false,
    },
    Figure {
        scen: Scen::Fanout,
        key: "events_per_sec",
        label: "delivered events/s (all clients)",
        higher_better: true,
    },
    Figure {
        scen: Scen::Fanout,
        key: "slowest_ms",
        label: "slowest client done (ms)",
        higher_better: false,
    },
    Figure {
        scen: Scen::Fanout,
        key: "latency_p50_ms",
        label: "delivery latency p50 (ms)",
        higher_better: false,
    },
    Figure {
        scen: Scen::Fanout,
        key: "latency_p99_ms",
        label: "delivery latency p99 (ms)",
        higher_better: false,
    },
    Figure {
        scen: Scen::Fanout,
        key: "connect_secs",
        label: "time to connect all clients (s)",
        higher_better: false,
    },
    Figure {
        scen: Scen::Fanout,
        key: "client_cpu_secs_delivery",
        label: "load generator CPU during delivery (s)",
        higher_better: false,
    },
    Figure {
        scen: Scen::FanoutPaced,
        key: "events_per_sec",
        label: "delivered events/s (all clients)",
        higher_better: true,
    },
    Figure {
        scen: Scen::FanoutPaced,
        key: "latency_p50_ms",
        label: "delivery latency p50 (ms)",
        higher_better: false,
    },
    Figure {
        scen: Scen::FanoutPaced,
        key: "latency_p99_ms",
        label: "delivery latency p99 (ms)",
        higher_better: false,
    },
    Figure {
        scen: Scen::FanoutPaced,
        key: "latency_max_ms",
        label: "delivery latency max (ms)",
        higher_better: false,
    },
    Figure {
        scen: Scen::FanoutPaced,
        key: "client_cpu_secs_delivery",
        label: "load generator CPU during delivery (s)",
        higher_better: false,
    },
    Figure {
        scen: Scen::Conns,
        key: "held",
        label: "connections held",
        higher_better: true,
    },
    Figure {
        scen: Scen::Conns,
        key: "rss_mb",
        label: "server process RSS (MB)",
        higher_better: false,
    },
    Figure {
        scen: Scen::Conns,
        key: "tree_pss_mb",
        label: "server + children PSS (MB)",
        higher_better: false,
    },
    Figure {
        scen: Scen::Conns,
        key: "kb_per_conn",
        label: "memory per connection, PSS (KB)",
        higher_better: false,
    },
    Figure {
        scen: Scen::Conns,
        key: "tree_threads",
        label: "threads, server + children",
        higher_better: false,
    },
    Figure {
        scen: Scen::Conns,
        key: "tree_procs",
        label: "processes, server + children",
        higher_better: false,
    },
    Figure {
        scen: Scen::Conns,
        key: "idle_cpu_pct",
        label: "CPU while idle (% of a core)",
        higher_better: false,
    },
    Figure {
        scen: Scen::Conns,
        key: "connect_secs",
        label: "time to open all (s)",
        higher_better: false,
    },
    Figure {
        scen: Scen::Http,
        key: "req_per_sec",
        label: "GET /api/workers, requests/s",
        higher_better: true,
    },
    Figure {
        scen: Scen::Http,
        key: "p99_us",
        label: "GET /api/workers, p99 (µs)",
        higher_better: false,
    },
];

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn machine() -> Vec<(String, String)> {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_kb: u64 = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let cmd = |prog: &str, args: &[&str]| {
        Command::new(prog)
            .args(args)
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_else(|| "unknown".into())
    };
    let mut fd_limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes to a local, initialized struct.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut fd_limit) };
    let dirty = !cmd("git", &["status", "--porcelain", "--untracked-files=no"]).is_empty();
    vec![
        ("CPU".into(), format!("{model}, {cores} cores available")),
        (
            "memory".into(),
            format!("{:.1} GiB", mem_kb as f64 / 1024.0 / 1024.0),
        ),
        (
            "kernel".into(),
            format!("Linux {}", read("/proc/sys/kernel/osrelease").trim()),
        ),
        (
            "pid_max".into(),
            read("/proc/sys/kernel/pid_max").trim().to_string(),
        ),
        (
            "descriptor limit (hard)".into(),
            fd_limit.rlim_max.to_string(),
        ),
        (
            "websocketd".into(),
            cmd("dpkg-query", &["-W", "-f", "${Version}", "websocketd"]),
        ),
        ("rustc".into(), cmd("rustc", &["--version"])),
        (
            "workerhub commit".into(),
            format!(
                "{}{}",
                cmd("git", &["rev-parse", "--short", "HEAD"]),
                if dirty {
                    " (with uncommitted changes)"
                } else {
                    ""
                }
            ),
        ),
    ]
}

pub fn run(a: &SuiteArgs) -> Result<(), String> {
    sys::raise_fd_limit();
    let mut a_eff = a.clone();
    let a = if a.quick {
        a_eff.runs = a.runs.min(2);
        a_eff.echo_runs = a.echo_runs.min(2);
        a_eff.heavy_runs = a.heavy_runs.min(1);
        a_eff.echo_n = 50;
        a_eff.stream_lines = 20_000;
        a_eff.stream_lines_websocketd = 5_000;
        a_eff.fanout_clients = 20;
        a_eff.fanout_lines = 200;
        a_eff.paced_lines = 100;
        a_eff.paced_rate = 200;
        a_eff.stream_lines_reference = 20_000;
        a_eff.conns = 50;
        a_eff.conns_per_process = 20;
        a_eff.idle_secs = 0.5;
        a_eff.http_secs = 0.5;
        a_eff.approval_turns = 3;
        a_eff.approval_asks = 5;
        a_eff.approval_viewers = 2;
        a_eff.turn_start_turns = 2;
        &a_eff
    } else {
        a
    };
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let dir = exe.parent().ok_or("no folder")?.to_path_buf();
    let tmp = std::env::temp_dir().join(format!("workerhub-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).map_err(|e| e.to_string())?;
    struct RemoveDir(PathBuf);
    impl Drop for RemoveDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _cleanup = RemoveDir(tmp.clone());
    let p = Paths {
        bench: exe.clone(),
        workerhub: a.workerhub.clone().unwrap_or_else(|| dir.join("workerhub")),
        reference: a
            .reference
            .clone()
            .unwrap_or_else(|| dir.join("ws-reference")),
        websocketd: a.websocketd.clone(),
        tmp,
        token: None,
        per_ip_limit: false,
        command_limits: false,
        claude_binary_flag: false,
        approval_cli: a
            .approval_cli
            .clone()
            .unwrap_or_else(|| dir.join("approval-cli")),
    };
    // Servers of different ages: use the flags this one has (authentication stays on, as
    // it is by default, with a token of the suite's own).
    let mut p = p;
    let help = Command::new(&p.workerhub)
        .arg("--help")
        .stderr(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    if help.contains("--token") {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        // Fixed width (36 characters): servers refuse short tokens.
        p.token = Some(format!(
            "workerhub-bench-{:010}-{nanos:09}",
            std::process::id()
        ));
    }
    p.per_ip_limit = help.contains("--max-connections-per-ip");
    p.command_limits =
        help.contains("--max-commands ") && help.contains("--max-commands-per-token");
    p.claude_binary_flag = help.contains("--claude-binary");
    let wanted = |name: &str, list: &[String]| list.is_empty() || list.iter().any(|s| s == name);
    let mut kinds = Vec::new();
    for kind in [Kind::Workerhub, Kind::Websocketd, Kind::Reference] {
        if !wanted(kind.name(), &a.servers) {
            continue;
        }
        let path = match kind {
            Kind::Workerhub => &p.workerhub,
            Kind::Websocketd => &p.websocketd,
            Kind::Reference => &p.reference,
        };
        if path.exists() {
            kinds.push(kind);
        } else {
            eprintln!("{} not found at {}: skipped", kind.name(), path.display());
        }
    }
    let started = Instant::now();
    let load_before = load_average();
    let mut suite = Suite {
        a,
        p,
        kinds,
        results: BTreeMap::new(),
        errors: Vec::new(),
        commands: BTreeMap::new(),
        counter: 0,
        load: (load_before, String::new()),
        load_samples: Vec::new(),
    };
    for scen in Scen::ALL {
        if !wanted(scen.name(), &a.only) {
            continue;
        }
        let runs = match scen {
            Scen::Echo => a.echo_runs,
            Scen::Fanout | Scen::FanoutPaced | Scen::Conns => a.heavy_runs,
            _ => a.runs,
        };
        for run in 1..=runs {
            for kind in suite.kinds.clone() {
                // websocketd and the reference have no REST API.
                if scen == Scen::Http && kind != Kind::Workerhub {
                    continue;
                }
                let t = Instant::now();
                match suite.run_one(scen, kind) {
                    Ok(v) => {
                        eprintln!(
                            "[{} {run}/{runs}] {:<10} {} ({:.1} s)",
                            scen.name(),
                            kind.name(),
                            headline(scen, &v),
                            t.elapsed().as_secs_f64()
                        );
                        suite.results.entry((scen, kind)).or_default().push(v);
                    }
                    Err(e) => {
                        eprintln!(
                            "[{} {run}/{runs}] {:<10} FAILED: {e}",
                            scen.name(),
                            kind.name()
                        );
                        suite.errors.push(format!(
                            "{} run {run} on {}: {e}",
                            scen.name(),
                            kind.name()
                        ));
                    }
                }
            }
        }
    }
    let agent = if wanted("agent", &a.only) && suite.kinds.contains(&Kind::Workerhub) {
        Some(agent_section(&mut suite))
    } else {
        None
    };
    let supervised = ["approvals", "turn-start", "supervision"]
        .iter()
        .any(|name| wanted(name, &a.only));
    let supervision = if supervised && suite.kinds.contains(&Kind::Workerhub) {
        Some(supervision_section(&mut suite))
    } else {
        None
    };
    let remote = if wanted("remote", &a.only) && suite.kinds.contains(&Kind::Workerhub) {
        Some(remote_section(&mut suite))
    } else {
        None
    };
    suite.load.1 = load_average();
    let secs = started.elapsed().as_secs_f64();
    let report = report(&suite, agent, supervision, remote, secs);
    if let Some(parent) = a.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
    }
    let tmp_out = a.out.with_extension("md.tmp");
    std::fs::write(&tmp_out, report)
        .and_then(|_| std::fs::rename(&tmp_out, &a.out))
        .map_err(|e| format!("write {}: {e}", a.out.display()))?;
    eprintln!("wrote {} ({secs:.0} s)", a.out.display());
    Ok(())
}

/// Workers on another host against local ones: `workerhub-bench remote` starts its own
/// sshd and workerhub, local and remote variants taking turns in one run.
fn remote_section(suite: &mut Suite) -> String {
    let a = suite.a;
    let (runs, lines, pings) = if a.quick {
        ("1", "20000", "20")
    } else {
        ("5", "1000000", "300")
    };
    let args: Vec<String> = [
        "remote",
        "--workerhub",
        &suite.p.workerhub.display().to_string(),
        "--runs",
        runs,
        "--lines",
        lines,
        "--pings",
        pings,
        "--outages",
        "3",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let shown = format!("target/release/workerhub-bench {}", args.join(" ")).replace(
        &suite.p.workerhub.display().to_string(),
        "target/release/workerhub",
    );
    let t = Instant::now();
    let v = match loadgen(&suite.p, &args, Duration::from_secs(900)) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("[remote] not measured: {e}");
            return format!("Not measured: {e}.\n");
        }
    };
    let f = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    eprintln!(
        "[remote] stream {:.2}× local, echo p50 {:.0} µs vs {:.0} µs, reconnect {:.0} ms ({:.0} s)",
        f("stream_remote_over_local"),
        f("echo_remote_p50_us"),
        f("echo_local_p50_us"),
        f("reconnect_median_ms"),
        t.elapsed().as_secs_f64()
    );
    let ratio = f("stream_remote_over_local");
    let verdict = if a.quick {
        "not judged (quick run)"
    } else if ratio >= 0.5 {
        "met"
    } else {
        "**missed**"
    };
    let mut md = String::new();
    let _ = writeln!(
        md,
        "A real OpenSSH server on this machine (`bench-ssh`, a loopback port) is the other \
         host, so the figures are workerhub's and ssh's own costs, not a network's. Local \
         and remote workers take turns, {runs} runs each, on one server.\n\n\
         | | local | remote (ssh) | remote / local |\n| --- | --- | --- | --- |"
    );
    let _ = writeln!(
        md,
        "| stream, {} lines to one client (events/s, median) | {} | {} | {:.2} (target ≥ 0.5: {verdict}) |",
        v["lines"],
        num(f("stream_local_eps")),
        num(f("stream_remote_eps")),
        ratio
    );
    let _ = writeln!(
        md,
        "| message to first output, `cat` (p50 / p99, µs, {} messages) | {} / {} | {} / {} | {:.1} / {:.1} |",
        v["pings"],
        num(f("echo_local_p50_us")),
        num(f("echo_local_p99_us")),
        num(f("echo_remote_p50_us")),
        num(f("echo_remote_p99_us")),
        f("echo_remote_p50_us") / f("echo_local_p50_us"),
        f("echo_remote_p99_us") / f("echo_local_p99_us"),
    );
    let outages: Vec<String> = v["reconnect_ms"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x.as_f64()).map(num).collect())
        .unwrap_or_default();
    let _ = writeln!(
        md,
        "\n**Reconnect**: sshd stopped (with every session) until the worker showed \
         `disconnected`, down 1 s, started again: from sshd listening to the first resumed \
         `output` event, median {} ms (each outage: {} ms). This includes workerhub's \
         back-off between attempts (0.2 s doubling), which is most of it.\n\n\
         Command: `{shown}`\n",
        num(f("reconnect_median_ms")),
        outages.join(", ")
    );
    md
}

/// `args` with `--token` added when workerhub runs with one.
fn with_token(mut args: Vec<String>, p: &Paths) -> Vec<String> {
    if let Some(token) = &p.token {
        args.extend(["--token".to_string(), token.clone()]);
    }
    args
}

/// The agent-protocol figures, only when `/ws` answers `connection:ping`.
fn agent_section(suite: &mut Suite) -> String {
    let server = match start_server(Kind::Workerhub, &["cat".into()], &suite.p, 100_000, &[]) {
        Ok(s) => s,
        Err(e) => return format!("Not measured: could not start workerhub ({e}).\n"),
    };
    let url = format!("ws://127.0.0.1:{}/ws", server.port);
    let probe = loadgen(
        &suite.p,
        &with_token(
            vec![
                "agent".into(),
                "--probe".into(),
                "--url".into(),
                url.clone(),
            ],
            &suite.p,
        ),
        Duration::from_secs(20),
    );
    drop(server);
    match probe {
        Ok(v) if v["supported"] == true => {}
        Ok(v) => {
            eprintln!("[agent] skipped: {}", v["reason"]);
            return format!(
                "Skipped: `/ws` does not answer `connection:ping` in this build ({}).\n",
                v["reason"].as_str().unwrap_or("no answer").trim()
            );
        }
        Err(e) => return format!("Skipped: the probe failed ({e}).\n"),
    }
    let (clients, requests) = if suite.a.quick { (5, 10) } else { (50, 100) };
    // One token for all the clients: lift the per-token cap on concurrent commands so
    // that the figures are round trips, not the cap's refusals (429 too_many_commands).
    let extra: Vec<String> = if suite.p.command_limits {
        let n = (clients + 14).to_string();
        vec![
            "--max-commands".into(),
            n.clone(),
            "--max-commands-per-token".into(),
            n,
        ]
    } else {
        Vec::new()
    };
    let mut runs: Vec<Value> = Vec::new();
    let mut command = String::new();
    for run in 1..=suite.a.heavy_runs {
        let server = match start_server(
            Kind::Workerhub,
            &["cat".into()],
            &suite.p,
            100_000 + run,
            &extra,
        ) {
            Ok(s) => s,
            Err(e) => return format!("Not measured: could not start workerhub ({e}).\n"),
        };
        let args: Vec<String> = [
            "agent",
            "--url",
            &format!("ws://127.0.0.1:{}/ws", server.port),
            "--clients",
            &clients.to_string(),
            "--requests",
            &requests.to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let args = with_token(args, &suite.p);
        command = format!("target/release/workerhub-bench {}", args.join(" "))
            .replace(&format!(":{}", server.port), ":PORT");
        if let Some(token) = &suite.p.token {
            command = command.replace(token.as_str(), "TOKEN");
        }
        match loadgen(&suite.p, &args, Duration::from_secs(120)) {
            Ok(v) => {
                eprintln!(
                    "[agent {run}] ping avg {:.2} ms, exec avg {:.2} ms",
                    v["connection_ping_avg_ms"].as_f64().unwrap_or(f64::NAN),
                    v["command_execute_avg_ms"].as_f64().unwrap_or(f64::NAN)
                );
                runs.push(v);
            }
            Err(e) => suite.errors.push(format!("agent run {run}: {e}")),
        }
    }
    let mut out = format!(
        "{clients} clients on `/ws`, {requests} requests each, in turn `connection:ping`, \
         `command:execute` of `true` and `system:status`; round trip to the answer carrying \
         the request's `correlation_id`. Median of {} runs (min–max).\n\n\
         * server: `target/release/workerhub --port 0 --data-dir TMP{}{}`\n\
         * load: `{command}`\n\n\
         | figure | workerhub |\n| --- | --- |\n",
        runs.len(),
        if suite.p.token.is_some() {
            " --token TOKEN"
        } else {
            ""
        },
        extra.iter().map(|a| format!(" {a}")).collect::<String>(),
    );
    for (key, label) in [
        (
            "connection_ping_avg_ms",
            "`connection:ping` round trip, average (ms)",
        ),
        (
            "connection_ping_p99_ms",
            "`connection:ping` round trip, p99 (ms)",
        ),
        (
            "command_execute_avg_ms",
            "`command:execute` of `true`, average (ms)",
        ),
        (
            "command_execute_p99_ms",
            "`command:execute` of `true`, p99 (ms)",
        ),
        ("system_status_avg_ms", "`system:status`, average (ms)"),
        ("failed_requests", "requests without a good final answer"),
    ] {
        let vals: Vec<f64> = runs.iter().filter_map(|v| v[key].as_f64()).collect();
        let _ = writeln!(out, "| {label} | {} |", cell(&vals));
    }
    let mut codes: BTreeMap<String, u64> = BTreeMap::new();
    for v in &runs {
        if let Some(m) = v["error_answers"].as_object() {
            for (code, n) in m {
                *codes.entry(code.clone()).or_default() += n.as_u64().unwrap_or(0);
            }
        }
    }
    if !codes.is_empty() {
        let list: Vec<String> = codes.iter().map(|(c, n)| format!("`{c}` {n}")).collect();
        let _ = writeln!(out, "\nError answers, all runs: {}.", list.join(", "));
    }
    out
}

/// The file system `path` is on (its type and mount point, from /proc/mounts).
fn file_system_of(path: &Path) -> String {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (_, at, kind) = (fields.next()?, fields.next()?, fields.next()?);
            path.starts_with(at)
                .then(|| (at.to_string(), kind.to_string()))
        })
        .max_by_key(|(at, _)| at.len())
        .map_or_else(
            || "unknown".to_string(),
            |(at, kind)| format!("{kind} (mounted on {at})"),
        )
}

/// Why a part of the supervision section was left out: `--only` named the other.
const NOT_ASKED: &str = "not asked for (`--only`)";

/// The pause of turn-start between a turn's end and the next message (s).
const TURN_PAUSE_SECS: &str = "0.3";

/// One load generator run of the supervision section.
struct SupervisionJob {
    /// `approvals-V` (V viewers) or `turn-start`.
    name: String,
    /// The server's `--claude-binary`, and how the report shows it.
    binary: PathBuf,
    shown_binary: String,
    args: Vec<String>,
    timeout: Duration,
}

/// The supervision figures: approval round trips through approval-cli, and turn start
/// with the real Claude Code, a live worker against a per-turn one. As in the other
/// scenarios the variants take turns run by run, each run on a fresh server.
fn supervision_section(suite: &mut Suite) -> String {
    let a = suite.a;
    if !suite.p.claude_binary_flag {
        return "Not measured: this workerhub has no `--claude-binary`.\n".into();
    }
    let part =
        |name: &str| a.only.is_empty() || a.only.iter().any(|s| s == name || s == "supervision");
    let approval_cli = suite.p.approval_cli.clone();
    let approvals: Result<(), String> = if !part("approvals") {
        Err(NOT_ASKED.into())
    } else if approval_cli.exists() {
        Ok(())
    } else {
        Err(format!(
            "{} is missing (`cargo build --release --workspace --bins` builds it)",
            approval_cli.display()
        ))
    };
    let claude: Result<PathBuf, String> = if !part("turn-start") {
        Err(NOT_ASKED.into())
    } else {
        std::fs::canonicalize(&a.claude).map_err(|_| {
            format!(
                "Claude Code is not installed at `{}` (`make clis` installs it)",
                a.claude.display()
            )
        })
    };
    let mut viewers = vec![1];
    if a.approval_viewers > 1 {
        viewers.push(a.approval_viewers);
    }
    let shown_cli = match &a.approval_cli {
        None => "target/release/approval-cli".to_string(),
        Some(p) => p.display().to_string(),
    };
    let mut results: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut commands: BTreeMap<String, (String, String)> = BTreeMap::new();
    let mut loads: Vec<f64> = Vec::new();
    let approval_runs = if approvals.is_ok() { a.runs } else { 0 };
    let turn_runs = if claude.is_ok() { a.heavy_runs } else { 0 };
    let v = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    for run in 1..=approval_runs.max(turn_runs) {
        let mut jobs = Vec::new();
        if run <= approval_runs {
            for &n in &viewers {
                jobs.push(SupervisionJob {
                    name: format!("approvals-{n}"),
                    binary: approval_cli.clone(),
                    shown_binary: shown_cli.clone(),
                    args: v(&[
                        "approvals",
                        "--turns",
                        &a.approval_turns.to_string(),
                        "--asks",
                        &a.approval_asks.to_string(),
                        "--viewers",
                        &n.to_string(),
                    ]),
                    timeout: Duration::from_secs(180),
                });
            }
        }
        if let Ok(claude) = &claude
            && run <= turn_runs
        {
            jobs.push(SupervisionJob {
                name: "turn-start".into(),
                binary: claude.clone(),
                shown_binary: a.claude.display().to_string(),
                args: v(&[
                    "turn-start",
                    "--turns",
                    &a.turn_start_turns.to_string(),
                    "--pause-secs",
                    TURN_PAUSE_SECS,
                    "--timeout",
                    "300",
                ]),
                timeout: Duration::from_secs(330),
            });
        }
        for job in jobs {
            if let Some(l) = load_average()
                .split_whitespace()
                .next()
                .and_then(|l| l.parse().ok())
            {
                loads.push(l);
                suite.load_samples.push(l);
            }
            suite.counter += 1;
            let t = Instant::now();
            let result = run_supervision_job(suite, &job, &mut commands);
            match result {
                Ok(v) => {
                    eprintln!(
                        "[{} {run}] {} ({:.1} s)",
                        job.name,
                        supervision_headline(&v),
                        t.elapsed().as_secs_f64()
                    );
                    results.entry(job.name.clone()).or_default().push(v);
                }
                Err(e) => {
                    eprintln!("[{} {run}] FAILED: {e}", job.name);
                    suite.errors.push(format!("{} run {run}: {e}", job.name));
                }
            }
        }
    }
    supervision_text(
        suite,
        &SupervisionOutcome {
            approvals: approvals.err(),
            claude: claude.err(),
            viewers,
            results,
            commands,
            loads,
        },
    )
}

/// Starts a server for `job` and runs its load generator.
fn run_supervision_job(
    suite: &Suite,
    job: &SupervisionJob,
    commands: &mut BTreeMap<String, (String, String)>,
) -> Result<Value, String> {
    let extra = vec![
        "--claude-binary".to_string(),
        job.binary.display().to_string(),
    ];
    let server = start_server(
        Kind::Workerhub,
        &[],
        &suite.p,
        200_000 + suite.counter,
        &extra,
    )?;
    let mut args = vec!["supervision".to_string()];
    args.extend(job.args.iter().cloned());
    args.extend(["--addr".to_string(), format!("127.0.0.1:{}", server.port)]);
    let args = with_token(args, &suite.p);
    commands.entry(job.name.clone()).or_insert_with(|| {
        let mut load = format!("target/release/workerhub-bench {}", args.join(" "))
            .replace(&format!(":{}", server.port), ":PORT");
        if let Some(token) = &suite.p.token {
            load = load.replace(token.as_str(), "TOKEN");
        }
        let server = format!(
            "target/release/workerhub --port 0 --data-dir TMP{} --claude-binary {}",
            if suite.p.token.is_some() {
                " --token TOKEN"
            } else {
                ""
            },
            job.shown_binary
        );
        (server, load)
    });
    loadgen(&suite.p, &args, job.timeout).map_err(|e| {
        let said = server.complaints();
        if said.is_empty() {
            e
        } else {
            format!("{e} [server log: {said}]")
        }
    })
}

fn supervision_headline(v: &Value) -> String {
    let f = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    if v["scenario"] == "turn-start" {
        format!(
            "first event: live {:.1} ms, per-turn {:.0} ms ({:.0}×)",
            f("live_median_ms"),
            f("per_turn_median_ms"),
            f("per_turn_over_live")
        )
    } else {
        format!(
            "{} viewer(s): request p50 {:.0} µs p99 {:.0} µs, answer p50 {:.0} µs p99 {:.0} µs",
            v["viewers"],
            f("request_p50_us"),
            f("request_p99_us"),
            f("answer_p50_us"),
            f("answer_p99_us")
        )
    }
}

/// What the supervision runs gave, for the report.
struct SupervisionOutcome {
    /// Why approvals were not measured.
    approvals: Option<String>,
    /// Why turn start was not measured.
    claude: Option<String>,
    viewers: Vec<usize>,
    /// `approvals-V` / `turn-start` -> each run's answer.
    results: BTreeMap<String, Vec<Value>>,
    /// `approvals-V` / `turn-start` -> (server command, load command).
    commands: BTreeMap<String, (String, String)>,
    /// The 1-minute load average before each run.
    loads: Vec<f64>,
}

fn supervision_text(suite: &Suite, o: &SupervisionOutcome) -> String {
    let a = suite.a;
    let judged = !a.quick;
    let vals = |name: &str, key: &str| -> Vec<f64> {
        o.results
            .get(name)
            .map(|runs| runs.iter().filter_map(|v| v[key].as_f64()).collect())
            .unwrap_or_default()
    };
    let med = |name: &str, key: &str| summary(&vals(name, key)).map(|s| s.0);
    let fmt = |x: Option<f64>| x.map_or("–".to_string(), num);
    let mut md = String::new();
    if let Some((lo, hi)) = o
        .loads
        .iter()
        .fold(None, |acc: Option<(f64, f64)>, &l| match acc {
            None => Some((l, l)),
            Some((lo, hi)) => Some((lo.min(l), hi.max(l))),
        })
    {
        let _ = writeln!(
            md,
            "1-minute load average before each of these runs: {} to {}.\n",
            num(lo),
            num(hi)
        );
    }
    let mut targets: Vec<(String, String, Option<bool>)> = Vec::new();

    match &o.approvals {
        Some(why) if why == NOT_ASKED => {}
        Some(why) => {
            let _ = writeln!(md, "### Approval round trips\n\nNot measured: {why}.\n");
        }
        None => {
            let _ = writeln!(md, "### Approval round trips\n");
            let counted = a.approval_turns.saturating_sub(1);
            let _ = writeln!(
                md,
                "A `claude` worker whose program is `approval-cli` (`bench/src/bin/approval-cli.rs`, \
                 not product code): a stand-in for Claude Code's live stream-json session that \
                 answers at once, so that only workerhub's path is timed. Each turn it asks {} \
                 times to use a tool, one request after the other, and a client on `/ws/{{id}}` \
                 denies each request as it arrives. Both one-way times are taken on the machine's \
                 CLOCK_MONOTONIC: **request**, from just before the program writes its \
                 `can_use_tool` control request to the client reading the `approval_request` \
                 frame; **answer**, from just before the client sends its deny (the time rides in \
                 the deny message) to the program reading the `control_response` line. {} turns \
                 after one warm-up turn, {} requests per run.{} Median of {} runs (min–max), \
                 each on a fresh server whose data folder (TMP, under `{}`) is on {}: the server writes \
                 the worker's history and state there as requests come and go.\n",
                a.approval_asks,
                counted,
                num((counted * a.approval_asks) as f64),
                match o.viewers.last().copied().unwrap_or(1) {
                    1 => String::new(),
                    2 => " With 2 viewers, one more client watches the worker without answering; \
                          *every viewer* pools the request times of both."
                        .to_string(),
                    n => format!(
                        " With {n} viewers, {} more clients watch the worker without answering; \
                         *every viewer* pools the request times of all of them.",
                        n - 1
                    ),
                },
                a.runs,
                std::env::temp_dir().display(),
                file_system_of(&suite.p.tmp)
            );
            let mut header = "| figure |".to_string();
            let mut rule = "| --- |".to_string();
            for n in &o.viewers {
                header.push_str(&format!(" {n} viewer{} |", if *n == 1 { "" } else { "s" }));
                rule.push_str(" --- |");
            }
            let _ = writeln!(md, "{header}\n{rule}");
            let rows = [
                (
                    "request_p50_us",
                    "request: `can_use_tool` → `approval_request` at the answering client, p50 (µs)",
                ),
                ("request_p99_us", "request, p99 (µs)"),
                ("request_max_us", "request, max (µs)"),
                (
                    "request_all_viewers_p50_us",
                    "request to every viewer, p50 (µs)",
                ),
                (
                    "request_all_viewers_p99_us",
                    "request to every viewer, p99 (µs)",
                ),
                (
                    "answer_p50_us",
                    "answer: the client's deny → `control_response` read by the program, p50 (µs)",
                ),
                ("answer_p99_us", "answer, p99 (µs)"),
                ("answer_max_us", "answer, max (µs)"),
            ];
            for (key, label) in rows {
                if key.contains("all_viewers") && o.viewers.len() < 2 {
                    continue;
                }
                let mut row = format!("| {label} |");
                for n in &o.viewers {
                    row.push_str(&format!(
                        " {} |",
                        cell(&vals(&format!("approvals-{n}"), key))
                    ));
                }
                let _ = writeln!(md, "{row}");
            }
            let _ = writeln!(md);
            for n in &o.viewers {
                let name = format!("approvals-{n}");
                let viewers = if *n == 1 {
                    String::new()
                } else {
                    format!(", {n} viewers")
                };
                for (what, key) in [
                    ("request (`can_use_tool` → `approval_request`)", "request"),
                    ("answer (deny → `control_response`)", "answer"),
                ] {
                    let (p50, p99) = (
                        med(&name, &format!("{key}_p50_us")),
                        med(&name, &format!("{key}_p99_us")),
                    );
                    targets.push((
                        format!("approval {what}{viewers}: p50 and p99 under 5 ms"),
                        format!("p50 {} µs, p99 {} µs", fmt(p50), fmt(p99)),
                        match (p50, p99) {
                            (Some(x), Some(y)) if judged => Some(x < 5000.0 && y < 5000.0),
                            _ => None,
                        },
                    ));
                }
            }
        }
    }

    let turn_start = "### Turn start: live session against a process per turn\n";
    match &o.claude {
        Some(why) if why == NOT_ASKED => {}
        Some(why) => {
            let _ = writeln!(md, "{turn_start}\nNot measured: {why}.\n");
        }
        None => {
            let _ = writeln!(md, "{turn_start}");
            let version = Command::new(&a.claude)
                .arg("--version")
                .stderr(Stdio::null())
                .output()
                .ok()
                .filter(|out| out.status.success())
                .and_then(|out| {
                    let text = String::from_utf8_lossy(&out.stdout).into_owned();
                    text.split_whitespace().next().map(|v| format!(" {v}"))
                })
                .unwrap_or_default();
            let first_events: Vec<String> = o
                .results
                .get("turn-start")
                .into_iter()
                .flatten()
                .flat_map(|v| {
                    ["live_first_events", "per_turn_first_events"]
                        .iter()
                        .flat_map(|k| v[*k].as_array().cloned().unwrap_or_default())
                        .filter_map(|e| e.as_str().map(|s| format!("`{s}`")))
                        .collect::<Vec<_>>()
                })
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            let _ = writeln!(
                md,
                "The real Claude Code{version} against the integration tests' mock model API \
                 (`tests/support/mock_llm.rs`, run by the load generator; every request gets the \
                 same short text), the same prompt every turn, two workers on one server: \
                 `\"session\": \"live\"` (one process for every turn) and `\"session\": \
                 \"per-turn\"` (a process per message, resuming the session). Their messages take \
                 turns, each {TURN_PAUSE_SECS} s after the previous turn ended. The figure is the time from \
                 sending the message on `/ws/{{id}}` to the turn's first `output` event (here {}), \
                 over turns 2–{} (on turn 1 the live worker starts its process; it is shown \
                 apart). Median of {} runs (min–max) of each run's median; the ratio is of the \
                 medians.\n",
                if first_events.is_empty() {
                    "–".to_string()
                } else {
                    first_events.join(", ")
                },
                a.turn_start_turns,
                a.heavy_runs
            );
            let _ = writeln!(
                md,
                "| figure | live | per-turn | per-turn / live |\n| --- | --- | --- | --- |"
            );
            for (key, label) in [
                (
                    "median_ms",
                    format!(
                        "message → first output event, turns 2–{} (ms)",
                        a.turn_start_turns
                    ),
                ),
                (
                    "text_median_ms",
                    "message → first `text` (the model's answer) (ms)".to_string(),
                ),
                (
                    "turn_median_ms",
                    "message → end of the turn (`idle`) (ms)".to_string(),
                ),
                (
                    "first_turn_ms",
                    "turn 1: message → first output event (ms)".to_string(),
                ),
            ] {
                let (live, per_turn) = (format!("live_{key}"), format!("per_turn_{key}"));
                let _ = writeln!(
                    md,
                    "| {label} | {} | {} | {} |",
                    cell(&vals("turn-start", &live)),
                    cell(&vals("turn-start", &per_turn)),
                    ratio(med("turn-start", &per_turn), med("turn-start", &live))
                );
            }
            let _ = writeln!(md);
            let (live, per_turn) = (
                med("turn-start", "live_median_ms"),
                med("turn-start", "per_turn_median_ms"),
            );
            targets.push((
                "turn start: a live session's later turns at least 5× sooner than a process per turn"
                    .into(),
                format!(
                    "per-turn {} ms, live {} ms ({})",
                    fmt(per_turn),
                    fmt(live),
                    ratio(per_turn, live)
                ),
                match (live, per_turn) {
                    (Some(l), Some(p)) if judged => Some(p >= 5.0 * l),
                    _ => None,
                },
            ));
        }
    }

    if !targets.is_empty() {
        let _ = writeln!(md, "### Targets\n");
        let _ = writeln!(md, "| target | measured (medians) | |\n| --- | --- | --- |");
        for (target, measured, met) in targets {
            let verdict = match met {
                Some(true) => "**MET**",
                Some(false) => "**MISSED**",
                None => "not judged",
            };
            let _ = writeln!(md, "| {target} | {measured} | {verdict} |");
        }
        let _ = writeln!(md);
    }
    if !o.commands.is_empty() {
        let _ = writeln!(md, "### Commands\n");
        for (name, (server, load)) in &o.commands {
            let _ = writeln!(md, "* {name}:\n  * server: `{server}`\n  * load: `{load}`");
        }
        let _ = writeln!(md);
    }
    md
}

fn values(suite: &Suite, scen: Scen, kind: Kind, key: &str) -> Vec<f64> {
    suite
        .results
        .get(&(scen, kind))
        .map(|runs| runs.iter().filter_map(|v| v[key].as_f64()).collect())
        .unwrap_or_default()
}

fn median(suite: &Suite, scen: Scen, kind: Kind, key: &str) -> Option<f64> {
    summary(&values(suite, scen, kind, key)).map(|s| s.0)
}

fn cell(vals: &[f64]) -> String {
    match summary(vals) {
        None => "–".into(),
        Some((m, lo, hi)) if vals.len() > 1 => format!("{} ({}–{})", num(m), num(lo), num(hi)),
        Some((m, _, _)) => num(m),
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b != 0.0 => {
            let r = a / b;
            if r >= 10.0 {
                format!("{r:.0}×")
            } else if r >= 0.1 || r == 0.0 {
                format!("{r:.2}×")
            } else {
                // Two significant digits for small ratios (0.0024×, not 0.00×).
                let decimals = (1.0 - r.log10().floor()) as usize;
                format!("{r:.decimals$}×")
            }
        }
        _ => "–".into(),
    }
}

fn report(
    suite: &Suite,
    agent: Option<String>,
    supervision: Option<String>,
    remote: Option<String>,
    secs: f64,
) -> String {
    let a = suite.a;
    let mut md = String::new();
    let date = time::OffsetDateTime::now_utc()
        .format(&time::macros::format_description!(
            "[year]-[month]-[day] [hour]:[minute] UTC"
        ))
        .unwrap_or_default();
    let _ = writeln!(md, "# Benchmarks\n");
    let _ = writeln!(
        md,
        "Written by `benches/run.sh` (`target/release/workerhub-bench suite`) on {date}, in \
         {:.0} s. Do not edit by hand: run it again.{}\n",
        secs,
        if a.quick {
            " **Quick run (tiny sizes): the figures mean nothing and targets are not judged.**"
        } else {
            ""
        }
    );
    let _ = writeln!(md, "## Machine\n\n| | |\n| --- | --- |");
    for (k, v) in machine() {
        let _ = writeln!(md, "| {k} | {v} |");
    }
    let _ = writeln!(
        md,
        "| load average (1, 5, 15 min) | {} before the runs, {} after |",
        suite.load.0, suite.load.1
    );
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let peak = suite.load_samples.iter().cloned().fold(0.0, f64::max);
    let busy = suite.load_samples.iter().filter(|l| **l > cores).count();
    let _ = writeln!(
        md,
        "| 1-minute load average before each run | {} to {} |",
        num(suite
            .load_samples
            .iter()
            .cloned()
            .fold(f64::INFINITY, f64::min)),
        num(peak)
    );
    if busy > 0 {
        let _ = writeln!(
            md,
            "\n**The machine was busy during this run**: before {busy} of {} runs the load \
             average was above the {cores} cores (up to {}). Other processes took CPU from \
             the servers and the load generator, so absolute figures are lower and noisier \
             than on a quiet machine; compare within this run, and run `make bench` again \
             when the machine is quiet.",
            suite.load_samples.len(),
            num(peak)
        );
    }
    let _ = writeln!(
        md,
        "\nThe machine is shared and noisy, and the load generator runs on the same cores as \
         the server it measures. Every figure is the median of several runs (min–max in \
         parentheses); each run starts a fresh server, and the servers take turns run by \
         run, so the noise falls on all of them alike. Ratios are workerhub's median over \
         the other's median, from this same run. Runs: echo {}, stream and http {}, fanout, \
         fanout-paced and conns {}.\n\n\
         Round trips on this virtual machine are bimodal: about 13 µs when the scheduler keeps \
         each hand-off on the CPU that just went to sleep, about 70 µs and more when every \
         hop wakes the other, halted, vCPU; a run of the reference can fall in either mode \
         (see its min–max). The fewer thread hand-offs a server needs per round trip, the \
         less it pays for this.\n",
        a.echo_runs, a.runs, a.heavy_runs
    );

    let _ = writeln!(md, "## What is measured\n");
    let _ = writeln!(
        md,
        "* **workerhub**: one `command` worker per run; clients connect to `/ws/ID` and send \
         `{{\"type\":\"message\",\"content\":...}}`; each line the program prints arrives as \
         an `output` event (JSON with `seq` and `timestamp`, also written to history).\n\
         * **websocketd** {}: one process per connection, one text message per line.\n\
         * **reference** (`bench/src/bin/ws-reference.rs`, the *limit reference*, not product \
         code): std `TcpListener` + `tungstenite`, one child per connection, one thread \
         polling the socket and the child's stdout, no JSON, no history; it flushes only \
         when no more output is buffered.\n\
         * The program of `stream` and `fanout` is `workerhub-bench emit --lines N \
         --wait-go`: it waits for a `go` line, then prints `SEQ MICROS` lines as fast as it \
         can (64 KiB writes, CLOCK_REALTIME stamps), so one-way delivery latency is the \
         receive time minus the stamp. For workerhub one worker feeds every client \
         (`fanout` sends `go` once); websocketd and the reference start one emitter per \
         client (each client sends `go`), as they work.\n\
         * `echo`: {} round trips after 200 warm-up ones, one at a time, through `cat`.\n\
         * `stream`: one client; {} lines for workerhub, {} for websocketd, {} for the \
         reference (runs of about a second each); events/s = lines / (time from `go` to the \
         last line).\n\
         * `fanout`: {} clients, {} lines each, printed at once: the most events/s the \
         server can deliver; events/s = all delivered lines / time until the slowest client \
         had all of them. Latency here is mostly the time to work off the burst ({} frames \
         queued at once), whatever the server.\n\
         * `fanout-paced`: the same clients, the program printing {} lines/s ({} lines, \
         written every 5 ms): {} events/s offered in total, which is where the issue's \
         latency target (p99 under 50 ms at 2,000,000 events/s) is judged.\n\
         * `conns`: {} idle connections to workerhub ({} to websocketd and the reference: \
         with a process and 3-4 descriptors per connection, 10,000 do not fit in the \
         descriptor limit), held {} s; memory, threads and CPU from /proc of the server (and its \
         children: PSS, so shared pages count once).\n\
         * `http`: `GET /api/workers` (one worker) with keep-alive from {} threads for {} s \
         (websocketd and the reference have no REST API).\n",
        machine()
            .iter()
            .find(|(k, _)| k == "websocketd")
            .map_or(String::new(), |(_, v)| v.clone()),
        num(a.echo_n as f64),
        num(a.stream_lines as f64),
        num(a.stream_lines_websocketd as f64),
        num(a.stream_lines_reference as f64),
        num(a.fanout_clients as f64),
        num(a.fanout_lines as f64),
        num((a.fanout_lines * a.fanout_clients as u64) as f64),
        num(a.paced_rate as f64),
        num(a.paced_lines as f64),
        num((a.paced_rate * a.fanout_clients as u64) as f64),
        num(a.conns as f64),
        num(a.conns_per_process as f64),
        a.idle_secs,
        a.http_threads,
        a.http_secs,
    );

    let kinds = &suite.kinds;
    let has = |k: Kind| kinds.contains(&k);
    let _ = writeln!(md, "## Results\n");
    let mut header = "| scenario | figure |".to_string();
    let mut rule = "| --- | --- |".to_string();
    for k in kinds {
        header.push_str(&format!(" {} |", k.name()));
        rule.push_str(" --- |");
    }
    if has(Kind::Workerhub) && has(Kind::Websocketd) {
        header.push_str(" workerhub / websocketd |");
        rule.push_str(" --- |");
    }
    if has(Kind::Workerhub) && has(Kind::Reference) {
        header.push_str(" workerhub / reference |");
        rule.push_str(" --- |");
    }
    let _ = writeln!(md, "{header}\n{rule}");
    for f in FIGURES {
        if !kinds
            .iter()
            .any(|k| suite.results.contains_key(&(f.scen, *k)))
        {
            continue;
        }
        let arrow = if f.higher_better { "↑" } else { "↓" };
        let mut row = format!("| {} | {} {arrow} |", f.scen.name(), f.label);
        for k in kinds {
            row.push_str(&format!(" {} |", cell(&values(suite, f.scen, *k, f.key))));
        }
        let wh = median(suite, f.scen, Kind::Workerhub, f.key);
        if has(Kind::Workerhub) && has(Kind::Websocketd) {
            row.push_str(&format!(
                " {} |",
                ratio(wh, median(suite, f.scen, Kind::Websocketd, f.key))
            ));
        }
        if has(Kind::Workerhub) && has(Kind::Reference) {
            row.push_str(&format!(
                " {} |",
                ratio(wh, median(suite, f.scen, Kind::Reference, f.key))
            ));
        }
        let _ = writeln!(md, "{row}");
    }
    let _ = writeln!(md, "\n↑ higher is better, ↓ lower is better.\n");

    let _ = writeln!(md, "## Targets of issue 3\n");
    let _ = writeln!(md, "| target | measured (medians) | |\n| --- | --- | --- |");
    for (target, measured, met) in targets(suite) {
        let verdict = match met {
            Some(true) => "**MET**",
            Some(false) => "**MISSED**",
            None => "not judged",
        };
        let _ = writeln!(md, "| {target} | {measured} | {verdict} |");
    }
    let _ = writeln!(md);

    if let Some(agent) = agent {
        let _ = writeln!(md, "## Agent protocol (`/ws`)\n\n{agent}");
    }
    if let Some(text) = supervision {
        let _ = writeln!(
            md,
            "## Supervised Claude Code: approvals and live sessions\n\n{text}"
        );
    }
    if let Some(text) = remote {
        let _ = writeln!(md, "## Workers on another host (over ssh)\n\n{text}");
    }

    if !suite.errors.is_empty() {
        let _ = writeln!(md, "## Failed runs\n");
        for e in &suite.errors {
            let _ = writeln!(md, "* {}", e.replace('\n', " "));
        }
        let _ = writeln!(md);
    }

    let _ = writeln!(md, "## Commands\n");
    let _ = writeln!(
        md,
        "`make bench` runs `benches/run.sh`, which builds the release binaries and runs \
         `target/release/workerhub-bench suite --out docs/BENCHMARKS.md`. Each run of each \
         scenario is, with PORT, ID and SERVER_PID those of that run:\n"
    );
    for ((scen, kind), (server, client)) in &suite.commands {
        let _ = writeln!(
            md,
            "* {} on {}:\n  * server: `{server}`\n  * load: `{client}`",
            scen.name(),
            kind.name()
        );
    }
    let _ = writeln!(md);
    let notes = Path::new("benches/profile-notes.md");
    if let Ok(text) = std::fs::read_to_string(notes) {
        let _ = writeln!(md, "{}", text.trim_end());
    }
    md
}

/// (target, what was measured, met?) for each target of the issue.
fn targets(suite: &Suite) -> Vec<(String, String, Option<bool>)> {
    let a = suite.a;
    let judged = !a.quick;
    let m = |s: Scen, k: Kind, key: &str| median(suite, s, k, key);
    let (wh, wsd, rf) = (Kind::Workerhub, Kind::Websocketd, Kind::Reference);
    let mut out = Vec::new();
    let both = |x: Option<f64>, y: Option<f64>, ok: fn(f64, f64) -> bool| match (x, y) {
        (Some(x), Some(y)) if judged => Some(ok(x, y)),
        _ => None,
    };
    let fmt = |x: Option<f64>| x.map_or("–".to_string(), num);
    let vs = |x: Option<f64>, y: Option<f64>, unit: &str| {
        format!("{} {unit} vs {} {unit} ({})", fmt(x), fmt(y), ratio(x, y))
    };

    for (key, label) in [("p50_us", "p50"), ("p99_us", "p99")] {
        let (x, y) = (m(Scen::Echo, wh, key), m(Scen::Echo, wsd, key));
        out.push((
            format!("echo round trip {label} lower than websocketd's"),
            vs(x, y, "µs"),
            both(x, y, |x, y| x < y),
        ));
    }
    let (x, y) = (
        m(Scen::Stream, wh, "events_per_sec"),
        m(Scen::Stream, wsd, "events_per_sec"),
    );
    out.push((
        "stream at least 10× websocketd's rate".into(),
        vs(x, y, "events/s"),
        both(x, y, |x, y| x >= 10.0 * y),
    ));
    out.push((
        "stream: 1,000,000 events/s or more to one client".into(),
        format!("{} events/s", fmt(x)),
        x.filter(|_| judged).map(|x| x >= 1e6),
    ));
    let full = a.fanout_clients >= 1000;
    let (x, y) = (
        m(Scen::Fanout, wh, "events_per_sec"),
        m(Scen::Fanout, wsd, "events_per_sec"),
    );
    out.push((
        format!(
            "fanout to {} clients: 2,000,000 delivered events/s or more",
            num(a.fanout_clients as f64)
        ),
        format!("{} events/s", fmt(x)),
        x.filter(|_| judged && full).map(|x| x >= 2e6),
    ));
    out.push((
        "fanout: more delivered events/s than websocketd".into(),
        vs(x, y, "events/s"),
        both(x, y, |x, y| x > y),
    ));
    let offered = (a.paced_rate * a.fanout_clients as u64) as f64;
    let rate = m(Scen::FanoutPaced, wh, "events_per_sec");
    let (x, y) = (
        m(Scen::FanoutPaced, wh, "latency_p99_ms"),
        m(Scen::FanoutPaced, wsd, "latency_p99_ms"),
    );
    out.push((
        format!(
            "fanout-paced ({} events/s offered): 2,000,000 events/s or more delivered with p99 \
             latency under 50 ms",
            num(offered)
        ),
        format!("{} events/s delivered, p99 {} ms", fmt(rate), fmt(x)),
        match (rate, x) {
            (Some(r), Some(l)) if judged && full && offered >= 2e6 => Some(r >= 2e6 && l < 50.0),
            _ => None,
        },
    ));
    out.push((
        "fanout-paced: p99 delivery latency lower than websocketd's".into(),
        vs(x, y, "ms"),
        both(x, y, |x, y| x < y),
    ));
    let held = m(Scen::Conns, wh, "held");
    let full = a.conns >= 10_000;
    out.push((
        format!(
            "hold {} idle connections on one worker",
            num(a.conns as f64)
        ),
        format!("{} held", fmt(held)),
        held.filter(|_| judged && full).map(|h| h >= 10_000.0),
    ));
    let rss = m(Scen::Conns, wh, "rss_mb");
    out.push((
        "… with resident memory under 500 MB".into(),
        format!("{} MB", fmt(rss)),
        rss.filter(|_| judged && full).map(|r| r < 500.0),
    ));
    let cpu = m(Scen::Conns, wh, "idle_cpu_pct");
    out.push((
        "… and idle CPU near zero (at most 1% of a core)".into(),
        format!("{}% of a core", fmt(cpu)),
        cpu.filter(|_| judged && full).map(|c| c <= 1.0),
    ));
    let (x, y) = (
        m(Scen::Conns, wh, "kb_per_conn"),
        m(Scen::Conns, wsd, "kb_per_conn"),
    );
    out.push((
        "conns: less memory per connection than websocketd".into(),
        vs(x, y, "KB"),
        both(x, y, |x, y| x < y),
    ));
    let (x, y) = (m(Scen::Echo, wh, "p50_us"), m(Scen::Echo, rf, "p50_us"));
    out.push((
        "echo p50 within 2× the limit reference".into(),
        vs(x, y, "µs"),
        both(x, y, |x, y| x <= 2.0 * y),
    ));
    out
}
