//! OpenCode (`opencode`). Live (the default): one `opencode acp` process speaks the
//! Agent Client Protocol (`acp.rs`) for many turns; it asks before running commands
//! and editing files because the worker's approval policy is given to it as its
//! permission rules (`OPENCODE_PERMISSION`: `ask`, or `allow` for `"approval":
//! "auto"`). Per turn (`"session": "per-turn"`): `opencode run --format json ... --
//! MESSAGE`, continued with `--session SESSION_ID`; it prints no final result line: a
//! `step_finish` whose reason is not `tool-calls` ends the turn, and becomes a `result`
//! with the turn's summed cost and tokens.

use serde_json::{Value, json};

use super::acp::AcpSession;
use super::failure::{ApiFailure, rejects_key};
use super::{
    Adapter, Launch, LineParser, Parsed, TurnEnd, json_object, push_opt, str_of, string_in,
    worker_env,
};
use crate::approval::ApprovalPolicy;
use crate::event::{AgentContent, Event, Pipe, ToolResult, ToolUse, TurnResult};
use crate::process::ProcessSpec;

pub struct OpenCode;

/// The tools OpenCode asks about when the worker's policy asks (the rest, reading and
/// searching, runs as OpenCode's own rules say).
const ASKED: &[&str] = &["bash", "edit", "webfetch", "external_directory"];

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

    fn live_probe(&self) -> Option<(Vec<String>, &'static str)> {
        Some((super::names(&["acp", "--help"]), "ACP"))
    }

    fn session_modes(&self) -> &'static [&'static str] {
        &["live", "per-turn"]
    }

    fn command(&self, launch: &Launch<'_>) -> Result<ProcessSpec, String> {
        let spec = launch.spec;
        let settings = launch.settings.of(self.kind());
        let live = self.is_live(spec);
        let mut argv = vec![launch.binary.to_string()];
        if live {
            argv.push("acp".into());
        } else {
            argv.extend(["run".into(), "--format".into(), "json".into()]);
        }
        let model = launch.model(self.kind());
        if !live {
            push_opt(&mut argv, "--session", launch.session_id);
        }
        let mut extra = vec![("OPENCODE_DISABLE_AUTOUPDATE".to_string(), "1".to_string())];
        if live {
            let rule = match super::approval_policy(self, spec) {
                ApprovalPolicy::Auto => "allow",
                _ => "ask",
            };
            let rules: serde_json::Map<String, Value> =
                ASKED.iter().map(|t| (t.to_string(), json!(rule))).collect();
            extra.push((
                "OPENCODE_PERMISSION".into(),
                Value::Object(rules).to_string(),
            ));
        }
        // OPENCODE_API_BASE (from the py-worker settings) points OpenCode at an
        // OpenAI-compatible endpoint through a generated provider.
        match (&settings.api_base, model.as_deref()) {
            (Some(base), Some(model))
                if !spec.options.env.contains_key("OPENCODE_CONFIG_CONTENT") =>
            {
                let name = model.rsplit('/').next().unwrap_or(model);
                let config = json!({
                    "model": format!("workerhub/{name}"),
                    "provider": {"workerhub": {
                        "npm": "@ai-sdk/openai-compatible",
                        "name": "workerhub",
                        "options": {"baseURL": base, "apiKey": settings.api_key.clone().unwrap_or_default()},
                        "models": {name: {"name": name}},
                    }},
                });
                extra.push(("OPENCODE_CONFIG_CONTENT".into(), config.to_string()));
            }
            // `opencode acp` takes no --model: the model goes in its configuration.
            (_, Some(model))
                if live && !spec.options.env.contains_key("OPENCODE_CONFIG_CONTENT") =>
            {
                extra.push((
                    "OPENCODE_CONFIG_CONTENT".into(),
                    json!({"model": model}).to_string(),
                ));
            }
            _ => push_opt(&mut argv, "--model", model.as_deref()),
        }
        if let Some(key) = &settings.api_key {
            extra.push(("OPENCODE_API_KEY".into(), key.clone()));
        }
        argv.extend(spec.options.extra_args.iter().cloned());
        if !live {
            let message = launch.message.ok_or("an OpenCode turn needs a message")?;
            argv.push("--".into());
            argv.push(message.to_string());
        }
        Ok(ProcessSpec {
            argv,
            cwd: spec.project_path.clone(),
            env: worker_env(spec, extra),
            stdin: live,
            long_lines: live,
        })
    }

    fn parser(&self, launch: &Launch<'_>) -> Box<dyn LineParser> {
        if self.is_live(launch.spec) {
            return AcpSession::of_kind(self, launch);
        }
        Box::new(OpenCodeParser {
            hint: self.credential_hint(),
            ..OpenCodeParser::default()
        })
    }

    fn login_files(&self) -> Vec<String> {
        super::names(&[".local/share/opencode/auth.json"])
    }

    fn credential_hint(&self) -> String {
        "give OpenCode its provider's key (for example OPENCODE_API_KEY, or the provider key its opencode.json names) in the server's environment or in the worker's env, or run `opencode auth login` as the user the server runs as (without any, OpenCode uses its own free hosted model, which needs the internet)".into()
    }
}

