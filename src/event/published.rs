//! A published event: its seq, and its JSON already framed as a WebSocket text message.
//!
//! A worker's feed turns each [`Event`] into a [`Published`]: its JSON, serialized once,
//! with the worker's `seq` and a timestamp, stored already framed. The same bytes are
//! the line in the history file and the frame every viewer receives, so fanning an
//! event out to a thousand sockets copies no JSON.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use super::{Event, Pipe};
use crate::wire::frame;

impl Event {
    /// The bytes of an `output` line event besides its text:
    /// `{"seq":N,"type":"output","timestamp":"…","content":{"stream":"stdout","text":""}}`.
    pub const LINE_OVERHEAD: usize = 112;

    /// About how many bytes `write_json` writes, so the buffer is allocated once.
    pub fn size_hint(&self) -> usize {
        match self {
            Event::Output {
                content: super::Content::Line(line),
            } => Event::LINE_OVERHEAD + line.text.len() + line.text.len() / 8,
            _ => 256,
        }
    }

    /// Serializes the event with `seq` and `timestamp` into `out`, as one JSON object
    /// (no newline): `{"seq":N,"type":"KIND","timestamp":"T",...fields}`. `seq` 0
    /// means "not part of the feed" and is left out.
    pub fn write_json(&self, seq: u64, timestamp: &str, out: &mut Vec<u8>) {
        if let Event::Output {
            content: super::Content::Line(line),
        } = self
        {
            return LineTemplate::new(line.stream, timestamp).write(out, seq, &line.text);
        }
        // serde writes the tag first: `{"type":"KIND"` then `,fields}` or `}`. Keep what
        // follows the tag, and write the head (seq, type, timestamp) in front of it.
        let kind = self.kind();
        let body = serde_json::to_vec(self).unwrap_or_default();
        let tag_len = br#"{"type":""#.len() + kind.len() + 1;
        write_head(out, seq, kind, timestamp);
        match body.get(tag_len..) {
            Some(rest) if body.starts_with(br#"{"type":""#) => out.extend_from_slice(rest),
            _ => out.push(b'}'),
        }
    }
}

/// `{"seq":N,"type":"KIND","timestamp":"T"`: the start of every event.
fn write_head(out: &mut Vec<u8>, seq: u64, kind: &str, timestamp: &str) {
    write_seq(out, seq);
    write_kind_and_time(out, kind, timestamp);
}

/// `{"seq":N,` (just `{` for seq 0, an event outside any feed).
fn write_seq(out: &mut Vec<u8>, seq: u64) {
    out.push(b'{');
    if seq > 0 {
        out.extend_from_slice(b"\"seq\":");
        write_decimal(out, seq);
        out.push(b',');
    }
}

fn write_kind_and_time(out: &mut Vec<u8>, kind: &str, timestamp: &str) {
    out.extend_from_slice(b"\"type\":\"");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\",\"timestamp\":\"");
    out.extend_from_slice(timestamp.as_bytes());
    out.push(b'"');
}

/// The part of an `output` line event between its seq and its text, the same for every
/// line of a pipe published at once: built once per batch rather than once per line.
pub struct LineTemplate(Vec<u8>);

impl LineTemplate {
    pub fn new(pipe: Pipe, timestamp: &str) -> LineTemplate {
        let mut middle = Vec::with_capacity(Event::LINE_OVERHEAD);
        write_kind_and_time(&mut middle, "output", timestamp);
        middle.extend_from_slice(b",\"content\":{\"stream\":\"");
        middle.extend_from_slice(pipe.as_str().as_bytes());
        middle.extend_from_slice(b"\",\"text\":");
        LineTemplate(middle)
    }

    fn write(&self, out: &mut Vec<u8>, seq: u64, text: &str) {
        write_seq(out, seq);
        out.extend_from_slice(&self.0);
        write_json_str(out, text);
        out.extend_from_slice(b"}}");
    }
}

/// A line as text: invalid UTF-8 is replaced (U+FFFD) and a trailing `\r` dropped.
pub fn line_str(line: &[u8]) -> Cow<'_, str> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    match std::str::from_utf8(line) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(line),
    }
}

// Writing into a Vec cannot fail, and serde_json cannot fail on a `Value` or a `&str`,
// so the results below carry nothing worth handling.
fn write_json_str(out: &mut Vec<u8>, text: &str) {
    // Most text needs no escaping: copy it as it is (what serde_json would write too).
    if text.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
        return;
    }
    let _ = serde_json::to_writer(&mut *out, text);
}

/// Writes `n` in decimal without allocating (this runs once per event).
fn write_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// A published event: its seq, and its JSON already framed as a WebSocket text message.
///
/// The events of one batch (one publish, one chunk of history) share one buffer, their
/// frames back to back: one allocation per batch rather than one per event, which is
/// most of what a busy feed otherwise spends its time on.
#[derive(Debug)]
pub struct Published {
    pub seq: u64,
    /// The batch's buffer; `frames[start..end]` is this event's frame and
    /// `frames[json_start..end]` its JSON.
    frames: Arc<Vec<u8>>,
    start: usize,
    json_start: usize,
    end: usize,
    /// The same event wrapped in the agent protocol's envelope, built on first use.
    envelope: OnceLock<Vec<u8>>,
}

impl Published {
    /// An event read back from history: `json` is one line without its newline.
    pub fn from_json(seq: u64, json: &[u8]) -> Published {
        let mut buf = Vec::with_capacity(frame::HEADER_ROOM + json.len());
        buf.resize(frame::HEADER_ROOM, 0);
        buf.extend_from_slice(json);
        let start = frame::fill_text_header(&mut buf);
        Published {
            seq,
            start,
            json_start: frame::HEADER_ROOM,
            end: buf.len(),
            frames: Arc::new(buf),
            envelope: OnceLock::new(),
        }
    }

