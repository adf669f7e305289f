//! The agent protocol on `/ws` and the REST routes that go with it (one-off commands,
//! tasks, status, metrics), against the real binary.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::TempDir;
use support::mock_llm::{Behaviour, MockLlm, cli_path};
use support::server::{Got, Workerhub, Ws};

const T: Duration = Duration::from_secs(30);

/// A `/ws` client that numbers its requests.
struct Agent {
    ws: Ws,
    next: u64,
    /// Messages that arrived while waiting for something else.
    pending: Vec<Value>,
}

impl Agent {
    fn connect(hub: &Workerhub) -> Agent {
        let mut ws = hub.ws("/ws");
        let ack = ws.recv(T);
        assert_eq!(ack["type"], "connection:ack", "{ack}");
        assert!(ack["payload"]["connection_id"].is_string());
        assert_eq!(ack["payload"]["server_version"], env!("CARGO_PKG_VERSION"));
        Agent {
            ws,
            next: 0,
            pending: Vec::new(),
        }
    }

    /// Sends a request; returns its id.
    fn send(&mut self, kind: &str, payload: Value, target: Option<&str>) -> String {
        self.next += 1;
        let id = format!("req-{}", self.next);
        let mut msg = json!({"id": id, "type": kind, "timestamp": "2026-11-23T00:00:00Z", "payload": payload});
        if let Some(t) = target {
            msg["target"] = t.into();
        }
        self.ws.send_json(&msg);
        id
    }

    /// The next message matching `want` (others are kept for later).
    fn wait_for(&mut self, want: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self.pending.iter().position(&want) {
            return self.pending.remove(i);
        }
        let deadline = Instant::now() + T;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.ws.next(left) {
                Got::Json(v) if want(&v) => return v,
                Got::Json(v) => self.pending.push(v),
                other => panic!("waiting: got {other:?}; pending {:#?}", self.pending),
            }
        }
    }

    /// The answer to request `id` of type `kind`.
    fn answer(&mut self, id: &str, kind: &str) -> Value {
        let v = self.wait_for(|v| v["correlation_id"] == id && v["type"] != "command:progress");
        assert_eq!(v["type"], kind, "{v}");
        assert!(
            v["id"].is_string() && v["id"] != id,
            "answers have their own id"
        );
        assert!(v["timestamp"].is_string());
        v
    }

    fn request(&mut self, kind: &str, payload: Value, answer: &str) -> Value {
        let id = self.send(kind, payload, None);
        self.answer(&id, answer)
    }
}

fn fake_claude() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fake_cli/claude-fake")
        .display()
        .to_string()
}

