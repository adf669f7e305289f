//! Gemini CLI (`gemini`): each turn runs `gemini --prompt=MESSAGE --output-format
//! stream-json --approval-mode MODE`, resumed with `--resume SESSION_ID`. Headless runs
//! drop shell and edit tools unless the approval mode allows them, so the mode defaults
//! to `yolo`. Assistant deltas are joined into one `text` event.

use serde_json::{Value, json};

use super::{
    Adapter, Launch, Lifecycle, LineParser, OptionKind, OptionSpec, Parsed, TurnEnd, field,
    json_object, push_opt, str_of, string_of, worker_env,
};
use crate::event::{AgentContent, Event, Pipe, ToolResult, ToolUse, TurnResult};
use crate::process::ProcessSpec;
use crate::spec::WorkerSpec;

pub struct Gemini;

impl Adapter for Gemini {
    fn kind(&self) -> &str {
        "gemini"
    }

    fn label(&self) -> &str {
        "Gemini CLI"
    }

    fn options(&self) -> Vec<OptionSpec> {
        let mut options = super::ai_options();
        options.push(
            OptionSpec::new(
                "permission_mode",
                "Approval mode",
                OptionKind::Choice,
                "yolo (the default here) lets every tool run",
            )
            .values(&["yolo", "auto_edit", "default"]),
        );
        options
    }

    fn credentials(&self) -> Vec<String> {
        super::names(&[
            "GEMINI_API_KEY",
            "GOOGLE_API_KEY",
            "GOOGLE_APPLICATION_CREDENTIALS",
        ])
    }

    fn binary_name(&self) -> Option<&str> {
        Some("gemini")
    }

    fn lifecycle(&self, _: &WorkerSpec) -> Lifecycle {
        Lifecycle::PerTurn
    }

    fn command(&self, launch: &Launch<'_>) -> Result<ProcessSpec, String> {
        let spec = launch.spec;
        let message = launch.message.ok_or("a Gemini turn needs a message")?;
        let mut argv = vec![
            launch.binary.to_string(),
            // One argument, so a message starting with `-` is not read as an option.
            format!("--prompt={message}"),
            "--output-format".into(),
            "stream-json".into(),
            "--approval-mode".into(),
            spec.options
                .permission_mode
                .clone()
                .unwrap_or_else(|| "yolo".into()),
        ];
        push_opt(&mut argv, "-m", launch.model(self.kind()).as_deref());
        push_opt(&mut argv, "--resume", launch.session_id);
        argv.extend(spec.options.extra_args.iter().cloned());
        // Without this Gemini CLI re-launches itself as a child, which then ignores a
        // SIGINT sent to the first process.
        let extra = vec![("GEMINI_CLI_NO_RELAUNCH".to_string(), "true".to_string())];
        Ok(ProcessSpec {
            argv,
            cwd: spec.project_path.clone(),
            env: worker_env(spec, extra),
            stdin: false,
        })
    }

    fn parser(&self, _: &WorkerSpec) -> Box<dyn LineParser> {
        Box::new(GeminiParser::default())
    }

    fn explain_exit(&self, code: i32) -> Option<String> {
        let what = match code {
            41 => "authentication failed",
            42 => "the input was rejected (bad input)",
            44 => "the sandbox could not be set up",
            52 => "its configuration is invalid",
            53 => "the turn limit was reached",
            55 => "the folder is not trusted",
            _ => return None,
        };
        Some(format!("Gemini CLI exited with code {code}: {what}"))
    }
}

#[derive(Default)]
pub struct GeminiParser {
    session_id: Option<String>,
    /// Assistant text deltas not yet emitted, and their lines.
    text: String,
    raw: Vec<String>,
}

fn system(subtype: &str, fields: Value, raw: &str) -> Event {
    Event::agent(AgentContent::system(subtype, fields, raw))
}

impl GeminiParser {
    fn flush_text(&mut self, out: &mut Parsed) {
        if !self.raw.is_empty() {
            let text = std::mem::take(&mut self.text);
            let raw = std::mem::take(&mut self.raw).join("\n");
            out.events.push(Event::agent(AgentContent::text(text, raw)));
        }
    }
}

impl LineParser for GeminiParser {
    fn line(&mut self, pipe: Pipe, line: &[u8], out: &mut Parsed) {
        let Some((map, raw)) = json_object(pipe, line, out) else {
            return;
        };
        let kind = str_of(&map, "type").unwrap_or("");
        let assistant = kind == "message" && str_of(&map, "role") == Some("assistant");
        if !assistant {
            self.flush_text(out);
        }
        match kind {
            "init" => {
                self.session_id = str_of(&map, "session_id").map(str::to_string);
                out.session_id = self.session_id.clone();
                out.events.push(system(
                    "init",
                    json!({"session_id": map.get("session_id"), "model": map.get("model")}),
                    &raw,
                ));
            }
            "message" if assistant => {
                self.text.push_str(str_of(&map, "content").unwrap_or(""));
                self.raw.push(raw);
                if map.get("delta").and_then(Value::as_bool) != Some(true) {
                    self.flush_text(out);
                }
            }
            "message" => out.events.push(system(
                "message",
                json!({"role": map.get("role"), "text": map.get("content")}),
                &raw,
            )),
            "tool_use" => out.events.push(Event::agent(AgentContent::ToolUse(ToolUse {
                id: string_of(&map, "tool_id"),
                name: string_of(&map, "tool_name"),
                input: map.get("parameters").cloned().unwrap_or(Value::Null),
                raw,
            }))),
            "tool_result" => {
                let ok = str_of(&map, "status") == Some("success");
                let text = map
                    .get("output")
                    .filter(|v| !v.is_null())
                    .or_else(|| map.get("error").and_then(|e| e.get("message")))
                    .map(super::content_text)
                    .unwrap_or_default();
                out.events
                    .push(Event::agent(AgentContent::ToolResult(ToolResult {
                        tool_use_id: string_of(&map, "tool_id"),
                        content: text,
                        is_error: !ok,
                        exit_code: None,
                        raw,
                    })));
            }
            "result" => {
                let is_error = str_of(&map, "status") != Some("success");
                let stats = map.get("stats").cloned().unwrap_or(Value::Null);
                out.events
                    .push(Event::agent(AgentContent::Result(Box::new(TurnResult {
                        is_error,
                        duration_ms: field(&stats, "duration_ms"),
                        usage: map.get("stats").cloned(),
                        session_id: self.session_id.clone(),
                        error: map.get("error").and_then(|e| e.get("message")).cloned(),
                        raw,
                        ..TurnResult::default()
                    }))));
                out.turn_end = Some(TurnEnd { is_error });
            }
            "error" => out.events.push(system(
                "error",
                json!({"message": map.get("message"), "severity": map.get("severity")}),
                &raw,
            )),
            other => out.events.push(system(other, json!({}), &raw)),
        }
    }

    fn finish(&mut self, out: &mut Parsed) {
        self.flush_text(out);
    }
}
