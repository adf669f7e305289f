//! A worker's life around its process: the order in which input reaches the program,
//! restart policies, a server killed outright with workers running, and the agent
//! protocol's answer to a message it cannot take.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::TempDir;
use support::server::Workerhub;

const T: Duration = Duration::from_secs(30);

fn texts_of<'a>(events: &'a [Value], kind: &str) -> Vec<&'a str> {
    events
        .iter()
        .filter(|e| e["type"] == kind)
        .filter_map(|e| match kind {
            "user_message" => e["content"].as_str(),
            _ => e["content"]["text"].as_str(),
        })
        .collect()
}

#[test]
fn input_reaches_the_program_in_the_order_of_its_user_message_events() {
    const ROUNDS: usize = 200;
    const EACH: usize = 10;
    let hub = Workerhub::start(&[]);
    let id = hub.command_worker(&["cat"]);
    hub.wait_status(&id, |s| s == "running", T);
    let path = format!("/ws/{id}");
    let (a, b) = (hub.connector(), hub.connector());
    let mut clients = [
        a.ws(&path).expect("client a"),
        b.ws(&path).expect("client b"),
    ];
    for round in 0..ROUNDS {
        // Both clients send at the same moment, alternating, as fast as they can.
        std::thread::scope(|scope| {
            for (who, ws) in clients.iter_mut().enumerate() {
                scope.spawn(move || {
                    for i in 0..EACH {
                        ws.send_json(
                            &json!({"type": "message", "content": format!("r{round}-c{who}-{i}")}),
                        );
                    }
                });
            }
        });
    }
    // Wait for every line to come back, then compare the two orders.
    let total = ROUNDS * EACH * 2;
    let deadline = Instant::now() + Duration::from_secs(60);
    let events = loop {
        let events = hub.history(&id);
        if texts_of(&events, "output").len() >= total || Instant::now() >= deadline {
            break events;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let sent = texts_of(&events, "user_message");
    let received = texts_of(&events, "output");
    assert_eq!(sent.len(), total, "every message is in the history");
    assert_eq!(received.len(), total, "cat echoed every message");
    let first_difference = sent.iter().zip(&received).position(|(s, r)| s != r);
    assert_eq!(
        first_difference, None,
        "the program got its input in another order than the user_message seqs say"
    );
    // And every client's own messages kept their order.
    for who in 0..2 {
        let mine: Vec<_> = sent
            .iter()
            .filter(|t| t.contains(&format!("-c{who}-")))
            .collect();
        let expected: Vec<String> = (0..ROUNDS)
            .flat_map(|r| (0..EACH).map(move |i| format!("r{r}-c{who}-{i}")))
            .collect();
        assert!(mine.iter().zip(&expected).all(|(m, e)| **m == e.as_str()));
    }
}

#[test]
fn a_message_over_the_limit_on_the_agent_protocol_is_answered_with_a_system_error_envelope() {
    let hub = Workerhub::start(&["--max-message-bytes", "1000"]);
    let mut ws = hub.ws("/ws");
    let ack = ws.recv(T);
    assert_eq!(ack["type"], "connection:ack");
    ws.send_text(&format!(
        r#"{{"id":"big","type":"connection:ping","payload":{{"pad":"{}"}}}}"#,
        "x".repeat(5000)
    ));
    let answer = ws.recv_until(T, |m| {
        m["type"] != "system:status" && m["type"] != "agent:status"
    });
    let answer = answer.last().expect("an answer");
    assert_eq!(answer["type"], "system:error", "{answer}");
    assert_eq!(answer["payload"]["code"], "message_too_large", "{answer}");
    assert_eq!(answer["payload"]["status"], 413, "{answer}");
    assert!(
        answer["id"].is_string() && answer["timestamp"].is_string(),
        "an envelope: {answer}"
    );
    // The connection still answers.
    ws.send_json(&json!({"id": "after", "type": "connection:ping"}));
    let pong = ws.recv_until(T, |m| m["correlation_id"] == "after");
    assert_eq!(pong.last().unwrap()["type"], "connection:pong");
}

/// The processes whose process group is `pgid`, with their start times.
fn group_members(pgid: u32) -> Vec<(u32, u64)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // After the command name (in parentheses, may hold spaces): state, ppid, pgrp.
            let fields: Vec<&str> = stat[stat.rfind(')')? + 2..].split(' ').collect();
            let group: u32 = fields.get(2)?.parse().ok()?;
            let start: u64 = fields.get(19)?.parse().ok()?;
            // A zombie is not running: its parent (a dead server) just has not reaped it.
            (group == pgid && fields[0] != "Z").then_some((pid, start))
        })
        .collect()
}