#[test]
fn create_subscribe_and_execute_on_an_agent_with_matched_answers() {
    let hub = Workerhub::start(&["--claude-binary", &fake_claude()]);
    let mut agent = Agent::connect(&hub);
    let created = agent.request(
        "agent:create",
        json!({"name": "alice", "ai_cli_type": "claude", "project_path": std::env::temp_dir()}),
        "agent:created",
    );
    let worker = created["payload"]["id"].as_str().unwrap().to_string();
    assert_eq!(created["payload"]["name"], "alice");

    let subscribed = agent.request(
        "agent:subscribe",
        json!({"worker_id": worker, "since": 0}),
        "agent:subscribed",
    );
    assert_eq!(subscribed["payload"]["worker_id"], worker.as_str());

    let exec = agent.send(
        "command:execute",
        json!({"content": "hello there"}),
        Some(&worker),
    );
    let result = agent.answer(&exec, "command:result");
    assert_eq!(result["payload"]["success"], true, "{result}");
    assert_eq!(result["payload"]["outcome"], "completed");
    assert_eq!(result["payload"]["text"], "echo: hello there");
    assert_eq!(result["payload"]["worker_id"], worker.as_str());
    let progress = agent
        .pending
        .iter()
        .filter(|v| v["type"] == "command:progress" && v["correlation_id"] == exec.as_str())
        .count();
    assert!(progress >= 2, "the turn's output came as command:progress");

    // The subscription delivered the agent's events, wrapped, with its id as source.
    let text = agent.wait_for(|v| {
        v["type"] == "agent:event"
            && v["payload"]["type"] == "output"
            && v["payload"]["content"]["kind"] == "text"
    });
    assert_eq!(text["source"], worker.as_str());
    assert_eq!(text["payload"]["content"]["text"], "echo: hello there");
    let seq = text["payload"]["seq"].as_u64().unwrap();
    assert_eq!(text["id"], format!("{worker}:{seq}"));

    // Status changes are pushed; queries are answered.
    let status = agent.request("agent:status", json!({"worker_id": worker}), "agent:status");
    assert_eq!(status["payload"]["status"], "idle");
    let all = agent.request("agent:list", json!({}), "agent:status");
    assert_eq!(all["payload"]["agents"].as_array().unwrap().len(), 1);
    let unsub = agent.request(
        "agent:unsubscribe",
        json!({"worker_id": worker}),
        "agent:unsubscribed",
    );
    assert_eq!(unsub["payload"]["was_subscribed"], true);
    let pong = agent.request("connection:ping", json!({}), "connection:pong");
    assert!(pong["payload"]["server_time"].is_string());
    let deleted = agent.request(
        "agent:delete",
        json!({"worker_id": worker}),
        "agent:stopped",
    );
    assert_eq!(deleted["payload"]["deleted"], true);
    let gone = agent.request("agent:status", json!({"worker_id": worker}), "agent:error");
    assert_eq!(gone["payload"]["code"], "not_found");
}

#[test]
fn fifty_clients_with_a_hundred_mixed_requests_each_get_exactly_one_answer_per_request() {
    let hub = Workerhub::start(&["--max-commands", "64"]);
    let connector = hub.connector();
    let clients: Vec<_> = (0..50)
        .map(|c| {
            let connector = connector.clone();
            std::thread::spawn(move || {
                let mut ws = connector.ws("/ws").unwrap();
                assert_eq!(ws.recv(T)["type"], "connection:ack");
                let mut ping_rtt = Vec::new();
                let mut exec_rtt = Vec::new();
                for i in 0..100 {
                    let id = format!("c{c}-r{i}");
                    let (kind, payload, final_kind) = match i % 3 {
                        0 => ("connection:ping", json!({}), "connection:pong"),
                        1 => ("system:status", json!({}), "system:status"),
                        _ => (
                            "command:execute",
                            json!({"argv": ["true"]}),
                            "command:result",
                        ),
                    };
                    let sent = Instant::now();
                    ws.send_json(
                        &json!({"id": id, "type": kind, "timestamp": "t", "payload": payload}),
                    );
                    let mut finals = 0;
                    loop {
                        let v = ws.recv(T);
                        if v["correlation_id"] != id.as_str() {
                            continue; // pushes to every client
                        }
                        if v["type"] == "command:progress" {
                            continue;
                        }
                        assert_eq!(v["type"], final_kind, "{v}");
                        finals += 1;
                        break;
                    }
                    assert_eq!(finals, 1);
                    match kind {
                        "connection:ping" => ping_rtt.push(sent.elapsed()),
                        "command:execute" => exec_rtt.push(sent.elapsed()),
                        _ => {}
                    }
                }
                // Nothing more comes for these requests.
                while let Got::Json(v) = ws.next(Duration::from_millis(200)) {
                    assert!(
                        !v["correlation_id"]
                            .as_str()
                            .unwrap_or("")
                            .starts_with(&format!("c{c}-")),
                        "a second answer: {v}"
                    );
                }
                (ping_rtt, exec_rtt)
            })
        })
        .collect();
    let mut pings = Vec::new();
    let mut execs = Vec::new();
    for client in clients {
        let (p, e) = client.join().expect("client");
        pings.extend(p);
        execs.extend(e);
    }
    let mean = |v: &[Duration]| v.iter().sum::<Duration>() / v.len() as u32;
    println!(
        "50 clients x 100 requests: mean round trip connection:ping {:?} ({} samples), command:execute `true` {:?} ({} samples)",
        mean(&pings),
        pings.len(),
        mean(&execs),
        execs.len()
    );
}

