//! Worker kinds (`ai_cli_type`). An adapter knows how to start its program (for a turn
//! or for a long-running session), how to hand it a message, how to interrupt it, and
//! how to turn each line it prints into events of the one event model. Adding a kind is
//! one file here plus one line in `registry::builtin` (`scratch.rs`, a kind that
//! exists only in the unit tests, shows it).
//!
//! Output events of AI kinds carry an [`AgentContent`]: `text`, `thinking`, `tool_use`,
//! `tool_result`, `result`, `system` and `log` (a line that is not in the CLI's JSON
//! format), each with the CLI's line as `raw`. The plain `command` kind keeps
//! `{"stream","text"}` (a `Line`).

pub mod acp;
pub mod claude;
pub mod codex;
pub mod codex_server;
pub mod command;
pub mod custom;
pub mod failure;
pub mod gemini;
pub mod opencode;
pub mod registry;
#[cfg(test)]
mod scratch;
pub mod settings;

use serde_json::{Map, Value};

use crate::approval::{Answer, ApprovalPolicy, Rule, Rules};
use crate::event::{AgentContent, Event, Pipe};
use crate::process::ProcessSpec;
use crate::spec::{SessionKind, WorkerSpec};
pub use registry::Registry;
pub use settings::{CliSettings, KindSettings};

/// One option a kind takes in `POST /api/workers`, as the UI shows it (`GET
/// /api/ai-clis` lists each kind's options, so the UI needs no list of its own).
#[derive(Clone, Debug, serde::Serialize)]
pub struct OptionSpec {
    /// The field of the create request.
    pub name: &'static str,
    pub label: &'static str,
    #[serde(rename = "type")]
    pub kind: OptionKind,
    /// The values a `choice` takes (a text field may suggest them too).
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub values: Vec<&'static str>,
    pub required: bool,
    pub help: &'static str,
}

/// How an option is entered.
#[derive(Clone, Copy, Debug, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OptionKind {
    /// One line of text.
    Text,
    /// One of `values` (or empty for the kind's default).
    Choice,
    /// Several words (comma or space separated).
    List,
    /// A command line, split into arguments as a shell would (without running one).
    Argv,
    /// `NAME=value` lines.
    Env,
    /// On or off (`true` in the request, absent when off).
    Flag,
}

impl OptionSpec {
    pub const fn new(
        name: &'static str,
        label: &'static str,
        kind: OptionKind,
        help: &'static str,
    ) -> OptionSpec {
        OptionSpec {
            name,
            label,
            kind,
            values: Vec::new(),
            required: false,
            help,
        }
    }

    pub fn values(mut self, values: &[&'static str]) -> OptionSpec {
        self.values = values.to_vec();
        self
    }

    pub fn required(mut self) -> OptionSpec {
        self.required = true;
        self
    }
}

/// The options every AI kind takes: a model, more arguments, and environment.
pub fn ai_options() -> Vec<OptionSpec> {
    vec![
        OptionSpec::new(
            "model",
            "Model",
            OptionKind::Text,
            "the CLI's default when empty",
        ),
        OptionSpec::new(
            "extra_args",
            "Extra arguments",
            OptionKind::Argv,
            "more arguments for the CLI, split as a shell would",
        ),
        OptionSpec::new(
            "env",
            "Environment",
            OptionKind::Env,
            "NAME=value, one a line",
        ),
    ]
}

/// How a kind's process lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lifecycle {
    /// One process for the worker's life; each message is written to its stdin.
    LongRunning,
    /// One process per message (turn), started with the message and, after the first,
    /// the session to resume.
    PerTurn,
}

/// How to interrupt a running turn.
pub enum Interrupt {
    /// Send this signal to the process group.
    Signal(libc::c_int),
    /// Write these bytes to the process's stdin (a long-running session).
    Stdin(Vec<u8>),
}

/// The end of a turn, as the program reported it.
#[derive(Clone, Debug, PartialEq)]
pub struct TurnEnd {
    pub is_error: bool,
}

