//! Codex CLI (`codex`). Live (the default): one `codex app-server` for many turns,
//! asking before it runs what its rules do not trust (`codex_server.rs`). Per turn
//! (`"session": "per-turn"`): `codex exec --json --skip-git-repo-check ... MESSAGE`,
//! resumed with `codex exec --json ... resume THREAD_ID MESSAGE` (the id from
//! `thread.started`); `turn.completed` ends a turn; `turn.failed` and `error` fail it.

use std::collections::HashSet;

use serde_json::{Map, Value, json};

use super::codex_server::CodexSession;
use super::failure::{ApiFailure, retry};
use super::{
    Adapter, Launch, LineParser, OptionKind, OptionSpec, Parsed, TurnEnd, json_object, push_opt,
    str_of, worker_env,
};
use crate::approval::ApprovalPolicy;
use crate::event::{AgentContent, Event, Pipe, ToolResult, ToolUse, TurnResult};
use crate::process::ProcessSpec;

pub struct Codex;

impl Adapter for Codex {
    fn kind(&self) -> &str {
        "codex"
    }

    fn label(&self) -> &str {
        "Codex"
    }

    fn options(&self) -> Vec<OptionSpec> {
        let mut options = super::ai_options();
        options.push(
            OptionSpec::new(
                "permission_mode",
                "Sandbox",
                OptionKind::Choice,
                "what the agent's commands may touch",
            )
            .values(&["read-only", "workspace-write", "danger-full-access"]),
        );
        options
    }

    fn credentials(&self) -> Vec<String> {
        super::names(&["OPENAI_API_KEY", "CODEX_API_KEY"])
    }

    fn binary_name(&self) -> Option<&str> {
        Some("codex")
    }

    fn live_probe(&self) -> Option<(Vec<String>, &'static str)> {
        Some((super::names(&["app-server", "--help"]), "app-server"))
    }

    fn session_modes(&self) -> &'static [&'static str] {
        &["live", "per-turn"]
    }

    fn command(&self, launch: &Launch<'_>) -> Result<ProcessSpec, String> {
        let spec = launch.spec;
        if self.is_live(spec) {
            // The model, sandbox and approval policy go with `thread/start`.
            let mut argv = vec![launch.binary.to_string(), "app-server".into()];
            argv.extend(spec.options.extra_args.iter().cloned());
            return Ok(ProcessSpec {
                argv,
                cwd: spec.project_path.clone(),
                env: worker_env(spec, Vec::new()),
                stdin: true,
                long_lines: true,
            });
        }
        let message = launch.message.ok_or("a Codex turn needs a message")?;
        let mut argv = vec![
            launch.binary.to_string(),
            "exec".into(),
            "--json".into(),
            "--skip-git-repo-check".into(),
        ];
        push_opt(&mut argv, "--model", launch.model(self.kind()).as_deref());
        // Codex's permission setting is its sandbox: read-only, workspace-write or
        // danger-full-access.
        push_opt(
            &mut argv,
            "--sandbox",
            spec.options.permission_mode.as_deref(),
        );
        argv.extend(spec.options.extra_args.iter().cloned());
        if let Some(thread) = launch.session_id {
            argv.push("resume".into());
            argv.push(thread.to_string());
        }
        argv.push("--".into());
        argv.push(message.to_string());
        Ok(ProcessSpec {
            argv,
            cwd: spec.project_path.clone(),
            env: worker_env(spec, Vec::new()),
            stdin: false,
            long_lines: false,
        })
    }

    fn parser(&self, launch: &Launch<'_>) -> Box<dyn LineParser> {
        if self.is_live(launch.spec) {
            let asks = !matches!(
                super::approval_policy(self, launch.spec),
                ApprovalPolicy::Auto
            );
            return Box::new(CodexSession::new(
                launch.spec,
                launch.session_id,
                launch.model(self.kind()),
                asks,
                self.credential_hint(),
            ));
        }
        Box::new(CodexParser {
            hint: self.credential_hint(),
            ..CodexParser::default()
        })
    }

    fn login_files(&self) -> Vec<String> {
        super::names(&[".codex/auth.json"])
    }

    fn credential_hint(&self) -> String {
        "set OPENAI_API_KEY (or CODEX_API_KEY, or the variable its provider's env_key names) in the server's environment or in the worker's env, or run `codex login` as the user the server runs as".into()
    }
}

