//! `supervision`: the figures of supervised Claude Code workers (live sessions and tool
//! approvals), against a running workerhub. Each creates its own workers over the REST
//! API and deletes them at the end.
//!
//! * `approvals`: a `claude` worker whose program is `approval-cli` (the server runs
//!   with `--claude-binary PATH/approval-cli`), which asks K times per turn to use a
//!   tool, one request after another, each stamped with its CLOCK_MONOTONIC time. A
//!   client on `/ws/{id}` denies each one, putting its own CLOCK_MONOTONIC time at
//!   sending in the deny message. Two one-way times, on the same clock: **request**,
//!   from the program's `can_use_tool` line to the `approval_request` frame read by a
//!   client; **answer**, from the client's answer to the `control_response` read by the
//!   program (which reports them in the turn's `result`). With `--viewers V` the other
//!   V−1 clients only watch, and the request time is also given over every viewer.
//! * `turn-start`: the real Claude Code (the server's `--claude-binary`) against a mock
//!   model API run by this process: the time from sending a message to the turn's first
//!   `output` event, for a live worker (one process for every turn) and a per-turn
//!   worker (a process per message), their messages taking turns.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::client::{Ws, WsUrl, http};
use crate::mock_llm::{Behaviour, MockLlm};
use crate::stats::{percentile, summary};
use crate::sys::monotonic_nanos;

#[derive(clap::Args, Debug)]
pub struct SupervisionArgs {
    #[command(subcommand)]
    pub what: What,
}

#[derive(clap::Subcommand, Debug)]
pub enum What {
    /// Approval round trips through a `claude` worker run by approval-cli.
    Approvals(ApprovalArgs),
    /// Time to a turn's first event with the real Claude Code: live and per-turn.
    TurnStart(TurnStartArgs),
}

/// The server to drive.
#[derive(clap::Args, Debug, Clone)]
pub struct Target {
    /// workerhub's address, HOST:PORT.
    #[arg(long)]
    pub addr: String,
    /// Access token, sent as `Authorization: Bearer TOKEN`.
    #[arg(long)]
    pub token: Option<String>,
    /// Deadline of the whole run, in seconds.
    #[arg(long, default_value_t = 180.0)]
    pub timeout: f64,
}

#[derive(clap::Args, Debug)]
pub struct ApprovalArgs {
    #[command(flatten)]
    pub target: Target,
    /// Messages to the worker, one turn each.
    #[arg(long, default_value_t = 21)]
    pub turns: usize,
    /// Approval requests per turn, one after another.
    #[arg(long, default_value_t = 50)]
    pub asks: usize,
    /// The first turns, not counted (the first one starts the program).
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// Clients on `/ws/{id}`: the first answers, the others only watch.
    #[arg(long, default_value_t = 1)]
    pub viewers: usize,
    /// The worker's project folder.
    #[arg(long, default_value = "/tmp")]
    pub project: String,
}

#[derive(clap::Args, Debug)]
pub struct TurnStartArgs {
    #[command(flatten)]
    pub target: Target,
    /// Messages to each worker; the first is reported apart (a live worker starts its
    /// process then).
    #[arg(long, default_value_t = 6)]
    pub turns: usize,
    /// The workers, by `session`: live, per-turn.
    #[arg(long, value_delimiter = ',', default_value = "live,per-turn")]
    pub sessions: Vec<String>,
    /// The message, the same every turn.
    #[arg(long, default_value = "Say hello.")]
    pub prompt: String,
    /// What the mock model answers every request.
    #[arg(long, default_value = "Hello from the mock model.")]
    pub reply: String,
    /// Pause after a turn ends, before the next message (the last process exits).
    #[arg(long, default_value_t = 0.3)]
    pub pause_secs: f64,
}

pub fn run(a: &SupervisionArgs) -> Result<Value, String> {
    match &a.what {
        What::Approvals(a) => approvals(a),
        What::TurnStart(a) => turn_start(a),
    }
}

/// A worker of the run, deleted however the run ends.
struct Worker<'a> {
    target: &'a Target,
    id: String,
}

