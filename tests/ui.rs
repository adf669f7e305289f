//! The page, in a real browser: each test starts the real workerhub binary (and, for
//! Claude Code, the mock model API and the real `claude` CLI) and runs one script of
//! `tests/ui/` with node, which drives the system Chromium through playwright-core.
//! Screenshots go to `target/ui-screenshots/`.
//!
//! Needs `node`, `npm install --prefix tests/ui` (playwright-core) and Chromium
//! (`/usr/bin/chromium`, or `WORKERHUB_CHROMIUM=PATH`). Without them every test passes
//! after one line saying the UI tests were skipped.
//!
//! A script asks this harness for things it cannot do from the browser by printing a
//! line `@@ COMMAND`; the answer goes back on its stdin (see `tests/ui/lib.mjs`).

mod support;

use std::cell::RefCell;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use support::TempDir;
use support::mock_llm::{Behaviour, MockLlm, cli_path};
use support::server::Workerhub;
use support::sshd::Sshd;

/// Longest a script may run before it is killed and the test fails.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(150);

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

struct Browser {
    node: PathBuf,
    chromium: PathBuf,
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// What the UI tests need, or None after saying (once) why they are skipped.
fn browser() -> Option<Browser> {
    static SKIP_NOTE: Once = Once::new();
    let chromium = std::env::var_os("WORKERHUB_CHROMIUM")
        .map(PathBuf::from)
        .filter(|p| p.is_file())
        .or_else(|| {
            ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
                .iter()
                .map(PathBuf::from)
                .find(|p| p.is_file())
        })
        .or_else(|| find_on_path("chromium"))
        .or_else(|| find_on_path("chromium-browser"));
    let node = find_on_path("node");
    let playwright = root().join("tests/ui/node_modules/playwright-core/package.json");
    let missing: Vec<&str> = [
        (chromium.is_none(), "Chromium (apt-get install chromium)"),
        (node.is_none(), "node"),
        (
            !playwright.is_file(),
            "playwright-core (npm install --prefix tests/ui)",
        ),
    ]
    .iter()
    .filter(|(gone, _)| *gone)
    .map(|(_, what)| *what)
    .collect();
    if !missing.is_empty() {
        SKIP_NOTE.call_once(|| {
            // Written to the real stderr, past the test harness's capture, so that
            // `make test` shows it.
            let _ = writeln!(
                std::io::stderr().lock(),
                "UI tests skipped: missing {}",
                missing.join(", ")
            );
        });
        return None;
    }
    Some(Browser {
        node: node?,
        chromium: chromium?,
    })
}

/// One browser test at a time: they measure responsiveness, and two Chromiums on two
/// cores would mostly measure each other.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

fn screenshots_dir() -> PathBuf {
    let dir = root().join("target/ui-screenshots");
    let _ = std::fs::create_dir_all(&dir);
    dir
}

/// Runs `tests/ui/SCRIPT` against `url`. `on_request` answers the script's `@@` lines.
/// Panics with the script's output (and `log()`) if it fails.
fn run_script(
    browser: &Browser,
    script: &str,
    (url, token): (&str, &str),
    env: &[(&str, String)],
    mut on_request: impl FnMut(&str) -> String,
    log: impl Fn() -> String,
) {
    let started = Instant::now();
    let mut child = Command::new(&browser.node)
        .arg(root().join("tests/ui").join(script))
        .current_dir(root().join("tests/ui"))
        .env("WH_URL", url)
        .env("WH_TOKEN", token)
        .env("WH_CHROMIUM", &browser.chromium)
        .env("WH_SCREENSHOTS", screenshots_dir())
        .env(
            "WH_SCRIPT_TIMEOUT_MS",
            (SCRIPT_TIMEOUT.as_millis() - 5000).to_string(),
        )
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start node");
    let mut stdin = child.stdin.take().expect("stdin");
    let stdout = child.stdout.take().expect("stdout");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel::<Result<String, String>>();
    let tx_err = tx.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(Ok(line)).is_err() {
                break;
            }
        }
    });
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx_err.send(Err(line)).is_err() {
                break;
            }
        }
    });
    let mut output = String::new();
    let status = loop {
        if started.elapsed() > SCRIPT_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{script} took longer than {SCRIPT_TIMEOUT:?}\n--- output ---\n{output}\n--- server log ---\n{}",
                log()
            );
        }
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(Ok(line)) => {
                if let Some(request) = line.strip_prefix("@@ ") {
                    let answer = on_request(request.trim());
                    output.push_str(&format!("@@ {request} -> {answer}\n"));
                    let _ = writeln!(stdin, "{answer}");
                    let _ = stdin.flush();
                } else {
                    output.push_str(&line);
                    output.push('\n');
                }
            }
            Ok(Err(line)) => {
                output.push_str("! ");
                output.push_str(&line);
                output.push('\n');
            }
            Err(_) => {
                if let Ok(Some(status)) = child.try_wait() {
                    // Drain what is left.
                    while let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
                        output.push_str(&line.unwrap_or_else(|l| format!("! {l}")));
                        output.push('\n');
                    }
                    break status;
                }
            }
        }
    };
    println!("{output}");
    assert!(
        status.success(),
        "{script} failed ({status})\n--- output ---\n{output}\n--- server log (tail) ---\n{}",
        tail(&log(), 60)
    );
}

