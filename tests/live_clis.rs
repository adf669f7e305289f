//! Gemini CLI and OpenCode as live sessions over the Agent Client Protocol, and Codex
//! over its app server, with the real CLIs offline against the mock model: the model
//! asks to run `touch approved.txt`, the CLI asks for permission, workerhub publishes an
//! `approval_request`, and the answer decides.

mod support;

use std::path::PathBuf;

use serde_json::{Value, json};
use support::TempDir;
use support::mock_llm::{Behaviour, MockLlm, cli_path};
use support::server::Workerhub;
use support::turns::{env_object, next_of, outcome, turn_end};

const FILE: &str = "approved.txt";

struct Case {
    cli: &'static str,
    hub: Workerhub,
    mock: MockLlm,
    home: PathBuf,
    project: PathBuf,
    _tmp: TempDir,
}

impl Case {
    fn new(cli: &'static str) -> Option<Case> {
        let Some(binary) = cli_path(cli) else {
            println!("skipped: {cli} is not installed (run `make clis`)");
            return None;
        };
        let tmp = TempDir::new("wh-live").unwrap();
        let home = tmp.subdir("home").unwrap();
        let project = tmp.subdir("project").unwrap();
        let flag = format!("--{cli}-binary");
        let hub = Workerhub::start_in(
            &tmp.path().join("data"),
            &[flag.as_str(), binary.to_str().unwrap()],
        );
        let mock = MockLlm::start(Behaviour::tool_then_text(
            &format!("touch {FILE}"),
            "MOCK saw the tool result: {tool_output}",
        ))
        .unwrap();
        Some(Case {
            cli,
            hub,
            mock,
            home,
            project,
            _tmp: tmp,
        })
    }

    fn worker(&self, name: &str, extra: Value) -> String {
        let env = match self.cli {
            "codex" => self.mock.codex_env(&self.home),
            "gemini" => self.mock.gemini_env(&self.home),
            _ => self.mock.opencode_env(&self.home, &self.project),
        }
        .unwrap();
        let env = env_object(env);
        let mut body = json!({"name": name, "ai_cli_type": self.cli, "project_path": self.project, "env": env});
        if self.cli == "gemini" {
            body["model"] = json!("gemini-2.5-pro");
        }
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        self.hub.create_worker(body)
    }

    fn file(&self) -> PathBuf {
        self.project.join(FILE)
    }
}

/// Deny, allow, allow for the session, an interrupt while a request waits, and the
/// second turn in the same process.
fn supervised(cli: &'static str) {
    let Some(case) = Case::new(cli) else { return };
    let kinds = case.hub.get("/api/ai-clis").json();
    let kind = kinds["ai_clis"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == cli)
        .cloned()
        .unwrap();
    assert_eq!(kind["sessions"], json!(["live", "per-turn"]), "{kind}");
    assert_eq!(kind["approvals"], json!(["ask", "auto", "rules"]), "{kind}");
    let id = case.worker("asker", json!({}));
    let view = case.hub.worker(&id);
    assert_eq!(view["live_session"], true, "{view}");
    assert_eq!(view["approval"], "ask", "{view}");
    let mut a = case.hub.ws(&format!("/ws/{id}"));
    let mut b = case.hub.ws(&format!("/ws/{id}"));

    a.send_json(&json!({"type": "message", "content": "please create the file"}));
    let request = next_of(&mut a, "approval_request");
    assert_eq!(
        next_of(&mut b, "approval_request"),
        request,
        "every viewer sees it"
    );
    assert!(
        request["summary"].as_str().unwrap_or("").contains("touch"),
        "{request}"
    );
    b.send_json(
        &json!({"type": "approval", "approval_id": request["approval_id"], "decision": "deny"}),
    );
    let events = turn_end(&mut a);
    assert_eq!(outcome(&events), "completed", "{cli}: {events:#?}");
    assert!(!case.file().exists(), "{cli}: a denied call does not run");
    let pid = case.hub.worker(&id)["pid"].clone();
    assert!(pid.is_number(), "a live process");

    a.send_json(&json!({"type": "message", "content": "create it now"}));
    let request = next_of(&mut a, "approval_request");
    a.send_json(
        &json!({"type": "approval", "approval_id": request["approval_id"], "decision": "allow"}),
    );
    let events = turn_end(&mut a);
    assert_eq!(outcome(&events), "completed", "{cli}: {events:#?}");
    assert!(case.file().exists(), "{cli}: an allowed call runs");
    assert_eq!(case.hub.worker(&id)["pid"], pid, "{cli}: the same process");

    std::fs::remove_file(case.file()).unwrap();
    a.send_json(&json!({"type": "message", "content": "and again"}));
    let request = next_of(&mut a, "approval_request");
    a.send_json(&json!({"type": "approval", "approval_id": request["approval_id"], "decision": "allow_session"}));
    turn_end(&mut a);
    assert!(case.file().exists());
    std::fs::remove_file(case.file()).unwrap();
    a.send_json(&json!({"type": "message", "content": "once more"}));
    let events = turn_end(&mut a);
    assert!(
        !events.iter().any(|e| e["type"] == "approval_request"),
        "{cli}: not asked again: {events:#?}"
    );
    assert!(case.file().exists(), "{cli}: and it ran");

    // An interrupt while a request waits ends the turn and resolves the request.
    let waiting = case.worker("waiting", json!({}));
    std::fs::remove_file(case.file()).unwrap();
    let mut w = case.hub.ws(&format!("/ws/{waiting}"));
    w.send_json(&json!({"type": "message", "content": "go"}));
    next_of(&mut w, "approval_request");
    let resp = case
        .hub
        .post_json(&format!("/api/workers/{waiting}/interrupt"), &json!({}));
    assert_eq!(resp.status, 200, "{}", resp.text());
    let events = turn_end(&mut w);
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "approval_resolved" && e["by"] == "interrupt"),
        "{cli}: {events:#?}"
    );
    assert_eq!(outcome(&events), "interrupted", "{cli}: {events:#?}");
    assert!(!case.file().exists());
}

#[test]
fn gemini_over_acp_asks_and_obeys() {
    supervised("gemini");
}

#[test]
fn opencode_over_acp_asks_and_obeys() {
    supervised("opencode");
}

#[test]
fn codex_over_its_app_server_asks_and_obeys() {
    supervised("codex");
}

#[test]
fn a_version_without_the_live_protocol_is_offered_per_turn_only() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = TempDir::new("wh-old-cli").unwrap();
    // An older Gemini CLI: it answers --version, and its help knows no --acp.
    let old = tmp.path().join("gemini");
    std::fs::write(
        &old,
        "#!/bin/sh\ncase \"$1\" in --version) echo 0.1.0;; *) echo 'usage: gemini --prompt TEXT';; esac\n",
    )
    .unwrap();
    std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o755)).unwrap();
    let hub = Workerhub::start_in(
        &tmp.path().join("data"),
        &["--gemini-binary", old.to_str().unwrap()],
    );
    let kinds = hub.get("/api/ai-clis").json();
    let gemini = kinds["ai_clis"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "gemini")
        .cloned()
        .unwrap();
    assert_eq!(gemini["usable"], true, "{gemini}");
    assert_eq!(gemini["sessions"], json!(["per-turn"]), "{gemini}");
    assert_eq!(gemini["approvals"], json!([]), "{gemini}");
}