impl<'a> Worker<'a> {
    fn create(target: &'a Target, body: Value) -> Result<Worker<'a>, String> {
        let (status, v) = http(
            &target.addr,
            target.token.as_deref(),
            "POST",
            "/api/workers",
            Some(&body),
        )?;
        let id = v["id"]
            .as_str()
            .filter(|_| status == 201)
            .ok_or_else(|| format!("create worker: {status} {v}"))?;
        Ok(Worker {
            target,
            id: id.to_string(),
        })
    }

    /// `/ws/{id}?since=0`: the whole history, then live events, so nothing is missed
    /// between the connection and the first message.
    fn connect(&self) -> Result<Ws, String> {
        let url = WsUrl::parse(&format!("ws://{}/ws/{}?since=0", self.target.addr, self.id))?
            .with_token(self.target.token.as_deref());
        Ws::connect(&url, Duration::from_secs(10))
    }
}

impl Drop for Worker<'_> {
    fn drop(&mut self) {
        let _ = http(
            &self.target.addr,
            self.target.token.as_deref(),
            "DELETE",
            &format!("/api/workers/{}", self.id),
            None,
        );
    }
}

fn message(content: &str) -> String {
    json!({"type": "message", "content": content}).to_string()
}

/// What a failing event says, for the error of the run.
fn complaint(ev: &Value) -> String {
    let text = ev.to_string();
    text.chars().take(400).collect()
}

/// p50, p99 and max of `ns`, in µs, under `prefix`.
fn percentiles(out: &mut serde_json::Map<String, Value>, prefix: &str, ns: &mut [u64]) {
    let us = |x: u64| x as f64 / 1e3;
    out.insert(format!("{prefix}_samples"), json!(ns.len()));
    out.insert(format!("{prefix}_p50_us"), json!(us(percentile(ns, 50.0))));
    out.insert(format!("{prefix}_p99_us"), json!(us(percentile(ns, 99.0))));
    out.insert(format!("{prefix}_max_us"), json!(us(percentile(ns, 100.0))));
}

fn approvals(a: &ApprovalArgs) -> Result<Value, String> {
    if a.turns <= a.warmup {
        return Err(format!(
            "--turns ({}) must be more than --warmup ({})",
            a.turns, a.warmup
        ));
    }
    let deadline = Instant::now() + Duration::from_secs_f64(a.target.timeout);
    let worker = Worker::create(
        &a.target,
        json!({"name": "bench-approvals", "ai_cli_type": "claude", "project_path": a.project,
               "session": "live", "approval": "ask"}),
    )?;
    let stop = Arc::new(AtomicBool::new(false));
    // The watchers, each connected before the first message.
    let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
    let mut watchers = Vec::new();
    for _ in 1..a.viewers.max(1) {
        let ws = worker.connect();
        let (ready, stop) = (ready_tx.clone(), stop.clone());
        let (turns, warmup) = (a.turns, a.warmup);
        watchers.push(std::thread::spawn(move || {
            let mut ws = match ws {
                Ok(ws) => ws,
                Err(e) => {
                    let _ = ready.send(Err(e.clone()));
                    return Err(e);
                }
            };
            let _ = ready.send(Ok(()));
            drop(ready);
            let seen = watch(&mut ws, turns, warmup, &stop, deadline);
            ws.close();
            seen
        }));
    }
    drop(ready_tx);
    let ready: Result<Vec<()>, String> = ready_rx.iter().take(watchers.len()).collect();
    let result = ready.and_then(|_| {
        let mut ws = worker.connect()?;
        let answered = answer_turns(&mut ws, a, deadline);
        ws.close();
        answered
    });
    if result.is_err() {
        stop.store(true, Ordering::SeqCst);
    }
    let mut all_viewers: Vec<u64> = Vec::new();
    let mut watch_errors = Vec::new();
    for w in watchers {
        match w.join() {
            Ok(Ok(samples)) => all_viewers.extend(samples),
            Ok(Err(e)) => watch_errors.push(e),
            Err(_) => watch_errors.push("a watcher panicked".to_string()),
        }
    }
    let (mut request, mut answer, unstamped) = result?;
    if let Some(e) = watch_errors.first() {
        return Err(format!("a watching client: {e}"));
    }
    all_viewers.extend_from_slice(&request);
    let mut out = serde_json::Map::new();
    out.insert("scenario".into(), json!("approvals"));
    out.insert("turns".into(), json!(a.turns - a.warmup));
    out.insert("asks_per_turn".into(), json!(a.asks));
    out.insert("viewers".into(), json!(a.viewers.max(1)));
    out.insert("unstamped_answers".into(), json!(unstamped));
    percentiles(&mut out, "request", &mut request);
    percentiles(&mut out, "answer", &mut answer);
    if a.viewers > 1 {
        percentiles(&mut out, "request_all_viewers", &mut all_viewers);
    }
    Ok(Value::Object(out))
}

