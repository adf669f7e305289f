//! Workers on another host, over a real OpenSSH server this test starts (`local-ssh`,
//! on a loopback port, as a user's `~/.ssh/config` names it): the same events as a local
//! worker, input byte for byte, signals and deletion leaving nothing behind on the host,
//! and not a line lost or repeated when the connection or the host goes away mid-stream.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::TempDir;
use support::mock_llm::{Behaviour, MockLlm, cli_path};
use support::remote::{Remote, group_members};
use support::server::{Got, Ws};
use support::turns::{env_object, next_of, outcome, turn_end};

const T: Duration = Duration::from_secs(20);

fn start(extra_args: &[&str]) -> Option<Remote> {
    Remote::start("wh-remote", extra_args)
}

/// The control masters of this server's ssh connections (their name says `[mux]`).
fn kill_control_masters(data: &Path) {
    let out = std::process::Command::new("ps")
        .args(["-eo", "pid=,args="])
        .output()
        .unwrap();
    let data = data.display().to_string();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let mut words = line.split_whitespace();
        let pid: i32 = words.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        let args: Vec<&str> = words.collect();
        let args = args.join(" ");
        if args.starts_with("ssh: ") && args.contains("[mux]") && args.contains(&data) {
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

fn texts(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["type"] == "output")
        .filter_map(|e| e["content"]["text"].as_str().map(str::to_string))
        .collect()
}

fn next_output(ws: &mut Ws) -> Value {
    loop {
        let e = ws.recv(T);
        if e["type"] == "output" {
            return e;
        }
    }
}

#[test]
fn cat_on_the_host_echoes_every_awkward_message_byte_for_byte() {
    let Some(remote) = start(&[]) else { return };
    let hub = &remote.hub;
    let id = remote.worker(&["cat"]);
    let view = hub.wait_status(&id, |s| s == "running", T);
    assert_eq!(view["status"], "running", "{view}");
    assert_eq!(view["host"], "local-ssh", "{view}");
    let mut ws = hub.ws(&format!("/ws/{id}"));
    std::thread::sleep(Duration::from_millis(200));
    let messages = [
        "'; rm -rf ~ #",
        "--version",
        "-n",
        "$HOME `id` $(id) ${PATH}",
        "a \"quoted\" 'word' \\ back\\slash",
        "tab\there; semi; & amp | pipe > out < in",
        "ünïcödé ✓ 日本語",
        "  leading and trailing spaces  ",
    ];
    for message in messages {
        ws.send_json(&json!({"type": "message", "content": message}));
        let echo = next_output(&mut ws);
        assert_eq!(echo["content"]["text"], message, "{echo}");
        assert_eq!(echo["content"]["stream"], "stdout");
    }
    assert!(
        remote.sshd.home.join(".ssh/config").exists() && remote.spools(&id).len() == 1,
        "the spool is there while it runs"
    );

    // Interrupt: SIGINT to its group on the host, as for a local worker.
    let pgid = hub.worker(&id)["pid"].as_u64().expect("the remote group");
    assert!(!group_members(pgid).is_empty(), "cat runs in its group");
    let interrupted = hub.post_json(&format!("/api/workers/{id}/interrupt"), &json!({}));
    assert!(interrupted.status < 300, "{}", interrupted.text());
    let view = hub.wait_status(&id, |s| s == "exited", T);
    assert_eq!(view["signal"], 2, "{view}");
    let deadline = Instant::now() + T;
    while !group_members(pgid).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(group_members(pgid), Vec::<String>::new());

    // Deleted: nothing of it stays on the host.
    assert_eq!(hub.delete(&format!("/api/workers/{id}")).status, 200);
    assert_eq!(remote.spools(&id), Vec::<PathBuf>::new());
}

#[test]
fn stop_and_delete_end_the_remote_group_and_remove_the_spool() {
    let Some(remote) = start(&[]) else { return };
    let hub = &remote.hub;
    // A program that ignores SIGTERM, with a child in its group.
    let id = remote.worker(&["sh", "-c", "trap '' TERM; sleep 300 & echo ready; wait"]);
    let mut ws = hub.ws(&format!("/ws/{id}?since=0"));
    assert_eq!(next_output(&mut ws)["content"]["text"], "ready");
    let pgid = hub.worker(&id)["pid"].as_u64().expect("the remote group");
    assert!(group_members(pgid).len() >= 2, "{:?}", group_members(pgid));
    let stopped = hub.post_json(&format!("/api/workers/{id}/stop"), &json!({}));
    assert!(stopped.status < 300, "{}", stopped.text());
    let view = hub.wait_status(&id, |s| s == "exited", T);
    assert_eq!(view["signal"], 9, "SIGTERM ignored, then SIGKILL: {view}");
    assert_eq!(group_members(pgid), Vec::<String>::new());

    // Started again, then deleted while it runs.
    assert!(
        hub.post_json(&format!("/api/workers/{id}/start"), &json!({}))
            .status
            < 300
    );
    hub.wait_status(&id, |s| s == "running", T);
    // Its group there is known once its start there is done.
    let deadline = Instant::now() + T;
    let pgid = loop {
        if let Some(pgid) = hub.worker(&id)["pid"].as_u64() {
            break pgid;
        }
        assert!(Instant::now() < deadline, "no group after its start");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!group_members(pgid).is_empty());
    assert_eq!(hub.delete(&format!("/api/workers/{id}")).status, 200);
    let deadline = Instant::now() + T;
    while !group_members(pgid).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        group_members(pgid),
        Vec::<String>::new(),
        "no process of it"
    );
    assert_eq!(remote.spools(&id), Vec::<PathBuf>::new(), "no spool of it");
}

