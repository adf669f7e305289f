//! The core server, checked from outside: the real binary on a free port, a real
//! WebSocket client, real child processes.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::server::{Got, Workerhub};

const T: Duration = Duration::from_secs(10);

fn seqs(events: &[Value]) -> Vec<u64> {
    events.iter().filter_map(|e| e["seq"].as_u64()).collect()
}

fn is_output(text: &'static str) -> impl Fn(&Value) -> bool {
    move |e| e["type"] == "output" && e["content"]["text"] == text
}

#[test]
fn two_viewers_of_cat_see_every_message_once_in_order_with_contiguous_seqs() {
    let hub = Workerhub::start(&[]);
    let id = hub.command_worker(&["cat"]);
    let mut a = hub.ws(&format!("/ws/{id}"));
    let mut b = hub.ws(&format!("/ws/{id}"));
    // Let both subscriptions go live before anything is sent.
    std::thread::sleep(Duration::from_millis(200));
    for i in 0..20 {
        let (sender, text) = if i % 2 == 0 {
            (&mut a, format!("from-a-{i}"))
        } else {
            (&mut b, format!("from-b-{i}"))
        };
        sender.send_json(&json!({"type": "message", "content": text}));
    }
    // Messages from two connections may interleave either way; wait for all 20 echoes.
    let all_echoed = |events: &mut Vec<Value>, ws: &mut support::server::Ws| {
        while events.iter().filter(|e| e["type"] == "output").count() < 20 {
            events.push(ws.recv(T));
        }
    };
    let (mut got_a, mut got_b) = (Vec::new(), Vec::new());
    all_echoed(&mut got_a, &mut a);
    all_echoed(&mut got_b, &mut b);
    assert_eq!(got_a, got_b, "both viewers see the same events");
    let s = seqs(&got_a);
    assert!(
        s.windows(2).all(|w| w[1] == w[0] + 1),
        "seqs rise by exactly 1: {s:?}"
    );
    for i in 0..20 {
        let text = if i % 2 == 0 {
            format!("from-a-{i}")
        } else {
            format!("from-b-{i}")
        };
        let user: Vec<usize> = got_a
            .iter()
            .enumerate()
            .filter(|(_, e)| e["type"] == "user_message" && e["content"] == text.as_str())
            .map(|(i, _)| i)
            .collect();
        let out: Vec<usize> = got_a
            .iter()
            .enumerate()
            .filter(|(_, e)| e["type"] == "output" && e["content"]["text"] == text.as_str())
            .map(|(i, _)| i)
            .collect();
        assert_eq!(user.len(), 1, "{text} as user_message once");
        assert_eq!(out.len(), 1, "{text} echoed once");
        assert!(
            user[0] < out[0],
            "{text}: user_message comes before its output"
        );
        assert_eq!(got_a[out[0]]["content"]["stream"], "stdout");
    }
    for e in &got_a {
        let ts = e["timestamp"].as_str().expect("timestamp");
        assert!(ts.ends_with('Z') && ts.len() >= 20, "RFC 3339 UTC: {ts}");
    }
}

#[test]
fn since_replays_exactly_what_came_after_then_continues_live() {
    let hub = Workerhub::start(&[]);
    let id = hub.command_worker(&["sh", "-c", "seq 1 98; cat"]);
    let mut watcher = hub.ws(&format!("/ws/{id}?since=0"));
    // starting, running, 98 lines = 100 events.
    let first = watcher.recv_until(T, |e| e["seq"] == 100);
    assert_eq!(seqs(&first), (1..=100).collect::<Vec<_>>());

    for k in [0u64, 1, 42, 99, 100] {
        let mut late = hub.ws(&format!("/ws/{id}?since={k}"));
        if k < 100 {
            let replay = late.recv_until(T, |e| e["seq"] == 100);
            assert_eq!(
                seqs(&replay),
                (k + 1..=100).collect::<Vec<_>>(),
                "since={k}"
            );
        }
        // Then live, with no gap and no duplicate at the seam.
        watcher.send_json(&json!({"type": "message", "content": format!("live-{k}")}));
        let live = late.recv_until(
            T,
            is_output(Box::leak(format!("live-{k}").into_boxed_str())),
        );
        let s = seqs(&live);
        let start = hub.worker(&id)["last_seq"].as_u64().unwrap() - s.len() as u64 + 1;
        assert_eq!(s, (start..start + s.len() as u64).collect::<Vec<_>>());
        assert!(s[0] > 100);
        watcher.drain(Duration::from_millis(100));
    }

    // The same history over REST, paged.
    let page = hub
        .get(&format!("/api/workers/{id}/events?since=10&limit=5"))
        .json();
    assert_eq!(
        seqs(page["events"].as_array().unwrap()),
        vec![11, 12, 13, 14, 15]
    );
    assert_eq!(page["next_since"], 15);
}

