//! `workerhub batch SCRIPT.json`: a scripted conversation, run end to end.
//!
//! It starts its own server (this binary, as a child, on a free port, with a fresh data
//! folder; or uses `--server`), connects over the agent protocol as an ordinary client,
//! sends each message to its worker and waits for its turn to end, checks it, writes the
//! report, stops the server, and exits 0 when every message succeeded, 1 otherwise, and
//! 2 when the script cannot be read.
//!
//! Script: `{"metadata": {"title", "description", "agent"?, "ai_cli_type"?,
//! "project_path"?, ...any field of POST /api/workers}, "messages": [{"role": "user",
//! "content": "...", "approve"?: [RULE, ...], "expect"?: {"contains", "not_contains",
//! "regex", "tool_used", "max_seconds"}}]}`. A message starting with `@name` goes to the
//! worker `name` (created on first use with the script's defaults), others to the
//! default worker.
//!
//! Nobody watches a batch run, so nothing may wait for a person: a tool call a worker
//! asks about (its `approval` policy, from the metadata, left it to someone) is allowed
//! when it matches the message's `approve` rules (`Bash(npm test:*)`, `Read`) and denied
//! otherwise, by the run itself; the report lists every decision.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use clap::Args;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tungstenite::Message;

use crate::approval::Rule;
use crate::client::{self, Client, ClientError, Socket};
use crate::clock;
use crate::event::{AgentContent, Content, Event};
use crate::wire::envelope::{RequestType, ServerType};

#[derive(Args, Debug)]
pub struct BatchArgs {
    /// The script (JSON).
    pub script: PathBuf,
    /// Run against this server instead of starting one.
    #[arg(long)]
    pub server: Option<String>,
    /// The token of --server [default: WORKERHUB_TOKEN, else ./data/token, else the
    /// data folder of a workerhub running on this machine at that port].
    #[arg(long)]
    pub token: Option<String>,
    /// Where to write the report.
    #[arg(long, default_value = "batch_test_report.json")]
    pub report: PathBuf,
    /// Seconds each message may take.
    #[arg(long, default_value_t = 300.0)]
    pub timeout: f64,
    /// A `command` worker has no turns: its answer is over after this much quiet (ms).
    #[arg(long, default_value_t = 300)]
    pub quiet_ms: u64,
    /// The worker kind, over the script's.
    #[arg(long = "kind", alias = "ai-cli-type")]
    pub kind: Option<String>,
    /// The project folder, over the script's.
    #[arg(long = "project", alias = "project-path")]
    pub project: Option<String>,
    /// Print nothing but errors.
    #[arg(long)]
    pub quiet: bool,
    /// Print the report on stdout.
    #[arg(long)]
    pub json: bool,
    /// With --server: keep the workers this run created (they are deleted at the end
    /// otherwise).
    #[arg(long)]
    pub keep: bool,
}

/// What can go wrong before any message is sent.
enum Fatal {
    /// The script cannot be read: exit 2.
    Script(String),
    /// The server cannot be started or reached: exit 1.
    Server(String),
}

struct Script {
    metadata: Map<String, Value>,
    messages: Vec<Map<String, Value>>,
}

fn read_script(path: &Path) -> Result<Script, Fatal> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Fatal::Script(format!("cannot read {}: {e}", path.display())))?;
    // serde_json's message ends with "at line L column C".
    let value: Value = serde_json::from_str(&text)
        .map_err(|e| Fatal::Script(format!("{} is not valid JSON: {e}", path.display())))?;
    let bad = |why: &str| Fatal::Script(format!("{}: {why}", path.display()));
    let metadata = match value.get("metadata") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err(bad("`metadata` must be an object")),
    };
    let messages = value
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("`messages` must be an array"))?;
    let mut out = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let m = m
            .as_object()
            .ok_or_else(|| bad(&format!("message {} must be an object", i + 1)))?;
        if !m.get("content").is_some_and(Value::is_string) {
            return Err(bad(&format!("message {} needs `content`, a string", i + 1)));
        }
        approve_rules(m).map_err(|why| bad(&format!("message {}: {why}", i + 1)))?;
        if m.get("expect").is_some_and(|e| !e.is_object()) {
            return Err(bad(&format!(
                "message {}: `expect` must be an object",
                i + 1
            )));
        }
        if let Some(pattern) = m
            .get("expect")
            .and_then(|e| e.get("regex"))
            .and_then(Value::as_str)
        {
            regex::Regex::new(pattern)
                .map_err(|e| bad(&format!("message {}: bad regex: {e}", i + 1)))?;
        }
        out.push(m.clone());
    }
    Ok(Script {
        metadata,
        messages: out,
    })
}

