//! Gemini CLI (`gemini`). Live (the default): one `gemini --acp` process speaks the
//! Agent Client Protocol (`acp.rs`) for many turns, asking before it uses tools
//! (`--approval-mode default`; `"approval": "auto"` is `yolo`). Per turn
//! (`"session": "per-turn"`): `gemini --prompt=MESSAGE --output-format stream-json
//! --approval-mode MODE`, resumed with `--resume SESSION_ID`; headless runs drop shell
//! and edit tools unless the approval mode allows them, so the mode defaults to `yolo`
//! there. Assistant deltas are joined into one `text` event.

use serde_json::{Value, json};

use super::acp::AcpSession;
use super::failure::{ApiFailure, retry};
use super::{
    Adapter, Launch, LineParser, OptionKind, OptionSpec, Parsed, TurnEnd, field, json_object,
    push_opt, str_of, string_of, worker_env,
};
use crate::approval::ApprovalPolicy;
use crate::event::{AgentContent, Event, Pipe, ToolResult, ToolUse, TurnResult};
use crate::process::ProcessSpec;

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

    fn live_probe(&self) -> Option<(Vec<String>, &'static str)> {
        Some((super::names(&["--help"]), "--acp"))
    }

    fn session_modes(&self) -> &'static [&'static str] {
        &["live", "per-turn"]
    }

    fn command(&self, launch: &Launch<'_>) -> Result<ProcessSpec, String> {
        let spec = launch.spec;
        // Without this Gemini CLI re-launches itself as a child, which then ignores a
        // SIGINT sent to the first process.
        let extra = vec![("GEMINI_CLI_NO_RELAUNCH".to_string(), "true".to_string())];
        if self.is_live(spec) {
            // Asks unless the worker allows everything; rules are applied by the worker
            // to what it asks.
            let approval = match (
                &spec.options.permission_mode,
                super::approval_policy(self, spec),
            ) {
                (Some(mode), _) => mode.clone(),
                (None, ApprovalPolicy::Auto) => "yolo".into(),
                (None, _) => "default".into(),
            };
            let mut argv = vec![
                launch.binary.to_string(),
                "--acp".into(),
                "--approval-mode".into(),
                approval,
            ];
            push_opt(&mut argv, "-m", launch.model(self.kind()).as_deref());
            argv.extend(spec.options.extra_args.iter().cloned());
            return Ok(ProcessSpec {
                argv,
                cwd: spec.project_path.clone(),
                env: worker_env(spec, extra),
                stdin: true,
                long_lines: true,
            });
        }
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
        Ok(ProcessSpec {
            argv,
            cwd: spec.project_path.clone(),
            env: worker_env(spec, extra),
            stdin: false,
            long_lines: false,
        })
    }

    fn parser(&self, launch: &Launch<'_>) -> Box<dyn LineParser> {
        if self.is_live(launch.spec) {
            return AcpSession::of_kind(self, launch);
        }
        Box::new(GeminiParser {
            hint: self.credential_hint(),
            ..GeminiParser::default()
        })
    }

    fn explain_exit(&self, code: i32) -> Option<Event> {
        // It exits with the API's HTTP status (mod 256) when the API refused: 145 is 401.
        let failure = match code {
            41 => Some((
                ApiFailure::CredentialsMissing,
                "no key, or no way to use one, is set up",
            )),
            145 | 147 => Some((ApiFailure::CredentialsRejected, "HTTP 401/403")),
            _ => None,
        };
        if let Some((failure, said)) = failure {
            return Some(failure.event(self.label(), said, &self.credential_hint()));
        }
        let what = match code {
            42 => "the input was rejected (bad input)",
            44 => "the sandbox could not be set up",
            52 => "its configuration is invalid",
            53 => "the turn limit was reached",
            55 => "the folder is not trusted",
            144 => "the API refused the request (HTTP 400)",
            173 => "the API's rate limit was reached (HTTP 429)",
            244 => "the API had a server error (HTTP 500)",
            247 => "the API is unavailable or overloaded (HTTP 503)",
            _ => return None,
        };
        Some(Event::error(
            crate::error::ErrorCode::TurnFailed,
            format!("Gemini CLI exited with code {code}: {what}"),
        ))
    }

    fn login_files(&self) -> Vec<String> {
        super::names(&[".gemini/oauth_creds.json"])
    }

    fn credential_hint(&self) -> String {
        "set GEMINI_API_KEY in the server's environment or in the worker's env (and for Gemini CLI's own settings, security.auth.selectedType: gemini-api-key)".into()
    }
}

#[derive(Default)]
pub struct GeminiParser {
    session_id: Option<String>,
    /// Assistant text deltas not yet emitted, and their lines.
    text: String,
    raw: Vec<String>,
    /// What to say when the key is missing or refused.
    hint: String,
}

/// A retry Gemini CLI reports on stderr: `Attempt 3 failed with status 500. Retrying
/// with backoff... ` (network errors have no status).
fn stderr_retry(text: &str) -> Option<(u32, Option<u16>)> {
    let rest = text.trim_start().strip_prefix("Attempt ")?;
    let (number, rest) = rest.split_once(' ')?;
    let attempt: u32 = number.parse().ok()?;
    let rest = rest.strip_prefix("failed")?;
    if !rest.contains("Retrying with backoff") {
        return None;
    }
    let status = rest
        .strip_prefix(" with status ")
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok());
    Some((attempt, status))
}

/// What a failed turn's `[API Error: ...]` says about the key or the network.
fn classify(message: &str) -> Option<ApiFailure> {
    if message.contains("\"code\":401")
        || message.contains("\"code\":403")
        || message.contains("UNAUTHENTICATED")
        || message.contains("API key not valid")
    {
        Some(ApiFailure::CredentialsRejected)
    } else if message.contains("fetch failed") || message.contains("ECONNREFUSED") {
        Some(ApiFailure::Unreachable)
    } else {
        None
    }
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
        if pipe == Pipe::Stderr {
            let text = super::line_text(line);
            if let Some((attempt, status)) = stderr_retry(&text) {
                let why = match status {
                    Some(401 | 403) => "the API refused the key".to_string(),
                    Some(code) => format!("the API answered HTTP {code}"),
                    None => "the API is unreachable".to_string(),
                };
                out.events
                    .push(retry(Some(attempt), None, None, status, why, &text));
                return;
            }
        }
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
                details: Default::default(),
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
                let said = map
                    .get("error")
                    .and_then(|e| e.get("message"))
                    .and_then(Value::as_str)
                    .unwrap_or("");
                if is_error && let Some(failure) = classify(said) {
                    out.events
                        .push(failure.event("Gemini CLI", said, &self.hint));
                }
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
