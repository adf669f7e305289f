//! The `acp` kind: any agent that speaks the Agent Client Protocol, here a scripted one
//! (`tests/fake_cli/acp-agent.mjs`) for what real agents won't do on demand: text,
//! thinking, tool calls with diffs, a plan, approvals, a cancelled permission request,
//! messages no client knows, a crash in the middle of a turn and the session loaded
//! again after it.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use support::TempDir;
use support::server::{Workerhub, Ws};
use support::turns::{next_of, outcome, outputs, turn_end};

const T: Duration = Duration::from_secs(30);

struct Case {
    hub: Workerhub,
    project: PathBuf,
    _tmp: TempDir,
}

impl Case {
    fn new() -> Option<Case> {
        if std::process::Command::new("node")
            .arg("--version")
            .output()
            .is_err()
        {
            println!("skipped: node is not installed");
            return None;
        }
        let tmp = TempDir::new("wh-acp").unwrap();
        let project = tmp.subdir("project").unwrap();
        let hub = Workerhub::start_in(&tmp.path().join("data"), &[]);
        Some(Case {
            hub,
            project,
            _tmp: tmp,
        })
    }

    fn worker(&self) -> String {
        let agent = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fake_cli/acp-agent.mjs");
        self.hub.create_worker(json!({
            "name": "agent", "ai_cli_type": "acp", "project_path": self.project,
            "command": ["node", agent],
        }))
    }
}

fn turn(ws: &mut Ws, message: &str) -> Vec<Value> {
    ws.send_json(&json!({"type": "message", "content": message}));
    turn_end(ws)
}

#[test]
fn an_acp_agent_shows_thinking_plans_tool_calls_with_diffs_and_text_in_one_session() {
    let Some(case) = Case::new() else { return };
    let id = case.worker();
    let view = case.hub.worker(&id);
    assert_eq!(view["live_session"], true, "{view}");
    // An ACP agent is a live session or nothing.
    let refused = case.hub.post_json(
        "/api/workers",
        &json!({"name": "per-turn", "ai_cli_type": "acp", "project_path": case.project, "command": ["agent"], "session": "per-turn"}),
    );
    assert_eq!(refused.status, 400, "{}", refused.text());
    assert!(refused.text().contains("take: live"), "{}", refused.text());
    let mut ws = case.hub.ws(&format!("/ws/{id}"));
    let events = turn(&mut ws, "plan the fix");
    assert_eq!(outcome(&events), "completed", "{events:#?}");
    assert_eq!(outputs(&events, "thinking")[0]["text"], "Let me think.");
    let plan = outputs(&events, "plan");
    assert_eq!(plan[0]["entries"][1]["content"], "Fix the typo");
    let tool = outputs(&events, "tool_use")[0];
    assert_eq!(tool["name"], "Edit notes.txt");
    assert_eq!(tool["tool_kind"], "edit");
    assert_eq!(tool["content"][0]["type"], "diff");
    assert_eq!(tool["content"][0]["newText"], "hello\n");
    assert_eq!(outputs(&events, "tool_result")[0]["content"], "edited");
    assert_eq!(
        outputs(&events, "text")[0]["text"],
        "Fixed the typo.",
        "chunks joined"
    );
    let result = outputs(&events, "result")[0];
    assert_eq!(result["usage"]["outputTokens"], 5, "{result}");
    let pid = case.hub.worker(&id)["pid"].clone();
    let events = turn(&mut ws, "hello again");
    assert_eq!(outputs(&events, "text")[0]["text"], "echo: hello again");
    assert_eq!(
        case.hub.worker(&id)["pid"],
        pid,
        "the second turn reused the session"
    );
}