/// A message's `approve` list: the tool calls it allows without a person.
fn approve_rules(message: &Map<String, Value>) -> Result<Vec<Rule>, String> {
    match message.get("approve") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                let text = item
                    .as_str()
                    .ok_or("`approve` must list rules as strings, such as \"Bash(npm test:*)\"")?;
                Rule::parse(text).map_err(|e| format!("`approve`: {e}"))
            })
            .collect(),
        Some(_) => Err(
            "`approve` must be an array of rules, such as [\"Read\", \"Bash(npm test:*)\"]".into(),
        ),
    }
}

/// The server batch mode started, stopped when dropped.
struct OwnServer {
    child: Child,
    dir: PathBuf,
    url: String,
}

impl OwnServer {
    fn start() -> Result<OwnServer, String> {
        let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
        let dir = std::env::temp_dir().join(format!(
            "workerhub-batch-{}-{}",
            std::process::id(),
            clock::now_micros()
        ));
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let log = std::fs::File::create(dir.join("server.log")).map_err(|e| e.to_string())?;
        let mut child = Command::new(exe)
            .args([
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-auth",
                "--log",
                "warn",
            ])
            .arg("--data-dir")
            .arg(dir.join("data"))
            .env_remove("WORKERHUB_HOST")
            .env_remove("WORKERHUB_PORT")
            .env_remove("WORKERHUB_DATA_DIR")
            .env_remove("WORKERHUB_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .map_err(|e| format!("cannot start a server: {e}"))?;
        let stdout = child.stdout.take().ok_or("no server output")?;
        let (tx, rx) = crossbeam_channel::bounded(1);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("workerhub listening on ") {
                    let _ = tx.send(url.to_string());
                }
            }
        });
        let mut server = OwnServer {
            child,
            dir,
            url: String::new(),
        };
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(url) => {
                server.url = url;
                Ok(server)
            }
            Err(_) => {
                let log =
                    std::fs::read_to_string(server.dir.join("server.log")).unwrap_or_default();
                Err(format!(
                    "the server did not start: {}",
                    log.lines().last().unwrap_or("no output")
                ))
            }
        }
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        // SIGTERM: the server closes its sockets and stops its workers within its grace.
        crate::sys::signal_process(self.child.id(), libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(12);
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break;
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Shows progress: a bar on a terminal, a line per message otherwise.
struct Progress {
    tty: bool,
    quiet: bool,
    total: usize,
}

impl Progress {
    fn waiting(&self, index: usize, worker: &str, content: &str, elapsed: Duration) {
        if self.quiet || !self.tty {
            return;
        }
        let width = 20;
        let done = width * index / self.total.max(1);
        let bar: String = "█".repeat(done) + &"░".repeat(width - done);
        let preview: String = content.chars().take(40).collect();
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r\x1b[2K[{bar}] {}/{} {worker}: {preview} {:.1}s",
            index + 1,
            self.total,
            elapsed.as_secs_f64()
        );
        let _ = err.flush();
    }

    fn finished(&self, index: usize, worker: &str, result: &Value) {
        if self.quiet {
            return;
        }
        let ok = result["success"] == true;
        let mut line = format!(
            "{} {}/{} {worker} {:.1}s",
            if ok { "✓" } else { "✗" },
            index + 1,
            self.total,
            result["duration_seconds"].as_f64().unwrap_or(0.0)
        );
        if let Some(reason) = result["failure_reason"].as_str() {
            line.push_str(&format!(": {reason}"));
        }
        if self.tty {
            eprint!("\r\x1b[2K");
        }
        eprintln!("{line}");
    }
}

/// The protocol connection and the workers it has made.
struct Session {
    socket: Socket,
    next_id: u64,
    /// The workers this run created, by the script's name for them.
    workers: HashMap<String, WorkerInfo>,
    /// Put before every worker's name on the server (a run against a shared server),
    /// so a run never takes a name a user or another run has.
    prefix: String,
    /// Messages that arrived while waiting for something else.
    backlog: Vec<Value>,
}

struct WorkerInfo {
    id: String,
    /// Its name on the server.
    name: String,
    has_turns: bool,
}

impl Session {
    fn request(
        &mut self,
        kind: RequestType,
        payload: Value,
        target: Option<&str>,
    ) -> Result<String, ClientError> {
        self.next_id += 1;
        let id = format!("batch-{}", self.next_id);
        client::send_request(&mut self.socket, &id, kind, payload, target)?;
        Ok(id)
    }

    /// The next message, waiting at most `timeout`.
    fn next(&mut self, timeout: Duration) -> Result<Option<Value>, ClientError> {
        if !self.backlog.is_empty() {
            return Ok(Some(self.backlog.remove(0)));
        }
        client::set_read_timeout(
            &mut self.socket,
            Some(timeout.max(Duration::from_millis(1))),
        );
        loop {
            match self.socket.read() {
                Ok(Message::Text(t)) => return Ok(serde_json::from_str(&t).ok()),
                Ok(Message::Close(_)) => {
                    return Err(ClientError("the server closed the connection".into()));
                }
                Ok(_) => continue,
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(None);
                }
                Err(e) => return Err(ClientError(format!("connection to the server lost: {e}"))),
            }
        }
    }

    /// Waits for the answer to request `id`.
    fn answer(&mut self, id: &str, timeout: Duration) -> Result<Value, ClientError> {
        let deadline = Instant::now() + timeout;
        let mut kept = Vec::new();
        let result = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break Err(ClientError(format!("no answer to {id}")));
            }
            match self.next(left)? {
                Some(msg)
                    if msg["correlation_id"] == id
                        && client::server_type(&msg) != Some(ServerType::CommandProgress) =>
                {
                    break Ok(msg);
                }
                Some(msg) => kept.push(msg),
                None => {}
            }
        };
        self.backlog.extend(kept);
        let msg = result?;
        if client::server_type(&msg).is_some_and(ServerType::is_error) {
            return Err(ClientError(
                msg["payload"]["message"]
                    .as_str()
                    .unwrap_or("error")
                    .to_string(),
            ));
        }
        Ok(msg)
    }

    /// The worker called `name`, created with `defaults` on first use.
    fn worker(
        &mut self,
        name: &str,
        defaults: &Map<String, Value>,
    ) -> Result<&WorkerInfo, ClientError> {
        if !self.workers.contains_key(name) {
            let mut body = defaults.clone();
            let server_name = format!("{}{name}", self.prefix);
            body.insert("name".into(), json!(server_name));
            let id = self.request(RequestType::AgentCreate, Value::Object(body), None)?;
            let created = self.answer(&id, Duration::from_secs(60))?;
            let worker = &created["payload"];
            let info = WorkerInfo {
                id: worker["id"].as_str().unwrap_or("").to_string(),
                name: server_name,
                has_turns: worker["has_turns"] == true,
            };
            if !info.has_turns {
                // Its output arrives as events; nothing marks the end of an answer.
                let id = self.request(
                    RequestType::AgentSubscribe,
                    json!({"worker_id": info.id}),
                    None,
                )?;
                self.answer(&id, Duration::from_secs(30))?;
            }
            self.workers.insert(name.to_string(), info);
        }
        self.workers
            .get(name)
            .ok_or_else(|| ClientError(format!("worker {name} was not created")))
    }

    /// Deletes the workers this run created (each within a bound); says which could
    /// not be.
    fn remove_workers(&mut self) {
        let created: Vec<(String, String)> = self
            .workers
            .values()
            .map(|w| (w.id.clone(), w.name.clone()))
            .collect();
        for (id, name) in created {
            let removed = self
                .request(RequestType::AgentDelete, json!({"worker_id": id}), None)
                .and_then(|req| self.answer(&req, Duration::from_secs(30)));
            if let Err(err) = removed {
                eprintln!("workerhub batch: could not delete the worker {name}: {err}");
            }
        }
    }
}