/// The answering client: every turn, a message, then a deny for each request as it
/// comes, until the turn's result. Returns the request and answer times (ns) of the
/// counted turns, and how many answers the program found no stamp in.
fn answer_turns(
    ws: &mut Ws,
    a: &ApprovalArgs,
    deadline: Instant,
) -> Result<(Vec<u64>, Vec<u64>, u64), String> {
    let counted = (a.turns - a.warmup) * a.asks;
    let mut request: Vec<u64> = Vec::with_capacity(counted);
    let mut answer: Vec<u64> = Vec::with_capacity(counted);
    let mut unstamped = 0u64;
    for turn in 0..a.turns {
        ws.send_text(&message(&format!("asks={}", a.asks)))?;
        let mut pending: Vec<String> = Vec::new();
        let mut asked: Vec<u64> = Vec::with_capacity(a.asks);
        let mut result: Option<Value> = None;
        let mut failure: Option<String> = None;
        while result.is_none() {
            let read = ws.read_some(deadline, &mut |msg, _| {
                let now = monotonic_nanos();
                let Ok(ev) = serde_json::from_slice::<Value>(msg) else {
                    return;
                };
                match ev["type"].as_str() {
                    Some("approval_request") => {
                        if let Some(sent) = ev["input"]["sent_ns"].as_u64() {
                            asked.push(now.saturating_sub(sent));
                        }
                        if let Some(id) = ev["approval_id"].as_str() {
                            pending.push(id.to_string());
                        }
                    }
                    Some("output") if ev["content"]["kind"] == "result" => {
                        result = Some(ev["content"]["result"].clone());
                    }
                    Some("error") => failure = Some(complaint(&ev)),
                    Some("status") if matches!(ev["status"].as_str(), Some("exited" | "error")) => {
                        failure = Some(complaint(&ev));
                    }
                    _ => {}
                }
            })?;
            if let Some(f) = failure {
                return Err(format!("turn {}: {f}", turn + 1));
            }
            for id in pending.drain(..) {
                let stamp = monotonic_nanos();
                ws.send_text(
                    &json!({"type": "approval", "approval_id": id, "decision": "deny",
                            "message": format!("answered_ns={stamp}")})
                    .to_string(),
                )?;
            }
            if ws.closed {
                return Err(format!(
                    "the server closed the connection in turn {} ({})",
                    turn + 1,
                    ws.close_reason.as_deref().unwrap_or("no close frame")
                ));
            }
            if !read {
                return Err(format!("turn {} did not end in time", turn + 1));
            }
        }
        let result = result.unwrap_or_default();
        let times: Vec<u64> = result["answer_ns"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_u64).collect())
            .ok_or_else(|| format!("turn {}: a result without answer_ns: {result}", turn + 1))?;
        if asked.len() != a.asks
            || times.len() + (result["unstamped"].as_u64().unwrap_or(0) as usize) != a.asks
        {
            return Err(format!(
                "turn {}: {} requests seen and {} answers timed, for {} asks",
                turn + 1,
                asked.len(),
                times.len(),
                a.asks
            ));
        }
        if turn >= a.warmup {
            request.extend(asked);
            answer.extend(times);
            unstamped += result["unstamped"].as_u64().unwrap_or(0);
        }
    }
    Ok((request, answer, unstamped))
}

