//! OpenCode (`opencode`): each turn runs `opencode run --format json ... -- MESSAGE`,
//! continued with `--session SESSION_ID`. It prints no final result line: a
//! `step_finish` whose reason is not `tool-calls` ends the turn, and becomes a `result`
//! with the turn's summed cost and tokens.

use serde_json::{Value, json};

use super::{
    Adapter, CliSettings, Launch, Lifecycle, LineParser, Parsed, TurnEnd, content, json_object,
    push_opt, str_of, worker_env,
};
use crate::event::Pipe;
use crate::worker::WorkerSpec;
use crate::worker::process::ProcessSpec;

pub struct OpenCode;

impl Adapter for OpenCode {
    fn kind(&self) -> &str {
        "opencode"
    }

    fn label(&self) -> &str {
        "OpenCode"
    }

    fn credentials(&self) -> Vec<String> {
        super::names(&["OPENCODE_API_KEY", "OPENROUTER_API_KEY"])
    }

    fn binary_name(&self) -> Option<&str> {
        Some("opencode")
    }

    fn lifecycle(&self, _: &WorkerSpec) -> Lifecycle {
        Lifecycle::PerTurn
    }

    fn command(&self, launch: &Launch<'_>) -> Result<ProcessSpec, String> {
        let spec = launch.spec;
        let settings = launch.settings;
        let message = launch.message.ok_or("an OpenCode turn needs a message")?;
        let mut argv = vec![
            launch.binary.to_string(),
            "run".into(),
            "--format".into(),
            "json".into(),
        ];
        let model = spec
            .options
            .model
            .clone()
            .or_else(|| settings.opencode_model.clone());
        push_opt(&mut argv, "--session", launch.session_id);
        let mut extra = vec![("OPENCODE_DISABLE_AUTOUPDATE".to_string(), "1".to_string())];
        // OPENCODE_API_BASE (from the py-worker settings) points OpenCode at an
        // OpenAI-compatible endpoint through a generated provider.
        match (&settings.opencode_api_base, model.as_deref()) {
            (Some(base), Some(model))
                if !spec.options.env.contains_key("OPENCODE_CONFIG_CONTENT") =>
            {
                let name = model.rsplit('/').next().unwrap_or(model);
                let config = json!({
                    "model": format!("workerhub/{name}"),
                    "provider": {"workerhub": {
                        "npm": "@ai-sdk/openai-compatible",
                        "name": "workerhub",
                        "options": {"baseURL": base, "apiKey": settings.opencode_api_key.clone().unwrap_or_default()},
                        "models": {name: {"name": name}},
                    }},
                });
                extra.push(("OPENCODE_CONFIG_CONTENT".into(), config.to_string()));
            }
            _ => push_opt(&mut argv, "--model", model.as_deref()),
        }
        if let Some(key) = &settings.opencode_api_key {
            extra.push(("OPENCODE_API_KEY".into(), key.clone()));
        }
        argv.extend(spec.options.extra_args.iter().cloned());
        argv.push("--".into());
        argv.push(message.to_string());
        Ok(ProcessSpec {
            argv,
            cwd: spec.project_path.clone(),
            env: worker_env(spec, extra),
            stdin: false,
        })
    }

    fn parser(&self, _: &WorkerSpec) -> Box<dyn LineParser> {
        Box::new(OpenCodeParser::default())
    }

    fn default_model(&self, settings: &CliSettings) -> Option<String> {
        settings.opencode_model.clone()
    }
}

#[derive(Default)]
pub struct OpenCodeParser {
    session_id: Option<String>,
    cost: f64,
    tokens: Option<Value>,
}

impl LineParser for OpenCodeParser {
    fn line(&mut self, pipe: Pipe, line: &[u8], out: &mut Parsed) {
        let Some((map, raw)) = json_object(pipe, line, out) else {
            return;
        };
        if let Some(session) = str_of(&map, "sessionID") {
            self.session_id = Some(session.to_string());
            out.session_id = Some(session.to_string());
        }
        let part = map.get("part").cloned().unwrap_or(Value::Null);
        match str_of(&map, "type").unwrap_or("") {
            "step_start" => {
                out.events
                    .push(content("system", json!({"subtype": "step_start"}), &raw))
            }
            "text" => out
                .events
                .push(content("text", json!({"text": part.get("text")}), &raw)),
            "reasoning" => {
                out.events
                    .push(content("thinking", json!({"text": part.get("text")}), &raw))
            }
            "tool_use" => {
                let state = part.get("state").cloned().unwrap_or(Value::Null);
                let id = part.get("callID").cloned();
                out.events.push(content(
                    "tool_use",
                    json!({"id": id, "name": part.get("tool"), "input": state.get("input")}),
                    &raw,
                ));
                let status = state.get("status").and_then(Value::as_str).unwrap_or("");
                if matches!(status, "completed" | "error") {
                    let text = state
                        .get("output")
                        .filter(|v| !v.is_null())
                        .or_else(|| state.get("error"))
                        .map(super::content_text)
                        .unwrap_or_default();
                    out.events.push(content(
                        "tool_result",
                        json!({"tool_use_id": id, "content": text, "is_error": status == "error"}),
                        &raw,
                    ));
                }
            }
            "step_finish" => {
                let reason = part.get("reason").and_then(Value::as_str).unwrap_or("");
                self.cost += part.get("cost").and_then(Value::as_f64).unwrap_or(0.0);
                self.tokens = part.get("tokens").cloned().or(self.tokens.take());
                out.events.push(content(
                    "system",
                    json!({"subtype": "step_finish", "reason": reason, "tokens": part.get("tokens"), "cost": part.get("cost")}),
                    &raw,
                ));
                if reason != "tool-calls" {
                    out.events.push(content(
                        "result",
                        json!({
                            "is_error": false,
                            "cost_usd": self.cost,
                            "usage": self.tokens,
                            "session_id": self.session_id,
                            "reason": reason,
                        }),
                        &raw,
                    ));
                    out.turn_end = Some(TurnEnd { is_error: false });
                }
            }
            "error" => {
                let error = map.get("error").cloned().unwrap_or(Value::Null);
                let message = error
                    .get("data")
                    .and_then(|d| d.get("message"))
                    .or_else(|| error.get("message"))
                    .cloned()
                    .unwrap_or_else(|| error.clone());
                out.events.push(content(
                    "result",
                    json!({"is_error": true, "error": message, "session_id": self.session_id}),
                    &raw,
                ));
                out.turn_end = Some(TurnEnd { is_error: true });
            }
            other => out
                .events
                .push(content("system", json!({"subtype": other}), &raw)),
        }
    }
}
