//! The attacks of the second hardening round, each against the real binary: what an
//! outsider without a token, or a token holder's mistake or script, could do to take
//! the server down or read what is not theirs. Each test reproduces the attack and then
//! checks the server still serves a normal client.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::TempDir;
use support::server::{Got, Workerhub, read_response};

const T: Duration = Duration::from_secs(20);

/// A connection from another loopback address (the whole of 127/8 is this machine), so
/// an attacker's per-address limits are not the test client's.
fn connect_from(source: &str, hub: &Workerhub) -> std::io::Result<TcpStream> {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    let from: SocketAddr = format!("{source}:0").parse().expect("source address");
    sock.bind(&from.into())?;
    let to: SocketAddr = hub.addr().parse().expect("server address");
    sock.connect_timeout(&to.into(), Duration::from_secs(5))?;
    Ok(sock.into())
}

/// After an attack: `/healthz` answers promptly, and a normal client creates a worker,
/// sends it a line and sees its output stream back.
fn serves_normally(hub: &Workerhub) {
    let started = Instant::now();
    let health = hub.get("/healthz");
    let took = started.elapsed();
    assert_eq!(health.status, 200, "healthz: {}", health.text());
    assert!(
        took < Duration::from_secs(2),
        "healthz took {took:?} after the attack"
    );
    eprintln!("healthz answered in {took:?} after the attack");
    let id = hub.command_worker(&["cat"]);
    hub.wait_status(&id, |s| s == "running", T);
    let mut ws = hub.ws(&format!("/ws/{id}"));
    ws.send_json(&json!({"type": "message", "content": "still-here"}));
    let got = ws.recv_until(T, |v| v["content"]["text"] == "still-here");
    assert!(
        got.iter().any(|v| v["content"]["text"] == "still-here"),
        "the worker's output streams: {got:?}"
    );
    assert_eq!(hub.delete(&format!("/api/workers/{id}")).status, 200);
}

fn rss_kib(hub: &Workerhub) -> u64 {
    support::server::proc_stats(hub.pid()).0
}

// ---- Without a token ----

#[test]
fn request_heads_are_capped_in_size_per_connection() {
    let hub = Workerhub::start(&[]);
    let before = rss_kib(&hub);
    let mut threads = Vec::new();
    for _ in 0..4 {
        let addr = hub.addr();
        threads.push(std::thread::spawn(move || {
            let mut sock = TcpStream::connect(&addr).unwrap();
            sock.set_read_timeout(Some(T)).unwrap();
            sock.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ")
                .unwrap();
            let chunk = vec![b'a'; 64 * 1024];
            // Up to 50 MB, until the server stops reading and answers.
            for _ in 0..800 {
                if sock.write_all(&chunk).is_err() {
                    break;
                }
            }
            let mut answer = Vec::new();
            let _ = sock.read_to_end(&mut answer);
            String::from_utf8_lossy(&answer).to_string()
        }));
    }
    for t in threads {
        let answer = t.join().unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 431"),
            "a huge head gets 431: {:?}",
            &answer[..answer.len().min(200)]
        );
    }
    let after = rss_kib(&hub);
    assert!(
        after < before + 64 * 1024,
        "memory stays bounded: {before} KiB before, {after} KiB after"
    );

    // A body shorter than it claims to be is followed by the next head, capped the same.
    let mut sock = TcpStream::connect(hub.addr()).unwrap();
    sock.set_read_timeout(Some(T)).unwrap();
    let head = "POST /api/auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 10\r\n\r\n{\"token\":1}";
    sock.write_all(head.as_bytes()).unwrap();
    let junk = vec![b'b'; 64 * 1024];
    for _ in 0..100 {
        if sock.write_all(&junk).is_err() {
            break;
        }
    }
    let mut answer = Vec::new();
    let _ = sock.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.contains("HTTP/1.1 431"),
        "the bytes after a short body are read as a head and capped: {:?}",
        &answer[..answer.len().min(400)]
    );
    serves_normally(&hub);
}

