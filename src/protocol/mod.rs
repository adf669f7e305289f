//! The agent protocol on `/ws` (see docs/PROTOCOL.md): one WebSocket over which a
//! dashboard creates agents (workers), runs commands, assigns tasks and follows
//! everything, each answer matched to its request by `correlation_id`.
//!
//! * `mod.rs`: checking a request's envelope (building one: `wire::envelope`);
//! * `session.rs`: one `/ws` connection, dispatching requests;
//! * pushes to every `/ws` connection (status changes, tasks, system) are `crate::dashboards`.

pub mod session;

use serde_json::{Map, Value};

use crate::error::ErrorCode;
pub use crate::wire::envelope::{RequestType, ServerType, envelope, envelope_event_frame};

/// The protocol's version, sent in `connection:ack`.
pub const PROTOCOL_VERSION: u32 = 1;

/// A request as received, after checking.
#[derive(Debug)]
pub struct Request {
    pub id: String,
    pub kind: RequestType,
    pub payload: Map<String, Value>,
    pub target: Option<String>,
}

/// Why a message is not a valid request: an error code, a message, and the request's id
/// when it had a usable one.
#[derive(Debug)]
pub struct Invalid {
    pub code: ErrorCode,
    pub message: String,
    pub id: Option<String>,
}

const MAX_ID: usize = 200;

/// Checks an incoming message: a JSON object with a string `id` (at most 200
/// characters) and a known `type`; `payload`, when present, an object; `timestamp`,
/// `source`, `target` and `correlation_id`, when present, strings.
pub fn parse_request(text: &str) -> Result<Request, Invalid> {
    let value: Value = serde_json::from_str(text).map_err(|err| Invalid {
        code: ErrorCode::InvalidJson,
        message: format!("message is not JSON: {err}"),
        id: None,
    })?;
    let Value::Object(mut map) = value else {
        return Err(Invalid {
            code: ErrorCode::InvalidEnvelope,
            message: "a message must be a JSON object (an envelope)".into(),
            id: None,
        });
    };
    let id = match map.get("id") {
        Some(Value::String(id)) if !id.is_empty() && id.len() <= MAX_ID => id.clone(),
        Some(Value::String(_)) => {
            return Err(Invalid {
                code: ErrorCode::InvalidEnvelope,
                message: format!("`id` must be a non-empty string of at most {MAX_ID} characters"),
                id: None,
            });
        }
        Some(_) => {
            return Err(Invalid {
                code: ErrorCode::InvalidEnvelope,
                message: "`id` must be a string".into(),
                id: None,
            });
        }
        None => {
            return Err(Invalid {
                code: ErrorCode::InvalidEnvelope,
                message: "the envelope needs an `id`".into(),
                id: None,
            });
        }
    };
    let fail = |code: ErrorCode, message: String| Invalid {
        code,
        message,
        id: Some(id.clone()),
    };
    let kind = match map.get("type") {
        Some(Value::String(kind)) => kind.as_str(),
        Some(_) => {
            return Err(fail(
                ErrorCode::InvalidEnvelope,
                "`type` must be a string".into(),
            ));
        }
        None => {
            return Err(fail(
                ErrorCode::InvalidEnvelope,
                "the envelope needs a `type`".into(),
            ));
        }
    };
    let Some(kind) = RequestType::parse(kind) else {
        return Err(fail(
            ErrorCode::UnknownType,
            format!(
                "unknown message type `{kind}`; see docs/PROTOCOL.md for the types a client may send"
            ),
        ));
    };
    for key in ["timestamp", "source", "target", "correlation_id"] {
        if map.get(key).is_some_and(|v| !v.is_string() && !v.is_null()) {
            return Err(fail(
                ErrorCode::InvalidEnvelope,
                format!("`{key}` must be a string"),
            ));
        }
    }
    let payload = match map.remove("payload") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(payload)) => payload,
        Some(_) => {
            return Err(fail(
                ErrorCode::InvalidEnvelope,
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
        assert_eq!(r.kind, RequestType::ConnectionPing);
        assert_eq!(r.payload["a"], 1);
    }

    #[test]
    fn bad_envelopes_are_named_and_keep_their_id_when_usable() {
        let cases = [
            ("nope", ErrorCode::InvalidJson, None),
            ("[1]", ErrorCode::InvalidEnvelope, None),
            (
                r#"{"type":"connection:ping"}"#,
                ErrorCode::InvalidEnvelope,
                None,
            ),
            (
                r#"{"id":5,"type":"connection:ping"}"#,
                ErrorCode::InvalidEnvelope,
                None,
            ),
            (r#"{"id":"a"}"#, ErrorCode::InvalidEnvelope, Some("a")),
            (
                r#"{"id":"a","type":7}"#,
                ErrorCode::InvalidEnvelope,
                Some("a"),
            ),
            (
                r#"{"id":"a","type":"agent:fly"}"#,
                ErrorCode::UnknownType,
                Some("a"),
            ),
            (
                r#"{"id":"a","type":"connection:ping","payload":[]}"#,
                ErrorCode::InvalidEnvelope,
                Some("a"),
            ),
            (
                r#"{"id":"a","type":"connection:ping","target":1}"#,
                ErrorCode::InvalidEnvelope,
                Some("a"),
            ),
        ];
        for (text, code, id) in cases {
            let err = parse_request(text).unwrap_err();
            assert_eq!(err.code, code, "{text}");
            assert_eq!(err.id.as_deref(), id, "{text}");
        }
    }
}
