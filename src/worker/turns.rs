//! Messages and turns. A worker with turns is `idle` or `busy`; a message sent while it
//! is busy waits in the queue and runs in order. A turn ends when the program reports
//! its result (a long-running session), or when the turn's process is gone (per-turn
//! kinds; after a result it gets `result_grace` to exit and is then killed, since some
//! CLIs keep stdout open). Every turn has a timeout, and can be interrupted or stopped;
//! none can hang the worker.

use std::collections::VecDeque;
use std::time::Instant;

use serde_json::{Map, Value, json};

use super::process::{Exit, StdinError, signal_name};
use super::{StartError, Status, Worker, WorkerState};
use crate::adapters::{Interrupt, Lifecycle, TurnEnd};
use crate::clock;
use crate::error::ApiError;
use crate::event::NewEvent;
use crate::ws::conn::InlineSends;

/// The most messages that may wait behind a running turn.
const MAX_QUEUE: usize = 100;

/// A message waiting for its turn.
#[derive(Clone, Debug)]
pub struct Pending {
    pub id: String,
    pub content: String,
    pub queued_at: String,
}

/// Why a turn was cut short.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    Timeout,
    Interrupted,
    Stopped,
}

pub struct Turn {
    pub number: u64,
    pub message: Pending,
    pub started: Instant,
    pub started_at: String,
    /// The process this turn runs in.
    pub process: Option<u64>,
    /// The program's own end of the turn (its result line).
    pub ended: Option<TurnEnd>,
    pub cause: Option<Cause>,
}

impl Turn {
    pub fn json(&self) -> Value {
        json!({
            "number": self.number,
            "message_id": self.message.id,
            "started_at": self.started_at,
            "result_seen": self.ended.is_some(),
        })
    }
}

fn preview(text: &str) -> String {
    const MAX: usize = 200;
    if text.len() <= MAX {
        return text.to_string();
    }
    let mut cut = MAX;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &text[..cut])
}

pub fn queue_json(queue: &VecDeque<Pending>) -> Value {
    Value::Array(
        queue
            .iter()
            .enumerate()
            .map(|(i, p)| {
                json!({"message_id": p.id, "position": i + 1, "state": "queued",
                       "queued_at": p.queued_at, "content": preview(&p.content)})
            })
            .collect(),
    )
}

impl Worker {
    /// Sends a message from a client (`by`: the name of its token): every viewer sees it
    /// as `user_message`, then the program gets it (or it waits in the queue behind the
    /// running turn).
    pub fn send_message(&self, content: &str, by: &str) -> Result<Value, ApiError> {
        self.send_message_as(content, uuid::Uuid::new_v4().to_string(), by)
    }

    /// Sends a message with the id the caller chose (to follow its turn).
    pub fn send_message_as(
        &self,
        content: &str,
        message_id: String,
        by: &str,
    ) -> Result<Value, ApiError> {
        if !self.adapter.takes_messages(&self.spec) {
            return Err(ApiError::conflict(
                "read_only",
                "this worker follows a session and takes no messages",
            ));
        }
        let mut st = self.lock();
        if st.deleted {
            return Err(ApiError::not_found(format!(
                "worker {} is being deleted",
                self.id
            )));
        }
        if !self.has_turns() {
            return self.send_to_stdin(st, content, by);
        }
        if st.queue.len() >= MAX_QUEUE {
            return Err(ApiError::new(
                429,
                "queue_full",
                format!("{MAX_QUEUE} messages are already waiting; wait for some turns to finish"),
            ));
        }
        let message = Pending {
            id: message_id,
            content: content.to_string(),
            queued_at: clock::now_rfc3339(),
        };
        if st.turn.is_some() {
            st.queue.push_back(message.clone());
            let position = st.queue.len();
            self.feed.publish_one(NewEvent::new(
                "user_message",
                json!({"content": content, "message_id": message.id, "state": "queued", "position": position, "by": by}),
            ));
            let fields = self.status_fields(&st);
            self.publish_status(fields);
            return Ok(json!({"message_id": message.id, "state": "queued", "position": position}));
        }
        let seq = self.feed.publish_one(NewEvent::new(
            "user_message",
            json!({"content": content, "message_id": message.id, "state": "sent", "by": by}),
        ));
        let id = message.id.clone();
        self.begin_turn(&mut st, message);
        drop(st);
        self.save();
        Ok(json!({"message_id": id, "state": "sent", "seq": seq}))
    }