/// Codex waits for the network without end when its API refuses connections; after
/// this many of its `waiting for network` notices (about 15 s) the turn ends.
const NETWORK_WAITS: u32 = 3;

/// A retry Codex announces: `Reconnecting... 2/5 (cause)`, or `Reconnecting... waiting
/// for network (cause)` (None for the numbers: it waits without a limit).
fn reconnecting(message: &str) -> Option<(Option<(u32, u32)>, String)> {
    let rest = message.strip_prefix("Reconnecting... ")?;
    let (head, cause) = match rest.split_once(" (") {
        Some((head, cause)) => (head, cause.strip_suffix(')').unwrap_or(cause)),
        None => (rest, ""),
    };
    let numbers = head
        .split_once('/')
        .and_then(|(n, m)| Some((n.parse().ok()?, m.parse().ok()?)));
    Some((numbers, cause.to_string()))
}

/// What Codex's error text says about the key or the network.
fn classify(message: &str) -> Option<ApiFailure> {
    if message.contains("Missing environment variable") {
        Some(ApiFailure::CredentialsMissing)
    } else if message.contains("401 Unauthorized") || message.contains("403 Forbidden") {
        Some(ApiFailure::CredentialsRejected)
    } else if message.contains("Connection failed") || message.contains("waiting for network") {
        Some(ApiFailure::Unreachable)
    } else {
        None
    }
}

#[derive(Default)]
pub struct CodexParser {
    thread_id: Option<String>,
    /// Items whose `tool_use` was already emitted (from `item.started`).
    started: HashSet<String>,
    /// What to say when the key is missing or refused.
    hint: String,
    /// `waiting for network` notices in this turn.
    network_waits: u32,
    /// A key or network failure was reported this turn (it is said once).
    reported: bool,
}

fn system(subtype: impl Into<String>, fields: Value, raw: &str) -> Event {
    Event::agent(AgentContent::system(subtype, fields, raw))
}

fn tool_result(
    id: &str,
    content: String,
    is_error: bool,
    exit_code: Option<i64>,
    raw: &str,
) -> Event {
    Event::agent(AgentContent::ToolResult(ToolResult {
        tool_use_id: Some(id.to_string()),
        content,
        is_error,
        exit_code,
        raw: raw.to_string(),
    }))
}

impl CodexParser {
    fn tool_use(
        &mut self,
        item: &Map<String, Value>,
        name: String,
        input: Value,
        raw: &str,
        out: &mut Parsed,
    ) {
        let id = str_of(item, "id").unwrap_or("").to_string();
        if self.started.insert(id.clone()) {
            out.events.push(Event::agent(AgentContent::ToolUse(ToolUse {
                id: Some(id),
                name: Some(name),
                input,
                raw: raw.to_string(),
                details: Default::default(),
            })));
        }
    }

    fn item(&mut self, stage: &str, item: &Map<String, Value>, raw: &str, out: &mut Parsed) {
        let done = stage == "item.completed";
        let id = str_of(item, "id").unwrap_or("").to_string();
        let failed = str_of(item, "status") == Some("failed");
        let text = || str_of(item, "text").unwrap_or("").to_string();
        match str_of(item, "type").unwrap_or("") {
            "agent_message" if done => out
                .events
                .push(Event::agent(AgentContent::text(text(), raw))),
            "reasoning" if done => out
                .events
                .push(Event::agent(AgentContent::thinking(text(), raw))),
            "command_execution" => {
                self.tool_use(
                    item,
                    "command_execution".into(),
                    json!({"command": item.get("command")}),
                    raw,
                    out,
                );
                if done {
                    let exit = item.get("exit_code").and_then(Value::as_i64);
                    let output = str_of(item, "aggregated_output").unwrap_or("").to_string();
                    out.events.push(tool_result(
                        &id,
                        output,
                        failed || exit.is_some_and(|c| c != 0),
                        exit,
                        raw,
                    ));
                }
            }
            "file_change" if done => {
                self.tool_use(
                    item,
                    "file_change".into(),
                    json!({"changes": item.get("changes")}),
                    raw,
                    out,
                );
                let status = str_of(item, "status").unwrap_or("").to_string();
                out.events.push(tool_result(&id, status, failed, None, raw));
            }
            "mcp_tool_call" => {
                let name = format!(
                    "{}.{}",
                    str_of(item, "server").unwrap_or("mcp"),
                    str_of(item, "tool").unwrap_or("tool")
                );
                self.tool_use(
                    item,
                    name,
                    item.get("arguments").cloned().unwrap_or(Value::Null),
                    raw,
                    out,
                );
                if done {
                    let result = item
                        .get("error")
                        .filter(|e| !e.is_null())
                        .or_else(|| item.get("result"));
                    let text = result.map(super::content_text).unwrap_or_default();
                    out.events.push(tool_result(&id, text, failed, None, raw));
                }
            }
            "web_search" => {
                self.tool_use(
                    item,
                    "web_search".into(),
                    json!({"query": item.get("query")}),
                    raw,
                    out,
                );
                if done {
                    out.events
                        .push(tool_result(&id, String::new(), failed, None, raw));
                }
            }
            "todo_list" => out.events.push(system(
                "todo_list",
                json!({"items": item.get("items")}),
                raw,
            )),
            "error" => out.events.push(system(
                "warning",
                json!({"message": item.get("message")}),
                raw,
            )),
            other => out.events.push(system(
                format!("{stage}:{other}"),
                json!({"item": item}),
                raw,
            )),
        }
    }
}

