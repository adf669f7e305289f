//! Smoke test of the benchmark load generator (`workerhub-bench`, run in full by
//! `make bench`): every scenario with tiny sizes against the real workerhub binary, and
//! echo through the limit reference; the supervision scenarios with `approval-cli`, and
//! with the real Claude Code when it is installed. Checks only that each run completes
//! and reports sane counts; it never asserts a time.

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use support::server::Workerhub;

/// A binary of the bench crate (`bench/`, a member of this workspace), built beside
/// workerhub by `cargo test --workspace`.
fn bench_bin(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_workerhub")).with_file_name(name);
    assert!(
        path.exists(),
        "{} is missing: build the workspace first (cargo build --workspace)",
        path.display()
    );
    path
}
const T: Duration = Duration::from_secs(10);

/// Runs `workerhub-bench ARGS` (every scenario has its own deadline) and returns its
/// JSON answer.
fn bench(args: &[&str]) -> Value {
    let out = Command::new(bench_bin("workerhub-bench"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run workerhub-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "workerhub-bench {args:?} failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = stdout.lines().last().unwrap_or("");
    serde_json::from_str(last).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

/// `bench` against a test server, presenting its token when it has one.
fn bench_on(hub: &Workerhub, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    if let Some(token) = hub.token.as_deref() {
        all.extend(["--token", token]);
    }
    bench(&all)
}

fn running(hub: &Workerhub, id: &str) {
    let w = hub.wait_status(id, |s| s == "running", T);
    assert_eq!(w["status"], "running", "{w}");
}

fn n(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no count `{key}` in {v}"))
}

fn f(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("no figure `{key}` in {v}"))
}

#[test]
fn terminal_times_keystrokes_and_a_burst_to_several_viewers() {
    let md = std::env::temp_dir().join(format!("wh-bench-terminal-{}.md", std::process::id()));
    let out = bench(&[
        "terminal",
        "--workerhub",
        env!("CARGO_BIN_EXE_workerhub"),
        "--keystrokes",
        "20",
        "--bytes",
        "200000",
        "--viewers",
        "1,3",
        "--append",
        md.to_str().unwrap(),
    ]);
    let echo = &out["keystroke_echo_us"];
    assert!(echo["terminal"]["p50"].as_u64().unwrap() > 0, "{out}");
    assert!(echo["command"]["p50"].as_u64().unwrap() > 0, "{out}");
    let bursts = out["bursts"].as_array().unwrap();
    assert_eq!(bursts.len(), 2, "{out}");
    for burst in bursts {
        assert!(burst["events"].as_u64().unwrap() >= 1, "{out}");
        assert!(burst["program_mb_per_s"].as_f64().unwrap() > 0.0, "{out}");
    }
    let text = std::fs::read_to_string(&md).unwrap();
    let _ = std::fs::remove_file(&md);
    assert!(text.contains("## Terminal workers"), "{text}");
}

#[test]
fn emit_prints_numbered_stamped_lines() {
    let out = Command::new(bench_bin("workerhub-bench"))
        .args(["emit", "--lines", "3"])
        .output()
        .expect("run emit");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let seqs: Vec<&str> = text
        .lines()
        .map(|l| l.split(' ').next().unwrap_or(""))
        .collect();
    assert_eq!(seqs, ["1", "2", "3"], "{text}");
    assert!(text.lines().all(|l| {
        l.split(' ')
            .nth(1)
            .is_some_and(|t| t.parse::<u64>().is_ok())
    }));
}

#[test]
fn echo_round_trips_through_cat() {
    let hub = Workerhub::start(&[]);
    let id = hub.command_worker(&["cat"]);
    running(&hub, &id);
    let url = format!("ws://{}/ws/{id}", hub.addr());
    let v = bench_on(
        &hub,
        &[
            "echo",
            "--url",
            &url,
            "--n",
            "20",
            "--warmup",
            "5",
            "--timeout",
            "20",
        ],
    );
    assert_eq!(n(&v, "n"), 20, "{v}");
    assert!(
        f(&v, "p50_us") > 0.0 && f(&v, "p99_us") >= f(&v, "p50_us"),
        "{v}"
    );
}

#[test]
fn stream_receives_every_line_in_order() {
    let hub = Workerhub::start(&[]);
    let bench = bench_bin("workerhub-bench");
    let id = hub.command_worker(&[
        bench.to_str().expect("utf-8 path"),
        "emit",
        "--lines",
        "3000",
        "--wait-go",
    ]);
    running(&hub, &id);
    let url = format!("ws://{}/ws/{id}?since=0", hub.addr());
    let v = bench_on(
        &hub,
        &[
            "stream",
            "--url",
            &url,
            "--lines",
            "3000",
            "--timeout",
            "20",
        ],
    );
    assert_eq!(n(&v, "lines"), 3000, "{v}");
    assert_eq!(n(&v, "out_of_order"), 0, "{v}");
    assert!(f(&v, "events_per_sec") > 0.0, "{v}");
}

#[test]
fn fanout_delivers_every_line_to_every_client() {
    let hub = Workerhub::start(&[]);
    let bench = bench_bin("workerhub-bench");
    let id = hub.command_worker(&[
        bench.to_str().expect("utf-8 path"),
        "emit",
        "--lines",
        "200",
        "--wait-go",
    ]);
    running(&hub, &id);
    let url = format!("ws://{}/ws/{id}?since=0", hub.addr());
    let v = bench_on(
        &hub,
        &[
            "fanout",
            "--url",
            &url,
            "--clients",
            "8",
            "--lines",
            "200",
            "--timeout",
            "20",
        ],
    );
    assert_eq!(n(&v, "connected"), 8, "{v}");
    assert_eq!(n(&v, "complete_clients"), 8, "{v}");
    assert_eq!(n(&v, "delivered"), 8 * 200, "{v}");
    assert!(f(&v, "latency_p99_ms") >= f(&v, "latency_p50_ms"), "{v}");
}

#[test]
fn conns_holds_connections_and_reads_the_server_from_proc() {
    let hub = Workerhub::start(&[]);
    let id = hub.command_worker(&["cat"]);
    running(&hub, &id);
    let url = format!("ws://{}/ws/{id}", hub.addr());
    let pid = hub.pid().to_string();
    let v = bench_on(
        &hub,
        &[
            "conns",
            "--url",
            &url,
            "--clients",
            "30",
            "--pid",
            &pid,
            "--idle-secs",
            "0.2",
            "--timeout",
            "20",
        ],
    );
    assert_eq!(n(&v, "established"), 30, "{v}");
    assert_eq!(n(&v, "held"), 30, "{v}");
    assert!(
        n(&v, "threads") >= 30,
        "a reader thread per connection: {v}"
    );
    assert!(f(&v, "rss_mb") > 0.0, "{v}");
    assert!(f(&v, "idle_cpu_pct") >= 0.0, "{v}");
}

#[test]
fn http_gets_the_worker_list_with_keep_alive() {
    let hub = Workerhub::start(&[]);
    hub.command_worker(&["cat"]);
    let v = bench_on(
        &hub,
        &[
            "http",
            "--addr",
            &hub.addr(),
            "--threads",
            "2",
            "--secs",
            "0.3",
        ],
    );
    assert!(n(&v, "requests") > 0, "{v}");
    assert_eq!(n(&v, "errors"), 0, "{v}");
}

/// The workers the server has (the supervision scenarios delete theirs at the end).
fn worker_count(hub: &Workerhub) -> usize {
    let list = hub.get("/api/workers").json();
    list["workers"]
        .as_array()
        .unwrap_or_else(|| panic!("no worker list: {list}"))
        .len()
}

#[test]
fn approvals_are_timed_both_ways_through_approval_cli() {
    let cli = bench_bin("approval-cli");
    let hub = Workerhub::start(&["--claude-binary", cli.to_str().expect("utf-8 path")]);
    let v = bench_on(
        &hub,
        &[
            "supervision",
            "approvals",
            "--addr",
            &hub.addr(),
            "--turns",
            "3",
            "--asks",
            "4",
            "--viewers",
            "2",
            "--timeout",
            "20",
        ],
    );
    // Two counted turns (one warm-up) of four requests; two viewers saw each.
    assert_eq!(n(&v, "request_samples"), 8, "{v}");
    assert_eq!(n(&v, "answer_samples"), 8, "{v}");
    assert_eq!(n(&v, "request_all_viewers_samples"), 16, "{v}");
    assert_eq!(n(&v, "unstamped_answers"), 0, "{v}");
    for what in ["request", "answer", "request_all_viewers"] {
        let (p50, p99) = (
            f(&v, &format!("{what}_p50_us")),
            f(&v, &format!("{what}_p99_us")),
        );
        assert!(p50 > 0.0 && p99 >= p50, "{what}: {v}");
    }
    assert_eq!(worker_count(&hub), 0, "the scenario deletes its worker");
}

#[test]
fn turn_start_times_a_live_and_a_per_turn_claude() {
    let Some(claude) = support::mock_llm::cli_path("claude") else {
        println!("skipped: claude is not installed (run `make clis`)");
        return;
    };
    let hub = Workerhub::start(&["--claude-binary", claude.to_str().expect("utf-8 path")]);
    let v = bench_on(
        &hub,
        &[
            "supervision",
            "turn-start",
            "--addr",
            &hub.addr(),
            "--turns",
            "2",
            "--pause-secs",
            "0",
            "--timeout",
            "120",
        ],
    );
    for key in ["live", "per_turn"] {
        assert!(f(&v, &format!("{key}_median_ms")) > 0.0, "{v}");
        assert!(
            f(&v, &format!("{key}_text_median_ms")) >= f(&v, &format!("{key}_median_ms")),
            "the model's text comes after the turn's first event: {v}"
        );
        assert!(f(&v, &format!("{key}_first_turn_ms")) > 0.0, "{v}");
    }
    assert!(f(&v, "per_turn_over_live") > 0.0, "{v}");
    assert!(
        n(&v, "model_requests") >= 4,
        "a model request per turn at least: {v}"
    );
    assert_eq!(worker_count(&hub), 0, "the scenario deletes its workers");
}

/// The limit reference, killed however the test ends.
struct Reference(Child);

impl Drop for Reference {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn echo_round_trips_through_the_limit_reference() {
    let mut child = Reference(
        Command::new(bench_bin("ws-reference"))
            .args(["--port", "0", "--", "cat"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start ws-reference"),
    );
    let stdout = child.0.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("listening line");
    let addr = line
        .trim()
        .strip_prefix("ws-reference listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    let url = format!("ws://{addr}/");
    let v = bench(&[
        "echo",
        "--url",
        &url,
        "--proto",
        "raw",
        "--n",
        "20",
        "--warmup",
        "5",
        "--timeout",
        "20",
    ]);
    assert_eq!(n(&v, "n"), 20, "{v}");
}
