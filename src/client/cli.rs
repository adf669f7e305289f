//! The command-line client: `workers`, `create`, `rm`, `send`, `watch`, `exec`, `tasks`
//! and `status` against a running server. Errors from the server are printed as one line
//! and end with a non-zero exit.

use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use serde::Deserialize;
use serde_json::{Value, json};
use tungstenite::Message;

use crate::client::{self, Client, ClientError, Socket};
use crate::event::{AgentContent, Content, Decision, Event, Pipe, Status};
use crate::wire::envelope::{RequestType, ServerType};

#[derive(Args, Debug, Clone)]
pub struct ClientArgs {
    /// The server.
    #[arg(long, env = "WORKERHUB_URL", default_value = "http://127.0.0.1:7788")]
    pub url: String,
    /// The server's token [default: WORKERHUB_TOKEN, else DATA_DIR/token, else the
    /// data folder of a workerhub running on this machine at --url's port].
    #[arg(long)]
    pub token: Option<String>,
    /// Where a local server keeps its token.
    #[arg(long, env = "WORKERHUB_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
}

impl ClientArgs {
    pub fn client(&self) -> Client {
        Client::new(
            &self.url,
            client::find_token(self.token.clone(), &self.data_dir, &self.url),
        )
    }
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// The worker's name.
    pub name: String,
    /// Its project folder (on the server; with --host, an absolute path on that host).
    #[arg(long)]
    pub path: String,
    /// Run it on this host of the server's hosts file (`workerhub hosts` lists them),
    /// over ssh [default: the server's machine].
    #[arg(long)]
    pub host: Option<String>,
    /// Its kind (`ai_cli_type`): command, claude, codex, gemini, opencode, ...
    #[arg(long)]
    pub kind: Option<String>,
    /// For `command` workers: the program and its arguments (after `--`).
    #[arg(last = true)]
    pub command: Vec<String>,
    #[arg(long)]
    pub model: Option<String>,
    /// A tool the CLI may use without asking (repeatable).
    #[arg(long = "allowed-tool")]
    pub allowed_tools: Vec<String>,
    #[arg(long)]
    pub permission_mode: Option<String>,
    /// Claude Code: print, stream or watch.
    #[arg(long)]
    pub mode: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
    /// Work in a git worktree of its own, on a branch of its own.
    #[arg(long)]
    pub worktree: bool,
    /// With --worktree: the commit or branch it starts from [default: HEAD].
    #[arg(long, requires = "worktree")]
    pub base_ref: Option<String>,
}

#[derive(Args, Debug)]
pub struct SendArgs {
    /// The worker (id or name).
    pub worker: String,
    /// The message.
    pub message: String,
    /// Print the raw events, one JSON object per line.
    #[arg(long)]
    pub json: bool,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
    /// For a `command` worker (no turns): its answer is over after this much quiet
    /// [default: 300, or 1500 for a worker on another host, whose first answer comes
    /// over ssh].
    #[arg(long)]
    pub quiet_ms: Option<u64>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Args, Debug)]
pub struct WatchArgs {
    /// The worker (id or name).
    pub worker: String,
    /// Replay the events after this seq first (0: the whole history).
    #[arg(long)]
    pub since: Option<u64>,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("decision").required(true).args(["allow", "allow_session", "deny"])))]
pub struct ApproveArgs {
    /// The worker (name, id or the start of its id).
    pub worker: String,
    /// The approval (its id or the start of it) [default: the one the worker waits for].
    pub approval: Option<String>,
    /// Allow this call once.
    #[arg(long)]
    pub allow: bool,
    /// Allow it, and calls like it for the rest of the session.
    #[arg(long)]
    pub allow_session: bool,
    /// Deny it.
    #[arg(long)]
    pub deny: bool,
    /// Why (the agent is told when you deny).
    #[arg(long)]
    pub message: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// Seconds before the command is killed (the server's default when not given).
    #[arg(long)]
    pub timeout: Option<f64>,
    /// The folder to run in (on the server).
    #[arg(long)]
    pub cwd: Option<String>,
    /// Run the program through `sh -c` (the program is then one command line).
    #[arg(long)]
    pub shell: bool,
    /// The program and its arguments.
    #[arg(last = true, required = true)]
    pub argv: Vec<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Subcommand, Debug)]