/// A watching client: the request times (ns) of the counted turns, until it has seen
/// every turn's result (or the run is stopped).
fn watch(
    ws: &mut Ws,
    turns: usize,
    warmup: usize,
    stop: &AtomicBool,
    deadline: Instant,
) -> Result<Vec<u64>, String> {
    let mut samples = Vec::new();
    let mut results = 0usize;
    while results < turns && !stop.load(Ordering::SeqCst) {
        let slice = (Instant::now() + Duration::from_millis(200)).min(deadline);
        let read = ws.read_some(slice, &mut |msg, _| {
            let now = monotonic_nanos();
            let Ok(ev) = serde_json::from_slice::<Value>(msg) else {
                return;
            };
            match ev["type"].as_str() {
                Some("approval_request") if results >= warmup => {
                    if let Some(sent) = ev["input"]["sent_ns"].as_u64() {
                        samples.push(now.saturating_sub(sent));
                    }
                }
                Some("output") if ev["content"]["kind"] == "result" => results += 1,
                _ => {}
            }
        })?;
        if ws.closed {
            return Err("the server closed the connection".into());
        }
        if !read && Instant::now() >= deadline {
            return Err(format!("saw {results} of {turns} turns in time"));
        }
    }
    Ok(samples)
}

/// A folder removed with everything in it when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One worker of the turn-start scenario, and what its turns gave.
struct Timed<'a> {
    session: String,
    worker: Worker<'a>,
    ws: Ws,
    /// Message to first `output` event, per turn (ms).
    first_ms: Vec<f64>,
    /// Message to the first `text` output (the model's answer), per turn (ms).
    text_ms: Vec<f64>,
    /// Message to the turn's end (its `idle` status), per turn (ms).
    turn_ms: Vec<f64>,
    /// The first event of each turn, as `kind` or `kind/subtype`.
    first_events: Vec<String>,
}

fn turn_start(a: &TurnStartArgs) -> Result<Value, String> {
    if a.turns < 2 {
        return Err("--turns must be 2 or more (the first turn is reported apart)".into());
    }
    let deadline = Instant::now() + Duration::from_secs_f64(a.target.timeout);
    let mock = MockLlm::start(Behaviour::text(&a.reply)).map_err(|e| format!("mock model: {e}"))?;
    let tmp = TempDir(
        std::env::temp_dir().join(format!("workerhub-bench-turn-start-{}", std::process::id())),
    );
    let mut timed: Vec<Timed> = Vec::new();
    for session in &a.sessions {
        if session != "live" && session != "per-turn" {
            return Err(format!("unknown session `{session}`: live or per-turn"));
        }
        let home = tmp.0.join(format!("home-{session}"));
        let project = tmp.0.join(format!("project-{session}"));
        std::fs::create_dir_all(&project).map_err(|e| e.to_string())?;
        let env: serde_json::Map<String, Value> = mock
            .claude_env(&home)
            .map_err(|e| format!("mock model's environment: {e}"))?
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        let worker = Worker::create(
            &a.target,
            json!({"name": format!("bench-{session}"), "ai_cli_type": "claude",
                   "project_path": path_str(&project)?, "session": session, "env": env}),
        )?;
        let ws = worker.connect()?;
        timed.push(Timed {
            session: session.clone(),
            worker,
            ws,
            first_ms: Vec::new(),
            text_ms: Vec::new(),
            turn_ms: Vec::new(),
            first_events: Vec::new(),
        });
    }
    // The workers take turns, message by message, so that the machine's noise falls on
    // both alike.
    for turn in 0..a.turns {
        for t in timed.iter_mut() {
            std::thread::sleep(Duration::from_secs_f64(a.pause_secs));
            let timing = one_turn(&mut t.ws, &a.prompt, deadline)
                .map_err(|e| format!("{} worker, turn {}: {e}", t.session, turn + 1))?;
            t.first_ms.push(timing.first_ms);
            t.text_ms.push(timing.text_ms);
            t.turn_ms.push(timing.end_ms);
            t.first_events.push(timing.first_event);
        }
    }
    let mut out = serde_json::Map::new();
    out.insert("scenario".into(), json!("turn-start"));
    out.insert("turns".into(), json!(a.turns));
    let median = |v: &[f64]| summary(v).map(|s| s.0);
    for t in &timed {
        let key = t.session.replace('-', "_");
        let later = &t.first_ms[1..];
        let mut kinds = t.first_events.clone();
        kinds.dedup();
        out.insert(format!("{key}_first_turn_ms"), json!(t.first_ms[0]));
        out.insert(format!("{key}_ms"), json!(later));
        out.insert(format!("{key}_median_ms"), json!(median(later)));
        out.insert(
            format!("{key}_text_median_ms"),
            json!(median(&t.text_ms[1..])),
        );
        out.insert(
            format!("{key}_turn_median_ms"),
            json!(median(&t.turn_ms[1..])),
        );
        out.insert(format!("{key}_first_events"), json!(kinds));
        out.insert(format!("{key}_worker"), json!(t.worker.id));
    }
    if let (Some(live), Some(per_turn)) = (
        out.get("live_median_ms").and_then(Value::as_f64),
        out.get("per_turn_median_ms").and_then(Value::as_f64),
    ) && live > 0.0
    {
        out.insert("per_turn_over_live".into(), json!(per_turn / live));
    }
    let model_requests = mock.requests().iter().filter(|r| r.is_model()).count();
    out.insert("model_requests".into(), json!(model_requests));
    drop(timed);
    Ok(Value::Object(out))
}

