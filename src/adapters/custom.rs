//! Kinds from a `--config` JSON file:
//!
//! ```json
//! {"ai_clis": [{
//!   "name": "mycli",
//!   "command": ["mycli", "--print", "{message}"],
//!   "resume_args": ["--resume", "{session_id}"],
//!   "model_args": ["--model", "{model}"],
//!   "output": "text",
//!   "mode": "per_turn"
//! }]}
//! ```
//!
//! `command` may use `{message}`, `{session_id}`, `{project_path}` and `{model}`;
//! `resume_args` are added only when there is a session to resume and `model_args` only
//! when a model is set. `output` is `text` (each line is assistant text), one of the
//! built-in JSON line formats `claude`, `codex`, `gemini`, `opencode`, or `acp`: the
//! program is an Agent Client Protocol agent, run as a live, supervised session (as
//! the `acp` kind, with its command here). `mode` is
//! `per_turn` (a process per message) or `long_running` (one process reading messages on
//! stdin). `credentials` lists environment variables that only this kind's workers
//! receive from the server's environment.

use serde::Deserialize;

use super::claude::ClaudeParser;
use super::codex::CodexParser;
use super::gemini::GeminiParser;
use super::opencode::OpenCodeParser;
use super::{Adapter, Launch, Lifecycle, LineParser, Parsed, line_text, log_line, worker_env};
use crate::event::{AgentContent, Event, Pipe};
use crate::process::ProcessSpec;
use crate::spec::WorkerSpec;

#[derive(Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Output {
    Text,
    Claude,
    Codex,
    Gemini,
    Opencode,
    /// An Agent Client Protocol agent.
    Acp,
}

#[derive(Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    #[default]
    PerTurn,
    LongRunning,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct CustomKind {
    pub name: String,
    pub command: Vec<String>,
    #[serde(default)]
    pub resume_args: Vec<String>,
    #[serde(default)]
    pub model_args: Vec<String>,
    pub output: Output,
    #[serde(default)]
    pub mode: Mode,
    /// Arguments that print the program's version (checked to tell it is available);
    /// without them the program only has to exist.
    #[serde(default)]
    pub version_args: Option<Vec<String>>,
    /// Environment variables that are this kind's credentials (passed on from the
    /// server's environment to workers of this kind only).
    #[serde(default)]
    pub credentials: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    ai_clis: Vec<CustomKind>,
}

/// Reads the kinds of a config file, checking each; a name `is_builtin` says is taken
/// cannot be redefined.
pub fn parse_config(
    text: &str,
    is_builtin: impl Fn(&str) -> bool,
) -> Result<Vec<CustomKind>, String> {
    let config: ConfigFile =
        serde_json::from_str(text).map_err(|e| format!("invalid config: {e}"))?;
    for kind in &config.ai_clis {
        if kind.name.is_empty()
            || !kind
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(format!(
                "kind name `{}` must be letters, digits, - or _",
                kind.name
            ));
        }
        if is_builtin(&kind.name) {
            return Err(format!(
                "`{}` is a built-in kind and cannot be redefined",
                kind.name
            ));
        }
        if kind.command.is_empty() {
            return Err(format!("kind `{}` has an empty `command`", kind.name));
        }
        let long_running = kind.mode == Mode::LongRunning || kind.output == Output::Acp;
        if long_running && kind.command.iter().any(|a| a.contains("{message}")) {
            return Err(format!(
                "kind `{}` is long_running, so its command cannot use {{message}}",
                kind.name
            ));
        }
    }
    Ok(config.ai_clis)
}

fn fill(template: &str, launch: &Launch<'_>, model: &str) -> String {
    template
        .replace("{message}", launch.message.unwrap_or(""))
        .replace("{session_id}", launch.session_id.unwrap_or(""))
        .replace(
            "{project_path}",
            &launch.spec.project_path.to_string_lossy(),
        )
        .replace("{model}", model)
}