#[test]
fn a_hundred_thousand_lines_arrive_once_each_across_a_dropped_connection_and_a_dead_host() {
    let Some(mut remote) = start(&[]) else { return };
    // 100,000 numbered lines, in bursts, so that the connection dies mid-stream.
    let script = "i=1; while [ $i -le 100000 ]; do echo \"line $i\"; \
                  if [ $((i % 2000)) -eq 0 ]; then sleep 0.1; fi; i=$((i+1)); done";
    let id = remote.worker(&["sh", "-c", script]);
    let mut ws = remote.hub.ws(&format!("/ws/{id}?since=0"));
    let mut lines = Vec::with_capacity(100_000);
    let mut statuses = Vec::new();
    let mut cut_master = false;
    let mut cut_host = false;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(Instant::now() < deadline, "{} lines so far", lines.len());
        match ws.next(Duration::from_secs(30)) {
            Got::Json(e) if e["type"] == "output" => {
                lines.push(e["content"]["text"].as_str().unwrap_or("").to_string());
            }
            Got::Json(e) if e["type"] == "status" => {
                let status = e["status"].as_str().unwrap_or("").to_string();
                statuses.push(status.clone());
                if status == "exited" {
                    assert_eq!(e["exit_code"], 0, "{e}");
                    break;
                }
            }
            Got::Json(_) => {}
            other => panic!("{other:?} after {} lines", lines.len()),
        }
        if !cut_master && lines.len() >= 20_000 {
            cut_master = true;
            kill_control_masters(&remote.tmp.path().join("data"));
        }
        if !cut_host && lines.len() >= 50_000 {
            cut_host = true;
            remote.sshd.stop();
            std::thread::sleep(Duration::from_secs(2));
            remote.sshd.restart().unwrap();
        }
    }
    assert_eq!(lines.len(), 100_000, "every line, once");
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line, &format!("line {}", i + 1), "in order");
    }
    let disconnects = statuses.iter().filter(|s| *s == "disconnected").count();
    assert!(
        disconnects >= 1,
        "it passed through disconnected: {statuses:?}"
    );
    let hosts = remote.hub.get("/api/hosts").json();
    let ours = hosts["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == "local-ssh")
        .unwrap()
        .clone();
    assert!(
        ours["workers"]["reconnects"].as_u64().unwrap() >= 1,
        "{ours}"
    );
    assert!(
        ours["workers"]["bytes"].as_u64().unwrap() >= 988_895,
        "{ours}"
    );
}

