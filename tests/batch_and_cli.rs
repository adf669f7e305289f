//! `workerhub batch` and the command-line client, run as a user would: the real binary,
//! its own server or a running one, real CLIs against the mock model API.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::TempDir;
use support::mock_llm::{Behaviour, MockLlm, cli_path};
use support::server::Workerhub;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_workerhub")
}

fn run_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(bin())
        .current_dir(dir)
        .args(args)
        .env_remove("WORKERHUB_TOKEN")
        .env_remove("WORKERHUB_URL")
        // Servers this test starts announce themselves here, not in the user's folders.
        .env("XDG_RUNTIME_DIR", dir)
        .envs(env.iter().copied())
        .output()
        .expect("run workerhub")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Processes whose command line mentions `needle` (other than this test).
fn processes_with(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmd) = std::fs::read(entry.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(needle) && !cmd.contains("batch_and_cli") {
                found.push(cmd);
            }
        }
    }
    found
}

#[test]
fn twenty_batch_runs_of_a_ten_message_script_all_pass_and_leave_nothing_behind() {
    let tmp = TempDir::new("wh-batch").unwrap();
    let messages: Vec<Value> = (1..=10)
        .map(|i| json!({"role": "user", "content": format!("line {i}"), "expect": {"contains": format!("line {i}")}}))
        .collect();
    let script = json!({
        "metadata": {"title": "echo ten", "description": "cat repeats", "ai_cli_type": "command", "command": ["cat"]},
        "messages": messages,
    });
    std::fs::write(tmp.path().join("script.json"), script.to_string()).unwrap();
    // The batch's own server keeps its data under TMPDIR: pointing that here tells its
    // processes and files apart from those of other tests running at the same time.
    let tmpdir = tmp.path().to_str().unwrap();
    let own_servers = format!("{tmpdir}/workerhub-batch-");
    for run in 0..20 {
        let report = format!("report-{run}.json");
        let started = Instant::now();
        let out = run_in(
            tmp.path(),
            &[
                "batch",
                "script.json",
                "--report",
                &report,
                "--quiet-ms",
                "150",
            ],
            &[("TMPDIR", tmpdir)],
        );
        let took = started.elapsed();
        assert!(
            out.status.success(),
            "run {run}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        let report: Value =
            serde_json::from_slice(&std::fs::read(tmp.path().join(&report)).unwrap()).unwrap();
        assert_eq!(report["totals"]["succeeded"], 10);
        assert_eq!(report["messages"][3]["final_text"], "line 4\n");
        let turns: f64 = report["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["duration_seconds"].as_f64().unwrap())
            .sum();
        println!("run {run}: {took:?} in all, {turns:.2}s of turns");
        // Nothing left: no server process, and its port no longer answers.
        let port = report["server"]["port"].as_u64().unwrap() as u16;
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "port {port} is closed"
        );
        assert!(
            processes_with(&own_servers).is_empty(),
            "{:?}",
            processes_with(&own_servers)
        );
        let left: Vec<_> = std::fs::read_dir(tmp.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with("workerhub-batch-"))
            .collect();
        assert!(left.is_empty(), "the server's data is gone: {left:?}");
        assert!(report["server"]["version"].is_string());
        assert!(report["started_at"].is_string() && report["finished_at"].is_string());
    }
}

#[test]
fn a_failed_expectation_exits_1_and_a_broken_script_exits_2() {
    let tmp = TempDir::new("wh-batch-fail").unwrap();
    let script = json!({
        "metadata": {"ai_cli_type": "command", "command": ["cat"]},
        "messages": [
            {"role": "user", "content": "fine"},
            {"role": "user", "content": "not what you expect", "expect": {"contains": "something else"}},
        ],
    });
    std::fs::write(tmp.path().join("s.json"), script.to_string()).unwrap();
    let out = run_in(tmp.path(), &["batch", "s.json", "--quiet"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let report: Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join("batch_test_report.json")).unwrap())
            .unwrap();
    assert_eq!(report["messages"][0]["success"], true);
    assert_eq!(report["messages"][1]["success"], false);
    assert_eq!(report["messages"][1]["index"], 2);
    assert!(
        report["messages"][1]["failure_reason"]
            .as_str()
            .unwrap()
            .contains("something else")
    );
    assert_eq!(report["totals"]["failed"], 1);

    std::fs::write(
        tmp.path().join("broken.json"),
        "{\n  \"messages\": [\n    {\"content\": \"x\",}\n  ]\n}",
    )
    .unwrap();
    let out = run_in(tmp.path(), &["batch", "broken.json"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("line 3") && err.contains("column"), "{err}");
    let out = run_in(tmp.path(), &["batch", "missing.json"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("cannot read"));
    // --json puts the report on stdout.
    std::fs::write(
        tmp.path().join("ok.json"),
        json!({"metadata": {"command": ["cat"]}, "messages": [{"content": "hi"}]}).to_string(),
    )
    .unwrap();
    let out = run_in(tmp.path(), &["batch", "ok.json", "--json"], &[]);
    assert!(out.status.success());
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["totals"]["succeeded"], 1);
}

fn claude_env_object(mock: &MockLlm, home: &Path) -> Value {
    let env: serde_json::Map<String, Value> = mock
        .claude_env(home)
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    Value::Object(env)
}

#[test]
fn a_multi_agent_script_routes_each_message_to_its_claude_worker() {
    let Some(claude) = cli_path("claude") else {
        println!("skipped: claude is not installed (run `make clis`)");
        return;
    };
    let tmp = TempDir::new("wh-batch-agents").unwrap();
    let home = tmp.subdir("home").unwrap();
    let project = tmp.subdir("project").unwrap();
    let mock = MockLlm::start(Behaviour::text("Hello from the mock model.")).unwrap();
    let script = json!({
        "metadata": {
            "title": "two agents", "description": "alice and bob",
            "ai_cli_type": "claude", "project_path": project, "allowed_tools": ["Bash"],
            "env": claude_env_object(&mock, &home),
        },
        "messages": [
            {"role": "user", "content": "@alice introduce yourself", "expect": {"contains": "mock model"}},
            {"role": "user", "content": "@bob and you?"},
            {"role": "user", "content": "@alice once more"},
        ],
    });
    std::fs::write(tmp.path().join("agents.json"), script.to_string()).unwrap();
    let out = run_in(
        tmp.path(),
        &["batch", "agents.json", "--quiet"],
        &[("CLAUDE_BINARY", claude.to_str().unwrap())],
    );
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let report: Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join("batch_test_report.json")).unwrap())
            .unwrap();
    let m = report["messages"].as_array().unwrap();
    assert_eq!(m[0]["worker"], "alice");
    assert_eq!(m[1]["worker"], "bob");
    assert_eq!(m[2]["worker"], "alice");
    assert_eq!(m[0]["worker_id"], m[2]["worker_id"], "alice is one worker");
    assert_ne!(m[0]["worker_id"], m[1]["worker_id"], "bob is another");
    assert_eq!(
        m[0]["content"], "introduce yourself",
        "the @name is not sent"
    );
    let prompts: Vec<String> = mock
        .model_requests()
        .iter()
        .filter_map(|r| {
            r.body_contains("introduce yourself")
                .then(|| "alice".to_string())
                .or_else(|| r.body_contains("and you?").then(|| "bob".to_string()))
        })
        .collect();
    assert!(prompts.contains(&"alice".to_string()) && prompts.contains(&"bob".to_string()));
}

