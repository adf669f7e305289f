//! Property-based fuzzing of every parser that reads untrusted input: each adapter's line
//! parser (random bytes, mutated real CLI lines, random JSON), the agent protocol's
//! envelope, worker create requests, custom-kind config files, routes and paths, the
//! Host/Origin checks, token extraction, schedules, and history files.
//!
//! Each property runs `FUZZ_CASES` cases (default 2,000, so `make test` stays quick);
//! `make fuzz` runs a million and more in total (docs/SECURITY.md has the figures).

use std::path::Path;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::Value;
use workerhub::adapters::acp::AcpSession;
use workerhub::adapters::claude::ClaudeParser;
use workerhub::adapters::codex::CodexParser;
use workerhub::adapters::codex_server::CodexSession;
use workerhub::adapters::gemini::GeminiParser;
use workerhub::adapters::opencode::OpenCodeParser;
use workerhub::adapters::{LineParser, Parsed, command::Lines, custom};
use workerhub::event::{Pipe, seq_of_line};

fn cases() -> u32 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000)
}

fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    })
}

/// Every line of every captured CLI output.
fn fixture_lines() -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut lines = Vec::new();
    for cli in ["claude", "codex", "gemini", "opencode", "acp"] {
        for entry in std::fs::read_dir(dir.join(cli)).unwrap().flatten() {
            if let Ok(text) = std::fs::read(entry.path()) {
                lines.extend(
                    text.split(|&b| b == b'\n')
                        .filter(|l| !l.is_empty())
                        .map(<[u8]>::to_vec),
                );
            }
        }
    }
    assert!(lines.len() > 50, "fixtures found");
    lines
}

/// A real line with random damage: bytes flipped, inserted, removed, or cut short.
fn mutated_line(lines: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    let n = lines.len();
    (
        0..n,
        prop::collection::vec((0usize..4, any::<usize>(), any::<u8>()), 0..8),
    )
        .prop_map(move |(i, edits)| {
            let mut line = lines[i].clone();
            for (kind, at, byte) in edits {
                let at = if line.is_empty() { 0 } else { at % line.len() };
                match kind {
                    0 if !line.is_empty() => line[at] ^= byte | 1,
                    1 => line.insert(at, byte),
                    2 if !line.is_empty() => {
                        line.remove(at);
                    }
                    _ => line.truncate(at),
                }
            }
            line
        })
}

/// Random JSON objects shaped like CLI lines: a known `type` and odd fields.
fn json_line() -> impl Strategy<Value = Vec<u8>> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| Value::Number(n.into())),
        ".{0,12}".prop_map(Value::String),
    ];
    let value = leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "type",
                    "subtype",
                    "message",
                    "content",
                    "text",
                    "item",
                    "part",
                    "state",
                    "role",
                    "delta",
                    "session_id",
                    "sessionID",
                    "thread_id",
                    "tool_use_id",
                    "id",
                    "name",
                    "input",
                    "output",
                    "status",
                    "stats",
                    "error",
                    "result",
                    "is_error",
                    "usage",
                    "reason",
                    "tokens",
                    "cost",
                    "thinking",
                    "callID",
                    "tool",
                    "parameters",
                ])
                .prop_map(str::to_string),
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    let kinds = prop::sample::select(vec![
        "system",
        "assistant",
        "user",
        "result",
        "init",
        "message",
        "tool_use",
        "tool_result",
        "error",
        "thread.started",
        "turn.started",
        "item.started",
        "item.updated",
        "item.completed",
        "turn.completed",
        "turn.failed",
        "step_start",
        "step_finish",
        "text",
        "reasoning",
        "queue-operation",
        "other",
    ]);
    (kinds, value).prop_map(|(kind, value)| {
        let mut map = match value {
            Value::Object(map) => map,
            other => {
                let mut m = serde_json::Map::new();
                m.insert("content".into(), other);
                m
            }
        };
        map.insert("type".into(), Value::String(kind.into()));
        serde_json::to_vec(&Value::Object(map)).unwrap()
    })
}