impl LineParser for CodexParser {
    fn line(&mut self, pipe: Pipe, line: &[u8], out: &mut Parsed) {
        let Some((map, raw)) = json_object(pipe, line, out) else {
            return;
        };
        let kind = str_of(&map, "type").unwrap_or("").to_string();
        match kind.as_str() {
            "thread.started" => {
                let thread = str_of(&map, "thread_id").map(str::to_string);
                out.session_id = thread.clone();
                self.thread_id = thread.clone();
                out.events
                    .push(system("init", json!({"session_id": thread}), &raw));
            }
            "item.started" | "item.updated" | "item.completed" => {
                let before = out.events.len();
                if let Some(item) = map.get("item").and_then(Value::as_object) {
                    self.item(&kind, item, &raw, out);
                }
                // Nothing the CLI says is dropped: an item line that adds nothing new
                // (a repeated start, an update) is kept as a system event.
                if out.events.len() == before {
                    out.events
                        .push(system(kind.clone(), json!({"item": map.get("item")}), &raw));
                }
            }
            "turn.started" => {
                self.network_waits = 0;
                self.reported = false;
                out.events.push(system("turn.started", json!({}), &raw));
            }
            "turn.completed" => {
                out.events
                    .push(Event::agent(AgentContent::Result(Box::new(TurnResult {
                        is_error: false,
                        usage: map.get("usage").cloned(),
                        session_id: self.thread_id.clone(),
                        raw,
                        ..TurnResult::default()
                    }))));
                out.turn_end = Some(TurnEnd { is_error: false });
            }
            "turn.failed" => {
                let message = map.get("error").and_then(|e| e.get("message")).cloned();
                out.events
                    .push(Event::agent(AgentContent::Result(Box::new(TurnResult {
                        is_error: true,
                        error: message,
                        session_id: self.thread_id.clone(),
                        raw,
                        ..TurnResult::default()
                    }))));
                out.turn_end = Some(TurnEnd { is_error: true });
            }
            "error" => {
                let message = str_of(&map, "message").unwrap_or("");
                if let Some((numbers, cause)) = reconnecting(message) {
                    let (attempt, max) = numbers.map_or((None, None), |(n, m)| (Some(n), Some(m)));
                    let why = match classify(&cause) {
                        Some(ApiFailure::CredentialsRejected) => {
                            "the API refused the key".to_string()
                        }
                        Some(ApiFailure::Unreachable) => "the API is unreachable".to_string(),
                        _ => cause.clone(),
                    };
                    out.events.push(retry(attempt, max, None, None, why, &raw));
                    if numbers.is_none() {
                        self.network_waits += 1;
                        if self.network_waits >= NETWORK_WAITS && !self.reported {
                            self.reported = true;
                            out.events
                                .push(ApiFailure::Unreachable.event("Codex", &cause, &self.hint));
                            out.fail_turn = true;
                        }
                    }
                    return;
                }
                match classify(message) {
                    Some(failure) if !self.reported => {
                        self.reported = true;
                        out.events.push(failure.event("Codex", message, &self.hint));
                    }
                    _ => out
                        .events
                        .push(system("error", json!({"message": message}), &raw)),
                }
            }
            other => out.events.push(system(other, json!({}), &raw)),
        }
    }
}
