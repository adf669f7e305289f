//! `scratch`: a sixth built-in kind that exists only in the unit tests, to show (and
//! keep true) what docs/ARCHITECTURE.md promises: a kind is its own file plus one line
//! in [`super::registry::builtin`]. Its "CLI" is `sh`, which prints one JSON line per
//! turn: `{"say": MESSAGE}`. Nothing else in the server knows it, yet it is listed by
//! `/api/ai-clis` with its label and options, takes `WORKERHUB_SCRATCH_*` settings, and
//! runs turns whose output comes out as typed events (the tests of `server.rs` run it
//! through a real server).

use super::{Adapter, Launch, Lifecycle, LineParser, Parsed, TurnEnd, json_object, str_of};
use crate::event::{AgentContent, Event, Pipe, TurnResult};
use crate::process::ProcessSpec;
use crate::spec::WorkerSpec;

pub struct Scratch;

impl Adapter for Scratch {
    fn kind(&self) -> &str {
        "scratch"
    }

    fn label(&self) -> &str {
        "Scratch (tests only)"
    }

    fn binary_name(&self) -> Option<&str> {
        Some("sh")
    }

    fn version_args(&self) -> Option<Vec<String>> {
        None
    }

    fn lifecycle(&self, _: &WorkerSpec) -> Lifecycle {
        Lifecycle::PerTurn
    }

    fn command(&self, launch: &Launch<'_>) -> Result<ProcessSpec, String> {
        let message = launch.message.ok_or("a scratch turn needs a message")?;
        // The message is an argument of the script, never part of it.
        let script = r#"printf '{"say":"%s"}\n' "$1""#;
        Ok(ProcessSpec {
            argv: vec![
                launch.binary.to_string(),
                "-c".into(),
                script.into(),
                "scratch".into(),
                message.into(),
            ],
            cwd: launch.spec.project_path.clone(),
            env: Vec::new(),
            stdin: false,
            long_lines: false,
        })
    }

    fn parser(&self, _: &Launch<'_>) -> Box<dyn LineParser> {
        Box::new(ScratchParser)
    }
}

struct ScratchParser;

impl LineParser for ScratchParser {
    fn line(&mut self, pipe: Pipe, line: &[u8], out: &mut Parsed) {
        let Some((map, raw)) = json_object(pipe, line, out) else {
            return;
        };
        let said = str_of(&map, "say").unwrap_or("").to_string();
        out.events
            .push(Event::agent(AgentContent::text(said, raw.clone())));
        out.events
            .push(Event::agent(AgentContent::Result(Box::new(TurnResult {
                raw,
                ..TurnResult::default()
            }))));
        out.turn_end = Some(TurnEnd { is_error: false });
    }
}