#[test]
fn a_thousand_viewers_each_receive_every_line_and_the_api_still_answers() {
    const CLIENTS: usize = 1000;
    const LINES: usize = 1000;
    let hub = Workerhub::start(&[]);
    // The worker prints only once it reads "go", after every client is connected.
    let id = hub.command_worker(&["sh", "-c", "read go; seq 1 1000; cat"]);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let go = std::sync::Arc::new(std::sync::Barrier::new(CLIENTS + 1));
    let release = std::sync::Arc::new(std::sync::Barrier::new(CLIENTS + 1));
    let mut threads = Vec::new();
    for _ in 0..CLIENTS {
        let (connector, path) = (hub.connector(), format!("/ws/{id}"));
        let (ready_tx, done_tx, go, release) = (
            ready_tx.clone(),
            done_tx.clone(),
            go.clone(),
            release.clone(),
        );
        threads.push(
            std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || {
                    let mut ws = connector.ws(&path).expect("connect");
                    ready_tx.send(()).unwrap();
                    go.wait();
                    let mut count = 0;
                    let mut next = 1u64;
                    while count < LINES {
                        match ws.next(Duration::from_secs(60)) {
                            Got::Json(e) if e["type"] == "output" => {
                                assert_eq!(e["content"]["text"], next.to_string());
                                next += 1;
                                count += 1;
                            }
                            Got::Json(_) => {}
                            other => panic!("client got {other:?} after {count} lines"),
                        }
                    }
                    done_tx.send(count).unwrap();
                    // Hold the connection until the test has checked the server.
                    release.wait();
                    drop(ws);
                })
                .expect("client thread"),
        );
    }
    for _ in 0..CLIENTS {
        ready_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("all clients connected");
    }
    go.wait();
    // Every subscription has gone live once the server counts every viewer.
    let deadline = Instant::now() + Duration::from_secs(30);
    while hub.worker(&id)["viewers"].as_u64() != Some(CLIENTS as u64) {
        assert!(
            Instant::now() < deadline,
            "viewers: {}",
            hub.worker(&id)["viewers"]
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let resp = hub.post_json(
        &format!("/api/workers/{id}/messages"),
        &json!({"content": "go"}),
    );
    assert_eq!(resp.status, 202, "{}", resp.text());
    let mut total = 0;
    for _ in 0..CLIENTS {
        total += done_rx
            .recv_timeout(Duration::from_secs(120))
            .expect("a client finished");
    }
    assert_eq!(total, CLIENTS * LINES);
    // With a thousand connections open, the API answers.
    let resp = hub.get("/api/workers");
    assert_eq!(resp.status, 200);
    let status = hub.get("/api/status").json();
    assert!(
        status["connections"].as_u64().unwrap() >= CLIENTS as u64,
        "{status}"
    );
    release.wait();
    for t in threads {
        t.join().expect("client thread");
    }
}

#[test]
fn foreign_origins_and_hosts_are_refused_and_own_ones_work() {
    let hub = Workerhub::start(&[]);
    let id = hub.command_worker(&["cat"]);
    let body = json!({"project_path": std::env::temp_dir(), "command": ["cat"]}).to_string();

    let evil = [
        ("Origin", "http://evil.example"),
        ("Content-Type", "application/json"),
    ];
    let resp = hub.request("POST", "/api/workers", &evil, body.as_bytes());
    assert_eq!(resp.status, 403);
    assert_eq!(resp.error_code(), "forbidden_origin");
    let refused = hub.ws_with(&format!("/ws/{id}"), &[("Origin", "http://evil.example")]);
    match refused {
        Err(tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 403),
        other => panic!(
            "expected a 403 upgrade refusal, got {:?}",
            other.map(|_| ())
        ),
    }

    let own = hub.origin();
    let resp = hub.request(
        "POST",
        "/api/workers",
        &[
            ("Origin", own.as_str()),
            ("Content-Type", "application/json"),
        ],
        body.as_bytes(),
    );
    assert_eq!(resp.status, 201, "{}", resp.text());
    assert!(
        hub.ws_with(&format!("/ws/{id}"), &[("Origin", own.as_str())])
            .is_ok()
    );
    assert!(
        hub.ws_with(&format!("/ws/{id}"), &[]).is_ok(),
        "no Origin: a non-browser client"
    );

    let resp = hub.request("GET", "/api/workers", &[("Host", "evil.example")], b"");
    assert_eq!(resp.status, 403);
    assert_eq!(resp.error_code(), "forbidden_host");
    let resp = hub.request("GET", "/api/workers", &[("Host", "evil.example:80")], b"");
    assert_eq!(resp.status, 403);

    let resp = hub.request(
        "POST",
        "/api/workers",
        &[("Content-Type", "text/plain")],
        body.as_bytes(),
    );
    assert_eq!(resp.status, 415);
    assert_eq!(resp.error_code(), "unsupported_media_type");
}

fn zombies_of(parent: u32) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...
        let Some(after) = stat.rsplit_once(") ") else {
            continue;
        };
        let fields: Vec<&str> = after.1.split_whitespace().collect();
        if fields.first() == Some(&"Z") && fields.get(1) == Some(&parent.to_string().as_str()) {
            found.push(stat);
        }
    }
    found
}