/// What one output line means.
#[derive(Default)]
pub struct Parsed {
    pub events: Vec<Event>,
    /// The session this program is in (to resume it next turn).
    pub session_id: Option<String>,
    pub turn_end: Option<TurnEnd>,
    /// Tool calls the program asks permission for (and waits).
    pub asks: Vec<Ask>,
    /// Requests the program withdrew (by their `Ask::key`).
    pub withdrawn: Vec<String>,
    /// The turn cannot succeed and the program would keep trying (a refused key, an
    /// endless wait for the network): end it now. The reason is among `events`.
    pub fail_turn: bool,
    /// The session the program was told to resume does not exist (any more).
    pub session_lost: bool,
    /// Bytes for the process's stdin, in order (a protocol's own replies).
    pub replies: Vec<Vec<u8>>,
    /// The process cannot serve (its protocol session would not start): end it, so
    /// that the next message starts another.
    pub stop_process: bool,
}

/// A tool call the program asks permission for.
#[derive(Clone, Debug, PartialEq)]
pub struct Ask {
    /// The program's own id for the request, to answer it by.
    pub key: String,
    pub tool_name: String,
    pub input: Value,
    pub tool_use_id: Option<String>,
    /// Why it asks, when it says.
    pub reason: Option<String>,
    /// The rule an "allow for this session" answer adds (`Bash(touch a.txt)`).
    pub session_rule: Option<String>,
    /// What it would do, for people, when the program says it better than the input
    /// does (an ACP tool call's title), and the change as a diff.
    pub summary: Option<String>,
    pub diff: Option<String>,
    /// Whether an answer may give the input to run instead (`updated_input`): Claude
    /// Code's protocol carries it, ACP's and Codex's do not.
    pub takes_new_input: bool,
    /// What else the adapter needs to answer it (its suggestions, ACP's `options`).
    pub extra: Value,
}

/// Everything needed to build a command line.
pub struct Launch<'a> {
    pub spec: &'a WorkerSpec,
    /// The message of this turn (per-turn kinds).
    pub message: Option<&'a str>,
    /// The session to resume, if a previous turn started one.
    pub session_id: Option<&'a str>,
    /// The program to run, resolved by the registry.
    pub binary: &'a str,
    pub settings: &'a CliSettings,
}

impl Launch<'_> {
    /// The worker's model, else the kind's default (`WORKERHUB_<KIND>_MODEL`).
    pub fn model(&self, kind: &str) -> Option<String> {
        self.spec
            .options
            .model
            .clone()
            .or_else(|| self.settings.of(kind).model)
    }
}

/// Turns a kind's output lines into events. One per process, so it may keep state
/// (text deltas to join, open tool calls).
pub trait LineParser: Send {
    fn line(&mut self, pipe: Pipe, line: &[u8], out: &mut Parsed);
    /// Whether every line becomes an `output` event as it is (what `line` would do), so
    /// the worker may publish lines straight from the pipe's bytes.
    fn passes_lines_through(&self) -> bool {
        false
    }
    /// The process ended: emit whatever is still held.
    fn finish(&mut self, _out: &mut Parsed) {}

    // A parser that speaks a protocol with its process (JSON-RPC: the Agent Client
    // Protocol, Codex's app server) keeps the conversation's state, so it also writes
    // to the process. `None`: the adapter's stateless encoding is used.

    /// The handshake a new long-running process gets first.
    fn start(&mut self) -> Option<Vec<u8>> {
        None
    }
    /// The bytes that give the process one message (empty: held until the session is
    /// ready, then sent among `Parsed::replies`).
    fn encode_message(&mut self, _message: &str) -> Option<Vec<u8>> {
        None
    }
    /// The bytes that answer a request of the process.
    fn answer(&mut self, _ask: &Ask, _answer: &Answer) -> Option<Vec<u8>> {
        None
    }
    /// The bytes that interrupt the running turn.
    fn interrupt(&mut self) -> Option<Vec<u8>> {
        None
    }
}