    /// A message for a program without turns: written to its stdin as it comes.
    fn send_to_stdin(
        &self,
        st: std::sync::MutexGuard<'_, WorkerState>,
        content: &str,
        by: &str,
    ) -> Result<Value, ApiError> {
        let process = match (&st.process, st.status) {
            (Some(p), Status::Running) if p.is_running() => p.clone(),
            _ => {
                return Err(ApiError::conflict(
                    "worker_not_running",
                    format!(
                        "worker {} is {} and cannot take messages",
                        self.id,
                        st.status.as_str()
                    ),
                ));
            }
        };
        drop(st);
        // Published before the program sees the message, so its answer always comes
        // after the message in the feed; but the viewers are sent it only after the
        // program has it, which is what the sender is waiting for.
        let inline = InlineSends::begin(crate::feed::INLINE_VIEWERS);
        let seq = self.feed.publish_one(NewEvent::new(
            "user_message",
            json!({"content": content, "state": "sent", "by": by}),
        ));
        let written = process.write_stdin(self.adapter.encode_message(content));
        inline.finish();
        let err = match written {
            Ok(()) => return Ok(json!({"seq": seq, "state": "sent"})),
            Err(StdinError::Full) => ApiError::new(
                503,
                "input_full",
                "the worker is not reading its input and its backlog is full; the message was not delivered",
            ),
            Err(StdinError::Closed) => ApiError::conflict(
                "worker_not_running",
                "the worker's input is closed; the message was not delivered",
            ),
        };
        // Every viewer saw the message go out, so every viewer learns it did not arrive.
        self.feed.publish_one(NewEvent::new(
            "error",
            json!({"code": err.code, "message": err.message, "message_seq": seq}),
        ));
        Err(err)
    }

    /// Starts a turn for `message`: a new process (per-turn kinds) or a line on the
    /// session's stdin (starting the session first if needed).
    fn begin_turn(&self, st: &mut WorkerState, message: Pending) {
        st.turns += 1;
        st.turn = Some(Turn {
            number: st.turns,
            message: message.clone(),
            started: Instant::now(),
            started_at: clock::now_rfc3339(),
            process: None,
            ended: None,
            cause: None,
        });
        let started = match self.lifecycle() {
            Lifecycle::PerTurn => self.spawn(st, Some(&message.content)),
            Lifecycle::LongRunning => self.feed_session(st, &message.content),
        };
        match started {
            Ok(()) => {
                let pid = st.process.as_ref().map(|p| p.pid);
                if let Some(turn) = st.turn.as_mut() {
                    turn.process = st.process.as_ref().map(|p| p.id);
                }
                let mut fields = Map::new();
                fields.insert("pid".into(), pid.into());
                self.set_status(st, Status::Busy, fields);
                self.arm_timeout(st.turns);
            }
            Err(err) => {
                log::warn!("worker {}: {}", self.id, err.message);
                self.feed.publish_one(NewEvent::new(
                    "error",
                    json!({"code": err.code, "message": err.message, "message_id": message.id}),
                ));
                self.end_turn(st, "failed");
            }
        }
    }

    /// Writes a message to the long-running session, starting it if it is not running.
    fn feed_session(&self, st: &mut WorkerState, content: &str) -> Result<(), StartError> {
        if !st.process.as_ref().is_some_and(|p| p.is_running()) {
            self.spawn(st, None)?;
        }
        let process = st
            .process
            .clone()
            .ok_or_else(|| StartError::failed("the session did not start"))?;
        process
            .write_stdin(self.adapter.encode_message(content))
            .map_err(|err| {
                StartError::failed(format!("the session did not take the message: {err:?}"))
            })
    }