/// Whether any process of group `pgid` is still running (zombies waiting for init to
/// reap them do not count: they run nothing).
fn group_alive(pgid: u64) -> bool {
    std::fs::read_dir("/proc").unwrap().flatten().any(|entry| {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            return false;
        };
        let Some((_, after)) = stat.rsplit_once(") ") else {
            return false;
        };
        let fields: Vec<&str> = after.split_whitespace().collect();
        // state ppid pgrp ...
        fields.first() != Some(&"Z") && fields.get(2) == Some(&pgid.to_string().as_str())
    })
}

#[test]
fn deleting_a_worker_that_ignores_sigterm_kills_it_after_the_grace_period() {
    let hub = Workerhub::start(&["--stop-grace", "1"]);
    let id = hub.command_worker(&["sh", "-c", "trap '' TERM; sleep 1000 & wait; sleep 1000"]);
    let pid = hub.wait_status(&id, |s| s == "running", T)["pid"]
        .as_u64()
        .expect("pid");
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    let resp = hub.delete(&format!("/api/workers/{id}"));
    let took = started.elapsed();
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(
        took < Duration::from_millis(2000 + 500),
        "delete took {took:?}"
    );
    assert!(!group_alive(pid), "the process group is gone");
    assert!(
        zombies_of(hub.pid()).is_empty(),
        "no zombies: {:?}",
        zombies_of(hub.pid())
    );
    assert_eq!(hub.get(&format!("/api/workers/{id}")).status, 404);
    assert!(
        !hub.data_dir.join("workers").join(&id).exists(),
        "its files are removed"
    );
}

#[test]
fn a_worker_that_does_not_read_its_input_gets_a_bounded_backlog_then_a_clear_refusal() {
    let hub = Workerhub::start(&["--stop-grace", "1"]);
    let id = hub.command_worker(&["sleep", "1000"]);
    hub.wait_status(&id, |s| s == "running", T);
    let mut viewer = hub.ws(&format!("/ws/{id}"));
    let big = "x".repeat(900 * 1024);
    let path = format!("/api/workers/{id}/messages");
    let mut accepted = 0;
    let refused = loop {
        let resp = hub.post_json(&path, &json!({"content": big}));
        if resp.status != 202 {
            break resp;
        }
        accepted += 1;
        assert!(accepted < 40, "the backlog has a bound");
    };
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert_eq!(refused.error_code(), "input_full");
    // The pipe (64 KiB) and 8 MiB of backlog: about ten messages of 900 KiB.
    assert!((8..=12).contains(&accepted), "accepted {accepted}");
    let events = viewer.recv_until(T, |e| e["type"] == "error");
    let error = events.last().unwrap();
    assert_eq!(error["code"], "input_full");
    let lost = error["message_seq"].as_u64().expect("message_seq");
    assert!(
        events
            .iter()
            .any(|e| e["seq"] == lost && e["type"] == "user_message")
    );
    // Everything else keeps working, and the worker stops promptly although its input
    // is full and a backlog waits for it.
    let other = hub.command_worker(&["cat"]);
    hub.wait_status(&other, |s| s == "running", T);
    assert_eq!(
        hub.post_json(
            &format!("/api/workers/{other}/messages"),
            &json!({"content": "hi"})
        )
        .status,
        202
    );
    let started = Instant::now();
    assert_eq!(hub.delete(&format!("/api/workers/{id}")).status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "delete took {:?}",
        started.elapsed()
    );
}

