//! A viewer of a terminal worker for tests: a `/ws/{id}` connection whose `terminal`
//! bytes (and snapshot, and resizes) are fed into a `vt100` parser, as a browser's
//! xterm.js would draw them, so a test reads the screen a person would see.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use workerhub::event::TerminalData;
use workerhub::terminal::charset::LineDrawing;

use super::server::{Got, Workerhub, Ws};

pub struct Viewer {
    pub ws: Ws,
    pub parser: vt100::Parser,
    /// Line drawing, which a terminal emulator keeps and `vt100` does not.
    charset: LineDrawing,
    /// Every `terminal` byte received, in order (not the snapshot's).
    pub bytes: Vec<u8>,
    /// Every message received, in order.
    pub messages: Vec<Value>,
    pub snapshot: Option<Value>,
}

impl Viewer {
    /// Connects to worker `id` (with `?since=` when `since` is given).
    pub fn open(hub: &Workerhub, id: &str, since: Option<u64>) -> Viewer {
        let path = match since {
            Some(since) => format!("/ws/{id}?since={since}"),
            None => format!("/ws/{id}"),
        };
        Viewer {
            ws: hub.ws(&path),
            parser: vt100::Parser::new(24, 80, 1000),
            charset: LineDrawing::default(),
            bytes: Vec::new(),
            messages: Vec::new(),
            snapshot: None,
        }
    }

    fn take(&mut self, message: Value) {
        match message["type"].as_str() {
            Some("terminal_snapshot") => {
                let rows = message["rows"].as_u64().expect("rows") as u16;
                let cols = message["cols"].as_u64().expect("cols") as u16;
                let data: TerminalData = serde_json::from_value(message.clone()).expect("data");
                self.parser = vt100::Parser::new(rows, cols, 1000);
                self.charset = LineDrawing::default();
                let bytes = data.bytes().expect("snapshot bytes");
                self.parser.process(&self.charset.filter(&bytes));
                self.snapshot = Some(message.clone());
            }
            Some("terminal") => {
                let data: TerminalData = serde_json::from_value(message.clone()).expect("data");
                let bytes = data.bytes().expect("terminal bytes");
                self.parser.process(&self.charset.filter(&bytes));
                self.bytes.extend_from_slice(&bytes);
            }
            Some("terminal_resize") => {
                let rows = message["rows"].as_u64().expect("rows") as u16;
                let cols = message["cols"].as_u64().expect("cols") as u16;
                self.parser.screen_mut().set_size(rows, cols);
            }
            _ => {}
        }
        self.messages.push(message);
    }

    /// Reads messages for up to `timeout`, or until none comes for `quiet`.
    pub fn pump(&mut self, timeout: Duration, quiet: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            match self.ws.next(quiet.min(deadline - Instant::now())) {
                Got::Json(message) => self.take(message),
                _ => return,
            }
        }
    }

    /// Reads messages until the screen satisfies `ok`; panics with the screen after
    /// `timeout`.
    pub fn wait_screen(&mut self, timeout: Duration, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let screen = self.screen();
            if ok(&screen) {
                return screen;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "timed out; the screen is:\n{screen}");
            match self.ws.next(left.min(Duration::from_millis(200))) {
                Got::Json(message) => self.take(message),
                Got::TimedOut => {}
                Got::Closed(frame) => panic!("closed ({frame:?}); the screen is:\n{screen}"),
            }
        }
    }

    /// Reads messages until one satisfies `ok` (which is returned).
    pub fn wait_message(&mut self, timeout: Duration, ok: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + timeout;
        if let Some(found) = self.messages.iter().find(|m| ok(m)) {
            return found.clone();
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "timed out; got {:#?}", self.messages);
            match self.ws.next(left) {
                Got::Json(message) => {
                    let hit = ok(&message);
                    self.take(message.clone());
                    if hit {
                        return message;
                    }
                }
                Got::TimedOut => {}
                // Nothing more comes: say so now rather than spin until the deadline.
                Got::Closed(frame) => panic!("closed ({frame:?}); got {:#?}", self.messages),
            }
        }
    }

    pub fn screen(&self) -> String {
        self.parser.screen().contents()
    }

    pub fn input(&mut self, data: &str) {
        self.ws.send_json(&json!({"type": "input", "data": data}));
    }

    pub fn resize(&mut self, cols: u16, rows: u16) {
        self.ws
            .send_json(&json!({"type": "resize", "cols": cols, "rows": rows}));
    }
}

/// Creates a terminal worker running `argv` in `dir`, and waits until it runs.
pub fn terminal_worker(hub: &Workerhub, argv: &[&str], dir: &std::path::Path) -> String {
    let id = hub.create_worker(json!({
        "command": argv,
        "terminal": true,
        "project_path": dir,
    }));
    hub.wait_status(&id, |s| s == "running", Duration::from_secs(30));
    id
}

/// The processes of session `sid` (from /proc, as the server finds them).
#[allow(unused_imports)]
pub use workerhub::sys::session_members;