fn still_alive(members: &[(u32, u64)]) -> Vec<u32> {
    members
        .iter()
        .filter(|(pid, start)| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                let fields: Vec<&str> = stat[stat.rfind(')').unwrap_or(0) + 2..]
                    .split(' ')
                    .collect();
                fields.first() != Some(&"Z") && fields.get(19) == Some(&start.to_string().as_str())
            })
        })
        .map(|(pid, _)| *pid)
        .collect()
}

#[test]
fn after_a_sigkill_no_process_of_the_old_workers_is_left_and_restart_always_runs_again() {
    let tmp = TempDir::new("wh-sigkill").unwrap();
    let data = tmp.path().join("data");
    let args = ["--stop-grace", "1"];
    let mut hub = Workerhub::start_in(&data, &args);
    let folder = std::env::temp_dir();
    // A plain program whose child lives on in its group.
    let plain = hub.command_worker(&["sh", "-c", "sleep 1000 & wait"]);
    // One whose group ignores SIGTERM: only SIGKILL ends it.
    let stubborn = hub.command_worker(&[
        "sh",
        "-c",
        "trap '' TERM; sh -c \"trap '' TERM; while :; do sleep 0.1; done\" & wait",
    ]);
    // One that should come back after the restart.
    let always = hub.create_worker(json!({
        "ai_cli_type": "command",
        "project_path": folder,
        "command": ["sh", "-c", "echo up; sleep 1000 & wait"],
        "restart": "always",
    }));
    let mut groups = Vec::new();
    for id in [&plain, &stubborn, &always] {
        let w = hub.wait_status(id, |s| s == "running", T);
        let pid = w["pid"].as_u64().expect("a pid") as u32;
        // The group has its grandchildren once the shell forked them.
        let deadline = Instant::now() + T;
        let members = loop {
            let members = group_members(pid);
            if members.len() >= 2 || Instant::now() >= deadline {
                break members;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(members.len() >= 2, "worker {id}: {members:?}");
        groups.push((id.clone(), pid, members));
    }
    assert_eq!(hub.worker(&always)["restart"], "always");

    hub.crash();
    // The kernel ends each group's leader with the server; what the leaders forked
    // outlives them until the next server ends it.
    let survivors: usize = groups.iter().map(|(_, _, m)| still_alive(m).len()).sum();
    assert!(
        survivors > 0,
        "the grandchildren outlive a SIGKILLed server"
    );

    let hub = Workerhub::start_in(&data, &args);
    for (id, pid, members) in &groups {
        let left = still_alive(members);
        assert!(
            left.is_empty(),
            "worker {id}: processes {left:?} of group {pid} outlived the restart\n{}",
            hub.log()
        );
    }
    let log = hub.log();
    assert!(log.contains("outlived the previous server"), "{log}");
    assert!(
        log.contains("sending SIGKILL"),
        "the stubborn group needed SIGKILL: {log}"
    );

    // Each worker says what happened.
    for (id, _, _) in &groups {
        let said = hub
            .history(id)
            .into_iter()
            .filter(|e| e["type"] == "status" && e["status"] == "interrupted")
            .filter_map(|e| e["reason"].as_str().map(str::to_string))
            .next_back();
        let said = said.unwrap_or_else(|| panic!("worker {id} says nothing of the crash"));
        assert!(said.contains("outlived the server"), "{id}: {said}");
    }
    let stubborn_said = hub
        .history(&stubborn)
        .into_iter()
        .filter_map(|e| e["reason"].as_str().map(str::to_string))
        .next_back()
        .unwrap();
    assert!(stubborn_said.contains("SIGKILL"), "{stubborn_said}");
    for id in [&plain, &stubborn] {
        assert_eq!(hub.worker(id)["status"], "interrupted");
    }
    // restart: always: running again, with a new process.
    let w = hub.wait_status(&always, |s| s == "running", T);
    assert_eq!(w["status"], "running", "{w}");
    let old_pid = groups[2].1 as u64;
    assert_ne!(w["pid"].as_u64(), Some(old_pid));
    let ups = texts_of(&hub.history(&always), "output")
        .into_iter()
        .filter(|t| *t == "up")
        .count();
    assert!(ups >= 2, "the program ran again ({ups} starts)");
}

/// The status events of a worker, in order: (status, pid).
fn statuses(hub: &Workerhub, id: &str) -> Vec<(String, Option<u64>, String)> {
    hub.history(id)
        .into_iter()
        .filter(|e| e["type"] == "status")
        .map(|e| {
            (
                e["status"].as_str().unwrap_or("").to_string(),
                e["pid"].as_u64(),
                e["timestamp"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn create(hub: &Workerhub, argv: &[&str], restart: &str) -> String {
    hub.create_worker(json!({
        "ai_cli_type": "command",
        "project_path": std::env::temp_dir(),
        "command": argv,
        "restart": restart,
    }))
}

/// Seconds between two RFC 3339 timestamps of the same day.
fn seconds_between(a: &str, b: &str) -> f64 {
    let secs = |t: &str| -> f64 {
        let clock = &t[t.find('T').unwrap() + 1..t.len() - 1];
        let parts: Vec<f64> = clock.split(':').map(|p| p.parse().unwrap()).collect();
        parts[0] * 3600.0 + parts[1] * 60.0 + parts[2]
    };
    secs(b) - secs(a)
}

#[test]
fn restart_policies_start_a_program_again_with_a_growing_delay_but_not_after_a_stop() {
    let hub = Workerhub::start(&[]);
    let failing = create(&hub, &["sh", "-c", "echo run; exit 3"], "on-failure");
    let succeeding = create(&hub, &["sh", "-c", "echo run; exit 0"], "on-failure");
    let never = create(&hub, &["sh", "-c", "echo run; exit 3"], "no");
    let always = create(&hub, &["sh", "-c", "echo run; sleep 1000 & wait"], "always");
    assert_eq!(hub.worker(&never)["restart"], "no");

    // on-failure: the failing program runs three times within 1 s + 2 s of back-off.
    let deadline = Instant::now() + T;
    let runs = |id: &str| {
        texts_of(&hub.history(id), "output")
            .iter()
            .filter(|t| **t == "run")
            .count()
    };
    while runs(&failing) < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(runs(&failing) >= 3, "{:?}", statuses(&hub, &failing));
    // The delays grow: each start after an exit waits longer than the one before.
    let st = statuses(&hub, &failing);
    let mut gaps = Vec::new();
    let mut exited_at: Option<&str> = None;
    for (status, _, at) in &st {
        match status.as_str() {
            "exited" => exited_at = Some(at),
            "running" | "starting" => {
                if let Some(e) = exited_at.take() {
                    gaps.push(seconds_between(e, at));
                }
            }
            _ => {}
        }
    }
    assert!(gaps.len() >= 2, "{st:?}");
    assert!(
        gaps[0] >= 0.9 && gaps[1] >= 1.9 && gaps[1] > gaps[0],
        "back-off: {gaps:?}"
    );

    // A success, or the policy `no`: one run only.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(runs(&succeeding), 1);
    assert_eq!(runs(&never), 1);

    // always, stopped on purpose: stays stopped.
    hub.wait_status(&always, |s| s == "running", T);
    let resp = hub.post_json(&format!("/api/workers/{always}/stop"), &json!({}));
    assert_eq!(resp.status, 200, "{}", resp.text());
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(hub.worker(&always)["status"], "exited");
    assert_eq!(runs(&always), 1);

    // A bad policy is refused clearly.
    let resp = hub.post_json(
        "/api/workers",
        &json!({"ai_cli_type": "command", "project_path": std::env::temp_dir(), "command": ["cat"], "restart": "sometimes"}),
    );
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert!(resp.text().contains("restart"), "{}", resp.text());
}
