//! Codex CLI (`codex`): each turn runs `codex exec --json --skip-git-repo-check ...
//! MESSAGE`, resumed with `codex exec --json ... resume THREAD_ID MESSAGE` (the id from
//! `thread.started`). `turn.completed` ends a turn; `turn.failed` and `error` fail it.

use std::collections::HashSet;

use serde_json::{Map, Value, json};

use super::{
    Adapter, Launch, Lifecycle, LineParser, OptionKind, OptionSpec, Parsed, TurnEnd, json_object,
    push_opt, str_of, worker_env,
};
use crate::event::{AgentContent, Event, Pipe, ToolResult, ToolUse, TurnResult};
use crate::process::ProcessSpec;
use crate::spec::WorkerSpec;

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

    fn lifecycle(&self, _: &WorkerSpec) -> Lifecycle {
        Lifecycle::PerTurn
    }

    fn command(&self, launch: &Launch<'_>) -> Result<ProcessSpec, String> {
        let spec = launch.spec;
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
        })
    }

    fn parser(&self, _: &WorkerSpec) -> Box<dyn LineParser> {
        Box::new(CodexParser::default())
    }
}

#[derive(Default)]
pub struct CodexParser {
    thread_id: Option<String>,
    /// Items whose `tool_use` was already emitted (from `item.started`).
    started: HashSet<String>,
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
            "error" => out.events.push(system(
                "error",
                json!({"message": map.get("message")}),
                &raw,
            )),
            other => out.events.push(system(other, json!({}), &raw)),
        }
    }
}
