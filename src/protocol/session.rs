//! One `/ws` connection of the agent protocol: every request checked, answered once with
//! its `correlation_id`, and long work (stopping, deleting, running commands, following
//! a turn) done off the connection's reader thread so the connection stays responsive.
//! Errors become error envelopes here, in one place (`reply_error`).

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Instant;

use serde_json::{Value, json};

use super::{PROTOCOL_VERSION, Request, RequestType, ServerType, envelope, parse_request};
use crate::app::App;
use crate::auth::{Access, Caller};
use crate::error::{Error, ErrorCode};
use crate::event::MessageState;
use crate::metrics::METRICS;
use crate::worker::follow::TurnWatch;
use crate::ws::conn::Conn;
use crate::ws::reader::Session;
use crate::ws::subscription::Subscription;

pub struct AgentSession {
    app: Arc<App>,
    /// The token the connection was opened with.
    caller: Caller,
    subscriptions: HashMap<String, Arc<Subscription>>,
    /// Terminal workers this connection typed into or sized: told when it leaves.
    terminals: HashMap<String, Arc<crate::worker::Worker>>,
}

impl AgentSession {
    pub fn new(app: Arc<App>, caller: Caller) -> AgentSession {
        AgentSession {
            app,
            caller,
            subscriptions: HashMap::new(),
            terminals: HashMap::new(),
        }
    }
}

/// Sends an answer to request `id`.
fn reply(conn: &Arc<Conn>, kind: ServerType, payload: Value, id: &str) {
    conn.send_json(&envelope(kind, payload, None, Some(id)));
}

/// Sends one of the domain's values as an answer to request `id`.
fn reply_typed(conn: &Arc<Conn>, kind: ServerType, payload: &impl serde::Serialize, id: &str) {
    reply(
        conn,
        kind,
        serde_json::to_value(payload).unwrap_or(Value::Null),
        id,
    );
}

/// An error as an error envelope: `{"code", "message", "status"}`, `status` being what
/// the same error is over HTTP.
fn reply_error(conn: &Arc<Conn>, kind: ServerType, err: &Error, id: Option<&str>) {
    conn.send_json(&envelope(
        kind,
        json!({"code": err.code, "message": err.message, "status": crate::http::reply::status_of(err.kind)}),
        None,
        id,
    ));
}

fn string_field(req: &Request, key: &str) -> Option<String> {
    req.payload
        .get(key)
        .and_then(Value::as_str)
        .map(str::to_string)
}

fn worker_id(req: &Request) -> Result<String, Error> {
    string_field(req, "worker_id")
        .or_else(|| req.target.clone())
        .filter(|id| !id.is_empty())
        .ok_or_else(|| Error::invalid("`payload.worker_id` (or `target`) is required"))
}

fn task_id(req: &Request) -> Result<String, Error> {
    string_field(req, "task_id").ok_or_else(|| Error::invalid("`payload.task_id` is required"))
}

/// Runs `work` on its own thread; the connection keeps serving meanwhile.
fn in_background(name: &str, work: impl FnOnce() + Send + 'static) {
    if let Err(err) = std::thread::Builder::new().name(name.into()).spawn(work) {
        log::error!("could not start a {name} thread: {err}");
    }
}

impl Session for AgentSession {
    fn on_open(&mut self, conn: &Arc<Conn>) {
        self.app.dashboards.add(conn, &self.caller);
        conn.send_json(&envelope(
            ServerType::ConnectionAck,
            json!({
                "connection_id": conn.id.to_string(),
                "server_version": env!("CARGO_PKG_VERSION"),
                "protocol_version": PROTOCOL_VERSION,
            }),
            None,
            None,
        ));
    }

    fn on_text(&mut self, conn: &Arc<Conn>, text: &str) {
        let started = Instant::now();
        let req = match parse_request(text) {
            Ok(req) => req,
            Err(invalid) => {
                let err = Error::invalid(invalid.message).with_code(invalid.code);
                return reply_error(conn, ServerType::SystemError, &err, invalid.id.as_deref());
            }
        };
        if let Err(err) = self.dispatch(conn, &req) {
            reply_error(conn, req.kind.error_type(), &err, Some(&req.id));
        }
        METRICS.protocol_latency.observe(started.elapsed());
    }