#[test]
fn a_program_that_ends_while_its_host_is_down_is_drained_then_its_exit_reported() {
    let Some(mut remote) = start(&[]) else { return };
    let hub = &remote.hub;
    let id = remote.worker(&[
        "sh",
        "-c",
        "echo started; sleep 2; echo 'after 1'; printf 'after 2 (no newline)'; exit 7",
    ]);
    let mut ws = hub.ws(&format!("/ws/{id}?since=0"));
    assert_eq!(next_output(&mut ws)["content"]["text"], "started");
    remote.sshd.stop();
    let down = ws.recv_until(T, |e| {
        e["type"] == "status" && e["status"] == "disconnected"
    });
    let status = down.last().unwrap();
    assert!(
        status["reason"]
            .as_str()
            .unwrap_or("")
            .contains("local-ssh"),
        "{status}"
    );
    // Input while the host is down is refused, never dropped in silence.
    let refused = hub.post_json(
        &format!("/api/workers/{id}/messages"),
        &json!({"content": "hello?"}),
    );
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert_eq!(refused.error_code(), "host_unreachable");
    std::thread::sleep(Duration::from_secs(3));
    remote.sshd.restart().unwrap();
    let rest = ws.recv_until(T, |e| e["type"] == "status" && e["status"] == "exited");
    assert_eq!(
        texts(&rest),
        ["after 1", "after 2 (no newline)"],
        "{rest:#?}"
    );
    assert_eq!(rest.last().unwrap()["exit_code"], 7);
}

#[test]
fn a_host_that_is_down_or_unknown_is_a_clear_error_at_creation() {
    let Some(remote) = start(&[]) else { return };
    let hub = &remote.hub;
    let project = remote.project();
    let down = hub.post_json(
        "/api/workers",
        &json!({"host": "down", "project_path": project, "command": ["cat"]}),
    );
    assert_eq!(down.status, 503, "{}", down.text());
    assert_eq!(down.error_code(), "host_unreachable");
    let unknown = hub.post_json(
        "/api/workers",
        &json!({"host": "user@elsewhere", "project_path": project, "command": ["cat"]}),
    );
    assert_eq!(unknown.status, 400, "{}", unknown.text());
    assert!(
        unknown.text().contains("--allow-adhoc-hosts"),
        "{}",
        unknown.text()
    );
    let relative = hub.post_json(
        "/api/workers",
        &json!({"host": "local-ssh", "project_path": "project", "command": ["cat"]}),
    );
    assert_eq!(relative.status, 400, "{}", relative.text());
    let missing = hub.post_json(
        "/api/workers",
        &json!({"host": "local-ssh", "project_path": "/no/such/folder", "command": ["cat"]}),
    );
    assert_eq!(missing.status, 400, "{}", missing.text());
    assert!(
        missing.text().contains("not a folder on host"),
        "{}",
        missing.text()
    );
    let no_program = hub.create_worker(json!({
        "host": "local-ssh", "project_path": project, "command": ["no-such-program-here"],
    }));
    let view = hub.wait_status(&no_program, |s| s == "error", T);
    assert!(
        view["error"]
            .as_str()
            .unwrap_or("")
            .contains("was not found on this host"),
        "{view}"
    );
}

#[test]
fn project_roots_are_checked_on_the_host_after_resolving_symlinks() {
    let tmp_root = TempDir::new("wh-remote-root").unwrap();
    let inside = tmp_root.subdir("inside").unwrap();
    let Some(remote) = start(&["--project-root", inside.to_str().unwrap()]) else {
        return;
    };
    let hub = &remote.hub;
    let outside = remote.project();
    let refused = hub.post_json(
        "/api/workers",
        &json!({"host": "local-ssh", "project_path": outside, "command": ["cat"]}),
    );
    assert_eq!(refused.status, 403, "{}", refused.text());
    // A link inside that points outside is outside.
    let link = inside.join("link");
    std::os::unix::fs::symlink(&outside, &link).unwrap();
    let refused = hub.post_json(
        "/api/workers",
        &json!({"host": "local-ssh", "project_path": link, "command": ["cat"]}),
    );
    assert_eq!(refused.status, 403, "{}", refused.text());
    let id = hub.create_worker(json!({
        "host": "local-ssh", "project_path": inside, "command": ["pwd"],
    }));
    let view = hub.wait_status(&id, |s| s == "exited", T);
    assert_eq!(view["exit_code"], 0, "{view}");
    let events = hub.history(&id);
    assert_eq!(
        texts(&events),
        [inside.canonicalize().unwrap().display().to_string()]
    );
}

