//! `/ws/{worker_id}`: one worker's events, and messages to it.
//!
//! Client to server: `{"type":"message","content":"..."}` and `{"type":"ping"}`.
//! Server to client: the worker's events (`output`, `user_message`, `status`, ...), each
//! with the worker's `seq`, plus `error` events (without a seq) for this client only.

use std::sync::Arc;

use serde_json::Value;

use super::conn::{Conn, Session};
use super::subscription::Subscription;
use crate::http::auth::{Access, Caller};
use crate::worker::Worker;

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
}

impl Session for WorkerStream {
    fn on_open(&mut self, conn: &Arc<Conn>) {
        self.subscription = Some(Subscription::start(
            conn,
            self.worker.clone(),
            self.since,
            false,
        ));
    }

    fn on_text(&mut self, conn: &Arc<Conn>, text: &str) {
        let message: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(err) => {
                return conn.send_error("invalid_json", &format!("message is not JSON: {err}"));
            }
        };
        match message.get("type").and_then(Value::as_str) {
            Some("message") => {
                let Some(content) = message.get("content").and_then(Value::as_str) else {
                    return conn.send_error("bad_message", "`message` needs `content`, a string");
                };
                if !self
                    .caller
                    .may(Access::Change, self.worker.owner.as_deref())
                {
                    return conn.send_error(
                        "forbidden",
                        &format!(
                            "the token `{}` ({}) may watch this worker but not send to it",
                            self.caller.name,
                            self.caller.role.as_str()
                        ),
                    );
                }
                if let Err(err) = self.worker.send_message(content, &self.caller.name) {
                    conn.send_error(err.code, &err.message);
                }
            }
            Some("ping") => conn.send_json(&serde_json::json!({"type": "pong"})),
            Some(other) => conn.send_error(
                "unknown_type",
                &format!("unknown message type `{other}`; expected `message` or `ping`"),
            ),
            None => conn.send_error(
                "unknown_type",
                "a message needs a `type`: `message` or `ping`",
            ),
        }
    }

    fn on_close(&mut self, _conn: &Arc<Conn>) {
        if let Some(sub) = self.subscription.take() {
            sub.stop();
        }
    }
}