pub trait Adapter: Send + Sync {
    fn kind(&self) -> &str;
    /// The kind's name for people ("Claude Code").
    fn label(&self) -> &str {
        self.kind()
    }
    /// The options the kind takes, for the UI.
    fn options(&self) -> Vec<OptionSpec> {
        ai_options()
    }
    /// The program's default name (looked up on PATH), or None for kinds that run the
    /// worker's own `command`.
    fn binary_name(&self) -> Option<&str> {
        None
    }
    /// How its process lives: a live session or a `command` for the worker's life, a
    /// process per turn otherwise.
    fn lifecycle(&self, spec: &WorkerSpec) -> Lifecycle {
        if self.is_live(spec) {
            Lifecycle::LongRunning
        } else {
            Lifecycle::PerTurn
        }
    }
    /// Whether the output marks the end of each turn (a `result`).
    fn has_turns(&self, _spec: &WorkerSpec) -> bool {
        true
    }
    /// The process to start: the long-running one, or one turn's.
    fn command(&self, launch: &Launch<'_>) -> Result<ProcessSpec, String>;
    /// What to write to a long-running process's stdin for one message.
    fn encode_message(&self, message: &str) -> Vec<u8> {
        let mut bytes = message.as_bytes().to_vec();
        bytes.push(b'\n');
        bytes
    }
    fn interrupt(&self, _spec: &WorkerSpec) -> Interrupt {
        Interrupt::Signal(libc::SIGINT)
    }
    /// The parser of a process started with `launch` (a protocol's parser needs the
    /// session to resume, the folder and the model).
    fn parser(&self, launch: &Launch<'_>) -> Box<dyn LineParser>;
    /// What an exit code with a known meaning says, as an `error` event.
    fn explain_exit(&self, _code: i32) -> Option<Event> {
        None
    }
    /// Where the CLI keeps a login of its own, relative to the home folder (a
    /// subscription or OAuth login instead of a key).
    fn login_files(&self) -> Vec<String> {
        Vec::new()
    }
    /// What to do when the kind's model API wants a key it does not have or refuses.
    fn credential_hint(&self) -> String {
        let names = self.credentials();
        if names.is_empty() {
            return "give the program the key its model API wants (in the server's environment or the worker's env)".into();
        }
        format!(
            "set {} in the server's environment or in the worker's env",
            names.join(" or ")
        )
    }
    /// Whether the worker takes messages (a read-only follower does not).
    fn takes_messages(&self, _spec: &WorkerSpec) -> bool {
        true
    }
    /// The arguments that make the program print its version, to check it answers;
    /// None when it is enough that the program exists.
    fn version_args(&self) -> Option<Vec<String>> {
        Some(vec!["--version".into()])
    }
    /// The model of workers that name none: the kind's `WORKERHUB_<KIND>_MODEL`.
    fn default_model(&self, settings: &CliSettings) -> Option<String> {
        settings.of(self.kind()).model
    }
    /// Checks a new worker's spec (required fields, shapes).
    fn validate(&self, _spec: &WorkerSpec) -> Result<(), String> {
        Ok(())
    }
    /// The environment variables that are this kind's credentials: passed on from the
    /// server's environment to workers of this kind, and to no other child.
    fn credentials(&self) -> Vec<String> {
        Vec::new()
    }
    /// How to ask the installed program whether it has its live protocol: arguments
    /// and a word its output then holds (`gemini --help` lists `--acp`).
    fn live_probe(&self) -> Option<(Vec<String>, &'static str)> {
        None
    }
    /// The `session` values a worker of this kind takes (`live`: one process for many
    /// turns, asking before it uses tools; `per-turn`), for `/api/ai-clis`.
    fn session_modes(&self) -> &'static [&'static str] {
        &[]
    }
    /// Whether this worker keeps one process for many turns: the kind can, and the
    /// worker did not ask for `"session": "per-turn"`.
    fn is_live(&self, spec: &WorkerSpec) -> bool {
        self.session_modes().contains(&"live") && spec.options.session != Some(SessionKind::PerTurn)
    }
    /// What to write to a new long-running process before anything else (a handshake).
    fn session_start(&self, _spec: &WorkerSpec) -> Vec<u8> {
        Vec::new()
    }
    /// Whether the program asks before using tools, so that someone can answer (a live
    /// session does).
    fn asks_approval(&self, spec: &WorkerSpec) -> bool {
        self.is_live(spec)
    }
    /// The bytes that answer `ask` (written to the program's stdin).
    fn answer_approval(&self, _ask: &Ask, _answer: &Answer) -> Vec<u8> {
        Vec::new()
    }
}

/// The approval policy of a worker: its own, else what its kind can do (a kind whose
/// program cannot ask allows everything, as it always has). `allowed_tools` are allow
/// rules.
pub fn approval_policy(adapter: &dyn Adapter, spec: &WorkerSpec) -> ApprovalPolicy {
    let policy = match &spec.options.approval {
        Some(policy) => policy.clone(),
        None if adapter.asks_approval(spec) => ApprovalPolicy::Ask,
        None => ApprovalPolicy::Auto,
    };
    let extra: Vec<Rule> = spec
        .options
        .allowed_tools
        .iter()
        .filter_map(|t| Rule::parse(t).ok())
        .collect();
    match policy {
        ApprovalPolicy::Ask if !extra.is_empty() => ApprovalPolicy::Rules(Rules {
            allow: extra,
            ..Rules::default()
        }),
        ApprovalPolicy::Rules(mut rules) => {
            rules.allow.extend(extra);
            ApprovalPolicy::Rules(rules)
        }
        other => other,
    }
}

/// A line as text: invalid UTF-8 is replaced (U+FFFD) and a trailing `\r` dropped.
pub fn line_text(line: &[u8]) -> String {
    crate::event::line_str(line).into_owned()
}

/// A line that is not in the CLI's format.
pub fn log_line(pipe: Pipe, text: String) -> Event {
    Event::agent(AgentContent::Log { stream: pipe, text })
}

/// `map[key]` as an owned string, if it is one.
pub fn string_of(map: &Map<String, Value>, key: &str) -> Option<String> {
    str_of(map, key).map(str::to_string)
}

/// `value[key]` as an owned string, if it is one.
pub fn string_in(value: &Value, key: &str) -> Option<String> {
    value.get(key).and_then(Value::as_str).map(str::to_string)
}

/// `value[key]`, present and not null.
pub fn field(value: &Value, key: &str) -> Option<Value> {
    value.get(key).filter(|v| !v.is_null()).cloned()
}

/// Parses a line as a JSON object; anything else becomes a `log` event in `out`.
pub fn json_object(
    pipe: Pipe,
    line: &[u8],
    out: &mut Parsed,
) -> Option<(Map<String, Value>, String)> {
    let text = line_text(line);
    if text.trim().is_empty() {
        return None;
    }
    if pipe == Pipe::Stdout
        && let Ok(Value::Object(map)) = serde_json::from_str::<Value>(&text)
    {
        return Some((map, text));
    }
    out.events.push(log_line(pipe, text));
    None
}

/// JSON-RPC: the method does not exist (or is not offered).
pub const METHOD_NOT_FOUND: i64 = -32601;

/// One JSON message as a line for a program's stdin.
pub fn json_line(value: Value) -> Vec<u8> {
    let mut text = value.to_string();
    text.push('\n');
    text.into_bytes()
}

/// The requests a JSON-RPC client (an ACP or Codex app-server session) sent and waits
/// on: the next id, and what each was for, to read its answer by. A program that never
/// answers cannot grow it without bound: past `MAX_PENDING` the oldest is forgotten (a
/// late answer to it is kept as an `unexpected_response`).
pub struct Pending<S> {
    next_id: u64,
    sent: std::collections::BTreeMap<u64, S>,
    /// Whether messages carry `"jsonrpc": "2.0"` (Codex's app server leaves it out).
    jsonrpc: bool,
}

/// The most requests a protocol session waits on at once.
const MAX_PENDING: usize = 256;

impl<S> Pending<S> {
    pub fn new(jsonrpc: bool) -> Pending<S> {
        Pending {
            next_id: 0,
            sent: std::collections::BTreeMap::new(),
            jsonrpc,
        }
    }

