//! Messages and turns. A worker with turns is `idle` or `busy`; a message sent while it
//! is busy waits in the queue and runs in order. A turn ends when the program reports
//! its result (a long-running session), or when the turn's process is gone (per-turn
//! kinds; after a result it gets `result_grace` to exit and is then killed, since some
//! CLIs keep stdout open). Every turn has a timeout, and can be interrupted or stopped;
//! none can hang the worker.

use std::collections::VecDeque;
use std::time::Instant;

use serde::Serialize;

use super::{Status, Worker, WorkerState, turn_error};
use crate::adapters::{Interrupt, Lifecycle, TurnEnd};
use crate::approval::ApprovalPolicy;
use crate::clock;
use crate::error::{Error, ErrorCode, ErrorKind};
use crate::event::{
    Decision, ErrorEvent, Event, LastTurn, MessageState, Outcome, Queued, StatusEvent, UserMessage,
};
use crate::process::{Exit, Process, StdinError, signal_name};
use std::sync::Arc;

/// The most messages that may wait behind a running turn.
const MAX_QUEUE: usize = 100;

/// A message waiting for its turn.
#[derive(Clone, Debug)]
pub struct Pending {
    pub id: String,
    pub content: String,
    pub queued_at: String,
    /// The approval policy of this message's turn, when it is not the worker's (a
    /// task's own).
    pub approval: Option<ApprovalPolicy>,
}

/// Why a turn was cut short.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    Timeout,
    Interrupted,
    Stopped,
    /// The program could not succeed and was stopped early (a refused key, no network).
    Failed,
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
    /// Time spent waiting for approvals (not counted against the turn's timeout), and
    /// since when it waits now.
    pub waited: std::time::Duration,
    pub waiting_since: Option<Instant>,
    /// The process whose session could not be resumed: it is ending, and the turn
    /// starts again in a new session (once).
    pub lost_session: Option<u64>,
    /// Why it fails was said (a missing or refused key, no network): once is enough,
    /// and the exit that follows needs no second explanation.
    pub explained: bool,
}

impl Turn {
    /// How long the turn has worked: its time minus what it spent waiting for people.
    pub fn worked(&self) -> std::time::Duration {
        let waiting = self
            .waiting_since
            .map_or_else(Default::default, |s| s.elapsed());
        self.started
            .elapsed()
            .saturating_sub(self.waited)
            .saturating_sub(waiting)
    }
}

/// The running turn, as a worker's view shows it.
#[derive(Clone, Debug, Serialize)]
pub struct TurnView {
    pub number: u64,
    pub message_id: String,
    pub started_at: String,
    pub result_seen: bool,
}

impl Turn {
    pub fn view(&self) -> TurnView {
        TurnView {
            number: self.number,
            message_id: self.message.id.clone(),
            started_at: self.started_at.clone(),
            result_seen: self.ended.is_some(),
        }
    }
}

/// What became of a message a client sent.
#[derive(Clone, Debug, Serialize)]
pub struct Receipt {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    pub state: MessageState,
    /// The seq of its `user_message` (when it was given to the program at once).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// Its place in the queue.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<usize>,
}

/// What an interrupt did.
#[derive(Clone, Debug, Serialize)]
pub struct Interrupted {
    pub interrupted: bool,
    /// The message whose turn was interrupted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
}

/// What a stop did.
#[derive(Clone, Debug, Serialize)]
pub struct Stopped {
    /// A process was running and was stopped.
    pub stopped: bool,
    pub dropped_messages: usize,
}

fn preview(text: &str) -> String {
    crate::approval::shorten(text, 200)
}

/// The queue as events and views show it.
pub fn queued(queue: &VecDeque<Pending>) -> Vec<Queued> {
    queue
        .iter()
        .enumerate()
        .map(|(i, p)| Queued {
            message_id: p.id.clone(),
            position: i + 1,
            state: MessageState::Queued,
            queued_at: p.queued_at.clone(),
            content: preview(&p.content),
        })
        .collect()
}

fn user_message(content: &str, message_id: Option<&str>, by: &str) -> UserMessage {
    UserMessage {
        content: content.to_string(),
        message_id: message_id.map(str::to_string),
        state: Some(MessageState::Sent),
        position: None,
        by: Some(by.to_string()),
        source: None,
        raw: None,
    }
}