#[test]
fn a_real_claude_code_session_on_the_host_asks_runs_its_tool_and_ends_its_turns() {
    if cli_path("claude").is_none() {
        println!("skipped: claude is not installed (run `make clis`)");
        return;
    }
    let Some(remote) = start(&[]) else { return };
    let hub = &remote.hub;
    let mock = MockLlm::start(Behaviour::tool_then_text(
        "touch made-on-the-host.txt",
        "MOCK saw the tool result: {tool_output}",
    ))
    .unwrap();
    let home = remote.tmp.subdir("claude-home").unwrap();
    let project = remote.project();
    // Nothing of this server's environment goes to the host: the worker says what
    // its CLI needs there (here, the mock's address and a key).
    let env = env_object(mock.claude_env(&home).unwrap());
    let id = hub.create_worker(json!({
        "name": "remote-claude", "ai_cli_type": "claude", "host": "local-ssh",
        "project_path": project, "env": env,
    }));
    let view = hub.worker(&id);
    assert_eq!(view["live_session"], true, "{view}");
    assert_eq!(view["host"], "local-ssh", "{view}");
    let mut ws = hub.ws(&format!("/ws/{id}?since=0"));
    ws.send_json(&json!({"type": "message", "content": "please create the file"}));
    let request = next_of(&mut ws, "approval_request");
    assert_eq!(request["tool_name"], "Bash", "{request}");
    assert_eq!(request["summary"], "touch made-on-the-host.txt");
    let pgid = hub.worker(&id)["pid"]
        .as_u64()
        .expect("its group on the host");
    assert!(
        group_members(pgid).iter().any(|p| p.contains("claude")),
        "{:?}",
        group_members(pgid)
    );
    ws.send_json(
        &json!({"type": "approval", "approval_id": request["approval_id"], "decision": "allow"}),
    );
    let events = turn_end(&mut ws);
    assert_eq!(outcome(&events), "completed", "{events:#?}");
    assert!(
        project.join("made-on-the-host.txt").exists(),
        "the tool ran there"
    );
    let events = hub.history(&id);
    assert!(
        events.iter().any(|e| e["type"] == "output"
            && e["content"]["kind"] == "tool_use"
            && e["content"]["name"] == "Bash"),
        "{events:#?}"
    );
    // A second turn in the same live session, then deletion ends it on the host.
    ws.send_json(&json!({"type": "message", "content": "again"}));
    let request = next_of(&mut ws, "approval_request");
    ws.send_json(&json!({"type": "approval", "approval_id": request["approval_id"], "decision": "deny", "message": "enough"}));
    let events = turn_end(&mut ws);
    assert_eq!(hub.worker(&id)["turns"], 2, "{events:#?}");
    assert_eq!(hub.delete(&format!("/api/workers/{id}")).status, 200);
    let deadline = Instant::now() + T;
    while !group_members(pgid).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(group_members(pgid), Vec::<String>::new());
    assert_eq!(remote.spools(&id), Vec::<PathBuf>::new());
}

#[test]
fn a_crash_of_the_server_does_not_leave_the_remote_program_running() {
    let Some(mut remote) = start(&[]) else { return };
    let id = remote.worker(&["sh", "-c", "echo up; exec sleep 300"]);
    let mut ws = remote.hub.ws(&format!("/ws/{id}?since=0"));
    assert_eq!(next_output(&mut ws)["content"]["text"], "up");
    let pgid = remote.hub.worker(&id)["pid"].as_u64().unwrap();
    remote.hub.crash();
    assert!(
        !group_members(pgid).is_empty(),
        "on a real host the program outlives a crash of the server"
    );
    remote.restart_hub();
    assert_eq!(
        wait_gone(pgid, T),
        Vec::<String>::new(),
        "ended at the restart"
    );
    assert_eq!(remote.hub.worker(&id)["status"], "interrupted");
}