#[test]
fn exec_prints_both_streams_and_exits_with_the_remote_code() {
    let hub = Workerhub::start(&[]);
    let token = hub.token.clone().unwrap();
    let url = format!("http://{}", hub.addr());
    let out = Command::new(bin())
        .args([
            "exec",
            "--url",
            &url,
            "--token",
            &token,
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 3",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(text(&out.stdout), "out\n");
    assert_eq!(text(&out.stderr), "err\n");
    let out = Command::new(bin())
        .args([
            "exec",
            "--url",
            &url,
            "--token",
            &token,
            "--timeout",
            "0.5",
            "--",
            "sleep",
            "30",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(124),
        "a timeout exits like timeout(1)"
    );
    // Errors from the server are one clear line and a non-zero exit.
    let out = Command::new(bin())
        .args(["rm", "nobody", "--url", &url, "--token", &token])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("no worker `nobody`") && err.contains("404"),
        "{err}"
    );
    let out = Command::new(bin())
        .args(["workers", "--url", &url, "--token", "wrong-token-0000000"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("401"), "{err}");
    assert!(err.contains("rejected the token from --token"), "{err}");
    let out = Command::new(bin())
        .args(["status", "--url", "http://127.0.0.1:1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("cannot reach"));
}

#[test]
fn the_client_manages_workers_and_tasks() {
    let hub = Workerhub::start(&[]);
    let token = hub.token.clone().unwrap();
    let url = format!("http://{}", hub.addr());
    // The connection flags go before anything after `--`.
    let client = |args: &[&str]| -> Output {
        // `tasks` has its own subcommands, which take the flags.
        let at = if args[0] == "tasks" { 2 } else { 1 };
        let mut all = args[..at].to_vec();
        all.extend(["--url", &url, "--token", &token]);
        all.extend(&args[at..]);
        Command::new(bin()).args(&all).output().unwrap()
    };
    let project = std::env::temp_dir();
    let out = client(&[
        "create",
        "echoer",
        "--path",
        project.to_str().unwrap(),
        "--kind",
        "command",
        "--",
        "cat",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let list = text(&client(&["workers"]).stdout);
    assert!(
        list.contains("echoer") && list.contains("running"),
        "{list}"
    );
    let status = text(&client(&["status"]).stdout);
    assert!(
        status.contains("workers") && status.contains("1 running"),
        "{status}"
    );
    let out = client(&["send", "echoer", "ping me back", "--quiet-ms", "300"]);
    assert!(
        out.status.success(),
        "{:?}: {}{}",
        out.status,
        text(&out.stderr),
        text(&out.stdout)
    );
    assert!(
        text(&out.stdout).contains("ping me back"),
        "{}",
        text(&out.stdout)
    );
    let out = client(&["tasks", "list"]);
    assert!(text(&out.stdout).contains("no tasks"));
    let out = client(&["rm", "echoer"]);
    assert!(out.status.success());
    assert!(!text(&client(&["workers"]).stdout).contains("echoer"));
}

#[test]
fn send_and_watch_show_a_claude_turn_as_readable_text() {
    let Some(claude) = cli_path("claude") else {
        println!("skipped: claude is not installed (run `make clis`)");
        return;
    };
    let tmp = TempDir::new("wh-cli-claude").unwrap();
    let home = tmp.subdir("home").unwrap();
    let project: PathBuf = tmp.subdir("project").unwrap();
    let mock = MockLlm::start(Behaviour::ToolThenText {
        command: "echo hello-from-tool".into(),
        final_text: "The command printed: {tool_output}".into(),
        thinking: Some("I will run it.".into()),
    })
    .unwrap();
    let hub = Workerhub::start(&["--claude-binary", claude.to_str().unwrap()]);
    let id = hub.create_worker(json!({
        "name": "cc", "ai_cli_type": "claude", "project_path": project,
        "allowed_tools": ["Bash"], "env": claude_env_object(&mock, &home),
    }));
    let token = hub.token.clone().unwrap();
    let url = format!("http://{}", hub.addr());
    let out = Command::new(bin())
        .args([
            "send",
            "cc",
            "Run the command",
            "--url",
            &url,
            "--token",
            &token,
        ])
        .output()
        .unwrap();
    let shown = text(&out.stdout);
    assert!(out.status.success(), "{shown}{}", text(&out.stderr));
    assert!(
        shown.contains("⚙ Bash: echo hello-from-tool"),
        "a tool call is one line: {shown}"
    );
    assert!(
        shown.contains("The command printed: hello-from-tool"),
        "the answer: {shown}"
    );
    assert!(shown.contains("— done"), "{shown}");
    assert!(!shown.contains("\"type\""), "no raw JSON: {shown}");

    // watch replays the same turn readably (it runs until stopped).
    let mut watch = Command::new(bin())
        .args([
            "watch", &id, "--since", "0", "--url", &url, "--token", &token,
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let _ = watch.kill();
    let out = watch.wait_with_output().unwrap();
    let shown = text(&out.stdout);
    assert!(shown.contains("> Run the command"), "{shown}");
    assert!(shown.contains("⚙ Bash: echo hello-from-tool"), "{shown}");
    assert!(
        shown.contains("The command printed: hello-from-tool"),
        "{shown}"
    );
}