/// One message's run: its events, the text, the tools, and how it ended.
struct Outcome {
    events: Vec<Value>,
    text: String,
    tools: Vec<String>,
    duration: Duration,
    /// Why it failed, before `expect` is checked.
    error: Option<String>,
    /// The tool calls the worker asked about, and what this run answered.
    approvals: Vec<Value>,
}

/// Takes one event of the message's run; true when it was output (the run is alive).
fn collect(outcome: &mut Outcome, event: &Value) -> bool {
    let decoded = Event::deserialize(event);
    let is_output = matches!(decoded, Ok(Event::Output { .. }));
    match decoded {
        Ok(Event::Output {
            content: Content::Agent(AgentContent::Text { text, .. }),
        }) => outcome.text.push_str(&text),
        Ok(Event::Output {
            content: Content::Agent(AgentContent::ToolUse(tool)),
        }) => outcome.tools.push(tool.name.unwrap_or_default()),
        Ok(Event::Output {
            content: Content::Line(line),
        }) => {
            outcome.text.push_str(&line.text);
            outcome.text.push('\n');
        }
        Ok(Event::Error(error)) => {
            outcome.error.get_or_insert(error.message);
        }
        _ => {}
    }
    outcome.events.push(event.clone());
    is_output
}

/// One message of the script: where it goes, what it says, what it may approve.
struct Step<'a> {
    index: usize,
    worker: &'a str,
    content: &'a str,
    approve: &'a [Rule],
}