#[test]
fn running_out_of_descriptors_answers_503_and_never_ends_the_accept_loop() {
    let hub = Workerhub::start_wrapped(&["prlimit", "--nofile=257:257", "--"], &[]);
    // Half-sent requests from another address: each holds a descriptor in the server,
    // more than its table has.
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..250 {
        match connect_from("127.0.0.2", &hub) {
            Ok(mut sock) => {
                let _ = sock.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n");
                held.push(sock);
            }
            Err(_) => refused += 1,
        }
    }
    // With the table full, a new client is told 503 rather than left hanging.
    let mut told_busy = false;
    for _ in 0..20 {
        let Ok(mut sock) = connect_from("127.0.0.3", &hub) else {
            continue;
        };
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = sock
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        let mut answer = String::new();
        let _ = BufReader::new(&sock).read_line(&mut answer);
        if answer.contains(" 503 ") {
            told_busy = true;
            break;
        }
    }
    eprintln!(
        "held {} connections ({refused} refused at connect); told busy: {told_busy}",
        held.len()
    );
    assert!(told_busy, "a client past the descriptor limit gets 503");
    drop(held);
    // The listener is still accepting once descriptors are free again.
    let deadline = Instant::now() + T;
    loop {
        let ok = std::panic::catch_unwind(|| hub.get("/healthz").status == 200).unwrap_or(false);
        if ok {
            break;
        }
        assert!(Instant::now() < deadline, "the server never accepted again");
        std::thread::sleep(Duration::from_millis(200));
    }
    serves_normally(&hub);
}

#[test]
fn stopped_workers_hold_no_descriptors() {
    let hub = Workerhub::start_wrapped(
        &["prlimit", "--nofile=257:257", "--"],
        &["--max-workers", "1000"],
    );
    // Three hundred workers whose program exits at once: more than the descriptor table
    // holds, if each kept its history file open.
    for _ in 0..300 {
        let id = hub.command_worker(&["true"]);
        let _ = id;
    }
    std::thread::sleep(Duration::from_millis(2500));
    let (_, _, fds) = support::server::proc_stats(hub.pid());
    assert!(fds < 150, "{fds} descriptors open with 300 stopped workers");
    serves_normally(&hub);
}

#[test]
fn metrics_need_a_token_however_the_path_is_written() {
    let hub = Workerhub::start(&[]);
    for path in [
        "/metrics",
        "/metrics/",
        "/metrics//",
        "/metrics%2F",
        "//metrics",
        "/api/../metrics",
    ] {
        let resp = hub.request_raw("GET", path, &[], b"");
        assert_eq!(resp.status, 401, "{path}: {}", resp.text());
    }
    assert_eq!(hub.get("/metrics/").status, 200, "with the token");
}

#[test]
fn a_query_token_is_accepted_on_real_websocket_upgrades_only() {
    let hub = Workerhub::start(&[]);
    let token = hub.token.clone().unwrap();
    let path = format!("/api/workers?token={token}");
    let resp = hub.request_raw(
        "GET",
        &path,
        &[
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("Sec-WebSocket-Version", "13"),
        ],
        b"",
    );
    assert_eq!(resp.status, 401, "{}", resp.text());
    // A real upgrade with it works.
    let id = hub.command_worker(&["cat"]);
    let ws = support::server::ws_connect(&hub.addr(), &format!("/ws/{id}?token={token}"), &[]);
    assert!(ws.is_ok(), "a WebSocket may bring the token in its address");
}