impl Worker {
    /// Sends a message from a client (`by`: the name of its token): every viewer sees it
    /// as `user_message`, then the program gets it (or it waits in the queue behind the
    /// running turn).
    pub fn send_message(&self, content: &str, by: &str) -> Result<Receipt, Error> {
        self.send_message_as(content, uuid::Uuid::new_v4().to_string(), by)
    }

    /// Sends a message with the id the caller chose (to follow its turn).
    pub fn send_message_as(
        &self,
        content: &str,
        message_id: String,
        by: &str,
    ) -> Result<Receipt, Error> {
        self.send_message_with(content, message_id, by, None)
    }

    /// Sends a message whose turn decides tool calls by `approval` rather than by the
    /// worker's policy.
    pub fn send_message_with(
        &self,
        content: &str,
        message_id: String,
        by: &str,
        approval: Option<ApprovalPolicy>,
    ) -> Result<Receipt, Error> {
        if !self.adapter.takes_messages(&self.spec) {
            return Err(Error::conflict(
                ErrorCode::ReadOnly,
                format!(
                    "{} follows a session and takes no messages",
                    self.display_name()
                ),
            ));
        }
        let mut st = self.lock();
        if st.deleted {
            return Err(Error::not_found(format!(
                "{} is being deleted",
                self.display_name()
            )));
        }
        // Never queued for later nor dropped: the sender learns now.
        if st.disconnected.is_some() {
            return Err(self.unreachable());
        }
        if !self.has_turns() {
            return self.send_to_stdin(st, content, by);
        }
        if st.queue.len() >= MAX_QUEUE {
            return Err(Error::limit(
                ErrorCode::QueueFull,
                format!("{MAX_QUEUE} messages are already waiting; wait for some turns to finish"),
            ));
        }
        let message = Pending {
            id: message_id,
            content: content.to_string(),
            queued_at: clock::now_rfc3339(),
            approval,
        };
        // Behind a running turn, and behind messages waiting for theirs.
        if st.turn.is_some() || !st.queue.is_empty() {
            st.queue.push_back(message.clone());
            let position = st.queue.len();
            let mut queued = user_message(content, Some(&message.id), by);
            queued.state = Some(MessageState::Queued);
            queued.position = Some(position);
            self.publish(&mut st, vec![Event::UserMessage(queued)]);
            let status = self.status_event(&st);
            self.publish_status(&mut st, status);
            return Ok(Receipt {
                message_id: Some(message.id),
                state: MessageState::Queued,
                seq: None,
                position: Some(position),
            });
        }
        let sent = user_message(content, Some(&message.id), by);
        let seq = self.publish(&mut st, vec![Event::UserMessage(sent)]);
        let id = message.id.clone();
        self.begin_turn(&mut st, message);
        drop(st);
        self.save();
        Ok(Receipt {
            message_id: Some(id),
            state: MessageState::Sent,
            seq: Some(seq),
            position: None,
        })
    }