    pub fn json(&self) -> &[u8] {
        &self.frames[self.json_start..self.end]
    }

    /// The whole WebSocket text frame.
    pub fn frame(&self) -> &[u8] {
        &self.frames[self.start..self.end]
    }

    pub fn envelope_frame(&self, build: impl FnOnce(&Published) -> Vec<u8>) -> &[u8] {
        self.envelope.get_or_init(|| build(self))
    }

    /// The event as a JSON value (for API answers and tests; not on the hot path).
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::from_slice(self.json()).unwrap_or(serde_json::Value::Null)
    }

    /// The event as its type (not on the hot path: a follower of one turn reads it).
    pub fn event(&self) -> Event {
        serde_json::from_slice(self.json()).unwrap_or(Event::Unknown)
    }
}

/// Builds the events of one batch into one shared buffer.
pub struct EventBatch {
    buf: Vec<u8>,
    /// seq, frame start, JSON start, end of each event.
    spans: Vec<(u64, usize, usize, usize)>,
}

impl EventBatch {
    /// Room for `events` events of about `json_bytes` bytes of JSON in all.
    pub fn with_capacity(events: usize, json_bytes: usize) -> EventBatch {
        EventBatch {
            buf: Vec::with_capacity(json_bytes + events * frame::HEADER_ROOM),
            spans: Vec::with_capacity(events),
        }
    }

    /// Adds event `seq` whose JSON `write` appends to the buffer it is given.
    pub fn push_with(&mut self, seq: u64, write: impl FnOnce(&mut Vec<u8>)) {
        let room = self.buf.len();
        self.buf.resize(room + frame::HEADER_ROOM, 0);
        write(&mut self.buf);
        let json_start = room + frame::HEADER_ROOM;
        let start = room + frame::fill_text_header(&mut self.buf[room..]);
        self.spans.push((seq, start, json_start, self.buf.len()));
    }

    pub fn push_event(&mut self, seq: u64, timestamp: &str, event: &Event) {
        self.push_with(seq, |out| event.write_json(seq, timestamp, out));
    }

    /// Adds an `output` event for `line` as a program printed it (what
    /// `Event::line(pipe, line_str(line))` would be, without the copy).
    pub fn push_line(&mut self, seq: u64, template: &LineTemplate, line: &[u8]) {
        self.push_with(seq, |out| template.write(out, seq, &line_str(line)));
    }

    pub fn push_json(&mut self, seq: u64, json: &[u8]) {
        self.push_with(seq, |out| out.extend_from_slice(json));
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    pub fn finish(self) -> Vec<Arc<Published>> {
        let frames = Arc::new(self.buf);
        self.spans
            .into_iter()
            .map(|(seq, start, json_start, end)| {
                Arc::new(Published {
                    seq,
                    frames: frames.clone(),
                    start,
                    json_start,
                    end,
                    envelope: OnceLock::new(),
                })
            })
            .collect()
    }
}

/// Builds an event that is not part of any feed (an error addressed to one client):
/// returns the frame bytes.
pub fn one_off_frame(event: &Event) -> Vec<u8> {
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
    use crate::event::StatusEvent;
    use serde_json::{Value, json};

    #[test]
    fn a_line_event_serializes_with_seq_first() {
        let ev = Event::line(Pipe::Stderr, "a \"quoted\" <b>");
        let mut out = Vec::new();
        ev.write_json(7, "T", &mut out);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v,
            json!({"seq":7,"type":"output","timestamp":"T","content":{"stream":"stderr","text":"a \"quoted\" <b>"}})
        );
        assert_eq!(seq_of_line(&out), Some(7));
        // The fast path writes what serde would.
        let by_serde: Value = serde_json::to_value(&ev).unwrap();
        assert_eq!(v["content"], by_serde["content"]);
    }

    #[test]
    fn every_event_starts_with_seq_type_and_timestamp() {
        let ev = Event::Status(StatusEvent::new(crate::event::Status::Running));
        let mut out = Vec::new();
        ev.write_json(3, "T", &mut out);
        assert!(out.starts_with(br#"{"seq":3,"type":"status","timestamp":"T","status":"running""#));
        let mut none = Vec::new();
        Event::Unknown.write_json(0, "T", &mut none);
        assert_eq!(none, br#"{"type":"unknown","timestamp":"T"}"#);
    }

    #[test]
    fn seq_of_line_rejects_lines_that_are_not_history() {
        assert_eq!(seq_of_line(b"{\"seq\":12"), None);
        assert_eq!(seq_of_line(b"garbage"), None);
        assert_eq!(seq_of_line(b"{\"seq\":,"), None);
    }

    #[test]
    fn strings_and_seqs_are_written_as_serde_json_writes_them() {
        for text in [
            "",
            "plain ascii",
            "naïve ☃ 🦀",
            "tab\there",
            "quote \" and backslash \\",
            "\u{0}\u{1f}\u{7f}",
            "</script>",
        ] {
            let mut out = Vec::new();
            write_json_str(&mut out, text);
            assert_eq!(out, serde_json::to_vec(text).unwrap(), "{text:?}");
        }
        for n in [0, 1, 9, 10, 99, 100, 12345, u64::MAX] {
            let mut out = Vec::new();
            write_decimal(&mut out, n);
            assert_eq!(out, n.to_string().into_bytes());
        }
    }

    #[test]
    fn an_event_frame_is_header_plus_json() {
        let e = Published::from_json(5, br#"{"seq":5}"#);
        assert_eq!(e.frame()[0], 0x81);
        assert_eq!(e.frame()[1] as usize, e.json().len());
        assert_eq!(&e.frame()[2..], e.json());
    }
}
