//! A failing AI turn explains itself: with the real CLIs, offline, against a mock model
//! API that refuses the key or keeps failing, the worker shows the CLI's retries as they
//! happen, then one error in plain words with workerhub's hint, ends the turn (instead
//! of leaving it "working" for minutes), and `/api/ai-clis` reports the key as
//! rejected.

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::TempDir;
use support::mock_llm::{Behaviour, MockLlm, cli_path};
use support::server::{Workerhub, Ws};

const T: Duration = Duration::from_secs(90);

struct Case {
    hub: Workerhub,
    mock: MockLlm,
    home: PathBuf,
    project: PathBuf,
    _tmp: TempDir,
}

impl Case {
    fn new(cli: &str, behaviour: Behaviour) -> Option<Case> {
        let Some(binary) = cli_path(cli) else {
            println!("skipped: {cli} is not installed (run `make clis`)");
            return None;
        };
        let tmp = TempDir::new("wh-failures").unwrap();
        let home = tmp.subdir("home").unwrap();
        let project = tmp.subdir("project").unwrap();
        let flag = format!("--{cli}-binary");
        let hub = Workerhub::start_in(
            &tmp.path().join("data"),
            &[flag.as_str(), binary.to_str().unwrap()],
        );
        let mock = MockLlm::start(behaviour).unwrap();
        Some(Case {
            hub,
            mock,
            home,
            project,
            _tmp: tmp,
        })
    }

    /// A worker of `cli` talking to the mock; `env` entries on top (an empty value
    /// removes the variable).
    fn worker(&self, cli: &str, env: &[(&str, &str)], extra: Value) -> String {
        let base = match cli {
            "claude" => self.mock.claude_env(&self.home),
            "codex" => self.mock.codex_env(&self.home),
            "gemini" => self.mock.gemini_env(&self.home),
            _ => self.mock.opencode_env(&self.home, &self.project),
        }
        .unwrap();
        let mut vars: serde_json::Map<String, Value> = base
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        for (k, v) in env {
            if v.is_empty() {
                vars.remove(*k);
            } else {
                vars.insert(k.to_string(), json!(v));
            }
        }
        let mut body =
            json!({"name": cli, "ai_cli_type": cli, "project_path": self.project, "env": vars});
        if cli == "gemini" {
            body["model"] = json!("gemini-2.5-flash");
        }
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        self.hub.create_worker(body)
    }

    fn kind_info(&self, cli: &str) -> Value {
        let kinds = self.hub.get("/api/ai-clis").json();
        kinds["ai_clis"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["name"] == cli)
            .cloned()
            .unwrap()
    }
}

/// The events of one turn, from its message to the status that ends it.
fn one_turn(ws: &mut Ws) -> (Vec<Value>, Duration) {
    ws.send_json(&json!({"type": "message", "content": "hello"}));
    let started = Instant::now();
    let events = ws.recv_until(T, |e| e["type"] == "status" && e.get("last_turn").is_some());
    (events, started.elapsed())
}

fn errors<'a>(events: &'a [Value], code: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["type"] == "error" && e["code"] == code)
        .collect()
}

fn retries(events: &[Value]) -> Vec<&Value> {
    events
        .iter()
        .filter(|e| e["type"] == "output" && e["content"]["kind"] == "retry")
        .collect()
}

#[test]
fn claude_with_a_rejected_key_says_so_once_with_the_hint_and_ends_the_turn() {
    let Some(case) = Case::new("claude", Behaviour::Error(401)) else {
        return;
    };
    let id = case.worker("claude", &[("CLAUDE_CODE_MAX_RETRIES", "3")], json!({}));
    let mut ws = case.hub.ws(&format!("/ws/{id}"));
    let (events, took) = one_turn(&mut ws);
    let rejected = errors(&events, "credentials_rejected");
    assert_eq!(rejected.len(), 1, "once: {events:#?}");
    assert!(
        rejected[0]["hint"]
            .as_str()
            .unwrap_or("")
            .contains("ANTHROPIC_API_KEY"),
        "{:?}",
        rejected[0]
    );
    assert_eq!(events.last().unwrap()["last_turn"]["outcome"], "failed");
    println!("a rejected key ended the turn in {took:?}");
    let info = case.kind_info("claude");
    assert_eq!(info["credentials"]["state"], "rejected", "{info}");
    assert!(info["credentials"]["hint"].is_string(), "{info}");
}