#[test]
fn a_trickled_head_is_cut_off_and_idle_connections_are_capped_per_address() {
    let hub = Workerhub::start(&["--http-timeout", "2", "--max-http-connections-per-ip", "20"]);
    // One byte every 300 ms: never silent for long, but the head must be whole in 2 s.
    let mut sock = connect_from("127.0.0.2", &hub).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let started = Instant::now();
    let head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let mut closed_after = None;
    for byte in head.iter().cycle().take(200) {
        if sock.write_all(&[*byte]).is_err() {
            closed_after = Some(started.elapsed());
            break;
        }
        let mut buf = [0u8; 256];
        match sock.read(&mut buf) {
            Ok(0) => {
                closed_after = Some(started.elapsed());
                break;
            }
            Ok(_) => {
                closed_after = Some(started.elapsed());
                break;
            }
            Err(_) => {}
        }
    }
    let closed_after = closed_after.expect("the server never cut the trickle off");
    assert!(
        closed_after < Duration::from_secs(6),
        "a head trickling in is cut off near the 2 s bound, not kept alive: {closed_after:?}"
    );

    // Idle connections from one address are capped; others are still served.
    let mut idle = Vec::new();
    let mut busy = 0;
    for _ in 0..40 {
        let mut sock = connect_from("127.0.0.4", &hub).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let mut line = String::new();
        if BufReader::new(&sock).read_line(&mut line).is_ok() && line.contains(" 503 ") {
            busy += 1;
        }
        let _ = sock.write_all(b"");
        idle.push(sock);
    }
    assert!(
        busy >= 15,
        "past 20 idle connections from one address, 503: {busy}"
    );
    serves_normally(&hub);
    drop(idle);
}

// ---- With a token ----

#[test]
fn numbers_out_of_range_are_refused_and_a_panic_costs_no_thread() {
    let hub = Workerhub::start(&["--threads", "8"]);
    for _ in 0..8 {
        let resp = hub.post_json("/api/exec", &json!({"argv": ["true"], "timeout": 1e308}));
        assert_eq!(resp.status, 400, "{}", resp.text());
        assert!(resp.text().contains("timeout"), "{}", resp.text());
        let resp = hub.post_json(
            "/api/tasks",
            &json!({"instruction": "x", "ai_cli_type": "claude", "schedule": 18446744073709551615u64}),
        );
        assert_eq!(resp.status, 400, "{}", resp.text());
        let resp = hub.post_json("/api/exec", &json!({"argv": ["true"], "timeout": -1}));
        assert_eq!(resp.status, 400);
    }
    serves_normally(&hub);
}

