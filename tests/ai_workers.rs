//! AI CLI workers, end to end: the real workerhub binary drives the real Claude Code,
//! Codex, Gemini CLI and OpenCode (installed by `make clis`) against a mock of each
//! model API served here, and the real CLIs run the shell commands the mock asks for.
//! A small fake CLI (`tests/fake_cli/claude-fake`) covers what the real ones won't do
//! on demand. A CLI that is not installed skips its test with one printed line.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::TempDir;
use support::mock_llm::{Behaviour, GEMINI_MODEL, MockLlm, cli_path};
use support::server::{Workerhub, Ws};

const T: Duration = Duration::from_secs(60);
const TOOL_COMMAND: &str = "echo hello-from-tool > proof.txt; cat proof.txt";
const TOOL_OUTPUT: &str = "hello-from-tool";
const TOOL_THINKING: &str = "The user wants the proof file; I will run the command.";
const TOOL_PROMPT: &str = "Create the proof file";
const RESUME_PROMPT: &str = "What did the command print?";
const RESUME_ANSWER: &str = "It printed hello-from-tool, as before.";

fn tool_behaviour() -> Behaviour {
    Behaviour::ToolThenText {
        command: TOOL_COMMAND.into(),
        final_text: "The command printed: {tool_output}".into(),
        thinking: Some(TOOL_THINKING.into()),
    }
}

/// A server that knows where every installed CLI is, a mock model API, and a private
/// home and project folder for the worker.
struct Case {
    hub: Workerhub,
    mock: MockLlm,
    home: PathBuf,
    project: PathBuf,
    _tmp: TempDir,
}

fn binary_flags() -> Vec<String> {
    let mut flags = Vec::new();
    for name in ["claude", "codex", "gemini", "opencode"] {
        if let Some(path) = cli_path(name) {
            flags.push(format!("--{name}-binary"));
            flags.push(path.display().to_string());
        }
    }
    flags
}

impl Case {
    fn new(cli: &str, behaviour: Behaviour, args: &[&str]) -> Option<Case> {
        if cli_path(cli).is_none() {
            println!("skipped: {cli} is not installed (run `make clis`)");
            return None;
        }
        Some(Case::with(behaviour, binary_flags(), args))
    }

    fn with(behaviour: Behaviour, binaries: Vec<String>, args: &[&str]) -> Case {
        let tmp = TempDir::new("wh-ai").expect("temp dir");
        let home = tmp.subdir("home").unwrap();
        let project = tmp.subdir("project").unwrap();
        let mut all: Vec<String> = binaries;
        all.extend(args.iter().map(|s| s.to_string()));
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        let hub = Workerhub::start_in(&tmp.path().join("data"), &all);
        let mock = MockLlm::start(behaviour).expect("mock");
        Case {
            hub,
            mock,
            home,
            project,
            _tmp: tmp,
        }
    }

    /// The create request for a worker of `cli` talking to the mock.
    fn body(&self, cli: &str) -> Value {
        let env: Vec<(String, String)> = match cli {
            "claude" => self.mock.claude_env(&self.home),
            "codex" => self.mock.codex_env(&self.home),
            "gemini" => self.mock.gemini_env(&self.home),
            "opencode" => self.mock.opencode_env(&self.home, &self.project),
            _ => Ok(Vec::new()),
        }
        .expect("mock env");
        let env: serde_json::Map<String, Value> = env
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        let mut body = json!({
            "name": format!("{cli}-worker"),
            "ai_cli_type": cli,
            "project_path": self.project,
            "env": env,
        });
        match cli {
            "claude" => body["allowed_tools"] = json!(["Bash"]),
            "gemini" => body["model"] = json!(GEMINI_MODEL),
            _ => {}
        }
        body
    }

    fn create(&self, cli: &str, extra: Value) -> String {
        let mut body = self.body(cli);
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        self.hub.create_worker(body)
    }