fn no_process_with(marker: &str) -> bool {
    let out = std::process::Command::new("pgrep")
        .args(["-f", marker])
        .output()
        .unwrap();
    out.stdout.is_empty()
}

#[test]
fn a_command_that_times_out_or_leaves_a_grandchild_finishes_and_leaves_nothing_behind() {
    let hub = Workerhub::start(&[]);
    let mut agent = Agent::connect(&hub);

    let started = Instant::now();
    let id = agent.send(
        "command:execute",
        json!({"argv": ["sleep", "100.101"], "timeout": 1}),
        None,
    );
    let result = agent.answer(&id, "command:result");
    let took = started.elapsed();
    assert_eq!(result["payload"]["success"], false);
    assert_eq!(result["payload"]["timed_out"], true);
    assert!(
        result["payload"]["error"]
            .as_str()
            .unwrap()
            .contains("timed out")
    );
    assert!(took < Duration::from_secs(2), "finished in {took:?}");
    assert!(
        no_process_with("sleep 100.101"),
        "the timed-out command is gone"
    );

    let started = Instant::now();
    let id = agent.send(
        "command:execute",
        json!({"argv": ["sh -c 'sleep 100.202 & echo started'"], "shell": true, "timeout": 1}),
        None,
    );
    let result = agent.answer(&id, "command:result");
    let took = started.elapsed();
    assert_eq!(result["payload"]["exit_code"], 0, "{result}");
    assert_eq!(result["payload"]["success"], true);
    assert_eq!(result["payload"]["output_data"][0]["text"], "started");
    assert_eq!(result["payload"]["outputs"], 1);
    assert!(took < Duration::from_secs(2), "finished in {took:?}");
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        no_process_with("sleep 100.202"),
        "the grandchild holding stdout is gone"
    );

    // Progress comes line by line.
    let id = agent.send(
        "command:execute",
        json!({"argv": ["sh", "-c", "echo one; echo two >&2; exit 3"]}),
        None,
    );
    let result = agent.answer(&id, "command:result");
    assert_eq!(result["payload"]["exit_code"], 3);
    assert_eq!(result["payload"]["success"], false);
    let lines: Vec<&Value> = agent
        .pending
        .iter()
        .filter(|v| v["type"] == "command:progress" && v["correlation_id"] == id.as_str())
        .collect();
    assert_eq!(lines.len(), 2);
    // The same over REST.
    let resp = hub.post_json(
        "/api/exec",
        &json!({"argv": ["sleep", "100.303"], "timeout": 0.5}),
    );
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json()["timed_out"], true);
    assert!(no_process_with("sleep 100.303"));
}

#[test]
fn malformed_envelopes_get_system_error_and_the_connection_stays_usable() {
    let hub = Workerhub::start(&[]);
    let mut agent = Agent::connect(&hub);
    let cases: Vec<(String, &str, Option<&str>)> = vec![
        ("not json".into(), "invalid_json", None),
        ("[1,2]".into(), "invalid_envelope", None),
        (
            json!({"type": "connection:ping"}).to_string(),
            "invalid_envelope",
            None,
        ),
        (
            json!({"id": 7, "type": "connection:ping"}).to_string(),
            "invalid_envelope",
            None,
        ),
        (
            json!({"id": "m1"}).to_string(),
            "invalid_envelope",
            Some("m1"),
        ),
        (
            json!({"id": "m2", "type": 5}).to_string(),
            "invalid_envelope",
            Some("m2"),
        ),
        (
            json!({"id": "m3", "type": "agent:fly"}).to_string(),
            "unknown_type",
            Some("m3"),
        ),
        (
            json!({"id": "m4", "type": "connection:ping", "payload": "x"}).to_string(),
            "invalid_envelope",
            Some("m4"),
        ),
        (
            json!({"id": "m5", "type": "agent:subscribe", "payload": {}}).to_string(),
            "bad_request",
            Some("m5"),
        ),
        (
            json!({"id": "m6", "type": "task:assign", "payload": {"instruction": 3}}).to_string(),
            "bad_request",
            Some("m6"),
        ),
    ];
    for (text, code, correlation) in cases {
        agent.ws.send_text(&text);
        let err = agent.wait_for(|v| v["type"].as_str().is_some_and(|t| t.ends_with(":error")));
        assert_eq!(err["payload"]["code"], code, "{text} -> {err}");
        match correlation {
            Some(id) => assert_eq!(err["correlation_id"], id, "{text}"),
            None => assert!(err.get("correlation_id").is_none(), "{text}"),
        }
    }
    let big =
        json!({"id": "big", "type": "connection:ping", "payload": {"blob": "x".repeat(2 << 20)}});
    agent.ws.send_json(&big);
    let err = agent.wait_for(|v| v["type"] == "error" || v["type"] == "system:error");
    assert!(err.to_string().contains("too_large"), "{err}");
    // Still usable.
    let pong = agent.request("connection:ping", json!({}), "connection:pong");
    assert_eq!(pong["type"], "connection:pong");
}