/// Where a script finds the server: its address and token.
struct Target {
    url: String,
    token: String,
}

impl Target {
    fn as_tuple(&self) -> (&str, &str) {
        (&self.url, &self.token)
    }
}

fn target(hub: &Workerhub) -> Target {
    Target {
        url: hub.origin(),
        token: hub.token.clone().unwrap_or_default(),
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn no_requests(request: &str) -> String {
    format!("unknown request {request}")
}

/// A workerhub on a given port (to come back where the page expects it after a
/// restart; `Workerhub::start_in` always asks for a free port).
struct FixedPortServer {
    child: Child,
    log_path: PathBuf,
}

impl FixedPortServer {
    fn start(data_dir: &Path, port: u16, args: &[&str]) -> FixedPortServer {
        let log_path = data_dir.with_extension("restart.log");
        let log = std::fs::File::create(&log_path).expect("log file");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let mut child = Command::new(env!("CARGO_BIN_EXE_workerhub"))
                .args(["--port", &port.to_string(), "--data-dir"])
                .arg(data_dir)
                .args(args)
                .env_remove("WORKERHUB_TOKEN")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::from(log.try_clone().expect("log")))
                .spawn()
                .expect("start workerhub");
            let stdout = child.stdout.take().expect("stdout");
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
            loop {
                match rx.recv_timeout(Duration::from_secs(10)) {
                    Ok(line) if line.starts_with("workerhub listening on") => {
                        return FixedPortServer { child, log_path };
                    }
                    Ok(_) => continue,
                    Err(_) => break,
                }
            }
            // The port may not be free yet: try again for a while.
            let _ = child.kill();
            let _ = child.wait();
            assert!(
                Instant::now() < deadline,
                "workerhub did not start again on port {port}:\n{}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

impl Drop for FixedPortServer {
    fn drop(&mut self) {
        // SIGTERM, as Ctrl-C would, then wait.
        let _ = Command::new("kill")
            .args(["-15", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The tool the mock asks Claude Code to run, and what it prints.
const TOOL_COMMAND: &str = "echo hello-from-tool > proof.txt; cat proof.txt";
const TOOL_OUTPUT: &str = "hello-from-tool";

#[test]
fn command_and_claude_workers_in_the_browser() {
    let Some(browser) = browser() else { return };
    let _one = one_at_a_time();
    let tmp = TempDir::new("wh-ui").expect("temp dir");
    let project = tmp.subdir("project").expect("project");
    let home = tmp.subdir("home").expect("home");
    let claude = cli_path("claude");
    let mut args: Vec<String> = Vec::new();
    if let Some(path) = &claude {
        args.push("--claude-binary".into());
        args.push(path.display().to_string());
    } else {
        println!(
            "Claude Code is not installed (make clis): the browser test covers command workers only"
        );
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let hub = Workerhub::start_in(&tmp.path().join("data"), &args);
    // Each model answer waits a little, so that a second message finds the worker busy.
    let mock = MockLlm::start(Behaviour::Delay(
        Duration::from_millis(500),
        Box::new(Behaviour::ToolThenText {
            command: TOOL_COMMAND.into(),
            final_text: "The command printed: {tool_output}\n\nThe **proof** is in:\n\n- first point\n- second point\n\n```sh\ncat proof.txt\n```".into(),
            thinking: Some("The user wants the proof file; I will run the command.".into()),
        }),
    ))
    .expect("mock model API");
    let mut env = vec![
        ("WH_PROJECT", project.display().to_string()),
        ("WH_TOOL_OUTPUT", TOOL_OUTPUT.to_string()),
    ];
    if claude.is_some() {
        let vars: Map<String, Value> = mock
            .claude_env(&home)
            .expect("claude env")
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        env.push(("WH_CLAUDE_ENV", Value::Object(vars).to_string()));
    }
    run_script(
        &browser,
        "conversation.mjs",
        target(&hub).as_tuple(),
        &env,
        no_requests,
        || hub.log(),
    );
    if claude.is_some() {
        assert!(
            project.join("proof.txt").exists(),
            "Claude Code really ran the command the page showed"
        );
    }
}

#[test]
fn a_reload_during_a_fast_stream_shows_every_event_once_in_order() {
    let Some(browser) = browser() else { return };
    let _one = one_at_a_time();
    let hub = Workerhub::start(&[]);
    let project = TempDir::new("wh-ui-reload").expect("temp dir");
    run_script(
        &browser,
        "reload.mjs",
        target(&hub).as_tuple(),
        &[("WH_PROJECT", project.path().display().to_string())],
        no_requests,
        || hub.log(),
    );
}

#[test]
fn a_terminal_worker_in_the_browser_types_resizes_and_survives_a_reload() {
    let Some(browser) = browser() else { return };
    let _one = one_at_a_time();
    let hub = Workerhub::start(&[]);
    let project = TempDir::new("wh-ui-terminal").expect("temp dir");
    run_script(
        &browser,
        "terminal.mjs",
        target(&hub).as_tuple(),
        &[("WH_PROJECT", project.path().display().to_string())],
        no_requests,
        || hub.log(),
    );
}

#[test]
fn the_page_reconnects_by_itself_after_a_server_restart() {
    let Some(browser) = browser() else { return };
    let _one = one_at_a_time();
    let hub = RefCell::new(Workerhub::start(&[]));
    let (port, data_dir, target) = {
        let hub = hub.borrow();
        (hub.port, hub.data_dir.clone(), target(&hub))
    };
    let token = target.token.clone();
    let project = TempDir::new("wh-ui-restart").expect("temp dir");
    let restarted: RefCell<Option<FixedPortServer>> = RefCell::new(None);
    let first_log = RefCell::new(String::new());
    run_script(
        &browser,
        "reconnect.mjs",
        target.as_tuple(),
        &[("WH_PROJECT", project.path().display().to_string())],
        |request| match request {
            "stop" => {
                *first_log.borrow_mut() = hub.borrow().log();
                match hub.borrow_mut().stop_with(15, Duration::from_secs(15)) {
                    Some(status) => format!("stopped {status}"),
                    None => "killed".into(),
                }
            }
            "start" => {
                let args = ["--token", token.as_str()];
                *restarted.borrow_mut() = Some(FixedPortServer::start(&data_dir, port, &args));
                "started".into()
            }
            other => no_requests(other),
        },
        || {
            let mut log = first_log.borrow().clone();
            if log.is_empty() {
                log = hub.borrow().log();
            }
            if let Some(server) = restarted.borrow().as_ref() {
                log.push_str("\n--- after the restart ---\n");
                log.push_str(&server.log());
            }
            log
        },
    );
}

#[test]
fn ten_thousand_events_render_without_freezing_the_page() {
    let Some(browser) = browser() else { return };
    let _one = one_at_a_time();
    let hub = Workerhub::start(&[]);
    let project = TempDir::new("wh-ui-bulk").expect("temp dir");
    run_script(
        &browser,
        "bulk.mjs",
        target(&hub).as_tuple(),
        &[("WH_PROJECT", project.path().display().to_string())],
        no_requests,
        || hub.log(),
    );
}

#[test]
fn a_server_with_a_token_asks_for_it_and_keeps_it_out_of_the_page() {
    let Some(browser) = browser() else { return };
    let _one = one_at_a_time();
    let hub = Workerhub::start(&[]);
    assert!(hub.token.is_some(), "the test server runs with a token");
    run_script(
        &browser,
        "auth.mjs",
        target(&hub).as_tuple(),
        &[],
        no_requests,
        || hub.log(),
    );
}

#[test]
fn every_kind_of_content_is_rendered_for_what_it_is() {
    let Some(browser) = browser() else { return };
    let _one = one_at_a_time();
    let fake = root().join("tests/ui/fake-claude.mjs");
    let fake = fake.display().to_string();
    let hub = Workerhub::start(&["--claude-binary", &fake]);
    let project = TempDir::new("wh-ui-render").expect("temp dir");
    run_script(
        &browser,
        "rendering.mjs",
        target(&hub).as_tuple(),
        &[("WH_PROJECT", project.path().display().to_string())],
        no_requests,
        || hub.log(),
    );
}

#[test]
fn the_create_form_shows_the_options_the_server_lists() {
    let Some(browser) = browser() else { return };
    let _one = one_at_a_time();
    // A Claude Code that answers --version, so that a kind with choice options is usable.
    let fake = root().join("tests/ui/fake-claude.mjs");
    let fake = fake.display().to_string();
    let hub = Workerhub::start(&["--claude-binary", &fake]);
    let project = TempDir::new("wh-ui-form").expect("temp dir");
    run_script(
        &browser,
        "create-form.mjs",
        target(&hub).as_tuple(),
        &[("WH_PROJECT", project.path().display().to_string())],
        no_requests,
        || hub.log(),
    );
}

#[test]
fn the_worker_list_and_the_footer_follow_the_server_without_polling() {
    let Some(browser) = browser() else { return };
    let _one = one_at_a_time();
    let hub = Workerhub::start(&["--status-interval", "2"]);
    let project = TempDir::new("wh-ui-live").expect("temp dir");
    run_script(
        &browser,
        "live-list.mjs",
        target(&hub).as_tuple(),
        &[("WH_PROJECT", project.path().display().to_string())],
        no_requests,
        || hub.log(),
    );
}

/// A Claude Code that asks before using a tool (fake-claude.mjs's `ask …` turns).
fn asking_claude() -> String {
    root()
        .join("tests/ui/fake-claude.mjs")
        .display()
        .to_string()
}

#[test]
fn tool_approvals_are_answered_from_the_page() {
    let Some(browser) = browser() else { return };
    let _one = one_at_a_time();
    let hub = Workerhub::start(&["--claude-binary", &asking_claude()]);
    let project = TempDir::new("wh-ui-approvals").expect("temp dir");
    run_script(
        &browser,
        "approvals.mjs",
        target(&hub).as_tuple(),
        &[("WH_PROJECT", project.path().display().to_string())],
        no_requests,
        || hub.log(),
    );
}

#[test]
fn a_newcomer_is_told_what_is_missing_and_what_happens() {
    let Some(browser) = browser() else { return };
    let _one = one_at_a_time();
    let tmp = TempDir::new("wh-ui-first").expect("temp dir");
    let root = tmp.subdir("projects").expect("projects");
    let project = root.join("app");
    std::fs::create_dir_all(&project).expect("project");
    let home = tmp.subdir("home").expect("home");
    let root_arg = root.display().to_string();
    // No key anywhere: none in the environment, no login in HOME.
    let home_env = home.display().to_string();
    let hub = Workerhub::start_with_env(
        &tmp.path().join("data"),
        &[
            "--claude-binary",
            &asking_claude(),
            "--project-root",
            &root_arg,
            "--status-interval",
            "2",
        ],
        &[
            ("HOME", home_env.as_str()),
            ("ANTHROPIC_API_KEY", ""),
            ("ANTHROPIC_AUTH_TOKEN", ""),
            ("CLAUDE_CODE_OAUTH_TOKEN", ""),
            ("WORKERHUB_CLAUDE_API_KEY", ""),
            ("CLAUDE_API_KEY", ""),
        ],
    );
    run_script(
        &browser,
        "first-contact.mjs",
        target(&hub).as_tuple(),
        &[
            ("WH_PROJECT", project.display().to_string()),
            ("WH_ROOT", root_arg.clone()),
        ],
        no_requests,
        || hub.log(),
    );
}

#[test]
fn without_any_ai_cli_the_page_says_so_and_tasks_go_to_command_workers() {
    let Some(browser) = browser() else { return };
    let _one = one_at_a_time();
    let tmp = TempDir::new("wh-ui-no-cli").expect("temp dir");
    let project = tmp.subdir("project").expect("project");
    let missing = tmp.path().join("not-installed");
    let missing = missing.display().to_string();
    let mut args: Vec<&str> = Vec::new();
    for flag in [
        "--claude-binary",
        "--codex-binary",
        "--gemini-binary",
        "--opencode-binary",
    ] {
        args.extend([flag, missing.as_str()]);
    }
    let hub = Workerhub::start_in(&tmp.path().join("data"), &args);
    run_script(
        &browser,
        "no-ai-cli.mjs",
        target(&hub).as_tuple(),
        &[("WH_PROJECT", project.display().to_string())],
        no_requests,
        || hub.log(),
    );
}

#[test]
fn acp_agents_show_their_plans_tool_calls_diffs_and_approvals() {
    let Some(browser) = browser() else { return };
    let _one = one_at_a_time();
    let hub = Workerhub::start(&[]);
    let project = TempDir::new("wh-ui-acp").expect("temp dir");
    run_script(
        &browser,
        "acp.mjs",
        target(&hub).as_tuple(),
        &[("WH_PROJECT", project.path().display().to_string())],
        no_requests,
        || hub.log(),
    );
}

#[test]
fn the_changes_view_follows_a_worktree_workers_turns_at_desktop_and_phone_width() {
    let Some(browser) = browser() else { return };
    let _one = one_at_a_time();
    let fake = root().join("tests/ui/fake-claude.mjs");
    let hub = Workerhub::start(&["--claude-binary", &fake.display().to_string()]);
    let tmp = TempDir::new("wh-ui-changes").expect("temp dir");
    let repo = tmp.subdir("repo").expect("repo");
    for args in [
        &["init", "--quiet", "--initial-branch=main"][..],
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "--quiet",
            "--allow-empty",
            "-m",
            "base",
        ],
    ] {
        let ok = Command::new("git")
            .args(args)
            .current_dir(&repo)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "git {args:?}");
    }
    run_script(
        &browser,
        "changes.mjs",
        target(&hub).as_tuple(),
        &[("WH_REPO", repo.display().to_string())],
        no_requests,
        || hub.log(),
    );
}

/// A server whose hosts file names the test's sshd `local-ssh`. When dropped it deletes
/// every worker, with the sshd up and each worker reached again, so that none leaves a
/// process or a spool on the (real) host, even when the script failed while the sshd
/// was stopped.
struct RemoteHub {
    hub: Workerhub,
    sshd: RefCell<Sshd>,
    sshd_down: std::cell::Cell<bool>,
}

impl Drop for RemoteHub {
    fn drop(&mut self) {
        if self.sshd_down.get() && self.sshd.borrow_mut().restart().is_ok() {
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline
                && self.hub.get("/api/workers").json()["workers"]
                    .as_array()
                    .is_some_and(|l| l.iter().any(|w| w["status"] == "disconnected"))
            {
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        let list = self.hub.get("/api/workers").json();
        for worker in list["workers"].as_array().into_iter().flatten() {
            if let Some(id) = worker["id"].as_str() {
                self.hub.delete(&format!("/api/workers/{id}"));
            }
        }
    }
}

#[test]
fn a_worker_on_another_host_is_created_from_the_form_and_shows_when_its_host_goes_away() {
    let Some(browser) = browser() else { return };
    let _one = one_at_a_time();
    let tmp = TempDir::new("wh-ui-remote").expect("temp dir");
    let sshd = match Sshd::start(tmp.path(), &["local-ssh"]) {
        Ok(sshd) => sshd,
        Err(why) => {
            println!("skipped: {why}");
            return;
        }
    };
    let clis = root().join("tests/clis/node_modules/.bin");
    let hosts = serde_json::json!({
        "local-ssh": {"ssh": "local-ssh", "config_file": sshd.home.join(".ssh/config"), "path": [clis]},
    });
    // A real Claude Code on the host, against a mock model whose tool call runs there.
    let mock = MockLlm::start(Behaviour::tool_then_text(
        "touch made-in-the-browser.txt",
        "MOCK saw the tool result: {tool_output}",
    ))
    .expect("mock model API");
    let claude_home = tmp.subdir("claude-home").expect("home");
    let mut env = vec![("WH_PROJECT", String::new())];
    if cli_path("claude").is_some() {
        let vars: Map<String, Value> = mock
            .claude_env(&claude_home)
            .expect("claude env")
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        env.push(("WH_CLAUDE_ENV", Value::Object(vars).to_string()));
    }
    let file = tmp.path().join("hosts.json");
    std::fs::write(&file, hosts.to_string()).expect("hosts file");
    let project = tmp.subdir("project").expect("project");
    env[0].1 = project.display().to_string();
    let remote = RemoteHub {
        hub: Workerhub::start_in(
            &tmp.path().join("data"),
            &["--hosts", &file.display().to_string()],
        ),
        sshd: RefCell::new(sshd),
        sshd_down: std::cell::Cell::new(false),
    };
    run_script(
        &browser,
        "remote.mjs",
        target(&remote.hub).as_tuple(),
        &env,
        |request| match request {
            "stop-sshd" => {
                remote.sshd.borrow_mut().stop();
                remote.sshd_down.set(true);
                "stopped".into()
            }
            "start-sshd" => match remote.sshd.borrow_mut().restart() {
                Ok(()) => {
                    remote.sshd_down.set(false);
                    "started".into()
                }
                Err(why) => format!("not started: {why}"),
            },
            other => no_requests(other),
        },
        || remote.hub.log(),
    );
}