pub enum TasksCommand {
    /// Add a task.
    Add {
        instruction: String,
        /// The worker to run it on (id or name).
        #[arg(long)]
        worker: Option<String>,
        /// Or a kind: an idle worker of it, or a new one in --path.
        #[arg(long)]
        kind: Option<String>,
        #[arg(long)]
        path: Option<String>,
        /// Repeat every interval: 30s, 5m, 2h, 1d, 1w.
        #[arg(long)]
        every: Option<String>,
        /// Print only the new task's id (for scripts).
        #[arg(long, short)]
        quiet: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List tasks.
    List {
        #[arg(long)]
        status: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Cancel a task (its id, or the start of it).
    Cancel {
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Run a task now (its id, or the start of it).
    Run {
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// The create request's fields as `workerhub create` names them.
const CREATE_TERMS: &[(&str, &str)] = &[
    ("name", "NAME"),
    ("project_path", "--path"),
    ("ai_cli_type", "--kind"),
    ("command", "the command after --"),
    ("model", "--model"),
    ("allowed_tools", "--allowed-tool"),
    ("permission_mode", "--permission-mode"),
    ("mode", "--mode"),
    ("base_ref", "--base-ref"),
    ("host", "--host"),
];

/// The task request's fields as `workerhub tasks add` names them.
const TASK_TERMS: &[(&str, &str)] = &[
    ("instruction", "INSTRUCTION"),
    ("worker_id", "--worker"),
    ("ai_cli_type", "--kind"),
    ("project_path", "--path"),
    ("schedule", "--every"),
];

/// The server names the API's fields (`` `project_path` ``); a user of the command line
/// knows its flags (`--path`).
fn in_cli_terms(err: ClientError, terms: &[(&str, &str)]) -> ClientError {
    let mut text = err.0;
    for (field, flag) in terms {
        text = text.replace(&format!("`{field}`"), &format!("`{flag}`"));
    }
    ClientError(text)
}

/// Runs a client command; prints the error as one line and fails on error.
pub fn run(command: impl FnOnce() -> Result<ExitCode, ClientError>) -> ExitCode {
    match command() {
        Ok(code) => code,
        Err(err) => {
            eprintln!("workerhub: {err}");
            ExitCode::from(1)
        }
    }
}

fn short(text: &str, max: usize) -> String {
    let line = text.lines().next().unwrap_or("");
    let mut out: String = line.chars().take(max).collect();
    if line.chars().count() > max || text.lines().nth(1).is_some() {
        out.push('…');
    }
    out
}

pub fn workers(args: &ClientArgs) -> Result<ExitCode, ClientError> {
    let list = args.client().get("/api/workers")?;
    let workers = list["workers"].as_array().cloned().unwrap_or_default();
    if workers.is_empty() {
        println!("no workers");
        return Ok(ExitCode::SUCCESS);
    }
    // Where each runs, when any runs on another host (`-`: the server's machine).
    let hosts = workers.iter().any(|w| w["host"].is_string());
    let host = |w: &Value| match hosts {
        true => format!("{:<16} ", short(w["host"].as_str().unwrap_or("-"), 16)),
        false => String::new(),
    };
    println!(
        "{:<20} {:<36} {:<10} {:<12} {}PROJECT",
        "NAME",
        "ID",
        "KIND",
        "STATUS",
        if hosts {
            format!("{:<16} ", "HOST")
        } else {
            String::new()
        }
    );
    for w in workers {
        println!(
            "{:<20} {:<36} {:<10} {:<12} {}{}",
            short(w["name"].as_str().unwrap_or(""), 20),
            w["id"].as_str().unwrap_or(""),
            w["ai_cli_type"].as_str().unwrap_or(""),
            w["status"].as_str().unwrap_or(""),
            host(&w),
            w["project_path"].as_str().unwrap_or("")
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn create(args: &CreateArgs) -> Result<ExitCode, ClientError> {
    let mut body = json!({"name": args.name, "project_path": args.path});
    let set = |body: &mut Value, key: &str, value: Value| {
        body[key] = value;
    };
    if let Some(kind) = &args.kind {
        set(&mut body, "ai_cli_type", json!(kind));
    }
    if !args.command.is_empty() {
        set(&mut body, "command", json!(args.command));
    }
    if args.worktree {
        set(&mut body, "isolation", json!("worktree"));
    }
    if let Some(base) = &args.base_ref {
        set(&mut body, "base_ref", json!(base));
    }
    for (key, value) in [
        ("host", &args.host),
        ("model", &args.model),
        ("permission_mode", &args.permission_mode),
        ("mode", &args.mode),
    ] {
        if let Some(v) = value {
            set(&mut body, key, json!(v));
        }
    }
    if !args.allowed_tools.is_empty() {
        set(&mut body, "allowed_tools", json!(args.allowed_tools));
    }
    let worker = args
        .client
        .client()
        .post("/api/workers", &body)
        .map_err(|e| in_cli_terms(e, CREATE_TERMS))?;
    println!(
        "{} {} ({}, {})",
        worker["id"].as_str().unwrap_or(""),
        worker["name"].as_str().unwrap_or(""),
        worker["ai_cli_type"].as_str().unwrap_or(""),
        worker["status"].as_str().unwrap_or("")
    );
    Ok(ExitCode::SUCCESS)
}

pub fn remove(args: &ClientArgs, worker: &str) -> Result<ExitCode, ClientError> {
    args.client()
        .delete(&format!("/api/workers/{}", encode(worker)))?;
    println!("deleted {worker}");
    Ok(ExitCode::SUCCESS)
}

pub(super) fn encode(segment: &str) -> String {
    percent_encoding::utf8_percent_encode(segment, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// What to do with an event in readable form.
pub struct Render {
    pub json: bool,
    /// The worker as the user named it (for the `workerhub approve` hint).
    pub worker: String,
}

impl Render {
    /// Prints one event: as JSON, or as readable text (the answer; a tool call as one
    /// line; errors on stderr).
    pub fn event(&self, event: &Value) {
        let mut out = io::stdout().lock();
        let mut err = io::stderr().lock();
        if self.json {
            let _ = writeln!(out, "{event}");
            return;
        }
        let Ok(typed) = Event::deserialize(event) else {
            // A shape this build does not know (a newer server): shown as it came.
            let _ = writeln!(err, "{event}");
            return;
        };
        match typed {
            Event::UserMessage(message) => {
                let _ = writeln!(out, "> {}", message.content);
            }
            Event::Output {
                content: Content::Line(line),
            } => {
                if line.stream == Pipe::Stderr {
                    let _ = writeln!(err, "{}", line.text);
                } else {
                    let _ = writeln!(out, "{}", line.text);
                }
            }
            Event::Output {
                content: Content::Agent(piece),
            } => render_piece(&mut out, &mut err, &piece),
            Event::Status(status) if status.status == Status::Exited => {
                let how = match (status.exit.exit_code, status.exit.signal_name) {
                    (Some(code), _) => format!("code {code}"),
                    (None, Some(sig)) => sig,
                    _ => "?".into(),
                };
                let _ = writeln!(out, "[exited: {how}]");
            }
            Event::Error(error) => {
                let _ = match &error.hint {
                    Some(hint) => writeln!(err, "error: {} ({hint})", error.message),
                    None => writeln!(err, "error: {}", error.message),
                };
            }
            Event::ApprovalRequest(ask) => {
                let id: String = ask.approval_id.chars().take(8).collect();
                let _ = writeln!(
                    out,
                    "  ? {} asks to run: {}\n    answer with: workerhub approve {} {id} --allow | --allow-session | --deny [--message TEXT]",
                    ask.tool_name,
                    short(&ask.summary, 200),
                    self.worker
                );
            }
            Event::ApprovalResolved(done) => {
                let how = match done.decision {
                    Decision::Allow => "allowed",
                    Decision::AllowSession => "allowed for the session",
                    Decision::Deny => "denied",
                    Decision::Cancelled => "withdrawn",
                    Decision::Expired => "expired",
                };
                let because = done
                    .message
                    .as_deref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default();
                let _ = writeln!(out, "  {how} by {}{because}", done.by);
            }
            Event::Diff(diff) => {
                let _ = writeln!(out, "  Δ {}", diff.describe());
            }
            // A terminal's bytes go to the terminal as they came (escapes and all).
            Event::Terminal(data) => {
                let _ = out.write_all(&data.bytes().unwrap_or_default());
                let _ = out.flush();
            }
            Event::TerminalSnapshot(snapshot) => {
                let _ = out.write_all(&snapshot.screen.bytes().unwrap_or_default());
                let _ = out.flush();
            }
            Event::Status(_) | Event::TerminalResize(_) | Event::Unknown => {}
        }
    }
}

/// One piece of an AI CLI's output, readable: the answer as it is, a tool call as one
/// line, a failed tool's output short, the end of the turn with its time and cost.
fn render_piece(out: &mut impl Write, err: &mut impl Write, piece: &AgentContent) {
    match piece {
        AgentContent::Text { text, .. } => {
            let _ = writeln!(out, "{text}");
        }
        AgentContent::Thinking { text, .. } => {
            let _ = writeln!(out, "  (thinking) {}", short(text, 100));
        }
        AgentContent::ToolUse(tool) => {
            let input = &tool.input;
            let what = ["command", "cmd", "file_path", "path", "query", "url"]
                .iter()
                .find_map(|k| input[*k].as_str().map(str::to_string))
                .unwrap_or_else(|| input.to_string());
            let name = tool.name.as_deref().unwrap_or("tool");
            let _ = writeln!(out, "  ⚙ {name}: {}", short(&what, 120));
        }
        AgentContent::ToolResult(result) if result.is_error => {
            let _ = writeln!(out, "  ✗ {}", short(&result.content, 120));
        }
        AgentContent::Result(result) => {
            let mut line = String::from(if result.is_error {
                "— failed"
            } else {
                "— done"
            });
            if let Some(ms) = result.duration_ms.as_ref().and_then(Value::as_f64) {
                line.push_str(&format!(" in {:.1}s", ms / 1000.0));
            }
            if let Some(cost) = result
                .cost_usd
                .as_ref()
                .and_then(Value::as_f64)
                .filter(|c| *c > 0.0)
            {
                line.push_str(&format!(", ${cost:.4}"));
            }
            let _ = writeln!(out, "{line}");
        }
        AgentContent::Log { text, .. } => {
            let _ = writeln!(err, "{text}");
        }
        AgentContent::Retry(retry) => {
            let _ = writeln!(err, "  ↻ {}", crate::event::describe_retry(retry));
        }
        AgentContent::Plan { entries, .. } => {
            for entry in entries.as_array().into_iter().flatten() {
                let mark = match entry["status"].as_str() {
                    Some("completed") => "x",
                    Some("in_progress") => ">",
                    _ => " ",
                };
                let text = entry["content"].as_str().unwrap_or("");
                let _ = writeln!(out, "  [{mark}] {}", short(text, 120));
            }
        }
        AgentContent::ToolResult(_) | AgentContent::System(_) => {}
    }
}

/// Reads the next JSON message from a socket (pings are answered by tungstenite), or
/// None on timeout.
fn next_json(socket: &mut Socket, timeout: Duration) -> Result<Option<Value>, ClientError> {
    client::set_read_timeout(socket, Some(timeout.max(Duration::from_millis(1))));
    loop {
        match socket.read() {
            Ok(Message::Text(t)) => return Ok(serde_json::from_str(&t).ok()),
            Ok(Message::Close(frame)) => {
                let why = frame
                    .map(|f| format!("{} ({})", f.reason, u16::from(f.code)))
                    .unwrap_or_default();
                return Err(ClientError(format!(
                    "the server closed the connection {why}"
                )));
            }
            Ok(_) => continue,
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(ClientError(format!("connection lost: {e}"))),
        }
    }
}

/// Sends a message to a worker and shows the answer until the turn ends.
pub fn send(args: &SendArgs) -> Result<ExitCode, ClientError> {
    let client = args.client.client();
    let worker = client.get(&format!("/api/workers/{}", encode(&args.worker)))?;
    let id = worker["id"].as_str().unwrap_or("").to_string();
    let render = Render {
        json: args.json,
        worker: args.worker.clone(),
    };
    let mut socket = client.ws("/ws")?;
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    if worker["has_turns"] != true {
        let quiet = match (args.quiet_ms, worker["host"].is_string()) {
            (Some(ms), _) => ms,
            (None, false) => 300,
            (None, true) => 1500,
        };
        let quiet = Duration::from_millis(quiet);
        return send_without_turns(args, &mut socket, (&id, quiet), deadline, &render);
    }
    client::send_request(
        &mut socket,
        "send",
        RequestType::CommandExecute,
        json!({"content": args.message}),
        Some(&id),
    )?;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            eprintln!(
                "workerhub: no end of turn within {}s; interrupting it",
                args.timeout
            );
            client::send_request(
                &mut socket,
                "interrupt",
                RequestType::AgentInterrupt,
                json!({"worker_id": id}),
                None,
            )?;
            return Ok(ExitCode::from(1));
        }
        let Some(msg) = next_json(&mut socket, left)? else {
            continue;
        };
        if msg["correlation_id"] != "send" {
            continue;
        }
        match client::server_type(&msg) {
            Some(ServerType::CommandProgress) if msg["payload"]["state"] == "queued" => {
                eprintln!(
                    "workerhub: {} is busy: the message is queued at position {}; it runs when the turns before it end",
                    args.worker, msg["payload"]["position"]
                );
            }
            Some(ServerType::CommandProgress) => render.event(&msg["payload"]["event"]),
            Some(ServerType::CommandResult) => {
                if args.json {
                    println!("{}", msg["payload"]);
                }
                return Ok(if msg["payload"]["success"] == true {
                    ExitCode::SUCCESS
                } else {
                    eprintln!(
                        "workerhub: the turn ended: {}",
                        msg["payload"]["outcome"].as_str().unwrap_or("failed")
                    );
                    ExitCode::from(1)
                });
            }
            Some(_) => {
                return Err(ClientError(
                    msg["payload"]["message"]
                        .as_str()
                        .unwrap_or("error")
                        .to_string(),
                ));
            }
            None => {}
        }
    }
}

/// A worker without turns (`command`) answers with output and then falls quiet: follow
/// its events over the same socket, and count the quiet only once the message was
/// taken, so a busy server does not end the wait before the answer had a chance.
fn send_without_turns(
    args: &SendArgs,
    socket: &mut Socket,
    (id, quiet): (&str, Duration),
    deadline: Instant,
    render: &Render,
) -> Result<ExitCode, ClientError> {
    client::send_request(
        socket,
        "follow",
        RequestType::AgentSubscribe,
        json!({"worker_id": id}),
        None,
    )?;
    client::send_request(
        socket,
        "send",
        RequestType::CommandExecute,
        json!({"content": args.message}),
        Some(id),
    )?;
    let mut answered = false;
    let mut last = Instant::now();
    loop {
        if answered && last.elapsed() >= quiet {
            return Ok(ExitCode::SUCCESS);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            eprintln!(
                "workerhub: the worker did not take the message within {}s",
                args.timeout
            );
            return Ok(ExitCode::from(1));
        }
        let wait = if answered {
            quiet.saturating_sub(last.elapsed()).min(left)
        } else {
            left
        };
        let Some(msg) = next_json(socket, wait)? else {
            continue;
        };
        match (client::server_type(&msg), msg["correlation_id"].as_str()) {
            (Some(ServerType::AgentEvent), _) if msg["source"] == id => {
                render.event(&msg["payload"]);
                last = Instant::now();
            }
            (Some(ServerType::CommandResult), Some("send")) => {
                answered = true;
                last = Instant::now();
            }
            (Some(t), Some("send" | "follow")) if t.is_error() => {
                return Err(ClientError(
                    msg["payload"]["message"]
                        .as_str()
                        .unwrap_or("error")
                        .to_string(),
                ));
            }
            _ => {}
        }
    }
}

/// Follows a worker's events (reconnecting after a 1013 where it left off).
pub fn watch(args: &WatchArgs) -> Result<ExitCode, ClientError> {
    let client = args.client.client();
    let worker = client.get(&format!("/api/workers/{}", encode(&args.worker)))?;
    let id = worker["id"].as_str().unwrap_or("").to_string();
    let render = Render {
        json: args.json,
        worker: args.worker.clone(),
    };
    let mut since = args.since;
    // Without a replay, what the worker waits for is shown first (it is in the past).
    if since.is_none() {
        for request in worker["pending_approvals"].as_array().into_iter().flatten() {
            let mut event = request.clone();
            event["type"] = "approval_request".into();
            render.event(&event);
        }
    }
    loop {
        let path = match since {
            Some(n) => format!("/ws/{}?since={n}", encode(&id)),
            None => format!("/ws/{}", encode(&id)),
        };
        let mut socket = client.ws(&path)?;
        loop {
            match next_json(&mut socket, Duration::from_secs(3600)) {
                Ok(Some(event)) => {
                    if let Some(seq) = event["seq"].as_u64() {
                        since = Some(seq);
                    }
                    render.event(&event);
                }
                Ok(None) => {}
                Err(err) if err.0.contains("(1013)") => break,
                Err(err) => return Err(err),
            }
        }
    }
}

/// Runs a command on the server; its output and exit code come back as if it ran here.
pub fn exec(args: &ExecArgs) -> Result<ExitCode, ClientError> {
    let client = args.client.client();
    let mut payload = if args.shell {
        json!({"argv": [args.argv.join(" ")], "shell": true})
    } else {
        json!({"argv": args.argv})
    };
    if let Some(t) = args.timeout {
        payload["timeout"] = json!(t);
    }
    if let Some(cwd) = &args.cwd {
        payload["cwd"] = json!(cwd);
    }
    let mut socket = client.ws("/ws")?;
    client::send_request(
        &mut socket,
        "exec",
        RequestType::CommandExecute,
        payload,
        None,
    )?;
    loop {
        let Some(msg) = next_json(&mut socket, Duration::from_secs(3600))? else {
            continue;
        };
        if msg["correlation_id"] != "exec" {
            continue;
        }
        let p = &msg["payload"];
        match client::server_type(&msg) {
            Some(ServerType::CommandProgress) => {
                let text = p["text"].as_str().unwrap_or("");
                if p["stream"] == "stderr" {
                    eprintln!("{text}");
                } else {
                    println!("{text}");
                }
            }
            Some(ServerType::CommandResult) => {
                let _ = io::stdout().flush();
                if let Some(error) = p["error"].as_str() {
                    eprintln!("workerhub: {error}");
                }
                let code = match (
                    p["exit_code"].as_i64(),
                    p["signal"].as_i64(),
                    p["timed_out"] == true,
                ) {
                    (_, _, true) => 124,
                    (Some(code), _, _) => code,
                    (None, Some(sig), _) => 128 + sig,
                    _ => 127,
                };
                return Ok(ExitCode::from(code.clamp(0, 255) as u8));
            }
            _ => {
                return Err(ClientError(
                    p["message"].as_str().unwrap_or("error").to_string(),
                ));
            }
        }
    }
}

/// A task in one line: the start of its id, its state, what it asks, when it runs next,
/// and why its last run failed.
fn print_task(t: &Value) {
    let id: String = t["id"].as_str().unwrap_or("").chars().take(8).collect();
    let mut line = format!(
        "{id}  {:<9}  {}",
        t["status"].as_str().unwrap_or(""),
        short(t["instruction"].as_str().unwrap_or(""), 60)
    );
    if let Some(next) = t["next_run_at"].as_str() {
        line.push_str(&format!("  (next {next})"));
    }
    if t["status"] == "failed"
        && let Some(why) = t["error"].as_str()
    {
        line.push_str(&format!("\n          failed: {why}"));
    }
    println!("{line}");
}

/// Answers a tool approval; without an id, the one the worker waits for (when only one
/// does).
pub fn approve(args: &ApproveArgs) -> Result<ExitCode, ClientError> {
    let client = args.client.client();
    let worker = encode(&args.worker);
    let approval = match &args.approval {
        Some(id) => id.clone(),
        None => {
            let pending = client.get(&format!("/api/workers/{worker}/approvals"))?;
            let list = pending["approvals"].as_array().cloned().unwrap_or_default();
            match list.as_slice() {
                [one] => one["approval_id"].as_str().unwrap_or("").to_string(),
                [] => {
                    return Err(ClientError(format!(
                        "{} waits for no approval",
                        args.worker
                    )));
                }
                many => {
                    let shown: Vec<String> = many
                        .iter()
                        .map(|a| {
                            let id: String = a["approval_id"]
                                .as_str()
                                .unwrap_or("")
                                .chars()
                                .take(8)
                                .collect();
                            format!(
                                "{id} ({}: {})",
                                a["tool_name"].as_str().unwrap_or(""),
                                short(a["summary"].as_str().unwrap_or(""), 60)
                            )
                        })
                        .collect();
                    return Err(ClientError(format!(
                        "{} waits for {} approvals; name one: {}",
                        args.worker,
                        many.len(),
                        shown.join("; ")
                    )));
                }
            }
        }
    };
    let decision = if args.allow {
        "allow"
    } else if args.allow_session {
        "allow_session"
    } else {
        "deny"
    };
    let mut body = json!({"decision": decision});
    if let Some(message) = &args.message {
        body["message"] = json!(message);
    }
    let resolved = client.post(
        &format!("/api/workers/{worker}/approvals/{}", encode(&approval)),
        &body,
    )?;
    let id: String = resolved["approval_id"]
        .as_str()
        .unwrap_or("")
        .chars()
        .take(8)
        .collect();
    println!(
        "{id}: {} ({})",
        resolved["decision"].as_str().unwrap_or(decision),
        resolved["tool_name"].as_str().unwrap_or("")
    );
    Ok(ExitCode::SUCCESS)
}

pub fn tasks(command: &TasksCommand) -> Result<ExitCode, ClientError> {
    match command {
        TasksCommand::Add {
            instruction,
            worker,
            kind,
            path,
            every,
            quiet,
            client,
        } => {
            let mut body = json!({"instruction": instruction});
            for (key, value) in [
                ("worker_id", worker),
                ("ai_cli_type", kind),
                ("project_path", path),
                ("schedule", every),
            ] {
                if let Some(v) = value {
                    body[key] = json!(v);
                }
            }
            let task = client
                .client()
                .post("/api/tasks", &body)
                .map_err(|e| in_cli_terms(e, TASK_TERMS))?;
            if *quiet {
                println!("{}", task["id"].as_str().unwrap_or(""));
            } else {
                print_task(&task);
            }
        }
        TasksCommand::List { status, client } => {
            let path = match status {
                Some(s) => format!("/api/tasks?status={}", encode(s)),
                None => "/api/tasks".into(),
            };
            let list = client.client().get(&path)?;
            let tasks = list["tasks"].as_array().cloned().unwrap_or_default();
            if tasks.is_empty() {
                println!("no tasks");
            }
            tasks.iter().for_each(print_task);
        }
        TasksCommand::Cancel { id, client } => print_task(
            &client
                .client()
                .post(&format!("/api/tasks/{}/cancel", encode(id)), &json!({}))?,
        ),
        TasksCommand::Run { id, client } => {
            let client = client.client();
            let task = client.post(&format!("/api/tasks/{}/run", encode(id)), &json!({}))?;
            let full = task["id"].as_str().unwrap_or(id).to_string();
            let short_id: String = full.chars().take(8).collect();
            // It starts on its own thread: say where, once it has a worker.
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut now = task;
            while now["status"] == "pending" && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
                now = client.get(&format!("/api/tasks/{}", encode(&full)))?;
            }
            let worker = now["assigned_worker"].as_str().unwrap_or("");
            let worker_name = if worker.is_empty() {
                String::new()
            } else {
                client
                    .get(&format!("/api/workers/{}", encode(worker)))
                    .ok()
                    .and_then(|w| {
                        w["name"]
                            .as_str()
                            .filter(|n| !n.is_empty())
                            .map(str::to_string)
                    })
                    .unwrap_or_else(|| worker.chars().take(8).collect())
            };
            match now["status"].as_str().unwrap_or("") {
                "pending" => println!(
                    "task {short_id} is queued to run; follow it with: workerhub tasks list"
                ),
                "failed" => {
                    println!(
                        "task {short_id} failed: {}",
                        now["error"].as_str().unwrap_or("no reason given")
                    );
                    return Ok(ExitCode::from(1));
                }
                state => println!(
                    "task {short_id} {} on worker {worker_name}; follow it with: workerhub watch {worker_name}",
                    if state == "running" { "started" } else { "ran" }
                ),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn status(args: &ClientArgs) -> Result<ExitCode, ClientError> {
    let s = args.client().get("/api/status")?;
    let by = |v: &Value| {
        v.as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, n)| format!("{n} {k}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "none".into())
    };
    println!(
        "workerhub {} at {}, up {}s",
        s["version"].as_str().unwrap_or(""),
        args.url,
        s["uptime_seconds"]
    );
    println!(
        "workers      {} ({})",
        s["workers"]["total"],
        by(&s["workers"]["by_status"])
    );
    println!(
        "tasks        {} ({})",
        s["tasks"]["total"],
        by(&s["tasks"]["by_status"])
    );
    println!("connections  {}", s["connections"]);
    println!(
        "messages     {} received, {} sent",
        s["messages"]["received"], s["messages"]["sent"]
    );
    if io::stdout().is_terminal() {
        println!(
            "memory       {:.1} MB",
            s["process"]["rss_bytes"].as_f64().unwrap_or(0.0) / 1e6
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Subcommand, Debug)]
pub enum TokenCommand {
    /// Generates a token for NAME with ROLE, adds its hash to the tokens file (creating
    /// it) and prints the token once: only its hash is kept.
    New {
        name: String,
        /// admin (everything), operator (its own workers) or viewer (watch only).
        #[arg(long, default_value = "operator")]
        role: String,
        /// The tokens file the server reads with `--tokens`.
        #[arg(long, default_value = "./tokens.json")]
        tokens: PathBuf,
    },
}

pub fn token(command: &TokenCommand) -> Result<ExitCode, ClientError> {
    let TokenCommand::New { name, role, tokens } = command;
    let fail = |m: String| ClientError(m);
    if !["admin", "operator", "viewer"].contains(&role.as_str()) {
        return Err(fail(format!(
            "--role must be admin, operator or viewer, not `{role}`"
        )));
    }
    let mut file: serde_json::Value = match std::fs::read_to_string(tokens) {
        Ok(text) => serde_json::from_str(&text)
            .map_err(|e| fail(format!("{} is not valid JSON: {e}", tokens.display())))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => serde_json::json!({"tokens": []}),
        Err(e) => return Err(fail(format!("cannot read {}: {e}", tokens.display()))),
    };
    let list = file["tokens"]
        .as_array_mut()
        .ok_or_else(|| fail(format!("{} has no `tokens` list", tokens.display())))?;
    if list.iter().any(|t| t["name"] == name.as_str()) {
        return Err(fail(format!(
            "{} already has a token named `{name}`",
            tokens.display()
        )));
    }
    let token =
        crate::auth::generate().map_err(|e| fail(format!("cannot generate a token: {e}")))?;
    let hash = crate::auth::hex(&crate::auth::sha256(&token));
    list.push(serde_json::json!({"name": name, "sha256": hash, "role": role}));
    let text = serde_json::to_string_pretty(&file).unwrap_or_default();
    crate::private_files::write(tokens, format!("{text}\n").as_bytes())
        .map_err(|e| fail(format!("cannot write {}: {e}", tokens.display())))?;
    println!("{token}");
    eprintln!(
        "added `{name}` ({role}) to {}; the token above is shown once (only its hash is kept). \
         Start the server with --tokens {} (a running server reads the file at start).",
        tokens.display(),
        tokens.display()
    );
    Ok(ExitCode::SUCCESS)
}
