//! Claude Code (`claude`).
//!
//! * a live session (`"session": "live"`, the default; `"mode": "stream"` is the same):
//!   one long-running `claude -p --input-format stream-json --output-format stream-json
//!   --verbose --permission-prompt-tool stdio [--resume SESSION]`, which first gets an
//!   `initialize` control request, then one JSON user message per turn on its stdin; a
//!   turn ends at its `result`. When a tool needs permission the CLI sends a
//!   `can_use_tool` control request and waits: it becomes an approval, and the answer
//!   goes back as a `control_response` (allow with `updatedInput`, allow for the session
//!   with an `addRules` permission update whose destination is the session, or deny with
//!   a message). It may withdraw a request (`control_cancel_request`). Interrupts are
//!   its own `interrupt` control request.
//! * per turn (`"session": "per-turn"`, `"mode": "print"`): each turn runs `claude -p
//!   --output-format stream-json --verbose [--resume SESSION] ... -- MESSAGE` with stdin
//!   closed (with `-p` and an open stdin it can wait for EOF forever). It cannot ask:
//!   tools outside the allow rules are refused by Claude Code itself.
//! * `watch` mode: follows the session transcript Claude Code writes to
//!   `~/.claude/projects/<slug>/<session_id>.jsonl` (or under `$CLAUDE_CONFIG_DIR`), for
//!   a session someone started in a terminal; read-only.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use super::failure::{ApiFailure, retry};
use super::{
    Adapter, Ask, Interrupt, Launch, Lifecycle, LineParser, OptionKind, OptionSpec, Parsed,
    TurnEnd, approval_policy, content_text, json_object, push_opt, str_of, string_in, string_of,
    worker_env,
};
use crate::approval::{Answer, ApprovalPolicy};
use crate::event::{
    AgentContent, Decision, Event, Pipe, ToolResult, ToolUse, TurnResult, UserMessage,
};
use crate::process::ProcessSpec;
use crate::spec::{SessionKind, WorkerSpec};

pub struct Claude;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// A process per turn.
    Print,
    /// One live session.
    Stream,
    Watch,
}

fn mode(spec: &WorkerSpec) -> Mode {
    match (spec.options.mode.as_deref(), spec.options.session) {
        (Some("watch"), _) => Mode::Watch,
        (_, Some(SessionKind::PerTurn)) | (Some("print"), None) => Mode::Print,
        _ => Mode::Stream,
    }
}

/// The transcript folder's name for a project: its absolute path with every character
/// other than A-Z, a-z and 0-9 replaced by `-`.
pub fn project_slug(project: &Path) -> String {
    project
        .to_string_lossy()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

/// Where Claude Code keeps the transcripts of `spec`'s project, given the worker's
/// environment.
fn transcripts_dir(spec: &WorkerSpec) -> Option<PathBuf> {
    let var = |name: &str| {
        spec.options
            .env
            .get(name)
            .cloned()
            .or_else(|| std::env::var(name).ok())
            .filter(|v| !v.is_empty())
    };
    let base = match var("CLAUDE_CONFIG_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(var("HOME")?).join(".claude"),
    };
    Some(base.join("projects").join(project_slug(&spec.project_path)))
}

/// The transcript to follow: the given session's, or the newest in the project.
fn transcript(spec: &WorkerSpec, session: Option<&str>) -> Result<PathBuf, String> {
    let dir = transcripts_dir(spec).ok_or("HOME is not set, so the transcripts cannot be found")?;
    if let Some(session) = session.filter(|s| !s.is_empty()) {
        if session.contains(['/', '\0']) || session.starts_with('.') {
            return Err(format!("`{session}` is not a session id"));
        }
        return Ok(dir.join(format!("{session}.jsonl")));
    }
    let newest = std::fs::read_dir(&dir)
        .map_err(|e| {
            format!(
                "no Claude Code sessions for this project in {}: {e}",
                dir.display()
            )
        })?
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "jsonl"))
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok());
    newest
        .map(|e| e.path())
        .ok_or_else(|| format!("no Claude Code session transcript in {}", dir.display()))
}

impl Adapter for Claude {
    fn kind(&self) -> &str {
        "claude"
    }

    fn label(&self) -> &str {
        "Claude Code"
    }