    /// A message as a line, with `jsonrpc` when the protocol wants it.
    pub fn message(&self, mut value: Value) -> Vec<u8> {
        if self.jsonrpc {
            value["jsonrpc"] = Value::from("2.0");
        }
        json_line(value)
    }

    /// Request `method`, remembering it was for `what`.
    pub fn request(&mut self, method: &str, params: Value, what: S) -> Vec<u8> {
        self.next_id += 1;
        if self.sent.len() >= MAX_PENDING {
            self.sent.pop_first();
        }
        self.sent.insert(self.next_id, what);
        self.message(serde_json::json!({"id": self.next_id, "method": method, "params": params}))
    }

    /// What the answer `map` (to request `id`) is for, its `result` (null when absent)
    /// and its `error`; an answer to nothing this client asked is kept as a `system`
    /// event.
    pub fn answered<'m>(
        &mut self,
        id: u64,
        map: &'m Map<String, Value>,
        raw: &str,
        out: &mut Parsed,
    ) -> Option<(S, &'m Value, Option<&'m Value>)> {
        let Some(what) = self.sent.remove(&id) else {
            out.events.push(system_of("unexpected_response", map, raw));
            return None;
        };
        let result = map.get("result").unwrap_or(&Value::Null);
        Some((what, result, map.get("error").filter(|e| !e.is_null())))
    }

