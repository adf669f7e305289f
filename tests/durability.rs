//! Nothing lost: history on disk across crashes and restarts, replay from any seq,
//! slow and silent clients, and resources given back when clients and workers go.

mod support;

use std::io::Write;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::TempDir;
use support::server::{Got, Workerhub, Ws, proc_stats, thread_names};

const T: Duration = Duration::from_secs(30);

fn seq(e: &Value) -> Option<u64> {
    e["seq"].as_u64()
}

#[test]
fn after_a_sigkill_every_event_a_client_saw_is_in_the_history_and_numbering_continues() {
    let tmp = TempDir::new("wh-crash").unwrap();
    let data = tmp.path().join("data");
    let mut hub = Workerhub::start_in(&data, &[]);
    let id = hub.command_worker(&[
        "sh",
        "-c",
        "i=0; while :; do i=$((i+1)); echo line-$i; done",
    ]);
    let mut ws = hub.ws(&format!("/ws/{id}?since=0"));
    let mut seen = Vec::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(700) {
        seen.push(ws.recv(T));
    }
    hub.crash();
    // Whatever was already on its way to the client still counts.
    while let Got::Json(e) = ws.next(Duration::from_millis(500)) {
        seen.push(e);
    }
    assert!(
        seen.len() > 100,
        "the client saw a stream ({} events)",
        seen.len()
    );

    let hub = Workerhub::start_in(&data, &[]);
    let kept = hub.history(&id);
    for event in &seen {
        let s = seq(event).unwrap() as usize;
        assert_eq!(
            &kept[s - 1],
            event,
            "event {s} as the client saw it is in the history"
        );
    }
    let seqs: Vec<u64> = kept.iter().filter_map(seq).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "history is in order without gaps"
    );
    let last = *seqs.last().unwrap();
    let worker = hub.worker(&id);
    assert_eq!(worker["status"], "interrupted");
    assert_eq!(
        worker["last_seq"], last,
        "the restart's status event came next"
    );
    let restarted = kept.last().unwrap();
    assert_eq!(restarted["status"], "interrupted");
    // New events continue from the next seq; old seqs are never reused.
    let resp = hub.post_json(&format!("/api/workers/{id}/start"), &json!({}));
    assert_eq!(resp.status, 200, "{}", resp.text());
    let mut ws = hub.ws(&format!("/ws/{id}?since={last}"));
    let next = ws.recv(T);
    assert_eq!(seq(&next), Some(last + 1));
}

#[test]
fn a_torn_last_line_is_skipped_and_the_rest_of_the_history_loads() {
    let tmp = TempDir::new("wh-torn").unwrap();
    let data = tmp.path().join("data");
    let mut hub = Workerhub::start_in(&data, &[]);
    let id = hub.command_worker(&["sh", "-c", "seq 1 50"]);
    hub.wait_status(&id, |s| s == "exited", T);
    let before = hub.history(&id);
    hub.stop_with(15, T).unwrap();
    let dir = data.join("workers").join(&id).join("events");
    let segment = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .max()
        .unwrap();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&segment)
        .unwrap();
    f.write_all(br#"{"seq":999,"type":"output","timest"#)
        .unwrap();
    drop(f);

    let hub = Workerhub::start_in(&data, &[]);
    assert_eq!(hub.history(&id), before);
    assert!(
        hub.log().contains("incomplete or corrupt"),
        "a warning names the problem"
    );
    let last = before.last().and_then(seq).unwrap();
    assert_eq!(hub.worker(&id)["last_seq"], last);
}