#[test]
fn long_commands_do_not_hold_http_threads_and_stop_with_the_server() {
    let mut hub = Workerhub::start(&["--threads", "8", "--stop-grace", "1"]);
    let mut waiting = Vec::new();
    for _ in 0..8 {
        let addr = hub.addr();
        let bearer = hub.bearer().unwrap();
        waiting.push(std::thread::spawn(move || {
            support::server::http_request(
                &addr,
                "POST",
                "/api/exec",
                &[
                    ("Authorization", &bearer),
                    ("Content-Type", "application/json"),
                ],
                br#"{"argv": ["sleep", "30"], "timeout": 60}"#,
            )
        }));
    }
    std::thread::sleep(Duration::from_millis(500));
    serves_normally(&hub);

    // Detached: answered at once with an id to follow.
    let resp = hub.post_json(
        "/api/exec",
        &json!({"argv": ["sh", "-c", "echo detached"], "detach": true}),
    );
    assert_eq!(resp.status, 202, "{}", resp.text());
    let id = resp.json()["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + T;
    let result = loop {
        let got = hub.get(&format!("/api/exec/{id}")).json();
        if got["state"] == "finished" {
            break got;
        }
        assert!(Instant::now() < deadline, "{got}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(result["result"]["output_data"][0]["text"], "detached");

    // Shutdown stops the sleeping commands within the grace, and their callers hear.
    let started = Instant::now();
    let status = hub.stop_with(libc::SIGTERM, Duration::from_secs(20));
    let took = started.elapsed();
    assert!(status.is_some(), "the server exited");
    assert!(took < Duration::from_secs(8), "shutdown took {took:?}");
    for w in waiting {
        let resp = w.join().unwrap();
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert_eq!(resp.json()["success"], false, "{}", resp.text());
    }
}

#[test]
fn history_pages_are_bounded_in_events_and_bytes_with_a_cursor() {
    let hub = Workerhub::start(&[]);
    // 3,000 short lines, then 60 lines of 100 KB.
    let script = "for i in $(seq 1 3000); do echo line-$i; done; \
                  head -c 6000000 /dev/zero | tr '\\0' 'x' | fold -w 100000; echo; sleep 30";
    let id = hub.command_worker(&["sh", "-c", script]);
    let deadline = Instant::now() + T;
    while hub.worker(&id)["last_seq"].as_u64().unwrap_or(0) < 3060 {
        assert!(Instant::now() < deadline, "{}", hub.worker(&id));
        std::thread::sleep(Duration::from_millis(100));
    }
    let page = hub.get(&format!("/api/workers/{id}/events")).json();
    assert_eq!(
        page["events"].as_array().unwrap().len(),
        1000,
        "the default page"
    );
    assert_eq!(page["has_more"], true);
    let next = page["next"].as_str().unwrap().to_string();
    let second = hub.get(&next).json();
    assert_eq!(
        second["events"][0]["seq"],
        page["events"][999]["seq"].as_u64().unwrap() + 1
    );
    let empty = hub.get(&format!("/api/workers/{id}/events?limit=0")).json();
    assert_eq!(
        empty["events"].as_array().unwrap().len(),
        0,
        "limit=0 returns nothing"
    );
    let too_many = hub.get(&format!("/api/workers/{id}/events?limit=20000"));
    assert_eq!(too_many.status, 400);
    // The big lines: the page stops at about 4 MiB.
    let big = hub.get(&format!("/api/workers/{id}/events?since=3000&limit=10000"));
    assert!(big.body.len() < 5 << 20, "{} bytes", big.body.len());
    assert_eq!(big.json()["has_more"], true);
    assert!(!big.json()["events"].as_array().unwrap().is_empty());
}

#[test]
fn a_since_past_the_last_event_is_refused() {
    let hub = Workerhub::start(&[]);
    let id = hub.command_worker(&["cat"]);
    let err = hub
        .ws_with(&format!("/ws/{id}?since=18446744073709551615"), &[])
        .err()
        .expect("refused");
    match err {
        tungstenite::Error::Http(resp) => {
            assert_eq!(resp.status(), 400);
            let body =
                String::from_utf8_lossy(resp.body().as_deref().unwrap_or_default()).to_string();
            assert!(body.contains("since_out_of_range"), "{body}");
        }
        other => panic!("expected an HTTP refusal, got {other:?}"),
    }
    let mut agent = hub.ws("/ws");
    agent.recv(T);
    agent.send_json(&json!({"id": "s1", "type": "agent:subscribe", "payload": {"worker_id": id, "since": 999999}}));
    let answer = agent.recv_until(T, |v| v["correlation_id"] == "s1");
    let last = answer.last().unwrap();
    assert_eq!(last["type"], "agent:error", "{last}");
    assert_eq!(last["payload"]["code"], "since_out_of_range");
}

#[test]
fn a_project_folder_swapped_for_a_symlink_is_refused_at_the_next_start() {
    let tmp = TempDir::new("wh-root").unwrap();
    let root = tmp.subdir("root").unwrap();
    let outside = tmp.subdir("outside").unwrap();
    let project = root.join("p");
    std::fs::create_dir(&project).unwrap();
    let hub = Workerhub::start(&["--project-root", root.to_str().unwrap()]);
    let id = hub.create_worker(json!({"ai_cli_type": "command", "project_path": project, "command": ["sh", "-c", "pwd; sleep 30"]}));
    hub.wait_status(&id, |s| s == "running", T);
    let stop = hub.post_json(&format!("/api/workers/{id}/stop"), &json!({}));
    assert_eq!(stop.status, 200);
    hub.wait_status(&id, |s| s == "exited", T);
    std::fs::remove_dir(&project).unwrap();
    std::os::unix::fs::symlink(&outside, &project).unwrap();
    let start = hub.post_json(&format!("/api/workers/{id}/start"), &json!({}));
    assert_eq!(start.status, 403, "{}", start.text());
    assert_eq!(start.error_code(), "forbidden_path");
    assert_ne!(hub.worker(&id)["status"], "running");
}

#[test]
fn no_auth_with_any_origin_is_refused_and_foreign_addresses_are_not_our_names() {
    let tmp = TempDir::new("wh-origin").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_workerhub"))
        .args([
            "--port",
            "0",
            "--no-auth",
            "--allow-origin",
            "*",
            "--data-dir",
        ])
        .arg(tmp.path().join("data"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--allow-origin '*'"));

    let hub = Workerhub::start(&["--host", "0.0.0.0"]);
    let port = hub.port;
    let foreign = format!("http://203.0.113.77:{port}");
    let resp = hub.request(
        "POST",
        "/api/workers",
        &[("Origin", &foreign), ("Content-Type", "application/json")],
        b"{}",
    );
    assert_eq!(resp.status, 403, "{}", resp.text());
    let resp = hub.request(
        "GET",
        "/api/workers",
        &[("Host", &format!("203.0.113.77:{port}"))],
        b"",
    );
    assert_eq!(resp.status, 403);
    let own = format!("http://127.0.0.1:{port}");
    let id = hub.command_worker(&["cat"]);
    let ws = hub.ws_with(&format!("/ws/{id}"), &[("Origin", &own)]);
    assert!(ws.is_ok(), "the server's own address is still its origin");
}

// ---- Secrets ----

#[test]
fn children_never_see_the_servers_token_or_other_kinds_keys() {
    let tmp = TempDir::new("wh-env").unwrap();
    let data = tmp.path().join("data");
    let config = tmp.path().join("kinds.json");
    std::fs::write(
        &config,
        r#"{"ai_clis": [{"name": "envdump", "command": ["sh", "-c", "env; echo done"], "output": "text", "credentials": ["ENVDUMP_KEY"]}]}"#,
    )
    .unwrap();
    let hub = Workerhub::start_with_env(
        &data,
        &["--config", config.to_str().unwrap()],
        &[
            ("WORKERHUB_TOKEN", "the-servers-own-token-000"),
            ("WORKERHUB_CLAUDE_MODEL", "x"),
            ("CLAUDE_API_KEY", "legacy-claude-key"),
            ("ANTHROPIC_API_KEY", "anthropic-key"),
            ("OPENAI_API_KEY", "openai-key"),
            ("GEMINI_API_KEY", "gemini-key"),
            ("ENVDUMP_KEY", "envdump-key"),
            ("HARMLESS_SETTING", "visible"),
        ],
    );
    let forbidden = [
        "WORKERHUB_",
        "CLAUDE_API_KEY",
        "ANTHROPIC_API_KEY",
        "OPENAI_API_KEY",
        "GEMINI_API_KEY",
        "ENVDUMP_KEY",
        "the-servers-own-token",
    ];
    let check = |what: &str, text: &str| {
        assert!(
            text.contains("HARMLESS_SETTING=visible"),
            "{what}: the rest passes:\n{text}"
        );
        for bad in forbidden {
            assert!(!text.contains(bad), "{what} sees {bad}:\n{text}");
        }
    };

    let id = hub.command_worker(&["sh", "-c", "env; sleep 30"]);
    let mut ws = hub.ws(&format!("/ws/{id}?since=0"));
    let lines = ws.recv_until(T, |v| {
        v["content"]["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("HARMLESS"))
    });
    let worker_env: String = lines
        .iter()
        .filter_map(|v| v["content"]["text"].as_str())
        .collect::<Vec<_>>()
        .join("\n");
    let more: String = ws
        .drain(Duration::from_millis(500))
        .iter()
        .filter_map(|v| v["content"]["text"].as_str().map(str::to_string))
        .collect::<Vec<_>>()
        .join("\n");
    check("a command worker", &format!("{worker_env}\n{more}"));

    let exec = hub.post_json("/api/exec", &json!({"argv": ["env"]})).json();
    let exec_env: String = exec["output_data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["text"].as_str())
        .collect::<Vec<_>>()
        .join("\n");
    check("a one-off command", &exec_env);

    // A kind gets its own credentials, and only those.
    let id = hub.create_worker(json!({"ai_cli_type": "envdump", "project_path": tmp.path()}));
    let mut ws = hub.ws(&format!("/ws/{id}?since=0"));
    hub.post_json(
        &format!("/api/workers/{id}/messages"),
        &json!({"content": "go"}),
    );
    let events = ws.recv_until(T, |v| v["content"]["text"] == "done");
    let text: String = events
        .iter()
        .filter_map(|v| v["content"]["text"].as_str())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(text.contains("ENVDUMP_KEY=envdump-key"), "{text}");
    assert!(!text.contains("ANTHROPIC_API_KEY"), "{text}");
    assert!(!text.contains("WORKERHUB_"), "{text}");
}

#[test]
fn every_file_under_the_data_folder_is_private() {
    let tmp = TempDir::new("wh-modes").unwrap();
    let data = tmp.path().join("data");
    // A data folder from an older version, readable by others.
    std::fs::create_dir_all(data.join("workers")).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(data.join("tasks.json"), "[]").unwrap();
    std::fs::set_permissions(
        data.join("tasks.json"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let hub = Workerhub::start_in(&data, &[]);
    let id = hub.create_worker(json!({"ai_cli_type": "command", "project_path": tmp.path(), "command": ["cat"], "env": {"API_TOKEN": "secret-value-123"}}));
    hub.post_json(
        &format!("/api/workers/{id}/messages"),
        &json!({"content": "x"}),
    );
    std::thread::sleep(Duration::from_millis(1500));
    let mut stack = vec![data.clone()];
    let mut files = 0;
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let mode = meta.permissions().mode() & 0o777;
        if meta.is_dir() {
            assert_eq!(mode, 0o700, "{}", path.display());
            for entry in std::fs::read_dir(&path).unwrap() {
                stack.push(entry.unwrap().path());
            }
        } else {
            files += 1;
            assert_eq!(mode, 0o600, "{}", path.display());
        }
    }
    assert!(files >= 3, "worker.json, history, tasks.json");
    assert!(
        hub.log().contains("private to this user"),
        "the fix is logged"
    );
}

#[test]
fn operators_see_only_their_own_workers_and_viewers_only_watch() {
    let tmp = TempDir::new("wh-roles").unwrap();
    let tokens = tmp.path().join("tokens.json");
    let entry = |name: &str, token: &str, role: &str| {
        use sha2::Digest;
        let hash: String = sha2::Sha256::digest(token.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        json!({"name": name, "sha256": hash, "role": role})
    };
    let (a, b, v) = (
        "operator-a-token-0001",
        "operator-b-token-0002",
        "viewer-token-00000003",
    );
    std::fs::write(
        &tokens,
        json!({"tokens": [entry("alice", a, "operator"), entry("bob", b, "operator"), entry("eve", v, "viewer")]}).to_string(),
    )
    .unwrap();
    let hub = Workerhub::start_untouched(
        &tmp.path().join("data"),
        &["--tokens", tokens.to_str().unwrap()],
    );
    let as_ = |token: &str, method: &str, path: &str, body: &Value| {
        hub.request(
            method,
            path,
            &[
                ("Authorization", &format!("Bearer {token}")),
                ("Content-Type", "application/json"),
            ],
            body.to_string().as_bytes(),
        )
    };
    let create = as_(
        a,
        "POST",
        "/api/workers",
        &json!({"name": "alices", "ai_cli_type": "command", "project_path": tmp.path(), "command": ["cat"]}),
    );
    assert_eq!(create.status, 201, "{}", create.text());
    let id = create.json()["id"].as_str().unwrap().to_string();
    assert_eq!(create.json()["owner"], "alice");

    // Bob cannot see it at all.
    let list = as_(b, "GET", "/api/workers", &json!({}));
    assert_eq!(list.json()["workers"].as_array().unwrap().len(), 0);
    assert_eq!(
        as_(b, "GET", &format!("/api/workers/{id}"), &json!({})).status,
        404
    );
    assert_eq!(
        as_(b, "DELETE", &format!("/api/workers/{id}"), &json!({})).status,
        404
    );
    assert_eq!(
        as_(
            b,
            "POST",
            &format!("/api/workers/{id}/messages"),
            &json!({"content": "x"})
        )
        .status,
        404
    );
    let ws = support::server::ws_connect(
        &hub.addr(),
        &format!("/ws/{id}"),
        &[("Authorization", &format!("Bearer {b}"))],
    );
    assert!(ws.is_err(), "bob cannot follow alice's worker");

    // The viewer watches, but cannot send, stop or delete.
    assert_eq!(
        as_(v, "GET", &format!("/api/workers/{id}"), &json!({})).status,
        200
    );
    assert_eq!(
        as_(
            v,
            "POST",
            &format!("/api/workers/{id}/messages"),
            &json!({"content": "x"})
        )
        .status,
        403
    );
    assert_eq!(
        as_(v, "POST", &format!("/api/workers/{id}/stop"), &json!({})).status,
        403
    );
    assert_eq!(
        as_(v, "DELETE", &format!("/api/workers/{id}"), &json!({})).status,
        403
    );
    assert_eq!(
        as_(
            v,
            "POST",
            "/api/workers",
            &json!({"ai_cli_type": "command", "project_path": tmp.path(), "command": ["cat"]})
        )
        .status,
        403
    );
    assert_eq!(
        as_(v, "POST", "/api/exec", &json!({"argv": ["true"]})).status,
        403
    );
    let mut watch = support::server::ws_connect(
        &hub.addr(),
        &format!("/ws/{id}?since=0"),
        &[("Authorization", &format!("Bearer {v}"))],
    )
    .unwrap();
    watch.send_json(&json!({"type": "message", "content": "from-the-viewer"}));
    let refused = watch.recv_until(T, |m| m["type"] == "error");
    assert_eq!(refused.last().unwrap()["code"], "forbidden");

    // Alice drives it; the event says who sent it, and the viewer sees it live.
    let sent = as_(
        a,
        "POST",
        &format!("/api/workers/{id}/messages"),
        &json!({"content": "hello"}),
    );
    assert_eq!(sent.status, 202, "{}", sent.text());
    let seen = watch.recv_until(T, |m| m["type"] == "user_message");
    assert_eq!(seen.last().unwrap()["by"], "alice");
    loop {
        match watch.next(T) {
            Got::Json(m) if m["content"]["text"] == "hello" => break,
            Got::Json(_) => {}
            other => panic!("{other:?}"),
        }
    }
    // Metrics name every worker: admins only (there is none here).
    assert_eq!(as_(a, "GET", "/metrics", &json!({})).status, 403);
    assert_eq!(
        as_(a, "DELETE", &format!("/api/workers/{id}"), &json!({})).status,
        200
    );
}

/// A login attempt from `source`; the answer's status.
fn login_from(source: &str, hub: &Workerhub, token: &str) -> u16 {
    let mut sock = connect_from(source, hub).unwrap();
    sock.set_read_timeout(Some(T)).unwrap();
    let body = json!({"token": token}).to_string();
    let head = format!(
        "POST /api/auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    sock.write_all(head.as_bytes()).unwrap();
    read_response(&mut BufReader::new(sock)).status
}

#[test]
fn wrong_logins_are_throttled_per_address_and_logged() {
    let hub = Workerhub::start(&[]);
    let statuses: Vec<u16> = (0..12)
        .map(|i| login_from("127.0.0.5", &hub, &format!("guess-{i:020}")))
        .collect();
    assert_eq!(statuses[..9], [401; 9]);
    assert_eq!(statuses[11], 429, "{statuses:?}");
    // Even the right token waits out the block from that address...
    let token = hub.token.clone().unwrap();
    assert_eq!(login_from("127.0.0.5", &hub, &token), 429);
    assert!(hub.log().contains("wrong token"), "failures are logged");
    // ...while the server goes on serving everyone else.
    assert_eq!(login_from("127.0.0.6", &hub, &token), 200);
    serves_normally(&hub);
}