    /// Refuses a request of the program that this client does not serve: a `system`
    /// event, and a `METHOD_NOT_FOUND` error so that the program does not wait.
    pub fn refuse(&self, id: &Value, method: &str, raw: &str, out: &mut Parsed) {
        out.events.push(Event::agent(AgentContent::system(
            "unknown_request",
            serde_json::json!({"method": method}),
            raw,
        )));
        out.replies.push(self.message(serde_json::json!({
            "id": id,
            "error": {"code": METHOD_NOT_FOUND, "message": format!("workerhub does not offer `{method}`")},
        })));
    }
}

/// What one JSON-RPC message from the program is.
pub enum Rpc<'a> {
    /// It asks something of this client, and waits for the answer.
    Request {
        id: &'a Value,
        method: &'a str,
        params: &'a Value,
    },
    Notification {
        method: &'a str,
        params: &'a Value,
    },
    /// The answer to a request of this client.
    Response(u64),
    /// Anything else, as the `system` subtype to keep it by.
    Other(&'static str),
}

impl Rpc<'_> {
    pub fn of(map: &Map<String, Value>) -> Rpc<'_> {
        let method = map.get("method").and_then(Value::as_str);
        let id = map.get("id").filter(|v| !v.is_null());
        let params = map.get("params").unwrap_or(&Value::Null);
        match (method, id) {
            (Some(method), Some(id)) => Rpc::Request { id, method, params },
            (Some(method), None) => Rpc::Notification { method, params },
            (None, Some(id)) => match id.as_u64() {
                Some(id) => Rpc::Response(id),
                None => Rpc::Other("unexpected_response"),
            },
            (None, None) => Rpc::Other("unknown"),
        }
    }
}