#[test]
fn claude_without_a_key_says_which_variable_to_set() {
    let Some(case) = Case::new("claude", Behaviour::text("unused")) else {
        return;
    };
    let id = case.worker("claude", &[("ANTHROPIC_API_KEY", "")], json!({}));
    let mut ws = case.hub.ws(&format!("/ws/{id}"));
    let (events, _) = one_turn(&mut ws);
    let missing = errors(&events, "credentials_missing");
    assert_eq!(missing.len(), 1, "once: {events:#?}");
    assert!(
        missing[0]["hint"]
            .as_str()
            .unwrap_or("")
            .contains("ANTHROPIC_API_KEY"),
        "{:?}",
        missing[0]
    );
    assert!(
        case.mock.model_requests().is_empty(),
        "nothing reached the model API"
    );
}

#[test]
fn claude_shows_each_retry_as_it_happens_then_one_error() {
    let Some(case) = Case::new("claude", Behaviour::Error(529)) else {
        return;
    };
    let id = case.worker("claude", &[("CLAUDE_CODE_MAX_RETRIES", "2")], json!({}));
    let mut ws = case.hub.ws(&format!("/ws/{id}"));
    let (events, _) = one_turn(&mut ws);
    let seen = retries(&events);
    assert_eq!(seen.len(), 2, "{events:#?}");
    assert_eq!(seen[0]["content"]["attempt"], 1);
    assert_eq!(seen[1]["content"]["attempt"], 2);
    assert_eq!(seen[1]["content"]["max_attempts"], 2);
    assert!(seen[0]["content"]["delay_ms"].as_u64().is_some());
    // Each came before the end of the turn, as it happened.
    let end_seq = events.last().unwrap()["seq"].as_u64().unwrap();
    assert!(seen.iter().all(|r| r["seq"].as_u64().unwrap() < end_seq));
    let errors: Vec<&Value> = events.iter().filter(|e| e["type"] == "error").collect();
    assert_eq!(errors.len(), 1, "one final error: {errors:#?}");
    assert_eq!(events.last().unwrap()["last_turn"]["outcome"], "failed");
}

#[test]
fn claude_with_an_unreachable_api_shows_its_retries_then_says_it_cannot_reach_it() {
    let Some(case) = Case::new("claude", Behaviour::text("unused")) else {
        return;
    };
    // A port nothing listens on: every connection is refused.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{closed}");
    let id = case.worker(
        "claude",
        &[
            ("ANTHROPIC_BASE_URL", &base),
            ("CLAUDE_CODE_MAX_RETRIES", "2"),
        ],
        json!({}),
    );
    let mut ws = case.hub.ws(&format!("/ws/{id}"));
    let (events, took) = one_turn(&mut ws);
    let seen = retries(&events);
    assert_eq!(seen.len(), 2, "the retries, as they happen: {events:#?}");
    let unreachable = errors(&events, "api_unreachable");
    assert_eq!(
        unreachable.len(),
        1,
        "one error in plain words: {events:#?}"
    );
    assert!(unreachable[0]["hint"].is_string(), "{:?}", unreachable[0]);
    assert_eq!(events.iter().filter(|e| e["type"] == "error").count(), 1);
    assert_eq!(events.last().unwrap()["last_turn"]["outcome"], "failed");
    println!("an unreachable API ended the turn in {took:?}");
}

#[test]
fn codex_gemini_and_opencode_report_a_rejected_key() {
    for cli in ["codex", "gemini", "opencode"] {
        let Some(case) = Case::new(cli, Behaviour::Error(401)) else {
            continue;
        };
        let id = case.worker(cli, &[], json!({}));
        let mut ws = case.hub.ws(&format!("/ws/{id}"));
        let (events, took) = one_turn(&mut ws);
        let rejected = errors(&events, "credentials_rejected");
        assert_eq!(rejected.len(), 1, "{cli}, once: {events:#?}");
        assert!(rejected[0]["hint"].is_string(), "{cli}: {:?}", rejected[0]);
        assert_eq!(
            events.last().unwrap()["last_turn"]["outcome"],
            "failed",
            "{cli}"
        );
        println!("{cli}: a rejected key ended the turn in {took:?}");
    }
}