    fn send(&self, id: &str, content: &str) -> Value {
        let resp = self.hub.post_json(
            &format!("/api/workers/{id}/messages"),
            &json!({"content": content}),
        );
        assert_eq!(resp.status, 202, "{}", resp.text());
        resp.json()
    }
}

/// Events until the worker goes idle after a turn (the status with `last_turn`).
fn until_turn_ends(ws: &mut Ws) -> Vec<Value> {
    ws.recv_until(T, |e| {
        e["type"] == "status" && e["status"] == "idle" && e.get("last_turn").is_some()
    })
}

fn kinds(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| match e["type"].as_str() {
            Some("output") => e["content"]["kind"].as_str().unwrap_or("?").to_string(),
            Some(other) => other.to_string(),
            None => "?".into(),
        })
        .collect()
}

/// Whether `wanted` appears in `seen` in this order (not necessarily adjacent).
fn in_order(seen: &[String], wanted: &[&str]) -> bool {
    let mut it = seen.iter();
    wanted.iter().all(|w| it.any(|s| s == w))
}

fn contiguous(events: &[Value]) {
    let seqs: Vec<u64> = events.iter().filter_map(|e| e["seq"].as_u64()).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "seqs rise by 1: {seqs:?}"
    );
}

fn content_of<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["type"] == "output" && e["content"]["kind"] == kind)
        .map(|e| &e["content"])
        .collect()
}

/// The full flow on one kind: two viewers, a tool turn the real CLI executes, and a
/// second turn that resumes the session.
fn tool_turn_then_resume(cli: &str, expected: &[&str]) {
    tool_turn_then_resume_with(cli, json!({}), expected);
}

/// The same, with `extra` fields in the worker's create request.
fn tool_turn_then_resume_with(cli: &str, extra: Value, expected: &[&str]) {
    let Some(case) = Case::new(cli, tool_behaviour(), &[]) else {
        return;
    };
    let extra_is_live = extra["session"] != "per-turn";
    let id = case.create(cli, extra);
    let mut a = case.hub.ws(&format!("/ws/{id}?since=0"));
    let mut b = case.hub.ws(&format!("/ws/{id}?since=0"));
    a.send_json(&json!({"type": "message", "content": TOOL_PROMPT}));
    let events = until_turn_ends(&mut a);
    let seen_b = until_turn_ends(&mut b);
    assert_eq!(events, seen_b, "both viewers see the same events");
    contiguous(&events);
    let k = kinds(&events);
    assert!(
        in_order(&k, expected),
        "{cli}: expected {expected:?} in order, got {k:?}"
    );
    // The command is the call's input; an ACP agent may name it in the call's title or
    // send it in a later update of the call.
    let tool_use = content_of(&events, "tool_use")[0];
    let updates = content_of(&events, "system");
    let carried = std::iter::once(tool_use)
        .chain(
            updates
                .into_iter()
                .filter(|s| s["subtype"] == "tool_call_update"),
        )
        .any(|c| {
            let mut c = c.clone();
            c["raw"].take();
            c.to_string().contains("hello-from-tool")
        });
    assert!(
        carried,
        "{cli}: the tool call carries the command: {tool_use}"
    );
    let tool_result = content_of(&events, "tool_result")[0];
    // Gemini CLI 0.61 over ACP reports a shell call's end without its output (the
    // update's `content` is empty); the file it wrote proves it ran.
    let silent = cli == "gemini" && extra_is_live;
    assert!(
        silent
            || tool_result["content"]
                .as_str()
                .unwrap_or("")
                .contains(TOOL_OUTPUT),
        "{cli}: the tool result carries the command's real output: {tool_result}"
    );
    assert_eq!(tool_result["is_error"], false);
    assert!(
        case.project.join("proof.txt").exists(),
        "{cli} really ran the command"
    );
    let result = content_of(&events, "result")[0];
    assert_eq!(result["is_error"], false, "{result}");
    for e in &events {
        if e["type"] == "output" && e["content"]["kind"] != "log" {
            assert!(
                e["content"]["raw"].as_str().is_some_and(|r| !r.is_empty()),
                "raw kept: {e}"
            );
        }
    }
    let last = events.last().unwrap();
    assert_eq!(last["last_turn"]["outcome"], "completed", "{last}");
    let session = case.hub.worker(&id)["session_id"]
        .as_str()
        .expect("session id")
        .to_string();

    // The second turn resumes the same session.
    case.mock.set_behaviour(Behaviour::text(RESUME_ANSWER));
    let requests_before = case.mock.model_requests().len();
    b.send_json(&json!({"type": "message", "content": RESUME_PROMPT}));
    let second = until_turn_ends(&mut a);
    contiguous(&second);
    let texts: String = content_of(&second, "text")
        .iter()
        .map(|c| c["text"].as_str().unwrap_or(""))
        .collect();
    assert!(texts.contains(RESUME_ANSWER), "{cli}: {texts}");
    assert_eq!(
        case.hub.worker(&id)["session_id"],
        session.as_str(),
        "{cli} kept its session"
    );
    let resumed = case.mock.model_requests()[requests_before..]
        .iter()
        .any(|r| r.body_contains(TOOL_OUTPUT));
    assert!(
        resumed,
        "{cli}: the second turn's request carries the first turn's conversation"
    );
}

