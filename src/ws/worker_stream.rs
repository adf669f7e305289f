//! `/ws/{worker_id}`: one worker's events, and messages to it.
//!
//! Client to server: `{"type":"message","content":"..."}`, `{"type":"approval",
//! "approval_id","decision","message"?,"updated_input"?}`, `{"type":"ping"}`, and for a
//! terminal worker `{"type":"input","data":"..."}` and `{"type":"resize","cols","rows"}`.
//! Server to client: the worker's events (`output`, `user_message`, `status`, ...), each
//! with the worker's `seq`, plus `error` events (without a seq) for this client only;
//! a terminal worker's viewer that gives no `since` gets a `terminal_snapshot` first.

use std::sync::Arc;

use serde::Deserialize;

use super::conn::Conn;
use super::reader::Session;
use super::subscription::Subscription;
use crate::approval::Answer;
use crate::auth::{Access, Caller};
use crate::error::ErrorCode;
use crate::event::{Event, TerminalSize};
use crate::worker::Worker;

/// What a client may send.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ClientMessage {
    Message {
        content: String,
    },
    /// An answer to a tool approval (checked by `approval::Answer`).
    Approval {
        approval_id: String,
        #[serde(flatten)]
        answer: serde_json::Map<String, serde_json::Value>,
    },
    Ping,
    /// Keys or a paste for a terminal worker (Ctrl-C is "\u0003"); bytes that are not
    /// UTF-8 as base64 with `"encoding": "base64"`, as the server's `terminal` events.
    Input(crate::event::TerminalData),
    /// The viewer's window, in cells.
    Resize {
        cols: u64,
        rows: u64,
    },
}

pub struct WorkerStream {
    worker: Arc<Worker>,
    since: Option<u64>,
    subscription: Option<Arc<Subscription>>,
    /// Who opened the connection: a viewer may watch, not send.
    caller: Caller,
}

impl WorkerStream {
    pub fn new(worker: Arc<Worker>, since: Option<u64>, caller: Caller) -> WorkerStream {
        WorkerStream {
            worker,
            since,
            subscription: None,
            caller,
        }
    }

    /// Whether the connection's token may drive the worker; if not, tells the client it
    /// may watch but not `what`.
    fn may_drive(&self, conn: &Arc<Conn>, what: &str) -> bool {
        let may = self
            .caller
            .may(Access::Change, self.worker.owner.as_deref());
        if !may {
            conn.send_error(
                ErrorCode::Forbidden,
                &format!(
                    "the token `{}` ({}) may watch this worker but not {what}",
                    self.caller.name,
                    self.caller.role.as_str()
                ),
            );
        }
        may
    }
}

impl Session for WorkerStream {
    fn on_open(&mut self, conn: &Arc<Conn>) {
        // A terminal's late viewer sees the screen, then the events after it.
        let mut since = self.since;
        if since.is_none()
            && let Some(snapshot) = self.worker.terminal_snapshot()
        {
            since = Some(snapshot.seq);
            conn.send_event(&Event::TerminalSnapshot(snapshot));
        }
        self.subscription = Some(Subscription::start(conn, self.worker.clone(), since, false));
    }

    fn on_text(&mut self, conn: &Arc<Conn>, text: &str) {
        let value: serde_json::Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(err) => {
                return conn.send_error(
                    ErrorCode::InvalidJson,
                    &format!("message is not JSON: {err}"),
                );
            }
        };
        let kind = value
            .get("type")
            .and_then(|t| t.as_str())
            .map(str::to_string);
        let message = match serde_json::from_value::<ClientMessage>(value) {
            Ok(message) => message,
            Err(_) => {
                let (code, text) = match kind.as_deref() {
                    Some("message") => (
                        ErrorCode::BadMessage,
                        "`message` needs `content`, a string".to_string(),
                    ),
                    Some("approval") => (
                        ErrorCode::BadMessage,
                        "`approval` needs `approval_id` (a string) and `decision`".to_string(),
                    ),
                    Some("input") => (
                        ErrorCode::BadMessage,
                        "`input` needs `data`, a string (and `encoding`: \"base64\" for bytes that are not UTF-8)".to_string(),
                    ),
                    Some("resize") => (
                        ErrorCode::BadMessage,
                        "`resize` needs `cols` and `rows`, whole numbers".to_string(),
                    ),
                    Some(other) => (
                        ErrorCode::UnknownType,
                        format!(
                            "unknown message type `{other}`; expected `message`, `approval`, `input`, `resize` or `ping`"
                        ),
                    ),
                    None => (
                        ErrorCode::UnknownType,
                        "a message needs a `type`: `message`, `approval`, `input`, `resize` or `ping`".to_string(),
                    ),
                };
                return conn.send_error(code, &text);
            }
        };
        match message {
            ClientMessage::Message { content } => {
                if !self.may_drive(conn, "send to it") {
                    return;
                }
                if let Err(err) = self.worker.send_message(&content, &self.caller.name) {
                    conn.send_error(err.code, &err.message);
                }
            }
            ClientMessage::Approval {
                approval_id,
                answer,
            } => {
                if !self.may_drive(conn, "answer its approvals") {
                    return;
                }
                // Everyone sees the `approval_resolved` event; only a failure is this
                // client's own.
                let answered =
                    Answer::from_json(&serde_json::Value::Object(answer)).and_then(|answer| {
                        self.worker
                            .answer_approval(&approval_id, answer, &self.caller.name)
                    });
                if let Err(err) = answered {
                    // Which answer was refused, for a page with several cards.
                    let mut error = crate::event::ErrorEvent::new(err.code, err.message);
                    error.approval_id = Some(approval_id);
                    conn.send_event(&Event::Error(error));
                }
            }
            ClientMessage::Ping => conn.send_json(&serde_json::json!({"type": "pong"})),
            ClientMessage::Input(input) => {
                if !self.may_drive(conn, "type into it") {
                    return;
                }
                let Some(bytes) = input.bytes() else {
                    return conn.send_error(ErrorCode::BadMessage, "`data` is not base64");
                };
                if let Err(err) = self.worker.terminal_input(conn.id, bytes) {
                    conn.send_error(err.code, &err.message);
                }
            }
            ClientMessage::Resize { cols, rows } => {
                if !self.may_drive(conn, "size its terminal") {
                    return;
                }
                let resized = TerminalSize::checked(cols, rows)
                    .map_err(|message| {
                        crate::error::Error::invalid(message).with_code(ErrorCode::BadMessage)
                    })
                    .and_then(|size| self.worker.terminal_resize(conn.id, size));
                if let Err(err) = resized {
                    conn.send_error(err.code, &err.message);
                }
            }
        }
    }

    fn on_close(&mut self, conn: &Arc<Conn>) {
        self.worker.terminal_viewer_left(conn.id);
        if let Some(sub) = self.subscription.take() {
            sub.stop();
        }
    }
}