fn run_message(
    session: &mut Session,
    step: &Step<'_>,
    defaults: &Map<String, Value>,
    args: &BatchArgs,
    progress: &Progress,
) -> Outcome {
    let Step {
        index,
        worker,
        content,
        approve,
    } = *step;
    let started = Instant::now();
    let mut outcome = Outcome {
        events: Vec::new(),
        text: String::new(),
        tools: Vec::new(),
        duration: Duration::ZERO,
        error: None,
        approvals: Vec::new(),
    };
    let info = match session.worker(worker, defaults) {
        Ok(info) => (info.id.clone(), info.has_turns),
        Err(err) => {
            outcome.error = Some(format!("could not create worker {worker}: {err}"));
            return outcome;
        }
    };
    let (worker_id, has_turns) = info;
    let timeout = Duration::from_secs_f64(args.timeout.max(0.001));
    let deadline = started + timeout;
    let request = match session.request(
        RequestType::CommandExecute,
        json!({"content": content}),
        Some(&worker_id),
    ) {
        Ok(id) => id,
        Err(err) => {
            outcome.error = Some(err.0);
            return outcome;
        }
    };
    let quiet = Duration::from_millis(args.quiet_ms);
    let mut last_output = Instant::now();
    let mut answered = false;
    loop {
        progress.waiting(index, worker, content, started.elapsed());
        let now = Instant::now();
        if now >= deadline {
            outcome.error = Some(format!(
                "no end of turn within {:.0}s",
                timeout.as_secs_f64()
            ));
            let _ = session.request(
                RequestType::AgentInterrupt,
                json!({"worker_id": worker_id}),
                None,
            );
            break;
        }
        if !has_turns && answered && last_output.elapsed() >= quiet {
            break;
        }
        let wait = if has_turns {
            Duration::from_millis(200)
        } else {
            quiet
                .saturating_sub(last_output.elapsed())
                .min(Duration::from_millis(200))
        };
        let msg = match session.next(wait.min(deadline - now)) {
            Ok(Some(msg)) => msg,
            Ok(None) => continue,
            Err(err) => {
                outcome.error = Some(err.0);
                break;
            }
        };
        let correlated = msg["correlation_id"] == request.as_str();
        match client::server_type(&msg) {
            Some(ServerType::CommandProgress) if correlated => {
                let event = &msg["payload"]["event"];
                collect(&mut outcome, event);
                if let Ok(Event::ApprovalRequest(ask)) = Event::deserialize(event) {
                    let decision = answer_approval(session, &worker_id, &ask, approve);
                    outcome.approvals.push(decision);
                }
            }
            Some(ServerType::CommandResult) if correlated => {
                answered = true;
                last_output = Instant::now();
                if has_turns {
                    if msg["payload"]["success"] != true {
                        let why = msg["payload"]["outcome"].as_str().unwrap_or("failed");
                        outcome
                            .error
                            .get_or_insert_with(|| format!("the turn ended: {why}"));
                    }
                    if outcome.text.is_empty() {
                        outcome.text = msg["payload"]["text"].as_str().unwrap_or("").to_string();
                    }
                    break;
                }
            }
            Some(ServerType::CommandError) if correlated => {
                outcome.error = Some(
                    msg["payload"]["message"]
                        .as_str()
                        .unwrap_or("error")
                        .to_string(),
                );
                break;
            }
            Some(ServerType::AgentEvent) if msg["source"] == worker_id.as_str() => {
                let was_output = collect(&mut outcome, &msg["payload"]);
                if was_output {
                    last_output = Instant::now();
                }
            }
            _ => {}
        }
    }
    outcome.duration = started.elapsed();
    outcome
}