#[test]
fn batch_exec_returns_every_result_and_reports_progress_on_ws() {
    let hub = Workerhub::start(&[]);
    let mut agent = Agent::connect(&hub);
    let resp = hub.post_json(
        "/api/exec/batch",
        &json!({"concurrency": 2, "commands": [
            {"name": "ok", "argv": ["echo", "hi"]},
            {"name": "fails", "argv": ["sh", "-c", "exit 4"]},
            {"name": "slow", "argv": ["sleep", "5"], "timeout": 0.3},
        ]}),
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    let body = resp.json();
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(results[0]["name"], "ok");
    assert_eq!(results[0]["output_data"][0]["text"], "hi");
    assert_eq!(results[1]["exit_code"], 4);
    assert_eq!(results[2]["timed_out"], true);
    assert_eq!(body["success"], false);
    for _ in 0..3 {
        let p = agent
            .wait_for(|v| v["type"] == "command:progress" && v["payload"]["state"] == "finished");
        assert_eq!(p["payload"]["batch_id"], body["batch_id"]);
    }
}

#[test]
fn a_task_runs_on_a_real_claude_worker_and_survives_a_restart() {
    let Some(claude) = cli_path("claude") else {
        println!("skipped: claude is not installed (run `make clis`)");
        return;
    };
    let tmp = TempDir::new("wh-task").unwrap();
    let data = tmp.path().join("data");
    let home = tmp.subdir("home").unwrap();
    let project = tmp.subdir("project").unwrap();
    let mock = MockLlm::start(Behaviour::Delay(
        Duration::from_millis(600),
        Box::new(Behaviour::ToolThenText {
            command: "echo task-ran > task.txt; cat task.txt".into(),
            final_text: "Done: {tool_output}".into(),
            thinking: None,
        }),
    ))
    .unwrap();
    let mut hub = Workerhub::start_in(&data, &["--claude-binary", claude.to_str().unwrap()]);
    let env: serde_json::Map<String, Value> = mock
        .claude_env(&home)
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    let worker = hub.create_worker(json!({
        "name": "tasker", "ai_cli_type": "claude", "project_path": project,
        "allowed_tools": ["Bash"], "env": env,
    }));
    let mut early = Agent::connect(&hub);
    let assigned = early.request(
        "task:assign",
        json!({"instruction": "Run the task", "worker_id": worker}),
        "task:update",
    );
    let task_id = assigned["payload"]["task"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(assigned["payload"]["task"]["status"], "pending");
    let running = early
        .wait_for(|v| v["type"] == "task:update" && v["payload"]["task"]["status"] == "running");
    assert_eq!(running["payload"]["task"]["id"], task_id.as_str());

    // A client that connects mid-task sees the rest.
    let mut late = Agent::connect(&hub);
    for client in [&mut early, &mut late] {
        let done = client.wait_for(|v| v["type"] == "task:complete" || v["type"] == "task:failed");
        assert_eq!(done["type"], "task:complete", "{done}");
        assert_eq!(done["payload"]["task"]["status"], "completed");
        assert!(
            done["payload"]["task"]["result"]["text"]
                .as_str()
                .unwrap()
                .contains("task-ran")
        );
    }
    let events: Vec<&Value> = late
        .pending
        .iter()
        .filter(|v| v["type"] == "task:update" && v["payload"]["task_id"] == task_id.as_str())
        .collect();
    assert!(
        events
            .iter()
            .any(|v| v["payload"]["event"]["content"]["kind"] == "tool_result"),
        "the late client saw the task's events"
    );
    assert!(project.join("task.txt").exists());

    // REST view and filters.
    let listed = hub.get("/api/tasks?status=completed").json();
    assert_eq!(listed["tasks"].as_array().unwrap().len(), 1);
    let scheduled = hub.post_json(
        "/api/tasks",
        &json!({"instruction": "later", "worker_id": worker, "schedule": "1h"}),
    );
    assert_eq!(scheduled.status, 201);
    let scheduled_id = scheduled.json()["id"].as_str().unwrap().to_string();
    assert!(scheduled.json()["next_run_at"].is_string());

    // After a restart the task list is intact.
    hub.stop_with(15, T).unwrap();
    let hub = Workerhub::start_in(&data, &["--claude-binary", claude.to_str().unwrap()]);
    let task = hub.get(&format!("/api/tasks/{task_id}")).json();
    assert_eq!(task["status"], "completed");
    let again = hub.get(&format!("/api/tasks/{scheduled_id}")).json();
    assert_eq!(again["schedule"]["every_seconds"], 3600);
    let cancelled = hub.post_json(&format!("/api/tasks/{scheduled_id}/cancel"), &json!({}));
    assert_eq!(cancelled.json()["status"], "cancelled");
}

#[test]
fn status_metrics_health_and_openapi_describe_the_server() {
    let hub = Workerhub::start(&[]);
    hub.command_worker(&["cat"]);
    let mut agent = Agent::connect(&hub);
    agent.request("connection:ping", json!({}), "connection:pong");
    let status = hub.get("/api/status").json();
    for key in [
        "version",
        "uptime_seconds",
        "workers",
        "tasks",
        "connections",
        "messages",
    ] {
        assert!(status.get(key).is_some(), "status has {key}: {status}");
    }
    assert!(status["messages"]["received"].as_u64().unwrap() >= 1);
    let metrics = hub.get("/metrics");
    assert!(
        metrics
            .header("Content-Type")
            .unwrap()
            .starts_with("text/plain")
    );
    let text = metrics.text();
    for name in [
        "workerhub_workers{status=\"running\"} 1",
        "workerhub_ws_connections",
        "workerhub_worker_events_total{worker=",
        "workerhub_http_request_seconds_bucket",
        "workerhub_http_errors_total",
        "workerhub_ws_connections_opened_total 1",
        "workerhub_ws_messages_received_total",
        "workerhub_ws_messages_sent_total",
        "workerhub_commands_total 0",
        "workerhub_commands_failed_total 0",
    ] {
        assert!(text.contains(name), "metrics have {name}: {text}");
    }
    let served: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("workerhub_http_requests_total "))
        .and_then(|v| v.parse().ok())
        .expect("metrics have workerhub_http_requests_total");
    assert!(served >= 2.0, "the requests so far are counted: {served}");
    // The same counters over the agent protocol.
    let metric = agent.request("system:metric", json!({}), "system:metric");
    let payload = &metric["payload"];
    for key in [
        "http_requests",
        "http_errors",
        "ws_connections_opened",
        "ws_messages_received",
        "ws_messages_sent",
        "commands_run",
        "commands_failed",
    ] {
        assert!(payload[key].is_u64(), "system:metric has {key}: {payload}");
    }
    assert_eq!(payload["ws_connections_opened"], 1, "{payload}");
    assert!(payload["workers"].is_array() && payload["status"].is_object());
    let openapi = hub.get("/api/openapi.json").json();
    assert_eq!(openapi["openapi"], "3.0.3");
    assert!(openapi["paths"]["/api/workers"]["post"].is_object());
    assert_eq!(hub.get("/healthz").status, 200);
}
