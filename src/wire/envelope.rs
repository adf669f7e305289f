//! The agent protocol's envelope (docs/PROTOCOL.md): every message on `/ws`, both ways,
//! is `{"id","type","timestamp","payload","source"?,"correlation_id"?}`.

use serde_json::{Map, Value};

use crate::clock;
use crate::event::Published;
use crate::wire::frame;

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
pub fn envelope_event_frame(event: &Published, source: &str) -> Vec<u8> {
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
    fn an_event_envelope_carries_the_event_whole() {
        let event = Published::from_json(
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