/// Answers a tool call the worker asks about: allowed by the message's `approve` rules,
/// denied otherwise. What was decided, for the report.
fn answer_approval(
    session: &mut Session,
    worker_id: &str,
    ask: &crate::event::ApprovalRequest,
    approve: &[Rule],
) -> Value {
    let rule = approve
        .iter()
        .find(|r| r.matches(&ask.tool_name, &ask.input));
    let (decision, message) = match rule {
        Some(_) => ("allow", None),
        None => (
            "deny",
            Some("not in this batch message's `approve` list (nobody watches a batch run)"),
        ),
    };
    // The server's answer says what was decided: ours, or what decided before us (the
    // worker's rules, a session rule).
    let answered = session
        .request(
            RequestType::AgentApprove,
            json!({"worker_id": worker_id, "approval_id": ask.approval_id, "decision": decision, "message": message}),
            None,
        )
        .and_then(|id| session.answer(&id, Duration::from_secs(30)));
    let (decided, by, error) = match answered {
        Ok(reply) => (
            reply["payload"]["decision"]
                .as_str()
                .unwrap_or(decision)
                .to_string(),
            reply["payload"]["by"].as_str().map(str::to_string),
            None,
        ),
        Err(err) if err.0.contains("already decided") => {
            // "approval … was already decided: allow by rules"
            let how = err.0.rsplit(": ").next().unwrap_or("").to_string();
            let (decision, by) = how.split_once(" by ").unwrap_or((how.as_str(), ""));
            (decision.to_string(), Some(by.to_string()), None)
        }
        Err(err) => (decision.to_string(), None, Some(err.0)),
    };
    json!({
        "approval_id": ask.approval_id,
        "tool_name": ask.tool_name,
        "summary": ask.summary,
        "decision": decided,
        "by": by,
        "rule": rule.map(|r| r.to_string()),
        "error": error,
    })
}