    fn options(&self) -> Vec<OptionSpec> {
        let mut options = super::ai_options();
        options.extend([
            OptionSpec::new("session", "Session", OptionKind::Choice, "live: one process for every turn, which can ask before using tools; per-turn: a process per message")
                .values(&["live", "per-turn"]),
            OptionSpec::new("approval", "Tool approvals", OptionKind::Choice, "ask: whoever watches approves or denies each tool call; auto: allow everything")
                .values(&["ask", "auto"]),
            OptionSpec::new("mode", "Mode", OptionKind::Choice, "watch: follow a session started in a terminal, read-only")
                .values(&["watch"]),
            OptionSpec::new("permission_mode", "Permission mode", OptionKind::Choice, "which tools run without asking")
                .values(&["default", "acceptEdits", "bypassPermissions", "plan"]),
            OptionSpec::new("allowed_tools", "Allowed tools", OptionKind::List, "tools allowed without asking, e.g. Bash Read"),
            OptionSpec::new("session_id", "Session", OptionKind::Text, "an existing session to continue (or to follow in watch mode)"),
        ]);
        options
    }

    fn credentials(&self) -> Vec<String> {
        super::names(&[
            "ANTHROPIC_API_KEY",
            "ANTHROPIC_AUTH_TOKEN",
            "CLAUDE_CODE_OAUTH_TOKEN",
        ])
    }

    fn binary_name(&self) -> Option<&str> {
        Some("claude")
    }

    fn lifecycle(&self, spec: &WorkerSpec) -> Lifecycle {
        match mode(spec) {
            Mode::Print => Lifecycle::PerTurn,
            Mode::Stream | Mode::Watch => Lifecycle::LongRunning,
        }
    }

    fn has_turns(&self, spec: &WorkerSpec) -> bool {
        mode(spec) != Mode::Watch
    }

    fn command(&self, launch: &Launch<'_>) -> Result<ProcessSpec, String> {
        let spec = launch.spec;
        let m = mode(spec);
        if m == Mode::Watch {
            let path = transcript(
                spec,
                spec.options.session_id.as_deref().or(launch.session_id),
            )?;
            return Ok(ProcessSpec {
                argv: vec![
                    "tail".into(),
                    "-n".into(),
                    "+1".into(),
                    "-F".into(),
                    path.display().to_string(),
                ],
                cwd: spec.project_path.clone(),
                env: Vec::new(),
                stdin: false,
                long_lines: false,
            });
        }
        let mut argv = vec![launch.binary.to_string(), "-p".into()];
        if m == Mode::Stream {
            argv.extend(["--input-format".into(), "stream-json".into()]);
            // Every tool call that needs permission is asked on stdin, and answered by
            // the worker (its policy, or a person).
            argv.extend(["--permission-prompt-tool".into(), "stdio".into()]);
        }
        argv.extend([
            "--output-format".into(),
            "stream-json".into(),
            "--verbose".into(),
        ]);
        push_opt(&mut argv, "--resume", launch.session_id);
        let model = launch.model(self.kind());
        push_opt(&mut argv, "--model", model.as_deref());
        push_opt(
            &mut argv,
            "--permission-mode",
            spec.options.permission_mode.as_deref(),
        );
        // Rules Claude Code can apply itself, in its own syntax: it asks only the rest.
        if let ApprovalPolicy::Rules(rules) = approval_policy(self, spec) {
            let join = |list: &[crate::approval::Rule]| {
                list.iter()
                    .map(|r| r.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            };
            if !rules.allow.is_empty() {
                argv.push("--allowedTools".into());
                argv.push(join(&rules.allow));
            }
            if !rules.deny.is_empty() {
                argv.push("--disallowedTools".into());
                argv.push(join(&rules.deny));
            }
        } else if !spec.options.allowed_tools.is_empty() {
            argv.push("--allowedTools".into());
            argv.push(spec.options.allowed_tools.join(","));
        }
        argv.extend(spec.options.extra_args.iter().cloned());
        if m == Mode::Print {
            let message = launch.message.ok_or("a Claude Code turn needs a message")?;
            // `--` so that a message starting with `-` is not read as an option.
            argv.push("--".into());
            argv.push(message.to_string());
        }
        let mut extra = Vec::new();
        if let Some(key) = &launch.settings.of(self.kind()).api_key {
            extra.push(("ANTHROPIC_API_KEY".to_string(), key.clone()));
        }
        Ok(ProcessSpec {
            argv,
            cwd: spec.project_path.clone(),
            env: worker_env(spec, extra),
            stdin: m == Mode::Stream,
            long_lines: m == Mode::Stream,
        })
    }

    fn encode_message(&self, message: &str) -> Vec<u8> {
        let mut line =
            json!({"type": "user", "message": {"role": "user", "content": message}}).to_string();
        line.push('\n');
        line.into_bytes()
    }

    fn is_live(&self, spec: &WorkerSpec) -> bool {
        mode(spec) == Mode::Stream
    }

    fn live_probe(&self) -> Option<(Vec<String>, &'static str)> {
        Some((super::names(&["--help"]), "--input-format"))
    }

    fn session_modes(&self) -> &'static [&'static str] {
        &["live", "per-turn"]
    }

