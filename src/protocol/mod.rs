//! The agent protocol on `/ws` (see docs/PROTOCOL.md): one WebSocket over which a
//! dashboard creates agents (workers), runs commands, assigns tasks and follows
//! everything, each answer matched to its request by `correlation_id`.
//!
//! * `mod.rs`: the envelope, building and checking it;
//! * `session.rs`: one `/ws` connection, dispatching requests;
//! * `clients.rs`: every `/ws` connection, for pushes (status changes, tasks, system);
//! * `watch.rs`: following one turn of a worker (for `command:execute` and tasks).

pub mod clients;
pub mod session;
pub mod watch;

use serde_json::{Map, Value};

use crate::clock;
use crate::event::Event;
use crate::ws::frame;

/// The protocol's version, sent in `connection:ack`.
pub const PROTOCOL_VERSION: u32 = 1;

/// A new envelope: `{"id","type","timestamp","payload","source"?,"correlation_id"?}`.
pub fn envelope(
    kind: &str,
    payload: Value,
    source: Option<&str>,
    correlation_id: Option<&str>,
) -> Value {
    let mut map = Map::new();
    map.insert("id".into(), uuid::Uuid::new_v4().to_string().into());
    map.insert("type".into(), kind.into());
    map.insert("timestamp".into(), clock::now_rfc3339().into());
    map.insert("payload".into(), payload);
    if let Some(source) = source {
        map.insert("source".into(), source.into());
    }
    if let Some(id) = correlation_id {
        map.insert("correlation_id".into(), id.into());
    }
    Value::Object(map)
}

/// A request as received, after checking.
#[derive(Debug)]
pub struct Request {
    pub id: String,
    pub kind: String,
    pub payload: Map<String, Value>,
    pub target: Option<String>,
}

/// Why a message is not a valid request: an error code, a message, and the request's id
/// when it had a usable one.
#[derive(Debug)]
pub struct Invalid {
    pub code: &'static str,
    pub message: String,
    pub id: Option<String>,
}

const MAX_ID: usize = 200;

/// Message types a client may send.
pub const REQUEST_TYPES: &[&str] = &[
    "connection:ping",
    "agent:create",
    "agent:status",
    "agent:list",
    "agent:subscribe",
    "agent:unsubscribe",
    "agent:interrupt",
    "agent:stop",
    "agent:delete",
    "command:execute",
    "task:assign",
    "task:list",
    "task:cancel",
    "task:run",
    "system:status",
    "system:metric",
];

/// Checks an incoming message: a JSON object with a string `id` (at most 200
/// characters) and a known `type`; `payload`, when present, an object; `timestamp`,
/// `source`, `target` and `correlation_id`, when present, strings.
pub fn parse_request(text: &str) -> Result<Request, Invalid> {
    let value: Value = serde_json::from_str(text).map_err(|err| Invalid {
        code: "invalid_json",
        message: format!("message is not JSON: {err}"),
        id: None,
    })?;
    let Value::Object(mut map) = value else {
        return Err(Invalid {
            code: "invalid_envelope",
            message: "a message must be a JSON object (an envelope)".into(),
            id: None,
        });
    };
    let id = match map.get("id") {
        Some(Value::String(id)) if !id.is_empty() && id.len() <= MAX_ID => id.clone(),
        Some(Value::String(_)) => {
            return Err(Invalid {
                code: "invalid_envelope",
                message: format!("`id` must be a non-empty string of at most {MAX_ID} characters"),
                id: None,
            });
        }
        Some(_) => {
            return Err(Invalid {
                code: "invalid_envelope",
                message: "`id` must be a string".into(),
                id: None,
            });
        }
        None => {
            return Err(Invalid {
                code: "invalid_envelope",
                message: "the envelope needs an `id`".into(),
                id: None,
            });
        }
    };
    let fail = |code: &'static str, message: String| Invalid {
        code,
        message,
        id: Some(id.clone()),
    };
    let kind = match map.get("type") {
        Some(Value::String(kind)) => kind.clone(),
        Some(_) => return Err(fail("invalid_envelope", "`type` must be a string".into())),
        None => {
            return Err(fail(
                "invalid_envelope",
                "the envelope needs a `type`".into(),
            ));
        }
    };
    if !REQUEST_TYPES.contains(&kind.as_str()) {
        return Err(fail(
            "unknown_type",
            format!(
                "unknown message type `{kind}`; see docs/PROTOCOL.md for the types a client may send"
            ),
        ));
    }
    for key in ["timestamp", "source", "target", "correlation_id"] {
        if map.get(key).is_some_and(|v| !v.is_string() && !v.is_null()) {
            return Err(fail(
                "invalid_envelope",
                format!("`{key}` must be a string"),
            ));
        }
    }
    let payload = match map.remove("payload") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(payload)) => payload,
        Some(_) => {
            return Err(fail(
                "invalid_envelope",
                "`payload` must be an object".into(),
            ));
        }
    };
    let target = map
        .get("target")
        .and_then(Value::as_str)
        .map(str::to_string);
    Ok(Request {
        id,
        kind,
        payload,
        target,
    })
}