/// Checks `expect` against the outcome; returns why it failed, if it did.
fn check(expect: Option<&Value>, outcome: &Outcome) -> Option<String> {
    if let Some(err) = &outcome.error {
        return Some(err.clone());
    }
    let expect = expect?;
    let strings = |v: &Value| -> Vec<String> {
        match v {
            Value::String(s) => vec![s.clone()],
            Value::Array(items) => items
                .iter()
                .filter_map(|i| i.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        }
    };
    for want in strings(&expect["contains"]) {
        if !outcome.text.contains(&want) {
            return Some(format!("expected the answer to contain {want:?}"));
        }
    }
    for unwanted in strings(&expect["not_contains"]) {
        if outcome.text.contains(&unwanted) {
            return Some(format!("expected the answer not to contain {unwanted:?}"));
        }
    }
    if let Some(pattern) = expect["regex"].as_str() {
        match regex::Regex::new(pattern) {
            Ok(re) if !re.is_match(&outcome.text) => {
                return Some(format!("expected the answer to match /{pattern}/"));
            }
            Err(e) => return Some(format!("bad regex {pattern:?}: {e}")),
            _ => {}
        }
    }
    for tool in strings(&expect["tool_used"]) {
        if !outcome.tools.iter().any(|t| t.eq_ignore_ascii_case(&tool)) {
            return Some(format!(
                "expected the tool {tool:?} to be used (used: {})",
                outcome.tools.join(", ")
            ));
        }
    }
    if let Some(max) = expect["max_seconds"].as_f64()
        && outcome.duration.as_secs_f64() > max
    {
        return Some(format!(
            "took {:.1}s, more than {max}s",
            outcome.duration.as_secs_f64()
        ));
    }
    None
}

/// Splits `@name rest` into the worker's name and the message.
fn route(content: &str, default: &str) -> (String, String) {
    if let Some(rest) = content.strip_prefix('@') {
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '-' || *c == '_')
            .collect();
        if !name.is_empty() {
            return (name.clone(), rest[name.len()..].trim_start().to_string());
        }
    }
    (default.to_string(), content.to_string())
}

pub fn run(args: &BatchArgs) -> ExitCode {
    match run_batch(args) {
        Ok(code) => code,
        Err(Fatal::Script(msg)) => {
            eprintln!("workerhub batch: {msg}");
            ExitCode::from(2)
        }
        Err(Fatal::Server(msg)) => {
            eprintln!("workerhub batch: {msg}");
            ExitCode::from(1)
        }
    }
}