    /// A message for a program without turns: written to its stdin as it comes.
    fn send_to_stdin(
        &self,
        st: std::sync::MutexGuard<'_, WorkerState>,
        content: &str,
        by: &str,
    ) -> Result<Receipt, Error> {
        let process = match (&st.process, st.status) {
            (Some(p), Status::Running) if p.is_running() => p.clone(),
            _ => {
                return Err(Error::conflict(
                    ErrorCode::WorkerNotRunning,
                    format!(
                        "{} {} and takes no messages until it is started again",
                        self.display_name(),
                        st.status.phrase()
                    ),
                ));
            }
        };
        drop(st);
        // The `user_message` is numbered under the stdin's lock, so that the order of
        // messages in the feed is the order in which the program gets them, whoever
        // sends them. It is published before the program sees it, so the program's
        // answer always comes after it in the feed; but the viewers this thread sends to
        // itself get it only once the program has it, which is what the sender waits for.
        let event = Event::UserMessage(user_message(content, None, by));
        let (written, (seq, wakes)) = process
            .write_stdin_after(self.adapter.encode_message(content), || {
                self.feed.publish_deferred(std::slice::from_ref(&event))
            });
        wakes.run();
        let err = match written {
            Ok(()) => {
                return Ok(Receipt {
                    message_id: None,
                    state: MessageState::Sent,
                    seq: Some(seq),
                    position: None,
                });
            }
            Err(StdinError::Full) => Error::unavailable(
                ErrorCode::InputFull,
                format!(
                    "{} is not reading its input and its backlog is full; the message was not delivered",
                    self.display_name()
                ),
            ),
            Err(StdinError::Disconnected) => self.unreachable(),
            Err(StdinError::Closed) => Error::conflict(
                ErrorCode::WorkerNotRunning,
                format!(
                    "the input of {} is closed; the message was not delivered",
                    self.display_name()
                ),
            ),
        };
        // Every viewer saw the message go out, so every viewer learns it did not arrive.
        let mut error = ErrorEvent::new(err.code, err.message.clone());
        error.message_seq = Some(seq);
        self.feed.publish_one(Event::Error(error));
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
            waited: std::time::Duration::ZERO,
            waiting_since: None,
            lost_session: None,
            explained: false,
        });
        let started = match self.lifecycle() {
            Lifecycle::PerTurn => self.spawn(st, Some(&message.content)),
            Lifecycle::LongRunning => self.feed_session(st, &message.content),
        };
        match started {
            Ok(()) => {
                if let Some(turn) = st.turn.as_mut() {
                    turn.process = st.process.as_ref().map(|p| p.id);
                }
                st.status = Status::Busy;
                let mut status = self.status_event(st);
                status.pid = st.process.as_ref().and_then(|p| p.pid());
                self.publish_status(st, status);
                self.arm_timeout(st.turns);
            }
            Err(err) => {
                log::warn!("worker {}: {}", self.id, err.message);
                let error = turn_error(err.code, err.message, &message.id);
                self.publish(st, vec![error]);
                self.end_turn(st, Outcome::Failed);
            }
        }
    }

    /// Writes a message to the long-running session, starting it if it is not running.
    fn feed_session(&self, st: &mut WorkerState, content: &str) -> Result<(), Error> {
        if !st.process.as_ref().is_some_and(|p| p.is_running()) {
            self.spawn(st, None)?;
            // A new session: an earlier stop no longer explains how it ends.
            st.restarts.started();
        }
        let failed =
            |message: String| Error::new(ErrorKind::Unavailable, ErrorCode::StartFailed, message);
        let process = st
            .process
            .clone()
            .ok_or_else(|| failed("the session did not start".into()))?;
        let bytes = match st.parser.as_mut().filter(|(id, _)| *id == process.id) {
            Some((_, parser)) => parser.encode_message(content),
            None => None,
        }
        .unwrap_or_else(|| self.adapter.encode_message(content));
        if bytes.is_empty() {
            // Held by the protocol until its session is ready.
            return Ok(());
        }
        process
            .write_stdin(bytes)
            .map_err(|err| failed(format!("the session did not take the message: {err:?}")))
    }

    /// The turn's longest allowed time: past it, its process group is killed. Time
    /// spent waiting for someone to answer an approval does not count.
    fn arm_timeout(&self, number: u64) {
        self.arm_timeout_in(number, self.engine.turn_timeout);
    }

    fn arm_timeout_in(&self, number: u64, wait: std::time::Duration) {
        let worker = self.me.clone();
        let limit = self.engine.turn_timeout;
        self.engine.timer.after(wait, move || {
            let Some(worker) = worker.upgrade() else {
                return;
            };
            let mut st = worker.lock();
            let Some(turn) = st
                .turn
                .as_mut()
                .filter(|t| t.number == number && t.cause.is_none())
            else {
                return;
            };
            let worked = turn.worked();
            if worked < limit {
                // It waited for people meanwhile: what is left of its time.
                let left = (limit - worked).max(std::time::Duration::from_millis(100));
                drop(st);
                worker.arm_timeout_in(number, left);
                return;
            }
            turn.cause = Some(Cause::Timeout);
            let message_id = turn.message.id.clone();
            let error = turn_error(
                ErrorCode::Timeout,
                format!(
                    "the turn ran longer than {}s (--worker-timeout) and was stopped",
                    limit.as_secs()
                ),
                &message_id,
            );
            worker.publish(&mut st, vec![error]);
            if let Some(process) = &st.process {
                log::warn!(
                    "worker {}: turn {number} timed out; killing process {}",
                    worker.id,
                    process.id
                );
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
        if turn_here.is_some_and(|t| t.lost_session == Some(process) && t.cause.is_none()) {
            self.restart_turn_in_new_session(st);
            return;
        }
        if let Some(turn) = turn_here {
            let outcome = outcome_of(turn.cause, turn.ended.as_ref().map(|e| e.is_error));
            let explained = exit.code.and_then(|code| self.adapter.explain_exit(code));
            let said = turn.explained;
            if let Some(Event::Error(mut error)) =
                explained.filter(|_| turn.cause.is_none() && !said)
            {
                error.exit = exit.fields();
                error.message_id = Some(turn.message.id.clone());
                self.publish(st, vec![Event::Error(error)]);
            } else if turn.ended.is_none() && turn.cause.is_none() && !said {
                let message = match (exit.code, exit.signal) {
                    (Some(code), _) => {
                        format!("the program exited with code {code} before finishing its turn")
                    }
                    (None, Some(sig)) => format!(
                        "the program was killed by {} before finishing its turn",
                        signal_name(sig)
                    ),
                    _ => "the program ended before finishing its turn".into(),
                };
                let mut error = ErrorEvent::new(ErrorCode::TurnFailed, message);
                error.exit = exit.fields();
                error.message_id = Some(turn.message.id.clone());
                self.publish(st, vec![Event::Error(error)]);
            }
            self.end_turn(st, outcome);
        }
        if self.lifecycle() == Lifecycle::LongRunning {
            if self.has_turns() {
                // The session is gone; the next message starts it again (resuming).
                if !matches!(st.status, Status::Busy | Status::WaitingApproval) {
                    st.status = Status::Idle;
                    let mut status = self.status_event(st);
                    status.exit = exit.fields();
                    if st.restarts.was_stopped() {
                        status.reason = Some("stopped on request".into());
                    }
                    self.publish_status(st, status);
                }
            } else {
                st.status = Status::Exited;
                let mut status = self.status_event(st);
                if st.restarts.was_stopped() {
                    status.reason = Some("stopped on request".into());
                }
                self.publish_status(st, status);
                self.after_exit(st, &exit);
            }
        }
    }

    /// The program could not resume its session: says so, then gives the turn's message
    /// to a new session.
    pub(super) fn on_session_lost(&self, st: &mut WorkerState, process: u64) {
        let Some(turn) = st
            .turn
            .as_mut()
            .filter(|t| t.process == Some(process) && t.lost_session.is_none())
        else {
            return;
        };
        turn.lost_session = Some(process);
        let lost = st.session_id.take().unwrap_or_default();
        self.publish(
            st,
            vec![Event::agent(crate::event::AgentContent::session_lost(
                &lost,
                "the earlier session could not be resumed (the program has no record of it); this message starts a new session".into(),
                "",
            ))],
        );
    }

    fn restart_turn_in_new_session(&self, st: &mut WorkerState) {
        let Some((content, id)) = st
            .turn
            .as_ref()
            .map(|t| (t.message.content.clone(), t.message.id.clone()))
        else {
            return;
        };
        st.process = None;
        match self.feed_session(st, &content) {
            Ok(()) => {
                let pid = st.process.as_ref().and_then(|p| p.pid());
                if let Some(turn) = st.turn.as_mut() {
                    turn.process = st.process.as_ref().map(|p| p.id);
                }
                let mut status = self.status_event(st);
                status.pid = pid;
                self.publish_status(st, status);
            }
            Err(err) => {
                self.publish(st, vec![turn_error(err.code, err.message, &id)]);
                self.end_turn(st, Outcome::Failed);
            }
        }
    }

    /// Ends the running turn with `outcome` and starts the next queued message.
    fn end_turn(&self, st: &mut WorkerState, outcome: Outcome) {
        // A live process still waits for its answers: it is told they are cancelled.
        let alive = st.process.as_ref().is_some_and(|p| p.is_running());
        self.end_approvals(
            st,
            Decision::Cancelled,
            "the program",
            "the turn ended before anyone answered",
            alive,
        );
        let Some(turn) = st.turn.take() else { return };
        let last = LastTurn {
            number: turn.number,
            message_id: turn.message.id,
            outcome,
            duration_ms: turn.started.elapsed().as_millis() as u64,
        };
        st.status = Status::Idle;
        let mut status: StatusEvent = self.status_event(st);
        status.last_turn = Some(last.clone());
        self.publish_status(st, status);
        self.turn_ended(st, &last);
        if st.deleted {
            return;
        }
        if st.queue.is_empty() {
            return;
        }
        if self.spec.host.is_some() {
            // Starting it may take a round trip to its host: never on this thread (the
            // broadcast thread, when a program's end ends the turn), which would hold
            // every worker's output meanwhile.
            let worker = self.me.clone();
            let started = std::thread::Builder::new()
                .name(format!("turn-{}", &self.id[..8.min(self.id.len())]))
                .spawn(move || {
                    if let Some(worker) = worker.upgrade() {
                        worker.begin_queued();
                    }
                });
            if started.is_ok() {
                return;
            }
        }
        if let Some(next) = st.queue.pop_front() {
            self.begin_turn(st, next);
        }
    }

    /// Starts the first queued message's turn, unless a turn runs already.
    fn begin_queued(&self) {
        let mut st = self.lock();
        if st.deleted || st.turn.is_some() {
            return;
        }
        if let Some(next) = st.queue.pop_front() {
            self.begin_turn(&mut st, next);
        }
        drop(st);
        self.save();
    }

    /// Its (remote) program could not be started: as when a local one cannot be, the
    /// turn fails with the error, or the worker is in `error`.
    pub(super) fn on_start_failed(&self, process: u64, err: &Error) {
        let mut st = self.lock();
        if st.process.as_ref().is_none_or(|p| p.id != process) {
            return;
        }
        st.process = None;
        st.parser = None;
        st.disconnected = None;
        match st.turn.as_ref().map(|t| t.message.id.clone()) {
            Some(message_id) => {
                log::warn!("worker {}: {}", self.id, err.message);
                let error = turn_error(err.code, err.message.clone(), &message_id);
                self.publish(&mut st, vec![error]);
                self.end_turn(&mut st, Outcome::Failed);
            }
            None => self.fail(&mut st, err),
        }
        drop(st);
        self.save();
    }

    /// Interrupts the running turn (SIGINT, or the session's own interrupt); the worker
    /// stays usable. A `command` worker's process group gets SIGINT.
    pub fn interrupt(&self) -> Result<Interrupted, Error> {
        let mut st = self.lock();
        let Some(process) = st.process.clone().filter(|p| p.is_running()) else {
            return Err(Error::conflict(
                ErrorCode::NothingRunning,
                format!(
                    "{} has no running process to interrupt",
                    self.display_name()
                ),
            ));
        };
        if !self.has_turns() {
            process.signal(libc::SIGINT);
            return Ok(Interrupted {
                interrupted: true,
                message_id: None,
            });
        }
        let Some(turn) = st.turn.as_mut() else {
            return Err(Error::conflict(
                ErrorCode::NotBusy,
                format!("{} is not running a turn", self.display_name()),
            ));
        };
        let message_id = turn.message.id.clone();
        self.cut_turn(&mut st, &process, Cause::Interrupted);
        drop(st);
        Ok(Interrupted {
            interrupted: true,
            message_id: Some(message_id),
        })
    }

    /// Cuts the running turn short (`cause`): what it waited for is denied first, so the
    /// program hears it; then the program's own interrupt, and a kill if it ignores it.
    pub(super) fn cut_turn(&self, st: &mut WorkerState, process: &Arc<Process>, cause: Cause) {
        let Some(turn) = st.turn.as_mut() else {
            return;
        };
        turn.cause.get_or_insert(cause);
        let number = turn.number;
        let why = match cause {
            Cause::Failed => "the turn failed",
            _ => "the turn was interrupted",
        };
        let own = match st.parser.as_mut().filter(|(id, _)| *id == process.id) {
            Some((_, parser)) => parser.interrupt(),
            None => None,
        };
        // A protocol's own cancel goes first, and what waits is answered "cancelled"
        // (ACP, Codex's app server); otherwise the program hears the denials, then the
        // interrupt.
        if let Some(bytes) = own {
            if !bytes.is_empty() && process.write_stdin(bytes).is_err() {
                process.signal(libc::SIGINT);
            }
            self.end_approvals(st, Decision::Cancelled, "interrupt", why, true);
            self.kill_if_ignored(number, process);
            return;
        }
        self.end_approvals(st, Decision::Deny, "interrupt", why, true);
        match self.adapter.interrupt(&self.spec) {
            Interrupt::Signal(sig) => process.signal(sig),
            Interrupt::Stdin(bytes) => {
                if process.write_stdin(bytes).is_err() {
                    process.signal(libc::SIGINT);
                }
            }
        }
        self.kill_if_ignored(number, process);
    }

    /// A program that ignores the interrupt is killed a little later.
    fn kill_if_ignored(&self, number: u64, process: &Arc<Process>) {
        let worker = self.me.clone();
        let process = process.clone();
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
    }

    /// Stops the worker on purpose (it is not restarted): drops queued messages, ends
    /// the running turn and its process (SIGTERM, SIGKILL after the grace). Returns once
    /// the process is gone.
    pub fn stop(&self) -> Stopped {
        let (process, dropped) = {
            let mut st = self.lock();
            let dropped = st.queue.len();
            st.queue.clear();
            st.restarts.stopped_on_purpose();
            if let Some(turn) = st.turn.as_mut() {
                turn.cause.get_or_insert(Cause::Stopped);
            }
            self.end_approvals(
                &mut st,
                Decision::Deny,
                "stop",
                "the worker was stopped",
                true,
            );
            (st.process.clone(), dropped)
        };
        if let Some(process) = &process {
            process.terminate(self.engine.kill_grace);
            // Answer with the state after the stop: the exit reaches the worker through
            // the broadcast thread, after the process's last lines.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
            while self
                .lock()
                .process
                .as_ref()
                .is_some_and(|p| p.id == process.id)
                && std::time::Instant::now() < deadline
            {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
        Stopped {
            stopped: process.is_some(),
            dropped_messages: dropped,
        }
    }

    /// Stops the worker because the server shuts down: as `stop`, but a worker that was
    /// running is marked to resume, as its restart policy says, at the next start.
    pub fn stop_for_shutdown(&self) -> Stopped {
        {
            let mut st = self.lock();
            st.resume = st.status.is_live() && !self.has_turns();
        }
        self.save();
        let stopped = self.stop();
        self.save();
        stopped
    }

    /// The message whose turn is running, if any.
    pub fn current_message(&self) -> Option<String> {
        self.lock().turn.as_ref().map(|t| t.message.id.clone())
    }

    /// Whether tasks can run on this worker (it has turns and takes messages).
    pub fn accepts_tasks(&self) -> bool {
        self.has_turns() && self.adapter.takes_messages(&self.spec)
    }

    /// `follower` hears the events of message `message_id`'s turn and how it ended.
    /// Follow before sending the message, so nothing is missed.
    pub fn follow(&self, message_id: &str, follower: std::sync::Arc<dyn super::TurnFollower>) {
        self.lock()
            .followers
            .push((message_id.to_string(), follower));
    }

    /// Stops following message `message_id` (it was never sent).
    pub fn unfollow(&self, message_id: &str) {
        self.lock().followers.retain(|(id, _)| id != message_id);
    }
}

/// A turn's outcome from why it was cut short, else from its result.
fn outcome_of(cause: Option<Cause>, result_error: Option<bool>) -> Outcome {
    match (cause, result_error) {
        (Some(Cause::Timeout), _) => Outcome::Timeout,
        (Some(Cause::Interrupted), _) => Outcome::Interrupted,
        (Some(Cause::Stopped), _) => Outcome::Stopped,
        (Some(Cause::Failed), _) => Outcome::Failed,
        (None, Some(false)) => Outcome::Completed,
        (None, _) => Outcome::Failed,
    }
}