/// A request's id as an approval's key (`Ask::key`).
pub fn request_key(id: &Value) -> String {
    match id {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A JSON-RPC error's words (its `message`, else the whole error).
pub fn error_text(error: &Value) -> String {
    match error["message"].as_str() {
        Some(message) => message.to_string(),
        None => error.to_string(),
    }
}

/// A protocol session that cannot start: said as a `system` event and an error, and
/// its process ended (the next message starts another).
pub fn session_failed(why: &str, raw: &str, out: &mut Parsed) {
    out.events.push(Event::agent(AgentContent::system(
        "session_failed",
        serde_json::json!({"message": why}),
        raw,
    )));
    out.events
        .push(Event::error(crate::error::ErrorCode::TurnFailed, why));
    out.stop_process = true;
}

/// A message kept as a `system` event: its fields and its line.
pub fn system_of(subtype: &str, map: &Map<String, Value>, raw: &str) -> Event {
    Event::agent(AgentContent::system(
        subtype,
        Value::Object(map.clone()),
        raw,
    ))
}

/// `map[key]` as a string.
pub fn str_of<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    map.get(key).and_then(Value::as_str)
}

/// The text of a tool result's content: a string, or the text of its blocks.
pub fn content_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter_map(|b| b.get("text").and_then(Value::as_str).or_else(|| b.as_str()))
            .collect::<Vec<_>>()
            .join("\n"),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A list of variable names.
pub fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Appends `--flag value` when there is a value.
pub fn push_opt(argv: &mut Vec<String>, flag: &str, value: Option<&str>) {
    if let Some(value) = value.filter(|v| !v.is_empty()) {
        argv.push(flag.to_string());
        argv.push(value.to_string());
    }
}

/// What a kind adds to its child's environment (`extra`), then the worker's own `env`,
/// which wins.
pub fn worker_env(spec: &WorkerSpec, extra: Vec<(String, String)>) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = extra
        .into_iter()
        .filter(|(k, _)| !spec.options.env.contains_key(k))
        .collect();
    env.extend(spec.options.env.clone());
    env
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::Path;

    use serde_json::json;

    use super::*;

    /// Every AI kind takes its default model from its settings
    /// (`WORKERHUB_<KIND>_MODEL`), and a worker's own model wins.
    #[test]
    fn every_ai_kind_takes_the_default_model_from_its_settings() {
        for kind in ["claude", "codex", "gemini", "opencode", "scratch"] {
            let given = HashMap::from([(
                kind.to_string(),
                KindSettings {
                    model: Some("model-from-settings".into()),
                    ..KindSettings::default()
                },
            )]);
            let settings = CliSettings::new(given, None);
            let registry = Registry::new(settings.clone());
            let adapter = registry.get(kind).expect("a built-in kind");
            assert_eq!(
                adapter.default_model(&settings).as_deref(),
                Some("model-from-settings")
            );
            let argv = |body: serde_json::Value| {
                let spec = WorkerSpec::from_json(&body, kind, Path::new("/tmp")).expect("spec");
                let launch = Launch {
                    spec: &spec,
                    message: Some("hi"),
                    session_id: None,
                    binary: "prog",
                    settings: &settings,
                };
                adapter.command(&launch).expect("command").argv.join(" ")
            };
            // On the command line of a per-turn process (a live Codex gets it with
            // `thread/start`, a live OpenCode in its configuration).
            let per_turn = |mut body: serde_json::Value| {
                if adapter.session_modes().contains(&"per-turn") {
                    body["session"] = json!("per-turn");
                }
                body
            };
            let model = launch_model(&argv(per_turn(json!({"project_path": "/tmp"}))));
            if kind == "scratch" {
                // Its script takes no model; the setting is there for it all the same.
                assert_eq!(model, None);
                continue;
            }
            assert_eq!(model.as_deref(), Some("model-from-settings"), "{kind}");
            let own = launch_model(&argv(per_turn(
                json!({"project_path": "/tmp", "model": "own"}),
            )));
            assert_eq!(own.as_deref(), Some("own"), "{kind}");
        }
    }

    /// The model a command line names: the word after `--model` or `-m`.
    fn launch_model(argv: &str) -> Option<String> {
        let words: Vec<&str> = argv.split(' ').collect();
        words
            .windows(2)
            .find(|w| w[0] == "--model" || w[0] == "-m")
            .map(|w| w[1].to_string())
    }
}