/// The timestamp a feed event carries (feed JSON always has it right after `type`).
fn event_timestamp(json: &[u8]) -> &[u8] {
    const KEY: &[u8] = b"\"timestamp\":\"";
    json.windows(KEY.len())
        .position(|w| w == KEY)
        .and_then(|at| {
            let rest = &json[at + KEY.len()..];
            rest.iter().position(|&b| b == b'"').map(|end| &rest[..end])
        })
        .unwrap_or(b"")
}

/// A feed event wrapped as an `agent:event` envelope from worker `source`, framed. Its
/// id, `SOURCE:SEQ`, is the same for every subscriber, so it is built once per event.
pub fn envelope_event_frame(event: &Event, source: &str) -> Vec<u8> {
    let json = event.json();
    let mut out = Vec::with_capacity(json.len() + 160);
    out.extend_from_slice(b"{\"id\":\"");
    out.extend_from_slice(source.as_bytes());
    out.push(b':');
    out.extend_from_slice(event.seq.to_string().as_bytes());
    out.extend_from_slice(b"\",\"type\":\"agent:event\",\"timestamp\":\"");
    out.extend_from_slice(event_timestamp(json));
    out.extend_from_slice(b"\",\"source\":\"");
    out.extend_from_slice(source.as_bytes());
    out.extend_from_slice(b"\",\"payload\":");
    out.extend_from_slice(json);
    out.push(b'}');
    frame::text(&out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_request_is_parsed() {
        let r = parse_request(
            r#"{"id":"1","type":"connection:ping","timestamp":"t","payload":{"a":1}}"#,
        )
        .unwrap();
        assert_eq!(r.id, "1");
        assert_eq!(r.kind, "connection:ping");
        assert_eq!(r.payload["a"], 1);
    }

    #[test]
    fn bad_envelopes_are_named_and_keep_their_id_when_usable() {
        let cases = [
            ("nope", "invalid_json", None),
            ("[1]", "invalid_envelope", None),
            (r#"{"type":"connection:ping"}"#, "invalid_envelope", None),
            (
                r#"{"id":5,"type":"connection:ping"}"#,
                "invalid_envelope",
                None,
            ),
            (r#"{"id":"a"}"#, "invalid_envelope", Some("a")),
            (r#"{"id":"a","type":7}"#, "invalid_envelope", Some("a")),
            (
                r#"{"id":"a","type":"agent:fly"}"#,
                "unknown_type",
                Some("a"),
            ),
            (
                r#"{"id":"a","type":"connection:ping","payload":[]}"#,
                "invalid_envelope",
                Some("a"),
            ),
            (
                r#"{"id":"a","type":"connection:ping","target":1}"#,
                "invalid_envelope",
                Some("a"),
            ),
        ];
        for (text, code, id) in cases {
            let err = parse_request(text).unwrap_err();
            assert_eq!(err.code, code, "{text}");
            assert_eq!(err.id.as_deref(), id, "{text}");
        }
    }

    #[test]
    fn an_event_envelope_carries_the_event_whole() {
        let event = Event::from_json(
            7,
            br#"{"seq":7,"type":"output","timestamp":"2026-01-01T00:00:00.000000Z","x":1}"#,
        );
        let frame = envelope_event_frame(&event, "w1");
        let header = if frame[1] == 126 { 4 } else { 2 };
        let v: Value = serde_json::from_slice(&frame[header..]).unwrap();
        assert_eq!(v["id"], "w1:7");
        assert_eq!(v["type"], "agent:event");
        assert_eq!(v["source"], "w1");
        assert_eq!(v["timestamp"], "2026-01-01T00:00:00.000000Z");
        assert_eq!(v["payload"]["x"], 1);
    }
}
