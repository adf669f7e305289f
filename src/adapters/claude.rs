//! Claude Code (`claude`).
//!
//! * `print` mode (default): each turn runs `claude -p --output-format stream-json
//!   --verbose [--resume SESSION] ... -- MESSAGE` with stdin closed (with `-p` and an open
//!   stdin it can wait for EOF forever).
//! * `stream` mode: one long-running `claude -p --input-format stream-json
//!   --output-format stream-json --verbose`, one JSON user message per stdin line, one
//!   `result` per turn; interrupted with a `control_request` line.
//! * `watch` mode: follows the session transcript Claude Code writes to
//!   `~/.claude/projects/<slug>/<session_id>.jsonl` (or under `$CLAUDE_CONFIG_DIR`), for
//!   a session someone started in a terminal; read-only.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use super::{
    Adapter, Interrupt, Launch, Lifecycle, LineParser, OptionKind, OptionSpec, Parsed, TurnEnd,
    content_text, json_object, push_opt, str_of, string_in, string_of, worker_env,
};
use crate::event::{AgentContent, Event, Pipe, ToolResult, ToolUse, TurnResult, UserMessage};
use crate::process::ProcessSpec;
use crate::spec::WorkerSpec;

pub struct Claude;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Print,
    Stream,
    Watch,
}

fn mode(spec: &WorkerSpec) -> Mode {
    match spec.options.mode.as_deref() {
        Some("stream") => Mode::Stream,
        Some("watch") => Mode::Watch,
        _ => Mode::Print,
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
            OptionSpec::new("mode", "Mode", OptionKind::Choice, "print: a process per message; stream: one session; watch: follow a terminal session read-only")
                .values(&["print", "stream", "watch"]),
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
            });
        }
        let mut argv = vec![launch.binary.to_string(), "-p".into()];
        if m == Mode::Stream {
            argv.extend(["--input-format".into(), "stream-json".into()]);
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
        if !spec.options.allowed_tools.is_empty() {
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
        })
    }

    fn encode_message(&self, message: &str) -> Vec<u8> {
        let mut line =
            json!({"type": "user", "message": {"role": "user", "content": message}}).to_string();
        line.push('\n');
        line.into_bytes()
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

    fn parser(&self, spec: &WorkerSpec) -> Box<dyn LineParser> {
        Box::new(ClaudeParser {
            transcript: mode(spec) == Mode::Watch,
        })
    }

    fn takes_messages(&self, spec: &WorkerSpec) -> bool {
        mode(spec) != Mode::Watch
    }

    fn validate(&self, spec: &WorkerSpec) -> Result<(), String> {
        match spec.options.mode.as_deref() {
            None | Some("print") | Some("stream") => Ok(()),
            Some("watch") => transcript(spec, spec.options.session_id.as_deref()).map(|_| ()),
            Some(other) => Err(format!(
                "unknown claude `mode` `{other}`: use print, stream or watch"
            )),
        }
    }
}

/// Claude Code's stream-json lines (and its transcript lines, which share the shapes).
pub struct ClaudeParser {
    /// Reading a transcript: a user line with plain text is the user's message.
    pub transcript: bool,
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