#[test]
fn a_hundred_random_drops_and_reconnects_during_a_fast_stream_lose_nothing() {
    let hub = Workerhub::start(&[]);
    let id = hub.command_worker(&["sh", "-c", "read go; seq 1 500000; cat"]);
    let mut received: Vec<Value> = Vec::new();
    let mut last = 0u64;
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next_random = |max: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % max
    };
    let mut started = false;
    for cycle in 0..100 {
        let mut ws = hub.ws(&format!("/ws/{id}?since={last}"));
        if !started {
            hub.post_json(
                &format!("/api/workers/{id}/messages"),
                &json!({"content": "go"}),
            );
            started = true;
        }
        let take = 1 + next_random(4000);
        for _ in 0..take {
            match ws.next(T) {
                Got::Json(e) => {
                    let s = seq(&e).expect("events carry a seq");
                    assert_eq!(s, last + 1, "cycle {cycle}: no gap and no duplicate");
                    last = s;
                    received.push(e);
                }
                other => panic!("cycle {cycle}: {other:?}"),
            }
        }
        // Drop the connection abruptly, in the middle of the stream.
        let _ = ws.inner.get_ref().shutdown(std::net::Shutdown::Both);
    }
    // And the rest, to the end of the stream.
    let mut ws = hub.ws(&format!("/ws/{id}?since={last}"));
    while !received
        .last()
        .is_some_and(|e| e["content"]["text"] == "500000")
    {
        let e = ws.recv(T);
        assert_eq!(seq(&e), Some(last + 1));
        last += 1;
        received.push(e);
    }
    let lines: Vec<&str> = received
        .iter()
        .filter(|e| e["type"] == "output")
        .map(|e| e["content"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(lines.len(), 500_000);
    assert!(
        lines
            .iter()
            .enumerate()
            .all(|(i, l)| *l == (i + 1).to_string())
    );
}

#[test]
fn a_stalled_client_is_closed_with_1013_and_nobody_else_notices() {
    let hub = Workerhub::start(&["--outbox-bytes", "1048576", "--stall-timeout", "3"]);
    // About 100 MB, started once every client is connected.
    let id = hub.command_worker(&[
        "sh",
        "-c",
        "read go; yes 0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123 | head -n 1000000; echo END; cat",
    ]);
    let mut stalled = hub.ws(&format!("/ws/{id}"));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (connector, path) = (hub.connector(), format!("/ws/{id}"));
            std::thread::spawn(move || {
                let mut ws = connector.ws(&path).unwrap();
                let mut count = 0u64;
                let mut last = 0u64;
                loop {
                    let e = ws.recv(T);
                    if let Some(s) = e["seq"].as_u64() {
                        assert!(
                            last == 0 || s == last + 1,
                            "no gap for a reader that keeps up"
                        );
                        last = s;
                    }
                    if e["type"] == "output" {
                        count += 1;
                        if e["content"]["text"] == "END" {
                            return count;
                        }
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let (rss_before, _, _) = proc_stats(hub.pid());
    hub.post_json(
        &format!("/api/workers/{id}/messages"),
        &json!({"content": "go"}),
    );
    // The stalled client reads nothing for well past the stall timeout, then finds what
    // was sent before it fell behind, and a 1013 that tells it where to resume. (It
    // reads on its own thread, not after the readers finish: the server keeps a closed
    // client's socket only so long for it to read up to the close frame.)
    let stalled_reader = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(6));
        let mut last_seen = 0;
        loop {
            match stalled.next(T) {
                Got::Json(e) => last_seen = seq(&e).unwrap_or(last_seen),
                Got::Closed(Some(frame)) => {
                    assert_eq!(u16::from(frame.code), 1013);
                    return (last_seen, frame.reason.to_string());
                }
                other => panic!("expected a 1013 close, got {other:?}"),
            }
        }
    });
    let mut rss_peak = rss_before;
    let done = Instant::now();
    while readers.iter().any(|r| !r.is_finished()) {
        assert!(
            done.elapsed() < Duration::from_secs(120),
            "the readers finish"
        );
        rss_peak = rss_peak.max(proc_stats(hub.pid()).0);
        std::thread::sleep(Duration::from_millis(50));
    }
    for reader in readers {
        assert_eq!(
            reader.join().unwrap(),
            1_000_001,
            "a reader that keeps up gets every line"
        );
    }
    println!("server RSS: {rss_before} KiB before, {rss_peak} KiB at most while streaming 100 MB");

    let (last_seen, reason) = stalled_reader.join().unwrap();
    let resume: u64 = reason
        .rsplit("since=")
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(
        resume, last_seen,
        "the reason names the last seq it received: {reason}"
    );
    let mut again = hub.ws(&format!("/ws/{id}?since={resume}"));
    assert_eq!(seq(&again.recv(T)), Some(resume + 1));
}

#[test]
fn a_client_that_asks_for_history_no_longer_kept_is_told_where_it_starts() {
    let hub = Workerhub::start(&[
        "--history-segment-bytes",
        "8192",
        "--history-max-bytes",
        "65536",
        "--memory-events",
        "16",
    ]);
    let id = hub.command_worker(&["sh", "-c", "seq 1 20000"]);
    hub.wait_status(&id, |s| s == "exited", T);
    let w = hub.worker(&id);
    let first = w["first_seq"].as_u64().unwrap();
    assert!(first > 1, "old segments were dropped: {w}");
    let mut ws = hub.ws(&format!("/ws/{id}?since=0"));
    let gap = ws.recv(T);
    assert_eq!(gap["type"], "error");
    assert_eq!(gap["code"], "history_gap");
    assert_eq!(gap["first_seq"], first);
    assert_eq!(seq(&ws.recv(T)), Some(first));
    let page = hub
        .get(&format!("/api/workers/{id}/events?since=0&limit=5"))
        .json();
    assert_eq!(page["first_seq"], first);
    assert_eq!(page["events"][0]["seq"], first);
}

#[test]
fn a_long_history_replays_from_disk_in_order() {
    let hub = Workerhub::start(&["--memory-events", "100"]);
    let id = hub.command_worker(&["sh", "-c", "seq 1 100000"]);
    hub.wait_status(&id, |s| s == "exited", T);
    let last = hub.worker(&id)["last_seq"].as_u64().unwrap();
    let mut ws = hub.ws(&format!("/ws/{id}?since=0"));
    for expected in 1..=last {
        let e = ws.recv(T);
        assert_eq!(seq(&e), Some(expected));
    }
}

#[test]
fn a_silent_client_is_closed_after_its_ping_goes_unanswered() {
    let hub = Workerhub::start(&["--ping-interval", "1", "--pong-timeout", "1"]);
    let id = hub.command_worker(&["cat"]);
    // A client that keeps answering pings stays.
    let mut lively = hub.ws(&format!("/ws/{id}"));
    // A client that completed the handshake and then went silent: it never reads, so it
    // never answers the server's pings.
    let _silent = hub.ws(&format!("/ws/{id}"));
    let count = || {
        hub.get("/api/status").json()["connections"]
            .as_u64()
            .unwrap()
    };
    // Both are registered once their upgrade completes on the server's side.
    let registered = Instant::now() + Duration::from_secs(5);
    while count() < 2 {
        assert!(Instant::now() < registered, "both connections are counted");
        std::thread::sleep(Duration::from_millis(10));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while count() > 1 {
        let _ = lively.next(Duration::from_millis(200));
        assert!(
            Instant::now() < deadline,
            "the silent client was not closed"
        );
    }
    // The lively one answered its pings and is still served.
    lively.send_json(&json!({"type": "ping"}));
    assert_eq!(lively.recv(T)["type"], "pong");
}

#[test]
fn connections_past_the_limit_are_refused_clearly() {
    let hub = Workerhub::start(&["--max-connections", "3"]);
    let id = hub.command_worker(&["cat"]);
    let _held: Vec<Ws> = (0..3).map(|_| hub.ws(&format!("/ws/{id}"))).collect();
    match hub.ws_with(&format!("/ws/{id}"), &[]) {
        Err(tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), 503);
            let body =
                String::from_utf8_lossy(resp.body().as_deref().unwrap_or_default()).to_string();
            assert!(body.contains("too_many_connections"), "{body}");
        }
        other => panic!("expected 503, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn connection_and_worker_churn_gives_threads_and_descriptors_back() {
    let hub = Workerhub::start(&[]);
    let id = hub.command_worker(&["cat"]);
    let churn = |connections: usize, workers: usize| {
        for i in 0..connections {
            let mut ws = hub.ws(&format!("/ws/{id}"));
            if i % 2 == 0 {
                let _ = ws.inner.close(None);
                let _ = ws.next(Duration::from_secs(2));
            }
        }
        for _ in 0..workers {
            let worker = hub.command_worker(&["cat"]);
            assert_eq!(hub.delete(&format!("/api/workers/{worker}")).status, 200);
        }
    };
    // Warm up (the allocator and the C library keep some memory and thread stacks for
    // reuse), then let tiny_http's idle connection threads retire (they live 5 s).
    churn(2_000, 100);
    std::thread::sleep(Duration::from_secs(6));
    // Threads named by workerhub must all be given back. tiny_http's connection threads
    // (`http-conn`, and unnamed ones that carry the process's name, as do `main` and
    // tiny_http's accept thread) come and go: idle ones leave after 5 s, but up to 4
    // stay for good, however many connections came before.
    const UNNAMED_AT_MOST: usize = 2 + 4;
    let pooled = |n: &String| n == "workerhub" || n == "http-conn";
    let split = |names: Vec<String>| -> (Vec<String>, usize) {
        let unnamed = names.iter().filter(|n| pooled(n)).count();
        (names.into_iter().filter(|n| !pooled(n)).collect(), unnamed)
    };
    let (rss0, _, fds0) = proc_stats(hub.pid());
    let (named0, _) = split(thread_names(hub.pid()));

    churn(10_000, 1_000);
    let deadline = Instant::now() + Duration::from_secs(25);
    let (rss1, fds1, named1, unnamed1) = loop {
        let (rss, _, fds) = proc_stats(hub.pid());
        let (named, unnamed) = split(thread_names(hub.pid()));
        // The server gives free heap back to the kernel every 10 s.
        let back = named.len() <= named0.len()
            && unnamed <= UNNAMED_AT_MOST
            && fds <= fds0
            && rss <= rss0 + rss0 / 20;
        if back || Instant::now() > deadline {
            break (rss, fds, named, unnamed);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    println!(
        "after 10,000 connections and 1,000 workers: RSS {rss0} -> {rss1} KiB, named threads {} -> {}, tiny_http's {unnamed1}, fds {fds0} -> {fds1}",
        named0.len(),
        named1.len()
    );
    assert!(
        named1.len() <= named0.len(),
        "threads are given back: {named0:?} before, {named1:?} after"
    );
    assert!(
        unnamed1 <= UNNAMED_AT_MOST,
        "tiny_http keeps at most its 4 idle connection threads ({unnamed1} unnamed threads)"
    );
    assert!(fds1 <= fds0, "descriptors are given back");
    assert!(rss1 <= rss0 + rss0 / 20, "memory is given back (within 5%)");
    assert_eq!(hub.get("/api/status").json()["connections"], 0);
}