    fn session_start(&self, spec: &WorkerSpec) -> Vec<u8> {
        if mode(spec) != Mode::Stream {
            return Vec::new();
        }
        let id = format!("req_init_{}", uuid::Uuid::new_v4().simple());
        super::json_line(
            json!({"type": "control_request", "request_id": id, "request": {"subtype": "initialize", "hooks": null}}),
        )
    }

    fn answer_approval(&self, ask: &Ask, answer: &Answer) -> Vec<u8> {
        let input = answer
            .updated_input
            .clone()
            .unwrap_or_else(|| ask.input.clone());
        let response = match answer.decision {
            // An allow must carry the input to run (the CLI refuses one without).
            Decision::Allow => json!({"behavior": "allow", "updatedInput": input}),
            Decision::AllowSession => json!({
                "behavior": "allow",
                "updatedInput": input,
                "updatedPermissions": session_rules(ask),
            }),
            Decision::Deny | Decision::Cancelled | Decision::Expired => json!({
                "behavior": "deny",
                "message": answer.message.clone().unwrap_or_else(|| "The user denied this tool call.".into()),
            }),
        };
        super::json_line(json!({
            "type": "control_response",
            "response": {"subtype": "success", "request_id": ask.key, "response": response},
        }))
    }

    fn interrupt(&self, spec: &WorkerSpec) -> Interrupt {
        match mode(spec) {
            Mode::Stream => {
                let id = format!("req_interrupt_{}", uuid::Uuid::new_v4().simple());
                let mut line = json!({"type": "control_request", "request_id": id, "request": {"subtype": "interrupt"}})
                    .to_string();
                line.push('\n');
                Interrupt::Stdin(line.into_bytes())
            }
            _ => Interrupt::Signal(libc::SIGINT),
        }
    }

    fn parser(&self, launch: &Launch<'_>) -> Box<dyn LineParser> {
        Box::new(ClaudeParser::new(
            mode(launch.spec) == Mode::Watch,
            self.credential_hint(),
        ))
    }

    fn login_files(&self) -> Vec<String> {
        super::names(&[".claude/.credentials.json"])
    }

    fn credential_hint(&self) -> String {
        "set ANTHROPIC_API_KEY in the server's environment or in the worker's env, or log in once with `claude` as the user the server runs as".into()
    }

    fn takes_messages(&self, spec: &WorkerSpec) -> bool {
        mode(spec) != Mode::Watch
    }

    fn validate(&self, spec: &WorkerSpec) -> Result<(), String> {
        let session = spec.options.session;
        match (spec.options.mode.as_deref(), session) {
            (Some("print"), Some(SessionKind::Live)) | (Some("stream"), Some(SessionKind::PerTurn)) => {
                Err("`mode` and `session` disagree: `mode: stream` is a live session and `mode: print` is per-turn; give one of them".into())
            }
            (None | Some("print") | Some("stream"), _) => Ok(()),
            (Some("watch"), _) => {
                transcript(spec, spec.options.session_id.as_deref()).map(|_| ())
            }
            (Some(other), _) => Err(format!(
                "unknown claude `mode` `{other}`: use watch (or `session`: live or per-turn)"
            )),
        }
    }
}