fn any_line() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300),
        mutated_line(fixture_lines()),
        json_line(),
    ]
}

fn acp_spec() -> workerhub::spec::WorkerSpec {
    serde_json::from_value(serde_json::json!({
        "name": "a", "ai_cli_type": "acp", "project_path": "/tmp", "command": ["agent"]
    }))
    .expect("a spec")
}

fn parsers() -> Vec<(&'static str, Box<dyn LineParser>)> {
    vec![
        ("claude", Box::new(ClaudeParser::new(false, String::new()))),
        (
            "claude transcript",
            Box::new(ClaudeParser::new(true, String::new())),
        ),
        ("codex", Box::new(CodexParser::default())),
        ("gemini", Box::new(GeminiParser::default())),
        ("opencode", Box::new(OpenCodeParser::default())),
        ("acp", Box::new(AcpSession::new(&acp_spec(), None))),
        (
            "codex app-server",
            Box::new(CodexSession::new(
                &acp_spec(),
                None,
                None,
                true,
                String::new(),
            )),
        ),
        ("command", Box::new(Lines)),
    ]
}

/// No parser panics; every non-blank line becomes at least one event (nothing the CLI
/// says is lost); every event serializes to valid JSON.
#[test]
fn adapter_line_parsers_never_panic_and_never_drop_a_line() {
    let mut runner = runner();
    runner
        .run(&prop::collection::vec(any_line(), 1..6), |lines| {
            for (name, mut parser) in parsers() {
                for line in &lines {
                    let mut out = Parsed::default();
                    parser.line(Pipe::Stdout, line, &mut out);
                    let blank = String::from_utf8_lossy(line).trim().is_empty();
                    // Gemini and ACP agents hold text chunks until the next line.
                    let chunk = String::from_utf8_lossy(line).contains("_chunk");
                    // The app server's deltas: the whole text comes with the item.
                    let delta = name == "codex app-server"
                        && String::from_utf8_lossy(line).contains("Delta");
                    let held = (name == "gemini" || name == "acp" && chunk || delta)
                        && !blank
                        && out.events.is_empty();
                    // A question the program asks becomes the worker's approval_request.
                    let asked = !out.asks.is_empty();
                    prop_assert!(
                        blank || !out.events.is_empty() || held || asked,
                        "{name} dropped {:?}",
                        String::from_utf8_lossy(line)
                    );
                    for event in &out.events {
                        let mut json = Vec::new();
                        event.write_json(1, "T", &mut json);
                        prop_assert!(serde_json::from_slice::<Value>(&json).is_ok());
                    }
                    let mut err = Parsed::default();
                    parser.line(Pipe::Stderr, line, &mut err);
                }
                let mut out = Parsed::default();
                parser.finish(&mut out);
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn envelope_parsing_never_panics_and_names_every_failure() {
    let mut runner = runner();
    let strategy = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..200)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        json_line().prop_map(|b| String::from_utf8(b).unwrap()),
        (
            ".{0,30}",
            prop::sample::select(
                workerhub::protocol::RequestType::ALL
                    .iter()
                    .map(|(_, name)| *name)
                    .collect::<Vec<_>>()
            ),
            ".{0,40}"
        )
            .prop_map(|(id, kind, junk)| format!(
                r#"{{"id":{},"type":"{kind}","payload":{junk}}}"#,
                serde_json::to_string(&id).unwrap()
            )),
    ];
    runner
        .run(&strategy, |text| {
            match workerhub::protocol::parse_request(&text) {
                Ok(req) => prop_assert!(!req.id.is_empty() && req.id.len() <= 200),
                Err(invalid) => prop_assert!(!invalid.message.is_empty()),
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn create_requests_and_config_files_are_checked_without_panicking() {
    let mut runner = runner();
    runner
        .run(&json_line(), |line| {
            let value: Value = serde_json::from_slice(&line).unwrap();
            let _ = workerhub::worker::WorkerSpec::from_json(&value, "command", Path::new("/"));
            let _ = workerhub::tasks::parse_schedule(&value);
            let _ = custom::parse_config(&String::from_utf8_lossy(&line), |name| name == "claude");
            let _ = custom::parse_config(
                &format!(r#"{{"ai_clis":[{}]}}"#, String::from_utf8_lossy(&line)),
                |name| name == "claude",
            );
            Ok(())
        })
        .unwrap();
}

#[test]
fn paths_hosts_origins_and_tokens_are_checked_without_panicking() {
    let mut runner = runner();
    let origins = workerhub::http::guard::Origins::new("127.0.0.1", 7788, &["box.lan".into()], &[]);
    let files = workerhub::http::static_files::StaticFiles::new(None);
    runner
        .run(
            &(".{0,80}", ".{0,40}", ".{0,40}"),
            |(path, host, origin)| {
                let _ = workerhub::http::routes::find(
                    workerhub::api::routes::ROUTES,
                    &tiny_http::Method::Get,
                    &path,
                );
                let _ = workerhub::http::routes::find(
                    workerhub::api::routes::ROUTES,
                    &tiny_http::Method::Post,
                    &path,
                );
                if let Some(workerhub::http::Reply::Bytes { body, .. }) = files.get(&path) {
                    prop_assert!(!String::from_utf8_lossy(&body).contains("root:"));
                }
                let _ = origins.host_ok(Some(&host));
                let _ = origins.origin_ok(&origin);
                let _ =
                    workerhub::auth::Auth::presented(Some(&host), Some(&origin), Some(&path), true);
                let _ = seq_of_line(path.as_bytes());
                Ok(())
            },
        )
        .unwrap();
}

/// A history file with random damage loads (damage skipped) and replays in order.
#[test]
fn damaged_history_files_load_and_replay_in_order() {
    use workerhub::feed::store::{Store, StoreLimits, read_after};
    let cases = (cases() / 20).max(50);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let base = std::env::temp_dir().join(format!("workerhub-fuzz-history-{}", std::process::id()));
    runner
        .run(
            &prop::collection::vec(prop_oneof![any_line(), Just(b"\n".to_vec())], 1..40),
            |chunks| {
                let _ = std::fs::remove_dir_all(&base);
                std::fs::create_dir_all(&base).unwrap();
                let mut bytes = Vec::new();
                for (i, chunk) in chunks.iter().enumerate() {
                    if i % 3 == 0 {
                        bytes.extend_from_slice(
                            format!(r#"{{"seq":{},"type":"x","timestamp":"T"}}"#, i + 1).as_bytes(),
                        );
                        bytes.push(b'\n');
                    }
                    bytes.extend_from_slice(chunk);
                    bytes.push(b'\n');
                }
                std::fs::write(base.join("00000000000000000001.jsonl"), &bytes).unwrap();
                let limits = StoreLimits {
                    segment_bytes: 4096,
                    max_bytes: 1 << 20,
                };
                let (store, last) = Store::open(&base, limits).unwrap();
                let mut cursor = None;
                let events =
                    read_after(&store.segments(), 0, u64::MAX, &mut cursor, 10_000).unwrap();
                let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
                // Replay never goes backwards or repeats, whatever the file holds.
                prop_assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
                // The torn tail is cut: the file ends with a whole line, and numbering will
                // continue after the last whole event.
                let kept =
                    std::fs::read(base.join("00000000000000000001.jsonl")).unwrap_or_default();
                prop_assert!(kept.is_empty() || kept.ends_with(b"\n"));
                if let Some(last_line) = kept
                    .strip_suffix(b"\n")
                    .and_then(|k| k.rsplit(|&b| b == b'\n').next())
                {
                    prop_assert_eq!(seq_of_line(last_line), Some(last));
                }
                drop(store);
                Ok(())
            },
        )
        .unwrap();
    let _ = std::fs::remove_dir_all(&base);
}