    /// A message this connection does not take (too large, binary) is answered in the
    /// protocol's own format.
    fn on_refused(&mut self, conn: &Arc<Conn>, err: &Error) {
        reply_error(conn, ServerType::SystemError, err, None);
    }

    fn on_close(&mut self, conn: &Arc<Conn>) {
        self.app.dashboards.remove(conn.id);
        for (_, sub) in self.subscriptions.drain() {
            sub.stop();
        }
        for (_, worker) in self.terminals.drain() {
            worker.terminal_viewer_left(conn.id);
        }
    }
}

impl AgentSession {
    fn dispatch(&mut self, conn: &Arc<Conn>, req: &Request) -> Result<(), Error> {
        let app = &self.app;
        let id = req.id.as_str();
        match req.kind {
            RequestType::ConnectionPing => reply(
                conn,
                ServerType::ConnectionPong,
                json!({"server_time": crate::clock::now_rfc3339()}),
                id,
            ),
            RequestType::AgentCreate => {
                let worker = app
                    .hub
                    .create(&Value::Object(req.payload.clone()), &self.caller)?;
                reply_typed(conn, ServerType::AgentCreated, &worker.view(), id);
            }
            RequestType::AgentStatus
                if req.payload.contains_key("worker_id") || req.target.is_some() =>
            {
                let worker = app
                    .hub
                    .require_for(&self.caller, &worker_id(req)?, Access::Read)?;
                reply_typed(conn, ServerType::AgentStatus, &worker.view(), id);
            }
            RequestType::AgentStatus | RequestType::AgentList => {
                let agents: Vec<_> = app
                    .hub
                    .list_for(&self.caller)
                    .iter()
                    .map(|w| w.view())
                    .collect();
                reply_typed(
                    conn,
                    ServerType::AgentStatus,
                    &json!({"agents": agents}),
                    id,
                );
            }
            RequestType::AgentSubscribe => {
                let worker = app
                    .hub
                    .require_for(&self.caller, &worker_id(req)?, Access::Read)?;
                let since =
                    match req.payload.get("since") {
                        None | Some(Value::Null) => None,
                        Some(v) => Some(v.as_u64().ok_or_else(|| {
                            Error::invalid("`since` must be a non-negative integer")
                        })?),
                    };
                worker.check_since(since)?;
                if let Some(old) = self.subscriptions.remove(&worker.id) {
                    old.stop();
                }
                // A terminal's screen first, then the events after it.
                let snapshot = since
                    .is_none()
                    .then(|| worker.terminal_snapshot())
                    .flatten();
                let since = snapshot.as_ref().map(|s| s.seq).or(since);
                let (first, last) = worker.feed.bounds();
                reply(
                    conn,
                    ServerType::AgentSubscribed,
                    json!({"worker_id": worker.id, "since": since, "first_seq": first, "last_seq": last}),
                    id,
                );
                if let Some(snapshot) = snapshot {
                    let event =
                        serde_json::to_value(crate::event::Event::TerminalSnapshot(snapshot))
                            .unwrap_or(Value::Null);
                    conn.send_json(&envelope(
                        ServerType::AgentEvent,
                        event,
                        Some(&worker.id),
                        None,
                    ));
                }
                let sub = Subscription::start(conn, worker.clone(), since, true);
                self.subscriptions.insert(worker.id.clone(), sub);
            }
            RequestType::AgentUnsubscribe => {
                let worker = worker_id(req)?;
                let worker = app
                    .hub
                    .require_for(&self.caller, &worker, Access::Read)
                    .map_or(worker, |w| w.id.clone());
                let was = self
                    .subscriptions
                    .remove(&worker)
                    .map(|s| s.stop())
                    .is_some();
                reply(
                    conn,
                    ServerType::AgentUnsubscribed,
                    json!({"worker_id": worker, "was_subscribed": was}),
                    id,
                );
            }
            RequestType::AgentInterrupt => {
                let worker = app
                    .hub
                    .require_for(&self.caller, &worker_id(req)?, Access::Change)?;
                let answer = worker.interrupt()?;
                reply(
                    conn,
                    ServerType::AgentStatus,
                    json!({"worker_id": worker.id, "interrupt": answer}),
                    id,
                );
            }
            RequestType::AgentStop | RequestType::AgentDelete => {
                let worker = app
                    .hub
                    .require_for(&self.caller, &worker_id(req)?, Access::Change)?;
                let delete = req.kind == RequestType::AgentDelete;
                let (app, conn, id) = (app.clone(), conn.clone(), id.to_string());
                in_background("agent-stop", move || {
                    let answer = if delete {
                        app.hub
                            .delete(&worker.id)
                            .map(|_| json!({"worker_id": worker.id, "deleted": true}))
                    } else {
                        let stopped = worker.stop();
                        Ok(json!({"worker_id": worker.id, "stopped": stopped.stopped,
                                  "dropped_messages": stopped.dropped_messages}))
                    };
                    match answer {
                        Ok(payload) => reply(&conn, ServerType::AgentStopped, payload, &id),
                        Err(err) => reply_error(&conn, ServerType::AgentError, &err, Some(&id)),
                    }
                });
            }
            RequestType::AgentApprove => {
                let worker = app
                    .hub
                    .require_for(&self.caller, &worker_id(req)?, Access::Change)?;
                let approval_id = string_field(req, "approval_id").ok_or_else(|| {
                    Error::invalid("`payload.approval_id` is required: the request to answer")
                })?;
                let answer =
                    crate::approval::Answer::from_json(&Value::Object(req.payload.clone()))?;
                let resolved = worker.answer_approval(&approval_id, answer, &self.caller.name)?;
                let mut payload = serde_json::to_value(&resolved).unwrap_or(Value::Null);
                payload["worker_id"] = worker.id.clone().into();
                reply(conn, ServerType::AgentApproved, payload, id);
            }
            RequestType::AgentInput => {
                let worker = app
                    .hub
                    .require_for(&self.caller, &worker_id(req)?, Access::Change)?;
                let data = serde_json::from_value::<crate::event::TerminalData>(Value::Object(
                    req.payload.clone(),
                ))
                .ok()
                .and_then(|input| input.bytes())
                .ok_or_else(|| {
                    Error::invalid(
                        "`payload.data` is required: what to type, as a string (base64 with `encoding`: \"base64\")",
                    )
                })?;
                let bytes = data.len();
                worker.terminal_input(conn.id, data)?;
                reply(
                    conn,
                    ServerType::AgentInput,
                    json!({"worker_id": worker.id, "bytes": bytes}),
                    id,
                );
                self.terminals.insert(worker.id.clone(), worker);
            }
            RequestType::AgentResize => {
                let worker = app
                    .hub
                    .require_for(&self.caller, &worker_id(req)?, Access::Change)?;
                let number = |key: &str| req.payload.get(key).and_then(Value::as_u64);
                let (Some(cols), Some(rows)) = (number("cols"), number("rows")) else {
                    return Err(Error::invalid(
                        "`payload.cols` and `payload.rows` are required: whole numbers",
                    ));
                };
                let size =
                    crate::event::TerminalSize::checked(cols, rows).map_err(Error::invalid)?;
                worker.terminal_resize(conn.id, size)?;
                reply(
                    conn,
                    ServerType::AgentResize,
                    json!({"worker_id": worker.id, "cols": size.cols, "rows": size.rows}),
                    id,
                );
                self.terminals.insert(worker.id.clone(), worker);
            }
            RequestType::CommandExecute => self.execute(conn, req)?,
            RequestType::TaskAssign => {
                let task = app.tasks.create(&req.payload, &self.caller)?;
                reply(
                    conn,
                    ServerType::TaskUpdate,
                    json!({"task": task.json()}),
                    id,
                );
            }
            RequestType::TaskList => {
                let status = match req.payload.get("status") {
                    None | Some(Value::Null) => None,
                    Some(v) => Some(crate::tasks::parse_status(v.as_str().unwrap_or(""))?),
                };
                let tasks: Vec<Value> = app
                    .tasks
                    .list(&self.caller, status)
                    .iter()
                    .map(|t| t.json())
                    .collect();
                reply(conn, ServerType::TaskList, json!({"tasks": tasks}), id);
            }
            RequestType::TaskCancel => {
                let task = app.tasks.cancel(&self.caller, &task_id(req)?)?;
                reply(
                    conn,
                    ServerType::TaskUpdate,
                    json!({"task": task.json()}),
                    id,
                );
            }
            RequestType::TaskRun => {
                let task = app.tasks.run_now(&self.caller, &task_id(req)?)?;
                reply(
                    conn,
                    ServerType::TaskUpdate,
                    json!({"task": task.json()}),
                    id,
                );
            }
            RequestType::SystemStatus => reply(
                conn,
                ServerType::SystemStatus,
                crate::status::status_json(app),
                id,
            ),
            RequestType::SystemMetric => {
                if !self.caller.is_admin() {
                    return Err(Error::forbidden(
                        ErrorCode::Forbidden,
                        "metrics name every worker: only an admin token may read them",
                    ));
                }
                reply(
                    conn,
                    ServerType::SystemMetric,
                    crate::status::metrics_json(app),
                    id,
                )
            }
        }
        Ok(())
    }