/// The permission updates of an "allow for this session" answer: the CLI's own
/// `addRules` suggestions, kept in the session (a settings file is ignored in folders
/// it does not trust), or else a rule for exactly this call.
fn session_rules(ask: &Ask) -> Value {
    let suggested: Vec<Value> = ask
        .extra
        .get("permission_suggestions")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
        .iter()
        .filter(|s| s.get("type").and_then(Value::as_str) == Some("addRules"))
        .map(|s| {
            let mut s = s.clone();
            s["destination"] = json!("session");
            s
        })
        .collect();
    if !suggested.is_empty() {
        return Value::Array(suggested);
    }
    let content = crate::approval::subject(&ask.input);
    json!([{
        "type": "addRules",
        "rules": [{"toolName": ask.tool_name, "ruleContent": content}],
        "behavior": "allow",
        "destination": "session",
    }])
}

/// A `can_use_tool` request as an ask.
fn ask_of(request_id: &str, request: &Value) -> Ask {
    let reason = request
        .get("decision_reason")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| {
            request
                .get("blocked_path")
                .and_then(Value::as_str)
                .map(|p| format!("it touches {p}"))
        });
    // The rule "allow for this session" adds, as Claude Code writes rules.
    let session_rule = request
        .get("permission_suggestions")
        .and_then(Value::as_array)
        .and_then(|all| {
            all.iter()
                .find(|s| s.get("type").and_then(Value::as_str) == Some("addRules"))
        })
        .and_then(|s| s.get("rules")?.get(0).cloned())
        .and_then(|rule| {
            let tool = rule.get("toolName")?.as_str()?.to_string();
            Some(match rule.get("ruleContent").and_then(Value::as_str) {
                Some(content) => format!("{tool}({content})"),
                None => tool,
            })
        });
    Ask {
        key: request_id.to_string(),
        tool_name: request
            .get("tool_name")
            .and_then(Value::as_str)
            .unwrap_or("tool")
            .to_string(),
        input: request.get("input").cloned().unwrap_or(Value::Null),
        tool_use_id: string_in(request, "tool_use_id"),
        reason,
        session_rule,
        summary: None,
        diff: None,
        takes_new_input: true,
        extra: json!({"permission_suggestions": request.get("permission_suggestions")}),
    }
}

/// Claude Code's stream-json lines (and its transcript lines, which share the shapes).
pub struct ClaudeParser {
    /// Reading a transcript: a user line with plain text is the user's message.
    pub transcript: bool,
    /// What to say when the key is missing or refused.
    pub hint: String,
    /// A key or network failure was reported this turn (it is said once).
    pub reported: bool,
}

/// An `api_retry` line's `error` in words.
fn retry_words(kind: &str, status: Option<u64>) -> String {
    match kind {
        "authentication_failed" => "the API refused the key".into(),
        "rate_limit" => "the API's rate limit was reached".into(),
        "overloaded" => "the API is overloaded".into(),
        "server_error" => format!(
            "the API had a server error{}",
            status.map(|s| format!(" (HTTP {s})")).unwrap_or_default()
        ),
        "unknown" if status.is_none() => "the API is unreachable".into(),
        other => other.replace('_', " "),
    }
}

/// What the CLI's own failure text (a synthetic assistant message) says about the key
/// or the network.
fn classify(kind: &str, text: &str) -> Option<ApiFailure> {
    if text.contains("Not logged in") {
        Some(ApiFailure::CredentialsMissing)
    } else if kind == "authentication_failed" {
        Some(ApiFailure::CredentialsRejected)
    } else if text.contains("Unable to connect to API") || text.contains("Request timed out") {
        Some(ApiFailure::Unreachable)
    } else {
        None
    }
}