#[test]
fn claude_tool_turn_and_resume() {
    tool_turn_then_resume(
        "claude",
        &[
            "user_message",
            "system",
            "thinking",
            "tool_use",
            "tool_result",
            "text",
            "result",
        ],
    );
}

#[test]
fn codex_tool_turn_and_resume() {
    tool_turn_then_resume_with(
        "codex",
        json!({"session": "per-turn"}),
        &[
            "user_message",
            "system",
            "thinking",
            "tool_use",
            "tool_result",
            "text",
            "result",
        ],
    );
}

#[test]
fn gemini_tool_turn_and_resume() {
    // Gemini CLI does not print thinking in stream-json.
    tool_turn_then_resume_with(
        "gemini",
        json!({"session": "per-turn"}),
        &[
            "user_message",
            "system",
            "tool_use",
            "tool_result",
            "text",
            "result",
        ],
    );
}

#[test]
fn opencode_tool_turn_and_resume() {
    // OpenCode prints reasoning only with --thinking.
    tool_turn_then_resume_with(
        "opencode",
        json!({"session": "per-turn"}),
        &[
            "user_message",
            "system",
            "tool_use",
            "tool_result",
            "text",
            "result",
        ],
    );
}

/// Live over Codex's app server, allowing every tool.
#[test]
fn codex_live_tool_turn_and_second_turn() {
    tool_turn_then_resume_with(
        "codex",
        json!({"approval": "auto"}),
        &[
            "user_message",
            "system",
            "thinking",
            "tool_use",
            "tool_result",
            "text",
            "result",
        ],
    );
}

/// Live over ACP, allowing every tool: the tool runs, the second turn goes to the same
/// session.
#[test]
fn gemini_live_tool_turn_and_second_turn() {
    tool_turn_then_resume_with(
        "gemini",
        json!({"approval": "auto"}),
        &[
            "user_message",
            "system",
            "tool_use",
            "tool_result",
            "text",
            "result",
        ],
    );
}

#[test]
fn opencode_live_tool_turn_and_second_turn() {
    tool_turn_then_resume_with(
        "opencode",
        json!({"approval": "auto"}),
        &[
            "user_message",
            "system",
            "tool_use",
            "tool_result",
            "text",
            "result",
        ],
    );
}

