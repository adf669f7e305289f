//! The agent protocol on `/ws`: envelopes with ids and correlation ids (see
//! docs/PROTOCOL.md).

use serde_json::{Map, Value};

use crate::clock;
use crate::event::Event;
use crate::ws::frame;

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