    /// The turn's longest allowed time: past it, its process group is killed.
    fn arm_timeout(&self, number: u64) {
        let worker = self.me.clone();
        let limit = self.engine.turn_timeout;
        self.engine.timer.after(limit, move || {
            let Some(worker) = worker.upgrade() else { return };
            let mut st = worker.lock();
            let Some(turn) = st.turn.as_mut().filter(|t| t.number == number && t.cause.is_none()) else {
                return;
            };
            turn.cause = Some(Cause::Timeout);
            let message_id = turn.message.id.clone();
            worker.feed.publish_one(NewEvent::new(
                "error",
                json!({
                    "code": "timeout",
                    "message": format!("the turn ran longer than {}s (--worker-timeout) and was stopped", limit.as_secs()),
                    "message_id": message_id,
                }),
            ));
            if let Some(process) = &st.process {
                log::warn!("worker {}: turn {number} timed out; killing process {}", worker.id, process.id);
                process.signal(libc::SIGKILL);
            }
        });
    }

    /// The program reported the end of its turn.
    pub(super) fn on_turn_end(&self, st: &mut WorkerState, process: u64, end: TurnEnd) {
        let Some(turn) = st.turn.as_mut().filter(|t| t.process == Some(process)) else {
            return;
        };
        let is_error = end.is_error;
        turn.ended = Some(end);
        match self.lifecycle() {
            Lifecycle::LongRunning => {
                let outcome = outcome_of(turn.cause, Some(is_error));
                self.end_turn(st, outcome);
            }
            Lifecycle::PerTurn => {
                // The turn is over; some CLIs keep their stdout open afterwards. Give the
                // process a short grace to exit, then kill it so the next turn can start.
                let Some(proc) = st.process.clone() else {
                    return;
                };
                let grace = self.engine.result_grace;
                let worker_id = self.id.clone();
                self.engine.timer.after(grace, move || {
                    if proc.is_running() {
                        log::info!(
                            "worker {worker_id}: process {} still running {:.1}s after its result; killing it",
                            proc.id,
                            grace.as_secs_f64()
                        );
                        proc.signal(libc::SIGKILL);
                    }
                });
            }
        }
    }

    /// A process of this worker is gone.
    pub(super) fn on_process_gone(&self, st: &mut WorkerState, process: u64, exit: Exit) {
        let turn_here = st.turn.as_ref().filter(|t| t.process == Some(process));
        if let Some(turn) = turn_here {
            let outcome = outcome_of(turn.cause, turn.ended.as_ref().map(|e| e.is_error));
            if turn.ended.is_none() && turn.cause.is_none() {
                let message_id = turn.message.id.clone();
                let message = match (exit.code, exit.signal) {
                    (Some(code), _) => self.adapter.explain_exit(code).unwrap_or_else(|| {
                        format!("the program exited with code {code} before finishing its turn")
                    }),
                    (None, Some(sig)) => format!(
                        "the program was killed by {} before finishing its turn",
                        signal_name(sig)
                    ),
                    _ => "the program ended before finishing its turn".into(),
                };
                let mut fields = exit.fields();
                fields.insert("code".into(), "turn_failed".into());
                fields.insert("message".into(), message.into());
                fields.insert("message_id".into(), message_id.into());
                self.feed.publish_one(NewEvent::Fields {
                    kind: "error",
                    fields,
                });
            }
            self.end_turn(st, outcome);
        }
        if self.lifecycle() == Lifecycle::LongRunning {
            if self.has_turns() {
                // The session is gone; the next message starts it again (resuming).
                if st.status != Status::Busy {
                    self.set_status(st, Status::Idle, exit.fields());
                }
            } else {
                self.set_status(st, Status::Exited, Map::new());
            }
        }
    }