fn run_batch(args: &BatchArgs) -> Result<ExitCode, Fatal> {
    let script = read_script(&args.script)?;
    let started_at = clock::now_rfc3339();
    let started = Instant::now();
    let own = match &args.server {
        Some(_) => None,
        None => Some(OwnServer::start().map_err(Fatal::Server)?),
    };
    let url = args
        .server
        .clone()
        .or_else(|| own.as_ref().map(|s| s.url.clone()))
        .unwrap_or_default();
    let token = if own.is_some() {
        client::TokenLookup::given(None, "its own server")
    } else {
        client::find_token(args.token.clone(), Path::new("./data"), &url)
    };
    let client = Client::new(&url, token);
    let socket = client.ws("/ws").map_err(|e| Fatal::Server(e.0))?;
    // On a server of its own, names are the script's; on a shared one, each run's
    // names start with its own prefix.
    let prefix = if own.is_some() {
        String::new()
    } else {
        let run = uuid::Uuid::new_v4().simple().to_string();
        format!("batch-{}-", &run[..6])
    };
    let mut session = Session {
        socket,
        next_id: 0,
        workers: HashMap::new(),
        prefix,
        backlog: Vec::new(),
    };
    let ack = session
        .next(Duration::from_secs(20))
        .map_err(|e| Fatal::Server(e.0))?
        .ok_or_else(|| Fatal::Server("the server did not greet".into()))?;
    let version = ack["payload"]["server_version"].clone();

    // The default worker's create request: the script's metadata, minus its own fields,
    // with the options given here on top.
    let mut defaults = script.metadata.clone();
    for key in ["title", "description", "agent", "name"] {
        defaults.remove(key);
    }
    if let Some(kind) = &args.kind {
        defaults.insert("ai_cli_type".into(), json!(kind));
    }
    if let Some(project) = &args.project {
        defaults.insert("project_path".into(), json!(project));
    }
    if !defaults.contains_key("project_path") {
        let here = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        defaults.insert("project_path".into(), json!(here));
    }
    let default_name = script
        .metadata
        .get("agent")
        .and_then(Value::as_str)
        .unwrap_or("default")
        .to_string();

    let progress = Progress {
        tty: std::io::stderr().is_terminal(),
        quiet: args.quiet || args.json,
        total: script.messages.len(),
    };
    let mut results = Vec::new();
    for (index, message) in script.messages.iter().enumerate() {
        let content = message.get("content").and_then(Value::as_str).unwrap_or("");
        let (worker, text) = route(content, &default_name);
        let approve = approve_rules(message).unwrap_or_default();
        let step = Step {
            index,
            worker: &worker,
            content: &text,
            approve: &approve,
        };
        let outcome = run_message(&mut session, &step, &defaults, args, &progress);
        let failure = check(message.get("expect"), &outcome);
        let result = json!({
            "index": index + 1,
            "worker": worker,
            "worker_id": session.workers.get(&worker).map(|w| w.id.clone()),
            "worker_name": session.workers.get(&worker).map(|w| w.name.clone()),
            "content": text,
            "events": outcome.events,
            "final_text": outcome.text,
            "tools_used": outcome.tools,
            "approvals": outcome.approvals,
            "duration_seconds": outcome.duration.as_secs_f64(),
            "success": failure.is_none(),
            "failure_reason": failure,
            "expect": message.get("expect"),
        });
        progress.finished(index, &worker, &result);
        results.push(result);
    }
    // A run against a shared server leaves it as it found it (unless told to keep them).
    if own.is_none() && !args.keep {
        session.remove_workers();
    }
    drop(session);
    let succeeded = results.iter().filter(|r| r["success"] == true).count();
    let report = json!({
        "metadata": script.metadata,
        "script": args.script,
        "server": {"url": url, "port": url.rsplit(':').next().and_then(|p| p.parse::<u16>().ok()), "version": version, "started_here": own.is_some()},
        "started_at": started_at,
        "finished_at": clock::now_rfc3339(),
        "messages": results,
        "totals": {
            "messages": script.messages.len(),
            "succeeded": succeeded,
            "failed": script.messages.len() - succeeded,
            "duration_seconds": started.elapsed().as_secs_f64(),
        },
    });
    drop(own);
    let text = serde_json::to_string_pretty(&report).unwrap_or_default();
    if let Err(e) = std::fs::write(&args.report, format!("{text}\n")) {
        eprintln!(
            "workerhub batch: cannot write the report {}: {e}",
            args.report.display()
        );
    }
    if args.json {
        println!("{text}");
    } else if !args.quiet {
        eprintln!(
            "{succeeded}/{} messages succeeded in {:.1}s; report: {}",
            script.messages.len(),
            started.elapsed().as_secs_f64(),
            args.report.display()
        );
    }
    Ok(if succeeded == script.messages.len() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_route_to_workers() {
        assert_eq!(
            route("@alice hi there", "d"),
            ("alice".into(), "hi there".into())
        );
        assert_eq!(route("hello", "d"), ("d".into(), "hello".into()));
        assert_eq!(route("@ nobody", "d"), ("d".into(), "@ nobody".into()));
    }

    #[test]
    fn expectations_name_what_failed() {
        let outcome = Outcome {
            events: Vec::new(),
            text: "The answer is 42".into(),
            tools: vec!["Bash".into()],
            duration: Duration::from_secs(2),
            error: None,
            approvals: Vec::new(),
        };
        assert_eq!(
            check(
                Some(&json!({"contains": "42", "tool_used": "bash", "regex": "\\d+"})),
                &outcome
            ),
            None
        );
        assert!(
            check(Some(&json!({"contains": ["42", "43"]})), &outcome)
                .unwrap()
                .contains("43")
        );
        assert!(check(Some(&json!({"not_contains": "answer"})), &outcome).is_some());
        assert!(
            check(Some(&json!({"tool_used": "Read"})), &outcome)
                .unwrap()
                .contains("Read")
        );
        assert!(
            check(Some(&json!({"max_seconds": 1})), &outcome)
                .unwrap()
                .contains("more than")
        );
    }
}