/// The content blocks of a message line.
fn blocks(map: &Map<String, Value>) -> &[Value] {
    map.get("message")
        .and_then(|m| m.get("content"))
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// The fields of `map` other than `type`, for `system` events (`subtype` is the line's
/// own, or its `type`).
fn system(map: &Map<String, Value>, raw: &str) -> Event {
    let subtype = str_of(map, "subtype")
        .or_else(|| str_of(map, "type"))
        .unwrap_or("")
        .to_string();
    let fields: Map<String, Value> = map
        .iter()
        .filter(|(k, _)| *k != "type" && *k != "subtype")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Event::agent(AgentContent::system(subtype, Value::Object(fields), raw))
}

fn text_of(value: Option<&Value>) -> String {
    value.and_then(Value::as_str).unwrap_or("").to_string()
}

impl ClaudeParser {
    /// A parser of the CLI's output (`transcript`: of a session's transcript file).
    pub fn new(transcript: bool, hint: String) -> ClaudeParser {
        ClaudeParser {
            transcript,
            hint,
            reported: false,
        }
    }

    /// A user message in a transcript (watch mode): what someone typed in the terminal.
    fn transcript_message(&self, text: String, raw: &str) -> Event {
        Event::UserMessage(UserMessage {
            content: text,
            message_id: None,
            state: None,
            position: None,
            by: None,
            source: Some("transcript".into()),
            raw: Some(raw.to_string()),
        })
    }
}

impl LineParser for ClaudeParser {
    fn line(&mut self, pipe: Pipe, line: &[u8], out: &mut Parsed) {
        // `--resume` of a session Claude Code never saved (its process died in its
        // first turn): the worker starts the turn again in a new session.
        if pipe == Pipe::Stderr && line.starts_with(b"No conversation found with session ID") {
            out.session_lost = true;
        }
        let Some((map, raw)) = json_object(pipe, line, out) else {
            return;
        };
        if let Some(session) = str_of(&map, "session_id").or_else(|| str_of(&map, "sessionId")) {
            out.session_id = Some(session.to_string());
        }
        match str_of(&map, "type").unwrap_or("") {
            "system" if str_of(&map, "subtype") == Some("init") => {
                out.events.push(Event::agent(AgentContent::system(
                    "init",
                    json!({
                        "session_id": map.get("session_id"),
                        "model": map.get("model"),
                        "tools": map.get("tools"),
                        "cwd": map.get("cwd"),
                        "permission_mode": map.get("permissionMode"),
                    }),
                    &raw,
                )));
            }
            "system" if str_of(&map, "subtype") == Some("api_retry") => {
                let kind = str_of(&map, "error").unwrap_or("unknown");
                let status = map.get("error_status").and_then(Value::as_u64);
                let number = |key: &str| map.get(key).and_then(Value::as_u64);
                out.events.push(retry(
                    number("attempt").map(|n| n as u32),
                    number("max_retries").map(|n| n as u32),
                    map.get("retry_delay_ms")
                        .and_then(Value::as_f64)
                        .map(|ms| ms as u64),
                    status.map(|s| s as u16),
                    retry_words(kind, status),
                    &raw,
                ));
                // A refused key is retried for minutes and cannot succeed: end it now.
                if kind == "authentication_failed" && !self.reported {
                    self.reported = true;
                    out.events.push(ApiFailure::CredentialsRejected.event(
                        "Claude Code",
                        &format!("HTTP {}", status.unwrap_or(401)),
                        &self.hint,
                    ));
                    out.fail_turn = true;
                }
            }
            // The CLI's own failure, written as an assistant message by "<synthetic>".
            "assistant" if map.get("error").is_some_and(Value::is_string) => {
                let kind = str_of(&map, "error").unwrap_or("");
                let text: String = blocks(&map)
                    .iter()
                    .filter_map(|b| b.get("text").and_then(Value::as_str))
                    .collect::<Vec<_>>()
                    .join(" ");
                match classify(kind, &text) {
                    Some(_) if self.reported => {}
                    Some(failure) => {
                        self.reported = true;
                        out.events
                            .push(failure.event("Claude Code", &text, &self.hint));
                    }
                    None => out.events.push(Event::error(
                        crate::error::ErrorCode::TurnFailed,
                        format!("Claude Code: {text}"),
                    )),
                }
            }
            "assistant" => {
                let blocks = blocks(&map);
                for block in blocks {
                    let content = match block.get("type").and_then(Value::as_str) {
                        Some("text") => AgentContent::text(text_of(block.get("text")), &raw),
                        Some("thinking") => {
                            AgentContent::thinking(text_of(block.get("thinking")), &raw)
                        }
                        Some("tool_use") => AgentContent::ToolUse(ToolUse {
                            id: string_in(block, "id"),
                            name: string_in(block, "name"),
                            input: block.get("input").cloned().unwrap_or(Value::Null),
                            raw: raw.clone(),
                            details: Default::default(),
                        }),
                        other => AgentContent::system(
                            format!("assistant_{}", other.unwrap_or("block")),
                            json!({"block": block}),
                            &raw,
                        ),
                    };
                    out.events.push(Event::agent(content));
                }
                if blocks.is_empty() {
                    out.events.push(system(&map, &raw));
                }
            }
            "user" => {
                let message_content = map.get("message").and_then(|m| m.get("content"));
                if let Some(Value::String(text)) = message_content {
                    let event = if self.transcript {
                        self.transcript_message(text.clone(), &raw)
                    } else {
                        Event::agent(AgentContent::system("user", json!({"text": text}), &raw))
                    };
                    out.events.push(event);
                    return;
                }
                let blocks = blocks(&map);
                for block in blocks {
                    let event = match block.get("type").and_then(Value::as_str) {
                        Some("tool_result") => Event::agent(AgentContent::ToolResult(ToolResult {
                            tool_use_id: string_in(block, "tool_use_id"),
                            content: content_text(block.get("content").unwrap_or(&Value::Null)),
                            is_error: block
                                .get("is_error")
                                .and_then(Value::as_bool)
                                .unwrap_or(false),
                            exit_code: None,
                            raw: raw.clone(),
                        })),
                        Some("text") if self.transcript => {
                            self.transcript_message(text_of(block.get("text")), &raw)
                        }
                        Some("text") => Event::agent(AgentContent::system(
                            "user",
                            json!({"text": block.get("text")}),
                            &raw,
                        )),
                        _ => Event::agent(AgentContent::system(
                            "user_block",
                            json!({"block": block}),
                            &raw,
                        )),
                    };
                    out.events.push(event);
                }
                if blocks.is_empty() {
                    out.events.push(system(&map, &raw));
                }
            }
            "result" => {
                self.reported = false;
                // The resume failed: said here and on stderr, in either order.
                if map
                    .get("errors")
                    .and_then(Value::as_array)
                    .is_some_and(|errors| {
                        errors.iter().any(|e| {
                            e.as_str()
                                .is_some_and(|e| e.starts_with("No conversation found"))
                        })
                    })
                {
                    out.session_lost = true;
                }
                let subtype = str_of(&map, "subtype").unwrap_or("");
                let is_error = map
                    .get("is_error")
                    .and_then(Value::as_bool)
                    .unwrap_or(false)
                    || subtype.starts_with("error");
                out.events
                    .push(Event::agent(AgentContent::Result(Box::new(TurnResult {
                        subtype: Some(subtype.to_string()),
                        is_error,
                        duration_ms: map.get("duration_ms").cloned(),
                        cost_usd: map
                            .get("total_cost_usd")
                            .or_else(|| map.get("cost_usd"))
                            .cloned(),
                        num_turns: map.get("num_turns").cloned(),
                        usage: map.get("usage").cloned(),
                        session_id: string_of(&map, "session_id"),
                        result: map.get("result").cloned(),
                        raw,
                        ..TurnResult::default()
                    }))));
                out.turn_end = Some(TurnEnd { is_error });
            }
            "control_request" => {
                let request = map.get("request").unwrap_or(&Value::Null);
                let id = str_of(&map, "request_id").unwrap_or("");
                match request.get("subtype").and_then(Value::as_str) {
                    Some("can_use_tool") if !id.is_empty() => out.asks.push(ask_of(id, request)),
                    other => {
                        out.events.push(system(&map, &raw));
                        // A request it waits on must be answered, if only to say no.
                        if !id.is_empty() {
                            out.replies.push(super::json_line(json!({
                                "type": "control_response",
                                "response": {
                                    "subtype": "error",
                                    "request_id": id,
                                    "error": format!("workerhub does not serve `{}`", other.unwrap_or("?")),
                                },
                            })));
                        }
                    }
                }
            }
            "control_cancel_request" => {
                if let Some(id) = str_of(&map, "request_id") {
                    out.withdrawn.push(id.to_string());
                }
            }
            // Anything else, the answers to workerhub's own requests (initialize,
            // interrupt) among them, is kept whole.
            _ => out.events.push(system(&map, &raw)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slug_replaces_everything_but_letters_and_digits() {
        assert_eq!(
            project_slug(Path::new("/home/me/my_app.v2")),
            "-home-me-my-app-v2"
        );
    }
}