#[test]
fn an_exited_worker_stays_listed_with_its_exit_code() {
    let hub = Workerhub::start(&[]);
    let id = hub.command_worker(&["sh", "-c", "echo bye; exit 3"]);
    let w = hub.wait_status(&id, |s| s == "exited", T);
    assert_eq!(w["status"], "exited");
    assert_eq!(w["exit_code"], 3);
    let killed = hub.command_worker(&["sh", "-c", "kill -9 $$"]);
    let w = hub.wait_status(&killed, |s| s == "exited", T);
    assert_eq!(w["signal"], 9);
    let list = hub.get("/api/workers").json();
    assert_eq!(list["workers"].as_array().unwrap().len(), 2);
    let mut ws = hub.ws(&format!("/ws/{id}?since=0"));
    let events = ws.recv_until(T, |e| e["status"] == "exited");
    assert!(events.iter().any(is_output("bye")));
    assert_eq!(events.last().unwrap()["exit_code"], 3);
}

#[test]
fn bad_input_gets_a_clear_error_and_everyone_else_is_served() {
    let hub = Workerhub::start(&[]);
    let id = hub.command_worker(&["cat"]);
    let mut bystander = hub.ws(&format!("/ws/{id}"));
    let mut ws = hub.ws(&format!("/ws/{id}"));

    let expect_error = |ws: &mut support::server::Ws, code: &str| {
        let e = ws.recv(T);
        assert_eq!(e["type"], "error", "{e}");
        assert_eq!(e["code"], code, "{e}");
        assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()));
        assert!(e.get("seq").is_none(), "errors for one client carry no seq");
    };
    ws.send_text("this is not json");
    expect_error(&mut ws, "invalid_json");
    ws.send_json(&json!({"type": "launch_missiles"}));
    expect_error(&mut ws, "unknown_type");
    ws.send_json(&json!({"content": "no type"}));
    expect_error(&mut ws, "unknown_type");
    ws.send_json(&json!({"type": "message", "content": "x".repeat(2 << 20)}));
    expect_error(&mut ws, "message_too_large");
    ws.inner
        .send(tungstenite::Message::binary(vec![0xff, 0xfe, 0xfd]))
        .unwrap();
    expect_error(&mut ws, "binary_not_supported");

    // The connection is still usable, and so is everyone else's.
    ws.send_json(&json!({"type": "message", "content": "still here"}));
    ws.recv_until(T, is_output("still here"));
    bystander.recv_until(T, is_output("still here"));

    let resp = hub.get("/api/workers/no-such-worker");
    assert_eq!(resp.status, 404);
    assert_eq!(resp.error_code(), "not_found");
    match hub.ws_with("/ws/no-such-worker", &[]) {
        Err(tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 404),
        other => panic!(
            "expected 404 before the upgrade, got {:?}",
            other.map(|_| ())
        ),
    }
    let resp = hub.post_json(
        "/api/workers",
        &json!({"project_path": "/does/not/exist", "command": ["cat"]}),
    );
    assert_eq!(resp.status, 400);
    assert!(
        resp.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/does/not/exist")
    );
    let resp = hub.post_json(
        "/api/workers",
        &json!({"project_path": "/tmp", "command": "cat"}),
    );
    assert_eq!(resp.status, 400);
    let resp = hub.request(
        "POST",
        "/api/workers",
        &[("Content-Type", "application/json")],
        b"{oops",
    );
    assert_eq!(resp.status, 400);
    let big = vec![b'x'; 2 << 20];
    let resp = hub.request(
        "POST",
        "/api/workers",
        &[("Content-Type", "application/json")],
        &big,
    );
    assert_eq!(resp.status, 413);
    assert_eq!(hub.get("/api/workers").status, 200);
}