#[test]
fn claude_interrupt_ends_the_turn_and_the_worker_stays_usable() {
    let Some(case) = Case::new("claude", Behaviour::Hang, &[]) else {
        return;
    };
    let id = case.create("claude", json!({}));
    let mut ws = case.hub.ws(&format!("/ws/{id}"));
    case.send(&id, "this will hang");
    assert!(
        case.mock.wait_for_model_requests(1, T),
        "the CLI asked the model"
    );
    let resp = case
        .hub
        .post_json(&format!("/api/workers/{id}/interrupt"), &json!({}));
    assert_eq!(resp.status, 200, "{}", resp.text());
    let events = until_turn_ends(&mut ws);
    assert_eq!(
        events.last().unwrap()["last_turn"]["outcome"],
        "interrupted"
    );

    case.mock.set_behaviour(Behaviour::text("back again"));
    case.send(&id, "are you there?");
    let events = until_turn_ends(&mut ws);
    assert_eq!(events.last().unwrap()["last_turn"]["outcome"], "completed");
    assert!(content_of(&events, "result")[0]["result"] == "back again");
}

#[test]
fn a_turn_that_times_out_is_killed_and_the_worker_stays_usable() {
    // The mock never answers: only the turn timeout ends the turn.
    let Some(case) = Case::new("claude", Behaviour::Hang, &["--worker-timeout", "3"]) else {
        return;
    };
    let id = case.create("claude", json!({}));
    let mut ws = case.hub.ws(&format!("/ws/{id}"));
    let started = Instant::now();
    case.send(&id, "never answered");
    let events = until_turn_ends(&mut ws);
    let timeout = events
        .iter()
        .find(|e| e["type"] == "error" && e["code"] == "timeout");
    assert!(
        timeout.is_some(),
        "an error event with code timeout: {events:#?}"
    );
    assert_eq!(events.last().unwrap()["last_turn"]["outcome"], "timeout");
    assert!(started.elapsed() < Duration::from_secs(3 + 10));

    case.mock
        .set_behaviour(Behaviour::text("answered this time"));
    case.send(&id, "try again");
    let events = until_turn_ends(&mut ws);
    assert_eq!(events.last().unwrap()["last_turn"]["outcome"], "completed");
}

