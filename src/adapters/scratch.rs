//! `scratch`: a sixth built-in kind that exists only in the unit tests, to show (and
//! keep true) what docs/ARCHITECTURE.md promises: a kind is its own file plus one line
//! in [`super::registry::builtin`]. Its "CLI" is `sh`, which prints one JSON line per
//! turn: `{"say": MESSAGE}`. Nothing else in the server knows it, yet it is listed by
//! `/api/ai-clis` with its label and options, takes `WORKERHUB_SCRATCH_*` settings, and
//! runs turns whose output comes out as typed events.

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
        })
    }

    fn parser(&self, _: &WorkerSpec) -> Box<dyn LineParser> {
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

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use clap::Parser;
    use serde_json::{Value, json};

    use crate::client::Client;
    use crate::config::Cli;
    use crate::server::Server;

    #[test]
    fn a_kind_added_in_one_file_runs_end_to_end() {
        let data = std::env::temp_dir().join(format!("wh-scratch-{}", std::process::id()));
        let cli = Cli::try_parse_from([
            "workerhub",
            "--port",
            "0",
            "--no-auth",
            "--data-dir",
            data.to_str().expect("utf-8 temp dir"),
        ])
        .expect("arguments");
        let server = Server::start(cli.serve.config().expect("config")).expect("server");
        let client = Client::new(&format!("http://{}", server.addr()), None);

        // Listed, with its label and the options every AI kind has.
        let kinds = client.get("/api/ai-clis").expect("ai-clis");
        let scratch = kinds["ai_clis"]
            .as_array()
            .and_then(|all| all.iter().find(|k| k["name"] == "scratch"))
            .cloned()
            .unwrap_or_else(|| panic!("scratch is not listed: {kinds}"));
        assert_eq!(scratch["label"], "Scratch (tests only)");
        assert_eq!(scratch["usable"], true, "{scratch}");
        assert!(
            scratch["options"]
                .as_array()
                .is_some_and(|o| o.iter().any(|o| o["name"] == "model"))
        );

        // A worker of the kind runs a turn; its output is typed events.
        let worker = client
            .post(
                "/api/workers",
                &json!({"ai_cli_type": "scratch", "project_path": std::env::temp_dir()}),
            )
            .expect("create");
        let id = worker["id"].as_str().expect("id").to_string();
        client
            .post(
                &format!("/api/workers/{id}/messages"),
                &json!({"content": "hello; $(touch /tmp/never)"}),
            )
            .expect("send");
        let deadline = Instant::now() + Duration::from_secs(30);
        let events = loop {
            let page = client
                .get(&format!("/api/workers/{id}/events?since=0"))
                .expect("events");
            let events = page["events"].as_array().cloned().unwrap_or_default();
            let ended = events
                .iter()
                .any(|e| e["type"] == "status" && e["last_turn"]["outcome"].is_string());
            if ended || Instant::now() >= deadline {
                break events;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let text: Vec<&Value> = events
            .iter()
            .filter(|e| e["content"]["kind"] == "text")
            .collect();
        assert_eq!(text.len(), 1, "{events:?}");
        assert_eq!(text[0]["content"]["text"], "hello; $(touch /tmp/never)");
        let last_turn = events
            .iter()
            .rev()
            .find_map(|e| e["last_turn"].as_object())
            .expect("the turn ended");
        assert_eq!(last_turn["outcome"], "completed");

        server.stop();
        let _ = std::fs::remove_dir_all(&data);
    }
}