#[test]
fn too_many_workers_are_refused_clearly() {
    let hub = Workerhub::start(&["--max-workers", "2"]);
    hub.command_worker(&["cat"]);
    hub.command_worker(&["cat"]);
    let resp = hub.post_json(
        "/api/workers",
        &json!({"project_path": "/tmp", "command": ["cat"]}),
    );
    assert_eq!(resp.status, 429);
    assert_eq!(resp.error_code(), "too_many_workers");
}

#[test]
fn ctrl_c_closes_clients_with_1001_stops_children_and_exits_0() {
    let mut hub = Workerhub::start(&["--stop-grace", "2"]);
    let cat = hub.command_worker(&["cat"]);
    let stubborn = hub.command_worker(&[
        "sh",
        "-c",
        "trap '' TERM INT; sleep 1000 & wait; sleep 1000",
    ]);
    let pids: Vec<u64> = [&cat, &stubborn]
        .iter()
        .map(|id| {
            hub.wait_status(id, |s| s == "running", T)["pid"]
                .as_u64()
                .unwrap()
        })
        .collect();
    let mut clients: Vec<_> = (0..3).map(|_| hub.ws(&format!("/ws/{cat}"))).collect();
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    let status = hub
        .stop_with(2, Duration::from_secs(10))
        .expect("exited within 10 s");
    assert!(status.success(), "exit status {status:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    for c in &mut clients {
        let closed = loop {
            match c.next(T) {
                Got::Json(_) => continue,
                other => break other,
            }
        };
        match closed {
            Got::Closed(Some(frame)) => assert_eq!(u16::from(frame.code), 1001),
            other => panic!("expected close 1001, got {other:?}"),
        }
    }
    for pid in pids {
        assert!(!group_alive(pid), "process group {pid} is gone");
    }
}

#[test]
fn the_page_and_health_check_are_served() {
    let hub = Workerhub::start(&[]);
    let page = hub.get("/");
    assert_eq!(page.status, 200);
    assert!(
        page.header("Content-Type")
            .unwrap()
            .starts_with("text/html")
    );
    assert!(page.text().contains("workerhub"));
    assert_eq!(hub.get("/healthz").json()["status"], "ok");
    assert_eq!(hub.get("/nothing-here").status, 404);
    assert_eq!(hub.request("PUT", "/api/workers", &[], b"").status, 405);
}

#[test]
fn help_and_version_work() {
    let bin = env!("CARGO_BIN_EXE_workerhub");
    let out = std::process::Command::new(bin)
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
    let out = std::process::Command::new(bin)
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--host",
        "--port",
        "--data-dir",
        "--static-dir",
        "--threads",
        "--max-workers",
        "--worker-timeout",
        "--allow-origin",
    ] {
        assert!(help.contains(flag), "--help mentions {flag}");
    }
}

#[test]
fn flags_win_over_environment_which_wins_over_dotenv() {
    let tmp = support::TempDir::new("wh-env").unwrap();
    std::fs::write(
        tmp.path().join(".env"),
        "WORKERHUB_MAX_WORKERS=1\nMAX_WORKERS=7\n",
    )
    .unwrap();
    let bin = env!("CARGO_BIN_EXE_workerhub");
    let run = |args: &[&str], env: &[(&str, &str)]| -> String {
        let mut child = std::process::Command::new(bin)
            .current_dir(tmp.path())
            .args(["--port", "0", "--data-dir", "data"])
            .args(args)
            .env_remove("WORKERHUB_MAX_WORKERS")
            .env_remove("MAX_WORKERS")
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut banner = String::new();
        let mut reader = std::io::BufReader::new(child.stdout.take().unwrap());
        loop {
            let mut line = String::new();
            if std::io::BufRead::read_line(&mut reader, &mut line).unwrap() == 0 {
                break;
            }
            banner.push_str(&line);
            if line.starts_with("workerhub listening on") {
                break;
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        banner
    };
    assert!(run(&[], &[]).contains("at most 1,"), ".env");
    assert!(
        run(&[], &[("WORKERHUB_MAX_WORKERS", "4")]).contains("at most 4,"),
        "environment over .env"
    );
    assert!(
        run(&["--max-workers", "9"], &[("WORKERHUB_MAX_WORKERS", "4")]).contains("at most 9,"),
        "flag over environment"
    );
}