/// Waits until no process of group `pgid` is left (or `within` passed); what is left.
fn wait_gone(pgid: u64, within: Duration) -> Vec<String> {
    let deadline = Instant::now() + within;
    while !group_members(pgid).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    group_members(pgid)
}

#[test]
fn an_unfinished_last_line_arrives_once_on_either_stream() {
    let Some(remote) = start(&[]) else { return };
    let id = remote.worker(&[
        "sh",
        "-c",
        "echo first; printf 'err partial' >&2; printf 'no newline'; sleep 1",
    ]);
    let view = remote.hub.wait_status(&id, |s| s == "exited", T);
    assert_eq!(view["exit_code"], 0, "{view}");
    let mut got = texts(&remote.hub.history(&id));
    got.sort();
    assert_eq!(got, ["err partial", "first", "no newline"]);
}

#[test]
fn stop_and_delete_while_the_host_is_down_are_carried_out_once_it_is_back() {
    let Some(mut remote) = start(&[]) else { return };
    let stopped = remote.worker(&["sh", "-c", "echo up; exec sleep 300"]);
    let deleted = remote.worker(&["sh", "-c", "echo up; exec sleep 300"]);
    let mut groups = Vec::new();
    for id in [&stopped, &deleted] {
        let mut ws = remote.hub.ws(&format!("/ws/{id}?since=0"));
        assert_eq!(next_output(&mut ws)["content"]["text"], "up");
        groups.push(remote.hub.worker(id)["pid"].as_u64().unwrap());
    }
    remote.sshd.stop();
    remote.hub.wait_status(&stopped, |s| s == "disconnected", T);
    let answer = remote
        .hub
        .post_json(&format!("/api/workers/{stopped}/stop"), &json!({}));
    assert!(answer.status < 300, "{}", answer.text());
    let view = remote.hub.wait_status(&stopped, |s| s == "exited", T);
    assert_eq!(
        view["signal"],
        Value::Null,
        "no kill is claimed that did not happen: {view}"
    );
    assert_eq!(
        remote.hub.delete(&format!("/api/workers/{deleted}")).status,
        200
    );
    remote.sshd.restart().unwrap();
    // The cleanups are tried again every 20 s: both are carried out within a round.
    for pgid in groups {
        assert_eq!(
            wait_gone(pgid, Duration::from_secs(40)),
            Vec::<String>::new()
        );
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !remote.spools(&deleted).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(remote.spools(&deleted), Vec::<PathBuf>::new());
}

#[test]
fn a_workers_env_is_its_programs_alone_and_cannot_break_the_wrapper() {
    let Some(remote) = start(&[]) else { return };
    let hub = &remote.hub;
    // No /bin in PATH, and an IFS that would cut any unquoted number.
    let id = hub.create_worker(json!({
        "host": "local-ssh", "project_path": remote.project(),
        "command": ["/bin/sh", "-c", "echo \"$PATH|$SECRET_TOKEN\"; exec /bin/sleep 300"],
        "env": {"PATH": "/opt/only-my-tools", "IFS": "0123456789", "SECRET_TOKEN": "s3cr'et $x"},
    }));
    let mut ws = hub.ws(&format!("/ws/{id}?since=0"));
    assert_eq!(
        next_output(&mut ws)["content"]["text"],
        "/opt/only-my-tools|s3cr'et $x"
    );
    let pgid = hub.worker(&id)["pid"].as_u64().expect("its group");
    assert!(
        group_members(pgid).iter().any(|p| p.contains("sleep 300")),
        "the recorded group is the program's: {:?}",
        group_members(pgid)
    );
    let spool = remote.spools(&id);
    assert!(
        !spool[0].join("env").exists(),
        "the environment file is gone once read"
    );
    assert_eq!(hub.delete(&format!("/api/workers/{id}")).status, 200);
    assert_eq!(wait_gone(pgid, T), Vec::<String>::new());
}

#[test]
fn queued_messages_of_a_per_turn_claude_on_the_host_each_get_their_turn_in_order() {
    if cli_path("claude").is_none() {
        println!("skipped: claude is not installed (run `make clis`)");
        return;
    }
    let Some(remote) = start(&[]) else { return };
    let mock = MockLlm::start(Behaviour::text("hello from the mock")).unwrap();
    let home = remote.tmp.subdir("claude-home").unwrap();
    let env = env_object(mock.claude_env(&home).unwrap());
    let id = remote.hub.create_worker(json!({
        "ai_cli_type": "claude", "host": "local-ssh", "session": "per-turn",
        "project_path": remote.project(), "env": env,
    }));
    let mut ws = remote.hub.ws(&format!("/ws/{id}?since=0"));
    for n in 1..=3 {
        ws.send_json(&json!({"type": "message", "content": format!("message {n}")}));
    }
    // Each turn's process starts on its host only after the one before ended (off the
    // broadcast thread), and none jumps the queue.
    let mut ended = Vec::new();
    while ended.len() < 3 {
        let events = turn_end(&mut ws);
        let last = events.last().unwrap();
        assert_eq!(outcome(&events), "completed", "{events:#?}");
        ended.push(last["last_turn"]["number"].as_u64().unwrap());
    }
    assert_eq!(ended, [1, 2, 3]);
    let messages: Vec<String> = remote
        .hub
        .history(&id)
        .iter()
        .filter(|e| e["type"] == "user_message" && e["state"] == "sent")
        .filter_map(|e| e["content"].as_str().map(str::to_string))
        .collect();
    assert_eq!(messages.first().map(String::as_str), Some("message 1"));
}

/// `git ARGS` in `dir` (the test host is this machine: its repositories are here too).
fn git(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_worktree_on_the_host_is_made_diffed_merged_and_removed_by_git_there() {
    let Some(remote) = start(&[]) else { return };
    let hub = &remote.hub;
    let repo = remote.tmp.subdir("repo").unwrap();
    git(&repo, &["init", "--quiet", "--initial-branch=main"]);
    git(&repo, &["config", "user.name", "Test"]);
    git(&repo, &["config", "user.email", "test@example.com"]);
    std::fs::write(repo.join("a.txt"), "one\ntwo\n").unwrap();
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "--quiet", "-m", "base"]);
    let created = hub.post_json(
        "/api/workers",
        &json!({
            "name": "far", "host": "local-ssh", "project_path": repo, "isolation": "worktree",
            "command": ["sh", "-c", "echo changed >> a.txt; echo new > b.txt; echo done"],
        }),
    );
    assert_eq!(created.status, 201, "{}", created.text());
    let view = created.json();
    let id = view["id"].as_str().unwrap().to_string();
    let worktree = view["worktree"]["path"].as_str().unwrap().to_string();
    assert!(
        worktree.starts_with(&remote.sshd.home.display().to_string()),
        "made on the host, beside the spools: {worktree}"
    );
    let branch = view["worktree"]["branch"].as_str().unwrap().to_string();
    let view = hub.wait_status(&id, |s| s == "exited", T);
    assert_eq!(view["exit_code"], 0, "{view}");
    let diff = hub.get(&format!("/api/workers/{id}/diff")).json();
    let mut files: Vec<(String, String)> = diff["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().into(),
                f["status"].as_str().unwrap().into(),
            )
        })
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            ("a.txt".into(), "modified".into()),
            ("b.txt".into(), "new".into())
        ],
        "{diff}"
    );
    assert!(
        diff["diff"].as_str().unwrap_or("").contains("+changed"),
        "{diff}"
    );
    assert!(
        git(&repo, &["status", "--porcelain"]).is_empty(),
        "the checkout is untouched"
    );
    let merged = hub.post_json(&format!("/api/workers/{id}/merge"), &json!({}));
    assert_eq!(merged.status, 200, "{}", merged.text());
    assert_eq!(
        std::fs::read_to_string(repo.join("a.txt")).unwrap(),
        "one\ntwo\nchanged\n"
    );
    let deleted = hub.delete(&format!("/api/workers/{id}?keep_branch=false"));
    assert_eq!(deleted.status, 200, "{}", deleted.text());
    assert!(!git(&repo, &["worktree", "list"]).contains(&worktree));
    assert!(git(&repo, &["branch", "--list", &branch]).trim().is_empty());
    assert!(!Path::new(&worktree).exists());
}
