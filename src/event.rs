//! The one event type everything shares.
//!
//! A worker's feed turns each [`NewEvent`] into an [`Event`]: its JSON, serialized once,
//! with the worker's `seq` and a timestamp, stored already framed as a WebSocket text
//! message. The same bytes are the line in the history file and the frame every viewer
//! receives, so fanning an event out to a thousand sockets copies no JSON.

use serde_json::{Map, Value};
use std::sync::OnceLock;

use crate::ws::frame;

/// Which pipe of the child a line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pipe {
    Stdout,
    Stderr,
}

impl Pipe {
    pub fn as_str(self) -> &'static str {
        match self {
            Pipe::Stdout => "stdout",
            Pipe::Stderr => "stderr",
        }
    }
}

/// An event before it has a seq.
#[derive(Clone, Debug)]
pub enum NewEvent {
    /// A line a `command` worker printed: `{"type":"output","content":{"stream","text"}}`.
    /// Kept as its own case because it is the hot path of every benchmark.
    Line { pipe: Pipe, text: String },
    /// Any other event: its `type` and its other top-level fields.
    Fields {
        kind: &'static str,
        fields: Map<String, Value>,
    },
}

impl NewEvent {
    /// An event of type `kind` with the fields of `value` (an object; anything else is
    /// stored under `"data"`).
    pub fn new(kind: &'static str, value: Value) -> NewEvent {
        let fields = match value {
            Value::Object(map) => map,
            Value::Null => Map::new(),
            other => {
                let mut map = Map::new();
                map.insert("data".into(), other);
                map
            }
        };
        NewEvent::Fields { kind, fields }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            NewEvent::Line { .. } => "output",
            NewEvent::Fields { kind, .. } => kind,
        }
    }

    /// Serializes the event with `seq` and `timestamp` into `out`, as one JSON object
    /// (no newline). `seq` 0 means "not part of the feed" and is left out.
    pub fn write_json(&self, seq: u64, timestamp: &str, out: &mut Vec<u8>) {
        out.push(b'{');
        if seq > 0 {
            out.extend_from_slice(b"\"seq\":");
            out.extend_from_slice(seq.to_string().as_bytes());
            out.push(b',');
        }
        out.extend_from_slice(b"\"type\":\"");
        out.extend_from_slice(self.kind().as_bytes());
        out.extend_from_slice(b"\",\"timestamp\":\"");
        out.extend_from_slice(timestamp.as_bytes());
        out.push(b'"');
        match self {
            NewEvent::Line { pipe, text } => {
                out.extend_from_slice(b",\"content\":{\"stream\":\"");
                out.extend_from_slice(pipe.as_str().as_bytes());
                out.extend_from_slice(b"\",\"text\":");
                write_json_str(out, text);
                out.extend_from_slice(b"}");
            }
            NewEvent::Fields { fields, .. } => {
                for (key, value) in fields {
                    if matches!(key.as_str(), "seq" | "type" | "timestamp") {
                        continue;
                    }
                    out.push(b',');
                    write_json_str(out, key);
                    out.push(b':');
                    write_json_value(out, value);
                }
            }
        }
        out.push(b'}');
    }
}

// Writing into a Vec cannot fail, and serde_json cannot fail on a `Value` or a `&str`,
// so the results below carry nothing worth handling.
fn write_json_str(out: &mut Vec<u8>, text: &str) {
    let _ = serde_json::to_writer(&mut *out, text);
}

fn write_json_value(out: &mut Vec<u8>, value: &Value) {
    let _ = serde_json::to_writer(&mut *out, value);
}

/// A published event: its seq, and its JSON already framed as a WebSocket text message.
#[derive(Debug)]
pub struct Event {
    pub seq: u64,
    /// WebSocket frame header followed by the JSON; `buf[start..]` is the frame.
    buf: Vec<u8>,
    start: usize,
    json_start: usize,
    /// The same event wrapped in the agent protocol's envelope, built on first use.
    envelope: OnceLock<Vec<u8>>,
}

impl Event {
    /// Frames JSON that `write_json` put in `buf` after `frame::HEADER_ROOM` bytes.
    pub fn from_reserved(seq: u64, mut buf: Vec<u8>) -> Event {
        let start = frame::fill_text_header(&mut buf);
        Event {
            seq,
            buf,
            start,
            json_start: frame::HEADER_ROOM,
            envelope: OnceLock::new(),
        }
    }

    /// An event read back from history: `json` is one line without its newline.
    pub fn from_json(seq: u64, json: &[u8]) -> Event {
        let mut buf = Vec::with_capacity(frame::HEADER_ROOM + json.len());
        buf.resize(frame::HEADER_ROOM, 0);
        buf.extend_from_slice(json);
        Event::from_reserved(seq, buf)
    }

    pub fn json(&self) -> &[u8] {
        &self.buf[self.json_start..]
    }

    /// The whole WebSocket text frame.
    pub fn frame(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    pub fn envelope_frame(&self, build: impl FnOnce(&Event) -> Vec<u8>) -> &[u8] {
        self.envelope.get_or_init(|| build(self))
    }

    /// The event as a JSON value (for API answers and tests; not on the hot path).
    pub fn to_value(&self) -> Value {
        serde_json::from_slice(self.json()).unwrap_or(Value::Null)
    }
}

/// Builds an event that is not part of any feed (an error addressed to one client):
/// returns the frame bytes.
pub fn one_off_frame(event: &NewEvent) -> Vec<u8> {
    let mut buf = vec![0; frame::HEADER_ROOM];
    event.write_json(0, &crate::clock::now_rfc3339(), &mut buf);
    let start = frame::fill_text_header(&mut buf);
    buf.drain(..start);
    buf
}

/// Reads the seq from the start of a history line (`{"seq":123,...`) without parsing
/// the rest.
pub fn seq_of_line(line: &[u8]) -> Option<u64> {
    let rest = line.strip_prefix(b"{\"seq\":")?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || rest.get(digits) != Some(&b',') {
        return None;
    }
    std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_line_event_serializes_with_seq_first() {
        let ev = NewEvent::Line {
            pipe: Pipe::Stderr,
            text: "a \"quoted\" <b>".into(),
        };
        let mut out = Vec::new();
        ev.write_json(7, "T", &mut out);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v,
            json!({"seq":7,"type":"output","timestamp":"T","content":{"stream":"stderr","text":"a \"quoted\" <b>"}})
        );
        assert_eq!(seq_of_line(&out), Some(7));
    }

    #[test]
    fn fields_cannot_override_seq_type_or_timestamp() {
        let ev = NewEvent::new("status", json!({"status":"running","seq":99,"type":"x"}));
        let mut out = Vec::new();
        ev.write_json(3, "T", &mut out);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v,
            json!({"seq":3,"type":"status","timestamp":"T","status":"running"})
        );
    }

    #[test]
    fn seq_of_line_rejects_lines_that_are_not_history() {
        assert_eq!(seq_of_line(b"{\"seq\":12"), None);
        assert_eq!(seq_of_line(b"garbage"), None);
        assert_eq!(seq_of_line(b"{\"seq\":,"), None);
    }

    #[test]
    fn an_event_frame_is_header_plus_json() {
        let e = Event::from_json(5, br#"{"seq":5}"#);
        assert_eq!(e.frame()[0], 0x81);
        assert_eq!(e.frame()[1] as usize, e.json().len());
        assert_eq!(&e.frame()[2..], e.json());
    }
}