#[derive(Default)]
pub struct OpenCodeParser {
    session_id: Option<String>,
    cost: f64,
    tokens: Option<Value>,
    /// What to say when the key is missing or refused.
    hint: String,
}

fn system(subtype: &str, fields: Value, raw: &str) -> Event {
    Event::agent(AgentContent::system(subtype, fields, raw))
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
        let text = || string_in(&part, "text").unwrap_or_default();
        match str_of(&map, "type").unwrap_or("") {
            "step_start" => out.events.push(system("step_start", json!({}), &raw)),
            "text" => out
                .events
                .push(Event::agent(AgentContent::text(text(), &raw))),
            "reasoning" => out
                .events
                .push(Event::agent(AgentContent::thinking(text(), &raw))),
            "tool_use" => {
                let state = part.get("state").cloned().unwrap_or(Value::Null);
                let id = string_in(&part, "callID");
                out.events.push(Event::agent(AgentContent::ToolUse(ToolUse {
                    id: id.clone(),
                    name: string_in(&part, "tool"),
                    input: state.get("input").cloned().unwrap_or(Value::Null),
                    raw: raw.clone(),
                    details: Default::default(),
                })));
                let status = state.get("status").and_then(Value::as_str).unwrap_or("");
                if matches!(status, "completed" | "error") {
                    let text = state
                        .get("output")
                        .filter(|v| !v.is_null())
                        .or_else(|| state.get("error"))
                        .map(super::content_text)
                        .unwrap_or_default();
                    out.events
                        .push(Event::agent(AgentContent::ToolResult(ToolResult {
                            tool_use_id: id,
                            content: text,
                            is_error: status == "error",
                            exit_code: None,
                            raw: raw.clone(),
                        })));
                }
            }
            "step_finish" => {
                let reason = part.get("reason").and_then(Value::as_str).unwrap_or("");
                self.cost += part.get("cost").and_then(Value::as_f64).unwrap_or(0.0);
                self.tokens = part.get("tokens").cloned().or(self.tokens.take());
                out.events.push(system(
                    "step_finish",
                    json!({"reason": reason, "tokens": part.get("tokens"), "cost": part.get("cost")}),
                    &raw,
                ));
                if reason != "tool-calls" {
                    out.events
                        .push(Event::agent(AgentContent::Result(Box::new(TurnResult {
                            is_error: false,
                            cost_usd: Some(json!(self.cost)),
                            usage: self.tokens.clone(),
                            session_id: self.session_id.clone(),
                            reason: Some(reason.to_string()),
                            raw,
                            ..TurnResult::default()
                        }))));
                    out.turn_end = Some(TurnEnd { is_error: false });
                }
            }
            "error" => {
                let error = map.get("error").cloned().unwrap_or(Value::Null);
                let data = error.get("data").cloned().unwrap_or(Value::Null);
                let said = data.get("message").and_then(Value::as_str).unwrap_or("");
                let status = data.get("statusCode").and_then(Value::as_u64);
                let failure = if rejects_key(status) {
                    Some(ApiFailure::CredentialsRejected)
                } else if status.is_none() && said.starts_with("Cannot connect to API") {
                    Some(ApiFailure::Unreachable)
                } else {
                    None
                };
                if let Some(failure) = failure {
                    out.events.push(failure.event("OpenCode", said, &self.hint));
                }
                let message = error
                    .get("data")
                    .and_then(|d| d.get("message"))
                    .or_else(|| error.get("message"))
                    .cloned()
                    .unwrap_or_else(|| error.clone());
                out.events
                    .push(Event::agent(AgentContent::Result(Box::new(TurnResult {
                        is_error: true,
                        error: Some(message),
                        session_id: self.session_id.clone(),
                        raw,
                        ..TurnResult::default()
                    }))));
                out.turn_end = Some(TurnEnd { is_error: true });
            }
            other => out.events.push(system(other, json!({}), &raw)),
        }
    }
}