    /// `command:execute`: a message to an agent (`target` or `payload.worker_id`, with
    /// `payload.content`), answered when its turn ends; or a one-off program
    /// (`payload.argv`), answered when it exits. Output comes as `command:progress`.
    fn execute(&mut self, conn: &Arc<Conn>, req: &Request) -> Result<(), Error> {
        let app = self.app.clone();
        let id = req.id.clone();
        let target = req
            .target
            .clone()
            .or_else(|| string_field(req, "worker_id"));
        if let Some(target) = target {
            let worker = app.hub.require_for(&self.caller, &target, Access::Change)?;
            let content = string_field(req, "content").ok_or_else(|| {
                Error::invalid("`payload.content` is required: the message for the agent")
            })?;
            if !worker.has_turns() {
                // A program without turns: the message goes to its stdin; nothing marks
                // the end of an answer.
                let sent = worker.send_message(&content, &self.caller.name)?;
                reply(
                    conn,
                    ServerType::CommandResult,
                    json!({"success": true, "worker_id": worker.id, "sent": sent}),
                    &id,
                );
                return Ok(());
            }
            let message_id = uuid::Uuid::new_v4().to_string();
            let weak: Weak<Conn> = Arc::downgrade(conn);
            let source: Arc<str> = worker.id.as_str().into();
            let (done_conn, done_id, worker_id) = (weak.clone(), id.clone(), worker.id.clone());
            let message = message_id.clone();
            let watch = TurnWatch::new(
                move |event| {
                    if let Some(conn) = weak.upgrade() {
                        let payload = json!({"worker_id": &*source, "event": event.to_value()});
                        let frame = envelope(
                            ServerType::CommandProgress,
                            payload,
                            Some(&source),
                            Some(&id),
                        );
                        conn.push_shared(
                            crate::wire::frame::text(frame.to_string().as_bytes()).into(),
                        );
                    }
                },
                move |outcome| {
                    if let Some(conn) = done_conn.upgrade() {
                        let mut payload = serde_json::to_value(&outcome).unwrap_or(Value::Null);
                        payload["worker_id"] = worker_id.into();
                        payload["message_id"] = message.into();
                        reply(&conn, ServerType::CommandResult, payload, &done_id);
                    }
                },
            );
            worker.follow(&message_id, watch);
            let receipt =
                match worker.send_message_as(&content, message_id.clone(), &self.caller.name) {
                    Ok(receipt) => receipt,
                    Err(err) => {
                        worker.unfollow(&message_id);
                        return Err(err);
                    }
                };
            // A busy worker queues the message: say so, and where, before its turn.
            if receipt.state == MessageState::Queued {
                let mut payload = serde_json::to_value(&receipt).unwrap_or(Value::Null);
                payload["worker_id"] = worker.id.clone().into();
                reply(conn, ServerType::CommandProgress, payload, &req.id);
            }
            return Ok(());
        }

        let request = app.commands.request(&req.payload)?;
        let permit = app.commands.permit(&self.caller, &request.argv)?;
        let weak = Arc::downgrade(conn);
        let done_conn = conn.clone();
        let done_id = id.clone();
        app.commands.spawn(
            permit,
            request,
            Box::new(move |n, pipe, text| {
                if let Some(conn) = weak.upgrade() {
                    let payload = json!({"line": n, "stream": pipe.as_str(), "text": text});
                    let frame = envelope(ServerType::CommandProgress, payload, None, Some(&id));
                    conn.push_shared(crate::wire::frame::text(frame.to_string().as_bytes()).into());
                }
            }),
            Box::new(move |result| {
                reply(
                    &done_conn,
                    ServerType::CommandResult,
                    result.json(),
                    &done_id,
                )
            }),
        );
        Ok(())
    }
}
