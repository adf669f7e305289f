//! Tool approvals with the real Claude Code in a live session, offline against the mock
//! model: the model asks to run `touch approved.txt`, which Claude Code will not run
//! without permission; the CLI asks over its control protocol, workerhub publishes an
//! `approval_request`, and whoever answers first decides.

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::TempDir;
use support::mock_llm::{Behaviour, MockLlm, cli_path};
use support::server::Workerhub;
use support::turns::{env_object, next_of, turn_end};

const T: Duration = Duration::from_secs(60);
const FILE: &str = "approved.txt";

struct Case {
    hub: Workerhub,
    mock: MockLlm,
    home: PathBuf,
    project: PathBuf,
    tmp: TempDir,
}

impl Case {
    fn new(args: &[&str]) -> Option<Case> {
        let Some(claude) = cli_path("claude") else {
            println!("skipped: claude is not installed (run `make clis`)");
            return None;
        };
        let tmp = TempDir::new("wh-approvals").unwrap();
        let home = tmp.subdir("home").unwrap();
        let project = tmp.subdir("project").unwrap();
        let mut all = vec!["--claude-binary", claude.to_str().unwrap()];
        all.extend_from_slice(args);
        let hub = Workerhub::start_in(&tmp.path().join("data"), &all);
        let mock = MockLlm::start(Behaviour::tool_then_text(
            &format!("touch {FILE}"),
            "MOCK saw the tool result: {tool_output}",
        ))
        .unwrap();
        Some(Case {
            hub,
            mock,
            home,
            project,
            tmp,
        })
    }

    /// A Claude Code worker with default options (a live session that asks), talking
    /// to the mock; `extra` fields on top.
    fn worker(&self, extra: Value) -> String {
        let env = env_object(self.mock.claude_env(&self.home).unwrap());
        let mut body = json!({"name": "claude", "ai_cli_type": "claude", "project_path": self.project, "env": env});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        self.hub.create_worker(body)
    }

    fn file(&self) -> PathBuf {
        self.project.join(FILE)
    }
}