fn path_str(p: &Path) -> Result<&str, String> {
    p.to_str()
        .ok_or_else(|| format!("{} is not UTF-8", p.display()))
}

/// What one turn took, from sending its message (ms).
struct TurnTiming {
    /// To the first `output` event after the message.
    first_ms: f64,
    /// That event, as `kind` or `kind/subtype`.
    first_event: String,
    /// To the first `text` output (the model's answer).
    text_ms: f64,
    /// To the end of the turn (the worker's `idle` status).
    end_ms: f64,
}

/// Sends `prompt` and reads the turn to its end.
fn one_turn(ws: &mut Ws, prompt: &str, deadline: Instant) -> Result<TurnTiming, String> {
    let t0 = Instant::now();
    ws.send_text(&message(prompt))?;
    let mut sent = false;
    let mut first: Option<(f64, String)> = None;
    let mut text: Option<f64> = None;
    let mut ended: Option<f64> = None;
    let mut failure: Option<String> = None;
    while ended.is_none() {
        let read = ws.read_some(deadline, &mut |msg, _| {
            let at = t0.elapsed().as_secs_f64() * 1e3;
            let Ok(ev) = serde_json::from_slice::<Value>(msg) else {
                return;
            };
            match ev["type"].as_str() {
                // Our message, as the worker took it: what follows is the turn's.
                Some("user_message") if ev["content"] == prompt => sent = true,
                Some("output") if sent => {
                    let c = &ev["content"];
                    let kind = c["kind"].as_str().unwrap_or("?");
                    if first.is_none() {
                        let what = match c["subtype"].as_str() {
                            Some(sub) => format!("{kind}/{sub}"),
                            None => kind.to_string(),
                        };
                        first = Some((at, what));
                    }
                    if kind == "text" && text.is_none() {
                        text = Some(at);
                    }
                }
                Some("error") if sent => failure = Some(complaint(&ev)),
                Some("status") if sent && ev["status"] == "idle" && ev["last_turn"].is_object() => {
                    if ev["last_turn"]["outcome"] != "completed" {
                        failure = Some(complaint(&ev));
                    }
                    ended = Some(at);
                }
                _ => {}
            }
        })?;
        if let Some(f) = failure {
            return Err(f);
        }
        if ws.closed {
            return Err("the server closed the connection".into());
        }
        if !read {
            return Err("the turn did not end in time".into());
        }
    }
    let (first_ms, first_event) = first.ok_or("the turn ended without an output event")?;
    let end_ms = ended.unwrap_or(first_ms);
    Ok(TurnTiming {
        first_ms,
        first_event,
        text_ms: text.ok_or("the turn ended without the model's text")?,
        end_ms,
    })
}