#[test]
fn messages_sent_while_busy_wait_in_a_visible_queue_and_run_in_order() {
    let Some(case) = Case::new(
        "claude",
        Behaviour::Delay(
            Duration::from_millis(800),
            Box::new(Behaviour::text("done")),
        ),
        &[],
    ) else {
        return;
    };
    let id = case.create("claude", json!({}));
    let mut ws = case.hub.ws(&format!("/ws/{id}"));
    let ids: Vec<String> = (1..=3)
        .map(|i| {
            case.send(&id, &format!("message {i}"))["message_id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let view = case.hub.worker(&id);
    assert_eq!(view["status"], "busy");
    assert_eq!(view["queue"].as_array().unwrap().len(), 2, "{view}");
    assert_eq!(view["queue"][0]["message_id"], ids[1].as_str());
    let mut finished = Vec::new();
    while finished.len() < 3 {
        let events = until_turn_ends(&mut ws);
        let last = events.last().unwrap();
        assert_eq!(last["last_turn"]["outcome"], "completed");
        finished.push(
            last["last_turn"]["message_id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
        if finished.len() == 1 {
            let queued: Vec<&Value> = events
                .iter()
                .filter(|e| e["type"] == "user_message")
                .collect();
            assert!(
                queued.iter().any(|e| e["state"] == "queued"),
                "queued messages are marked"
            );
        }
    }
    assert_eq!(
        finished, ids,
        "turns ran in the order the messages were sent"
    );
}

#[test]
fn claude_long_running_mode_keeps_one_process_across_turns() {
    let Some(case) = Case::new("claude", tool_behaviour(), &[]) else {
        return;
    };
    let id = case.create("claude", json!({"mode": "stream"}));
    let mut ws = case.hub.ws(&format!("/ws/{id}"));
    case.send(&id, TOOL_PROMPT);
    let first = until_turn_ends(&mut ws);
    assert!(in_order(
        &kinds(&first),
        &["system", "tool_use", "tool_result", "text", "result"]
    ));
    let pid = case.hub.worker(&id)["pid"]
        .as_u64()
        .expect("the session process stays up");

    case.mock.set_behaviour(Behaviour::Hang);
    case.send(&id, "hang now");
    assert!(case.mock.wait_for_model_requests(3, T));
    case.hub
        .post_json(&format!("/api/workers/{id}/interrupt"), &json!({}));
    let interrupted = until_turn_ends(&mut ws);
    assert_eq!(
        interrupted.last().unwrap()["last_turn"]["outcome"],
        "interrupted"
    );

    case.mock.set_behaviour(Behaviour::text(RESUME_ANSWER));
    case.send(&id, RESUME_PROMPT);
    let third = until_turn_ends(&mut ws);
    assert_eq!(third.last().unwrap()["last_turn"]["outcome"], "completed");
    assert_eq!(
        case.hub.worker(&id)["pid"].as_u64(),
        Some(pid),
        "the same process served every turn"
    );
}

#[test]
fn claude_watch_mode_follows_a_transcript_someone_else_writes() {
    let Some(case) = Case::new("claude", Behaviour::text("unused"), &[]) else {
        return;
    };
    let fixture = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/claude/transcript_tool.jsonl"),
    )
    .unwrap();
    let slug: String = case
        .project
        .canonicalize()
        .unwrap()
        .to_string_lossy()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let dir = case.home.join(".claude/projects").join(slug);
    std::fs::create_dir_all(&dir).unwrap();
    let transcript = dir.join("watched-session.jsonl");
    let lines: Vec<&str> = fixture.lines().collect();
    // Up to and with the tool call now; its result and the answer later.
    let half = lines
        .iter()
        .position(|l| l.contains("toolu_") && !l.contains("tool_result"))
        .unwrap()
        + 1;
    std::fs::write(&transcript, lines[..half].join("\n") + "\n").unwrap();

    let id = case.hub.create_worker(json!({
        "ai_cli_type": "claude", "mode": "watch", "session_id": "watched-session",
        "project_path": case.project, "env": {"HOME": case.home},
    }));
    let mut ws = case.hub.ws(&format!("/ws/{id}?since=0"));
    let early = ws.recv_until(T, |e| {
        e["type"] == "output" && e["content"]["kind"] == "tool_use"
    });
    assert!(
        early
            .iter()
            .any(|e| e["type"] == "user_message" && e["source"] == "transcript")
    );
    // Lines written later show up live.
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&transcript)
            .unwrap();
        f.write_all((lines[half..].join("\n") + "\n").as_bytes())
            .unwrap();
    }
    let later = ws.recv_until(T, |e| {
        e["type"] == "output" && e["content"]["kind"] == "text"
    });
    assert!(
        content_of(&later, "tool_result")
            .iter()
            .any(|c| c["content"].as_str().unwrap().contains(TOOL_OUTPUT))
    );
    let resp = case.hub.post_json(
        &format!("/api/workers/{id}/messages"),
        &json!({"content": "hi"}),
    );
    assert_eq!(resp.status, 409, "a follower takes no messages");
}

// ---- The fake CLI: what the real ones won't do on demand ----

/// A server whose `claude` is the fake CLI (the mock is started but unused).
fn fake_case(args: &[&str]) -> Case {
    let fake = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fake_cli/claude-fake");
    Case::with(
        Behaviour::text("unused"),
        vec!["--claude-binary".into(), fake.display().to_string()],
        args,
    )
}

#[test]
fn lines_that_are_not_json_huge_lines_and_invalid_utf8_are_kept_as_events() {
    let case = fake_case(&[]);
    let id = case
        .hub
        .create_worker(json!({"ai_cli_type": "claude", "project_path": case.project}));
    let mut ws = case.hub.ws(&format!("/ws/{id}"));
    case.send(&id, "garbage");
    let events = until_turn_ends(&mut ws);
    contiguous(&events);
    let logs: Vec<&Value> = content_of(&events, "log");
    assert!(
        logs.iter()
            .any(|c| c["text"] == "this is not json" && c["stream"] == "stdout")
    );
    assert!(
        logs.iter()
            .any(|c| c["text"].as_str().is_some_and(|t| t.len() == 1 << 20)),
        "the 1 MiB line is whole"
    );
    assert!(
        logs.iter()
            .any(|c| c["text"].as_str().is_some_and(|t| t.contains('\u{fffd}'))),
        "invalid UTF-8 replaced"
    );
    assert!(logs.iter().any(|c| c["stream"] == "stderr"));
    assert!(
        content_of(&events, "system")
            .iter()
            .any(|c| c["subtype"] == "mystery"),
        "unknown types are kept"
    );
    assert_eq!(content_of(&events, "result")[0]["result"], "survived");
    assert_eq!(events.last().unwrap()["last_turn"]["outcome"], "completed");
}

#[test]
fn a_crash_in_the_middle_of_a_turn_fails_it_clearly_and_the_next_turn_runs() {
    let case = fake_case(&[]);
    let id = case
        .hub
        .create_worker(json!({"ai_cli_type": "claude", "project_path": case.project}));
    let mut ws = case.hub.ws(&format!("/ws/{id}"));
    case.send(&id, "crash");
    let events = until_turn_ends(&mut ws);
    let error = events
        .iter()
        .find(|e| e["type"] == "error")
        .expect("an error event");
    assert_eq!(error["code"], "turn_failed");
    assert!(
        error["message"].as_str().unwrap().contains("SIGSEGV"),
        "{error}"
    );
    assert_eq!(events.last().unwrap()["last_turn"]["outcome"], "failed");
    case.send(&id, "hello again");
    let events = until_turn_ends(&mut ws);
    assert_eq!(events.last().unwrap()["last_turn"]["outcome"], "completed");
}

#[test]
fn a_result_followed_by_an_open_stdout_ends_the_turn_within_3s_twenty_times() {
    let case = fake_case(&[]);
    // A process per turn: the one that lingers after its result is killed.
    let id = case.hub.create_worker(
        json!({"ai_cli_type": "claude", "project_path": case.project, "session": "per-turn"}),
    );
    let mut ws = case.hub.ws(&format!("/ws/{id}"));
    for i in 0..20 {
        case.send(&id, "hang-after-result");
        let result_at = loop {
            let e = ws.recv(T);
            if e["type"] == "output" && e["content"]["kind"] == "result" {
                break Instant::now();
            }
        };
        let events = until_turn_ends(&mut ws);
        let took = result_at.elapsed();
        assert!(
            took < Duration::from_secs(3),
            "turn {i} finished {took:?} after its result"
        );
        assert_eq!(events.last().unwrap()["last_turn"]["outcome"], "completed");
    }
}

#[test]
fn ai_clis_is_truthful_about_what_is_installed_and_enabled() {
    // Without any of the CLIs: nothing is available, and creating one is a clear 400.
    let tmp = TempDir::new("wh-nocli").unwrap();
    let hub =
        Workerhub::start_with_env(&tmp.path().join("data"), &[], &[("PATH", "/usr/bin:/bin")]);
    let kinds = hub.get("/api/ai-clis").json();
    let by_name = |kinds: &Value, name: &str| -> Value {
        kinds["ai_clis"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["name"] == name)
            .cloned()
            .unwrap()
    };
    for name in ["claude", "codex", "gemini", "opencode"] {
        let k = by_name(&kinds, name);
        assert_eq!(k["available"], false, "{k}");
        assert!(k["reason"].as_str().unwrap().contains("not found"), "{k}");
    }
    assert_eq!(by_name(&kinds, "command")["available"], true);
    let resp = hub.post_json(
        "/api/workers",
        &json!({"ai_cli_type": "claude", "project_path": "/tmp"}),
    );
    assert_eq!(resp.status, 400);
    assert!(
        resp.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not available")
    );

    // With them: available, with versions; a disabled one is refused.
    if cli_path("claude").is_none() || cli_path("codex").is_none() {
        println!(
            "skipped: the installed half of this test needs claude and codex (run `make clis`)"
        );
        return;
    }
    let tmp = TempDir::new("wh-cli").unwrap();
    let mut args = binary_flags();
    args.extend(["--enabled-ai-clis".into(), "claude,gemini".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let hub = Workerhub::start_in(&tmp.path().join("data"), &args);
    let kinds = hub.get("/api/ai-clis").json();
    let claude = by_name(&kinds, "claude");
    assert_eq!(claude["available"], true, "{claude}");
    assert!(
        claude["version"].as_str().unwrap().contains("2.1"),
        "{claude}"
    );
    assert!(claude["binary"].as_str().unwrap().ends_with("claude"));
    let codex = by_name(&kinds, "codex");
    assert_eq!(codex["available"], true);
    assert_eq!(codex["enabled"], false);
    let resp = hub.post_json(
        "/api/workers",
        &json!({"ai_cli_type": "codex", "project_path": "/tmp"}),
    );
    assert_eq!(resp.status, 400);
    assert!(
        resp.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("disabled")
    );
}

#[test]
fn kinds_from_a_config_file_run_with_their_template() {
    let tmp = TempDir::new("wh-config").unwrap();
    let config = tmp.path().join("kinds.json");
    std::fs::write(
        &config,
        json!({"ai_clis": [{
            "name": "echoer",
            "command": ["sh", "-c", "echo \"reply to: $1 (model $2)\"", "sh", "{message}", "{model}"],
            "output": "text",
            "mode": "per_turn"
        }]})
        .to_string(),
    )
    .unwrap();
    let hub = Workerhub::start_in(
        &tmp.path().join("data"),
        &["--config", config.to_str().unwrap()],
    );
    let id =
        hub.create_worker(json!({"ai_cli_type": "echoer", "project_path": "/tmp", "model": "m1"}));
    let mut ws = hub.ws(&format!("/ws/{id}"));
    let resp = hub.post_json(
        &format!("/api/workers/{id}/messages"),
        &json!({"content": "hi; rm -rf /"}),
    );
    assert_eq!(resp.status, 202);
    let events = until_turn_ends(&mut ws);
    let text = content_of(&events, "text")[0];
    assert_eq!(
        text["text"], "reply to: hi; rm -rf / (model m1)",
        "the message is one argument, never shell code"
    );
    let bad = tmp.path().join("bad.json");
    std::fs::write(&bad, "{\"ai_clis\": [{\"name\": \"claude\"}]}").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_workerhub"))
        .args(["--port", "0", "--config", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.json"));
}

#[test]
fn worker_options_are_shown_back_with_secrets_masked() {
    let case = fake_case(&["--claude-api-key", "sk-ant-very-secret-1234"]);
    let id = case.hub.create_worker(json!({
        "ai_cli_type": "claude", "project_path": case.project, "model": "opus",
        "permission_mode": "acceptEdits", "allowed_tools": ["Bash", "Read"], "extra_args": ["--max-turns", "3"],
        "env": {"OPENAI_API_KEY": "sk-abcdefghijklmnop", "PLAIN": "visible"},
    }));
    let w = case.hub.worker(&id);
    assert_eq!(w["model"], "opus");
    assert_eq!(w["permission_mode"], "acceptEdits");
    assert_eq!(w["allowed_tools"], json!(["Bash", "Read"]));
    assert_eq!(w["extra_args"], json!(["--max-turns", "3"]));
    assert_eq!(w["env"]["PLAIN"], "visible");
    assert_eq!(w["env"]["OPENAI_API_KEY"], "****mnop");
    assert!(
        !case
            .hub
            .get("/api/workers")
            .text()
            .contains("sk-abcdefghijklmnop")
    );
}