fn final_text(events: &[Value]) -> String {
    events
        .iter()
        .filter(|e| e["type"] == "output" && e["content"]["kind"] == "text")
        .filter_map(|e| e["content"]["text"].as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn deny_allow_and_allow_for_the_session_with_the_real_claude() {
    let Some(case) = Case::new(&[]) else { return };
    let id = case.worker(json!({}));
    let mut a = case.hub.ws(&format!("/ws/{id}?since=0"));
    let mut b = case.hub.ws(&format!("/ws/{id}?since=0"));
    let view = case.hub.worker(&id);
    assert_eq!(view["approval"], "ask", "{view}");
    assert_eq!(view["live_session"], true, "{view}");

    // Deny, with a message the model receives.
    a.send_json(&json!({"type": "message", "content": "please create the file"}));
    let request = next_of(&mut a, "approval_request");
    assert_eq!(
        next_of(&mut b, "approval_request"),
        request,
        "every viewer sees it"
    );
    assert_eq!(request["tool_name"], "Bash");
    assert_eq!(request["summary"], format!("touch {FILE}"));
    let decisions: Vec<&str> = request["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["decision"].as_str().unwrap())
        .collect();
    assert_eq!(decisions, ["allow", "allow_session", "deny"]);
    let worker = case.hub.worker(&id);
    assert_eq!(worker["status"], "waiting_approval");
    assert_eq!(
        worker["pending_approvals"][0]["approval_id"],
        request["approval_id"]
    );
    let approval_id = request["approval_id"].as_str().unwrap().to_string();
    b.send_json(&json!({"type": "approval", "approval_id": approval_id, "decision": "deny", "message": "not in this folder"}));
    let resolved = next_of(&mut a, "approval_resolved");
    assert_eq!(resolved["decision"], "deny");
    assert!(resolved["by"].is_string());
    let events = turn_end(&mut a);
    assert!(!case.file().exists(), "a denied call does not run");
    assert!(
        final_text(&events).contains("not in this folder"),
        "the model was told: {events:?}"
    );
    // A late answer is told who won.
    let late = case.hub.post_json(
        &format!("/api/workers/{id}/approvals/{approval_id}"),
        &json!({"decision": "allow"}),
    );
    assert_eq!(late.status, 409, "{}", late.text());
    assert_eq!(late.error_code(), "already_decided");

    // Allow, over REST, by the start of the id.
    a.send_json(&json!({"type": "message", "content": "please create the file now"}));
    let request = next_of(&mut a, "approval_request");
    let short = &request["approval_id"].as_str().unwrap()[..8];
    let resp = case.hub.post_json(
        &format!("/api/workers/{id}/approvals/{short}"),
        &json!({"decision": "allow"}),
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    turn_end(&mut a);
    assert!(case.file().exists(), "an allowed call runs");

    // Allow for the session: the same call is not asked again.
    std::fs::remove_file(case.file()).unwrap();
    a.send_json(&json!({"type": "message", "content": "and again"}));
    let request = next_of(&mut a, "approval_request");
    let rule = request["options"][1]["rule"].as_str().unwrap().to_string();
    assert!(rule.contains("touch"), "{rule}");
    a.send_json(&json!({"type": "approval", "approval_id": request["approval_id"], "decision": "allow_session"}));
    turn_end(&mut a);
    assert!(case.file().exists());
    std::fs::remove_file(case.file()).unwrap();
    a.send_json(&json!({"type": "message", "content": "once more"}));
    let events = turn_end(&mut a);
    assert!(
        !events.iter().any(|e| e["type"] == "approval_request"),
        "not asked again: {events:?}"
    );
    assert!(case.file().exists(), "and it ran");
    // One process served every turn.
    let inits = case
        .hub
        .history(&id)
        .into_iter()
        .filter(|e| e["type"] == "status" && e["status"] == "busy")
        .filter_map(|e| e["pid"].as_u64())
        .collect::<std::collections::HashSet<_>>();
    assert_eq!(inits.len(), 1, "one live process: {inits:?}");
}

#[test]
fn two_viewers_answer_at_once_and_one_wins() {
    let Some(case) = Case::new(&[]) else { return };
    let id = case.worker(json!({}));
    let mut a = case.hub.ws(&format!("/ws/{id}"));
    let mut b = case.hub.ws(&format!("/ws/{id}"));
    case.hub.post_json(
        &format!("/api/workers/{id}/messages"),
        &json!({"content": "go"}),
    );
    let request = next_of(&mut a, "approval_request");
    next_of(&mut b, "approval_request");
    let approval_id = request["approval_id"].as_str().unwrap().to_string();
    // REST and a WebSocket answer at the same moment.
    let hub_addr = case.hub.addr();
    let bearer = case.hub.bearer().unwrap();
    let path = format!("/api/workers/{id}/approvals/{approval_id}");
    let rest = std::thread::spawn(move || {
        support::server::http_request(
            &hub_addr,
            "POST",
            &path,
            &[
                ("Authorization", &bearer),
                ("Content-Type", "application/json"),
            ],
            br#"{"decision":"allow"}"#,
        )
    });
    b.send_json(&json!({"type": "approval", "approval_id": approval_id, "decision": "deny"}));
    let rest = rest.join().unwrap();
    let a_events = turn_end(&mut a);
    let b_events = turn_end(&mut b);
    let resolved: Vec<&Value> = a_events
        .iter()
        .filter(|e| e["type"] == "approval_resolved")
        .collect();
    assert_eq!(resolved.len(), 1, "one resolution: {a_events:?}");
    assert_eq!(
        b_events
            .iter()
            .filter(|e| e["type"] == "approval_resolved")
            .count(),
        1
    );
    let b_lost = b_events.iter().any(|e| {
        e["type"] == "error" && e["code"] == "already_decided" && e["approval_id"] == approval_id
    });
    match resolved[0]["decision"].as_str() {
        Some("allow") => {
            assert_eq!(rest.status, 200);
            assert!(b_lost, "the WebSocket's late answer is told: {b_events:?}");
            assert!(case.file().exists());
        }
        Some("deny") => {
            assert_eq!(rest.status, 409, "{}", rest.text());
            assert_eq!(rest.error_code(), "already_decided");
            assert!(!case.file().exists());
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_late_viewer_sees_the_pending_request_and_an_interrupt_denies_it() {
    let Some(case) = Case::new(&[]) else { return };
    let id = case.worker(json!({}));
    let mut a = case.hub.ws(&format!("/ws/{id}"));
    case.hub.post_json(
        &format!("/api/workers/{id}/messages"),
        &json!({"content": "go"}),
    );
    let request = next_of(&mut a, "approval_request");
    // A reload, a reconnect from history: the request is there, and answerable.
    let mut late = case.hub.ws(&format!("/ws/{id}?since=0"));
    assert_eq!(next_of(&mut late, "approval_request"), request);
    let status = case.hub.get("/api/status").json();
    assert_eq!(status["approvals"]["pending"], 1, "{status}");
    assert_eq!(status["approvals"]["workers_waiting"], 1, "{status}");
    assert_eq!(case.hub.worker(&id)["status"], "waiting_approval");
    let listed = case.hub.get(&format!("/api/workers/{id}/approvals")).json();
    assert_eq!(
        listed["approvals"][0]["approval_id"],
        request["approval_id"]
    );
    // An interrupt denies it, and the turn ends interrupted.
    let resp = case
        .hub
        .post_json(&format!("/api/workers/{id}/interrupt"), &json!({}));
    assert_eq!(resp.status, 200, "{}", resp.text());
    let resolved = next_of(&mut late, "approval_resolved");
    assert_eq!(resolved["decision"], "deny");
    assert_eq!(resolved["by"], "interrupt");
    let events = turn_end(&mut late);
    assert_eq!(
        events.last().unwrap()["last_turn"]["outcome"],
        "interrupted",
        "{events:?}"
    );
    assert!(!case.file().exists());
    // The session goes on in the same process: the model is told the call was refused.
    let pid = case.hub.worker(&id)["pid"].clone();
    late.send_json(&json!({"type": "message", "content": "go on"}));
    let events = turn_end(&mut late);
    assert_eq!(
        events.last().unwrap()["last_turn"]["outcome"],
        "completed",
        "{events:?}"
    );
    assert!(
        final_text(&events).contains("MOCK saw the tool result"),
        "{events:?}"
    );
    assert_eq!(
        case.hub.worker(&id)["pid"],
        pid,
        "the live session kept its process"
    );
    assert!(!case.file().exists());
}

#[test]
fn a_request_the_cli_withdraws_is_resolved_as_cancelled() {
    let Some(case) = Case::new(&[]) else { return };
    // A PermissionRequest hook of the project's that decides after a second: Claude
    // Code asks the host too, then withdraws its question when the hook answers.
    let settings = case.project.join(".claude");
    std::fs::create_dir_all(&settings).unwrap();
    std::fs::write(
        settings.join("settings.json"),
        json!({"hooks": {"PermissionRequest": [{"matcher": "Bash", "hooks": [{"type": "command", "command": "sleep 1; echo '{\"hookSpecificOutput\":{\"hookEventName\":\"PermissionRequest\",\"decision\":{\"behavior\":\"allow\"}}}'"}]}]}}).to_string(),
    )
    .unwrap();
    let id = case.worker(json!({}));
    let mut a = case.hub.ws(&format!("/ws/{id}"));
    case.hub.post_json(
        &format!("/api/workers/{id}/messages"),
        &json!({"content": "go"}),
    );
    next_of(&mut a, "approval_request");
    let resolved = next_of(&mut a, "approval_resolved");
    assert_eq!(resolved["decision"], "cancelled", "{resolved}");
    assert_eq!(resolved["by"], "the program");
    turn_end(&mut a);
    assert!(case.file().exists(), "the hook allowed it");
    assert_eq!(case.hub.worker(&id)["pending_approvals"], json!([]));
}

#[test]
fn a_server_restart_while_a_request_waits_expires_it_and_the_session_resumes() {
    let Some(mut case) = Case::new(&[]) else {
        return;
    };
    let id = case.worker(json!({}));
    let mut a = case.hub.ws(&format!("/ws/{id}"));
    case.hub.post_json(
        &format!("/api/workers/{id}/messages"),
        &json!({"content": "go"}),
    );
    let request = next_of(&mut a, "approval_request");
    case.hub.crash();
    drop(a);
    let claude = cli_path("claude").unwrap();
    case.hub = Workerhub::start_in(
        &case.tmp.path().join("data"),
        &["--claude-binary", claude.to_str().unwrap()],
    );
    let history = case.hub.history(&id);
    let expired = history
        .iter()
        .find(|e| e["type"] == "approval_resolved")
        .expect("the request was resolved");
    assert_eq!(expired["approval_id"], request["approval_id"]);
    assert_eq!(expired["decision"], "expired");
    assert!(
        history
            .iter()
            .any(|e| e["type"] == "error" && e["code"] == "turn_failed")
    );
    let worker = case.hub.worker(&id);
    assert_eq!(worker["pending_approvals"], json!([]));
    // An answer to it now is told what happened.
    let late = case.hub.post_json(
        &format!(
            "/api/workers/{id}/approvals/{}",
            request["approval_id"].as_str().unwrap()
        ),
        &json!({"decision": "allow"}),
    );
    assert_eq!(late.status, 409, "{}", late.text());
    // The next message goes on: resuming the session when Claude Code saved it before it
    // was killed, else (it saves late in a first turn) in a new session, which the
    // worker reports.
    let mut a = case.hub.ws(&format!("/ws/{id}"));
    case.mock.clear_requests();
    a.send_json(&json!({"type": "message", "content": "after the restart"}));
    let request = next_of(&mut a, "approval_request");
    a.send_json(
        &json!({"type": "approval", "approval_id": request["approval_id"], "decision": "allow"}),
    );
    let events = turn_end(&mut a);
    assert_eq!(
        events.last().unwrap()["last_turn"]["outcome"],
        "completed",
        "{events:?}"
    );
    assert!(case.file().exists());
    let lost = case
        .hub
        .history(&id)
        .iter()
        .any(|e| e["content"]["kind"] == "system" && e["content"]["subtype"] == "session_lost");
    let resumed = case
        .mock
        .model_requests()
        .iter()
        .any(|r| r.body_contains("\"go\""));
    assert!(
        lost != resumed,
        "either resumed with the earlier conversation or reported as lost (lost: {lost}, resumed: {resumed})"
    );
}

#[test]
fn policies_rules_auto_and_a_timeout_decide_without_a_person() {
    let Some(case) = Case::new(&["--approval-timeout", "1"]) else {
        return;
    };
    // auto: nothing is asked.
    let auto = case.worker(json!({"name": "auto", "approval": "auto"}));
    let mut ws = case.hub.ws(&format!("/ws/{auto}"));
    ws.send_json(&json!({"type": "message", "content": "go"}));
    let events = turn_end(&mut ws);
    assert!(
        !events.iter().any(|e| e["type"] == "approval_request"),
        "{events:?}"
    );
    assert!(case.file().exists());
    std::fs::remove_file(case.file()).unwrap();

    // Rules: denied by rule, the rest denied without asking (ask: none).
    let ruled = case.worker(json!({"name": "ruled", "approval": {"allow": ["Read"], "deny": ["Bash(rm:*)"], "ask": "none"}}));
    let mut ws = case.hub.ws(&format!("/ws/{ruled}"));
    ws.send_json(&json!({"type": "message", "content": "go"}));
    let events = turn_end(&mut ws);
    let resolved = events
        .iter()
        .find(|e| e["type"] == "approval_resolved")
        .expect("decided by the rules");
    assert_eq!(resolved["decision"], "deny");
    assert_eq!(resolved["by"], "rules");
    assert!(!case.file().exists());

    // Nobody answers within --approval-timeout: denied.
    let waiting = case.worker(json!({"name": "waiting"}));
    let mut ws = case.hub.ws(&format!("/ws/{waiting}"));
    let asked = Instant::now();
    ws.send_json(&json!({"type": "message", "content": "go"}));
    next_of(&mut ws, "approval_request");
    let resolved = next_of(&mut ws, "approval_resolved");
    assert_eq!(resolved["by"], "timeout");
    assert_eq!(resolved["decision"], "deny");
    assert!(asked.elapsed() >= Duration::from_secs(1));
    turn_end(&mut ws);
    assert!(!case.file().exists());

    // A bad answer is refused clearly.
    let bad = case.hub.post_json(
        &format!("/api/workers/{waiting}/approvals/nope"),
        &json!({"decision": "maybe"}),
    );
    assert_eq!(bad.status, 400, "{}", bad.text());
}

#[test]
fn a_live_session_keeps_its_process_and_resumes_after_the_process_dies() {
    let Some(case) = Case::new(&[]) else { return };
    let id = case.worker(json!({"approval": "auto"}));
    let mut ws = case.hub.ws(&format!("/ws/{id}"));
    ws.send_json(&json!({"type": "message", "content": "the first message"}));
    turn_end(&mut ws);
    let pid = case.hub.worker(&id)["pid"]
        .as_i64()
        .expect("a live process");
    ws.send_json(&json!({"type": "message", "content": "the second message"}));
    turn_end(&mut ws);
    assert_eq!(
        case.hub.worker(&id)["pid"].as_i64(),
        Some(pid),
        "the second turn ran in the same process"
    );
    // The process dies between turns: the next message starts it again, resuming.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    let deadline = Instant::now() + T;
    while !case.hub.worker(&id)["pid"].is_null() {
        assert!(
            Instant::now() < deadline,
            "the dead process was not noticed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    case.mock.clear_requests();
    ws.send_json(&json!({"type": "message", "content": "the third message"}));
    let events = turn_end(&mut ws);
    assert_eq!(
        events.last().unwrap()["last_turn"]["outcome"],
        "completed",
        "{events:?}"
    );
    let new_pid = case.hub.worker(&id)["pid"].as_i64();
    assert!(new_pid.is_some() && new_pid != Some(pid));
    assert!(
        case.mock
            .model_requests()
            .iter()
            .any(|r| r.body_contains("the first message")),
        "the new process resumed the conversation"
    );
    // A stop ends the session, and says it was asked for.
    let resp = case
        .hub
        .post_json(&format!("/api/workers/{id}/stop"), &json!({}));
    assert_eq!(resp.status, 200, "{}", resp.text());
    let worker = case.hub.worker(&id);
    assert_eq!(worker["status"], "idle", "{worker}");
    assert_eq!(worker["reason"], "stopped on request", "{worker}");
}

#[test]
fn the_cli_watches_a_pending_request_and_answers_it() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let Some(case) = Case::new(&[]) else { return };
    let id = case.worker(json!({"name": "asker"}));
    let mut ws = case.hub.ws(&format!("/ws/{id}"));
    ws.send_json(&json!({"type": "message", "content": "go"}));
    next_of(&mut ws, "approval_request");
    let token = case
        .hub
        .bearer()
        .unwrap()
        .trim_start_matches("Bearer ")
        .to_string();
    let url = format!("http://{}", case.hub.addr());
    let cli = |args: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_workerhub"));
        command
            .args(args)
            .env("WORKERHUB_URL", &url)
            .env("WORKERHUB_TOKEN", &token)
            .env("XDG_RUNTIME_DIR", case.tmp.path())
            .current_dir(case.tmp.path());
        command
    };
    // `watch` joins late and shows what the worker waits for, and how to answer it.
    let mut watch = cli(&["watch", "asker"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(watch.stdout.take().unwrap()).lines();
    let shown = lines.next().unwrap().unwrap();
    assert!(
        shown.contains("Bash asks to run: touch approved.txt"),
        "{shown}"
    );
    let hint = lines.next().unwrap().unwrap();
    assert!(hint.contains("workerhub approve asker"), "{hint}");
    // `approve` without an id answers the one request waiting.
    let out = cli(&["approve", "asker", "--allow"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    turn_end(&mut ws);
    assert!(case.file().exists());
    let resolved = lines.next().unwrap().unwrap();
    assert!(resolved.contains("allowed by"), "{resolved}");
    let _ = watch.kill();
    let _ = watch.wait();
    // Answering again is told that it was decided.
    let again = cli(&["approve", "asker", "--deny"]).output().unwrap();
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("waits for no approval"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
}

#[test]
fn a_batch_run_answers_by_each_messages_approve_list_and_reports_it() {
    let Some(case) = Case::new(&[]) else { return };
    let env = env_object(case.mock.claude_env(&case.home).unwrap());
    let script = json!({
        "metadata": {"title": "supervised", "ai_cli_type": "claude", "project_path": case.project, "env": env},
        "messages": [
            {"role": "user", "content": "create it", "approve": ["Bash(touch:*)"]},
            {"role": "user", "content": "create it again"},
        ],
    });
    let dir = case.tmp.path();
    std::fs::write(dir.join("script.json"), script.to_string()).unwrap();
    let token = case
        .hub
        .bearer()
        .unwrap()
        .trim_start_matches("Bearer ")
        .to_string();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_workerhub"))
        .args(["batch", "script.json", "--quiet", "--report", "report.json"])
        .args(["--server", &format!("http://{}", case.hub.addr())])
        .env("WORKERHUB_TOKEN", &token)
        .env("XDG_RUNTIME_DIR", dir)
        .current_dir(dir)
        .output()
        .unwrap();
    let report: Value =
        serde_json::from_slice(&std::fs::read(dir.join("report.json")).unwrap()).unwrap();
    assert!(
        out.status.success(),
        "{report:#}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let first = &report["messages"][0]["approvals"];
    assert_eq!(first[0]["decision"], "allow", "{report:#}");
    assert_eq!(first[0]["rule"], "Bash(touch:*)");
    assert_eq!(first[0]["summary"], format!("touch {FILE}"));
    assert!(case.file().exists());
    std::fs::remove_file(case.file()).unwrap();
    let second = &report["messages"][1]["approvals"];
    assert_eq!(second[0]["decision"], "deny", "{report:#}");
    assert!(!case.file().exists(), "nobody approved the second call");
}

#[test]
fn a_task_decides_its_turns_tool_calls_by_its_own_policy() {
    let Some(case) = Case::new(&[]) else { return };
    let id = case.worker(json!({}));
    let mut ws = case.hub.ws(&format!("/ws/{id}"));
    let bad = case.hub.post_json(
        "/api/tasks",
        &json!({"instruction": "go", "worker_id": id, "approval": "sometimes"}),
    );
    assert_eq!(bad.status, 400, "{}", bad.text());
    let task = case.hub.post_json(
        "/api/tasks",
        &json!({"instruction": "go", "worker_id": id, "approval": {"allow": ["Bash(touch:*)"], "ask": "none"}}),
    );
    assert_eq!(task.status, 201, "{}", task.text());
    let events = turn_end(&mut ws);
    let resolved = events
        .iter()
        .find(|e| e["type"] == "approval_resolved")
        .expect("decided by the task's rules");
    assert_eq!(resolved["decision"], "allow");
    assert_eq!(resolved["by"], "rules");
    assert!(case.file().exists());
    // The worker's own policy is unchanged: a message of its own is asked about.
    ws.send_json(&json!({"type": "message", "content": "again"}));
    next_of(&mut ws, "approval_request");
}