#[test]
fn an_acp_agents_permission_requests_are_approvals() {
    let Some(case) = Case::new() else { return };
    let id = case.worker();
    let file = case.project.join("acp-approved.txt");
    let mut ws = case.hub.ws(&format!("/ws/{id}"));

    // Deny: no file, the agent is told.
    ws.send_json(&json!({"type": "message", "content": "ask to write"}));
    let request = next_of(&mut ws, "approval_request");
    assert_eq!(request["summary"], "Write acp-approved.txt");
    assert!(
        request["diff"].as_str().unwrap_or("").contains("+yes"),
        "{request}"
    );
    ws.send_json(
        &json!({"type": "approval", "approval_id": request["approval_id"], "decision": "deny"}),
    );
    let events = turn_end(&mut ws);
    assert!(!file.exists());
    assert_eq!(outputs(&events, "text")[0]["text"], "I did not write it.");

    // Allow once, then allow for the session: the agent gets its own option ids.
    ws.send_json(&json!({"type": "message", "content": "ask again"}));
    let request = next_of(&mut ws, "approval_request");
    ws.send_json(
        &json!({"type": "approval", "approval_id": request["approval_id"], "decision": "allow"}),
    );
    let events = turn_end(&mut ws);
    assert!(file.exists());
    assert_eq!(
        outputs(&events, "text")[0]["text"],
        "Wrote it (allow-once)."
    );
    ws.send_json(&json!({"type": "message", "content": "ask once more"}));
    let request = next_of(&mut ws, "approval_request");
    ws.send_json(&json!({"type": "approval", "approval_id": request["approval_id"], "decision": "allow_session"}));
    let events = turn_end(&mut ws);
    assert_eq!(
        outputs(&events, "text")[0]["text"],
        "Wrote it (allow-always)."
    );

    // An interrupt while it waits: the request is cancelled, and so is the turn.
    std::fs::remove_file(&file).unwrap();
    let asked = case.hub.create_worker(json!({
        "name": "asked", "ai_cli_type": "acp", "project_path": case.project,
        "command": ["node", Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fake_cli/acp-agent.mjs")],
    }));
    let mut ws = case.hub.ws(&format!("/ws/{asked}"));
    ws.send_json(&json!({"type": "message", "content": "ask and wait"}));
    next_of(&mut ws, "approval_request");
    let resp = case
        .hub
        .post_json(&format!("/api/workers/{asked}/interrupt"), &json!({}));
    assert_eq!(resp.status, 200, "{}", resp.text());
    let events = turn_end(&mut ws);
    let resolved = events
        .iter()
        .find(|e| e["type"] == "approval_resolved")
        .expect("resolved");
    assert_eq!(resolved["decision"], "cancelled");
    assert_eq!(resolved["by"], "interrupt");
    assert_eq!(outcome(&events), "interrupted", "{events:#?}");
    assert!(
        outputs(&events, "text")
            .iter()
            .any(|t| t["text"] == "permission outcome: cancelled"),
        "the agent was answered `cancelled`: {events:#?}"
    );
    assert!(!file.exists());
}

#[test]
fn what_an_acp_agent_says_that_no_client_knows_is_kept_and_the_worker_goes_on() {
    let Some(case) = Case::new() else { return };
    let id = case.worker();
    let mut ws = case.hub.ws(&format!("/ws/{id}"));
    let events = turn(&mut ws, "unknown things");
    assert_eq!(outcome(&events), "completed", "{events:#?}");
    let systems: Vec<&str> = outputs(&events, "system")
        .iter()
        .filter_map(|s| s["subtype"].as_str())
        .collect();
    assert!(systems.contains(&"brand_new_kind"), "{systems:?}");
    assert!(systems.contains(&"notification"), "{systems:?}");
    assert!(systems.contains(&"unknown_request"), "{systems:?}");
    assert_eq!(outputs(&events, "text")[0]["text"], "client said: -32601");
    let events = turn(&mut ws, "still here?");
    assert_eq!(outputs(&events, "text")[0]["text"], "echo: still here?");
}

#[test]
fn an_acp_agent_that_crashes_mid_turn_fails_the_turn_and_its_session_is_loaded_again() {
    let Some(case) = Case::new() else { return };
    let id = case.worker();
    let mut ws = case.hub.ws(&format!("/ws/{id}"));
    turn(&mut ws, "hello");
    let session = case.hub.worker(&id)["session_id"].clone();
    assert!(session.is_string());
    let events = turn(&mut ws, "crash now");
    assert_eq!(outcome(&events), "failed", "{events:#?}");
    let events = turn(&mut ws, "after the crash");
    assert_eq!(outcome(&events), "completed", "{events:#?}");
    assert_eq!(outputs(&events, "text")[0]["text"], "echo: after the crash");
    assert_eq!(
        case.hub.worker(&id)["session_id"],
        session,
        "the session was loaded"
    );
    assert!(
        !outputs(&events, "system")
            .iter()
            .any(|s| s["subtype"] == "session_lost"),
        "{events:#?}"
    );
}

#[test]
fn an_agent_that_floods_requests_gets_at_most_64_waiting_and_the_rest_denied() {
    let Some(case) = Case::new() else { return };
    let id = case.worker();
    let mut ws = case.hub.ws(&format!("/ws/{id}"));
    ws.send_json(&json!({"type": "message", "content": "flood"}));
    let limited = std::cell::Cell::new(0);
    ws.recv_until(T, |e| {
        if e["type"] == "approval_resolved" && e["by"] == "limit" {
            limited.set(limited.get() + 1);
        }
        limited.get() == 6
    });
    let limited = limited.get();
    assert_eq!(limited, 6, "the requests past 64 were denied at once");
    assert_eq!(
        case.hub.worker(&id)["pending_approvals"]
            .as_array()
            .unwrap()
            .len(),
        64
    );
    let resp = case
        .hub
        .post_json(&format!("/api/workers/{id}/interrupt"), &json!({}));
    assert_eq!(resp.status, 200, "{}", resp.text());
    let events = turn_end(&mut ws);
    assert!(
        outputs(&events, "text")
            .iter()
            .any(|t| t["text"] == "rejected 6, cancelled 64"),
        "{:?}",
        outputs(&events, "text")
    );
}

#[test]
fn a_request_on_a_line_of_megabytes_is_still_one_request() {
    let Some(case) = Case::new() else { return };
    let id = case.worker();
    let mut ws = case.hub.ws(&format!("/ws/{id}"));
    ws.send_json(&json!({"type": "message", "content": "huge"}));
    let request = next_of(&mut ws, "approval_request");
    assert_eq!(request["summary"], "Write big.txt");
    let diff = request["diff"].as_str().unwrap();
    assert!(
        diff.len() <= (256 << 10) + 4 && diff.ends_with('…'),
        "the diff shown is cut"
    );
    ws.send_json(
        &json!({"type": "approval", "approval_id": request["approval_id"], "decision": "deny"}),
    );
    let events = turn_end(&mut ws);
    assert_eq!(
        outcome(&events),
        "completed",
        "{:?}",
        outputs(&events, "text")
    );
    assert_eq!(
        outputs(&events, "text")[0]["text"],
        "huge answered: reject-once"
    );
}

#[test]
fn a_config_file_kind_can_be_an_acp_agent() {
    if std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_err()
    {
        println!("skipped: node is not installed");
        return;
    }
    let tmp = TempDir::new("wh-acp-config").unwrap();
    let project = tmp.subdir("project").unwrap();
    let agent = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fake_cli/acp-agent.mjs");
    let config =
        json!({"ai_clis": [{"name": "scripted", "command": ["node", agent], "output": "acp"}]});
    let file = tmp.path().join("kinds.json");
    std::fs::write(&file, config.to_string()).unwrap();
    let hub = Workerhub::start_in(
        &tmp.path().join("data"),
        &["--config", file.to_str().unwrap()],
    );
    let kinds = hub.get("/api/ai-clis").json();
    let kind = kinds["ai_clis"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "scripted")
        .cloned()
        .unwrap();
    assert_eq!(kind["sessions"], json!(["live"]), "{kind}");
    let id =
        hub.create_worker(json!({"name": "s", "ai_cli_type": "scripted", "project_path": project}));
    assert_eq!(hub.worker(&id)["approval"], "ask");
    let mut ws = hub.ws(&format!("/ws/{id}"));
    let events = turn(&mut ws, "plan it");
    assert_eq!(outcome(&events), "completed", "{events:#?}");
    assert_eq!(
        outputs(&events, "plan")[0]["entries"][0]["status"],
        "completed"
    );
    ws.send_json(&json!({"type": "message", "content": "ask to write"}));
    let request = next_of(&mut ws, "approval_request");
    ws.send_json(
        &json!({"type": "approval", "approval_id": request["approval_id"], "decision": "allow"}),
    );
    turn_end(&mut ws);
    assert!(project.join("acp-approved.txt").exists());
}
