//! Following an AI worker's turns over its WebSocket, for the tests of live sessions
//! and approvals.

use std::time::Duration;

use serde_json::{Map, Value};

use super::server::Ws;

/// How long a turn of a real CLI against the mock may take, on a loaded machine.
pub const TURN: Duration = Duration::from_secs(90);

/// The next event of `kind` (panics when none comes).
pub fn next_of(ws: &mut Ws, kind: &str) -> Value {
    ws.recv_until(TURN, |e| e["type"] == kind)
        .pop()
        .unwrap_or_else(|| panic!("no {kind}"))
}

/// The events up to the status that ends the running turn.
pub fn turn_end(ws: &mut Ws) -> Vec<Value> {
    ws.recv_until(TURN, |e| {
        e["type"] == "status" && e.get("last_turn").is_some()
    })
}

/// How the turn that `events` end ended.
pub fn outcome(events: &[Value]) -> String {
    events
        .last()
        .and_then(|e| e["last_turn"]["outcome"].as_str())
        .unwrap_or("")
        .to_string()
}

/// The contents of the `output` events of `kind` (`text`, `plan`, ...).
pub fn outputs<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["type"] == "output" && e["content"]["kind"] == kind)
        .map(|e| &e["content"])
        .collect()
}

/// Environment pairs as a worker's `env` object.
pub fn env_object(pairs: Vec<(String, String)>) -> Map<String, Value> {
    pairs
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect()
}
