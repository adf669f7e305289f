//! The first five minutes and the everyday paper cuts: the command-line client finding
//! (or failing to find) its token, batch runs against a shared server, names and ids,
//! tasks, stopping, queued sends, and what the banner says.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::{Value, json};
use support::TempDir;
use support::server::Workerhub;

const T: Duration = Duration::from_secs(30);

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_workerhub")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs the client in `dir` with a clean environment of workerhub variables and `env`.
fn cli(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(bin())
        .current_dir(dir)
        .args(args)
        .env_remove("WORKERHUB_TOKEN")
        .env_remove("WORKERHUB_URL")
        .env_remove("WORKERHUB_DATA_DIR")
        .envs(env.iter().copied())
        .output()
        .expect("run workerhub")
}

fn fake_claude() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fake_cli/claude-fake")
        .display()
        .to_string()
}

fn runtime(hub: &Workerhub) -> String {
    hub.runtime_dir.display().to_string()
}

#[test]
fn the_client_finds_a_local_servers_token_and_says_where_it_looked_when_it_cannot() {
    let tmp = TempDir::new("wh-token").unwrap();
    let data = tmp.path().join("data");
    // A server as `make run` starts it: no token given, one generated in data/token.
    let hub = Workerhub::start_untouched(&data, &[]);
    let url = hub.origin();
    let elsewhere = tmp.subdir("elsewhere").unwrap();

    // From another folder: the running server's data folder is found.
    let out = cli(
        &elsewhere,
        &["workers", "--url", &url],
        &[("XDG_RUNTIME_DIR", &runtime(&hub))],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));

    // Nowhere to find it: the error lists every place looked at.
    let nowhere = tmp.subdir("nowhere").unwrap();
    let out = cli(
        &elsewhere,
        &["workers", "--url", &url],
        &[("XDG_RUNTIME_DIR", &nowhere.display().to_string())],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    for place in [
        "none was found",
        "--token (not given)",
        "WORKERHUB_TOKEN (not set)",
        "data/token (no such file)",
        "none found",
        "401",
    ] {
        assert!(err.contains(place), "missing {place:?} in: {err}");
    }
    assert_eq!(err.lines().count(), 1, "one line: {err}");

    // A token that is wrong is told apart from no token, naming where it came from.
    let out = cli(
        &elsewhere,
        &["workers", "--url", &url, "--token", "not-the-token-0000000"],
        &[],
    );
    assert!(text(&out.stderr).contains("rejected the token from --token"));
    let out = cli(
        &elsewhere,
        &["workers", "--url", &url],
        &[("WORKERHUB_TOKEN", "not-the-token-0000000")],
    );
    assert!(text(&out.stderr).contains("rejected the token from WORKERHUB_TOKEN"));

    // Batch mode against the server reads the token the same way.
    let script = elsewhere.join("script.json");
    std::fs::write(
        &script,
        json!({"metadata": {"command": ["cat"]}, "messages": [{"role": "user", "content": "hi", "expect": {"contains": "hi"}}]}).to_string(),
    )
    .unwrap();
    let out = cli(
        &elsewhere,
        &["batch", "script.json", "--server", &url, "--quiet"],
        &[("XDG_RUNTIME_DIR", &runtime(&hub))],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn a_batch_against_a_shared_server_runs_twice_and_leaves_no_worker_behind() {
    let tmp = TempDir::new("wh-batch-shared").unwrap();
    let hub = Workerhub::start(&[]);
    // A worker of the user's called `alice`: a run must not take or touch it.
    hub.create_worker(json!({"name": "alice", "project_path": "/tmp", "command": ["cat"]}));
    let script = tmp.path().join("script.json");
    std::fs::write(
        &script,
        json!({
            "metadata": {"command": ["cat"]},
            "messages": [
                {"role": "user", "content": "@alice one", "expect": {"contains": "one"}},
                {"role": "user", "content": "@bob two", "expect": {"contains": "two"}},
                {"role": "user", "content": "three", "expect": {"contains": "three"}},
            ],
        })
        .to_string(),
    )
    .unwrap();
    let token = hub.token.clone().unwrap();
    let url = hub.origin();
    for run in 1..=2 {
        let out = cli(
            tmp.path(),
            &[
                "batch",
                "script.json",
                "--server",
                &url,
                "--token",
                &token,
                "--quiet",
            ],
            &[],
        );
        assert!(out.status.success(), "run {run}: {}", text(&out.stderr));
        let names: Vec<String> = hub.get("/api/workers").json()["workers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["name"].as_str().unwrap_or("").to_string())
            .collect();
        assert_eq!(names, vec!["alice"], "run {run} left workers behind");
    }
    // --keep keeps them, under names of the run's own.
    let out = cli(
        tmp.path(),
        &[
            "batch",
            "script.json",
            "--server",
            &url,
            "--token",
            &token,
            "--quiet",
            "--keep",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let kept: Vec<String> = hub.get("/api/workers").json()["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap_or("").to_string())
        .filter(|n| n != "alice")
        .collect();
    assert_eq!(kept.len(), 3, "{kept:?}");
    assert!(kept.iter().all(|n| n.starts_with("batch-")), "{kept:?}");
    let report: Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join("batch_test_report.json")).unwrap())
            .unwrap();
    assert_eq!(report["messages"][0]["worker"], "alice");
    assert!(
        report["messages"][0]["worker_name"]
            .as_str()
            .unwrap()
            .ends_with("-alice")
    );
}

#[test]
fn names_a_url_cannot_carry_are_refused_and_ids_are_taken_by_their_start() {
    let hub = Workerhub::start(&[]);
    for bad in [
        "a/b",
        "..",
        "x/../y",
        "has space",
        "-dash",
        ".hidden",
        &"n".repeat(65),
    ] {
        let resp = hub.post_json(
            "/api/workers",
            &json!({"name": bad, "project_path": "/tmp", "command": ["cat"]}),
        );
        assert_eq!(resp.status, 400, "{bad:?}: {}", resp.text());
        assert!(
            resp.text().contains("letters, digits"),
            "{bad:?}: {}",
            resp.text()
        );
    }
    let id = hub
        .create_worker(json!({"name": "ok.name_1-2", "project_path": "/tmp", "command": ["cat"]}));
    assert_eq!(
        hub.get("/api/workers/ok.name_1-2").json()["id"],
        id.as_str()
    );
    // The start of an id, as with git (4 characters at least).
    assert_eq!(
        hub.get(&format!("/api/workers/{}", &id[..8])).json()["id"],
        id.as_str()
    );
    assert_eq!(
        hub.get(&format!("/api/workers/{}", &id[..5])).json()["id"],
        id.as_str()
    );
    assert_eq!(hub.get(&format!("/api/workers/{}", &id[..3])).status, 404);
    let resp = hub.post_json(
        &format!("/api/workers/{}/messages", &id[..6]),
        &json!({"content": "hi"}),
    );
    assert_eq!(resp.status, 202, "{}", resp.text());
}

#[test]
fn tasks_are_checked_at_once_say_how_they_went_and_speak_in_flags() {
    let tmp = TempDir::new("wh-tasks").unwrap();
    let hub = Workerhub::start(&["--gemini-binary", "/nonexistent/gemini"]);
    let token = hub.token.clone().unwrap();
    let url = hub.origin();
    let args = |extra: &[&str]| -> Vec<String> {
        let mut all: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        all.extend(["--url".into(), url.clone(), "--token".into(), token.clone()]);
        all
    };
    let run = |extra: &[&str]| {
        let all = args(extra);
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        cli(tmp.path(), &refs, &[])
    };

    // A kind that cannot run here is refused now, not at the first run.
    let resp = hub.post_json(
        "/api/tasks",
        &json!({"instruction": "x", "ai_cli_type": "gemini", "project_path": "/tmp"}),
    );
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert!(resp.text().contains("not available"), "{}", resp.text());
    // The command line names its own flags.
    let out = run(&["tasks", "add", "x"]);
    let err = text(&out.stderr);
    assert!(
        err.contains("`--worker`") && err.contains("`--kind`"),
        "{err}"
    );
    assert!(
        !err.contains("worker_id") && !err.contains("ai_cli_type"),
        "{err}"
    );

    // A task on a `command` worker: done once the program has the line; days and
    // weeks are intervals.
    hub.create_worker(json!({"name": "echo", "project_path": "/tmp", "command": ["cat"]}));
    let out = run(&[
        "tasks", "add", "ping", "--worker", "echo", "--every", "1d", "--quiet",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let id = text(&out.stdout).trim().to_string();
    assert_eq!(id.len(), 36, "only the id: {id}");
    let out = run(&[
        "tasks", "add", "weekly", "--worker", "echo", "--every", "1w",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Run it now, by the start of its id: it says where it ran and how to follow.
    let out = run(&["tasks", "run", &id[..6]]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    assert!(
        said.contains("on worker echo") && said.contains("workerhub watch echo"),
        "{said}"
    );
    let events = hub.history(hub.worker("echo")["id"].as_str().unwrap());
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "output" && e["content"]["text"] == "ping")
    );

    // A run that fails says why in the list.
    let resp = hub.post_json("/api/workers/echo/stop", &json!({}));
    assert_eq!(resp.status, 200);
    let out = run(&["tasks", "run", &id[..8]]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let out = run(&["tasks", "list"]);
    let list = text(&out.stdout);
    assert!(list.contains("failed: worker `echo` has exited"), "{list}");
}

#[test]
fn a_stop_answers_with_the_state_after_it_and_a_stopped_worker_is_named_plainly() {
    let hub = Workerhub::start(&["--max-workers", "1"]);
    let id = hub.create_worker(json!({"name": "echo", "project_path": "/tmp", "command": ["cat"]}));
    hub.wait_status(&id, |s| s == "running", T);
    let resp = hub.post_json("/api/workers/echo/stop", &json!({}));
    assert_eq!(resp.status, 200);
    let body = resp.json();
    assert_eq!(body["worker"]["status"], "exited", "{body}");
    let last = hub
        .history(&id)
        .into_iter()
        .rev()
        .find(|e| e["type"] == "status")
        .unwrap();
    assert_eq!(last["reason"], "stopped on request", "{last}");
    // The worker says so too (a page that loads now reads "stopped", not "exited 0").
    assert_eq!(hub.worker(&id)["reason"], "stopped on request");
    let resp = hub.post_json("/api/workers/echo/messages", &json!({"content": "hi"}));
    assert_eq!(resp.status, 409);
    let message = resp.json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(message.starts_with("worker `echo` has exited"), "{message}");
    assert!(!message.contains(&id), "{message}");

    // Starting a stopped worker counts against --max-workers like creating one.
    hub.create_worker(json!({"name": "other", "project_path": "/tmp", "command": ["cat"]}));
    let resp = hub.post_json("/api/workers/echo/start", &json!({}));
    assert_eq!(resp.status, 429, "{}", resp.text());
    assert_eq!(resp.error_code(), "too_many_workers");
}

#[test]
fn a_send_to_a_busy_worker_says_it_is_queued_and_where() {
    let tmp = TempDir::new("wh-queued").unwrap();
    let hub = Workerhub::start(&["--claude-binary", &fake_claude()]);
    hub.create_worker(json!({"name": "slow", "ai_cli_type": "claude", "project_path": "/tmp"}));
    let token = hub.token.clone().unwrap();
    let url = hub.origin();
    let first = {
        let (dir, url, token) = (tmp.path().to_path_buf(), url.clone(), token.clone());
        std::thread::spawn(move || {
            cli(
                &dir,
                &["send", "slow", "sleep 3", "--url", &url, "--token", &token],
                &[],
            )
        })
    };
    hub.wait_status("slow", |s| s == "busy", T);
    let out = cli(
        tmp.path(),
        &["send", "slow", "after", "--url", &url, "--token", &token],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("queued at position 1"), "{err}");
    assert!(text(&out.stdout).contains("echo: after"));
    assert!(first.join().unwrap().status.success());
}

#[test]
fn the_banner_counts_in_words_names_the_real_token_path_and_a_taken_port_leaves_nothing() {
    let tmp = TempDir::new("wh-banner").unwrap();
    let data = tmp.path().join("data");
    let mut hub = Workerhub::start_untouched(&data, &[]);
    let banner = hub.banner.join("\n");
    let token_path = data.canonicalize().unwrap().join("token");
    assert!(
        banner.contains(&format!("kept in {}", token_path.display())),
        "{banner}"
    );
    assert!(banner.contains("(0 workers restored)"), "{banner}");
    let token = std::fs::read_to_string(&token_path).unwrap();
    let resp = support::server::http_request(
        &hub.addr(),
        "POST",
        "/api/workers",
        &[
            ("Authorization", &format!("Bearer {}", token.trim())),
            ("Content-Type", "application/json"),
        ],
        json!({"name": "one", "project_path": "/tmp", "command": ["cat"]})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(resp.status, 201, "{}", resp.text());

    // Another server on the same port: a clear message, and no data folder made.
    let other: PathBuf = tmp.path().join("other-data");
    let out = Command::new(bin())
        .args(["--port", &hub.port.to_string(), "--data-dir"])
        .arg(&other)
        .env("XDG_RUNTIME_DIR", &hub.runtime_dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("the port is taken"), "{err}");
    assert!(err.contains("another workerhub (pid"), "{err}");
    assert!(err.contains("--port 0"), "{err}");
    assert!(!other.exists(), "a failed start left {}", other.display());

    hub.stop_with(15, T);
    let hub = Workerhub::start_untouched(&data, &[]);
    assert!(
        hub.banner.join("\n").contains("(1 worker restored)"),
        "{:?}",
        hub.banner
    );
}