    /// Ends the running turn with `outcome` and starts the next queued message.
    fn end_turn(&self, st: &mut WorkerState, outcome: &str) {
        let Some(turn) = st.turn.take() else { return };
        let mut fields = Map::new();
        fields.insert(
            "last_turn".into(),
            json!({
                "number": turn.number,
                "message_id": turn.message.id,
                "outcome": outcome,
                "duration_ms": turn.started.elapsed().as_millis() as u64,
            }),
        );
        self.set_status(st, Status::Idle, fields);
        if st.deleted {
            return;
        }
        if let Some(next) = st.queue.pop_front() {
            self.begin_turn(st, next);
        }
    }

    /// Interrupts the running turn (SIGINT, or the session's own interrupt); the worker
    /// stays usable. A `command` worker's process group gets SIGINT.
    pub fn interrupt(&self) -> Result<Value, ApiError> {
        let mut st = self.lock();
        let Some(process) = st.process.clone().filter(|p| p.is_running()) else {
            return Err(ApiError::conflict(
                "nothing_running",
                "the worker has no running process to interrupt",
            ));
        };
        if !self.has_turns() {
            process.signal(libc::SIGINT);
            return Ok(json!({"interrupted": true}));
        }
        let Some(turn) = st.turn.as_mut() else {
            return Err(ApiError::conflict(
                "not_busy",
                "the worker is not running a turn",
            ));
        };
        turn.cause.get_or_insert(Cause::Interrupted);
        let number = turn.number;
        let message_id = turn.message.id.clone();
        match self.adapter.interrupt(&self.spec) {
            Interrupt::Signal(sig) => process.signal(sig),
            Interrupt::Stdin(bytes) => {
                if process.write_stdin(bytes).is_err() {
                    process.signal(libc::SIGINT);
                }
            }
        }
        // A program that ignores the interrupt is killed a little later.
        let worker = self.me.clone();
        self.engine.timer.after(self.engine.kill_grace, move || {
            let Some(worker) = worker.upgrade() else {
                return;
            };
            let st = worker.lock();
            if st.turn.as_ref().is_some_and(|t| t.number == number) && process.is_running() {
                log::warn!(
                    "worker {}: turn {number} ignored its interrupt; killing it",
                    worker.id
                );
                process.signal(libc::SIGKILL);
            }
        });
        drop(st);
        Ok(json!({"interrupted": true, "message_id": message_id}))
    }

    /// Stops the worker: drops queued messages, ends the running turn and its process
    /// (SIGTERM, SIGKILL after the grace). Returns once the process is gone.
    pub fn stop(&self) -> Value {
        let (process, dropped) = {
            let mut st = self.lock();
            let dropped = st.queue.len();
            st.queue.clear();
            if let Some(turn) = st.turn.as_mut() {
                turn.cause.get_or_insert(Cause::Stopped);
            }
            (st.process.clone(), dropped)
        };
        if let Some(process) = &process {
            process.terminate(self.engine.kill_grace);
        }
        json!({"stopped": process.is_some(), "dropped_messages": dropped})
    }
}

impl Worker {
    /// The message whose turn is running, if any.
    pub fn current_message(&self) -> Option<String> {
        self.lock().turn.as_ref().map(|t| t.message.id.clone())
    }

    /// Whether tasks can run on this worker (it has turns and takes messages).
    pub fn accepts_tasks(&self) -> bool {
        self.has_turns() && self.adapter.takes_messages(&self.spec)
    }
}

/// A turn's outcome from why it was cut short, else from its result.
fn outcome_of(cause: Option<Cause>, result_error: Option<bool>) -> &'static str {
    match (cause, result_error) {
        (Some(Cause::Timeout), _) => "timeout",
        (Some(Cause::Interrupted), _) => "interrupted",
        (Some(Cause::Stopped), _) => "stopped",
        (None, Some(false)) => "completed",
        (None, _) => "failed",
    }
}