impl Adapter for CustomKind {
    fn kind(&self) -> &str {
        &self.name
    }

    fn binary_name(&self) -> Option<&str> {
        self.command.first().map(String::as_str)
    }

    fn version_args(&self) -> Option<Vec<String>> {
        self.version_args.clone()
    }

    fn credentials(&self) -> Vec<String> {
        self.credentials.clone()
    }

    fn lifecycle(&self, _: &WorkerSpec) -> Lifecycle {
        match (self.mode, self.output) {
            (_, Output::Acp) | (Mode::LongRunning, _) => Lifecycle::LongRunning,
            (Mode::PerTurn, _) => Lifecycle::PerTurn,
        }
    }

    fn session_modes(&self) -> &'static [&'static str] {
        if self.output == Output::Acp {
            &["live"]
        } else {
            &[]
        }
    }

    fn has_turns(&self, _: &WorkerSpec) -> bool {
        self.mode == Mode::PerTurn || self.output != Output::Text
    }

    fn command(&self, launch: &Launch<'_>) -> Result<ProcessSpec, String> {
        let model = launch.model(self.kind()).unwrap_or_default();
        let mut argv: Vec<String> = vec![launch.binary.to_string()];
        argv.extend(self.command.iter().skip(1).map(|a| fill(a, launch, &model)));
        if launch.session_id.is_some() {
            argv.extend(self.resume_args.iter().map(|a| fill(a, launch, &model)));
        }
        if !model.is_empty() {
            argv.extend(self.model_args.iter().map(|a| fill(a, launch, &model)));
        }
        argv.extend(launch.spec.options.extra_args.iter().cloned());
        Ok(ProcessSpec {
            argv,
            cwd: launch.spec.project_path.clone(),
            env: worker_env(launch.spec, Vec::new()),
            stdin: self.lifecycle(launch.spec) == Lifecycle::LongRunning,
            long_lines: self.output == Output::Acp,
        })
    }

    fn parser(&self, launch: &Launch<'_>) -> Box<dyn LineParser> {
        match self.output {
            Output::Acp => super::acp::AcpSession::of_kind(self, launch),
            Output::Text => Box::new(TextParser),
            Output::Claude => Box::new(ClaudeParser::new(false, self.credential_hint())),
            Output::Codex => Box::new(CodexParser::default()),
            Output::Gemini => Box::new(GeminiParser::default()),
            Output::Opencode => Box::new(OpenCodeParser::default()),
        }
    }
}

/// Plain text output: each stdout line is assistant text, each stderr line a log line.
struct TextParser;

impl LineParser for TextParser {
    fn line(&mut self, pipe: Pipe, line: &[u8], out: &mut Parsed) {
        match pipe {
            Pipe::Stdout => {
                let text = line_text(line);
                out.events
                    .push(Event::agent(AgentContent::text(text.clone(), text)));
            }
            Pipe::Stderr => out.events.push(log_line(pipe, line_text(line))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<CustomKind>, String> {
        parse_config(text, |name| name == "claude")
    }

    #[test]
    fn config_kinds_are_checked() {
        let ok =
            r#"{"ai_clis":[{"name":"echoer","command":["echo","{message}"],"output":"text"}]}"#;
        assert_eq!(parse(ok).unwrap()[0].name, "echoer");
        for bad in [
            r#"{"ai_clis":[{"name":"claude","command":["x"],"output":"text"}]}"#,
            r#"{"ai_clis":[{"name":"x","command":[],"output":"text"}]}"#,
            r#"{"ai_clis":[{"name":"x","command":["a","{message}"],"output":"text","mode":"long_running"}]}"#,
            r#"{"ai_clis":[{"name":"x","command":["a"],"output":"xml"}]}"#,
            r#"{"ai_clis":[{"name":"x","command":["a","{message}"],"output":"acp"}]}"#,
            r#"{"kinds":[]}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
